/*
 * attach.c - the crash simulator's attach workloads (see driver.c):
 * every transaction writes the cow database and a second, ATTACHed one
 * (schema "aux"), so that each COMMIT is a multi-database commit with a
 * super-journal, and after every crash both databases must hold the same
 * transaction (all of it or none of it).  The second database is another
 * cow container (ATT_COW, device 1 of the op log) or a unix database
 * (ATT_UNIX): a file of crashfs.  ATT_UNIX_MAIN turns the latter around:
 * the workload's connection opens the unix database and ATTACHes the cow
 * one (issue 12's reproducer).  With a unix database, the checks recover
 * it first, on its own, in half of the states (check.c): it sees the
 * cow database's journal only through the journal mirror beside the
 * container (vfs/vfs_mirror.c).
 *
 * CRASHFS.  The default VFS of the harness's process (so that cow's
 * default VFS is this one too: the super-journals of a cow main database
 * are its files, vfs.c SUPER-JOURNALS), standing for unix: every named file
 * under the harness's directory lives in memory, other files (temporary
 * ones) go to the real unix VFS.  In the record phase each write, truncate,
 * sync, delete and create is logged in the op log (OP_FS_*).  The crash
 * phase replays them into a model of what the file system holds (CUR) and
 * what survives a power loss (DUR): xSync makes a file's content and its
 * existence durable (unix syncs the directory at a journal's first sync);
 * xDelete with syncDir removes it durably, without only from CUR until the
 * next such directory sync.  A crash state keeps, for each file at random,
 * its CUR or its DUR (an application crash keeps every CUR), and crashfs
 * then serves those files to the checks (recovery writes them).
 */
#include "crash.h"

#define FS_MAXFILES 64

/* One crashfs file in memory. */
struct fsbuf {
    int exists;
    uint8_t *p;
    size_t len, cap;
};

/* Files by index (op.dev of OP_FS_*): NAMES is kept for the crash phase. */
static struct {
    char *names[FS_MAXFILES];
    int n;
    struct fsbuf live[FS_MAXFILES]; /* what crashfs serves now */
    struct fsbuf cur[FS_MAXFILES];  /* crash phase: the file system's view */
    struct fsbuf dur[FS_MAXFILES];  /* ... and what a power loss keeps */
    sqlite3_vfs *unix;
} fs;

static void buf_set(struct fsbuf *b, const struct fsbuf *from)
{
    b->exists = from->exists;
    if (from->len > b->cap) {
        b->cap = from->len;
        b->p = xrealloc(b->p, b->cap);
    }
    if (from->len)
        memcpy(b->p, from->p, from->len);
    b->len = from->len;
}

/* Makes room for N bytes in B. */
static void buf_reserve(struct fsbuf *b, size_t n)
{
    if (n > b->cap) {
        b->cap = n * 2;
        b->p = xrealloc(b->p, b->cap);
    }
}

static void buf_write(struct fsbuf *b, const void *data, size_t n, uint64_t off)
{
    buf_reserve(b, (size_t)off + n);
    if (off > b->len)
        memset(b->p + b->len, 0, (size_t)off - b->len);
    memcpy(b->p + off, data, n);
    if (off + n > b->len)
        b->len = (size_t)(off + n);
}

static void buf_truncate(struct fsbuf *b, uint64_t size)
{
    if (size > b->len) {
        buf_reserve(b, (size_t)size);
        memset(b->p + b->len, 0, (size_t)size - b->len);
    }
    b->len = (size_t)size;
}

/* The index of file NAME (added if new), or -1 if NAME is not ours. */
static int fs_index(const char *name)
{
    size_t n = strlen(g.dir);
    if (!name || strncmp(name, g.dir, n) != 0 || name[n] != '/' || strcmp(name, g.path) == 0 ||
        strcmp(name, g.path2) == 0)
        return -1;
    for (int i = 0; i < fs.n; i++)
        if (strcmp(fs.names[i], name) == 0)
            return i;
    if (fs.n == FS_MAXFILES) {
        fprintf(stderr, "crash: crashfs: more than %d files\n", FS_MAXFILES);
        exit(2);
    }
    fs.names[fs.n] = strdup(name);
    memset(&fs.live[fs.n], 0, sizeof fs.live[fs.n]);
    return fs.n++;
}

static void fs_log(int i, int type, uint64_t off, size_t len, const void *data)
{
    if (g.recording)
        oplog_add(i, type, off, len, data);
}

/* ---- crashfs files ---- */

typedef struct FsFile {
    sqlite3_file base; /* first */
    int i;             /* index in fs */
    int dirsync;       /* unix's UNIXFILE_DIRSYNC: a journal's or super-journal's
                        * first sync syncs its directory */
} FsFile;

