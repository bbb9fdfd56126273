/*
 * eddy — the command-line tool.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Every command documents its flags in `--help`. Errors are one line on
 * stderr, prefixed with the command, and a non-zero exit status:
 *   0 success, 1 the job failed, 2 bad usage, 70 the job crashed (signal),
 *   130 canceled by SIGINT/SIGTERM (a second signal, or 5 s without the job
 *   stopping, forces the exit).
 * In `eddy run --local` only stderr carries eddy's own messages; stdout
 * belongs to the job's print sinks. The cluster commands (src/cli/remote.c,
 * src/cli/cluster.c, in libeddy) print their results on stdout, since a
 * job on a cluster prints on its TaskManagers. main.c parses `eddy run`
 * for both kinds of run, so that they spell and report flags alike, and
 * only dispatches the other commands.
 *
 * THREADS. The main thread, plus the --stop-with-savepoint thread of a
 * local run.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eddy/eddy.h"
#include "eddy/runner.h"

#include "commands.h"

#define EXIT_JOB_FAILED 1
#define EXIT_USAGE 2
#define EXIT_CANCELED 130

static const char *const main_usage =
    "usage: eddy <command> [options]\n"
    "\n"
    "eddy is a stream processing engine; jobs are C shared objects built\n"
    "against <eddy/eddy.h>.\n"
    "\n"
    "Commands:\n"
    "  run          submit a job to a cluster (in this process with --local)\n"
    "  list         list a cluster's jobs\n"
    "  status       show a job's state and tasks\n"
    "  cancel       cancel a job\n"
    "  savepoint    take a savepoint of a running job\n"
    "  stop         stop a job with a savepoint\n"
    "  cluster      start or stop a local cluster in the background\n"
    "  jobmanager   run the JobManager (REST API, scheduling, checkpoints)\n"
    "  taskmanager  run a TaskManager that offers slots to a JobManager\n"
    "  kafka-dev    run a Kafka-protocol broker for development and tests\n"
    "  version      print the version\n"
    "  help         show help for a command\n"
    "\n"
    "Run 'eddy <command> --help' for a command's options.\n";

static const char *const run_usage =
    "usage: eddy run JOB.so [--local] [--jobmanager URL] [-p N]\n"
    "                [--checkpoint-interval MS] [--from-savepoint PATH]\n"
    "                [--detached] [--json] [OPTIONS] [-- JOB ARGS...]\n"
    "\n"
    "Runs a job. By default JOB.so is submitted to a cluster's JobManager\n"
    "(start one with 'eddy cluster start') and eddy run follows it: it\n"
    "prints \"submitted job ID (NAME)\" and then one line per state change\n"
    "(RUNNING, RESTARTING: <why>, FINISHED ...) on standard output until\n"
    "the job ends. Ctrl-C stops following but not the job; cancel it with\n"
    "'eddy cancel ID'. What the job's print sinks write goes to the\n"
    "TaskManagers' standard output (their logs, with eddy cluster start).\n"
    "\n"
    "With --local the job runs in this process instead (the local\n"
    "mini-cluster): records printed by its print sinks go to standard\n"
    "output, eddy's own messages to standard error.\n"
    "\n"
    "Options:\n"
    "  -p, --parallelism N   default parallelism of operators that set none\n"
    "                        (1..max parallelism; default 1, or on a\n"
    "                        cluster the JobManager's parallelism.default)\n"
    "  --checkpoint-interval MS\n"
    "                        take a checkpoint every MS (or 10s, 1m...);\n"
    "                        after a failure the job restarts from the\n"
    "                        latest one (default: the job's setting, or off)\n"
    "  --from-savepoint PATH start from a savepoint or checkpoint: a chk-<n>\n"
    "                        directory, or a job's checkpoint directory\n"
    "                        (its newest usable checkpoint); on a cluster, a\n"
    "                        path on the JobManager's machine (a relative\n"
    "                        one is taken from the current directory)\n"
    "  -q, --quiet           print no summary (--local) or state changes\n"
    "  -h, --help            show this help\n"
    "  --                    the arguments after it are passed to the job\n"
    "                        (on a cluster, relative file names in them are\n"
    "                        resolved by the TaskManagers)\n"
    "\n"
    "Cluster runs:\n"
    "  --jobmanager URL      the JobManager's REST address (default\n"
    "                        $EDDY_JOBMANAGER, else http://127.0.0.1:8081)\n"
    "  --detached            submit, print the job id alone and exit\n"
    "  --json                print JSON instead of text: the submission's\n"
    "                        answer (--detached), or the job's status at\n"
    "                        each state change, one document per line\n"
    "\n"
    "Local runs:\n"
    "  --local               run the job in this process\n"
    "  --checkpoint-dir DIR  where checkpoints go: DIR/<job id>/chk-<n>\n"
    "                        (default /tmp/eddy/checkpoints)\n"
    "  --allow-non-restored-state\n"
    "                        ignore saved state that no operator claims\n"
    "  --state-backend NAME  heap (default) or rocksdb\n"
    "  --restart-strategy S  none, fixed-delay or exponential-delay (default\n"
    "                        with checkpoints: exponential-delay)\n"
    "  --job-id ID           32 hex characters (default: random)\n"
    "  --stop-with-savepoint DIR\n"
    "                        on SIGINT/SIGTERM, take a savepoint under DIR,\n"
    "                        print its path, then stop (exit status 0)\n"
    "  --config FILE         an eddy.yaml file (see docs/configuration.md);\n"
    "                        its job keys apply, then EDDY_* variables,\n"
    "                        then flags\n"
    "  -D KEY=VALUE          any configuration key (e.g. -D\n"
    "                        checkpoint.retained=5); EDDY_<KEY> environment\n"
    "                        variables (EDDY_CHECKPOINT_INTERVAL=5s) apply\n"
    "                        first, flags override them\n"
    "  (A cluster job takes these from the JobManager's configuration.)\n"
    "\n"
    "Exit status: 0 finished, 1 failed (or could not be submitted), 2 bad\n"
    "usage, 70 crashed (--local), 130 canceled, or, on a cluster, Ctrl-C\n"
    "while following (the job keeps running).\n"
    "\n"
    "Examples:\n"
    "  eddy run --local build/examples/word_count.so -p 4 -- input.txt\n"
    "  eddy run build/examples/word_count.so -p 2 -- $PWD/input.txt\n"
    "  ID=$(eddy run --detached job.so --checkpoint-interval 10s)\n";

static const char *const version_usage =
    "usage: eddy version\n"
    "\n"
    "Prints eddy's version and the job ABI version it runs.\n";

static eddy_env_t *volatile running_env;
static volatile sig_atomic_t stop_requested;
/* --stop-with-savepoint: the signal handler wakes a thread that takes the
 * savepoint (not async-signal-safe work) and then cancels the job. */
