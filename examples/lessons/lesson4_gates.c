/* Lesson 4 (docs/tutorial.md): what the gates do, on the adding problem.
 *
 * The adding problem (Hochreiter & Schmidhuber 1997): each step t of a sequence carries a
 * value u_t ~ U(0, 1) and a marker m_t, which is 1 at exactly two steps (one in each half)
 * and 0 elsewhere; the answer is the sum of the two marked values. Guessing 1 every time
 * scores a mean squared error of Var(u + u') = 1/6 = 0.167; a model must find the markers
 * and hold the first value until the end.
 *
 * An LSTM (H = 8, Keras' defaults) and a Dense head, trained with Adam for a few seconds on
 * T = 20; then, on one test sequence, the gates' activations at every step, computed again
 * from the layer's weights with the equations of lesson 1 (and checked against the layer's
 * own h_T), drawn as a heatmap with the two marked steps outlined.
 * Writes lesson4_loss.svg and lesson4_gates.svg.
 *
 * Run:  build/examples/lessons/lesson4_gates [--out DIR]
 */
#include <math.h>

#include "lesson.h"

enum { T = 20, H = 8, B = 32, STEPS = 1500, EVAL = 512 };

/* A batch of n sequences into x (n, T, 2) and y (n, 1). */
static void adding_batch(sg_rng *rng, int n, double *x, double *y, int *marks) {
    for (int b = 0; b < n; b++) {
        int p1 = (int)sg_rng_below(rng, T / 2), p2 = T / 2 + (int)sg_rng_below(rng, T / 2);
        if (marks)
            marks[0] = p1, marks[1] = p2;
        y[b] = 0;
        for (int t = 0; t < T; t++) {
            double u = sg_rng_uniform(rng), m = t == p1 || t == p2;
            x[(b * T + t) * 2] = u;
            x[(b * T + t) * 2 + 1] = m;
            if (m)
                y[b] += u;
        }
    }
}

static double sigm(double v) { return 1 / (1 + exp(-v)); }

