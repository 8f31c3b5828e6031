/* Threads. Workspaces that share one parameter store: two threads, each with its own
 * context and private gradient slab, run forward and backward on halves of a batch at the
 * same time; the reduced gradients must equal one thread's gradients of the whole batch.
 * parallel/: the pool runs every task once; sg_parallel_step's gradients equal one
 * thread's within rounding, and training is bit-identical run to run at a fixed thread
 * count. CI also runs this program under ThreadSanitizer (build-tsan in .ci/run). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "seqgrad.h"

#include "cksuite.h"

enum { B = 6, T = 5, I = 3, H = 4 };

typedef struct {
    sg_ctx *ctx;
    sg_lstm *lstm;
    sg_dense *head;
    const double *x, *y; /* the whole batch: x (B, T, I), y (B, 1) */
    int64_t row0, rows;  /* this worker's rows */
    int rc;
} job;

/* loss = (rows / B) * mean over the rows of (head(lstm(x)) - y)^2: the parts of the two halves
 * add up to the mean over the whole batch, and so do their gradients. */
static void *work(void *arg) {
    job *j = arg;
    sg_ctx *ctx = j->ctx;
    sg_tensor *x = sg_from_data(ctx, SG_F64, SG_SHAPE(j->rows, T, I), j->x + j->row0 * T * I);
    sg_tensor *y = sg_from_data(ctx, SG_F64, SG_SHAPE(j->rows, 1), j->y + j->row0);
    sg_lstm_output out;
    j->rc = sg_lstm_forward(ctx, j->lstm, x, NULL, NULL, &out);
    sg_tensor *loss = sg_scale(ctx, sg_mse_loss(ctx, sg_dense_forward(ctx, j->head, out.y), y),
                               (double)j->rows / B);
    if (j->rc || sg_backward(ctx, loss, NULL))
        j->rc = -1;
    return NULL;
}

START_TEST(test_two_workspaces_one_store) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 11);
    sg_lstm_options o = sg_lstm_defaults(I, H);
    o.dtype = SG_F64;
    sg_lstm *lstm = sg_lstm_new(ctx, store, _i ? SG_LSTM_GATES : SG_LSTM_FUSED, &o, NULL, &rng);
    sg_dense *head = sg_dense_new(ctx, store, SG_F64, H, 1, true, SG_ACT_LINEAR, NULL, &rng);
    ck_assert_msg(lstm && head, "%s", sg_ctx_error(ctx));
    double x[B * T * I], y[B];
    for (int i = 0; i < B * T * I; i++)
        x[i] = sg_rng_normal(&rng);
    for (int i = 0; i < B; i++)
        y[i] = sg_rng_normal(&rng);

    /* one workspace, the whole batch, into the store's gradient slab */
    job all = {ctx, lstm, head, x, y, 0, B, 0};
    sg_store_zero_grad(store);
    work(&all);
    ck_assert_msg(all.rc == 0, "%s", sg_ctx_error(ctx));
    int64_t len = sg_store_slab_len(store);
    double *want = malloc((size_t)len * sizeof *want);
    memcpy(want, sg_store_grads(store), (size_t)len * sizeof *want);
    sg_store_zero_grad(store);

    /* two workspaces with private slabs, at once, then reduced in order */
    job half[2];
    pthread_t th[2];
    sg_ctx *ws[2];
    for (int k = 0; k < 2; k++) {
        ws[k] = sg_ctx_new(0);
        ck_assert_int_eq(sg_ctx_private_grads(ws[k], store), 0);
        half[k] = (job){ws[k], lstm, head, x, y, k * (B / 2), B / 2, 0};
    }
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(pthread_create(&th[k], NULL, work, &half[k]), 0);
    for (int k = 0; k < 2; k++) {
        pthread_join(th[k], NULL);
        ck_assert_msg(half[k].rc == 0, "worker %d: %s", k, sg_ctx_error(ws[k]));
    }
    /* nothing went into the store's slab while they ran */
    for (int64_t i = 0; i < len; i++)
        ck_assert(((const double *)sg_store_grads(store))[i] == 0);
    ck_assert_int_eq(sg_store_reduce(ctx, store, 2, ws), 0);
    const double *got = sg_store_grads(store);
    double worst = 0;
    for (int64_t i = 0; i < len; i++) {
        double rel = fabs(got[i] - want[i]) / fmax(fabs(want[i]), 1e-300);
        if (want[i] == 0 && got[i] == 0)
            rel = 0;
        worst = fmax(worst, rel);
    }
    ck_assert_msg(worst <= 1e-12, "largest relative difference %g", worst);
    /* each parameter's view says the same: the workspace's own, and the store's */
    sg_tensor *k0 = sg_store_find(store, "lstm.kernel");
    if (!k0)
        k0 = sg_store_find(store, "lstm.W_i");
    ck_assert_ptr_nonnull(k0);
    ck_assert_ptr_ne(sg_ctx_grad_of(ws[0], k0), k0->grad);
    ck_assert_ptr_eq(sg_ctx_grad_of(ctx, k0), k0->grad);

    /* errors: a workspace without private gradients, twice private */
    ck_assert_int_eq(sg_store_reduce(ctx, store, 1, &ctx), -1);
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_store_reduce: workspace 0 has no private gradients for this store");
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_ctx_private_grads(ws[0], store), -1);
    ck_assert_str_eq(sg_ctx_error(ws[0]),
                     "sg_ctx_private_grads: this workspace already has private gradients");

    for (int k = 0; k < 2; k++)
        sg_ctx_free(ws[k]);
    free(want);
    sg_lstm_free(lstm);
    sg_dense_free(head);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- parallel/: the pool ---------------------------------------------------------------- */

