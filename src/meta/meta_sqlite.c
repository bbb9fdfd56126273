/*
 * eddy — the metadata store on SQLite (the embedded default).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN (meta_store.h has the contract; docs/metadata-store.md the schema).
 *
 * Durability. The database runs in WAL mode with synchronous=FULL. WAL lets
 * the REST threads read while the event loop writes and keeps every commit
 * an append to one file. With synchronous=NORMAL a WAL database stays
 * consistent after a crash, but a power loss may take back the last
 * commits; that is not good enough here, because the JobManager acts on a
 * commit at once: it records checkpoint n as completed and then tells the
 * sinks to commit n. If that record were lost, a restarted JobManager would
 * restore checkpoint n-1 while the sinks' output of n is already committed,
 * and the sources would replay it: duplicates. FULL syncs the WAL on every
 * commit; the JobManager commits a few times a second at most, so the cost
 * (one fsync each) does not matter. (A killed process loses nothing even
 * with NORMAL, since the OS still holds its writes; FULL is for the
 * machine going down.)
 *
 * Transactions. Every operation is one transaction, taken with BEGIN
 * IMMEDIATE when it writes, so a read-then-write (the state check before a
 * transition) never has to upgrade its lock, and the busy timeout applies
 * at BEGIN rather than as a deadlock half way. A failed statement rolls
 * the whole transaction back.
 *
 * Schema versions. The schema is a list of migrations; a new database runs
 * them all, an older one the ones it lacks, in the same transaction as the
 * version check, and schema_version records each applied version. A
 * database from a newer eddy is refused before anything is written. The
 * file's application_id marks it as an eddy store, so a wrong path fails
 * clearly instead of growing eddy tables inside another program's data.
 *
 * Statements are prepared once at open (SQLITE_PREPARE_PERSISTENT), which
 * also proves at open that every statement compiles against the schema.
 * Every value travels as a bound parameter; no SQL text is ever built from
 * data.
 *
 * THREADS. One connection per store, opened SQLITE_OPEN_NOMUTEX because
 * ms_lock already serializes every call (SQLite's own per-connection mutex
 * would only be taken a second time). The lock is held for the whole
 * transaction, so REST threads and the event loop see each other's
 * operations whole.
 *   @locks every entry point acquires ms_lock; nothing calls out while
 *   holding it except mo_clock_ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <unistd.h>

#include "meta/meta_store.h"

#define SCHEMA_VERSION 2
/* "eddy" in ASCII, as SQLite's file header stores it (big-endian). */
#define APP_ID 1701078137
#define STR_(x) #x
#define STR(x) STR_(x)

/*
 * The migrations: index i brings a database from version i to i + 1. Once
 * released, a migration never changes (databases in the field were made
 * by it); changes go in a new one. Version 2 added savepoint requests and
 * per-job totals, computed for existing jobs from the rows kept.
 */
static const char *const migrations[SCHEMA_VERSION] = {
    /* 0 → 1 */
    "CREATE TABLE jobs ("
    " job_id TEXT PRIMARY KEY NOT NULL CHECK (length(job_id) = 32),"
    " name TEXT NOT NULL,"
    " artifact_path TEXT NOT NULL,"
    " artifact_sha256 TEXT,"
    " artifact_size INTEGER NOT NULL,"
    " parallelism INTEGER NOT NULL,"
    " checkpoint_interval_ms INTEGER NOT NULL,"
    " savepoint_path TEXT,"
    " args TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('CREATED', 'RUNNING', 'FAILING',"
    "  'RESTARTING', 'CANCELLING', 'CANCELED', 'FINISHED', 'FAILED')),"
    " start_ms INTEGER NOT NULL,"
    " state_ms INTEGER NOT NULL,"
    " end_ms INTEGER,"
    " restarts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_start ON jobs (start_ms);"
    "CREATE TABLE job_transitions ("
    " seq INTEGER PRIMARY KEY,"
    " job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,"
    " from_state TEXT,"
    " to_state TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " reason TEXT NOT NULL);"
    "CREATE INDEX job_transitions_job ON job_transitions (job_id, seq);"
    "CREATE TABLE job_exceptions ("
    " seq INTEGER PRIMARY KEY,"
    " job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,"
    " time_ms INTEGER NOT NULL,"
    " task TEXT,"
    " subtask INTEGER NOT NULL,"
    " message TEXT NOT NULL);"
    "CREATE INDEX job_exceptions_job ON job_exceptions (job_id, seq);"
    "CREATE TABLE checkpoints ("
    " job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,"
    " checkpoint_id INTEGER NOT NULL,"
    " path TEXT NOT NULL,"
    " savepoint INTEGER NOT NULL CHECK (savepoint IN (0, 1)),"
    " size_bytes INTEGER NOT NULL,"
    " duration_ms INTEGER NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " PRIMARY KEY (job_id, checkpoint_id)) WITHOUT ROWID;",
    /* 1 → 2 */
    "ALTER TABLE jobs ADD COLUMN exceptions_total INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN checkpoints_total INTEGER NOT NULL DEFAULT 0;"
    "UPDATE jobs SET"
    " exceptions_total ="
    "  (SELECT count(*) FROM job_exceptions e WHERE e.job_id = jobs.job_id),"
    " checkpoints_total ="
    "  (SELECT count(*) FROM checkpoints c WHERE c.job_id = jobs.job_id);"
    "CREATE TABLE savepoint_requests ("
    " seq INTEGER PRIMARY KEY,"
    " job_id TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,"
    " request_id TEXT NOT NULL,"
    " status TEXT NOT NULL"
    "  CHECK (status IN ('IN_PROGRESS', 'COMPLETED', 'FAILED')),"
    " path TEXT,"
    " error TEXT,"
    " created_ms INTEGER NOT NULL,"
    " finished_ms INTEGER,"
    " UNIQUE (job_id, request_id));",
};

#define JOB_COLS                                                               \
    "job_id, name, artifact_path, artifact_sha256, artifact_size,"             \
    " parallelism, checkpoint_interval_ms, savepoint_path, args, state,"       \
    " start_ms, state_ms, end_ms, restarts, exceptions_total,"                 \
    " checkpoints_total"
#define JOB_FILTER                                                             \
    " FROM jobs WHERE (?1 IS NULL OR instr(?1, ',' || state || ',') > 0)"      \
    " AND (?2 IS NULL OR name = ?2) AND (?3 = 0 OR start_ms >= ?3)"            \
    " AND (?4 = 0 OR start_ms < ?4)"
#define CK_COLS                                                                \
    "checkpoint_id, path, savepoint, size_bytes, duration_ms, time_ms"
#define SP_COLS "request_id, status, path, error, created_ms, finished_ms"

