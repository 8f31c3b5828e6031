/* Tests of autograd/ops_reduce.c and the default forms of the losses (autograd/ops_loss.c;
 * their options are in test_losses.c): sum, mean, softmax, log_softmax, cross-entropy,
 * binary cross-entropy with logits and MSE. Values against hand-computed numbers and closed forms,
 * numerical stability at extreme logits, gradients by sg_gradcheck (float64 tight, float32
 * loose) on several axes, strided views and reused inputs, and the exact error messages.
 *
 * The TCase "composite" needs ops owned by other files (sg_scale, sg_square, sg_sub, sg_mul
 * from ops_elementwise.c; the backward of transpose/slice from ops_shape.c). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"

#include "cksuite.h"
#include "ctxtest.h"
#include "tensortest.h"

static const sg_dtype dts[2] = {SG_F32, SG_F64};

/* x[i, j, k] = 12 i + 4 j + k, shape (2, 3, 4). */
static sg_tensor *iota234(sg_dtype dt) {
    sg_tensor *a = sg_arange(ctx, dt, 0, 24, 1);
    return sg_reshape(ctx, a, SG_SHAPE(2, 3, 4));
}

/* |t[i] - v[i]| <= tol * max(1, |v[i]|) for every element (NaN matches NaN). */

/* Labels lab[0..n) as an int32 tensor (n,) of context c. */
static sg_tensor *lt(sg_ctx *c, const int32_t *lab, int64_t n) {
    return sg_from_data(c, SG_I32, SG_SHAPE(n), lab);
}

static double tol_of(sg_dtype dt) { return dt == SG_F32 ? 2e-6 : 1e-13; }

static double scalar(const sg_tensor *t) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 0);
    return sg_get_flat(t, 0);
}

/* ---- sum ----------------------------------------------------------------------------- */

START_TEST(test_sum_all) {
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        sg_tensor *x = iota234(dt);
        sg_tensor *s = sg_sum(ctx, x);
        ck_assert_double_eq(scalar(s), 276.0); /* 0 + 1 + ... + 23 */
        ck_assert_int_eq(s->dtype, dt);
        /* Strided views: a transpose, a slice (k in [1, 3)), an expand with stride 0. */
        ck_assert_double_eq(scalar(sg_sum(ctx, sg_transpose(ctx, x, 0, 2))), 276.0);
        /* sum over i, j of (12i + 4j + 1) + (12i + 4j + 2) = 2 * 60 + 6 * 3 */
        ck_assert_double_eq(scalar(sg_sum(ctx, sg_slice(ctx, x, 2, 1, 2))), 138.0);
        sg_tensor *r = mk(ctx, dt, SG_SHAPE(3), (const double[]){1, 2, 3});
        ck_assert_double_eq(scalar(sg_sum(ctx, sg_expand(ctx, r, SG_SHAPE(4, 3)))), 24.0);
        /* 0-d and empty inputs. */
        ck_assert_double_eq(scalar(sg_sum(ctx, sg_scalar(ctx, dt, -2.5))), -2.5);
        ck_assert_double_eq(scalar(sg_sum(ctx, sg_zeros(ctx, dt, SG_SHAPE(0, 3)))), 0.0);
        ck_no_error();
    }
}
END_TEST

/* float32 sums accumulate in double: 2^20 copies of 0.1f give the float nearest the exact
 * 2^20 * (double)0.1f (a float accumulator gives 105891.8 instead of 104857.6). */
START_TEST(test_sum_f32_accumulates_in_double) {
    int64_t n = 1 << 20;
    sg_tensor *x = sg_full(ctx, SG_F32, SG_SHAPE(n), 0.1);
    float want = (float)((double)n * (double)0.1f);
    ck_assert_float_eq((float)scalar(sg_sum(ctx, x)), want);
    /* along an axis, the contiguous (inner > 1) and the row paths */
    sg_tensor *x2 = sg_reshape(ctx, x, SG_SHAPE(n / 4, 4));
    sg_tensor *s0 = sg_sum_axis(ctx, x2, 0, false);
    for (int j = 0; j < 4; j++)
        ck_assert_float_eq((float)sg_get_flat(s0, j), (float)((double)(n / 4) * (double)0.1f));
    sg_tensor *s1 = sg_sum_axis(ctx, sg_transpose(ctx, x2, 0, 1), 1, false);
    ck_assert_float_eq((float)sg_get_flat(s1, 3), (float)((double)(n / 4) * (double)0.1f));
    ck_no_error();
}
END_TEST

