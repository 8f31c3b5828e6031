/* ONNX export (docs/onnx.md) and the layout converters between ONNX, Keras and PyTorch.
 *
 * The model is built as protobuf-c messages (onnx.pb-c.h, generated at build time from
 * Debian's onnx.proto) whose every allocation is recorded in a builder and freed at the end,
 * packed into one buffer and written atomically (sg__io_save_atomic).
 *
 * ONNX's recurrent operators are time-major (layout 0: X (T, B, I), Y (T, D, B, H), Y_h
 * (D, B, H)); onnxruntime does not run layout 1, so the graph transposes: x (B, T, I) ->
 * (T, B, I) once, each layer's Y -> (T, B, D*H) for the next, and the last one's Y ->
 * (B, T, D*H). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../layers/internal.h"
#include "io_internal.h"
#include "onnx.pb-c.h"

/* Initializers hold raw little-endian bytes, copied from memory as they are. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "io/onnx.c writes tensors' bytes as they are in memory: a little-endian host is needed"
#endif

/* ---- the layout converters ------------------------------------------------------------ */

/* ONNX's gate blocks as the other layouts' block indices: ONNX block p is Keras' (PyTorch's)
 * block perm[p]. LSTM: ONNX i, o, f, c; Keras and PyTorch i, f, c(g), o. GRU: ONNX and Keras
 * z, r, h; PyTorch r, z, n. SimpleRNN: one block. */
static const int lstm_perm[4] = {0, 3, 1, 2}, gru_keras_perm[3] = {0, 1, 2},
                 gru_torch_perm[3] = {1, 0, 2}, one_perm[1] = {0};

static int cell_gates(sg_cell_kind c) { return c == SG_CELL_LSTM ? 4 : c == SG_CELL_GRU ? 3 : 1; }

static const int *cell_perm(sg_cell_kind c, bool torch) {
    return c == SG_CELL_LSTM  ? lstm_perm
           : c == SG_CELL_GRU ? (torch ? gru_torch_perm : gru_keras_perm)
                              : one_perm;
}

/* t (present) must have the given shape; else an error "<fn>: <what> has shape .., expected
 * ..". */
static bool want(sg_ctx *ctx, const char *fn, const char *what, const sg_tensor *t, int nd,
                 int64_t d0, int64_t d1) {
    if (!t) {
        sg_error(ctx, "%s: %s is NULL", fn, what);
        return false;
    }
    if (!sg_check(ctx, t, fn))
        return false;
    int64_t w[2] = {d0, d1};
    bool ok = t->ndim == nd && sg_dtype_is_float(t->dtype);
    for (int i = 0; ok && i < nd; i++)
        ok = t->shape[i] == w[i];
    if (!ok) {
        char a[96], b[96];
        if (!sg_dtype_is_float(t->dtype))
            sg_error(ctx, "%s: %s has dtype %s, expected float32 or float64", fn, what,
                     sg_dtype_name(t->dtype));
        else
            sg_error(ctx, "%s: %s has shape %s, expected %s", fn, what,
                     sg_shape_str(t->ndim, t->shape, a, sizeof a),
                     sg_shape_str(nd, w, b, sizeof b));
    }
    return ok;
}

/* Element (r, c) of a matrix, or element r of a vector (c ignored), any strides. */
static double at(const sg_tensor *t, int64_t r, int64_t c) {
    return t->ndim == 2 ? sg_get(t, (int64_t[]){r, c}) : sg_get(t, (int64_t[]){r});
}
static void put(sg_tensor *t, int64_t r, int64_t c, double v) {
    sg_set_flat(t, t->ndim == 2 ? r * t->shape[1] + c : r, v);
}

/* Move G blocks of H rows of n columns between the ONNX-ordered rows of `o` (starting at row
 * o0) and the other layout's `x` (rows x0 ..; transposed when xt: x's columns are the rows),
 * block p of o being block perm[p] of x. to_onnx: x -> o, else o -> x. */
static void blocks(sg_tensor *o, int64_t o0, sg_tensor *x, int64_t x0, bool xt, int G, int64_t H,
                   int64_t n, const int *perm, bool to_onnx) {
    for (int p = 0; p < G; p++)
        for (int64_t j = 0; j < H; j++)
            for (int64_t i = 0; i < n; i++) {
                int64_t orow = o0 + p * H + j, xrow = x0 + perm[p] * H + j;
                if (to_onnx)
                    put(o, orow, i, xt ? at(x, i, xrow) : at(x, xrow, i));
                else if (xt)
                    put(x, i, xrow, at(o, orow, i));
                else
                    put(x, xrow, i, at(o, orow, i));
            }
}

/* a + b, exactly a when b is zero (so that -0.0 survives a round trip through Rb = 0). */
static double add_exact(double a, double b) { return b == 0 ? a : a + b; }

/* H and I of one direction from the recurrent matrix (G*H, H) or (H, G*H) and the input
 * matrix; false with an error when they do not fit the cell. */