/* Every statement the store runs after open, prepared once. */
#define STMT_MAP(XX)                                                           \
    XX(BEGIN_WRITE, "BEGIN IMMEDIATE")                                         \
    XX(BEGIN_READ, "BEGIN")                                                    \
    XX(COMMIT, "COMMIT")                                                       \
    XX(ROLLBACK, "ROLLBACK")                                                   \
    XX(JOB_STATE, "SELECT state FROM jobs WHERE job_id = ?1")                  \
    XX(JOB_INSERT,                                                             \
       "INSERT INTO jobs (job_id, name, artifact_path, artifact_sha256,"       \
       " artifact_size, parallelism, checkpoint_interval_ms, savepoint_path,"  \
       " args, state, start_ms, state_ms)"                                     \
       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'CREATED', ?10, ?10)")    \
    XX(JOB_SET_STATE, "UPDATE jobs SET state = ?2, state_ms = ?3,"             \
                      " end_ms = CASE WHEN ?4 THEN ?3 ELSE end_ms END,"        \
                      " restarts = restarts + ?5 WHERE job_id = ?1")           \
    XX(JOB_GET, "SELECT " JOB_COLS " FROM jobs WHERE job_id = ?1")             \
    XX(JOB_LIST_NEWEST, "SELECT " JOB_COLS JOB_FILTER                          \
                        " ORDER BY start_ms DESC, job_id LIMIT ?5 OFFSET ?6")  \
    XX(JOB_LIST_OLDEST, "SELECT " JOB_COLS JOB_FILTER                          \
                        " ORDER BY start_ms ASC, job_id LIMIT ?5 OFFSET ?6")   \
    XX(JOB_DELETE, "DELETE FROM jobs WHERE job_id = ?1")                       \
    XX(TR_INSERT, "INSERT INTO job_transitions (job_id, from_state, to_state," \
                  " time_ms, reason) VALUES (?1, ?2, ?3, ?4, ?5)")             \
    XX(TR_TRIM, "DELETE FROM job_transitions WHERE job_id = ?1 AND seq <="     \
                " (SELECT seq FROM job_transitions WHERE job_id = ?1"          \
                " ORDER BY seq DESC LIMIT 1 OFFSET ?2)")                       \
    XX(TR_LIST, "SELECT time_ms, from_state, to_state, reason"                 \
                " FROM job_transitions WHERE job_id = ?1 ORDER BY seq")        \
    XX(EX_COUNT, "UPDATE jobs SET exceptions_total = exceptions_total + 1"     \
                 " WHERE job_id = ?1")                                         \
    XX(EX_INSERT, "INSERT INTO job_exceptions (job_id, time_ms, task,"         \
                  " subtask, message) VALUES (?1, ?2, ?3, ?4, ?5)")            \
    XX(EX_TRIM, "DELETE FROM job_exceptions WHERE job_id = ?1 AND seq <="      \
                " (SELECT seq FROM job_exceptions WHERE job_id = ?1"           \
                " ORDER BY seq DESC LIMIT 1 OFFSET ?2)")                       \
    XX(EX_LIST, "SELECT time_ms, task, subtask, message FROM job_exceptions"   \
                " WHERE job_id = ?1 ORDER BY seq DESC")                        \
    XX(CK_COUNT, "UPDATE jobs SET checkpoints_total = checkpoints_total + 1"   \
                 " WHERE job_id = ?1")                                         \
    XX(CK_EXISTS, "SELECT 1 FROM checkpoints WHERE job_id = ?1"                \
                  " AND checkpoint_id = ?2")                                   \
    XX(CK_INSERT, "INSERT INTO checkpoints (job_id, " CK_COLS ")"              \
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")                      \
    XX(CK_TRIM, "DELETE FROM checkpoints WHERE job_id = ?1 AND savepoint = 0"  \
                " AND checkpoint_id <= (SELECT checkpoint_id FROM checkpoints" \
                " WHERE job_id = ?1 AND savepoint = 0"                         \
                " ORDER BY checkpoint_id DESC LIMIT 1 OFFSET ?2)")             \
    XX(CK_LIST, "SELECT " CK_COLS " FROM checkpoints WHERE job_id = ?1"        \
                " ORDER BY checkpoint_id DESC")                                \
    XX(CK_LATEST, "SELECT " CK_COLS " FROM checkpoints WHERE job_id = ?1"      \
                  " AND (?2 OR savepoint = 0)"                                 \
                  " ORDER BY checkpoint_id DESC LIMIT 1")                      \
    XX(SP_STATUS, "SELECT status FROM savepoint_requests"                      \
                  " WHERE job_id = ?1 AND request_id = ?2")                    \
    XX(SP_INSERT, "INSERT INTO savepoint_requests (job_id, request_id,"        \
                  " status, created_ms) VALUES (?1, ?2, 'IN_PROGRESS', ?3)")   \
    XX(SP_TRIM, "DELETE FROM savepoint_requests WHERE job_id = ?1"             \
                " AND status <> 'IN_PROGRESS' AND seq <= (SELECT seq"          \
                " FROM savepoint_requests WHERE job_id = ?1"                   \
                " ORDER BY seq DESC LIMIT 1 OFFSET ?2)")                       \
    XX(SP_END, "UPDATE savepoint_requests SET status = ?3, path = ?4,"         \
               " error = ?5, finished_ms = ?6"                                 \
               " WHERE job_id = ?1 AND request_id = ?2")                       \
    XX(SP_GET, "SELECT " SP_COLS " FROM savepoint_requests"                    \
               " WHERE job_id = ?1 AND request_id = ?2")                       \
    XX(SP_LIST, "SELECT " SP_COLS " FROM savepoint_requests"                   \
                " WHERE job_id = ?1 ORDER BY seq DESC")                        \
    XX(SP_ABANDON, "UPDATE savepoint_requests SET status = 'FAILED',"          \
                   " error = ?1, finished_ms = ?2"                             \
                   " WHERE status = 'IN_PROGRESS'")

enum {
#define XX(name, sql) ST_##name,
    STMT_MAP(XX)
#undef XX
        ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
#define XX(name, sql) sql,
    STMT_MAP(XX)
#undef XX
};

typedef struct meta_sqlite {
    eddy__meta_t ms_base; /* first: the store handle callers hold */
    pthread_mutex_t ms_lock;
    sqlite3 *ms_db;
    sqlite3_stmt *ms_stmts[ST__COUNT];
    char *ms_path;
} meta_sqlite_t;

static const eddy__meta_ops_t sqlite_ops;

/* ---- errors ---- */

/* Turns SQLite result `rc` into an eddy error naming the store and what
 * was being done. Must run before the next call on the connection, which
 * would replace sqlite3_errmsg. */
static int sq_fail(sqlite3 *db, const char *path, int rc, const char *what,
                   eddy_error_t *err)
{
    int code;
    bool retriable = false;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = EDDY_ERR_BUSY;
        retriable = true;
        break;
    case SQLITE_NOMEM:
        code = EDDY_ERR_NOMEM;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        code = EDDY_ERR_FORMAT;
        break;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
        code = EDDY_ERR_IO;
        break;
    default:
        code = EDDY_ERR_EXTERNAL;
        break;
    }
    const char *msg = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    eddy_error_set(err, code, "metadata store %s: %s: %s", path, what, msg);
    if (err != NULL) {
        err->retriable = retriable;
        err->sys_errno = db != NULL ? sqlite3_system_errno(db) : 0;
    }
    return code;
}

static int ms_fail(meta_sqlite_t *ms, int rc, const char *what,
                   eddy_error_t *err)
{
    return sq_fail(ms->ms_db, ms->ms_path, rc, what, err);
}

/* ---- statements ---- */

/* The cached statement `id`, ready for binding. Every user resets it after
 * use (stmt_done), so that no statement holds a read snapshot open: in WAL
 * mode an unfinished read stops the WAL from being checkpointed. */
static sqlite3_stmt *stmt(meta_sqlite_t *ms, int id)
{
    return ms->ms_stmts[id];
}

static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Bind helpers return SQLite codes so that a sequence of them can be ORed:
 * any failure leaves a non-zero result. */
static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s == NULL) {
        return sqlite3_bind_null(st, i);
    }
    return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static int bind_i64(sqlite3_stmt *st, int i, int64_t v)
{
    return sqlite3_bind_int64(st, i, v);
}

/* Steps a statement that returns no rows, then resets it. */
static int exec_stmt(meta_sqlite_t *ms, sqlite3_stmt *st, const char *what,
                     eddy_error_t *err)
{
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? 0 : ms_fail(ms, rc, what, err);
    stmt_done(st);
    return ret;
}

/* Steps a query: 1 if it produced a row (left for the caller to read and
 * then stmt_done), 0 if none (already reset), or an error (reset). */
static int step_row(meta_sqlite_t *ms, sqlite3_stmt *st, const char *what,
                    eddy_error_t *err)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        return 1;
    }
    int ret = rc == SQLITE_DONE ? 0 : ms_fail(ms, rc, what, err);
    stmt_done(st);
    return ret;
}

static int bind_fail(meta_sqlite_t *ms, sqlite3_stmt *st, int rc,
                     eddy_error_t *err)
{
    stmt_done(st);
    return ms_fail(ms, rc, "binding parameters", err);
}

