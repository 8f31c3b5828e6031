/* In-place ops (sg_sigmoid_, sg_tanh_, sg_activate_, sg_add_, sg_addmm_): values and
 * gradients equal to the out-of-place ops, float64 central-difference gradient checks on
 * contiguous tensors and on the strided slices the LSTM uses, and the refusals that keep
 * gradients correct (each with its message). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "autograd/ops.h" /* ctx->tape.ip_visits: how many in-place marks checks compared */
#include "tensor/tensor.h"

#include "cksuite.h"

static sg_tensor *randn(sg_ctx *ctx, sg_dtype dt, int nd, const int64_t *shape, uint64_t seed,
                        bool grad) {
    sg_rng rng;
    sg_rng_seed(&rng, seed);
    sg_tensor *t = sg_tensor_new(ctx, dt, nd, shape);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < sg_numel(t); i++)
        sg_set_flat(t, i, sg_rng_normal(&rng));
    return sg_set_requires_grad(t, grad);
}

static void expect_equal(const char *what, const sg_tensor *a, const sg_tensor *b, double tol) {
    ck_assert_msg(a && b, "%s: NULL tensor", what);
    ck_assert_int_eq(sg_numel(a), sg_numel(b));
    for (int64_t i = 0; i < sg_numel(a); i++)
        ck_assert_msg(fabs(sg_get_flat(a, i) - sg_get_flat(b, i)) <= tol,
                      "%s: element %lld: %.17g vs %.17g", what, (long long)i, sg_get_flat(a, i),
                      sg_get_flat(b, i));
}

static void expect_error(sg_ctx *ctx, const sg_tensor *r, const char *needle) {
    ck_assert_ptr_null(r);
    const char *e = sg_ctx_error(ctx);
    ck_assert_msg(e && strstr(e, needle), "expected an error containing '%s', got '%s'", needle,
                  e ? e : "(none)");
    sg_ctx_clear_error(ctx);
}

/* ---- values and gradients equal to the out-of-place ops ------------------------------------
 * L = sum(w * act(a @ b + s)) built twice, once with act/+ in place; every value and
 * gradient must agree exactly (the same arithmetic in the same order). */
START_TEST(test_same_as_out_of_place) {
    for (int dt = 0; dt < 2; dt++)
        for (int op = 0; op < 4; op++) {
            sg_ctx *ctx = sg_ctx_new(0);
            sg_tensor *a = randn(ctx, (sg_dtype)dt, SG_SHAPE(3, 4), 1, true);
            sg_tensor *b = randn(ctx, (sg_dtype)dt, SG_SHAPE(4, 5), 2, true);
            sg_tensor *s = randn(ctx, (sg_dtype)dt, SG_SHAPE(5), 3, true);
            sg_tensor *w = randn(ctx, (sg_dtype)dt, SG_SHAPE(3, 5), 4, false);
            sg_tensor *y[2], *g[2][3];
            for (int ip = 0; ip < 2; ip++) {
                sg_tensor *z = sg_matmul(ctx, a, b);
                switch (op) {
                case 0:
                    z = ip ? sg_sigmoid_(ctx, sg_add(ctx, z, s))
                           : sg_sigmoid(ctx, sg_add(ctx, z, s));
                    break;
                case 1:
                    z = ip ? sg_tanh_(ctx, sg_add(ctx, z, s)) : sg_tanh(ctx, sg_add(ctx, z, s));
                    break;
                case 2: z = ip ? sg_add_(ctx, z, s) : sg_add(ctx, z, s); break;
                default: /* (s + a @ b) with the product accumulated into a copy of s */
                    z = ip ? sg_addmm_(ctx, sg_add(ctx, sg_scale(ctx, w, 0.0), s), a, b)
                           : sg_addmm(ctx, s, a, b);
                }
                y[ip] = sg_sum(ctx, sg_mul(ctx, z, w));
                ck_assert_msg(y[ip] != NULL, "op %d in place %d: %s", op, ip, sg_ctx_error(ctx));
                sg_ctx_zero_grad(ctx);
                ck_assert_int_eq(sg_backward(ctx, y[ip], NULL), 0);
                g[ip][0] = sg_contiguous(ctx, a->grad);
                g[ip][1] = sg_contiguous(ctx, b->grad);
                g[ip][2] = sg_contiguous(ctx, s->grad);
            }
            double tol = dt == SG_F64 ? 1e-15 : 1e-6;
            expect_equal("loss", y[0], y[1], tol * 10);
            expect_equal("da", g[0][0], g[1][0], tol);
            expect_equal("db", g[0][1], g[1][1], tol);
            expect_equal("ds", g[0][2], g[1][2], tol);
            ck_assert_ptr_null(sg_ctx_error(ctx));
            sg_ctx_free(ctx);
        }
}
END_TEST

