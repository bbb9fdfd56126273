/*
 * eddy — unit tests for what only the heap backend's implementation can get
 * wrong (src/state/heap_backend.c, src/state/kv_table.c): copy-on-write
 * snapshots that must not see the writes made after them, the per-record
 * fast paths (key and namespace shapes, hash collisions, the namespace
 * hash cache, the per-table state they keep), inline entries moving under
 * the caller's pointers, and inline kv tables themselves, and lanes: most
 * states here declare them (with three lane functions, so the lane cached
 * with the last namespace must not be taken for another state's), and
 * test_lanes_change_nothing holds them to the same contents as a backend
 * without. The behavioural contract of every backend is tested by
 * kstate_suite.h (without lanes).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

#include <sys/stat.h>

#include "state/kv_table.h"
#include "state/state.h"

#define MAXP 128
#define TTL 100
#define T0 1000000

enum { S_VAL, S_LIST, S_MAP, S_AGG, S_TVAL, S_TLIST, S_TMAP, NST };

/* Lane functions: the sum of the namespace's bytes, times *arg if given;
 * and its first byte. */
static unsigned lane_sum(const void *ns, size_t nslen, const void *arg)
{
    unsigned x = 0;
    for (size_t i = 0; i < nslen; i++) {
        x += ((const unsigned char *)ns)[i];
    }
    return arg != NULL ? x * *(const unsigned *)arg : x;
}

static unsigned lane_first(const void *ns, size_t nslen, const void *arg)
{
    (void)nslen;
    (void)arg;
    return ((const unsigned char *)ns)[0];
}

static const unsigned three = 3;

static const eddy__state_spec_t specs[NST] = {
    {"value", EDDY_STATE_VALUE, 0, 4, lane_sum, NULL},
    {"list", EDDY_STATE_LIST, 0, 8, lane_sum, &three},
    {"map", EDDY_STATE_MAP, 0, 0, NULL, NULL},
    {"agg", EDDY_STATE_AGGREGATING, 0, 3, lane_first, NULL}, /* 4 lanes */
    {"tvalue", EDDY_STATE_VALUE, TTL, 2, lane_sum, NULL},
    {"tlist", EDDY_STATE_LIST, TTL, 1, lane_sum, NULL}, /* one lane */
    {"tmap", EDDY_STATE_MAP, TTL, 64, lane_first, NULL},
};

/* The same states without lanes. */
static const eddy__state_spec_t plain_specs[NST] = {
    {"value", EDDY_STATE_VALUE, 0},    {"list", EDDY_STATE_LIST, 0},
    {"map", EDDY_STATE_MAP, 0},        {"agg", EDDY_STATE_AGGREGATING, 0},
    {"tvalue", EDDY_STATE_VALUE, TTL}, {"tlist", EDDY_STATE_LIST, TTL},
    {"tmap", EDDY_STATE_MAP, TTL},
};

/* ---- keys ---- */

/* A state key owning its bytes (copy it with care: sk points into it). */
typedef struct tkey {
    unsigned char tk_key[48];
    unsigned char tk_ns[48];
    eddy__skey_t tk_sk;
} tkey_t;

static void tkey_set(tkey_t *t, const void *key, size_t klen, const void *ns,
                     size_t nslen)
{
    assert_true(klen <= sizeof(t->tk_key) && nslen <= sizeof(t->tk_ns));
    if (klen > 0) {
        memcpy(t->tk_key, key, klen);
    }
    if (nslen > 0) {
        memcpy(t->tk_ns, ns, nslen);
    }
    t->tk_sk.sk_key = t->tk_key;
    t->tk_sk.sk_klen = klen;
    t->tk_sk.sk_hash = eddy__hash64(key, klen);
    t->tk_sk.sk_kg = eddy__key_group(t->tk_sk.sk_hash, MAXP);
    t->tk_sk.sk_ns = t->tk_ns;
    t->tk_sk.sk_nslen = nslen;
}

/* Key "<prefix><i>" padded with 'x' to klen bytes (klen 0: natural length),
 * and a 16-byte window-like namespace for w >= 0. */
static void tkey_fmt(tkey_t *t, const char *prefix, int i, size_t klen, int w)
{
    char buf[48];
    int n = snprintf(buf, sizeof(buf), "%s%d", prefix, i);
    size_t len = klen > 0 ? klen : (size_t)n;
    if (len > (size_t)n) {
        memset(buf + n, 'x', len - (size_t)n);
    } else if (len < (size_t)n) {
        /* Too short for the text: the prefix and i in binary. */
        assert_true(len == 3 && i < 65536);
        buf[1] = (char)(i & 0xff);
        buf[2] = (char)(i >> 8);
    }
    unsigned char ns[16];
    for (int b = 0; b < 16; b++) {
        ns[b] = (unsigned char)(w * 7 + b);
    }
    tkey_set(t, buf, len, ns, w >= 0 ? sizeof(ns) : 0);
}

/* ---- reading whole states ---- */

typedef struct lines {
    char **l_v;
    size_t l_n, l_cap;
} lines_t;

static void lines_add(lines_t *l, char *s)
{
    if (l->l_n == l->l_cap) {
        l->l_cap = l->l_cap ? l->l_cap * 2 : 256;
        l->l_v = realloc(l->l_v, l->l_cap * sizeof(*l->l_v));
    }
    l->l_v[l->l_n++] = s;
}

