/* The tape itself: backward's contract and errors, retained gradients, no-grad mode, the
 * loud default of the dispatch, the gradcheck API's reports, DOT export, anomaly mode. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqgrad.h"

#include "autograd/ops.h" /* the op table */

#include "cksuite.h"
#include "errtest.h"

static sg_tensor *leaf(sg_ctx *ctx, const double *v, int n) {
    sg_tensor *t = sg_from_data(ctx, SG_F64, SG_SHAPE(n), v);
    return sg_set_requires_grad(t, true);
}

/* y = sum(x * x * 3 + x): dy/dx = 6x + 1, accumulated over two backward passes. */
START_TEST(test_backward_scalar_and_accumulate) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = leaf(ctx, (double[]){1, -2, 0.5}, 3);
    for (int pass = 1; pass <= 2; pass++) {
        sg_tensor *y = sg_sum(ctx, sg_add(ctx, sg_scale(ctx, sg_mul(ctx, x, x), 3), x));
        ck_assert_double_eq_tol(sg_get_flat(y, 0), 3 * (1 + 4 + 0.25) + (1 - 2 + 0.5), 1e-15);
        ck_assert_int_eq(sg_backward(ctx, y, NULL), 0);
        double want[3] = {7, -11, 4};
        for (int i = 0; i < 3; i++)
            ck_assert_double_eq_tol(sg_get_flat(x->grad, i), pass * want[i], 1e-15);
    }
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* A non-scalar output needs an upstream gradient; with one, it is the vector-Jacobian
 * product. Retained intermediates keep their gradient, others do not. */
START_TEST(test_backward_upstream_and_retain) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = leaf(ctx, (double[]){1, 2, 3}, 3);
    sg_tensor *h = sg_retain_grad(sg_scale(ctx, x, 2)); /* h = 2x */
    sg_tensor *k = sg_mul(ctx, h, h);                   /* k = 4x^2, not retained */
    sg_tensor *y = sg_exp(ctx, sg_scale(ctx, k, 0.01));
    ck_assert_int_eq(sg_backward(ctx, y, NULL), -1);
    EXPECT_ERR(ctx, "sg_backward: output of shape (3,) is not a scalar; pass an upstream "
                    "gradient");
    sg_tensor *up = sg_from_data(ctx, SG_F64, SG_SHAPE(3), (double[]){1, 0, -1});
    ck_assert_int_eq(sg_backward(ctx, y, up), 0);
    for (int i = 0; i < 3; i++) {
        double xi = i + 1, u = (double[]){1, 0, -1}[i];
        double dy_dk = 0.01 * exp(0.04 * xi * xi);
        ck_assert_double_eq_tol(sg_get_flat(h->grad, i), u * dy_dk * 2 * (2 * xi), 1e-14);
        ck_assert_double_eq_tol(sg_get_flat(x->grad, i), u * dy_dk * 8 * xi, 1e-14);
    }
    ck_assert_ptr_null(k->grad); /* consumed */
    /* wrong upstream shape and dtype */
    sg_tensor *bad = sg_zeros(ctx, SG_F64, SG_SHAPE(2));
    ck_assert_int_eq(sg_backward(ctx, y, bad), -1);
    EXPECT_ERR(ctx, "sg_backward: upstream gradient (2,) float64 does not match output (3,) "
                    "float64");
    sg_tensor *bad32 = sg_zeros(ctx, SG_F32, SG_SHAPE(3));
    ck_assert_int_eq(sg_backward(ctx, y, bad32), -1);
    EXPECT_ERR(ctx, "sg_backward: upstream gradient (3,) float32 does not match output (3,) "
                    "float64");
    sg_ctx_free(ctx);
}
END_TEST

