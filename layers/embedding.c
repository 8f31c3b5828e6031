/* Embedding: a (vocab, dim) table looked up by integer ids, composed from sg_index_select
 * (no kernel of its own). PyTorch's padding_idx is a sg_where that takes the padding
 * positions from a copy of the row that does not require grad, so that row's gradient
 * stays exactly zero while its value is still what a lookup returns. */
#include <string.h>

#include "internal.h"

sg_embedding_options sg_embedding_defaults(void) {
    return (sg_embedding_options){.mask_zero = false,
                                  .padding_idx = SG_EMBEDDING_NO_PADDING,
                                  .initializer = sg_init_default(SG_INIT_RANDOM_UNIFORM)};
}

sg_embedding *sg_embedding_new(sg_ctx *ctx, sg_store *store, sg_dtype dt, int64_t vocab,
                               int64_t dim, const sg_embedding_options *opt, const char *name,
                               sg_rng *rng) {
    if (!ctx)
        return NULL;
    char nm[SG_LAYER_NAME_MAX + 1];
    if (sg__layer_name(ctx, store, "sg_embedding_new", name, "embedding", nm))
        return NULL;
    const sg_embedding_options o = opt ? *opt : sg_embedding_defaults();
    if (sg__layer_sizes(ctx, "sg_embedding_new", nm, "vocab", vocab, "dim", dim, "table"))
        return NULL;
    if (!sg_dtype_is_float(dt))
        return sg_error(ctx, "sg_embedding_new (%s): dtype %s; the table is float32 or float64", nm,
                        sg_dtype_name(dt));
    int64_t pad = o.padding_idx;
    if (pad != SG_EMBEDDING_NO_PADDING && (pad < -vocab || pad >= vocab))
        return sg_error(ctx, "sg_embedding_new (%s): padding_idx %lld outside [-%lld, %lld)", nm,
                        (long long)pad, (long long)vocab, (long long)vocab);
    int n0 = sg_store_size(store);
    sg_embedding *e = sg_calloc(1, sizeof *e);
    if (!e)
        return sg_error(ctx, "sg_embedding_new (%s): out of memory", nm);
    e->vocab = vocab;
    e->dim = dim;
    e->mask_zero = o.mask_zero;
    e->padding_idx = pad == SG_EMBEDDING_NO_PADDING ? -1 : pad < 0 ? pad + vocab : pad;
    snprintf(e->name, sizeof e->name, "%s", nm);
    char pname[96];
    snprintf(pname, sizeof pname, "%s.embeddings", nm);
    e->embeddings = sg_store_param(ctx, store, pname, dt, SG_SHAPE(vocab, dim));
    if (!e->embeddings ||
        sg_init_tensor(ctx, e->embeddings, o.initializer, rng ? rng : sg_ctx_rng(ctx))) {
        sg_embedding_free(e);
        sg_store_truncate(store, n0);
        return NULL;
    }
    for (int64_t j = 0; e->padding_idx >= 0 && j < dim; j++) /* as PyTorch */
        sg_set_flat(e->embeddings, e->padding_idx * dim + j, 0.0);
    return e;
}

void sg_embedding_free(sg_embedding *emb) { sg_free(emb); /* the table is the store's */ }

/* Is ids a live int64/int32 tensor? Else false with an error naming fn and the layer. */
static bool ids_ok(sg_ctx *ctx, const char *fn, const sg_embedding *emb, const sg_tensor *ids) {
    if (!sg_check(ctx, ids, fn))
        return false;
    if (ids->dtype == SG_I64 || ids->dtype == SG_I32)
        return true;
    sg_error(ctx, "%s (%s): ids must be int64 or int32, got %s", fn, emb->name,
             sg_dtype_name(ids->dtype));
    return false;
}

/* Element i of a contiguous int64/int32 tensor. */
static inline int64_t id_at(const sg_tensor *c, int64_t i) {
    return c->dtype == SG_I64 ? ((const int64_t *)sg_data(c))[i] : ((const int32_t *)sg_data(c))[i];
}

