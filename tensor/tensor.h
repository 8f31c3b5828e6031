/* seqgrad tensor core: contexts, tensors as strided views, creation, random numbers,
 * Keras initializers, printing and comparison.
 *
 * Conventions used by every public function in seqgrad:
 *  - Every function that can fail on user input returns NULL (or a negative code) and
 *    records a message in the context, naming the function and the problem, e.g.
 *    "sg_reshape: cannot view (2, 3) as (4, 2): 6 elements vs 8". Only the FIRST error is
 *    kept, so a chain of calls can be checked once at the end with sg_ctx_error().
 *  - A NULL tensor input propagates: the function returns NULL and records nothing new
 *    (the error that produced the NULL is already recorded).
 *  - Shapes and strides are int64_t, strides are in elements (not bytes).
 *  - Tensors made by sg_* functions live in the context's arena and die at
 *    sg_ctx_reset(); persistent tensors (sg_persistent_new) are malloc'd, survive resets
 *    and are freed by sg_tensor_free() or sg_ctx_free().
 *
 * tensor/ knows nothing of the tape: views that record themselves (sg_reshape, sg_slice,
 * ...), requires-grad and every op live in autograd/autograd.h.
 */
#ifndef SG_TENSOR_H
#define SG_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vmath.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SG_MAX_DIMS 6 /* enough for (B, T, 4, H) style views with room to spare */
#define SG_MAX_SRC 4  /* most inputs an op node records directly (concat uses aux) */

/* Most elements a tensor may have: 2^60 - 1. More precisely, the bound on the product of a
 * shape's NONZERO sizes, which every creation path and every view that makes a new shape
 * (reshape, expand) checks: then the byte size, every stride of the contiguous layout and
 * every partial product of the sizes, taken in any order, fit in int64, also for an empty
 * shape such as (0, 2^40, 2^40) (refused: its strides would not fit). */
#define SG_NUMEL_MAX (INT64_MAX / 8)

/* Element types. The float types carry values and gradients; the integer types carry
 * indices, labels and lengths: they are created, viewed (reshape, slice, ...), copied,
 * printed, saved (safetensors I64 / I32) and converted (sg_cast) like any tensor, and taken
 * by the ops that want indices (sg_gather, sg_cross_entropy's labels, ...), but they never
 * require grad, and a float op given one refuses it with a message naming the op. */
typedef enum { SG_F32 = 0, SG_F64 = 1, SG_I64 = 2, SG_I32 = 3 } sg_dtype;
#define SG_DTYPE_COUNT 4

/* Size in bytes of one element, and the name ("float32", "float64", "int64", "int32";
 * "unknown" for anything else). */
static inline size_t sg_dtype_size(sg_dtype dt) { return dt == SG_F64 || dt == SG_I64 ? 8 : 4; }
static inline bool sg_dtype_is_float(sg_dtype dt) { return dt == SG_F32 || dt == SG_F64; }
const char *sg_dtype_name(sg_dtype dt);

/* Tensor flags. tensor/ uses the low byte; the bits from 8 up belong to the module above
 * (autograd/autograd.h defines them), which tensor/ only clears at creation. */
enum {
    SG_FLAG_PERSISTENT = 1u << 0, /* malloc'd: survives sg_ctx_reset */
    SG_FLAG_SHARED = 1u << 1,     /* owned by no workspace and usable in every context (a
                                     store's parameter); its ctx only receives the errors of
                                     calls that name no context (sg_fill, sg_get_flat, ...) */
};

typedef struct sg_ctx sg_ctx;

/* Shared storage behind one or more views. Every view carries a copy of this struct; `root`
 * points at the one made with the buffer, which alone holds the mark slot. */
typedef struct sg_storage {
    void *data;    /* first byte */
    size_t nbytes; /* bytes available */
    struct sg_storage *root;
    /* A slot for the module above (autograd/: which parts of the buffer a recorded backward
     * still reads), meaningful while mark_gen equals the context's generation + 1, so that a
     * reset forgets it. tensor/ zeroes it and never reads it. */
    uint64_t mark_gen;
    struct sg_tensor *marks; /* the newest in-place result a backward reads, or a mark of the
                                whole buffer (autograd/inplace.c) */
} sg_storage;

/* One tensor struct, as in ggml: shape, strides, op, sources, flags, name.
 * Read the fields freely; change them only through the API. */
