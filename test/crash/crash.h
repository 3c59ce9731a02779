/*
 * crash.h - what the files of the crash simulator (build/crash) share:
 *
 *   driver.c     the crash points and states of a run, the workers, main
 *   util.c       hashing, the PRNG, a hash set, failure messages
 *   device.c     the harness state, the simulated device and its op log,
 *                the shadows of the files SQLite writes
 *   shim.c       the shim VFS that records SQLite's writes
 *   workloads.c  the workloads, their model of the database, the record
 *                phase
 *   check.c      the checks of one crash state
 *   attach.c     the attach workloads' second database, and crashfs, the
 *                in-memory "unix" file system that loses unsynced writes
 *
 * driver.c's top comment says how the simulator works.
 */
#ifndef COW_CRASH_H
#define COW_CRASH_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../tools/fsck.h"
#include "bdev.h"
#include "cowvfs.h"
#include "store.h"
#include "../testutil.h"

#define SECTOR 512
#define IMG_RESERVE ((size_t)1 << 32) /* address space reserved for each image */

/* A set of 64-bit keys (0 is never stored: keys are made nonzero). */
struct hset {
    uint64_t *slot;
    size_t cap, n;
};

/* A growing string for failure reports. */
struct msg {
    char *s;
    size_t n, cap;
};

/* The files SQLite writes, by role. */
enum { ROLE_DB, ROLE_JOURNAL, ROLE_WAL, NROLES, ROLE_OTHER = NROLES };
extern const char *const role_store_name[NROLES];

/* One version of a sector or of a file's size: the sector's content hash
 * (or the size) from time T on, until the next version's T.  Times count
 * the shadow's changes (g.vclock). */
struct ver {
    uint64_t h;
    uint64_t t;
};

/* A sector's or a size's versions, oldest first; an empty list means its
 * first value (zeros, size 0) since time 0. */
struct verlist {
    struct ver *v;
    size_t n, cap;
};

/* A file's content as SQLite wrote it (zeros past SIZE), and its history. */
struct shadow {
    uint8_t *buf;
    size_t size, cap;
    struct verlist *sec; /* per sector */
    size_t nsec;
    struct verlist sizes;
    uint64_t maxsize;    /* the largest size it ever had */
};

/* One device operation of the record phase. */
/* OP_PUBLISH: a new container renamed onto its path (bdev's publish).
 * OP_SHRINK: the container cut to a smaller size (relocation). */
/* OP_FS_*: a file of the harness's crashfs ("unix" files, attach.c):
 * a write, a truncate, a sync, a delete (off 1: with its directory synced),
 * a create. */
enum { OP_WRITE, OP_FLUSH, OP_GROW, OP_PUBLISH, OP_SHRINK, OP_FS_WRITE, OP_FS_TRUNC, OP_FS_SYNC,
       OP_FS_DELETE, OP_FS_CREATE };

/* The image of a crash state of one container: a shared mapping of a
 * memfd (fsck reads the same bytes through PATH). */
struct image {
    int memfd;
    char path[64];
    uint8_t *p;
    size_t len;
};
struct op {
    int type;
    int dev;       /* device ops: 0 for g.path's container, 1 for g.path2's;
                    * OP_FS_*: the crashfs file (attach.c) */
    uint64_t off;  /* OP_WRITE: offset; OP_GROW, OP_SHRINK: the new size */
    size_t len;    /* OP_WRITE */
    uint8_t *data; /* OP_WRITE: a copy */
};

