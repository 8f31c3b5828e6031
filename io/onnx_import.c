/* ONNX import (docs/onnx.md): parse a model with protobuf-c, check its initializers as
 * hostile input, and load the weights of its recurrent nodes (and of an Embedding's Gather
 * and Dense layers' MatMul / Gemm) into seqgrad layers. Fuzzed by fuzz/fuzz_onnx.c. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../layers/internal.h"
#include "io_internal.h"
#include "onnx.pb-c.h"

struct sg_onnx_file {
    sg_ctx *ctx;
    char label[256]; /* the path, or "buffer", for messages */
    Onnx__ModelProto *m;
};

void sg_onnx_free(sg_onnx_file *f) {
    if (!f)
        return;
    if (f->m)
        onnx__model_proto__free_unpacked(f->m, NULL);
    sg_free(f);
}

/* The seqgrad dtype of an ONNX element type, or -1. */
static int onnx_dtype(int32_t t) {
    switch (t) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return SG_F32;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: return SG_F64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return SG_I64;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return SG_I32;
    default: return -1;
    }
}

/* How many values the typed field for dtype holds, and where. */
static size_t typed_count(const Onnx__TensorProto *t, int dt, const void **data) {
    switch (dt) {
    case SG_F32: *data = t->float_data; return t->n_float_data;
    case SG_F64: *data = t->double_data; return t->n_double_data;
    case SG_I64: *data = t->int64_data; return t->n_int64_data;
    default: *data = t->int32_data; return t->n_int32_data;
    }
}

/* A name for messages: quoted, escaped, shortened (NULL: ''). */
#define QN(s) SG_IO_QN((s) ? (s) : "")

/* An initializer's problem into buf, or NULL when it is a well-formed tensor. */
static const char *bad_tensor(const Onnx__TensorProto *t, char *buf, size_t n) {
    const char *nm = QN(t->name);
    if (!t->name)
        return snprintf(buf, n, "an initializer has no name"), buf;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return snprintf(buf, n, "initializer %s: external data is not supported", nm), buf;
    int dt = onnx_dtype(t->data_type);
    if (dt < 0)
        return snprintf(buf, n,
                        "initializer %s: data type %d not supported (float, double, int32, int64)",
                        nm, (int)t->data_type),
               buf;
    if (t->n_dims > SG_MAX_DIMS)
        return snprintf(buf, n, "initializer %s: %zu dims (at most %d)", nm, t->n_dims,
                        SG_MAX_DIMS),
               buf;
    int64_t numel = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0)
            return snprintf(buf, n, "initializer %s: dim %zu is %lld", nm, i,
                            (long long)t->dims[i]),
                   buf;
        if (__builtin_mul_overflow(numel, t->dims[i], &numel) || numel > SG_NUMEL_MAX)
            return snprintf(buf, n, "initializer %s: its size overflows", nm), buf;
    }
    size_t es = sg_dtype_size((sg_dtype)dt);
    const void *data;
    size_t typed = typed_count(t, dt, &data);
    if (t->has_raw_data && typed)
        return snprintf(buf, n, "initializer %s: both raw and typed data", nm), buf;
    size_t have = t->has_raw_data ? t->raw_data.len : typed * es;
    if (have != (size_t)numel * es)
        return snprintf(buf, n, "initializer %s: %zu bytes of data for %lld values of %zu bytes",
                        nm, have, (long long)numel, es),
               buf;
    return NULL;
}

static sg_onnx_file *parse(sg_ctx *ctx, const char *fn, const char *label, const void *buf,
                           size_t len) {
    if (!buf) {
        sg__io_error(ctx, fn, label, "buffer is NULL");
        return NULL;
    }
    sg_onnx_file *f = sg_calloc(1, sizeof *f);
    if (!f) {
        sg__io_error(ctx, fn, label, "out of memory");
        return NULL;
    }
    f->ctx = ctx;
    snprintf(f->label, sizeof f->label, "%s", label ? label : "buffer");
    f->m = onnx__model_proto__unpack(NULL, len, buf);
    char msg[512];
    const char *bad = NULL;
    if (!f->m)
        bad = "not an ONNX model: protobuf decoding failed (truncated or corrupt file)";
    else if (!f->m->graph)
        bad = "the model has no graph";
    for (size_t i = 0; !bad && i < f->m->graph->n_initializer; i++)
        bad = bad_tensor(f->m->graph->initializer[i], msg, sizeof msg);
    if (bad) {
        sg__io_error(ctx, fn, label, "%s", bad);
        sg_onnx_free(f);
        return NULL;
    }
    return f;
}