static int fsClose(sqlite3_file *f)
{
    (void)f;
    return SQLITE_OK;
}

static int fsRead(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    struct fsbuf *b = &fs.live[((FsFile *)f)->i];
    size_t have = (uint64_t)off < b->len ? b->len - (size_t)off : 0;
    if (have > (size_t)n)
        have = (size_t)n;
    if (have)
        memcpy(buf, b->p + off, have);
    if (have < (size_t)n) {
        memset((char *)buf + have, 0, (size_t)n - have);
        return SQLITE_IOERR_SHORT_READ;
    }
    return SQLITE_OK;
}

static int fsWrite(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    int i = ((FsFile *)f)->i;
    buf_write(&fs.live[i], buf, (size_t)n, (uint64_t)off);
    fs_log(i, OP_FS_WRITE, (uint64_t)off, (size_t)n, buf);
    return SQLITE_OK;
}

static int fsTruncate(sqlite3_file *f, sqlite3_int64 size)
{
    int i = ((FsFile *)f)->i;
    buf_truncate(&fs.live[i], (uint64_t)size);
    fs_log(i, OP_FS_TRUNC, (uint64_t)size, 0, NULL);
    return SQLITE_OK;
}

static int fsSync(sqlite3_file *f, int flags)
{
    (void)flags;
    fs_log(((FsFile *)f)->i, OP_FS_SYNC, 0, 0, NULL);
    return SQLITE_OK;
}

static int fsFileSize(sqlite3_file *f, sqlite3_int64 *pSize)
{
    *pSize = (sqlite3_int64)fs.live[((FsFile *)f)->i].len;
    return SQLITE_OK;
}

/* One connection at a time: locks always succeed. */
static int fsLock(sqlite3_file *f, int e)
{
    (void)f;
    (void)e;
    return SQLITE_OK;
}

static int fsCheckReservedLock(sqlite3_file *f, int *pRes)
{
    (void)f;
    *pRes = 0;
    return SQLITE_OK;
}

static int fsFileControl(sqlite3_file *f, int op, void *pArg)
{
    (void)f;
    (void)op;
    (void)pArg;
    return SQLITE_NOTFOUND;
}

static int fsSectorSize(sqlite3_file *f)
{
    (void)f;
    return 512;
}

/* What unix claims on a common Linux file system: nothing. */
static int fsDeviceCharacteristics(sqlite3_file *f)
{
    (void)f;
    return 0;
}

static const sqlite3_io_methods fsIo = {
    .iVersion = 1,
    .xClose = fsClose,
    .xRead = fsRead,
    .xWrite = fsWrite,
    .xTruncate = fsTruncate,
    .xSync = fsSync,
    .xFileSize = fsFileSize,
    .xLock = fsLock,
    .xUnlock = fsLock,
    .xCheckReservedLock = fsCheckReservedLock,
    .xFileControl = fsFileControl,
    .xSectorSize = fsSectorSize,
    .xDeviceCharacteristics = fsDeviceCharacteristics,
};

static int fsOpen(sqlite3_vfs *v, const char *zName, sqlite3_file *f, int flags, int *pOut)
{
    (void)v;
    int i = fs_index(zName);
    if (i < 0)
        return fs.unix->xOpen(fs.unix, zName, f, flags, pOut);
    FsFile *p = (FsFile *)f;
    memset(p, 0, sizeof *p);
    if (!fs.live[i].exists) {
        if (!(flags & SQLITE_OPEN_CREATE))
            return SQLITE_CANTOPEN;
        fs.live[i].exists = 1;
        fs.live[i].len = 0;
        fs_log(i, OP_FS_CREATE, 0, 0, NULL);
    } else if ((flags & SQLITE_OPEN_EXCLUSIVE) && (flags & SQLITE_OPEN_CREATE)) {
        return SQLITE_CANTOPEN;
    }
    p->i = i;
    p->base.pMethods = &fsIo;
    if (pOut)
        *pOut = flags;
    return SQLITE_OK;
}

static int fsDelete(sqlite3_vfs *v, const char *zName, int syncDir)
{
    (void)v;
    int i = fs_index(zName);
    if (i < 0)
        return fs.unix->xDelete(fs.unix, zName, syncDir);
    if (!fs.live[i].exists)
        return SQLITE_IOERR_DELETE_NOENT;
    fs.live[i].exists = 0;
    fs.live[i].len = 0;
    fs_log(i, OP_FS_DELETE, syncDir != 0, 0, NULL);
    return SQLITE_OK;
}

