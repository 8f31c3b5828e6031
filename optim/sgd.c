/* The optimizer object shared by every kind (construction, step, zero_grad, learning rate,
 * step count, state for checkpoints, free), torch.optim.SGD, and gradient clipping
 * (torch.nn.utils.clip_grad_norm_ / clip_grad_value_).
 *
 * Parameters are made by sg_param_new: contiguous, with a contiguous persistent gradient of
 * the same shape and dtype, so every update is one flat loop over the elements. The state
 * buffers are persistent tensors made at construction; they start at zero and survive
 * sg_ctx_reset. A step costs no allocation: for an LSTM's handful of tiny parameters it
 * is a gradient scan and one short loop per parameter.
 *
 * Arithmetic follows torch 1.13's _single_tensor_sgd operation by operation (scalars
 * computed in double and rounded once to the element type, as torch's kernels do; fused
 * multiply-adds where torch's kernels fuse), so float64 trajectories agree with PyTorch's
 * bit for bit on the test fixtures. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "internal.h"

/* ---- construction and teardown --------------------------------------------------------- */

static const char *buf_name(sg__optim_kind kind, int k) {
    static const char *const sgd[] = {"momentum_buffer"};
    static const char *const adam[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    return kind == SG__OPT_SGD ? sgd[k] : adam[k];
}

void sg_optim_free(sg_optim *opt) {
    if (!opt)
        return;
    for (int i = 0; opt->slots && i < opt->n; i++)
        for (int k = 0; k < 3; k++)
            sg_tensor_free(opt->slots[i].buf[k]);
    sg_free(opt->slots);
    sg_free(opt);
}

/* Is entry i a parameter the optimizer can update? Records why not. */
static bool check_param(sg_ctx *ctx, const char *fn, const sg_param_list *params, int i) {
    const sg_param_entry *e = &params->items[i];
    const sg_tensor *t = e->tensor;
    if (!t) {
        sg_error(ctx, "%s: parameter '%s' is NULL", fn, e->name);
        return false;
    }
    if (strlen(e->name) > SG_NAME_MAX) { /* a parameter's name, as in a store */
        sg_error(ctx, "%s: parameter name '%.40s...' is longer than %d characters", fn, e->name,
                 SG_NAME_MAX);
        return false;
    }
    if (t->magic != SG_TENSOR_MAGIC) {
        sg_error(ctx, "%s: parameter '%s' is not a live tensor (freed?)", fn, e->name);
        return false;
    }
    if (t->ctx != ctx && !(t->flags & SG_FLAG_SHARED)) { /* a store's belong to none */
        sg_error(ctx, "%s: parameter '%s' belongs to another context", fn, e->name);
        return false;
    }
    /* An arena tensor would die at the next reset, and its gradient with it. */
    if (!(t->flags & SG_FLAG_PERSISTENT)) {
        sg_error(ctx, "%s: '%s' is not a parameter (not persistent; make it with sg_param_new)", fn,
                 e->name);
        return false;
    }
    /* A persistent tensor that merely requires grad gets an arena gradient at backward
     * (gone at the next reset); only sg_param_new gives a persistent one. */
    const sg_tensor *g = t->grad;
    if (!(t->flags & SG_FLAG_PARAM) || !g || !(g->flags & SG_FLAG_PERSISTENT)) {
        sg_error(ctx,
                 "%s: '%s' is not a parameter (no persistent gradient; make it with "
                 "sg_param_new)",
                 fn, e->name);
        return false;
    }
    for (int j = 0; j < i; j++)
        if (params->items[j].tensor == t) {
            sg_error(ctx, "%s: parameter '%s' appears twice (also as '%s')", fn, e->name,
                     params->items[j].name);
            return false;
        }
    return true;
}

sg_optim *sg__optim_new(sg_ctx *ctx, const char *fn, const sg_param_list *params,
                        sg__optim_kind kind, int nbuf) {
    if (!params)
        return sg_error(ctx, "%s: NULL parameter list", fn);
    if (params->n <= 0 || !params->items)
        return sg_error(ctx, "%s: empty parameter list", fn);
    for (int i = 0; i < params->n; i++)
        if (!check_param(ctx, fn, params, i))
            return NULL;
    sg_optim *opt = sg_calloc(1, sizeof *opt);
    sg__optim_slot *slots = opt ? sg_calloc((size_t)params->n, sizeof *slots) : NULL;
    if (!slots) {
        sg_free(opt);
        return sg_error(ctx, "%s: out of memory", fn);
    }
    opt->ctx = ctx;
    opt->kind = kind;
    opt->n = params->n;
    opt->slots = slots;
    opt->bc_step = -1;
    for (int i = 0; i < params->n; i++) {
        sg__optim_slot *s = &slots[i];
        sg_tensor *p = params->items[i].tensor;
        memcpy(s->name, params->items[i].name, sizeof s->name);
        s->name[sizeof s->name - 1] = '\0';
        s->p = p;
        s->numel = sg_numel(p);
        for (int k = 0; k < nbuf; k++) {
            s->buf[k] = sg_persistent_new(ctx, p->dtype, p->ndim, p->shape);
            if (!s->buf[k]) {
                sg_optim_free(opt);
                return NULL; /* sg_persistent_new recorded the error */
            }
            char nm[160];
            snprintf(nm, sizeof nm, "optim.%s.%s", s->name, buf_name(kind, k));
            sg_tensor_set_name(s->buf[k], nm); /* for printing; truncated to fit */
        }
    }
    return opt;
}

/* ---- SGD ------------------------------------------------------------------------------- */

/* p, g, buf are (n) contiguous, same dtype; buf NULL without momentum. torch 1.13, with
 * its add-with-alpha as fma (see internal.h):
 *   d = g + wd * p                              (weight decay, when wd != 0)
 *   buf = d on the first step, else buf * m + (1 - dampening) * d
 *   d = d + m * buf (Nesterov) or buf
 *   p = p + (-lr) * d
 * Dampening is deliberately not applied on the first step (torch clones d). */
#define SGD_KERNEL(T, FMA, SFX)                                                                    \
    static inline __attribute__((always_inline)) void sgd_body_##SFX(                              \
        T *restrict p, const T *restrict g, T *restrict buf, int64_t n, T nlr, T wd, T m, T keep,  \
        const bool momentum, const bool decay, const bool first, const bool nesterov) {            \
        for (int64_t i = 0; i < n; i++) {                                                          \
            T d = decay ? FMA(p[i], wd, g[i]) : g[i];                                              \
            if (momentum) {                                                                        \
                T b = first ? d : FMA(d, keep, buf[i] * m);                                        \
                buf[i] = b;                                                                        \
                d = nesterov ? FMA(b, m, d) : b;                                                   \
            }                                                                                      \
            p[i] = FMA(d, nlr, p[i]);                                                              \
        }                                                                                          \
    }                                                                                              \
    SG__FMA_CLONES static void sgd_##SFX(T *restrict p, const T *restrict g, T *restrict buf,      \
                                         int64_t n, const sg_sgd_options *o, double lr_,           \
                                         bool first) {                                             \
        const T nlr = (T)(-lr_), wd = (T)o->weight_decay, m = (T)o->momentum,                      \
                keep = (T)(1.0 - o->dampening);                                                    \
        /* One loop per combination of flags (constants after inlining): no branch inside          \
         * a loop, so each can vectorise. */                                                       \
        int code = (buf ? 1 : 0) | (o->weight_decay != 0.0 ? 2 : 0) | (first ? 4 : 0) |            \
                   (o->nesterov ? 8 : 0);                                                          \
        switch (code & (buf ? 15 : 3)) { /* without momentum only the decay bit matters */         \
        case 0: sgd_body_##SFX(p, g, buf, n, nlr, wd, m, keep, 0, 0, 0, 0); break;                 \
        case 2: sgd_body_##SFX(p, g, buf, n, nlr, wd, m, keep, 0, 1, 0, 0); break;                 \
        case 1: sgd_body_##SFX(p, g, buf, n, nlr, wd, m, keep, 1, 0, 0, 0); break;                 \
        case 3: sgd_body_##SFX(p, g, buf, n, nlr, wd, m, keep, 1, 1, 0, 0); break;                 \
        case 5: sgd_body_##SFX(p, g, buf, n, nlr, wd, m, keep, 1, 0, 1, 0); break;                 \
        case 7: sgd_body_##SFX(p, g, buf, n, nlr, wd, m, keep, 1, 1, 1, 0); break;                 \
        case 9: sgd_body_##SFX(p, g, buf, n, nlr, wd, m, keep, 1, 0, 0, 1); break;                 \
        case 11: sgd_body_##SFX(p, g, buf, n, nlr, wd, m, keep, 1, 1, 0, 1); break;                \
        case 13: sgd_body_##SFX(p, g, buf, n, nlr, wd, m, keep, 1, 0, 1, 1); break;                \
        case 15: sgd_body_##SFX(p, g, buf, n, nlr, wd, m, keep, 1, 1, 1, 1); break;                \
        }                                                                                          \
    }