static bool sizes(sg_ctx *ctx, const char *fn, sg_cell_kind cell, const char *rname,
                  const sg_tensor *r, bool keras, int64_t *H) {
    if (cell < SG_CELL_LSTM || cell > SG_CELL_RNN) {
        sg_error(ctx, "%s: unknown cell %d", fn, (int)cell);
        return false;
    }
    if (!r || !sg_check(ctx, r, fn)) {
        if (!r)
            sg_error(ctx, "%s: %s is NULL", fn, rname);
        return false;
    }
    int G = cell_gates(cell);
    int64_t h = r->ndim == 2 ? r->shape[keras ? 0 : 1] : 0;
    if (r->ndim != 2 || h < 1 || r->shape[keras ? 1 : 0] != G * h) {
        char a[96];
        sg_error(ctx, "%s: %s has shape %s, expected %s for a %s", fn, rname,
                 sg_shape_str(r->ndim, r->shape, a, sizeof a), keras ? "(H, G*H)" : "(G*H, H)",
                 cell == SG_CELL_LSTM  ? "LSTM (G = 4)"
                 : cell == SG_CELL_GRU ? "GRU (G = 3)"
                                       : "SimpleRNN (G = 1)");
        return false;
    }
    *H = h;
    return true;
}

int sg_onnx_from_keras(sg_ctx *ctx, sg_cell_kind cell, const sg_tensor *kernel,
                       const sg_tensor *recurrent_kernel, const sg_tensor *bias, sg_tensor **W,
                       sg_tensor **R, sg_tensor **B) {
    const char *fn = "sg_onnx_from_keras";
    int64_t H;
    if (!ctx || !W || !R || !B ||
        !sizes(ctx, fn, cell, "recurrent_kernel", recurrent_kernel, true, &H))
        return -1;
    const int G = cell_gates(cell);
    const int64_t I = kernel && kernel->ndim == 2 ? kernel->shape[0] : 0;
    bool two = bias && bias->ndim == 2; /* a GRU with reset_after */
    if (!want(ctx, fn, "kernel", kernel, 2, I, G * H) ||
        (bias && !want(ctx, fn, "bias", bias, cell == SG_CELL_GRU && two ? 2 : 1,
                       cell == SG_CELL_GRU && two ? 2 : G * H, G * H)))
        return -1;
    sg_dtype dt = kernel->dtype;
    *W = sg_zeros(ctx, dt, SG_SHAPE(G * H, I));
    *R = sg_zeros(ctx, dt, SG_SHAPE(G * H, H));
    *B = bias ? sg_zeros(ctx, dt, SG_SHAPE(2 * G * H)) : NULL;
    if (!*W || !*R || (bias && !*B))
        return -1;
    const int *perm = cell_perm(cell, false);
    blocks(*W, 0, (sg_tensor *)kernel, 0, true, G, H, I, perm, true);
    blocks(*R, 0, (sg_tensor *)recurrent_kernel, 0, true, G, H, H, perm, true);
    if (bias && two) { /* rows: input bias -> Wb, recurrent bias -> Rb */
        for (int k = 0; k < 2; k++)
            for (int p = 0; p < G; p++)
                for (int64_t j = 0; j < H; j++)
                    put(*B, k * G * H + p * H + j, 0, at(bias, k, perm[p] * H + j));
    } else if (bias) {
        blocks(*B, 0, (sg_tensor *)bias, 0, false, G, H, 1, perm, true);
    }
    return sg_ctx_error(ctx) ? -1 : 0;
}

/* Check ONNX's W, R, B of one direction: H from R, I from W. */
static bool onnx_sizes(sg_ctx *ctx, const char *fn, sg_cell_kind cell, const sg_tensor *W,
                       const sg_tensor *R, const sg_tensor *B, int64_t *H, int64_t *I) {
    if (!sizes(ctx, fn, cell, "R", R, false, H))
        return false;
    int G = cell_gates(cell);
    *I = W && W->ndim == 2 ? W->shape[1] : 0;
    return want(ctx, fn, "W", W, 2, G * *H, *I) && (!B || want(ctx, fn, "R", R, 2, G * *H, *H)) &&
           (!B || want(ctx, fn, "B", B, 1, 2 * G * *H, 0));
}

int sg_onnx_to_keras(sg_ctx *ctx, sg_cell_kind cell, bool reset_after, const sg_tensor *W,
                     const sg_tensor *R, const sg_tensor *B, sg_tensor **kernel,
                     sg_tensor **recurrent_kernel, sg_tensor **bias) {
    const char *fn = "sg_onnx_to_keras";
    int64_t H, I;
    if (!ctx || !kernel || !recurrent_kernel || !bias ||
        !onnx_sizes(ctx, fn, cell, W, R, B, &H, &I))
        return -1;
    const int G = cell_gates(cell);
    const bool two = cell == SG_CELL_GRU && reset_after;
    sg_dtype dt = W->dtype;
    *kernel = sg_zeros(ctx, dt, SG_SHAPE(I, G * H));
    *recurrent_kernel = sg_zeros(ctx, dt, SG_SHAPE(H, G * H));
    *bias = !B    ? NULL
            : two ? sg_zeros(ctx, dt, SG_SHAPE(2, G * H))
                  : sg_zeros(ctx, dt, SG_SHAPE(G * H));
    if (!*kernel || !*recurrent_kernel || (B && !*bias))
        return -1;
    const int *perm = cell_perm(cell, false);
    blocks((sg_tensor *)W, 0, *kernel, 0, true, G, H, I, perm, false);
    blocks((sg_tensor *)R, 0, *recurrent_kernel, 0, true, G, H, H, perm, false);
    for (int p = 0; B && p < G; p++)
        for (int64_t j = 0; j < H; j++) {
            double wb = at(B, p * H + j, 0), rb = at(B, G * H + p * H + j, 0);
            int64_t col = perm[p] * H + j;
            if (two) {
                put(*bias, 0, col, wb);
                put(*bias, 1, col, rb);
            } else {
                put(*bias, col, 0, add_exact(wb, rb));
            }
        }
    return sg_ctx_error(ctx) ? -1 : 0;
}

