/* Tests of the generator (tensor/rng.c), the Keras initializers (tensor/init.c), printing
 * and comparison (tensor/print.c). */
#define _GNU_SOURCE /* M_PI */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h" /* the views (sg_slice, sg_transpose, ...) record on the tape */

#include "cksuite.h"
#include "ctxtest.h"

/* All values of t in row-major order (sg_free the result). */
static double *values(const sg_tensor *t) {
    int64_t n = sg_numel(t);
    double *v = sg_malloc((size_t)(n ? n : 1) * sizeof(double));
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(sg_copy_to_f64(t, v), 0);
    return v;
}

static void moments(const sg_tensor *t, double *mean, double *var, double *lo, double *hi) {
    int64_t n = sg_numel(t);
    double *v = values(t), m = 0.0, s = 0.0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        m += v[i];
        *lo = fmin(*lo, v[i]);
        *hi = fmax(*hi, v[i]);
    }
    m /= (double)n;
    for (int64_t i = 0; i < n; i++)
        s += (v[i] - m) * (v[i] - m);
    *mean = m;
    *var = s / (double)(n - 1);
    sg_free(v);
}

/* ---- generator ----------------------------------------------------------------------- */

/* Expected values come from this independent Python implementation (python3):
 *
 *   M = (1 << 64) - 1
 *   def rotl(x, k): return ((x << k) | (x >> (64 - k))) & M
 *   def seed(v):
 *       s = []
 *       for _ in range(4):                      # splitmix64
 *           v = (v + 0x9e3779b97f4a7c15) & M; z = v
 *           z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M
 *           z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M
 *           s.append(z ^ (z >> 31))
 *       return s
 *   def nxt(s):                                 # xoshiro256**
 *       r = (rotl((s[1] * 5) & M, 7) * 9) & M
 *       t = (s[1] << 17) & M
 *       s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t
 *       s[3] = rotl(s[3], 45)
 *       return r
 *   def uniform(s): return (nxt(s) >> 11) * 2.0 ** -53
 *   def normal(s):   # polar method; yields u*f, then the spare v*f
 *       while True:
 *           u = 2 * uniform(s) - 1; v = 2 * uniform(s) - 1; q = u * u + v * v
 *           if 0 < q < 1: break
 *       f = math.sqrt(-2 * math.log(q) / q); return u * f, v * f
 *   s = seed(42); print([hex(nxt(s)) for _ in range(3)])
 */
START_TEST(test_rng_known_values) {
    sg_rng r;
    sg_rng_seed(&r, 42);
    ck_assert_uint_eq(sg_rng_next(&r), 0x15780b2e0c2ec716ull);
    ck_assert_uint_eq(sg_rng_next(&r), 0x6104d9866d113a7eull);
    ck_assert_uint_eq(sg_rng_next(&r), 0xae17533239e499a1ull);
    sg_rng_seed(&r, 0);
    ck_assert_uint_eq(sg_rng_next(&r), 0x99ec5f36cb75f2b4ull);
    ck_assert_uint_eq(sg_rng_next(&r), 0xbf6e1f784956452aull);
    ck_assert_uint_eq(sg_rng_next(&r), 0x1a5f849d4933e6e0ull);

    sg_rng_seed(&r, 42);
    ck_assert(sg_rng_uniform(&r) == 0x1.5780b2e0c2ec0p-4);
    ck_assert(sg_rng_uniform(&r) == 0x1.84136619b444ep-2);
    ck_assert(sg_rng_uniform(&r) == 0x1.5c2ea66473c93p-1);

    /* Normals go through log, so allow a few ulps for a different libm. */
    const double nrm[4] = {-0x1.73d2feb0fb377p-1, -0x1.b088028693f9cp-3, 0x1.c5e21f7812a4cp-3,
                           0x1.0ba8bb0c5fa51p-1};
    sg_rng_seed(&r, 42);
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq_tol(sg_rng_normal(&r), nrm[i], 1e-15);
}
END_TEST

START_TEST(test_rng_reproducible) {
    sg_rng a, b;
    sg_rng_seed(&a, 123);
    sg_rng_seed(&b, 123);
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_eq(sg_rng_next(&a), sg_rng_next(&b));
    for (int i = 0; i < 1001; i++) /* odd count: crosses spare boundaries */
        ck_assert(sg_rng_normal(&a) == sg_rng_normal(&b));

    sg_rng_seed(&a, 1);
    sg_rng_seed(&b, 2);
    int same = 0;
    for (int i = 0; i < 100; i++)
        same += sg_rng_next(&a) == sg_rng_next(&b);
    ck_assert_int_eq(same, 0);

    /* Reseeding drops the spare normal of the old stream. */
    sg_rng_seed(&a, 9);
    double first = sg_rng_normal(&a);
    ck_assert(a.has_spare);
    sg_rng_seed(&a, 9);
    ck_assert(!a.has_spare);
    ck_assert(sg_rng_normal(&a) == first);
}
END_TEST

/* The all-zero state is xoshiro's fixed point: a generator in it (set by hand, or read from
 * a file) must still return from every draw, with values the seeded generator could give. The
 * tcase has a short timeout: before the fix uniform returned 0 forever and normal never
 * returned. */
START_TEST(test_rng_zero_state) {
    sg_rng z = {{0, 0, 0, 0}, 0.0, 0}, ref;
    ck_assert(!sg_rng_state_valid(&z));
    double u = sg_rng_uniform(&z);
    ck_assert(u >= 0.0 && u < 1.0);
    ck_assert(sg_rng_state_valid(&z)); /* it left the fixed point */
    memset(&z, 0, sizeof z);
    for (int i = 0; i < 1001; i++)
        ck_assert(isfinite(sg_rng_normal(&z)));
    memset(&z, 0, sizeof z);
    ck_assert_uint_lt(sg_rng_below(&z, 3), 3);
    memset(&z, 0, sizeof z);
    ck_assert_uint_lt(sg_rng_below(&z, (1ull << 63) + 1), (1ull << 63) + 1);
    /* It goes on as if seeded with SG_RNG_ZERO_STATE_SEED, the spare normal kept. */
    memset(&z, 0, sizeof z);
    sg_rng_seed(&ref, SG_RNG_ZERO_STATE_SEED);
    for (int i = 0; i < 8; i++)
        ck_assert_uint_eq(sg_rng_next(&z), sg_rng_next(&ref));
    memset(&z, 0, sizeof z);
    z.spare = 0.25;
    z.has_spare = 1;
    ck_assert(sg_rng_normal(&z) == 0.25);
    sg_rng_seed(&ref, SG_RNG_ZERO_STATE_SEED);
    ck_assert(sg_rng_normal(&z) == sg_rng_normal(&ref));
    /* Initializers that redraw (truncated normal, orthogonal) terminate on it too. */
    sg_tensor *t = sg_zeros(ctx, SG_F64, SG_SHAPE(8, 8));
    const sg_init_kind kinds[] = {SG_INIT_TRUNCATED_NORMAL, SG_INIT_GLOROT_NORMAL,
                                  SG_INIT_ORTHOGONAL, SG_INIT_RANDOM_UNIFORM};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        memset(&z, 0, sizeof z);
        ck_assert_int_eq(sg_init_tensor(ctx, t, sg_init_default(kinds[k]), &z), 0);
        for (int64_t i = 0; i < 64; i++)
            ck_assert(isfinite(sg_get_flat(t, i)));
    }
    /* The context's generator, zeroed by hand, likewise. */
    memset(sg_ctx_rng(ctx)->s, 0, sizeof sg_ctx_rng(ctx)->s);
    ck_assert_ptr_nonnull(sg_rand_normal(ctx, SG_F32, SG_SHAPE(100), 0, 1));
    ck_no_error();
}
END_TEST

