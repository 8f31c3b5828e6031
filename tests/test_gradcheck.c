/* Gradient checking as a student meets it: the rough edges (a function returning NULL, a bad
 * step, float32 inputs), the breakdown by time step and gate (sg_gradcheck_rnn) finding a
 * deliberately broken step and gate, and the graph labelled by step and gate (DOT). */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seqgrad.h"

#include "cksuite.h"
#include "errtest.h"

static sg_tensor *f_null(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)ctx, (void)in, (void)user;
    return NULL;
}

static sg_tensor *f_sig(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user;
    return sg_sum(ctx, sg_sigmoid(ctx, sg_mul(ctx, in[0], in[0])));
}

START_TEST(test_rough_edges) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_tensor *x = sg_set_requires_grad(sg_full(ctx, SG_F64, SG_SHAPE(3), 0.5), true);
    ck_assert_int_eq(sg_gradcheck(ctx, f_null, NULL, 1, &x, NULL, NULL), -1);
    EXPECT_ERR(ctx, "sg_gradcheck: the function returned NULL (the analytic pass)");
    sg_gradcheck_opts o = sg_gradcheck_defaults();
    double bad[] = {0, -1e-6, NAN, INFINITY};
    const char *msg[] = {"sg_gradcheck: eps = 0 must be positive and finite",
                         "sg_gradcheck: eps = -1e-06 must be positive and finite",
                         "sg_gradcheck: eps = nan must be positive and finite",
                         "sg_gradcheck: eps = inf must be positive and finite"};
    for (int i = 0; i < 4; i++) {
        o.eps = bad[i];
        ck_assert_int_eq(sg_gradcheck(ctx, f_sig, NULL, 1, &x, &o, NULL), -1);
        EXPECT_ERR(ctx, msg[i]);
    }
    o = sg_gradcheck_defaults();
    o.rtol = -1;
    ck_assert_int_eq(sg_gradcheck(ctx, f_sig, NULL, 1, &x, &o, NULL), -1);
    EXPECT_ERR(ctx, "sg_gradcheck: atol = 1e-07 and rtol = -1 must be >= 0");
    /* float32: the defaults for float32 pass a correct op; float64's do not */
    sg_tensor *x32 = sg_set_requires_grad(
        sg_from_data(ctx, SG_F32, SG_SHAPE(3), (double[]){0.3, -1.2, 2}), true);
    sg_gradcheck_report r;
    ck_assert_int_eq(sg_gradcheck(ctx, f_sig, NULL, 1, &x32, NULL, &r), 1);
    ck_assert(r.max_abs < 1e-3);
    o = sg_gradcheck_defaults();
    ck_assert_int_eq(sg_gradcheck(ctx, f_sig, NULL, 1, &x32, &o, &r), 0);
    sg_gradcheck_opts d32 = sg_gradcheck_defaults_for(SG_F32);
    ck_assert_double_eq(d32.eps, 1e-3);
    ck_assert_double_eq(sg_gradcheck_defaults_for(SG_F64).eps, 1e-6);
    ck_assert_ptr_null(sg_ctx_error(ctx));
    sg_ctx_free(ctx);
}
END_TEST

/* ---- a hand-built LSTM whose forget gate's backward is wrong at one step -------------- */

typedef struct {
    int64_t bad_step; /* the step whose backward is off (-1: none) */
} sig_user;

static sg_tensor *sig_fw(sg_ctx *ctx, int n, sg_tensor *const *in, void *user) {
    (void)n, (void)user;
    return sg_sigmoid(ctx, in[0]);
}

/* din += y (1 - y) dout, times 1.5 at the bad step (the deliberate bug) */
static int sig_bw(sg_ctx *ctx, int n, sg_tensor *const *in, const sg_tensor *out,
                  const sg_tensor *dout, sg_tensor *const *din, void *user) {
    (void)ctx, (void)n, (void)in;
    const sig_user *u = user;
    double k = sg_node_step(out) == u->bad_step ? 1.5 : 1.0;
    for (int64_t i = 0; i < sg_numel(out); i++) {
        double y = sg_get_flat(out, i);
        sg_set_flat(din[0], i, sg_get_flat(din[0], i) + k * y * (1 - y) * sg_get_flat(dout, i));
    }
    return 0;
}

typedef struct {
    int sig; /* the custom op's id */
    int64_t T, H;
} mini;

