/* The tape: backward walk, the one backward dispatch, gradient buffers, anomaly mode,
 * and the Graphviz export of a graph.
 *
 * Nodes are the op outputs themselves (ggml style): each records its op, inputs and a
 * link to the node recorded before it. Execution order is a topological order, so walking
 * the links backwards from the loss visits every node after all of its consumers. */
#include <math.h>
#include <string.h>

#include "ops.h"

static const char *const op_names[SG_OP_COUNT] = {
    [SG_OP_NONE] = "leaf",
    [SG_OP_RESHAPE] = "reshape",
    [SG_OP_PERMUTE] = "permute",
    [SG_OP_SLICE] = "slice",
    [SG_OP_EXPAND] = "expand",
    [SG_OP_CONTIGUOUS] = "contiguous",
    [SG_OP_CONCAT] = "concat",
    [SG_OP_ADD] = "add",
    [SG_OP_SUB] = "sub",
    [SG_OP_MUL] = "mul",
    [SG_OP_DIV] = "div",
    [SG_OP_NEG] = "neg",
    [SG_OP_SCALE] = "scale",
    [SG_OP_ADD_SCALAR] = "add_scalar",
    [SG_OP_SIGMOID] = "sigmoid",
    [SG_OP_TANH] = "tanh",
    [SG_OP_HARD_SIGMOID] = "hard_sigmoid",
    [SG_OP_RELU] = "relu",
    [SG_OP_EXP] = "exp",
    [SG_OP_LOG] = "log",
    [SG_OP_SQUARE] = "square",
    [SG_OP_MATMUL] = "matmul",
    [SG_OP_ADDMM] = "addmm",
    [SG_OP_SOFTMAX] = "softmax",
    [SG_OP_LOG_SOFTMAX] = "log_softmax",
    [SG_OP_SUM] = "sum",
    [SG_OP_CROSS_ENTROPY] = "cross_entropy",
    [SG_OP_BCE_LOGITS] = "bce_with_logits",
    [SG_OP_MSE] = "mse_loss",
};

/* What each op's backward reads (bit k: input k, SG_READS_OUT: its own output); see
 * sg__record. Views, copies, sums and the additive ops read nothing; a 1 too many here only
 * makes an in-place op refuse, a 1 too few would let one corrupt a gradient. */
#define R0 0x1u
#define R1 0x2u
#define RO SG_READS_OUT
#define GD SG_GRAD_DENSE_IN /* wants its inputs' gradients contiguous (not a read) */
const unsigned char sg__op_reads[SG_OP_COUNT] = {
    [SG_OP_RESHAPE] = GD,
    [SG_OP_MUL] = R0 | R1,
    [SG_OP_DIV] = R0 | R1,
    [SG_OP_SQUARE] = R0,
    [SG_OP_HARD_SIGMOID] = R0,
    [SG_OP_RELU] = R0,
    [SG_OP_LOG] = R0,
    [SG_OP_SIGMOID] = RO,
    [SG_OP_TANH] = RO,
    [SG_OP_EXP] = RO,
    [SG_OP_MATMUL] = R0 | R1,
    [SG_OP_ADDMM] = R0 | R1, /* a and b; not the addend c */
    [SG_OP_SUM] = GD,
    [SG_OP_SOFTMAX] = R0 | RO | GD,
    [SG_OP_LOG_SOFTMAX] = R0 | RO | GD,
    [SG_OP_CROSS_ENTROPY] = R0 | RO | GD,
    [SG_OP_BCE_LOGITS] = R0 | R1 | RO | GD,
    [SG_OP_MSE] = R0 | R1 | RO | GD,
};
#undef R0
#undef R1
#undef RO
#undef GD

const char *sg_op_name(sg_op op) {
    return (op >= 0 && op < SG_OP_COUNT && op_names[op]) ? op_names[op] : "unknown-op";
}

/* ---- gradient buffers ---------------------------------------------------------------- */

/* Backward consumes an intermediate's gradient as soon as its node has run, so those
 * buffers go to a pool that later gradients of the same size and dtype reuse. An LSTM
 * step's gradients then occupy memory for a few steps' worth, not for the whole sequence. */
