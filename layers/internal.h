/* Internal to layers/: what every layer's constructor shares. Not installed. */
#ifndef SG_LAYERS_INTERNAL_H
#define SG_LAYERS_INTERNAL_H

#include "layers.h"

/* The layer's name into out (SG_LAYER_NAME_MAX + 1 bytes): `given` when it is free in the
 * store (no parameter "<given>" or "<given>.*"), else, for a NULL `given`, Keras' default
 * "<base>", "<base>_1", ... 0, or -1 with an error naming fn (a name too long, or taken). */
int sg__layer_name(sg_ctx *ctx, const sg_store *store, const char *fn, const char *given,
                   const char *base, char *out);

#endif
