/* Internal helpers shared by the modules of libseqgrad. Not installed. */
#ifndef SG_INTERNAL_H
#define SG_INTERNAL_H

/* Loops over arrays (the direct matmul kernel, the elementwise kernels) are compiled for
 * the baseline x86-64 ISA (SSE2) like the rest of the library; this makes gcc also build
 * AVX2 and AVX-512 copies of a function and pick one at load time (an ifunc). No -ffast-math and no
 * FMA contraction (ISO C mode), so every copy rounds alike: wider vectors change the speed, not the
 * results. Not under ThreadSanitizer: it instruments the ifunc resolvers, which the dynamic
 * loader runs before the sanitizer's runtime is up (a crash at start). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define SG__SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SG__SIMD_CLONES
#endif

#include "tensor.h"

typedef struct sg_arena_block {
    struct sg_arena_block *next;
    size_t cap;           /* bytes in data[] */
    size_t used;          /* bytes handed out from data[] */
    unsigned char data[]; /* offsets are aligned against the real address */
} sg_arena_block;

typedef struct sg_persist_node sg_persist_node;

/* A new context's generation (sg_ctx_reset adds one). */
#define SG_GEN_FIRST 2

/* Most consumed gradient buffers a workspace keeps for reuse (autograd/grad.c); an LSTM's
 * backward frees and takes them in turn, so a handful are free at any time. */
#define SG_GRAD_POOL 64

struct sg_ctx {
    char err[1024];
    bool has_err;
    /* arena */
    sg_arena_block *first, *cur;
    size_t used;     /* bytes handed out since the last reset, padding included */
    size_t peak;     /* high-water mark of used */
    size_t capacity; /* bytes reserved in all blocks */
    uint64_t gen;    /* bumped by every reset; arena tensors remember theirs */
    /* The module above's per-workspace state (autograd/: the tape), zeroed at creation;
     * tensor/ never reads or writes it. It is this generation's while tape_gen == gen
     * (autograd clears it lazily after a reset). */
    struct {
        uint64_t tape_gen;
        bool grad_disabled; /* no-grad mode */
        /* Evaluation mode (sg_ctx_set_training(ctx, false)); stored inverted so that the
         * zeroed state is PyTorch's default, training. Survives sg_ctx_reset. */
        bool eval_mode;
        /* Recording suppressed by the engine itself (gradcheck's evaluations) without
         * entering no-grad mode, so that ops whose forward depends on the mode (dropout)
         * compute the same function as in the recorded pass. */
        bool quiet;
        bool anomaly;
        /* sg_label names tensors (sg_ctx_set_labels); survives sg_ctx_reset. */
        bool labels;
        /* The time step recorded nodes are tagged with, plus one (sg_ctx_set_step); 0: none. */
        int32_t step;
        /* sg_gradcheck_rnn's state while it runs (autograd/gradcheck.c); NULL otherwise. */
        void *probe;
        sg_tensor *tail;               /* last node recorded; nodes link back through tape_prev */
        sg_tensor *pool[SG_GRAD_POOL]; /* consumed gradient buffers for reuse, newest last */
        int npool;
        int64_t ip_visits;        /* in-place marks compared by checks (a test's probe) */
        sg_tensor *private_grads; /* the workspace's own gradient slab (autograd/store.c) */
        /* Row-major copies of transposed parameters made during one backward pass
         * (autograd/ops_matmul.c), emptied when a backward pass starts. */
        struct {
            const sg_tensor *src;
            sg_tensor *copy;
        } tcache[4];
        int ntcache;
    } tape;
    /* persistent tensors, freed at sg_ctx_free */
    sg_persist_node *persist;
    sg_rng rng;
};

