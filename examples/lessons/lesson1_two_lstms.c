/* Lesson 1 (docs/tutorial.md): the two LSTMs of the notebook this project started from, the
 * two layouts side by side, backpropagation through time, and the notebook's defect.
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
 *   4. the graph the tape recorded, written as Graphviz DOT, nodes grouped by time step and
 *      the gates named (rendered to SVG and PNG when Graphviz is installed);
 *   5. the notebook's defect rebuilt: h_{t-1} never updated (every step reads h_0), which
 *      agrees at the first step and differs from the second on (a plot of both).
 *
 * Run:     build/examples/lessons/lesson1_two_lstms [--out DIR]     (default lessons_out)
 * Exits nonzero if anything fails, the two layouts disagree or the defect goes unseen.
 */
#include <math.h>

#include "lesson.h"

enum { B = 2, T = 3, I = 5, H = 4 };

static int failed(sg_ctx *ctx, const char *what) {
    if (!sg_ctx_error(ctx))
        return 0;
    fprintf(stderr, "lesson1: %s failed: %s\n", what, sg_ctx_error(ctx));
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

/* ---- 5. the notebook's defect -------------------------------------------------------------
 * The gates layer's equations written out with its own W_g, b_g, twice: correctly (h_prev
 * becomes h_t after every step) and as the notebook had it (h_prev stays h_0: the line that
 * updates it is missing). The cell state is updated in both. Writes each step's h_t into
 * hs[T2] and unit 0 of sequence 0 into h_unit0[T2]. 0, or -1 with an error in ctx. */
enum { T2 = 12 };
static int notebook_lstm(sg_ctx *ctx, const sg_lstm *g, sg_tensor *x, bool defect, double *h_unit0,
                         sg_tensor **hs) {
    sg_tensor *h0 = sg_zeros(ctx, SG_F64, SG_SHAPE(B, H)), *h_prev = h0;
    sg_tensor *c = sg_zeros(ctx, SG_F64, SG_SHAPE(B, H));
    for (int t = 0; t < T2; t++) {
        sg_tensor *v = sg_concat(ctx, 2, (sg_tensor *[]){h_prev, sg_select(ctx, x, 1, t)}, 1);
        sg_tensor *a[4];
        for (int k = 0; k < 4; k++) /* i, f, c~, o: v @ W_g + b_g */
            a[k] = sg_add(ctx, sg_matmul(ctx, v, g->W[k]), g->b[k]);
        sg_tensor *i = sg_sigmoid(ctx, a[0]), *f = sg_sigmoid(ctx, a[1]);
        sg_tensor *cc = sg_tanh(ctx, a[2]), *o = sg_sigmoid(ctx, a[3]);
        c = sg_add(ctx, sg_mul(ctx, f, c), sg_mul(ctx, i, cc));
        sg_tensor *h = sg_mul(ctx, o, sg_tanh(ctx, c));
        if (!h)
            return -1;
        hs[t] = h;
        h_unit0[t] = sg_get_flat(h, 0);
        if (!defect)
            h_prev = h; /* the notebook lacks this line */
    }
    return 0;
}

int main(int argc, char **argv) {
    double t_start = lesson_seconds();
    const char *dir = lesson_out_dir(argc, argv, "lesson1");
    if (!dir)
        return 1;
    char dot_path[4096];
    lesson_path(dot_path, sizeof dot_path, dir, "lesson1_graph.dot");
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
    /* Labels on: the cells name the tensors a lecture names (i_t, f_t, c_t, h_t, ...) and the
     * driver tags each step's nodes, so that the graph in part 4 reads like the equations. */
    sg_ctx_set_labels(ctx, true);
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
        fprintf(stderr, "lesson1: the two layouts disagree\n");
        goto fail;
    }

    /* ---- 4. the graph ----------------------------------------------------------------------
     * One node per tensor: grey boxes are inputs, blue boxes parameters (by their names),
     * ellipses ops, named ones filled ("f_t = slice": the forget gate, a slice of the one
     * sigmoid over all four blocks). One box per time step: the three copies of the cell,
     * chained through h and c, are the unrolled recurrence. */
    if (sg_dot_save(ctx, loss, dot_path) || lesson_render_dot(dot_path))
        goto fail_msg;
    printf("\n== 4. graph of the fused computation written to %s\n", dot_path);

    /* ---- 5. the notebook's defect ----------------------------------------------------------- */
    {
        sg_tensor *x2 = sg_rand_normal(ctx, SG_F64, SG_SHAPE(B, T2, I), 0.0, 1.0);
        double good[T2], bad[T2], diff[T2], steps[T2];
        sg_tensor *hg[T2], *hb[T2];
        if (notebook_lstm(ctx, gates, x2, false, good, hg) ||
            notebook_lstm(ctx, gates, x2, true, bad, hb))
            goto fail_msg;
        /* the correct one is the layer itself */
        sg_lstm_output o2;
        if (sg_lstm_forward(ctx, gates, x2, NULL, NULL, &o2))
            goto fail_msg;
        double worst_layer = 0;
        printf("\n== 5. the notebook's defect: h_prev never updated (T = %d)\n"
               "step  max|h_t correct - h_t notebook|\n",
               T2);
        for (int t = 0; t < T2; t++) {
            worst_layer = fmax(worst_layer, max_diff(ctx, hg[t], sg_select(ctx, o2.y, 1, t)));
            diff[t] = max_diff(ctx, hg[t], hb[t]);
            steps[t] = t + 1;
            printf("%4d  %.3g\n", t + 1, diff[t]);
        }
        printf("the correct loop against the layer: %.3g\n", worst_layer);
        if (!(worst_layer < 1e-12 && diff[0] == 0 && diff[1] > 1e-3)) {
            fprintf(stderr, "lesson1: the defect is not what the lesson says\n");
            goto fail;
        }
        char path[4096];
        plot_opts po = {.title = "h_t, unit 0 of sequence 0: correct LSTM and the notebook's",
                        .xlabel = "time step t",
                        .ylabel = "h_t[0]"};
        plot_series ps[2] = {{.name = "correct (h_prev = h_t)", .x = steps, .y = good, .n = T2},
                             {.name = "notebook (h_prev = h_0)", .x = steps, .y = bad, .n = T2}};
        if (plot_lines(lesson_path(path, sizeof path, dir, "lesson1_defect.svg"), &po, 2, ps))
            goto fail;
        printf("wrote %s\n", path);
    }
    printf("lesson1: %.2f s\n", lesson_seconds() - t_start);

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
