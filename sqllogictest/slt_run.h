/*
 * slt_run.h - the sqllogictest runner's records and files (build/slt,
 * sqllogictest/slt.c): one script file run in a fresh database in a fresh
 * directory, each record (statement, query, conditions, hash-threshold,
 * halt) run and checked as slt.c's file comment says, failures reported,
 * records counted.  Files run one after the other here (run_serial());
 * slt_jobs.h runs them in child processes.
 *
 * Built with -DSLT_RADOS (build/slt_rados), a run through the VFS
 * cow-rados puts each file's database in RADOS (slt.c's file comment).
 */
#ifndef SLT_RUN_H
#define SLT_RUN_H

#include <stddef.h>

#include <sqlite3.h>

#include "slt_script.h"

/* Record counts, per file and in total. */
struct counts {
    long passed, failed, skipped;
    long other_vfs;     /* of skipped: excluded by a VFS name */
};

/* State shared by all files of a run.  Buffers are reused from query to
 * query and from file to file.  The caller zeroes it, sets the fields of
 * the first group, labels and md5 (md5_init()), and releases it with
 * runner_free(). */
struct runner {
    const char *vfs;        /* VFS name, NULL for the default */
    const char *vfs_name;   /* the VFS used: vfs, or the default's name */
    int verbose;
    const char *tmpdir;     /* parent of the per-file directories */

    struct md5 md5;         /* fetched once */
    struct values res;      /* actual values of the current query */
    char *sql;              /* SQL of the current record */
    size_t cap_sql;
    const char **exp;       /* expected values of the current query */
    size_t cap_exp;
    struct labels *labels;  /* malloc'd, zeroed; owned */

    /* current file */
    struct script *s;
    sqlite3 *db;
    int hash_threshold;
    int halted;             /* line where the file stopped, 0 if none */
    const char *halt_why;   /* "halt" or why it stopped */
    long nreported;         /* failure lines written to stderr */
    struct counts c;
    struct counts *live;    /* if set, c is copied here after each record
                             * (shared with the parent of a child) */
};

/* Runs script PATH in a new database DIR/test.db (DIR must exist and is
 * left for the caller to remove), prints the file's summary line on
 * stdout and leaves its counts in r->c.  Returns 0, or -1 if the script
 * could not be read or the database could not be set up (reported on
 * stderr; the counts are then those of the records run, if any). */
int run_file(struct runner *r, const char *path, const char *dir);

/* Runs the N files in this process, one after the other, each in a
 * directory of its own (make_dir(), remove_dir()).  Adds their counts to
 * *TOTAL.  Returns 0, or -1 if any input could not be run. */
int run_serial(struct runner *r, char **files, size_t n,
               struct counts *total);

/* Creates a new empty directory under r->tmpdir; its name is written to
 * DIR (SIZE bytes).  Returns 0, or -1 after reporting the error. */
int make_dir(const struct runner *r, char *dir, size_t size);

/* Removes directory DIR and the files in it (SQLite and the VFSes create
 * no subdirectories).  A DIR that no longer exists is not an error.
 * Returns 0, or -1 after reporting what could not be removed. */
int remove_dir(const char *dir);

/* Adds the counts C to *TOTAL. */
void add_counts(struct counts *total, const struct counts *c);

/* Frees what R holds (buffers, labels, the MD5 context), not R. */
void runner_free(struct runner *r);

#endif