/* ---- gradient checks ----------------------------------------------------------------------
 * The LSTM step in miniature: xk = x @ k (B, T, 4H); per step z = xk[:, t] += h @ rk in
 * place, the four gate slices activated in place, c = f*c + i*g with the sum in place. */
typedef struct {
    int64_t T, H;
} step_user;

static sg_tensor *gc_steps(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    const step_user *u = user;
    sg_tensor *xk = sg_matmul(ctx, in[0], in[1]); /* (B, T, 4H) */
    sg_tensor *h = in[3], *c = in[4];
    for (int64_t t = 0; t < u->T; t++) {
        sg_tensor *z = sg_addmm_(ctx, sg_select(ctx, xk, 1, t), h, in[2]);
        sg_tensor *g[4];
        if (sg_split(ctx, z, 1, 4, g))
            return NULL;
        sg_tensor *i = sg_sigmoid_(ctx, g[0]), *f = sg_sigmoid_(ctx, g[1]);
        sg_tensor *cc = sg_tanh_(ctx, g[2]), *o = sg_activate_(ctx, g[3], SG_ACT_SIGMOID);
        c = sg_add_(ctx, sg_mul(ctx, f, c), sg_mul(ctx, i, cc));
        h = sg_mul(ctx, o, sg_tanh(ctx, c));
    }
    return sg_add(ctx, h, c);
}

START_TEST(test_gradcheck_lstm_steps) {
    sg_ctx *ctx = sg_ctx_new(0);
    int64_t B = 2, T = 3, I = 3, H = 2;
    sg_tensor *in[5] = {
        randn(ctx, SG_F64, SG_SHAPE(B, T, I), 11, true),
        randn(ctx, SG_F64, SG_SHAPE(I, 4 * H), 12, true),
        randn(ctx, SG_F64, SG_SHAPE(H, 4 * H), 13, true),
        randn(ctx, SG_F64, SG_SHAPE(B, H), 14, true),
        randn(ctx, SG_F64, SG_SHAPE(B, H), 15, true),
    };
    step_user u = {T, H};
    sg_gradcheck_opts opts = sg_gradcheck_defaults();
    opts.atol = 1e-8;
    opts.rtol = 1e-6;
    sg_gradcheck_report rep[5];
    int rc = sg_gradcheck(ctx, gc_steps, &u, 5, in, &opts, rep);
    ck_assert_msg(rc >= 0, "sg_gradcheck: %s", sg_ctx_error(ctx));
    for (int i = 0; i < 5; i++)
        ck_assert_msg(rep[i].ok, "input %d: analytic %.10g numeric %.10g (max abs %.3g)", i,
                      rep[i].analytic, rep[i].numeric, rep[i].max_abs);
    ck_assert_int_eq(rc, 1);
    sg_ctx_free(ctx);
}
END_TEST

/* add_ with a broadcast right-hand side, tanh_ on a transposed (non unit-stride) view. */
static sg_tensor *gc_misc(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user;
    sg_tensor *z = sg_matmul(ctx, in[0], in[1]);               /* (3, 4) */
    z = sg_add_(ctx, z, in[2]);                                /* + (4,) row */
    sg_tensor *zt = sg_tanh_(ctx, sg_transpose(ctx, z, 0, 1)); /* (4, 3), strides (1, 4) */
    return sg_mul(ctx, zt, zt);
}

START_TEST(test_gradcheck_broadcast_and_transposed) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *in[3] = {
        randn(ctx, SG_F64, SG_SHAPE(3, 2), 21, true),
        randn(ctx, SG_F64, SG_SHAPE(2, 4), 22, true),
        randn(ctx, SG_F64, SG_SHAPE(4), 23, true),
    };
    sg_gradcheck_report rep[3];
    int rc = sg_gradcheck(ctx, gc_misc, NULL, 3, in, NULL, rep);
    ck_assert_msg(rc == 1, "rc %d: %s; reports ok %d %d %d", rc,
                  sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "-", rep[0].ok, rep[1].ok, rep[2].ok);
    /* the values really are tanh of the transposed sum */
    sg_tensor *z = sg_add(ctx, sg_matmul(ctx, in[0], in[1]), in[2]);
    sg_tensor *ref = sg_tanh(ctx, sg_transpose(ctx, z, 0, 1));
    sg_tensor *got =
        sg_tanh_(ctx, sg_transpose(ctx, sg_add_(ctx, sg_matmul(ctx, in[0], in[1]), in[2]), 0, 1));
    expect_equal("tanh_ of a transposed view", got, ref, 1e-15);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- writing really happens in place ----------------------------------------------------- */
