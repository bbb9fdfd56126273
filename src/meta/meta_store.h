/*
 * eddy — the JobManager's metadata store (DESIGN.md §2, §6, §8).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. The JobManager records here what it must not forget across a
 * restart: every job (its artifact, configuration and state), the history
 * of its state transitions, a bounded history of its exceptions, its
 * retained completed checkpoints and savepoints, and the savepoint
 * requests made through REST. A JobManager restarted on the same store
 * lists eddy__meta_jobs_to_resume() and resumes each of those jobs from
 * eddy__meta_checkpoint_latest().
 *
 * The store is a vtable (eddy__meta_ops_t) so that a PostgreSQL backend can
 * sit behind the same calls; `metadata.store` picks one (eddy__meta_open).
 * The SQLite backend (meta_sqlite.c) is the embedded default, a file under
 * the JobManager's data dir. docs/metadata-store.md has the schema and the
 * durability choices.
 *
 * Contract every backend keeps:
 *   - Every call is one transaction: it happens entirely or not at all,
 *     also when the process is killed in the middle, and a call that
 *     returned 0 is durable (it survives a power loss, not just a crash).
 *   - State changes are validated inside the transaction that makes them
 *     (eddy__job_state_transition_ok), so two threads racing to move a job
 *     cannot both succeed with transitions that are only valid one at a
 *     time.
 *   - Arguments are checked here, in the eddy__meta_* wrappers, once for
 *     all backends; strings reach the database only as bound parameters.
 *   - Text is UTF-8 (it ends up in REST JSON). Identifiers, names and paths
 *     that are not valid UTF-8 or are too long are rejected; free text
 *     that reports a failure (exception messages, reasons, savepoint
 *     errors) is never rejected, because losing the cause of a failure is
 *     worse than mangling it: invalid bytes become U+FFFD and over-long
 *     text is cut at a character boundary.
 *   - Times are wall-clock milliseconds since the epoch (REST shows them).
 *
 * Records returned by the store are single allocations (the struct with its
 * strings after it): free one with eddy__meta_free, an array of them with
 * eddy__meta_free_array. Their string fields are never NULL unless a field
 * says so.
 *
 * THREADS. A store may be called from any thread, concurrently (the
 * JobManager's event loop and its REST threads): each backend serializes or
 * isolates calls itself (SQLite: one mutex per store). Calls block for at
 * most about the busy timeout when another process holds the database.
 * A store must not be used across fork(); open a new one in the child.
 *
 * Crash tests: EDDY_FAULT=meta_commit[:N] kills the process inside the N-th
 * write transaction, after its statements and before its commit.
 */
#ifndef EDDY_META_META_STORE_H
#define EDDY_META_META_STORE_H

#include "common/internal.h"

/* Job states (DESIGN.md §8), in the order REST lists them. The names are
 * also what the store writes, so they are part of its on-disk format. */
#define EDDY__JOB_STATE_MAP(XX)                                                \
    XX(CREATED)                                                                \
    XX(RUNNING)                                                                \
    XX(FAILING)                                                                \
    XX(RESTARTING)                                                             \
    XX(CANCELLING)                                                             \
    XX(CANCELED)                                                               \
    XX(FINISHED)                                                               \
    XX(FAILED)

typedef enum eddy__job_state {
#define EDDY__JOB_STATE_ENUM_(name) EDDY__JOB_##name,
    EDDY__JOB_STATE_MAP(EDDY__JOB_STATE_ENUM_)
#undef EDDY__JOB_STATE_ENUM_
        EDDY__JOB_STATE_COUNT
} eddy__job_state_t;

/* A set of states for filters: EDDY__JOB_MASK(RUNNING) | ... */
#define EDDY__JOB_MASK(name) (1u << EDDY__JOB_##name)
/* What a restarted JobManager resumes. CANCELLING is not among them: the
 * JobManager completes the cancellation (CANCELLING → CANCELED) instead. */
#define EDDY__JOB_RESUMABLE                                                    \
    (EDDY__JOB_MASK(CREATED) | EDDY__JOB_MASK(RUNNING) |                       \
     EDDY__JOB_MASK(FAILING) | EDDY__JOB_MASK(RESTARTING))

