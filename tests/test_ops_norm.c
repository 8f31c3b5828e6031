/* Check tests for autograd/ops_norm.c: sg_layer_norm.
 *
 * Values and gradients against PyTorch (tests/fixtures/norm.h, F.layer_norm in float64, with
 * gain and bias and without), float64 gradchecks on contiguous, permuted and sliced inputs
 * and strided gain/bias, float32 against float64, rows of equal values, and every error.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "cksuite.h"
#include "fixtures/norm.h"
#include "optest.h"
#include "tensortest.h"

#define DT(i) ((i) ? SG_F64 : SG_F32)

/* Every element of t within rtol (relative to max(1, |want|)) of want[]. */
static void expect_near(const sg_tensor *t, const double *want, int64_t n, double rtol,
                        const char *what) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(sg_numel(t), n);
    for (int64_t i = 0; i < n; i++) {
        double got = sg_get_flat(t, i);
        ck_assert_msg(fabs(got - want[i]) <= rtol * fmax(1.0, fabs(want[i])),
                      "%s element %lld: got %.17g, want %.17g", what, (long long)i, got, want[i]);
    }
}

/* ---- against PyTorch -------------------------------------------------------------------- */

/* (a) gain and bias, (b) neither; float64 within 1e-12, float32 (inputs rounded) within 2e-5. */
START_TEST(torch_fixture) {
    sg_dtype dt = DT(_i);
    double tol = dt == SG_F64 ? 1e-12 : 2e-5;
    sg_ctx *ctx = sg_ctx_new(0);
    const int64_t shape[3] = {LN_B, LN_T, LN_D}, n = LN_B * LN_T * LN_D;
    sg_tensor *x = mk(ctx, dt, 3, shape, ln_x), *w = mk(ctx, dt, 3, shape, ln_w);
    sg_tensor *gain = mk(ctx, dt, SG_SHAPE(LN_D), ln_gain);
    sg_tensor *bias = mk(ctx, dt, SG_SHAPE(LN_D), ln_bias);
    sg_set_requires_grad(x, true);
    sg_set_requires_grad(gain, true);
    sg_set_requires_grad(bias, true);
    sg_tensor *y = sg_layer_norm(ctx, x, gain, bias, LN_EPS);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->op, SG_OP_LAYER_NORM);
    ck_assert_str_eq(sg_op_name(y->op), "layer_norm");
    ck_assert_int_eq(y->ndim, 3);
    ck_assert(sg_is_contiguous(y));
    expect_near(y, ln_y, n, tol, "y");
    ck_assert_int_eq(sg_backward(ctx, y, w), 0);
    expect_near(x->grad, ln_dx, n, tol, "dx");
    expect_near(gain->grad, ln_dgain, LN_D, tol, "dgain");
    expect_near(bias->grad, ln_dbias, LN_D, tol, "dbias");

    sg_tensor *xb = mk(ctx, dt, 3, shape, ln_x);
    sg_set_requires_grad(xb, true);
    sg_tensor *yb = sg_layer_norm(ctx, xb, NULL, NULL, LN_NOB_EPS);
    expect_near(yb, ln_nob_y, n, tol, "y (no gain, bias)");
    ck_assert_int_eq(sg_backward(ctx, yb, w), 0);
    expect_near(xb->grad, ln_nob_dx, n, tol, "dx (no gain, bias)");

    /* the same through a permuted view: x stored as (D, T, B), permuted back to (B, T, D) */
    sg_tensor *xs = sg_tensor_new(ctx, dt, SG_SHAPE(LN_D, LN_T, LN_B));
    for (int b = 0; b < LN_B; b++)
        for (int t = 0; t < LN_T; t++)
            for (int d = 0; d < LN_D; d++)
                sg_set_flat(xs, (d * LN_T + t) * LN_B + b, ln_x[(b * LN_T + t) * LN_D + d]);
    sg_tensor *xp = sg_permute(ctx, xs, (const int[]){2, 1, 0});
    ck_assert(!sg_is_contiguous(xp));
    expect_near(sg_layer_norm(ctx, xp, gain, bias, LN_EPS), ln_y, n, tol, "y (permuted x)");
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- gradient checks -------------------------------------------------------------------- */

/* What the checked function builds from its inputs. */
typedef struct {
    int ninputs; /* 1: x only; 2: x and gain; 3: x, gain, bias; 4: x and bias */
    int xview;   /* 0: as is; 1: permute (D, T, B) -> (B, T, D); 2: slice the last axis 1:-1 */
    int pview;   /* 1: gain and bias are every other element of a (2D,) tensor */
    double eps;
} ln_case;