static void lines_free(lines_t *l)
{
    for (size_t i = 0; i < l->l_n; i++) {
        free(l->l_v[i]);
    }
    free(l->l_v);
    memset(l, 0, sizeof(*l));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the hex of n bytes to the string *s. */
static void hex_cat(char **s, const void *p, size_t n)
{
    size_t len = strlen(*s);
    *s = realloc(*s, len + 2 * n + 2);
    for (size_t i = 0; i < n; i++) {
        sprintf(*s + len + 2 * i, "%02x", ((const unsigned char *)p)[i]);
    }
    (*s)[len + 2 * n] = '\0';
}

static void str_cat(char **s, const char *t)
{
    size_t len = strlen(*s);
    *s = realloc(*s, len + strlen(t) + 1);
    strcpy(*s + len, t);
}

typedef struct kcopy {
    tkey_t kc_k;
} kcopy_t;

typedef struct collect {
    kcopy_t *c_v;
    size_t c_n, c_cap;
    int c_kg;
} collect_t;

static int collect_fn(void *arg, const void *key, size_t klen, const void *ns,
                      size_t nslen)
{
    collect_t *c = arg;
    if (c->c_n == c->c_cap) {
        c->c_cap = c->c_cap ? c->c_cap * 2 : 64;
        c->c_v = realloc(c->c_v, c->c_cap * sizeof(*c->c_v));
    }
    tkey_t *t = &c->c_v[c->c_n++].kc_k;
    tkey_set(t, key, klen, ns, nslen);
    t->tk_sk.sk_kg = c->c_kg; /* as stored, whatever the hash says */
    return 0;
}

/* The (key, namespace) pairs of state sid, key group kg. */
static void collect(eddy__kstate_t *ks, int sid, int kg, collect_t *c)
{
    c->c_n = 0;
    c->c_kg = kg;
    assert_int_equal(ks->ks_ops->ko_for_each(ks, sid, kg, collect_fn, c), 0);
    /* tkey_set's pointers moved with the array: fix them. */
    for (size_t i = 0; i < c->c_n; i++) {
        tkey_t *t = &c->c_v[i].kc_k;
        t->tk_sk.sk_key = t->tk_key;
        t->tk_sk.sk_ns = t->tk_ns;
    }
}

/* Every entry of every state, one sorted line each, at the backend's
 * current time. Reads of live entries only: changes nothing. */
static void dump(eddy__kstate_t *ks, lines_t *out)
{
    const eddy__kstate_ops_t *o = ks->ks_ops;
    collect_t c = {0};
    for (int sid = 0; sid < NST; sid++) {
        for (int kg = ks->ks_kg_first; kg <= ks->ks_kg_last; kg++) {
            collect(ks, sid, kg, &c);
            for (size_t i = 0; i < c.c_n; i++) {
                const eddy__skey_t *k = &c.c_v[i].kc_k.tk_sk;
                char *s = malloc(64);
                snprintf(s, 64, "%d %d ", sid, kg);
                hex_cat(&s, k->sk_key, k->sk_klen);
                str_cat(&s, " ");
                hex_cat(&s, k->sk_ns, k->sk_nslen);
                str_cat(&s, " =");
                int kind = specs[sid].ss_kind;
                if (kind == EDDY_STATE_LIST) {
                    eddy__siter_t it;
                    assert_int_equal(o->ko_list_iter(ks, sid, k, &it), 1);
                    const void *v;
                    size_t len;
                    while (o->ko_list_next(&it, &v, &len) == 1) {
                        str_cat(&s, " ");
                        hex_cat(&s, v, len);
                    }
                } else if (kind == EDDY_STATE_MAP) {
                    eddy__siter_t it;
                    assert_int_equal(o->ko_map_iter(ks, sid, k, &it), 1);
                    const void *uk, *v;
                    size_t uklen, vlen;
                    lines_t m = {0};
                    while (o->ko_map_next(&it, &uk, &uklen, &v, &vlen) == 1) {
                        char *e = calloc(1, 1);
                        hex_cat(&e, uk, uklen);
                        str_cat(&e, ":");
                        hex_cat(&e, v, vlen);
                        lines_add(&m, e);
                    }
                    qsort(m.l_v, m.l_n, sizeof(*m.l_v), cmp_str);
                    for (size_t j = 0; j < m.l_n; j++) {
                        str_cat(&s, " ");
                        str_cat(&s, m.l_v[j]);
                    }
                    lines_free(&m);
                } else {
                    const void *v;
                    size_t len;
                    assert_int_equal(o->ko_get(ks, sid, k, &v, &len), 1);
                    str_cat(&s, " ");
                    hex_cat(&s, v, len);
                }
                lines_add(out, s);
            }
        }
    }
    free(c.c_v);
    qsort(out->l_v, out->l_n, sizeof(*out->l_v), cmp_str);
}

static void assert_same_dump(const lines_t *want, const lines_t *got)
{
    size_t n = EDDY_MIN(want->l_n, got->l_n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(want->l_v[i], got->l_v[i]) != 0) {
            fail_msg("entry %zu differs:\n want %s\n got  %s", i, want->l_v[i],
                     got->l_v[i]);
        }
    }
    if (want->l_n != got->l_n) {
        fail_msg("%zu entries, want %zu (first extra: %s)", got->l_n, want->l_n,
                 got->l_n > n ? got->l_v[n] : want->l_v[n]);
    }
}

/* Entries of state sid over all key groups (for_each: changes nothing). */
static size_t count_entries(eddy__kstate_t *ks, int sid)
{
    collect_t c = {0};
    size_t n = 0;
    for (int kg = ks->ks_kg_first; kg <= ks->ks_kg_last; kg++) {
        collect(ks, sid, kg, &c);
        n += c.c_n;
    }
    free(c.c_v);
    return n;
}

/* ---- small helpers ---- */

static void put(eddy__kstate_t *ks, int sid, const tkey_t *t, const void *v,
                size_t len)
{
    assert_int_equal(ks->ks_ops->ko_put(ks, sid, &t->tk_sk, v, len), 0);
}

/* A value of `len` bytes derived from (seed, len). */
static void fill(unsigned char *buf, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (unsigned char)(seed * 31 + i * 7 + (seed >> 8));
    }
}

static void check_val(eddy__kstate_t *ks, int sid, const tkey_t *t,
                      const void *want, size_t wlen)
{
    const void *v = NULL;
    size_t len = 0;
    int got = ks->ks_ops->ko_get(ks, sid, &t->tk_sk, &v, &len);
    if (want == NULL) {
        assert_int_equal(got, 0);
        return;
    }
    assert_int_equal(got, 1);
    TU_ASSERT_BYTES(v, len, want, wlen);
}

static int64_t agg_get(eddy__kstate_t *ks, const tkey_t *t)
{
    const void *v;
    size_t len;
    assert_int_equal(ks->ks_ops->ko_get(ks, S_AGG, &t->tk_sk, &v, &len), 1);
    assert_int_equal(len, sizeof(int64_t));
    int64_t x;
    memcpy(&x, v, sizeof(x));
    return x;
}

static void agg_add(eddy__kstate_t *ks, const tkey_t *t, int64_t d)
{
    void *p;
    bool created;
    assert_int_equal(ks->ks_ops->ko_get_for_update(
                         ks, S_AGG, &t->tk_sk, sizeof(int64_t), &p, &created),
                     0);
    int64_t x;
    memcpy(&x, p, sizeof(x));
    x += d;
    memcpy(p, &x, sizeof(x));
}

/* ---- checkpoints ---- */

typedef struct job {
    char j_dir[512];
    char j_chk[600];
    char j_shared[600];
} job_t;

static void job_init(job_t *j)
{
    tu_tmpdir(j->j_dir, sizeof(j->j_dir));
    snprintf(j->j_chk, sizeof(j->j_chk), "%s/chk-1", j->j_dir);
    snprintf(j->j_shared, sizeof(j->j_shared), "%s/shared", j->j_dir);
    assert_int_equal(mkdir(j->j_chk, 0755), 0);
    assert_int_equal(mkdir(j->j_shared, 0755), 0);
}

/* Writes a snapshot (the asynchronous part) and releases it. */
static json_t *snap_write(eddy__ksnap_t *snap, const job_t *j)
{
    eddy__snap_target_t t = {j->j_chk, j->j_shared, "op1-0", 1, false};
    json_t *h = NULL;
    eddy_error_t err = {0};
    TU_ASSERT_OK(snap->ks_write(snap, &t, &h, &err), &err);
    snap->ks_release(snap);
    assert_non_null(h);
    return h;
}

static eddy__kstate_t *restore_specs(json_t *h, const job_t *j,
                                     const eddy__state_spec_t *sp)
{
    eddy__kstate_t *ks = eddy__heap_kstate_new(sp, NST, 0, MAXP - 1);
    assert_non_null(ks);
    eddy__restore_src_t src = {&h, 1, j->j_chk};
    eddy_error_t err = {0};
    TU_ASSERT_OK(ks->ks_ops->ko_restore(ks, &src, false, &err), &err);
    return ks;
}

static eddy__kstate_t *restore(json_t *h, const job_t *j)
{
    return restore_specs(h, j, specs);
}

/* ---- the state the snapshot tests start from ---- */

