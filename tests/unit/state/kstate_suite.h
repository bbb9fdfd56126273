/*
 * eddy — the behavioural cases every keyed-state backend must pass (value,
 * list, map, reducing and aggregating state; namespaces; key groups; TTL;
 * get_for_update), shared by test_heap_backend.c and
 * test_rocksdb_backend.c so that both backends are held to exactly the same
 * observable semantics.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The including file defines, before including this header:
 *   static eddy__kstate_t *suite_new(const eddy__state_spec_t *specs,
 *                                    int nstates, int kg_first, int kg_last);
 *   static const suite_caps_t SUITE_CAPS = {...};   (after the typedef:
 *   include this header, then define it; it is declared here)
 * and registers the cases with KSTATE_SUITE_TESTS(T, U): T(name) for cases
 * that run on the fixture backend (setup/teardown), U(name) for the others.
 *
 * What differs between backends is stated as capabilities, not hidden:
 * only the heap backend promises exact memory accounting (ko_size falls
 * back to its starting value when state is removed, values updated in
 * place never move). A RocksDB backend reports live file and memtable
 * bytes, which removals grow (tombstones) until compaction.
 */
#ifndef EDDY_TESTS_UNIT_STATE_KSTATE_SUITE_H
#define EDDY_TESTS_UNIT_STATE_KSTATE_SUITE_H

#include "test_util.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "state/state.h"

typedef struct suite_caps {
    const char *sc_name;  /* ko_name */
    bool sc_exact_memory; /* ko_size exact, in-place values never move */
    int sc_time_factor;   /* time budgets of the speed checks, x */
} suite_caps_t;

static eddy__kstate_t *suite_new(const eddy__state_spec_t *specs, int nstates,
                                 int kg_first, int kg_last);
static const suite_caps_t SUITE_CAPS;

#define MAXP 128 /* max parallelism: key groups 0..127 */
#define TTL 100

enum { S_VAL, S_LIST, S_MAP, S_RED, S_AGG, S_VAL2, NSTATES };

static const eddy__state_spec_t specs[NSTATES] = {
    {"value", EDDY_STATE_VALUE, 0},
    {"list", EDDY_STATE_LIST, 0},
    {"map", EDDY_STATE_MAP, 0},
    {"reducing", EDDY_STATE_REDUCING, 0},
    {"aggregating", EDDY_STATE_AGGREGATING, 0},
    {"value2", EDDY_STATE_VALUE, 0},
};

enum { T_VAL, T_LIST, T_MAP, T_NSTATES };

static const eddy__state_spec_t ttl_specs[T_NSTATES] = {
    {"tvalue", EDDY_STATE_VALUE, TTL},
    {"tlist", EDDY_STATE_LIST, TTL},
    {"tmap", EDDY_STATE_MAP, TTL},
};

/* ---- helpers ---- */

static eddy__skey_t mk(const void *key, size_t klen, const void *ns,
                       size_t nslen, int maxp)
{
    eddy__skey_t k;
    k.sk_key = key;
    k.sk_klen = klen;
    k.sk_hash = eddy__hash64(key, klen);
    k.sk_kg = eddy__key_group(k.sk_hash, maxp);
    k.sk_ns = ns;
    k.sk_nslen = nslen;
    return k;
}

/* A string key in a string namespace (NULL = none). */
static eddy__skey_t mks(const char *key, const char *ns)
{
    return mk(key, strlen(key), ns, ns != NULL ? strlen(ns) : 0, MAXP);
}

static void put_s(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                  const char *v)
{
    assert_int_equal(ks->ks_ops->ko_put(ks, sid, k, v, strlen(v)), 0);
}

/* Asserts the value of k (NULL = absent). */
static void check_val(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                      const char *want)
{
    const void *v = NULL;
    size_t len = 0;
    int found = ks->ks_ops->ko_get(ks, sid, k, &v, &len);
    if (want == NULL) {
        assert_int_equal(found, 0);
        return;
    }
    assert_int_equal(found, 1);
    TU_ASSERT_BYTES(v, len, want, strlen(want));
}

static void list_add_s(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                       const char *v)
{
    assert_int_equal(ks->ks_ops->ko_list_add(ks, sid, k, v, strlen(v)), 0);
}