SGD_KERNEL(float, fmaf, f32)
SGD_KERNEL(double, fma, f64)

static void sgd_update(sg_optim *opt, sg__optim_slot *s) {
    sg_tensor *p = s->p;
    bool first = s->step == 1; /* the buffer is "not yet initialised" until this step */
    if (p->dtype == SG_F32)
        sgd_f32(sg_data(p), sg_data(p->grad), s->buf[0] ? sg_data(s->buf[0]) : NULL, s->numel,
                &opt->sgd, opt->lr, first);
    else
        sgd_f64(sg_data(p), sg_data(p->grad), s->buf[0] ? sg_data(s->buf[0]) : NULL, s->numel,
                &opt->sgd, opt->lr, first);
}

sg_optim *sg_sgd_new(sg_ctx *ctx, const sg_param_list *params, sg_sgd_options o) {
    static const char fn[] = "sg_sgd_new";
    if (!ctx)
        return NULL;
    /* Written so that NaN fails every test. SGD has no default rate: lr 0 is almost
     * certainly a forgotten field, so it is an error here (sg_optim_set_lr accepts 0). */
    if (!(o.lr > 0.0 && isfinite(o.lr)))
        return sg_error(ctx, "%s: learning rate %g is not a finite number > 0", fn, o.lr);
    if (!(o.momentum >= 0.0 && o.momentum < 1.0))
        return sg_error(ctx, "%s: momentum %g outside [0, 1)", fn, o.momentum);
    if (!(o.dampening >= 0.0 && o.dampening <= 1.0))
        return sg_error(ctx, "%s: dampening %g outside [0, 1]", fn, o.dampening);
    if (!(o.weight_decay >= 0.0 && isfinite(o.weight_decay)))
        return sg_error(ctx, "%s: weight_decay %g is not a finite number >= 0", fn, o.weight_decay);
    if (o.nesterov && (o.momentum <= 0.0 || o.dampening != 0.0))
        return sg_error(ctx, "%s: nesterov needs momentum > 0 and dampening 0", fn);
    sg_optim *opt = sg__optim_new(ctx, fn, params, SG__OPT_SGD, o.momentum > 0.0 ? 1 : 0);
    if (!opt)
        return NULL;
    opt->lr = o.lr;
    opt->sgd = o;
    opt->update = sgd_update;
    return opt;
}

