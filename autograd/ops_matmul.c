/* Matrix multiplication: forward and backward. Every 2-D product, batched or not, forward
 * or backward, ends in gemm(), which takes one of three paths, checked in this order (an
 * empty product comes first: m or n zero does nothing, k zero zeroes C or leaves it as it
 * is when accumulating):
 *
 *  1. The register-blocked AVX-512 kernel (built only by GCC for x86-64; taken only when
 *     the CPU has AVX-512F, asked once). It needs B's and C's rows unit-stride (or n = 1)
 *     and one of two size conditions: either the product fits its limits (B at most
 *     SG_MATMUL_RB_MAX elements, and A with unit column stride, or at most 96 rows, or at
 *     most SG_MATMUL_RB_AT elements), or it has
 *     few rows and a long k (at most SG_MATMUL_RB_LONGK_M rows, twice that for an A with
 *     unit column stride, k at least SG_MATMUL_RB_LONGK), or at most SG_MATMUL_RB_WIDE_M
 *     rows of an A with unit column stride, any k and n: then k is taken in chunks and the
 *     next panel of B is prefetched.
 *     It does not split work across threads, so with more than one thread it takes only
 *     products below SG_MATMUL_SMALL and leaves the bigger ones to BLIS.
 *  2. BLIS (bli_sgemm / bli_dgemm), for products of at least SG_MATMUL_SMALL (48^3)
 *     multiply-adds whose three operands, once the strides of size-1 dimensions are
 *     normalised, pass BLIS's own stride rules (blis_ok).
 *  3. The direct kernel, for everything else: tiny products (below SG_MATMUL_SMALL, where
 *     BLIS's per-call set-up would cost more than the product) that the register-blocked
 *     kernel does not take, and operands of any size that BLIS would reject (a zero stride
 *     from sg_expand, strides that interleave rows and columns). Its loop order follows
 *     the strides.
 *
 * Shapes:
 *   (M, K)      @ (K, N)      -> (M, N)
 *   (..., M, K) @ (K, N)      -> (..., M, N)  leading dims of a are a batch (Dense on
 *                                             (B, T, H)); merged with M into ONE gemm of
 *                                             (B*T*M, K) @ (K, N) when a's strides allow
 *   (..., M, K) @ (..., K, N) -> (..., M, N)  same batch dims on both: one gemm per entry
 *
 * Every 2-D operand is described the way BLIS's typed API describes a matrix: a pointer to
 * element (0, 0), a row stride and a column stride. A transpose is therefore just swapped
 * strides and a slice just an offset: views are read in place, never copied. Backward uses
 * the same trick: dA += dC @ B^T and dB += A^T @ dC go straight into the (contiguous)
 * gradient buffers with beta = 1, with B^T and A^T expressed as strides.
 */
/* blis.h needs POSIX (pthread_barrier_t); it defines this itself, but only if it is the
 * first header to be included. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

#include <blis.h> /* found with -isystem: no warnings from its inline code */

/* Products with m * n * k below 48^3 never go to BLIS: without AVX-512 (or with strides
 * the register-blocked kernel below does not take) they go through the direct kernel. BLIS
 * packs its operands into cache-blocked panels and builds its control tree on every call,
 * a fixed cost per call, while the direct kernel has no setup at all; on small products
 * that fixed cost is most of BLIS's time, and the direct kernel's simpler loops win. The
 * threshold is where the two cross: timing both forms the direct kernel takes (C = A @ B,
 * and dA = dC @ B^T in its dot-product form) in both dtypes, the direct kernel is faster up
 * to 40^3 in every case and BLIS starts to win near 48^3, hence SG_MATMUL_SMALL (ops.h).
 * bench/README.md has the measurements. */

/* One 2-D operand: element (i, j) is p[i * rs + j * cs]. */
typedef struct {
    char *p;
    int64_t rs, cs;
} mat;

/* ---- threads ------------------------------------------------------------------------- */

/* BLIS would otherwise take its thread count from BLIS_NUM_THREADS / OMP_NUM_THREADS at
 * its first call; seqgrad's default is one thread (small models, no oversubscription when
 * the caller parallelises), applied once before the first BLIS call. */
static int g_threads = 1;
static pthread_once_t g_threads_once = PTHREAD_ONCE_INIT;
/* BLIS 0.9 (Debian 12) does not recognise AMD's Zen 5 (family 0x1A) and falls back to its
 * generic reference kernels, several times slower than its AVX-512 "skx" kernels there
 * (bench/README.md has the measurements). So, unless the user chose with BLIS_ARCH_TYPE,
 * pick skx on any CPU with AVX-512 before BLIS's first call (BLIS reads the variable as the
 * index of its arch_t enum). Elsewhere BLIS's own choice stands. */
static void blis_pick_arch(void) {
    if (getenv("BLIS_ARCH_TYPE"))
        return;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        char v[16];
        snprintf(v, sizeof v, "%d", (int)BLIS_ARCH_SKX);
        setenv("BLIS_ARCH_TYPE", v, 0);
    }
}

static void threads_init(void) {
    blis_pick_arch();
    bli_thread_set_num_threads(g_threads);
    /* gemm() only hands BLIS operands that pass blis_ok (BLIS's own stride rules) with
     * m, n, k >= 1, so BLIS's argument checks on every call are pure overhead, paid on
     * every product of every step (bench/README.md has the measurement). (The level is
     * BLIS's global, or per thread in some builds: it is set here, in the thread that
     * makes seqgrad's first BLIS call.) */
    bli_error_checking_level_set(BLIS_NO_ERROR_CHECKING);
}

const char *sg_blas_config(void) {
    pthread_once(&g_threads_once, threads_init);
    return bli_arch_string(bli_arch_query_id());
}

int sg_set_num_threads(int n) {
    pthread_once(&g_threads_once, threads_init);
    if (n < 1)
        n = 1;
    int prev = g_threads;
    g_threads = n;
    bli_thread_set_num_threads(n);
    return prev;
}

/* ---- the direct kernel --------------------------------------------------------------- */

/* c is (m, n), a is (m, k), b is (k, n), all strided; c = a @ b, or c += a @ b when acc.
 * The loop order follows the strides so that the innermost loop walks unit strides and
 * vectorizes:
 *  - rows of b and c contiguous (the forward of row-major data, dB += A^T @ dC): for each
 *    row i of c, c[i, :] += a[i, p] * b[p, :], an axpy over a contiguous row;
 *  - rows of a and columns of b contiguous (dA += dC @ B^T with B row-major): dot products;
 *  - anything else (expanded operands with stride 0, odd views): the plain triple loop. */
/* 64-byte vectors of float and double at any element-aligned address (GNU C vector
 * extension; one zmm register with AVX-512, two ymm or four xmm otherwise). */
typedef float vec_float __attribute__((vector_size(64), aligned(4), may_alias));
typedef double vec_double __attribute__((vector_size(64), aligned(8), may_alias));

