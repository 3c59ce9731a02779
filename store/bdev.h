/*
 * bdev.h - the block-device interface every byte of store I/O goes through.
 *
 * The store never calls pread/pwrite/fdatasync itself: it calls these
 * methods, so tests can substitute a device that loses, tears or fails
 * writes (SQLite's os_unix.c routes system calls through a table for the
 * same reason).  Offsets and lengths are in bytes.
 */
#ifndef COW_BDEV_H
#define COW_BDEV_H

#include <stddef.h>
#include <stdint.h>

/* One range of a cow_dev readv: LEN bytes at byte offset OFF into BUF;
 * RC gets read's code for it. */
struct cow_iov {
    void *buf;
    size_t len;
    uint64_t off;
    int rc;
};

struct cow_dev {
    /* Reads LEN bytes at OFF; reading past the end is COW_EIO_READ. */
    int (*read)(struct cow_dev *d, void *buf, size_t len, uint64_t off);
    /* Writes LEN bytes at OFF (not durable until flush).  COW_EIO_WRITE or
     * COW_ENOSPC. */
    int (*write)(struct cow_dev *d, const void *buf, size_t len, uint64_t off);
    /* Makes every completed write durable.  COW_EIO_FLUSH. */
    int (*flush)(struct cow_dev *d);
    /* Current size in bytes.  COW_EIO_STAT. */
    int (*size)(struct cow_dev *d, uint64_t *size);
    /* Grows the device to SIZE bytes with space really reserved (so later
     * writes below SIZE cannot fail for lack of space); the new bytes read
     * as zeros (file.c grow_extents does not zero them again).
     * COW_ENOSPC, COW_EIO_TRUNCATE. */
    int (*grow)(struct cow_dev *d, uint64_t size);
    /* Optional (NULL: the device never shrinks).  Cuts the device to SIZE
     * bytes, giving the space after it back (relocation, once nothing
     * there is named by the last flushed commit).  COW_EIO_TRUNCATE. */
    int (*shrink)(struct cow_dev *d, uint64_t size);
    /* Releases the device (and its lock).  A new container never
     * published is removed. */
    void (*close)(struct cow_dev *d);
    uint64_t nflush;  /* flushes issued (statistics) */
    uint64_t nwrite;  /* write calls (statistics) */
    /* Optional (NULL: the device is already where it belongs).  Called
     * once, by cow_store_open() after formatting a new container and
     * flushing its first commit: makes the container appear at its path,
     * atomically and durably, so that a crash during the format leaves
     * either no container or a whole one.  COW_EBUSY (another process
     * made or replaced the path meanwhile; nothing of it is touched),
     * COW_EIO_WRITE, COW_EIO_FLUSH. */
    int (*publish)(struct cow_dev *d);
    /* Optional (NULL: no other process can open the device, as for a
     * test's memory device).  The open descriptor of the container file
     * whose open file description carries this process's locks on it
     * (store/shared.c, store/lockspace.h), or -1 while the container is
     * still being made.  Owned by the device: valid until close. */
    int (*lock_fd)(struct cow_dev *d);
    /* Optional (NULL: nothing to do).  Starts writing [OFF, +LEN) (bytes,
     * written by earlier write calls) to the medium, and with WAIT waits
     * until that is done (Linux's sync_file_range, SYNC_FILE_RANGE_WRITE,
     * and WAIT_BEFORE/WAIT_AFTER), so that a later flush, this thread's or
     * another's, finds less to write or wait for.  A hint for bulk writers
     * (relocation's copies): it makes nothing durable (no metadata, no
     * cache flush) and reports no error (the flush does). */
    void (*writeback)(struct cow_dev *d, uint64_t off, uint64_t len, int wait);
    /* Optional (NULL: the caller writes zeros).  Makes [OFF, +LEN) (bytes,
     * inside the device) read as zeros, as writing zeros there would, and
     * as durable as writes are: after the next flush.  The file device
     * asks the host file system for a range of LEN >= 1 MiB (fallocate
     * FALLOC_FL_ZERO_RANGE: extents marked unwritten, no data written)
     * and writes smaller ones (a first write into an unwritten extent
     * costs the host a journal commit at the flush after it: fd_grow).
     * COW_EIO_WRITE or COW_ENOSPC. */
    int (*zero)(struct cow_dev *d, uint64_t off, uint64_t len);
    /*
     * Readers on other clients (RADOS, bdev_rados.c), which no shared
     * memory tells a writer about: invariant 9 across clients.  Optional
     * (NULL on a local container, whose readers are in store/shared.c's
     * reader table, and on test devices).  A read-only device has
     * reader_pin and writer_elsewhere; a writable one readers_oldest.
     *
     * reader_pin: from when it returns, no writer reuses space that a
     * commit newer than generation GEN frees (0: every commit's, for a
     * load about to read the newest commit, whichever it is), until the
     * next call or close.  COW_EIO_READ.
     */
    int (*reader_pin)(struct cow_dev *d, uint64_t gen);
    /*
     * readers_oldest: space that the commit of generation G freed may be
     * reused once G is at most the value returned: the oldest generation
     * a reader on another client pins, as of a look at the pins that
     * began after generation D was flushed, and at most D (a reader that
     * pinned after that look read D or newer).  DURABLE is the newest
     * flushed generation now: a look older than it is started, on the
     * device's thread; this call never waits for the cluster.  0 until a
     * first look has ended (nothing may be reused).
     */
    uint64_t (*readers_oldest)(struct cow_dev *d, uint64_t durable);
    /*
     * writer_elsewhere: 1 if a writer on another client holds the device
     * now (so its log may hold records newer than the commit a reader
     * read, written since), 0 if none does.  COW_EIO_READ.
     */
    int (*writer_elsewhere)(struct cow_dev *d);
    /*
     * Optional (NULL: read each range).  Reads the N ranges of V, each as
     * read would, all in flight at once where the device can (RADOS: one
     * aio read per object piece of every range, then all waited for:
     * about one round trip instead of N), setting each one's RC.  Returns
     * COW_OK when every RC is set, else COW_ENOMEM with none set (the
     * caller reads each range).
     */
    int (*readv)(struct cow_dev *d, struct cow_iov *v, size_t n);
};