/* sg_rng_state_valid: what a loader may accept; and NULL generators. */
START_TEST(test_rng_state_valid_and_null) {
    sg_rng r;
    sg_rng_seed(&r, 0);
    ck_assert(sg_rng_state_valid(&r));
    sg_rng_normal(&r); /* leaves a finite spare */
    ck_assert(r.has_spare);
    ck_assert(sg_rng_state_valid(&r));
    r.spare = NAN;
    ck_assert(!sg_rng_state_valid(&r));
    r.spare = INFINITY;
    ck_assert(!sg_rng_state_valid(&r));
    r.has_spare = 0; /* an unused spare is not looked at */
    ck_assert(sg_rng_state_valid(&r));
    r.s[0] = r.s[1] = r.s[2] = 0;
    ck_assert(sg_rng_state_valid(&r)); /* one nonzero word is enough */
    r.s[3] = 0;
    ck_assert(!sg_rng_state_valid(&r));
    ck_assert(!sg_rng_state_valid(NULL));
    ck_assert_uint_eq(sg_rng_next(NULL), 0);
    ck_assert(isnan(sg_rng_uniform(NULL)));
    ck_assert(isnan(sg_rng_normal(NULL)));
    ck_assert_uint_eq(sg_rng_below(NULL, 10), 0);
    sg_rng_seed(NULL, 1); /* no-op */
}
END_TEST

START_TEST(test_rng_uniform_range) {
    sg_rng r;
    sg_rng_seed(&r, 7);
    const int n = 1000000;
    double sum = 0.0, lo = 1.0, hi = 0.0;
    for (int i = 0; i < n; i++) {
        double u = sg_rng_uniform(&r);
        ck_assert(u >= 0.0 && u < 1.0);
        sum += u;
        lo = fmin(lo, u);
        hi = fmax(hi, u);
    }
    /* mean of U(0,1) has sd sqrt(1/12/n); allow 5 sd */
    ck_assert_double_eq_tol(sum / n, 0.5, 5.0 * sqrt(1.0 / 12.0 / n));
    ck_assert(lo < 1e-4 && hi > 1.0 - 1e-4);
}
END_TEST

START_TEST(test_rng_normal_moments) {
    sg_rng r;
    sg_rng_seed(&r, 2024);
    const int n = 100000;
    double *v = sg_malloc(n * sizeof(double)), m = 0.0, s = 0.0, k4 = 0.0;
    for (int i = 0; i < n; i++)
        m += v[i] = sg_rng_normal(&r);
    m /= n;
    for (int i = 0; i < n; i++) {
        double d = v[i] - m;
        s += d * d;
        k4 += d * d * d * d;
    }
    s /= n - 1;
    k4 /= n;
    sg_free(v);
    /* sd of the mean 1/sqrt(n), of the variance sqrt(2/n), of the 4th moment sqrt(96/n) */
    ck_assert_double_eq_tol(m, 0.0, 5.0 / sqrt(n));
    ck_assert_double_eq_tol(s, 1.0, 5.0 * sqrt(2.0 / n));
    ck_assert_double_eq_tol(k4, 3.0, 5.0 * sqrt(96.0 / n));
}
END_TEST

START_TEST(test_rng_below) {
    sg_rng r;
    sg_rng_seed(&r, 5);
    ck_assert_uint_eq(sg_rng_below(&r, 0), 0);
    for (int i = 0; i < 100; i++)
        ck_assert_uint_eq(sg_rng_below(&r, 1), 0);

    enum { K = 7, N = 70000 };
    int64_t count[K] = {0};
    for (int i = 0; i < N; i++) {
        uint64_t x = sg_rng_below(&r, K);
        ck_assert_uint_lt(x, K);
        count[x]++;
    }
    /* Pearson chi-square with 6 degrees of freedom: P(chi2 > 22.46) = 0.001. */
    double chi2 = 0.0, e = (double)N / K;
    for (int k = 0; k < K; k++)
        chi2 += (count[k] - e) * (count[k] - e) / e;
    ck_assert_msg(chi2 < 22.46, "chi2 = %g", chi2);

    /* A bound just above 2^63 rejects almost half of the raw draws: still in range, and
     * both halves are hit. */
    uint64_t big = (1ull << 63) + 1, upper = 0;
    for (int i = 0; i < 2000; i++) {
        uint64_t x = sg_rng_below(&r, big);
        ck_assert_uint_lt(x, big);
        upper += x >= (1ull << 62);
    }
    ck_assert(upper > 800 && upper < 1200);

    /* Small bound: every value appears. */
    int seen[3] = {0};
    for (int i = 0; i < 300; i++)
        seen[sg_rng_below(&r, 3)] = 1;
    ck_assert(seen[0] && seen[1] && seen[2]);
}
END_TEST

/* ---- initializers: names, defaults, fans --------------------------------------------- */

START_TEST(test_init_names) {
    static const char *expect[SG_INIT_COUNT] = {
        "zeros",          "ones",          "constant",
        "random_uniform", "random_normal", "truncated_normal",
        "glorot_uniform", "glorot_normal", "he_uniform",
        "he_normal",      "lecun_uniform", "lecun_normal",
        "orthogonal"};
    for (int k = 0; k < SG_INIT_COUNT; k++) {
        ck_assert_str_eq(sg_init_name((sg_init_kind)k), expect[k]);
        ck_assert_int_eq(sg_init_from_name(expect[k]), k);
    }
    ck_assert_int_eq(sg_init_from_name("GlorotUniform"), SG_INIT_GLOROT_UNIFORM);
    ck_assert_int_eq(sg_init_from_name("Orthogonal"), SG_INIT_ORTHOGONAL);
    ck_assert_int_eq(sg_init_from_name("TruncatedNormal"), SG_INIT_TRUNCATED_NORMAL);
    ck_assert_int_eq(sg_init_from_name("glorot"), -1);
    ck_assert_int_eq(sg_init_from_name(""), -1);
    ck_assert_int_eq(sg_init_from_name(NULL), -1);
    ck_assert_ptr_null(sg_init_name(SG_INIT_COUNT));
    ck_assert_ptr_null(sg_init_name((sg_init_kind)-1));
}
END_TEST

START_TEST(test_init_defaults) {
    sg_init i = sg_init_default(SG_INIT_RANDOM_UNIFORM);
    ck_assert_int_eq(i.kind, SG_INIT_RANDOM_UNIFORM);
    ck_assert(i.a == -0.05 && i.b == 0.05);
    i = sg_init_default(SG_INIT_RANDOM_NORMAL);
    ck_assert(i.a == 0.0 && i.b == 0.05);
    i = sg_init_default(SG_INIT_TRUNCATED_NORMAL);
    ck_assert(i.a == 0.0 && i.b == 0.05);
    i = sg_init_default(SG_INIT_ORTHOGONAL);
    ck_assert(i.a == 1.0);
    i = sg_init_default(SG_INIT_CONSTANT);
    ck_assert(i.a == 0.0);
    i = sg_init_default(SG_INIT_GLOROT_UNIFORM);
    ck_assert_int_eq(i.kind, SG_INIT_GLOROT_UNIFORM);
}
END_TEST

