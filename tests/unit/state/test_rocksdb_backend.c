/*
 * eddy — unit tests for src/state/rocksdb_backend.c: the RocksDB keyed-state
 * backend runs the behavioural suite every backend passes (kstate_suite.h),
 * then its own cases: checkpoints (incremental and canonical) and restores
 * (same range, rescaling 2 -> 1 and 1 -> 2, across backends, changed TTL),
 * incremental uploads and the "only reference completed checkpoints" rule,
 * get_for_update across snapshots, TTL through a round trip, damaged or
 * missing files, and the working directory's lifecycle.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "state/kstate_suite.h"

#include <dirent.h>
#include <sys/stat.h>

#include "checkpoint/checkpoint.h"

static const suite_caps_t SUITE_CAPS = {
    .sc_name = "rocksdb",
    .sc_exact_memory = false,
    /* Every operation is a RocksDB call (natively ~1 us, several under
     * ASan, 10x that under TSan) instead of a hash probe: the check only
     * guards against pathological slowness here. */
    .sc_time_factor = 20,
};

static char g_base[512]; /* backends' working directories */
static char g_jobs[512]; /* checkpoint storage */
static int g_seq;

static void next_dir(char *out, size_t n)
{
    snprintf(out, n, "%s/b%d", g_base, g_seq++);
}

static eddy__kstate_t *suite_new(const eddy__state_spec_t *sp, int nstates,
                                 int kg_first, int kg_last)
{
    char dir[600];
    next_dir(dir, sizeof(dir));
    eddy_error_t err = {0};
    eddy__kstate_t *ks =
        eddy__rocksdb_kstate_new(sp, nstates, kg_first, kg_last, dir, &err);
    if (ks == NULL) {
        fail_msg("cannot create a RocksDB backend in %s: %s", dir, err.msg);
    }
    return ks;
}

static int group_setup(void **state)
{
    (void)state;
    tu_tmpdir(g_base, sizeof(g_base));
    tu_tmpdir(g_jobs, sizeof(g_jobs));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tu_rmtree(g_jobs);
    /* Every backend and snapshot removed its working files. */
    if (rmdir(g_base) != 0) {
        fprintf(stderr, "working files left in %s: %s\n", g_base,
                strerror(errno));
        tu_rmtree(g_base);
        return -1;
    }
    return 0;
}

/* ---- checkpoint helpers ---- */

typedef struct job {
    char j_dir[600];
    char j_shared[700];
} job_t;

static void job_init(job_t *j)
{
    snprintf(j->j_dir, sizeof(j->j_dir), "%s/job%d", g_jobs, g_seq++);
    snprintf(j->j_shared, sizeof(j->j_shared), "%s/shared", j->j_dir);
    assert_int_equal(mkdir(j->j_dir, 0755), 0);
    assert_int_equal(mkdir(j->j_shared, 0755), 0);
}

static void chk_dir(const job_t *j, int64_t id, char *out, size_t n)
{
    snprintf(out, n, "%s/chk-%lld", j->j_dir, (long long)id);
}

/* Takes checkpoint (or savepoint) `id` of ks into the job's storage under
 * `stem`; returns its handle. */
static json_t *take(eddy__kstate_t *ks, const job_t *j, int64_t id,
                    bool savepoint, const char *stem)
{
    eddy__ksnap_t *snap = NULL;
    assert_int_equal(ks->ks_ops->ko_snapshot(ks, id, savepoint, &snap), 0);
    assert_non_null(snap);
    char dir[700];
    chk_dir(j, id, dir, sizeof(dir));
    mkdir(dir, 0755); /* several subtasks share chk-n */
    eddy__snap_target_t t = {dir, j->j_shared, stem, id, savepoint};
    json_t *h = NULL;
    eddy_error_t err = {0};
    TU_ASSERT_OK(snap->ks_write(snap, &t, &h, &err), &err);
    snap->ks_release(snap);
    assert_non_null(h);
    return h;
}

static int restore_from(eddy__kstate_t *ks, json_t **hs, int n, const job_t *j,
                        int64_t id, bool allow_unknown, eddy_error_t *err)
{
    char dir[700];
    chk_dir(j, id, dir, sizeof(dir));
    eddy__restore_src_t src = {hs, n, dir};
    return ks->ks_ops->ko_restore(ks, &src, allow_unknown, err);
}

static bool json_has_string(const json_t *a, const char *s)
{
    size_t i;
    const json_t *e;
    json_array_foreach(a, i, e)
    {
        if (strcmp(json_string_value(e), s) == 0) {
            return true;
        }
    }
    return false;
}

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        n += de->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- a data set to round-trip ---- */

enum { R_VAL, R_LIST, R_MAP, R_AGG, R_TVAL, R_TLIST, R_TMAP, R_N };
#define RTTL 1000
#define NK 3000

static const eddy__state_spec_t rspecs[R_N] = {
    {"value", EDDY_STATE_VALUE, 0},     {"list", EDDY_STATE_LIST, 0},
    {"map", EDDY_STATE_MAP, 0},         {"agg", EDDY_STATE_AGGREGATING, 0},
    {"tvalue", EDDY_STATE_VALUE, RTTL}, {"tlist", EDDY_STATE_LIST, RTTL},
    {"tmap", EDDY_STATE_MAP, RTTL},
};