static int64_t now_ms(meta_sqlite_t *ms)
{
    return ms->ms_base.m_opts.mo_clock_ms(ms->ms_base.m_opts.mo_clock_arg);
}

/* ---- transactions ---- */

typedef int (*txn_fn)(meta_sqlite_t *ms, void *arg, eddy_error_t *err);

static void rollback(meta_sqlite_t *ms)
{
    /* Some errors (SQLITE_FULL, SQLITE_IOERR, ...) have already rolled
     * the transaction back; ROLLBACK would then fail for no reason. */
    if (!sqlite3_get_autocommit(ms->ms_db)) {
        sqlite3_stmt *st = stmt(ms, ST_ROLLBACK);
        sqlite3_step(st);
        stmt_done(st);
    }
}

/* Runs fn(ms, arg) as one transaction under the store's lock: committed if
 * it returns 0, rolled back otherwise. */
static int in_txn(meta_sqlite_t *ms, bool write, txn_fn fn, void *arg,
                  eddy_error_t *err)
{
    eddy__mutex_lock(&ms->ms_lock);
    int rc = exec_stmt(ms, stmt(ms, write ? ST_BEGIN_WRITE : ST_BEGIN_READ),
                       "starting a transaction", err);
    if (rc == 0) {
        rc = fn(ms, arg, err);
        if (rc == 0) {
            if (write) {
                /* Crash tests kill the process here: every statement of
                 * the transaction has run, none is committed. */
                eddy__fault("meta_commit");
            }
            rc = exec_stmt(ms, stmt(ms, ST_COMMIT), "committing", err);
        }
        if (rc != 0) {
            rollback(ms);
        }
    }
    eddy__mutex_unlock(&ms->ms_lock);
    return rc;
}

/* ---- records ---- */

/* Bytes a text column needs in a record's tail (0 for NULL). */
static size_t col_size(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        return 0;
    }
    return (size_t)sqlite3_column_bytes(st, col) + 1;
}

/* Copies a text column into the tail at *p; NULL stays NULL. */
static const char *col_put(sqlite3_stmt *st, int col, char **p)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        return NULL;
    }
    const unsigned char *s = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    char *d = *p;
    if (n > 0) {
        memcpy(d, s, n);
    }
    d[n] = '\0';
    *p += n + 1;
    return d;
}

/* A text column that must hold a state name (as written by this store). */
static int col_state(meta_sqlite_t *ms, sqlite3_stmt *st, int col,
                     eddy__job_state_t *out, eddy_error_t *err)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    if (eddy__job_state_parse(s, out) != 0) {
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "metadata store %s: unknown job state '%s'",
                              ms->ms_path, s != NULL ? s : "(null)");
    }
    return 0;
}

static int row_job(meta_sqlite_t *ms, sqlite3_stmt *st, void *out,
                   eddy_error_t *err)
{
    size_t size = sizeof(eddy__meta_job_t);
    static const int text_cols[] = {0, 1, 2, 3, 7, 8};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(text_cols); i++) {
        size += col_size(st, text_cols[i]);
    }
    eddy__meta_job_t *j = eddy__calloc(1, size);
    char *p = (char *)(j + 1);
    eddy__meta_job_spec_t *s = &j->mj_spec;
    s->js_id = col_put(st, 0, &p);
    s->js_name = col_put(st, 1, &p);
    s->js_artifact_path = col_put(st, 2, &p);
    s->js_artifact_sha256 = col_put(st, 3, &p);
    s->js_artifact_size = sqlite3_column_int64(st, 4);
    s->js_parallelism = sqlite3_column_int(st, 5);
    s->js_checkpoint_interval_ms = sqlite3_column_int64(st, 6);
    s->js_savepoint_path = col_put(st, 7, &p);
    s->js_args = col_put(st, 8, &p);
    j->mj_start_ms = sqlite3_column_int64(st, 10);
    j->mj_state_ms = sqlite3_column_int64(st, 11);
    j->mj_end_ms = sqlite3_column_int64(st, 12); /* NULL reads as 0 */
    j->mj_restarts = sqlite3_column_int(st, 13);
    j->mj_exceptions_total = sqlite3_column_int64(st, 14);
    j->mj_checkpoints_total = sqlite3_column_int64(st, 15);
    int rc = col_state(ms, st, 9, &j->mj_state, err);
    if (rc == 0 && (s->js_id == NULL || s->js_name == NULL ||
                    s->js_artifact_path == NULL || s->js_args == NULL)) {
        rc = eddy_error_set(err, EDDY_ERR_FORMAT,
                            "metadata store %s: a job row misses fields",
                            ms->ms_path);
    }
    if (rc != 0) {
        eddy__free(j);
        return rc;
    }
    *(eddy__meta_job_t **)out = j;
    return 0;
}

static int row_transition(meta_sqlite_t *ms, sqlite3_stmt *st, void *out,
                          eddy_error_t *err)
{
    eddy__meta_transition_t *t =
        eddy__calloc(1, sizeof(*t) + col_size(st, 3) + 1);
    char *p = (char *)(t + 1);
    t->mt_time_ms = sqlite3_column_int64(st, 0);
    int rc = col_state(ms, st, 2, &t->mt_to, err);
    if (rc == 0 && sqlite3_column_type(st, 1) == SQLITE_NULL) {
        t->mt_from = t->mt_to; /* the job's creation */
    } else if (rc == 0) {
        rc = col_state(ms, st, 1, &t->mt_from, err);
    }
    const char *reason = col_put(st, 3, &p);
    t->mt_reason = reason != NULL ? reason : p; /* the tail's spare NUL */
    if (rc != 0) {
        eddy__free(t);
        return rc;
    }
    *(eddy__meta_transition_t **)out = t;
    return 0;
}

static int row_exception(meta_sqlite_t *ms, sqlite3_stmt *st, void *out,
                         eddy_error_t *err)
{
    (void)ms;
    (void)err;
    eddy__meta_exception_t *e =
        eddy__calloc(1, sizeof(*e) + col_size(st, 1) + col_size(st, 3) + 1);
    char *p = (char *)(e + 1);
    e->me_time_ms = sqlite3_column_int64(st, 0);
    e->me_task = col_put(st, 1, &p);
    e->me_subtask = sqlite3_column_int(st, 2);
    const char *msg = col_put(st, 3, &p);
    e->me_message = msg != NULL ? msg : p;
    *(eddy__meta_exception_t **)out = e;
    return 0;
}

static int row_checkpoint(meta_sqlite_t *ms, sqlite3_stmt *st, void *out,
                          eddy_error_t *err)
{
    (void)ms;
    (void)err;
    eddy__meta_checkpoint_t *c =
        eddy__calloc(1, sizeof(*c) + col_size(st, 1) + 1);
    char *p = (char *)(c + 1);
    c->mc_id = sqlite3_column_int64(st, 0);
    const char *path = col_put(st, 1, &p);
    c->mc_path = path != NULL ? path : p;
    c->mc_savepoint = sqlite3_column_int(st, 2) != 0;
    c->mc_size_bytes = sqlite3_column_int64(st, 3);
    c->mc_duration_ms = sqlite3_column_int64(st, 4);
    c->mc_time_ms = sqlite3_column_int64(st, 5);
    *(eddy__meta_checkpoint_t **)out = c;
    return 0;
}

static int parse_sp_status(const char *s, eddy__savepoint_status_t *out)
{
    for (int i = EDDY__SAVEPOINT_IN_PROGRESS; i <= EDDY__SAVEPOINT_FAILED;
         i++) {
        if (s != NULL && strcmp(s, eddy__savepoint_status_name(
                                       (eddy__savepoint_status_t)i)) == 0) {
            *out = (eddy__savepoint_status_t)i;
            return 0;
        }
    }
    return EDDY_ERR_FORMAT;
}