/* "RUNNING", or NULL for a value out of range. */
const char *eddy__job_state_name(eddy__job_state_t st);
/* Parses a state name (exact, upper case): 0, or EDDY_ERR_INVALID. */
int eddy__job_state_parse(const char *name, eddy__job_state_t *out);
/* CANCELED, FINISHED, FAILED: nothing follows them. */
bool eddy__job_state_terminal(eddy__job_state_t st);
/*
 * Whether a job may go from `from` to `to` (never to itself):
 *   CREATED    → RUNNING FAILING CANCELLING CANCELED FAILED
 *   RUNNING    → FINISHED FAILING RESTARTING CANCELLING
 *   FAILING    → RESTARTING CANCELLING FAILED
 *   RESTARTING → RUNNING FAILING CANCELLING CANCELED FAILED
 *   CANCELLING → CANCELED FINISHED FAILED
 * CANCELLING → FINISHED ends a stop with savepoint (the savepoint
 * completed, then the tasks were stopped).
 * RUNNING → RESTARTING without FAILING is how a restarted JobManager
 * redeploys a job that was running; RESTARTING and CREATED have no tasks
 * running, so a cancel may end them at once.
 */
bool eddy__job_state_transition_ok(eddy__job_state_t from,
                                   eddy__job_state_t to);

/*
 * Limits on what the store accepts, in bytes. Identifiers, names and paths
 * beyond them are refused; failure text (task names in exceptions,
 * transition reasons, exception and savepoint error messages) is cut.
 */
#define EDDY__META_NAME_MAX 256
#define EDDY__META_PATH_MAX 4096
#define EDDY__META_ARGS_MAX (1u << 20)
#define EDDY__META_REQUEST_ID_MAX 64
#define EDDY__META_TASK_MAX 1024
#define EDDY__META_REASON_MAX 1024
#define EDDY__META_MESSAGE_MAX (1u << 16)
#define EDDY__META_PARALLELISM_MAX 32768

typedef struct eddy__meta_options {
    /* How long a call waits for a database another process holds locked
     * before failing with EDDY_ERR_BUSY (retriable). Default 5000. */
    int mo_busy_timeout_ms;
    /* Newest entries kept per job; older ones are dropped as new ones
     * come. Defaults 100, 1000 and 100. */
    int mo_exception_history;
    int mo_transition_history;
    int mo_savepoint_history;
    /* Wall clock in ms since the epoch; NULL: CLOCK_REALTIME. Tests make
     * time deterministic with it. Called with the store's lock held. */
    int64_t (*mo_clock_ms)(void *arg);
    void *mo_clock_arg;
} eddy__meta_options_t;

/* Fills in the defaults. */
void eddy__meta_options_init(eddy__meta_options_t *o);

/* What a job is submitted with (POST /jobs/submit). */
typedef struct eddy__meta_job_spec {
    const char *js_id;            /* 32 lowercase hex characters */
    const char *js_name;          /* 1..EDDY__META_NAME_MAX bytes */
    const char *js_artifact_path; /* the job's .so as the JobManager keeps it */
    const char *js_artifact_sha256; /* 64 lowercase hex, or NULL if unknown */
    int64_t js_artifact_size;       /* bytes, >= 0 */
    int js_parallelism;             /* 1..EDDY__META_PARALLELISM_MAX */
    int64_t js_checkpoint_interval_ms; /* 0: checkpointing off */
    const char *js_savepoint_path;     /* restored from; NULL: none */
    const char *js_args;               /* JSON array of strings; NULL: "[]" */
} eddy__meta_job_spec_t;

typedef struct eddy__meta_job {
    eddy__meta_job_spec_t mj_spec; /* js_savepoint_path may be NULL */
    eddy__job_state_t mj_state;
    int64_t mj_start_ms;          /* created */
    int64_t mj_state_ms;          /* entered mj_state */
    int64_t mj_end_ms;            /* entered a terminal state; 0 before */
    int mj_restarts;              /* times it entered RESTARTING */
    int64_t mj_exceptions_total;  /* recorded, including dropped ones */
    int64_t mj_checkpoints_total; /* completed checkpoints and savepoints */
} eddy__meta_job_t;

/* eddy__meta_job_list filters; zeroed means everything. */
typedef struct eddy__meta_job_filter {
    unsigned jf_states;        /* EDDY__JOB_MASK()s; 0: any state */
    const char *jf_name;       /* exact name (no wildcards); NULL: any */
    int64_t jf_started_after;  /* mj_start_ms >= this; 0: no bound */
    int64_t jf_started_before; /* mj_start_ms < this; 0: no bound */
    int jf_limit;              /* at most this many; 0: no limit */
    int jf_offset;             /* skip this many first (paging) */
} eddy__meta_job_filter_t;

