/* Fused CPU passes for kink masks and kink counts (see kinkgrad/_native.py, the only caller).
 *
 * Each function reads contiguous float32 or float64 buffers by address, in one or two passes, where the
 * same result through PyTorch's eager operators takes three to twelve (one kernel per operator). Every
 * result is defined by plain IEEE comparisons, exactly as the PyTorch expressions they replace
 * (tests/test_native.py checks each against them). The GIL is released while a pass runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define HAVE_SSE2 1
#endif

#if defined(_MSC_VER) && !defined(__clang__)
#define restrict __restrict
#endif

/* On x86-64 Linux a pass marked CLONES is compiled twice, for AVX2 and for the baseline instruction
 * set, and the loader picks the one the machine runs (GCC's target_clones). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

/* On x86-64 with GCC or Clang, a pass may also come as AVX2 intrinsics (functions marked AVX2), called
 * only when the machine has AVX2 (use_avx2, set when the module loads). */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX2 1
#define AVX2 __attribute__((target("avx2,popcnt")))
static int use_avx2 = 0;
#endif

/* Counts are summed per block in 32-bit lanes (no overflow within a block), then into 64 bits. */
#define BLOCK 4096

#define EQUAL(NAME, T)                                                                                  \
    CLONES static int64_t NAME(const T *x, int64_t n, T point, uint8_t *out) {                          \
        int64_t total = 0;                                                                              \
        for (int64_t start = 0; start < n; start += BLOCK) {                                            \
            int64_t stop = start + BLOCK < n ? start + BLOCK : n;                                       \
            uint32_t count = 0;                                                                         \
            for (int64_t i = start; i < stop; i++) {                                                    \
                uint8_t e = x[i] == point;                                                              \
                out[i] = e;                                                                             \
                count += e;                                                                             \
            }                                                                                           \
            total += count;                                                                             \
        }                                                                                               \
        return total;                                                                                   \
    }
EQUAL(equal_f32, float)
EQUAL(equal_f64, double)

/* Whether some x[i] == point: reads block by block, stops after the first block that holds one, writes
 * nothing (where no entry is at the kink, the usual case, this is cheaper than EQUAL's mask). */
#define ANY_EQUAL(NAME, T)                                                                              \
    CLONES static int NAME(const T *x, int64_t n, T point) {                                            \
        for (int64_t start = 0; start < n; start += BLOCK) {                                            \
            int64_t stop = start + BLOCK < n ? start + BLOCK : n;                                       \
            int hit = 0;                                                                                \
            for (int64_t i = start; i < stop; i++)                                                      \
                hit |= x[i] == point;                                                                   \
            if (hit)                                                                                    \
                return 1;                                                                               \
        }                                                                                               \
        return 0;                                                                                       \
    }
ANY_EQUAL(any_equal_f32, float)
ANY_EQUAL(any_equal_f64, double)

/* Entries with |x| <= tol, tol = (T)(scale * rel), scale = the largest finite |x| (0 when none); NaN is
 * never near. A first pass reads the bits as signed integers (compares that vectorise; for non-NaN
 * floats, the bits of |x| order as |x| does) for the scale and the smallest nonzero |x| (its bits less
 * one, masked so that 0 maps to the largest value; NaN maps above inf, which is harmless: an infinite
 * smallest is never near). When that smallest is beyond tol, only the zeros are near and the second
 * pass, a float comparison, is skipped. */
#define NEAR(NAME, T, I, ABS, MAG, INF)                                                                 \
    CLONES static int64_t NAME(const T *x, const I *bits, int64_t n, double rel) {                      \
        I scale = 0, below = MAG;                                                                       \
        int64_t zeros = 0;                                                                              \
        for (int64_t start = 0; start < n; start += BLOCK) {                                            \
            int64_t stop = start + BLOCK < n ? start + BLOCK : n;                                       \
            I count = 0;                                                                                \
            for (int64_t i = start; i < stop; i++) {                                                    \
                I a = bits[i] & MAG;                                                                    \
                I finite = a < INF ? a : 0;                                                             \
                I candidate = (a - 1) & MAG;                                                            \
                scale = finite > scale ? finite : scale;                                                \
                below = candidate < below ? candidate : below;                                          \
                count += a == 0;                                                                        \
            }                                                                                           \
            zeros += count;                                                                             \
        }                                                                                               \
        T scale_value, smallest;                                                                        \
        I smallest_bits = below + 1;                                                                    \
        memcpy(&scale_value, &scale, sizeof scale);                                                     \
        memcpy(&smallest, &smallest_bits, sizeof smallest);                                             \
        T tol = (T)((double)scale_value * rel);                                                         \
        if (below == MAG || smallest > tol)                                                             \
            return zeros;                                                                               \
        int64_t total = 0;                                                                              \
        for (int64_t start = 0; start < n; start += BLOCK) {                                            \
            int64_t stop = start + BLOCK < n ? start + BLOCK : n;                                       \
            uint32_t count = 0;                                                                         \
            for (int64_t i = start; i < stop; i++)                                                      \
                count += ABS(x[i]) <= tol;                                                              \
            total += count;                                                                             \
        }                                                                                               \
        return total;                                                                                   \
    }
NEAR(near_f32, float, int32_t, fabsf, 0x7fffffff, 0x7f800000)
NEAR(near_f64, double, int64_t, fabs, 0x7fffffffffffffff, 0x7ff0000000000000)

/* The mask x == 0 (as EQUAL at 0: a float comparison, so that flushed denormals compare as PyTorch's do)
 * together with what the first pass of NEAR takes from x, in the same pass: the bits of the largest finite
 * |x|, and for each block the bits of its smallest nonzero |x| less one, masked (MAG when there is none;
 * NaN maps above inf). NEAR_BLOCKS then counts the entries near 0 for any tolerance by reading only the
 * blocks that hold one. */
