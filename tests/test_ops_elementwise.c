/* Check tests for autograd/ops_elementwise.c: add, sub, mul, div (NumPy broadcasting), neg,
 * scale, add_scalar, square, sigmoid, tanh, hard_sigmoid, relu, exp, log, abs, sqrt, rsqrt,
 * pow, clamp, softplus, log_sigmoid, sg_activate.
 *
 * Forward values are hand-computed (or libm for the transcendental sweeps); gradients are
 * checked by central differences with sg_gradcheck (contiguous inputs, and views built
 * inside the checked function) and with view_gradcheck below, which perturbs strided LEAF
 * views directly so the strided backward paths are checked independently of the view
 * ops' own backward. Every test that loops over dtypes runs as _i = 0 (float32) and
 * _i = 1 (float64).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"

#include "cksuite.h"
#include "tensortest.h"

#define DT(i) ((i) ? SG_F64 : SG_F32)

/* ---- helpers ---------------------------------------------------------------------------- */

/* |got - want| within a dtype-appropriate tolerance (float32 results are rounded once or
 * twice; float64 results of exact-ish arithmetic must match to the last bits). */
static int close_dt(double got, double want, sg_dtype dt) {
    if (isnan(want))
        return isnan(got);
    if (isinf(want))
        return got == want;
    double tol = dt == SG_F32 ? 2e-6 : 1e-14;
    return fabs(got - want) <= tol * fmax(1.0, fabs(want));
}

static void expect_shape(const sg_tensor *t, int nd, const int64_t *shape) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, nd);
    for (int d = 0; d < nd; d++)
        ck_assert_int_eq(t->shape[d], shape[d]);
}

static void expect_vals(const sg_tensor *t, int64_t n, const double *want) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(sg_numel(t), n);
    for (int64_t i = 0; i < n; i++) {
        double got = sg_get_flat(t, i);
        ck_assert_msg(close_dt(got, want[i], t->dtype), "element %lld: got %.17g, want %.17g",
                      (long long)i, got, want[i]);
    }
}

#define EXPECT(t, ...)                                                                             \
    expect_vals((t), (int64_t)(sizeof((const double[]){__VA_ARGS__}) / sizeof(double)),            \
                (const double[]){__VA_ARGS__})

/* ---- the ops under test, by number (for the gradcheck callbacks) ------------------------ */

enum {
    F_ADD,
    F_SUB,
    F_MUL,
    F_DIV,
    F_NEG,
    F_SCALE,
    F_ADDS,
    F_SQUARE,
    F_SIGMOID,
    F_TANH,
    F_HSIG,
    F_RELU,
    F_EXP,
    F_LOG,
    F_ABS,
    F_SQRT,
    F_RSQRT,
    F_POW,
    F_CLAMP,
    F_SOFTPLUS,
    F_LOGSIG,
    F_COUNT
};
static const char *const f_names[F_COUNT] = {
    "add",    "sub",     "mul",   "div",          "neg",   "scale",    "add_scalar",
    "square", "sigmoid", "tanh",  "hard_sigmoid", "relu",  "exp",      "log",
    "abs",    "sqrt",    "rsqrt", "pow",          "clamp", "softplus", "log_sigmoid"};

static sg_tensor *apply(sg_ctx *ctx, int op, sg_tensor *a, sg_tensor *b) {
    switch (op) {
    case F_ADD: return sg_add(ctx, a, b);
    case F_SUB: return sg_sub(ctx, a, b);
    case F_MUL: return sg_mul(ctx, a, b);
    case F_DIV: return sg_div(ctx, a, b);
    case F_NEG: return sg_neg(ctx, a);
    case F_SCALE: return sg_scale(ctx, a, -1.75);
    case F_ADDS: return sg_add_scalar(ctx, a, 0.625);
    case F_SQUARE: return sg_square(ctx, a);
    case F_SIGMOID: return sg_sigmoid(ctx, a);
    case F_TANH: return sg_tanh(ctx, a);
    case F_HSIG: return sg_hard_sigmoid(ctx, a);
    case F_RELU: return sg_relu(ctx, a);
    case F_EXP: return sg_exp(ctx, a);
    case F_LOG: return sg_log(ctx, a);
    case F_ABS: return sg_abs(ctx, a);
    case F_SQRT: return sg_sqrt(ctx, a);
    case F_RSQRT: return sg_rsqrt(ctx, a);
    case F_POW: return sg_pow(ctx, a, 1.5);
    case F_CLAMP: return sg_clamp(ctx, a, -1, 0.75);
    case F_SOFTPLUS: return sg_softplus(ctx, a);
    case F_LOGSIG: return sg_log_sigmoid(ctx, a);
    }
    return NULL;
}
static int is_binary(int op) { return op <= F_DIV; }

/* View applied to an input inside the checked function. */
enum { V_NONE, V_T, V_SLICE };
typedef struct {
    int op;
    int view[2];
} spec;

static sg_tensor *view_of(sg_ctx *ctx, sg_tensor *x, int v) {
    if (v == V_T)
        return sg_transpose(ctx, x, 0, 1);
    if (v == V_SLICE) /* columns 1 .. size-2 of a 2-D tensor */
        return sg_slice(ctx, x, 1, 1, x->shape[1] - 2);
    return x;
}

static sg_tensor *fn_spec(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    const spec *s = user;
    sg_tensor *a = view_of(ctx, in[0], s->view[0]);
    sg_tensor *b = is_binary(s->op) ? view_of(ctx, in[1], s->view[1]) : NULL;
    return apply(ctx, s->op, a, b);
}

static sg_gradcheck_opts opts_for(sg_dtype dt) {
    sg_gradcheck_opts o = sg_gradcheck_defaults(); /* eps 1e-6, atol 1e-7, rtol 1e-5 */
    if (dt == SG_F32) {
        o.eps = 1e-2;
        o.atol = 1e-3;
        o.rtol = 1e-2;
    }
    return o;
}

/* Values safe for every op's gradient check: away from relu's and abs's kink at 0,
 * hard_sigmoid's at +-2.5, clamp's at -1 and 0.75, and (for log, sqrt, rsqrt, pow's
 * non-integer power and div's denominator) away from 0 and positive. */
static sg_tensor *safe_input(sg_ctx *ctx, sg_dtype dt, int op, int nd, const int64_t *shape,
                             int which) {
    sg_tensor *t = sg_tensor_new(ctx, dt, nd, shape);
    ck_assert_ptr_nonnull(t);
    sg_rng *rng = sg_ctx_rng(ctx);
    for (int64_t i = 0; i < sg_numel(t); i++) {
        double u = sg_rng_uniform(rng), v;
        bool pos = op == F_LOG || op == F_SQRT || op == F_RSQRT || op == F_POW;
        if (pos || (op == F_DIV && which == 1)) /* in [0.5, 2], sign alternating */
            v = (0.5 + 1.5 * u) * (pos || i % 2 == 0 ? 1 : -1);
        else if (op == F_RELU || op == F_HSIG || op == F_ABS) /* |x| in [0.2, 2.3], [2.7, 3.5] */
            v = (i % 3 == 2 ? 2.7 + 0.8 * u : 0.2 + 2.1 * u) * (i % 2 ? -1 : 1);
        else if (op == F_CLAMP) /* [-2, -1.2], [-0.8, 0.55], [0.95, 2] by turns */
            v = i % 3 == 0 ? -2 + 0.8 * u : i % 3 == 1 ? -0.8 + 1.35 * u : 0.95 + 1.05 * u;
        else
            v = 4 * u - 2;
        sg_set_flat(t, i, v);
    }
    return t;
}

static void run_gradcheck(sg_ctx *ctx, spec *s, int n, sg_tensor **in, sg_dtype dt,
                          const char *what) {
    for (int k = 0; k < n; k++)
        sg_set_requires_grad(in[k], true);
    sg_gradcheck_opts o = opts_for(dt);
    sg_gradcheck_report r[2];
    int rc = sg_gradcheck(ctx, fn_spec, s, n, in, &o, r);
    ck_assert_msg(rc != -1, "%s %s: gradcheck error: %s", f_names[s->op], what,
                  sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "?");
    for (int k = 0; k < n; k++)
        ck_assert_msg(r[k].ok,
                      "%s %s %s: input %d: max_abs %g at %lld (analytic %.10g, numeric %.10g)",
                      f_names[s->op], what, sg_dtype_name(dt), k, r[k].max_abs,
                      (long long)r[k].worst_flat, r[k].analytic, r[k].numeric);
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_null(sg_ctx_error(ctx));
}

/* Loss sum(w * fn(in)) with grad mode off, accumulated in double. */
static double view_loss(sg_ctx *ctx, sg_gradcheck_fn fn, void *user, sg_tensor **in,
                        const double *w) {
    bool was = sg_ctx_set_grad_enabled(ctx, false);
    sg_tensor *out = fn(ctx, in, user);
    sg_ctx_set_grad_enabled(ctx, was);
    ck_assert_ptr_nonnull(out);
    double L = 0;
    for (int64_t i = 0; i < sg_numel(out); i++)
        L += w[i] * sg_get_flat(out, i);
    return L;
}

/* Gradient check for inputs that may be strided LEAF views (no view op on the tape): the
 * analytic gradient from sg_backward with upstream w lands in in[k]->grad (contiguous, the
 * view's shape); the numeric one perturbs the view's elements in place via sg_set_flat. */
