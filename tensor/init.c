/* Keras initializers (tf.keras.initializers) and the sg_rand_* creators.
 *
 * Formulas follow keras/initializers/initializers_v2.py: VarianceScaling (glorot, he,
 * lecun), RandomUniform/RandomNormal/TruncatedNormal, and Orthogonal (Saxe et al., "Exact
 * solutions to the nonlinear dynamics of learning in deep linear neural networks", 2014).
 *
 * Every initializer writes its draws in row-major order of t's logical shape, whatever
 * t's strides: a transposed view receives the same sequence as a contiguous tensor of the
 * view's shape, so results depend only on (shape, seed), never on memory layout.
 * The distributions are Keras'; the streams are not (TensorFlow draws with Philox), so the
 * same seed does not give TensorFlow's numbers.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* Keras' correction: the standard deviation of a unit normal truncated to [-2, 2]. Dividing
 * by it makes the truncated draws have exactly the variance VarianceScaling asks for. */
#define TRUNC_STD 0.87962566103423978

static const struct {
    const char *name;  /* snake_case, as in tf.keras.initializers.get("...") */
    const char *klass; /* Keras class name, as found in saved model configs */
} names[SG_INIT_COUNT] = {
    [SG_INIT_ZEROS] = {"zeros", "Zeros"},
    [SG_INIT_ONES] = {"ones", "Ones"},
    [SG_INIT_CONSTANT] = {"constant", "Constant"},
    [SG_INIT_RANDOM_UNIFORM] = {"random_uniform", "RandomUniform"},
    [SG_INIT_RANDOM_NORMAL] = {"random_normal", "RandomNormal"},
    [SG_INIT_TRUNCATED_NORMAL] = {"truncated_normal", "TruncatedNormal"},
    [SG_INIT_GLOROT_UNIFORM] = {"glorot_uniform", "GlorotUniform"},
    [SG_INIT_GLOROT_NORMAL] = {"glorot_normal", "GlorotNormal"},
    [SG_INIT_HE_UNIFORM] = {"he_uniform", "HeUniform"},
    [SG_INIT_HE_NORMAL] = {"he_normal", "HeNormal"},
    [SG_INIT_LECUN_UNIFORM] = {"lecun_uniform", "LecunUniform"},
    [SG_INIT_LECUN_NORMAL] = {"lecun_normal", "LecunNormal"},
    [SG_INIT_ORTHOGONAL] = {"orthogonal", "Orthogonal"},
};

sg_init sg_init_default(sg_init_kind kind) {
    sg_init in = {kind, 0.0, 0.0};
    switch (kind) {
    case SG_INIT_RANDOM_UNIFORM:
        in.a = -0.05;
        in.b = 0.05;
        break;
    case SG_INIT_RANDOM_NORMAL:
    case SG_INIT_TRUNCATED_NORMAL:
        in.a = 0.0;
        in.b = 0.05;
        break;
    case SG_INIT_ORTHOGONAL: in.a = 1.0; break;
    default: break;
    }
    return in;
}

const char *sg_init_name(sg_init_kind kind) {
    if ((int)kind < 0 || kind >= SG_INIT_COUNT)
        return NULL;
    return names[kind].name;
}

int sg_init_from_name(const char *name) {
    if (!name)
        return -1;
    for (int k = 0; k < SG_INIT_COUNT; k++)
        if (!strcmp(name, names[k].name) || !strcmp(name, names[k].klass))
            return k;
    return -1;
}

void sg_init_fans(int ndim, const int64_t *shape, double *fan_in, double *fan_out) {
    double fi = 1.0, fo = 1.0;
    if (ndim == 1 && shape) {
        fi = fo = (double)shape[0];
    } else if (ndim == 2 && shape) {
        fi = (double)shape[0];
        fo = (double)shape[1];
    } else if (ndim > 2 && shape) {
        /* Convolution kernels (..., in, out): each output sees the receptive field of every
         * input channel. */
        double rf = 1.0;
        for (int i = 0; i < ndim - 2; i++)
            rf *= (double)shape[i];
        fi = (double)shape[ndim - 2] * rf;
        fo = (double)shape[ndim - 1] * rf;
    }
    if (fan_in)
        *fan_in = fi;
    if (fan_out)
        *fan_out = fo;
}

