/* libFuzzer target for the safetensors reader (io/safetensors.c). Build and run with
 * fuzz/run.sh. Every input is parsed on a fresh context; a file that parses is walked
 * completely (every value read, so ASan sees any out-of-bounds tensor) and checked for the
 * reader's promises; a file that does not parse must have recorded an error.
 *
 * SG_FUZZ_STRICT=1 in the environment adds checks the reader does not pass yet: an error
 * message holds no control characters and an accepted header is valid UTF-8 (issue 20
 * item 13), and every number in an accepted header is a plain JSON integer (digits, no
 * leading zero, fraction, exponent or sign), the only form the reference writes. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

/* A broken promise is a crash, so that libFuzzer reports it with the input. */
#define PROMISE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int strict;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *s = getenv("SG_FUZZ_STRICT");
    strict = s && *s && strcmp(s, "0");
    return 0;
}

__attribute__((noreturn)) static void strict_failed(const char *what, size_t at) {
    fprintf(stderr, "\nfuzz_safetensors: (strict) %s at byte %zu\n", what, at);
    abort();
}

/* Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF). */
static void check_utf8(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n)
            strict_failed("accepted header is not UTF-8", 8 + i);
        uint32_t cp = len == 1 ? c : (uint32_t)(c & (0x7f >> len));
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                strict_failed("accepted header is not UTF-8", 8 + i);
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            strict_failed("accepted header is not UTF-8", 8 + i);
        i += len;
    }
}

/* Outside strings, every number token is 0 or [1-9][0-9]*. */
static void check_numbers(const uint8_t *s, size_t n) {
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i;
            while (j < n && (s[j] == '-' || s[j] == '+' || s[j] == '.' || s[j] == 'e' ||
                             s[j] == 'E' || (s[j] >= '0' && s[j] <= '9')))
                j++;
            bool plain = s[i] != '-' && !(s[i] == '0' && j - i > 1);
            for (size_t k = i; plain && k < j; k++)
                plain = s[k] >= '0' && s[k] <= '9';
            if (!plain)
                strict_failed("accepted header holds a number that is not a plain integer", 8 + i);
            i = j - 1;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sg_ctx *ctx = sg_ctx_new(4096);
    if (!ctx)
        return 0;
    sg_st_file *f = sg_safetensors_parse(ctx, data, size);
    if (!f) {
        PROMISE(sg_ctx_error(ctx) != NULL);
        if (strict)
            for (const char *c = sg_ctx_error(ctx); *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                    strict_failed("error message holds a control character",
                                  (size_t)(c - sg_ctx_error(ctx)));
    } else {
        PROMISE(sg_ctx_error(ctx) == NULL);
        int64_t total_bytes = 0;
        for (int i = 0; i < sg_st_count(f); i++) {
            const char *name = sg_st_name(f, i);
            sg_tensor *t = sg_st_tensor(f, i);
            PROMISE(name && t && sg_st_get(f, name) == t);
            PROMISE(i == 0 || strcmp(sg_st_name(f, i - 1), name) < 0); /* sorted, unique */
            PROMISE(t->ndim >= 0 && t->ndim <= SG_MAX_DIMS && sg_is_contiguous(t));
            volatile double sum = 0;
            for (int64_t k = 0; k < sg_numel(t); k++)
                sum += sg_get_flat(t, k);
            (void)sum;
            total_bytes += sg_numel(t) * (int64_t)sg_dtype_size(t->dtype);
        }
        /* the tensors tile the data buffer: their bytes add up to at most the input */
        PROMISE((size_t)total_bytes <= size);
        for (int i = 0; i < sg_st_meta_count(f); i++) {
            const char *k = sg_st_meta_key(f, i), *v = sg_st_meta_value(f, i);
            PROMISE(k && v && sg_st_meta(f, k) == v);
            PROMISE(i == 0 || strcmp(sg_st_meta_key(f, i - 1), k) < 0);
        }
        PROMISE(sg_ctx_error(ctx) == NULL);
        if (strict) {
            uint64_t hlen = 0;
            for (int i = 0; i < 8; i++)
                hlen |= (uint64_t)data[i] << (8 * i);
            PROMISE(hlen <= size - 8);
            check_utf8(data + 8, (size_t)hlen);
            check_numbers(data + 8, (size_t)hlen);
        }
    }
    sg_st_free(f);
    sg_ctx_free(ctx);
    return 0;
}