#define EQUAL_SPAN(NAME, T, I, MAG, INF)                                                                \
    CLONES static int64_t NAME(const T *x, const I *bits, int64_t n, uint8_t *out, I *largest,         \
                               I *minima) {                                                             \
        I scale = 0;                                                                                    \
        int64_t total = 0;                                                                              \
        for (int64_t start = 0; start < n; start += BLOCK) {                                            \
            int64_t stop = start + BLOCK < n ? start + BLOCK : n;                                       \
            uint32_t count = 0;                                                                         \
            I below = MAG;                                                                              \
            for (int64_t i = start; i < stop; i++) {                                                    \
                I a = bits[i] & MAG;                                                                    \
                I finite = a < INF ? a : 0;                                                             \
                I candidate = (a - 1) & MAG;                                                            \
                uint8_t e = x[i] == 0;                                                                  \
                scale = finite > scale ? finite : scale;                                                \
                below = candidate < below ? candidate : below;                                          \
                out[i] = e;                                                                             \
                count += e;                                                                             \
            }                                                                                           \
            minima[start / BLOCK] = below;                                                              \
            total += count;                                                                             \
        }                                                                                               \
        *largest = scale;                                                                               \
        return total;                                                                                   \
    }
EQUAL_SPAN(equal_span_f32, float, int32_t, 0x7fffffff, 0x7f800000)
EQUAL_SPAN(equal_span_f64, double, int64_t, 0x7fffffffffffffff, 0x7ff0000000000000)

/* After EQUAL_SPAN: the entries with |x| <= tol, tol = (T)(largest * rel) as in NEAR, that EQUAL_SPAN
 * did not count as zeros, read in the blocks whose smallest nonzero |x| is within tol only (compared as
 * bits: NaN never is). */
#define NEAR_BLOCKS(NAME, T, I, ABS)                                                                    \
    static int64_t NAME(const T *x, int64_t n, I largest, double rel, const I *minima) {                \
        T scale_value, tol;                                                                             \
        memcpy(&scale_value, &largest, sizeof largest);                                                 \
        tol = (T)((double)scale_value * rel);                                                           \
        I tol_bits;                                                                                     \
        memcpy(&tol_bits, &tol, sizeof tol);                                                            \
        int64_t total = 0;                                                                              \
        for (int64_t start = 0; start < n; start += BLOCK) {                                            \
            if (!(minima[start / BLOCK] < tol_bits))                                                    \
                continue;                                                                               \
            int64_t stop = start + BLOCK < n ? start + BLOCK : n;                                       \
            for (int64_t i = start; i < stop; i++)                                                      \
                total += ABS(x[i]) <= tol && x[i] != 0;                                                 \
        }                                                                                               \
        return total;                                                                                   \
    }
NEAR_BLOCKS(near_blocks_f32, float, int32_t, fabsf)
NEAR_BLOCKS(near_blocks_f64, double, int64_t, fabs)

/* Entries where mask (0/1 bytes) is set and g != 0 (NaN counts: it is not 0). */
#define HITS(NAME, T)                                                                                   \
    CLONES static int64_t NAME(const T *g, const uint8_t *mask, int64_t n) {                            \
        int64_t total = 0;                                                                              \
        for (int64_t start = 0; start < n; start += BLOCK) {                                            \
            int64_t stop = start + BLOCK < n ? start + BLOCK : n;                                       \
            uint32_t count = 0;                                                                         \
            for (int64_t i = start; i < stop; i++)                                                      \
                count += (uint8_t)(g[i] != 0) & mask[i];                                                \
            total += count;                                                                             \
        }                                                                                               \
        return total;                                                                                   \
    }
HITS(hits_f32, float)
HITS(hits_f64, double)

/* In place: out[i] = slope * g[i] where mask[i] is set; every other entry is left as it is (so an
 * infinite or NaN g there never reaches out, as it would through out + slope * g * mask). The choice is
 * a select on the bits (out is read as integers of the float's width), which vectorises. */
#define PUT(NAME, T, I)                                                                                 \
    CLONES static void NAME(I *restrict out, const T *restrict g, const uint8_t *restrict mask,         \
                            int64_t n, T slope) {                                                       \
        I sloped = -(I)(slope != 0); /* a zero slope puts 0 itself, never 0 * inf = NaN */              \
        for (int64_t i = 0; i < n; i++) {                                                               \
            T put = slope * g[i];                                                                       \
            I bits, masked = -(I)mask[i];                                                               \
            memcpy(&bits, &put, sizeof bits);                                                           \
            out[i] = (bits & masked & sloped) | (out[i] & ~masked);                                     \
        }                                                                                               \
    }
PUT(put_f32, float, int32_t)
PUT(put_f64, double, int64_t)

/* relu's backward with a chosen slope at its kinks, in one pass, from entry `start` on: out[i] = slope *
 * g[i] where the kink mask is set (0 for a zero slope, as PUT puts it), else PyTorch's
 * threshold_backward(g, y, 0): 0 where y[i] <= 0, g[i] elsewhere (NaN y included). Selects on the bits,
 * as in PUT. CHOSEN reads the mask of entry i as 0 or -1: one byte per entry (RELU_BACKWARD's), or one
 * bit (BIT_CHOSEN: bit i % 8 of mask[i / 8], as RELU_BITS sets them; a NULL mask has no kink). */
#define RELU_BACKWARD(NAME, T, I, CHOSEN)                                                               \
    CLONES static void NAME(I *restrict out, const T *restrict g, const T *restrict y,                  \
                            const uint8_t *restrict mask, int64_t n, T slope, int64_t start) {          \
        I sloped = -(I)(slope != 0);                                                                    \
        for (int64_t i = start; i < n; i++) {                                                           \
            T put = slope * g[i], own = g[i];                                                           \
            I put_bits, own_bits, chosen = CHOSEN, passed = -(I)!(y[i] <= 0);                           \
            memcpy(&put_bits, &put, sizeof put_bits);                                                   \
            memcpy(&own_bits, &own, sizeof own_bits);                                                   \
            out[i] = (put_bits & chosen & sloped) | (own_bits & passed & ~chosen);                      \
        }                                                                                               \
    }
#define BIT_CHOSEN(I) (mask == NULL ? 0 : -(I)((mask[i >> 3] >> (i & 7)) & 1))
RELU_BACKWARD(relu_backward_f32, float, int32_t, -(int32_t)mask[i])
RELU_BACKWARD(relu_backward_f64, double, int64_t, -(int64_t)mask[i])
RELU_BACKWARD(relu_backward_bits_f32, float, int32_t, BIT_CHOSEN(int32_t))
RELU_BACKWARD(relu_backward_bits_f64, double, int64_t, BIT_CHOSEN(int64_t))

