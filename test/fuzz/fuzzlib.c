/*
 * fuzzlib.c - bases and mutations shared by the fuzzers, the seed maker and
 * the corruption sweep; see fuzzlib.h.
 */
#include "fuzzlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bdev.h"
#include "cowvfs.h"
#include "crc32c.h"
#include "format.h"
#include "store.h"
#include "../testutil.h"

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzzlib: %s: %s\n", what, detail ? detail : "");
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory", NULL);
    return p;
}

/* ---------------------------------------------------------------------------
 * The VFS on a memdev
 */

static struct {
    struct cow_dev *dev; /* the memdev served (owned here, not by the store) */
    struct buf_dev *buf; /* or the device on a caller's buffer */
    int nopen;           /* stores open on it (what flock would allow: 1) */
    char path[PATH_MAX];
    int hooked;
} vs;

/* The close of a store's view of vs.dev (a fwd_dev: vs.dev stays). */
static void vs_closed(void *arg)
{
    (void)arg;
    vs.nopen--;
}

/* A device on a caller's buffer: no copy, no flush semantics. */
struct buf_dev {
    struct cow_dev dev;
    uint8_t **img;
    size_t *len, *cap;
    int served; /* opened through the VFS hook (vs.nopen counts it) */
};

static int bd_read(struct cow_dev *d, void *buf, size_t len, uint64_t off)
{
    struct buf_dev *b = (struct buf_dev *)d;
    if (off > *b->len || len > *b->len - off)
        return COW_EIO_READ;
    memcpy(buf, *b->img + off, len);
    return COW_OK;
}
static int bd_grow(struct cow_dev *d, uint64_t size)
{
    struct buf_dev *b = (struct buf_dev *)d;
    if (size > ((uint64_t)1 << 32))
        return COW_ENOSPC;
    if (size > *b->cap) {
        uint8_t *n = realloc(*b->img, (size_t)size);
        if (!n)
            return COW_ENOSPC;
        *b->img = n;
        *b->cap = (size_t)size;
    }
    if (size > *b->len) {
        memset(*b->img + *b->len, 0, (size_t)size - *b->len);
        *b->len = (size_t)size;
    }
    return COW_OK;
}
static int bd_write(struct cow_dev *d, const void *buf, size_t len, uint64_t off)
{
    struct buf_dev *b = (struct buf_dev *)d;
    if (off + len < off || bd_grow(d, off + len) != COW_OK)
        return COW_ENOSPC;
    memcpy(*b->img + off, buf, len);
    return COW_OK;
}
static int bd_flush(struct cow_dev *d)
{
    d->nflush++;
    return COW_OK;
}
static int bd_size(struct cow_dev *d, uint64_t *size)
{
    *size = *((struct buf_dev *)d)->len;
    return COW_OK;
}
static void bd_close(struct cow_dev *d)
{
    if (((struct buf_dev *)d)->served)
        vs.nopen--;
    free(d);
}

struct cow_dev *fz_buf_dev(uint8_t **img, size_t *len, size_t *cap)
{
    struct buf_dev *b = calloc(1, sizeof *b);
    if (!b)
        die("out of memory", NULL);
    b->dev = (struct cow_dev){.read = bd_read, .write = bd_write, .flush = bd_flush,
                              .size = bd_size, .grow = bd_grow, .close = bd_close};
    b->img = img;
    b->len = len;
    b->cap = cap;
    return &b->dev;
}

static int fz_opener(void *arg, const char *path, int flags, struct cow_dev **out, int *created)
{
    (void)arg;
    (void)flags;
    if (strcmp(path, vs.path) != 0)
        return BDEV_TEST_DECLINE;
    if (!vs.dev && !vs.buf)
        return COW_ENOENT;
    if (vs.nopen > 0)
        return COW_EBUSY;
    if (vs.buf) {
        struct buf_dev *b = (struct buf_dev *)fz_buf_dev(vs.buf->img, vs.buf->len, vs.buf->cap);
        b->served = 1;
        vs.nopen++;
        *created = 0;
        *out = &b->dev;
        return COW_OK;
    }
    *out = fwd_dev_new(vs.dev, vs_closed, NULL);
    if (!*out)
        return COW_ENOMEM;
    vs.nopen++;
    *created = 0;
    return COW_OK;
}

