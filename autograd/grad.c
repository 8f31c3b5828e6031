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
            memset(sg_data(g), 0, nbytes);
            return g;
        }
    }
    return NULL;
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
static sg_tensor *grad_alias(sg_ctx *ctx, sg_tensor *t) {
    sg_tensor *G = sg__grad(ctx, t->src[0]);
    sg_tensor *v = G ? sg__view_of(ctx, G) : NULL;
    if (!v)
        return NULL;
    int axis = (int)t->iparam[0];
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

sg_tensor *sg__grad_new(sg_ctx *ctx, sg_tensor *t) {
    if (t->flags & SG_FLAG_PARAM) /* the store's, or this workspace's private slab */
        return ctx->tape.private_grads ? sg__param_grad(ctx, t) : t->grad;
    if (!t->grad) {
        if ((sg__op(t->op)->flags & SG_OPF_GRAD_VIEW) &&
            (t->src[0]->flags & SG_FLAG_REQUIRES_GRAD) &&
            !(t->flags & (SG_FLAG_GRAD_DENSE | SG_FLAG_RETAIN_GRAD)) &&
            sg_numel(t) >= SG_GRAD_ALIAS_MIN)
            return t->grad = grad_alias(ctx, t);
        t->grad = pool_take(ctx, t);
        if (!t->grad)
            t->grad = sg__new(ctx, "sg_backward", t->dtype, t->ndim, t->shape, true);
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

void sg__pass_grad(sg_ctx *ctx, sg_tensor *out, sg_tensor *t) {
    sg_tensor *g = out->grad;
    if (!t->grad && !(t->flags & SG_FLAG_PARAM) && (t->flags & SG_FLAG_REQUIRES_GRAD) &&
        !(g->flags & (SG_FLAG_GRAD_ALIAS | SG_FLAG_PERSISTENT)) &&
        !(out->flags & SG_FLAG_RETAIN_GRAD) && g->dtype == t->dtype && sg__same_shape(g, t)) {
        t->grad = g; /* contiguous, t's shape: a buffer of the kind sg__grad_new makes */
        out->grad = NULL;
        return;
    }
    sg__acc_grad(ctx, t, g);
}

void sg_zero_grad(sg_tensor *t) {
    if (sg_check(sg__ctx_of(t), t, "sg_zero_grad") && t->grad)
        sg_fill(t->grad, 0.0);
}
