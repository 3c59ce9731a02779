/*
 * dump.c - cowctl dump: a decoded listing of a container (tools/fsck.h).
 * The remap tree (format version 3) is shown first, its blocks read at
 * their own address; its REMAP_ITEMs then translate the reads of every
 * other tree's blocks and of the data the log names, as fsck's (remap.c).
 */
#include "fsck_int.h"

/* ------------------------------------------------------------------ */
/* dump                                                                */
/* ------------------------------------------------------------------ */

struct dumper {
    const struct cow_fsck_src *src; /* what every read goes through */
    FILE *out;
    unsigned flags;
    uint64_t fsize; /* src->size */
    struct u64map seen; /* blocks shown */
    struct subvol *sv;  /* ROOT_ITEMs found while showing the root tree */
    size_t nsv, capsv;
    struct names names; /* ROOT_NAMEs found there */
    struct u64map namemap; /* subvolume id -> index of its (first) name */
    int collect_remap;  /* showing the remap tree: keep its REMAP_ITEMs in rm */
    struct remaps rm;   /* the runs, sorted once the remap tree is shown */
    int fatal;
};

static void hexdump(FILE *out, const uint8_t *p, size_t len, uint64_t base, const char *ind)
{
    int skipping = 0;
    for (size_t i = 0; i < len; i += 16) {
        size_t n = len - i < 16 ? len - i : 16;
        if (i && i + 16 <= len && !memcmp(p + i, p + i - 16, 16)) {
            if (!skipping)
                fprintf(out, "%s*\n", ind);
            skipping = 1;
            continue;
        }
        skipping = 0;
        fprintf(out, "%s%08" PRIx64 " ", ind, base + i);
        for (size_t j = 0; j < 16; j++) {
            if (j < n)
                fprintf(out, " %02x", p[i + j]);
            else
                fputs("   ", out);
        }
        fputs("  |", out);
        for (size_t j = 0; j < n; j++)
            fputc(isprint(p[i + j]) ? p[i + j] : '.', out);
        fputs("|\n", out);
    }
}

/*
 * Prints NAME (LEN bytes) in double quotes with non-printable bytes as \xNN.
 * With UTF8 (NAME is valid UTF-8) characters beyond ASCII are printed as
 * they are, but for the C1 controls (U+0080..U+009F).
 */
static void put_name(FILE *out, const uint8_t *name, unsigned len, int utf8)
{
    fputc('"', out);
    for (unsigned i = 0; i < len; i++) {
        if (name[i] >= 0x20 && name[i] < 0x7f && name[i] != '"' && name[i] != '\\') {
            fputc(name[i], out);
        } else if (utf8 && name[i] >= 0xc2 && !(name[i] == 0xc2 && name[i + 1] < 0xa0)) {
            unsigned n = name[i] >= 0xf0 ? 4 : name[i] >= 0xe0 ? 3 : 2;
            fwrite(name + i, 1, n, out);
            i += n - 1;
        } else {
            fprintf(out, "\\x%02x", name[i]);
        }
    }
    fputc('"', out);
}

static void dump_ns(FILE *out, const char *label, uint64_t ns)
{
    fprintf(out, "%s %" PRIu64 ".%09" PRIu64, label, ns / 1000000000u, ns % 1000000000u);
}

