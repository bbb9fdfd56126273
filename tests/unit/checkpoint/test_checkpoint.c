/*
 * eddy — checkpoints in the local runtime, end to end: barriers through
 * keyed exchanges, restarts from the latest checkpoint with exact state,
 * restores from a checkpoint directory (with a corrupt newest checkpoint),
 * retention, and clear errors.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

#include <dirent.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "eddy/runner.h"

#define KEYS 10

static atomic_int fail_at;      /* index at which the map fails once */
static atomic_int failed_times; /* how often it failed */

static int gen(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out, void *op)
{
    (void)op;
    char *b = eddy_ctx_scratch(ctx, 32);
    int n = snprintf(b, 32, "%llu", (unsigned long long)index);
    out->value = b;
    out->value_len = (size_t)n;
    return 0;
}

static int fail_once(eddy_ctx_t *ctx, const eddy_record_t *in,
                     eddy_record_t *out, void *op)
{
    (void)out;
    (void)op;
    long long idx = strtoll(in->value, NULL, 10);
    int expected = 0;
    if (idx == atomic_load(&fail_at) &&
        atomic_compare_exchange_strong(&failed_times, &expected, 1)) {
        return eddy_ctx_fail(ctx, "injected failure at record %lld", idx);
    }
    return 0;
}

static int key_mod(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
                   size_t *len, void *op)
{
    (void)op;
    long long idx = strtoll(in->value, NULL, 10);
    char *k = eddy_ctx_scratch(ctx, 8);
    int n = snprintf(k, 8, "k%lld", idx % KEYS);
    *key = k;
    *len = (size_t)n;
    return 0;
}

typedef struct run_opts {
    uint64_t count;
    double rate;
    int parallelism;
    const char *dir;
    const char *job_id;
    const char *restore;
    const char *interval;
    int fail_at;           /* -1: none */
    const char *backend;   /* NULL: heap */
    const char *count_uid; /* NULL: "count" */
    bool allow_non_restored;
} run_opts_t;

/* Runs generator -> map(fail once) -> key_by -> count -> collect. */
static int run_job(const run_opts_t *o, eddy_collection_t *coll,
                   eddy_error_t *err)
{
    atomic_store(&fail_at, o->fail_at);
    atomic_store(&failed_times, 0);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, o->parallelism);
    eddy_stream_t *s = eddy_source_generator(env, o->count, o->rate, gen, NULL);
    s = eddy_uid(s, "source");
    s = eddy_uid(eddy_map(s, fail_once, NULL), "map");
    s = eddy_key_by(s, key_mod, NULL);
    s = eddy_uid(eddy_aggregate(s, eddy_agg_count()),
                 o->count_uid ? o->count_uid : "count");
    eddy_sink_collect(s, coll);
    int rc = 0;
    const char *kv[][2] = {
        {"checkpoint.interval", o->interval},
        {"savepoint.allow_non_restored", o->allow_non_restored ? "true" : NULL},
        {"checkpoint.dir", o->dir},
        {"job.id", o->job_id},
        {"restart.strategy", "fixed-delay"},
        {"restart.delay", "10ms"},
        {"savepoint.path", o->restore},
        {"state.backend", o->backend},
        {"state.rocksdb.dir", o->backend ? o->dir : NULL}};
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]) && rc == 0; i++) {
        if (kv[i][1] != NULL) {
            rc = eddy_env_set_option(env, kv[i][0], kv[i][1], err);
        }
    }
    if (rc == 0) {
        rc = eddy_env_execute(env, err);
    }
    eddy_env_destroy(env);
    return rc;
}

/* Per key: the largest and smallest count emitted; also checks that every
 * count from the smallest to the largest was emitted (the collect sink is
 * not transactional: replays may repeat counts, but none may be missing). */
