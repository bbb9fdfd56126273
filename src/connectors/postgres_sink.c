/*
 * eddy — the PostgreSQL sink: rows through libpq, exactly once through
 * PREPARE TRANSACTION.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN (DESIGN.md §6; the protocol is spelled out in docs/checkpoints.md).
 *
 * Writing. Inserts stream through COPY ... FROM STDIN: rows are encoded in
 * COPY text format into a 64 KiB buffer that is handed to libpq when full,
 * so the server works while the task does and no row costs a round trip.
 * Measured here (1000-row batches, 4 columns, primary key): COPY streamed
 * over a whole transaction 550-690k rows/s; one COPY, multi-row INSERT or
 * INSERT ... SELECT FROM unnest(arrays) per batch 230-330k rows/s, since each
 * waits for the server. Upserts cannot use COPY: ON CONFLICT needs a staging
 * table, and PostgreSQL refuses to PREPARE a transaction that touched a
 * temporary one. They go in multi-row INSERT ... VALUES ... ON CONFLICT
 * statements with parameters (prepared once; 120-180k rows/s, as fast as
 * the unnest form), one in flight while the next batch fills. A statement
 * must not hit a key twice, so a batch keeps the last row of each key.
 *
 * Two-phase commit (exactly-once, checkpointing on). A transaction begins
 * with the first row after a barrier. At barrier n (oc_snapshot) the open
 * transaction is finished and prepared under the id
 *     eddy:<name>:<subtask>:<n>:<job id>
 * and every prepared, uncommitted id of the subtask ("pending") goes into
 * operator list state. oc_checkpoint_complete(n) commits the pending ids of
 * checkpoints <= n. An aborted checkpoint needs no action: its transaction
 * stays pending and the next completed checkpoint, whose state covers its
 * rows, commits it.
 *
 * Restore (oc_open with op_restore). Subtask i of P owns the state written
 * by old subtasks j with j % P == i, and the prepared transactions whose id
 * names such a j. It commits the ids that state names (an id that no longer
 * exists was committed before the failure), then rolls back every other
 * prepared transaction of the sink that it owns: those were prepared after
 * the restored checkpoint, and the sources replay their rows. The list is
 * UNION-redistributed and filtered by that rule, so ownership of state and
 * of orphans is one function, whatever order SPLIT would deal elements in.
 * Subtasks of the running attempt are safe: their ids name j < P, owned by
 * themselves, and a subtask scans before it prepares anything. Matching
 * ignores the job id on purpose: a job restarted from a savepoint gets a
 * new id but must clean up after its predecessor. Hence two running jobs
 * must not share a name on one database.
 *
 * Locks. A prepared transaction keeps its row locks until committed. An
 * upsert of a key that the subtask's own pending transaction wrote would
 * wait for that lock, and the commit that releases it needs the completion
 * notification, which the blocked task thread would never receive. So while
 * the subtask has a pending transaction, upserts wait in memory and are sent
 * once it commits. If a barrier comes first (a notification slower than the
 * data, an aborted checkpoint), no transaction is open; the waiting rows are
 * stored in that checkpoint and stay first in line for the next one, and a
 * restore writes them first. Inserts do not wait: a row conflicting with a
 * pending one is a duplicate key, an error anyway (set lock_timeout through
 * the conninfo's options to turn that wait into a failure); their commits
 * use a second connection while the first streams the next transaction.
 *
 * End of input. With checkpointing a final checkpoint follows it (the task
 * stays until one taken after its end completes: eddy__op_final_checkpoint),
 * so the sink only finishes sending; that checkpoint prepares the last
 * transaction and its completion commits it, so a failure elsewhere in the
 * job can never make this subtask's rows be written twice. Without
 * checkpointing the sink commits everything then.
 *
 * At-least-once with checkpointing: COMMIT at each barrier. Without
 * checkpointing (either guarantee): every COPY of batch_rows rows and every
 * upsert statement commits on its own, and so does the rest at each flush
 * (the task idles) and at the end of the input.
 *
 * THREADS. Everything runs on the subtask's thread, which owns the
 * connections.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "common/bytes.h"
#include "runtime/runtime.h"

/*
 * Operator list state (UNION): one element per pending transaction and one
 * for the rows waiting in memory, each naming the subtask that wrote it:
 *   TXN   u8 1, subtask:varint, checkpoint:u64, gid:blob
 *   ROWS  u8 2, subtask:varint, ncols:varint, nrows:varint, then per value
 *         varint (length + 1, or 0 for NULL) and the bytes
 */
#define PG_STATE_LIST "postgres.sink"
#define PG_ELEM_TXN 1
#define PG_ELEM_ROWS 2
#define PG_COPY_CHUNK (64 * 1024)
#define PG_MAX_PARAMS 65535 /* the protocol's limit per statement */
#define PG_MAX_COLUMNS 1600 /* PostgreSQL's limit per table */
#define PG_NAME_MAX 64
#define PG_GID_MAX 200 /* PostgreSQL's GIDSIZE */
#define PG_DEFAULT_BATCH 1000
#define PG_UPSERT_STMT "eddy_upsert"
#define PG_NULL SIZE_MAX
/* SQLSTATE of "prepared transaction with identifier ... does not exist". */
#define PG_UNDEFINED_OBJECT "42704"

/* ---- configuration (graph lifetime, in the environment's arena) ---- */

typedef struct pg_conf {
    const char *pc_conninfo;
    const char *pc_table;
    const char **pc_cols;
    int pc_ncols;
    int *pc_keys; /* indexes into pc_cols */
    int pc_nkeys;
    int pc_guarantee;
    int pc_format;
    eddy_pg_row_fn pc_to_row;
    void *pc_opaque;
    size_t pc_batch_rows;
    const char *pc_txn_name; /* NULL: derived at open */
} pg_conf_t;

/* ---- instances ---- */

/* Upsert rows for one statement. */
typedef struct pg_batch {
    eddy__bytes_t pb_data; /* values, each followed by a NUL */
    size_t *pb_off;        /* row * ncols + col; PG_NULL = SQL NULL */
    size_t *pb_len;
    size_t pb_rows;
    uint32_t *pb_slots; /* key -> row + 1 (0 = free), open addressing */
    size_t pb_mask;
} pg_batch_t;

typedef struct pg_txn {
    int64_t tx_ckpt;
    char tx_gid[PG_GID_MAX];
} pg_txn_t;

typedef struct pg_sink {
    eddy__op_t *ps_op;
    const pg_conf_t *ps_conf;
    PGconn *ps_conn;  /* rows; also commits while it has no transaction */
    PGconn *ps_cconn; /* commits while ps_conn streams (inserts) */
    char ps_where[160];
    char ps_what[160]; /* "writing to table t", for messages */
    char ps_name[PG_NAME_MAX + 1];
    char ps_prefix[PG_NAME_MAX + 8]; /* "eddy:<name>:" */
    int ps_subtask;
    int ps_par;
    bool ps_ckpt;   /* checkpointing on */
    bool ps_2pc;    /* exactly-once with checkpointing */
    bool ps_upsert; /* key columns given */
    bool ps_in_txn;
    bool ps_in_copy;
    size_t ps_copy_rows;   /* rows in the current COPY */
    eddy__bytes_t ps_copy; /* COPY data not yet given to libpq */
    eddy__bytes_t ps_sql;
    char *ps_copy_sql;
    pg_txn_t *ps_pending;
    size_t ps_npending;
    size_t ps_pending_cap;
    size_t ps_stmt_rows;  /* upsert rows per statement */
    pg_batch_t *ps_cur;   /* filling */
    pg_batch_t *ps_sent;  /* statement in flight */
    pg_batch_t **ps_held; /* full batches waiting for pending commits */
    size_t ps_nheld;
    size_t ps_held_cap;
    pg_batch_t **ps_spare;
    size_t ps_nspare;
    size_t ps_spare_cap;
    const char **ps_params;
    const char **ps_vals; /* the row being written */
    size_t *ps_lens;
    eddy__bytes_t ps_tmp; /* default parsers: unescaped values */
    size_t *ps_tmp_off;
} pg_sink_t;