typedef struct sg_tensor sg_tensor;
struct sg_tensor {
    uint32_t magic; /* SG_TENSOR_MAGIC while valid; with gen, detects stale pointers */
    uint32_t flags; /* SG_FLAG_* */
    uint64_t gen;   /* context generation at creation (arena tensors only); never wraps */
    sg_ctx *ctx;    /* the context that made it */
    sg_dtype dtype; /* SG_F32, SG_F64, SG_I64 or SG_I32 */
    int ndim;       /* 0 .. SG_MAX_DIMS; 0 is a scalar with one element */
    int64_t shape[SG_MAX_DIMS];
    int64_t stride[SG_MAX_DIMS]; /* in elements */
    int64_t offset;              /* in elements from storage->data */
    sg_storage *storage;
    char name[44];
    /* The fields below belong to the module above (autograd/: the tape). tensor/ zeroes
     * them when it makes a tensor and never reads them. */
    int32_t step; /* the time step a node was recorded at, plus one (sg_ctx_set_step); 0: none.
                     Beside the name so that the struct keeps its size. */
    int op;       /* the op that made it (sg_op in autograd.h); 0: a leaf */
    int nsrc;     /* inputs recorded in src[] */
    sg_tensor *src[SG_MAX_SRC];
    int64_t iparam[SG_MAX_DIMS]; /* op parameters: axes, offsets, permutations */
    double fparam[2];            /* op parameters: scalars */
    void *aux;                   /* op-specific saved data (arena), e.g. labels */
    sg_tensor *grad;             /* accumulated gradient, same shape */
    sg_tensor *tape_prev;        /* previous node on the tape (execution order) */
    /* An in-place result that a recorded backward reads (autograd/inplace.c): */
    sg_tensor *mark_next;     /* the mark on the same buffer recorded before this one */
    int64_t mark_lo, mark_hi; /* lowest and highest offset over this mark and older ones */
};

#define SG_TENSOR_MAGIC 0x4e544753u /* "SGTN" */

/* Shape helper for the variadic creation calls:
 *   sg_zeros(ctx, SG_F32, SG_SHAPE(2, 3))  expands to  ..., 2, (const int64_t[]){2, 3}  */
#define SG_SHAPE(...)                                                                              \
    (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]) {           \
        __VA_ARGS__                                                                                \
    }

/* ---------------------------------------------------------------------------------------
 * Allocator shim: every byte seqgrad allocates goes through these. The hooks let a test
 * inject out-of-memory; NULL restores malloc/realloc/free.
 * ------------------------------------------------------------------------------------ */
typedef struct sg_allocator {
    void *(*malloc_fn)(size_t n, void *user);
    void *(*realloc_fn)(void *p, size_t n, void *user);
    void (*free_fn)(void *p, void *user);
    void *user;
} sg_allocator;
void sg_set_allocator(const sg_allocator *a);
void *sg_malloc(size_t n);
void *sg_calloc(size_t count, size_t size); /* zeroed; NULL on overflow or OOM */
void *sg_realloc(void *p, size_t n);
void sg_free(void *p); /* NULL is fine */

/* ---------------------------------------------------------------------------------------
 * Context: error state, the arena for per-step temporaries, the tape, the generator.
 * ------------------------------------------------------------------------------------ */

/* Create a context whose arena starts with `arena_bytes` (0 picks 1 MiB). The arena grows
 * by whole blocks when full and is coalesced into one block at the next reset, so steady
 * state is one block and reset is O(1). Returns NULL only when out of memory. */
sg_ctx *sg_ctx_new(size_t arena_bytes);

/* Free the context, its arena and every persistent tensor made with it. NULL is fine. As
 * with free(), using the context or any tensor made with it afterwards is undefined: no
 * check can tell, since the memory it would read is gone. */
void sg_ctx_free(sg_ctx *ctx);

/* Forget every arena tensor and tape node (O(1)). Parameters, their gradients and
 * persistent tensors are untouched. Using an arena tensor from before the reset is an
 * error ("used after sg_ctx_reset"), detected by its magic and its 64-bit generation, which
 * must be exactly the context's (every function that takes a tensor checks), with two
 * limits that come from reusing the memory:
 *  - the arena staggers generations (sg_ctx_reset in ctx.c) so that the same work done again
 *    up to five resets later never builds a tensor where an old pointer points; other work
 *    can, and an old pointer at the exact address of a tensor made since the reset IS that
 *    tensor as far as any check can see;
 *  - the first reset after the arena grew past its first block releases the blocks (to
 *    coalesce them): using a tensor from before that reset is undefined, like freed memory.
 * So keep no arena tensor across a reset; copy values out (sg_copy_to) or use persistent
 * tensors. */
