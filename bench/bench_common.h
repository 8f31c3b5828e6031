/* Shared by bench_lstm.c and bench_probe.c: the four configurations (the tiny,
 * small, medium, large), a monotonic clock and the comparison for sorting timings. */
#ifndef SG_BENCH_COMMON_H
#define SG_BENCH_COMMON_H

#include <stdint.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *name;
    int64_t B, T, I, H;
    int64_t steps; /* default repetitions: about 1-2 s per run at one thread */
} bench_config;

static const bench_config bench_configs[] = {
    {"tiny", 2, 3, 5, 4, 20000},
    {"small", 32, 32, 16, 64, 300},
    {"medium", 64, 64, 64, 256, 20},
    {"large", 128, 50, 128, 512, 8},
};

/* The configuration called `name`, or NULL. */
static inline const bench_config *bench_find_config(const char *name) {
    for (size_t k = 0; k < sizeof bench_configs / sizeof bench_configs[0]; k++)
        if (!strcmp(name, bench_configs[k].name))
            return &bench_configs[k];
    return NULL;
}

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
