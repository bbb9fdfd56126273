/*
 * eddy — unit tests for the metadata store on SQLite (src/meta/).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Every operation against a real database file; the transition table
 * against an independent copy of the documented one; bounded histories;
 * persistence across close and reopen (what a restarted JobManager
 * resumes); crash safety, by running a writer in a child process (this
 * binary re-executed with --crash-child) that is SIGKILLed either inside a
 * transaction (EDDY_FAULT=meta_commit:N) or at a random moment, after which
 * the store must equal exactly the acknowledged operations replayed on a
 * fresh store; schema versions (newer refused, older migrated, foreign and
 * corrupt files refused); hostile strings; the busy timeout; and concurrent
 * callers.
 *
 * Times come from a fake clock (1 s per reading) so that two stores fed
 * the same operations are byte-for-byte comparable.
 */
#include "test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "meta/meta_store.h"

#define T0 1700000000000LL

/* ---- helpers ---- */

static int64_t fake_clock(void *arg)
{
    int64_t *t = arg;
    *t += 1000;
    return *t;
}

typedef struct fixture {
    char dir[PATH_MAX];
    char path[PATH_MAX + 32];
    int64_t clock;
    eddy__meta_options_t opts;
    eddy__meta_t *m;
} fixture_t;

static eddy__meta_t *fx_open(fixture_t *fx)
{
    eddy_error_t err = {0};
    eddy__meta_t *m = NULL;
    TU_ASSERT_OK(eddy__meta_open(fx->path, &fx->opts, &m, &err), &err);
    assert_non_null(m);
    return m;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    tu_tmpdir(fx->dir, sizeof(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/meta.db", fx->dir);
    fx->clock = T0;
    eddy__meta_options_init(&fx->opts);
    fx->opts.mo_clock_ms = fake_clock;
    fx->opts.mo_clock_arg = &fx->clock;
    fx->m = fx_open(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    eddy__meta_close(fx->m);
    tu_rmtree(fx->dir);
    free(fx);
    return 0;
}

static void reopen(fixture_t *fx)
{
    eddy__meta_close(fx->m);
    fx->m = NULL;
    fx->m = fx_open(fx);
}

/* Fails unless rc is `code` and the message contains `needle`. */
#define EXPECT_ERR(call, code, needle)                                         \
    do {                                                                       \
        eddy_error_t e_ = {0};                                                 \
        eddy_error_t *err = &e_;                                               \
        int rc_ = (call);                                                      \
        if (rc_ != (code)) {                                                   \
            fail_msg("%s: expected %s, got %s: %s", #call,                     \
                     eddy_err_name(code), eddy_err_name(rc_), e_.msg);         \
        }                                                                      \
        TU_ASSERT_CONTAINS(e_.msg, needle);                                    \
    } while (0)

#define OK(call)                                                               \
    do {                                                                       \
        eddy_error_t e_ = {0};                                                 \
        eddy_error_t *err = &e_;                                               \
        TU_ASSERT_OK((call), &e_);                                             \
        (void)err;                                                             \
    } while (0)

static void job_id(char out[33], int i)
{
    snprintf(out, 33, "%032x", (unsigned)i + 0xa0u);
}

static eddy__meta_job_spec_t spec_for(const char *id, const char *name)
{
    eddy__meta_job_spec_t s = {
        .js_id = id,
        .js_name = name,
        .js_artifact_path = "/data/jobs/word_count.so",
        .js_artifact_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c"
                              "d15d6c15b0f00a08",
        .js_artifact_size = 123456,
        .js_parallelism = 4,
        .js_checkpoint_interval_ms = 5000,
        .js_savepoint_path = "/data/savepoints/savepoint-1",
        .js_args = "[\"--input\",\"topic-a\"]",
    };
    return s;
}

static void create_job(eddy__meta_t *m, int i, const char *name)
{
    char id[33];
    job_id(id, i);
    eddy__meta_job_spec_t s = spec_for(id, name);
    OK(eddy__meta_job_create(m, &s, err));
}

static eddy__meta_job_t *get_job(eddy__meta_t *m, int i)
{
    char id[33];
    job_id(id, i);
    eddy__meta_job_t *j = NULL;
    OK(eddy__meta_job_get(m, id, &j, err));
    return j;
}

static void set_state(eddy__meta_t *m, int i, eddy__job_state_t to)
{
    char id[33];
    job_id(id, i);
    OK(eddy__meta_job_set_state(m, id, to, NULL, NULL, err));
}

static void add_checkpoint(eddy__meta_t *m, int i, int64_t ck, bool sp,
                           int retained)
{
    char id[33], path[128];
    job_id(id, i);
    snprintf(path, sizeof(path), "/ck/%s/chk-%lld", id, (long long)ck);
    eddy__meta_checkpoint_t c = {ck, path, sp, ck * 100, ck * 10, 0};
    OK(eddy__meta_checkpoint_add(m, id, &c, retained, err));
}

/* Runs a raw SQL statement on a file with a connection of our own. */
static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        fail_msg("raw SQL failed: %s: %s", sql, msg);
    }
    sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static char *raw_text(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    char *v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ---- job states ---- */

/* The documented table (meta_store.h, docs/metadata-store.md), written out
 * independently of the implementation's. */
static const char *const allowed[EDDY__JOB_STATE_COUNT] = {
    [EDDY__JOB_CREATED] = "RUNNING FAILING CANCELLING CANCELED FAILED",
    [EDDY__JOB_RUNNING] = "FINISHED FAILING RESTARTING CANCELLING",
    [EDDY__JOB_FAILING] = "RESTARTING CANCELLING FAILED",
    [EDDY__JOB_RESTARTING] = "RUNNING FAILING CANCELLING CANCELED FAILED",
    [EDDY__JOB_CANCELLING] = "CANCELED FINISHED FAILED",
    [EDDY__JOB_CANCELED] = "",
    [EDDY__JOB_FINISHED] = "",
    [EDDY__JOB_FAILED] = "",
};

static bool documented_ok(int from, int to)
{
    char buf[96];
    snprintf(buf, sizeof(buf), " %s ", allowed[from]);
    char word[32];
    snprintf(word, sizeof(word), " %s ",
             eddy__job_state_name((eddy__job_state_t)to));
    return strstr(buf, word) != NULL;
}

static void test_state_names_and_table(void **state)
{
    (void)state;
    static const char *const names[] = {"CREATED",    "RUNNING",    "FAILING",
                                        "RESTARTING", "CANCELLING", "CANCELED",
                                        "FINISHED",   "FAILED"};
    assert_int_equal(EDDY__JOB_STATE_COUNT, 8);
    for (int i = 0; i < 8; i++) {
        assert_string_equal(eddy__job_state_name((eddy__job_state_t)i),
                            names[i]);
        eddy__job_state_t st;
        assert_int_equal(eddy__job_state_parse(names[i], &st), 0);
        assert_int_equal(st, i);
        assert_int_equal(eddy__job_state_terminal(st), i >= EDDY__JOB_CANCELED);
        for (int j = 0; j < 8; j++) {
            if (eddy__job_state_transition_ok(st, (eddy__job_state_t)j) !=
                documented_ok(i, j)) {
                fail_msg(
                    "%s -> %s: table says %d, documentation %d", names[i],
                    names[j],
                    eddy__job_state_transition_ok(st, (eddy__job_state_t)j),
                    documented_ok(i, j));
            }
        }
    }
    eddy__job_state_t st;
    assert_int_equal(eddy__job_state_parse("running", &st), EDDY_ERR_INVALID);
    assert_int_equal(eddy__job_state_parse(NULL, &st), EDDY_ERR_INVALID);
    assert_null(eddy__job_state_name((eddy__job_state_t)8));
    assert_false(
        eddy__job_state_transition_ok((eddy__job_state_t)9, EDDY__JOB_RUNNING));
}

/* ---- jobs ---- */

static void test_job_create_and_get(void **state)
{
    fixture_t *fx = *state;
    char id[33];
    job_id(id, 1);
    eddy__meta_job_spec_t s = spec_for(id, "word count");
    OK(eddy__meta_job_create(fx->m, &s, err));

    eddy__meta_job_t *j = get_job(fx->m, 1);
    assert_string_equal(j->mj_spec.js_id, id);
    assert_string_equal(j->mj_spec.js_name, "word count");
    assert_string_equal(j->mj_spec.js_artifact_path, s.js_artifact_path);
    assert_string_equal(j->mj_spec.js_artifact_sha256, s.js_artifact_sha256);
    assert_int_equal(j->mj_spec.js_artifact_size, 123456);
    assert_int_equal(j->mj_spec.js_parallelism, 4);
    assert_int_equal(j->mj_spec.js_checkpoint_interval_ms, 5000);
    assert_string_equal(j->mj_spec.js_savepoint_path, s.js_savepoint_path);
    assert_string_equal(j->mj_spec.js_args, s.js_args);
    assert_int_equal(j->mj_state, EDDY__JOB_CREATED);
    assert_true(j->mj_start_ms > T0);
    assert_int_equal(j->mj_state_ms, j->mj_start_ms);
    assert_int_equal(j->mj_end_ms, 0);
    assert_int_equal(j->mj_restarts, 0);
    assert_int_equal(j->mj_exceptions_total, 0);
    assert_int_equal(j->mj_checkpoints_total, 0);
    int64_t start = j->mj_start_ms;
    eddy__meta_free(j);

    eddy__meta_transition_t **tr = NULL;
    size_t n = 0;
    OK(eddy__meta_transition_list(fx->m, id, &tr, &n, err));
    assert_int_equal(n, 1);
    assert_int_equal(tr[0]->mt_from, EDDY__JOB_CREATED);
    assert_int_equal(tr[0]->mt_to, EDDY__JOB_CREATED);
    assert_int_equal(tr[0]->mt_time_ms, start);
    assert_string_equal(tr[0]->mt_reason, "submitted");
    eddy__meta_free_array(tr, n);

    /* Optional fields left out. */
    char id2[33];
    job_id(id2, 2);
    eddy__meta_job_spec_t s2 = spec_for(id2, "minimal");
    s2.js_artifact_sha256 = NULL;
    s2.js_savepoint_path = NULL;
    s2.js_args = NULL;
    s2.js_checkpoint_interval_ms = 0;
    OK(eddy__meta_job_create(fx->m, &s2, err));
    j = get_job(fx->m, 2);
    assert_null(j->mj_spec.js_artifact_sha256);
    assert_null(j->mj_spec.js_savepoint_path);
    assert_string_equal(j->mj_spec.js_args, "[]");
    assert_int_equal(j->mj_spec.js_checkpoint_interval_ms, 0);
    eddy__meta_free(j);

    /* The id is taken; the first job is untouched. */
    eddy__meta_job_spec_t dup = spec_for(id, "another");
    EXPECT_ERR(eddy__meta_job_create(fx->m, &dup, err), EDDY_ERR_STATE,
               "already exists");
    j = get_job(fx->m, 1);
    assert_string_equal(j->mj_spec.js_name, "word count");
    eddy__meta_free(j);

    char unknown[33];
    job_id(unknown, 99);
    eddy__meta_job_t *none = (eddy__meta_job_t *)&none;
    EXPECT_ERR(eddy__meta_job_get(fx->m, unknown, &none, err),
               EDDY_ERR_NOT_FOUND, unknown);
    assert_null(none);
}

static void test_job_validation(void **state)
{
    fixture_t *fx = *state;
    char id[33];
    job_id(id, 1);
    eddy__meta_job_spec_t s;

    s = spec_for("0123456789ABCDEF0123456789abcdef", "x");
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "32 lowercase hex");
    s = spec_for("0123", "x");
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "bad job id");
    s = spec_for(NULL, "x");
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "bad job id");
    s = spec_for(id, "");
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "job name is empty");
    s = spec_for(id, NULL);
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "job name is missing");
    /* Not UTF-8: a stray byte, an overlong '/', a surrogate, a cut
     * sequence, above U+10FFFF. */
    const char *bad[] = {"ab\xff", "\xc0\xaf", "\xed\xa0\x80", "caf\xc3",
                         "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(bad); i++) {
        s = spec_for(id, bad[i]);
        EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
                   "job name is not valid UTF-8");
    }
    s = spec_for(id, "x");
    s.js_artifact_path = "";
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "artifact path is empty");
    s = spec_for(id, "x");
    s.js_artifact_sha256 = "abc";
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "SHA-256");
    s = spec_for(id, "x");
    s.js_artifact_size = -1;
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "artifact size -1");
    s = spec_for(id, "x");
    s.js_parallelism = 0;
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "parallelism 0");
    s.js_parallelism = EDDY__META_PARALLELISM_MAX + 1;
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "out of range");
    s = spec_for(id, "x");
    s.js_checkpoint_interval_ms = -5;
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "interval");
    s = spec_for(id, "x");
    s.js_args = "[\"a\",";
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "not valid JSON");
    s.js_args = "{\"a\":1}";
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "JSON array of strings");
    s.js_args = "[\"a\", 2]";
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "argument 1 is not a string");
    EXPECT_ERR(eddy__meta_job_create(fx->m, NULL, err), EDDY_ERR_INVALID,
               "no job");

    /* Nothing was stored by any of them. */
    eddy__meta_job_t **v = NULL;
    size_t n = 99;
    OK(eddy__meta_job_list(fx->m, NULL, &v, &n, err));
    assert_int_equal(n, 0);
    assert_null(v);

    /* Exactly at the limit is fine. */
    char name[EDDY__META_NAME_MAX + 1];
    memset(name, 'n', EDDY__META_NAME_MAX);
    name[EDDY__META_NAME_MAX] = '\0';
    s = spec_for(id, name);
    OK(eddy__meta_job_create(fx->m, &s, err));
}

