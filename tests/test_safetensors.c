/* Tests of io/safetensors.c: round trips (both dtypes, 0-d to 4-d, empty, strided views,
 * metadata), the exact bytes written, files written by Python (tests/fixtures/st, from
 * tests/fixtures/gen_safetensors.py), every corrupt-file rejection with its message, the
 * atomic save under injected failures, and out-of-memory at every allocation.
 *
 * With SG_ST_EXPORT_DIR=DIR set, the round-trip test also leaves export_f32/f64.safetensors
 * in DIR for `gen_safetensors.py --verify DIR` (Python reading what seqgrad wrote). */
#define _GNU_SOURCE /* mkdtemp */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"
#include "io_internal.h" /* sg__io_fail_point, the failure-injection hook */

#ifndef SG_SOURCE_DIR
#define SG_SOURCE_DIR "."
#endif
#define FIXTURE(name) SG_SOURCE_DIR "/tests/fixtures/st/" name ".safetensors"

#include "cksuite.h"
#include "ctxtest.h"

/* ---- shared with gen_safetensors.py -------------------------------------------------- */

/* Tensor number k, element i (row-major): computed in double, rounded once to the dtype. */
static double value(int k, int64_t i) { return (double)(i - 7) * 0.1 + 0.25 * k; }

static const struct {
    const char *name;
    int ndim;
    int64_t shape[4];
} SHAPES[] = {
    {"scalar", 0, {0}},   {"vec", 1, {5}},         {"mat", 2, {2, 3}},
    {"t3", 3, {2, 3, 4}}, {"t4", 4, {2, 1, 3, 2}}, {"empty", 2, {0, 3}},
};
#define NSHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

static const char *const META[] = {"format", "pt", "note", "h\xc3\xa9llo \"q\"\n\t\\",
                                   "empty",  "",   NULL};

/* An arena tensor of `shape` holding value(k, i). */
static sg_tensor *filled(sg_dtype dt, int ndim, const int64_t *shape, int k) {
    sg_tensor *t = sg_zeros(ctx, dt, ndim, shape);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < sg_numel(t); i++)
        ck_assert_int_eq(sg_set_flat(t, i, value(k, i)), 0);
    return t;
}

/* t has this dtype and shape and holds exactly value(k, .) rounded to its dtype. */
static void ck_values(const sg_tensor *t, sg_dtype dt, int ndim, const int64_t *shape, int k) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, dt);
    ck_assert_int_eq(t->ndim, ndim);
    for (int d = 0; d < ndim; d++)
        ck_assert_int_eq(t->shape[d], shape[d]);
    for (int64_t i = 0; i < sg_numel(t); i++) {
        double want = dt == SG_F32 ? (double)(float)value(k, i) : value(k, i);
        ck_assert_msg(sg_get_flat(t, i) == want, "%s[%lld] = %.17g, expected %.17g", t->name,
                      (long long)i, sg_get_flat(t, i), want);
    }
}

/* ---- small file helpers -------------------------------------------------------------- */

#include "oomtest.h"
#include "tmptest.h"

/* Names in tmpdir other than . and .., as a count; names containing `part` are counted in
 * *with (may be NULL). */
static int dir_entries(const char *part, int *with) {
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    if (with)
        *with = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        n++;
        if (with && strstr(e->d_name, part))
            (*with)++;
    }
    closedir(d);
    return n;
}

static unsigned char *read_bytes(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* A file in memory: header length, the JSON as given, then `datalen` zero bytes. */
static unsigned char *st_buf(const char *json, size_t datalen, size_t *len) {
    size_t h = strlen(json);
    unsigned char *b = calloc(1, 8 + h + datalen + 1);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, json, h);
    *len = 8 + h + datalen;
    return b;
}

/* Parsing json + datalen zero bytes must fail with exactly "sg_safetensors_parse: msg". */
static void ck_parse_fails(const char *json, size_t datalen, const char *msg) {
    size_t len;
    unsigned char *b = st_buf(json, datalen, &len);
    sg_st_file *f = sg_safetensors_parse(ctx, b, len);
    free(b);
    char want[1024];
    snprintf(want, sizeof want, "sg_safetensors_parse: %s", msg);
    ck_assert_msg(f == NULL, "parsed %s", json);
    ck_error(want);
}

static sg_st_file *ck_parse_ok(const char *json, size_t datalen) {
    size_t len;
    unsigned char *b = st_buf(json, datalen, &len);
    sg_st_file *f = sg_safetensors_parse(ctx, b, len);
    free(b);
    ck_assert_msg(f != NULL, "%s: %s", json, sg_ctx_error(ctx));
    return f;
}

/* A list over arena tensors (the list itself on the stack of the caller). */
typedef struct {
    sg_param_list list;
    sg_param_entry items[16];
} list16;

static void list_add(list16 *l, const char *name, sg_tensor *t) {
    ck_assert_int_lt(l->list.n, 16);
    l->list.items = l->items;
    l->list.cap = 16;
    sg_param_entry *e = &l->items[l->list.n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->tensor = t;
}

/* ---- round trips --------------------------------------------------------------------- */

static void roundtrip(sg_dtype dt) {
    make_tmpdir("sg_st");
    list16 l = {0};
    for (int k = 0; k < NSHAPES; k++)
        list_add(&l, SHAPES[k].name, filled(dt, SHAPES[k].ndim, SHAPES[k].shape, k));
    /* strided views are written contiguous: a transpose and a stride-0 broadcast */
    sg_tensor *m = filled(dt, 2, (int64_t[]){3, 4}, 9);
    list_add(&l, "tr", sg_transpose(ctx, m, 0, 1));
    sg_tensor *v = filled(dt, 1, (int64_t[]){4}, 10);
    list_add(&l, "bcast", sg_expand(ctx, v, SG_SHAPE(3, 4)));
    ck_assert(!sg_is_contiguous(l.items[l.list.n - 1].tensor));
    ck_assert(!sg_is_contiguous(l.items[l.list.n - 2].tensor));

    const char *path = tmp_path("rt.safetensors");
    ck_assert_int_eq(sg_safetensors_save(ctx, path, &l.list, META), 0);
    ck_no_error();
    const char *exp = getenv("SG_ST_EXPORT_DIR");
    if (exp && *exp) {
        char p[512];
        snprintf(p, sizeof p, "%s/export_%s.safetensors", exp, dt == SG_F32 ? "f32" : "f64");
        ck_assert_int_eq(sg_safetensors_save(ctx, p, &l.list, META), 0);
    }

    sg_st_file *f = sg_safetensors_load(ctx, path);
    ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
    /* sorted names, by index */
    static const char *const sorted[] = {"bcast", "empty", "mat", "scalar",
                                         "t3",    "t4",    "tr",  "vec"};
    ck_assert_int_eq(sg_st_count(f), 8);
    for (int i = 0; i < 8; i++) {
        ck_assert_str_eq(sg_st_name(f, i), sorted[i]);
        ck_assert_ptr_eq(sg_st_tensor(f, i), sg_st_get(f, sorted[i]));
        ck_assert_str_eq(sg_st_tensor(f, i)->name, sorted[i]);
    }
    for (int k = 0; k < NSHAPES; k++)
        ck_values(sg_st_get(f, SHAPES[k].name), dt, SHAPES[k].ndim, SHAPES[k].shape, k);
    /* tr[i][j] = m[j][i] = value(9, 4 j + i) */
    sg_tensor *tr = sg_st_get(f, "tr");
    ck_assert_int_eq(tr->shape[0], 4);
    ck_assert_int_eq(tr->shape[1], 3);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) {
            double want = value(9, 4 * j + i);
            want = dt == SG_F32 ? (double)(float)want : want;
            ck_assert(sg_get(tr, (int64_t[]){i, j}) == want);
        }
    sg_tensor *bc = sg_st_get(f, "bcast");
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            double want = dt == SG_F32 ? (double)(float)value(10, j) : value(10, j);
            ck_assert(sg_get(bc, (int64_t[]){i, j}) == want);
        }
    ck_assert(sg_is_contiguous(bc));
    /* loaded tensors are persistent and do not require grad */
    ck_assert(bc->flags & SG_FLAG_PERSISTENT);
    ck_assert(!(bc->flags & SG_FLAG_REQUIRES_GRAD));
    /* metadata, sorted by key */
    ck_assert_int_eq(sg_st_meta_count(f), 3);
    ck_assert_str_eq(sg_st_meta_key(f, 0), "empty");
    ck_assert_str_eq(sg_st_meta_key(f, 1), "format");
    ck_assert_str_eq(sg_st_meta_key(f, 2), "note");
    ck_assert_str_eq(sg_st_meta_value(f, 2), "h\xc3\xa9llo \"q\"\n\t\\");
    ck_assert_str_eq(sg_st_meta(f, "format"), "pt");
    ck_assert_str_eq(sg_st_meta(f, "empty"), "");
    ck_assert_ptr_null(sg_st_meta(f, "absent"));
    ck_no_error();
    sg_st_free(f);
    remove_tmpdir();
}