static int row_savepoint(meta_sqlite_t *ms, sqlite3_stmt *st, void *out,
                         eddy_error_t *err)
{
    eddy__meta_savepoint_t *s = eddy__calloc(
        1, sizeof(*s) + col_size(st, 0) + col_size(st, 2) + col_size(st, 3));
    char *p = (char *)(s + 1);
    s->ms_request_id = col_put(st, 0, &p);
    s->ms_path = col_put(st, 2, &p);
    s->ms_error = col_put(st, 3, &p);
    s->ms_created_ms = sqlite3_column_int64(st, 4);
    s->ms_finished_ms = sqlite3_column_int64(st, 5);
    const char *status = (const char *)sqlite3_column_text(st, 1);
    if (parse_sp_status(status, &s->ms_status) != 0 ||
        s->ms_request_id == NULL) {
        eddy__free(s);
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "metadata store %s: bad savepoint request row",
                              ms->ms_path);
    }
    *(eddy__meta_savepoint_t **)out = s;
    return 0;
}

typedef int (*row_fn)(meta_sqlite_t *ms, sqlite3_stmt *st, void *out,
                      eddy_error_t *err);

/* Reads every row of a bound query into a new array of records. */
static int collect(meta_sqlite_t *ms, sqlite3_stmt *st, row_fn fn,
                   const char *what, void ***out, size_t *n, eddy_error_t *err)
{
    void **v = NULL;
    size_t cap = 0, cnt = 0;
    int rc;
    while ((rc = step_row(ms, st, what, err)) == 1) {
        eddy__grow((void **)&v, &cap, cnt + 1, sizeof(*v));
        rc = fn(ms, st, &v[cnt], err);
        if (rc != 0) {
            stmt_done(st);
            break;
        }
        cnt++;
    }
    if (rc != 0) {
        eddy__meta_free_array(v, cnt);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

/* The job's state: 0, or EDDY_ERR_NOT_FOUND naming it. */
static int job_state(meta_sqlite_t *ms, const char *job_id,
                     eddy__job_state_t *out, eddy_error_t *err)
{
    sqlite3_stmt *st = stmt(ms, ST_JOB_STATE);
    int rc = bind_text(st, 1, job_id);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    rc = step_row(ms, st, "reading a job's state", err);
    if (rc == 0) {
        return eddy_error_set(err, EDDY_ERR_NOT_FOUND, "no job %s", job_id);
    }
    if (rc < 0) {
        return rc;
    }
    rc = col_state(ms, st, 0, out, err);
    stmt_done(st);
    return rc;
}

/* ---- jobs ---- */

static int txn_job_create(meta_sqlite_t *ms, void *arg, eddy_error_t *err)
{
    const eddy__meta_job_spec_t *s = arg;
    eddy__job_state_t cur;
    int rc = job_state(ms, s->js_id, &cur, err);
    if (rc == 0) {
        return eddy_error_set(err, EDDY_ERR_STATE, "job %s already exists",
                              s->js_id);
    }
    if (rc != EDDY_ERR_NOT_FOUND) {
        return rc;
    }
    int64_t now = now_ms(ms);
    sqlite3_stmt *st = stmt(ms, ST_JOB_INSERT);
    rc = bind_text(st, 1, s->js_id) | bind_text(st, 2, s->js_name) |
         bind_text(st, 3, s->js_artifact_path) |
         bind_text(st, 4, s->js_artifact_sha256) |
         bind_i64(st, 5, s->js_artifact_size) |
         bind_i64(st, 6, s->js_parallelism) |
         bind_i64(st, 7, s->js_checkpoint_interval_ms) |
         bind_text(st, 8, s->js_savepoint_path) | bind_text(st, 9, s->js_args) |
         bind_i64(st, 10, now);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    if ((rc = exec_stmt(ms, st, "inserting a job", err)) != 0) {
        return rc;
    }
    st = stmt(ms, ST_TR_INSERT);
    rc = bind_text(st, 1, s->js_id) | bind_text(st, 2, NULL) |
         bind_text(st, 3, eddy__job_state_name(EDDY__JOB_CREATED)) |
         bind_i64(st, 4, now) | bind_text(st, 5, "submitted");
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    return exec_stmt(ms, st, "recording a transition", err);
}

static int sq_job_create(eddy__meta_t *m, const eddy__meta_job_spec_t *spec,
                         eddy_error_t *err)
{
    return in_txn((meta_sqlite_t *)m, true, txn_job_create, (void *)spec, err);
}

/* Runs a *_TRIM statement: keeps the job's newest `keep` rows of that
 * history and deletes the older ones. */
static int trim(meta_sqlite_t *ms, int id, const char *job_id, int keep,
                eddy_error_t *err)
{
    sqlite3_stmt *st = stmt(ms, id);
    int rc = bind_text(st, 1, job_id) | bind_i64(st, 2, keep);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    return exec_stmt(ms, st, "dropping old history", err);
}

typedef struct set_state_args {
    const char *job_id;
    eddy__job_state_t to;
    const char *reason;
    eddy__job_state_t *prev;
} set_state_args_t;

/* "RUNNING, FAILING or CANCELLING": the states `from` may go to. */
static void allowed_next(eddy__job_state_t from, char *buf, size_t size)
{
    int cnt = 0, total = 0;
    for (int i = 0; i < EDDY__JOB_STATE_COUNT; i++) {
        total += eddy__job_state_transition_ok(from, (eddy__job_state_t)i);
    }
    buf[0] = '\0';
    for (int i = 0; i < EDDY__JOB_STATE_COUNT; i++) {
        if (!eddy__job_state_transition_ok(from, (eddy__job_state_t)i)) {
            continue;
        }
        size_t len = strlen(buf);
        cnt++;
        snprintf(buf + len, size - len, "%s%s",
                 cnt == 1       ? ""
                 : cnt == total ? " or "
                                : ", ",
                 eddy__job_state_name((eddy__job_state_t)i));
    }
}

static int txn_set_state(meta_sqlite_t *ms, void *arg, eddy_error_t *err)
{
    set_state_args_t *a = arg;
    eddy__job_state_t from;
    int rc = job_state(ms, a->job_id, &from, err);
    if (rc != 0) {
        return rc;
    }
    const char *fn = eddy__job_state_name(from);
    const char *tn = eddy__job_state_name(a->to);
    if (!eddy__job_state_transition_ok(from, a->to)) {
        if (from == a->to) {
            return eddy_error_set(err, EDDY_ERR_STATE, "job %s is already %s",
                                  a->job_id, fn);
        }
        if (eddy__job_state_terminal(from)) {
            return eddy_error_set(err, EDDY_ERR_STATE,
                                  "job %s cannot go from %s to %s: %s is "
                                  "final",
                                  a->job_id, fn, tn, fn);
        }
        char next[128];
        allowed_next(from, next, sizeof(next));
        return eddy_error_set(err, EDDY_ERR_STATE,
                              "job %s cannot go from %s to %s (from %s: %s)",
                              a->job_id, fn, tn, fn, next);
    }
    int64_t now = now_ms(ms);
    sqlite3_stmt *st = stmt(ms, ST_JOB_SET_STATE);
    rc = bind_text(st, 1, a->job_id) | bind_text(st, 2, tn) |
         bind_i64(st, 3, now) |
         bind_i64(st, 4, eddy__job_state_terminal(a->to)) |
         bind_i64(st, 5, a->to == EDDY__JOB_RESTARTING);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    if ((rc = exec_stmt(ms, st, "changing a job's state", err)) != 0) {
        return rc;
    }
    st = stmt(ms, ST_TR_INSERT);
    rc = bind_text(st, 1, a->job_id) | bind_text(st, 2, fn) |
         bind_text(st, 3, tn) | bind_i64(st, 4, now) |
         bind_text(st, 5, a->reason);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    if ((rc = exec_stmt(ms, st, "recording a transition", err)) != 0 ||
        (rc = trim(ms, ST_TR_TRIM, a->job_id,
                   ms->ms_base.m_opts.mo_transition_history, err)) != 0) {
        return rc;
    }
    if (a->prev != NULL) {
        *a->prev = from;
    }
    return 0;
}

static int sq_job_set_state(eddy__meta_t *m, const char *job_id,
                            eddy__job_state_t to, const char *reason,
                            eddy__job_state_t *prev, eddy_error_t *err)
{
    set_state_args_t a = {job_id, to, reason, prev};
    return in_txn((meta_sqlite_t *)m, true, txn_set_state, &a, err);
}

typedef struct get_args {
    const char *job_id;
    const char *key; /* request id */
    bool flag;
    void *out;
} get_args_t;

static int txn_job_get(meta_sqlite_t *ms, void *arg, eddy_error_t *err)
{
    get_args_t *a = arg;
    sqlite3_stmt *st = stmt(ms, ST_JOB_GET);
    int rc = bind_text(st, 1, a->job_id);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    rc = step_row(ms, st, "reading a job", err);
    if (rc == 0) {
        return eddy_error_set(err, EDDY_ERR_NOT_FOUND, "no job %s", a->job_id);
    }
    if (rc < 0) {
        return rc;
    }
    rc = row_job(ms, st, a->out, err);
    stmt_done(st);
    return rc;
}

static int sq_job_get(eddy__meta_t *m, const char *job_id,
                      eddy__meta_job_t **out, eddy_error_t *err)
{
    get_args_t a = {.job_id = job_id, .out = out};
    return in_txn((meta_sqlite_t *)m, false, txn_job_get, &a, err);
}

typedef struct list_args {
    const eddy__meta_job_filter_t *filter;
    bool oldest_first;
    void ***out;
    size_t *n;
} list_args_t;

static int txn_job_list(meta_sqlite_t *ms, void *arg, eddy_error_t *err)
{
    list_args_t *a = arg;
    const eddy__meta_job_filter_t *f = a->filter;
    /* The state set as ",RUNNING,FAILING,", matched with instr(): one
     * statement serves every combination of states, bound as a value. */
    char states[160] = ",";
    for (int i = 0; i < EDDY__JOB_STATE_COUNT; i++) {
        if (f->jf_states & (1u << i)) {
            size_t len = strlen(states);
            snprintf(states + len, sizeof(states) - len, "%s,",
                     eddy__job_state_name((eddy__job_state_t)i));
        }
    }
    sqlite3_stmt *st =
        stmt(ms, a->oldest_first ? ST_JOB_LIST_OLDEST : ST_JOB_LIST_NEWEST);
    int rc = bind_text(st, 1, f->jf_states != 0 ? states : NULL) |
             bind_text(st, 2, f->jf_name) |
             bind_i64(st, 3, f->jf_started_after) |
             bind_i64(st, 4, f->jf_started_before) |
             bind_i64(st, 5, f->jf_limit > 0 ? f->jf_limit : -1) |
             bind_i64(st, 6, f->jf_offset);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    return collect(ms, st, row_job, "listing jobs", a->out, a->n, err);
}

static int sq_job_list(eddy__meta_t *m, const eddy__meta_job_filter_t *f,
                       bool oldest_first, eddy__meta_job_t ***out, size_t *n,
                       eddy_error_t *err)
{
    list_args_t a = {f, oldest_first, (void ***)out, n};
    return in_txn((meta_sqlite_t *)m, false, txn_job_list, &a, err);
}

static int txn_job_delete(meta_sqlite_t *ms, void *arg, eddy_error_t *err)
{
    const char *job_id = arg;
    eddy__job_state_t cur;
    int rc = job_state(ms, job_id, &cur, err);
    if (rc != 0) {
        return rc;
    }
    if (!eddy__job_state_terminal(cur)) {
        return eddy_error_set(err, EDDY_ERR_STATE,
                              "job %s is %s: only a job that has ended "
                              "(CANCELED, FINISHED or FAILED) can be deleted",
                              job_id, eddy__job_state_name(cur));
    }
    sqlite3_stmt *st = stmt(ms, ST_JOB_DELETE);
    rc = bind_text(st, 1, job_id);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    /* Its history goes with it: ON DELETE CASCADE. */
    return exec_stmt(ms, st, "deleting a job", err);
}

static int sq_job_delete(eddy__meta_t *m, const char *job_id, eddy_error_t *err)
{
    return in_txn((meta_sqlite_t *)m, true, txn_job_delete, (void *)job_id,
                  err);
}

/* Lists the rows of one job's history table; NOT_FOUND if no such job. */
typedef struct history_args {
    const char *job_id;
    int stmt_id;
    row_fn fn;
    const char *what;
    void ***out;
    size_t *n;
} history_args_t;

static int txn_history(meta_sqlite_t *ms, void *arg, eddy_error_t *err)
{
    history_args_t *a = arg;
    eddy__job_state_t cur;
    int rc = job_state(ms, a->job_id, &cur, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = stmt(ms, a->stmt_id);
    rc = bind_text(st, 1, a->job_id);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    return collect(ms, st, a->fn, a->what, a->out, a->n, err);
}

static int history(eddy__meta_t *m, const char *job_id, int stmt_id, row_fn fn,
                   const char *what, void ***out, size_t *n, eddy_error_t *err)
{
    history_args_t a = {job_id, stmt_id, fn, what, out, n};
    return in_txn((meta_sqlite_t *)m, false, txn_history, &a, err);
}

static int sq_transition_list(eddy__meta_t *m, const char *job_id,
                              eddy__meta_transition_t ***out, size_t *n,
                              eddy_error_t *err)
{
    return history(m, job_id, ST_TR_LIST, row_transition, "listing transitions",
                   (void ***)out, n, err);
}

/* ---- exceptions ---- */

typedef struct exception_args {
    const char *job_id;
    const eddy__meta_exception_t *e;
} exception_args_t;

/* Counts one more for the job (EX_COUNT, CK_COUNT): doubles as the
 * existence check, since it changes no row of an unknown job. */
static int count_one(meta_sqlite_t *ms, int id, const char *job_id,
                     eddy_error_t *err)
{
    sqlite3_stmt *st = stmt(ms, id);
    int rc = bind_text(st, 1, job_id);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    if ((rc = exec_stmt(ms, st, "counting", err)) != 0) {
        return rc;
    }
    if (sqlite3_changes(ms->ms_db) == 0) {
        return eddy_error_set(err, EDDY_ERR_NOT_FOUND, "no job %s", job_id);
    }
    return 0;
}

static int txn_exception_add(meta_sqlite_t *ms, void *arg, eddy_error_t *err)
{
    exception_args_t *a = arg;
    int rc = count_one(ms, ST_EX_COUNT, a->job_id, err);
    if (rc != 0) {
        return rc;
    }
    const eddy__meta_exception_t *e = a->e;
    sqlite3_stmt *st = stmt(ms, ST_EX_INSERT);
    rc = bind_text(st, 1, a->job_id) |
         bind_i64(st, 2, e->me_time_ms != 0 ? e->me_time_ms : now_ms(ms)) |
         bind_text(st, 3, e->me_task) | bind_i64(st, 4, e->me_subtask) |
         bind_text(st, 5, e->me_message);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    if ((rc = exec_stmt(ms, st, "recording an exception", err)) != 0) {
        return rc;
    }
    return trim(ms, ST_EX_TRIM, a->job_id,
                ms->ms_base.m_opts.mo_exception_history, err);
}

static int sq_exception_add(eddy__meta_t *m, const char *job_id,
                            const eddy__meta_exception_t *e, eddy_error_t *err)
{
    exception_args_t a = {job_id, e};
    return in_txn((meta_sqlite_t *)m, true, txn_exception_add, &a, err);
}

static int sq_exception_list(eddy__meta_t *m, const char *job_id,
                             eddy__meta_exception_t ***out, size_t *n,
                             eddy_error_t *err)
{
    return history(m, job_id, ST_EX_LIST, row_exception, "listing exceptions",
                   (void ***)out, n, err);
}

/* ---- checkpoints ---- */

typedef struct checkpoint_args {
    const char *job_id;
    const eddy__meta_checkpoint_t *c;
    int retained;
} checkpoint_args_t;

static int txn_checkpoint_add(meta_sqlite_t *ms, void *arg, eddy_error_t *err)
{
    checkpoint_args_t *a = arg;
    const eddy__meta_checkpoint_t *c = a->c;
    int rc = count_one(ms, ST_CK_COUNT, a->job_id, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = stmt(ms, ST_CK_EXISTS);
    rc = bind_text(st, 1, a->job_id) | bind_i64(st, 2, c->mc_id);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    rc = step_row(ms, st, "looking up a checkpoint", err);
    if (rc == 1) {
        stmt_done(st);
        return eddy_error_set(err, EDDY_ERR_STATE,
                              "checkpoint %lld of job %s is already recorded",
                              (long long)c->mc_id, a->job_id);
    }
    if (rc < 0) {
        return rc;
    }
    st = stmt(ms, ST_CK_INSERT);
    rc = bind_text(st, 1, a->job_id) | bind_i64(st, 2, c->mc_id) |
         bind_text(st, 3, c->mc_path) | bind_i64(st, 4, c->mc_savepoint) |
         bind_i64(st, 5, c->mc_size_bytes) |
         bind_i64(st, 6, c->mc_duration_ms) |
         bind_i64(st, 7, c->mc_time_ms != 0 ? c->mc_time_ms : now_ms(ms));
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    if ((rc = exec_stmt(ms, st, "recording a checkpoint", err)) != 0) {
        return rc;
    }
    if (c->mc_savepoint) {
        return 0; /* savepoints are never dropped; retention is unchanged */
    }
    return trim(ms, ST_CK_TRIM, a->job_id, a->retained, err);
}

static int sq_checkpoint_add(eddy__meta_t *m, const char *job_id,
                             const eddy__meta_checkpoint_t *c, int retained,
                             eddy_error_t *err)
{
    checkpoint_args_t a = {job_id, c, retained};
    return in_txn((meta_sqlite_t *)m, true, txn_checkpoint_add, &a, err);
}

static int sq_checkpoint_list(eddy__meta_t *m, const char *job_id,
                              eddy__meta_checkpoint_t ***out, size_t *n,
                              eddy_error_t *err)
{
    return history(m, job_id, ST_CK_LIST, row_checkpoint, "listing checkpoints",
                   (void ***)out, n, err);
}

static int txn_checkpoint_latest(meta_sqlite_t *ms, void *arg,
                                 eddy_error_t *err)
{
    get_args_t *a = arg;
    eddy__job_state_t cur;
    int rc = job_state(ms, a->job_id, &cur, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = stmt(ms, ST_CK_LATEST);
    rc = bind_text(st, 1, a->job_id) | bind_i64(st, 2, a->flag);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    rc = step_row(ms, st, "reading the latest checkpoint", err);
    if (rc <= 0) {
        return rc; /* none (0, *out stays NULL) or an error */
    }
    rc = row_checkpoint(ms, st, a->out, err);
    stmt_done(st);
    return rc;
}

static int sq_checkpoint_latest(eddy__meta_t *m, const char *job_id,
                                bool include_savepoints,
                                eddy__meta_checkpoint_t **out,
                                eddy_error_t *err)
{
    get_args_t a = {.job_id = job_id, .flag = include_savepoints, .out = out};
    return in_txn((meta_sqlite_t *)m, false, txn_checkpoint_latest, &a, err);
}

/* ---- savepoint requests ---- */

/* Looks a request up: 1 with *out, 0 if the job has no such request, or
 * an error. */
static int sp_lookup(meta_sqlite_t *ms, const char *job_id,
                     const char *request_id, eddy__savepoint_status_t *out,
                     eddy_error_t *err)
{
    sqlite3_stmt *st = stmt(ms, ST_SP_STATUS);
    int rc = bind_text(st, 1, job_id) | bind_text(st, 2, request_id);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    rc = step_row(ms, st, "reading a savepoint request", err);
    if (rc != 1) {
        return rc;
    }
    rc = parse_sp_status((const char *)sqlite3_column_text(st, 0), out);
    stmt_done(st);
    if (rc != 0) {
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "metadata store %s: bad savepoint status",
                              ms->ms_path);
    }
    return 1;
}

/* The request's status: 0, or EDDY_ERR_NOT_FOUND naming the job or the
 * request, whichever is missing. */
static int sp_status(meta_sqlite_t *ms, const char *job_id,
                     const char *request_id, eddy__savepoint_status_t *out,
                     eddy_error_t *err)
{
    eddy__job_state_t cur;
    int rc = job_state(ms, job_id, &cur, err);
    if (rc != 0) {
        return rc;
    }
    rc = sp_lookup(ms, job_id, request_id, out, err);
    if (rc == 0) {
        return eddy_error_set(err, EDDY_ERR_NOT_FOUND,
                              "no savepoint request %s for job %s", request_id,
                              job_id);
    }
    return rc < 0 ? rc : 0;
}

static int txn_savepoint_begin(meta_sqlite_t *ms, void *arg, eddy_error_t *err)
{
    get_args_t *a = arg;
    eddy__job_state_t cur;
    eddy__savepoint_status_t status;
    int rc = job_state(ms, a->job_id, &cur, err);
    if (rc != 0) {
        return rc;
    }
    rc = sp_lookup(ms, a->job_id, a->key, &status, err);
    if (rc == 1) {
        return eddy_error_set(err, EDDY_ERR_STATE,
                              "savepoint request %s of job %s already exists",
                              a->key, a->job_id);
    }
    if (rc < 0) {
        return rc;
    }
    sqlite3_stmt *st = stmt(ms, ST_SP_INSERT);
    rc = bind_text(st, 1, a->job_id) | bind_text(st, 2, a->key) |
         bind_i64(st, 3, now_ms(ms));
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    if ((rc = exec_stmt(ms, st, "recording a savepoint request", err)) != 0) {
        return rc;
    }
    return trim(ms, ST_SP_TRIM, a->job_id,
                ms->ms_base.m_opts.mo_savepoint_history, err);
}

static int sq_savepoint_begin(eddy__meta_t *m, const char *job_id,
                              const char *request_id, eddy_error_t *err)
{
    get_args_t a = {.job_id = job_id, .key = request_id};
    return in_txn((meta_sqlite_t *)m, true, txn_savepoint_begin, &a, err);
}

typedef struct sp_end_args {
    const char *job_id;
    const char *request_id;
    eddy__savepoint_status_t status;
    const char *text;
} sp_end_args_t;

static int txn_savepoint_end(meta_sqlite_t *ms, void *arg, eddy_error_t *err)
{
    sp_end_args_t *a = arg;
    eddy__savepoint_status_t cur;
    int rc = sp_status(ms, a->job_id, a->request_id, &cur, err);
    if (rc != 0) {
        return rc;
    }
    if (cur != EDDY__SAVEPOINT_IN_PROGRESS) {
        return eddy_error_set(
            err, EDDY_ERR_STATE, "savepoint request %s of job %s is already %s",
            a->request_id, a->job_id, eddy__savepoint_status_name(cur));
    }
    bool ok = a->status == EDDY__SAVEPOINT_COMPLETED;
    sqlite3_stmt *st = stmt(ms, ST_SP_END);
    rc = bind_text(st, 1, a->job_id) | bind_text(st, 2, a->request_id) |
         bind_text(st, 3, eddy__savepoint_status_name(a->status)) |
         bind_text(st, 4, ok ? a->text : NULL) |
         bind_text(st, 5, ok ? NULL : a->text) | bind_i64(st, 6, now_ms(ms));
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    return exec_stmt(ms, st, "finishing a savepoint request", err);
}

static int sq_savepoint_end(eddy__meta_t *m, const char *job_id,
                            const char *request_id,
                            eddy__savepoint_status_t status, const char *text,
                            eddy_error_t *err)
{
    sp_end_args_t a = {job_id, request_id, status, text};
    return in_txn((meta_sqlite_t *)m, true, txn_savepoint_end, &a, err);
}

static int txn_savepoint_get(meta_sqlite_t *ms, void *arg, eddy_error_t *err)
{
    get_args_t *a = arg;
    eddy__savepoint_status_t cur;
    int rc = sp_status(ms, a->job_id, a->key, &cur, err);
    if (rc != 0) {
        return rc;
    }
    sqlite3_stmt *st = stmt(ms, ST_SP_GET);
    rc = bind_text(st, 1, a->job_id) | bind_text(st, 2, a->key);
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    rc = step_row(ms, st, "reading a savepoint request", err);
    if (rc <= 0) {
        /* Not reachable inside the transaction that just found it. */
        return rc < 0 ? rc
                      : eddy_error_set(err, EDDY_ERR_NOT_FOUND,
                                       "no savepoint request %s", a->key);
    }
    rc = row_savepoint(ms, st, a->out, err);
    stmt_done(st);
    return rc;
}

static int sq_savepoint_get(eddy__meta_t *m, const char *job_id,
                            const char *request_id,
                            eddy__meta_savepoint_t **out, eddy_error_t *err)
{
    get_args_t a = {.job_id = job_id, .key = request_id, .out = out};
    return in_txn((meta_sqlite_t *)m, false, txn_savepoint_get, &a, err);
}

static int sq_savepoint_list(eddy__meta_t *m, const char *job_id,
                             eddy__meta_savepoint_t ***out, size_t *n,
                             eddy_error_t *err)
{
    return history(m, job_id, ST_SP_LIST, row_savepoint,
                   "listing savepoint requests", (void ***)out, n, err);
}

typedef struct abandon_args {
    const char *error;
    int *count;
} abandon_args_t;

static int txn_savepoints_abandon(meta_sqlite_t *ms, void *arg,
                                  eddy_error_t *err)
{
    abandon_args_t *a = arg;
    sqlite3_stmt *st = stmt(ms, ST_SP_ABANDON);
    int rc = bind_text(st, 1, a->error) | bind_i64(st, 2, now_ms(ms));
    if (rc != SQLITE_OK) {
        return bind_fail(ms, st, rc, err);
    }
    if ((rc = exec_stmt(ms, st, "abandoning savepoint requests", err)) != 0) {
        return rc;
    }
    *a->count = sqlite3_changes(ms->ms_db);
    return 0;
}

static int sq_savepoints_abandon(eddy__meta_t *m, const char *error, int *count,
                                 eddy_error_t *err)
{
    abandon_args_t a = {error, count};
    *count = 0;
    return in_txn((meta_sqlite_t *)m, true, txn_savepoints_abandon, &a, err);
}

/* ---- open, schema, close ---- */

/* Runs a one-off query for one integer (open-time checks). */
static int query_i64(sqlite3 *db, const char *path, const char *sql,
                     int64_t *out, eddy_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            *out = 0;
            rc = SQLITE_OK;
        }
    }
    int ret = rc == SQLITE_OK ? 0 : sq_fail(db, path, rc, sql, err);
    sqlite3_finalize(st);
    return ret;
}

static int exec_sql(sqlite3 *db, const char *path, const char *sql,
                    const char *what, eddy_error_t *err)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_fail(db, path, rc, what, err);
}

/*
 * Reads what the file is: *version 0 for an empty database (to be
 * created), else its schema version. Refuses a file that is not a SQLite
 * database, another program's database, and a newer eddy's store. Runs once
 * before anything is written (so a wrong path is never modified) and again
 * inside the migration transaction (another process may have created or
 * migrated the store in between).
 */
static int schema_check(meta_sqlite_t *ms, int64_t *version, eddy_error_t *err)
{
    sqlite3 *db = ms->ms_db;
    const char *path = ms->ms_path;
    int64_t has_version = 0, tables = 0, app_id = 0;
    int rc;
    *version = 0;
    /* The first read of the file header: a file that is not a database
     * fails here. */
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1,
                                 &st, NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_step(st);
    }
    if (src == SQLITE_ROW) {
        tables = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if ((src & 0xff) == SQLITE_NOTADB) {
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "%s is not a SQLite database, so not an eddy "
                              "metadata store: check metadata.store",
                              path);
    }
    if (src != SQLITE_ROW) {
        return sq_fail(db, path, src, "reading the schema", err);
    }
    if ((rc = query_i64(db, path,
                        "SELECT count(*) FROM sqlite_master WHERE type = "
                        "'table' AND name = 'schema_version'",
                        &has_version, err)) != 0 ||
        (rc = query_i64(db, path, "PRAGMA application_id", &app_id, err)) !=
            0) {
        return rc;
    }
    if (has_version == 0 && (tables != 0 || app_id != 0)) {
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "%s is a SQLite database but not an eddy "
                              "metadata store (it has no schema_version "
                              "table): check metadata.store",
                              path);
    }
    if (has_version == 0) {
        return 0;
    }
    if (app_id != APP_ID) {
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "%s is not an eddy metadata store (its "
                              "application id is %lld): check metadata.store",
                              path, (long long)app_id);
    }
    if ((rc = query_i64(db, path,
                        "SELECT coalesce(max(version), 0) FROM schema_version",
                        version, err)) != 0) {
        return rc;
    }
    if (*version < 1 || *version > SCHEMA_VERSION) {
        return eddy_error_set(err, EDDY_ERR_UNSUPPORTED,
                              "metadata store %s has schema version %lld, "
                              "%s this eddy understands (1 to %d)%s",
                              path, (long long)*version,
                              *version < 1 ? "not one" : "newer than",
                              SCHEMA_VERSION,
                              *version < 1 ? ""
                                           : ": run the eddy that wrote it, "
                                             "or a newer one");
    }
    return 0;
}

