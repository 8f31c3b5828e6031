/* bench_probe: the "matmul limit" of one LSTM training step.
 *
 * Times BLIS alone (bli_sgemm / bli_dgemm, typed API) on exactly the matrix products a
 * minimal fused-layout LSTM training step needs (kernel (I, 4H), recurrent_kernel (H, 4H),
 * last h -> Dense(1)), with the shapes and the row-major strided layout seqgrad uses. No
 * activations, no elementwise work, no autograd: a seqgrad step cannot be faster than this
 * (with the same BLIS), so bench_lstm's time divided by this one says how much of a step is
 * overhead outside the products.
 *
 * The products of one step (x is (B, T, I) batch-major, viewed as (B*T, I); h_0 = 0, so
 * step 0 has no recurrent product):
 *   forward   xk  = x @ kernel                  (B*T, I) @ (I, 4H)         once
 *             zr_t = h_{t-1} @ rk               (B, H) @ (H, 4H)           T-1 times
 *             yhat = h_T @ wd                   (B, H) @ (H, 1)            once
 *   backward  dwd += h_T^T @ dyhat              (H, B) @ (B, 1)            once
 *             dh_T = dyhat @ wd^T               (B, 1) @ (1, H)            once
 *             dh_{t-1} = dz_t @ rk^T            (B, 4H) @ (4H, H)          T-1 times
 *             drk += h_{t-1}^T @ dz_t           (H, B) @ (B, 4H), beta 1   T-1 times
 *             dkernel += x^T @ dZ               (I, B*T) @ (B*T, 4H)       once
 * Transposes are strided views of the row-major operands (no copies), as in seqgrad. Each
 * step's outputs (zr_t, dz_t, h_t, dh_t) live in their own buffers, as in seqgrad's arena,
 * so the cache footprint is that of a real step.
 *
 * --kernels seqgrad runs the same products through seqgrad's own product dispatch
 * (sg__gemm: BLIS, or seqgrad's register-blocked kernel where that is faster, as in a
 * step), with dh_{t-1} on a row-major copy of rk^T made once per step (counted in "dh"), as
 * seqgrad's backward does for products of 48^3 multiply-adds and more. That is the matmul
 * time a seqgrad step really contains; the default (--kernels blis) is BLIS alone.
 *
 * Prints one JSON line: config, dims, dtype, threads, reps, median and minimum ms of the
 * products of one step, GFLOP/s from the actual FLOPs of these products and from the
 * nominal formula bench_lstm uses (3 x the forward products of all T steps), the BLIS
 * sub-configuration and the median ms of each group of products. The active BLIS
 * sub-configuration also goes to stderr; BLIS_ARCH_TYPE=<number> overrides it (see
 * bench/README.md).
 *
 *   bench_probe --config tiny|small|medium|large --dtype f32|f64 --threads N --reps N
 *               [--kernels blis|seqgrad]
 */
#define _POSIX_C_SOURCE 200809L

#include <blis.h> /* found with -isystem: no warnings from its inline code */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autograd/ops.h" /* sg__gemm, seqgrad's internal product dispatch */
#include "bench_common.h"
#include "seqgrad.h"

/* --kernels seqgrad: BLIS 0.9's typed gemm signature over sg__gemm (alpha is always 1 and
 * beta 0 or 1 here, i.e. C = A @ B or C += A @ B). */
static bool g_seqgrad_kernels = false;
#define DEF_SG_GEMM(elem, NAME, DT)                                                                \
    static void NAME(trans_t ta, trans_t tb, dim_t m, dim_t n, dim_t k, elem *alpha, elem *a,      \
                     inc_t rsa, inc_t csa, elem *b, inc_t rsb, inc_t csb, elem *beta, elem *c,     \
                     inc_t rsc, inc_t csc) {                                                       \
        (void)ta, (void)tb, (void)alpha;                                                           \
        sg__gemm(DT, m, n, k, a, rsa, csa, b, rsb, csb, c, rsc, csc, *beta != 0);                  \
    }
DEF_SG_GEMM(float, sg_sgemm, SG_F32)
DEF_SG_GEMM(double, sg_dgemm, SG_F64)
#define GEMM_OF(BLIS_FN, SG_FN) (g_seqgrad_kernels ? SG_FN : BLIS_FN)

/* The groups of products, timed separately (the JSON reports each group's median). */
enum { P_XK, P_REC, P_DENSE, P_DH, P_DRK, P_DKERNEL, NPARTS };
static const char *part_names[NPARTS] = {"xk", "rec_fwd", "dense", "dh", "drk", "dkernel"};

