/* seqgrad layers: the LSTM in two implementations ("gates" and "fused", Keras layout),
 * Dense, Embedding, and parameter lists. Layers are nothing but autograd ops: their backward
 * is what the tape derives. The exact equations are in docs/lstm.md; in short, gate order
 * i, f, c, o and
 *     c_t = f_t * c_{t-1} + i_t * g_t,     h_t = o_t * activation(c_t).
 */
#ifndef SG_LAYERS_H
#define SG_LAYERS_H

#include "../autograd/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest layer name: its parameters are "<name>.<parameter>", at most SG_NAME_MAX. */
#define SG_LAYER_NAME_MAX 31

/* ---- LSTM ---------------------------------------------------------------------------- */
typedef enum { SG_LSTM_FUSED = 0, SG_LSTM_GATES = 1 } sg_lstm_impl;

/* Gate indices, in Keras' (and PyTorch's) block order. */
enum { SG_GATE_I = 0, SG_GATE_F = 1, SG_GATE_C = 2, SG_GATE_O = 3 };

/* Whether a step works in place (sg_activate_, sg_add_, sg_addmm_ over the step's
 * pre-activations): the same numbers with about half the memory backward keeps, but with
 * gates that are strided slices, which costs time when a step is only a few hundred
 * elements. AUTO: in place when a step's pre-activations (B, 4H) hold at least
 * SG_LSTM_IN_PLACE_MIN elements. Either way only with tanh/sigmoid activations (the others
 * need their input in backward). */
typedef enum { SG_IN_PLACE_AUTO = 0, SG_IN_PLACE_ALWAYS, SG_IN_PLACE_NEVER } sg_in_place;
#define SG_LSTM_IN_PLACE_MIN 1024

typedef struct sg_lstm_options {
    int64_t input_size; /* I */
    int64_t units;      /* H */
    sg_dtype dtype;
    sg_activation activation;           /* default tanh */
    sg_activation recurrent_activation; /* default sigmoid */
    bool use_bias;                      /* default true */
    sg_init kernel_initializer;         /* default glorot_uniform */
    sg_init recurrent_initializer;      /* default orthogonal */
    sg_init bias_initializer;           /* default zeros */
    bool unit_forget_bias;              /* default true: bias columns H..2H-1 start at 1 */
    bool return_sequences;              /* default false: y is h_T (B, H); true: (B, T, H) */
    bool return_state;                  /* default false; h_T and c_T are filled anyway */
    sg_in_place in_place;               /* default SG_IN_PLACE_AUTO */
} sg_lstm_options;

/* Keras defaults for an LSTM with these sizes (float32). */
sg_lstm_options sg_lstm_defaults(int64_t input_size, int64_t units);

typedef struct sg_lstm {
    sg_lstm_impl impl;
    sg_lstm_options opt;
    char name[SG_LAYER_NAME_MAX + 1];
    /* fused (Keras layout): kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H) or NULL */
    sg_tensor *kernel, *recurrent_kernel, *bias;
    /* gates: W[g] (H + I, H) acting on concat([h, x]); b[g] (1, H) or NULL; g = SG_GATE_* */
    sg_tensor *W[4], *b[4];
} sg_lstm;

/* Create an LSTM whose parameters are registered in `store` (autograd.h) and initialised
 * from `rng` (NULL: the context's generator). Both implementations draw the Keras-layout
 * weights the same way, so the same seed gives the same function whichever implementation
 * is chosen. `name` prefixes parameter names: NULL picks Keras' "lstm", "lstm_1", ...; a
 * name the store already has is an error. Returns NULL with an error on bad options (and
 * leaves the store as it was). Free with sg_lstm_free (NULL is fine): the parameters stay
 * in the store. */
sg_lstm *sg_lstm_new(sg_ctx *ctx, sg_store *store, sg_lstm_impl impl, const sg_lstm_options *opt,
                     const char *name, sg_rng *rng);
void sg_lstm_free(sg_lstm *lstm);

typedef struct sg_lstm_output {
    sg_tensor *y; /* (B, T, H) with return_sequences, else h_T (B, H) */
    sg_tensor *h; /* h_T (B, H) */
    sg_tensor *c; /* c_T (B, H) */
} sg_lstm_output;

/* Run the LSTM over x (B, T, I). h0 and c0 (B, H) may be NULL (zeros) and may require
 * grad. Records everything on the tape. Returns 0, or -1 with an error naming the layer,
 * the expected and the given shapes. */
