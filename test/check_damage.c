/*
 * check_damage.c - damage a crash cannot cause is reported, never silently
 * rolled back (docs/DESIGN.md, "Damage a crash cannot cause").
 *
 * Each case makes a small container through the store API on a memdev,
 * applies one specific damage to its image (a bit flip; with the block's
 * checksum recomputed where the damage is meant to pass it), and checks
 * that open fails with COW_ECORRUPT naming what, and that fsck reports it
 * as a problem naming the generations.  The states a crash can leave (a
 * torn last commit, a torn last record, records written without a flush
 * lost in any order) are run through the memdev's crash states: they must
 * still open, at the older state, with no error, and fsck clean.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "store_int.h"
#include "testutil.h"
#include "../tools/fsck.h"

#define BLK COW_BLOCK_SIZE

/* Opens a copy of IMG read-only; the store, or NULL with the error in *RC
 * and its message in MSG (MSGSZ bytes). */
static cow_store *open_img(const uint8_t *img, size_t len, int *rc, char *msg, size_t msgsz)
{
    cow_store *st = NULL;
    *rc = cow_store_open_dev("damaged", memdev_from_image(img, len, NULL), COW_OPEN_READONLY, 0,
                             &st);
    snprintf(msg, msgsz, "%s", *rc ? cow_store_last_error(NULL) : "");
    return st;
}

/* Expects open of IMG to fail with COW_ECORRUPT and a message holding WANT. */
static void expect_corrupt(const uint8_t *img, size_t len, const char *want)
{
    int rc;
    char msg[1024];
    cow_store *st = open_img(img, len, &rc, msg, sizeof msg);
    if (st)
        cow_store_close(st);
    ck_assert_msg(rc == COW_ECORRUPT, "open gave %d (%s), expected COW_ECORRUPT about '%s'", rc,
                  msg, want);
    ck_assert_msg(strstr(msg, want) != NULL, "open failed with '%s', expected it to name '%s'",
                  msg, want);
}

/* Expects fsck to report a problem whose text holds WANT. */
static void expect_fsck_problem(const uint8_t *img, size_t len, const char *want)
{
    char *report;
    uint64_t n = test_fsck_report(img, len, &report, NULL);
    ck_assert_msg(n > 0, "fsck found no problem, expected one naming '%s'", want);
    ck_assert_msg(strstr(report, want) != NULL, "fsck said:\n%s\nexpected it to name '%s'", report,
                  want);
    free(report);
}

/* Damage both must see: the store refuses IMG (COW_ECORRUPT, its message
 * naming WANT), and fsck reports a problem naming WANT. */
static void expect_damage(const uint8_t *img, size_t len, const char *want)
{
    expect_corrupt(img, len, want);
    expect_fsck_problem(img, len, want);
}

/* Expects IMG to open read-only at GEN, and, if WANT, db to read WANT. */
static void expect_opens_at(const uint8_t *img, size_t len, uint64_t gen, const char *want)
{
    int rc;
    char msg[1024];
    cow_store *st = open_img(img, len, &rc, msg, sizeof msg);
    ck_assert_msg(rc == COW_OK, "open failed: %s", msg);
    ck_assert_uint_eq(cow_store_generation(st), gen);
    if (want) {
        cow_file *f;
        ck_assert_int_eq(cow_file_open(st, "db", 0, &f), COW_OK);
        file_expect_str(f, want);
        cow_file_close(f);
    }
    cow_store_close(st);
}

/* The superblock copy with the higher generation in IMG. */
static int newest_slot(const uint8_t *img)
{
    return get64(img + BLK + SB_GENERATION) > get64(img + SB_GENERATION);
}

static void sb_recsum(uint8_t *sb)
{
    put32(sb + SB_CSUM, crc32c(0, sb + 4, BLK - 4));
}

/* Recomputes superblock copy SLOT's commit_crc over its listed blocks (a
 * damaged block whose checksums are all recomputed). */