static int write_row(pg_sink_t *ps, const char *const *vals, size_t *lens);

/* ---- messages ---- */

/* The first line of a libpq message, without its "ERROR:  " prefix. */
static void first_line(char *dst, size_t size, const char *src)
{
    if (src == NULL) {
        src = "";
    }
    const char *sep = strstr(src, ":  ");
    if (sep != NULL && sep - src <= 7) {
        src = sep + 3;
    }
    size_t n = strcspn(src, "\n");
    if (n >= size) {
        n = size - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int fail_no_2pc(pg_sink_t *ps)
{
    return eddy__op_fail(ps->ps_op, EDDY_ERR_EXTERNAL,
                         "PostgreSQL at %s has max_prepared_transactions = "
                         "0: exactly-once needs it above 0 (postgresql.conf, "
                         "then a restart) or EDDY_PG_AT_LEAST_ONCE",
                         ps->ps_where);
}

/* Fails the operator with the server's error while doing `what`. `r` may
 * be NULL: the connection's message is used then. */
static int pg_fail(pg_sink_t *ps, PGconn *c, const PGresult *r,
                   const char *what)
{
    const char *state = NULL, *primary = NULL, *detail = NULL;
    if (r != NULL) {
        state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
        if (detail == NULL) {
            /* COPY names the line and column of a bad value there. */
            detail = PQresultErrorField(r, PG_DIAG_CONTEXT);
        }
    }
    char msg[160], more[120] = "";
    first_line(msg, sizeof(msg), primary != NULL ? primary : PQerrorMessage(c));
    bool lost = PQstatus(c) == CONNECTION_BAD ||
                (state != NULL && (strncmp(state, "08", 2) == 0 ||
                                   strncmp(state, "57P0", 4) == 0));
    if (lost) {
        return eddy__op_fail(ps->ps_op, EDDY_ERR_EXTERNAL,
                             "lost the connection to PostgreSQL at %s while "
                             "%s: %s",
                             ps->ps_where, what, msg);
    }
    if (state != NULL && strcmp(state, "55000") == 0 &&
        strstr(msg, "prepared transactions are disabled") != NULL) {
        return fail_no_2pc(ps);
    }
    if (detail != NULL) {
        char d[100];
        first_line(d, sizeof(d), detail);
        snprintf(more, sizeof(more), " (%s)", d);
    }
    return eddy__op_fail(ps->ps_op, EDDY_ERR_EXTERNAL,
                         "PostgreSQL at %s: %s failed: %s%s", ps->ps_where,
                         what, msg, more);
}

/* Runs one statement without parameters; 0 or the operator's failure. */
static int pg_exec(pg_sink_t *ps, PGconn *c, const char *sql, const char *what)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = pg_fail(ps, c, r, what);
    }
    PQclear(r);
    return rc;
}

/* COMMIT or ROLLBACK PREPARED; 1 if no such transaction exists. */
static int finish_prepared(pg_sink_t *ps, PGconn *c, const char *verb,
                           const char *gid)
{
    char sql[PG_GID_MAX + 32], what[PG_GID_MAX + 64];
    /* Ids only hold [A-Za-z0-9_.:-] (checked when read), so they need no
     * escaping inside the literal. */
    snprintf(sql, sizeof(sql), "%s PREPARED '%s'", verb, gid);
    snprintf(what, sizeof(what), "%s PREPARED '%s'", verb, gid);
    PGresult *r = PQexec(c, sql);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        rc = state != NULL && strcmp(state, PG_UNDEFINED_OBJECT) == 0
                 ? 1
                 : pg_fail(ps, c, r, what);
    }
    PQclear(r);
    return rc;
}

/* ---- connections ---- */

/* "host:port" from the conninfo, for messages before a connection exists
 * (never the conninfo itself: it may hold a password). */
static void describe_target(const char *conninfo, char *out, size_t size)
{
    const char *host = NULL, *port = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }
        if (strcmp(o->keyword, "host") == 0 ||
            (host == NULL && strcmp(o->keyword, "hostaddr") == 0)) {
            host = o->val;
        } else if (strcmp(o->keyword, "port") == 0) {
            port = o->val;
        }
    }
    if (host == NULL) {
        host = getenv("PGHOST");
    }
    if (port == NULL) {
        port = getenv("PGPORT");
    }
    snprintf(out, size, "%s:%s", host != NULL ? host : "localhost",
             port != NULL ? port : "5432");
    PQconninfoFree(opts);
}

/* Server notices (NOTICE, WARNING) are not errors, and the library does
 * not print. */
static void ignore_notice(void *arg, const char *message)
{
    EDDY_UNUSED(arg);
    EDDY_UNUSED(message);
}

static int pg_connect(pg_sink_t *ps, PGconn **out)
{
    char app[96]; /* the server keeps the first 63 bytes */
    snprintf(app, sizeof(app), "eddy/%s/%d", ps->ps_name, ps->ps_subtask);
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {ps->ps_conf->pc_conninfo, app, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        char msg[160];
        first_line(msg, sizeof(msg),
                   c != NULL ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return eddy__op_fail(ps->ps_op, EDDY_ERR_EXTERNAL,
                             "cannot connect to PostgreSQL at %s: %s",
                             ps->ps_where, msg);
    }
    PQsetNoticeProcessor(c, ignore_notice, NULL);
    const char *host = PQhost(c), *port = PQport(c);
    if (host != NULL && host[0] != '\0' && port != NULL) {
        snprintf(ps->ps_where, sizeof(ps->ps_where), "%s:%s", host, port);
    }
    *out = c;
    return 0;
}

/* The connection for COMMIT PREPARED: the data connection when it has no
 * transaction, else the second one (opened on first use). */
static int commit_conn(pg_sink_t *ps, PGconn **out)
{
    if (!ps->ps_in_txn && !ps->ps_in_copy && ps->ps_sent == NULL) {
        *out = ps->ps_conn;
        return 0;
    }
    if (ps->ps_cconn == NULL) {
        int rc = pg_connect(ps, &ps->ps_cconn);
        if (rc != 0) {
            return rc;
        }
    }
    *out = ps->ps_cconn;
    return 0;
}

/* ---- SQL text ---- */

static void put_str(eddy__bytes_t *b, const char *s)
{
    eddy__bytes_put(b, s, strlen(s));
}

/* A quoted identifier: "na""me". */
static void put_ident(eddy__bytes_t *b, const char *name)
{
    eddy__bytes_put_u8(b, '"');
    for (const char *p = name; *p != '\0'; p++) {
        if (*p == '"') {
            eddy__bytes_put_u8(b, '"');
        }
        eddy__bytes_put_u8(b, (uint8_t)*p);
    }
    eddy__bytes_put_u8(b, '"');
}

static void put_cols(eddy__bytes_t *b, const pg_conf_t *pc)
{
    eddy__bytes_put_u8(b, '(');
    for (int i = 0; i < pc->pc_ncols; i++) {
        if (i > 0) {
            eddy__bytes_put_u8(b, ',');
        }
        put_ident(b, pc->pc_cols[i]);
    }
    eddy__bytes_put_u8(b, ')');
}

/* INSERT ... VALUES (rows × $n) ON CONFLICT (keys) DO UPDATE ..., in
 * ps_sql (NUL-terminated). */
static const char *upsert_sql(pg_sink_t *ps, size_t rows)
{
    const pg_conf_t *pc = ps->ps_conf;
    eddy__bytes_t *b = &ps->ps_sql;
    eddy__bytes_reset(b);
    put_str(b, "INSERT INTO ");
    put_str(b, pc->pc_table);
    eddy__bytes_put_u8(b, ' ');
    put_cols(b, pc);
    put_str(b, " VALUES ");
    size_t n = 1;
    for (size_t r = 0; r < rows; r++) {
        put_str(b, r > 0 ? ",(" : "(");
        for (int c = 0; c < pc->pc_ncols; c++) {
            char p[24];
            snprintf(p, sizeof(p), "%s$%zu", c > 0 ? "," : "", n++);
            put_str(b, p);
        }
        eddy__bytes_put_u8(b, ')');
    }
    put_str(b, " ON CONFLICT (");
    for (int k = 0; k < pc->pc_nkeys; k++) {
        if (k > 0) {
            eddy__bytes_put_u8(b, ',');
        }
        put_ident(b, pc->pc_cols[pc->pc_keys[k]]);
    }
    put_str(b, ") DO ");
    bool any = false;
    for (int c = 0; c < pc->pc_ncols; c++) {
        bool key = false;
        for (int k = 0; k < pc->pc_nkeys; k++) {
            key = key || pc->pc_keys[k] == c;
        }
        if (key) {
            continue;
        }
        put_str(b, any ? ", " : "UPDATE SET ");
        put_ident(b, pc->pc_cols[c]);
        put_str(b, " = EXCLUDED.");
        put_ident(b, pc->pc_cols[c]);
        any = true;
    }
    if (!any) {
        put_str(b, "NOTHING"); /* every column is a key column */
    }
    eddy__bytes_put_u8(b, '\0');
    return (const char *)b->b_data;
}

/* ---- inserts: COPY ---- */

/* Appends a value in COPY text format (\N is NULL). */
static void copy_value(eddy__bytes_t *b, const char *v, size_t n)
{
    if (v == NULL) {
        eddy__bytes_put(b, "\\N", 2);
        return;
    }
    const char *run = v;
    for (size_t i = 0; i < n; i++) {
        char esc;
        switch (v[i]) {
        case '\\':
            esc = '\\';
            break;
        case '\t':
            esc = 't';
            break;
        case '\n':
            esc = 'n';
            break;
        case '\r':
            esc = 'r';
            break;
        default:
            continue;
        }
        eddy__bytes_put(b, run, (size_t)(v + i - run));
        char e[2] = {'\\', esc};
        eddy__bytes_put(b, e, 2);
        run = v + i + 1;
    }
    eddy__bytes_put(b, run, (size_t)(v + n - run));
}

/* Reads the results after COPY ended or failed: the first error wins. */
static int copy_results(pg_sink_t *ps)
{
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(ps->ps_conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && rc == 0) {
            rc = pg_fail(ps, ps->ps_conn, r, ps->ps_what);
        }
        PQclear(r);
        if (st == PGRES_COPY_IN) {
            break; /* the end message was never sent: do not spin */
        }
    }
    ps->ps_in_copy = false;
    return rc;
}