int sg_lstm_forward(sg_ctx *ctx, sg_lstm *lstm, sg_tensor *x, sg_tensor *h0, sg_tensor *c0,
                    sg_lstm_output *out);

/* Append the layer's parameters to a list ("<name>.kernel", "<name>.recurrent_kernel",
 * "<name>.bias" for fused; "<name>.W_i", ..., "<name>.b_o" for gates). */
int sg_lstm_params(const sg_lstm *lstm, sg_param_list *list);

/* Layout conversion. Keras layout is the common currency: kernel (I, 4H),
 * recurrent_kernel (H, 4H), bias (4H) (bias may be NULL: zeros / ignored).
 * sg_lstm_set_keras copies values in; sg_lstm_get_keras copies values out (grads = true:
 * the gradients instead, arranged in Keras layout). Any dtype/strides; shapes must match.
 * Returns 0 or -1 with an error naming the tensor and both shapes. */
int sg_lstm_set_keras(sg_ctx *ctx, sg_lstm *lstm, const sg_tensor *kernel,
                      const sg_tensor *recurrent_kernel, const sg_tensor *bias);
int sg_lstm_get_keras(sg_ctx *ctx, const sg_lstm *lstm, bool grads, sg_tensor *kernel,
                      sg_tensor *recurrent_kernel, sg_tensor *bias);
/* PyTorch nn.LSTM layout: weight_ih (4H, I), weight_hh (4H, H), bias_ih and bias_hh (4H)
 * (either bias may be NULL); bias = bias_ih + bias_hh. */
int sg_lstm_set_torch(sg_ctx *ctx, sg_lstm *lstm, const sg_tensor *weight_ih,
                      const sg_tensor *weight_hh, const sg_tensor *bias_ih,
                      const sg_tensor *bias_hh);
/* Copy the function of `src` into `dst` (any implementations, same sizes). */
int sg_lstm_copy(sg_ctx *ctx, sg_lstm *dst, const sg_lstm *src);

/* ---- the recurrent family: one driver, three cells -------------------------------------
 * sg_rnn is the general recurrent layer (PyTorch's nn.LSTM / nn.GRU / nn.RNN and Keras'
 * LSTM / GRU / SimpleRNN, Bidirectional and stacking in one object): one driver
 * (layers/rnn.c) owns the time loop, the direction, per-sequence lengths, initial and final
 * states, output stacking, dropout masks and zoneout; a cell (layers/cell_*.c) is a step
 * function and its parameter layout. sg_lstm above is the one-layer, one-direction LSTM, run
 * by the same driver.
 *
 * Shapes: x (B, T, I); lengths (B,) int64/int32 in 1..T (right-padded batches) or NULL (all
 * T); h0, c0 (L*D, B, H) or NULL (zeros, or the learned initial state); D = 2 when
 * bidirectional. Outputs as PyTorch's with batch_first: y (B, T, D*H) (merge concat) or
 * (B, T, H) (sum, mul, ave), zero at padded steps; h_n, c_n (L*D, B, H), each sequence's
 * state at its own last step, index 2*l + d for layer l, direction d (1: reverse). The reverse
 * direction of a sequence starts at its own last valid step.
 *
 * Parameters in the store, Keras layout per layer and direction: "<name>.kernel" (I_l, G*H),
 * "<name>.recurrent_kernel" (H, G*H), "<name>.bias" (G*H), or (2, 3H) for a GRU with
 * reset_after (input and recurrent biases), G = 4 (LSTM, blocks i, f, c, o), 3 (GRU, blocks
 * z, r, h), 1 (SimpleRNN); with several layers or directions the prefix is
 * "<name>.l<k>" and "<name>.l<k>_reverse" (as PyTorch's suffixes). */
typedef enum { SG_CELL_LSTM = 0, SG_CELL_GRU = 1, SG_CELL_RNN = 2 } sg_cell_kind;
typedef enum { SG_MERGE_CONCAT = 0, SG_MERGE_SUM, SG_MERGE_MUL, SG_MERGE_AVE } sg_merge_mode;
typedef enum { SG_STATE_ZEROS = 0, SG_STATE_LEARNED = 1 } sg_initial_state;

