/* Tensors as strided views over shared storage: creation, inspection, views, and the
 * small in-place helpers. Views (reshape, permute, slice, expand) copy nothing; when their
 * input requires grad they are recorded on the tape like any op (backward in
 * autograd/ops_shape.c). */
#include <math.h>
#include <string.h>

#include "internal.h"

const char *sg_dtype_name(sg_dtype dt) {
    switch (dt) {
    case SG_F32: return "float32";
    case SG_F64: return "float64";
    case SG_I64: return "int64";
    case SG_I32: return "int32";
    }
    return "unknown";
}

const char *sg_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = 0;
    if (!buf || n == 0)
        return buf;
    if (ndim > 0 && !shape) {
        snprintf(buf, n, "(NULL shape)");
        return buf;
    }
    k += (size_t)snprintf(buf + k, n - k, "(");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, ndim == 1 ? ",)" : ")");
    return buf;
}

int sg__axis(sg_ctx *ctx, const char *fn, int axis, int ndim) {
    int a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= ndim) {
        sg_error(ctx, "%s: axis %d out of range for %d dimensions", fn, axis, ndim);
        return -1;
    }
    return a;
}

bool sg_check(sg_ctx *ctx, const sg_tensor *t, const char *fn) {
    if (!t)
        return false;
    if (!fn)
        fn = "sg_check";
    /* Only memory that is still allocated is read: an arena tensor's header stays in the
     * arena after a reset (it is the magic of whatever the arena built there since, or an
     * old generation); freed memory is the caller's undefined behaviour (tensor.h). */
    if (t->magic != SG_TENSOR_MAGIC) {
        sg_error(ctx, "%s: not a live tensor (used after sg_ctx_reset, or not a tensor)", fn);
        return false;
    }
    if (!(t->flags & SG_FLAG_PERSISTENT) && t->gen != t->ctx->gen) {
        sg_error(ctx, "%s: tensor used after sg_ctx_reset", fn);
        return false;
    }
    if (ctx && t->ctx != ctx && !(t->flags & SG_FLAG_SHARED)) {
        sg_error(ctx, "%s: tensor belongs to another context", fn);
        return false;
    }
    return true;
}

bool sg__check_inputs_slow(sg_ctx *ctx, const char *fn, int n, sg_tensor *const *src,
                           bool any_dtype) {
    if (!ctx)
        return false;
    for (int i = 0; i < n; i++) {
        if (!src[i] || !sg_check(ctx, src[i], fn))
            return false;
        if (!any_dtype && !sg_dtype_is_float(src[i]->dtype)) {
            sg_error(ctx, "%s: input %d is an %s tensor; this op takes float32 or float64", fn, i,
                     sg_dtype_name(src[i]->dtype));
            return false;
        }
        if (src[i]->dtype != src[0]->dtype) {
            sg_error(ctx, "%s: dtype mismatch: %s and %s", fn, sg_dtype_name(src[0]->dtype),
                     sg_dtype_name(src[i]->dtype));
            return false;
        }
    }
    return true;
}

bool sg__index_dtype(sg_ctx *ctx, const char *fn, const char *what, const sg_tensor *t) {
    if (t->dtype == SG_I64 || t->dtype == SG_I32)
        return true;
    sg_error(ctx, "%s: %s must be int64 or int32, got %s", fn, what, sg_dtype_name(t->dtype));
    return false;
}

/* ---- creation ------------------------------------------------------------------------ */

typedef struct {
    sg_tensor t;
    sg_storage s;
} header_pair;

/* Initialise a header field by field: one memset of the ~450-byte pair compiles to
 * `rep stos`, whose start-up cost is large next to the rest of a tiny op, and every op
 * makes a header (bench/README.md has the measurement). Shape and strides are left to the
 * caller; everything else starts zero. */
