/*
 * eddy — unit tests for src/runtime/timers.c: the timer service of a keyed
 * operator subtask.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Besides the public calls, the tests use three hooks that timers.c defines
 * but timers.h does not declare: an allocation counter (steady state must
 * not allocate), an allocation budget (out-of-memory paths) and an invariant
 * checker (heap order, heap indexes, hash set and key-group lists agree).
 */
#include "test_util.h"

#include "runtime/timers.h"

/* Test hooks defined in src/runtime/timers.c. */
uint64_t eddy__timers_allocations(const eddy__timers_t *ts);
void eddy__timers_set_alloc_budget(eddy__timers_t *ts, int64_t n);
int eddy__timers_check(const eddy__timers_t *ts);

#define EV EDDY__TIME_EVENT
#define PT EDDY__TIME_PROCESSING
#define MAX_PAR 16

/* ---- helpers ---- */

static eddy__skey_t skey_n(const void *key, size_t klen, const void *ns,
                           size_t nslen)
{
    eddy__skey_t k;
    k.sk_key = key;
    k.sk_klen = klen;
    k.sk_hash = eddy__hash64(key, klen);
    k.sk_kg = eddy__key_group(k.sk_hash, MAX_PAR);
    k.sk_ns = ns;
    k.sk_nslen = nslen;
    return k;
}

static eddy__skey_t skey(const char *key, const char *ns)
{
    return skey_n(key, strlen(key), ns, strlen(ns));
}

static void check(const eddy__timers_t *ts)
{
    assert_int_equal(eddy__timers_check(ts), 0);
}

static void add(eddy__timers_t *ts, int d, int64_t when, const char *key,
                const char *ns)
{
    eddy__skey_t k = skey(key, ns);
    assert_int_equal(eddy__timers_add(ts, d, when, &k), 0);
}

static void del(eddy__timers_t *ts, int d, int64_t when, const char *key,
                const char *ns)
{
    eddy__skey_t k = skey(key, ns);
    assert_int_equal(eddy__timers_delete(ts, d, when, &k), 0);
}

/* Pops one timer and checks all of it, including the key's hash and group. */
static void expect_pop(eddy__timers_t *ts, int d, int64_t limit, int64_t when,
                       const char *key, const char *ns)
{
    eddy__timer_t t;
    assert_int_equal(eddy__timers_pop(ts, d, limit, &t), 1);
    if (t.tm_ts != when) {
        fail_msg("popped ts %lld, expected %lld (%s/%s)", (long long)t.tm_ts,
                 (long long)when, key, ns);
    }
    TU_ASSERT_BYTES(t.tm_key.sk_key, t.tm_key.sk_klen, key, strlen(key));
    TU_ASSERT_BYTES(t.tm_key.sk_ns, t.tm_key.sk_nslen, ns, strlen(ns));
    eddy__skey_t k = skey(key, ns);
    assert_true(t.tm_key.sk_hash == k.sk_hash);
    assert_int_equal(t.tm_key.sk_kg, k.sk_kg);
}

static void expect_none(eddy__timers_t *ts, int d, int64_t limit)
{
    eddy__timer_t t;
    size_t n = eddy__timers_count(ts, d);
    assert_int_equal(eddy__timers_pop(ts, d, limit, &t), 0);
    assert_int_equal(eddy__timers_count(ts, d), n);
}

static void expect_next(const eddy__timers_t *ts, int d, int64_t when)
{
    int64_t got = eddy__timers_next(ts, d);
    if (got != when) {
        fail_msg("next() = %lld, expected %lld", (long long)got,
                 (long long)when);
    }
}

/* ---- basic contract ---- */

static int count_calls(void *arg, const eddy__timer_t *t)
{
    (void)t;
    (*(int *)arg)++;
    return 0;
}

static void test_empty(void **state)
{
    (void)state;
    eddy__timers_t *ts = eddy__timers_new();
    for (int d = EV; d <= PT; d++) {
        assert_int_equal(eddy__timers_count(ts, d), 0);
        expect_next(ts, d, INT64_MAX);
        expect_none(ts, d, INT64_MAX);
        del(ts, d, 5, "absent", "");
        assert_int_equal(eddy__timers_count(ts, d), 0);
        int calls = 0;
        for (int kg = -1; kg <= MAX_PAR; kg++) {
            assert_int_equal(
                eddy__timers_for_each(ts, d, kg, count_calls, &calls), 0);
        }
        assert_int_equal(calls, 0);
    }
    check(ts);
    eddy__timers_destroy(ts);
    eddy__timers_destroy(NULL);
}

