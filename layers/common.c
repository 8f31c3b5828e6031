/* What every layer's constructor shares: its name in the store. */
#include <string.h>

#include "internal.h"

int sg__layer_name(sg_ctx *ctx, const sg_store *store, const char *fn, const char *given,
                   const char *base, char *out) {
    if (!store) {
        sg_error(ctx, "%s: store is NULL (layers register their parameters in a store)", fn);
        return -1;
    }
    const char *nm = given ? given : base;
    if (!nm[0] || strlen(nm) > SG_LAYER_NAME_MAX || strchr(nm, '.')) {
        sg_error(ctx, "%s: layer name \"%.40s\" must be 1 to %d characters without a '.'", fn, nm,
                 SG_LAYER_NAME_MAX);
        return -1;
    }
    char buf[SG_LAYER_NAME_MAX + 1];
    if (sg_store_unique_name(ctx, store, nm, buf, sizeof buf))
        return -1;
    if (given && strcmp(buf, given)) {
        sg_error(ctx, "%s: the store already has a layer named \"%s\"", fn, given);
        return -1;
    }
    memcpy(out, buf, sizeof buf);
    return 0;
}

int sg__layer_sizes(sg_ctx *ctx, const char *fn, const char *layer, const char *na, int64_t a,
                    const char *nb, int64_t b, const char *table) {
    int64_t n;
    if (a <= 0 || b <= 0)
        sg_error(ctx, "%s (%s): sizes must be positive, got %s=%lld %s=%lld", fn, layer, na,
                 (long long)a, nb, (long long)b);
    else if (__builtin_mul_overflow(a, b, &n) || n > SG_NUMEL_MAX)
        sg_error(ctx,
                 "%s (%s): %s=%lld %s=%lld: the %s's size overflows (more than 2^60 - 1 "
                 "elements)",
                 fn, layer, na, (long long)a, nb, (long long)b, table);
    else
        return 0;
    return -1;
}