static void header_init(header_pair *h, sg_ctx *ctx, sg_dtype dt) {
    sg_tensor *t = &h->t;
    t->magic = SG_TENSOR_MAGIC;
    t->gen = ctx->gen;
    t->flags = 0;
    t->ctx = ctx;
    t->dtype = dt;
    t->ndim = 0;
    /* All of shape and strides, not only ndim of them: a stale pointer into this header
     * must not find an old header's magic left in an unused slot. */
    memset(t->shape, 0, sizeof t->shape);
    memset(t->stride, 0, sizeof t->stride);
    t->offset = 0;
    t->storage = &h->s;
    t->name[0] = 0;
    t->step = 0;
    t->op = 0;
    t->nsrc = 0;
    memset(t->src, 0, sizeof t->src);
    memset(t->iparam, 0, sizeof t->iparam);
    t->fparam[0] = t->fparam[1] = 0;
    t->aux = NULL;
    t->grad = NULL;
    t->tape_prev = NULL;
    t->mark_next = NULL;
    t->mark_lo = t->mark_hi = 0;
    h->s.data = NULL;
    h->s.nbytes = 0;
    h->s.root = &h->s;
    h->s.mark_gen = 0;
    h->s.marks = NULL;
}

static sg_tensor *header_new(sg_ctx *ctx, sg_dtype dt) {
    header_pair *h = sg__alloc(ctx, sizeof *h);
    if (!h)
        return NULL;
    header_init(h, ctx, dt);
    return &h->t;
}

bool sg__shape_ok(sg_ctx *ctx, const char *fn, int ndim, const int64_t *shape, int64_t *numel) {
    if (ndim > 0 && !shape) {
        sg_error(ctx, "%s: shape is NULL for %d dimensions", fn, ndim);
        return false;
    }
    int64_t span = 1; /* product of the nonzero sizes */
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            sg_error(ctx, "%s: negative size %lld in dimension %d", fn, (long long)shape[i], i);
            return false;
        }
        empty |= shape[i] == 0;
        if (shape[i] && (__builtin_mul_overflow(span, shape[i], &span) || span > SG_NUMEL_MAX)) {
            char b[160];
            sg_error(ctx,
                     "%s: shape %s overflows: the product of its nonzero sizes exceeds 2^60 - 1",
                     fn, sg_shape_str(ndim, shape, b, sizeof b));
            return false;
        }
    }
    *numel = empty ? 0 : span;
    return true;
}

static bool valid_shape(sg_ctx *ctx, const char *fn, sg_dtype dt, int ndim, const int64_t *shape,
                        int64_t *numel) {
    if ((unsigned)dt >= SG_DTYPE_COUNT) {
        sg_error(ctx, "%s: unknown dtype %d", fn, (int)dt);
        return false;
    }
    if (ndim < 0 || ndim > SG_MAX_DIMS) {
        sg_error(ctx, "%s: %d dimensions (0 to %d supported)", fn, ndim, SG_MAX_DIMS);
        return false;
    }
    return sg__shape_ok(ctx, fn, ndim, shape, numel);
}

static sg_tensor *new_named(sg_ctx *ctx, const char *fn, sg_dtype dt, int ndim,
                            const int64_t *shape, bool zero) {
    int64_t n;
    if (!ctx || !valid_shape(ctx, fn, dt, ndim, shape, &n))
        return NULL;
    sg_tensor *t = header_new(ctx, dt);
    size_t nbytes = (size_t)n * sg_dtype_size(dt);
    void *data = t ? sg_arena_alloc(ctx, nbytes ? nbytes : 1) : NULL;
    if (!data)
        return sg_error(ctx, "%s: out of memory for %lld elements", fn, (long long)n);
    if (zero)
        memset(data, 0, nbytes);
    t->storage->data = data;
    t->storage->nbytes = nbytes;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    sg__contiguous_strides(ndim, shape, t->stride);
    return t;
}

/* The ops' allocator: header, storage and data in one arena allocation. Shapes here mostly
 * come from existing tensors, so anything unusual (a shape an op made that overflows) takes
 * the checked path for its message. */
