/* Check tests for autograd/ops_matmul.c: sg_matmul (plain, batched, (..., M, K) @ (K, N)),
 * its backward, sg_set_num_threads.
 *
 * Forward values are compared with a naive triple loop that reads the operands element by
 * element through sg_get (so it follows the views' strides independently of the kernels),
 * in long double, for shapes on both sides of the direct-kernel / BLIS threshold (48^3),
 * with transposed and sliced views as operands. Tolerance: |got - ref| <= tol * sum_p
 * |a_ip * b_pj| (the natural error bound of a dot product), tol 1e-5 for float32 and 1e-13
 * for float64. Gradients are checked by central differences with sg_gradcheck. Tests that
 * loop over dtypes run as _i = 0 (float32) and _i = 1 (float64).
 */
/* blis.h needs POSIX (pthread_barrier_t), and setenv is POSIX: before any header. */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "cksuite.h"
#include "optest.h"

/* To check that sg_set_num_threads reaches BLIS (blis.h comes in with -isystem). */
#include <blis.h>

#define DT(i) ((i) ? SG_F64 : SG_F32)

/* ---- helpers ---------------------------------------------------------------------------- */

static sg_tensor *rnd(sg_ctx *ctx, sg_dtype dt, int nd, const int64_t *shape) {
    sg_tensor *t = sg_rand_uniform(ctx, dt, nd, shape, -1.0, 1.0);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* Flat (row-major) index -> multi-index of a shape. */
static void unflat(int64_t i, int nd, const int64_t *shape, int64_t *idx) {
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
}

/* c = a @ b checked element by element against the naive sum. a is (..., M, K), b is
 * (K, N) or (..., K, N). */
static void expect_matmul(const sg_tensor *c, const sg_tensor *a, const sg_tensor *b) {
    ck_assert_ptr_nonnull(c);
    int nd = a->ndim;
    int64_t M = a->shape[nd - 2], K = a->shape[nd - 1], N = b->shape[b->ndim - 1];
    ck_assert_int_eq(c->ndim, nd);
    for (int d = 0; d < nd - 2; d++)
        ck_assert_int_eq(c->shape[d], a->shape[d]);
    ck_assert_int_eq(c->shape[nd - 2], M);
    ck_assert_int_eq(c->shape[nd - 1], N);
    ck_assert(sg_is_contiguous(c));
    double tol = c->dtype == SG_F32 ? 1e-5 : 1e-13;
    int64_t n = sg_numel(c);
    for (int64_t f = 0; f < n; f++) {
        int64_t ci[SG_MAX_DIMS], ai[SG_MAX_DIMS], bi[SG_MAX_DIMS];
        unflat(f, nd, c->shape, ci);
        memcpy(ai, ci, sizeof ai);
        int bo = b->ndim == 2 ? 0 : nd - 2; /* where b's matrix index starts */
        for (int d = 0; d < bo; d++)
            bi[d] = ci[d];
        long double s = 0, mag = 0;
        for (int64_t p = 0; p < K; p++) {
            ai[nd - 1] = p;
            bi[bo] = p;
            bi[bo + 1] = ci[nd - 1];
            long double t = (long double)sg_get(a, ai) * sg_get(b, bi);
            s += t;
            mag += fabsl(t);
        }
        double got = sg_get_flat(c, f);
        ck_assert_msg(fabs(got - (double)s) <= tol * (double)mag + 1e-30,
                      "element %lld: got %.17g, want %.17g", (long long)f, got, (double)s);
    }
}

/* ---- forward: plain 2-D --------------------------------------------------------------- */

START_TEST(test_hand_values) {
    /* [[1, 2, 3], [4, 5, 6]] @ [[7, 8], [9, 10], [11, 12]] = [[58, 64], [139, 154]] */
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *a = sg_from_data(ctx, SG_F64, SG_SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    sg_tensor *b = sg_from_data(ctx, SG_F64, SG_SHAPE(3, 2), (double[]){7, 8, 9, 10, 11, 12});
    if (dt == SG_F32) {
        sg_tensor *a32 = sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3)),
                  *b32 = sg_zeros(ctx, SG_F32, SG_SHAPE(3, 2));
        for (int i = 0; i < 6; i++) {
            sg_set_flat(a32, i, sg_get_flat(a, i));
            sg_set_flat(b32, i, sg_get_flat(b, i));
        }
        a = a32;
        b = b32;
    }
    sg_tensor *c = sg_matmul(ctx, a, b);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->dtype, dt);
    double want[] = {58, 64, 139, 154};
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq(sg_get_flat(c, i), want[i]);
    /* nothing required grad: not recorded */
    ck_assert_int_eq(c->op, SG_OP_NONE);
    ck_assert_int_eq(sg_tape_size(ctx), 0);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_many_shapes) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    /* M, K, N: degenerate, the LSTM's tiny products, around the 48^3 threshold, big,
     * vectors (BLIS with m == 1 / n == 1), k == 1; for the register-blocked kernel every
     * row-block height (1 to 6, and more than one block) with column tails around its
     * 16-float / 8-double vectors and 64-float panels, the small LSTM's products, a B just
     * past its limit (k * n > 256K: BLIS), a k long enough to take it in chunks of k
     * anyway (at most 128 rows; 1030 = 4 chunks of 256 and 6; its B past the limit, so
     * each panel of B is fetched ahead, up to a narrower last panel), and one row too many */
    static const int64_t shapes[][3] = {
        {1, 1, 1},       {1, 7, 1},     {1, 1, 5},     {3, 1, 4},      {2, 4, 16},
        {2, 9, 4},       {2, 9, 16},    {3, 5, 2},     {7, 13, 11},    {16, 16, 16},
        {33, 17, 9},     {47, 48, 48},  {48, 48, 48},  {49, 48, 48},   {48, 47, 48},
        {130, 70, 90},   {1, 300, 400}, {400, 300, 1}, {64, 1, 2000},  {5, 2000, 30},
        {6, 3, 64},      {4, 5, 15},    {5, 2, 17},    {7, 5, 65},     {11, 9, 129},
        {13, 40, 33},    {12, 64, 100}, {32, 64, 256}, {32, 256, 64},  {64, 32, 256},
        {9, 7, 8},       {3, 11, 7},    {4, 520, 520}, {7, 2000, 200}, {128, 1030, 300},
        {130, 1030, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        sg_tensor *a = rnd(ctx, dt, SG_SHAPE(M, K)), *b = rnd(ctx, dt, SG_SHAPE(K, N));
        expect_matmul(sg_matmul(ctx, a, b), a, b);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_empty) {
    /* K = 0: an empty sum, all zeros; M = 0: an empty result. */
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *a = rnd(ctx, dt, SG_SHAPE(3, 0)), *b = rnd(ctx, dt, SG_SHAPE(0, 4));
    sg_tensor *c = sg_matmul(ctx, a, b);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(sg_numel(c), 12);
    for (int i = 0; i < 12; i++)
        ck_assert_double_eq(sg_get_flat(c, i), 0.0);
    sg_tensor *e = sg_matmul(ctx, rnd(ctx, dt, SG_SHAPE(0, 3)), rnd(ctx, dt, SG_SHAPE(3, 4)));
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->shape[0], 0);
    ck_assert_int_eq(e->shape[1], 4);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- forward: views as operands -------------------------------------------------------- */

START_TEST(test_transposed_operands) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    /* then: a transposed A of at most 96 rows (the register-blocked kernel, as for
     * x^T @ dZ), of more than 96 rows past its limit (BLIS), and of 100 rows with a k long
     * enough to take the kernel in chunks of k */
    static const int64_t shapes[][3] = {{2, 4, 16},      {5, 3, 7},      {50, 60, 70},
                                        {130, 70, 90},   {16, 1024, 70}, {100, 90, 40},
                                        {100, 1300, 250}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        sg_tensor *a = rnd(ctx, dt, SG_SHAPE(M, K)), *b = rnd(ctx, dt, SG_SHAPE(K, N));
        sg_tensor *at = sg_transpose(ctx, rnd(ctx, dt, SG_SHAPE(K, M)), 0, 1);
        sg_tensor *bt = sg_transpose(ctx, rnd(ctx, dt, SG_SHAPE(N, K)), 0, 1);
        ck_assert(!sg_is_contiguous(at) || M == 1 || K == 1);
        expect_matmul(sg_matmul(ctx, at, b), at, b);
        expect_matmul(sg_matmul(ctx, a, bt), a, bt);
        expect_matmul(sg_matmul(ctx, at, bt), at, bt);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_sliced_operands) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    /* columns 4..8 of a (6, 16) as a (6, 4) left operand, row stride 16 */
    sg_tensor *big = rnd(ctx, dt, SG_SHAPE(6, 16));
    sg_tensor *a = sg_slice(ctx, big, 1, 4, 4);
    ck_assert_int_eq(a->stride[0], 16);
    sg_tensor *b = rnd(ctx, dt, SG_SHAPE(4, 5));
    expect_matmul(sg_matmul(ctx, a, b), a, b);
    /* the same columns as a right operand */
    sg_tensor *l = rnd(ctx, dt, SG_SHAPE(3, 6));
    expect_matmul(sg_matmul(ctx, l, a), l, a);
    /* a big slice on the BLIS path: (130, 70) out of (130, 200), @ (70, 90) */
    sg_tensor *big2 = rnd(ctx, dt, SG_SHAPE(130, 200));
    sg_tensor *a2 = sg_slice(ctx, big2, 1, 10, 70);
    sg_tensor *b2 = sg_slice(ctx, rnd(ctx, dt, SG_SHAPE(80, 95)), 0, 5, 70);
    b2 = sg_slice(ctx, b2, 1, 3, 90);
    expect_matmul(sg_matmul(ctx, a2, b2), a2, b2);
    /* a single row / column with an arbitrary stride on its size-1 dim: (1, K) taken as
     * the transpose of column 2 of a (K, 5) -> strides (1, 5), which BLIS only accepts
     * after normalisation */
    sg_tensor *colsrc = rnd(ctx, dt, SG_SHAPE(300, 5));
    sg_tensor *row = sg_transpose(ctx, sg_slice(ctx, colsrc, 1, 2, 1), 0, 1);
    ck_assert_int_eq(row->shape[0], 1);
    ck_assert_int_eq(row->stride[1], 5);
    sg_tensor *w = rnd(ctx, dt, SG_SHAPE(300, 400));
    expect_matmul(sg_matmul(ctx, row, w), row, w);
    sg_tensor *col = sg_slice(ctx, colsrc, 1, 2, 1); /* (300, 1), strides (5, 1) */
    sg_tensor *wt = rnd(ctx, dt, SG_SHAPE(400, 300));
    expect_matmul(sg_matmul(ctx, wt, col), wt, col);
    /* a row selected out of a matrix used as (1, K) */
    sg_tensor *r1 = sg_slice(ctx, rnd(ctx, dt, SG_SHAPE(7, 9)), 0, 3, 1);
    sg_tensor *w1 = rnd(ctx, dt, SG_SHAPE(9, 4));
    expect_matmul(sg_matmul(ctx, r1, w1), r1, w1);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_expanded_operand) {
    /* stride-0 operands: BLIS refuses them, the direct kernel handles any size */
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *row = rnd(ctx, dt, SG_SHAPE(1, 60));
    sg_tensor *e = sg_expand(ctx, row, SG_SHAPE(50, 60)); /* (50, 60), strides (0, 1) */
    ck_assert_int_eq(e->stride[0], 0);
    sg_tensor *a = rnd(ctx, dt, SG_SHAPE(70, 50));
    expect_matmul(sg_matmul(ctx, a, e), a, e);
    sg_tensor *b = rnd(ctx, dt, SG_SHAPE(60, 45));
    expect_matmul(sg_matmul(ctx, e, b), e, b);
    /* a (K,) vector expanded to (1, K): stride 0 on the size-1 dim, which only needs
     * normalising to be a valid BLIS operand (300 x 400 x 1 is on the BLIS path) */
    sg_tensor *v = sg_expand(ctx, rnd(ctx, dt, SG_SHAPE(300)), SG_SHAPE(1, 300));
    ck_assert_int_eq(v->stride[0], 0);
    sg_tensor *w = rnd(ctx, dt, SG_SHAPE(300, 400));
    expect_matmul(sg_matmul(ctx, v, w), v, w);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- forward: batches ------------------------------------------------------------------ */

START_TEST(test_batched) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    /* small and BLIS-sized batches of matrices */
    sg_tensor *a = rnd(ctx, dt, SG_SHAPE(3, 4, 5)), *b = rnd(ctx, dt, SG_SHAPE(3, 5, 6));
    expect_matmul(sg_matmul(ctx, a, b), a, b);
    sg_tensor *A = rnd(ctx, dt, SG_SHAPE(2, 60, 50)), *B = rnd(ctx, dt, SG_SHAPE(2, 50, 40));
    expect_matmul(sg_matmul(ctx, A, B), A, B);
    /* transposed b per batch entry, permuted a (batch stride smaller than row stride) */
    sg_tensor *bt = sg_transpose(ctx, rnd(ctx, dt, SG_SHAPE(3, 6, 5)), 1, 2);
    sg_tensor *ap = sg_permute(ctx, rnd(ctx, dt, SG_SHAPE(4, 3, 5)), (int[]){1, 0, 2});
    expect_matmul(sg_matmul(ctx, ap, bt), ap, bt);
    /* 4-D batch */
    sg_tensor *a4 = rnd(ctx, dt, SG_SHAPE(2, 3, 4, 5)), *b4 = rnd(ctx, dt, SG_SHAPE(2, 3, 5, 2));
    expect_matmul(sg_matmul(ctx, a4, b4), a4, b4);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_broadcast_batch) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    /* (B, T, K) @ (K, N): contiguous a, merged into one gemm (small and BLIS-sized) */
    sg_tensor *a = rnd(ctx, dt, SG_SHAPE(2, 3, 5)), *w = rnd(ctx, dt, SG_SHAPE(5, 4));
    expect_matmul(sg_matmul(ctx, a, w), a, w);
    sg_tensor *A = rnd(ctx, dt, SG_SHAPE(4, 30, 70)), *W = rnd(ctx, dt, SG_SHAPE(70, 90));
    expect_matmul(sg_matmul(ctx, A, W), A, W);
    /* a (T, B, K) tensor permuted to (B, T, K): rows cannot merge, one gemm per entry */
    sg_tensor *ap = sg_permute(ctx, rnd(ctx, dt, SG_SHAPE(30, 4, 70)), (int[]){1, 0, 2});
    expect_matmul(sg_matmul(ctx, ap, W), ap, W);
    /* a slice along T of a (B, T, K): merges only if ... it does not (row gaps) */
    sg_tensor *as = sg_slice(ctx, rnd(ctx, dt, SG_SHAPE(2, 6, 5)), 1, 1, 3);
    expect_matmul(sg_matmul(ctx, as, w), as, w);
    /* a slice along K: rows stay evenly spaced, so they merge with a row stride */
    sg_tensor *ak = sg_slice(ctx, rnd(ctx, dt, SG_SHAPE(2, 3, 9)), 2, 2, 5);
    expect_matmul(sg_matmul(ctx, ak, w), ak, w);
    /* 4-D and size-1 batch dims */
    sg_tensor *a4 = rnd(ctx, dt, SG_SHAPE(2, 1, 3, 5));
    expect_matmul(sg_matmul(ctx, a4, w), a4, w);
    sg_tensor *a1 = rnd(ctx, dt, SG_SHAPE(1, 3, 5));
    expect_matmul(sg_matmul(ctx, a1, w), a1, w);
    /* the transpose of w as the 2-D operand */
    sg_tensor *wt = sg_transpose(ctx, rnd(ctx, dt, SG_SHAPE(4, 5)), 0, 1);
    expect_matmul(sg_matmul(ctx, a, wt), a, wt);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- errors --------------------------------------------------------------------------- */

