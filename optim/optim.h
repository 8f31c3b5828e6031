/* seqgrad optimizers: SGD (momentum, Nesterov, weight decay), Adam, AdamW, gradient
 * clipping and learning-rate schedules. Semantics follow torch.optim exactly (tests compare
 * five steps with torch's results to 1e-12 in float64).
 *
 *     sg_param_list params = {0};
 *     sg_lstm_params(lstm, &params); sg_dense_params(head, &params);
 *     sg_optim *opt = sg_sgd_new(ctx, &params, (sg_sgd_options){.lr = 0.1, .momentum = 0.9});
 *     for (...) { sg_optim_zero_grad(opt); ...forward...; sg_backward(ctx, loss, NULL);
 *                 sg_clip_grad_norm(&params, 1.0); sg_optim_step(opt); sg_ctx_reset(ctx); }
 *     sg_optim_free(opt); sg_params_clear(&params);
 */
#ifndef SG_OPTIM_H
#define SG_OPTIM_H

#include "../layers/layers.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sg_optim sg_optim;

/* torch.optim.SGD: with weight decay wd, g = grad + wd * p; with momentum m,
 * buf = g on the first step, else buf = m * buf + (1 - dampening) * g; Nesterov uses
 * g + m * buf, else buf; p -= lr * that. */
typedef struct sg_sgd_options {
    double lr;
    double momentum;     /* 0: plain SGD */
    double dampening;    /* 0 */
    double weight_decay; /* 0; coupled into the gradient, as torch.optim.SGD */
    bool nesterov;       /* needs momentum > 0 and dampening == 0 */
} sg_sgd_options;

/* torch.optim.Adam / AdamW (decoupled = true: p *= 1 - lr * wd before the Adam update). */
typedef struct sg_adam_options {
    double lr;           /* 1e-3 if 0 */
    double beta1, beta2; /* 0.9, 0.999 if both 0 */
    double eps;          /* 1e-8 if 0 */
    double weight_decay; /* 0 (Adam: added to the gradient; AdamW: decoupled) */
    bool amsgrad;
    bool decoupled;      /* AdamW */
} sg_adam_options;

/* Create an optimizer over the parameters in `params` (the list is copied; the tensors
 * must outlive the optimizer). State buffers are persistent tensors. NULL with an error
 * on bad options (negative lr, momentum outside [0, 1), Nesterov without momentum, ...). */
sg_optim *sg_sgd_new(sg_ctx *ctx, const sg_param_list *params, sg_sgd_options o);
sg_optim *sg_adam_new(sg_ctx *ctx, const sg_param_list *params, sg_adam_options o);
void sg_optim_free(sg_optim *opt); /* NULL is fine */

/* One update from the parameters' current gradients. Returns 0 or -1 with an error
 * (a NaN/Inf gradient is an error naming the parameter, and nothing is updated). */
int sg_optim_step(sg_optim *opt);
/* Zero the gradients of the optimizer's parameters. */
void sg_optim_zero_grad(sg_optim *opt);
double sg_optim_get_lr(const sg_optim *opt);
void sg_optim_set_lr(sg_optim *opt, double lr);
/* Steps taken so far (restored from checkpoints). */
int64_t sg_optim_steps(const sg_optim *opt);
void sg_optim_set_steps(sg_optim *opt, int64_t steps);
/* "sgd", "adam" or "adamw". */
const char *sg_optim_kind(const sg_optim *opt);
/* Append the optimizer's state tensors to `out` under stable names
 * ("optim.<param name>.<buffer>", buffers "momentum_buffer", "exp_avg", "exp_avg_sq",
 * "max_exp_avg_sq"), for checkpoints to save and to load into (same tensors). */
int sg_optim_state(const sg_optim *opt, sg_param_list *out);

/* Gradient clipping over a whole list, as torch.nn.utils: scale every gradient by
 * max_norm / (total_norm + 1e-6) when the global L2 norm exceeds max_norm; returns the
 * norm before clipping (-1 on error). Clip by value clamps each element to [-v, v]. */
double sg_clip_grad_norm(sg_param_list *params, double max_norm);
int sg_clip_grad_value(sg_param_list *params, double clip_value);

/* Learning-rate schedules: the rate for step `step` (0-based) from the base rate.
 * step decay: base * gamma^(floor(step / step_size)); cosine: min + (base - min) *
 * (1 + cos(pi * step / total)) / 2 for step < total, min afterwards; optional linear
 * warmup over the first `warmup` steps for cosine. */
double sg_lr_step_decay(double base, int64_t step, int64_t step_size, double gamma);
double sg_lr_cosine(double base, int64_t step, int64_t total, double min_lr, int64_t warmup);

#ifdef __cplusplus
}
#endif
#endif