#define DEF_SMALL(T)                                                                               \
    SG__SIMD_CLONES static void small_##T(int64_t m, int64_t n, int64_t k, const T *restrict a,    \
                                          int64_t rsa, int64_t csa, const T *restrict b,           \
                                          int64_t rsb, int64_t csb, T *restrict c, int64_t rsc,    \
                                          int64_t csc, bool acc) {                                 \
        if (csb == 1 && csc == 1) {                                                                \
            /* 64 bytes of c's row at a time, summed over p in one vector register (summing        \
             * into c itself would wait on a store for every p) */                                 \
            enum { W = 64 / sizeof(T) };                                                           \
            for (int64_t i = 0; i < m; i++) {                                                      \
                T *restrict ci = c + i * rsc;                                                      \
                const T *ai = a + i * rsa;                                                         \
                int64_t j = 0;                                                                     \
                for (; j + W <= n; j += W) {                                                       \
                    vec_##T blk = acc ? *(vec_##T *)(ci + j) : (vec_##T){0};                       \
                    for (int64_t p = 0; p < k; p++)                                                \
                        blk += ai[p * csa] * *(const vec_##T *)(b + p * rsb + j);                  \
                    *(vec_##T *)(ci + j) = blk;                                                    \
                }                                                                                  \
                if (j == n)                                                                        \
                    continue;                                                                      \
                if (!acc)                                                                          \
                    for (int64_t q = j; q < n; q++)                                                \
                        ci[q] = 0;                                                                 \
                for (int64_t p = 0; p < k; p++) {                                                  \
                    const T aip = ai[p * csa];                                                     \
                    const T *restrict bp = b + p * rsb;                                            \
                    for (int64_t q = j; q < n; q++)                                                \
                        ci[q] += aip * bp[q];                                                      \
                }                                                                                  \
            }                                                                                      \
        } else if (csa == 1 && rsb == 1) {                                                         \
            for (int64_t i = 0; i < m; i++) {                                                      \
                const T *restrict ai = a + i * rsa;                                                \
                for (int64_t j = 0; j < n; j++) {                                                  \
                    const T *restrict bj = b + j * csb;                                            \
                    /* 8 independent partial sums: vectorizes without -ffast-math */               \
                    T part[8] = {0}, s = 0;                                                        \
                    int64_t p = 0;                                                                 \
                    for (; p + 8 <= k; p += 8)                                                     \
                        for (int q = 0; q < 8; q++)                                                \
                            part[q] += ai[p + q] * bj[p + q];                                      \
                    for (; p < k; p++)                                                             \
                        s += ai[p] * bj[p];                                                        \
                    s += ((part[0] + part[1]) + (part[2] + part[3])) +                             \
                         ((part[4] + part[5]) + (part[6] + part[7]));                              \
                    T *cij = c + i * rsc + j * csc;                                                \
                    *cij = acc ? *cij + s : s;                                                     \
                }                                                                                  \
            }                                                                                      \
        } else {                                                                                   \
            for (int64_t i = 0; i < m; i++)                                                        \
                for (int64_t j = 0; j < n; j++) {                                                  \
                    T s = 0;                                                                       \
                    for (int64_t p = 0; p < k; p++)                                                \
                        s += a[i * rsa + p * csa] * b[p * rsb + j * csb];                          \
                    T *cij = c + i * rsc + j * csc;                                                \
                    *cij = acc ? *cij + s : s;                                                     \
                }                                                                                  \
        }                                                                                          \
    }
DEF_SMALL(float)
DEF_SMALL(double)

/* ---- the register-blocked kernel (AVX-512) ------------------------------------------ */

/* C (m, n) = A (m, k) @ B (k, n), or C += A @ B when acc, for B and C with unit column
 * stride (row-major, or a row-major slice) and A with any strides. A block of up to 6 rows
 * by 4 vectors of C (6 x 64 floats, 6 x 32 doubles) stays in 24 zmm registers while p
 * runs over k: per p, four loads of B's row p, one broadcast of A per row, 24 FMAs.
 * Nothing is packed: B's rows are read where they are; 96 rows of A at a time stay in
 * cache while B's 4-vector column panels pass, and each panel (k x 256 bytes) stays in L1
 * while the row blocks pass. The last vector of a row is masked, so any n works.
 *
 * Why not BLIS here: BLIS packs both operands on every call, and at an LSTM step's sizes
 * that is most of the product's time; this kernel packs nothing, and at those sizes it beats
 * BLIS's skx kernels. BLIS's cache blocking wins back on big products, and on a transposed
 * (strided) A of many rows, which it packs and this kernel re-reads for every column panel.
 * So gemm() comes here only within limits set where the two cross (SG_MATMUL_RB_* below):
 * B small enough to stay in cache (SG_MATMUL_RB_MAX elements), and a strided A only when it
 * is one row chunk (at most 96 rows, in cache while B's panels pass) or small
 * (SG_MATMUL_RB_AT elements); a row-major A of any number of rows (x @ kernel over a whole
 * sequence, dZ @ kernel^T), each chunk of 96 read once.
 * Exceptions: few rows and a long k, such as the fused layer's weight gradient x^T @ dZ
 * ((I, B*T) @ (B*T, 4H)), the recurrent one of sg_seqmm ((H, T*B) @ (T*B, 4H)) or a large
 * layer's dz @ rk^T ((B, 4H) @ (4H, H)), which BLIS runs well below its usual rate; and few
 * rows of a row-major A with a B too big for the limits (a large layer's h @ rk), which
 * BLIS packs on every call. Taken in chunks of 256 along k this kernel runs them much
 * faster, so they come here whatever their size. One thread: with more, BLIS splits the
 * products above SG_MATMUL_SMALL. FMA rounds once where the direct kernel rounds twice:
 * results differ from it in the last bit, as BLIS's do. bench/README.md has the
 * measurements behind these limits. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
#define SG_HAVE_RB 1
#define SG_MATMUL_RB_MAX (256 * 1024) /* most elements of B */
#define SG_MATMUL_RB_AT 8192    /* most elements of an A without unit column stride and > 96 rows */
#define SG_MATMUL_RB_LONGK 1024 /* ... or any size with a k this long */
#define SG_MATMUL_RB_LONGK_M 256 /* and at most this many rows */
#define SG_MATMUL_RB_WIDE_M 128  /* ... or at most this many rows of a row-major A, any k and n */

#define RB_TARGET __attribute__((target("avx512f")))
#define DEF_RB(T, V, VL, MASK, LOADZ, STOREM, FMA, SET1, ZERO)                                     \
    /* One block: rows i0..i0+MR of C, columns j0 .. j0 + NV vectors (the last one masked).        \
     * pf, when not NULL: npf vectors' lines of each row of the next panel of B, fetched into      \
     * L2 meanwhile. */                                                                            \
    RB_TARGET static inline __attribute__((always_inline)) void rb_block_##T(                      \
        int MR, int NV, int64_t k, const T *a, int64_t rsa, int64_t csa, const T *b, int64_t rsb,  \
        T *c, int64_t rsc, MASK last, bool acc, const T *pf, int npf) {                            \
        V cr[6][4];                                                                                \
        for (int r = 0; r < MR; r++)                                                               \
            for (int q = 0; q < NV; q++)                                                           \
                cr[r][q] =                                                                         \
                    acc ? LOADZ(q == NV - 1 ? last : (MASK)-1, c + r * rsc + q * VL) : ZERO();     \
        for (int64_t p = 0; p < k; p++) {                                                          \
            V bv[4];                                                                               \
            for (int q = 0; q < NV; q++)                                                           \
                bv[q] = LOADZ(q == NV - 1 ? last : (MASK)-1, b + p * rsb + q * VL);                \
            for (int q = 0; pf && q < npf; q++)                                                    \
                _mm_prefetch((const char *)(pf + p * rsb + q * VL), _MM_HINT_T1);                  \
            for (int r = 0; r < MR; r++) {                                                         \
                V av = SET1(a[r * rsa + p * csa]);                                                 \
                for (int q = 0; q < NV; q++)                                                       \
                    cr[r][q] = FMA(av, bv[q], cr[r][q]);                                           \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < MR; r++)                                                               \
            for (int q = 0; q < NV; q++)                                                           \
                STOREM(c + r * rsc + q * VL, q == NV - 1 ? last : (MASK)-1, cr[r][q]);             \
    }                                                                                              \
    /* One pass over C: 96 rows of A at a time (in cache while all of B's panels pass),            \
     * then each 4-vector panel of B (in L1 while the 16 row blocks pass). With `pf` four row      \
     * blocks spread over each panel's (one below four blocks) fetch the next panel into L2, one   \
     * line of each row each (see rb_##T): into L1 it would evict the panel in use, and from one   \
     * block alone the fetches queue up behind the memory's latency. With acc into a C             \
     * whose rows lie pages apart (where the hardware prefetcher does not follow), each block      \
     * fetches the next block's C: a fused LSTM step's h @ rk accumulates into its time step of    \
     * x @ kernel, computed long before and out of cache. Rows a page (4096 bytes) or more         \
     * apart mark that case; closer rows (the small LSTM's C) are in cache already, where the      \
     * prefetches would be pure cost. bench/README.md has the measurements. */                     \
    RB_TARGET static inline __attribute__((always_inline)) void rb_pass_##T(                       \
        int64_t m, int64_t n, int64_t k, const T *a, int64_t rsa, int64_t csa, const T *b,         \
        int64_t rsb, T *c, int64_t rsc, bool acc, bool pf) {                                       \
        bool pfc = acc && rsc * (int64_t)sizeof(T) >= 4096;                                        \
        for (int64_t i0 = 0; i0 < m; i0 += 96) {                                                   \
            int64_t i1 = m - i0 < 96 ? m : i0 + 96;                                                \
            /* which row blocks fetch (bi % ps == 0, bi / ps < 4), npf lines a row each */         \
            int64_t nb = (i1 - i0 + 5) / 6, ps = nb < 4 ? 4 : nb / 4;                              \
            int npf = nb < 4 ? 4 : 1;                                                              \
            for (int64_t j = 0; j < n; j += 4 * VL) {                                              \
                int64_t w = n - j < 4 * VL ? n - j : 4 * VL;                                       \
                int nv = (int)((w + VL - 1) / VL);                                                 \
                int tail = (int)(w - (int64_t)(nv - 1) * VL); /* 1 .. VL columns in the last */    \
                MASK last = (MASK)(((uint64_t)1 << tail) - 1);                                     \
                for (int64_t i = i0, bi = 0; i < i1; i += 6, bi++) {                               \
                    int mr = i1 - i < 6 ? (int)(i1 - i) : 6;                                       \
                    const T *ai = a + i * rsa;                                                     \
                    const T *pn = NULL;                                                            \
                    if (pf && j + 4 * VL < n && bi % ps == 0 && bi / ps < 4)                       \
                        pn = b + j + 4 * VL + bi / ps * VL;                                        \
                    T *ci = c + i * rsc + j;                                                       \
                    if (pfc) { /* the next block's C, read first thing there */                    \
                        int64_t ni = i + 6 < i1 ? i + 6 : i0, nj = i + 6 < i1 ? j : j + 4 * VL;    \
                        for (int64_t r = ni; nj < n && r < ni + 6 && r < i1; r++)                  \
                            for (int q = 0; q < 4; q++)                                            \
                                _mm_prefetch((const char *)(c + r * rsc + nj + q * VL),            \
                                             _MM_HINT_T0);                                         \
                    }                                                                              \
                    /* constant MR and NV in every call below: each its own unrolled block */      \
                    switch (mr * 4 + nv - 1) { RB_CASES(T) }                                       \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    /* the pass with and without the fetches of B, each compiled for its case */                   \
    RB_TARGET static void rb_pass_pf_##T(int64_t m, int64_t n, int64_t k, const T *a, int64_t rsa, \
                                         int64_t csa, const T *b, int64_t rsb, T *c, int64_t rsc,  \
                                         bool acc) {                                               \
        rb_pass_##T(m, n, k, a, rsa, csa, b, rsb, c, rsc, acc, true);                              \
    }                                                                                              \
    RB_TARGET static void rb_pass_nopf_##T(int64_t m, int64_t n, int64_t k, const T *a,            \
                                           int64_t rsa, int64_t csa, const T *b, int64_t rsb,      \
                                           T *c, int64_t rsc, bool acc) {                          \
        rb_pass_##T(m, n, k, a, rsa, csa, b, rsb, c, rsc, acc, false);                             \
    }                                                                                              \
    /* k in chunks of 256, one pass each (a long k: the weight gradient x^T @ dZ, k = B*T).        \
     * `pf`: B is too big to stay in cache between calls (that weight gradient's dZ), so each      \
     * panel would come from memory row by row, every row in another page where the hardware       \
     * prefetcher does not follow: fetch the next panel while this one is used, so that it is      \
     * in cache when its turn comes (bench/README.md has the measurements). */                     \
    RB_TARGET static void rb_##T(int64_t m, int64_t n, int64_t k, const T *a, int64_t rsa,         \
                                 int64_t csa, const T *b, int64_t rsb, T *c, int64_t rsc,          \
                                 bool acc, bool pf) {                                              \
        for (int64_t p0 = 0; p0 < k; p0 += 256) {                                                  \
            int64_t kc = k - p0 < 256 ? k - p0 : 256;                                              \
            if (pf)                                                                                \
                rb_pass_pf_##T(m, n, kc, a + p0 * csa, rsa, csa, b + p0 * rsb, rsb, c, rsc,        \
                               acc || p0 > 0);                                                     \
            else                                                                                   \
                rb_pass_nopf_##T(m, n, kc, a + p0 * csa, rsa, csa, b + p0 * rsb, rsb, c, rsc,      \
                                 acc || p0 > 0);                                                   \
        }                                                                                          \
    }

