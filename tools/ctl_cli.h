/*
 * ctl_cli.h - what every cowctl subcommand (tools/cowctl.c) shares of
 * the command line: the command it runs, its messages ("cowctl: CMD:
 * why" on stderr), its options and operands (parse_args), its container
 * operand (a file, or with --rados the container POOL/NAME), and the
 * pieces of its tables (names made printable, arrays grown one entry at
 * a time).
 *
 * The state (the running command, the --rados container) is set once by
 * main before the command runs; cowctl runs one command per process.
 */
#ifndef COW_CTL_CLI_H
#define COW_CTL_CLI_H

#include <stddef.h>

/* A subcommand: cowctl NAME ARGS runs RUN(argc, argv) with the arguments
 * after NAME; it returns the exit status (0 success, 1 failure, 2 bad
 * usage).  SYNOPSIS follows "usage: cowctl NAME"; HELP is its --help. */
struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *synopsis;
    const char *help;
};

/* C is the command that runs (it must outlive the process): its name
 * prefixes messages, its synopsis follows usage errors, its help answers
 * --help.  Before this is called, messages name no command. */
void cli_set_command(const struct cli_command *c);

/* SPEC (POOL/NAME, kept, not copied) is the --rados container: an
 * operand equal to it names a container in RADOS (cowctl --rados). */
void cli_set_rados(const char *spec);

/* The --rados container (cli_set_rados()'s SPEC), NULL without --rados. */
const char *cli_rados(void);

/* 1 if PATH (may be NULL) is the --rados container, else 0. */
int cli_is_rados(const char *path);

/* Prints "cowctl: CMD: " and the message FMT on stderr, with a newline. */
__attribute__((format(printf, 1, 2))) void cli_err(const char *fmt, ...);

/* Bad arguments: prints the message FMT and a usage line on stderr;
 * returns 2, the exit status of bad usage. */
__attribute__((format(printf, 1, 2))) int cli_bad_usage(const char *fmt, ...);

/* 1 if argument A asks for help (--help, -h), else 0. */
int cli_is_help(const char *a);

/*
 * Splits ARGV (after the command name) into options and operands.  Each
 * option in OPTS ("--name" or "-x"; "=" suffix: takes a value) sets its
 * slot in VALS ("1" for flags, the value otherwise).  Operands go to OPS
 * (at most NOPS; *NOPS_OUT gets the count).  Returns 0, 1 if --help was
 * given (help shown), or 2 after a usage error.  VALS and OPS point into
 * ARGV.
 */
int cli_parse_args(int argc, char **argv, const char *const *opts, const char **vals,
                   const char **ops, int nops, int *nops_out);

/* Room for a snapshot or branch name (at most 255 bytes) as cli_printable()
 * writes it: 4 bytes per byte, and the terminator. */
#define CLI_PRINTABLE_MAX (4 * 255 + 1)

/*
 * NAME as a table shows it: control bytes and backslashes escaped (\n, \t,
 * \\, \xNN), so that no name can break a line or forge a column.  Written
 * to BUF (LEN bytes: CLI_PRINTABLE_MAX holds any valid name; a longer
 * result is cut); returns BUF.
 */
const char *cli_printable(const char *name, char *buf, size_t len);

/*
 * Room for one more element in the array V of N elements of ESZ bytes, of
 * capacity *CAP (16 first, then doubled).  Returns the array (perhaps
 * moved; *CAP updated), or NULL when out of memory (V is then unchanged
 * and *NOMEM set).  The list callbacks (ls, df, list) collect their
 * entries with it; the caller frees the array.
 */
void *cli_room_for_one(void *v, size_t n, size_t *cap, size_t esz, int *nomem);

/* 0 if PATH is a regular file we can read (or the --rados container,
 * checked when it is opened); else prints why and returns 1. */
int cli_check_readable(const char *path);

#endif