START_TEST(test_sum_axis_values) {
    static const double ax0[12] = {12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34};
    static const double ax1[8] = {12, 15, 18, 21, 48, 51, 54, 57};
    static const double ax2[6] = {6, 22, 38, 54, 70, 86};
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        sg_tensor *x = iota234(dt);
        for (int keep = 0; keep < 2; keep++) {
            sg_tensor *s = sg_sum_axis(ctx, x, 0, keep);
            if (keep)
                expect_shape(s, SG_SHAPE(1, 3, 4));
            else
                expect_shape(s, SG_SHAPE(3, 4));
            expect_vals(s, ax0, 0);
            s = sg_sum_axis(ctx, x, 1, keep);
            if (keep)
                expect_shape(s, SG_SHAPE(2, 1, 4));
            else
                expect_shape(s, SG_SHAPE(2, 4));
            expect_vals(s, ax1, 0);
            s = sg_sum_axis(ctx, x, 2, keep);
            if (keep)
                expect_shape(s, SG_SHAPE(2, 3, 1));
            else
                expect_shape(s, SG_SHAPE(2, 3));
            expect_vals(s, ax2, 0);
            s = sg_sum_axis(ctx, x, -1, keep); /* negative axis: the last */
            expect_vals(s, ax2, 0);
            ck_assert_int_eq(s->iparam[0], 2);
            ck_assert_int_eq(s->iparam[1], keep);
        }
        /* On the transposed view xt[k, j, i] = x[i, j, k], shape (4, 3, 2). */
        sg_tensor *xt = sg_transpose(ctx, x, 0, 2);
        sg_tensor *s = sg_sum_axis(ctx, xt, 0, false); /* [j, i] = 48 i + 16 j + 6 */
        expect_shape(s, SG_SHAPE(3, 2));
        expect_vals(s, (const double[]){6, 54, 22, 70, 38, 86}, 0);
        s = sg_sum_axis(ctx, xt, 1, true); /* [k, 0, i] = 36 i + 3 k + 12 */
        expect_shape(s, SG_SHAPE(4, 1, 2));
        expect_vals(s, (const double[]){12, 48, 15, 51, 18, 54, 21, 57}, 0);
        s = sg_sum_axis(ctx, xt, 2, false); /* [k, j] = 2 (4 j + k) + 12 */
        expect_shape(s, SG_SHAPE(4, 3));
        expect_vals(s, (const double[]){12, 20, 28, 14, 22, 30, 16, 24, 32, 18, 26, 34}, 0);
        /* 1-D to 0-d, a stride-0 expand, and an empty axis (sums are 0). */
        s = sg_sum_axis(ctx, mk(ctx, dt, SG_SHAPE(3), (const double[]){1, 2, 4}), 0, false);
        ck_assert_double_eq(scalar(s), 7);
        sg_tensor *r = mk(ctx, dt, SG_SHAPE(3), (const double[]){1, 2, 3});
        s = sg_sum_axis(ctx, sg_expand(ctx, r, SG_SHAPE(4, 3)), 0, false);
        expect_vals(s, (const double[]){4, 8, 12}, 0);
        s = sg_sum_axis(ctx, sg_zeros(ctx, dt, SG_SHAPE(2, 0)), 1, false);
        expect_shape(s, SG_SHAPE(2));
        expect_vals(s, (const double[]){0, 0}, 0);
        s = sg_sum_axis(ctx, sg_zeros(ctx, dt, SG_SHAPE(0, 5)), 1, true);
        expect_shape(s, SG_SHAPE(0, 1));
        ck_no_error();
    }
}
END_TEST

/* Backward broadcasts the upstream gradient back along the summed axis, accumulating. */
START_TEST(test_sum_backward_values) {
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        sg_tensor *x = sg_set_requires_grad(sg_zeros(ctx, dt, SG_SHAPE(2, 3)), true);
        sg_tensor *s = sg_sum_axis(ctx, x, 0, false);
        ck_assert_int_eq(s->op, SG_OP_SUM);
        ck_assert_int_eq(sg_backward(ctx, s, mk(ctx, dt, SG_SHAPE(3), (const double[]){1, 2, 3})),
                         0);
        expect_vals(x->grad, (const double[]){1, 2, 3, 1, 2, 3}, 0);
        s = sg_sum_axis(ctx, x, 1, true);
        ck_assert_int_eq(sg_backward(ctx, s, mk(ctx, dt, SG_SHAPE(2, 1), (const double[]){10, 20})),
                         0);
        expect_vals(x->grad, (const double[]){11, 12, 13, 21, 22, 23}, 0);
        ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, x), NULL), 0);
        expect_vals(x->grad, (const double[]){12, 13, 14, 22, 23, 24}, 0);
        ck_no_error();
    }
}
END_TEST

/* ---- softmax and log_softmax --------------------------------------------------------- */

/* Reference softmax of the row-major values v of shape (d0, d1, d2) along axis, in double,
 * straight from the definition exp(x) / sum(exp(x)) (fine for these moderate values). */
static void ref_softmax3(const int64_t *sh, const double *v, int axis, double *out) {
    int64_t st[3] = {sh[1] * sh[2], sh[2], 1};
    for (int64_t i = 0; i < sh[0] * sh[1] * sh[2]; i++) {
        int64_t idx[3] = {i / st[0], (i / st[1]) % sh[1], i % sh[2]}, base = i;
        base -= idx[axis] * st[axis];
        double s = 0;
        for (int64_t k = 0; k < sh[axis]; k++)
            s += exp(v[base + k * st[axis]]);
        out[i] = exp(v[i]) / s;
    }
}