typedef struct sg_rnn_options {
    sg_cell_kind cell;
    sg_lstm_impl impl;   /* LSTM only: fused (default) or gates */
    int64_t input_size;  /* I */
    int64_t units;       /* H */
    int num_layers;      /* L, default 1 (PyTorch's num_layers) */
    bool bidirectional;  /* default false */
    sg_merge_mode merge; /* how y joins the two directions; default concat */
    sg_dtype dtype;
    sg_activation activation;           /* default tanh (SimpleRNN: tanh or relu) */
    sg_activation recurrent_activation; /* LSTM and GRU gates; default sigmoid */
    bool use_bias;                      /* default true */
    bool reset_after;                   /* GRU: default true (Keras' default, PyTorch's form) */
    sg_init kernel_initializer;         /* default glorot_uniform */
    sg_init recurrent_initializer;      /* default orthogonal */
    sg_init bias_initializer;           /* default zeros */
    bool unit_forget_bias;              /* LSTM: default true */
    bool return_sequences;              /* default true: y is (B, T, ...); false: the last
                                           valid step's output (B, ...) */
    double dropout;              /* Keras' dropout: a mask on each layer's input, fixed over time */
    double recurrent_dropout;    /* Keras' recurrent_dropout: a mask on h, fixed over time */
    double layer_dropout;        /* PyTorch's dropout: between stacked layers, fresh per step */
    double zoneout_h, zoneout_c; /* zoneout probabilities on h and on c (LSTM) */
    bool layer_norm;             /* LSTM: layer-normalise the gate pre-activations and the cell */
    sg_initial_state initial_state; /* zeros (default) or learned parameters "<name>.h0" */
    sg_in_place in_place;           /* LSTM: as sg_lstm_options */
} sg_rnn_options;

/* Defaults (Keras' for the cell, float32, one layer, one direction) for these sizes. */
sg_rnn_options sg_rnn_defaults(sg_cell_kind cell, int64_t input_size, int64_t units);

typedef struct sg_rnn sg_rnn;

/* Create the layer, its parameters registered in `store` and drawn from `rng` (NULL: the
 * context's generator) as for sg_lstm_new; `name` NULL: Keras' "lstm", "gru", "simple_rnn"
 * (then "_1", ...). NULL with an error on bad options, the store left as it was. Free with
 * sg_rnn_free (NULL is fine). */
sg_rnn *sg_rnn_new(sg_ctx *ctx, sg_store *store, const sg_rnn_options *opt, const char *name,
                   sg_rng *rng);
void sg_rnn_free(sg_rnn *rnn);
const sg_rnn_options *sg_rnn_opts(const sg_rnn *rnn);

typedef struct sg_rnn_output {
    sg_tensor *y;   /* see above */
    sg_tensor *h_n; /* (L*D, B, H) */
    sg_tensor *c_n; /* (L*D, B, H), LSTM only (else NULL) */
} sg_rnn_output;

/* Run the layer. Records everything on the tape. 0, or -1 with an error naming the layer and
 * the problem (shapes, dtypes, lengths outside 1..T). */
int sg_rnn_forward(sg_ctx *ctx, sg_rnn *rnn, sg_tensor *x, sg_tensor *lengths, sg_tensor *h0,
                   sg_tensor *c0, sg_rnn_output *out);

/* Append the layer's parameters ("<name>...") to a list. */
int sg_rnn_params(const sg_rnn *rnn, sg_param_list *list);

/* PyTorch's state_dict: weight_ih_l<k>[_reverse] (G*H, I_k), weight_hh_l<k>[_reverse]
 * (G*H, H), bias_ih_l<k>[_reverse], bias_hh_l<k>[_reverse] (G*H), gate blocks in PyTorch's
 * order (LSTM i, f, g, o; GRU r, z, n). sg_rnn_set_torch copies them in from a list holding
 * those names (every one the layer needs; a missing or misshapen one is an error naming it);
 * sg_rnn_get_torch appends, under the same names, new arena tensors holding the values (or,
 * with grads, the gradients) in PyTorch's layout. A GRU needs reset_after (PyTorch's form). */
int sg_rnn_set_torch(sg_ctx *ctx, sg_rnn *rnn, const sg_param_list *state_dict);
int sg_rnn_get_torch(sg_ctx *ctx, const sg_rnn *rnn, bool grads, sg_param_list *state_dict);

/* ---- Dense --------------------------------------------------------------------------- */
typedef struct sg_dense {
    int64_t in, out;
    sg_activation activation;
    char name[SG_LAYER_NAME_MAX + 1];
    sg_tensor *kernel; /* (in, out) */
    sg_tensor *bias;   /* (out) or NULL */
} sg_dense;

/* Keras Dense: kernel glorot_uniform, bias zeros, registered in `store` as for sg_lstm_new
 * (`name` NULL: "dense", "dense_1", ...). */