static void counts(eddy_collection_t *coll, int64_t *max, int64_t *min)
{
    enum { MAXC = 100000 };
    static bool seen[KEYS][MAXC];
    memset(seen, 0, sizeof(seen));
    for (int k = 0; k < KEYS; k++) {
        max[k] = 0;
        min[k] = INT64_MAX;
    }
    for (size_t i = 0; i < eddy_collection_count(coll); i++) {
        const eddy_record_t *r = eddy_collection_get(coll, i);
        int k = atoi((const char *)r->key + 1);
        int64_t v;
        assert_int_equal(r->value_len, sizeof(v));
        memcpy(&v, r->value, sizeof(v));
        assert_true(k >= 0 && k < KEYS && v >= 1 && v < MAXC);
        seen[k][v] = true;
        max[k] = v > max[k] ? v : max[k];
        min[k] = v < min[k] ? v : min[k];
    }
    for (int k = 0; k < KEYS; k++) {
        for (int64_t v = min[k]; v <= max[k]; v++) {
            if (!seen[k][v]) {
                fail_msg("key k%d: count %lld is missing", k, (long long)v);
            }
        }
    }
}

static int count_chk(const char *job_dir)
{
    DIR *d = opendir(job_dir);
    if (d == NULL) {
        return -1;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        n += strncmp(de->d_name, "chk-", 4) == 0;
    }
    closedir(d);
    return n;
}

#define JOB_A "0123456789abcdef0123456789abcdef"
#define JOB_B "fedcba9876543210fedcba9876543210"

static void restart_keeps_exact_state(int parallelism, const char *backend)
{
    char dir[256];
    tu_tmpdir(dir, sizeof(dir));
    eddy_collection_t *coll = eddy_collection_new();
    eddy_error_t err = {0};
    run_opts_t o = {40000, 40000.0, parallelism, dir,    JOB_A,
                    NULL,  "30ms",  25000,       backend};
    TU_ASSERT_OK(run_job(&o, coll, &err), &err);
    assert_int_equal(atomic_load(&failed_times), 1);
    int64_t max[KEYS], min[KEYS];
    counts(coll, max, min);
    for (int k = 0; k < KEYS; k++) {
        /* Exactly 4000 per key: nothing lost, nothing counted twice. */
        assert_int_equal(max[k], 4000);
        assert_int_equal(min[k], 1);
    }
    /* The restart came from a checkpoint, not from scratch: counts emitted
     * after it were emitted again (the sink is not transactional), but far
     * fewer than a full replay would. */
    size_t n = eddy_collection_count(coll);
    assert_true(n >= 40000);
    assert_true(n < 40000 + 25000);
    char job_dir[512];
    snprintf(job_dir, sizeof(job_dir), "%s/%s", dir, JOB_A);
    int chk = count_chk(job_dir);
    assert_true(chk >= 1 && chk <= 3); /* retained: 3 */
    eddy_collection_destroy(coll);
    tu_rmtree(dir);
}

static void test_restart_p1(void **state)
{
    (void)state;
    restart_keeps_exact_state(1, NULL);
}

static void test_restart_p3(void **state)
{
    (void)state;
    restart_keeps_exact_state(3, NULL);
}

static void test_restart_rocksdb_p2(void **state)
{
    (void)state;
    restart_keeps_exact_state(2, "rocksdb");
}

/* A heap checkpoint (canonical format) restores into RocksDB at another
 * parallelism; the run then restarts from its own incremental RocksDB
 * checkpoint. */
