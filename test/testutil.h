/*
 * testutil.h - helpers shared by the Check suites: suites, a seeded PRNG,
 * temporary directories, an in-memory device that can crash, and fsck.
 */
#ifndef COW_TESTUTIL_H
#define COW_TESTUTIL_H

#include <check.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Check's ck_assert_msg (and every ck_assert_* built on it) records each
 * assertion that holds, with _mark_point: one write(2) of a message to the
 * runner's message file, which the runner reads back whole after the test.
 * The store's tests check millions of bytes and items one by one: under
 * ASan that was 15 us an assertion, hundreds of MiB read back into the
 * runner (which every later test's process inherits and LeakSanitizer
 * scans at its exit) and half of make unit's time.  Here a passing
 * assertion costs nothing; a failing one reports as before.  What is lost
 * is only the "last point passed" Check prints when a test dies of a
 * signal (ASan and UBSan print the stack instead; mark_point() still
 * records a point where a test wants one).
 */
#undef ck_assert_msg
#define ck_assert_msg(expr, ...)                                                           \
    ((expr) ? (void)0                                                                      \
            : _ck_assert_failed(__FILE__, __LINE__, "Assertion '" #expr "' failed",        \
                                ##__VA_ARGS__))

struct cow_dev;
struct cow_file;
struct cow_fsck_src;
struct cow_store;

Suite *btree_suite(void);
Suite *alloc_suite(void);
Suite *txn_suite(void);
Suite *file_suite(void);
Suite *vfs_io_suite(void);
Suite *vfs_journal_suite(void);
Suite *vfs_files_suite(void);
Suite *vfs_snap_suite(void);
Suite *conc_suite(void);
Suite *race_suite(void);
Suite *rdpath_suite(void);
Suite *usage_suite(void);
Suite *model_suite(void);
Suite *model_found_suite(void);
Suite *validate_suite(void);
Suite *damage_suite(void);
Suite *abort_suite(void);
Suite *seq_suite(void);
Suite *upgrade_suite(void);
Suite *util_suite(void);
Suite *lockdep_suite(void);
Suite *reloc_suite(void);
Suite *xproc_suite(void);
Suite *inplace_suite(void);
Suite *fsck_remap_suite(void);
Suite *shared_suite(void);
Suite *xkill_suite(void);
Suite *nocow_suite(void);

/* The run's seed: COW_TEST_SEED if set, else from the clock; printed once. */
uint64_t test_seed(void);
/* xorshift PRNG over *state. */
uint64_t test_rand(uint64_t *state);
/* Fills the N bytes at BUF with test_rand(STATE), one call per byte. */
void test_fill(uint64_t *state, void *buf, size_t n);

/* A fresh directory under TMPDIR (or /tmp); the caller frees the string.
 * test_rmdir() removes it and everything in it. */
char *test_mkdtemp(void);
void test_rmdir(char *dir);

/*
 * A base directory per Check test case, made and removed in the runner's
 * own process (an unchecked fixture: tcase_add_unchecked_fixture(tc,
 * test_base_setup, test_base_teardown)), so that what a failed test leaves
 * behind is removed too.  test_base_dir() makes a fresh directory in it (in
 * /tmp without one); the caller frees the string.
 */
void test_base_setup(void);
void test_base_teardown(void);
char *test_base_dir(void);

/*
 * An in-memory device.  Writes go to a "volatile" image; flush copies it to
 * the "durable" image (what survives a power loss).  memdev_crash_image()
 * returns a copy of the durable image (a crash at this instant), which
 * memdev_from_image() turns into a new device.  Failure injection:
 * fail_grow makes grow fail with COW_ENOSPC; fail_writes_after counts down
 * writes until they fail with COW_EIO_WRITE (0 = off), and keep failing.
 * fail_read_at, fail_write_at and fail_flush_at fail one chosen call: the
 * Nth read, write or flush from when it is set (1 = the next one; 0 =
 * off), with fail_rc (COW_EIO_WRITE, COW_ENOSPC, ...; 0 means the call's
 * own EIO code); the failed call changes nothing and the field returns to
 * 0.  nread, nwrite and nflush count the calls made.  Set the fields while
 * no store call runs on the device (or under the device's own ordering:
 * each method reads them under its mutex).
 */
struct memdev_ctl {
    int fail_grow;
    long fail_writes_after;
    long fail_read_at, fail_write_at, fail_flush_at;
    int fail_rc;
    uint64_t nflush, nread, nwrite;
};
/* The same settings under the device's mutex, for a test whose store has
 * threads of its own running (the background committer, writeback):
 * fail_read_at, fail_write_at, fail_flush_at and fail_rc as above. */
void memdev_set_fail(struct cow_dev *d, long read_at, long write_at, long flush_at, int rc);
/* The injected failures not reached yet (the sum of the three *_at
 * fields), read under the device's mutex. */
long memdev_fail_pending(struct cow_dev *d);
struct cow_dev *memdev_new(struct memdev_ctl **ctl);
/* A new store formatted on a new memdev (*DEV; *CTL its controls if CTL),
 * without background commits or background relocation, so that a test
 * decides when it commits.
 * Fails the test if it cannot be made. */
struct cow_store *memdev_store(struct cow_dev **dev, struct memdev_ctl **ctl);
/* A store formatted on a new memdev (*DEV; *CTL its controls if CTL) with
 * background commits at the store's default commit interval (unlike
 * memdev_store), and the file NAME created and open in *F unless NAME is
 * NULL.  Fails the test if it cannot be made. */
struct cow_store *memdev_store_background(struct cow_dev **dev, struct memdev_ctl **ctl,
                                          const char *name, struct cow_file **f);
/* memdev_store() (no background commits) with the file NAME created and
 * open in *F.  Fails the test if it cannot be made. */
struct cow_store *memdev_store_file(struct cow_dev **dev, struct memdev_ctl **ctl,
                                    const char *name, struct cow_file **f);
struct cow_dev *memdev_from_image(const uint8_t *img, size_t len, struct memdev_ctl **ctl);
/* Copy of the durable image; *len set.  Caller frees. */
uint8_t *memdev_crash_image(struct cow_dev *d, size_t *len);
/* Copy of the volatile image (what a clean shutdown would leave). */
uint8_t *memdev_image(struct cow_dev *d, size_t *len);

/*
 * A device that forwards every call to UNDER, which it does not own: its
 * close frees only itself, then calls ON_CLOSE(ARG) if ON_CLOSE is set.  So
 * a memdev outlives each store opened on it, and a test can look at its
 * images or open it again.  Its flush counts in its own nflush too.  It
 * forwards the optional publish, readv, readers_oldest and writeback where
 * UNDER has them (a RADOS device).  Returns NULL when out of memory.
 */
struct cow_dev *fwd_dev_new(struct cow_dev *under, void (*on_close)(void *arg), void *arg);

/*
 * Crash states.  The memdev also keeps, in order, every write and every
 * change of size (a grow, or a write past the end) since the last flush:
 * what a power loss may lose.  Flush makes them durable and forgets them.
 * A pending write is seen as units, one for each 4 KiB block it touches (a
 * unit is the part of the write inside that block), numbered in write
 * order; memdev_unit() gives unit U's offset and length, and returns the
 * index of the write it belongs to (-1 if there is no unit U).
 *
 * memdev_crash_fill() writes to OUT what a power loss at this instant could
 * leave: the size after the first NSIZES pending size changes (0: the size
 * at the last flush; memdev_crash_size() gives it, and OUT must hold that
 * many bytes), the durable image cut or zero-extended to it, then every
 * pending write in order, unit U keeping only the 512-byte sectors set in
 * KEEP[U] (bit s = sector s of the unit's block; 0 drops the unit, 0xff
 * keeps it whole, anything else tears it); bytes past the size are lost.
 * KEEP has one byte per pending unit.  memdev_crash_state() does the same
 * into a new buffer, which the caller frees, and sets *len to its length.
 *
 * Every memdev function takes the device's own mutex (writeback writes
 * from several threads).
 */
#define MEMDEV_BLOCK 4096
#define MEMDEV_SECTOR 512
void memdev_pending(struct cow_dev *d, size_t *nunits, size_t *nsizes);
int memdev_unit(struct cow_dev *d, size_t u, uint64_t *off, size_t *len);
size_t memdev_crash_size(struct cow_dev *d, size_t nsizes);
void memdev_crash_fill(struct cow_dev *d, const uint8_t *keep, size_t nsizes, uint8_t *out);
uint8_t *memdev_crash_state(struct cow_dev *d, const uint8_t *keep, size_t nsizes, size_t *len);
/* Fills KEEP (NUNITS bytes) with the ROUND-th of the crash patterns the
 * crash-state tests walk: round 0 keeps every pending unit, round 1 none,
 * rounds 2 .. NUNITS+1 all but unit ROUND-2, later rounds each unit kept,
 * dropped or torn at random (from *RS). */
void memdev_keep_pattern(size_t round, size_t nunits, uint8_t *keep, uint64_t *rs);

/*
 * Where a store test runs (the target): the device a test's store is
 * formatted on, and the containers a test closes and opens again by name.
 * The tests of the store suites that hold on any device (each suite's
 * *_any_target() below) make their stores through the current target,
 * stt: memory devices and container files (memdev_target) in
 * build/check_all, devices and containers in a RADOS pool in
 * build/check_rados (check_rados_store.c sets stt in its fixture).  What
 * only a memdev can do (crash states, memdev_ctl's failures and counts)
 * stays in the tests that call memdev_*() themselves, on memdev only.
 */
struct store_target {
    const char *name; /* "memdev", "rados" */
    /* A new empty device, for a store to format (cow_store_open_dev with
     * FORMAT 1); *NAME names it in messages (the target's string). */
    struct cow_dev *(*dev_new)(const char **name);
    /* Fails the test unless what was last flushed to DEV (made by dev_new)
     * passes fsck with data checksums.  ST, the store that has DEV open
     * (NULL if none), is left as it is: no commit is made, and nothing
     * commits meanwhile. */
    void (*fsck_dev)(struct cow_store *st, struct cow_dev *dev);
    /* A second store, opened with FLAGS (COW_OPEN_*), on what was last
     * flushed to DEV while a store may have DEV open: a copy of a memdev's
     * crash image; on RADOS the same container opened again read-only (a
     * reader on another client, whatever FLAGS say). */
    int (*open_beside)(struct cow_dev *dev, int flags, struct cow_store **out);
    /* A store opened with FLAGS on what was last flushed to DEV, after the
     * store that had DEV open closed (DEV kept past it, as through
     * fwd_dev_new): a copy of a memdev's crash image; on RADOS DEV itself. */
    int (*reopen)(struct cow_dev *dev, int flags, struct cow_store **out);
    /* Container NAME of this test: a new path (malloc()ed) for open; the
     * test removes it with remove(). */
    char *(*path)(const char *name);
    /* cow_store_open() of container PATH (COW_OPEN_CREATE makes it). */
    int (*open)(const char *path, int flags, struct cow_store **out);
    /* Fails the test unless container PATH, which no store has open,
     * passes fsck with data checksums. */
    void (*fsck_clean)(const char *path);
    /* The same for container PATH that ST has open (committed, and
     * nothing commits meanwhile). */
    void (*fsck_open)(struct cow_store *st, const char *path);
    /* Removes container PATH (and what path() made for it); frees PATH. */
    void (*remove)(char *path);
    /* Iteration counts of the long tests, in percent of memdev's. */
    int scale;
};
/* Memory devices (memdev_new) and container files in a fresh directory. */
extern const struct store_target memdev_target;
/* The current target: memdev_target unless a fixture set another. */
extern const struct store_target *stt;
/* N iterations scaled to the current target (stt->scale), at least 1. */
int stt_scaled(int n);
/* memdev_store(), memdev_store_file() and memdev_store_background()
 * without controls, on a new device of the current target (*DEV, owned by
 * the store).  Fail the test if the store cannot be made. */
struct cow_store *target_store(struct cow_dev **dev);
struct cow_store *target_store_file(struct cow_dev **dev, const char *name, struct cow_file **f);
struct cow_store *target_store_background(struct cow_dev **dev, const char *name,
                                          struct cow_file **f);
/* fsck_memdev() on the current target: commits ST (on DEV, target_store's
 * or dev_new's) and fscks what DEV holds. */
void target_fsck(struct cow_store *st, struct cow_dev *dev);

/* The tests of each store suite that hold on any target (struct
 * store_target above), added to TC, for a runner of another target
 * (check_rados_store.c); the memdev suites hold them too, as they always
 * did. */
void btree_any_target(TCase *tc);
void alloc_any_target(TCase *tc);
void txn_any_target(TCase *tc);
void file_any_target(TCase *tc);
void subvol_any_target(TCase *tc);
void usage_any_target(TCase *tc);
void nocow_any_target(TCase *tc);
void reloc_any_target(TCase *tc);

/* Writes LEN bytes to a new file PATH. */
void test_write_file(const char *path, const uint8_t *data, size_t len);
/* Runs cow_fsck on PATH; fails the test with its report unless clean. */
void test_fsck_clean(const char *path);
/* Runs cow_fsck_src_progress (with data) on the container SRC reads
 * (tools/fsck.h: which must not change meanwhile); fails the test with its
 * report unless clean. */
void test_fsck_src_clean(const struct cow_fsck_src *src);
/* Same for an in-memory image (written to a temp file first). */
void test_fsck_image(const uint8_t *img, size_t len);
/* Runs cow_fsck (with data) on an in-memory image; returns its problem
 * count, its report in *REPORT (a new string, the caller frees it) and, if
 * VERSION, the format version of the superblock copy it used. */
uint64_t test_fsck_report(const uint8_t *img, size_t len, char **report, uint32_t *version);
/* Commits ST (a store on memory device DEV) and fscks the durable image;
 * fails the test if the commit fails or fsck finds a problem. */
void fsck_memdev(struct cow_store *st, struct cow_dev *dev);
/* The EXTENT_DATA item of live file F covering file offset OFF (white-box):
 * its data extent's *DISK, the offset *EXT_OFF of OFF in it, its *TYPE
 * (COW_FE_*).  COW_ENOENT in a hole. */
int test_item_at(struct cow_file *f, uint64_t off, uint64_t *disk, uint64_t *ext_off, int *type);

/* Writes LEN bytes of C at OFF of file F; fails the test on an error. */
void file_fill(struct cow_file *f, int c, uint64_t off, size_t len);
/* 1 if every byte of file F in [OFF, OFF+LEN) reads as C (a short read or
 * an error: 0). */
int file_holds(struct cow_file *f, int c, uint64_t off, size_t len);
/* Writes the string S (without its NUL) at offset 0 of file F; fails the
 * test on an error. */
void file_put_str(struct cow_file *f, const char *s);
/* Fails the test unless file F reads as the string WANT (under 64 bytes)
 * at offset 0. */
void file_expect_str(struct cow_file *f, const char *want);

/*
 * A model of one store file's contents: SIZE bytes at DATA (malloc'd, NULL
 * or anything when SIZE is 0; the caller frees DATA).  fm_write() writes
 * LEN bytes at byte offset OFF, growing the model with zeros; fm_truncate()
 * sets the size (zeros when it grows); fm_copy() makes DST a copy of SRC;
 * fm_compare() fails the test unless file F reads exactly as the model,
 * with only zeros in the 4 KiB past its end.
 */
struct fmodel {
    uint8_t *data;
    size_t size;
};
void fm_write(struct fmodel *m, const uint8_t *b, size_t len, size_t off);
void fm_truncate(struct fmodel *m, size_t size);
void fm_copy(struct fmodel *dst, const struct fmodel *src);
void fm_compare(struct cow_file *f, const struct fmodel *m);

/* ---- registering tests ---- */

/* Adds to suite S a test case NAME (tcase_create, suite_add_tcase) with a
 * timeout of SECONDS (0: Check's default), holding the tests that follow,
 * up to a NULL, each added with tcase_add_test.  Returns the test case, for
 * loop tests, signal tests and fixtures added after. */
TCase *test_case(Suite *s, const char *name, double seconds, ...);
/* Adds the tests of AP, up to a NULL, to TC (tcase_add_test each). */
void test_case_addv(TCase *tc, va_list ap);

/*
 * A child process of a several-process test, with a pipe each way: made
 * with test_kid_start before the test's process opens any store (a fork
 * copies no thread, and a lock another thread held stays held).  The
 * child runs FN(PATH, IN, OUT, ARG) and exits 0 if it returns 0; else it
 * prints "NAME: failed at line N" with the store's last error and exits
 * 1.  TO and FROM are the parent's ends.  test_kid_wait waits for the
 * child's exit and fails the test unless it exited 0; test_kid_abort ends
 * the test after the child ended early (WHAT says where), reaping it.
 */
struct test_kid {
    pid_t pid;
    int to, from;
};
void test_kid_start(struct test_kid *k, const char *name,
                    int (*fn)(const char *path, int in, int out, const void *arg),
                    const char *path, const void *arg);
void test_kid_wait(struct test_kid *k);
void test_kid_abort(struct test_kid *k, const char *what);
/* One byte each way over a test_kid's pipes: test_pass writes one to FD
 * (failing the test if it cannot), test_await reads one (1, or 0 when
 * the other side closed or died); test_kid_step lets child K take its
 * step and waits for it to say it is done (test_kid_abort if it ended
 * first). */
void test_pass(int fd);
int test_await(int fd);
void test_kid_step(struct test_kid *k);

#endif