START_TEST(test_softmax_values) {
    double v[24], ref[24], lref[24];
    for (int i = 0; i < 24; i++)
        v[i] = sin(1.7 * i) * 3.0; /* in [-3, 3], no ties */
    const int64_t sh[3] = {2, 3, 4};
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        sg_tensor *x = mk(ctx, dt, 3, sh, v);
        for (int axis = 0; axis < 3; axis++) {
            ref_softmax3(sh, v, axis, ref);
            for (int i = 0; i < 24; i++)
                lref[i] = log(ref[i]);
            sg_tensor *y = sg_softmax(ctx, x, axis);
            expect_shape(y, 3, sh);
            expect_vals(y, ref, tol_of(dt));
            expect_vals(sg_log_softmax(ctx, x, axis - 3), lref, tol_of(dt));
            /* the rows along the axis sum to 1 */
            sg_tensor *rs = sg_sum_axis(ctx, y, axis, false);
            for (int64_t i = 0; i < sg_numel(rs); i++)
                ck_assert_double_eq_tol(sg_get_flat(rs, i), 1.0, tol_of(dt) * 4);
        }
        /* A transposed view: softmax of xt = x^T(0, 2) along axis 2 is the transposed
         * softmax of x along axis 0. */
        ref_softmax3(sh, v, 0, ref);
        sg_tensor *xt = sg_transpose(ctx, x, 0, 2);
        sg_tensor *y = sg_softmax(ctx, xt, 2), *ly = sg_log_softmax(ctx, xt, -1);
        ck_assert(sg_is_contiguous(y));
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 3; j++)
                for (int i = 0; i < 2; i++) {
                    double got = sg_get(y, (const int64_t[]){k, j, i});
                    double want = ref[12 * i + 4 * j + k];
                    ck_assert_double_eq_tol(got, want, tol_of(dt));
                    ck_assert_double_eq_tol(sg_get(ly, (const int64_t[]){k, j, i}), log(want),
                                            tol_of(dt) * 4);
                }
        /* A sliced view along the softmax axis renormalises over the kept entries. */
        sg_tensor *xs = sg_slice(ctx, x, 2, 1, 2); /* (2, 3, 2) */
        y = sg_softmax(ctx, xs, 2);
        for (int r = 0; r < 6; r++) {
            double a = v[4 * r + 1], b = v[4 * r + 2];
            ck_assert_double_eq_tol(sg_get_flat(y, 2 * r), exp(a) / (exp(a) + exp(b)), tol_of(dt));
        }
        /* A length-1 axis gives exactly 1 (softmax) and 0 (log_softmax). */
        y = sg_softmax(ctx, x, 0);
        sg_tensor *one = sg_softmax(ctx, sg_reshape(ctx, x, SG_SHAPE(24, 1)), 1);
        sg_tensor *zero = sg_log_softmax(ctx, sg_reshape(ctx, x, SG_SHAPE(24, 1)), 1);
        for (int i = 0; i < 24; i++) {
            ck_assert_double_eq(sg_get_flat(one, i), 1.0);
            ck_assert_double_eq(sg_get_flat(zero, i), 0.0);
        }
        ck_no_error();
    }
}
END_TEST

/* Softmax backward by hand: y = softmax([0, ln 2, ln 3]) = [1/6, 2/6, 3/6]; with g = [1, 0, 0]
 * dx = y * (g - y0) = [1/6 * 5/6, -2/6 * 1/6, -3/6 * 1/6]. log_softmax with g = [1, 0, 0]:
 * dx = g - y * 1. */
START_TEST(test_softmax_backward_values) {
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        double tol = tol_of(dt);
        sg_tensor *x = mk(ctx, dt, SG_SHAPE(1, 3), (const double[]){0, log(2.0), log(3.0)});
        sg_set_requires_grad(x, true);
        sg_tensor *g = mk(ctx, dt, SG_SHAPE(1, 3), (const double[]){1, 0, 0});
        ck_assert_int_eq(sg_backward(ctx, sg_softmax(ctx, x, 1), g), 0);
        expect_vals(x->grad, (const double[]){5.0 / 36, -2.0 / 36, -3.0 / 36}, tol);
        sg_zero_grad(x);
        ck_assert_int_eq(sg_backward(ctx, sg_log_softmax(ctx, x, 1), g), 0);
        expect_vals(x->grad, (const double[]){1 - 1.0 / 6, -2.0 / 6, -3.0 / 6}, tol);
        ck_no_error();
    }
}
END_TEST

/* ---- stability at extreme logits ----------------------------------------------------- */

START_TEST(test_stability_extreme_logits) {
    const double l3 = log(3.0);
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        sg_tensor *x =
            mk(ctx, dt, SG_SHAPE(2, 3), (const double[]){1000, -1000, 0, -1000, -1000, -1000});
        sg_set_requires_grad(x, true);
        expect_vals(sg_softmax(ctx, x, 1), (const double[]){1, 0, 0, 1 / 3., 1 / 3., 1 / 3.},
                    tol_of(dt));
        expect_vals(sg_log_softmax(ctx, x, 1), (const double[]){0, -2000, -1000, -l3, -l3, -l3},
                    tol_of(dt));
        /* along axis 0: column 0 is (1000, -1000), column 2 is (0, -1000) */
        expect_vals(sg_log_softmax(ctx, x, 0),
                    (const double[]){0, -log(2.0), 0, -2000, -log(2.0), -1000}, tol_of(dt));
        /* cross-entropy: labels (1, 2) -> mean(2000, ln 3); gradient (p - onehot) / 2 */
        const int32_t lab[2] = {1, 2};
        sg_tensor *ce = sg_cross_entropy(ctx, x, lt(ctx, lab, 2));
        ck_assert_double_eq_tol(scalar(ce), (2000 + l3) / 2, tol_of(dt) * 1000);
        ck_assert_int_eq(sg_backward(ctx, ce, NULL), 0);
        expect_vals(x->grad, (const double[]){0.5, -0.5, 0, 1 / 6., 1 / 6., 1 / 6. - 0.5},
                    tol_of(dt));
        const int32_t lab0[2] = {0, 0};
        ck_assert_double_eq_tol(scalar(sg_cross_entropy(ctx, x, lt(ctx, lab0, 2))), l3 / 2,
                                tol_of(dt));
        ck_no_error();
    }
}
END_TEST

/* BCE at x = +-100: max(x, 0) - x z + log1p(exp(-|x|)) is finite and exact: e^-100 for
 * the confident right answers (a naive log(sigmoid) would give 0 or -inf), 100 for the
 * confident wrong ones; gradients sigmoid(x) - z are exactly 0 / +-1 to rounding. */