static void dump_item(struct dumper *d, const struct cow_key *k, const uint8_t *p,
                      unsigned size, const char *ind)
{
    FILE *out = d->out;
    switch (k->type) {
    case COW_INODE_ITEM:
        if (size != INODE_ITEM_SIZE)
            break;
        fprintf(out, "%ssize %" PRIu64 " nblocks %" PRIu64 " generation %" PRIu64
                     " transid %" PRIu64 " ",
                ind, get64(p + INODE_SIZE), get64(p + INODE_NBLOCKS),
                get64(p + INODE_GENERATION), get64(p + INODE_TRANSID));
        dump_ns(out, "mtime", get64(p + INODE_MTIME));
        fprintf(out, " flags 0x%" PRIx64 "\n", get64(p + INODE_FLAGS));
        return;
    case COW_DIR_ITEM: {
        unsigned pos = 0;
        while (pos + DIR_ENTRY_NAME <= size) {
            unsigned len = get16(p + pos + DIR_ENTRY_NAMELEN);
            if (len > size - pos - DIR_ENTRY_NAME) {
                fprintf(out, "%sentry at byte %u: name length %u runs past the item\n", ind,
                        pos, len);
                return;
            }
            fprintf(out, "%sino %" PRIu64 " name ", ind, get64(p + pos + DIR_ENTRY_INO));
            put_name(out, p + pos + DIR_ENTRY_NAME, len, 0);
            uint32_t h = crc32c(0, p + pos + DIR_ENTRY_NAME, len);
            fprintf(out, " (hash 0x%08x%s)\n", h, h == k->offset ? "" : ", not the key offset");
            pos += DIR_ENTRY_NAME + len;
        }
        if (pos != size)
            fprintf(out, "%s%u trailing bytes\n", ind, size - pos);
        return;
    }
    case COW_EXTENT_DATA:
        if (size != FE_ITEM_SIZE)
            break;
        fprintf(out, "%sdisk_bytenr %" PRIu64 " disk_num_bytes %" PRIu64 " extent_offset %" PRIu64
                     " num_bytes %" PRIu64 " generation %u type %s\n",
                ind, get64(p + FE_DISK_BYTENR), get64(p + FE_DISK_NUM_BYTES),
                get64(p + FE_EXTENT_OFFSET), get64(p + FE_NUM_BYTES), get32(p + FE_GENERATION),
                p[FE_TYPE] == COW_FE_REG        ? "reg"
                : p[FE_TYPE] == COW_FE_PREALLOC  ? "prealloc"
                : p[FE_TYPE] == COW_FE_NODATASUM ? "nodatasum"
                                                 : "UNKNOWN");
        return;
    case COW_EXTENT_CSUM:
        if (size % 4)
            break;
        for (unsigned i = 0; i < size / 4; i++)
            fprintf(out, "%s0x%08x%s", i % 8 ? " " : ind, get32(p + 4 * i),
                    i % 8 == 7 || i + 1 == size / 4 ? "\n" : "");
        return;
    case COW_ROOT_ITEM: {
        if (size != ROOT_ITEM_SIZE)
            break;
        uint64_t flags = get64(p + ROOT_FLAGS);
        const char *kind = fsck_root_kind(flags);
        fprintf(out, "%sbytenr %" PRIu64 " generation %" PRIu64 " level %u next_ino %" PRIu64
                     " flags 0x%" PRIx64 "%s%s%s ",
                ind, get64(p + ROOT_BYTENR), get64(p + ROOT_GENERATION), p[ROOT_LEVEL],
                get64(p + ROOT_NEXT_INO), flags, kind ? " (" : flags ? " (UNKNOWN)" : "",
                kind ? kind : "", kind ? ")" : "");
        dump_ns(out, "ctime", get64(p + ROOT_CTIME));
        fprintf(out, " source %" PRIu64 "\n", get64(p + ROOT_SOURCE));
        return;
    }
    case COW_ROOT_NAME: {
        int utf8 = fsck_utf8_valid(p, size);
        fprintf(out, "%sname ", ind);
        put_name(out, p, size, utf8);
        if (size == 0 || size > COW_NAME_MAX)
            fprintf(out, " (%u bytes, expected 1..%u)", size, COW_NAME_MAX);
        if (!utf8)
            fputs(" (not valid UTF-8)", out);
        if (memchr(p, '/', size) || memchr(p, 0, size))
            fputs(" (contains '/' or NUL)", out);
        fputc('\n', out);
        return;
    }
    case COW_EXTENT_ITEM:
    case COW_METADATA_ITEM:
        if (size != EXT_ITEM_SIZE)
            break;
        fprintf(out, "%srefs %" PRIu64 " generation %" PRIu64 " flags 0x%" PRIx64 "%s\n", ind,
                get64(p + EXT_REFS), get64(p + EXT_GENERATION), get64(p + EXT_FLAGS),
                get64(p + EXT_FLAGS) == COW_EXT_FLAG_DATA   ? " (DATA)"
                : get64(p + EXT_FLAGS) == COW_EXT_FLAG_TREE ? " (TREE)"
                                                            : "");
        return;
    case COW_ORPHAN_ITEM:
        if (size != 0)
            break;
        fprintf(out, "%sinode %" PRIu64 " unlinked while open\n", ind, k->offset);
        return;
    case COW_BLOCK_GROUP_ITEM:
        if (size != BG_ITEM_SIZE)
            break;
        fprintf(out, "%sused %" PRIu64 " flags 0x%" PRIx64 "\n", ind, get64(p + BG_USED),
                get64(p + BG_FLAGS));
        return;
    case COW_REMAP_ITEM:
        if (size != REMAP_ITEM_SIZE)
            break;
        if (get64(p + REMAP_PHYSICAL) == 0)
            fprintf(out, "%slogical %" PRIu64 " length %" PRIu64 " -> dropped (not stored: no "
                         "file maps it)\n",
                    ind, k->objectid, k->offset);
        else
            fprintf(out, "%slogical %" PRIu64 " length %" PRIu64 " -> physical %" PRIu64 "\n",
                    ind, k->objectid, k->offset, get64(p + REMAP_PHYSICAL));
        return;
    default:
        if (d->flags & COW_DUMP_HEX)
            hexdump(out, p, size, 0, ind);
        else
            fprintf(out, "%s(unknown item type; --hex shows its bytes)\n", ind);
        return;
    }
    fprintf(out, "%sunexpected size %u for %s:\n", ind, size, fsck_type_name(k->type));
    hexdump(out, p, size, 0, ind);
}

