/*
 * mkbases.c - makes the fuzzers' base containers and seed corpora (make
 * fuzz-seeds; never committed: the build makes them).
 *
 *   build/fuzz/mkbases DIR
 *
 * writes DIR/bases/N-NAME.img (fz_make_bases(): see test/fuzz/fuzzlib.h)
 * and DIR/seeds/{open,replay,fsck,vfs}/ (for each base, an input with no
 * patch and one with the checksum fix-up bit; replay's only of the crash
 * images).  Checks that every base is
 * fsck-clean, that the crash images hold log records pending replay and
 * that the balanced one holds remap items, and prints what each holds.  Exits 0, or 2 with a message.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "../../tools/fsck.h"
#include "fuzzlib.h"

static const char *const harnesses[] = {"open", "replay", "fsck", "vfs"};

static void put_seed(const char *dir, const char *h, const char *name, const uint8_t *d,
                     size_t n)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/seeds/%s", dir, h);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/seeds/%s/%s", dir, h, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(d, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "mkbases: %s: %s\n", p, strerror(errno));
        exit(2);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkbases DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    char p[PATH_MAX];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/seeds", dir);
    mkdir(p, 0755);
    struct fz_base *b;
    size_t n;
    fz_make_bases(&b, &n);
    snprintf(p, sizeof p, "%s/bases", dir);
    fz_save_bases(b, n, p);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct cow_fsck_result res;
        char fp[PATH_MAX];
        snprintf(fp, sizeof fp, "%s/bases/%zu-%s.img", dir, i, b[i].name);
        int probs = cow_fsck(fp, COW_FSCK_DATA, stderr, &res);
        printf("mkbases: base %zu %-8s %7zu bytes, %zu non-zero blocks, %llu tree blocks, "
               "%llu subvolumes, %llu log records pending, %llu remap items, fsck %d problems\n",
               i, b[i].name, b[i].len, b[i].nblocks, (unsigned long long)res.tree_blocks,
               (unsigned long long)res.subvolumes, (unsigned long long)res.log_records,
               (unsigned long long)res.remap_items, probs);
        if (probs != 0 || (b[i].crashed && res.log_records == 0) ||
            (b[i].remapped && res.remap_items == 0)) {
            fprintf(stderr, "mkbases: base %s is not what it should be\n", b[i].name);
            bad = 1;
        }
        for (size_t h = 0; h < sizeof harnesses / sizeof *harnesses; h++) {
            if (strcmp(harnesses[h], "replay") == 0 && !b[i].crashed)
                continue;
            uint8_t in[8] = {(uint8_t)i};
            char name[64];
            snprintf(name, sizeof name, "%zu-%s", i, b[i].name);
            put_seed(dir, harnesses[h], name, in, 1);
            in[0] |= 0x80;
            snprintf(name, sizeof name, "%zu-%s-fix", i, b[i].name);
            put_seed(dir, harnesses[h], name, in, 1);
        }
    }
    fz_free_bases(b, n);
    return bad ? 2 : 0;
}
