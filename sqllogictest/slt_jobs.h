/*
 * slt_jobs.h - the sqllogictest runner's parallel runs (build/slt
 * --jobs N, sqllogictest/slt.c): each file runs in a child process
 * (fork) whose output is printed in file order once it is done; a child
 * that crashes counts as one more failed record of its file.
 */
#ifndef SLT_JOBS_H
#define SLT_JOBS_H

#include <stddef.h>

#include "slt_run.h"

/* Runs the N files in up to JOBS child processes at a time, printing
 * each file's output in FILES order.  Adds the counts to *TOTAL.
 * Returns 0, or -1 if any input could not be run (reported on stderr). */
int run_parallel(struct runner *r, char **files, size_t n, int jobs,
                 struct counts *total);

#endif
