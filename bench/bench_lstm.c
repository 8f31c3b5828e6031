/* bench_lstm: time one training step of a recurrent regressor (an LSTM by default).
 *
 * A step: zero the gradients, run the recurrent layer over the whole sequence, last h ->
 * Dense(1) -> MSE against a target, backward, SGD update, reset the arena. Prints one JSON
 * line: config, cell, impl, dtype, threads, median and minimum ms per step, GFLOP/s (the
 * matmul FLOPs of forward and backward, nominal: 3 x the forward products), arena bytes per
 * step and peak RSS.
 *
 *   bench_lstm --config tiny|small|medium|large --impl gates|fused --dtype f32|f64
 *              --threads N --steps N [--cell lstm|gru|rnn] [--bidirectional] [--lengths]
 *
 * --cell lstm without --bidirectional or --lengths is sg_lstm (the one-layer LSTM); anything
 * else is sg_rnn: GRU or SimpleRNN cells, both directions (y concatenated, the head reads
 * the last step's 2H), or per-sequence lengths spread evenly over T/2 .. T (right-padded).
 *
 * Under `mpirun -np N` (a build with MPI): data parallelism, B the global batch. Each rank
 * runs its rows (B / N, the first B % N ranks one more) and sg_dist_backward sums the
 * gradients while backward runs; rank 0 prints, adding the ranks, the mean ms per step in
 * backward and in waiting for the sums after it, the buckets started before backward
 * ended, and the ms one blocking allreduce of the gradient bytes takes with nothing to
 * overlap (so hidden = allreduce_ms - wait_ms).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_common.h"
#include "seqgrad.h"

/* The model and the fixed batch, for one step's forward on rows row0.. (any workspace). */
typedef struct {
    bool general;
    sg_lstm *lstm;
    sg_rnn *rnn;
    sg_dense *head;
    sg_tensor *x, *y, *len; /* the whole (local) batch, persistent in workspace 0 */
} bench_model;

/* The mean loss of rows row0 .. row0 + rows - 1: head(last output) against y, MSE. */
static sg_tensor *bench_loss(sg_ctx *ctx, int part, int64_t row0, int64_t rows, void *user) {
    (void)part;
    bench_model *m = user;
    sg_tensor *x = sg_parallel_rows(ctx, m->x, 0, row0, rows), *last;
    if (m->general) {
        sg_rnn_output out;
        if (sg_rnn_forward(ctx, m->rnn, x, sg_parallel_rows(ctx, m->len, 0, row0, rows), NULL, NULL,
                           &out))
            return NULL;
        last = out.y;
    } else {
        sg_lstm_output out;
        if (sg_lstm_forward(ctx, m->lstm, x, NULL, NULL, &out))
            return NULL;
        last = out.y;
    }
    return sg_mse_loss(ctx, sg_dense_forward(ctx, m->head, last),
                       sg_parallel_rows(ctx, m->y, 0, row0, rows));
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_lstm [--config tiny|small|medium|large] [--impl gates|fused]\n"
               "                  [--dtype f32|f64] [--threads N] [--steps N]\n"
               "                  [--cell lstm|gru|rnn] [--bidirectional] [--lengths]\n");
}