static void test_backend_switch_and_rescale(void **state)
{
    (void)state;
    char dir[256];
    tu_tmpdir(dir, sizeof(dir));
    eddy_error_t err = {0};
    /* Run A (heap) fails for good half-way. */
    eddy_collection_t *c1 = eddy_collection_new();
    run_opts_t a = {40000, 40000.0, 2, dir, JOB_A, NULL, "30ms", 20000, NULL};
    a.fail_at = 20000;
    {
        atomic_store(&fail_at, 20000);
        atomic_store(&failed_times, 0);
        eddy_env_t *e = eddy_env_new();
        eddy_env_set_parallelism(e, 2);
        eddy_stream_t *s = eddy_source_generator(e, a.count, a.rate, gen, NULL);
        s = eddy_uid(eddy_map(eddy_uid(s, "source"), fail_once, NULL), "map");
        s = eddy_key_by(s, key_mod, NULL);
        s = eddy_uid(eddy_aggregate(s, eddy_agg_count()), "count");
        eddy_sink_collect(s, c1);
        eddy_env_set_option(e, "checkpoint.interval", "30ms", &err);
        eddy_env_set_option(e, "checkpoint.dir", dir, &err);
        eddy_env_set_option(e, "job.id", JOB_A, &err);
        eddy_env_set_option(e, "restart.strategy", "none", &err);
        assert_int_equal(eddy_env_execute(e, &err), EDDY_ERR_USER);
        eddy_env_destroy(e);
    }
    /* Run B: RocksDB at parallelism 3 from A's heap checkpoint; it fails
     * once more and restarts from its own (incremental RocksDB) one. */
    char job_dir[512];
    snprintf(job_dir, sizeof(job_dir), "%s/%s", dir, JOB_A);
    eddy_collection_t *c2 = eddy_collection_new();
    run_opts_t b = {40000,   40000.0, 3,     dir,      JOB_B,
                    job_dir, "30ms",  30000, "rocksdb"};
    TU_ASSERT_OK(run_job(&b, c2, &err), &err);
    assert_int_equal(atomic_load(&failed_times), 1);
    int64_t max[KEYS], min[KEYS];
    counts(c2, max, min);
    for (int k = 0; k < KEYS; k++) {
        assert_int_equal(max[k], 4000);
        assert_true(min[k] > 1);
    }
    eddy_collection_destroy(c1);
    eddy_collection_destroy(c2);
    tu_rmtree(dir);
}

/* Finds the newest chk-N directory of a job directory. */
static int newest_chk(const char *job_dir, char *out, size_t size)
{
    DIR *d = opendir(job_dir);
    assert_non_null(d);
    long best = -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "chk-", 4) == 0) {
            long id = strtol(de->d_name + 4, NULL, 10);
            best = id > best ? id : best;
        }
    }
    closedir(d);
    snprintf(out, size, "%s/chk-%ld", job_dir, best);
    return (int)best;
}