static sg_tensor *pool_take(sg_ctx *ctx, const sg_tensor *t) {
    size_t nbytes = (size_t)sg_numel(t) * sg_dtype_size(t->dtype);
    for (sg_tensor **pp = &ctx->grad_pool; *pp; pp = &(*pp)->tape_prev) {
        sg_tensor *g = *pp;
        if (g->dtype == t->dtype && g->storage->nbytes == nbytes) {
            *pp = g->tape_prev;
            g->tape_prev = NULL;
            g->ndim = t->ndim;
            int64_t s = 1;
            for (int i = t->ndim - 1; i >= 0; i--) {
                g->shape[i] = t->shape[i];
                g->stride[i] = s;
                s *= t->shape[i] > 0 ? t->shape[i] : 1;
            }
            memset(sg_data(g), 0, nbytes);
            return g;
        }
    }
    return NULL;
}

static void pool_give(sg_ctx *ctx, sg_tensor *g) {
    if (!g || (g->flags & (SG_FLAG_PERSISTENT | SG_FLAG_GRAD_ALIAS)))
        return;
    g->tape_prev = ctx->grad_pool;
    ctx->grad_pool = g;
}

/* A slice's gradient as a view into its input's gradient: the same slice of it. Then the
 * backwards that produce the slice's gradient write straight into the input's, and the
 * slice's own backward (an add into that region) has nothing left to do: an LSTM step's
 * four gate slices and its time step of x @ kernel cost no buffer and no add of their own
 * (small LSTM step 1.54 -> 1.50 ms). Not for a gradient the user keeps
 * (SG_FLAG_RETAIN_GRAD: it must hold this slice's part alone) nor when a consumer's
 * backward wants it contiguous (SG_FLAG_GRAD_DENSE); nor for a small slice, where the
 * view's header and the strided walks its consumers then take cost more than the buffer
 * and the add they save (tiny LSTM step with views for every slice: 2.96 us, against
 * 2.76 us with buffers). */
#define SG_GRAD_ALIAS_MIN 256
static sg_tensor *grad_alias(sg_ctx *ctx, sg_tensor *t) {
    sg_tensor *G = sg__grad(ctx, t->src[0]);
    sg_tensor *v = G ? sg__view_of(ctx, G) : NULL;
    if (!v)
        return NULL;
    int axis = (int)t->iparam[0];
    v->offset += t->iparam[1] * G->stride[axis];
    v->ndim = t->ndim;
    for (int i = 0, k = 0; i < G->ndim; i++) {
        if (t->iparam[2] && i == axis) /* sg_select dropped the axis */
            continue;
        v->shape[k] = t->shape[k];
        v->stride[k++] = G->stride[i];
    }
    v->flags |= SG_FLAG_GRAD_ALIAS; /* not a pool buffer; sg__bw_slice has nothing to add */
    return v;
}

sg_tensor *sg__grad(sg_ctx *ctx, sg_tensor *t) {
    if (!t->grad) {
        if (t->op == SG_OP_SLICE && !(t->flags & (SG_FLAG_GRAD_DENSE | SG_FLAG_RETAIN_GRAD)) &&
            sg_numel(t) >= SG_GRAD_ALIAS_MIN)
            return t->grad = grad_alias(ctx, t);
        t->grad = pool_take(ctx, t);
        if (!t->grad)
            t->grad = sg__new(ctx, t->dtype, t->ndim, t->shape, true);
        if (!t->grad)
            return NULL;
    }
    return t->grad;
}