START_TEST(test_stability_bce) {
    const double xs[4] = {100, -100, 100, -100}, zs[4] = {1, 0, 0, 1};
    const double want[4] = {exp(-100.0), exp(-100.0), 100, 100};
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        for (int i = 0; i < 4; i++) {
            sg_tensor *x = sg_set_requires_grad(mk(ctx, dt, SG_SHAPE(1), &xs[i]), true);
            sg_tensor *z = mk(ctx, dt, SG_SHAPE(1), &zs[i]);
            double v = scalar(sg_bce_with_logits(ctx, x, z));
            ck_assert(isfinite(v));
            if (dt == SG_F64)
                ck_assert_double_eq_tol(v, want[i], 1e-15 * want[i]);
            else /* e^-100 is a float32 subnormal (3.7e-44, steps of 1.4e-45) */
                ck_assert_double_eq_tol(v, want[i], want[i] > 1 ? 1e-6 * want[i] : 1.5e-45);
            ck_assert_int_eq(sg_backward(ctx, sg_bce_with_logits(ctx, x, z), NULL), 0);
            double g = sg_get_flat(x->grad, 0), gw = (xs[i] > 0) - zs[i];
            ck_assert(isfinite(g));
            ck_assert_double_eq_tol(g, gw, 1e-15 + (dt == SG_F32 ? 1e-7 : 0));
        }
        double x4[4], z4[4];
        memcpy(x4, xs, sizeof x4);
        memcpy(z4, zs, sizeof z4);
        double m = scalar(sg_bce_with_logits(ctx, mk(ctx, dt, SG_SHAPE(2, 2), x4),
                                             mk(ctx, dt, SG_SHAPE(2, 2), z4)));
        ck_assert_double_eq_tol(m, 50.0, 1e-13);
        ck_no_error();
    }
}
END_TEST

/* ---- losses by hand ------------------------------------------------------------------ */

START_TEST(test_cross_entropy_value) {
    const double e = exp(1.0), lse0 = log(e + e * e + e * e * e);
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        double tol = tol_of(dt);
        const double v[6] = {1, 2, 3, 1, 1, 1};
        sg_tensor *x = sg_set_requires_grad(mk(ctx, dt, SG_SHAPE(2, 3), v), true);
        const int32_t lab[2] = {2, 0};
        sg_tensor *labt = lt(ctx, lab, 2);
        sg_tensor *ce = sg_cross_entropy(ctx, x, labt);
        ck_assert_int_eq(ce->op, SG_OP_CROSS_ENTROPY);
        ck_assert_double_eq_tol(scalar(ce), ((lse0 - 3) + log(3.0)) / 2, tol);
        sg_set_flat(labt, 0, 1); /* the op keeps its own copy of the labels for backward */
        ck_assert_int_eq(sg_backward(ctx, ce, NULL), 0);
        double p0[3] = {e / exp(lse0), e * e / exp(lse0), e * e * e / exp(lse0)};
        expect_vals(x->grad,
                    (const double[]){p0[0] / 2, p0[1] / 2, (p0[2] - 1) / 2, (1 / 3. - 1) / 2,
                                     1 / 6., 1 / 6.},
                    tol);
        /* The same logits as a transposed view of a (3, 2) tensor. */
        sg_tensor *b = mk(ctx, dt, SG_SHAPE(3, 2), (const double[]){1, 1, 2, 1, 3, 1});
        ck_assert_double_eq_tol(
            scalar(sg_cross_entropy(ctx, sg_transpose(ctx, b, 0, 1), lt(ctx, lab, 2))),
            ((lse0 - 3) + log(3.0)) / 2, tol);
        /* No rows: NaN like a mean of nothing. */
        ck_assert(isnan(scalar(sg_cross_entropy(ctx, sg_zeros(ctx, dt, SG_SHAPE(0, 3)),
                                                sg_zeros(ctx, SG_I64, SG_SHAPE(0))))));
        ck_no_error();
    }
}
END_TEST

/* x = [0, 1, -2], z = [0.5, 1, 0]: terms ln 2, log1p(e^-1), log1p(e^-2); gradients
 * (sigmoid(x) - z) / 3 and -x / 3. */
START_TEST(test_bce_value) {
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        double tol = tol_of(dt);
        sg_tensor *x =
            sg_set_requires_grad(mk(ctx, dt, SG_SHAPE(3), (const double[]){0, 1, -2}), true);
        sg_tensor *z =
            sg_set_requires_grad(mk(ctx, dt, SG_SHAPE(3), (const double[]){.5, 1, 0}), true);
        sg_tensor *l = sg_bce_with_logits(ctx, x, z);
        ck_assert_int_eq(l->op, SG_OP_BCE_LOGITS);
        double want = (log(2.0) + log1p(exp(-1.0)) + log1p(exp(-2.0))) / 3;
        ck_assert_double_eq_tol(scalar(l), want, tol);
        ck_assert_int_eq(sg_backward(ctx, l, NULL), 0);
        double s1 = 1 / (1 + exp(-1.0)), s2 = 1 / (1 + exp(2.0));
        expect_vals(x->grad, (const double[]){0, (s1 - 1) / 3, s2 / 3}, tol);
        expect_vals(z->grad, (const double[]){0, -1 / 3., 2 / 3.}, tol);
        /* Strided: x transposed (3, 2) -> (2, 3), z an expanded row. */
        sg_tensor *xb = mk(ctx, dt, SG_SHAPE(3, 2), (const double[]){0, 0, 1, 1, -2, -2});
        sg_tensor *zr = mk(ctx, dt, SG_SHAPE(3), (const double[]){.5, 1, 0});
        l = sg_bce_with_logits(ctx, sg_transpose(ctx, xb, 0, 1),
                               sg_expand(ctx, zr, SG_SHAPE(2, 3)));
        ck_assert_double_eq_tol(scalar(l), want, tol);
        /* 0-d and empty */
        ck_assert_double_eq_tol(
            scalar(sg_bce_with_logits(ctx, sg_scalar(ctx, dt, 0), sg_scalar(ctx, dt, 0.5))),
            log(2.0), tol);
        ck_assert(isnan(scalar(sg_bce_with_logits(ctx, sg_zeros(ctx, dt, SG_SHAPE(0)),
                                                  sg_zeros(ctx, dt, SG_SHAPE(0))))));
        ck_no_error();
    }
}
END_TEST

/* ---- gradients of strided leaves (no view op on the tape) ---------------------------- */

