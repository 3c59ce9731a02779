/*
 * device.c - the crash simulator's harness state, its simulated device
 * (the op log of the record phase, the image of a crash state) and the
 * shadows of the files SQLite writes (see driver.c).
 */
#include "crash.h"

/* ---------------------------------------------------------------------------
 * Harness state
 */

const char *const role_store_name[NROLES] = {"db", "db-journal", "db-wal"};
struct harness g;

/* CPU time of the process (the machine may be busy with other work). */
double now_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void log_cb(void *arg, int code, const char *msg)
{
    (void)arg;
    snprintf(g.lastlog, sizeof g.lastlog, "(%d) %s", code, msg);
    if (g.verbose > 1)
        fprintf(stderr, "sqlite3_log: %s\n", g.lastlog);
}

/* ---------------------------------------------------------------------------
 * The device: a proxy on g.cur, handed out by the bdev opener hook.  Its
 * close leaves the device alive (the harness owns it).
 */

struct proxy {
    struct cow_dev dev; /* first */
    struct cow_dev *under;
    int readonly;
    int i;              /* 0: g.cur, 1: g.cur2 */
};

void oplog_add(int dev, int type, uint64_t off, size_t len, const void *data)
{
    if (g.nops == g.capops) {
        g.capops = g.capops ? 2 * g.capops : 4096;
        g.ops = xrealloc(g.ops, g.capops * sizeof *g.ops);
    }
    struct op *o = &g.ops[g.nops++];
    o->type = type;
    o->dev = dev;
    o->off = off;
    o->len = len;
    o->data = NULL;
    if (data) {
        o->data = xrealloc(NULL, len);
        memcpy(o->data, data, len);
    }
    g.trace = mix64(g.trace ^ mix64(((uint64_t)type << 56) ^ ((uint64_t)dev << 48) ^ off) ^ len);
}

static int px_read(struct cow_dev *d, void *buf, size_t len, uint64_t off)
{
    struct proxy *p = (struct proxy *)d;
    return p->under->read(p->under, buf, len, off);
}

/* The store may write from several threads (writeback): the op log's
 * order is the order in which writes reach the device, under oplock. */
static pthread_mutex_t oplock = PTHREAD_MUTEX_INITIALIZER;

static int px_write(struct cow_dev *d, const void *buf, size_t len, uint64_t off)
{
    struct proxy *p = (struct proxy *)d;
    if (p->readonly) {
        fprintf(stderr, "crash: a read-only store wrote to its device\n");
        abort();
    }
    pthread_mutex_lock(&oplock);
    d->nwrite++;
    int rc = p->under->write(p->under, buf, len, off);
    if (rc == COW_OK && g.recording)
        oplog_add(p->i, OP_WRITE, off, len, buf);
    pthread_mutex_unlock(&oplock);
    return rc;
}

static int px_flush(struct cow_dev *d)
{
    struct proxy *p = (struct proxy *)d;
    pthread_mutex_lock(&oplock);
    d->nflush++;
    int rc = p->under->flush(p->under);
    if (rc == COW_OK && g.recording)
        oplog_add(p->i, OP_FLUSH, 0, 0, NULL);
    pthread_mutex_unlock(&oplock);
    return rc;
}

static int px_size(struct cow_dev *d, uint64_t *size)
{
    struct proxy *p = (struct proxy *)d;
    return p->under->size(p->under, size);
}

static int px_grow(struct cow_dev *d, uint64_t size)
{
    struct proxy *p = (struct proxy *)d;
    uint64_t before = 0;
    pthread_mutex_lock(&oplock);
    p->under->size(p->under, &before);
    int rc = p->under->grow(p->under, size);
    if (rc == COW_OK && g.recording && size > before)
        oplog_add(p->i, OP_GROW, size, 0, NULL);
    pthread_mutex_unlock(&oplock);
    return rc;
}

static int px_shrink(struct cow_dev *d, uint64_t size)
{
    struct proxy *p = (struct proxy *)d;
    uint64_t before = 0;
    pthread_mutex_lock(&oplock);
    p->under->size(p->under, &before);
    int rc = p->under->shrink ? p->under->shrink(p->under, size) : COW_OK;
    if (rc == COW_OK && g.recording && size < before)
        oplog_add(p->i, OP_SHRINK, size, 0, NULL);
    pthread_mutex_unlock(&oplock);
    return rc;
}

/* The format of a new container ends with its rename into place: before
 * it, a crash leaves no container (the crash phase shows an empty image). */
static int px_publish(struct cow_dev *d)
{
    struct proxy *p = (struct proxy *)d;
    if (p->readonly) {
        fprintf(stderr, "crash: a read-only store published its device\n");
        abort();
    }
    pthread_mutex_lock(&oplock);
    if (g.recording)
        oplog_add(p->i, OP_PUBLISH, 0, 0, NULL);
    pthread_mutex_unlock(&oplock);
    return COW_OK;
}

static void px_close(struct cow_dev *d)
{
    if (((struct proxy *)d)->i)
        g.nopen2--;
    else
        g.nopen--;
    free(d);
}

