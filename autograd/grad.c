/* Gradient buffers: where a tensor's gradient lives (a parameter's persistent one, a pool
 * of buffers that backward has consumed, or a view into the input's gradient for a slice),
 * accumulation into them, and zeroing. */
#include <string.h>

#include "ops.h"

/* Backward consumes an intermediate's gradient as soon as its node has run, so those
 * buffers go to a pool that later gradients of the same size and dtype reuse. An LSTM
 * step's gradients then occupy memory for a few steps' worth, not for the whole sequence. */
static sg_tensor *pool_take(sg_ctx *ctx, const sg_tensor *t) {
    size_t nbytes = (size_t)sg_numel(t) * sg_dtype_size(t->dtype);
    sg__tape_fresh(ctx);
    for (int i = ctx->tape.npool - 1; i >= 0; i--) { /* newest first */
        sg_tensor *g = ctx->tape.pool[i];
        if (g->dtype == t->dtype && g->storage->nbytes == nbytes) {
            ctx->tape.npool--; /* keep the others' order */
            memmove(&ctx->tape.pool[i], &ctx->tape.pool[i + 1],
                    sizeof(sg_tensor *) * (size_t)(ctx->tape.npool - i));
            g->ndim = t->ndim;
            for (int d = 0; d < t->ndim; d++)
                g->shape[d] = t->shape[d];
            sg__contiguous_strides(t->ndim, t->shape, g->stride);
            g->flags &= ~(uint32_t)SG_FLAG_GRAD_PADDED; /* contiguous now */
            memset(sg_data(g), 0, nbytes);
            return g;
        }
    }
    return NULL;
}

/* Lazily zeroed gradients (ops with SG_OPF_GRAD_LAZY: sg_seqmm's S). Each of S's blocks
 * along axis 0 is one time step's dz_t, which that step's backward writes whole (the LSTM's
 * gate op: sg_lstm_gates). Zeroing all of S's gradient when it is made, and then adding
 * each dz_t into those zeros, writes the buffer twice and reads it once more than storing
 * dz_t would. So the buffer is made without zeroing, its aux holding one byte per block
 * (1: not reached yet), and a block is zeroed only when a view first reaches it for a
 * backward that adds (grad_alias); a backward that writes the whole view asks with
 * sg__grad_set and stores instead. Every other reader settles it first (sg__grad, and the
 * tape before S's own backward). Its rows may be padded too (below): such a buffer goes on
 * (sg__pass_grad) only to an op whose backward reads it through its strides
 * (SG_OPF_GRAD_STRIDED), and every backward that writes an input's gradient as one flat
 * array checks that it is contiguous, as it must for a slice's. bench/README.md has the
 * measurements. */
static void lazy_zero(sg_tensor *g, int64_t lo, int64_t hi) {
    unsigned char *unreached = g->aux;
    size_t bytes = (size_t)g->stride[0] * sg_dtype_size(g->dtype);
    for (int64_t b = lo; b < hi; b++)
        if (unreached[b]) {
            memset((char *)sg_data(g) + b * bytes, 0, bytes);
            unreached[b] = 0;
        }
}

void sg__grad_settle(sg_tensor *g) {
    if (!g || !(g->flags & SG_FLAG_GRAD_LAZY))
        return;
    lazy_zero(g, 0, g->shape[0]);
    g->aux = NULL;
    g->flags &= ~(uint32_t)SG_FLAG_GRAD_LAZY;
}

/* The gradient of t, whose op asks for a lazily zeroed one (it has none yet): unzeroed, its
 * blocks marked not reached, with rows 64 bytes longer when they are a multiple of 4096
 * bytes apart (the weight gradient's products read a panel of them at a time:
 * sg__new_padded) unless a consumer wants it contiguous or it is kept. NULL when there is
 * no room for the marks (the caller then makes an ordinary zeroed one). */
static sg_tensor *grad_make_lazy(sg_ctx *ctx, const sg_tensor *t) {
    const int nd = t->ndim;
    unsigned char *unreached = sg_arena_alloc(ctx, (size_t)t->shape[0]);
    if (!unreached) {
        sg_ctx_clear_error(ctx);
        return NULL;
    }
    bool may_pad = !(t->flags & (SG_FLAG_GRAD_DENSE | SG_FLAG_RETAIN_GRAD));
    sg_tensor *g = may_pad ? sg__new_padded(ctx, "sg_backward", t->dtype, nd, t->shape, 4096)
                           : sg__new(ctx, "sg_backward", t->dtype, nd, t->shape, false);
    if (!g)
        return NULL;
    memset(unreached, 1, (size_t)t->shape[0]);
    g->aux = unreached;
    g->flags |= SG_FLAG_GRAD_LAZY | (sg_is_contiguous(g) ? 0 : SG_FLAG_GRAD_PADDED);
    return g;
}

/* A slice's gradient as a view into its input's gradient: the same slice of it. Then the
 * backwards that produce the slice's gradient write straight into the input's, and the
 * slice's own backward (an add into that region) has nothing left to do: an LSTM step's
 * four gate slices and its time step of x @ kernel cost no buffer and no add of their own.
 * Not for a gradient the user keeps
 * (SG_FLAG_RETAIN_GRAD: it must hold this slice's part alone) nor when a consumer's
 * backward wants it contiguous (SG_FLAG_GRAD_DENSE); nor for a small slice, where the
 * view's header and the strided walks its consumers then take cost more than the buffer
 * and the add they save (their buffers: bench/README.md has the measurements). */