START_TEST(test_init_fans) {
    double fi, fo;
    sg_init_fans(0, NULL, &fi, &fo);
    ck_assert(fi == 1.0 && fo == 1.0);
    sg_init_fans(1, (const int64_t[]){7}, &fi, &fo);
    ck_assert(fi == 7.0 && fo == 7.0);
    sg_init_fans(2, (const int64_t[]){3, 5}, &fi, &fo);
    ck_assert(fi == 3.0 && fo == 5.0);
    sg_init_fans(3, (const int64_t[]){3, 4, 5}, &fi, &fo); /* Conv1D kernel (k, in, out) */
    ck_assert(fi == 12.0 && fo == 15.0);
    sg_init_fans(4, (const int64_t[]){3, 3, 16, 32}, &fi, &fo);
    ck_assert(fi == 144.0 && fo == 288.0);
    sg_init_fans(2, (const int64_t[]){3, 5}, NULL, &fo); /* either output may be NULL */
    ck_assert(fo == 5.0);
}
END_TEST

/* The constant Keras divides by is the sd of a unit normal truncated to [-2, 2]:
 * var = 1 - 2 * 2 phi(2) / (Phi(2) - Phi(-2)), so a truncated normal with
 * sd = sqrt(scale) / 0.8796... has variance exactly `scale`. */
START_TEST(test_truncation_constant) {
    double phi2 = exp(-2.0) / sqrt(2.0 * M_PI);
    double mass = erf(2.0 / sqrt(2.0));
    double var = 1.0 - 4.0 * phi2 / mass;
    ck_assert_double_eq_tol(var, 0.87962566103423978 * 0.87962566103423978, 1e-15);
    ck_assert_double_eq_tol(var, 0.7737413035499232, 1e-15);
}
END_TEST

/* ---- initializers: distributions ----------------------------------------------------- */

static const int64_t BIG[2] = {256, 512};
#define NBIG (256.0 * 512.0)

static double keras_scale(sg_init_kind k) {
    double fi = 256.0, fo = 512.0;
    switch (k) {
    case SG_INIT_GLOROT_UNIFORM:
    case SG_INIT_GLOROT_NORMAL: return 1.0 / ((fi + fo) / 2.0);
    case SG_INIT_HE_UNIFORM:
    case SG_INIT_HE_NORMAL: return 2.0 / fi;
    default: return 1.0 / fi;
    }
}

START_TEST(test_init_constant_kinds) {
    for (int dt = SG_F32; dt <= SG_F64; dt++) {
        sg_rng r;
        sg_rng_seed(&r, 1);
        sg_tensor *t = sg_full(ctx, (sg_dtype)dt, SG_SHAPE(3, 4), 5.0);
        ck_assert_int_eq(sg_init_tensor(ctx, t, sg_init_default(SG_INIT_ZEROS), &r), 0);
        for (int i = 0; i < 12; i++)
            ck_assert(sg_get_flat(t, i) == 0.0);
        ck_assert_int_eq(sg_init_tensor(ctx, t, sg_init_default(SG_INIT_ONES), &r), 0);
        for (int i = 0; i < 12; i++)
            ck_assert(sg_get_flat(t, i) == 1.0);
        sg_init c = {SG_INIT_CONSTANT, 0.25, 0.0};
        ck_assert_int_eq(sg_init_tensor(ctx, t, c, &r), 0);
        for (int i = 0; i < 12; i++)
            ck_assert(sg_get_flat(t, i) == 0.25);
        /* Constants do not consume random numbers. */
        sg_rng fresh;
        sg_rng_seed(&fresh, 1);
        ck_assert_uint_eq(sg_rng_next(&r), sg_rng_next(&fresh));
        /* Through a strided view only the viewed elements change. */
        sg_tensor *col = sg_slice(ctx, t, 1, 1, 2); /* columns 1..2 */
        ck_assert_int_eq(sg_init_tensor(ctx, col, sg_init_default(SG_INIT_ZEROS), &r), 0);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++)
                ck_assert(sg_get(t, (const int64_t[]){i, j}) == (j == 1 || j == 2 ? 0.0 : 0.25));
        /* 0-d */
        sg_tensor *s = sg_scalar(ctx, (sg_dtype)dt, 3.0);
        ck_assert_int_eq(sg_init_tensor(ctx, s, sg_init_default(SG_INIT_ONES), &r), 0);
        ck_assert(sg_get_flat(s, 0) == 1.0);
    }
    ck_no_error();
}
END_TEST

START_TEST(test_init_uniform_stats) {
    const sg_init_kind kinds[] = {SG_INIT_RANDOM_UNIFORM, SG_INIT_GLOROT_UNIFORM,
                                  SG_INIT_HE_UNIFORM, SG_INIT_LECUN_UNIFORM};
    for (int dt = SG_F32; dt <= SG_F64; dt++) {
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            sg_rng r;
            sg_rng_seed(&r, 100 + k);
            sg_tensor *t = sg_tensor_new(ctx, (sg_dtype)dt, 2, BIG);
            ck_assert_int_eq(sg_init_tensor(ctx, t, sg_init_default(kinds[k]), &r), 0);
            ck_assert_int_eq(t->ndim, 2);
            ck_assert(t->shape[0] == 256 && t->shape[1] == 512);
            ck_assert_int_eq(t->dtype, dt);
            double lo = -0.05, hi = 0.05;
            if (kinds[k] != SG_INIT_RANDOM_UNIFORM)
                hi = sqrt(3.0 * keras_scale(kinds[k])), lo = -hi;
            double limit = hi, mean, var, mn, mx;
            moments(t, &mean, &var, &mn, &mx);
            /* within [-limit, limit) after rounding limit to the dtype */
            double lim_t = dt == SG_F32 ? (double)(float)limit : limit;
            ck_assert_msg(mn >= -lim_t && mx < lim_t, "%s: [%g, %g] vs %g", sg_init_name(kinds[k]),
                          mn, mx, limit);
            ck_assert(mn < lo + 0.01 * limit && mx > hi - 0.01 * limit); /* covers range */
            /* U(-L, L): var L^2/3, sd of mean sqrt(L^2/3/N), sd of the sample variance
             * L^2 sqrt((1/5 - 1/9)/N) */
            double v = limit * limit / 3.0;
            ck_assert_msg(fabs(mean) < 5.0 * sqrt(v / NBIG), "%s mean %g", sg_init_name(kinds[k]),
                          mean);
            ck_assert_msg(fabs(var - v) < 5.0 * limit * limit * sqrt((1.0 / 5 - 1.0 / 9) / NBIG),
                          "%s var %g vs %g", sg_init_name(kinds[k]), var, v);
        }
    }
    ck_no_error();
}
END_TEST