static void dump_superblock(struct dumper *d, int copy, const uint8_t *sb, int rd)
{
    FILE *out = d->out;
    char why[96];
    const char *bad = fsck_sb_invalid(sb, rd, why, sizeof(why));
    fprintf(out, "superblock copy %d (block %d): %s%s\n", copy, copy, bad ? "INVALID: " : "valid",
            bad ? bad : "");
    if (rd || get64(sb + SB_MAGIC) != COW_SB_MAGIC)
        return;
    uint32_t ver = get32(sb + SB_VERSION);
    int v1 = ver == COW_FORMAT_VERSION_1;
    fprintf(out, "  csum 0x%08x (computed 0x%08x) version %u%s block_size %u flags 0x%x\n",
            get32(sb + SB_CSUM), fsck_block_csum(sb), ver,
            v1 ? " (format version 1: a writable open upgrades it)"
               : ver == COW_FORMAT_VERSION ? "" : " (not a version this build reads)",
            get32(sb + SB_BLOCK_SIZE), get32(sb + SB_FLAGS));
    int v3 = ver >= COW_FORMAT_VERSION;
    fprintf(out, "  generation %" PRIu64 " bg_size %" PRIu64 " total_bytes %" PRIu64
                 " bytes_used %" PRIu64 "\n",
            get64(sb + SB_GENERATION), get64(sb + SB_BG_SIZE), get64(sb + SB_TOTAL_BYTES),
            get64(sb + SB_BYTES_USED));
    if (v3)
        fprintf(out, "  device_bytes %" PRIu64 "\n", get64(sb + SB_DEVICE_BYTES));
    else
        fprintf(out, "  (version %u: no device_bytes, the file covers total_bytes; no remap "
                     "tree)\n",
                ver);
    for (int t = 0; t < T_NSB; t++) {
        const uint8_t *p = sb + sb_root_off[t];
        if (t == T_REMAP && !v3)
            continue;
        if (t == T_REMAP && !fsck_sb_has_remap(sb))
            fprintf(out, "  %-11s none\n", class_name[t]);
        else
            fprintf(out, "  %-11s bytenr %" PRIu64 " generation %" PRIu64 " level %u\n",
                    class_name[t], get64(p + RR_BYTENR), get48(p + RR_GENERATION), p[RR_LEVEL]);
    }
    fprintf(out, "  log areas %" PRIu64 " and %" PRIu64 ", log_blocks %u, log_id 0x%016" PRIx64 "%s\n",
            get64(sb + SB_LOG_AREA0), get64(sb + SB_LOG_AREA1), get32(sb + SB_LOG_BLOCKS),
            get64(sb + SB_LOG_ID), get32(sb + SB_LOG_BLOCKS + 4) ? " (bytes 124..127 not zero)" : "");
    fputs("  uuid ", out);
    for (int i = 0; i < 16; i++)
        fprintf(out, "%02x%s", sb[SB_UUID + i], i == 3 || i == 5 || i == 7 || i == 9 ? "-" : "");
    dump_ns(out, " ctime", get64(sb + SB_CTIME));
    fputc('\n', out);
    if (v1)
        fprintf(out, "  (version 1: which commit it was written after is not recorded)\n");
    else
        fprintf(out, "  written after generation %" PRIu64 " (the other copy) and %u of its log "
                     "records were flushed%s\n",
                get64(sb + SB_PREV_GENERATION), get32(sb + SB_PREV_LOG_RECORDS),
                get32(sb + SB_PREV_LOG_RECORDS + 4) ? " (bytes 180..183 not zero)" : "");
    size_t list = fsck_sb_commit_list(sb);
    if (get32(sb + SB_FLAGS) & COW_SB_ONE_FLUSH) {
        uint32_t n = get32(sb + SB_COMMIT_NRANGES);
        fprintf(out, "  one-flush commit: %u runs, crc 0x%08x\n", n, get32(sb + SB_COMMIT_CRC));
        for (uint32_t i = 0; i < n && i < fsck_sb_commit_max(sb); i++) {
            const uint8_t *e = sb + list + (size_t)i * SB_COMMIT_ENTRY;
            fprintf(out, "    [%" PRIu64 ", %u blocks)\n", get64(e), get32(e + 8));
        }
    } else if (!fsck_all_zero(sb + SB_COMMIT_NRANGES, SB_LOG_ID - SB_COMMIT_NRANGES) ||
               !fsck_all_zero(sb + list, BS - list)) {
        fprintf(out, "  bytes 152..159 or %zu..4095 are not zero (no one-flush commit)\n", list);
    }
}

