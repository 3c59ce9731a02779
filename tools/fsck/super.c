/*
 * super.c - pass 1 of the checker: both superblock copies, the one in use,
 * its tree root refs and its log areas (see fsck.c).
 */
#include "fsck_int.h"

/* ------------------------------------------------------------------ */
/* pass 1: superblocks                                                 */
/* ------------------------------------------------------------------ */

/* Where copy SB's commit list starts: byte 168 in version 1 (no
 * prev_generation or prev_log_records), 184 in version 2 (no device_bytes
 * or remap tree), 208 from version 3 on (format.h). */
size_t fsck_sb_commit_list(const uint8_t *sb)
{
    switch (get32(sb + SB_VERSION)) {
    case COW_FORMAT_VERSION_1: return SB_COMMIT_LIST_V1;
    case COW_FORMAT_VERSION_2: return SB_COMMIT_LIST_V2;
    default: return SB_COMMIT_LIST;
    }
}

/* How many entries copy SB's commit list can hold (its version's). */
uint32_t fsck_sb_commit_max(const uint8_t *sb)
{
    switch (get32(sb + SB_VERSION)) {
    case COW_FORMAT_VERSION_1: return SB_COMMIT_MAX_V1;
    case COW_FORMAT_VERSION_2: return SB_COMMIT_MAX_V2;
    default: return SB_COMMIT_MAX;
    }
}

/* Copy SB's device_bytes (bytes): the field from version 3 on; versions 1
 * and 2 have none, their file covers every block group (total_bytes). */
uint64_t fsck_sb_device_bytes(const uint8_t *sb)
{
    return get32(sb + SB_VERSION) >= COW_FORMAT_VERSION ? get64(sb + SB_DEVICE_BYTES)
                                                         : get64(sb + SB_TOTAL_BYTES);
}

/* Whether copy SB names a remap tree (version 3, root reference not all
 * zero). */
int fsck_sb_has_remap(const uint8_t *sb)
{
    return get32(sb + SB_VERSION) >= COW_FORMAT_VERSION &&
           !fsck_all_zero(sb + SB_REMAP_TREE, 16);
}

/* Why copy BUF is not a usable superblock, or NULL if it is.  Format
 * versions 1, 2 and 3 are read (a version-1 copy has no prev_generation,
 * versions 1 and 2 no device_bytes or remap tree). */