static void sb_fix_commit_crc(uint8_t *img, int slot)
{
    uint8_t *sb = img + (size_t)slot * BLK;
    uint32_t acc = 0;
    for (uint32_t i = 0; i < get32(sb + SB_COMMIT_NRANGES); i++) {
        const uint8_t *e = sb + SB_COMMIT_LIST + (size_t)i * SB_COMMIT_ENTRY;
        for (uint32_t b = 0; b < get32(e + 8); b++) {
            uint8_t le[4];
            put32(le, crc32c(0, img + get64(e) + (uint64_t)b * BLK, BLK));
            acc = crc32c(acc, le, 4);
        }
    }
    put32(sb + SB_COMMIT_CRC, acc);
    sb_recsum(sb);
}

/* Byte offset of log area K's first block in IMG (superblock copy SLOT). */
static uint64_t log_area(const uint8_t *img, int slot, int k)
{
    return get64(img + (size_t)slot * BLK + (k ? SB_LOG_AREA1 : SB_LOG_AREA0));
}

/* The first record of the log in use (the newest superblock's area). */
static uint8_t *first_record(uint8_t *img)
{
    int s = newest_slot(img);
    return img + log_area(img, s, s);
}

/* Recomputes the crc of the log record at R (over its LOG_NBLOCKS blocks). */
static void record_recsum(uint8_t *r)
{
    put32(r + LOG_CSUM, crc32c(0, r + 4, (size_t)get32(r + LOG_NBLOCKS) * BLK - 4));
}

/*
 * A container whose newest commit G (one flush, flushed) is followed, if
 * RECORD, by a flushed log record built on it.  Returns the durable image
 * (*LEN) and G.
 */
static uint8_t *commit_then_record(int record, size_t *len, uint64_t *g)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    file_put_str(f, "committed");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    *g = cow_store_generation(st);
    if (record) {
        file_put_str(f, "synced!!!");
        ck_assert_int_eq(cow_file_sync(f), COW_OK);
        ck_assert_uint_eq(cow_store_generation(st), *g); /* through the log */
    }
    uint8_t *img = memdev_crash_image(dev, len);
    cow_file_close(f);
    cow_store_close(st);
    return img;
}

/* A block of the newest commit's list gets a bit flipped: a crash cannot do
 * that to a commit a flushed record builds on. */
START_TEST(damage_commit_block_under_record)
{
    size_t len;
    uint64_t g;
    uint8_t *img = commit_then_record(1, &len, &g);
    int s = newest_slot(img);
    const uint8_t *sb = img + (size_t)s * BLK;
    ck_assert_uint_eq(get64(sb + SB_GENERATION), g);
    ck_assert(get32(sb + SB_FLAGS) & COW_SB_ONE_FLUSH);
    ck_assert_uint_gt(get32(sb + SB_COMMIT_NRANGES), 0);
    uint64_t at = get64(sb + SB_COMMIT_LIST);
    img[at + 100] ^= 0x10;
    char want[64];
    snprintf(want, sizeof want, "commit generation %llu was flushed", (unsigned long long)g);
    expect_damage(img, len, want);
    free(img);

    /* the same damage with nothing written after the commit cannot be told
     * from a tear (docs/DESIGN.md): the previous commit, no error */
    img = commit_then_record(0, &len, &g);
    sb = img + (size_t)newest_slot(img) * BLK;
    img[get64(sb + SB_COMMIT_LIST) + 100] ^= 0x10;
    expect_opens_at(img, len, g - 1, NULL);
    free(img);
}
END_TEST

/* The newest superblock gets a bit flipped (its crc no longer matches). */
START_TEST(damage_superblock_under_record)
{
    size_t len;
    uint64_t g;
    uint8_t *img = commit_then_record(1, &len, &g);
    img[(size_t)newest_slot(img) * BLK + SB_BYTES_USED] ^= 0x01;
    char want[64];
    snprintf(want, sizeof want, "commit generation %llu was flushed", (unsigned long long)g);
    expect_damage(img, len, want);
    free(img);
}
END_TEST

