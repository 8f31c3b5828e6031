/* seqgrad dist: data-parallel training over MPI (Open MPI on Debian: libopenmpi-dev).
 *
 * Every rank (process) holds the whole model and runs forward and backward on its own rows
 * of each global batch; the gradients are then summed over the ranks, each rank's weighted
 * by its share of the batch, so that every rank takes the same optimizer step a single
 * process would take on the whole batch. The sum is started while the backward pass is
 * still running: the store's gradient slab is cut into buckets, and a bucket whose
 * parameters all have their final gradient (sg_backward_ex tells) is reduced with a
 * non-blocking MPI_Iallreduce while the walk goes on with the layers nearer the input
 * (PyTorch DDP's design). A worked example, run as `mpirun -np 4 ./prog`:
 *
 *     if (sg_dist_init(&argc, &argv)) return 1;              // MPI_Init; size 1 without MPI
 *     sg_ctx *ctx = sg_ctx_new(0);
 *     sg_store *model = sg_store_new();
 *     ... build the layers into `model` (every rank the same model) ...
 *     if (sg_dist_check_store(ctx, model) || sg_dist_broadcast_store(ctx, model))
 *         ...                                               // differing models: every rank fails
 *     sg_dist_reducer *red = sg_dist_reducer_new(ctx, model, 0);
 *     for (step ...) {
 *         sg_store_zero_grad(model);
 *         loss = ... forward on this rank's n_local of the batch's n_global rows (mean) ...
 *         sg_dist_backward(ctx, red, loss, (double)n_local / n_global);  // + the allreduce
 *         sg_optim_step(opt);                                // the same step on every rank
 *         sg_ctx_reset(ctx);
 *     }
 *     sg_dist_reducer_free(red);
 *     sg_dist_finalize();
 *
 * Built without MPI (meson -Dmpi=disabled, or libopenmpi-dev missing), the same functions
 * exist and behave as one rank of one: rank 0, size 1, broadcasts and sums leave the data as
 * it is, sg_dist_backward is sg_backward with the weight applied. sg_dist_available tells
 * which build this is; started under mpirun with several ranks, a build without MPI refuses
 * in sg_dist_init rather than letting every process train alone.
 *
 * Errors are reported as everywhere in seqgrad (the context's first error, -1). A rank that
 * fails on its own (a missing file) must not leave the others waiting in a collective call:
 * check with sg_dist_all_ok at the points where ranks agree, and call sg_dist_abort when a
 * rank cannot go on in the middle of a step. Functions are to be called from one thread per
 * process (the thread that called sg_dist_init). */
#ifndef SEQGRAD_DIST_H
#define SEQGRAD_DIST_H

#include <stdbool.h>
#include <stddef.h>

#include "../autograd/autograd.h"

/* True when seqgrad was built with MPI. */
bool sg_dist_available(void);

/* Start MPI (MPI_Init_thread, funneled) when the process was started by an MPI launcher
 * (mpirun sets OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK) and MPI is not running already;
 * errors from MPI calls are then returned, not fatal. A program started without a launcher
 * is one rank of one and MPI is left alone (no start-up cost). Built without MPI: 0, unless
 * started by mpirun with more than one rank, then -1 with a message on stderr. argc/argv
 * may be NULL. 0, or -1 with a message on stderr. */
int sg_dist_init(int *argc, char ***argv);
/* Finalize MPI if sg_dist_init started it (safe to call more than once, or without init). */
void sg_dist_finalize(void);
/* This process's rank in 0..size-1, and the number of ranks (0 and 1 before init). */
int sg_dist_rank(void);
int sg_dist_size(void);
/* Ends every rank with `code` (MPI_Abort); exit(code) without MPI. Does not return. */
_Noreturn void sg_dist_abort(int code);

/* Whether every rank passed ok == true: a collective call, every rank must make it. Lets a
 * rank that failed (a missing file) make all of them stop without hanging. */
bool sg_dist_all_ok(bool ok);
/* Sum n doubles over the ranks, in place (the held-out loss, counts). Collective. 0, or -1
 * with an error in ctx. */
