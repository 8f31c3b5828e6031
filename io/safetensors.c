/* safetensors reading and writing.
 *
 * Layout: [u64 LE header length N][N bytes of JSON, space padded][data buffer]. The reader
 * is written for hostile input (it is fuzzed by fuzz/fuzz_safetensors.c): every length is
 * checked against what is really there before it is used, the JSON is bounded in depth
 * before cJSON sees it, and the data buffer must be exactly tiled by the tensors.
 */
#define _GNU_SOURCE /* mkstemp, fsync, fchmod */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "io_internal.h"

int sg__io_fail_point = SG_IO_FAIL_NONE;

/* The reference implementation's limit on the header (safetensors MAX_HEADER_SIZE). */
#define ST_MAX_HEADER 100000000ull
/* A header is an object of objects of arrays: deeper nesting is never valid. */
#define ST_MAX_DEPTH 3
/* Largest integer a JSON number (a double in cJSON) holds exactly. */
#define ST_MAX_INT 9007199254740992.0 /* 2^53 */

struct sg_st_file {
    sg_ctx *ctx;
    char *label; /* the path, for messages */
    int n;       /* tensors, sorted by name */
    char **names;
    sg_tensor **tensors;
    int nmeta; /* metadata, sorted by key */
    char **keys, **vals;
};

/* ---- errors -------------------------------------------------------------------------- */

void sg__io_error(sg_ctx *ctx, const char *fn, const char *label, const char *fmt, ...) {
    if (!ctx || sg_ctx_error(ctx))
        return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (label)
        sg_error(ctx, "%s: %s: %s", fn, label, msg);
    else
        sg_error(ctx, "%s: %s", fn, msg);
}

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = sg_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* ---- dtypes -------------------------------------------------------------------------- */

/* Every dtype name of the safetensors format, so that a valid file with, say, bfloat16
 * weights gets "not supported" rather than "unknown". */
static const char *const st_known_dtypes[] = {
    "BOOL", "U8",  "I8",  "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16",     "BF16",
    "I32",  "U32", "F32", "F64",     "I64",     "U64",     "C64", "F4",  "F6_E2M3", "F6_E3M2",
};

static const char *st_dtype_str(sg_dtype dt) { return dt == SG_F64 ? "F64" : "F32"; }

/* ---- little-endian helpers ----------------------------------------------------------- */

static uint64_t ld_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void st_le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* The data buffer is little-endian; on a big-endian host swap each element in place. */
static void to_from_le(void *data, size_t nbytes, size_t esize) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    unsigned char *p = data;
    for (size_t i = 0; i + esize <= nbytes; i += esize)
        for (size_t a = 0, b = esize - 1; a < b; a++, b--) {
            unsigned char t = p[i + a];
            p[i + a] = p[i + b];
            p[i + b] = t;
        }
#else
    (void)data, (void)nbytes, (void)esize;
#endif
}

static bool host_is_le(void) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return false;
#else
    return true;
#endif
}

/* ---- the sg_st_file ------------------------------------------------------------------ */

void sg_st_free(sg_st_file *f) {
    if (!f)
        return;
    for (int i = 0; i < f->n; i++) {
        if (f->names)
            sg_free(f->names[i]);
        if (f->tensors)
            sg_tensor_free(f->tensors[i]);
    }
    for (int i = 0; i < f->nmeta; i++) {
        if (f->keys)
            sg_free(f->keys[i]);
        if (f->vals)
            sg_free(f->vals[i]);
    }
    sg_free(f->names);
    sg_free(f->tensors);
    sg_free(f->keys);
    sg_free(f->vals);
    sg_free(f->label);
    sg_free(f);
}

int sg_st_count(const sg_st_file *f) { return f ? f->n : 0; }

const char *sg_st_name(const sg_st_file *f, int i) {
    return f && i >= 0 && i < f->n ? f->names[i] : NULL;
}

sg_tensor *sg_st_tensor(const sg_st_file *f, int i) {
    return f && i >= 0 && i < f->n ? f->tensors[i] : NULL;
}