/* Each op applied to a transposed / sliced leaf must give the same values and gradients
 * as applied to a contiguous copy of it. */
enum { K_SUM, K_SUM_AXIS, K_SOFTMAX, K_LOG_SOFTMAX, K_CE, K_BCE, K_COUNT };

static sg_tensor *apply_kind(int kind, int axis, sg_tensor *x, sg_tensor *z, const int32_t *lab) {
    switch (kind) {
    case K_SUM: return sg_sum(ctx, x);
    case K_SUM_AXIS: return sg_sum_axis(ctx, x, axis, axis == 1);
    case K_SOFTMAX: return sg_softmax(ctx, x, axis);
    case K_LOG_SOFTMAX: return sg_log_softmax(ctx, x, axis);
    case K_CE: return sg_cross_entropy(ctx, x, lt(ctx, lab, x->shape[0]));
    default: return sg_bce_with_logits(ctx, x, z);
    }
}

START_TEST(test_strided_leaf_grads) {
    const int32_t lab[5] = {2, 0, 1, 2, 1};
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        for (int kind = 0; kind < K_COUNT; kind++)
            for (int axis = 0; axis < 2; axis++)
                for (int view = 0; view < 2; view++) {
                    /* base (3, 5): the leaf is its transpose (5, 3) or the slice [1:5) of
                     * it (4, 3), both non-contiguous; zbase gives a strided target. */
                    sg_tensor *base = sg_rand_normal(ctx, dt, SG_SHAPE(3, 5), 0, 2);
                    sg_tensor *zb = sg_rand_uniform(ctx, dt, SG_SHAPE(5, 6), 0, 1);
                    sg_tensor *v = sg_transpose(ctx, base, 0, 1);
                    if (view)
                        v = sg_slice(ctx, v, 0, 1, 4);
                    sg_tensor *z = sg_slice(ctx, zb, 1, 1, 3);
                    if (view)
                        z = sg_slice(ctx, z, 0, 0, 4);
                    ck_assert(!sg_is_contiguous(v) && !sg_is_contiguous(z));
                    sg_tensor *c = sg_tensor_new(ctx, dt, v->ndim, v->shape);
                    ck_assert_int_eq(sg_copy(c, v), 0);
                    sg_set_requires_grad(v, true);
                    sg_set_requires_grad(c, true);
                    sg_tensor *yv = apply_kind(kind, axis, v, z, lab);
                    sg_tensor *yc = apply_kind(kind, axis, c, z, lab);
                    ck_assert_ptr_nonnull(yv);
                    ck_assert_int_eq(sg_compare(ctx, yv, yc, 1e-6, 1e-6, NULL), 0);
                    sg_tensor *g = sg_rand_normal(ctx, dt, yv->ndim, yv->shape, 0, 1);
                    ck_assert_int_eq(sg_backward(ctx, yv, g), 0);
                    ck_assert_int_eq(sg_backward(ctx, yc, g), 0);
                    ck_assert_int_eq(sg_compare(ctx, v->grad, c->grad, 1e-6, 1e-6, NULL), 0);
                    ck_assert(sg_is_contiguous(v->grad));
                    ck_no_error();
                }
    }
}
END_TEST

/* ---- gradcheck ----------------------------------------------------------------------- */

enum {
    OP_SUM,
    OP_SUM_AXIS,
    OP_MEAN,
    OP_MEAN_AXIS,
    OP_SOFTMAX,
    OP_LOG_SOFTMAX,
    OP_CE,
    OP_BCE,
    OP_MSE,
    OP_BCE_SELF,    /* bce(x, x): one input used twice by one op */
    OP_CE_LOGSM,    /* cross_entropy(log_softmax(x)): a chain */
    OP_SOFTMAX_MUL, /* sum(softmax(x) * x): reuse through two ops */
    OP_SUM_TWICE,   /* sum_axis(x, a) + sum_axis(x, a): reuse */
};

typedef struct {
    int op, axis;
    bool keep;
    int view; /* 0: as is; 1: transpose(0, -1); 2: slice [1:] along axis 0 */
    const int32_t *labels;
} gspec;

static sg_tensor *view_of(sg_ctx *c, sg_tensor *x, int view) {
    if (view == 1)
        return sg_transpose(c, x, 0, x->ndim - 1);
    if (view == 2)
        return sg_slice(c, x, 0, 1, x->shape[0] - 1);
    return x;
}

static sg_tensor *gfn(sg_ctx *c, sg_tensor *const *in, void *user) {
    const gspec *s = user;
    sg_tensor *x = view_of(c, in[0], s->view);
    switch (s->op) {
    case OP_SUM: return sg_sum(c, x);
    case OP_SUM_AXIS: return sg_sum_axis(c, x, s->axis, s->keep);
    case OP_MEAN: return sg_mean(c, x);
    case OP_MEAN_AXIS: return sg_mean_axis(c, x, s->axis, s->keep);
    case OP_SOFTMAX: return sg_softmax(c, x, s->axis);
    case OP_LOG_SOFTMAX: return sg_log_softmax(c, x, s->axis);
    case OP_CE: return sg_cross_entropy(c, x, lt(c, s->labels, x->shape[0]));
    case OP_BCE: return sg_bce_with_logits(c, x, view_of(c, in[1], s->view));
    case OP_MSE: return sg_mse_loss(c, x, view_of(c, in[1], s->view));
    case OP_BCE_SELF: return sg_bce_with_logits(c, x, x);
    case OP_CE_LOGSM:
        return sg_cross_entropy(c, sg_log_softmax(c, x, 1), lt(c, s->labels, x->shape[0]));
    case OP_SOFTMAX_MUL: return sg_sum(c, sg_mul(c, sg_softmax(c, x, s->axis), x));
    case OP_SUM_TWICE:
        return sg_add(c, sg_sum_axis(c, x, s->axis, s->keep), sg_sum_axis(c, x, s->axis, s->keep));
    }
    return NULL;
}

