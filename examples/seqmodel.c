/* seqmodel: see seqmodel.h. */
#include "seqmodel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const seqmodel_cell_names[3] = {"lstm", "gru", "rnn"};

int seqmodel_init(sg_ctx *ctx, sg_store *store, seqmodel *m, const seqmodel_options *o,
                  sg_rng *rng) {
    *m = (seqmodel){.o = *o};
    /* three statements: the order of the draws is the order of the layers */
    m->emb = sg_embedding_new(ctx, store, o->dtype, o->vocab, o->embed, NULL, "embedding", rng);
    sg_rnn_options ro = sg_rnn_defaults(o->cell, o->embed, o->hidden);
    ro.impl = o->impl;
    ro.num_layers = (int)o->layers;
    ro.bidirectional = o->bidirectional;
    ro.dtype = o->dtype;
    ro.layer_dropout = o->dropout; /* PyTorch's dropout between stacked layers */
    ro.recurrent_dropout = o->recurrent_dropout;
    m->rnn = m->emb ? sg_rnn_new(ctx, store, &ro, "rnn", rng) : NULL;
    int64_t D = o->bidirectional ? 2 : 1;
    m->head = m->rnn ? sg_dense_new(ctx, store, o->dtype, D * o->hidden, o->outputs, true,
                                    SG_ACT_LINEAR, "dense", rng)
                     : NULL;
    return m->head ? 0 : -1;
}

void seqmodel_free(seqmodel *m) {
    sg_embedding_free(m->emb);
    sg_rnn_free(m->rnn);
    sg_dense_free(m->head);
    *m = (seqmodel){0};
}

sg_tensor *seqmodel_forward(sg_ctx *ctx, seqmodel *m, sg_tensor *ids, sg_tensor *lengths,
                            sg_tensor *h0, sg_tensor *c0, sg_rnn_output *out) {
    sg_tensor *e = sg_embedding_forward(ctx, m->emb, ids);
    if (!e || sg_rnn_forward(ctx, m->rnn, e, lengths, h0, c0, out))
        return NULL;
    if (m->o.per_step)
        return sg_dense_forward(ctx, m->head, out->y); /* (B, T, V) */
    /* the last layer's final states: forward (index 2L-2 or L-1) and reverse (2L-1) */
    int64_t L = m->o.layers;
    sg_tensor *last;
    if (m->o.bidirectional) {
        sg_tensor *both[2] = {sg_select(ctx, out->h_n, 0, 2 * L - 2),
                              sg_select(ctx, out->h_n, 0, 2 * L - 1)};
        last = sg_concat(ctx, 2, both, 1);
    } else {
        last = sg_select(ctx, out->h_n, 0, L - 1);
    }
    return sg_dense_forward(ctx, m->head, last); /* (B, O) */
}

int seqmodel_state_new(sg_ctx *ctx, const seqmodel *m, int64_t B, sg_tensor **h, sg_tensor **c,
                       sg_param_list *list) {
    int64_t LD = m->o.layers * (m->o.bidirectional ? 2 : 1);
    *h = sg_persistent_new(ctx, m->o.dtype, SG_SHAPE(LD, B, m->o.hidden));
    *c = m->o.cell == SG_CELL_LSTM
             ? sg_persistent_new(ctx, m->o.dtype, SG_SHAPE(LD, B, m->o.hidden))
             : NULL;
    if (!*h || (m->o.cell == SG_CELL_LSTM && !*c))
        return -1;
    if (list && (sg_params_add(list, "tbptt.h", *h) || (*c && sg_params_add(list, "tbptt.c", *c))))
        return -1;
    return 0;
}

int seqmodel_eval_begin(sg_ctx *ctx, const seqmodel *m, int64_t B, seqmodel_eval *e) {
    *e = (seqmodel_eval){.training = sg_ctx_set_training(ctx, false),
                         .grad = sg_ctx_set_grad_enabled(ctx, false)};
    return seqmodel_state_new(ctx, m, B, &e->h, &e->c, NULL);
}

void seqmodel_eval_end(sg_ctx *ctx, seqmodel_eval *e) {
    sg_ctx_reset(ctx);
    sg_tensor_free(e->h);
    sg_tensor_free(e->c);
    sg_ctx_set_training(ctx, e->training);
    sg_ctx_set_grad_enabled(ctx, e->grad);
    *e = (seqmodel_eval){0};
}