/*
 * Records 1 and 2 flushed one after the other (two fsyncs); returns the
 * durable image, G and the area offset of the log in use.
 */
static uint8_t *two_records(size_t *len, uint64_t *g, uint64_t *area)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    file_put_str(f, "committed");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    *g = cow_store_generation(st);
    file_put_str(f, "record 1!");
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    file_put_str(f, "record 2!");
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    ck_assert_uint_eq(cow_store_generation(st), *g);
    uint8_t *img = memdev_crash_image(dev, len);
    cow_file_close(f);
    cow_store_close(st);
    *area = (uint64_t)(first_record(img) - img);
    ck_assert_uint_eq(get64(img + *area + LOG_SEQ), 1);
    return img;
}

/* Record 1 damaged while record 2, written after record 1 was flushed, is
 * whole: damage.  Record 2 damaged (the last): cannot be told from a tear. */
START_TEST(damage_record_under_record)
{
    size_t len;
    uint64_t g, area;
    uint8_t *img = two_records(&len, &g, &area);
    uint32_t nb1 = get32(img + area + LOG_NBLOCKS);
    const uint8_t *r2 = img + area + (uint64_t)nb1 * BLK;
    ck_assert_uint_eq(get64(r2 + LOG_SEQ), 2);
    ck_assert_uint_eq(get32(r2 + LOG_DURABLE), 1);
    expect_opens_at(img, len, g, "record 2!");

    uint8_t *t = malloc(len);
    memcpy(t, img, len);
    t[area + LOG_HEADER_SIZE + 3] ^= 0x04; /* record 1's first item */
    char want[96];
    snprintf(want, sizeof want, "log record 1 of generation %llu is damaged",
             (unsigned long long)g);
    expect_damage(t, len, want);

    /* record 1's data: the first item is its extent's EXTENT_CSUM */
    memcpy(t, img, len);
    ck_assert_uint_eq(img[area + LOG_HEADER_SIZE + 8], COW_EXTENT_CSUM);
    uint64_t data = get64(img + area + LOG_HEADER_SIZE + 9);
    t[data] ^= 0x01;
    expect_damage(t, len, want);

    /* record 2, the last flushed write: the state before it, no error */
    memcpy(t, img, len);
    t[area + (uint64_t)nb1 * BLK + LOG_HEADER_SIZE + 3] ^= 0x04;
    expect_opens_at(t, len, g, "record 1!");
    free(t);
    free(img);
}
END_TEST

/* A whole record of the log (crc recomputed) whose items do not parse:
 * the store refuses it, and fsck must say so too (it called it clean). */
START_TEST(damage_record_that_does_not_parse)
{
    size_t len;
    uint64_t g;
    uint8_t *img = commit_then_record(1, &len, &g);
    uint8_t *r = first_record(img);
    ck_assert_uint_eq(get64(r + LOG_SEQ), 1);
    put32(r + LOG_NITEMS, get32(r + LOG_NITEMS) + 1000);
    record_recsum(r);
    expect_corrupt(img, len, "log record 1");
    expect_fsck_problem(img, len, "log record 1 of generation");
    expect_fsck_problem(img, len, "is whole but broken");
    free(img);
}
END_TEST

/* Item NTH (from 0) of TYPE in the log record at R: its key's offset in R. */
static size_t record_item(const uint8_t *r, uint8_t type, int nth)
{
    size_t p = LOG_HEADER_SIZE;
    for (uint32_t i = 0; i < get32(r + LOG_NITEMS); i++) {
        struct cow_key k;
        key_get(&k, r + p);
        if (k.type == type && nth-- == 0)
            return p;
        p += LOG_ITEM_HEADER + get16(r + p + COW_KEY_SIZE);
    }
    ck_abort_msg("no item of type %u in the record", type);
    return 0;
}