/* Set bits per byte value. */
static const uint8_t POPCOUNT8[256] = {
#define B2(k) k, k + 1, k + 1, k + 2
#define B4(k) B2(k), B2(k + 1), B2(k + 1), B2(k + 2)
#define B6(k) B4(k), B4(k + 1), B4(k + 1), B4(k + 2)
    B6(0), B6(1), B6(1), B6(2)};
#undef B2
#undef B4
#undef B6

/* relu's forward with its kinks found on the way, from entry `start` (a multiple of 8) on: out[i] =
 * PyTorch's relu(x[i]) (+0 where x[i] < 0, else x[i] itself: -0 and NaN pass through), and bit i % 8 of
 * bits[i / 8] set where x[i] == 0 (the last byte's unused bits clear); returns how many are. */
#define RELU_BITS(NAME, T)                                                                              \
    static int64_t NAME(const T *restrict x, T *restrict out, uint8_t *restrict bits, int64_t n,        \
                        int64_t start) {                                                                \
        int64_t hits = 0;                                                                               \
        for (int64_t j = start; j < n; j += 8) {                                                        \
            unsigned byte = 0;                                                                          \
            int64_t stop = j + 8 < n ? j + 8 : n;                                                       \
            for (int64_t i = j; i < stop; i++) {                                                        \
                T v = x[i];                                                                             \
                out[i] = v < 0 ? (T)0 : v;                                                              \
                byte |= (unsigned)(v == 0) << (i - j);                                                  \
            }                                                                                           \
            bits[j >> 3] = (uint8_t)byte;                                                               \
            hits += POPCOUNT8[byte];                                                                    \
        }                                                                                               \
        return hits;                                                                                    \
    }
RELU_BITS(relu_bits_f32, float)
RELU_BITS(relu_bits_f64, double)

#ifdef HAVE_AVX2
/* RELU_BITS in float32 for the entries up to the last multiple of 16; returns that count in *done.
 * Measured 1.8 times faster than RELU_BITS (which the compiler does not vectorise: a byte of bits per
 * 8 entries), and as fast as PyTorch's relu alone. */
AVX2 static int64_t relu_bits_avx2(const float *restrict x, float *restrict out, uint8_t *restrict bits,
                                   int64_t n, int64_t *done) {
    const __m256 zero = _mm256_setzero_ps();
    int64_t hits = 0, i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        _mm256_storeu_ps(out + i, _mm256_andnot_ps(_mm256_cmp_ps(a, zero, _CMP_LT_OQ), a));
        _mm256_storeu_ps(out + i + 8, _mm256_andnot_ps(_mm256_cmp_ps(b, zero, _CMP_LT_OQ), b));
        unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, zero, _CMP_EQ_OQ)) |
                     (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(b, zero, _CMP_EQ_OQ)) << 8;
        uint16_t pair = (uint16_t)m;
        memcpy(bits + (i >> 3), &pair, 2);
        hits += __builtin_popcount(m);
    }
    *done = i;
    return hits;
}

/* relu_backward_bits_f32 (RELU_BACKWARD with BIT_CHOSEN) for the entries up to the last multiple of 8;
 * returns that count. */
AVX2 static int64_t relu_backward_bits_avx2(float *restrict out, const float *restrict g, const float *restrict y,
                                            const uint8_t *restrict bits, int64_t n, float slope) {
    const __m256 zero = _mm256_setzero_ps(), s = _mm256_set1_ps(slope);
    const __m256 sloped = _mm256_castsi256_ps(_mm256_set1_epi32(-(int32_t)(slope != 0)));
    const __m256i lanes = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gi = _mm256_loadu_ps(g + i);
        __m256 own = _mm256_andnot_ps(_mm256_cmp_ps(_mm256_loadu_ps(y + i), zero, _CMP_LE_OQ), gi);
        if (bits != NULL) {
            __m256i chosen = _mm256_and_si256(_mm256_set1_epi32(bits[i >> 3]), lanes);
            __m256 put = _mm256_and_ps(_mm256_mul_ps(gi, s), sloped);
            own = _mm256_blendv_ps(own, put, _mm256_castsi256_ps(_mm256_cmpeq_epi32(chosen, lanes)));
        }
        _mm256_storeu_ps(out + i, own);
    }
    return i;
}
#endif

/* True entries of a 0/1 byte mask. */
CLONES static int64_t count_bytes(const uint8_t *mask, int64_t n) {
    int64_t total = 0;
    for (int64_t start = 0; start < n; start += BLOCK) {
        int64_t stop = start + BLOCK < n ? start + BLOCK : n;
        uint32_t count = 0;
        for (int64_t i = start; i < stop; i++)
            count += mask[i];
        total += count;
    }
    return total;
}

#ifdef HAVE_SSE2
/* The 2x2, stride-2 windows of one output row in float32, four (then two) windows at a time: each
 * window's maximum is duplicated to line up with its two columns, compared with the two input rows, and
 * the four 0/-1 results of a window summed; the rest as in TIES below. Returns the ties of the row's
 * first windows and sets *done to how many windows it covered (a multiple of 2). Measured 2.4-2.8 times
 * faster than the compiler's vectorisation of the scalar loop on a CNN's 28-wide rows. */