/* inputs: x (B, T, I), W (I, 4H), U (H, 4H); a four-gate LSTM with c_0 = h_0 = 0.5 */
static sg_tensor *mini_lstm(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    const mini *m = user;
    int64_t B = in[0]->shape[0], H = m->H;
    sg_tensor *h = sg_full(ctx, SG_F64, SG_SHAPE(B, H), 0.5), *c = h;
    for (int64_t t = 0; t < m->T; t++) {
        sg_ctx_set_step(ctx, t);
        sg_tensor *z = sg_add(ctx, sg_matmul(ctx, sg_select(ctx, in[0], 1, t), in[1]),
                              sg_matmul(ctx, h, in[2]));
        z = sg_gate_probe(ctx, z, "ifco");
        sg_tensor *zi = sg_slice(ctx, z, 1, 0, H), *zf = sg_slice(ctx, z, 1, H, H);
        sg_tensor *zc = sg_slice(ctx, z, 1, 2 * H, H), *zo = sg_slice(ctx, z, 1, 3 * H, H);
        sg_tensor *f = sg_custom(ctx, m->sig, 1, &zf);
        c = sg_add(ctx, sg_mul(ctx, f, c), sg_mul(ctx, sg_sigmoid(ctx, zi), sg_tanh(ctx, zc)));
        h = sg_mul(ctx, sg_sigmoid(ctx, zo), sg_tanh(ctx, c));
    }
    sg_ctx_set_step(ctx, -1);
    return sg_sum(ctx, sg_square(ctx, h));
}

START_TEST(test_rnn_finds_step_and_gate) {
    sg_ctx *ctx = sg_ctx_new(0);
    sig_user u = {.bad_step = 2};
    int sig = sg_op_register(ctx, &(sg_custom_op){.name = "my_sigmoid",
                                                  .forward = sig_fw,
                                                  .backward = sig_bw,
                                                  .user = &u,
                                                  .reads_output = true});
    ck_assert_int_ge(sig, 0);
    mini m = {.sig = sig, .T = 5, .H = 2};
    sg_rng_seed(sg_ctx_rng(ctx), 3);
    sg_tensor *x = sg_rand_normal(ctx, SG_F64, SG_SHAPE(2, 5, 3), 0, 1);
    sg_tensor *W = sg_set_requires_grad(sg_rand_normal(ctx, SG_F64, SG_SHAPE(3, 8), 0, 1), true);
    sg_tensor *U = sg_set_requires_grad(sg_rand_normal(ctx, SG_F64, SG_SHAPE(2, 8), 0, 1), true);
    sg_tensor *in[3] = {x, W, U};
    /* the parameters' check says that something is wrong, not where */
    sg_gradcheck_report pr[3];
    ck_assert_int_eq(sg_gradcheck(ctx, mini_lstm, &m, 3, in, NULL, pr), 0);
    sg_gradcheck_rnn_report r;
    ck_assert_int_eq(sg_gradcheck_rnn(ctx, mini_lstm, &m, 3, in, NULL, &r), 0);
    ck_assert_int_eq(r.rows, 5);
    ck_assert_int_eq(r.gates, 4);
    ck_assert_str_eq(r.gate_names, "ifco");
    ck_assert_int_eq(r.step[r.worst_row], 2);
    ck_assert_int_eq(r.gate_names[r.worst_gate], 'f');
    /* every other cell agrees; f at step 2 is off by half its value */
    for (int j = 0; j < r.rows; j++)
        for (int g = 0; g < r.gates; g++) {
            int cell = j * r.gates + g;
            ck_assert(r.visited[cell]);
            if (r.step[j] == 2 && g == 1) {
                ck_assert(r.max_abs[cell] > 1e-4);
                ck_assert_double_eq_tol(r.analytic[cell] / r.numeric[cell], 1.5, 1e-6);
            } else if (r.step[j] < 2) { /* later steps feed step 2 */
                ck_assert(r.max_abs[cell] > 0);
            } else {
                ck_assert_msg(r.max_abs[cell] < 1e-8, "step %lld gate %c: %g", (long long)r.step[j],
                              r.gate_names[g], r.max_abs[cell]);
            }
        }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(sg_gradcheck_rnn_print(f, &r), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "MISMATCH: worst at step 2, gate f"));
    free(buf);
    sg_gradcheck_rnn_report_free(&r);
    /* fixed: everything passes */
    u.bad_step = -1;
    ck_assert_int_eq(sg_gradcheck_rnn(ctx, mini_lstm, &m, 3, in, NULL, &r), 1);
    ck_assert(r.ok);
    sg_gradcheck_rnn_report_free(&r);
    ck_assert_int_eq(sg_gradcheck(ctx, mini_lstm, &m, 3, in, NULL, pr), 1);
    /* errors */
    ck_assert_int_eq(sg_gradcheck_rnn(ctx, f_sig, NULL, 1, &W, NULL, &r), -1);
    EXPECT_ERR(ctx, "sg_gradcheck_rnn: the function passed no sg_gate_probe (a recurrent layer's "
                    "cells place them)");
    ck_assert_int_eq(r.rows, 0);
    ck_assert_int_eq(sg_gradcheck_rnn(ctx, mini_lstm, &m, 3, in, NULL, NULL), -1);
    EXPECT_ERR(ctx, "sg_gradcheck_rnn: report is NULL");
    sg_gradcheck_rnn_report_free(NULL);
    sg_ctx_free(ctx);
}
END_TEST

