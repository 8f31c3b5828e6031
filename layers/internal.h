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

/* ---- PyTorch's recurrent layouts (layers/convert.c) ------------------------------------
 * Copy between a Keras-layout tensor k, (n, G*H) or (G*H), and PyTorch's t, (G*H, n) or
 * (G*H), block by block: PyTorch's block p (rows p*H ..) is Keras' block perm[p] (columns
 * perm[p]*H ..), transposed for the matrices; perm NULL: the same order. to_torch: k -> t,
 * else t -> k. Any dtypes and strides; shapes are the callers' to check. Records nothing.
 * 0, or -1 with an error. */
int sg__torch_blocks(sg_ctx *ctx, bool to_torch, sg_tensor *k, sg_tensor *t, int G, int64_t H,
                     const int *perm);
/* PyTorch's two biases as one, b_ih + b_hh (either NULL: zeros), a float64 (n) arena tensor;
 * NULL when both are NULL (no bias) or with an error. Records nothing. */
sg_tensor *sg__torch_bias_sum(sg_ctx *ctx, const sg_tensor *b_ih, const sg_tensor *b_hh, int64_t n);

/* ---- the recurrent driver's view of a cell (layers/rnn.c drives, layers/cell_*.c step) ----
 * A cell is one layer and direction's parameters in Keras layout and two functions. */
typedef struct sg__cell sg__cell;
typedef struct sg__cell_fns {
    const char *name; /* Keras' layer name: "lstm", "gru", "simple_rnn" */
    int gates;        /* G: gate blocks in kernel's columns (4, 3, 1) */
    int nstate;       /* states carried: 2 (h, c) or 1 (h) */
    bool x_direct;    /* project returns x itself, batch-major whatever time_major says (the
                         gates LSTM): the driver then selects x_t along axis 1 */
    /* Before the time loop: what every step needs from x (B, T, I), computed for all steps
     * at once (the fused LSTM's x @ kernel + bias, (B, T, G*H), or time-major (T, B, G*H) when
     * time_major), or x itself for a cell that reads x_t directly (the gates LSTM). NULL with
     * an error in ctx. */
    sg_tensor *(*project)(sg_ctx *ctx, const sg__cell *c, sg_tensor *x, bool time_major);
    /* One step: xp_t is the step's (B, ...) slice of project's result (a cell stepping in
     * place may write into it); state[0 .. nstate) are the incoming states, NULL for zeros
     * (whose products the cell skips), replaced by the new ones. 0, or -1 with an error. */
    int (*step)(sg_ctx *ctx, const sg__cell *c, sg_tensor *xp_t, sg_tensor **state, bool ip);
    /* Register the cell's parameters in the store as "<prefix>.kernel", ... (c->opt, c->in,
     * c->units set by the caller) and draw them with the options' initializers from rng, in
     * Keras' order (kernel, recurrent_kernel, bias). 0, or -1 with an error. */
    int (*create)(sg_ctx *ctx, sg_store *store, sg__cell *c, const char *prefix, sg_rng *rng);
    /* Move values (or, with grads, gradients) between the cell and PyTorch's layout of one
     * layer and direction: w_ih (G*H, in), w_hh (G*H, H), b_ih and b_hh (G*H) (NULL when the
     * layer has no bias), PyTorch's gate order. to_cell: PyTorch -> cell (values only). 0, or
     * -1 with an error naming the tensor and both shapes. */
    int (*torch)(sg_ctx *ctx, const sg__cell *c, bool to_cell, bool grads, sg_tensor *w_ih,
                 sg_tensor *w_hh, sg_tensor *b_ih, sg_tensor *b_hh);
} sg__cell_fns;

struct sg__cell {
    const sg__cell_fns *fns;
    const char *name; /* the parameters' prefix ("lstm", "lstm.l1_reverse"), for messages */
    const sg_rnn_options *opt; /* the layer's options (cell, activations, reset_after, ...) */
    int64_t in, units;         /* I of this layer (the layer below's output size), H */
    /* Keras layout; NULL where the layer has none: kernel (in, G*H), recurrent_kernel
     * (H, G*H), bias (G*H) or for a GRU with reset_after (2, 3H) */
    sg_tensor *kernel, *recurrent_kernel, *bias;
    sg_tensor *W[4], *b[4]; /* the gates LSTM: (H + in, H) and (1, H) per gate */
    /* the layer_norm LSTM (cell_lstm_ln.c): normalisations of x @ kernel, h @ recurrent_kernel
     * (4H each) and of the cell (H) */
    sg_tensor *ln_gain[3], *ln_bias[3];
    /* Set by the driver on its own copy of the cell for one run: recurrent dropout's (B, H)
     * mask, multiplied into h where h enters the recurrent product (not where the cell reuses
     * h itself, as a GRU's z * h does), the same at every step; NULL for none. */
    sg_tensor *rec_mask;
    /* Set by the driver on that copy: project's result and the step being taken (the fused
     * LSTM's in-place step completes its time step of the sg_seqmm sequence). */
    sg_tensor *xp;
    int64_t t;
};

