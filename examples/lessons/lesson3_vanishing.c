/* Lesson 3 (docs/tutorial.md): vanishing and exploding gradients, measured.
 *
 * One sequence of T = 100 steps (standard normal inputs, I = 4), a loss that reads only the
 * last state, L = sum(h_T), and the norm of dL/dh_t for every t: how much the loss still
 * hears of step t. For a SimpleRNN, an LSTM (Keras' defaults, unit_forget_bias on), the same
 * LSTM with unit_forget_bias off, and a GRU, H = 32, Keras' initializers, float64; plus a
 * SimpleRNN whose recurrent matrix is scaled up to show the opposite, exploding, case.
 *
 * The layer runs one step at a time (T calls with T = 1, each step's state fed to the next)
 * so that each h_t is a tensor of ours whose gradient we keep (sg_retain_grad).
 * Writes lesson3_gradient_norms.svg (log scale) and lesson3_gradient_norms.csv.
 *
 * Run:  build/examples/lessons/lesson3_vanishing [--out DIR]
 */
#include <math.h>

#include "lesson.h"

enum { T = 100, I = 4, H = 32 };

typedef struct {
    const char *name;
    sg_cell_kind cell;
    bool forget_bias;
    double scale_u;           /* recurrent kernel times this (1: as initialised) */
    sg_activation activation; /* SimpleRNN's */
} model;

/* norm[t] = |dL/dh_{t+1}| for the model; 0, or -1 with a message. */
static int measure(const model *m, const double *x_all, double *norm) {
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *st = sg_store_new();
    sg_rnn_options o = sg_rnn_defaults(m->cell, I, H);
    o.dtype = SG_F64;
    o.unit_forget_bias = m->forget_bias;
    o.activation = m->cell == SG_CELL_RNN ? m->activation : o.activation;
    sg_rng rng;
    sg_rng_seed(&rng, 11);
    sg_rnn *rnn = sg_rnn_new(ctx, st, &o, NULL, &rng);
    int rc = -1;
    if (!rnn)
        goto done;
    if (m->scale_u != 1) { /* the recurrent matrix, scaled in place (values slab) */
        sg_param_list pl = {0};
        sg_rnn_params(rnn, &pl);
        for (int k = 0; k < pl.n; k++)
            if (strstr(pl.items[k].name, "recurrent_kernel"))
                for (int64_t i = 0; i < sg_numel(pl.items[k].tensor); i++)
                    sg_set_flat(pl.items[k].tensor, i,
                                m->scale_u * sg_get_flat(pl.items[k].tensor, i));
        sg_params_clear(&pl);
    }
    sg_tensor *x = sg_from_data(ctx, SG_F64, SG_SHAPE(1, T, I), x_all), *h = NULL, *c = NULL,
              *hs[T];
    for (int t = 0; t < T; t++) {
        sg_rnn_output out;
        sg_tensor *xt = sg_slice(ctx, x, 1, t, 1); /* (1, 1, I) */
        if (sg_rnn_forward(ctx, rnn, xt, NULL, h, c, &out))
            goto done;
        h = hs[t] = sg_retain_grad(out.h_n); /* (1, 1, H) */
        c = out.c_n;
    }
    if (sg_backward(ctx, sg_sum(ctx, h), NULL))
        goto done;
    for (int t = 0; t < T; t++) {
        double s = 0;
        for (int j = 0; j < H; j++)
            s += sg_get_flat(hs[t]->grad, j) * sg_get_flat(hs[t]->grad, j);
        norm[t] = sqrt(s);
    }
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "lesson3: %s: %s\n", m->name, sg_ctx_error(ctx));
    sg_rnn_free(rnn);
    sg_store_free(st);
    sg_ctx_free(ctx);
    return rc;
}

int main(int argc, char **argv) {
    double t_start = lesson_seconds();
    const char *dir = lesson_out_dir(argc, argv, "lesson3");
    if (!dir)
        return 1;
    const model models[] = {
        {"SimpleRNN (tanh)", SG_CELL_RNN, false, 1, SG_ACT_TANH},
        {"LSTM, unit_forget_bias on", SG_CELL_LSTM, true, 1, SG_ACT_TANH},
        {"LSTM, unit_forget_bias off", SG_CELL_LSTM, false, 1, SG_ACT_TANH},
        {"GRU", SG_CELL_GRU, false, 1, SG_ACT_TANH},
        {"SimpleRNN (relu), U x 1.5", SG_CELL_RNN, false, 1.5, SG_ACT_RELU},
    };
    enum { M = sizeof models / sizeof models[0] };
    static double norm[M][T];
    double steps[T];
    static double x[T * I];
    sg_rng rng;
    sg_rng_seed(&rng, 3);
    for (int i = 0; i < T * I; i++)
        x[i] = sg_rng_normal(&rng);
    for (int k = 0; k < M; k++)
        if (measure(&models[k], x, norm[k]))
            return 1;
    for (int t = 0; t < T; t++)
        steps[t] = t + 1;

    printf("|dL/dh_t| for L = sum(h_T), T = %d, H = %d\n%-30s %10s %10s %10s %10s\n", T, H, "model",
           "t = 100", "t = 90", "t = 50", "t = 1");
    for (int k = 0; k < M; k++)
        printf("%-30s %10.3g %10.3g %10.3g %10.3g\n", models[k].name, norm[k][T - 1],
               norm[k][T - 11], norm[k][T / 2 - 1], norm[k][0]);

    char path[4096];
    output f;
    if (out_open(&f, lesson_path(path, sizeof path, dir, "lesson3_gradient_norms.csv")))
        return 1;
    out_printf(&f, "t");
    for (int k = 0; k < M; k++)
        out_printf(&f, ",%s", models[k].name);
    out_printf(&f, "\n");
    for (int t = 0; t < T; t++) {
        out_printf(&f, "%d", t + 1);
        for (int k = 0; k < M; k++)
            out_printf(&f, ",%.6g", norm[k][t]);
        out_printf(&f, "\n");
    }
    if (out_close(&f))
        return 1;
    printf("wrote %s\n", path);
    plot_series s[M];
    for (int k = 0; k < M; k++)
        s[k] = (plot_series){.name = models[k].name, .x = steps, .y = norm[k], .n = T};
    plot_opts po = {.title = "how much of step t reaches the loss at t = 100",
                    .xlabel = "time step t",
                    .ylabel = "|dL/dh_t| (log scale)",
                    .logy = true,
                    .legend_left = true,
                    .width = 720,
                    .height = 440};
    if (plot_lines(lesson_path(path, sizeof path, dir, "lesson3_gradient_norms.svg"), &po, M, s))
        return 1;
    printf("wrote %s\n", path);
    printf("lesson3: %.2f s\n", lesson_seconds() - t_start);
    return 0;
}