static void test_set_state(void **state)
{
    fixture_t *fx = *state;
    char id[33];
    job_id(id, 1);
    create_job(fx->m, 1, "job");
    eddy__job_state_t prev = EDDY__JOB_FAILED;
    OK(eddy__meta_job_set_state(fx->m, id, EDDY__JOB_RUNNING, "deployed", &prev,
                                err));
    assert_int_equal(prev, EDDY__JOB_CREATED);
    OK(eddy__meta_job_set_state(fx->m, id, EDDY__JOB_FAILING,
                                "task 'map' (2/4) failed: boom", &prev, err));
    assert_int_equal(prev, EDDY__JOB_RUNNING);
    OK(eddy__meta_job_set_state(fx->m, id, EDDY__JOB_RESTARTING, NULL, NULL,
                                err));
    OK(eddy__meta_job_set_state(fx->m, id, EDDY__JOB_RUNNING, NULL, NULL, err));
    OK(eddy__meta_job_set_state(fx->m, id, EDDY__JOB_RESTARTING, NULL, NULL,
                                err));
    eddy__meta_job_t *j = get_job(fx->m, 1);
    assert_int_equal(j->mj_state, EDDY__JOB_RESTARTING);
    assert_int_equal(j->mj_restarts, 2);
    assert_int_equal(j->mj_end_ms, 0);
    eddy__meta_free(j);
    OK(eddy__meta_job_set_state(fx->m, id, EDDY__JOB_RUNNING, NULL, NULL, err));
    OK(eddy__meta_job_set_state(fx->m, id, EDDY__JOB_FINISHED, "done", NULL,
                                err));
    j = get_job(fx->m, 1);
    assert_int_equal(j->mj_state, EDDY__JOB_FINISHED);
    assert_int_equal(j->mj_end_ms, j->mj_state_ms);
    assert_true(j->mj_end_ms > j->mj_start_ms);
    int64_t end = j->mj_end_ms;
    eddy__meta_free(j);

    /* Refused transitions change nothing and say why. */
    EXPECT_ERR(
        eddy__meta_job_set_state(fx->m, id, EDDY__JOB_RUNNING, NULL, NULL, err),
        EDDY_ERR_STATE, "cannot go from FINISHED to RUNNING");
    EXPECT_ERR(
        eddy__meta_job_set_state(fx->m, id, EDDY__JOB_RUNNING, NULL, NULL, err),
        EDDY_ERR_STATE, "FINISHED is final");
    EXPECT_ERR(eddy__meta_job_set_state(fx->m, id, EDDY__JOB_FINISHED, NULL,
                                        NULL, err),
               EDDY_ERR_STATE, "already FINISHED");
    j = get_job(fx->m, 1);
    assert_int_equal(j->mj_state, EDDY__JOB_FINISHED);
    assert_int_equal(j->mj_end_ms, end);
    eddy__meta_free(j);

    eddy__meta_transition_t **tr = NULL;
    size_t n = 0;
    OK(eddy__meta_transition_list(fx->m, id, &tr, &n, err));
    static const int want[][2] = {
        {EDDY__JOB_CREATED, EDDY__JOB_CREATED},
        {EDDY__JOB_CREATED, EDDY__JOB_RUNNING},
        {EDDY__JOB_RUNNING, EDDY__JOB_FAILING},
        {EDDY__JOB_FAILING, EDDY__JOB_RESTARTING},
        {EDDY__JOB_RESTARTING, EDDY__JOB_RUNNING},
        {EDDY__JOB_RUNNING, EDDY__JOB_RESTARTING},
        {EDDY__JOB_RESTARTING, EDDY__JOB_RUNNING},
        {EDDY__JOB_RUNNING, EDDY__JOB_FINISHED},
    };
    assert_int_equal(n, EDDY_ARRAY_SIZE(want));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(tr[i]->mt_from, want[i][0]);
        assert_int_equal(tr[i]->mt_to, want[i][1]);
        if (i > 0) {
            assert_true(tr[i]->mt_time_ms > tr[i - 1]->mt_time_ms);
        }
    }
    assert_string_equal(tr[1]->mt_reason, "deployed");
    assert_string_equal(tr[2]->mt_reason, "task 'map' (2/4) failed: boom");
    assert_string_equal(tr[3]->mt_reason, "");
    assert_int_equal(tr[n - 1]->mt_time_ms, end);
    eddy__meta_free_array(tr, n);

    /* A non-final state lists where it may go. */
    create_job(fx->m, 2, "job2");
    set_state(fx->m, 2, EDDY__JOB_RUNNING);
    char id2[33];
    job_id(id2, 2);
    EXPECT_ERR(eddy__meta_job_set_state(fx->m, id2, EDDY__JOB_CREATED, NULL,
                                        NULL, err),
               EDDY_ERR_STATE,
               "cannot go from RUNNING to CREATED (from RUNNING: FAILING, "
               "RESTARTING, CANCELLING or FINISHED)");

    char unknown[33];
    job_id(unknown, 77);
    EXPECT_ERR(eddy__meta_job_set_state(fx->m, unknown, EDDY__JOB_RUNNING, NULL,
                                        NULL, err),
               EDDY_ERR_NOT_FOUND, "no job");
    EXPECT_ERR(eddy__meta_job_set_state(fx->m, id2, (eddy__job_state_t)42, NULL,
                                        NULL, err),
               EDDY_ERR_INVALID, "bad job state 42");
}

/* Every (from, to) pair through the store matches the documented table. */
static void test_transition_matrix(void **state)
{
    fixture_t *fx = *state;
    /* A path from CREATED to each state. */
    static const int paths[EDDY__JOB_STATE_COUNT][3] = {
        [EDDY__JOB_CREATED] = {-1},
        [EDDY__JOB_RUNNING] = {EDDY__JOB_RUNNING, -1},
        [EDDY__JOB_FAILING] = {EDDY__JOB_RUNNING, EDDY__JOB_FAILING, -1},
        [EDDY__JOB_RESTARTING] = {EDDY__JOB_RUNNING, EDDY__JOB_RESTARTING, -1},
        [EDDY__JOB_CANCELLING] = {EDDY__JOB_CANCELLING, -1},
        [EDDY__JOB_CANCELED] = {EDDY__JOB_CANCELED, -1},
        [EDDY__JOB_FINISHED] = {EDDY__JOB_RUNNING, EDDY__JOB_FINISHED, -1},
        [EDDY__JOB_FAILED] = {EDDY__JOB_FAILED, -1},
    };
    int k = 0;
    int accepted = 0;
    for (int from = 0; from < EDDY__JOB_STATE_COUNT; from++) {
        for (int to = 0; to < EDDY__JOB_STATE_COUNT; to++, k++) {
            char id[33];
            job_id(id, k);
            create_job(fx->m, k, "matrix");
            for (int p = 0; paths[from][p] >= 0; p++) {
                set_state(fx->m, k, (eddy__job_state_t)paths[from][p]);
            }
            eddy_error_t e = {0};
            int rc = eddy__meta_job_set_state(fx->m, id, (eddy__job_state_t)to,
                                              NULL, NULL, &e);
            bool ok = documented_ok(from, to);
            if ((rc == 0) != ok) {
                fail_msg("%s -> %s: store says %d (%s), documented %d",
                         eddy__job_state_name((eddy__job_state_t)from),
                         eddy__job_state_name((eddy__job_state_t)to), rc, e.msg,
                         ok);
            }
            if (!ok) {
                assert_int_equal(rc, EDDY_ERR_STATE);
            }
            accepted += ok;
            eddy__meta_job_t *j = get_job(fx->m, k);
            assert_int_equal(j->mj_state, ok ? to : from);
            eddy__meta_free(j);
        }
    }
    assert_int_equal(accepted, 20);
}