/* ---- the step -------------------------------------------------------------------------- */

/* Flat index of the first NaN/Inf in x[0..n), or -1. !(|x| <= MAX) is true exactly for
 * NaN and +-Inf; the first pass ORs it over everything (no early exit, so it vectorises)
 * and the index is searched only when something was found. */
#define NONFINITE_SCAN(T, I, FABS, MAX, SFX)                                                       \
    static int64_t nonfinite_##SFX(const T *x, int64_t n) {                                        \
        int bad = 0;                                                                               \
        for (int64_t i = 0; i < n; i++)                                                            \
            bad |= !(FABS(x[i]) <= MAX);                                                           \
        if (!bad)                                                                                  \
            return -1;                                                                             \
        for (int64_t i = 0; i < n; i++)                                                            \
            if (!(FABS(x[i]) <= MAX))                                                              \
                return i;                                                                          \
        return -1;                                                                                 \
    }
NONFINITE_SCAN(float, int32_t, fabsf, FLT_MAX, f32)
NONFINITE_SCAN(double, int64_t, fabs, DBL_MAX, f64)

/* Is the slot's gradient usable? Records the problem (naming the parameter) if not. */
static bool check_grad(sg_optim *opt, const sg__optim_slot *s) {
    const sg_tensor *p = s->p, *g = p->grad;
    if (g->magic != SG_TENSOR_MAGIC || g->dtype != p->dtype || !sg_is_contiguous(g) ||
        sg_numel(g) != s->numel) {
        char a[64];
        sg_error(opt->ctx,
                 "sg_optim_step: gradient of %s is not a live contiguous %s tensor of shape %s",
                 s->name, sg_dtype_name(p->dtype), sg_shape_str(p->ndim, p->shape, a, sizeof a));
        return false;
    }
    int64_t i = g->dtype == SG_F32 ? nonfinite_f32(sg_data(g), s->numel)
                                   : nonfinite_f64(sg_data(g), s->numel);
    if (i >= 0) {
        double v = sg_get_flat(g, i);
        sg_error(opt->ctx, "sg_optim_step: gradient of %s has %s at index %lld", s->name,
                 isnan(v) ? "NaN"
                 : v > 0  ? "Inf"
                          : "-Inf",
                 (long long)i);
        return false;
    }
    return true;
}