int sg_onnx_from_torch(sg_ctx *ctx, sg_cell_kind cell, const sg_tensor *weight_ih,
                       const sg_tensor *weight_hh, const sg_tensor *bias_ih,
                       const sg_tensor *bias_hh, sg_tensor **W, sg_tensor **R, sg_tensor **B) {
    const char *fn = "sg_onnx_from_torch";
    int64_t H;
    if (!ctx || !W || !R || !B || !sizes(ctx, fn, cell, "weight_hh", weight_hh, false, &H))
        return -1;
    const int G = cell_gates(cell);
    const int64_t I = weight_ih && weight_ih->ndim == 2 ? weight_ih->shape[1] : 0;
    if (!want(ctx, fn, "weight_ih", weight_ih, 2, G * H, I) ||
        (bias_ih && !want(ctx, fn, "bias_ih", bias_ih, 1, G * H, 0)) ||
        (bias_hh && !want(ctx, fn, "bias_hh", bias_hh, 1, G * H, 0)))
        return -1;
    sg_dtype dt = weight_ih->dtype;
    *W = sg_zeros(ctx, dt, SG_SHAPE(G * H, I));
    *R = sg_zeros(ctx, dt, SG_SHAPE(G * H, H));
    *B = bias_ih || bias_hh ? sg_zeros(ctx, dt, SG_SHAPE(2 * G * H)) : NULL;
    if (!*W || !*R || ((bias_ih || bias_hh) && !*B))
        return -1;
    const int *perm = cell_perm(cell, true);
    blocks(*W, 0, (sg_tensor *)weight_ih, 0, false, G, H, I, perm, true);
    blocks(*R, 0, (sg_tensor *)weight_hh, 0, false, G, H, H, perm, true);
    if (bias_ih)
        blocks(*B, 0, (sg_tensor *)bias_ih, 0, false, G, H, 1, perm, true);
    if (bias_hh)
        blocks(*B, G * H, (sg_tensor *)bias_hh, 0, false, G, H, 1, perm, true);
    return sg_ctx_error(ctx) ? -1 : 0;
}

int sg_onnx_to_torch(sg_ctx *ctx, sg_cell_kind cell, const sg_tensor *W, const sg_tensor *R,
                     const sg_tensor *B, sg_tensor **weight_ih, sg_tensor **weight_hh,
                     sg_tensor **bias_ih, sg_tensor **bias_hh) {
    const char *fn = "sg_onnx_to_torch";
    int64_t H, I;
    if (!ctx || !weight_ih || !weight_hh || !bias_ih || !bias_hh ||
        !onnx_sizes(ctx, fn, cell, W, R, B, &H, &I))
        return -1;
    const int G = cell_gates(cell);
    sg_dtype dt = W->dtype;
    *weight_ih = sg_zeros(ctx, dt, SG_SHAPE(G * H, I));
    *weight_hh = sg_zeros(ctx, dt, SG_SHAPE(G * H, H));
    *bias_ih = B ? sg_zeros(ctx, dt, SG_SHAPE(G * H)) : NULL;
    *bias_hh = B ? sg_zeros(ctx, dt, SG_SHAPE(G * H)) : NULL;
    if (!*weight_ih || !*weight_hh || (B && (!*bias_ih || !*bias_hh)))
        return -1;
    const int *perm = cell_perm(cell, true);
    blocks((sg_tensor *)W, 0, *weight_ih, 0, false, G, H, I, perm, false);
    blocks((sg_tensor *)R, 0, *weight_hh, 0, false, G, H, H, perm, false);
    if (B) {
        blocks((sg_tensor *)B, 0, *bias_ih, 0, false, G, H, 1, perm, false);
        blocks((sg_tensor *)B, G * H, *bias_hh, 0, false, G, H, 1, perm, false);
    }
    return sg_ctx_error(ctx) ? -1 : 0;
}

/* ---- the builder: protobuf-c messages and everything they point to ------------------ */

typedef struct {
    sg_ctx *ctx;
    const char *path;
    void **mem; /* every allocation, freed by b_free */
    size_t nmem, capmem;
    Onnx__GraphProto *g;
    size_t cap_node, cap_init, cap_in, cap_out;
    int32_t elem; /* the model's float element type */
    sg_dtype dt;
    int uid; /* for unique value names */
    bool failed;
} builder;