/*
 * Shows the block at BYTENR, expected at EXP_LEVEL (-1: unknown) and, with
 * RECURSE, its children (each block once; children only while levels go
 * down by one).  Blocks are read through the remap runs XL (NULL: at their
 * own address).  COLLECT_ROOTS records ROOT_ITEMs for the subvolume trees.
 */
static void dump_tree_block(struct dumper *d, const struct remaps *xl, uint64_t bytenr,
                            int exp_level, unsigned depth, int recurse, int collect_roots)
{
    FILE *out = d->out;
    char ind[2 * (COW_MAX_LEVEL + 2) + 8];
    unsigned w = 2 + 2 * (depth < COW_MAX_LEVEL ? depth : COW_MAX_LEVEL);
    memset(ind, ' ', w);
    ind[w] = 0;
    uint32_t dummy;
    if (recurse) {
        if (fsck_map_get(&d->seen, bytenr, &dummy)) {
            fprintf(out, "%sblock %" PRIu64 ": shown above (shared)\n", ind, bytenr);
            return;
        }
        if (fsck_map_put(&d->seen, bytenr, 1)) {
            d->fatal = -ENOMEM;
            return;
        }
    }
    if (bytenr % BS) {
        fprintf(out, "%sblock %" PRIu64 ": not a block address\n", ind, bytenr);
        return;
    }
    uint8_t b[BS];
    uint64_t contig, phys = fsck_remap_phys(xl, bytenr, &contig);
    char stored[48] = "";
    if (phys != bytenr)
        snprintf(stored, sizeof(stored), " (stored at %" PRIu64 ")", phys);
    int rd = fsck_read_logical(d->src, xl, b, BS, bytenr);
    if (rd) {
        fprintf(out, "%sblock %" PRIu64 "%s: cannot read: %s\n", ind, bytenr, stored,
                rd == 1 ? "past end of file" : strerror(rd));
        return;
    }
    uint32_t c = fsck_block_csum(b), s = get32(b + TB_CSUM);
    unsigned level = tb_level(b), n = tb_nritems(b);
    if (get32(b + LOG_MAGIC) == COW_LOG_MAGIC && !recurse) {
        fprintf(out, "%sblock %" PRIu64 ": log record header: log_id 0x%016" PRIx64
                     " generation %" PRIu64 " seq %" PRIu64 " nblocks %u nitems %u\n",
                ind, bytenr, get64(b + LOG_ID), get64(b + LOG_GENERATION), get64(b + LOG_SEQ),
                get32(b + LOG_NBLOCKS), get32(b + LOG_NITEMS));
        hexdump(out, b, BS, bytenr, ind);
        return;
    }
    if (get32(b + TB_MAGIC) != COW_TREE_MAGIC) {
        fprintf(out, "%sblock %" PRIu64 ": not a tree block (bad magic), csum %s\n", ind,
                bytenr, c == s ? "ok" : "bad");
        if (!recurse)
            hexdump(out, b, BS, bytenr, ind);
        return;
    }
    fprintf(out, "%s%s %" PRIu64 "%s level %u items %u generation %" PRIu64 " owner %" PRIu64,
            ind, level ? "node" : "leaf", bytenr, stored, level, n, get64(b + TB_GENERATION),
            get64(b + TB_OWNER));
    if (c == s)
        fprintf(out, " csum ok");
    else
        fprintf(out, " csum BAD (stored 0x%08x, computed 0x%08x)", s, c);
    if (get64(b + TB_BYTENR) != bytenr)
        fprintf(out, " header bytenr %" PRIu64 " MISMATCH", get64(b + TB_BYTENR));
    if (exp_level >= 0 && (int)level != exp_level)
        fprintf(out, " (expected level %d)", exp_level);
    fputc('\n', out);
    unsigned max = level ? COW_NODE_MAX_PTRS : LEAF_MAX_ITEMS;
    if (n > max) {
        fprintf(out, "%s  nritems %u > %u: items not shown\n", ind, n, max);
        return;
    }
    char ks[80], ind2[sizeof(ind) + 8];
    snprintf(ind2, sizeof(ind2), "%s      ", ind);
    struct cow_key k;
    if (level == 0) {
        unsigned data_start = TB_HEADER_SIZE + n * COW_ITEM_SIZE;
        for (unsigned i = 0; i < n; i++) {
            key_get(&k, leaf_item(b, i));
            unsigned off = leaf_data_off(b, i), size = leaf_data_size(b, i);
            fprintf(out, "%s  item %u key %s data %u+%u\n", ind, i, fsck_key_str(&k, ks, sizeof(ks)),
                    off, size);
            if (off < data_start || off > BS || size > BS - off) {
                fprintf(out, "%sdata outside the block's data area\n", ind2);
                continue;
            }
            dump_item(d, &k, b + off, size, ind2);
            if (d->collect_remap && k.type == COW_REMAP_ITEM && size == REMAP_ITEM_SIZE) {
                /* translated as the store would: whole blocks elsewhere */
                struct remap r = {k.objectid, k.offset, get64(b + off + REMAP_PHYSICAL),
                                  bytenr, 1};
                if (r.len && r.len % BS == 0 && r.logical % BS == 0 && r.physical % BS == 0 &&
                    r.physical != r.logical && fsck_range_end(r.logical, r.len) < UINT64_MAX &&
                    fsck_range_end(r.physical, r.len) < UINT64_MAX &&
                    fsck_remaps_add(&d->rm, &r)) {
                    d->fatal = -ENOMEM;
                    return;
                }
            }
            if (collect_roots && k.type == COW_ROOT_ITEM && size == ROOT_ITEM_SIZE &&
                d->nsv < 100000) {
                if (fsck_vec_reserve((void **)&d->sv, &d->capsv, d->nsv + 1, sizeof(*d->sv))) {
                    d->fatal = -ENOMEM;
                    return;
                }
                struct subvol *sv = &d->sv[d->nsv++];
                sv->id = k.objectid;
                sv->bytenr = get64(b + off + ROOT_BYTENR);
                sv->gen = get64(b + off + ROOT_GENERATION);
                sv->level = b[off + ROOT_LEVEL];
                sv->flags = get64(b + off + ROOT_FLAGS);
                sv->source = get64(b + off + ROOT_SOURCE);
            }
            uint32_t first;
            if (collect_roots && k.type == COW_ROOT_NAME && size >= 1 && size <= COW_NAME_MAX &&
                d->names.n < 100000 && !fsck_map_get(&d->namemap, k.objectid, &first)) {
                if (fsck_map_put(&d->namemap, k.objectid, (uint32_t)d->names.n) ||
                    fsck_names_add(&d->names, k.objectid, b + off, size)) {
                    d->fatal = -ENOMEM;
                    return;
                }
            }
        }
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        key_get(&k, node_ptr(b, i));
        fprintf(out, "%s  ptr %u key %s -> block %" PRIu64 " generation %" PRIu64 "\n", ind, i,
                fsck_key_str(&k, ks, sizeof(ks)), node_child(b, i), node_child_gen(b, i));
    }
    if (!recurse)
        return;
    if (level >= COW_MAX_LEVEL || (exp_level >= 0 && (int)level != exp_level)) {
        fprintf(out, "%s  (children not shown: level %u is not the expected one)\n", ind, level);
        return;
    }
    for (unsigned i = 0; i < n && !d->fatal; i++)
        dump_tree_block(d, xl, node_child(b, i), (int)level - 1, depth + 1, 1, collect_roots);
}