START_TEST(test_init_normal_stats) {
    const sg_init_kind kinds[] = {SG_INIT_RANDOM_NORMAL, SG_INIT_TRUNCATED_NORMAL,
                                  SG_INIT_GLOROT_NORMAL, SG_INIT_HE_NORMAL, SG_INIT_LECUN_NORMAL};
    for (int dt = SG_F32; dt <= SG_F64; dt++) {
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            sg_rng r;
            sg_rng_seed(&r, 200 + k);
            sg_tensor *t = sg_tensor_new(ctx, (sg_dtype)dt, 2, BIG);
            sg_init in = sg_init_default(kinds[k]);
            double mu = 0.0, sd, want_var;
            bool truncated = kinds[k] != SG_INIT_RANDOM_NORMAL;
            if (kinds[k] == SG_INIT_RANDOM_NORMAL) {
                in.a = mu = 0.3;
                in.b = sd = 0.5;
                want_var = sd * sd;
            } else if (kinds[k] == SG_INIT_TRUNCATED_NORMAL) {
                in.a = mu = 1.0;
                in.b = sd = 0.1;
                want_var = sd * sd * 0.7737413035499232;
            } else {
                want_var = keras_scale(kinds[k]);
                sd = sqrt(want_var) / 0.87962566103423978;
            }
            ck_assert_int_eq(sg_init_tensor(ctx, t, in, &r), 0);
            double mean, var, mn, mx;
            moments(t, &mean, &var, &mn, &mx);
            const char *nm = sg_init_name(kinds[k]);
            if (truncated) {
                double slack = 2.0 * sd * 1e-6; /* float32 rounding of mean + sd * z */
                ck_assert_msg(mn >= mu - 2.0 * sd - slack && mx <= mu + 2.0 * sd + slack,
                              "%s: [%g, %g] outside %g +- 2*%g", nm, mn, mx, mu, sd);
                ck_assert(mn < mu - 1.9 * sd && mx > mu + 1.9 * sd);
            } else {
                ck_assert(mn < mu - 4.0 * sd && mx > mu + 4.0 * sd); /* tails present */
            }
            /* sd of the mean sqrt(var/N); of the sample variance at most var*sqrt(2/N)
             * (truncation lightens the tails, which only shrinks it). */
            ck_assert_msg(fabs(mean - mu) < 5.0 * sqrt(want_var / NBIG), "%s mean %g", nm, mean);
            ck_assert_msg(fabs(var - want_var) < 5.0 * want_var * sqrt(2.0 / NBIG),
                          "%s var %g vs %g", nm, var, want_var);
        }
    }
    ck_no_error();
}
END_TEST

START_TEST(test_init_reproducible_and_strided) {
    for (int dt = SG_F32; dt <= SG_F64; dt++) {
        for (int k = SG_INIT_RANDOM_UNIFORM; k < SG_INIT_COUNT; k++) {
            sg_rng r1, r2, r3;
            sg_rng_seed(&r1, 77);
            sg_rng_seed(&r2, 77);
            sg_rng_seed(&r3, 78);
            sg_tensor *a = sg_tensor_new(ctx, (sg_dtype)dt, SG_SHAPE(12, 9));
            sg_tensor *b = sg_tensor_new(ctx, (sg_dtype)dt, SG_SHAPE(12, 9));
            sg_tensor *c = sg_tensor_new(ctx, (sg_dtype)dt, SG_SHAPE(12, 9));
            sg_init in = sg_init_default((sg_init_kind)k);
            ck_assert_int_eq(sg_init_tensor(ctx, a, in, &r1), 0);
            ck_assert_int_eq(sg_init_tensor(ctx, b, in, &r2), 0);
            ck_assert_int_eq(sg_init_tensor(ctx, c, in, &r3), 0);
            ck_assert_int_eq(sg_compare(ctx, a, b, 0.0, 0.0, NULL), 0);
            ck_assert_int_eq(sg_compare(ctx, a, c, 0.0, 0.0, NULL), 1);

            /* A transposed view of a (9, 12) block inside a larger buffer gets the same
             * values, in its own logical order, as the contiguous (12, 9) tensor; nothing
             * outside the view is touched. */
            sg_tensor *base = sg_full(ctx, (sg_dtype)dt, SG_SHAPE(11, 12), -7.0);
            sg_tensor *view = sg_transpose(ctx, sg_slice(ctx, base, 0, 1, 9), 0, 1);
            ck_assert(view && !sg_is_contiguous(view));
            sg_rng_seed(&r1, 77);
            ck_assert_int_eq(sg_init_tensor(ctx, view, in, &r1), 0);
            ck_assert_int_eq(sg_compare(ctx, view, a, 0.0, 0.0, NULL), 0);
            for (int j = 0; j < 12; j++) {
                ck_assert(sg_get(base, (const int64_t[]){0, j}) == -7.0);
                ck_assert(sg_get(base, (const int64_t[]){10, j}) == -7.0);
            }
        }
    }
    ck_no_error();
}
END_TEST

/* ---- orthogonal ---------------------------------------------------------------------- */

/* Check that t, flattened to (rows, cols), is gain * an orthogonal matrix drawn by Keras'
 * recipe from `seed`: rows (wide) or columns (tall) orthonormal, and R = Q^T A upper
 * triangular with a positive diagonal for the normal draws A of shape (max, min). */
static void check_orthogonal(const sg_tensor *t, int64_t rows, int64_t cols, double gain,
                             uint64_t seed) {
    double *q = values(t); /* rows x cols, row-major */
    double tol = 1e-5 * gain * gain;
    bool wide = rows < cols;
    int64_t m = wide ? cols : rows, n = wide ? rows : cols;
    /* Q (m x n) with orthonormal columns: Q = M (tall) or M^T (wide). */
#define Q(i, j) (wide ? q[(j)*cols + (i)] : q[(i)*cols + (j)])
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double dot = 0.0;
            for (int64_t k = 0; k < m; k++)
                dot += Q(k, i) * Q(k, j);
            ck_assert_msg(fabs(dot - (i == j ? gain * gain : 0.0)) < tol,
                          "(%lld, %lld): Q^T Q = %.10g", (long long)i, (long long)j, dot);
        }
    sg_rng r;
    sg_rng_seed(&r, seed);
    double *a = sg_malloc((size_t)(m * n) * sizeof(double));
    for (int64_t i = 0; i < m * n; i++)
        a[i] = sg_rng_normal(&r);
    double rtol = t->dtype == SG_F32 ? 1e-4 : 1e-9;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j <= i; j++) {
            double rij = 0.0;
            for (int64_t k = 0; k < m; k++)
                rij += Q(k, i) * a[k * n + j] / gain;
            if (i == j)
                ck_assert_msg(rij > 0.0, "R[%lld][%lld] = %g", (long long)i, (long long)j, rij);
            else
                ck_assert_msg(fabs(rij) < rtol * sqrt((double)m), "R[%lld][%lld] = %g",
                              (long long)i, (long long)j, rij);
        }
#undef Q
    sg_free(a);
    sg_free(q);
}