int main(int argc, char **argv) {
    double t_start = lesson_seconds();
    const char *dir = lesson_out_dir(argc, argv, "lesson4");
    if (!dir)
        return 1;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *st = sg_store_new();
    sg_rng rng;
    sg_rng_seed(&rng, 4);
    sg_lstm_options o = sg_lstm_defaults(2, H);
    o.dtype = SG_F64;
    o.return_sequences = false;
    sg_lstm *lstm = sg_lstm_new(ctx, st, SG_LSTM_FUSED, &o, NULL, &rng);
    sg_dense *head = sg_dense_new(ctx, st, SG_F64, H, 1, true, SG_ACT_LINEAR, NULL, &rng);
    sg_param_list pl = {0};
    sg_params_from_store(&pl, st);
    sg_optim *adam = sg_adam_new(ctx, &pl, (sg_adam_options){.lr = 1e-2});
    static double xb[EVAL * T * 2], yb[EVAL], curve[STEPS], steps[STEPS];
    int rc = 1;
    if (!lstm || !head || !adam)
        goto done;

    /* ---- training ---------------------------------------------------------------------- */
    for (int s = 0; s < STEPS; s++) {
        sg_ctx_reset(ctx);
        adding_batch(&rng, B, xb, yb, NULL);
        sg_tensor *x = sg_from_data(ctx, SG_F64, SG_SHAPE(B, T, 2), xb);
        sg_tensor *y = sg_from_data(ctx, SG_F64, SG_SHAPE(B, 1), yb);
        sg_lstm_output out;
        if (sg_lstm_forward(ctx, lstm, x, NULL, NULL, &out))
            goto done;
        sg_tensor *loss = sg_mse_loss(ctx, sg_dense_forward(ctx, head, out.y), y);
        sg_store_zero_grad(st);
        if (!loss || sg_backward(ctx, loss, NULL) || sg_optim_step(adam))
            goto done;
        curve[s] = sg_get_flat(loss, 0);
        steps[s] = s + 1;
    }
    /* held out */
    sg_ctx_reset(ctx);
    adding_batch(&rng, EVAL, xb, yb, NULL);
    sg_ctx_set_grad_enabled(ctx, false);
    sg_lstm_output out;
    if (sg_lstm_forward(ctx, lstm, sg_from_data(ctx, SG_F64, SG_SHAPE(EVAL, T, 2), xb), NULL, NULL,
                        &out))
        goto done;
    sg_tensor *eval = sg_mse_loss(ctx, sg_dense_forward(ctx, head, out.y),
                                  sg_from_data(ctx, SG_F64, SG_SHAPE(EVAL, 1), yb));
    if (!eval)
        goto done;
    double mse = sg_get_flat(eval, 0);
    printf("adding problem, T = %d: held-out MSE %.4f after %d steps (guessing 1: 0.167)\n", T, mse,
           STEPS);
    char path[4096];
    plot_opts po = {.title = "adding problem: training loss",
                    .xlabel = "step",
                    .ylabel = "loss (MSE, log scale)",
                    .logy = true,
                    .ref = true,
                    .ref_y = 1.0 / 6,
                    .ref_name = "guessing 1 (1/6)"};
    plot_series ls = {.name = "training batch", .x = steps, .y = curve, .n = STEPS};
    if (plot_lines(lesson_path(path, sizeof path, dir, "lesson4_loss.svg"), &po, 1, &ls))
        goto done;
    printf("wrote %s\n", path);

    /* ---- the gates over one test sequence ---------------------------------------------
     * Keras layout: z_t = x_t kernel + h_{t-1} recurrent_kernel + bias, blocks i, f, c~, o. */
    int marks[2];
    double xs[T * 2], ys;
    adding_batch(&rng, 1, xs, &ys, marks);
    double K[2][4 * H], R[H][4 * H], bias[4 * H];
    sg_copy_to_f64(lstm->kernel, &K[0][0]);
    sg_copy_to_f64(lstm->recurrent_kernel, &R[0][0]);
    sg_copy_to_f64(lstm->bias, bias);
    enum { ROWS = 2 + 3 * H };
    static double heat[ROWS * T];
    double h[H] = {0}, c[H] = {0};
    for (int t = 0; t < T; t++) {
        double z[4 * H];
        for (int j = 0; j < 4 * H; j++) {
            z[j] = bias[j] + xs[2 * t] * K[0][j] + xs[2 * t + 1] * K[1][j];
            for (int k = 0; k < H; k++)
                z[j] += h[k] * R[k][j];
        }
        heat[0 * T + t] = xs[2 * t];
        heat[1 * T + t] = xs[2 * t + 1];
        for (int j = 0; j < H; j++) {
            double i = sigm(z[j]), f = sigm(z[H + j]), g = tanh(z[2 * H + j]),
                   og = sigm(z[3 * H + j]);
            c[j] = f * c[j] + i * g;
            h[j] = og * tanh(c[j]);
            heat[(2 + j) * T + t] = i;
            heat[(2 + H + j) * T + t] = f;
            heat[(2 + 2 * H + j) * T + t] = og;
        }
    }
    /* the replay is the layer: same h_T */
    if (sg_lstm_forward(ctx, lstm, sg_from_data(ctx, SG_F64, SG_SHAPE(1, T, 2), xs), NULL, NULL,
                        &out))
        goto done;
    double dh = 0;
    for (int j = 0; j < H; j++)
        dh = fmax(dh, fabs(sg_get_flat(out.y, j) - h[j]));
    double pred = sg_get_flat(sg_dense_forward(ctx, head, out.y), 0);
    printf("test sequence: marks at t = %d (u = %.3f) and t = %d (u = %.3f), target %.3f, "
           "prediction %.3f; replayed gates vs the layer: max |h_T difference| %.2g\n",
           marks[0], xs[2 * marks[0]], marks[1], xs[2 * marks[1]], ys, pred, dh);
    if (!(dh < 1e-12)) {
        fprintf(stderr, "lesson4: the replay does not match the layer\n");
        goto done;
    }

    /* What the heatmap shows, in numbers: per unit, each gate's mean at the two marked steps,
     * at the other steps, and (forget gate) between the marks. */
    printf("\nunit  i: marked  other |  f: marked  other  between |  o: marked  other\n");
    for (int j = 0; j < H; j++) {
        double gm[3] = {0}, go[3] = {0}, fb = 0;
        int nb = 0;
        for (int t = 0; t < T; t++) {
            bool m = t == marks[0] || t == marks[1];
            for (int g = 0; g < 3; g++)
                (m ? gm : go)[g] += heat[(2 + g * H + j) * T + t] / (m ? 2 : T - 2);
            if (t > marks[0] && t < marks[1])
                fb += heat[(2 + H + j) * T + t], nb++;
        }
        printf("%4d     %5.2f  %5.2f |     %5.2f  %5.2f    %5.2f |     %5.2f  %5.2f\n", j, gm[0],
               go[0], gm[1], go[1], nb ? fb / nb : NAN, gm[2], go[2]);
    }

    const char *labels[ROWS];
    static char names[ROWS][16];
    labels[0] = "value u_t";
    labels[1] = "marker m_t";
    for (int g = 0; g < 3; g++)
        for (int j = 0; j < H; j++) {
            snprintf(names[2 + g * H + j], 16, "%c_t unit %d", "ifo"[g], j);
            labels[2 + g * H + j] = names[2 + g * H + j];
        }
    bool hl[T] = {0};
    hl[marks[0]] = hl[marks[1]] = true;
    int gaps[] = {1, 1 + H, 1 + 2 * H, -1};
    plot_heatmap_opts hm = {.title = "LSTM gates on the adding problem (marked steps outlined)",
                            .xlabel = "time step t",
                            .rows = ROWS,
                            .cols = T,
                            .v = heat,
                            .row_labels = labels,
                            .lo = 0,
                            .hi = 1,
                            .scale_label = "activation",
                            .highlight = hl,
                            .cell_w = 22,
                            .row_gap_after = gaps};
    if (plot_heatmap(lesson_path(path, sizeof path, dir, "lesson4_gates.svg"), &hm))
        goto done;
    printf("wrote %s\n", path);
    if (!(mse < 0.05)) {
        fprintf(stderr, "lesson4: the LSTM did not learn the task (MSE %.4f)\n", mse);
        goto done;
    }
    printf("lesson4: %.2f s\n", lesson_seconds() - t_start);
    rc = 0;
done:
    if (rc && sg_ctx_error(ctx))
        fprintf(stderr, "lesson4: %s\n", sg_ctx_error(ctx));
    sg_optim_free(adam);
    sg_params_clear(&pl);
    sg_lstm_free(lstm);
    sg_dense_free(head);
    sg_store_free(st);
    sg_ctx_free(ctx);
    return rc;
}