sg_onnx_file *sg_onnx_parse(sg_ctx *ctx, const void *buf, size_t len) {
    return ctx ? parse(ctx, "sg_onnx_parse", NULL, buf, len) : NULL;
}

sg_onnx_file *sg_onnx_load(sg_ctx *ctx, const char *path) {
    const char *fn = "sg_onnx_load";
    if (!ctx || !sg__io_path_ok(ctx, fn, path))
        return NULL;
    size_t len = 0;
    unsigned char *buf = sg__io_read_file(ctx, fn, path, &len);
    if (!buf)
        return NULL;
    sg_onnx_file *f = parse(ctx, fn, path, buf, len);
    sg_free(buf);
    return f;
}

/* ---- import ----------------------------------------------------------------------------- */

typedef struct {
    sg_ctx *ctx;
    const sg_onnx_file *f;
    const Onnx__GraphProto *g;
    char msg[512];
    bool bad;
} imp;

static bool fail(imp *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(imp *im, const char *fmt, ...) {
    if (!im->bad) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(im->msg, sizeof im->msg, fmt, ap);
        va_end(ap);
        im->bad = true;
    }
    return false;
}

static const Onnx__TensorProto *find_init(const imp *im, const char *name) {
    for (size_t i = 0; name && *name && i < im->g->n_initializer; i++)
        if (!strcmp(im->g->initializer[i]->name, name))
            return im->g->initializer[i];
    return NULL;
}

/* An initializer as a float64 arena tensor (checked by parse), or NULL with a message. */
static sg_tensor *tensor_of(imp *im, const Onnx__TensorProto *t) {
    int dt = onnx_dtype(t->data_type);
    int64_t shape[SG_MAX_DIMS] = {0};
    for (size_t i = 0; i < t->n_dims; i++)
        shape[i] = t->dims[i];
    const void *data;
    if (t->has_raw_data)
        data = t->raw_data.data;
    else
        typed_count(t, dt, &data);
    sg_tensor *x = NULL;
    if (dt == SG_I32 || dt == SG_I64 || !data) { /* ints, or no values at all */
        x = sg_zeros(im->ctx, SG_F64, (int)t->n_dims, shape);
        size_t es = sg_dtype_size((sg_dtype)dt);
        for (int64_t i = 0; x && data && i < sg_numel(x); i++) {
            int64_t v = 0;
            if (dt == SG_I64)
                memcpy(&v, (const char *)data + (size_t)i * es, sizeof v);
            else {
                int32_t w;
                memcpy(&w, (const char *)data + (size_t)i * es, sizeof w);
                v = w;
            }
            sg_set_flat(x, i, (double)v);
        }
    } else if (t->has_raw_data) {
        /* raw bytes need not be aligned for the type: copy them into a fresh tensor */
        x = sg_zeros(im->ctx, (sg_dtype)dt, (int)t->n_dims, shape);
        if (x && t->raw_data.len)
            memcpy(sg_data(x), data, t->raw_data.len);
    } else {
        x = sg_from_data(im->ctx, (sg_dtype)dt, (int)t->n_dims, shape, data);
    }
    if (!x)
        fail(im, "initializer %s: out of memory", QN(t->name));
    return x;
}

/* Node input k's initializer, required (a message naming the node when missing). */
static const Onnx__TensorProto *node_init(imp *im, const Onnx__NodeProto *n, size_t k,
                                          const char *what, bool required) {
    const char *in = k < n->n_input ? n->input[k] : NULL;
    const Onnx__TensorProto *t = find_init(im, in);
    if (!t && required)
        fail(im, "node %s (%s): %s %s is not an initializer", QN(n->name), n->op_type, what,
             in && *in ? QN(in) : "is missing and");
    if (!t && !required && in && *in)
        fail(im, "node %s (%s): %s %s is not an initializer", QN(n->name), n->op_type, what,
             QN(in));
    return t;
}