START_TEST(test_init_orthogonal) {
    static const int64_t shapes[][2] = {{64, 64}, {100, 30}, {30, 100}, {1, 5}, {5, 1}};
    for (int dt = SG_F32; dt <= SG_F64; dt++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            sg_rng r;
            sg_rng_seed(&r, 300 + s);
            sg_tensor *t = sg_tensor_new(ctx, (sg_dtype)dt, 2, shapes[s]);
            ck_assert_int_eq(sg_init_tensor(ctx, t, sg_init_default(SG_INIT_ORTHOGONAL), &r), 0);
            check_orthogonal(t, shapes[s][0], shapes[s][1], 1.0, 300 + s);
        }
        /* gain */
        sg_rng r;
        sg_rng_seed(&r, 5);
        sg_tensor *t = sg_tensor_new(ctx, (sg_dtype)dt, SG_SHAPE(40, 24));
        sg_init g = {SG_INIT_ORTHOGONAL, 2.5, 0.0};
        ck_assert_int_eq(sg_init_tensor(ctx, t, g, &r), 0);
        check_orthogonal(t, 40, 24, 2.5, 5);
        sg_tensor *u = sg_tensor_new(ctx, (sg_dtype)dt, SG_SHAPE(40, 24));
        sg_rng_seed(&r, 5);
        ck_assert_int_eq(sg_init_tensor(ctx, u, sg_init_default(SG_INIT_ORTHOGONAL), &r), 0);
        for (int i = 0; i < 40 * 24; i++)
            ck_assert_double_eq_tol(sg_get_flat(t, i), 2.5 * sg_get_flat(u, i), 1e-6);

        /* 3-D (4, 5, 20) is the (20, 20) matrix reshaped. */
        sg_tensor *t3 = sg_tensor_new(ctx, (sg_dtype)dt, SG_SHAPE(4, 5, 20));
        sg_tensor *t2 = sg_tensor_new(ctx, (sg_dtype)dt, SG_SHAPE(20, 20));
        sg_rng_seed(&r, 9);
        ck_assert_int_eq(sg_init_tensor(ctx, t3, sg_init_default(SG_INIT_ORTHOGONAL), &r), 0);
        sg_rng_seed(&r, 9);
        ck_assert_int_eq(sg_init_tensor(ctx, t2, sg_init_default(SG_INIT_ORTHOGONAL), &r), 0);
        ck_assert_int_eq(t3->ndim, 3);
        check_orthogonal(t3, 20, 20, 1.0, 9);
        ck_assert_int_eq(sg_compare(ctx, sg_reshape(ctx, t3, SG_SHAPE(20, 20)), t2, 0, 0, NULL), 0);

        /* Transposed (strided) view: (30, 20) view of a (20, 30) tensor. */
        sg_tensor *base = sg_tensor_new(ctx, (sg_dtype)dt, SG_SHAPE(20, 30));
        sg_tensor *view = sg_transpose(ctx, base, 0, 1);
        sg_rng_seed(&r, 11);
        ck_assert_int_eq(sg_init_tensor(ctx, view, sg_init_default(SG_INIT_ORTHOGONAL), &r), 0);
        check_orthogonal(view, 30, 20, 1.0, 11);
        sg_tensor *ref = sg_tensor_new(ctx, (sg_dtype)dt, SG_SHAPE(30, 20));
        sg_rng_seed(&r, 11);
        ck_assert_int_eq(sg_init_tensor(ctx, ref, sg_init_default(SG_INIT_ORTHOGONAL), &r), 0);
        ck_assert_int_eq(sg_compare(ctx, view, ref, 0, 0, NULL), 0);
    }
    ck_no_error();
}
END_TEST

/* ---- errors -------------------------------------------------------------------------- */

START_TEST(test_init_errors) {
    sg_rng r;
    sg_rng_seed(&r, 1);
    sg_tensor *t = sg_tensor_new(ctx, SG_F32, SG_SHAPE(4, 4));

    ck_assert_int_eq(sg_init_tensor(ctx, t, sg_init_default(SG_INIT_GLOROT_UNIFORM), NULL), -1);
    ck_error("sg_init_tensor: rng is NULL");

    sg_init bad = {SG_INIT_COUNT, 0, 0};
    ck_assert_int_eq(sg_init_tensor(ctx, t, bad, &r), -1);
    ck_error("sg_init_tensor: unknown initializer kind 13");
    bad.kind = (sg_init_kind)-1;
    ck_assert_int_eq(sg_init_tensor(ctx, t, bad, &r), -1);
    ck_error("sg_init_tensor: unknown initializer kind -1");

    sg_init n = {SG_INIT_RANDOM_NORMAL, 0.0, 0.0};
    ck_assert_int_eq(sg_init_tensor(ctx, t, n, &r), -1);
    ck_error("sg_init_tensor: random_normal needs stddev > 0, got 0");
    n.kind = SG_INIT_TRUNCATED_NORMAL;
    n.b = -1.0;
    ck_assert_int_eq(sg_init_tensor(ctx, t, n, &r), -1);
    ck_error("sg_init_tensor: truncated_normal needs stddev > 0, got -1");
    n.b = NAN;
    ck_assert_int_eq(sg_init_tensor(ctx, t, n, &r), -1);
    ck_error("sg_init_tensor: truncated_normal needs stddev > 0, got nan");

    sg_init u = {SG_INIT_RANDOM_UNIFORM, 1.0, -1.0};
    ck_assert_int_eq(sg_init_tensor(ctx, t, u, &r), -1);
    ck_error("sg_init_tensor: random_uniform needs minval <= maxval, got minval=1 maxval=-1");
    u.b = 1.0; /* minval == maxval is a constant, fine */
    sg_rng other;
    sg_rng_seed(&other, 2);
    ck_assert_int_eq(sg_init_tensor(ctx, t, u, &other), 0);
    ck_assert(sg_get_flat(t, 3) == 1.0);

    sg_tensor *v = sg_tensor_new(ctx, SG_F64, SG_SHAPE(5));
    ck_assert_int_eq(sg_init_tensor(ctx, v, sg_init_default(SG_INIT_ORTHOGONAL), &r), -1);
    ck_error("sg_init_tensor: orthogonal needs at least 2 dimensions, got (5,)");
    sg_tensor *s = sg_scalar(ctx, SG_F64, 1.0);
    ck_assert_int_eq(sg_init_tensor(ctx, s, sg_init_default(SG_INIT_ORTHOGONAL), &r), -1);
    ck_error("sg_init_tensor: orthogonal needs at least 2 dimensions, got ()");

    /* NULL tensor propagates silently; NULL context has nowhere to report. */
    ck_assert_int_eq(sg_init_tensor(ctx, NULL, sg_init_default(SG_INIT_ZEROS), &r), -1);
    ck_no_error();
    ck_assert_int_eq(sg_init_tensor(NULL, t, sg_init_default(SG_INIT_ZEROS), &r), -1);
    ck_no_error();

    /* A tensor from before a reset is stale. */
    sg_ctx_reset(ctx);
    ck_assert_int_eq(sg_init_tensor(ctx, t, sg_init_default(SG_INIT_ZEROS), &r), -1);
    const char *e = sg_ctx_error(ctx);
    ck_assert_ptr_nonnull(e);
    ck_assert_msg(strncmp(e, "sg_init_tensor: ", 16) == 0, "got \"%s\"", e);
    sg_ctx_clear_error(ctx);

    /* The generator was not consumed by any failing call. */
    sg_rng fresh;
    sg_rng_seed(&fresh, 1);
    ck_assert_uint_eq(sg_rng_next(&r), sg_rng_next(&fresh));
}
END_TEST