typedef struct eddy__meta_transition {
    int64_t mt_time_ms;
    eddy__job_state_t mt_from; /* == mt_to for the first one (created) */
    eddy__job_state_t mt_to;
    const char *mt_reason; /* "" when none was given */
} eddy__meta_transition_t;

typedef struct eddy__meta_exception {
    int64_t me_time_ms;     /* 0 when recording: now */
    const char *me_task;    /* failing task's name, NULL: the job as a whole */
    int me_subtask;         /* -1: none */
    const char *me_message; /* the cause */
} eddy__meta_exception_t;

typedef struct eddy__meta_checkpoint {
    int64_t mc_id;          /* >= 1, unique per job */
    const char *mc_path;    /* its directory (chk-<n>, or the savepoint's) */
    bool mc_savepoint;      /* savepoints are never dropped by retention */
    int64_t mc_size_bytes;  /* >= 0 */
    int64_t mc_duration_ms; /* trigger to completion, >= 0 */
    int64_t mc_time_ms;     /* completed; 0 when recording: now */
} eddy__meta_checkpoint_t;

typedef enum eddy__savepoint_status {
    EDDY__SAVEPOINT_IN_PROGRESS,
    EDDY__SAVEPOINT_COMPLETED,
    EDDY__SAVEPOINT_FAILED,
} eddy__savepoint_status_t;

const char *eddy__savepoint_status_name(eddy__savepoint_status_t s);

typedef struct eddy__meta_savepoint {
    const char *ms_request_id;
    eddy__savepoint_status_t ms_status;
    const char *ms_path;  /* COMPLETED: the savepoint; else NULL */
    const char *ms_error; /* FAILED: why; else NULL */
    int64_t ms_created_ms;
    int64_t ms_finished_ms; /* 0 while IN_PROGRESS */
} eddy__meta_savepoint_t;

typedef struct eddy__meta eddy__meta_t;

/*
 * The backend interface. The eddy__meta_* wrappers below have already
 * checked and normalized every argument (ids, lengths, UTF-8, enums,
 * defaults), so backends only store and fetch. Errors: EDDY_ERR_NOT_FOUND
 * for an unknown job or request, EDDY_ERR_STATE for a refused transition
 * or a duplicate, EDDY_ERR_BUSY (retriable) when the database stayed
 * locked, EDDY_ERR_IO, EDDY_ERR_FORMAT (corrupt), each with a message
 * naming the job.
 */
typedef struct eddy__meta_ops {
    const char *mo_name; /* "sqlite", "postgresql" */
    void (*mo_close)(eddy__meta_t *m);
    int (*mo_job_create)(eddy__meta_t *m, const eddy__meta_job_spec_t *spec,
                         eddy_error_t *err);
    int (*mo_job_set_state)(eddy__meta_t *m, const char *job_id,
                            eddy__job_state_t to, const char *reason,
                            eddy__job_state_t *prev, eddy_error_t *err);
    int (*mo_job_get)(eddy__meta_t *m, const char *job_id,
                      eddy__meta_job_t **out, eddy_error_t *err);
    /* Newest first (start time), or oldest first when `oldest_first`. */
    int (*mo_job_list)(eddy__meta_t *m, const eddy__meta_job_filter_t *f,
                       bool oldest_first, eddy__meta_job_t ***out, size_t *n,
                       eddy_error_t *err);
    int (*mo_job_delete)(eddy__meta_t *m, const char *job_id,
                         eddy_error_t *err);
    int (*mo_transition_list)(eddy__meta_t *m, const char *job_id,
                              eddy__meta_transition_t ***out, size_t *n,
                              eddy_error_t *err);
    int (*mo_exception_add)(eddy__meta_t *m, const char *job_id,
                            const eddy__meta_exception_t *e, eddy_error_t *err);
    int (*mo_exception_list)(eddy__meta_t *m, const char *job_id,
                             eddy__meta_exception_t ***out, size_t *n,
                             eddy_error_t *err);
    int (*mo_checkpoint_add)(eddy__meta_t *m, const char *job_id,
                             const eddy__meta_checkpoint_t *c, int retained,
                             eddy_error_t *err);
    int (*mo_checkpoint_list)(eddy__meta_t *m, const char *job_id,
                              eddy__meta_checkpoint_t ***out, size_t *n,
                              eddy_error_t *err);
    int (*mo_checkpoint_latest)(eddy__meta_t *m, const char *job_id,
                                bool include_savepoints,
                                eddy__meta_checkpoint_t **out,
                                eddy_error_t *err);
    int (*mo_savepoint_begin)(eddy__meta_t *m, const char *job_id,
                              const char *request_id, eddy_error_t *err);
    int (*mo_savepoint_end)(eddy__meta_t *m, const char *job_id,
                            const char *request_id,
                            eddy__savepoint_status_t status, const char *text,
                            eddy_error_t *err);
    int (*mo_savepoint_get)(eddy__meta_t *m, const char *job_id,
                            const char *request_id,
                            eddy__meta_savepoint_t **out, eddy_error_t *err);
    int (*mo_savepoint_list)(eddy__meta_t *m, const char *job_id,
                             eddy__meta_savepoint_t ***out, size_t *n,
                             eddy_error_t *err);
    int (*mo_savepoints_abandon)(eddy__meta_t *m, const char *error, int *count,
                                 eddy_error_t *err);
} eddy__meta_ops_t;