static void test_order_by_timestamp(void **state)
{
    (void)state;
    eddy__timers_t *ts = eddy__timers_new();
    static const int64_t when[] = {50, 10, -7,        30, INT64_MAX,
                                   20, 40, INT64_MIN, 0};
    static const char *const keys[] = {"a", "b", "c", "d", "e",
                                       "f", "g", "h", "i"};
    int64_t lo = INT64_MAX;
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(when); i++) {
        add(ts, EV, when[i], keys[i], "");
        lo = EDDY_MIN(lo, when[i]);
        assert_int_equal(eddy__timers_count(ts, EV), i + 1);
        expect_next(ts, EV, lo);
    }
    check(ts);
    /* Sorted: h(MIN) c(-7) i(0) b(10) f(20) d(30) g(40) a(50) e(MAX). */
    static const size_t order[] = {7, 2, 8, 1, 5, 3, 6, 0, 4};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(order); i++) {
        size_t j = order[i];
        expect_next(ts, EV, when[j]);
        expect_pop(ts, EV, INT64_MAX, when[j], keys[j], "");
        assert_int_equal(eddy__timers_count(ts, EV),
                         EDDY_ARRAY_SIZE(order) - i - 1);
    }
    expect_next(ts, EV, INT64_MAX);
    expect_none(ts, EV, INT64_MAX);
    /* The other domain saw none of it. */
    assert_int_equal(eddy__timers_count(ts, PT), 0);
    check(ts);
    eddy__timers_destroy(ts);
}

static void test_pop_limit_inclusive(void **state)
{
    (void)state;
    eddy__timers_t *ts = eddy__timers_new();
    add(ts, PT, 10, "k", "");
    add(ts, PT, 11, "k", "");
    expect_none(ts, PT, 9);
    expect_none(ts, PT, INT64_MIN);
    assert_int_equal(eddy__timers_count(ts, PT), 2);
    expect_next(ts, PT, 10);
    expect_pop(ts, PT, 10, 10, "k", "");
    expect_none(ts, PT, 10);
    expect_next(ts, PT, 11);
    expect_pop(ts, PT, 11, 11, "k", "");
    expect_next(ts, PT, INT64_MAX);
    assert_int_equal(eddy__timers_count(ts, PT), 0);
    eddy__timers_destroy(ts);
}

static void test_equal_ts_registration_order(void **state)
{
    (void)state;
    enum { N = 300 };
    eddy__timers_t *ts = eddy__timers_new();
    char key[32];
    /* Registration order is a shuffle of the key numbers, so neither the
     * key bytes nor their hashes agree with it. */
    int perm[N];
    uint64_t rng = 0x1234;
    for (int i = 0; i < N; i++) {
        perm[i] = i;
    }
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(tu_rand(&rng) % (uint64_t)(i + 1));
        int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "e%03d", perm[i]);
        add(ts, EV, 100, key, "w");
        /* Neighbours on both sides, registered in between. */
        if (i % 10 == 0) {
            snprintf(key, sizeof(key), "lo%03d", i);
            add(ts, EV, 99, key, "");
            snprintf(key, sizeof(key), "hi%03d", i);
            add(ts, EV, 101, key, "");
        }
    }
    /* Deleting one and registering it again moves it to the end. */
    snprintf(key, sizeof(key), "e%03d", perm[0]);
    del(ts, EV, 100, key, "w");
    add(ts, EV, 100, key, "w");
    check(ts);
    for (int i = 0; i < N; i += 10) {
        snprintf(key, sizeof(key), "lo%03d", i);
        expect_pop(ts, EV, 100, 99, key, "");
    }
    for (int i = 1; i <= N; i++) {
        snprintf(key, sizeof(key), "e%03d", perm[i % N]);
        expect_pop(ts, EV, 100, 100, key, "w");
    }
    expect_none(ts, EV, 100);
    for (int i = 0; i < N; i += 10) {
        snprintf(key, sizeof(key), "hi%03d", i);
        expect_pop(ts, EV, 101, 101, key, "");
    }
    assert_int_equal(eddy__timers_count(ts, EV), 0);
    eddy__timers_destroy(ts);
}

static void test_dedup(void **state)
{
    (void)state;
    eddy__timers_t *ts = eddy__timers_new();
    add(ts, EV, 5, "a", "w1");
    add(ts, EV, 5, "a", "w1");
    assert_int_equal(eddy__timers_count(ts, EV), 1);
    add(ts, EV, 5, "b", "w1");
    /* Same bytes from other buffers: still the same timer, and it keeps
     * its original place among equal timestamps. */
    char kbuf[] = {'a'}, nbuf[] = {'w', '1'};
    eddy__skey_t k = skey_n(kbuf, sizeof(kbuf), nbuf, sizeof(nbuf));
    assert_int_equal(eddy__timers_add(ts, EV, 5, &k), 0);
    assert_int_equal(eddy__timers_count(ts, EV), 2);
    check(ts);
    expect_pop(ts, EV, 5, 5, "a", "w1");
    expect_pop(ts, EV, 5, 5, "b", "w1");
    expect_none(ts, EV, INT64_MAX);
    /* A fired timer is no longer registered: registering it again counts. */
    add(ts, EV, 5, "a", "w1");
    assert_int_equal(eddy__timers_count(ts, EV), 1);
    expect_pop(ts, EV, 5, 5, "a", "w1");
    expect_none(ts, EV, INT64_MAX);
    /* Domains deduplicate separately. */
    add(ts, EV, 9, "a", "");
    add(ts, PT, 9, "a", "");
    add(ts, PT, 9, "a", "");
    assert_int_equal(eddy__timers_count(ts, EV), 1);
    assert_int_equal(eddy__timers_count(ts, PT), 1);
    check(ts);
    eddy__timers_destroy(ts);
}