void sg_ctx_reset(sg_ctx *ctx);

/* First error message since the last clear, or NULL. Owned by the context. */
const char *sg_ctx_error(const sg_ctx *ctx);
void sg_ctx_clear_error(sg_ctx *ctx);

/* Record an error (printf-style) unless one is already recorded. Returns NULL so a
 * failing function can `return sg_error(ctx, "...")`. Usable by extension code. */
void *sg_error(sg_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Arena statistics in bytes: in use now, the most ever in use (high-water mark, since
 * creation or sg_ctx_arena_reset_peak), and reserved. */
size_t sg_ctx_arena_used(const sg_ctx *ctx);
size_t sg_ctx_arena_peak(const sg_ctx *ctx);
size_t sg_ctx_arena_capacity(const sg_ctx *ctx);
void sg_ctx_arena_reset_peak(sg_ctx *ctx);

/* Allocate `n` bytes (64-byte aligned) from the arena; NULL and an error when out of
 * memory. Freed by sg_ctx_reset. */
void *sg_arena_alloc(sg_ctx *ctx, size_t n);

/* ---------------------------------------------------------------------------------------
 * Random numbers: xoshiro256** seeded through splitmix64. Reproducible across runs and
 * machines: integer arithmetic only, uniform doubles from the top 53 bits, normals by the
 * Marsaglia polar method (only log and sqrt, both correctly rounded by glibc).
 * ------------------------------------------------------------------------------------ */
typedef struct sg_rng {
    uint64_t s[4];
    double spare; /* second normal of the last polar pair */
    int has_spare;
} sg_rng;

void sg_rng_seed(sg_rng *rng, uint64_t seed);
uint64_t sg_rng_next(sg_rng *rng);              /* 64 random bits */
double sg_rng_uniform(sg_rng *rng);             /* in [0, 1) */
double sg_rng_normal(sg_rng *rng);              /* standard normal */
uint64_t sg_rng_below(sg_rng *rng, uint64_t n); /* uniform integer in [0, n), unbiased */
/* These have no error channel: a NULL rng gives 0 (sg_rng_next, sg_rng_below) or NaN
 * (sg_rng_uniform, sg_rng_normal). Every one returns on any state. The all-zero state, which
 * xoshiro256** can never leave (sg_rng_seed never makes it; a state set by hand or read from
 * a file can be), is replaced at the next draw by the state sg_rng_seed(rng,
 * SG_RNG_ZERO_STATE_SEED) would give. */
#define SG_RNG_ZERO_STATE_SEED 0x7a65726f73746174ull /* "zerostat" */
/* Is this a state sg_rng_seed and the draws can produce: not all zero, and a pending spare
 * normal (has_spare) that is a finite number? False for NULL. For loaders, to refuse a state
 * that did not come from the generator. */
bool sg_rng_state_valid(const sg_rng *rng);

/* The context's generator (seeded with 0 at creation). */
sg_rng *sg_ctx_rng(sg_ctx *ctx);

/* ---------------------------------------------------------------------------------------
 * Creation. Arena tensors unless noted; contiguous, row-major.
 * ------------------------------------------------------------------------------------ */
sg_tensor *sg_tensor_new(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape); /* zeros */
sg_tensor *sg_zeros(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape);
sg_tensor *sg_ones(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape);
sg_tensor *sg_full(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, double value);
sg_tensor *sg_scalar(sg_ctx *ctx, sg_dtype dt, double value); /* 0-d */
/* 1-D [start, start + step, ...) below stop (above stop for negative step). */
sg_tensor *sg_arange(sg_ctx *ctx, sg_dtype dt, double start, double stop, double step);
/* Copy `data` (dtype dt, contiguous row-major). */
sg_tensor *sg_from_data(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, const void *data);
/* Wrap caller memory without copying; the caller keeps ownership and must keep it alive
 * while the tensor is used. */
sg_tensor *sg_wrap(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, void *data);
/* Uniform in [lo, hi) / normal(mean, std), from the context's generator. */
sg_tensor *sg_rand_uniform(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, double lo,
                           double hi);
sg_tensor *sg_rand_normal(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape, double mean,
                          double std);

/* Persistent tensors: malloc'd, zeroed, survive sg_ctx_reset, freed by sg_tensor_free or
 * sg_ctx_free. */
sg_tensor *sg_persistent_new(sg_ctx *ctx, sg_dtype dt, int ndim, const int64_t *shape);
/* Free a persistent tensor now. Arena tensors, a store's parameters and NULL: no-op. As with
 * free(), using t afterwards (freeing it again included) is undefined. */
void sg_tensor_free(sg_tensor *t);

/* Name a tensor (copied, at most 43 characters; NULL clears it): printing and DOT graphs show it.
 */
void sg_tensor_set_name(sg_tensor *t, const char *name);

/* ---------------------------------------------------------------------------------------
 * Inspection.
 * ------------------------------------------------------------------------------------ */
/* Number of elements (1 for a 0-d tensor, 0 for NULL). Inline: ops call these a lot. */
static inline int64_t sg_numel(const sg_tensor *t) {
    int64_t n = 1;
    if (!t)
        return 0;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}
/* Row-major contiguous (size-1 dimensions may have any stride)? NULL: false. */
static inline bool sg_is_contiguous(const sg_tensor *t) {
    if (!t)
        return false;
    int64_t s = 1;
    bool ok = true;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 0)
            return true; /* empty: nothing to address */
        if (t->shape[i] != 1 && t->stride[i] != s)
            ok = false;
        s *= t->shape[i];
    }
    return ok;
}
/* Pointer to element 0 of the view (storage + offset); NULL for NULL. */
static inline void *sg_data(const sg_tensor *t) {
    return t ? (char *)t->storage->data + t->offset * (int64_t)sg_dtype_size(t->dtype) : NULL;
}
/* Element at a multi-index / flat row-major index, as double (NaN when out of range or t
 * is invalid, with an error). */
