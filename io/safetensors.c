/* safetensors reading and writing.
 *
 * Layout: [u64 LE header length N][N bytes of JSON, space padded][data buffer]. The reader
 * is written for hostile input (it is fuzzed by fuzz/fuzz_safetensors.c): every length is
 * checked against what is really there before it is used, the JSON is bounded in depth
 * before cJSON sees it, and the data buffer must be exactly tiled by the tensors.
 */
#define _GNU_SOURCE /* mkostemp, O_TMPFILE, linkat, flock, fsync, fchmod */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "io_internal.h"

int sg__io_fail_point = SG_IO_FAIL_NONE;
/* Is the failure point `x` set (whether or not with SG_IO_FAIL_NO_TMPFILE)? */
#define FAIL_AT(x) ((sg__io_fail_point & ~SG_IO_FAIL_NO_TMPFILE) == (x))

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

/* ---- errors and names in messages ------------------------------------------------------ */

bool sg__io_path_ok(sg_ctx *ctx, const char *fn, const char *path) {
    if (!path)
        sg_error(ctx, "%s: NULL path", fn);
    else if (!*path)
        sg_error(ctx, "%s: empty path", fn);
    return path && *path;
}

void sg__io_error(sg_ctx *ctx, const char *fn, const char *label, const char *fmt, ...) {
    if (!ctx || sg_ctx_error(ctx))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (label)
        sg_error(ctx, "%s: %s: %s", fn, label, msg);
    else
        sg_error(ctx, "%s: %s", fn, msg);
}

void sg__io_rewrap(sg_ctx *ctx, bool clean, const char *fn, const char *label, const char *what) {
    const char *e = ctx ? sg_ctx_error(ctx) : NULL;
    if (clean && e) {
        char inner[1024];
        snprintf(inner, sizeof inner, "%s", e);
        sg_ctx_clear_error(ctx);
        sg__io_error(ctx, fn, label, "%s: %s", what, inner);
    } else {
        sg__io_error(ctx, fn, label, "%s", what);
    }
}