static void view_gradcheck(sg_ctx *ctx, sg_gradcheck_fn fn, void *user, int n, sg_tensor **in,
                           sg_dtype dt, const char *what) {
    sg_gradcheck_opts o = opts_for(dt);
    for (int k = 0; k < n; k++) {
        sg_set_requires_grad(in[k], true);
        in[k]->grad = NULL;
    }
    sg_tensor *out = fn(ctx, in, user);
    ck_assert_ptr_nonnull(out);
    int64_t m = sg_numel(out);
    double w[64];
    ck_assert_int_le(m, 64);
    sg_tensor *wt = sg_tensor_new(ctx, dt, out->ndim, out->shape);
    for (int64_t i = 0; i < m; i++) {
        w[i] = 0.25 + 0.125 * (double)(i % 7) * (i % 2 ? -1 : 1); /* exact in float32 */
        sg_set_flat(wt, i, w[i]);
    }
    ck_assert_int_eq(sg_backward(ctx, out, wt), 0);
    for (int k = 0; k < n; k++) {
        sg_tensor *x = in[k];
        ck_assert_ptr_nonnull(x->grad);
        for (int64_t i = 0; i < sg_numel(x); i++) {
            double x0 = sg_get_flat(x, i);
            sg_set_flat(x, i, x0 + o.eps);
            double hp = sg_get_flat(x, i) - x0;
            double lp = view_loss(ctx, fn, user, in, w);
            sg_set_flat(x, i, x0 - o.eps);
            double hm = x0 - sg_get_flat(x, i);
            double lm = view_loss(ctx, fn, user, in, w);
            sg_set_flat(x, i, x0);
            double num = (lp - lm) / (hp + hm), ana = sg_get_flat(x->grad, i);
            ck_assert_msg(fabs(ana - num) <= o.atol + o.rtol * fabs(num),
                          "%s %s: input %d element %lld: analytic %.10g numeric %.10g", what,
                          sg_dtype_name(dt), k, (long long)i, ana, num);
        }
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
}

/* ---- forward: binary ops --------------------------------------------------------------- */

static const double A6[6] = {1, 2, 3, 4, 5, 6};
static const double B6[6] = {0.5, -1, 2, 4, -2, 8};

START_TEST(binary_same_shape) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = mk(ctx, dt, SG_SHAPE(2, 3), A6), *b = mk(ctx, dt, SG_SHAPE(2, 3), B6);
    sg_tensor *o = sg_add(ctx, a, b);
    expect_shape(o, SG_SHAPE(2, 3));
    ck_assert_int_eq(o->dtype, dt);
    EXPECT(o, 1.5, 1, 5, 8, 3, 14);
    EXPECT(sg_sub(ctx, a, b), 0.5, 3, 1, 0, 7, -2);
    EXPECT(sg_mul(ctx, a, b), 0.5, -2, 6, 16, -10, 48);
    EXPECT(sg_div(ctx, a, b), 2, -2, 1.5, 1, -2.5, 0.75);
    /* the same tensor on both sides */
    EXPECT(sg_mul(ctx, a, a), 1, 4, 9, 16, 25, 36);
    EXPECT(sg_sub(ctx, b, b), 0, 0, 0, 0, 0, 0);
    /* IEEE division: x/0 is +-inf, 0/0 is NaN */
    sg_tensor *z = mk(ctx, dt, SG_SHAPE(3), (const double[]){1, -1, 0});
    sg_tensor *zero = sg_zeros(ctx, dt, SG_SHAPE(3));
    EXPECT(sg_div(ctx, z, zero), INFINITY, -INFINITY, NAN);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(binary_broadcast) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = mk(ctx, dt, SG_SHAPE(2, 3), A6);
    sg_tensor *row = mk(ctx, dt, SG_SHAPE(3), (const double[]){10, 20, 30});
    sg_tensor *row2 = mk(ctx, dt, SG_SHAPE(1, 3), (const double[]){10, 20, 30});
    sg_tensor *col = mk(ctx, dt, SG_SHAPE(2, 1), (const double[]){1, 2});
    sg_tensor *r3 = mk(ctx, dt, SG_SHAPE(1, 3), (const double[]){3, 4, 5});

    /* (2, 3) + (3,) and the mirror */
    sg_tensor *o = sg_add(ctx, a, row);
    expect_shape(o, SG_SHAPE(2, 3));
    EXPECT(o, 11, 22, 33, 14, 25, 36);
    o = sg_sub(ctx, row, a);
    expect_shape(o, SG_SHAPE(2, 3));
    EXPECT(o, 9, 18, 27, 6, 15, 24);
    /* (2, 3) + (1, 3) */
    o = sg_add(ctx, a, row2);
    expect_shape(o, SG_SHAPE(2, 3));
    EXPECT(o, 11, 22, 33, 14, 25, 36);
    EXPECT(sg_div(ctx, row2, a), 10, 10, 10, 2.5, 4, 5);
    /* (2, 1) * (1, 3) -> (2, 3): an outer product */
    o = sg_mul(ctx, col, r3);
    expect_shape(o, SG_SHAPE(2, 3));
    EXPECT(o, 3, 4, 5, 6, 8, 10);
    o = sg_sub(ctx, r3, col);
    expect_shape(o, SG_SHAPE(2, 3));
    EXPECT(o, 2, 3, 4, 1, 2, 3);
    /* (2, 1) with (2, 3) */
    EXPECT(sg_mul(ctx, a, col), 1, 2, 3, 8, 10, 12);

    /* 0-d scalar with (2, 3), both orders */
    sg_tensor *s = sg_scalar(ctx, dt, 0.5);
    o = sg_add(ctx, s, a);
    expect_shape(o, SG_SHAPE(2, 3));
    EXPECT(o, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5);
    EXPECT(sg_sub(ctx, s, a), -0.5, -1.5, -2.5, -3.5, -4.5, -5.5);
    EXPECT(sg_div(ctx, a, s), 2, 4, 6, 8, 10, 12);
    o = sg_mul(ctx, s, s);
    ck_assert_int_eq(o->ndim, 0);
    EXPECT(o, 0.25);
    /* a one-element (1, 1) tensor broadcasts like a scalar and keeps 2 dimensions */
    o = sg_add(ctx, mk(ctx, dt, SG_SHAPE(1, 1), (const double[]){-1}), row);
    expect_shape(o, SG_SHAPE(1, 3));
    EXPECT(o, 9, 19, 29);

    /* (4, 2, 3) + (2, 3): a repeating block */
    double av[24], bv[6];
    for (int i = 0; i < 24; i++)
        av[i] = i;
    for (int i = 0; i < 6; i++)
        bv[i] = 100 * i;
    sg_tensor *a3 = mk(ctx, dt, SG_SHAPE(4, 2, 3), av), *b2 = mk(ctx, dt, SG_SHAPE(2, 3), bv);
    o = sg_add(ctx, a3, b2);
    expect_shape(o, SG_SHAPE(4, 2, 3));
    for (int i = 0; i < 24; i++)
        ck_assert(close_dt(sg_get_flat(o, i), i + 100 * (i % 6), dt));
    o = sg_sub(ctx, b2, a3);
    for (int i = 0; i < 24; i++)
        ck_assert(close_dt(sg_get_flat(o, i), 100 * (i % 6) - i, dt));
    /* (4, 1, 3) * (2, 1): both stretch, general walk */
    sg_tensor *p = mk(ctx, dt, SG_SHAPE(4, 1, 3), av), *q = mk(ctx, dt, SG_SHAPE(2, 1), bv);
    o = sg_mul(ctx, p, q);
    expect_shape(o, SG_SHAPE(4, 2, 3));
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 3; k++)
                ck_assert(
                    close_dt(sg_get(o, (const int64_t[]){i, j, k}), av[3 * i + k] * bv[j], dt));
    /* empty: (0, 3) + (3,) is (0, 3) */
    o = sg_add(ctx, sg_zeros(ctx, dt, SG_SHAPE(0, 3)), row);
    expect_shape(o, SG_SHAPE(0, 3));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* Inputs that are views: a transpose, a slice, a stride-0 expand. */
START_TEST(binary_strided) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    /* base (3, 2) = [[1, 2], [3, 4], [5, 6]]; its transpose is [[1, 3, 5], [2, 4, 6]] */
    sg_tensor *base = mk(ctx, dt, SG_SHAPE(3, 2), A6);
    sg_tensor *t = sg_transpose(ctx, base, 0, 1);
    ck_assert(!sg_is_contiguous(t));
    sg_tensor *b = mk(ctx, dt, SG_SHAPE(2, 3), B6);
    sg_tensor *o = sg_add(ctx, t, b);
    expect_shape(o, SG_SHAPE(2, 3));
    EXPECT(o, 1.5, 2, 7, 6, 2, 14);
    EXPECT(sg_mul(ctx, b, t), 0.5, -3, 10, 8, -8, 48);
    EXPECT(sg_mul(ctx, t, t), 1, 9, 25, 4, 16, 36);
    /* strided with a row broadcast and with a scalar */
    sg_tensor *row = mk(ctx, dt, SG_SHAPE(3), (const double[]){10, 20, 30});
    EXPECT(sg_sub(ctx, t, row), -9, -17, -25, -8, -16, -24);
    EXPECT(sg_div(ctx, t, sg_scalar(ctx, dt, 2)), 0.5, 1.5, 2.5, 1, 2, 3);
    EXPECT(sg_div(ctx, sg_scalar(ctx, dt, 60), t), 60, 20, 12, 30, 15, 10);

    /* slice: columns 1..2 of (3, 4) arange = [[1, 2], [5, 6], [9, 10]] */
    double av[12];
    for (int i = 0; i < 12; i++)
        av[i] = i;
    sg_tensor *m = mk(ctx, dt, SG_SHAPE(3, 4), av);
    sg_tensor *sl = sg_slice(ctx, m, 1, 1, 2);
    ck_assert(!sg_is_contiguous(sl));
    sg_tensor *r2 = mk(ctx, dt, SG_SHAPE(2), (const double[]){100, 200});
    o = sg_add(ctx, sl, r2);
    expect_shape(o, SG_SHAPE(3, 2));
    EXPECT(o, 101, 202, 105, 206, 109, 210);
    /* slice of a transpose with a (3, 1) column: general walk on both */
    sg_tensor *st = sg_slice(ctx, sg_transpose(ctx, m, 0, 1), 0, 1, 2); /* (2, 3) */
    EXPECT(st, 1, 5, 9, 2, 6, 10);
    EXPECT(sg_mul(ctx, st,
                  sg_transpose(ctx, mk(ctx, dt, SG_SHAPE(3, 1), (const double[]){1, 2, 3}), 0, 1)),
           1, 10, 27, 2, 12, 30);
    /* expanded (stride 0) view: (1, 3) -> (2, 3) */
    sg_tensor *e =
        sg_expand(ctx, mk(ctx, dt, SG_SHAPE(1, 3), (const double[]){1, 2, 3}), SG_SHAPE(2, 3));
    ck_assert_ptr_nonnull(e);
    EXPECT(sg_mul(ctx, e, mk(ctx, dt, SG_SHAPE(2, 3), A6)), 1, 4, 9, 4, 10, 18);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- forward: unary ops --------------------------------------------------------------- */

