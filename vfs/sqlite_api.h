/*
 * sqlite_api.h - the one way vfs/ reaches SQLite's API.
 *
 * The files of vfs/ are compiled twice (see the Makefile):
 *
 *   - normally, for build/libcowvfs.a, which applications link together
 *     with -lsqlite3: the sqlite3_* calls are ordinary function calls;
 *
 *   - with -DCOWVFS_LOADABLE, for build/cowvfs.so, which is loaded into a
 *     process that already has SQLite (the sqlite3 shell, Python) and is
 *     linked without -lsqlite3: every sqlite3_* call goes through the
 *     sqlite3_api table that SQLite hands to sqlite3_cowvfs_init() (vfs/ext.c
 *     defines that pointer with SQLITE_EXTENSION_INIT1; every other file sees
 *     the extern declaration below).
 *
 * Every file of vfs/ includes this header first and never <sqlite3.h>
 * directly.
 */
#ifndef COWVFS_SQLITE_API_H
#define COWVFS_SQLITE_API_H

#ifdef COWVFS_LOADABLE
#include <sqlite3ext.h>
/*
 * The extension is dlopen()ed RTLD_GLOBAL by SQLite's unix VFS.  Keep our
 * sqlite3_api pointer out of the global symbol namespace so that it can never
 * be interposed by, or interpose on, another extension's pointer of the same
 * name.  (A visibility given at the first declaration also applies to the
 * definition made by SQLITE_EXTENSION_INIT1 in vfs/ext.c.)
 */
#pragma GCC visibility push(hidden)
SQLITE_EXTENSION_INIT3
#pragma GCC visibility pop
#else
#include <sqlite3.h>
#endif

#endif /* COWVFS_SQLITE_API_H */