/* ---- the layers' probes ------------------------------------------------------------------ */

typedef struct {
    sg_rnn *rnn;
} layer_user;

static sg_tensor *run_layer(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    layer_user *u = user;
    sg_rnn_output o;
    if (sg_rnn_forward(ctx, u->rnn, in[0], NULL, NULL, NULL, &o))
        return NULL;
    return o.y;
}

START_TEST(test_rnn_layers) {
    struct {
        sg_cell_kind cell;
        sg_lstm_impl impl;
        sg_in_place ip;
        const char *gates;
    } cases[] = {
        {SG_CELL_LSTM, SG_LSTM_FUSED, SG_IN_PLACE_AUTO, "ifco"},
        {SG_CELL_LSTM, SG_LSTM_FUSED, SG_IN_PLACE_ALWAYS, "ifco"},
        {SG_CELL_LSTM, SG_LSTM_GATES, SG_IN_PLACE_AUTO, "ifco"},
        {SG_CELL_GRU, SG_LSTM_FUSED, SG_IN_PLACE_AUTO, "zrh"},
        {SG_CELL_GRU, SG_LSTM_FUSED, SG_IN_PLACE_ALWAYS, "zrh"},
        {SG_CELL_RNN, SG_LSTM_FUSED, SG_IN_PLACE_AUTO, "h"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        sg_ctx *ctx = sg_ctx_new(0);
        sg_store *st = sg_store_new();
        sg_rnn_options o = sg_rnn_defaults(cases[k].cell, 2, 3);
        o.dtype = SG_F64;
        o.impl = cases[k].impl;
        o.in_place = cases[k].ip;
        sg_rng_seed(sg_ctx_rng(ctx), 7);
        layer_user u = {sg_rnn_new(ctx, st, &o, NULL, NULL)};
        ck_assert_ptr_nonnull(u.rnn);
        sg_tensor *x = sg_rand_normal(ctx, SG_F64, SG_SHAPE(2, 4, 2), 0, 1);
        sg_gradcheck_rnn_report r;
        ck_assert_int_eq(sg_gradcheck_rnn(ctx, run_layer, &u, 1, &x, NULL, &r), 1);
        ck_assert_int_eq(r.rows, 4);
        ck_assert_str_eq(r.gate_names, cases[k].gates);
        for (int j = 0; j < r.rows; j++) {
            ck_assert_int_eq(r.step[j], j);
            /* the gates cell skips the forget gate at step 0 (c_0 = 0); the fused one
             * computes it in one block with the others (and its gradient is zero) */
            for (int g = 0; g < r.gates; g++)
                ck_assert(r.visited[j * r.gates + g] ==
                          !(j == 0 && r.gate_names[g] == 'f' && cases[k].impl == SG_LSTM_GATES));
        }
        ck_assert(r.max_abs[r.worst_row * r.gates + r.worst_gate] < 1e-8);
        sg_gradcheck_rnn_report_free(&r);
        ck_assert_ptr_null(sg_ctx_error(ctx));
        sg_rnn_free(u.rnn);
        sg_store_free(st);
        sg_ctx_free(ctx);
    }
}
END_TEST

/* ---- the graph: clusters per step, gates by name --------------------------------------- */

static char *dot_of(sg_ctx *ctx, sg_tensor *y) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(sg_dot_write(ctx, y, f), 0);
    fclose(f);
    return buf;
}