#define RB_CASE(T, MR, NV)                                                                         \
    case MR * 4 + NV - 1:                                                                          \
        rb_block_##T(MR, NV, k, ai, rsa, csa, b + j, rsb, ci, rsc, last, acc, pn, npf);            \
        break;
#define RB_ROW(T, MR) RB_CASE(T, MR, 1) RB_CASE(T, MR, 2) RB_CASE(T, MR, 3) RB_CASE(T, MR, 4)
#define RB_CASES(T) RB_ROW(T, 1) RB_ROW(T, 2) RB_ROW(T, 3) RB_ROW(T, 4) RB_ROW(T, 5) RB_ROW(T, 6)

DEF_RB(float, __m512, 16, __mmask16, _mm512_maskz_loadu_ps, _mm512_mask_storeu_ps, _mm512_fmadd_ps,
       _mm512_set1_ps, _mm512_setzero_ps)
DEF_RB(double, __m512d, 8, __mmask8, _mm512_maskz_loadu_pd, _mm512_mask_storeu_pd, _mm512_fmadd_pd,
       _mm512_set1_pd, _mm512_setzero_pd)

/* Does this CPU run the kernel (AVX-512F)? Asked once, thread-safely. */
static pthread_once_t g_rb_once = PTHREAD_ONCE_INIT;
static bool g_rb;
static void rb_init(void) {
    __builtin_cpu_init();
    g_rb = __builtin_cpu_supports("avx512f");
}
static bool rb_ok(void) {
    pthread_once(&g_rb_once, rb_init);
    return g_rb;
}
#else
#define SG_HAVE_RB 0
#endif

/* ---- BLIS ---------------------------------------------------------------------------- */

/* BLIS checks every operand's strides (bli_check_matrix_strides) and aborts on a bad
 * combination. The stride of a size-1 dimension is never used but can be anything in our
 * views (0 on the leading dim sg_expand adds to a vector, the parent's stride after a
 * length-1 slice, 1 from a transpose), so normalise it first to the stride a packed matrix
 * would have. */
static void normalise(int64_t m, int64_t n, int64_t *rs, int64_t *cs) {
    if (m == 1 && n == 1)
        *rs = *cs = 1;
    else if (m == 1)
        *rs = n * *cs;
    else if (n == 1)
        *cs = m * *rs;
}

/* The same rules as bli_check_matrix_strides (BLIS 0.9), for an (m, n) matrix with
 * m, n >= 1 and non-negative strides. A zero stride (an expanded operand) or strides that
 * interleave rows and columns fail; such operands go to the direct kernel. */
static bool blis_ok(int64_t m, int64_t n, int64_t rs, int64_t cs) {
    if (rs <= 0 || cs <= 0)
        return false;
    if (rs != 1 && cs != 1) {
        if (rs == cs)
            return m == 1 || n == 1;
        return rs < cs ? m * rs <= cs : n * cs <= rs;
    }
    if (rs == 1 && cs == 1)
        return m == 1 || n == 1;
    return rs == 1 ? cs >= m : rs >= n;
}

/* m * n * k, the size measure of a product, saturating: each of m * k, k * n and m * n is
 * an operand's element count (at most SG_NUMEL_MAX), but the three together need not fit
 * (a product of expanded views). */
static inline int64_t mnk_of(int64_t m, int64_t n, int64_t k) {
    int64_t r;
    return __builtin_mul_overflow(m * n, k, &r) ? INT64_MAX : r;
}

/* C (m, n) = A (m, k) @ B (k, n), or C += A @ B when acc. The operands come by pointer and
 * are read field by field: a 24-byte struct passed by value goes through the stack, copied
 * with 16-byte moves that wait for the 8-byte stores that built it (no store-to-load
 * forwarding across two stores), a stall on every product of a tiny step. */