START_TEST(test_errors) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3)),
              *b = sg_zeros(ctx, SG_F64, SG_SHAPE(4, 5));
    ck_assert_ptr_null(sg_matmul(ctx, a, b));
    expect_err(ctx, "sg_matmul: shapes (2, 3) and (4, 5) do not match (inner 3 vs 4)");

    sg_tensor *v = sg_zeros(ctx, SG_F64, SG_SHAPE(3));
    ck_assert_ptr_null(sg_matmul(ctx, v, sg_zeros(ctx, SG_F64, SG_SHAPE(3, 4))));
    expect_err(ctx, "sg_matmul: shapes (3,) and (3, 4): both operands need at least 2 dimensions");
    ck_assert_ptr_null(sg_matmul(ctx, a, sg_scalar(ctx, SG_F64, 1.0)));
    expect_err(ctx, "sg_matmul: shapes (2, 3) and (): both operands need at least 2 dimensions");

    sg_tensor *a3 = sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3, 4));
    sg_tensor *b3 = sg_zeros(ctx, SG_F64, SG_SHAPE(5, 4, 6));
    ck_assert_ptr_null(sg_matmul(ctx, a3, b3));
    expect_err(ctx, "sg_matmul: shapes (2, 3, 4) and (5, 4, 6) do not match (batch dimension "
                    "0: 2 vs 5)");
    ck_assert_ptr_null(sg_matmul(ctx, sg_zeros(ctx, SG_F64, SG_SHAPE(3, 4)),
                                 sg_zeros(ctx, SG_F64, SG_SHAPE(2, 4, 5))));
    expect_err(ctx, "sg_matmul: shapes (3, 4) and (2, 4, 5) do not match (b must be 2-D or have "
                    "a's batch dimensions)");
    ck_assert_ptr_null(sg_matmul(ctx, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3, 4)),
                                 sg_zeros(ctx, SG_F64, SG_SHAPE(2, 5, 6))));
    expect_err(ctx, "sg_matmul: shapes (2, 3, 4) and (2, 5, 6) do not match (inner 4 vs 5)");

    ck_assert_ptr_null(sg_matmul(ctx, a, sg_zeros(ctx, SG_F32, SG_SHAPE(3, 2))));
    expect_err(ctx, "sg_matmul: dtype mismatch: float64 and float32");

    /* NULL inputs propagate silently */
    ck_assert_ptr_null(sg_matmul(ctx, NULL, b));
    ck_assert_ptr_null(sg_matmul(ctx, a, NULL));
    ck_assert_ptr_null(sg_matmul(NULL, a, b));
    ck_assert_ptr_null(sg_ctx_error(ctx));

    /* a stale tensor */
    sg_ctx_reset(ctx);
    ck_assert_ptr_null(sg_matmul(ctx, a, a));
    ck_assert_ptr_nonnull(sg_ctx_error(ctx));
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "sg_matmul"));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- threads ------------------------------------------------------------------------- */

