/* The parameter store: a model's parameters under unique names, their values in one slab
 * and their gradients in another (each parameter a view into both), the workspaces'
 * private gradient slabs and their reduction; and named tensor lists (sg_param_list).
 *
 * Every parameter's view shares one sg_storage per slab, owned by the store: when a new
 * parameter grows a slab (realloc), every parameter follows. Each parameter starts on a
 * 64-byte boundary of the slab, so that kernels see the same alignment as in the arena;
 * the padding between parameters stays zero in both slabs. */
#include <string.h>

#include "ops.h"

#define SLAB_ALIGN_BYTES 64

typedef struct sg_store_entry {
    sg_tensor value; /* the parameter: a view into the value slab */
    sg_tensor grad;  /* its gradient: the same view into the gradient slab */
    sg_store *store;
    int index;
    int64_t offset; /* in elements, into both slabs */
    char name[SG_NAME_MAX + 1];
} sg_store_entry;

struct sg_store {
    sg_ctx *err; /* where calls on a parameter that name no context report */
    sg_dtype dtype;
    bool has_dtype;    /* fixed by the first parameter */
    sg_storage values; /* the slabs; every parameter's storage points here */
    sg_storage grads;
    int64_t len;            /* elements in use in each slab, padding included */
    int64_t cap;            /* elements allocated in each slab */
    sg_store_entry **items; /* entries don't move: views and layers keep pointers to them */
    int n, nalloc;
};

static sg_store_entry *entry_of(const sg_tensor *t) {
    return (sg_store_entry *)((char *)t - offsetof(sg_store_entry, value));
}

sg_store *sg_store_new(void) {
    sg_store *s = sg_calloc(1, sizeof *s);
    if (!s || !(s->err = sg_ctx_new(4096))) {
        sg_free(s);
        return NULL;
    }
    s->values.root = &s->values;
    s->grads.root = &s->grads;
    return s;
}

void sg_store_free(sg_store *s) {
    if (!s)
        return;
    for (int i = 0; i < s->n; i++) {
        s->items[i]->value.magic = s->items[i]->grad.magic = 0;
        sg_free(s->items[i]);
    }
    sg_free(s->items);
    sg_free(s->values.data);
    sg_free(s->grads.data);
    sg_ctx_free(s->err);
    sg_free(s);
}

const char *sg_store_error(const sg_store *s) { return s ? sg_ctx_error(s->err) : NULL; }
void sg_store_clear_error(sg_store *s) {
    if (s)
        sg_ctx_clear_error(s->err);
}

/* Grow both slabs to hold at least `need` elements. Zeroes what is new. */
static bool slabs_reserve(sg_store *s, int64_t need) {
    if (need <= s->cap)
        return true;
    int64_t nc = s->cap ? s->cap : 1024;
    while (nc < need)
        nc = nc > INT64_MAX / 2 ? need : 2 * nc;
    size_t es = sg_dtype_size(s->dtype);
    if ((uint64_t)nc > SIZE_MAX / es)
        return false;
    void *v = sg_realloc(s->values.data, (size_t)nc * es);
    if (!v)
        return false;
    s->values.data = v;
    void *g = sg_realloc(s->grads.data, (size_t)nc * es);
    if (!g)
        return false; /* values stay valid at their new size; cap is unchanged */
    s->grads.data = g;
    memset((char *)v + (size_t)s->cap * es, 0, (size_t)(nc - s->cap) * es);
    memset((char *)g + (size_t)s->cap * es, 0, (size_t)(nc - s->cap) * es);
    s->cap = nc;
    s->values.nbytes = s->grads.nbytes = (size_t)nc * es;
    return true;
}

static void view_init(sg_tensor *t, sg_ctx *ctx, sg_storage *st, sg_dtype dt, int ndim,
                      const int64_t *shape, int64_t offset) {
    memset(t, 0, sizeof *t);
    t->magic = SG_TENSOR_MAGIC;
    t->flags = SG_FLAG_PERSISTENT; /* survives resets */
    t->ctx = ctx;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) /* shape may be NULL for a 0-d tensor */
        t->shape[i] = shape[i];
    sg__contiguous_strides(ndim, shape, t->stride);
    t->offset = offset;
    t->storage = st;
}