START_TEST(test_writes_through) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x =
        sg_from_data(ctx, SG_F64, SG_SHAPE(2, 4), (const double[]){0, 1, -1, 2, 3, -2, 0.5, -0.5});
    sg_tensor *parts[2];
    ck_assert_int_eq(sg_split(ctx, x, 1, 2, parts), 0);
    size_t before = sg_ctx_arena_used(ctx);
    sg_tensor *y = sg_sigmoid_(ctx, parts[1]); /* columns 2..3 only */
    ck_assert_ptr_nonnull(y);
    ck_assert(sg_ctx_arena_used(ctx) - before < 1024); /* a header, no data buffer */
    ck_assert(sg_data(y) == sg_data(parts[1]));
    const double want[8] = {0, 1,  1 / (1 + exp(1.0)),  1 / (1 + exp(-2.0)),
                            3, -2, 1 / (1 + exp(-0.5)), 1 / (1 + exp(0.5))};
    for (int i = 0; i < 8; i++)
        ck_assert_double_eq_tol(sg_get_flat(x, i), want[i], 1e-15);
    /* add_(x, x) doubles; the same view on both sides is allowed */
    ck_assert_ptr_nonnull(sg_add_(ctx, parts[0], parts[0]));
    ck_assert_double_eq(sg_get_flat(x, 1), 2);
    ck_assert_double_eq(sg_get_flat(x, 5), -4);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- refusals ---------------------------------------------------------------------------- */
START_TEST(test_refusals) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *p = randn(ctx, SG_F64, SG_SHAPE(2, 3), 31, true);
    sg_tensor *q = randn(ctx, SG_F64, SG_SHAPE(2, 3), 32, false);

    /* a leaf that requires grad, and a view of one */
    expect_error(ctx, sg_sigmoid_(ctx, p), "leaf tensor that requires grad");
    expect_error(ctx, sg_tanh_(ctx, sg_slice(ctx, p, 1, 0, 2)), "view of a leaf tensor");
    /* ... but in no-grad mode (an optimizer's update) it is fine */
    sg_ctx_set_grad_enabled(ctx, false);
    ck_assert_ptr_nonnull(sg_add_(ctx, p, q));
    sg_ctx_set_grad_enabled(ctx, true);

    /* a value an earlier backward reads: sigmoid's output, mul's inputs */
    sg_tensor *s = sg_sigmoid(ctx, sg_add(ctx, p, q));
    expect_error(ctx, sg_tanh_(ctx, s), "needed by the backward of an op recorded earlier");
    sg_tensor *m = sg_add(ctx, p, q);
    ck_assert_ptr_nonnull(sg_mul(ctx, m, p));
    expect_error(ctx, sg_sigmoid_(ctx, sg_slice(ctx, m, 1, 1, 1)), "needed by the backward");
    /* an in-place result whose backward reads it, overwritten again */
    sg_tensor *t = sg_tanh_(ctx, sg_add(ctx, p, q));
    ck_assert_ptr_nonnull(t);
    expect_error(ctx, sg_sigmoid_(ctx, t), "earlier in-place tanh");
    /* ... while a disjoint slice of the same buffer is still fine */
    sg_tensor *u = sg_add(ctx, p, q), *halves[3];
    ck_assert_int_eq(sg_split(ctx, u, 1, 3, halves), 0);
    ck_assert_ptr_nonnull(sg_tanh_(ctx, halves[0]));
    ck_assert_ptr_nonnull(sg_sigmoid_(ctx, halves[2]));
    expect_error(ctx, sg_sigmoid_(ctx, sg_slice(ctx, u, 1, 0, 2)), "earlier in-place tanh");
    /* the same, worked back to front (the saved list is then not sorted by offset) */
    sg_tensor *u2 = sg_add(ctx, p, q), *thirds[3];
    ck_assert_int_eq(sg_split(ctx, u2, 1, 3, thirds), 0);
    ck_assert_ptr_nonnull(sg_sigmoid_(ctx, thirds[2]));
    ck_assert_ptr_nonnull(sg_tanh_(ctx, thirds[0]));
    ck_assert_ptr_nonnull(sg_tanh_(ctx, thirds[1]));
    expect_error(ctx, sg_tanh_(ctx, sg_slice(ctx, u2, 1, 2, 1)), "earlier in-place sigmoid");
    /* add_ leaves nothing that backward reads: a second in-place op on it is fine */
    sg_tensor *v = sg_add_(ctx, sg_add(ctx, p, q), q);
    ck_assert_ptr_nonnull(sg_sigmoid_(ctx, v));

    /* an expanded view: several elements share one location */
    sg_tensor *row = sg_add(ctx, sg_select(ctx, p, 0, 0), sg_select(ctx, q, 0, 0));
    expect_error(ctx, sg_tanh_(ctx, sg_expand(ctx, row, SG_SHAPE(4, 3))), "expanded view");
    /* overlapping operands */
    sg_tensor *w = sg_add(ctx, p, q);
    sg_tensor *sq = sg_add(ctx, sg_matmul(ctx, sg_transpose(ctx, p, 0, 1), q),
                           sg_zeros(ctx, SG_F64, SG_SHAPE(3, 3)));
    expect_error(ctx, sg_addmm_(ctx, sq, sq, sq), "overlaps the tensor written in place");
    expect_error(ctx, sg_add_(ctx, sg_slice(ctx, w, 1, 0, 2), sg_slice(ctx, w, 1, 1, 2)),
                 "overlaps");
    /* shapes */
    expect_error(ctx, sg_addmm_(ctx, w, p, q), "do not match");
    expect_error(ctx, sg_add_(ctx, sg_select(ctx, w, 0, 0), w), "does not broadcast to a's shape");
    /* NULL in, NULL out, no new message */
    ck_assert_ptr_null(sg_sigmoid_(ctx, NULL));
    ck_assert_ptr_null(sg_add_(ctx, NULL, q));
    ck_assert_ptr_null(sg_addmm_(ctx, w, NULL, q));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* The marks live as long as the tape: after sg_ctx_reset a persistent tensor that a
 * recorded op had saved can be worked in place again. */