static int copy_begin(pg_sink_t *ps)
{
    if (ps->ps_ckpt && !ps->ps_in_txn) {
        int rc = pg_exec(ps, ps->ps_conn, "BEGIN", ps->ps_what);
        if (rc != 0) {
            return rc;
        }
        ps->ps_in_txn = true;
    }
    PGresult *r = PQexec(ps->ps_conn, ps->ps_copy_sql);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        rc = pg_fail(ps, ps->ps_conn, r, ps->ps_what);
    } else {
        ps->ps_in_copy = true;
        ps->ps_copy_rows = 0;
    }
    PQclear(r);
    return rc;
}

/* Hands the buffered COPY data to libpq, which sends what fills its
 * buffer; an error the server already reported surfaces here. */
static int copy_push(pg_sink_t *ps)
{
    if (ps->ps_copy.b_len == 0) {
        return 0;
    }
    int ok = PQputCopyData(ps->ps_conn, (const char *)ps->ps_copy.b_data,
                           (int)ps->ps_copy.b_len);
    eddy__bytes_reset(&ps->ps_copy);
    if (ok != 1) {
        PQputCopyEnd(ps->ps_conn, "eddy: COPY data could not be sent");
        int rc = copy_results(ps);
        return rc != 0 ? rc : pg_fail(ps, ps->ps_conn, NULL, ps->ps_what);
    }
    return 0;
}

static int copy_end(pg_sink_t *ps)
{
    int rc = copy_push(ps);
    if (rc != 0 || !ps->ps_in_copy) {
        return rc;
    }
    if (PQputCopyEnd(ps->ps_conn, NULL) != 1) {
        rc = copy_results(ps);
        return rc != 0 ? rc : pg_fail(ps, ps->ps_conn, NULL, ps->ps_what);
    }
    return copy_results(ps);
}

static int copy_row(pg_sink_t *ps, const char *const *vals, const size_t *lens)
{
    if (!ps->ps_in_copy) {
        int rc = copy_begin(ps);
        if (rc != 0) {
            return rc;
        }
    }
    int ncols = ps->ps_conf->pc_ncols;
    for (int c = 0; c < ncols; c++) {
        if (c > 0) {
            eddy__bytes_put_u8(&ps->ps_copy, '\t');
        }
        copy_value(&ps->ps_copy, vals[c], lens[c]);
    }
    eddy__bytes_put_u8(&ps->ps_copy, '\n');
    ps->ps_copy_rows++;
    if (ps->ps_copy.b_len >= PG_COPY_CHUNK) {
        int rc = copy_push(ps);
        if (rc != 0) {
            return rc;
        }
    }
    /* Without checkpoints each COPY is its own transaction. */
    if (!ps->ps_ckpt && ps->ps_copy_rows >= ps->ps_conf->pc_batch_rows) {
        return copy_end(ps);
    }
    return 0;
}

/* ---- upserts: batches of rows ---- */

static pg_batch_t *batch_get(pg_sink_t *ps)
{
    if (ps->ps_nspare > 0) {
        return ps->ps_spare[--ps->ps_nspare];
    }
    size_t cells = ps->ps_stmt_rows * (size_t)ps->ps_conf->pc_ncols;
    size_t slots = 16;
    while (slots < 2 * ps->ps_stmt_rows) {
        slots *= 2;
    }
    pg_batch_t *b = eddy__calloc(1, sizeof(*b));
    b->pb_off = eddy__malloc(cells * sizeof(size_t));
    b->pb_len = eddy__malloc(cells * sizeof(size_t));
    b->pb_slots = eddy__calloc(slots, sizeof(uint32_t));
    b->pb_mask = slots - 1;
    return b;
}

static void batch_free(pg_batch_t *b)
{
    if (b != NULL) {
        eddy__bytes_free(&b->pb_data);
        free(b->pb_off);
        free(b->pb_len);
        free(b->pb_slots);
        free(b);
    }
}

/* Empties a batch and keeps it for reuse. */
static void batch_put(pg_sink_t *ps, pg_batch_t *b)
{
    eddy__bytes_reset(&b->pb_data);
    b->pb_rows = 0;
    memset(b->pb_slots, 0, (b->pb_mask + 1) * sizeof(uint32_t));
    eddy__grow((void **)&ps->ps_spare, &ps->ps_spare_cap, ps->ps_nspare + 1,
               sizeof(*ps->ps_spare));
    ps->ps_spare[ps->ps_nspare++] = b;
}

/* Hash of the row's key columns; false if one is NULL (NULLs never
 * conflict, so such rows are never merged). */
static bool key_hash(const pg_conf_t *pc, const char *const *vals,
                     const size_t *lens, uint64_t *out)
{
    uint64_t h = 0;
    for (int k = 0; k < pc->pc_nkeys; k++) {
        int c = pc->pc_keys[k];
        if (vals[c] == NULL) {
            return false;
        }
        h = (h ^ eddy__hash64(vals[c], lens[c])) * 0x9E3779B97F4A7C15ull;
    }
    *out = h;
    return true;
}

static bool same_key(const pg_conf_t *pc, const pg_batch_t *b, size_t row,
                     const char *const *vals, const size_t *lens)
{
    for (int k = 0; k < pc->pc_nkeys; k++) {
        int c = pc->pc_keys[k];
        size_t cell = row * (size_t)pc->pc_ncols + (size_t)c;
        if (b->pb_off[cell] == PG_NULL || b->pb_len[cell] != lens[c] ||
            memcmp(b->pb_data.b_data + b->pb_off[cell], vals[c], lens[c]) !=
                0) {
            return false;
        }
    }
    return true;
}

/* Adds a row, replacing an earlier row of the same key: within one
 * transaction only the last one counts, and a statement must not touch a
 * row twice. */