START_TEST(test_backward_errors) {
    sg_ctx *ctx = sg_ctx_new(0);
    /* nothing requires grad */
    sg_tensor *c = sg_from_data(ctx, SG_F64, SG_SHAPE(2), (double[]){1, 2});
    sg_tensor *s = sg_sum(ctx, sg_mul(ctx, c, c));
    ck_assert_int_eq(sg_backward(ctx, s, NULL), -1);
    EXPECT_ERR(ctx, "sg_backward: the tensor does not require grad (no input required grad, or "
                    "it was computed with grad mode off)");
    /* grad mode off: no nodes, nothing to differentiate */
    sg_tensor *x = leaf(ctx, (double[]){1, 2}, 2);
    int64_t before = sg_tape_size(ctx);
    bool was = sg_ctx_set_grad_enabled(ctx, false);
    ck_assert(was);
    sg_tensor *y = sg_sum(ctx, sg_exp(ctx, x));
    ck_assert(!sg_ctx_grad_enabled(ctx));
    sg_ctx_set_grad_enabled(ctx, true);
    ck_assert_int_eq(sg_tape_size(ctx), before);
    ck_assert_int_eq(sg_backward(ctx, y, NULL), -1);
    sg_ctx_clear_error(ctx);
    /* NULL propagates without a new message */
    ck_assert_int_eq(sg_backward(ctx, NULL, NULL), -1);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    /* a loss kept across a reset */
    sg_tensor *l = sg_sum(ctx, sg_exp(ctx, x));
    sg_ctx_reset(ctx);
    ck_assert_int_eq(sg_backward(ctx, l, NULL), -1);
    EXPECT_ERR(ctx, "sg_backward: tensor used after sg_ctx_reset");
    /* a tape node whose op has no backward fails loudly, naming the op */
    sg_tensor *p = sg_param_new(ctx, SG_F64, SG_SHAPE(2), "p");
    sg_tensor *q = sg_sum(ctx, sg_exp(ctx, p));
    sg_tensor *e = (sg_tensor *)q->src[0];
    e->op = SG_OP_COUNT; /* simulate an op added without a backward */
    ck_assert_int_eq(sg_backward(ctx, q, NULL), -1);
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "has no backward"));
    sg_ctx_clear_error(ctx);
    sg_ctx_free(ctx);
}
END_TEST

/* Parameters: persistent grads survive resets, sg_ctx_zero_grad clears them. */
START_TEST(test_params_and_reset) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *w = sg_param_new(ctx, SG_F32, SG_SHAPE(2, 2), "w");
    sg_fill(w, 0.5);
    for (int step = 0; step < 3; step++) {
        sg_tensor *x = sg_ones(ctx, SG_F32, SG_SHAPE(1, 2));
        ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, sg_matmul(ctx, x, w)), NULL), 0);
        sg_ctx_reset(ctx);
        ck_assert_int_eq(sg_tape_size(ctx), 0);
    }
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq(sg_get_flat(w->grad, i), 3.0);
    sg_ctx_zero_grad(ctx);
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq(sg_get_flat(w->grad, i), 0.0);
    ck_assert_double_eq(sg_get_flat(w, 3), 0.5);
    sg_ctx_free(ctx);
}
END_TEST

static sg_tensor *f_poly(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user;
    return sg_mul(ctx, sg_tanh(ctx, in[0]), in[1]);
}

/* A wrong backward is caught by gradcheck, which reports where. */
static sg_tensor *f_wrong(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user;
    sg_tensor *y = sg_tanh(ctx, in[0]);
    if (y && sg_ctx_grad_enabled(ctx))
        y->op = SG_OP_SIGMOID; /* tanh's output with sigmoid's backward: wrong on purpose */
    return sg_sum(ctx, y);     /* scalar: the numeric derivative is exactly 1 - tanh^2 */
}