static uint32_t ties2x2_f32(const float *row, const float *next, const float *v, uint8_t *o, int64_t OW,
                            int64_t *done) {
    const __m128 magnitude = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
    const __m128 largest = _mm_set1_ps(FLT_MAX);
    const __m128i once = _mm_set1_epi32(-1), one = _mm_set1_epi8(1);
    __m128i ties = _mm_setzero_si128();
    int64_t ow = 0;
    for (; ow + 2 <= OW; ow += 4) {
        int pair = ow + 4 > OW; /* two windows left: the upper lanes hold zeros and are dropped */
        __m128 m = pair ? _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(v + ow))) : _mm_loadu_ps(v + ow);
        __m128 lo = _mm_unpacklo_ps(m, m), hi = _mm_unpackhi_ps(m, m);
        __m128i s0 = _mm_add_epi32(_mm_castps_si128(_mm_cmpeq_ps(_mm_loadu_ps(row + 2 * ow), lo)),
                                   _mm_castps_si128(_mm_cmpeq_ps(_mm_loadu_ps(next + 2 * ow), lo)));
        __m128i s1 = pair ? _mm_setzero_si128()
                          : _mm_add_epi32(_mm_castps_si128(_mm_cmpeq_ps(_mm_loadu_ps(row + 2 * ow + 4), hi)),
                                          _mm_castps_si128(_mm_cmpeq_ps(_mm_loadu_ps(next + 2 * ow + 4), hi)));
        __m128 even = _mm_shuffle_ps(_mm_castsi128_ps(s0), _mm_castsi128_ps(s1), _MM_SHUFFLE(2, 0, 2, 0));
        __m128 odd = _mm_shuffle_ps(_mm_castsi128_ps(s0), _mm_castsi128_ps(s1), _MM_SHUFFLE(3, 1, 3, 1));
        __m128i c = _mm_add_epi32(_mm_castps_si128(even), _mm_castps_si128(odd)); /* -(equal entries) */
        __m128i tie = _mm_and_si128(_mm_cmplt_epi32(c, once),
                                    _mm_castps_si128(_mm_cmple_ps(_mm_and_ps(m, magnitude), largest)));
        ties = _mm_sub_epi32(ties, tie);
        __m128i bytes = _mm_packs_epi32(tie, tie);
        bytes = _mm_and_si128(_mm_packs_epi16(bytes, bytes), one);
        int32_t word = _mm_cvtsi128_si32(bytes);
        if (pair) { /* (fixed-size copies: a variable one is a call) */
            uint16_t half = (uint16_t)word;
            memcpy(o + ow, &half, 2);
        } else {
            memcpy(o + ow, &word, 4);
        }
        if (pair) {
            ow += 2;
            break;
        }
    }
    *done = ow;
    int32_t lanes[4];
    _mm_storeu_si128((__m128i *)lanes, ties);
    return (uint32_t)(lanes[0] + lanes[1] + lanes[2] + lanes[3]);
}
#define TIES2X2_float(row, next, v, o, OW, done) ties2x2_f32(row, next, v, o, OW, done)
#else
#define TIES2X2_float(row, next, v, o, OW, done) (*(done) = 0, 0u)
#endif
#define TIES2X2_double(row, next, v, o, OW, done) (*(done) = 0, 0u)

/* Max-pool ties: x is [planes, H, W], value its max-pool [planes, OH, OW] by kh x kw windows at strides
 * sh, sw, every window inside x. out[w] = 1 where value[w] is finite and equals two or more of window w's
 * entries. The 2x2, stride-2 case has its own loop: SSE2 for float32 where the machine has it (above),
 * else one the compiler vectorises (one build only: the AVX2 one was measured slower on a CNN's 28-wide
 * rows, 0.58 against 0.45 ns per input entry). */
#define TIES(NAME, T, ABS, MAX)                                                                         \
    static int64_t NAME(const T *x, const T *value, int64_t planes, int64_t H, int64_t W,               \
                        int64_t OH, int64_t OW, int64_t kh, int64_t kw, int64_t sh, int64_t sw,         \
                        uint8_t *out) {                                                                 \
        int64_t total = 0;                                                                              \
        for (int64_t p = 0; p < planes; p++) {                                                          \
            for (int64_t oh = 0; oh < OH; oh++) {                                                       \
                const T *row = x + (p * H + oh * sh) * W;                                               \
                const T *v = value + (p * OH + oh) * OW;                                                \
                uint8_t *o = out + (p * OH + oh) * OW;                                                  \
                uint32_t count = 0;                                                                     \
                if (kh == 2 && kw == 2 && sw == 2) {                                                    \
                    const T *next = row + W;                                                            \
                    int64_t first;                                                                      \
                    count = TIES2X2_##T(row, next, v, o, OW, &first);                                   \
                    for (int64_t ow = first; ow < OW; ow++) {                                           \
                        T m = v[ow];                                                                    \
                        int c = (row[2 * ow] == m) + (row[2 * ow + 1] == m) +                           \
                                (next[2 * ow] == m) + (next[2 * ow + 1] == m);                          \
                        uint8_t t = (uint8_t)(c >= 2) & (uint8_t)(ABS(m) <= MAX);                       \
                        o[ow] = t;                                                                      \
                        count += t;                                                                     \
                    }                                                                                   \
                } else {                                                                                \
                    for (int64_t ow = 0; ow < OW; ow++) {                                               \
                        T m = v[ow];                                                                    \
                        int c = 0;                                                                      \
                        for (int64_t i = 0; i < kh; i++)                                                \
                            for (int64_t j = 0; j < kw; j++)                                            \
                                c += row[i * W + ow * sw + j] == m;                                     \
                        uint8_t t = (uint8_t)(c >= 2) & (uint8_t)(ABS(m) <= MAX);                       \
                        o[ow] = t;                                                                      \
                        count += t;                                                                     \
                    }                                                                                   \
                }                                                                                       \
                total += count;                                                                         \
            }                                                                                           \
        }                                                                                               \
        return total;                                                                                   \
    }
TIES(ties_f32, float, fabsf, FLT_MAX)
TIES(ties_f64, double, fabs, DBL_MAX)

/* Per 4-bit set of a 2x2 window's maxima (bit i: entry i): is it a tie (two or more)? */
static const uint8_t TIED4[16] = {0, 0, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1};

#ifdef HAVE_SSE2
/* VALUES below for the 2x2, stride-2 windows of one output row in float32, four windows at a time: the
 * rows' entries de-interleaved into each window's four (in window order), their maximum taken as PyTorch
 * takes it (an entry replaces the maximum so far only when greater: of equal ones, +0 and -0 included,
 * the first stays), and compared with each. Sets *done to how many windows it covered and *finite to
 * whether they hold no NaN and only finite maxima; returns their ties. */