/* Length of the valid UTF-8 sequence at p (n > 0 bytes available) and its code point in
 * *cp, or 0 when it is not one. Strict, as RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF. */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp) {
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

bool sg__io_utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = utf8_seq(p + i, n - i, &cp);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

const char *sg__io_name(char *buf, const char *name) {
    if (!name) {
        snprintf(buf, SG_IO_QN_SIZE, "(null)");
        return buf;
    }
    const unsigned char *p = (const unsigned char *)name;
    size_t n = strlen(name), i = 0, o = 0;
    buf[o++] = '\'';
    for (int chars = 0; i < n && chars < SG_IO_NAME_CHARS; chars++) {
        uint32_t cp;
        size_t l = utf8_seq(p + i, n - i, &cp);
        char esc[8] = "";
        if (!l) {
            snprintf(esc, sizeof esc, "\\x%02x", p[i]);
            l = 1;
        } else if (cp == '\\' || cp == '\'') {
            snprintf(esc, sizeof esc, "\\%c", (char)cp);
        } else if (cp == '\n' || cp == '\t' || cp == '\r') {
            snprintf(esc, sizeof esc, "\\%c", cp == '\n' ? 'n' : cp == '\t' ? 't' : 'r');
        } else if (cp < 0x20 || cp == 0x7F) {
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned)cp);
        } else if (cp >= 0x80 && cp <= 0x9F) { /* C1 controls: CSI is 0x9b */
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
        }
        if (esc[0]) {
            size_t el = strlen(esc);
            memcpy(buf + o, esc, el);
            o += el;
        } else {
            memcpy(buf + o, p + i, l);
            o += l;
        }
        i += l;
    }
    buf[o++] = '\'';
    if (i < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = 0;
    return buf;
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

/* seqgrad's dtypes by their safetensors names, indexed by sg_dtype. */
static const char *const st_dtype_names[SG_DTYPE_COUNT] = {"F32", "F64", "I64", "I32"};
static const char *st_dtype_str(sg_dtype dt) { return st_dtype_names[dt]; }

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

/* ---- CRC-32 ---------------------------------------------------------------------------- */

/* The reflected IEEE polynomial 0xEDB88320, one byte at a time (zlib.crc32 in Python). */
static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu, 0xe963a535u,
    0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u, 0x09b64c2bu, 0x7eb17cbdu,
    0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u, 0xf3b97148u, 0x84be41deu, 0x1adad47du,
    0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u, 0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu,
    0x14015c4fu, 0x63066cd9u, 0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u,
    0xa2677172u, 0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u, 0x26d930acu,
    0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u, 0xcfba9599u, 0xb8bda50fu,
    0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u, 0x2f6f7c87u, 0x58684c11u, 0xc1611dabu,
    0xb6662d3du, 0x76dc4190u, 0x01db7106u, 0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu,
    0x9fbfe4a5u, 0xe8b8d433u, 0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu,
    0x086d3d2du, 0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u, 0x8bbeb8eau,
    0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u, 0x4db26158u, 0x3ab551ceu,
    0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u, 0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au,
    0x346ed9fcu, 0xad678846u, 0xda60b8d0u, 0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u,
    0x5005713cu, 0x270241aau, 0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u,
    0xce61e49fu, 0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au, 0xead54739u,
    0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u, 0x0d6d6a3eu, 0x7a6a5aa8u,
    0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u, 0xf00f9344u, 0x8708a3d2u, 0x1e01f268u,
    0x6906c2feu, 0xf762575du, 0x806567cbu, 0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u,
    0x10da7a5au, 0x67dd4accu, 0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u,
    0xa1d1937eu, 0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u, 0x316e8eefu,
    0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u, 0xcc0c7795u, 0xbb0b4703u,
    0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u, 0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u,
    0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du, 0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au,
    0x9c0906a9u, 0xeb0e363fu, 0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu,
    0x0cb61b38u, 0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u, 0x88085ae6u,
    0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u, 0x616bffd3u, 0x166ccf45u,
    0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u, 0xa7672661u, 0xd06016f7u, 0x4969474du,
    0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu, 0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u,
    0x47b2cf7fu, 0x30b5ffe9u, 0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u,
    0xcdd70693u, 0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

int sg__io_tensor_crc32(sg_ctx *ctx, const char *fn, const char *label, const char *name,
                        const sg_tensor *t, uint32_t *crc) {
    const size_t es = sg_dtype_size(t->dtype);
    size_t nb;
    if (__builtin_mul_overflow((size_t)sg_numel(t), es, &nb)) {
        sg__io_error(ctx, fn, label, "tensor %s: its size in bytes overflows", SG_IO_QN(name));
        return -1;
    }
    if (sg_is_contiguous(t) && host_is_le()) {
        *crc = crc32_update(0, sg_data(t), nb);
        return 0;
    }
    unsigned char *tmp = sg_malloc(nb ? nb : 1);
    if (!tmp) {
        sg__io_error(ctx, fn, label, "out of memory for a copy of tensor %s (%zu bytes)",
                     SG_IO_QN(name), nb);
        return -1;
    }
    bool clean = !sg_ctx_error(ctx);
    if (nb && sg_copy_to(t, tmp) != 0) {
        sg_free(tmp);
        sg__io_rewrap(ctx, clean, fn, label, "cannot read a tensor");
        return -1;
    }
    to_from_le(tmp, nb, es);
    *crc = crc32_update(0, tmp, nb);
    sg_free(tmp);
    return 0;
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
        return sg_error(f->ctx, "sg_st_get: %s: no tensor %s", f->label, SG_IO_QN(name));
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

/* Is the number token at h[0..) (outside strings) what the format writes: 0 or a digit 1-9
 * followed by digits? cJSON reads "016", "16.0", "1.6e1" and "-0" as integers, which the
 * reference implementation refuses. Its length in *len. */
static bool plain_uint(const unsigned char *h, size_t n, size_t *len) {
    size_t k = 0;
    while (k < n && (h[k] == '-' || h[k] == '+' || h[k] == '.' || h[k] == 'e' || h[k] == 'E' ||
                     (h[k] >= '0' && h[k] <= '9')))
        k++;
    *len = k;
    for (size_t j = 0; j < k; j++)
        if (h[j] < '0' || h[j] > '9')
            return false;
    return k == 1 || h[0] != '0';
}

/* One pass over the raw header before cJSON parses it: it must start with '{', be valid
 * UTF-8 (as JSON text must be; cJSON does not check), nest at most ST_MAX_DEPTH deep (so no
 * recursion bomb reaches cJSON), and its strings must be strict JSON: no raw control
 * characters and no \u0000, which would silently truncate a name in C. Returns NULL, or
 * the problem with its byte offset in *at. The first number that is not a plain
 * non-negative integer goes to *bad_num (else n): reported only if nothing else is wrong,
 * so that a negative or fractional size keeps its own message. */
static const char *prescan(const unsigned char *h, size_t n, size_t *at, size_t *bad_num) {
    size_t i = 0;
    int depth = 0;
    bool in_str = false;
    *bad_num = n;
    while (i < n && is_ws(h[i]))
        i++;
    *at = i;
    if (i == n || h[i] != '{')
        return "the header is not a JSON object";
    for (; i < n; i++) {
        unsigned char c = h[i];
        *at = i;
        if (c >= 0x80) { /* anywhere: in a string, or invalid JSON that cJSON refuses */
            uint32_t cp;
            size_t l = utf8_seq(h + i, n - i, &cp);
            if (!l)
                return "the header is not valid UTF-8";
            i += l - 1;
            continue;
        }
        if (in_str) {
            if (c == '\\') {
                if (i + 5 < n && h[i + 1] == 'u' && !memcmp(h + i + 2, "0000", 4))
                    return "\\u0000 in a JSON string";
                /* skip the escaped character (an unterminated string or a bad escape:
                 * cJSON's job), unless it starts a multi-byte character to check */
                if (i + 1 < n && h[i + 1] < 0x80)
                    i++;
            } else if (c == '"') {
                in_str = false;
            } else if (c < 0x20) {
                return "control character in a JSON string";
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t len;
            if (!plain_uint(h + i, n - i, &len) && *bad_num == n)
                *bad_num = i;
            i += len - 1;
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
    const char *name = SG_IO_QN(item->string); /* for messages */
    e->name = item->string;
    if (!cJSON_IsObject(item)) {
        sg__io_error(ctx, fn, label, "tensor %s: entry is not an object", name);
        return false;
    }
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *f = item->child; f; f = f->next) {
        const cJSON **slot = !strcmp(f->string, "dtype")          ? &dtype
                             : !strcmp(f->string, "shape")        ? &shape
                             : !strcmp(f->string, "data_offsets") ? &offs
                                                                  : NULL;
        if (!slot) {
            sg__io_error(ctx, fn, label, "tensor %s: unexpected field %s", name,
                         SG_IO_QN(f->string));
            return false;
        }
        if (*slot) { /* cJSON keeps both copies of a repeated key */
            sg__io_error(ctx, fn, label, "tensor %s: duplicate field %s", name,
                         SG_IO_QN(f->string));
            return false;
        }
        *slot = f;
    }
    const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offs ? "data_offsets" : NULL;
    if (missing) {
        sg__io_error(ctx, fn, label, "tensor %s: missing field '%s'", name, missing);
        return false;
    }

    /* dtype */
    if (!cJSON_IsString(dtype)) {
        sg__io_error(ctx, fn, label, "tensor %s: dtype is not a string", name);
        return false;
    }
    const char *ds = dtype->valuestring;
    int dt = -1;
    for (int k = 0; k < SG_DTYPE_COUNT && dt < 0; k++)
        if (!strcmp(ds, st_dtype_names[k]))
            dt = k;
    if (dt >= 0) {
        e->dtype = (sg_dtype)dt;
    } else {
        for (size_t k = 0; k < sizeof st_known_dtypes / sizeof *st_known_dtypes; k++)
            if (!strcmp(ds, st_known_dtypes[k])) {
                sg__io_error(ctx, fn, label,
                             "tensor %s: dtype %s not supported (only F32, F64, I64 and I32)", name,
                             ds);
                return false;
            }
        sg__io_error(ctx, fn, label, "tensor %s: unknown dtype %s", name, SG_IO_QN(ds));
        return false;
    }

    /* shape: at most SG_MAX_DIMS exact non-negative integers. */
    if (!cJSON_IsArray(shape)) {
        sg__io_error(ctx, fn, label, "tensor %s: shape is not an array", name);
        return false;
    }
    int nd = 0;
    for (const cJSON *d = shape->child; d; d = d->next, nd++) {
        if (nd == SG_MAX_DIMS) {
            sg__io_error(ctx, fn, label, "tensor %s: shape has more than %d dimensions", name,
                         SG_MAX_DIMS);
            return false;
        }
        uint64_t v;
        const char *why = get_uint(d, &v);
        if (why) {
            sg__io_error(ctx, fn, label, "tensor %s: shape dimension %d %s", name, nd, why);
            return false;
        }
        e->shape[nd] = (int64_t)v; /* < 2^53 */
    }
    e->ndim = nd;
    /* The library's bound on any shape (SG_NUMEL_MAX, tensor.h): the product of the nonzero
     * dimensions, so that the size in bytes and every contiguous stride fit in int64, also
     * when a zero dimension makes the tensor empty. Checked here, before anything
     * multiplies them. */
    int64_t span = 1;
    bool over = false;
    for (int d = 0; d < nd; d++)
        if (e->shape[d])
            over |= __builtin_mul_overflow(span, e->shape[d], &span) || span > SG_NUMEL_MAX;
    if (over) {
        char sb[192];
        sg__io_error(ctx, fn, label,
                     "tensor %s: shape %s overflows: the product of its nonzero dimensions "
                     "exceeds 2^60 - 1",
                     name, sg_shape_str(nd, e->shape, sb, sizeof sb));
        return false;
    }
    int64_t numel = 1; /* cannot overflow now, nor can its size in bytes */
    for (int d = 0; d < nd; d++)
        numel *= e->shape[d];
    const int64_t nbytes = numel * (int64_t)sg_dtype_size(e->dtype);

    /* data_offsets: [begin, end] inside the data buffer, holding exactly the tensor. */
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2) {
        sg__io_error(ctx, fn, label, "tensor %s: data_offsets is not an array of 2 integers", name);
        return false;
    }
    const char *why = get_uint(offs->child, &e->begin);
    if (!why)
        why = get_uint(offs->child->next, &e->end);
    if (why) {
        sg__io_error(ctx, fn, label, "tensor %s: data_offsets entry %s", name, why);
        return false;
    }
    if (e->end < e->begin) {
        sg__io_error(ctx, fn, label, "tensor %s: data_offsets [%llu, %llu] end before begin", name,
                     (unsigned long long)e->begin, (unsigned long long)e->end);
        return false;
    }
    if (e->end > datalen) {
        sg__io_error(ctx, fn, label,
                     "tensor %s: data_offsets [%llu, %llu] beyond the %llu-byte data buffer", name,
                     (unsigned long long)e->begin, (unsigned long long)e->end,
                     (unsigned long long)datalen);
        return false;
    }
    if (e->end - e->begin != (uint64_t)nbytes) {
        char sb[192];
        sg__io_error(ctx, fn, label,
                     "tensor %s: data_offsets [%llu, %llu] hold %llu bytes, shape %s of %s "
                     "needs %lld",
                     name, (unsigned long long)e->begin, (unsigned long long)e->end,
                     (unsigned long long)(e->end - e->begin),
                     sg_shape_str(e->ndim, e->shape, sb, sizeof sb), ds, (long long)nbytes);
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
    size_t bad_num;
    const char *why = prescan(hdr, (size_t)hlen, &at, &bad_num);
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
                sg__io_error(ctx, fn, label, "__metadata__ value of %s is not a string",
                             SG_IO_QN(it->string));
                goto done;
            }
            kvs[k].key = it->string;
            kvs[k].val = it->valuestring;
        }
        qsort(kvs, (size_t)nmeta, sizeof *kvs, cmp_kv);
        for (int i = 1; i < nmeta; i++)
            if (!strcmp(kvs[i - 1].key, kvs[i].key)) {
                sg__io_error(ctx, fn, label, "duplicate __metadata__ key %s", SG_IO_QN(kvs[i].key));
                goto done;
            }
    }

    /* Names must be unique: sort and compare neighbours (cJSON keeps duplicates). */
    qsort(ents, (size_t)n, sizeof *ents, cmp_entry_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(ents[i - 1].name, ents[i].name)) {
            sg__io_error(ctx, fn, label, "duplicate tensor name %s", SG_IO_QN(ents[i].name));
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
            sg__io_error(ctx, fn, label, "tensors %s [%llu, %llu] and %s [%llu, %llu] overlap",
                         SG_IO_QN(p->name), (unsigned long long)p->begin,
                         (unsigned long long)p->end, SG_IO_QN(e->name),
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
    if (bad_num < (size_t)hlen) {
        sg__io_error(ctx, fn, label,
                     "a number in the header is not written as a plain integer (header byte %zu)",
                     bad_num);
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
        if (!f->names[i]) {
            f->n++; /* so that sg_st_free frees this one's parts too */
            sg__io_error(ctx, fn, label, "out of memory");
            goto done;
        }
        /* sg_persistent_new's own error would not name the file: rewrap it */
        bool clean = !sg_ctx_error(ctx);
        f->tensors[i] = sg_persistent_new(ctx, e->dtype, e->ndim, e->shape);
        if (!f->tensors[i]) {
            f->n++;
            char what[SG_IO_QN_SIZE + 32];
            snprintf(what, sizeof what, "cannot allocate tensor %s", SG_IO_QN(e->name));
            sg__io_rewrap(ctx, clean, fn, label, what);
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

/* Read a whole regular file into a new buffer (sg_free it), at most the size fstat gives
 * (bytes appended meanwhile are not read: the parser then sees a consistent prefix or
 * reports a truncation). Anything else is refused before a byte is read: a directory, and
 * devices, FIFOs and sockets, which have no size to trust and may never end (/dev/zero).
 * The file is looked at with stat before it is opened (opening a device can have effects),
 * opened without blocking (a FIFO without a writer), and checked again with fstat. */
unsigned char *sg__io_read_file(sg_ctx *ctx, const char *fn, const char *path, size_t *len) {
    struct stat st;
    int fd = -1;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        sg__io_error(ctx, fn, path, S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
        return NULL;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        sg__io_error(ctx, fn, path, "cannot open: %s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        sg__io_error(ctx, fn, path, "cannot stat: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        sg__io_error(ctx, fn, path, S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
        close(fd);
        return NULL;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size >= (uint64_t)SIZE_MAX) {
        sg__io_error(ctx, fn, path, "file size %lld does not fit in memory", (long long)st.st_size);
        close(fd);
        return NULL;
    }
    const size_t cap = (size_t)st.st_size;
    unsigned char *buf = sg_malloc(cap ? cap : 1);
    if (!buf) {
        sg__io_error(ctx, fn, path, "out of memory reading the file (%zu bytes)", cap);
        close(fd);
        return NULL;
    }
    size_t n = 0;
    while (n < cap) {
        size_t want = cap - n < ((size_t)1 << 30) ? cap - n : (size_t)1 << 30;
        ssize_t r = read(fd, buf + n, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;
            close(fd);
            sg_free(buf);
            sg__io_error(ctx, fn, path, "read error: %s", strerror(err));
            return NULL;
        }
        if (r == 0)
            break; /* it shrank: the parser reports what is missing */
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
}

sg_st_file *sg__st_load(sg_ctx *ctx, const char *fn, const char *path) {
    if (!ctx)
        return NULL;
    if (!sg__io_path_ok(ctx, fn, path))
        return NULL;
    size_t len = 0;
    unsigned char *buf = sg__io_read_file(ctx, fn, path, &len);
    if (!buf)
        return NULL;
    sg_st_file *f = st_parse(ctx, fn, path, buf, len);
    sg_free(buf);
    return f;
}

sg_st_file *sg__st_open(sg_ctx *ctx, const char *fn, const char *path, const void *buf,
                        size_t len) {
    if (!buf)
        return sg__st_load(ctx, fn, path);
    return ctx ? st_parse(ctx, fn, path, buf, len) : NULL;
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
        uint64_t nbytes; /* the caller checked every size and their sum */
        if (__builtin_mul_overflow((uint64_t)sg_numel(t), sg_dtype_size(t->dtype), &nbytes)) {
            ok = false;
            break;
        }
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
    if (FAIL_AT(SG_IO_FAIL_WRITE)) {
        errno = EIO;
        return false;
    }
    return n == 0 || fwrite(p, 1, n, fp) == n;
}

/* What a save writes, prepared by sg__st_save: the header, then the tensors' data. */
typedef struct {
    unsigned char len8[8];
    const char *json;
    size_t jlen, hlen;
    const sg_param_entry *const *ents; /* sorted by name */
    int n;
    unsigned char *scratch; /* for a view or a big-endian host: the largest such tensor */
    const void *raw;        /* sg__io_save_atomic: these bytes instead of a header and tensors */
    size_t rawlen;
} st_payload;

/* Write the payload to fd (a new empty file; it stays open) through a stream on a
 * duplicate of it, flush and fsync. 0; -1 with errno on an I/O error; -2 when a tensor
 * could not be read (sg_copy_to recorded why). */
static int write_payload(int fd, const st_payload *w) {
    int dfd = dup(fd);
    FILE *fp = dfd >= 0 ? fdopen(dfd, "wb") : NULL;
    if (!fp) {
        int err = errno;
        if (dfd >= 0)
            close(dfd);
        errno = err;
        return -1;
    }
    static const char spaces[8] = "        ";
    int rc = 0;
    if (w->raw ? !write_all(fp, w->raw, w->rawlen)
               : !write_all(fp, w->len8, 8) || !write_all(fp, w->json, w->jlen) ||
                     !write_all(fp, spaces, w->hlen - w->jlen))
        rc = -1;
    if (rc == 0 && FAIL_AT(SG_IO_FAIL_EXIT_WRITE)) {
        fflush(fp);
        _exit(99); /* as if killed while writing the data */
    }
    for (int i = 0; rc == 0 && i < w->n; i++) {
        const sg_tensor *t = w->ents[i]->tensor;
        size_t nb = (size_t)sg_numel(t) * sg_dtype_size(t->dtype); /* checked by the caller */
        const void *src = sg_data(t);
        if (nb && (!sg_is_contiguous(t) || !host_is_le())) {
            if (sg_copy_to(t, w->scratch) != 0) {
                rc = -2;
                break;
            }
            to_from_le(w->scratch, nb, sg_dtype_size(t->dtype));
            src = w->scratch;
        }
        if (!write_all(fp, src, nb))
            rc = -1;
    }
    if (rc == 0 && (fflush(fp) != 0 || fsync(fileno(fp)) != 0))
        rc = -1;
    int err = errno;
    if (fclose(fp) != 0 && rc == 0) {
        rc = -1;
        err = errno;
    }
    errno = err;
    return rc;
}

/* The temporary file's contents: the target's mode, then the payload. As write_payload;
 * -1 with errno also when fchmod fails. */
static int fill_tmp(int fd, mode_t mode, const st_payload *w) {
    if (fchmod(fd, mode) != 0)
        return -1;
    return write_payload(fd, w);
}

/* ---- temporary files ------------------------------------------------------------------
 * A save writes "<path>.tmp.XXXXXX" and renames it over `path`. Preferably the bytes go to
 * an unnamed file (O_TMPFILE) that gets that name (linkat) only once complete and synced,
 * just before the rename, so that a save killed while writing leaves nothing behind. Where
 * O_TMPFILE is unavailable (some file systems) the temporary file is named from the start.
 * Either way a save holds an exclusive flock on its temporary file until the rename, and
 * every save first removes the "<path>.tmp.XXXXXX" files of the same `path` that no live
 * save holds: those a killed save left behind. */

#define TMP_TAG ".tmp."
#define TMP_RAND 6 /* mkstemp's XXXXXX */

static bool is_alnum(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Is `name` "<base>.tmp.XXXXXX" (six letters or digits, as mkstemp and tmp_rand make)? */
static bool is_tmp_name(const char *name, const char *base) {
    size_t bl = strlen(base), tl = strlen(TMP_TAG);
    if (strncmp(name, base, bl) || strncmp(name + bl, TMP_TAG, tl) ||
        strlen(name) != bl + tl + TMP_RAND)
        return false;
    for (size_t i = bl + tl; name[i]; i++)
        if (!is_alnum(name[i]))
            return false;
    return true;
}

/* Remove the temporary files that killed saves of "<dir>/<base>" left behind: the regular
 * files named "<base>.tmp.XXXXXX" that nobody holds a lock on (a live save locks its file
 * before it can be seen under that name, or, with the fallback, right after creating it
 * and checks it was not removed in between). Best effort: anything unexpected is kept. */
static void remove_stale_tmps(const char *dir, const char *base) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    int dfd = dirfd(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_tmp_name(e->d_name, base))
            continue;
        int fd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat a, b;
        if (fstat(fd, &a) == 0 && S_ISREG(a.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
            fstatat(dfd, e->d_name, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino)
            (void)unlinkat(dfd, e->d_name, 0);
        close(fd); /* and the lock with it */
    }
    closedir(d);
}

/* Six random letters and digits (mkstemp's alphabet) for a temporary name. Not for
 * secrecy: linkat refuses a name that exists, and the caller tries another. */
static void tmp_rand(char *out) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 40 ^
                 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED) * UINT64_C(0x9E3779B97F4A7C15);
    x ^= x >> 30; /* splitmix64's finaliser */
    x *= UINT64_C(0xBF58476D1CE4E5B9);
    x ^= x >> 27;
    x *= UINT64_C(0x94D049BB133111EB);
    x ^= x >> 31;
    for (int i = 0; i < TMP_RAND; i++, x /= 62)
        out[i] = al[x % 62];
}

/* Give the unnamed file `fd` the name "<path>.tmp.XXXXXX" (in tmp, whose first plen
 * bytes are the path). 0, or -1 with errno. */
static int link_tmp(int fd, char *tmp, size_t plen) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    memcpy(tmp + plen, TMP_TAG, strlen(TMP_TAG));
    char *r = tmp + plen + strlen(TMP_TAG);
    r[TMP_RAND] = 0;
    for (int tries = 0; tries < 100; tries++) {
        tmp_rand(r);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        if (errno == EEXIST)
            continue;
        /* without /proc: AT_EMPTY_PATH (needs CAP_DAC_READ_SEARCH) */
        if (linkat(fd, "", AT_FDCWD, tmp, AT_EMPTY_PATH) == 0)
            return 0;
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

/* Does `path` still name the file open as fd? */
static bool still_named(int fd, const char *path) {
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* Save the payload atomically to path (see sg_safetensors_save in io.h): the checks of the
 * target, the temporary file, the rename and the directory's sync. 0, or -1 with an error
 * "<fn>: <path>: <problem>". */
static int save_payload(sg_ctx *ctx, const char *fn, const char *path, const st_payload *payload) {
    int rc = -1, fd = -1;
    char *tmp = NULL, *dir = NULL;
    bool named = false; /* tmp names a file of ours, to remove on failure */
    const st_payload pl = *payload;
    /* The target: a directory (rename would fail) or a device, FIFO or socket (rename
     * would replace it) is refused. A new file gets 0644; an existing one keeps its mode. */
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (exists && !S_ISREG(st.st_mode)) {
        sg__io_error(ctx, fn, path, S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
        goto out;
    }
    const mode_t mode = exists ? (st.st_mode & 07777) : 0644;

    dir = dir_of(path);
    size_t plen = strlen(path);
    tmp = sg_malloc(plen + strlen(TMP_TAG) + TMP_RAND + 1);
    if (!dir || !tmp) {
        sg__io_error(ctx, fn, path, "out of memory");
        goto out;
    }
    memcpy(tmp, path, plen); /* + ".tmp.XXXXXX" when it gets a name */

    const char *slash = strrchr(path, '/');
    remove_stale_tmps(dir, slash ? slash + 1 : path);

    /* The temporary file, in the same directory (so that rename is atomic): unnamed until
     * complete if the file system can, else named from the start. */
    if (!(sg__io_fail_point & SG_IO_FAIL_NO_TMPFILE))
        fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) {
        (void)flock(fd, LOCK_EX | LOCK_NB); /* new and unnamed: nobody else has it */
        int w = fill_tmp(fd, mode, &pl);
        if (w == -2)
            goto out;
        if (w != 0)
            goto io_err;
        if (link_tmp(fd, tmp, plen) == 0) {
            named = true;
        } else { /* cannot name it (no /proc, ...): write a named one instead */
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        for (int tries = 0;; tries++) {
            memcpy(tmp + plen, TMP_TAG "XXXXXX", strlen(TMP_TAG) + TMP_RAND + 1);
            fd = mkostemp(tmp, O_CLOEXEC);
            if (fd < 0) {
                sg__io_error(ctx, fn, path, "cannot create a temporary file: %s", strerror(errno));
                goto out;
            }
            named = true;
            /* Locked, it is safe from other saves' cleanup; one may have removed it just
             * before: then it is gone, and another name is needed. */
            if (flock(fd, LOCK_EX | LOCK_NB) != 0 || still_named(fd, tmp) || tries == 10)
                break;
            close(fd);
            fd = -1;
            named = false;
        }
        int w = fill_tmp(fd, mode, &pl);
        if (w == -2)
            goto out;
        if (w != 0)
            goto io_err;
    }
    if (FAIL_AT(SG_IO_FAIL_BEFORE_RENAME)) {
        sg__io_error(ctx, fn, path, "injected failure before rename");
        goto out;
    }
    if (FAIL_AT(SG_IO_FAIL_EXIT_BEFORE_RENAME))
        _exit(99); /* as if killed here: the temporary file stays */
    if (rename(tmp, path) != 0)
        goto io_err;
    named = false; /* it is `path` now */
    close(fd);     /* releases the lock */
    fd = -1;

    /* Make the rename itself durable. Some file systems cannot fsync a directory
     * (EINVAL): that is not a failure of the save. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
out:
    if (named)
        unlink(tmp);
    if (fd >= 0)
        close(fd);
    sg_free(tmp);
    sg_free(dir);
    return rc;
}

int sg__io_save_atomic(sg_ctx *ctx, const char *fn, const char *path, const void *bytes, size_t n) {
    if (!ctx)
        return -1;
    if (!sg__io_path_ok(ctx, fn, path))
        return -1;
    const st_payload pl = {.raw = bytes ? bytes : "", .rawlen = n};
    return save_payload(ctx, fn, path, &pl);
}

int sg__st_save(sg_ctx *ctx, const char *fn, const char *path, const sg_param_list *tensors,
                const char *const *metadata, const char *crc_key) {
    if (!ctx)
        return -1;
    if (!sg__io_path_ok(ctx, fn, path))
        return -1;
    int n = tensors ? tensors->n : 0, nmeta = 0, rc = -1;
    const sg_param_entry **ents = NULL;
    st_kv *kvs = NULL;
    char *json = NULL, *crcs = NULL;
    st_payload pl = {0};

    /* Validate the tensors and metadata. */
    ents = sg_calloc((size_t)n + 1, sizeof *ents);
    if (!ents)
        goto oom;
    size_t max_bytes = 0, total = 0;
    for (int i = 0; i < n; i++) {
        const sg_param_entry *e = &tensors->items[i];
        const char *qn = SG_IO_QN(e->name);
        char where[1024];
        snprintf(where, sizeof where, "%s: %s: tensor %s", fn, path, qn);
        if (!e->tensor) {
            sg__io_error(ctx, fn, path, "tensor %s is NULL", qn);
            goto out;
        }
        if (!sg_check(ctx, e->tensor, where))
            goto out;
        if (!strcmp(e->name, "__metadata__")) {
            sg__io_error(ctx, fn, path, "'__metadata__' is reserved, not a tensor name");
            goto out;
        }
        if (!sg__io_utf8_valid(e->name)) {
            sg__io_error(ctx, fn, path, "tensor name %s is not valid UTF-8", qn);
            goto out;
        }
        size_t nb;
        if (__builtin_mul_overflow((size_t)sg_numel(e->tensor), sg_dtype_size(e->tensor->dtype),
                                   &nb) ||
            __builtin_add_overflow(total, nb, &total) || total > (uint64_t)INT64_MAX) {
            sg__io_error(ctx, fn, path, "tensor %s: the data size overflows", qn);
            goto out;
        }
        if ((!sg_is_contiguous(e->tensor) || !host_is_le()) && nb > max_bytes)
            max_bytes = nb;
        ents[i] = e;
    }
    qsort(ents, (size_t)n, sizeof *ents, cmp_entry_ptr_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(ents[i - 1]->name, ents[i]->name)) {
            sg__io_error(ctx, fn, path, "duplicate tensor name %s", SG_IO_QN(ents[i]->name));
            goto out;
        }
    for (; metadata && metadata[2 * nmeta]; nmeta++) {
        const char *k = metadata[2 * nmeta], *v = metadata[2 * nmeta + 1];
        if (!v) {
            sg__io_error(ctx, fn, path, "metadata key %s has no value", SG_IO_QN(k));
            goto out;
        }
        if (!sg__io_utf8_valid(k) || !sg__io_utf8_valid(v)) {
            sg__io_error(ctx, fn, path, "metadata %s %s is not valid UTF-8",
                         sg__io_utf8_valid(k) ? "value of" : "key", SG_IO_QN(k));
            goto out;
        }
    }
    kvs = sg_calloc((size_t)nmeta + 2, sizeof *kvs);
    if (!kvs)
        goto oom;
    for (int i = 0; i < nmeta; i++)
        kvs[i] = (st_kv){metadata[2 * i], metadata[2 * i + 1]};
    if (crc_key) { /* one CRC-32 per tensor, in the file's (name) order */
        crcs = sg_calloc((size_t)n + 1, 9);
        if (!crcs)
            goto oom;
        size_t at = 0;
        crcs[0] = 0;
        for (int i = 0; i < n; i++) {
            uint32_t c;
            if (sg__io_tensor_crc32(ctx, fn, path, ents[i]->name, ents[i]->tensor, &c) != 0)
                goto out;
            at += (size_t)snprintf(crcs + at, 10, i ? " %08x" : "%08x", (unsigned)c);
        }
        kvs[nmeta++] = (st_kv){crc_key, crcs};
    }
    qsort(kvs, (size_t)nmeta, sizeof *kvs, cmp_kv);
    for (int i = 1; i < nmeta; i++)
        if (!strcmp(kvs[i - 1].key, kvs[i].key)) {
            sg__io_error(ctx, fn, path, "duplicate metadata key %s", SG_IO_QN(kvs[i].key));
            goto out;
        }

    json = build_header(ents, n, kvs, nmeta);
    if (max_bytes)
        pl.scratch = sg_malloc(max_bytes);
    if (!json || (max_bytes && !pl.scratch))
        goto oom;

    /* Header: length, JSON, spaces up to a multiple of 8 (as the reference writer). */
    pl.json = json;
    pl.jlen = strlen(json);
    pl.hlen = (pl.jlen + 7) & ~(size_t)7;
    st_le64(pl.len8, pl.hlen);
    pl.ents = ents;
    pl.n = n;

    rc = save_payload(ctx, fn, path, &pl);
    goto out;

oom:
    sg__io_error(ctx, fn, path, "out of memory");
out:
    sg_free(crcs);
    sg_free(pl.scratch);
    cJSON_free(json);
    sg_free(kvs);
    sg_free(ents);
    return rc;
}

int sg_safetensors_save(sg_ctx *ctx, const char *path, const sg_param_list *tensors,
                        const char *const *metadata) {
    return sg__st_save(ctx, "sg_safetensors_save", path, tensors, metadata, NULL);
}
