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
    /* The module above's per-workspace state (autograd/: the tape), zeroed at creation;
     * tensor/ never reads or writes it. It is this generation's while tape_gen == gen
     * (autograd clears it lazily after a reset). */
    struct {
        uint32_t tape_gen;
        bool grad_disabled; /* no-grad mode */
        bool anomaly;
        sg_tensor *tail;      /* last node recorded; nodes link back through tape_prev */
        sg_tensor *grad_pool; /* consumed gradient buffers for reuse (linked by pool_next) */
        int64_t ip_visits;    /* in-place marks compared by checks (a test's probe) */
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

/* A new contiguous arena tensor; `zero` clears the data (else it is uninitialised). */
sg_tensor *sg__new(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, bool zero);
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
/* Row-major contiguous strides for a shape. */
void sg__contiguous_strides(int ndim, const int64_t *shape, int64_t *stride);
/* Storage offset (elements, relative to sg_data) of flat row-major element i. */
int64_t sg__offset_of(const sg_tensor *t, int64_t i);
/* Normalise a possibly negative axis; -1 with an error naming fn when out of range. */
int sg__axis(sg_ctx *ctx, const char *fn, int axis, int ndim);

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