#define NKEYS 1500
#define HOT_KG 7 /* one crowded table: compaction and resizes */
#define NHOT 3000

/* Key shapes: short, 8 bytes, 16 bytes, long (not inline). */
static size_t klen_of(int i)
{
    static const size_t lens[] = {0, 8, 16, 40, 3};
    return lens[i % 5];
}

static void hot_key(tkey_t *t, int i)
{
    tkey_fmt(t, "hot", i, 8, -1);
    t->tk_sk.sk_kg = HOT_KG;
}

static void populate(eddy__kstate_t *ks)
{
    const eddy__kstate_ops_t *o = ks->ks_ops;
    unsigned char buf[300];
    tkey_t t;
    for (int i = 0; i < NKEYS; i++) {
        /* Values below, at and above the inline capacity. */
        size_t vlen = (size_t)(i % 3 == 0 ? 8 : i % 3 == 1 ? 20 : 120);
        tkey_fmt(&t, "v", i, klen_of(i), i % 2 ? i % 4 : -1);
        fill(buf, vlen, (uint64_t)i);
        put(ks, S_VAL, &t, buf, vlen);
        tkey_fmt(&t, "a", i, klen_of(i), i % 3 ? 1 : -1);
        agg_add(ks, &t, i);
        tkey_fmt(&t, "l", i, klen_of(i), i % 2 ? 2 : -1);
        for (int e = 0; e <= i % 3; e++) {
            fill(buf, (size_t)(4 + e), (uint64_t)(i * 10 + e));
            assert_int_equal(o->ko_list_add(ks, S_LIST, &t.tk_sk, buf, 4 + e),
                             0);
        }
        tkey_fmt(&t, "m", i, klen_of(i), i % 2 ? 3 : -1);
        for (int e = 0; e <= i % 4; e++) {
            char uk[16];
            int ukl = snprintf(uk, sizeof(uk), "u%d", e);
            fill(buf, 12, (uint64_t)(i * 100 + e));
            assert_int_equal(
                o->ko_map_put(ks, S_MAP, &t.tk_sk, uk, (size_t)ukl, buf, 12),
                0);
        }
    }
    /* TTL states, written at T0 - 90, T0 - 50 and T0 - 10 (thirds). */
    for (int g = 0; g < 3; g++) {
        eddy__kstate_set_time(ks, T0 - 90 + 40 * g);
        for (int i = g; i < NKEYS; i += 3) {
            tkey_fmt(&t, "t", i, klen_of(i), i % 2 ? 5 : -1);
            fill(buf, 8, (uint64_t)i);
            put(ks, S_TVAL, &t, buf, 8);
            assert_int_equal(o->ko_list_add(ks, S_TLIST, &t.tk_sk, buf, 5), 0);
            assert_int_equal(
                o->ko_map_put(ks, S_TMAP, &t.tk_sk, "k", 1, buf, 3), 0);
        }
    }
    eddy__kstate_set_time(ks, T0);
    /* The crowded table: inline values, and some in the arena. */
    for (int i = 0; i < NHOT; i++) {
        hot_key(&t, i);
        size_t vlen = i % 10 == 0 ? 200 : 8;
        fill(buf, vlen, (uint64_t)i + 7);
        put(ks, S_VAL, &t, buf, vlen);
    }
}

/* Changes every state in every way after the snapshot: overwrites (in
 * place, growing out of the slot, shrinking), removals that compact the
 * crowded table, new keys that grow tables, lists, maps, accumulators, and
 * TTL expiry by reads, writes and the incremental cleanup. */
static void mutate(eddy__kstate_t *ks, bool again)
{
    const eddy__kstate_ops_t *o = ks->ks_ops;
    unsigned char buf[300];
    tkey_t t;
    for (int i = 0; i < NKEYS; i++) {
        size_t vlen = (size_t)(i % 4 == 0 ? 8 : i % 4 == 1 ? 60 : 2);
        tkey_fmt(&t, "v", i, klen_of(i), i % 2 ? i % 4 : -1);
        if (i % 7 == 0) {
            assert_int_equal(o->ko_remove(ks, S_VAL, &t.tk_sk), 0);
        } else {
            fill(buf, vlen, (uint64_t)i + 999);
            put(ks, S_VAL, &t, buf, vlen);
        }
        tkey_fmt(&t, "a", i, klen_of(i), i % 3 ? 1 : -1);
        agg_add(ks, &t, 1000);
        tkey_fmt(&t, "l", i, klen_of(i), i % 2 ? 2 : -1);
        if (i % 5 == 0) {
            assert_int_equal(o->ko_remove(ks, S_LIST, &t.tk_sk), 0);
        } else {
            assert_int_equal(o->ko_list_add(ks, S_LIST, &t.tk_sk, "new", 3), 0);
        }
        tkey_fmt(&t, "m", i, klen_of(i), i % 2 ? 3 : -1);
        assert_int_equal(o->ko_map_put(ks, S_MAP, &t.tk_sk, "u0", 2, "zz", 2),
                         0);
        assert_int_equal(o->ko_map_remove(ks, S_MAP, &t.tk_sk, "u1", 2), 0);
        if (i % 6 == 0) {
            /* The last entry takes the map along. */
            assert_int_equal(o->ko_map_remove(ks, S_MAP, &t.tk_sk, "u0", 2), 0);
            assert_int_equal(o->ko_map_remove(ks, S_MAP, &t.tk_sk, "u2", 2), 0);
            assert_int_equal(o->ko_map_remove(ks, S_MAP, &t.tk_sk, "u3", 2), 0);
        }
        tkey_fmt(&t, "new", i, klen_of(i + 1), i % 3 ? 4 : -1);
        fill(buf, 8, (uint64_t)i);
        put(ks, S_VAL, &t, buf, 8);
        agg_add(ks, &t, 1);
    }
    /* Compaction of the crowded table: most of it goes. (The first write
     * clones it if a snapshot holds it, so measure after that.) */
    tkey_t h0;
    hot_key(&h0, 0);
    fill(buf, 200, 7);
    put(ks, S_VAL, &h0, buf, 200);
    size_t before = o->ko_size(ks);
    for (int i = 0; i < NHOT; i++) {
        tkey_t h;
        hot_key(&h, i);
        if (i % 8 != 0) {
            assert_int_equal(o->ko_remove(ks, S_VAL, &h.tk_sk), 0);
        } else if (i % 16 == 0) {
            fill(buf, 8, (uint64_t)i + 5);
            put(ks, S_VAL, &h, buf, 8); /* 200 bytes -> 8: back inline */
        }
    }
    if (!again) {
        assert_true(o->ko_size(ks) < before);
    }
    /* TTL: at T0 + 70 the first two thirds are expired. Reads remove some,
     * writes clean up others, some are rewritten. */
    eddy__kstate_set_time(ks, T0 + 70);
    for (int i = 0; i < NKEYS; i++) {
        tkey_fmt(&t, "t", i, klen_of(i), i % 2 ? 5 : -1);
        const void *v;
        size_t len;
        if (i % 4 == 0) {
            (void)o->ko_get(ks, S_TVAL, &t.tk_sk, &v, &len);
            eddy__siter_t it;
            (void)o->ko_list_iter(ks, S_TLIST, &t.tk_sk, &it);
            (void)o->ko_map_get(ks, S_TMAP, &t.tk_sk, "k", 1, &v, &len);
        } else if (i % 4 == 1) {
            put(ks, S_TVAL, &t, "fresh", 5);
            assert_int_equal(o->ko_list_add(ks, S_TLIST, &t.tk_sk, "f", 1), 0);
            assert_int_equal(
                o->ko_map_put(ks, S_TMAP, &t.tk_sk, "j", 1, "f", 1), 0);
        }
    }
}

