/*
 * eddy — learning a submitted job's graph without running its code in the
 * JobManager (DESIGN.md §3).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. A job is a shared object of unknown quality: loading it runs its
 * constructors and building its graph runs its code, either of which may
 * crash, hang, call exit(), print to stdout, allocate without bound, or not
 * be a job at all. The JobManager therefore never loads it. It runs
 * `<exe> __inspect JOB.so -p N [-- ARGS...]` (eddy__inspect_job), a child
 * process that loads and builds the job, plans it with the runtime's own
 * planner and prints the plan as JSON (eddy__inspect_main). Whatever
 * happens there ends in the child: the parent reports it as one line.
 *
 * The child is contained: its own process group (a timeout kills the group,
 * so processes the job forked die too), no core dumps, an address-space
 * limit (io_max_memory), a CPU-time limit just above the timeout (in case
 * the parent dies first, with PR_SET_PDEATHSIG as the other guard), stdin
 * /dev/null, no inherited descriptors, default signal dispositions and an
 * empty signal mask. Its stdout and stderr are pipes read concurrently with
 * poll (a job printing megabytes to stderr cannot stall it), the plan capped
 * at io_max_output and stderr reduced to its last 2 KiB, which supply the
 * context line of a crash report. The plan is parsed and validated before
 * it is returned: the child is untrusted.
 *
 * Inside the child, user code never writes to the plan's descriptor by
 * accident: the real stdout is moved to a private descriptor first and
 * fd 1 points at stderr while user code runs (constructors, the build
 * function, destructors).
 *
 * Child and parent speak a small protocol beyond the plan: the child exits
 * with 0 after printing the plan, or with 1 after printing
 * {"error": {"code": "EDDY_ERR_...", "message": "..."}} for the failures it
 * can describe itself (not a job, build function failed, invalid graph).
 * A fatal signal makes its handler write one marker line naming the phase
 * ("loading its shared object", "building its graph", ...) before the
 * signal kills the child, so the parent can say when it crashed. Anything
 * else (an exit status with no report) was the job calling exit().
 *
 * Plan JSON (format 1):
 *
 *   {"format": 1, "name": "word-count", "max_parallelism": 128,
 *    "config": {"checkpoint.interval": "5000", ...},
 *    "vertices": [{"index": 0, "name": "numbers -> by-key",
 *                  "parallelism": 4, "source": true, "sink": false,
 *                  "operators": [{"node": 0, "uid": "src", "name":
 *                                 "numbers"}, ...]}, ...],
 *    "edges": [{"from": 0, "to": 1, "partitioner": "hash"}, ...],
 *    "operators": {"<uid>": {"name": "numbers", "parallelism": 4,
 *                            "max_parallelism": 128}, ...},
 *    "tasks": 9}
 *
 *   config     eddy__config_to_json of the job's environment after its
 *              build function ran (the job's own settings; the JobManager
 *              applies the submitter's on top).
 *   vertices   job vertices in plan order; "operators" lists the chain in
 *              order, head first, with logical node ids. "source": the head
 *              is a source; "sink": the chain contains a sink.
 *   edges      the non-chained plan edges, by vertex index, in plan order.
 *   operators  eddy__plan_operators_json: what checkpoints record.
 *   tasks      the sum of vertex parallelisms. Tasks are numbered as the
 *              runtime numbers them (job.c): by vertex, then by subtask.
 *
 * Errors of eddy__inspect_job, each one line in err->msg:
 *   EDDY_ERR_NOT_FOUND  the file is missing ("cannot open job '...'").
 *   EDDY_ERR_NOT_A_JOB  "'x.so' is not an eddy job: ..." (not a shared
 *                       object, no entry point, another ABI).
 *   EDDY_ERR_USER       "the job's build function failed: <its message>",
 *                       or "the job exited (status 3) while building its
 *                       graph[: <last stderr line>]".
 *   EDDY_ERR_INVALID    "the job's graph is invalid: <planner message>".
 *   EDDY_ERR_CRASHED    "the job crashed while building its graph
 *                       (SIGSEGV)[: <last stderr line>]" (or while loading
 *                       its shared object, planning, unloading).
 *   EDDY_ERR_TIMEOUT    "the job did not finish building its graph within
 *                       10 s" (then the whole process group is killed).
 *   EDDY_ERR_FORMAT     the child's output is not a valid plan, or is
 *                       larger than io_max_output.
 *   EDDY_ERR_IO         the child could not be started.
 *
 * THREADS. eddy__inspect_job may be called from any thread, concurrently:
 * it shares nothing, blocks the calling thread until the child is gone
 * (reaped, and its process group killed), and starts the child with fork
 * and exec, doing only async-signal-safe work in between, so it is safe in
 * a multi-threaded JobManager. It needs SIGCHLD not to be ignored and no
 * other thread to reap arbitrary children (waitpid(-1)).
 */
