/* Internal helpers shared by the modules of libseqgrad. Not installed. */
#ifndef SG_INTERNAL_H
#define SG_INTERNAL_H

/* Loops over arrays (the direct matmul kernel, the elementwise kernels) are compiled for
 * the baseline x86-64 ISA (SSE2) like the rest of the library; this makes gcc also build
 * AVX2 and AVX-512 copies of a function and pick one at load time (an ifunc). No -ffast-math and no
 * FMA contraction (ISO C mode), so every copy rounds alike: wider vectors change the speed, not the
 * results. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
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

struct sg_ctx {
    char err[1024];
    bool has_err;
    /* arena */
    sg_arena_block *first, *cur;
    size_t used;     /* bytes handed out since the last reset, padding included */
    size_t peak;     /* high-water mark of used */
    size_t capacity; /* bytes reserved in all blocks */
    uint32_t gen;    /* bumped by every reset; arena tensors remember theirs */
    /* autograd */
    bool grad_enabled;
    bool anomaly;
    sg_tensor *tape_tail; /* last node recorded; nodes link back through tape_prev */
    sg_tensor *grad_pool; /* consumed gradient buffers for reuse (linked by tape_prev) */
    /* Row-major copies of transposed parameters made during one backward pass
     * (autograd/ops_matmul.c), emptied when a backward pass starts. */
    struct {
        const sg_tensor *src;
        sg_tensor *copy;
    } tcache[4];
    int ntcache;
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

/* A new contiguous arena tensor; `zero` clears the data (else it is uninitialised). */
sg_tensor *sg__new(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, bool zero);
/* A new arena tensor header sharing x's storage (shape/strides/offset copied from x). */
sg_tensor *sg__view_of(sg_ctx *ctx, const sg_tensor *x);
/* Row-major contiguous strides for a shape. */
void sg__contiguous_strides(int ndim, const int64_t *shape, int64_t *stride);
/* Storage offset (elements, relative to sg_data) of flat row-major element i. */
int64_t sg__offset_of(const sg_tensor *t, int64_t i);
/* Normalise a possibly negative axis; -1 with an error naming fn when out of range. */
int sg__axis(sg_ctx *ctx, const char *fn, int axis, int ndim);

/* Does any of the inputs require grad, with grad mode on? */
static inline bool sg__any_requires_grad(const sg_ctx *ctx, int n, sg_tensor *const *src) {
    if (!ctx->grad_enabled)
        return false;
    for (int i = 0; i < n; i++)
        if (src[i] && (src[i]->flags & SG_FLAG_REQUIRES_GRAD))
            return true;
    return false;
}

/* ---- in-place safety ------------------------------------------------------------------
 * An in-place op (sg_sigmoid_, sg_add_, sg_addmm_) overwrites a buffer. That is only safe
 * when no recorded backward still reads the values it overwrites, so recording a node
 * marks what its backward reads: sg__op_reads[op] has bit k set when the backward reads
 * input k, and SG_READS_OUT when it reads the node's own output. A plain view that is read
 * marks its whole buffer (storage root's saved_gen); an in-place result that is read joins
 * its buffer's ip_saved list, so that later in-place ops on *other* parts of the buffer
 * (the four gate slices of one LSTM pre-activation) stay allowed. sg__inplace_check
 * consults both. Marks are stamped with the arena generation: a reset forgets them. */
#define SG_READS_OUT 0x80u
/* In the same table: the op's backward writes its inputs' gradients assuming them
 * contiguous (reductions, losses, reshape). The other backwards address an input's
 * gradient through its strides, which is what lets a slice's gradient be a view into its
 * input's gradient (sg__grad in autograd/tape.c). */
#define SG_GRAD_DENSE_IN 0x40u
extern const unsigned char sg__op_reads[SG_OP_COUNT];

void sg__save_inplace(sg_ctx *ctx, sg_tensor *t); /* joins the root's ip_saved list */
static inline void sg__save(sg_ctx *ctx, sg_tensor *t) {
    if (!(t->flags & SG_FLAG_INPLACE))
        t->storage->root->saved_gen = ctx->gen + 1;
    else if (!(t->flags & SG_FLAG_SAVED))
        sg__save_inplace(ctx, t);
}