sg_tensor *sg__new(sg_ctx *ctx, const char *fn, sg_dtype dt, int ndim, const int64_t *shape,
                   bool zero) {
    /* One pass, last dimension first: the check of sg__shape_ok (span: the product of the
     * nonzero sizes; no division, this runs for every op) and the contiguous strides. */
    int64_t span = 1, st[SG_MAX_DIMS];
    bool empty = false;
    bool ok = ctx && (unsigned)dt < SG_DTYPE_COUNT && ndim >= 0 && ndim <= SG_MAX_DIMS;
    for (int i = ndim - 1; ok && i >= 0; i--) {
        int64_t d = shape[i];
        st[i] = span;
        empty |= d == 0;
        ok = d >= 0 && !__builtin_mul_overflow(span, d | (d == 0), &span);
    }
    if (!ok || span > SG_NUMEL_MAX)
        return new_named(ctx, fn, dt, ndim, shape, zero);
    int64_t n = empty ? 0 : span;
    size_t hb = (sizeof(header_pair) + 63) & ~(size_t)63, nbytes = (size_t)n * sg_dtype_size(dt);
    header_pair *h = sg__alloc(ctx, hb + nbytes);
    if (!h)
        return sg_error(ctx, "%s: out of memory for %lld elements", fn, (long long)n);
    header_init(h, ctx, dt);
    sg_tensor *t = &h->t;
    h->s.data = (char *)h + hb;
    h->s.nbytes = nbytes;
    if (zero)
        memset(h->s.data, 0, nbytes);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) { /* shape may be NULL for a 0-d tensor */
        t->shape[i] = shape[i];
        t->stride[i] = st[i];
    }
    return t;
}

sg_tensor *sg__view_of(sg_ctx *ctx, const sg_tensor *x) {
    sg_tensor *t = header_new(ctx, x->dtype);
    if (!t)
        return NULL;
    *t->storage = *x->storage;
    t->ndim = x->ndim;
    memcpy(t->shape, x->shape, sizeof t->shape);
    memcpy(t->stride, x->stride, sizeof t->stride);
    t->offset = x->offset;
    return t;
}

sg_tensor *sg_tensor_new(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape) {
    return new_named(ctx, "sg_tensor_new", dt, ndim, shape, true);
}
sg_tensor *sg_zeros(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape) {
    return new_named(ctx, "sg_zeros", dt, ndim, shape, true);
}
sg_tensor *sg_full(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, double value) {
    if (ctx && (unsigned)dt < SG_DTYPE_COUNT && !sg__int_ok(dt, value))
        return sg_error(ctx, "sg_full: value %g is not an %s", value, sg_dtype_name(dt));
    sg_tensor *t = new_named(ctx, "sg_full", dt, ndim, shape, false);
    if (t)
        sg_fill(t, value);
    return t;
}
sg_tensor *sg_ones(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape) {
    return sg_full(ctx, dt, ndim, shape, 1.0);
}
sg_tensor *sg_scalar(sg_ctx *ctx, sg_dtype dt, double value) {
    return sg_full(ctx, dt, 0, NULL, value);
}

sg_tensor *sg_arange(sg_ctx *ctx, sg_dtype dt, double start, double stop, double step) {
    if (!ctx)
        return NULL;
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
        return sg_error(ctx,
                        "sg_arange: need finite start, stop and a nonzero step, got %g, "
                        "%g, %g",
                        start, stop, step);
    double span = ceil((stop - start) / step);
    if (span > 1e12)
        return sg_error(ctx, "sg_arange: %g elements is too many", span);
    int64_t n = span > 0 ? (int64_t)span : 0;
    if (n > 0 && (unsigned)dt < SG_DTYPE_COUNT &&
        (!sg__int_ok(dt, start) || !sg__int_ok(dt, start + (double)(n - 1) * step)))
        return sg_error(ctx, "sg_arange: values from %g to %g do not fit in %s", start,
                        start + (double)(n - 1) * step, sg_dtype_name(dt));
    sg_tensor *t = new_named(ctx, "sg_arange", dt, 1, &n, false);
    for (int64_t i = 0; t && i < n; i++)
        sg__st(t, i, start + (double)i * step);
    return t;
}

