/* Elementwise ops, each forward next to its backward: the broadcasting binary ops (add, sub,
 * mul, div), the unary maths (neg, scale, add_scalar, square, exp, log, abs, sqrt, rsqrt,
 * pow, clamp), lerp (three inputs) and the activations (sigmoid, tanh, hard_sigmoid, relu,
 * softplus, log_sigmoid), plus the activation-by-name helpers layers use.
 *
 * Inputs may be any strided views (transposed, sliced, expanded with stride 0). Everything
 * that is not a plain contiguous loop goes through one small iterator (sg_iter): the output
 * shape plus up to four operands' strides, with size-1 dimensions dropped and adjacent
 * dimensions merged wherever every operand is contiguous across them. After merging, the
 * usual cases are one or two dimensions, walked with a multi-index counter (no div/mod per
 * element) around an inner loop that has a unit-stride version the compiler vectorises.
 *
 * Backward of a broadcast input uses the same iterator with the input's gradient as operand
 * 0, addressed with stride 0 along the dimensions the input was stretched over: adding into
 * the same element again and again IS the sum over the broadcast dimensions, so no
 * temporary and no separate reduction pass are needed. An input's gradient buffer is always
 * contiguous with the input's shape, even when the input itself is a strided view.
 *
 * Cost for tiny tensors (the LSTM's (2, 4) gates) is one arena allocation for the output,
 * a few shape compares to pick a fast path, and the loop itself: no malloc, no temporaries.
 */
#include <math.h>
#include <string.h>

#include "ops.h"

/* Strides of t read as a tensor of the nd-dim shape it broadcasts to (NumPy: aligned at the
 * trailing dimension): 0 on the missing leading dimensions and on size-1 dimensions. */
static void bcast_strides(const sg_tensor *t, int nd, int64_t *st) {
    int lead = nd - t->ndim;
    for (int d = 0; d < nd; d++)
        st[d] = (d < lead || t->shape[d - lead] == 1) ? 0 : t->stride[d - lead];
}

/* ---- broadcasting binary ops: add, sub, mul, div -------------------------------------- */

/* Broadcast shape of a and b into shape[]; its ndim, or -1 when they do not broadcast. */
static int bcast_shape(const sg_tensor *a, const sg_tensor *b, int64_t *shape) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < nd; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa == sb || sb == 1)
            shape[d] = sa;
        else if (sa == 1)
            shape[d] = sb;
        else
            return -1;
    }
    return nd;
}

/* Is t (broadcastable to shape[0..nd)) a contiguous block that repeats along the leading
 * dimensions of the output: its dimensions, leading ones dropped, equal the output's
 * trailing ones? Then out[r * numel(t) + j] pairs with t[j]: the bias row (N,) or (1, N)
 * over (B, N), or a (2, 3) over (4, 2, 3). */
static bool trailing_block(const sg_tensor *t, int nd, const int64_t *shape) {
    int i = t->ndim - 1, d = nd - 1;
    while (i >= 0 && t->shape[i] == shape[d])
        i--, d--;
    for (; i >= 0; i--)
        if (t->shape[i] != 1)
            return false;
    return true;
}

/* How a binary forward walks its operands. */
enum { BIN_FLAT, BIN_A_SCALAR, BIN_B_SCALAR, BIN_B_ROW, BIN_A_ROW, BIN_GENERAL };

/* out = a OP b, EXPR in terms of the elements x (of a) and y (of b).
 * FLAT: a, b, out all contiguous (n,). SCALAR: one side is a single element. ROW: one side
 * is a contiguous block of `row` elements repeating over the contiguous (n / row, row)
 * other side. GENERAL: the strided walk, operands 0 = out, 1 = a, 2 = b. */
/* SG__SIMD_CLONES (tensor/internal.h) on the kernels of this file: the library is built for
 * baseline x86-64, and the clones let these loops run on AVX2 or AVX-512 where the CPU has
 * them. That pays from the small LSTM up; the tiny one gets marginally slower, also with a
 * plain copy kept for short arrays, so that cost is code placement, not the clone dispatch.
 * bench/README.md has the measurements. */
#define DEF_BIN_FWD(NAME, T, EXPR)                                                                 \
    SG__SIMD_CLONES static void NAME(int path, int64_t n, int64_t row, const sg_iter *it,          \
                                     const T *a, const T *b, T *o) {                               \
        switch (path) {                                                                            \
        case BIN_FLAT:                                                                             \
            for (int64_t i = 0; i < n; i++) {                                                      \
                const T x = a[i], y = b[i];                                                        \
                o[i] = EXPR;                                                                       \
            }                                                                                      \
            break;                                                                                 \
        case BIN_A_SCALAR: {                                                                       \
            const T x = a[0];                                                                      \
            for (int64_t i = 0; i < n; i++) {                                                      \
                const T y = b[i];                                                                  \
                o[i] = EXPR;                                                                       \
            }                                                                                      \
        } break;                                                                                   \
        case BIN_B_SCALAR: {                                                                       \
            const T y = b[0];                                                                      \
            for (int64_t i = 0; i < n; i++) {                                                      \
                const T x = a[i];                                                                  \
                o[i] = EXPR;                                                                       \
            }                                                                                      \
        } break;                                                                                   \
        case BIN_B_ROW:                                                                            \
            for (int64_t r = 0; r < n; r += row)                                                   \
                for (int64_t j = 0; j < row; j++) {                                                \
                    const T x = a[r + j], y = b[j];                                                \
                    o[r + j] = EXPR;                                                               \
                }                                                                                  \
            break;                                                                                 \
        case BIN_A_ROW:                                                                            \
            for (int64_t r = 0; r < n; r += row)                                                   \
                for (int64_t j = 0; j < row; j++) {                                                \
                    const T x = a[j], y = b[r + j];                                                \
                    o[r + j] = EXPR;                                                               \
                }                                                                                  \
            break;                                                                                 \
        default: SG_ITER_LOOP(it, const T x = a[i1]; const T y = b[i2]; o[i0] = EXPR); break;      \
        }                                                                                          \
    }

