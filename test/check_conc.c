/*
 * check_conc.c - concurrency: the injection points (store/inject.h) and
 * threads racing on one store, through the store API and through SQLite.
 *
 * `make tsan` runs this suite under ThreadSanitizer.  Worker threads never
 * call ck_assert (it must run on the test's own thread): they record the
 * first failure in a struct conc_fail, which the test asserts after joining
 * them.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cowvfs.h"
#include "inject.h"
#include "store_int.h" /* cow_store_open_dev, struct cow_dev */
#include "testutil.h"

/* ---------------------------------------------------------------------------
 * Helpers
 */

/* The first failure of any thread of a test. */
struct conc_fail {
    pthread_mutex_t mu;
    atomic_int failed;
    char why[300];
};

static void fail_init(struct conc_fail *f)
{
    pthread_mutex_init(&f->mu, NULL);
    atomic_init(&f->failed, 0);
    f->why[0] = 0;
}

static void fail_destroy(struct conc_fail *f)
{
    pthread_mutex_destroy(&f->mu);
}

static void fail_set(struct conc_fail *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail_set(struct conc_fail *f, const char *fmt, ...)
{
    pthread_mutex_lock(&f->mu);
    if (!atomic_load(&f->failed)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->why, sizeof f->why, fmt, ap);
        va_end(ap);
        atomic_store(&f->failed, 1);
    }
    pthread_mutex_unlock(&f->mu);
}

static int fail_any(struct conc_fail *f)
{
    return atomic_load(&f->failed);
}

/* Asserts on the test's thread that no worker failed. */
static void fail_check(struct conc_fail *f)
{
    pthread_mutex_lock(&f->mu);
    int failed = atomic_load(&f->failed);
    char why[sizeof f->why];
    memcpy(why, f->why, sizeof why);
    pthread_mutex_unlock(&f->mu);
    ck_assert_msg(!failed, "%s", why);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *path_in(const char *dir, const char *name)
{
    char *p = NULL;
    ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
    return p;
}

#ifdef COW_DEBUG

/* ---------------------------------------------------------------------------
 * The injection mechanism itself
 */

#define WAIT_MS 10000 /* for a thread that is certainly on its way */

/* A thread that passes point "conc:step" NHITS times, recording its
 * progress before and after each hit. */
struct stepper {
    pthread_t th;
    unsigned nhits;
    atomic_uint before; /* hits begun */
    atomic_uint after;  /* hits passed */
};

static void *stepper_main(void *arg)
{
    struct stepper *s = arg;
    for (unsigned i = 0; i < s->nhits; i++) {
        atomic_fetch_add(&s->before, 1);
        COW_INJECT("conc:step");
        atomic_fetch_add(&s->after, 1);
    }
    return NULL;
}

static void stepper_start(struct stepper *s, unsigned nhits)
{
    s->nhits = nhits;
    atomic_init(&s->before, 0);
    atomic_init(&s->after, 0);
    ck_assert_int_eq(pthread_create(&s->th, NULL, stepper_main, s), 0);
}

/* One thread blocks at a point while the test thread observes it stopped
 * there, then releases it. */
START_TEST(test_inject_block)
{
    struct stepper s;
    ck_assert_int_eq(cow_inject_arm("conc:step", 0, 0, 1), 0);
    stepper_start(&s, 1);
    ck_assert_int_eq(cow_inject_wait("conc:step", 1, WAIT_MS), 0);
    ck_assert_uint_eq(cow_inject_blocked("conc:step"), 1);
    ck_assert_uint_eq(cow_inject_hits("conc:step"), 1);
    sleep_ms(20); /* it stays there */
    ck_assert_uint_eq(atomic_load(&s.before), 1);
    ck_assert_uint_eq(atomic_load(&s.after), 0);
    ck_assert_int_eq(cow_inject_release("conc:step"), 0);
    pthread_join(s.th, NULL);
    ck_assert_uint_eq(atomic_load(&s.after), 1);
    ck_assert_uint_eq(cow_inject_blocked("conc:step"), 0);
    /* used up: the next pass does not block */
    stepper_start(&s, 3);
    pthread_join(s.th, NULL);
    ck_assert_uint_eq(cow_inject_hits("conc:step"), 4);
    cow_inject_reset();
    ck_assert_uint_eq(cow_inject_hits("conc:step"), 0);
}
END_TEST

/* SKIP lets hits pass first; COUNT blocks several threads; NOT_ME lets the
 * arming thread through. */
START_TEST(test_inject_skip_count)
{
    struct stepper s, t[3];

    ck_assert_int_eq(cow_inject_arm("conc:step", 0, 2, 1), 0);
    stepper_start(&s, 5);
    ck_assert_int_eq(cow_inject_wait("conc:step", 1, WAIT_MS), 0);
    ck_assert_uint_eq(atomic_load(&s.before), 3);
    ck_assert_uint_eq(atomic_load(&s.after), 2);
    ck_assert_int_eq(cow_inject_release("conc:step"), 0);
    pthread_join(s.th, NULL);
    ck_assert_uint_eq(atomic_load(&s.after), 5);
    ck_assert_uint_eq(cow_inject_hits("conc:step"), 5);

    /* two of three threads block; the third passes */
    ck_assert_int_eq(cow_inject_arm("conc:step", COW_INJECT_NOT_ME, 0, 2), 0);
    COW_INJECT("conc:step"); /* the arming thread passes, and uses no COUNT */
    for (int i = 0; i < 3; i++)
        stepper_start(&t[i], 1);
    ck_assert_int_eq(cow_inject_wait("conc:step", 2, WAIT_MS), 0);
    unsigned passed = 0;
    for (uint64_t until = now_ms() + WAIT_MS; passed < 1 && now_ms() < until; sleep_ms(1)) {
        passed = 0;
        for (int i = 0; i < 3; i++)
            passed += atomic_load(&t[i].after);
    }
    ck_assert_uint_eq(passed, 1);
    ck_assert_uint_eq(cow_inject_blocked("conc:step"), 2);
    ck_assert_int_eq(cow_inject_release("conc:step"), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i].th, NULL);
    ck_assert_uint_eq(cow_inject_hits("conc:step"), 5 + 1 + 3);
    cow_inject_reset();
}
END_TEST