/* The same states without TTL, and with TTL everywhere. */
static const eddy__state_spec_t rspecs_nottl[R_N] = {
    {"value", EDDY_STATE_VALUE, 0},  {"list", EDDY_STATE_LIST, 0},
    {"map", EDDY_STATE_MAP, 0},      {"agg", EDDY_STATE_AGGREGATING, 0},
    {"tvalue", EDDY_STATE_VALUE, 0}, {"tlist", EDDY_STATE_LIST, 0},
    {"tmap", EDDY_STATE_MAP, 0},
};

static const eddy__state_spec_t rspecs_allttl[R_N] = {
    {"value", EDDY_STATE_VALUE, RTTL},  {"list", EDDY_STATE_LIST, RTTL},
    {"map", EDDY_STATE_MAP, RTTL},      {"agg", EDDY_STATE_AGGREGATING, RTTL},
    {"tvalue", EDDY_STATE_VALUE, RTTL}, {"tlist", EDDY_STATE_LIST, RTTL},
    {"tmap", EDDY_STATE_MAP, RTTL},
};

static eddy__skey_t rkey(int i, char *buf)
{
    int n = snprintf(buf, 32, "key-%d", i);
    return mk(buf, (size_t)n, i % 2 ? "ns" : NULL, i % 2 ? 2 : 0, MAXP);
}

static bool owns(const eddy__kstate_t *ks, const eddy__skey_t *k)
{
    return k->sk_kg >= ks->ks_kg_first && k->sk_kg <= ks->ks_kg_last;
}

/* Writes generation `gen` of keys [from, to) that ks owns. */
static void fill(eddy__kstate_t *ks, int from, int to, int gen)
{
    const eddy__kstate_ops_t *ops = ks->ks_ops;
    char kb[32], v[64], uk[16];
    for (int i = from; i < to; i++) {
        eddy__skey_t k = rkey(i, kb);
        if (!owns(ks, &k)) {
            continue;
        }
        for (int t = 0; t <= R_TVAL; t += R_TVAL) {
            snprintf(v, sizeof(v), "v%d-g%d", i, gen);
            put_s(ks, R_VAL + t, &k, v);
            assert_int_equal(ops->ko_remove(ks, R_LIST + t, &k), 0);
            assert_int_equal(ops->ko_remove(ks, R_MAP + t, &k), 0);
            for (int e = 0; e <= i % 4; e++) {
                snprintf(v, sizeof(v), "l%d-%d-g%d", i, e, gen);
                list_add_s(ks, R_LIST + t, &k, v);
            }
            for (int e = 0; e <= i % 3; e++) {
                snprintf(uk, sizeof(uk), "u%d", e);
                snprintf(v, sizeof(v), "m%d-%d-g%d", i, e, gen);
                map_put_s(ks, R_MAP + t, &k, uk, v);
            }
        }
        void *p;
        bool created;
        assert_int_equal(ops->ko_get_for_update(ks, R_AGG, &k, 8, &p, &created),
                         0);
        int64_t acc = (int64_t)i * 7 + gen;
        memcpy(p, &acc, 8);
    }
}

/* Checks keys [from, to) that ks owns against generation gen(i) (-1 =
 * absent); `ttl_alive` says whether the TTL states should still hold them.
 * Returns the number of keys checked present. */
static size_t check(eddy__kstate_t *ks, int from, int to, int (*gen)(int),
                    bool ttl_alive)
{
    char kb[32], v[64], uk[16], want[512];
    size_t n = 0;
    for (int i = from; i < to; i++) {
        eddy__skey_t k = rkey(i, kb);
        if (!owns(ks, &k)) {
            continue;
        }
        int g = gen(i);
        for (int t = 0; t <= R_TVAL; t += R_TVAL) {
            bool present = g >= 0 && (t == 0 || ttl_alive);
            if (!present) {
                check_val(ks, R_VAL + t, &k, NULL);
                check_list(ks, R_LIST + t, &k, NULL);
                assert_int_equal(map_count(ks, R_MAP + t, &k), 0);
                continue;
            }
            snprintf(v, sizeof(v), "v%d-g%d", i, g);
            check_val(ks, R_VAL + t, &k, v);
            size_t w = 0;
            for (int e = 0; e <= i % 4; e++) {
                w += (size_t)snprintf(want + w, sizeof(want) - w,
                                      "%sl%d-%d-g%d", e ? "," : "", i, e, g);
            }
            check_list(ks, R_LIST + t, &k, want);
            for (int e = 0; e <= i % 3; e++) {
                snprintf(uk, sizeof(uk), "u%d", e);
                snprintf(v, sizeof(v), "m%d-%d-g%d", i, e, g);
                check_map(ks, R_MAP + t, &k, uk, v);
            }
            assert_int_equal(map_count(ks, R_MAP + t, &k), (size_t)(i % 3 + 1));
        }
        const void *p;
        size_t len;
        if (g < 0) {
            check_val(ks, R_AGG, &k, NULL);
            continue;
        }
        assert_int_equal(ks->ks_ops->ko_get(ks, R_AGG, &k, &p, &len), 1);
        int64_t acc;
        assert_int_equal(len, 8);
        memcpy(&acc, p, 8);
        assert_int_equal(acc, (int64_t)i * 7 + g);
        n++;
    }
    return n;
}