sg_tensor *sg_from_data(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape,
                        const void *data) {
    if (ctx && !data)
        return sg_error(ctx, "sg_from_data: data is NULL");
    sg_tensor *t = new_named(ctx, "sg_from_data", dt, ndim, shape, false);
    if (t)
        memcpy(sg_data(t), data, (size_t)sg_numel(t) * sg_dtype_size(dt));
    return t;
}

sg_tensor *sg_wrap(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, void *data) {
    int64_t n;
    if (!ctx || !valid_shape(ctx, "sg_wrap", dt, ndim, shape, &n))
        return NULL;
    if (!data)
        return sg_error(ctx, "sg_wrap: data is NULL");
    sg_tensor *t = header_new(ctx, dt);
    if (!t)
        return NULL;
    t->storage->data = data;
    t->storage->nbytes = (size_t)n * sg_dtype_size(dt);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    sg__contiguous_strides(ndim, shape, t->stride);
    return t;
}

void sg_tensor_set_name(sg_tensor *t, const char *name) {
    if (!sg_check(sg__ctx_of(t), t, "sg_tensor_set_name"))
        return;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
}

/* ---- inspection ---------------------------------------------------------------------- */

int64_t sg__offset_of(const sg_tensor *t, int64_t i) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t n = t->shape[d];
        off += (i % n) * t->stride[d];
        i /= n;
    }
    return off;
}

double sg_get(const sg_tensor *t, const int64_t *index) {
    if (!sg_check(sg__ctx_of(t), t, "sg_get"))
        return NAN;
    if (t->ndim > 0 && !index) {
        sg_error(t->ctx, "sg_get: index is NULL for %d dimensions", t->ndim);
        return NAN;
    }
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (index[d] < 0 || index[d] >= t->shape[d]) {
            sg_error(t->ctx, "sg_get: index %lld out of range for dimension %d of size %lld",
                     (long long)index[d], d, (long long)t->shape[d]);
            return NAN;
        }
        off += index[d] * t->stride[d];
    }
    return sg__ld(t, off);
}

/* Is flat index i in range of t (live)? Else false with an error naming fn. */
static bool flat_ok(const sg_tensor *t, int64_t i, const char *fn) {
    if (i >= 0 && i < sg_numel(t))
        return true;
    sg_error(t->ctx, "%s: index %lld out of range for %lld elements", fn, (long long)i,
             (long long)sg_numel(t));
    return false;
}

/* Can v go into t (live)? Else false with an error naming fn. */
static bool value_ok(const sg_tensor *t, double v, const char *fn) {
    if (sg__int_ok(t->dtype, v))
        return true;
    sg_error(t->ctx, "%s: value %g is not an %s", fn, v, sg_dtype_name(t->dtype));
    return false;
}

double sg_get_flat(const sg_tensor *t, int64_t i) {
    if (!sg_check(sg__ctx_of(t), t, "sg_get_flat") || !flat_ok(t, i, "sg_get_flat"))
        return NAN;
    return sg__ld(t, sg__offset_of(t, i));
}

int sg_set_flat(sg_tensor *t, int64_t i, double v) {
    if (!sg_check(sg__ctx_of(t), t, "sg_set_flat") || !flat_ok(t, i, "sg_set_flat") ||
        !value_ok(t, v, "sg_set_flat"))
        return -1;
    sg__st(t, sg__offset_of(t, i), v);
    return 0;
}

int64_t sg_get_flat_i64(const sg_tensor *t, int64_t i) {
    if (!sg_check(sg__ctx_of(t), t, "sg_get_flat_i64") || !flat_ok(t, i, "sg_get_flat_i64"))
        return 0;
    return sg__ldi(t, sg__offset_of(t, i));
}

int sg_copy_to(const sg_tensor *t, void *out) {
    if (!sg_check(sg__ctx_of(t), t, "sg_copy_to"))
        return -1;
    if (!out) {
        sg_error(t->ctx, "sg_copy_to: out is NULL");
        return -1;
    }
    int64_t n = sg_numel(t);
    size_t es = sg_dtype_size(t->dtype);
    if (sg_is_contiguous(t)) {
        memcpy(out, sg_data(t), (size_t)n * es);
        return 0;
    }
    const char *src = sg_data(t);
    sg_iter it;
    sg__iter_flat(&it, t);
    SG_ITER_LOOP(&it, memcpy((char *)out + i1 * (int64_t)es, src + i0 * (int64_t)es, es));
    return 0;
}