const char *fsck_sb_invalid(const uint8_t *buf, int rd, char *why, size_t len)
{
    if (rd == 1)
        return "past the end of the file";
    if (rd > 1) {
        snprintf(why, len, "read error: %s", strerror(rd));
        return why;
    }
    if (get64(buf + SB_MAGIC) != COW_SB_MAGIC)
        return fsck_all_zero(buf, BS) ? "all zero" : "bad magic";
    uint32_t c = fsck_block_csum(buf), s = get32(buf + SB_CSUM);
    if (c != s) {
        snprintf(why, len, "bad checksum (stored 0x%08x, computed 0x%08x)", s, c);
        return why;
    }
    uint32_t ver = get32(buf + SB_VERSION);
    if (ver != COW_FORMAT_VERSION && ver != COW_FORMAT_VERSION_2 &&
        ver != COW_FORMAT_VERSION_1) {
        snprintf(why, len, "format version %u, expected %u, %u or %u", ver,
                 COW_FORMAT_VERSION_1, COW_FORMAT_VERSION_2, COW_FORMAT_VERSION);
        return why;
    }
    if (get32(buf + SB_BLOCK_SIZE) != BS) {
        snprintf(why, len, "block size %u, expected %u", get32(buf + SB_BLOCK_SIZE), BS);
        return why;
    }
    /* as the store: a generation of 2^48 or more would make the next
     * commit's 48-bit root references wrong */
    uint64_t gen = get64(buf + SB_GENERATION);
    uint64_t prev = ver == COW_FORMAT_VERSION_1 ? 0 : get64(buf + SB_PREV_GENERATION);
    if (gen == 0 || gen > COW_MAX_GENERATION || prev >= gen) {
        snprintf(why, len, "generation %" PRIu64 " (previous %" PRIu64 ") out of range 1..%llu",
                 gen, prev, (unsigned long long)COW_MAX_GENERATION);
        return why;
    }
    for (int t = 0; t < T_NSB; t++) {
        if (t == T_REMAP && !fsck_sb_has_remap(buf))
            continue;
        if (get48(buf + sb_root_off[t] + RR_GENERATION) > gen) {
            snprintf(why, len, "%s root reference has generation %" PRIu64 ", past %" PRIu64,
                     class_name[t], get48(buf + sb_root_off[t] + RR_GENERATION), gen);
            return why;
        }
    }
    if (get32(buf + SB_FLAGS) & ~COW_SB_ONE_FLUSH) {
        snprintf(why, len, "flags 0x%x, only 0x%x (one flush) is defined",
                 get32(buf + SB_FLAGS), COW_SB_ONE_FLUSH);
        return why;
    }
    if (get32(buf + SB_COMMIT_NRANGES) > fsck_sb_commit_max(buf)) {
        snprintf(why, len, "commit list of %u entries (maximum %u)",
                 get32(buf + SB_COMMIT_NRANGES), fsck_sb_commit_max(buf));
        return why;
    }
    uint64_t bg = get64(buf + SB_BG_SIZE), total = get64(buf + SB_TOTAL_BYTES);
    if (bg < 64 * BS || bg % BS || bg > (1ull << 34) || total == 0 || total % bg) {
        snprintf(why, len, "block group size %" PRIu64 " or total_bytes %" PRIu64
                           " out of range", bg, total);
        return why;
    }
    uint64_t dev = fsck_sb_device_bytes(buf);
    if (dev % BS || dev < 2 * BS || dev > total) {
        snprintf(why, len, "device_bytes %" PRIu64 " is not a multiple of 4096 in 8192..%" PRIu64
                           " (total_bytes)", dev, total);
        return why;
    }
    /* as the store (sb_invalid): bytes the format leaves zero, in either
     * copy, so that a whole copy with one set is reported as the store
     * refuses it (a copy not in use was not checked before) */
    size_t end = fsck_sb_commit_list(buf); /* by version */
    if (get32(buf + SB_FLAGS) & COW_SB_ONE_FLUSH)
        end += (size_t)get32(buf + SB_COMMIT_NRANGES) * SB_COMMIT_ENTRY;
    else if (!fsck_all_zero(buf + SB_COMMIT_NRANGES, SB_LOG_ID - SB_COMMIT_NRANGES))
        return "a commit list without the one-flush flag";
    if (!fsck_all_zero(buf + SB_LOG_BLOCKS + 4, 4) ||
        (get32(buf + SB_VERSION) != COW_FORMAT_VERSION_1 &&
         !fsck_all_zero(buf + SB_PREV_LOG_RECORDS + 4, 4)) ||
        !fsck_all_zero(buf + end, BS - end))
        return "reserved or unused bytes (124..127, 180..183 or past the commit list) are "
               "not zero";
    return NULL;
}

/*
 * A one-flush superblock (COW_SB_ONE_FLUSH) is only valid if every block of
 * its commit list is on disk: recompute the crc32c of each listed block and
 * the crc over those.  Returns NULL if intact (or not a one-flush commit),
 * else why not.
 */