START_TEST(test_threads) {
    /* Each Check test runs in its own process: this is the first call. */
    ck_assert_int_eq(sg_set_num_threads(2), 1);
    ck_assert_int_eq((int)bli_thread_get_num_threads(), 2);
    /* a BLIS-sized product with two threads is still right */
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = rnd(ctx, SG_F64, SG_SHAPE(130, 70)), *b = rnd(ctx, SG_F64, SG_SHAPE(70, 90));
    expect_matmul(sg_matmul(ctx, a, b), a, b);
    ck_assert_int_eq(sg_set_num_threads(0), 2); /* below 1 means 1 */
    ck_assert_int_eq((int)bli_thread_get_num_threads(), 1);
    ck_assert_int_eq(sg_set_num_threads(3), 1);
    ck_assert_int_eq(sg_set_num_threads(1), 3);
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_threads_default) {
    /* Without a call, the first BLIS product runs with one thread whatever the
     * environment says. */
    setenv("BLIS_NUM_THREADS", "2", 1);
    setenv("OMP_NUM_THREADS", "2", 1);
    sg_ctx *ctx = sg_ctx_new(0);
    /* B of 520 * 520 elements: past the register-blocked kernel's limit, and more rows
     * than it takes for any B (SG_MATMUL_RB_WIDE_M), so BLIS */
    sg_tensor *a = rnd(ctx, SG_F32, SG_SHAPE(200, 520)), *b = rnd(ctx, SG_F32, SG_SHAPE(520, 520));
    ck_assert_ptr_nonnull(sg_matmul(ctx, a, b));
    ck_assert_int_eq((int)bli_thread_get_num_threads(), 1);
    ck_assert_int_eq(sg_set_num_threads(1), 1);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- backward ------------------------------------------------------------------------ */

typedef struct {
    int ta, tb;    /* transpose operand 0 / 1 inside the function */
    int slice;     /* take columns 4..8 of operand 0 */
    int permute_a; /* operand 0 is (T, B, K): use it as (B, T, K) */
} mm_opts;

static sg_tensor *f_mm(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    const mm_opts *o = user;
    sg_tensor *a = in[0], *b = in[1];
    if (o && o->ta)
        a = sg_transpose(ctx, a, -2, -1);
    if (o && o->tb)
        b = sg_transpose(ctx, b, -2, -1);
    if (o && o->slice)
        a = sg_slice(ctx, a, 1, 4, 4);
    if (o && o->permute_a)
        a = sg_permute(ctx, a, (int[]){1, 0, 2});
    return sg_matmul(ctx, a, b);
}

START_TEST(test_grad_plain) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    static const int64_t shapes[][3] = {{1, 1, 1}, {2, 4, 16}, {2, 9, 4}, {3, 5, 2}, {1, 6, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        sg_tensor *in[2] = {rnd(ctx, dt, SG_SHAPE(M, K)), rnd(ctx, dt, SG_SHAPE(K, N))};
        expect_gradcheck(ctx, f_mm, NULL, 2, in, "plain");
    }
    /* BLIS-sized: (50, 48) @ (48, 50) */
    sg_tensor *in[2] = {rnd(ctx, dt, SG_SHAPE(50, 48)), rnd(ctx, dt, SG_SHAPE(48, 50))};
    expect_gradcheck(ctx, f_mm, NULL, 2, in, "plain BLIS");
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_grad_views) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    mm_opts ta = {.ta = 1}, tb = {.tb = 1}, tab = {.ta = 1, .tb = 1}, sl = {.slice = 1};
    sg_tensor *in1[2] = {rnd(ctx, dt, SG_SHAPE(4, 3)), rnd(ctx, dt, SG_SHAPE(4, 5))};
    expect_gradcheck(ctx, f_mm, &ta, 2, in1, "a transposed");
    sg_tensor *in2[2] = {rnd(ctx, dt, SG_SHAPE(3, 4)), rnd(ctx, dt, SG_SHAPE(5, 4))};
    expect_gradcheck(ctx, f_mm, &tb, 2, in2, "b transposed");
    sg_tensor *in3[2] = {rnd(ctx, dt, SG_SHAPE(4, 3)), rnd(ctx, dt, SG_SHAPE(5, 4))};
    expect_gradcheck(ctx, f_mm, &tab, 2, in3, "both transposed");
    sg_tensor *in4[2] = {rnd(ctx, dt, SG_SHAPE(6, 16)), rnd(ctx, dt, SG_SHAPE(4, 5))};
    expect_gradcheck(ctx, f_mm, &sl, 2, in4, "a sliced");
    /* BLIS-sized, both transposed */
    sg_tensor *in5[2] = {rnd(ctx, dt, SG_SHAPE(48, 50)), rnd(ctx, dt, SG_SHAPE(50, 48))};
    expect_gradcheck(ctx, f_mm, &tab, 2, in5, "both transposed BLIS");
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_grad_batched) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *in1[2] = {rnd(ctx, dt, SG_SHAPE(2, 3, 4)), rnd(ctx, dt, SG_SHAPE(2, 4, 5))};
    expect_gradcheck(ctx, f_mm, NULL, 2, in1, "batched");
    mm_opts tb = {.tb = 1};
    sg_tensor *in2[2] = {rnd(ctx, dt, SG_SHAPE(3, 2, 4)), rnd(ctx, dt, SG_SHAPE(3, 5, 4))};
    expect_gradcheck(ctx, f_mm, &tb, 2, in2, "batched, b transposed");
    sg_tensor *in3[2] = {rnd(ctx, dt, SG_SHAPE(2, 1, 3, 2)), rnd(ctx, dt, SG_SHAPE(2, 1, 2, 3))};
    expect_gradcheck(ctx, f_mm, NULL, 2, in3, "batched 4-D");
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_grad_broadcast_batch) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    /* merged rows: dB is one gemm over the batch */
    sg_tensor *in1[2] = {rnd(ctx, dt, SG_SHAPE(2, 3, 4)), rnd(ctx, dt, SG_SHAPE(4, 5))};
    expect_gradcheck(ctx, f_mm, NULL, 2, in1, "broadcast batch");
    /* rows that cannot merge: dB sums one gemm per batch entry */
    mm_opts pa = {.permute_a = 1};
    sg_tensor *in2[2] = {rnd(ctx, dt, SG_SHAPE(3, 2, 4)), rnd(ctx, dt, SG_SHAPE(4, 5))};
    expect_gradcheck(ctx, f_mm, &pa, 2, in2, "broadcast batch, permuted a");
    /* transposed 2-D operand */
    mm_opts tb = {.tb = 1};
    sg_tensor *in3[2] = {rnd(ctx, dt, SG_SHAPE(2, 3, 4)), rnd(ctx, dt, SG_SHAPE(5, 4))};
    expect_gradcheck(ctx, f_mm, &tb, 2, in3, "broadcast batch, b transposed");
    /* BLIS-sized merged: (2, 25, 48) @ (48, 50) */
    sg_tensor *in4[2] = {rnd(ctx, dt, SG_SHAPE(2, 25, 48)), rnd(ctx, dt, SG_SHAPE(48, 50))};
    expect_gradcheck(ctx, f_mm, NULL, 2, in4, "broadcast batch BLIS");
    sg_ctx_free(ctx);
}
END_TEST