/* Whole records (crc recomputed) that replay must refuse as fsck reports
 * them (found by the corruption sweep, which both called clean or only fsck
 * flagged): _i 0, an INODE_ITEM whose transid is past the transaction the
 * record was written in (open refused, fsck was clean); _i 1, an
 * EXTENT_DATA item outside every LOG_RANGE of its inode (fsck reported it,
 * replay inserted it over the mapping it kept and the file read other
 * data without an error); _i 2, an EXTENT_DATA item moved onto the one
 * before it inside their LOG_RANGE (both called it clean, and the file
 * read other data); _i 3, an EXTENT_DATA item's disk_num_bytes past its
 * extent (fsck reported it, replay took it); _i 4, an INODE_ITEM whose
 * block count is not the one replay reaches (open refused, fsck was clean:
 * fsck now replays the log's mapping changes on the committed files); _i 5,
 * an EXTENT_DATA item whose extent_offset runs past its extent (replay's
 * parse refused it, fsck took it for a torn record, since its data did not
 * match: fsck now checks the items' fields before the data, as replay). */
START_TEST(damage_record_fsck_rules)
{
    size_t len;
    uint64_t g;
    uint8_t *img;
    if (_i != 2) {
        img = commit_then_record(1, &len, &g);
    } else { /* a record with two extents of db */
        struct cow_dev *dev;
        cow_file *f;
        cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
        uint8_t blk[BLK];
        memset(blk, 'x', sizeof blk);
        file_put_str(f, "committed");
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
        ck_assert_int_eq(cow_file_write(f, blk, BLK, 0), COW_OK);
        ck_assert_int_eq(cow_file_write(f, blk, BLK, 8 * BLK), COW_OK);
        ck_assert_int_eq(cow_file_sync(f), COW_OK);
        img = memdev_crash_image(dev, &len);
        cow_file_close(f);
        cow_store_close(st);
    }
    uint8_t *r = first_record(img);
    const char *want;
    struct cow_key k;
    if (_i == 0) {
        size_t p = record_item(r, COW_INODE_ITEM, 0);
        put64(r + p + LOG_ITEM_HEADER + INODE_TRANSID, 1ull << 36);
        want = "newer than transaction";
    } else if (_i == 1) {
        size_t p = record_item(r, COW_EXTENT_DATA, 0);
        key_get(&k, r + p);
        k.offset += 1u << 20;
        key_put(r + p, &k);
        want = "not inside a LOG_RANGE";
    } else if (_i == 2) { /* the second extent moved onto the first, inside a range */
        struct cow_key k0;
        key_get(&k0, r + record_item(r, COW_EXTENT_DATA, 0));
        size_t p = record_item(r, COW_EXTENT_DATA, 1);
        key_get(&k, r + p);
        k.offset = k0.offset;
        key_put(r + p, &k);
        want = "starts before the end";
    } else if (_i == 3) { /* an extent item naming more of its extent than there is */
        size_t p = record_item(r, COW_EXTENT_DATA, 0) + LOG_ITEM_HEADER;
        put64(r + p + FE_DISK_NUM_BYTES, get64(r + p + FE_DISK_NUM_BYTES) + BLK);
        want = "disk_num_bytes";
    } else if (_i == 5) { /* an extent offset with a high bit set */
        size_t p = record_item(r, COW_EXTENT_DATA, 0) + LOG_ITEM_HEADER;
        put64(r + p + FE_EXTENT_OFFSET, get64(r + p + FE_EXTENT_OFFSET) | (1ull << 33));
        want = "exceeds disk_num_bytes";
    } else { /* the logged block count with a bit flipped */
        size_t p = record_item(r, COW_INODE_ITEM, 0) + LOG_ITEM_HEADER;
        put64(r + p + INODE_NBLOCKS, get64(r + p + INODE_NBLOCKS) ^ (1ull << 36));
        want = "blocks after replay";
    }
    record_recsum(r);
    expect_damage(img, len, want);
    free(img);
}
END_TEST

/* The newest superblock's generation raised (below 2^48, crc recomputed)
 * under a pending record: replay found no record of that generation and
 * the container opened at the commit with no error, without its record
 * (found by the corruption sweep).  The record has the superblock's
 * log_id, which no other superblock write has: damage. */