static void *b_keep(builder *b, void *p) {
    if (!p) {
        b->failed = true;
        return NULL;
    }
    if (b->nmem == b->capmem) {
        size_t cap = b->capmem ? 2 * b->capmem : 64;
        void **m = sg_realloc(b->mem, cap * sizeof *m);
        if (!m) {
            sg_free(p);
            b->failed = true;
            return NULL;
        }
        b->mem = m;
        b->capmem = cap;
    }
    return b->mem[b->nmem++] = p;
}

static void *b_alloc(builder *b, size_t n) { return b_keep(b, sg_calloc(1, n ? n : 1)); }

static char *b_str(builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *b_str(builder *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? b_alloc(b, (size_t)n + 1) : NULL;
    if (s) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}

static void b_free(builder *b) {
    for (size_t i = 0; i < b->nmem; i++)
        sg_free(b->mem[i]);
    sg_free(b->mem);
}

/* Append p to the array *arr of *n items (capacity *cap). */
static void b_push(builder *b, void ***arr, size_t *n, size_t *cap, void *p) {
    if (!p || b->failed) {
        b->failed = true;
        return;
    }
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        void **a = b_alloc(b, c * sizeof *a);
        if (!a)
            return;
        if (*n)
            memcpy(a, *arr, *n * sizeof *a);
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = p;
}

/* A fresh value name "<base>_<k>". */
static char *b_name(builder *b, const char *base) { return b_str(b, "%s_%d", base, b->uid++); }

/* A node op(inputs) -> outputs; "" for an optional input left out (trailing ones dropped). */
static Onnx__NodeProto *b_node(builder *b, const char *op, int nin, const char *const *in, int nout,
                               const char *const *out) {
    Onnx__NodeProto *n = b_alloc(b, sizeof *n);
    char **iv = b_alloc(b, (size_t)nin * sizeof *iv), **ov = b_alloc(b, (size_t)nout * sizeof *ov);
    if (!n || !iv || !ov)
        return NULL;
    onnx__node_proto__init(n);
    while (nin > 0 && !*in[nin - 1])
        nin--;
    for (int i = 0; i < nin; i++)
        iv[i] = (char *)in[i];
    for (int i = 0; i < nout; i++)
        ov[i] = (char *)out[i];
    n->n_input = (size_t)nin;
    n->input = iv;
    n->n_output = (size_t)nout;
    n->output = ov;
    n->op_type = (char *)op;
    n->name = b_str(b, "%s_%d", op, b->uid++);
    b_push(b, (void ***)&b->g->node, &b->g->n_node, &b->cap_node, n);
    return n;
}

/* Name the last node "<layer>.<op>" (a layer's nodes are what import messages name). */
static void b_name_last(builder *b, const char *layer) {
    if (!b->failed && b->g->n_node) {
        Onnx__NodeProto *n = b->g->node[b->g->n_node - 1];
        n->name = b_str(b, "%s.%s", layer, n->op_type);
    }
}

/* One-input, one-output node into a fresh value (or `out` when given). */
static const char *b_op1(builder *b, const char *op, const char *in, const char *out) {
    const char *o = out ? out : b_name(b, op);
    return b_node(b, op, 1, &in, 1, &o) ? o : NULL;
}
static const char *b_op2(builder *b, const char *op, const char *in0, const char *in1,
                         const char *out) {
    const char *o = out ? out : b_name(b, op), *in[2] = {in0, in1};
    return b_node(b, op, 2, in, 1, &o) ? o : NULL;
}

static Onnx__AttributeProto *b_attr(builder *b, Onnx__NodeProto *n, const char *name,
                                    Onnx__AttributeProto__AttributeType type) {
    Onnx__AttributeProto *a = n ? b_alloc(b, sizeof *a) : NULL;
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = true;
    a->type = type;
    size_t cap = n->n_attribute;
    b_push(b, (void ***)&n->attribute, &n->n_attribute, &cap, a);
    return a;
}
static void attr_int(builder *b, Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = b_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = true;
        a->i = v;
    }
}
static void attr_str(builder *b, Onnx__NodeProto *n, const char *name, const char *v) {
    Onnx__AttributeProto *a = b_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (a) {
        a->has_s = true;
        a->s = (ProtobufCBinaryData){strlen(v), (uint8_t *)v};
    }
}
static void attr_ints(builder *b, Onnx__NodeProto *n, const char *name, int k, const int64_t *v) {
    Onnx__AttributeProto *a = b_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *c = b_alloc(b, (size_t)k * sizeof *c);
    if (a && c) {
        memcpy(c, v, (size_t)k * sizeof *c);
        a->n_ints = (size_t)k;
        a->ints = c;
    }
}
static void attr_strs(builder *b, Onnx__NodeProto *n, const char *name, int k,
                      const char *const *v) {
    Onnx__AttributeProto *a = b_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    ProtobufCBinaryData *s = b_alloc(b, (size_t)k * sizeof *s);
    if (a && s) {
        for (int i = 0; i < k; i++)
            s[i] = (ProtobufCBinaryData){strlen(v[i]), (uint8_t *)v[i]};
        a->n_strings = (size_t)k;
        a->strings = s;
    }
}