static int gen0(int i)
{
    (void)i;
    return 0;
}

/* Every state holds exactly `n` (key, ns) entries. */
static void check_counts(eddy__kstate_t *ks, size_t n, bool ttl_alive)
{
    for (int sid = 0; sid < R_N; sid++) {
        bool t = sid >= R_TVAL;
        assert_int_equal(count_all(ks, sid), t && !ttl_alive ? 0 : n);
    }
}

static eddy__kstate_t *rnew(int first, int last)
{
    return suite_new(rspecs, R_N, first, last);
}

/* ---- round trips ---- */

static void test_rdb_checkpoint_round_trip(void **state)
{
    (void)state;
    job_t j;
    job_init(&j);
    eddy__kstate_t *a = rnew(0, MAXP - 1);
    eddy__kstate_set_time(a, 10000);
    fill(a, 0, NK, 0);
    json_t *h = take(a, &j, 1, false, "op1-0");
    /* The handle names everything it uses. */
    assert_string_equal(json_string_value(json_object_get(h, "type")),
                        "rocksdb");
    json_t *kg = json_object_get(h, "kg");
    assert_int_equal(json_integer_value(json_array_get(kg, 0)), 0);
    assert_int_equal(json_integer_value(json_array_get(kg, 1)), MAXP - 1);
    json_t *shared = json_object_get(h, "shared");
    json_t *priv = json_object_get(h, "private");
    assert_true(json_array_size(shared) >= R_N);
    assert_true(json_array_size(priv) >= 3); /* CURRENT, MANIFEST, OPTIONS */
    assert_int_equal(json_array_size(json_object_get(h, "states")), R_N);
    size_t i;
    json_t *e;
    json_array_foreach(shared, i, e)
    {
        char p[2048];
        const char *rel = json_string_value(e);
        assert_true(strncmp(rel, "shared/", 7) == 0);
        snprintf(p, sizeof(p), "%s/%s", j.j_dir, rel);
        assert_true(exists(p));
    }
    json_array_foreach(priv, i, e)
    {
        char p[2048];
        snprintf(p, sizeof(p), "%s/chk-1/%s", j.j_dir, json_string_value(e));
        assert_true(exists(p));
    }
    a->ks_ops->ko_notify_complete(a, 1);
    /* The live backend goes on: later writes are not in checkpoint 1. */
    fill(a, 0, 10, 5);

    /* Same key groups, same states: the fast path. */
    eddy__kstate_t *b = rnew(0, MAXP - 1);
    eddy__kstate_set_time(b, 10000);
    eddy_error_t err = {0};
    TU_ASSERT_OK(restore_from(b, &h, 1, &j, 1, false, &err), &err);
    assert_int_equal(check(b, 0, NK, gen0, true), NK);
    check_counts(b, NK, true);
    /* TTL stamps came along: expired one TTL after the original writes. */
    eddy__kstate_set_time(b, 10000 + RTTL + 1);
    assert_int_equal(check(b, 0, NK, gen0, false), NK);
    check_counts(b, NK, false);

    /* b checkpoints into the same storage: it references the restored
     * files instead of uploading them again. */
    size_t before = count_files(j.j_shared);
    json_t *hb = take(b, &j, 2, false, "op1-0");
    json_t *sb = json_object_get(hb, "shared");
    size_t reused = 0;
    json_array_foreach(sb, i, e)
    {
        reused += json_has_string(shared, json_string_value(e));
    }
    assert_true(reused > 0);
    assert_int_equal(count_files(j.j_shared),
                     before + json_array_size(sb) - reused);
    json_decref(hb);
    json_decref(h);
    eddy__kstate_destroy(b);
    eddy__kstate_destroy(a);
}

static int gen_incr(int i)
{
    return i < NK / 4 ? 1 : i < NK / 2 ? 2 : 0;
}

