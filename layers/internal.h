/* Internal to layers/: what every layer's constructor shares. Not installed. */
#ifndef SG_LAYERS_INTERNAL_H
#define SG_LAYERS_INTERNAL_H

#include "layers.h"

/* The layer's name into out (SG_LAYER_NAME_MAX + 1 bytes): `given` when it is free in the
 * store (no parameter "<given>" or "<given>.*"), else, for a NULL `given`, Keras' default
 * "<base>", "<base>_1", ... 0, or -1 with an error naming fn (a name too long, or taken). */
int sg__layer_name(sg_ctx *ctx, const sg_store *store, const char *fn, const char *given,
                   const char *base, char *out);

/* Two sizes of a layer's table, e.g. in and out: both positive and their product at most
 * SG_NUMEL_MAX. 0, or -1 with an error naming fn, the layer and both ("<fn> (<layer>): sizes
 * must be positive, got in=0 out=3", "...: in=.. out=..: the <table>'s size overflows ..."). */
int sg__layer_sizes(sg_ctx *ctx, const char *fn, const char *layer, const char *na, int64_t a,
                    const char *nb, int64_t b, const char *table);

#endif
