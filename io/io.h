/* seqgrad io: safetensors files, training checkpoints and ONNX models.
 *
 * safetensors (https://github.com/huggingface/safetensors) is 8 bytes of little-endian u64
 * header length N, N bytes of JSON
 *     {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3],
 *      "data_offsets": [begin, end]}, ...}
 * padded with spaces, then the raw little-endian data, offsets relative to its start. The
 * reader treats every file as hostile: it never reads out of bounds, and any defect
 * (truncation, bad JSON or UTF-8, bad shapes or offsets, shapes whose size overflows int64,
 * gaps, overlaps, duplicate names, ...) is an error naming the function, the file and the
 * problem, e.g.
 *     "sg_safetensors_load: w.safetensors: tensor 'emb': dtype BF16 not supported".
 * Names in messages are quoted ('' for an empty one), with control characters and invalid
 * UTF-8 escaped (\n, \x1b, ...) and anything past 96 characters cut to "...".
 * F32, F64, I64 and I32 load into seqgrad tensors of those dtypes (and are written from
 * them); other standard dtypes are recognised and rejected by name.
 *
 *     sg_st_file *f = sg_safetensors_load(ctx, "w.safetensors");
 *     sg_tensor *k = sg_st_get(f, "lstm.kernel");        // owned by f
 *     ...; sg_st_free(f);                                // before sg_ctx_free(ctx)
 *
 * Checkpoints are safetensors files holding a parameter list, an optimizer's state and
 * the step / generator state as metadata; loading is all-or-nothing.
 */
#ifndef SG_IO_H
#define SG_IO_H

#include "../layers/layers.h"
#include "../optim/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- reading ------------------------------------------------------------------------- */

/* A parsed safetensors file: its tensors (by name, sorted) and its metadata. */
typedef struct sg_st_file sg_st_file;

/* Read the whole file at `path` into memory and parse it. Returns a new sg_st_file that
 * the caller frees with sg_st_free, or NULL with an error
 * "sg_safetensors_load: <path>: <problem>" (unreadable file, "is a directory", "not a
 * regular file" for devices, FIFOs and sockets, which are refused before a byte is read,
 * or anything sg_safetensors_parse rejects). At most the size fstat reports is read. The
 * tensors are persistent F32/F64 tensors of `ctx` (contiguous, not requiring grad) owned
 * by the sg_st_file. ctx NULL: returns NULL. path NULL or "": NULL with an error. */
sg_st_file *sg_safetensors_load(sg_ctx *ctx, const char *path);

/* Parse a whole safetensors file held in memory (`len` bytes at `buf`; the buffer is only
 * read, never kept: the tensors are copies). Returns a new sg_st_file (free with
 * sg_st_free) or NULL with an error "sg_safetensors_parse: <problem>". Accepts exactly
 * what the reference implementation writes: the header must be a UTF-8 JSON object
 * (nesting at most 3 deep) of tensor entries with exactly the keys dtype / shape /
 * data_offsets and an optional "__metadata__" object of string values; every shape's size
 * in bytes, zero dimensions aside, must fit in int64; the data buffer must be covered by
 * the tensors exactly, without gaps or overlaps. ctx NULL: returns NULL. buf NULL (with
 * any len): NULL with an error. */
sg_st_file *sg_safetensors_parse(sg_ctx *ctx, const void *buf, size_t len);

/* Free the file and every tensor it owns (tensors obtained from it die with it). Must be
 * called before sg_ctx_free of its context. NULL is fine. */
void sg_st_free(sg_st_file *f);

/* Number of tensors (0 for NULL). */
int sg_st_count(const sg_st_file *f);
/* Name / tensor number i, 0 <= i < sg_st_count, in sorted name order. Owned by f. NULL
 * (without an error) for f NULL or i out of range. */
const char *sg_st_name(const sg_st_file *f, int i);
sg_tensor *sg_st_tensor(const sg_st_file *f, int i);
/* Does the file hold a tensor called `name`? false for NULL f or name. Records nothing. */
bool sg_st_has(const sg_st_file *f, const char *name);
/* The tensor called `name` (owned by f; copy it to keep it past sg_st_free), or NULL with
 * an error "sg_st_get: <file>: no tensor '<name>'" when absent (so NULL propagates through
 * ops with its reason recorded). f NULL: NULL silently; name NULL: NULL with an error. */