static uint32_t values2x2_f32(const float *row, const float *next, float *v, uint8_t *o, int64_t OW,
                              int64_t *done, int *finite) {
    const __m128 magnitude = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
    const __m128 largest = _mm_set1_ps(FLT_MAX);
    uint32_t ties = 0;
    int ok = 1;
    int64_t ow = 0;
    for (; ow + 4 <= OW; ow += 4) {
        __m128 r0 = _mm_loadu_ps(row + 2 * ow), r1 = _mm_loadu_ps(row + 2 * ow + 4);
        __m128 n0 = _mm_loadu_ps(next + 2 * ow), n1 = _mm_loadu_ps(next + 2 * ow + 4);
        __m128 a = _mm_shuffle_ps(r0, r1, _MM_SHUFFLE(2, 0, 2, 0)), b = _mm_shuffle_ps(r0, r1, _MM_SHUFFLE(3, 1, 3, 1));
        __m128 c = _mm_shuffle_ps(n0, n1, _MM_SHUFFLE(2, 0, 2, 0)), d = _mm_shuffle_ps(n0, n1, _MM_SHUFFLE(3, 1, 3, 1));
        __m128 m = _mm_max_ps(d, _mm_max_ps(c, _mm_max_ps(b, a))); /* max_ps(x, y): x > y ? x : y */
        int nan = _mm_movemask_ps(_mm_or_ps(_mm_cmpunord_ps(a, b), _mm_cmpunord_ps(c, d)));
        ok &= !nan & (_mm_movemask_ps(_mm_cmple_ps(_mm_and_ps(m, magnitude), largest)) == 15);
        unsigned ea = (unsigned)_mm_movemask_ps(_mm_cmpeq_ps(a, m)), eb = (unsigned)_mm_movemask_ps(_mm_cmpeq_ps(b, m));
        unsigned ec = (unsigned)_mm_movemask_ps(_mm_cmpeq_ps(c, m)), ed = (unsigned)_mm_movemask_ps(_mm_cmpeq_ps(d, m));
        _mm_storeu_ps(v + ow, m);
        uint32_t word = 0;
        for (int k = 0; k < 4; k++) {
            unsigned at = (ea >> k & 1) | (eb >> k & 1) << 1 | (ec >> k & 1) << 2 | (ed >> k & 1) << 3;
            word |= (at ^ 15u) << (8 * k); /* (little-endian: byte k) */
            ties += TIED4[at];
        }
        memcpy(o + ow, &word, 4);
    }
    *done = ow;
    *finite = ok;
    return ties;
}
#define VALUES2X2_float(row, next, v, o, OW, done, finite) values2x2_f32(row, next, v, o, OW, done, finite)

/* SCATTER below for the 2x2, stride-2 windows of one output row in float32, four (then two) windows at a time, all
 * in vector registers (a scalar table per window, stored and reloaded as a vector, stalled each load):
 * each window's mask of kept entries ("split": its maxima; "last": the last of them) and share, the
 * share duplicated to line up with the window's two columns, kept where the mask has the entry's bit and
 * added to 0, as in SCATTER. Returns how many windows it covered. */
static int64_t scatter2x2_f32(const float *g, const uint8_t *b, float *row, float *next, int64_t OW, int rule) {
    const __m128i top = _mm_setr_epi32(1, 2, 1, 2), bottom = _mm_setr_epi32(4, 8, 4, 8);
    const __m128i one = _mm_set1_epi32(1), two = _mm_set1_epi32(2), four = _mm_set1_epi32(4);
    const __m128i eight = _mm_set1_epi32(8), fifteen = _mm_set1_epi32(15), zeroi = _mm_setzero_si128();
    const __m128 zero = _mm_setzero_ps(), ones = _mm_set1_ps(1.0f);
    int64_t ow = 0;
    for (; ow + 2 <= OW; ow += 4) {
        int pair = ow + 4 > OW; /* two windows left: the upper lanes are not stored */
        int32_t word;
        if (pair) { /* (fixed-size copies: a variable one is a call) */
            uint16_t half;
            memcpy(&half, b + ow, 2);
            word = half;
        } else {
            memcpy(&word, b + ow, 4);
        }
        __m128i bytes = _mm_unpacklo_epi8(_mm_cvtsi32_si128(word), zeroi);
        __m128i at = _mm_xor_si128(_mm_unpacklo_epi16(bytes, zeroi), fifteen); /* the maxima, per window */
        __m128i kept;
        __m128 count;
        if (rule == 2) { /* the lowest bit of at */
            kept = _mm_and_si128(at, _mm_sub_epi32(zeroi, at));
            count = ones;
        } else if (rule == 1) { /* the highest bit of at */
            __m128i ge8 = _mm_cmpgt_epi32(at, _mm_set1_epi32(7)), ge4 = _mm_cmpgt_epi32(at, _mm_set1_epi32(3));
            __m128i ge2 = _mm_cmpgt_epi32(at, one);
            __m128i high = _mm_or_si128(_mm_and_si128(ge8, eight), _mm_andnot_si128(ge8, _mm_and_si128(ge4, four)));
            __m128i low = _mm_or_si128(_mm_andnot_si128(ge4, _mm_and_si128(ge2, two)), _mm_andnot_si128(ge2, at));
            kept = _mm_or_si128(high, low);
            count = ones;
        } else {
            kept = at;
            __m128i c = _mm_add_epi32(_mm_add_epi32(_mm_and_si128(at, one), _mm_and_si128(_mm_srli_epi32(at, 1), one)),
                                      _mm_add_epi32(_mm_and_si128(_mm_srli_epi32(at, 2), one), _mm_srli_epi32(at, 3)));
            count = _mm_cvtepi32_ps(c);
        }
        __m128 share = _mm_div_ps(
            pair ? _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(g + ow))) : _mm_loadu_ps(g + ow), count);
        __m128i klo = _mm_unpacklo_epi32(kept, kept), khi = _mm_unpackhi_epi32(kept, kept);
        __m128 slo = _mm_unpacklo_ps(share, share), shi = _mm_unpackhi_ps(share, share);
