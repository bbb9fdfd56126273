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

/* ---- removal, compaction, sized tables ---- */

static void test_remove_basic(void **state)
{
    (void)state;
    eddy__kv_table_t kt;
    eddy__kv_init(&kt);
    /* Removing from a table that never held anything. */
    assert_int_equal(eddy__kv_remove(&kt, h("a", 1), "a", 1), 0);
    put(&kt, "a", "1", 1, true);
    put(&kt, "b", "2", 1, true);
    put(&kt, "c", "3", 1, true);
    assert_int_equal(eddy__kv_remove(&kt, h("b", 1), "b", 1), 1);
    assert_int_equal(kt.kt_count, 2);
    assert_null(get(&kt, "b"));
    assert_non_null(get(&kt, "a"));
    assert_non_null(get(&kt, "c"));
    /* Twice, and an absent key, and the same bytes under another hash. */
    assert_int_equal(eddy__kv_remove(&kt, h("b", 1), "b", 1), 0);
    assert_int_equal(eddy__kv_remove(&kt, h("zz", 2), "zz", 2), 0);
    assert_int_equal(eddy__kv_remove(&kt, h("a", 1) + 1, "a", 1), 0);
    assert_int_equal(kt.kt_count, 2);
    /* The removed entry's bytes are dead arena bytes now. */
    assert_int_equal(kt.kt_dead, 16); /* key 1 + vcap 8, rounded to 8 */
    /* Re-inserting creates a fresh entry. */
    eddy__kv_entry_t *e = put(&kt, "b", "22", 2, true);
    TU_ASSERT_BYTES(eddy__kv_value(e), e->kv_vlen, "22", 2);
    /* Removal through an entry pointer. */
    eddy__kv_remove_entry(&kt, get(&kt, "a"));
    assert_null(get(&kt, "a"));
    assert_int_equal(kt.kt_count, 2);
    eddy__kv_close(&kt);
}

/* Hash with a chosen home slot (low bits) and distinct high bits. */
static uint64_t homed(uint32_t id, size_t home)
{
    return (uint64_t)(id + 1) << 32 | home;
}

