/* Tensors filled from literal values, for the tests: mk (doubles) and mk_int (integers).
 * Header-only: each test is one translation unit. Needs <check.h> and tensor/tensor.h before
 * it. */
#ifndef SG_TESTS_TENSORTEST_H
#define SG_TESTS_TENSORTEST_H

/* A new contiguous tensor of dtype dt and shape shape[nd] holding v[0 .. numel) row-major
 * (rounded to dt); the test fails if it cannot be made or filled. */
static inline sg_tensor *mk(sg_ctx *ctx, sg_dtype dt, int nd, const int64_t *shape,
                            const double *v) {
    sg_tensor *t = sg_tensor_new(ctx, dt, nd, shape);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < sg_numel(t); i++)
        ck_assert_int_eq(sg_set_flat(t, i, v[i]), 0);
    return t;
}

/* mk for integer values (an integer dtype: SG_I64 or SG_I32). */
static inline sg_tensor *mk_int(sg_ctx *ctx, sg_dtype dt, int nd, const int64_t *shape,
                                const int64_t *v) {
    sg_tensor *t = sg_tensor_new(ctx, dt, nd, shape);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < sg_numel(t); i++)
        ck_assert_int_eq(sg_set_flat(t, i, (double)v[i]), 0);
    return t;
}

#endif