static void gemm(sg_dtype dt, int64_t m, int64_t n, int64_t k, const mat *pa, const mat *pb,
                 const mat *pc, bool acc) {
    mat A = *pa, B = *pb, C = *pc;
    if (m == 0 || n == 0)
        return;
    const int64_t mnk = mnk_of(m, n, k);
    if (k == 0) { /* an empty sum: C = 0, or C unchanged */
        if (!acc)
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    int64_t o = i * C.rs + j * C.cs;
                    if (dt == SG_F32)
                        ((float *)C.p)[o] = 0;
                    else
                        ((double *)C.p)[o] = 0;
                }
        return;
    }
#if SG_HAVE_RB
    /* the register-blocked kernel, when B's and C's rows are unit-stride: below the size
     * limits above, or few rows with a long k (one thread: it does not split the work) */
    bool rows = (B.cs == 1 || n == 1) && (C.cs == 1 || n == 1);
    bool fits = k * n <= SG_MATMUL_RB_MAX && (A.cs == 1 || m <= 96 || m * k <= SG_MATMUL_RB_AT);
    bool longk = (m <= SG_MATMUL_RB_LONGK_M || (A.cs == 1 && m <= 2 * SG_MATMUL_RB_LONGK_M)) &&
                 k >= SG_MATMUL_RB_LONGK;
    bool wide = m <= SG_MATMUL_RB_WIDE_M && A.cs == 1;
    if (rows && (fits || longk || wide) && (g_threads == 1 || mnk < SG_MATMUL_SMALL) && rb_ok()) {
        if (dt == SG_F32)
            rb_float(m, n, k, (const float *)A.p, A.rs, A.cs, (const float *)B.p, B.rs,
                     (float *)C.p, C.rs, acc, !fits);
        else
            rb_double(m, n, k, (const double *)A.p, A.rs, A.cs, (const double *)B.p, B.rs,
                      (double *)C.p, C.rs, acc, !fits);
        return;
    }
#endif
    if (mnk >= SG_MATMUL_SMALL) {
        normalise(m, k, &A.rs, &A.cs);
        normalise(k, n, &B.rs, &B.cs);
        normalise(m, n, &C.rs, &C.cs);
        if (blis_ok(m, k, A.rs, A.cs) && blis_ok(k, n, B.rs, B.cs) && blis_ok(m, n, C.rs, C.cs)) {
            pthread_once(&g_threads_once, threads_init);
            if (dt == SG_F32) {
                float one = 1.0f, beta = acc ? 1.0f : 0.0f; /* beta = 0: C is not read */
                bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, (float *)A.p, A.rs,
                          A.cs, (float *)B.p, B.rs, B.cs, &beta, (float *)C.p, C.rs, C.cs);
            } else {
                double one = 1.0, beta = acc ? 1.0 : 0.0;
                bli_dgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, (double *)A.p, A.rs,
                          A.cs, (double *)B.p, B.rs, B.cs, &beta, (double *)C.p, C.rs, C.cs);
            }
            return;
        }
    }
    if (dt == SG_F32)
        small_float(m, n, k, (const float *)A.p, A.rs, A.cs, (const float *)B.p, B.rs, B.cs,
                    (float *)C.p, C.rs, C.cs, acc);
    else
        small_double(m, n, k, (const double *)A.p, A.rs, A.cs, (const double *)B.p, B.rs, B.cs,
                     (double *)C.p, C.rs, C.cs, acc);
}

void sg__gemm(sg_dtype dt, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa,
              const void *b, int64_t rsb, int64_t csb, void *c, int64_t rsc, int64_t csc,
              bool acc) {
    gemm(dt, m, n, k, &(mat){(char *)a, rsa, csa}, &(mat){(char *)b, rsb, csb},
         &(mat){(char *)c, rsc, csc}, acc);
}

/* ---- batches ------------------------------------------------------------------------- */

/* Can the dims (bshape[0..nb), inner) with strides (bst[0..nb), inner_st) be walked as ONE
 * strided dimension? Then its stride goes to *st. Size-1 dims do not matter. */
static bool fold(int nb, const int64_t *bshape, const int64_t *bst, int64_t inner, int64_t inner_st,
                 int64_t *st) {
    int64_t size = inner, s = inner_st;
    for (int d = nb - 1; d >= 0; d--) {
        if (bshape[d] == 1)
            continue;
        if (size == 1) {
            size = bshape[d];
            s = bst[d];
        } else if (bst[d] == s * size) {
            size *= bshape[d];
        } else {
            return false;
        }
    }
    *st = s;
    return true;
}

/* A batch operand: a matrix per entry of the batch dims, at p + sum(idx[d] * bst[d]);
 * bst == NULL means the same matrix for every entry (broadcast). */
typedef struct {
    mat m;
    const int64_t *bst;
} bmat;

/* For every index of the batch dims bshape[0..nb): C[idx] (+)= A[idx] @ B[idx], where
 * A[idx] is (m, k), B[idx] is (k, n), C[idx] is (m, n). A broadcast C receives the sum over
 * the batch (that is how dB of (..., M, K) @ (K, N) sums over the leading dims). Folds the
 * batch into one gemm when the strides allow: into m when B is broadcast (a Dense layer on
 * (B, T, H) is one (B*T, H) @ (H, N) gemm), into k when C is (the weight gradient of that
 * Dense layer is one (H, B*T) @ (B*T, N) gemm). Operands by pointer, as for gemm(). */
static void bgemm(sg_dtype dt, int nb, const int64_t *bshape, int64_t m, int64_t n, int64_t k,
                  const bmat *A, const bmat *B, const bmat *C, bool acc) {
    int64_t nbatch = 1, s0, s1;
    for (int d = 0; d < nb; d++)
        nbatch *= bshape[d];
    if (nbatch == 0)
        return;
    if (nbatch == 1) {
        gemm(dt, m, n, k, &A->m, &B->m, &C->m, acc);
        return;
    }
    if (!B->bst && A->bst && C->bst && fold(nb, bshape, A->bst, m, A->m.rs, &s0) &&
        fold(nb, bshape, C->bst, m, C->m.rs, &s1)) {
        gemm(dt, m * nbatch, n, k, &(mat){A->m.p, s0, A->m.cs}, &B->m, &(mat){C->m.p, s1, C->m.cs},
             acc);
        return;
    }
    if (!C->bst && A->bst && B->bst && fold(nb, bshape, A->bst, k, A->m.cs, &s0) &&
        fold(nb, bshape, B->bst, k, B->m.rs, &s1)) {
        gemm(dt, m, n, k * nbatch, &(mat){A->m.p, A->m.rs, s0}, &(mat){B->m.p, s1, B->m.cs}, &C->m,
             acc);
        return;
    }
    /* One gemm per batch entry, walking the batch dims with a multi-index counter. */
    int64_t es = (int64_t)sg_dtype_size(dt), idx[SG_MAX_DIMS] = {0}, oa = 0, ob = 0, oc = 0;
    for (int64_t it = 0; it < nbatch; it++) {
        gemm(dt, m, n, k, &(mat){A->m.p + oa * es, A->m.rs, A->m.cs},
             &(mat){B->m.p + ob * es, B->m.rs, B->m.cs}, &(mat){C->m.p + oc * es, C->m.rs, C->m.cs},
             acc || (!C->bst && it > 0));
        for (int d = nb - 1; d >= 0; d--) {
            int64_t sa = A->bst ? A->bst[d] : 0, sb = B->bst ? B->bst[d] : 0,
                    sc = C->bst ? C->bst[d] : 0;
            oa += sa;
            ob += sb;
            oc += sc;
            if (++idx[d] < bshape[d])
                break;
            oa -= sa * bshape[d];
            ob -= sb * bshape[d];
            oc -= sc * bshape[d];
            idx[d] = 0;
        }
    }
}

/* ---- matmul -------------------------------------------------------------------------- */

/* "sg_matmul: shapes (2, 3) and (4, 5)" followed by `what`; formatted only on error (the
 * forward of a tiny product costs less than one snprintf). */