static void test_remove_backward_shift(void **state)
{
    (void)state;
    /* A table of 16 slots; runs that wrap around the end and mix entries
     * of different homes, removed in every order: after each removal the
     * other entries must still be found, with no tombstones left (a
     * lookup of an absent key ends at the first empty slot). */
    enum { N = 7 };
    static const size_t homes[N] = {14, 14, 15, 0, 14, 1, 15};
    int order[N];
    for (int perm = 0; perm < 200; perm++) {
        uint64_t seed = (uint64_t)perm + 1;
        for (int i = 0; i < N; i++) {
            order[i] = i;
        }
        for (int i = N - 1; i > 0; i--) {
            int j = (int)(tu_rand(&seed) % (uint64_t)(i + 1));
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        eddy__kv_table_t kt;
        eddy__kv_init_sized(&kt, 16, 64);
        for (uint32_t i = 0; i < N; i++) {
            bool created;
            assert_non_null(eddy__kv_upsert(&kt, homed(i, homes[i]), &i,
                                            sizeof(i), 0, &created));
            assert_true(created);
        }
        assert_int_equal(kt.kt_mask, 15);
        bool gone[N] = {false};
        for (int r = 0; r < N; r++) {
            uint32_t victim = (uint32_t)order[r];
            assert_int_equal(eddy__kv_remove(&kt, homed(victim, homes[victim]),
                                             &victim, sizeof(victim)),
                             1);
            gone[victim] = true;
            size_t used = 0;
            for (size_t s = 0; s <= kt.kt_mask; s++) {
                used += kt.kt_slots[s].kv_data != NULL;
            }
            assert_int_equal(used, kt.kt_count);
            for (uint32_t i = 0; i < N; i++) {
                eddy__kv_entry_t *e =
                    eddy__kv_find(&kt, homed(i, homes[i]), &i, sizeof(i));
                if (gone[i]) {
                    assert_null(e);
                } else if (e == NULL) {
                    fail_msg("perm %d: entry %u lost after removing %u", perm,
                             i, victim);
                }
                /* Every entry sits within its probe run: no empty slot
                 * between its home and its position. */
                if (e != NULL) {
                    for (size_t s = homes[i]; &kt.kt_slots[s] != e;
                         s = (s + 1) & kt.kt_mask) {
                        assert_non_null(kt.kt_slots[s].kv_data);
                    }
                }
            }
        }
        assert_int_equal(kt.kt_count, 0);
        eddy__kv_close(&kt);
    }
}

static void test_remove_random_against_model(void **state)
{
    (void)state;
    /* Inserts and removals of keys from a small universe whose hashes
     * crowd a few home slots, checked against a presence array. */
    enum { U = 3000, OPS = 200000 };
    static bool present[U];
    memset(present, 0, sizeof(present));
    eddy__kv_table_t kt;
    eddy__kv_init_sized(&kt, 4, 64);
    uint64_t seed = 99;
    size_t count = 0;
    for (int op = 0; op < OPS; op++) {
        uint32_t k = (uint32_t)(tu_rand(&seed) % U);
        uint64_t hash = homed(k, k % 37); /* clustered low bits */
        if (tu_rand(&seed) % 2 == 0) {
            bool created;
            eddy__kv_entry_t *e =
                eddy__kv_upsert(&kt, hash, &k, sizeof(k), 0, &created);
            assert_non_null(e);
            assert_int_equal(created, !present[k]);
            assert_int_equal(eddy__kv_set_value(&kt, e, &k, sizeof(k)), 0);
            count += !present[k];
            present[k] = true;
        } else {
            assert_int_equal(eddy__kv_remove(&kt, hash, &k, sizeof(k)),
                             present[k]);
            count -= present[k];
            present[k] = false;
        }
        assert_int_equal(kt.kt_count, count);
        if (op % 20000 == 19999) {
            for (uint32_t i = 0; i < U; i++) {
                eddy__kv_entry_t *e =
                    eddy__kv_find(&kt, homed(i, i % 37), &i, sizeof(i));
                assert_int_equal(e != NULL, present[i]);
                if (e != NULL) {
                    uint32_t v;
                    memcpy(&v, eddy__kv_value(e), sizeof(v));
                    assert_int_equal(v, i);
                }
            }
        }
    }
    eddy__kv_close(&kt);
}

static void test_compact(void **state)
{
    (void)state;
    enum { N = 20000 };
    eddy__kv_table_t kt;
    eddy__kv_init(&kt);
    char key[32];
    char val[100];
    memset(val, 'v', sizeof(val));
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "c%d", i);
        put(&kt, key, val, 1 + (size_t)i % 50, true);
    }
    /* Growing values move them: the old space counts as dead. */
    size_t dead0 = kt.kt_dead;
    eddy__kv_entry_t *e = get(&kt, "c7");
    assert_int_equal(eddy__kv_set_value(&kt, e, val, 100), 0);
    assert_true(kt.kt_dead > dead0);
    for (int i = 0; i < N; i++) {
        if (i % 8 != 0) {
            snprintf(key, sizeof(key), "c%d", i);
            assert_int_equal(
                eddy__kv_remove(&kt, h(key, strlen(key)), key, strlen(key)), 1);
        }
    }
    size_t cap = kt.kt_mask + 1;
    size_t arena = kt.kt_arena.ar_bytes;
    assert_true(kt.kt_dead > arena / 2);
    assert_int_equal(eddy__kv_compact(&kt), 0);
    assert_int_equal(kt.kt_dead, 0);
    assert_true(kt.kt_arena.ar_bytes <= arena - kt.kt_dead);
    assert_true(kt.kt_arena.ar_bytes < arena / 4);
    assert_true(kt.kt_mask + 1 < cap);
    assert_true(kt.kt_count * 4 <= kt.kt_mask + 1);
    assert_int_equal(kt.kt_count, N / 8);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "c%d", i);
        e = get(&kt, key);
        if (i % 8 != 0) {
            assert_null(e);
            continue;
        }
        assert_non_null(e);
        TU_ASSERT_BYTES(e->kv_data, e->kv_klen, key, strlen(key));
        TU_ASSERT_BYTES(eddy__kv_value(e), e->kv_vlen, val, 1 + (size_t)i % 50);
        assert_int_equal(e->kv_vcap, e->kv_vlen);
    }
    /* The table keeps working: grow a value, insert more. */
    e = get(&kt, "c8");
    assert_int_equal(eddy__kv_set_value(&kt, e, val, sizeof(val)), 0);
    put(&kt, "new", "n", 1, true);
    e = get(&kt, "c8");
    TU_ASSERT_BYTES(eddy__kv_value(e), e->kv_vlen, val, sizeof(val));
    /* Compacting a table that never shrinks below its initial size. */
    eddy__kv_table_t small;
    eddy__kv_init(&small);
    put(&small, "x", "y", 1, true);
    assert_int_equal(eddy__kv_compact(&small), 0);
    assert_int_equal(small.kt_mask + 1, 1024);
    e = get(&small, "x");
    TU_ASSERT_BYTES(eddy__kv_value(e), e->kv_vlen, "y", 1);
    /* ... nor grows: a table at load 0.4 keeps its slot array. */
    eddy__kv_table_t busy;
    eddy__kv_init(&busy);
    for (int i = 0; i < 400; i++) {
        snprintf(key, sizeof(key), "b%d", i);
        put(&busy, key, "v", 1, true);
    }
    assert_int_equal(busy.kt_mask + 1, 1024);
    assert_int_equal(eddy__kv_compact(&busy), 0);
    assert_int_equal(busy.kt_mask + 1, 1024);
    for (int i = 0; i < 400; i++) {
        snprintf(key, sizeof(key), "b%d", i);
        assert_non_null(get(&busy, key));
    }
    eddy__kv_close(&busy);
    /* An emptied table gives everything back and can be reused. */
    assert_int_equal(eddy__kv_remove(&small, h("x", 1), "x", 1), 1);
    assert_int_equal(eddy__kv_compact(&small), 0);
    assert_null(small.kt_slots);
    assert_int_equal(small.kt_arena.ar_bytes, 0);
    assert_null(get(&small, "x"));
    put(&small, "x", "z", 1, true);
    e = get(&small, "x");
    TU_ASSERT_BYTES(eddy__kv_value(e), e->kv_vlen, "z", 1);
    eddy__kv_close(&small);
    eddy__kv_close(&kt);
}