sg_tensor *sg_store_param(sg_ctx *ctx, sg_store *s, const char *name, sg_dtype dt, int ndim,
                          const int64_t *shape) {
    if (!ctx)
        return NULL;
    if (!s)
        return sg_error(ctx, "sg_store_param: store is NULL");
    if (!name || !name[0])
        return sg_error(ctx, "sg_store_param: a parameter needs a name");
    if (strlen(name) > SG_NAME_MAX)
        return sg_error(ctx, "sg_store_param: name \"%.40s...\" is longer than %d characters", name,
                        SG_NAME_MAX);
    if (sg_store_find(s, name))
        return sg_error(ctx, "sg_store_param: the store already has a parameter \"%s\"", name);
    if (!sg_dtype_is_float(dt))
        return sg_error(ctx, "sg_store_param: a parameter is float32 or float64, not %s (%d)",
                        sg_dtype_name(dt), (int)dt);
    if (s->has_dtype && dt != s->dtype)
        return sg_error(ctx, "sg_store_param: \"%s\" is %s but the store holds %s parameters", name,
                        sg_dtype_name(dt), sg_dtype_name(s->dtype));
    if (ndim < 0 || ndim > SG_MAX_DIMS)
        return sg_error(ctx, "sg_store_param: %d dimensions (0 to %d supported)", ndim,
                        SG_MAX_DIMS);
    int64_t n;
    char fn[SG_NAME_MAX + 32];
    snprintf(fn, sizeof fn, "sg_store_param: \"%s\"", name);
    if (!sg__shape_ok(ctx, fn, ndim, shape, &n))
        return NULL;
    s->dtype = dt; /* the slabs' element size; fixed once a parameter is in */
    int64_t align = SLAB_ALIGN_BYTES / (int64_t)sg_dtype_size(dt);
    int64_t off = (s->len + align - 1) / align * align;
    if (off > SG_NUMEL_MAX - n)
        return sg_error(ctx,
                        "sg_store_param: \"%s\": the store's slab size overflows (%lld elements "
                        "at offset %lld)",
                        name, (long long)n, (long long)off);
    sg_store_entry *e = sg_calloc(1, sizeof *e);
    if (!e || !slabs_reserve(s, off + n)) {
        sg_free(e);
        return sg_error(ctx, "sg_store_param: out of memory for \"%s\" (%lld elements)", name,
                        (long long)n);
    }
    if (s->n == s->nalloc) {
        int na = s->nalloc ? 2 * s->nalloc : 16;
        sg_store_entry **ni = sg_realloc(s->items, (size_t)na * sizeof *ni);
        if (!ni) {
            sg_free(e);
            return sg_error(ctx, "sg_store_param: out of memory for \"%s\"", name);
        }
        s->items = ni;
        s->nalloc = na;
    }
    s->has_dtype = true;
    view_init(&e->value, s->err, &s->values, dt, ndim, shape, off);
    view_init(&e->grad, s->err, &s->grads, dt, ndim, shape, off);
    e->value.flags |= SG_FLAG_SHARED | SG_FLAG_PARAM | SG_FLAG_REQUIRES_GRAD | SG_FLAG_STORED;
    e->grad.flags |= SG_FLAG_SHARED;
    e->value.grad = &e->grad;
    snprintf(e->name, sizeof e->name, "%s", name);
    sg_tensor_set_name(&e->value, name);
    e->store = s;
    e->index = s->n;
    e->offset = off;
    s->items[s->n++] = e;
    s->len = off + n;
    return &e->value;
}

int sg_store_unique_name(sg_ctx *ctx, const sg_store *s, const char *base, char *buf, size_t n) {
    if (!ctx)
        return -1;
    if (!s || !base || !buf || !n) {
        sg_error(ctx, "sg_store_unique_name: NULL argument");
        return -1;
    }
    /* Keras' rule: "lstm", then "lstm_1", "lstm_2", ...: the first one no parameter of the
     * store is named after ("<name>." is the prefix of a layer's parameters). */
    for (int k = 0; k < 1000000; k++) {
        int w = k ? snprintf(buf, n, "%s_%d", base, k) : snprintf(buf, n, "%s", base);
        if (w < 0 || (size_t)w >= n) {
            sg_error(ctx, "sg_store_unique_name: \"%s\" does not fit in %zu characters", base,
                     n - 1);
            return -1;
        }
        size_t len = (size_t)w;
        bool used = false;
        for (int i = 0; i < s->n && !used; i++)
            used = !strncmp(s->items[i]->name, buf, len) &&
                   (s->items[i]->name[len] == '.' || s->items[i]->name[len] == 0);
        if (!used)
            return 0;
    }
    sg_error(ctx, "sg_store_unique_name: no free name for \"%s\"", base);
    return -1;
}

void sg_store_truncate(sg_store *s, int n) {
    if (!s || n < 0)
        return;
    while (s->n > n) {
        sg_store_entry *e = s->items[--s->n];
        size_t es = sg_dtype_size(s->dtype);
        memset((char *)s->values.data + (size_t)e->offset * es, 0,
               (size_t)(s->len - e->offset) * es);
        memset((char *)s->grads.data + (size_t)e->offset * es, 0,
               (size_t)(s->len - e->offset) * es);
        s->len = e->offset;
        e->value.magic = e->grad.magic = 0;
        sg_free(e);
    }
    s->has_dtype = s->n > 0;
}

