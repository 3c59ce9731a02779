/*
 * progress.c - the progress line of cowctl's long commands (progress.h).
 */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define BAR 24 /* characters of the bar */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* BYTES in human units into BUF (N bytes). */
static const char *human(char *buf, size_t n, double bytes)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
    return buf;
}

const char *progress_format(char *buf, size_t n, const char *what, uint64_t done,
                            uint64_t total, uint64_t bytes, double secs)
{
    char b[32], r[32], bar[BAR + 1];
    if (done > total)
        done = total;
    int pct = total ? (int)(done * 100 / total) : 0;
    int fill = total ? (int)(done * BAR / total) : 0;
    for (int i = 0; i < BAR; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR] = 0;
    human(b, sizeof b, (double)bytes);
    human(r, sizeof r, secs > 0 ? (double)bytes / secs : 0);
    if (total)
        snprintf(buf, n, "%s %3d%% [%s] %s  %s/s", what, pct, bar, b, r);
    else
        snprintf(buf, n, "%s %s  %s/s", what, b, r);
    return buf;
}

static void draw(struct progress *p, double t)
{
    char line[160];
    progress_format(line, sizeof line, p->what, p->done, p->total, p->bytes, t - p->t0);
    fprintf(stderr, "\r%s\033[K", line); /* \033[K: erase what a longer line left */
    fflush(stderr);
    p->last = t;
}

void progress_begin(struct progress *p, const char *what)
{
    p->what = what;
    p->on = isatty(STDERR_FILENO);
    p->t0 = now_s();
    p->last = 0;
    p->done = p->total = p->bytes = 0;
}

void progress_update(struct progress *p, uint64_t done, uint64_t total, uint64_t bytes)
{
    p->done = done;
    p->total = total;
    p->bytes = bytes;
    if (!p->on)
        return;
    double t = now_s();
    if (t - p->last >= 0.1)
        draw(p, t);
}

void progress_end(struct progress *p)
{
    if (!p->on || p->last == 0)
        return;
    draw(p, now_s());
    fputc('\n', stderr);
}