START_TEST(damage_generation_raised_under_record)
{
    size_t len;
    uint64_t g;
    uint8_t *img = commit_then_record(1, &len, &g);
    uint8_t *sb = img + (size_t)newest_slot(img) * BLK;
    put64(sb + SB_GENERATION, get64(sb + SB_GENERATION) + (1ull << 40));
    sb_recsum(sb);
    expect_damage(img, len, "has the log_id of commit generation");
    free(img);
}
END_TEST

/* The older superblock copy's generation raised above the newer one's
 * (crc recomputed): open took it for the newest and read its commit with
 * no error (found by the corruption sweep).  The newer copy names the
 * commit it was written after, which the other copy must hold. */
START_TEST(damage_older_copy_generation_raised)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    file_put_str(f, "commit 1");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    file_put_str(f, "commit 2");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t g = cow_store_generation(st);
    size_t len;
    uint8_t *img = memdev_crash_image(dev, &len);
    cow_file_close(f);
    cow_store_close(st);
    expect_opens_at(img, len, g, "commit 2");
    uint8_t *old = img + (size_t)(1 - newest_slot(img)) * BLK;
    ck_assert_uint_eq(get64(old + SB_GENERATION), g - 1);
    put64(old + SB_GENERATION, g + 1000);
    sb_recsum(old);
    expect_damage(img, len, "one of them is damaged");
    free(img);
}
END_TEST

/* A whole record (crc recomputed) about a file the commit does not have:
 * replay refuses it, so fsck must not call it clean. */
START_TEST(damage_record_of_missing_inode)
{
    size_t len;
    uint64_t g;
    uint8_t *img = commit_then_record(1, &len, &g);
    uint8_t *r = first_record(img);
    uint32_t changed = 0;
    size_t pos = LOG_HEADER_SIZE;
    for (uint32_t i = 0; i < get32(r + LOG_NITEMS); i++) {
        if (r[pos + 8] != COW_EXTENT_CSUM) {
            ck_assert_uint_eq(get64(r + pos), COW_FIRST_INO); /* db */
            put64(r + pos, 999);
            changed++;
        }
        pos += LOG_ITEM_HEADER + get16(r + pos + COW_KEY_SIZE);
    }
    ck_assert_uint_gt(changed, 0);
    record_recsum(r);
    expect_corrupt(img, len, "inode 999");
    expect_fsck_problem(img, len, "inode 999 does not exist");
    free(img);
}
END_TEST

/*
 * A torn commit G+1 (a listed block still old) after record 1 of G's log
 * was flushed: G's log must replay record 1; with record 1 damaged, open
 * fails instead of going back past it.
 */
START_TEST(damage_record_under_torn_commit)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    file_put_str(f, "committed");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint64_t g = cow_store_generation(st);
    file_put_str(f, "record 1!");
    ck_assert_int_eq(cow_file_sync(f), COW_OK);
    size_t alen, blen;
    uint8_t *a = memdev_crash_image(dev, &alen);
    file_put_str(f, "commit 2!");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    uint8_t *b = memdev_crash_image(dev, &blen);
    cow_file_close(f);
    cow_store_close(st);

    int s = newest_slot(b);
    const uint8_t *sb = b + (size_t)s * BLK;
    ck_assert_uint_eq(get64(sb + SB_GENERATION), g + 1);
    ck_assert_uint_eq(get64(sb + SB_PREV_GENERATION), g);
    ck_assert_uint_eq(get32(sb + SB_PREV_LOG_RECORDS), 1);
    ck_assert(get32(sb + SB_FLAGS) & COW_SB_ONE_FLUSH);
    /* tear it: the first listed run still holds what it held before */
    uint64_t at = get64(sb + SB_COMMIT_LIST), n = get32(sb + SB_COMMIT_LIST + 8);
    ck_assert_uint_le(at + n * BLK, alen);
    memcpy(b + at, a + at, n * BLK);
    expect_opens_at(b, blen, g, "record 1!"); /* a tear: G and its log */
    char *report;
    ck_assert_uint_eq(test_fsck_report(b, blen, &report, NULL), 0);
    free(report);

    uint64_t area = log_area(b, 1 - s, 1 - s);
    ck_assert_uint_eq(get64(b + area + LOG_SEQ), 1);
    b[area + LOG_HEADER_SIZE + 3] ^= 0x04;
    char want[96];
    snprintf(want, sizeof want, "log record 1 of generation %llu is damaged or missing",
             (unsigned long long)g);
    expect_damage(b, blen, want);
    free(a);
    free(b);
}
END_TEST