static void test_distinct_key_and_namespace(void **state)
{
    (void)state;
    eddy__timers_t *ts = eddy__timers_new();
    /* Pairs that differ only in key, only in namespace, or only in where
     * the key ends and the namespace begins. */
    static const char *const pairs[][2] = {
        {"k", "a"}, {"k", "b"}, {"k", ""},  {"k2", "a"},
        {"ab", ""}, {"a", "b"}, {"", "ab"}, {"ka", ""},
    };
    enum { NP = EDDY_ARRAY_SIZE(pairs) };
    for (size_t i = 0; i < NP; i++) {
        add(ts, EV, 7, pairs[i][0], pairs[i][1]);
        add(ts, EV, 8, pairs[i][0], pairs[i][1]); /* another timestamp */
    }
    assert_int_equal(eddy__timers_count(ts, EV), 2 * NP);
    for (size_t i = 0; i < NP; i++) { /* all deduplicated */
        add(ts, EV, 7, pairs[i][0], pairs[i][1]);
    }
    assert_int_equal(eddy__timers_count(ts, EV), 2 * NP);
    check(ts);
    /* Registration order, so each fires once and in place. */
    for (int64_t w = 7; w <= 8; w++) {
        for (size_t i = 0; i < NP; i++) {
            expect_pop(ts, EV, INT64_MAX, w, pairs[i][0], pairs[i][1]);
        }
    }
    expect_none(ts, EV, INT64_MAX);
    eddy__timers_destroy(ts);
}

/* Keys whose sk_hash is equal (forced): the set must tell them apart by
 * bytes, and backward-shift deletion must keep long probe runs intact. */
static void test_hash_collisions(void **state)
{
    (void)state;
    enum { N = 500 };
    eddy__timers_t *ts = eddy__timers_new();
    char key[32];
    for (int round = 0; round < 2; round++) { /* second round: dedup */
        for (int i = 0; i < N; i++) {
            snprintf(key, sizeof(key), "c%d", i);
            eddy__skey_t k = skey(key, "");
            k.sk_hash = 42;
            k.sk_kg = 3;
            assert_int_equal(eddy__timers_add(ts, EV, 1, &k), 0);
        }
    }
    assert_int_equal(eddy__timers_count(ts, EV), N);
    check(ts);
    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof(key), "c%d", i);
        eddy__skey_t k = skey(key, "");
        k.sk_hash = 42;
        k.sk_kg = 3;
        assert_int_equal(eddy__timers_delete(ts, EV, 1, &k), 0);
        assert_int_equal(eddy__timers_delete(ts, EV, 1, &k), 0);
    }
    assert_int_equal(eddy__timers_count(ts, EV), N / 2);
    check(ts);
    for (int i = 1; i < N; i += 2) {
        eddy__timer_t t;
        snprintf(key, sizeof(key), "c%d", i);
        assert_int_equal(eddy__timers_pop(ts, EV, 1, &t), 1);
        TU_ASSERT_BYTES(t.tm_key.sk_key, t.tm_key.sk_klen, key, strlen(key));
        assert_true(t.tm_key.sk_hash == 42);
        assert_int_equal(t.tm_key.sk_kg, 3);
        if (i % 50 == 1) {
            check(ts);
        }
    }
    expect_none(ts, EV, INT64_MAX);
    eddy__timers_destroy(ts);
}

static void test_delete(void **state)
{
    (void)state;
    eddy__timers_t *ts = eddy__timers_new();
    char key[8];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        add(ts, EV, i, key, "n");
    }
    /* Present, from the middle of the heap. */
    del(ts, EV, 5, "k5", "n");
    assert_int_equal(eddy__timers_count(ts, EV), 9);
    /* Absent: already deleted, wrong timestamp, namespace, key, domain. */
    del(ts, EV, 5, "k5", "n");
    del(ts, EV, 4, "k3", "n");
    del(ts, EV, 3, "k3", "");
    del(ts, EV, 3, "k3", "nn");
    del(ts, EV, 3, "k4", "n");
    del(ts, PT, 3, "k3", "n");
    assert_int_equal(eddy__timers_count(ts, EV), 9);
    /* The earliest: next() moves on. */
    expect_next(ts, EV, 0);
    del(ts, EV, 0, "k0", "n");
    expect_next(ts, EV, 1);
    /* The latest. */
    del(ts, EV, 9, "k9", "n");
    assert_int_equal(eddy__timers_count(ts, EV), 7);
    check(ts);
    /* A deleted timer can be registered again. */
    add(ts, EV, 5, "k5", "n");
    assert_int_equal(eddy__timers_count(ts, EV), 8);
    static const int left[] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(left); i++) {
        snprintf(key, sizeof(key), "k%d", left[i]);
        expect_pop(ts, EV, INT64_MAX, left[i], key, "n");
    }
    expect_none(ts, EV, INT64_MAX);
    expect_next(ts, EV, INT64_MAX);
    check(ts);
    eddy__timers_destroy(ts);
}

