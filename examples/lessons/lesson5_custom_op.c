/* Lesson 5 (docs/tutorial.md): checking your own op.
 *
 * swish(x) = x sigmoid(x) as a custom op (sg_op_register: a forward and a backward of your
 * own). The first backward has a deliberate bug, the classic one: it forgets the product
 * rule and returns sigmoid(x) alone, dropping x sigmoid(x) (1 - sigmoid(x)).
 *
 *   1. sg_gradcheck on the op alone: the report (worst element, the two derivatives) and
 *      what it says;
 *   2. the op as the candidate activation of a small LSTM-style recurrence (five steps):
 *      sg_gradcheck_rnn's table, by time step and gate, of where the gradients disagree;
 *   3. the backward fixed: both checks pass.
 *
 * Run:  build/examples/lessons/lesson5_custom_op [--out DIR]
 * Exits nonzero unless the bug is caught (and located) and the fix passes.
 */
#include <math.h>

#include "lesson.h"

static sg_tensor *swish_fw(sg_ctx *ctx, int n, sg_tensor *const *in, void *user) {
    (void)n, (void)user;
    return sg_mul(ctx, in[0], sg_sigmoid(ctx, in[0]));
}

/* d swish / dx = s + x s (1 - s), s = sigmoid(x); the buggy one returns s. user: the bug on? */
static int swish_bw(sg_ctx *ctx, int n, sg_tensor *const *in, const sg_tensor *out,
                    const sg_tensor *dout, sg_tensor *const *din, void *user) {
    (void)ctx, (void)n, (void)out;
    const bool *buggy = user;
    for (int64_t i = 0; i < sg_numel(in[0]); i++) {
        double x = sg_get_flat(in[0], i), s = 1 / (1 + exp(-x));
        double d = *buggy ? s : s + x * s * (1 - s);
        sg_set_flat(din[0], i, sg_get_flat(din[0], i) + d * sg_get_flat(dout, i));
    }
    return 0;
}

static int swish_op;

/* 1: y = sum(swish(x) * w) over a vector */
static sg_tensor *f_op(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user;
    return sg_custom(ctx, swish_op, 1, &in[0]);
}

/* 2: five steps of an LSTM with swish as its candidate activation; inputs x (2, 5, 3),
 * W (3, 8), U (2, 8): z_t = x_t W + h_{t-1} U, gates i, f, c~ = swish, o; H = 2 */
static sg_tensor *f_lstm(sg_ctx *ctx, sg_tensor *const *in, void *user) {
    (void)user;
    const int64_t H = 2;
    sg_tensor *h = sg_zeros(ctx, SG_F64, SG_SHAPE(2, H)), *c = h;
    for (int64_t t = 0; t < 5; t++) {
        sg_ctx_set_step(ctx, t);
        sg_tensor *z = sg_add(ctx, sg_matmul(ctx, sg_select(ctx, in[0], 1, t), in[1]),
                              sg_matmul(ctx, h, in[2]));
        z = sg_gate_probe(ctx, z, "ifco"); /* what sg_gradcheck_rnn reads: dL/dz_t by gate */
        sg_tensor *zc = sg_slice(ctx, z, 1, 2 * H, H);
        sg_tensor *i = sg_sigmoid(ctx, sg_slice(ctx, z, 1, 0, H));
        sg_tensor *f = sg_sigmoid(ctx, sg_slice(ctx, z, 1, H, H));
        sg_tensor *o = sg_sigmoid(ctx, sg_slice(ctx, z, 1, 3 * H, H));
        c = sg_add(ctx, sg_mul(ctx, f, c), sg_mul(ctx, i, sg_custom(ctx, swish_op, 1, &zc)));
        h = sg_mul(ctx, o, sg_tanh(ctx, c));
    }
    sg_ctx_set_step(ctx, -1);
    return h;
}