static void batch_add(const pg_conf_t *pc, pg_batch_t *b,
                      const char *const *vals, const size_t *lens)
{
    size_t row = b->pb_rows;
    uint64_t h;
    uint32_t *slot = NULL;
    if (key_hash(pc, vals, lens, &h)) {
        for (size_t i = (size_t)h & b->pb_mask;; i = (i + 1) & b->pb_mask) {
            if (b->pb_slots[i] == 0) {
                slot = &b->pb_slots[i];
                break;
            }
            if (same_key(pc, b, b->pb_slots[i] - 1, vals, lens)) {
                row = b->pb_slots[i] - 1;
                break;
            }
        }
    }
    for (int c = 0; c < pc->pc_ncols; c++) {
        size_t cell = row * (size_t)pc->pc_ncols + (size_t)c;
        if (vals[c] == NULL) {
            b->pb_off[cell] = PG_NULL;
            b->pb_len[cell] = 0;
            continue;
        }
        b->pb_off[cell] = b->pb_data.b_len;
        b->pb_len[cell] = lens[c];
        eddy__bytes_put(&b->pb_data, vals[c], lens[c]);
        eddy__bytes_put_u8(&b->pb_data, '\0');
    }
    if (row == b->pb_rows) {
        b->pb_rows++;
        if (slot != NULL) {
            *slot = (uint32_t)(row + 1);
        }
    }
}

/* Upserts wait while the subtask has a prepared, uncommitted transaction
 * (see "Locks" above). */
static bool holding(const pg_sink_t *ps)
{
    return ps->ps_upsert && ps->ps_2pc && ps->ps_npending > 0;
}

/* Reads the result of the statement in flight. */
static int upsert_wait(pg_sink_t *ps)
{
    pg_batch_t *b = ps->ps_sent;
    if (b == NULL) {
        return 0;
    }
    ps->ps_sent = NULL;
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(ps->ps_conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0) {
            rc = pg_fail(ps, ps->ps_conn, r, ps->ps_what);
        }
        PQclear(r);
    }
    batch_put(ps, b);
    return rc;
}

/* Sends a batch (taking it) once the previous statement is done. */
static int upsert_send(pg_sink_t *ps, pg_batch_t *b)
{
    int rc = upsert_wait(ps);
    if (rc == 0 && ps->ps_ckpt && !ps->ps_in_txn) {
        rc = pg_exec(ps, ps->ps_conn, "BEGIN", ps->ps_what);
        ps->ps_in_txn = rc == 0;
    }
    if (rc != 0) {
        batch_put(ps, b);
        return rc;
    }
    size_t n = b->pb_rows * (size_t)ps->ps_conf->pc_ncols;
    for (size_t i = 0; i < n; i++) {
        ps->ps_params[i] = b->pb_off[i] == PG_NULL
                               ? NULL
                               : (const char *)b->pb_data.b_data + b->pb_off[i];
    }
    int ok;
    if (b->pb_rows == ps->ps_stmt_rows) {
        ok = PQsendQueryPrepared(ps->ps_conn, PG_UPSERT_STMT, (int)n,
                                 ps->ps_params, NULL, NULL, 0);
    } else {
        ok = PQsendQueryParams(ps->ps_conn, upsert_sql(ps, b->pb_rows), (int)n,
                               NULL, ps->ps_params, NULL, NULL, 0);
    }
    if (!ok) {
        batch_put(ps, b);
        return pg_fail(ps, ps->ps_conn, NULL, ps->ps_what);
    }
    ps->ps_sent = b;
    return 0;
}

static int upsert_row(pg_sink_t *ps, const char *const *vals,
                      const size_t *lens)
{
    if (ps->ps_cur == NULL) {
        ps->ps_cur = batch_get(ps);
    }
    batch_add(ps->ps_conf, ps->ps_cur, vals, lens);
    if (ps->ps_cur->pb_rows < ps->ps_stmt_rows) {
        return 0;
    }
    pg_batch_t *b = ps->ps_cur;
    ps->ps_cur = NULL;
    if (holding(ps)) {
        eddy__grow((void **)&ps->ps_held, &ps->ps_held_cap, ps->ps_nheld + 1,
                   sizeof(*ps->ps_held));
        ps->ps_held[ps->ps_nheld++] = b;
        return 0;
    }
    return upsert_send(ps, b);
}

/* Sends the full batches that waited for pending commits, in order. */
static int upsert_release(pg_sink_t *ps)
{
    int rc = 0;
    for (size_t i = 0; i < ps->ps_nheld; i++) {
        if (rc == 0) {
            rc = upsert_send(ps, ps->ps_held[i]);
        } else {
            batch_put(ps, ps->ps_held[i]);
        }
    }
    ps->ps_nheld = 0;
    return rc;
}

/* ---- both paths ---- */

/* Gets every buffered row to the server and waits for it (not while
 * holding: the caller checks). */
static int drain(pg_sink_t *ps)
{
    if (!ps->ps_upsert) {
        return ps->ps_in_copy ? copy_end(ps) : 0;
    }
    int rc = upsert_release(ps);
    if (rc == 0 && ps->ps_cur != NULL && ps->ps_cur->pb_rows > 0) {
        pg_batch_t *b = ps->ps_cur;
        ps->ps_cur = NULL;
        rc = upsert_send(ps, b);
    }
    int wrc = upsert_wait(ps);
    return rc != 0 ? rc : wrc;
}

/* Commits the open plain transaction, if any. */
static int commit_open(pg_sink_t *ps)
{
    if (!ps->ps_in_txn) {
        return 0;
    }
    ps->ps_in_txn = false;
    return pg_exec(ps, ps->ps_conn, "COMMIT", ps->ps_what);
}

static int write_row(pg_sink_t *ps, const char *const *vals, size_t *lens)
{
    const pg_conf_t *pc = ps->ps_conf;
    for (int c = 0; c < pc->pc_ncols; c++) {
        if (vals[c] == NULL) {
            continue;
        }
        if (lens[c] == EDDY_PG_NTS) {
            lens[c] = strlen(vals[c]);
        } else if (memchr(vals[c], '\0', lens[c]) != NULL) {
            return eddy__op_fail(ps->ps_op, EDDY_ERR_FORMAT,
                                 "the value of column '%s' contains a NUL "
                                 "byte, which PostgreSQL text cannot hold",
                                 pc->pc_cols[c]);
        }
    }
    return ps->ps_upsert ? upsert_row(ps, vals, lens)
                         : copy_row(ps, vals, lens);
}

/* ---- default row formats ---- */

/* A short printable excerpt of a record value, for messages. */
static const char *excerpt(const eddy_record_t *rec, char *buf, size_t size)
{
    size_t n = EDDY_MIN(rec->value_len, size - 4);
    const unsigned char *v = rec->value;
    for (size_t i = 0; i < n; i++) {
        buf[i] = v[i] >= 0x20 && v[i] < 0x7f ? (char)v[i] : '?';
    }
    strcpy(buf + n, n < rec->value_len ? "..." : "");
    return buf;
}

/*
 * One CSV line (RFC 4180) into exactly ncols values. Unquoted fields point
 * into the record; quoted ones are unescaped into ps_tmp, whose offsets are
 * turned into pointers at the end (the buffer may move while growing).
 */