static void test_domains_independent(void **state)
{
    (void)state;
    eddy__timers_t *ts = eddy__timers_new();
    add(ts, EV, 10, "k", "");
    add(ts, PT, 10, "k", "");
    add(ts, PT, 3, "p", "");
    assert_int_equal(eddy__timers_count(ts, EV), 1);
    assert_int_equal(eddy__timers_count(ts, PT), 2);
    expect_next(ts, EV, 10);
    expect_next(ts, PT, 3);
    expect_pop(ts, EV, 100, 10, "k", "");
    expect_none(ts, EV, 100);
    assert_int_equal(eddy__timers_count(ts, PT), 2);
    del(ts, EV, 3, "p", ""); /* only in PT */
    assert_int_equal(eddy__timers_count(ts, PT), 2);
    del(ts, PT, 10, "k", "");
    expect_pop(ts, PT, 100, 3, "p", "");
    expect_none(ts, PT, INT64_MAX);
    check(ts);
    eddy__timers_destroy(ts);
}

/* ---- timers registered while firing ---- */

static void test_add_during_pop(void **state)
{
    (void)state;
    eddy__timers_t *ts = eddy__timers_new();
    add(ts, EV, 10, "a", "");
    add(ts, EV, 20, "b", "");
    add(ts, EV, 30, "c", "");

    /* Watermark 25 passes: the "callback" of a@10 registers timers. */
    expect_pop(ts, EV, 25, 10, "a", "");
    add(ts, EV, 15, "d", ""); /* due in this pass */
    add(ts, EV, 5, "e", "");  /* already past: fires next */
    add(ts, EV, 26, "f", ""); /* beyond the limit */
    add(ts, EV, 20, "g", ""); /* ties b, registered later */
    add(ts, EV, 30, "c", ""); /* duplicate of a pending timer */
    assert_int_equal(eddy__timers_count(ts, EV), 6);
    expect_next(ts, EV, 5);
    expect_pop(ts, EV, 25, 5, "e", "");
    expect_pop(ts, EV, 25, 15, "d", "");
    expect_pop(ts, EV, 25, 20, "b", "");
    /* b's callback registers one more due timer, for the same time. */
    add(ts, EV, 20, "h", "");
    expect_pop(ts, EV, 25, 20, "g", "");
    expect_pop(ts, EV, 25, 20, "h", "");
    expect_none(ts, EV, 25);
    assert_int_equal(eddy__timers_count(ts, EV), 2);
    expect_next(ts, EV, 26);
    check(ts);

    /* A callback re-registers its own timer through the fired timer's
     * pointers (they are the add's arguments, so they must survive it). */
    eddy__timer_t t;
    assert_int_equal(eddy__timers_pop(ts, EV, 26, &t), 1); /* f@26 */
    assert_int_equal(eddy__timers_add(ts, EV, t.tm_ts + 100, &t.tm_key), 0);
    assert_int_equal(eddy__timers_count(ts, EV), 2);
    assert_int_equal(eddy__timers_pop(ts, EV, 30, &t), 1); /* c@30 */
    assert_int_equal(eddy__timers_add(ts, EV, t.tm_ts, &t.tm_key), 0);
    assert_int_equal(eddy__timers_count(ts, EV), 2);
    check(ts);
    /* Re-registered at its own time, so due again at once. */
    assert_int_equal(eddy__timers_pop(ts, EV, 30, &t), 1);
    /* Deleting the fired timer through its own pointers: not registered. */
    assert_int_equal(eddy__timers_delete(ts, EV, t.tm_ts, &t.tm_key), 0);
    assert_int_equal(eddy__timers_count(ts, EV), 1);
    expect_none(ts, EV, 30);
    expect_pop(ts, EV, INT64_MAX, 126, "f", "");
    expect_none(ts, EV, INT64_MAX);

    /* Deleting another registered timer of the fired key and namespace
     * through the fired timer's pointers (a window callback cancelling its
     * cleanup timer). */
    add(ts, EV, 40, "x", "window-1");
    add(ts, EV, 50, "x", "window-1");
    add(ts, PT, 60, "x", "window-1");
    assert_int_equal(eddy__timers_pop(ts, EV, 40, &t), 1);
    assert_int_equal(eddy__timers_delete(ts, EV, 50, &t.tm_key), 0);
    assert_int_equal(eddy__timers_count(ts, EV), 0);
    assert_int_equal(eddy__timers_pop(ts, EV, 40, &t), 0);
    /* Popped from one domain, registered into the other. */
    assert_int_equal(eddy__timers_pop(ts, PT, 60, &t), 1);
    assert_int_equal(eddy__timers_add(ts, EV, 70, &t.tm_key), 0);
    expect_pop(ts, EV, INT64_MAX, 70, "x", "window-1");
    check(ts);
    eddy__timers_destroy(ts);
}