static int fsAccess(sqlite3_vfs *v, const char *zName, int flags, int *pRes)
{
    (void)v;
    int i = fs_index(zName);
    if (i < 0)
        return fs.unix->xAccess(fs.unix, zName, flags, pRes);
    *pRes = fs.live[i].exists;
    return SQLITE_OK;
}

static int fsFullPathname(sqlite3_vfs *v, const char *zName, int nOut, char *zOut)
{
    (void)v;
    return fs.unix->xFullPathname(fs.unix, zName, nOut, zOut);
}

static int fsRandomness(sqlite3_vfs *v, int n, char *z)
{
    (void)v;
    return fs.unix->xRandomness(fs.unix, n, z);
}

static int fsSleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return fs.unix->xSleep(fs.unix, us);
}

static int fsCurrentTime(sqlite3_vfs *v, double *t)
{
    (void)v;
    return fs.unix->xCurrentTime(fs.unix, t);
}

static int fsGetLastError(sqlite3_vfs *v, int n, char *z)
{
    (void)v;
    return fs.unix->xGetLastError(fs.unix, n, z);
}

static sqlite3_vfs fsVfs = {
    1,                /* iVersion */
    0,                /* szOsFile (set in crashfs_register) */
    0,                /* mxPathname */
    0,                /* pNext */
    "crashfs",        /* zName */
    0,                /* pAppData */
    fsOpen,           /* xOpen */
    fsDelete,         /* xDelete */
    fsAccess,         /* xAccess */
    fsFullPathname,   /* xFullPathname */
    0,                /* xDlOpen */
    0,                /* xDlError */
    0,                /* xDlSym */
    0,                /* xDlClose */
    fsRandomness,     /* xRandomness */
    fsSleep,          /* xSleep */
    fsCurrentTime,    /* xCurrentTime */
    fsGetLastError,   /* xGetLastError */
    0,                /* xCurrentTimeInt64 */
    0,                /* xSetSystemCall */
    0,                /* xGetSystemCall */
    0,                /* xNextSystemCall */
};

void crashfs_register(void)
{
    fs.unix = sqlite3_vfs_find("unix");
    if (!fs.unix) {
        fprintf(stderr, "crash: no unix VFS\n");
        exit(2);
    }
    fsVfs.szOsFile = fs.unix->szOsFile > (int)sizeof(FsFile) ? fs.unix->szOsFile
                                                              : (int)sizeof(FsFile);
    fsVfs.mxPathname = fs.unix->mxPathname;
    sqlite3_vfs_register(&fsVfs, 1);
}

void crashfs_unregister(void)
{
    sqlite3_vfs_unregister(&fsVfs);
}

/* Forgets every file (a new record phase). */
void crashfs_reset(void)
{
    for (int i = 0; i < fs.n; i++) {
        free(fs.names[i]);
        free(fs.live[i].p);
        free(fs.cur[i].p);
        free(fs.dur[i].p);
    }
    memset(fs.names, 0, sizeof fs.names);
    memset(fs.live, 0, sizeof fs.live);
    memset(fs.cur, 0, sizeof fs.cur);
    memset(fs.dur, 0, sizeof fs.dur);
    fs.n = 0;
}

/* ---- the crash phase ---- */

/* Starts the replay: no file exists. */
void crashfs_replay_begin(void)
{
    for (int i = 0; i < fs.n; i++) {
        fs.cur[i].exists = fs.dur[i].exists = 0;
        fs.cur[i].len = fs.dur[i].len = 0;
    }
}

/* A directory sync: every file's existence as the file system sees it
 * becomes durable (a file that exists keeps its durable content, which
 * its own syncs made). */
static void dir_sync(void)
{
    for (int i = 0; i < fs.n; i++) {
        if (!fs.cur[i].exists)
            fs.dur[i].exists = 0, fs.dur[i].len = 0;
        else
            fs.dur[i].exists = 1;
    }
}

/* Applies OP_FS_* op O to the replay. */
void crashfs_replay_op(const struct op *o)
{
    struct fsbuf *c = &fs.cur[o->dev];
    switch (o->type) {
    case OP_FS_CREATE:
        c->exists = 1;
        c->len = 0;
        break;
    case OP_FS_WRITE:
        buf_write(c, o->data, o->len, o->off);
        break;
    case OP_FS_TRUNC:
        buf_truncate(c, o->off);
        break;
    case OP_FS_SYNC:
        buf_set(&fs.dur[o->dev], c);
        dir_sync();
        break;
    default: /* OP_FS_DELETE */
        c->exists = 0;
        c->len = 0;
        if (o->off)
            dir_sync();
        break;
    }
}