START_TEST(unary_values) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = mk(ctx, dt, SG_SHAPE(2, 3), (const double[]){-2, -0.5, 0, 0.5, 1, 3});
    sg_tensor *o = sg_neg(ctx, x);
    expect_shape(o, SG_SHAPE(2, 3));
    EXPECT(o, 2, 0.5, 0, -0.5, -1, -3);
    EXPECT(sg_scale(ctx, x, 2.5), -5, -1.25, 0, 1.25, 2.5, 7.5);
    EXPECT(sg_add_scalar(ctx, x, -1), -3, -1.5, -1, -0.5, 0, 2);
    EXPECT(sg_square(ctx, x), 4, 0.25, 0, 0.25, 1, 9);
    EXPECT(sg_relu(ctx, x), 0, 0, 0, 0.5, 1, 3);
    EXPECT(sg_hard_sigmoid(ctx, x), 0.1, 0.4, 0.5, 0.6, 0.7, 1);
    EXPECT(sg_sigmoid(ctx, x), 1 / (1 + exp(2)), 1 / (1 + exp(0.5)), 0.5, 1 / (1 + exp(-0.5)),
           1 / (1 + exp(-1)), 1 / (1 + exp(-3)));
    EXPECT(sg_tanh(ctx, x), tanh(-2), tanh(-0.5), 0, tanh(0.5), tanh(1), tanh(3));
    EXPECT(sg_exp(ctx, x), exp(-2), exp(-0.5), 1, exp(0.5), exp(1), exp(3));
    /* log: ln of positives, -inf at 0, NaN below 0 (as libm) */
    sg_tensor *p = mk(ctx, dt, SG_SHAPE(5), (const double[]){1, exp(1), 0.5, 0, -1});
    EXPECT(sg_log(ctx, p), 0, 1, log(0.5), -INFINITY, NAN);
    /* 0-d */
    o = sg_exp(ctx, sg_scalar(ctx, dt, 1));
    ck_assert_int_eq(o->ndim, 0);
    EXPECT(o, exp(1));
    /* hard_sigmoid at the corners: flat outside [-2.5, 2.5] */
    sg_tensor *h = mk(ctx, dt, SG_SHAPE(6), (const double[]){-3, -2.5, 0, 1, 2.5, 3});
    EXPECT(sg_hard_sigmoid(ctx, h), 0, 0, 0.5, 0.7, 1, 1);
    /* relu passes NaN through (so anomaly mode sees it) */
    o = sg_relu(ctx, mk(ctx, dt, SG_SHAPE(1), (const double[]){NAN}));
    ck_assert(isnan(sg_get_flat(o, 0)));
    /* the op's scalar is saved for backward */
    ck_assert(sg_scale(ctx, x, 2.5)->fparam[0] == 2.5);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(unary_strided) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *base = mk(ctx, dt, SG_SHAPE(3, 2), (const double[]){-1, 2, 0.5, -3, 1.5, 4});
    sg_tensor *t = sg_transpose(ctx, base, 0, 1); /* [[-1, 0.5, 1.5], [2, -3, 4]] */
    sg_tensor *o = sg_square(ctx, t);
    expect_shape(o, SG_SHAPE(2, 3));
    ck_assert(sg_is_contiguous(o));
    EXPECT(o, 1, 0.25, 2.25, 4, 9, 16);
    EXPECT(sg_neg(ctx, t), 1, -0.5, -1.5, -2, 3, -4);
    EXPECT(sg_relu(ctx, t), 0, 0.5, 1.5, 2, 0, 4);
    EXPECT(sg_scale(ctx, t, 2), -2, 1, 3, 4, -6, 8);
    EXPECT(sg_add_scalar(ctx, t, 1), 0, 1.5, 2.5, 3, -2, 5);
    EXPECT(sg_hard_sigmoid(ctx, t), 0.3, 0.6, 0.8, 0.9, 0, 1);
    EXPECT(sg_exp(ctx, t), exp(-1), exp(0.5), exp(1.5), exp(2), exp(-3), exp(4));
    EXPECT(sg_tanh(ctx, t), tanh(-1), tanh(0.5), tanh(1.5), tanh(2), tanh(-3), tanh(4));
    EXPECT(sg_sigmoid(ctx, t), 1 / (1 + exp(1)), 1 / (1 + exp(-0.5)), 1 / (1 + exp(-1.5)),
           1 / (1 + exp(-2)), 1 / (1 + exp(3)), 1 / (1 + exp(-4)));
    /* slice: column 1 of base = [2, -3, 4] */
    sg_tensor *s = sg_slice(ctx, base, 1, 1, 1);
    EXPECT(sg_exp(ctx, s), exp(2), exp(-3), exp(4));
    EXPECT(sg_log(ctx, sg_square(ctx, s)), log(4), log(9), log(16));
    /* the input view is untouched (the gather goes into the output) */
    EXPECT(base, -1, 2, 0.5, -3, 1.5, 4);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* sigmoid, tanh, exp, log against libm on a sweep (SLEEF kernels are 1 ULP for exp, log and
 * tanh, about 2.5 ULP for sigmoid). Strided and contiguous inputs must agree exactly. */
START_TEST(transcendental_sweep) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    enum { N = 401 };
    double xs[N];
    for (int i = 0; i < N; i++)
        xs[i] = -20 + 0.1 * i;
    sg_tensor *x = mk(ctx, dt, SG_SHAPE(N), xs);
    sg_tensor *y[4] = {sg_sigmoid(ctx, x), sg_tanh(ctx, x), sg_exp(ctx, x),
                       sg_log(ctx, sg_add_scalar(ctx, x, 20.5))};
    /* the same values read through a stride-2 view of a (N, 2) tensor */
    sg_tensor *wide = sg_zeros(ctx, dt, SG_SHAPE(N, 2));
    for (int i = 0; i < N; i++)
        sg_set_flat(wide, 2 * i, sg_get_flat(x, i));
    sg_tensor *col = sg_select(ctx, wide, 1, 0);
    ck_assert(!sg_is_contiguous(col));
    sg_tensor *ys[3] = {sg_sigmoid(ctx, col), sg_tanh(ctx, col), sg_exp(ctx, col)};
    double rtol = dt == SG_F32 ? 1e-6 : 4e-15;
    for (int i = 0; i < N; i++) {
        double xv = sg_get_flat(x, i); /* the value the op saw (rounded for float32) */
        double want[4] = {1 / (1 + exp(-xv)), tanh(xv), exp(xv), log(xv + 20.5)};
        if (dt == SG_F32)
            want[3] = log((double)(float)(xv + 20.5));
        for (int k = 0; k < 4; k++) {
            double got = sg_get_flat(y[k], i);
            ck_assert_msg(fabs(got - want[k]) <= rtol * fabs(want[k]) + 1e-300,
                          "op %d at x=%.9g: got %.17g want %.17g", k, xv, got, want[k]);
        }
        for (int k = 0; k < 3; k++)
            ck_assert(sg_get_flat(ys[k], i) == sg_get_flat(y[k], i));
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- forward: abs, sqrt, rsqrt, pow, clamp, softplus, log_sigmoid (issue 13) ----------- */

START_TEST(unary13_values) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    /* abs: -0 and 0 give 0, NaN stays NaN */
    sg_tensor *a = mk(ctx, dt, SG_SHAPE(2, 3), (const double[]){-2, -0.5, -0.0, 0, 0.5, 3});
    sg_tensor *o = sg_abs(ctx, a);
    expect_shape(o, SG_SHAPE(2, 3));
    EXPECT(o, 2, 0.5, 0, 0, 0.5, 3);
    ck_assert(!signbit(sg_get_flat(o, 2)));
    /* sqrt and rsqrt: 0, exact squares, a negative (NaN), +inf, NaN */
    sg_tensor *r = mk(ctx, dt, SG_SHAPE(6), (const double[]){0, 0.25, 4, -1, INFINITY, NAN});
    EXPECT(sg_sqrt(ctx, r), 0, 0.5, 2, NAN, INFINITY, NAN);
    EXPECT(sg_rsqrt(ctx, r), INFINITY, 2, 0.5, NAN, 0, NAN);
    EXPECT(sg_sqrt(ctx, mk(ctx, dt, SG_SHAPE(1), (const double[]){2})), sqrt(2));
    /* pow by a scalar, at 0, at a negative x and at NaN */
    sg_tensor *p = mk(ctx, dt, SG_SHAPE(5), (const double[]){0, -2, 2, 0.5, NAN});
    EXPECT(sg_pow(ctx, p, 2), 0, 4, 4, 0.25, NAN);
    EXPECT(sg_pow(ctx, p, 3), 0, -8, 8, 0.125, NAN);
    EXPECT(sg_pow(ctx, p, 0.5), 0, NAN, sqrt(2), sqrt(0.5), NAN); /* negative^0.5: NaN */
    EXPECT(sg_pow(ctx, p, 1.5), 0, NAN, pow(2, 1.5), pow(0.5, 1.5), NAN);
    EXPECT(sg_pow(ctx, p, -1), INFINITY, -0.5, 0.5, 2, NAN);
    EXPECT(sg_pow(ctx, p, 0), 1, 1, 1, 1, 1); /* C and PyTorch: x^0 = 1, also for NaN */
    EXPECT(sg_pow(ctx, p, 1), 0, -2, 2, 0.5, NAN);
    ck_assert(sg_pow(ctx, p, 1.5)->fparam[0] == 1.5);
    /* clamp: the bounds themselves, one-sided bounds, lo == hi, NaN passes through */
    sg_tensor *c = mk(ctx, dt, SG_SHAPE(7), (const double[]){-2, -1, 0, 0.5, 1, 2, NAN});
    o = sg_clamp(ctx, c, -1, 1);
    EXPECT(o, -1, -1, 0, 0.5, 1, 1, NAN);
    ck_assert(o->fparam[0] == -1 && o->fparam[1] == 1);
    EXPECT(sg_clamp(ctx, c, -INFINITY, 0.5), -2, -1, 0, 0.5, 0.5, 0.5, NAN);
    EXPECT(sg_clamp(ctx, c, 0, INFINITY), 0, 0, 0, 0.5, 1, 2, NAN);
    EXPECT(sg_clamp(ctx, c, 0.5, 0.5), 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, NAN);
    EXPECT(sg_clamp(ctx, c, -INFINITY, INFINITY), -2, -1, 0, 0.5, 1, 2, NAN);
    /* softplus and log_sigmoid against libm's log1p(exp(x)) at moderate x, and NaN */
    sg_tensor *s = mk(ctx, dt, SG_SHAPE(6), (const double[]){-3, -0.5, 0, 0.5, 3, NAN});
    EXPECT(sg_softplus(ctx, s), log1p(exp(-3)), log1p(exp(-0.5)), log(2), log1p(exp(0.5)),
           log1p(exp(3)), NAN);
    EXPECT(sg_log_sigmoid(ctx, s), -log1p(exp(3)), -log1p(exp(0.5)), -log(2), -log1p(exp(-0.5)),
           -log1p(exp(-3)), NAN);
    /* 0-d */
    o = sg_abs(ctx, sg_scalar(ctx, dt, -1.5));
    ck_assert_int_eq(o->ndim, 0);
    EXPECT(o, 1.5);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* The same ops on a transposed input (gathered into the output, the input untouched). */
START_TEST(unary13_strided) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *base = mk(ctx, dt, SG_SHAPE(3, 2), (const double[]){-1, 4, 0.25, -3, 1.5, 9});
    sg_tensor *t = sg_transpose(ctx, base, 0, 1); /* [[-1, 0.25, 1.5], [4, -3, 9]] */
    EXPECT(sg_abs(ctx, t), 1, 0.25, 1.5, 4, 3, 9);
    EXPECT(sg_sqrt(ctx, t), NAN, 0.5, sqrt(1.5), 2, NAN, 3);
    EXPECT(sg_rsqrt(ctx, t), NAN, 2, 1 / sqrt(1.5), 0.5, NAN, 1 / 3.0);
    EXPECT(sg_pow(ctx, t, 2), 1, 0.0625, 2.25, 16, 9, 81);
    EXPECT(sg_clamp(ctx, t, 0, 2), 0, 0.25, 1.5, 2, 0, 2);
    EXPECT(sg_softplus(ctx, t), log1p(exp(-1)), log1p(exp(0.25)), log1p(exp(1.5)), log1p(exp(4)),
           log1p(exp(-3)), 9 + log1p(exp(-9)));
    EXPECT(sg_log_sigmoid(ctx, t), -log1p(exp(1)), -log1p(exp(-0.25)), -log1p(exp(-1.5)),
           -log1p(exp(-4)), -3 - log1p(exp(-3)), -log1p(exp(-9)));
    EXPECT(base, -1, 4, 0.25, -3, 1.5, 9);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* |got - want| <= 1e-6 |want| (so 0 must be exactly 0): PyTorch's values, both dtypes. */
static void expect_rel(const sg_tensor *t, int64_t n, const double *want, const char *what) {
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < n; i++) {
        double got = sg_get_flat(t, i);
        ck_assert_msg(fabs(got - want[i]) <= 1e-6 * fabs(want[i]),
                      "%s element %lld: got %.17g, want %.17g", what, (long long)i, got, want[i]);
    }
}

