/* The LSTM's gate arithmetic as one op (Keras' default activations), forward and backward
 * side by side. Composed of primitives, an LSTM step's elementwise part records about a
 * dozen small ops (the activations, the gate slices, two products, a sum, tanh, a product),
 * each writing its result and each backward reading its inputs back from memory; this op
 * does a step's elementwise work in one node, as sg_gru_gates does for the GRU:
 *
 *     z (B, 4H), blocks i, f, c~, o (Keras' order; any 2-D strides: a step's block of the
 *     projections), c (B, H) the incoming cell state, or NULL (zeros), bias (4H) or NULL
 *     a = z + bias (each row)
 *     i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_c~), o = sigmoid(a_o)
 *     c' = f c + i g,  h' = o tanh(c')       out (B, 2H) = [h' | c']
 *
 * The forward keeps i, f, g, o and tanh(c') of every row in the node's aux (5H elements a
 * row, of the op's dtype; sg_lstm_gates_ keeps i, f, g, o over z itself), so its backward
 * reads only them and c. With dh, dc' the two halves
 * of out's gradient:
 *     dc = dc' + dh o (1 - tanh(c')^2);   c's gradient += dc f
 *     dz_i += dc g i (1 - i);   dz_f += dc c f (1 - f);   dz_c~ += dc i (1 - g^2);
 *     dz_o += dh tanh(c') o (1 - o);   bias's gradient += the rows' sum of those dz terms
 * The bias here, not in the projection x @ kernel + bias, saves the fused LSTM a copy of the
 * bias into every row of the (T, B, 4H) projections and a pass over their gradient to sum it
 * (bench/README.md has the measurement): the rows are read here anyway.
 * sigmoid and tanh are the vector kernels of tensor/vmath.h, as sg_sigmoid and sg_tanh use. */
#include <string.h>

#include "ops.h"

/* One row's pointer and column stride (elements) of a 2-D view, or NULL and 0. */
#define ROW(T, t, b) ((t) ? (T *)sg_data(t) + (b) * (t)->stride[0] : NULL)
#define COL(t) ((t) ? (t)->stride[1] : 0)

/* Where the activations lie: gate q (i, f, g, o) of row b at act + b * rs + q * qs, each H
 * elements contiguous; tanh(c') of row b at tc + b * H. */
typedef struct {
    void *act, *tc;
    int64_t rs, qs;
} acts;

/* One row of the backward with unit strides (the common case, which vectorizes). The flags
 * are constants at each call below, so each call is its own loop without branches. */
#define DEF_LSTM_ROW(T, S)                                                                         \
    static inline __attribute__((always_inline)) void lstm_bw_row_##S(                             \
        bool hasc, bool hasdc, bool hasdb, bool set, int64_t H, const T *restrict i,               \
        const T *restrict f, const T *restrict g, const T *restrict o, const T *restrict tc,       \
        const T *restrict cp, const T *restrict gr, T *restrict dz, T *restrict dcp,               \
        T *restrict db) {                                                                          \
        /* ivdep: eleven streams need more runtime alias checks than GCC makes (its default        \
         * vect-max-version-for-alias-checks is 10), and without it this loop ran scalar */        \
        _Pragma("GCC ivdep") for (int64_t j = 0; j < H; j++) {                                     \
            T dh = gr[j], dc = gr[H + j] + dh * o[j] * (1 - tc[j] * tc[j]);                        \
            T di = dc * g[j] * i[j] * (1 - i[j]), dg = dc * i[j] * (1 - g[j] * g[j]);              \
            T df = hasc ? dc * cp[j] * f[j] * (1 - f[j]) : 0,                                      \
              dout = dh * tc[j] * o[j] * (1 - o[j]);                                               \
            if (hasdc)                                                                             \
                dcp[j] += dc * f[j];                                                               \
            if (set) { /* dz not there yet (sg__grad_set): stored, the f block's 0 too */          \
                dz[j] = di;                                                                        \
                dz[H + j] = df;                                                                    \
                dz[2 * H + j] = dg;                                                                \
                dz[3 * H + j] = dout;                                                              \
            } else {                                                                               \
                dz[j] += di;                                                                       \
                if (hasc)                                                                          \
                    dz[H + j] += df;                                                               \
                dz[2 * H + j] += dg;                                                               \
                dz[3 * H + j] += dout;                                                             \
            }                                                                                      \
            if (hasdb) {                                                                           \
                db[j] += di;                                                                       \
                db[H + j] += df;                                                                   \
                db[2 * H + j] += dg;                                                               \
                db[3 * H + j] += dout;                                                             \
            }                                                                                      \
        }                                                                                          \
    }