START_TEST(test_gradcheck_reports) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = sg_set_requires_grad(sg_rand_normal(ctx, SG_F64, SG_SHAPE(3, 4), 0, 1), true);
    sg_tensor *b = sg_rand_normal(ctx, SG_F64, SG_SHAPE(3, 4), 0, 1); /* held fixed */
    sg_gradcheck_report rep[2];
    ck_assert_int_eq(sg_gradcheck(ctx, f_poly, NULL, 2, (sg_tensor *[]){a, b}, NULL, rep), 1);
    ck_assert(rep[0].ok && rep[1].ok);
    ck_assert_double_lt(rep[0].max_abs, 1e-8);
    ck_assert_int_eq(rep[1].worst_flat, -1); /* not checked: does not require grad */
    ck_assert_int_eq(sg_gradcheck(ctx, f_wrong, NULL, 1, (sg_tensor *[]){a}, NULL, rep), 0);
    ck_assert(!rep[0].ok);
    ck_assert_int_ge(rep[0].worst_flat, 0);
    ck_assert_double_gt(rep[0].max_abs, 1e-3);
    ck_assert_double_eq_tol(rep[0].numeric, 1 - pow(tanh(sg_get_flat(a, rep[0].worst_flat)), 2),
                            1e-6);
    /* bad input */
    ck_assert_int_eq(sg_gradcheck(ctx, NULL, NULL, 1, (sg_tensor *[]){a}, NULL, rep), -1);
    EXPECT_ERR(ctx, "sg_gradcheck: need a function and at least one input");
    sg_tensor *at = sg_transpose(ctx, a, 0, 1);
    ck_assert_int_eq(sg_gradcheck(ctx, f_poly, NULL, 2, (sg_tensor *[]){at, b}, NULL, rep), -1);
    EXPECT_ERR(ctx, "sg_gradcheck: input 0 is not contiguous");
    sg_ctx_free(ctx);
}
END_TEST

/* DOT export: every op of an expression appears with its shape, leaves with names. */
START_TEST(test_dot) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *w = sg_param_new(ctx, SG_F32, SG_SHAPE(3, 2), "w");
    sg_tensor *x = sg_ones(ctx, SG_F32, SG_SHAPE(4, 3));
    sg_tensor *y = sg_sum(ctx, sg_sigmoid(ctx, sg_matmul(ctx, x, w)));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(sg_dot_write(ctx, y, f), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "digraph seqgrad {"));
    ck_assert_ptr_nonnull(strstr(buf, "label=\"w\\n(3, 2) float32\""));
    ck_assert_ptr_nonnull(strstr(buf, "label=\"matmul\\n(4, 2)\""));
    ck_assert_ptr_nonnull(strstr(buf, "label=\"sigmoid\\n(4, 2)\""));
    ck_assert_ptr_nonnull(strstr(buf, "label=\"sum\\n()\""));
    int edges = 0;
    for (const char *p = buf; (p = strstr(p, " -> ")); p++)
        edges++;
    ck_assert_int_eq(edges, 4); /* x, w -> matmul -> sigmoid -> sum */
    free(buf);
    ck_assert_int_eq(sg_dot_save(ctx, y, "/nonexistent-dir/graph.dot"), -1);
    EXPECT_ERR(ctx, "sg_dot_save: cannot open /nonexistent-dir/graph.dot for writing");
    sg_ctx_free(ctx);
}
END_TEST

/* Anomaly mode names the first op producing NaN/Inf, in forward and in backward; the op
 * itself fails (NULL, like any op with an error). */
START_TEST(test_anomaly) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_ctx_set_anomaly(ctx, true);
    sg_tensor *x = leaf(ctx, (double[]){1, -1}, 2);
    sg_tensor *y = sg_log(ctx, x); /* log(-1) = NaN */
    ck_assert_ptr_null(y);
    EXPECT_ERR(ctx, "anomaly: log produced NaN in forward; inputs (2,) -> output (2,)");
    /* backward: a / b is finite (1e150) but d/db = -a / b^2 overflows to -Inf */
    sg_tensor *na = leaf(ctx, (double[]){1e-100}, 1), *nb = leaf(ctx, (double[]){1e-250}, 1);
    sg_tensor *q0 = sg_sum(ctx, sg_div(ctx, na, nb));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    ck_assert_int_eq(sg_backward(ctx, q0, NULL), -1);
    EXPECT_ERR(ctx, "anomaly: div produced Inf in backward; inputs (1,), (1,) -> output (1,)");
    sg_tensor *big = leaf(ctx, (double[]){1e308, 1}, 2);
    sg_tensor *n = sg_sum(ctx, sg_square(ctx, big)); /* forward overflows to Inf */
    EXPECT_ERR(ctx, "anomaly: square produced Inf in forward; inputs (2,) -> output (2,)");
    ck_assert_ptr_null(n); /* square failed, so sum got NULL */
    sg_ctx_set_anomaly(ctx, false);
    sg_tensor *q = sg_log(ctx, x);
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_null(sg_ctx_error(ctx)); /* off: no report */
    sg_ctx_free(ctx);
}
END_TEST

