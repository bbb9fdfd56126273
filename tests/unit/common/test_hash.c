/*
 * eddy — unit tests for src/common/hash.c and the key-group arithmetic in
 * common/internal.h (DESIGN §3): the key hash, key groups, key-group ranges
 * of subtasks and the hash partitioner's channel choice.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

#include <math.h>

#include "common/internal.h"
#include "runtime/runtime.h"

/*
 * Known answers. The hash decides key groups, and key groups decide which
 * subtask owns a key and where its state lives in a checkpoint: if one of
 * these values changes, savepoints taken before the change restore keys onto
 * the wrong subtasks. Never "fix" this table; fix the hash.
 */
static const struct {
    const char *s;
    uint64_t h;
} kat_strings[] = {
    {"", 0xd2f65b81228d51bdull},
    {"a", 0x0366224fb40dacc4ull},
    {"abc", 0x003c272b0d85585aull},
    {"hello", 0x33a312ff9cda83fcull},
    {"1234567", 0x54f42ad658a765e6ull},
    {"12345678", 0x8464d0adf26cbf91ull},
    {"123456789", 0x6775855c3f23c04cull},
    {"0123456789abcde", 0xc0284923836fb9eaull},
    {"0123456789abcdef", 0xdf952b270838bdc0ull},
    {"0123456789abcdefg", 0xd021692cde8135edull},
    {"the quick brown fox jumps over the lazy dog", 0x2f3e00f5a7eda4a3ull},
    {"eddy", 0xca76a35a0dda07b6ull},
};

/* Bytes i*7+3 for i = 0..len-1: exercises every block/tail combination. */
static const struct {
    size_t len;
    uint64_t h;
} kat_bytes[] = {
    {24, 0x9323241fe3e2a830ull},  {31, 0xdc85eb16d084a29aull},
    {32, 0x61adc2aa22968426ull},  {33, 0xac800782521b72b7ull},
    {40, 0x36736bb23d4c39fbull},  {48, 0x63c38f348d36f703ull},
    {100, 0xc183c335a343bb7full},
};

static void test_hash_known_answers(void **state)
{
    (void)state;
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(kat_strings); i++) {
        uint64_t h = eddy__hash64(kat_strings[i].s, strlen(kat_strings[i].s));
        if (h != kat_strings[i].h) {
            fail_msg("hash(\"%s\") = 0x%016llx, expected 0x%016llx",
                     kat_strings[i].s, (unsigned long long)h,
                     (unsigned long long)kat_strings[i].h);
        }
    }
    unsigned char b[100];
    for (int i = 0; i < 100; i++) {
        b[i] = (unsigned char)(i * 7 + 3);
    }
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(kat_bytes); i++) {
        uint64_t h = eddy__hash64(b, kat_bytes[i].len);
        if (h != kat_bytes[i].h) {
            fail_msg("hash(bytes[%zu]) = 0x%016llx, expected 0x%016llx",
                     kat_bytes[i].len, (unsigned long long)h,
                     (unsigned long long)kat_bytes[i].h);
        }
    }
    /* The key group of a known key is pinned as well. */
    assert_int_equal(eddy__key_group(eddy__hash64("hello", 5), 128), 25);
}

static void test_hash_empty_and_null(void **state)
{
    (void)state;
    /* An empty key may come with a NULL pointer; it hashes like "". */
    assert_true(eddy__hash64(NULL, 0) == eddy__hash64("", 0));
    assert_true(eddy__hash64(NULL, 0) == 0xd2f65b81228d51bdull);
}

static void test_hash_independent_of_alignment(void **state)
{
    (void)state;
    unsigned char src[80];
    _Alignas(16) unsigned char buf[96];
    for (size_t i = 0; i < sizeof(src); i++) {
        src[i] = (unsigned char)(i * 31 + 1);
    }
    for (size_t len = 0; len <= 64; len++) {
        uint64_t ref = eddy__hash64(src, len);
        for (size_t off = 1; off < 16; off++) {
            memcpy(buf + off, src, len);
            assert_true(eddy__hash64(buf + off, len) == ref);
        }
    }
}

