/* dist/: data-parallel gradients against one process's whole-batch gradients, the model
 * check, broadcasts and agreement. Runs alone (one rank) and under `mpirun -np N` (the
 * meson tests dist_np2, dist_np3, dist_np4): every rank runs every test, so the collective
 * calls pair up. Check must not fork here (an MPI process cannot): CK_FORK=no. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqgrad.h"

#include "cksuite.h"
#include "errtest.h"

enum { B = 7, T = 5, I = 3, H = 4 };

/* The model every rank builds from the same seed: a stacked LSTM (or GRU), a Dense head. */
typedef struct {
    sg_store *st;
    sg_rnn *rnn;
    sg_dense *head;
} model;

static void model_new(sg_ctx *ctx, model *m, sg_dtype dt, sg_cell_kind cell, int64_t hidden) {
    sg_rng rng;
    sg_rng_seed(&rng, 42);
    m->st = sg_store_new();
    sg_rnn_options o = sg_rnn_defaults(cell, I, hidden);
    o.dtype = dt;
    o.num_layers = 2;
    o.return_sequences = false;
    m->rnn = sg_rnn_new(ctx, m->st, &o, "rnn", &rng);
    m->head = sg_dense_new(ctx, m->st, dt, hidden, 1, true, SG_ACT_LINEAR, "head", &rng);
    ck_assert_ptr_nonnull(m->rnn);
    ck_assert_ptr_nonnull(m->head);
}

static void model_free(model *m) {
    sg_rnn_free(m->rnn);
    sg_dense_free(m->head);
    sg_store_free(m->st);
}

/* Mean squared output over rows [r0, r1) of a fixed global batch (the same on every rank). */
static sg_tensor *loss_rows(sg_ctx *ctx, model *m, sg_dtype dt, int r0, int r1) {
    double x[B * T * I];
    for (int i = 0; i < B * T * I; i++)
        x[i] = sin(0.37 * i) + 0.1 * cos(1.3 * i * i);
    sg_tensor *xt = sg_slice(ctx, sg_from_data(ctx, SG_F64, SG_SHAPE(B, T, I), x), 0, r0, r1 - r0);
    if (dt == SG_F32)
        xt = sg_cast(ctx, xt, SG_F32);
    sg_rnn_output out;
    if (sg_rnn_forward(ctx, m->rnn, sg_contiguous(ctx, xt), NULL, NULL, NULL, &out))
        return NULL;
    sg_tensor *y = sg_dense_forward(ctx, m->head, out.y);
    return sg_mean(ctx, sg_square(ctx, sg_add_scalar(ctx, y, -0.5)));
}

/* Rank r's rows of the global batch: as equal as they come, the first B % size ranks one
 * more (with 4 ranks and B = 7: 2, 2, 2, 1). */
static void my_rows(int *r0, int *r1) {
    int n = sg_dist_size(), r = sg_dist_rank(), q = B / n, e = B % n;
    *r0 = r * q + (r < e ? r : e);
    *r1 = *r0 + q + (r < e);
}

/* Reduced gradients equal the whole batch's, for each dtype, cell and bucket size (tiny
 * buckets: one per parameter, launched while backward runs). */
START_TEST(test_gradients_match_whole_batch) {
    static const struct {
        sg_dtype dt;
        sg_cell_kind cell;
        size_t bucket;
        double tol;
    } cases[] = {
        {SG_F64, SG_CELL_LSTM, 0, 1e-12},
        {SG_F64, SG_CELL_LSTM, 1, 1e-12},
        {SG_F64, SG_CELL_GRU, 200, 1e-12},
        {SG_F32, SG_CELL_LSTM, 1, 2e-5},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        sg_ctx *ctx = sg_ctx_new(0);
        model whole, part;
        model_new(ctx, &whole, cases[c].dt, cases[c].cell, H);
        model_new(ctx, &part, cases[c].dt, cases[c].cell, H);
        sg_tensor *lw = loss_rows(ctx, &whole, cases[c].dt, 0, B);
        ck_assert_int_eq(sg_backward(ctx, lw, NULL), 0);

        ck_assert_int_eq(sg_dist_check_store(ctx, part.st), 0);
        sg_dist_reducer *red = sg_dist_reducer_new(ctx, part.st, cases[c].bucket);
        ck_assert_ptr_nonnull(red);
        int r0, r1;
        my_rows(&r0, &r1);
        sg_tensor *lp = loss_rows(ctx, &part, cases[c].dt, r0, r1);
        ck_assert_msg(sg_dist_backward(ctx, red, lp, (double)(r1 - r0) / B) == 0, "%s",
                      sg_ctx_error(ctx));
        for (int i = 0; i < sg_store_size(whole.st); i++) {
            sg_tensor *gw = sg_store_at(whole.st, i)->grad, *gp = sg_store_at(part.st, i)->grad;
            double scale = 0;
            for (int64_t j = 0; j < sg_numel(gw); j++)
                scale = fmax(scale, fabs(sg_get_flat(gw, j)));
            for (int64_t j = 0; j < sg_numel(gw); j++)
                ck_assert_msg(fabs(sg_get_flat(gw, j) - sg_get_flat(gp, j)) <= cases[c].tol * scale,
                              "case %zu %s[%lld]: whole batch %.17g, ranks %.17g", c,
                              sg_store_name_at(whole.st, i), (long long)j, sg_get_flat(gw, j),
                              sg_get_flat(gp, j));
        }
        sg_dist_stats s = sg_dist_reducer_stats(red);
        ck_assert_int_eq(s.steps, 1);
        if (cases[c].bucket == 1) /* one parameter per bucket: all but the last go early */
            ck_assert_int_eq(s.buckets, sg_store_size(part.st));
        if (cases[c].bucket && sg_dist_size() > 1)
            ck_assert_int_ge(s.early_launches, s.buckets - 1);
        if (sg_dist_size() == 1) /* plain backward: nothing goes early, nothing is timed */
            ck_assert(s.early_launches == 0 && s.backward_s == 0 && s.wait_s == 0);
        ck_assert_int_eq(s.bytes, sg_store_slab_len(part.st) * (int64_t)sg_dtype_size(cases[c].dt));
        sg_dist_reducer_free(red);
        model_free(&whole);
        model_free(&part);
        sg_ctx_free(ctx);
    }
}
END_TEST