/* Gradcheck gfn on fresh inputs of `shape` (a second input, uniform in [0, 1), for the
 * two-input losses): float64 with the default tight tolerances, float32 loose. */
static void gcheck(gspec s, sg_dtype dt, int nd, const int64_t *shape) {
    int n = (s.op == OP_BCE || s.op == OP_MSE) ? 2 : 1;
    sg_tensor *in[2];
    in[0] = sg_set_requires_grad(sg_rand_normal(ctx, dt, nd, shape, 0, 1.5), true);
    if (n == 2)
        in[1] = sg_set_requires_grad(sg_rand_uniform(ctx, dt, nd, shape, 0, 1), true);
    sg_gradcheck_opts o = sg_gradcheck_defaults();
    if (dt == SG_F32) {
        o.eps = 1e-2;
        o.atol = 1e-3;
        o.rtol = 1e-2;
    }
    sg_gradcheck_report rep[2];
    int rc = sg_gradcheck(ctx, gfn, &s, n, in, &o, rep);
    const char *err = sg_ctx_error(ctx);
    for (int i = 0; rc == 0 && i < n; i++)
        ck_assert_msg(rep[i].ok,
                      "gradcheck op %d axis %d keep %d view %d %s: input %d max_abs %g at %lld "
                      "(analytic %.10g, numeric %.10g)",
                      s.op, s.axis, s.keep, s.view, sg_dtype_name(dt), i, rep[i].max_abs,
                      (long long)rep[i].worst_flat, rep[i].analytic, rep[i].numeric);
    ck_assert_msg(rc == 1, "gradcheck op %d axis %d view %d %s: rc %d, error %s", s.op, s.axis,
                  s.view, sg_dtype_name(dt), rc, err ? err : "(none)");
    sg_ctx_reset(ctx); /* keep the arena small across many checks */
}

/* The ops of this file alone, contiguous inputs. */
START_TEST(test_gradcheck_core) {
    static const int32_t lab4[4] = {0, 2, 1, 2};
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        gcheck((gspec){.op = OP_SUM}, dt, SG_SHAPE(2, 3, 4));
        gcheck((gspec){.op = OP_SUM}, dt, SG_SHAPE(5));
        for (int axis = -1; axis < 3; axis++)
            for (int keep = 0; keep < 2; keep++)
                gcheck((gspec){.op = OP_SUM_AXIS, .axis = axis, .keep = keep}, dt,
                       SG_SHAPE(2, 3, 4));
        for (int axis = -1; axis < 3; axis++) {
            gcheck((gspec){.op = OP_SOFTMAX, .axis = axis}, dt, SG_SHAPE(2, 3, 4));
            gcheck((gspec){.op = OP_LOG_SOFTMAX, .axis = axis}, dt, SG_SHAPE(2, 3, 4));
        }
        gcheck((gspec){.op = OP_SOFTMAX, .axis = 0}, dt, SG_SHAPE(7));
        gcheck((gspec){.op = OP_CE, .labels = lab4}, dt, SG_SHAPE(4, 3));
        gcheck((gspec){.op = OP_CE_LOGSM, .labels = lab4}, dt, SG_SHAPE(4, 3));
        gcheck((gspec){.op = OP_BCE}, dt, SG_SHAPE(2, 3));
        gcheck((gspec){.op = OP_BCE}, dt, SG_SHAPE(5));
        gcheck((gspec){.op = OP_BCE_SELF}, dt, SG_SHAPE(3, 2));
    }
}
END_TEST

/* Needs ops_elementwise.c (scale, square, sub, add, mul) and the view backwards of
 * ops_shape.c (transpose, slice): derived ops, strided inputs inside the graph, reuse. */
START_TEST(test_gradcheck_composite) {
    static const int32_t lab3[3] = {1, 0, 1}, lab4[4] = {0, 2, 1, 2};
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        gcheck((gspec){.op = OP_MEAN}, dt, SG_SHAPE(2, 3, 4));
        for (int axis = -1; axis < 3; axis++)
            gcheck((gspec){.op = OP_MEAN_AXIS, .axis = axis, .keep = axis == 1}, dt,
                   SG_SHAPE(2, 3, 4));
        gcheck((gspec){.op = OP_MSE}, dt, SG_SHAPE(4, 1));
        gcheck((gspec){.op = OP_MSE, .view = 1}, dt, SG_SHAPE(3, 4));
        for (int view = 1; view < 3; view++) {
            gcheck((gspec){.op = OP_SUM, .view = view}, dt, SG_SHAPE(3, 2, 4));
            for (int axis = 0; axis < 3; axis++) {
                gcheck((gspec){.op = OP_SUM_AXIS, .axis = axis, .view = view}, dt,
                       SG_SHAPE(3, 2, 4));
                gcheck((gspec){.op = OP_SOFTMAX, .axis = axis, .view = view}, dt,
                       SG_SHAPE(3, 2, 4));
                gcheck((gspec){.op = OP_LOG_SOFTMAX, .axis = axis, .view = view}, dt,
                       SG_SHAPE(3, 2, 4));
            }
            gcheck((gspec){.op = OP_BCE, .view = view}, dt, SG_SHAPE(3, 4));
        }
        gcheck((gspec){.op = OP_CE, .view = 1, .labels = lab3}, dt, SG_SHAPE(2, 3));
        gcheck((gspec){.op = OP_CE, .view = 2, .labels = lab4}, dt, SG_SHAPE(5, 3));
        for (int axis = 0; axis < 3; axis++) {
            gcheck((gspec){.op = OP_SOFTMAX_MUL, .axis = axis}, dt, SG_SHAPE(2, 3, 4));
            gcheck((gspec){.op = OP_SUM_TWICE, .axis = axis, .keep = true}, dt, SG_SHAPE(2, 3, 4));
        }
    }
}
END_TEST

