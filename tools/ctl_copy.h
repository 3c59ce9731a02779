/*
 * ctl_copy.h - cowctl import and export (tools/cowctl.c): a database
 * copied into a new container, or out of one into a new ordinary SQLite
 * database (or a new local container), with SQLite's online backup API
 * between the default "unix" VFS and "cow" (with --rados, "cow-rados"),
 * then checked with PRAGMA quick_check.  A copy that fails is removed.
 *
 * Each command is a cli_command's run function (ctl_cli.h): it takes the
 * arguments after its name and returns cowctl's exit status (0 success,
 * 1 failure after "cowctl: CMD: why" on stderr, 2 bad usage); its help
 * text is the command's --help.
 */
#ifndef COW_CTL_COPY_H
#define COW_CTL_COPY_H

/* cowctl import PLAIN.db APP.db: a new container APP.db (refused if it
 * exists) from PLAIN.db, an ordinary database or a local container,
 * which is opened read-only and never written. */
int ctl_copy_import(int argc, char **argv);
extern const char ctl_copy_import_help[];

/* cowctl export [--container] APP.db PLAIN.db: a new ordinary database
 * (or local container) PLAIN.db from the live database of container
 * APP.db, opened read-only; refused if PLAIN.db, or a -wal, -journal or
 * -shm file beside it, exists. */
int ctl_copy_export(int argc, char **argv);
extern const char ctl_copy_export_help[];

#endif