/* softplus and log_sigmoid at large |x|: PyTorch's values (torch 1.13, F.softplus with beta
 * 1 and threshold 20, F.logsigmoid, float64) within 1e-6 relative, no overflow to inf or NaN
 * (anomaly mode is on, so an inf or NaN would fail the op), gradients likewise. */
START_TEST(unary13_large) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_ctx_set_anomaly(ctx, true);
    const double xs[8] = {-1000, -30, -20, 0, 20, 20.5, 30, 1000};
    const double sp[8] = {0,
                          9.357622968839737e-14,
                          2.061153620314381e-09,
                          0.6931471805599453,
                          20.000000002061153,
                          20.5,
                          30.0,
                          1000.0};
    const double dsp[8] = {
        0, 9.3576229688393e-14, 2.0611536181902033e-09, 0.5, 0.9999999979388464, 1, 1, 1};
    sg_tensor *x = mk(ctx, dt, SG_SHAPE(8), xs);
    sg_set_requires_grad(x, true);
    sg_tensor *y = sg_softplus(ctx, x);
    expect_rel(y, 8, sp, "softplus");
    ck_assert_int_eq(sg_backward(ctx, y, sg_ones(ctx, dt, SG_SHAPE(8))), 0);
    expect_rel(x->grad, 8, dsp, "softplus'");
    /* log_sigmoid(x) = -softplus(-x): PyTorch's F.logsigmoid at -1000, -30, 0, 30, 1000 */
    const double ls[5] = {-1000, -30.000000000000092, -0.6931471805599453, -9.357622968839737e-14,
                          0};
    const double dls[5] = {1, 0.9999999999999064, 0.5, 9.3576229688393e-14, 0};
    sg_tensor *z = mk(ctx, dt, SG_SHAPE(5), (const double[]){-1000, -30, 0, 30, 1000});
    sg_set_requires_grad(z, true);
    y = sg_log_sigmoid(ctx, z);
    expect_rel(y, 5, ls, "log_sigmoid");
    ck_assert_int_eq(sg_backward(ctx, y, sg_ones(ctx, dt, SG_SHAPE(5))), 0);
    expect_rel(z->grad, 5, dls, "log_sigmoid'");
    /* far out: +-1e30 (and +-1e300 in float64), where exp(|x|) is inf */
    double big = dt == SG_F32 ? 1e30 : 1e300;
    sg_tensor *b = mk(ctx, dt, SG_SHAPE(2), (const double[]){-big, big});
    sg_set_requires_grad(b, true);
    expect_rel(sg_softplus(ctx, b), 2, (const double[]){0, sg_get_flat(b, 1)}, "softplus big");
    expect_rel(sg_log_sigmoid(ctx, b), 2, (const double[]){sg_get_flat(b, 0), 0}, "logsig big");
    y = sg_add(ctx, sg_softplus(ctx, b), sg_scale(ctx, sg_log_sigmoid(ctx, b), 2));
    ck_assert_int_eq(sg_backward(ctx, y, sg_ones(ctx, dt, SG_SHAPE(2))), 0);
    expect_rel(b->grad, 2, (const double[]){2, 1}, "big gradients"); /* 0 + 2, 1 + 0 */
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* Gradients at the points where the derivative is undefined or infinite: PyTorch's
 * conventions (checked against torch 1.13). */
START_TEST(unary13_backward_values) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
#define GRAD_OF(call, x, ...)                                                                      \
    do {                                                                                           \
        sg_zero_grad(x);                                                                           \
        sg_tensor *y_ = (call);                                                                    \
        ck_assert_int_eq(sg_backward(ctx, y_, sg_ones(ctx, dt, (x)->ndim, (x)->shape)), 0);        \
        EXPECT((x)->grad, __VA_ARGS__);                                                            \
    } while (0)
    /* abs: sign(x), 0 at +-0 and at NaN */
    sg_tensor *a = mk(ctx, dt, SG_SHAPE(6), (const double[]){-2, -0.0, 0, 3, NAN, -0.5});
    sg_set_requires_grad(a, true);
    GRAD_OF(sg_abs(ctx, a), a, -1, 0, 0, 1, 0, -1);
    /* sqrt: 1 / (2 sqrt x), +inf at 0, NaN below; rsqrt: -x^-1.5 / 2, -inf at 0 */
    sg_tensor *r = mk(ctx, dt, SG_SHAPE(4), (const double[]){0, 4, 0.25, -1});
    sg_set_requires_grad(r, true);
    GRAD_OF(sg_sqrt(ctx, r), r, INFINITY, 0.25, 1, NAN);
    GRAD_OF(sg_rsqrt(ctx, r), r, -INFINITY, -1.0 / 16, -4, NAN);
    /* pow: p x^(p-1); exactly 0 for p = 0 (also at x = 0); at x = 0: 0 for p > 1, 1 for
     * p = 1, +inf for p = 0.5, -inf for p = -1; NaN for a negative x and a non-integer p */
    sg_tensor *p = mk(ctx, dt, SG_SHAPE(4), (const double[]){0, -2, 2, 4});
    sg_set_requires_grad(p, true);
    GRAD_OF(sg_pow(ctx, p, 2), p, 0, -4, 4, 8);
    GRAD_OF(sg_pow(ctx, p, 3), p, 0, 12, 12, 48);
    GRAD_OF(sg_pow(ctx, p, 0), p, 0, 0, 0, 0);
    GRAD_OF(sg_pow(ctx, p, 1), p, 1, 1, 1, 1);
    GRAD_OF(sg_pow(ctx, p, 0.5), p, INFINITY, NAN, 0.5 / sqrt(2), 0.25);
    GRAD_OF(sg_pow(ctx, p, 1.5), p, 0, NAN, 1.5 * sqrt(2), 3);
    GRAD_OF(sg_pow(ctx, p, -1), p, -INFINITY, -0.25, -0.25, -1.0 / 16);
    /* clamp: passes on [lo, hi] with both ends included, 0 outside and at NaN */
    sg_tensor *c = mk(ctx, dt, SG_SHAPE(7), (const double[]){-2, -1, 0, 0.5, 1, 2, NAN});
    sg_set_requires_grad(c, true);
    GRAD_OF(sg_clamp(ctx, c, -1, 1), c, 0, 1, 1, 1, 1, 0, 0);
    GRAD_OF(sg_clamp(ctx, c, -INFINITY, 0.5), c, 1, 1, 1, 1, 0, 0, 0);
    GRAD_OF(sg_clamp(ctx, c, 0, INFINITY), c, 0, 0, 1, 1, 1, 1, 0);
    GRAD_OF(sg_clamp(ctx, c, 0.5, 0.5), c, 0, 0, 0, 1, 0, 0, 0);
    /* a bound that float32 cannot hold is rounded to x's dtype first: 0.1 (rounded) is
     * inside [0.1, 1] */
    sg_tensor *t = mk(ctx, dt, SG_SHAPE(2), (const double[]){0.1, 0.2});
    sg_set_requires_grad(t, true);
    GRAD_OF(sg_clamp(ctx, t, 0.1, 0.2), t, 1, 1);
    /* softplus' = sigmoid(x), log_sigmoid' = sigmoid(-x); NaN gives NaN */
    sg_tensor *s = mk(ctx, dt, SG_SHAPE(4), (const double[]){-1, 0, 2, NAN});
    sg_set_requires_grad(s, true);
    GRAD_OF(sg_softplus(ctx, s), s, 1 / (1 + exp(1)), 0.5, 1 / (1 + exp(-2)), NAN);
    GRAD_OF(sg_log_sigmoid(ctx, s), s, 1 / (1 + exp(-1)), 0.5, 1 / (1 + exp(2)), NAN);
