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

/* ---- data-parallel rows ------------------------------------------------------------------
 * A global batch of B rows (streams for text) is cut into one part per rank: rank r of n
 * takes `rows` rows from row `first` (B / n each, the first B % n ranks one more). */
typedef struct {
    int64_t first, rows, total;
} row_range;
row_range rows_of(int64_t total, int rank, int ranks);
/* The generator of row `row` of the batch whose key is `key` (a draw of the data generator
 * per batch): the same on every rank. */
void row_rng(sg_rng *r, uint64_t key, int64_t row);

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
/* One training step's loss (mean over the rows' streams and T) for streams `rr` from the
 * carried state h, c (persistent (L, rows, H); zeroed first at an epoch's start); the
 * layer's output (its final states) into *out. NULL with the context's error. */
sg_tensor *text_loss(sg_ctx *ctx, seqmodel *m, const corpus *cp, int64_t step, row_range rr,
                     sg_tensor *h, sg_tensor *c, sg_rnn_output *out);
/* The final states' values into h, c (after backward, which reads the old ones). 0 or -1. */
int text_carry(sg_ctx *ctx, sg_tensor *h, sg_tensor *c, const sg_rnn_output *out);
/* The held-out streams (8) of this rank, rows_of(TEXT_HELD_STREAMS, rank, ranks), run from
 * a zero state: the sum of their cross-entropies (nats) into sum[0] and the count of
 * predicted bytes into sum[1] (0 and 0 for a rank with no stream). 0, or -1 with the
 * context's error. */
enum { TEXT_HELD_STREAMS = 8 };
int text_eval(sg_ctx *ctx, seqmodel *m, const corpus *cp, int rank, int ranks, double sum[2]);

/* ---- classify --------------------------------------------------------------------------
 * Sequences of random bits of lengths CLASSIFY_MIN .. T (uniform), right-padded with 0 to T;
 * label 1 when a sequence holds more 1s than 0s, else 0 (ties are 0). */
enum { CLASSIFY_MIN = 5 };
/* Rows `rr` of the batch with this key (row_rng) and their loss (mean cross-entropy over the
 * rows); with `correct` non-NULL, the count of right answers and of label 0 are added to
 * correct[0], correct[1]. */
sg_tensor *classify_loss(sg_ctx *ctx, seqmodel *m, uint64_t key, row_range rr, int64_t T,
                         int64_t *correct);

#endif