/* The TTL groups restored with their stamps: at T0 + 20 the first third is
 * expired, at T0 + 60 the second too. */
static void check_ttl_stamps(eddy__kstate_t *ks)
{
    size_t third = NKEYS / 3;
    eddy__kstate_set_time(ks, T0);
    assert_int_equal(count_entries(ks, S_TVAL), 3 * third);
    eddy__kstate_set_time(ks, T0 + 20);
    assert_int_equal(count_entries(ks, S_TVAL), 2 * third);
    assert_int_equal(count_entries(ks, S_TLIST), 2 * third);
    assert_int_equal(count_entries(ks, S_TMAP), 2 * third);
    eddy__kstate_set_time(ks, T0 + 60);
    assert_int_equal(count_entries(ks, S_TVAL), third);
    eddy__kstate_set_time(ks, T0);
}

/* Snapshot, mutate, write, restore: the restored state is the state at the
 * snapshot, exactly. */
static void test_snapshot_isolation(void **state)
{
    (void)state;
    eddy__kstate_t *ks = eddy__heap_kstate_new(specs, NST, 0, MAXP - 1);
    assert_non_null(ks);
    const eddy__kstate_ops_t *o = ks->ks_ops;
    populate(ks);
    lines_t want = {0};
    dump(ks, &want);
    assert_true(want.l_n > 5 * NKEYS);

    eddy__ksnap_t *snap = NULL;
    assert_int_equal(o->ko_snapshot(ks, 1, false, &snap), 0);

    /* A value read from a frozen table may be passed to the write that
     * clones it (into the same table, another key and the same key). */
    tkey_t a, b;
    hot_key(&a, 10); /* 200 bytes, in the arena */
    hot_key(&b, 1);  /* 8 bytes, inline */
    const void *pa, *pb;
    size_t la, lb;
    assert_int_equal(o->ko_get(ks, S_VAL, &a.tk_sk, &pa, &la), 1);
    assert_int_equal(o->ko_get(ks, S_VAL, &b.tk_sk, &pb, &lb), 1);
    tkey_t c;
    hot_key(&c, NHOT + 1);      /* new */
    put(ks, S_VAL, &c, pb, lb); /* clones the table, then inserts */
    unsigned char vb[8];
    fill(vb, 8, 1 + 7);
    check_val(ks, S_VAL, &c, vb, 8);
    tkey_t d;
    tkey_fmt(&d, "v", 1, klen_of(1), 1);
    const void *pd;
    size_t ld;
    assert_int_equal(o->ko_get(ks, S_VAL, &d.tk_sk, &pd, &ld), 1);
    put(ks, S_VAL, &d, pd, ld); /* the same key: clones, copies onto itself */
    assert_int_equal(o->ko_remove(ks, S_VAL, &c.tk_sk), 0);

    mutate(ks, false);
    lines_t after = {0};
    eddy__kstate_set_time(ks, T0);
    dump(ks, &after);
    assert_true(after.l_n != want.l_n); /* the live state did change */
    lines_free(&after);

    job_t j;
    job_init(&j);
    json_t *h = snap_write(snap, &j);
    eddy__kstate_t *r = restore(h, &j);
    eddy__kstate_set_time(r, T0);
    lines_t got = {0};
    dump(r, &got);
    assert_same_dump(&want, &got);
    check_ttl_stamps(r);

    /* The live backend is still whole (ASan checks what it frees). */
    tkey_t t;
    tkey_fmt(&t, "a", 4, klen_of(4), 1);
    assert_int_equal(agg_get(ks, &t), 4 + 1000);

    lines_free(&got);
    lines_free(&want);
    json_decref(h);
    eddy__kstate_destroy(r);
    eddy__kstate_destroy(ks);
    tu_rmtree(j.j_dir);
}

typedef struct writer_arg {
    eddy__ksnap_t *wa_snap;
    const job_t *wa_job;
    json_t *wa_handle;
    int wa_rc;
} writer_arg_t;

static void *writer_main(void *arg)
{
    writer_arg_t *wa = arg;
    eddy__snap_target_t t = {wa->wa_job->j_chk, wa->wa_job->j_shared, "op1-0",
                             1, false};
    eddy_error_t err = {0};
    wa->wa_rc = wa->wa_snap->ks_write(wa->wa_snap, &t, &wa->wa_handle, &err);
    wa->wa_snap->ks_release(wa->wa_snap);
    return NULL;
}

/* The same with the snapshot written by another thread while the task
 * thread changes the state, as checkpoints do. */
static void test_snapshot_concurrent(void **state)
{
    (void)state;
    eddy__kstate_t *ks = eddy__heap_kstate_new(specs, NST, 0, MAXP - 1);
    populate(ks);
    lines_t want = {0};
    dump(ks, &want);
    eddy__ksnap_t *snap = NULL;
    assert_int_equal(ks->ks_ops->ko_snapshot(ks, 1, false, &snap), 0);
    job_t j;
    job_init(&j);
    writer_arg_t wa = {snap, &j, NULL, -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, &wa), 0);
    mutate(ks, false);
    tu_join(th, 30000, "snapshot writer");
    assert_int_equal(wa.wa_rc, 0);
    mutate(ks, true); /* the originals are gone now: in place again */
    eddy__kstate_t *r = restore(wa.wa_handle, &j);
    lines_t got = {0};
    dump(r, &got);
    assert_same_dump(&want, &got);
    lines_free(&got);
    lines_free(&want);
    json_decref(wa.wa_handle);
    eddy__kstate_destroy(r);
    eddy__kstate_destroy(ks);
    tu_rmtree(j.j_dir);
}

/* A snapshot outlives its backend (the operator closed before the snapshot
 * thread wrote it), and two snapshots share tables. */
/* Lanes are a layout: a backend with them holds exactly what one without
 * holds after the same calls, and their snapshots restore into each other.
 * (populate interleaves states with different lane functions on the same
 * namespace, so a lane cached for one state and taken for another would
 * put entries where reads do not look.) */
