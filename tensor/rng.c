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

/* The all-zero state is xoshiro's one fixed point: from it the generator returns 0 forever,
 * and the rejection loops below would never end. sg_rng_seed cannot make it, but a state
 * set by hand or read from a file can be anything, so the generator leaves it the way a
 * seeded one starts: as if sg_rng_seed(SG_RNG_ZERO_STATE_SEED) had been called (the spare
 * normal is kept). Every other state is used as it is. */
static void leave_zero_state(sg_rng *rng) {
    uint64_t x = SG_RNG_ZERO_STATE_SEED;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

bool sg_rng_state_valid(const sg_rng *rng) {
    if (!rng || !(rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]))
        return false;
    return !rng->has_spare || isfinite(rng->spare);
}

uint64_t sg_rng_next(sg_rng *rng) {
    if (!rng)
        return 0;
    uint64_t *s = rng->s;
    if (__builtin_expect(!(s[0] | s[1] | s[2] | s[3]), 0))
        leave_zero_state(rng);
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
    if (!rng)
        return NAN;
    /* The top 53 bits fill a double's mantissa exactly: every result is a multiple of
     * 2^-53 in [0, 1), and the high bits are the generator's best. */
    return (double)(sg_rng_next(rng) >> 11) * 0x1.0p-53;
}

/* Most draws of a rejection loop. A draw is rejected with probability below 1/2 (the polar
 * method's 1 - pi/4, sg_rng_below's at most 1/2), so SG_RNG_MAX_TRIES rejections in a row
 * happen with probability below 2^-64: never, for a working generator. The bound only
 * guarantees that every function returns, whatever the state. */
#define SG_RNG_MAX_TRIES 64

double sg_rng_normal(sg_rng *rng) {
    if (!rng)
        return NAN;
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare;
    }
    for (int k = 0; k < SG_RNG_MAX_TRIES; k++) {
        const double u = 2.0 * sg_rng_uniform(rng) - 1.0;
        const double v = 2.0 * sg_rng_uniform(rng) - 1.0;
        const double s = u * u + v * v;
        if (s >= 1.0 || s == 0.0)
            continue;
        const double f = sqrt(-2.0 * log(s) / s);
        rng->spare = v * f;
        rng->has_spare = 1;
        return u * f;
    }
    return 0.0; /* unreachable in practice, see SG_RNG_MAX_TRIES */
}

uint64_t sg_rng_below(sg_rng *rng, uint64_t n) {
    if (!rng || n == 0) /* empty range: nothing sensible to return, and no error channel here */
        return 0;
    /* Reject the lowest (2^64 mod n) values so that the accepted range is a whole number of
     * copies of [0, n); then x mod n is exactly uniform. -n % n computes 2^64 mod n in
     * 64-bit arithmetic. Plain modular rejection (rather than Lemire's 128-bit multiply)
     * keeps the result identical on compilers without __int128. */
    const uint64_t threshold = (0 - n) % n;
    uint64_t x = sg_rng_next(rng);
    for (int k = 1; x < threshold && k < SG_RNG_MAX_TRIES; k++)
        x = sg_rng_next(rng);
    return x % n;
}