sg_dense *sg_dense_new(sg_ctx *ctx, sg_store *store, sg_dtype dt, int64_t in, int64_t out,
                       bool use_bias, sg_activation activation, const char *name, sg_rng *rng);
void sg_dense_free(sg_dense *d);
/* y = activation(x @ kernel + bias) on x (B, in) or on every step of (B, T, in). */
sg_tensor *sg_dense_forward(sg_ctx *ctx, sg_dense *d, sg_tensor *x);
int sg_dense_params(const sg_dense *d, sg_param_list *list);

/* ---- Embedding ------------------------------------------------------------------------
 * A lookup table of `vocab` rows of `dim` values: ids (any shape, int64 or int32) ->
 * ids.shape + (dim,). The table, "<name>.embeddings" of shape (vocab, dim), is Keras'
 * Embedding `embeddings` and PyTorch's nn.Embedding `weight` alike (same layout), so
 * sg_embedding_set loads either. Built from sg_index_select: an id used k times gets k
 * gradients added into its row. */

/* padding_idx value for "no padding row" (PyTorch's padding_idx=None). */
#define SG_EMBEDDING_NO_PADDING INT64_MIN

typedef struct sg_embedding_options {
    /* Keras mask_zero (default false): id 0 stands for padding at the end of a sequence;
     * sg_embedding_lengths gives each sequence's length. Row 0 is still an ordinary row
     * (looked up and trained as any other), as in Keras. */
    bool mask_zero;
    /* PyTorch padding_idx (default SG_EMBEDDING_NO_PADDING): that row is zeroed at creation
     * and never receives a gradient; looking it up still gives its current value. A
     * negative value counts from the end as in PyTorch (-1 is the last row), so "none" is
     * the sentinel above, not -1. Must be in [-vocab, vocab). */
    int64_t padding_idx;
    sg_init initializer; /* default Keras' random_uniform in [-0.05, 0.05) */
} sg_embedding_options;

/* The defaults above. */
sg_embedding_options sg_embedding_defaults(void);

typedef struct sg_embedding {
    int64_t vocab, dim;
    bool mask_zero;
    int64_t padding_idx; /* in [0, vocab), or -1 for none */
    char name[SG_LAYER_NAME_MAX + 1];
    sg_tensor *embeddings; /* (vocab, dim) */
} sg_embedding;

/* Create an Embedding of dtype dt (float32 or float64) registered in `store` as
 * "<name>.embeddings" (`name` NULL: Keras' "embedding", "embedding_1", ...), drawn from `rng`
 * (NULL: the context's generator). opt NULL: sg_embedding_defaults(). NULL with an error
 * naming the layer (sizes not positive or too big, padding_idx out of range, an integer
 * dtype, a taken name), leaving the store as it was. Free with sg_embedding_free (NULL is
 * fine): the parameter stays in the store. */
sg_embedding *sg_embedding_new(sg_ctx *ctx, sg_store *store, sg_dtype dt, int64_t vocab,
                               int64_t dim, const sg_embedding_options *opt, const char *name,
                               sg_rng *rng);
void sg_embedding_free(sg_embedding *emb);
/* The rows of the ids: ids (any shape and strides, int64 or int32, every id in [0, vocab))
 * -> ids.shape + (dim,), recorded (index_select, and a where keeping the padding row's
 * gradient out when padding_idx is set). NULL ids gives NULL; an id out of range is an
 * error naming it, its position (row-major) and the vocabulary size. */
sg_tensor *sg_embedding_forward(sg_ctx *ctx, sg_embedding *emb, sg_tensor *ids);
/* Keras mask_zero as lengths: for ids (B, T) (int64 or int32) a new (B,) int64 tensor of
 * the number of leading nonzero ids of each row, into *lengths. A 0 followed by a nonzero
 * id in the same row is refused ("padding must be at the end"): lengths cannot describe
 * that mask. 0, or -1 with an error (*lengths NULL) also when the layer has no mask_zero. */
int sg_embedding_lengths(sg_ctx *ctx, const sg_embedding *emb, sg_tensor *ids, sg_tensor **lengths);
/* Copy a (vocab, dim) table in (Keras' embeddings or PyTorch's weight; any float dtype and
 * strides). 0, or -1 with an error naming both shapes. */
int sg_embedding_set(sg_ctx *ctx, sg_embedding *emb, const sg_tensor *weight);
/* Append "<name>.embeddings" to a list. 0 or -1. */
int sg_embedding_params(const sg_embedding *emb, sg_param_list *list);

#ifdef __cplusplus
}
#endif
#endif