int sg_copy_to_f64(const sg_tensor *t, double *out) {
    if (!sg_check(sg__ctx_of(t), t, "sg_copy_to_f64"))
        return -1;
    if (!out) {
        sg_error(t->ctx, "sg_copy_to_f64: out is NULL");
        return -1;
    }
    sg_iter it;
    sg__iter_flat(&it, t);
    SG_ITER_LOOP(&it, out[i1] = sg__ld(t, i0));
    return 0;
}

/* ---- strided copies and adds -------------------------------------------------------- */

/* dst (+)= src over `rows` rows of n contiguous elements, rows dr and sr apart: slices of
 * whole rows, x[:, t, :], a time step's gate block, a bias broadcast down the rows. Short
 * rows (an LSTM step's gate slice at tiny sizes) are plain loops, since a vectorised loop's
 * set-up costs more than the few elements there; longer ones vectorise through restrict. */
#define DEF_ROWS(T)                                                                                \
    static void rows_##T(bool add, T *dst, const T *src, int64_t rows, int64_t n, int64_t dr,      \
                         int64_t sr) {                                                             \
        if (n <= 16) {                                                                             \
            for (int64_t r = 0; r < rows; r++)                                                     \
                for (int64_t j = 0; j < n; j++)                                                    \
                    if (add)                                                                       \
                        dst[r * dr + j] += src[r * sr + j];                                        \
                    else                                                                           \
                        dst[r * dr + j] = src[r * sr + j];                                         \
            return;                                                                                \
        }                                                                                          \
        for (int64_t r = 0; r < rows; r++) {                                                       \
            T *restrict d = dst + r * dr;                                                          \
            const T *restrict s = src + r * sr;                                                    \
            if (add)                                                                               \
                for (int64_t j = 0; j < n; j++)                                                    \
                    d[j] += s[j];                                                                  \
            else                                                                                   \
                for (int64_t j = 0; j < n; j++)                                                    \
                    d[j] = s[j];                                                                   \
        }                                                                                          \
    }                                                                                              \
    /* Anything else: the iterator's rows case, or its general walk. */                            \
    static void strided_##T(bool add, T *dst, const T *src, const sg_iter *it) {                   \
        int k = it->nd;                                                                            \
        if (k <= 2 && it->unit)                                                                    \
            rows_##T(add, dst, src, k == 2 ? it->shape[0] : 1, it->shape[k - 1],                   \
                     k == 2 ? it->st[0][0] : 0, k == 2 ? it->st[1][0] : 0);                        \
        else if (add)                                                                              \
            SG_ITER_LOOP(it, dst[i0] += src[i1]);                                                  \
        else                                                                                       \
            SG_ITER_LOOP(it, dst[i0] = src[i1]);                                                   \
    }
DEF_ROWS(float)
DEF_ROWS(double)
DEF_ROWS(int64_t)
DEF_ROWS(int32_t)

/* The rows and strided loops by dtype. */
#define BY_DTYPE(DT, F, ...)                                                                       \
    do {                                                                                           \
        switch (DT) {                                                                              \
        case SG_F32: F##float(__VA_ARGS__); break;                                                 \
        case SG_F64: F##double(__VA_ARGS__); break;                                                \
        case SG_I64: F##int64_t(__VA_ARGS__); break;                                               \
        default: F##int32_t(__VA_ARGS__); break;                                                   \
        }                                                                                          \
    } while (0)

/* dst (+)= src, both `nd`-dim strided views of `shape` starting at the given pointers. */
void sg__strided(bool add, sg_dtype dt, void *dst, const int64_t *dst_st, const void *src,
                 const int64_t *src_st, int nd, const int64_t *shape) {
    if (nd == 2 && dst_st[1] == 1 && src_st[1] == 1 && shape[0] > 0 && shape[1] > 0) {
        /* 2-D with unit-stride rows, the usual case: straight to the rows loop (what the
         * iterator would make of it, without building one) */
        BY_DTYPE(dt, rows_, add, dst, src, shape[0], shape[1], dst_st[0], src_st[0]);
        return;
    }
    sg_iter it;
    sg__iter_init(&it, nd, shape, 2, (const int64_t *const[]){dst_st, src_st});
    if (it.n == 0)
        return;
    BY_DTYPE(dt, strided_, add, dst, src, &it);
}

