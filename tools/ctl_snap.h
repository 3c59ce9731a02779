/*
 * ctl_snap.h - cowctl's snapshot, branch, restore, delete and list
 * (tools/cowctl.c): the snapshots and branches of a container, through
 * the VFS's container API (cowvfs_container_*, include/cowvfs.h), which
 * makes each snapshot at a transaction boundary (a hot journal left by a
 * crash is rolled back in the copy, never in the source).  cowctl holds
 * no connection of its own, so a container another process has open is
 * refused ("in use by another process").
 *
 * Each command is a cli_command's run function (ctl_cli.h): it takes the
 * arguments after its name and returns cowctl's exit status (0 success,
 * 1 failure after "cowctl: CMD: PATH: why" on stderr, 2 bad usage); its
 * help text is the command's --help.
 */
#ifndef COW_CTL_SNAP_H
#define COW_CTL_SNAP_H

/* cowctl snapshot PATH NAME [--from SOURCE]: read-only copy NAME of the
 * database (or of snapshot or branch SOURCE). */
int ctl_snap_snapshot(int argc, char **argv);
extern const char ctl_snap_snapshot_help[];

/* cowctl branch PATH NAME [--from SOURCE]: writable copy NAME of the
 * database (or of SOURCE). */
int ctl_snap_branch(int argc, char **argv);
extern const char ctl_snap_branch_help[];

/* cowctl restore PATH NAME [--into BRANCH]: the database (or branch
 * BRANCH) reset to snapshot or branch NAME. */
int ctl_snap_restore(int argc, char **argv);
extern const char ctl_snap_restore_help[];

/* cowctl delete PATH NAME: snapshot or branch NAME deleted. */
int ctl_snap_delete(int argc, char **argv);
extern const char ctl_snap_delete_help[];

/* cowctl list PATH: the snapshots and branches, oldest first, one a line
 * on stdout (name, kind, creation time in UTC, source, exclusive and
 * shared bytes). */
int ctl_snap_list(int argc, char **argv);
extern const char ctl_snap_list_help[];

#endif