static int csv_row(pg_sink_t *ps, const eddy_record_t *rec)
{
    const pg_conf_t *pc = ps->ps_conf;
    const char *p = rec->value, *end = p + rec->value_len;
    eddy__bytes_reset(&ps->ps_tmp);
    int n = 0;
    const char *why = NULL;
    for (;;) {
        if (n == pc->pc_ncols) {
            why = "more fields than columns";
            break;
        }
        if (p < end && *p == '"') {
            size_t off = ps->ps_tmp.b_len;
            for (p++;; p++) {
                if (p == end) {
                    why = "an unterminated quoted field";
                    break;
                }
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        p++;
                    } else {
                        p++;
                        break;
                    }
                }
                eddy__bytes_put_u8(&ps->ps_tmp, (uint8_t)*p);
            }
            if (why == NULL && p < end && *p != ',') {
                why = "text after a closing quote";
            }
            if (why != NULL) {
                break;
            }
            ps->ps_tmp_off[n] = off;
            ps->ps_lens[n] = ps->ps_tmp.b_len - off;
            ps->ps_vals[n] = "";
        } else {
            const char *start = p;
            while (p < end && *p != ',') {
                p++;
            }
            ps->ps_tmp_off[n] = PG_NULL;
            ps->ps_vals[n] = p == start ? NULL : start;
            ps->ps_lens[n] = (size_t)(p - start);
        }
        n++;
        if (p == end) {
            break;
        }
        p++; /* the comma */
    }
    if (why == NULL && n != pc->pc_ncols) {
        why = "fewer fields than columns";
    }
    if (why != NULL) {
        char ex[48];
        return eddy__op_fail(ps->ps_op, EDDY_ERR_FORMAT,
                             "record \"%s\" is not a CSV line of %d fields: "
                             "%s",
                             excerpt(rec, ex, sizeof(ex)), pc->pc_ncols, why);
    }
    for (int c = 0; c < n; c++) {
        if (ps->ps_tmp_off[c] != PG_NULL) {
            ps->ps_vals[c] =
                (const char *)ps->ps_tmp.b_data + ps->ps_tmp_off[c];
        }
    }
    return 0;
}

/* A JSON value's text (not strings: those point into the value). */
static void json_text(eddy__bytes_t *b, const json_t *v)
{
    char num[40];
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        put_str(b, num);
        break;
    case JSON_REAL: {
        /* The shortest form that reads back exactly ("0.1", not
         * "0.10000000000000001"). */
        double d = json_real_value(v);
        snprintf(num, sizeof(num), "%.15g", d);
        if (strtod(num, NULL) != d) {
            snprintf(num, sizeof(num), "%.17g", d);
        }
        put_str(b, num);
        break;
    }
    case JSON_TRUE:
        put_str(b, "true");
        break;
    case JSON_FALSE:
        put_str(b, "false");
        break;
    default: { /* object or array: compact JSON, for json/jsonb columns */
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s != NULL) {
            put_str(b, s);
            free(s);
        }
        break;
    }
    }
}

/* Parses a JSON object into the row and writes it (the values point into
 * the parsed object, which lives until the row is copied). */
static int json_write(pg_sink_t *ps, const eddy_record_t *rec)
{
    const pg_conf_t *pc = ps->ps_conf;
    json_error_t je;
    json_t *obj = json_loadb(rec->value, rec->value_len, 0, &je);
    if (obj == NULL || !json_is_object(obj)) {
        char ex[48];
        json_decref(obj);
        return eddy__op_fail(ps->ps_op, EDDY_ERR_FORMAT,
                             "record \"%s\" is not a JSON object%s%s",
                             excerpt(rec, ex, sizeof(ex)),
                             obj == NULL ? ": " : "",
                             obj == NULL ? je.text : "");
    }
    eddy__bytes_reset(&ps->ps_tmp);
    for (int c = 0; c < pc->pc_ncols; c++) {
        json_t *v = json_object_get(obj, pc->pc_cols[c]);
        ps->ps_tmp_off[c] = PG_NULL;
        ps->ps_vals[c] = NULL;
        if (v == NULL || json_is_null(v)) {
            continue;
        }
        if (json_is_string(v)) {
            ps->ps_vals[c] = json_string_value(v);
            ps->ps_lens[c] = json_string_length(v);
            continue;
        }
        ps->ps_tmp_off[c] = ps->ps_tmp.b_len;
        json_text(&ps->ps_tmp, v);
        ps->ps_lens[c] = ps->ps_tmp.b_len - ps->ps_tmp_off[c];
        ps->ps_vals[c] = "";
    }
    for (int c = 0; c < pc->pc_ncols; c++) {
        if (ps->ps_tmp_off[c] != PG_NULL) {
            ps->ps_vals[c] =
                (const char *)ps->ps_tmp.b_data + ps->ps_tmp_off[c];
        }
    }
    int rc = write_row(ps, ps->ps_vals, ps->ps_lens);
    json_decref(obj);
    return rc;
}

/* ---- operator state ---- */

/* Prepared-transaction ids hold only these characters. */
static bool gid_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-' ||
           ch == ':';
}

/*
 * Whether `gid` is one of this sink's ids: the prefix, then
 * <subtask>:<checkpoint>:<job id>. Sets the subtask.
 */
static bool parse_gid(const pg_sink_t *ps, const char *gid, long *subtask)
{
    size_t plen = strlen(ps->ps_prefix);
    if (strncmp(gid, ps->ps_prefix, plen) != 0) {
        return false;
    }
    const char *p = gid + plen;
    char *end;
    if (*p < '0' || *p > '9') {
        return false;
    }
    *subtask = strtol(p, &end, 10);
    if (*end != ':' || end[1] < '0' || end[1] > '9') {
        return false;
    }
    strtoll(end + 1, &end, 10);
    if (*end != ':') {
        return false;
    }
    for (p = end + 1; *p != '\0'; p++) {
        if (!gid_char(*p) || *p == ':') {
            return false;
        }
    }
    return true;
}

static void save_txns(pg_sink_t *ps, eddy__op_snap_t *snap, eddy__bytes_t *b)
{
    for (size_t i = 0; i < ps->ps_npending; i++) {
        eddy__bytes_reset(b);
        eddy__bytes_put_u8(b, PG_ELEM_TXN);
        eddy__bytes_put_varint(b, (uint64_t)ps->ps_subtask);
        eddy__bytes_put_u64(b, (uint64_t)ps->ps_pending[i].tx_ckpt);
        eddy__bytes_put_blob(b, ps->ps_pending[i].tx_gid,
                             strlen(ps->ps_pending[i].tx_gid));
        eddy__op_snap_list_add(snap, PG_STATE_LIST, EDDY__OPLIST_UNION,
                               b->b_data, b->b_len);
    }
}

static void save_batch_rows(const pg_conf_t *pc, const pg_batch_t *bt,
                            eddy__bytes_t *b)
{
    for (size_t i = 0; i < bt->pb_rows * (size_t)pc->pc_ncols; i++) {
        if (bt->pb_off[i] == PG_NULL) {
            eddy__bytes_put_varint(b, 0);
        } else {
            eddy__bytes_put_varint(b, bt->pb_len[i] + 1);
            eddy__bytes_put(b, bt->pb_data.b_data + bt->pb_off[i],
                            bt->pb_len[i]);
        }
    }
}

/* Stores the upserts waiting in memory (held batches, then the one
 * filling) in the checkpoint. */
static void save_rows(pg_sink_t *ps, eddy__op_snap_t *snap, eddy__bytes_t *b)
{
    size_t rows = ps->ps_cur != NULL ? ps->ps_cur->pb_rows : 0;
    for (size_t i = 0; i < ps->ps_nheld; i++) {
        rows += ps->ps_held[i]->pb_rows;
    }
    if (rows == 0) {
        return;
    }
    eddy__bytes_reset(b);
    eddy__bytes_put_u8(b, PG_ELEM_ROWS);
    eddy__bytes_put_varint(b, (uint64_t)ps->ps_subtask);
    eddy__bytes_put_varint(b, (uint64_t)ps->ps_conf->pc_ncols);
    eddy__bytes_put_varint(b, rows);
    for (size_t i = 0; i < ps->ps_nheld; i++) {
        save_batch_rows(ps->ps_conf, ps->ps_held[i], b);
    }
    if (ps->ps_cur != NULL) {
        save_batch_rows(ps->ps_conf, ps->ps_cur, b);
    }
    eddy__op_snap_list_add(snap, PG_STATE_LIST, EDDY__OPLIST_UNION, b->b_data,
                           b->b_len);
}

typedef struct restore_ctx {
    pg_sink_t *rx_ps;
    const unsigned char **rx_rows; /* row elements, written after commits */
    size_t *rx_rows_len;
    size_t rx_nrows;
    size_t rx_cap;
} restore_ctx_t;