static sg_tensor *f_square(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user;
    return sg_matmul(ctx, in[0], in[0]);
}
static sg_tensor *f_gram(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user;
    return sg_matmul(ctx, in[0], sg_transpose(ctx, in[0], 0, 1));
}
static sg_tensor *f_chain(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user; /* (x @ w) @ w^T: w used twice, once transposed */
    sg_tensor *h = sg_matmul(ctx, in[0], in[1]);
    return sg_matmul(ctx, h, sg_transpose(ctx, in[1], 0, 1));
}

START_TEST(test_grad_reused) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *x[1] = {rnd(ctx, dt, SG_SHAPE(4, 4))};
    expect_gradcheck(ctx, f_square, NULL, 1, x, "x @ x");
    sg_tensor *y[1] = {rnd(ctx, dt, SG_SHAPE(3, 5))};
    expect_gradcheck(ctx, f_gram, NULL, 1, y, "y @ y^T");
    sg_tensor *z[1] = {rnd(ctx, dt, SG_SHAPE(50, 50))};
    expect_gradcheck(ctx, f_square, NULL, 1, z, "x @ x BLIS");
    sg_tensor *in[2] = {rnd(ctx, dt, SG_SHAPE(3, 4)), rnd(ctx, dt, SG_SHAPE(4, 6))};
    expect_gradcheck(ctx, f_chain, NULL, 2, in, "(x @ w) @ w^T");
    sg_ctx_free(ctx);
}
END_TEST

/* One LSTM-style step built from concat and matmul: [h, x[:, t, :]] @ W. */
static sg_tensor *f_lstm_step(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user;
    sg_tensor *v = sg_concat(ctx, 2, (sg_tensor *[]){in[0], sg_select(ctx, in[1], 1, 1)}, 1);
    return sg_matmul(ctx, v, in[2]);
}

START_TEST(test_grad_lstm_step) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *in[3] = {rnd(ctx, dt, SG_SHAPE(2, 4)), rnd(ctx, dt, SG_SHAPE(2, 3, 5)),
                        rnd(ctx, dt, SG_SHAPE(9, 16))};
    expect_gradcheck(ctx, f_lstm_step, NULL, 3, in, "lstm step");
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_backward_hand) {
    /* c = a @ b with a = [[1, 2]], b = [[3], [4]]; upstream g = [[2]]:
     * dA = g b^T = [[6, 8]], dB = a^T g = [[2], [4]]; a second backward accumulates. */
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *a = sg_zeros(ctx, dt, SG_SHAPE(1, 2)), *b = sg_zeros(ctx, dt, SG_SHAPE(2, 1));
    sg_set_flat(a, 0, 1);
    sg_set_flat(a, 1, 2);
    sg_set_flat(b, 0, 3);
    sg_set_flat(b, 1, 4);
    sg_set_requires_grad(a, true);
    sg_set_requires_grad(b, true);
    sg_tensor *c = sg_matmul(ctx, a, b);
    ck_assert_int_eq(c->op, SG_OP_MATMUL);
    ck_assert_ptr_eq(c->src[0], a);
    ck_assert_ptr_eq(c->src[1], b);
    ck_assert_double_eq(sg_get_flat(c, 0), 11);
    sg_tensor *g = sg_full(ctx, dt, SG_SHAPE(1, 1), 2.0);
    ck_assert_int_eq(sg_backward(ctx, c, g), 0);
    ck_assert_double_eq(sg_get_flat(a->grad, 0), 6);
    ck_assert_double_eq(sg_get_flat(a->grad, 1), 8);
    ck_assert_double_eq(sg_get_flat(b->grad, 0), 2);
    ck_assert_double_eq(sg_get_flat(b->grad, 1), 4);
    ck_assert_int_eq(sg_backward(ctx, c, g), 0);
    ck_assert_double_eq(sg_get_flat(a->grad, 0), 12);
    ck_assert_double_eq(sg_get_flat(b->grad, 1), 8);
    /* only b requires grad: a gets no gradient buffer */
    sg_tensor *a2 = sg_zeros(ctx, dt, SG_SHAPE(1, 2));
    sg_tensor *c2 = sg_matmul(ctx, a2, b);
    ck_assert_int_eq(sg_backward(ctx, c2, g), 0);
    ck_assert_ptr_null(a2->grad);
    ck_assert_double_eq(sg_get_flat(b->grad, 0), 4); /* += a2^T g = 0 */
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- addmm: c + a @ b ----------------------------------------------------------------- */

static sg_tensor *f_addmm(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user;
    return sg_addmm(ctx, in[2], in[0], in[1]);
}

/* Values equal matmul + add for every broadcast form of c, and gradients check. */
START_TEST(test_addmm) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    static const int64_t shapes[][3] = {{2, 4, 16}, {3, 5, 2}, {50, 48, 50}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        sg_tensor *a = rnd(ctx, dt, SG_SHAPE(M, K)), *b = rnd(ctx, dt, SG_SHAPE(K, N));
        sg_tensor *cs[4] = {rnd(ctx, dt, SG_SHAPE(N)), rnd(ctx, dt, SG_SHAPE(1, N)),
                            rnd(ctx, dt, SG_SHAPE(M, N)), rnd(ctx, dt, SG_SHAPE(M, 1))};
        for (int k = 0; k < 4; k++) {
            sg_tensor *want = sg_add(ctx, sg_matmul(ctx, a, b), cs[k]);
            sg_tensor *got = sg_addmm(ctx, cs[k], a, b);
            sg_compare_result r;
            ck_assert_int_eq(sg_compare(ctx, got, want, dt == SG_F32 ? 1e-5 : 1e-13, 1e-6, &r), 0);
            sg_tensor *in[3] = {a, b, cs[k]};
            if (M < 10)
                expect_gradcheck(ctx, f_addmm, NULL, 3, in, "addmm");
        }
    }
    /* c a strided view (one time step of (B, T, N)), a batched (B, T, K) @ (K, N) */
    sg_tensor *xk = rnd(ctx, dt, SG_SHAPE(2, 3, 8)), *h = rnd(ctx, dt, SG_SHAPE(2, 4));
    sg_tensor *rk = rnd(ctx, dt, SG_SHAPE(4, 8));
    sg_tensor *z = sg_addmm(ctx, sg_select(ctx, xk, 1, 1), h, rk);
    sg_tensor *zw = sg_add(ctx, sg_select(ctx, xk, 1, 1), sg_matmul(ctx, h, rk));
    ck_assert_int_eq(sg_compare(ctx, z, zw, 1e-6, 1e-6, NULL), 0);
    sg_tensor *x3 = rnd(ctx, dt, SG_SHAPE(2, 3, 4)), *bias = rnd(ctx, dt, SG_SHAPE(8));
    sg_tensor *in3[3] = {x3, rk, bias};
    expect_gradcheck(ctx, f_addmm, NULL, 3, in3, "addmm batched with a bias");
    /* errors: c that does not broadcast, and the matmul's own checks */
    ck_assert_ptr_null(sg_addmm(ctx, rnd(ctx, dt, SG_SHAPE(3)), h, rk));
    expect_err(ctx, "sg_addmm: c of shape (3,) does not broadcast to the product's (2, 8)");
    ck_assert_ptr_null(sg_addmm(ctx, bias, rk, h));
    expect_err(ctx, "sg_matmul: shapes (4, 8) and (2, 4) do not match (inner 8 vs 2)");
    ck_assert_ptr_null(sg_addmm(ctx, NULL, h, rk));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* dA += dC @ B^T through the row-major copy of a parameter's transpose (made once per
 * backward pass and reused) equals the strided-view path an arena B takes. Two uses of
 * the parameter, then a second backward after the parameter changed (the copy must be
 * remade, not reused from the first pass). */