static void test_rdb_incremental(void **state)
{
    (void)state;
    job_t j;
    job_init(&j);
    eddy__kstate_t *a = rnew(0, MAXP - 1);
    fill(a, 0, NK, 0);
    json_t *h1 = take(a, &j, 1, false, "op1-0");
    json_t *s1 = json_object_get(h1, "shared");
    assert_int_equal(count_files(j.j_shared), json_array_size(s1));
    a->ks_ops->ko_notify_complete(a, 1);

    /* Checkpoint 2 uploads only the SST files written since 1. */
    fill(a, 0, NK / 4, 1);
    json_t *h2 = take(a, &j, 2, false, "op1-0");
    json_t *s2 = json_object_get(h2, "shared");
    size_t i, old = 0, fresh = 0;
    json_t *e;
    json_array_foreach(s2, i, e)
    {
        if (json_has_string(s1, json_string_value(e))) {
            old++;
        } else {
            fresh++;
        }
    }
    assert_true(old > 0);
    assert_true(fresh > 0);
    assert_int_equal(count_files(j.j_shared), json_array_size(s1) + fresh);

    /* 2 is not complete: checkpoint 3 must not reference what only 2
     * uploaded (the coordinator may delete it when 2 is aborted). */
    fill(a, NK / 4, NK / 2, 2);
    json_t *h3 = take(a, &j, 3, false, "op1-0");
    json_t *s3 = json_object_get(h3, "shared");
    size_t from1 = 0;
    json_array_foreach(s3, i, e)
    {
        const char *name = json_string_value(e);
        assert_false(json_has_string(s2, name) && !json_has_string(s1, name));
        from1 += json_has_string(s1, name);
    }
    assert_true(from1 > 0);

    /* Once 3 completes, 4 references 3's files; what it uploads (files a
     * background compaction wrote meanwhile) carries its own id. */
    a->ks_ops->ko_notify_complete(a, 3);
    json_t *h4 = take(a, &j, 4, false, "op1-0");
    json_t *s4 = json_object_get(h4, "shared");
    size_t from3 = 0;
    json_array_foreach(s4, i, e)
    {
        const char *name = json_string_value(e);
        from3 += json_has_string(s3, name);
        assert_true(json_has_string(s3, name) || strstr(name, "-4-") != NULL);
    }
    assert_true(from3 > 0);

    /* Each checkpoint restores to its own contents. */
    eddy_error_t err = {0};
    eddy__kstate_t *b = rnew(0, MAXP - 1);
    TU_ASSERT_OK(restore_from(b, &h3, 1, &j, 3, false, &err), &err);
    assert_int_equal(check(b, 0, NK, gen_incr, true), NK);
    eddy__kstate_destroy(b);
    b = rnew(0, MAXP - 1);
    TU_ASSERT_OK(restore_from(b, &h1, 1, &j, 1, false, &err), &err);
    assert_int_equal(check(b, 0, NK, gen0, true), NK);
    eddy__kstate_destroy(b);
    json_decref(h1);
    json_decref(h2);
    json_decref(h3);
    json_decref(h4);
    eddy__kstate_destroy(a);
}

static void test_rdb_savepoint_canonical(void **state)
{
    (void)state;
    job_t j;
    job_init(&j);
    eddy__kstate_t *a = rnew(0, MAXP - 1);
    eddy__kstate_set_time(a, 5000);
    fill(a, 0, NK, 0);
    json_t *h = take(a, &j, 7, true, "op3-0");
    assert_string_equal(json_string_value(json_object_get(h, "type")),
                        "canonical");
    assert_null(json_object_get(h, "shared")); /* self-contained */
    char p[2048];
    snprintf(p, sizeof(p), "%s/chk-7/%s", j.j_dir,
             json_string_value(json_object_get(h, "file")));
    assert_true(exists(p));
    eddy_error_t err = {0};

    /* Into RocksDB and into the heap backend. */
    eddy__kstate_t *b = rnew(0, MAXP - 1);
    eddy__kstate_set_time(b, 5000);
    TU_ASSERT_OK(restore_from(b, &h, 1, &j, 7, false, &err), &err);
    assert_int_equal(check(b, 0, NK, gen0, true), NK);
    check_counts(b, NK, true);
    eddy__kstate_t *hp = eddy__heap_kstate_new(rspecs, R_N, 0, MAXP - 1);
    eddy__kstate_set_time(hp, 5000);
    TU_ASSERT_OK(restore_from(hp, &h, 1, &j, 7, false, &err), &err);
    assert_int_equal(check(hp, 0, NK, gen0, true), NK);
    json_t *hh = take(hp, &j, 8, true, "op3-0");
    eddy__kstate_set_time(hp, 5000 + RTTL + 1);
    assert_int_equal(check(hp, 0, NK, gen0, false), NK);

    /* And the heap backend's savepoint into RocksDB. */
    eddy__kstate_t *c = rnew(0, MAXP - 1);
    eddy__kstate_set_time(c, 5000);
    TU_ASSERT_OK(restore_from(c, &hh, 1, &j, 8, false, &err), &err);
    assert_int_equal(check(c, 0, NK, gen0, true), NK);
    check_counts(c, NK, true);

    /* The heap backend refuses RocksDB's own format, by name. */
    json_t *hr = take(a, &j, 9, false, "op3-0");
    assert_int_not_equal(restore_from(hp, &hr, 1, &j, 9, false, &err), 0);
    TU_ASSERT_CONTAINS(err.msg, "rocksdb");
    json_decref(hr);
    json_decref(hh);
    json_decref(h);
    eddy__kstate_destroy(c);
    eddy__kstate_destroy(hp);
    eddy__kstate_destroy(b);
    eddy__kstate_destroy(a);
}

/* Restores ranges [first[i], last[i]] from `hs` and checks that together
 * they hold every key exactly once. */
