/* lstm_walkthrough: the two LSTM layouts side by side, and backpropagation through time.
 *
 * The configuration of docs/lstm.md: batch B = 2, T = 3 time steps, I = 5 input features,
 * H = 4 units, x drawn from a seeded standard normal. The steps:
 *
 *   1. a "fused" LSTM with Keras' defaults: one kernel (I, 4H), one recurrent kernel
 *      (H, 4H), one bias (4H), the four gates side by side in the order i, f, c, o;
 *   2. a "gates" LSTM: one (H + I, H) matrix and one bias per gate acting on [h, x],
 *      given the fused layer's weights with sg_lstm_copy, and shown to be the same
 *      function (the difference is rounding, ~1e-16 in float64);
 *   3. one backward pass through both: the gradients, including those of the initial
 *      state h0 and c0, and the same gradients from both layouts;
 *   4. the graph the tape recorded, written as Graphviz DOT.
 *
 * Run:     build/examples/lstm_walkthrough [graph.dot]      (default lstm_graph.dot)
 * Render:  dot -Tsvg lstm_graph.dot -o lstm_graph.svg
 * Outside the tree:  cc lstm_walkthrough.c $(pkg-config --cflags --libs seqgrad)
 * Exits nonzero if anything fails or the two layouts disagree.
 */
#include <math.h>
#include <seqgrad.h>
#include <stdio.h>

enum { B = 2, T = 3, I = 5, H = 4 };

static int failed(sg_ctx *ctx, const char *what) {
    if (!sg_ctx_error(ctx))
        return 0;
    fprintf(stderr, "lstm_walkthrough: %s failed: %s\n", what, sg_ctx_error(ctx));
    return 1;
}

/* Print a tensor under a name of our choosing (sg_print shows the tensor's name). */
static void show(sg_tensor *t, const char *name) {
    if (!t)
        return;
    sg_tensor_set_name(t, name);
    sg_print(t, stdout);
}

/* max |a - b| over all elements (shapes must match). */
static double max_diff(sg_ctx *ctx, const sg_tensor *a, const sg_tensor *b) {
    sg_compare_result r;
    return sg_compare(ctx, a, b, 0, 0, &r) < 0 ? INFINITY : r.max_abs;
}

