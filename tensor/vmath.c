/* Vectorized elementwise math (exp, log, tanh, sigmoid) on SLEEF's 1.0-ULP vector functions
 * (float32 tanh on AVX-512 is seqgrad's own, below: faster, within the same 1-ULP bound;
 * float32 sigmoid on AVX-512 shares its inline exp).
 *
 * Dispatch: the library is compiled with the default (baseline x86-64) flags. Each ISA's
 * loops are separate functions compiled with __attribute__((target(...))), so only the code
 * for the chosen ISA ever executes. One static const table of function pointers per ISA
 * (sg_vmath_impl) lists its eight kernels; g_active points at the table in use. It is set
 * lazily on the first call to the best ISA __builtin_cpu_supports() reports, in order
 * avx512f > avx2 (+ fma, which SLEEF's avx2 build uses) > sse4 (sse4.1) > scalar, with an
 * atomic compare-and-swap so racing first calls agree and sg_vmath_force_isa() can override
 * it at any time. A kernel call costs one atomic load and one indirect call.
 *
 * Tails: the last n % W elements (W = vector width) are copied into a stack vector padded
 * with 1.0 (harmless for every function: no spurious inf/NaN or FP exceptions), run through
 * the same SLEEF vector function and copied back. So every element gets exactly the result
 * the vector body would have given it, independent of n and of its position; no libm.
 *
 * The "scalar" ISA uses SLEEF's scalar _u10 functions (Sleef_expf_u10, ...), so it has the
 * same accuracy guarantees; it is the only ISA on non-x86-64 builds.
 *
 * sleef.h declares the AVX2 and AVX-512 entry points only when the translation unit itself
 * is compiled with -mavx / -mavx512f (#ifdef __AVX__ / __AVX512F__). As this file is built
 * without them, it declares the ones it uses itself under the complementary guards, so the
 * header's own declarations are used whenever it provides them.
 */
#include "vmath.h"

#include <sleef.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SG_VMATH_X86 1
#include <immintrin.h>
#else
#define SG_VMATH_X86 0
#endif

typedef void (*sg_vfn_f32)(size_t n, const float *x, float *y);
typedef void (*sg_vfn_f64)(size_t n, const double *x, double *y);

typedef struct sg_vmath_impl {
    const char *name;
    sg_vfn_f32 exp_f32, log_f32, tanh_f32, sigmoid_f32;
    sg_vfn_f64 exp_f64, log_f64, tanh_f64, sigmoid_f64;
} sg_vmath_impl;

/* ---- scalar (SLEEF scalar functions) -------------------------------------------------- */

static float sigmoid_f32_1(float x) { return 1.0f / (1.0f + Sleef_expf_u10(-x)); }
static double sigmoid_f64_1(double x) { return 1.0 / (1.0 + Sleef_exp_u10(-x)); }

#define SG_SCALAR_LOOP(NAME, T, FN)                                                                \
    static void NAME(size_t n, const T *x, T *y) {                                                 \
        for (size_t i = 0; i < n; i++)                                                             \
            y[i] = FN(x[i]);                                                                       \
    }

SG_SCALAR_LOOP(exp_f32_scalar, float, Sleef_expf_u10)
SG_SCALAR_LOOP(log_f32_scalar, float, Sleef_logf_u10)
SG_SCALAR_LOOP(tanh_f32_scalar, float, Sleef_tanhf_u10)
SG_SCALAR_LOOP(sigmoid_f32_scalar, float, sigmoid_f32_1)
SG_SCALAR_LOOP(exp_f64_scalar, double, Sleef_exp_u10)
SG_SCALAR_LOOP(log_f64_scalar, double, Sleef_log_u10)
SG_SCALAR_LOOP(tanh_f64_scalar, double, Sleef_tanh_u10)
SG_SCALAR_LOOP(sigmoid_f64_scalar, double, sigmoid_f64_1)