/* A torn newest copy whose other copy went back to an older commit (a
 * write the device lost): the torn copy names the commit it was written
 * after, and open fails instead of going back further. */
START_TEST(damage_other_copy_lost_write)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    uint8_t *img[4];
    size_t len[4];
    uint64_t gen[4];
    for (int i = 0; i < 4; i++) {
        char text[32];
        snprintf(text, sizeof text, "commit %d", i);
        file_put_str(f, text);
        ck_assert_int_eq(cow_store_commit(st), COW_OK);
        gen[i] = cow_store_generation(st);
        img[i] = memdev_crash_image(dev, &len[i]);
    }
    cow_file_close(f);
    cow_store_close(st);
    uint8_t *b = img[3];
    int s = newest_slot(b);
    const uint8_t *sb = b + (size_t)s * BLK;
    ck_assert_uint_eq(get64(sb + SB_PREV_GENERATION), gen[2]);
    ck_assert_uint_eq(get64(img[0] + (size_t)(1 - s) * BLK + SB_GENERATION), gen[0]);
    uint64_t at = get64(sb + SB_COMMIT_LIST), n = get32(sb + SB_COMMIT_LIST + 8);
    ck_assert_uint_le(at + n * BLK, len[2]);
    memcpy(b + at, img[2] + at, n * BLK); /* torn */
    expect_opens_at(b, len[3], gen[2], "commit 2");
    memcpy(b + (size_t)(1 - s) * BLK, img[0] + (size_t)(1 - s) * BLK, BLK); /* lost write */
    char want[96];
    snprintf(want, sizeof want, "holds generation %llu, not generation %llu",
             (unsigned long long)gen[0], (unsigned long long)gen[2]);
    expect_damage(b, len[3], want);
    for (int i = 0; i < 4; i++)
        free(img[i]);
}
END_TEST

/* A generation of 2^48 (checksum recomputed) is refused by open and fsck;
 * one of 2^48 - 1 opens, and the commit after it fails cleanly instead of
 * writing 48-bit root generations that no longer match. */
START_TEST(damage_generation_out_of_range)
{
    struct cow_dev *dev;
    cow_file *f;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    file_put_str(f, "committed");
    cow_file_close(f);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    size_t len;
    uint8_t *img = memdev_crash_image(dev, &len);
    cow_store_close(st);
    uint8_t *sb = img + (size_t)newest_slot(img) * BLK;

    put64(sb + SB_GENERATION, 1ull << 48);
    sb_recsum(sb);
    expect_corrupt(img, len, "generation out of range");
    expect_fsck_problem(img, len, "out of range");

    put64(sb + SB_GENERATION, COW_MAX_GENERATION);
    sb_recsum(sb);
    cow_store *s2;
    struct cow_dev *d2 = memdev_from_image(img, len, NULL);
    ck_assert_int_eq(cow_store_open_dev("last", d2, 0, 0, &s2), COW_OK);
    ck_assert_uint_eq(cow_store_generation(s2), COW_MAX_GENERATION);
    ck_assert_int_eq(cow_file_open(s2, "db", 0, &f), COW_OK);
    int wrc = cow_file_write(f, "more", 4, 0);
    cow_file_close(f);
    cow_store_commit(s2);
    size_t len2;
    uint8_t *img2 = memdev_crash_image(d2, &len2);
    cow_store_close(s2);
    ck_assert_int_eq(wrc, COW_ENOSPC);
    expect_opens_at(img2, len2, COW_MAX_GENERATION, "committed"); /* still a container */
    free(img2);
    free(img);
}
END_TEST