struct harness {
    char *dir;               /* temporary directory of the placeholder */
    char path[PATH_MAX];     /* the container path the opener serves */
    struct cow_dev *cur;     /* the device it serves */
    int nopen;               /* stores open on CUR (at most one) */
    char path2[PATH_MAX];    /* the second container (attach workloads) */
    struct cow_dev *cur2;    /* its device */
    int nopen2;
    int recording;           /* record phase: log ops and file writes */
    struct op *ops;          /* the op log */
    size_t nops, capops;
    uint64_t trace;          /* hash of every op's type, offset and length */
    struct shadow shadow[NROLES];
    uint64_t vclock;         /* changes of the shadows so far */
    uint64_t nwrites[NROLES]; /* SQLite's writes to each file so far (record phase) */
    size_t *mut_op;          /* mut_op[t]: ops logged when change t began */
    size_t capmut;
    uint64_t zero_hash;      /* hash of a sector of zeros */
    sqlite3_vfs *cow;        /* the VFS the shim forwards to */
    uint64_t vfs_rng;        /* the shim's xRandomness */
    char lastlog[1024];      /* the last sqlite3_log message */
    int verbose;
    struct image im[2];      /* the crash state being checked (ramdevs[i]) */
    double secs[5];          /* CPU time spent: T_* */
    long snapchecks;         /* snapshots and branches opened and read */
    long either[2];          /* ones that may or may not exist: [0] absent, [1] there */
    long usagechecks;        /* snapshots and branches whose space was compared
                              * with a balance's record (check_usage) */
    const char *argv0;       /* for the replay line */
};
extern struct harness g;

enum { T_RECORD, T_FSCK, T_DATA, T_SQLITE, T_GEN };

/* A set of times: sorted, disjoint intervals [a, b). */
struct tset {
    struct ver *iv; /* h = a, t = b */
    size_t n, cap;
};

enum { JM_DELETE, JM_TRUNCATE, JM_PERSIST, JM_WAL };
extern const char *const jm_name[];
enum { SY_NORMAL = 1, SY_FULL = 2, SY_EXTRA = 3 };
extern const char *const sy_name[];

struct workload {
    const char *name;
    int journal;         /* JM_* at the start */
    int sync;            /* SY_* at the start */
    int page_size;
    const char *vacuum;  /* auto_vacuum */
    int cache_size;      /* pages: a small cache makes SQLite spill mid-transaction */
    int mixed;           /* switches journal mode and synchronous as it goes */
    int big;             /* rows 6 times as large: the container grows and shrinks */
    int chunk;           /* SQLITE_FCNTL_CHUNK_SIZE in bytes (0: none): SIZE_HINT
                          * preallocates in these units, written in place */
    int snaps;           /* percent of steps that make or delete a snapshot or
                          * branch (0: none; see wl_snap) */
    int huge;            /* every HUGE-th transaction (0: none) writes more than
                          * COW_ONE_FLUSH_MAX_BLOCKS of data: its commit takes
                          * the two-flush path (store/commit.c commit_transaction) */
    int attach;          /* ATT_*: a second database, written by every
                          * transaction (attach.c) */
    int reloc;           /* weight of PRAGMA cow_balance among the other
                          * steps (0: none; the background relocator is
                          * off in every run, which must be deterministic) */
    int handoff;         /* weight of PRAGMA cow_test_handoff among the other
                          * steps (0: none): the ownership handed to another
                          * process that changes nothing, and back (issue
                          * 15): a publication, then a reload as a new owner */
};

/* The second database of an attach workload: none, another cow container,
 * a unix database (a file of the harness's crashfs), or a unix main
 * database with the cow container attached to it. */
enum { ATT_NONE, ATT_COW, ATT_UNIX, ATT_UNIX_MAIN };

#define NT 6 /* tables t0..t5 */

struct mrow {
    int64_t id;
    uint64_t h; /* row hash (row_hash) */
};

struct mtable {
    int exists;
    unsigned idx; /* bit 0: index i<t>a exists, bit 1: i<t>b */
    int64_t next_id;
    struct mrow *rows; /* sorted by id */
    size_t n, cap;
    uint64_t sum; /* sum of the row hashes */
};

/* The database after one transaction, as the checks compare it. */
struct snap {
    uint8_t exists[NT], idx[NT];
    uint64_t count[NT], sum[NT];
};