/* Creates the schema or brings it up to SCHEMA_VERSION; runs inside the
 * open transaction. */
static int schema_upgrade(meta_sqlite_t *ms, eddy_error_t *err)
{
    sqlite3 *db = ms->ms_db;
    const char *path = ms->ms_path;
    int64_t version;
    int rc = schema_check(ms, &version, err);
    if (rc != 0) {
        return rc;
    }
    if (version == 0) {
        rc = exec_sql(db, path,
                      "PRAGMA application_id = " STR(
                          APP_ID) ";"
                                  "CREATE TABLE schema_version ("
                                  " version INTEGER PRIMARY KEY NOT NULL,"
                                  " applied_ms INTEGER NOT NULL);",
                      "creating the schema", err);
        if (rc != 0) {
            return rc;
        }
    }
    for (int64_t v = version; v < SCHEMA_VERSION; v++) {
        char what[64];
        snprintf(what, sizeof(what), "migrating the schema to version %lld",
                 (long long)v + 1);
        if ((rc = exec_sql(db, path, migrations[v], what, err)) != 0) {
            return rc;
        }
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(db,
                                "INSERT INTO schema_version (version, "
                                "applied_ms) VALUES (?1, ?2)",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_int64(st, 1, v + 1) |
                 sqlite3_bind_int64(st, 2, now_ms(ms));
        }
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(st);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        int ret = rc == SQLITE_OK ? 0 : sq_fail(db, path, rc, what, err);
        sqlite3_finalize(st);
        if (ret != 0) {
            return ret;
        }
    }
    return 0;
}

