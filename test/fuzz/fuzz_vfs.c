/*
 * fuzz_vfs.c - libFuzzer harness of the VFS: the patched base (fuzzlib.h's
 * input format) is given to SQLite through "cow" on the buffer itself
 * (the COW_DEBUG opener hook, fz_vfs_serve_buf()), read-write, so that
 * the store's replay and SQLite's recovery run; then PRAGMA integrity_check and every row of
 * every table (fz_sql_read_all), of the live database and of each listed
 * snapshot and branch.  Errors are the expected outcome of most inputs; a
 * crash, hang, leak or sanitizer report is a bug.
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cowvfs.h"
#include "fuzzlib.h"

static struct fz_harness fz;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_harness_init(&fz);
    fz_vfs_path();
    return 0;
}

struct subs {
    char *name[16];
    int kind[16];
    int n;
};

static int list_cb(void *arg, const cowvfs_subvol_info *si)
{
    struct subs *s = arg;
    if (s->n < 16) {
        s->name[s->n] = strdup(si->zName);
        s->kind[s->n++] = si->eKind;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = fz_harness_apply(&fz, data, size, 0);
    fz_vfs_serve_buf(&fz.img, &len, &fz.cap);
    sqlite3 *db = NULL;
    uint64_t h;
    char *uri = sqlite3_mprintf("file:%s?vfs=cow&commit_interval=0", fz_vfs_path());
    int rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL);
    sqlite3_free(uri);
    if (rc == SQLITE_OK && fz_sql_read_all(db, &h) == SQLITE_OK) {
        struct subs s = {{0}, {0}, 0};
        cowvfs_list(db, NULL, list_cb, &s, NULL);
        for (int i = 0; i < s.n; i++) {
            if (!s.name[i])
                continue;
            char *suffix = sqlite3_mprintf("&%s=%s",
                                           s.kind[i] == COWVFS_SNAPSHOT ? "snapshot" : "branch",
                                           s.name[i]);
            fz_sql_check(suffix, SQLITE_OPEN_READWRITE, &h);
            sqlite3_free(suffix);
            free(s.name[i]);
        }
    }
    sqlite3_close_v2(db);
    return 0;
}
