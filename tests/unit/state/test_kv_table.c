/*
 * eddy — unit tests for src/state/kv_table.c: the heap key/value table
 * behind keyed state.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

#include "state/kv_table.h"

static uint64_t h(const void *k, size_t n)
{
    return eddy__hash64(k, n);
}

static eddy__kv_entry_t *put(eddy__kv_table_t *kt, const char *key,
                             const void *val, size_t vlen, bool expect_new)
{
    bool created = !expect_new;
    size_t klen = strlen(key);
    eddy__kv_entry_t *e =
        eddy__kv_upsert(kt, h(key, klen), key, klen, 8, &created);
    assert_non_null(e);
    assert_int_equal(created, expect_new);
    assert_int_equal(eddy__kv_set_value(kt, e, val, vlen), 0);
    return e;
}

static eddy__kv_entry_t *get(eddy__kv_table_t *kt, const char *key)
{
    size_t klen = strlen(key);
    return eddy__kv_find(kt, h(key, klen), key, klen);
}

static void test_empty_table(void **state)
{
    (void)state;
    eddy__kv_table_t kt;
    eddy__kv_init(&kt);
    assert_null(get(&kt, "nothing"));
    assert_int_equal(kt.kt_count, 0);
    eddy__kv_close(&kt);
    /* A closed table is empty and can be closed again. */
    assert_null(kt.kt_slots);
    eddy__kv_close(&kt);
}

static void test_insert_find_many(void **state)
{
    (void)state;
    enum { N = 200000 };
    eddy__kv_table_t kt;
    eddy__kv_init(&kt);
    char key[32];
    size_t last_cap = 0;
    int resizes = 0;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        int64_t v = (int64_t)i * 3;
        eddy__kv_entry_t *e = put(&kt, key, &v, sizeof(v), true);
        assert_int_equal(e->kv_klen, strlen(key));
        assert_memory_equal(e->kv_data, key, strlen(key));
        assert_int_equal(kt.kt_count, (size_t)i + 1);
        /* The load factor stays at most 1/2. */
        assert_true(kt.kt_count * 2 <= kt.kt_mask + 1);
        if (kt.kt_mask + 1 != last_cap) {
            resizes++;
            last_cap = kt.kt_mask + 1;
            /* Everything inserted so far survived the resize. */
            for (int j = 0; j <= i; j += 1 + i / 500) {
                snprintf(key, sizeof(key), "key-%d", j);
                eddy__kv_entry_t *f = get(&kt, key);
                assert_non_null(f);
                int64_t got;
                memcpy(&got, eddy__kv_value(f), sizeof(got));
                assert_int_equal(got, (int64_t)j * 3);
            }
        }
    }
    assert_true(resizes >= 9); /* 1024 -> 524288 slots */
    assert_int_equal(kt.kt_mask + 1, 524288);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        eddy__kv_entry_t *e = get(&kt, key);
        if (e == NULL) {
            fail_msg("key %s lost", key);
        }
        assert_int_equal(e->kv_vlen, sizeof(int64_t));
        int64_t got;
        memcpy(&got, eddy__kv_value(e), sizeof(got));
        assert_int_equal(got, (int64_t)i * 3);
    }
    /* Absent keys, including prefixes and extensions of present ones. */
    assert_null(get(&kt, "key-200000"));
    assert_null(get(&kt, "key-"));
    assert_null(get(&kt, "key-12345x"));
    assert_null(get(&kt, ""));
    /* Upserting an existing key finds it. */
    bool created = true;
    eddy__kv_entry_t *e =
        eddy__kv_upsert(&kt, h("key-77", 6), "key-77", 6, 8, &created);
    assert_false(created);
    int64_t got;
    memcpy(&got, eddy__kv_value(e), sizeof(got));
    assert_int_equal(got, 231);
    assert_int_equal(kt.kt_count, N);
    eddy__kv_close(&kt);
}

static void test_new_entry_value_space(void **state)
{
    (void)state;
    eddy__kv_table_t kt;
    eddy__kv_init(&kt);
    bool created;
    eddy__kv_entry_t *e = eddy__kv_upsert(&kt, h("k", 1), "k", 1, 40, &created);
    assert_true(created);
    /* A new entry has zeroed value space and no value yet. */
    assert_int_equal(e->kv_vlen, 0);
    assert_int_equal(e->kv_vcap, 40);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(eddy__kv_value(e)[i], 0);
    }
    assert_ptr_equal(eddy__kv_value(e), e->kv_data + 1);
    /* No value space at all is allowed too. */
    e = eddy__kv_upsert(&kt, h("z", 1), "z", 1, 0, &created);
    assert_true(created);
    assert_int_equal(e->kv_vcap, 0);
    assert_int_equal(eddy__kv_set_value(&kt, e, "abc", 3), 0);
    assert_memory_equal(eddy__kv_value(e), "abc", 3);
    TU_ASSERT_BYTES(e->kv_data, e->kv_klen, "z", 1);
    eddy__kv_close(&kt);
}