/* Asserts a list's elements, joined with ','; NULL = no list. */
static void check_list(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                       const char *want)
{
    eddy__siter_t it;
    int found = ks->ks_ops->ko_list_iter(ks, sid, k, &it);
    if (want == NULL) {
        assert_int_equal(found, 0);
        return;
    }
    assert_int_equal(found, 1);
    char buf[1024];
    size_t n = 0;
    const void *v;
    size_t len;
    while (ks->ks_ops->ko_list_next(&it, &v, &len)) {
        assert_true(n + len + 1 < sizeof(buf));
        if (n > 0) {
            buf[n++] = ',';
        }
        memcpy(buf + n, v, len);
        n += len;
    }
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void map_put_s(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                      const char *uk, const char *v)
{
    assert_int_equal(
        ks->ks_ops->ko_map_put(ks, sid, k, uk, strlen(uk), v, strlen(v)), 0);
}

static void check_map(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                      const char *uk, const char *want)
{
    const void *v = NULL;
    size_t len = 0;
    int found = ks->ks_ops->ko_map_get(ks, sid, k, uk, strlen(uk), &v, &len);
    if (want == NULL) {
        assert_int_equal(found, 0);
        return;
    }
    assert_int_equal(found, 1);
    TU_ASSERT_BYTES(v, len, want, strlen(want));
}

/* Number of entries a map iteration yields (0 = no map). */
static size_t map_count(eddy__kstate_t *ks, int sid, const eddy__skey_t *k)
{
    eddy__siter_t it;
    if (!ks->ks_ops->ko_map_iter(ks, sid, k, &it)) {
        return 0;
    }
    size_t n = 0;
    const void *uk, *v;
    size_t uklen, vlen;
    while (ks->ks_ops->ko_map_next(&it, &uk, &uklen, &v, &vlen)) {
        n++;
    }
    return n;
}

/* for_each collector. */
typedef struct seen {
    size_t n;
    size_t stop_after; /* 0 = never stop */
    char keys[64][32];
    char nss[64][32];
} seen_t;

static int collect(void *arg, const void *key, size_t klen, const void *ns,
                   size_t nslen)
{
    seen_t *s = arg;
    if (s->n < 64) {
        assert_true(klen < 32 && nslen < 32);
        memcpy(s->keys[s->n], key, klen);
        s->keys[s->n][klen] = '\0';
        memcpy(s->nss[s->n], ns, nslen);
        s->nss[s->n][nslen] = '\0';
    }
    s->n++;
    return s->stop_after != 0 && s->n >= s->stop_after ? 7 : 0;
}

static bool seen_has(const seen_t *s, const char *key, const char *ns)
{
    for (size_t i = 0; i < s->n && i < 64; i++) {
        if (strcmp(s->keys[i], key) == 0 && strcmp(s->nss[i], ns) == 0) {
            return true;
        }
    }
    return false;
}

static int count_cb(void *arg, const void *key, size_t klen, const void *ns,
                    size_t nslen)
{
    (void)key;
    (void)klen;
    (void)ns;
    (void)nslen;
    (*(size_t *)arg)++;
    return 0;
}

/* Entries of a state over all key groups. */
static size_t count_all(eddy__kstate_t *ks, int sid)
{
    size_t n = 0;
    for (int kg = ks->ks_kg_first; kg <= ks->ks_kg_last; kg++) {
        assert_int_equal(ks->ks_ops->ko_for_each(ks, sid, kg, count_cb, &n), 0);
    }
    return n;
}

static int setup(void **state)
{
    eddy__kstate_t *ks = suite_new(specs, NSTATES, 0, MAXP - 1);
    assert_non_null(ks);
    *state = ks;
    return 0;
}

static int teardown(void **state)
{
    eddy__kstate_destroy(*state);
    return 0;
}

/* ---- value state ---- */

static void test_new_and_destroy(void **state)
{
    (void)state;
    eddy__kstate_destroy(NULL); /* a no-op */
    eddy__kstate_t *ks = suite_new(specs, NSTATES, 10, 20);
    assert_non_null(ks);
    assert_string_equal(ks->ks_ops->ko_name, SUITE_CAPS.sc_name);
    assert_int_equal(ks->ks_nstates, NSTATES);
    assert_int_equal(ks->ks_kg_first, 10);
    assert_int_equal(ks->ks_kg_last, 20);
    assert_ptr_equal(ks->ks_specs, specs);
    eddy__kstate_set_time(ks, 1234);
    assert_int_equal(ks->ks_now_ms, 1234);
    assert_true(ks->ks_ops->ko_size(ks) > 0);
    eddy__kstate_destroy(ks);
    /* No states at all is allowed. */
    ks = suite_new(NULL, 0, 0, 0);
    assert_non_null(ks);
    eddy__kstate_destroy(ks);
}

static void test_value_put_get_remove(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    eddy__skey_t a = mks("alice", NULL), b = mks("bob", NULL);
    check_val(ks, S_VAL, &a, NULL);
    put_s(ks, S_VAL, &a, "one");
    check_val(ks, S_VAL, &a, "one");
    check_val(ks, S_VAL, &b, NULL);
    put_s(ks, S_VAL, &b, "two");
    put_s(ks, S_VAL, &a, "three"); /* overwrite, larger */
    check_val(ks, S_VAL, &a, "three");
    check_val(ks, S_VAL, &b, "two");
    put_s(ks, S_VAL, &a, "4"); /* smaller */
    check_val(ks, S_VAL, &a, "4");
    /* An empty value is present, and may be passed as NULL. */
    assert_int_equal(ops->ko_put(ks, S_VAL, &b, NULL, 0), 0);
    const void *v = NULL;
    size_t len = 99;
    assert_int_equal(ops->ko_get(ks, S_VAL, &b, &v, &len), 1);
    assert_int_equal(len, 0);
    /* Remove, twice, and of an absent key. */
    assert_int_equal(ops->ko_remove(ks, S_VAL, &a), 0);
    check_val(ks, S_VAL, &a, NULL);
    assert_int_equal(ops->ko_remove(ks, S_VAL, &a), 0);
    eddy__skey_t c = mks("carol", NULL);
    assert_int_equal(ops->ko_remove(ks, S_VAL, &c), 0);
    check_val(ks, S_VAL, &b, "");
    /* Put after remove works again. */
    put_s(ks, S_VAL, &a, "back");
    check_val(ks, S_VAL, &a, "back");
    /* Binary keys with NUL bytes and the empty key are keys too. */
    eddy__skey_t z1 = mk("\0\0", 2, NULL, 0, MAXP);
    eddy__skey_t z2 = mk("\0", 1, NULL, 0, MAXP);
    eddy__skey_t e0 = mk("", 0, NULL, 0, MAXP);
    put_s(ks, S_VAL, &z1, "z1");
    put_s(ks, S_VAL, &z2, "z2");
    put_s(ks, S_VAL, &e0, "empty");
    check_val(ks, S_VAL, &z1, "z1");
    check_val(ks, S_VAL, &z2, "z2");
    check_val(ks, S_VAL, &e0, "empty");
}

static void test_states_are_separate(void **state)
{
    eddy__kstate_t *ks = *state;
    eddy__skey_t k = mks("key", NULL);
    put_s(ks, S_VAL, &k, "value");
    put_s(ks, S_RED, &k, "reduced");
    put_s(ks, S_AGG, &k, "aggregated");
    check_val(ks, S_VAL, &k, "value");
    check_val(ks, S_RED, &k, "reduced");
    check_val(ks, S_AGG, &k, "aggregated");
    check_val(ks, S_VAL2, &k, NULL);
    list_add_s(ks, S_LIST, &k, "element");
    map_put_s(ks, S_MAP, &k, "uk", "mapped");
    assert_int_equal(ks->ks_ops->ko_remove(ks, S_RED, &k), 0);
    check_val(ks, S_RED, &k, NULL);
    check_val(ks, S_VAL, &k, "value");
    check_val(ks, S_AGG, &k, "aggregated");
    check_list(ks, S_LIST, &k, "element");
    check_map(ks, S_MAP, &k, "uk", "mapped");
}

static void test_kind_mismatch(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    eddy__skey_t k = mks("key", NULL);
    put_s(ks, S_VAL, &k, "v");
    list_add_s(ks, S_LIST, &k, "l");
    map_put_s(ks, S_MAP, &k, "u", "m");
    /* Calls of another family are refused (writes) or find nothing. */
    assert_int_equal(ops->ko_list_add(ks, S_VAL, &k, "x", 1), EDDY_ERR_INVALID);
    assert_int_equal(ops->ko_map_put(ks, S_VAL, &k, "u", 1, "x", 1),
                     EDDY_ERR_INVALID);
    assert_int_equal(ops->ko_put(ks, S_LIST, &k, "x", 1), EDDY_ERR_INVALID);
    assert_int_equal(ops->ko_put(ks, S_MAP, &k, "x", 1), EDDY_ERR_INVALID);
    check_val(ks, S_LIST, &k, NULL);
    check_list(ks, S_MAP, &k, NULL);
    check_map(ks, S_VAL, &k, "u", NULL);
    assert_int_equal(ops->ko_map_remove(ks, S_VAL, &k, "u", 1), 0);
    /* Nothing changed. */
    check_val(ks, S_VAL, &k, "v");
    check_list(ks, S_LIST, &k, "l");
    check_map(ks, S_MAP, &k, "u", "m");
}

static void test_value_update_in_place(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    enum { NKEYS = 1000, ROUNDS = 100 };
    eddy__skey_t keys[NKEYS];
    char kb[NKEYS][16];
    for (int i = 0; i < NKEYS; i++) {
        int n = snprintf(kb[i], sizeof(kb[i]), "k%d", i);
        keys[i] = mk(kb[i], (size_t)n, NULL, 0, MAXP);
        int64_t v = i;
        assert_int_equal(ops->ko_put(ks, S_VAL, &keys[i], &v, sizeof(v)), 0);
    }
    const void *p0;
    size_t len;
    assert_int_equal(ops->ko_get(ks, S_VAL, &keys[7], &p0, &len), 1);
    size_t size0 = ops->ko_size(ks);
#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 33)
    size_t heap0 = mallinfo2().uordblks;
#endif
#endif
    /* Same-size and smaller updates of existing keys: no allocation, so
     * (where memory is exact) the value stays where it was and the
     * footprint does not change. */
    int rc = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < NKEYS; i++) {
            int64_t v = (int64_t)i * 1000 + r;
            size_t n = (r % 3 == 2) ? 4 : sizeof(v);
            rc |= ops->ko_put(ks, S_VAL, &keys[i], &v, n);
        }
    }
    assert_int_equal(rc, 0);
    const void *p1;
    if (SUITE_CAPS.sc_exact_memory) {
#if defined(__GLIBC__) && defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 33)
        /* Under ASan mallinfo2 reports nothing: this only bites natively. */
        assert_int_equal(mallinfo2().uordblks, heap0);
#endif
#endif
        assert_int_equal(ops->ko_size(ks), size0);
        assert_int_equal(ops->ko_get(ks, S_VAL, &keys[7], &p1, &len), 1);
        assert_ptr_equal(p1, p0);
    }
    for (int i = 0; i < NKEYS; i++) {
        /* The last round (99, 99 % 3 == 0) wrote 8 bytes. */
        int64_t v;
        assert_int_equal(ops->ko_get(ks, S_VAL, &keys[i], &p1, &len), 1);
        assert_int_equal(len, sizeof(v));
        memcpy(&v, p1, sizeof(v));
        assert_int_equal(v, (int64_t)i * 1000 + ROUNDS - 1);
    }
}