START_TEST(test_roundtrip_f32) { roundtrip(SG_F32); }
END_TEST

START_TEST(test_roundtrip_f64) { roundtrip(SG_F64); }
END_TEST

/* Integer tensors (indices, labels, lengths) as I64 and I32, exactly, strided views
 * included; and an I64 tensor written by Python (numpy int64) reads back. */
START_TEST(test_roundtrip_ints) {
    make_tmpdir("sg_st");
    list16 l = {0};
    const int64_t v64[6] = {INT64_MIN, -1, 0, 1, ((int64_t)1 << 53) + 1, INT64_MAX};
    const int32_t v32[3] = {INT32_MIN, 7, INT32_MAX};
    sg_tensor *a = sg_from_data(ctx, SG_I64, SG_SHAPE(2, 3), v64);
    list_add(&l, "ids", a);
    list_add(&l, "ids_t", sg_transpose(ctx, a, 0, 1));
    list_add(&l, "len", sg_from_data(ctx, SG_I32, SG_SHAPE(3), v32));
    const char *path = tmp_path("ints.safetensors");
    ck_assert_int_eq(sg_safetensors_save(ctx, path, &l.list, NULL), 0);
    size_t len;
    unsigned char *b = read_bytes(path, &len);
    ck_assert_ptr_nonnull(
        strstr((const char *)b + 8, "\"ids\":{\"dtype\":\"I64\",\"shape\":[2,3]"));
    ck_assert_ptr_nonnull(strstr((const char *)b + 8, "\"len\":{\"dtype\":\"I32\",\"shape\":[3]"));
    free(b);
    sg_st_file *f = sg_safetensors_load(ctx, path);
    ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
    sg_tensor *ids = sg_st_get(f, "ids"), *t = sg_st_get(f, "ids_t"), *n = sg_st_get(f, "len");
    ck_assert_int_eq(ids->dtype, SG_I64);
    ck_assert_int_eq(n->dtype, SG_I32);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(sg_get_flat_i64(ids, i), v64[i]);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            ck_assert_int_eq(sg_get_flat_i64(t, 2 * i + j), v64[3 * j + i]);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(sg_get_flat_i64(n, i), v32[i]);
    sg_st_free(f);
    f = sg_safetensors_load(ctx, FIXTURE("i64"));
    ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
    ids = sg_st_get(f, "ids");
    ck_assert_int_eq(ids->dtype, SG_I64);
    ck_assert_int_eq(ids->ndim, 1);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(sg_get_flat_i64(ids, i), i + 1);
    sg_st_free(f);
    ck_no_error();
    remove_tmpdir();
}
END_TEST

/* The reference layout, byte for byte: sorted names, metadata first, compact JSON padded
 * with spaces to a multiple of 8, data in name order. */
START_TEST(test_exact_bytes) {
    make_tmpdir("sg_st");
    list16 l = {0};
    list_add(&l, "b", sg_from_data(ctx, SG_F64, SG_SHAPE(1), (double[]){-2.0}));
    list_add(&l, "a", sg_from_data(ctx, SG_F32, SG_SHAPE(2), (float[]){1.0f, 2.0f}));
    const char *meta[] = {"k", "v", NULL};
    ck_assert_int_eq(sg_safetensors_save(ctx, tmp_path("x.safetensors"), &l.list, meta), 0);
    size_t len;
    unsigned char *b = read_bytes(tmp_path("x.safetensors"), &len);
    const char *json = "{\"__metadata__\":{\"k\":\"v\"},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[8,16]}}";
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8;
    ck_assert_uint_eq(jl, 133); /* so the padding is 3 spaces */
    ck_assert_uint_eq(len, 8 + hl + 16);
    ck_assert_uint_eq(b[0], hl);
    for (int i = 1; i < 8; i++)
        ck_assert_uint_eq(b[i], 0);
    ck_assert(!memcmp(b + 8, json, jl));
    for (size_t i = jl; i < hl; i++)
        ck_assert_uint_eq(b[8 + i], ' ');
    float a[2];
    double bb;
    memcpy(a, b + 8 + hl, 8);
    memcpy(&bb, b + 8 + hl + 8, 8);
    ck_assert(a[0] == 1.0f && a[1] == 2.0f && bb == -2.0);
    free(b);

    /* no tensors, no metadata: "{}" and 6 spaces */
    ck_assert_int_eq(sg_safetensors_save(ctx, tmp_path("e.safetensors"), NULL, NULL), 0);
    b = read_bytes(tmp_path("e.safetensors"), &len);
    ck_assert_uint_eq(len, 16);
    ck_assert(!memcmp(b, "\x08\0\0\0\0\0\0\0{}      ", 16));
    free(b);
    remove_tmpdir();
}
END_TEST

/* ---- files written by Python --------------------------------------------------------- */

START_TEST(test_python_shapes) {
    for (int d = 0; d < 2; d++) {
        sg_dtype dt = d ? SG_F64 : SG_F32;
        sg_st_file *f = sg_safetensors_load(ctx, d ? FIXTURE("f64_shapes") : FIXTURE("f32_shapes"));
        ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
        ck_assert_int_eq(sg_st_count(f), NSHAPES);
        ck_assert_int_eq(sg_st_meta_count(f), 0);
        for (int k = 0; k < NSHAPES; k++)
            ck_values(sg_st_get(f, SHAPES[k].name), dt, SHAPES[k].ndim, SHAPES[k].shape, k);
        /* persistent: they survive a reset */
        sg_ctx_reset(ctx);
        ck_assert(sg_check(ctx, sg_st_get(f, "mat"), "test"));
        ck_values(sg_st_get(f, "t4"), dt, 4, SHAPES[4].shape, 4);
        sg_st_free(f);
    }
    ck_no_error();
}
END_TEST