START_TEST(test_grad_param_transpose_copy) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    int64_t M = 40, K = 64, N = 96; /* M * N * K above the direct-kernel threshold */
    sg_tensor *w = sg_param_new(ctx, dt, SG_SHAPE(K, N), "w");
    for (int pass = 0; pass < 2; pass++) {
        sg_init_tensor(ctx, w, sg_init_default(SG_INIT_GLOROT_UNIFORM), sg_ctx_rng(ctx));
        sg_tensor *wa = sg_tensor_new(ctx, dt, SG_SHAPE(K, N)); /* same values, arena */
        sg_copy(wa, w);
        sg_tensor *a1 = sg_set_requires_grad(rnd(ctx, dt, SG_SHAPE(M, K)), true);
        sg_tensor *a2 = sg_set_requires_grad(rnd(ctx, dt, SG_SHAPE(M, K)), true);
        sg_tensor *up = rnd(ctx, dt, SG_SHAPE(M, N));
        sg_tensor *y = sg_add(ctx, sg_matmul(ctx, a1, w), sg_matmul(ctx, a2, w));
        ck_assert_int_eq(sg_backward(ctx, y, up), 0);
        sg_tensor *g1 = a1->grad, *g2 = a2->grad;
        a1->grad = a2->grad = NULL;
        sg_tensor *ya = sg_add(ctx, sg_matmul(ctx, a1, wa), sg_matmul(ctx, a2, wa));
        ck_assert_int_eq(sg_backward(ctx, ya, up), 0);
        double tol = dt == SG_F32 ? 1e-5 : 1e-13;
        ck_assert_int_eq(sg_compare(ctx, g1, a1->grad, tol, tol, NULL), 0);
        ck_assert_int_eq(sg_compare(ctx, g2, a2->grad, tol, tol, NULL), 0);
        sg_ctx_reset(ctx);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- the sequence recurrent product (sg_seqmm, sg_seqmm_step) --------------------------- */

/* A recurrence over the sequence: z_t = c_t + a_t @ w with a_t = tanh(z_{t-1})[:, 1 .. K]
 * (a strided slice; a_0 = h0), the loss sum_t sum(tanh(z_t) * r_t), + sum(S * r) over the
 * completed S with `direct`. Options: in place on a copy of c, c given batch-major (B, T, N) and
 * permuted, w given as the transpose of an (N, K) input, step 0 skipped (no h0), steps out of order
 * (1 before 0), the reference built from sg_addmm instead. */
typedef struct {
    bool ip, bmajor, wt, skip0, order, ref, direct;
    bool xin; /* c = x @ kernel, x = in[4] (T, B, I) (or (B, T, I) with bmajor), kernel = in[5]:
                 sg_seqmm_x, whose skipped step 0 is a step with no a_t */
} seq_opts;

static sg_tensor *f_seq(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    const seq_opts *o = user;
    sg_tensor *c = o->bmajor ? sg_permute(ctx, in[o->xin ? 4 : 0], (int[]){1, 0, 2})
                             : in[o->xin ? 4 : 0]; /* x with xin */
    sg_tensor *w = o->wt ? sg_transpose(ctx, in[1], 0, 1) : in[1];
    sg_tensor *h0 = in[2], *r = in[3];
    int64_t T = c->shape[0], K = w->shape[0];
    if (o->xin && o->ref)
        c = sg_matmul(ctx, c, in[5]);
    sg_tensor *s = o->ref   ? NULL
                   : o->xin ? sg_seqmm_x(ctx, c, in[5], w)
                   : o->ip  ? sg_seqmm_(ctx, sg_scale(ctx, c, 1.0), w)
                            : sg_seqmm(ctx, c, w);
    sg_tensor *loss = NULL, *a = h0;
    for (int64_t k = 0; k < T; k++) {
        /* with `order`, steps 0 and 1 swap: step 1 first, from h0; then step 0, from h0 */
        int64_t t = o->order && k < 2 ? 1 - k : k;
        sg_tensor *z;
        if (k == 0 && o->skip0)
            z = o->ref   ? sg_select(ctx, c, 0, t)
                : o->xin ? sg_seqmm_step(ctx, s, t, NULL)
                         : sg_select(ctx, s, 0, t);
        else if (o->ref)
            z = sg_addmm(ctx, sg_select(ctx, c, 0, t), a, w);
        else
            z = sg_seqmm_step(ctx, s, t, a);
        /* tanh reads only its output: a block of S read through a plain view (step 0 when
         * skipped) by an op whose backward reads it would block the later steps */
        sg_tensor *tz = sg_tanh(ctx, z);
        sg_tensor *term = sg_sum(ctx, sg_mul(ctx, tz, sg_select(ctx, r, 0, t)));
        loss = loss ? sg_add(ctx, loss, term) : term;
        if (!(o->order && k == 0))
            a = sg_slice(ctx, tz, 1, 1, K);
    }
    if (o->direct) /* S itself read once complete (the reference: c + each step's product) */
        loss = sg_add(ctx, loss, sg_sum(ctx, sg_mul(ctx, o->ref ? NULL : s, r)));
    return loss;
}

/* f_seq with xin over in = (x, kernel, w, h0, r) */
static sg_tensor *f_seq_x(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    sg_tensor *zero = sg_zeros(ctx, in[0]->dtype, SG_SHAPE(1));
    return f_seq(ctx, (sg_tensor *const[]){zero, in[2], in[3], in[4], in[0], in[1]}, user);
}

/* Values equal z_t = c_t + a_t @ w step by step (sg_addmm), gradients check in float64 for
 * every option, and the float32 gradients equal sg_addmm's; with xin (sg_seqmm_x) against
 * sg_matmul then sg_addmm, x's and kernel's gradients too. */
START_TEST(test_seqmm) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    int64_t T = 4, B = 3, I = 3, K = 2, N = 5;
    static const seq_opts cases[] = {
        {0},
        {.ip = true},
        {.bmajor = true, .wt = true},
        {.ip = true, .skip0 = true},
        {.ip = true, .order = true},
        {.skip0 = true, .order = true, .wt = true},
        {.direct = true, .ip = true, .skip0 = true},
        {.xin = true},
        {.xin = true, .skip0 = true},
        {.xin = true, .bmajor = true, .wt = true},
        {.xin = true, .order = true, .skip0 = true},
        {.xin = true, .direct = true, .skip0 = true},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        seq_opts o = cases[k];
        int64_t cs[3] = {o.bmajor ? B : T, o.bmajor ? T : B, N};
        int64_t xs[3] = {cs[0], cs[1], I};
        int64_t ws[2] = {o.wt ? N : K, o.wt ? K : N};
        /* c, w, h0, r, and with xin x and kernel (c then unread) */
        sg_tensor *in[6] = {rnd(ctx, dt, 3, cs),          rnd(ctx, dt, 2, ws),
                            rnd(ctx, dt, SG_SHAPE(B, K)), rnd(ctx, dt, SG_SHAPE(T, B, N)),
                            rnd(ctx, dt, 3, xs),          rnd(ctx, dt, SG_SHAPE(I, N))};
        /* the inputs with gradients: c, w, h0; with xin w, h0, x, kernel */
        const int gi[2][4] = {{0, 1, 2, -1}, {1, 2, 4, 5}}, *gx = gi[o.xin];
        if (!o.direct) { /* values and gradients against the sg_addmm reference */
            sg_tensor *g[2][4], *y[2];
            for (int ref = 0; ref < 2; ref++) {
                o.ref = ref;
                for (int i = 0; i < 4 && gx[i] >= 0; i++)
                    in[gx[i]]->grad = NULL, sg_set_requires_grad(in[gx[i]], true);
                y[ref] = f_seq(ctx, in, &o);
                ck_assert_msg(y[ref] != NULL, "case %zu: %s", k, sg_ctx_error(ctx));
                ck_assert_int_eq(sg_backward(ctx, y[ref], NULL), 0);
                for (int i = 0; i < 4 && gx[i] >= 0; i++)
                    g[ref][i] = in[gx[i]]->grad;
            }
            double tol = dt == SG_F32 ? 1e-5 : 1e-13;
            ck_assert_int_eq(sg_compare(ctx, y[0], y[1], tol, tol, NULL), 0);
            for (int i = 0; i < 4 && gx[i] >= 0; i++)
                if (!(o.skip0 && gx[i] == 2)) /* h0 unused when step 0 has no a_t */
                    ck_assert_msg(sg_compare(ctx, g[0][i], g[1][i], tol, tol, NULL) == 0,
                                  "case %zu: gradient of input %d", k, gx[i]);
            o.ref = false;
        }
        if (dt == SG_F64) {
            for (int i = 0; i < 6; i++)
                in[i]->grad = NULL;
            char what[32];
            snprintf(what, sizeof what, "seqmm case %zu", k);
            if (o.xin) /* x, kernel, w, h0 */
                expect_gradcheck(ctx, f_seq_x, &o, 4,
                                 (sg_tensor *[]){in[4], in[5], in[1], in[2], in[3]}, what);
            else
                expect_gradcheck(ctx, f_seq, &o, 3, in, what);
        }
        sg_ctx_reset(ctx);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* f_seq with c = x @ k (in[4] = x (T, B, 3), in[5] = k (3, N)): c's gradient comes from
 * S's, as the fused LSTM's projections' does. */
static sg_tensor *f_seq_mm(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    sg_tensor *c = sg_matmul(ctx, in[4], in[5]);
    return f_seq(ctx, (sg_tensor *const[]){c, in[1], in[2], in[3]}, user);
}

/* Rows of N 1024 (4096 bytes of float32, 8192 of float64): S's gradient is then made with
 * padded rows, and read as dz_t, by the weight gradient's product, by a reader of S itself
 * (sum(S * r)), and handed on to c: added into a leaf's contiguous gradient, or given whole
 * to the product x @ k that made c. Gradients against central differences. */
START_TEST(test_seqmm_wide) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    int64_t T = 2, B = 2, K = 3, N = 1024;
    static const seq_opts cases[] = {{.direct = true}, {.direct = true, .ip = true, .skip0 = true}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        seq_opts o = cases[k];
        sg_tensor *in[4] = {rnd(ctx, dt, SG_SHAPE(T, B, N)),
                            sg_scale(ctx, rnd(ctx, dt, SG_SHAPE(K, N)), 0.5),
                            rnd(ctx, dt, SG_SHAPE(B, K)), rnd(ctx, dt, SG_SHAPE(T, B, N))};
        char what[32];
        snprintf(what, sizeof what, "wide seqmm case %zu", k);
        expect_gradcheck(ctx, f_seq, &o, 3, in, what);
        /* mm[0] is not read: f_seq_mm makes c */
        sg_tensor *x = rnd(ctx, dt, SG_SHAPE(T, B, 3)), *kx = rnd(ctx, dt, SG_SHAPE(3, N));
        sg_tensor *mm[6] = {sg_zeros(ctx, dt, SG_SHAPE(1)), in[1], in[2], in[3], x, kx};
        snprintf(what, sizeof what, "wide seqmm x @ k case %zu", k);
        expect_gradcheck(ctx, f_seq_mm, &o, 6, mm, what);
        sg_ctx_reset(ctx);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* Sizes past 16 in every dimension, not multiples of 16 (T 5, B 19; K 17, N 34 and K 100,
 * N 101): seqgrad keeps each step's a_t for the weight gradient as rows up to 96 rows of w
 * and as a_t^T above, and copies w^T for da_t; float32 transposes take 16 x 16 blocks in
 * registers and strips around them. N 256 (K 20): rows of w a multiple of 1024 bytes, which
 * the steps read from a copy with padded rows (not when w is a transposed view); T 8, B 128
 * (K 100): a_t^T's T*B columns too, kept in padded rows. Float64 and float32 values and gradients
 * against the float64 sg_addmm reference, in place and not, with step 0 skipped, w transposed, and
 * sg_seqmm_x (its kernel (9, N) then read from a padded copy too, x's gradient included). B 260,
 * N 512: blocks of 532 KB (float32), over SEQMM_X_BLOCK (256 KB), for which sg_seqmm_x computes
 * x @ kernel before the steps. */
START_TEST(test_seqmm_blocks) {
    sg_ctx *ctx = sg_ctx_new(0);
    /* K, N, T, B */
    const int64_t dims[5][4] = {
        {17, 34, 5, 19}, {100, 101, 5, 19}, {20, 256, 5, 19}, {100, 128, 8, 128}, {5, 512, 2, 260}};
    static const seq_opts cases[] = {
        {0}, {.ip = true, .skip0 = true}, {.wt = true}, {.xin = true, .skip0 = true}};
    for (int d = 0; d < 5; d++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            seq_opts o = cases[k];
            const int64_t K = dims[d][0], N = dims[d][1], T = dims[d][2], B = dims[d][3];
            int64_t ws[2] = {o.wt ? N : K, o.wt ? K : N};
            sg_tensor *in[3][6]; /* reference f64, seqmm f64, seqmm f32 */
            in[0][0] = rnd(ctx, SG_F64, SG_SHAPE(T, B, N));
            in[0][1] = sg_scale(ctx, rnd(ctx, SG_F64, 2, ws), 1.0 / sqrt((double)K)); /* |z| ~ 1 */
            in[0][2] = rnd(ctx, SG_F64, SG_SHAPE(B, K));
            in[0][3] = rnd(ctx, SG_F64, SG_SHAPE(T, B, N));
            in[0][4] = rnd(ctx, SG_F64, SG_SHAPE(T, B, 9)); /* x and kernel, with xin */
            in[0][5] = sg_scale(ctx, rnd(ctx, SG_F64, SG_SHAPE(9, N)), 1.0 / 3);
            sg_tensor *y[3];
            for (int v = 0; v < 3; v++) {
                for (int i = 0; i < 6; i++)
                    in[v][i] = v ? sg_cast(ctx, in[0][i], v == 1 ? SG_F64 : SG_F32) : in[0][i];
                for (int i = 0; i < 6; i++)
                    sg_set_requires_grad(in[v][i], i != 3);
                o.ref = v == 0;
                y[v] = f_seq(ctx, in[v], &o);
                ck_assert_msg(y[v] != NULL, "case %zu: %s", k, sg_ctx_error(ctx));
                ck_assert_int_eq(sg_backward(ctx, y[v], NULL), 0);
            }
            double l = sg_get(y[0], NULL);
            ck_assert_double_eq_tol(sg_get(y[1], NULL), l, 1e-12 * fabs(l));
            ck_assert_double_eq_tol(sg_get(y[2], NULL), l, 1e-4 * fabs(l));
            for (int v = 1; v < 3; v++)
                for (int i = 0; i < (o.xin ? 6 : 3); i++) {
                    if (i == 3 || (o.skip0 && i == 2) || (o.xin && i == 0))
                        continue; /* r; h0 unused; c unused */
                    double tol = v == 1 ? 1e-12 : 1e-4;
                    ck_assert_msg(sg_compare(ctx, sg_cast(ctx, in[v][i]->grad, SG_F64),
                                             in[0][i]->grad, tol, tol, NULL) == 0,
                                  "K %lld case %zu %s: gradient of input %d", (long long)K, k,
                                  v == 1 ? "float64" : "float32", i);
                }
            sg_ctx_reset(ctx);
        }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* S's gradient is zeroed block by block as steps reach it, and sg_lstm_gates stores a block
 * it reaches first instead of adding it to zeros (autograd/grad.c). An LSTM over S, blocks of
 * 320 elements (gradient views): step 0 skipped (a select of S), step 2 never taken (its block
 * of S's gradient must be zeros), a second consumer of z_1 recorded before the gate op (whose
 * backward then reaches the block first and stores) or after it (the gate op then adds), gate
 * ops in place or not, and S read whole at the end (not in place: the gates overwrite it). */
typedef struct {
    bool ip, extra_after, ref; /* ref: z_t by sg_addmm from c, no sg_seqmm (and no S read) */
} lazy_opts;

static sg_tensor *f_lazy(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    const lazy_opts *o = user;
    sg_tensor *c = in[0], *w = in[1], *bias = in[2], *r = in[3];
    int64_t T = c->shape[0], H = w->shape[0];
    sg_tensor *s = o->ref  ? NULL
                   : o->ip ? sg_seqmm_(ctx, sg_scale(ctx, c, 1.0), w)
                           : sg_seqmm(ctx, c, w);
    sg_tensor *h = NULL, *cs = NULL, *loss = NULL, *extra = NULL;
    for (int64_t t = 0; t < T; t++) {
        if (t == 2) /* not taken */
            continue;
        sg_tensor *z = !h       ? sg_select(ctx, o->ref ? c : s, 0, t)
                       : o->ref ? sg_addmm(ctx, sg_select(ctx, c, 0, t), h, w)
                                : sg_seqmm_step(ctx, s, t, h);
        sg_tensor *rt = sg_select(ctx, r, 0, t);
        if (t == 1 && !o->extra_after) /* tanh reads its output only: z may change in place */
            extra = sg_sum(ctx, sg_mul(ctx, sg_tanh(ctx, z), rt));
        bool ip = o->ip && !o->ref && !(t == 1 && o->extra_after); /* (ref: z may be c's) */
        sg_tensor *out = ip ? sg_lstm_gates_(ctx, z, cs, bias) : sg_lstm_gates(ctx, z, cs, bias);
        if (t == 1 && o->extra_after)
            extra = sg_sum(ctx, sg_mul(ctx, sg_tanh(ctx, z), rt));
        h = sg_slice(ctx, out, 1, 0, H);
        cs = sg_slice(ctx, out, 1, H, H);
        sg_tensor *term = sg_sum(ctx, sg_mul(ctx, out, sg_slice(ctx, rt, 1, 0, 2 * H)));
        loss = loss ? sg_add(ctx, loss, term) : term;
    }
    loss = sg_add(ctx, loss, extra);
    if (!o->ip && !o->ref) /* S whole: c plus the products of the steps taken */
        loss = sg_add(ctx, loss, sg_sum(ctx, sg_mul(ctx, s, r)));
    return loss;
}

/* NaN in the first n doubles of ctx's arena, then reset: a gradient block the lazy zeroing
 * neither zeroed nor stored into then shows as NaN, not as the zeros of fresh memory. */
static void poison_arena(sg_ctx *ctx, int64_t n) {
    sg_fill(sg_zeros(ctx, SG_F64, SG_SHAPE(n)), NAN);
    sg_ctx_reset(ctx);
}

/* Float64 gradients against central differences, float32 ones equal to float64's. */
START_TEST(test_seqmm_lazy_grad) {
    sg_ctx *ctx = sg_ctx_new(0);
    const int64_t T = 4, B = 5, H = 16;
    static const lazy_opts cases[] = {
        {0}, {.extra_after = true}, {.ip = true}, {.ip = true, .extra_after = true}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        lazy_opts o = cases[k];
        poison_arena(ctx, 1 << 20);
        sg_tensor *in[2][4];
        in[0][0] = rnd(ctx, SG_F64, SG_SHAPE(T, B, 4 * H));
        in[0][1] = sg_scale(ctx, rnd(ctx, SG_F64, SG_SHAPE(H, 4 * H)), 0.25); /* |z| ~ 1 */
        in[0][2] = rnd(ctx, SG_F64, SG_SHAPE(4 * H));
        in[0][3] = rnd(ctx, SG_F64, SG_SHAPE(T, B, 4 * H));
        char what[48];
        snprintf(what, sizeof what, "lazy seqmm gradient, case %zu", k);
        expect_gradcheck(ctx, f_lazy, &o, 4, in[0], what);
        for (int i = 0; i < 4; i++) {
            in[1][i] = sg_set_requires_grad(sg_cast(ctx, in[0][i], SG_F32), true);
            in[0][i]->grad = NULL;
        }
        for (int v = 0; v < 2; v++)
            ck_assert_int_eq(sg_backward(ctx, f_lazy(ctx, in[v], &o), NULL), 0);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(sg_compare(ctx, sg_cast(ctx, in[1][i]->grad, SG_F64), in[0][i]->grad,
                                     1e-4, 1e-4, NULL) == 0,
                          "%s: float32 gradient of input %d", what, i);
        sg_ctx_reset(ctx);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* The same LSTM in place at B 8, H 128 (B * H = 1024: the gate op's vector variants, whose
 * rows store dz): values and gradients against z_t = c_t + h @ w by sg_addmm, float64 and
 * float32. */
START_TEST(test_seqmm_lazy_wide) {
    sg_ctx *ctx = sg_ctx_new(0);
    const int64_t T = 4, B = 8, H = 128;
    for (int extra_after = 0; extra_after < 2; extra_after++)
        for (int d = 0; d < 2; d++) {
            sg_dtype dt = DT(d);
            poison_arena(ctx, 1 << 21);
            sg_tensor *in[2][4], *y[2];
            in[0][0] = rnd(ctx, dt, SG_SHAPE(T, B, 4 * H));
            in[0][1] = sg_scale(ctx, rnd(ctx, dt, SG_SHAPE(H, 4 * H)), 0.1); /* |z| ~ 1 */
            in[0][2] = rnd(ctx, dt, SG_SHAPE(4 * H));
            in[0][3] = rnd(ctx, dt, SG_SHAPE(T, B, 4 * H));
            for (int i = 0; i < 4; i++) /* a copy for the reference */
                in[1][i] = sg_cast(ctx, in[0][i], dt);
            for (int v = 0; v < 2; v++) {
                for (int i = 0; i < 4; i++)
                    sg_set_requires_grad(in[v][i], true);
                lazy_opts o = {.ip = true, .extra_after = extra_after, .ref = v};
                y[v] = f_lazy(ctx, in[v], &o);
                ck_assert_msg(y[v] != NULL, "%s", sg_ctx_error(ctx));
                ck_assert_int_eq(sg_backward(ctx, y[v], NULL), 0);
            }
            double tol = dt == SG_F64 ? 1e-12 : 1e-4, l = sg_get(y[1], NULL);
            ck_assert_double_eq_tol(sg_get(y[0], NULL), l, tol * fabs(l));
            for (int i = 0; i < 4; i++)
                ck_assert_msg(sg_compare(ctx, in[0][i]->grad, in[1][i]->grad, tol, tol, NULL) == 0,
                              "%s, extra %s: gradient of input %d", sg_dtype_name(dt),
                              extra_after ? "after" : "before", i);
            sg_ctx_reset(ctx);
        }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* Only a_t requires grad (c and w do not): the steps are recorded, S is not, and da_t still
 * arrives; with grad mode off nothing is recorded and the values are the same. A parameter
 * w gets its gradient in its slot of the store, from one product. */
START_TEST(test_seqmm_grad_kinds) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_dtype dt = DT(_i);
    sg_tensor *c = rnd(ctx, dt, SG_SHAPE(3, 2, 4)), *w = rnd(ctx, dt, SG_SHAPE(4, 4));
    sg_tensor *a = sg_set_requires_grad(rnd(ctx, dt, SG_SHAPE(2, 4)), true);
    sg_tensor *s = sg_seqmm(ctx, c, w);
    ck_assert(!(s->flags & SG_FLAG_REQUIRES_GRAD));
    sg_tensor *z = sg_seqmm_step(ctx, s, 1, a);
    ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, z), NULL), 0);
    /* d sum(a @ w) / da = row sums of w, for every row of a */
    for (int64_t b = 0; b < 2; b++)
        for (int64_t k = 0; k < 4; k++) {
            double want = 0;
            for (int64_t n = 0; n < 4; n++)
                want += sg_get(w, (int64_t[]){k, n});
            ck_assert_double_eq_tol(sg_get(a->grad, (int64_t[]){b, k}), want, 1e-6);
        }
    bool was = sg_ctx_set_grad_enabled(ctx, false);
    sg_tensor *s2 = sg_seqmm(ctx, c, w), *z2 = sg_seqmm_step(ctx, s2, 1, a);
    sg_ctx_set_grad_enabled(ctx, was);
    ck_assert(!(z2->flags & SG_FLAG_REQUIRES_GRAD));
    ck_assert_int_eq(sg_compare(ctx, z, z2, 0, 0, NULL), 0);
    /* a parameter w: its gradient is sum_t a_t^T @ dz_t over the steps taken */
    sg_tensor *p = sg_param_new(ctx, dt, SG_SHAPE(4, 4), "w");
    sg_copy(p, w);
    sg_tensor *s3 = sg_seqmm(ctx, c, p);
    sg_tensor *l = sg_add(ctx, sg_sum(ctx, sg_seqmm_step(ctx, s3, 0, a)),
                          sg_sum(ctx, sg_seqmm_step(ctx, s3, 2, a)));
    ck_assert_int_eq(sg_backward(ctx, l, NULL), 0);
    for (int64_t k = 0; k < 4; k++) /* 2 steps, each column sum of a */
        for (int64_t n = 0; n < 4; n++) {
            double want = 2 * (sg_get(a, (int64_t[]){0, k}) + sg_get(a, (int64_t[]){1, k}));
            ck_assert_double_eq_tol(sg_get(p->grad, (int64_t[]){k, n}), want, 1e-6);
        }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_seqmm_errors) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *c = rnd(ctx, SG_F32, SG_SHAPE(5, 2, 4)), *w = rnd(ctx, SG_F32, SG_SHAPE(3, 4));
    ck_assert_ptr_null(sg_seqmm(ctx, rnd(ctx, SG_F32, SG_SHAPE(2, 4)), w));
    expect_err(ctx, "sg_seqmm: c has shape (2, 4) and w (3, 4); expected (T, B, N) and (K, N)");
    ck_assert_ptr_null(sg_seqmm_(ctx, c, rnd(ctx, SG_F32, SG_SHAPE(3, 5))));
    expect_err(ctx, "sg_seqmm_: c has shape (5, 2, 4) and w (3, 5); expected (T, B, N) and (K, N)");
    ck_assert_ptr_null(sg_seqmm(ctx, c, rnd(ctx, SG_F64, SG_SHAPE(3, 4))));
    ck_assert_ptr_nonnull(sg_ctx_error(ctx));
    sg_ctx_clear_error(ctx);
    sg_tensor *leaf = sg_set_requires_grad(rnd(ctx, SG_F32, SG_SHAPE(5, 2, 4)), true);
    ck_assert_ptr_null(sg_seqmm_(ctx, leaf, w));
    expect_err(ctx, "sg_seqmm_: cannot work in place on a leaf tensor that requires grad (a "
                    "parameter?): use the out-of-place op");
    sg_tensor *s = sg_seqmm(ctx, c, w), *a = rnd(ctx, SG_F32, SG_SHAPE(2, 3));
    ck_assert_ptr_null(sg_seqmm_step(ctx, c, 0, a));
    expect_err(ctx, "sg_seqmm_step: s is not the result of sg_seqmm or sg_seqmm_");
    ck_assert_ptr_null(sg_seqmm_step(ctx, s, 5, a));
    expect_err(ctx, "sg_seqmm_step: step 5 outside 0..4");
    ck_assert_ptr_null(sg_seqmm_step(ctx, s, -1, a));
    expect_err(ctx, "sg_seqmm_step: step -1 outside 0..4");
    ck_assert_ptr_nonnull(sg_seqmm_step(ctx, s, 3, a));
    ck_assert_ptr_null(sg_seqmm_step(ctx, s, 3, a));
    expect_err(ctx, "sg_seqmm_step: step 3 taken already");
    ck_assert_ptr_null(sg_seqmm_step(ctx, s, 0, rnd(ctx, SG_F32, SG_SHAPE(3, 2))));
    expect_err(ctx, "sg_seqmm_step: a has shape (3, 2), expected (2, 3)");
    /* a_t overlapping the block it is added into */
    sg_tensor *sq =
        sg_seqmm(ctx, rnd(ctx, SG_F32, SG_SHAPE(2, 3, 3)), rnd(ctx, SG_F32, SG_SHAPE(3, 3)));
    ck_assert_ptr_null(sg_seqmm_step(ctx, sq, 1, sg_select(ctx, sq, 0, 1)));
    expect_err(ctx, "sg_seqmm_step: input 1 overlaps the tensor written in place; its values "
                    "would change while being read");
    /* a block read by a recorded backward (relu reads its input) */
    sg_tensor *wr = sg_set_requires_grad(rnd(ctx, SG_F32, SG_SHAPE(3, 4)), true);
    sg_tensor *sr = sg_seqmm(ctx, c, wr);
    ck_assert_ptr_nonnull(sg_relu(ctx, sg_select(ctx, sr, 0, 2)));
    ck_assert_ptr_null(sg_seqmm_step(ctx, sr, 2, a));
    ck_assert_ptr_nonnull(sg_ctx_error(ctx));
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_seqmm(ctx, NULL, w));
    ck_assert_ptr_null(sg_seqmm_step(ctx, NULL, 0, a));
    ck_assert_ptr_null(sg_seqmm_x(ctx, c, NULL, w));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    /* a NULL a_t adds nothing: the block as it is */
    sg_tensor *s0 = sg_seqmm_step(ctx, s, 0, NULL);
    ck_assert_ptr_nonnull(s0);
    ck_assert_int_eq(sg_compare(ctx, s0, sg_select(ctx, c, 0, 0), 0, 0, NULL), 0);
    /* sg_seqmm_x: the three shapes, then a step's errors as sg_seqmm's */
    sg_tensor *x = rnd(ctx, SG_F32, SG_SHAPE(5, 2, 6)), *k = rnd(ctx, SG_F32, SG_SHAPE(6, 4));
    ck_assert_ptr_null(sg_seqmm_x(ctx, x, rnd(ctx, SG_F32, SG_SHAPE(5, 4)), w));
    expect_err(ctx, "sg_seqmm_x: x has shape (5, 2, 6), kernel (5, 4) and w (3, 4); expected "
                    "(T, B, I), (I, N) and (K, N)");
    ck_assert_ptr_null(sg_seqmm_x(ctx, x, k, rnd(ctx, SG_F32, SG_SHAPE(3, 5))));
    expect_err(ctx, "sg_seqmm_x: x has shape (5, 2, 6), kernel (6, 4) and w (3, 5); expected "
                    "(T, B, I), (I, N) and (K, N)");
    ck_assert_ptr_null(sg_seqmm_x(ctx, sg_select(ctx, x, 0, 0), k, w));
    expect_err(ctx, "sg_seqmm_x: x has shape (2, 6), kernel (6, 4) and w (3, 4); expected "
                    "(T, B, I), (I, N) and (K, N)");
    ck_assert_ptr_null(sg_seqmm_x(ctx, x, k, rnd(ctx, SG_F64, SG_SHAPE(3, 4))));
    expect_err(ctx, "sg_seqmm_x: dtype mismatch: float32 and float64");
    sg_tensor *sx = sg_seqmm_x(ctx, x, k, w);
    ck_assert_ptr_nonnull(sg_seqmm_step(ctx, sx, 4, NULL));
    ck_assert_ptr_null(sg_seqmm_step(ctx, sx, 4, a));
    expect_err(ctx, "sg_seqmm_step: step 4 taken already");
    ck_assert_ptr_null(sg_seqmm_step(ctx, sx, 0, rnd(ctx, SG_F32, SG_SHAPE(2, 4))));
    expect_err(ctx, "sg_seqmm_step: a has shape (2, 4), expected (2, 3)");
    /* anomaly mode checks each op's output: sg_seqmm_x's, its blocks not written yet (over
     * memory full of NaN: a new context's arena), is no anomaly */
    sg_ctx_free(ctx);
    ctx = sg_ctx_new(0);
    poison_arena(ctx, 1 << 14);
    sg_ctx_set_anomaly(ctx, true);
    sx = sg_seqmm_x(ctx, rnd(ctx, SG_F32, SG_SHAPE(5, 2, 6)), rnd(ctx, SG_F32, SG_SHAPE(6, 4)),
                    rnd(ctx, SG_F32, SG_SHAPE(3, 4)));
    ck_assert_msg(sx != NULL, "%s", sg_ctx_error(ctx));
    ck_assert_ptr_nonnull(sg_seqmm_step(ctx, sx, 0, NULL));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"forward",
         600,
         {{test_hand_values, 2},
          {test_many_shapes, 2},
          {test_empty, 2},
          {test_transposed_operands, 2},
          {test_sliced_operands, 2},
          {test_expanded_operand, 2},
          {test_batched, 2},
          {test_broadcast_batch, 2},
          {test_errors, 1},
          {test_threads, 1},
          {test_threads_default, 1}}},
        {"backward",
         600,
         {{test_grad_plain, 2},
          {test_grad_views, 2},
          {test_grad_batched, 2},
          {test_grad_broadcast_batch, 2},
          {test_grad_reused, 2},
          {test_grad_lstm_step, 2},
          {test_backward_hand, 2},
          {test_addmm, 2},
          {test_grad_param_transpose_copy, 2}}},
        {"seqmm",
         600,
         {{test_seqmm, 2},
          {test_seqmm_grad_kinds, 2},
          {test_seqmm_blocks, 1},
          {test_seqmm_lazy_grad, 1},
          {test_seqmm_lazy_wide, 1},
          {test_seqmm_wide, 2},
          {test_seqmm_errors, 1}}},
    };
    return CK_RUN("ops_matmul", tcases, NULL, NULL);
}