#undef GRAD_OF
    /* each is one tape node of its own op */
    static const sg_op ops[] = {SG_OP_ABS,   SG_OP_SQRT,     SG_OP_RSQRT,      SG_OP_POW,
                                SG_OP_CLAMP, SG_OP_SOFTPLUS, SG_OP_LOG_SIGMOID};
    static const char *const names[] = {"abs",   "sqrt",     "rsqrt",      "pow",
                                        "clamp", "softplus", "log_sigmoid"};
    sg_tensor *ys[] = {sg_abs(ctx, s),        sg_sqrt(ctx, s),        sg_rsqrt(ctx, s),
                       sg_pow(ctx, s, 2),     sg_clamp(ctx, s, 0, 1), sg_softplus(ctx, s),
                       sg_log_sigmoid(ctx, s)};
    for (int k = 0; k < 7; k++) {
        ck_assert_int_eq(ys[k]->op, ops[k]);
        ck_assert_str_eq(sg_op_name(ys[k]->op), names[k]);
        ck_assert_ptr_eq(ys[k]->src[0], s);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(unary13_errors) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = sg_ones(ctx, SG_F32, SG_SHAPE(2, 3));
    ck_assert_ptr_null(sg_clamp(ctx, x, 2, 1));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_clamp: lo = 2 > hi = 1");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_clamp(ctx, x, INFINITY, -INFINITY));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_clamp: lo = inf > hi = -inf");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_clamp(ctx, x, NAN, 1));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_clamp: lo = nan, hi = 1: a bound is NaN");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_clamp(ctx, x, 0, NAN));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_clamp: lo = 0, hi = nan: a bound is NaN");
    sg_ctx_clear_error(ctx);
    /* NULL x propagates silently, even with bad bounds */
    ck_assert_ptr_null(sg_abs(ctx, NULL));
    ck_assert_ptr_null(sg_sqrt(ctx, NULL));
    ck_assert_ptr_null(sg_rsqrt(ctx, NULL));
    ck_assert_ptr_null(sg_pow(ctx, NULL, 2));
    ck_assert_ptr_null(sg_clamp(ctx, NULL, 0, 1));
    ck_assert_ptr_null(sg_clamp(ctx, NULL, 2, 1));
    ck_assert_ptr_null(sg_softplus(ctx, NULL));
    ck_assert_ptr_null(sg_log_sigmoid(ctx, NULL));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    /* anomaly mode names the op */
    sg_ctx_set_anomaly(ctx, true);
    ck_assert_ptr_null(sg_sqrt(ctx, mk(ctx, SG_F64, SG_SHAPE(2), (const double[]){1, -1})));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "anomaly: sqrt produced NaN in forward; inputs (2,) -> output (2,)");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_pow(ctx, mk(ctx, SG_F64, SG_SHAPE(1), (const double[]){0}), -1));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "anomaly: pow produced Inf in forward; inputs (1,) -> output (1,)");
    sg_ctx_clear_error(ctx);
    sg_ctx_set_anomaly(ctx, false);
    /* a stale input */
    sg_tensor *late = sg_ones(ctx, SG_F32, SG_SHAPE(2, 3));
    sg_ctx_reset(ctx);
    ck_assert_ptr_null(sg_clamp(ctx, late, 0, 1));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_clamp: tensor used after sg_ctx_reset");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_softplus(ctx, late));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_softplus: tensor used after sg_ctx_reset");
    sg_ctx_free(ctx);
}
END_TEST

/* ---- activations by name -------------------------------------------------------------- */

START_TEST(activations) {
    sg_ctx *ctx = sg_ctx_new(0);
    static const char *const names[] = {"tanh", "sigmoid", "hard_sigmoid", "relu", "linear"};
    static const sg_activation acts[] = {SG_ACT_TANH, SG_ACT_SIGMOID, SG_ACT_HARD_SIGMOID,
                                         SG_ACT_RELU, SG_ACT_LINEAR};
    for (int k = 0; k < 5; k++) {
        ck_assert_str_eq(sg_activation_name(acts[k]), names[k]);
        ck_assert_int_eq(sg_activation_from_name(names[k]), (int)acts[k]);
    }
    ck_assert_int_eq(sg_activation_from_name("softmax"), -1);
    ck_assert_int_eq(sg_activation_from_name("Tanh"), -1);
    ck_assert_int_eq(sg_activation_from_name(""), -1);
    ck_assert_int_eq(sg_activation_from_name(NULL), -1);
    ck_assert_ptr_null(sg_activation_name((sg_activation)99));

    sg_tensor *x = mk(ctx, SG_F64, SG_SHAPE(4), (const double[]){-3, -1, 0.5, 2});
    sg_set_requires_grad(x, true);
    EXPECT(sg_activate(ctx, x, SG_ACT_TANH), tanh(-3), tanh(-1), tanh(0.5), tanh(2));
    EXPECT(sg_activate(ctx, x, SG_ACT_SIGMOID), 1 / (1 + exp(3)), 1 / (1 + exp(1)),
           1 / (1 + exp(-0.5)), 1 / (1 + exp(-2)));
    EXPECT(sg_activate(ctx, x, SG_ACT_HARD_SIGMOID), 0, 0.3, 0.6, 0.9);
    EXPECT(sg_activate(ctx, x, SG_ACT_RELU), 0, 0, 0.5, 2);
    ck_assert_int_eq(sg_activate(ctx, x, SG_ACT_RELU)->op, SG_OP_RELU);
    ck_assert_int_eq(sg_activate(ctx, x, SG_ACT_HARD_SIGMOID)->op, SG_OP_HARD_SIGMOID);
    /* linear is x itself: no copy, no tape node */
    int64_t before = sg_tape_size(ctx);
    ck_assert_ptr_eq(sg_activate(ctx, x, SG_ACT_LINEAR), x);
    ck_assert_int_eq(sg_tape_size(ctx), before);
    ck_assert_ptr_null(sg_activate(ctx, NULL, SG_ACT_LINEAR));
    ck_assert_ptr_null(sg_activate(ctx, NULL, SG_ACT_TANH));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    /* unknown activation */
    ck_assert_ptr_null(sg_activate(ctx, x, (sg_activation)99));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_activate: unknown activation 99");
    sg_ctx_free(ctx);
}
END_TEST

/* ---- the tape --------------------------------------------------------------------------- */

START_TEST(recording) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = mk(ctx, SG_F32, SG_SHAPE(2, 3), A6), *b = mk(ctx, SG_F32, SG_SHAPE(3), A6);
    /* nothing requires grad: leaves, no tape */
    sg_tensor *o = sg_mul(ctx, a, b);
    ck_assert_int_eq(o->op, SG_OP_NONE);
    ck_assert_int_eq(sg_tape_size(ctx), 0);
    sg_set_requires_grad(b, true);
    o = sg_mul(ctx, a, b);
    ck_assert_int_eq(o->op, SG_OP_MUL);
    ck_assert_int_eq(o->nsrc, 2);
    ck_assert_ptr_eq(o->src[0], a);
    ck_assert_ptr_eq(o->src[1], b);
    ck_assert(o->flags & SG_FLAG_REQUIRES_GRAD);
    sg_tensor *u = sg_scale(ctx, o, 3);
    ck_assert_int_eq(u->op, SG_OP_SCALE);
    ck_assert(u->fparam[0] == 3);
    ck_assert_int_eq(sg_tape_size(ctx), 2);
    static const sg_op ops[] = {SG_OP_ADD,        SG_OP_SUB,    SG_OP_DIV,     SG_OP_NEG,
                                SG_OP_ADD_SCALAR, SG_OP_SQUARE, SG_OP_SIGMOID, SG_OP_TANH,
                                SG_OP_EXP,        SG_OP_LOG};
    sg_tensor *r[] = {sg_add(ctx, a, b),  sg_sub(ctx, a, b),        sg_div(ctx, a, b),
                      sg_neg(ctx, b),     sg_add_scalar(ctx, b, 1), sg_square(ctx, b),
                      sg_sigmoid(ctx, b), sg_tanh(ctx, b),          sg_exp(ctx, b),
                      sg_log(ctx, b)};
    for (int k = 0; k < 10; k++)
        ck_assert_int_eq(r[k]->op, ops[k]);
    /* grad mode off: computed, not recorded */
    int64_t n = sg_tape_size(ctx);
    sg_ctx_set_grad_enabled(ctx, false);
    o = sg_add(ctx, a, b);
    ck_assert_int_eq(o->op, SG_OP_NONE);
    ck_assert(!(o->flags & SG_FLAG_REQUIRES_GRAD));
    EXPECT(o, 2, 4, 6, 5, 7, 9);
    ck_assert_int_eq(sg_tape_size(ctx), n);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* Backward with an explicit upstream gradient, values by hand. */
