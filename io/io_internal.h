/* Internal helpers shared by io/safetensors.c and io/checkpoint.c. Not installed. */
#ifndef SG_IO_INTERNAL_H
#define SG_IO_INTERNAL_H

#include "io.h"

/* sg_safetensors_load / sg_safetensors_save, with errors prefixed "<fn>: <path>: " so
 * that a checkpoint reports "sg_checkpoint_load: ..." whatever layer found the problem.
 * With crc_key non-NULL the save adds the metadata entry crc_key = the CRC-32 of every
 * tensor (sg__io_tensor_crc32), 8 lower-case hex digits each, separated by single spaces,
 * in the file's tensor order (sorted by name); "" when there are no tensors. */
sg_st_file *sg__st_load(sg_ctx *ctx, const char *fn, const char *path);
/* sg__st_load when buf is NULL; else the len bytes at buf parsed, `path` naming them in
 * messages. */
sg_st_file *sg__st_open(sg_ctx *ctx, const char *fn, const char *path, const void *buf, size_t len);
int sg__st_save(sg_ctx *ctx, const char *fn, const char *path, const sg_param_list *tensors,
                const char *const *metadata, const char *crc_key);

/* Write n bytes to path atomically, as sg_safetensors_save writes a file (temporary file,
 * fsync, rename, directory fsync; see io.h), with errors "<fn>: <path>: <problem>". 0 or -1.
 * The failure points below apply to it too. */
int sg__io_save_atomic(sg_ctx *ctx, const char *fn, const char *path, const void *bytes, size_t n);
/* Read a whole regular file into a new sg_malloc'ed buffer (*len bytes; free with sg_free),
 * refusing directories, devices and FIFOs before reading. NULL with an error
 * "<fn>: <path>: <problem>". */
unsigned char *sg__io_read_file(sg_ctx *ctx, const char *fn, const char *path, size_t *len);

/* ---- testing hook (tests include this header) ----------------------------------------- */

/* Failure injection for the atomic save. 0 (the default) injects nothing; otherwise the
 * next saves
 *   SG_IO_FAIL_BEFORE_RENAME    fail after the temporary file is written, synced and named,
 *                               just before the rename ("... injected failure before rename");
 *   SG_IO_FAIL_WRITE            fail every write to the temporary file (EIO);
 *   SG_IO_FAIL_EXIT_WRITE       _exit(99) after the header is written, as if killed while
 *                               writing the data;
 *   SG_IO_FAIL_EXIT_BEFORE_RENAME  _exit(99) where SG_IO_FAIL_BEFORE_RENAME fails, as if
 *                               killed just before the rename.
 * Any of them (or none) may be or'ed with SG_IO_FAIL_NO_TMPFILE: behave as on a file system
 * without O_TMPFILE, where the bytes go to a named temporary file from the start (the
 * fallback). The two EXIT values are for a forked child. Not thread-safe: for tests only. */
enum {
    SG_IO_FAIL_NONE = 0,
    SG_IO_FAIL_BEFORE_RENAME = 1,
    SG_IO_FAIL_WRITE = 2,
    SG_IO_FAIL_EXIT_WRITE = 3,
    SG_IO_FAIL_EXIT_BEFORE_RENAME = 4,
    SG_IO_FAIL_NO_TMPFILE = 16, /* a flag */
};
extern int sg__io_fail_point;

/* A path to read or write: not NULL, not empty. False with "<fn>: NULL path" or
 * "<fn>: empty path" (checked before anything uses the path as a label). */
bool sg__io_path_ok(sg_ctx *ctx, const char *fn, const char *path);

/* Record "<fn>: <label>: <message>" (or "<fn>: <message>" when label is NULL). */
void sg__io_error(sg_ctx *ctx, const char *fn, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* After a callee failed: when `clean` (ctx held no error before the call) and the callee
 * recorded one, replace it with "<fn>: <label>: <what>: <the callee's message>", so that
 * the message names the file; else record "<fn>: <label>: <what>". */
void sg__io_rewrap(sg_ctx *ctx, bool clean, const char *fn, const char *label, const char *what);

/* ---- names in messages ----------------------------------------------------------------- */

/* Every name io prints (tensor names, metadata keys and values) goes through sg__io_name:
 * quoted ('' for an empty name, so that "unexpected tensor ''" is readable), with control
 * characters, quotes, backslashes and invalid UTF-8 escaped (\n, \t, \r, \', \\, \xHH,
 * \u0080 .. \u009f for C1 controls), and shortened to its first SG_IO_NAME_CHARS
 * characters followed by "..." after the closing quote. Writes into buf (SG_IO_QN_SIZE
 * bytes) and returns it. SG_IO_QN(name) gives it a buffer that lives until the end of the
 * enclosing block (a compound literal): sg__io_error(..., "tensor %s", SG_IO_QN(name)). */
#define SG_IO_NAME_CHARS 96 /* the longest derived name ("optim." + 63 + ".max_exp_avg_sq") */
#define SG_IO_QN_SIZE (SG_IO_NAME_CHARS * 6 + 8)
const char *sg__io_name(char *buf, const char *name);
#define SG_IO_QN(name) sg__io_name((char[SG_IO_QN_SIZE]){0}, (name))

/* Is s valid UTF-8 (strict: no overlong forms, surrogates or code points past U+10FFFF)? */
bool sg__io_utf8_valid(const char *s);

/* ---- checksums ------------------------------------------------------------------------- */

/* CRC-32 (the IEEE polynomial of zlib, gzip and PNG: Python's zlib.crc32) of tensor `t`
 * (called `name` in messages), its values as a safetensors file stores them (row-major,
 * little-endian), any strides. Returns 0, or -1 with an error "<fn>: <label>: ..." (a view it
 * cannot copy, out of memory). */
int sg__io_tensor_crc32(sg_ctx *ctx, const char *fn, const char *label, const char *name,
                        const sg_tensor *t, uint32_t *crc);

#endif
