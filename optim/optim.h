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

#include "../autograd/autograd.h" /* the store and named tensor lists; not layers */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sg_optim sg_optim;

/* torch.optim.SGD: with weight decay wd, g = grad + wd * p; with momentum m,
 * buf = g on the first step, else buf = m * buf + (1 - dampening) * g; Nesterov uses
 * g + m * buf, else buf; p -= lr * that. */
typedef struct sg_sgd_options {
    double lr;           /* required, > 0 (no default: 0 is an error, like torch's `required`) */
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
    bool decoupled; /* AdamW */
} sg_adam_options;

/* Create an optimizer over the parameters in `params` (the list is copied; the tensors
 * must outlive the optimizer). Every entry must be a parameter made by sg_param_new (a
 * persistent tensor with a persistent gradient), of this context, listed once. State
 * buffers are zeroed persistent tensors of each parameter's shape and dtype, made here;
 * free the optimizer before the context. NULL with an error naming the function and the
 * bad value on bad options (lr <= 0, momentum outside [0, 1), dampening outside [0, 1],
 * negative weight decay, Nesterov without momentum or with dampening, betas outside
 * [0, 1), eps <= 0) or a bad list (NULL, empty, an entry that is not a parameter). */
sg_optim *sg_sgd_new(sg_ctx *ctx, const sg_param_list *params, sg_sgd_options o);
sg_optim *sg_adam_new(sg_ctx *ctx, const sg_param_list *params, sg_adam_options o);
void sg_optim_free(sg_optim *opt); /* NULL is fine */

/* One update from the parameters' current gradients. Returns 0 or -1 with an error
 * (a NaN/Inf gradient is an error naming the parameter and the flat index, e.g.
 * "sg_optim_step: gradient of lstm.kernel has NaN at index 3", and nothing is updated).
 * A parameter whose grad is NULL is skipped, as torch skips .grad None: its own step
 * count (Adam's bias correction, SGD's first-step momentum) does not advance. */
int sg_optim_step(sg_optim *opt);
/* Zero the gradients of the optimizer's parameters. */
void sg_optim_zero_grad(sg_optim *opt);
/* The learning rate used by the next step. set_lr accepts any finite rate >= 0; anything
 * else (NaN from a bad schedule, negative) records an error and keeps the old rate. */
double sg_optim_get_lr(const sg_optim *opt);
void sg_optim_set_lr(sg_optim *opt, double lr);
/* Steps taken so far (restored from checkpoints). set_steps sets every parameter's step
 * count to `steps` (negative: error): with the state tensors copied back, a restored
 * optimizer continues bit-identically (a momentum buffer counts as initialised when
 * steps > 0). */
int64_t sg_optim_steps(const sg_optim *opt);
void sg_optim_set_steps(sg_optim *opt, int64_t steps);
/* "sgd", "adam" or "adamw". */
const char *sg_optim_kind(const sg_optim *opt);
/* Append the optimizer's state tensors to `out` under stable names
 * ("optim.<param name>.<buffer>", buffers "momentum_buffer" (SGD with momentum),
 * "exp_avg", "exp_avg_sq", "max_exp_avg_sq" (amsgrad); only those that exist, parameter
 * by parameter), for checkpoints to save and to load into (same tensors). Returns 0, or
 * -1 when sg_params_add fails (a name longer than 63 characters, a duplicate). */
int sg_optim_state(const sg_optim *opt, sg_param_list *out);

/* Gradient clipping over a whole list, as torch.nn.utils: scale every gradient by
 * max_norm / (total_norm + 1e-6) when that is below 1 (total_norm: the L2 norm over all
 * gradients together); returns the norm before clipping (0 for an empty list; -1 for a
 * NULL list or a negative/NaN max_norm, with an error). Clip by value clamps each element
 * to [-v, v] (NaN stays NaN); 0, or -1 for a NULL list or negative/NaN v. Entries without
 * a gradient are skipped. */
double sg_clip_grad_norm(sg_param_list *params, double max_norm);
int sg_clip_grad_value(sg_param_list *params, double clip_value);

/* Learning-rate schedules: the rate for step `step` (0-based) from the base rate.
 * step decay (torch StepLR): base * gamma^(floor(step / step_size)).
 * cosine (torch CosineAnnealingLR, clamped): with warmup = 0,
 *     min + (base - min) * (1 + cos(pi * step / total)) / 2   for step < total,
 *     min                                                     afterwards;
 * with warmup w > 0, steps 0 .. w-1 ramp linearly as base * (step + 1) / w (reaching base
 * at step w-1; step 0 is not spent at rate 0), then the cosine runs from base at step w
 * to min at step total, i.e. the formula with step - w over total - w.
 * Invalid arguments return NaN (which sg_optim_set_lr rejects with an error): step < 0,
 * step_size <= 0, total <= 0, warmup < 0 or > total, a negative or non-finite base,
 * min or gamma. */
double sg_lr_step_decay(double base, int64_t step, int64_t step_size, double gamma);
double sg_lr_cosine(double base, int64_t step, int64_t total, double min_lr, int64_t warmup);

#ifdef __cplusplus
}
#endif
#endif