/* One line per item of a log record: its key and what it says. */
static void dump_log_item(struct dumper *d, unsigned i, const struct cow_key *k,
                          const uint8_t *p, unsigned size)
{
    FILE *out = d->out;
    char ks[80];
    fprintf(out, "    item %u key %s: ", i, fsck_key_str(k, ks, sizeof(ks)));
    switch (k->type) {
    case COW_LOG_RANGE:
        if (size != 8)
            break;
        if (get64(p) == UINT64_MAX)
            fprintf(out, "range %" PRIu64 "..max\n", k->offset);
        else
            fprintf(out, "range %" PRIu64 "..%" PRIu64 "\n", k->offset, get64(p));
        return;
    case COW_EXTENT_DATA:
        if (size != FE_ITEM_SIZE)
            break;
        fprintf(out, "disk %" PRIu64 " len %" PRIu64 " (extent_offset %" PRIu64 ", num_bytes %" PRIu64
                     ")",
                get64(p + FE_DISK_BYTENR), get64(p + FE_DISK_NUM_BYTES),
                get64(p + FE_EXTENT_OFFSET), get64(p + FE_NUM_BYTES));
        if (p[FE_TYPE] == COW_FE_PREALLOC)
            fputs(" prealloc", out);
        else if (p[FE_TYPE] == COW_FE_NODATASUM)
            fputs(" nodatasum", out);
        else if (p[FE_TYPE] != COW_FE_REG)
            fprintf(out, " type %u (UNKNOWN)", p[FE_TYPE]);
        fputc('\n', out);
        return;
    case COW_INODE_ITEM:
        if (size != INODE_ITEM_SIZE)
            break;
        fprintf(out, "size %" PRIu64 " nblocks %" PRIu64 "\n", get64(p + INODE_SIZE),
                get64(p + INODE_NBLOCKS));
        return;
    case COW_EXTENT_CSUM:
        if (size % 4)
            break;
        fprintf(out, "disk %" PRIu64 ", %u block%s\n", k->offset, size / 4,
                size == 4 ? "" : "s");
        return;
    default:
        fprintf(out, "%u bytes, not a log item type\n", size);
        if (d->flags & COW_DUMP_HEX)
            hexdump(out, p, size, 0, "      ");
        return;
    }
    fprintf(out, "unexpected size %u\n", size);
    hexdump(out, p, size, 0, "      ");
}