static void test_list_filters(void **state)
{
    fixture_t *fx = *state;
    /* Start times increase with i (one clock tick or more per call). */
    create_job(fx->m, 0, "alpha");
    create_job(fx->m, 1, "beta");
    create_job(fx->m, 2, "alpha");
    create_job(fx->m, 3, "abc");
    create_job(fx->m, 4, "a%");
    set_state(fx->m, 1, EDDY__JOB_RUNNING);
    set_state(fx->m, 2, EDDY__JOB_RUNNING);
    set_state(fx->m, 2, EDDY__JOB_FINISHED);
    set_state(fx->m, 3, EDDY__JOB_CANCELED);

    eddy__meta_job_t **v = NULL;
    size_t n = 0;
    OK(eddy__meta_job_list(fx->m, NULL, &v, &n, err));
    assert_int_equal(n, 5);
    char id[33];
    for (size_t i = 0; i < n; i++) {
        job_id(id, 4 - (int)i); /* newest first */
        assert_string_equal(v[i]->mj_spec.js_id, id);
    }
    int64_t start2 = v[2]->mj_start_ms;
    eddy__meta_free_array(v, n);

    eddy__meta_job_filter_t f = {.jf_states = EDDY__JOB_MASK(RUNNING) |
                                              EDDY__JOB_MASK(FINISHED)};
    OK(eddy__meta_job_list(fx->m, &f, &v, &n, err));
    assert_int_equal(n, 2);
    assert_int_equal(v[0]->mj_state, EDDY__JOB_FINISHED);
    assert_int_equal(v[1]->mj_state, EDDY__JOB_RUNNING);
    eddy__meta_free_array(v, n);

    f = (eddy__meta_job_filter_t){.jf_name = "alpha"};
    OK(eddy__meta_job_list(fx->m, &f, &v, &n, err));
    assert_int_equal(n, 2);
    eddy__meta_free_array(v, n);

    /* No wildcards: "a%" is a name, not a pattern. */
    f = (eddy__meta_job_filter_t){.jf_name = "a%"};
    OK(eddy__meta_job_list(fx->m, &f, &v, &n, err));
    assert_int_equal(n, 1);
    assert_string_equal(v[0]->mj_spec.js_name, "a%");
    eddy__meta_free_array(v, n);

    f = (eddy__meta_job_filter_t){.jf_name = "alpha",
                                  .jf_states = EDDY__JOB_MASK(CREATED)};
    OK(eddy__meta_job_list(fx->m, &f, &v, &n, err));
    assert_int_equal(n, 1);
    job_id(id, 0);
    assert_string_equal(v[0]->mj_spec.js_id, id);
    eddy__meta_free_array(v, n);

    f = (eddy__meta_job_filter_t){.jf_started_after = start2};
    OK(eddy__meta_job_list(fx->m, &f, &v, &n, err));
    assert_int_equal(n, 3); /* jobs 2, 3, 4 */
    eddy__meta_free_array(v, n);
    f = (eddy__meta_job_filter_t){.jf_started_before = start2};
    OK(eddy__meta_job_list(fx->m, &f, &v, &n, err));
    assert_int_equal(n, 2); /* jobs 0, 1 */
    eddy__meta_free_array(v, n);

    /* Paging. */
    f = (eddy__meta_job_filter_t){.jf_limit = 2, .jf_offset = 1};
    OK(eddy__meta_job_list(fx->m, &f, &v, &n, err));
    assert_int_equal(n, 2);
    job_id(id, 3);
    assert_string_equal(v[0]->mj_spec.js_id, id);
    job_id(id, 2);
    assert_string_equal(v[1]->mj_spec.js_id, id);
    eddy__meta_free_array(v, n);
    f = (eddy__meta_job_filter_t){.jf_offset = 5};
    OK(eddy__meta_job_list(fx->m, &f, &v, &n, err));
    assert_int_equal(n, 0);

    f = (eddy__meta_job_filter_t){.jf_states = 1u << 12};
    EXPECT_ERR(eddy__meta_job_list(fx->m, &f, &v, &n, err), EDDY_ERR_INVALID,
               "unknown states");
    f = (eddy__meta_job_filter_t){.jf_limit = -1};
    EXPECT_ERR(eddy__meta_job_list(fx->m, &f, &v, &n, err), EDDY_ERR_INVALID,
               "negative");
}

