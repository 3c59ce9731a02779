/*
 * bench/speedtest1/main.c - SQLite's own benchmark, speedtest1, with the
 * cow VFS registered: make bench-speedtest1 (README "More tests and
 * measurements") compiles the speedtest1.c of a SQLite source tree, which
 * the project does not carry, with its main() renamed speedtest1_main, and
 * links it with this file and libcowvfs.a.
 *
 *   build/speedtest1 [--cow] SPEEDTEST1-OPTIONS DATABASE
 *
 * --cow (first argument only) makes cow the default VFS, so that every
 * version of speedtest1 opens DATABASE through it; without it cow is
 * registered but the default stays unix (a speedtest1 with --vfs can still
 * name cow).  Exits 1 if cow cannot be registered, else with speedtest1's
 * status.
 */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "cowvfs.h"

/* speedtest1.c's main(), renamed by the Makefile (-Dmain=speedtest1_main). */
int speedtest1_main(int argc, char **argv);

int main(int argc, char **argv)
{
    int as_default = argc > 1 && strcmp(argv[1], "--cow") == 0;
    int rc = cowvfs_register(as_default);

    if (rc != SQLITE_OK) {
        fprintf(stderr, "speedtest1: cannot register the cow VFS: %s\n", sqlite3_errstr(rc));
        return 1;
    }
    if (as_default) {
        argv[1] = argv[0];
        return speedtest1_main(argc - 1, argv + 1);
    }
    return speedtest1_main(argc, argv);
}
