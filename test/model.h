/*
 * model.h - the model test of snapshots and branches (model_run.c, whose
 * top comment says what it does): where it runs (struct model_target: the
 * cow VFS on a container file, check_model.c; cow-rados on a container in
 * RADOS, check_rados.c), the model's databases (the live one, snapshots and
 * branches, with the content each must hold) and its connections, their
 * operations' building blocks, and the comparisons of the container with
 * the model.  model.c holds the model; model_run.c the operations and the
 * test.
 */
#ifndef COW_MODEL_H
#define COW_MODEL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define NKEYS 300         /* keys 0 .. NKEYS-1 */
#define NCONN 3           /* connections to the live database */
#define NXCONN 3          /* connections whose main database is another */
#define NALL (NCONN + NXCONN)
#define SPILL_CONN 2      /* the one with a 10-page cache */
#define MAX_ATT 4         /* ATTACHed databases a connection keeps */
#define MAX_SUBVOLS 14    /* snapshots and branches alive at most */
#define NOPS 3000         /* operations per run (on a container file) */
#define CHECK_EVERY 100   /* operations between full comparisons */
#define VAL_MAX 100000000 /* values are made from numbers below this */
#define LOGN 40           /* operations kept for a failure report */
#define LOGLEN 1024

#define LIVE 0 /* the model's index of the live database */


/* How a snapshot operation is asked for. */
enum { VIA_PRAGMA, VIA_API, VIA_PATH };

/* One database of the model: the live one (index 0), a snapshot or a
 * branch. */
struct mdb {
    char name[256]; /* "" for the live database */
    int kind;       /* 0 (live), COWVFS_SNAPSHOT or COWVFS_BRANCH */
    int source;     /* the index it was made from */
    int alive;      /* 0 once deleted */
    unsigned att;   /* bit c: open on connection c (ATTACHed, or its main one) */
    int wal;        /* its header says WAL mode (else rollback) */
    int val[NKEYS]; /* committed content: key k holds valstr(val[k]); -1 absent */
};

/*
 * Where the model test runs: a VFS and one container of it, which the test
 * creates (it must not exist) and leaves behind for the caller to remove.
 * The container functions of include/cowvfs.h (cowvfs_container_*) take
 * PATH as they are, so that a snapshot by path is one of either kind.
 */
struct model_target {
    const char *vfs;  /* "cow", or COWVFS_RADOS_NAME; registered by the caller */
    const char *path; /* the container: a file path for "cow" (starting with
                       * '/'), POOL/NAME for "cow-rados"; URI-safe, as it is
                       * put in URIs as it is */
    /* Fails the test (Check) unless container PATH, which no connection has
     * open, is clean: fsck with data checksums, the same checker cowctl
     * fsck runs (tools/fsck.h). */
    void (*fsck_clean)(const char *path);
    int nops; /* operations, unless $COW_MODEL_OPS says otherwise */
};

/* Runs the model test (model_run.c) on T: creates T->path through T->vfs,
 * runs T->nops random operations (or $COW_MODEL_OPS) from test_seed(),
 * and fails the test (Check) at the first difference from the model, after
 * printing the seed and the last operations. */
void model_run(const struct model_target *t);

struct model {
    const char *vfs;  /* the target's */
    const char *path; /* the target's */
    void (*fsck_clean)(const char *path);
    uint64_t rs;
    sqlite3 *db[NALL]; /* the first NCONN on the live database, then the others */
    int natt[NALL];   /* databases ATTACHed on each connection */
    int mainof[NALL]; /* each connection's main database, -1 when closed */
    struct mdb *d;    /* every database ever made, in creation order */
    int nd, capd;
    int nsub;         /* snapshots and branches alive */
    int op, nops;
    int counter;      /* for names */
    int trace;
    int before[NKEYS]; /* the target's content before the last restore */
    int before_e;      /* ... and the target, -1 if none */
    char err[1024];   /* the message of the last SQL or snapshot call */
    char log[LOGN][LOGLEN];
};

