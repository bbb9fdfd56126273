/*
 * eddy — CLI commands implemented outside src/cli/main.c.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Each command takes the arguments that follow its name on the command line
 * (`eddy kafka-dev --port 9092` passes {"--port", "9092"}) and returns the
 * process exit status, following main.c's conventions: 0 success, 1 failure,
 * 2 bad usage (one line on stderr pointing at --help).
 */
#ifndef EDDY_CLI_COMMANDS_H
#define EDDY_CLI_COMMANDS_H

/* `eddy kafka-dev`: the development Kafka broker (src/cli/kafka_dev.c). */
int eddy__cli_kafka_dev(int argc, char **argv);
/* Its --help text (also printed by `eddy help kafka-dev`). */
extern const char *const eddy__cli_kafka_dev_usage;

/*
 * The cluster daemons (src/cli/daemons.c). They live in libeddy, not in the
 * executable, so that the process has one runtime: the one the jobs it
 * loads link against. Exported for the eddy executable only.
 */
#include "eddy/error.h"
EDDY_EXPORT int eddy__cli_jobmanager(int argc, char **argv, const char *exe);
EDDY_EXPORT int eddy__cli_taskmanager(int argc, char **argv);
extern const char *const eddy__cli_jobmanager_usage;
extern const char *const eddy__cli_taskmanager_usage;
/* `eddy __inspect` (src/jobmanager/inspect.c): the JobManager's child. */
EDDY_EXPORT int eddy__cli_inspect(int argc, char **argv);

/*
 * The REST clients (src/cli/remote.c): `eddy list`, `status`, `cancel`,
 * `savepoint`, `stop`, and `eddy run` without --local. They talk to the
 * JobManager at --jobmanager URL, else $EDDY_JOBMANAGER, else
 * http://127.0.0.1:8081. Results go to stdout (--json: the JSON, one
 * document per line), errors are one line on stderr.
 */
EDDY_EXPORT int eddy__cli_list(int argc, char **argv);
EDDY_EXPORT int eddy__cli_status(int argc, char **argv);
EDDY_EXPORT int eddy__cli_cancel(int argc, char **argv);
EDDY_EXPORT int eddy__cli_savepoint(int argc, char **argv);
EDDY_EXPORT int eddy__cli_stop(int argc, char **argv);
extern const char *const eddy__cli_list_usage;
extern const char *const eddy__cli_status_usage;
extern const char *const eddy__cli_cancel_usage;
extern const char *const eddy__cli_savepoint_usage;
extern const char *const eddy__cli_stop_usage;

/*
 * `eddy run JOB.so` without --local, once main.c has parsed and checked the
 * command line (it owns the flags, so that local and cluster runs spell
 * and report them alike). Fields the user did not give are 0 or NULL.
 */
typedef struct eddy__cli_run_opts {
    const char *ro_job;                 /* JOB.so, as given */
    int ro_parallelism;                 /* -p; 0: the JobManager's */
    const char *ro_checkpoint_interval; /* --checkpoint-interval */
    const char *ro_savepoint;           /* --from-savepoint */
    const char *ro_jobmanager;          /* --jobmanager URL */
    int ro_detached;                    /* --detached */
    int ro_json;                        /* --json */
    int ro_quiet;                       /* -q */
    int ro_argc;                        /* the arguments after "--" */
    char **ro_argv;
} eddy__cli_run_opts_t;
/* Submits the job, then prints its id (detached) or follows its state
 * until it ends: 0 FINISHED, 1 FAILED or an error, 130 CANCELED or
 * following interrupted (the job keeps running). */
EDDY_EXPORT int eddy__cli_run_remote(const eddy__cli_run_opts_t *o);

/* `eddy cluster start|stop` (src/cli/cluster.c): a JobManager and
 * TaskManagers in the background, pid files and logs under the data dir. */
EDDY_EXPORT int eddy__cli_cluster(int argc, char **argv);
extern const char *const eddy__cli_cluster_usage;

/*
 * The --help text of a command implemented in libeddy ("jobmanager",
 * "list", "cluster", ...), or NULL. A function, not exported variables:
 * a program that also loads libeddy.so (the inspection tests) would
 * otherwise carry two definitions of one exported global.
 */
EDDY_EXPORT const char *eddy__cli_usage(const char *command);

#endif /* EDDY_CLI_COMMANDS_H */
