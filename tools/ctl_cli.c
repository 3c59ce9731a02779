/*
 * ctl_cli.c - the command line shared by cowctl's subcommands (ctl_cli.h).
 */
#include "ctl_cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct cli_command *cmd = NULL; /* the subcommand, for messages */
/* --rados POOL/NAME: the container operand names it (COWCTL_RADOS only) */
static const char *rados_spec = NULL;

void cli_set_command(const struct cli_command *c)
{
    cmd = c;
}

void cli_set_rados(const char *spec)
{
    rados_spec = spec;
}

const char *cli_rados(void)
{
    return rados_spec;
}

int cli_is_rados(const char *path)
{
    return rados_spec && path && strcmp(path, rados_spec) == 0;
}

void cli_err(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cowctl: ");
    if (cmd)
        fprintf(stderr, "%s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------ */
/* usage                                                               */
/* ------------------------------------------------------------------ */

static void usage_line(FILE *out, const struct cli_command *c)
{
    fprintf(out, "usage: cowctl %s %s\n", c->name, c->synopsis);
}

int cli_bad_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cowctl: %s%s", cmd ? cmd->name : "", cmd ? ": " : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (cmd)
        usage_line(stderr, cmd);
    else
        fprintf(stderr, "usage: cowctl COMMAND ARGS (cowctl --help lists the commands)\n");
    return 2;
}

int cli_is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

static void show_help(const struct cli_command *c)
{
    usage_line(stdout, c);
    fputc('\n', stdout);
    fputs(c->help, stdout);
}

int cli_parse_args(int argc, char **argv, const char *const *opts, const char **vals,
                   const char **ops, int nops, int *nops_out)
{
    int n = 0, only_ops = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_ops && !strcmp(a, "--")) {
            only_ops = 1;
            continue;
        }
        if (!only_ops && a[0] == '-' && a[1]) {
            if (cli_is_help(a)) {
                show_help(cmd);
                return 1;
            }
            int found = 0;
            for (int o = 0; opts && opts[o]; o++) {
                size_t len = strlen(opts[o]);
                int takes = len && opts[o][len - 1] == '=';
                size_t nlen = takes ? len - 1 : len;
                if (strncmp(a, opts[o], nlen) != 0)
                    continue;
                if (a[nlen] == 0 && !takes) {
                    vals[o] = "1";
                } else if (a[nlen] == 0 && takes) {
                    if (i + 1 >= argc)
                        return cli_bad_usage("option %s needs a value", a);
                    vals[o] = argv[++i];
                } else if (a[nlen] == '=' && takes) {
                    vals[o] = a + nlen + 1;
                } else {
                    continue;
                }
                found = 1;
                break;
            }
            if (!found)
                return cli_bad_usage("unknown option %s", a);
            continue;
        }
        if (n >= nops)
            return cli_bad_usage("unexpected argument '%s'", a);
        ops[n++] = a;
    }
    if (n < nops)
        return cli_bad_usage("missing argument");
    *nops_out = n;
    return 0;
}

/* ------------------------------------------------------------------ */
/* tables                                                              */
/* ------------------------------------------------------------------ */

const char *cli_printable(const char *name, char *buf, size_t len)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && o + 5 <= len; p++) {
        if (*p == '\\')
            o += (size_t)snprintf(buf + o, len - o, "\\\\");
        else if (*p == '\n')
            o += (size_t)snprintf(buf + o, len - o, "\\n");
        else if (*p == '\t')
            o += (size_t)snprintf(buf + o, len - o, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
        else
            buf[o++] = (char)*p;
    }
    buf[o] = 0;
    return buf;
}

void *cli_room_for_one(void *v, size_t n, size_t *cap, size_t esz, int *nomem)
{
    if (n < *cap)
        return v;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *nv = realloc(v, ncap * esz);
    if (nv)
        *cap = ncap;
    else
        *nomem = 1;
    return nv;
}

/* ------------------------------------------------------------------ */
/* the container operand                                               */
/* ------------------------------------------------------------------ */

int cli_check_readable(const char *path)
{
    if (cli_is_rados(path))
        return 0; /* checked when it is opened */
    struct stat st;
    if (stat(path, &st) != 0) {
        cli_err("%s: %s", path, strerror(errno));
        return 1;
    }
    if (!S_ISREG(st.st_mode)) {
        cli_err("%s: not a regular file", path);
        return 1;
    }
    if (access(path, R_OK) != 0) {
        cli_err("%s: %s", path, strerror(errno));
        return 1;
    }
    return 0;
}
