/* Gradient checking by central differences. */
#include <math.h>
#include <string.h>

#include "ops.h"

sg_gradcheck_opts sg_gradcheck_defaults(void) {
    return (sg_gradcheck_opts){.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5, .seed = 1};
}

/* L = sum(out * w), accumulated in double whatever out's dtype. */
static double weighted_sum(const sg_tensor *out, const double *w) {
    double s = 0;
    sg_iter it;
    sg__iter_flat(&it, out);
    SG_ITER_LOOP(&it, s += sg__ld(out, i0) * w[i1]);
    return s;
}

/* Evaluate L at the current input values without recording anything. The arena is
 * rolled back afterwards so that checking a big input does not grow it per element. Grad
 * mode is on, as in the analytic pass (ops whose forward depends on it, such as dropout,
 * compute the same function); the quiet flag alone keeps the tape from recording. */
static int eval_loss(sg_ctx *ctx, sg_gradcheck_fn fn, void *user, sg_tensor *const *inputs,
                     const double *w, int64_t wn, double *loss) {
    sg_arena_block *cur = ctx->cur;
    size_t cur_used = cur->used, used = ctx->used;
    sg_tensor *tail = ctx->tape.tail;
    bool was = sg_ctx_set_grad_enabled(ctx, true), was_quiet = ctx->tape.quiet;
    ctx->tape.quiet = true;
    sg_tensor *out = fn(ctx, inputs, user);
    ctx->tape.quiet = was_quiet;
    sg_ctx_set_grad_enabled(ctx, was);
    int rc = -1;
    if (out && sg_numel(out) == wn) {
        *loss = weighted_sum(out, w);
        rc = 0;
    } else if (out) {
        sg_error(ctx, "sg_gradcheck: the function's output changed size between calls");
    }
    /* Roll back: blocks after `cur` that this call may have filled are simply reused. */
    for (sg_arena_block *b = cur->next; b; b = b->next)
        b->used = 0;
    ctx->cur = cur;
    cur->used = cur_used;
    ctx->used = used;
    ctx->tape.tail = tail;
    return rc;
}

int sg_gradcheck(sg_ctx *ctx, sg_gradcheck_fn fn, void *user, int n, sg_tensor *const *inputs,
                 const sg_gradcheck_opts *opts_in, sg_gradcheck_report *reports) {
    if (!ctx)
        return -1;
    if (!fn || n <= 0 || !inputs) {
        sg_error(ctx, "sg_gradcheck: need a function and at least one input");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!inputs[i] || !sg_check(ctx, inputs[i], "sg_gradcheck"))
            return -1;
        if (!sg_is_contiguous(inputs[i])) {
            sg_error(ctx, "sg_gradcheck: input %d is not contiguous", i);
            return -1;
        }
    }
    sg_gradcheck_opts o = opts_in ? *opts_in : sg_gradcheck_defaults();

    /* Analytic gradients: one backward with upstream w (or 1 for a scalar). */
    for (int i = 0; i < n; i++)
        if (inputs[i]->grad)
            sg_fill(inputs[i]->grad, 0.0);
    bool was = sg_ctx_set_grad_enabled(ctx, true);
    sg_tensor *out = fn(ctx, inputs, user);
    sg_ctx_set_grad_enabled(ctx, was);
    if (!out)
        return -1;
    if (!(out->flags & SG_FLAG_REQUIRES_GRAD)) {
        sg_error(ctx, "sg_gradcheck: the output does not depend on any input that requires grad");
        return -1;
    }
    int64_t wn = sg_numel(out);
    double *w = sg_arena_alloc(ctx, (size_t)(wn ? wn : 1) * sizeof(double));
    if (!w)
        return -1;
    sg_tensor *wt = sg__new(ctx, "sg_gradcheck", out->dtype, out->ndim, out->shape, false);
    if (!wt)
        return -1;
    sg_rng rng;
    sg_rng_seed(&rng, o.seed);
    for (int64_t i = 0; i < wn; i++) {
        w[i] = wn == 1 ? 1.0 : sg_rng_uniform(&rng) * 2 - 1;
        if (out->dtype == SG_F32) /* the weights the analytic pass sees, exactly */
            w[i] = (float)w[i];
        sg__st(wt, i, w[i]);
    }
    if (sg_backward(ctx, out, wt))
        return -1;

    int all_ok = 1;
    for (int k = 0; k < n; k++) {
        sg_tensor *x = inputs[k];
        sg_gradcheck_report r = {.ok = true, .worst_flat = -1};
        if (x->flags & SG_FLAG_REQUIRES_GRAD) {
            int64_t m = sg_numel(x);
            for (int64_t i = 0; i < m; i++) {
                double x0 = sg__ld(x, i), fp, fm;
                sg__st(x, i, x0 + o.eps);
                double hp = sg__ld(x, i) - x0; /* the step actually taken (f32 rounding) */
                int rc = eval_loss(ctx, fn, user, inputs, w, wn, &fp);
                sg__st(x, i, x0 - o.eps);
                double hm = x0 - sg__ld(x, i);
                rc |= eval_loss(ctx, fn, user, inputs, w, wn, &fm);
                sg__st(x, i, x0);
                if (rc)
                    return -1;
                double num = (fp - fm) / (hp + hm);
                double ana = x->grad ? sg__ld(x->grad, i) : 0.0;
                double err = fabs(ana - num);
                if (isnan(err))
                    err = INFINITY;
                double rel = err / fmax(fabs(num), 1e-12);
                if (err > r.max_abs || r.worst_flat < 0) {
                    r.max_abs = err;
                    r.worst_flat = i;
                    r.analytic = ana;
                    r.numeric = num;
                }
                if (rel > r.max_rel)
                    r.max_rel = rel;
                if (!(err <= o.atol + o.rtol * fabs(num)))
                    r.ok = false;
            }
        }
        if (!r.ok)
            all_ok = 0;
        if (reports)
            reports[k] = r;
    }
    return all_ok;
}