DEF_BIN_FWD(add_f32, float, x + y)
DEF_BIN_FWD(sub_f32, float, x - y)
DEF_BIN_FWD(mul_f32, float, x *y)
DEF_BIN_FWD(div_f32, float, x / y)
DEF_BIN_FWD(add_f64, double, x + y)
DEF_BIN_FWD(sub_f64, double, x - y)
DEF_BIN_FWD(mul_f64, double, x *y)
DEF_BIN_FWD(div_f64, double, x / y)

typedef void (*bin_fwd_f32)(int, int64_t, int64_t, const sg_iter *, const float *, const float *,
                            float *);
typedef void (*bin_fwd_f64)(int, int64_t, int64_t, const sg_iter *, const double *, const double *,
                            double *);
/* Indexed by op - SG_OP_ADD (ADD, SUB, MUL, DIV are consecutive in sg_op). */
static const bin_fwd_f32 bin_fwd_32[4] = {add_f32, sub_f32, mul_f32, div_f32};
static const bin_fwd_f64 bin_fwd_64[4] = {add_f64, sub_f64, mul_f64, div_f64};

/* The broadcast shape of a and b (its ndim), or -1 with an error naming fn. */
static int bin_shape(sg_ctx *ctx, const char *fn, const sg_tensor *a, const sg_tensor *b,
                     int64_t *shape) {
    int nd = bcast_shape(a, b, shape);
    if (nd < 0) {
        char sa[96], sb[96];
        sg_error(ctx, "%s: shapes %s and %s do not broadcast", fn,
                 sg_shape_str(a->ndim, a->shape, sa, sizeof sa),
                 sg_shape_str(b->ndim, b->shape, sb, sizeof sb));
    }
    return nd;
}

/* Is t a 2-D operand of out's (2-D) shape with unit-stride rows? */
static bool rows_of(const sg_tensor *t, const sg_tensor *out) {
    return t->ndim == 2 && t->shape[0] == out->shape[0] && t->shape[1] == out->shape[1] &&
           (t->stride[1] == 1 || t->shape[1] == 1);
}

// a is (..), b is (..) broadcastable to each other; out has the broadcast shape and is
// either contiguous or a itself (the in-place ops: the same strides, so only the 2-D row
// path and the general path below, which address out through its strides, can see a
// non-contiguous out).
static void bin_run(sg_op op, const sg_tensor *a, const sg_tensor *b, sg_tensor *out) {
    int nd = out->ndim;
    const int64_t *shape = out->shape;
    int64_t n = sg_numel(out), na = sg_numel(a), nb = sg_numel(b), row = 0;
    bool ca = sg_is_contiguous(a), cb = sg_is_contiguous(b);
    /* A contiguous input with the output's element count has the output's layout (its
     * shape differs at most by leading ones), so it can be read flat. */
    bool fa = ca && na == n, fb = cb && nb == n;
    int path = BIN_GENERAL;
    sg_iter it;
    it.nd = 0;
    if (fa && fb)
        path = BIN_FLAT;
    else if (fa && nb == 1)
        path = BIN_B_SCALAR;
    else if (fb && na == 1)
        path = BIN_A_SCALAR;
    else if (fa && cb && nb > 0 && trailing_block(b, nd, shape))
        path = BIN_B_ROW, row = nb;
    else if (fb && ca && na > 0 && trailing_block(a, nd, shape))
        path = BIN_A_ROW, row = na;
    else if (nd == 2 && rows_of(a, out) && rows_of(b, out) && rows_of(out, out)) {
        /* 2-D, nothing broadcast, unit-stride rows (an LSTM step's gates, slices of its
         * pre-activations): row by row, flat; the strided iterator's set-up costs more
         * than the work at tiny sizes */
        int64_t R = shape[0], C = shape[1], es = (int64_t)sg_dtype_size(out->dtype);
        int k = (int)(op - SG_OP_ADD);
        for (int64_t r = 0; r < R; r++) {
            const void *pa = (const char *)sg_data(a) + r * a->stride[0] * es;
            const void *pb = (const char *)sg_data(b) + r * b->stride[0] * es;
            void *po = (char *)sg_data(out) + r * out->stride[0] * es;
            if (a->dtype == SG_F32)
                bin_fwd_32[k](BIN_FLAT, C, 0, NULL, pa, pb, po);
            else
                bin_fwd_64[k](BIN_FLAT, C, 0, NULL, pa, pb, po);
        }
        return;
    } else {
        int64_t sa[SG_MAX_DIMS], sb[SG_MAX_DIMS];
        bcast_strides(a, nd, sa);
        bcast_strides(b, nd, sb);
        sg__iter_init(&it, nd, shape, 3, (const int64_t *const[]){out->stride, sa, sb});
    }
    int k = (int)(op - SG_OP_ADD);
    if (a->dtype == SG_F32)
        bin_fwd_32[k](path, n, row, &it, sg_data(a), sg_data(b), sg_data(out));
    else
        bin_fwd_64[k](path, n, row, &it, sg_data(a), sg_data(b), sg_data(out));
}

static sg_tensor *binary(sg_ctx *ctx, const char *fn, sg_op op, sg_tensor *a, sg_tensor *b) {
    sg_tensor *src[2] = {a, b};
    if (!sg__check_inputs(ctx, fn, 2, src))
        return NULL;
    int64_t shape[SG_MAX_DIMS];
    int nd = bin_shape(ctx, fn, a, b, shape);
    sg_tensor *out = nd < 0 ? NULL : sg__new(ctx, fn, a->dtype, nd, shape, false);
    if (!out)
        return NULL;
    bin_run(op, a, b, out);
    return sg__finish(ctx, out, op, 2, src);
}

