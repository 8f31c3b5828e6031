/* train's shared declarations: the configuration (train.c reads it from the command line
 * and from a resumed checkpoint) and the text and classify tasks (train_seq.c). */
#ifndef TRAIN_H
#define TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "seqmodel.h"

typedef enum { TASK_SINE, TASK_ADDING, TASK_RECALL, TASK_TEXT, TASK_CLASSIFY } task_kind;
enum { NTASKS = 5 };

typedef struct {
    task_kind task;
    sg_lstm_impl impl;
    sg_cell_kind cell;
    int64_t hidden, batch, seq_len, steps, embed, layers;
    double lr, momentum, clip, dropout, recurrent_dropout, temperature;
    int adam;
    bool bidirectional;
    uint64_t seed;
    const char *text, *save, *resume, *out_dir, *export_onnx;
    int64_t save_every, log_every, eval_every;
    int threads;
    sg_dtype dtype;
    uint64_t given, stored; /* bit k: option k given on the command line / from the checkpoint */
} config;

/* ---- text ------------------------------------------------------------------------------
 * The data protocol (README.md, "Real text"): the vocabulary is the file's distinct bytes,
 * sorted; the first floor(0.9 n) bytes train, the rest are held out; the training bytes but
 * the last are cut into B equal contiguous streams of S = floor((ntrain - 1) / B) inputs
 * (the targets one byte further); step k of an epoch of floor(S / T) steps takes inputs
 * [k T, (k + 1) T) of every stream, and the state is reset to zero at k = 0. */
typedef struct {
    unsigned char *bytes;
    int64_t n, ntrain;
    unsigned char vocab[256];
    int nvocab;
    int64_t *ids; /* every byte's vocabulary index */
    int64_t B, T, stream, chunks;
} corpus;

/* Read and check the file (messages on stderr name it): 0, or -1. */
int corpus_load(const char *path, corpus *cp, int64_t B, int64_t T);
void corpus_free(corpus *cp);
/* Cross-entropy (nats) of the add-one unigram of the training bytes on the held-out
 * predictions. */
double corpus_baseline(const corpus *cp);
/* One training step's loss (mean over B T) from the carried state h, c (persistent (L, B, H);
 * zeroed first at an epoch's start); the layer's output (its final states) into *out. NULL
 * with the context's error. */
sg_tensor *text_loss(sg_ctx *ctx, seqmodel *m, const corpus *cp, int64_t step, sg_tensor *h,
                     sg_tensor *c, sg_rnn_output *out);
/* The final states' values into h, c (after backward, which reads the old ones). 0 or -1. */
int text_carry(sg_ctx *ctx, sg_tensor *h, sg_tensor *c, const sg_rnn_output *out);
/* Held-out mean cross-entropy (nats) over 8 streams from a zero state; NAN on an error. */
double text_eval(sg_ctx *ctx, seqmodel *m, const corpus *cp);

/* ---- classify --------------------------------------------------------------------------
 * Sequences of random bits of lengths CLASSIFY_MIN .. T (uniform), right-padded with 0 to T;
 * label 1 when a sequence holds more 1s than 0s, else 0 (ties are 0). */
enum { CLASSIFY_MIN = 5 };
/* A batch drawn from r and its loss (mean cross-entropy); with `correct` non-NULL, the count
 * of right answers and of label 0 are added to correct[0], correct[1]. */
sg_tensor *classify_loss(sg_ctx *ctx, seqmodel *m, sg_rng *r, int64_t B, int64_t T,
                         int64_t *correct);

#endif
