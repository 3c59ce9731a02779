/*
 * driver.c - the crash simulator (make crash): SQLite workloads through the
 * real "cow" VFS on a simulated device, crashed at every flush and at
 * random writes, and every crash state checked.
 *
 * HOW.  bdev_set_test_opener() (a COW_DEBUG hook in store/bdev.c) hands
 * every cow_store_open() of the harness's container path a device that the
 * harness controls; the container file itself is an empty placeholder.  A
 * workload run has two phases:
 *
 *   1. Record.  The workload runs once, deterministically from its seed,
 *      through a shim VFS ("crashshim", the default VFS, so that SQLite's
 *      randomness is seeded too) that forwards to "cow".  The device logs
 *      every write, grow and flush in order: the op log.  The shim keeps a
 *      shadow of each file SQLite writes (db, journal, WAL) and the history
 *      of each 512-byte sector and of each file's size: what it held from
 *      which instant on.  The harness keeps a model of the database after
 *      each transaction, and the op counts at which each transaction began
 *      and its COMMIT returned.  The workloads snap-delete and snap-wal also
 *      make snapshots and branches (pragmas between transactions and inside
 *      them, also after SQLite spilled; the C API for branches of snapshots
 *      and snapshots of branches) and delete them; for each the harness
 *      keeps the model state it was made of and the op counts of its making
 *      and deletion.
 *
 *      The attach workloads (attach.c) ATTACH a second database,
 *      another container (a second device, logged in the same op log) or a
 *      unix database (a file of crashfs, whose writes, syncs and deletes
 *      are logged too), and every transaction writes both: each COMMIT is
 *      a multi-database commit with a super-journal (a crashfs file).
 *
 *   2. Crash.  The op log is replayed into a memdev (test/testutil.c), which
 *      keeps the writes since the last flush pending.  The crash points are
 *      every flush (the state just before it completes) and random writes
 *      between flushes.  Each point yields several crash states: every
 *      pending write kept (an application crash), random subsets of whole
 *      4 KiB blocks and of blocks torn at 512-byte sectors, prefixes, and
 *      states where the device did not keep its last size changes.  States
 *      that are the same within a flush interval are checked once.  The
 *      second container's pending writes are chosen the same way,
 *      independently, and each crashfs file keeps what its last sync made
 *      durable or everything written (crashfs syncs and deletes are crash
 *      points too).
 *
 * CHECKS, for every crash state, in this order:
 *
 *   - fsck: cow_fsck() of the raw image finds no problem (notes are fine);
 *   - data: the store opens the image read-only (replaying its log in
 *     memory), and db, db-journal and db-wal are read.  Every 512-byte
 *     sector holds zeros or something SQLite once wrote at that offset (no
 *     garbage), and each file as a whole equals SQLite's view of it at one
 *     instant before the crash (no stale or mixed content).  This runs
 *     before SQLite opens the database, since its recovery rewrites files;
 *   - SQLite: the database opens through "cow" (recovery runs), PRAGMA
 *     integrity_check says ok, and the content equals the model after some
 *     transaction k, which lies between the last transaction whose COMMIT
 *     returned durably (as the journal mode and synchronous promise; with
 *     every write kept, every COMMIT that returned) and the last one that
 *     had begun.  Each transaction writes rows tagged with its number and a
 *     checksum and one row into table tx, so a transaction half there is a
 *     content that matches no k;
 *   - snapshots, with the live database still open: the container's
 *     listing (cowvfs_container_list) holds every snapshot and branch whose
 *     making had returned (they are durable when they return) and whose
 *     deletion had not begun, none whose making had not begun or whose
 *     deletion had returned, and no name the workload never made; one
 *     whose making or deletion was in flight at the crash may be there or
 *     not, but nothing in between: each listed one has the kind and source
 *     it was made with, was there before recovery too, opens through
 *     SQLite (snapshot=NAME read-only, branch=NAME read-write), passes
 *     integrity_check, and holds exactly the model state it was made of (a
 *     snapshot is one committed state, not some k; taken inside a
 *     transaction, the one before it).  An unfinished branch (how the VFS
 *     makes a snapshot of a transaction that spilled) may be in the image
 *     only while its making was in flight, and recovery must delete it.
 *     And since making one commits everything with a flush, the live
 *     database holds at least the transaction committed when it was made;
 *   - sharing, in a state inside PRAGMA cow_balance recovered to the
 *     transaction committed when the balance began: every snapshot's and
 *     branch's exclusive and shared bytes in that listing are what they
 *     were when the balance began (check.c check_usage; the record phase
 *     also fails if the balance itself changed them);
 *   - attach workloads: the second database, ATTACHed after the crash,
 *     passes integrity_check and holds exactly the transaction the main
 *     database holds (all of a transaction or none of it, in both) and
 *     the model's rows after it;
 *   - fsck again once SQLite has closed the database and the snapshots
 *     (recovery's writes, and SQLite's own in a branch).  One state in four
 *     also lets SQLite checkpoint at those closes.
 *
 * Everything is derived from the seed; a failure prints the command that
 * replays exactly that state:  build/crash --workload NAME --seed N --state K
 * The store's own randomness (log ids, timestamps) is not seeded, so a
 * replay repeats the same device operations (--trace checks that) but not
 * every byte of metadata.  Runs are spread over worker processes (--jobs);
 * which (round, workload) items run does not depend on how many.
 */