typedef struct {
    _Atomic int *count; /* per task: how often it ran */
    _Atomic int calls;
} pool_job;

static void count_task(void *user, int k) {
    pool_job *j = user;
    atomic_fetch_add(&j->count[k], 1);
    atomic_fetch_add(&j->calls, 1);
}

START_TEST(test_pool_runs_every_task_once) {
    enum { MAXT = 37 };
    _Atomic int count[MAXT];
    for (int threads = 0; threads <= 4; threads++) {
        sg_pool *p = threads ? sg_pool_new(threads) : NULL; /* NULL: the caller alone */
        ck_assert(!threads || p);
        ck_assert_int_eq(sg_pool_threads(p), threads ? threads : 1);
        /* many jobs in a row: a worker late for one job must not run the next one's tasks */
        for (int rep = 0; rep < 300; rep++) {
            int tasks = rep % MAXT; /* 0 tasks too, fewer and more tasks than threads */
            pool_job j = {count, 0};
            for (int k = 0; k < MAXT; k++)
                atomic_init(&count[k], 0);
            sg_pool_run(p, tasks, count_task, &j);
            ck_assert_int_eq(atomic_load(&j.calls), tasks);
            for (int k = 0; k < tasks; k++)
                ck_assert_msg(atomic_load(&count[k]) == 1, "threads %d rep %d task %d ran %d times",
                              threads, rep, k, atomic_load(&count[k]));
        }
        sg_pool_free(p);
    }
    sg_pool *one = sg_pool_new(0); /* below 1 is 1: no worker */
    ck_assert_int_eq(sg_pool_threads(one), 1);
    sg_pool_free(one);
    sg_pool_free(NULL);
}
END_TEST

START_TEST(test_thread_counts) {
    /* the slices: contiguous, covering, the first rows % parts one longer */
    for (int64_t rows = 1; rows < 20; rows++)
        for (int parts = 1; parts <= 6; parts++) {
            int64_t next = 0;
            for (int k = 0; k < parts; k++) {
                int64_t r0, n;
                sg_parallel_slice(rows, parts, k, &r0, &n);
                ck_assert_int_eq(r0, next);
                ck_assert_int_eq(n, rows / parts + (k < rows % parts));
                next += n;
            }
            ck_assert_int_eq(next, rows);
        }
    /* the work rule: one thread per SG_PARALLEL_MIN_FLOPS, no more than rows or the maximum */
    ck_assert_int_eq(sg_threads_for(1e3, 100, 8), 1);
    ck_assert_int_eq(sg_threads_for(SG_PARALLEL_MIN_FLOPS * 1.99, 100, 8), 1);
    ck_assert_int_eq(sg_threads_for(SG_PARALLEL_MIN_FLOPS * 3, 100, 8), 3);
    ck_assert_int_eq(sg_threads_for(1e15, 100, 8), 8);
    ck_assert_int_eq(sg_threads_for(1e15, 2, 8), 2);
    ck_assert_int_eq(sg_threads_for(1e15, 0, 8), 1);
    ck_assert_int_eq(sg_threads_for(NAN, 100, 8), 1);
    ck_assert_int_eq(sg_threads_for(1e15, 100, 0), 1);
    /* the default: SG_NUM_THREADS, else the CPUs this process may use */
    setenv("SG_NUM_THREADS", "3", 1);
    ck_assert_int_eq(sg_threads_default(), 3);
    setenv("SG_NUM_THREADS", "0", 1); /* out of range: ignored */
    int cpus = sg_threads_default();
    setenv("SG_NUM_THREADS", "2x", 1);
    ck_assert_int_eq(sg_threads_default(), cpus);
    unsetenv("SG_NUM_THREADS");
    ck_assert_int_eq(sg_threads_default(), cpus);
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
    ck_assert_int_eq(cpus, CPU_COUNT(&set));
}
END_TEST

