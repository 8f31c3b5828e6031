/* Tests of autograd/ops_index.c: index_select, gather, take_along_axis, where, masked_fill,
 * max/min along an axis and argmax/argmin. Values by hand and against PyTorch
 * (tests/fixtures/index.h: repeated indices, ties, NaN), float64 gradchecks of every op
 * (repeated indices, transposed x, strided indices, int32 and int64 indices, negative axes,
 * broadcasting), and every error message. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "autograd.h"

#include "cksuite.h"
#include "ctxtest.h"
#include "fixtures/index.h"
#include "optest.h"
#include "tensortest.h"

static const sg_dtype dts[2] = {SG_F32, SG_F64};
static const sg_dtype its[2] = {SG_I64, SG_I32};

/* |t[i] - v[i]| <= tol * max(1, |v[i]|) for every element (NaN matches NaN only). */

static void expect_ints(const sg_tensor *t, const int64_t *v) {
    ck_assert_msg(t != NULL, "NULL tensor: %s", sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "");
    ck_assert_int_eq(t->dtype, SG_I64);
    for (int64_t i = 0; i < sg_numel(t); i++)
        ck_assert_msg(sg_get_flat_i64(t, i) == v[i], "element %lld: got %lld, want %lld",
                      (long long)i, (long long)sg_get_flat_i64(t, i), (long long)v[i]);
}

/* float32 rounds the float64 references; float64 matches them to the last bit or so */
static double tol_of(sg_dtype dt) { return dt == SG_F32 ? 1e-6 : 1e-15; }

/* x[i, j] = 10 i + j, shape (r, c), as dtype dt. */
static sg_tensor *grid(sg_dtype dt, int64_t r, int64_t c) {
    sg_tensor *t = sg_tensor_new(ctx, dt, SG_SHAPE(r, c));
    for (int64_t i = 0; i < r * c; i++)
        sg_set_flat(t, i, (double)(10 * (i / c) + i % c));
    return t;
}

/* ---- values by hand ------------------------------------------------------------------ */

START_TEST(test_index_select_values) {
    for (int di = 0; di < 2; di++)
        for (int ii = 0; ii < 2; ii++) {
            sg_tensor *x = grid(dts[di], 3, 4);
            sg_tensor *idx = mk_int(ctx, its[ii], SG_SHAPE(4), (const int64_t[]){2, 0, 2, 1});
            sg_tensor *y = sg_index_select(ctx, x, 0, idx);
            expect_shape(y, SG_SHAPE(4, 4));
            ck_assert_int_eq(y->dtype, dts[di]);
            expect_vals(
                y, (const double[]){20, 21, 22, 23, 0, 1, 2, 3, 20, 21, 22, 23, 10, 11, 12, 13}, 0);
            /* axis -1 (columns), and a transposed x: the same columns of x^T's rows */
            y = sg_index_select(ctx, x, -1, idx);
            expect_shape(y, SG_SHAPE(3, 4));
            expect_vals(y, (const double[]){2, 0, 2, 1, 12, 10, 12, 11, 22, 20, 22, 21}, 0);
            y = sg_index_select(ctx, sg_transpose(ctx, x, 0, 1), 0, idx);
            expect_shape(y, SG_SHAPE(4, 3));
            expect_vals(y, (const double[]){2, 12, 22, 0, 10, 20, 2, 12, 22, 1, 11, 21}, 0);
            /* a strided index: column 1 of a (3, 2) index tensor, i.e. {2, 0, 1} */
            sg_tensor *i2 =
                mk_int(ctx, its[ii], SG_SHAPE(3, 2), (const int64_t[]){9, 2, 9, 0, 9, 1});
            y = sg_index_select(ctx, x, 0, sg_select(ctx, i2, 1, 1));
            expect_vals(y, (const double[]){20, 21, 22, 23, 0, 1, 2, 3, 10, 11, 12, 13}, 0);
            /* an empty index: (0, 4) */
            y = sg_index_select(ctx, x, 0, sg_tensor_new(ctx, its[ii], SG_SHAPE(0)));
            expect_shape(y, SG_SHAPE(0, 4));
            ck_no_error();
        }
}
END_TEST