#include "crash.h"

/* ---------------------------------------------------------------------------
 * Crash points and states
 */

struct opts {
    uint64_t seed;
    long min_states;      /* run rounds until this many states were checked */
    int ntxn;             /* transactions per workload */
    int per_point;        /* random states per crash point */
    int random_points;    /* random crash points per flush interval */
    int jobs;             /* worker processes */
    const char *only;     /* one workload */
    long state;           /* replay this state (-1: all) */
    uint64_t expect_trace;
    const char *save;     /* replay: write the crash image here */
    int max_report;       /* failures reported in full per workload run */
    char shape[96];       /* the options above that number the states, for replays */
};

struct totals {
    long runs, points, states, failures, dups;
    long durable;         /* states where a returned COMMIT had to be there */
    long appcrash;        /* states with every write kept */
    long sizelost;        /* states that lost size changes (grows) */
    long insnap;          /* states inside the making or deletion of a snapshot */
    long snapchecks;      /* snapshots and branches opened and read */
    long usagechecks;     /* ... whose space was compared with a balance's */
    long either[2];       /* ... that may exist or not: [0] absent, [1] there */
    double secs[5];       /* T_* */
};

/* Shared by the worker processes (a MAP_SHARED mapping), or private. */
static struct shared {
    pthread_mutex_t mutex; /* process-shared, robust: output and the fields below */
    long next_item;        /* the next (round, workload) to run */
    int no_states;         /* stopped: a round of runs checked no crash state */
    struct totals t;
} *sh;

/* Locks sh->mutex, also when a worker died holding it (a robust mutex). */
static void sh_lock(void)
{
    if (pthread_mutex_lock(&sh->mutex) == EOWNERDEAD)
        pthread_mutex_consistent(&sh->mutex);
}

/* Writes S to stdout in one piece (workers share it). */
static void emit(const char *s)
{
    sh_lock();
    fputs(s, stdout);
    fflush(stdout);
    pthread_mutex_unlock(&sh->mutex);
}

static void describe_point(const struct run *r, const struct state *s, struct msg *m)
{
    struct bounds b;
    bounds_at(r, s, &b);
    const struct op *o = s->point < g.nops ? &g.ops[s->point] : NULL;
    msg_add(m, "  crash point: op %zu of %zu (%s), %zu pending units, %zu pending size changes\n",
            s->point, g.nops,
            !o                       ? "after the last op"
            : o->type == OP_FLUSH    ? "a flush, before it completes"
            : o->type == OP_PUBLISH  ? "a new container's rename into place, before it completes"
                                     : "a write, before it",
            s->nunits, s->nsizes);
    msg_add(m, "  state: %s: kept %zu units whole, tore %zu, kept %zu of %zu size changes\n",
            s->kind, s->kept, s->torn, s->kept_sizes, s->nsizes);
    if (b.inflight >= 0)
        msg_add(m, "  in flight: step %d: %s\n", b.inflight, r->steps[b.inflight].what);
    msg_add(m, "  allowed: txn %d..%d\n", b.kmin, b.kmax);
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct snaprec *rec = &r->recs[i];
        int e = rec_expect(rec, s);
        if (s->point <= rec->made.start)
            continue;
        msg_add(m, "  %s %s of %s, txn %d%s: %s (",
                rec->kind == COWVFS_SNAPSHOT ? "snapshot" : "branch", rec->name,
                rec->source[0] ? rec->source : "the live database", rec->k,
                rec->in_txn == 2   ? ", made in a transaction that had spilled"
                : rec->in_txn == 1 ? ", made in a transaction"
                                   : "",
                e == REC_PRESENT ? "must exist" : e == REC_ABSENT ? "must not exist" : "may exist");
        span_describe(m, "made", &rec->made);
        if (rec->gone.start != SIZE_MAX) {
            msg_add(m, "; ");
            span_describe(m, "deleted", &rec->gone);
        }
        msg_add(m, ")\n");
    }
}

