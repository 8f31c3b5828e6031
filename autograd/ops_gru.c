/* The GRU's gate arithmetic as one op (PyTorch's and Keras' reset_after form), forward and
 * backward side by side. A GRU step composed of primitives records about a dozen small ops,
 * and at an LSTM step's smallest sizes the time goes to the recording, not the arithmetic
 * (bench/README.md); this op does a step's elementwise work in one node:
 *
 *     xp (B, 3H) = x_t @ kernel + b_i, blocks z, r, h (a strided step slice is fine)
 *     hu (B, 3H) = h @ recurrent_kernel + b_h, or NULL (no recurrent term: zeros)
 *     h  (B, H)  = the incoming state, or NULL (zeros)
 *     z = sigmoid(xp_z + hu_z),  r = sigmoid(xp_r + hu_r),  n = tanh(xp_h + r * hu_h)
 *     h' = n + z * (h - n)                                                      (B, H)
 *
 * The forward keeps z, r, n and hu_h of every row in the node's aux (4H elements a row, of
 * the op's dtype), so its backward reads only aux and h:
 *     dh += g z;   dn = g (1 - z);   dz = g (h - n);   da_n = dn (1 - n^2)
 *     dxp_h += da_n;   dhu_h += da_n r;   dr = da_n hu_h
 *     da_z = dz z (1 - z);   da_r = dr r (1 - r);   dxp_z, dhu_z += da_z;   dxp_r, dhu_r += da_r
 * sigmoid and tanh are the vector kernels of tensor/vmath.h, as sg_sigmoid and sg_tanh use. */
#include "ops.h"

/* One row's pointers and strides (elements) of a 2-D view. */
#define ROW(T, t, b) ((t) ? (T *)sg_data(t) + (b) * (t)->stride[0] : NULL)
#define COL(t) ((t) ? (t)->stride[1] : 0)