/* What a JobManager restarted on the same file finds. */
static void test_reopen_resume(void **state)
{
    fixture_t *fx = *state;
    /* One job in each state. */
    static const int paths[EDDY__JOB_STATE_COUNT][3] = {
        [EDDY__JOB_CREATED] = {-1},
        [EDDY__JOB_RUNNING] = {EDDY__JOB_RUNNING, -1},
        [EDDY__JOB_FAILING] = {EDDY__JOB_RUNNING, EDDY__JOB_FAILING, -1},
        [EDDY__JOB_RESTARTING] = {EDDY__JOB_RUNNING, EDDY__JOB_RESTARTING, -1},
        [EDDY__JOB_CANCELLING] = {EDDY__JOB_RUNNING, EDDY__JOB_CANCELLING, -1},
        [EDDY__JOB_CANCELED] = {EDDY__JOB_CANCELED, -1},
        [EDDY__JOB_FINISHED] = {EDDY__JOB_RUNNING, EDDY__JOB_FINISHED, -1},
        [EDDY__JOB_FAILED] = {EDDY__JOB_FAILED, -1},
    };
    for (int i = 0; i < EDDY__JOB_STATE_COUNT; i++) {
        create_job(fx->m, i, eddy__job_state_name((eddy__job_state_t)i));
    }
    for (int i = 0; i < EDDY__JOB_STATE_COUNT; i++) {
        for (int p = 0; paths[i][p] >= 0; p++) {
            set_state(fx->m, i, (eddy__job_state_t)paths[i][p]);
        }
        for (int c = 1; c <= i; c++) {
            add_checkpoint(fx->m, i, c, c == 2, 3);
        }
    }
    char id[33];
    job_id(id, EDDY__JOB_RUNNING);
    eddy__meta_exception_t ex = {0, "map", 1, "boom"};
    OK(eddy__meta_exception_add(fx->m, id, &ex, err));

    reopen(fx);

    eddy__meta_job_t **v = NULL;
    size_t n = 0;
    OK(eddy__meta_jobs_to_resume(fx->m, &v, &n, err));
    static const int want[] = {EDDY__JOB_CREATED, EDDY__JOB_RUNNING,
                               EDDY__JOB_FAILING, EDDY__JOB_RESTARTING};
    assert_int_equal(n, EDDY_ARRAY_SIZE(want));
    for (size_t i = 0; i < n; i++) {
        /* Oldest first: created in state order. */
        assert_int_equal(v[i]->mj_state, want[i]);
        assert_string_equal(v[i]->mj_spec.js_name,
                            eddy__job_state_name(v[i]->mj_state));
        assert_string_equal(v[i]->mj_spec.js_args, "[\"--input\",\"topic-a\"]");
        assert_int_equal(v[i]->mj_spec.js_parallelism, 4);

        eddy__meta_checkpoint_t *c = NULL;
        OK(eddy__meta_checkpoint_latest(fx->m, v[i]->mj_spec.js_id, true, &c,
                                        err));
        if (want[i] == EDDY__JOB_CREATED) {
            assert_null(c);
        } else {
            assert_non_null(c);
            assert_int_equal(c->mc_id, want[i]);
            char path[128];
            snprintf(path, sizeof(path), "/ck/%s/chk-%d", v[i]->mj_spec.js_id,
                     want[i]);
            assert_string_equal(c->mc_path, path);
            assert_int_equal(c->mc_size_bytes, want[i] * 100);
            assert_int_equal(c->mc_duration_ms, want[i] * 10);
        }
        eddy__meta_free(c);
    }
    assert_int_equal(v[3]->mj_restarts, 1);
    assert_int_equal(v[1]->mj_exceptions_total, 1);
    eddy__meta_free_array(v, n);

    /* It goes on where it was: RESTARTING may run, the final states stay. */
    set_state(fx->m, EDDY__JOB_RESTARTING, EDDY__JOB_RUNNING);
    job_id(id, EDDY__JOB_FINISHED);
    EXPECT_ERR(
        eddy__meta_job_set_state(fx->m, id, EDDY__JOB_RUNNING, NULL, NULL, err),
        EDDY_ERR_STATE, "final");
    eddy__meta_exception_t **ex_v = NULL;
    job_id(id, EDDY__JOB_RUNNING);
    OK(eddy__meta_exception_list(fx->m, id, &ex_v, &n, err));
    assert_int_equal(n, 1);
    assert_string_equal(ex_v[0]->me_message, "boom");
    eddy__meta_free_array(ex_v, n);

    /* The file is a WAL database with the documented settings. */
    char *mode = raw_text(fx->path, "PRAGMA journal_mode");
    assert_string_equal(mode, "wal");
    free(mode);
    assert_int_equal(raw_int(fx->path, "PRAGMA application_id"), 1701078137);
    assert_int_equal(raw_int(fx->path, "SELECT max(version) FROM "
                                       "schema_version"),
                     eddy__meta_sqlite_schema_version());
    struct stat sb;
    assert_int_equal(stat(fx->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

/* ---- exceptions ---- */

static void test_exceptions(void **state)
{
    fixture_t *fx = *state;
    char id[33];
    job_id(id, 1);
    create_job(fx->m, 1, "job");
    for (int i = 0; i < 250; i++) {
        char msg[64], task[32];
        snprintf(msg, sizeof(msg), "failure %d", i);
        snprintf(task, sizeof(task), "task-%d", i % 7);
        eddy__meta_exception_t e = {i % 2 ? 0 : T0 + 5000 + i,
                                    i % 3 ? task : NULL, i % 3 ? i % 4 : -1,
                                    msg};
        OK(eddy__meta_exception_add(fx->m, id, &e, err));
    }
    eddy__meta_exception_t **v = NULL;
    size_t n = 0;
    OK(eddy__meta_exception_list(fx->m, id, &v, &n, err));
    assert_int_equal(n, 100);
    for (size_t k = 0; k < n; k++) {
        int i = 249 - (int)k; /* newest first, oldest 150 dropped */
        char msg[64];
        snprintf(msg, sizeof(msg), "failure %d", i);
        assert_string_equal(v[k]->me_message, msg);
        if (i % 3) {
            char task[32];
            snprintf(task, sizeof(task), "task-%d", i % 7);
            assert_string_equal(v[k]->me_task, task);
            assert_int_equal(v[k]->me_subtask, i % 4);
        } else {
            assert_null(v[k]->me_task);
            assert_int_equal(v[k]->me_subtask, -1);
        }
        if (i % 2 == 0) {
            assert_int_equal(v[k]->me_time_ms, T0 + 5000 + i);
        } else {
            assert_true(v[k]->me_time_ms > T0); /* stamped by the store */
        }
    }
    eddy__meta_free_array(v, n);
    eddy__meta_job_t *j = get_job(fx->m, 1);
    assert_int_equal(j->mj_exceptions_total, 250);
    eddy__meta_free(j);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM job_exceptions"),
                     100);

    /* A smaller bound from the options. */
    fx->opts.mo_exception_history = 3;
    reopen(fx);
    eddy__meta_exception_t e = {0, NULL, -1, "one more"};
    OK(eddy__meta_exception_add(fx->m, id, &e, err));
    OK(eddy__meta_exception_list(fx->m, id, &v, &n, err));
    assert_int_equal(n, 3);
    assert_string_equal(v[0]->me_message, "one more");
    assert_string_equal(v[2]->me_message, "failure 248");
    eddy__meta_free_array(v, n);

    char unknown[33];
    job_id(unknown, 5);
    EXPECT_ERR(eddy__meta_exception_add(fx->m, unknown, &e, err),
               EDDY_ERR_NOT_FOUND, "no job");
    EXPECT_ERR(eddy__meta_exception_list(fx->m, unknown, &v, &n, err),
               EDDY_ERR_NOT_FOUND, "no job");
    e.me_message = NULL;
    EXPECT_ERR(eddy__meta_exception_add(fx->m, id, &e, err), EDDY_ERR_INVALID,
               "needs a message");
    e = (eddy__meta_exception_t){0, NULL, -2, "x"};
    EXPECT_ERR(eddy__meta_exception_add(fx->m, id, &e, err), EDDY_ERR_INVALID,
               "subtask -2");
}

/* Failure text is kept, never refused: cut at a character boundary,
 * invalid bytes replaced. */
static void test_exception_text_hygiene(void **state)
{
    fixture_t *fx = *state;
    char id[33];
    job_id(id, 1);
    create_job(fx->m, 1, "job");
    /* "x" then 2-byte characters: the limit falls inside one. */
    size_t len = 1 + 2 * (EDDY__META_MESSAGE_MAX / 2 + 100);
    char *big = malloc(len + 1);
    big[0] = 'x';
    for (size_t i = 1; i < len; i += 2) {
        big[i] = '\xc3';
        big[i + 1] = '\xa9'; /* é */
    }
    big[len] = '\0';
    eddy__meta_exception_t e = {0, "bad\xfftask", 0, big};
    OK(eddy__meta_exception_add(fx->m, id, &e, err));
    e = (eddy__meta_exception_t){0, NULL, -1, "caf\xc3 ok \xc0\xaf"};
    OK(eddy__meta_exception_add(fx->m, id, &e, err));

    eddy__meta_exception_t **v = NULL;
    size_t n = 0;
    OK(eddy__meta_exception_list(fx->m, id, &v, &n, err));
    assert_int_equal(n, 2);
    assert_string_equal(v[0]->me_message,
                        "caf\xef\xbf\xbd ok \xef\xbf\xbd\xef\xbf\xbd");
    size_t got = strlen(v[1]->me_message);
    assert_int_equal(got, EDDY__META_MESSAGE_MAX - 1); /* "x" + whole é's */
    assert_memory_equal(v[1]->me_message, big, got);
    assert_true(eddy__meta_utf8_valid(v[1]->me_message, got));
    assert_string_equal(v[1]->me_task, "bad\xef\xbf\xbdtask");
    eddy__meta_free_array(v, n);
    free(big);

    /* The helpers on their own. */
    assert_true(eddy__meta_utf8_valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
    assert_true(eddy__meta_utf8_valid("\xe2\x80\xae", 3));     /* U+202E */
    assert_false(eddy__meta_utf8_valid("\xe0\x80\xaf", 3));    /* overlong */
    assert_false(eddy__meta_utf8_valid("\xf8\x88\x80\x80\x80", 5));
    char *c = eddy__meta_text_clean("\xe2\x82\xac\xe2\x82\xac", 5);
    assert_string_equal(c, "\xe2\x82\xac"); /* one € fits in 5 bytes */
    eddy__free(c);
}

/* ---- checkpoints ---- */

static void test_checkpoints(void **state)
{
    fixture_t *fx = *state;
    char id[33];
    job_id(id, 1);
    create_job(fx->m, 1, "job");
    set_state(fx->m, 1, EDDY__JOB_RUNNING);

    eddy__meta_checkpoint_t *c = (eddy__meta_checkpoint_t *)&c;
    OK(eddy__meta_checkpoint_latest(fx->m, id, true, &c, err));
    assert_null(c);

    for (int ck = 1; ck <= 5; ck++) {
        add_checkpoint(fx->m, 1, ck, false, 3);
    }
    add_checkpoint(fx->m, 1, 6, true, 3);
    add_checkpoint(fx->m, 1, 7, false, 3);
    add_checkpoint(fx->m, 1, 8, false, 3);

    eddy__meta_checkpoint_t **v = NULL;
    size_t n = 0;
    OK(eddy__meta_checkpoint_list(fx->m, id, &v, &n, err));
    /* The 3 newest checkpoints, and the savepoint however old. */
    static const int64_t want[] = {8, 7, 6, 5};
    assert_int_equal(n, EDDY_ARRAY_SIZE(want));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i]->mc_id, want[i]);
        assert_int_equal(v[i]->mc_savepoint, want[i] == 6);
        assert_int_equal(v[i]->mc_size_bytes, want[i] * 100);
        assert_int_equal(v[i]->mc_duration_ms, want[i] * 10);
        assert_true(v[i]->mc_time_ms > T0);
    }
    eddy__meta_free_array(v, n);

    add_checkpoint(fx->m, 1, 9, true, 3);
    OK(eddy__meta_checkpoint_latest(fx->m, id, true, &c, err));
    assert_int_equal(c->mc_id, 9);
    assert_true(c->mc_savepoint);
    eddy__meta_free(c);
    OK(eddy__meta_checkpoint_latest(fx->m, id, false, &c, err));
    assert_int_equal(c->mc_id, 8);
    assert_false(c->mc_savepoint);
    eddy__meta_free(c);

    /* Fewer retained later: dropped at the next checkpoint. */
    eddy__meta_checkpoint_t ck = {10, "/ck/10", false, 1, 2, T0 + 42};
    OK(eddy__meta_checkpoint_add(fx->m, id, &ck, 1, err));
    OK(eddy__meta_checkpoint_list(fx->m, id, &v, &n, err));
    assert_int_equal(n, 3); /* 10, 9 (savepoint), 6 (savepoint) */
    assert_int_equal(v[0]->mc_id, 10);
    assert_int_equal(v[0]->mc_time_ms, T0 + 42);
    assert_string_equal(v[0]->mc_path, "/ck/10");
    assert_int_equal(v[1]->mc_id, 9);
    assert_int_equal(v[2]->mc_id, 6);
    eddy__meta_free_array(v, n);

    eddy__meta_job_t *j = get_job(fx->m, 1);
    assert_int_equal(j->mj_checkpoints_total, 10);
    eddy__meta_free(j);

    EXPECT_ERR(eddy__meta_checkpoint_add(fx->m, id, &ck, 3, err),
               EDDY_ERR_STATE, "checkpoint 10 of job");
    j = get_job(fx->m, 1);
    assert_int_equal(j->mj_checkpoints_total, 10); /* rolled back */
    eddy__meta_free(j);

    ck.mc_id = 0;
    EXPECT_ERR(eddy__meta_checkpoint_add(fx->m, id, &ck, 3, err),
               EDDY_ERR_INVALID, "id 0");
    ck.mc_id = 11;
    EXPECT_ERR(eddy__meta_checkpoint_add(fx->m, id, &ck, 0, err),
               EDDY_ERR_INVALID, "retained");
    ck.mc_path = "";
    EXPECT_ERR(eddy__meta_checkpoint_add(fx->m, id, &ck, 3, err),
               EDDY_ERR_INVALID, "checkpoint path is empty");
    ck.mc_path = "/x";
    ck.mc_size_bytes = -1;
    EXPECT_ERR(eddy__meta_checkpoint_add(fx->m, id, &ck, 3, err),
               EDDY_ERR_INVALID, "size -1");

    char unknown[33];
    job_id(unknown, 5);
    ck.mc_size_bytes = 1;
    EXPECT_ERR(eddy__meta_checkpoint_add(fx->m, unknown, &ck, 3, err),
               EDDY_ERR_NOT_FOUND, "no job");
    EXPECT_ERR(eddy__meta_checkpoint_latest(fx->m, unknown, true, &c, err),
               EDDY_ERR_NOT_FOUND, "no job");
    EXPECT_ERR(eddy__meta_checkpoint_list(fx->m, unknown, &v, &n, err),
               EDDY_ERR_NOT_FOUND, "no job");
}

/* ---- savepoint requests ---- */

