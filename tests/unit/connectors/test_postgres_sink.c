/*
 * eddy — unit tests for the PostgreSQL sink (src/connectors/postgres_sink.c).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Against a real server: the binary starts a private PostgreSQL 15
 * (tests/pg_util.h) and stops it at the end, also when tests fail. Without
 * PostgreSQL server binaries it says so, runs the tests that need no server
 * and exits with 77, which ctest reports as skipped.
 *
 * The tests call the operator's hooks as the task would (open, process,
 * snapshot, checkpoint complete/abort, flush, end, close), encode snapshots
 * as the runtime does, "crash" an operator by closing it without the calls
 * that would have followed (its connection closes: an open transaction is
 * rolled back, a prepared one survives), and restore a new one from a chosen
 * checkpoint, possibly at another parallelism or under a new job id. Each
 * test asserts the exact contents of the table and which prepared
 * transactions are left.
 */
#include "test_util.h"

#include <stdatomic.h>

#include "checkpoint/checkpoint.h"
#include "common/bytes.h"
#include "eddy/runner.h"
#include "pg_util.h"
#include "runtime/runtime.h"

#define SKIP_CODE 77

static tu_pg_t g_pg;
static bool g_have_pg;

/* ------------------------------------------------------------------------ */
/* SQL helpers                                                              */
/* ------------------------------------------------------------------------ */

static void sqlf(const char *fmt, ...) EDDY_PRINTF_LIKE(1, 2);

static void sqlf(const char *fmt, ...)
{
    char sql[1024], msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    if (tu_pg_exec(g_pg.pg_conninfo, sql, msg, sizeof(msg)) != 0) {
        fail_msg("%s: %s", sql, msg);
    }
}

static char *query(const char *sql)
{
    char msg[512];
    char *rows = tu_pg_query(g_pg.pg_conninfo, sql, msg, sizeof(msg));
    if (rows == NULL) {
        fail_msg("%s: %s", sql, msg);
    }
    return rows;
}

#define ASSERT_ROWS(sql, expected)                                             \
    do {                                                                       \
        char *got_ = query(sql);                                               \
        if (strcmp(got_, (expected)) != 0) {                                   \
            fail_msg("%s:\n--- got ---\n%s--- expected ---\n%s", (sql), got_,  \
                     (expected));                                              \
        }                                                                      \
        free(got_);                                                            \
    } while (0)

/* The ids of the prepared transactions left, one per line, sorted. */
static char *prepared(void)
{
    return query("SELECT gid FROM pg_prepared_xacts ORDER BY gid");
}

static int nprepared(void)
{
    char *s = query("SELECT count(*) FROM pg_prepared_xacts");
    int n = atoi(s);
    free(s);
    return n;
}

/* Every test starts without prepared transactions (and so cannot fill
 * max_prepared_transactions for the next one). */
static int rollback_all_prepared(void **state)
{
    EDDY_UNUSED(state);
    if (!g_have_pg) {
        return 0;
    }
    char *gids = prepared();
    for (char *line = strtok(gids, "\n"); line != NULL;
         line = strtok(NULL, "\n")) {
        sqlf("ROLLBACK PREPARED '%s'", line);
    }
    free(gids);
    return 0;
}