/* Waiting for a point nobody reaches times out; bad arguments. */
START_TEST(test_inject_timeout)
{
    ck_assert_int_eq(cow_inject_arm("conc:never", 0, 0, 1), 0);
    uint64_t t0 = now_ms();
    ck_assert_int_eq(cow_inject_wait("conc:never", 1, 50), ETIMEDOUT);
    uint64_t dt = now_ms() - t0;
    ck_assert_uint_ge(dt, 50);
    ck_assert_uint_lt(dt, 5000);
    ck_assert_int_eq(cow_inject_wait("conc:never", 1, 0), ETIMEDOUT);
    /* one blocked thread does not satisfy a wait for two */
    struct stepper s;
    ck_assert_int_eq(cow_inject_arm("conc:step", 0, 0, 1), 0);
    stepper_start(&s, 1);
    ck_assert_int_eq(cow_inject_wait("conc:step", 1, WAIT_MS), 0);
    ck_assert_int_eq(cow_inject_wait("conc:step", 2, 30), ETIMEDOUT);
    ck_assert_int_eq(cow_inject_release("conc:step"), 0);
    pthread_join(s.th, NULL);

    ck_assert_int_eq(cow_inject_release("conc:never"), ENOENT);
    ck_assert_int_eq(cow_inject_release("conc:unknown"), ENOENT);
    ck_assert_int_eq(cow_inject_release(NULL), EINVAL);
    ck_assert_int_eq(cow_inject_arm(NULL, 0, 0, 1), EINVAL);
    ck_assert_int_eq(cow_inject_arm("conc:never", 0, 0, 0), EINVAL);
    ck_assert_int_eq(cow_inject_wait("conc:never", 0, 10), EINVAL);
    ck_assert_int_eq(cow_inject_set_callback(NULL, NULL, NULL, 0), EINVAL);
    ck_assert_uint_eq(cow_inject_hits("conc:unknown"), 0);
    ck_assert_uint_eq(cow_inject_blocked("conc:unknown"), 0);
    /* the point was disarmed by the release: passing it does not block */
    COW_INJECT("conc:never");
    ck_assert_uint_eq(cow_inject_hits("conc:never"), 1);
    cow_inject_reset();
}
END_TEST

/* Callbacks run on the hitting thread, before it blocks; ONCE, NOT_ME, no
 * recursion. */
struct cb_state {
    pthread_t ran_on;           /* written by the callback, read after join */
    atomic_int calls;
    atomic_int bad_name;
    atomic_uint stepper_before; /* the stepper's progress seen by the callback */
    int nest;                   /* the callback passes the point itself */
    struct stepper *s;
};

static void cb_record(void *arg, const char *name)
{
    struct cb_state *c = arg;
    if (strcmp(name, "conc:step") != 0)
        atomic_store(&c->bad_name, 1);
    c->ran_on = pthread_self();
    atomic_store(&c->stepper_before, atomic_load(&c->s->before));
    atomic_fetch_add(&c->calls, 1);
    if (c->nest)
        COW_INJECT("conc:step"); /* counted, but does not call back again */
}

START_TEST(test_inject_callback)
{
    struct cb_state c;
    struct stepper s;
    memset(&c, 0, sizeof c);
    atomic_init(&c.calls, 0);
    atomic_init(&c.bad_name, 0);
    atomic_init(&c.stepper_before, 0);
    c.nest = 1;
    c.s = &s;

    ck_assert_int_eq(cow_inject_set_callback("conc:step", cb_record, &c, COW_INJECT_NOT_ME), 0);
    COW_INJECT("conc:step"); /* NOT_ME: no call */
    ck_assert_int_eq(atomic_load(&c.calls), 0);
    stepper_start(&s, 2);
    pthread_join(s.th, NULL);
    ck_assert_int_eq(atomic_load(&c.calls), 2);
    ck_assert(pthread_equal(c.ran_on, s.th));
    ck_assert_uint_eq(atomic_load(&c.stepper_before), 2);
    ck_assert_uint_eq(cow_inject_hits("conc:step"), 1 + 2 + 2);
    ck_assert_int_eq(atomic_load(&c.bad_name), 0);

    /* ONCE, together with an arm: the callback runs first, then it blocks */
    atomic_store(&c.calls, 0);
    c.nest = 0;
    ck_assert_int_eq(cow_inject_set_callback("conc:step", cb_record, &c, COW_INJECT_ONCE), 0);
    ck_assert_int_eq(cow_inject_arm("conc:step", 0, 0, 1), 0);
    stepper_start(&s, 3);
    ck_assert_int_eq(cow_inject_wait("conc:step", 1, WAIT_MS), 0);
    ck_assert_int_eq(atomic_load(&c.calls), 1);
    ck_assert_uint_eq(atomic_load(&c.stepper_before), 1);
    ck_assert_uint_eq(atomic_load(&s.after), 0);
    ck_assert_int_eq(cow_inject_release("conc:step"), 0);
    pthread_join(s.th, NULL);
    ck_assert_int_eq(atomic_load(&c.calls), 1);
    ck_assert_uint_eq(atomic_load(&s.after), 3);

    /* removal */
    ck_assert_int_eq(cow_inject_set_callback("conc:step", cb_record, &c, 0), 0);
    ck_assert_int_eq(cow_inject_set_callback("conc:step", NULL, NULL, 0), 0);
    COW_INJECT("conc:step");
    ck_assert_int_eq(atomic_load(&c.calls), 1);
    cow_inject_reset();
}
END_TEST