static void test_value_grow_shrink(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    enum { BIG = 300000, NK = 20 };
    unsigned char *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++) {
        big[i] = (unsigned char)(i * 13 + 5);
    }
    static const size_t sizes[] = {0,        1, 7,  8,  9,      100, 5000,
                                   BIG - NK, 3, 64, 65, 200000, 0,   17};
    char kb[NK][16];
    eddy__skey_t keys[NK];
    for (int i = 0; i < NK; i++) {
        int n = snprintf(kb[i], sizeof(kb[i]), "grow%d", i);
        keys[i] = mk(kb[i], (size_t)n, "ns", 2, MAXP);
    }
    for (size_t s = 0; s < EDDY_ARRAY_SIZE(sizes); s++) {
        for (int i = 0; i < NK; i++) {
            assert_int_equal(
                ops->ko_put(ks, S_VAL, &keys[i], big + i, sizes[s]), 0);
        }
        for (int i = 0; i < NK; i++) {
            const void *v;
            size_t len;
            assert_int_equal(ops->ko_get(ks, S_VAL, &keys[i], &v, &len), 1);
            TU_ASSERT_BYTES(v, len, big + i, sizes[s]);
        }
    }
    /* A value computed from the stored one in place (aliasing). */
    const void *v;
    size_t len;
    assert_int_equal(ops->ko_get(ks, S_VAL, &keys[0], &v, &len), 1);
    assert_int_equal(len, 17);
    assert_int_equal(ops->ko_put(ks, S_VAL, &keys[0], (const char *)v + 1, 16),
                     0);
    assert_int_equal(ops->ko_get(ks, S_VAL, &keys[0], &v, &len), 1);
    TU_ASSERT_BYTES(v, len, big + 1, 16);
    /* ... and growing from it: the old bytes must be read before moving. */
    assert_int_equal(ops->ko_get(ks, S_VAL, &keys[1], &v, &len), 1);
    unsigned char want[17 + 1000];
    memcpy(want, v, 17);
    memset(want + 17, 'x', 1000);
    assert_int_equal(ops->ko_put(ks, S_VAL, &keys[1], want, sizeof(want)), 0);
    assert_int_equal(ops->ko_get(ks, S_VAL, &keys[1], &v, &len), 1);
    TU_ASSERT_BYTES(v, len, want, sizeof(want));
    TU_ASSERT_BYTES(v, 17, big + 1, 17);
    free(big);
}

/* ---- namespaces, key groups, for_each ---- */

static void test_namespaces(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    /* Pairs whose key + namespace concatenations are equal. */
    eddy__skey_t k_abc = mks("abc", NULL), k_ab_c = mks("ab", "c"),
                 k_a_bc = mks("a", "bc"), k__abc = mks("", "abc");
    put_s(ks, S_VAL, &k_abc, "abc|");
    put_s(ks, S_VAL, &k_ab_c, "ab|c");
    put_s(ks, S_VAL, &k_a_bc, "a|bc");
    put_s(ks, S_VAL, &k__abc, "|abc");
    check_val(ks, S_VAL, &k_abc, "abc|");
    check_val(ks, S_VAL, &k_ab_c, "ab|c");
    check_val(ks, S_VAL, &k_a_bc, "a|bc");
    check_val(ks, S_VAL, &k__abc, "|abc");
    /* Same key, different namespaces, and the empty namespace. */
    eddy__skey_t w1 = mks("user", "w1"), w2 = mks("user", "w2"),
                 w0 = mks("user", NULL);
    put_s(ks, S_VAL, &w1, "in w1");
    check_val(ks, S_VAL, &w2, NULL);
    check_val(ks, S_VAL, &w0, NULL);
    put_s(ks, S_VAL, &w2, "in w2");
    put_s(ks, S_VAL, &w0, "no ns");
    check_val(ks, S_VAL, &w1, "in w1");
    check_val(ks, S_VAL, &w2, "in w2");
    check_val(ks, S_VAL, &w0, "no ns");
    assert_int_equal(ops->ko_remove(ks, S_VAL, &w1), 0);
    check_val(ks, S_VAL, &w1, NULL);
    check_val(ks, S_VAL, &w2, "in w2");
    check_val(ks, S_VAL, &w0, "no ns");
    /* A namespace equal to the key (the two hashes must not cancel). */
    eddy__skey_t xx = mks("x", "x"), yy = mks("y", "y");
    put_s(ks, S_VAL, &xx, "xx");
    put_s(ks, S_VAL, &yy, "yy");
    check_val(ks, S_VAL, &xx, "xx");
    check_val(ks, S_VAL, &yy, "yy");
    /* Lists and maps per namespace, with the same collisions. */
    list_add_s(ks, S_LIST, &k_ab_c, "1");
    list_add_s(ks, S_LIST, &k_a_bc, "2");
    list_add_s(ks, S_LIST, &k_ab_c, "3");
    check_list(ks, S_LIST, &k_ab_c, "1,3");
    check_list(ks, S_LIST, &k_a_bc, "2");
    check_list(ks, S_LIST, &k_abc, NULL);
    map_put_s(ks, S_MAP, &k_ab_c, "u", "ab|c");
    map_put_s(ks, S_MAP, &k_a_bc, "u", "a|bc");
    check_map(ks, S_MAP, &k_ab_c, "u", "ab|c");
    check_map(ks, S_MAP, &k_a_bc, "u", "a|bc");
    check_map(ks, S_MAP, &k__abc, "u", NULL);
    /* for_each reports key and namespace split back correctly. */
    seen_t s = {0};
    assert_int_equal(ops->ko_for_each(ks, S_LIST, k_ab_c.sk_kg, collect, &s),
                     0);
    assert_true(seen_has(&s, "ab", "c"));
    assert_int_equal(seen_has(&s, "a", "bc"), k_a_bc.sk_kg == k_ab_c.sk_kg);
    memset(&s, 0, sizeof(s));
    assert_int_equal(ops->ko_for_each(ks, S_LIST, k_a_bc.sk_kg, collect, &s),
                     0);
    assert_true(seen_has(&s, "a", "bc"));
}

