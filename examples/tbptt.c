/* tbptt: truncated backpropagation through time. An LSTM reads B long sine waves (different
 * frequencies and phases) and predicts the next value at every step. The sequences are too
 * long to backpropagate through at once, so each epoch walks them in chunks of K steps: one
 * forward, backward and optimizer step per chunk, with the state (h, c) carried from one
 * chunk into the next but the gradient stopped at the chunk's start.
 *
 * Arena tensors die at sg_ctx_reset, so the carried state lives in two persistent tensors:
 * after each chunk they take the values of the detached h_T and c_T (sg_detach, sg_copy) and
 * go in as h0 and c0 of the next. The same loop is in README.md ("Truncated BPTT").
 *
 * Build and run from the repository root:
 *   scripts/setup.sh && meson compile -C build && build/examples/tbptt
 * Prints the mean loss of each epoch; exits nonzero on an error or if the loss does not fall.
 */
#include <math.h>
#include <seqgrad.h>
#include <stdio.h>

enum { B = 8, L = 1000, K = 25, H = 16, EPOCHS = 8 };

int main(void) {
    static float seq[B][L + 1]; /* the data: sequence b is sin(w_b t + phase_b) */
    for (int b = 0; b < B; b++)
        for (int t = 0; t <= L; t++)
            seq[b][t] = (float)sin((0.05 + 0.03 * b) * t + b);

    int rc = 1;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *model = sg_store_new();
    sg_lstm *lstm = NULL;
    sg_dense *head = NULL;
    sg_optim *opt = NULL;
    sg_param_list params = {0};
    if (!ctx || !model)
        goto done;
    sg_rng_seed(sg_ctx_rng(ctx), 1);
    sg_lstm_options o = sg_lstm_defaults(1, H);
    o.return_sequences = true; /* a prediction at every step */
    lstm = sg_lstm_new(ctx, model, SG_LSTM_FUSED, &o, NULL, NULL);
    head = sg_dense_new(ctx, model, SG_F32, H, 1, true, SG_ACT_LINEAR, NULL, NULL);
    sg_params_from_store(&params, model);
    opt = sg_adam_new(ctx, &params, (sg_adam_options){.lr = 0.01});
    /* the carried state: persistent, so it survives sg_ctx_reset */
    sg_tensor *h = sg_persistent_new(ctx, SG_F32, SG_SHAPE(B, H));
    sg_tensor *c = sg_persistent_new(ctx, SG_F32, SG_SHAPE(B, H));
    if (!opt || !h || !c)
        goto done;

    float xs[B][K][1], ys[B][K][1];
    double first = NAN, last = NAN;
    for (int epoch = 0; epoch < EPOCHS; epoch++) {
        sg_fill(h, 0); /* every epoch starts the sequences from a zero state */
        sg_fill(c, 0);
        double sum = 0;
        for (int s = 0; s < L; s += K) { /* one chunk: steps s .. s + K - 1 */
            for (int b = 0; b < B; b++)
                for (int k = 0; k < K; k++) {
                    xs[b][k][0] = seq[b][s + k];
                    ys[b][k][0] = seq[b][s + k + 1];
                }
            sg_tensor *x = sg_from_data(ctx, SG_F32, SG_SHAPE(B, K, 1), xs);
            sg_tensor *y = sg_from_data(ctx, SG_F32, SG_SHAPE(B, K, 1), ys);
            sg_lstm_output out;
            if (sg_lstm_forward(ctx, lstm, x, h, c, &out)) /* h0, c0: the carried state */
                goto done;
            sg_tensor *loss = sg_mse_loss(ctx, sg_dense_forward(ctx, head, out.y), y);
            sg_optim_zero_grad(opt);
            if (sg_backward(ctx, loss, NULL) || sg_clip_grad_norm(&params, 1.0) < 0 ||
                sg_optim_step(opt))
                goto done;
            sum += sg_get_flat(loss, 0);
            /* carry the values of h_T and c_T, not their history, into the next chunk */
            if (sg_copy(h, sg_detach(ctx, out.h)) || sg_copy(c, sg_detach(ctx, out.c)))
                goto done;
            sg_ctx_reset(ctx); /* every arena tensor of this chunk is gone now */
        }
        last = sum / (L / K);
        if (epoch == 0)
            first = last;
        printf("epoch %d  mean loss %.6f\n", epoch + 1, last);
    }
    if (last < first / 10)
        rc = 0;
    else
        fprintf(stderr, "tbptt: the loss did not fall (%g -> %g)\n", first, last);
done:
    if (sg_ctx_error(ctx))
        fprintf(stderr, "tbptt: %s\n", sg_ctx_error(ctx));
    sg_optim_free(opt);
    sg_params_clear(&params);
    sg_lstm_free(lstm);
    sg_dense_free(head);
    sg_store_free(model);
    sg_ctx_free(ctx);
    return rc;
}
