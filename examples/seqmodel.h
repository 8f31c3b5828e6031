/* seqmodel: the model of train's text and classify tasks, shared by train and generate.
 *
 *     ids (B, T) -> Embedding(V, E) -> sg_rnn (cell, L layers of H units, one or two
 *     directions) -> Dense(D*H -> O)
 *
 * text: logits at every step, (B, T, V), the recurrent state carried in and out;
 * classify: logits (B, O) from the last layer's final states (both directions' h_n joined).
 * The parts stay in one struct (embedding, recurrent layer, head) so that an exporter walks
 * them in order. The parameters are registered in a store as "embedding.embeddings",
 * "rnn..." and "dense.kernel" / "dense.bias", drawn from one generator in that order.
 *
 * A checkpoint of `train --task text` or `--task classify` carries the options as metadata
 * "train.<option>" (the long option's name, the value as the command line spells it), the
 * vocabulary as "train.vocab" (the bytes in hex, two digits each, sorted), and for text the
 * carried state as tensors "tbptt.h" and "tbptt.c" (L, batch, H). seqmodel_read_meta reads
 * what generate needs. */
#ifndef SEQMODEL_H
#define SEQMODEL_H

#include <stdbool.h>

#include "seqgrad.h"

typedef struct {
    sg_cell_kind cell;
    sg_lstm_impl impl;
    int64_t vocab, embed, hidden, outputs;
    int64_t layers;
    bool bidirectional;
    bool per_step; /* text: logits at every step; classify: one per sequence */
    double dropout, recurrent_dropout;
    sg_dtype dtype;
} seqmodel_options;

typedef struct {
    seqmodel_options o;
    sg_embedding *emb;
    sg_rnn *rnn;
    sg_dense *head;
} seqmodel;

/* Build the model into `store` from `rng`. 0, or -1 with the context's error. */
int seqmodel_init(sg_ctx *ctx, sg_store *store, seqmodel *m, const seqmodel_options *o,
                  sg_rng *rng);
void seqmodel_free(seqmodel *m);

/* ids (B, T) int64; lengths (B,) or NULL; h0, c0 (L*D, B, H) or NULL (zeros). Returns the
 * logits ((B, T, V) per step, else (B, O)) and the layer's output in *out (its h_n, c_n are
 * the state to carry). NULL with the context's error. */
sg_tensor *seqmodel_forward(sg_ctx *ctx, seqmodel *m, sg_tensor *ids, sg_tensor *lengths,
                            sg_tensor *h0, sg_tensor *c0, sg_rnn_output *out);

/* The carried state of a text model for B streams: new persistent zero tensors h and c (c
 * NULL unless LSTM) of shape (L, B, H), appended to `list` as "tbptt.h" / "tbptt.c" when
 * list is not NULL. 0 or -1. */
int seqmodel_state_new(sg_ctx *ctx, const seqmodel *m, int64_t B, sg_tensor **h, sg_tensor **c,
                       sg_param_list *list);

/* Evaluation mode and no gradients, with a zero state for B streams: seqmodel_eval_begin
 * sets them up (0, or -1 with the context's error: then call seqmodel_eval_end all the same),
 * seqmodel_eval_end resets the context, frees the state and restores both modes. */
typedef struct {
    bool training, grad;
    sg_tensor *h, *c;
} seqmodel_eval;
int seqmodel_eval_begin(sg_ctx *ctx, const seqmodel *m, int64_t B, seqmodel_eval *e);
void seqmodel_eval_end(sg_ctx *ctx, seqmodel_eval *e);

/* Text: run the prime ids (np >= 1) from a zero state, then draw n ids one at a time
 * (sg_sample with `so` and `rng`, each fed back in), into out[0 .. n). Evaluation mode and
 * no gradients while it runs; the context is reset between characters (call it with no
 * arena tensors to keep). 0, or -1 with the context's error. */
int seqmodel_sample(sg_ctx *ctx, seqmodel *m, const int64_t *prime, int64_t np, int64_t n,
                    const sg_sample_opts *so, sg_rng *rng, int64_t *out);

/* The input that starts a sample without a prime: the newline when the vocabulary has it,
 * else its first byte (the context the model reads first; not printed). Its index. */
int64_t seqmodel_default_prime(const unsigned char *vocab, int n);

/* ---- options as text ------------------------------------------------------------------ */
extern const char *const seqmodel_cell_names[3]; /* "lstm", "gru", "rnn" */

/* Strict parsing: the whole string must be a number in [lo, hi]. 0 or -1. */
int seqmodel_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);
int seqmodel_parse_f64(const char *s, double lo, double hi, double *out);

/* The vocabulary (n sorted distinct bytes) as 2n lower-case hex digits into buf (2n + 1
 * bytes), and back: 0, or -1 when s is not sorted distinct bytes in hex (1 .. 256 of them). */
void seqmodel_vocab_hex(const unsigned char *vocab, int n, char *buf);
int seqmodel_vocab_parse(const char *s, unsigned char *vocab, int *n);

/* The model options of a text checkpoint's metadata (train.task must be "text"), its
 * vocabulary and its batch size. 0, or -1 with a message in err naming the key. */
int seqmodel_read_meta(const sg_st_file *f, seqmodel_options *o, unsigned char *vocab, int *nvocab,
                       int64_t *batch, char *err, size_t errn);

#endif