void sg__acc_grad(sg_ctx *ctx, sg_tensor *t, const sg_tensor *g) {
    if (!t || !(t->flags & SG_FLAG_REQUIRES_GRAD) || !g)
        return;
    sg_tensor *G = sg__grad(ctx, t);
    if (!G)
        return;
    int nd = g->ndim, lead = nd - t->ndim;
    int64_t dst_st[SG_MAX_DIMS];
    bool same = lead == 0;
    for (int d = 0; d < nd; d++) {
        int64_t ts = d < lead ? 1 : t->shape[d - lead];
        dst_st[d] = (d < lead || ts != g->shape[d]) ? 0 : G->stride[d - lead];
        if (d >= lead && ts != g->shape[d])
            same = false;
    }
    if (same && sg_is_contiguous(g) && sg_is_contiguous(G)) {
        int64_t n = sg_numel(g);
        if (g->dtype == SG_F32) {
            float *d = sg_data(G);
            const float *s = sg_data(g);
            for (int64_t i = 0; i < n; i++)
                d[i] += s[i];
        } else {
            double *d = sg_data(G);
            const double *s = sg_data(g);
            for (int64_t i = 0; i < n; i++)
                d[i] += s[i];
        }
        return;
    }
    /* dst strides are 0 on broadcast dimensions: that is what makes it a reduction. */
    sg__strided(true, g->dtype, sg_data(G), dst_st, sg_data(g), g->stride, nd, g->shape);
}

/* ---- in-place safety ------------------------------------------------------------------ */

/* Where a view's elements lie in its buffer: the span [lo, hi] of offsets and, when
 * the last dimension is unit-stride and every other stride a multiple of S (> 0), the
 * column range [r, r + L) modulo S that every element falls in (offset + k*S + j, j < L).
 * S = 0: no such form. In-place results that a backward reads keep theirs in iparam. */
enum { RG_LO, RG_HI, RG_S, RG_R, RG_L, RG_N };
static void region(const sg_tensor *t, int64_t *rg) {
    int nd = t->ndim;
    int64_t lo = t->offset, hi = t->offset, S = 0;
    bool form = nd >= 2 && t->stride[nd - 1] == 1;
    for (int d = 0; d < nd; d++) {
        int64_t e = t->stride[d] * (t->shape[d] - 1);
        if (e < 0)
            lo += e;
        else
            hi += e;
        if (d < nd - 1 && t->shape[d] > 1) {
            if (t->stride[d] <= 0)
                form = false;
            else if (S == 0 || t->stride[d] < S)
                S = t->stride[d];
        }
    }
    for (int d = 0; form && S && d < nd - 1; d++)
        if (t->shape[d] > 1 && t->stride[d] % S)
            form = false;
    int64_t L = nd ? t->shape[nd - 1] : 1;
    if (!form || !S || t->offset % S + L > S)
        S = 0;
    rg[RG_LO] = lo;
    rg[RG_HI] = hi;
    rg[RG_S] = S;
    rg[RG_R] = S ? t->offset % S : 0;
    rg[RG_L] = L;
}

/* Can two non-empty views of one buffer, given by their regions, share an element? Exact
 * for views that differ only by offset and last-dimension length (slices and splits of one
 * tensor), conservative (true) otherwise. */
static bool regions_overlap(const int64_t *a, const int64_t *b) {
    if (a[RG_HI] < b[RG_LO] || b[RG_HI] < a[RG_LO])
        return false;
    if (a[RG_S] && a[RG_S] == b[RG_S])
        return !(a[RG_R] + a[RG_L] <= b[RG_R] || b[RG_R] + b[RG_L] <= a[RG_R]);
    return true; /* conservative */
}

void sg__save_inplace(sg_ctx *ctx, sg_tensor *t) {
    sg_storage *r = t->storage->root;
    t->flags |= SG_FLAG_SAVED;
    if (r->ip_gen != ctx->gen + 1) {
        r->ip_gen = ctx->gen + 1;
        r->ip_saved = NULL;
        r->ip_maxlen = 0;
        r->ip_sorted = true;
    }
    region(t, t->iparam); /* in-place results have no other use for iparam or aux */
    const sg_tensor *head = r->ip_saved;
    if (head && head->iparam[RG_LO] > t->iparam[RG_LO])
        r->ip_sorted = false;
    if (t->iparam[RG_HI] - t->iparam[RG_LO] > r->ip_maxlen)
        r->ip_maxlen = t->iparam[RG_HI] - t->iparam[RG_LO];
    t->aux = r->ip_saved;
    r->ip_saved = t;
}