/* a += b in place (b broadcast to a's shape). The result is a new node over a's elements;
 * add's backward reads neither input, so this is safe whenever sg__inplace_check agrees. */
sg_tensor *sg_add_(sg_ctx *ctx, sg_tensor *a, sg_tensor *b) {
    sg_tensor *src[2] = {a, b};
    if (!sg__check_inputs(ctx, "sg_add_", 2, src))
        return NULL;
    int64_t shape[SG_MAX_DIMS];
    int nd = bin_shape(ctx, "sg_add_", a, b, shape);
    if (nd < 0)
        return NULL;
    if (nd != a->ndim || memcmp(shape, a->shape, sizeof(int64_t) * (size_t)nd)) {
        char sa[96], sb[96];
        return sg_error(ctx, "sg_add_: b of shape %s does not broadcast to a's shape %s",
                        sg_shape_str(b->ndim, b->shape, sb, sizeof sb),
                        sg_shape_str(a->ndim, a->shape, sa, sizeof sa));
    }
    if (!sg__inplace_check(ctx, "sg_add_", a, 1, &b, true))
        return NULL;
    sg_tensor *out = sg__inplace_result(ctx, a);
    if (!out)
        return NULL;
    bin_run(SG_OP_ADD, a, b, out);
    return sg__finish(ctx, out, SG_OP_ADD, 2, src);
}

sg_tensor *sg_add(sg_ctx *ctx, sg_tensor *a, sg_tensor *b) {
    return binary(ctx, "sg_add", SG_OP_ADD, a, b);
}
sg_tensor *sg_sub(sg_ctx *ctx, sg_tensor *a, sg_tensor *b) {
    return binary(ctx, "sg_sub", SG_OP_SUB, a, b);
}
sg_tensor *sg_mul(sg_ctx *ctx, sg_tensor *a, sg_tensor *b) {
    return binary(ctx, "sg_mul", SG_OP_MUL, a, b);
}
sg_tensor *sg_div(sg_ctx *ctx, sg_tensor *a, sg_tensor *b) {
    return binary(ctx, "sg_div", SG_OP_DIV, a, b);
}

/* Backward of the binary ops. One gradient "kind" per (op, input); operands are
 * 0 = d (the input's gradient, stride 0 on its broadcast dimensions), 1 = g (dL/dout),
 * 2 = a, 3 = b. Kinds that do not read a or b leave them out of the walk. */
enum { GB_PLUS, GB_MINUS, GB_MUL_A, GB_MUL_B, GB_DIV_A, GB_DIV_B, GB_COUNT };
static const unsigned gb_uses[GB_COUNT] = {
    [GB_PLUS] = 0x3,  [GB_MINUS] = 0x3, [GB_MUL_A] = 0xb, /* d += g * b */
    [GB_MUL_B] = 0x7, [GB_DIV_A] = 0xb, [GB_DIV_B] = 0xf,
};

#define DEF_BIN_BW(SFX, T)                                                                         \
    SG__SIMD_CLONES static void bin_bw_##SFX(int kind, int64_t n, const sg_iter *it, T *d,         \
                                             const T *g, const T *a, const T *b) {                 \
        switch (kind) {                                                                            \
        case GB_PLUS: SG_ITER_RUN(it, n, d[i0] += g[i1]); break;                                   \
        case GB_MINUS: SG_ITER_RUN(it, n, d[i0] -= g[i1]); break;                                  \
        case GB_MUL_A: SG_ITER_RUN(it, n, d[i0] += g[i1] * b[i3]); break;                          \
        case GB_MUL_B: SG_ITER_RUN(it, n, d[i0] += g[i1] * a[i2]); break;                          \
        case GB_DIV_A: SG_ITER_RUN(it, n, d[i0] += g[i1] / b[i3]); break;                          \
        /* d(a/b)/db = -a/b^2, computed as (a/b)/b so b^2 cannot overflow or underflow */          \
        case GB_DIV_B: SG_ITER_RUN(it, n, d[i0] -= g[i1] * (a[i2] / b[i3]) / b[i3]); break;        \
        default: break;                                                                            \
        }                                                                                          \
    }
DEF_BIN_BW(f32, float)
DEF_BIN_BW(f64, double)