/* ---- parallel/: data-parallel steps ------------------------------------------------------ */

enum { PB = 7, PT = 6, PI = 3, PH = 5 }; /* 7 rows: uneven slices for 2, 3 and 4 parts */

typedef struct {
    sg_lstm *lstm;
    sg_dense *head;
    sg_dtype dt;
    const void *x, *y; /* (PB, PT, PI), (PB, 1) */
    int fail_part;     /* the part whose loss fails (-1: none) */
    bool not_scalar;
    _Atomic int after_rows; /* rows seen by the after hook */
    _Atomic int after_calls;
} pjob;

static sg_tensor *ploss(sg_ctx *ctx, int part, int64_t row0, int64_t rows, void *user) {
    pjob *j = user;
    if (part == j->fail_part)
        return sg_error(ctx, "part %d fails on purpose (rows %lld..)", part, (long long)row0);
    size_t es = sg_dtype_size(j->dt);
    sg_tensor *x = sg_wrap(ctx, j->dt, SG_SHAPE(rows, PT, PI), (char *)j->x + row0 * PT * PI * es);
    sg_tensor *y = sg_wrap(ctx, j->dt, SG_SHAPE(rows, 1), (char *)j->y + row0 * es);
    sg_lstm_output out;
    if (sg_lstm_forward(ctx, j->lstm, x, NULL, NULL, &out))
        return NULL;
    sg_tensor *pred = sg_dense_forward(ctx, j->head, out.y);
    return j->not_scalar ? sg_sub(ctx, pred, y) : sg_mse_loss(ctx, pred, y);
}

static int pafter(sg_ctx *ctx, int part, int64_t row0, int64_t rows, void *user) {
    (void)ctx, (void)part, (void)row0;
    pjob *j = user;
    atomic_fetch_add(&j->after_rows, (int)rows);
    atomic_fetch_add(&j->after_calls, 1);
    return 0;
}

/* `steps` SGD steps with `threads` threads from the same initial model: the loss curve
 * (steps values) and the final gradients (len values, as doubles). */
static void ptrain(sg_dtype dt, int threads, int steps, double *curve, double *grads) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 5);
    sg_lstm_options o = sg_lstm_defaults(PI, PH);
    o.dtype = dt;
    pjob j = {sg_lstm_new(ctx, store, SG_LSTM_FUSED, &o, NULL, &rng),
              sg_dense_new(ctx, store, dt, PH, 1, true, SG_ACT_LINEAR, NULL, &rng),
              dt,
              NULL,
              NULL,
              -1,
              false,
              0,
              0};
    double xd[PB * PT * PI], yd[PB];
    float xf[PB * PT * PI], yf[PB];
    for (int i = 0; i < PB * PT * PI; i++)
        xf[i] = (float)(xd[i] = sg_rng_normal(&rng));
    for (int i = 0; i < PB; i++)
        yf[i] = (float)(yd[i] = sg_rng_normal(&rng));
    j.x = dt == SG_F64 ? (const void *)xd : (const void *)xf;
    j.y = dt == SG_F64 ? (const void *)yd : (const void *)yf;
    sg_param_list params = {0};
    sg_params_from_store(&params, store);
    sg_optim *opt = sg_sgd_new(ctx, &params, (sg_sgd_options){.lr = 0.1, .momentum = 0.9});
    sg_parallel *par = sg_parallel_new(ctx, store, threads);
    ck_assert_msg(j.lstm && j.head && opt && par, "%s", sg_ctx_error(ctx));
    ck_assert_int_eq(sg_parallel_threads(par), threads);
    sg_parallel_fns fns = {ploss, pafter};
    for (int s = 0; s < steps; s++) {
        sg_store_zero_grad(store);
        sg_tensor *before = sg_tensor_new(ctx, dt, SG_SHAPE(1));
        ck_assert_msg(sg_parallel_step(par, PB, &fns, &j, &curve[s]) == 0, "%s", sg_ctx_error(ctx));
        int64_t len = sg_store_slab_len(store);
        for (int64_t i = 0; s == steps - 1 && i < len; i++)
            grads[i] = dt == SG_F64 ? ((const double *)sg_store_grads(store))[i]
                                    : ((const float *)sg_store_grads(store))[i];
        ck_assert_int_eq(sg_optim_step(opt), 0);
        /* workspace 0 (ctx) was reset too: what it held before is gone */
        ck_assert(!sg_check(NULL, before, NULL));
    }
    ck_assert_int_eq(atomic_load(&j.after_rows), steps * PB);
    ck_assert_int_eq(atomic_load(&j.after_calls), steps * (threads < PB ? threads : PB));
    sg_parallel_free(par);
    sg_optim_free(opt);
    sg_params_clear(&params);
    sg_lstm_free(j.lstm);
    sg_dense_free(j.head);
    sg_store_free(store);
    sg_ctx_free(ctx);
}