/* The tensor must have exactly this shape. */
static bool shape_is(imp *im, const Onnx__NodeProto *n, const char *what,
                     const Onnx__TensorProto *t, int nd, const int64_t *want) {
    bool ok = (int)t->n_dims == nd;
    for (int i = 0; ok && i < nd; i++)
        ok = t->dims[i] == want[i];
    if (!ok) {
        char a[128], b[128];
        int64_t have[SG_MAX_DIMS];
        for (size_t i = 0; i < t->n_dims; i++)
            have[i] = t->dims[i];
        fail(im, "node %s (%s): %s has shape %s, expected %s", QN(n->name), n->op_type, what,
             sg_shape_str((int)t->n_dims, have, a, sizeof a), sg_shape_str(nd, want, b, sizeof b));
    }
    return ok;
}

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name) {
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name))
            return n->attribute[i];
    return NULL;
}

/* Does the n bytes at s spell w, ignoring ASCII case (onnxruntime reads them so)? */
static bool same_name(const uint8_t *s, size_t n, const char *w) {
    if (n != strlen(w))
        return false;
    for (size_t i = 0; i < n; i++) {
        int c = s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i];
        int d = w[i] >= 'A' && w[i] <= 'Z' ? w[i] + 32 : w[i];
        if (c != d)
            return false;
    }
    return true;
}

static const char *act_onnx(sg_activation a) {
    switch (a) {
    case SG_ACT_TANH: return "Tanh";
    case SG_ACT_SIGMOID: return "Sigmoid";
    case SG_ACT_HARD_SIGMOID: return "HardSigmoid";
    case SG_ACT_RELU: return "Relu";
    default: return "Affine";
    }
}

/* A copy to make once everything is checked: dst (a layer's parameter) <- src. */
typedef struct {
    sg_tensor *dst, *src;
} copy;

typedef struct {
    const sg__cell *cell; /* the gates LSTM: through sg__lstm_transfer */
    sg_tensor *k, *rk, *b;
} cell_copy;