static int txn_schema(meta_sqlite_t *ms, void *arg, eddy_error_t *err)
{
    (void)arg;
    return schema_upgrade(ms, err);
}

/* Creates the file (0600: job arguments may carry secrets) if it does not
 * exist, so a missing directory is reported with errno's words. */
static int create_file(const char *path, bool *created, eddy_error_t *err)
{
    *created = false;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        *created = true;
        return 0;
    }
    if (errno == EEXIST) {
        return 0;
    }
    int e = errno;
    eddy_error_set(err, EDDY_ERR_IO, "cannot create metadata store %s: %s",
                   path, strerror(e));
    if (err != NULL) {
        err->sys_errno = e;
    }
    return EDDY_ERR_IO;
}

/* Makes a new file's directory entry durable, so that a power loss right
 * after the first commit cannot lose the whole store. */
static void sync_parent_dir(const char *path)
{
    char *dir = eddy__strdup(path);
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash == dir) {
        d = "/";
    } else if (slash != NULL) {
        *slash = '\0';
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    eddy__free(dir);
}

static void sq_close(eddy__meta_t *m)
{
    meta_sqlite_t *ms = (meta_sqlite_t *)m;
    for (int i = 0; i < ST__COUNT; i++) {
        sqlite3_finalize(ms->ms_stmts[i]);
    }
    /* close_v2: a statement left unfinalized by a bug would make plain
     * close fail and leak the connection; v2 closes when it is done. */
    sqlite3_close_v2(ms->ms_db);
    pthread_mutex_destroy(&ms->ms_lock);
    eddy__free(ms->ms_path);
#ifndef NDEBUG
    memset(ms, 0xff, sizeof(*ms));
#endif
    eddy__free(ms);
}