int main(int argc, char **argv) {
    const char *dot_path = argc > 1 ? argv[1] : "lstm_graph.dot";
    sg_ctx *ctx = sg_ctx_new(0);
    /* The store holds the layers' parameters ("fused.kernel", ..., "gates.W_i", ...). */
    sg_store *store = sg_store_new();
    if (!ctx || !store) {
        sg_store_free(store);
        sg_ctx_free(ctx);
        return 1;
    }
    sg_lstm *fused = NULL, *gates = NULL;

    /* ---- the input ------------------------------------------------------------------------
     * x[b, t, :] is the feature vector of sequence b at time t. float64 for the demo, so
     * that the two layouts agree to ~1e-16 and any real difference would stand out. */
    sg_rng_seed(sg_ctx_rng(ctx), 42);
    sg_tensor *x = sg_rand_normal(ctx, SG_F64, SG_SHAPE(B, T, I), 0.0, 1.0);
    show(x, "x");

    /* The initial state. Usually zeros (pass NULL); here explicit zero leaves that require
     * grad, so that backward tells us how the loss depends on where the sequence started.
     * That is what lets a model carry state from one chunk of a long sequence to the next. */
    sg_tensor *h0 = sg_set_requires_grad(sg_zeros(ctx, SG_F64, SG_SHAPE(B, H)), true);
    sg_tensor *c0 = sg_set_requires_grad(sg_zeros(ctx, SG_F64, SG_SHAPE(B, H)), true);
    sg_tensor_set_name(h0, "h0");
    sg_tensor_set_name(c0, "c0");

    /* ---- 1. the fused layer (Keras layout and defaults) ------------------------------------
     * kernel glorot_uniform, recurrent_kernel orthogonal, bias zeros except the forget block
     * (columns H..2H-1) at 1: a forget gate that starts near sigmoid(1) = 0.73 keeps the cell
     * state, so early training does not wipe the memory. Every step computes
     *     z_t = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias     (B, 4H)
     * splits z_t into i, f, c~, o and updates c_t = f c_{t-1} + i tanh(c~), h_t = o tanh(c_t). */
    sg_rng rng;
    sg_rng_seed(&rng, 7);
    sg_lstm_options opt = sg_lstm_defaults(I, H);
    opt.dtype = SG_F64;
    opt.return_sequences = true; /* y holds every h_t: (B, T, H) */
    fused = sg_lstm_new(ctx, store, SG_LSTM_FUSED, &opt, "fused", &rng);
    if (failed(ctx, "creating the fused layer"))
        goto fail;
    printf("\n== 1. fused layer: weights (gate blocks i | f | c | o, %d columns each)\n", H);
    sg_print(fused->kernel, stdout);
    sg_print(fused->recurrent_kernel, stdout);
    sg_print(fused->bias, stdout);

    sg_lstm_output of;
    if (sg_lstm_forward(ctx, fused, x, h0, c0, &of) || failed(ctx, "fused forward"))
        goto fail;
    printf("\nfused output:\n");
    show(of.y, "y (fused)");
    show(of.c, "c_T (fused)");

    /* ---- 2. the gates layer, given the same weights ----------------------------------------
     * Gate g has W_g (H + I, H) acting on v_t = [h_{t-1}, x_t]: rows 0..H-1 are block g of
     * recurrent_kernel, rows H..H+I-1 are block g of kernel, b_g is block g of bias.
     * sg_lstm_copy applies exactly that mapping (docs/lstm.md has the table). */
    gates = sg_lstm_new(ctx, store, SG_LSTM_GATES, &opt, "gates", &rng); /* own weights... */
    if (!gates || sg_lstm_copy(ctx, gates, fused) /* ...replaced by the fused ones */)
        goto fail_msg;
    printf("\n== 2. gates layer after sg_lstm_copy: one matrix per gate, rows [h; x]\n");
    for (int g = 0; g < 4; g++) {
        sg_print(gates->W[g], stdout);
        sg_print(gates->b[g], stdout);
    }
    /* b_f is all ones: the unit_forget_bias block of the fused bias. */

    /* Fresh leaves for h0 and c0 so each layer's gradients can be read separately. */
    sg_tensor *h0g = sg_set_requires_grad(sg_zeros(ctx, SG_F64, SG_SHAPE(B, H)), true);
    sg_tensor *c0g = sg_set_requires_grad(sg_zeros(ctx, SG_F64, SG_SHAPE(B, H)), true);
    sg_lstm_output og;
    if (sg_lstm_forward(ctx, gates, x, h0g, c0g, &og) || failed(ctx, "gates forward"))
        goto fail;
    printf("\ngates output:\n");
    show(og.y, "y (gates)");
    double dy = max_diff(ctx, og.y, of.y), dc = max_diff(ctx, og.c, of.c);
    printf("max |y_gates - y_fused| = %.3g, max |c_gates - c_fused| = %.3g\n", dy, dc);

    /* ---- 3. one backward pass: backpropagation through time --------------------------------
     * loss = sum(y) over every sequence, step and unit. Number the steps t = 1..T; step t
     * reads x_t and (h_{t-1}, c_{t-1}), with (h_0, c_0) the initial state. The forward pass
     * recorded each step's ops (matmul, add, split, sigmoid, tanh, mul) on the tape, in
     * order. backward walks the tape in reverse, so it finishes step T before it starts on
     * step T-1, and so on back to step 1: that reverse walk IS backpropagation through
     * time, with no LSTM-specific code anywhere.
     *  - dL/dh_t collects two contributions: from y_t directly, and from step t+1, where
     *    h_t entered z_{t+1} through recurrent_kernel. dL/dc_t likewise collects
     *    o_t tanh'(c_t) dL/dh_t and f_{t+1} dL/dc_{t+1} from the next step (the "constant
     *    error carousel": with f near 1 the gradient passes along c almost unchanged).
     *  - kernel, recurrent_kernel and bias are used at every step, so their gradients are
     *    sums over the T steps (the tape accumulates with +=).
     *  - h0 and c0 are what step 1 reads as h_{t-1}, c_{t-1}; the chain ends there, with
     *    dL/dh0 = dL/dz_1 @ recurrent_kernel^T and dL/dc0 = f_1 * dL/dc_1. Nonzero even
     *    though h0 = c0 = 0: a gradient says how the loss would change, not what it is. */
    sg_tensor *loss = sg_sum(ctx, of.y);
    sg_tensor_set_name(loss, "loss");
    if (sg_backward(ctx, loss, NULL) || failed(ctx, "fused backward"))
        goto fail;
    printf("\n== 3. backward of loss = sum(y) = %.6f through %lld recorded ops\n",
           sg_get_flat(loss, 0), (long long)sg_tape_size(ctx));
    show(fused->kernel->grad, "dL/d kernel");
    show(fused->recurrent_kernel->grad, "dL/d recurrent_kernel");
    show(fused->bias->grad, "dL/d bias");
    show(h0->grad, "dL/d h0");
    show(c0->grad, "dL/d c0");
    /* x was made without requires_grad, so backward computed no dL/dx: gradients are only
     * produced where someone asked for them (sg_set_requires_grad, or a parameter). */
    printf("x->grad: %s\n", x->grad ? "present?!" : "none (x does not require grad)");

    /* The gates layer's gradients, rearranged into Keras layout, are the same numbers. */
    if (sg_backward(ctx, sg_sum(ctx, og.y), NULL) || failed(ctx, "gates backward"))
        goto fail;
    sg_tensor *gk = sg_zeros(ctx, SG_F64, SG_SHAPE(I, 4 * H));
    sg_tensor *grk = sg_zeros(ctx, SG_F64, SG_SHAPE(H, 4 * H));
    sg_tensor *gb = sg_zeros(ctx, SG_F64, SG_SHAPE(4 * H));
    if (sg_lstm_get_keras(ctx, gates, true, gk, grk, gb))
        goto fail_msg;
    double dg =
        fmax(fmax(max_diff(ctx, gk, fused->kernel->grad),
                  max_diff(ctx, grk, fused->recurrent_kernel->grad)),
             fmax(max_diff(ctx, gb, fused->bias->grad),
                  fmax(max_diff(ctx, h0g->grad, h0->grad), max_diff(ctx, c0g->grad, c0->grad))));
    printf("gates vs fused, largest gradient difference (weights, h0, c0): %.3g\n", dg);
    if (!(dy < 1e-12 && dc < 1e-12 && dg < 1e-12)) {
        fprintf(stderr, "lstm_walkthrough: the two layouts disagree\n");
        goto fail;
    }

    /* ---- 4. the graph ----------------------------------------------------------------------
     * One node per tensor: grey boxes are inputs, blue boxes parameters, ellipses ops. The
     * three copies of the cell, chained through h and c, are the unrolled recurrence. */
    if (sg_dot_save(ctx, loss, dot_path))
        goto fail_msg;
    printf("\n== 4. graph of the fused computation written to %s\n"
           "render it with:  dot -Tsvg %s -o lstm_graph.svg\n",
           dot_path, dot_path);

    sg_lstm_free(fused);
    sg_lstm_free(gates);
    sg_store_free(store);
    sg_ctx_free(ctx);
    return 0;

fail_msg:
    failed(ctx, "a layer call");
fail:
    sg_lstm_free(fused);
    sg_lstm_free(gates);
    sg_store_free(store);
    sg_ctx_free(ctx);
    return 1;
}