static void test_savepoints(void **state)
{
    fixture_t *fx = *state;
    fx->opts.mo_savepoint_history = 3;
    reopen(fx);
    char id[33];
    job_id(id, 1);
    create_job(fx->m, 1, "job");

    /* r0 stays in progress throughout: the oldest, but never dropped. */
    OK(eddy__meta_savepoint_begin(fx->m, id, "r0", err));
    OK(eddy__meta_savepoint_begin(fx->m, id, "r1", err));
    eddy__meta_savepoint_t *s = NULL;
    OK(eddy__meta_savepoint_get(fx->m, id, "r1", &s, err));
    assert_string_equal(s->ms_request_id, "r1");
    assert_int_equal(s->ms_status, EDDY__SAVEPOINT_IN_PROGRESS);
    assert_null(s->ms_path);
    assert_null(s->ms_error);
    assert_true(s->ms_created_ms > T0);
    assert_int_equal(s->ms_finished_ms, 0);
    eddy__meta_free(s);

    EXPECT_ERR(eddy__meta_savepoint_begin(fx->m, id, "r1", err), EDDY_ERR_STATE,
               "already exists");
    OK(eddy__meta_savepoint_end(fx->m, id, "r1", EDDY__SAVEPOINT_COMPLETED,
                                "/sp/savepoint-1", err));
    OK(eddy__meta_savepoint_get(fx->m, id, "r1", &s, err));
    assert_int_equal(s->ms_status, EDDY__SAVEPOINT_COMPLETED);
    assert_string_equal(s->ms_path, "/sp/savepoint-1");
    assert_null(s->ms_error);
    assert_true(s->ms_finished_ms > s->ms_created_ms);
    eddy__meta_free(s);
    EXPECT_ERR(eddy__meta_savepoint_end(fx->m, id, "r1", EDDY__SAVEPOINT_FAILED,
                                        "late", err),
               EDDY_ERR_STATE, "already COMPLETED");

    OK(eddy__meta_savepoint_begin(fx->m, id, "r2", err));
    OK(eddy__meta_savepoint_end(fx->m, id, "r2", EDDY__SAVEPOINT_FAILED,
                                "task 'sink' declined", err));
    OK(eddy__meta_savepoint_get(fx->m, id, "r2", &s, err));
    assert_int_equal(s->ms_status, EDDY__SAVEPOINT_FAILED);
    assert_null(s->ms_path);
    assert_string_equal(s->ms_error, "task 'sink' declined");
    eddy__meta_free(s);
    EXPECT_ERR(eddy__meta_savepoint_end(fx->m, id, "r2",
                                        EDDY__SAVEPOINT_IN_PROGRESS, NULL, err),
               EDDY_ERR_INVALID, "COMPLETED or FAILED");
    EXPECT_ERR(eddy__meta_savepoint_end(fx->m, id, "r2",
                                        EDDY__SAVEPOINT_COMPLETED, NULL, err),
               EDDY_ERR_INVALID, "savepoint path is missing");

    /* r3 stays in progress too; r3, r4 and r5 push finished ones out
     * (beyond the newest 3), oldest first, but never an unfinished one. */
    OK(eddy__meta_savepoint_begin(fx->m, id, "r3", err));
    OK(eddy__meta_savepoint_begin(fx->m, id, "r4", err));
    OK(eddy__meta_savepoint_end(fx->m, id, "r4", EDDY__SAVEPOINT_COMPLETED,
                                "/sp/4", err));
    OK(eddy__meta_savepoint_begin(fx->m, id, "r5", err));
    eddy__meta_savepoint_t **v = NULL;
    size_t n = 0;
    OK(eddy__meta_savepoint_list(fx->m, id, &v, &n, err));
    assert_int_equal(n, 4);
    assert_string_equal(v[0]->ms_request_id, "r5");
    assert_string_equal(v[1]->ms_request_id, "r4");
    assert_string_equal(v[2]->ms_request_id, "r3");
    assert_string_equal(v[3]->ms_request_id, "r0");
    assert_int_equal(v[3]->ms_status, EDDY__SAVEPOINT_IN_PROGRESS);
    eddy__meta_free_array(v, n);
    EXPECT_ERR(eddy__meta_savepoint_get(fx->m, id, "r1", &s, err),
               EDDY_ERR_NOT_FOUND, "no savepoint request r1");
    EXPECT_ERR(eddy__meta_savepoint_get(fx->m, id, "r2", &s, err),
               EDDY_ERR_NOT_FOUND, "no savepoint request r2");

    /* A restarted JobManager fails what was in flight. */
    char id2[33];
    job_id(id2, 2);
    create_job(fx->m, 2, "job2");
    OK(eddy__meta_savepoint_begin(fx->m, id2, "x", err));
    reopen(fx);
    int count = -1;
    OK(eddy__meta_savepoints_abandon(fx->m, "JobManager restarted", &count,
                                     err));
    assert_int_equal(count, 4); /* r0, r3, r5, x */
    OK(eddy__meta_savepoint_get(fx->m, id2, "x", &s, err));
    assert_int_equal(s->ms_status, EDDY__SAVEPOINT_FAILED);
    assert_string_equal(s->ms_error, "JobManager restarted");
    eddy__meta_free(s);
    OK(eddy__meta_savepoint_get(fx->m, id, "r4", &s, err));
    assert_int_equal(s->ms_status, EDDY__SAVEPOINT_COMPLETED);
    eddy__meta_free(s);
    OK(eddy__meta_savepoints_abandon(fx->m, NULL, &count, err));
    assert_int_equal(count, 0);

    EXPECT_ERR(eddy__meta_savepoint_begin(fx->m, id, "a b", err),
               EDDY_ERR_INVALID, "request id");
    EXPECT_ERR(
        eddy__meta_savepoint_begin(fx->m, id, "x'; DROP TABLE jobs;--", err),
        EDDY_ERR_INVALID, "request id");
    EXPECT_ERR(eddy__meta_savepoint_begin(fx->m, id, "", err), EDDY_ERR_INVALID,
               "request id");
    char unknown[33];
    job_id(unknown, 9);
    EXPECT_ERR(eddy__meta_savepoint_begin(fx->m, unknown, "r1", err),
               EDDY_ERR_NOT_FOUND, "no job");
    EXPECT_ERR(eddy__meta_savepoint_get(fx->m, unknown, "r1", &s, err),
               EDDY_ERR_NOT_FOUND, "no job");
    EXPECT_ERR(eddy__meta_savepoint_end(fx->m, id, "nope",
                                        EDDY__SAVEPOINT_FAILED, "e", err),
               EDDY_ERR_NOT_FOUND, "no savepoint request nope");
}

/* ---- delete ---- */

static void test_delete(void **state)
{
    fixture_t *fx = *state;
    char id[33], other[33];
    job_id(id, 1);
    job_id(other, 2);
    create_job(fx->m, 1, "doomed");
    create_job(fx->m, 2, "survivor");
    for (int i = 1; i <= 2; i++) {
        set_state(fx->m, i, EDDY__JOB_RUNNING);
        add_checkpoint(fx->m, i, 1, false, 3);
        add_checkpoint(fx->m, i, 2, true, 3);
        eddy__meta_exception_t e = {0, NULL, -1, "x"};
        OK(eddy__meta_exception_add(fx->m, i == 1 ? id : other, &e, err));
        OK(eddy__meta_savepoint_begin(fx->m, i == 1 ? id : other, "r", err));
    }
    EXPECT_ERR(eddy__meta_job_delete(fx->m, id, err), EDDY_ERR_STATE,
               "is RUNNING: only a job that has ended");
    set_state(fx->m, 1, EDDY__JOB_CANCELLING);
    set_state(fx->m, 1, EDDY__JOB_CANCELED);
    OK(eddy__meta_job_delete(fx->m, id, err));

    eddy__meta_job_t *j = NULL;
    EXPECT_ERR(eddy__meta_job_get(fx->m, id, &j, err), EDDY_ERR_NOT_FOUND,
               "no job");
    EXPECT_ERR(eddy__meta_job_delete(fx->m, id, err), EDDY_ERR_NOT_FOUND,
               "no job");
    /* Everything about it went with it; the other job kept everything. */
    static const char *const tables[] = {"job_transitions", "job_exceptions",
                                         "checkpoints", "savepoint_requests"};
    static const int64_t left[] = {2, 1, 2, 1};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(tables); i++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", tables[i]);
        assert_int_equal(raw_int(fx->path, sql), left[i]);
    }
    j = get_job(fx->m, 2);
    assert_int_equal(j->mj_state, EDDY__JOB_RUNNING);
    eddy__meta_free(j);
    /* The id can be used again. */
    create_job(fx->m, 1, "reborn");
}

/* ---- hostile strings ---- */

