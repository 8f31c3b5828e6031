/* Dense in Keras layout: y = activation(x @ kernel + bias), kernel (in, out), bias (out).
 * On (B, T, in) the matmul treats (B, T) as one batch of rows: every step at once. */
#include <string.h>

#include "internal.h"

sg_dense *sg_dense_new(sg_ctx *ctx, sg_store *store, sg_dtype dt, int64_t in, int64_t out,
                       bool use_bias, sg_activation activation, const char *name, sg_rng *rng) {
    if (!ctx)
        return NULL;
    char nm[SG_LAYER_NAME_MAX + 1];
    if (sg__layer_name(ctx, store, "sg_dense_new", name, "dense", nm))
        return NULL;
    if (sg__layer_sizes(ctx, "sg_dense_new", nm, "in", in, "out", out, "kernel"))
        return NULL;
    if (activation < SG_ACT_TANH || activation > SG_ACT_LINEAR)
        return sg_error(ctx, "sg_dense_new (%s): unknown activation %d", nm, (int)activation);
    int n0 = sg_store_size(store);
    sg_dense *d = sg_calloc(1, sizeof *d);
    if (!d)
        return sg_error(ctx, "sg_dense_new (%s): out of memory", nm);
    d->in = in;
    d->out = out;
    d->activation = activation;
    snprintf(d->name, sizeof d->name, "%s", nm);
    char pname[96];
    snprintf(pname, sizeof pname, "%s.kernel", nm);
    d->kernel = sg_store_param(ctx, store, pname, dt, SG_SHAPE(in, out));
    if (use_bias) {
        snprintf(pname, sizeof pname, "%s.bias", nm);
        d->bias = sg_store_param(ctx, store, pname, dt, SG_SHAPE(out)); /* zeros, as Keras */
    }
    if (!d->kernel || (use_bias && !d->bias) ||
        sg_init_tensor(ctx, d->kernel, sg_init_default(SG_INIT_GLOROT_UNIFORM),
                       rng ? rng : sg_ctx_rng(ctx))) {
        sg_dense_free(d);
        sg_store_truncate(store, n0);
        return NULL;
    }
    return d;
}

void sg_dense_free(sg_dense *d) { sg_free(d); /* the parameters are the store's */ }

sg_tensor *sg_dense_forward(sg_ctx *ctx, sg_dense *d, sg_tensor *x) {
    if (!ctx || !x)
        return NULL;
    if (!d)
        return sg_error(ctx, "sg_dense_forward: layer is NULL");
    if (!sg_check(ctx, x, "sg_dense_forward"))
        return NULL;
    char a[96];
    if (x->ndim < 1 || x->ndim > 3 || x->shape[x->ndim - 1] != d->in)
        return sg_error(ctx,
                        "sg_dense_forward (%s): x has shape %s, expected (B, %lld) or "
                        "(B, T, %lld)",
                        d->name, sg_shape_str(x->ndim, x->shape, a, sizeof a), (long long)d->in,
                        (long long)d->in);
    const bool had_err = sg_ctx_error(ctx) != NULL;
    sg_tensor *y = d->bias ? sg_addmm(ctx, d->bias, x, d->kernel) : sg_matmul(ctx, x, d->kernel);
    y = sg_activate(ctx, y, d->activation);
    /* an error recorded by its own ops fails the call (see sg_lstm_forward) */
    return !had_err && sg_ctx_error(ctx) ? NULL : y;
}

int sg_dense_params(const sg_dense *d, sg_param_list *list) {
    if (!d || !list)
        return -1;
    char nm[SG_NAME_MAX + 1];
    snprintf(nm, sizeof nm, "%s.kernel", d->name);
    if (sg_params_add(list, nm, d->kernel))
        return -1;
    snprintf(nm, sizeof nm, "%s.bias", d->name);
    return d->bias ? sg_params_add(list, nm, d->bias) : 0;
}