/* Values are drawn in row-major order whatever t's strides (the iterator walks in that
 * order), so a view gets the same values as a contiguous tensor of its shape. */

/* A uniform draw in [lo, hi) after rounding to the tensor's dtype: lo + (hi - lo) * u can
 * round up to hi (often in float32, rarely in float64), breaking the half-open range. */
static double uniform_in(sg_rng *rng, sg_dtype dt, double lo, double hi) {
    double v = lo + (hi - lo) * sg_rng_uniform(rng);
    if (!(lo < hi))
        return v;
    if (dt == SG_F32) {
        float f = (float)v, fh = (float)hi;
        if (f >= fh) {
            f = nextafterf(fh, -INFINITY);
            if (f < (float)lo)
                f = (float)lo;
        }
        return f;
    }
    if (v >= hi)
        v = nextafter(hi, -INFINITY) < lo ? lo : nextafter(hi, -INFINITY);
    return v;
}

static void fill_uniform(sg_tensor *t, sg_rng *rng, double lo, double hi) {
    sg_iter it;
    sg__iter_of(&it, 1, (const sg_tensor *const[]){t});
    SG_ITER_LOOP(&it, sg__st(t, i0, uniform_in(rng, t->dtype, lo, hi)));
}

static void fill_normal(sg_tensor *t, sg_rng *rng, double mean, double std) {
    sg_iter it;
    sg__iter_of(&it, 1, (const sg_tensor *const[]){t});
    SG_ITER_LOOP(&it, sg__st(t, i0, mean + std * sg_rng_normal(rng)));
}

/* TensorFlow's truncated_normal: a unit normal redrawn while |z| > 2, then scaled. A draw
 * is redrawn with probability 0.0455, so 64 redraws in a row never happen; the bound only
 * makes sure this returns whatever the generator does. */
static double truncated(sg_rng *rng) {
    for (int k = 0; k < 64; k++) {
        double z = sg_rng_normal(rng);
        if (fabs(z) <= 2.0)
            return z;
    }
    return 0.0;
}
static void fill_truncated(sg_tensor *t, sg_rng *rng, double mean, double std) {
    sg_iter it;
    sg__iter_of(&it, 1, (const sg_tensor *const[]){t});
    SG_ITER_LOOP(&it, sg__st(t, i0, mean + std * truncated(rng)));
}

static void fill_const(sg_tensor *t, double v) {
    sg_iter it;
    sg__iter_of(&it, 1, (const sg_tensor *const[]){t});
    SG_ITER_LOOP(&it, sg__st(t, i0, v));
}

/* ---- orthogonal ------------------------------------------------------------------------ */

/* Thin QR of the m x n (m >= n) matrix a by Householder reflections, in place. Matrices
 * are stored column-major (column j at a + j * m) so that every inner loop runs over
 * contiguous memory. On return q (m x n, column-major) has orthonormal columns, column j
 * multiplied by sign(R[j][j]). That product is the Q of the unique QR factorisation whose
 * R has a positive diagonal, so the result does not depend on the QR algorithm and matches
 * TensorFlow's qr + "q *= sign(diag(r))" (up to rounding) for the same draws.
 * rdiag is scratch of n doubles. */