static bool is_view_op(sg_op op) {
    return op == SG_OP_RESHAPE || op == SG_OP_PERMUTE || op == SG_OP_SLICE || op == SG_OP_EXPAND;
}

bool sg__inplace_check(sg_ctx *ctx, const char *fn, sg_tensor *x, int n, sg_tensor *const *others,
                       bool same_ok) {
    /* A leaf that requires grad, or a view of one: its gradient would be of a value that no
     * longer exists (PyTorch refuses the same). */
    const sg_tensor *base = x;
    while (is_view_op(base->op) && base->nsrc == 1)
        base = base->src[0];
    if (base->op == SG_OP_NONE && (base->flags & SG_FLAG_REQUIRES_GRAD) && ctx->grad_enabled) {
        sg_error(ctx,
                 "%s: cannot work in place on %s that requires grad (a parameter?): use the "
                 "out-of-place op",
                 fn, base == x ? "a leaf tensor" : "a view of a leaf tensor");
        return false;
    }
    for (int d = 0; d < x->ndim; d++)
        if (x->stride[d] == 0 && x->shape[d] > 1) {
            sg_error(ctx,
                     "%s: cannot work in place on an expanded view (dimension %d has stride "
                     "0, so several elements share one location)",
                     fn, d);
            return false;
        }
    /* x's region, once, for the other inputs and for the saved in-place results. */
    bool empty = sg_numel(x) == 0;
    int64_t rx[RG_N];
    if (!empty)
        region(x, rx);
    for (int i = 0; i < n; i++) {
        const sg_tensor *o = others[i];
        int64_t ro[RG_N];
        if (empty || o->storage->root != x->storage->root || sg_numel(o) == 0)
            continue;
        region(o, ro);
        if (!regions_overlap(rx, ro))
            continue;
        bool same = o->offset == x->offset && o->ndim == x->ndim &&
                    !memcmp(o->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim) &&
                    !memcmp(o->stride, x->stride, sizeof(int64_t) * (size_t)x->ndim);
        if (!(same_ok && same)) {
            sg_error(ctx,
                     "%s: input %d overlaps the tensor written in place; its values would "
                     "change while being read",
                     fn, i + 1);
            return false;
        }
    }
    const sg_storage *r = x->storage->root;
    if (r->saved_gen == ctx->gen + 1) {
        sg_error(ctx,
                 "%s: the values of this tensor (or of another view of its buffer) are "
                 "needed by the backward of an op recorded earlier; working in place would "
                 "corrupt that gradient: use the out-of-place op",
                 fn);
        return false;
    }
    if (r->ip_gen == ctx->gen + 1 && !empty) {
        for (const sg_tensor *s = r->ip_saved; s; s = s->aux) {
            /* Sorted (the usual case: a sequence is worked front to back), nothing from
             * here on can reach x once even the longest entry starting here ends before
             * it: the check stays O(1) per op over a whole sequence. */
            if (r->ip_sorted && s->iparam[RG_LO] + r->ip_maxlen < rx[RG_LO])
                break;
            if (sg_numel(s) > 0 && regions_overlap(rx, s->iparam)) {
                sg_error(ctx,
                         "%s: this tensor overlaps the result of an earlier in-place %s "
                         "whose backward needs its values: use the out-of-place op",
                         fn, sg_op_name(s->op));
                return false;
            }
        }
    }
    return true;
}

sg_tensor *sg__inplace_result(sg_ctx *ctx, sg_tensor *x) {
    sg_tensor *y = sg__view_of(ctx, x);
    if (y)
        y->flags |= SG_FLAG_INPLACE;
    return y;
}

/* ---- anomaly mode -------------------------------------------------------------------- */

void sg_ctx_set_anomaly(sg_ctx *ctx, bool on) {
    if (ctx)
        ctx->anomaly = on;
}

/* "nan", "inf" or NULL for a tensor with only finite values. */
static const char *nonfinite(const sg_tensor *t) {
    int64_t n = sg_numel(t);
    bool c = sg_is_contiguous(t);
    const char *what = NULL;
    for (int64_t i = 0; i < n; i++) {
        double v = sg__ld(t, c ? i : sg__offset_of(t, i));
        if (isnan(v))
            return "NaN";
        if (isinf(v))
            what = "Inf";
    }
    return what;
}