#define NEED_PG()                                                              \
    do {                                                                       \
        if (!g_have_pg) {                                                      \
            skip();                                                            \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Operator harness                                                         */
/* ------------------------------------------------------------------------ */

static const char *const COLS[] = {"id", "name"};
static const char *const KEY[] = {"id"};

/* Options for a (id, name) table; values are CSV lines "1,a". */
static eddy_pg_sink_opts_t opts_for(const char *table)
{
    eddy_pg_sink_opts_t o = {0};
    o.conninfo = g_pg.pg_conninfo;
    o.table = table;
    o.columns = COLS;
    o.ncolumns = 2;
    return o;
}

static eddy_pg_sink_opts_t upsert_opts_for(const char *table, size_t batch)
{
    eddy_pg_sink_opts_t o = opts_for(table);
    o.key_columns = KEY;
    o.nkey_columns = 1;
    o.batch_rows = batch;
    return o;
}

typedef struct fx {
    eddy_env_t *env;
    eddy_stream_t *sink;
} fx_t;

/* A job (with its own job id) holding one sink with uid `uid`. */
static void fx_init(fx_t *f, const eddy_pg_sink_opts_t *o, bool checkpointing,
                    const char *uid)
{
    memset(f, 0, sizeof(*f));
    f->env = eddy_env_new();
    if (checkpointing) {
        eddy_env_enable_checkpointing(f->env, 1000);
    }
    eddy_stream_t *src = eddy_source_collection(f->env, NULL, 0);
    f->sink = eddy_uid(eddy_sink_postgres(src, o), uid);
    if (f->sink == NULL) {
        fail_msg("eddy_sink_postgres failed: %s", f->env->e_error.msg);
    }
}

static void fx_close(fx_t *f)
{
    eddy_env_destroy(f->env);
}

typedef struct sub {
    eddy__task_t task;
    eddy__op_t *ops[1];
    eddy__op_t op;
    eddy__op_restore_t *restore;
} sub_t;

/* Opens subtask `subtask` of `par`, restoring from `r` (taken over) when
 * not NULL. Returns oc_open's result. */
static int sub_open(fx_t *f, sub_t *s, int subtask, int par,
                    eddy__op_restore_t *r)
{
    memset(s, 0, sizeof(*s));
    eddy__op_t *op = &s->op;
    s->ops[0] = op;
    s->task.t_ops = s->ops;
    s->task.t_nops = 1;
    s->task.t_subtask = subtask;
    s->task.t_parallelism = par;
    s->task.t_name = "test";
    s->task.t_next_tick_ms = INT64_MAX;
    eddy__op_init(op, &s->task, f->sink);
    s->restore = r;
    op->op_restore = r;
    return op->op_class->oc_open(op);
}

static void sub_open_ok(fx_t *f, sub_t *s, int subtask, int par,
                        eddy__op_restore_t *r)
{
    if (sub_open(f, s, subtask, par, r) != 0) {
        fail_msg("oc_open failed: %s", s->op.op_errmsg);
    }
}

/* Closes the operator: after a clean end, or as a crash (no further calls
 * were made; the connection closes without a commit). */
static void sub_close(sub_t *s)
{
    eddy__op_t *op = &s->op;
    op->op_class->oc_close(op);
    eddy__op_release(op);
    eddy__op_restore_free(s->restore);
    s->restore = NULL;
}

static int sub_process(sub_t *s, const char *value)
{
    eddy_record_t rec = tu_str_rec(value);
    return s->op.op_class->oc_process(&s->op, &rec);
}

/* Sends CSV records, failing the test if the sink fails. */
static void sub_send(sub_t *s, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (sub_process(s, values[i]) != 0) {
            fail_msg("oc_process(%s) failed: %s", values[i], s->op.op_errmsg);
        }
    }
}

#define SEND(s, ...)                                                           \
    do {                                                                       \
        const char *const v_[] = {__VA_ARGS__};                                \
        sub_send((s), v_, EDDY_ARRAY_SIZE(v_));                                \
    } while (0)

/* Checkpoint `id`: oc_snapshot, then the bytes the runtime would write for
 * this subtask (free with bytes_del). */
static eddy__bytes_t *sub_snap(sub_t *s, int64_t id)
{
    eddy__op_snap_t *snap = eddy__op_snap_new(id, false);
    if (s->op.op_class->oc_snapshot(&s->op, snap) != 0) {
        fail_msg("oc_snapshot(%lld) failed: %s", (long long)id,
                 s->op.op_errmsg);
    }
    eddy__bytes_t *b = calloc(1, sizeof(*b));
    eddy__op_snap_encode(snap, b);
    eddy__op_snap_free(snap);
    return b;
}

static void bytes_del(eddy__bytes_t *b)
{
    if (b != NULL) {
        eddy__bytes_free(b);
        free(b);
    }
}

static void sub_complete(sub_t *s, int64_t id)
{
    if (s->op.op_class->oc_checkpoint_complete(&s->op, id) != 0) {
        fail_msg("oc_checkpoint_complete(%lld) failed: %s", (long long)id,
                 s->op.op_errmsg);
    }
}

/* Checkpoint `id` was aborted: the runtime calls the hook if there is one. */
static void sub_abort(sub_t *s, int64_t id)
{
    if (s->op.op_class->oc_checkpoint_abort != NULL &&
        s->op.op_class->oc_checkpoint_abort(&s->op, id) != 0) {
        fail_msg("oc_checkpoint_abort failed: %s", s->op.op_errmsg);
    }
}

static void sub_flush(sub_t *s)
{
    if (s->op.op_class->oc_flush(&s->op) != 0) {
        fail_msg("oc_flush failed: %s", s->op.op_errmsg);
    }
}

static void sub_end(sub_t *s)
{
    if (s->op.op_class->oc_end_input(&s->op) != 0) {
        fail_msg("oc_end_input failed: %s", s->op.op_errmsg);
    }
}

/* The restore of checkpoint `id` for `subtask` of `par` from the bytes
 * every old subtask wrote. */
static eddy__op_restore_t *restore_of(int64_t id, eddy__bytes_t **old, int nold,
                                      int subtask, int par)
{
    eddy__op_restore_t *r = NULL;
    eddy_error_t err = {0};
    TU_ASSERT_OK(eddy__op_restore_new(id, (const eddy__bytes_t *const *)old,
                                      nold, subtask, par, &r, &err),
                 &err);
    return r;
}

static eddy__op_restore_t *restore1(int64_t id, eddy__bytes_t *b)
{
    return restore_of(id, &b, 1, 0, 1);
}

static void make_table(const char *name, bool pk)
{
    sqlf("DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int%s, name text)", name,
         name, pk ? " PRIMARY KEY" : "");
}

/* ------------------------------------------------------------------------ */
/* Exactly-once: the two-phase protocol and every crash seam                */
/* ------------------------------------------------------------------------ */

static void test_eo_commits_on_complete(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("eo1", false);
    eddy_pg_sink_opts_t o = opts_for("eo1");
    fx_t f;
    fx_init(&f, &o, true, "s1");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a", "2,b");
    ASSERT_ROWS("SELECT * FROM eo1 ORDER BY id", "");
    eddy__bytes_t *b1 = sub_snap(&s, 1);
    /* Prepared under a self-describing id, invisible until complete. */
    char *gids = prepared();
    char expect[128];
    snprintf(expect, sizeof(expect), ":0:1:%s\n", eddy_env_job_id(f.env));
    TU_ASSERT_CONTAINS(gids, "eddy:s1.");
    TU_ASSERT_CONTAINS(gids, expect);
    free(gids);
    ASSERT_ROWS("SELECT * FROM eo1 ORDER BY id", "");
    /* The next transaction is open (streaming) while 1 commits: the commit
     * goes over the second connection. */
    SEND(&s, "3,c");
    sub_complete(&s, 1);
    ASSERT_ROWS("SELECT * FROM eo1 ORDER BY id", "1|a\n2|b\n");
    eddy__bytes_t *b2 = sub_snap(&s, 2);
    sub_complete(&s, 2);
    ASSERT_ROWS("SELECT * FROM eo1 ORDER BY id", "1|a\n2|b\n3|c\n");
    assert_int_equal(nprepared(), 0);
    /* A checkpoint without rows prepares nothing. */
    eddy__bytes_t *b3 = sub_snap(&s, 3);
    assert_int_equal(nprepared(), 0);
    sub_complete(&s, 3);
    sub_close(&s);
    bytes_del(b1);
    bytes_del(b2);
    bytes_del(b3);
    fx_close(&f);
}

/* Crash with rows sent but not prepared: they are gone with the
 * connection; the source replays them after the restore. */
static void test_eo_crash_before_prepare(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("eo2", false);
    eddy_pg_sink_opts_t o = opts_for("eo2");
    fx_t f;
    fx_init(&f, &o, true, "s2");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a", "2,b");
    eddy__bytes_t *b1 = sub_snap(&s, 1);
    sub_complete(&s, 1);
    SEND(&s, "3,c", "4,d");
    sub_flush(&s);
    sub_close(&s); /* crash */
    ASSERT_ROWS("SELECT * FROM eo2 ORDER BY id", "1|a\n2|b\n");
    assert_int_equal(nprepared(), 0);

    sub_open_ok(&f, &s, 0, 1, restore1(1, b1));
    ASSERT_ROWS("SELECT * FROM eo2 ORDER BY id", "1|a\n2|b\n");
    SEND(&s, "3,c", "4,d"); /* replayed */
    eddy__bytes_t *b2 = sub_snap(&s, 2);
    sub_complete(&s, 2);
    sub_close(&s);
    ASSERT_ROWS("SELECT * FROM eo2 ORDER BY id", "1|a\n2|b\n3|c\n4|d\n");
    assert_int_equal(nprepared(), 0);
    bytes_del(b1);
    bytes_del(b2);
    fx_close(&f);
}

/* Crash after PREPARE of a checkpoint that never completed: the restore
 * (from the previous checkpoint) rolls the orphan back. */
static void test_eo_crash_after_prepare(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("eo3", false);
    eddy_pg_sink_opts_t o = opts_for("eo3");
    fx_t f;
    fx_init(&f, &o, true, "s3");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a");
    eddy__bytes_t *b1 = sub_snap(&s, 1);
    sub_complete(&s, 1);
    SEND(&s, "2,b", "3,c");
    eddy__bytes_t *b2 = sub_snap(&s, 2);
    sub_close(&s); /* crash: checkpoint 2 never completes */
    assert_int_equal(nprepared(), 1);
    ASSERT_ROWS("SELECT * FROM eo3 ORDER BY id", "1|a\n");

    sub_open_ok(&f, &s, 0, 1, restore1(1, b1));
    assert_int_equal(nprepared(), 0);
    ASSERT_ROWS("SELECT * FROM eo3 ORDER BY id", "1|a\n");
    SEND(&s, "2,b", "3,c");
    eddy__bytes_t *b2b = sub_snap(&s, 2);
    sub_complete(&s, 2);
    sub_close(&s);
    ASSERT_ROWS("SELECT * FROM eo3 ORDER BY id", "1|a\n2|b\n3|c\n");
    assert_int_equal(nprepared(), 0);

    /* A fresh start (no checkpoint at all) rolls back the sink's prepared
     * transactions too: their rows will be produced again. */
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "9,z");
    bytes_del(sub_snap(&s, 3));
    sub_close(&s);
    assert_int_equal(nprepared(), 1);
    sub_open_ok(&f, &s, 0, 1, NULL);
    sub_close(&s);
    assert_int_equal(nprepared(), 0);
    ASSERT_ROWS("SELECT * FROM eo3 ORDER BY id", "1|a\n2|b\n3|c\n");
    bytes_del(b1);
    bytes_del(b2);
    bytes_del(b2b);
    fx_close(&f);
}

