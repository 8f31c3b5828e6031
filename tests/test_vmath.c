/* Check tests for tensor/vmath.c: every kernel against libm, on every ISA this CPU supports.
 *
 * References:
 *  - float32: libm's expf / logf / tanhf; sigmoid as 1/(1+expl(-x)) in long double.
 *  - float64: libm's long double functions (expl / logl / tanhl, sigmoid in long double),
 *    rounded to double. glibc's double tanh is itself documented at up to 2 ULP, so checking
 *    a 1-ULP kernel against it with a 2-ULP budget could fail on a correct kernel; the long
 *    double reference is within a hair of correctly rounded.
 *
 * Tolerances (see close_f32 / close_f64):
 *  - NaN must give NaN, an infinity must give the same infinity exactly, and an exact zero
 *    result must be matched by a zero of the same sign (tanh(-0) = -0, log(1) = +0).
 *  - float64: at most 2 ULP (distance between the ordered integer representations).
 *  - float32: relative error at most 1e-6.
 *  - Tiny results: when the reference is subnormal (|ref| < FLT_MIN / DBL_MIN) relative
 *    error means nothing (a subnormal has fewer significant bits, and sigmoid's
 *    1/(1+exp(-x)) is exactly 0 once exp(-x) overflows while the true value is ~1e-39),
 *    so an absolute error of at most 1e-37 (float32) / 1e-307 (float64) is accepted.
 */
#include "tensor/vmath.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cksuite.h"

/* ---- ISAs ------------------------------------------------------------------------------ */

static const char *const k_isas[] = {"avx512f", "avx2", "sse4", "scalar"};
#define N_ISAS ((int)(sizeof k_isas / sizeof k_isas[0]))

/* What the CPU supports, determined independently of the library. */
static int cpu_has(const char *isa) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (strcmp(isa, "avx512f") == 0)
        return __builtin_cpu_supports("avx512f") != 0;
    if (strcmp(isa, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(isa, "sse4") == 0)
        return __builtin_cpu_supports("sse4.1") != 0;
#endif
    return strcmp(isa, "scalar") == 0;
}

static const char *best_isa(void) {
    for (int i = 0; i < N_ISAS; i++)
        if (cpu_has(k_isas[i]))
            return k_isas[i];
    return "scalar";
}

/* Switch the library to ISA number i. Returns 0 if the CPU does not support it (the caller
 * then skips), after checking that the library refuses it too. */
static int use_isa(int i) {
    const char *isa = k_isas[i];
    if (!cpu_has(isa)) {
        ck_assert_int_eq(sg_vmath_force_isa(isa), -1);
        return 0;
    }
    ck_assert_int_eq(sg_vmath_force_isa(isa), 0);
    ck_assert_str_eq(sg_vmath_isa(), isa);
    return 1;
}

/* ---- inputs -------------------------------------------------------------------------------
 * One pool per precision: special values first, then deterministic pseudo-random values.
 * Every kernel sees the whole pool at every length, chopped into consecutive chunks, so each
 * special value lands in the vector body for some lengths and in the tail for others. */

static uint64_t g_rng = 0x9E3779B97F4A7C15u;

static uint64_t rng_next(void) { /* xorshift64* */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1Du;
}

static double rng_uniform(double lo, double hi) { /* [lo, hi) */
    return lo + (hi - lo) * ((double)(rng_next() >> 11) * 0x1p-53);
}

static const float k_special_f32[] = {
    0.0f,   -0.0f,   INFINITY,     -INFINITY,     NAN,    -NAN,       FLT_MIN, -FLT_MIN,
    1e-40f, -1e-40f, FLT_TRUE_MIN, -FLT_TRUE_MIN, 1e-30f, -1e-30f,    1e-7f,   -1e-7f,
    1.0f,   -1.0f,   0.5f,         -0.5f,         2.0f,   0.6931472f, 20.0f,   -20.0f,
    25.0f,  -25.0f,  87.0f,        -87.0f,        88.0f,  -88.0f,     88.72f,  -88.72f,
    89.0f,  -89.0f,  100.0f,       -100.0f,       103.9f, -103.9f,    104.0f,  -104.0f,
    1e4f,   -1e4f,   FLT_MAX,      -FLT_MAX,      9.0f,   -9.0f,      0.625f,  -0.625f,
};