/* Check recurrent node n against layer l of the stack and prepare its copies. */
static bool rnn_node(imp *im, const Onnx__NodeProto *n, const sg_rnn_options *o, int l, int D,
                     const sg__cell *const *cells, cell_copy *out) {
    const char *nm = QN(n->name), *op = n->op_type;
    const sg_cell_kind cell = o->cell;
    const char *want_op = cell == SG_CELL_LSTM ? "LSTM" : cell == SG_CELL_GRU ? "GRU" : "RNN";
    if (strcmp(op, want_op))
        return fail(im, "node %s is %s, layer %d of the stack is %s", nm, op, l, want_op);
    const int G = cell == SG_CELL_LSTM ? 4 : cell == SG_CELL_GRU ? 3 : 1;
    const int64_t H = o->units, I = cells[0]->in;
    const Onnx__AttributeProto *a;
    if ((a = attr(n, "hidden_size")) && a->i != H)
        return fail(im, "node %s (%s): hidden_size %lld, the layer has %lld units", nm, op,
                    (long long)a->i, (long long)H);
    const char *dir = "forward";
    char dbuf[32];
    if ((a = attr(n, "direction"))) {
        snprintf(dbuf, sizeof dbuf, "%.*s", (int)(a->s.len < 31 ? a->s.len : 31),
                 a->s.data ? (const char *)a->s.data : "");
        dir = dbuf;
    }
    if (strcmp(dir, D == 2 ? "bidirectional" : "forward"))
        return fail(im, "node %s (%s): direction %s, the layer is %s", nm, op, QN(dir),
                    D == 2 ? "bidirectional" : "forward");
    if (attr(n, "clip"))
        return fail(im, "node %s (%s): clip is not supported", nm, op);
    if ((a = attr(n, "input_forget")) && a->i)
        return fail(im, "node %s (%s): input_forget is not supported", nm, op);
    if (cell == SG_CELL_GRU) {
        int64_t lbr = (a = attr(n, "linear_before_reset")) ? a->i : 0;
        if ((lbr != 0) != o->reset_after)
            return fail(im,
                        "node %s (GRU): linear_before_reset = %lld, the layer has reset_after = %s",
                        nm, (long long)lbr, o->reset_after ? "true" : "false");
    }
    if ((a = attr(n, "activations"))) {
        int per = cell == SG_CELL_LSTM ? 3 : cell == SG_CELL_GRU ? 2 : 1;
        if (a->n_strings != (size_t)(per * D))
            return fail(im, "node %s (%s): %zu activations, expected %d", nm, op, a->n_strings,
                        per * D);
        for (size_t i = 0; i < a->n_strings; i++) {
            int k = (int)i % per;
            sg_activation want_a =
                cell != SG_CELL_RNN && k == 0 ? o->recurrent_activation : o->activation;
            const char *w = act_onnx(want_a);
            const ProtobufCBinaryData *s = &a->strings[i];
            if (!same_name(s->data, s->len, w))
                return fail(im, "node %s (%s): activation %zu is %.*s, the layer's is %s", nm, op,
                            i, (int)(s->len < 32 ? s->len : 32),
                            s->data ? (const char *)s->data : "", w);
        }
    }
    const Onnx__TensorProto *W = node_init(im, n, 1, "W", true);
    const Onnx__TensorProto *R = W ? node_init(im, n, 2, "R", true) : NULL;
    const Onnx__TensorProto *B = R ? node_init(im, n, 3, "B", false) : NULL;
    if (!R || im->bad)
        return false;
    if (!shape_is(im, n, "W", W, 3, (int64_t[]){D, G * H, I}) ||
        !shape_is(im, n, "R", R, 3, (int64_t[]){D, G * H, H}) ||
        (B && !shape_is(im, n, "B", B, 2, (int64_t[]){D, 2 * G * H})))
        return false;
    if (cell == SG_CELL_LSTM && n->n_input > 7 && *n->input[7]) { /* peepholes: must be zero */
        const Onnx__TensorProto *P = node_init(im, n, 7, "P", true);
        sg_tensor *p = P ? tensor_of(im, P) : NULL;
        if (!p)
            return false;
        for (int64_t i = 0; i < sg_numel(p); i++)
            if (sg_get_flat(p, i) != 0)
                return fail(im, "node %s (LSTM): peepholes P are not supported (nonzero)", nm);
    }
    sg_tensor *Wt = tensor_of(im, W), *Rt = Wt ? tensor_of(im, R) : NULL;
    sg_tensor *Bt = Rt && B ? tensor_of(im, B) : NULL;
    if (!Rt || (B && !Bt))
        return false;
    for (int d = 0; d < D; d++) {
        sg_tensor *Wd = sg_select(im->ctx, Wt, 0, d), *Rd = sg_select(im->ctx, Rt, 0, d);
        sg_tensor *Bd = Bt ? sg_select(im->ctx, Bt, 0, d) : NULL;
        cell_copy *cc = &out[d];
        cc->cell = cells[d];
        if (sg_onnx_to_keras(im->ctx, cell, o->reset_after, Wd, Rd, Bd, &cc->k, &cc->rk, &cc->b))
            return fail(im, "node %s (%s): %s", nm, op, sg_ctx_error(im->ctx));
        if (cc->b && !o->use_bias) {
            for (int64_t i = 0; i < sg_numel(cc->b); i++)
                if (sg_get_flat(cc->b, i) != 0)
                    return fail(im, "node %s (%s): B is not zero but the layer has no bias", nm,
                                op);
            cc->b = NULL;
        }
    }
    return true;
}

