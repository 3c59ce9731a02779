/*
 * fuzz_store.c - libFuzzer harnesses of the store: opening a damaged
 * container and reading every file of every subvolume (fuzz_open), and
 * log replay (fuzz_replay: the same, with the patches in the log areas,
 * opened read-only first, replaying in memory, then read-write, replaying
 * and committing).  Built twice from this file (-DFZ_REPLAY for the
 * second); the input format is fuzzlib.h's.
 *
 * Each input: the patched base becomes a device on the buffer itself
 * (fz_buf_dev(): no copy; writes change the buffer), the store opens it with cow_store_open_dev(), and if that succeeds every
 * file the live subvolume lists and db, db-journal and db-wal of every
 * snapshot and branch are read to their end (a read error ends that file),
 * the store's df is taken and the store closed (committing).  fuzz_open
 * also writes a file before closing, and then the container must open
 * again with that file in it (open_write_reopen).  Errors are
 * the expected outcome of most inputs; a crash, hang, leak or sanitizer
 * report is a bug.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzlib.h"
#include "store.h"
#include "store_int.h"

static struct fz_harness fz;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_harness_init(&fz);
    return 0;
}

struct names {
    char *v[64];
    int n;
};

static int list_cb(void *arg, const struct cow_file_info *fi)
{
    struct names *nm = arg;
    if (nm->n < 64)
        nm->v[nm->n++] = strdup(fi->name);
    return 0;
}

static int subvol_cb(void *arg, const struct cow_subvol_info *si)
{
    struct names *nm = arg;
    if (nm->n < 64)
        nm->v[nm->n++] = strdup(si->name);
    return 0;
}

static void read_file(cow_store *st, const char *subvol, const char *name)
{
    static uint8_t buf[65536];
    cow_file *f;
    if (cow_subvol_file_open(st, subvol, name, 0, &f) != COW_OK)
        return;
    uint64_t size = 0;
    if (cow_file_size(f, &size) == COW_OK) {
        for (uint64_t off = 0; off < size && off < (64u << 20); off += sizeof buf) {
            size_t got;
            if (cow_file_read(f, buf, sizeof buf, off, &got) != COW_OK)
                break;
        }
    }
    cow_file_close(f);
}

static void read_all(cow_store *st)
{
    static const char *const sqlnames[] = {"db", "db-journal", "db-wal"};
    struct names files = {{0}, 0}, subs = {{0}, 0};
    cow_list(st, list_cb, &files);
    for (int i = 0; i < files.n; i++) {
        if (files.v[i])
            read_file(st, NULL, files.v[i]);
        free(files.v[i]);
    }
    cow_subvol_list(st, subvol_cb, &subs);
    for (int i = 0; i < subs.n; i++) {
        for (int k = 0; k < 3 && subs.v[i]; k++)
            read_file(st, subs.v[i], sqlnames[k]);
        free(subs.v[i]);
    }
    struct cow_df df;
    cow_store_df(st, &df);
}

#ifdef FZ_REPLAY
static void open_read(size_t *len, int flags)
{
    cow_store *st;
    struct cow_dev *d = fz_buf_dev(&fz.img, len, &fz.cap);
    if (cow_store_open_dev("fuzz", d, flags, 0, &st) != COW_OK)
        return;
    read_all(st);
    cow_store_close(st);
}
#else
/*
 * The open harness also writes: a new file, committed at close.  A store
 * that accepted the container and committed to it must open it again and
 * read the file back; anything else (a commit it cannot read, as with a
 * superblock generation past 48 bits) is reported as a crash.
 */
static void open_write_reopen(size_t *len)
{
    static uint8_t probe[5000], back[5000];
    cow_store *st;
    cow_file *f;
    int rc;
    if (cow_store_open_dev("fuzz", fz_buf_dev(&fz.img, len, &fz.cap), 0, 0, &st) != COW_OK)
        return;
    read_all(st);
    for (size_t i = 0; i < sizeof probe; i++)
        probe[i] = (uint8_t)(i * 31 + 7);
    rc = cow_file_open(st, "fuzz-probe", 1, &f);
    if (rc == COW_OK) {
        rc = cow_file_write(f, probe, sizeof probe, 0);
        cow_file_close(f);
    }
    if (cow_store_close(st) != COW_OK || rc != COW_OK)
        return;
    rc = cow_store_open_dev("fuzz", fz_buf_dev(&fz.img, len, &fz.cap), 0, 0, &st);
    if (rc != COW_OK) {
        fprintf(stderr, "fuzz_open: the store committed to this container and cannot open it "
                        "again: %s\n", cow_store_last_error(NULL));
        abort();
    }
    size_t got = 0;
    rc = cow_file_open(st, "fuzz-probe", 0, &f);
    if (rc == COW_OK) {
        rc = cow_file_read(f, back, sizeof back, 0, &got);
        cow_file_close(f);
    }
    if (rc != COW_OK || got != sizeof back || memcmp(probe, back, sizeof back) != 0) {
        fprintf(stderr, "fuzz_open: a file committed at close reads back wrong (%s)\n",
                rc ? cow_store_last_error(st) : "other bytes");
        abort();
    }
    cow_store_close(st);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len;
#ifdef FZ_REPLAY
    len = fz_harness_apply(&fz, data, size, 1);
    open_read(&len, COW_OPEN_READONLY);
    open_read(&len, 0);
#else
    len = fz_harness_apply(&fz, data, size, 0);
    open_write_reopen(&len);
#endif
    return 0;
}