static double max_rel(const double *a, const double *b, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++)
        if (a[i] != b[i])
            worst = fmax(worst, fabs(a[i] - b[i]) / fmax(fmax(fabs(a[i]), fabs(b[i])), 1e-30));
    return worst;
}

START_TEST(test_parallel_step_reproducible) {
    enum { STEPS = 25, SLAB = 4096 };
    const sg_dtype dt = _i ? SG_F32 : SG_F64;
    double c1[STEPS], g1[SLAB] = {0}, c[STEPS], g[SLAB] = {0}, c2[STEPS], g2[SLAB] = {0};
    ptrain(dt, 1, STEPS, c1, g1);
    const int64_t len = 4 * PH * (PI + PH) + 4 * PH + PH + 1 + 64; /* the slab, padding included */
    ck_assert(len < SLAB);
    for (int threads = 2; threads <= 9; threads += threads < 4 ? 1 : 5) { /* 2, 3, 4, 9 > PB */
        ptrain(dt, threads, STEPS, c, g);
        ptrain(dt, threads, STEPS, c2, g2);
        /* the same thread count: the same bits, every step */
        ck_assert_msg(!memcmp(c, c2, sizeof c), "threads %d: loss curves differ run to run",
                      threads);
        ck_assert_msg(!memcmp(g, g2, sizeof g), "threads %d: gradients differ run to run", threads);
        /* another thread count: equal within rounding (25 steps of momentum SGD) */
        double tol = dt == SG_F64 ? 1e-11 : 2e-4;
        ck_assert_msg(max_rel(c, c1, STEPS) <= tol, "threads %d: loss off by %g", threads,
                      max_rel(c, c1, STEPS));
        ck_assert_msg(max_rel(g, g1, len) <= tol * 10, "threads %d: gradients off by %g", threads,
                      max_rel(g, g1, len));
        /* and the model learns */
        ck_assert(c[STEPS - 1] < 0.7 * c[0]);
    }
}
END_TEST