/* Backends embed this first in their own struct. */
struct eddy__meta {
    const eddy__meta_ops_t *m_ops;
    eddy__meta_options_t m_opts; /* normalized: no zero where a default is */
};

/**
 * @brief Opens the store that `metadata.store` names: a SQLite file path
 * (created if missing, parent directory must exist), or
 * ":memory:" for a private in-memory store. This version has only the
 * SQLite backend: a `postgresql://` or `postgres://` URI is refused with
 * EDDY_ERR_UNSUPPORTED and a message saying so (the interface is the seam
 * for a PostgreSQL backend, issue 5 §7).
 * @param opts NULL for the defaults.
 * @returns 0 and *out, or an error: EDDY_ERR_FORMAT (not an eddy store,
 * not a database, corrupt), EDDY_ERR_UNSUPPORTED (written by a newer eddy),
 * EDDY_ERR_BUSY, EDDY_ERR_IO.
 * @remark An older schema is migrated in place, in one transaction.
 * @locality any thread.
 */
int eddy__meta_open(const char *store, const eddy__meta_options_t *opts,
                    eddy__meta_t **out, eddy_error_t *err);
/* The SQLite backend directly (meta_sqlite.c). */
int eddy__meta_sqlite_open(const char *path, const eddy__meta_options_t *opts,
                           eddy__meta_t **out, eddy_error_t *err);
/* The schema version this build writes (the SQLite backend's). */
int eddy__meta_sqlite_schema_version(void);
/** @brief Closes the store; NULL is a no-op. No call may be in progress. */
void eddy__meta_close(eddy__meta_t *m);
/* "sqlite". */
const char *eddy__meta_backend_name(const eddy__meta_t *m);

/**
 * @brief Records a new job in CREATED (its first transition).
 * @returns EDDY_ERR_INVALID naming the bad field, EDDY_ERR_STATE if the id
 * is taken.
 */
int eddy__meta_job_create(eddy__meta_t *m, const eddy__meta_job_spec_t *spec,
                          eddy_error_t *err);
/**
 * @brief Moves a job to `to` if eddy__job_state_transition_ok allows it
 * from its current state, recording the transition with `reason` (NULL or
 * free text). Entering RESTARTING counts a restart; entering a terminal
 * state sets the end time.
 * @param prev if not NULL, receives the state the job left.
 * @returns EDDY_ERR_STATE with both states in the message if refused,
 * EDDY_ERR_NOT_FOUND.
 */
int eddy__meta_job_set_state(eddy__meta_t *m, const char *job_id,
                             eddy__job_state_t to, const char *reason,
                             eddy__job_state_t *prev, eddy_error_t *err);
/** @brief The job; free with eddy__meta_free. EDDY_ERR_NOT_FOUND. */
int eddy__meta_job_get(eddy__meta_t *m, const char *job_id,
                       eddy__meta_job_t **out, eddy_error_t *err);
/**
 * @brief The jobs `f` selects (NULL: all), newest first.
 * @remark *out is NULL when *n is 0; free with eddy__meta_free_array.
 */
int eddy__meta_job_list(eddy__meta_t *m, const eddy__meta_job_filter_t *f,
                        eddy__meta_job_t ***out, size_t *n, eddy_error_t *err);
/**
 * @brief The jobs a JobManager starting on this store must resume
 * (EDDY__JOB_RESUMABLE), oldest first.
 */
int eddy__meta_jobs_to_resume(eddy__meta_t *m, eddy__meta_job_t ***out,
                              size_t *n, eddy_error_t *err);
/**
 * @brief Deletes a job that has ended, with everything recorded about it
 * (not its files). EDDY_ERR_STATE while it has not ended.
 */