/* The space one snapshot or branch references, as cowvfs_container_list
 * reports it (cow_subvol_usage): bytes only it references, bytes it
 * shares with the live database or other snapshots and branches. */
struct usage {
    int listed;          /* 0: not in the listing (the rest is 0) */
    long long exclusive, shared;
};

enum { STEP_TXN, STEP_OTHER };
struct step {
    int kind;
    char what[96];  /* what it did */
    size_t start;   /* ops logged when it began */
    size_t ret;     /* ops logged when it returned */
    int txn;        /* STEP_TXN: its number (row n of tx) */
    int durable;    /* STEP_TXN: its COMMIT returned durably */
    uint64_t size_before; /* a balance: the container's size when it began
                           * (0: not a balance) */
    int usage_k;          /* a balance: the last transaction committed when it
                           * began */
    struct usage *usage;  /* a balance: the space of each snapshot and branch
                           * when it began, indexed as run.recs (nusage of
                           * them, the records made by then) */
    size_t nusage;
    size_t committed;     /* a balance: the op of the flush that made its first
                           * commit durable (with it, everything before the
                           * balance), SIZE_MAX: none */
};

/* The device ops of one snapshot operation: ops [start, ret) are its own,
 * and op durable - 1 is its last flush (SIZE_MAX: none).  start ==
 * SIZE_MAX: it never ran. */
struct opspan {
    size_t start, ret, durable;
};

/*
 * One snapshot or branch the workload made, maybe deleted later.  It holds
 * one fixed committed state, the database after transaction K, whatever
 * happened to the live database afterwards, so a crash state that has it
 * must hold exactly WANT in it.
 */
struct snaprec {
    char name[16];       /* "s<i>" or "b<i>", i its index in run.recs */
    char source[16];     /* what it was made of: "" for the live database */
    int kind;            /* COWVFS_SNAPSHOT or COWVFS_BRANCH */
    int k;               /* it holds the database after transaction k */
    int live_k;          /* the live database's last committed transaction then */
    int in_txn;          /* 0; 1 made inside a write transaction; 2 one that had
                          * written the db file (rollback) or WAL frames */
    struct snap want;    /* the model after transaction k */
    struct opspan made;  /* the operation that made it */
    struct opspan gone;  /* the one that deleted it */
};

/* One run of one workload with one seed. */
/* The second database of an attach workload after one transaction. */
struct asnap {
    uint64_t count, sum;
};

struct run {
    const struct workload *w;
    uint64_t seed;
    uint64_t rng;
    sqlite3 *db;
    int jm, sy;
    struct mtable t[NT];
    int ntxn;             /* transactions committed */
    struct snap *snaps;   /* snaps[k + 1]: after transaction k; snaps[0]: empty */
    struct step *steps;
    size_t nsteps, capsteps;
    struct snaprec *recs; /* every snapshot and branch made, in order */
    size_t nrecs, caprecs;
    int nlive;            /* recs not deleted */
    int ndeletes, nintxn, nspilled; /* counts for the run's summary */
    int nbalances;        /* PRAGMA cow_balance steps so far */
    int failed;           /* the record phase failed */
    char errbuf[512];
    const char *cs;       /* the cow database's schema in statements that would
                           * go to main: "" or, for ATT_UNIX_MAIN, "c." */
    struct mtable aux;    /* attach workloads: table aux.a */
    struct asnap *aux_snaps; /* aux_snaps[k + 1]: aux.a after transaction k */
};

struct state {
    long number;           /* K of --state K */
    size_t point;          /* ops [0, point) happened */
    const char *kind;      /* how the pending writes were chosen */
    size_t nunits, kept, torn, nsizes, kept_sizes;
    int app_crash;         /* every pending write kept (an application crash) */
    int unpublished;       /* a new container not yet at its path: no container */
};