/* ---- count() and next() against a model, under random operations ---- */

enum { M_TS = 50, M_KEYS = 30, M_NS = 4 };

typedef struct model {
    int64_t seq[M_TS][M_KEYS][M_NS]; /* registration number, or -1 */
    int per_ts[M_TS];
    size_t count;
    int64_t next_seq;
} model_t;

static void mkey(int key, int ns, char *kb, char *nb)
{
    sprintf(kb, "key%d", key);
    if (ns == 0) {
        nb[0] = '\0'; /* the empty namespace */
    } else {
        sprintf(nb, "ns%d", ns);
    }
}

static int64_t model_next(const model_t *m)
{
    for (int w = 0; w < M_TS; w++) {
        if (m->per_ts[w] > 0) {
            return w;
        }
    }
    return INT64_MAX;
}

static void test_model_random_ops(void **state)
{
    (void)state;
    enum { OPS = 40000 };
    static model_t m;
    memset(m.seq, 0xff, sizeof(m.seq)); /* all -1 */
    memset(m.per_ts, 0, sizeof(m.per_ts));
    m.count = 0;
    m.next_seq = 0;
    eddy__timers_t *ts = eddy__timers_new();
    uint64_t rng = 99;
    char kb[16], nb[16];
    int pops = 0, dups = 0, dels = 0, absent = 0;
    for (int op = 0; op < OPS; op++) {
        uint64_t r = tu_rand(&rng) % 100;
        int w = (int)(tu_rand(&rng) % M_TS);
        int key = (int)(tu_rand(&rng) % M_KEYS);
        int ns = (int)(tu_rand(&rng) % M_NS);
        mkey(key, ns, kb, nb);
        if (r < 50) {
            add(ts, EV, w, kb, nb);
            if (m.seq[w][key][ns] < 0) {
                m.seq[w][key][ns] = m.next_seq++;
                m.per_ts[w]++;
                m.count++;
            } else {
                dups++;
            }
        } else if (r < 70) {
            del(ts, EV, w, kb, nb);
            if (m.seq[w][key][ns] >= 0) {
                m.seq[w][key][ns] = -1;
                m.per_ts[w]--;
                m.count--;
                dels++;
            } else {
                absent++;
            }
        } else {
            /* Pop with limit w: the model's earliest (ts, seq) <= w. */
            int64_t mw = model_next(&m);
            if (mw > w) {
                expect_none(ts, EV, w);
            } else {
                int bk = -1, bn = -1;
                for (int k = 0; k < M_KEYS; k++) {
                    for (int n = 0; n < M_NS; n++) {
                        int64_t s = m.seq[mw][k][n];
                        if (s >= 0 && (bk < 0 || s < m.seq[mw][bk][bn])) {
                            bk = k;
                            bn = n;
                        }
                    }
                }
                mkey(bk, bn, kb, nb);
                expect_pop(ts, EV, w, mw, kb, nb);
                m.seq[mw][bk][bn] = -1;
                m.per_ts[mw]--;
                m.count--;
                pops++;
            }
        }
        assert_int_equal(eddy__timers_count(ts, EV), m.count);
        expect_next(ts, EV, model_next(&m));
        if (op % 2000 == 0) {
            check(ts);
        }
    }
    /* The mix really exercised every path. */
    assert_true(pops > 1000 && dups > 100 && dels > 1000 && absent > 1000);
    assert_int_equal(eddy__timers_count(ts, PT), 0);
    check(ts);
    eddy__timers_destroy(ts);
}

/* ---- for_each by key group ---- */

enum { FE_KEYS = 400 };

typedef struct fe_ctx {
    int kg;
    int seen[FE_KEYS][2]; /* per key: timers at ts 1000+k and 2000+k */
    int calls;
    int stop_after; /* 0: never */
} fe_ctx_t;

static int fe_collect(void *arg, const eddy__timer_t *t)
{
    fe_ctx_t *c = arg;
    c->calls++;
    char buf[32];
    assert_true(t->tm_key.sk_klen < sizeof(buf));
    memcpy(buf, t->tm_key.sk_key, t->tm_key.sk_klen);
    buf[t->tm_key.sk_klen] = '\0';
    int k = atoi(buf + 1);
    assert_true(k >= 0 && k < FE_KEYS);
    assert_int_equal(t->tm_key.sk_kg, c->kg);
    assert_true(t->tm_key.sk_hash == eddy__hash64(buf, strlen(buf)));
    assert_int_equal(eddy__key_group(t->tm_key.sk_hash, MAX_PAR), c->kg);
    TU_ASSERT_BYTES(t->tm_key.sk_ns, t->tm_key.sk_nslen, "win", 3);
    int which = t->tm_ts == 1000 + k ? 0 : t->tm_ts == 2000 + k ? 1 : -1;
    assert_true(which >= 0);
    c->seen[k][which]++;
    if (c->stop_after > 0 && c->calls == c->stop_after) {
        return 42;
    }
    return 0;
}