START_TEST(test_python_specials_meta) {
    sg_st_file *f = sg_safetensors_load(ctx, FIXTURE("specials_meta"));
    ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
    const float *s32 = sg_data(sg_st_get(f, "s32"));
    ck_assert(isnan(s32[0]));
    ck_assert(s32[1] == INFINITY && s32[2] == -INFINITY);
    ck_assert(s32[3] == 0.0f && signbit(s32[3]));
    ck_assert(s32[4] == 1e-45f && s32[4] > 0); /* the smallest subnormal */
    ck_assert(s32[5] == 3.4028234663852886e38f);
    sg_tensor *t64 = sg_st_get(f, "s64");
    ck_assert_int_eq(t64->ndim, 2);
    const double *s64 = sg_data(t64);
    ck_assert(isnan(s64[0]));
    ck_assert(s64[1] == INFINITY && s64[2] == -INFINITY);
    ck_assert(s64[3] == 0.0 && signbit(s64[3]));
    ck_assert(s64[4] == 5e-324);
    ck_assert(s64[5] == 1.7976931348623157e308);
    ck_assert_int_eq(sg_st_meta_count(f), 3);
    ck_assert_str_eq(sg_st_meta(f, "format"), "pt");
    ck_assert_str_eq(sg_st_meta(f, "note"), "h\xc3\xa9llo \"q\"\n\t\\");
    ck_assert_str_eq(sg_st_meta(f, "empty"), "");
    sg_st_free(f);
    ck_no_error();
}
END_TEST

/* Keys out of order, data in a third order, an indented unpadded header: all legal. */
START_TEST(test_python_unordered) {
    sg_st_file *f = sg_safetensors_load(ctx, FIXTURE("unordered"));
    ck_assert_msg(f != NULL, "%s", sg_ctx_error(ctx));
    ck_assert_int_eq(sg_st_count(f), 3);
    ck_assert_str_eq(sg_st_name(f, 0), "a");
    const float *a = sg_data(sg_st_get(f, "a"));
    ck_assert(a[0] == 1.0f && a[1] == 2.0f && a[2] == 3.0f);
    sg_tensor *b = sg_st_get(f, "b");
    ck_assert_int_eq(b->dtype, SG_F64);
    ck_assert(sg_get_flat(b, 0) == 1.5 && sg_get_flat(b, 1) == -2.5);
    sg_tensor *c = sg_st_get(f, "c");
    ck_assert_int_eq(c->ndim, 0);
    ck_assert(sg_get_flat(c, 0) == 7.0);
    sg_st_free(f);

    f = sg_safetensors_load(ctx, FIXTURE("no_tensors"));
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(sg_st_count(f), 0);
    ck_assert_int_eq(sg_st_meta_count(f), 0);
    sg_st_free(f);
    f = sg_safetensors_load(ctx, FIXTURE("only_meta"));
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(sg_st_count(f), 0);
    ck_assert_str_eq(sg_st_meta(f, "k"), "v");
    sg_st_free(f);
    ck_no_error();
}
END_TEST

START_TEST(test_python_refused) {
    ck_assert_ptr_null(sg_safetensors_load(ctx, FIXTURE("bf16")));
    ck_error("sg_safetensors_load: " FIXTURE("bf16") ": tensor 'emb': dtype BF16 not "
                                                     "supported (only F32, F64, I64 and I32)");
    /* data sorted by name: empty, mat, scalar, t3, t4, vec = 0 + 24 + 4 + 96 + 48 + 20
     * bytes, and the last 8 are cut */
    ck_assert_ptr_null(sg_safetensors_load(ctx, FIXTURE("truncated")));
    ck_error("sg_safetensors_load: " FIXTURE("truncated") ": tensor 'vec': data_offsets "
                                                          "[172, 192] beyond the 184-byte "
                                                          "data buffer");
}
END_TEST

/* ---- hostile files ------------------------------------------------------------------- */

START_TEST(test_corrupt_lengths) {
    ck_assert_ptr_null(sg_safetensors_parse(ctx, "abcde", 5));
    ck_error("sg_safetensors_parse: truncated: 5 bytes, a safetensors file has at least 8");
    ck_assert_ptr_null(sg_safetensors_parse(ctx, "", 0));
    ck_error("sg_safetensors_parse: truncated: 0 bytes, a safetensors file has at least 8");
    ck_assert_ptr_null(sg_safetensors_parse(ctx, NULL, 100));
    ck_error("sg_safetensors_parse: NULL buffer");
    ck_assert_ptr_null(sg_safetensors_parse(NULL, "x", 1));

    unsigned char b[18] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    ck_assert_ptr_null(sg_safetensors_parse(ctx, b, sizeof b));
    ck_error("sg_safetensors_parse: header length 100 exceeds the 10 bytes after it");
    const unsigned char absurd[16] = {0x01, 0xe1, 0xf5, 0x05}; /* 100000001 */
    ck_assert_ptr_null(sg_safetensors_parse(ctx, absurd, sizeof absurd));
    ck_error("sg_safetensors_parse: header length 100000001 is absurd (more than 100 MB)");
    unsigned char huge[16];
    memset(huge, 0xff, sizeof huge);
    ck_assert_ptr_null(sg_safetensors_parse(ctx, huge, sizeof huge));
    ck_error("sg_safetensors_parse: header length 18446744073709551615 is absurd (more than "
             "100 MB)");
    /* an empty header */
    unsigned char zero[8] = {0};
    ck_assert_ptr_null(sg_safetensors_parse(ctx, zero, sizeof zero));
    ck_error("sg_safetensors_parse: the header is not a JSON object (header byte 0)");
}
END_TEST

START_TEST(test_corrupt_json) {
    ck_parse_fails("[1]", 0, "the header is not a JSON object (header byte 0)");
    ck_parse_fails("  5", 0, "the header is not a JSON object (header byte 2)");
    ck_parse_fails("{\"a\": }", 0, "malformed header JSON (header byte 6)");
    ck_parse_fails("{\"a\":{\"dtype\":\"F32\"", 0, "malformed header JSON (header byte 18)");
    ck_parse_fails("{} x", 0, "unexpected bytes after the header JSON (byte 3)");
    ck_parse_fails("{}{}", 0, "unexpected bytes after the header JSON (byte 2)");
    ck_parse_fails("{\"a\\u0000b\":{}}", 0, "\\u0000 in a JSON string (header byte 3)");
    ck_parse_fails("{\"a\nb\":{}}", 0, "control character in a JSON string (header byte 3)");
    /* depth 4: the shape array holds an array */
    ck_parse_fails("{\"a\":{\"dtype\":\"F32\",\"shape\":[[1]],\"data_offsets\":[0,4]}}", 4,
                   "the header JSON is nested more than 3 levels deep (header byte 29)");
    /* a nesting bomb never reaches cJSON's recursion */
    size_t deep = 100000;
    char *bomb = malloc(2 * deep + 8);
    ck_assert_ptr_nonnull(bomb);
    strcpy(bomb, "{\"a\":");
    memset(bomb + 5, '[', deep);
    memset(bomb + 5 + deep, ']', deep);
    strcpy(bomb + 5 + 2 * deep, "}");
    ck_parse_fails(bomb, 0, "the header JSON is nested more than 3 levels deep (header byte 7)");
    free(bomb);
    /* brackets inside strings do not count, escaped quotes do not end strings */
    sg_st_file *f = ck_parse_ok("{\"__metadata__\":{\"[[[{{{\\\"\":\"]]]\"}}", 0);
    ck_assert_str_eq(sg_st_meta(f, "[[[{{{\""), "]]]");
    sg_st_free(f);
}
END_TEST

#define E(fields) "{\"a\":{" fields "}}"
#define F32_1 "\"dtype\":\"F32\",\"shape\":[1]"

