/* Context: first-error state, the arena for per-step temporaries, persistent tensors,
 * the allocator shim. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- allocator shim ------------------------------------------------------------------ */

static sg_allocator g_alloc; /* zero: use libc */

void sg_set_allocator(const sg_allocator *a) {
    if (a)
        g_alloc = *a;
    else
        memset(&g_alloc, 0, sizeof g_alloc);
}

void *sg_malloc(size_t n) {
    if (n == 0)
        n = 1;
    return g_alloc.malloc_fn ? g_alloc.malloc_fn(n, g_alloc.user) : malloc(n);
}

void *sg_calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = sg_malloc(count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

void *sg_realloc(void *p, size_t n) {
    if (n == 0)
        n = 1;
    return g_alloc.realloc_fn ? g_alloc.realloc_fn(p, n, g_alloc.user) : realloc(p, n);
}

void sg_free(void *p) {
    if (!p)
        return;
    if (g_alloc.free_fn)
        g_alloc.free_fn(p, g_alloc.user);
    else
        free(p);
}

/* ---- errors -------------------------------------------------------------------------- */

void *sg_error(sg_ctx *ctx, const char *fmt, ...) {
    if (!ctx || ctx->has_err)
        return NULL;
    if (!fmt)
        fmt = "sg_error: NULL message";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
    va_end(ap);
    ctx->has_err = true;
    return NULL;
}

const char *sg_ctx_error(const sg_ctx *ctx) { return ctx && ctx->has_err ? ctx->err : NULL; }

void sg_ctx_clear_error(sg_ctx *ctx) {
    if (ctx) {
        ctx->has_err = false;
        ctx->err[0] = 0;
    }
}

/* ---- arena --------------------------------------------------------------------------- */

#define ALIGN 64
static size_t align_up(size_t n) { return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

static sg_arena_block *block_new(size_t cap) {
    if (cap > SIZE_MAX - sizeof(sg_arena_block))
        return NULL;
    sg_arena_block *b = sg_malloc(sizeof(sg_arena_block) + cap);
    if (!b)
        return NULL;
    /* sg_malloc only promises 16-byte alignment; keep the block usable by aligning
     * offsets relative to the real address in sg_arena_alloc. */
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    return b;
}

sg_ctx *sg_ctx_new(size_t arena_bytes) {
    if (arena_bytes == 0)
        arena_bytes = (size_t)1 << 20;
    sg_ctx *ctx = sg_calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->first = ctx->cur = block_new(arena_bytes);
    if (!ctx->first) {
        sg_free(ctx);
        return NULL;
    }
    ctx->capacity = arena_bytes;
    ctx->gen = SG_GEN_FIRST;
    sg_rng_seed(&ctx->rng, 0);
    return ctx;
}

void *sg_arena_alloc(sg_ctx *ctx, size_t n) {
    if (!ctx)
        return NULL;
    if (n > SIZE_MAX / 4)
        return sg_error(ctx, "sg_arena_alloc: out of memory allocating %zu bytes", n);
    sg_arena_block *b = ctx->cur;
    for (;;) {
        uintptr_t base = (uintptr_t)b->data;
        size_t start = align_up(base + b->used) - base;
        if (start <= b->cap && n <= b->cap - start) {
            ctx->used += start + n - b->used;
            b->used = start + n;
            if (ctx->used > ctx->peak)
                ctx->peak = ctx->used;
            ctx->cur = b;
            return b->data + start;
        }
        /* This block is full: what is left of it counts as used, as it cannot be. */
        ctx->used += b->cap - b->used;
        b->used = b->cap;
        if (!b->next) {
            size_t cap = ctx->capacity;
            if (cap < n + ALIGN)
                cap = n + ALIGN;
            b->next = block_new(cap);
            if (!b->next)
                return sg_error(ctx, "sg_arena_alloc: out of memory allocating %zu bytes", n);
            ctx->capacity += cap;
        }
        b = b->next;
    }
}

void sg_ctx_reset(sg_ctx *ctx) {
    if (!ctx)
        return;
    if (ctx->first->next) {
        /* The arena outgrew its first block: replace the chain by one block as large as
         * all of them, so that from now on a step fits in one block. */
        size_t cap = ctx->capacity;
        sg_arena_block *nb = block_new(cap);
        if (nb) {
            sg_arena_block *b = ctx->first;
            while (b) {
                sg_arena_block *n = b->next;
                sg_free(b);
                b = n;
            }
            ctx->first = nb;
        } else {
            for (sg_arena_block *b = ctx->first; b; b = b->next)
                b->used = 0;
        }
    }
    ctx->cur = ctx->first;
    ctx->gen++;
    /* Stagger the generations: the k-th reset starts the block 64 * (k mod 6) bytes further
     * in. Two tensor headers of one step start at least a header (384 bytes) apart, so when
     * a step repeats the work of one of the five before it, shifted by 64 to 320 bytes, none
     * of its headers starts where one of that step's did: a pointer kept from it lands inside
     * some new object, where sg_check finds no magic, or a header of an older generation. A
     * plain alternation of two offsets (as before) put the same work two resets later on the
     * very same addresses, where a stale pointer was a live tensor of the new generation.
     * Other work can still build a header exactly where an old one was; only a handle that
     * is not an address could tell those apart (tensor.h, sg_ctx_reset). `used` counts the
     * 64 bytes that odd generations have always started with, not the rest of the stagger
     * (free space before the step's first allocation): a step's count stays what it was. */
    size_t stagger = (size_t)((ctx->gen - SG_GEN_FIRST) % 6) * ALIGN;
    if (stagger > ctx->cur->cap) /* a block too small to shift */
        stagger = 0;
    ctx->cur->used = stagger;
    ctx->used = stagger & ALIGN;
}

size_t sg_ctx_arena_used(const sg_ctx *ctx) { return ctx ? ctx->used : 0; }
size_t sg_ctx_arena_peak(const sg_ctx *ctx) { return ctx ? ctx->peak : 0; }
size_t sg_ctx_arena_capacity(const sg_ctx *ctx) { return ctx ? ctx->capacity : 0; }
void sg_ctx_arena_reset_peak(sg_ctx *ctx) {
    if (ctx)
        ctx->peak = ctx->used;
}

sg_rng *sg_ctx_rng(sg_ctx *ctx) { return ctx ? &ctx->rng : NULL; }

/* ---- persistent tensors -------------------------------------------------------------- */

struct sg_persist_node {
    sg_persist_node *prev, *next;
    void (*dtor)(sg_tensor *t); /* the module above's, run before the tensor is freed */
    sg_tensor t;
    sg_storage s;
};

sg_tensor *sg__persistent_new(sg_ctx *ctx, const char *fn, sg_dtype dt, int ndim,
                              const int64_t *shape, void (*dtor)(sg_tensor *t)) {
    if (!ctx)
        return NULL;
    if ((unsigned)dt >= SG_DTYPE_COUNT)
        return sg_error(ctx, "%s: unknown dtype %d", fn, (int)dt);
    if (ndim < 0 || ndim > SG_MAX_DIMS)
        return sg_error(ctx, "%s: %d dimensions (at most %d)", fn, ndim, SG_MAX_DIMS);
    int64_t n;
    if (!sg__shape_ok(ctx, fn, ndim, shape, &n))
        return NULL;
    sg_persist_node *node = sg_calloc(1, sizeof *node);
    void *data = node ? sg_calloc((size_t)(n ? n : 1), sg_dtype_size(dt)) : NULL;
    if (!data) {
        sg_free(node);
        return sg_error(ctx, "%s: out of memory for %lld elements", fn, (long long)n);
    }
    sg_tensor *t = &node->t;
    node->s.data = data;
    node->s.nbytes = (size_t)n * sg_dtype_size(dt);
    node->dtor = dtor;
    node->s.root = &node->s;
    t->magic = SG_TENSOR_MAGIC;
    t->flags = SG_FLAG_PERSISTENT;
    t->ctx = ctx;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    sg__contiguous_strides(ndim, shape, t->stride);
    t->storage = &node->s;
    node->next = ctx->persist;
    if (ctx->persist)
        ctx->persist->prev = node;
    ctx->persist = node;
    return t;
}

sg_tensor *sg_persistent_new(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape) {
    return sg__persistent_new(ctx, "sg_persistent_new", dt, ndim, shape, NULL);
}

static void persist_unlink_free(sg_ctx *ctx, sg_persist_node *node) {
    if (node->dtor)
        node->dtor(&node->t);
    if (node->prev)
        node->prev->next = node->next;
    else
        ctx->persist = node->next;
    if (node->next)
        node->next->prev = node->prev;
    /* Cleared for debuggers only: the memory is freed next, and reading it afterwards (a
     * check of a freed tensor) is undefined, not a detection (tensor.h, sg_tensor_free). */
    node->t.magic = 0;
    sg_free(node->s.data);
    sg_free(node);
}

void sg_tensor_free(sg_tensor *t) {
    if (!t || t->magic != SG_TENSOR_MAGIC || !(t->flags & SG_FLAG_PERSISTENT) ||
        (t->flags & SG_FLAG_SHARED))
        return; /* shared: owned by something else (a parameter store) */
    sg_persist_node *node = (sg_persist_node *)((char *)t - offsetof(sg_persist_node, t));
    persist_unlink_free(t->ctx, node);
}

sg_tensor *sg__persist_next(sg_ctx *ctx, sg_tensor *prev) {
    sg_persist_node *n;
    if (!prev)
        n = ctx ? ctx->persist : NULL;
    else
        n = ((sg_persist_node *)((char *)prev - offsetof(sg_persist_node, t)))->next;
    return n ? &n->t : NULL;
}

void sg_ctx_free(sg_ctx *ctx) {
    if (!ctx)
        return;
    while (ctx->persist)
        persist_unlink_free(ctx, ctx->persist);
    sg_arena_block *b = ctx->first;
    while (b) {
        sg_arena_block *n = b->next;
        sg_free(b);
        b = n;
    }
    sg_free(ctx);
}