/* The "log" section: every valid record in the log area of superblock copy
 * C, then why the log ends. */
static void dump_log(struct dumper *d, const uint8_t *sb, int c)
{
    FILE *out = d->out;
    uint64_t area = get64(sb + (c ? SB_LOG_AREA1 : SB_LOG_AREA0));
    uint32_t nb = get32(sb + SB_LOG_BLOCKS);
    if (!area || !nb) {
        fprintf(out, "\nlog: none (no log area)\n");
        return;
    }
    fprintf(out, "\nlog (area %d at %" PRIu64 ", %u blocks; log_id 0x%016" PRIx64
                 ", generation %" PRIu64 "):\n",
            c, area, nb, get64(sb + SB_LOG_ID), get64(sb + SB_GENERATION));
    if (area % BS || fsck_range_end(area, (uint64_t)nb * BS) > d->fsize) {
        fprintf(out, "  the area is not inside the file: not shown\n");
        return;
    }
    struct logscan s;
    fsck_log_scan_init(&s, d->src, area, nb, get64(sb + SB_LOG_ID),
                       get64(sb + SB_GENERATION));
    s.remap = &d->rm;
    uint64_t n = 0, blocks = 0;
    int rc;
    while ((rc = fsck_log_next(&s)) == 1) {
        fprintf(out, "  record seq %" PRIu64 " at block %u (%" PRIu64 "): %u block%s, %u item%s\n",
                s.seq + 1, s.pos, area + (uint64_t)s.pos * BS, s.rec_blocks,
                s.rec_blocks == 1 ? "" : "s", s.nitems, s.nitems == 1 ? "" : "s");
        size_t len = (size_t)s.rec_blocks * BS, pos = LOG_HEADER_SIZE;
        struct cow_key k;
        const uint8_t *p;
        unsigned size;
        for (uint32_t i = 0; i < s.nitems; i++) {
            fsck_log_item(s.rec, len, &pos, &k, &p, &size);
            dump_log_item(d, i, &k, p, size);
        }
        fprintf(out, "    %u earlier record%s known flushed; the commit %s known flushed\n",
                get32(s.rec + LOG_DURABLE), get32(s.rec + LOG_DURABLE) == 1 ? "" : "s",
                get32(s.rec + LOG_FLAGS) & COW_LOG_BASE_DURABLE ? "was" : "was not");
        if (pos < len && !fsck_all_zero(s.rec + pos, len - pos))
            fprintf(out, "    (bytes after the items are not zero)\n");
        n++;
        blocks += s.rec_blocks;
        fsck_log_advance(&s);
    }
    fsck_log_scan_free(&s);
    if (rc < 0) {
        d->fatal = rc;
        return;
    }
    if (s.pos >= nb)
        fprintf(out, "  end: %s\n", s.why);
    else
        fprintf(out, "  end: block %u (%" PRIu64 "): %s\n", s.pos, area + (uint64_t)s.pos * BS,
                s.why);
    fprintf(out, "  %" PRIu64 " record%s (%" PRIu64 " block%s) pending replay\n", n,
            n == 1 ? "" : "s", blocks, blocks == 1 ? "" : "s");
}

