/*
 * slt_jobs.c - the sqllogictest runner's parallel runs (slt_jobs.h).
 */
#include "slt_jobs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "slt_util.h"

/* Written by a child into memory shared with the parent. */
struct file_result {
    struct counts c;
    int rc;                 /* run_file()'s result */
};

/* A file of a parallel run, as seen by the parent. */
struct job {
    pid_t pid;              /* child running it, 0 when not running */
    FILE *out, *err;        /* the child's stdout and stderr (tmpfile) */
    char dir[PATH_MAX];     /* its database directory, "" if none */
    int state;              /* JOB_* */
    int wstatus;            /* from waitpid() */
};

enum { JOB_PENDING, JOB_RUNNING, JOB_DONE, JOB_FAILED_START };

/* Most files whose output waits to be printed (two open files each). */
#define MAX_JOBS_AHEAD 128

/* Starts the child running file K of FILES.  On failure the job is left
 * in JOB_FAILED_START after reporting why. */
static void start_job(struct runner *r, char **files, size_t k,
                      struct job *j, struct file_result *res)
{
    j->state = JOB_FAILED_START;
    j->out = tmpfile();
    j->err = tmpfile();
    if (!j->out || !j->err) {
        fprintf(stderr, "slt: tmpfile: %s\n", strerror(errno));
        return;
    }
    if (make_dir(r, j->dir, sizeof j->dir) != 0) {
        j->dir[0] = 0;
        return;
    }
    fflush(stdout);
    fflush(stderr);
    j->pid = fork();
    if (j->pid < 0) {
        fprintf(stderr, "slt: fork: %s\n", strerror(errno));
        j->pid = 0;
        return;
    }
    if (j->pid == 0) {
        /* The child: output goes to the job's files, the parent replays
         * it in file order.  _exit: nothing of the parent's to clean. */
        if (dup2(fileno(j->out), STDOUT_FILENO) < 0 ||
            dup2(fileno(j->err), STDERR_FILENO) < 0)
            _exit(EXIT_USAGE);
        r->live = &res[k].c;
        res[k].rc = run_file(r, files[k], j->dir);
        res[k].c = r->c;
        fflush(stdout);
        fflush(stderr);
        _exit(EXIT_PASS);
    }
    j->state = JOB_RUNNING;
}

/* Copies the contents of F to OUT, then closes F. */
static void replay(FILE *f, FILE *out)
{
    char buf[65536];
    size_t n;

    if (!f)
        return;
    rewind(f);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, out);
    fclose(f);
}

/* Prints the output of finished job J (file PATH) and adds its counts
 * to *TOTAL.  A child that died counts as one failed record.  Returns 0,
 * or -1 if the file could not be run. */
static int finish_job(struct job *j, const char *path,
                      const struct file_result *res, struct counts *total)
{
    int rc = 0;

    fflush(stdout);
    replay(j->err, stderr);
    fflush(stderr);
    replay(j->out, stdout);
    j->out = j->err = NULL;
    if (j->state == JOB_FAILED_START) {
        rc = -1;
    } else if (!WIFEXITED(j->wstatus) || WEXITSTATUS(j->wstatus) != 0) {
        if (WIFSIGNALED(j->wstatus))
            fprintf(stderr, "slt: %s: worker killed by signal %d\n", path,
                    WTERMSIG(j->wstatus));
        else
            fprintf(stderr, "slt: %s: worker exited with status %d\n",
                    path, WEXITSTATUS(j->wstatus));
        printf("%s: crashed after %ld passed, %ld failed, %ld skipped\n",
               path, res->c.passed, res->c.failed, res->c.skipped);
        add_counts(total, &res->c);
        total->failed++;
    } else {
        add_counts(total, &res->c);
        if (res->rc != 0)
            rc = -1;
    }
    fflush(stdout);
    return rc;
}

int run_parallel(struct runner *r, char **files, size_t n, int jobs,
                 struct counts *total)
{
    struct file_result *res = MAP_FAILED;
    struct job *job = NULL;
    size_t next_start = 0, next_print = 0, k;
    int running = 0, rc = 0;

    job = calloc(n, sizeof *job);
    if (!job)
        die_nomem();
    /* Counts come back through shared memory; fresh pages are zero. */
    res = mmap(NULL, n * sizeof *res, PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (res == MAP_FAILED) {
        fprintf(stderr, "slt: mmap: %s\n", strerror(errno));
        rc = -1;
        goto out;
    }

    while (next_print < n) {
        pid_t pid;
        int wstatus;

        while (running < jobs && next_start < n &&
               next_start < next_print + MAX_JOBS_AHEAD) {
            start_job(r, files, next_start, &job[next_start], res);
            if (job[next_start].state == JOB_RUNNING)
                running++;
            next_start++;
        }
        if (running > 0) {
            pid = waitpid(-1, &wstatus, 0);
            if (pid < 0) {
                if (errno == EINTR)
                    continue;
                fprintf(stderr, "slt: waitpid: %s\n", strerror(errno));
                rc = -1;
                goto out;
            }
            for (k = next_print; k < next_start; k++) {
                if (job[k].state == JOB_RUNNING && job[k].pid == pid) {
                    job[k].state = JOB_DONE;
                    job[k].wstatus = wstatus;
                    running--;
                    break;
                }
            }
        }
        while (next_print < next_start &&
               job[next_print].state != JOB_RUNNING) {
            struct job *j = &job[next_print];

            if (j->dir[0] && remove_dir(j->dir) != 0)
                rc = -1;
            if (finish_job(j, files[next_print], &res[next_print],
                           total) != 0)
                rc = -1;
            next_print++;
        }
    }
out:
    /* Only reached early on a waitpid failure: reap what is left. */
    for (k = next_print; k < next_start; k++) {
        if (job[k].state == JOB_RUNNING)
            waitpid(job[k].pid, NULL, 0);
        if (job[k].dir[0])
            remove_dir(job[k].dir);
        if (job[k].out)
            fclose(job[k].out);
        if (job[k].err)
            fclose(job[k].err);
    }
    if (res != MAP_FAILED)
        munmap(res, n * sizeof *res);
    free(job);
    return rc;
}

