/* Internal to optim/: the optimizer struct shared by sgd.c (construction helpers, step,
 * zero_grad, lr, state, free, clipping) and adam.c (Adam/AdamW). Not installed. */
#ifndef SG_OPTIM_INTERNAL_H
#define SG_OPTIM_INTERNAL_H

#include "optim.h"

/* torch's CPU kernels compute `a.add_(b, alpha=s)` as one fused multiply-add,
 * fmadd(b, s, a) (the vectorised add kernel), so the updates use fma() at exactly those
 * places: float64 trajectories then match torch bit for bit rather than to a few ulps.
 * fma() is exact on every machine; the clone built for FMA hardware inlines it as one
 * instruction (picked at load time), the default clone calls libm's. */
#if defined(__GNUC__) && defined(__x86_64__) &&                                                    \
    !defined(__SANITIZE_THREAD__) /* see SG__SIMD_CLONES */
#define SG__FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define SG__FMA_CLONES
#endif

typedef enum { SG__OPT_SGD = 0, SG__OPT_ADAM = 1, SG__OPT_ADAMW = 2 } sg__optim_kind;

/* One parameter and its state. buf[] are persistent tensors of the parameter's shape and
 * dtype, made at construction (so sg_optim_state can hand them to a checkpoint before the
 * first step): SGD: buf[0] momentum_buffer (only with momentum); Adam: buf[0] exp_avg,
 * buf[1] exp_avg_sq, buf[2] max_exp_avg_sq (only with amsgrad). Unused entries are NULL. */
typedef struct sg__optim_slot {
    char name[SG_NAME_MAX + 1]; /* the parameter's, as in its store */
    sg_tensor *p;
    int64_t numel;
    sg_tensor *buf[3];
    /* Updates this parameter has received: torch's per-parameter state['step']. A
     * parameter without a gradient is skipped and does not count (as in torch), so the
     * momentum buffer is "not yet initialised" exactly while step == 0. */
    int64_t step;
} sg__optim_slot;

struct sg_optim {
    sg_ctx *ctx;
    sg__optim_kind kind;
    double lr;
    sg_sgd_options sgd;   /* kind SGD (lr lives in `lr`) */
    sg_adam_options adam; /* kind ADAM / ADAMW, defaults filled in */
    int64_t steps;        /* successful sg_optim_step calls (or as restored) */
    /* Adam's bias corrections for step bc_step (-1: none yet): every parameter usually has
     * the same step, so the two pow() calls are made once per step, not per parameter. */
    int64_t bc_step;
    double bc1, bc2_sqrt;
    int n;
    sg__optim_slot *slots;
    /* The kind's update of one parameter from its gradient; the gradient has been checked
     * (present, finite) before this is called, and s->step already counts this step. */
    void (*update)(sg_optim *opt, sg__optim_slot *s);
};

/* Allocate an optimizer over `params` (validated: non-empty, every entry a live parameter
 * of ctx made with sg_param_new, no tensor twice) with nbuf zeroed state tensors per
 * parameter (buf[0..nbuf)). fn names the caller in errors. NULL with an error on failure. */
sg_optim *sg__optim_new(sg_ctx *ctx, const char *fn, const sg_param_list *params,
                        sg__optim_kind kind, int nbuf);

#endif