static const double k_special_f64[] = {
    0.0,     -0.0,     INFINITY, -INFINITY, NAN,    -NAN,    DBL_MIN, -DBL_MIN,
    1e-310,  -1e-310,  4.9e-324, -4.9e-324, 1e-300, -1e-300, 1e-30,   -1e-30,
    1e-16,   -1e-16,   1.0,      -1.0,      0.5,    -0.5,    2.0,     0.6931471805599453,
    20.0,    -20.0,    25.0,     -25.0,     88.0,   -88.0,   100.0,   -100.0,
    700.0,   -700.0,   709.78,   -709.78,   710.0,  -710.0,  740.0,   -740.0,
    745.0,   -745.0,   746.0,    -746.0,    1e4,    -1e4,    DBL_MAX, -DBL_MAX,
    19.0625, -19.0625, 0.625,    -0.625,
};

#define POOL_RANDOM 1200
#define N_SPECIAL_F32 (sizeof k_special_f32 / sizeof k_special_f32[0])
#define N_SPECIAL_F64 (sizeof k_special_f64 / sizeof k_special_f64[0])
#define POOL_F32 (N_SPECIAL_F32 + POOL_RANDOM)
#define POOL_F64 (N_SPECIAL_F64 + POOL_RANDOM)

static float g_pool_f32[POOL_F32];
static double g_pool_f64[POOL_F64];

static void build_pools(void) {
    g_rng = 0x9E3779B97F4A7C15u;
    memcpy(g_pool_f32, k_special_f32, sizeof k_special_f32);
    memcpy(g_pool_f64, k_special_f64, sizeof k_special_f64);
    for (size_t i = 0; i < POOL_RANDOM; i++) {
        double f, d;
        switch (i % 4) {
        case 0: /* the common range of activations */
        case 1:
            f = rng_uniform(-30, 30);
            d = rng_uniform(-30, 30);
            break;
        case 2: /* up to and past exp's overflow / underflow */
            f = rng_uniform(-110, 110);
            d = rng_uniform(-760, 760);
            break;
        default: /* positive, any binade: log's whole domain, subnormals included */
            f = ldexp(rng_uniform(1, 2), (int)(rng_next() % 277) - 150);
            d = ldexp(rng_uniform(1, 2), (int)(rng_next() % 2099) - 1075);
            break;
        }
        g_pool_f32[N_SPECIAL_F32 + i] = (float)f;
        g_pool_f64[N_SPECIAL_F64 + i] = d;
    }
}

static const size_t k_lengths[] = {0, 1, 3, 7, 8, 15, 16, 17, 24, 31, 33, 100, 1000};
#define N_LENGTHS (sizeof k_lengths / sizeof k_lengths[0])
/* room for the longest length plus one misaligning element in front and a guard behind */
#define BUF_LEN (1000 + 2)

/* ---- references ---------------------------------------------------------------------- */

static float ref_exp_f32(float x) { return expf(x); }
static float ref_log_f32(float x) { return logf(x); }
static float ref_tanh_f32(float x) { return tanhf(x); }
static float ref_sigmoid_f32(float x) { return (float)(1.0L / (1.0L + expl(-(long double)x))); }
static double ref_exp_f64(double x) { return (double)expl(x); }
static double ref_log_f64(double x) { return (double)logl(x); }
static double ref_tanh_f64(double x) { return (double)tanhl(x); }
static double ref_sigmoid_f64(double x) { return (double)(1.0L / (1.0L + expl(-(long double)x))); }

typedef struct {
    const char *name;
    void (*fn)(size_t, const float *, float *);
    float (*ref)(float);
} kernel_f32;

typedef struct {
    const char *name;
    void (*fn)(size_t, const double *, double *);
    double (*ref)(double);
} kernel_f64;

static const kernel_f32 k_kernels_f32[] = {
    {"sg_vexp_f32", sg_vexp_f32, ref_exp_f32},
    {"sg_vlog_f32", sg_vlog_f32, ref_log_f32},
    {"sg_vtanh_f32", sg_vtanh_f32, ref_tanh_f32},
    {"sg_vsigmoid_f32", sg_vsigmoid_f32, ref_sigmoid_f32},
};