static struct cow_dev *proxy_new(struct cow_dev *under, int readonly, int i)
{
    struct proxy *p = xrealloc(NULL, sizeof *p);
    memset(p, 0, sizeof *p);
    p->dev = (struct cow_dev){.read = px_read, .write = px_write, .flush = px_flush,
                              .size = px_size, .grow = px_grow, .shrink = px_shrink,
                              .close = px_close, .publish = px_publish};
    p->under = under;
    p->readonly = readonly;
    p->i = i;
    if (i)
        g.nopen2++;
    else
        g.nopen++;
    return &p->dev;
}

/*
 * The devices of a crash state: the images g.im[i] themselves, so that
 * checking a state copies nothing.  g.im[i].p is a shared mapping of the
 * memfd g.im[i].memfd, whose size is always g.im[i].len, so fsck reads the
 * very same bytes through g.im[i].path.  Writes (SQLite's recovery) change
 * it in place; growing extends the memfd.
 */

static struct image *rd_img(struct cow_dev *d)
{
    return &g.im[((struct ramdev *)d)->i];
}

static int rd_read(struct cow_dev *d, void *buf, size_t len, uint64_t off)
{
    struct image *im = rd_img(d);
    if (off > im->len || len > im->len - off)
        return COW_EIO_READ;
    memcpy(buf, im->p + off, len);
    return COW_OK;
}

/* Sets image I's size to SIZE (new bytes are zero). */
int img_resize(int i, uint64_t size)
{
    struct image *im = &g.im[i];
    if (size > IMG_RESERVE) {
        fprintf(stderr, "crash: the container grew past %zu bytes\n", IMG_RESERVE);
        exit(2);
    }
    if (size != im->len && ftruncate(im->memfd, (off_t)size) != 0) {
        perror("crash: ftruncate of the image");
        exit(2);
    }
    im->len = size;
    return COW_OK;
}

static int rd_reserve(struct cow_dev *d, uint64_t size)
{
    struct image *im = rd_img(d);
    return size > im->len ? img_resize(((struct ramdev *)d)->i, size) : COW_OK;
}

static int rd_write(struct cow_dev *d, const void *buf, size_t len, uint64_t off)
{
    rd_reserve(d, off + len);
    memcpy(rd_img(d)->p + off, buf, len);
    return COW_OK;
}

static int rd_flush(struct cow_dev *d)
{
    (void)d;
    return COW_OK;
}

static int rd_size(struct cow_dev *d, uint64_t *size)
{
    *size = rd_img(d)->len;
    return COW_OK;
}

static int rd_grow(struct cow_dev *d, uint64_t size)
{
    return rd_reserve(d, size);
}

static int rd_shrink(struct cow_dev *d, uint64_t size)
{
    struct image *im = rd_img(d);
    return size < im->len ? img_resize(((struct ramdev *)d)->i, size) : COW_OK;
}

static void rd_close(struct cow_dev *d)
{
    (void)d;
}

struct ramdev ramdevs[2] = {
    {{.read = rd_read, .write = rd_write, .flush = rd_flush, .size = rd_size, .grow = rd_grow,
      .shrink = rd_shrink, .close = rd_close},
     0},
    {{.read = rd_read, .write = rd_write, .flush = rd_flush, .size = rd_size, .grow = rd_grow,
      .shrink = rd_shrink, .close = rd_close},
     1},
};

/* The bdev_file_open() hook: the harness's containers are g.cur (at
 * g.path) and g.cur2 (at g.path2). */
int crash_opener(void *arg, const char *path, int flags, struct cow_dev **out, int *created)
{
    (void)arg;
    int i = strcmp(path, g.path) == 0 ? 0 : g.path2[0] && strcmp(path, g.path2) == 0 ? 1 : -1;
    if (i < 0)
        return BDEV_TEST_DECLINE;
    if (!(i ? g.cur2 : g.cur))
        return COW_ENOENT;
    if ((i ? g.nopen2 : g.nopen) > 0) /* what flock would say */
        return COW_EBUSY;
    *created = 0;
    *out = proxy_new(i ? g.cur2 : g.cur, (flags & BDEV_READONLY) != 0, i);
    return COW_OK;
}

/* ---------------------------------------------------------------------------
 * Shadows and sector versions (record phase)
 */

uint64_t sector_hash(const uint8_t *sec)
{
    return hash_bytes(sec, SECTOR, 0);
}

/* The value of L before its first version. */
static uint64_t ver_initial(const struct verlist *l, int is_size)
{
    (void)l;
    return is_size ? 0 : g.zero_hash;
}

/* Appends version H at time T to L, unless H is its current value. */
static void ver_push(struct verlist *l, uint64_t h, uint64_t t, int is_size)
{
    uint64_t cur = l->n ? l->v[l->n - 1].h : ver_initial(l, is_size);
    if (cur == h)
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n].h = h;
    l->v[l->n].t = t;
    l->n++;
}