/* Find the node after `from` that uses value v as an input and is op (NULL if none). */
static const Onnx__NodeProto *consumer(const imp *im, const char *v, const char *op) {
    for (size_t i = 0; i < im->g->n_node; i++) {
        const Onnx__NodeProto *n = im->g->node[i];
        if (!n->op_type || strcmp(n->op_type, op))
            continue;
        for (size_t k = 0; k < n->n_input; k++)
            if (n->input[k] && !strcmp(n->input[k], v))
                return n;
    }
    return NULL;
}

int sg_onnx_import(sg_ctx *ctx, const sg_onnx_file *f, const sg_onnx_model *m) {
    const char *fn = "sg_onnx_import";
    if (!ctx)
        return -1;
    if (!f || !m) {
        sg_error(ctx, "%s: %s is NULL", fn, f ? "model" : "file");
        return -1;
    }
    if (!!m->rnn == !!m->lstm || m->n_dense < 0 || (m->n_dense && !m->dense)) {
        sg__io_error(
            ctx, fn, f->label,
            "the model needs exactly one stack (rnn or lstm) and a dense array for n_dense");
        return -1;
    }
    const bool had_err = sg_ctx_error(ctx) != NULL;
    bool was = sg_ctx_set_grad_enabled(ctx, false);
    imp im = {.ctx = ctx, .f = f, .g = f->m->graph};
    /* the stack's cells */
    sg_rnn_options lo;
    sg__cell lc;
    const sg_rnn_options *o;
    int L = 1, D = 1;
    if (m->rnn) {
        o = sg_rnn_opts(m->rnn);
        L = o->num_layers;
        D = o->bidirectional ? 2 : 1;
    } else {
        sg__lstm_cell(m->lstm, &lo, &lc);
        o = &lo;
    }
    cell_copy *cc = sg_arena_alloc(ctx, (size_t)(L * D) * sizeof *cc);
    int nr = 0;
    for (size_t i = 0; cc && !im.bad && i < im.g->n_node; i++) {
        const Onnx__NodeProto *n = im.g->node[i];
        const char *op = n->op_type ? n->op_type : "";
        if (strcmp(op, "LSTM") && strcmp(op, "GRU") && strcmp(op, "RNN"))
            continue;
        if (nr == L) {
            fail(&im, "node %s (%s): more recurrent nodes than the stack's %d layer%s", QN(n->name),
                 op, L, L > 1 ? "s" : "");
            break;
        }
        const sg__cell *cells[2] = {m->rnn ? sg__rnn_cell(m->rnn, nr, 0) : &lc,
                                    m->rnn && D == 2 ? sg__rnn_cell(m->rnn, nr, 1) : NULL};
        rnn_node(&im, n, o, nr, D, cells, &cc[nr * D]);
        nr++;
    }
    if (!cc)
        fail(&im, "out of memory");
    if (!im.bad && nr < L)
        fail(&im, "the graph has %d recurrent node%s (LSTM, GRU, RNN), the stack %d layer%s", nr,
             nr == 1 ? "" : "s", L, L > 1 ? "s" : "");
    /* the embedding: the first Gather of an initializer */
    copy cp[1 + 2 * 64];
    int ncp = 0;
    if (!im.bad && m->embedding) {
        const Onnx__NodeProto *gn = NULL;
        const Onnx__TensorProto *tab = NULL;
        for (size_t i = 0; !gn && i < im.g->n_node; i++) {
            const Onnx__NodeProto *n = im.g->node[i];
            if (n->op_type && !strcmp(n->op_type, "Gather") && n->n_input >= 1 &&
                (tab = find_init(&im, n->input[0])))
                gn = n;
        }
        if (!gn)
            fail(&im, "no Gather of an initializer for embedding %s", m->embedding->name);
        else if (shape_is(&im, gn, "the table", tab, 2,
                          (int64_t[]){m->embedding->vocab, m->embedding->dim}))
            cp[ncp++] = (copy){m->embedding->embeddings, tensor_of(&im, tab)};
    }
    /* the Dense layers: MatMul / Gemm of an initializer weight, in order */
    if (m->n_dense > 64)
        fail(&im, "%d dense layers (at most 64)", m->n_dense);
    int nd = 0;
    for (size_t i = 0; !im.bad && m->n_dense && i < im.g->n_node; i++) {
        const Onnx__NodeProto *n = im.g->node[i];
        const char *op = n->op_type ? n->op_type : "";
        bool gemm = !strcmp(op, "Gemm");
        if ((!gemm && strcmp(op, "MatMul")) || n->n_input < 2 || !find_init(&im, n->input[1]))
            continue;
        if (nd == m->n_dense) {
            fail(&im, "node %s (%s): more weight products than the %d dense layer%s", QN(n->name),
                 op, m->n_dense, m->n_dense > 1 ? "s" : "");
            break;
        }
        const sg_dense *d = m->dense[nd];
        const Onnx__AttributeProto *a;
        if (gemm && (((a = attr(n, "transA")) && a->i) || ((a = attr(n, "alpha")) && a->f != 1) ||
                     ((a = attr(n, "beta")) && a->f != 1))) {
            fail(&im, "node %s (Gemm): only transA = 0, alpha = beta = 1 are supported",
                 QN(n->name));
            break;
        }
        bool tb = gemm && (a = attr(n, "transB")) && a->i;
        const Onnx__TensorProto *k = find_init(&im, n->input[1]);
        if (!shape_is(&im, n, "the weight", k, 2,
                      tb ? (int64_t[]){d->out, d->in} : (int64_t[]){d->in, d->out}))
            break;
        sg_tensor *kt = tensor_of(&im, k);
        if (kt && tb)
            kt = sg_transpose(ctx, kt, 0, 1);
        cp[ncp++] = (copy){d->kernel, kt};
        const Onnx__TensorProto *b = NULL;
        const Onnx__NodeProto *bn = n;
        if (gemm && n->n_input > 2)
            b = node_init(&im, n, 2, "C", false);
        else if (!gemm && n->n_output >= 1 && (bn = consumer(&im, n->output[0], "Add")))
            for (size_t j = 0; !b && j < bn->n_input; j++)
                b = find_init(&im, bn->input[j]);
        if (b && !d->bias)
            fail(&im, "dense %s has no bias, node %s gives one", d->name, QN(bn->name));
        else if (!b && d->bias)
            fail(&im, "dense %s: no bias initializer after node %s", d->name, QN(n->name));
        else if (b && shape_is(&im, bn, "the bias", b, 1, (int64_t[]){d->out}))
            cp[ncp++] = (copy){d->bias, tensor_of(&im, b)};
        nd++;
    }
    if (!im.bad && nd < m->n_dense)
        fail(&im, "the graph has %d weight product%s (MatMul, Gemm), the model %d dense layer%s",
             nd, nd == 1 ? "" : "s", m->n_dense, m->n_dense > 1 ? "s" : "");
    for (int i = 0; !im.bad && i < ncp; i++)
        if (!cp[i].src)
            fail(&im, "out of memory");
    /* everything checked: copy */
    int rc = -1;
    if (!im.bad) {
        rc = 0;
        for (int k = 0; k < L * D; k++) {
            const sg__cell *c = cc[k].cell;
            if (c->kernel) {
                rc |= sg_copy_values(c->kernel, cc[k].k) |
                      sg_copy_values(c->recurrent_kernel, cc[k].rk);
                if (c->bias)
                    rc |= cc[k].b ? sg_copy_values(c->bias, cc[k].b) : sg_fill(c->bias, 0.0);
            } else {
                rc |= sg__lstm_transfer(ctx, fn, c, false, true, cc[k].k, cc[k].rk, cc[k].b);
            }
        }
        for (int i = 0; i < ncp; i++)
            rc |= sg_copy_values(cp[i].dst, cp[i].src);
    }
    sg_ctx_set_grad_enabled(ctx, was);
    if (im.bad) {
        /* a message from a callee (out of memory) gives way to ours, which names the file */
        if (!had_err)
            sg_ctx_clear_error(ctx);
        sg__io_error(ctx, fn, f->label, "%s", im.msg);
        return -1;
    }
    if (rc && !sg_ctx_error(ctx))
        sg__io_error(ctx, fn, f->label, "copying the values failed");
    return rc ? -1 : 0;
}