static sg_tensor *fn_ln(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    const ln_case *c = user;
    sg_tensor *x = in[0], *gain = NULL, *bias = NULL;
    if (c->xview == 1)
        x = sg_permute(ctx, x, (const int[]){2, 1, 0});
    else if (c->xview == 2)
        x = sg_slice(ctx, x, -1, 1, x->shape[x->ndim - 1] - 2);
    if (c->ninputs == 2 || c->ninputs == 3)
        gain = in[1];
    if (c->ninputs == 3)
        bias = in[2];
    if (c->ninputs == 4)
        bias = in[1];
    if (c->pview) { /* (2D,) -> (D, 2) -> column 0: stride 2 */
        int64_t D = gain ? gain->shape[0] / 2 : bias->shape[0] / 2;
        if (gain)
            gain = sg_select(ctx, sg_reshape(ctx, gain, SG_SHAPE(D, 2)), 1, 0);
        if (bias)
            bias = sg_select(ctx, sg_reshape(ctx, bias, SG_SHAPE(D, 2)), 1, 1);
    }
    return sg_layer_norm(ctx, x, gain, bias, c->eps);
}

static sg_tensor *randn(sg_ctx *ctx, sg_dtype dt, int nd, const int64_t *shape) {
    sg_tensor *t = sg_tensor_new(ctx, dt, nd, shape);
    ck_assert_ptr_nonnull(t);
    sg_rng *rng = sg_ctx_rng(ctx);
    for (int64_t i = 0; i < sg_numel(t); i++)
        sg_set_flat(t, i, 1.5 * sg_rng_normal(rng) + 0.25);
    return t;
}