START_TEST(backward_values) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = mk(ctx, dt, SG_SHAPE(2, 3), A6);
    sg_tensor *b = mk(ctx, dt, SG_SHAPE(3), (const double[]){2, -1, 0.5});
    sg_set_requires_grad(a, true);
    sg_set_requires_grad(b, true);
    sg_tensor *g = mk(ctx, dt, SG_SHAPE(2, 3), (const double[]){1, 2, 3, -1, 0.5, 2});
    /* out = a * b: da = g * b, db = sum over rows of g * a */
    sg_tensor *o = sg_mul(ctx, a, b);
    ck_assert_int_eq(sg_backward(ctx, o, g), 0);
    EXPECT(a->grad, 2, -2, 1.5, -2, -0.5, 1);
    EXPECT(b->grad, 1 - 4, 4 + 2.5, 9 + 12);
    /* gradients accumulate: a second backward through a new graph adds */
    o = sg_sub(ctx, a, b);
    ck_assert_int_eq(sg_backward(ctx, o, g), 0);
    EXPECT(a->grad, 3, 0, 4.5, -3, 0, 3);
    EXPECT(b->grad, -3 - 0, 6.5 - 2.5, 21 - 5);

    /* only inputs that require grad get one */
    sg_tensor *c = mk(ctx, dt, SG_SHAPE(2, 1), (const double[]){4, -2});
    o = sg_div(ctx, c, b); /* (2, 3): c / b */
    EXPECT(o, 2, -4, 8, -1, 2, -4);
    ck_assert_int_eq(sg_backward(ctx, o, g), 0);
    ck_assert_ptr_null(c->grad);
    /* db += -g * c / b^2 summed over rows */
    EXPECT(b->grad, -3 - (1 * 4 + -1 * -2) / 4.0, 4 - (2 * 4 + 0.5 * -2) / 1.0,
           16 - (3 * 4 + 2 * -2) / 0.25);

    /* x * x: one buffer gets both contributions, 2 x g */
    sg_tensor *x = mk(ctx, dt, SG_SHAPE(3), (const double[]){1, -2, 3});
    sg_set_requires_grad(x, true);
    o = sg_mul(ctx, x, x);
    ck_assert_int_eq(sg_backward(ctx, o, mk(ctx, dt, SG_SHAPE(3), (const double[]){1, 1, 0.5})), 0);
    EXPECT(x->grad, 2, -4, 3);

    /* scalar broadcast: s * v, ds = sum(g * v) */
    sg_tensor *s = sg_scalar(ctx, dt, 3);
    sg_set_requires_grad(s, true);
    o = sg_mul(ctx, s, a);
    ck_assert_int_eq(sg_backward(ctx, o, g), 0);
    EXPECT(s->grad, 1 + 4 + 9 - 4 + 2.5 + 12);
    ck_assert_int_eq(s->grad->ndim, 0);

    /* unary chain, seeded with 1 on a one-element output: d/dx exp(sigmoid(x)^2) */
    sg_tensor *z = sg_scalar(ctx, dt, 0.3);
    sg_set_requires_grad(z, true);
    o = sg_exp(ctx, sg_square(ctx, sg_sigmoid(ctx, z)));
    ck_assert_int_eq(sg_backward(ctx, o, NULL), 0);
    double sg = 1 / (1 + exp(-0.3));
    double want = exp(sg * sg) * 2 * sg * sg * (1 - sg);
    ck_assert(fabs(sg_get_flat(z->grad, 0) - want) <= (dt == SG_F32 ? 1e-6 : 1e-15));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* Gradients of unary ops at hand-picked points, including the kinks' conventions. */
START_TEST(backward_unary_values) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = mk(ctx, dt, SG_SHAPE(7), (const double[]){-3, -2.5, -1, 0, 1, 2.5, 3});
    sg_set_requires_grad(x, true);
    sg_tensor *g = mk(ctx, dt, SG_SHAPE(7), (const double[]){1, 1, 1, 1, 1, 1, 2});
    ck_assert_int_eq(sg_backward(ctx, sg_hard_sigmoid(ctx, x), g), 0);
    EXPECT(x->grad, 0, 0, 0.2, 0.2, 0.2, 0, 0);
    sg_zero_grad(x);
    ck_assert_int_eq(sg_backward(ctx, sg_relu(ctx, x), g), 0);
    EXPECT(x->grad, 0, 0, 0, 0, 1, 1, 2); /* 0 at x == 0, as PyTorch */
    sg_zero_grad(x);
    ck_assert_int_eq(sg_backward(ctx, sg_square(ctx, x), g), 0);
    EXPECT(x->grad, -6, -5, -2, 0, 2, 5, 12);
    sg_zero_grad(x);
    ck_assert_int_eq(sg_backward(ctx, sg_neg(ctx, x), g), 0);
    EXPECT(x->grad, -1, -1, -1, -1, -1, -1, -2);
    sg_zero_grad(x);
    ck_assert_int_eq(sg_backward(ctx, sg_scale(ctx, x, -0.5), g), 0);
    EXPECT(x->grad, -0.5, -0.5, -0.5, -0.5, -0.5, -0.5, -1);
    sg_zero_grad(x);
    ck_assert_int_eq(sg_backward(ctx, sg_add_scalar(ctx, x, 7), g), 0);
    EXPECT(x->grad, 1, 1, 1, 1, 1, 1, 2);
    sg_zero_grad(x);
    ck_assert_int_eq(sg_backward(ctx, sg_tanh(ctx, x), g), 0);
    double t1 = tanh(1), t3 = tanh(3), t25 = tanh(2.5);
    EXPECT(x->grad, 1 - t3 * t3, 1 - t25 * t25, 1 - t1 * t1, 1, 1 - t1 * t1, 1 - t25 * t25,
           2 * (1 - t3 * t3));
    sg_tensor *p = mk(ctx, dt, SG_SHAPE(3), (const double[]){0.5, 2, 4});
    sg_set_requires_grad(p, true);
    ck_assert_int_eq(
        sg_backward(ctx, sg_log(ctx, p), mk(ctx, dt, SG_SHAPE(3), (const double[]){1, 1, 2})), 0);
    EXPECT(p->grad, 2, 0.5, 0.5);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* A parameter's persistent gradient: bias (1, 4) over a (2, 4) batch sums the rows. */