static const kernel_f64 k_kernels_f64[] = {
    {"sg_vexp_f64", sg_vexp_f64, ref_exp_f64},
    {"sg_vlog_f64", sg_vlog_f64, ref_log_f64},
    {"sg_vtanh_f64", sg_vtanh_f64, ref_tanh_f64},
    {"sg_vsigmoid_f64", sg_vsigmoid_f64, ref_sigmoid_f64},
};
#define N_KERNELS 4

/* ---- comparisons --------------------------------------------------------------------- */

/* Distance in ULPs: map each double to an integer that increases with the value (-0 and +0
 * both map to 0), then subtract. Only called on finite values. */
static uint64_t ulp_distance(double a, double b) {
    int64_t ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    if (ia < 0)
        ia = INT64_MIN - ia;
    if (ib < 0)
        ib = INT64_MIN - ib;
    return ia > ib ? (uint64_t)ia - (uint64_t)ib : (uint64_t)ib - (uint64_t)ia;
}

static int close_f32(float got, float ref) {
    if (isnan(ref) || isnan(got))
        return isnan(ref) && isnan(got);
    if (isinf(ref) || isinf(got))
        return got == ref;
    if (ref == 0.0f && got == 0.0f)
        return signbit(ref) == signbit(got);
    if (fabsf(ref) < FLT_MIN)
        return fabsf(got - ref) <= 1e-37f;
    return fabs((double)got - (double)ref) <= 1e-6 * fabs((double)ref);
}

static int close_f64(double got, double ref) {
    if (isnan(ref) || isnan(got))
        return isnan(ref) && isnan(got);
    if (isinf(ref) || isinf(got))
        return got == ref;
    if (ref == 0.0 && got == 0.0)
        return signbit(ref) == signbit(got);
    if (fabs(ref) < DBL_MIN)
        return fabs(got - ref) <= 1e-307;
    return ulp_distance(got, ref) <= 2;
}

/* ---- accuracy: every kernel x every length x the whole pool ------------------------------ */

static void check_kernel_f32(const kernel_f32 *k, int isa) {
    build_pools();
    float *buf = malloc(2 * BUF_LEN * sizeof(float));
    ck_assert_ptr_nonnull(buf);
    for (size_t li = 0; li < N_LENGTHS; li++) {
        size_t n = k_lengths[li];
        /* x and y start one element past 16-byte alignment: unaligned loads/stores. */
        float *x = buf + 1, *y = buf + BUF_LEN + 1;
        for (size_t start = 0; start < POOL_F32; start += n ? n : POOL_F32) {
            for (size_t i = 0; i < n; i++)
                x[i] = g_pool_f32[(start + i) % POOL_F32];
            for (size_t i = 0; i < n; i++)
                y[i] = 12345.0f; /* sentinel, must be overwritten */
            y[n] = -777.0f;      /* guard, must survive */
            k->fn(n, x, y);
            ck_assert_msg(y[n] == -777.0f, "%s [%s] n=%zu wrote past the end", k->name, k_isas[isa],
                          n);
            for (size_t i = 0; i < n; i++) {
                float ref = k->ref(x[i]);
                ck_assert_msg(close_f32(y[i], ref),
                              "%s [%s] n=%zu i=%zu: f(%a = %.9g) = %a (%.9g), libm %a (%.9g)",
                              k->name, k_isas[isa], n, i, (double)x[i], (double)x[i], (double)y[i],
                              (double)y[i], (double)ref, (double)ref);
            }
        }
    }
    free(buf);
}

static void check_kernel_f64(const kernel_f64 *k, int isa) {
    build_pools();
    double *buf = malloc(2 * BUF_LEN * sizeof(double));
    ck_assert_ptr_nonnull(buf);
    for (size_t li = 0; li < N_LENGTHS; li++) {
        size_t n = k_lengths[li];
        double *x = buf + 1, *y = buf + BUF_LEN + 1;
        for (size_t start = 0; start < POOL_F64; start += n ? n : POOL_F64) {
            for (size_t i = 0; i < n; i++)
                x[i] = g_pool_f64[(start + i) % POOL_F64];
            for (size_t i = 0; i < n; i++)
                y[i] = 12345.0;
            y[n] = -777.0;
            k->fn(n, x, y);
            ck_assert_msg(y[n] == -777.0, "%s [%s] n=%zu wrote past the end", k->name, k_isas[isa],
                          n);
            for (size_t i = 0; i < n; i++) {
                double ref = k->ref(x[i]);
                ck_assert_msg(close_f64(y[i], ref),
                              "%s [%s] n=%zu i=%zu: f(%a = %.17g) = %a (%.17g), libm %a "
                              "(%.17g), %llu ULP",
                              k->name, k_isas[isa], n, i, x[i], x[i], y[i], y[i], ref, ref,
                              isfinite(y[i]) && isfinite(ref)
                                  ? (unsigned long long)ulp_distance(y[i], ref)
                                  : 0ull);
            }
        }
    }
    free(buf);
}