static int restore_malformed(pg_sink_t *ps, const char *why)
{
    return eddy__op_fail(ps->ps_op, EDDY_ERR_FORMAT,
                         "malformed PostgreSQL sink state in checkpoint "
                         "%" PRId64 ": %s",
                         eddy__op_restore_id(ps->ps_op->op_restore), why);
}

/* One element of the restored list: commits an owned pending transaction
 * at once and keeps owned rows for later. */
static int restore_elem(void *arg, const void *elem, size_t len)
{
    restore_ctx_t *rx = arg;
    pg_sink_t *ps = rx->rx_ps;
    eddy__rd_t rd;
    eddy__rd_init(&rd, elem, len);
    int tag = eddy__rd_u8(&rd);
    uint64_t writer = eddy__rd_varint(&rd);
    if (!eddy__rd_ok(&rd) || (tag != PG_ELEM_TXN && tag != PG_ELEM_ROWS)) {
        return restore_malformed(ps, "unknown element");
    }
    if (writer % (uint64_t)ps->ps_par != (uint64_t)ps->ps_subtask) {
        return 0; /* another subtask's */
    }
    if (tag == PG_ELEM_ROWS) {
        eddy__grow((void **)&rx->rx_rows, &rx->rx_cap, rx->rx_nrows + 1,
                   sizeof(*rx->rx_rows));
        rx->rx_rows_len =
            eddy__realloc(rx->rx_rows_len, rx->rx_cap * sizeof(size_t));
        rx->rx_rows[rx->rx_nrows] = elem;
        rx->rx_rows_len[rx->rx_nrows++] = len;
        return 0;
    }
    eddy__rd_u64(&rd); /* the checkpoint: informative */
    size_t glen;
    const char *g = eddy__rd_blob(&rd, &glen);
    char gid[PG_GID_MAX];
    if (!eddy__rd_ok(&rd) || glen == 0 || glen >= sizeof(gid)) {
        return restore_malformed(ps, "bad transaction id");
    }
    memcpy(gid, g, glen);
    gid[glen] = '\0';
    for (size_t i = 0; i < glen; i++) {
        if (!gid_char(gid[i])) {
            return restore_malformed(ps, "bad transaction id");
        }
    }
    /* Missing means committed before the failure: the gap between
     * "checkpoint complete" and COMMIT PREPARED is closed here. */
    int rc = finish_prepared(ps, ps->ps_conn, "COMMIT", gid);
    return rc < 0 ? rc : 0;
}

/* Writes a rows element: they become the first rows of the next
 * transaction. */
static int restore_rows(pg_sink_t *ps, const unsigned char *elem, size_t len)
{
    const pg_conf_t *pc = ps->ps_conf;
    eddy__rd_t rd;
    eddy__rd_init(&rd, elem, len);
    eddy__rd_u8(&rd);
    eddy__rd_varint(&rd);
    uint64_t ncols = eddy__rd_varint(&rd);
    uint64_t nrows = eddy__rd_varint(&rd);
    if (eddy__rd_ok(&rd) && ncols != (uint64_t)pc->pc_ncols) {
        return eddy__op_fail(ps->ps_op, EDDY_ERR_STATE,
                             "the restored checkpoint holds rows of %" PRIu64
                             " columns, but the sink now writes %d",
                             ncols, pc->pc_ncols);
    }
    for (uint64_t r = 0; r < nrows && eddy__rd_ok(&rd); r++) {
        for (int c = 0; c < pc->pc_ncols; c++) {
            uint64_t l = eddy__rd_varint(&rd);
            ps->ps_vals[c] = NULL;
            ps->ps_lens[c] = 0;
            if (l > 0) {
                ps->ps_vals[c] = eddy__rd_take(&rd, (size_t)(l - 1));
                ps->ps_lens[c] = (size_t)(l - 1);
                if (l == 1) {
                    ps->ps_vals[c] = ""; /* take() of 0 bytes */
                }
            }
        }
        if (!eddy__rd_ok(&rd)) {
            break;
        }
        int rc = write_row(ps, ps->ps_vals, ps->ps_lens);
        if (rc != 0) {
            return rc;
        }
    }
    if (!eddy__rd_ok(&rd) || !eddy__rd_done(&rd)) {
        return restore_malformed(ps, "truncated rows");
    }
    return 0;
}

/* Rolls back the sink's prepared transactions this subtask owns that no
 * checkpoint names (all named ones are committed by now). */
static int rollback_orphans(pg_sink_t *ps)
{
    static const char sql[] =
        "SELECT gid FROM pg_prepared_xacts WHERE database = "
        "current_database() AND left(gid, length($1)) = $1";
    const char *params[1] = {ps->ps_prefix};
    PGresult *r =
        PQexecParams(ps->ps_conn, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = pg_fail(ps, ps->ps_conn, r, "listing prepared transactions");
        PQclear(r);
        return rc;
    }
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        const char *gid = PQgetvalue(r, i, 0);
        long j;
        if (!parse_gid(ps, gid, &j) || j % ps->ps_par != ps->ps_subtask) {
            continue;
        }
        /* Missing: a concurrent clean-up got there first. */
        rc = finish_prepared(ps, ps->ps_conn, "ROLLBACK", gid);
        rc = rc > 0 ? 0 : rc;
    }
    PQclear(r);
    return rc;
}

static int restore(pg_sink_t *ps)
{
    restore_ctx_t rx = {ps, NULL, NULL, 0, 0};
    int rc = 0;
    if (ps->ps_op->op_restore != NULL) {
        rc = eddy__op_restore_list(ps->ps_op->op_restore, PG_STATE_LIST,
                                   restore_elem, &rx);
    }
    if (rc == 0) {
        rc = rollback_orphans(ps);
    }
    for (size_t i = 0; i < rx.rx_nrows && rc == 0; i++) {
        rc = restore_rows(ps, rx.rx_rows[i], rx.rx_rows_len[i]);
    }
    free(rx.rx_rows);
    free(rx.rx_rows_len);
    return rc;
}

/* ---- operator callbacks ---- */

/* The name in transaction ids: the user's, or the uid made safe plus a
 * hash of uid and table, so sinks of different tables never collide. */
static void derive_name(pg_sink_t *ps)
{
    const pg_conf_t *pc = ps->ps_conf;
    if (pc->pc_txn_name != NULL) {
        snprintf(ps->ps_name, sizeof(ps->ps_name), "%s", pc->pc_txn_name);
    } else {
        const char *uid = eddy__op_uid(ps->ps_op);
        if (uid == NULL) {
            uid = ps->ps_op->op_ctx.cx_name;
        }
        size_t ulen = strlen(uid), n = EDDY_MIN(ulen, (size_t)40);
        for (size_t i = 0; i < n; i++) {
            ps->ps_name[i] = gid_char(uid[i]) && uid[i] != ':' ? uid[i] : '_';
        }
        eddy__bytes_t b = {0};
        eddy__bytes_put(&b, uid, ulen + 1);
        put_str(&b, pc->pc_table);
        uint64_t h = eddy__hash64(b.b_data, b.b_len);
        eddy__bytes_free(&b);
        snprintf(ps->ps_name + n, sizeof(ps->ps_name) - n, ".%08x",
                 (unsigned)(h >> 32));
    }
    snprintf(ps->ps_prefix, sizeof(ps->ps_prefix), "eddy:%s:", ps->ps_name);
}