/* Run A checkpoints and stops early; run B resumes from A's directory. */
static void test_resume_from_job_dir(void **state)
{
    (void)state;
    char dir[256];
    tu_tmpdir(dir, sizeof(dir));
    eddy_collection_t *c1 = eddy_collection_new();
    eddy_error_t err = {0};
    /* Run A fails for good at record 20000 (no restarts left). */
    run_opts_t a = {40000, 40000.0, 2, dir, JOB_A, NULL, "30ms", 20000};
    atomic_store(&fail_at, 20000);
    eddy_env_t *env = NULL;
    (void)env;
    {
        atomic_store(&failed_times, 0);
        eddy_env_t *e = eddy_env_new();
        eddy_env_set_parallelism(e, 2);
        eddy_stream_t *s = eddy_source_generator(e, a.count, a.rate, gen, NULL);
        s = eddy_uid(s, "source");
        s = eddy_uid(eddy_map(s, fail_once, NULL), "map");
        s = eddy_key_by(s, key_mod, NULL);
        s = eddy_uid(eddy_aggregate(s, eddy_agg_count()), "count");
        eddy_sink_collect(s, c1);
        TU_ASSERT_OK(
            eddy_env_set_option(e, "checkpoint.interval", "30ms", &err), &err);
        TU_ASSERT_OK(eddy_env_set_option(e, "checkpoint.dir", dir, &err), &err);
        TU_ASSERT_OK(eddy_env_set_option(e, "job.id", JOB_A, &err), &err);
        TU_ASSERT_OK(eddy_env_set_option(e, "restart.strategy", "none", &err),
                     &err);
        int rc = eddy_env_execute(e, &err);
        assert_int_equal(rc, EDDY_ERR_USER);
        TU_ASSERT_CONTAINS(err.msg, "injected failure at record 20000");
        eddy_env_destroy(e);
    }
    char job_dir[512], newest[600];
    snprintf(job_dir, sizeof(job_dir), "%s/%s", dir, JOB_A);
    int id = newest_chk(job_dir, newest, sizeof(newest));
    assert_true(id >= 1);

    /* Corrupt the newest checkpoint's keyed state: B must fall back to the
     * one before it (if there is one) and still be exact. */
    /* Three checkpoints are retained: corrupt the newest (a checksum) and
     * remove a file of the one before; the restore must use the third. */
    assert_int_equal(count_chk(job_dir), 3);
    bool corrupted = false;
    {
        char second[600];
        snprintf(second, sizeof(second), "%s/chk-%d", job_dir, id - 1);
        DIR *d = opendir(second);
        assert_non_null(d);
        struct dirent *de;
        bool removed = false;
        while ((de = readdir(d)) != NULL && !removed) {
            if (strstr(de->d_name, ".opstate") != NULL) {
                char p[900];
                snprintf(p, sizeof(p), "%s/%s", second, de->d_name);
                assert_int_equal(unlink(p), 0);
                removed = true;
            }
        }
        closedir(d);
        assert_true(removed);
    }
    if (count_chk(job_dir) >= 2) {
        DIR *d = opendir(newest);
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strstr(de->d_name, ".keyed") != NULL) {
                char p[900];
                snprintf(p, sizeof(p), "%s/%s", newest, de->d_name);
                FILE *f = fopen(p, "r+b");
                assert_non_null(f);
                fputc('X', f);
                fclose(f);
                corrupted = true;
            }
        }
        closedir(d);
    }

    eddy_collection_t *c2 = eddy_collection_new();
    run_opts_t b = {40000, 200000.0, 3, dir, JOB_B, job_dir, "30ms", -1};
    TU_ASSERT_OK(run_job(&b, c2, &err), &err);
    int64_t max[KEYS], min[KEYS];
    counts(c2, max, min);
    for (int k = 0; k < KEYS; k++) {
        assert_int_equal(max[k], 4000); /* exact across the two runs */
        assert_true(min[k] > 1);        /* state came from the checkpoint */
    }
    assert_true(corrupted);
    eddy_collection_destroy(c1);
    eddy_collection_destroy(c2);
    tu_rmtree(dir);
}