/*
 * The use the points are for: a thread stopped at a point while it holds a
 * lock, and another operation run exactly there by a callback on the same
 * thread.  The "store" here is a counter under a mutex with a point inside
 * the critical section.
 */
struct locked_counter {
    pthread_mutex_t mu;
    int value;           /* protected by mu */
    atomic_int in_cs;    /* a thread is between lock and unlock */
};

static void *lc_add(void *arg)
{
    struct locked_counter *lc = arg;
    pthread_mutex_lock(&lc->mu);
    atomic_store(&lc->in_cs, 1);
    lc->value++;
    COW_INJECT("conc:in_cs");
    atomic_store(&lc->in_cs, 0);
    pthread_mutex_unlock(&lc->mu);
    return NULL;
}

static void cb_peek(void *arg, const char *name)
{
    struct locked_counter *lc = arg;
    (void)name;
    /* on the hitting thread, inside its critical section */
    lc->value += 100;
}

START_TEST(test_inject_under_lock)
{
    struct locked_counter lc = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
    pthread_t a, b;

    ck_assert_int_eq(cow_inject_arm("conc:in_cs", 0, 0, 1), 0);
    ck_assert_int_eq(pthread_create(&a, NULL, lc_add, &lc), 0);
    ck_assert_int_eq(cow_inject_wait("conc:in_cs", 1, WAIT_MS), 0);
    /* A is parked holding the lock: B cannot get in */
    ck_assert_int_eq(atomic_load(&lc.in_cs), 1);
    ck_assert_int_eq(pthread_mutex_trylock(&lc.mu), EBUSY);
    ck_assert_int_eq(pthread_create(&b, NULL, lc_add, &lc), 0);
    sleep_ms(20);
    ck_assert_uint_eq(cow_inject_hits("conc:in_cs"), 1);
    ck_assert_int_eq(cow_inject_release("conc:in_cs"), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    ck_assert_uint_eq(cow_inject_hits("conc:in_cs"), 2);
    ck_assert_int_eq(lc.value, 2);

    ck_assert_int_eq(cow_inject_set_callback("conc:in_cs", cb_peek, &lc, COW_INJECT_ONCE), 0);
    ck_assert_int_eq(pthread_create(&a, NULL, lc_add, &lc), 0);
    pthread_join(a, NULL);
    ck_assert_int_eq(lc.value, 103);
    pthread_mutex_destroy(&lc.mu);
    cow_inject_reset();
}
END_TEST

/* cow_inject_reset releases blocked threads and waits for them. */
START_TEST(test_inject_reset)
{
    struct stepper s[2];
    ck_assert_int_eq(cow_inject_arm("conc:step", 0, 0, 2), 0);
    stepper_start(&s[0], 1);
    stepper_start(&s[1], 1);
    ck_assert_int_eq(cow_inject_wait("conc:step", 2, WAIT_MS), 0);
    cow_inject_reset();
    ck_assert_uint_eq(cow_inject_blocked("conc:step"), 0);
    pthread_join(s[0].th, NULL);
    pthread_join(s[1].th, NULL);
    ck_assert_uint_eq(atomic_load(&s[0].after) + atomic_load(&s[1].after), 2);
    ck_assert_uint_eq(cow_inject_hits("conc:step"), 0);
    /* everything is off after a reset */
    stepper_start(&s[0], 2);
    pthread_join(s[0].th, NULL);
    ck_assert_uint_eq(cow_inject_hits("conc:step"), 2);
    cow_inject_reset();
}
END_TEST

/* Many threads hitting many points while the test arms and releases. */
#define STORM_THREADS 4
#define STORM_HITS 20000

static void *storm_main(void *arg)
{
    for (int i = 0; i < STORM_HITS; i++) {
        switch (i % 4) {
        case 0: COW_INJECT("storm:a"); break;
        case 1: COW_INJECT("storm:b"); break;
        case 2: COW_INJECT("storm:c"); break;
        default: COW_INJECT("storm:d"); break;
        }
    }
    return arg;
}

START_TEST(test_inject_storm)
{
    pthread_t th[STORM_THREADS];
    for (int i = 0; i < STORM_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, storm_main, NULL), 0);
    for (int round = 0; round < 20; round++) {
        ck_assert_int_eq(cow_inject_arm("storm:b", COW_INJECT_NOT_ME, 0, 1), 0);
        int rc = cow_inject_wait("storm:b", 1, 200);
        if (rc == 0) {
            ck_assert_uint_eq(cow_inject_blocked("storm:b"), 1);
            ck_assert_int_eq(cow_inject_release("storm:b"), 0);
        } else {
            ck_assert_int_eq(rc, ETIMEDOUT); /* the threads may be done */
            cow_inject_release("storm:b");
        }
    }
    for (int i = 0; i < STORM_THREADS; i++)
        pthread_join(th[i], NULL);
    unsigned long total = cow_inject_hits("storm:a") + cow_inject_hits("storm:b") +
                          cow_inject_hits("storm:c") + cow_inject_hits("storm:d");
    ck_assert_uint_eq(total, (unsigned long)STORM_THREADS * STORM_HITS);
    cow_inject_reset();
}
END_TEST

