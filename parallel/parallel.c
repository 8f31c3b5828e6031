/* The thread pool and data-parallel steps (parallel.h).
 *
 * The pool: workers sleep on a condition variable until sg_pool_run publishes a job, then
 * every thread, the caller included, takes task indices from one atomic counter until none
 * are left. The counter holds the job's generation in its high 32 bits, so a worker that
 * woke for an old job and was descheduled before taking a task cannot take one of the next
 * job's (its compare-and-swap sees another generation and it goes back to sleep). Nobody
 * spins: on a machine whose cores are taken by other processes, a worker that does not get
 * a core soon leaves its task to the caller, and the step costs what one thread's would.
 *
 * The step: task k is part k of the batch, in workspace k, always; which thread runs it
 * does not matter, so the bits do not either. The private slabs are then added into the
 * store's, workspace 1 first, by the same pool (each task one range of the slab). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "parallel.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensor.h"

/* ---- how many threads ------------------------------------------------------------------ */

enum { MAX_THREADS = 256 };

int sg_threads_default(void) {
    const char *env = getenv("SG_NUM_THREADS");
    if (env && *env) {
        char *end;
        errno = 0;
        long v = strtol(env, &end, 10);
        if (!errno && !*end && v >= 1 && v <= MAX_THREADS)
            return (int)v;
    }
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
}

int sg_threads_for(double flops, int64_t rows, int max_threads) {
    double by_work = flops / SG_PARALLEL_MIN_FLOPS; /* NaN and negatives give 1 below */
    int n = max_threads;
    if (!(by_work >= n))
        n = by_work >= 1 ? (int)by_work : 1;
    if (rows < n)
        n = rows > 1 ? (int)rows : 1;
    return n < 1 ? 1 : n;
}

/* ---- the pool --------------------------------------------------------------------------- */

struct sg_pool {
    int threads; /* the caller + workers */
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a job was published, or quit */
    pthread_cond_t done; /* the last task of a job returned */
    /* the job: written under mu before gen and `next` announce it */
    void (*fn)(void *, int);
    void *user;
    int tasks;
    _Atomic uint32_t gen;  /* generation of the job published last */
    _Atomic uint64_t next; /* gen << 32 | next task index */
    _Atomic int finished;  /* tasks of job `gen` that returned */
    _Atomic int quit;
};

/* Before sleeping, a thread that waits (a worker for the next job, the caller for the last
 * task) polls for a while: waking a sleeping thread costs tens of microseconds (more in a
 * virtual machine), as much as a small step's part. It polls with sched_yield, so a thread
 * of other work that shares its core runs meanwhile, and for WAIT_US at most, so a busy
 * machine loses little: then it sleeps on the condition variable. */
enum { WAIT_US = 100 };

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* Poll until cond(p, arg) holds or WAIT_US pass; true if it holds. */
static bool poll_for(sg_pool *p, bool (*cond)(sg_pool *, uint32_t), uint32_t arg) {
    double t0 = 0;
    for (int i = 0;; i++) {
        if (cond(p, arg))
            return true;
        if (i < 64)
            continue;
        if (t0 == 0)
            t0 = now_us();
        else if (now_us() - t0 > WAIT_US)
            return false;
        sched_yield();
    }
}

static bool new_job(sg_pool *p, uint32_t seen) {
    return atomic_load(&p->gen) != seen || atomic_load(&p->quit);
}

static bool all_done(sg_pool *p, uint32_t tasks) { return atomic_load(&p->finished) == (int)tasks; }

/* Take task indices of job `gen` until there are none; returns how many this thread ran. */
static int take_tasks(sg_pool *p, uint32_t gen, void (*fn)(void *, int), void *user, int tasks) {
    int ran = 0;
    uint64_t v = atomic_load(&p->next);
    while ((uint32_t)(v >> 32) == gen && (int)(uint32_t)v < tasks) {
        if (atomic_compare_exchange_weak(&p->next, &v, v + 1)) {
            fn(user, (int)(uint32_t)v);
            ran++;
            v = atomic_load(&p->next);
        }
    }
    return ran;
}

/* Count a thread's tasks as finished; the one that finishes the job wakes the caller (under
 * mu, so that a caller about to sleep cannot miss it). */
static void finish(sg_pool *p, int ran, int tasks) {
    if (ran && atomic_fetch_add(&p->finished, ran) + ran == tasks) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

static void *worker(void *arg) {
    sg_pool *p = arg;
    uint32_t seen = 0;
    for (;;) {
        if (!poll_for(p, new_job, seen)) {
            pthread_mutex_lock(&p->mu);
            while (!new_job(p, seen))
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit))
            return NULL;
        pthread_mutex_lock(&p->mu); /* the job's fields, as published with gen */
        seen = atomic_load(&p->gen);
        void (*fn)(void *, int) = p->fn;
        void *user = p->user;
        int tasks = p->tasks;
        pthread_mutex_unlock(&p->mu);
        finish(p, take_tasks(p, seen, fn, user, tasks), tasks);
    }
}

