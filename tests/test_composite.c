/* Composite graphs against PyTorch: values and every gradient of small models built from
 * several ops, compared with float64 references that tests/fixtures/gen_composite.py
 * computed with torch (see tests/fixtures/README.md; PyTorch is not needed to run this).
 *
 *  (a) a two-layer MLP, pred = tanh(x @ W1 + b1) @ W2 + b2, under MSE, softmax
 *      cross-entropy (integer labels) and BCE-with-logits (mean reduction, as in torch);
 *  (b) z = sum(x * sigmoid(x) + exp(x / 3) * y - log(x * x + 1)): x used five times, y
 *      broadcast over x's rows, so gradients must accumulate across uses;
 *  (c) softmax and log_softmax along axis 0, folded by weighted sums.
 * Plus variants that feed the MLP strided inputs (a transposed W1, a row slice of a bigger
 * x) and that run backward twice to check accumulation.
 *
 * Tolerances: float64 |got - ref| <= 1e-14 + 1e-12 |ref| (the references are float64 too;
 * only summation order differs). float32 |got - ref| <= 1e-6 + 1e-5 |ref|: the inputs are
 * rounded to float32 (relative 6e-8) and every op rounds again; the 1e-6 absolute floor
 * covers gradient entries near zero that are differences of O(1) terms.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "fixtures/composite.h"
#include "tensor/tensor.h"

#include "cksuite.h"

#define N_ELEMS(a) ((int64_t)(sizeof(a) / sizeof((a)[0])))

static const sg_dtype k_dtypes[2] = {SG_F64, SG_F32};

/* A leaf tensor of dtype dt holding the float64 fixture values (rounded for float32). */
static sg_tensor *leaf(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, const double *data,
                       int64_t n, bool requires_grad) {
    sg_tensor *t = sg_tensor_new(ctx, dt, ndim, shape);
    ck_assert_msg(t != NULL, "sg_tensor_new: %s", sg_ctx_error(ctx));
    ck_assert_int_eq(sg_numel(t), n);
    for (int64_t i = 0; i < n; i++)
        ck_assert_int_eq(sg_set_flat(t, i, data[i]), 0);
    if (requires_grad)
        sg_set_requires_grad(t, true);
    return t;
}

static double rtol_of(sg_dtype dt) { return dt == SG_F64 ? 1e-12 : 1e-5; }
static double atol_of(sg_dtype dt) { return dt == SG_F64 ? 1e-14 : 1e-6; }

/* Compare `got` with the fixture array `ref` (row-major, got's shape); on failure report
 * the worst element with its multi-index. */
static void check_close(sg_ctx *ctx, const char *what, const sg_tensor *got, const double *ref,
                        int64_t n) {
    ck_assert_msg(got != NULL, "%s: tensor is NULL (%s)", what,
                  sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "no error recorded");
    ck_assert_msg(sg_numel(got) == n, "%s: %lld elements, fixture has %lld", what,
                  (long long)sg_numel(got), (long long)n);
    sg_tensor *r = sg_from_data(ctx, SG_F64, got->ndim, got->shape, ref);
    ck_assert_msg(r != NULL, "%s: sg_from_data: %s", what, sg_ctx_error(ctx));
    sg_compare_result res;
    int rc = sg_compare(ctx, got, r, rtol_of(got->dtype), atol_of(got->dtype), &res);
    ck_assert_msg(rc >= 0, "%s: sg_compare: %s", what, sg_ctx_error(ctx));
    if (rc != 0) {
        char idx[96], shp[96];
        sg_shape_str(got->ndim, res.worst_index, idx, sizeof idx);
        sg_shape_str(got->ndim, got->shape, shp, sizeof shp);
        ck_abort_msg("%s (%s, %s): %lld of %lld elements off; worst at %s: got %.17g, "
                     "expected %.17g (abs %.3g, max rel %.3g)",
                     what, sg_dtype_name(got->dtype), shp, (long long)res.n_mismatch, (long long)n,
                     idx, sg_get_flat(got, res.worst_flat), ref[res.worst_flat], res.max_abs,
                     res.max_rel);
    }
}

#define CHECK(ctx, what, got, ref) check_close(ctx, what, got, ref, N_ELEMS(ref))

/* ---- (a) the MLP ----------------------------------------------------------------------- */

typedef enum { LOSS_MSE, LOSS_CE, LOSS_BCE } loss_kind;