static const char *stop_savepoint_dir;
static sem_t stop_sem;
static volatile sig_atomic_t job_done;
static char stop_savepoint_path[4096];
static volatile sig_atomic_t stopped_with_savepoint;

#define STOP_GRACE_SECONDS 5

static void say(const char *msg)
{
    ssize_t w = write(STDERR_FILENO, msg, strlen(msg));
    (void)w;
}

/*
 * SIGINT/SIGTERM: the first asks the running job to cancel (tasks stop at the
 * next record or buffer). A task can be stuck in a system call the job cannot
 * interrupt — say, a print sink writing to a pipe nobody reads — so a second
 * signal, or the grace period running out (SIGALRM), ends the process.
 * Before the job runs (loading, building) there is nothing to drain.
 */
static void on_stop_signal(int sig)
{
    eddy_env_t *env = running_env;
    if (sig == SIGALRM) {
        say("eddy run: the job did not stop within 5 s; exiting\n");
        _exit(EXIT_CANCELED);
    }
    if (env == NULL || stop_requested) {
        say("eddy run: canceled\n");
        _exit(EXIT_CANCELED);
    }
    stop_requested = 1;
    if (stop_savepoint_dir != NULL) {
        sem_post(&stop_sem); /* the savepoint thread takes over */
        return;
    }
    eddy_env_cancel(env);
    alarm(STOP_GRACE_SECONDS);
}

static void *savepoint_thread(void *arg)
{
    eddy_env_t *env = arg;
    while (sem_wait(&stop_sem) != 0) {
        /* EINTR: a signal arrived; wait again */
    }
    if (job_done) {
        return NULL;
    }
    say("eddy run: taking a savepoint before stopping\n");
    eddy_error_t err;
    eddy_error_clear(&err);
    if (eddy_env_savepoint(env, stop_savepoint_dir, stop_savepoint_path,
                           sizeof(stop_savepoint_path), &err) == 0) {
        stopped_with_savepoint = 1;
    } else {
        fprintf(stderr, "eddy run: %s\n", err.msg);
    }
    eddy_env_cancel(env);
    alarm(STOP_GRACE_SECONDS);
    return NULL;
}