#define KEPT(k, bits, s) \
    _mm_add_ps(zero, _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(_mm_and_si128(k, bits), bits)), s))
        _mm_storeu_ps(row + 2 * ow, KEPT(klo, top, slo));
        _mm_storeu_ps(next + 2 * ow, KEPT(klo, bottom, slo));
        if (pair) {
            ow += 2;
            break;
        }
        _mm_storeu_ps(row + 2 * ow + 4, KEPT(khi, top, shi));
        _mm_storeu_ps(next + 2 * ow + 4, KEPT(khi, bottom, shi));
    }
#undef KEPT
    return ow;
}
#define SCATTER2X2_float(g, b, row, next, OW, rule) scatter2x2_f32(g, b, row, next, OW, rule)
#else
#define VALUES2X2_float(row, next, v, o, OW, done, finite) (*(done) = 0, *(finite) = 1, 0u)
#define SCATTER2X2_float(g, b, row, next, OW, rule) ((int64_t)0)
#endif
#define VALUES2X2_double(row, next, v, o, OW, done, finite) (*(done) = 0, *(finite) = 1, 0u)
#define SCATTER2X2_double(g, b, row, next, OW, rule) ((int64_t)0)

/* A max-pool and its tie positions in one pass: x and geometry as in TIES, at most 8 entries per window.
 * value[w] gets window w's maximum as PyTorch's CPU max-pool computes it (in window order, an entry
 * replaces the maximum so far only when greater), and out[w] its tie positions: bit i (window order, row
 * by row) set where entry i is not the maximum. Returns how many windows attain their maximum twice or
 * more, or -1 where a window holds NaN or its maximum is not finite (PyTorch's own pool then serves). */
#define VALUES(NAME, T, ABS, MAX)                                                                       \
    static int64_t NAME(const T *x, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,       \
                        int64_t kh, int64_t kw, int64_t sh, int64_t sw, T *value, uint8_t *out) {       \
        int64_t total = 0;                                                                              \
        int quad = kh == 2 && kw == 2 && sw == 2;                                                       \
        for (int64_t p = 0; p < planes; p++) {                                                          \
            for (int64_t oh = 0; oh < OH; oh++) {                                                       \
                const T *row = x + (p * H + oh * sh) * W;                                               \
                T *v = value + (p * OH + oh) * OW;                                                      \
                uint8_t *o = out + (p * OH + oh) * OW;                                                  \
                int64_t first = 0;                                                                      \
                int finite = 1;                                                                         \
                uint32_t count = 0;                                                                     \
                if (quad)                                                                               \
                    count = VALUES2X2_##T(row, row + W, v, o, OW, &first, &finite);                     \
                if (!finite)                                                                            \
                    return -1;                                                                          \
                for (int64_t ow = first; ow < OW; ow++) {                                               \
                    const T *win = row + ow * sw;                                                       \
                    T m = win[0];                                                                       \
                    int nan = 0;                                                                        \
                    for (int64_t i = 0; i < kh; i++)                                                    \
                        for (int64_t j = 0; j < kw; j++) {                                              \
                            T e = win[i * W + j];                                                       \
                            nan |= e != e;                                                              \
                            if (e > m)                                                                  \
                                m = e;                                                                  \
                        }                                                                               \
                    if (nan || !(ABS(m) <= MAX))                                                        \
                        return -1;                                                                      \
                    unsigned bits = 0;                                                                  \
                    int maxima = 0;                                                                     \
                    for (int64_t i = 0; i < kh; i++)                                                    \
                        for (int64_t j = 0; j < kw; j++) {                                              \
                            int at = win[i * W + j] == m;                                               \
                            bits |= (unsigned)!at << (i * kw + j);                                      \
                            maxima += at;                                                               \
                        }                                                                               \
                    v[ow] = m;                                                                          \
                    o[ow] = (uint8_t)bits;                                                              \
                    count += maxima >= 2;                                                               \
                }                                                                                       \
                total += count;                                                                         \
            }                                                                                           \
        }                                                                                               \
        return total;                                                                                   \
    }
VALUES(values_f32, float, fabsf, FLT_MAX)
VALUES(values_f64, double, fabs, DBL_MAX)

/* The backward of a max-pool whose ties are resolved: grad is [planes, OH, OW], bits its windows' tie
 * positions (from VALUES), gi the input's gradient [planes, H, W]. Windows do not overlap (sh >= kh,
 * sw >= kw): every entry of a window is written once, and entries outside all windows are left as they
 * are (the caller zeroes them). rule 0 ("split"): each maximum of a window gets 0 + grad / (the window's
 * number of maxima), its other entries 0; rule 1 ("last"): its last maximum gets 0 + grad; rule 2 ("first"):
 * its first maximum, PyTorch's own choice (its pool keeps the first of equal maxima). The sum with
 * 0 is what PyTorch's operators compute, adding to a zero gradient (0 + -0.0 is +0.0). The 2x2,
 * stride-2 case starts each row with its own loop (above). */
#define SCATTER(NAME, T)                                                                                \
    static void NAME(const T *grad, const uint8_t *bits, int64_t planes, int64_t H, int64_t W,          \
                     int64_t OH, int64_t OW, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int rule,  \
                     T *gi) {                                                                           \
        int quad = kh == 2 && kw == 2 && sw == 2;                                                       \
        for (int64_t p = 0; p < planes; p++) {                                                          \
            for (int64_t oh = 0; oh < OH; oh++) {                                                       \
                T *row = gi + (p * H + oh * sh) * W;                                                    \
                const T *g = grad + (p * OH + oh) * OW;                                                 \
                const uint8_t *b = bits + (p * OH + oh) * OW;                                           \
                int64_t first = quad ? SCATTER2X2_##T(g, b, row, row + W, OW, rule) : 0;                \
                for (int64_t ow = first; ow < OW; ow++) {                                               \
                    T *win = row + ow * sw;                                                             \
                    int maxima = 0, last = -1, first = -1;                                              \
                    for (int i = 0; i < kh * kw; i++)                                                   \
                        if (!(b[ow] >> i & 1)) {                                                        \
                            maxima++;                                                                   \
                            last = i;                                                                   \
                            first = first < 0 ? i : first;                                              \
                        }                                                                               \
                    T share = (T)0 + (rule ? g[ow] : g[ow] / (T)maxima);                                \
                    for (int i = 0; i < kh; i++)                                                        \
                        for (int j = 0; j < kw; j++) {                                                  \
                            int at = i * (int)kw + j;                                                   \
                            int kept = rule == 2 ? at == first : rule == 1 ? at == last : !(b[ow] >> at & 1); \
                            win[i * W + j] = kept ? share : (T)0;                                       \
                        }                                                                               \
                }                                                                                       \
            }                                                                                           \
        }                                                                                               \
    }