static const sg_vmath_impl impl_scalar = {
    .name = "scalar",
    .exp_f32 = exp_f32_scalar,
    .log_f32 = log_f32_scalar,
    .tanh_f32 = tanh_f32_scalar,
    .sigmoid_f32 = sigmoid_f32_scalar,
    .exp_f64 = exp_f64_scalar,
    .log_f64 = log_f64_scalar,
    .tanh_f64 = tanh_f64_scalar,
    .sigmoid_f64 = sigmoid_f64_scalar,
};

#if SG_VMATH_X86

/* ---- SLEEF declarations missing from sleef.h at baseline flags ------------------------ */

#define SG_TARGET_SSE4 __attribute__((target("sse4.1")))
#define SG_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define SG_TARGET_AVX512 __attribute__((target("avx512f")))

/* The target attributes tell the compiler these take and return ymm / zmm registers (clang
 * refuses the calls otherwise, as the vector ABI depends on the ISA). */
#ifndef __AVX__
SG_TARGET_AVX2 __m256 Sleef_expf8_u10avx2(__m256);
SG_TARGET_AVX2 __m256 Sleef_logf8_u10avx2(__m256);
SG_TARGET_AVX2 __m256 Sleef_tanhf8_u10avx2(__m256);
SG_TARGET_AVX2 __m256d Sleef_expd4_u10avx2(__m256d);
SG_TARGET_AVX2 __m256d Sleef_logd4_u10avx2(__m256d);
SG_TARGET_AVX2 __m256d Sleef_tanhd4_u10avx2(__m256d);
#endif
#ifndef __AVX512F__
SG_TARGET_AVX512 __m512 Sleef_expf16_u10avx512f(__m512);
SG_TARGET_AVX512 __m512 Sleef_logf16_u10avx512f(__m512);
SG_TARGET_AVX512 __m512d Sleef_expd8_u10avx512f(__m512d);
SG_TARGET_AVX512 __m512d Sleef_logd8_u10avx512f(__m512d);
SG_TARGET_AVX512 __m512d Sleef_tanhd8_u10avx512f(__m512d);
#endif

/* ---- sigmoid on one vector: 1 / (1 + exp(0 - v)) ---------------------------------------
 * exp(-v) = +inf for very negative v gives 1/inf = +0; exp(-v) = 0 for large v gives 1;
 * NaN propagates. 0 - v is exact (and exp(+0) = exp(-0)), so no sign-flip trick is needed. */

SG_TARGET_SSE4 static inline __m128 sigmoid_f32x4(__m128 v) {
    const __m128 one = _mm_set1_ps(1.0f);
    __m128 e = Sleef_expf4_u10sse4(_mm_sub_ps(_mm_setzero_ps(), v));
    return _mm_div_ps(one, _mm_add_ps(one, e));
}

SG_TARGET_SSE4 static inline __m128d sigmoid_f64x2(__m128d v) {
    const __m128d one = _mm_set1_pd(1.0);
    __m128d e = Sleef_expd2_u10sse4(_mm_sub_pd(_mm_setzero_pd(), v));
    return _mm_div_pd(one, _mm_add_pd(one, e));
}

SG_TARGET_AVX2 static inline __m256 sigmoid_f32x8(__m256 v) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_setzero_ps(), v));
    return _mm256_div_ps(one, _mm256_add_ps(one, e));
}

SG_TARGET_AVX2 static inline __m256d sigmoid_f64x4(__m256d v) {
    const __m256d one = _mm256_set1_pd(1.0);
    __m256d e = Sleef_expd4_u10avx2(_mm256_sub_pd(_mm256_setzero_pd(), v));
    return _mm256_div_pd(one, _mm256_add_pd(one, e));
}

SG_TARGET_AVX512 static inline __m512d sigmoid_f64x8(__m512d v) {
    const __m512d one = _mm512_set1_pd(1.0);
    __m512d e = Sleef_expd8_u10avx512f(_mm512_sub_pd(_mm512_setzero_pd(), v));
    return _mm512_div_pd(one, _mm512_add_pd(one, e));
}