sg_tensor *sg_st_get(const sg_st_file *f, const char *name);

/* Metadata: the value for `key` (owned by f), or NULL without an error when absent or f /
 * key is NULL. */
const char *sg_st_meta(const sg_st_file *f, const char *key);
/* Number of metadata entries, and entry i's key and value in sorted key order (NULL when
 * f is NULL or i is out of range). */
int sg_st_meta_count(const sg_st_file *f);
const char *sg_st_meta_key(const sg_st_file *f, int i);
const char *sg_st_meta_value(const sg_st_file *f, int i);

/* ---- writing ------------------------------------------------------------------------- */

/* Write `tensors` (each entry's name and tensor: F32 or F64, any strides; the values are
 * read, nothing is kept) and `metadata` (NULL, or a NULL-terminated array of key, value,
 * key, value, ..., NULL strings) to `path` as safetensors: names sorted, header padded
 * with spaces to a multiple of 8 bytes, data contiguous in name order. tensors NULL or
 * empty writes a file with no tensors.
 * The save is atomic: the bytes go to a temporary file in the same directory (unnamed,
 * O_TMPFILE, where the file system has it; else named from the start), which is flushed,
 * fsync'ed, named "<path>.tmp.XXXXXX" and renamed over `path`, and the directory is
 * fsync'ed. On any failure the temporary file is removed and an existing `path` is left
 * untouched. A save killed half-way leaves at most a "<path>.tmp.XXXXXX", which the next
 * save of the same path removes (a save holds an flock on its temporary file; those
 * nobody holds are leftovers). A new file gets mode 0644; an existing file keeps its mode.
 * Returns 0, or -1 with an error "sg_safetensors_save: <path>: <problem>" (NULL or stale
 * tensor, duplicate or reserved name "__metadata__", a name, key or value that is not
 * valid UTF-8, duplicate metadata key, key without value, "is a directory", "not a regular
 * file" (a device or FIFO, which the rename would replace), I/O failure with strerror).
 * ctx NULL: -1. path NULL or "": -1 with an error. */
int sg_safetensors_save(sg_ctx *ctx, const char *path, const sg_param_list *tensors,
                        const char *const *metadata);

/* ---- checkpoints --------------------------------------------------------------------- */

/* Save a training checkpoint: every tensor of `params` under its list name, the state of
 * `opt` (sg_optim_state: "optim.<param>.<buffer>"; opt may be NULL), and metadata
 * "format" = "seqgrad-checkpoint-1", "step", "optimizer" (sg_optim_kind or "none"),
 * "optimizer_steps" (with opt), "rng" (with rng non-NULL: the four state words, the
 * bits of the spare normal and has_spare, in hex, so the generator resumes exactly) and
 * "crc32" (the CRC-32, as zlib's, of every tensor's bytes in the file's tensor order,
 * 8 hex digits each, space-separated). Nothing sg_checkpoint_load would refuse is
 * written: step must be in 0 .. 2^53 and at least the optimizer's step count (a step
 * counts training steps), and the generator state not all zero.
 * Atomic as sg_safetensors_save. Returns 0 or -1 with an error
 * "sg_checkpoint_save: <path>: <problem>". ctx NULL: -1; params NULL: an error. */
int sg_checkpoint_save(sg_ctx *ctx, const char *path, const sg_param_list *params,
                       const sg_optim *opt, int64_t step, const sg_rng *rng);

/* sg_checkpoint_save with the caller's own metadata as well: `user_meta` is NULL or a
 * NULL-terminated array of key, value, key, value, ..., NULL strings (valid UTF-8; values
 * may hold any text: encode bytes, e.g. in hex, when they are not text), written beside the
 * checkpoint's own keys and read back with sg_checkpoint_meta / sg_st_meta. A key the
 * checkpoint writes itself (format, step, optimizer, optimizer_steps, rng, crc32) is an
 * error "metadata key 'step' is the checkpoint's own", as is a key without a value or a
 * duplicate key; sg_checkpoint_load ignores the caller's keys. Errors and atomicity as
 * sg_checkpoint_save (whose messages name sg_checkpoint_save). */
