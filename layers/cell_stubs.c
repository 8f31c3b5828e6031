/* TEMPORARY: weak stand-ins for the GRU and SimpleRNN cells (layers/cell_gru.c and
 * layers/cell_rnn.c define the real sg__gru_fns and sg__rnn_fns, which take precedence at
 * link time). Until they are merged, creating such a layer fails with "cell not available".
 * Delete this file once both cells are in. */
#include "internal.h"

static int stub_create(sg_ctx *ctx, sg_store *store, sg__cell *c, const char *prefix, sg_rng *rng) {
    (void)store, (void)rng;
    sg_error(ctx, "sg_rnn_new (%s): cell %s not available", prefix, c->fns->name);
    return -1;
}

__attribute__((weak))
const sg__cell_fns sg__gru_fns = {.name = "gru", .gates = 3, .nstate = 1, .create = stub_create};
__attribute__((weak)) const sg__cell_fns sg__rnn_fns = {
    .name = "simple_rnn", .gates = 1, .nstate = 1, .create = stub_create};