static void rm_placeholder(void)
{
    if (vs.path[0]) {
        unlink(vs.path);
        char *slash = strrchr(vs.path, '/');
        *slash = 0;
        rmdir(vs.path);
    }
}

const char *fz_vfs_path(void)
{
    if (!vs.path[0]) {
        const char *tmp = getenv("TMPDIR");
        char dir[PATH_MAX - 16];
        snprintf(dir, sizeof dir, "%s/cowfuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir))
            die("mkdtemp", strerror(errno));
        snprintf(vs.path, sizeof vs.path, "%s/fz.db", dir);
        int fd = open(vs.path, O_CREAT | O_WRONLY, 0644);
        if (fd < 0)
            die("placeholder", strerror(errno));
        close(fd);
        atexit(rm_placeholder);
    }
    if (!vs.hooked) {
        cowvfs_register(0);
        bdev_set_test_opener(fz_opener, NULL);
        vs.hooked = 1;
    }
    return vs.path;
}

void fz_vfs_own_path(void)
{
    vs.path[0] = 0; /* the parent removes its own at exit */
}

void fz_vfs_drop_path(void)
{
    rm_placeholder();
    vs.path[0] = 0;
}

void fz_vfs_serve(const uint8_t *img, size_t len)
{
    fz_vfs_path();
    if (vs.nopen > 0)
        die("fz_vfs_serve", "the device is still open");
    if (vs.dev)
        vs.dev->close(vs.dev);
    vs.dev = img ? memdev_from_image(img, len, NULL) : memdev_new(NULL);
    free(vs.buf);
    vs.buf = NULL;
}

void fz_vfs_serve_buf(uint8_t **img, size_t *len, size_t *cap)
{
    fz_vfs_serve(NULL, 0);
    vs.dev->close(vs.dev);
    vs.dev = NULL;
    vs.buf = (struct buf_dev *)fz_buf_dev(img, len, cap);
}

struct cow_dev *fz_vfs_dev(void)
{
    return vs.dev;
}

/* ---------------------------------------------------------------------------
 * Reading a database
 */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

int fz_sql_read_all(sqlite3 *db, uint64_t *hash)
{
    sqlite3_stmt *st = NULL, *tabs = NULL;
    uint64_t h = 0xcbf29ce484222325ull;
    int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    if (rc)
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (!r || strcmp(r, "ok") != 0) {
            sqlite3_finalize(st);
            return SQLITE_CORRUPT;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rc;
    rc = sqlite3_prepare_v2(db, "SELECT name FROM sqlite_schema WHERE type='table' ORDER BY name",
                            -1, &tabs, NULL);
    if (rc)
        return rc;
    while ((rc = sqlite3_step(tabs)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(tabs, 0);
        char *sql = sqlite3_mprintf("SELECT * FROM \"%w\"", name ? name : "");
        h = fnv(h, name ? name : "", name ? strlen(name) + 1 : 0);
        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        sqlite3_free(sql);
        if (rc)
            break;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                uint8_t t = (uint8_t)sqlite3_column_type(st, c);
                const void *v = sqlite3_column_blob(st, c);
                h = fnv(h, &t, 1);
                if (v)
                    h = fnv(h, v, (size_t)sqlite3_column_bytes(st, c));
            }
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            break;
        rc = SQLITE_ROW;
    }
    sqlite3_finalize(tabs);
    if (rc != SQLITE_DONE)
        return rc;
    *hash = h;
    return SQLITE_OK;
}

int fz_sql_check(const char *suffix, int flags, uint64_t *hash)
{
    sqlite3 *db = NULL;
    char *uri = sqlite3_mprintf("file:%s?vfs=cow&commit_interval=0&reloc=0%s", fz_vfs_path(),
                                suffix); /* deterministic: no background relocation */
    int rc = sqlite3_open_v2(uri, &db, flags | SQLITE_OPEN_URI, NULL);
    sqlite3_free(uri);
    if (rc == SQLITE_OK)
        rc = fz_sql_read_all(db, hash);
    sqlite3_close_v2(db);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The bases
 */

static void sql(sqlite3 *db, const char *s)
{
    char *err = NULL;
    if (sqlite3_exec(db, s, NULL, NULL, &err) != SQLITE_OK)
        die(s, err);
}

static sqlite3 *sql_open(const char *suffix)
{
    sqlite3 *db = NULL;
    char *uri = sqlite3_mprintf("file:%s?vfs=cow&commit_interval=0&reloc=0%s", fz_vfs_path(),
                                suffix); /* deterministic: no background relocation */
    int rc = sqlite3_open_v2(uri, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
    sqlite3_free(uri);
    if (rc)
        die("open", sqlite3_errmsg(db));
    return db;
}

/* NTX transactions of rows FIRST.. into t (and one row of tx each), some
 * updating and deleting older rows, so that every commit changes what a
 * reader sees. */
static void sql_txns(sqlite3 *db, int first, int ntx, int rows)
{
    char s[512];
    for (int i = 0; i < ntx; i++) {
        int a = first + i * rows;
        snprintf(s, sizeof s,
                 "BEGIN;"
                 "WITH RECURSIVE n(x) AS (SELECT %d UNION ALL SELECT x+1 FROM n WHERE x<%d)"
                 " INSERT INTO t SELECT x, printf('row %%d %%x', x, x*7919),"
                 " CAST(printf('%%.*c', 200 + x%%900, char(65 + x%%26)) AS BLOB) FROM n;"
                 "UPDATE t SET b = b || '+' WHERE a %% 7 = %d;"
                 "DELETE FROM t WHERE a %% 13 = %d AND a < %d;"
                 "INSERT INTO tx VALUES(%d);"
                 "COMMIT;",
                 a, a + rows - 1, i % 7, i % 13, a, first / rows + i);
        sql(db, s);
    }
}

static void sql_schema(sqlite3 *db, const char *journal)
{
    char s[128];
    snprintf(s, sizeof s, "PRAGMA journal_mode=%s", journal);
    sql(db, s);
    sql(db, "PRAGMA synchronous=FULL;"
            "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c BLOB);"
            "CREATE INDEX tb ON t(b);"
            "CREATE TABLE tx(n INTEGER PRIMARY KEY);");
}

static void add_base(struct fz_base **v, size_t *n, const char *name, int crashed)
{
    *v = realloc(*v, (*n + 1) * sizeof **v);
    if (!*v)
        die("out of memory", NULL);
    struct fz_base *b = &(*v)[(*n)++];
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->crashed = crashed;
    b->img = crashed ? memdev_crash_image(vs.dev, &b->len) : memdev_image(vs.dev, &b->len);
    fz_index_base(b);
}

/* A new base: a fresh memdev served, the database opened on it (URI
 * parameters SUFFIX, with the chunk size hint CHUNK bytes unless 0) and
 * given the schema in journal mode JOURNAL_MODE. */
static sqlite3 *new_base_uri(const char *journal_mode, int chunk, const char *suffix)
{
    fz_vfs_serve(NULL, 0);
    sqlite3 *db = sql_open(suffix);
    if (chunk)
        sqlite3_file_control(db, "main", SQLITE_FCNTL_CHUNK_SIZE, &chunk);
    sql_schema(db, journal_mode);
    return db;
}

static sqlite3 *new_base(const char *journal_mode, int chunk)
{
    return new_base_uri(journal_mode, chunk, "");
}

void fz_make_bases(struct fz_base **out, size_t *n)
{
    struct fz_base *v = NULL;
    size_t nb = 0;
    sqlite3 *db, *br;

    /* clean: a rollback-journal database, closed. */
    db = new_base("DELETE", 0);
    sql_txns(db, 1, 6, 40);
    sqlite3_close(db);
    add_base(&v, &nb, "clean", 0);

    /* snap: snapshots and branches, written on both sides, closed. */
    db = new_base("DELETE", 0);
    sql_txns(db, 1, 3, 40);
    sql(db, "PRAGMA cow_snapshot('s1')");
    sql_txns(db, 1000, 2, 40);
    sql(db, "PRAGMA cow_branch('b1')");
    br = sql_open("&branch=b1");
    sql_txns(br, 2000, 2, 30);
    sql(br, "PRAGMA cow_snapshot('s2')");
    sqlite3_close(br);
    sql_txns(db, 3000, 2, 40);
    sqlite3_close(db);
    add_base(&v, &nb, "snap", 0);

    /* wal: WAL, preallocated by a checkpoint's size hint (chunk size),
     * then commits answered by log records; the crash image after the
     * last one.  The WAL copied on write (wal_nodatacow=0): a nodatacow
     * WAL grows in chunks its frames overwrite in place, with no log
     * record and no checksum the store could check. */
    db = new_base_uri("WAL", 65536, "&wal_nodatacow=0");
    sql_txns(db, 1, 4, 40);
    sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    sql(db, "PRAGMA cow_commit"); /* the log areas of a small container hold a few records */
    sql_txns(db, 1000, 4, 20);
    add_base(&v, &nb, "wal", 1);
    sqlite3_close(db);

    /* persist: a persistent rollback journal, commits answered by log
     * records; the crash image after the last one. */
    db = new_base("PERSIST", 0);
    sql_txns(db, 1, 3, 40);
    sql(db, "PRAGMA cow_commit");
    sql_txns(db, 1000, 4, 10);
    add_base(&v, &nb, "persist", 1);
    sqlite3_close(db);

    /* reloc: a snapshot and a branch of the same commit (they share
     * every block), one commit in the branch, then most rows of the live
     * database deleted and the database vacuumed, and a balance of every
     * group that moved blocks, shared ones too: the remap tree holds
     * REMAP_ITEMs and reads go through it (mkbases checks that there are
     * some); closed. */
    db = new_base("DELETE", 0);
    sql_txns(db, 1, 8, 60);
    sql(db, "PRAGMA cow_snapshot('s1')");
    sql(db, "PRAGMA cow_branch('b1')");
    br = sql_open("&branch=b1");
    sql_txns(br, 2000, 1, 10);
    sqlite3_close(br);
    sql_txns(db, 1000, 4, 60);
    sql(db, "DELETE FROM t WHERE a % 5 != 0");
    sql(db, "VACUUM");
    sql(db, "PRAGMA cow_balance=100");
    sqlite3_close(db);
    add_base(&v, &nb, "reloc", 0);
    v[nb - 1].remapped = 1;

    fz_vfs_serve(NULL, 0);
    *out = v;
    *n = nb;
}

void fz_index_base(struct fz_base *b)
{
    static const uint8_t zero[COW_BLOCK_SIZE];
    size_t nblk = b->len / COW_BLOCK_SIZE;
    free(b->blocks);
    free(b->logblocks);
    free(b->metablocks);
    b->blocks = xmalloc(nblk * sizeof *b->blocks);
    b->metablocks = xmalloc(nblk * sizeof *b->metablocks);
    b->nblocks = b->nmetablocks = 0;
    for (size_t i = 0; i < nblk; i++) {
        const uint8_t *blk = b->img + i * COW_BLOCK_SIZE;
        if (memcmp(blk, zero, COW_BLOCK_SIZE) == 0)
            continue;
        b->blocks[b->nblocks++] = (uint32_t)i;
        if (i < COW_SB_COPIES || get32(blk + TB_MAGIC) == COW_TREE_MAGIC ||
            get32(blk + LOG_MAGIC) == COW_LOG_MAGIC)
            b->metablocks[b->nmetablocks++] = (uint32_t)i;
    }
    uint64_t la[2];
    uint32_t lb;
    fz_log_areas(b->img, b->len, la, &lb);
    b->logblocks = xmalloc(2 * (size_t)lb * sizeof *b->logblocks + 1);
    b->nlogblocks = 0;
    for (int k = 0; k < 2; k++)
        for (uint32_t i = 0; la[k] && i < lb; i++)
            if (la[k] / COW_BLOCK_SIZE + i < nblk)
                b->logblocks[b->nlogblocks++] = (uint32_t)(la[k] / COW_BLOCK_SIZE + i);
}

void fz_save_bases(const struct fz_base *b, size_t n, const char *dir)
{
    mkdir(dir, 0755);
    for (size_t i = 0; i < n; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%zu-%s.img", dir, i, b[i].name);
        FILE *f = fopen(p, "wb");
        if (!f || fwrite(b[i].img, 1, b[i].len, f) != b[i].len || fclose(f) != 0)
            die(p, strerror(errno));
    }
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void fz_load_bases(const char *dir, struct fz_base **out, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        die(dir, strerror(errno));
    char *names[64];
    size_t nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nn < 64) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".img") == 0)
            names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    if (nn == 0)
        die(dir, "no *.img bases (make build/fuzz/bases)");
    qsort(names, nn, sizeof *names, name_cmp);
    struct fz_base *v = calloc(nn, sizeof *v);
    for (size_t i = 0; i < nn; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        FILE *f = fopen(p, "rb");
        struct stat sb;
        if (!f || fstat(fileno(f), &sb) != 0)
            die(p, strerror(errno));
        v[i].len = (size_t)sb.st_size;
        v[i].img = xmalloc(v[i].len);
        if (fread(v[i].img, 1, v[i].len, f) != v[i].len)
            die(p, "short read");
        fclose(f);
        const char *dash = strchr(names[i], '-');
        snprintf(v[i].name, sizeof v[i].name, "%.*s", (int)(strlen(dash + 1) - 4), dash + 1);
        fz_index_base(&v[i]);
        free(names[i]);
    }
    *out = v;
    *n = nn;
}

void fz_free_bases(struct fz_base *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(b[i].img);
        free(b[i].blocks);
        free(b[i].logblocks);
        free(b[i].metablocks);
    }
    free(b);
}

const char *fz_bases_dir(void)
{
    static char dir[PATH_MAX];
    const char *env = getenv("FUZZ_BASES");
    if (env && *env)
        return env;
    ssize_t l = readlink("/proc/self/exe", dir, sizeof dir - 8);
    if (l <= 0)
        die("readlink /proc/self/exe", strerror(errno));
    dir[l] = 0;
    char *slash = strrchr(dir, '/');
    strcpy(slash + 1, "bases");
    return dir;
}

/* ---------------------------------------------------------------------------
 * Mutations
 */

void fz_log_areas(const uint8_t *img, size_t len, uint64_t logarea[2], uint32_t *logblocks)
{
    logarea[0] = logarea[1] = 0;
    *logblocks = 0;
    if (len < COW_BLOCK_SIZE)
        return;
    uint64_t a0 = get64(img + SB_LOG_AREA0), a1 = get64(img + SB_LOG_AREA1);
    uint32_t lb = get32(img + SB_LOG_BLOCKS);
    if (lb > 4096)
        return;
    logarea[0] = a0 % COW_BLOCK_SIZE ? 0 : a0;
    logarea[1] = a1 % COW_BLOCK_SIZE ? 0 : a1;
    *logblocks = lb;
}

/* Recomputes the crc of the log record holding block BLK in the area at
 * AREA (LB blocks), if there is one. */
static void fix_log(uint8_t *img, size_t len, uint64_t blk, uint64_t area, uint32_t lb)
{
    uint64_t first = area / COW_BLOCK_SIZE;
    if (!area || blk < first || blk >= first + lb)
        return;
    uint64_t at = first;
    while (at < first + lb && (at + 1) * COW_BLOCK_SIZE <= len) {
        uint8_t *r = img + at * COW_BLOCK_SIZE;
        uint32_t nb = get32(r + LOG_NBLOCKS);
        if (get32(r + LOG_MAGIC) != COW_LOG_MAGIC || nb == 0 || nb > first + lb - at ||
            (at + nb) * COW_BLOCK_SIZE > len)
            return;
        if (blk < at + nb) {
            put32(r + LOG_CSUM, crc32c(0, r + 4, (size_t)nb * COW_BLOCK_SIZE - 4));
            return;
        }
        at += nb;
    }
}

/* Recomputes commit_crc of the superblock at SB from the blocks it lists. */
static void fix_commit_crc(uint8_t *img, size_t len, uint8_t *sb)
{
    if (!(get32(sb + SB_FLAGS) & COW_SB_ONE_FLUSH))
        return;
    uint32_t nr = get32(sb + SB_COMMIT_NRANGES), acc = 0, total = 0;
    if (nr > SB_COMMIT_MAX)
        return;
    for (uint32_t i = 0; i < nr; i++) {
        const uint8_t *e = sb + SB_COMMIT_LIST + (size_t)i * SB_COMMIT_ENTRY;
        uint64_t at = get64(e), nb = get32(e + 8);
        total += (uint32_t)nb;
        if (at % COW_BLOCK_SIZE || nb == 0 || total > COW_ONE_FLUSH_MAX_BLOCKS || at > len ||
            nb * COW_BLOCK_SIZE > len - at)
            return;
        for (uint64_t j = 0; j < nb; j++) {
            uint8_t le[4];
            put32(le, crc32c(0, img + at + j * COW_BLOCK_SIZE, COW_BLOCK_SIZE));
            acc = crc32c(acc, le, 4);
        }
    }
    put32(sb + SB_COMMIT_CRC, acc);
}

void fz_fix_checksums(uint8_t *img, size_t len, uint64_t blk, const uint64_t logarea[2],
                      uint32_t logblocks)
{
    if ((blk + 1) * COW_BLOCK_SIZE > len)
        return;
    uint8_t *b = img + blk * COW_BLOCK_SIZE;
    if (blk >= COW_SB_COPIES && get32(b + TB_MAGIC) == COW_TREE_MAGIC)
        put32(b + TB_CSUM, crc32c(0, b + 4, COW_BLOCK_SIZE - 4));
    for (int k = 0; k < 2; k++)
        fix_log(img, len, blk, logarea[k], logblocks);
    for (int k = 0; k < COW_SB_COPIES && (size_t)(k + 1) * COW_BLOCK_SIZE <= len; k++) {
        uint8_t *sb = img + (size_t)k * COW_BLOCK_SIZE;
        if (get64(sb + SB_MAGIC) != COW_SB_MAGIC)
            continue;
        fix_commit_crc(img, len, sb);
        put32(sb + SB_CSUM, crc32c(0, sb + 4, COW_BLOCK_SIZE - 4));
    }
}

size_t fz_apply(const struct fz_base *bases, size_t n, const uint8_t *data, size_t size,
                int logonly, uint8_t **img, size_t *cap, size_t *len)
{
    size_t bi = size ? (data[0] & 0x7f) % n : 0;
    int fix = size && (data[0] & 0x80);
    const struct fz_base *b = &bases[bi];
    if (*cap < b->len) {
        *img = realloc(*img, b->len);
        if (!*img)
            die("out of memory", NULL);
        *cap = b->len;
    }
    memcpy(*img, b->img, b->len);
    *len = b->len;
    uint64_t la[2];
    uint32_t lb;
    fz_log_areas(b->img, b->len, la, &lb);
    size_t at = 1;
    while (at + 5 <= size) {
        unsigned sel = get16(data + at);
        const uint32_t *cand = logonly ? b->logblocks : sel & 0x8000 ? b->blocks : b->metablocks;
        size_t ncand = logonly ? b->nlogblocks : sel & 0x8000 ? b->nblocks : b->nmetablocks;
        if (ncand == 0)
            break;
        uint64_t blk = cand[(sel & 0x7fff) % ncand];
        size_t off = get16(data + at + 2) % COW_BLOCK_SIZE;
        uint8_t nb = data[at + 4];
        at += 5;
        if (nb >= 0x80) {
            if (blk * COW_BLOCK_SIZE < *len)
                *len = blk * COW_BLOCK_SIZE;
            continue;
        }
        size_t cnt = (size_t)(nb % 32) + 1;
        if (cnt > size - at)
            cnt = size - at;
        if (cnt > COW_BLOCK_SIZE - off)
            cnt = COW_BLOCK_SIZE - off;
        uint64_t pos = blk * COW_BLOCK_SIZE + off;
        if (pos + cnt <= *len) {
            memcpy(*img + pos, data + at, cnt);
            if (fix)
                fz_fix_checksums(*img, *len, blk, la, lb);
        }
        at += cnt;
    }
    return bi;
}

void fz_harness_init(struct fz_harness *h)
{
    memset(h, 0, sizeof *h);
    fz_load_bases(fz_bases_dir(), &h->bases, &h->nbases);
}

size_t fz_harness_apply(struct fz_harness *h, const uint8_t *data, size_t size, int logonly)
{
    size_t len;
    fz_apply(h->bases, h->nbases, data, size, logonly, &h->img, &h->cap, &len);
    return len;
}