/* The gap: checkpoint 1 completed, the crash came before COMMIT PREPARED.
 * The restore commits it. */
static void test_eo_crash_between_complete_and_commit(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("eo4", false);
    eddy_pg_sink_opts_t o = opts_for("eo4");
    fx_t f;
    fx_init(&f, &o, true, "s4");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a", "2,b");
    eddy__bytes_t *b1 = sub_snap(&s, 1);
    SEND(&s, "3,c"); /* after the barrier: lost with the crash, replayed */
    sub_close(&s);   /* crash before the notification */
    ASSERT_ROWS("SELECT * FROM eo4 ORDER BY id", "");
    assert_int_equal(nprepared(), 1);

    sub_open_ok(&f, &s, 0, 1, restore1(1, b1));
    ASSERT_ROWS("SELECT * FROM eo4 ORDER BY id", "1|a\n2|b\n");
    assert_int_equal(nprepared(), 0);
    SEND(&s, "3,c");
    eddy__bytes_t *b2 = sub_snap(&s, 2);
    sub_complete(&s, 2);
    sub_close(&s);
    ASSERT_ROWS("SELECT * FROM eo4 ORDER BY id", "1|a\n2|b\n3|c\n");
    bytes_del(b1);
    bytes_del(b2);
    fx_close(&f);
}

/* Crash after COMMIT PREPARED: the restore finds nothing to commit and
 * writes nothing twice. */
static void test_eo_crash_after_commit(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("eo5", false);
    eddy_pg_sink_opts_t o = opts_for("eo5");
    fx_t f;
    fx_init(&f, &o, true, "s5");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a", "2,b");
    eddy__bytes_t *b1 = sub_snap(&s, 1);
    sub_complete(&s, 1);
    sub_close(&s); /* crash */
    ASSERT_ROWS("SELECT * FROM eo5 ORDER BY id", "1|a\n2|b\n");

    for (int round = 0; round < 2; round++) { /* and again */
        sub_open_ok(&f, &s, 0, 1, restore1(1, b1));
        sub_close(&s);
    }
    ASSERT_ROWS("SELECT * FROM eo5 ORDER BY id", "1|a\n2|b\n");
    assert_int_equal(nprepared(), 0);
    bytes_del(b1);
    fx_close(&f);
}

/* An aborted checkpoint's transaction stays prepared and is committed with
 * the next completed checkpoint, which also names it for a restore. */
static void test_eo_aborted_checkpoint(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("eo6", false);
    eddy_pg_sink_opts_t o = opts_for("eo6");
    fx_t f;
    fx_init(&f, &o, true, "s6");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a");
    eddy__bytes_t *b1 = sub_snap(&s, 1);
    sub_abort(&s, 1);
    SEND(&s, "2,b");
    eddy__bytes_t *b2 = sub_snap(&s, 2);
    assert_int_equal(nprepared(), 2);
    sub_complete(&s, 2);
    ASSERT_ROWS("SELECT * FROM eo6 ORDER BY id", "1|a\n2|b\n");
    assert_int_equal(nprepared(), 0);

    /* Same with a crash before checkpoint 4 is notified: its state names
     * both transactions. */
    SEND(&s, "3,c");
    eddy__bytes_t *b3 = sub_snap(&s, 3);
    sub_abort(&s, 3);
    SEND(&s, "4,d");
    eddy__bytes_t *b4 = sub_snap(&s, 4);
    sub_close(&s);
    assert_int_equal(nprepared(), 2);
    sub_open_ok(&f, &s, 0, 1, restore1(4, b4));
    sub_close(&s);
    ASSERT_ROWS("SELECT * FROM eo6 ORDER BY id", "1|a\n2|b\n3|c\n4|d\n");
    assert_int_equal(nprepared(), 0);
    bytes_del(b1);
    bytes_del(b2);
    bytes_del(b3);
    bytes_del(b4);
    fx_close(&f);
}

/* A restore touches only its own sink's transactions, and of those only
 * the ones of the old subtasks it owns (j % P == i). */
static void test_eo_orphans_are_scoped(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("eo7", false);
    sqlf("BEGIN; INSERT INTO eo7 VALUES (100, 'foreign'); "
         "PREPARE TRANSACTION 'other-app-1'");
    eddy_pg_sink_opts_t o = opts_for("eo7");
    o.txn_name = "seven";
    eddy_pg_sink_opts_t other = opts_for("eo7");
    other.txn_name = "seven-b"; /* a prefix of ours would be "seven:" */
    fx_t f, g;
    fx_init(&f, &o, true, "s7");
    fx_init(&g, &other, true, "s7b");
    sub_t s0, s1, t0;
    sub_open_ok(&f, &s0, 0, 2, NULL);
    sub_open_ok(&f, &s1, 1, 2, NULL);
    sub_open_ok(&g, &t0, 0, 1, NULL);
    SEND(&s0, "1,a");
    SEND(&s1, "2,b");
    SEND(&t0, "3,c");
    bytes_del(sub_snap(&s0, 1));
    bytes_del(sub_snap(&s1, 1));
    bytes_del(sub_snap(&t0, 1));
    sub_close(&s0);
    sub_close(&s1);
    sub_close(&t0);
    assert_int_equal(nprepared(), 4);

    /* Subtask 0 of a restarted job (no checkpoint): only its own orphan. */
    sub_open_ok(&f, &s0, 0, 2, NULL);
    char *gids = prepared();
    assert_null(strstr(gids, "eddy:seven:0:"));
    TU_ASSERT_CONTAINS(gids, "eddy:seven:1:");
    TU_ASSERT_CONTAINS(gids, "eddy:seven-b:0:");
    TU_ASSERT_CONTAINS(gids, "other-app-1");
    free(gids);
    sub_open_ok(&f, &s1, 1, 2, NULL);
    gids = prepared();
    assert_null(strstr(gids, "eddy:seven:"));
    TU_ASSERT_CONTAINS(gids, "eddy:seven-b:0:");
    TU_ASSERT_CONTAINS(gids, "other-app-1");
    free(gids);
    sub_close(&s0);
    sub_close(&s1);
    sqlf("COMMIT PREPARED 'other-app-1'");
    ASSERT_ROWS("SELECT * FROM eo7 ORDER BY id", "100|foreign\n");
    fx_close(&f);
    fx_close(&g);
}