/* One test per kernel, looped over the ISAs (_i is the index into k_isas). */
#define ACCURACY_TEST(NAME, CHECK, TABLE, IDX)                                                     \
    START_TEST(NAME) {                                                                             \
        if (use_isa(_i))                                                                           \
            CHECK(&TABLE[IDX], _i);                                                                \
    }                                                                                              \
    END_TEST

ACCURACY_TEST(test_exp_f32, check_kernel_f32, k_kernels_f32, 0)
ACCURACY_TEST(test_log_f32, check_kernel_f32, k_kernels_f32, 1)
ACCURACY_TEST(test_tanh_f32, check_kernel_f32, k_kernels_f32, 2)
ACCURACY_TEST(test_sigmoid_f32, check_kernel_f32, k_kernels_f32, 3)
ACCURACY_TEST(test_exp_f64, check_kernel_f64, k_kernels_f64, 0)
ACCURACY_TEST(test_log_f64, check_kernel_f64, k_kernels_f64, 1)
ACCURACY_TEST(test_tanh_f64, check_kernel_f64, k_kernels_f64, 2)
ACCURACY_TEST(test_sigmoid_f64, check_kernel_f64, k_kernels_f64, 3)

/* ---- float32 tanh against the correctly rounded value ------------------------------------
 * Every 4099th float bit pattern (1.05 million floats: subnormals, both signs, the
 * saturated range, NaNs) against tanhl rounded to float. Every ISA is within 1 ULP (SLEEF's
 * bound, and the AVX-512 kernel's own in vmath.c, checked there on every float); the
 * AVX-512 kernel is correctly rounded for all but 0.14% of floats, so in this sample
 * at most 1% may be off by that ULP. */
START_TEST(test_tanh_f32_rounding) {
    if (!use_isa(_i))
        return;
    enum { N = 4096 };
    static float x[N], y[N];
    uint64_t off = 0, n = 0;
    for (uint64_t base = 0; base < (1ull << 32); base += (uint64_t)N * 4099) {
        int m = 0;
        for (; m < N && base + (uint64_t)m * 4099 < (1ull << 32); m++) {
            uint32_t w = (uint32_t)(base + (uint64_t)m * 4099);
            memcpy(&x[m], &w, sizeof w);
        }
        sg_vtanh_f32((size_t)m, x, y);
        for (int j = 0; j < m; j++, n++) {
            float ref = (float)tanhl((long double)x[j]);
            if (isnan(ref)) {
                ck_assert_msg(isnan(y[j]), "tanh(%a) = %a, not NaN", (double)x[j], (double)y[j]);
                continue;
            }
            int32_t a, b;
            memcpy(&a, &y[j], sizeof a);
            memcpy(&b, &ref, sizeof b);
            ck_assert_msg(a == b || (signbit(y[j]) == signbit(ref) && (a - b == 1 || b - a == 1)),
                          "tanh(%a) = %a [%s], correctly rounded %a", (double)x[j], (double)y[j],
                          k_isas[_i], (double)ref);
            off += a != b;
        }
    }
    ck_assert_uint_eq(n, ((1ull << 32) + 4098) / 4099);
    if (strcmp(k_isas[_i], "avx512f") == 0)
        ck_assert_msg(off <= n / 100, "%llu of %llu not correctly rounded", (unsigned long long)off,
                      (unsigned long long)n);
}
END_TEST

/* ---- exact values the contract promises --------------------------------------------------- */