/* Every op has its table entry: a name of its own and a backward (the static_assert in
 * optable.c catches a count that disagrees; this catches an entry left out in between). */
START_TEST(test_op_table) {
    for (int op = 1; op < SG_OP_COUNT; op++) {
        const sg_op_info *e = sg__op(op);
        ck_assert_msg(e->name && e->backward, "op %d has no table entry", op);
        ck_assert_str_eq(sg_op_name(op), e->name);
        for (int k = 1; k < op; k++)
            ck_assert_msg(strcmp(sg__op(k)->name, e->name), "ops %d and %d are both '%s'", k, op,
                          e->name);
    }
    ck_assert_str_eq(sg_op_name(SG_OP_NONE), "leaf");
    ck_assert_str_eq(sg_op_name(-1), "unknown-op");
    ck_assert_str_eq(sg_op_name(SG_OP_COUNT + SG_CUSTOM_OP_MAX), "unknown-op");
    /* views and the ops whose gradient may be a view say so */
    ck_assert(sg__op(SG_OP_SELECT)->flags & SG_OPF_VIEW);
    ck_assert(sg__op(SG_OP_SLICE)->flags & SG_OPF_GRAD_VIEW);
    ck_assert(!(sg__op(SG_OP_ADD)->flags & SG_OPF_VIEW));
}
END_TEST

/* A custom op: y = x^2 * w (two inputs), backward by hand; `user` scales the gradient of w
 * so that a wrong backward can be made on purpose. */
static sg_tensor *sqw_fw(sg_ctx *ctx, int n, sg_tensor *const *in, void *user) {
    (void)user;
    ck_assert_int_eq(n, 2);
    ck_assert(!sg_ctx_grad_enabled(ctx)); /* the forward is not recorded */
    return sg_mul(ctx, sg_square(ctx, in[0]), in[1]);
}
static int sqw_bw(sg_ctx *ctx, int n, sg_tensor *const *in, const sg_tensor *out,
                  const sg_tensor *dout, sg_tensor *const *din, void *user) {
    (void)ctx, (void)out;
    double wscale = *(const double *)user;
    ck_assert_int_eq(n, 2);
    ck_assert(sg_is_contiguous(dout));
    for (int64_t i = 0; i < sg_numel(dout); i++) {
        double x = sg_get_flat(in[0], i), w = sg_get_flat(in[1], i), g = sg_get_flat(dout, i);
        if (din[0])
            sg_set_flat(din[0], i, sg_get_flat(din[0], i) + 2 * x * w * g);
        if (din[1])
            sg_set_flat(din[1], i, sg_get_flat(din[1], i) + wscale * x * x * g);
    }
    return 0;
}
static int fail_bw(sg_ctx *ctx, int n, sg_tensor *const *in, const sg_tensor *out,
                   const sg_tensor *dout, sg_tensor *const *din, void *user) {
    (void)n, (void)in, (void)out, (void)dout, (void)din, (void)user;
    sg_error(ctx, "fail_bw: refused");
    return -1;
}
static sg_tensor *custom_loss(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    int op = *(const int *)user;
    /* through a transposed view, so that the op sees strided inputs and a strided dout */
    sg_tensor *y = sg_custom(ctx, op, 2, in);
    return sg_sum(ctx, sg_tanh(ctx, sg_transpose(ctx, y, 0, 1)));
}

