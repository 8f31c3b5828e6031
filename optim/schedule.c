/* Learning-rate schedules as pure functions of the step: the caller does
 *     sg_optim_set_lr(opt, sg_lr_cosine(base, step, total, min_lr, warmup));
 * before each sg_optim_step, so a restored run (sg_optim_set_steps) resumes the schedule
 * exactly. Invalid arguments give NaN, which sg_optim_set_lr rejects with an error, so a
 * bad schedule cannot silently train with a garbage rate. */
#define _GNU_SOURCE /* M_PI */
#include <math.h>

#include "internal.h"

/* torch.optim.lr_scheduler.StepLR's closed form: base * gamma ** (step // step_size). */
double sg_lr_step_decay(double base, int64_t step, int64_t step_size, double gamma) {
    if (step < 0 || step_size <= 0 || !(base >= 0.0) || !isfinite(base) || !(gamma >= 0.0) ||
        !isfinite(gamma))
        return NAN;
    return base * pow(gamma, (double)(step / step_size));
}

/* Linear warmup to base over steps 0 .. warmup-1 (base * (step + 1) / warmup, so step 0 is
 * not wasted at rate 0), then torch's CosineAnnealingLR closed form over the remaining
 * steps, from base at step `warmup` down to min_lr at step `total`; min_lr afterwards. */
double sg_lr_cosine(double base, int64_t step, int64_t total, double min_lr, int64_t warmup) {
    if (step < 0 || total <= 0 || warmup < 0 || warmup > total || !(base >= 0.0) ||
        !(min_lr >= 0.0) || !isfinite(base) || !isfinite(min_lr))
        return NAN;
    if (step < warmup)
        return base * (double)(step + 1) / (double)warmup;
    if (step >= total)
        return min_lr;
    double t = (double)(step - warmup), T = (double)(total - warmup);
    return min_lr + (base - min_lr) * (1.0 + cos(M_PI * t / T)) / 2.0;
}