SCATTER(scatter_f32, float)
SCATTER(scatter_f64, double)

/* ---- Python bindings: addresses and sizes as integers; `wide` selects float64 ---- */

static PyObject *py_equal(PyObject *self, PyObject *args) {
    unsigned long long x, out;
    long long n;
    double point;
    int wide;
    if (!PyArg_ParseTuple(args, "KLdKp", &x, &n, &point, &out, &wide))
        return NULL;
    int64_t r;
    Py_BEGIN_ALLOW_THREADS
    r = wide ? equal_f64((const double *)x, n, point, (uint8_t *)out)
             : equal_f32((const float *)x, n, (float)point, (uint8_t *)out);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(r);
}

static PyObject *py_any_equal(PyObject *self, PyObject *args) {
    unsigned long long x;
    long long n;
    double point;
    int wide;
    if (!PyArg_ParseTuple(args, "KLdp", &x, &n, &point, &wide))
        return NULL;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = wide ? any_equal_f64((const double *)x, n, point) : any_equal_f32((const float *)x, n, (float)point);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(r);
}

/* Returns (count, bits of the largest finite |x|); minima receives one integer of x's width per block. */
static PyObject *py_equal_span(PyObject *self, PyObject *args) {
    unsigned long long x, out, minima;
    long long n;
    int wide;
    if (!PyArg_ParseTuple(args, "KLKKp", &x, &n, &out, &minima, &wide))
        return NULL;
    int64_t r, largest;
    Py_BEGIN_ALLOW_THREADS
    if (wide) {
        r = equal_span_f64((const double *)x, (const int64_t *)x, n, (uint8_t *)out, &largest,
                           (int64_t *)minima);
    } else {
        int32_t top;
        r = equal_span_f32((const float *)x, (const int32_t *)x, n, (uint8_t *)out, &top, (int32_t *)minima);
        largest = top;
    }
    Py_END_ALLOW_THREADS
    return Py_BuildValue("LL", (long long)r, (long long)largest);
}

static PyObject *py_near_blocks(PyObject *self, PyObject *args) {
    unsigned long long x, minima;
    long long n, largest;
    double rel;
    int wide;
    if (!PyArg_ParseTuple(args, "KLLdKp", &x, &n, &largest, &rel, &minima, &wide))
        return NULL;
    int64_t r;
    Py_BEGIN_ALLOW_THREADS
    r = wide ? near_blocks_f64((const double *)x, n, (int64_t)largest, rel, (const int64_t *)minima)
             : near_blocks_f32((const float *)x, n, (int32_t)largest, rel, (const int32_t *)minima);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(r);
}

static PyObject *py_near(PyObject *self, PyObject *args) {
    unsigned long long x;
    long long n;
    double rel;
    int wide;
    if (!PyArg_ParseTuple(args, "KLdp", &x, &n, &rel, &wide))
        return NULL;
    int64_t r;
    Py_BEGIN_ALLOW_THREADS
    r = wide ? near_f64((const double *)x, (const int64_t *)x, n, rel)
             : near_f32((const float *)x, (const int32_t *)x, n, rel);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(r);
}

static PyObject *py_hits(PyObject *self, PyObject *args) {
    unsigned long long g, mask;
    long long n;
    int wide;
    if (!PyArg_ParseTuple(args, "KKLp", &g, &mask, &n, &wide))
        return NULL;
    int64_t r;
    Py_BEGIN_ALLOW_THREADS
    r = wide ? hits_f64((const double *)g, (const uint8_t *)mask, n)
             : hits_f32((const float *)g, (const uint8_t *)mask, n);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(r);
}