START_TEST(test_dot_steps_and_gates) {
    for (int impl = 0; impl < 2; impl++) {
        sg_ctx *ctx = sg_ctx_new(0);
        sg_store *st = sg_store_new();
        sg_rnn_options o = sg_rnn_defaults(SG_CELL_LSTM, 2, 3);
        o.impl = impl ? SG_LSTM_GATES : SG_LSTM_FUSED;
        sg_rnn *rnn = sg_rnn_new(ctx, st, &o, NULL, NULL);
        sg_tensor *x = sg_ones(ctx, SG_F32, SG_SHAPE(1, 3, 2));
        sg_tensor_set_name(x, "x");
        ck_assert(!sg_ctx_set_labels(ctx, true));
        sg_rnn_output out;
        ck_assert_int_eq(sg_rnn_forward(ctx, rnn, x, NULL, NULL, NULL, &out), 0);
        sg_tensor *loss = sg_sum(ctx, out.y);
        ck_assert_int_eq(sg_node_step(loss), -1);
        ck_assert_int_eq(sg_node_step(x), -1);
        char *dot = dot_of(ctx, loss);
        if (getenv("SG_SHOW_DOT"))
            puts(dot);
        for (int t = 0; t < 3; t++) {
            char want[64];
            snprintf(want, sizeof want, "subgraph cluster_t%d {\n    label=\"t = %d\";", t, t);
            ck_assert_msg(strstr(dot, want), "%s", want);
        }
        ck_assert_ptr_null(strstr(dot, "cluster_t3"));
        ck_assert_ptr_nonnull(strstr(dot, "c_t (f_t skipped: c_0 = 0) = mul"));
        ck_assert_ptr_nonnull(strstr(dot, "label=\"h_t = mul\\n(1, 3)\""));
        if (impl) {
            ck_assert_ptr_nonnull(strstr(dot, "label=\"f_t = sigmoid\\n(1, 3)\""));
            ck_assert_ptr_nonnull(strstr(dot, "label=\"c~_t = tanh\\n(1, 3)\""));
            ck_assert_ptr_nonnull(strstr(dot, "label=\"lstm.W_f\\n(5, 3) float32\""));
            ck_assert_ptr_nonnull(strstr(dot, "z_t[f] = addmm"));
            ck_assert_ptr_nonnull(strstr(dot, "label=\"x_t\\n(1, 2) float32\""));
            ck_assert_ptr_nonnull(strstr(dot, "label=\"[h_t-1, x_t]\\n(1, 5) float32\""));
        } else {
            ck_assert_ptr_nonnull(strstr(dot, "label=\"f_t = slice\\n(1, 3)\""));
            ck_assert_ptr_nonnull(strstr(dot, "label=\"lstm.kernel\\n(2, 12) float32\""));
            ck_assert_ptr_nonnull(strstr(dot, "z_t[ifco] = addmm"));
            ck_assert_ptr_nonnull(strstr(dot, "label=\"x\\n(1, 3, 2) float32\""));
        }
        free(dot);
        /* labels off: no names, but still the clusters */
        sg_ctx_reset(ctx);
        ck_assert(sg_ctx_set_labels(ctx, false));
        x = sg_ones(ctx, SG_F32, SG_SHAPE(1, 3, 2));
        ck_assert_int_eq(sg_rnn_forward(ctx, rnn, x, NULL, NULL, NULL, &out), 0);
        dot = dot_of(ctx, out.y);
        ck_assert_ptr_null(strstr(dot, "f_t"));
        ck_assert_ptr_nonnull(strstr(dot, "cluster_t2"));
        ck_assert_int_eq(sg_node_step(out.h_n), -1);
        free(dot);
        ck_assert_ptr_null(sg_label(ctx, NULL, "a"));
        ck_assert_int_eq(sg_ctx_set_step(NULL, 3), -1);
        ck_assert_int_eq(sg_ctx_set_step(ctx, 5), -1);
        ck_assert_int_eq(sg_ctx_set_step(ctx, -7), 5);
        sg_rnn_free(rnn);
        sg_store_free(st);
        sg_ctx_free(ctx);
    }
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"gradcheck",
         0,
         {{test_rough_edges, 1},
          {test_rnn_finds_step_and_gate, 1},
          {test_rnn_layers, 1},
          {test_dot_steps_and_gates, 1}}},
    };
    return CK_RUN("gradcheck", tcases, NULL, NULL);
}