/* 1 if crash point S lies inside the making or deletion of a snapshot or
 * branch (before its last flush completed). */
static int in_snap_op(const struct run *r, const struct state *s)
{
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct snaprec *rec = &r->recs[i];
        if ((s->point > rec->made.start && !span_done(&rec->made, s)) ||
            (rec->gone.start != SIZE_MAX && s->point > rec->gone.start &&
             !span_done(&rec->gone, s)))
            return 1;
    }
    return 0;
}

/*
 * Fills KEEP (one byte per pending unit of DEV) for state number J of a
 * crash point and returns its kind; *nsizes is how many pending size
 * changes survive.
 */
static const char *choose(uint64_t *rng, int j, int first_interval, uint8_t *keep, size_t nunits,
                          size_t nsizes, size_t *keep_sizes)
{
    const char *kind;
    *keep_sizes = nsizes;
    if (j == 0) {
        memset(keep, 0xff, nunits);
        return "all pending writes kept (application crash)";
    }
    if (j == 1 && first_interval) {
        memset(keep, 0, nunits);
        return "no pending write kept";
    }
    if (j == 1 && nsizes) {
        memset(keep, 0xff, nunits);
        *keep_sizes = rnd_below(rng, nsizes);
        return "every write kept, the last size changes lost";
    }
    uint64_t x = rnd_below(rng, 100);
    if (x < 20) {
        /* the device wrote in order and stopped, maybe mid-block */
        size_t upto = (size_t)rnd_below(rng, nunits + 1);
        for (size_t u = 0; u < nunits; u++)
            keep[u] = u < upto ? 0xff : 0;
        if (upto < nunits && rnd_below(rng, 2))
            keep[upto] = (uint8_t)((1u << (1 + rnd_below(rng, 7))) - 1);
        kind = "a prefix of the pending writes";
    } else {
        /* any subset: each unit whole, torn or lost */
        uint64_t q = 10 + rnd_below(rng, 81), torn = rnd_below(rng, 3) ? 10 : 40;
        for (size_t u = 0; u < nunits; u++) {
            uint64_t y = rnd_below(rng, 100);
            keep[u] = y < q ? 0xff : y < q + torn ? (uint8_t)(1 + rnd_below(rng, 254)) : 0;
        }
        kind = "a random subset of the pending writes, some torn";
    }
    if (nsizes && rnd_below(rng, 5) == 0)
        *keep_sizes = rnd_below(rng, nsizes + 1);
    return kind;
}

/* Lists the pending units and what the state keeps of each (-v -v). */
static void describe_units(struct cow_dev *dev, const uint8_t *keep, size_t nunits)
{
    for (size_t u = 0; u < nunits; u++) {
        uint64_t off;
        size_t len;
        int w = memdev_unit(dev, u, &off, &len);
        printf("  unit %zu: write %d, bytes %" PRIu64 "..%" PRIu64 " (block %" PRIu64 "): %s",
               u, w, off, off + len - 1, off / MEMDEV_BLOCK,
               keep[u] == 0xff ? "kept" : keep[u] ? "torn, sectors kept:" : "lost");
        for (int sec = 0; keep[u] != 0xff && sec < 8; sec++)
            if (keep[u] & (1u << sec))
                printf(" %d", sec);
        printf("\n");
    }
}

/*
 * The crash phase of one run: replays the op log into a memdev, and checks
 * states at every crash point (or only state O->state).  Adds to T.
 * Returns the number of failures.
 */