/* Finds every tree block of subvolume 256 in IMG holding the DIR_ITEM of
 * NAME and applies EDIT to the item's data, recomputing the block's crc.
 * Returns how many blocks it changed. */
static int edit_dir_item(uint8_t *img, size_t len, const char *name,
                         void (*edit)(uint8_t *key, uint8_t *data, unsigned size))
{
    uint64_t hash = crc32c(0, name, strlen(name));
    int n = 0;
    for (size_t at = 2 * BLK; at + BLK <= len; at += BLK) {
        uint8_t *b = img + at;
        if (get32(b + TB_MAGIC) != COW_TREE_MAGIC || get64(b + TB_BYTENR) != at ||
            get64(b + TB_OWNER) != COW_FS_TREE_OBJECTID || tb_level(b) != 0 ||
            tb_nritems(b) > COW_LEAF_SPACE / COW_ITEM_SIZE)
            continue;
        for (unsigned i = 0; i < tb_nritems(b); i++) {
            struct cow_key k;
            key_get(&k, leaf_item(b, i));
            if (k.objectid != COW_ROOT_DIR_OBJECTID || k.type != COW_DIR_ITEM || k.offset != hash)
                continue;
            edit((uint8_t *)leaf_item(b, i), b + leaf_data_off(b, i), leaf_data_size(b, i));
            put32(b + TB_CSUM, crc32c(0, b + 4, BLK - 4));
            n++;
        }
    }
    return n;
}

static void flip_name(uint8_t *key, uint8_t *data, unsigned size)
{
    (void)key;
    ck_assert_uint_ge(size, DIR_ENTRY_NAME + 6);
    data[DIR_ENTRY_NAME + 5] ^= 0x01; /* "db-wal" -> "db-wam" */
}

static void flip_hash(uint8_t *key, uint8_t *data, unsigned size)
{
    (void)data;
    (void)size;
    key[9] ^= 0x01; /* the key offset's low bit */
}

static void flip_ino(uint8_t *key, uint8_t *data, unsigned size)
{
    (void)key;
    (void)size;
    data[DIR_ENTRY_INO + 2] ^= 0x01;
}

/* The DIR_ITEM of db-wal damaged (crc recomputed): the store opened and
 * served the database without its WAL; it must refuse as fsck does. */
START_TEST(damage_dir_item_of_wal)
{
    struct cow_dev *dev;
    cow_file *f, *w;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    ck_assert_int_eq(cow_file_open(st, "db-wal", 1, &w), COW_OK);
    file_put_str(f, "database");
    ck_assert_int_eq(cow_file_write(w, "wal frames", 10, 0), COW_OK);
    cow_file_close(f);
    cow_file_close(w);
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    size_t len;
    uint8_t *img = memdev_crash_image(dev, &len);
    cow_store_close(st);
    uint8_t *t = malloc(len);
    void (*edits[])(uint8_t *, uint8_t *, unsigned) = {flip_name, flip_hash, flip_ino};
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        memcpy(t, img, len);
        ck_assert_int_gt(edit_dir_item(t, len, "db-wal", edits[e]), 0);
        sb_fix_commit_crc(t, newest_slot(t));
        int rc;
        char msg[1024];
        cow_store *s2 = open_img(t, len, &rc, msg, sizeof msg);
        if (s2) {
            cow_file *w2;
            int lrc = cow_file_open(s2, "db-wal", 0, &w2);
            if (lrc == COW_OK)
                cow_file_close(w2);
            cow_store_close(s2);
            ck_abort_msg("edit %zu: open succeeded (db-wal: %d)", e, lrc);
        }
        ck_assert_msg(rc == COW_ECORRUPT, "edit %zu: open gave %d: %s", e, rc, msg);
        char *report;
        ck_assert_uint_gt(test_fsck_report(t, len, &report, NULL), 0);
        free(report);
    }
    free(t);
    free(img);
}
END_TEST