/* Run both checks; returns the two results (1 pass, 0 fail, -1 error) and the worst cell. */
static int check_all(sg_ctx *ctx, sg_tensor *const *in, int *op_ok, int *rnn_ok,
                     char last_bad[SG_GATES_MAX + 1]) {
    sg_gradcheck_report r;
    sg_tensor *v = sg_set_requires_grad(
        sg_from_data(ctx, SG_F64, SG_SHAPE(5), (double[]){-2, -0.5, 0, 1, 3}), true);
    *op_ok = sg_gradcheck(ctx, f_op, NULL, 1, &v, NULL, &r);
    printf("sg_gradcheck of swish on x = [-2, -0.5, 0, 1, 3]: %s\n"
           "  worst element %lld: analytic %.6f, numeric %.6f, |difference| %.3g (relative %.3g)\n",
           *op_ok == 1 ? "pass" : "FAIL", (long long)r.worst_flat, r.analytic, r.numeric, r.max_abs,
           r.max_rel);
    sg_gradcheck_rnn_report rr;
    *rnn_ok = sg_gradcheck_rnn(ctx, f_lstm, NULL, 3, in, NULL, &rr);
    if (*rnn_ok < 0)
        return -1;
    sg_gradcheck_rnn_print(stdout, &rr);
    /* the last step's row: only the gate whose backward is wrong can differ there */
    int last = rr.rows - 1;
    printf("at the last step (t = %lld), the gates that disagree:", (long long)rr.step[last]);
    int nb = 0;
    for (int g = 0; g < rr.gates; g++)
        if (!(rr.max_abs[last * rr.gates + g] <= 1e-7))
            last_bad[nb++] = rr.gate_names[g];
    last_bad[nb] = 0;
    printf(" %s\n", nb ? last_bad : "none");
    sg_gradcheck_rnn_report_free(&rr);
    return *op_ok < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
    double t_start = lesson_seconds();
    if (!lesson_out_dir(argc, argv, "lesson5"))
        return 1;
    sg_ctx *ctx = sg_ctx_new(0);
    static bool buggy = true;
    swish_op = sg_op_register(ctx, &(sg_custom_op){.name = "swish",
                                                   .forward = swish_fw,
                                                   .backward = swish_bw,
                                                   .user = &buggy,
                                                   .reads_inputs = true});
    sg_rng_seed(sg_ctx_rng(ctx), 5);
    sg_tensor *in[3] = {
        sg_rand_normal(ctx, SG_F64, SG_SHAPE(2, 5, 3), 0, 1),
        sg_set_requires_grad(sg_rand_normal(ctx, SG_F64, SG_SHAPE(3, 8), 0, 1), true),
        sg_set_requires_grad(sg_rand_normal(ctx, SG_F64, SG_SHAPE(2, 8), 0, 1), true)};
    int op_ok, rnn_ok, rc = 1;
    char last_bad[SG_GATES_MAX + 1];
    printf("== the buggy backward (sigmoid(x) alone)\n");
    if (swish_op < 0 || check_all(ctx, in, &op_ok, &rnn_ok, last_bad))
        goto done;
    bool caught = op_ok == 0 && rnn_ok == 0 && !strcmp(last_bad, "c");
    printf("\n== the backward fixed (sigmoid(x) + x sigmoid(x) (1 - sigmoid(x)))\n");
    buggy = false;
    if (check_all(ctx, in, &op_ok, &rnn_ok, last_bad))
        goto done;
    if (!caught || op_ok != 1 || rnn_ok != 1) {
        fprintf(stderr, "lesson5: the bug was %scaught, the fix %s\n", caught ? "" : "not ",
                op_ok == 1 && rnn_ok == 1 ? "passes" : "fails");
        goto done;
    }
    printf("lesson5: %.2f s\n", lesson_seconds() - t_start);
    rc = 0;
done:
    if (rc && sg_ctx_error(ctx))
        fprintf(stderr, "lesson5: %s\n", sg_ctx_error(ctx));
    sg_ctx_free(ctx);
    return rc;
}