START_TEST(test_gather_values) {
    for (int di = 0; di < 2; di++)
        for (int ii = 0; ii < 2; ii++) {
            sg_tensor *x = grid(dts[di], 3, 4);
            /* along axis 1, idx (2, 3): smaller than x in rows and columns */
            sg_tensor *idx =
                mk_int(ctx, its[ii], SG_SHAPE(2, 3), (const int64_t[]){3, 3, 0, 1, 2, 1});
            sg_tensor *y = sg_gather(ctx, x, 1, idx);
            expect_shape(y, SG_SHAPE(2, 3));
            expect_vals(y, (const double[]){3, 3, 0, 11, 12, 11}, 0);
            /* along axis -2 (rows): 3 is no row of 3 */
            ck_assert_ptr_null(sg_gather(ctx, x, -2, idx));
            ck_error("sg_gather: index 3 out of range for axis 0 of size 3");
            sg_tensor *r =
                mk_int(ctx, its[ii], SG_SHAPE(2, 3), (const int64_t[]){2, 0, 1, 1, 2, 0});
            y = sg_gather(ctx, x, -2, r);
            expect_vals(y, (const double[]){20, 1, 12, 10, 21, 2}, 0);
            /* a transposed index and a transposed x */
            y = sg_gather(ctx, sg_transpose(ctx, x, 0, 1), 0, sg_transpose(ctx, r, 0, 1));
            expect_shape(y, SG_SHAPE(3, 2));
            /* xt[i, j] = x[j, i]; out[i, j] = xt[r[j, i], j] = x[j, r[j, i]] */
            expect_vals(y, (const double[]){2, 11, 0, 12, 1, 10}, 0);
            ck_no_error();
        }
}
END_TEST

/* The last valid step of each sequence, as the header's comment does it. */
START_TEST(test_take_along_axis_values) {
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        /* h (B=2, T=3, H=2): h[b, t, k] = 100 b + 10 t + k */
        sg_tensor *h = sg_tensor_new(ctx, dt, SG_SHAPE(2, 3, 2));
        for (int64_t i = 0; i < 12; i++)
            sg_set_flat(h, i, (double)(100 * (i / 6) + 10 * (i / 2 % 3) + i % 2));
        sg_tensor *lengths = mk_int(ctx, SG_I64, SG_SHAPE(2), (const int64_t[]){3, 1});
        sg_tensor *last =
            sg_cast(ctx, sg_add_scalar(ctx, sg_cast(ctx, lengths, SG_F64), -1), SG_I64);
        sg_tensor *idx = sg_reshape(ctx, last, SG_SHAPE(2, 1, 1));
        sg_tensor *y = sg_take_along_axis(ctx, h, 1, idx);
        expect_shape(y, SG_SHAPE(2, 1, 2));
        expect_vals(y, (const double[]){20, 21, 100, 101}, 0);
        /* x broadcast too: x (1, 4), idx (3, 2) along axis 1 -> (3, 2) */
        sg_tensor *x = mk(ctx, dt, SG_SHAPE(1, 4), (const double[]){5, 6, 7, 8});
        idx = mk_int(ctx, SG_I32, SG_SHAPE(3, 2), (const int64_t[]){0, 3, 1, 1, 2, 0});
        y = sg_take_along_axis(ctx, x, -1, idx);
        expect_shape(y, SG_SHAPE(3, 2));
        expect_vals(y, (const double[]){5, 8, 6, 6, 7, 5}, 0);
        ck_no_error();
    }
}
END_TEST