int sg_checkpoint_save_ex(sg_ctx *ctx, const char *path, const sg_param_list *params,
                          const sg_optim *opt, int64_t step, const sg_rng *rng,
                          const char *const *user_meta);

/* A checkpoint's metadata, to read before building the model it holds (the options saved
 * with sg_checkpoint_save_ex): the file is read and parsed as sg_safetensors_load does
 * (tensors included) and must be a seqgrad checkpoint. Returns a new sg_st_file (read its
 * metadata with sg_st_meta, free with sg_st_free), or NULL with an error
 * "sg_checkpoint_meta: <path>: <problem>" (any sg_safetensors_load problem, or "not a
 * seqgrad checkpoint (...)"). Nothing else is validated here: sg_checkpoint_load does
 * that. ctx NULL: NULL. */
sg_st_file *sg_checkpoint_meta(sg_ctx *ctx, const char *path);

/* Load a checkpoint into EXISTING tensors (values are copied; nothing is allocated that
 * outlives the call): the tensors of `params`, the state tensors of `opt`, its step count,
 * *step and *rng. opt, step and rng may each be NULL to skip that part (the file's
 * optimizer tensors are then ignored: loading a training checkpoint for inference).
 * Everything is validated (in the file's copies) before anything is copied, so on error
 * nothing has changed: every metadata value, present whether or not it is asked for
 * (step and optimizer_steps decimal in 0 .. 2^53, optimizer_steps at most step and only
 * with an optimizer, a generator state not all zero and a finite pending normal), the
 * "crc32" checksums when present (files without them load), names, shapes and dtypes,
 * and the values: a NaN or infinite parameter or optimizer state, or a negative Adam
 * second moment (exp_avg_sq, max_exp_avg_sq), is refused.
 * Returns 0, or -1 with an error "sg_checkpoint_load: <path>: <problem>" naming exactly
 * what is wrong, e.g.
 *     "tensor 'lstm.kernel' has shape (5, 16), expected (5, 32)"
 *     "tensor 'dense.bias' has dtype float64, expected float32"
 *     "missing tensor 'dense.bias'", "unexpected tensor 'foo'",
 *     "tensor 'dense.bias': data checksum mismatch (crc32 ... in the file, ... of the data)"
 *     "tensor 'dense.kernel' has NaN at index 3", "metadata 'step' is negative: '-5'",
 *     "metadata 'rng': generator state is all zero",
 *     "optimizer is adam in the file, sgd given", "no rng state in the file",
 *     "not a seqgrad checkpoint (format ...)", plus any sg_safetensors_load problem
 *     (out of memory included: every message names the file).
 * ctx NULL: -1; params NULL: an error. */
int sg_checkpoint_load(sg_ctx *ctx, const char *path, sg_param_list *params, sg_optim *opt,
                       int64_t *step, sg_rng *rng);
/* sg_checkpoint_meta and sg_checkpoint_load from a checkpoint's len bytes in memory (`name`,
 * e.g. the path they were read from, stands for the path in messages; NULL: "(memory)"):
 * for a program that received the file some other way, as data-parallel training does
 * (rank 0 reads the checkpoint, every rank loads the bytes it broadcast). Checks, results
 * and messages as for the file; buf NULL is an error "sg_checkpoint_..._mem: NULL buffer". */
sg_st_file *sg_checkpoint_meta_mem(sg_ctx *ctx, const void *buf, size_t len, const char *name);
int sg_checkpoint_load_mem(sg_ctx *ctx, const void *buf, size_t len, const char *name,
                           sg_param_list *params, sg_optim *opt, int64_t *step, sg_rng *rng);