/* ---- in-place helpers ---------------------------------------------------------------- */

int sg_fill(sg_tensor *t, double value) {
    if (!sg_check(sg__ctx_of(t), t, "sg_fill") || !value_ok(t, value, "sg_fill"))
        return -1;
    int64_t n = sg_numel(t);
    if (sg_is_contiguous(t) && sg_dtype_is_float(t->dtype)) {
        if (t->dtype == SG_F32) {
            float *p = sg_data(t), v = (float)value;
            for (int64_t i = 0; i < n; i++)
                p[i] = v;
        } else {
            double *p = sg_data(t);
            for (int64_t i = 0; i < n; i++)
                p[i] = value;
        }
        return 0;
    }
    sg_iter it;
    sg__iter_of(&it, 1, (const sg_tensor *const[]){t});
    SG_ITER_LOOP(&it, sg__st(t, i0, value));
    return 0;
}

/* The context that hears about a pair's problems: dst's, or src's when dst is shared (a
 * parameter receiving values from a workspace's tensor). */
static sg_ctx *pair_ctx(const sg_tensor *dst, const sg_tensor *src) {
    return (dst->flags & SG_FLAG_SHARED) ? src->ctx : dst->ctx;
}

static int check_pair(const char *fn, sg_tensor *dst, const sg_tensor *src) {
    if (!dst || !src || dst->magic != SG_TENSOR_MAGIC || src->magic != SG_TENSOR_MAGIC) {
        if (dst && dst->magic == SG_TENSOR_MAGIC)
            sg_check(dst->ctx, src, fn); /* says which */
        else if (src && src->magic == SG_TENSOR_MAGIC)
            sg_check(src->ctx, dst, fn);
        return -1;
    }
    sg_ctx *ctx = pair_ctx(dst, src);
    if (!sg_check(ctx, dst, fn) || !sg_check(ctx, src, fn))
        return -1;
    if (dst->dtype != src->dtype) {
        sg_error(ctx, "%s: dtype mismatch: %s and %s", fn, sg_dtype_name(dst->dtype),
                 sg_dtype_name(src->dtype));
        return -1;
    }
    if (!sg__same_shape(dst, src)) {
        char a[96], b[96];
        sg_error(ctx, "%s: shapes %s and %s differ", fn,
                 sg_shape_str(dst->ndim, dst->shape, a, sizeof a),
                 sg_shape_str(src->ndim, src->shape, b, sizeof b));
        return -1;
    }
    return 0;
}

int sg_copy(sg_tensor *dst, const sg_tensor *src) {
    if (check_pair("sg_copy", dst, src))
        return -1;
    int64_t n = sg_numel(dst);
    if (sg_is_contiguous(dst) && sg_is_contiguous(src)) {
        memmove(sg_data(dst), sg_data(src), (size_t)n * sg_dtype_size(dst->dtype));
        return 0;
    }
    sg__strided(false, dst->dtype, sg_data(dst), dst->stride, sg_data(src), src->stride, dst->ndim,
                dst->shape);
    return 0;
}

static int convert(sg_ctx *ctx, const char *fn, sg_tensor *dst, const sg_tensor *src);

int sg_copy_values(sg_tensor *dst, const sg_tensor *src) {
    if (!dst || !src || dst->magic != SG_TENSOR_MAGIC || src->magic != SG_TENSOR_MAGIC)
        return check_pair("sg_copy_values", dst, src); /* its message */
    sg_ctx *ctx = pair_ctx(dst, src);
    if (!sg_check(ctx, dst, "sg_copy_values") || !sg_check(ctx, src, "sg_copy_values"))
        return -1;
    if (sg_numel(dst) != sg_numel(src)) {
        char a[96], b[96];
        sg_error(ctx, "sg_copy_values: %s has %lld elements, %s has %lld",
                 sg_shape_str(dst->ndim, dst->shape, a, sizeof a), (long long)sg_numel(dst),
                 sg_shape_str(src->ndim, src->shape, b, sizeof b), (long long)sg_numel(src));
        return -1;
    }
    return convert(ctx, "sg_copy_values", dst, src);
}