/* ---- tanh for float32 on AVX-512 --------------------------------------------------------
 * SLEEF's tanhf16_u10 costs several times its sigmoid, and tanh is an LSTM step's most
 * expensive activation (act(c) and g, every step), so it gets its own kernel, in float and
 * within SLEEF's 1-ULP bound (checked against long double tanhl on every positive float;
 * bench/README.md has the error counts and the speed). With a = |x| and s the sign of x:
 *
 *  - a < 0.6: the odd Taylor series a + a^3 Q(a^2), terms to a^19. The first term left out
 *    is about 4e-9 of the result at 0.6, and the correction a^3 Q at most 11% of a, so
 *    the result is a plus a small term that carries little rounding: tanh(a) ~ a stays
 *    accurate down to the subnormals (a^2 underflows to 0 and the result is a itself).
 *  - otherwise: tanh(a) = em / (em + 2) with em = expm1(2a), 2a clamped to 40 (tanh(20)
 *    rounds to 1; em stays finite, never inf / inf). 2a = k ln2 + r, |r| <= ln2 / 2, with
 *    ln2 split in two so r is exact; e^r - 1 = r P(r), P the degree-7 Taylor polynomial
 *    (left out: below 2e-8 relative); em = 2^k (e^r - 1) + (2^k - 1), both terms exact
 *    (scalef) so the sum rounds once. em >= e^1.2 - 1 > 2 here, so em's own error reaches
 *    the result at most halved (d log t / d log em = 2 / (em + 2)). Below 0.6 this branch
 *    is 2 ULP off at a few points; that is why the series runs up to 0.6.
 *
 * Both branches are computed and blended. NaN stays NaN (min keeps a NaN 2a, the compare
 * is false), +-inf gives +-1, +-0 gives +-0 (the sign is or-ed back in). */

/* e^y = 2^k (1 + m): returns m = e^r - 1 and sets *k, for y = k ln2 + r, |r| <= ln2 / 2
 * (y finite or NaN; |y| up to about 150). */
SG_TARGET_AVX512 static inline __m512 expm1_reduced_f32x16(__m512 y, __m512 *k) {
    *k = _mm512_roundscale_ps(_mm512_mul_ps(y, _mm512_set1_ps(1.44269504f)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(*k, _mm512_set1_ps(0.693145752f), y); /* ln2's high 16 bits */
    r = _mm512_fnmadd_ps(*k, _mm512_set1_ps(1.42860677e-6f), r);      /* and the rest */
    static const float c[] = {1.0f / 40320, 1.0f / 5040, 1.0f / 720, 1.0f / 120,
                              1.0f / 24,    1.0f / 6,    0.5f,       1.0f};
    __m512 p = _mm512_set1_ps(c[0]);
    for (int i = 1; i < 8; i++)
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c[i]));
    return _mm512_mul_ps(p, r);
}

SG_TARGET_AVX512 static inline __m512 tanh_f32x16(__m512 v) {
    const __m512i sign = _mm512_set1_epi32(INT32_MIN);
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512i xi = _mm512_castps_si512(v);
    __m512 a = _mm512_castsi512_ps(_mm512_andnot_si512(sign, xi));
    /* a >= 0.6: em / (em + 2) */
    __m512 y = _mm512_min_ps(_mm512_set1_ps(40.0f), _mm512_add_ps(a, a)); /* NaN stays */
    __m512 k, m = expm1_reduced_f32x16(y, &k);
    __m512 em = _mm512_add_ps(_mm512_scalef_ps(m, k), _mm512_sub_ps(_mm512_scalef_ps(one, k), one));
    __m512 t = _mm512_div_ps(em, _mm512_add_ps(em, _mm512_set1_ps(2.0f)));
    /* a < 0.6: a + a^3 Q(a^2) */
    static const float q[] = {(float)(-443861162.0 / 1856156927625),
                              (float)(6404582.0 / 10854718875),
                              (float)(-929569.0 / 638512875),
                              (float)(21844.0 / 6081075),
                              -1382.0f / 155925,
                              62.0f / 2835,
                              -17.0f / 315,
                              2.0f / 15,
                              -1.0f / 3};
    __m512 a2 = _mm512_mul_ps(a, a);
    __m512 qs = _mm512_set1_ps(q[0]);
    for (int i = 1; i < 9; i++)
        qs = _mm512_fmadd_ps(qs, a2, _mm512_set1_ps(q[i]));
    __m512 ts = _mm512_fmadd_ps(_mm512_mul_ps(a, a2), qs, a);
    t = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(0.6f), _CMP_LT_OQ), t, ts);
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), _mm512_and_si512(sign, xi)));
}