// out is the broadcast shape; g = out->grad (contiguous, out's shape); src[k] any view, its
// grad with src[k]'s shape, contiguous or (a slice's) a view into its input's grad.
static void bw_binary(sg_ctx *ctx, sg_tensor *out, int kind_a, int kind_b) {
    sg_tensor *a = out->src[0], *b = out->src[1], *g = out->grad;
    int64_t n = sg_numel(out);
    for (int k = 0; k < 2; k++) {
        if (!sg__needs(out, k))
            continue;
        int kind = k ? kind_b : kind_a;
        unsigned uses = gb_uses[kind];
        sg_tensor *G = sg__grad(ctx, out->src[k]);
        if (!G)
            return;
        /* Flat when the input was not broadcast (its grad lines up with g element for
         * element) and every input the formula reads is contiguous and full-size. The same
         * tensor on both sides (x * x) simply accumulates twice into one buffer. */
        bool flat = sg_numel(out->src[k]) == n &&
                    !(G->flags & (SG_FLAG_GRAD_ALIAS | SG_FLAG_GRAD_PADDED)) &&
                    (!(uses & 0x4) || (sg_is_contiguous(a) && sg_numel(a) == n)) &&
                    (!(uses & 0x8) || (sg_is_contiguous(b) && sg_numel(b) == n));
        if (!flat && out->ndim == 2 && rows_of(G, out) && (!(uses & 0x4) || rows_of(a, out)) &&
            (!(uses & 0x8) || rows_of(b, out))) {
            /* 2-D, nothing broadcast, unit-stride rows (an LSTM step's gates, slices of
             * its pre-activations): row by row through the flat kernel; the strided
             * iterator's set-up costs more than the work at tiny sizes */
            int64_t R = out->shape[0], C = out->shape[1], es = (int64_t)sg_dtype_size(out->dtype);
            char *pG = sg_data(G), *pg = sg_data(g), *pa = sg_data(a), *pb = sg_data(b);
            for (int64_t r = 0; r < R; r++) {
                void *dG = pG + r * G->stride[0] * es, *dg = pg + r * C * es;
                void *da = (uses & 0x4) ? pa + r * a->stride[0] * es : NULL;
                void *db = (uses & 0x8) ? pb + r * b->stride[0] * es : NULL;
                if (out->dtype == SG_F32)
                    bin_bw_f32(kind, C, NULL, dG, dg, da, db);
                else
                    bin_bw_f64(kind, C, NULL, dG, dg, da, db);
            }
            continue;
        }
        sg_iter it;
        if (!flat) {
            int64_t st[4][SG_MAX_DIMS];
            bcast_strides(G, out->ndim, st[0]);
            memcpy(st[1], g->stride, sizeof st[1]);
            bcast_strides(a, out->ndim, st[2]);
            bcast_strides(b, out->ndim, st[3]);
            const int64_t *use[SG_ITER_MAXOP];
            for (int p = 0; p < SG_ITER_MAXOP; p++)
                use[p] = uses >> p & 1 ? st[p] : NULL;
            sg__iter_init(&it, out->ndim, out->shape, SG_ITER_MAXOP, use);
        }
        if (out->dtype == SG_F32)
            bin_bw_f32(kind, n, flat ? NULL : &it, sg_data(G), sg_data(g), sg_data(a), sg_data(b));
        else
            bin_bw_f64(kind, n, flat ? NULL : &it, sg_data(G), sg_data(g), sg_data(a), sg_data(b));
    }
}

void sg__bw_add(sg_ctx *ctx, sg_tensor *out) { bw_binary(ctx, out, GB_PLUS, GB_PLUS); }
void sg__bw_sub(sg_ctx *ctx, sg_tensor *out) { bw_binary(ctx, out, GB_PLUS, GB_MINUS); }
void sg__bw_mul(sg_ctx *ctx, sg_tensor *out) { bw_binary(ctx, out, GB_MUL_A, GB_MUL_B); }
void sg__bw_div(sg_ctx *ctx, sg_tensor *out) { bw_binary(ctx, out, GB_DIV_A, GB_DIV_B); }

/* ---- lerp: a + w * (b - a), three inputs ------------------------------------------------ */

/* Walk the four tensors ts[0..4) of one shape (ts[0]'s; NULL: an operand the body does not
 * touch) with BODY (offsets i0..i3): one flat loop when every one is contiguous; row by row
 * when the shape is 2-D and every one has unit-stride rows (the GRU's h, h~ and its gates,
 * a slice of a wider block: the iterator's set-up costs more than such a step's work);
 * else the strided iterator. */
#define LERP_WALK(ts, BODY)                                                                        \
    do {                                                                                           \
        const sg_tensor *t0_ = ts[0];                                                              \
        bool flat_ = true, rows_ = t0_->ndim == 2;                                                 \
        const int64_t *st_[SG_ITER_MAXOP] = {0};                                                   \
        int64_t rs_[SG_ITER_MAXOP] = {0};                                                          \
        for (int k_ = 0; k_ < SG_ITER_MAXOP; k_++)                                                 \
            if (ts[k_]) {                                                                          \
                st_[k_] = ts[k_]->stride;                                                          \
                flat_ = flat_ && sg_is_contiguous(ts[k_]);                                         \
                rows_ = rows_ && (ts[k_]->stride[1] == 1 || t0_->shape[1] == 1);                   \
                rs_[k_] = rows_ ? ts[k_]->stride[0] : 0;                                           \
            }                                                                                      \
        if (flat_) {                                                                               \
            SG_FLAT_LOOP(sg_numel(t0_), BODY);                                                     \
        } else if (rows_) {                                                                        \
            for (int64_t r_ = 0; r_ < t0_->shape[0]; r_++)                                         \
                for (int64_t j_ = 0; j_ < t0_->shape[1]; j_++) {                                   \
                    const int64_t i0 = r_ * rs_[0] + j_, i1 = r_ * rs_[1] + j_,                    \
                                  i2 = r_ * rs_[2] + j_, i3 = r_ * rs_[3] + j_;                    \
                    (void)i0, (void)i1, (void)i2, (void)i3;                                        \
                    BODY;                                                                          \
                }                                                                                  \
        } else {                                                                                   \
            sg_iter walk_;                                                                         \
            sg__iter_init(&walk_, t0_->ndim, t0_->shape, SG_ITER_MAXOP, st_);                      \
            SG_ITER_LOOP(&walk_, BODY);                                                            \
        }                                                                                          \
    } while (0)

/* o, a, b, w all of one shape (sg_lerp expanded the inputs), any strides, o contiguous:
 * o = a + w * (b - a), torch.lerp's formula for |w| < 0.5 at every w (PyTorch switches to
 * b - (b - a) * (1 - w) above that, which differs in the last bit only). Backward, g of o's
 * shape and the gradients contiguous (either of ga, gb, gw NULL when not wanted):
 * ga += (1 - w) g, gb += w g, gw += (b - a) g. SIMD clones as for the binary ops (above). */