/* ---- derived ops (need ops_elementwise.c) -------------------------------------------- */

START_TEST(test_mean_values) {
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        sg_tensor *x = iota234(dt);
        ck_assert_double_eq_tol(scalar(sg_mean(ctx, x)), 11.5, tol_of(dt));
        sg_tensor *m = sg_mean_axis(ctx, x, 1, true); /* (36 i + 3 k + 12) / 3 */
        expect_shape(m, SG_SHAPE(2, 1, 4));
        expect_vals(m, (const double[]){4, 5, 6, 7, 16, 17, 18, 19}, tol_of(dt));
        m = sg_mean_axis(ctx, sg_transpose(ctx, x, 0, 2), -1, false); /* [k, j]: 6 + 4j + k */
        expect_shape(m, SG_SHAPE(4, 3));
        expect_vals(m, (const double[]){6, 10, 14, 7, 11, 15, 8, 12, 16, 9, 13, 17}, tol_of(dt));
        /* Empty: NaN, like NumPy. */
        ck_assert(isnan(scalar(sg_mean(ctx, sg_zeros(ctx, dt, SG_SHAPE(0))))));
        m = sg_mean_axis(ctx, sg_zeros(ctx, dt, SG_SHAPE(2, 0)), 1, false);
        expect_vals(m, (const double[]){NAN, NAN}, 0);
        /* Backward: 1/n everywhere. */
        sg_tensor *w = sg_set_requires_grad(sg_zeros(ctx, dt, SG_SHAPE(2, 4)), true);
        ck_assert_int_eq(sg_backward(ctx, sg_mean(ctx, w), NULL), 0);
        for (int i = 0; i < 8; i++)
            ck_assert_double_eq_tol(sg_get_flat(w->grad, i), 0.125, tol_of(dt));
        ck_no_error();
    }
}
END_TEST

START_TEST(test_mse_values) {
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        sg_tensor *p =
            sg_set_requires_grad(mk(ctx, dt, SG_SHAPE(4, 1), (const double[]){1, 2, 3, 4}), true);
        sg_tensor *t = mk(ctx, dt, SG_SHAPE(4, 1), (const double[]){0, 2, 5, 1});
        sg_tensor *l = sg_mse_loss(ctx, p, t);
        ck_assert_double_eq_tol(scalar(l), (1 + 0 + 4 + 9) / 4.0, tol_of(dt));
        ck_assert_int_eq(sg_backward(ctx, l, NULL), 0);
        expect_vals(p->grad, (const double[]){0.5, 0, -1, 1.5}, tol_of(dt)); /* 2 (p - t) / 4 */
        ck_no_error();
    }
}
END_TEST

/* ---- bookkeeping --------------------------------------------------------------------- */

/* Gradients accumulate across backward calls and across different losses. */
START_TEST(test_accumulate) {
    for (int di = 0; di < 2; di++) {
        sg_dtype dt = dts[di];
        sg_tensor *x = sg_set_requires_grad(
            mk(ctx, dt, SG_SHAPE(2, 3), (const double[]){1, 2, 3, 1, 1, 1}), true);
        ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, x), NULL), 0);
        const int32_t lab[2] = {2, 0};
        sg_tensor *ce = sg_cross_entropy(ctx, x, lt(ctx, lab, 2));
        ck_assert_int_eq(sg_backward(ctx, ce, NULL), 0);
        ck_assert_int_eq(sg_backward(ctx, ce, NULL), 0); /* the same graph twice */
        const double e = exp(1.0), s = e + e * e + e * e * e;
        double want[6] = {e / s, e * e / s, e * e * e / s - 1, 1 / 3. - 1, 1 / 3., 1 / 3.};
        for (int i = 0; i < 6; i++)
            want[i] = 1 + 2 * want[i] / 2;
        expect_vals(x->grad, want, tol_of(dt) * 4);
        ck_no_error();
    }
}
END_TEST

/* With grad mode off (or no input requiring grad) nothing is recorded or saved. */
START_TEST(test_no_grad) {
    sg_tensor *x = sg_set_requires_grad(sg_rand_normal(ctx, SG_F64, SG_SHAPE(3, 4), 0, 1), true);
    const int32_t lab[3] = {0, 1, 2};
    sg_ctx_set_grad_enabled(ctx, false);
    sg_tensor *ys[5] = {sg_sum(ctx, x), sg_sum_axis(ctx, x, 1, false), sg_softmax(ctx, x, 0),
                        sg_log_softmax(ctx, x, 1), sg_cross_entropy(ctx, x, lt(ctx, lab, 3))};
    for (int i = 0; i < 5; i++) {
        ck_assert_ptr_nonnull(ys[i]);
        ck_assert_int_eq(ys[i]->op, SG_OP_NONE);
        ck_assert(!(ys[i]->flags & SG_FLAG_REQUIRES_GRAD));
    }
    ck_assert_ptr_null(ys[4]->aux);
    ck_assert_int_eq(sg_tape_size(ctx), 0);
    sg_ctx_set_grad_enabled(ctx, true);
    sg_tensor *y = sg_softmax(ctx, x, 1);
    ck_assert_int_eq(y->op, SG_OP_SOFTMAX);
    ck_assert_int_eq(y->iparam[0], 1);
    ck_assert_ptr_eq(y->src[0], x);
    ck_assert_int_eq(sg_tape_size(ctx), 1);
    ck_no_error();
}
END_TEST

/* ---- errors -------------------------------------------------------------------------- */

