/*
 * eddy — a job's configuration: checkpoints, state backend, restarts.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Every key of DESIGN.md §8 that a running job needs lives here, set from
 * the job (eddy_env_enable_checkpointing) and then from the runner
 * (eddy_env_set_option: flags, EDDY_* environment variables, eddy.yaml), so
 * the runner's settings win. Durations accept a unit: "500ms", "10s", "2m",
 * "1h"; a bare number is milliseconds.
 */
#ifndef EDDY_RUNTIME_CONFIG_H
#define EDDY_RUNTIME_CONFIG_H

#include <jansson.h>

#include "common/internal.h"

#define EDDY__RESTART_NONE 0
#define EDDY__RESTART_FIXED 1
#define EDDY__RESTART_EXPONENTIAL 2

typedef struct eddy__config {
    /* checkpoint.* */
    int64_t ck_interval_ms;  /* 0: checkpointing off */
    int64_t ck_timeout_ms;   /* default 10 min */
    int64_t ck_min_pause_ms; /* default 0 */
    int ck_max_concurrent;   /* default 1 */
    int ck_retained;         /* default 3 */
    bool ck_exactly_once;    /* checkpoint.mode: exactly_once (aligned) */
    char *ck_dir;            /* checkpoint.dir, a path or file:// URI */
    /* state.* */
    char *state_backend; /* "heap" or "rocksdb" */
    char *rocksdb_dir;   /* state.rocksdb.dir: working directories */
    /* restart.* */
    int restart_strategy;
    int restart_attempts;         /* fixed-delay: attempts (default 3) */
    int64_t restart_delay_ms;     /* fixed: delay; exponential: initial */
    int64_t restart_max_delay_ms; /* exponential */
    double restart_multiplier;    /* exponential (default 2) */
    int64_t restart_reset_ms;     /* exponential: reset after this long */
    /* savepoint.* / job.* */
    char *restore_path;      /* --from-savepoint */
    bool allow_non_restored; /* state no operator claims is ignored */
    char job_id[33];         /* job.id; random when not set */
    bool restart_explicit;   /* restart.strategy was set */
} eddy__config_t;

/* Writes 2 * nbytes random lowercase hex digits and a NUL into `out`
 * (nbytes <= 64): job ids, request ids, TaskManager ids. */
void eddy__random_hex(char *out, size_t nbytes);
/* Defaults (strings duplicated) and a fresh random job id. */
void eddy__config_init(eddy__config_t *c);
void eddy__config_free(eddy__config_t *c);
/* Sets one key; EDDY_ERR_INVALID with a message naming the key and the
 * expected form for an unknown key or a bad value. */
int eddy__config_set(eddy__config_t *c, const char *key, const char *value,
                     eddy_error_t *err);
/*
 * The configuration as {"key": "value"} strings: every key that
 * eddy__config_set accepts, with a value it accepts back, so that setting
 * each pair on a fresh configuration reproduces this one. Two keys are left
 * out while they are at their implicit state, because no value can express
 * "unset": savepoint.path (no restore) and restart.strategy (not chosen: the
 * runner picks one by whether checkpoints are on). Durations are in ms. A
 * path that is not valid UTF-8 is left out too: JSON cannot carry it.
 * Returns a new reference.
 */
json_t *eddy__config_to_json(const eddy__config_t *c);
/* Parses a duration ("250", "250ms", "5s", "2m", "1h") into ms. */
int eddy__parse_duration_ms(const char *s, int64_t *out);
/* The checkpoint directory as a local path (strips file://). */
const char *eddy__config_ck_path(const eddy__config_t *c);

#endif /* EDDY_RUNTIME_CONFIG_H */