/*
 * The points on a real store, with no point inside the store: the test's
 * device passes point "dev:flush" before each flush.  The background
 * committer is stopped inside its commit, at the flush; a writer thread
 * runs meanwhile; after the release both finish, and nothing is lost.
 */
static int (*dev_flush_orig)(struct cow_dev *d);

static int dev_flush_hooked(struct cow_dev *d)
{
    COW_INJECT("dev:flush");
    return dev_flush_orig(d);
}

struct flush_writer {
    cow_file *f;
    atomic_int done;
    int rc;
};

static void *flush_writer_main(void *arg)
{
    struct flush_writer *fw = arg;
    fw->rc = cow_file_write(fw->f, "second", 6, 10000);
    atomic_store(&fw->done, 1);
    return NULL;
}

struct flush_cb {
    pthread_t test_thread;
    atomic_int calls;
    atomic_int on_test_thread;
};

static void flush_cb_record(void *arg, const char *name)
{
    struct flush_cb *c = arg;
    (void)name;
    if (pthread_equal(pthread_self(), c->test_thread))
        atomic_store(&c->on_test_thread, 1);
    atomic_fetch_add(&c->calls, 1);
}

START_TEST(test_inject_committer)
{
    cow_store *st;
    cow_file *f;
    struct cow_dev *dev = memdev_new(NULL);
    struct flush_writer fw = {0};
    struct flush_cb cb;
    pthread_t wt;
    char buf[16];
    size_t n;

    dev_flush_orig = dev->flush;
    dev->flush = dev_flush_hooked;
    ck_assert_int_eq(cow_store_open_dev("mem", dev, 0, 1, &st), COW_OK);
    cow_store_set_commit_interval(st, 0);
    ck_assert_int_eq(cow_file_open(st, "f", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_write(f, "first", 5, 0), COW_OK);
    uint64_t gen = cow_store_generation(st);

    /* the next commit's flush, on the committer's thread, runs the
     * callback there and then stops */
    memset(&cb, 0, sizeof cb);
    cb.test_thread = pthread_self();
    ck_assert_int_eq(cow_inject_set_callback("dev:flush", flush_cb_record, &cb,
                                             COW_INJECT_NOT_ME | COW_INJECT_ONCE), 0);
    ck_assert_int_eq(cow_inject_arm("dev:flush", COW_INJECT_NOT_ME, 0, 1), 0);
    unsigned long hits0 = cow_inject_hits("dev:flush");
    cow_store_set_commit_interval(st, 1);
    ck_assert_int_eq(cow_inject_wait("dev:flush", 1, WAIT_MS), 0);
    ck_assert_uint_eq(cow_inject_hits("dev:flush"), hits0 + 1);
    ck_assert_int_eq(atomic_load(&cb.calls), 1);
    ck_assert_int_eq(atomic_load(&cb.on_test_thread), 0);

    /* the committer is parked mid-commit; the test thread stays out of
     * the store (it may hold store->lock), a writer thread goes in */
    fw.f = f;
    atomic_init(&fw.done, 0);
    ck_assert_int_eq(pthread_create(&wt, NULL, flush_writer_main, &fw), 0);
    sleep_ms(20);
    ck_assert_uint_eq(cow_inject_blocked("dev:flush"), 1);
    ck_assert_int_eq(cow_inject_release("dev:flush"), 0);
    pthread_join(wt, NULL);
    ck_assert_int_eq(fw.rc, COW_OK);

    cow_store_set_commit_interval(st, 0);
    ck_assert_uint_gt(cow_store_generation(st), gen);
    ck_assert_int_eq(cow_file_read(f, buf, 5, 0, &n), COW_OK);
    ck_assert_mem_eq(buf, "first", 5);
    ck_assert_int_eq(cow_file_read(f, buf, 6, 10000, &n), COW_OK);
    ck_assert_mem_eq(buf, "second", 6);
    ck_assert_int_eq(atomic_load(&cb.calls), 1); /* ONCE */
    cow_file_close(f);
    ck_assert_int_eq(cow_store_close(st), COW_OK);
    cow_inject_reset();
}
END_TEST

#endif /* COW_DEBUG */

/* ---------------------------------------------------------------------------
 * Store API: threads on their own files and on stripes of one shared file,
 * with the committer every millisecond and a thread of whole-store calls.
 */

#define ST_THREADS 3
#define ST_OPS 1000
#define ST_MAXSIZE (192 * 1024)  /* a private file's size stays below this */
#define ST_STRIPE (48 * 1024 + 1000) /* each thread's part of "shared": the
                                      * threads share the blocks at the edges */

struct st_shared {
    cow_store *st;
    struct conc_fail fail;
    atomic_int workers_left;
};

struct st_worker {
    struct st_shared *sh;
    pthread_t th;
    int idx;
    uint64_t seed;
    char name[16];
    uint8_t *model;       /* the private file's content, ST_MAXSIZE bytes */
    uint64_t size;        /* the private file's size */
    uint8_t *stripe;      /* this thread's stripe of "shared" */
};

/* Reads [off, off+len) of F and compares it with MODEL (SIZE bytes of file). */
static int st_verify(struct conc_fail *fail, cow_file *f, const char *what, const uint8_t *model,
                     uint64_t size, uint64_t off, size_t len, uint8_t *buf)
{
    size_t nread = 0;
    int rc = cow_file_read(f, buf, len, off, &nread);
    if (rc) {
        fail_set(fail, "%s: read %zu at %llu: %s", what, len, (unsigned long long)off,
                 cow_strerror(rc));
        return -1;
    }
    size_t want = off >= size ? 0 : (size - off < len ? (size_t)(size - off) : len);
    if (nread != want) {
        fail_set(fail, "%s: read %zu at %llu: nread %zu, expected %zu", what, len,
                 (unsigned long long)off, nread, want);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t exp = i < want ? model[off + i] : 0;
        if (buf[i] != exp) {
            fail_set(fail, "%s: byte %llu is %u, expected %u", what,
                     (unsigned long long)(off + i), buf[i], exp);
            return -1;
        }
    }
    return 0;
}

static void *st_worker_main(void *arg)
{
    struct st_worker *w = arg;
    struct st_shared *sh = w->sh;
    cow_file *pf = NULL, *sf = NULL;
    uint8_t *buf = malloc(ST_MAXSIZE), *data = malloc(ST_MAXSIZE);
    uint64_t rs = w->seed;
    uint64_t soff = (uint64_t)w->idx * ST_STRIPE;
    int rc;

    if (!buf || !data) {
        fail_set(&sh->fail, "out of memory");
        goto out;
    }
    if ((rc = cow_file_open(sh->st, w->name, 1, &pf)) != COW_OK ||
        (rc = cow_file_open(sh->st, "shared", 0, &sf)) != COW_OK) {
        fail_set(&sh->fail, "%s: open: %s", w->name, cow_strerror(rc));
        goto out;
    }
    for (int op = 0; op < ST_OPS && !fail_any(&sh->fail); op++) {
        uint64_t r = test_rand(&rs);
        uint64_t off, len;
        switch (r % 10) {
        case 0: case 1: case 2: /* write the private file */
            off = test_rand(&rs) % (ST_MAXSIZE - 1);
            len = 1 + test_rand(&rs) % (ST_MAXSIZE - off < 20000 ? ST_MAXSIZE - off : 20000);
            test_fill(&rs, data, len);
            rc = cow_file_write(pf, data, len, off);
            if (rc) {
                fail_set(&sh->fail, "%s: write %llu at %llu: %s", w->name,
                         (unsigned long long)len, (unsigned long long)off, cow_strerror(rc));
                break;
            }
            if (off > w->size)
                memset(w->model + w->size, 0, off - w->size);
            memcpy(w->model + off, data, len);
            if (off + len > w->size)
                w->size = off + len;
            break;
        case 3: /* read the private file, past its end too */
            off = test_rand(&rs) % ST_MAXSIZE;
            len = 1 + test_rand(&rs) % (ST_MAXSIZE - off);
            st_verify(&sh->fail, pf, w->name, w->model, w->size, off, len, buf);
            break;
        case 4: { /* truncate the private file, sometimes grow it */
            uint64_t nsize = test_rand(&rs) % ST_MAXSIZE;
            rc = cow_file_truncate(pf, nsize);
            if (rc) {
                fail_set(&sh->fail, "%s: truncate %llu: %s", w->name,
                         (unsigned long long)nsize, cow_strerror(rc));
                break;
            }
            if (nsize > w->size)
                memset(w->model + w->size, 0, nsize - w->size);
            w->size = nsize;
            break;
        }
        case 5: { /* size, then sync the private file */
            uint64_t sz = 0;
            rc = cow_file_size(pf, &sz);
            if (rc == COW_OK && sz != w->size)
                fail_set(&sh->fail, "%s: size %llu, expected %llu", w->name,
                         (unsigned long long)sz, (unsigned long long)w->size);
            if (rc == COW_OK)
                rc = cow_file_sync(pf);
            if (rc)
                fail_set(&sh->fail, "%s: size/sync: %s", w->name, cow_strerror(rc));
            break;
        }
        case 6: case 7: /* write this thread's stripe of the shared file */
            off = test_rand(&rs) % (ST_STRIPE - 1);
            len = 1 + test_rand(&rs) % (ST_STRIPE - off);
            test_fill(&rs, data, len);
            rc = cow_file_write(sf, data, len, soff + off);
            if (rc) {
                fail_set(&sh->fail, "shared: write %llu at %llu: %s", (unsigned long long)len,
                         (unsigned long long)(soff + off), cow_strerror(rc));
                break;
            }
            memcpy(w->stripe + off, data, len);
            break;
        case 8: /* read it back */
            off = test_rand(&rs) % ST_STRIPE;
            len = 1 + test_rand(&rs) % (ST_STRIPE - off);
            if (cow_file_read(sf, buf, len, soff + off, &(size_t){0}) != COW_OK ||
                memcmp(buf, w->stripe + off, len) != 0)
                fail_set(&sh->fail, "shared: stripe %d differs at %llu+%llu", w->idx,
                         (unsigned long long)off, (unsigned long long)len);
            break;
        default: /* sync the shared file */
            rc = cow_file_sync(sf);
            if (rc)
                fail_set(&sh->fail, "shared: sync: %s", cow_strerror(rc));
            break;
        }
    }
    if (!fail_any(&sh->fail))
        st_verify(&sh->fail, pf, w->name, w->model, w->size, 0, ST_MAXSIZE, buf);
out:
    cow_file_close(pf);
    cow_file_close(sf);
    free(buf);
    free(data);
    atomic_fetch_sub(&sh->workers_left, 1);
    return NULL;
}

static int st_list_cb(void *arg, const struct cow_file_info *fi)
{
    (*(int *)arg)++;
    return fi->name[0] == 0; /* never: names are not empty */
}

/* Whole-store calls while the workers run: commits, persist, stats, df,
 * listing, and creating and removing a file (which the log cannot hold). */
static void *st_admin_main(void *arg)
{
    struct st_shared *sh = arg;
    int rc = COW_OK;
    for (unsigned i = 0; atomic_load(&sh->workers_left) > 0 && !fail_any(&sh->fail); i++) {
        struct cow_stats stats;
        struct cow_df df;
        int n = 0, exists = 0;
        cow_file *f = NULL;
        switch (i % 6) {
        case 0: rc = cow_store_commit(sh->st); break;
        case 1: rc = cow_store_persist(sh->st); break;
        case 2:
            cow_store_stats(sh->st, &stats);
            rc = cow_store_df(sh->st, &df);
            (void)cow_store_generation(sh->st);
            break;
        case 3:
            rc = cow_list(sh->st, st_list_cb, &n);
            if (rc == COW_OK && n < 1) /* "shared"; the workers' files may be new */
                fail_set(&sh->fail, "cow_list: %d files", n);
            break;
        case 4:
            rc = cow_file_open(sh->st, "scratch", 1, &f);
            if (rc == COW_OK)
                rc = cow_file_write(f, "scratch", 7, 4096);
            cow_file_close(f);
            break;
        default:
            rc = cow_exists(sh->st, "scratch", &exists);
            if (rc == COW_OK && exists)
                rc = cow_unlink(sh->st, "scratch");
            break;
        }
        if (rc) {
            fail_set(&sh->fail, "admin op %u: %s (%s)", i % 6, cow_strerror(rc),
                     cow_store_last_error(sh->st));
            break;
        }
        sleep_ms(1);
    }
    return NULL;
}

/* Checks every file of the store against the workers' models. */
static void st_check_all(cow_store *st, struct st_worker *w)
{
    uint8_t *buf = malloc(ST_THREADS * ST_STRIPE > ST_MAXSIZE ? ST_THREADS * ST_STRIPE
                                                                : ST_MAXSIZE);
    struct conc_fail fail;
    cow_file *f;
    ck_assert_ptr_nonnull(buf);
    fail_init(&fail);
    for (int i = 0; i < ST_THREADS; i++) {
        ck_assert_int_eq(cow_file_open(st, w[i].name, 0, &f), COW_OK);
        st_verify(&fail, f, w[i].name, w[i].model, w[i].size, 0, ST_MAXSIZE, buf);
        cow_file_close(f);
    }
    /* the stripes are one buffer (w[0].stripe), the whole shared file */
    ck_assert_int_eq(cow_file_open(st, "shared", 0, &f), COW_OK);
    st_verify(&fail, f, "shared", w[0].stripe, (uint64_t)ST_THREADS * ST_STRIPE, 0,
              (size_t)ST_THREADS * ST_STRIPE, buf);
    cow_file_close(f);
    fail_check(&fail);
    fail_destroy(&fail);
    free(buf);
}

START_TEST(test_store_threads)
{
    char *dir = test_mkdtemp();
    char *path = path_in(dir, "c.db");
    struct st_shared sh;
    struct st_worker w[ST_THREADS];
    pthread_t admin;
    cow_file *f;
    uint64_t seed = test_seed();

    memset(&sh, 0, sizeof sh);
    fail_init(&sh.fail);
    ck_assert_int_eq(cow_store_open(path, COW_OPEN_CREATE, &sh.st), COW_OK);
    ck_assert_int_eq(cow_file_open(sh.st, "shared", 1, &f), COW_OK);
    ck_assert_int_eq(cow_file_truncate(f, (uint64_t)ST_THREADS * ST_STRIPE), COW_OK);
    cow_file_close(f);
    cow_store_set_commit_interval(sh.st, 1);
    uint64_t gen0 = cow_store_generation(sh.st);

    /* one buffer holds all stripes, so st_check_all can see the whole file */
    uint8_t *stripes = calloc(ST_THREADS, ST_STRIPE);
    ck_assert_ptr_nonnull(stripes);
    atomic_init(&sh.workers_left, ST_THREADS);
    for (int i = 0; i < ST_THREADS; i++) {
        w[i].sh = &sh;
        w[i].idx = i;
        w[i].seed = seed * 31 + (uint64_t)i + 1;
        snprintf(w[i].name, sizeof w[i].name, "p%d", i);
        w[i].model = calloc(1, ST_MAXSIZE);
        ck_assert_ptr_nonnull(w[i].model);
        w[i].size = 0;
        w[i].stripe = stripes + (size_t)i * ST_STRIPE;
    }
    for (int i = 0; i < ST_THREADS; i++)
        ck_assert_int_eq(pthread_create(&w[i].th, NULL, st_worker_main, &w[i]), 0);
    ck_assert_int_eq(pthread_create(&admin, NULL, st_admin_main, &sh), 0);
    for (int i = 0; i < ST_THREADS; i++)
        pthread_join(w[i].th, NULL);
    pthread_join(admin, NULL);
    fail_check(&sh.fail);

    struct cow_stats stats;
    cow_store_stats(sh.st, &stats);
    ck_assert_uint_gt(cow_store_generation(sh.st), gen0);
    ck_assert_uint_gt(stats.syncs, 0);
    ck_assert_uint_gt(stats.commits, 1);
    st_check_all(sh.st, w);
    ck_assert_int_eq(cow_store_close(sh.st), COW_OK);

    /* everything survives a reopen */
    ck_assert_int_eq(cow_store_open(path, 0, &sh.st), COW_OK);
    st_check_all(sh.st, w);
    ck_assert_int_eq(cow_store_close(sh.st), COW_OK);
    test_fsck_clean(path);

    for (int i = 0; i < ST_THREADS; i++)
        free(w[i].model);
    free(stripes);
    fail_destroy(&sh.fail);
    free(path);
    test_rmdir(dir);
}
END_TEST

/* ---------------------------------------------------------------------------
 * SQLite: connections of their own in several threads on one WAL database,
 * the background committer every millisecond.  Writers move money between
 * accounts (the total never changes) and log each move; readers check the
 * total and that the log only grows; a third kind checkpoints and commits.
 */

#define SQL_WRITERS 2
#define SQL_READERS 2
#define SQL_TXNS 150
#define SQL_ACCOUNTS 16
#define SQL_START 1000

struct sql_shared {
    const char *path;
    struct conc_fail fail;
    atomic_int writers_left;
};

struct sql_worker {
    struct sql_shared *sh;
    pthread_t th;
    int idx;
    uint64_t seed;
    long long delta[SQL_ACCOUNTS]; /* the writer's net change per account */
    long reads;
};

static sqlite3 *sql_open(struct sql_shared *sh, const char *who)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(sh->path, &db, SQLITE_OPEN_READWRITE, "cow") != SQLITE_OK) {
        fail_set(&sh->fail, "%s: open: %s", who, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 20000);
    return db;
}