START_TEST(test_where_values) {
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        sg_tensor *a = mk(ctx, dt, SG_SHAPE(2, 3), (const double[]){1, 2, 3, 4, 5, 6});
        sg_tensor *b = mk(ctx, dt, SG_SHAPE(3), (const double[]){-1, -2, -3});
        /* int cond (2, 1): rows */
        sg_tensor *c = mk_int(ctx, SG_I32, SG_SHAPE(2, 1), (const int64_t[]){0, 7});
        sg_tensor *y = sg_where(ctx, c, a, b);
        expect_shape(y, SG_SHAPE(2, 3));
        expect_vals(y, (const double[]){-1, -2, -3, 4, 5, 6}, 0);
        /* float cond (3,): NaN and -0.5 count as true, 0 and -0 as false */
        sg_tensor *cf = mk(ctx, SG_F64, SG_SHAPE(3), (const double[]){NAN, -0.0, -0.5});
        y = sg_where(ctx, cf, a, b);
        expect_vals(y, (const double[]){1, -2, 3, 4, -2, 6}, 0);
        /* all three broadcast: cond (2, 1, 1), a (3,), b 0-d -> (2, 1, 3) */
        sg_tensor *c3 = mk_int(ctx, SG_I64, SG_SHAPE(2, 1, 1), (const int64_t[]){1, 0});
        y = sg_where(ctx, c3, b, sg_scalar(ctx, dt, 9));
        expect_shape(y, SG_SHAPE(2, 1, 3));
        expect_vals(y, (const double[]){-1, -2, -3, 9, 9, 9}, 0);
        /* masked_fill: a where the mask is 0, 0.5 elsewhere; the mask (3,) broadcast */
        sg_tensor *m = mk_int(ctx, SG_I64, SG_SHAPE(3), (const int64_t[]){0, 1, 0});
        y = sg_masked_fill(ctx, a, m, 0.5);
        expect_shape(y, SG_SHAPE(2, 3));
        expect_vals(y, (const double[]){1, 0.5, 3, 4, 0.5, 6}, 0);
        /* -inf, the usual fill before a softmax */
        y = sg_masked_fill(ctx, sg_transpose(ctx, a, 0, 1),
                           mk_int(ctx, SG_I32, SG_SHAPE(3, 1), (const int64_t[]){1, 0, 0}),
                           -INFINITY);
        expect_vals(y, (const double[]){-INFINITY, -INFINITY, 2, 5, 3, 6}, 0);
        ck_no_error();
    }
}
END_TEST

START_TEST(test_max_min_values) {
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        /* ties: the first occurrence */
        sg_tensor *x = mk(ctx, dt, SG_SHAPE(2, 4), (const double[]){1, 5, 5, -2, 3, -2, 3, -2});
        sg_tensor *at = NULL;
        sg_tensor *v = sg_max_axis(ctx, x, 1, false, &at);
        expect_shape(v, SG_SHAPE(2));
        expect_vals(v, (const double[]){5, 3}, 0);
        expect_shape(at, SG_SHAPE(2));
        expect_ints(at, (const int64_t[]){1, 0});
        v = sg_min_axis(ctx, x, -1, true, &at);
        expect_shape(v, SG_SHAPE(2, 1));
        expect_vals(v, (const double[]){-2, -2}, 0);
        expect_shape(at, SG_SHAPE(2, 1));
        expect_ints(at, (const int64_t[]){3, 1});
        v = sg_max_axis(ctx, x, 0, false, NULL);
        expect_vals(v, (const double[]){3, 5, 5, -2}, 0);
        expect_ints(sg_argmax(ctx, x, 0, false), (const int64_t[]){1, 0, 0, 0});
        expect_ints(sg_argmin(ctx, x, 1, false), (const int64_t[]){3, 1});
        sg_tensor *k = sg_argmax(ctx, sg_transpose(ctx, x, 0, 1), 1, true);
        expect_shape(k, SG_SHAPE(4, 1));
        expect_ints(k, (const int64_t[]){1, 0, 0, 0});
        /* NaN wins, first NaN; infinities are ordinary */
        x = mk(ctx, dt, SG_SHAPE(5), (const double[]){-INFINITY, 1, NAN, INFINITY, NAN});
        v = sg_max_axis(ctx, x, 0, false, &at);
        expect_shape(v, SG_SHAPE());
        ck_assert(isnan(sg_get_flat(v, 0)));
        expect_ints(at, (const int64_t[]){2});
        expect_ints(sg_argmin(ctx, sg_slice(ctx, x, 0, 0, 2), 0, false), (const int64_t[]){0});
        ck_no_error();
    }
}
END_TEST

