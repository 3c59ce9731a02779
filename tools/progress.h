/*
 * progress.h - the progress line of cowctl's long commands (import, export)
 * on a terminal: what, percent done, a bar, bytes, rate.
 *
 * Drawn on stderr, and only when stderr is a terminal (as git and rsync
 * do); a redirected or piped stderr gets nothing, so scripts and logs see
 * only the commands' results.  Redrawn at most every 100 ms, with a
 * carriage return; progress_end() draws the final state and a newline.
 */
#ifndef COW_PROGRESS_H
#define COW_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

struct progress {
    const char *what; /* the command, e.g. "import" (not copied) */
    int on;           /* stderr is a terminal */
    double t0, last;  /* CLOCK_MONOTONIC seconds: start, last drawn */
    uint64_t done, total, bytes;
};

/* Starts a progress line for WHAT (a string that outlives P). */
void progress_begin(struct progress *p, const char *what);
/* DONE of TOTAL units (pages, blocks) done, BYTES moved so far; redraws if
 * 100 ms passed since the last drawing.  TOTAL 0: no percentage. */
void progress_update(struct progress *p, uint64_t done, uint64_t total, uint64_t bytes);
/* Draws the last state and ends the line (nothing if nothing was drawn). */
void progress_end(struct progress *p);
/* The text of a progress line, without carriage return or newline, in BUF
 * (N bytes): "WHAT  PCT% [bar] BYTES RATE", SECS seconds since the start.
 * Returns BUF. */
const char *progress_format(char *buf, size_t n, const char *what, uint64_t done,
                            uint64_t total, uint64_t bytes, double secs);

#endif
