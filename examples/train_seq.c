/* train's text and classify tasks: the data and the loss of a batch (see train.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

enum { HELD_STREAMS = TEXT_HELD_STREAMS };

row_range rows_of(int64_t total, int rank, int ranks) {
    int64_t q = total / ranks, e = total % ranks;
    return (row_range){
        .first = rank * q + (rank < e ? rank : e), .rows = q + (rank < e), .total = total};
}

/* splitmix64's finaliser: a bijection that scatters every input bit over the output. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

void row_rng(sg_rng *r, uint64_t key, int64_t row) {
    /* sg_rng_seed(s) draws the state from the counter s + k * 0x9E37...: seeds that differ
     * by a multiple of that step would give overlapping streams, so the row's seed is a hash
     * of (key, row), not a simple combination of them */
    sg_rng_seed(r, mix64(key ^ mix64((uint64_t)row + UINT64_C(0x632BE59BD9B4E019))));
}

/* The whole file into *buf (malloc'd), its length into *n: 0, or -1 with a message. */
static int read_all(const char *path, unsigned char **buf, int64_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "train: --text %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    unsigned char *b = malloc(cap);
    for (size_t got; b; len += got) {
        if (len == cap) {
            unsigned char *nb = cap < ((size_t)1 << 40) ? realloc(b, cap *= 2) : NULL;
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
        }
        got = fread(b + len, 1, cap - len, f);
        if (got == 0)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (!b || err) {
        fprintf(stderr, "train: --text %s: %s\n", path, b ? "read error" : "out of memory");
        free(b);
        return -1;
    }
    *buf = b;
    *n = (int64_t)len;
    return 0;
}

int corpus_load(const char *path, corpus *cp, int64_t B, int64_t T) {
    *cp = (corpus){.B = B, .T = T};
    if (read_all(path, &cp->bytes, &cp->n))
        return -1;
    int64_t n = cp->n;
    if (n == 0) {
        fprintf(stderr, "train: --text %s: empty file\n", path);
        return -1;
    }
    bool seen[256] = {0};
    for (int64_t i = 0; i < n; i++)
        seen[cp->bytes[i]] = true;
    int16_t id_of[256];
    for (int v = 0; v < 256; v++)
        if (seen[v]) {
            id_of[v] = (int16_t)cp->nvocab;
            cp->vocab[cp->nvocab++] = (unsigned char)v;
        }
    if (cp->nvocab < 2) {
        fprintf(stderr,
                "train: --text %s: every byte is 0x%02x: a single distinct byte leaves nothing "
                "to predict\n",
                path, cp->bytes[0]);
        return -1;
    }
    cp->ntrain = n - n / 10; /* the first 90% (rounded up), the last 10% held out */
    cp->stream = (cp->ntrain - 1) / B;
    cp->chunks = cp->stream / T;
    if (cp->chunks < 1) {
        fprintf(stderr,
                "train: --text %s: %lld training bytes make %lld streams of %lld bytes, fewer "
                "than --seq-len %lld\n",
                path, (long long)cp->ntrain, (long long)B, (long long)cp->stream, (long long)T);
        return -1;
    }
    if ((n - cp->ntrain - 1) / HELD_STREAMS < 1) {
        fprintf(stderr,
                "train: --text %s: %lld held-out bytes, fewer than the %d that %d held-out "
                "streams need\n",
                path, (long long)(n - cp->ntrain), HELD_STREAMS + 1, HELD_STREAMS);
        return -1;
    }
    cp->ids = malloc((size_t)n * sizeof *cp->ids);
    if (!cp->ids) {
        fprintf(stderr, "train: --text %s: out of memory\n", path);
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        cp->ids[i] = id_of[cp->bytes[i]];
    return 0;
}

void corpus_free(corpus *cp) {
    free(cp->bytes);
    free(cp->ids);
    *cp = (corpus){0};
}

/* The held-out streams: HELD_STREAMS of `len` inputs each, from ntrain on. */
static int64_t held_len(const corpus *cp) { return (cp->n - cp->ntrain - 1) / HELD_STREAMS; }

double corpus_baseline(const corpus *cp) {
    double count[256] = {0};
    for (int64_t i = 0; i < cp->ntrain; i++)
        count[cp->ids[i]] += 1;
    double total = (double)cp->ntrain + cp->nvocab, sum = 0;
    int64_t len = held_len(cp);
    for (int s = 0; s < HELD_STREAMS; s++)
        for (int64_t t = 0; t < len; t++) /* the targets: one further than the inputs */
            sum -= log((count[cp->ids[cp->ntrain + s * len + t + 1]] + 1) / total);
    return sum / (double)(HELD_STREAMS * len);
}

/* ids and targets (B, T) int64 of streams starting at `start` with `stride` between them,
 * from position `at` on. */
static void stream_batch(const corpus *cp, int64_t start, int64_t stride, int64_t B, int64_t at,
                         int64_t T, sg_tensor *x, sg_tensor *y) {
    int64_t *xs = sg_data(x), *ys = sg_data(y);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            int64_t i = start + b * stride + at + t;
            xs[b * T + t] = cp->ids[i];
            ys[b * T + t] = cp->ids[i + 1];
        }
}

sg_tensor *text_loss(sg_ctx *ctx, seqmodel *m, const corpus *cp, int64_t step, row_range rr,
                     sg_tensor *h, sg_tensor *c, sg_rnn_output *out) {
    int64_t k = step % cp->chunks, B = rr.rows, T = cp->T;
    if (k == 0) { /* the streams wrap around: a fresh state */
        sg_fill(h, 0);
        if (c)
            sg_fill(c, 0);
    }
    sg_tensor *x = sg_tensor_new(ctx, SG_I64, SG_SHAPE(B, T)),
              *y = sg_tensor_new(ctx, SG_I64, SG_SHAPE(B, T));
    if (!x || !y)
        return NULL;
    stream_batch(cp, rr.first * cp->stream, cp->stream, B, k * T, T, x, y);
    return sg_cross_entropy(ctx, seqmodel_forward(ctx, m, x, NULL, h, c, out), y);
}

int text_carry(sg_ctx *ctx, sg_tensor *h, sg_tensor *c, const sg_rnn_output *out) {
    return sg_copy(h, sg_detach(ctx, out->h_n)) || (c && sg_copy(c, sg_detach(ctx, out->c_n))) ? -1
                                                                                               : 0;
}

int text_eval(sg_ctx *ctx, seqmodel *m, const corpus *cp, int rank, int ranks, double sum[2]) {
    seqmodel_eval e;
    int64_t len = held_len(cp);
    row_range rr = rows_of(HELD_STREAMS, rank, ranks);
    int64_t B = rr.rows;
    sum[0] = sum[1] = 0;
    if (B == 0) /* more ranks than held-out streams */
        return 0;
    int rc = -1;
    if (seqmodel_eval_begin(ctx, m, B, &e))
        goto done;
    for (int64_t at = 0; at < len; at += cp->T) {
        int64_t T = len - at < cp->T ? len - at : cp->T;
        sg_tensor *x = sg_tensor_new(ctx, SG_I64, SG_SHAPE(B, T)),
                  *y = sg_tensor_new(ctx, SG_I64, SG_SHAPE(B, T));
        if (!x || !y)
            goto done;
        stream_batch(cp, cp->ntrain + rr.first * len, len, B, at, T, x, y);
        sg_rnn_output out;
        sg_tensor *loss =
            sg_cross_entropy(ctx, seqmodel_forward(ctx, m, x, NULL, e.h, e.c, &out), y);
        if (!loss || text_carry(ctx, e.h, e.c, &out))
            goto done;
        sum[0] += sg_get_flat(loss, 0) * (double)(B * T);
        sum[1] += (double)(B * T);
        sg_ctx_reset(ctx);
    }
    rc = 0;
done:
    seqmodel_eval_end(ctx, &e);
    return rc;
}

sg_tensor *classify_loss(sg_ctx *ctx, seqmodel *m, uint64_t key, row_range rr, int64_t T,
                         int64_t *correct) {
    const int64_t B = rr.rows;
    sg_tensor *x = sg_tensor_new(ctx, SG_I64, SG_SHAPE(B, T)),
              *len = sg_tensor_new(ctx, SG_I64, SG_SHAPE(B)),
              *y = sg_tensor_new(ctx, SG_I64, SG_SHAPE(B));
    if (!x || !len || !y)
        return NULL;
    int64_t *xs = sg_data(x), *ls = sg_data(len), *ys = sg_data(y);
    for (int64_t b = 0; b < B; b++) {
        sg_rng rr_b, *r = &rr_b;
        row_rng(r, key, rr.first + b);
        ls[b] = CLASSIFY_MIN + (int64_t)sg_rng_below(r, (uint64_t)(T - CLASSIFY_MIN + 1));
        int64_t ones = 0;
        for (int64_t t = 0; t < ls[b]; t++)
            ones += xs[b * T + t] = (int64_t)sg_rng_below(r, 2);
        ys[b] = 2 * ones > ls[b];
    }
    sg_rnn_output out;
    sg_tensor *logits = seqmodel_forward(ctx, m, x, len, NULL, NULL, &out); /* (B, 2) */
    sg_tensor *loss = sg_cross_entropy(ctx, logits, y);
    for (int64_t b = 0; loss && correct && b < B; b++) {
        int64_t guess = sg_get_flat(logits, 2 * b + 1) > sg_get_flat(logits, 2 * b);
        correct[0] += guess == ys[b];
        correct[1] += ys[b] == 0;
    }
    return loss;
}