/* Starts change number ++g.vclock, which began when START ops were logged. */
static uint64_t shadow_change(size_t start)
{
    uint64_t t = ++g.vclock;
    if (t >= g.capmut) {
        g.capmut = g.capmut ? 2 * g.capmut : 4096;
        g.mut_op = xrealloc(g.mut_op, g.capmut * sizeof *g.mut_op);
    }
    g.mut_op[t] = start;
    return t;
}

/* Records the content of sectors [s0, s1] of ROLE as of time T. */
static void shadow_note(int role, uint64_t s0, uint64_t s1, uint64_t t)
{
    struct shadow *sh = &g.shadow[role];
    if (s1 >= sh->nsec) {
        size_t n = sh->nsec ? sh->nsec : 64;
        while (n <= s1)
            n *= 2;
        sh->sec = xrealloc(sh->sec, n * sizeof *sh->sec);
        memset(sh->sec + sh->nsec, 0, (n - sh->nsec) * sizeof *sh->sec);
        sh->nsec = n;
    }
    for (uint64_t i = s0; i <= s1; i++) {
        uint8_t sec[SECTOR];
        memset(sec, 0, sizeof sec);
        if (i * SECTOR < sh->size) {
            size_t n = sh->size - i * SECTOR < SECTOR ? sh->size - i * SECTOR : SECTOR;
            memcpy(sec, sh->buf + i * SECTOR, n);
        }
        ver_push(&sh->sec[i], sector_hash(sec), t, 0);
    }
}

static void shadow_reserve(struct shadow *sh, size_t n)
{
    if (n <= sh->cap)
        return;
    size_t c = sh->cap ? sh->cap : 65536;
    while (c < n)
        c *= 2;
    sh->buf = xrealloc(sh->buf, c);
    memset(sh->buf + sh->cap, 0, c - sh->cap);
    sh->cap = c;
}

static void shadow_setsize(struct shadow *sh, size_t size, uint64_t t)
{
    sh->size = size;
    if (size > sh->maxsize)
        sh->maxsize = size;
    ver_push(&sh->sizes, size, t, 1);
}

/* SQLite wrote N bytes of BUF at OFF to ROLE (a write that began when START
 * ops were logged). */
void shadow_write(int role, const void *buf, size_t n, uint64_t off, size_t start)
{
    struct shadow *sh = &g.shadow[role];
    if (n == 0)
        return;
    uint64_t t = shadow_change(start);
    shadow_reserve(sh, off + n);
    memcpy(sh->buf + off, buf, n);
    if (off + n > sh->size)
        shadow_setsize(sh, off + n, t);
    shadow_note(role, off / SECTOR, (off + n - 1) / SECTOR, t);
}

/* ROLE was truncated to SIZE (0 also when it is deleted). */
void shadow_truncate(int role, uint64_t size, size_t start)
{
    struct shadow *sh = &g.shadow[role];
    uint64_t t = shadow_change(start);
    if (size < sh->size) {
        size_t old = sh->size;
        memset(sh->buf + size, 0, sh->size - size);
        shadow_setsize(sh, size, t);
        shadow_note(role, size / SECTOR, (old - 1) / SECTOR, t);
    } else if (size > sh->size) {
        shadow_reserve(sh, size);
        shadow_setsize(sh, size, t);
    }
}

void shadow_free(struct shadow *sh)
{
    for (size_t i = 0; i < sh->nsec; i++)
        free(sh->sec[i].v);
    free(sh->sec);
    free(sh->sizes.v);
    free(sh->buf);
    memset(sh, 0, sizeof *sh);
}

void tset_add(struct tset *s, uint64_t a, uint64_t b)
{
    if (a >= b)
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->iv = xrealloc(s->iv, s->cap * sizeof *s->iv);
    }
    s->iv[s->n].h = a;
    s->iv[s->n].t = b;
    s->n++;
}

/* OUT = IN ∩ {times at which L's value was H}.  Returns 1 if L ever had
 * the value H (at any time). */
int tset_match(const struct tset *in, const struct verlist *l, uint64_t h, int is_size,
                      struct tset *out)
{
    return tset_match_range(in, l, h, h, is_size, out);
}

/* OUT = IN ∩ {times at which L's value was in [LO, HI]}.  Returns 1 if L
 * ever had such a value (at any time). */
int tset_match_range(const struct tset *in, const struct verlist *l, uint64_t lo, uint64_t hi,
                     int is_size, struct tset *out)
{
    int ever = 0;
    size_t j = 0;
    out->n = 0;
    for (size_t i = 0; i <= l->n; i++) {
        uint64_t val = i == 0 ? ver_initial(l, is_size) : l->v[i - 1].h;
        uint64_t a = i == 0 ? 0 : l->v[i - 1].t;
        uint64_t b = i < l->n ? l->v[i].t : UINT64_MAX;
        if (val < lo || val > hi)
            continue;
        ever = 1;
        while (j < in->n && in->iv[j].t <= a)
            j++;
        for (size_t k = j; k < in->n && in->iv[k].h < b; k++)
            tset_add(out, in->iv[k].h > a ? in->iv[k].h : a, in->iv[k].t < b ? in->iv[k].t : b);
    }
    return ever;
}