#ifndef EDDY_JOBMANAGER_INSPECT_H
#define EDDY_JOBMANAGER_INSPECT_H

#include <jansson.h>

#include "common/internal.h"
#include "runtime/runtime.h"

/* The plan JSON's "format". */
#define EDDY__PLAN_FORMAT 1

typedef struct eddy__inspect_options {
    /* Program run as the child; default "/proc/self/exe" (this program,
     * which must dispatch `__inspect` to eddy__inspect_main). */
    const char *io_exe;
    /* Wall-clock limit from start to exit; default 10000. Then the child's
     * process group is killed. 0 or less: the default. */
    int64_t io_timeout_ms;
    /* Most bytes of plan JSON accepted; default 4 MiB. 0: the default. */
    size_t io_max_output;
    /* RLIMIT_AS of the child; default 2 GiB, or 0 in sanitizer builds,
     * whose shadow memory needs terabytes of address space. 0: none. */
    uint64_t io_max_memory;
} eddy__inspect_options_t;

/** @brief Sets the defaults above. */
void eddy__inspect_options_init(eddy__inspect_options_t *o);

/**
 * @brief Runs the job inspector child on `so_path` and returns its plan.
 *
 * The child is `<io_exe> __inspect <so_path> -p <parallelism> [-- args...]`.
 * @param o            options, or NULL for the defaults.
 * @param parallelism  the default parallelism (`-p`); 0 or less means 1.
 * @param args         the job's arguments (nargs of them; NULL if none).
 * @param plan         receives the validated plan (a new reference).
 * @returns 0, or one of the errors listed at the top of this file, with
 *          one line in `err`; *plan is then NULL.
 * @locality any thread; blocks up to io_timeout_ms plus the time to kill.
 */
int eddy__inspect_job(const eddy__inspect_options_t *o, const char *so_path,
                      int parallelism, char *const *args, int nargs,
                      json_t **plan, eddy_error_t *err);

/**
 * @brief The child side: `eddy __inspect JOB.so [-p N] [-- ARGS...]`.
 *
 * `argv[1]` is "__inspect". Loads and builds the job with
 * eddy_job_open/eddy_job_build (default parallelism N), assigns uids,
 * plans it with eddy__plan_build and writes the plan JSON (one line) on
 * stdout, or a {"error": ...} report. Installs its own fatal-signal
 * handlers (the phase marker, then death by the same signal).
 * @returns the process exit status: 0 plan written, 1 error reported,
 *          2 bad usage.
 * @locality the main thread of a process that exists to run it.
 */
int eddy__inspect_main(int argc, char **argv);

/**
 * @brief The plan JSON (format above) of a built environment and its plan.
 * Operators must have uids (eddy__plan_assign_uids). Also used by a
 * TaskManager to check that its rebuild of a job matches what the
 * JobManager planned.
 * @returns a new reference.
 */
json_t *eddy__plan_to_json(eddy_env_t *env, const eddy__plan_t *pl);

/**
 * @brief Checks that `plan` is a well-formed format-1 plan (types, ranges,
 * indexes, the task count). On failure writes the reason into `why`.
 */
bool eddy__plan_json_valid(const json_t *plan, char *why, size_t size);

#endif /* EDDY_JOBMANAGER_INSPECT_H */