/* float32 sigmoid on AVX-512: 1 / (1 + e^-x), e^-x by the same reduction as tanh's (inline:
 * SLEEF's expf16 is a call per vector; bench/README.md has the cost and the error), -x
 * clamped to [-104, 89]: e^-104 is 0 in float, e^89 overflows to inf, either gives the
 * limit (1 or 0); NaN stays NaN. */
SG_TARGET_AVX512 static inline __m512 sigmoid_f32x16(__m512 v) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 y = _mm512_sub_ps(_mm512_setzero_ps(), v);
    y = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_min_ps(_mm512_set1_ps(89.0f), y));
    __m512 k, m = expm1_reduced_f32x16(y, &k);
    return _mm512_div_ps(one, _mm512_add_ps(one, _mm512_scalef_ps(_mm512_add_ps(m, one), k)));
}

/* ---- the loops -------------------------------------------------------------------------
 * Full vectors straight from x to y (unaligned loads/stores; in-place is fine because each
 * vector is loaded before it is stored), then the tail through a padded stack vector; on
 * AVX-512 the tail is one masked load and store instead (a tiny LSTM step's B * H of 8, say),
 * its missing lanes padded the same way and never stored. */

#define SG_VECTOR_LOOP(TARGET, NAME, T, W, LOADU, STOREU, VFN)                                     \
    TARGET static void NAME(size_t n, const T *x, T *y) {                                          \
        size_t i = 0;                                                                              \
        for (; i + (W) <= n; i += (W))                                                             \
            STOREU(y + i, VFN(LOADU(x + i)));                                                      \
        if (i < n) {                                                                               \
            size_t rest = n - i;                                                                   \
            T buf[W];                                                                              \
            for (size_t k = 0; k < (W); k++)                                                       \
                buf[k] = k < rest ? x[i + k] : (T)1;                                               \
            STOREU(buf, VFN(LOADU(buf)));                                                          \
            memcpy(y + i, buf, rest * sizeof(T));                                                  \
        }                                                                                          \
    }

#define SG_VECTOR_LOOP_MASKED(NAME, T, W, MASK, LOADU, STOREU, MLOADU, MSTOREU, SET1, VFN)         \
    SG_TARGET_AVX512 static void NAME(size_t n, const T *x, T *y) {                                \
        size_t i = 0;                                                                              \
        for (; i + (W) <= n; i += (W))                                                             \
            STOREU(y + i, VFN(LOADU(x + i)));                                                      \
        if (i < n) {                                                                               \
            MASK m = (MASK)((1u << (n - i)) - 1);                                                  \
            MSTOREU(y + i, m, VFN(MLOADU(SET1((T)1), m, x + i)));                                  \
        }                                                                                          \
    }

/* One loop instantiation per ISA x precision; VFN is the vector function to apply. */
#define SSE4_F32(NAME, VFN)                                                                        \
    SG_VECTOR_LOOP(SG_TARGET_SSE4, NAME, float, 4, _mm_loadu_ps, _mm_storeu_ps, VFN)
#define SSE4_F64(NAME, VFN)                                                                        \
    SG_VECTOR_LOOP(SG_TARGET_SSE4, NAME, double, 2, _mm_loadu_pd, _mm_storeu_pd, VFN)
#define AVX2_F32(NAME, VFN)                                                                        \
    SG_VECTOR_LOOP(SG_TARGET_AVX2, NAME, float, 8, _mm256_loadu_ps, _mm256_storeu_ps, VFN)