/* ---- ONNX -----------------------------------------------------------------------------
 * Export a model of seqgrad layers as an ONNX model (https://onnx.ai, opset 14) that runs
 * without seqgrad (onnxruntime, ...), and load the weights of ONNX recurrent nodes back into
 * layers. The mapping of layouts and what each model shape becomes is in docs/onnx.md.
 *
 * A model is an optional Embedding, one recurrent stack (an sg_rnn: LSTM in either
 * implementation, GRU, SimpleRNN, stacked, bidirectional; or an sg_lstm) written as ONNX's
 * own LSTM / GRU / RNN operators (one node per layer, direction "bidirectional" for two),
 * then any number of Dense layers (MatMul, Add and the activation's operator) applied to the
 * stack's output at every step or to its final state:
 *
 *   inputs   x (B, T, I) float, or with an embedding ids (B, T) int64 (a Gather);
 *            optional lengths (B,) int32 (each in 1..T: ONNX's sequence_lens), h0 and, for
 *            an LSTM, c0 (L*D, B, H)
 *   outputs  y: SG_ONNX_EVERY_STEP, the stack's output (B, T, D*H) (zero at padded steps),
 *            or the last Dense's (B, T, out); SG_ONNX_FINAL_STATE, the last layer's final
 *            state (B, D*H) (each direction's h at the end of its pass over each sequence,
 *            the forward one first: what sg_rnn gives with return_sequences = false), or the
 *            last Dense's (B, out);
 *            optional h_n and, for an LSTM, c_n (L*D, B, H) (index 2*l + d, as sg_rnn's)
 * B and T are dynamic ("B", "T"); the element type is the layers' dtype (float32 or
 * float64; all layers must share it). Evaluation behaviour: dropout, recurrent dropout and
 * layer dropout are left out. Refused, with a message naming the layer: layer_norm, a
 * learned initial state, zoneout (its evaluation form mixes states, which ONNX's cells
 * cannot express), a merge mode other than concat, the linear activation in a recurrent
 * layer, and a Dense whose input size does not match what it receives. Activations: tanh,
 * sigmoid, relu, hard_sigmoid (ONNX's HardSigmoid, 0.2 x + 0.5: Keras 2's). Recurrent nodes
 * are named "<layer>.l<k>", initializers "<layer>.l<k>.W" / ".R" / ".B",
 * "<embedding>.embeddings", "<dense>.kernel" / ".bias". */

/* What the stack hands to the Dense layers (and to the output y without them). */
typedef enum { SG_ONNX_EVERY_STEP = 0, SG_ONNX_FINAL_STATE = 1 } sg_onnx_head;

typedef struct sg_onnx_model {
    sg_embedding *embedding; /* NULL: the input is x (B, T, I) */
    sg_rnn *rnn;             /* the stack: exactly one of rnn and lstm */
    sg_lstm *lstm;
    sg_dense *const *dense; /* n_dense layers, applied in order (NULL when n_dense is 0) */
    int n_dense;
    sg_onnx_head head;
    bool lengths, h0, c0;    /* graph inputs to declare (c0: LSTM only) */
    bool h_n, c_n;           /* extra graph outputs (c_n: LSTM only) */
    const char *input_name;  /* NULL: "ids" with an embedding, else "x" */
    const char *output_name; /* NULL: "y" */
} sg_onnx_model;

/* Write `model` to `path` as an ONNX model (IR version 7, opset 14, producer "seqgrad"),
 * the layers' current values as initializers. Atomic as sg_safetensors_save. Returns 0, or
 * -1 with an error "sg_onnx_export: <path>: <problem>" (a model the format cannot hold, see
 * above; inconsistent sizes or dtypes; I/O). ctx NULL: -1; model or path NULL: an error. */
int sg_onnx_export(sg_ctx *ctx, const char *path, const sg_onnx_model *model);

/* A parsed ONNX model (its protobuf message; initializers are read when imported). */
typedef struct sg_onnx_file sg_onnx_file;

/* Read and parse an ONNX file / a buffer of len bytes (only read, never kept). The file is
 * hostile input: anything protobuf cannot decode (truncated, corrupt), a model without a
 * graph, or an initializer that is not a well-formed tensor (data type other than float,
 * double, int32, int64; negative dims or a size that overflows; data whose length does not
 * match the dims; external data) is refused. A new sg_onnx_file (free with sg_onnx_free,
 * before the context), or NULL with an error "sg_onnx_load: <path>: <problem>" /
 * "sg_onnx_parse: <problem>". ctx NULL: NULL. */
sg_onnx_file *sg_onnx_load(sg_ctx *ctx, const char *path);
sg_onnx_file *sg_onnx_parse(sg_ctx *ctx, const void *buf, size_t len);
void sg_onnx_free(sg_onnx_file *f);