sg_pool *sg_pool_new(int threads) {
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    sg_pool *p = sg_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->threads = threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->next, 0);
    atomic_init(&p->finished, 0);
    atomic_init(&p->quit, 0);
    if (threads > 1 && !(p->workers = sg_calloc((size_t)threads - 1, sizeof *p->workers))) {
        sg_free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int k = 0; k < threads - 1; k++) {
        if (pthread_create(&p->workers[k], NULL, worker, p)) {
            p->threads = k + 1; /* stop the ones that started */
            sg_pool_free(p);
            return NULL;
        }
    }
    return p;
}

void sg_pool_free(sg_pool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int k = 0; k < p->threads - 1; k++)
        pthread_join(p->workers[k], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    sg_free(p->workers);
    sg_free(p);
}

int sg_pool_threads(const sg_pool *p) { return p ? p->threads : 1; }

void sg_pool_run(sg_pool *p, int tasks, void (*fn)(void *user, int task), void *user) {
    if (tasks <= 0 || !fn)
        return;
    if (!p || p->threads == 1 || tasks == 1) { /* nobody to wake */
        for (int k = 0; k < tasks; k++)
            fn(user, k);
        return;
    }
    pthread_mutex_lock(&p->mu);
    uint32_t gen = atomic_load(&p->gen) + 1;
    p->fn = fn;
    p->user = user;
    p->tasks = tasks;
    atomic_store(&p->finished, 0);
    atomic_store(&p->next, (uint64_t)gen << 32);
    atomic_store(&p->gen, gen);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    finish(p, take_tasks(p, gen, fn, user, tasks), tasks);
    if (!poll_for(p, all_done, (uint32_t)tasks)) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->finished) < tasks)
            pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

/* ---- data-parallel steps ---------------------------------------------------------------- */

struct sg_parallel {
    sg_pool *pool;
    sg_store *store;
    int n;       /* workspaces */
    sg_ctx **ws; /* ws[0] is the caller's context */
    /* the step in progress */
    const sg_parallel_fns *fns;
    void *user;
    int64_t batch;
    int parts;
    double *loss; /* per part: its weighted loss */
    int *rc;      /* per part */
};

void sg_parallel_slice(int64_t rows, int parts, int k, int64_t *row0, int64_t *count) {
    if (parts < 1)
        parts = 1;
    int64_t base = rows / parts, extra = rows % parts;
    if (row0)
        *row0 = k * base + (k < extra ? k : extra);
    if (count)
        *count = base + (k < extra);
}

sg_parallel *sg_parallel_new(sg_ctx *ctx, sg_store *store, int threads) {
    if (!ctx)
        return NULL;
    if (!store)
        return sg_error(ctx, "sg_parallel_new: store is NULL");
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    sg_parallel *p = sg_calloc(1, sizeof *p);
    if (!p || !(p->ws = sg_calloc((size_t)threads, sizeof *p->ws)) ||
        !(p->loss = sg_calloc((size_t)threads, sizeof *p->loss)) ||
        !(p->rc = sg_calloc((size_t)threads, sizeof *p->rc))) {
        sg_parallel_free(p);
        return sg_error(ctx, "sg_parallel_new: out of memory");
    }
    p->store = store;
    p->ws[0] = ctx;
    p->n = 1;
    for (int k = 1; k < threads; k++, p->n++) {
        if (!(p->ws[k] = sg_ctx_new(0))) {
            sg_parallel_free(p);
            return sg_error(ctx, "sg_parallel_new: out of memory");
        }
        if (sg_ctx_private_grads(p->ws[k], store)) {
            sg_error(ctx, "%s", sg_ctx_error(p->ws[k]));
            p->n++; /* free it too */
            sg_parallel_free(p);
            return NULL;
        }
    }
    if (!(p->pool = sg_pool_new(threads))) {
        sg_parallel_free(p);
        return sg_error(ctx, "sg_parallel_new: cannot start %d threads", threads - 1);
    }
    return p;
}

void sg_parallel_free(sg_parallel *p) {
    if (!p)
        return;
    sg_pool_free(p->pool);
    for (int k = 1; p->ws && k < p->n; k++)
        sg_ctx_free(p->ws[k]);
    sg_free(p->ws);
    sg_free(p->loss);
    sg_free(p->rc);
    sg_free(p);
}

int sg_parallel_threads(const sg_parallel *p) { return p ? p->n : 1; }

sg_ctx *sg_parallel_ctx(const sg_parallel *p, int k) {
    return p && k >= 0 && k < p->n ? p->ws[k] : NULL;
}

void sg_parallel_seed(sg_parallel *p, uint64_t seed) {
    for (int k = 0; p && k < p->n; k++) {
        sg_rng r; /* one splitmix-seeded draw per part keeps the parts' streams apart */
        sg_rng_seed(&r, seed ^ (UINT64_C(0x9E3779B97F4A7C15) * (uint64_t)(k + 1)));
        sg_rng_seed(sg_ctx_rng(p->ws[k]), sg_rng_next(&r));
    }
}