typedef struct mlp {
    sg_tensor *x, *W1, *b1, *W2, *b2; /* the leaves whose gradients are checked */
    sg_tensor *pred, *loss;
} mlp;

static sg_tensor *mlp_loss(sg_ctx *ctx, sg_tensor *pred, loss_kind kind, sg_dtype dt) {
    switch (kind) {
    case LOSS_MSE:
        return sg_mse_loss(
            ctx, pred,
            leaf(ctx, dt, SG_SHAPE(MLP_N, MLP_O), mlp_mse_target, N_ELEMS(mlp_mse_target), false));
    case LOSS_CE:
        return sg_cross_entropy(ctx, pred,
                                sg_from_data(ctx, SG_I32, SG_SHAPE(MLP_N), mlp_ce_labels));
    case LOSS_BCE:
        return sg_bce_with_logits(
            ctx, pred,
            leaf(ctx, dt, SG_SHAPE(MLP_N, MLP_O), mlp_bce_target, N_ELEMS(mlp_bce_target), false));
    }
    return NULL;
}

/* pred = tanh(x @ W1 + b1) @ W2 + b2 from the given (possibly strided) operands. */
static sg_tensor *mlp_pred(sg_ctx *ctx, sg_tensor *x, sg_tensor *W1, sg_tensor *b1, sg_tensor *W2,
                           sg_tensor *b2) {
    sg_tensor *h = sg_tanh(ctx, sg_add(ctx, sg_matmul(ctx, x, W1), b1));
    return sg_add(ctx, sg_matmul(ctx, h, W2), b2);
}

static mlp mlp_build(sg_ctx *ctx, sg_dtype dt, loss_kind kind) {
    mlp m;
    m.x = leaf(ctx, dt, SG_SHAPE(MLP_N, MLP_I), mlp_x, N_ELEMS(mlp_x), true);
    m.W1 = leaf(ctx, dt, SG_SHAPE(MLP_I, MLP_H), mlp_W1, N_ELEMS(mlp_W1), true);
    m.b1 = leaf(ctx, dt, SG_SHAPE(MLP_H), mlp_b1, N_ELEMS(mlp_b1), true);
    m.W2 = leaf(ctx, dt, SG_SHAPE(MLP_H, MLP_O), mlp_W2, N_ELEMS(mlp_W2), true);
    m.b2 = leaf(ctx, dt, SG_SHAPE(MLP_O), mlp_b2, N_ELEMS(mlp_b2), true);
    m.pred = mlp_pred(ctx, m.x, m.W1, m.b1, m.W2, m.b2);
    m.loss = mlp_loss(ctx, m.pred, kind, dt);
    ck_assert_msg(m.loss != NULL, "MLP forward failed: %s", sg_ctx_error(ctx));
    ck_assert_int_eq(m.loss->ndim, 0);
    return m;
}

/* The references of one loss variant. */
typedef struct mlp_ref {
    const char *name;
    const double *pred, *loss, *dx, *dW1, *db1, *dW2, *db2;
} mlp_ref;

static const mlp_ref k_mlp_refs[3] = {
    [LOSS_MSE] = {"mse", mlp_mse_pred, mlp_mse_loss, mlp_mse_dx, mlp_mse_dW1, mlp_mse_db1,
                  mlp_mse_dW2, mlp_mse_db2},
    [LOSS_CE] = {"cross_entropy", mlp_ce_pred, mlp_ce_loss, mlp_ce_dx, mlp_ce_dW1, mlp_ce_db1,
                 mlp_ce_dW2, mlp_ce_db2},
    [LOSS_BCE] = {"bce_with_logits", mlp_bce_pred, mlp_bce_loss, mlp_bce_dx, mlp_bce_dW1,
                  mlp_bce_db1, mlp_bce_dW2, mlp_bce_db2},
};

/* Check the gradients of an MLP's leaves against ref, scaled by `times` (backward runs). */
static void mlp_check_grads(sg_ctx *ctx, const mlp *m, const mlp_ref *r, double times) {
    const struct {
        const char *n;
        const sg_tensor *t;
        const double *g;
    } gs[5] = {{"dx", m->x, r->dx},
               {"dW1", m->W1, r->dW1},
               {"db1", m->b1, r->db1},
               {"dW2", m->W2, r->dW2},
               {"db2", m->b2, r->db2}};
    for (int i = 0; i < 5; i++) {
        char what[64];
        snprintf(what, sizeof what, "mlp %s %s", r->name, gs[i].n);
        ck_assert_msg(gs[i].t->grad != NULL, "%s: no gradient", what);
        int64_t n = sg_numel(gs[i].t);
        double scaled[MLP_I * MLP_H]; /* the largest parameter */
        ck_assert_int_le(n, N_ELEMS(scaled));
        for (int64_t k = 0; k < n; k++)
            scaled[k] = times * gs[i].g[k];
        check_close(ctx, what, gs[i].t->grad, scaled, n);
    }
}