static void anomaly_report(sg_ctx *ctx, const sg_tensor *node, const char *what,
                           const char *phase) {
    char ins[256] = "", o[96];
    size_t k = 0;
    sg_tensor *const *in;
    int n = sg__node_inputs(node, &in);
    for (int i = 0; i < n && k < sizeof ins; i++) {
        char s[96];
        k += (size_t)snprintf(ins + k, sizeof ins - k, "%s%s", i ? ", " : "",
                              sg_shape_str(in[i]->ndim, in[i]->shape, s, sizeof s));
    }
    sg_error(ctx, "anomaly: %s produced %s in %s; inputs %s -> output %s", sg_op_name(node->op),
             what, phase, ins, sg_shape_str(node->ndim, node->shape, o, sizeof o));
}

void sg_anomaly_check_forward(sg_ctx *ctx, sg_tensor *out) {
    if (!ctx || !ctx->anomaly || !out || ctx->has_err)
        return;
    const char *w = nonfinite(out);
    if (w)
        anomaly_report(ctx, out, w, "forward");
}

sg_tensor *sg__finish(sg_ctx *ctx, sg_tensor *out, sg_op op, int n, sg_tensor *const *src) {
    if (!out)
        return NULL;
    bool rec = sg__record(ctx, out, op, n, src);
    if (ctx->anomaly) {
        if (!rec) { /* still name the op in the report */
            out->op = op;
            out->nsrc = n < SG_MAX_SRC ? n : SG_MAX_SRC;
            for (int i = 0; i < out->nsrc; i++)
                out->src[i] = src[i];
        }
        sg_anomaly_check_forward(ctx, out);
        if (!rec) {
            out->op = SG_OP_NONE;
            out->nsrc = 0;
        }
    }
    return out;
}

/* ---- backward ------------------------------------------------------------------------ */

/* The one place that maps an op to its backward. */
static bool dispatch(sg_ctx *ctx, sg_tensor *t) {
    switch (t->op) {
    case SG_OP_RESHAPE: sg__bw_reshape(ctx, t); break;
    case SG_OP_PERMUTE: sg__bw_permute(ctx, t); break;
    case SG_OP_SLICE: sg__bw_slice(ctx, t); break;
    case SG_OP_EXPAND: sg__bw_expand(ctx, t); break;
    case SG_OP_CONTIGUOUS: sg__bw_contiguous(ctx, t); break;
    case SG_OP_CONCAT: sg__bw_concat(ctx, t); break;
    case SG_OP_ADD: sg__bw_add(ctx, t); break;
    case SG_OP_SUB: sg__bw_sub(ctx, t); break;
    case SG_OP_MUL: sg__bw_mul(ctx, t); break;
    case SG_OP_DIV: sg__bw_div(ctx, t); break;
    case SG_OP_NEG: sg__bw_neg(ctx, t); break;
    case SG_OP_SCALE: sg__bw_scale(ctx, t); break;
    case SG_OP_ADD_SCALAR: sg__bw_add_scalar(ctx, t); break;
    case SG_OP_SQUARE: sg__bw_square(ctx, t); break;
    case SG_OP_SIGMOID: sg__bw_sigmoid(ctx, t); break;
    case SG_OP_TANH: sg__bw_tanh(ctx, t); break;
    case SG_OP_HARD_SIGMOID: sg__bw_hard_sigmoid(ctx, t); break;
    case SG_OP_RELU: sg__bw_relu(ctx, t); break;
    case SG_OP_EXP: sg__bw_exp(ctx, t); break;
    case SG_OP_LOG: sg__bw_log(ctx, t); break;
    case SG_OP_MATMUL: sg__bw_matmul(ctx, t); break;
    case SG_OP_ADDMM: sg__bw_addmm(ctx, t); break;
    case SG_OP_SUM: sg__bw_sum(ctx, t); break;
    case SG_OP_SOFTMAX: sg__bw_softmax(ctx, t); break;
    case SG_OP_LOG_SOFTMAX: sg__bw_log_softmax(ctx, t); break;
    case SG_OP_CROSS_ENTROPY: sg__bw_cross_entropy(ctx, t); break;
    case SG_OP_BCE_LOGITS: sg__bw_bce_logits(ctx, t); break;
    case SG_OP_MSE: sg__bw_mse(ctx, t); break;
    default:
        sg_error(ctx, "sg_backward: op '%s' (%d) has no backward", sg_op_name(t->op), (int)t->op);
        return false;
    }
    return true;
}

