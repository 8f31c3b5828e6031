/* custom_op: define an op of your own, with its forward and backward, and check it.
 *
 * The op is softsign, y = x / (1 + |x|), whose derivative is 1 / (1 + |x|)^2. Its forward is
 * written with seqgrad ops (they are not recorded: the engine records the custom op as one
 * node), its backward by hand, as torch.autograd.Function would have it. The program then
 *   1. applies it inside a bigger expression and runs backward,
 *   2. checks the hand-written backward against central differences (sg_gradcheck),
 *   3. registers a second op with a deliberate bug in its backward and shows gradcheck catch it.
 *
 * Build and run from the repository root:
 *   scripts/setup.sh && meson compile -C build && build/examples/custom_op
 * Exits nonzero if anything fails, or if gradcheck passes the buggy op.
 */
#include <math.h>
#include <seqgrad.h>
#include <stdio.h>

/* Forward: x / (1 + |x|) from built-in ops. |x| = sqrt(x * x) would do too; relu(x) +
 * relu(-x) keeps to ops that are exact. */
static sg_tensor *softsign_fw(sg_ctx *ctx, int n, sg_tensor *const *in, void *user) {
    (void)n, (void)user;
    sg_tensor *x = in[0];
    sg_tensor *absx = sg_add(ctx, sg_relu(ctx, x), sg_relu(ctx, sg_neg(ctx, x)));
    return sg_div(ctx, x, sg_add_scalar(ctx, absx, 1.0));
}

/* Backward: din[0] += dout / (1 + |x|)^2. `user` points at an int: 1 makes the derivative
 * wrong on purpose (a missing square), 0 keeps it right. din, in and dout are contiguous. */
static int softsign_bw(sg_ctx *ctx, int n, sg_tensor *const *in, const sg_tensor *out,
                       const sg_tensor *dout, sg_tensor *const *din, void *user) {
    (void)ctx, (void)n, (void)out;
    int buggy = *(const int *)user;
    if (!din[0])
        return 0; /* x needs no gradient */
    for (int64_t i = 0; i < sg_numel(in[0]); i++) {
        double x = sg_get_flat(in[0], i), d = 1.0 + fabs(x);
        double g = sg_get_flat(dout, i) / (buggy ? d : d * d);
        sg_set_flat(din[0], i, sg_get_flat(din[0], i) + g);
    }
    return 0;
}

static sg_tensor *loss_of(sg_ctx *ctx, sg_tensor *const *inputs, void *user) {
    int op = *(const int *)user;
    /* sum(softsign(x) * w): the op in the middle of a graph, not only at its end */
    return sg_sum(ctx, sg_mul(ctx, sg_custom(ctx, op, 1, &inputs[0]), inputs[1]));
}

int main(void) {
    sg_ctx *ctx = sg_ctx_new(0);
    if (!ctx)
        return 1;
    static const int right = 0, wrong = 1;
    int softsign = sg_op_register(ctx, &(sg_custom_op){.name = "softsign",
                                                       .forward = softsign_fw,
                                                       .backward = softsign_bw,
                                                       .user = (void *)&right,
                                                       .reads_inputs = true});
    int broken = sg_op_register(ctx, &(sg_custom_op){.name = "softsign_broken",
                                                     .forward = softsign_fw,
                                                     .backward = softsign_bw,
                                                     .user = (void *)&wrong,
                                                     .reads_inputs = true});
    if (softsign < 0 || broken < 0) {
        fprintf(stderr, "custom_op: %s\n", sg_ctx_error(ctx));
        return 1;
    }

    /* ---- 1. forward and backward -------------------------------------------------------- */
    sg_tensor *x = sg_from_data(ctx, SG_F64, SG_SHAPE(4), (double[]){-2, -0.5, 0.25, 3});
    sg_tensor *w = sg_from_data(ctx, SG_F64, SG_SHAPE(4), (double[]){1, 2, 3, 4});
    sg_set_requires_grad(x, true);
    sg_tensor *y = sg_custom(ctx, softsign, 1, &x);
    sg_tensor *loss = sg_sum(ctx, sg_mul(ctx, y, w));
    if (!loss || sg_backward(ctx, loss, NULL)) {
        fprintf(stderr, "custom_op: %s\n", sg_ctx_error(ctx));
        return 1;
    }
    sg_tensor_set_name(y, "softsign(x)");
    sg_print(y, stdout);
    printf("dloss/dx (w / (1 + |x|)^2):\n");
    sg_print(x->grad, stdout);

    /* ---- 2. and 3. gradcheck, right and wrong -------------------------------------------- */
    int status = 0;
    const int ops[2] = {softsign, broken};
    for (int k = 0; k < 2; k++) {
        sg_tensor *in[2] = {sg_rand_normal(ctx, SG_F64, SG_SHAPE(3, 5), 0, 1),
                            sg_rand_normal(ctx, SG_F64, SG_SHAPE(3, 5), 0, 1)};
        sg_set_requires_grad(in[0], true);
        sg_gradcheck_report rep[2];
        int ok = sg_gradcheck(ctx, loss_of, (void *)&ops[k], 2, in, NULL, rep);
        if (ok < 0) {
            fprintf(stderr, "custom_op: %s\n", sg_ctx_error(ctx));
            return 1;
        }
        printf("gradcheck %-16s %s: worst element %lld, analytic %.9f, numeric %.9f\n",
               sg_op_name(ops[k]), ok ? "passed" : "FAILED", (long long)rep[0].worst_flat,
               rep[0].analytic, rep[0].numeric);
        if (ok != (k == 0)) /* the right one must pass, the broken one must fail */
            status = 1;
    }
    sg_ctx_free(ctx);
    return status;
}
