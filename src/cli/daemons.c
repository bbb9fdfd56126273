/*
 * eddy — `eddy jobmanager` and `eddy taskmanager` (DESIGN.md §2, §8).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Both read their configuration in layers (settings.h): eddy.yaml
 * (--config), EDDY_* variables, then flags, which map onto keys. They log
 * to stderr or log.file, never to stdout, and stop cleanly on SIGTERM or
 * SIGINT: the signal only raises a flag that their main loops look at.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "common/log.h"
#include "common/settings.h"
#include "jobmanager/inspect.h"
#include "jobmanager/jobmanager.h"
#include "taskmanager/taskmanager.h"

static volatile int g_stop;

static void on_signal(int sig)
{
    EDDY_UNUSED(sig);
    g_stop = 1;
}

const char *const eddy__cli_jobmanager_usage =
    "usage: eddy jobmanager [--config FILE] [--rest-port 8081] "
    "[--rpc-port 6123]\n"
    "                       [--bind-host ADDR] [--data-dir DIR] "
    "[-D KEY=VALUE]...\n"
    "\n"
    "Runs the JobManager: the REST API (jobs, savepoints, metrics) and the\n"
    "endpoint TaskManagers register with. Jobs, checkpoints and exceptions\n"
    "are recorded in metadata.store (SQLite, under the data dir); a\n"
    "JobManager restarted on the same data dir resumes the jobs that were\n"
    "running. Stops on SIGTERM or SIGINT.\n"
    "\n"
    "Options:\n"
    "  --config FILE      an eddy.yaml (docs/configuration.md)\n"
    "  --rest-port PORT   REST API port (rest.port, default 8081; 0: any)\n"
    "  --rpc-port PORT    TaskManager port (rpc.port, default 6123; 0: any)\n"
    "  --bind-host ADDR   where both ports listen (jobmanager.bind_host,\n"
    "                     default 127.0.0.1; 0.0.0.0 for other machines)\n"
    "  --data-dir DIR     artifacts, metadata, checkpoints (data.dir,\n"
    "                     default /tmp/eddy)\n"
    "  --log-file FILE    log here instead of stderr (log.file)\n"
    "  -D KEY=VALUE       any configuration key\n";

const char *const eddy__cli_taskmanager_usage =
    "usage: eddy taskmanager --jobmanager HOST:PORT [--slots 4] "
    "[--data-dir DIR]\n"
    "                        [--host ADDR] [--bind-host ADDR] "
    "[--config FILE]\n"
    "                        [-D KEY=VALUE]...\n"
    "\n"
    "Runs a TaskManager: offers slots to the JobManager at HOST:PORT (its\n"
    "RPC port, 6123 by default) and runs the subtasks placed on it. Stops\n"
    "on SIGTERM or SIGINT, cancelling what it runs.\n"
    "\n"
    "Options:\n"
    "  --jobmanager HOST:PORT  the JobManager's RPC address (required)\n"
    "  --slots N          slots offered (taskmanager.slots, default 4)\n"
    "  --data-dir DIR     working files (data.dir, default /tmp/eddy)\n"
    "  --host ADDR        the address other TaskManagers and Prometheus\n"
    "                     reach this one at (taskmanager.host, default\n"
    "                     127.0.0.1; this machine's address on a cluster\n"
    "                     of several machines)\n"
    "  --bind-host ADDR   where its data plane and /metrics listen\n"
    "                     (taskmanager.bind_host, default: --host)\n"
    "  --config FILE      an eddy.yaml (docs/configuration.md)\n"
    "  --log-file FILE    log here instead of stderr (log.file)\n"
    "  -D KEY=VALUE       any configuration key\n";

typedef struct flag_map {
    const char *fm_flag;
    const char *fm_key;
} flag_map_t;

/* Parses the shared flags into settings; returns an exit status or -1 to
 * go on. `extra` / `extra_val` receive --jobmanager for the TaskManager. */
static int load(const char *cmd, const char *usage, int argc, char **argv,
                const flag_map_t *map, size_t nmap, const char **jobmanager,
                eddy__settings_t **out)
{
    eddy__setting_kv_t *kv = eddy__calloc((size_t)argc + 1, sizeof(*kv));
    size_t nkv = 0;
    const char *config = NULL;
    char **owned = eddy__calloc((size_t)argc + 1, sizeof(char *));
    int nowned = 0;
    int status = -1;
    for (int i = 0; i < argc && status < 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            status = 0;
            break;
        }
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--config") == 0 || strcmp(a, "--jobmanager") == 0) {
            if (val == NULL) {
                fprintf(stderr, "eddy %s: %s needs a value (see --help)\n", cmd,
                        a);
                status = 2;
                break;
            }
            if (a[2] == 'c') {
                config = val;
            } else if (jobmanager != NULL) {
                *jobmanager = val;
            } else {
                fprintf(stderr, "eddy %s: unknown option '%s' (see --help)\n",
                        cmd, a);
                status = 2;
                break;
            }
            i++;
            continue;
        }
        if (strncmp(a, "-D", 2) == 0) {
            const char *def = a[2] != '\0' ? a + 2 : val;
            if (a[2] == '\0') {
                i++;
            }
            const char *eq = def != NULL ? strchr(def, '=') : NULL;
            if (eq == NULL) {
                fprintf(stderr, "eddy %s: -D takes KEY=VALUE\n", cmd);
                status = 2;
                break;
            }
            char *k = eddy__strdup(def);
            k[eq - def] = '\0';
            owned[nowned++] = k;
            kv[nkv++] = (eddy__setting_kv_t){k, k + (eq - def) + 1, NULL};
            continue;
        }
        bool found = false;
        for (size_t m = 0; m < nmap && !found; m++) {
            if (strcmp(a, map[m].fm_flag) == 0) {
                found = true;
                if (val == NULL) {
                    fprintf(stderr, "eddy %s: %s needs a value (see --help)\n",
                            cmd, a);
                    status = 2;
                    break;
                }
                kv[nkv++] =
                    (eddy__setting_kv_t){map[m].fm_key, val, map[m].fm_flag};
                i++;
            }
        }
        if (!found && status < 0) {
            fprintf(stderr, "eddy %s: unknown option '%s' (see --help)\n", cmd,
                    a);
            status = 2;
        }
    }
    if (status < 0) {
        eddy__settings_t *st = eddy__settings_new();
        eddy_error_t err = {0};
        if (eddy__settings_load(st, config, NULL, kv, nkv, &err) != 0) {
            fprintf(stderr, "eddy %s: %s\n", cmd, err.msg);
            eddy__settings_destroy(st);
            status = 2;
        } else {
            *out = st;
        }
    }
    for (int i = 0; i < nowned; i++) {
        free(owned[i]);
    }
    free(owned);
    free(kv);
    return status;
}