/* Backward by hand: repeated indices accumulate; max sends everything to one element. */
START_TEST(test_backward_values) {
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        sg_tensor *x = sg_set_requires_grad(grid(dt, 3, 2), true);
        sg_tensor *idx = mk_int(ctx, SG_I32, SG_SHAPE(4), (const int64_t[]){2, 2, 0, 2});
        sg_tensor *y = sg_index_select(ctx, x, 0, idx);
        ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, y), NULL), 0);
        expect_vals(x->grad, (const double[]){1, 1, 0, 0, 3, 3}, 0);
        ck_assert_str_eq(sg_op_name(y->op), "index_select");
        sg_zero_grad(x);
        y = sg_max_axis(ctx, x, 0, false, NULL);
        ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, y), NULL), 0);
        expect_vals(x->grad, (const double[]){0, 0, 0, 0, 1, 1}, 0);
        /* where into a broadcast b: summed */
        sg_tensor *a = sg_set_requires_grad(sg_zeros(ctx, dt, SG_SHAPE(2, 3)), true);
        sg_tensor *b = sg_set_requires_grad(sg_zeros(ctx, dt, SG_SHAPE(3)), true);
        sg_tensor *c = mk_int(ctx, SG_I64, SG_SHAPE(2, 3), (const int64_t[]){1, 0, 0, 1, 1, 0});
        y = sg_where(ctx, c, a, b);
        ck_assert_str_eq(sg_op_name(y->op), "where");
        ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, y), NULL), 0);
        expect_vals(a->grad, (const double[]){1, 0, 0, 1, 1, 0}, 0);
        expect_vals(b->grad, (const double[]){0, 1, 2}, 0);
        ck_no_error();
    }
}
END_TEST

/* ---- PyTorch fixtures ----------------------------------------------------------------- */

/* x (from v, float dt, requires grad) -> out; backward with upstream w; compare. */
static sg_tensor *leaf(sg_dtype dt, int nd, const int64_t *shape, const double *v) {
    return sg_set_requires_grad(mk(ctx, dt, nd, shape, v), true);
}
static void backward_with(sg_tensor *y, const double *w) {
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(sg_backward(ctx, y, mk(ctx, y->dtype, y->ndim, y->shape, w)), 0);
}

START_TEST(test_fixture_gather_index_select) {
    for (int di = 0; di < 2; di++)
        for (int ii = 0; ii < 2; ii++) {
            sg_dtype dt = dts[di];
            double tol = tol_of(dt);
            sg_tensor *x = leaf(dt, SG_SHAPE(3, 4), gather_x);
            sg_tensor *y = sg_gather(ctx, x, 0, mk_int(ctx, its[ii], SG_SHAPE(5, 2), gather_idx));
            expect_vals(y, gather_out, tol);
            backward_with(y, gather_w);
            expect_vals(x->grad, gather_dx, tol);

            x = leaf(dt, SG_SHAPE(4, 3), isel_x);
            y = sg_index_select(ctx, x, 0, mk_int(ctx, its[ii], SG_SHAPE(5), isel0_idx));
            expect_vals(y, isel0_out, tol);
            backward_with(y, isel0_w);
            expect_vals(x->grad, isel0_dx, tol);
            sg_zero_grad(x);
            y = sg_index_select(ctx, x, 1, mk_int(ctx, its[ii], SG_SHAPE(3), isel1_idx));
            expect_vals(y, isel1_out, tol);
            backward_with(y, isel1_w);
            expect_vals(x->grad, isel1_dx, tol);
            ck_no_error();
        }
}
END_TEST