const char *fsck_sb_commit_torn(const struct cow_fsck_src *src, const uint8_t *sb, char *why,
                                size_t len)
{
    uint64_t fsize = src->size;
    if (!(get32(sb + SB_FLAGS) & COW_SB_ONE_FLUSH))
        return NULL;
    if (fsck_sb_device_bytes(sb) > fsize) {
        /* the container grew in this commit, whose flush did not complete
         * (version 3: the file may be shorter than total_bytes, not than
         * device_bytes; versions 1 and 2: device_bytes is total_bytes) */
        snprintf(why, len, "torn one-flush commit (%s %" PRIu64
                           " is past the end of the file, a grow was lost)",
                 get32(sb + SB_VERSION) >= COW_FORMAT_VERSION ? "device_bytes" : "total_bytes",
                 fsck_sb_device_bytes(sb));
        return why;
    }
    uint32_t n = get32(sb + SB_COMMIT_NRANGES), acc = 0;
    uint64_t total = 0;
    uint8_t blk[BS];
    if (n > fsck_sb_commit_max(sb)) {
        snprintf(why, len, "commit list of %u entries (maximum %u)", n, fsck_sb_commit_max(sb));
        return why;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = sb + fsck_sb_commit_list(sb) + (size_t)i * SB_COMMIT_ENTRY;
        uint64_t at = get64(e), nb = get32(e + 8);
        total += nb;
        if (at % BS || nb == 0 || total > COW_ONE_FLUSH_MAX_BLOCKS || at > fsize ||
            nb * BS > fsize - at) {
            snprintf(why, len, "commit list entry %u [%" PRIu64 ", %" PRIu64 " blocks) is invalid",
                     i, at, nb);
            return why;
        }
        for (uint64_t b = 0; b < nb; b++) {
            if (fsck_read_at(src, blk, BS, at + b * BS) != 0) {
                snprintf(why, len, "cannot read listed block %" PRIu64, at + b * BS);
                return why;
            }
            uint8_t le[4];
            put32(le, crc32c(0, blk, BS));
            acc = crc32c(acc, le, 4);
        }
    }
    if (acc != get32(sb + SB_COMMIT_CRC)) {
        snprintf(why, len, "torn one-flush commit (listed blocks do not match)");
        return why;
    }
    return NULL;
}

static void rootref_get(struct fsck *f, const uint8_t *sb, int cls, unsigned off)
{
    const uint8_t *p = sb + off;
    struct rootref *rr = &f->rr[cls];
    rr->bytenr = get64(p + RR_BYTENR);
    rr->gen = get48(p + RR_GENERATION);
    rr->level = p[RR_LEVEL];
    rr->valid = 0;
    int ok = 1;
    if (rr->bytenr == 0 || rr->bytenr % BS) {
        fsck_problem(f, "superblock: %s root at %" PRIu64 ", not a block address", class_name[cls],
                rr->bytenr);
        ok = 0;
    }
    if (rr->level >= COW_MAX_LEVEL) {
        fsck_problem(f, "superblock: %s root level %u (maximum %u)", class_name[cls], rr->level,
                COW_MAX_LEVEL - 1);
        ok = 0;
    }
    rr->valid = ok;
}

/*
 * Reads and checks the log area fields of superblock SB (the copy in use);
 * OTHER is the other copy (number O) if it is valid, else NULL.  Sets
 * f->have_log when both areas can be accounted and scanned; where they lie
 * (bounds, overlaps, block group type) is checked with the other used space.
 */