/* Dumps SRC (fsck_src_valid()) for cow_dump_src() and cow_dump(), which
 * says in UNLOCKED that the file could not be locked. */
static int dump_src(const struct cow_fsck_src *src, int unlocked, unsigned flags, uint64_t bytenr,
                    FILE *out)
{
    struct dumper d;
    memset(&d, 0, sizeof(d));
    d.src = src;
    d.out = out;
    d.flags = flags;
    d.fsize = src->size;
    fprintf(out, "container %s: %" PRIu64 " bytes%s\n", src->name, d.fsize,
            unlocked ? " (open in a process: may be changing)" : "");
    uint8_t sb[2][BS];
    int rd[2], good[2];
    char why[128];
    for (int i = 0; i < 2; i++) {
        rd[i] = fsck_read_at(d.src, sb[i], BS, (uint64_t)i * BS);
        good[i] = !fsck_sb_invalid(sb[i], rd[i], why, sizeof(why));
    }
    if (bytenr != UINT64_MAX) {
        if (bytenr < 2 * BS && bytenr % BS == 0)
            dump_superblock(&d, (int)(bytenr / BS), sb[bytenr / BS], rd[bytenr / BS]);
        else
            dump_tree_block(&d, NULL, bytenr, -1, 0, 0, 0); /* a physical read */
        goto out;
    }
    for (int i = 0; i < 2; i++)
        dump_superblock(&d, i, sb[i], rd[i]);
    int c = -1;
    if (good[0] && good[1])
        c = get64(sb[1] + SB_GENERATION) > get64(sb[0] + SB_GENERATION);
    else if (good[0] || good[1])
        c = good[0] ? 0 : 1;
    if (c < 0) {
        fprintf(out, "no valid superblock: trees not shown\n");
        goto out;
    }
    /* as open: a torn one-flush commit does not count */
    const char *torn = fsck_sb_commit_torn(d.src, sb[c], why, sizeof(why));
    if (torn) {
        fprintf(out, "superblock copy %d: %s\n", c, torn);
        if (!good[1 - c]) {
            fprintf(out, "no valid superblock: trees not shown\n");
            goto out;
        }
        c = 1 - c;
    }
    fprintf(out, "using superblock copy %d, generation %" PRIu64 ", format version %u\n", c,
            get64(sb[c] + SB_GENERATION), get32(sb[c] + SB_VERSION));
    /* the remap tree first, at its own address: the others are read
     * through its runs */
    static const int order[T_NSB] = {T_REMAP, T_ROOT, T_EXTENT, T_CSUM};
    for (int i = 0; i < T_NSB && !d.fatal; i++) {
        int t = order[i];
        const uint8_t *p = sb[c] + sb_root_off[t];
        uint64_t r = get64(p + RR_BYTENR);
        if (t == T_REMAP && !fsck_sb_has_remap(sb[c])) {
            if (get32(sb[c] + SB_VERSION) >= COW_FORMAT_VERSION)
                fprintf(out, "\nremap tree: none (nothing is remapped)\n");
            continue;
        }
        fprintf(out, "\n%s (root %" PRIu64 ", generation %" PRIu64 ", level %u):\n",
                class_name[t], r, get48(p + RR_GENERATION), p[RR_LEVEL]);
        d.collect_remap = t == T_REMAP;
        dump_tree_block(&d, t == T_REMAP ? NULL : &d.rm, r,
                        p[RR_LEVEL] < COW_MAX_LEVEL ? p[RR_LEVEL] : COW_MAX_LEVEL - 1, 0, 1,
                        t == T_ROOT);
        if (t == T_REMAP) {
            d.collect_remap = 0;
            fsck_remaps_sort(&d.rm);
        }
    }
    for (size_t i = 0; i < d.nsv && !d.fatal; i++) {
        struct subvol *s = &d.sv[i];
        const char *kind = fsck_root_kind(s->flags);
        uint32_t ni;
        int named = fsck_map_get(&d.namemap, s->id, &ni);
        fprintf(out, "\nsubvolume %" PRIu64 " tree (", s->id);
        /* 'snapshot "nightly" of 256; ', nothing for the live subvolume */
        if (kind || named || s->flags || s->id != COW_FS_TREE_OBJECTID) {
            if (kind)
                fputs(kind, out);
            else
                fprintf(out, "flags 0x%" PRIx64, s->flags);
            if (named) {
                fputc(' ', out);
                put_name(out, fsck_names_bytes(&d.names, ni), d.names.v[ni].len,
                         fsck_utf8_valid(fsck_names_bytes(&d.names, ni), d.names.v[ni].len));
            } else {
                fputs(" (no name)", out);
            }
            fprintf(out, " of %" PRIu64 "; ", s->source);
        }
        fprintf(out, "root %" PRIu64 ", generation %" PRIu64 ", level %u):\n", s->bytenr, s->gen,
                s->level);
        dump_tree_block(&d, &d.rm, s->bytenr,
                        s->level < COW_MAX_LEVEL ? (int)s->level : COW_MAX_LEVEL - 1, 0, 1, 0);
    }
    if (!d.fatal)
        dump_log(&d, sb[c], c);
out:;
    int rc = d.fatal;
    if (rc)
        fprintf(out, "%s: dump stopped: %s\n", src->name, strerror(-rc));
    free(d.sv);
    fsck_names_free(&d.names);
    fsck_map_free(&d.namemap);
    fsck_map_free(&d.seen);
    fsck_remaps_free(&d.rm);
    return rc;
}

int cow_dump_src(const struct cow_fsck_src *src, unsigned flags, uint64_t bytenr, FILE *out)
{
    int rc = fsck_src_valid(src, out);
    return rc ? rc : dump_src(src, 0, flags, bytenr, out);
}

int cow_dump(const char *path, unsigned flags, uint64_t bytenr, FILE *out)
{
    struct fsck_file file;
    int rc = fsck_open_container(path, &file, out);
    if (rc)
        return rc;
    rc = dump_src(&file.src, !file.locked, flags, bytenr, out);
    fsck_close_container(&file); /* drops the flock */
    return rc;
}