static void test_restore_errors(void **state)
{
    (void)state;
    char dir[256];
    tu_tmpdir(dir, sizeof(dir));
    eddy_collection_t *c = eddy_collection_new();
    eddy_error_t err = {0};
    run_opts_t o = {100, 0, 1, dir, JOB_B, dir, "30ms", -1};
    int rc = run_job(&o, c, &err);
    assert_int_equal(rc, EDDY_ERR_NOT_FOUND);
    TU_ASSERT_CONTAINS(err.msg, "no checkpoint or savepoint found");

    /* A checkpoint whose metadata is garbage, and nothing older. */
    char chk[512];
    snprintf(chk, sizeof(chk), "%s/chk-1", dir);
    mkdir(chk, 0755);
    char meta[600];
    snprintf(meta, sizeof(meta), "%s/_metadata", chk);
    tu_write_file(meta, "{not json", 9);
    o.restore = chk;
    rc = run_job(&o, c, &err);
    assert_int_equal(rc, EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(err.msg, "corrupt");

    /* State that no operator claims: an error naming the operator, unless
     * allowed (then the renamed operator starts empty). */
    eddy_collection_t *c1 = eddy_collection_new();
    run_opts_t a = {2000, 0, 1, dir, JOB_A, NULL, "20ms", -1};
    TU_ASSERT_OK(run_job(&a, c1, &err), &err);
    eddy_collection_destroy(c1);
    char job_dir[512];
    snprintf(job_dir, sizeof(job_dir), "%s/%s", dir, JOB_A);
    c1 = eddy_collection_new();
    run_opts_t b = {2000, 0, 1, dir, JOB_B, job_dir, "20ms", -1};
    b.count_uid = "count-v2";
    rc = run_job(&b, c1, &err);
    assert_int_equal(rc, EDDY_ERR_STATE);
    TU_ASSERT_CONTAINS(err.msg, "operator 'Aggregate' (uid 'count')");
    TU_ASSERT_CONTAINS(err.msg, "--allow-non-restored-state");
    b.allow_non_restored = true;
    TU_ASSERT_OK(run_job(&b, c1, &err), &err);
    eddy_collection_destroy(c1);

    /* Bad option values name the key. */
    eddy_env_t *env = eddy_env_new();
    rc = eddy_env_set_option(env, "checkpoint.interval", "soon", &err);
    assert_int_equal(rc, EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(err.msg, "checkpoint.interval");
    rc = eddy_env_set_option(env, "no.such.key", "1", &err);
    assert_int_equal(rc, EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(err.msg, "unknown configuration key 'no.such.key'");
    eddy_env_destroy(env);
    eddy_collection_destroy(c);
    tu_rmtree(dir);
}

/* Reads every committed part file; counts how often each index appears. */
static void read_parts(const char *dir, int *seen, int n, int *hidden)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    *hidden = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            *hidden += strstr(de->d_name, ".inprogress") != NULL;
            continue;
        }
        assert_true(strncmp(de->d_name, "part-", 5) == 0);
        char p[1024];
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        size_t len;
        char *data = tu_read_file(p, &len);
        char *save = NULL;
        for (char *line = strtok_r(data, "\n", &save); line != NULL;
             line = strtok_r(NULL, "\n", &save)) {
            long v = strtol(line, NULL, 10);
            assert_true(v >= 0 && v < n);
            seen[v]++;
        }
        free(data);
    }
    closedir(d);
}

/* generator -> map(fail once) -> part files, with a restart. */
static void test_part_files_exactly_once(void **state)
{
    (void)state;
    char dir[256], out[300];
    tu_tmpdir(dir, sizeof(dir));
    snprintf(out, sizeof(out), "%s/out", dir);
    enum { N = 30000 };
    atomic_store(&fail_at, 21000);
    atomic_store(&failed_times, 0);
    eddy_env_t *e = eddy_env_new();
    eddy_env_set_parallelism(e, 2);
    eddy_stream_t *s = eddy_source_generator(e, N, 30000.0, gen, NULL);
    s = eddy_uid(eddy_map(eddy_uid(s, "source"), fail_once, NULL), "map");
    eddy_uid(eddy_sink_part_files(s, out), "files");
    eddy_error_t err = {0};
    TU_ASSERT_OK(eddy_env_set_option(e, "checkpoint.interval", "25ms", &err),
                 &err);
    TU_ASSERT_OK(eddy_env_set_option(e, "checkpoint.dir", dir, &err), &err);
    TU_ASSERT_OK(
        eddy_env_set_option(e, "restart.strategy", "fixed-delay", &err), &err);
    TU_ASSERT_OK(eddy_env_set_option(e, "restart.delay", "0", &err), &err);
    TU_ASSERT_OK(eddy_env_execute(e, &err), &err);
    eddy_env_destroy(e);
    assert_int_equal(atomic_load(&failed_times), 1);
    int *seen = calloc(N, sizeof(int));
    int hidden;
    read_parts(out, seen, N, &hidden);
    for (int i = 0; i < N; i++) {
        if (seen[i] != 1) {
            fail_msg("record %d appears %d times", i, seen[i]);
        }
    }
    assert_int_equal(hidden, 0); /* nothing left in progress */
    free(seen);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_p1),
        cmocka_unit_test(test_restart_p3),
        cmocka_unit_test(test_restart_rocksdb_p2),
        cmocka_unit_test(test_backend_switch_and_rescale),
        cmocka_unit_test(test_resume_from_job_dir),
        cmocka_unit_test(test_restore_errors),
        cmocka_unit_test(test_part_files_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