static void householder_q(double *a, double *q, double *rdiag, int64_t m, int64_t n) {
    /* Factorisation: reflector k overwrites column k of a, rows k..m-1, with unit norm. */
    for (int64_t k = 0; k < n; k++) {
        double *v = a + k * m;
        double norm = 0.0;
        for (int64_t i = k; i < m; i++)
            norm += v[i] * v[i];
        norm = sqrt(norm);
        /* alpha takes the sign opposite to v[k] so that v[k] - alpha does not cancel. */
        double alpha = v[k] >= 0.0 ? -norm : norm;
        rdiag[k] = alpha;
        v[k] -= alpha;
        double vnorm = 0.0;
        for (int64_t i = k; i < m; i++)
            vnorm += v[i] * v[i];
        vnorm = sqrt(vnorm);
        if (vnorm == 0.0) { /* nothing to reflect: identity */
            for (int64_t i = k; i < m; i++)
                v[i] = 0.0;
            continue;
        }
        for (int64_t i = k; i < m; i++)
            v[i] /= vnorm;
        /* Apply H = I - 2 v v^T to the remaining columns. */
        for (int64_t j = k + 1; j < n; j++) {
            double *c = a + j * m, dot = 0.0;
            for (int64_t i = k; i < m; i++)
                dot += v[i] * c[i];
            dot *= 2.0;
            for (int64_t i = k; i < m; i++)
                c[i] -= dot * v[i];
        }
    }
    /* Q = H_0 H_1 ... H_{n-1} [I_n; 0], accumulated backwards so that reflector k touches
     * only rows k..m-1 of columns k..n-1. */
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++)
            q[j * m + i] = i == j ? 1.0 : 0.0;
    for (int64_t k = n - 1; k >= 0; k--) {
        const double *v = a + k * m;
        for (int64_t j = k; j < n; j++) {
            double *c = q + j * m, dot = 0.0;
            for (int64_t i = k; i < m; i++)
                dot += v[i] * c[i];
            dot *= 2.0;
            for (int64_t i = k; i < m; i++)
                c[i] -= dot * v[i];
        }
    }
    for (int64_t j = 0; j < n; j++) {
        /* tf.sign(0) would zero the column; a zero pivot has probability zero for normal
         * draws, and keeping the column leaves Q orthogonal, so treat 0 as +1. */
        if (rdiag[j] < 0.0)
            for (int64_t i = 0; i < m; i++)
                q[j * m + i] = -q[j * m + i];
    }
}

static int fill_orthogonal(sg_ctx *ctx, sg_tensor *t, sg_rng *rng, double gain) {
    if (t->ndim < 2) {
        char b[96];
        sg_error(ctx, "sg_init_tensor: orthogonal needs at least 2 dimensions, got %s",
                 sg_shape_str(t->ndim, t->shape, b, sizeof b));
        return -1;
    }
    int64_t cols = t->shape[t->ndim - 1], rows = 1;
    for (int i = 0; i < t->ndim - 1; i++)
        rows *= t->shape[i];
    if (rows == 0 || cols == 0)
        return 0;
    int64_t m = rows > cols ? rows : cols, n = rows > cols ? cols : rows;
    if ((uint64_t)m > SIZE_MAX / sizeof(double) / (uint64_t)n / 2) {
        sg_error(ctx, "sg_init_tensor: orthogonal matrix %lld x %lld is too large", (long long)rows,
                 (long long)cols);
        return -1;
    }
    size_t mn = (size_t)m * (size_t)n;
    double *a = sg_malloc(mn * sizeof(double));
    double *q = sg_malloc(mn * sizeof(double));
    double *rd = sg_malloc((size_t)n * sizeof(double));
    if (!a || !q || !rd) {
        sg_free(a);
        sg_free(q);
        sg_free(rd);
        sg_error(ctx, "sg_init_tensor: out of memory for a %lld x %lld orthogonal matrix",
                 (long long)rows, (long long)cols);
        return -1;
    }
    /* Keras draws random_normal(flat_shape = (max, min)) row-major: same order here, stored
     * column-major for the QR. */
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            a[j * m + i] = sg_rng_normal(rng);
    householder_q(a, q, rd, m, n);
    /* Keras transposes Q when the matrix is wide, so its rows are orthonormal. */
    sg_iter it;
    sg__iter_flat(&it, t);
    SG_ITER_LOOP(&it, const int64_t i = i1 / cols; const int64_t j = i1 % cols;
                 sg__st(t, i0, gain * (rows >= cols ? q[j * m + i] : q[i * m + j])));
    sg_free(a);
    sg_free(q);
    sg_free(rd);
    return 0;
}

/* ---- entry points -------------------------------------------------------------------- */