START_TEST(test_corrupt_entries) {
    ck_parse_fails("{\"a\":5}", 0, "tensor 'a': entry is not an object");
    ck_parse_fails("{\"a\":[1]}", 0, "tensor 'a': entry is not an object");
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[1]"), 4,
                   "tensor 'a': missing field 'data_offsets'");
    ck_parse_fails(E("\"shape\":[1],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': missing field 'dtype'");
    ck_parse_fails(E("\"dtype\":\"F32\",\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': missing field 'shape'");
    ck_parse_fails(E(F32_1 ",\"data_offsets\":[0,4],\"x\":1"), 4,
                   "tensor 'a': unexpected field 'x'");
    ck_parse_fails(E(F32_1 ",\"dtype\":\"F64\",\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': duplicate field 'dtype'");
    ck_parse_fails(E("\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': dtype is not a string");
    ck_parse_fails(E("\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': unknown dtype 'F33'");
    ck_parse_fails(E("\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': unknown dtype 'f32'");
    ck_parse_fails(E("\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': dtype BF16 not supported (only F32, F64, I64 and I32)");
    ck_parse_fails(E("\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': dtype F16 not supported (only F32, F64, I64 and I32)");
}
END_TEST

START_TEST(test_corrupt_shapes) {
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': shape is not an array");
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[1,-1],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': shape dimension 1 is negative");
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': shape dimension 0 is not an integer");
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': shape dimension 0 is not a number");
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': shape dimension 0 is not a number");
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': shape dimension 0 is too large");
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[1e999],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': shape dimension 0 is too large");
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[9007199254740992],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': shape dimension 0 is too large");
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': shape has more than 6 dimensions");
    /* element counts past the library's limit (2^60 - 1), in bytes past int64 too */
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                     "\"data_offsets\":[0,4]"),
                   4,
                   "tensor 'a': shape (4294967296, 4294967296) overflows: the product of its "
                   "nonzero dimensions exceeds 2^60 - 1");
    ck_parse_fails(E("\"dtype\":\"F64\",\"shape\":[1073741824,1073741824,8],"
                     "\"data_offsets\":[0,4]"),
                   4,
                   "tensor 'a': shape (1073741824, 1073741824, 8) overflows: the product of "
                   "its nonzero dimensions exceeds 2^60 - 1");
    /* six dimensions is fine; so is a huge dimension next to a zero */
    sg_st_file *f = ck_parse_ok(E("\"dtype\":\"F32\",\"shape\":[1,2,1,1,2,1],"
                                  "\"data_offsets\":[0,16]"),
                                16);
    ck_assert_int_eq(sg_st_get(f, "a")->ndim, 6);
    sg_st_free(f);
    f = ck_parse_ok(E("\"dtype\":\"F32\",\"shape\":[0,1099511627776],\"data_offsets\":[0,0]"), 0);
    ck_assert_int_eq(sg_numel(sg_st_get(f, "a")), 0);
    ck_assert_int_eq(sg_st_get(f, "a")->shape[1], 1099511627776);
    sg_st_free(f);
    ck_no_error();
}
END_TEST

START_TEST(test_corrupt_offsets) {
    ck_parse_fails(E(F32_1 ",\"data_offsets\":[0]"), 4,
                   "tensor 'a': data_offsets is not an array of 2 integers");
    ck_parse_fails(E(F32_1 ",\"data_offsets\":[0,4,8]"), 8,
                   "tensor 'a': data_offsets is not an array of 2 integers");
    ck_parse_fails(E(F32_1 ",\"data_offsets\":\"0,4\""), 4,
                   "tensor 'a': data_offsets is not an array of 2 integers");
    ck_parse_fails(E(F32_1 ",\"data_offsets\":[-4,0]"), 4,
                   "tensor 'a': data_offsets entry is negative");
    ck_parse_fails(E(F32_1 ",\"data_offsets\":[0,4.5]"), 4,
                   "tensor 'a': data_offsets entry is not an integer");
    ck_parse_fails(E(F32_1 ",\"data_offsets\":[0,1e20]"), 4,
                   "tensor 'a': data_offsets entry is too large");
    ck_parse_fails(E(F32_1 ",\"data_offsets\":[4,0]"), 4,
                   "tensor 'a': data_offsets [4, 0] end before begin");
    ck_parse_fails(E(F32_1 ",\"data_offsets\":[0,8]"), 4,
                   "tensor 'a': data_offsets [0, 8] beyond the 4-byte data buffer");
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': data_offsets [0, 4] hold 4 bytes, shape (2,) of F32 needs 8");
    ck_parse_fails(E("\"dtype\":\"F64\",\"shape\":[2,2],\"data_offsets\":[0,16]"), 16,
                   "tensor 'a': data_offsets [0, 16] hold 16 bytes, shape (2, 2) of F64 needs "
                   "32");
    /* tiling of the data buffer */
    ck_parse_fails("{\"a\":{" F32_1 ",\"data_offsets\":[0,4]},"
                   "\"b\":{" F32_1 ",\"data_offsets\":[2,6]}}",
                   8, "tensors 'a' [0, 4] and 'b' [2, 6] overlap");
    ck_parse_fails("{\"b\":{" F32_1 ",\"data_offsets\":[0,4]},"
                   "\"a\":{" F32_1 ",\"data_offsets\":[0,4]}}",
                   4, "tensors 'a' [0, 4] and 'b' [0, 4] overlap");
    ck_parse_fails(E(F32_1 ",\"data_offsets\":[4,8]"), 8,
                   "gap in the data buffer: bytes [0, 4) belong to no tensor");
    ck_parse_fails("{\"a\":{" F32_1 ",\"data_offsets\":[0,4]},"
                   "\"b\":{" F32_1 ",\"data_offsets\":[8,12]}}",
                   12, "gap in the data buffer: bytes [4, 8) belong to no tensor");
    ck_parse_fails(E(F32_1 ",\"data_offsets\":[0,4]"), 8,
                   "the tensors cover 4 bytes of the 8-byte data buffer");
    ck_parse_fails("{}", 4, "the tensors cover 0 bytes of the 4-byte data buffer");
    /* empty tensors may sit anywhere inside, including on another tensor's boundary */
    sg_st_file *f = ck_parse_ok("{\"z\":{\"dtype\":\"F64\",\"shape\":[0],\"data_offsets\":[0,0]},"
                                "\"a\":{" F32_1 ",\"data_offsets\":[0,4]},"
                                "\"y\":{\"dtype\":\"F32\",\"shape\":[3,0],"
                                "\"data_offsets\":[4,4]}}",
                                4);
    ck_assert_int_eq(sg_st_count(f), 3);
    sg_st_free(f);
    ck_no_error();
}
END_TEST

START_TEST(test_corrupt_names_meta) {
    ck_parse_fails("{\"a\":{" F32_1 ",\"data_offsets\":[0,4]},"
                   "\"a\":{" F32_1 ",\"data_offsets\":[4,8]}}",
                   8, "duplicate tensor name 'a'");
    ck_parse_fails("{\"__metadata__\":[1]}", 0, "__metadata__ is not an object");
    ck_parse_fails("{\"__metadata__\":\"x\"}", 0, "__metadata__ is not an object");
    ck_parse_fails("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ value of 'k' is not a string");
    ck_parse_fails("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0,
                   "__metadata__ value of 'k' is not a string");
    ck_parse_fails("{\"__metadata__\":{\"k\":null}}", 0,
                   "__metadata__ value of 'k' is not a string");
    ck_parse_fails("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0,
                   "duplicate __metadata__ key 'k'");
    ck_parse_fails("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate __metadata__");
    /* escapes decode: "\u00e9" is a two-byte name */
    sg_st_file *f = ck_parse_ok("{\"\\u00e9\\n\":{" F32_1 ",\"data_offsets\":[0,4]}}", 4);
    ck_assert(sg_st_has(f, "\xc3\xa9\n"));
    sg_st_free(f);
}
END_TEST

/* Every one-byte truncation of a valid file is rejected cleanly (ASan watches reads). */
START_TEST(test_corrupt_every_truncation) {
    size_t len;
    unsigned char *full = read_bytes(FIXTURE("specials_meta"), &len);
    for (size_t n = 0; n < len; n++) {
        unsigned char *b = malloc(n ? n : 1); /* exact size: ASan flags any overread */
        memcpy(b, full, n);
        ck_assert_ptr_null(sg_safetensors_parse(ctx, b, n));
        ck_assert_ptr_nonnull(sg_ctx_error(ctx));
        sg_ctx_clear_error(ctx);
        free(b);
    }
    sg_st_file *f = sg_safetensors_parse(ctx, full, len);
    ck_assert_ptr_nonnull(f);
    sg_st_free(f);
    free(full);
}
END_TEST

/* ---- file-level errors --------------------------------------------------------------- */

START_TEST(test_load_errors) {
    ck_assert_ptr_null(sg_safetensors_load(ctx, "/nonexistent/x.safetensors"));
    ck_error("sg_safetensors_load: /nonexistent/x.safetensors: cannot open: No such file or "
             "directory");
    ck_assert_ptr_null(sg_safetensors_load(ctx, NULL));
    ck_error("sg_safetensors_load: NULL path");
    ck_assert_ptr_null(sg_safetensors_load(NULL, "x"));
    make_tmpdir("sg_st");
    char want[1024];
    ck_assert_ptr_null(sg_safetensors_load(ctx, tmpdir));
    snprintf(want, sizeof want, "sg_safetensors_load: %s: is a directory", tmpdir);
    ck_error(want);
    write_bytes(tmp_path("short"), "\x02\0\0", 3);
    ck_assert_ptr_null(sg_safetensors_load(ctx, tmp_path("short")));
    snprintf(want, sizeof want,
             "sg_safetensors_load: %s: truncated: 3 bytes, a safetensors file has at least 8",
             tmp_path("short"));
    ck_error(want);
    remove_tmpdir();
}
END_TEST

START_TEST(test_accessors) {
    sg_st_file *f = ck_parse_ok(E(F32_1 ",\"data_offsets\":[0,4]"), 4);
    ck_assert(sg_st_has(f, "a"));
    ck_assert(!sg_st_has(f, "b"));
    ck_assert(!sg_st_has(f, NULL));
    ck_assert(!sg_st_has(NULL, "a"));
    ck_no_error();
    ck_assert_ptr_null(sg_st_get(f, "b"));
    ck_error("sg_st_get: <memory>: no tensor 'b'");
    ck_assert_ptr_null(sg_st_get(f, NULL));
    ck_error("sg_st_get: <memory>: NULL name");
    ck_assert_ptr_null(sg_st_get(NULL, "a"));
    ck_no_error();
    /* a missing tensor propagates through ops with its reason recorded */
    ck_assert_ptr_null(sg_add(ctx, sg_st_get(f, "w"), sg_st_get(f, "a")));
    ck_error("sg_st_get: <memory>: no tensor 'w'");
    ck_assert_ptr_null(sg_st_name(f, 1));
    ck_assert_ptr_null(sg_st_name(f, -1));
    ck_assert_ptr_null(sg_st_tensor(f, 1));
    ck_assert_ptr_null(sg_st_meta(f, "x"));
    ck_assert_ptr_null(sg_st_meta(f, NULL));
    ck_assert_ptr_null(sg_st_meta_key(f, 0));
    ck_assert_ptr_null(sg_st_meta_value(f, 0));
    ck_assert_int_eq(sg_st_count(NULL), 0);
    ck_assert_int_eq(sg_st_meta_count(NULL), 0);
    ck_assert_ptr_null(sg_st_name(NULL, 0));
    ck_assert_ptr_null(sg_st_tensor(NULL, 0));
    ck_assert_ptr_null(sg_st_meta(NULL, "k"));
    ck_assert_ptr_null(sg_st_meta_key(NULL, 0));
    ck_assert_ptr_null(sg_st_meta_value(NULL, 0));
    sg_st_free(f);
    sg_st_free(NULL);
    ck_no_error();
}
END_TEST

/* ---- saving -------------------------------------------------------------------------- */

START_TEST(test_save_errors) {
    make_tmpdir("sg_st");
    const char *p = tmp_path("s.safetensors");
    char want[1024];
    list16 l = {0};
    list_add(&l, "a", sg_ones(ctx, SG_F32, SG_SHAPE(2)));
    list_add(&l, "a", sg_ones(ctx, SG_F32, SG_SHAPE(3)));
    ck_assert_int_eq(sg_safetensors_save(ctx, p, &l.list, NULL), -1);
    snprintf(want, sizeof want, "sg_safetensors_save: %s: duplicate tensor name 'a'", p);
    ck_error(want);

    snprintf(l.items[1].name, sizeof l.items[1].name, "__metadata__");
    ck_assert_int_eq(sg_safetensors_save(ctx, p, &l.list, NULL), -1);
    snprintf(want, sizeof want,
             "sg_safetensors_save: %s: '__metadata__' is reserved, not a tensor name", p);
    ck_error(want);

    snprintf(l.items[1].name, sizeof l.items[1].name, "b");
    l.items[1].tensor = NULL;
    ck_assert_int_eq(sg_safetensors_save(ctx, p, &l.list, NULL), -1);
    snprintf(want, sizeof want, "sg_safetensors_save: %s: tensor 'b' is NULL", p);
    ck_error(want);

    l.list.n = 1;
    const char *odd[] = {"k", "v", "lonely", NULL};
    ck_assert_int_eq(sg_safetensors_save(ctx, p, &l.list, odd), -1);
    snprintf(want, sizeof want, "sg_safetensors_save: %s: metadata key 'lonely' has no value", p);
    ck_error(want);
    const char *dup[] = {"k", "v", "j", "w", "k", "x", NULL};
    ck_assert_int_eq(sg_safetensors_save(ctx, p, &l.list, dup), -1);
    snprintf(want, sizeof want, "sg_safetensors_save: %s: duplicate metadata key 'k'", p);
    ck_error(want);

    /* a tensor that died at a reset */
    sg_ctx_reset(ctx);
    ck_assert_int_eq(sg_safetensors_save(ctx, p, &l.list, NULL), -1);
    snprintf(want, sizeof want,
             "sg_safetensors_save: %s: tensor 'a': tensor used after "
             "sg_ctx_reset",
             p);
    ck_error(want);

    ck_assert_int_eq(sg_safetensors_save(ctx, NULL, NULL, NULL), -1);
    ck_error("sg_safetensors_save: NULL path");
    ck_assert_int_eq(sg_safetensors_save(NULL, p, NULL, NULL), -1);
    ck_assert_int_eq(sg_safetensors_save(ctx, "/nonexistent/dir/x.safetensors", NULL, NULL), -1);
    ck_error("sg_safetensors_save: /nonexistent/dir/x.safetensors: cannot create a temporary "
             "file: No such file or directory");
    /* none of the failures left a file behind */
    ck_assert_int_eq(dir_entries(NULL, NULL), 0);
    remove_tmpdir();
}
END_TEST

/* Atomic save: a failure after the temporary file is complete (just before the rename),
 * or while writing it, leaves the old file byte-identical and no temporary behind. */
START_TEST(test_atomic_save) {
    make_tmpdir("sg_st");
    const char *p = tmp_path("m.safetensors");
    char path[512], want[1024];
    snprintf(path, sizeof path, "%s", p);
    list16 l = {0};
    list_add(&l, "w", filled(SG_F64, 2, (int64_t[]){2, 2}, 1));
    ck_assert_int_eq(sg_safetensors_save(ctx, path, &l.list, NULL), 0);
    size_t len0;
    unsigned char *old = read_bytes(path, &len0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644); /* a new file: 0644, not mkstemp's 0600 */

    list16 l2 = {0};
    list_add(&l2, "w", filled(SG_F64, 2, (int64_t[]){3, 3}, 2));
    list_add(&l2, "v", filled(SG_F32, 1, (int64_t[]){7}, 3));
    /* both ways of writing: O_TMPFILE, and the named temporary file of the fallback */
    for (int k = 0; k < 4; k++) {
        const int fp = k % 2 ? SG_IO_FAIL_WRITE : SG_IO_FAIL_BEFORE_RENAME;
        sg__io_fail_point = fp | (k >= 2 ? SG_IO_FAIL_NO_TMPFILE : 0);
        ck_assert_int_eq(sg_safetensors_save(ctx, path, &l2.list, NULL), -1);
        sg__io_fail_point = SG_IO_FAIL_NONE;
        if (fp == SG_IO_FAIL_BEFORE_RENAME)
            snprintf(want, sizeof want, "sg_safetensors_save: %s: injected failure before rename",
                     path);
        else
            snprintf(want, sizeof want, "sg_safetensors_save: %s: write failed: %s", path,
                     strerror(EIO));
        ck_error(want);
        size_t len1;
        unsigned char *now = read_bytes(path, &len1);
        ck_assert_uint_eq(len1, len0);
        ck_assert(!memcmp(now, old, len0));
        free(now);
        int tmps;
        ck_assert_int_eq(dir_entries(".tmp.", &tmps), 1);
        ck_assert_int_eq(tmps, 0);
        /* and it still loads, with the old values */
        sg_st_file *f = sg_safetensors_load(ctx, path);
        ck_values(sg_st_get(f, "w"), SG_F64, 2, (int64_t[]){2, 2}, 1);
        ck_assert(!sg_st_has(f, "v"));
        sg_st_free(f);
    }
    free(old);

    /* a successful save replaces the file, keeps its mode and leaves no temporary */
    ck_assert_int_eq(chmod(path, 0600), 0);
    ck_assert_int_eq(sg_safetensors_save(ctx, path, &l2.list, NULL), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    int tmps;
    ck_assert_int_eq(dir_entries(".tmp.", &tmps), 1);
    ck_assert_int_eq(tmps, 0);
    sg_st_file *f = sg_safetensors_load(ctx, path);
    ck_values(sg_st_get(f, "w"), SG_F64, 2, (int64_t[]){3, 3}, 2);
    ck_values(sg_st_get(f, "v"), SG_F32, 1, (int64_t[]){7}, 3);
    sg_st_free(f);
    ck_no_error();

    /* a relative path (temporary in the current directory) */
    char cwd[512];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(tmpdir), 0);
    ck_assert_int_eq(sg_safetensors_save(ctx, "rel.safetensors", &l.list, NULL), 0);
    f = sg_safetensors_load(ctx, "rel.safetensors");
    ck_values(sg_st_get(f, "w"), SG_F64, 2, (int64_t[]){2, 2}, 1);
    sg_st_free(f);
    ck_assert_int_eq(chdir(cwd), 0);
    ck_no_error();
    remove_tmpdir();
}
END_TEST

/* ---- hostile inputs and faults (issue 20) --------------------------------------------- */

/* A shape whose element count, or whose strides, overflow int64 is refused at parse,
 * before anything multiplies its dimensions, also when a zero makes it empty. */
START_TEST(test_shape_overflow) {
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[0,1099511627776,1099511627776],"
                     "\"data_offsets\":[0,0]"),
                   0,
                   "tensor 'a': shape (0, 1099511627776, 1099511627776) overflows: the product "
                   "of its nonzero dimensions exceeds 2^60 - 1");
    ck_parse_fails(E("\"dtype\":\"F64\",\"shape\":[1099511627776,0,1099511627776],"
                     "\"data_offsets\":[0,0]"),
                   0,
                   "tensor 'a': shape (1099511627776, 0, 1099511627776) overflows: the product "
                   "of its nonzero dimensions exceeds 2^60 - 1");
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
                     "\"data_offsets\":[0,0]"),
                   0,
                   "tensor 'a': shape (1099511627776, 1099511627776) overflows: the product of "
                   "its nonzero dimensions exceeds 2^60 - 1");
    /* the largest F32 span that fits: 2^61 elements of 4 bytes = 2^63 bytes does not */
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[0,2305843009213693952],\"data_offsets\":[0,0]"),
                   0, "tensor 'a': shape dimension 1 is too large");
    /* the library's limit: nonzero sizes multiplying to at most 2^60 - 1 (SG_NUMEL_MAX) */
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[0,1048576,1048576,1048576],"
                     "\"data_offsets\":[0,0]"),
                   0,
                   "tensor 'a': shape (0, 1048576, 1048576, 1048576) overflows: the product of "
                   "its nonzero dimensions exceeds 2^60 - 1");
    sg_st_file *f = ck_parse_ok(E("\"dtype\":\"F32\",\"shape\":[0,1048576,1048576,524288],"
                                  "\"data_offsets\":[0,0]"),
                                0);
    ck_assert_int_eq(sg_numel(sg_st_get(f, "a")), 0);
    sg_st_free(f);
    ck_no_error();
}
END_TEST