int sg_store_size(const sg_store *s) { return s ? s->n : 0; }
sg_tensor *sg_store_at(const sg_store *s, int i) {
    return s && i >= 0 && i < s->n ? &s->items[i]->value : NULL;
}
const char *sg_store_name_at(const sg_store *s, int i) {
    return s && i >= 0 && i < s->n ? s->items[i]->name : NULL;
}
sg_tensor *sg_store_find(const sg_store *s, const char *name) {
    for (int i = 0; s && name && i < s->n; i++)
        if (!strcmp(s->items[i]->name, name))
            return &s->items[i]->value;
    return NULL;
}
int64_t sg_store_count(const sg_store *s) {
    int64_t n = 0;
    for (int i = 0; s && i < s->n; i++)
        n += sg_numel(&s->items[i]->value);
    return n;
}
sg_dtype sg_store_dtype(const sg_store *s) { return s ? s->dtype : SG_F32; }
int64_t sg_store_slab_len(const sg_store *s) { return s ? s->len : 0; }
void *sg_store_values(const sg_store *s) { return s ? s->values.data : NULL; }
void *sg_store_grads(const sg_store *s) { return s ? s->grads.data : NULL; }

void sg_store_zero_grad(sg_store *s) {
    if (s && s->len)
        memset(s->grads.data, 0, (size_t)s->len * sg_dtype_size(s->dtype));
}

sg_store *sg_param_store(const sg_tensor *t) {
    return t && t->magic == SG_TENSOR_MAGIC && (t->flags & SG_FLAG_STORED) ? entry_of(t)->store
                                                                           : NULL;
}

/* ---- private gradient slabs ------------------------------------------------------------
 * A workspace that works on part of a batch beside others accumulates its parameters'
 * gradients into a slab of its own, laid out as the store's: a persistent tensor of the
 * workspace (freed with it), with one view header per parameter. */

typedef struct {
    const sg_store *store;
    sg_tensor *slab;  /* 1-D, the store's slab length */
    sg_tensor *views; /* views[i]: parameter i's part of slab */
    int n;
} private_grads;

static void private_dtor(sg_tensor *slab) {
    private_grads *p = slab->aux;
    if (p) {
        sg_free(p->views);
        sg_free(p);
    }
    slab->aux = NULL;
}

int sg_ctx_private_grads(sg_ctx *ctx, const sg_store *s) {
    if (!ctx)
        return -1;
    if (!s || !s->n) {
        sg_error(ctx, "sg_ctx_private_grads: %s",
                 s ? "the store has no parameters" : "store is NULL");
        return -1;
    }
    if (ctx->tape.private_grads) {
        sg_error(ctx, "sg_ctx_private_grads: this workspace already has private gradients");
        return -1;
    }
    int64_t len = s->len;
    sg_tensor *slab =
        sg__persistent_new(ctx, "sg_ctx_private_grads", s->dtype, 1, &len, private_dtor);
    private_grads *p = slab ? sg_calloc(1, sizeof *p) : NULL;
    sg_tensor *views = p ? sg_calloc((size_t)s->n, sizeof *views) : NULL;
    if (!views) {
        sg_free(p);
        sg_tensor_free(slab);
        sg_error(ctx, "sg_ctx_private_grads: out of memory");
        return -1;
    }
    p->store = s;
    p->slab = slab;
    p->views = views;
    p->n = s->n;
    slab->aux = p;
    for (int i = 0; i < s->n; i++) {
        const sg_tensor *g = &s->items[i]->grad;
        view_init(&views[i], ctx, slab->storage, s->dtype, g->ndim, g->shape, g->offset);
    }
    ctx->tape.private_grads = slab;
    return 0;
}

sg_tensor *sg__param_grad(sg_ctx *ctx, sg_tensor *p) {
    const sg_tensor *slab = ctx->tape.private_grads;
    if (!slab || !(p->flags & SG_FLAG_STORED))
        return p->grad;
    const private_grads *pg = slab->aux;
    const sg_store_entry *e = entry_of(p);
    if (e->store != pg->store || e->index >= pg->n)
        return sg_error(ctx,
                        "sg_backward: parameter \"%s\" is not in the store this workspace "
                        "keeps private gradients for (or was added after)",
                        e->name);
    return &pg->views[e->index];
}

sg_tensor *sg_ctx_grad_of(sg_ctx *ctx, const sg_tensor *p) {
    if (!ctx || !sg_check(ctx, p, "sg_ctx_grad_of") || !(p->flags & SG_FLAG_PARAM))
        return NULL;
    return sg__param_grad(ctx, (sg_tensor *)p);
}