extern const sg__cell_fns sg__lstm_fused_fns, sg__lstm_gates_fns, sg__lstm_ln_fns, sg__gru_fns,
    sg__rnn_fns;

/* ---- the driver (layers/rnn.c) --------------------------------------------------------- */
/* The batch's sequences: B, T and, with lengths, each one's length, the per-step validity
 * mask and the per-sequence time reversal (built by the driver from the lengths). */
typedef struct sg__seqs {
    int64_t B, T;
    int64_t minlen;   /* steps [0, minlen) are valid for every sequence (T without lengths) */
    sg_tensor *valid; /* (T, B, 1) 1 or 0 in the layer's dtype, NULL without lengths */
    sg_tensor *rev;   /* (B, T, 1) int64: t -> len_b - 1 - t inside each sequence, t after */
} sg__seqs;

/* The dropout kinds of one layer and direction (probabilities; 0: none). */
typedef struct sg__drops {
    double input, recurrent, zoneout_h, zoneout_c;
    sg_rng *rng;
} sg__drops;

/* Does a step of B sequences run in place (sg_in_place in layers.h)? */
bool sg__rnn_in_place(const sg_rnn_options *o, int64_t B);

/* Run one layer and direction of cell c over x (B, T, I): state[0 .. nstate) in (NULL:
 * zeros), the final states out (each sequence's at its own last step); *y (B, T, H) the
 * outputs, zero at padded steps, when y is not NULL. 0, or -1 with an error in ctx. */
int sg__rnn_direction(sg_ctx *ctx, const sg__cell *c, sg_tensor *x, const sg__seqs *s, bool reverse,
                      const sg__drops *d, sg_tensor **state, sg_tensor **y);

/* Layer l, direction d's cell of an sg_rnn (d = 1: reverse), or NULL out of range: for
 * io/onnx.c, which reads and writes the cells' parameters in Keras layout. */
const sg__cell *sg__rnn_cell(const sg_rnn *r, int l, int d);

/* Append a cell's parameters to a list as "<c->name>.<field>" (kernel, recurrent_kernel,
 * bias, W_i, b_i, ..., b_o: those it has). 0 or -1. */
int sg__cell_params(const sg__cell *c, sg_param_list *list);

/* ---- the LSTM cell (layers/cell_lstm.c, layers/convert.c) ------------------------------- */
/* The cell view of an sg_lstm (its options as sg_rnn_options in *ro, which c points to). */
void sg__lstm_cell(const sg_lstm *l, sg_rnn_options *ro, sg__cell *c);
/* Move values (or grads) between an LSTM cell and Keras-layout kernel (I, 4H),
 * recurrent_kernel (H, 4H), bias (4H) or NULL; to_layer: into the cell. Errors name fn. */
int sg__lstm_transfer(sg_ctx *ctx, const char *fn, const sg__cell *c, bool grads, bool to_layer,
                      sg_tensor *k, sg_tensor *rk, sg_tensor *b);
/* The LSTM cells' torch function (sg__cell_fns.torch). */
int sg__lstm_torch(sg_ctx *ctx, const sg__cell *c, bool to_cell, bool grads, sg_tensor *w_ih,
                   sg_tensor *w_hh, sg_tensor *b_ih, sg_tensor *b_hh);

/* ---- what the Keras-layout cells share (layers/cell_common.c) --------------------------
 * Register "<prefix>.kernel" (in, G*H), "<prefix>.recurrent_kernel" (H, G*H) and, with
 * use_bias, "<prefix>.bias" ((bias_rows, G*H), or (G*H) when bias_rows is 1), then draw them
 * in that order with the options' initializers from rng (Keras' order). The store is left as
 * it was on failure. 0, or -1 with an error naming "sg_rnn_new (<prefix>)". */
int sg__cell_create_keras(sg_ctx *ctx, sg_store *store, sg__cell *c, const char *prefix,
                          sg_rng *rng, int bias_rows);
/* project for a cell whose input terms are x @ kernel + the input bias (the bias, or row 0
 * of a (2, G*H) one): x (B, T, in) -> (B, T, G*H), or (T, B, G*H) (contiguous) when
 * time_major. */
sg_tensor *sg__cell_project_keras(sg_ctx *ctx, const sg__cell *c, sg_tensor *x, bool time_major);
/* The start of every torch(): check the four tensors' shapes (w_ih (G*H, in), w_hh (G*H, H),
 * b_ih and b_hh (G*H), each bias may be NULL; biases given to a cell without one are refused
 * when to_cell), then copy kernel <-> w_ih and recurrent_kernel <-> w_hh with the block
 * order perm (sg__torch_blocks), from the gradients when grads and not to_cell. 0, or -1
 * with an error "sg_rnn_set_torch (<cell>): weight_ih has shape (..), expected (..)"
 * (sg_rnn_get_torch when not to_cell). */
/* How messages name a cell: c->name, else its kind (c->fns->name). */
const char *sg__cell_label(const sg__cell *c);
int sg__cell_torch_weights(sg_ctx *ctx, const sg__cell *c, bool to_cell, bool grads,
                           sg_tensor *w_ih, sg_tensor *w_hh, sg_tensor *b_ih, sg_tensor *b_hh,
                           const int *perm);

#endif