static void test_lanes_change_nothing(void **state)
{
    (void)state;
    eddy__kstate_t *lk = eddy__heap_kstate_new(specs, NST, 0, MAXP - 1);
    eddy__kstate_t *pk = eddy__heap_kstate_new(plain_specs, NST, 0, MAXP - 1);
    assert_non_null(lk);
    assert_non_null(pk);
    lines_t want = {0}, got = {0};
    populate(lk);
    populate(pk);
    /* Two states with one lane function and different numbers of lanes
     * (agg: 4, tmap: 64) on one namespace, whose first byte (63) differs
     * modulo each: what the cache keeps for one must not be the other's
     * lane. agg sees the namespace first (after another one), tmap's write
     * then finds it cached; tmap's read comes after another namespace, so
     * it computes the lane afresh. */
    for (int i = 0; i < 50; i++) {
        tkey_t t, other;
        tkey_fmt(&t, "c", i, 0, 9);
        tkey_fmt(&other, "c", i, 0, 10);
        for (int b = 0; b < 2; b++) {
            eddy__kstate_t *ks = b ? pk : lk;
            agg_add(ks, &other, 1);
            agg_add(ks, &t, 1);
            assert_int_equal(
                ks->ks_ops->ko_map_put(ks, S_TMAP, &t.tk_sk, "k", 1, "v", 1),
                0);
            agg_add(ks, &other, 1);
            const void *v;
            size_t vlen;
            assert_int_equal(
                ks->ks_ops->ko_map_get(ks, S_TMAP, &t.tk_sk, "k", 1, &v, &vlen),
                1);
        }
    }
    /* Prefetch hints change nothing. */
    for (int i = 0; i < 100; i++) {
        tkey_t t;
        tkey_fmt(&t, "v", i, klen_of(i), i % 4);
        lk->ks_ops->ko_prefetch(lk, S_VAL, &t.tk_sk);
        lk->ks_ops->ko_prefetch(lk, S_MAP, &t.tk_sk);
        tkey_fmt(&t, "absent", i, 0, i % 5);
        lk->ks_ops->ko_prefetch(lk, S_AGG, &t.tk_sk);
    }
    dump(pk, &want);
    dump(lk, &got);
    assert_true(want.l_n > 5 * NKEYS);
    assert_same_dump(&want, &got);
    lines_free(&want);
    lines_free(&got);

    /* mutate leaves the time at T0 + 70: entries expired then may or may
     * not be gone from the tables (the incremental cleanup walks each
     * table's slots), so compare at that time, not earlier. */
    mutate(lk, false);
    mutate(pk, false);
    dump(pk, &want);
    dump(lk, &got);
    assert_same_dump(&want, &got);
    lines_free(&got);

    /* Laned snapshot into a plain backend, plain into laned. */
    eddy__ksnap_t *ls = NULL, *ps = NULL;
    assert_int_equal(lk->ks_ops->ko_snapshot(lk, 1, false, &ls), 0);
    assert_int_equal(pk->ks_ops->ko_snapshot(pk, 1, false, &ps), 0);
    job_t jl, jp;
    job_init(&jl);
    job_init(&jp);
    json_t *hl = snap_write(ls, &jl);
    json_t *hp = snap_write(ps, &jp);
    eddy__kstate_t *rp = restore_specs(hl, &jl, plain_specs);
    eddy__kstate_t *rl = restore_specs(hp, &jp, specs);
    eddy__kstate_set_time(rp, T0 + 70);
    eddy__kstate_set_time(rl, T0 + 70);
    dump(rp, &got);
    assert_same_dump(&want, &got);
    lines_free(&got);
    dump(rl, &got);
    assert_same_dump(&want, &got);
    lines_free(&got);

    /* And they go on alike. */
    mutate(rl, true);
    mutate(rp, true);
    eddy__kstate_set_time(rl, T0 + 70);
    eddy__kstate_set_time(rp, T0 + 70);
    lines_free(&want);
    dump(rp, &want);
    dump(rl, &got);
    assert_same_dump(&want, &got);

    lines_free(&want);
    lines_free(&got);
    json_decref(hl);
    json_decref(hp);
    tu_rmtree(jl.j_dir);
    tu_rmtree(jp.j_dir);
    eddy__kstate_destroy(rl);
    eddy__kstate_destroy(rp);
    eddy__kstate_destroy(lk);
    eddy__kstate_destroy(pk);

    /* A subtask owning every one of 32768 key groups: lanes would cost
     * 84 handles of 32 bytes per key group (88 MB); they are capped, so
     * the backend stays near the size of one without lanes, and works. */
    eddy__kstate_t *big = eddy__heap_kstate_new(specs, NST, 0, 32767);
    eddy__kstate_t *bigp = eddy__heap_kstate_new(plain_specs, NST, 0, 32767);
    size_t bsz = big->ks_ops->ko_size(big);
    size_t psz = bigp->ks_ops->ko_size(bigp);
    assert_true(bsz <= 2 * psz);
    tkey_t t;
    tkey_fmt(&t, "b", 1, 0, 9);
    t.tk_sk.sk_kg = 30000;
    agg_add(big, &t, 5);
    assert_int_equal(agg_get(big, &t), 5);
    eddy__kstate_destroy(big);
    eddy__kstate_destroy(bigp);
}

static void test_snapshot_outlives_backend(void **state)
{
    (void)state;
    eddy__kstate_t *ks = eddy__heap_kstate_new(specs, NST, 0, MAXP - 1);
    populate(ks);
    lines_t want = {0};
    dump(ks, &want);
    eddy__ksnap_t *s1 = NULL, *s2 = NULL;
    assert_int_equal(ks->ks_ops->ko_snapshot(ks, 1, false, &s1), 0);
    assert_int_equal(ks->ks_ops->ko_snapshot(ks, 2, false, &s2), 0);
    mutate(ks, false);
    eddy__kstate_destroy(ks);
    job_t j;
    job_init(&j);
    s2->ks_release(s2);
    json_t *h = snap_write(s1, &j);
    eddy__kstate_t *r = restore(h, &j);
    lines_t got = {0};
    dump(r, &got);
    assert_same_dump(&want, &got);
    lines_free(&got);
    lines_free(&want);
    json_decref(h);
    eddy__kstate_destroy(r);
    tu_rmtree(j.j_dir);
}

/* Once a snapshot is released, writes go in place again (no clone: the
 * value does not move); while one is held, the first write clones. */
static void test_snapshot_release_resumes_in_place(void **state)
{
    (void)state;
    eddy__kstate_t *ks = eddy__heap_kstate_new(specs, NST, 0, MAXP - 1);
    const eddy__kstate_ops_t *o = ks->ks_ops;
    tkey_t t;
    tkey_fmt(&t, "k", 1, 8, -1);
    agg_add(ks, &t, 5);
    const void *p0, *p1;
    size_t len;
    assert_int_equal(o->ko_get(ks, S_AGG, &t.tk_sk, &p0, &len), 1);
    eddy__ksnap_t *snap = NULL;
    assert_int_equal(o->ko_snapshot(ks, 1, false, &snap), 0);
    snap->ks_release(snap);
    agg_add(ks, &t, 1);
    assert_int_equal(o->ko_get(ks, S_AGG, &t.tk_sk, &p1, &len), 1);
    assert_ptr_equal(p1, p0);
    assert_int_equal(agg_get(ks, &t), 6);

    assert_int_equal(o->ko_snapshot(ks, 2, false, &snap), 0);
    agg_add(ks, &t, 1); /* clones */
    assert_int_equal(o->ko_get(ks, S_AGG, &t.tk_sk, &p1, &len), 1);
    assert_ptr_not_equal(p1, p0);
    assert_int_equal(agg_get(ks, &t), 7);
    job_t j;
    job_init(&j);
    json_t *h = snap_write(snap, &j);
    eddy__kstate_t *r = restore(h, &j);
    assert_int_equal(agg_get(r, &t), 6);
    agg_add(ks, &t, 1); /* the clone is private: in place */
    const void *p2;
    assert_int_equal(o->ko_get(ks, S_AGG, &t.tk_sk, &p2, &len), 1);
    assert_ptr_equal(p2, p1);
    json_decref(h);
    eddy__kstate_destroy(r);
    eddy__kstate_destroy(ks);
    tu_rmtree(j.j_dir);
}

/* ---- fast paths ---- */