/* Numbers as the format writes them: "016", "16.0", "1.6e1" and "-0" are refused (cJSON
 * reads them as integers, the reference implementation does not), after the per-field
 * checks, so that a fraction or a negative size keeps its own message. */
START_TEST(test_number_syntax) {
    struct {
        const char *shape;
        int bytes;
    } bad[] = {{"[016]", 64}, {"[16.0]", 64}, {"[1.6e1]", 64}, {"[-0]", 0}, {"[1E1]", 40}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[128];
        snprintf(json, sizeof json,
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[0,%d]}}", bad[i].shape,
                 bad[i].bytes);
        ck_parse_fails(json, (size_t)bad[i].bytes,
                       "a number in the header is not written as a plain integer (header byte "
                       "29)");
    }
    ck_parse_fails(E("\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': shape dimension 0 is not an integer");
    sg_st_free(ck_parse_ok(E("\"dtype\":\"F32\",\"shape\":[16, 0, 10],\"data_offsets\":[0,0]"), 0));
    ck_no_error();
}
END_TEST

/* The header must be UTF-8 (RFC 8259): invalid bytes anywhere are refused, with their
 * offset; valid multi-byte characters, also right after a backslash, are not. */
START_TEST(test_header_utf8) {
    ck_parse_fails("{\"a\xff\":{}}", 0, "the header is not valid UTF-8 (header byte 3)");
    ck_parse_fails("{\"\xc0\xaf\":{}}", 0, "the header is not valid UTF-8 (header byte 2)");
    ck_parse_fails("{\"\xed\xa0\x80\":{}}", 0, "the header is not valid UTF-8 (header byte 2)");
    ck_parse_fails("{\"\xf4\x90\x80\x80\":{}}", 0, "the header is not valid UTF-8 (header byte 2)");
    ck_parse_fails("{\"\xc3\":{}}", 0, "the header is not valid UTF-8 (header byte 2)");
    ck_parse_fails("{\"__metadata__\":{\"k\":\"v\x80\"}}", 0,
                   "the header is not valid UTF-8 (header byte 23)");
    ck_parse_fails("{} \xe9", 0, "the header is not valid UTF-8 (header byte 3)");
    ck_parse_fails("{\"\\\xff\":{}}", 0, "the header is not valid UTF-8 (header byte 3)");
    sg_st_file *f = ck_parse_ok("{\"__metadata__\":{\"\xf0\x9f\x98\x80\":\"\xe2\x82\xac\"}}", 0);
    ck_assert_str_eq(sg_st_meta(f, "\xf0\x9f\x98\x80"), "\xe2\x82\xac");
    sg_st_free(f);
    /* and the writer refuses to produce what the reader refuses */
    make_tmpdir("sg_st");
    char want[1024];
    const char *p = tmp_path("u.safetensors");
    list16 l = {0};
    list_add(&l, "a\xff", sg_ones(ctx, SG_F32, SG_SHAPE(1)));
    ck_assert_int_eq(sg_safetensors_save(ctx, p, &l.list, NULL), -1);
    snprintf(want, sizeof want, "sg_safetensors_save: %s: tensor name 'a\\xff' is not valid UTF-8",
             p);
    ck_error(want);
    snprintf(l.items[0].name, sizeof l.items[0].name, "a");
    const char *bad_key[] = {"k\xc0", "v", NULL}, *bad_val[] = {"k", "\xed\xbf\xbf", NULL};
    ck_assert_int_eq(sg_safetensors_save(ctx, p, &l.list, bad_key), -1);
    snprintf(want, sizeof want, "sg_safetensors_save: %s: metadata key 'k\\xc0' is not valid UTF-8",
             p);
    ck_error(want);
    ck_assert_int_eq(sg_safetensors_save(ctx, p, &l.list, bad_val), -1);
    snprintf(want, sizeof want, "sg_safetensors_save: %s: metadata value of 'k' is not valid UTF-8",
             p);
    ck_error(want);
    ck_assert_int_eq(dir_entries(NULL, NULL), 0);
    remove_tmpdir();
}
END_TEST