static void check_split(json_t **hs, int nh, const job_t *j, int64_t id,
                        const int *first, const int *last, int nparts)
{
    size_t total = 0;
    for (int p = 0; p < nparts; p++) {
        eddy__kstate_t *ks = rnew(first[p], last[p]);
        eddy_error_t err = {0};
        TU_ASSERT_OK(restore_from(ks, hs, nh, j, id, false, &err), &err);
        size_t n = check(ks, 0, NK, gen0, true);
        check_counts(ks, n, true);
        total += n;
        eddy__kstate_destroy(ks);
    }
    assert_int_equal(total, NK);
}

static void test_rdb_rescale(void **state)
{
    (void)state;
    job_t j;
    job_init(&j);
    /* Two subtasks, 0..63 and 64..127. */
    eddy__kstate_t *a1 = rnew(0, 63), *a2 = rnew(64, MAXP - 1);
    fill(a1, 0, NK, 0);
    fill(a2, 0, NK, 0);
    json_t *h[2] = {take(a1, &j, 1, false, "op1-0"),
                    take(a2, &j, 1, false, "op1-1")};
    json_t *c[2] = {take(a1, &j, 2, true, "op1-0"),
                    take(a2, &j, 2, true, "op1-1")};
    eddy__kstate_destroy(a1);
    eddy__kstate_destroy(a2);

    /* 2 -> 1, from RocksDB's format and from the canonical one. */
    static const int all_f[] = {0}, all_l[] = {MAXP - 1};
    check_split(h, 2, &j, 1, all_f, all_l, 1);
    check_split(c, 2, &j, 2, all_f, all_l, 1);
    /* 2 -> 3, with ranges across the old boundary. */
    static const int f3[] = {0, 40, 90}, l3[] = {39, 89, MAXP - 1};
    check_split(h, 2, &j, 1, f3, l3, 3);
    check_split(c, 2, &j, 2, f3, l3, 3);

    /* 1 -> 2. */
    eddy__kstate_t *b = rnew(0, MAXP - 1);
    eddy_error_t err = {0};
    TU_ASSERT_OK(restore_from(b, h, 2, &j, 1, false, &err), &err);
    json_t *hb = take(b, &j, 3, false, "op1-0");
    eddy__kstate_destroy(b);
    static const int f2[] = {0, 64}, l2[] = {63, MAXP - 1};
    check_split(&hb, 1, &j, 3, f2, l2, 2);
    json_decref(hb);
    for (int i = 0; i < 2; i++) {
        json_decref(h[i]);
        json_decref(c[i]);
    }
}

static void test_rdb_restore_changed_ttl(void **state)
{
    (void)state;
    job_t j;
    job_init(&j);
    eddy_error_t err = {0};
    eddy__kstate_t *a = rnew(0, MAXP - 1);
    eddy__kstate_set_time(a, 1000);
    fill(a, 0, NK / 3, 0);
    json_t *h = take(a, &j, 1, false, "op1-0");
    eddy__kstate_destroy(a);

    /* TTL dropped: the stamps go, everything stays. */
    eddy__kstate_t *b = suite_new(rspecs_nottl, R_N, 0, MAXP - 1);
    eddy__kstate_set_time(b, 1000 + 10 * RTTL);
    TU_ASSERT_OK(restore_from(b, &h, 1, &j, 1, false, &err), &err);
    assert_int_equal(check(b, 0, NK / 3, gen0, true), NK / 3);
    check_counts(b, NK / 3, true);
    json_t *hb = take(b, &j, 2, false, "op1-0");
    eddy__kstate_destroy(b);

    /* TTL added: stamped with the restore time, expiring one TTL later. */
    eddy__kstate_t *c = suite_new(rspecs_allttl, R_N, 0, MAXP - 1);
    eddy__kstate_set_time(c, 50000);
    TU_ASSERT_OK(restore_from(c, &hb, 1, &j, 2, false, &err), &err);
    eddy__kstate_set_time(c, 50000 + RTTL);
    assert_int_equal(check(c, 0, NK / 3, gen0, true), NK / 3);
    eddy__kstate_set_time(c, 50000 + RTTL + 1);
    for (int sid = 0; sid < R_N; sid++) {
        assert_int_equal(count_all(c, sid), 0);
    }
    eddy__kstate_destroy(c);
    json_decref(hb);
    json_decref(h);
}

/* ---- get_for_update and snapshots ---- */