static bool same_shape(const sg_tensor *a, const sg_tensor *b) {
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

int sg_backward(sg_ctx *ctx, sg_tensor *out, sg_tensor *grad) {
    if (!ctx || !out)
        return -1;
    if (!sg_check(ctx, out, "sg_backward") || (grad && !sg_check(ctx, grad, "sg_backward")))
        return -1;
    char a[96], b[96];
    if (!(out->flags & SG_FLAG_REQUIRES_GRAD)) {
        sg_error(ctx, "sg_backward: the tensor does not require grad (no input required grad, "
                      "or it was computed with grad mode off)");
        return -1;
    }
    if (!grad && sg_numel(out) != 1) {
        sg_error(ctx,
                 "sg_backward: output of shape %s is not a scalar; pass an upstream "
                 "gradient",
                 sg_shape_str(out->ndim, out->shape, a, sizeof a));
        return -1;
    }
    if (grad && (!same_shape(grad, out) || grad->dtype != out->dtype)) {
        sg_error(ctx, "sg_backward: upstream gradient %s %s does not match output %s %s",
                 sg_shape_str(grad->ndim, grad->shape, a, sizeof a), sg_dtype_name(grad->dtype),
                 sg_shape_str(out->ndim, out->shape, b, sizeof b), sg_dtype_name(out->dtype));
        return -1;
    }
    if (out->op != SG_OP_NONE && !(out->flags & SG_FLAG_ON_TAPE)) {
        sg_error(ctx, "sg_backward: the tensor is not on the tape");
        return -1;
    }
    ctx->ntcache = 0; /* parameters may have changed since the last backward */
    /* Seed dL/d(out). */
    sg_tensor *G = sg__grad(ctx, out);
    if (!G)
        return -1;
    if (grad)
        sg__acc_grad(ctx, out, grad);
    else if (out->dtype == SG_F32)
        *(float *)sg_data(G) += 1.0f;
    else
        *(double *)sg_data(G) += 1.0;

    for (sg_tensor *t = out; t; t = t->tape_prev) {
        if (t->op == SG_OP_NONE || !t->grad)
            continue;
        if (t->magic != SG_TENSOR_MAGIC) {
            sg_error(ctx, "sg_backward: the tape holds a freed tensor");
            return -1;
        }
        if (!dispatch(ctx, t))
            return -1;
        if (ctx->anomaly && !ctx->has_err) {
            sg_tensor *const *in;
            int n = sg__node_inputs(t, &in);
            for (int i = 0; i < n; i++) {
                const char *w = in[i]->grad ? nonfinite(in[i]->grad) : NULL;
                if (w) {
                    anomaly_report(ctx, t, w, "backward");
                    break;
                }
            }
        }
        if (ctx->has_err)
            return -1;
        /* An intermediate's gradient is consumed: recycle it, so that a second backward
         * through the same graph starts from zero and memory stays at a frontier. */
        if (!(t->flags & SG_FLAG_RETAIN_GRAD)) {
            pool_give(ctx, t->grad);
            t->grad = NULL;
        }
    }
    return 0;
}

void sg_zero_grad(sg_tensor *t) {
    if (t && t->magic == SG_TENSOR_MAGIC && t->grad && t->grad->magic == SG_TENSOR_MAGIC)
        sg_fill(t->grad, 0.0);
}

int64_t sg_tape_size(const sg_ctx *ctx) {
    int64_t n = 0;
    for (const sg_tensor *t = ctx ? ctx->tape_tail : NULL; t; t = t->tape_prev)
        n++;
    return n;
}