START_TEST(test_custom_op) {
    sg_ctx *ctx = sg_ctx_new(0);
    static const double one = 1.0, half = 0.5;
    sg_custom_op def = {.name = "sqw",
                        .forward = sqw_fw,
                        .backward = sqw_bw,
                        .user = (void *)&one,
                        .reads_inputs = true};
    int op = sg_op_register(ctx, &def);
    def.name = "sqw_wrong";
    def.user = (void *)&half;
    int wrong = sg_op_register(ctx, &def);
    ck_assert_int_ge(op, SG_OP_COUNT);
    ck_assert_int_eq(wrong, op + 1);
    ck_assert_str_eq(sg_op_name(op), "sqw");

    /* values, and gradients by hand: d/dx = 2xw, d/dw = x^2 */
    sg_tensor *x = leaf(ctx, (double[]){1, -2, 3}, 3), *w = leaf(ctx, (double[]){4, 5, -6}, 3);
    sg_tensor *y = sg_custom(ctx, op, 2, (sg_tensor *[]){x, w});
    ck_assert_ptr_nonnull(y);
    ck_assert(sg_ctx_grad_enabled(ctx)); /* restored after the forward */
    ck_assert_int_eq(y->op, op);
    ck_assert_double_eq_tol(sg_get_flat(y, 2), -54, 1e-15);
    ck_assert_int_eq(sg_backward(ctx, sg_sum(ctx, y), NULL), 0);
    double gx[3] = {8, -20, -36}, gw[3] = {1, 4, 9};
    for (int i = 0; i < 3; i++) {
        ck_assert_double_eq_tol(sg_get_flat(x->grad, i), gx[i], 1e-15);
        ck_assert_double_eq_tol(sg_get_flat(w->grad, i), gw[i], 1e-15);
    }
    /* it reads its inputs, so they cannot be overwritten in place afterwards */
    sg_tensor *h = sg_scale(ctx, x, 2.0);
    ck_assert_ptr_nonnull(sg_custom(ctx, op, 2, (sg_tensor *[]){h, w}));
    ck_assert_ptr_null(sg_tanh_(ctx, h));
    EXPECT_ERR(ctx, "sg_tanh_: the values of this tensor (or of another view of its buffer) "
                    "are needed by the backward of an op recorded earlier; working in place "
                    "would corrupt that gradient: use the out-of-place op");

    /* gradcheck on strided views: the right backward passes, the wrong one fails on w */
    sg_rng rng;
    sg_rng_seed(&rng, 3);
    sg_tensor *in[2];
    for (int k = 0; k < 2; k++) {
        in[k] = sg_tensor_new(ctx, SG_F64, SG_SHAPE(3, 4));
        for (int64_t i = 0; i < 12; i++)
            sg_set_flat(in[k], i, sg_rng_normal(&rng));
        sg_set_requires_grad(in[k], true);
    }
    sg_gradcheck_report rep[2];
    ck_assert_int_eq(sg_gradcheck(ctx, custom_loss, &op, 2, in, NULL, rep), 1);
    ck_assert(rep[0].ok && rep[1].ok && rep[1].max_abs < 1e-8);
    ck_assert_int_eq(sg_gradcheck(ctx, custom_loss, &wrong, 2, in, NULL, rep), 0);
    ck_assert(rep[0].ok && !rep[1].ok);

    /* errors */
    ck_assert_ptr_null(sg_custom(ctx, SG_OP_ADD, 2, (sg_tensor *[]){x, w}));
    char msg[64]; /* a built-in id, whatever its number as ops are added */
    snprintf(msg, sizeof msg, "sg_custom: %d is not a registered custom op id", (int)SG_OP_ADD);
    EXPECT_ERR(ctx, msg);
    ck_assert_ptr_null(sg_custom(ctx, op, 0, (sg_tensor *[]){x}));
    EXPECT_ERR(ctx, "sg_custom: sqw takes 1 to 4 inputs (got 0)");
    ck_assert_ptr_null(sg_custom(ctx, op, 1, NULL));
    EXPECT_ERR(ctx, "sg_custom: sqw: inputs are NULL");
    ck_assert_ptr_null(sg_custom(ctx, op, 2, (sg_tensor *[]){x, NULL}));
    ck_assert_ptr_null(sg_ctx_error(ctx)); /* NULL propagates */
    ck_assert_int_eq(sg_op_register(ctx, &(sg_custom_op){.name = "nobw", .forward = sqw_fw}), -1);
    EXPECT_ERR(ctx, "sg_op_register: a custom op needs a name, a forward and a backward");
    def.name = "a_name_longer_than_thirty_one_characters";
    ck_assert_int_eq(sg_op_register(ctx, &def), -1);
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "is longer than 31 characters"));
    sg_ctx_clear_error(ctx);
    /* a backward that fails stops sg_backward with its message */
    def = (sg_custom_op){.name = "failing", .forward = sqw_fw, .backward = fail_bw};
    int bad = sg_op_register(ctx, &def);
    sg_tensor *fy = sg_sum(ctx, sg_custom(ctx, bad, 2, (sg_tensor *[]){x, w}));
    ck_assert_int_eq(sg_backward(ctx, fy, NULL), -1);
    EXPECT_ERR(ctx, "fail_bw: refused");
    sg_ctx_free(ctx);
}
END_TEST