#define DEF_LERP(T, S)                                                                             \
    SG__SIMD_CLONES static void lerp_fw_##S(const sg_tensor *a, const sg_tensor *b,                \
                                            const sg_tensor *w, sg_tensor *o) {                    \
        const T *ap = sg_data(a), *bp = sg_data(b), *wp = sg_data(w);                              \
        T *op = sg_data(o);                                                                        \
        const sg_tensor *ts[4] = {o, a, b, w};                                                     \
        LERP_WALK(ts, op[i0] = ap[i1] + wp[i3] * (bp[i2] - ap[i1]));                               \
    }                                                                                              \
    SG__SIMD_CLONES static void lerp_bw_##S(const sg_tensor *a, const sg_tensor *b,                \
                                            const sg_tensor *w, const sg_tensor *g, sg_tensor *ga, \
                                            sg_tensor *gb, sg_tensor *gw) {                        \
        const T *ap = sg_data(a), *bp = sg_data(b), *wp = sg_data(w), *gp = sg_data(g);            \
        if (ga || gb) {                                                                            \
            T *pa = ga ? sg_data(ga) : NULL, *pb = gb ? sg_data(gb) : NULL;                        \
            const sg_tensor *ts[4] = {g, w, ga, gb};                                               \
            if (pa && pb)                                                                          \
                LERP_WALK(ts, pa[i2] += (1 - wp[i1]) * gp[i0]; pb[i3] += wp[i1] * gp[i0]);         \
            else if (pa)                                                                           \
                LERP_WALK(ts, pa[i2] += (1 - wp[i1]) * gp[i0]);                                    \
            else                                                                                   \
                LERP_WALK(ts, pb[i3] += wp[i1] * gp[i0]);                                          \
        }                                                                                          \
        if (gw) {                                                                                  \
            T *pw = sg_data(gw);                                                                   \
            const sg_tensor *ts[4] = {g, a, b, gw};                                                \
            LERP_WALK(ts, pw[i3] += (bp[i2] - ap[i1]) * gp[i0]);                                   \
        }                                                                                          \
    }
DEF_LERP(float, f32)
DEF_LERP(double, f64)

sg_tensor *sg_lerp(sg_ctx *ctx, sg_tensor *a, sg_tensor *b, sg_tensor *w) {
    const char *fn = "sg_lerp";
    sg_tensor *in[3] = {a, b, w};
    if (!sg__check_inputs(ctx, fn, 3, in))
        return NULL;
    sg_tensor *out = sg__bcast3(ctx, fn, (const char *const[]){"a", "b", "w"}, in, a->dtype);
    if (!out)
        return NULL;
    if (a->dtype == SG_F32)
        lerp_fw_f32(in[0], in[1], in[2], out);
    else
        lerp_fw_f64(in[0], in[1], in[2], out);
    return sg__finish(ctx, out, SG_OP_LERP, 3, in);
}

/* Inputs (a, b, w), all of out's shape: reads all three. */
void sg__bw_lerp(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *gr[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++)
        if (sg__needs(out, k) && !(gr[k] = sg__grad(ctx, out->src[k])))
            return;
    if (!gr[0] && !gr[1] && !gr[2])
        return;
    if (out->dtype == SG_F32)
        lerp_bw_f32(out->src[0], out->src[1], out->src[2], out->grad, gr[0], gr[1], gr[2]);
    else
        lerp_bw_f64(out->src[0], out->src[1], out->src[2], out->grad, gr[0], gr[1], gr[2]);
}

/* ---- unary ops and activations -------------------------------------------------------- */

/* Scalar maths of one element in the element's own type (F: libm's suffix, f or none), for
 * the unary kernels below. softplus and sigmoid are written so that exp only ever sees a
 * non-positive argument: no overflow for any x, NaN in gives NaN out. */
#define DEF_UN_MATH(SFX, T, F)                                                                     \
    static inline T softplus_##SFX(T v) { /* max(v, 0) + log1p(exp(-|v|)) */                       \
        return (v > 0 ? v : (T)0) + log1p##F(exp##F(-fabs##F(v)));                                 \
    }                                                                                              \
    static inline T sigm_##SFX(T v) {                                                              \
        if (v >= 0)                                                                                \
            return 1 / (1 + exp##F(-v));                                                           \
        const T e = exp##F(v);                                                                     \
        return e / (1 + e);                                                                        \
    }                                                                                              \
    /* d/dv v^p = p v^(p-1), exactly 0 for p == 0 (also at v = 0, where 0 * 0^-1 is NaN) */        \
    static inline T dpow_##SFX(T v, double p) {                                                    \
        return p == 0 ? (T)0 : (T)p * pow##F(v, (T)(p - 1));                                       \
    }
DEF_UN_MATH(f32, float, f)
DEF_UN_MATH(f64, double, )

/* y = f(x) over n contiguous elements (y may be x: strided inputs are first gathered into
 * the output and transformed in place). exp, log, tanh and sigmoid use the SLEEF kernels.
 * s[0], s[1] are the op's scalars (out->fparam: scale's and add_scalar's s, pow's p, clamp's
 * lo and hi). F is libm's suffix for T. */
