/* Dense in Keras layout: y = activation(x @ kernel + bias), kernel (in, out), bias (out).
 * On (B, T, in) the matmul treats (B, T) as one batch of rows: every step at once. */
#include <string.h>

#include "../tensor/internal.h"
#include "layers.h"

sg_dense *sg_dense_new(sg_ctx *ctx, sg_dtype dt, int64_t in, int64_t out, bool use_bias,
                       sg_activation activation, const char *name, sg_rng *rng) {
    if (!ctx)
        return NULL;
    const char *nm = name ? name : "dense";
    if (in <= 0 || out <= 0)
        return sg_error(ctx, "sg_dense_new (%s): sizes must be positive, got in=%lld out=%lld", nm,
                        (long long)in, (long long)out);
    if (activation < SG_ACT_TANH || activation > SG_ACT_LINEAR)
        return sg_error(ctx, "sg_dense_new (%s): unknown activation %d", nm, (int)activation);
    if (strlen(nm) >= sizeof((sg_dense *)0)->name)
        return sg_error(ctx, "sg_dense_new: name '%s' is too long", nm);
    sg_dense *d = sg_calloc(1, sizeof *d);
    if (!d)
        return sg_error(ctx, "sg_dense_new (%s): out of memory", nm);
    d->in = in;
    d->out = out;
    d->activation = activation;
    snprintf(d->name, sizeof d->name, "%s", nm);
    char pname[96];
    snprintf(pname, sizeof pname, "%s.kernel", nm);
    d->kernel = sg_param_new(ctx, dt, SG_SHAPE(in, out), pname);
    if (use_bias) {
        snprintf(pname, sizeof pname, "%s.bias", nm);
        d->bias = sg_param_new(ctx, dt, SG_SHAPE(out), pname); /* zeros, as Keras */
    }
    if (!d->kernel || (use_bias && !d->bias) ||
        sg_init_tensor(ctx, d->kernel, sg_init_default(SG_INIT_GLOROT_UNIFORM),
                       rng ? rng : sg_ctx_rng(ctx))) {
        sg_dense_free(d);
        return NULL;
    }
    return d;
}

void sg_dense_free(sg_dense *d) {
    if (!d)
        return;
    sg_tensor_free(d->kernel);
    sg_tensor_free(d->bias);
    sg_free(d);
}

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
    sg_tensor *y = d->bias ? sg_addmm(ctx, d->bias, x, d->kernel) : sg_matmul(ctx, x, d->kernel);
    return sg_activate(ctx, y, d->activation);
}

int sg_dense_params(const sg_dense *d, sg_param_list *list) {
    if (!d || !list)
        return -1;
    if (sg_params_add(list, d->kernel->name, d->kernel))
        return -1;
    return d->bias ? sg_params_add(list, d->bias->name, d->bias) : 0;
}