/* d = x + y, unit strides (z's block plus the bias into the activations' buffer) */
#define DEF_LSTM_ADD(T, S)                                                                         \
    static inline __attribute__((always_inline)) void lstm_add_##S(int64_t n, const T *x,          \
                                                                   const T *restrict y, T *d) {    \
        _Pragma("GCC ivdep") for (int64_t j = 0; j < n; j++) d[j] = x[j] + y[j];                   \
    }

/* One unit-stride row of the backward, inside lstm_bw below: lstm_bw_row with its flags as
 * constants (c and its gradient, c alone, neither; DB whether db is there, SET whether dz is
 * stored), one loop each. */
#define LSTM_BW_ROW(S, DB, SET)                                                                    \
    (dcp  ? lstm_bw_row_##S(true, true, DB, SET, H, ai, af, ag, ao, tc, cp, gr, dz, dcp, db)       \
     : cp ? lstm_bw_row_##S(true, false, DB, SET, H, ai, af, ag, ao, tc, cp, gr, dz, NULL, db)     \
          : lstm_bw_row_##S(false, false, DB, SET, H, ai, af, ag, ao, tc, NULL, gr, dz, NULL, db))

/* STORE: the unit-stride rows store dz when `set` (their own loops, as many again); without,
 * such rows are zeroed first and added into: the plain variants, for few elements, where the
 * extra loops' code costs more than the stores save */
#define DEF_LSTM(T, S, V, ATTR, STORE)                                                             \
    /* forward: out (B, 2H) contiguous. Not in place (ip false), z is copied into a.act by         \
     * gate (qs = B * H, rs = H), so that each activation is one call over every row; in           \
     * place, a.act is z itself (unit-stride columns) and each row is activated by itself. */      \
    ATTR static void lstm_fw_##S##V(const sg_tensor *z, const sg_tensor *c, const sg_tensor *bias, \
                                    sg_tensor *out, acts a, bool ip, int64_t B, int64_t H) {       \
        T *act = a.act, *tc = a.tc;                                                                \
        const int64_t zs = COL(z), cs = COL(c);                                                    \
        const T *bv = bias ? (const T *)sg_data(bias) : NULL;                                      \
        const int64_t bs = bias ? bias->stride[0] : 0;                                             \
        for (int64_t b = 0; !ip && b < B; b++) {                                                   \
            const T *zr = ROW(T, z, b);                                                            \
            for (int q = 0; q < 4; q++) {                                                          \
                T *restrict d = act + b * a.rs + q * a.qs;                                         \
                const T *zq = zr + q * H * zs, *bq = bv ? bv + q * H * bs : NULL;                  \
                if (bq && zs == 1 && bs == 1) /* no memcpy call: on small steps H is a few */      \
                    lstm_add_##S(H, zq, bq, d);                                                    \
                else if (bq)                                                                       \
                    for (int64_t j = 0; j < H; j++)                                                \
                        d[j] = zq[j * zs] + bq[j * bs];                                            \
                else                                                                               \
                    for (int64_t j = 0; j < H; j++)                                                \
                        d[j] = zq[j * zs];                                                         \
            }                                                                                      \
        }                                                                                          \
        if (ip && bv && bs != 1) /* z's own rows (unit-stride columns) += the bias */              \
            sg__strided(true, bias->dtype, act, (int64_t[]){a.rs, 1}, bv, (int64_t[]){0, bs}, 2,   \
                        (int64_t[]){B, 4 * H});                                                    \
        for (int64_t b = 0; b < (ip ? B : 1); b++) {                                               \
            T *r = act + b * a.rs;                                                                 \
            size_t n = (size_t)(ip ? H : B * H);                                                   \
            if (ip && bv && bs == 1) /* the row += the bias, in cache for the activations */       \
                lstm_add_##S(4 * H, r, bv, r);                                                     \
            sg_vsigmoid_##S(2 * n, r, r); /* i, f: side by side in both layouts */                 \
            sg_vtanh_##S(n, r + 2 * a.qs, r + 2 * a.qs);                                           \
            sg_vsigmoid_##S(n, r + 3 * a.qs, r + 3 * a.qs);                                        \
        }                                                                                          \
        for (int64_t b = 0; b < B; b++) {                                                          \
            const T *r = act + b * a.rs, *cp = ROW(T, c, b);                                       \
            T *cn = tc + b * H, *co = (T *)sg_data(out) + b * 2 * H + H;                           \
            for (int64_t j = 0; j < H; j++) { /* c' into out, and into tc for its tanh */          \
                T v = r[j] * r[2 * a.qs + j];                                                      \
                if (cp)                                                                            \
                    v += r[a.qs + j] * cp[j * cs];                                                 \
                cn[j] = co[j] = v;                                                                 \
            }                                                                                      \
        }                                                                                          \
        sg_vtanh_##S((size_t)(B * H), tc, tc);                                                     \
        for (int64_t b = 0; b < B; b++) {                                                          \
            const T *o = act + b * a.rs + 3 * a.qs, *t = tc + b * H;                               \
            T *h = (T *)sg_data(out) + b * 2 * H;                                                  \
            for (int64_t j = 0; j < H; j++)                                                        \
                h[j] = o[j] * t[j];                                                                \
        }                                                                                          \
    }                                                                                              \
    /* backward: g (B, 2H) any 2-D strides; gz (B, 4H), gc (B, H) any 2-D strides or NULL; gb      \
     * (4H) any stride or NULL; set: gz stored, not added to */                                    \
    ATTR static void lstm_bw_##S##V(acts a, const sg_tensor *c, const sg_tensor *g, sg_tensor *gz, \
                                    sg_tensor *gc, sg_tensor *gb, int64_t B, int64_t H,            \
                                    bool set) {                                                    \
        T *db = gb ? (T *)sg_data(gb) : NULL;                                                      \
        const int64_t bs = gb ? gb->stride[0] : 0;                                                 \
        for (int64_t b = 0; b < B; b++) {                                                          \
            const T *ai = (const T *)a.act + b * a.rs, *af = ai + a.qs, *ag = af + a.qs;           \
            const T *ao = ag + a.qs, *tc = (const T *)a.tc + b * H, *cp = ROW(T, c, b);            \
            const T *gr = ROW(T, g, b);                                                            \
            T *dz = ROW(T, gz, b), *dcp = ROW(T, gc, b);                                           \
            const int64_t gs = COL(g), zs = COL(gz), cs = COL(gc), ps = COL(c);                    \
            if (dz && zs == 1 && gs == 1 && (!dcp || cs == 1) && (!cp || ps == 1) &&               \
                (!db || bs == 1)) {                                                                \
                if (set && !STORE)                                                                 \
                    memset(dz, 0, (size_t)(4 * H) * sizeof(T));                                    \
                if (db)                                                                            \
                    set &&STORE ? LSTM_BW_ROW(S, true, true) : LSTM_BW_ROW(S, true, false);        \
                else                                                                               \
                    set &&STORE ? LSTM_BW_ROW(S, false, true) : LSTM_BW_ROW(S, false, false);      \
                continue;                                                                          \
            }                                                                                      \
            for (int64_t j = 0; j < H; j++) {                                                      \
                T i = ai[j], f = af[j], gg = ag[j], o = ao[j], t = tc[j];                          \
                T dh = gr[j * gs], dc = gr[(H + j) * gs] + dh * o * (1 - t * t);                   \
                T d[4] = {dc * gg * i * (1 - i), cp ? dc * cp[j * ps] * f * (1 - f) : 0,           \
                          dc * i * (1 - gg * gg), dh * t * o * (1 - o)};                           \
                if (dcp)                                                                           \
                    dcp[j * cs] += dc * f;                                                         \
                for (int q = 0; q < 4; q++) {                                                      \
                    if (dz)                                                                        \
                        dz[(q * H + j) * zs] = (set ? 0 : dz[(q * H + j) * zs]) + d[q];            \
                    if (db)                                                                        \
                        db[(q * H + j) * bs] += d[q];                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
DEF_LSTM_ROW(float, f32)
DEF_LSTM_ROW(double, f64)
DEF_LSTM_ADD(float, f32)
DEF_LSTM_ADD(double, f64)
/* Each twice: compiled for AVX-512 and AVX2 too (SG__SIMD_CLONES), for steps of many
 * elements (LSTM_WIDE); and plain, for tiny ones, where the clones' indirect call costs more
 * than the wider vectors save (bench/README.md). */
DEF_LSTM(float, f32, _v, SG__SIMD_CLONES, true)
DEF_LSTM(double, f64, _v, SG__SIMD_CLONES, true)
DEF_LSTM(float, f32, , , false)
DEF_LSTM(double, f64, , , false)
#define LSTM_WIDE 1024 /* B * H from which the clones run */

/* The activations of node out (its aux and iparam[0] set) over z. */
static acts lstm_acts(const sg_tensor *out, const sg_tensor *z) {
    const int64_t B = out->shape[0], H = out->shape[1] / 2, es = (int64_t)sg_dtype_size(z->dtype);
    char *aux = out->aux;
    if (out->iparam[0]) /* in place: z's rows */
        return (acts){sg_data(z), aux, z->stride[0], H};
    return (acts){aux + B * H * es, aux, H, B * H};
}

static sg_tensor *lstm_gates(sg_ctx *ctx, const char *fn, sg_tensor *z, sg_tensor *c,
                             sg_tensor *bias, bool ip) {
    if (!ctx || !z)
        return NULL;
    sg_tensor *in[3] = {z, c ? c : bias, c ? bias : NULL};
    const int n = 1 + (c != NULL) + (bias != NULL);
    if (!sg__check_inputs(ctx, fn, n, in))
        return NULL;
    char s1[96];
    if (z->ndim != 2 || z->shape[1] % 4 != 0)
        return sg_error(ctx, "%s: z has shape %s, expected (B, 4H)", fn,
                        sg_shape_str(z->ndim, z->shape, s1, sizeof s1));
    const int64_t B = z->shape[0], H = z->shape[1] / 4;
    if (c && (c->ndim != 2 || c->shape[0] != B || c->shape[1] != H))
        return sg_error(ctx, "%s: c has shape %s, expected (%lld, %lld)", fn,
                        sg_shape_str(c->ndim, c->shape, s1, sizeof s1), (long long)B, (long long)H);
    if (bias && (bias->ndim != 1 || bias->shape[0] != 4 * H))
        return sg_error(ctx, "%s: bias has shape %s, expected (%lld,)", fn,
                        sg_shape_str(bias->ndim, bias->shape, s1, sizeof s1), (long long)(4 * H));
    if (ip && !sg__inplace_check(ctx, fn, z, n - 1, in + 1, false))
        return NULL;
    /* in place: the activations over z's own columns when they are unit-stride */
    ip = ip && z->stride[1] == 1;
    sg_tensor *out = sg__new(ctx, fn, z->dtype, 2, (int64_t[]){B, 2 * H}, false);
    /* aux: tanh(c') (B, H), then unless ip i, f, g, o by gate (4, B, H) */
    const int64_t es = (int64_t)sg_dtype_size(z->dtype), naux = (ip ? 1 : 5) * B * H;
    char *aux = sg_arena_alloc(ctx, (size_t)((naux > 0 ? naux : 1) * es));
    if (!out || !aux)
        return NULL;
    out->aux = aux;
    out->iparam[0] = ip;
    out->iparam[1] = (c ? 1 : 0) | (bias ? 2 : 0);
    acts a = lstm_acts(out, z);
    bool wide = B * H >= LSTM_WIDE;
    if (z->dtype == SG_F32)
        (wide ? lstm_fw_f32_v : lstm_fw_f32)(z, c, bias, out, a, ip, B, H);
    else
        (wide ? lstm_fw_f64_v : lstm_fw_f64)(z, c, bias, out, a, ip, B, H);
    out = sg__finish(ctx, out, SG_OP_LSTM_GATES, n, in);
    if (out && ip && (out->flags & SG_FLAG_ON_TAPE)) {
        /* backward reads the activations in z: mark that block, as an in-place result read
         * by a recorded backward is marked (sg__save), so that no later in-place op writes
         * there, while the rest of z's buffer stays writable */
        sg_tensor *m = sg__inplace_result(ctx, z);
        if (!m)
            return NULL;
        sg__save_inplace(ctx, m);
    }
    return out;
}

sg_tensor *sg_lstm_gates(sg_ctx *ctx, sg_tensor *z, sg_tensor *c, sg_tensor *bias) {
    return lstm_gates(ctx, "sg_lstm_gates", z, c, bias, false);
}

sg_tensor *sg_lstm_gates_(sg_ctx *ctx, sg_tensor *z, sg_tensor *c, sg_tensor *bias) {
    return lstm_gates(ctx, "sg_lstm_gates_", z, c, bias, true);
}

/* Inputs: z, then c when there is one, then bias when there is one (iparam[1]: 1 for c,
 * 2 for bias). */
void sg__bw_lstm_gates(sg_ctx *ctx, sg_tensor *out) {
    sg_tensor *gr[3] = {NULL, NULL, NULL};
    bool set = false; /* z's gradient is stored (sg__grad_set: every element is written) */
    for (int k = 0; k < out->nsrc; k++)
        if (sg__needs(out, k) &&
            !(gr[k] = k ? sg__grad(ctx, out->src[k]) : sg__grad_set(ctx, out->src[k], &set)))
            return;
    const bool hasc = out->iparam[1] & 1, hasb = out->iparam[1] & 2;
    const sg_tensor *z = out->src[0], *c = hasc ? out->src[1] : NULL;
    sg_tensor *gz = gr[0], *gc = hasc ? gr[1] : NULL, *gb = hasb ? gr[1 + hasc] : NULL;
    const int64_t B = out->shape[0], H = out->shape[1] / 2;
    bool wide = B * H >= LSTM_WIDE;
    if (out->dtype == SG_F32)
        (wide ? lstm_bw_f32_v : lstm_bw_f32)(lstm_acts(out, z), c, out->grad, gz, gc, gb, B, H,
                                             set);
    else
        (wide ? lstm_bw_f64_v : lstm_bw_f64)(lstm_acts(out, z), c, out->grad, gz, gc, gb, B, H,
                                             set);
}