static void *mm_error(sg_ctx *ctx, const sg_tensor *a, const sg_tensor *b, const char *what) {
    char sa[96], sb[96];
    return sg_error(ctx, "sg_matmul: shapes %s and %s%s",
                    sg_shape_str(a->ndim, a->shape, sa, sizeof sa),
                    sg_shape_str(b->ndim, b->shape, sb, sizeof sb), what);
}

/* a is (..., M, K), b is (K, N) or (..., K, N) with a's batch dims; out is (..., M, N).
 * Checks the shapes (errors name both) and writes the output shape. */
static bool mm_shapes(sg_ctx *ctx, const sg_tensor *a, const sg_tensor *b, int64_t *oshape) {
    char what[128];
    int nd = a->ndim;
    if (a->ndim < 2 || b->ndim < 2)
        return mm_error(ctx, a, b, ": both operands need at least 2 dimensions"), false;
    int64_t K = a->shape[nd - 1], N = b->shape[b->ndim - 1];
    if (b->shape[b->ndim - 2] != K) {
        snprintf(what, sizeof what, " do not match (inner %lld vs %lld)", (long long)K,
                 (long long)b->shape[b->ndim - 2]);
        return mm_error(ctx, a, b, what), false;
    }
    bool batched = b->ndim > 2;
    if (batched && b->ndim != nd)
        return mm_error(ctx, a, b, " do not match (b must be 2-D or have a's batch dimensions)"),
               false;
    for (int d = 0; batched && d < nd - 2; d++)
        if (a->shape[d] != b->shape[d]) {
            snprintf(what, sizeof what, " do not match (batch dimension %d: %lld vs %lld)", d,
                     (long long)a->shape[d], (long long)b->shape[d]);
            return mm_error(ctx, a, b, what), false;
        }
    memcpy(oshape, a->shape, sizeof(int64_t) * SG_MAX_DIMS);
    oshape[nd - 1] = N;
    return true;
}

/* out (+)= a @ b for an output of mm_shapes' shape. */
static void mm_forward(const sg_tensor *a, const sg_tensor *b, sg_tensor *out, bool acc) {
    int nd = a->ndim;
    bool batched = b->ndim > 2;
    int64_t M = a->shape[nd - 2], K = a->shape[nd - 1], N = b->shape[b->ndim - 1];
    bmat A = {{sg_data(a), a->stride[nd - 2], a->stride[nd - 1]}, a->stride};
    bmat B = {{sg_data(b), b->stride[b->ndim - 2], b->stride[b->ndim - 1]},
              batched ? b->stride : NULL};
    bmat C = {{sg_data(out), out->stride[nd - 2], out->stride[nd - 1]}, out->stride};
    bgemm(a->dtype, nd - 2, a->shape, M, N, K, &A, &B, &C, acc);
}

sg_tensor *sg_matmul(sg_ctx *ctx, sg_tensor *a, sg_tensor *b) {
    sg_tensor *in[2] = {a, b};
    int64_t oshape[SG_MAX_DIMS];
    if (!sg__check_inputs(ctx, "sg_matmul", 2, in) || !mm_shapes(ctx, a, b, oshape))
        return NULL;
    sg_tensor *out = sg__new(ctx, "sg_matmul", a->dtype, a->ndim, oshape, false);
    if (!out)
        return NULL;
    mm_forward(a, b, out, false);
    return sg__finish(ctx, out, SG_OP_MATMUL, 2, in);
}

/* out (contiguous) = c broadcast to out's shape (NumPy rules, checked by the caller): one
 * strided copy whose source strides are 0 on the broadcast dimensions. */
static void bcast_copy(sg_tensor *out, const sg_tensor *c) {
    int nd = out->ndim, lead = nd - c->ndim;
    int64_t st[SG_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++)
        st[d] = (d < lead || c->shape[d - lead] != out->shape[d]) ? 0 : c->stride[d - lead];
    sg__strided(false, out->dtype, sg_data(out), out->stride, sg_data(c), st, nd, out->shape);
}

/* out = c + a @ b, c broadcast to the product's shape (a bias (N,), a row, or a full
 * (..., M, N) tensor such as one time step of precomputed input projections). One node
 * and one buffer instead of matmul + add: BLIS accumulates onto the copy of c (beta = 1). */
sg_tensor *sg_addmm(sg_ctx *ctx, sg_tensor *c, sg_tensor *a, sg_tensor *b) {
    sg_tensor *in[3] = {a, b, c};
    int64_t oshape[SG_MAX_DIMS];
    if (!sg__check_inputs(ctx, "sg_addmm", 3, in) || !mm_shapes(ctx, a, b, oshape))
        return NULL;
    int nd = a->ndim, lead = nd - c->ndim;
    bool ok = lead >= 0;
    for (int d = 0; ok && d < c->ndim; d++)
        ok = c->shape[d] == 1 || c->shape[d] == oshape[d + lead];
    if (!ok) {
        char s1[96], s2[96];
        return sg_error(ctx, "sg_addmm: c of shape %s does not broadcast to the product's %s",
                        sg_shape_str(c->ndim, c->shape, s1, sizeof s1),
                        sg_shape_str(nd, oshape, s2, sizeof s2));
    }
    sg_tensor *out = sg__new(ctx, "sg_addmm", a->dtype, nd, oshape, false);
    if (!out)
        return NULL;
    if (sg_numel(out) > 0)
        bcast_copy(out, c);
    mm_forward(a, b, out, true);
    return sg__finish(ctx, out, SG_OP_ADDMM, 3, in);
}

/* c += a @ b in place, c of exactly the product's shape (e.g. one time step's slice of
 * precomputed input projections). addmm's backward reads a and b but not c, so c can be
 * overwritten whenever sg__inplace_check agrees. */
sg_tensor *sg_addmm_(sg_ctx *ctx, sg_tensor *c, sg_tensor *a, sg_tensor *b) {
    sg_tensor *in[3] = {a, b, c};
    int64_t oshape[SG_MAX_DIMS];
    if (!sg__check_inputs(ctx, "sg_addmm_", 3, in) || !mm_shapes(ctx, a, b, oshape))
        return NULL;
    if (c->ndim != a->ndim || memcmp(c->shape, oshape, sizeof(int64_t) * (size_t)c->ndim)) {
        char s1[96], s2[96];
        return sg_error(ctx,
                        "sg_addmm_: c has shape %s, the product %s (in place, they must be "
                        "equal)",
                        sg_shape_str(c->ndim, c->shape, s1, sizeof s1),
                        sg_shape_str(a->ndim, oshape, s2, sizeof s2));
    }
    if (!sg__inplace_check(ctx, "sg_addmm_", c, 2, in, false))
        return NULL;
    sg_tensor *out = sg__inplace_result(ctx, c);
    if (!out)
        return NULL;
    mm_forward(a, b, out, true);
    return sg__finish(ctx, out, SG_OP_ADDMM, 3, in);
}

/* out = c + a @ b: the matmul's gradients, and dc += dout summed over broadcast dims; a c of
 * out's shape (a time step's input projections) may take dout's buffer itself, once the
 * matmul's gradients have read it. */
void sg__bw_addmm(sg_ctx *ctx, sg_tensor *out) {
    sg__bw_matmul(ctx, out);
    if (sg__needs(out, 2))
        sg__pass_grad(ctx, out, out->src[2]);
}

/* out = a @ b; dA += dC @ B^T, dB += A^T @ dC. The transposes are stride swaps and the
 * gradient buffers are written in place with beta = 1. With b 2-D and a batched, dB is a
 * broadcast C in bgemm: summed over the batch, as one gemm when a's rows fold. */
/* dst (n, m) = src (m, n)^T, or += when acc: dst[j * drs + i] = src[i * srs + j * scs]. In
 * 32 x 32 tiles, so that both sides stay in cache, each tile written row by row: dst's rows
 * may lie a multiple of 4096 bytes apart, and writing down a column of them would put every
 * write in the same cache set. */