#define AVX2_F64(NAME, VFN)                                                                        \
    SG_VECTOR_LOOP(SG_TARGET_AVX2, NAME, double, 4, _mm256_loadu_pd, _mm256_storeu_pd, VFN)
#define AVX512_F32(NAME, VFN)                                                                      \
    SG_VECTOR_LOOP_MASKED(NAME, float, 16, __mmask16, _mm512_loadu_ps, _mm512_storeu_ps,           \
                          _mm512_mask_loadu_ps, _mm512_mask_storeu_ps, _mm512_set1_ps, VFN)
#define AVX512_F64(NAME, VFN)                                                                      \
    SG_VECTOR_LOOP_MASKED(NAME, double, 8, __mmask8, _mm512_loadu_pd, _mm512_storeu_pd,            \
                          _mm512_mask_loadu_pd, _mm512_mask_storeu_pd, _mm512_set1_pd, VFN)

SSE4_F32(exp_f32_sse4, Sleef_expf4_u10sse4)
SSE4_F32(log_f32_sse4, Sleef_logf4_u10sse4)
SSE4_F32(tanh_f32_sse4, Sleef_tanhf4_u10sse4)
SSE4_F32(sigmoid_f32_sse4, sigmoid_f32x4)
SSE4_F64(exp_f64_sse4, Sleef_expd2_u10sse4)
SSE4_F64(log_f64_sse4, Sleef_logd2_u10sse4)
SSE4_F64(tanh_f64_sse4, Sleef_tanhd2_u10sse4)
SSE4_F64(sigmoid_f64_sse4, sigmoid_f64x2)

AVX2_F32(exp_f32_avx2, Sleef_expf8_u10avx2)
AVX2_F32(log_f32_avx2, Sleef_logf8_u10avx2)
AVX2_F32(tanh_f32_avx2, Sleef_tanhf8_u10avx2)
AVX2_F32(sigmoid_f32_avx2, sigmoid_f32x8)
AVX2_F64(exp_f64_avx2, Sleef_expd4_u10avx2)
AVX2_F64(log_f64_avx2, Sleef_logd4_u10avx2)
AVX2_F64(tanh_f64_avx2, Sleef_tanhd4_u10avx2)
AVX2_F64(sigmoid_f64_avx2, sigmoid_f64x4)

AVX512_F32(exp_f32_avx512, Sleef_expf16_u10avx512f)
AVX512_F32(log_f32_avx512, Sleef_logf16_u10avx512f)
AVX512_F32(tanh_f32_avx512, tanh_f32x16)
AVX512_F32(sigmoid_f32_avx512, sigmoid_f32x16)
AVX512_F64(exp_f64_avx512, Sleef_expd8_u10avx512f)
AVX512_F64(log_f64_avx512, Sleef_logd8_u10avx512f)
AVX512_F64(tanh_f64_avx512, Sleef_tanhd8_u10avx512f)
AVX512_F64(sigmoid_f64_avx512, sigmoid_f64x8)

static const sg_vmath_impl impl_sse4 = {
    .name = "sse4",
    .exp_f32 = exp_f32_sse4,
    .log_f32 = log_f32_sse4,
    .tanh_f32 = tanh_f32_sse4,
    .sigmoid_f32 = sigmoid_f32_sse4,
    .exp_f64 = exp_f64_sse4,
    .log_f64 = log_f64_sse4,
    .tanh_f64 = tanh_f64_sse4,
    .sigmoid_f64 = sigmoid_f64_sse4,
};

static const sg_vmath_impl impl_avx2 = {
    .name = "avx2",
    .exp_f32 = exp_f32_avx2,
    .log_f32 = log_f32_avx2,
    .tanh_f32 = tanh_f32_avx2,
    .sigmoid_f32 = sigmoid_f32_avx2,
    .exp_f64 = exp_f64_avx2,
    .log_f64 = log_f64_avx2,
    .tanh_f64 = tanh_f64_avx2,
    .sigmoid_f64 = sigmoid_f64_avx2,
};