static long crash_phase(const struct run *r, const struct opts *o, struct totals *t)
{
    long failures = 0, nstate = 0;
    uint64_t rng = mix64(r->seed ^ 0xc7a54);
    struct cow_dev *dev = memdev_new(NULL);
    struct cow_dev *dev2 = r->w->attach == ATT_COW ? memdev_new(NULL) : NULL;
    struct hset seen;
    memset(&seen, 0, sizeof seen);
    size_t capkeep = 64, capkeep2 = 64;
    uint8_t *keep = xrealloc(NULL, capkeep); /* never NULL: memset(keep, x, 0) */
    uint8_t *keep2 = xrealloc(NULL, capkeep2);
    size_t interval = 0; /* flushes so far */
    size_t last_flush = 0;
    int published = 0;   /* the container is at its path (OP_PUBLISH replayed) */
    int published2 = 0;  /* ... the second one */
    crashfs_replay_begin();

    /* random crash points: in each flush interval, after random writes */
    uint8_t *is_point = xrealloc(NULL, g.nops + 1);
    memset(is_point, 0, g.nops + 1);
    for (size_t i = 0; i <= g.nops; i++) {
        if (i == g.nops || g.ops[i].type == OP_FLUSH || g.ops[i].type == OP_PUBLISH ||
            g.ops[i].type == OP_FS_SYNC || g.ops[i].type == OP_FS_DELETE) {
            if (i < g.nops)
                is_point[i] = 1;
            size_t nw = i - last_flush;
            for (int k = 0; k < o->random_points && nw > 0; k++)
                is_point[last_flush + 1 + rnd_below(&rng, nw)] = 1;
            last_flush = i + 1;
        }
    }
    for (size_t p = 0; p <= g.nops; p++) {
        if (is_point[p]) {
            struct state s;
            memset(&s, 0, sizeof s);
            s.point = p;
            memdev_pending(dev, &s.nunits, &s.nsizes);
            if (s.nunits > capkeep) {
                capkeep = s.nunits * 2;
                keep = xrealloc(keep, capkeep);
            }
            size_t nunits2 = 0, nsizes2 = 0, keep_sizes2 = 0;
            if (dev2)
                memdev_pending(dev2, &nunits2, &nsizes2);
            if (nunits2 > capkeep2) {
                capkeep2 = nunits2 * 2;
                keep2 = xrealloc(keep2, capkeep2);
            }
            t->points++;
            for (int j = 0; j < 2 + o->per_point; j++) {
                uint64_t srng = mix64(rng ^ mix64(p) ^ (uint64_t)j);
                s.kind = choose(&srng, j, interval == 0, keep, s.nunits, s.nsizes, &s.kept_sizes);
                s.app_crash = j == 0;
                s.kept = s.torn = 0;
                /* Before the rename of a new container is durable, the
                 * path holds no container, whatever the device kept; at
                 * the rename itself (which ends with a directory fsync)
                 * either outcome is possible. */
                s.unpublished = !published && (p == g.nops || g.ops[p].type != OP_PUBLISH ||
                                               s.app_crash || (j & 1));
                uint64_t sig = mix64(s.kept_sizes + 1);
                for (size_t u = 0; u < s.nunits && !s.unpublished; u++) {
                    s.kept += keep[u] == 0xff;
                    s.torn += keep[u] && keep[u] != 0xff;
                    if (keep[u])
                        sig = mix64(sig ^ mix64(u) ^ keep[u]);
                }
                if (s.unpublished) {
                    s.kind = "no container yet (its format was not renamed into place)";
                    sig = 0x7e3b;
                }
                /* the second container and the crashfs files, at random
                 * independently of the first container */
                uint64_t srng2 = mix64(srng ^ 0x5ec0d);
                int unpublished2 = 0;
                if (dev2) {
                    choose(&srng2, j, interval == 0, keep2, nunits2, nsizes2, &keep_sizes2);
                    unpublished2 = !published2 && (p == g.nops || g.ops[p].type != OP_PUBLISH ||
                                                   s.app_crash || (j & 2));
                    sig = mix64(sig ^ mix64(keep_sizes2 + 0x3f) ^ (uint64_t)unpublished2);
                    for (size_t u = 0; u < nunits2 && !unpublished2; u++)
                        if (keep2[u])
                            sig = mix64(sig ^ mix64(u + 0x9e37) ^ keep2[u]);
                }
                size_t nfsdiff = 0;
                sig ^= crashfs_crash(&srng2, s.app_crash, &nfsdiff);
                if (s.app_crash)
                    sig ^= 0xa11; /* checked with stricter bounds: never a duplicate */
                if (!hset_add(&seen, sig)) {
                    t->dups++;
                    continue;
                }
                long k = s.number = nstate++;
                if (o->state >= 0 && k != o->state)
                    continue;
                size_t len = s.unpublished ? 0 : memdev_crash_size(dev, s.kept_sizes);
                img_resize(0, len);
                if (!s.unpublished)
                    memdev_crash_fill(dev, keep, s.kept_sizes, g.im[0].p);
                if (dev2) {
                    img_resize(1, unpublished2 ? 0 : memdev_crash_size(dev2, keep_sizes2));
                    if (!unpublished2)
                        memdev_crash_fill(dev2, keep2, keep_sizes2, g.im[1].p);
                }
                struct msg m = {0};
                if (o->state >= 0) {
                    g.verbose = g.verbose ? g.verbose : 1;
                    describe_point(r, &s, &m);
                    printf("replaying %s seed %" PRIu64 " state %ld:\n%s", r->w->name, r->seed,
                           k, m.s);
                    m.n = 0;
                    if (g.verbose > 1)
                        describe_units(dev, keep, s.nunits);
                    fflush(stdout);
                    if (o->save) {
                        FILE *f = fopen(o->save, "wb");
                        if (!f || fwrite(g.im[0].p, 1, len, f) != len)
                            fprintf(stderr, "crash: cannot write %s\n", o->save);
                        if (f)
                            fclose(f);
                        printf("crash image (%zu bytes) written to %s\n", len, o->save);
                    }
                }
                t->states++;
                struct bounds b;
                bounds_at(r, &s, &b);
                t->durable += b.kmin >= 0;
                t->appcrash += s.app_crash;
                t->sizelost += s.kept_sizes < s.nsizes;
                t->insnap += in_snap_op(r, &s);
                g.snapchecks = g.usagechecks = g.either[0] = g.either[1] = 0;
                int failed = check_state(r, &s, &m);
                t->snapchecks += g.snapchecks;
                t->usagechecks += g.usagechecks;
                t->either[0] += g.either[0];
                t->either[1] += g.either[1];
                if (failed) {
                    failures++;
                    t->failures++;
                    if (failures <= o->max_report || o->state >= 0) {
                        struct msg d = {0};
                        msg_add(&d, "FAIL %s seed %" PRIu64 " state %ld\n", r->w->name, r->seed,
                                k);
                        describe_point(r, &s, &d);
                        msg_add(&d, "%s  replay: %s --workload %s --seed %" PRIu64
                                    " --state %ld%s --trace %016" PRIx64 "\n",
                                m.s, g.argv0, r->w->name, r->seed, k, o->shape, g.trace);
                        emit(d.s);
                        free(d.s);
                    }
                } else if (o->state >= 0) {
                    printf("state %ld passes every check\n", k);
                }
                free(m.s);
                fflush(stdout);
            }
        }
        if (p == g.nops || (o->state >= 0 && nstate > o->state))
            break;
        const struct op *op = &g.ops[p];
        if (op->type >= OP_FS_WRITE) {
            crashfs_replay_op(op);
            if (op->type == OP_FS_SYNC || op->type == OP_FS_DELETE)
                hset_clear(&seen);
            continue;
        }
        struct cow_dev *d = op->dev ? dev2 : dev;
        if (op->type == OP_PUBLISH) {
            *(op->dev ? &published2 : &published) = 1;
            continue;
        }
        int rc = op->type == OP_WRITE    ? d->write(d, op->data, op->len, op->off)
                 : op->type == OP_GROW   ? d->grow(d, op->off)
                 : op->type == OP_SHRINK ? d->shrink(d, op->off)
                                         : d->flush(d);
        if (rc != COW_OK) {
            fprintf(stderr, "crash: replaying op %zu: %s\n", p, cow_strerror(rc));
            exit(2);
        }
        if (op->type == OP_FLUSH) {
            interval++;
            hset_clear(&seen);
        }
    }
    if (o->state >= 0 && nstate <= o->state)
        printf("%s seed %" PRIu64 " has only %ld states\n", r->w->name, r->seed, nstate);
    if (failures > o->max_report && o->state < 0) {
        struct msg d = {0};
        msg_add(&d, "FAIL %s seed %" PRIu64 ": %ld failures in all (the first %d shown)\n",
                r->w->name, r->seed, failures, o->max_report);
        emit(d.s);
        free(d.s);
    }
    free(is_point);
    free(keep);
    free(keep2);
    hset_free(&seen);
    dev->close(dev);
    if (dev2)
        dev2->close(dev2);
    crashfs_replay_end();
    return failures;
}