#define DEF_TRANSPOSE(T)                                                                           \
    static void transpose_##T(int64_t m, int64_t n, const T *restrict src, int64_t srs,            \
                              int64_t scs, T *restrict dst, int64_t drs, bool acc) {               \
        for (int64_t i0 = 0; i0 < m; i0 += 32)                                                     \
            for (int64_t j0 = 0; j0 < n; j0 += 32) {                                               \
                int64_t i1 = m - i0 < 32 ? m : i0 + 32, j1 = n - j0 < 32 ? n : j0 + 32;            \
                for (int64_t j = j0; j < j1; j++) {                                                \
                    T *restrict d = dst + j * drs;                                                 \
                    const T *restrict s = src + j * scs;                                           \
                    if (acc)                                                                       \
                        for (int64_t i = i0; i < i1; i++)                                          \
                            d[i] += s[i * srs];                                                    \
                    else                                                                           \
                        for (int64_t i = i0; i < i1; i++)                                          \
                            d[i] = s[i * srs];                                                     \
                }                                                                                  \
            }                                                                                      \
    }
DEF_TRANSPOSE(float)
DEF_TRANSPOSE(double)
#if SG_HAVE_RB
/* dst (16 rows drs apart) = src (16 rows srs apart, 16 unit-stride columns)^T, or += when
 * acc: the 16 x 16 block in registers (pairs of rows interleaved, then pairs of pairs, then
 * 128-bit lanes twice), 16 loads and 16 stores instead of 256 strided element moves. */
RB_TARGET static void transpose16_float(const float *src, int64_t srs, float *dst, int64_t drs,
                                        bool acc) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_ps(src + i * srs);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
    for (int i = 0; i < 16; i++)
        _mm512_storeu_ps(dst + i * drs,
                         acc ? _mm512_add_ps(_mm512_loadu_ps(dst + i * drs), r[i]) : r[i]);
}
#endif

static void transpose(sg_dtype dt, int64_t m, int64_t n, const void *src, int64_t srs, int64_t scs,
                      void *dst, int64_t drs, bool acc) {
#if SG_HAVE_RB
    if (dt == SG_F32 && scs == 1 && m >= 16 && n >= 16 && rb_ok()) {
        /* whole 16 x 16 blocks in registers; the strips right and below them as before */
        const float *s = src;
        float *d = dst;
        int64_t m16 = m & ~(int64_t)15, n16 = n & ~(int64_t)15;
        for (int64_t i0 = 0; i0 < m16; i0 += 16)
            for (int64_t j0 = 0; j0 < n16; j0 += 16)
                transpose16_float(s + i0 * srs + j0, srs, d + j0 * drs + i0, drs, acc);
        transpose_float(m, n - n16, s + n16, srs, 1, d + n16 * drs, drs, acc);
        transpose_float(m - m16, n16, s + m16 * srs, srs, 1, d + m16, drs, acc);
        return;
    }
#endif
    if (dt == SG_F32)
        transpose_float(m, n, src, srs, scs, dst, drs, acc);
    else
        transpose_double(m, n, src, srs, scs, dst, drs, acc);
}

/* B^T (N, K) for dA += dC @ B^T, as a row-major copy when that pays: with B row-major,
 * B^T as a strided view is column-major, and BLIS's skx kernels run that product much
 * slower than the same product on row-major operands (bench/README.md has the
 * measurements). A parameter does not change during a backward pass, so its copy is made
 * once and reused by every time step. The register-blocked kernel needs it too (B's rows
 * unit-stride): without the copy, a product below SG_MATMUL_SMALL falls to the direct
 * kernel's dot-product form, several times slower (a batch cut in two for two threads
 * lands there). Only tiny products, below SG_MATMUL_BT_COPY, read B^T as the strided view. */
#define SG_MATMUL_BT_COPY (16 * 16 * 16)
static mat bt_operand(sg_ctx *ctx, const sg_tensor *b, int64_t M, int64_t N, int64_t K) {
    int64_t rsb = b->stride[0], csb = b->stride[1];
    mat view = {sg_data(b), csb, rsb};
    if (b->ndim != 2 || !(b->flags & SG_FLAG_PERSISTENT) || csb != 1 ||
        mnk_of(M, N, K) < SG_MATMUL_BT_COPY)
        return view;
    for (int i = 0; i < ctx->tape.ntcache; i++)
        if (ctx->tape.tcache[i].src == b)
            return (mat){sg_data(ctx->tape.tcache[i].copy), K, 1};
    if (ctx->tape.ntcache == (int)(sizeof ctx->tape.tcache / sizeof ctx->tape.tcache[0]))
        return view;
    sg_tensor *t = sg__new(ctx, "sg_backward", b->dtype, 2, (int64_t[]){N, K}, false);
    if (!t) { /* out of memory for the copy: the view still works */
        sg_ctx_clear_error(ctx);
        return view;
    }
    char *dst = sg_data(t);
    transpose(b->dtype, K, N, sg_data(b), rsb, 1, dst, K, false);
    ctx->tape.tcache[ctx->tape.ntcache].src = b;
    ctx->tape.tcache[ctx->tape.ntcache++].copy = t;
    return (mat){dst, K, 1};
}

/* dA += dC @ B^T for a (..., M, K) @ b (K, N) or (..., K, N) with gradient dC (..., M, N). */
static void mm_grad_a(sg_ctx *ctx, sg_tensor *a, const sg_tensor *b, const sg_tensor *dC) {
    int nd = a->ndim, nb = nd - 2;
    bool batched = b->ndim > 2;
    int64_t M = a->shape[nd - 2], K = a->shape[nd - 1], N = b->shape[b->ndim - 1];
    int64_t rsb = b->stride[b->ndim - 2], csb = b->stride[b->ndim - 1];
    bmat G = {{sg_data(dC), dC->stride[nd - 2], dC->stride[nd - 1]}, dC->stride};
    sg_tensor *ga = sg__grad(ctx, a);
    if (!ga)
        return;
    bmat Bt = {batched ? (mat){sg_data(b), csb, rsb} : bt_operand(ctx, b, M, N, K),
               batched ? b->stride : NULL};
    bmat dA = {{sg_data(ga), ga->stride[nd - 2], ga->stride[nd - 1]}, ga->stride};
    bgemm(a->dtype, nb, a->shape, M, K, N, &G, &Bt, &dA, true);
}

/* dB += A^T @ dC for the same product, summed over the batch when b is 2-D. */
static void mm_grad_b(sg_ctx *ctx, const sg_tensor *a, sg_tensor *b, const sg_tensor *dC) {
    int nd = a->ndim, nb = nd - 2;
    bool batched = b->ndim > 2;
    int64_t M = a->shape[nd - 2], K = a->shape[nd - 1], N = b->shape[b->ndim - 1];
    bmat G = {{sg_data(dC), dC->stride[nd - 2], dC->stride[nd - 1]}, dC->stride};
    sg_tensor *gb = sg__grad(ctx, b);
    if (!gb)
        return;
    bmat At = {{sg_data(a), a->stride[nd - 1], a->stride[nd - 2]}, a->stride};
    bmat dB = {{sg_data(gb), gb->stride[b->ndim - 2], gb->stride[b->ndim - 1]},
               batched ? gb->stride : NULL};
    bgemm(a->dtype, nb, a->shape, K, N, M, &At, &G, &dB, true);
}

void sg__bw_matmul(sg_ctx *ctx, sg_tensor *out) {
    if (sg__needs(out, 0))
        mm_grad_a(ctx, out->src[0], out->src[1], out->grad);
    if (sg__needs(out, 1) && !ctx->has_err)
        mm_grad_b(ctx, out->src[0], out->src[1], out->grad);
}

/* ---- the sequence recurrent product ----------------------------------------------------
 * S = sg_seqmm(c, w), then S[t] += a_t @ w by sg_seqmm_step, one step at a time: the
 * recurrent product of an RNN layer, z_t = c_t + h_{t-1} @ w, whose a_t (h_{t-1}) is known
 * only once step t - 1 has run. Each step's backward computes da_t = dz_t @ w^T, which the
 * step before needs; the weight gradient dw = sum_t a_t^T @ dz_t needs no step before it,
 * so S's backward, which runs after every step's (S was recorded before them), does it as
 * ONE product (K, T*B) @ (T*B, N) over all the steps instead of T small ones (as oneDNN's
 * LSTM does): a step's dz_t is its slice of S's gradient (the step's gradient is a view into
 * it, as a slice's is), and each step keeps a copy of its a_t^T in S's buffer (K, T*B). */