START_TEST(test_special_values) {
    if (!use_isa(_i))
        return;
    const float xf[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -1.0f, -200.0f, 200.0f, 1e4f};
    const double xd[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, -1.0, -1000.0, 1000.0, 1e4};
    float yf[9];
    double yd[9];

    sg_vexp_f32(9, xf, yf);
    sg_vexp_f64(9, xd, yd);
    ck_assert(yf[0] == 1.0f && yf[1] == 1.0f && yf[2] == INFINITY && yf[3] == 0.0f);
    ck_assert(yd[0] == 1.0 && yd[1] == 1.0 && yd[2] == INFINITY && yd[3] == 0.0);
    ck_assert(!signbit(yf[3]) && !signbit(yd[3]) && isnan(yf[4]) && isnan(yd[4]));

    sg_vlog_f32(9, xf, yf);
    sg_vlog_f64(9, xd, yd);
    ck_assert(yf[0] == -INFINITY && yf[1] == -INFINITY && yf[2] == INFINITY);
    ck_assert(yd[0] == -INFINITY && yd[1] == -INFINITY && yd[2] == INFINITY);
    ck_assert(isnan(yf[3]) && isnan(yf[4]) && isnan(yf[5]) && isnan(yf[6]));
    ck_assert(isnan(yd[3]) && isnan(yd[4]) && isnan(yd[5]) && isnan(yd[6]));

    sg_vtanh_f32(9, xf, yf);
    sg_vtanh_f64(9, xd, yd);
    ck_assert(yf[0] == 0.0f && !signbit(yf[0]) && yf[1] == 0.0f && signbit(yf[1]));
    ck_assert(yd[0] == 0.0 && !signbit(yd[0]) && yd[1] == 0.0 && signbit(yd[1]));
    ck_assert(yf[2] == 1.0f && yf[3] == -1.0f && isnan(yf[4]) && yf[6] == -1.0f);
    ck_assert(yd[2] == 1.0 && yd[3] == -1.0 && isnan(yd[4]) && yd[6] == -1.0);

    sg_vsigmoid_f32(9, xf, yf);
    sg_vsigmoid_f64(9, xd, yd);
    ck_assert(yf[0] == 0.5f && yf[1] == 0.5f && yf[2] == 1.0f && yf[3] == 0.0f);
    ck_assert(yd[0] == 0.5 && yd[1] == 0.5 && yd[2] == 1.0 && yd[3] == 0.0);
    ck_assert(isnan(yf[4]) && isnan(yd[4]));
    /* very negative: exactly +0, no NaN; large: exactly 1 */
    ck_assert(yf[6] == 0.0f && !signbit(yf[6]) && yf[7] == 1.0f && yf[8] == 1.0f);
    ck_assert(yd[6] == 0.0 && !signbit(yd[6]) && yd[7] == 1.0 && yd[8] == 1.0);
}
END_TEST

/* ---- in place, position independence, n == 0 ------------------------------------------- */

/* x == y gives bit-for-bit what x != y gives; and element i's result does not depend on
 * where it sits (body or tail) or on n: computing it alone (n = 1) gives the same bits. */
START_TEST(test_inplace_and_position) {
    if (!use_isa(_i))
        return;
    build_pools();
    const size_t n = 1000;
    float *xf = malloc(n * sizeof *xf), *yf = malloc(n * sizeof *yf), *zf = malloc(n * sizeof *zf);
    double *xd = malloc(n * sizeof *xd), *yd = malloc(n * sizeof *yd), *zd = malloc(n * sizeof *zd);
    ck_assert(xf && yf && zf && xd && yd && zd);
    for (size_t i = 0; i < n; i++) {
        xf[i] = g_pool_f32[i];
        xd[i] = g_pool_f64[i];
    }
    for (int k = 0; k < N_KERNELS; k++) {
        const kernel_f32 *kf = &k_kernels_f32[k];
        const kernel_f64 *kd = &k_kernels_f64[k];
        for (size_t li = 0; li < N_LENGTHS; li++) {
            size_t m = k_lengths[li];
            kf->fn(m, xf, yf);
            memcpy(zf, xf, m * sizeof *zf);
            kf->fn(m, zf, zf);
            ck_assert_msg(memcmp(yf, zf, m * sizeof *zf) == 0, "%s [%s] n=%zu in-place differs",
                          kf->name, k_isas[_i], m);
            kd->fn(m, xd, yd);
            memcpy(zd, xd, m * sizeof *zd);
            kd->fn(m, zd, zd);
            ck_assert_msg(memcmp(yd, zd, m * sizeof *zd) == 0, "%s [%s] n=%zu in-place differs",
                          kd->name, k_isas[_i], m);
        }
        kf->fn(n, xf, yf);
        kd->fn(n, xd, yd);
        for (size_t i = 0; i < n; i++) {
            float one_f;
            double one_d;
            kf->fn(1, &xf[i], &one_f);
            kd->fn(1, &xd[i], &one_d);
            ck_assert_msg(memcmp(&one_f, &yf[i], sizeof one_f) == 0,
                          "%s [%s] x[%zu] = %a: alone %a, in array %a", kf->name, k_isas[_i], i,
                          (double)xf[i], (double)one_f, (double)yf[i]);
            ck_assert_msg(memcmp(&one_d, &yd[i], sizeof one_d) == 0,
                          "%s [%s] x[%zu] = %a: alone %a, in array %a", kd->name, k_isas[_i], i,
                          xd[i], one_d, yd[i]);
        }
    }
    free(xf);
    free(yf);
    free(zf);
    free(xd);
    free(yd);
    free(zd);
}
END_TEST