static void mlp_case(sg_dtype dt, loss_kind kind) {
    sg_ctx *ctx = sg_ctx_new(0);
    ck_assert_ptr_nonnull(ctx);
    const mlp_ref *r = &k_mlp_refs[kind];
    mlp m = mlp_build(ctx, dt, kind);
    char what[64];
    snprintf(what, sizeof what, "mlp %s pred", r->name);
    check_close(ctx, what, m.pred, r->pred, MLP_N * MLP_O);
    snprintf(what, sizeof what, "mlp %s loss", r->name);
    check_close(ctx, what, m.loss, r->loss, 1);
    ck_assert_msg(sg_backward(ctx, m.loss, NULL) == 0, "sg_backward: %s", sg_ctx_error(ctx));
    mlp_check_grads(ctx, &m, r, 1.0);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}

START_TEST(test_mlp_mse) { mlp_case(k_dtypes[_i], LOSS_MSE); }
END_TEST

START_TEST(test_mlp_cross_entropy) { mlp_case(k_dtypes[_i], LOSS_CE); }
END_TEST

START_TEST(test_mlp_bce_with_logits) { mlp_case(k_dtypes[_i], LOSS_BCE); }
END_TEST

/* Two forward/backward passes without zeroing: every leaf's gradient is twice torch's. */
START_TEST(test_mlp_backward_accumulates) {
    sg_dtype dt = k_dtypes[_i];
    sg_ctx *ctx = sg_ctx_new(0);
    mlp m = mlp_build(ctx, dt, LOSS_BCE);
    ck_assert_int_eq(sg_backward(ctx, m.loss, NULL), 0);
    /* Rebuild the graph over the same leaves and backpropagate again. */
    sg_tensor *pred = mlp_pred(ctx, m.x, m.W1, m.b1, m.W2, m.b2);
    sg_tensor *loss = mlp_loss(ctx, pred, LOSS_BCE, dt);
    ck_assert_msg(sg_backward(ctx, loss, NULL) == 0, "sg_backward: %s", sg_ctx_error(ctx));
    mlp_check_grads(ctx, &m, &k_mlp_refs[LOSS_BCE], 2.0);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* The same MLP with strided operands: W1 is the transposed view of a (H, I) leaf holding
 * W1^T, and x is rows 1..4 of a (6, I) leaf. The leaves' gradients must be dW1^T and dx
 * padded with zero rows. */
START_TEST(test_mlp_strided_inputs) {
    sg_dtype dt = k_dtypes[_i];
    sg_ctx *ctx = sg_ctx_new(0);
    double w1t[MLP_H * MLP_I], xbig[6 * MLP_I] = {0};
    for (int i = 0; i < MLP_I; i++)
        for (int j = 0; j < MLP_H; j++)
            w1t[j * MLP_I + i] = mlp_W1[i * MLP_H + j];
    for (int k = 0; k < MLP_N * MLP_I; k++)
        xbig[MLP_I + k] = mlp_x[k];
    xbig[0] = 7.0; /* rows 0 and 5 must not matter */
    xbig[5 * MLP_I + 2] = -3.0;
    sg_tensor *W1T = leaf(ctx, dt, SG_SHAPE(MLP_H, MLP_I), w1t, N_ELEMS(w1t), true);
    sg_tensor *X = leaf(ctx, dt, SG_SHAPE(6, MLP_I), xbig, N_ELEMS(xbig), true);
    sg_tensor *b1 = leaf(ctx, dt, SG_SHAPE(MLP_H), mlp_b1, N_ELEMS(mlp_b1), true);
    sg_tensor *W2 = leaf(ctx, dt, SG_SHAPE(MLP_H, MLP_O), mlp_W2, N_ELEMS(mlp_W2), true);
    sg_tensor *b2 = leaf(ctx, dt, SG_SHAPE(MLP_O), mlp_b2, N_ELEMS(mlp_b2), true);
    sg_tensor *W1 = sg_transpose(ctx, W1T, 0, 1);
    sg_tensor *x = sg_slice(ctx, X, 0, 1, MLP_N);
    ck_assert_msg(W1 && x, "views: %s", sg_ctx_error(ctx));
    ck_assert(!sg_is_contiguous(W1));
    sg_tensor *pred = mlp_pred(ctx, x, W1, b1, W2, b2);
    sg_tensor *loss = mlp_loss(ctx, pred, LOSS_MSE, dt);
    check_close(ctx, "strided mlp mse pred", pred, mlp_mse_pred, MLP_N * MLP_O);
    check_close(ctx, "strided mlp mse loss", loss, mlp_mse_loss, 1);
    ck_assert_msg(sg_backward(ctx, loss, NULL) == 0, "sg_backward: %s", sg_ctx_error(ctx));

    double dw1t[MLP_H * MLP_I], dxbig[6 * MLP_I] = {0};
    for (int i = 0; i < MLP_I; i++)
        for (int j = 0; j < MLP_H; j++)
            dw1t[j * MLP_I + i] = mlp_mse_dW1[i * MLP_H + j];
    for (int k = 0; k < MLP_N * MLP_I; k++)
        dxbig[MLP_I + k] = mlp_mse_dx[k];
    CHECK(ctx, "strided mlp d(W1^T)", W1T->grad, dw1t);
    CHECK(ctx, "strided mlp d(x padded)", X->grad, dxbig);
    CHECK(ctx, "strided mlp db1", b1->grad, mlp_mse_db1);
    CHECK(ctx, "strided mlp dW2", W2->grad, mlp_mse_dW2);
    CHECK(ctx, "strided mlp db2", b2->grad, mlp_mse_db2);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- (b) one tensor used many times ---------------------------------------------------- */

/* z = sum(x * sigmoid(x) + exp(x / 3) * y - log(x * x + 1)); inputs[0] = x, inputs[1] = y. */
static sg_tensor *reuse_fn(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user;
    sg_tensor *x = in[0], *y = in[1];
    sg_tensor *a = sg_mul(ctx, x, sg_sigmoid(ctx, x));
    sg_tensor *three = sg_scalar(ctx, x->dtype, 3.0); /* 0-d: broadcasts like torch's x / 3 */
    sg_tensor *b = sg_mul(ctx, sg_exp(ctx, sg_div(ctx, x, three)), y);
    sg_tensor *c = sg_log(ctx, sg_add_scalar(ctx, sg_mul(ctx, x, x), 1.0));
    return sg_sum(ctx, sg_sub(ctx, sg_add(ctx, a, b), c));
}

START_TEST(test_reuse) {
    sg_dtype dt = k_dtypes[_i];
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *in[2] = {leaf(ctx, dt, SG_SHAPE(REUSE_M, REUSE_N), reuse_x, N_ELEMS(reuse_x), true),
                        leaf(ctx, dt, SG_SHAPE(REUSE_N), reuse_y, N_ELEMS(reuse_y), true)};
    sg_tensor *z = reuse_fn(ctx, in, NULL);
    check_close(ctx, "reuse z", z, reuse_z, 1);
    ck_assert_msg(sg_backward(ctx, z, NULL) == 0, "sg_backward: %s", sg_ctx_error(ctx));
    CHECK(ctx, "reuse dx", in[0]->grad, reuse_dx);
    CHECK(ctx, "reuse dy (broadcast)", in[1]->grad, reuse_dy);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* The same expression by central differences: independent of torch and of the fixtures'
 * loss, it pins the analytic gradient of x (five uses) and of the broadcast y. */
START_TEST(test_reuse_gradcheck) {
    sg_dtype dt = k_dtypes[_i];
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *in[2] = {leaf(ctx, dt, SG_SHAPE(REUSE_M, REUSE_N), reuse_x, N_ELEMS(reuse_x), true),
                        leaf(ctx, dt, SG_SHAPE(REUSE_N), reuse_y, N_ELEMS(reuse_y), true)};
    sg_gradcheck_opts o = sg_gradcheck_defaults();
    if (dt == SG_F32) {
        o.eps = 1e-2;
        o.rtol = 1e-2;
        o.atol = 1e-3;
    } else {
        o.atol = 1e-8;
        o.rtol = 1e-6;
    }
    sg_gradcheck_report rep[2];
    int rc = sg_gradcheck(ctx, reuse_fn, NULL, 2, in, &o, rep);
    ck_assert_msg(rc == 1,
                  "gradcheck rc %d (%s): x max_abs %.3g (analytic %.10g numeric %.10g), "
                  "y max_abs %.3g",
                  rc, sg_ctx_error(ctx) ? sg_ctx_error(ctx) : "-", rep[0].max_abs, rep[0].analytic,
                  rep[0].numeric, rep[1].max_abs);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- (c) softmax / log_softmax along axis 0 -------------------------------------------- */

START_TEST(test_softmax_axis0) {
    sg_dtype dt = k_dtypes[_i];
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = leaf(ctx, dt, SG_SHAPE(SMAX_M, SMAX_N), smax_a, N_ELEMS(smax_a), true);
    sg_tensor *w1 = leaf(ctx, dt, SG_SHAPE(SMAX_M, SMAX_N), smax_w1, N_ELEMS(smax_w1), false);
    sg_tensor *w2 = leaf(ctx, dt, SG_SHAPE(SMAX_M, SMAX_N), smax_w2, N_ELEMS(smax_w2), false);
    sg_tensor *sm = sg_softmax(ctx, a, 0);
    sg_tensor *lsm = sg_log_softmax(ctx, a, 0);
    sg_tensor *z = sg_add(ctx, sg_sum(ctx, sg_mul(ctx, sm, w1)), sg_sum(ctx, sg_mul(ctx, lsm, w2)));
    CHECK(ctx, "softmax(a, 0)", sm, smax_softmax);
    CHECK(ctx, "log_softmax(a, 0)", lsm, smax_log_softmax);
    check_close(ctx, "softmax z", z, smax_z, 1);
    ck_assert_msg(sg_backward(ctx, z, NULL) == 0, "sg_backward: %s", sg_ctx_error(ctx));
    CHECK(ctx, "softmax da", a->grad, smax_da);
    /* The weights did not require grad: backward must leave them without a gradient. */
    ck_assert_ptr_null(w1->grad);
    ck_assert_ptr_null(w2->grad);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* The same along the LAST axis of the transposed input: softmax(a^T, 1) is the transpose
 * of softmax(a, 0), and the gradient reaching a is unchanged. */
START_TEST(test_softmax_axis0_via_transpose) {
    sg_dtype dt = k_dtypes[_i];
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *a = leaf(ctx, dt, SG_SHAPE(SMAX_M, SMAX_N), smax_a, N_ELEMS(smax_a), true);
    sg_tensor *w1 = leaf(ctx, dt, SG_SHAPE(SMAX_M, SMAX_N), smax_w1, N_ELEMS(smax_w1), false);
    sg_tensor *w2 = leaf(ctx, dt, SG_SHAPE(SMAX_M, SMAX_N), smax_w2, N_ELEMS(smax_w2), false);
    sg_tensor *at = sg_transpose(ctx, a, 0, 1); /* (N, M), strided */
    sg_tensor *sm = sg_transpose(ctx, sg_softmax(ctx, at, 1), 0, 1);
    sg_tensor *lsm = sg_transpose(ctx, sg_log_softmax(ctx, at, -1), 0, 1);
    sg_tensor *z = sg_add(ctx, sg_sum(ctx, sg_mul(ctx, sm, w1)), sg_sum(ctx, sg_mul(ctx, lsm, w2)));
    CHECK(ctx, "softmax(a^T, 1)^T", sm, smax_softmax);
    CHECK(ctx, "log_softmax(a^T, -1)^T", lsm, smax_log_softmax);
    check_close(ctx, "softmax z (transposed)", z, smax_z, 1);
    ck_assert_msg(sg_backward(ctx, z, NULL) == 0, "sg_backward: %s", sg_ctx_error(ctx));
    CHECK(ctx, "softmax da (transposed)", a->grad, smax_da);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

int main(void) {
    /* _i = 0: float64, _i = 1: float32 */
    const ck_tcase tcases[] = {
        {"pytorch",
         0,
         {{test_mlp_mse, 2},
          {test_mlp_cross_entropy, 2},
          {test_mlp_bce_with_logits, 2},
          {test_mlp_backward_accumulates, 2},
          {test_mlp_strided_inputs, 2},
          {test_reuse, 2},
          {test_reuse_gradcheck, 2},
          {test_softmax_axis0, 2},
          {test_softmax_axis0_via_transpose, 2}}},
    };
    return CK_RUN("composite", tcases, NULL, NULL);
}