static void test_hostile_strings(void **state)
{
    fixture_t *fx = *state;
    static const char *const names[] = {
        "'); DROP TABLE jobs; --",
        "Robert'); DELETE FROM jobs WHERE ('1'='1",
        "\"double\" 'single' `back` \\ backslash",
        "%s%n%x%%",
        "a_b%c*?[]",
        "\x01\x02\x1b[31mred\x1b[0m\x7f\t\r\n",
        "\xe2\x80\xae"
        "evil\xe2\x80\xac", /* RTL override */
        "\xef\xbb\xbf"
        "bom",                               /* U+FEFF */
        "\xf0\x9f\x92\xa5 \xf4\x8f\xbf\xbf", /* emoji, U+10FFFF */
        "e\xcc\x81\xcc\x81\xcc\x81",         /* combining marks */
        "\xef\xbf\xbf\xef\xbf\xbe",          /* noncharacters */
        "; SELECT * FROM sqlite_master; --",
    };
    size_t count = EDDY_ARRAY_SIZE(names);
    for (size_t i = 0; i < count; i++) {
        char id[33], path[256], args[64];
        job_id(id, (int)i);
        snprintf(path, sizeof(path), "/data/%s/job.so", names[i]);
        snprintf(args, sizeof(args), "[\"%s\", \"\\u202e\"]", "x'--");
        eddy__meta_job_spec_t s = spec_for(id, names[i]);
        s.js_artifact_path = path;
        s.js_savepoint_path = names[i];
        s.js_args = args;
        OK(eddy__meta_job_create(fx->m, &s, err));
        OK(eddy__meta_job_set_state(fx->m, id, EDDY__JOB_RUNNING, names[i],
                                    NULL, err));
        eddy__meta_exception_t e = {0, names[i], 0, names[i]};
        OK(eddy__meta_exception_add(fx->m, id, &e, err));
        eddy__meta_checkpoint_t c = {1, names[i], false, 0, 0, 0};
        OK(eddy__meta_checkpoint_add(fx->m, id, &c, 3, err));
    }
    reopen(fx);
    for (size_t i = 0; i < count; i++) {
        char id[33], path[256];
        job_id(id, (int)i);
        snprintf(path, sizeof(path), "/data/%s/job.so", names[i]);
        eddy__meta_job_t *j = get_job(fx->m, (int)i);
        assert_string_equal(j->mj_spec.js_name, names[i]);
        assert_string_equal(j->mj_spec.js_artifact_path, path);
        assert_string_equal(j->mj_spec.js_savepoint_path, names[i]);
        eddy__meta_free(j);

        eddy__meta_job_filter_t f = {.jf_name = names[i]};
        eddy__meta_job_t **v = NULL;
        size_t n = 0;
        OK(eddy__meta_job_list(fx->m, &f, &v, &n, err));
        assert_int_equal(n, 1);
        assert_string_equal(v[0]->mj_spec.js_id, id);
        eddy__meta_free_array(v, n);

        eddy__meta_transition_t **tr = NULL;
        OK(eddy__meta_transition_list(fx->m, id, &tr, &n, err));
        assert_int_equal(n, 2);
        assert_string_equal(tr[1]->mt_reason, names[i]);
        eddy__meta_free_array(tr, n);

        eddy__meta_exception_t **ev = NULL;
        OK(eddy__meta_exception_list(fx->m, id, &ev, &n, err));
        assert_int_equal(n, 1);
        assert_string_equal(ev[0]->me_task, names[i]);
        assert_string_equal(ev[0]->me_message, names[i]);
        eddy__meta_free_array(ev, n);

        eddy__meta_checkpoint_t *c = NULL;
        OK(eddy__meta_checkpoint_latest(fx->m, id, true, &c, err));
        assert_string_equal(c->mc_path, names[i]);
        eddy__meta_free(c);
    }
    /* Every table is still there with what was written. */
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM jobs"),
                     (int64_t)count);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM sqlite_master "
                                       "WHERE type = 'table'"),
                     6);

    /* Too long: refused, clearly, and nothing stored. */
    size_t big = 1u << 20;
    char *huge = malloc(big + 1);
    memset(huge, 'a', big);
    huge[big] = '\0';
    char id[33];
    job_id(id, 100);
    eddy__meta_job_spec_t s = spec_for(id, huge);
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "job name is 1048576 bytes long; the limit is 256 bytes");
    huge[EDDY__META_NAME_MAX + 1] = '\0';
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "job name is 257 bytes long");
    huge[EDDY__META_NAME_MAX + 1] = 'a';
    s = spec_for(id, "ok");
    s.js_artifact_path = huge;
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "artifact path is 1048576 bytes long; the limit is 4096");
    s = spec_for(id, "ok");
    s.js_savepoint_path = huge;
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "savepoint path is 1048576 bytes long");
    /* Arguments over 1 MiB of JSON. */
    char *bigargs = malloc(big + 16);
    snprintf(bigargs, big + 16, "[\"%s\"]", huge);
    s = spec_for(id, "ok");
    s.js_args = bigargs;
    EXPECT_ERR(eddy__meta_job_create(fx->m, &s, err), EDDY_ERR_INVALID,
               "program arguments are 1048580 bytes of JSON");
    char *longpath = malloc(big + 1);
    memset(longpath, 'p', big);
    longpath[big] = '\0';
    job_id(id, 0);
    eddy__meta_checkpoint_t c = {2, longpath, false, 0, 0, 0};
    EXPECT_ERR(eddy__meta_checkpoint_add(fx->m, id, &c, 3, err),
               EDDY_ERR_INVALID, "checkpoint path is 1048576 bytes long");
    free(longpath);
    free(bigargs);
    free(huge);
    eddy__meta_job_t *none = NULL;
    job_id(id, 100);
    EXPECT_ERR(eddy__meta_job_get(fx->m, id, &none, err), EDDY_ERR_NOT_FOUND,
               "no job");
}

/* ---- schema versions and foreign files ---- */

static void test_schema_newer_refused(void **state)
{
    fixture_t *fx = *state;
    create_job(fx->m, 1, "job");
    eddy__meta_close(fx->m);
    fx->m = NULL;
    raw_exec(fx->path, "INSERT INTO schema_version VALUES (99, 0)");

    eddy__meta_t *m = (eddy__meta_t *)&m;
    EXPECT_ERR(eddy__meta_open(fx->path, &fx->opts, &m, err),
               EDDY_ERR_UNSUPPORTED,
               "has schema version 99, newer than this eddy understands (1 "
               "to 2)");
    assert_null(m);
    /* Left as it was. */
    assert_int_equal(raw_int(fx->path, "SELECT max(version) FROM "
                                       "schema_version"),
                     99);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM jobs"), 1);

    /* Back to a known version: usable again. */
    raw_exec(fx->path, "DELETE FROM schema_version WHERE version = 99");
    fx->m = fx_open(fx);
    eddy__meta_job_t *j = get_job(fx->m, 1);
    eddy__meta_free(j);
}

/* The version 1 schema exactly as released: a frozen fixture, so that the
 * test keeps proving that stores written by that version still open. */
static const char v1_fixture[] =
    "PRAGMA application_id = 1701078137;"
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY NOT NULL,"
    " applied_ms INTEGER NOT NULL);"
    "INSERT INTO schema_version VALUES (1, 1600000000000);"
    "CREATE TABLE jobs ("
    " job_id TEXT PRIMARY KEY NOT NULL CHECK (length(job_id) = 32),"
    " name TEXT NOT NULL, artifact_path TEXT NOT NULL, artifact_sha256 TEXT,"
    " artifact_size INTEGER NOT NULL, parallelism INTEGER NOT NULL,"
    " checkpoint_interval_ms INTEGER NOT NULL, savepoint_path TEXT,"
    " args TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('CREATED', 'RUNNING', 'FAILING',"
    "  'RESTARTING', 'CANCELLING', 'CANCELED', 'FINISHED', 'FAILED')),"
    " start_ms INTEGER NOT NULL, state_ms INTEGER NOT NULL, end_ms INTEGER,"
    " restarts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_start ON jobs (start_ms);"
    "CREATE TABLE job_transitions (seq INTEGER PRIMARY KEY,"
    " job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,"
    " from_state TEXT, to_state TEXT NOT NULL, time_ms INTEGER NOT NULL,"
    " reason TEXT NOT NULL);"
    "CREATE INDEX job_transitions_job ON job_transitions (job_id, seq);"
    "CREATE TABLE job_exceptions (seq INTEGER PRIMARY KEY,"
    " job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,"
    " time_ms INTEGER NOT NULL, task TEXT, subtask INTEGER NOT NULL,"
    " message TEXT NOT NULL);"
    "CREATE INDEX job_exceptions_job ON job_exceptions (job_id, seq);"
    "CREATE TABLE checkpoints ("
    " job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,"
    " checkpoint_id INTEGER NOT NULL, path TEXT NOT NULL,"
    " savepoint INTEGER NOT NULL CHECK (savepoint IN (0, 1)),"
    " size_bytes INTEGER NOT NULL, duration_ms INTEGER NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " PRIMARY KEY (job_id, checkpoint_id)) WITHOUT ROWID;"
    "INSERT INTO jobs VALUES ('000000000000000000000000000000a1', 'old job',"
    " '/data/old.so', NULL, 10, 2, 1000, NULL, '[\"a\"]', 'RUNNING',"
    " 1600000001000, 1600000002000, NULL, 1);"
    "INSERT INTO job_transitions VALUES (1, '000000000000000000000000000000a1',"
    " NULL, 'CREATED', 1600000001000, 'submitted');"
    "INSERT INTO job_transitions VALUES (2, '000000000000000000000000000000a1',"
    " 'CREATED', 'RUNNING', 1600000002000, '');"
    "INSERT INTO job_exceptions VALUES (1, '000000000000000000000000000000a1',"
    " 1600000003000, 'map', 0, 'boom 1');"
    "INSERT INTO job_exceptions VALUES (2, '000000000000000000000000000000a1',"
    " 1600000004000, NULL, -1, 'boom 2');"
    "INSERT INTO checkpoints VALUES ('000000000000000000000000000000a1', 7,"
    " '/ck/chk-7', 0, 70, 7, 1600000005000);"
    "INSERT INTO checkpoints VALUES ('000000000000000000000000000000a1', 8,"
    " '/ck/chk-8', 0, 80, 8, 1600000006000);"
    "INSERT INTO checkpoints VALUES ('000000000000000000000000000000a1', 9,"
    " '/sp/9', 1, 90, 9, 1600000007000);";

static void test_schema_migrates_v1(void **state)
{
    fixture_t *fx = *state;
    eddy__meta_close(fx->m);
    fx->m = NULL;
    unlink(fx->path);
    raw_exec(fx->path, v1_fixture);

    fx->m = fx_open(fx);
    assert_int_equal(raw_int(fx->path, "SELECT max(version) FROM "
                                       "schema_version"),
                     2);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM schema_version"),
                     2);
    eddy__meta_job_t *j = get_job(fx->m, 1);
    assert_string_equal(j->mj_spec.js_name, "old job");
    assert_int_equal(j->mj_state, EDDY__JOB_RUNNING);
    assert_int_equal(j->mj_restarts, 1);
    assert_int_equal(j->mj_exceptions_total, 2); /* computed by migration */
    assert_int_equal(j->mj_checkpoints_total, 3);
    assert_int_equal(j->mj_start_ms, 1600000001000LL);
    eddy__meta_free(j);

    char id[33];
    job_id(id, 1);
    eddy__meta_checkpoint_t *c = NULL;
    OK(eddy__meta_checkpoint_latest(fx->m, id, false, &c, err));
    assert_int_equal(c->mc_id, 8);
    assert_string_equal(c->mc_path, "/ck/chk-8");
    eddy__meta_free(c);
    eddy__meta_transition_t **tr = NULL;
    size_t n = 0;
    OK(eddy__meta_transition_list(fx->m, id, &tr, &n, err));
    assert_int_equal(n, 2);
    assert_int_equal(tr[0]->mt_from, EDDY__JOB_CREATED);
    eddy__meta_free_array(tr, n);

    /* What version 2 added works on the migrated store. */
    OK(eddy__meta_savepoint_begin(fx->m, id, "r1", err));
    eddy__meta_exception_t e = {0, NULL, -1, "boom 3"};
    OK(eddy__meta_exception_add(fx->m, id, &e, err));
    j = get_job(fx->m, 1);
    assert_int_equal(j->mj_exceptions_total, 3);
    eddy__meta_free(j);

    /* Opening again migrates nothing more. */
    reopen(fx);
    assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM schema_version"),
                     2);
    eddy__meta_savepoint_t *s = NULL;
    OK(eddy__meta_savepoint_get(fx->m, id, "r1", &s, err));
    eddy__meta_free(s);
}

