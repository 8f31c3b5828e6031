/* Random numbers: xoshiro256** seeded through splitmix64.
 *
 * References:
 *  - D. Blackman, S. Vigna, "Scrambled Linear Pseudorandom Number Generators",
 *    ACM Trans. Math. Softw. 47(4), 2021; reference code https://prng.di.unimi.it/
 *    (xoshiro256starstar.c, splitmix64.c). Vigna recommends seeding xoshiro from the
 *    output of splitmix64 so that nearby seeds give unrelated, never all-zero, states.
 *  - G. Marsaglia, T. A. Bray, "A Convenient Method for Generating Normal Variables",
 *    SIAM Review 6(3), 1964 (the polar method).
 *  - D. Lemire, "Fast Random Integer Generation in an Interval", ACM TOMACS 29(1), 2019,
 *    for the rejection threshold 2^64 mod n used by sg_rng_below.
 *
 * Everything is integer arithmetic except the polar method, which needs only log and sqrt
 * (sqrt is exact-rounded by IEEE 754, glibc's log is deterministic), so a seed gives the
 * same stream on every machine we build on.
 */
#include <math.h>

#include "tensor.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void sg_rng_seed(sg_rng *rng, uint64_t seed) {
    if (!rng)
        return;
    uint64_t x = seed;
    /* splitmix64 is a bijection on its counter, so four consecutive outputs cannot all be
     * zero: the all-zero state, xoshiro's only fixed point, is unreachable. */
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
    /* A spare normal belongs to the old stream; keeping it would make the first normal
     * after a reseed depend on history. */
    rng->spare = 0.0;
    rng->has_spare = 0;
}

uint64_t sg_rng_next(sg_rng *rng) {
    uint64_t *s = rng->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sg_rng_uniform(sg_rng *rng) {
    /* The top 53 bits fill a double's mantissa exactly: every result is a multiple of
     * 2^-53 in [0, 1), and the high bits are the generator's best. */
    return (double)(sg_rng_next(rng) >> 11) * 0x1.0p-53;
}

double sg_rng_normal(sg_rng *rng) {
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * sg_rng_uniform(rng) - 1.0;
        v = 2.0 * sg_rng_uniform(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double f = sqrt(-2.0 * log(s) / s);
    rng->spare = v * f;
    rng->has_spare = 1;
    return u * f;
}

uint64_t sg_rng_below(sg_rng *rng, uint64_t n) {
    if (n == 0) /* empty range: nothing sensible to return, and no error channel here */
        return 0;
    /* Reject the lowest (2^64 mod n) values so that the accepted range is a whole number of
     * copies of [0, n); then x mod n is exactly uniform. -n % n computes 2^64 mod n in
     * 64-bit arithmetic. Plain modular rejection (rather than Lemire's 128-bit multiply)
     * keeps the result identical on compilers without __int128. */
    const uint64_t threshold = (0 - n) % n;
    uint64_t x;
    do
        x = sg_rng_next(rng);
    while (x < threshold);
    return x % n;
}