/* Binary search over the sorted names; -1 if absent. */
static int find_sorted(char *const *names, int n, const char *key) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(names[mid], key);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

bool sg_st_has(const sg_st_file *f, const char *name) {
    return f && name && find_sorted(f->names, f->n, name) >= 0;
}

sg_tensor *sg_st_get(const sg_st_file *f, const char *name) {
    if (!f)
        return NULL;
    if (!name)
        return sg_error(f->ctx, "sg_st_get: %s: NULL name", f->label);
    int i = find_sorted(f->names, f->n, name);
    if (i < 0)
        return sg_error(f->ctx, "sg_st_get: %s: no tensor '%s'", f->label, name);
    return f->tensors[i];
}

const char *sg_st_meta(const sg_st_file *f, const char *key) {
    if (!f || !key)
        return NULL;
    int i = find_sorted(f->keys, f->nmeta, key);
    return i < 0 ? NULL : f->vals[i];
}

int sg_st_meta_count(const sg_st_file *f) { return f ? f->nmeta : 0; }

const char *sg_st_meta_key(const sg_st_file *f, int i) {
    return f && i >= 0 && i < f->nmeta ? f->keys[i] : NULL;
}

const char *sg_st_meta_value(const sg_st_file *f, int i) {
    return f && i >= 0 && i < f->nmeta ? f->vals[i] : NULL;
}

/* ---- parsing ------------------------------------------------------------------------- */