START_TEST(test_fixture_max_min) {
    struct {
        bool max;
        int axis;
        const double *w, *val, *dx;
        const int64_t *idx, *arg;
    } cases[] = {
        {true, 1, max1_w, max1_val, max1_dx, max1_idx, argmax1},
        {false, 1, min1_w, min1_val, min1_dx, min1_idx, argmin1},
        {true, 0, max0_w, max0_val, max0_dx, max0_idx, argmax0},
    };
    for (int di = 0; di < 2; di++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            sg_dtype dt = dts[di];
            double tol = tol_of(dt);
            sg_tensor *x = leaf(dt, SG_SHAPE(3, 5), ext_x), *at = NULL;
            sg_tensor *v = cases[k].max ? sg_max_axis(ctx, x, cases[k].axis, false, &at)
                                        : sg_min_axis(ctx, x, cases[k].axis, false, &at);
            expect_vals(v, cases[k].val, tol);
            expect_ints(at, cases[k].idx);
            backward_with(v, cases[k].w);
            expect_vals(x->grad, cases[k].dx, tol);
            expect_ints(cases[k].max ? sg_argmax(ctx, x, cases[k].axis, false)
                                     : sg_argmin(ctx, x, cases[k].axis, false),
                        cases[k].arg);
            ck_no_error();
        }
}
END_TEST

START_TEST(test_fixture_where) {
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        double tol = tol_of(dt);
        sg_tensor *a = leaf(dt, SG_SHAPE(3, 4), where_a), *b = leaf(dt, SG_SHAPE(4), where_b);
        sg_tensor *y = sg_where(ctx, mk_int(ctx, SG_I64, SG_SHAPE(3, 1), where_cond), a, b);
        expect_vals(y, where_out, tol);
        backward_with(y, where_w);
        expect_vals(a->grad, where_da, tol);
        expect_vals(b->grad, where_db, tol);
        ck_no_error();
    }
}
END_TEST

/* ---- gradcheck ------------------------------------------------------------------------- */

enum { G_ISEL, G_GATHER, G_TAKE, G_WHERE, G_MASKED, G_MAX, G_MIN };

typedef struct {
    int op, axis;
    bool transpose; /* check the op on in[0] transposed (a strided view) */
    bool keep;
    sg_tensor *idx; /* index, cond or mask */
} gspec;

static sg_tensor *gfn(sg_ctx *c, sg_tensor *const *in, void *user) {
    const gspec *s = user;
    sg_tensor *x = s->transpose ? sg_transpose(c, in[0], 0, -1) : in[0];
    switch (s->op) {
    case G_ISEL: return sg_index_select(c, x, s->axis, s->idx);
    case G_GATHER: return sg_gather(c, x, s->axis, s->idx);
    case G_TAKE: return sg_take_along_axis(c, x, s->axis, s->idx);
    case G_WHERE: return sg_where(c, s->idx, x, in[1]);
    case G_MASKED: return sg_masked_fill(c, x, s->idx, 2.5);
    case G_MAX: return sg_max_axis(c, x, s->axis, s->keep, NULL);
    default: return sg_min_axis(c, x, s->axis, s->keep, NULL);
    }
}

static void gcheck(gspec s, int n, sg_tensor *x, sg_tensor *b, const char *what) {
    sg_tensor *in[2] = {x, b};
    expect_gradcheck(ctx, gfn, &s, n, in, what);
    ck_no_error();
}