static void test_key_group_isolation(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    /* The same key bytes and hash under different key groups (as after a
     * buggy caller or in a forged test) live in different tables. */
    eddy__skey_t k = mks("same", NULL);
    eddy__skey_t other = k;
    other.sk_kg = (k.sk_kg + 1) % MAXP;
    put_s(ks, S_VAL, &k, "mine");
    check_val(ks, S_VAL, &other, NULL);
    put_s(ks, S_VAL, &other, "theirs");
    check_val(ks, S_VAL, &k, "mine");
    check_val(ks, S_VAL, &other, "theirs");
    assert_int_equal(ops->ko_remove(ks, S_VAL, &other), 0);
    check_val(ks, S_VAL, &k, "mine");
    check_val(ks, S_VAL, &other, NULL);
    seen_t s = {0};
    assert_int_equal(ops->ko_for_each(ks, S_VAL, other.sk_kg, collect, &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(ops->ko_for_each(ks, S_VAL, k.sk_kg, collect, &s), 0);
    assert_int_equal(s.n, 1);
    assert_true(seen_has(&s, "same", ""));
}

static void test_for_each_per_key_group(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    enum { N = 5000 };
    static int per_kg[MAXP];
    memset(per_kg, 0, sizeof(per_kg));
    char kb[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(kb, sizeof(kb), "key-%d", i);
        eddy__skey_t k =
            mk(kb, (size_t)n, i % 2 ? "odd" : NULL, i % 2 ? 3 : 0, MAXP);
        assert_int_equal(ops->ko_put(ks, S_VAL, &k, &i, sizeof(i)), 0);
        per_kg[k.sk_kg]++;
    }
    int nonempty = 0;
    size_t total = 0;
    for (int kg = 0; kg < MAXP; kg++) {
        size_t n = 0;
        assert_int_equal(ops->ko_for_each(ks, S_VAL, kg, count_cb, &n), 0);
        assert_int_equal(n, per_kg[kg]);
        nonempty += n > 0;
        total += n;
    }
    assert_int_equal(total, N);
    assert_true(nonempty > MAXP / 2); /* keys really spread over groups */
    /* Other states see nothing. */
    assert_int_equal(count_all(ks, S_VAL2), 0);
    assert_int_equal(count_all(ks, S_LIST), 0);
    /* A non-zero return stops the walk and is passed on. */
    int big = 0;
    for (int kg = 1; kg < MAXP; kg++) {
        if (per_kg[kg] > per_kg[big]) {
            big = kg;
        }
    }
    assert_true(per_kg[big] >= 3);
    seen_t s = {0};
    s.stop_after = 2;
    assert_int_equal(ops->ko_for_each(ks, S_VAL, big, collect, &s), 7);
    assert_int_equal(s.n, 2);
    /* Every reported key lies in the walked key group, with its ns. */
    for (size_t i = 0; i < s.n; i++) {
        eddy__skey_t k = mks(s.keys[i], NULL);
        assert_int_equal(k.sk_kg, big);
        int idx = atoi(s.keys[i] + 4);
        assert_string_equal(s.nss[i], idx % 2 ? "odd" : "");
    }
}

/* ---- list state ---- */

static void test_list_order_many(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    enum { N = 20000 };
    eddy__skey_t k = mks("list", "w"), k2 = mks("list", "w2");
    eddy__siter_t it;
    assert_int_equal(ops->ko_list_iter(ks, S_LIST, &k, &it), 0);
    const void *v;
    size_t len;
    assert_int_equal(ops->ko_list_next(&it, &v, &len), 0);
    char buf[64];
    for (int i = 0; i < N; i++) {
        /* Sizes 0..40, so elements straddle every alignment. */
        int n = snprintf(buf, sizeof(buf), "%d:", i);
        int pad = i % 30;
        memset(buf + n, 'a' + i % 26, (size_t)pad);
        size_t elen = i % 97 == 0 ? 0 : (size_t)(n + pad);
        assert_int_equal(ops->ko_list_add(ks, S_LIST, &k, buf, elen), 0);
        if (i % 2 == 0) {
            assert_int_equal(ops->ko_list_add(ks, S_LIST, &k2, &i, sizeof(i)),
                             0);
        }
    }
    assert_int_equal(ops->ko_list_iter(ks, S_LIST, &k, &it), 1);
    int i = 0;
    while (ops->ko_list_next(&it, &v, &len)) {
        int n = snprintf(buf, sizeof(buf), "%d:", i);
        int pad = i % 30;
        memset(buf + n, 'a' + i % 26, (size_t)pad);
        size_t elen = i % 97 == 0 ? 0 : (size_t)(n + pad);
        TU_ASSERT_BYTES(v, len, buf, elen);
        i++;
    }
    assert_int_equal(i, N);
    /* The end is sticky. */
    assert_int_equal(ops->ko_list_next(&it, &v, &len), 0);
    assert_int_equal(ops->ko_list_iter(ks, S_LIST, &k2, &it), 1);
    i = 0;
    while (ops->ko_list_next(&it, &v, &len)) {
        int got;
        assert_int_equal(len, sizeof(got));
        memcpy(&got, v, sizeof(got));
        assert_int_equal(got, i);
        i += 2;
    }
    assert_int_equal(i, N);
    assert_int_equal(count_all(ks, S_LIST), 2);
    /* Two iterators at once over different lists. */
    eddy__siter_t a, b;
    assert_int_equal(ops->ko_list_iter(ks, S_LIST, &k, &a), 1);
    assert_int_equal(ops->ko_list_iter(ks, S_LIST, &k2, &b), 1);
    assert_int_equal(ops->ko_list_next(&a, &v, &len), 1);
    assert_int_equal(len, 0); /* element 0 is empty */
    assert_int_equal(ops->ko_list_next(&b, &v, &len), 1);
    assert_int_equal(len, sizeof(int));
    assert_int_equal(ops->ko_list_next(&a, &v, &len), 1);
    TU_ASSERT_BYTES(v, len, "1:b", 3);
}

static void test_list_large_elements(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    enum { BIG = 1 << 20, N = 6 };
    unsigned char *big = malloc(BIG + N);
    for (size_t i = 0; i < BIG + N; i++) {
        big[i] = (unsigned char)(i * 31 + 7);
    }
    eddy__skey_t k = mks("big", NULL);
    size_t size0 = ops->ko_size(ks);
    for (int i = 0; i < N; i++) {
        size_t n = i == 3 ? 1 : BIG - (size_t)i;
        assert_int_equal(ops->ko_list_add(ks, S_LIST, &k, big + i, n), 0);
    }
    /* ko_size counts the list's bytes. */
    assert_true(ops->ko_size(ks) >= size0 + (N - 1) * (size_t)(BIG - N));
    eddy__siter_t it;
    assert_int_equal(ops->ko_list_iter(ks, S_LIST, &k, &it), 1);
    const void *v;
    size_t len;
    for (int i = 0; i < N; i++) {
        size_t n = i == 3 ? 1 : BIG - (size_t)i;
        assert_int_equal(ops->ko_list_next(&it, &v, &len), 1);
        TU_ASSERT_BYTES(v, len, big + i, n);
    }
    assert_int_equal(ops->ko_list_next(&it, &v, &len), 0);
    /* Removing frees the list at once. */
    assert_int_equal(ops->ko_remove(ks, S_LIST, &k), 0);
    assert_int_equal(ops->ko_list_iter(ks, S_LIST, &k, &it), 0);
    if (SUITE_CAPS.sc_exact_memory) {
        assert_int_equal(ops->ko_size(ks), size0);
    }
    free(big);
}

static void test_list_add_own_elements(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    eddy__skey_t k = mks("self", NULL);
    list_add_s(ks, S_LIST, &k, "first-element-is-long-enough");
    list_add_s(ks, S_LIST, &k, "second");
    /* Append each element again while iterating the pre-existing ones:
     * the source points into the list, which grows (and moves) meanwhile.
     * The iterator is only used for the first 2 elements, fetched before
     * the list changes. */
    for (int round = 0; round < 8; round++) {
        eddy__siter_t it;
        assert_int_equal(ops->ko_list_iter(ks, S_LIST, &k, &it), 1);
        const void *v;
        size_t len;
        assert_int_equal(ops->ko_list_next(&it, &v, &len), 1);
        assert_int_equal(ops->ko_list_add(ks, S_LIST, &k, v, len), 0);
    }
    char want[1024] = "first-element-is-long-enough,second";
    for (int round = 0; round < 8; round++) {
        strcat(want, ",first-element-is-long-enough");
    }
    check_list(ks, S_LIST, &k, want);
}

/* ---- map state ---- */

static void test_map_basic(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    eddy__skey_t k = mks("m", "ns");
    eddy__siter_t it;
    assert_int_equal(ops->ko_map_iter(ks, S_MAP, &k, &it), 0);
    check_map(ks, S_MAP, &k, "a", NULL);
    map_put_s(ks, S_MAP, &k, "a", "1");
    map_put_s(ks, S_MAP, &k, "b", "2");
    map_put_s(ks, S_MAP, &k, "a", "one, now longer than before");
    check_map(ks, S_MAP, &k, "a", "one, now longer than before");
    check_map(ks, S_MAP, &k, "b", "2");
    check_map(ks, S_MAP, &k, "c", NULL);
    /* Empty user key and empty value. */
    assert_int_equal(ops->ko_map_put(ks, S_MAP, &k, "", 0, NULL, 0), 0);
    check_map(ks, S_MAP, &k, "", "");
    assert_int_equal(map_count(ks, S_MAP, &k), 3);
    /* Removing an absent user key changes nothing. */
    assert_int_equal(ops->ko_map_remove(ks, S_MAP, &k, "zz", 2), 0);
    assert_int_equal(map_count(ks, S_MAP, &k), 3);
    assert_int_equal(ops->ko_map_remove(ks, S_MAP, &k, "a", 1), 0);
    check_map(ks, S_MAP, &k, "a", NULL);
    assert_int_equal(map_count(ks, S_MAP, &k), 2);
    /* Another (key, ns) has its own map. */
    eddy__skey_t k2 = mks("m", "other");
    check_map(ks, S_MAP, &k2, "b", NULL);
    map_put_s(ks, S_MAP, &k2, "b", "k2");
    check_map(ks, S_MAP, &k, "b", "2");
    /* Removing the last entry removes the map. */
    assert_int_equal(ops->ko_map_remove(ks, S_MAP, &k, "b", 1), 0);
    assert_int_equal(ops->ko_map_remove(ks, S_MAP, &k, "", 0), 0);
    assert_int_equal(ops->ko_map_iter(ks, S_MAP, &k, &it), 0);
    const void *uk, *v;
    size_t ukl, vl;
    assert_int_equal(ops->ko_map_next(&it, &uk, &ukl, &v, &vl), 0);
    seen_t s = {0};
    assert_int_equal(ops->ko_for_each(ks, S_MAP, k.sk_kg, collect, &s), 0);
    assert_int_equal(s.n, 1);
    assert_true(seen_has(&s, "m", "other"));
    assert_int_equal(ops->ko_map_remove(ks, S_MAP, &k2, "b", 1), 0);
    assert_int_equal(count_all(ks, S_MAP), 0);
    /* ... and a map_remove on a missing map is fine. */
    assert_int_equal(ops->ko_map_remove(ks, S_MAP, &k2, "b", 1), 0);
}

static void test_map_many_entries(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    enum { N = 30000 };
    eddy__skey_t k = mks("bigmap", NULL);
    static unsigned char seen[N];
    memset(seen, 0, sizeof(seen));
    char uk[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(uk, sizeof(uk), "u%d", i);
        int64_t v = (int64_t)i * 7;
        assert_int_equal(
            ops->ko_map_put(ks, S_MAP, &k, uk, (size_t)n, &v, sizeof(v)), 0);
    }
    size_t grown = ops->ko_size(ks);
    /* Iterate: every entry exactly once, with its value. */
    eddy__siter_t it;
    assert_int_equal(ops->ko_map_iter(ks, S_MAP, &k, &it), 1);
    const void *ukp, *vp;
    size_t ukl, vl;
    int count = 0;
    while (ops->ko_map_next(&it, &ukp, &ukl, &vp, &vl)) {
        assert_true(ukl > 1 && ukl < sizeof(uk));
        memcpy(uk, ukp, ukl);
        uk[ukl] = '\0';
        int i = atoi(uk + 1);
        assert_true(i >= 0 && i < N);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        int64_t v;
        assert_int_equal(vl, sizeof(v));
        memcpy(&v, vp, sizeof(v));
        assert_int_equal(v, (int64_t)i * 7);
        count++;
    }
    assert_int_equal(count, N);
    /* Remove all but every tenth; the map shrinks its footprint. */
    for (int i = 0; i < N; i++) {
        if (i % 10 != 0) {
            int n = snprintf(uk, sizeof(uk), "u%d", i);
            assert_int_equal(ops->ko_map_remove(ks, S_MAP, &k, uk, (size_t)n),
                             0);
        }
    }
    assert_int_equal(map_count(ks, S_MAP, &k), N / 10);
    if (SUITE_CAPS.sc_exact_memory) {
        assert_true(ops->ko_size(ks) < grown / 2);
    }
    for (int i = 0; i < N; i++) {
        int n = snprintf(uk, sizeof(uk), "u%d", i);
        const void *v;
        size_t len;
        int found = ops->ko_map_get(ks, S_MAP, &k, uk, (size_t)n, &v, &len);
        assert_int_equal(found, i % 10 == 0);
        if (found) {
            int64_t got;
            memcpy(&got, v, sizeof(got));
            assert_int_equal(got, (int64_t)i * 7);
        }
    }
}

/* ---- removal and memory ---- */

static void test_remove_each_kind(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    size_t size0 = ops->ko_size(ks);
    eddy__skey_t k = mks("victim", "w"), keep = mks("keeper", "w");
    put_s(ks, S_VAL, &k, "v");
    put_s(ks, S_VAL, &keep, "v");
    put_s(ks, S_AGG, &k, "acc");
    for (int i = 0; i < 100; i++) {
        list_add_s(ks, S_LIST, &k, "element");
        list_add_s(ks, S_LIST, &keep, "element");
    }
    char uk[16];
    for (int i = 0; i < 100; i++) {
        snprintf(uk, sizeof(uk), "u%d", i);
        map_put_s(ks, S_MAP, &k, uk, "value");
        map_put_s(ks, S_MAP, &keep, uk, "value");
    }
    size_t full = ops->ko_size(ks);
    assert_true(full > size0);
    for (int sid = 0; sid < NSTATES; sid++) {
        assert_int_equal(ops->ko_remove(ks, sid, &k), 0);
    }
    check_val(ks, S_VAL, &k, NULL);
    check_val(ks, S_AGG, &k, NULL);
    check_list(ks, S_LIST, &k, NULL);
    check_map(ks, S_MAP, &k, "u1", NULL);
    assert_int_equal(map_count(ks, S_MAP, &k), 0);
    check_val(ks, S_VAL, &keep, "v");
    assert_int_equal(map_count(ks, S_MAP, &keep), 100);
    eddy__siter_t it;
    assert_int_equal(ops->ko_list_iter(ks, S_LIST, &keep, &it), 1);
    if (SUITE_CAPS.sc_exact_memory) {
        assert_true(ops->ko_size(ks) < full);
    }
    for (int sid = 0; sid < NSTATES; sid++) {
        assert_int_equal(ops->ko_remove(ks, sid, &keep), 0);
    }
    /* Everything is gone, and so is its memory. */
    for (int sid = 0; sid < NSTATES; sid++) {
        assert_int_equal(count_all(ks, sid), 0);
    }
    if (SUITE_CAPS.sc_exact_memory) {
        assert_int_equal(ops->ko_size(ks), size0);
    }
}

static void test_reclaim_after_removals(void **state)
{
    (void)state;
    enum { N = 20000, VLEN = 200 };
    /* One key group, so one table holds everything. */
    eddy__kstate_t *one = suite_new(specs, NSTATES, 0, 0);
    assert_non_null(one);
    const eddy__kstate_ops_t *ops = one->ks_ops;
    size_t size0 = ops->ko_size(one);
    unsigned char val[VLEN];
    char kb[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(kb, sizeof(kb), "r%d", i);
        memset(val, i & 0xff, sizeof(val));
        eddy__skey_t k = mk(kb, (size_t)n, NULL, 0, 1);
        assert_int_equal(ops->ko_put(one, S_VAL, &k, val, sizeof(val)), 0);
    }
    size_t full = ops->ko_size(one);
    assert_true(full > size0 + (size_t)N * VLEN);
    for (int i = 0; i < N; i++) {
        if (i % 100 != 0) {
            int n = snprintf(kb, sizeof(kb), "r%d", i);
            eddy__skey_t k = mk(kb, (size_t)n, NULL, 0, 1);
            assert_int_equal(ops->ko_remove(one, S_VAL, &k), 0);
        }
    }
    /* The dead bytes were reclaimed (and the slot array shrank). */
    if (SUITE_CAPS.sc_exact_memory) {
        assert_true(ops->ko_size(one) < full / 10);
    }
    for (int i = 0; i < N; i++) {
        int n = snprintf(kb, sizeof(kb), "r%d", i);
        eddy__skey_t k = mk(kb, (size_t)n, NULL, 0, 1);
        const void *v;
        size_t len;
        int found = ops->ko_get(one, S_VAL, &k, &v, &len);
        assert_int_equal(found, i % 100 == 0);
        if (found) {
            memset(val, i & 0xff, sizeof(val));
            TU_ASSERT_BYTES(v, len, val, sizeof(val));
        }
    }
    eddy__kstate_destroy(one);
}

static void test_random_against_model(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    /* A small universe of (key, ns) pairs, hammered with puts of random
     * sizes and removes, checked against a plain array. */
    enum { NK = 300, NNS = 3, OPS = 200000, MAXV = 300 };
    static const char *nss[NNS] = {NULL, "w1", "w2"};
    static unsigned char model[NK * NNS][MAXV];
    static int mlen[NK * NNS]; /* -1 = absent */
    static char kb[NK][16];
    eddy__skey_t keys[NK * NNS];
    for (int i = 0; i < NK; i++) {
        int n = snprintf(kb[i], sizeof(kb[i]), "key%d", i);
        for (int j = 0; j < NNS; j++) {
            keys[i * NNS + j] =
                mk(kb[i], (size_t)n, nss[j], nss[j] ? strlen(nss[j]) : 0, MAXP);
            mlen[i * NNS + j] = -1;
        }
    }
    uint64_t seed = 0x1234567;
    unsigned char buf[MAXV];
    for (int op = 0; op < OPS; op++) {
        int x = (int)(tu_rand(&seed) % (NK * NNS));
        uint64_t r = tu_rand(&seed);
        if (r % 4 == 0) {
            assert_int_equal(ops->ko_remove(ks, S_VAL, &keys[x]), 0);
            mlen[x] = -1;
        } else if (r % 4 == 1) {
            const void *v;
            size_t len;
            int found = ops->ko_get(ks, S_VAL, &keys[x], &v, &len);
            assert_int_equal(found, mlen[x] >= 0);
            if (found) {
                TU_ASSERT_BYTES(v, len, model[x], (size_t)mlen[x]);
            }
        } else {
            int len = (int)((r >> 8) % MAXV);
            for (int b = 0; b < len; b++) {
                buf[b] = (unsigned char)(tu_rand(&seed));
            }
            assert_int_equal(ops->ko_put(ks, S_VAL, &keys[x], buf, (size_t)len),
                             0);
            memcpy(model[x], buf, (size_t)len);
            mlen[x] = len;
        }
    }
    size_t present = 0;
    for (int x = 0; x < NK * NNS; x++) {
        const void *v;
        size_t len;
        int found = ops->ko_get(ks, S_VAL, &keys[x], &v, &len);
        assert_int_equal(found, mlen[x] >= 0);
        if (found) {
            TU_ASSERT_BYTES(v, len, model[x], (size_t)mlen[x]);
            present++;
        }
    }
    assert_int_equal(count_all(ks, S_VAL), present);
}

static void test_many_keys_fast(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    enum { N = 100000 };
    char kb[32];
    uint64_t t0 = tu_now_ms();
    for (int i = 0; i < N; i++) {
        int n = snprintf(kb, sizeof(kb), "user-%d", i);
        eddy__skey_t k = mk(kb, (size_t)n, NULL, 0, MAXP);
        int64_t v = i;
        assert_int_equal(ops->ko_put(ks, S_VAL, &k, &v, sizeof(v)), 0);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            int n = snprintf(kb, sizeof(kb), "user-%d", i);
            eddy__skey_t k = mk(kb, (size_t)n, NULL, 0, MAXP);
            const void *v;
            size_t len;
            if (ops->ko_get(ks, S_VAL, &k, &v, &len) != 1) {
                fail_msg("lost %s", kb);
            }
            int64_t got;
            memcpy(&got, v, sizeof(got));
            assert_int_equal(got, (int64_t)i + round);
            got++;
            assert_int_equal(ops->ko_put(ks, S_VAL, &k, &got, sizeof(got)), 0);
        }
    }
    assert_int_equal(count_all(ks, S_VAL), N);
    for (int i = 0; i < N; i++) {
        int n = snprintf(kb, sizeof(kb), "user-%d", i);
        eddy__skey_t k = mk(kb, (size_t)n, NULL, 0, MAXP);
        assert_int_equal(ops->ko_remove(ks, S_VAL, &k), 0);
    }
    uint64_t ms = tu_now_ms() - t0;
    assert_int_equal(count_all(ks, S_VAL), 0);
    /* 600k operations; natively this takes tens of milliseconds. */
    if (ms > (uint64_t)tu_timeout_ms(3000 * SUITE_CAPS.sc_time_factor)) {
        fail_msg("100k keys took %llu ms", (unsigned long long)ms);
    }
}

/* ---- TTL ---- */

static void test_ttl_expiry_on_read(void **state)
{
    (void)state;
    eddy__kstate_t *ks = suite_new(ttl_specs, T_NSTATES, 0, 0);
    assert_non_null(ks);
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    eddy__skey_t k = mk("k", 1, NULL, 0, 1), k2 = mk("k2", 2, "n", 1, 1);
    size_t size0 = ops->ko_size(ks);
    eddy__kstate_set_time(ks, 1000);
    put_s(ks, T_VAL, &k, "v");
    put_s(ks, T_VAL, &k2, "v2");
    list_add_s(ks, T_LIST, &k, "a");
    map_put_s(ks, T_MAP, &k, "u", "m");
    /* Alive up to exactly ttl_ms of age. */
    eddy__kstate_set_time(ks, 1000 + TTL);
    check_val(ks, T_VAL, &k, "v");
    check_list(ks, T_LIST, &k, "a");
    check_map(ks, T_MAP, &k, "u", "m");
    /* A write refreshes the stamp: list and map as a whole. */
    put_s(ks, T_VAL, &k2, "v2b");
    list_add_s(ks, T_LIST, &k, "b");
    map_put_s(ks, T_MAP, &k, "u2", "m2");
    eddy__kstate_set_time(ks, 1000 + TTL + 1);
    assert_int_equal(count_all(ks, T_VAL), 1); /* for_each skips expired */
    check_val(ks, T_VAL, &k, NULL);
    check_val(ks, T_VAL, &k2, "v2b");
    check_list(ks, T_LIST, &k, "a,b");
    check_map(ks, T_MAP, &k, "u", "m");
    /* The expired read removed the entry: turning the clock back (which
     * expires nothing) does not bring it back. */
    eddy__kstate_set_time(ks, 1000);
    check_val(ks, T_VAL, &k, NULL);
    assert_int_equal(count_all(ks, T_VAL), 1);
    /* Lists and maps expire whole, and a write after expiry starts afresh
     * instead of extending the expired one. */
    eddy__kstate_set_time(ks, 1000 + 2 * TTL + 1);
    list_add_s(ks, T_LIST, &k, "c");
    check_list(ks, T_LIST, &k, "c");
    map_put_s(ks, T_MAP, &k, "u3", "m3");
    check_map(ks, T_MAP, &k, "u", NULL);
    check_map(ks, T_MAP, &k, "u2", NULL);
    check_map(ks, T_MAP, &k, "u3", "m3");
    assert_int_equal(map_count(ks, T_MAP, &k), 1);
    eddy__kstate_set_time(ks, 1000 + 3 * TTL + 2);
    eddy__siter_t it;
    assert_int_equal(ops->ko_list_iter(ks, T_LIST, &k, &it), 0);
    assert_int_equal(ops->ko_map_iter(ks, T_MAP, &k, &it), 0);
    assert_int_equal(count_all(ks, T_LIST), 0);
    assert_int_equal(count_all(ks, T_MAP), 0);
    /* A value overwritten after expiry is the new value only. */
    eddy__kstate_set_time(ks, 5000);
    put_s(ks, T_VAL, &k, "old");
    eddy__kstate_set_time(ks, 5000 + TTL + 50);
    put_s(ks, T_VAL, &k, "new");
    eddy__kstate_set_time(ks, 5000 + 2 * TTL);
    check_val(ks, T_VAL, &k, "new");
    /* map_remove of an expired map removes it without touching others. */
    map_put_s(ks, T_MAP, &k, "a", "1");
    map_put_s(ks, T_MAP, &k, "b", "2");
    eddy__kstate_set_time(ks, 5000 + 3 * TTL + 1);
    assert_int_equal(ops->ko_map_remove(ks, T_MAP, &k, "a", 1), 0);
    eddy__kstate_set_time(ks, 5000 + 2 * TTL);
    check_map(ks, T_MAP, &k, "b", NULL);
    assert_int_equal(count_all(ks, T_MAP), 0);
    check_val(ks, T_VAL, &k, "new");
    /* Once reads have expired everything, all memory is given back. */
    eddy__kstate_set_time(ks, 100000);
    check_val(ks, T_VAL, &k, NULL);
    check_val(ks, T_VAL, &k2, NULL);
    if (SUITE_CAPS.sc_exact_memory) {
        assert_int_equal(ops->ko_size(ks), size0);
    }
    eddy__kstate_destroy(ks);
}

static void test_ttl_incremental_cleanup(void **state)
{
    (void)state;
    /* One key group: one table per state, as cleanup works per table. */
    eddy__kstate_t *ks = suite_new(ttl_specs, T_NSTATES, 0, 0);
    assert_non_null(ks);
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    enum { N = 5000, LIVE = 50, VLEN = 100 };
    unsigned char val[VLEN];
    memset(val, 'v', sizeof(val));
    char kb[32];
    eddy__kstate_set_time(ks, 1000);
    for (int i = 0; i < N; i++) {
        int n = snprintf(kb, sizeof(kb), "old%d", i);
        eddy__skey_t k = mk(kb, (size_t)n, NULL, 0, 1);
        assert_int_equal(ops->ko_put(ks, T_VAL, &k, val, sizeof(val)), 0);
    }
    /* Some keys written later stay alive throughout. */
    eddy__kstate_set_time(ks, 1000 + TTL);
    for (int i = 0; i < LIVE; i++) {
        int n = snprintf(kb, sizeof(kb), "live%d", i);
        eddy__skey_t k = mk(kb, (size_t)n, NULL, 0, 1);
        assert_int_equal(ops->ko_put(ks, T_VAL, &k, val, sizeof(val)), 0);
    }
    size_t full = ops->ko_size(ks);
    /* Past the TTL of the old keys: write one other key over and over,
     * never reading the old ones. */
    eddy__kstate_set_time(ks, 1000 + TTL + 1);
    eddy__skey_t other = mk("other", 5, NULL, 0, 1);
    size_t before = N + LIVE;
    int writes = 0;
    for (; writes < 20000; writes++) {
        assert_int_equal(
            ops->ko_put(ks, T_VAL, &other, &writes, sizeof(writes)), 0);
        if (writes % 500 == 499) {
            /* Count what is physically there: at the old time nothing
             * reads as expired, so only the cleanup can shrink this. */
            eddy__kstate_set_time(ks, 1000);
            size_t n = count_all(ks, T_VAL);
            eddy__kstate_set_time(ks, 1000 + TTL + 1);
            assert_true(n <= before);
            before = n;
            if (n == LIVE + 1) {
                break;
            }
        }
    }
    assert_int_equal(before, LIVE + 1);
    /* Each write examines a few slots: a sweep over the table (at most 16k
     * slots for 5k entries) needs about capacity/4 writes, not more. */
    assert_true(writes < 8000);
    /* The memory came back too (dead bytes compacted, slots shrunk). */
    if (SUITE_CAPS.sc_exact_memory) {
        assert_true(ops->ko_size(ks) < full / 4);
    }
    for (int i = 0; i < LIVE; i++) {
        int n = snprintf(kb, sizeof(kb), "live%d", i);
        eddy__skey_t k = mk(kb, (size_t)n, NULL, 0, 1);
        const void *v;
        size_t len;
        assert_int_equal(ops->ko_get(ks, T_VAL, &k, &v, &len), 1);
        TU_ASSERT_BYTES(v, len, val, sizeof(val));
    }

    /* Lists and maps: their areas are freed as the cleanup finds them. */
    eddy__kstate_set_time(ks, 10000);
    for (int i = 0; i < 500; i++) {
        int n = snprintf(kb, sizeof(kb), "coll%d", i);
        eddy__skey_t k = mk(kb, (size_t)n, "ns", 2, 1);
        for (int j = 0; j < 4; j++) {
            assert_int_equal(ops->ko_list_add(ks, T_LIST, &k, val, VLEN), 0);
        }
        map_put_s(ks, T_MAP, &k, "a", "1");
        map_put_s(ks, T_MAP, &k, "b", "2");
    }
    size_t coll = ops->ko_size(ks);
    eddy__kstate_set_time(ks, 10000 + TTL + 1);
    eddy__skey_t fresh = mk("fresh", 5, NULL, 0, 1);
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(ops->ko_list_add(ks, T_LIST, &fresh, "x", 1), 0);
        map_put_s(ks, T_MAP, &fresh, "k", "v");
    }
    eddy__kstate_set_time(ks, 10000);
    assert_int_equal(count_all(ks, T_LIST), 1);
    assert_int_equal(count_all(ks, T_MAP), 1);
    if (SUITE_CAPS.sc_exact_memory) {
        assert_true(ops->ko_size(ks) < coll / 2);
    }
    eddy__kstate_destroy(ks);
}