/* Connection settings: per connection, outside any transaction. */
static int configure(meta_sqlite_t *ms, bool memory, eddy_error_t *err)
{
    sqlite3 *db = ms->ms_db;
    const char *path = ms->ms_path;
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, ms->ms_base.m_opts.mo_busy_timeout_ms);
    /* A crafted database cannot make our statements run its SQL functions
     * through views or triggers, nor corrupt itself via writable_schema. */
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    int64_t version;
    int rc = exec_sql(db, path, "PRAGMA foreign_keys = ON",
                      "enabling foreign keys", err);
    if (rc != 0 || (rc = schema_check(ms, &version, err)) != 0) {
        return rc;
    }
    /* WAL is a persistent property of the file: set only now that the
     * file is known to be ours (or empty). */
    sqlite3_stmt *st = NULL;
    int src =
        sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_step(st);
    }
    if (src != SQLITE_ROW) {
        rc = sq_fail(db, path, src, "switching to WAL", err);
        sqlite3_finalize(st);
        return rc;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    bool wal = mode != NULL && strcmp(mode, "wal") == 0;
    char got[16];
    eddy__fmt(got, sizeof(got), "%s", mode != NULL ? mode : "?");
    sqlite3_finalize(st);
    if (!wal && !memory) {
        return eddy_error_set(err, EDDY_ERR_UNSUPPORTED,
                              "metadata store %s cannot use a write-ahead "
                              "log (journal mode stays '%s'); put it on a "
                              "local file system",
                              path, got);
    }
    return exec_sql(db, path, "PRAGMA synchronous = FULL",
                    "setting synchronous = FULL", err);
}