START_TEST(backward_param) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *bias = sg_param_new(ctx, dt, SG_SHAPE(1, 4), "bias");
    sg_tensor *x = mk(ctx, dt, SG_SHAPE(2, 4), (const double[]){1, 2, 3, 4, 5, 6, 7, 8});
    sg_tensor *g = mk(ctx, dt, SG_SHAPE(2, 4), (const double[]){1, 2, 3, 4, -1, -1, 0.5, 0});
    for (int step = 1; step <= 2; step++) {
        sg_tensor *o = sg_add(ctx, x, bias);
        ck_assert_int_eq(sg_backward(ctx, o, g), 0);
        EXPECT(bias->grad, 0 * step, 1 * step, 3.5 * step, 4 * step);
        sg_ctx_reset(ctx); /* the parameter's grad survives and keeps accumulating */
        x = mk(ctx, dt, SG_SHAPE(2, 4), (const double[]){1, 2, 3, 4, 5, 6, 7, 8});
        g = mk(ctx, dt, SG_SHAPE(2, 4), (const double[]){1, 2, 3, 4, -1, -1, 0.5, 0});
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- gradient checks -------------------------------------------------------------------- */

/* Every binary op on every broadcast pattern, both inputs requiring grad. */
START_TEST(gradcheck_binary) {
    sg_dtype dt = DT(_i);
    static const struct {
        int na, nb;
        int64_t sa[3], sb[3];
    } pats[] = {
        {2, 2, {2, 3}, {2, 3}},       {2, 1, {2, 3}, {3}},       {1, 2, {3}, {2, 3}},
        {2, 2, {2, 3}, {1, 3}},       {2, 2, {1, 3}, {2, 3}},    {2, 2, {2, 1}, {1, 3}},
        {2, 2, {2, 3}, {2, 1}},       {0, 2, {0}, {2, 3}},       {2, 0, {2, 3}, {0}},
        {3, 2, {4, 2, 3}, {2, 3}},    {2, 3, {2, 3}, {4, 2, 3}}, {3, 1, {2, 3, 1}, {4}},
        {3, 3, {2, 1, 3}, {1, 2, 1}}, {0, 0, {0}, {0}},
    };
    for (int op = F_ADD; op <= F_DIV; op++)
        for (size_t p = 0; p < sizeof pats / sizeof pats[0]; p++) {
            sg_ctx *ctx = sg_ctx_new(0);
            spec s = {op, {V_NONE, V_NONE}};
            sg_tensor *in[2] = {safe_input(ctx, dt, op, pats[p].na, pats[p].sa, 0),
                                safe_input(ctx, dt, op, pats[p].nb, pats[p].sb, 1)};
            char what[64], s1[32], s2[32];
            snprintf(what, sizeof what, "%s and %s",
                     sg_shape_str(pats[p].na, pats[p].sa, s1, sizeof s1),
                     sg_shape_str(pats[p].nb, pats[p].sb, s2, sizeof s2));
            run_gradcheck(ctx, &s, 2, in, dt, what);
            /* one side only: the other gets no gradient */
            sg_tensor *c[2] = {safe_input(ctx, dt, op, pats[p].na, pats[p].sa, 0),
                               safe_input(ctx, dt, op, pats[p].nb, pats[p].sb, 1)};
            sg_set_requires_grad(c[1], true);
            sg_gradcheck_opts o = opts_for(dt);
            ck_assert_int_eq(sg_gradcheck(ctx, fn_spec, &s, 2, c, &o, NULL), 1);
            ck_assert_ptr_null(c[0]->grad);
            sg_ctx_free(ctx);
        }
}
END_TEST

START_TEST(gradcheck_unary) {
    sg_dtype dt = DT(_i);
    for (int op = F_NEG; op < F_COUNT; op++) {
        sg_ctx *ctx = sg_ctx_new(0);
        spec s = {op, {V_NONE, V_NONE}};
        sg_tensor *in[1] = {safe_input(ctx, dt, op, SG_SHAPE(3, 4), 0)};
        run_gradcheck(ctx, &s, 1, in, dt, "(3, 4)");
        sg_tensor *z[1] = {safe_input(ctx, dt, op, 0, NULL, 0)};
        run_gradcheck(ctx, &s, 1, z, dt, "0-d");
        sg_ctx_free(ctx);
    }
}
END_TEST

/* Strided inputs, as strided LEAF views (no view op involved): transposes and slices. */
START_TEST(gradcheck_strided_leaves) {
    sg_dtype dt = DT(_i);
    for (int op = F_ADD; op < F_COUNT; op++) {
        sg_ctx *ctx = sg_ctx_new(0);
        spec s = {op, {V_NONE, V_NONE}};
        /* a: transpose of a (3, 2) -> (2, 3); b: columns 1..3 of a (2, 5) -> (2, 3) */
        sg_tensor *ba = safe_input(ctx, dt, op, SG_SHAPE(3, 2), 0);
        sg_tensor *bb = safe_input(ctx, dt, op, SG_SHAPE(2, 5), 1);
        sg_tensor *in[2] = {sg_transpose(ctx, ba, 0, 1), sg_slice(ctx, bb, 1, 1, 3)};
        ck_assert(!sg_is_contiguous(in[0]) && !sg_is_contiguous(in[1]));
        view_gradcheck(ctx, fn_spec, &s, is_binary(op) ? 2 : 1, in, dt, f_names[op]);
        if (is_binary(op)) {
            /* strided with broadcasting: (2, 3) transpose with a (3,) slice of a (6,) */
            sg_tensor *b6 = safe_input(ctx, dt, op, SG_SHAPE(6), 1);
            sg_tensor *in2[2] = {
                sg_transpose(ctx, safe_input(ctx, dt, op, SG_SHAPE(3, 2), 0), 0, 1),
                sg_slice(ctx, b6, 0, 2, 3)};
            view_gradcheck(ctx, fn_spec, &s, 2, in2, dt, f_names[op]);
            /* a transposed (2, 3) with a strided (2, 1) column: (5, 2)[0:2, 0:1] of bb^T */
            sg_tensor *col = sg_slice(ctx, sg_transpose(ctx, bb, 0, 1), 1, 0, 1);
            sg_tensor *in3[2] = {sg_transpose(ctx, ba, 0, 1), sg_slice(ctx, col, 0, 0, 2)};
            view_gradcheck(ctx, fn_spec, &s, 2, in3, dt, f_names[op]);
        }
        sg_ctx_free(ctx);
    }
}
END_TEST

/* Views built inside the checked function: transpose and slice are on the tape, so this also
 * exercises their backward together with the elementwise ops. */
START_TEST(gradcheck_through_views) {
    sg_dtype dt = DT(_i);
    for (int op = F_ADD; op < F_COUNT; op++) {
        sg_ctx *ctx = sg_ctx_new(0);
        if (is_binary(op)) {
            spec s = {op, {V_T, V_SLICE}}; /* (3, 2)^T with (2, 5)[:, 1:4] */
            sg_tensor *in[2] = {safe_input(ctx, dt, op, SG_SHAPE(3, 2), 0),
                                safe_input(ctx, dt, op, SG_SHAPE(2, 5), 1)};
            run_gradcheck(ctx, &s, 2, in, dt, "transpose, slice");
            spec s2 = {op, {V_SLICE, V_NONE}}; /* (4, 5)[:, 1:4] with (3,) */
            sg_tensor *in2[2] = {safe_input(ctx, dt, op, SG_SHAPE(4, 5), 0),
                                 safe_input(ctx, dt, op, SG_SHAPE(3), 1)};
            run_gradcheck(ctx, &s2, 2, in2, dt, "slice with a row");
        } else {
            spec s = {op, {V_T, V_NONE}};
            sg_tensor *in[1] = {safe_input(ctx, dt, op, SG_SHAPE(3, 4), 0)};
            run_gradcheck(ctx, &s, 1, in, dt, "transpose");
            spec s2 = {op, {V_SLICE, V_NONE}};
            run_gradcheck(ctx, &s2, 1, in, dt, "slice");
        }
        sg_ctx_free(ctx);
    }
}
END_TEST

/* One input used several times in one expression. */
static sg_tensor *f_reuse(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    sg_tensor *x = in[0];
    switch (*(const int *)user) {
    case 0: return sg_add(ctx, sg_mul(ctx, x, x), x); /* x*x + x: x three times */
    case 1: return sg_div(ctx, sg_sub(ctx, x, sg_square(ctx, x)), sg_add_scalar(ctx, x, 3));
    case 2: /* an LSTM-style cell: sigmoid(x) * tanh(x) + exp(-x) * x */
        return sg_add(ctx, sg_mul(ctx, sg_sigmoid(ctx, x), sg_tanh(ctx, x)),
                      sg_mul(ctx, sg_exp(ctx, sg_neg(ctx, x)), x));
    case 3: /* x * (x + 0.5 x) */ return sg_mul(ctx, x, sg_add(ctx, x, sg_scale(ctx, x, 0.5)));
    default: /* two inputs, each used twice, with broadcasting */
        return sg_mul(ctx, sg_add(ctx, in[0], in[1]), sg_sub(ctx, in[1], sg_log(ctx, in[0])));
    }
}

START_TEST(gradcheck_reuse) {
    sg_dtype dt = DT(_i);
    for (int k = 0; k < 5; k++) {
        sg_ctx *ctx = sg_ctx_new(0);
        sg_tensor *in[2] = {safe_input(ctx, dt, F_LOG, SG_SHAPE(2, 3), 0),
                            safe_input(ctx, dt, F_ADD, SG_SHAPE(3), 1)};
        int n = k == 4 ? 2 : 1;
        for (int i = 0; i < n; i++)
            sg_set_requires_grad(in[i], true);
        sg_gradcheck_opts o = opts_for(dt);
        sg_gradcheck_report r[2];
        int rc = sg_gradcheck(ctx, f_reuse, &k, n, in, &o, r);
        for (int i = 0; i < n; i++)
            ck_assert_msg(r[i].ok, "case %d input %d: analytic %.10g numeric %.10g", k, i,
                          r[i].analytic, r[i].numeric);
        ck_assert_int_eq(rc, 1);
        /* the same through strided leaves */
        sg_tensor *v[2] = {sg_transpose(ctx, safe_input(ctx, dt, F_LOG, SG_SHAPE(3, 2), 0), 0, 1),
                           sg_slice(ctx, safe_input(ctx, dt, F_ADD, SG_SHAPE(5), 1), 0, 1, 3)};
        view_gradcheck(ctx, f_reuse, &k, n, v, dt, "reuse");
        sg_ctx_free(ctx);
    }
}
END_TEST

/* x * x + x by hand: d/dx = (2x + 1) g. */
START_TEST(reuse_values) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = mk(ctx, dt, SG_SHAPE(3), (const double[]){1, -2, 0.5});
    sg_set_requires_grad(x, true);
    sg_tensor *o = sg_add(ctx, sg_mul(ctx, x, x), x);
    EXPECT(o, 2, 2, 0.75);
    ck_assert_int_eq(sg_backward(ctx, o, mk(ctx, dt, SG_SHAPE(3), (const double[]){1, 2, -1})), 0);
    EXPECT(x->grad, 3, -6, -2);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- errors ----------------------------------------------------------------------------- */

START_TEST(errors) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = sg_ones(ctx, SG_F32, SG_SHAPE(2, 3));
    sg_tensor *b = sg_ones(ctx, SG_F32, SG_SHAPE(4));
    ck_assert_ptr_null(sg_mul(ctx, a, b));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_mul: shapes (2, 3) and (4,) do not broadcast");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(
        sg_add(ctx, sg_ones(ctx, SG_F32, SG_SHAPE(2, 3, 4)), sg_ones(ctx, SG_F32, SG_SHAPE(2, 1))));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_add: shapes (2, 3, 4) and (2, 1) do not broadcast");
    sg_ctx_clear_error(ctx);
    /* 0-d with (2, 0) broadcasts: an empty result */
    sg_tensor *e = sg_div(ctx, sg_scalar(ctx, SG_F32, 1), sg_ones(ctx, SG_F32, SG_SHAPE(2, 0)));
    expect_shape(e, SG_SHAPE(2, 0));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    ck_assert_ptr_null(
        sg_sub(ctx, sg_ones(ctx, SG_F32, SG_SHAPE(2, 0)), sg_ones(ctx, SG_F32, SG_SHAPE(3))));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_sub: shapes (2, 0) and (3,) do not broadcast");
    sg_ctx_clear_error(ctx);

    /* mixed dtypes */
    sg_tensor *d = sg_ones(ctx, SG_F64, SG_SHAPE(2, 3));
    ck_assert_ptr_null(sg_add(ctx, a, d));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_add: dtype mismatch: float32 and float64");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_div(ctx, d, a));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_div: dtype mismatch: float64 and float32");
    sg_ctx_clear_error(ctx);

    /* NULL inputs propagate silently */
    ck_assert_ptr_null(sg_add(ctx, NULL, a));
    ck_assert_ptr_null(sg_mul(ctx, a, NULL));
    ck_assert_ptr_null(sg_sub(ctx, NULL, NULL));
    ck_assert_ptr_null(sg_div(ctx, NULL, a));
    ck_assert_ptr_null(sg_neg(ctx, NULL));
    ck_assert_ptr_null(sg_scale(ctx, NULL, 2));
    ck_assert_ptr_null(sg_add_scalar(ctx, NULL, 2));
    ck_assert_ptr_null(sg_square(ctx, NULL));
    ck_assert_ptr_null(sg_sigmoid(ctx, NULL));
    ck_assert_ptr_null(sg_tanh(ctx, NULL));
    ck_assert_ptr_null(sg_hard_sigmoid(ctx, NULL));
    ck_assert_ptr_null(sg_relu(ctx, NULL));
    ck_assert_ptr_null(sg_exp(ctx, NULL));
    ck_assert_ptr_null(sg_log(ctx, NULL));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    /* a chain through a failed op stays NULL with the first error */
    ck_assert_ptr_null(sg_exp(ctx, sg_tanh(ctx, sg_mul(ctx, a, b))));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_mul: shapes (2, 3) and (4,) do not broadcast");
    sg_ctx_clear_error(ctx);
    /* NULL context */
    ck_assert_ptr_null(sg_add(NULL, a, a));
    ck_assert_ptr_null(sg_exp(NULL, a));

    /* stale tensors after a reset. `late` sits far into the arena, so the few allocations
     * after the reset cannot land on its header and make it look live again. */
    sg_tensor *late = sg_ones(ctx, SG_F32, SG_SHAPE(2, 3));
    a = late;
    sg_ctx_reset(ctx);
    ck_assert_ptr_null(sg_exp(ctx, a));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_exp: tensor used after sg_ctx_reset");
    sg_ctx_clear_error(ctx);
    sg_tensor *fresh = sg_ones(ctx, SG_F32, SG_SHAPE(2, 3));
    ck_assert_ptr_null(sg_add(ctx, fresh, a));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_add: tensor used after sg_ctx_reset");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_activate(ctx, a, SG_ACT_LINEAR));
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "tensor used after sg_ctx_reset"));
    sg_ctx_free(ctx);
}
END_TEST