static void *sql_writer_main(void *arg)
{
    struct sql_worker *w = arg;
    struct sql_shared *sh = w->sh;
    uint64_t rs = w->seed;
    char sql[400];
    sqlite3 *db = sql_open(sh, "writer");

    /* one writer syncs every commit (log records), one does not */
    if (db && sqlite3_exec(db, w->idx % 2 ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL",
                           NULL, NULL, NULL) != SQLITE_OK)
        fail_set(&sh->fail, "writer: synchronous: %s", sqlite3_errmsg(db));
    for (int t = 0; db && t < SQL_TXNS && !fail_any(&sh->fail); t++) {
        int from = (int)(test_rand(&rs) % SQL_ACCOUNTS);
        int to = (int)(test_rand(&rs) % SQL_ACCOUNTS);
        int amt = 1 + (int)(test_rand(&rs) % 50);
        snprintf(sql, sizeof sql,
                 "BEGIN IMMEDIATE;"
                 "UPDATE acct SET bal = bal - %d WHERE id = %d;"
                 "UPDATE acct SET bal = bal + %d WHERE id = %d;"
                 "INSERT INTO hist(w, amt, pad) VALUES(%d, %d, randomblob(%d));"
                 "COMMIT;",
                 amt, from, amt, to, w->idx, amt, 100 + (int)(test_rand(&rs) % 900));
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            fail_set(&sh->fail, "writer %d txn %d: %s", w->idx, t, sqlite3_errmsg(db));
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            break;
        }
        w->delta[from] -= amt;
        w->delta[to] += amt;
    }
    sqlite3_close(db);
    atomic_fetch_sub(&sh->writers_left, 1);
    return NULL;
}