/* A rank with another hidden size: every rank fails, with the first difference named. */
START_TEST(test_check_store) {
    sg_ctx *ctx = sg_ctx_new(0);
    model m;
    int r = sg_dist_rank();
    model_new(ctx, &m, SG_F32, SG_CELL_LSTM, r == 1 ? 6 : H);
    int rc = sg_dist_check_store(ctx, m.st);
    if (sg_dist_size() == 1) {
        ck_assert_int_eq(rc, 0);
    } else {
        ck_assert_int_eq(rc, -1);
        EXPECT_ERR(ctx,
                   "sg_dist_check_store: rank 1's parameter 0 is rnn.l0.kernel float32 (3, 24); "
                   "rank 0's is rnn.l0.kernel float32 (3, 16)");
    }
    model_free(&m);
    /* a rank with one parameter more */
    sg_ctx_clear_error(ctx);
    sg_store *st = sg_store_new();
    sg_store_param(ctx, st, "w", SG_F64, SG_SHAPE(2, 2));
    if (r == sg_dist_size() - 1 && r > 0)
        sg_store_param(ctx, st, "extra", SG_F64, SG_SHAPE(3));
    rc = sg_dist_check_store(ctx, st);
    if (sg_dist_size() == 1) {
        ck_assert_int_eq(rc, 0);
    } else {
        char want[160];
        snprintf(
            want, sizeof want,
            "sg_dist_check_store: rank %d's parameter 1 is extra float64 (3,); rank 0's is (none)",
            sg_dist_size() - 1);
        ck_assert_int_eq(rc, -1);
        EXPECT_ERR(ctx, want);
    }
    ck_assert_int_eq(sg_dist_check_store(ctx, NULL), -1);
    ck_assert_int_eq(sg_dist_check_store(NULL, st), -1);
    sg_store_free(st);
    sg_ctx_free(ctx);
}
END_TEST