static void test_foreign_files(void **state)
{
    fixture_t *fx = *state;
    eddy__meta_t *m = NULL;
    char path[PATH_MAX + 32];

    /* Not a database at all. */
    snprintf(path, sizeof(path), "%s/notes.txt", fx->dir);
    static const char text[] = "these are not the tables you are looking for"
                               "\n and this line is long enough to matter\n";
    char page[4096];
    for (size_t i = 0; i < sizeof(page); i++) {
        page[i] = text[i % (sizeof(text) - 1)];
    }
    tu_write_file(path, page, sizeof(page));
    EXPECT_ERR(eddy__meta_open(path, &fx->opts, &m, err), EDDY_ERR_FORMAT,
               "is not a SQLite database");
    size_t len = 0;
    char *after = tu_read_file(path, &len);
    assert_int_equal(len, sizeof(page));
    assert_memory_equal(after, page, len); /* untouched */
    free(after);

    /* Another program's database: refused and not switched to WAL. */
    snprintf(path, sizeof(path), "%s/other.db", fx->dir);
    raw_exec(path, "CREATE TABLE accounts (id INTEGER, balance INTEGER);"
                   "INSERT INTO accounts VALUES (1, 100);");
    EXPECT_ERR(eddy__meta_open(path, &fx->opts, &m, err), EDDY_ERR_FORMAT,
               "not an eddy metadata store");
    char *mode = raw_text(path, "PRAGMA journal_mode");
    assert_string_equal(mode, "delete");
    free(mode);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master"), 1);

    /* Ours in shape but marked as someone else's. */
    snprintf(path, sizeof(path), "%s/appid.db", fx->dir);
    raw_exec(path, "PRAGMA application_id = 42;"
                   "CREATE TABLE schema_version (version INTEGER);"
                   "INSERT INTO schema_version VALUES (1);");
    EXPECT_ERR(eddy__meta_open(path, &fx->opts, &m, err), EDDY_ERR_FORMAT,
               "application id is 42");

    /* A missing directory. */
    snprintf(path, sizeof(path), "%s/no/such/dir/meta.db", fx->dir);
    EXPECT_ERR(eddy__meta_open(path, &fx->opts, &m, err), EDDY_ERR_IO,
               "No such file or directory");

    EXPECT_ERR(eddy__meta_open("postgresql://jm@db/eddy", &fx->opts, &m, err),
               EDDY_ERR_UNSUPPORTED, "PostgreSQL metadata store");
    EXPECT_ERR(eddy__meta_open("", &fx->opts, &m, err), EDDY_ERR_INVALID,
               "metadata.store is empty");
    assert_null(m);

    /* In memory, for the local mini-cluster and tests. */
    OK(eddy__meta_open(":memory:", NULL, &m, err));
    assert_string_equal(eddy__meta_backend_name(m), "sqlite");
    char id[33];
    job_id(id, 3);
    eddy__meta_job_spec_t s = spec_for(id, "mem");
    OK(eddy__meta_job_create(m, &s, err));
    eddy__meta_close(m);
    eddy__meta_close(NULL);
}

/* A damaged file is reported, not half read. */
static void test_corrupt_file(void **state)
{
    fixture_t *fx = *state;
    /* Enough rows for several pages of the jobs table. */
    char name[200];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    for (int i = 0; i < 150; i++) {
        create_job(fx->m, i, name);
    }
    eddy__meta_close(fx->m); /* checkpoints the WAL into the file */
    fx->m = NULL;
    int64_t pages = raw_int(fx->path, "PRAGMA page_count");
    int64_t psize = raw_int(fx->path, "PRAGMA page_size");
    assert_true(pages > 6);
    size_t len = 0;
    char *db = tu_read_file(fx->path, &len);
    assert_int_equal((int64_t)len, pages * psize);
    /* Scribble over every page but the first (the header and schema) and
     * schema_version's: what open reads anyway. The damage is only found
     * by checking the file (quick_check). */
    int64_t keep = raw_int(fx->path, "SELECT rootpage FROM sqlite_master "
                                     "WHERE name = 'schema_version'");
    for (int64_t p = 1; p < pages; p++) {
        if (p + 1 != keep) {
            memset(db + p * psize, 0x5a, 64);
        }
    }
    tu_write_file(fx->path, db, len);
    free(db);
    eddy__meta_t *m = NULL;
    eddy_error_t e = {0};
    int rc = eddy__meta_open(fx->path, &fx->opts, &m, &e);
    assert_null(m);
    if (rc != EDDY_ERR_FORMAT) {
        fail_msg("expected EDDY_ERR_FORMAT, got %s: %s", eddy_err_name(rc),
                 e.msg);
    }
    TU_ASSERT_CONTAINS(e.msg, fx->path);
    TU_ASSERT_CONTAINS(e.msg, "corrupt");
}

/* ---- concurrency ---- */

typedef struct holder {
    const char *path;
    int hold_ms;
    sqlite3 *db;
} holder_t;

static void *release_later(void *arg)
{
    holder_t *h = arg;
    tu_sleep_us((long)h->hold_ms * 1000);
    sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL);
    return NULL;
}

static void test_busy_timeout(void **state)
{
    fixture_t *fx = *state;
    create_job(fx->m, 1, "job");
    fx->opts.mo_busy_timeout_ms = 150;
    reopen(fx);

    /* Another process (here: connection) holds the write lock. */
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(fx->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
    char id[33];
    job_id(id, 1);
    uint64_t t0 = tu_now_ms();
    eddy_error_t e = {0};
    int rc =
        eddy__meta_job_set_state(fx->m, id, EDDY__JOB_RUNNING, NULL, NULL, &e);
    uint64_t waited = tu_now_ms() - t0;
    assert_int_equal(rc, EDDY_ERR_BUSY);
    assert_true(e.retriable);
    TU_ASSERT_CONTAINS(e.msg, "locked");
    assert_true(waited >= 100); /* it did wait, about the timeout */
    /* Readers are not blocked by a writer (WAL). */
    eddy__meta_job_t *j = get_job(fx->m, 1);
    assert_int_equal(j->mj_state, EDDY__JOB_CREATED);
    eddy__meta_free(j);
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);

    /* A lock released within the timeout is waited out. */
    fx->opts.mo_busy_timeout_ms = tu_timeout_ms(10000);
    reopen(fx);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
    holder_t h = {fx->path, 100, other};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, release_later, &h), 0);
    OK(eddy__meta_job_set_state(fx->m, id, EDDY__JOB_RUNNING, NULL, NULL, err));
    tu_join(th, 10000, "release_later");
    sqlite3_close(other);
    j = get_job(fx->m, 1);
    assert_int_equal(j->mj_state, EDDY__JOB_RUNNING);
    eddy__meta_free(j);
}

#define THREADS 4
#define ROUNDS 60

typedef struct worker {
    eddy__meta_t *m;
    int index;
    int failures;
    char msg[256];
} worker_t;

static void *hammer(void *arg)
{
    worker_t *w = arg;
    char id[33];
    job_id(id, w->index);
    eddy_error_t err = {0};
    eddy__meta_job_spec_t s = spec_for(id, "parallel");
    int rc = eddy__meta_job_create(w->m, &s, &err);
    rc = rc ? rc
            : eddy__meta_job_set_state(w->m, id, EDDY__JOB_RUNNING, NULL, NULL,
                                       &err);
    for (int r = 0; rc == 0 && r < ROUNDS; r++) {
        eddy__meta_exception_t e = {0, "t", w->index, "boom"};
        eddy__meta_job_t **v = NULL;
        size_t n = 0;
        eddy__meta_checkpoint_t c = {r + 1, "/ck", false, 1, 1, 0};
        if ((rc = eddy__meta_exception_add(w->m, id, &e, &err)) != 0 ||
            (rc = eddy__meta_job_set_state(w->m, id, EDDY__JOB_RESTARTING, NULL,
                                           NULL, &err)) != 0 ||
            (rc = eddy__meta_job_list(w->m, NULL, &v, &n, &err)) != 0 ||
            (rc = eddy__meta_checkpoint_add(w->m, id, &c, 2, &err)) != 0 ||
            (rc = eddy__meta_job_set_state(w->m, id, EDDY__JOB_RUNNING, NULL,
                                           NULL, &err)) != 0) {
            break;
        }
        eddy__meta_free_array(v, n);
    }
    if (rc != 0) {
        w->failures++;
        snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
    }
    return NULL;
}

static void test_threads(void **state)
{
    fixture_t *fx = *state;
    worker_t w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){.m = fx->m, .index = i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        tu_join(th[i], 60000, "hammer");
    }
    for (int i = 0; i < THREADS; i++) {
        if (w[i].failures) {
            fail_msg("worker %d: %s", i, w[i].msg);
        }
        eddy__meta_job_t *j = get_job(fx->m, i);
        assert_int_equal(j->mj_state, EDDY__JOB_RUNNING);
        assert_int_equal(j->mj_restarts, ROUNDS);
        assert_int_equal(j->mj_exceptions_total, ROUNDS);
        assert_int_equal(j->mj_checkpoints_total, ROUNDS);
        eddy__meta_free(j);
        char id[33];
        job_id(id, i);
        eddy__meta_transition_t **tr = NULL;
        size_t n = 0;
        OK(eddy__meta_transition_list(fx->m, id, &tr, &n, err));
        assert_int_equal(n, 2 + 2 * ROUNDS);
        eddy__meta_free_array(tr, n);
    }
}

/* ---- crashes ---- */

#define STEPS 12
#define CRASH_JOBS 8
#define CRASH_MAX_OPS 1000000

/* Operation i of the crash workload: deterministic, so the parent can
 * replay exactly the operations the child acknowledged. */
static int workload_op(eddy__meta_t *m, int i, eddy_error_t *err)
{
    int j = i / STEPS;
    char id[33], path[96], msg[64];
    job_id(id, j);
    snprintf(path, sizeof(path), "/ck/%d/chk-%d", j, i % STEPS);
    snprintf(msg, sizeof(msg), "op %d failed: 'quoted'", i);
    eddy__meta_checkpoint_t c = {i % STEPS, path, j % 2 == 1 && i % STEPS == 5,
                                 i,         i,    0};
    eddy__meta_exception_t e = {0, "map", j, msg};
    switch (i % STEPS) {
    case 0: {
        eddy__meta_job_spec_t s = spec_for(id, "crash 'test'");
        return eddy__meta_job_create(m, &s, err);
    }
    case 1:
        return eddy__meta_job_set_state(m, id, EDDY__JOB_RUNNING, "go", NULL,
                                        err);
    case 2:
    case 4:
    case 5:
    case 11:
        return eddy__meta_checkpoint_add(m, id, &c, 2, err);
    case 3:
        return eddy__meta_exception_add(m, id, &e, err);
    case 6:
        return eddy__meta_job_set_state(m, id, EDDY__JOB_FAILING, msg, NULL,
                                        err);
    case 7:
        return eddy__meta_job_set_state(m, id, EDDY__JOB_RESTARTING, NULL, NULL,
                                        err);
    case 8:
        return eddy__meta_job_set_state(m, id, EDDY__JOB_RUNNING, NULL, NULL,
                                        err);
    case 9:
        return eddy__meta_savepoint_begin(m, id, "req", err);
    default:
        return eddy__meta_savepoint_end(m, id, "req", EDDY__SAVEPOINT_COMPLETED,
                                        path, err);
    }
}