static void *sql_reader_main(void *arg)
{
    struct sql_worker *w = arg;
    struct sql_shared *sh = w->sh;
    sqlite3 *db = sql_open(sh, "reader");
    sqlite3_stmt *st = NULL;
    long long last = 0;

    if (db && sqlite3_prepare_v2(db,
                                 "SELECT (SELECT sum(bal) FROM acct), (SELECT count(*) FROM acct),"
                                 " (SELECT count(*) FROM hist), (SELECT coalesce(max(n), 0) FROM hist)",
                                 -1, &st, NULL) != SQLITE_OK)
        fail_set(&sh->fail, "reader: prepare: %s", sqlite3_errmsg(db));
    while (st && !fail_any(&sh->fail)) {
        int done = atomic_load(&sh->writers_left) == 0;
        if (sqlite3_step(st) != SQLITE_ROW) {
            fail_set(&sh->fail, "reader %d: step: %s", w->idx, sqlite3_errmsg(db));
            break;
        }
        long long sum = sqlite3_column_int64(st, 0), na = sqlite3_column_int64(st, 1);
        long long nh = sqlite3_column_int64(st, 2), mx = sqlite3_column_int64(st, 3);
        sqlite3_reset(st);
        if (sum != (long long)SQL_ACCOUNTS * SQL_START || na != SQL_ACCOUNTS || nh != mx ||
            nh < last) {
            fail_set(&sh->fail, "reader %d saw sum=%lld accounts=%lld hist=%lld max=%lld last=%lld",
                     w->idx, sum, na, nh, mx, last);
            break;
        }
        last = nh;
        w->reads++;
        if (done)
            break;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return NULL;
}

/* Checkpoints the WAL and commits the container through the pragma. */
static void *sql_checkpointer_main(void *arg)
{
    struct sql_shared *sh = arg;
    sqlite3 *db = sql_open(sh, "checkpointer");
    for (unsigned i = 0; db && atomic_load(&sh->writers_left) > 0 && !fail_any(&sh->fail); i++) {
        const char *sql = i % 3 == 0 ? "PRAGMA cow_commit"
                          : i % 3 == 1 ? "PRAGMA wal_checkpoint(PASSIVE)"
                                       : "PRAGMA cow_stats";
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            fail_set(&sh->fail, "checkpointer: %s: %s", sql, sqlite3_errmsg(db));
            break;
        }
        sleep_ms(2);
    }
    sqlite3_close(db);
    return NULL;
}