/* Old subtasks 0 and 1 prepared checkpoint 1 and crashed before the
 * notification; subtask 0 had also prepared checkpoint 2. A new job (new
 * job id) restores checkpoint 1 with parallelism 1: it commits both
 * transactions of checkpoint 1 and rolls back the orphan. */
static void test_eo_rescale_restore(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("eo8", false);
    eddy_pg_sink_opts_t o = opts_for("eo8");
    fx_t f;
    fx_init(&f, &o, true, "s8");
    sub_t s0, s1;
    sub_open_ok(&f, &s0, 0, 2, NULL);
    sub_open_ok(&f, &s1, 1, 2, NULL);
    SEND(&s0, "1,a", "3,c");
    SEND(&s1, "2,b", "4,d");
    eddy__bytes_t *old[2] = {sub_snap(&s0, 1), sub_snap(&s1, 1)};
    SEND(&s0, "5,e");
    bytes_del(sub_snap(&s0, 2));
    sub_close(&s0);
    sub_close(&s1);
    assert_int_equal(nprepared(), 3);
    fx_close(&f);

    fx_t g;
    fx_init(&g, &o, true, "s8");
    sub_t n0;
    sub_open_ok(&g, &n0, 0, 1, restore_of(1, old, 2, 0, 1));
    ASSERT_ROWS("SELECT * FROM eo8 ORDER BY id", "1|a\n2|b\n3|c\n4|d\n");
    assert_int_equal(nprepared(), 0);
    SEND(&n0, "5,e");
    bytes_del(sub_snap(&n0, 2));
    sub_complete(&n0, 2);
    sub_close(&n0);
    ASSERT_ROWS("SELECT * FROM eo8 ORDER BY id", "1|a\n2|b\n3|c\n4|d\n5|e\n");

    /* 1 -> 2: the transaction of old subtask 0 goes to new subtask 0 only;
     * subtask 1 has nothing to do. */
    sub_open_ok(&g, &n0, 0, 1, NULL);
    SEND(&n0, "6,f");
    eddy__bytes_t *one = sub_snap(&n0, 3);
    sub_close(&n0);
    sub_t m0, m1;
    sub_open_ok(&g, &m1, 1, 2, restore_of(3, &one, 1, 1, 2));
    assert_int_equal(nprepared(), 1);
    sub_open_ok(&g, &m0, 0, 2, restore_of(3, &one, 1, 0, 2));
    assert_int_equal(nprepared(), 0);
    sub_close(&m0);
    sub_close(&m1);
    ASSERT_ROWS("SELECT * FROM eo8 ORDER BY id",
                "1|a\n2|b\n3|c\n4|d\n5|e\n6|f\n");
    bytes_del(old[0]);
    bytes_del(old[1]);
    bytes_del(one);
    fx_close(&g);
}

/* End of input: everything is committed at once, prepared transactions of
 * checkpoints not yet complete included; a checkpoint after that finds
 * nothing to do. */