static void test_hash_length_matters(void **state)
{
    (void)state;
    /* Zero bytes of different lengths must not collide (length is mixed
     * in), nor may a key and its zero-padded extension. */
    unsigned char zeros[64] = {0};
    for (size_t a = 0; a < 64; a++) {
        for (size_t b = a + 1; b < 64; b++) {
            assert_true(eddy__hash64(zeros, a) != eddy__hash64(zeros, b));
        }
    }
    assert_true(eddy__hash64("ab", 2) != eddy__hash64("ab\0", 3));
}

static void test_hash_avalanche(void **state)
{
    (void)state;
    /* Flipping one input bit flips about half the output bits. */
    uint64_t rng = 12345;
    uint64_t total = 0, flips = 0;
    for (int k = 0; k < 200; k++) {
        unsigned char key[20];
        for (size_t i = 0; i < sizeof(key); i++) {
            key[i] = (unsigned char)tu_rand(&rng);
        }
        size_t len = 1 + (size_t)(tu_rand(&rng) % sizeof(key));
        uint64_t h0 = eddy__hash64(key, len);
        for (size_t bit = 0; bit < len * 8; bit++) {
            key[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            uint64_t h1 = eddy__hash64(key, len);
            key[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            int d = __builtin_popcountll(h0 ^ h1);
            assert_true(d > 0);
            total += (uint64_t)d;
            flips++;
        }
    }
    double avg = (double)total / (double)flips;
    if (avg < 30.0 || avg > 34.0) {
        fail_msg("average flipped output bits %.2f, expected about 32", avg);
    }
}

static void test_key_group_in_range_and_uniform(void **state)
{
    (void)state;
    static const int maxps[] = {1, 2, 7, 128, 1000, 32768};
    enum { NKEYS = 100000 };
    int *counts = calloc(32768, sizeof(int));
    for (size_t m = 0; m < EDDY_ARRAY_SIZE(maxps); m++) {
        int maxp = maxps[m];
        memset(counts, 0, 32768 * sizeof(int));
        for (int i = 0; i < NKEYS; i++) {
            char key[32];
            int n = snprintf(key, sizeof(key), "key-%d", i);
            int kg = eddy__key_group(eddy__hash64(key, (size_t)n), maxp);
            assert_in_range(kg, 0, maxp - 1);
            counts[kg]++;
        }
        if (maxp <= 1000) {
            /* Every group within 5 standard deviations of the mean (a
             * binomial count: sigma is about sqrt(mean)). */
            double mean = (double)NKEYS / maxp;
            double tol = 5.0 * sqrt(mean);
            for (int g = 0; g < maxp; g++) {
                if (counts[g] < mean - tol || counts[g] > mean + tol) {
                    fail_msg("maxp %d: key group %d got %d keys, mean %.1f",
                             maxp, g, counts[g], mean);
                }
            }
        } else {
            /* 100k keys over 32768 groups: expect ~95% of groups used. */
            int used = 0;
            for (int g = 0; g < maxp; g++) {
                used += counts[g] > 0;
            }
            assert_true(used > maxp * 9 / 10);
        }
    }
    free(counts);
}

static void test_key_group_extremes(void **state)
{
    (void)state;
    /* The key group uses the hash's high 32 bits only. */
    assert_int_equal(eddy__key_group(0, 128), 0);
    assert_int_equal(eddy__key_group(UINT64_MAX, 128), 127);
    assert_int_equal(eddy__key_group(0xffffffffull, 128), 0);
    assert_int_equal(eddy__key_group(0x8000000000000000ull, 128), 64);
    assert_int_equal(eddy__key_group(UINT64_MAX, 32768), 32767);
    assert_int_equal(eddy__key_group(UINT64_MAX, 1), 0);
}

/* Checks ranges for one (maxp, p): contiguous, covering, agreeing. */
static void check_ranges(int maxp, int p)
{
    int expect_first = 0;
    for (int s = 0; s < p; s++) {
        int first = -1, last = -1;
        eddy__key_group_range(s, maxp, p, &first, &last);
        if (first != expect_first) {
            fail_msg("maxp %d p %d subtask %d: first %d, expected %d", maxp, p,
                     s, first, expect_first);
        }
        if (p <= maxp && last < first) {
            fail_msg("maxp %d p %d subtask %d: empty range [%d, %d]", maxp, p,
                     s, first, last);
        }
        for (int kg = first; kg <= last; kg++) {
            int owner = eddy__key_group_subtask(kg, maxp, p);
            if (owner != s) {
                fail_msg("maxp %d p %d: key group %d in range of subtask %d "
                         "but owned by %d",
                         maxp, p, kg, s, owner);
            }
        }
        /* Ranges are balanced: sizes differ by at most one. */
        int size = last - first + 1;
        int lo = maxp / p;
        if (size < lo || size > lo + 1) {
            fail_msg("maxp %d p %d subtask %d: range size %d", maxp, p, s,
                     size);
        }
        expect_first = last + 1;
    }
    assert_int_equal(expect_first, maxp);
}

static void test_key_group_ranges(void **state)
{
    (void)state;
    static const int maxps[] = {1, 2, 3, 7, 10, 128, 1000, 4096, 32768};
    for (size_t m = 0; m < EDDY_ARRAY_SIZE(maxps); m++) {
        int maxp = maxps[m];
        for (int p = 1; p <= maxp && p <= 70; p++) {
            check_ranges(maxp, p);
        }
        static const int more[] = {100,  127,  128,  129,   999,
                                   1000, 4095, 4096, 32767, 32768};
        for (size_t k = 0; k < EDDY_ARRAY_SIZE(more); k++) {
            if (more[k] > 70 && more[k] <= maxp) {
                check_ranges(maxp, more[k]);
            }
        }
    }
    /* A few exact values. */
    int f, l;
    eddy__key_group_range(0, 128, 3, &f, &l);
    assert_int_equal(f, 0);
    assert_int_equal(l, 42);
    eddy__key_group_range(1, 128, 3, &f, &l);
    assert_int_equal(f, 43);
    assert_int_equal(l, 85);
    eddy__key_group_range(2, 128, 3, &f, &l);
    assert_int_equal(f, 86);
    assert_int_equal(l, 127);
    eddy__key_group_range(3, 10, 4, &f, &l);
    assert_int_equal(f, 8);
    assert_int_equal(l, 9);
}

static void test_hash_channel_consistent(void **state)
{
    (void)state;
    static const int ps[] = {1, 2, 3, 4, 5, 8, 13, 64, 128};
    uint64_t rng = 99;
    for (int i = 0; i < 20000; i++) {
        unsigned char key[24];
        size_t len = (size_t)(tu_rand(&rng) % sizeof(key));
        for (size_t k = 0; k < len; k++) {
            key[k] = (unsigned char)tu_rand(&rng);
        }
        eddy_record_t rec = {key, len, "v", 1, EDDY_TS_NONE};
        int kg = eddy__key_group(eddy__hash64(key, len), 128);
        for (size_t j = 0; j < EDDY_ARRAY_SIZE(ps); j++) {
            int ch = eddy__hash_channel(&rec, 128, ps[j]);
            assert_in_range(ch, 0, ps[j] - 1);
            assert_int_equal(ch, eddy__key_group_subtask(kg, 128, ps[j]));
            int first, last;
            eddy__key_group_range(ch, 128, ps[j], &first, &last);
            assert_in_range(kg, first, last);
        }
        /* The value and timestamp never influence the channel. */
        eddy_record_t other = {key, len, "other value", 11, 12345};
        assert_int_equal(eddy__hash_channel(&other, 128, 7),
                         eddy__hash_channel(&rec, 128, 7));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_known_answers),
        cmocka_unit_test(test_hash_empty_and_null),
        cmocka_unit_test(test_hash_independent_of_alignment),
        cmocka_unit_test(test_hash_length_matters),
        cmocka_unit_test(test_hash_avalanche),
        cmocka_unit_test(test_key_group_in_range_and_uniform),
        cmocka_unit_test(test_key_group_extremes),
        cmocka_unit_test(test_key_group_ranges),
        cmocka_unit_test(test_hash_channel_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