/* Names in messages: quoted (an empty one reads ''), control characters, quotes,
 * backslashes and C1 controls escaped, long ones cut after 96 characters. */
START_TEST(test_names_in_messages) {
    ck_parse_fails("{\"\":5}", 0, "tensor '': entry is not an object");
    ck_parse_fails("{\"a\\u001b[2J\\n\\t\\r\\u007f\":5}", 0,
                   "tensor 'a\\x1b[2J\\n\\t\\r\\x7f': entry is not an object");
    ck_parse_fails("{\"it's \\\\ \\u009b\\u00e9\":5}", 0,
                   "tensor 'it\\'s \\\\ \\u009b\xc3\xa9': entry is not an object");
    ck_parse_fails(E(F32_1 ",\"data_offsets\":[0,4],\"\\u001b]0;x\\u0007\":1"), 4,
                   "tensor 'a': unexpected field '\\x1b]0;x\\x07'");
    ck_parse_fails(E("\"dtype\":\"\\u001b[31m\",\"shape\":[1],\"data_offsets\":[0,4]"), 4,
                   "tensor 'a': unknown dtype '\\x1b[31m'");
    ck_parse_fails("{\"__metadata__\":{\"\\n\":1}}", 0,
                   "__metadata__ value of '\\n' is not a string");
    /* 100,000 characters: the first 96, then "..." */
    size_t n = 100000;
    char *json = malloc(n + 16);
    ck_assert_ptr_nonnull(json);
    json[0] = '{', json[1] = '"';
    memset(json + 2, 'x', n);
    strcpy(json + 2 + n, "\":5}");
    char want[256] = "tensor '";
    memset(want + 8, 'x', 96);
    strcpy(want + 8 + 96, "'...: entry is not an object");
    ck_parse_fails(json, 0, want);
    /* 96 exactly: whole */
    strcpy(json + 2 + 96, "\":5}");
    strcpy(want + 8 + 96, "': entry is not an object");
    ck_parse_fails(json, 0, want);
    free(json);
    /* multi-byte characters count as one each */
    ck_parse_fails("{\"\xc3\xa9\xc3\xa9\":5}", 0,
                   "tensor '\xc3\xa9\xc3\xa9': entry is not an object");
    /* sg_st_get too */
    sg_st_file *f = ck_parse_ok(E(F32_1 ",\"data_offsets\":[0,4]"), 4);
    ck_assert_ptr_null(sg_st_get(f, "\x1b[1m"));
    ck_error("sg_st_get: <memory>: no tensor '\\x1b[1m'");
    ck_assert_ptr_null(sg_st_get(f, ""));
    ck_error("sg_st_get: <memory>: no tensor ''");
    sg_st_free(f);
}
END_TEST