/* An initializer of ndim dims holding nbytes of little-endian data. */
static const char *b_init_raw(builder *b, const char *name, int32_t type, int ndim,
                              const int64_t *dims, const void *data, size_t nbytes) {
    Onnx__TensorProto *t = b_alloc(b, sizeof *t);
    int64_t *d = b_alloc(b, (size_t)ndim * sizeof *d);
    uint8_t *raw = b_alloc(b, nbytes);
    if (!t || !d || !raw)
        return NULL;
    onnx__tensor_proto__init(t);
    memcpy(d, dims, (size_t)ndim * sizeof *d);
    memcpy(raw, data, nbytes);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = true;
    t->data_type = type;
    t->name = (char *)name;
    t->has_raw_data = true;
    t->raw_data = (ProtobufCBinaryData){nbytes, raw};
    b_push(b, (void ***)&b->g->initializer, &b->g->n_initializer, &b->cap_init, t);
    return name;
}

/* int64 constants (Reshape's shape, Slice's starts ...): a fresh initializer. */
static const char *b_ints(builder *b, int k, const int64_t *v) {
    return b_init_raw(b, b_name(b, "const"), ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1,
                      (int64_t[]){k}, v, (size_t)k * sizeof *v);
}

/* A tensor's values (any strides) as an initializer of the model's dtype, under `name`. */
static const char *b_init(builder *b, const char *name, const sg_tensor *t) {
    sg_tensor *c = sg_cast(b->ctx, t, b->dt); /* contiguous, the model's dtype */
    if (!c) {
        b->failed = true;
        return NULL;
    }
    return b_init_raw(b, name, b->elem, t->ndim, t->shape, sg_data(c),
                      (size_t)sg_numel(c) * sg_dtype_size(b->dt));
}

