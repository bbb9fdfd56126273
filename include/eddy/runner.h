/*
 * eddy — loading and running job shared objects (for runners and embedders).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Job authors do not need this header: it is what `eddy run` uses to load a
 * job's .so, build its graph and run it, and what a program embedding eddy
 * can use to do the same.
 */
#ifndef EDDY_RUNNER_H
#define EDDY_RUNNER_H

#include "eddy/eddy.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A loaded job shared object. */
typedef struct eddy_job_s eddy_job_t;

/**
 * @brief Loads a job shared object and checks its entry point.
 *
 * Errors (with one-line messages in `err`): EDDY_ERR_NOT_FOUND if the file is
 * missing, EDDY_ERR_NOT_A_JOB if it is not a loadable shared object, does not
 * define the EDDY_JOB entry point, or was built for another ABI version.
 *
 * @returns 0 and sets *job, or a negative eddy_err_t.
 */
EDDY_EXPORT int eddy_job_open(const char *path, eddy_job_t **job,
                              eddy_error_t *err);

/** @brief The job's name from its EDDY_JOB declaration. */
EDDY_EXPORT const char *eddy_job_name(const eddy_job_t *job);

/**
 * @brief Calls the job's entry point to build its graph on `env`.
 * @returns 0, or EDDY_ERR_INVALID with the job's first error in `err`.
 */
EDDY_EXPORT int eddy_job_build(eddy_job_t *job, eddy_env_t *env, int argc,
                               char **argv, eddy_error_t *err);

/**
 * @brief Unloads the job. Every environment built from it must have been
 * destroyed first (they point at its code). NULL is a no-op.
 */
EDDY_EXPORT void eddy_job_close(eddy_job_t *job);

/**
 * @brief Sets the parallelism used by operators when neither they nor the job
 * (eddy_env_set_parallelism) chose one: the `-p` of `eddy run`.
 */
EDDY_EXPORT void eddy_env_set_default_parallelism(eddy_env_t *env,
                                                  int parallelism);

/**
 * @brief Sets a configuration key (DESIGN §8 names: "checkpoint.interval",
 * "checkpoint.dir", "checkpoint.timeout", "checkpoint.min_pause",
 * "checkpoint.max_concurrent", "checkpoint.retained", "checkpoint.mode",
 * "state.backend", "state.rocksdb.dir", "restart.strategy",
 * "restart.attempts", "restart.delay", "restart.max_delay",
 * "restart.multiplier", "savepoint.path", "savepoint.allow_non_restored",
 * "job.id"). Call after eddy_job_build: the runner's settings override the
 * job's. Durations take ms, s, m or h ("10s"; a bare number is ms).
 * @returns 0, or EDDY_ERR_INVALID with a message naming the key.
 */
EDDY_EXPORT int eddy_env_set_option(eddy_env_t *env, const char *key,
                                    const char *value, eddy_error_t *err);

/**
 * @brief Loads an eddy.yaml configuration file (nested or dotted keys, see
 * docs/configuration.md) and applies the job keys it sets (checkpoint.*,
 * state.*, restart.*, savepoint.*, job.id) as eddy_env_set_option would.
 * Cluster keys are checked but do not concern a job run in-process. Call
 * after eddy_job_build and before the options that should win over the
 * file (environment variables, flags).
 * @returns 0, or EDDY_ERR_INVALID / EDDY_ERR_NOT_FOUND / EDDY_ERR_IO with
 * one message naming the file, line and column.
 */
EDDY_EXPORT int eddy_env_load_config(eddy_env_t *env, const char *path,
                                     eddy_error_t *err);

/**
 * @brief Takes a savepoint of a job running in eddy_env_execute (from another
 * thread; checkpointing must be on) into a new directory under `dir`, and
 * waits until it completes (at most checkpoint.timeout). A savepoint is a
 * self-contained, relocatable checkpoint that eddy never deletes; restore it
 * with the "savepoint.path" option (`eddy run --from-savepoint`).
 * @returns 0 with the savepoint's directory in `path`, or an error.
 */
EDDY_EXPORT int eddy_env_savepoint(eddy_env_t *env, const char *dir, char *path,
                                   size_t size, eddy_error_t *err);

/**
 * @brief Where the job's checkpoints go ("<checkpoint.dir>/<job id>"), or
 * NULL when checkpointing is off. Valid until the environment is destroyed.
 */
EDDY_EXPORT const char *eddy_env_checkpoint_dir(eddy_env_t *env);

/**
 * @brief After eddy_env_execute ran the job with checkpointing on: how many
 * checkpoints completed and failed (aborted, declined, timed out), and in
 * `latest` the directory of the newest completed one ("" if none): what to
 * restore from after a failure (the "savepoint.path" option).
 * @returns 0, or EDDY_ERR_INVALID if the job did not run with checkpoints.
 */
EDDY_EXPORT int eddy_env_checkpoint_summary(const eddy_env_t *env,
                                            uint64_t *completed,
                                            uint64_t *failed, char *latest,
                                            size_t size);

/** @brief The job id (32 hex characters; random unless "job.id" is set). */
EDDY_EXPORT const char *eddy_env_job_id(const eddy_env_t *env);

/**
 * @brief Installs handlers for fatal signals (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGABRT) that print one line naming the operator (and subtask)
 * whose code faulted, then exit with status 70. For processes that run job
 * code.
 */
EDDY_EXPORT void eddy_crash_guard_install(void);

#ifdef __cplusplus
}
#endif

#endif /* EDDY_RUNNER_H */