#define SG_GRAD_ALIAS_MIN 256
static sg_tensor *grad_alias(sg_ctx *ctx, sg_tensor *t, bool *set) {
    sg_tensor *s = t->src[0], *G; /* s's gradient: a lazily zeroed one as it is, unsettled */
    if (s->grad && !(s->flags & SG_FLAG_PARAM))
        G = s->grad;
    else if (!(s->flags & SG_FLAG_PARAM) && s->ndim >= 2 &&
             (sg__op(s->op)->flags & SG_OPF_GRAD_LAZY) && (s->grad = grad_make_lazy(ctx, s)))
        G = s->grad;
    else
        G = sg__grad_new(ctx, s);
    sg_tensor *v = G ? sg__view_of(ctx, G) : NULL;
    if (!v)
        return NULL;
    int axis = (int)t->iparam[0];
    if (G->flags & SG_FLAG_GRAD_LAZY) { /* the blocks the view covers: stored or zeroed */
        unsigned char *unreached = G->aux;
        int64_t lo = axis == 0 ? t->iparam[1] : 0,
                hi = axis != 0 ? G->shape[0] : lo + (t->ndim < G->ndim ? 1 : t->shape[0]);
        bool fresh = set && axis == 0;
        for (int64_t b = lo; fresh && b < hi; b++)
            fresh = unreached[b];
        if (fresh) {
            memset(unreached + lo, 0, (size_t)(hi - lo));
            *set = true;
        } else
            lazy_zero(G, lo, hi);
    }
    v->offset += t->iparam[1] * G->stride[axis];
    v->ndim = t->ndim;
    for (int i = 0, k = 0; i < G->ndim; i++) {
        if (t->ndim < G->ndim && i == axis) /* sg_select dropped the axis */
            continue;
        v->shape[k] = t->shape[k];
        v->stride[k++] = G->stride[i];
    }
    v->flags |= SG_FLAG_GRAD_ALIAS; /* not a pool buffer; sg__bw_slice has nothing to add */
    return v;
}

/* Can t's gradient be a view into its input's (grad_alias)? */
static bool alias_ok(const sg_tensor *t) {
    return (sg__op(t->op)->flags & SG_OPF_GRAD_VIEW) &&
           (t->src[0]->flags & SG_FLAG_REQUIRES_GRAD) &&
           !(t->flags & (SG_FLAG_GRAD_DENSE | SG_FLAG_RETAIN_GRAD)) &&
           sg_numel(t) >= SG_GRAD_ALIAS_MIN;
}

sg_tensor *sg__grad_new(sg_ctx *ctx, sg_tensor *t) {
    if (t->flags & SG_FLAG_PARAM) /* the store's, or this workspace's private slab */
        return ctx->tape.private_grads ? sg__param_grad(ctx, t) : t->grad;
    if (!t->grad) {
        if (alias_ok(t))
            return t->grad = grad_alias(ctx, t, NULL);
        t->grad = pool_take(ctx, t);
        if (!t->grad) /* (an op asking for a lazily zeroed gradient gets it zeroed here) */
            t->grad = sg__new(ctx, "sg_backward", t->dtype, t->ndim, t->shape, true);
        if (!t->grad)
            return NULL;
    }
    if (t->grad->flags & SG_FLAG_GRAD_LAZY) /* read or added into whole from here on */
        sg__grad_settle(t->grad);
    return t->grad;
}

sg_tensor *sg__grad_set(sg_ctx *ctx, sg_tensor *t, bool *set) {
    *set = false;
    if (!t->grad && !(t->flags & SG_FLAG_PARAM) && alias_ok(t))
        return t->grad = grad_alias(ctx, t, set);
    return sg__grad_new(ctx, t);
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

void sg__pass_grad(sg_ctx *ctx, sg_tensor *out, sg_tensor *t) {
    sg_tensor *g = out->grad;
    /* a buffer with padded rows (grad_make) only to an op that reads it through its strides,
     * which nobody else reads (a leaf's or a kept gradient is contiguous) */
    if (!t->grad && !(t->flags & SG_FLAG_PARAM) && (t->flags & SG_FLAG_REQUIRES_GRAD) &&
        !(g->flags & (SG_FLAG_GRAD_ALIAS | SG_FLAG_PERSISTENT)) &&
        !(out->flags & SG_FLAG_RETAIN_GRAD) && g->dtype == t->dtype && sg__same_shape(g, t) &&
        (!(g->flags & SG_FLAG_GRAD_PADDED) ||
         (t->op != SG_OP_NONE && (sg__op(t->op)->flags & SG_OPF_GRAD_STRIDED) &&
          !(t->flags & (SG_FLAG_RETAIN_GRAD | SG_FLAG_GRAD_DENSE))))) {
        t->grad = g; /* t's shape: a buffer of the kind sg__grad_new makes */
        out->grad = NULL;
        return;
    }
    sg__acc_grad(ctx, t, g);
}

void sg_zero_grad(sg_tensor *t) {
    if (sg_check(sg__ctx_of(t), t, "sg_zero_grad") && t->grad)
        sg_fill(t->grad, 0.0);
}