/* dst = src element by element in row-major order (same numbers of elements), converted to
 * dst's dtype: integers to integers exactly, floats to integers only when they fit (checked
 * before anything is written, so a refused copy leaves dst as it was). */
static int convert(sg_ctx *ctx, const char *fn, sg_tensor *dst, const sg_tensor *src) {
    sg_iter it;
    /* every source dtype but int32 has values an int32 cannot hold, floats ones no integer can */
    if (!sg_dtype_is_float(dst->dtype) && src->dtype != dst->dtype && src->dtype != SG_I32) {
        sg__iter_flat(&it, src);
        int64_t bad = -1;
        double v = 0;
        SG_ITER_LOOP(
            &it, if (bad < 0 && !sg__int_ok(dst->dtype, sg__ld(src, i0))) {
                bad = i1;
                v = sg__ld(src, i0);
            });
        if (bad >= 0) {
            sg_error(ctx, "%s: element %lld is %g, not an %s", fn, (long long)bad, v,
                     sg_dtype_name(dst->dtype));
            return -1;
        }
    }
    bool ints = !sg_dtype_is_float(dst->dtype) && !sg_dtype_is_float(src->dtype);
    if (sg__same_shape(dst, src)) {
        sg__iter_of(&it, 2, (const sg_tensor *const[]){dst, src});
        if (ints && dst->dtype == SG_I64)
            SG_ITER_LOOP(&it, ((int64_t *)sg_data(dst))[i0] = sg__ldi(src, i1));
        else
            SG_ITER_LOOP(&it, sg__st(dst, i0, sg__ld(src, i1)));
    } else { /* row-major order of each */
        sg__iter_flat(&it, dst);
        if (ints && dst->dtype == SG_I64)
            SG_ITER_LOOP(&it, ((int64_t *)sg_data(dst))[i0] = sg__ldi(src, sg__offset_of(src, i1)));
        else
            SG_ITER_LOOP(&it, sg__st(dst, i0, sg__ld(src, sg__offset_of(src, i1))));
    }
    return 0;
}

sg_tensor *sg_cast(sg_ctx *ctx, const sg_tensor *x, sg_dtype dt) {
    if (!x || !sg_check(ctx, x, "sg_cast"))
        return NULL;
    sg_tensor *y = sg__new(ctx, "sg_cast", dt, x->ndim, x->shape, false);
    return y && convert(ctx, "sg_cast", y, x) == 0 ? y : NULL;
}

int sg_axpy(sg_tensor *dst, double alpha, const sg_tensor *src) {
    if (check_pair("sg_axpy", dst, src))
        return -1;
    if (!sg_dtype_is_float(dst->dtype)) {
        sg_error(pair_ctx(dst, src), "sg_axpy: %s tensors; float32 or float64 only",
                 sg_dtype_name(dst->dtype));
        return -1;
    }
    int64_t n = sg_numel(dst);
    if (sg_is_contiguous(dst) && sg_is_contiguous(src)) {
        if (dst->dtype == SG_F32) {
            float *d = sg_data(dst), a = (float)alpha;
            const float *s = sg_data(src);
            for (int64_t i = 0; i < n; i++)
                d[i] += a * s[i];
        } else {
            double *d = sg_data(dst);
            const double *s = sg_data(src);
            for (int64_t i = 0; i < n; i++)
                d[i] += alpha * s[i];
        }
        return 0;
    }
    sg_iter it;
    sg__iter_of(&it, 2, (const sg_tensor *const[]){dst, src});
    SG_ITER_LOOP(&it, sg__st(dst, i0, sg__ld(dst, i0) + alpha * sg__ld(src, i1)));
    return 0;
}