/* The parameter store: values and gradients in two slabs, each parameter a view of both,
 * names unique, one dtype, errors of context-free calls kept by the store. */
START_TEST(test_store) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *st = sg_store_new();
    sg_tensor *w = sg_store_param(ctx, st, "w", SG_F64, SG_SHAPE(2, 3));
    sg_tensor *b = sg_store_param(ctx, st, "b", SG_F64, SG_SHAPE(3));
    ck_assert_msg(w && b, "%s", sg_ctx_error(ctx));
    ck_assert_int_eq(sg_store_size(st), 2);
    ck_assert_int_eq(sg_store_count(st), 9);
    ck_assert_ptr_eq(sg_store_find(st, "b"), b);
    ck_assert_ptr_eq(sg_store_at(st, 0), w);
    ck_assert_str_eq(sg_store_name_at(st, 1), "b");
    ck_assert_ptr_eq(sg_param_store(w), st);
    ck_assert_ptr_null(sg_param_store(sg_zeros(ctx, SG_F64, SG_SHAPE(1))));
    /* views into the slabs, each parameter on a 64-byte boundary */
    const double *vals = sg_store_values(st), *grads = sg_store_grads(st);
    ck_assert_ptr_eq(sg_data(w), vals);
    ck_assert_ptr_eq(sg_data(b), vals + 8);
    ck_assert_ptr_eq(sg_data(b->grad), grads + 8);
    ck_assert_int_eq(sg_store_slab_len(st), 11);
    /* gradients land in the gradient slab; zeroing is the whole slab */
    sg_fill(w, 1.0);
    sg_tensor *x = sg_from_data(ctx, SG_F64, SG_SHAPE(1, 2), (double[]){2, 3});
    sg_tensor *y = sg_sum(ctx, sg_addmm(ctx, b, x, w));
    ck_assert_int_eq(sg_backward(ctx, y, NULL), 0);
    ck_assert_double_eq(grads[0], 2);
    ck_assert_double_eq(grads[5], 3);
    ck_assert_double_eq(grads[10], 1);
    sg_store_zero_grad(st);
    for (int i = 0; i < 11; i++)
        ck_assert_double_eq(grads[i], 0);
    /* a workspace only reads parameters: recording left no mark on them */
    ck_assert_uint_eq(w->flags & ~(uint32_t)(SG_FLAG_PERSISTENT | SG_FLAG_SHARED | SG_FLAG_PARAM |
                                             SG_FLAG_REQUIRES_GRAD | SG_FLAG_STORED),
                      0);
    ck_assert_uint_eq(w->storage->mark_gen, 0);
    ck_assert_ptr_null(w->storage->marks);
    /* parameters can be used from another context */
    sg_ctx *other = sg_ctx_new(0);
    ck_assert_ptr_nonnull(sg_matmul(other, sg_ones(other, SG_F64, SG_SHAPE(1, 2)), w));
    ck_assert_ptr_null(sg_ctx_error(other));
    sg_ctx_free(other);
    /* errors */
    ck_assert_ptr_null(sg_store_param(ctx, st, "w", SG_F64, SG_SHAPE(1)));
    EXPECT_ERR(ctx, "sg_store_param: the store already has a parameter \"w\"");
    ck_assert_ptr_null(sg_store_param(ctx, st, "f", SG_F32, SG_SHAPE(1)));
    EXPECT_ERR(ctx, "sg_store_param: \"f\" is float32 but the store holds float64 parameters");
    ck_assert_ptr_null(sg_store_param(ctx, st, "", SG_F64, SG_SHAPE(1)));
    EXPECT_ERR(ctx, "sg_store_param: a parameter needs a name");
    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = 0;
    ck_assert_ptr_null(sg_store_param(ctx, st, longname, SG_F64, SG_SHAPE(1)));
    ck_assert_ptr_nonnull(strstr(sg_ctx_error(ctx), "is longer than 63 characters"));
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_store_param(ctx, st, "huge", SG_F64, SG_SHAPE(1ll << 40, 1ll << 40)));
    EXPECT_ERR(ctx, "sg_store_param: \"huge\": shape (1099511627776, 1099511627776) overflows: "
                    "the product of its nonzero sizes exceeds 2^60 - 1");
    ck_assert_int_eq(sg_store_size(st), 2);
    /* a call that names no context reports to the store */
    ck_assert(isnan(sg_get_flat(w, 6)));
    ck_assert_str_eq(sg_store_error(st), "sg_get_flat: index 6 out of range for 6 elements");
    sg_store_clear_error(st);
    ck_assert_ptr_null(sg_store_error(st));
    ck_assert_ptr_null(sg_ctx_error(ctx));
    /* sg_tensor_free leaves a store's parameter alone; truncate removes the newest */
    sg_tensor_free(w);
    ck_assert_double_eq(sg_get_flat(w, 0), 1.0);
    sg_store_truncate(st, 1);
    ck_assert_int_eq(sg_store_size(st), 1);
    ck_assert_ptr_null(sg_store_find(st, "b"));
    ck_assert_ptr_nonnull(sg_store_param(ctx, st, "b", SG_F64, SG_SHAPE(3)));
    /* unique names, Keras style */
    char nm[32];
    ck_assert_int_eq(sg_store_unique_name(ctx, st, "w", nm, sizeof nm), 0);
    ck_assert_str_eq(nm, "w_1");
    ck_assert_int_eq(sg_store_unique_name(ctx, st, "lstm", nm, sizeof nm), 0);
    ck_assert_str_eq(nm, "lstm");
    sg_store_free(st);
    sg_store_free(NULL);
    sg_ctx_free(ctx);
}
END_TEST