static void check_log_areas(struct fsck *f, const uint8_t *sb, const uint8_t *other, int o)
{
    f->log_area[0] = get64(sb + SB_LOG_AREA0);
    f->log_area[1] = get64(sb + SB_LOG_AREA1);
    f->log_blocks = get32(sb + SB_LOG_BLOCKS);
    f->log_id = get64(sb + SB_LOG_ID);
    f->have_log = 0;
    if (get32(sb + SB_LOG_BLOCKS + 4))
        fsck_problem(f, "superblock: bytes 124..127 (after the log area length) are not zero");
    if (other && memcmp(other + SB_LOG_AREA0, sb + SB_LOG_AREA0, SB_UUID - SB_LOG_AREA0))
        fsck_note(f, "superblock copy %d has other log areas (%" PRIu64 ", %" PRIu64 ", %u blocks)",
             o, get64(other + SB_LOG_AREA0), get64(other + SB_LOG_AREA1),
             get32(other + SB_LOG_BLOCKS));
    uint64_t a0 = f->log_area[0], a1 = f->log_area[1];
    uint32_t nb = f->log_blocks;
    if (!a0 && !a1 && !nb) {
        fsck_note(f, "superblock: the container has no log areas");
        return;
    }
    if (!a0 || !a1 || !nb) {
        fsck_problem(f, "superblock: log areas at %" PRIu64 " and %" PRIu64 " of %u blocks: "
                   "either all three are 0 (no log areas) or none is",
                a0, a1, nb);
        f->log_bad = 1;
        return;
    }
    int ok = 1;
    if (f->bg_size && nb > f->bg_size / BS) {
        fsck_problem(f, "superblock: log areas of %u blocks, longer than a block group (%" PRIu64
                   " blocks)",
                nb, f->bg_size / BS);
        ok = 0;
    }
    for (int k = 0; k < COW_SB_COPIES; k++)
        if (f->log_area[k] % BS) {
            fsck_problem(f, "superblock: log area %d at %" PRIu64 ", not a block address", k,
                    f->log_area[k]);
            ok = 0;
        }
    f->have_log = ok;
    f->log_bad = !ok;
}

/*
 * Pass 1: reads both superblock copies, reports what is wrong with each,
 * and takes the one in use into F (generation, sizes, tree root refs, log
 * areas; f->r->sb_copy).  Returns 0 if a superblock was found, 1 if not (a
 * problem was reported and nothing else can be checked).
 */