/* Walks every key group; checks that exactly the expected timers show up
 * once each, under their own key group. */
static void fe_verify(eddy__timers_t *ts, const bool expect[FE_KEYS][2])
{
    static fe_ctx_t c;
    memset(&c, 0, sizeof(c));
    int total = 0;
    for (int kg = 0; kg < MAX_PAR; kg++) {
        c.kg = kg;
        c.calls = 0;
        assert_int_equal(eddy__timers_for_each(ts, EV, kg, fe_collect, &c), 0);
        total += c.calls;
    }
    int expected = 0;
    for (int k = 0; k < FE_KEYS; k++) {
        for (int j = 0; j < 2; j++) {
            assert_int_equal(c.seen[k][j], expect[k][j] ? 1 : 0);
            expected += expect[k][j];
        }
    }
    assert_int_equal(total, expected);
    assert_int_equal(eddy__timers_count(ts, EV), (size_t)expected);
}

static void test_for_each_key_group(void **state)
{
    (void)state;
    static bool expect[FE_KEYS][2];
    eddy__timers_t *ts = eddy__timers_new();
    char key[16];
    int groups[MAX_PAR] = {0};
    for (int k = 0; k < FE_KEYS; k++) {
        snprintf(key, sizeof(key), "k%d", k);
        add(ts, EV, 1000 + k, key, "win");
        add(ts, EV, 2000 + k, key, "win");
        /* Same keys in the other domain must not show up. */
        add(ts, PT, 1000 + k, key, "win");
        expect[k][0] = expect[k][1] = true;
        groups[skey(key, "").sk_kg]++;
    }
    for (int g = 0; g < MAX_PAR; g++) {
        assert_true(groups[g] > 0); /* the keys cover every group */
    }
    fe_verify(ts, expect);

    /* After deletes and pops, only what is still registered. */
    for (int k = 0; k < FE_KEYS; k += 3) {
        snprintf(key, sizeof(key), "k%d", k);
        del(ts, EV, 2000 + k, key, "win");
        expect[k][1] = false;
    }
    eddy__timer_t t;
    while (eddy__timers_pop(ts, EV, 1000 + FE_KEYS / 2 - 1, &t) == 1) {
    }
    for (int k = 0; k < FE_KEYS / 2; k++) {
        expect[k][0] = false;
    }
    fe_verify(ts, expect);
    check(ts);

    /* A non-zero return stops the walk and is passed on. */
    static fe_ctx_t c;
    memset(&c, 0, sizeof(c));
    c.kg = 0;
    c.stop_after = 3;
    assert_true(groups[0] >= 3);
    assert_int_equal(eddy__timers_for_each(ts, EV, 0, fe_collect, &c), 42);
    assert_int_equal(c.calls, 3);

    /* Groups never used, or impossible, have no timers. */
    int calls = 0;
    assert_int_equal(
        eddy__timers_for_each(ts, EV, MAX_PAR + 1000, count_calls, &calls), 0);
    assert_int_equal(eddy__timers_for_each(ts, EV, -1, count_calls, &calls), 0);
    assert_int_equal(calls, 0);
    eddy__timers_destroy(ts);
}

/* ---- scale ---- */

static void test_many_random_sorted(void **state)
{
    (void)state;
    enum { N = 200000 };
    eddy__timers_t *ts = eddy__timers_new();
    int64_t *when = malloc(N * sizeof(*when));
    unsigned char *fired = calloc(N, 1);
    assert_non_null(when);
    assert_non_null(fired);
    uint64_t rng = 7;
    char key[16];
    for (int i = 0; i < N; i++) {
        /* Many ties: about four timers per timestamp. */
        when[i] = (int64_t)(tu_rand(&rng) % (N / 4)) - N / 8;
        snprintf(key, sizeof(key), "r%d", i);
        add(ts, PT, when[i], key, "");
    }
    assert_int_equal(eddy__timers_count(ts, PT), N);
    check(ts);
    /* Pop in rising stages; within a stage and across, (ts, registration)
     * never goes back. */
    int64_t last_ts = INT64_MIN;
    int last_i = -1, popped = 0;
    for (int64_t limit = -N / 8 + 999; popped < N; limit += 1000) {
        eddy__timer_t t;
        while (eddy__timers_pop(ts, PT, limit, &t) == 1) {
            assert_true(t.tm_ts <= limit);
            assert_true(t.tm_key.sk_klen > 1 && t.tm_key.sk_klen < 16);
            memcpy(key, t.tm_key.sk_key, t.tm_key.sk_klen);
            key[t.tm_key.sk_klen] = '\0';
            int i = atoi(key + 1);
            assert_true(i >= 0 && i < N);
            assert_int_equal(fired[i], 0);
            fired[i] = 1;
            assert_true(t.tm_ts == when[i]);
            assert_true(t.tm_ts > last_ts ||
                        (t.tm_ts == last_ts && i > last_i));
            last_ts = t.tm_ts;
            last_i = i;
            popped++;
        }
        assert_int_equal(eddy__timers_count(ts, PT), (size_t)(N - popped));
        assert_true(eddy__timers_next(ts, PT) > limit);
    }
    expect_next(ts, PT, INT64_MAX);
    check(ts);
    free(when);
    free(fired);
    eddy__timers_destroy(ts);
}