int seqmodel_sample(sg_ctx *ctx, seqmodel *m, const int64_t *prime, int64_t np, int64_t n,
                    const sg_sample_opts *so, sg_rng *rng, int64_t *out) {
    seqmodel_eval e;
    int rc = -1;
    if (seqmodel_eval_begin(ctx, m, 1, &e))
        goto done;
    const int64_t *in = prime;
    int64_t nin = np, next = 0;
    for (int64_t i = 0; i <= n; i++) {
        /* feed the prime (once), then each drawn id; the last step's logits draw the next */
        sg_tensor *ids = sg_from_data(ctx, SG_I64, SG_SHAPE(1, nin), in);
        sg_rnn_output o;
        sg_tensor *logits = seqmodel_forward(ctx, m, ids, NULL, e.h, e.c, &o);
        if (!logits || sg_copy(e.h, o.h_n) || (e.c && sg_copy(e.c, o.c_n)))
            goto done;
        if (i == n)
            break;
        sg_tensor *last = sg_reshape(ctx, sg_select(ctx, logits, 1, nin - 1), SG_SHAPE(m->o.vocab));
        sg_tensor *id = sg_sample(ctx, last, so, rng);
        if (!id)
            goto done;
        next = out[i] = sg_get_flat_i64(id, 0);
        sg_ctx_reset(ctx);
        in = &next;
        nin = 1;
    }
    rc = 0;
done:
    seqmodel_eval_end(ctx, &e);
    return rc;
}

int64_t seqmodel_default_prime(const unsigned char *vocab, int n) {
    for (int i = 0; i < n; i++)
        if (vocab[i] == '\n')
            return i;
    return 0;
}

/* ---- options as text ------------------------------------------------------------------ */

int seqmodel_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int seqmodel_parse_f64(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

void seqmodel_vocab_hex(const unsigned char *vocab, int n, char *buf) {
    for (int i = 0; i < n; i++)
        snprintf(buf + 2 * i, 3, "%02x", vocab[i]);
    buf[2 * n] = 0;
}

static int hex_digit(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int seqmodel_vocab_parse(const char *s, unsigned char *vocab, int *n) {
    size_t len = strlen(s);
    if (len == 0 || len % 2 || len > 512)
        return -1;
    for (size_t i = 0; i < len; i += 2) {
        int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        vocab[i / 2] = (unsigned char)(hi * 16 + lo);
        if (i > 0 && vocab[i / 2] <= vocab[i / 2 - 1])
            return -1; /* sorted and distinct */
    }
    *n = (int)(len / 2);
    return 0;
}

/* The value of key `k` ("train.<k>"), or NULL with a message. */
static const char *meta_get(const sg_st_file *f, const char *k, char *err, size_t errn) {
    char key[64];
    snprintf(key, sizeof key, "train.%s", k);
    const char *v = sg_st_meta(f, key);
    if (!v)
        snprintf(err, errn, "no metadata '%s' (not written by train --task text)", key);
    return v;
}

/* Which of names[0 .. n) is v: its index, or -1 with a message. */
static int meta_choice(const sg_st_file *f, const char *k, const char *const *names, int n,
                       char *err, size_t errn) {
    const char *v = meta_get(f, k, err, errn);
    for (int i = 0; v && i < n; i++)
        if (!strcmp(v, names[i]))
            return i;
    if (v)
        snprintf(err, errn, "metadata 'train.%s' has a bad value '%.40s'", k, v);
    return -1;
}

static int meta_int(const sg_st_file *f, const char *k, int64_t lo, int64_t hi, int64_t *out,
                    char *err, size_t errn) {
    const char *v = meta_get(f, k, err, errn);
    if (v && seqmodel_parse_i64(v, lo, hi, out) == 0)
        return 0;
    if (v)
        snprintf(err, errn, "metadata 'train.%s' is not an integer in %lld..%lld: '%.40s'", k,
                 (long long)lo, (long long)hi, v);
    return -1;
}

int seqmodel_read_meta(const sg_st_file *f, seqmodel_options *o, unsigned char *vocab, int *nvocab,
                       int64_t *batch, char *err, size_t errn) {
    static const char *const tasks[] = {"text"}, *const impls[] = {"fused", "gates"},
                             *const dtypes[] = {"f32", "f64"};
    *o = (seqmodel_options){.per_step = true};
    int cell, impl, dt;
    if (meta_choice(f, "task", tasks, 1, err, errn) < 0 ||
        (cell = meta_choice(f, "cell", seqmodel_cell_names, 3, err, errn)) < 0 ||
        (impl = meta_choice(f, "impl", impls, 2, err, errn)) < 0 ||
        (dt = meta_choice(f, "dtype", dtypes, 2, err, errn)) < 0 ||
        meta_int(f, "layers", 1, 64, &o->layers, err, errn) ||
        meta_int(f, "hidden", 1, 4096, &o->hidden, err, errn) ||
        meta_int(f, "embed", 1, 4096, &o->embed, err, errn) ||
        meta_int(f, "batch", 1, 65536, batch, err, errn))
        return -1;
    const char *v = meta_get(f, "vocab", err, errn);
    if (!v)
        return -1;
    if (seqmodel_vocab_parse(v, vocab, nvocab) || *nvocab < 2) {
        snprintf(err, errn, "metadata 'train.vocab' is not 2 to 256 sorted bytes in hex");
        return -1;
    }
    o->cell = (sg_cell_kind)cell;
    o->impl = (sg_lstm_impl)impl;
    o->dtype = dt ? SG_F64 : SG_F32;
    o->vocab = o->outputs = *nvocab;
    return 0;
}
