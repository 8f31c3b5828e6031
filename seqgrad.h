/* seqgrad: tensors and reverse-mode automatic differentiation in C, for small sequence
 * models. One include gives the whole library:
 *
 *     #include <seqgrad.h>        // cc prog.c $(pkg-config --cflags --libs seqgrad)
 *
 * A worked example of the whole loop: fit y = 3x - 1 with one weight and one bias.
 *
 *     sg_ctx *ctx = sg_ctx_new(0);                       // a workspace: arena, tape, errors
 *     sg_store *model = sg_store_new();                  // the parameters, in two slabs
 *     sg_tensor *w = sg_store_param(ctx, model, "w", SG_F64, SG_SHAPE(1, 1));
 *     sg_tensor *b = sg_store_param(ctx, model, "b", SG_F64, SG_SHAPE(1));
 *     for (int step = 0; step < 200; step++) {
 *         sg_store_zero_grad(model);                     // grads accumulate: zero them
 *         sg_tensor *x = sg_rand_uniform(ctx, SG_F64, SG_SHAPE(8, 1), -1, 1);
 *         sg_tensor *y = sg_add_scalar(ctx, sg_scale(ctx, x, 3.0), -1.0);
 *         sg_tensor *pred = sg_add(ctx, sg_matmul(ctx, x, w), b);  // ops record a tape
 *         sg_tensor *loss = sg_mse_loss(ctx, pred, y);
 *         if (sg_backward(ctx, loss, NULL)) break;      // walks the tape in reverse
 *         sg_axpy(w, -0.1, w->grad);                     // plain SGD (see optim/ too)
 *         sg_axpy(b, -0.1, b->grad);
 *         sg_ctx_reset(ctx);                             // O(1): frees every temporary
 *     }
 *     if (sg_ctx_error(ctx)) fprintf(stderr, "%s\n", sg_ctx_error(ctx));  // check once
 *     sg_store_free(model);
 *     sg_ctx_free(ctx);
 *
 * Errors propagate like NaN: an op given NULL returns NULL and the context keeps the first
 * error message, so a chain of calls is checked once at the end.
 *
 * Modules: tensor/ (storage, views, creation, random numbers, initializers, printing),
 * autograd/ (the op table, ops with backward, the tape, the parameter store, custom ops,
 * gradcheck, DOT export; docs/engine.md), layers/ (LSTM "gates" and
 * "fused", Dense), optim/ (SGD, Adam, schedules), io/ (safetensors checkpoints), dist/
 * (data-parallel training over MPI; docs/dist.md), parallel/ (every core of one machine:
 * a thread pool and data-parallel steps over threads; docs/threads.md).
 */
#ifndef SEQGRAD_H
#define SEQGRAD_H

#include "tensor/tensor.h"
#include "autograd/autograd.h"
#include "layers/layers.h"
#include "optim/optim.h"
#include "io/io.h"
#include "dist/dist.h"
#include "parallel/parallel.h"

#endif