#define DEF_UN_FWD(SFX, T, F)                                                                      \
    static void un_fwd_##SFX(sg_op op, int64_t n, const double *s, const T *x, T *y) {             \
        const T c = (T)s[0], c1 = (T)s[1];                                                         \
        switch (op) {                                                                              \
        case SG_OP_NEG: SG_FLAT_LOOP(n, y[i0] = -x[i0]); break;                                    \
        case SG_OP_SCALE: SG_FLAT_LOOP(n, y[i0] = c * x[i0]); break;                               \
        case SG_OP_ADD_SCALAR: SG_FLAT_LOOP(n, y[i0] = x[i0] + c); break;                          \
        case SG_OP_SQUARE: SG_FLAT_LOOP(n, y[i0] = x[i0] * x[i0]); break;                          \
        /* Keras 2: clip(0.2 x + 0.5, 0, 1); NaN stays NaN (both compares are false) */            \
        case SG_OP_HARD_SIGMOID:                                                                   \
            SG_FLAT_LOOP(n, const T v = (T)0.2 * x[i0] + (T)0.5; y[i0] = v < 0   ? (T)0            \
                                                                         : v > 1 ? (T)1            \
                                                                                 : v);             \
            break;                                                                                 \
        /* max(x, 0) with +0 for x <= 0, NaN propagated so anomaly mode can see it */              \
        case SG_OP_RELU: SG_FLAT_LOOP(n, y[i0] = (x[i0] > 0 || x[i0] != x[i0]) ? x[i0] : 0);       \
            break;                                                                                 \
        case SG_OP_SIGMOID: sg_vsigmoid_##SFX((size_t)n, x, y); break;                             \
        case SG_OP_TANH: sg_vtanh_##SFX((size_t)n, x, y); break;                                   \
        case SG_OP_EXP: sg_vexp_##SFX((size_t)n, x, y); break;                                     \
        case SG_OP_LOG: sg_vlog_##SFX((size_t)n, x, y); break;                                     \
        case SG_OP_ABS: SG_FLAT_LOOP(n, y[i0] = fabs##F(x[i0])); break;                            \
        case SG_OP_SQRT: SG_FLAT_LOOP(n, y[i0] = sqrt##F(x[i0])); break;                           \
        case SG_OP_RSQRT: SG_FLAT_LOOP(n, y[i0] = 1 / sqrt##F(x[i0])); break;                      \
        case SG_OP_POW: SG_FLAT_LOOP(n, y[i0] = pow##F(x[i0], c)); break;                          \
        /* NaN stays NaN (both compares are false), as torch.clamp */                              \
        case SG_OP_CLAMP: SG_FLAT_LOOP(n, y[i0] = x[i0] < c ? c : x[i0] > c1 ? c1 : x[i0]); break; \
        case SG_OP_SOFTPLUS: SG_FLAT_LOOP(n, y[i0] = softplus_##SFX(x[i0])); break;                \
        case SG_OP_LOG_SIGMOID: SG_FLAT_LOOP(n, y[i0] = -softplus_##SFX(-x[i0])); break;           \
        default: break;                                                                            \
        }                                                                                          \
    }
DEF_UN_FWD(f32, float, f)
DEF_UN_FWD(f64, double, )

// x is any view of shape S; out is contiguous of shape S. s0, s1: the op's scalars.
static sg_tensor *unary(sg_ctx *ctx, const char *fn, sg_op op, sg_tensor *x, double s0, double s1) {
    if (!sg__check_inputs(ctx, fn, 1, &x))
        return NULL;
    sg_tensor *out = sg__new(ctx, fn, x->dtype, x->ndim, x->shape, false);
    if (!out)
        return NULL;
    int64_t n = sg_numel(out);
    const void *in = sg_data(x);
    if (!sg_is_contiguous(x)) { /* the kernels want contiguous arrays: gather, then in place */
        sg__strided(false, x->dtype, sg_data(out), out->stride, sg_data(x), x->stride, x->ndim,
                    x->shape);
        in = sg_data(out);
    }
    out->fparam[0] = s0;
    out->fparam[1] = s1;
    if (x->dtype == SG_F32)
        un_fwd_f32(op, n, out->fparam, in, sg_data(out));
    else
        un_fwd_f64(op, n, out->fparam, in, sg_data(out));
    return sg__finish(ctx, out, op, 1, &x);
}

/* y = f(y) over the elements of a view: row by row when the (merged) innermost dimension
 * is unit-stride, which is what the SLEEF kernels need, else through a contiguous copy. */
static bool un_fwd_view(sg_ctx *ctx, const char *fn, sg_op op, sg_tensor *y) {
    sg_iter it;
    sg__iter_init(&it, y->ndim, y->shape, 1, (const int64_t *const[]){y->stride});
    size_t es = sg_dtype_size(y->dtype);
    char *base = sg_data(y);
    if (!it.unit) {
        sg_tensor *tmp = sg__new(ctx, fn, y->dtype, y->ndim, y->shape, false);
        if (!tmp)
            return false;
        sg__strided(false, y->dtype, sg_data(tmp), tmp->stride, base, y->stride, y->ndim, y->shape);
        if (y->dtype == SG_F32)
            un_fwd_f32(op, sg_numel(y), y->fparam, sg_data(tmp), sg_data(tmp));
        else
            un_fwd_f64(op, sg_numel(y), y->fparam, sg_data(tmp), sg_data(tmp));
        sg__strided(false, y->dtype, base, y->stride, sg_data(tmp), tmp->stride, y->ndim, y->shape);
        return true;
    }
    int nd = it.nd;
    int64_t L = it.shape[nd - 1], off = 0, idx[SG_MAX_DIMS] = {0};
    for (int64_t done = 0; done < it.n; done += L) {
        char *row = base + off * (int64_t)es;
        if (y->dtype == SG_F32)
            un_fwd_f32(op, L, y->fparam, (const float *)row, (float *)row);
        else
            un_fwd_f64(op, L, y->fparam, (const double *)row, (double *)row);
        for (int d = nd - 2; d >= 0; d--) {
            off += it.st[0][d];
            if (++idx[d] < it.shape[d])
                break;
            off -= it.st[0][d] * it.shape[d];
            idx[d] = 0;
        }
    }
    return true;
}

/* x = f(x) in place, for the activations whose backward reads only the output. */
static sg_tensor *unary_(sg_ctx *ctx, const char *fn, sg_op op, sg_tensor *x) {
    if (!sg__check_inputs(ctx, fn, 1, &x) || !sg__inplace_check(ctx, fn, x, 0, NULL, false))
        return NULL;
    sg_tensor *y = sg__inplace_result(ctx, x);
    if (!y || !un_fwd_view(ctx, fn, op, y))
        return NULL;
    return sg__finish(ctx, y, op, 1, &x);
}

sg_tensor *sg_sigmoid_(sg_ctx *ctx, sg_tensor *x) {
    return unary_(ctx, "sg_sigmoid_", SG_OP_SIGMOID, x);
}
sg_tensor *sg_tanh_(sg_ctx *ctx, sg_tensor *x) { return unary_(ctx, "sg_tanh_", SG_OP_TANH, x); }

sg_tensor *sg_neg(sg_ctx *ctx, sg_tensor *x) { return unary(ctx, "sg_neg", SG_OP_NEG, x, 0, 0); }
sg_tensor *sg_scale(sg_ctx *ctx, sg_tensor *x, double s) {
    return unary(ctx, "sg_scale", SG_OP_SCALE, x, s, 0);
}
sg_tensor *sg_add_scalar(sg_ctx *ctx, sg_tensor *x, double s) {
    return unary(ctx, "sg_add_scalar", SG_OP_ADD_SCALAR, x, s, 0);
}
sg_tensor *sg_square(sg_ctx *ctx, sg_tensor *x) {
    return unary(ctx, "sg_square", SG_OP_SQUARE, x, 0, 0);
}
sg_tensor *sg_sigmoid(sg_ctx *ctx, sg_tensor *x) {
    return unary(ctx, "sg_sigmoid", SG_OP_SIGMOID, x, 0, 0);
}
sg_tensor *sg_tanh(sg_ctx *ctx, sg_tensor *x) { return unary(ctx, "sg_tanh", SG_OP_TANH, x, 0, 0); }
sg_tensor *sg_hard_sigmoid(sg_ctx *ctx, sg_tensor *x) {
    return unary(ctx, "sg_hard_sigmoid", SG_OP_HARD_SIGMOID, x, 0, 0);
}
sg_tensor *sg_relu(sg_ctx *ctx, sg_tensor *x) { return unary(ctx, "sg_relu", SG_OP_RELU, x, 0, 0); }
sg_tensor *sg_exp(sg_ctx *ctx, sg_tensor *x) { return unary(ctx, "sg_exp", SG_OP_EXP, x, 0, 0); }
sg_tensor *sg_log(sg_ctx *ctx, sg_tensor *x) { return unary(ctx, "sg_log", SG_OP_LOG, x, 0, 0); }
sg_tensor *sg_abs(sg_ctx *ctx, sg_tensor *x) { return unary(ctx, "sg_abs", SG_OP_ABS, x, 0, 0); }
sg_tensor *sg_sqrt(sg_ctx *ctx, sg_tensor *x) { return unary(ctx, "sg_sqrt", SG_OP_SQRT, x, 0, 0); }
sg_tensor *sg_rsqrt(sg_ctx *ctx, sg_tensor *x) {
    return unary(ctx, "sg_rsqrt", SG_OP_RSQRT, x, 0, 0);
}
sg_tensor *sg_pow(sg_ctx *ctx, sg_tensor *x, double p) {
    return unary(ctx, "sg_pow", SG_OP_POW, x, p, 0);
}
sg_tensor *sg_clamp(sg_ctx *ctx, sg_tensor *x, double lo, double hi) {
    if (!sg__check_inputs(ctx, "sg_clamp", 1, &x))
        return NULL;
    if (isnan(lo) || isnan(hi))
        return sg_error(ctx, "sg_clamp: lo = %g, hi = %g: a bound is NaN", lo, hi);
    if (lo > hi)
        return sg_error(ctx, "sg_clamp: lo = %g > hi = %g", lo, hi);
    return unary(ctx, "sg_clamp", SG_OP_CLAMP, x, lo, hi);
}
sg_tensor *sg_softplus(sg_ctx *ctx, sg_tensor *x) {
    return unary(ctx, "sg_softplus", SG_OP_SOFTPLUS, x, 0, 0);
}
sg_tensor *sg_log_sigmoid(sg_ctx *ctx, sg_tensor *x) {
    return unary(ctx, "sg_log_sigmoid", SG_OP_LOG_SIGMOID, x, 0, 0);
}

/* Does the backward of op read the input x (rather than only g and the saved output y)? */
/* d += g * f'(x), operands 0 = d (x's grad, x's shape, any strides), 1 = g (contiguous),
 * 2 = y (the output, x's shape, strided when in place on a view), 3 = x (any strides). Derivatives
 * come from the saved output where that is exact and cheaper (sigmoid, tanh, exp), from x
 * otherwise. */
#define DEF_UN_BW(SFX, T)                                                                          \
    SG__SIMD_CLONES static void un_bw_##SFX(sg_op op, int64_t n, const double *s,                  \
                                            const sg_iter *it, T *d, const T *g, const T *y,       \
                                            const T *x) {                                          \
        const T c = (T)s[0], c1 = (T)s[1];                                                         \
        switch (op) {                                                                              \
        case SG_OP_NEG: SG_ITER_RUN(it, n, d[i0] -= g[i1]); break;                                 \
        case SG_OP_SCALE: SG_ITER_RUN(it, n, d[i0] += c * g[i1]); break;                           \
        case SG_OP_ADD_SCALAR: SG_ITER_RUN(it, n, d[i0] += g[i1]); break;                          \
        case SG_OP_SQUARE: SG_ITER_RUN(it, n, d[i0] += 2 * x[i3] * g[i1]); break;                  \
        case SG_OP_SIGMOID: SG_ITER_RUN(it, n, d[i0] += g[i1] * y[i2] * (1 - y[i2])); break;       \
        case SG_OP_TANH: SG_ITER_RUN(it, n, d[i0] += g[i1] * (1 - y[i2] * y[i2])); break;          \
        case SG_OP_EXP: SG_ITER_RUN(it, n, d[i0] += g[i1] * y[i2]); break;                         \
        case SG_OP_LOG: SG_ITER_RUN(it, n, d[i0] += g[i1] / x[i3]); break;                         \
        /* slope 0.2 strictly inside (-2.5, 2.5), flat (0) on the clipped parts */                 \
        case SG_OP_HARD_SIGMOID:                                                                   \
            SG_ITER_RUN(it, n, d[i0] += (x[i3] > (T)-2.5 && x[i3] < (T)2.5) ? (T)0.2 * g[i1] : 0); \
            break;                                                                                 \
        /* 0 at x == 0, as PyTorch */                                                              \
        case SG_OP_RELU: SG_ITER_RUN(it, n, d[i0] += x[i3] > 0 ? g[i1] : 0); break;                \
        /* sign(x), 0 at 0 and at NaN, as PyTorch */                                               \
        case SG_OP_ABS:                                                                            \
            SG_ITER_RUN(it, n, d[i0] += x[i3] > 0 ? g[i1] : x[i3] < 0 ? -g[i1] : 0);               \
            break;                                                                                 \
        /* from the output, as PyTorch: g / (2y) is +inf at x = 0; -y^3 / 2 is -inf there */       \
        case SG_OP_SQRT: SG_ITER_RUN(it, n, d[i0] += g[i1] / (2 * y[i2])); break;                  \
        case SG_OP_RSQRT:                                                                          \
            SG_ITER_RUN(it, n, d[i0] += (T)-0.5 * g[i1] * (y[i2] * y[i2] * y[i2]));                \
            break;                                                                                 \
        case SG_OP_POW: SG_ITER_RUN(it, n, d[i0] += g[i1] * dpow_##SFX(x[i3], s[0])); break;       \
        /* passes where lo <= x <= hi, boundaries included (torch.clamp); 0 for NaN */             \
        case SG_OP_CLAMP: SG_ITER_RUN(it, n, d[i0] += x[i3] >= c && x[i3] <= c1 ? g[i1] : 0);      \
            break;                                                                                 \
        case SG_OP_SOFTPLUS: SG_ITER_RUN(it, n, d[i0] += g[i1] * sigm_##SFX(x[i3])); break;        \
        case SG_OP_LOG_SIGMOID: SG_ITER_RUN(it, n, d[i0] += g[i1] * sigm_##SFX(-x[i3])); break;    \
        default: break;                                                                            \
        }                                                                                          \
    }
DEF_UN_BW(f32, float)
DEF_UN_BW(f64, double)

// out and x have shape S; out->grad is contiguous; out (in place on a view), x and x->grad
// (a slice's) may be strided: then the strided walk, else one flat loop.
static void bw_unary(sg_ctx *ctx, sg_tensor *out) {
    if (!sg__needs(out, 0))
        return;
    sg_tensor *x = out->src[0];
    sg_tensor *G = sg__grad(ctx, x);
    if (!G)
        return;
    sg_iter it;
    const sg_iter *itp = NULL; /* flat unless the formula reads a strided x */
    /* out is strided when it is the result of an in-place op on a view; G when it is a view
     * into x's input's gradient, or has padded rows */
    bool reads_x = sg__op(out->op)->reads & SG_READS_IN0; /* the table says which */
    if ((reads_x && !sg_is_contiguous(x)) || !sg_is_contiguous(out) ||
        (G->flags & (SG_FLAG_GRAD_ALIAS | SG_FLAG_GRAD_PADDED))) {
        sg__iter_init(
            &it, x->ndim, x->shape, 4,
            (const int64_t *const[]){G->stride, out->grad->stride, out->stride, x->stride});
        itp = &it;
    }
    int64_t n = sg_numel(out);
    if (out->dtype == SG_F32)
        un_bw_f32(out->op, n, out->fparam, itp, sg_data(G), sg_data(out->grad), sg_data(out),
                  sg_data(x));
    else
        un_bw_f64(out->op, n, out->fparam, itp, sg_data(G), sg_data(out->grad), sg_data(out),
                  sg_data(x));
}

void sg__bw_neg(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_scale(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_add_scalar(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_square(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_sigmoid(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_tanh(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_hard_sigmoid(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_relu(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_exp(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_log(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_abs(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_sqrt(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_rsqrt(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_pow(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_clamp(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_softplus(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }
void sg__bw_log_sigmoid(sg_ctx *ctx, sg_tensor *out) { bw_unary(ctx, out); }

/* ---- activations by Keras name -------------------------------------------------------- */

static const char *const act_names[] = {
    [SG_ACT_TANH] = "tanh", [SG_ACT_SIGMOID] = "sigmoid", [SG_ACT_HARD_SIGMOID] = "hard_sigmoid",
    [SG_ACT_RELU] = "relu", [SG_ACT_LINEAR] = "linear",
};
#define N_ACT ((int)(sizeof act_names / sizeof act_names[0]))

sg_tensor *sg_activate(sg_ctx *ctx, sg_tensor *x, sg_activation act) {
    switch (act) {
    case SG_ACT_TANH: return sg_tanh(ctx, x);
    case SG_ACT_SIGMOID: return sg_sigmoid(ctx, x);
    case SG_ACT_HARD_SIGMOID: return sg_hard_sigmoid(ctx, x);
    case SG_ACT_RELU: return sg_relu(ctx, x);
    /* the identity: x itself, no copy and no tape node */
    case SG_ACT_LINEAR: return sg__check_inputs(ctx, "sg_activate", 1, &x) ? x : NULL;
    }
    if (!sg__check_inputs(ctx, "sg_activate", 1, &x))
        return NULL;
    return sg_error(ctx, "sg_activate: unknown activation %d", (int)act);
}

sg_tensor *sg_activate_(sg_ctx *ctx, sg_tensor *x, sg_activation act) {
    switch (act) {
    case SG_ACT_TANH: return sg_tanh_(ctx, x);
    case SG_ACT_SIGMOID: return sg_sigmoid_(ctx, x);
    default: return sg_activate(ctx, x, act); /* their backward reads x: not in place */
    }
}

const char *sg_activation_name(sg_activation act) {
    return ((int)act >= 0 && (int)act < N_ACT) ? act_names[act] : NULL;
}

int sg_activation_from_name(const char *name) {
    if (!name)
        return -1;
    for (int k = 0; k < N_ACT; k++)
        if (!strcmp(name, act_names[k]))
            return k;
    return -1;
}