/* ---------------------------------------------------------------------------
 * main
 */

static void usage(void)
{
    fprintf(stderr,
            "usage: crash [--seed N] [--min-states N] [--jobs N] [--txns N] [--per-point N]\n"
            "             [--random-points N] [--workload NAME] [--max-report N] [-v]\n"
            "       crash --workload NAME --seed N --state K [--trace HEX] [--save FILE] [-v]\n"
            "workloads:");
    for (size_t i = 0; i < NWORKLOADS; i++)
        fprintf(stderr, " %s", workloads[i].name);
    fprintf(stderr, "\n");
    exit(2);
}

/* Interrupted (^C, a closed pipe): remove the placeholder and its directory. */
static void on_signal(int sig)
{
    if (g.dir) {
        unlink(g.path);
        unlink(g.path2);
        rmdir(g.dir);
    }
    _exit(128 + sig);
}

static void setup_container(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/cowcrash.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) {
        perror("crash: mkdtemp");
        exit(2);
    }
    char real[PATH_MAX];
    if (!realpath(tmpl, real)) {
        perror("crash: realpath");
        exit(2);
    }
    g.dir = strdup(real);
    if (snprintf(g.path, sizeof g.path, "%s/crash.db", real) >= (int)sizeof g.path) {
        fprintf(stderr, "crash: %s: path too long\n", real);
        exit(2);
    }
    if (snprintf(g.path2, sizeof g.path2, "%s/crash2.db", real) >= (int)sizeof g.path2) {
        fprintf(stderr, "crash: %s: path too long\n", real);
        exit(2);
    }
    /* The VFS stat()s a container: empty placeholders.  Their bytes are
     * never used; the opener hook serves g.cur and g.cur2 instead. */
    for (int i = 0; i < 2; i++) {
        int fd = open(i ? g.path2 : g.path, O_CREAT | O_WRONLY, 0644);
        if (fd < 0) {
            perror("crash: placeholder");
            exit(2);
        }
        close(fd);
        struct image *im = &g.im[i];
        im->memfd = memfd_create("cowcrash-image", MFD_CLOEXEC);
        if (im->memfd < 0) {
            perror("crash: memfd_create");
            exit(2);
        }
        snprintf(im->path, sizeof im->path, "/proc/self/fd/%d", im->memfd);
        im->p = mmap(NULL, IMG_RESERVE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                     im->memfd, 0);
        if (im->p == MAP_FAILED) {
            perror("crash: mmap");
            exit(2);
        }
        im->len = 0;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, on_signal);
    bdev_set_test_opener(crash_opener, NULL);
}