static void test_large_keys(void **state)
{
    (void)state;
    /* Sizes around and beyond the largest pooled size class (64 KiB). */
    static const size_t klens[] = {0, 1, 1000, 65000, 100000, 300000};
    static const size_t nslens[] = {70000, 0, 3000, 536, 16, 1};
    enum { NK = EDDY_ARRAY_SIZE(klens) };
    eddy__timers_t *ts = eddy__timers_new();
    unsigned char *keys[NK], *nss[NK], *copy[NK];
    for (size_t i = 0; i < NK; i++) {
        keys[i] = malloc(klens[i] + 1);
        nss[i] = malloc(nslens[i] + 1);
        copy[i] = malloc(klens[i] + 1);
        for (size_t j = 0; j < klens[i]; j++) {
            keys[i][j] = (unsigned char)(j * 31 + i);
        }
        for (size_t j = 0; j < nslens[i]; j++) {
            nss[i][j] = (unsigned char)(j * 17 + i);
        }
        memcpy(copy[i], keys[i], klens[i]);
    }
    for (int round = 0; round < 3; round++) { /* rounds 2, 3 reuse memory */
        for (size_t i = 0; i < NK; i++) {
            eddy__skey_t k = skey_n(keys[i], klens[i], nss[i], nslens[i]);
            assert_int_equal(eddy__timers_add(ts, EV, 1, &k), 0);
            /* Same last byte flipped: a different key. */
            if (klens[i] > 0) {
                copy[i][klens[i] - 1] ^= 1;
                eddy__skey_t k2 = skey_n(copy[i], klens[i], nss[i], nslens[i]);
                assert_int_equal(eddy__timers_add(ts, EV, 1, &k2), 0);
                copy[i][klens[i] - 1] ^= 1;
                /* An identical copy: deduplicated. */
                eddy__skey_t k3 = skey_n(copy[i], klens[i], nss[i], nslens[i]);
                assert_int_equal(eddy__timers_add(ts, EV, 1, &k3), 0);
            }
        }
        size_t n = 2 * NK - 1;
        assert_int_equal(eddy__timers_count(ts, EV), n);
        check(ts);
        /* Delete the flipped variants through fresh buffers. */
        for (size_t i = 0; i < NK; i++) {
            if (klens[i] == 0) {
                continue;
            }
            copy[i][klens[i] - 1] ^= 1;
            eddy__skey_t k2 = skey_n(copy[i], klens[i], nss[i], nslens[i]);
            assert_int_equal(eddy__timers_delete(ts, EV, 1, &k2), 0);
            copy[i][klens[i] - 1] ^= 1;
        }
        assert_int_equal(eddy__timers_count(ts, EV), NK);
        for (size_t i = 0; i < NK; i++) {
            eddy__timer_t t;
            assert_int_equal(eddy__timers_pop(ts, EV, 1, &t), 1);
            TU_ASSERT_BYTES(t.tm_key.sk_key, t.tm_key.sk_klen, keys[i],
                            klens[i]);
            TU_ASSERT_BYTES(t.tm_key.sk_ns, t.tm_key.sk_nslen, nss[i],
                            nslens[i]);
        }
        expect_none(ts, EV, INT64_MAX);
    }
    /* Leave some registered: destroy frees them. */
    eddy__skey_t k = skey_n(keys[4], klens[4], nss[4], nslens[4]);
    assert_int_equal(eddy__timers_add(ts, PT, 1, &k), 0);
    eddy__timer_t t;
    assert_int_equal(eddy__timers_pop(ts, PT, 1, &t), 1);
    assert_int_equal(eddy__timers_add(ts, PT, 2, &t.tm_key), 0);
    check(ts);
    eddy__timers_destroy(ts);
    for (size_t i = 0; i < NK; i++) {
        free(keys[i]);
        free(nss[i]);
        free(copy[i]);
    }
}

/* ---- memory ---- */

/* A window-operator pattern: a standing population of timers, one firing
 * and one registered per step, plus a registration cancelled again. After
 * warm-up, a million steps must not allocate at all. */