/* Fails early on a table, column or key the statements could not use. */
static int check_target(pg_sink_t *ps)
{
    const pg_conf_t *pc = ps->ps_conf;
    char what[160];
    snprintf(what, sizeof(what), "checking table %s", pc->pc_table);
    if (ps->ps_upsert) {
        /* Preparing analyses the statement (table, columns); only planning
         * it (EXPLAIN) looks for the unique constraint ON CONFLICT needs. */
        PGresult *r = PQprepare(ps->ps_conn, PG_UPSERT_STMT,
                                upsert_sql(ps, ps->ps_stmt_rows), 0, NULL);
        int rc = PQresultStatus(r) == PGRES_COMMAND_OK
                     ? 0
                     : pg_fail(ps, ps->ps_conn, r, what);
        PQclear(r);
        if (rc != 0) {
            return rc;
        }
        const char *one = upsert_sql(ps, 1);
        size_t n = strlen(one);
        char *explain = eddy__malloc(n + 9);
        memcpy(explain, "EXPLAIN ", 8);
        memcpy(explain + 8, one, n + 1);
        /* ps_params is still all NULL: the values do not matter. */
        r = PQexecParams(ps->ps_conn, explain, pc->pc_ncols, NULL,
                         ps->ps_params, NULL, NULL, 0);
        rc = PQresultStatus(r) == PGRES_TUPLES_OK
                 ? 0
                 : pg_fail(ps, ps->ps_conn, r, what);
        PQclear(r);
        free(explain);
        return rc;
    }
    eddy__bytes_t *b = &ps->ps_sql;
    eddy__bytes_reset(b);
    put_str(b, "SELECT ");
    for (int c = 0; c < pc->pc_ncols; c++) {
        if (c > 0) {
            eddy__bytes_put_u8(b, ',');
        }
        put_ident(b, pc->pc_cols[c]);
    }
    put_str(b, " FROM ");
    put_str(b, pc->pc_table);
    put_str(b, " LIMIT 0");
    eddy__bytes_put_u8(b, '\0');
    return pg_exec(ps, ps->ps_conn, (const char *)b->b_data, what);
}

static int check_two_phase(pg_sink_t *ps)
{
    PGresult *r = PQexec(ps->ps_conn, "SHOW max_prepared_transactions");
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = pg_fail(ps, ps->ps_conn, r, "reading max_prepared_transactions");
    } else if (atoi(PQgetvalue(r, 0, 0)) <= 0) {
        rc = fail_no_2pc(ps);
    }
    PQclear(r);
    return rc;
}

static int pg_open(eddy__op_t *op)
{
    const pg_conf_t *pc = op->op_node->s_config;
    pg_sink_t *ps = eddy__calloc(1, sizeof(*ps));
    op->op_data = ps;
    ps->ps_op = op;
    ps->ps_conf = pc;
    ps->ps_subtask = op->op_ctx.cx_subtask;
    ps->ps_par = op->op_ctx.cx_parallelism;
    ps->ps_ckpt = eddy__op_config(op)->ck_interval_ms > 0;
    ps->ps_2pc = ps->ps_ckpt && pc->pc_guarantee == EDDY_PG_EXACTLY_ONCE;
    ps->ps_upsert = pc->pc_nkeys > 0;
    ps->ps_stmt_rows =
        EDDY_MIN(pc->pc_batch_rows, (size_t)(PG_MAX_PARAMS / pc->pc_ncols));
    size_t ncols = (size_t)pc->pc_ncols;
    ps->ps_vals = eddy__calloc(ncols, sizeof(char *));
    ps->ps_lens = eddy__calloc(ncols, sizeof(size_t));
    ps->ps_tmp_off = eddy__calloc(ncols, sizeof(size_t));
    if (ps->ps_upsert) {
        ps->ps_params = eddy__calloc(ps->ps_stmt_rows * ncols, sizeof(char *));
    }
    derive_name(ps);
    describe_target(pc->pc_conninfo, ps->ps_where, sizeof(ps->ps_where));
    snprintf(ps->ps_what, sizeof(ps->ps_what), "writing to table %s",
             pc->pc_table);
    eddy__bytes_t b = {0};
    put_str(&b, "COPY ");
    put_str(&b, pc->pc_table);
    eddy__bytes_put_u8(&b, ' ');
    put_cols(&b, pc);
    put_str(&b, " FROM STDIN");
    eddy__bytes_put_u8(&b, '\0');
    ps->ps_copy_sql = (char *)b.b_data;

    int rc = pg_connect(ps, &ps->ps_conn);
    if (rc == 0 && ps->ps_2pc) {
        rc = check_two_phase(ps);
    }
    if (rc == 0) {
        rc = check_target(ps);
    }
    if (rc == 0) {
        rc = restore(ps);
    }
    return rc;
}

static int pg_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    pg_sink_t *ps = op->op_data;
    const pg_conf_t *pc = ps->ps_conf;
    eddy__op_enter(op);
    if (pc->pc_to_row == NULL) {
        if (pc->pc_format == EDDY_PG_JSON) {
            return json_write(ps, rec);
        }
        int rc = csv_row(ps, rec);
        return rc != 0 ? rc : write_row(ps, ps->ps_vals, ps->ps_lens);
    }
    for (int c = 0; c < pc->pc_ncols; c++) {
        ps->ps_vals[c] = NULL;
        ps->ps_lens[c] = EDDY_PG_NTS;
    }
    int rc = pc->pc_to_row(&op->op_ctx, rec, ps->ps_vals, ps->ps_lens,
                           pc->pc_opaque);
    if (rc != 0) {
        return eddy__op_user_rc(op, rc);
    }
    return write_row(ps, ps->ps_vals, ps->ps_lens);
}

static int pg_flush(eddy__op_t *op)
{
    pg_sink_t *ps = op->op_data;
    if (!ps->ps_ckpt) {
        return drain(ps); /* every statement commits on its own */
    }
    if (ps->ps_upsert) {
        if (holding(ps) || ps->ps_cur == NULL || ps->ps_cur->pb_rows == 0) {
            return 0;
        }
        pg_batch_t *b = ps->ps_cur;
        ps->ps_cur = NULL;
        return upsert_send(ps, b);
    }
    if (!ps->ps_in_copy) {
        return 0;
    }
    int rc = copy_push(ps);
    if (rc == 0 && PQflush(ps->ps_conn) != 0) {
        rc = pg_fail(ps, ps->ps_conn, NULL, ps->ps_what);
    }
    return rc;
}

/* Commits the pending transactions of checkpoints <= upto, oldest first,
 * and lets the upserts that waited for them go. */
static int commit_pending(pg_sink_t *ps, int64_t upto)
{
    int rc = 0;
    size_t keep = 0;
    for (size_t i = 0; i < ps->ps_npending; i++) {
        pg_txn_t *tx = &ps->ps_pending[i];
        if (tx->tx_ckpt > upto || rc != 0) {
            ps->ps_pending[keep++] = *tx;
            continue;
        }
        PGconn *c;
        rc = commit_conn(ps, &c);
        if (rc == 0) {
            eddy__fault("commit"); /* crash tests: the commit seam */
            rc = finish_prepared(ps, c, "COMMIT", tx->tx_gid);
        }
        if (rc > 0) {
            rc = eddy__op_fail(ps->ps_op, EDDY_ERR_EXTERNAL,
                               "prepared transaction '%s' vanished before its "
                               "commit (rolled back by hand, or by a job "
                               "using the same sink name?)",
                               tx->tx_gid);
        }
        if (rc != 0) {
            ps->ps_pending[keep++] = *tx;
        }
    }
    ps->ps_npending = keep;
    if (rc != 0 || ps->ps_npending > 0) {
        return rc;
    }
    return upsert_release(ps);
}

static int pg_end_input(eddy__op_t *op)
{
    pg_sink_t *ps = op->op_data;
    if (ps->ps_2pc && eddy__op_final_checkpoint(op)) {
        return drain(ps); /* the final checkpoint prepares and commits */
    }
    /* Everything, now (see "End of input" above). */
    int rc = ps->ps_2pc ? commit_pending(ps, INT64_MAX) : 0;
    if (rc == 0) {
        rc = drain(ps);
    }
    return rc != 0 ? rc : commit_open(ps);
}