enum { SEQMM_MAGIC = 0x4d515353 }; /* "SSQM" */
/* Up to this many rows of w, `at` keeps the steps' a_t as they are (rows, one copy each) and
 * the weight gradient reads its transpose as a strided view, which the register-blocked
 * kernel takes for up to 96 rows; above, a_t^T is copied (bench/README.md). */
#define SEQMM_ROWS_K 96
/* sg_seqmm_x leaves x_t @ kernel to the steps up to this many bytes a block (B, N)
 * (bench/README.md) */
#define SEQMM_X_BLOCK (256 * 1024)
typedef struct {
    uint32_t magic;    /* SEQMM_MAGIC: s is sg_seqmm's output (recorded or not) */
    sg_tensor *w;      /* (K, N) */
    sg_tensor *wf;     /* what the steps' products read: w, or w with padded rows (seqmm_wf) */
    sg_tensor *x, *kf; /* x (T, B, I) and its kernel as the steps read it (as wf) when the
                          steps compute x_t @ kernel (sg_seqmm_x, blocks up to SEQMM_X_BLOCK);
                          else NULL */
    sg_tensor *at;     /* (K, T*B): the steps' a_t transposed, a_t^T in columns t*B ..; or, when
                          seqmm_rows, (T*B, K): a_t itself in rows t*B ..; NULL when w needs no
                          gradient */
    int64_t lo, hi;    /* the steps whose a_t^T are in `at`: [lo, hi]; none while hi < lo */
    bool *taken;       /* (T): step t taken (each at most once: its node is S[t]'s only writer) */
} seqmm_saved;

/* Does `at` hold the steps' rows (w of at most SEQMM_ROWS_K rows)? */
static bool seqmm_rows(const seqmm_saved *sv) { return sv->w->shape[0] <= SEQMM_ROWS_K; }

/* A new tensor of `shape` whose rows (last dimension) are 64 bytes longer when their bytes
 * are a multiple of `align` (then not contiguous: the view is the rows' first columns). Rows a
 * multiple of 1024 bytes apart put a column of them into a quarter of L1's 64 sets or fewer, 4096
 * bytes apart into one set (of 12 lines), where they evict each other; and the hardware prefetcher
 * does not follow strides of a page. The register-blocked kernel reads B a panel of 64 columns at a
 * time over all its rows, which then has a quarter of L1 (align 1024); a transposed copy writes 16
 * rows at a time, which fit in a set's 12 lines four times over unless all 16 land in one (align
 * 4096). bench/README.md has the measurements. */
sg_tensor *sg__new_padded(sg_ctx *ctx, const char *fn, sg_dtype dt, int ndim, const int64_t *shape,
                          int64_t align) {
    const int64_t es = (int64_t)sg_dtype_size(dt), C = shape[ndim - 1];
    int64_t padded[SG_MAX_DIMS];
    memcpy(padded, shape, (size_t)ndim * sizeof *shape);
    padded[ndim - 1] += (C * es) % align == 0 ? 64 / es : 0;
    sg_tensor *p = sg__new(ctx, fn, dt, ndim, padded, false);
    if (p)
        p->shape[ndim - 1] = C;
    return p;
}

/* w as every step's product a_t @ w reads it: w, or when its rows are a multiple of 1024
 * bytes apart (an LSTM's 4H columns of float32 with H = 64, 256, 512) a copy, made once
 * here, with padded rows. */
static sg_tensor *seqmm_wf(sg_ctx *ctx, const char *fn, sg_tensor *w) {
    const int64_t es = (int64_t)sg_dtype_size(w->dtype);
    if (w->stride[1] != 1 || (w->stride[0] * es) % 1024 != 0)
        return w;
    sg_tensor *p = sg__new_padded(ctx, fn, w->dtype, 2, w->shape, 1024);
    if (p)
        sg__strided(false, w->dtype, sg_data(p), p->stride, sg_data(w), w->stride, 2, w->shape);
    return p;
}

/* The saved state of a new S (T, B, N) for w (K, N), and with `x` (sg_seqmm_x) x's kernel
 * as the steps read it; `grad`: keep the steps' a_t for w's gradient. False on error. */
static bool seqmm_save(sg_ctx *ctx, const char *fn, sg_tensor *out, sg_tensor *w, sg_tensor *x,
                       sg_tensor *k, bool grad) {
    seqmm_saved *sv = sg_arena_alloc(ctx, sizeof *sv);
    if (!sv)
        return false;
    const int64_t K = w->shape[0], T = out->shape[0], TB = T * out->shape[1];
    *sv = (seqmm_saved){.magic = SEQMM_MAGIC, .w = w, .x = x, .lo = 0, .hi = -1}; /* no step */
    sv->wf = seqmm_wf(ctx, fn, w);
    sv->kf = x ? seqmm_wf(ctx, fn, k) : NULL;
    sv->taken = sg_arena_alloc(ctx, (size_t)T);
    if (!sv->wf || (x && !sv->kf) || !sv->taken)
        return false;
    memset(sv->taken, 0, (size_t)T);
    if (grad && (w->flags & SG_FLAG_REQUIRES_GRAD) &&
        !(sv->at = seqmm_rows(sv)
                       ? sg__new(ctx, fn, out->dtype, 2, (int64_t[]){TB, K}, false)
                       : sg__new_padded(ctx, fn, out->dtype, 2, (int64_t[]){K, TB}, 4096)))
        return false;
    out->aux = sv;
    return true;
}

static sg_tensor *seqmm(sg_ctx *ctx, const char *fn, sg_tensor *c, sg_tensor *w, bool ip) {
    sg_tensor *in[2] = {c, w};
    char s1[96], s2[96];
    if (!sg__check_inputs(ctx, fn, 2, in))
        return NULL;
    if (c->ndim != 3 || w->ndim != 2 || c->shape[2] != w->shape[1])
        return sg_error(ctx, "%s: c has shape %s and w %s; expected (T, B, N) and (K, N)", fn,
                        sg_shape_str(c->ndim, c->shape, s1, sizeof s1),
                        sg_shape_str(w->ndim, w->shape, s2, sizeof s2));
    if (ip && !sg__inplace_check(ctx, fn, c, 1, &w, false))
        return NULL;
    sg_tensor *out =
        ip ? sg__inplace_result(ctx, c) : sg__new(ctx, fn, c->dtype, 3, c->shape, false);
    if (!out)
        return NULL;
    if (!ip)
        sg__strided(false, c->dtype, sg_data(out), out->stride, sg_data(c), c->stride, 3, c->shape);
    if (!seqmm_save(ctx, fn, out, w, NULL, NULL, sg__any_requires_grad(ctx, 2, in)))
        return NULL;
    return sg__finish(ctx, out, SG_OP_SEQMM, 2, in);
}

sg_tensor *sg_seqmm(sg_ctx *ctx, sg_tensor *c, sg_tensor *w) {
    return seqmm(ctx, "sg_seqmm", c, w, false);
}

sg_tensor *sg_seqmm_(sg_ctx *ctx, sg_tensor *c, sg_tensor *w) {
    return seqmm(ctx, "sg_seqmm_", c, w, true);
}

/* S's blocks are written by the steps alone: x_t @ kernel then a_t @ w, one block in cache
 * (bench/README.md has the measurement against a separate x @ kernel). */
sg_tensor *sg_seqmm_x(sg_ctx *ctx, sg_tensor *x, sg_tensor *kernel, sg_tensor *w) {
    sg_tensor *in[3] = {x, kernel, w};
    char s1[96], s2[96], s3[96];
    if (!sg__check_inputs(ctx, "sg_seqmm_x", 3, in))
        return NULL;
    if (x->ndim != 3 || kernel->ndim != 2 || w->ndim != 2 || x->shape[2] != kernel->shape[0] ||
        kernel->shape[1] != w->shape[1])
        return sg_error(ctx,
                        "sg_seqmm_x: x has shape %s, kernel %s and w %s; expected (T, B, I), "
                        "(I, N) and (K, N)",
                        sg_shape_str(x->ndim, x->shape, s1, sizeof s1),
                        sg_shape_str(kernel->ndim, kernel->shape, s2, sizeof s2),
                        sg_shape_str(w->ndim, w->shape, s3, sizeof s3));
    /* a block too big to stay in L2 between the two products: x @ kernel as one product now */
    const bool now = x->shape[1] * w->shape[1] * (int64_t)sg_dtype_size(x->dtype) > SEQMM_X_BLOCK;
    /* in anomaly mode, checked for NaN below: blocks not written yet read as 0 */
    sg_tensor *out =
        sg__new(ctx, "sg_seqmm_x", x->dtype, 3, (int64_t[]){x->shape[0], x->shape[1], w->shape[1]},
                !now && ctx->tape.anomaly);
    if (!out || !seqmm_save(ctx, "sg_seqmm_x", out, w, now ? NULL : x, kernel,
                            sg__any_requires_grad(ctx, 3, in)))
        return NULL;
    if (now)
        mm_forward(x, kernel, out, false);
    return sg__finish(ctx, out, SG_OP_SEQMM_X, 3, in);
}