int eddy__meta_job_delete(eddy__meta_t *m, const char *job_id,
                          eddy_error_t *err);
/** @brief The job's newest transitions (mo_transition_history), oldest
 * first. */
int eddy__meta_transition_list(eddy__meta_t *m, const char *job_id,
                               eddy__meta_transition_t ***out, size_t *n,
                               eddy_error_t *err);

/** @brief Records a failure; the oldest beyond mo_exception_history go. */
int eddy__meta_exception_add(eddy__meta_t *m, const char *job_id,
                             const eddy__meta_exception_t *e,
                             eddy_error_t *err);
/** @brief The kept exceptions, newest first. */
int eddy__meta_exception_list(eddy__meta_t *m, const char *job_id,
                              eddy__meta_exception_t ***out, size_t *n,
                              eddy_error_t *err);

/**
 * @brief Records a completed checkpoint or savepoint (DESIGN.md §6 step 4:
 * after _metadata is written, before tasks are told), and forgets the
 * checkpoints (not savepoints) beyond the newest `retained`, as the
 * coordinator's retention deletes their directories.
 * @returns EDDY_ERR_STATE if the id is already recorded.
 */
int eddy__meta_checkpoint_add(eddy__meta_t *m, const char *job_id,
                              const eddy__meta_checkpoint_t *c, int retained,
                              eddy_error_t *err);
/** @brief Retained checkpoints and all savepoints, newest (highest id)
 * first. */
int eddy__meta_checkpoint_list(eddy__meta_t *m, const char *job_id,
                               eddy__meta_checkpoint_t ***out, size_t *n,
                               eddy_error_t *err);
/**
 * @brief The checkpoint to resume from: the highest id, savepoints
 * included if `include_savepoints` (a savepoint is a complete restore
 * point, and checkpoint ids and savepoint ids share one sequence).
 * @returns 0 with *out NULL if the job has none; EDDY_ERR_NOT_FOUND if
 * there is no such job.
 */
int eddy__meta_checkpoint_latest(eddy__meta_t *m, const char *job_id,
                                 bool include_savepoints,
                                 eddy__meta_checkpoint_t **out,
                                 eddy_error_t *err);

/**
 * @brief Records a savepoint request (POST /jobs/{id}/savepoint) as
 * IN_PROGRESS. `request_id` is 1..EDDY__META_REQUEST_ID_MAX characters of
 * [0-9A-Za-z_-], unique per job (EDDY_ERR_STATE otherwise). Finished
 * requests beyond mo_savepoint_history are dropped, oldest first.
 */
int eddy__meta_savepoint_begin(eddy__meta_t *m, const char *job_id,
                               const char *request_id, eddy_error_t *err);
/**
 * @brief Finishes an IN_PROGRESS request: COMPLETED with the savepoint's
 * path in `text`, or FAILED with the error in `text`.
 * @returns EDDY_ERR_STATE if it was already finished.
 */
int eddy__meta_savepoint_end(eddy__meta_t *m, const char *job_id,
                             const char *request_id,
                             eddy__savepoint_status_t status, const char *text,
                             eddy_error_t *err);
int eddy__meta_savepoint_get(eddy__meta_t *m, const char *job_id,
                             const char *request_id,
                             eddy__meta_savepoint_t **out, eddy_error_t *err);
/** @brief The job's kept requests, newest first. */
int eddy__meta_savepoint_list(eddy__meta_t *m, const char *job_id,
                              eddy__meta_savepoint_t ***out, size_t *n,
                              eddy_error_t *err);
/**
 * @brief Fails every IN_PROGRESS request of every job with `error`: a
 * starting JobManager calls it, since the process that was taking those
 * savepoints is gone. *count (if not NULL) gets how many.
 */
int eddy__meta_savepoints_abandon(eddy__meta_t *m, const char *error,
                                  int *count, eddy_error_t *err);

/* Frees one record the store returned; NULL is a no-op. */
void eddy__meta_free(void *record);
/* Frees an array of `n` records and the array. */
void eddy__meta_free_array(void *array, size_t n);

/* For backends: text helpers shared by every implementation. */

/* Whether s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool eddy__meta_utf8_valid(const char *s, size_t len);
/* A copy of `s` (eddy__malloc'ed) with invalid UTF-8 replaced by U+FFFD,
 * cut at a character boundary to at most `max` bytes. */
char *eddy__meta_text_clean(const char *s, size_t max);

#endif /* EDDY_META_META_STORE_H */