/* Arena allocation, inline fast path (the out-of-line sg_arena_alloc handles new blocks). */
static inline void *sg__alloc(sg_ctx *ctx, size_t n) {
    sg_arena_block *b = ctx->cur;
    uintptr_t base = (uintptr_t)b->data;
    size_t start = ((base + b->used + 63) & ~(uintptr_t)63) - base;
    if (start <= b->cap && n <= b->cap - start) {
        ctx->used += start + n - b->used;
        b->used = start + n;
        if (ctx->used > ctx->peak)
            ctx->peak = ctx->used;
        return b->data + start;
    }
    return sg_arena_alloc(ctx, n);
}

/* Check a shape of ndim (0..SG_MAX_DIMS, checked by the caller) sizes: not NULL when ndim > 0,
 * no negative size, nonzero sizes multiplying to at most SG_NUMEL_MAX. Writes the element
 * count; false with an error naming fn ("<fn>: shape (..) overflows: ...") otherwise. */
bool sg__shape_ok(sg_ctx *ctx, const char *fn, int ndim, const int64_t *shape, int64_t *numel);

/* A new contiguous arena tensor; `zero` clears the data (else it is uninitialised). A shape
 * that sg__shape_ok refuses (or a bad dtype or ndim) is an error naming fn; shape must not be
 * NULL when ndim > 0 (callers with a user's shape check that first). */
sg_tensor *sg__new(sg_ctx *ctx, const char *fn, sg_dtype dt, int ndim, const int64_t *shape,
                   bool zero);
/* A new arena tensor header sharing x's storage (shape/strides/offset copied from x). */
sg_tensor *sg__view_of(sg_ctx *ctx, const sg_tensor *x);
/* Same number of dimensions and the same sizes? */
static inline bool sg__same_shape(const sg_tensor *a, const sg_tensor *b) {
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}
/* A persistent tensor (sg_persistent_new; errors name fn) whose `dtor` (may be NULL) runs
 * just before it is freed, by sg_tensor_free or sg_ctx_free. */
sg_tensor *sg__persistent_new(sg_ctx *ctx, const char *fn, sg_dtype dt, int ndim,
                              const int64_t *shape, void (*dtor)(sg_tensor *t));
/* The persistent tensors made with ctx, one after another: start with NULL; NULL at the end. */
sg_tensor *sg__persist_next(sg_ctx *ctx, sg_tensor *prev);
/* Row-major contiguous strides for a shape (a size-0 dimension counts as 1, so that the
 * strides stay those of the shape's non-empty neighbours). Inline: every op's output. */
static inline void sg__contiguous_strides(int ndim, const int64_t *shape, int64_t *stride) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        /* Every tensor's shape passed sg__shape_ok, so this never overflows; should a shape
         * that did not get here, the strides saturate instead of wrapping (UB). */
        if (__builtin_mul_overflow(s, shape[i] > 0 ? shape[i] : 1, &s))
            s = INT64_MAX;
    }
}
/* Where a call that names no context (sg_get, sg_fill, ...) reports t's problems: t's own
 * context, once its magic says that t->ctx can be read; NULL (nowhere: sg_error ignores it)
 * for NULL or for a pointer with no magic, such as a stale one that now points into the
 * middle of something else. */
static inline sg_ctx *sg__ctx_of(const sg_tensor *t) {
    return t && t->magic == SG_TENSOR_MAGIC ? t->ctx : NULL;
}
/* Storage offset (elements, relative to sg_data) of flat row-major element i. */
int64_t sg__offset_of(const sg_tensor *t, int64_t i);
/* Normalise a possibly negative axis; -1 with an error naming fn when out of range. */
int sg__axis(sg_ctx *ctx, const char *fn, int axis, int ndim);

/* Common input validation of ops: every input non-NULL and live, one dtype, and (unless
 * any_dtype: views and copies, which serve integer tensors too) a float dtype.
 * Returns false (recording an error naming fn when an input is stale, dtypes mix or an
 * integer tensor reaches a float op). The inline part is the fast path; anything odd goes to
 * sg__check_inputs_slow for its message. */
bool sg__check_inputs_slow(sg_ctx *ctx, const char *fn, int n, sg_tensor *const *src,
                           bool any_dtype);