static long long sql_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(db));
    ck_assert_msg(sqlite3_step(st) == SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void sql_exec(sqlite3 *db, const char *sql)
{
    ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(db));
}

START_TEST(test_sql_threads)
{
    char *dir = test_mkdtemp();
    char *path = path_in(dir, "app.db");
    struct sql_shared sh;
    struct sql_worker wr[SQL_WRITERS], rd[SQL_READERS];
    pthread_t ckpt;
    sqlite3 *db = NULL;
    char sql[200];
    uint64_t seed = test_seed();

    ck_assert_int_eq(cowvfs_register(0), SQLITE_OK);
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "cow"),
                     SQLITE_OK);
    sql_exec(db, "PRAGMA journal_mode=WAL");
    ck_assert_int_eq(sql_int(db, "PRAGMA cow_commit_interval=1"), 1);
    sql_exec(db, "PRAGMA wal_autocheckpoint=50;"
                 "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL);"
                 "CREATE TABLE hist(n INTEGER PRIMARY KEY, w INTEGER, amt INTEGER, pad BLOB)");
    for (int i = 0; i < SQL_ACCOUNTS; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO acct VALUES(%d, %d)", i, SQL_START);
        sql_exec(db, sql);
    }
    /* db stays open: the container and its commit interval stay with it */

    memset(&sh, 0, sizeof sh);
    sh.path = path;
    fail_init(&sh.fail);
    atomic_init(&sh.writers_left, SQL_WRITERS);
    memset(wr, 0, sizeof wr);
    memset(rd, 0, sizeof rd);
    for (int i = 0; i < SQL_READERS; i++) {
        rd[i].sh = &sh;
        rd[i].idx = i;
        ck_assert_int_eq(pthread_create(&rd[i].th, NULL, sql_reader_main, &rd[i]), 0);
    }
    for (int i = 0; i < SQL_WRITERS; i++) {
        wr[i].sh = &sh;
        wr[i].idx = i;
        wr[i].seed = seed * 17 + (uint64_t)i + 1;
        ck_assert_int_eq(pthread_create(&wr[i].th, NULL, sql_writer_main, &wr[i]), 0);
    }
    ck_assert_int_eq(pthread_create(&ckpt, NULL, sql_checkpointer_main, &sh), 0);
    for (int i = 0; i < SQL_WRITERS; i++)
        pthread_join(wr[i].th, NULL);
    for (int i = 0; i < SQL_READERS; i++)
        pthread_join(rd[i].th, NULL);
    pthread_join(ckpt, NULL);
    fail_check(&sh.fail);
    for (int i = 0; i < SQL_READERS; i++)
        ck_assert_int_gt(rd[i].reads, 0);

    /* the database equals the model, now and after a reopen */
    for (int pass = 0; pass < 2; pass++) {
        for (int a = 0; a < SQL_ACCOUNTS; a++) {
            long long want = SQL_START;
            for (int i = 0; i < SQL_WRITERS; i++)
                want += wr[i].delta[a];
            snprintf(sql, sizeof sql, "SELECT bal FROM acct WHERE id = %d", a);
            ck_assert_int_eq(sql_int(db, sql), want);
        }
        for (int i = 0; i < SQL_WRITERS; i++) {
            snprintf(sql, sizeof sql, "SELECT count(*) FROM hist WHERE w = %d", i);
            ck_assert_int_eq(sql_int(db, sql), SQL_TXNS);
        }
        ck_assert_int_gt(sql_int(db, "PRAGMA cow_generation"), 1);
        ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
        db = NULL;
        ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "cow"), SQLITE_OK);
    }
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    test_fsck_clean(path);

    fail_destroy(&sh.fail);
    free(path);
    test_rmdir(dir);
}
END_TEST

Suite *conc_suite(void)
{
    Suite *s = suite_create("conc");

#ifdef COW_DEBUG
    test_case(s, "inject", 60, test_inject_block, test_inject_skip_count, test_inject_timeout,
              test_inject_callback, test_inject_under_lock, test_inject_reset, test_inject_storm,
              test_inject_committer, NULL);
#endif

    test_case(s, "store_threads", 300, test_store_threads, NULL);

    test_case(s, "sql_threads", 300, test_sql_threads, NULL);

    return s;
}