START_TEST(test_marks_reset_with_the_arena) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *data = sg_persistent_new(ctx, SG_F64, SG_SHAPE(2, 2));
    sg_tensor *w = sg_param_new(ctx, SG_F64, SG_SHAPE(2, 2), "w");
    ck_assert_ptr_nonnull(data);
    ck_assert_ptr_nonnull(w);
    sg_fill(data, 0.5);
    ck_assert_ptr_nonnull(sg_mul(ctx, w, data)); /* saves data for dw */
    expect_error(ctx, sg_sigmoid_(ctx, data), "needed by the backward");
    sg_ctx_reset(ctx);
    sg_tensor *y = sg_sigmoid_(ctx, data);
    ck_assert_msg(y != NULL, "%s", sg_ctx_error(ctx));
    ck_assert_double_eq_tol(sg_get_flat(data, 3), 1 / (1 + exp(-0.5)), 1e-15);
    sg_ctx_free(ctx);
}
END_TEST

/* An LSTM-like pass over a (T, B, 4H) buffer, forward or backward in time: each step
 * activates its four gate slices in place, and every activation saves its output. The
 * checks must compare a bounded number of marks per op in both directions: a quadratic
 * check (every earlier mark compared, as once for time running backward) compares
 * about 8 T^2 = 32 million at T = 2000. */
static int64_t gate_pass_visits(int64_t T, bool reverse) {
    const int64_t B = 2, H = 4;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = randn(ctx, SG_F64, SG_SHAPE(T, B, 4 * H), 7, true);
    sg_tensor *xk = sg_scale(ctx, x, 1.0); /* not a leaf: in-place ops are allowed on it */
    int64_t before = ctx->tape.ip_visits;
    for (int64_t k = 0; k < T; k++) {
        int64_t t = reverse ? T - 1 - k : k;
        sg_tensor *g[4];
        ck_assert_int_eq(sg_split(ctx, sg_select(ctx, xk, 0, t), -1, 4, g), 0);
        for (int j = 0; j < 4; j++)
            ck_assert_msg(j == 2 ? sg_tanh_(ctx, g[j]) : sg_sigmoid_(ctx, g[j]), "%s",
                          sg_ctx_error(ctx));
    }
    int64_t visits = ctx->tape.ip_visits - before;
    sg_ctx_free(ctx);
    return visits;
}

START_TEST(test_checks_linear_both_directions) {
    for (int rev = 0; rev <= 1; rev++) {
        int64_t v1 = gate_pass_visits(1000, rev), v2 = gate_pass_visits(2000, rev);
        /* within a step the gates before this one: 0 + 1 + 2 + 3 compared */
        ck_assert_msg(v1 <= 6 * 1000 && v2 <= 6 * 2000,
                      "%s: %lld marks compared at T = 1000, %lld at T = 2000",
                      rev ? "reverse" : "forward", (long long)v1, (long long)v2);
    }
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"inplace",
         0,
         {{test_same_as_out_of_place, 1},
          {test_gradcheck_lstm_steps, 1},
          {test_gradcheck_broadcast_and_transposed, 1},
          {test_writes_through, 1},
          {test_refusals, 1},
          {test_marks_reset_with_the_arena, 1},
          {test_checks_linear_both_directions, 1}}},
    };
    return CK_RUN("inplace", tcases, NULL, NULL);
}
