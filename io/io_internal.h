/* Internal helpers shared by io/safetensors.c and io/checkpoint.c. Not installed. */
#ifndef SG_IO_INTERNAL_H
#define SG_IO_INTERNAL_H

#include "io.h"

/* sg_safetensors_load / sg_safetensors_save, with errors prefixed "<fn>: <path>: " so
 * that a checkpoint reports "sg_checkpoint_load: ..." whatever layer found the problem. */
sg_st_file *sg__st_load(sg_ctx *ctx, const char *fn, const char *path);
int sg__st_save(sg_ctx *ctx, const char *fn, const char *path, const sg_param_list *tensors,
                const char *const *metadata);

/* Record "<fn>: <label>: <message>" (or "<fn>: <message>" when label is NULL). */
void sg__io_error(sg_ctx *ctx, const char *fn, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