static void test_growing_values(void **state)
{
    (void)state;
    eddy__kv_table_t kt;
    eddy__kv_init(&kt);
    unsigned char *big = malloc(100100);
    for (size_t i = 0; i < 100100; i++) {
        big[i] = (unsigned char)(i * 7 + 1);
    }
    /* Many keys, each value set to ever larger sizes (and back down),
     * interleaved so the entries' space moves around the arena. */
    static const size_t sizes[] = {0,   1,    8,     9, 63,     64, 65,
                                   200, 1000, 99999, 5, 100000, 12};
    char key[32];
    for (size_t s = 0; s < EDDY_ARRAY_SIZE(sizes); s++) {
        for (int k = 0; k < 50; k++) {
            snprintf(key, sizeof(key), "grow-%d", k);
            size_t klen = strlen(key);
            bool created;
            eddy__kv_entry_t *e =
                eddy__kv_upsert(&kt, h(key, klen), key, klen, 8, &created);
            assert_int_equal(created, s == 0);
            uint32_t cap_before = e->kv_vcap;
            assert_int_equal(eddy__kv_set_value(&kt, e, big + k, sizes[s]), 0);
            assert_int_equal(e->kv_vlen, sizes[s]);
            assert_true(e->kv_vcap >= sizes[s]);
            if (sizes[s] <= cap_before) {
                assert_int_equal(e->kv_vcap, cap_before); /* no move */
            }
            /* The key is intact after a move. */
            TU_ASSERT_BYTES(e->kv_data, e->kv_klen, key, klen);
        }
        for (int k = 0; k < 50; k++) {
            snprintf(key, sizeof(key), "grow-%d", k);
            eddy__kv_entry_t *e = get(&kt, key);
            assert_non_null(e);
            TU_ASSERT_BYTES(eddy__kv_value(e), e->kv_vlen, big + k, sizes[s]);
        }
    }
    assert_int_equal(kt.kt_count, 50);
    free(big);
    eddy__kv_close(&kt);
}

static void test_set_value_from_itself(void **state)
{
    (void)state;
    eddy__kv_table_t kt;
    eddy__kv_init(&kt);
    eddy__kv_entry_t *e = put(&kt, "self", "0123456789", 10, true);
    /* Shift left within the same space (overlapping). */
    assert_int_equal(eddy__kv_set_value(&kt, e, eddy__kv_value(e) + 2, 8), 0);
    TU_ASSERT_BYTES(eddy__kv_value(e), e->kv_vlen, "23456789", 8);
    /* Grow from its own bytes: the old bytes stay readable while moving. */
    unsigned char *old = eddy__kv_value(e);
    uint32_t old_cap = e->kv_vcap;
    unsigned char buf[200];
    memcpy(buf, old, 8);
    memset(buf + 8, 'x', sizeof(buf) - 8);
    assert_int_equal(eddy__kv_set_value(&kt, e, old, 8), 0);
    assert_int_equal(e->kv_vcap, old_cap);
    assert_int_equal(eddy__kv_set_value(&kt, e, buf, sizeof(buf)), 0);
    assert_true(e->kv_vcap >= sizeof(buf));
    TU_ASSERT_BYTES(eddy__kv_value(e), e->kv_vlen, buf, sizeof(buf));
    TU_ASSERT_BYTES(e->kv_data, e->kv_klen, "self", 4);
    eddy__kv_close(&kt);
}