/* Broadcasts from rank 0 (the store, a list, bytes), sums, agreement. */
START_TEST(test_broadcast_sum_agree) {
    sg_ctx *ctx = sg_ctx_new(0);
    int r = sg_dist_rank(), n = sg_dist_size();
    sg_store *st = sg_store_new();
    sg_tensor *w = sg_store_param(ctx, st, "w", SG_F64, SG_SHAPE(3));
    sg_tensor *v = sg_store_param(ctx, st, "v", SG_F64, SG_SHAPE(2));
    for (int i = 0; i < 3; i++)
        sg_set_flat(w, i, 10 * r + i);
    sg_set_flat(v, 1, 100 + r);
    ck_assert_int_eq(sg_dist_broadcast_store(ctx, st), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_double_eq(sg_get_flat(w, i), i);
    ck_assert_double_eq(sg_get_flat(v, 1), 100);

    sg_tensor *a = sg_full(ctx, SG_F32, SG_SHAPE(4), (double)r + 0.5);
    sg_param_list list = {0};
    ck_assert_int_eq(sg_params_add(&list, "a", a), 0);
    ck_assert_int_eq(sg_dist_broadcast_list(ctx, &list), 0);
    ck_assert_double_eq(sg_get_flat(a, 3), 0.5);
    sg_params_clear(&list);
    ck_assert_int_eq(
        sg_params_add(&list, "t", sg_transpose(ctx, sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3)), 0, 1)),
        0);
    ck_assert_int_eq(sg_dist_broadcast_list(ctx, &list), -1);
    EXPECT_ERR(ctx, "sg_dist_broadcast_list: t is not contiguous");
    sg_params_clear(&list);

    uint64_t seed = 1000 + (uint64_t)r;
    ck_assert_int_eq(sg_dist_broadcast(ctx, &seed, sizeof seed), 0);
    ck_assert_uint_eq(seed, 1000);

    /* rank r gives r + 1 bytes of value r: 0 1 1 2 2 2 ... */
    unsigned char mine[8], all[64];
    memset(mine, r, sizeof mine);
    ck_assert_int_eq(sg_dist_allgather(ctx, mine, (size_t)r + 1, all), 0);
    for (int q = 0, at = 0; q < n; at += ++q)
        for (int k = 0; k <= q; k++)
            ck_assert_int_eq(all[at + k], q);

    double s[2] = {1, (double)r};
    ck_assert_int_eq(sg_dist_sum(ctx, s, 2), 0);
    ck_assert_double_eq(s[0], n);
    ck_assert_double_eq(s[1], n * (n - 1) / 2.0);

    ck_assert(sg_dist_all_ok(true));
    ck_assert(!sg_dist_all_ok(r != n - 1));
    ck_assert(!sg_dist_all_ok(r != 0));
    sg_store_free(st);
    sg_ctx_free(ctx);
}
END_TEST

/* Bad arguments: messages, no collective call made (so no rank waits). */
START_TEST(test_errors) {
    sg_ctx *ctx = sg_ctx_new(0);
    ck_assert_ptr_null(sg_dist_reducer_new(ctx, NULL, 0));
    EXPECT_ERR(ctx, "sg_dist_reducer_new: the store has no parameters");
    sg_ctx_clear_error(ctx);
    model m;
    model_new(ctx, &m, SG_F64, SG_CELL_RNN, H);
    sg_dist_reducer *red = sg_dist_reducer_new(ctx, m.st, 0);
    ck_assert_int_eq(sg_dist_backward(ctx, red, NULL, 1.5), -1);
    EXPECT_ERR(ctx, "sg_dist_backward: weight = 1.5 outside [0, 1]");
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_dist_backward(ctx, NULL, NULL, 1), -1);
    EXPECT_ERR(ctx, "sg_dist_backward: reducer is NULL");
    sg_ctx_clear_error(ctx);
    ck_assert_int_eq(sg_ctx_private_grads(ctx, m.st), 0);
    ck_assert_int_eq(sg_dist_backward(ctx, red, NULL, 1), -1);
    EXPECT_ERR(ctx, "sg_dist_backward: the workspace has private gradients; reduce them into "
                    "the store first (sg_store_reduce) or use one workspace per rank");
    sg_dist_reducer_free(red);
    sg_dist_reducer_free(NULL);
    ck_assert_int_eq(sg_dist_reducer_stats(NULL).steps, 0);
    model_free(&m);
    sg_ctx_free(ctx);
}
END_TEST

/* Leaks: Open MPI keeps allocations until exit (in modules it has unloaded by then, which
 * LeakSanitizer cannot name or suppress), so the sanitizer build runs these tests without
 * LeakSanitizer; instead every block seqgrad allocates goes through this counting shim and
 * must be freed by the end. */
static long live_blocks;
static void *count_malloc(size_t n, void *u) {
    (void)u;
    void *p = malloc(n);
    live_blocks += p != NULL;
    return p;
}
static void *count_realloc(void *p, size_t n, void *u) {
    (void)u;
    void *q = realloc(p, n);
    live_blocks += !p && q;
    return q;
}
static void count_free(void *p, void *u) {
    (void)u;
    live_blocks -= p != NULL;
    free(p);
}

int main(int argc, char **argv) {
    static const sg_allocator counting = {count_malloc, count_realloc, count_free, NULL};
    sg_set_allocator(&counting);
    if (sg_dist_init(&argc, &argv))
        return EXIT_FAILURE;
    const ck_tcase tcases[] = {
        {"dist",
         0,
         {{test_gradients_match_whole_batch, 1},
          {test_check_store, 1},
          {test_broadcast_sum_agree, 1},
          {test_errors, 1}}},
    };
    int rc = CK_RUN("dist", tcases, NULL, NULL);
    if (live_blocks != 0) {
        fprintf(stderr, "test_dist: rank %d: %ld blocks allocated by seqgrad not freed\n",
                sg_dist_rank(), live_blocks);
        rc = EXIT_FAILURE;
    }
    /* every rank's verdict: one failing rank fails them all */
    rc = sg_dist_all_ok(rc == EXIT_SUCCESS) ? EXIT_SUCCESS : EXIT_FAILURE;
    sg_dist_finalize();
    return rc;
}