/*
 * Every crash state of DEV (or a sample: all units kept, all dropped, each
 * dropped alone, and random keeps and tears) opens read-only with no error
 * and fscks clean.  Returns how many states were tried.
 */
static int crash_states_open(struct cow_dev *dev, uint64_t *rs)
{
    size_t nunits, nsizes;
    memdev_pending(dev, &nunits, &nsizes);
    uint8_t *keep = malloc(nunits + 1);
    int tried = 0;
    for (size_t round = 0; round < nunits + 2 + 40; round++) {
        memdev_keep_pattern(round, nunits, keep, rs);
        size_t len;
        uint8_t *img = memdev_crash_state(dev, keep, nsizes, &len);
        int rc;
        char msg[1024];
        cow_store *st = open_img(img, len, &rc, msg, sizeof msg);
        ck_assert_msg(rc == COW_OK, "crash state %zu of %zu units: %s", round, nunits, msg);
        cow_store_close(st);
        char *report;
        uint64_t np = test_fsck_report(img, len, &report, NULL);
        ck_assert_msg(np == 0, "crash state %zu: fsck:\n%s", round, report);
        free(report);
        free(img);
        tried++;
    }
    free(keep);
    return tried;
}

/* What a crash can do stays legal: records and commits written without a
 * flush (cow_store_persist), lost or torn in any order, open at the older
 * state with no error. */
START_TEST(crash_states_are_not_damage)
{
    uint64_t rs = test_seed() ^ 0xda3a;
    struct cow_dev *dev;
    cow_file *f, *w;
    cow_store *st = memdev_store_file(&dev, NULL, "db", &f);
    file_put_str(f, "committed");
    ck_assert_int_eq(cow_store_commit(st), COW_OK);
    int tried = 0;
    uint8_t buf[3 * BLK];
    for (int step = 0; step < 6; step++) {
        test_fill(&rs, buf, sizeof buf);
        ck_assert_int_eq(cow_file_write(f, buf, sizeof buf, (uint64_t)step * BLK), COW_OK);
        switch (step) {
        case 0: /* a record without flush, on a flushed commit */
        case 1: /* ... and another: the first may be lost, the second kept */
            ck_assert_int_eq(cow_store_persist(st), COW_OK);
            break;
        case 2: /* a new file: a commit without flush */
            ck_assert_int_eq(cow_file_open(st, "db-wal", 1, &w), COW_OK);
            ck_assert_int_eq(cow_file_write(w, buf, BLK, 0), COW_OK);
            ck_assert_int_eq(cow_store_persist(st), COW_OK);
            break;
        case 3: /* records on the commit not flushed */
        case 4:
            ck_assert_int_eq(cow_store_persist(st), COW_OK);
            break;
        case 5: /* a one-flush commit in flight */
            ck_assert_int_eq(cow_store_persist(st), COW_OK);
            tried += crash_states_open(dev, &rs);
            ck_assert_int_eq(cow_file_sync(f), COW_OK);
            ck_assert_int_eq(cow_file_write(f, buf, BLK, 0), COW_OK);
            break;
        }
        tried += crash_states_open(dev, &rs);
    }
    ck_assert_int_gt(tried, 100);
    cow_file_close(w);
    cow_file_close(f);
    cow_store_close(st);
}
END_TEST

Suite *damage_suite(void)
{
    Suite *s = suite_create("damage");
    TCase *tc;
    tc = test_case(s, "damage", 300, damage_commit_block_under_record,
                   damage_superblock_under_record, damage_record_under_record,
                   damage_record_that_does_not_parse, damage_record_of_missing_inode,
                   damage_generation_raised_under_record, damage_older_copy_generation_raised,
                   damage_record_under_torn_commit, damage_other_copy_lost_write,
                   damage_generation_out_of_range, damage_dir_item_of_wal,
                   crash_states_are_not_damage, NULL);
    tcase_add_loop_test(tc, damage_record_fsck_rules, 0, 6);
    return s;
}