static void teardown_container(void)
{
    bdev_set_test_opener(NULL, NULL);
    unlink(g.path);
    unlink(g.path2);
    rmdir(g.dir);
    free(g.dir);
    record_reset();
    free(g.ops);
    free(g.mut_op);
    for (int i = 0; i < 2; i++) {
        munmap(g.im[i].p, IMG_RESERVE);
        close(g.im[i].memfd);
    }
}

static void totals_add(struct totals *a, const struct totals *b)
{
    a->runs += b->runs;
    a->points += b->points;
    a->states += b->states;
    a->failures += b->failures;
    a->dups += b->dups;
    a->durable += b->durable;
    a->appcrash += b->appcrash;
    a->sizelost += b->sizelost;
    a->insnap += b->insnap;
    a->snapchecks += b->snapchecks;
    a->usagechecks += b->usagechecks;
    a->either[0] += b->either[0];
    a->either[1] += b->either[1];
    for (int i = 0; i < 5; i++)
        a->secs[i] += b->secs[i];
}

/*
 * One worker: takes (round, workload) items from SH until SH->t holds
 * O->min_states states (after one item per workload), runs and checks each,
 * and adds to SH->t.  The item number alone decides what runs, so the
 * result of an item does not depend on the number of workers.
 */
static void worker(const struct opts *o)
{
    size_t nw = o->only ? 1 : NWORKLOADS;
    uint8_t zero[SECTOR] = {0};
    g.zero_hash = sector_hash(zero);
    sqlite3_config(SQLITE_CONFIG_LOG, log_cb, NULL);
    sqlite3_initialize();
    crashfs_register(); /* first: cow's default VFS (vfs.c), for super-journals */
    shim_register();
    setup_container();
    for (;;) {
        sh_lock();
        long item = -1;
        /* A whole round of workloads ran and none reached a crash state
         * (each failed before it, in its record phase): more rounds would
         * never reach MIN_STATES; stop, and main reports it.  Otherwise
         * every workload runs at least once, then rounds go on until
         * MIN_STATES states were checked. */
        if (sh->t.runs >= (long)nw && sh->t.states == 0)
            sh->no_states = 1;
        else if (sh->t.states < o->min_states || sh->next_item < (long)nw)
            item = sh->next_item++;
        pthread_mutex_unlock(&sh->mutex);
        if (item < 0)
            break;
        const struct workload *w = &workloads[item % (long)nw];
        if (o->only)
            for (w = workloads; strcmp(w->name, o->only) != 0; w++)
                ;
        uint64_t seed = o->seed + (uint64_t)(item / (long)nw);
        struct totals t;
        struct run r;
        memset(&t, 0, sizeof t);
        memset(g.secs, 0, sizeof g.secs);
        t.runs = 1;
        double t0 = now_secs();
        /* an attach workload's transactions have about three times the
         * crash points of the others (the second database's and the
         * super-journal's syncs): it runs half as many */
        int rfail = record(&r, w, seed, w->attach ? (o->ntxn + 1) / 2 : o->ntxn);
        g.secs[T_RECORD] += now_secs() - t0;
        if (rfail) {
            struct msg d = {0};
            msg_add(&d, "FAIL %s seed %" PRIu64 ": the workload itself failed: %s\n", w->name,
                    seed, r.errbuf);
            emit(d.s);
            free(d.s);
            t.failures++;
        } else {
            if (o->state >= 0 && o->expect_trace && g.trace != o->expect_trace)
                printf("warning: this run's device operations differ from the failing run's "
                       "(trace %016" PRIx64 ", expected %016" PRIx64 "): the replay may not "
                       "reproduce it\n",
                       g.trace, o->expect_trace);
            if (g.verbose && o->state < 0) {
                printf("%s seed %" PRIu64 ": trace %016" PRIx64 "\n", w->name, seed, g.trace);
                for (size_t i = 0; i < r.nsteps; i++)
                    printf("  step %zu: ops %zu..%zu: %s\n", i, r.steps[i].start, r.steps[i].ret,
                           r.steps[i].what);
            }
            t0 = now_secs();
            crash_phase(&r, o, &t);
            g.secs[T_GEN] += now_secs() - t0 - g.secs[T_FSCK] - g.secs[T_DATA] - g.secs[T_SQLITE];
        }
        memcpy(t.secs, g.secs, sizeof t.secs);
        if (o->state < 0) {
            struct msg d = {0};
            msg_add(&d, "%-15s seed %" PRIu64 ": %d txns, %zu steps, %zu device ops, %ld crash "
                        "points, %ld states, %ld failures\n",
                    w->name, seed, r.ntxn, r.nsteps, g.nops, t.points, t.states, t.failures);
            if (r.nrecs)
                msg_add(&d, "%-15s   %zu snapshots and branches made (%d inside transactions, "
                            "%d of them spilled), %d deleted; %ld states inside those "
                            "operations, %ld snapshots and branches checked (%ld of them "
                            "inside a balance, their space too)\n",
                        "", r.nrecs, r.nintxn, r.nspilled, r.ndeletes, t.insnap,
                        t.snapchecks, t.usagechecks);
            emit(d.s);
            free(d.s);
        }
        run_free(&r);
        sh_lock();
        totals_add(&sh->t, &t);
        pthread_mutex_unlock(&sh->mutex);
        if (o->state >= 0)
            break;
    }
    teardown_container();
    sqlite3_vfs_unregister(&shimVfs);
    crashfs_unregister();
}