int sg_init_tensor(sg_ctx *ctx, sg_tensor *t, sg_init init, sg_rng *rng) {
    if (!ctx || !t || !sg_check(ctx, t, "sg_init_tensor"))
        return -1;
    if ((int)init.kind < 0 || init.kind >= SG_INIT_COUNT) {
        sg_error(ctx, "sg_init_tensor: unknown initializer kind %d", (int)init.kind);
        return -1;
    }
    const char *name = names[init.kind].name;
    if (!rng) {
        sg_error(ctx, "sg_init_tensor: rng is NULL");
        return -1;
    }
    if (!sg_dtype_is_float(t->dtype)) {
        sg_error(ctx, "sg_init_tensor: %s fills float32 or float64 tensors, not %s", name,
                 sg_dtype_name(t->dtype));
        return -1;
    }
    switch (init.kind) {
    case SG_INIT_ZEROS: fill_const(t, 0.0); return 0;
    case SG_INIT_ONES: fill_const(t, 1.0); return 0;
    case SG_INIT_CONSTANT: fill_const(t, init.a); return 0;
    case SG_INIT_RANDOM_UNIFORM:
        if (!(init.a <= init.b)) {
            sg_error(ctx, "sg_init_tensor: %s needs minval <= maxval, got minval=%g maxval=%g",
                     name, init.a, init.b);
            return -1;
        }
        fill_uniform(t, rng, init.a, init.b);
        return 0;
    case SG_INIT_RANDOM_NORMAL:
    case SG_INIT_TRUNCATED_NORMAL:
        if (!(init.b > 0.0)) {
            sg_error(ctx, "sg_init_tensor: %s needs stddev > 0, got %g", name, init.b);
            return -1;
        }
        if (init.kind == SG_INIT_RANDOM_NORMAL)
            fill_normal(t, rng, init.a, init.b);
        else
            fill_truncated(t, rng, init.a, init.b);
        return 0;
    case SG_INIT_ORTHOGONAL: return fill_orthogonal(ctx, t, rng, init.a);
    default: break;
    }
    /* VarianceScaling. */
    double fan_in, fan_out, scale;
    sg_init_fans(t->ndim, t->shape, &fan_in, &fan_out);
    if (init.kind == SG_INIT_GLOROT_UNIFORM || init.kind == SG_INIT_GLOROT_NORMAL)
        scale = 1.0 / fmax(1.0, (fan_in + fan_out) / 2.0);
    else if (init.kind == SG_INIT_HE_UNIFORM || init.kind == SG_INIT_HE_NORMAL)
        scale = 2.0 / fmax(1.0, fan_in);
    else /* lecun */
        scale = 1.0 / fmax(1.0, fan_in);
    if (init.kind == SG_INIT_GLOROT_UNIFORM || init.kind == SG_INIT_HE_UNIFORM ||
        init.kind == SG_INIT_LECUN_UNIFORM) {
        double limit = sqrt(3.0 * scale);
        fill_uniform(t, rng, -limit, limit);
    } else {
        fill_truncated(t, rng, 0.0, sqrt(scale) / TRUNC_STD);
    }
    return 0;
}

sg_tensor *sg_rand_uniform(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, double lo,
                           double hi) {
    if (!ctx)
        return NULL;
    if (!(lo <= hi))
        return sg_error(ctx, "sg_rand_uniform: needs lo <= hi, got lo=%g hi=%g", lo, hi);
    if (ndim > 0 && !shape)
        return sg_error(ctx, "sg_rand_uniform: shape is NULL for %d dimensions", ndim);
    if (dt == SG_I64 || dt == SG_I32)
        return sg_error(ctx, "sg_rand_uniform: draws float32 or float64, not %s",
                        sg_dtype_name(dt));
    sg_tensor *t = sg__new(ctx, "sg_rand_uniform", dt, ndim, shape, false);
    if (!t)
        return NULL;
    fill_uniform(t, sg_ctx_rng(ctx), lo, hi);
    return t;
}

sg_tensor *sg_rand_normal(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, double mean,
                          double std) {
    if (!ctx)
        return NULL;
    if (!(std >= 0.0))
        return sg_error(ctx, "sg_rand_normal: needs std >= 0, got %g", std);
    if (ndim > 0 && !shape)
        return sg_error(ctx, "sg_rand_normal: shape is NULL for %d dimensions", ndim);
    if (dt == SG_I64 || dt == SG_I32)
        return sg_error(ctx, "sg_rand_normal: draws float32 or float64, not %s", sg_dtype_name(dt));
    sg_tensor *t = sg__new(ctx, "sg_rand_normal", dt, ndim, shape, false);
    if (!t)
        return NULL;
    fill_normal(t, sg_ctx_rng(ctx), mean, std);
    return t;
}