/* Devices, FIFOs and directories are refused before a byte is read: /dev/zero would never
 * end, a FIFO may never end (and opening it waits for a writer). */
START_TEST(test_special_files) {
    char want[1024];
    ck_assert_ptr_null(sg_safetensors_load(ctx, "/dev/zero"));
    ck_error("sg_safetensors_load: /dev/zero: not a regular file");
    ck_assert_ptr_null(sg_safetensors_load(ctx, "/dev/null"));
    ck_error("sg_safetensors_load: /dev/null: not a regular file");
    ck_assert_ptr_null(sg_safetensors_load(ctx, ""));
    ck_error("sg_safetensors_load: empty path");

    /* a FIFO with a writer that would send a valid file */
    make_tmpdir("sg_st");
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s", tmp_path("fifo"));
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        int fd = open(fifo, O_WRONLY);
        if (fd >= 0 && write(fd, "\x02\0\0\0\0\0\0\0{}", 10) == 10)
            close(fd);
        _exit(0);
    }
    sg_st_file *f = sg_safetensors_load(ctx, fifo);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    bool loaded = f != NULL;
    sg_st_free(f);
    ck_assert_msg(!loaded, "a FIFO was read");
    snprintf(want, sizeof want, "sg_safetensors_load: %s: not a regular file", fifo);
    ck_error(want);

    /* saving over a FIFO or a directory is refused too (rename would replace the FIFO) */
    list16 l = {0};
    list_add(&l, "w", sg_ones(ctx, SG_F32, SG_SHAPE(2)));
    ck_assert_int_eq(sg_safetensors_save(ctx, fifo, &l.list, NULL), -1);
    snprintf(want, sizeof want, "sg_safetensors_save: %s: not a regular file", fifo);
    ck_error(want);
    struct stat st;
    ck_assert_int_eq(stat(fifo, &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    ck_assert_int_eq(sg_safetensors_save(ctx, tmpdir, &l.list, NULL), -1);
    snprintf(want, sizeof want, "sg_safetensors_save: %s: is a directory", tmpdir);
    ck_error(want);
    ck_assert_int_eq(sg_safetensors_save(ctx, "", &l.list, NULL), -1);
    ck_error("sg_safetensors_save: empty path");
    ck_assert_int_eq(dir_entries(NULL, NULL), 1); /* the FIFO only */
    remove_tmpdir();
}
END_TEST

/* Count the "<name>.tmp.*" files in tmpdir. */
static int tmps_of(const char *name) {
    char part[256];
    snprintf(part, sizeof part, "%s.tmp.", name);
    int with;
    dir_entries(part, &with);
    return with;
}

/* Run one save of `path` in a child that the failure point `fp` ends with _exit(99), as a
 * kill would. */
static void killed_save(const char *path, const sg_param_list *l, int fp) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        sg__io_fail_point = fp;
        sg_safetensors_save(ctx, path, l, NULL);
        _exit(1); /* not reached */
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 99);
}

/* A save killed half-way leaves at most a "<path>.tmp.XXXXXX" that the next save of the
 * same path removes; with O_TMPFILE a kill while writing leaves nothing at all. Temporary
 * files of other paths, names that are not ours and files a live save holds stay. Both
 * ways of writing (O_TMPFILE, and the named fallback) are run. */