/* ---- sg_rand_* ----------------------------------------------------------------------- */

START_TEST(test_rand_creators) {
    for (int dt = SG_F32; dt <= SG_F64; dt++) {
        sg_rng_seed(sg_ctx_rng(ctx), 31);
        sg_tensor *a = sg_rand_uniform(ctx, (sg_dtype)dt, SG_SHAPE(200, 300), -2.0, 3.0);
        ck_assert_ptr_nonnull(a);
        ck_assert(a->ndim == 2 && a->shape[0] == 200 && a->shape[1] == 300 &&
                  a->dtype == (sg_dtype)dt);
        double mean, var, mn, mx;
        moments(a, &mean, &var, &mn, &mx);
        ck_assert(mn >= -2.0 && mx < 3.0);
        ck_assert_double_eq_tol(mean, 0.5, 5.0 * sqrt(25.0 / 12.0 / 60000.0));
        ck_assert_double_eq_tol(var, 25.0 / 12.0,
                                5.0 * 25.0 * sqrt((1.0 / 5 - 1.0 / 9) / 60000.0) / 4.0);

        /* Same seed, same tensor. */
        sg_rng_seed(sg_ctx_rng(ctx), 31);
        sg_tensor *b = sg_rand_uniform(ctx, (sg_dtype)dt, SG_SHAPE(200, 300), -2.0, 3.0);
        ck_assert_int_eq(sg_compare(ctx, a, b, 0, 0, NULL), 0);

        sg_tensor *n = sg_rand_normal(ctx, (sg_dtype)dt, SG_SHAPE(200, 300), 4.0, 0.5);
        ck_assert_ptr_nonnull(n);
        moments(n, &mean, &var, &mn, &mx);
        ck_assert_double_eq_tol(mean, 4.0, 5.0 * 0.5 / sqrt(60000.0));
        ck_assert_double_eq_tol(var, 0.25, 5.0 * 0.25 * sqrt(2.0 / 60000.0));

        /* Half-open even when every draw rounds to hi: [1, 1 + ulp) holds only 1. */
        double hi = dt == SG_F32 ? (double)nextafterf(1.0f, 2.0f) : nextafter(1.0, 2.0);
        sg_tensor *h = sg_rand_uniform(ctx, (sg_dtype)dt, SG_SHAPE(1000), 1.0, hi);
        for (int i = 0; i < 1000; i++)
            ck_assert(sg_get_flat(h, i) == 1.0);

        sg_tensor *z = sg_rand_normal(ctx, (sg_dtype)dt, SG_SHAPE(3), 2.0, 0.0);
        ck_assert(sg_get_flat(z, 2) == 2.0);
    }
    ck_no_error();

    ck_assert_ptr_null(sg_rand_uniform(ctx, SG_F32, SG_SHAPE(2), 1.0, 0.0));
    ck_error("sg_rand_uniform: needs lo <= hi, got lo=1 hi=0");
    ck_assert_ptr_null(sg_rand_normal(ctx, SG_F32, SG_SHAPE(2), 0.0, -1.0));
    ck_error("sg_rand_normal: needs std >= 0, got -1");
    ck_assert_ptr_null(sg_rand_normal(ctx, SG_F32, SG_SHAPE(-2), 0.0, 1.0));
    ck_assert_ptr_nonnull(sg_ctx_error(ctx)); /* the shape error of the creator */
    sg_ctx_clear_error(ctx);
    ck_assert_ptr_null(sg_rand_uniform(NULL, SG_F32, SG_SHAPE(2), 0.0, 1.0));
}
END_TEST

/* ---- printing ------------------------------------------------------------------------ */

static void ck_prints(const sg_tensor *t, const char *want) {
    char *s = sg_print_str(t);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strcmp(s, want) == 0, "got\n%s\nwant\n%s", s, want);
    sg_free(s);
}

static sg_tensor *vec(sg_dtype dt, int n, const double *v) {
    sg_tensor *t = sg_tensor_new(ctx, dt, 1, (const int64_t[]){n});
    for (int i = 0; i < n; i++)
        sg_set_flat(t, i, v[i]);
    return t;
}

START_TEST(test_print_small) {
    const float x[6] = {1.0f, 2.5f, -3.0f, 0.125f, 10.0f, 6.0f};
    sg_tensor *t = sg_from_data(ctx, SG_F32, SG_SHAPE(2, 3), x);
    sg_tensor_set_name(t, "x");
    /* numpy: print(np.array([[1, 2.5, -3], [0.125, 10, 6]], dtype=np.float32)) */
    ck_prints(t, "x: shape=(2, 3) dtype=float32\n"
                 "[[ 1.     2.5   -3.   ]\n"
                 " [ 0.125 10.     6.   ]]\n");

    /* Unnamed, and the transposed view prints the transposed values. */
    const double y[6] = {1, 2, 3, 4, 5, 6};
    sg_tensor *u = sg_from_data(ctx, SG_F64, SG_SHAPE(2, 3), y);
    ck_prints(u, "shape=(2, 3) dtype=float64\n[[1. 2. 3.]\n [4. 5. 6.]]\n");
    ck_prints(sg_transpose(ctx, u, 0, 1),
              "shape=(3, 2) dtype=float64\n[[1. 4.]\n [2. 5.]\n [3. 6.]]\n");
    /* A stride-2 slice of the transposed view: rows 0 and 2. */
    sg_tensor *w = sg_transpose(ctx, sg_slice(ctx, u, 1, 1, 2), 0, 1);
    ck_prints(w, "shape=(2, 2) dtype=float64\n[[2. 5.]\n [3. 6.]]\n");

    /* 0-d prints the value alone; empty prints []. */
    ck_prints(sg_scalar(ctx, SG_F64, 3.5), "shape=() dtype=float64\n3.5\n");
    ck_prints(sg_scalar(ctx, SG_F32, -2.0), "shape=() dtype=float32\n-2.\n");
    ck_prints(sg_tensor_new(ctx, SG_F32, SG_SHAPE(0, 3)), "shape=(0, 3) dtype=float32\n[]\n");
    ck_prints(sg_tensor_new(ctx, SG_F32, SG_SHAPE(0)), "shape=(0,) dtype=float32\n[]\n");

    /* 3-D: blocks separated by a blank line. */
    sg_tensor *c = sg_reshape(ctx, sg_arange(ctx, SG_F64, 0, 8, 1), SG_SHAPE(2, 2, 2));
    ck_prints(c, "shape=(2, 2, 2) dtype=float64\n"
                 "[[[0. 1.]\n  [2. 3.]]\n\n [[4. 5.]\n  [6. 7.]]]\n");
    ck_no_error();
}
END_TEST

