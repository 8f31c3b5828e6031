/* torch.optim.Adam and AdamW (with amsgrad), following torch 1.13's _single_tensor_adam /
 * _single_tensor_adamw operation by operation:
 *
 *   t += 1                                     (per parameter)
 *   g = g + wd * p                             (Adam, wd != 0)
 *   p = p * (1 - lr * wd)                      (AdamW, decoupled)
 *   m = m * b1 + (1 - b1) * g
 *   v = v * b2 + (1 - b2) * g * g
 *   vmax = max(vmax, v)                        (amsgrad; v below means vmax)
 *   denom = sqrt(v) / sqrt(1 - b2^t) + eps
 *   p = p + (-lr / (1 - b1^t)) * m / denom
 *
 * The scalars (1 - b1, the bias corrections, the step size) are computed in double as
 * Python does, then rounded once to the element type, as torch's kernels do; with the
 * fused multiply-adds where torch fuses, float64 results match torch bit for bit on the
 * test fixtures. */
#include <math.h>

#include "internal.h"

typedef struct adam_coef {
    double wd;       /* coupled weight decay (Adam), 0 for AdamW */
    double decay;    /* 1 - lr * wd for AdamW, 1 for Adam */
    double b1, omb1; /* beta1, 1 - beta1 */
    double b2, omb2; /* beta2, 1 - beta2 */
    double bc2_sqrt; /* sqrt(1 - beta2^t) */
    double eps;
    double step_size; /* lr / (1 - beta1^t) */
} adam_coef;

/* p, g, m, v, vmax are (n) contiguous, same dtype; vmax NULL without amsgrad. The two
 * add-with-alpha operations (weight decay into g, the first moment) are fused as torch's
 * kernels fuse them (internal.h); addcmul and addcdiv are not. */
#define ADAM_KERNEL(T, SQRT, FMA, SFX)                                                             \
    static inline __attribute__((always_inline)) void adam_body_##SFX(                             \
        T *restrict p, const T *restrict g, T *restrict m, T *restrict v, T *restrict vmax,        \
        int64_t n, const adam_coef *c, const bool coupled, const bool amsgrad) {                   \
        const T wd = (T)c->wd, decay = (T)c->decay, b1 = (T)c->b1, omb1 = (T)c->omb1,              \
                b2 = (T)c->b2, omb2 = (T)c->omb2, bc2s = (T)c->bc2_sqrt, eps = (T)c->eps,          \
                nss = (T)(-c->step_size);                                                          \
        for (int64_t i = 0; i < n; i++) {                                                          \
            T gi = coupled ? FMA(p[i], wd, g[i]) : g[i];                                           \
            T pi = p[i] * decay; /* decay is exactly 1 for Adam: p unchanged */                    \
            T mi = FMA(gi, omb1, m[i] * b1);                                                       \
            T vi = v[i] * b2 + omb2 * gi * gi; /* addcmul: self + value * t1 * t2 */               \
            m[i] = mi;                                                                             \
            v[i] = vi;                                                                             \
            if (amsgrad) {                                                                         \
                vi = vmax[i] > vi ? vmax[i] : vi;                                                  \
                vmax[i] = vi;                                                                      \
            }                                                                                      \
            T denom = SQRT(vi) / bc2s + eps;                                                       \
            /* addcdiv: self + value * t1 / t2, left to right */                                   \
            p[i] = pi + nss * mi / denom;                                                          \
        }                                                                                          \
    }                                                                                              \
    /* One loop per combination of flags (constants after inlining): no branch inside a            \
     * loop, so each can vectorise. */                                                             \
    SG__FMA_CLONES static void adam_##SFX(T *restrict p, const T *restrict g, T *restrict m,       \
                                          T *restrict v, T *restrict vmax, int64_t n,              \
                                          const adam_coef *c) {                                    \
        if (c->wd != 0.0) {                                                                        \
            if (vmax)                                                                              \
                adam_body_##SFX(p, g, m, v, vmax, n, c, true, true);                               \
            else                                                                                   \
                adam_body_##SFX(p, g, m, v, vmax, n, c, true, false);                              \
        } else {                                                                                   \
            if (vmax)                                                                              \
                adam_body_##SFX(p, g, m, v, vmax, n, c, false, true);                              \
            else                                                                                   \
                adam_body_##SFX(p, g, m, v, vmax, n, c, false, false);                             \
        }                                                                                          \
    }