int main(int argc, char **argv)
{
    struct opts o = {.min_states = 20000, .ntxn = 100, .per_point = 3, .random_points = 1,
                     .state = -1, .max_report = 3};
    const char *env = getenv("COW_TEST_SEED");
    int have_seed = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o.jobs = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
    g.argv0 = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-v") == 0) {
            g.verbose++;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--seed") == 0) {
            o.seed = strtoull(v, NULL, 0);
            have_seed = 1;
        } else if (strcmp(a, "--min-states") == 0) {
            o.min_states = strtol(v, NULL, 0);
        } else if (strcmp(a, "--jobs") == 0) {
            o.jobs = atoi(v);
        } else if (strcmp(a, "--txns") == 0) {
            o.ntxn = atoi(v);
        } else if (strcmp(a, "--per-point") == 0) {
            o.per_point = atoi(v);
        } else if (strcmp(a, "--random-points") == 0) {
            o.random_points = atoi(v);
        } else if (strcmp(a, "--workload") == 0) {
            o.only = v;
        } else if (strcmp(a, "--state") == 0) {
            o.state = strtol(v, NULL, 0);
        } else if (strcmp(a, "--trace") == 0) {
            o.expect_trace = strtoull(v, NULL, 16);
        } else if (strcmp(a, "--save") == 0) {
            o.save = v;
        } else if (strcmp(a, "--max-report") == 0) {
            o.max_report = atoi(v);
        } else {
            usage();
        }
    }
    if (o.ntxn < 1 || o.per_point < 0 || o.random_points < 0 || o.jobs < 1)
        usage();
    if (o.only) {
        size_t i;
        for (i = 0; i < NWORKLOADS && strcmp(workloads[i].name, o.only) != 0; i++)
            ;
        if (i == NWORKLOADS)
            usage();
    }
    if (o.state >= 0 && (!o.only || !have_seed))
        usage();
    if (o.state >= 0)
        o.jobs = 1;
    o.shape[0] = 0;
    if (o.ntxn != 100 || o.per_point != 3 || o.random_points != 1)
        snprintf(o.shape, sizeof o.shape, " --txns %d --per-point %d --random-points %d", o.ntxn,
                 o.per_point, o.random_points);
    if (!have_seed)
        o.seed = env ? strtoull(env, NULL, 0)
                     : ((uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid()) % 1000000000;

    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("crash: mmap");
        return 2;
    }
    memset(sh, 0, sizeof *sh);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&sh->mutex, &ma);
    pthread_mutexattr_destroy(&ma);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (o.state < 0)
        printf("crash: seed %" PRIu64 ", %d transactions a workload run, at least %ld states, "
               "%d jobs\n",
               o.seed, o.ntxn, o.min_states, o.jobs);
    fflush(stdout);
    int died = 0;
    if (o.jobs == 1) {
        worker(&o);
    } else {
        for (int j = 0; j < o.jobs; j++) {
            pid_t pid = fork();
            if (pid < 0) {
                perror("crash: fork");
                died++;
                break;
            }
            if (pid == 0) {
                worker(&o);
                exit(0); /* through exit: LeakSanitizer checks the worker */
            }
        }
        int status;
        while (wait(&status) > 0)
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                printf("FAIL a worker process ended with status %d\n", status);
                died++;
            }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    const struct totals *t = &sh->t;
    if (o.state < 0) {
        printf("crash: %ld workload runs, %ld crash points, %ld crash states checked "
               "(%ld with a returned COMMIT that must be there, %ld application crashes, "
               "%ld with lost grows; %ld duplicates skipped), %ld failures, %.1f s\n",
               t->runs, t->points, t->states, t->durable, t->appcrash, t->sizelost, t->dups,
               t->failures + died, secs);
        if (t->snapchecks)
            printf("crash: %ld states inside the making or deletion of a snapshot or branch "
                   "(it existed in %ld, not in %ld), %ld snapshots and branches opened and "
                   "checked, %ld of them in states inside a balance, with their space "
                   "(sharing unchanged)\n",
                   t->insnap, t->either[1], t->either[0], t->snapchecks, t->usagechecks);
        printf("crash: cpu: record %.1f s, fsck %.1f s, data %.1f s, sqlite %.1f s, "
               "crash states %.1f s\n",
               t->secs[T_RECORD], t->secs[T_FSCK], t->secs[T_DATA], t->secs[T_SQLITE],
               t->secs[T_GEN]);
        if (sh->no_states)
            printf("crash: stopped after %ld workload runs: none of them reached a crash "
                   "state (each failed before its first; see the FAILs above), so "
                   "--min-states %ld could never be reached\n",
                   t->runs, o.min_states);
        if (t->failures + died)
            printf("crash: FAILED; each FAIL above gives the command that replays it\n");
    }
    return t->failures + died || sh->no_states ? 1 : 0;
}