static void test_eo_end_of_input(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("eo9", false);
    eddy_pg_sink_opts_t o = opts_for("eo9");
    fx_t f;
    fx_init(&f, &o, true, "s9");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a", "2,b");
    bytes_del(sub_snap(&s, 1));
    SEND(&s, "3,c");
    ASSERT_ROWS("SELECT * FROM eo9 ORDER BY id", "");
    sub_end(&s);
    ASSERT_ROWS("SELECT * FROM eo9 ORDER BY id", "1|a\n2|b\n3|c\n");
    assert_int_equal(nprepared(), 0);
    eddy__bytes_t *b2 = sub_snap(&s, 2);
    sub_complete(&s, 2);
    sub_close(&s);
    assert_int_equal(nprepared(), 0);
    /* Its state names nothing: a restore from it writes nothing again. */
    sub_open_ok(&f, &s, 0, 1, restore1(2, b2));
    sub_close(&s);
    ASSERT_ROWS("SELECT * FROM eo9 ORDER BY id", "1|a\n2|b\n3|c\n");
    bytes_del(b2);
    fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Upserts                                                                  */
/* ------------------------------------------------------------------------ */

static void test_upsert_last_row_wins(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("up1", true);
    sqlf("INSERT INTO up1 VALUES (2, 'old'), (7, 'seven')");
    eddy_pg_sink_opts_t o = upsert_opts_for("up1", 0);
    fx_t f;
    fx_init(&f, &o, true, "u1");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    /* Twice the same key in one statement, and a key already there. */
    SEND(&s, "1,a", "2,b", "1,c", "3,", "3,d");
    bytes_del(sub_snap(&s, 1));
    ASSERT_ROWS("SELECT * FROM up1 ORDER BY id", "2|old\n7|seven\n");
    sub_complete(&s, 1);
    ASSERT_ROWS("SELECT * FROM up1 ORDER BY id", "1|c\n2|b\n3|d\n7|seven\n");
    sub_close(&s);
    fx_close(&f);
}

/* With one row per statement, every upsert after a barrier would be sent at
 * once; it must wait until the prepared transaction that locked the key
 * commits (otherwise oc_process would block forever on the row lock). */
static void test_upsert_waits_for_pending_commit(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("up2", true);
    eddy_pg_sink_opts_t o = upsert_opts_for("up2", 1);
    fx_t f;
    fx_init(&f, &o, true, "u2");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a", "2,x");
    bytes_del(sub_snap(&s, 1));
    SEND(&s, "2,y", "2,z", "3,w"); /* key 2 is locked by checkpoint 1 */
    sub_flush(&s);
    sub_complete(&s, 1);
    ASSERT_ROWS("SELECT * FROM up2 ORDER BY id", "1|a\n2|x\n");
    bytes_del(sub_snap(&s, 2));
    sub_complete(&s, 2);
    ASSERT_ROWS("SELECT * FROM up2 ORDER BY id", "1|a\n2|z\n3|w\n");
    sub_close(&s);
    fx_close(&f);
}

/* A barrier while rows wait (checkpoint 1 aborted): they go into
 * checkpoint 2, and a restore from it writes them before anything else. */
static void test_upsert_waiting_rows_in_checkpoint(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("up3", true);
    eddy_pg_sink_opts_t o = upsert_opts_for("up3", 2);
    fx_t f;
    fx_init(&f, &o, true, "u3");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a");
    eddy__bytes_t *b1 = sub_snap(&s, 1);
    sub_abort(&s, 1);
    SEND(&s, "1,b", "2,b", "3,"); /* a full batch and one row */
    eddy__bytes_t *b2 = sub_snap(&s, 2);
    assert_int_equal(nprepared(), 1); /* nothing new to prepare */

    /* Without a crash: completing 2 commits 1 and lets the rows go. */
    sub_complete(&s, 2);
    ASSERT_ROWS("SELECT * FROM up3 ORDER BY id", "1|a\n");
    bytes_del(sub_snap(&s, 3));
    sub_complete(&s, 3);
    ASSERT_ROWS("SELECT * FROM up3 ORDER BY id", "1|b\n2|b\n3|NULL\n");
    sub_close(&s);

    /* Again from the start, crashing after checkpoint 2. */
    sqlf("TRUNCATE up3");
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a");
    bytes_del(b1);
    bytes_del(b2);
    b1 = sub_snap(&s, 1);
    SEND(&s, "1,b", "2,b", "3,");
    b2 = sub_snap(&s, 2);
    sub_close(&s);
    ASSERT_ROWS("SELECT * FROM up3 ORDER BY id", "");
    sub_open_ok(&f, &s, 0, 1, restore1(2, b2));
    SEND(&s, "3,c"); /* replayed after checkpoint 2: comes after */
    bytes_del(sub_snap(&s, 3));
    sub_complete(&s, 3);
    sub_close(&s);
    ASSERT_ROWS("SELECT * FROM up3 ORDER BY id", "1|b\n2|b\n3|c\n");
    assert_int_equal(nprepared(), 0);
    bytes_del(b1);
    bytes_del(b2);
    fx_close(&f);
}

/* End of input after an aborted checkpoint: the pending transaction is
 * committed first, then the rows that waited for it. */
static void test_upsert_end_after_abort(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("up4", true);
    eddy_pg_sink_opts_t o = upsert_opts_for("up4", 1);
    fx_t f;
    fx_init(&f, &o, true, "u4");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a");
    bytes_del(sub_snap(&s, 1));
    sub_abort(&s, 1);
    SEND(&s, "1,b", "2,c");
    sub_end(&s);
    sub_close(&s);
    ASSERT_ROWS("SELECT * FROM up4 ORDER BY id", "1|b\n2|c\n");
    assert_int_equal(nprepared(), 0);
    fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* At-least-once and no checkpointing                                       */
/* ------------------------------------------------------------------------ */

static void test_alo_commits_at_barrier(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("al1", false);
    eddy_pg_sink_opts_t o = opts_for("al1");
    o.guarantee = EDDY_PG_AT_LEAST_ONCE;
    fx_t f;
    fx_init(&f, &o, true, "a1");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a", "2,b");
    sub_flush(&s);
    ASSERT_ROWS("SELECT * FROM al1 ORDER BY id", "");
    eddy__bytes_t *b1 = sub_snap(&s, 1);
    ASSERT_ROWS("SELECT * FROM al1 ORDER BY id", "1|a\n2|b\n");
    assert_int_equal(nprepared(), 0);
    SEND(&s, "3,c");
    sub_close(&s); /* crash: 3 is replayed */
    sub_open_ok(&f, &s, 0, 1, restore1(1, b1));
    SEND(&s, "3,c");
    sub_end(&s);
    bytes_del(sub_snap(&s, 2));
    sub_close(&s);
    ASSERT_ROWS("SELECT * FROM al1 ORDER BY id", "1|a\n2|b\n3|c\n");
    bytes_del(b1);
    fx_close(&f);
}

static void test_no_checkpointing_commits_batches(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("nc1", false);
    eddy_pg_sink_opts_t o = opts_for("nc1");
    o.batch_rows = 2;
    fx_t f;
    fx_init(&f, &o, false, "n1");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a", "2,b", "3,c");
    ASSERT_ROWS("SELECT * FROM nc1 ORDER BY id", "1|a\n2|b\n");
    sub_flush(&s); /* the task is idle */
    ASSERT_ROWS("SELECT * FROM nc1 ORDER BY id", "1|a\n2|b\n3|c\n");
    SEND(&s, "4,d");
    sub_end(&s);
    ASSERT_ROWS("SELECT * FROM nc1 ORDER BY id", "1|a\n2|b\n3|c\n4|d\n");
    sub_close(&s);
    assert_int_equal(nprepared(), 0);
    fx_close(&f);

    make_table("nc2", true);
    o = upsert_opts_for("nc2", 2);
    fx_init(&f, &o, false, "n2");
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a", "1,b", "2,c", "3,d");
    sub_flush(&s);
    ASSERT_ROWS("SELECT * FROM nc2 ORDER BY id", "1|b\n2|c\n3|d\n");
    SEND(&s, "3,e");
    sub_end(&s);
    sub_close(&s);
    ASSERT_ROWS("SELECT * FROM nc2 ORDER BY id", "1|b\n2|c\n3|e\n");
    fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Row formats                                                              */
/* ------------------------------------------------------------------------ */

static void test_csv_values(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    sqlf("DROP TABLE IF EXISTS fm1; CREATE TABLE fm1 (id int, a text, "
         "b text)");
    static const char *const cols[] = {"id", "a", "b"};
    eddy_pg_sink_opts_t o = opts_for("fm1");
    o.columns = cols;
    o.ncolumns = 3;
    fx_t f;
    fx_init(&f, &o, false, "f1");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,\"x,y\",", "2,\"\",plain", "3,\"tab\there\",\"nl\nbs\\\"\"q\"",
         ",,");
    sub_end(&s);
    sub_close(&s);
    ASSERT_ROWS("SELECT coalesce(id::text, 'NULL'), "
                "replace(replace(coalesce(a, 'NULL'), E'\\t', '<TAB>'), "
                "E'\\n', '<NL>'), "
                "replace(replace(coalesce(b, 'NULL'), E'\\t', '<TAB>'), "
                "E'\\n', '<NL>') FROM fm1 ORDER BY id",
                "1|x,y|NULL\n2||plain\n3|tab<TAB>here|nl<NL>bs\\\"q\n"
                "NULL|NULL|NULL\n");
    fx_close(&f);
}

static void test_json_values(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    sqlf("DROP TABLE IF EXISTS fm2; CREATE TABLE fm2 (id int, name text, "
         "tags jsonb, price numeric, ok boolean)");
    static const char *const cols[] = {"id", "name", "tags", "price", "ok"};
    eddy_pg_sink_opts_t o = opts_for("fm2");
    o.columns = cols;
    o.ncolumns = 5;
    o.format = EDDY_PG_JSON;
    fx_t f;
    fx_init(&f, &o, false, "f2");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s,
         "{\"id\":1,\"name\":\"a\\tb\",\"tags\":[\"x\",{\"k\":1}],"
         "\"price\":0.1,\"ok\":true,\"extra\":5}",
         "{\"id\":2,\"name\":null}");
    sub_end(&s);
    sub_close(&s);
    ASSERT_ROWS("SELECT id, replace(name, E'\\t', '<TAB>'), tags, price, ok "
                "FROM fm2 ORDER BY id",
                "1|a<TAB>b|[\"x\", {\"k\": 1}]|0.1|t\n2|NULL|NULL|NULL|NULL\n");

    sub_open_ok(&f, &s, 0, 1, NULL);
    assert_int_equal(sub_process(&s, "[1,2]"), EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(s.op.op_errmsg, "record \"[1,2]\" is not a JSON object");
    sub_close(&s);
    sub_open_ok(&f, &s, 0, 1, NULL);
    assert_int_equal(sub_process(&s, "{\"id\":"), EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(s.op.op_errmsg, "is not a JSON object: ");
    sub_close(&s);
    fx_close(&f);
}

/* A to_row function: "id name" with the name taken from inside the record
 * (explicit lengths), and a failure for negative ids. */
static int space_row(eddy_ctx_t *ctx, const eddy_record_t *in,
                     const char **values, size_t *lengths, void *opaque)
{
    EDDY_UNUSED(opaque);
    const char *v = in->value;
    const char *sp = memchr(v, ' ', in->value_len);
    if (sp == NULL || v[0] == '-') {
        return eddy_ctx_fail(ctx, "cannot make a row of '%.*s'",
                             (int)in->value_len, v);
    }
    values[0] = v;
    lengths[0] = (size_t)(sp - v);
    values[1] = sp + 1;
    lengths[1] = in->value_len - (size_t)(sp - v) - 1;
    return 0;
}

static void test_to_row(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("fm3", false);
    eddy_pg_sink_opts_t o = opts_for("fm3");
    o.to_row = space_row;
    fx_t f;
    fx_init(&f, &o, false, "f3");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1 one", "2 two words");
    sub_end(&s);
    sub_close(&s);
    ASSERT_ROWS("SELECT * FROM fm3 ORDER BY id", "1|one\n2|two words\n");
    fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

static int nul_row(eddy_ctx_t *ctx, const eddy_record_t *in,
                   const char **values, size_t *lengths, void *opaque)
{
    EDDY_UNUSED(ctx);
    EDDY_UNUSED(in);
    EDDY_UNUSED(opaque);
    values[0] = "1";
    values[1] = "a\0b";
    lengths[1] = 3;
    return 0;
}

static void test_bad_rows_fail(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("er1", false);
    eddy_pg_sink_opts_t o = opts_for("er1");
    fx_t f;
    fx_init(&f, &o, true, "e1");
    sub_t s;

    sub_open_ok(&f, &s, 0, 1, NULL);
    assert_int_equal(sub_process(&s, "1,a,b"), EDDY_ERR_FORMAT);
    assert_string_equal(s.op.op_errmsg,
                        "record \"1,a,b\" is not a CSV line of 2 fields: "
                        "more fields than columns");
    sub_close(&s);
    sub_open_ok(&f, &s, 0, 1, NULL);
    assert_int_equal(sub_process(&s, "1"), EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(s.op.op_errmsg, "fewer fields than columns");
    sub_close(&s);
    sub_open_ok(&f, &s, 0, 1, NULL);
    assert_int_equal(sub_process(&s, "1,\"a"), EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(s.op.op_errmsg, "an unterminated quoted field");
    sub_close(&s);

    /* A value the column rejects: the server's message, with the column. */
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a", "x,b");
    eddy__op_snap_t *snap = eddy__op_snap_new(1, false);
    assert_int_equal(s.op.op_class->oc_snapshot(&s.op, snap),
                     EDDY_ERR_EXTERNAL);
    eddy__op_snap_free(snap);
    TU_ASSERT_CONTAINS(s.op.op_errmsg, "writing to table er1 failed: invalid "
                                       "input syntax for type integer: \"x\"");
    TU_ASSERT_CONTAINS(s.op.op_errmsg, "column id");
    char where[64];
    snprintf(where, sizeof(where),
             "PostgreSQL at 127.0.0.1:%d: ", g_pg.pg_port);
    TU_ASSERT_CONTAINS(s.op.op_errmsg, where);
    sub_close(&s);
    fx_close(&f);
    ASSERT_ROWS("SELECT * FROM er1", "");

    o.to_row = space_row;
    fx_init(&f, &o, true, "e1");
    sub_open_ok(&f, &s, 0, 1, NULL);
    assert_int_equal(sub_process(&s, "-1 x"), EDDY_ERR_USER);
    assert_string_equal(s.op.op_errmsg, "cannot make a row of '-1 x'");
    sub_close(&s);
    fx_close(&f);

    o.to_row = nul_row;
    fx_init(&f, &o, true, "e1");
    sub_open_ok(&f, &s, 0, 1, NULL);
    assert_int_equal(sub_process(&s, "x"), EDDY_ERR_FORMAT);
    assert_string_equal(s.op.op_errmsg,
                        "the value of column 'name' contains a NUL byte, "
                        "which PostgreSQL text cannot hold");
    sub_close(&s);
    fx_close(&f);
}

static void test_open_errors(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    fx_t f;
    sub_t s;
    char buf[256];

    /* Nothing listens on port 1. */
    eddy_pg_sink_opts_t o = opts_for("nope");
    o.conninfo = "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=5";
    fx_init(&f, &o, true, "o1");
    assert_int_equal(sub_open(&f, &s, 0, 1, NULL), EDDY_ERR_EXTERNAL);
    TU_ASSERT_CONTAINS(s.op.op_errmsg,
                       "cannot connect to PostgreSQL at 127.0.0.1:1: ");
    sub_close(&s);
    fx_close(&f);

    o = opts_for("no_such_table");
    fx_init(&f, &o, true, "o2");
    assert_int_equal(sub_open(&f, &s, 0, 1, NULL), EDDY_ERR_EXTERNAL);
    TU_ASSERT_CONTAINS(s.op.op_errmsg,
                       "relation \"no_such_table\" does not exist");
    sub_close(&s);
    fx_close(&f);

    sqlf("DROP TABLE IF EXISTS er2; CREATE TABLE er2 (id int, other text)");
    o = opts_for("er2");
    fx_init(&f, &o, true, "o3");
    assert_int_equal(sub_open(&f, &s, 0, 1, NULL), EDDY_ERR_EXTERNAL);
    TU_ASSERT_CONTAINS(s.op.op_errmsg, "column \"name\" does not exist");
    sub_close(&s);
    fx_close(&f);

    /* Upsert keys without a unique constraint. */
    make_table("er3", false);
    o = upsert_opts_for("er3", 0);
    fx_init(&f, &o, true, "o4");
    assert_int_equal(sub_open(&f, &s, 0, 1, NULL), EDDY_ERR_EXTERNAL);
    snprintf(buf, sizeof(buf), "%s", s.op.op_errmsg);
    TU_ASSERT_CONTAINS(buf, "there is no unique or exclusion constraint");
    sub_close(&s);
    fx_close(&f);
}

/* A prepared transaction that disappears before its commit (rolled back by
 * hand, or by another job with the same name) fails the job; malformed
 * state fails the restore. */
static void test_state_and_commit_errors(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("er5", false);
    eddy_pg_sink_opts_t o = opts_for("er5");
    o.txn_name = "gone";
    fx_t f;
    fx_init(&f, &o, true, "g1");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a");
    bytes_del(sub_snap(&s, 1));
    char *gid = prepared();
    gid[strcspn(gid, "\n")] = '\0';
    sqlf("ROLLBACK PREPARED '%s'", gid);
    assert_int_equal(s.op.op_class->oc_checkpoint_complete(&s.op, 1),
                     EDDY_ERR_EXTERNAL);
    char expect[256];
    snprintf(expect, sizeof(expect),
             "prepared transaction '%s' vanished before its commit", gid);
    TU_ASSERT_CONTAINS(s.op.op_errmsg, expect);
    free(gid);
    sub_close(&s);

    eddy__op_snap_t *snap = eddy__op_snap_new(3, false);
    eddy__op_snap_list_add(snap, "postgres.sink", EDDY__OPLIST_UNION, "\x09",
                           1);
    eddy__bytes_t *b = calloc(1, sizeof(*b));
    eddy__op_snap_encode(snap, b);
    eddy__op_snap_free(snap);
    assert_int_equal(sub_open(&f, &s, 0, 1, restore1(3, b)), EDDY_ERR_FORMAT);
    assert_string_equal(s.op.op_errmsg,
                        "malformed PostgreSQL sink state in checkpoint 3: "
                        "unknown element");
    sub_close(&s);
    bytes_del(b);
    fx_close(&f);
}

static void test_connection_loss(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("er4", false);
    eddy_pg_sink_opts_t o = opts_for("er4");
    o.txn_name = "lost";
    fx_t f;
    fx_init(&f, &o, true, "l1");
    sub_t s;
    sub_open_ok(&f, &s, 0, 1, NULL);
    SEND(&s, "1,a");
    sqlf("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
         "application_name = 'eddy/lost/0'");
    eddy__op_snap_t *snap = eddy__op_snap_new(1, false);
    int rc = s.op.op_class->oc_snapshot(&s.op, snap);
    eddy__op_snap_free(snap);
    assert_int_equal(rc, EDDY_ERR_EXTERNAL);
    char expect[128];
    snprintf(expect, sizeof(expect),
             "lost the connection to PostgreSQL at 127.0.0.1:%d while ",
             g_pg.pg_port);
    TU_ASSERT_CONTAINS(s.op.op_errmsg, expect);
    sub_close(&s);
    fx_close(&f);
}

/* A server without prepared transactions: exactly-once says so at start,
 * at-least-once works. */
static void test_no_prepared_transactions(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    tu_pg_t pg0;
    char msg[512];
    tu_pg_opts_t po = {.max_prepared_transactions = 0};
    if (tu_pg_start(&pg0, &po, msg, sizeof(msg)) != TU_PG_OK) {
        fail_msg("second server: %s", msg);
    }
    if (tu_pg_exec(pg0.pg_conninfo, "CREATE TABLE z (id int, name text)", msg,
                   sizeof(msg)) != 0) {
        tu_pg_stop(&pg0);
        fail_msg("%s", msg);
    }
    eddy_pg_sink_opts_t o = opts_for("z");
    o.conninfo = pg0.pg_conninfo;
    fx_t f;
    sub_t s;
    fx_init(&f, &o, true, "z1");
    int rc = sub_open(&f, &s, 0, 1, NULL);
    snprintf(msg, sizeof(msg), "%s", s.op.op_errmsg);
    sub_close(&s);
    fx_close(&f);

    o.guarantee = EDDY_PG_AT_LEAST_ONCE;
    fx_init(&f, &o, true, "z2");
    int rc2 = sub_open(&f, &s, 0, 1, NULL);
    if (rc2 == 0) {
        SEND(&s, "1,a");
        bytes_del(sub_snap(&s, 1));
    }
    sub_close(&s);
    fx_close(&f);
    char *rows = tu_pg_query(pg0.pg_conninfo, "SELECT * FROM z", NULL, 0);
    tu_pg_stop(&pg0);

    assert_int_equal(rc, EDDY_ERR_EXTERNAL);
    char expect[256];
    snprintf(expect, sizeof(expect),
             "PostgreSQL at 127.0.0.1:%d has max_prepared_transactions = 0: "
             "exactly-once needs it above 0",
             pg0.pg_port);
    TU_ASSERT_CONTAINS(msg, expect);
    assert_int_equal(rc2, 0);
    assert_non_null(rows);
    assert_string_equal(rows, "1|a\n");
    free(rows);
}

static void expect_build_error(const eddy_pg_sink_opts_t *o, const char *msg)
{
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *src = eddy_source_collection(env, NULL, 0);
    assert_null(eddy_sink_postgres(src, o));
    assert_string_equal(env->e_error.msg, msg);
    eddy_env_destroy(env);
}

static void test_options_are_checked(void **state)
{
    EDDY_UNUSED(state);
    static const char *const dup[] = {"id", "id"};
    static const char *const bad_key[] = {"nope"};
    eddy_pg_sink_opts_t o = {0};
    expect_build_error(NULL, "eddy_sink_postgres: opts is NULL");
    expect_build_error(&o, "eddy_sink_postgres: conninfo is NULL");
    o.conninfo = "host=localhost port";
    expect_build_error(&o, "eddy_sink_postgres: bad conninfo: missing \"=\" "
                           "after \"port\" in connection info string");
    o.conninfo = "postgresql://u:secret@h/db";
    expect_build_error(&o, "eddy_sink_postgres: no table given");
    o.table = "t";
    expect_build_error(&o, "eddy_sink_postgres: no columns given");
    o.columns = dup;
    o.ncolumns = 2;
    expect_build_error(&o, "eddy_sink_postgres: column 'id' is given twice");
    o.columns = COLS;
    o.key_columns = bad_key;
    o.nkey_columns = 1;
    expect_build_error(&o, "eddy_sink_postgres: key column 'nope' is not "
                           "among the columns");
    o.nkey_columns = 0;
    o.guarantee = 7;
    expect_build_error(&o, "eddy_sink_postgres: guarantee must be "
                           "EDDY_PG_EXACTLY_ONCE or EDDY_PG_AT_LEAST_ONCE");
    o.guarantee = EDDY_PG_EXACTLY_ONCE;
    o.format = 9;
    expect_build_error(&o, "eddy_sink_postgres: format must be EDDY_PG_CSV "
                           "or EDDY_PG_JSON");
    o.format = EDDY_PG_CSV;
    o.txn_name = "a:b";
    expect_build_error(&o, "eddy_sink_postgres: txn_name must be 1-64 "
                           "characters of [A-Za-z0-9_.-]");
    o.txn_name = NULL;
    eddy_env_t *env = eddy_env_new();
    assert_non_null(
        eddy_sink_postgres(eddy_source_collection(env, NULL, 0), &o));
    assert_null(eddy_sink_postgres(NULL, &o)); /* NULL in, NULL out */
    eddy_env_destroy(env);
}

/* ------------------------------------------------------------------------ */
/* Whole jobs                                                               */
/* ------------------------------------------------------------------------ */

static int gen_csv(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                   void *opaque)
{
    EDDY_UNUSED(opaque);
    char *buf = eddy_ctx_scratch(ctx, 32);
    int n = snprintf(buf, 32, "%llu,v%llu", (unsigned long long)index,
                     (unsigned long long)(index % 7));
    *out = (eddy_record_t){NULL, 0, buf, (size_t)n, EDDY_TS_NONE};
    return 0;
}

/* Expected "id|v<id % 7>\n" lines for ids 0..n-1, as rows come back
 * ordered by id. */
static char *expected_rows(int n)
{
    char *s = malloc((size_t)n * 24 + 1), *p = s;
    for (int i = 0; i < n; i++) {
        p += sprintf(p, "%d|v%d\n", i, i % 7);
    }
    *p = '\0';
    return s;
}

static void test_job_without_checkpointing(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("job1", false);
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 2);
    eddy_stream_t *src = eddy_source_generator(env, 5000, 0, gen_csv, NULL);
    eddy_pg_sink_opts_t o = opts_for("job1");
    o.batch_rows = 700;
    eddy_name(eddy_sink_postgres(src, &o), "pg");
    eddy_error_t err = {0};
    TU_ASSERT_OK(eddy_env_execute(env, &err), &err);
    eddy_env_destroy(env);
    char *want = expected_rows(5000);
    ASSERT_ROWS("SELECT * FROM job1 ORDER BY id", want);
    free(want);
    assert_int_equal(nprepared(), 0);
}

/* A job with checkpoints through the runtime: prepared transactions,
 * completions and the final checkpoint, upserting into a keyed table. */
static void test_job_with_checkpointing(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("job2", true);
    char dir[256];
    tu_tmpdir(dir, sizeof(dir));
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 2);
    eddy_env_enable_checkpointing(env, 20);
    eddy_error_t err = {0};
    TU_ASSERT_OK(eddy_env_set_option(env, "checkpoint.dir", dir, &err), &err);
    eddy_stream_t *src = eddy_source_generator(env, 3000, 20000, gen_csv, NULL);
    eddy_pg_sink_opts_t o = upsert_opts_for("job2", 100);
    eddy_name(eddy_sink_postgres(src, &o), "pg");
    TU_ASSERT_OK(eddy_env_execute(env, &err), &err);
    eddy_env_destroy(env);
    tu_rmtree(dir);
    ASSERT_ROWS(
        "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM job2",
        "3000|3000|0|2999\n");
    char *want = expected_rows(3000);
    ASSERT_ROWS("SELECT * FROM job2 ORDER BY id", want);
    free(want);
    assert_int_equal(nprepared(), 0);
}

static atomic_int g_failed_once;

/* Fails the job once, at the record with id 1500. */
static int fail_once(eddy_ctx_t *ctx, const eddy_record_t *in,
                     eddy_record_t *out, void *opaque)
{
    EDDY_UNUSED(out);
    EDDY_UNUSED(opaque);
    long id = 0;
    const char *v = in->value;
    for (size_t i = 0; i < in->value_len && v[i] >= '0' && v[i] <= '9'; i++) {
        id = id * 10 + (v[i] - '0');
    }
    if (id == 1500 && atomic_exchange(&g_failed_once, 1) == 0) {
        return eddy_ctx_fail(ctx, "injected failure");
    }
    return 0;
}

/* A job that fails half-way and restarts from its latest checkpoint: the
 * restored sinks commit what that checkpoint prepared, roll back what the
 * failed attempt prepared after it, and the table ends up with every row
 * exactly once (plain inserts: a duplicate would show). */
static void test_job_restart_is_exactly_once(void **state)
{
    EDDY_UNUSED(state);
    NEED_PG();
    make_table("job3", false);
    char dir[256];
    tu_tmpdir(dir, sizeof(dir));
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 2);
    eddy_env_enable_checkpointing(env, 20);
    eddy_error_t err = {0};
    TU_ASSERT_OK(eddy_env_set_option(env, "checkpoint.dir", dir, &err), &err);
    TU_ASSERT_OK(
        eddy_env_set_option(env, "restart.strategy", "fixed-delay", &err),
        &err);
    TU_ASSERT_OK(eddy_env_set_option(env, "restart.delay", "10ms", &err), &err);
    atomic_store(&g_failed_once, 0);
    eddy_stream_t *src = eddy_source_generator(env, 3000, 20000, gen_csv, NULL);
    eddy_stream_t *m = eddy_map(src, fail_once, NULL);
    eddy_pg_sink_opts_t o = opts_for("job3");
    eddy_uid(eddy_sink_postgres(m, &o), "pg");
    TU_ASSERT_OK(eddy_env_execute(env, &err), &err);
    eddy_env_destroy(env);
    tu_rmtree(dir);
    assert_int_equal(atomic_load(&g_failed_once), 1);
    ASSERT_ROWS("SELECT count(*), count(DISTINCT id), min(id), max(id) "
                "FROM job3",
                "3000|3000|0|2999\n");
    char *want = expected_rows(3000);
    ASSERT_ROWS("SELECT * FROM job3 ORDER BY id", want);
    free(want);
    assert_int_equal(nprepared(), 0);
}

/* Tests that need no server. */
static const struct CMUnitTest offline_tests[] = {
    cmocka_unit_test(test_options_are_checked),
};

int main(void)
{
    char msg[512];
    int rc = tu_pg_start(&g_pg, NULL, msg, sizeof(msg));
    if (rc == TU_PG_SKIP) {
        printf("SKIP: the PostgreSQL sink tests need a server: %s\n", msg);
        int failed = cmocka_run_group_tests(offline_tests, NULL, NULL);
        return failed != 0 ? failed : SKIP_CODE;
    }
    if (rc != TU_PG_OK) {
        fprintf(stderr, "cannot start PostgreSQL for the tests: %s\n", msg);
        return 1;
    }
    g_have_pg = true;
#define T(fn) cmocka_unit_test_setup(fn, rollback_all_prepared)
    const struct CMUnitTest tests[] = {
        T(test_eo_commits_on_complete),
        T(test_eo_crash_before_prepare),
        T(test_eo_crash_after_prepare),
        T(test_eo_crash_between_complete_and_commit),
        T(test_eo_crash_after_commit),
        T(test_eo_aborted_checkpoint),
        T(test_eo_orphans_are_scoped),
        T(test_eo_rescale_restore),
        T(test_eo_end_of_input),
        T(test_upsert_last_row_wins),
        T(test_upsert_waits_for_pending_commit),
        T(test_upsert_waiting_rows_in_checkpoint),
        T(test_upsert_end_after_abort),
        T(test_alo_commits_at_barrier),
        T(test_no_checkpointing_commits_batches),
        T(test_csv_values),
        T(test_json_values),
        T(test_to_row),
        T(test_bad_rows_fail),
        T(test_open_errors),
        T(test_state_and_commit_errors),
        T(test_connection_loss),
        T(test_no_prepared_transactions),
        T(test_options_are_checked),
        T(test_job_without_checkpointing),
        T(test_job_with_checkpointing),
        T(test_job_restart_is_exactly_once),
    };
#undef T
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_pg_stop(&g_pg);
    return failed;
}