/* Everything the store holds, as text. */
static char *dump(eddy__meta_t *m)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    eddy__meta_job_t **jobs = NULL;
    size_t nj = 0;
    OK(eddy__meta_job_list(m, NULL, &jobs, &nj, err));
    for (size_t i = 0; i < nj; i++) {
        eddy__meta_job_t *j = jobs[i];
        const char *id = j->mj_spec.js_id;
        fprintf(
            f,
            "job %s %s %s %s %lld %d %lld %s %s %s %lld %lld %lld %d "
            "%lld %lld\n",
            id, j->mj_spec.js_name, j->mj_spec.js_artifact_path,
            j->mj_spec.js_artifact_sha256 ? j->mj_spec.js_artifact_sha256 : "-",
            (long long)j->mj_spec.js_artifact_size, j->mj_spec.js_parallelism,
            (long long)j->mj_spec.js_checkpoint_interval_ms,
            j->mj_spec.js_savepoint_path ? j->mj_spec.js_savepoint_path : "-",
            j->mj_spec.js_args, eddy__job_state_name(j->mj_state),
            (long long)j->mj_start_ms, (long long)j->mj_state_ms,
            (long long)j->mj_end_ms, j->mj_restarts,
            (long long)j->mj_exceptions_total,
            (long long)j->mj_checkpoints_total);
        eddy__meta_transition_t **tr = NULL;
        size_t n = 0;
        OK(eddy__meta_transition_list(m, id, &tr, &n, err));
        for (size_t k = 0; k < n; k++) {
            fprintf(f, " tr %lld %s %s %s\n", (long long)tr[k]->mt_time_ms,
                    eddy__job_state_name(tr[k]->mt_from),
                    eddy__job_state_name(tr[k]->mt_to), tr[k]->mt_reason);
        }
        eddy__meta_free_array(tr, n);
        eddy__meta_exception_t **ev = NULL;
        OK(eddy__meta_exception_list(m, id, &ev, &n, err));
        for (size_t k = 0; k < n; k++) {
            fprintf(f, " ex %lld %s %d %s\n", (long long)ev[k]->me_time_ms,
                    ev[k]->me_task ? ev[k]->me_task : "-", ev[k]->me_subtask,
                    ev[k]->me_message);
        }
        eddy__meta_free_array(ev, n);
        eddy__meta_checkpoint_t **cv = NULL;
        OK(eddy__meta_checkpoint_list(m, id, &cv, &n, err));
        for (size_t k = 0; k < n; k++) {
            fprintf(f, " ck %lld %s %d %lld %lld %lld\n",
                    (long long)cv[k]->mc_id, cv[k]->mc_path,
                    cv[k]->mc_savepoint, (long long)cv[k]->mc_size_bytes,
                    (long long)cv[k]->mc_duration_ms,
                    (long long)cv[k]->mc_time_ms);
        }
        eddy__meta_free_array(cv, n);
        eddy__meta_savepoint_t **sv = NULL;
        OK(eddy__meta_savepoint_list(m, id, &sv, &n, err));
        for (size_t k = 0; k < n; k++) {
            fprintf(f, " sp %s %s %s %s %lld %lld\n", sv[k]->ms_request_id,
                    eddy__savepoint_status_name(sv[k]->ms_status),
                    sv[k]->ms_path ? sv[k]->ms_path : "-",
                    sv[k]->ms_error ? sv[k]->ms_error : "-",
                    (long long)sv[k]->ms_created_ms,
                    (long long)sv[k]->ms_finished_ms);
        }
        eddy__meta_free_array(sv, n);
    }
    eddy__meta_free_array(jobs, nj);
    fclose(f);
    return buf;
}

/* A fresh in-memory store after the first `ops` operations. */
static char *replay(int ops)
{
    int64_t clock = T0;
    eddy__meta_options_t o;
    eddy__meta_options_init(&o);
    o.mo_clock_ms = fake_clock;
    o.mo_clock_arg = &clock;
    eddy__meta_t *m = NULL;
    OK(eddy__meta_open(":memory:", &o, &m, err));
    for (int i = 0; i < ops; i++) {
        OK(workload_op(m, i, err));
    }
    char *d = dump(m);
    eddy__meta_close(m);
    return d;
}

/* The child: runs the workload on `path`, writing "<i>\n" to fd `ack`
 * after operation i returned. Never returns. */
static void crash_child(const char *path, int ack)
{
    int64_t clock = T0;
    eddy__meta_options_t o;
    eddy__meta_options_init(&o);
    o.mo_clock_ms = fake_clock;
    o.mo_clock_arg = &clock;
    eddy__meta_t *m = NULL;
    eddy_error_t err = {0};
    if (eddy__meta_open(path, &o, &m, &err) != 0) {
        dprintf(ack, "E open: %s\n", err.msg);
        _exit(2);
    }
    /* Runs until killed: by the fault point, or by the parent. */
    for (int i = 0; i < CRASH_MAX_OPS; i++) {
        if (workload_op(m, i, &err) != 0) {
            dprintf(ack, "E op %d: %s\n", i, err.msg);
            _exit(2);
        }
        dprintf(ack, "%d\n", i);
    }
    eddy__meta_close(m);
    _exit(0);
}

/* Starts this binary as a crash child on `path`; returns its pid and the
 * read end of its acknowledgements. */
static pid_t spawn_child(const char *path, const char *fault, int *rfd)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        if (fault != NULL) {
            setenv("EDDY_FAULT", fault, 1);
        } else {
            unsetenv("EDDY_FAULT");
        }
        char fdarg[16];
        snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
        execl("/proc/self/exe", "test_meta_sqlite", "--crash-child", path,
              fdarg, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *rfd = p[0];
    return pid;
}

/* Reads acknowledgements until `stop_after` (or EOF); returns how many
 * operations the child acknowledged. */
static int read_acks(int fd, int stop_after, pid_t kill_pid)
{
    FILE *f = fdopen(fd, "r");
    char line[512];
    int acked = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (line[0] == 'E') {
            fail_msg("crash child failed: %s", line);
        }
        assert_int_equal(atoi(line), acked);
        acked++;
        if (acked == stop_after && kill_pid > 0) {
            kill(kill_pid, SIGKILL);
        }
    }
    fclose(f);
    return acked;
}

/* After a crash: the file passes SQLite's full check, and the store
 * equals one of the replays. */
static void check_after_crash(const char *path, int acked, bool maybe_one_more)
{
    char *ic = raw_text(path, "PRAGMA integrity_check");
    assert_string_equal(ic, "ok");
    free(ic);
    int64_t clock = T0 + 1000000000;
    eddy__meta_options_t o;
    eddy__meta_options_init(&o);
    o.mo_clock_ms = fake_clock;
    o.mo_clock_arg = &clock;
    eddy__meta_t *m = NULL;
    OK(eddy__meta_open(path, &o, &m, err));
    char *got = dump(m);
    char *want = replay(acked);
    if (strcmp(got, want) != 0) {
        char *want2 = maybe_one_more ? replay(acked + 1) : NULL;
        if (want2 == NULL || strcmp(got, want2) != 0) {
            fail_msg("store after the crash (%d acknowledged) is not the "
                     "replay:\n--- got\n%s--- want\n%s",
                     acked, got, want);
        }
        free(want2);
    }
    free(want);
    free(got);
    /* And it takes writes again. */
    char id[33];
    job_id(id, 500);
    eddy__meta_job_spec_t s = spec_for(id, "after");
    OK(eddy__meta_job_create(m, &s, err));
    eddy__meta_close(m);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM pragma_foreign_key_"
                                   "check"),
                     0);
}

/* Killed inside a transaction (statements run, commit not): exactly the
 * acknowledged operations are there, nothing of the one in flight. */
static void test_crash_inside_transaction(void **state)
{
    fixture_t *fx = *state;
    eddy__meta_close(fx->m);
    fx->m = NULL;
    /* Commit 1 creates the schema; later ones are operations 0, 1, ... of
     * every kind (create, transition, checkpoint with retention, ...). */
    static const int faults[] = {2, 3, 4, 5, 6, 8, 11, 12, 13, 20, 29};
    for (size_t k = 0; k < EDDY_ARRAY_SIZE(faults); k++) {
        char path[PATH_MAX + 32], fault[32];
        snprintf(path, sizeof(path), "%s/crash-%zu.db", fx->dir, k);
        snprintf(fault, sizeof(fault), "meta_commit:%d", faults[k]);
        int rfd;
        pid_t pid = spawn_child(path, fault, &rfd);
        int acked = read_acks(rfd, -1, 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
            fail_msg("child with %s was not killed (status %#x)", fault,
                     status);
        }
        assert_int_equal(acked, faults[k] - 2);
        check_after_crash(path, acked, false);
    }
}

/* Killed from outside at arbitrary moments. */
static void test_crash_random_kill(void **state)
{
    fixture_t *fx = *state;
    eddy__meta_close(fx->m);
    fx->m = NULL;
    uint64_t seed = 0x5eed;
    for (int k = 0; k < 10; k++) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/kill-%d.db", fx->dir, k);
        int stop = 1 + (int)(tu_rand(&seed) % (STEPS * CRASH_JOBS - 2));
        int rfd;
        pid_t pid = spawn_child(path, NULL, &rfd);
        int acked = read_acks(rfd, stop, pid);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        assert_true(acked >= stop);
        /* The operation after the last acknowledgement may have committed
         * before the kill landed. */
        check_after_crash(path, acked, true);
    }
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--crash-child") == 0) {
        crash_child(argv[2], atoi(argv[3]));
    }
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names_and_table),
        T(test_job_create_and_get),
        T(test_job_validation),
        T(test_set_state),
        T(test_transition_matrix),
        T(test_list_filters),
        T(test_reopen_resume),
        T(test_exceptions),
        T(test_exception_text_hygiene),
        T(test_checkpoints),
        T(test_savepoints),
        T(test_delete),
        T(test_hostile_strings),
        T(test_schema_newer_refused),
        T(test_schema_migrates_v1),
        T(test_foreign_files),
        T(test_corrupt_file),
        T(test_busy_timeout),
        T(test_threads),
        T(test_crash_inside_transaction),
        T(test_crash_random_kill),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