int sg_optim_step(sg_optim *opt) {
    if (!opt)
        return -1;
    /* Check every gradient first: a bad one must leave ALL parameters (and state) as they
     * were, so the caller can skip the batch and carry on. */
    for (int i = 0; i < opt->n; i++) {
        const sg__optim_slot *s = &opt->slots[i];
        if (s->p->grad && !check_grad(opt, s))
            return -1;
    }
    opt->steps++;
    for (int i = 0; i < opt->n; i++) {
        sg__optim_slot *s = &opt->slots[i];
        if (!s->p->grad)
            continue; /* torch skips parameters whose .grad is None */
        s->step++;
        opt->update(opt, s);
    }
    return 0;
}

void sg_optim_zero_grad(sg_optim *opt) {
    for (int i = 0; opt && i < opt->n; i++)
        sg_zero_grad(opt->slots[i].p);
}

double sg_optim_get_lr(const sg_optim *opt) { return opt ? opt->lr : NAN; }

void sg_optim_set_lr(sg_optim *opt, double lr) {
    if (!opt)
        return;
    if (!(lr >= 0.0 && isfinite(lr))) {
        sg_error(opt->ctx, "sg_optim_set_lr: learning rate %g is not a finite number >= 0", lr);
        return;
    }
    opt->lr = lr;
}

int64_t sg_optim_steps(const sg_optim *opt) { return opt ? opt->steps : -1; }

void sg_optim_set_steps(sg_optim *opt, int64_t steps) {
    if (!opt)
        return;
    if (steps < 0) {
        sg_error(opt->ctx, "sg_optim_set_steps: negative step count %lld", (long long)steps);
        return;
    }
    /* A checkpoint stores one count: every parameter continues from it. */
    opt->steps = steps;
    for (int i = 0; i < opt->n; i++)
        opt->slots[i].step = steps;
}

const char *sg_optim_kind(const sg_optim *opt) {
    if (!opt)
        return NULL;
    return opt->kind == SG__OPT_SGD ? "sgd" : opt->kind == SG__OPT_ADAM ? "adam" : "adamw";
}

int sg_optim_state(const sg_optim *opt, sg_param_list *out) {
    if (!opt || !out)
        return -1;
    for (int i = 0; i < opt->n; i++)
        for (int k = 0; k < 3; k++) {
            const sg__optim_slot *s = &opt->slots[i];
            if (!s->buf[k])
                continue;
            char nm[160];
            snprintf(nm, sizeof nm, "optim.%s.%s", s->name, buf_name(opt->kind, k));
            if (sg_params_add(out, nm, s->buf[k]) != 0)
                return -1; /* too long or duplicate: sg_params_add said which */
        }
    return 0;
}

/* ---- gradient clipping ----------------------------------------------------------------- */