sg_tensor *sg_embedding_forward(sg_ctx *ctx, sg_embedding *emb, sg_tensor *ids) {
    const char *fn = "sg_embedding_forward";
    if (!ctx || !ids)
        return NULL;
    if (!emb)
        return sg_error(ctx, "%s: layer is NULL", fn);
    if (!ids_ok(ctx, fn, emb, ids))
        return NULL;
    char a[96];
    if (ids->ndim >= SG_MAX_DIMS)
        return sg_error(ctx,
                        "%s (%s): ids of shape %s: the output would have more than %d "
                        "dimensions",
                        fn, emb->name, sg_shape_str(ids->ndim, ids->shape, a, sizeof a),
                        SG_MAX_DIMS);
    const bool had_err = sg_ctx_error(ctx) != NULL;
    int64_t N = sg_numel(ids), shape[SG_MAX_DIMS];
    sg_tensor *flat = sg_reshape(ctx, sg_contiguous(ctx, ids), SG_SHAPE(N));
    /* Padding positions (when the layer has a padding row): 0 there, 1 elsewhere, (N, 1). */
    sg_tensor *keep = emb->padding_idx >= 0 ? sg_tensor_new(ctx, SG_I32, SG_SHAPE(N, 1)) : NULL;
    if (!flat || (emb->padding_idx >= 0 && !keep))
        return NULL;
    for (int64_t i = 0; i < N; i++) {
        int64_t v = id_at(flat, i);
        if (v < 0 || v >= emb->vocab)
            return sg_error(ctx,
                            "%s (%s): id %lld at position %lld is outside the vocabulary of "
                            "%lld",
                            fn, emb->name, (long long)v, (long long)i, (long long)emb->vocab);
        if (keep)
            ((int32_t *)sg_data(keep))[i] = v != emb->padding_idx;
    }
    sg_tensor *rows = sg_index_select(ctx, emb->embeddings, 0, flat); /* (N, dim) */
    if (keep) {
        /* The padding row's value, read through a view that does not require grad. */
        bool was = sg_ctx_set_grad_enabled(ctx, false);
        sg_tensor *pad_row = sg_select(ctx, emb->embeddings, 0, emb->padding_idx);
        sg_ctx_set_grad_enabled(ctx, was);
        rows = sg_where(ctx, keep, rows, pad_row);
    }
    memcpy(shape, ids->shape, (size_t)ids->ndim * sizeof *shape);
    shape[ids->ndim] = emb->dim;
    sg_tensor *y = sg_reshape(ctx, rows, ids->ndim + 1, shape);
    /* an error recorded by its own ops fails the call (see sg_lstm_forward) */
    return !had_err && sg_ctx_error(ctx) ? NULL : y;
}

int sg_embedding_lengths(sg_ctx *ctx, const sg_embedding *emb, sg_tensor *ids,
                         sg_tensor **lengths) {
    const char *fn = "sg_embedding_lengths";
    if (lengths)
        *lengths = NULL;
    if (!ctx || !ids)
        return -1;
    if (!emb || !lengths) {
        sg_error(ctx, "%s: %s is NULL", fn, emb ? "lengths" : "layer");
        return -1;
    }
    if (!ids_ok(ctx, fn, emb, ids))
        return -1;
    char a[96];
    if (!emb->mask_zero) {
        sg_error(ctx, "%s (%s): the layer was made without mask_zero", fn, emb->name);
        return -1;
    }
    if (ids->ndim != 2) {
        sg_error(ctx, "%s (%s): ids have shape %s, expected (B, T)", fn, emb->name,
                 sg_shape_str(ids->ndim, ids->shape, a, sizeof a));
        return -1;
    }
    int64_t B = ids->shape[0], T = ids->shape[1];
    sg_tensor *c = sg_contiguous(ctx, ids);
    sg_tensor *len = sg_tensor_new(ctx, SG_I64, SG_SHAPE(B));
    if (!c || !len)
        return -1;
    for (int64_t b = 0; b < B; b++) {
        int64_t n = T;
        for (int64_t t = 0; t < T; t++) {
            int64_t v = id_at(c, b * T + t);
            if (v == 0 && n == T)
                n = t;
            else if (v != 0 && n < T) {
                sg_error(ctx,
                         "%s: sequence %lld has padding (0) at step %lld followed by id %lld at "
                         "step %lld; padding must be at the end",
                         fn, (long long)b, (long long)n, (long long)v, (long long)t);
                return -1;
            }
        }
        ((int64_t *)sg_data(len))[b] = n;
    }
    *lengths = len;
    return 0;
}

int sg_embedding_set(sg_ctx *ctx, sg_embedding *emb, const sg_tensor *weight) {
    const char *fn = "sg_embedding_set";
    if (!ctx || !weight)
        return -1;
    if (!emb) {
        sg_error(ctx, "%s: layer is NULL", fn);
        return -1;
    }
    if (!sg_check(ctx, weight, fn))
        return -1;
    char a[96], b[96];
    const sg_tensor *E = emb->embeddings;
    if (!sg_dtype_is_float(weight->dtype) || weight->ndim != 2 || weight->shape[0] != E->shape[0] ||
        weight->shape[1] != E->shape[1]) {
        sg_error(ctx, "%s (%s): weight is %s of shape %s, expected a float (vocab, dim) = %s", fn,
                 emb->name, sg_dtype_name(weight->dtype),
                 sg_shape_str(weight->ndim, weight->shape, a, sizeof a),
                 sg_shape_str(E->ndim, E->shape, b, sizeof b));
        return -1;
    }
    /* float to float of one shape: nothing left to fail */
    return sg_copy_values(emb->embeddings, weight) ? -1 : 0;
}

int sg_embedding_params(const sg_embedding *emb, sg_param_list *list) {
    if (!emb || !list)
        return -1;
    char nm[SG_NAME_MAX + 1];
    snprintf(nm, sizeof nm, "%s.embeddings", emb->name);
    return sg_params_add(list, nm, emb->embeddings);
}