sg_tensor *sg_parallel_rows(sg_ctx *ctx, const sg_tensor *t, int axis, int64_t row0, int64_t rows) {
    if (!ctx || !t)
        return NULL;
    if (!sg_check(NULL, t, NULL))
        return sg_error(ctx, "sg_parallel_rows: not a live tensor (used after sg_ctx_reset?)");
    if (!sg_is_contiguous(t))
        return sg_error(ctx, "sg_parallel_rows: the tensor is not contiguous");
    int ax = axis < 0 ? axis + t->ndim : axis;
    if (ax < 0 || ax >= t->ndim)
        return sg_error(ctx, "sg_parallel_rows: axis %d of a %d-dimensional tensor", axis, t->ndim);
    if (row0 < 0 || rows < 0 || row0 + rows > t->shape[ax])
        return sg_error(ctx, "sg_parallel_rows: rows %lld..%lld outside axis %d's %lld",
                        (long long)row0, (long long)(row0 + rows - 1), ax, (long long)t->shape[ax]);
    /* the whole tensor wrapped in ctx, then a view of it there */
    sg_tensor *all = sg_wrap(ctx, t->dtype, t->ndim, t->shape, sg_data(t));
    return ax == 0 && rows == t->shape[0] ? all : sg_slice(ctx, all, ax, row0, rows);
}

/* Part k: forward and backward on its slice in workspace k, weighted by its share. */
static void run_part(void *arg, int k) {
    sg_parallel *p = arg;
    sg_ctx *ctx = p->ws[k];
    int64_t row0, rows;
    sg_parallel_slice(p->batch, p->parts, k, &row0, &rows);
    if (k > 0)
        sg_ctx_zero_private_grads(ctx);
    double w = (double)rows / (double)p->batch;
    sg_tensor *loss = p->fns->loss(ctx, k, row0, rows, p->user);
    if (loss && sg_numel(loss) != 1) {
        sg_error(ctx, "sg_parallel_step: the loss of part %d has %lld elements, not 1", k,
                 (long long)sg_numel(loss));
        loss = NULL;
    }
    /* one part: the caller's exact step, no scaling node */
    sg_tensor *scaled = p->parts == 1 ? loss : sg_scale(ctx, loss, w);
    int rc = !scaled || sg_backward(ctx, scaled, NULL) ? -1 : 0;
    p->loss[k] = rc ? NAN : sg_get_flat(scaled, 0);
    if (!rc && p->fns->after && p->fns->after(ctx, k, row0, rows, p->user))
        rc = -1;
    p->rc[k] = rc;
    sg_ctx_reset(ctx);
}

enum { REDUCE_SPLIT = 1 << 18 }; /* slab elements from which the threads share the sum */

/* Reduction task k: slab range k of the store's gradients += workspaces 1..parts-1. */
static void reduce_part(void *arg, int k) {
    sg_parallel *p = arg;
    sg_store_reduce_part(p->ws[0], p->store, p->parts - 1, p->ws + 1, k, p->parts);
}

int sg_parallel_step(sg_parallel *p, int64_t batch, const sg_parallel_fns *fns, void *user,
                     double *loss) {
    if (!p)
        return -1;
    sg_ctx *ctx = p->ws[0];
    if (!fns || !fns->loss || batch < 1) {
        sg_error(ctx, "sg_parallel_step: %s",
                 !fns || !fns->loss ? "no loss function" : "batch < 1");
        return -1;
    }
    if (sg_ctx_error(ctx))
        return -1;
    p->fns = fns;
    p->user = user;
    p->batch = batch;
    p->parts = batch < p->n ? (int)batch : p->n;
    for (int k = 1; k < p->parts; k++) {
        sg_ctx_set_training(p->ws[k], sg_ctx_training(ctx));
        sg_ctx_set_grad_enabled(p->ws[k], sg_ctx_grad_enabled(ctx));
    }
    sg_pool_run(p->pool, p->parts, run_part, p);
    int bad = -1;
    for (int k = 0; k < p->parts && bad < 0; k++)
        if (p->rc[k])
            bad = k;
    if (bad >= 0) {
        if (bad > 0)
            sg_error(ctx, "%s", sg_ctx_error(p->ws[bad]));
        for (int k = 1; k < p->parts; k++)
            sg_ctx_clear_error(p->ws[k]);
        return -1;
    }
    /* a small slab is added by the caller alone: waking the workers again would cost more */
    if (p->parts > 1)
        sg_pool_run(sg_store_slab_len(p->store) >= REDUCE_SPLIT ? p->pool : NULL, p->parts,
                    reduce_part, p);
    double sum = 0;
    for (int k = 0; k < p->parts; k++)
        sum += p->loss[k];
    if (loss)
        *loss = sum;
    return sg_ctx_error(ctx) ? -1 : 0;
}