START_TEST(gradcheck_cases) {
    static const struct {
        ln_case c;
        int nd;
        int64_t xs[3];
        const char *what;
    } cases[] = {
        {{3, 0, 0, 1e-5}, 3, {2, 3, 5}, "(2, 3, 5) with gain and bias"},
        {{1, 0, 0, 1e-5}, 3, {2, 3, 5}, "(2, 3, 5) without gain and bias"},
        {{2, 0, 0, 1e-3}, 2, {4, 6}, "(4, 6) gain only"},
        {{4, 0, 0, 0.5}, 2, {4, 6}, "(4, 6) bias only, eps 0.5"},
        {{3, 1, 0, 1e-5}, 3, {5, 3, 2}, "permuted x, gain and bias"},
        {{1, 1, 0, 1e-5}, 3, {5, 3, 2}, "permuted x, no gain and bias"},
        {{3, 2, 0, 1e-5}, 3, {4, 8, 10}, "sliced x (256 elements), gain and bias"},
        {{3, 0, 1, 1e-5}, 2, {3, 4}, "strided gain and bias"},
        {{3, 0, 0, 1e-5}, 1, {7}, "1-D x"},
        {{3, 0, 0, 0}, 2, {3, 4}, "eps 0"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sg_ctx *ctx = sg_ctx_new(0);
        const ln_case *c = &cases[k].c;
        sg_tensor *x = randn(ctx, SG_F64, cases[k].nd, cases[k].xs);
        int64_t D = c->xview == 1 ? cases[k].xs[0] : cases[k].xs[cases[k].nd - 1];
        if (c->xview == 2)
            D -= 2;
        if (c->pview)
            D *= 2;
        sg_tensor *in[3] = {x, randn(ctx, SG_F64, SG_SHAPE(D)), randn(ctx, SG_F64, SG_SHAPE(D))};
        int n = c->ninputs == 4 ? 2 : c->ninputs;
        expect_gradcheck(ctx, fn_ln, (void *)c, n, in, cases[k].what);
        /* only the parameters: x needs no gradient and gets none */
        if (n > 1) {
            sg_tensor *in2[3] = {randn(ctx, SG_F64, cases[k].nd, cases[k].xs), in[1], in[2]};
            sg_gradcheck_opts o = sg_gradcheck_defaults();
            ck_assert_int_eq(sg_gradcheck(ctx, fn_ln, (void *)c, n, in2, &o, NULL), 1);
            ck_assert_ptr_null(in2[0]->grad);
        }
        sg_ctx_free(ctx);
    }
}
END_TEST

/* float32 computes what float64 computes, to float32 precision (statistics in double). */
START_TEST(float32_matches_float64) {
    sg_ctx *ctx = sg_ctx_new(0);
    enum { R = 6, D = 17 };
    double xv[R * D], gv[D], bv[D], wv[R * D];
    sg_rng *rng = sg_ctx_rng(ctx);
    for (int i = 0; i < R * D; i++) {
        xv[i] = (double)(float)(3 * sg_rng_normal(rng) + 100); /* a large mean */
        wv[i] = (double)(float)sg_rng_normal(rng);
    }
    for (int j = 0; j < D; j++) {
        gv[j] = (double)(float)sg_rng_normal(rng);
        bv[j] = (double)(float)sg_rng_normal(rng);
    }
    sg_tensor *y[2], *dx[2], *dg[2], *db[2];
    for (int i = 0; i < 2; i++) {
        sg_dtype dt = DT(i);
        sg_tensor *x = mk(ctx, dt, SG_SHAPE(R, D), xv), *g = mk(ctx, dt, SG_SHAPE(D), gv);
        sg_tensor *b = mk(ctx, dt, SG_SHAPE(D), bv);
        sg_set_requires_grad(x, true);
        sg_set_requires_grad(g, true);
        sg_set_requires_grad(b, true);
        y[i] = sg_layer_norm(ctx, x, g, b, 1e-5);
        ck_assert_int_eq(sg_backward(ctx, y[i], mk(ctx, dt, SG_SHAPE(R, D), wv)), 0);
        ck_assert_int_eq(y[i]->dtype, dt);
        dx[i] = x->grad;
        dg[i] = g->grad;
        db[i] = b->grad;
    }
    double want[R * D];
    for (int k = 0; k < R * D; k++)
        want[k] = sg_get_flat(y[1], k);
    expect_near(y[0], want, R * D, 2e-6, "y float32");
    for (int k = 0; k < R * D; k++)
        want[k] = sg_get_flat(dx[1], k);
    expect_near(dx[0], want, R * D, 1e-5, "dx float32");
    for (int k = 0; k < D; k++)
        want[k] = sg_get_flat(dg[1], k);
    expect_near(dg[0], want, D, 1e-5, "dgain float32");
    for (int k = 0; k < D; k++)
        want[k] = sg_get_flat(db[1], k);
    expect_near(db[0], want, D, 1e-6, "dbias float32");
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- special values --------------------------------------------------------------------- */

/* A row of equal values has variance 0: it normalises to exactly 0, so y = bias, for any eps
 * (eps = 0 included), and the gradients stay finite. Its neighbour row is unaffected. */
START_TEST(constant_rows) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    const double gv[3] = {2, -1, 0.5}, bv[3] = {0.25, -3, 7};
    for (int e = 0; e < 2; e++) {
        double eps = e ? 0 : 1e-5;
        /* 0.1 does not divide evenly: a plain sum / 3 is not exactly 0.1 */
        sg_tensor *x = mk(ctx, dt, SG_SHAPE(2, 3), (const double[]){0.1, 0.1, 0.1, 1, 2, 3});
        sg_tensor *g = mk(ctx, dt, SG_SHAPE(3), gv), *b = mk(ctx, dt, SG_SHAPE(3), bv);
        sg_set_requires_grad(x, true);
        sg_set_requires_grad(g, true);
        sg_set_requires_grad(b, true);
        sg_tensor *y = sg_layer_norm(ctx, x, g, b, eps);
        ck_assert_ptr_nonnull(y);
        for (int j = 0; j < 3; j++)
            ck_assert(sg_get_flat(y, j) == sg_get_flat(b, j)); /* exactly the bias */
        double r = 1 / sqrt(2.0 / 3 + eps);                    /* row 1: var 2/3 */
        double want1[3] = {-r * 2 + 0.25, 0 * -1 - 3, r * 0.5 + 7};
        for (int j = 0; j < 3; j++)
            ck_assert(fabs(sg_get_flat(y, 3 + j) - want1[j]) <= (dt == SG_F32 ? 1e-6 : 1e-14));
        sg_tensor *w = mk(ctx, dt, SG_SHAPE(2, 3), (const double[]){1, -2, 0.5, 1, 1, 1});
        ck_assert_int_eq(sg_backward(ctx, y, w), 0);
        for (int k = 0; k < 6; k++)
            ck_assert(isfinite(sg_get_flat(x->grad, k)));
        /* row 0's xhat is 0: it adds nothing to dgain, its dy to dbias */
        for (int j = 0; j < 3; j++) {
            ck_assert(isfinite(sg_get_flat(g->grad, j)));
            ck_assert(fabs(sg_get_flat(b->grad, j) - (sg_get_flat(w, j) + 1)) <= 1e-6);
        }
        if (eps == 0) /* no scale at all: dx is 0 on the constant row */
            for (int k = 0; k < 3; k++)
                ck_assert(sg_get_flat(x->grad, k) == 0);
    }
    /* all-zero input without gain or bias: all zeros */
    sg_tensor *z = sg_layer_norm(ctx, sg_zeros(ctx, dt, SG_SHAPE(2, 4)), NULL, NULL, 0);
    for (int k = 0; k < 8; k++)
        ck_assert(sg_get_flat(z, k) == 0);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* NaN in a row makes that row NaN and no other; empty tensors give empty results. */
START_TEST(nan_and_empty) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = mk(ctx, dt, SG_SHAPE(2, 2), (const double[]){NAN, 1, 3, 5});
    sg_tensor *y = sg_layer_norm(ctx, x, NULL, NULL, 0);
    ck_assert(isnan(sg_get_flat(y, 0)) && isnan(sg_get_flat(y, 1)));
    ck_assert(sg_get_flat(y, 2) == -1 && sg_get_flat(y, 3) == 1);
    for (int k = 0; k < 2; k++) {
        int64_t shape[2] = {k ? 2 : 0, k ? 0 : 3};
        sg_tensor *e = sg_zeros(ctx, dt, 2, shape);
        sg_tensor *g = sg_ones(ctx, dt, SG_SHAPE(shape[1]));
        sg_set_requires_grad(e, true);
        sg_set_requires_grad(g, true);
        sg_tensor *o = sg_layer_norm(ctx, e, g, NULL, 1e-5);
        ck_assert_ptr_nonnull(o);
        ck_assert_int_eq(o->shape[0], shape[0]);
        ck_assert_int_eq(o->shape[1], shape[1]);
        ck_assert_int_eq(sg_backward(ctx, o, sg_zeros(ctx, dt, 2, shape)), 0);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- errors ----------------------------------------------------------------------------- */

START_TEST(errors) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = sg_ones(ctx, SG_F64, SG_SHAPE(2, 3, 5));
    sg_tensor *g5 = sg_ones(ctx, SG_F64, SG_SHAPE(5)), *g4 = sg_ones(ctx, SG_F64, SG_SHAPE(4));
    ck_assert_ptr_null(sg_layer_norm(ctx, x, NULL, NULL, -1));
    expect_err(ctx, "sg_layer_norm: eps = -1 must be finite and >= 0");
    ck_assert_ptr_null(sg_layer_norm(ctx, x, NULL, NULL, NAN));
    expect_err(ctx, "sg_layer_norm: eps = nan must be finite and >= 0");
    ck_assert_ptr_null(sg_layer_norm(ctx, x, NULL, NULL, INFINITY));
    expect_err(ctx, "sg_layer_norm: eps = inf must be finite and >= 0");
    ck_assert_ptr_null(sg_layer_norm(ctx, x, g4, NULL, 1e-5));
    expect_err(ctx, "sg_layer_norm: gain has shape (4,), expected (5,) for x of shape (2, 3, 5)");
    ck_assert_ptr_null(sg_layer_norm(ctx, x, g5, sg_ones(ctx, SG_F64, SG_SHAPE(1, 5)), 1e-5));
    expect_err(ctx, "sg_layer_norm: bias has shape (1, 5), expected (5,) for x of shape (2, 3, 5)");
    ck_assert_ptr_null(sg_layer_norm(ctx, x, sg_scalar(ctx, SG_F64, 1), NULL, 1e-5));
    expect_err(ctx, "sg_layer_norm: gain has shape (), expected (5,) for x of shape (2, 3, 5)");
    ck_assert_ptr_null(sg_layer_norm(ctx, sg_scalar(ctx, SG_F64, 1), NULL, NULL, 1e-5));
    expect_err(ctx, "sg_layer_norm: x is 0-d; it needs a last axis to normalise over");
    ck_assert_ptr_null(sg_layer_norm(ctx, x, sg_ones(ctx, SG_F32, SG_SHAPE(5)), NULL, 1e-5));
    expect_err(ctx, "sg_layer_norm: dtype mismatch: float64 and float32");
    /* NULL x propagates silently; NULL gain and bias mean none */
    ck_assert_ptr_null(sg_layer_norm(ctx, NULL, g5, g5, 1e-5));
    ck_assert_ptr_null(sg_layer_norm(NULL, x, NULL, NULL, 1e-5));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    /* a stale input */
    sg_tensor *late = sg_ones(ctx, SG_F64, SG_SHAPE(2, 5));
    sg_ctx_reset(ctx);
    ck_assert_ptr_null(sg_layer_norm(ctx, late, NULL, NULL, 1e-5));
    expect_err(ctx, "sg_layer_norm: tensor used after sg_ctx_reset");
    sg_ctx_free(ctx);
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"layer_norm",
         0,
         {{torch_fixture, 2},
          {gradcheck_cases, 1},
          {float32_matches_float64, 1},
          {constant_rows, 2},
          {nan_and_empty, 2},
          {errors, 1}}},
    };
    return CK_RUN("ops_norm", tcases, NULL, NULL);
}