/* at's columns of step t (B of them) = a^T, or with seqmm_rows its rows = a (the steps
 * between those written so far and t are zeroed: a step skipped adds nothing; t may be one
 * of them). Transposed now, while a is in cache, so that the weight gradient's product reads
 * a row-major (K, T*B) operand; a few rows of w are read as the transposed view instead. */
static void seqmm_keep(seqmm_saved *sv, int64_t t, const sg_tensor *a) {
    sg_tensor *at = sv->at;
    const bool rows = seqmm_rows(sv);
    int64_t K = a->shape[1], B = a->shape[0], ld = at->stride[0]; /* ld: for a_t^T */
    int64_t es = (int64_t)sg_dtype_size(at->dtype);
    char *base = sg_data(at);
    bool acc = sv->lo <= t && t <= sv->hi;
    if (!acc) {
        int64_t z0 = sv->hi < sv->lo ? t : t < sv->lo ? t + 1 : sv->hi + 1;
        int64_t z1 = sv->hi < sv->lo ? t : t < sv->lo ? sv->lo : t; /* zero steps [z0, z1) */
        if (rows && z1 > z0)
            memset(base + z0 * B * K * es, 0, (size_t)((z1 - z0) * B * K * es));
        for (int64_t k = 0; !rows && z1 > z0 && k < K; k++)
            memset(base + (k * ld + z0 * B) * es, 0, (size_t)((z1 - z0) * B * es));
        sv->lo = sv->hi < sv->lo || t < sv->lo ? t : sv->lo;
        sv->hi = sv->hi < t ? t : sv->hi;
    }
    if (rows)
        sg__strided(acc, at->dtype, base + t * B * K * es, (int64_t[]){K, 1}, sg_data(a), a->stride,
                    2, a->shape);
    else
        transpose(at->dtype, B, K, sg_data(a), a->stride[0], a->stride[1], base + t * B * es, ld,
                  acc);
}

/* Block t of a (T, B, N) tensor: a new (B, N) header over it, recorded nowhere. */
static sg_tensor *block(sg_ctx *ctx, const sg_tensor *s, int64_t t) {
    sg_tensor *x = sg__view_of(ctx, s);
    if (!x)
        return NULL;
    x->offset += t * s->stride[0];
    x->ndim = 2;
    for (int d = 0; d < 3; d++) {
        x->shape[d] = d < 2 ? s->shape[d + 1] : 0;
        x->stride[d] = d < 2 ? s->stride[d + 1] : 0;
    }
    return x;
}

sg_tensor *sg_seqmm_step(sg_ctx *ctx, sg_tensor *s, int64_t t, sg_tensor *a) {
    sg_tensor *in[2] = {s, a};
    const int n = a ? 2 : 1;
    char s1[96], s2[96];
    if (!sg__check_inputs(ctx, "sg_seqmm_step", n, in))
        return NULL;
    seqmm_saved *sv = s->aux;
    if (!sv || sv->magic != SEQMM_MAGIC)
        return sg_error(ctx, "sg_seqmm_step: s is not the result of sg_seqmm or sg_seqmm_");
    sg_tensor *w = sv->w;
    int64_t T = s->shape[0], B = s->shape[1], K = w->shape[0];
    if (t < 0 || t >= T)
        return sg_error(ctx, "sg_seqmm_step: step %lld outside 0..%lld", (long long)t,
                        (long long)T - 1);
    if (a && (a->ndim != 2 || a->shape[0] != B || a->shape[1] != K))
        return sg_error(ctx, "sg_seqmm_step: a has shape %s, expected %s",
                        sg_shape_str(a->ndim, a->shape, s1, sizeof s1),
                        sg_shape_str(2, (int64_t[]){B, K}, s2, sizeof s2));
    if (sv->taken[t])
        return sg_error(ctx, "sg_seqmm_step: step %lld taken already", (long long)t);
    sg_tensor *x = block(ctx, s, t); /* the block this step completes */
    sg_tensor *xt = sv->x ? block(ctx, sv->x, t) : NULL;
    if (!x || (sv->x && !xt) || !sg__inplace_check(ctx, "sg_seqmm_step", x, n - 1, &a, false))
        return NULL;
    sg_tensor *out = sg__inplace_result(ctx, x);
    if (!out)
        return NULL;
    if (xt)
        mm_forward(xt, sv->kf, out, false);
    if (a)
        mm_forward(a, sv->wf, out, true);
    sv->taken[t] = true;
    out->iparam[0] = 0; /* axis and index of the slice of S it is (grad.c's view into S's) */
    out->iparam[1] = t;
    if (a && sv->at && sg__any_requires_grad(ctx, 2, in))
        seqmm_keep(sv, t, a);
    return sg__finish(ctx, out, SG_OP_SEQMM_STEP, n, in);
}

/* out = S[t] after S[t] += a @ w: dz into S's gradient (already there when out's gradient is
 * a view into it), then da += dz @ w^T with dz all of S's gradient at t: S itself may be read
 * too once complete (its values are then the sums this step made). */
void sg__bw_seqmm_step(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *s = out->src[0];
    const seqmm_saved *sv = s->aux;
    sg__bw_slice(ctx, out);
    if (!sg__needs(out, 1) || ctx->has_err)
        return;
    const sg_tensor *dz = out->grad;
    if (sg__needs(out, 0) && !(dz->flags & SG_FLAG_GRAD_ALIAS) &&
        !(dz = block(ctx, s->grad, out->iparam[1])))
        return;
    mm_grad_a(ctx, out->src[1], sv->w, dz);
}

/* S = c + (the steps' a_t @ w): dw += A^T @ dS over the steps taken (A^T kept by the
 * steps), as one product;
 * dc += dS, by handing dS over when c has no gradient yet. */
void sg__bw_seqmm(sg_ctx *ctx, sg_tensor *out) {
    const seqmm_saved *sv = out->aux;
    sg_tensor *dS = out->grad, *c = out->src[0];
    if (sg__needs(out, out->op == SG_OP_SEQMM_X ? 2 : 1) && sv->at && sv->lo <= sv->hi) {
        const sg_tensor *at = sv->at;
        sg_tensor *gw = sg__grad(ctx, sv->w);
        if (!gw)
            return;
        int64_t B = out->shape[1], K = sv->w->shape[0], N = dS->shape[2],
                n = (sv->hi - sv->lo + 1) * B;
        int64_t es = (int64_t)sg_dtype_size(at->dtype);
        /* (K, n) @ (n, N): the columns of steps lo .. hi of at (or the transpose of its rows),
         * the rows of dS (a gradient buffer: unit-stride rows, maybe padded) */
        mat A = seqmm_rows(sv) ? (mat){(char *)sg_data(at) + sv->lo * B * K * es, 1, K}
                               : (mat){(char *)sg_data(at) + sv->lo * B * es, at->stride[0], 1};
        gemm(at->dtype, K, N, n, &A,
             &(mat){(char *)sg_data(dS) + sv->lo * dS->stride[0] * es, dS->stride[1], 1},
             &(mat){sg_data(gw), gw->stride[0], gw->stride[1]}, true);
    }
    if (out->op == SG_OP_SEQMM_X) { /* S = x @ kernel + ...: matmul's backward */
        sg__bw_matmul(ctx, out);
        return;
    }
    if (sg__needs(out, 0))
        sg__pass_grad(ctx, out, c);
}