/*
 * Sets up the files of a crash state: each file that differs between the
 * file system's view and what a power loss keeps gets one of them at
 * random (APP_CRASH: always the view).  Returns a signature of the choice;
 * *NDIFF is how many files differed.
 */
uint64_t crashfs_crash(uint64_t *rng, int app_crash, size_t *ndiff)
{
    uint64_t sig = 0;
    *ndiff = 0;
    for (int i = 0; i < fs.n; i++) {
        const struct fsbuf *c = &fs.cur[i], *d = &fs.dur[i];
        int same = c->exists == d->exists && c->len == d->len &&
                   (c->len == 0 || memcmp(c->p, d->p, c->len) == 0);
        int use_cur = 1;
        if (!same) {
            (*ndiff)++;
            use_cur = app_crash || rnd_below(rng, 2);
            sig = mix64(sig ^ mix64((uint64_t)i * 2 + (uint64_t)use_cur));
        }
        buf_set(&fs.live[i], use_cur ? c : d);
    }
    return sig;
}

/* The crash phase is over: crashfs serves nothing from it. */
void crashfs_replay_end(void)
{
    for (int i = 0; i < fs.n; i++)
        fs.live[i].exists = 0, fs.live[i].len = 0;
}

/* ---- the second database: its workload and its check ---- */

/* The URI of the second database (sqlite3_free()). */
char *aux_uri(const struct run *r)
{
    if (r->w->attach == ATT_COW)
        return sqlite3_mprintf("file:%s?vfs=%s&commit_interval=0&reloc=0", g.path2,
                               g.recording ? "crashshim" : "cow");
    return sqlite3_mprintf("file:%s/aux.db?vfs=crashfs", g.dir);
}

/* ATTACHes the second database to the workload's connection as aux, in
 * the connection's journal mode and synchronous level; for ATT_UNIX_MAIN,
 * the cow database as c to the unix one. */
int aux_attach(struct run *r)
{
    char *uri = r->w->attach == ATT_UNIX_MAIN
                    ? sqlite3_mprintf("file:%s?vfs=crashshim&commit_interval=0&reloc=0", g.path)
                    : aux_uri(r);
    const char *as = r->w->attach == ATT_UNIX_MAIN ? "c" : "aux";
    int rc = execf(r, "ATTACH '%s' AS %s; PRAGMA %s.journal_mode=%s; PRAGMA %s.synchronous=%s",
                   uri, as, as, jm_name[r->jm], as, sy_name[r->sy]);
    sqlite3_free(uri);
    return rc;
}

/* The schema of the second database in the workload's statements. */
static const char *aux_schema(const struct run *r)
{
    return r->w->attach == ATT_UNIX_MAIN ? "main" : "aux";
}

/* The checksum and hash of a row of aux.a (row_ck, row_hash of table 100). */
#define AUX_T 100

/* Transaction K's writes to the second database: the tables at K = 0,
 * then a few rows inserted, sometimes some deleted, and row K of aux.atx
 * (added by the caller's INSERT INTO tx ... in the same transaction). */
int aux_txn(struct run *r, int k)
{
    struct mtable *t = &r->aux;
    const char *as = aux_schema(r);
    if (k == 0 && execf(r, "CREATE TABLE %s.a(id INTEGER PRIMARY KEY, txn INTEGER, pad BLOB,"
                           " ck INTEGER); CREATE TABLE %s.atx(n INTEGER PRIMARY KEY, tag INTEGER)",
                        as, as))
        return 1;
    if (t->n && rnd_below(&r->rng, 5) == 0) {
        size_t a = (size_t)rnd_below(&r->rng, t->n), len = 1 + (size_t)rnd_below(&r->rng, 6);
        size_t b = a + len < t->n ? a + len : t->n;
        if (execf(r, "DELETE FROM %s.a WHERE id BETWEEN %" PRId64 " AND %" PRId64, as,
                  t->rows[a].id, t->rows[b - 1].id))
            return 1;
        for (size_t i = a; i < b; i++)
            t->sum -= t->rows[i].h;
        memmove(&t->rows[a], &t->rows[b], (t->n - b) * sizeof *t->rows);
        t->n -= b - a;
    }
    int nins = 1 + (int)rnd_below(&r->rng, 4);
    for (int i = 0; i < nins; i++) {
        size_t n = 8 + (size_t)rnd_below(&r->rng, 900);
        uint8_t *pad = xrealloc(NULL, n);
        for (size_t j = 0; j < n; j++)
            pad[j] = (uint8_t)rnd(&r->rng);
        int64_t id = ++t->next_id;
        int64_t ck = row_ck(AUX_T, id, k, 0, pad, n);
        sqlite3_stmt *st = NULL;
        char *sql = sqlite3_mprintf("INSERT INTO %s.a(id, txn, pad, ck) VALUES(?,?,?,?)", as);
        int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
        sqlite3_free(sql);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_int64(st, 2, k);
            sqlite3_bind_blob(st, 3, pad, (int)n, SQLITE_STATIC);
            sqlite3_bind_int64(st, 4, ck);
            rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        }
        sqlite3_finalize(st);
        uint64_t h = row_hash(AUX_T, id, k, 0, pad, n, ck);
        free(pad);
        if (rc != SQLITE_OK)
            return run_fail(r, "INSERT INTO aux.a: %s (last log: %s)", sqlite3_errmsg(r->db),
                            g.lastlog);
        if (t->n == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 64;
            t->rows = xrealloc(t->rows, t->cap * sizeof *t->rows);
        }
        t->rows[t->n].id = id; /* ids only grow: appended in order */
        t->rows[t->n].h = h;
        t->n++;
        t->sum += h;
    }
    return execf(r, "INSERT INTO %s.atx(n, tag) VALUES(%d, %lld)", as, k,
                 (long long)tx_tag(k) ^ 0x5a5a);
}