/* A graph input or output: elem type and dims (negative: the symbol B, T for -1, -2). */
static void b_value(builder *b, bool input, const char *name, int32_t elem, int ndim,
                    const int64_t *dims) {
    Onnx__ValueInfoProto *v = b_alloc(b, sizeof *v);
    Onnx__TypeProto *tp = b_alloc(b, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = b_alloc(b, sizeof *tt);
    Onnx__TensorShapeProto *sh = b_alloc(b, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dv = b_alloc(b, (size_t)ndim * sizeof *dv);
    if (!v || !tp || !tt || !sh || !dv)
        return;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = b_alloc(b, sizeof *d);
        if (!d)
            return;
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = dims[i] == -1 ? "B" : "T";
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        dv[i] = d;
    }
    sh->n_dim = (size_t)ndim;
    sh->dim = dv;
    tt->has_elem_type = true;
    tt->elem_type = elem;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->name = (char *)name;
    v->type = tp;
    if (input)
        b_push(b, (void ***)&b->g->input, &b->g->n_input, &b->cap_in, v);
    else
        b_push(b, (void ***)&b->g->output, &b->g->n_output, &b->cap_out, v);
}

/* ---- the model ------------------------------------------------------------------------ */

/* The stack in one form, whichever layer type holds it. */
typedef struct {
    sg_rnn_options o; /* sg_lstm's as sg_rnn_options */
    int L, D;
    char name[SG_LAYER_NAME_MAX + 1];
    sg__cell lstm_cell; /* an sg_lstm's one cell */
    const sg_rnn *rnn;
} stack;

static const sg__cell *stack_cell(const stack *s, int l, int d) {
    return s->rnn ? sg__rnn_cell(s->rnn, l, d) : &s->lstm_cell;
}

/* ONNX's name of an activation for the recurrent operators, or NULL. */
static const char *act_name(sg_activation a) {
    switch (a) {
    case SG_ACT_TANH: return "Tanh";
    case SG_ACT_SIGMOID: return "Sigmoid";
    case SG_ACT_HARD_SIGMOID: return "HardSigmoid"; /* ONNX's defaults: 0.2 x + 0.5, Keras 2's */
    case SG_ACT_RELU: return "Relu";
    default: return NULL;
    }
}

/* The model's problem as a message, or NULL. */
static const char *check_model(const sg_onnx_model *m, stack *s, char *buf, size_t n) {
    if (!!m->rnn == !!m->lstm)
        return "give exactly one recurrent stack (rnn or lstm)";
    if (m->n_dense < 0 || (m->n_dense > 0 && !m->dense))
        return snprintf(buf, n, "n_dense = %d without a dense array", m->n_dense), buf;
    if (m->head != SG_ONNX_EVERY_STEP && m->head != SG_ONNX_FINAL_STATE)
        return snprintf(buf, n, "unknown head %d", (int)m->head), buf;
    memset(s, 0, sizeof *s);
    if (m->rnn) {
        s->o = *sg_rnn_opts(m->rnn);
        s->rnn = m->rnn;
        /* the cells' prefix is the layer's name, or "<name>.l0" with several cells */
        snprintf(s->name, sizeof s->name, "%s", sg__rnn_cell(m->rnn, 0, 0)->name);
        char *dot = strrchr(s->name, '.');
        if (dot && (s->o.num_layers > 1 || s->o.bidirectional))
            *dot = 0;
    } else {
        sg__lstm_cell(m->lstm, &s->o, &s->lstm_cell);
        s->o.num_layers = 1;
        s->o.bidirectional = false;
        snprintf(s->name, sizeof s->name, "%s", m->lstm->name);
    }
    s->L = s->o.num_layers;
    s->D = s->o.bidirectional ? 2 : 1;
    const sg_rnn_options *o = &s->o;
    const char *nm = s->name;
    if (o->layer_norm)
        return snprintf(buf, n, "%s: layer_norm has no ONNX operator", nm), buf;
    if (o->initial_state != SG_STATE_ZEROS)
        return snprintf(buf, n,
                        "%s: a learned initial state is not exported (give h0/c0 as inputs)", nm),
               buf;
    if (o->zoneout_h > 0 || o->zoneout_c > 0)
        return snprintf(buf, n, "%s: zoneout (its evaluation form mixes old and new states)", nm),
               buf;
    if (s->D == 2 && o->merge != SG_MERGE_CONCAT)
        return snprintf(buf, n, "%s: merge mode %d (only concat is exported)", nm, (int)o->merge),
               buf;
    if (!act_name(o->activation) || (o->cell != SG_CELL_RNN && !act_name(o->recurrent_activation)))
        return snprintf(buf, n, "%s: activation %s / %s has no ONNX recurrent form", nm,
                        sg_activation_name(o->activation),
                        sg_activation_name(o->recurrent_activation)),
               buf;
    if (m->embedding && m->embedding->dim != o->input_size)
        return snprintf(buf, n, "embedding %s has dim %lld, the stack takes %lld",
                        m->embedding->name, (long long)m->embedding->dim, (long long)o->input_size),
               buf;
    sg_dtype dt = o->dtype;
    if (m->embedding && m->embedding->embeddings->dtype != dt)
        return snprintf(buf, n, "embedding %s is %s, the stack %s", m->embedding->name,
                        sg_dtype_name(m->embedding->embeddings->dtype), sg_dtype_name(dt)),
               buf;
    int64_t width = s->D * o->units;
    for (int i = 0; i < m->n_dense; i++) {
        const sg_dense *d = m->dense[i];
        if (!d)
            return snprintf(buf, n, "dense[%d] is NULL", i), buf;
        if (d->in != width)
            return snprintf(buf, n, "dense %s takes %lld inputs, it receives %lld", d->name,
                            (long long)d->in, (long long)width),
                   buf;
        if (d->kernel->dtype != dt)
            return snprintf(buf, n, "dense %s is %s, the stack %s", d->name,
                            sg_dtype_name(d->kernel->dtype), sg_dtype_name(dt)),
                   buf;
        if (d->activation != SG_ACT_LINEAR && !act_name(d->activation))
            return snprintf(buf, n, "dense %s: activation %s", d->name,
                            sg_activation_name(d->activation)),
                   buf;
        width = d->out;
    }
    return NULL;
}

/* Layer l's recurrent node: inputs and initializers, returns Y's name; *yh, *yc its final
 * states (D, B, H). */
static const char *rnn_layer(builder *b, const stack *s, int l, const char *X, const char *seq,
                             const char *h0, const char *c0, const char **yh, const char **yc) {
    sg_ctx *ctx = b->ctx;
    const sg_rnn_options *o = &s->o;
    const int D = s->D;
    const int64_t H = o->units;
    const bool lstm = o->cell == SG_CELL_LSTM;
    /* W, R, B of both directions, (D, G*H, I), (D, G*H, H), (D, 2*G*H) */
    sg_tensor *Wd[2], *Rd[2], *Bd[2];
    for (int d = 0; d < D; d++) {
        const sg__cell *c = stack_cell(s, l, d);
        sg_tensor *k = c->kernel, *rk = c->recurrent_kernel, *bias = c->bias;
        if (!k) { /* the gates LSTM: its Keras layout first */
            k = sg_zeros(ctx, o->dtype, SG_SHAPE(c->in, 4 * H));
            rk = sg_zeros(ctx, o->dtype, SG_SHAPE(H, 4 * H));
            bias = o->use_bias ? sg_zeros(ctx, o->dtype, SG_SHAPE(4 * H)) : NULL;
            if (!k || !rk || (o->use_bias && !bias) ||
                sg__lstm_transfer(ctx, "sg_onnx_export", c, false, false, k, rk, bias))
                return NULL;
        }
        if (sg_onnx_from_keras(ctx, o->cell, k, rk, bias, &Wd[d], &Rd[d], &Bd[d]))
            return NULL;
    }
    sg_tensor *W = sg_stack(ctx, D, Wd, 0), *R = sg_stack(ctx, D, Rd, 0);
    sg_tensor *B = o->use_bias ? sg_stack(ctx, D, Bd, 0) : NULL;
    if (!W || !R || (o->use_bias && !B))
        return NULL;
    const char *pre = b_str(b, "%s.l%d", s->name, l);
    const char *in[7] = {X,
                         b_init(b, b_str(b, "%s.W", pre), W),
                         b_init(b, b_str(b, "%s.R", pre), R),
                         B ? b_init(b, b_str(b, "%s.B", pre), B) : "",
                         seq ? seq : "",
                         h0 ? h0 : "",
                         c0 ? c0 : ""};
    const char *out[3] = {b_name(b, "Y"), b_name(b, "Y_h"), lstm ? b_name(b, "Y_c") : NULL};
    const char *op = lstm ? "LSTM" : o->cell == SG_CELL_GRU ? "GRU" : "RNN";
    Onnx__NodeProto *n = b_node(b, op, lstm ? 7 : 6, in, lstm ? 3 : 2, out);
    if (n)
        n->name = (char *)pre; /* the layer: what an import's messages name */
    attr_int(b, n, "hidden_size", H);
    attr_str(b, n, "direction", D == 2 ? "bidirectional" : "forward");
    const char *acts[6];
    int na = 0;
    for (int d = 0; d < D; d++) {
        if (o->cell != SG_CELL_RNN)
            acts[na++] = act_name(o->recurrent_activation);
        acts[na++] = act_name(o->activation);
        if (lstm)
            acts[na++] = act_name(o->activation);
    }
    attr_strs(b, n, "activations", na, acts);
    if (o->cell == SG_CELL_GRU)
        attr_int(b, n, "linear_before_reset", o->reset_after ? 1 : 0);
    *yh = out[1];
    *yc = out[2];
    return out[0];
}

/* Y (T, D, B, H) -> (T, B, D*H) (perm 0 2 1 3) or (B, T, D*H) (perm 2 0 1 3). */
static const char *merge_dirs(builder *b, const char *Y, bool batch_first, const char *out) {
    Onnx__NodeProto *n = NULL;
    const char *t = b_name(b, "Transpose");
    n = b_node(b, "Transpose", 1, &Y, 1, &t);
    attr_ints(b, n, "perm", 4, batch_first ? (int64_t[]){2, 0, 1, 3} : (int64_t[]){0, 2, 1, 3});
    return b_op2(b, "Reshape", t, b_ints(b, 3, (int64_t[]){0, 0, -1}), out);
}

/* Rows [a, a + k) of a (L*D, B, H) input. */
static const char *slice0(builder *b, const char *in, int64_t a, int64_t k) {
    const char *o = b_name(b, "Slice");
    const char *ins[4] = {in, b_ints(b, 1, (int64_t[]){a}), b_ints(b, 1, (int64_t[]){a + k}),
                          b_ints(b, 1, (int64_t[]){0})};
    return b_node(b, "Slice", 4, ins, 1, &o) ? o : NULL;
}

static int build(builder *b, const sg_onnx_model *m, const stack *s) {
    const sg_rnn_options *o = &s->o;
    const bool lstm = o->cell == SG_CELL_LSTM;
    const int L = s->L, D = s->D;
    const int64_t H = o->units, I = o->input_size;
    const int64_t Bd = -1, Td = -2; /* the symbols B, T */
    const char *in_name = m->input_name ? m->input_name : m->embedding ? "ids" : "x";
    const char *out_name = m->output_name ? m->output_name : "y";
    const int32_t I64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;

    /* inputs */
    const char *x = in_name;
    if (m->embedding) {
        b_value(b, true, in_name, I64, 2, (int64_t[]){Bd, Td});
        const char *tab =
            b_init(b, b_str(b, "%s.embeddings", m->embedding->name), m->embedding->embeddings);
        Onnx__NodeProto *g = NULL;
        const char *gi[2] = {tab, in_name}, *go = b_name(b, "Gather");
        g = b_node(b, "Gather", 2, gi, 1, &go);
        attr_int(b, g, "axis", 0);
        b_name_last(b, m->embedding->name);
        x = go;
    } else {
        b_value(b, true, in_name, b->elem, 3, (int64_t[]){Bd, Td, I});
    }
    const char *seq = NULL, *h0 = NULL, *c0 = NULL;
    if (m->lengths) {
        seq = "lengths";
        b_value(b, true, seq, ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 1, (int64_t[]){Bd});
    }
    const int64_t state[3] = {L * D, Bd, H};
    if (m->h0) {
        h0 = "h0";
        b_value(b, true, h0, b->elem, 3, state);
    }
    if (m->c0 && lstm) {
        c0 = "c0";
        b_value(b, true, c0, b->elem, 3, state);
    }

    /* the stack */
    Onnx__NodeProto *tn = NULL;
    const char *xt = b_name(b, "Transpose");
    tn = b_node(b, "Transpose", 1, &x, 1, &xt);
    attr_ints(b, tn, "perm", 3, (int64_t[]){1, 0, 2});
    const char *X = xt, *Y = NULL;
    const char *yh[100], *yc[100];
    for (int l = 0; l < L; l++) {
        const char *hl = h0 && L > 1 ? slice0(b, h0, l * D, D) : h0;
        const char *cl = c0 && L > 1 ? slice0(b, c0, l * D, D) : c0;
        Y = rnn_layer(b, s, l, X, seq, hl, cl, &yh[l], &yc[l]);
        if (!Y)
            return -1;
        if (l < L - 1)
            X = merge_dirs(b, Y, false, NULL);
    }
    /* what the stack hands on */
    const bool dense = m->n_dense > 0;
    const char *cur;
    if (m->head == SG_ONNX_EVERY_STEP) {
        cur = merge_dirs(b, Y, true, dense ? NULL : out_name);
    } else { /* Y_h (D, B, H) -> (B, D, H) -> (B, D*H) */
        const char *t = b_name(b, "Transpose"), *last = yh[L - 1];
        tn = b_node(b, "Transpose", 1, &last, 1, &t);
        attr_ints(b, tn, "perm", 3, (int64_t[]){1, 0, 2});
        cur = b_op2(b, "Reshape", t, b_ints(b, 2, (int64_t[]){0, -1}), dense ? NULL : out_name);
    }
    int64_t width = D * H;
    for (int i = 0; i < m->n_dense; i++) {
        const sg_dense *d = m->dense[i];
        bool last = i == m->n_dense - 1, act = d->activation != SG_ACT_LINEAR;
        const char *k = b_init(b, b_str(b, "%s.kernel", d->name), d->kernel);
        cur = b_op2(b, "MatMul", cur, k, last && !act && !d->bias ? out_name : NULL);
        b_name_last(b, d->name);
        if (d->bias) {
            cur = b_op2(b, "Add", cur, b_init(b, b_str(b, "%s.bias", d->name), d->bias),
                        last && !act ? out_name : NULL);
            b_name_last(b, d->name);
        }
        if (act) {
            cur = b_op1(b, act_name(d->activation), cur, last ? out_name : NULL);
            b_name_last(b, d->name);
        }
        width = d->out;
    }
    if (m->head == SG_ONNX_EVERY_STEP)
        b_value(b, false, out_name, b->elem, 3, (int64_t[]){Bd, Td, width});
    else
        b_value(b, false, out_name, b->elem, 2, (int64_t[]){Bd, width});
    /* the final states, (L*D, B, H) */
    const char *const *fin[2] = {yh, yc};
    for (int k = 0; k < 2; k++) {
        if (!(k ? m->c_n && lstm : m->h_n))
            continue;
        const char *name = k ? "c_n" : "h_n";
        if (L == 1)
            b_op1(b, "Identity", fin[k][0], name);
        else {
            Onnx__NodeProto *c = b_node(b, "Concat", L, fin[k], 1, &name);
            attr_int(b, c, "axis", 0);
        }
        b_value(b, false, name, b->elem, 3, state);
    }
    return b->failed || sg_ctx_error(b->ctx) ? -1 : 0;
}

int sg_onnx_export(sg_ctx *ctx, const char *path, const sg_onnx_model *model) {
    const char *fn = "sg_onnx_export";
    if (!ctx)
        return -1;
    if (!sg__io_path_ok(ctx, fn, path))
        return -1;
    if (!model) {
        sg__io_error(ctx, fn, path, "model is NULL");
        return -1;
    }
    stack s;
    char msg[256];
    const char *bad = check_model(model, &s, msg, sizeof msg);
    if (bad) {
        sg__io_error(ctx, fn, path, "%s", bad);
        return -1;
    }
    if (s.L > 99) {
        sg__io_error(ctx, fn, path, "%d layers", s.L);
        return -1;
    }
    const bool had_err = sg_ctx_error(ctx) != NULL;
    bool was = sg_ctx_set_grad_enabled(ctx, false);
    builder b = {.ctx = ctx, .path = path, .dt = s.o.dtype};
    b.elem = s.o.dtype == SG_F64 ? ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE
                                 : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    Onnx__ModelProto mp;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto opset, *opsets[1] = {&opset};
    onnx__model_proto__init(&mp);
    onnx__graph_proto__init(&g);
    onnx__operator_set_id_proto__init(&opset);
    opset.domain = "";
    opset.has_version = true;
    opset.version = 14;
    mp.has_ir_version = true;
    mp.ir_version = 7; /* what opset 14 needs; every runtime since 2020 reads it */
    mp.producer_name = "seqgrad";
    mp.producer_version = "0.1.0";
    mp.n_opset_import = 1;
    mp.opset_import = opsets;
    g.name = "seqgrad";
    mp.graph = &g;
    b.g = &g;
    int rc = build(&b, model, &s);
    sg_ctx_set_grad_enabled(ctx, was);
    if (rc || b.failed) {
        if (had_err || !sg_ctx_error(ctx))
            sg__io_error(ctx, fn, path, "out of memory");
        else
            sg__io_rewrap(ctx, true, fn, path, "building the graph");
        b_free(&b);
        return -1;
    }
    size_t n = onnx__model_proto__get_packed_size(&mp);
    uint8_t *buf = sg_malloc(n ? n : 1);
    if (!buf) {
        b_free(&b);
        sg__io_error(ctx, fn, path, "out of memory (%zu bytes)", n);
        return -1;
    }
    onnx__model_proto__pack(&mp, buf);
    b_free(&b);
    rc = sg__io_save_atomic(ctx, fn, path, buf, n);
    sg_free(buf);
    return rc;
}