static void test_rdb_gfu_across_snapshots(void **state)
{
    (void)state;
    job_t j;
    job_init(&j);
    eddy__kstate_t *a = rnew(0, MAXP - 1);
    const eddy__kstate_ops_t *ops = a->ks_ops;
    char kb[32];
    eddy__skey_t k = rkey(1, kb);
    void *p;
    bool created;
    assert_int_equal(ops->ko_get_for_update(a, R_AGG, &k, 8, &p, &created), 0);
    assert_true(created);
    int64_t v = 111;
    memcpy(p, &v, 8);
    json_t *h1 = take(a, &j, 1, false, "op1-0");
    /* A snapshot does not modify the state: the pointer is still the
     * entry's, and what is written through it is in the next one. */
    v = 222;
    memcpy(p, &v, 8);
    const void *g;
    size_t len;
    assert_int_equal(ops->ko_get(a, R_AGG, &k, &g, &len), 1);
    assert_int_equal(memcmp(g, &v, 8), 0);
    json_t *h2 = take(a, &j, 2, true, "op1-0");
    /* Many other writes (cache flushes) in between do not lose it. */
    for (int i = 2; i < 3000; i++) {
        eddy__skey_t o = rkey(i, kb);
        put_s(a, R_VAL, &o, "x");
    }
    v = 333;
    memcpy(p, &v, 8);
    json_t *h3 = take(a, &j, 3, false, "op1-0");
    eddy__kstate_destroy(a);

    json_t *hs[] = {h1, h2, h3};
    int64_t want[] = {111, 222, 333};
    for (int i = 0; i < 3; i++) {
        eddy__kstate_t *b = rnew(0, MAXP - 1);
        eddy_error_t err = {0};
        TU_ASSERT_OK(restore_from(b, &hs[i], 1, &j, i + 1, false, &err), &err);
        k = rkey(1, kb);
        assert_int_equal(b->ks_ops->ko_get(b, R_AGG, &k, &g, &len), 1);
        int64_t got;
        memcpy(&got, g, 8);
        assert_int_equal(got, want[i]);
        eddy__kstate_destroy(b);
        json_decref(hs[i]);
    }
}

static void test_rdb_snapshot_outlives_backend(void **state)
{
    (void)state;
    job_t j;
    job_init(&j);
    char dir[600];
    next_dir(dir, sizeof(dir));
    eddy_error_t err = {0};
    eddy__kstate_t *a =
        eddy__rocksdb_kstate_new(rspecs, R_N, 0, MAXP - 1, dir, &err);
    assert_non_null(a);
    fill(a, 0, 500, 0);
    eddy__ksnap_t *s1 = NULL, *s2 = NULL;
    assert_int_equal(a->ks_ops->ko_snapshot(a, 1, false, &s1), 0);
    assert_int_equal(a->ks_ops->ko_snapshot(a, 2, true, &s2), 0);
    /* The task is gone before the snapshot thread writes. */
    eddy__kstate_destroy(a);
    assert_true(exists(dir));
    char cd[700];
    chk_dir(&j, 1, cd, sizeof(cd));
    mkdir(cd, 0755);
    /* Storage that is not there: an error naming it, and nothing lost. */
    eddy__snap_target_t bad = {cd, "/nonexistent/eddy/shared", "op1-0", 1,
                               false};
    json_t *h = NULL;
    assert_int_equal(s1->ks_write(s1, &bad, &h, &err), EDDY_ERR_IO);
    TU_ASSERT_CONTAINS(err.msg, "/nonexistent/eddy/shared");
    assert_null(h);
    eddy__snap_target_t t = {cd, j.j_shared, "op1-0", 1, false};
    TU_ASSERT_OK(s1->ks_write(s1, &t, &h, &err), &err);
    s1->ks_release(s1);
    assert_true(exists(dir));
    s2->ks_release(s2); /* never written */
    assert_false(exists(dir));
    eddy__kstate_t *b = rnew(0, MAXP - 1);
    TU_ASSERT_OK(restore_from(b, &h, 1, &j, 1, false, &err), &err);
    assert_int_equal(check(b, 0, 500, gen0, true), 500);
    eddy__kstate_destroy(b);
    json_decref(h);
}

/* ---- lists across flushes ---- */

static void test_rdb_list_merge_across_flush(void **state)
{
    (void)state;
    job_t j;
    job_init(&j);
    eddy__kstate_t *a = rnew(0, MAXP - 1);
    char kb[32];
    eddy__skey_t k = rkey(3, kb);
    eddy__kstate_set_time(a, 1000);
    list_add_s(a, R_LIST, &k, "a");
    list_add_s(a, R_TLIST, &k, "a");
    list_add_s(a, R_TLIST, &k, "b");
    /* A snapshot flushes the memtables: the elements move to SST files
     * (partially merged) and later adds merge onto them. */
    json_t *h = take(a, &j, 1, false, "op1-0");
    list_add_s(a, R_LIST, &k, "b");
    list_add_s(a, R_TLIST, &k, "c");
    check_list(a, R_LIST, &k, "a,b");
    check_list(a, R_TLIST, &k, "a,b,c");
    /* Expired, then added to: a fresh list, whatever is on disk. */
    json_t *h2 = take(a, &j, 2, false, "op1-0");
    eddy__kstate_set_time(a, 1000 + RTTL + 1);
    list_add_s(a, R_TLIST, &k, "d");
    check_list(a, R_TLIST, &k, "d");
    json_t *h3 = take(a, &j, 3, false, "op1-0");
    eddy__kstate_set_time(a, 1000 + 2 * RTTL + 2);
    list_add_s(a, R_TLIST, &k, "e");
    eddy__kstate_set_time(a, 1000 + 2 * RTTL + 3);
    list_add_s(a, R_TLIST, &k, "f");
    check_list(a, R_TLIST, &k, "e,f");
    eddy__kstate_destroy(a);
    eddy_error_t err = {0};
    eddy__kstate_t *b = rnew(0, MAXP - 1);
    eddy__kstate_set_time(b, 1000 + RTTL + 1);
    TU_ASSERT_OK(restore_from(b, &h3, 1, &j, 3, false, &err), &err);
    check_list(b, R_TLIST, &k, "d");
    check_list(b, R_LIST, &k, "a,b");
    eddy__kstate_destroy(b);
    json_decref(h);
    json_decref(h2);
    json_decref(h3);
}