int fsck_check_superblocks(struct fsck *f)
{
    uint8_t buf[2][BS];
    const char *why[2];
    char whybuf[2][128];
    int valid[2];
    for (int i = 0; i < 2; i++) {
        int rd = fsck_read_at(f->src, buf[i], BS, (uint64_t)i * BS);
        why[i] = fsck_sb_invalid(buf[i], rd, whybuf[i], sizeof(whybuf[i]));
        valid[i] = why[i] == NULL;
        /* as the store: a whole copy (crc matches) with a field out of
         * range is damage, and the store refuses to open */
        if (!valid[i] && !rd && get64(buf[i] + SB_MAGIC) == COW_SB_MAGIC &&
            fsck_block_csum(buf[i]) == get32(buf[i] + SB_CSUM))
            fsck_problem(f, "superblock copy %d is whole (its checksum matches) but invalid: %s; "
                       "the store refuses to open",
                    i, why[i]);
    }
    /* The newest copy may be a torn one-flush commit: then it does not
     * count, and the previous commit (the other copy) is the container. */
    int newest = valid[0] && valid[1]
                     ? (get64(buf[1] + SB_GENERATION) > get64(buf[0] + SB_GENERATION) ? 1 : 0)
                     : (valid[0] ? 0 : 1);
    if (valid[newest]) {
        const char *torn =
            fsck_sb_commit_torn(f->src, buf[newest], whybuf[newest], sizeof(whybuf[newest]));
        if (torn) {
            /* as the store: the other copy must hold the commit the torn
             * one was written after, whole, with at least as many log
             * records as the torn one says were flushed (check_log); a
             * version-1 torn copy names no commit: the other must only be
             * older */
            valid[newest] = 0;
            why[newest] = torn;
            int o2 = 1 - newest;
            int v1 = get32(buf[newest] + SB_VERSION) == COW_FORMAT_VERSION_1;
            uint64_t tgen = get64(buf[newest] + SB_GENERATION);
            uint64_t want = v1 ? 0 : get64(buf[newest] + SB_PREV_GENERATION);
            uint64_t ogen = get64(buf[o2] + SB_GENERATION);
            snprintf(f->sb_rejected, sizeof(f->sb_rejected),
                     "superblock copy %d (generation %" PRIu64 "): %s", newest, tgen, torn);
            if (valid[o2] && !v1 && ogen != want) {
                fsck_problem(f, "superblock copy %d (generation %" PRIu64 ") is torn, and copy %d "
                           "holds generation %" PRIu64 ", not generation %" PRIu64
                           " it was written after",
                        newest, tgen, o2, ogen, want);
                valid[o2] = 0;
                why[o2] = "not the commit the torn copy was written after";
            } else if (valid[o2] && ogen >= tgen) {
                fsck_problem(f, "superblock copy %d (generation %" PRIu64 ") is torn, and copy %d "
                           "holds generation %" PRIu64 ", not an older one",
                        newest, tgen, o2, ogen);
                valid[o2] = 0;
                why[o2] = "not older than the torn copy";
            } else if (valid[o2]) {
                const char *t2 =
                    fsck_sb_commit_torn(f->src, buf[o2], whybuf[o2], sizeof(whybuf[o2]));
                if (t2) {
                    fsck_problem(f, "superblock copy %d: %s, and copy %d: %s; generation %" PRIu64
                               " was flushed, so that is damage",
                            newest, torn, o2, t2, ogen);
                    valid[o2] = 0;
                    why[o2] = t2;
                }
            } else if (want) {
                fsck_problem(f, "superblock copy %d (generation %" PRIu64 ") is torn, and copy %d, "
                           "which must hold generation %" PRIu64 ", is damaged (%s)",
                        newest, tgen, o2, want, why[o2]);
            }
            f->replay_min = v1 ? 0 : get32(buf[newest] + SB_PREV_LOG_RECORDS);
            f->replay_min_gen = tgen;
        } else if (!valid[1 - newest] && get64(buf[1 - newest] + SB_MAGIC) == COW_SB_MAGIC) {
            snprintf(f->sb_rejected, sizeof(f->sb_rejected), "superblock copy %d: %s",
                     1 - newest, why[1 - newest]);
        }
    }
    if (!valid[0] && !valid[1]) {
        if (f->fsize == 0)
            fsck_problem(f, "no valid superblock: the file is empty");
        else
            fsck_problem(f, "no valid superblock (copy 0: %s; copy 1: %s): not a cowvfs container",
                    why[0], why[1]);
        return 1;
    }
    int c;
    if (valid[0] && valid[1])
        c = get64(buf[1] + SB_GENERATION) > get64(buf[0] + SB_GENERATION) ? 1 : 0;
    else
        c = valid[0] ? 0 : 1;
    const uint8_t *sb = buf[c];
    int o = 1 - c;
    f->gen = get64(sb + SB_GENERATION);
    f->r->sb_copy = c;
    f->r->generation = f->gen;

    if (!valid[o]) {
        fsck_note(f, "superblock copy %d is not valid (%s); copy %d (generation %" PRIu64
                ") is used; legal after a crash while writing a superblock",
             o, why[o], c, f->gen);
    } else {
        uint64_t og = get64(buf[o] + SB_GENERATION);
        if (og == f->gen)
            fsck_problem(f, "both superblock copies have generation %" PRIu64, og);
        else if (get32(sb + SB_VERSION) != COW_FORMAT_VERSION_1 && /* v1 names none */
                 og != get64(sb + SB_PREV_GENERATION)) /* as the store (commit_load) */
            fsck_problem(f, "superblock copy %d (generation %" PRIu64 ") was written after "
                       "generation %" PRIu64 ", but copy %d holds generation %" PRIu64
                       ": one of them is damaged; the store refuses to open",
                    c, f->gen, get64(sb + SB_PREV_GENERATION), o, og);
        else if (f->gen - og != 1)
            fsck_note(f, "superblock copy %d has generation %" PRIu64 ", copy %d has %" PRIu64, o, og,
                 c, f->gen);
        if (memcmp(buf[o] + SB_UUID, sb + SB_UUID, 16) != 0)
            fsck_problem(f, "superblock copies have different container uuids");
    }

    uint32_t flags = get32(sb + SB_FLAGS);
    if (flags & ~COW_SB_ONE_FLUSH)
        fsck_problem(f, "superblock: flags 0x%x, only 0x%x (one flush) is defined", flags,
                COW_SB_ONE_FLUSH);
    uint32_t ver = get32(sb + SB_VERSION);
    int v1 = ver == COW_FORMAT_VERSION_1, v3 = ver >= COW_FORMAT_VERSION;
    f->r->format_version = ver;
    if (!v3)
        fsck_note(f, "superblock copy %d is format version %u (a writable open upgrades it)",
                  c, ver);
    if (valid[o] && get32(buf[o] + SB_VERSION) != get32(sb + SB_VERSION))
        fsck_note(f, "superblock copy %d is format version %u, copy %d version %u", o,
                  get32(buf[o] + SB_VERSION), c, get32(sb + SB_VERSION));
    size_t sb_end = fsck_sb_commit_list(sb);
    if (flags & COW_SB_ONE_FLUSH)
        sb_end += (size_t)get32(sb + SB_COMMIT_NRANGES) * SB_COMMIT_ENTRY;
    else if (!fsck_all_zero(sb + SB_COMMIT_NRANGES, SB_LOG_ID - SB_COMMIT_NRANGES))
        fsck_problem(f, "superblock: a commit list without the one-flush flag");
    f->bg_size = get64(sb + SB_BG_SIZE);
    f->total = get64(sb + SB_TOTAL_BYTES);
    f->bytes_used = get64(sb + SB_BYTES_USED);
    f->r->total_bytes = f->total;
    if (f->bg_size == 0 || f->bg_size % BS || f->bg_size < 2 * BS) {
        fsck_problem(f, "superblock: block group size %" PRIu64 " is not a multiple of 4096 of at least 8192",
                f->bg_size);
        f->bg_size = 0; /* no block group checks */
    }
    if (f->total == 0 || (f->bg_size && f->total % f->bg_size))
        fsck_problem(f, "superblock: total_bytes %" PRIu64 " is not a positive multiple of the block group size %" PRIu64,
                f->total, f->bg_size);
    if (f->bytes_used > f->total)
        fsck_problem(f, "superblock: bytes_used %" PRIu64 " > total_bytes %" PRIu64, f->bytes_used,
                f->total);
    /* version 3: the file holds what the commit reaches (device_bytes) and
     * may be shorter than total_bytes; versions 1 and 2: every group */
    f->device = fsck_sb_device_bytes(sb);
    f->r->device_bytes = f->device;
    const char *dname = v3 ? "device_bytes" : "total_bytes"; /* in range: sb_invalid */
    if (f->device > f->fsize)
        fsck_problem(f, "container file is truncated: %" PRIu64 " bytes, %s is %" PRIu64,
                f->fsize, dname, f->device);
    else if (f->device != f->fsize)
        fsck_note(f, "container file is %" PRIu64 " bytes, %s is %" PRIu64, f->fsize, dname,
             f->device);
    if (!v1 && get32(sb + SB_PREV_LOG_RECORDS + 4))
        fsck_problem(f, "superblock: bytes 180..183 (after prev_log_records) are not zero");
    if (sb_end < BS && !fsck_all_zero(sb + sb_end, BS - sb_end))
        fsck_problem(f, "superblock: bytes %zu..4095 are not zero", sb_end);
    f->remap_ref = fsck_sb_has_remap(sb);
    for (int t = 0; t < T_NSB; t++) {
        if (t == T_REMAP && !f->remap_ref) {
            f->rr[t].valid = 0; /* none: nothing is remapped */
            continue;
        }
        rootref_get(f, sb, t, sb_root_off[t]);
        if (f->rr[t].valid && f->rr[t].gen > f->gen)
            fsck_problem(f, "superblock: %s root generation %" PRIu64 " > superblock generation %" PRIu64,
                    class_name[t], f->rr[t].gen, f->gen);
    }
    check_log_areas(f, sb, valid[o] ? buf[o] : NULL, o);
    return 0;
}