static inline __attribute__((always_inline)) bool
sg__check_dtype_inputs(sg_ctx *ctx, const char *fn, int n, sg_tensor *const *src, bool any_dtype) {
    if (!ctx)
        return false;
    for (int i = 0; i < n; i++) {
        const sg_tensor *t = src[i];
        if (!t)
            return false;
        if (t->magic != SG_TENSOR_MAGIC || (t->ctx != ctx && !(t->flags & SG_FLAG_SHARED)) ||
            t->dtype != src[0]->dtype || (!any_dtype && !sg_dtype_is_float(t->dtype)) ||
            (!(t->flags & SG_FLAG_PERSISTENT) && t->gen != ctx->gen))
            return sg__check_inputs_slow(ctx, fn, n, src, any_dtype);
    }
    return true;
}
static inline bool sg__check_inputs(sg_ctx *ctx, const char *fn, int n, sg_tensor *const *src) {
    return sg__check_dtype_inputs(ctx, fn, n, src, false);
}
static inline bool sg__check_any(sg_ctx *ctx, const char *fn, int n, sg_tensor *const *src) {
    return sg__check_dtype_inputs(ctx, fn, n, src, true);
}
/* Is t (live, checked by the caller) an index tensor, int64 or int32? Else false with an
 * error: "<fn>: <what> must be int64 or int32, got float32". */
bool sg__index_dtype(sg_ctx *ctx, const char *fn, const char *what, const sg_tensor *t);

/* ---- the strided iterator ------------------------------------------------------------------
 * The one walk over strided views that every elementwise loop uses: copies and adds between
 * views (sg__strided), the elementwise ops and their backwards with broadcasting, fills,
 * initializers, comparisons. Up to SG_ITER_MAXOP operands share a shape; each has its own
 * strides (0 on broadcast dimensions). Dimensions that every operand walks as one flat run
 * are merged, so a contiguous tensor is one inner loop and x[:, t, :] is B rows. The order
 * is row-major, so a walk can also hand out values in sequence (initializers do). */

#define SG_ITER_MAXOP 4

typedef struct {
    int nd;    /* dimensions after merging, >= 1 */
    bool unit; /* every active operand has stride 1 in the innermost dimension */
    int64_t n; /* elements */
    int64_t shape[SG_MAX_DIMS];
    int64_t st[SG_ITER_MAXOP][SG_MAX_DIMS]; /* inactive operands: all zero */
} sg_iter;

/* Iterator over shape[0..nd) for operands 0..nops-1 (nops <= SG_ITER_MAXOP; the others get
 * stride 0) with strides st[p] (nd of them; NULL: an inactive operand, offsets always 0). A size-1
 * dimension is dropped (its strides never matter). Dimension d merges into the block kept before it
 * when, for every active operand, stepping the block once equals stepping d shape[d] times, i.e.
 * the pair is one flat run for everybody (stride-0 broadcast pairs qualify too: 0 == 0 * shape[d]).
 * Always inlined, so that each caller's inactive operands fold away: a tiny model's step
 * runs this hundreds of times. */
static inline __attribute__((always_inline)) void
sg__iter_init(sg_iter *it, int nd, const int64_t *shape, int nops, const int64_t *const *st) {
    int k = 0;
    it->n = 1;
    for (int d = 0; d < nd; d++) {
        it->n *= shape[d];
        if (shape[d] == 1)
            continue;
        bool merge = k > 0;
        for (int p = 0; p < nops && merge; p++)
            if (st[p] && it->st[p][k - 1] != st[p][d] * shape[d])
                merge = false;
        int j = merge ? k - 1 : k;
        if (merge)
            it->shape[j] *= shape[d];
        else
            it->shape[k++] = shape[d];
        for (int p = 0; p < nops; p++)
            it->st[p][j] = st[p] ? st[p][d] : 0;
    }
    if (k == 0) { /* 0-d or all ones: one element */
        it->shape[0] = 1;
        for (int p = 0; p < nops; p++)
            it->st[p][0] = 0;
        k = 1;
    }
    for (int p = nops; p < SG_ITER_MAXOP; p++)
        for (int d = 0; d < k; d++)
            it->st[p][d] = 0;
    it->nd = k;
    it->unit = true;
    for (int p = 0; p < nops; p++)
        if (st[p] && it->st[p][k - 1] != 1)
            it->unit = false;
}