static int pg_snapshot(eddy__op_t *op, eddy__op_snap_t *snap)
{
    pg_sink_t *ps = op->op_data;
    int64_t id = eddy__op_snap_id(snap);
    if (!ps->ps_2pc) {
        int rc = drain(ps);
        return rc != 0 ? rc : commit_open(ps);
    }
    eddy__bytes_t b = {0};
    int rc = 0;
    if (holding(ps)) {
        /* Nothing was sent since the last PREPARE: no transaction is
         * open, and the waiting rows go into this checkpoint. */
        save_rows(ps, snap, &b);
    } else {
        rc = drain(ps);
        if (rc == 0 && ps->ps_in_txn) {
            eddy__grow((void **)&ps->ps_pending, &ps->ps_pending_cap,
                       ps->ps_npending + 1, sizeof(*ps->ps_pending));
            pg_txn_t *tx = &ps->ps_pending[ps->ps_npending];
            tx->tx_ckpt = id;
            snprintf(tx->tx_gid, sizeof(tx->tx_gid), "%s%d:%" PRId64 ":%s",
                     ps->ps_prefix, ps->ps_subtask, id, eddy__op_job_id(op));
            char sql[PG_GID_MAX + 32], what[64];
            snprintf(sql, sizeof(sql), "PREPARE TRANSACTION '%s'", tx->tx_gid);
            snprintf(what, sizeof(what),
                     "preparing the transaction of checkpoint %" PRId64, id);
            /* A failed PREPARE rolls the transaction back: it is over
             * either way. */
            ps->ps_in_txn = false;
            rc = pg_exec(ps, ps->ps_conn, sql, what);
            ps->ps_npending += rc == 0;
        }
    }
    if (rc == 0) {
        save_txns(ps, snap, &b);
    }
    eddy__bytes_free(&b);
    return rc;
}

static int pg_complete(eddy__op_t *op, int64_t id)
{
    return commit_pending(op->op_data, id);
}

static void pg_close(eddy__op_t *op)
{
    pg_sink_t *ps = op->op_data;
    if (ps == NULL) {
        return;
    }
    /* Closing rolls back an open transaction; prepared ones stay for the
     * next checkpoint completion or restore to commit or roll back. */
    PQfinish(ps->ps_conn);
    PQfinish(ps->ps_cconn);
    batch_free(ps->ps_cur);
    batch_free(ps->ps_sent);
    for (size_t i = 0; i < ps->ps_nheld; i++) {
        batch_free(ps->ps_held[i]);
    }
    for (size_t i = 0; i < ps->ps_nspare; i++) {
        batch_free(ps->ps_spare[i]);
    }
    free(ps->ps_held);
    free(ps->ps_spare);
    free(ps->ps_pending);
    free(ps->ps_params);
    free(ps->ps_vals);
    free(ps->ps_lens);
    free(ps->ps_tmp_off);
    free(ps->ps_copy_sql);
    eddy__bytes_free(&ps->ps_copy);
    eddy__bytes_free(&ps->ps_sql);
    eddy__bytes_free(&ps->ps_tmp);
    free(ps);
    op->op_data = NULL;
}

static const eddy__op_class_t pg_sink_class = {
    .oc_kind = "Sink: PostgreSQL",
    .oc_sink = true,
    .oc_open = pg_open,
    .oc_process = pg_process,
    .oc_end_input = pg_end_input,
    .oc_flush = pg_flush,
    .oc_close = pg_close,
    .oc_snapshot = pg_snapshot,
    .oc_checkpoint_complete = pg_complete,
    /* oc_checkpoint_abort: nothing to do (see "Two-phase commit"). */
};

/* ---- builder ---- */

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PG_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!gid_char(s[i]) || s[i] == ':') {
            return false;
        }
    }
    return true;
}

static int find_col(const eddy_pg_sink_opts_t *o, const char *name)
{
    for (int i = 0; i < o->ncolumns; i++) {
        if (strcmp(o->columns[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

/* The first problem with the options, or NULL. */
static const char *check_opts(const eddy_pg_sink_opts_t *o, char *buf,
                              size_t size)
{
    if (o->conninfo == NULL) {
        return "conninfo is NULL";
    }
    char *perr = NULL;
    PQconninfoOption *parsed = PQconninfoParse(o->conninfo, &perr);
    if (parsed == NULL) {
        char msg[120];
        first_line(msg, sizeof(msg), perr != NULL ? perr : "out of memory");
        PQfreemem(perr);
        snprintf(buf, size, "bad conninfo: %s", msg);
        return buf;
    }
    PQconninfoFree(parsed);
    if (o->table == NULL || o->table[0] == '\0') {
        return "no table given";
    }
    if (o->columns == NULL || o->ncolumns < 1) {
        return "no columns given";
    }
    if (o->ncolumns > PG_MAX_COLUMNS) {
        return "more than 1600 columns (PostgreSQL's limit per table)";
    }
    for (int i = 0; i < o->ncolumns; i++) {
        if (o->columns[i] == NULL || o->columns[i][0] == '\0') {
            snprintf(buf, size, "column %d has no name", i + 1);
            return buf;
        }
        if (find_col(o, o->columns[i]) != i) {
            snprintf(buf, size, "column '%s' is given twice", o->columns[i]);
            return buf;
        }
    }
    if (o->nkey_columns < 0 ||
        (o->nkey_columns > 0 && o->key_columns == NULL)) {
        return "nkey_columns does not match key_columns";
    }
    for (int k = 0; k < o->nkey_columns; k++) {
        if (o->key_columns[k] == NULL || find_col(o, o->key_columns[k]) < 0) {
            snprintf(buf, size, "key column '%s' is not among the columns",
                     o->key_columns[k] != NULL ? o->key_columns[k] : "(null)");
            return buf;
        }
    }
    if (o->guarantee != EDDY_PG_EXACTLY_ONCE &&
        o->guarantee != EDDY_PG_AT_LEAST_ONCE) {
        return "guarantee must be EDDY_PG_EXACTLY_ONCE or "
               "EDDY_PG_AT_LEAST_ONCE";
    }
    if (o->to_row == NULL && o->format != EDDY_PG_CSV &&
        o->format != EDDY_PG_JSON) {
        return "format must be EDDY_PG_CSV or EDDY_PG_JSON";
    }
    if (o->txn_name != NULL && !valid_name(o->txn_name)) {
        return "txn_name must be 1-64 characters of [A-Za-z0-9_.-]";
    }
    return NULL;
}

eddy_stream_t *eddy_sink_postgres(eddy_stream_t *in,
                                  const eddy_pg_sink_opts_t *opts)
{
    if (in == NULL) {
        return NULL;
    }
    eddy_env_t *env = in->s_env;
    char buf[160];
    const char *why =
        opts == NULL ? "opts is NULL" : check_opts(opts, buf, sizeof(buf));
    if (why != NULL) {
        eddy_env_fail(env, "eddy_sink_postgres: %s", why);
        return NULL;
    }
    eddy_stream_t *s = eddy__node_add(env, &pg_sink_class, &in, 1);
    if (s == NULL) {
        return NULL;
    }
    eddy__arena_t *ar = &env->e_arena;
    pg_conf_t *pc = eddy__arena_alloc(ar, sizeof(*pc));
    memset(pc, 0, sizeof(*pc));
    pc->pc_conninfo = eddy__arena_strdup(ar, opts->conninfo);
    pc->pc_table = eddy__arena_strdup(ar, opts->table);
    pc->pc_ncols = opts->ncolumns;
    pc->pc_cols = eddy__arena_alloc(ar, sizeof(char *) * (size_t)pc->pc_ncols);
    for (int i = 0; i < pc->pc_ncols; i++) {
        pc->pc_cols[i] = eddy__arena_strdup(ar, opts->columns[i]);
    }
    pc->pc_nkeys = opts->nkey_columns;
    if (pc->pc_nkeys > 0) {
        pc->pc_keys = eddy__arena_alloc(ar, sizeof(int) * (size_t)pc->pc_nkeys);
        for (int k = 0; k < pc->pc_nkeys; k++) {
            pc->pc_keys[k] = find_col(opts, opts->key_columns[k]);
        }
    }
    pc->pc_guarantee = opts->guarantee;
    pc->pc_format = opts->format;
    pc->pc_to_row = opts->to_row;
    pc->pc_opaque = opts->opaque;
    pc->pc_batch_rows =
        opts->batch_rows > 0 ? opts->batch_rows : PG_DEFAULT_BATCH;
    pc->pc_txn_name =
        opts->txn_name != NULL ? eddy__arena_strdup(ar, opts->txn_name) : NULL;
    s->s_config = pc;
    return s;
}