/* bdev_file_open() flags */
#define BDEV_READONLY 0x1
#define BDEV_CREATE 0x2

/*
 * Opens the container file PATH as a device and locks it: flock LOCK_SH
 * (several processes may open it; the shared state orders them), which
 * only a creator's LOCK_EX on an empty PATH conflicts with, non-blocking,
 * on the file PATH names once the lock is held (an open that races with a
 * rename tries again).
 *
 * With BDEV_CREATE (and not BDEV_READONLY), a PATH that is missing or
 * empty is not written: the device is a new temporary file PATH-cownew,
 * locked, and *created is set to 1; its publish method renames it onto
 * PATH once the caller has formatted and flushed it (the way editors save
 * a file).  A PATH-cownew left by a crash during a format is reused by the
 * next create; one that is locked means another process is creating PATH
 * (COW_EBUSY).
 *
 * Errors: COW_ENOENT (missing and no BDEV_CREATE), COW_EBUSY (being made
 * by another process), COW_ENOTCONTAINER (not a regular file), COW_EIO_READ,
 * COW_EIO_STAT, COW_EIO_TRUNCATE, COW_ENOMEM.
 */
int bdev_file_open(const char *path, int flags, struct cow_dev **out, int *created);

#ifdef COW_DEBUG
/*
 * Test builds only (the release library has no such hook).  With an opener
 * set, bdev_file_open() first calls FN(ARG, path, flags, out, created): a
 * return of BDEV_TEST_DECLINE lets it open the file as usual; anything else
 * is its result (COW_OK with *out set, or a COW_E* code).  So the real VFS
 * can run on a simulated device (test/crash/).  FN NULL removes the hook.
 * Not synchronised: set it while no store is being opened.
 */
#define BDEV_TEST_DECLINE 1
typedef int (*bdev_test_opener)(void *arg, const char *path, int flags, struct cow_dev **out,
                                int *created);
void bdev_set_test_opener(bdev_test_opener fn, void *arg);
#endif

#endif