/* ---- damaged checkpoints ---- */

static void copy_path(const char *src, const char *dst)
{
    size_t n;
    char *data = tu_read_file(src, &n);
    tu_write_file(dst, data, n);
    free(data);
}

static void test_rdb_damaged_checkpoints(void **state)
{
    (void)state;
    job_t j;
    job_init(&j);
    eddy__kstate_t *a = rnew(0, MAXP - 1);
    fill(a, 0, 300, 0);
    json_t *h = take(a, &j, 1, false, "op1-0");
    eddy__kstate_destroy(a);
    eddy_error_t err = {0};
    char sst[2048], meta[2048], save[2048];
    snprintf(
        sst, sizeof(sst), "%s/%s", j.j_dir,
        json_string_value(json_array_get(json_object_get(h, "shared"), 0)));
    const char *manifest = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(h, "private"), i, e)
    {
        if (strstr(json_string_value(e), "MANIFEST") != NULL) {
            manifest = json_string_value(e);
        }
    }
    assert_non_null(manifest);
    snprintf(meta, sizeof(meta), "%s/chk-1/%s", j.j_dir, manifest);
    snprintf(save, sizeof(save), "%s/saved", j.j_dir);

    /* A missing shared file. */
    assert_int_equal(rename(sst, save), 0);
    eddy__kstate_t *b = rnew(0, MAXP - 1);
    assert_int_equal(restore_from(b, &h, 1, &j, 1, false, &err),
                     EDDY_ERR_NOT_FOUND);
    TU_ASSERT_CONTAINS(err.msg, "is missing");
    TU_ASSERT_CONTAINS(err.msg, strrchr(sst, '/') + 1);
    eddy__kstate_destroy(b);
    assert_int_equal(rename(save, sst), 0);

    /* A truncated one. */
    copy_path(sst, save);
    assert_int_equal(truncate(sst, 10), 0);
    b = rnew(0, MAXP - 1);
    assert_int_equal(restore_from(b, &h, 1, &j, 1, false, &err),
                     EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(err.msg, "expected");
    TU_ASSERT_CONTAINS(err.msg, strrchr(sst, '/') + 1);
    eddy__kstate_destroy(b);
    copy_path(save, sst);

    /* A bit flipped in the private MANIFEST, size unchanged. */
    copy_path(meta, save);
    size_t n;
    char *data = tu_read_file(meta, &n);
    data[n / 2] ^= 0x20;
    tu_write_file(meta, data, n);
    free(data);
    b = rnew(0, MAXP - 1);
    assert_int_equal(restore_from(b, &h, 1, &j, 1, false, &err),
                     EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(err.msg, "corrupt");
    TU_ASSERT_CONTAINS(err.msg, "MANIFEST");
    eddy__kstate_destroy(b);
    copy_path(save, meta);
    /* ... also on the rescaling path. */
    data = tu_read_file(meta, &n);
    data[n / 3] ^= 0x01;
    tu_write_file(meta, data, n);
    free(data);
    b = rnew(0, 63);
    assert_int_equal(restore_from(b, &h, 1, &j, 1, false, &err),
                     EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(err.msg, "corrupt");
    eddy__kstate_destroy(b);
    copy_path(save, meta);

    /* A state the operator no longer declares: named, unless allowed. */
    static const eddy__state_spec_t fewer[] = {
        {"value", EDDY_STATE_VALUE, 0},
        {"list", EDDY_STATE_LIST, 0},
    };
    b = suite_new(fewer, 2, 0, MAXP - 1);
    assert_int_equal(restore_from(b, &h, 1, &j, 1, false, &err),
                     EDDY_ERR_STATE);
    TU_ASSERT_CONTAINS(err.msg, "'map'");
    eddy__kstate_destroy(b);
    b = suite_new(fewer, 2, 0, MAXP - 1);
    TU_ASSERT_OK(restore_from(b, &h, 1, &j, 1, true, &err), &err);
    char kb[32];
    eddy__skey_t k = rkey(5, kb);
    check_val(b, 0, &k, "v5-g0");
    check_list(b, 1, &k, "l5-0-g0,l5-1-g0");
    eddy__kstate_destroy(b);

    /* A state whose kind changed. */
    static const eddy__state_spec_t changed[] = {
        {"value", EDDY_STATE_LIST, 0},
    };
    b = suite_new(changed, 1, 0, MAXP - 1);
    assert_int_equal(restore_from(b, &h, 1, &j, 1, true, &err), EDDY_ERR_STATE);
    TU_ASSERT_CONTAINS(err.msg, "'value' changed its kind");
    eddy__kstate_destroy(b);

    /* Handles that are not what they claim. */
    json_t *bad = json_pack("{s:s}", "type", "mystery");
    b = rnew(0, MAXP - 1);
    assert_int_equal(restore_from(b, &bad, 1, &j, 1, false, &err),
                     EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(err.msg, "mystery");
    eddy__kstate_destroy(b);
    json_decref(bad);
    bad = json_deep_copy(h);
    json_object_del(bad, "sst");
    b = rnew(0, MAXP - 1);
    assert_int_equal(restore_from(b, &bad, 1, &j, 1, false, &err),
                     EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(err.msg, "malformed");
    eddy__kstate_destroy(b);
    json_decref(bad);
    /* A path that climbs out of the checkpoint. */
    bad = json_deep_copy(h);
    json_t *f0 = json_array_get(json_object_get(bad, "sst"), 0);
    json_object_set_new(f0, "path", json_string("../../etc/passwd"));
    b = rnew(0, MAXP - 1);
    assert_int_equal(restore_from(b, &bad, 1, &j, 1, false, &err),
                     EDDY_ERR_FORMAT);
    eddy__kstate_destroy(b);
    json_decref(bad);

    /* After all that, the intact checkpoint still restores. */
    b = rnew(0, MAXP - 1);
    TU_ASSERT_OK(restore_from(b, &h, 1, &j, 1, false, &err), &err);
    assert_int_equal(check(b, 0, 300, gen0, true), 300);
    eddy__kstate_destroy(b);
    json_decref(h);
}

/* ---- the working directory ---- */

static void test_rdb_workdir(void **state)
{
    (void)state;
    char dir[600], db[700], keep[700];
    next_dir(dir, sizeof(dir));
    strcat(dir, "/nested/deeper");
    eddy_error_t err = {0};
    eddy__kstate_t *a =
        eddy__rocksdb_kstate_new(rspecs, R_N, 0, MAXP - 1, dir, &err);
    TU_ASSERT_OK(a == NULL ? err.code : 0, &err);
    snprintf(db, sizeof(db), "%s/db", dir);
    assert_true(exists(db));
    /* A second backend may not share it. */
    eddy__kstate_t *b =
        eddy__rocksdb_kstate_new(rspecs, R_N, 0, MAXP - 1, dir, &err);
    assert_null(b);
    assert_int_equal(err.code, EDDY_ERR_BUSY);
    TU_ASSERT_CONTAINS(err.msg, dir);
    /* Files it did not create survive it. */
    snprintf(keep, sizeof(keep), "%s/keep.txt", dir);
    tu_write_file(keep, "x", 1);
    eddy__kstate_destroy(a);
    assert_false(exists(db));
    assert_true(exists(keep));
    assert_int_equal(unlink(keep), 0);
    assert_int_equal(rmdir(dir), 0);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(rmdir(dir), 0);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(rmdir(dir), 0);

    /* Two states of one name cannot be told apart. */
    static const eddy__state_spec_t twice[] = {
        {"same", EDDY_STATE_VALUE, 0},
        {"same", EDDY_STATE_LIST, 0},
    };
    next_dir(dir, sizeof(dir));
    assert_null(eddy__rocksdb_kstate_new(twice, 2, 0, 1, dir, &err));
    assert_int_equal(err.code, EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(err.msg, "'same'");
    assert_false(exists(dir));
    /* A working directory that cannot be created. */
    assert_null(eddy__rocksdb_kstate_new(rspecs, R_N, 0, 1,
                                         "/proc/eddy-cannot-be-here", &err));
    assert_int_not_equal(err.code, 0);
    TU_ASSERT_CONTAINS(err.msg, "/proc/eddy-cannot-be-here");
    /* A state called "default" lives in RocksDB's default column family. */
    static const eddy__state_spec_t dflt[] = {
        {"default", EDDY_STATE_LIST, 0},
        {"other", EDDY_STATE_VALUE, 0},
    };
    a = suite_new(dflt, 2, 0, MAXP - 1);
    eddy__skey_t k = mks("k", NULL);
    list_add_s(a, 0, &k, "x");
    list_add_s(a, 0, &k, "y");
    put_s(a, 1, &k, "z");
    check_list(a, 0, &k, "x,y");
    check_val(a, 1, &k, "z");
    eddy__kstate_destroy(a);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define U(name) cmocka_unit_test(name)
    const struct CMUnitTest tests[] = {
        KSTATE_SUITE_TESTS(T, U),
        U(test_rdb_checkpoint_round_trip),
        U(test_rdb_incremental),
        U(test_rdb_savepoint_canonical),
        U(test_rdb_rescale),
        U(test_rdb_restore_changed_ttl),
        U(test_rdb_gfu_across_snapshots),
        U(test_rdb_snapshot_outlives_backend),
        U(test_rdb_list_merge_across_flush),
        U(test_rdb_damaged_checkpoints),
        U(test_rdb_workdir),
    };
#undef T
#undef U
    /* EDDY_TEST_FILTER=test_rdb_* runs a subset (cmocka's wildcards). */
    if (getenv("EDDY_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("EDDY_TEST_FILTER"));
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