ADAM_KERNEL(float, sqrtf, fmaf, f32)
ADAM_KERNEL(double, sqrt, fma, f64)

static void adam_update(sg_optim *opt, sg__optim_slot *s) {
    const sg_adam_options *o = &opt->adam;
    if (opt->bc_step != s->step) {
        /* Python: 1 - beta ** step with a float step (torch keeps step as a float tensor) */
        opt->bc1 = 1.0 - pow(o->beta1, (double)s->step);
        opt->bc2_sqrt = sqrt(1.0 - pow(o->beta2, (double)s->step));
        opt->bc_step = s->step;
    }
    adam_coef c = {
        .wd = o->decoupled ? 0.0 : o->weight_decay,
        .decay = o->decoupled ? 1.0 - opt->lr * o->weight_decay : 1.0,
        .b1 = o->beta1,
        .omb1 = 1.0 - o->beta1,
        .b2 = o->beta2,
        .omb2 = 1.0 - o->beta2,
        .bc2_sqrt = opt->bc2_sqrt,
        .eps = o->eps,
        .step_size = opt->lr / opt->bc1,
    };
    sg_tensor *p = s->p;
    if (p->dtype == SG_F32)
        adam_f32(sg_data(p), sg_data(p->grad), sg_data(s->buf[0]), sg_data(s->buf[1]),
                 s->buf[2] ? sg_data(s->buf[2]) : NULL, s->numel, &c);
    else
        adam_f64(sg_data(p), sg_data(p->grad), sg_data(s->buf[0]), sg_data(s->buf[1]),
                 s->buf[2] ? sg_data(s->buf[2]) : NULL, s->numel, &c);
}

sg_optim *sg_adam_new(sg_ctx *ctx, const sg_param_list *params, sg_adam_options o) {
    static const char fn[] = "sg_adam_new";
    if (!ctx)
        return NULL;
    /* Zeros mean "torch's default"; everything else is checked as given (NaN fails). */
    if (o.lr == 0.0)
        o.lr = 1e-3;
    if (o.beta1 == 0.0 && o.beta2 == 0.0) {
        o.beta1 = 0.9;
        o.beta2 = 0.999;
    }
    if (o.eps == 0.0)
        o.eps = 1e-8;
    if (!(o.lr > 0.0 && isfinite(o.lr)))
        return sg_error(ctx, "%s: learning rate %g is not a finite number > 0", fn, o.lr);
    if (!(o.beta1 >= 0.0 && o.beta1 < 1.0))
        return sg_error(ctx, "%s: beta1 %g outside [0, 1)", fn, o.beta1);
    if (!(o.beta2 >= 0.0 && o.beta2 < 1.0))
        return sg_error(ctx, "%s: beta2 %g outside [0, 1)", fn, o.beta2);
    if (!(o.eps > 0.0 && isfinite(o.eps)))
        return sg_error(ctx, "%s: eps %g is not a finite number > 0", fn, o.eps);
    if (!(o.weight_decay >= 0.0 && isfinite(o.weight_decay)))
        return sg_error(ctx, "%s: weight_decay %g is not a finite number >= 0", fn, o.weight_decay);
    sg_optim *opt = sg__optim_new(ctx, fn, params, o.decoupled ? SG__OPT_ADAMW : SG__OPT_ADAM,
                                  o.amsgrad ? 3 : 2);
    if (!opt)
        return NULL;
    opt->lr = o.lr;
    opt->adam = o;
    opt->update = adam_update;
    return opt;
}