START_TEST(test_zero_length) {
    if (!use_isa(_i))
        return;
    float xf = 1.0f, yf = 42.0f;
    double xd = 1.0, yd = 42.0;
    for (int k = 0; k < N_KERNELS; k++) {
        k_kernels_f32[k].fn(0, &xf, &yf);
        k_kernels_f64[k].fn(0, &xd, &yd);
        k_kernels_f32[k].fn(0, NULL, NULL); /* not dereferenced */
        k_kernels_f64[k].fn(0, NULL, NULL);
    }
    ck_assert(yf == 42.0f && yd == 42.0);
}
END_TEST

/* ---- dispatch ------------------------------------------------------------------------------ */

START_TEST(test_default_isa_is_best) {
    /* Each test runs in a fresh (forked) process, so this is the lazily chosen default. */
    ck_assert_str_eq(sg_vmath_isa(), best_isa());
    ck_assert_int_eq(sg_vmath_force_isa("scalar"), 0);
    ck_assert_str_eq(sg_vmath_isa(), "scalar");
    ck_assert_int_eq(sg_vmath_force_isa(NULL), 0); /* back to auto */
    ck_assert_str_eq(sg_vmath_isa(), best_isa());
}
END_TEST

START_TEST(test_force_unknown) {
    const char *before = sg_vmath_isa();
    ck_assert_int_eq(sg_vmath_force_isa("bogus"), -1);
    ck_assert_int_eq(sg_vmath_force_isa(""), -1);
    ck_assert_int_eq(sg_vmath_force_isa("AVX2"), -1); /* names are case-sensitive */
    ck_assert_int_eq(sg_vmath_force_isa("sse4.1"), -1);
    ck_assert_str_eq(sg_vmath_isa(), before); /* unchanged */
}
END_TEST

START_TEST(test_force_each) {
    /* use_isa checks force -> 0 and the reported name, or -1 if the CPU lacks it. */
    const char *before = sg_vmath_isa();
    if (!use_isa(_i))
        ck_assert_str_eq(sg_vmath_isa(), before);
}
END_TEST

/* ---- suite ----------------------------------------------------------------------------- */

int main(void) {
    /* 60 s timeouts: generous for sanitizer builds */
    const ck_tcase tcases[] = {
        {"dispatch",
         0,
         {{test_default_isa_is_best, 1}, {test_force_unknown, 1}, {test_force_each, N_ISAS}}},
        {"accuracy",
         60,
         {{test_exp_f32, N_ISAS},
          {test_log_f32, N_ISAS},
          {test_tanh_f32, N_ISAS},
          {test_tanh_f32_rounding, N_ISAS},
          {test_sigmoid_f32, N_ISAS},
          {test_exp_f64, N_ISAS},
          {test_log_f64, N_ISAS},
          {test_tanh_f64, N_ISAS},
          {test_sigmoid_f64, N_ISAS},
          {test_special_values, N_ISAS}}},
        {"layout", 60, {{test_inplace_and_position, N_ISAS}, {test_zero_length, N_ISAS}}},
    };
    return CK_RUN("vmath", tcases, NULL, NULL);
}