START_TEST(test_print_digits) {
    /* Shortest round-trip digits in the tensor's own dtype, at most 8 decimals. */
    ck_prints(vec(SG_F32, 1, (const double[]){0.1}), "shape=(1,) dtype=float32\n[0.1]\n");
    ck_prints(vec(SG_F64, 1, (const double[]){0.1}), "shape=(1,) dtype=float64\n[0.1]\n");
    ck_prints(vec(SG_F32, 1, (const double[]){M_PI}), "shape=(1,) dtype=float32\n[3.1415927]\n");
    ck_prints(vec(SG_F64, 1, (const double[]){M_PI}), "shape=(1,) dtype=float64\n[3.14159265]\n");
    ck_prints(vec(SG_F64, 1, (const double[]){0.1 + 0.2}), "shape=(1,) dtype=float64\n[0.3]\n");
    ck_prints(vec(SG_F64, 2, (const double[]){-0.0, 1.0}), "shape=(2,) dtype=float64\n[-0.  1.]\n");
    ck_prints(vec(SG_F64, 3, (const double[]){0.0, 0.0, 0.0}),
              "shape=(3,) dtype=float64\n[0. 0. 0.]\n");
    ck_prints(vec(SG_F64, 2, (const double[]){12345678.0, 0.5}),
              "shape=(2,) dtype=float64\n[1.2345678e+07 5.0000000e-01]\n");
    /* Scientific when small, large, or spread over more than 3 decades. */
    ck_prints(vec(SG_F64, 2, (const double[]){1e-5, 1.0}),
              "shape=(2,) dtype=float64\n[1.e-05 1.e+00]\n");
    ck_prints(vec(SG_F64, 2, (const double[]){1.5e-5, 1.0}),
              "shape=(2,) dtype=float64\n[1.5e-05 1.0e+00]\n");
    ck_prints(vec(SG_F64, 2, (const double[]){-1e-5, 1.0}),
              "shape=(2,) dtype=float64\n[-1.e-05  1.e+00]\n");
    ck_prints(vec(SG_F64, 2, (const double[]){1e8, 1.0}),
              "shape=(2,) dtype=float64\n[1.e+08 1.e+00]\n");
    ck_prints(vec(SG_F64, 2, (const double[]){1e-100, 1.0}),
              "shape=(2,) dtype=float64\n[1.e-100 1.e+000]\n");
    ck_prints(vec(SG_F64, 3, (const double[]){0.0, 1.0, 1001.0}),
              "shape=(3,) dtype=float64\n[0.000e+00 1.000e+00 1.001e+03]\n");
    ck_prints(vec(SG_F64, 2, (const double[]){1.0, 1000.0}),
              "shape=(2,) dtype=float64\n[   1. 1000.]\n");
    /* float32 values keep their own shortest digits in scientific mode too. */
    ck_prints(vec(SG_F32, 2, (const double[]){0.1, 1.2345678e-5}),
              "shape=(2,) dtype=float32\n[1.0000000e-01 1.2345678e-05]\n");
    /* Positional beyond 8 decimals rounds at the 8th. */
    ck_prints(vec(SG_F64, 2, (const double[]){0.000123456789, 0.01}),
              "shape=(2,) dtype=float64\n[0.00012346 0.01      ]\n");
    ck_no_error();
}
END_TEST

START_TEST(test_print_nonfinite) {
    ck_prints(vec(SG_F64, 4, (const double[]){NAN, INFINITY, -INFINITY, 1.5}),
              "shape=(4,) dtype=float64\n[ nan  inf -inf  1.5]\n");
    ck_prints(vec(SG_F32, 2, (const double[]){NAN, INFINITY}),
              "shape=(2,) dtype=float32\n[nan inf]\n");
    ck_prints(vec(SG_F32, 2, (const double[]){NAN, -INFINITY}),
              "shape=(2,) dtype=float32\n[ nan -inf]\n");
    ck_prints(vec(SG_F64, 2, (const double[]){NAN, 1e-5}),
              "shape=(2,) dtype=float64\n[   nan 1.e-05]\n"); /* nan fills the cell width */
    ck_prints(sg_scalar(ctx, SG_F64, NAN), "shape=() dtype=float64\nnan\n");
    ck_no_error();
}
END_TEST

START_TEST(test_print_summary) {
    /* numpy: print(np.arange(2000, dtype=np.float32)) */
    sg_tensor *a = sg_arange(ctx, SG_F32, 0, 2000, 1);
    ck_prints(a, "shape=(2000,) dtype=float32\n"
                 "[0.000e+00 1.000e+00 2.000e+00 ... 1.997e+03 1.998e+03 1.999e+03]\n");
    /* Exactly the threshold: all shown. */
    char *s = sg_print_str(sg_arange(ctx, SG_F64, 0, 1000, 1));
    ck_assert_ptr_null(strstr(s, "..."));
    sg_free(s);

    /* numpy: print(np.arange(10000.).reshape(100, 100)) */
    sg_tensor *m = sg_reshape(ctx, sg_arange(ctx, SG_F64, 0, 10000, 1), SG_SHAPE(100, 100));
    ck_prints(m, "shape=(100, 100) dtype=float64\n"
                 "[[0.000e+00 1.000e+00 2.000e+00 ... 9.700e+01 9.800e+01 9.900e+01]\n"
                 " [1.000e+02 1.010e+02 1.020e+02 ... 1.970e+02 1.980e+02 1.990e+02]\n"
                 " [2.000e+02 2.010e+02 2.020e+02 ... 2.970e+02 2.980e+02 2.990e+02]\n"
                 " ...\n"
                 " [9.700e+03 9.701e+03 9.702e+03 ... 9.797e+03 9.798e+03 9.799e+03]\n"
                 " [9.800e+03 9.801e+03 9.802e+03 ... 9.897e+03 9.898e+03 9.899e+03]\n"
                 " [9.900e+03 9.901e+03 9.902e+03 ... 9.997e+03 9.998e+03 9.999e+03]]\n");

    /* Only dimensions longer than 2 * 3 are cut; 3-D gets blank-line separators. */
    sg_tensor *c = sg_reshape(ctx, sg_arange(ctx, SG_F64, 0, 1040, 1), SG_SHAPE(2, 520, 1));
    s = sg_print_str(c);
    ck_assert_ptr_nonnull(strstr(s, "[[[0.000e+00]\n  [1.000e+00]\n  [2.000e+00]\n  ...\n"
                                    "  [5.170e+02]\n  [5.180e+02]\n  [5.190e+02]]\n\n"
                                    " [[5.200e+02]\n"));
    sg_free(s);
    ck_no_error();
}
END_TEST

START_TEST(test_print_file_and_bad_input) {
    sg_tensor *t = sg_arange(ctx, SG_F32, 0, 5, 1);
    sg_tensor_set_name(t, "ramp");
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    sg_print(t, f);
    long n = ftell(f);
    rewind(f);
    char buf[256] = {0};
    ck_assert_uint_eq(fread(buf, 1, sizeof buf - 1, f), (size_t)n);
    fclose(f);
    ck_assert_str_eq(buf, "ramp: shape=(5,) dtype=float32\n[0. 1. 2. 3. 4.]\n");

    ck_assert_ptr_null(sg_print_str(NULL));
    ck_no_error();
    sg_ctx_reset(ctx);
    ck_assert_ptr_null(sg_print_str(t)); /* stale */
    sg_ctx_clear_error(ctx);
}
END_TEST

/* ---- comparison ---------------------------------------------------------------------- */