/* The context to report to: the first live tensor's. */
static sg_ctx *list_ctx(const sg_param_list *params) {
    if (params->ctx)
        return params->ctx;
    for (int i = 0; i < params->n; i++) {
        const sg_tensor *t = params->items[i].tensor;
        if (t && t->magic == SG_TENSOR_MAGIC)
            return t->ctx;
    }
    return NULL;
}

/* The gradient of entry i when it has a usable one (gradients are always contiguous with
 * the parameter's shape), else NULL (skipped, as torch skips .grad None). */
static sg_tensor *entry_grad(const sg_param_list *params, int i) {
    const sg_tensor *t = params->items[i].tensor;
    if (!t || t->magic != SG_TENSOR_MAGIC || !t->grad || t->grad->magic != SG_TENSOR_MAGIC ||
        !sg_is_contiguous(t->grad))
        return NULL;
    return t->grad;
}

/* x is (n) contiguous: sum of squares, accumulated in double. */
#define SUMSQ(T, SFX)                                                                              \
    static double sumsq_##SFX(const T *x, int64_t n) {                                             \
        double s = 0.0;                                                                            \
        for (int64_t i = 0; i < n; i++)                                                            \
            s += (double)x[i] * (double)x[i];                                                      \
        return s;                                                                                  \
    }
SUMSQ(float, f32)
SUMSQ(double, f64)

double sg_clip_grad_norm(sg_param_list *params, double max_norm) {
    if (!params)
        return -1.0;
    sg_ctx *ctx = list_ctx(params);
    if (!(max_norm >= 0.0)) {
        sg_error(ctx, "sg_clip_grad_norm: max_norm %g is negative or NaN", max_norm);
        return -1.0;
    }
    /* torch: total = norm(stack([norm(g) for g in grads])), i.e. the norm of the
     * per-parameter norms; the same quantity as sqrt(sum of all squares), and computed
     * this way it rounds like torch. */
    double sq = 0.0;
    for (int i = 0; i < params->n; i++) {
        sg_tensor *g = entry_grad(params, i);
        if (!g)
            continue;
        double s = g->dtype == SG_F32 ? sumsq_f32(sg_data(g), sg_numel(g))
                                      : sumsq_f64(sg_data(g), sg_numel(g));
        double nk = sqrt(s);
        sq += nk * nk;
    }
    double total = sqrt(sq);
    double coef = max_norm / (total + 1e-6);
    if (coef < 1.0) /* torch multiplies by min(coef, 1): a no-op unless clipping */
        for (int i = 0; i < params->n; i++) {
            sg_tensor *g = entry_grad(params, i);
            int64_t n = g ? sg_numel(g) : 0;
            if (g && g->dtype == SG_F32) {
                float *x = sg_data(g), c = (float)coef;
                for (int64_t j = 0; j < n; j++)
                    x[j] *= c;
            } else if (g) {
                double *x = sg_data(g);
                for (int64_t j = 0; j < n; j++)
                    x[j] *= coef;
            }
        }
    return total;
}

/* x is (n) contiguous: clamp to [-v, v]; NaN stays NaN (as torch.clamp_). */
#define CLAMP(T, SFX)                                                                              \
    static void clamp_##SFX(T *x, int64_t n, T v) {                                                \
        for (int64_t i = 0; i < n; i++)                                                            \
            x[i] = x[i] < -v ? -v : x[i] > v ? v : x[i];                                           \
    }
CLAMP(float, f32)
CLAMP(double, f64)

int sg_clip_grad_value(sg_param_list *params, double clip_value) {
    if (!params)
        return -1;
    if (!(clip_value >= 0.0)) {
        sg_error(list_ctx(params), "sg_clip_grad_value: clip_value %g is negative or NaN",
                 clip_value);
        return -1;
    }
    for (int i = 0; i < params->n; i++) {
        sg_tensor *g = entry_grad(params, i);
        if (g && g->dtype == SG_F32)
            clamp_f32(sg_data(g), sg_numel(g), (float)clip_value);
        else if (g)
            clamp_f64(sg_data(g), sg_numel(g), clip_value);
    }
    return 0;
}