/* Every key and namespace length the probes compare differently, each with
 * its own value, through put, get_for_update and get. */
static void test_key_shapes(void **state)
{
    (void)state;
    static const size_t klens[] = {0, 1, 2,  3,  4,  5,  7,
                                   8, 9, 15, 16, 17, 31, 40};
    static const size_t nslens[] = {0, 1, 3, 8, 12, 16, 17, 32, 33, 40};
    eddy__kstate_t *ks = eddy__heap_kstate_new(specs, NST, 0, MAXP - 1);
    unsigned char kb[48], nb[48];
    memset(kb, 'k', sizeof(kb));
    memset(nb, 'n', sizeof(nb));
    for (int round = 0; round < 3; round++) {
        for (size_t a = 0; a < EDDY_ARRAY_SIZE(klens); a++) {
            for (size_t b = 0; b < EDDY_ARRAY_SIZE(nslens); b++) {
                tkey_t t;
                tkey_set(&t, kb, klens[a], nb, nslens[b]);
                int64_t want = (int64_t)(a * 100 + b);
                if (round == 0) {
                    put(ks, S_VAL, &t, &want, sizeof(want));
                    agg_add(ks, &t, want);
                } else {
                    int64_t x = want + round;
                    put(ks, S_VAL, &t, &x, sizeof(x));
                    agg_add(ks, &t, 1);
                }
            }
        }
    }
    for (size_t a = 0; a < EDDY_ARRAY_SIZE(klens); a++) {
        for (size_t b = 0; b < EDDY_ARRAY_SIZE(nslens); b++) {
            tkey_t t;
            tkey_set(&t, kb, klens[a], nb, nslens[b]);
            int64_t want = (int64_t)(a * 100 + b) + 2;
            check_val(ks, S_VAL, &t, &want, sizeof(want));
            assert_int_equal(agg_get(ks, &t), want);
            /* One byte off, in the key or in the namespace: absent. */
            if (klens[a] > 0) {
                kb[klens[a] - 1] = 'K';
                tkey_set(&t, kb, klens[a], nb, nslens[b]);
                check_val(ks, S_VAL, &t, NULL, 0);
                kb[klens[a] - 1] = 'k';
            }
            if (nslens[b] > 0) {
                nb[nslens[b] / 2] = 'N';
                tkey_set(&t, kb, klens[a], nb, nslens[b]);
                check_val(ks, S_VAL, &t, NULL, 0);
                nb[nslens[b] / 2] = 'n';
            }
        }
    }
    eddy__kstate_destroy(ks);
}

/* Keys whose 64-bit hashes collide (the caller supplies sk_hash): the fast
 * paths find another key first and must fall back, never mix them up.
 * "ab" + "c" and "a" + "bc" are different keys with the same bytes. */
static void test_hash_collisions(void **state)
{
    (void)state;
    eddy__kstate_t *ks = eddy__heap_kstate_new(specs, NST, 0, MAXP - 1);
    const eddy__kstate_ops_t *o = ks->ks_ops;
    enum { N = 40 };
    tkey_t t[N];
    for (int i = 0; i < N; i++) {
        if (i == 0) {
            tkey_set(&t[i], "ab", 2, "c", 1);
        } else if (i == 1) {
            tkey_set(&t[i], "a", 1, "bc", 2);
        } else {
            tkey_fmt(&t[i], "c", i, i % 2 ? 8 : 0, i % 3 ? 0 : -1);
        }
        t[i].tk_sk.sk_hash = 42;
        t[i].tk_sk.sk_kg = 3;
    }
    for (int round = 0; round < 3; round++) {
        for (int i = round; i < N; i++) {
            int64_t v = i * 10 + round;
            put(ks, S_VAL, &t[i], &v, sizeof(v));
            agg_add(ks, &t[i], 1);
        }
    }
    for (int i = 0; i < N; i++) {
        int64_t v = i * 10 + EDDY_MIN(i, 2);
        check_val(ks, S_VAL, &t[i], &v, sizeof(v));
        assert_int_equal(agg_get(ks, &t[i]), EDDY_MIN(i, 2) + 1);
    }
    for (int i = 0; i < N; i += 2) {
        assert_int_equal(o->ko_remove(ks, S_VAL, &t[i].tk_sk), 0);
    }
    for (int i = 0; i < N; i++) {
        int64_t v = i * 10 + EDDY_MIN(i, 2);
        check_val(ks, S_VAL, &t[i], i % 2 ? &v : NULL, sizeof(v));
    }
    /* A size mismatch on a colliding key: the error, nothing written. */
    void *p;
    bool created;
    assert_int_equal(
        o->ko_get_for_update(ks, S_AGG, &t[5].tk_sk, 4, &p, &created),
        EDDY_ERR_FORMAT);
    assert_int_equal(agg_get(ks, &t[5]), 3);
    eddy__kstate_destroy(ks);
}

/* The namespace hash cache: alternating namespaces, the same bytes from
 * different buffers, a buffer rewritten in place, namespaces too long to
 * cache, and one namespace a prefix of another. */
static void test_namespace_cache(void **state)
{
    (void)state;
    eddy__kstate_t *ks = eddy__heap_kstate_new(specs, NST, 0, MAXP - 1);
    unsigned char a[40], b[40], buf[40];
    memset(a, 'a', sizeof(a));
    memcpy(b, a, sizeof(b));
    b[15] = 'b';
    const size_t lens[] = {16, 15, 40, 33};
    for (int r = 0; r < 50; r++) {
        for (size_t l = 0; l < EDDY_ARRAY_SIZE(lens); l++) {
            tkey_t t;
            const unsigned char *ns = (r + (int)l) % 2 ? a : b;
            memcpy(buf, ns, lens[l]);
            tkey_set(&t, "key", 3, buf, lens[l]);
            agg_add(ks, &t, (int64_t)l + 1);
            /* Rewrite the caller's buffer in place: the same pointer, other
             * bytes, must not hit the cache. */
            buf[0] ^= 1;
            t.tk_sk.sk_ns = buf;
            agg_add(ks, &t, 1000);
        }
    }
    for (size_t l = 0; l < EDDY_ARRAY_SIZE(lens); l++) {
        tkey_t ta, tb, tx;
        tkey_set(&ta, "key", 3, a, lens[l]);
        tkey_set(&tb, "key", 3, b, lens[l]);
        memcpy(buf, a, sizeof(buf));
        buf[0] ^= 1;
        tkey_set(&tx, "key", 3, buf, lens[l]);
        if (lens[l] < 16) {
            /* b differs from a only at byte 15. */
            assert_int_equal(agg_get(ks, &ta), 50 * (int64_t)(l + 1));
        } else {
            assert_int_equal(agg_get(ks, &ta), 25 * (int64_t)(l + 1));
            assert_int_equal(agg_get(ks, &tb), 25 * (int64_t)(l + 1));
        }
        /* a and b with byte 0 flipped (b's flip differs at byte 15). */
        int64_t x = agg_get(ks, &tx);
        assert_int_equal(x, (lens[l] < 16 ? 50 : 25) * 1000);
    }
    eddy__kstate_destroy(ks);
}

typedef struct grab {
    const void *g_key, *g_ns;
    size_t g_klen, g_nslen;
    bool g_got;
} grab_t;