/* The bounds on the transaction a crash state may hold. */
struct bounds {
    int kmax;        /* last transaction begun */
    int kmin;        /* last whose COMMIT returned durably (or at all, app crash),
                      * or committed before a snapshot whose making returned */
    int kmin_step;   /* its step, or -1 if a snapshot's making raised kmin */
    int kmin_rec;    /* that snapshot (index in run.recs), or -1 */
    int inflight;    /* the step in flight at the crash point, or -1 */
};

enum { REC_ABSENT, REC_EITHER, REC_PRESENT };

/* The devices of a crash state: ramdevs[i].dev serves the image g.im[i]. */
struct ramdev {
    struct cow_dev dev; /* first */
    int i;
};
extern struct ramdev ramdevs[2];
extern sqlite3_vfs shimVfs;       /* "crashshim" */
extern const struct workload workloads[];
extern const size_t nworkloads;
#define NWORKLOADS nworkloads

/* util.c */
uint64_t mix64(uint64_t z);
uint64_t hash_bytes(const void *p, size_t n, uint64_t h);
uint64_t rnd(uint64_t *s);
uint64_t rnd_below(uint64_t *s, uint64_t n);
int pick_weighted(uint64_t *s, const int *weight, int n);
void hset_clear(struct hset *h);
void hset_free(struct hset *h);
int hset_add(struct hset *h, uint64_t k);
void *xrealloc(void *p, size_t n);
void msg_add(struct msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* device.c */
double now_secs(void);
void log_cb(void *arg, int code, const char *msg);
int img_resize(int i, uint64_t size);
int crash_opener(void *arg, const char *path, int flags, struct cow_dev **out, int *created);
void oplog_add(int dev, int type, uint64_t off, size_t len, const void *data);
uint64_t sector_hash(const uint8_t *sec);
void shadow_write(int role, const void *buf, size_t n, uint64_t off, size_t start);
void shadow_truncate(int role, uint64_t size, size_t start);
void shadow_free(struct shadow *sh);
void tset_add(struct tset *s, uint64_t a, uint64_t b);
int tset_match(const struct tset *in, const struct verlist *l, uint64_t h, int is_size,
                      struct tset *out);
int tset_match_range(const struct tset *in, const struct verlist *l, uint64_t lo, uint64_t hi,
                     int is_size, struct tset *out);

/* shim.c */
void shim_register(void);

/* workloads.c */
int durable(int jm, int sy);
int64_t row_ck(int t, int64_t id, int64_t txn, int64_t k, const void *pad, size_t n);
uint64_t row_hash(int t, int64_t id, int64_t txn, int64_t k, const void *pad, size_t n,
                         int64_t ck);
int64_t tx_tag(int64_t n);
const struct snaprec *rec_find(const struct run *r, const char *name);
void run_free(struct run *r);
int run_fail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int exec(struct run *r, const char *sql);
int execf(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t row_find(const struct mtable *t, int64_t id, int *found);
void record_reset(void);
int record(struct run *r, const struct workload *w, uint64_t seed, int ntxn);

/* check.c */
int span_done(const struct opspan *o, const struct state *s);
int rec_expect(const struct snaprec *rec, const struct state *s);
void bounds_at(const struct run *r, const struct state *s, struct bounds *b);
void span_describe(struct msg *m, const char *what, const struct opspan *o);
int check_state(const struct run *r, const struct state *s, struct msg *m);


/* attach.c */
void crashfs_register(void);
void crashfs_unregister(void);
void crashfs_reset(void);
void crashfs_replay_begin(void);
void crashfs_replay_op(const struct op *o);
uint64_t crashfs_crash(uint64_t *rng, int app_crash, size_t *ndiff);
void crashfs_replay_end(void);
int aux_attach(struct run *r);
int aux_txn(struct run *r, int k);
void aux_take(struct run *r);
char *aux_uri(const struct run *r);
int check_aux(const struct run *r, sqlite3 *db, int k, struct msg *m);

#endif