double sg_get(const sg_tensor *t, const int64_t *index);
double sg_get_flat(const sg_tensor *t, int64_t i);
/* Write v converted to t's dtype (for an integer dtype truncated toward zero, and a NaN or
 * a value outside its range is -1 with an error). Returns 0 or -1. */
int sg_set_flat(sg_tensor *t, int64_t i, double v);
/* Element i of an integer tensor exactly (a double holds integers only up to 2^53); a
 * float tensor's element truncated toward zero. 0 with an error out of range. */
int64_t sg_get_flat_i64(const sg_tensor *t, int64_t i);
/* Copy values out into a contiguous row-major buffer of numel elements of t's dtype /
 * as doubles. Return 0 or -1. */
int sg_copy_to(const sg_tensor *t, void *out);
int sg_copy_to_f64(const sg_tensor *t, double *out);
/* Format a shape as "(2, 3)" into buf; returns buf. */
const char *sg_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);
/* Is `t` a live tensor of this context? Records "<fn>: ..." and returns false if t is
 * stale (an arena tensor used after sg_ctx_reset, within the limits told at sg_ctx_reset),
 * of another context, or not a tensor at all (no magic). NULL returns false silently. A
 * tensor whose memory was freed (sg_tensor_free, sg_ctx_free) cannot be checked: undefined.
 * fn may be NULL ("sg_check"). */
bool sg_check(sg_ctx *ctx, const sg_tensor *t, const char *fn);

/* A contiguous copy of x converted to dtype dt (x itself is never changed; the copy is
 * made even when dt is x's dtype). Float to integer truncates toward zero, as C and
 * torch.Tensor.to do; a NaN, an infinity or a value outside the integer type's range is an
 * error naming the element ("sg_cast: element 3 is nan, not an int64"). Not recorded on
 * the tape: the result is a leaf that does not require grad. NULL x gives NULL. */
sg_tensor *sg_cast(sg_ctx *ctx, const sg_tensor *x, sg_dtype dt);

/* ---------------------------------------------------------------------------------------
 * In-place helpers (no autograd): fill, copy values between same-shaped tensors (any
 * strides, same dtype), scaled accumulate dst += alpha * src.
 * ------------------------------------------------------------------------------------ */