/* Anomaly mode names the op: log of a negative number. */
START_TEST(anomaly) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_ctx_set_anomaly(ctx, true);
    sg_tensor *x = mk(ctx, SG_F64, SG_SHAPE(2, 3), (const double[]){1, 2, -3, 4, 5, 6});
    ck_assert_ptr_null(sg_log(ctx, x)); /* the op fails (issue 20, item 11) */
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "anomaly: log produced NaN in forward; inputs (2, 3) -> output (2, 3)");
    sg_ctx_clear_error(ctx);
    /* backward: d/dx log(x) at 0 is inf */
    sg_tensor *z = mk(ctx, SG_F64, SG_SHAPE(2), (const double[]){0, 1});
    sg_set_requires_grad(z, true);
    sg_ctx_set_anomaly(ctx, false);
    sg_tensor *o = sg_log(ctx, z);
    sg_ctx_set_anomaly(ctx, true);
    ck_assert_int_eq(sg_backward(ctx, o, sg_ones(ctx, SG_F64, SG_SHAPE(2))), -1);
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "anomaly: log produced Inf in backward"));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- lerp: a + w * (b - a) -------------------------------------------------------------- */

/* Values and gradients, with broadcasting: a (2, 3), b (3,), w (2, 1); torch.lerp gives the
 * same (float64: o, a.grad, b.grad, w.grad as below). */
START_TEST(lerp_values) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = mk(ctx, dt, SG_SHAPE(2, 3), A6);
    sg_tensor *b = mk(ctx, dt, SG_SHAPE(3), (const double[]){3, -1, 0.5});
    sg_tensor *w = mk(ctx, dt, SG_SHAPE(2, 1), (const double[]){0.5, -2});
    sg_tensor *in[3] = {a, b, w};
    for (int k = 0; k < 3; k++)
        sg_set_requires_grad(in[k], true);
    sg_tensor *o = sg_lerp(ctx, a, b, w);
    expect_shape(o, SG_SHAPE(2, 3));
    EXPECT(o, 2, 0.5, 1.75, 6, 17, 17);
    ck_assert_int_eq(o->op, SG_OP_LERP);
    sg_tensor *g = mk(ctx, dt, SG_SHAPE(2, 3), (const double[]){1, 2, 3, -1, 0.5, 2});
    ck_assert_int_eq(sg_backward(ctx, o, g), 0);
    EXPECT(a->grad, 0.5, 1, 1.5, -3, 1.5, 6); /* (1 - w) g */
    EXPECT(b->grad, 2.5, 0, -2.5);            /* w g, summed over rows */
    EXPECT(w->grad, -11.5, -13);              /* (b - a) g, summed over columns */
    /* w = 0 gives a, w = 1 gives b; strided operands (a transposed, w a column slice) */
    sg_tensor *at = sg_transpose(ctx, mk(ctx, dt, SG_SHAPE(2, 2), (const double[]){1, 2, 3, 4}), 0,
                                 1); /* [[1, 3], [2, 4]] */
    sg_tensor *bb = mk(ctx, dt, SG_SHAPE(2, 2), (const double[]){10, 30, 20, 40});
    sg_tensor *wc = sg_slice(ctx, mk(ctx, dt, SG_SHAPE(2, 3), (const double[]){0, 1, 9, 1, 0, 9}),
                             1, 0, 2); /* [[0, 1], [1, 0]] */
    EXPECT(sg_lerp(ctx, at, bb, wc), 1, 30, 20, 4);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

static sg_tensor *f_lerp(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user;
    return sg_lerp(ctx, in[0], in[1], in[2]);
}

/* Gradient check of lerp over inputs of the given shapes, broadcast every way, 0-d and
 * empty included (float32 with opts_for's loose tolerances, float64 tight). */
START_TEST(lerp_gradcheck) {
    sg_dtype dt = DT(_i);
    sg_ctx *ctx = sg_ctx_new(0);
    static const struct {
        int n[3];
        int64_t s[3][3];
    } pats[] = {
        {{2, 2, 2}, {{2, 3}, {2, 3}, {2, 3}}}, {{2, 1, 2}, {{2, 3}, {3}, {2, 1}}},
        {{1, 2, 3}, {{3}, {2, 1}, {4, 1, 3}}}, {{0, 2, 1}, {{0}, {2, 3}, {1}}},
        {{0, 0, 0}, {{0}, {0}, {0}}},          {{2, 2, 1}, {{2, 0}, {1, 0}, {1}}},
    };
    for (size_t p = 0; p < sizeof pats / sizeof pats[0]; p++) {
        sg_tensor *in[3];
        for (int k = 0; k < 3; k++) {
            in[k] = safe_input(ctx, dt, F_ADD, pats[p].n[k], pats[p].s[k], k);
            sg_set_requires_grad(in[k], true);
        }
        sg_gradcheck_opts o = opts_for(dt);
        sg_gradcheck_report r[3];
        ck_assert_int_eq(sg_gradcheck(ctx, f_lerp, NULL, 3, in, &o, r), 1);
        for (int k = 0; k < 3; k++)
            ck_assert_msg(r[k].ok, "lerp pattern %zu input %d: analytic %.10g numeric %.10g", p, k,
                          r[k].analytic, r[k].numeric);
    }
    /* strided leaves: a transposed, b a column slice, w a row of a 3-D tensor */
    sg_tensor *in[3] = {sg_transpose(ctx, safe_input(ctx, dt, F_ADD, SG_SHAPE(3, 2), 0), 0, 1),
                        sg_slice(ctx, safe_input(ctx, dt, F_ADD, SG_SHAPE(2, 5), 1), 1, 1, 3),
                        sg_select(ctx, safe_input(ctx, dt, F_ADD, SG_SHAPE(2, 2, 3), 2), 1, 1)};
    for (int k = 0; k < 3; k++)
        ck_assert(!sg_is_contiguous(in[k]));
    view_gradcheck(ctx, f_lerp, NULL, 3, in, dt, "lerp, strided");
    /* strided and broadcast: w a (2, 1) column of a transposed (3, 2) */
    sg_tensor *wc = sg_slice(
        ctx, sg_transpose(ctx, safe_input(ctx, dt, F_ADD, SG_SHAPE(3, 2), 2), 0, 1), 1, 1, 1);
    sg_tensor *in2[3] = {sg_transpose(ctx, safe_input(ctx, dt, F_ADD, SG_SHAPE(3, 2), 0), 0, 1),
                         safe_input(ctx, dt, F_ADD, SG_SHAPE(3), 1), wc};
    view_gradcheck(ctx, f_lerp, NULL, 3, in2, dt, "lerp, strided and broadcast");
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(lerp_errors) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = sg_ones(ctx, SG_F32, SG_SHAPE(2, 3)), *b = sg_ones(ctx, SG_F32, SG_SHAPE(4));
    ck_assert_ptr_null(sg_lerp(ctx, a, NULL, a));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    ck_assert_ptr_null(sg_lerp(ctx, a, b, a));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_lerp: shapes (2, 3) (a), (4,) (b) and (2, 3) (w) do not broadcast");
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_lerp(ctx, a, a, sg_ones(ctx, SG_F64, SG_SHAPE(2, 3))));
    ck_assert_str_eq(sg_ctx_error(ctx), "sg_lerp: dtype mismatch: float32 and float64");
    sg_ctx_clear_error(ctx);
    sg_tensor *i = sg_zeros(ctx, SG_I64, SG_SHAPE(2, 3));
    ck_assert_ptr_null(sg_lerp(ctx, i, i, i));
    ck_assert_str_eq(sg_ctx_error(ctx),
                     "sg_lerp: input 0 is an int64 tensor; this op takes float32 or float64");
    sg_ctx_free(ctx);
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"forward",
         0,
         {{binary_same_shape, 2},
          {binary_broadcast, 2},
          {binary_strided, 2},
          {unary_values, 2},
          {unary_strided, 2},
          {transcendental_sweep, 2},
          {unary13_values, 2},
          {unary13_strided, 2},
          {unary13_large, 2},
          {activations, 1},
          {lerp_values, 2}}},
        {"backward",
         0,
         {{recording, 1},
          {backward_values, 2},
          {backward_unary_values, 2},
          {unary13_backward_values, 2},
          {backward_param, 2},
          {reuse_values, 2}}},
        {"gradcheck",
         0,
         {{gradcheck_binary, 2},
          {gradcheck_unary, 2},
          {gradcheck_strided_leaves, 2},
          {gradcheck_through_views, 2},
          {gradcheck_reuse, 2},
          {lerp_gradcheck, 2}}},
        {"errors", 0, {{errors, 1}, {anomaly, 1}, {unary13_errors, 1}, {lerp_errors, 1}}},
    };
    return CK_RUN("ops_elementwise", tcases, NULL, NULL);
}
