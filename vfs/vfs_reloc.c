/*
 * vfs_reloc.c - giving space back: PRAGMA cow_balance, and the knobs of the
 * store's background relocator (store/relocator.c) as pragmas and URI
 * parameters.
 *
 *   PRAGMA cow_balance             relocates now (cow_store_balance) the
 *   PRAGMA cow_balance=PERCENT     block groups of the schema's container
 *                                  at most PERCENT full (default
 *                                  COW_BALANCE_DEFAULT_USAGE); one row:
 *                                  "groups=N bytes_moved=N
 *                                  container_before=N container_after=N"
 *   PRAGMA cow_reloc[=on|off]      the relocator on (1) or off (0)
 *   PRAGMA cow_reloc_slack[=PCT]   it starts when the container's slack
 *                                  passes PCT percent of it (0..100)
 *   PRAGMA cow_reloc_rate[=MIBS]   it moves at most MIBS MiB per second
 *                                  (0: no limit)
 *
 * Each knob is the container's (the store's), so it holds for every
 * connection to it; without a value the pragma reads it back, with one it
 * sets it and returns the new value.  The URI parameters reloc=0|1,
 * reloc_slack=PCT and reloc_rate=MIBS set the same at open (vfs.c,
 * cowApplyUriParams).  A read-only container never relocates; its knobs
 * can still be read and set.
 *
 * Locking: a knob is read and changed under the container's mutex
 * (cowContainer.mutex), so that two connections setting different knobs
 * at once both take effect; the store's lock is taken inside it (the lock
 * order, vfs.c).  PRAGMA cow_balance holds no VFS lock while it runs.
 */
#include "sqlite_api.h"

#include "vfs_int.h"

/* Largest rate a pragma or URI parameter takes, MiB/s (1 TiB/s). */
#define COWVFS_RELOC_RATE_MAX 1048576u

/* Parses Z, decimal digits only, as an integer in 0..MAX into *PV;
 * returns 0, or -1 if Z is anything else. */
static int cowParseUint(const char *z, sqlite3_uint64 max, sqlite3_uint64 *pV)
{
    sqlite3_uint64 v = 0;
    int n = 0;

    for (; *z >= '0' && *z <= '9'; z++, n++) {
        v = v * 10 + (sqlite3_uint64)(*z - '0');
        if (v > max)
            return -1;
    }
    if (n == 0 || *z != 0)
        return -1;
    *pV = v;
    return 0;
}

/* Parses Z as a boolean the way SQLite's boolean pragmas take one (1, 0,
 * on, off, true, false, yes, no; any case) into *PB; returns 0, or -1 if
 * Z is anything else. */
static int cowParseBool(const char *z, int *pB)
{
    static const char *const azOn[] = { "1", "on", "true", "yes" };
    static const char *const azOff[] = { "0", "off", "false", "no" };
    int i;

    for (i = 0; i < 4; i++) {
        if (sqlite3_stricmp(z, azOn[i]) == 0) {
            *pB = 1;
            return 0;
        }
        if (sqlite3_stricmp(z, azOff[i]) == 0) {
            *pB = 0;
            return 0;
        }
    }
    return -1;
}

/* The relocator knobs (cowRelocKnob). */
enum { COWRELOC_ENABLED, COWRELOC_SLACK, COWRELOC_RATE };

/*
 * Sets knob EKNOB of PCONT's relocator to V (a boolean, a percent or
 * MiB/s, already checked) and returns the knob's value afterwards, in the
 * same unit; with BSET 0 only reads it.  Takes pCont->mutex (and, inside
 * it, the store's lock).
 */
static sqlite3_uint64 cowRelocKnob(cowContainer *pCont, int eKnob, int bSet, sqlite3_uint64 v)
{
    struct cow_reloc_config c;
    sqlite3_uint64 out;

    cowvfsMutexEnter(&pCont->mutex);
    cow_store_get_reloc(pCont->pStore, &c);
    if (bSet) {
        if (eKnob == COWRELOC_ENABLED)
            c.enabled = v != 0;
        else if (eKnob == COWRELOC_SLACK)
            c.slack_pct = (unsigned)v;
        else
            c.rate = v << 20;
        cow_store_set_reloc(pCont->pStore, &c);
    }
    if (eKnob == COWRELOC_ENABLED)
        out = c.enabled != 0;
    else if (eKnob == COWRELOC_SLACK)
        out = c.slack_pct;
    else
        out = c.rate >> 20;
    cowvfsMutexLeave(&pCont->mutex);
    return out;
}

/*
 * Parses ZVAL for knob EKNOB into *PV.  Returns NULL, or what is wrong with
 * it ("not a percent (0..100)", a static string).
 */
static const char *cowRelocParse(int eKnob, const char *zVal, sqlite3_uint64 *pV)
{
    int b;

    if (eKnob == COWRELOC_ENABLED) {
        if (cowParseBool(zVal, &b) != 0)
            return "not a boolean (on, off, 1, 0, true, false, yes, no)";
        *pV = (sqlite3_uint64)b;
    } else if (eKnob == COWRELOC_SLACK) {
        if (cowParseUint(zVal, 100, pV) != 0)
            return "not a percent of the container (0..100)";
    } else if (cowParseUint(zVal, COWVFS_RELOC_RATE_MAX, pV) != 0) {
        return "not a rate in MiB/s (0..1048576; 0: no limit)";
    }
    return 0;
}