/* Records aux.a after the transaction just committed. */
void aux_take(struct run *r)
{
    r->aux_snaps[r->ntxn].count = r->aux.n;
    r->aux_snaps[r->ntxn].sum = r->aux.sum;
}

/*
 * Checks the second database, ATTACHed as aux to DB after the crash, when
 * the main database holds transaction K: integrity_check, then aux.atx
 * must hold rows 0..K exactly (a multi-database transaction is in both
 * databases or in neither), and aux.a every row of the model after K,
 * each with its checksum.  Returns 0, or 1 with M set.
 */
int check_aux(const struct run *r, sqlite3 *db, int k, struct msg *m)
{
    sqlite3_stmt *st = NULL;
    int bad = 0, rc;
    const char *ic = NULL;
    rc = sqlite3_prepare_v2(db, "PRAGMA aux.integrity_check", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        ic = (const char *)sqlite3_column_text(st, 0);
    if (!ic || strcmp(ic, "ok") != 0) {
        msg_add(m, "aux: integrity_check: %s (last log: %s)\n", ic ? ic : sqlite3_errmsg(db),
                g.lastlog);
        sqlite3_finalize(st);
        return 1;
    }
    sqlite3_finalize(st);
    int has = 0;
    rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM aux.sqlite_schema WHERE name='atx'", -1,
                            &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        has = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    int ka = -1;
    if (has) {
        rc = sqlite3_prepare_v2(db, "SELECT n, tag FROM aux.atx ORDER BY n", -1, &st, NULL);
        while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
            int64_t n = sqlite3_column_int64(st, 0);
            if (n != ka + 1 || sqlite3_column_int64(st, 1) != (tx_tag(n) ^ 0x5a5a)) {
                msg_add(m, "aux: atx holds row %" PRId64 " where row %d belongs\n", n, ka + 1);
                bad = 1;
                break;
            }
            ka++;
        }
        sqlite3_finalize(st);
    }
    if (ka != k) {
        msg_add(m, "aux: the attached database holds txn %d, the main database txn %d: a "
                   "transaction over both is in one and not in the other\n",
                ka, k);
        return 1;
    }
    if (ka < 0)
        return bad;
    uint64_t count = 0, sum = 0;
    rc = sqlite3_prepare_v2(db, "SELECT id, txn, pad, ck FROM aux.a", -1, &st, NULL);
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0), txn = sqlite3_column_int64(st, 1);
        const void *pad = sqlite3_column_blob(st, 2);
        size_t n = (size_t)sqlite3_column_bytes(st, 2);
        int64_t ck = sqlite3_column_int64(st, 3);
        if (!pad)
            pad = "";
        if (row_ck(AUX_T, id, txn, 0, pad, n) != ck && !bad) {
            msg_add(m, "aux: row %" PRId64 " (txn %" PRId64 ") fails its checksum\n", id, txn);
            bad = 1;
        }
        count++;
        sum += row_hash(AUX_T, id, txn, 0, pad, n, ck);
    }
    sqlite3_finalize(st);
    const struct asnap *want = &r->aux_snaps[ka + 1];
    if (count != want->count || sum != want->sum) {
        msg_add(m, "aux: atx says txn %d, but aux.a holds %" PRIu64 " rows%s (the model: %" PRIu64
                   "): a transaction half there\n",
                ka, count, count == want->count ? ", different ones" : "", want->count);
        bad = 1;
    }
    return bad;
}