int main(int argc, char **argv) {
    if (sg_dist_init(&argc, &argv))
        return 1;
    const bench_config *cfg = &bench_configs[0];
    sg_lstm_impl impl = SG_LSTM_FUSED;
    sg_dtype dt = SG_F32;
    int threads = 1;
    int64_t steps = -1;
    sg_cell_kind cell = SG_CELL_LSTM;
    bool bidir = false, varlen = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--bidirectional") || !strcmp(a, "--lengths")) {
            *(!strcmp(a, "--lengths") ? &varlen : &bidir) = true;
            continue;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--config")) {
            cfg = bench_find_config(v);
        } else if (!strcmp(a, "--impl") && (!strcmp(v, "gates") || !strcmp(v, "fused"))) {
            impl = !strcmp(v, "gates") ? SG_LSTM_GATES : SG_LSTM_FUSED;
        } else if (!strcmp(a, "--dtype") && (!strcmp(v, "f32") || !strcmp(v, "f64"))) {
            dt = !strcmp(v, "f64") ? SG_F64 : SG_F32;
        } else if (!strcmp(a, "--threads") && atoi(v) > 0) {
            threads = atoi(v);
        } else if (!strcmp(a, "--steps") && atoll(v) > 0) {
            steps = atoll(v);
        } else if (!strcmp(a, "--cell") &&
                   (!strcmp(v, "lstm") || !strcmp(v, "gru") || !strcmp(v, "rnn"))) {
            cell = !strcmp(v, "gru") ? SG_CELL_GRU : !strcmp(v, "rnn") ? SG_CELL_RNN : SG_CELL_LSTM;
        } else {
            cfg = NULL;
        }
        if (!cfg) {
            fprintf(stderr, "bench_lstm: bad option %s %s\n", a, v);
            usage(stderr);
            return 2;
        }
    }
    if (steps < 0)
        steps = cfg->steps;
    /* This rank's rows of the global batch (all of them in one process). */
    const int ranks = sg_dist_size(), rank = sg_dist_rank();
    const int64_t Bg = cfg->B, r0 = rank * (Bg / ranks) + (rank < Bg % ranks ? rank : Bg % ranks);
    const int64_t B = Bg / ranks + (rank < Bg % ranks), T = cfg->T, I = cfg->I, H = cfg->H;
    if (B == 0) {
        fprintf(stderr, "bench_lstm: %d ranks for a batch of %lld\n", ranks, (long long)Bg);
        sg_dist_abort(2);
    }

    sg_ctx *ctx = sg_ctx_new((size_t)64 << 20);
    sg_rng rng;
    sg_rng_seed(&rng, 42);
    sg_store *store = sg_store_new();                             /* the model's parameters */
    const bool general = cell != SG_CELL_LSTM || bidir || varlen; /* sg_rnn, else sg_lstm */
    const int64_t D = bidir ? 2 : 1, G = cell == SG_CELL_LSTM ? 4 : cell == SG_CELL_GRU ? 3 : 1;
    sg_lstm *lstm = NULL;
    sg_rnn *rnn = NULL;
    if (general) {
        sg_rnn_options ro = sg_rnn_defaults(cell, I, H);
        ro.dtype = dt;
        ro.impl = impl;
        ro.bidirectional = bidir;
        ro.return_sequences = false; /* each sequence's last valid output */
        rnn = sg_rnn_new(ctx, store, &ro, "rnn", &rng);
    } else {
        sg_lstm_options o = sg_lstm_defaults(I, H);
        o.dtype = dt;
        lstm = sg_lstm_new(ctx, store, impl, &o, "lstm", &rng);
    }
    sg_dense *head = sg_dense_new(ctx, store, dt, D * H, 1, true, SG_ACT_LINEAR, "dense", &rng);
    sg_param_list params = {0};
    sg_params_from_store(&params, store);
    sg_optim *opt = sg_sgd_new(ctx, &params, (sg_sgd_options){.lr = 1e-3});
    /* Fixed inputs and targets, persistent so that the step measures only the model. */
    sg_tensor *x = sg_persistent_new(ctx, dt, SG_SHAPE(B, T, I));
    sg_tensor *y = sg_persistent_new(ctx, dt, SG_SHAPE(B, 1));
    /* lengths spread evenly over T/2 .. T: on average 3/4 of the steps are real */
    sg_tensor *len = varlen ? sg_persistent_new(ctx, SG_I64, SG_SHAPE(B)) : NULL;
    for (int64_t b = 0; len && b < B; b++)
        sg_set_flat(len, b, (double)(T - (Bg > 1 ? (r0 + b) * (T / 2) / (Bg - 1) : 0)));
    sg_dist_reducer *red = sg_dist_reducer_new(ctx, store, 0);
    if (!opt || !x || !y || (varlen && !len) || !red) {
        fprintf(stderr, "bench_lstm: %s\n", sg_ctx_error(ctx));
        return 1;
    }
    sg_init_tensor(ctx, x, (sg_init){SG_INIT_RANDOM_NORMAL, 0, 1}, &rng);
    sg_init_tensor(ctx, y, (sg_init){SG_INIT_RANDOM_NORMAL, 0, 1}, &rng);

    bench_model m = {general, lstm, rnn, head, x, y, len};
    /* --threads N: data parallelism over the threads that pay (sg_threads_for: tiny runs on
     * one), BLIS single-threaded in each; under mpirun, one thread per rank. */
    const double flops =
        3.0 * (2.0 * (double)(D * B * T * (I + H) * G * H) + 2.0 * (double)(B * D * H));
    const int used = ranks > 1 ? 1 : sg_threads_for(flops, B, threads);
    sg_parallel *par = used > 1 ? sg_parallel_new(ctx, store, used) : NULL;
    if (used > 1 && !par) {
        fprintf(stderr, "bench_lstm: %s\n", sg_ctx_error(ctx));
        return 1;
    }
    const sg_parallel_fns fns = {bench_loss, NULL};
    int64_t warm = steps / 10 + 1;
    double *ms = malloc((size_t)steps * sizeof *ms);
    size_t arena = 0;
    for (int64_t s = -warm; s < steps; s++) {
        double t0 = bench_now();
        sg_store_zero_grad(store);
        if (par) {
            if (sg_parallel_step(par, B, &fns, &m, NULL) || sg_optim_step(opt))
                break;
            if (s == 0) /* workspace 0's part, as an estimate of one workspace's */
                arena = sg_ctx_arena_peak(ctx);
        } else {
            sg_tensor *loss = bench_loss(ctx, 0, 0, B, &m);
            if (!loss || sg_dist_backward(ctx, red, loss, (double)B / (double)Bg) ||
                sg_optim_step(opt))
                break;
            if (s == -1)
                sg_dist_reducer_reset_stats(red); /* count the timed steps only */
            if (s == 0)
                arena = sg_ctx_arena_used(ctx);
            sg_ctx_reset(ctx);
        }
        if (s >= 0)
            ms[s] = (bench_now() - t0) * 1e3;
    }
    if (sg_ctx_error(ctx)) {
        fprintf(stderr, "bench_lstm: %s\n", sg_ctx_error(ctx));
        sg_dist_abort(1);
    }
    /* One blocking allreduce of as many bytes as the gradients, nothing to hide it behind. */
    sg_dist_stats ds = sg_dist_reducer_stats(red);
    double *buf = calloc((size_t)ds.bytes / sizeof(double) + 1, sizeof(double)), *ar = NULL;
    enum { AR_REPS = 9 };
    double ar_ms[AR_REPS];
    for (int k = 0; ranks > 1 && buf && k < AR_REPS; k++) {
        double t0 = bench_now();
        sg_dist_sum(ctx, buf, (int)(ds.bytes / (int64_t)sizeof(double)));
        ar_ms[k] = (bench_now() - t0) * 1e3;
        ar = ar_ms;
    }
    if (ar)
        qsort(ar_ms, AR_REPS, sizeof *ar_ms, bench_cmp_double);
    free(buf);
    qsort(ms, (size_t)steps, sizeof *ms, bench_cmp_double);
    double med = ms[steps / 2], mn = ms[0];
    /* Nominal matmul FLOPs (flops above): forward 2*B*T*(I+H)*G*H per direction (+ dense),
     * backward twice that; with lengths, counted over all T steps as if none were padding. */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (rank == 0 && ranks > 1) /* the extra fields first: the line still ends like before */
        printf("{\"ranks\":%d,\"backward_ms\":%.6f,\"wait_ms\":%.6f,\"allreduce_ms\":%.6f,"
               "\"grad_bytes\":%lld,\"buckets\":%lld,\"early_buckets_per_step\":%.2f,",
               ranks, ds.backward_s * 1e3 / (double)ds.steps, ds.wait_s * 1e3 / (double)ds.steps,
               ar ? ar_ms[AR_REPS / 2] : 0.0, (long long)ds.bytes, (long long)ds.buckets,
               (double)ds.early_launches / (double)ds.steps);
    if (rank == 0)
        printf("%s\"config\":\"%s\",\"B\":%lld,\"T\":%lld,\"I\":%lld,\"H\":%lld,\"cell\":\"%s\","
               "\"bidirectional\":%s,\"lengths\":%s,\"impl\":\"%s\","
               "\"dtype\":\"%s\",\"threads\":%d,\"threads_used\":%d,\"steps\":%lld,\"median_ms\":%."
               "6f,\"min_ms\":%.6f,"
               "\"gflops\":%.3f,\"arena_bytes_per_step\":%zu,\"peak_rss_kb\":%ld,\"isa\":\"%s\","
               "\"blas\":\"%s\"}\n",
               ranks > 1 ? "" : "{", cfg->name, (long long)Bg, (long long)T, (long long)I,
               (long long)H,
               cell == SG_CELL_GRU   ? "gru"
               : cell == SG_CELL_RNN ? "rnn"
                                     : "lstm",
               bidir ? "true" : "false", varlen ? "true" : "false",
               impl == SG_LSTM_FUSED ? "fused" : "gates", dt == SG_F32 ? "f32" : "f64", threads,
               used, (long long)steps, med, mn, flops / (med * 1e-3) / 1e9, arena, ru.ru_maxrss,
               sg_vmath_isa(), sg_blas_config());
    free(ms);
    sg_parallel_free(par);
    sg_dist_reducer_free(red);
    sg_optim_free(opt);
    sg_params_clear(&params);
    sg_lstm_free(lstm);
    sg_rnn_free(rnn);
    sg_dense_free(head);
    sg_store_free(store);
    sg_ctx_free(ctx);
    sg_dist_finalize();
    return 0;
}