#define DEF_GRU(T, S)                                                                              \
    /* forward: out (B, H) contiguous; aux rows [z r n hu_h], 4H each */                           \
    static void gru_fw_##S(const sg_tensor *xp, const sg_tensor *hu, const sg_tensor *h,           \
                           sg_tensor *out, T *aux, int64_t B, int64_t H) {                         \
        for (int64_t b = 0; b < B; b++) {                                                          \
            const T *x = ROW(T, xp, b), *u = ROW(T, hu, b), *hp = ROW(T, h, b);                    \
            const int64_t xs = COL(xp), us = COL(hu), hs = COL(h);                                 \
            T *z = aux + b * 4 * H, *r = z + H, *n = r + H, *uh = n + H;                           \
            T *o = (T *)sg_data(out) + b * H;                                                      \
            for (int64_t j = 0; j < 2 * H; j++) /* z and r pre-activations, side by side */        \
                z[j] = x[j * xs] + (u ? u[j * us] : 0);                                            \
            sg_vsigmoid_##S((size_t)(2 * H), z, z);                                                \
            for (int64_t j = 0; j < H; j++) {                                                      \
                uh[j] = u ? u[(2 * H + j) * us] : 0;                                               \
                n[j] = x[(2 * H + j) * xs] + r[j] * uh[j];                                         \
            }                                                                                      \
            sg_vtanh_##S((size_t)H, n, n);                                                         \
            for (int64_t j = 0; j < H; j++)                                                        \
                o[j] = hp ? n[j] + z[j] * (hp[j * hs] - n[j]) : n[j] - z[j] * n[j];                \
        }                                                                                          \
    }                                                                                              \
    /* backward: g (B, H) contiguous; gx, gu (B, 3H), gh (B, H) any 2-D strides or NULL */         \
    static void gru_bw_##S(const T *aux, const sg_tensor *h, const T *g, sg_tensor *gx,            \
                           sg_tensor *gu, sg_tensor *gh, int64_t B, int64_t H) {                   \
        for (int64_t b = 0; b < B; b++) {                                                          \
            const T *z = aux + b * 4 * H, *r = z + H, *n = r + H, *uh = n + H;                     \
            const T *hp = ROW(T, h, b), *gb = g + b * H;                                           \
            T *dx = ROW(T, gx, b), *du = ROW(T, gu, b), *dh = ROW(T, gh, b);                       \
            const int64_t xs = COL(gx), us = COL(gu), hs = COL(gh), ps = COL(h);                   \
            for (int64_t j = 0; j < H; j++) {                                                      \
                T hv = hp ? hp[j * ps] : 0;                                                        \
                T dn = gb[j] * (1 - z[j]), dz = gb[j] * (hv - n[j]);                               \
                T an = dn * (1 - n[j] * n[j]);                                                     \
                T az = dz * z[j] * (1 - z[j]), ar = an * uh[j] * r[j] * (1 - r[j]);                \
                if (dh)                                                                            \
                    dh[j * hs] += gb[j] * z[j];                                                    \
                if (dx) {                                                                          \
                    dx[j * xs] += az;                                                              \
                    dx[(H + j) * xs] += ar;                                                        \
                    dx[(2 * H + j) * xs] += an;                                                    \
                }                                                                                  \
                if (du) {                                                                          \
                    du[j * us] += az;                                                              \
                    du[(H + j) * us] += ar;                                                        \
                    du[(2 * H + j) * us] += an * r[j];                                             \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
DEF_GRU(float, f32)
DEF_GRU(double, f64)

/* A 2-D input of shape (B, cols)? Else an error naming it. */
static bool shape_2d(sg_ctx *ctx, const char *what, const sg_tensor *t, int64_t B, int64_t cols) {
    if (t->ndim == 2 && t->shape[0] == B && t->shape[1] == cols)
        return true;
    char a[96];
    sg_error(ctx, "sg_gru_gates: %s has shape %s, expected (%lld, %lld)", what,
             sg_shape_str(t->ndim, t->shape, a, sizeof a), (long long)B, (long long)cols);
    return false;
}

sg_tensor *sg_gru_gates(sg_ctx *ctx, sg_tensor *xp, sg_tensor *hu, sg_tensor *h) {
    if (!ctx || !xp)
        return NULL;
    if (h && !hu)
        return sg_error(ctx, "sg_gru_gates: h given without hu (its recurrent term)");
    sg_tensor *in[3] = {xp, hu, h};
    const int n = h ? 3 : hu ? 2 : 1;
    if (!sg__check_inputs(ctx, "sg_gru_gates", n, in))
        return NULL;
    if (xp->ndim != 2 || xp->shape[1] % 3 != 0) {
        char a[96];
        return sg_error(ctx, "sg_gru_gates: xp has shape %s, expected (B, 3H)",
                        sg_shape_str(xp->ndim, xp->shape, a, sizeof a));
    }
    const int64_t B = xp->shape[0], H = xp->shape[1] / 3;
    if ((hu && !shape_2d(ctx, "hu", hu, B, 3 * H)) || (h && !shape_2d(ctx, "h", h, B, H)))
        return NULL;
    sg_tensor *out = sg__new(ctx, "sg_gru_gates", xp->dtype, 2, (int64_t[]){B, H}, false);
    const int64_t naux = 4 * B * H; /* z, r, n, hu_h of every row */
    void *aux = sg_arena_alloc(ctx, (size_t)(naux > 0 ? naux : 1) * sg_dtype_size(xp->dtype));
    if (!out || !aux)
        return NULL;
    if (xp->dtype == SG_F32)
        gru_fw_f32(xp, hu, h, out, aux, B, H);
    else
        gru_fw_f64(xp, hu, h, out, aux, B, H);
    out->aux = aux;
    return sg__finish(ctx, out, SG_OP_GRU_GATES, n, in);
}

void sg__bw_gru_gates(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *gr[3] = {NULL, NULL, NULL};
    for (int k = 0; k < out->nsrc; k++)
        if (sg__needs(out, k) && !(gr[k] = sg__grad(ctx, out->src[k])))
            return;
    const sg_tensor *h = out->nsrc > 2 ? out->src[2] : NULL;
    const int64_t B = out->shape[0], H = out->shape[1];
    if (out->dtype == SG_F32)
        gru_bw_f32(out->aux, h, sg_data(out->grad), gr[0], gr[1], gr[2], B, H);
    else
        gru_bw_f64(out->aux, h, sg_data(out->grad), gr[0], gr[1], gr[2], B, H);
}