static const sg_vmath_impl impl_avx512 = {
    .name = "avx512f",
    .exp_f32 = exp_f32_avx512,
    .log_f32 = log_f32_avx512,
    .tanh_f32 = tanh_f32_avx512,
    .sigmoid_f32 = sigmoid_f32_avx512,
    .exp_f64 = exp_f64_avx512,
    .log_f64 = log_f64_avx512,
    .tanh_f64 = tanh_f64_avx512,
    .sigmoid_f64 = sigmoid_f64_avx512,
};

#endif /* SG_VMATH_X86 */

/* ---- dispatch ------------------------------------------------------------------------- */

/* Every ISA this build knows, best first. */
static const sg_vmath_impl *const g_impls[] = {
#if SG_VMATH_X86
    &impl_avx512,
    &impl_avx2,
    &impl_sse4,
#endif
    &impl_scalar,
};

static int cpu_supports(const sg_vmath_impl *impl) {
#if SG_VMATH_X86
    __builtin_cpu_init();
    if (impl == &impl_avx512)
        return __builtin_cpu_supports("avx512f") != 0;
    if (impl == &impl_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (impl == &impl_sse4)
        return __builtin_cpu_supports("sse4.1") != 0;
#endif
    return impl == &impl_scalar;
}

static const sg_vmath_impl *best_impl(void) {
    for (size_t i = 0; i < sizeof g_impls / sizeof g_impls[0]; i++)
        if (cpu_supports(g_impls[i]))
            return g_impls[i];
    return &impl_scalar;
}

/* NULL until the first use; afterwards always a table the CPU supports. */
static const sg_vmath_impl *g_active;

static const sg_vmath_impl *active(void) {
    const sg_vmath_impl *p = __atomic_load_n(&g_active, __ATOMIC_ACQUIRE);
    if (p)
        return p;
    const sg_vmath_impl *best = best_impl();
    /* Install best unless someone (another first call, or sg_vmath_force_isa) got there
     * first; on failure p receives the table that won. */
    p = NULL;
    if (__atomic_compare_exchange_n(&g_active, &p, best, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return best;
    return p;
}

const char *sg_vmath_isa(void) { return active()->name; }

int sg_vmath_force_isa(const char *name) {
    const sg_vmath_impl *chosen = NULL;
    if (name == NULL) {
        chosen = best_impl();
    } else {
        for (size_t i = 0; i < sizeof g_impls / sizeof g_impls[0]; i++)
            if (strcmp(name, g_impls[i]->name) == 0)
                chosen = g_impls[i];
        if (chosen == NULL || !cpu_supports(chosen))
            return -1;
    }
    __atomic_store_n(&g_active, chosen, __ATOMIC_RELEASE);
    return 0;
}

/* ---- public kernels ------------------------------------------------------------------- */

void sg_vexp_f32(size_t n, const float *x, float *y) {
    if (n)
        active()->exp_f32(n, x, y);
}

void sg_vexp_f64(size_t n, const double *x, double *y) {
    if (n)
        active()->exp_f64(n, x, y);
}

void sg_vlog_f32(size_t n, const float *x, float *y) {
    if (n)
        active()->log_f32(n, x, y);
}

void sg_vlog_f64(size_t n, const double *x, double *y) {
    if (n)
        active()->log_f64(n, x, y);
}

void sg_vtanh_f32(size_t n, const float *x, float *y) {
    if (n)
        active()->tanh_f32(n, x, y);
}

void sg_vtanh_f64(size_t n, const double *x, double *y) {
    if (n)
        active()->tanh_f64(n, x, y);
}

void sg_vsigmoid_f32(size_t n, const float *x, float *y) {
    if (n)
        active()->sigmoid_f32(n, x, y);
}

void sg_vsigmoid_f64(size_t n, const double *x, double *y) {
    if (n)
        active()->sigmoid_f64(n, x, y);
}