int sg_dist_sum(sg_ctx *ctx, double *v, int n);
/* Rank 0's n bytes into every rank's buf. Collective. 0, or -1 with an error in ctx. */
int sg_dist_broadcast(sg_ctx *ctx, void *buf, size_t n);

/* Every rank's n bytes (n may differ between ranks), concatenated in rank order, into every
 * rank's `all` (room for the sum of the n's). Collective. 0, or -1 with an error in ctx. */
int sg_dist_allgather(sg_ctx *ctx, const void *mine, size_t n, void *all);

/* Check that every rank has the same model: the same parameters, in the same order, with
 * the same names, dtypes and shapes. Collective. 0 on every rank when they agree; otherwise
 * -1 on every rank, with the first difference in the error of every rank's ctx, e.g.
 * "sg_dist_check_store: rank 1's parameter 3 is lstm.kernel float32 (1, 256); rank 0's is
 * lstm.kernel float32 (1, 128)". */
int sg_dist_check_store(sg_ctx *ctx, const sg_store *s);
/* Rank 0's parameter values into every rank's store (one broadcast of the value slab). */
int sg_dist_broadcast_store(sg_ctx *ctx, sg_store *s);
/* Rank 0's values of every tensor of a list (an optimizer's state, sg_optim_state) into the
 * same tensors of every rank; the tensors must be contiguous. Collective. */
int sg_dist_broadcast_list(sg_ctx *ctx, const sg_param_list *list);

/* ---- gradient reduction overlapped with backward -------------------------------------- */
typedef struct sg_dist_reducer sg_dist_reducer;

/* A reducer of the gradients of store s. The slab is cut into buckets of whole parameters
 * of about bucket_bytes (0: 1 MiB; a parameter larger than that is a bucket alone), taken
 * from the last parameter added back to the first, i.e. in about the order backward
 * finishes them. NULL with an error in ctx (out of memory, an empty store). Free with
 * sg_dist_reducer_free (NULL is fine) before the store. Adding parameters to the store after
 * this makes the reducer invalid. */
sg_dist_reducer *sg_dist_reducer_new(sg_ctx *ctx, sg_store *s, size_t bucket_bytes);
void sg_dist_reducer_free(sg_dist_reducer *r);

/* Backward from the scalar `loss`, then every gradient of the store becomes the sum over
 * ranks of weight * (that rank's gradient): with each rank's loss the mean over its n_local
 * rows and weight = n_local / n_global, the mean-loss gradient of the global batch. Each
 * bucket is scaled and its MPI_Iallreduce started as soon as its gradients are final, in a
 * fixed bucket order (the same on every rank); the call returns when all have completed.
 * Collective: every rank calls it once per step. The store's gradients must have been
 * zeroed (or hold what should be summed too); workspaces with private gradients are not
 * supported (-1). 0, or -1 with an error (backward's, or MPI's). A rank whose backward
 * fails still takes part in the reduction (with what it has) so that no rank hangs, and
 * returns -1. With one rank it is sg_backward, then the gradients times the weight: no bucket
 * goes early and no time is measured (the stats count steps only). */
int sg_dist_backward(sg_ctx *ctx, sg_dist_reducer *r, sg_tensor *loss, double weight);

/* What the reducer measured, summed over its calls since creation (or the last reset). */
typedef struct sg_dist_stats {
    int64_t steps;          /* sg_dist_backward calls */
    int64_t buckets;        /* buckets per step */
    int64_t bytes;          /* gradient bytes reduced per step */
    double backward_s;      /* time in backward (with the bucket launches it made); 0 with
                               one rank */
    double wait_s;          /* time after backward until every reduction had completed; 0
                               with one rank */
    int64_t early_launches; /* buckets started before backward had finished; 0 with one
                               rank */
} sg_dist_stats;
sg_dist_stats sg_dist_reducer_stats(const sg_dist_reducer *r);
void sg_dist_reducer_reset_stats(sg_dist_reducer *r);

#endif