START_TEST(test_tmp_leftovers) {
    make_tmpdir("sg_st");
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("ck.st"));
    list16 l = {0};
    list_add(&l, "w", filled(SG_F64, 2, (int64_t[]){64, 64}, 1));
    list16 l2 = {0};
    list_add(&l2, "w", filled(SG_F64, 2, (int64_t[]){64, 64}, 2));
    for (int fb = 0; fb < 2; fb++) {
        const int mode = fb ? SG_IO_FAIL_NO_TMPFILE : SG_IO_FAIL_NONE;
        sg__io_fail_point = mode;
        ck_assert_int_eq(sg_safetensors_save(ctx, path, &l.list, NULL), 0);
        sg__io_fail_point = SG_IO_FAIL_NONE;
        size_t len;
        unsigned char *full = read_bytes(path, &len);

        /* a leftover as a killed save leaves it: full size, mode 0600, not locked */
        char stale[600], other[600], notours[600], held[600];
        snprintf(stale, sizeof stale, "%s.tmp.AbC123", path);
        snprintf(other, sizeof other, "%s/other.st.tmp.XyZ789", tmpdir);
        snprintf(notours, sizeof notours, "%s.tmp.notmine", path);
        snprintf(held, sizeof held, "%s.tmp.Lck456", path);
        write_bytes(stale, full, len);
        ck_assert_int_eq(chmod(stale, 0600), 0);
        write_bytes(other, full, len);
        write_bytes(notours, full, len);
        write_bytes(held, full, len);
        int hfd = open(held, O_RDONLY);
        ck_assert_int_ge(hfd, 0);
        ck_assert_int_eq(flock(hfd, LOCK_EX), 0); /* as a save in progress holds it */
        ck_assert_int_eq(tmps_of("ck.st"), 3);

        sg__io_fail_point = mode;
        ck_assert_int_eq(sg_safetensors_save(ctx, path, &l2.list, NULL), 0);
        sg__io_fail_point = SG_IO_FAIL_NONE;
        ck_assert_int_eq(access(stale, F_OK), -1);
        ck_assert_int_eq(access(other, F_OK), 0);
        ck_assert_int_eq(access(notours, F_OK), 0);
        ck_assert_int_eq(access(held, F_OK), 0);
        ck_assert_int_eq(tmps_of("ck.st"), 2);
        close(hfd);
        ck_assert_int_eq(unlink(other), 0);
        ck_assert_int_eq(unlink(notours), 0);
        ck_assert_int_eq(unlink(held), 0);
        free(full);

        /* a save killed just before the rename: its temporary file stays (named), the
         * checkpoint is the old one, and the next save removes the leftover */
        killed_save(path, &l.list, SG_IO_FAIL_EXIT_BEFORE_RENAME | mode);
        ck_assert_int_eq(tmps_of("ck.st"), 1);
        sg_st_file *f = sg_safetensors_load(ctx, path);
        ck_values(sg_st_get(f, "w"), SG_F64, 2, (int64_t[]){64, 64}, 2);
        sg_st_free(f);
        sg__io_fail_point = mode;
        ck_assert_int_eq(sg_safetensors_save(ctx, path, &l.list, NULL), 0);
        sg__io_fail_point = SG_IO_FAIL_NONE;
        ck_assert_int_eq(tmps_of("ck.st"), 0);
        f = sg_safetensors_load(ctx, path);
        ck_values(sg_st_get(f, "w"), SG_F64, 2, (int64_t[]){64, 64}, 1);
        sg_st_free(f);

        /* a save killed while writing the data: nothing to see with O_TMPFILE; a partial
         * named file with the fallback, which the next save removes */
        killed_save(path, &l2.list, SG_IO_FAIL_EXIT_WRITE | mode);
        const int partial = fb ? 1 : 0;
        ck_assert_int_eq(tmps_of("ck.st"), partial);
        sg__io_fail_point = mode;
        ck_assert_int_eq(sg_safetensors_save(ctx, path, &l2.list, NULL), 0);
        sg__io_fail_point = SG_IO_FAIL_NONE;
        ck_assert_int_eq(tmps_of("ck.st"), 0);
        f = sg_safetensors_load(ctx, path);
        ck_values(sg_st_get(f, "w"), SG_F64, 2, (int64_t[]){64, 64}, 2);
        sg_st_free(f);
        ck_assert_int_eq(dir_entries(NULL, NULL), 1);
    }
    ck_no_error();
    remove_tmpdir();
}
END_TEST

/* ---- out of memory at every allocation ----------------------------------------------- */

START_TEST(test_oom) {
    size_t len;
    unsigned char *buf = read_bytes(FIXTURE("specials_meta"), &len);
    make_tmpdir("sg_st");
    list16 l = {0};
    list_add(&l, "w", sg_transpose(ctx, filled(SG_F64, 2, (int64_t[]){2, 3}, 1), 0, 1));
    list_add(&l, "v", filled(SG_F32, 1, (int64_t[]){7}, 3));
    const char *meta[] = {"k", "v", NULL};
    /* parse, load and save, failing allocation k = 0, 1, ... until one succeeds */
    for (int what = 0; what < 3; what++) {
        int k;
        for (k = 0; k < 1000; k++) {
            oom_arm(k);
            int ok;
            if (what == 2) {
                ok = sg_safetensors_save(ctx, tmp_path("o.safetensors"), &l.list, meta) == 0;
            } else {
                sg_st_file *f = what == 0 ? sg_safetensors_parse(ctx, buf, len)
                                          : sg_safetensors_load(ctx, FIXTURE("specials_meta"));
                ok = f != NULL;
                sg_st_free(f);
            }
            oom_disarm();
            if (ok)
                break;
            ck_assert_msg(strstr(sg_ctx_error(ctx), "out of memory") != NULL, "%s",
                          sg_ctx_error(ctx));
            sg_ctx_clear_error(ctx);
            int tmps;
            dir_entries(".tmp.", &tmps);
            ck_assert_int_eq(tmps, 0);
        }
        ck_assert_int_gt(k, 3); /* the allocations were really exercised */
        ck_assert_int_lt(k, 1000);
    }
    ck_no_error();
    free(buf);
    remove_tmpdir();
}
END_TEST

int main(void) {
    const ck_tcase tcases[] = {
        {"roundtrip",
         0,
         {{test_roundtrip_f32, 1},
          {test_roundtrip_f64, 1},
          {test_roundtrip_ints, 1},
          {test_exact_bytes, 1}}},
        {"python",
         0,
         {{test_python_shapes, 1},
          {test_python_specials_meta, 1},
          {test_python_unordered, 1},
          {test_python_refused, 1}}},
        {"corrupt",
         0,
         {{test_corrupt_lengths, 1},
          {test_corrupt_json, 1},
          {test_corrupt_entries, 1},
          {test_corrupt_shapes, 1},
          {test_corrupt_offsets, 1},
          {test_corrupt_names_meta, 1},
          {test_corrupt_every_truncation, 1}}},
        {"files",
         0,
         {{test_load_errors, 1},
          {test_accessors, 1},
          {test_save_errors, 1},
          {test_atomic_save, 1}}},
        {"oom", 0, {{test_oom, 1}}},
        {"hostile",
         0,
         {{test_shape_overflow, 1},
          {test_header_utf8, 1},
          {test_number_syntax, 1},
          {test_names_in_messages, 1},
          {test_special_files, 1},
          {test_tmp_leftovers, 1}}},
    };
    return CK_RUN("safetensors", tcases, setup, teardown);
}
