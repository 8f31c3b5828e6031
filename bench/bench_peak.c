/* bench_peak: the machine's float32 FMA peak, the ceiling the "% of peak" figures of
 * bench/README.md divide by. Each thread runs a loop of independent AVX-512 (else AVX2)
 * fused multiply-adds on accumulators that stay in registers: no memory traffic, enough
 * independent chains (12) to cover the FMA latency on two ports.
 *
 *   bench_peak [--threads N] [--seconds S]
 *
 * Prints one JSON line: isa, threads, GFLOP/s per thread (median of 5 runs) and in total. */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

enum { CHAINS = 12 };

/* n iterations of CHAINS FMAs of 16 (AVX-512) or 8 (AVX2) lanes; returns a value that
 * depends on every accumulator, so the compiler keeps the work. */
__attribute__((target("avx512f"))) static float fma_loop_512(int64_t n) {
    __m512 acc[CHAINS], a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < CHAINS; k++)
        acc[k] = _mm512_set1_ps((float)k);
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < CHAINS; k++)
            acc[k] = _mm512_fmadd_ps(acc[k], a, b);
    float s = 0;
    for (int k = 0; k < CHAINS; k++)
        s += _mm512_reduce_add_ps(acc[k]);
    return s;
}
__attribute__((target("avx2,fma"))) static float fma_loop_256(int64_t n) {
    __m256 acc[CHAINS], a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int k = 0; k < CHAINS; k++)
        acc[k] = _mm256_set1_ps((float)k);
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < CHAINS; k++)
            acc[k] = _mm256_fmadd_ps(acc[k], a, b);
    float s = 0, v[8];
    for (int k = 0; k < CHAINS; k++) {
        _mm256_storeu_ps(v, acc[k]);
        for (int j = 0; j < 8; j++)
            s += v[j];
    }
    return s;
}

static int lanes;
static int64_t iters;
static volatile float sink;

static void *worker(void *arg) {
    double *gflops = arg;
    double t0 = bench_now();
    sink = lanes == 16 ? fma_loop_512(iters) : fma_loop_256(iters);
    *gflops = 2.0 * lanes * CHAINS * (double)iters / (bench_now() - t0) / 1e9;
    return NULL;
}

int main(int argc, char **argv) {
    int threads = 1;
    double seconds = 0.5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads") && atoi(argv[i + 1]) > 0)
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds") && atof(argv[i + 1]) > 0)
            seconds = atof(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_peak [--threads N] [--seconds S]\n");
            return 2;
        }
    }
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        lanes = 16;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        lanes = 8;
    else {
        fprintf(stderr, "bench_peak: needs AVX2 and FMA\n");
        return 1;
    }
    /* Size the loop to about `seconds` from a short calibration run. */
    iters = 1 << 20;
    double g0;
    worker(&g0);
    iters = (int64_t)(g0 * 1e9 * seconds / (2.0 * lanes * CHAINS));
    enum { RUNS = 5 };
    double per[RUNS], total[RUNS];
    pthread_t tid[64];
    double g[64];
    if (threads > 64)
        threads = 64;
    for (int r = 0; r < RUNS; r++) {
        for (int t = 0; t < threads; t++)
            pthread_create(&tid[t], NULL, worker, &g[t]);
        total[r] = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            total[r] += g[t];
        }
        per[r] = total[r] / threads;
    }
    qsort(per, RUNS, sizeof *per, bench_cmp_double);
    qsort(total, RUNS, sizeof *total, bench_cmp_double);
    printf("{\"probe\":\"fma_peak\",\"isa\":\"%s\",\"threads\":%d,\"gflops_per_thread\":%.1f,"
           "\"gflops_total\":%.1f}\n",
           lanes == 16 ? "avx512f" : "avx2", threads, per[RUNS / 2], total[RUNS / 2]);
    return 0;
}