/* Appends a step to the current operation's entry of the log. */
void mlog(struct model *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Fails the test with the seed and the last operations on stderr. */
_Noreturn void mfail(struct model *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A random integer in [0, N), from the model's PRNG. */
int rnd(struct model *m, int n);
/* The schema of database E on connection C, which has it open: "main" where
 * it is the main database, else its ATTACH name. */
const char *schema(struct model *m, int c, int e, char buf[16]);
/* For messages. */
const char *dname(const struct model *m, int e);
/* NAME cut to 40 bytes for the log (four buffers in turn). */
const char *lname(const char *name);
/* "snapshot", "branch" or "live" for KIND. */
const char *kname(int kind);
/* %-encodes S for a URI into OUT (3 * strlen(S) + 1 bytes). */
void uri_enc(const char *s, char *out);
/* Runs SQL on connection C; the extended result code, message in m->err. */
int run(struct model *m, int c, const char *sql);
/* Runs SQL on connection C; fails the model unless it succeeds. */
void ok(struct model *m, int c, const char *sql);
/* The first column of the first row of SQL on C as text, in OUT. */
void conn_text(struct model *m, int c, const char *sql, char *out, size_t n);
/* A new snapshot or branch NAME of SOURCE, with SOURCE's committed content
 * (the first call: the live database, empty). */
int mdb_new(struct model *m, const char *name, int kind, int source);
/* A random alive snapshot or branch of KIND (0: either) other than NOT; 0
 * (LIVE) if there is none. */
int pick(struct model *m, int kind, int not);
/* A fresh name, now and then one with spaces, non-ASCII UTF-8, 255 bytes,
 * or the name of a deleted database. */
void new_name(struct model *m, int kind, char out[256]);
/* Opens connection C (< NCONN) on the live database, with the mval()
 * function (and a 10-page cache for SPILL_CONN); fails the model if it
 * cannot. */
void conn_open(struct model *m, int c);
/* Opens connection C (one of the last NXCONN) on snapshot or branch E as its
 * main database: snapshot=NAME for a snapshot (read-only whatever the
 * flags say, so now and then READWRITE), branch=NAME for a branch. */
void xconn_open(struct model *m, int c, int e);
/* Closes connection C (it must close) and forgets what it had ATTACHed. */
void conn_close(struct model *m, int c);
/* Closes every connection whose main database is E (all of them for -1). */
void xconn_close_all(struct model *m, int e);
/* ATTACHes snapshot or branch E on connection C as schema "eE". */
void do_attach(struct model *m, int c, int e);
/* DETACHes E from connection C. */
void do_detach(struct model *m, int c, int e);
/* Detaches E everywhere and closes the connections whose main one it is. */
void detach_all(struct model *m, int e);
/* Detaches from C a random database other than KEEP. */
void detach_one(struct model *m, int c, int keep);
/* A random open connection, of either kind. */
int any_conn(struct model *m);
/* A connection with E open: one that has it, else one E is ATTACHed to. */
int open_on(struct model *m, int e);
/* A connection whose main database is E, a snapshot or branch, opening one
 * if none is and a slot is free; else a connection with E open (open_on). */
int main_on(struct model *m, int e);
/* A connection other than C (and AVOID, -1 for none) with E open, ATTACHing
 * E to one if needed. */
int other_on(struct model *m, int e, int c, int avoid);
/* Compares database E, read through connection C, with WANT (the model's
 * content of E, or what a reader inside a transaction must still see). */
void check_vals(struct model *m, int c, int e, const int *want, const char *why);
/* Compares database E, read through connection C, with the model. */
void check_db(struct model *m, int c, int e, const char *why);
/* Compares E through every connection that has it open. */
void check_every_conn(struct model *m, int e, const char *why);
/* Compares E through a connection, ATTACHing it for the while if no
 * connection has it open; with INTEGRITY, runs integrity_check on it too. */
void check_any(struct model *m, int e, int integrity, const char *why);
/* The listing through SQL (cow_snapshots), the C API or by path (WAY 0, 1,
 * 2), compared with the model. */
void check_listing(struct model *m, int way);
/* Every database through every connection that has it open (the others
 * ATTACHed for the while), integrity_check on each, the listing three ways. */
void verify_all(struct model *m);

#endif