/* ---- get_for_update: one lookup for a read-modify-write ---- */

static void test_get_for_update(void **state)
{
    eddy__kstate_t *ks = *state;
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    eddy__skey_t k = mks("key", "w1");
    eddy__skey_t k2 = mks("key", "w2");
    void *p = NULL;
    bool created = false;

    /* Absent: inserted as zero bytes, writable in place. */
    assert_int_equal(ops->ko_get_for_update(ks, S_AGG, &k, 16, &p, &created),
                     0);
    assert_true(created);
    unsigned char zero[16] = {0};
    TU_ASSERT_BYTES(p, 16, zero, 16);
    memcpy(p, "0123456789abcdef", 16);
    check_val(ks, S_AGG, &k, "0123456789abcdef");

    /* Present: the same bytes, no insert; updates stay in place. */
    for (int i = 0; i < 100; i++) {
        void *q = NULL;
        created = true;
        assert_int_equal(
            ops->ko_get_for_update(ks, S_AGG, &k, 16, &q, &created), 0);
        assert_false(created);
        assert_ptr_equal(q, p);
        ((unsigned char *)q)[0] = (unsigned char)('A' + i % 26);
    }
    check_val(ks, S_AGG, &k, "V123456789abcdef"); /* 'A' + 99 % 26 */
    /* Another namespace is another entry. */
    assert_int_equal(ops->ko_get_for_update(ks, S_AGG, &k2, 16, &p, &created),
                     0);
    assert_true(created);
    check_val(ks, S_AGG, &k, "V123456789abcdef");
    assert_int_equal(count_all(ks, S_AGG), 2);

    /* A value of another length is left alone. */
    put_s(ks, S_VAL, &k, "abc");
    p = NULL;
    assert_int_equal(ops->ko_get_for_update(ks, S_VAL, &k, 8, &p, &created),
                     EDDY_ERR_FORMAT);
    assert_null(p);
    check_val(ks, S_VAL, &k, "abc");
    /* ... and one of the same length is the current value. */
    assert_int_equal(ops->ko_get_for_update(ks, S_VAL, &k, 3, &p, &created), 0);
    assert_false(created);
    TU_ASSERT_BYTES(p, 3, "abc", 3);
    /* Zero bytes is a value too. */
    eddy__skey_t k3 = mks("empty", NULL);
    assert_int_equal(ops->ko_get_for_update(ks, S_VAL, &k3, 0, &p, &created),
                     0);
    assert_true(created);
    check_val(ks, S_VAL, &k3, "");

    /* Wrong kind: a caller bug, nothing written. */
    assert_int_equal(ops->ko_get_for_update(ks, S_LIST, &k, 8, &p, &created),
                     EDDY_ERR_INVALID);
    assert_int_equal(ops->ko_get_for_update(ks, S_MAP, &k, 8, &p, &created),
                     EDDY_ERR_INVALID);
    assert_int_equal(count_all(ks, S_LIST), 0);
    assert_int_equal(count_all(ks, S_MAP), 0);

    /* Removed: created again, zeroed. */
    assert_int_equal(ops->ko_remove(ks, S_AGG, &k), 0);
    assert_int_equal(ops->ko_get_for_update(ks, S_AGG, &k, 16, &p, &created),
                     0);
    assert_true(created);
    TU_ASSERT_BYTES(p, 16, zero, 16);
}