/* Run the statement(s) in __VA_ARGS__ once per element of IT, with i0..i3 the element's
 * offsets in operands 0..3. The innermost dimension is a plain loop (unit-stride version when
 * every operand allows it); the outer ones advance with a multi-index counter. */
#define SG_ITER_LOOP(IT, ...)                                                                      \
    do {                                                                                           \
        const sg_iter *it_ = (IT);                                                                 \
        const int nd_ = it_->nd;                                                                   \
        const int64_t in_ = it_->shape[nd_ - 1];                                                   \
        const int64_t s0_ = it_->st[0][nd_ - 1], s1_ = it_->st[1][nd_ - 1],                        \
                      s2_ = it_->st[2][nd_ - 1], s3_ = it_->st[3][nd_ - 1];                        \
        int64_t b0_ = 0, b1_ = 0, b2_ = 0, b3_ = 0, idx_[SG_MAX_DIMS] = {0};                       \
        for (int64_t done_ = 0; done_ < it_->n; done_ += in_) {                                    \
            if (it_->unit) {                                                                       \
                for (int64_t j_ = 0; j_ < in_; j_++) {                                             \
                    const int64_t i0 = b0_ + j_, i1 = b1_ + j_, i2 = b2_ + j_, i3 = b3_ + j_;      \
                    (void)i0, (void)i1, (void)i2, (void)i3;                                        \
                    __VA_ARGS__;                                                                   \
                }                                                                                  \
            } else {                                                                               \
                for (int64_t j_ = 0; j_ < in_; j_++) {                                             \
                    const int64_t i0 = b0_ + j_ * s0_, i1 = b1_ + j_ * s1_, i2 = b2_ + j_ * s2_,   \
                                  i3 = b3_ + j_ * s3_;                                             \
                    (void)i0, (void)i1, (void)i2, (void)i3;                                        \
                    __VA_ARGS__;                                                                   \
                }                                                                                  \
            }                                                                                      \
            for (int d_ = nd_ - 2; d_ >= 0; d_--) {                                                \
                b0_ += it_->st[0][d_];                                                             \
                b1_ += it_->st[1][d_];                                                             \
                b2_ += it_->st[2][d_];                                                             \
                b3_ += it_->st[3][d_];                                                             \
                if (++idx_[d_] < it_->shape[d_])                                                   \
                    break;                                                                         \
                b0_ -= it_->st[0][d_] * it_->shape[d_];                                            \
                b1_ -= it_->st[1][d_] * it_->shape[d_];                                            \
                b2_ -= it_->st[2][d_] * it_->shape[d_];                                            \
                b3_ -= it_->st[3][d_] * it_->shape[d_];                                            \
                idx_[d_] = 0;                                                                      \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* The same statement over n contiguous elements: every operand at offset i. */
#define SG_FLAT_LOOP(N, ...)                                                                       \
    do {                                                                                           \
        for (int64_t i_ = 0; i_ < (N); i_++) {                                                     \
            const int64_t i0 = i_, i1 = i_, i2 = i_, i3 = i_;                                      \
            (void)i0, (void)i1, (void)i2, (void)i3;                                                \
            __VA_ARGS__;                                                                           \
        }                                                                                          \
    } while (0)

/* Flat loop when IT is NULL (everything contiguous and aligned), else the strided walk. */
#define SG_ITER_RUN(IT, N, ...)                                                                    \
    do {                                                                                           \
        if (IT)                                                                                    \
            SG_ITER_LOOP(IT, __VA_ARGS__);                                                         \
        else                                                                                       \
            SG_FLAT_LOOP(N, __VA_ARGS__);                                                          \
    } while (0)

/* An iterator over the elements of tensors ts[0..n) (n <= SG_ITER_MAXOP) of one shape
 * (ts[0]'s), each walked with its own strides; operand k's offsets are ik. */
static inline void sg__iter_of(sg_iter *it, int n, const sg_tensor *const *ts) {
    const int64_t *st[SG_ITER_MAXOP] = {0};
    for (int k = 0; k < n; k++)
        st[k] = ts[k]->stride;
    sg__iter_init(it, ts[0]->ndim, ts[0]->shape, n, st);
}

/* An iterator over t whose operand 0 is t (offsets i0) and operand 1 the flat row-major
 * index of the element (i1): for walks that read or write elements in order. */
static inline void sg__iter_flat(sg_iter *it, const sg_tensor *t) {
    int64_t flat[SG_MAX_DIMS];
    sg__contiguous_strides(t->ndim, t->shape, flat);
    sg__iter_init(it, t->ndim, t->shape, 2, (const int64_t *const[]){t->stride, flat});
}

/* dst = src (add false) or dst += src (add true) over `shape`, both strided (dst strides
 * may be 0: a broadcast dst receives the sum). Dimensions that both walk contiguously are
 * merged; a multi-index counter, no div/mod per element. */
void sg__strided(bool add, sg_dtype dt, void *dst, const int64_t *dst_st, const void *src,
                 const int64_t *src_st, int nd, const int64_t *shape);

/* Element read/write as double at a storage offset (relative to sg_data(t)). Integer
 * dtypes: sg__ld rounds beyond 2^53 (sg__ldi reads them exactly); sg__st truncates toward
 * zero and saturates (NaN gives 0) rather than convert out of range, which C leaves
 * undefined: callers that take values from users check them first (sg__int_ok). */
static inline double sg__ld(const sg_tensor *t, int64_t off) {
    switch (t->dtype) {
    case SG_F32: return (double)((const float *)sg_data(t))[off];
    case SG_F64: return ((const double *)sg_data(t))[off];
    case SG_I64: return (double)((const int64_t *)sg_data(t))[off];
    default: return (double)((const int32_t *)sg_data(t))[off];
    }
}
static inline int64_t sg__sat_i64(double v, double lo, double hi) {
    return v != v ? 0 : v <= lo ? (int64_t)lo : v >= hi ? (int64_t)hi : (int64_t)v;
}
static inline void sg__st(sg_tensor *t, int64_t off, double v) {
    switch (t->dtype) {
    case SG_F32: ((float *)sg_data(t))[off] = (float)v; break;
    case SG_F64: ((double *)sg_data(t))[off] = v; break;
    /* -2^63 is exact; 2^63 - 1 is not a double, so the top saturates at 2^63 - 1024 */
    case SG_I64: ((int64_t *)sg_data(t))[off] = sg__sat_i64(v, -0x1p63, 0x1p63 - 1024); break;
    default: ((int32_t *)sg_data(t))[off] = (int32_t)sg__sat_i64(v, INT32_MIN, INT32_MAX); break;
    }
}
/* An integer tensor's element exactly; a float's truncated toward zero (saturating). */
static inline int64_t sg__ldi(const sg_tensor *t, int64_t off) {
    switch (t->dtype) {
    case SG_I64: return ((const int64_t *)sg_data(t))[off];
    case SG_I32: return ((const int32_t *)sg_data(t))[off];
    default: return sg__sat_i64(sg__ld(t, off), -0x1p63, 0x1p63 - 1024);
    }
}
/* Can v be stored in dtype dt without loss of meaning: any value for a float dtype; a finite
 * value whose truncation fits, for an integer one? */
static inline bool sg__int_ok(sg_dtype dt, double v) {
    if (sg_dtype_is_float(dt))
        return true;
    if (dt == SG_I64)
        return v >= -0x1p63 && v < 0x1p63; /* NaN fails both */
    return v > (double)INT32_MIN - 1 && v < (double)INT32_MAX + 1;
}

#endif
