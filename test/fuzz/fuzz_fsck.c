/*
 * fuzz_fsck.c - libFuzzer harness of the checker (tools/fsck/): the
 * patched base (fuzzlib.h's input format) is written to a memfd, which
 * cow_fsck() (with data and notes) and cow_dump() read by its
 * /proc/self/fd path, as they read any container.  Problems are the
 * expected outcome; a crash, hang, leak or sanitizer report is a bug.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../tools/fsck.h"
#include "fuzzlib.h"

static struct fz_harness fz;
static int memfd = -1;
static char path[64];
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_harness_init(&fz);
    memfd = memfd_create("cowfuzz-fsck", MFD_CLOEXEC);
    devnull = fopen("/dev/null", "w");
    if (memfd < 0 || !devnull) {
        perror("fuzz_fsck: memfd_create or /dev/null");
        exit(2);
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = fz_harness_apply(&fz, data, size, 0);
    if (ftruncate(memfd, (off_t)len) != 0 || pwrite(memfd, fz.img, len, 0) != (ssize_t)len) {
        perror("fuzz_fsck: memfd write");
        exit(2);
    }
    struct cow_fsck_result res;
    cow_fsck(path, COW_FSCK_DATA | COW_FSCK_NOTES, devnull, &res);
    cow_dump(path, 0, UINT64_MAX, devnull);
    return 0;
}