START_TEST(test_errors) {
    sg_tensor *x = sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3));
    sg_tensor *x64 = sg_zeros(ctx, SG_F64, SG_SHAPE(2, 3));
    ck_assert_ptr_null(sg_sum_axis(ctx, x, 3, false));
    ck_error("sg_sum_axis: axis 3 out of range for 2 dimensions");
    ck_assert_ptr_null(sg_sum_axis(ctx, x, -3, true));
    ck_error("sg_sum_axis: axis -3 out of range for 2 dimensions");
    ck_assert_ptr_null(sg_sum_axis(ctx, sg_scalar(ctx, SG_F32, 1), 0, false));
    ck_error("sg_sum_axis: axis 0 out of range for 0 dimensions");
    ck_assert_ptr_null(sg_mean_axis(ctx, x, 2, false));
    ck_error("sg_mean_axis: axis 2 out of range for 2 dimensions");
    ck_assert_ptr_null(sg_softmax(ctx, x, 2));
    ck_error("sg_softmax: axis 2 out of range for 2 dimensions");
    ck_assert_ptr_null(sg_softmax(ctx, sg_scalar(ctx, SG_F32, 1), -1));
    ck_error("sg_softmax: axis -1 out of range for 0 dimensions");
    ck_assert_ptr_null(sg_log_softmax(ctx, x, -5));
    ck_error("sg_log_softmax: axis -5 out of range for 2 dimensions");

    const int32_t l3[3] = {0, 4, 7};
    sg_tensor *lab = lt(ctx, l3, 3);
    ck_assert_ptr_null(sg_cross_entropy(ctx, sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3, 4)), lab));
    ck_error("sg_cross_entropy: labels (3,) do not match logits (2, 3, 4): want the logits' "
             "shape without the class axis");
    ck_assert_ptr_null(sg_cross_entropy(ctx, sg_zeros(ctx, SG_F32, SG_SHAPE(5)), lab));
    ck_error("sg_cross_entropy: labels (3,) do not match logits (5,): want the logits' shape "
             "without the class axis");
    ck_assert_ptr_null(sg_cross_entropy(ctx, sg_zeros(ctx, SG_F64, SG_SHAPE(3, 5)), lab));
    ck_error("sg_cross_entropy: label 7 at index 2 out of range [0, 5)");
    const int32_t neg[2] = {1, -1};
    ck_assert_ptr_null(sg_cross_entropy(ctx, x, lt(ctx, neg, 2)));
    ck_error("sg_cross_entropy: label -1 at index 1 out of range [0, 3)");

    ck_assert_ptr_null(sg_bce_with_logits(ctx, x, sg_zeros(ctx, SG_F32, SG_SHAPE(3, 2))));
    ck_error("sg_bce_with_logits: shapes (2, 3) and (3, 2) differ");
    ck_assert_ptr_null(sg_bce_with_logits(ctx, x, sg_zeros(ctx, SG_F32, SG_SHAPE(1, 3))));
    ck_error("sg_bce_with_logits: shapes (2, 3) and (1, 3) differ"); /* no broadcasting */
    ck_assert_ptr_null(sg_bce_with_logits(ctx, x, x64));
    ck_error("sg_bce_with_logits: dtype mismatch: float32 and float64");
    ck_assert_ptr_null(sg_mse_loss(ctx, sg_zeros(ctx, SG_F32, SG_SHAPE(4, 1)),
                                   sg_zeros(ctx, SG_F32, SG_SHAPE(4))));
    ck_error("sg_mse_loss: shapes (4, 1) and (4,) differ");
    ck_assert_ptr_null(sg_mse_loss(ctx, x64, x));
    ck_error("sg_mse_loss: dtype mismatch: float64 and float32");

    /* NULL inputs propagate silently. */
    ck_assert_ptr_null(sg_sum(ctx, NULL));
    ck_assert_ptr_null(sg_sum_axis(ctx, NULL, 0, false));
    ck_assert_ptr_null(sg_mean(ctx, NULL));
    ck_assert_ptr_null(sg_mean_axis(ctx, NULL, 0, true));
    ck_assert_ptr_null(sg_softmax(ctx, NULL, 0));
    ck_assert_ptr_null(sg_log_softmax(ctx, NULL, 0));
    ck_assert_ptr_null(sg_cross_entropy(ctx, NULL, lab));
    ck_assert_ptr_null(sg_cross_entropy(ctx, x, NULL));
    ck_assert_ptr_null(sg_bce_with_logits(ctx, x, NULL));
    ck_assert_ptr_null(sg_bce_with_logits(ctx, NULL, x));
    ck_assert_ptr_null(sg_mse_loss(ctx, NULL, x));
    ck_no_error();

    /* A tensor from before a reset. */
    sg_ctx_reset(ctx);
    ck_assert_ptr_null(sg_sum(ctx, x));
    ck_error("sg_sum: tensor used after sg_ctx_reset");
    ck_assert_ptr_null(sg_softmax(ctx, x, 0));
    ck_error("sg_softmax: tensor used after sg_ctx_reset");
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"values",
         120,
         {{test_sum_all, 1},
          {test_sum_f32_accumulates_in_double, 1},
          {test_sum_axis_values, 1},
          {test_sum_backward_values, 1},
          {test_softmax_values, 1},
          {test_softmax_backward_values, 1},
          {test_cross_entropy_value, 1},
          {test_bce_value, 1}}},
        {"stability", 120, {{test_stability_extreme_logits, 1}, {test_stability_bce, 1}}},
        {"grad",
         120,
         {{test_strided_leaf_grads, 1},
          {test_gradcheck_core, 1},
          {test_accumulate, 1},
          {test_no_grad, 1}}},
        {"errors", 120, {{test_errors, 1}}},
        {"composite",
         120,
         {{test_mean_values, 1}, {test_mse_values, 1}, {test_gradcheck_composite, 1}}},
    };
    return CK_RUN("ops_reduce", tcases, setup, teardown);
}
