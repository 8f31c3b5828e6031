/* libFuzzer target for the safetensors reader (io/safetensors.c). Build and run with
 * fuzz/run.sh. Every input is parsed on a fresh context; a file that parses is walked
 * completely (every value read, so ASan sees any out-of-bounds tensor) and checked for the
 * reader's promises; a file that does not parse must have recorded an error. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "io.h"

/* A broken promise is a crash, so that libFuzzer reports it with the input. */
#define PROMISE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sg_ctx *ctx = sg_ctx_new(4096);
    if (!ctx)
        return 0;
    sg_st_file *f = sg_safetensors_parse(ctx, data, size);
    if (!f) {
        PROMISE(sg_ctx_error(ctx) != NULL);
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
    }
    sg_st_free(f);
    sg_ctx_free(ctx);
    return 0;
}