START_TEST(test_compare) {
    const double x[6] = {1, 2, 3, 4, 5, 6};
    const double y[6] = {1, 2, 3, 4, 5, 6.5};
    sg_tensor *a = sg_from_data(ctx, SG_F64, SG_SHAPE(2, 3), x);
    sg_tensor *b = sg_from_data(ctx, SG_F64, SG_SHAPE(2, 3), y);
    sg_compare_result r;

    ck_assert_int_eq(sg_compare(ctx, a, a, 0, 0, &r), 0);
    ck_assert(r.max_abs == 0.0 && r.max_rel == 0.0 && r.n_mismatch == 0);

    ck_assert_int_eq(sg_compare(ctx, a, b, 1e-6, 1e-6, &r), 1);
    ck_assert(r.max_abs == 0.5);
    ck_assert_double_eq_tol(r.max_rel, 0.5 / 6.5, 1e-15);
    ck_assert_int_eq(r.worst_flat, 5);
    ck_assert_int_eq(r.worst_index[0], 1);
    ck_assert_int_eq(r.worst_index[1], 2);
    ck_assert_int_eq(r.n_mismatch, 1);
    /* Tolerance exactly at the difference: |a-b| <= atol + rtol*|b| passes. */
    ck_assert_int_eq(sg_compare(ctx, a, b, 0.0, 0.5, &r), 0);
    ck_assert(r.max_abs == 0.5 && r.n_mismatch == 0);
    ck_assert_int_eq(sg_compare(ctx, a, b, 0.5 / 6.5 + 1e-12, 0.0, NULL), 0);
    /* rtol is relative to b, not a (numpy.isclose is asymmetric). */
    ck_assert_int_eq(sg_compare(ctx, b, a, 0.5 / 6.5 + 1e-12, 0.0, NULL), 1);

    /* Dtypes may differ; strided views compare by logical position. */
    sg_tensor *af = sg_from_data(ctx, SG_F32, SG_SHAPE(2, 3), (const float[]){1, 2, 3, 4, 5, 6});
    ck_assert_int_eq(sg_compare(ctx, af, a, 0, 0, NULL), 0);
    sg_tensor *at = sg_contiguous(ctx, sg_transpose(ctx, a, 0, 1));
    ck_assert_int_eq(sg_compare(ctx, sg_transpose(ctx, at, 0, 1), a, 0, 0, &r), 0);
    ck_assert_int_eq(sg_compare(ctx, at, sg_transpose(ctx, b, 0, 1), 0, 0, &r), 1);
    ck_assert_int_eq(r.worst_flat, 5); /* (2, 1) of the (3, 2) view */
    ck_assert_int_eq(r.worst_index[0], 2);
    ck_assert_int_eq(r.worst_index[1], 1);
    ck_no_error();

    /* Shape mismatch. */
    sg_tensor *c = sg_tensor_new(ctx, SG_F64, SG_SHAPE(3, 2));
    ck_assert_int_eq(sg_compare(ctx, a, c, 0, 0, &r), -1);
    ck_error("sg_compare: shapes (2, 3) and (3, 2) differ");
    ck_assert_int_eq(sg_compare(ctx, a, sg_tensor_new(ctx, SG_F64, SG_SHAPE(6)), 0, 0, &r), -1);
    ck_error("sg_compare: shapes (2, 3) and (6,) differ");
    ck_assert_int_eq(sg_compare(ctx, a, a, -1.0, 0.0, &r), -1);
    ck_error("sg_compare: rtol and atol must be >= 0, got rtol=-1 atol=0");
    ck_assert_int_eq(sg_compare(ctx, a, NULL, 0, 0, &r), -1);
    ck_no_error();

    /* 0-d and empty tensors. */
    ck_assert_int_eq(
        sg_compare(ctx, sg_scalar(ctx, SG_F32, 1.0), sg_scalar(ctx, SG_F64, 1.5), 0, 0, &r), 1);
    ck_assert(r.max_abs == 0.5 && r.worst_flat == 0);
    sg_tensor *e = sg_tensor_new(ctx, SG_F32, SG_SHAPE(0, 4));
    ck_assert_int_eq(sg_compare(ctx, e, e, 0, 0, &r), 0);
    ck_assert(r.n_mismatch == 0 && r.worst_flat == -1);
    ck_no_error();
}
END_TEST

START_TEST(test_compare_nonfinite) {
    sg_compare_result r;
    sg_tensor *a = vec(SG_F64, 4, (const double[]){NAN, INFINITY, -INFINITY, 1.0});
    sg_tensor *b = vec(SG_F64, 4, (const double[]){NAN, INFINITY, -INFINITY, 1.0});
    ck_assert_int_eq(sg_compare(ctx, a, b, 0, 0, &r), 0); /* NaN equals NaN */
    ck_assert(r.max_abs == 0.0 && r.n_mismatch == 0);

    sg_tensor *c = vec(SG_F64, 4, (const double[]){NAN, INFINITY, -INFINITY, NAN});
    ck_assert_int_eq(sg_compare(ctx, a, c, 1, 1, &r), 1); /* number vs NaN */
    ck_assert(isinf(r.max_abs) && r.max_abs > 0 && isinf(r.max_rel));
    ck_assert_int_eq(r.worst_flat, 3);
    ck_assert_int_eq(r.worst_index[0], 3);
    ck_assert_int_eq(r.n_mismatch, 1);

    sg_tensor *d = vec(SG_F64, 4, (const double[]){1.0, -INFINITY, -INFINITY, 1.0});
    ck_assert_int_eq(sg_compare(ctx, a, d, 1, 1, &r), 1); /* NaN vs number, inf vs -inf */
    ck_assert_int_eq(r.n_mismatch, 2);
    ck_assert(isinf(r.max_abs));
    ck_assert_int_eq(r.worst_flat, 0);
    ck_assert_int_eq(sg_compare(ctx, d, a, 1, 1, &r), 1);
    ck_assert_int_eq(r.n_mismatch, 2);
    ck_no_error();
}
END_TEST

int main(void) {
    /* Check's 4 s is tight under sanitizers */
    const double timeout = getenv("CK_DEFAULT_TIMEOUT") ? 0 : 120;
    /* rng_zero_state has a short timeout of its own: a generator that loops fails there,
     * not after CK_DEFAULT_TIMEOUT. */
    const ck_tcase tcases[] = {
        {"rng_zero_state", 30, {{test_rng_zero_state, 1}, {test_rng_state_valid_and_null, 1}}},
        {"rng",
         timeout,
         {{test_rng_known_values, 1},
          {test_rng_reproducible, 1},
          {test_rng_uniform_range, 1},
          {test_rng_normal_moments, 1},
          {test_rng_below, 1}}},
        {"init",
         timeout,
         {{test_init_names, 1},
          {test_init_defaults, 1},
          {test_init_fans, 1},
          {test_truncation_constant, 1},
          {test_init_constant_kinds, 1},
          {test_init_uniform_stats, 1},
          {test_init_normal_stats, 1},
          {test_init_reproducible_and_strided, 1},
          {test_init_orthogonal, 1},
          {test_init_errors, 1},
          {test_rand_creators, 1}}},
        {"print",
         timeout,
         {{test_print_small, 1},
          {test_print_digits, 1},
          {test_print_nonfinite, 1},
          {test_print_summary, 1},
          {test_print_file_and_bad_input, 1}}},
        {"compare", timeout, {{test_compare, 1}, {test_compare_nonfinite, 1}}},
    };
    return CK_RUN("tensor_init", tcases, setup, teardown);
}