/* sg_copy_values: any shapes with the same count, any dtypes and strides, row-major. */
START_TEST(test_copy_values) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *src = sg_transpose(
        ctx, sg_reshape(ctx, sg_arange(ctx, SG_F64, 0, 6, 1), SG_SHAPE(2, 3)), 0, 1); /* (3, 2) */
    sg_tensor *dst = sg_zeros(ctx, SG_F32, SG_SHAPE(6));
    ck_assert_int_eq(sg_copy_values(dst, src), 0);
    double want[6] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq(sg_get_flat(dst, i), want[i]);
    ck_assert_int_eq(sg_copy_values(sg_zeros(ctx, SG_F32, SG_SHAPE(5)), src), -1);
    EXPECT_ERR(ctx, "sg_copy_values: (5,) has 5 elements, (3, 2) has 6");
    sg_ctx_free(ctx);
}
END_TEST

/* sg_backward_ex: each parameter is reported once, when its gradient is final (a snapshot
 * taken in the notification equals the gradient after the walk, bit for bit), nearest the
 * loss first: the head, then the second layer of a stack, then the first. */
typedef struct {
    int n;
    sg_tensor *who[16];
    double *snap[16];
} ready_log;
static void on_ready(void *user, sg_tensor *p) {
    ready_log *r = user;
    ck_assert_int_lt(r->n, 16);
    sg_tensor *g = p->grad;
    r->who[r->n] = p;
    r->snap[r->n] = malloc((size_t)sg_numel(g) * sizeof(double));
    for (int64_t i = 0; i < sg_numel(g); i++)
        r->snap[r->n][i] = sg_get_flat(g, i);
    r->n++;
}
START_TEST(test_backward_ready) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *st = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 5);
    sg_rnn_options o = sg_rnn_defaults(SG_CELL_LSTM, 3, 4);
    o.dtype = SG_F64;
    o.num_layers = 2;
    o.return_sequences = false;
    sg_rnn *rnn = sg_rnn_new(ctx, st, &o, "rnn", &rng);
    sg_dense *head = sg_dense_new(ctx, st, SG_F64, 4, 1, true, SG_ACT_LINEAR, "head", &rng);
    ck_assert_ptr_nonnull(rnn);
    ck_assert_ptr_nonnull(head);
    sg_tensor *unused = sg_store_param(ctx, st, "unused", SG_F64, SG_SHAPE(2));
    sg_tensor *x = sg_rand_normal(ctx, SG_F64, SG_SHAPE(2, 5, 3), 0, 1);
    sg_rnn_output out;
    ck_assert_int_eq(sg_rnn_forward(ctx, rnn, x, NULL, NULL, NULL, &out), 0);
    sg_tensor *loss = sg_sum(ctx, sg_square(ctx, sg_dense_forward(ctx, head, out.y)));
    ready_log r = {0};
    sg_backward_options bo = {.grad_ready = on_ready, .user = &r};
    ck_assert_int_eq(sg_backward_ex(ctx, loss, NULL, &bo), 0);
    /* every parameter but the unused one, each once */
    ck_assert_int_eq(r.n, sg_store_size(st) - 1);
    int pos[16];
    for (int i = 0; i < sg_store_size(st); i++) {
        sg_tensor *p = sg_store_at(st, i);
        pos[i] = -1;
        for (int k = 0; k < r.n; k++)
            if (r.who[k] == p) {
                ck_assert_int_eq(pos[i], -1);
                pos[i] = k;
                sg_tensor *g = p->grad;
                for (int64_t j = 0; j < sg_numel(g); j++)
                    ck_assert_double_eq(r.snap[k][j], sg_get_flat(g, j));
            }
        ck_assert_int_eq(pos[i] == -1, p == unused);
    }
    /* order: head before layer 1 (l1) before layer 0 */
    int head_last = -1, l1_last = -1, l0_first = 99, l1_first = 99;
    for (int i = 0; i < sg_store_size(st); i++) {
        const char *nm = sg_store_name_at(st, i);
        if (pos[i] < 0)
            continue;
        if (!strncmp(nm, "head", 4) && pos[i] > head_last)
            head_last = pos[i];
        else if (strstr(nm, "_l1") || strstr(nm, "l1.")) {
            l1_last = pos[i] > l1_last ? pos[i] : l1_last;
            l1_first = pos[i] < l1_first ? pos[i] : l1_first;
        } else if (strncmp(nm, "head", 4))
            l0_first = pos[i] < l0_first ? pos[i] : l0_first;
    }
    ck_assert_int_lt(head_last, l1_first);
    ck_assert_int_lt(l1_last, l0_first);
    for (int k = 0; k < r.n; k++)
        free(r.snap[k]);
    /* without a callback: sg_backward */
    sg_ctx_reset(ctx);
    sg_store_zero_grad(st);
    ck_assert_int_eq(sg_backward_ex(ctx, NULL, NULL, &bo), -1);
    sg_rnn_free(rnn);
    sg_dense_free(head);
    sg_store_free(st);
    sg_ctx_free(ctx);
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"tape",
         0,
         {{test_backward_scalar_and_accumulate, 1},
          {test_backward_upstream_and_retain, 1},
          {test_backward_errors, 1},
          {test_params_and_reset, 1},
          {test_gradcheck_reports, 1},
          {test_dot, 1},
          {test_anomaly, 1},
          {test_op_table, 1},
          {test_custom_op, 1},
          {test_store, 1},
          {test_copy_values, 1},
          {test_backward_ready, 1}}},
    };
    return CK_RUN("autograd", tcases, NULL, NULL);
}
