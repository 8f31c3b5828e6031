/* char_lm: a character-level language model, the ops for sequence data end to end. Integer
 * ids go through an Embedding, dropout, an LSTM over the whole window and a Dense head to
 * logits (B, T, V); the loss is the cross-entropy of every step's next character, labels
 * (B, T) int64. Then the model writes text: evaluation mode, no gradients, one character at
 * a time, the LSTM's state carried from step to step, each character drawn from the logits
 * with a temperature and top-k.
 *
 * Build and run from the repository root:
 *   scripts/setup.sh && meson compile -C build && build/examples/char_lm
 * Prints the loss every 100 steps and a sample; exits nonzero on an error or if the loss does
 * not fall below a third of its start.
 */
#include <seqgrad.h>
#include <stdio.h>
#include <string.h>

static const char text[] = "the quick brown fox jumps over the lazy dog. "
                           "a lazy dog sleeps in the sun. the quick fox runs home. ";

enum { B = 16, T = 24, E = 16, H = 64, STEPS = 400 };

int main(void) {
    /* the vocabulary: every character of the text, in order of first appearance */
    char vocab[128] = {0};
    int id_of[256], V = 0, n = (int)strlen(text);
    memset(id_of, -1, sizeof id_of);
    for (int i = 0; i < n; i++)
        if (id_of[(unsigned char)text[i]] < 0) {
            id_of[(unsigned char)text[i]] = V;
            vocab[V++] = text[i];
        }

    int rc = 1;
    sg_ctx *ctx = sg_ctx_new(0);
    sg_store *model = sg_store_new();
    sg_embedding *emb = NULL;
    sg_lstm *lstm = NULL;
    sg_dense *head = NULL;
    sg_optim *opt = NULL;
    sg_param_list params = {0};
    if (!ctx || !model)
        goto done;
    sg_rng *rng = sg_ctx_rng(ctx);
    sg_rng_seed(rng, 7);
    emb = sg_embedding_new(ctx, model, SG_F32, V, E, NULL, NULL, NULL); /* "embedding" */
    sg_lstm_options o = sg_lstm_defaults(E, H);
    o.return_sequences = true;
    lstm = sg_lstm_new(ctx, model, SG_LSTM_FUSED, &o, NULL, NULL);
    head = sg_dense_new(ctx, model, SG_F32, H, V, true, SG_ACT_LINEAR, NULL, NULL);
    if (sg_params_from_store(&params, model))
        goto done;
    opt = sg_adam_new(ctx, &params, (sg_adam_options){.lr = 0.01});
    if (!opt)
        goto done;

    /* training: B windows of T + 1 characters at random offsets, inputs and next characters */
    int64_t xs[B][T], ys[B][T];
    double first = 0, loss_v = 0;
    for (int step = 1; step <= STEPS; step++) {
        for (int b = 0; b < B; b++) {
            int at = (int)sg_rng_below(rng, (uint64_t)(n - T - 1));
            for (int t = 0; t < T; t++) {
                xs[b][t] = id_of[(unsigned char)text[at + t]];
                ys[b][t] = id_of[(unsigned char)text[at + t + 1]];
            }
        }
        sg_tensor *x = sg_from_data(ctx, SG_I64, SG_SHAPE(B, T), xs);
        sg_tensor *y = sg_from_data(ctx, SG_I64, SG_SHAPE(B, T), ys);
        sg_tensor *e = sg_dropout(ctx, sg_embedding_forward(ctx, emb, x), 0.1, NULL);
        sg_lstm_output out;
        if (sg_lstm_forward(ctx, lstm, e, NULL, NULL, &out))
            goto done;
        sg_tensor *logits = sg_dense_forward(ctx, head, out.y); /* (B, T, V) */
        sg_tensor *loss = sg_cross_entropy(ctx, logits, y);     /* mean over B * T */
        sg_optim_zero_grad(opt);
        if (sg_backward(ctx, loss, NULL) || sg_clip_grad_norm(&params, 1.0) < 0 ||
            sg_optim_step(opt))
            goto done;
        loss_v = sg_get_flat(loss, 0);
        if (step == 1)
            first = loss_v;
        if (step == 1 || step % 100 == 0)
            printf("step %d  loss %.4f\n", step, loss_v);
        sg_ctx_reset(ctx);
    }

    /* generation: evaluation mode (dropout off) and no gradients; one character per step,
     * the state (h, c) of each step going in as the next one's h0, c0 */
    sg_ctx_set_training(ctx, false);
    sg_ctx_set_grad_enabled(ctx, false);
    sg_sample_opts so = sg_sample_defaults();
    so.temperature = 0.5;
    so.top_k = 5;
    int64_t c = id_of['t'];
    sg_tensor *h = NULL, *cs = NULL;
    printf("sample: t");
    for (int i = 0; i < 80; i++) {
        sg_tensor *x = sg_from_data(ctx, SG_I64, SG_SHAPE(1, 1), &c);
        sg_lstm_output out;
        if (sg_lstm_forward(ctx, lstm, sg_embedding_forward(ctx, emb, x), h, cs, &out))
            goto done;
        h = out.h;
        cs = out.c;
        sg_tensor *logits = sg_reshape(ctx, sg_dense_forward(ctx, head, out.y), SG_SHAPE(V));
        sg_tensor *next = sg_sample(ctx, logits, &so, NULL); /* int64 () */
        if (!next)
            goto done;
        c = sg_get_flat_i64(next, 0);
        putchar(vocab[c]);
    }
    putchar('\n');
    if (loss_v < first / 3)
        rc = 0;
    else
        fprintf(stderr, "char_lm: the loss did not fall (%g -> %g)\n", first, loss_v);
done:
    if (sg_ctx_error(ctx))
        fprintf(stderr, "char_lm: %s\n", sg_ctx_error(ctx));
    sg_optim_free(opt);
    sg_params_clear(&params);
    sg_embedding_free(emb);
    sg_lstm_free(lstm);
    sg_dense_free(head);
    sg_store_free(model);
    sg_ctx_free(ctx);
    return rc;
}