START_TEST(test_gradcheck) {
    for (int ii = 0; ii < 2; ii++) {
        sg_dtype it = its[ii];
        sg_tensor *x = sg_rand_normal(ctx, SG_F64, SG_SHAPE(3, 4), 0, 1);
        sg_tensor *x3 = sg_rand_normal(ctx, SG_F64, SG_SHAPE(2, 3, 4), 0, 1);
        /* index_select: repeated indices, both axes, negative axis, x transposed, and a
         * strided index (every other element of a longer one) */
        sg_tensor *rep = mk_int(ctx, it, SG_SHAPE(5), (const int64_t[]){2, 0, 2, 2, 1});
        gcheck((gspec){G_ISEL, 0, .idx = rep}, 1, x, NULL, "index_select axis 0");
        gcheck((gspec){G_ISEL, -1, .idx = rep}, 1, x, NULL, "index_select axis -1");
        gcheck((gspec){G_ISEL, 0, true, .idx = rep}, 1, x, NULL, "index_select x^T");
        sg_tensor *wide = mk_int(ctx, it, SG_SHAPE(3, 2), (const int64_t[]){1, 0, 1, 2, 1, 1});
        gcheck((gspec){G_ISEL, 1, .idx = sg_select(ctx, wide, 1, 1)}, 1, x3, NULL,
               "index_select strided idx"); /* {0, 2, 1} */
        /* gather: repeated, smaller than x, transposed index and x, negative axis */
        sg_tensor *gi = mk_int(ctx, it, SG_SHAPE(4, 2), (const int64_t[]){0, 2, 2, 2, 1, 0, 2, 2});
        gcheck((gspec){G_GATHER, 0, .idx = gi}, 1, x, NULL, "gather axis 0");
        gcheck((gspec){G_GATHER, -2, true, .idx = gi}, 1, x, NULL, "gather x^T axis -2");
        gcheck((gspec){G_GATHER, 1, .idx = sg_transpose(ctx, gi, 0, 1)}, 1, x, NULL,
               "gather idx^T");
        /* take_along_axis: idx (2, 1, 1) picks one step per sequence; x (1, 4) broadcast */
        sg_tensor *ti = mk_int(ctx, it, SG_SHAPE(2, 1, 1), (const int64_t[]){2, 0});
        gcheck((gspec){G_TAKE, 1, .idx = ti}, 1, x3, NULL, "take_along_axis");
        gcheck((gspec){G_TAKE, -1,
                       .idx = mk_int(ctx, it, SG_SHAPE(3, 2), (const int64_t[]){0, 3, 3, 3, 1, 0})},
               1, sg_rand_normal(ctx, SG_F64, SG_SHAPE(1, 4), 0, 1), NULL,
               "take_along_axis x broadcast");
        /* where: a transposed (4, 3), b broadcast (3,), cond (4, 1) */
        sg_tensor *c = mk_int(ctx, it, SG_SHAPE(4, 1), (const int64_t[]){1, 0, 0, 1});
        gcheck((gspec){G_WHERE, .transpose = true, .idx = c}, 2, x,
               sg_rand_normal(ctx, SG_F64, SG_SHAPE(3), 0, 1), "where");
        gcheck((gspec){G_WHERE, .idx = mk_int(ctx, it, SG_SHAPE(4), (const int64_t[]){0, 1, 1, 0})},
               2, sg_rand_normal(ctx, SG_F64, SG_SHAPE(2, 1, 4), 0, 1),
               sg_rand_normal(ctx, SG_F64, SG_SHAPE(3, 1), 0, 1), "where broadcast a and b");
        sg_tensor *m43 =
            mk_int(ctx, it, SG_SHAPE(4, 3), (const int64_t[]){1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0});
        gcheck((gspec){G_MASKED, .idx = sg_transpose(ctx, m43, 0, 1)}, 1, x3, NULL,
               "masked_fill strided mask"); /* (3, 4), broadcast over (2, 3, 4) */
        gcheck(
            (gspec){G_MASKED, .idx = mk_int(ctx, it, SG_SHAPE(4), (const int64_t[]){0, 1, 0, 0})},
            1, x3, NULL, "masked_fill");
        /* max / min (random values: no ties) */
        for (int axis = -3; axis < 3; axis++)
            for (int keep = 0; keep < 2; keep++) {
                gcheck((gspec){G_MAX, axis, .keep = keep}, 1, x3, NULL, "max_axis");
                gcheck((gspec){G_MIN, axis, .keep = keep}, 1, x3, NULL, "min_axis");
            }
        gcheck((gspec){G_MAX, 0, .transpose = true}, 1, x, NULL, "max_axis x^T");
        sg_ctx_reset(ctx);
    }
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------- */

START_TEST(test_errors) {
    sg_tensor *x = grid(SG_F32, 5, 3);
    sg_tensor *i7 = mk_int(ctx, SG_I64, SG_SHAPE(2), (const int64_t[]){1, 7});
    sg_tensor *neg = mk_int(ctx, SG_I32, SG_SHAPE(2), (const int64_t[]){0, -1});
    ck_assert_ptr_null(sg_index_select(ctx, x, 0, i7));
    ck_error("sg_index_select: index 7 out of range for axis 0 of size 5");
    ck_assert_ptr_null(sg_index_select(ctx, x, 0, neg));
    ck_error("sg_index_select: index -1 out of range for axis 0 of size 5");
    ck_assert_ptr_null(sg_index_select(ctx, x, 0, grid(SG_F32, 2, 1)));
    ck_error("sg_index_select: index must be int64 or int32, got float32");
    ck_assert_ptr_null(sg_index_select(ctx, x, 0, sg_reshape(ctx, i7, SG_SHAPE(1, 2))));
    ck_error("sg_index_select: index must be 1-D, got shape (1, 2)");
    ck_assert_ptr_null(sg_index_select(ctx, x, 2, i7));
    ck_error("sg_index_select: axis 2 out of range for 2 dimensions");
    ck_assert_ptr_null(sg_index_select(ctx, sg_cast(ctx, x, SG_I64), 0, i7));
    ck_error("sg_index_select: input 0 is an int64 tensor; this op takes float32 or float64");

    sg_tensor *g = mk_int(ctx, SG_I64, SG_SHAPE(2, 2), (const int64_t[]){0, 1, 2, 3});
    ck_assert_ptr_null(sg_gather(ctx, x, 1, g));
    ck_error("sg_gather: index 3 out of range for axis 1 of size 3");
    ck_assert_ptr_null(
        sg_gather(ctx, x, -2, mk_int(ctx, SG_I64, SG_SHAPE(1, 2), (const int64_t[]){-3, 0})));
    ck_error("sg_gather: index -3 out of range for axis 0 of size 5");
    ck_assert_ptr_null(sg_gather(ctx, x, 0, i7));
    ck_error("sg_gather: index of shape (2,) has 1 dimensions, x of shape (5, 3) has 2");
    ck_assert_ptr_null(sg_gather(ctx, x, 0, sg_zeros(ctx, SG_I32, SG_SHAPE(2, 4))));
    ck_error("sg_gather: index of shape (2, 4) is larger than x of shape (5, 3) in dimension 1");
    ck_assert_ptr_null(sg_gather(ctx, x, 0, sg_zeros(ctx, SG_F64, SG_SHAPE(2, 2))));
    ck_error("sg_gather: index must be int64 or int32, got float64");

    ck_assert_ptr_null(sg_take_along_axis(ctx, x, 0, sg_zeros(ctx, SG_I32, SG_SHAPE(2, 2))));
    ck_error("sg_take_along_axis: index of shape (2, 2) does not broadcast against x of shape "
             "(5, 3) outside axis 0");
    ck_assert_ptr_null(sg_take_along_axis(ctx, x, 0, i7));
    ck_error("sg_take_along_axis: index of shape (2,) does not broadcast against x of shape "
             "(5, 3) outside axis 0");
    ck_assert_ptr_null(
        sg_take_along_axis(ctx, x, 1, mk_int(ctx, SG_I64, SG_SHAPE(1, 1), (const int64_t[]){3})));
    ck_error("sg_take_along_axis: index 3 out of range for axis 1 of size 3");

    sg_tensor *c = mk_int(ctx, SG_I32, SG_SHAPE(2), (const int64_t[]){1, 0});
    ck_assert_ptr_null(sg_where(ctx, c, x, x));
    ck_error("sg_where: shapes (2,) (cond), (5, 3) (a) and (5, 3) (b) do not broadcast");
    ck_assert_ptr_null(sg_where(ctx, c, c, c));
    ck_error("sg_where: a and b are int32 tensors; they must be float32 or float64");
    ck_assert_ptr_null(sg_where(ctx, c, x, sg_cast(ctx, x, SG_F64)));
    ck_error("sg_where: dtype mismatch: float32 and float64");
    ck_assert_ptr_null(sg_masked_fill(ctx, x, sg_zeros(ctx, SG_I64, SG_SHAPE(2, 5, 3)), 0));
    ck_error("sg_masked_fill: mask of shape (2, 5, 3) does not broadcast to x's shape (5, 3)");
    ck_assert_ptr_null(sg_masked_fill(ctx, x, c, 0));
    ck_error("sg_masked_fill: mask of shape (2,) does not broadcast to x's shape (5, 3)");
    ck_assert_ptr_null(sg_masked_fill(ctx, c, c, 0));
    ck_error("sg_masked_fill: input 0 is an int32 tensor; this op takes float32 or float64");

    sg_tensor *at = x; /* overwritten with NULL on error */
    ck_assert_ptr_null(sg_max_axis(ctx, sg_zeros(ctx, SG_F32, SG_SHAPE(2, 0)), 1, false, &at));
    ck_assert_ptr_null(at);
    ck_error("sg_max_axis: axis 1 has size 0: no maximum");
    ck_assert_ptr_null(sg_min_axis(ctx, x, -3, false, &at));
    ck_error("sg_min_axis: axis -3 out of range for 2 dimensions");
    ck_assert_ptr_null(sg_argmin(ctx, sg_zeros(ctx, SG_F64, SG_SHAPE(0)), 0, false));
    ck_error("sg_argmin: axis 0 has size 0: no minimum");
    ck_assert_ptr_null(sg_argmax(ctx, c, 0, false));
    ck_error("sg_argmax: input 0 is an int32 tensor; this op takes float32 or float64");

    /* NULL inputs propagate silently */
    ck_assert_ptr_null(sg_index_select(ctx, NULL, 0, i7));
    ck_assert_ptr_null(sg_index_select(ctx, x, 0, NULL));
    ck_assert_ptr_null(sg_gather(ctx, x, 0, NULL));
    ck_assert_ptr_null(sg_take_along_axis(ctx, NULL, 0, g));
    ck_assert_ptr_null(sg_where(ctx, NULL, x, x));
    ck_assert_ptr_null(sg_where(ctx, c, x, NULL));
    ck_assert_ptr_null(sg_masked_fill(ctx, x, NULL, 1));
    ck_assert_ptr_null(sg_max_axis(ctx, NULL, 0, false, NULL));
    ck_assert_ptr_null(sg_argmax(ctx, NULL, 0, false));
    ck_no_error();

    /* a stale index */
    sg_ctx_reset(ctx);
    sg_tensor *y = grid(SG_F64, 2, 2);
    ck_assert_ptr_null(sg_gather(ctx, y, 0, g));
    ck_error("sg_gather: tensor used after sg_ctx_reset");
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"values",
         120,
         {{test_index_select_values, 1},
          {test_gather_values, 1},
          {test_take_along_axis_values, 1},
          {test_where_values, 1},
          {test_max_min_values, 1},
          {test_backward_values, 1}}},
        {"torch",
         120,
         {{test_fixture_gather_index_select, 1},
          {test_fixture_max_min, 1},
          {test_fixture_where, 1}}},
        {"grad", 120, {{test_gradcheck, 1}}},
        {"errors", 120, {{test_errors, 1}}},
    };
    return CK_RUN("ops_index", tcases, setup, teardown);
}