static void install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
}

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "eddy%s%s: ", cmd[0] ? " " : "", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'eddy %s%s--help')\n", cmd, cmd[0] ? " " : "");
    return EXIT_USAGE;
}

static bool parse_positive(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v < 1 || v > INT_MAX) {
        return false;
    }
    *out = (int)v;
    return true;
}

/* Configuration keys settable by EDDY_* environment variables. */
static const char *const env_keys[] = {
    "checkpoint.interval",
    "checkpoint.timeout",
    "checkpoint.min_pause",
    "checkpoint.max_concurrent",
    "checkpoint.retained",
    "checkpoint.mode",
    "checkpoint.dir",
    "state.backend",
    "state.rocksdb.dir",
    "restart.strategy",
    "restart.attempts",
    "restart.delay",
    "restart.max_delay",
    "restart.multiplier",
    "savepoint.path",
    "savepoint.allow_non_restored",
    "job.id",
};

#define MAX_OPTIONS 64

typedef struct option_kv {
    const char *key;
    const char *value;
    char kbuf[64]; /* the key of -D KEY=VALUE */
} option_kv_t;

/* Applies EDDY_* variables, then the flags; one error line on failure. */
static int apply_options(eddy_env_t *env, option_kv_t *opts, int nopts)
{
    eddy_error_t err;
    for (size_t i = 0; i < sizeof(env_keys) / sizeof(env_keys[0]); i++) {
        char name[64] = "EDDY_";
        size_t n = 5;
        for (const char *k = env_keys[i]; *k && n + 1 < sizeof(name); k++) {
            char c = *k == '.' ? '_' : *k;
            name[n++] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
        }
        name[n] = '\0';
        const char *v = getenv(name);
        if (v != NULL && eddy_env_set_option(env, env_keys[i], v, &err) != 0) {
            fprintf(stderr, "eddy run: %s (from %s)\n", err.msg, name);
            return EXIT_USAGE;
        }
    }
    for (int i = 0; i < nopts; i++) {
        if (eddy_env_set_option(env, opts[i].key, opts[i].value, &err) != 0) {
            fprintf(stderr, "eddy run: %s\n", err.msg);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* Flags that set one configuration key: --flag VALUE or --flag=VALUE. */
static const struct {
    const char *flag;
    const char *key;
} valued[] = {
    {"--checkpoint-interval", "checkpoint.interval"},
    {"--checkpoint-dir", "checkpoint.dir"},
    {"--from-savepoint", "savepoint.path"},
    {"--state-backend", "state.backend"},
    {"--restart-strategy", "restart.strategy"},
    {"--job-id", "job.id"},
};

/* The key of a valued flag, or NULL; *inline_value is the text after '='
 * (NULL when the value is the next argument), *flag the flag's name. */
static const char *valued_key(const char *a, const char **inline_value,
                              const char **flag)
{
    const char *eq = strchr(a, '=');
    size_t n = eq != NULL ? (size_t)(eq - a) : strlen(a);
    for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
        if (strlen(valued[k].flag) == n && strncmp(a, valued[k].flag, n) == 0) {
            *inline_value = eq != NULL ? eq + 1 : NULL;
            *flag = valued[k].flag;
            return valued[k].key;
        }
    }
    return NULL;
}

/* Keys of valued flags that a cluster run sends with the submission; the
 * others configure the local mini-cluster only. */
static bool remote_key(const char *key)
{
    return strcmp(key, "checkpoint.interval") == 0 ||
           strcmp(key, "savepoint.path") == 0;
}

static int cmd_run(int argc, char **argv)
{
    bool local = false, quiet = false;
    option_kv_t opts[MAX_OPTIONS];
    int nopts = 0;
    const char *savepoint_dir = NULL;
    const char *config_path = NULL;
    const char *inline_value = NULL, *vkey, *vflag = NULL;
    int parallelism = 0;
    const char *job_path = NULL;
    int job_argc = 0;
    char **job_argv = NULL;
    /* A cluster run: what it sends, and the first flag that belongs to
     * the other kind of run (reported as a usage error). */
    eddy__cli_run_opts_t ro;
    memset(&ro, 0, sizeof(ro));
    const char *local_only = NULL, *remote_only = NULL;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            job_argc = argc - i - 1;
            job_argv = argv + i + 1;
            break;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(run_usage, stdout);
            return 0;
        } else if (strcmp(a, "--local") == 0) {
            local = true;
        } else if (strcmp(a, "--detached") == 0 || strcmp(a, "--json") == 0) {
            remote_only = remote_only != NULL ? remote_only : a;
            if (strcmp(a, "--detached") == 0) {
                ro.ro_detached = 1;
            } else {
                ro.ro_json = 1;
            }
        } else if (strcmp(a, "--jobmanager") == 0 ||
                   strncmp(a, "--jobmanager=", 13) == 0) {
            ro.ro_jobmanager = a[12] == '='   ? a + 13
                               : i + 1 < argc ? argv[++i]
                                              : NULL;
            if (ro.ro_jobmanager == NULL || *ro.ro_jobmanager == '\0') {
                return usage_error("run", "%s needs a URL", "--jobmanager");
            }
            remote_only = remote_only != NULL ? remote_only : "--jobmanager";
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            quiet = true;
        } else if (strcmp(a, "-p") == 0 || strcmp(a, "--parallelism") == 0 ||
                   strncmp(a, "--parallelism=", 14) == 0 ||
                   (strncmp(a, "-p", 2) == 0 && a[2] != '\0')) {
            const char *v;
            if (strncmp(a, "--parallelism=", 14) == 0) {
                v = a + 14;
            } else if (a[1] == 'p' && a[2] != '\0') {
                v = a + 2;
            } else if (i + 1 < argc) {
                v = argv[++i];
            } else {
                return usage_error("run", "%s needs a value", a);
            }
            if (!parse_positive(v, &parallelism)) {
                return usage_error(
                    "run", "parallelism must be a positive integer, got '%s'",
                    v);
            }
        } else if (strcmp(a, "--config") == 0 ||
                   strncmp(a, "--config=", 9) == 0) {
            config_path = a[8] == '=' ? a + 9 : i + 1 < argc ? argv[++i] : NULL;
            if (config_path == NULL || *config_path == '\0') {
                return usage_error("run", "%s needs a file", a);
            }
            local_only = local_only != NULL ? local_only : "--config";
        } else if (strcmp(a, "--stop-with-savepoint") == 0 ||
                   strncmp(a, "--stop-with-savepoint=", 22) == 0) {
            savepoint_dir = a[21] == '='   ? a + 22
                            : i + 1 < argc ? argv[++i]
                                           : NULL;
            if (savepoint_dir == NULL || *savepoint_dir == '\0') {
                return usage_error("run", "%s needs a directory", a);
            }
            local_only =
                local_only != NULL ? local_only : "--stop-with-savepoint";
        } else if (strcmp(a, "--allow-non-restored-state") == 0) {
            if (nopts == MAX_OPTIONS) {
                return usage_error("run", "too many options%s", "");
            }
            opts[nopts++] =
                (option_kv_t){"savepoint.allow_non_restored", "true", {0}};
            local_only = local_only != NULL ? local_only : a;
        } else if (strcmp(a, "-D") == 0 || strncmp(a, "-D", 2) == 0) {
            const char *kv = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
            const char *eq = kv ? strchr(kv, '=') : NULL;
            if (kv == NULL || eq == NULL || eq == kv) {
                return usage_error("run", "-D needs KEY=VALUE%s", "");
            }
            if (nopts == MAX_OPTIONS) {
                return usage_error("run", "too many options%s", "");
            }
            size_t kl = (size_t)(eq - kv);
            if (kl >= sizeof(opts[0].kbuf)) {
                return usage_error("run", "unknown configuration key in '%s'",
                                   kv);
            }
            local_only = local_only != NULL ? local_only : "-D";
            option_kv_t *o = &opts[nopts++];
            memcpy(o->kbuf, kv, kl);
            o->kbuf[kl] = '\0';
            o->key = o->kbuf;
            o->value = eq + 1;
        } else if ((vkey = valued_key(a, &inline_value, &vflag)) != NULL) {
            const char *v = inline_value != NULL ? inline_value
                            : i + 1 < argc       ? argv[++i]
                                                 : NULL;
            if (v == NULL) {
                return usage_error("run", "%s needs a value", a);
            }
            if (nopts == MAX_OPTIONS) {
                return usage_error("run", "too many options%s", "");
            }
            opts[nopts++] = (option_kv_t){vkey, v, {0}};
            if (!remote_key(vkey)) {
                local_only = local_only != NULL ? local_only : vflag;
            } else if (vkey[0] == 'c') {
                ro.ro_checkpoint_interval = v;
            } else {
                ro.ro_savepoint = v;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("run", "unknown option '%s'", a);
        } else if (job_path == NULL) {
            job_path = a;
        } else {
            return usage_error("run",
                               "unexpected argument '%s' (job arguments go "
                               "after '--')",
                               a);
        }
    }
    if (job_path == NULL) {
        return usage_error("run", "missing the job file%s", " (JOB.so)");
    }
    if (local && remote_only != NULL) {
        return usage_error("run",
                           "%s is for jobs submitted to a cluster; it cannot "
                           "be used with --local",
                           remote_only);
    }
    if (!local) {
        if (local_only != NULL) {
            return usage_error("run",
                               "%s applies only with --local; a job on a "
                               "cluster takes it from the JobManager's "
                               "configuration",
                               local_only);
        }
        ro.ro_job = job_path;
        ro.ro_parallelism = parallelism;
        ro.ro_quiet = quiet;
        ro.ro_argc = job_argc;
        ro.ro_argv = job_argv;
        return eddy__cli_run_remote(&ro);
    }

    eddy_error_t err;
    eddy_error_clear(&err);
    eddy_job_t *job = NULL;
    install_stop_handlers();
    if (eddy_job_open(job_path, &job, &err) != 0) {
        fprintf(stderr, "eddy run: %s\n", err.msg);
        return EXIT_JOB_FAILED;
    }
    eddy_env_t *env = eddy_env_new();
    if (parallelism > 0) {
        eddy_env_set_default_parallelism(env, parallelism);
    }
    int rc = eddy_job_build(job, env, job_argc, job_argv, &err);
    if (rc != 0) {
        fprintf(stderr, "eddy run: job '%s' could not be built: %s\n",
                eddy_job_name(job), err.msg);
        eddy_env_destroy(env);
        eddy_job_close(job);
        return EXIT_JOB_FAILED;
    }

    if (config_path != NULL &&
        eddy_env_load_config(env, config_path, &err) != 0) {
        fprintf(stderr, "eddy run: %s\n", err.msg);
        eddy_env_destroy(env);
        eddy_job_close(job);
        return EXIT_USAGE;
    }
    rc = apply_options(env, opts, nopts);
    if (rc != 0) {
        eddy_env_destroy(env);
        eddy_job_close(job);
        return rc;
    }

    pthread_t sp_thread;
    bool sp_started = false;
    if (savepoint_dir != NULL) {
        sem_init(&stop_sem, 0, 0);
        stop_savepoint_dir = savepoint_dir;
        sp_started =
            pthread_create(&sp_thread, NULL, savepoint_thread, env) == 0;
    }
    running_env = env;
    const char *ckdir = eddy_env_checkpoint_dir(env);
    if (ckdir != NULL && !quiet) {
        fprintf(stderr, "eddy run: job '%s' (%s) checkpoints to %s\n",
                eddy_job_name(job), eddy_env_job_id(env), ckdir);
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = eddy_env_execute(env, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    alarm(0);
    running_env = NULL;
    if (sp_started) {
        job_done = 1;
        sem_post(&stop_sem);
        pthread_join(sp_thread, NULL);
        stop_savepoint_dir = NULL;
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    int status = 0;
    if (rc == EDDY_ERR_CANCELED && stopped_with_savepoint) {
        fprintf(stderr, "eddy run: job '%s' stopped with savepoint %s\n",
                eddy_job_name(job), stop_savepoint_path);
    } else if (rc == EDDY_ERR_CANCELED) {
        fprintf(stderr, "eddy run: job '%s' canceled after %.3f s\n",
                eddy_job_name(job), secs);
        status = EXIT_CANCELED;
    } else if (rc != 0) {
        fprintf(stderr, "eddy run: job '%s' failed: %s\n", eddy_job_name(job),
                err.msg);
        status = EXIT_JOB_FAILED;
    } else if (!quiet) {
        fprintf(stderr, "eddy run: job '%s' finished in %.3f s\n",
                eddy_job_name(job), secs);
    }
    uint64_t ck_done, ck_failed;
    char latest[1024];
    if (ckdir != NULL && !quiet &&
        eddy_env_checkpoint_summary(env, &ck_done, &ck_failed, latest,
                                    sizeof(latest)) == 0) {
        fprintf(stderr,
                "eddy run: %llu checkpoint%s completed, %llu failed%s%s\n",
                (unsigned long long)ck_done, ck_done == 1 ? "" : "s",
                (unsigned long long)ck_failed,
                latest[0] != '\0' ? "; the latest is " : "", latest);
        if (status == EXIT_JOB_FAILED && latest[0] != '\0') {
            fprintf(stderr,
                    "eddy run: to resume the job from it: eddy run --local "
                    "%s --from-savepoint %s ...\n",
                    job_path, latest);
        }
    }
    eddy_env_destroy(env);
    eddy_job_close(job);
    return status;
}

/* The commands implemented in libeddy (commands.h) that main only
 * dispatches to. */
static const struct {
    const char *rc_name;
    int (*rc_main)(int argc, char **argv);
} remote_cmds[] = {
    {"list", eddy__cli_list},     {"status", eddy__cli_status},
    {"cancel", eddy__cli_cancel}, {"savepoint", eddy__cli_savepoint},
    {"stop", eddy__cli_stop},     {"cluster", eddy__cli_cluster},
};

static const char *remote_usage(const char *name)
{
    for (size_t i = 0; i < sizeof(remote_cmds) / sizeof(remote_cmds[0]); i++) {
        if (strcmp(name, remote_cmds[i].rc_name) == 0) {
            return eddy__cli_usage(name);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    /* A closed stdout must become a clear job error, not a silent death. */
    signal(SIGPIPE, SIG_IGN);
    eddy_crash_guard_install();

    if (argc < 2) {
        fputs(main_usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        fputs(main_usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        if (argc > 2 &&
            (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0)) {
            fputs(version_usage, stdout);
            return 0;
        }
        if (argc > 2) {
            return usage_error("version", "unexpected argument '%s'", argv[2]);
        }
        printf("eddy %s (job ABI %d)\n", eddy_version(), EDDY_ABI_VERSION);
        return 0;
    }
    if (strcmp(cmd, "run") == 0) {
        return cmd_run(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "kafka-dev") == 0) {
        return eddy__cli_kafka_dev(argc - 2, argv + 2);
    }
    for (size_t i = 0; i < sizeof(remote_cmds) / sizeof(remote_cmds[0]); i++) {
        if (strcmp(cmd, remote_cmds[i].rc_name) == 0) {
            return remote_cmds[i].rc_main(argc - 2, argv + 2);
        }
    }
    if (strcmp(cmd, "jobmanager") == 0) {
        return eddy__cli_jobmanager(argc - 2, argv + 2, NULL);
    }
    if (strcmp(cmd, "taskmanager") == 0) {
        return eddy__cli_taskmanager(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "__inspect") == 0) {
        /* The JobManager's job-inspection child (not for users). */
        return eddy__cli_inspect(argc, argv);
    }
    if (strcmp(cmd, "help") == 0) {
        const char *what = argc > 2 ? argv[2] : "";
        if (strcmp(what, "run") == 0) {
            fputs(run_usage, stdout);
        } else if (strcmp(what, "kafka-dev") == 0) {
            fputs(eddy__cli_kafka_dev_usage, stdout);
        } else if (strcmp(what, "jobmanager") == 0) {
            fputs(eddy__cli_usage("jobmanager"), stdout);
        } else if (strcmp(what, "taskmanager") == 0) {
            fputs(eddy__cli_usage("taskmanager"), stdout);
        } else if (strcmp(what, "version") == 0) {
            fputs(version_usage, stdout);
        } else if (remote_usage(what) != NULL) {
            fputs(remote_usage(what), stdout);
        } else if (what[0] == '\0') {
            fputs(main_usage, stdout);
        } else {
            return usage_error("", "unknown command '%s'", what);
        }
        return 0;
    }
    return usage_error("", "unknown command '%s'", cmd);
}