/*
 * PRAGMA cow_balance[=PERCENT] on P's container: one balance, its result
 * in *PZOUT.  Errors: SQLITE_ERROR (a bad percent), SQLITE_READONLY (the
 * container is open read-only), SQLITE_NOMEM, or the balance's error,
 * mapped and logged, with its message in *PZOUT.
 */
static int cowBalance(cowFile *p, const char *zName, const char *zVal, char **pzOut)
{
    cowContainer *pCont = p->pInode->pCont;
    struct cow_balance_opts o = { 0 };
    struct cow_balance_result r = { 0 };
    sqlite3_uint64 v = COW_BALANCE_DEFAULT_USAGE;
    int crc;
    int rc = SQLITE_OK;

    if (zVal && cowParseUint(zVal, 100, &v) != 0) {
        *pzOut = sqlite3_mprintf("PRAGMA %s: %s is not a percent of a block group's "
                                 "size (0..100)",
                                 zName, zVal);
        rc = SQLITE_ERROR;
        goto out;
    }
    if (pCont->bReadonly) {
        *pzOut = sqlite3_mprintf("PRAGMA %s: the container %s is open read-only", zName,
                                 pCont->zPath);
        rc = SQLITE_READONLY;
        goto out;
    }
    o.usage_pct = (unsigned)v;
    crc = cow_store_balance(pCont->pStore, &o, &r);
    if (crc != COW_OK) {
        rc = cowvfsError(pCont->pStore, crc, COWVFS_OP_IO, "balance (PRAGMA cow_balance)",
                         p->zPath, 0);
        *pzOut = sqlite3_mprintf("cow_balance: %s", cow_store_last_error(pCont->pStore));
        goto out;
    }
    *pzOut = sqlite3_mprintf("groups=%llu bytes_moved=%llu container_before=%llu "
                             "container_after=%llu",
                             (unsigned long long)r.groups_relocated,
                             (unsigned long long)r.bytes_moved,
                             (unsigned long long)r.container_before,
                             (unsigned long long)r.container_after);
out:
    if (*pzOut == 0)
        rc = SQLITE_NOMEM;
    return rc;
}

/*
 * The pragmas of this file (see the top) on P: SQLITE_NOTFOUND for any
 * other; else SQLITE_OK with the result in *PZOUT, or an error with its
 * message in *PZOUT (both sqlite3_mprintf()ed, freed by SQLite):
 * SQLITE_ERROR for a value that is not valid (the knob is left as it
 * was), and those of cowBalance().
 */
int cowvfsRelocPragma(cowFile *p, const char *zName, const char *zVal, char **pzOut)
{
    static const char *const azKnob[] = { "cow_reloc", "cow_reloc_slack", "cow_reloc_rate" };
    sqlite3_uint64 v = 0;
    const char *zWhy;
    int eKnob;

    if (sqlite3_stricmp(zName, "cow_balance") == 0)
        return cowBalance(p, zName, zVal, pzOut);
    for (eKnob = 0; eKnob < 3; eKnob++)
        if (sqlite3_stricmp(zName, azKnob[eKnob]) == 0)
            break;
    if (eKnob == 3)
        return SQLITE_NOTFOUND;
    if (zVal && (zWhy = cowRelocParse(eKnob, zVal, &v)) != 0) {
        *pzOut = sqlite3_mprintf("PRAGMA %s: %s is %s", zName, zVal, zWhy);
        return *pzOut ? SQLITE_ERROR : SQLITE_NOMEM;
    }
    v = cowRelocKnob(p->pInode->pCont, eKnob, zVal != 0, v);
    *pzOut = sqlite3_mprintf("%llu", (unsigned long long)v);
    return *pzOut ? SQLITE_OK : SQLITE_NOMEM;
}

/*
 * Applies the URI parameters reloc=0|1, reloc_slack=PCT and
 * reloc_rate=MIBS of main database ZNAME (a URI filename) to P's
 * container, as the pragmas do.  A value that is not valid is logged
 * (SQLITE_WARNING, naming the parameter and what it takes) and ignored,
 * as vfs.c does for commit_interval=.
 */
void cowvfsRelocUriParams(cowFile *p, const char *zName)
{
    static const char *const azParam[] = { "reloc", "reloc_slack", "reloc_rate" };
    sqlite3_uint64 v = 0;
    const char *zVal;
    const char *zWhy;
    int eKnob;

    for (eKnob = 0; eKnob < 3; eKnob++) {
        zVal = sqlite3_uri_parameter(zName, azParam[eKnob]);
        if (zVal == 0)
            continue;
        zWhy = cowRelocParse(eKnob, zVal, &v);
        if (zWhy)
            sqlite3_log(SQLITE_WARNING, "cow: open %s: %s=%s ignored (%s)", p->zPath,
                        azParam[eKnob], zVal, zWhy);
        else
            cowRelocKnob(p->pInode->pCont, eKnob, 1, v);
    }
}