static int quick_check(meta_sqlite_t *ms, eddy_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(ms->ms_db, "PRAGMA quick_check", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_ROW) {
        int ret = ms_fail(ms, rc, "checking the database", err);
        sqlite3_finalize(st);
        return ret;
    }
    const char *res = (const char *)sqlite3_column_text(st, 0);
    int ret = 0;
    if (res == NULL || strcmp(res, "ok") != 0) {
        ret = eddy_error_set(err, EDDY_ERR_FORMAT,
                             "metadata store %s is corrupt: %s", ms->ms_path,
                             res != NULL ? res : "?");
    }
    sqlite3_finalize(st);
    return ret;
}

int eddy__meta_sqlite_schema_version(void)
{
    return SCHEMA_VERSION;
}

int eddy__meta_sqlite_open(const char *path, const eddy__meta_options_t *opts,
                           eddy__meta_t **out, eddy_error_t *err)
{
    meta_sqlite_t *ms = NULL;
    bool created = false;
    int rc;
    if (path == NULL || *path == '\0' || out == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "no metadata store path given");
    }
    *out = NULL;
    if (!sqlite3_threadsafe()) {
        return eddy_error_set(err, EDDY_ERR_UNSUPPORTED,
                              "this SQLite library was built without thread "
                              "support (SQLITE_THREADSAFE=0)");
    }
    bool memory = strcmp(path, ":memory:") == 0;
    if (!memory && (rc = create_file(path, &created, err)) != 0) {
        return rc;
    }

    ms = eddy__calloc(1, sizeof(*ms));
    ms->ms_base.m_ops = &sqlite_ops;
    eddy__meta_options_init(&ms->ms_base.m_opts);
    if (opts != NULL) {
        eddy__meta_options_t *o = &ms->ms_base.m_opts;
        if (opts->mo_busy_timeout_ms > 0) {
            o->mo_busy_timeout_ms = opts->mo_busy_timeout_ms;
        }
        if (opts->mo_exception_history > 0) {
            o->mo_exception_history = opts->mo_exception_history;
        }
        if (opts->mo_transition_history > 0) {
            o->mo_transition_history = opts->mo_transition_history;
        }
        if (opts->mo_savepoint_history > 0) {
            o->mo_savepoint_history = opts->mo_savepoint_history;
        }
        if (opts->mo_clock_ms != NULL) {
            o->mo_clock_ms = opts->mo_clock_ms;
            o->mo_clock_arg = opts->mo_clock_arg;
        }
    }
    pthread_mutex_init(&ms->ms_lock, NULL);
    ms->ms_path = eddy__strdup(path);

    int src = sqlite3_open_v2(
        path, &ms->ms_db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = sq_fail(ms->ms_db, path, src, "opening", err);
        goto fail;
    }
    if ((rc = configure(ms, memory, err)) != 0) {
        goto fail;
    }
    /* The transaction statements are needed before the schema exists. */
    for (int i = ST_BEGIN_WRITE; i <= ST_ROLLBACK; i++) {
        src = sqlite3_prepare_v3(ms->ms_db, stmt_sql[i], -1,
                                 SQLITE_PREPARE_PERSISTENT, &ms->ms_stmts[i],
                                 NULL);
        if (src != SQLITE_OK) {
            rc = ms_fail(ms, src, stmt_sql[i], err);
            goto fail;
        }
    }
    if ((rc = in_txn(ms, true, txn_schema, NULL, err)) != 0 ||
        (rc = quick_check(ms, err)) != 0) {
        goto fail;
    }
    for (int i = ST_ROLLBACK + 1; i < ST__COUNT; i++) {
        src = sqlite3_prepare_v3(ms->ms_db, stmt_sql[i], -1,
                                 SQLITE_PREPARE_PERSISTENT, &ms->ms_stmts[i],
                                 NULL);
        if (src != SQLITE_OK) {
            rc = ms_fail(ms, src, stmt_sql[i], err);
            goto fail;
        }
    }
    if (created) {
        sync_parent_dir(path);
    }
    *out = &ms->ms_base;
    return 0;

fail:
    sq_close(&ms->ms_base);
    if (created) {
        /* Leave nothing behind that a later open would mistake for a
         * store this call had made. */
        unlink(path);
    }
    return rc;
}

static const eddy__meta_ops_t sqlite_ops = {
    .mo_name = "sqlite",
    .mo_close = sq_close,
    .mo_job_create = sq_job_create,
    .mo_job_set_state = sq_job_set_state,
    .mo_job_get = sq_job_get,
    .mo_job_list = sq_job_list,
    .mo_job_delete = sq_job_delete,
    .mo_transition_list = sq_transition_list,
    .mo_exception_add = sq_exception_add,
    .mo_exception_list = sq_exception_list,
    .mo_checkpoint_add = sq_checkpoint_add,
    .mo_checkpoint_list = sq_checkpoint_list,
    .mo_checkpoint_latest = sq_checkpoint_latest,
    .mo_savepoint_begin = sq_savepoint_begin,
    .mo_savepoint_end = sq_savepoint_end,
    .mo_savepoint_get = sq_savepoint_get,
    .mo_savepoint_list = sq_savepoint_list,
    .mo_savepoints_abandon = sq_savepoints_abandon,
};