/* Uniform values in [-0.5, 0.5): keeps every product far from overflow and denormals. */
static uint64_t g_seed = 42;
static double urand(void) {
    g_seed = g_seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(g_seed >> 11) * 0x1.0p-53 - 0.5;
}

/* One step's products for element type elem with the BLIS typed gemm GEMM. All buffers are
 * row-major; sizes (in elements):
 *   x (B, T, I)       kernel (I, 4H)    rk (H, 4H)        wd (H, 1)
 *   xk (B*T, 4H)      zr (T, B, 4H)     h (T, B, H)       yhat, dyhat (B, 1)
 *   dz (T, B, 4H)     dZ (B*T, 4H)      dh (T, B, H)      dwd (H, 1)
 *   drk (H, 4H)       dkernel (I, 4H)
 * zr[t], dz[t], h[t], dh[t] belong to time step t (0-based); h[t] is h_{t+1} of the
 * comment at the top (h_0 = 0 is not stored). part[] receives the seconds per group. */
#define DEF_STEP(elem, BLIS_GEMM, SG_GEMM, SUF)                                                    \
    typedef struct {                                                                               \
        elem *x, *kernel, *rk, *wd, *xk, *zr, *h, *yhat, *dyhat, *dz, *dZ, *dh, *dwd, *drk,        \
            *dkernel, *rkT;                                                                        \
    } bufs_##SUF;                                                                                  \
                                                                                                   \
    static void step_##SUF(const bench_config *c, bufs_##SUF *m, double part[NPARTS]) {            \
        const dim_t B = (dim_t)c->B, S = (dim_t)c->T, I = (dim_t)c->I, H = (dim_t)c->H, G = 4 * H; \
        elem one = 1, zero = 0;                                                                    \
        __typeof__(&BLIS_GEMM) GEMM = GEMM_OF(BLIS_GEMM, SG_GEMM);                                 \
        double t0 = bench_now(), t1;                                                               \
        for (int p = 0; p < NPARTS; p++)                                                           \
            part[p] = 0;                                                                           \
        /* x (B*T, I) @ kernel (I, 4H) -> xk (B*T, 4H): all steps' input projections. */           \
        GEMM(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (B * S), G, I, &one, m->x, I, 1, m->kernel, G,  \
             1, &zero, m->xk, G, 1);                                                               \
        t1 = bench_now(), part[P_XK] += t1 - t0, t0 = t1;                                          \
        /* h_{t-1} (B, H) @ rk (H, 4H) -> zr_t (B, 4H), t = 1 .. T-1. */                           \
        for (dim_t t = 1; t < S; t++)                                                              \
            GEMM(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, B, G, H, &one, m->h + (t - 1) * B * H, H,   \
                 1, m->rk, G, 1, &zero, m->zr + t * B * G, G, 1);                                  \
        t1 = bench_now(), part[P_REC] += t1 - t0, t0 = t1;                                         \
        /* Dense(1): yhat = h_T @ wd, (B, H) @ (H, 1); dwd += h_T^T @ dyhat, (H, B) @ (B, 1);      \
         * dh_T = dyhat @ wd^T, (B, 1) @ (1, H). */                                                \
        elem *hT = m->h + (S - 1) * B * H, *dhT = m->dh + (S - 1) * B * H;                         \
        GEMM(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, B, 1, H, &one, hT, H, 1, m->wd, 1, 1, &zero,    \
             m->yhat, 1, 1);                                                                       \
        GEMM(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, H, 1, B, &one, hT, 1, H, m->dyhat, 1, 1, &one,  \
             m->dwd, 1, 1);                                                                        \
        GEMM(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, B, H, 1, &one, m->dyhat, 1, 1, m->wd, 1, 1,     \
             &zero, dhT, H, 1);                                                                    \
        t1 = bench_now(), part[P_DENSE] += t1 - t0, t0 = t1;                                       \
        /* Backward through time, t = T-1 .. 1: dh_{t-1} = dz_t (B, 4H) @ rk^T (4H, H), with       \
         * rk^T the view (rs 1, cs 4H); drk += h_{t-1}^T (H, B) @ dz_t (B, 4H), with h^T the       \
         * view (rs 1, cs H). */                                                                   \
        elem *rkt = m->rk; /* rk^T (4H, H): the strided view, or seqgrad's copy */                 \
        inc_t rkt_rs = 1, rkt_cs = G;                                                              \
        if (g_seqgrad_kernels && S > 1 && B * H * G >= SG_MATMUL_SMALL) {                          \
            for (dim_t i = 0; i < H; i++)                                                          \
                for (dim_t j = 0; j < G; j++)                                                      \
                    m->rkT[j * H + i] = m->rk[i * G + j];                                          \
            rkt = m->rkT, rkt_rs = H, rkt_cs = 1;                                                  \
        }                                                                                          \
        for (dim_t t = S - 1; t >= 1; t--) {                                                       \
            GEMM(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, B, H, G, &one, m->dz + t * B * G, G, 1,     \
                 rkt, rkt_rs, rkt_cs, &zero, m->dh + (t - 1) * B * H, H, 1);                       \
            t1 = bench_now(), part[P_DH] += t1 - t0, t0 = t1;                                      \
            GEMM(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, H, G, B, &one, m->h + (t - 1) * B * H, 1,   \
                 H, m->dz + t * B * G, G, 1, &one, m->drk, G, 1);                                  \
            t1 = bench_now(), part[P_DRK] += t1 - t0, t0 = t1;                                     \
        }                                                                                          \
        /* dkernel += x^T (I, B*T) @ dZ (B*T, 4H), x^T the view (rs 1, cs I). */                   \
        GEMM(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, I, G, (B * S), &one, m->x, 1, I, m->dZ, G, 1,   \
             &one, m->dkernel, G, 1);                                                              \
        t1 = bench_now(), part[P_DKERNEL] += t1 - t0;                                              \
    }                                                                                              \
                                                                                                   \
    static int run_##SUF(const bench_config *c, int64_t reps, double *ms,                          \
                         double *part_ms[NPARTS]) {                                                \
        const int64_t B = c->B, S = c->T, I = c->I, H = c->H, G = 4 * H;                           \
        bufs_##SUF m;                                                                              \
        elem **all[] = {&m.x,     &m.kernel, &m.rk, &m.wd, &m.xk,  &m.zr,  &m.h,       &m.yhat,    \
                        &m.dyhat, &m.dz,     &m.dZ, &m.dh, &m.dwd, &m.drk, &m.dkernel, &m.rkT};    \
        const int64_t n[] = {B * S * I, I * G, H * G, H,         B * S * G, S * B * G,             \
                             S * B * H, B,     B,     S * B * G, B * S * G, S * B * H,             \
                             H,         H * G, I * G, G * H};                                      \
        int ok = 1;                                                                                \
        for (size_t k = 0; k < sizeof n / sizeof n[0]; k++) {                                      \
            *all[k] = malloc((size_t)n[k] * sizeof(elem));                                         \
            if (!*all[k])                                                                          \
                ok = 0;                                                                            \
            else                                                                                   \
                for (int64_t e = 0; e < n[k]; e++)                                                 \
                    (*all[k])[e] = (elem)urand();                                                  \
        }                                                                                          \
        if (ok) {                                                                                  \
            double part[NPARTS];                                                                   \
            for (int64_t r = -(reps / 10 + 1); r < reps; r++) { /* warm-up first */                \
                step_##SUF(c, &m, part);                                                           \
                if (r < 0)                                                                         \
                    continue;                                                                      \
                ms[r] = 0;                                                                         \
                for (int p = 0; p < NPARTS; p++) {                                                 \
                    part_ms[p][r] = part[p] * 1e3;                                                 \
                    ms[r] += part[p] * 1e3;                                                        \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (size_t k = 0; k < sizeof n / sizeof n[0]; k++)                                        \
            free(*all[k]);                                                                         \
        return ok;                                                                                 \
    }

DEF_STEP(float, bli_sgemm, sg_sgemm, f32)
DEF_STEP(double, bli_dgemm, sg_dgemm, f64)

static void usage(FILE *f) {
    fprintf(f, "usage: bench_probe [--config tiny|small|medium|large] [--dtype f32|f64]\n"
               "                   [--threads N] [--reps N] [--kernels blis|seqgrad]\n"
               "The environment variable BLIS_ARCH_TYPE=<id> selects a BLIS sub-configuration\n"
               "(only those built into the library run; see bench/README.md):\n");
    for (int id = 0; id < BLIS_NUM_ARCHS; id++)
        fprintf(f, "%s%d %s", id % 6 ? ", " : id ? ",\n  " : "  ", id, bli_arch_string((arch_t)id));
    fprintf(f, "\n");
}

int main(int argc, char **argv) {
    const bench_config *cfg = &bench_configs[0];
    int f64 = 0, threads = 1;
    int64_t reps = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--config")) {
            cfg = bench_find_config(v);
        } else if (!strcmp(a, "--dtype") && (!strcmp(v, "f32") || !strcmp(v, "f64"))) {
            f64 = !strcmp(v, "f64");
        } else if (!strcmp(a, "--threads") && atoi(v) > 0) {
            threads = atoi(v);
        } else if (!strcmp(a, "--reps") && atoll(v) > 0) {
            reps = atoll(v);
        } else if (!strcmp(a, "--kernels") && (!strcmp(v, "blis") || !strcmp(v, "seqgrad"))) {
            g_seqgrad_kernels = !strcmp(v, "seqgrad");
        } else {
            cfg = NULL;
        }
        if (!cfg) {
            fprintf(stderr, "bench_probe: bad option %s %s\n", a, v);
            usage(stderr);
            return 2;
        }
    }
    if (reps < 0)
        reps = cfg->steps;

    /* bli_init() before bli_arch_query_id(): BLIS 0.9 reads BLIS_ARCH_TYPE on the first
     * query and looks the requested context up in the gks, which bli_init() fills; querying
     * first aborts with "Accessed uninitialized context in gks". */
    const char *env = getenv("BLIS_ARCH_TYPE");
    bool user_arch = env != NULL;
    /* seqgrad's own BLIS setup first (its kernel choice when BLIS_ARCH_TYPE is unset), so
     * the probe runs the kernels a seqgrad step runs. */
    sg_set_num_threads(threads);
    bli_init();
    arch_t arch = bli_arch_query_id();
    env = getenv("BLIS_ARCH_TYPE");
    fprintf(stderr, "bench_probe: BLIS %s, sub-configuration %d '%s'%s%s%s\n",
            bli_info_get_version_str(), (int)arch, bli_arch_string(arch),
            user_arch ? " (BLIS_ARCH_TYPE="
            : env     ? " (seqgrad's choice: BLIS_ARCH_TYPE="
                      : " (auto-detected)",
            env ? env : "", env ? ")" : "");
    bli_thread_set_num_threads(threads);

    double *ms = malloc((size_t)reps * sizeof *ms);
    double *part_ms[NPARTS];
    int ok = ms != NULL;
    for (int p = 0; p < NPARTS; p++) {
        part_ms[p] = malloc((size_t)reps * sizeof *part_ms[p]);
        ok = ok && part_ms[p];
    }
    if (ok)
        ok = f64 ? run_f64(cfg, reps, ms, part_ms) : run_f32(cfg, reps, ms, part_ms);
    if (!ok) {
        fprintf(stderr, "bench_probe: out of memory\n");
        return 1;
    }

    const double B = (double)cfg->B, T = (double)cfg->T, I = (double)cfg->I, H = (double)cfg->H;
    /* Actual FLOPs of the products above: xk and dkernel once each, the three recurrent
     * products T-1 times, the three Dense products. */
    double actual = 2 * (2 * B * T * I * 4 * H) + 3 * (T - 1) * (2 * B * H * 4 * H) + 6 * B * H;
    /* bench_lstm's nominal count: 3 x the forward products of all T steps. */
    double nominal = 3.0 * (2.0 * B * T * (I + H) * 4 * H + 2.0 * B * H);
    qsort(ms, (size_t)reps, sizeof *ms, bench_cmp_double);
    double med = ms[reps / 2], mn = ms[0];
    printf("{\"config\":\"%s\",\"B\":%lld,\"T\":%lld,\"I\":%lld,\"H\":%lld,\"impl\":\"%s\","
           "\"kernels\":\"%s\",\"dtype\":\"%s\",\"threads\":%d,\"reps\":%lld,\"matmul_ms_median\":%"
           ".6f,"
           "\"matmul_ms_min\":%.6f,\"gflops_actual\":%.3f,\"gflops_nominal\":%.3f,"
           "\"blis_arch\":\"%s\",\"parts_ms_median\":{",
           cfg->name, (long long)cfg->B, (long long)cfg->T, (long long)cfg->I, (long long)cfg->H,
           g_seqgrad_kernels ? "probe-seqgrad" : "probe", g_seqgrad_kernels ? "seqgrad" : "blis",
           f64 ? "f64" : "f32", threads, (long long)reps, med, mn, actual / (med * 1e-3) / 1e9,
           nominal / (med * 1e-3) / 1e9, bli_arch_string(arch));
    for (int p = 0; p < NPARTS; p++) {
        qsort(part_ms[p], (size_t)reps, sizeof *part_ms[p], bench_cmp_double);
        printf("%s\"%s\":%.6f", p ? "," : "", part_names[p], part_ms[p][reps / 2]);
        free(part_ms[p]);
    }
    printf("}}\n");
    free(ms);
    bli_finalize();
    return 0;
}