static void test_steady_state_no_malloc(void **state)
{
    (void)state;
    enum { LIVE = 1000, WARM = 3 * LIVE, STEPS = 1000000 };
    eddy__timers_t *ts = eddy__timers_new();
    uint64_t key;
    int64_t win[2];
    for (int64_t i = 0; i < LIVE; i++) {
        key = (uint64_t)i;
        win[0] = i;
        win[1] = i + LIVE;
        eddy__skey_t k = skey_n(&key, sizeof(key), win, sizeof(win));
        assert_int_equal(eddy__timers_add(ts, EV, i, &k), 0);
    }
    uint64_t before = 0;
    uint64_t t0 = tu_now_ms();
    for (int64_t i = 0; i < WARM + STEPS; i++) {
        if (i == WARM) {
            before = eddy__timers_allocations(ts);
            assert_true(before > 0);
        }
        eddy__timer_t t;
        assert_int_equal(eddy__timers_pop(ts, EV, i, &t), 1);
        assert_true(t.tm_ts == i);
        key = (uint64_t)(i % LIVE);
        win[0] = i + LIVE;
        win[1] = i + 2 * LIVE;
        eddy__skey_t k = skey_n(&key, sizeof(key), win, sizeof(win));
        assert_int_equal(eddy__timers_add(ts, EV, i + LIVE, &k), 0);
        eddy__skey_t late = skey_n(&key, sizeof(key), win, sizeof(win) / 2);
        assert_int_equal(eddy__timers_add(ts, EV, i + 5 * LIVE, &late), 0);
        assert_int_equal(eddy__timers_delete(ts, EV, i + 5 * LIVE, &late), 0);
    }
    assert_int_equal(eddy__timers_allocations(ts) - before, 0);
    assert_int_equal(eddy__timers_count(ts, EV), LIVE);
    check(ts);
    print_message("steady state: %d steps in %llu ms, %llu allocations "
                  "in total\n",
                  STEPS, (unsigned long long)(tu_now_ms() - t0),
                  (unsigned long long)before);
    eddy__timers_destroy(ts);
}

/* Registers m<i> at N - i for i = 0..N-1 (each one the new earliest) and
 * stops at the first failure; returns how many succeeded. */
enum { OOM_N = 300 };

static int oom_fill(eddy__timers_t *ts)
{
    char key[16];
    for (int i = 0; i < OOM_N; i++) {
        snprintf(key, sizeof(key), "m%d", i);
        eddy__skey_t k = skey(key, "ns");
        int rc = eddy__timers_add(ts, EV, OOM_N - i, &k);
        if (rc != 0) {
            assert_int_equal(rc, EDDY_ERR_NOMEM);
            return i;
        }
    }
    return OOM_N;
}

/* Every allocation of add() may fail (the heap, the set and the key-group
 * array growing, entries): the call reports EDDY_ERR_NOMEM, the service stays
 * as it was and keeps working without memory, and recovers once memory is
 * back. */
static void test_out_of_memory(void **state)
{
    (void)state;
    char key[16];
    eddy__timers_t *ts = eddy__timers_new();
    assert_int_equal(oom_fill(ts), OOM_N);
    int64_t total = (int64_t)eddy__timers_allocations(ts);
    eddy__timers_destroy(ts);
    assert_true(total > OOM_N);

    for (int64_t budget = 0; budget <= total; budget++) {
        ts = eddy__timers_new();
        eddy__timers_set_alloc_budget(ts, budget);
        int ok = oom_fill(ts);
        assert_int_equal(ok < OOM_N, budget < total);
        assert_int_equal(eddy__timers_count(ts, EV), (size_t)ok);
        assert_true(eddy__timers_allocations(ts) ==
                    (uint64_t)EDDY_MIN(budget, total));
        check(ts);
        /* Without memory: duplicates, deletes and pops still work. */
        if (ok > 0) {
            add(ts, EV, OOM_N, "m0", "ns");
            assert_int_equal(eddy__timers_count(ts, EV), (size_t)ok);
            expect_next(ts, EV, OOM_N - ok + 1);
        }
        if (ok >= 2) {
            snprintf(key, sizeof(key), "m%d", ok - 1);
            del(ts, EV, OOM_N - ok + 1, key, "ns");
            snprintf(key, sizeof(key), "m%d", ok - 2);
            expect_pop(ts, EV, INT64_MAX, OOM_N - ok + 2, key, "ns");
            assert_int_equal(eddy__timers_count(ts, EV), (size_t)(ok - 2));
            check(ts);
        }
        /* Memory is back: everything registers, and fires in order. */
        eddy__timers_set_alloc_budget(ts, -1);
        assert_int_equal(oom_fill(ts), OOM_N);
        assert_int_equal(eddy__timers_count(ts, EV), OOM_N);
        check(ts);
        for (int w = 1; w <= OOM_N; w++) {
            snprintf(key, sizeof(key), "m%d", OOM_N - w);
            expect_pop(ts, EV, INT64_MAX, w, key, "ns");
        }
        expect_none(ts, EV, INT64_MAX);
        eddy__timers_destroy(ts);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_order_by_timestamp),
        cmocka_unit_test(test_pop_limit_inclusive),
        cmocka_unit_test(test_equal_ts_registration_order),
        cmocka_unit_test(test_dedup),
        cmocka_unit_test(test_distinct_key_and_namespace),
        cmocka_unit_test(test_hash_collisions),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_domains_independent),
        cmocka_unit_test(test_add_during_pop),
        cmocka_unit_test(test_model_random_ops),
        cmocka_unit_test(test_for_each_key_group),
        cmocka_unit_test(test_many_random_sorted),
        cmocka_unit_test(test_large_keys),
        cmocka_unit_test(test_steady_state_no_malloc),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
