/* Internal helpers shared by io/safetensors.c and io/checkpoint.c. Not installed. */
#ifndef SG_IO_INTERNAL_H
#define SG_IO_INTERNAL_H

#include "io.h"

/* sg_safetensors_load / sg_safetensors_save, with errors prefixed "<fn>: <path>: " so
 * that a checkpoint reports "sg_checkpoint_load: ..." whatever layer found the problem. */
sg_st_file *sg__st_load(sg_ctx *ctx, const char *fn, const char *path);
int sg__st_save(sg_ctx *ctx, const char *fn, const char *path, const sg_param_list *tensors,
                const char *const *metadata);

/* ---- testing hook (tests include this header) ----------------------------------------- */

/* Failure injection for the atomic save: when set to SG_IO_FAIL_BEFORE_RENAME, the next
 * saves fail after the temporary file is written and synced, just before the rename
 * (error "... injected failure before rename"); SG_IO_FAIL_WRITE fails every write to
 * the temporary file. 0 (the default) injects nothing. Not thread-safe: for tests only. */
enum { SG_IO_FAIL_NONE = 0, SG_IO_FAIL_BEFORE_RENAME = 1, SG_IO_FAIL_WRITE = 2 };
extern int sg__io_fail_point;

/* Record "<fn>: <label>: <message>" (or "<fn>: <message>" when label is NULL). */
void sg__io_error(sg_ctx *ctx, const char *fn, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