static void test_get_for_update_ttl(void **state)
{
    (void)state;
    /* One key group: one table, so the cleanup and compaction of other
     * entries happen in the table being updated. */
    eddy__kstate_t *ks = suite_new(ttl_specs, T_NSTATES, 0, 0);
    assert_non_null(ks);
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    eddy__skey_t k = mk("acc", 3, "ns", 2, 1);
    void *p;
    bool created;
    uint64_t n;

    /* Every call is a write: it refreshes the stamp. */
    eddy__kstate_set_time(ks, 1000);
    assert_int_equal(ops->ko_get_for_update(ks, T_VAL, &k, 8, &p, &created), 0);
    assert_true(created);
    n = 42;
    memcpy(p, &n, 8);
    eddy__kstate_set_time(ks, 1000 + TTL);
    assert_int_equal(ops->ko_get_for_update(ks, T_VAL, &k, 8, &p, &created), 0);
    assert_false(created);
    memcpy(&n, p, 8);
    assert_int_equal(n, 42);
    eddy__kstate_set_time(ks, 1000 + 2 * TTL);
    const void *v;
    size_t len;
    assert_int_equal(ops->ko_get(ks, T_VAL, &k, &v, &len), 1);
    assert_int_equal(len, 8);

    /* Expired: a fresh zeroed value, even of another length. */
    eddy__kstate_set_time(ks, 1000 + 3 * TTL);
    assert_int_equal(ops->ko_get_for_update(ks, T_VAL, &k, 24, &p, &created),
                     0);
    assert_true(created);
    unsigned char zero[24] = {0};
    TU_ASSERT_BYTES(p, 24, zero, 24);
    assert_int_equal(count_all(ks, T_VAL), 1);

    /* Many big entries expire; updating one counter in place sweeps them
     * out (incremental cleanup) and compacts the table under it: the
     * returned pointer must always be the live value (ASan checks that no
     * stale arena bytes are touched). */
    enum { N = 2000, VLEN = 200 };
    unsigned char val[VLEN];
    memset(val, 'v', sizeof(val));
    char kb[32];
    eddy__kstate_set_time(ks, 10000);
    for (int i = 0; i < N; i++) {
        int m = snprintf(kb, sizeof(kb), "old%d", i);
        eddy__skey_t ko = mk(kb, (size_t)m, NULL, 0, 1);
        assert_int_equal(ops->ko_put(ks, T_VAL, &ko, val, sizeof(val)), 0);
    }
    eddy__skey_t c = mk("counter", 7, NULL, 0, 1);
    size_t full = ops->ko_size(ks);
    eddy__kstate_set_time(ks, 10000 + TTL + 1);
    uint64_t want = 0;
    for (int i = 0; i < 20000; i++) {
        assert_int_equal(ops->ko_get_for_update(ks, T_VAL, &c, 8, &p, &created),
                         0);
        assert_int_equal(created, i == 0);
        memcpy(&n, p, 8);
        assert_int_equal(n, want);
        n++;
        want++;
        memcpy(p, &n, 8);
    }
    assert_int_equal(ops->ko_get(ks, T_VAL, &c, &v, &len), 1);
    assert_int_equal(len, 8);
    memcpy(&n, v, 8);
    assert_int_equal(n, want);
    /* The expired entries went (all but k and the counter) and their
     * memory came back through compaction. */
    eddy__kstate_set_time(ks, 10000);
    assert_true(count_all(ks, T_VAL) <= 2);
    if (SUITE_CAPS.sc_exact_memory) {
        assert_true(ops->ko_size(ks) < full / 4);
    }
    eddy__kstate_destroy(ks);
}

#define KSTATE_SUITE_TESTS(T, U)                                               \
    U(test_new_and_destroy), T(test_value_put_get_remove),                     \
        T(test_states_are_separate), T(test_kind_mismatch),                    \
        T(test_value_update_in_place), T(test_value_grow_shrink),              \
        T(test_namespaces), T(test_key_group_isolation),                       \
        T(test_for_each_per_key_group), T(test_list_order_many),               \
        T(test_list_large_elements), T(test_list_add_own_elements),            \
        T(test_map_basic), T(test_map_many_entries), T(test_remove_each_kind), \
        U(test_reclaim_after_removals), T(test_random_against_model),          \
        T(test_many_keys_fast), U(test_ttl_expiry_on_read),                    \
        U(test_ttl_incremental_cleanup), T(test_get_for_update),               \
        U(test_get_for_update_ttl)

#endif /* EDDY_TESTS_UNIT_STATE_KSTATE_SUITE_H */