/* Record `out` as a tape node of `op` with inputs src[0..n) when gradients are enabled
 * and any input requires grad, and mark what its backward will read. Returns true when
 * recorded. Inline: every op calls it. */
static inline bool sg__record(sg_ctx *ctx, sg_tensor *out, sg_op op, int n, sg_tensor *const *src) {
    if (!out || !sg__any_requires_grad(ctx, n, src))
        return false;
    out->flags |= SG_FLAG_REQUIRES_GRAD | SG_FLAG_ON_TAPE;
    out->op = op;
    out->nsrc = n < SG_MAX_SRC ? n : SG_MAX_SRC;
    for (int i = 0; i < out->nsrc; i++)
        out->src[i] = src[i];
    out->tape_prev = ctx->tape_tail;
    ctx->tape_tail = out;
    unsigned reads = sg__op_reads[op];
    if (reads) {
        for (int i = 0; i < out->nsrc; i++) {
            if (reads >> i & 1)
                sg__save(ctx, src[i]);
            if (reads & SG_GRAD_DENSE_IN)
                src[i]->flags |= SG_FLAG_GRAD_DENSE;
        }
        if (reads & SG_READS_OUT)
            sg__save(ctx, out);
    }
    return true;
}

/* Is it safe to overwrite x in place, for the in-place op fn whose other inputs are
 * others[0..n)? False (with an error naming fn and the reason) when x is a leaf that
 * requires grad or a view of one, has an expanded (stride-0) dimension, overlaps one of the
 * other inputs (unless `same_ok` and it is the very same view), or holds values a recorded
 * backward still reads. */
bool sg__inplace_check(sg_ctx *ctx, const char *fn, sg_tensor *x, int n, sg_tensor *const *others,
                       bool same_ok);
/* The result node of an in-place op on x: a new header over x's elements, flagged
 * SG_FLAG_INPLACE (sg__finish then records it with x among its inputs). */
sg_tensor *sg__inplace_result(sg_ctx *ctx, sg_tensor *x);

/* Common input validation of ops: every input non-NULL and live, same dtype.
 * Returns false (recording an error naming fn when an input is stale or dtypes mix).
 * The inline part is the fast path; anything odd goes to sg__check_inputs_slow for its
 * message. */
bool sg__check_inputs_slow(sg_ctx *ctx, const char *fn, int n, sg_tensor *const *src);
static inline bool sg__check_inputs(sg_ctx *ctx, const char *fn, int n, sg_tensor *const *src) {
    if (!ctx)
        return false;
    for (int i = 0; i < n; i++) {
        const sg_tensor *t = src[i];
        if (!t)
            return false;
        if (t->magic != SG_TENSOR_MAGIC || t->ctx != ctx || t->dtype != src[0]->dtype ||
            (!(t->flags & SG_FLAG_PERSISTENT) && t->gen != ctx->gen))
            return sg__check_inputs_slow(ctx, fn, n, src);
    }
    return true;
}

/* dst = src (add false) or dst += src (add true) over `shape`, both strided (dst strides
 * may be 0: a broadcast dst receives the sum). Dimensions that both walk contiguously are
 * merged; a multi-index counter, no div/mod per element. */
void sg__strided(bool add, sg_dtype dt, void *dst, const int64_t *dst_st, const void *src,
                 const int64_t *src_st, int nd, const int64_t *shape);

/* Element read/write as double at a storage offset (relative to sg_data(t)). */
static inline double sg__ld(const sg_tensor *t, int64_t off) {
    return t->dtype == SG_F32 ? (double)((const float *)sg_data(t))[off]
                              : ((const double *)sg_data(t))[off];
}
static inline void sg__st(sg_tensor *t, int64_t off, double v) {
    if (t->dtype == SG_F32)
        ((float *)sg_data(t))[off] = (float)v;
    else
        ((double *)sg_data(t))[off] = v;
}

#endif