static int init_log(const char *component, const eddy__settings_t *st)
{
    eddy_error_t err = {0};
    int level = eddy__log_level_parse(eddy__settings_get_str(st, "log.level"));
    if (eddy__log_init(component, eddy__settings_get_str(st, "log.file"),
                       level < 0 ? EDDY__LOG_INFO : level, &err) != 0) {
        fprintf(stderr, "eddy %s: %s\n", component, err.msg);
        return -1;
    }
    return 0;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

int eddy__cli_jobmanager(int argc, char **argv, const char *exe)
{
    static const flag_map_t map[] = {
        {"--rest-port", "rest.port"},
        {"--rpc-port", "rpc.port"},
        {"--bind-host", "jobmanager.bind_host"},
        {"--data-dir", "data.dir"},
        {"--log-file", "log.file"},
    };
    eddy__settings_t *st = NULL;
    int status = load("jobmanager", eddy__cli_jobmanager_usage, argc, argv, map,
                      EDDY_ARRAY_SIZE(map), NULL, &st);
    if (status >= 0) {
        return status;
    }
    if (init_log("jobmanager", st) != 0) {
        eddy__settings_destroy(st);
        return 1;
    }
    install_signals();
    eddy__jm_t *jm = NULL;
    eddy_error_t err = {0};
    if (eddy__jm_new(st, exe, &jm, &err) != 0) {
        fprintf(stderr, "eddy jobmanager: %s\n", err.msg);
        eddy__settings_destroy(st);
        return 1;
    }
    eddy__jm_run(jm, &g_stop);
    eddy__jm_destroy(jm);
    eddy__settings_destroy(st);
    return 0;
}

int eddy__cli_taskmanager(int argc, char **argv)
{
    static const flag_map_t map[] = {
        {"--slots", "taskmanager.slots"},
        {"--host", "taskmanager.host"},
        {"--bind-host", "taskmanager.bind_host"},
        {"--data-dir", "data.dir"},
        {"--log-file", "log.file"},
    };
    eddy__settings_t *st = NULL;
    const char *jobmanager = NULL;
    int status = load("taskmanager", eddy__cli_taskmanager_usage, argc, argv,
                      map, EDDY_ARRAY_SIZE(map), &jobmanager, &st);
    if (status >= 0) {
        return status;
    }
    if (jobmanager == NULL) {
        fprintf(stderr, "eddy taskmanager: --jobmanager HOST:PORT is "
                        "required (the JobManager's RPC address, e.g. "
                        "127.0.0.1:6123)\n");
        eddy__settings_destroy(st);
        return 2;
    }
    if (init_log("taskmanager", st) != 0) {
        eddy__settings_destroy(st);
        return 1;
    }
    install_signals();
    eddy__tm_t *tm = NULL;
    eddy_error_t err = {0};
    if (eddy__tm_new(st, jobmanager, &tm, &err) != 0) {
        fprintf(stderr, "eddy taskmanager: %s\n", err.msg);
        eddy__settings_destroy(st);
        return err.code == EDDY_ERR_INVALID ? 2 : 1;
    }
    eddy__tm_run(tm, &g_stop);
    eddy__tm_destroy(tm);
    eddy__settings_destroy(st);
    return 0;
}

int eddy__cli_inspect(int argc, char **argv)
{
    return eddy__inspect_main(argc, argv);
}

const char *eddy__cli_usage(const char *command)
{
    static const struct {
        const char *name;
        const char *const *text;
    } usages[] = {
        {"jobmanager", &eddy__cli_jobmanager_usage},
        {"taskmanager", &eddy__cli_taskmanager_usage},
        {"list", &eddy__cli_list_usage},
        {"status", &eddy__cli_status_usage},
        {"cancel", &eddy__cli_cancel_usage},
        {"savepoint", &eddy__cli_savepoint_usage},
        {"stop", &eddy__cli_stop_usage},
        {"cluster", &eddy__cli_cluster_usage},
    };
    for (size_t i = 0; command != NULL && i < EDDY_ARRAY_SIZE(usages); i++) {
        if (strcmp(command, usages[i].name) == 0) {
            return *usages[i].text;
        }
    }
    return NULL;
}