/* One tensor entry of the header, validated. */
typedef struct {
    const char *name; /* points into the cJSON tree */
    sg_dtype dtype;
    int ndim;
    int64_t shape[SG_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

/* Order by data_offsets, for the tiling check. */
static int cmp_entry_offsets(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

typedef struct {
    const char *key, *val;
} st_kv;

static int cmp_kv(const void *a, const void *b) {
    return strcmp(((const st_kv *)a)->key, ((const st_kv *)b)->key);
}

static bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* One pass over the raw header before cJSON parses it: it must start with '{', nest at
 * most ST_MAX_DEPTH deep (so no recursion bomb reaches cJSON), and its strings must be
 * strict JSON: no raw control characters and no \u0000, which would silently truncate a
 * name in C. Returns NULL, or the problem with its byte offset in *at. */
static const char *prescan(const unsigned char *h, size_t n, size_t *at) {
    size_t i = 0;
    int depth = 0;
    bool in_str = false;
    while (i < n && is_ws(h[i]))
        i++;
    *at = i;
    if (i == n || h[i] != '{')
        return "the header is not a JSON object";
    for (; i < n; i++) {
        unsigned char c = h[i];
        *at = i;
        if (in_str) {
            if (c == '\\') {
                if (i + 5 < n && h[i + 1] == 'u' && !memcmp(h + i + 2, "0000", 4))
                    return "\\u0000 in a JSON string";
                i++; /* skip the escaped character (an unterminated string: cJSON's job) */
            } else if (c == '"') {
                in_str = false;
            } else if (c < 0x20) {
                return "control character in a JSON string";
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > ST_MAX_DEPTH)
                return "the header JSON is nested more than 3 levels deep";
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return NULL;
}

/* A JSON number that must be an exact non-negative integer. Returns NULL or why not. */
static const char *get_uint(const cJSON *it, uint64_t *out) {
    if (!cJSON_IsNumber(it))
        return "is not a number";
    double d = it->valuedouble;
    if (d < 0)
        return "is negative";
    if (!(d < ST_MAX_INT)) /* also catches 1e999 = inf */
        return "is too large";
    if ((double)(uint64_t)d != d)
        return "is not an integer";
    *out = (uint64_t)d;
    return NULL;
}

/* Validate one tensor entry {"dtype": .., "shape": [..], "data_offsets": [b, e]}. */
static bool parse_entry(sg_ctx *ctx, const char *fn, const char *label, const cJSON *item,
                        uint64_t datalen, st_entry *e) {
    const char *name = item->string;
    e->name = name;
    if (!cJSON_IsObject(item)) {
        sg__io_error(ctx, fn, label, "tensor '%s': entry is not an object", name);
        return false;
    }
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *f = item->child; f; f = f->next) {
        const cJSON **slot = !strcmp(f->string, "dtype")          ? &dtype
                             : !strcmp(f->string, "shape")        ? &shape
                             : !strcmp(f->string, "data_offsets") ? &offs
                                                                  : NULL;
        if (!slot) {
            sg__io_error(ctx, fn, label, "tensor '%s': unexpected field '%s'", name, f->string);
            return false;
        }
        if (*slot) { /* cJSON keeps both copies of a repeated key */
            sg__io_error(ctx, fn, label, "tensor '%s': duplicate field '%s'", name, f->string);
            return false;
        }
        *slot = f;
    }
    const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offs ? "data_offsets" : NULL;
    if (missing) {
        sg__io_error(ctx, fn, label, "tensor '%s': missing field '%s'", name, missing);
        return false;
    }

    /* dtype */
    if (!cJSON_IsString(dtype)) {
        sg__io_error(ctx, fn, label, "tensor '%s': dtype is not a string", name);
        return false;
    }
    const char *ds = dtype->valuestring;
    if (!strcmp(ds, "F32")) {
        e->dtype = SG_F32;
    } else if (!strcmp(ds, "F64")) {
        e->dtype = SG_F64;
    } else {
        for (size_t k = 0; k < sizeof st_known_dtypes / sizeof *st_known_dtypes; k++)
            if (!strcmp(ds, st_known_dtypes[k])) {
                sg__io_error(ctx, fn, label,
                             "tensor '%s': dtype %s not supported (only F32 and F64)", name, ds);
                return false;
            }
        sg__io_error(ctx, fn, label, "tensor '%s': unknown dtype '%s'", name, ds);
        return false;
    }

    /* shape: at most SG_MAX_DIMS exact non-negative integers whose product (in bytes) fits
     * in int64, checked before every multiplication. */
    if (!cJSON_IsArray(shape)) {
        sg__io_error(ctx, fn, label, "tensor '%s': shape is not an array", name);
        return false;
    }
    int nd = 0;
    int64_t numel = 1;
    const int64_t esize = (int64_t)sg_dtype_size(e->dtype);
    for (const cJSON *d = shape->child; d; d = d->next, nd++) {
        if (nd == SG_MAX_DIMS) {
            sg__io_error(ctx, fn, label, "tensor '%s': shape has more than %d dimensions", name,
                         SG_MAX_DIMS);
            return false;
        }
        uint64_t v;
        const char *why = get_uint(d, &v);
        if (why) {
            sg__io_error(ctx, fn, label, "tensor '%s': shape dimension %d %s", name, nd, why);
            return false;
        }
        if (v && (uint64_t)numel > (uint64_t)(INT64_MAX / esize) / v) {
            sg__io_error(ctx, fn, label, "tensor '%s': shape has too many elements", name);
            return false;
        }
        e->shape[nd] = (int64_t)v;
        numel *= (int64_t)v;
    }
    e->ndim = nd;

    /* data_offsets: [begin, end] inside the data buffer, holding exactly the tensor. */
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2) {
        sg__io_error(ctx, fn, label, "tensor '%s': data_offsets is not an array of 2 integers",
                     name);
        return false;
    }
    const char *why = get_uint(offs->child, &e->begin);
    if (!why)
        why = get_uint(offs->child->next, &e->end);
    if (why) {
        sg__io_error(ctx, fn, label, "tensor '%s': data_offsets entry %s", name, why);
        return false;
    }
    if (e->end < e->begin) {
        sg__io_error(ctx, fn, label, "tensor '%s': data_offsets [%llu, %llu] end before begin",
                     name, (unsigned long long)e->begin, (unsigned long long)e->end);
        return false;
    }
    if (e->end > datalen) {
        sg__io_error(ctx, fn, label,
                     "tensor '%s': data_offsets [%llu, %llu] beyond the %llu-byte data buffer",
                     name, (unsigned long long)e->begin, (unsigned long long)e->end,
                     (unsigned long long)datalen);
        return false;
    }
    if (e->end - e->begin != (uint64_t)(numel * esize)) {
        char sb[160];
        sg__io_error(ctx, fn, label,
                     "tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, shape %s of %s "
                     "needs %lld",
                     name, (unsigned long long)e->begin, (unsigned long long)e->end,
                     (unsigned long long)(e->end - e->begin),
                     sg_shape_str(e->ndim, e->shape, sb, sizeof sb), ds,
                     (long long)(numel * esize));
        return false;
    }
    return true;
}

/* The whole parser. `label` is the path (NULL when parsing memory). */
static sg_st_file *st_parse(sg_ctx *ctx, const char *fn, const char *label,
                            const unsigned char *buf, size_t len) {
    if (len < 8) {
        sg__io_error(ctx, fn, label, "truncated: %zu bytes, a safetensors file has at least 8",
                     len);
        return NULL;
    }
    uint64_t hlen = ld_le64(buf);
    if (hlen > ST_MAX_HEADER) {
        sg__io_error(ctx, fn, label, "header length %llu is absurd (more than 100 MB)",
                     (unsigned long long)hlen);
        return NULL;
    }
    if (hlen > len - 8) {
        sg__io_error(ctx, fn, label, "header length %llu exceeds the %zu bytes after it",
                     (unsigned long long)hlen, len - 8);
        return NULL;
    }
    const unsigned char *hdr = buf + 8, *data = buf + 8 + hlen;
    const uint64_t datalen = len - 8 - hlen;

    size_t at;
    const char *why = prescan(hdr, (size_t)hlen, &at);
    if (why) {
        sg__io_error(ctx, fn, label, "%s (header byte %zu)", why, at);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)hdr, (size_t)hlen, &end, 0);
    if (!root) {
        size_t pos = end ? (size_t)(end - (const char *)hdr) : 0;
        sg__io_error(ctx, fn, label, "malformed header JSON (header byte %zu)", pos);
        return NULL;
    }

    sg_st_file *f = NULL;
    st_entry *ents = NULL, **order = NULL;
    st_kv *kvs = NULL;
    int n = 0, nmeta = 0;
    bool ok = false;

    /* Only spaces (the reference's padding) and JSON whitespace may follow the object. */
    for (const char *p = end; p < (const char *)hdr + hlen; p++)
        if (!is_ws((unsigned char)*p)) {
            sg__io_error(ctx, fn, label, "unexpected bytes after the header JSON (byte %zu)",
                         (size_t)(p - (const char *)hdr));
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        sg__io_error(ctx, fn, label, "the header is not a JSON object");
        goto done;
    }

    /* Split the root's members into tensor entries and the one metadata object. */
    const cJSON *meta = NULL;
    int nitems = 0;
    for (const cJSON *it = root->child; it; it = it->next)
        nitems++;
    ents = sg_calloc((size_t)nitems + 1, sizeof *ents);
    if (!ents) {
        sg__io_error(ctx, fn, label, "out of memory");
        goto done;
    }
    for (const cJSON *it = root->child; it; it = it->next) {
        if (!strcmp(it->string, "__metadata__")) {
            if (meta) {
                sg__io_error(ctx, fn, label, "duplicate __metadata__");
                goto done;
            }
            meta = it;
            continue;
        }
        if (!parse_entry(ctx, fn, label, it, datalen, &ents[n]))
            goto done;
        n++;
    }
    if (meta) {
        if (!cJSON_IsObject(meta)) {
            sg__io_error(ctx, fn, label, "__metadata__ is not an object");
            goto done;
        }
        for (const cJSON *it = meta->child; it; it = it->next)
            nmeta++;
        kvs = sg_calloc((size_t)nmeta + 1, sizeof *kvs);
        if (!kvs) {
            sg__io_error(ctx, fn, label, "out of memory");
            goto done;
        }
        int k = 0;
        for (const cJSON *it = meta->child; it; it = it->next, k++) {
            if (!cJSON_IsString(it)) {
                sg__io_error(ctx, fn, label, "__metadata__ value of '%s' is not a string",
                             it->string);
                goto done;
            }
            kvs[k].key = it->string;
            kvs[k].val = it->valuestring;
        }
        qsort(kvs, (size_t)nmeta, sizeof *kvs, cmp_kv);
        for (int i = 1; i < nmeta; i++)
            if (!strcmp(kvs[i - 1].key, kvs[i].key)) {
                sg__io_error(ctx, fn, label, "duplicate __metadata__ key '%s'", kvs[i].key);
                goto done;
            }
    }

    /* Names must be unique: sort and compare neighbours (cJSON keeps duplicates). */
    qsort(ents, (size_t)n, sizeof *ents, cmp_entry_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(ents[i - 1].name, ents[i].name)) {
            sg__io_error(ctx, fn, label, "duplicate tensor name '%s'", ents[i].name);
            goto done;
        }

    /* The tensors must tile the data buffer: in offset order each begins where the last
     * ended, and the last ends at the buffer's end (no gaps, no overlaps, nothing
     * trailing), as the reference implementation requires. */
    order = sg_calloc((size_t)n + 1, sizeof *order);
    if (!order) {
        sg__io_error(ctx, fn, label, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        order[i] = &ents[i];
    qsort(order, (size_t)n, sizeof *order, cmp_entry_offsets);
    uint64_t covered = 0;
    for (int i = 0; i < n; i++) {
        const st_entry *e = order[i];
        if (e->begin < covered) {
            const st_entry *p = order[i - 1];
            sg__io_error(ctx, fn, label, "tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap",
                         p->name, (unsigned long long)p->begin, (unsigned long long)p->end, e->name,
                         (unsigned long long)e->begin, (unsigned long long)e->end);
            goto done;
        }
        if (e->begin > covered) {
            sg__io_error(ctx, fn, label,
                         "gap in the data buffer: bytes [%llu, %llu) belong to no tensor",
                         (unsigned long long)covered, (unsigned long long)e->begin);
            goto done;
        }
        covered = e->end;
    }
    if (covered != datalen) {
        sg__io_error(ctx, fn, label, "the tensors cover %llu bytes of the %llu-byte data buffer",
                     (unsigned long long)covered, (unsigned long long)datalen);
        goto done;
    }

    /* Everything checks out: build the file. */
    f = sg_calloc(1, sizeof *f);
    if (!f) {
        sg__io_error(ctx, fn, label, "out of memory");
        goto done;
    }
    f->ctx = ctx;
    f->label = str_dup(label ? label : "<memory>");
    f->names = sg_calloc((size_t)n + 1, sizeof *f->names);
    f->tensors = sg_calloc((size_t)n + 1, sizeof *f->tensors);
    f->keys = sg_calloc((size_t)nmeta + 1, sizeof *f->keys);
    f->vals = sg_calloc((size_t)nmeta + 1, sizeof *f->vals);
    if (!f->label || !f->names || !f->tensors || !f->keys || !f->vals) {
        sg__io_error(ctx, fn, label, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++, f->n++) {
        const st_entry *e = &ents[i];
        f->names[i] = str_dup(e->name);
        f->tensors[i] = sg_persistent_new(ctx, e->dtype, e->ndim, e->shape);
        if (!f->names[i] || !f->tensors[i]) {
            f->n++; /* so that sg_st_free frees this one's parts too */
            sg__io_error(ctx, fn, label, "out of memory for tensor '%s'", e->name);
            goto done;
        }
        size_t nbytes = (size_t)(e->end - e->begin);
        if (nbytes) {
            memcpy(sg_data(f->tensors[i]), data + e->begin, nbytes);
            to_from_le(sg_data(f->tensors[i]), nbytes, sg_dtype_size(e->dtype));
        }
        sg_tensor_set_name(f->tensors[i], e->name);
    }
    for (int i = 0; i < nmeta; i++, f->nmeta++) {
        f->keys[i] = str_dup(kvs[i].key);
        f->vals[i] = str_dup(kvs[i].val);
        if (!f->keys[i] || !f->vals[i]) {
            f->nmeta++;
            sg__io_error(ctx, fn, label, "out of memory");
            goto done;
        }
    }
    ok = true;

done:
    cJSON_Delete(root);
    sg_free(ents);
    sg_free(order);
    sg_free(kvs);
    if (!ok) {
        sg_st_free(f);
        return NULL;
    }
    return f;
}

sg_st_file *sg_safetensors_parse(sg_ctx *ctx, const void *buf, size_t len) {
    if (!ctx)
        return NULL;
    if (!buf)
        return sg_error(ctx, "sg_safetensors_parse: NULL buffer");
    return st_parse(ctx, "sg_safetensors_parse", NULL, buf, len);
}

/* Read a whole file into a new buffer (sg_free it). Regular files are read in one go;
 * anything else (a pipe) by doubling. */
static unsigned char *read_file(sg_ctx *ctx, const char *fn, const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        sg__io_error(ctx, fn, path, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0)
        memset(&st, 0, sizeof st); /* size unknown: read by doubling */
    if (S_ISDIR(st.st_mode)) {
        fclose(fp);
        sg__io_error(ctx, fn, path, "is a directory");
        return NULL;
    }
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, n = 0;
    unsigned char *buf = sg_malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, fp);
        if (n < cap)
            break; /* EOF or error */
        unsigned char *nb = cap < SIZE_MAX / 2 ? sg_realloc(buf, cap * 2) : NULL;
        if (!nb) {
            sg_free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (!buf) {
        fclose(fp);
        sg__io_error(ctx, fn, path, "out of memory reading the file");
        return NULL;
    }
    if (ferror(fp)) {
        int err = errno;
        fclose(fp);
        sg_free(buf);
        sg__io_error(ctx, fn, path, "read error: %s", strerror(err));
        return NULL;
    }
    fclose(fp);
    *len = n;
    return buf;
}

sg_st_file *sg__st_load(sg_ctx *ctx, const char *fn, const char *path) {
    if (!ctx)
        return NULL;
    if (!path)
        return sg_error(ctx, "%s: NULL path", fn);
    size_t len = 0;
    unsigned char *buf = read_file(ctx, fn, path, &len);
    if (!buf)
        return NULL;
    sg_st_file *f = st_parse(ctx, fn, path, buf, len);
    sg_free(buf);
    return f;
}

sg_st_file *sg_safetensors_load(sg_ctx *ctx, const char *path) {
    return sg__st_load(ctx, "sg_safetensors_load", path);
}

/* ---- writing ------------------------------------------------------------------------- */

static int cmp_entry_ptr_name(const void *a, const void *b) {
    return strcmp((*(const sg_param_entry *const *)a)->name,
                  (*(const sg_param_entry *const *)b)->name);
}

/* Attach `item` to an object (key non-NULL) or an array; on failure free it. */
static cJSON *attach(cJSON *parent, const char *key, cJSON *item) {
    if (!item)
        return NULL;
    if (!(key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item))) {
        cJSON_Delete(item);
        return NULL;
    }
    return item;
}

/* An exact integer as raw JSON text: cJSON prints doubles of 1e15 and above as "1e+15",
 * which strict readers refuse for an integer field. */
static cJSON *json_int(uint64_t v) {
    char s[24];
    snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    return cJSON_CreateRaw(s);
}

/* The header JSON for tensors `ents` (sorted) and metadata pairs `kvs` (sorted), with the
 * data offsets they will have; a cJSON-allocated string (cJSON_free) or NULL on OOM. */
static char *build_header(const sg_param_entry *const *ents, int n, const st_kv *kvs, int nmeta) {
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    if (ok && nmeta) {
        cJSON *m = attach(root, "__metadata__", cJSON_CreateObject());
        ok = m != NULL;
        for (int i = 0; ok && i < nmeta; i++)
            ok = attach(m, kvs[i].key, cJSON_CreateString(kvs[i].val)) != NULL;
    }
    uint64_t off = 0;
    for (int i = 0; ok && i < n; i++) {
        const sg_tensor *t = ents[i]->tensor;
        uint64_t nbytes = (uint64_t)sg_numel(t) * sg_dtype_size(t->dtype);
        cJSON *e = attach(root, ents[i]->name, cJSON_CreateObject());
        ok = e && attach(e, "dtype", cJSON_CreateString(st_dtype_str(t->dtype)));
        cJSON *shape = ok ? attach(e, "shape", cJSON_CreateArray()) : NULL;
        cJSON *offs = shape ? attach(e, "data_offsets", cJSON_CreateArray()) : NULL;
        ok = offs != NULL;
        for (int d = 0; ok && d < t->ndim; d++)
            ok = attach(shape, NULL, json_int((uint64_t)t->shape[d])) != NULL;
        ok = ok && attach(offs, NULL, json_int(off)) && attach(offs, NULL, json_int(off + nbytes));
        off += nbytes;
    }
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

/* Directory part of path ("." when there is none), as a new string. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        return str_dup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = sg_malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = 0;
    }
    return d;
}

static bool write_all(FILE *fp, const void *p, size_t n) {
    if (sg__io_fail_point == SG_IO_FAIL_WRITE) {
        errno = EIO;
        return false;
    }
    return n == 0 || fwrite(p, 1, n, fp) == n;
}

int sg__st_save(sg_ctx *ctx, const char *fn, const char *path, const sg_param_list *tensors,
                const char *const *metadata) {
    if (!ctx)
        return -1;
    if (!path) {
        sg_error(ctx, "%s: NULL path", fn);
        return -1;
    }
    int n = tensors ? tensors->n : 0, nmeta = 0, rc = -1, fd = -1;
    const sg_param_entry **ents = NULL;
    st_kv *kvs = NULL;
    char *json = NULL, *tmp = NULL, *dir = NULL;
    unsigned char *scratch = NULL;
    FILE *fp = NULL;

    /* Validate the tensors and metadata. */
    ents = sg_calloc((size_t)n + 1, sizeof *ents);
    if (!ents)
        goto oom;
    size_t max_bytes = 0;
    for (int i = 0; i < n; i++) {
        const sg_param_entry *e = &tensors->items[i];
        char where[1024];
        snprintf(where, sizeof where, "%s: %s: tensor '%s'", fn, path, e->name);
        if (!e->tensor) {
            sg__io_error(ctx, fn, path, "tensor '%s' is NULL", e->name);
            goto out;
        }
        if (!sg_check(ctx, e->tensor, where))
            goto out;
        if (!strcmp(e->name, "__metadata__")) {
            sg__io_error(ctx, fn, path, "'__metadata__' is reserved, not a tensor name");
            goto out;
        }
        size_t nb = (size_t)sg_numel(e->tensor) * sg_dtype_size(e->tensor->dtype);
        if ((!sg_is_contiguous(e->tensor) || !host_is_le()) && nb > max_bytes)
            max_bytes = nb;
        ents[i] = e;
    }
    qsort(ents, (size_t)n, sizeof *ents, cmp_entry_ptr_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(ents[i - 1]->name, ents[i]->name)) {
            sg__io_error(ctx, fn, path, "duplicate tensor name '%s'", ents[i]->name);
            goto out;
        }
    for (; metadata && metadata[2 * nmeta]; nmeta++)
        if (!metadata[2 * nmeta + 1]) {
            sg__io_error(ctx, fn, path, "metadata key '%s' has no value", metadata[2 * nmeta]);
            goto out;
        }
    kvs = sg_calloc((size_t)nmeta + 1, sizeof *kvs);
    if (!kvs)
        goto oom;
    for (int i = 0; i < nmeta; i++)
        kvs[i] = (st_kv){metadata[2 * i], metadata[2 * i + 1]};
    qsort(kvs, (size_t)nmeta, sizeof *kvs, cmp_kv);
    for (int i = 1; i < nmeta; i++)
        if (!strcmp(kvs[i - 1].key, kvs[i].key)) {
            sg__io_error(ctx, fn, path, "duplicate metadata key '%s'", kvs[i].key);
            goto out;
        }

    json = build_header(ents, n, kvs, nmeta);
    if (max_bytes)
        scratch = sg_malloc(max_bytes);
    dir = dir_of(path);
    size_t plen = strlen(path);
    tmp = sg_malloc(plen + sizeof ".tmp.XXXXXX");
    if (!json || (max_bytes && !scratch) || !dir || !tmp)
        goto oom;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");

    /* Header: length, JSON, spaces up to a multiple of 8 (as the reference writer). */
    size_t jlen = strlen(json), hlen = (jlen + 7) & ~(size_t)7;
    unsigned char len8[8];
    st_le64(len8, hlen);

    /* Write the temporary file in the same directory (so that rename is atomic). */
    fd = mkstemp(tmp);
    if (fd < 0) {
        sg__io_error(ctx, fn, path, "cannot create a temporary file: %s", strerror(errno));
        sg_free(tmp);
        tmp = NULL; /* nothing to remove */
        goto out;
    }
    struct stat st;
    mode_t mode = stat(path, &st) == 0 ? (st.st_mode & 07777) : 0644;
    if (fchmod(fd, mode) != 0)
        goto io_err;
    fp = fdopen(fd, "wb");
    if (!fp)
        goto io_err;
    fd = -1; /* fp owns it now */
    static const char spaces[8] = "        ";
    if (!write_all(fp, len8, 8) || !write_all(fp, json, jlen) ||
        !write_all(fp, spaces, hlen - jlen))
        goto io_err;
    for (int i = 0; i < n; i++) {
        const sg_tensor *t = ents[i]->tensor;
        size_t nb = (size_t)sg_numel(t) * sg_dtype_size(t->dtype);
        const void *src = sg_data(t);
        if (nb && (!sg_is_contiguous(t) || !host_is_le())) {
            if (sg_copy_to(t, scratch) != 0)
                goto out;
            to_from_le(scratch, nb, sg_dtype_size(t->dtype));
            src = scratch;
        }
        if (!write_all(fp, src, nb))
            goto io_err;
    }
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0)
        goto io_err;
    int cr = fclose(fp);
    fp = NULL;
    if (cr != 0)
        goto io_err;
    if (sg__io_fail_point == SG_IO_FAIL_BEFORE_RENAME) {
        sg__io_error(ctx, fn, path, "injected failure before rename");
        goto out;
    }
    if (rename(tmp, path) != 0)
        goto io_err;
    sg_free(tmp);
    tmp = NULL; /* it is `path` now */

    /* Make the rename itself durable. Some file systems cannot fsync a directory
     * (EINVAL): that is not a failure of the save. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL)) {
        int err = errno;
        if (dfd >= 0)
            close(dfd);
        sg__io_error(ctx, fn, path, "saved, but syncing the directory failed: %s", strerror(err));
        goto out;
    }
    close(dfd);
    rc = 0;
    goto out;

io_err:
    sg__io_error(ctx, fn, path, "write failed: %s", strerror(errno));
    goto out;
oom:
    sg__io_error(ctx, fn, path, "out of memory");
out:
    if (fp)
        fclose(fp);
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        sg_free(tmp);
    }
    sg_free(dir);
    sg_free(scratch);
    cJSON_free(json);
    sg_free(kvs);
    sg_free(ents);
    return rc;
}

int sg_safetensors_save(sg_ctx *ctx, const char *path, const sg_param_list *tensors,
                        const char *const *metadata) {
    return sg__st_save(ctx, "sg_safetensors_save", path, tensors, metadata);
}