static PyObject *py_put(PyObject *self, PyObject *args) {
    unsigned long long out, g, mask;
    long long n;
    double slope;
    int wide;
    if (!PyArg_ParseTuple(args, "KKKLdp", &out, &g, &mask, &n, &slope, &wide))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (wide)
        put_f64((int64_t *)out, (const double *)g, (const uint8_t *)mask, n, slope);
    else
        put_f32((int32_t *)out, (const float *)g, (const uint8_t *)mask, n, (float)slope);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* relu_bits(x, out, bits, n, wide) -> how many x == 0 */
static PyObject *py_relu_bits(PyObject *self, PyObject *args) {
    unsigned long long x, out, bits;
    long long n;
    int wide;
    if (!PyArg_ParseTuple(args, "KKKLp", &x, &out, &bits, &n, &wide))
        return NULL;
    int64_t r = 0, done = 0;
    Py_BEGIN_ALLOW_THREADS
    if (wide) {
        r = relu_bits_f64((const double *)x, (double *)out, (uint8_t *)bits, n, 0);
    } else {
#ifdef HAVE_AVX2
        if (use_avx2)
            r = relu_bits_avx2((const float *)x, (float *)out, (uint8_t *)bits, n, &done);
#endif
        r += relu_bits_f32((const float *)x, (float *)out, (uint8_t *)bits, n, done);
    }
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(r);
}

/* relu_backward(out, g, y, mask, n, slope, wide, bits): the mask one byte per entry, or (bits) one bit per
 * entry as relu_bits writes them, 0 for none */
static PyObject *py_relu_backward(PyObject *self, PyObject *args) {
    unsigned long long out, g, y, mask;
    long long n;
    double slope;
    int wide, bits;
    if (!PyArg_ParseTuple(args, "KKKKLdpp", &out, &g, &y, &mask, &n, &slope, &wide, &bits))
        return NULL;
    const uint8_t *m = (const uint8_t *)mask;
    Py_BEGIN_ALLOW_THREADS
    if (!bits && wide) {
        relu_backward_f64((int64_t *)out, (const double *)g, (const double *)y, m, n, slope, 0);
    } else if (!bits) {
        relu_backward_f32((int32_t *)out, (const float *)g, (const float *)y, m, n, (float)slope, 0);
    } else if (wide) {
        relu_backward_bits_f64((int64_t *)out, (const double *)g, (const double *)y, m, n, slope, 0);
    } else {
        int64_t done = 0;
#ifdef HAVE_AVX2
        if (use_avx2)
            done = relu_backward_bits_avx2((float *)out, (const float *)g, (const float *)y, m, n, (float)slope);
#endif
        relu_backward_bits_f32((int32_t *)out, (const float *)g, (const float *)y, m, n, (float)slope, done);
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_count(PyObject *self, PyObject *args) {
    unsigned long long mask;
    long long n;
    if (!PyArg_ParseTuple(args, "KL", &mask, &n))
        return NULL;
    int64_t r;
    Py_BEGIN_ALLOW_THREADS
    r = count_bytes((const uint8_t *)mask, n);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(r);
}

static PyObject *py_ties(PyObject *self, PyObject *args) {
    unsigned long long x, value, out;
    long long planes, H, W, OH, OW, kh, kw, sh, sw;
    int wide;
    if (!PyArg_ParseTuple(args, "KKLLLLLLLLLKp", &x, &value, &planes, &H, &W, &OH, &OW, &kh, &kw, &sh,
                          &sw, &out, &wide))
        return NULL;
    int64_t r;
    Py_BEGIN_ALLOW_THREADS
    r = wide ? ties_f64((const double *)x, (const double *)value, planes, H, W, OH, OW, kh, kw, sh, sw,
                        (uint8_t *)out)
             : ties_f32((const float *)x, (const float *)value, planes, H, W, OH, OW, kh, kw, sh, sw,
                        (uint8_t *)out);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(r);
}

static PyObject *py_values(PyObject *self, PyObject *args) {
    unsigned long long x, value, out;
    long long planes, H, W, OH, OW, kh, kw, sh, sw;
    int wide;
    if (!PyArg_ParseTuple(args, "KLLLLLLLLLKKp", &x, &planes, &H, &W, &OH, &OW, &kh, &kw, &sh, &sw, &value,
                          &out, &wide))
        return NULL;
    int64_t r;
    Py_BEGIN_ALLOW_THREADS
    r = wide ? values_f64((const double *)x, planes, H, W, OH, OW, kh, kw, sh, sw, (double *)value, (uint8_t *)out)
             : values_f32((const float *)x, planes, H, W, OH, OW, kh, kw, sh, sw, (float *)value, (uint8_t *)out);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(r);
}

static PyObject *py_scatter(PyObject *self, PyObject *args) {
    unsigned long long grad, bits, gi;
    long long planes, H, W, OH, OW, kh, kw, sh, sw;
    int rule, wide;
    if (!PyArg_ParseTuple(args, "KKLLLLLLLLLiKp", &grad, &bits, &planes, &H, &W, &OH, &OW, &kh, &kw, &sh,
                          &sw, &rule, &gi, &wide))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (wide)
        scatter_f64((const double *)grad, (const uint8_t *)bits, planes, H, W, OH, OW, kh, kw, sh, sw, rule,
                    (double *)gi);
    else
        scatter_f32((const float *)grad, (const uint8_t *)bits, planes, H, W, OH, OW, kh, kw, sh, sw, rule,
                    (float *)gi);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"equal", py_equal, METH_VARARGS, "equal(x, n, point, out, wide) -> count: out = (x == point)"},
    {"any_equal", py_any_equal, METH_VARARGS, "any_equal(x, n, point, wide) -> whether some x[i] == point"},
    {"equal_span", py_equal_span, METH_VARARGS,
     "equal_span(x, n, out, minima, wide) -> (count, bits of largest finite |x|): out = (x == 0); "
     "minima: one entry per BLOCK entries of x"},
    {"near_blocks", py_near_blocks, METH_VARARGS,
     "near_blocks(x, n, largest, rel, minima, wide) -> nonzero entries with |x| <= rel * largest"},
    {"near", py_near, METH_VARARGS, "near(x, n, rel, wide) -> count of |x| <= rel * max finite |x|"},
    {"hits", py_hits, METH_VARARGS, "hits(g, mask, n, wide) -> count of mask & (g != 0)"},
    {"put", py_put, METH_VARARGS, "put(out, g, mask, n, slope, wide): out = slope * g where mask, in place"},
    {"relu_backward", py_relu_backward, METH_VARARGS,
     "relu_backward(out, g, y, mask, n, slope, wide, bits): slope * g where mask (bytes, or bits), else g "
     "where y > 0, else 0"},
    {"relu_bits", py_relu_bits, METH_VARARGS,
     "relu_bits(x, out, bits, n, wide) -> count of x == 0: out = relu(x), bit i % 8 of bits[i / 8] = (x[i] == 0)"},
    {"count", py_count, METH_VARARGS, "count(mask, n) -> true entries of a 0/1 byte mask"},
    {"ties", py_ties, METH_VARARGS, "ties(x, value, planes, H, W, OH, OW, kh, kw, sh, sw, out, wide) -> count"},
    {"values", py_values, METH_VARARGS,
     "values(x, planes, H, W, OH, OW, kh, kw, sh, sw, value, out, wide) -> ties, or -1 (NaN, or a maximum "
     "not finite): value = the max-pool, out = per window, bits of the entries that are not its maximum"},
    {"scatter", py_scatter, METH_VARARGS,
     "scatter(grad, bits, planes, H, W, OH, OW, kh, kw, sh, sw, rule, gi, wide): gi += grad sent to each "
     "window's maxima (rule 0: split evenly; 1: the last; 2: the first)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_kernels", .m_size = -1, .m_methods = methods};

/* Bumped with every change to a function's arguments or meaning: kinkgrad/_native.py ignores a build of
 * another version (an install not rebuilt since the source changed) and uses PyTorch operators. */
#define VERSION 12

PyMODINIT_FUNC PyInit__kernels(void) {
#ifdef HAVE_AVX2
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
#endif
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (PyModule_AddIntConstant(m, "VERSION", VERSION) < 0 ||
                      PyModule_AddIntConstant(m, "BLOCK", BLOCK) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