/* Load the file's weights into the layers of `model` (made by the caller with the
 * structure the file holds: sizes, cell, directions, bias, GRU reset_after as the nodes'
 * linear_before_reset). The recurrent nodes (LSTM, GRU, RNN, in the graph's order) are the
 * stack's layers, one each; their W, R and B must be initializers (B optional: zeros) of
 * ONNX's shapes for the layer; an LSTM's peepholes P, if present, must be zero; activations,
 * when given, must be the layer's; clip and input_forget are refused. With an embedding,
 * the data input of the first Gather is its table; the Dense layers are the MatMul (or Gemm
 * with transB = 0) nodes with an initializer weight, in order, each bias the initializer of
 * the Add that follows it (or Gemm's C). Values are converted to the layers' dtype (LSTM
 * and SimpleRNN: bias = Wb + Rb; GRU with reset_after: bias = [Wb; Rb], without: Wb + Rb).
 * Everything is checked before anything is copied: on error no layer has changed.
 * Returns 0, or -1 with an error "sg_onnx_import: <path, or 'buffer' when parsed from memory>:
 * <problem>" naming the node and the tensor, e.g. "node 'lstm.l0' (LSTM): W has shape
 * (1, 12, 4), expected (1, 12, 5)" (wrong operator, wrong shape, missing initializer, too few
 * or too many nodes, ...). ctx NULL: -1; f or model NULL: an error. */
int sg_onnx_import(sg_ctx *ctx, const sg_onnx_file *f, const sg_onnx_model *model);

/* Layout converters for ONE direction of a recurrent layer with G gate blocks of H units
 * (G = 4 LSTM, 3 GRU, 1 SimpleRNN) and input size I:
 *   ONNX     W (G*H, I), R (G*H, H), B (2*G*H) = [Wb, Rb]; blocks LSTM i, o, f, c;
 *            GRU z, r, h; W and R act as x @ W^T
 *   Keras    kernel (I, G*H), recurrent_kernel (H, G*H), bias (G*H) or, GRU with
 *            reset_after, (2, 3H) = [input bias; recurrent bias]; blocks LSTM i, f, c, o;
 *            GRU z, r, h
 *   PyTorch  weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh (G*H); blocks LSTM
 *            i, f, g, o; GRU r, z, n (PyTorch's GRU is ONNX's linear_before_reset = 1)
 * Each returns new arena tensors of its input's dtype through the pointers; a bias input may
 * be NULL (no bias), and then the bias outputs are NULL. Keras -> ONNX puts a one-row bias in
 * Wb and zeros in Rb, and ONNX -> Keras adds Rb to Wb (GRU with reset_after: the two rows),
 * so Keras -> ONNX -> PyTorch -> Keras gives back the same values exactly. `reset_after`
 * says which Keras GRU form to make (ignored for the other cells). 0, or -1 with an error
 * "sg_onnx_<from|to>_<keras|torch>: <tensor> has shape .., expected .." (shapes must be
 * consistent: H from the recurrent matrix). */
int sg_onnx_from_keras(sg_ctx *ctx, sg_cell_kind cell, const sg_tensor *kernel,
                       const sg_tensor *recurrent_kernel, const sg_tensor *bias, sg_tensor **W,
                       sg_tensor **R, sg_tensor **B);
int sg_onnx_to_keras(sg_ctx *ctx, sg_cell_kind cell, bool reset_after, const sg_tensor *W,
                     const sg_tensor *R, const sg_tensor *B, sg_tensor **kernel,
                     sg_tensor **recurrent_kernel, sg_tensor **bias);
int sg_onnx_from_torch(sg_ctx *ctx, sg_cell_kind cell, const sg_tensor *weight_ih,
                       const sg_tensor *weight_hh, const sg_tensor *bias_ih,
                       const sg_tensor *bias_hh, sg_tensor **W, sg_tensor **R, sg_tensor **B);
int sg_onnx_to_torch(sg_ctx *ctx, sg_cell_kind cell, const sg_tensor *W, const sg_tensor *R,
                     const sg_tensor *B, sg_tensor **weight_ih, sg_tensor **weight_hh,
                     sg_tensor **bias_ih, sg_tensor **bias_hh);

#ifdef __cplusplus
}
#endif
#endif /* SG_IO_H */