static void test_hash_collisions(void **state)
{
    (void)state;
    /* Every key with the same full hash: lookups fall back to comparing
     * key bytes, including keys that are prefixes of each other. */
    eddy__kv_table_t kt;
    eddy__kv_init(&kt);
    enum { N = 300 };
    char key[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "%d", i);
        bool created;
        eddy__kv_entry_t *e =
            eddy__kv_upsert(&kt, 42, key, (size_t)n, 4, &created);
        assert_true(created);
        int32_t v = i;
        assert_int_equal(eddy__kv_set_value(&kt, e, &v, sizeof(v)), 0);
    }
    /* The empty key and a NUL byte key collide too. */
    bool created;
    eddy__kv_entry_t *e = eddy__kv_upsert(&kt, 42, "", 0, 0, &created);
    assert_true(created);
    e = eddy__kv_upsert(&kt, 42, "\0", 1, 0, &created);
    assert_true(created);
    assert_int_equal(kt.kt_count, N + 2);
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "%d", i);
        e = eddy__kv_find(&kt, 42, key, (size_t)n);
        assert_non_null(e);
        int32_t v;
        memcpy(&v, eddy__kv_value(e), sizeof(v));
        assert_int_equal(v, i);
        /* The same bytes under another hash are a different key. */
        assert_null(eddy__kv_find(&kt, 43, key, (size_t)n));
    }
    e = eddy__kv_find(&kt, 42, "", 0);
    assert_non_null(e);
    assert_int_equal(e->kv_klen, 0);
    e = eddy__kv_find(&kt, 42, "\0", 1);
    assert_non_null(e);
    assert_int_equal(e->kv_klen, 1);
    assert_null(eddy__kv_find(&kt, 42, "300", 3));
    eddy__kv_close(&kt);
}

static void test_clustered_low_bits(void **state)
{
    (void)state;
    /* Hashes that differ only in high bits all start probing at slot 0:
     * long probe chains that wrap around the table end. */
    eddy__kv_table_t kt;
    eddy__kv_init(&kt);
    enum { N = 2000 };
    for (uint32_t i = 0; i < N; i++) {
        uint64_t hash = (uint64_t)i << 40 | 1023; /* last slot first */
        bool created;
        eddy__kv_entry_t *e =
            eddy__kv_upsert(&kt, hash, &i, sizeof(i), 0, &created);
        assert_true(created);
        assert_int_equal(eddy__kv_set_value(&kt, e, &i, sizeof(i)), 0);
    }
    for (uint32_t i = 0; i < N; i++) {
        uint64_t hash = (uint64_t)i << 40 | 1023;
        eddy__kv_entry_t *e = eddy__kv_find(&kt, hash, &i, sizeof(i));
        assert_non_null(e);
        uint32_t v;
        memcpy(&v, eddy__kv_value(e), sizeof(v));
        assert_int_equal(v, i);
    }
    uint32_t absent = N;
    assert_null(eddy__kv_find(&kt, (uint64_t)absent << 40 | 1023, &absent,
                              sizeof(absent)));
    eddy__kv_close(&kt);
}

static void test_large_keys(void **state)
{
    (void)state;
    eddy__kv_table_t kt;
    eddy__kv_init(&kt);
    enum { KLEN = 300000 }; /* larger than an arena chunk */
    unsigned char *k1 = malloc(KLEN), *k2 = malloc(KLEN);
    memset(k1, 'a', KLEN);
    memset(k2, 'a', KLEN);
    k2[KLEN - 1] = 'b';
    bool created;
    eddy__kv_entry_t *e =
        eddy__kv_upsert(&kt, h(k1, KLEN), k1, KLEN, 8, &created);
    assert_true(created);
    assert_int_equal(eddy__kv_set_value(&kt, e, "one", 3), 0);
    e = eddy__kv_upsert(&kt, h(k2, KLEN), k2, KLEN, 8, &created);
    assert_true(created);
    assert_int_equal(eddy__kv_set_value(&kt, e, "two", 3), 0);
    e = eddy__kv_find(&kt, h(k1, KLEN), k1, KLEN);
    TU_ASSERT_BYTES(eddy__kv_value(e), e->kv_vlen, "one", 3);
    e = eddy__kv_find(&kt, h(k2, KLEN), k2, KLEN);
    TU_ASSERT_BYTES(eddy__kv_value(e), e->kv_vlen, "two", 3);
    /* Growing the value copies the large key along. */
    unsigned char v[1000];
    memset(v, 'v', sizeof(v));
    assert_int_equal(eddy__kv_set_value(&kt, e, v, sizeof(v)), 0);
    TU_ASSERT_BYTES(e->kv_data, e->kv_klen, k2, KLEN);
    TU_ASSERT_BYTES(eddy__kv_value(e), e->kv_vlen, v, sizeof(v));
    free(k1);
    free(k2);
    eddy__kv_close(&kt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_table),
        cmocka_unit_test(test_insert_find_many),
        cmocka_unit_test(test_new_entry_value_space),
        cmocka_unit_test(test_growing_values),
        cmocka_unit_test(test_set_value_from_itself),
        cmocka_unit_test(test_hash_collisions),
        cmocka_unit_test(test_clustered_low_bits),
        cmocka_unit_test(test_large_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