static void test_reserve_value(void **state)
{
    (void)state;
    eddy__kv_table_t kt;
    eddy__kv_init(&kt);
    eddy__kv_entry_t *e = put(&kt, "r", "abcdef", 6, true);
    assert_int_equal(e->kv_vcap, 8);
    /* Within capacity: in place. */
    unsigned char *p = eddy__kv_reserve_value(&kt, e, 8);
    assert_ptr_equal(p, eddy__kv_value(e));
    assert_int_equal(e->kv_vlen, 8);
    assert_memory_equal(p, "abcdef", 6);
    assert_int_equal(kt.kt_dead, 0);
    /* Beyond: moves, keeping the key and the value's prefix. */
    unsigned char *q = eddy__kv_reserve_value(&kt, e, 1000);
    assert_non_null(q);
    assert_ptr_not_equal(q, p);
    assert_int_equal(e->kv_vlen, 1000);
    assert_true(e->kv_vcap >= 1000);
    assert_memory_equal(q, "abcdef", 6);
    TU_ASSERT_BYTES(e->kv_data, e->kv_klen, "r", 1);
    assert_int_equal(kt.kt_dead, 16);
    /* Shrinking keeps the prefix in place. */
    assert_ptr_equal(eddy__kv_reserve_value(&kt, e, 3), q);
    assert_int_equal(e->kv_vlen, 3);
    assert_memory_equal(eddy__kv_value(e), "abc", 3);
    /* Too large for an entry. */
    assert_null(eddy__kv_reserve_value(&kt, e, (size_t)UINT32_MAX));
    assert_int_equal(e->kv_vlen, 3);
    eddy__kv_close(&kt);
}

static void test_init_sized(void **state)
{
    (void)state;
    eddy__kv_table_t kt;
    eddy__kv_init_sized(&kt, 5, 100); /* rounds up to 8 slots */
    assert_int_equal(kt.kt_count, 0);
    put(&kt, "a", "1", 1, true);
    assert_int_equal(kt.kt_mask + 1, 8);
    assert_int_equal(kt.kt_arena.ar_chunk_size, 104);
    /* The arena's chunks grow with the table, up to 256 KiB. */
    char key[32];
    for (int i = 0; i < 50000; i++) {
        snprintf(key, sizeof(key), "s%d", i);
        put(&kt, key, "v", 1, true);
    }
    assert_int_equal(kt.kt_arena.ar_chunk_size, 256 * 1024);
    assert_int_equal(kt.kt_count, 50001);
    for (int i = 0; i < 50000; i += 97) {
        snprintf(key, sizeof(key), "s%d", i);
        assert_non_null(get(&kt, key));
    }
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
        cmocka_unit_test(test_remove_basic),
        cmocka_unit_test(test_remove_backward_shift),
        cmocka_unit_test(test_remove_random_against_model),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_reserve_value),
        cmocka_unit_test(test_init_sized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