/* Keeps the pointers of the first entry for_each shows. */
static int grab_fn(void *arg, const void *key, size_t klen, const void *ns,
                   size_t nslen)
{
    grab_t *g = arg;
    if (!g->g_got) {
        *g = (grab_t){key, ns, klen, nslen, true};
    }
    return 0;
}

/* Pointers into inline entries passed to the writes that move them: a value
 * from ko_get and a key from ko_for_each, into the same table, on the
 * insertion that grows it. (ASan reports a use after free otherwise.) */
static void test_inline_aliasing(void **state)
{
    (void)state;
    eddy__kstate_t *ks = eddy__heap_kstate_new(specs, NST, 0, MAXP - 1);
    const eddy__kstate_ops_t *o = ks->ks_ops;
    for (int grow = 0; grow < 6; grow++) {
        /* Fill the table of key group 9 up to a resize (16 slots, then
         * 32, ...: it grows when an insertion would make it over half
         * full). */
        size_t target = ((size_t)16 << grow) / 2;
        for (size_t i = count_entries(ks, S_VAL); i < target; i++) {
            tkey_t t;
            tkey_fmt(&t, "f", (int)i, 8, -1);
            t.tk_sk.sk_kg = 9;
            int64_t v = (int64_t)i;
            put(ks, S_VAL, &t, &v, sizeof(v));
        }
        assert_int_equal(count_entries(ks, S_VAL), target);
        tkey_t src;
        tkey_fmt(&src, "f", 0, 8, -1);
        src.tk_sk.sk_kg = 9;
        const void *v;
        size_t len;
        assert_int_equal(o->ko_get(ks, S_VAL, &src.tk_sk, &v, &len), 1);
        tkey_t want_key; /* a copy, to look the new entry up with */
        if (grow % 2 == 0) {
            tkey_fmt(&want_key, "g", grow, 8, -1);
            want_key.tk_sk.sk_kg = 9;
            put(ks, S_VAL, &want_key, v, len); /* inserts: the table grows */
        } else {
            /* The key bytes of an entry of this very table, under a new
             * namespace. */
            grab_t g = {0};
            assert_int_equal(o->ko_for_each(ks, S_VAL, 9, grab_fn, &g), 0);
            assert_true(g.g_got);
            char ns[16];
            int nl = snprintf(ns, sizeof(ns), "ns%d", grow);
            tkey_set(&want_key, g.g_key, g.g_klen, ns, (size_t)nl);
            want_key.tk_sk.sk_kg = 9;
            eddy__skey_t k = want_key.tk_sk;
            k.sk_key = g.g_key; /* not the copy */
            assert_int_equal(o->ko_put(ks, S_VAL, &k, v, len), 0);
        }
        int64_t zero = 0;
        check_val(ks, S_VAL, &want_key, &zero, sizeof(zero));
        check_val(ks, S_VAL, &src, &zero, sizeof(zero));
    }
    eddy__kstate_destroy(ks);
}

/* Values growing out of their slot into the arena and back, compaction of
 * an inline table, and the table freed when it empties. */
static void test_inline_grow_and_compact(void **state)
{
    (void)state;
    eddy__kstate_t *ks = eddy__heap_kstate_new(specs, NST, 0, MAXP - 1);
    const eddy__kstate_ops_t *o = ks->ks_ops;
    size_t size0 = o->ko_size(ks);
    enum { N = 6000 };
    unsigned char buf[256];
    for (int r = 0; r < 4; r++) {
        for (int i = 0; i < N; i++) {
            tkey_t t;
            tkey_fmt(&t, "g", i, 8, i % 2 ? 1 : -1);
            t.tk_sk.sk_kg = 11;
            size_t vlen = (size_t)((i + r) % 4 == 0 ? 200 : 4 + (i + r) % 16);
            fill(buf, vlen, (uint64_t)(i * 4 + r));
            put(ks, S_VAL, &t, buf, vlen);
        }
        for (int i = 0; i < N; i++) {
            tkey_t t;
            tkey_fmt(&t, "g", i, 8, i % 2 ? 1 : -1);
            t.tk_sk.sk_kg = 11;
            size_t vlen = (size_t)((i + r) % 4 == 0 ? 200 : 4 + (i + r) % 16);
            fill(buf, vlen, (uint64_t)(i * 4 + r));
            check_val(ks, S_VAL, &t, buf, vlen);
        }
    }
    /* Remove all but every 50th: dead bytes pass 64 KiB and half of the
     * table's bytes, so it is rebuilt (smaller) on the way. */
    size_t full = o->ko_size(ks);
    for (int i = 0; i < N; i++) {
        if (i % 50 != 0) {
            tkey_t t;
            tkey_fmt(&t, "g", i, 8, i % 2 ? 1 : -1);
            t.tk_sk.sk_kg = 11;
            assert_int_equal(o->ko_remove(ks, S_VAL, &t.tk_sk), 0);
        }
    }
    assert_true(o->ko_size(ks) < full / 4);
    for (int i = 0; i < N; i += 50) {
        tkey_t t;
        tkey_fmt(&t, "g", i, 8, i % 2 ? 1 : -1);
        t.tk_sk.sk_kg = 11;
        size_t vlen = (size_t)((i + 3) % 4 == 0 ? 200 : 4 + (i + 3) % 16);
        fill(buf, vlen, (uint64_t)(i * 4 + 3));
        check_val(ks, S_VAL, &t, buf, vlen);
        agg_add(ks, &t, 1); /* the accumulator table works after it too */
        assert_int_equal(o->ko_remove(ks, S_VAL, &t.tk_sk), 0);
        assert_int_equal(o->ko_remove(ks, S_AGG, &t.tk_sk), 0);
    }
    /* Every table emptied and freed: back to the starting size, and the
     * key group's fast paths see no table. */
    assert_int_equal(o->ko_size(ks), size0);
    tkey_t t;
    tkey_fmt(&t, "g", 0, 8, -1);
    t.tk_sk.sk_kg = 11;
    check_val(ks, S_VAL, &t, NULL, 0);
    agg_add(ks, &t, 3);
    assert_int_equal(agg_get(ks, &t), 3);
    eddy__kstate_destroy(ks);
}

/* get_for_update's errors, from the fast path and the general one. */
static void test_get_for_update_errors(void **state)
{
    (void)state;
    eddy__kstate_t *ks = eddy__heap_kstate_new(specs, NST, 0, MAXP - 1);
    const eddy__kstate_ops_t *o = ks->ks_ops;
    tkey_t t;
    tkey_fmt(&t, "e", 1, 8, 2);
    void *p;
    bool created = false;
    assert_int_equal(o->ko_get_for_update(ks, S_AGG, &t.tk_sk, 8, &p, &created),
                     0);
    assert_true(created);
    assert_int_equal(o->ko_get_for_update(ks, S_AGG, &t.tk_sk, 8, &p, &created),
                     0);
    assert_false(created);
    assert_int_equal(
        o->ko_get_for_update(ks, S_AGG, &t.tk_sk, 16, &p, &created),
        EDDY_ERR_FORMAT);
    assert_int_equal(o->ko_get_for_update(ks, S_AGG, &t.tk_sk,
                                          (size_t)UINT32_MAX + 1, &p, &created),
                     EDDY_ERR_INVALID);
    assert_int_equal(
        o->ko_get_for_update(ks, S_LIST, &t.tk_sk, 8, &p, &created),
        EDDY_ERR_INVALID);
    assert_int_equal(o->ko_put(ks, S_MAP, &t.tk_sk, "x", 1), EDDY_ERR_INVALID);
    const void *v;
    size_t len;
    assert_int_equal(o->ko_get(ks, S_LIST, &t.tk_sk, &v, &len), 0);
    assert_int_equal(agg_get(ks, &t), 0);
    eddy__kstate_destroy(ks);
}

