/* seqgrad parallel: every core of one machine for a training step.
 *
 * Data parallelism over threads (KANN's kann_mt, and what dist/ does over processes): the
 * batch's rows are cut into contiguous slices, one per workspace; each workspace runs
 * forward and backward on its slice, on the one shared parameter store, into a private
 * gradient slab; the slabs are then added into the store's gradient slab in workspace order,
 * so that a run at a fixed thread count gives the same bits every time. A worked example:
 *
 *     sg_ctx *ctx = sg_ctx_new(0);
 *     sg_store *model = sg_store_new();
 *     ... build the layers into `model` (with ctx), the optimizer ...
 *     int n = sg_threads_for(flops_per_step, sg_threads_default());  // 1 for tiny models
 *     sg_parallel *par = sg_parallel_new(ctx, model, n);  // ctx is workspace 0
 *     for (step ...) {
 *         sg_store_zero_grad(model);
 *         double loss;
 *         // my_loss(ctx_k, part, row0, rows, user): the mean loss of rows row0.. of the batch
 *         if (sg_parallel_step(par, batch, &(sg_parallel_fns){my_loss, NULL}, data, &loss))
 *             ... sg_ctx_error(ctx) says what failed ...
 *         sg_optim_step(opt);
 *     }
 *     sg_parallel_free(par);
 *
 * The threads are a pool that lives as long as the sg_parallel (no thread is created per
 * step or per op). A thread with nothing to do sleeps on a condition variable: it never
 * spins, so a machine whose cores are busy with other work loses no more than the work
 * those threads would have done (the caller takes any slice a thread has not started).
 * BLIS runs single-threaded inside each workspace: sg_set_num_threads is for one workspace
 * on large products only.
 *
 * Results: one thread is exactly the caller's context doing the whole batch. With n
 * threads the batch's gradients are the sum of the slices' (each weighted by its share of
 * the rows), which equals one thread's within float rounding; the same n gives the same bits
 * run to run, whichever thread runs which slice. Random draws (dropout masks) come from
 * each workspace's own generator (sg_ctx_rng of sg_parallel_ctx): seed them per step from
 * a generator of the caller's to make runs repeatable (sg_parallel_seed). */
#ifndef SEQGRAD_PARALLEL_H
#define SEQGRAD_PARALLEL_H

#include <stdint.h>

#include "../autograd/autograd.h"

/* ---- how many threads ------------------------------------------------------------------ */
/* The default thread count: the SG_NUM_THREADS environment variable when it is set to an
 * integer in 1..256, else the number of CPUs this process may run on (sched_getaffinity:
 * taskset and container limits count), at least 1 and at most 256. */
int sg_threads_default(void);
/* The threads worth using for a step of `flops` floating-point operations on a batch of
 * `rows` rows, at most max_threads: one per SG_PARALLEL_MIN_FLOPS of work, never more
 * than the rows, at least 1. Waking a sleeping thread and adding its gradients costs tens
 * of microseconds: below that much work per thread a second thread only slows a step down
 * (docs/threads.md has the measurements behind the constant). */
#define SG_PARALLEL_MIN_FLOPS 2e5
int sg_threads_for(double flops, int64_t rows, int max_threads);

/* ---- the thread pool -------------------------------------------------------------------- */
typedef struct sg_pool sg_pool;
/* A pool of `threads` threads: the caller and threads - 1 workers, started now and
 * sleeping until there is work. threads < 1 is 1 (no worker). NULL when a thread cannot be
 * started or memory is short (nothing is left running). */
sg_pool *sg_pool_new(int threads);
/* Stop and join the workers and free the pool. NULL is fine. Not while sg_pool_run runs. */
void sg_pool_free(sg_pool *p);
/* Threads of the pool, the caller included (1 for NULL). */
int sg_pool_threads(const sg_pool *p);
/* Call fn(user, k) once for every task k in 0..tasks-1, on the pool's threads, and return
 * when all have returned. The caller works too: tasks go to whichever thread asks first,
 * so the caller runs them all when the workers are slow to wake (or p is NULL). fn must be
 * safe to run concurrently for different k. One sg_pool_run at a time per pool. */