void sg_ctx_zero_private_grads(sg_ctx *ctx) {
    if (ctx && ctx->tape.private_grads)
        sg_fill(ctx->tape.private_grads, 0.0);
}

int sg_store_reduce_part(sg_ctx *ctx, sg_store *s, int n, sg_ctx *const *ws, int part, int parts) {
    if (!ctx)
        return -1;
    if (!s || n < 0 || (n && !ws) || parts < 1 || part < 0 || part >= parts) {
        sg_error(ctx, "sg_store_reduce: bad arguments");
        return -1;
    }
    for (int k = 0; k < n; k++) {
        const sg_tensor *slab = ws[k] ? ws[k]->tape.private_grads : NULL;
        if (!slab || ((const private_grads *)slab->aux)->store != s ||
            ((const private_grads *)slab->aux)->n != s->n) {
            sg_error(ctx, "sg_store_reduce: workspace %d has no private gradients for this store",
                     k);
            return -1;
        }
    }
    /* Part `part` of `parts` ranges, each a whole number of 64-byte lines (threads that
     * reduce neighbouring ranges then write no common cache line). */
    const int64_t line = 64 / (int64_t)sg_dtype_size(s->dtype), lines = (s->len + line - 1) / line;
    int64_t i0 = lines * part / parts * line, i1 = lines * (part + 1) / parts * line;
    if (i1 > s->len)
        i1 = s->len;
    /* In order: workspace 0's slab, then 1's, ...: the same sums every run. */
    for (int k = 0; k < n; k++) {
        const void *src = sg_data(ws[k]->tape.private_grads);
        if (s->dtype == SG_F32) {
            float *d = s->grads.data;
            const float *g = src;
            for (int64_t i = i0; i < i1; i++)
                d[i] += g[i];
        } else {
            double *d = s->grads.data;
            const double *g = src;
            for (int64_t i = i0; i < i1; i++)
                d[i] += g[i];
        }
    }
    return 0;
}

int sg_store_reduce(sg_ctx *ctx, sg_store *s, int n, sg_ctx *const *ws) {
    return sg_store_reduce_part(ctx, s, n, ws, 0, 1);
}

/* ---- named tensor lists ------------------------------------------------------------------ */

int sg_params_add(sg_param_list *list, const char *name, sg_tensor *t) {
    sg_ctx *ctx = list && list->ctx ? list->ctx : sg__ctx_of(t);
    if (!t) /* a NULL tensor propagates */
        return -1;
    if (!list || !name) {
        sg_error(ctx, "sg_params_add: %s is NULL", list ? "name" : "list");
        return -1;
    }
    if (!sg_check(sg__ctx_of(t), t, "sg_params_add")) /* live; of any context */
        return -1;
    if (strlen(name) >= sizeof list->items[0].name) {
        sg_error(ctx, "sg_params_add: name '%s' is longer than %zu characters", name,
                 sizeof list->items[0].name - 1);
        return -1;
    }
    if (sg_params_find(list, name)) {
        sg_error(ctx, "sg_params_add: duplicate parameter name '%s'", name);
        return -1;
    }
    if (list->n == list->cap) {
        int nc = list->cap ? 2 * list->cap : 16;
        sg_param_entry *ni = sg_realloc(list->items, (size_t)nc * sizeof *ni);
        if (!ni) {
            sg_error(ctx, "sg_params_add: out of memory");
            return -1;
        }
        list->items = ni;
        list->cap = nc;
    }
    sg_param_entry *e = &list->items[list->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->tensor = t;
    return 0;
}

int sg_params_from_store(sg_param_list *list, const sg_store *s) {
    if (!list || !s) {
        sg_error(list ? list->ctx
                 : s  ? s->err
                      : NULL,
                 "sg_params_from_store: %s is NULL", list ? "store" : "list");
        return -1;
    }
    for (int i = 0; i < s->n; i++)
        if (sg_params_add(list, s->items[i]->name, &s->items[i]->value))
            return -1;
    return 0;
}

sg_tensor *sg_params_find(const sg_param_list *list, const char *name) {
    for (int i = 0; list && name && i < list->n; i++)
        if (!strcmp(list->items[i].name, name))
            return list->items[i].tensor;
    return NULL;
}

void sg_params_zero_grad(sg_param_list *list) {
    for (int i = 0; list && i < list->n; i++)
        sg_zero_grad(list->items[i].tensor);
}

int64_t sg_params_count(const sg_param_list *list) {
    int64_t n = 0;
    for (int i = 0; list && i < list->n; i++)
        n += sg_numel(list->items[i].tensor);
    return n;
}

void sg_params_clear(sg_param_list *list) {
    if (!list)
        return;
    sg_free(list->items);
    list->items = NULL;
    list->n = list->cap = 0; /* list->ctx stays */
}