int sg_fill(sg_tensor *t, double value); /* integer t: value as for sg_set_flat */
int sg_copy(sg_tensor *dst, const sg_tensor *src);
int sg_axpy(sg_tensor *dst, double alpha, const sg_tensor *src); /* float tensors only */
/* Copy src's values into dst element by element in row-major order: the same number of
 * elements, any shapes, strides and dtypes (converted as sg_cast converts: a float that
 * is no whole number in an integer dst's range is an error). 0, or -1 with an error (counts
 * differ, stale tensors, a value that does not fit). */
int sg_copy_values(sg_tensor *dst, const sg_tensor *src);

/* ---------------------------------------------------------------------------------------
 * Keras initializers (tf.keras.initializers, same names, same formulas).
 * fan_in/fan_out: 1-D (n): n, n; 2-D (a, b): a, b; k-D: receptive field =
 * prod(shape[:-2]), fan_in = shape[-2] * rf, fan_out = shape[-1] * rf.
 * ------------------------------------------------------------------------------------ */
typedef enum {
    SG_INIT_ZEROS,
    SG_INIT_ONES,
    SG_INIT_CONSTANT,         /* a = value */
    SG_INIT_RANDOM_UNIFORM,   /* a = minval (default -0.05), b = maxval (0.05) */
    SG_INIT_RANDOM_NORMAL,    /* a = mean (0), b = stddev (0.05) */
    SG_INIT_TRUNCATED_NORMAL, /* a = mean (0), b = stddev (0.05); redraw beyond 2 stddev */
    SG_INIT_GLOROT_UNIFORM,   /* limit = sqrt(6 / (fan_in + fan_out)) */
    SG_INIT_GLOROT_NORMAL,    /* truncated, stddev = sqrt(2 / (fan_in + fan_out)) / .8796 */
    SG_INIT_HE_UNIFORM,       /* limit = sqrt(6 / fan_in) */
    SG_INIT_HE_NORMAL,        /* truncated, stddev = sqrt(2 / fan_in) / .87962566103423978 */
    SG_INIT_LECUN_UNIFORM,    /* limit = sqrt(3 / fan_in) */
    SG_INIT_LECUN_NORMAL,     /* truncated, stddev = sqrt(1 / fan_in) / .87962566103423978 */
    SG_INIT_ORTHOGONAL,       /* a = gain (1) */
    SG_INIT_COUNT
} sg_init_kind;

typedef struct sg_init {
    sg_init_kind kind;
    double a, b; /* parameters as listed above; use sg_init_default for Keras defaults */
} sg_init;

/* The initializer with Keras' default parameters. */
sg_init sg_init_default(sg_init_kind kind);
/* Keras name ("glorot_uniform", ...) <-> kind; -1 for an unknown name. */
const char *sg_init_name(sg_init_kind kind);
int sg_init_from_name(const char *name);
/* Fan of a shape by the rule above. */
void sg_init_fans(int ndim, const int64_t *shape, double *fan_in, double *fan_out);
/* Fill t (any strides) with draws from rng. Returns 0 or -1 with an error. */
int sg_init_tensor(sg_ctx *ctx, sg_tensor *t, sg_init init, sg_rng *rng);

/* ---------------------------------------------------------------------------------------
 * Printing and comparison.
 * ------------------------------------------------------------------------------------ */
/* NumPy-style: header line "name: shape=(2, 3) dtype=float32", then aligned values;
 * large tensors are summarized with "..." like NumPy. */
void sg_print(const sg_tensor *t, FILE *f);
/* Print to a malloc'd string (caller frees with sg_free); NULL on error. */
char *sg_print_str(const sg_tensor *t);

typedef struct sg_compare_result {
    double max_abs;     /* max |a - b| */
    double max_rel;     /* max |a - b| / max(|b|, tiny) */
    int64_t worst_flat; /* flat index of the element with the largest abs difference */
    int64_t worst_index[SG_MAX_DIMS];
    int64_t n_mismatch; /* elements failing |a-b| <= atol + rtol*|b| (NaN != number) */
} sg_compare_result;
/* Compare two tensors of the same shape (dtypes may differ). Returns 0 when every
 * element satisfies |a - b| <= atol + rtol * |b| (NaN equals NaN only if both), 1 when
 * some do not, -1 with an error on bad input. `res` may be NULL. */
int sg_compare(sg_ctx *ctx, const sg_tensor *a, const sg_tensor *b, double rtol, double atol,
               sg_compare_result *res);

#ifdef __cplusplus
}
#endif
#endif /* SG_TENSOR_H */