void sg_pool_run(sg_pool *p, int tasks, void (*fn)(void *user, int task), void *user);

/* ---- data-parallel steps ---------------------------------------------------------------- */
typedef struct sg_parallel sg_parallel;

typedef struct sg_parallel_fns {
    /* Forward on rows row0 .. row0 + rows - 1 of the batch, in workspace ctx (part `part`
     * of the step): returns a scalar, the MEAN loss over those rows (weighted by rows /
     * batch by the step), or NULL with an error in ctx. Required. */
    sg_tensor *(*loss)(sg_ctx *ctx, int part, int64_t row0, int64_t rows, void *user);
    /* Called in the same thread after the slice's backward, before its workspace is reset:
     * take what is needed from the forward (outputs, states to carry). 0, or -1 with an
     * error in ctx. May be NULL. */
    int (*after)(sg_ctx *ctx, int part, int64_t row0, int64_t rows, void *user);
} sg_parallel_fns;

/* `threads` workspaces on `store`: workspace 0 is ctx itself (its gradients go straight
 * into the store's slab), workspaces 1.. are new contexts with private gradient slabs,
 * and the pool that runs them. threads < 1 is 1. Add every parameter to the store first.
 * NULL with an error in ctx (NULL store, out of memory, a thread that cannot start). */
sg_parallel *sg_parallel_new(sg_ctx *ctx, sg_store *store, int threads);
/* Free the workspaces made by sg_parallel_new (not ctx) and the pool. NULL is fine. */
void sg_parallel_free(sg_parallel *p);
int sg_parallel_threads(const sg_parallel *p); /* 1 for NULL */
/* Workspace k (0 is the ctx given to sg_parallel_new); NULL out of range. */
sg_ctx *sg_parallel_ctx(const sg_parallel *p, int k);
/* Seed workspace k's generator with a hash of (seed, k), for every k (workspace 0's is the
 * caller's context's: save it first if it has other uses): the same seed gives the same
 * draws in every part. */
void sg_parallel_seed(sg_parallel *p, uint64_t seed);
/* Rows of part k when `rows` rows are cut into `parts` contiguous slices (the first
 * rows % parts slices one row longer): the first row and the count. */
void sg_parallel_slice(int64_t rows, int parts, int k, int64_t *row0, int64_t *count);

/* Rows row0 .. row0 + rows - 1 along `axis` of a contiguous tensor t of any workspace, as a
 * view in ctx over the same memory (no copy): how a part reads its slice of a batch that
 * workspace 0 holds, and writes its slice of a carried state (a (layers, batch, units)
 * state has its rows on axis 1). Negative axes count from the end. NULL with an error in
 * ctx when t is not contiguous or not live, the axis does not exist, or the range is
 * outside it; NULL t gives NULL. */
sg_tensor *sg_parallel_rows(sg_ctx *ctx, const sg_tensor *t, int axis, int64_t row0, int64_t rows);

/* One step's forward and backward over a batch of `batch` rows: min(threads, batch) parts,
 * part k on slice k (sg_parallel_slice) in workspace k. ACCUMULATES the batch's gradients
 * (the sum over parts of (rows_k / batch) * d loss_k) into the store's gradient slab, as
 * sg_backward does: zero it first (sg_store_zero_grad). Writes the batch's mean loss
 * (the same weighted sum, parts in order) to *loss (may be NULL). Every workspace is reset
 * at the end of its part, ctx too; the training and grad-enabled modes of ctx are copied to
 * the others first. 0, or -1 with the first failing part's error in ctx (the store's
 * gradients are then partial: take no optimizer step). */
int sg_parallel_step(sg_parallel *p, int64_t batch, const sg_parallel_fns *fns, void *user,
                     double *loss);

#endif