/* ---- inline kv tables ---- */

static uint64_t h64(const void *p, size_t n)
{
    return eddy__hash64(p, n);
}

/* Every entry of an inline table is where kv_data says: in its own slot or
 * in the arena, never in another slot. */
static void check_placement(const eddy__kv_table_t *kt)
{
    for (size_t i = 0; kt->kt_slots != NULL && i <= kt->kt_mask; i++) {
        const eddy__kv_entry_t *e = &kt->kt_slots[i];
        if (e->kv_data == NULL) {
            continue;
        }
        uintptr_t d = (uintptr_t)e->kv_data, s = (uintptr_t)kt->kt_slots;
        if (d >= s && d < s + (kt->kt_mask + 1) * sizeof(*e)) {
            assert_ptr_equal(e->kv_data, e->kv_inline);
            assert_true((size_t)e->kv_klen + e->kv_vcap <= EDDY__KV_INLINE);
        }
    }
}

static void test_kv_inline(void **state)
{
    (void)state;
    assert_int_equal(sizeof(eddy__kv_entry_t), 64);
    eddy__kv_table_t kt;
    eddy__kv_init_sized(&kt, 8, 256);
    eddy__kv_set_inline(&kt);
    enum { N = 500 };
    char key[32];
    for (int i = 0; i < N; i++) {
        int kl = snprintf(key, sizeof(key), "key-%d", i);
        bool created;
        eddy__kv_entry_t *e = eddy__kv_upsert(&kt, h64(key, (size_t)kl), key,
                                              (size_t)kl, 8, &created);
        assert_non_null(e);
        assert_true(created);
        assert_ptr_equal(e->kv_data, e->kv_inline); /* fits */
        assert_int_equal(e->kv_vcap, EDDY__KV_INLINE - (uint32_t)kl);
        int64_t v = i;
        assert_int_equal(eddy__kv_set_value(&kt, e, &v, sizeof(v)), 0);
        check_placement(&kt);
    }
    assert_int_equal(kt.kt_arena.ar_bytes, 0);
    assert_int_equal(eddy__kv_bytes_used(&kt), N * EDDY__KV_INLINE);
    /* Grow every third value out of its slot: into the arena, the inline
     * bytes counted dead. */
    unsigned char big[100];
    for (int i = 0; i < N; i += 3) {
        int kl = snprintf(key, sizeof(key), "key-%d", i);
        eddy__kv_entry_t *e =
            eddy__kv_find(&kt, h64(key, (size_t)kl), key, (size_t)kl);
        assert_non_null(e);
        fill(big, sizeof(big), (uint64_t)i);
        assert_int_equal(eddy__kv_set_value(&kt, e, big, sizeof(big)), 0);
        assert_ptr_not_equal(e->kv_data, e->kv_inline);
        TU_ASSERT_BYTES(e->kv_data, e->kv_klen, key, (size_t)kl);
    }
    assert_int_equal(kt.kt_dead, ((N + 2) / 3) * EDDY__KV_INLINE);
    /* Remove two in five: the backward shift moves inline entries. */
    for (int i = 0; i < N; i++) {
        if (i % 5 < 2) {
            int kl = snprintf(key, sizeof(key), "key-%d", i);
            assert_int_equal(
                eddy__kv_remove(&kt, h64(key, (size_t)kl), key, (size_t)kl), 1);
            check_placement(&kt);
        }
    }
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            int kl = snprintf(key, sizeof(key), "key-%d", i);
            eddy__kv_entry_t *e =
                eddy__kv_find(&kt, h64(key, (size_t)kl), key, (size_t)kl);
            if (i % 5 < 2) {
                assert_null(e);
                continue;
            }
            assert_non_null(e);
            TU_ASSERT_BYTES(e->kv_data, e->kv_klen, key, (size_t)kl);
            if (i % 3 == 0) {
                fill(big, sizeof(big), (uint64_t)i);
                TU_ASSERT_BYTES(eddy__kv_value(e), e->kv_vlen, big,
                                sizeof(big));
            } else {
                int64_t v = i;
                TU_ASSERT_BYTES(eddy__kv_value(e), e->kv_vlen, &v, sizeof(v));
            }
        }
        if (round == 0) {
            /* Rewrite the big values (in place), then rebuild: they stay
             * in the arena, the others in their slots. */
            for (int i = 0; i < N; i += 3) {
                int kl = snprintf(key, sizeof(key), "key-%d", i);
                eddy__kv_entry_t *e =
                    eddy__kv_find(&kt, h64(key, (size_t)kl), key, (size_t)kl);
                if (e != NULL) {
                    fill(big, sizeof(big), (uint64_t)i);
                    assert_int_equal(
                        eddy__kv_set_value(&kt, e, big, sizeof(big)), 0);
                }
            }
            assert_int_equal(eddy__kv_compact(&kt), 0);
            assert_int_equal(kt.kt_dead, 0);
            check_placement(&kt);
        }
    }
    /* Entries whose value fits again after compaction: back inline. */
    for (int i = 0; i < N; i += 3) {
        int kl = snprintf(key, sizeof(key), "key-%d", i);
        eddy__kv_entry_t *e =
            eddy__kv_find(&kt, h64(key, (size_t)kl), key, (size_t)kl);
        if (e != NULL) {
            int64_t v = i;
            assert_int_equal(eddy__kv_set_value(&kt, e, &v, sizeof(v)), 0);
        }
    }
    assert_int_equal(eddy__kv_compact(&kt), 0);
    assert_int_equal(kt.kt_arena.ar_bytes, 0);
    check_placement(&kt);
    /* eddy__kv_insert: no comparison, zeroed value space. */
    eddy__kv_entry_t *e = eddy__kv_insert(&kt, h64("new", 3), 3, 4);
    assert_non_null(e);
    memcpy(e->kv_data, "new", 3);
    assert_ptr_equal(e->kv_data, e->kv_inline);
    for (size_t i = 3; i < EDDY__KV_INLINE; i++) {
        assert_int_equal(e->kv_inline[i], 0);
    }
    e = eddy__kv_insert(&kt, h64("big", 3), 3, 100);
    assert_non_null(e);
    assert_ptr_not_equal(e->kv_data, e->kv_inline);
    assert_int_equal(e->kv_vcap, 100);
    eddy__kv_close(&kt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_isolation),
        cmocka_unit_test(test_snapshot_concurrent),
        cmocka_unit_test(test_snapshot_outlives_backend),
        cmocka_unit_test(test_lanes_change_nothing),
        cmocka_unit_test(test_snapshot_release_resumes_in_place),
        cmocka_unit_test(test_key_shapes),
        cmocka_unit_test(test_hash_collisions),
        cmocka_unit_test(test_namespace_cache),
        cmocka_unit_test(test_inline_aliasing),
        cmocka_unit_test(test_inline_grow_and_compact),
        cmocka_unit_test(test_get_for_update_errors),
        cmocka_unit_test(test_kv_inline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
