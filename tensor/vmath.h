/* seqgrad vectorized elementwise math: exp, log, tanh and sigmoid over contiguous float32 /
 * float64 arrays, computed with SLEEF's 1.0-ULP vector functions on the widest instruction
 * set the CPU supports (chosen at run time; see tensor/vmath.c); float32 tanh on AVX-512 is
 * seqgrad's own, evaluated in double and rounded once.
 *
 * Common contract of every kernel below:
 *  - y[i] = f(x[i]) for i in [0, n). x and y must be contiguous arrays of n elements.
 *  - x and y may be the same pointer (in-place); otherwise they must not overlap.
 *  - n == 0 is a no-op: neither pointer is dereferenced (both may be NULL).
 *  - Each result depends only on x[i] and the dispatched ISA, never on n or on the
 *    element's position in the array (the tail goes through the same vector code).
 *  - Accuracy: at most 1.0 ULP from the exact result for exp, log and tanh (SLEEF _u10),
 *    for normal results. float32 tanh on AVX-512: the correctly rounded result for all
 *    but 40 of the 2^32 floats, those 1 ULP off (checked exhaustively against tanhl). Special values follow C99 Annex F: exp(-inf) = +0, exp(+inf) = +inf,
 *    log(+-0) = -inf, log(x < 0) = NaN, tanh(+-0) = +-0, NaN in gives NaN out.
 *  - The kernels are thread-safe and never allocate.
 */
#ifndef SG_VMATH_H
#define SG_VMATH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = e^x[i]. Overflows to +inf, underflows through the subnormals to +0. */
void sg_vexp_f32(size_t n, const float *x, float *y);
void sg_vexp_f64(size_t n, const double *x, double *y);

/* y[i] = ln x[i]. log(+-0) = -inf, log(+inf) = +inf, NaN for x < 0 (including -inf).
 * Subnormal inputs are handled exactly (no flush to zero). */
void sg_vlog_f32(size_t n, const float *x, float *y);
void sg_vlog_f64(size_t n, const double *x, double *y);

/* y[i] = tanh x[i]. Odd: tanh(-0) = -0; saturates to exactly +-1 for large |x|. */
void sg_vtanh_f32(size_t n, const float *x, float *y);
void sg_vtanh_f64(size_t n, const double *x, double *y);

/* y[i] = 1 / (1 + e^-x[i]), with e^-x from the SLEEF exp kernel. In [0, 1] for non-NaN x:
 * exactly 0 once e^-x overflows (x < about -88.7 for float32, -709.8 for float64), exactly 1
 * for large x, 1/2 for +-0, NaN for NaN. Error bound about 2.5 ULP (exp's 1 ULP plus the
 * rounding of the add and the divide); at most 2 ULP observed over 3e7 random inputs. */
void sg_vsigmoid_f32(size_t n, const float *x, float *y);
void sg_vsigmoid_f64(size_t n, const double *x, double *y);

/* Name of the instruction set the kernels currently dispatch to: "avx512f", "avx2" (AVX2 +
 * FMA), "sse4" (SSE4.1) or "scalar" (SLEEF's portable scalar functions). A static string;
 * the first call (or the first kernel call) picks the best one the CPU supports. */
const char *sg_vmath_isa(void);

/* Force the kernels onto one instruction set, for tests and benchmarks. name is one of the
 * names above, or NULL to go back to the best one for this CPU. Returns 0 on success, -1
 * (and changes nothing) if the name is unknown or the CPU does not support that ISA.
 * Process-wide; safe to call while other threads run kernels (each call uses whichever
 * setting it saw when it started). */
int sg_vmath_force_isa(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* SG_VMATH_H */