START_TEST(test_parallel_step_errors) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *store = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 5);
    sg_lstm_options o = sg_lstm_defaults(PI, PH);
    o.dtype = SG_F64;
    double x[PB * PT * PI] = {0}, y[PB] = {1, 1, 1, 1, 1, 1, 1};
    pjob j = {sg_lstm_new(ctx, store, SG_LSTM_FUSED, &o, NULL, &rng),
              sg_dense_new(ctx, store, SG_F64, PH, 1, true, SG_ACT_LINEAR, NULL, &rng),
              SG_F64,
              x,
              y,
              2,
              false,
              0,
              0};
    ck_assert_ptr_null(sg_parallel_new(ctx, NULL, 2));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_parallel_new: store is NULL");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_parallel_new(NULL, store, 2));
    sg_parallel *par = sg_parallel_new(ctx, store, 3);
    ck_assert_ptr_nonnull(par);
    ck_assert_ptr_eq(sg_parallel_ctx(par, 0), ctx);
    ck_assert_ptr_nonnull(sg_parallel_ctx(par, 2));
    ck_assert_ptr_null(sg_parallel_ctx(par, 3));
    ck_assert_ptr_null(sg_parallel_ctx(NULL, 0));
    /* a failing part: its message, in ctx */
    sg_parallel_fns fns = {ploss, NULL};
    double loss = 0;
    ck_assert_int_eq(sg_parallel_step(par, PB, &fns, &j, &loss), -1);
    ck_assert_str_eq(sg_ctx_error(ctx), "part 2 fails on purpose (rows 5..)");
    sg_ctx_clear_error(ctx);
    /* the workspaces are usable again: the next step works */
    j.fail_part = -1;
    ck_assert_int_eq(sg_parallel_step(par, PB, &fns, &j, &loss), 0);
    ck_assert(loss > 0);
    j.not_scalar = true;
    ck_assert_int_eq(sg_parallel_step(par, PB, &fns, &j, &loss), -1);
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_parallel_step: the loss of part 0 has 3 elements, not 1");
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_parallel_step(par, 0, &fns, &j, &loss), -1);
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_parallel_step: batch < 1");
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_parallel_step(par, PB, &(sg_parallel_fns){NULL, NULL}, &j, &loss), -1);
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_parallel_step: no loss function");
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_parallel_step(NULL, PB, &fns, &j, &loss), -1);
    /* rows of a tensor of workspace 0 in workspace 2: the same memory */
    sg_ctx *w2 = sg_parallel_ctx(par, 2);
    sg_tensor *t = sg_arange(ctx, SG_F64, 0, 24, 1), *t3 = sg_reshape(ctx, t, SG_SHAPE(4, 3, 2));
    sg_tensor *r = sg_parallel_rows(w2, t3, 0, 1, 2);
    ck_assert_msg(r != NULL, "%s", sg_ctx_error(w2));
    ck_assert_int_eq(r->ndim, 3);
    ck_assert_int_eq(r->shape[0], 2);
    ck_assert_int_eq(r->shape[2], 2);
    ck_assert(sg_get_flat(r, 0) == 6 && sg_get_flat(r, 11) == 17);
    sg_set_flat(r, 0, -1);
    ck_assert(sg_get_flat(t, 6) == -1);
    sg_tensor *none = sg_parallel_rows(w2, t3, 0, 4, 0); /* no rows, at the end: allowed */
    ck_assert_msg(none && none->shape[0] == 0, "%s", sg_ctx_error(w2));
    ck_assert_ptr_null(sg_parallel_rows(w2, t3, 0, 3, 2));
    ck_assert_str_eq(sg_ctx_error(w2), "sg_parallel_rows: rows 3..4 outside axis 0's 4");
    sg_ctx_clear_error(w2);
    /* along axis 1 (a state's batch axis): a strided view of the same memory */
    sg_tensor *r1 = sg_parallel_rows(w2, t3, -2, 1, 2);
    ck_assert_msg(r1 && r1->shape[0] == 4 && r1->shape[1] == 2 && r1->shape[2] == 2, "%s",
                  sg_ctx_error(w2));
    ck_assert(sg_get_flat(r1, 0) == 2 && sg_get_flat(r1, 4) == 8);
    ck_assert_int_eq(sg_fill(r1, 0.5), 0);
    ck_assert(sg_get_flat(t, 2) == 0.5 && sg_get_flat(t, 1) == 1 && sg_get_flat(t, 22) == 0.5);
    ck_assert_ptr_null(sg_parallel_rows(w2, t3, 3, 0, 1));
    ck_assert_str_eq(sg_ctx_error(w2), "sg_parallel_rows: axis 3 of a 3-dimensional tensor");
    sg_ctx_clear_error(w2);
    ck_assert_ptr_null(sg_parallel_rows(w2, sg_transpose(ctx, t3, 0, 1), 0, 0, 1));
    ck_assert_str_eq(sg_ctx_error(w2), "sg_parallel_rows: the tensor is not contiguous");
    sg_ctx_clear_error(w2);
    ck_assert_ptr_null(sg_parallel_rows(w2, NULL, 0, 0, 1));
    ck_assert_ptr_null(sg_ctx_error(w2));
    sg_ctx_reset(ctx);
    ck_assert_ptr_null(sg_parallel_rows(w2, t3, 0, 0, 1));
    ck_assert_str_eq(sg_ctx_error(w2),
                     "sg_parallel_rows: not a live tensor (used after sg_ctx_reset?)");
    sg_ctx_clear_error(w2);
    ck_assert_int_eq(sg_parallel_threads(NULL), 1);
    sg_parallel_free(par);
    sg_parallel_free(NULL);
    sg_lstm_free(j.lstm);
    sg_dense_free(j.head);
    sg_store_free(store);
    sg_ctx_free(ctx);
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"store", 0, {{test_two_workspaces_one_store, 2} /* fused, gates */}},
        {"pool", 0, {{test_pool_runs_every_task_once, 1}, {test_thread_counts, 1}}},
        {"parallel",
         0,
         {{test_parallel_step_reproducible, 2} /* f64, f32 */, {test_parallel_step_errors, 1}}},
    };
    return CK_RUN("threads", tcases, NULL, NULL);
}
