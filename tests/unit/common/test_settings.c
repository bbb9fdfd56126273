/*
 * eddy — unit tests for src/common/settings.c: defaults, eddy.yaml, EDDY_*
 * variables and flags, their precedence, every error message, and the
 * agreement with the runtime's job configuration (src/runtime/config.c).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

#include <sys/wait.h>

#include "common/settings.h"
#include "runtime/config.h"

typedef struct fixture {
    char dir[256];
    char path[320]; /* dir/eddy.yaml */
    eddy__settings_t *st;
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    tu_tmpdir(fx->dir, sizeof(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/eddy.yaml", fx->dir);
    fx->st = eddy__settings_new();
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    eddy__settings_destroy(fx->st);
    tu_rmtree(fx->dir);
    free(fx);
    return 0;
}

static void write_yaml(fixture_t *fx, const char *text)
{
    tu_write_file(fx->path, text, strlen(text));
}

/* Every key's value, origin and layer, to show that a failed load changed
 * nothing. */
static char *dump(const eddy__settings_t *st)
{
    size_t n, len;
    char *out = NULL;
    const eddy__setting_def_t *d = eddy__settings_defs(&n);
    FILE *f = open_memstream(&out, &len);
    for (size_t i = 0; i < n; i++) {
        const char *v = eddy__settings_get_str(st, d[i].sd_key);
        fprintf(f, "%s=%s (%s, %d)\n", d[i].sd_key, v != NULL ? v : "(unset)",
                eddy__settings_origin(st, d[i].sd_key),
                (int)eddy__settings_layer(st, d[i].sd_key));
    }
    fclose(f);
    return out;
}

static void load_yaml_ok(fixture_t *fx, const char *yaml)
{
    eddy_error_t err;
    eddy_error_clear(&err);
    write_yaml(fx, yaml);
    TU_ASSERT_OK(eddy__settings_load_file(fx->st, fx->path, &err), &err);
}

/* Checks the outcome of a failed load: code, exact message, and that the
 * settings did not change. */
static void check_failure(const char *what, int rc, const eddy_error_t *err,
                          int code, const char *want, char *before,
                          const eddy__settings_t *st)
{
    assert_true(strlen(want) < sizeof(err->msg));
    if (rc != code || err->code != code || strcmp(err->msg, want) != 0) {
        fail_msg("%s\nexpected %s \"%s\"\n     got %s \"%s\"", what,
                 eddy_err_name(code), want, eddy_err_name(rc), err->msg);
    }
    char *after = dump(st);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* Loads `yaml` and expects `code` with the message "<path><msg>". */
static void expect_yaml_error(fixture_t *fx, const char *yaml, int code,
                              const char *msg)
{
    char want[1024];
    eddy_error_t err;
    eddy_error_clear(&err);
    write_yaml(fx, yaml);
    snprintf(want, sizeof(want), "%s%s", fx->path, msg);
    char *before = dump(fx->st);
    int rc = eddy__settings_load_file(fx->st, fx->path, &err);
    check_failure(yaml, rc, &err, code, want, before, fx->st);
}

static void expect_env_error(fixture_t *fx, char **envp, const char *want)
{
    eddy_error_t err;
    eddy_error_clear(&err);
    char *before = dump(fx->st);
    int rc = eddy__settings_load_env(fx->st, envp, &err);
    check_failure(envp[0], rc, &err, EDDY_ERR_INVALID, want, before, fx->st);
}

static void expect_flag_error(fixture_t *fx, const char *key, const char *value,
                              const char *flag, const char *want)
{
    eddy_error_t err;
    eddy__setting_kv_t kv = {key, value, flag};
    eddy_error_clear(&err);
    char *before = dump(fx->st);
    int rc = eddy__settings_load_flags(fx->st, &kv, 1, &err);
    check_failure(key, rc, &err, EDDY_ERR_INVALID, want, before, fx->st);
}

static void set_flag(eddy__settings_t *st, const char *key, const char *value)
{
    eddy_error_t err;
    eddy__setting_kv_t kv = {key, value, NULL};
    eddy_error_clear(&err);
    TU_ASSERT_OK(eddy__settings_load_flags(st, &kv, 1, &err), &err);
}

/* ---- defaults and the table ---- */

static void test_defaults(void **state)
{
    fixture_t *fx = *state;
    eddy__settings_t *st = fx->st;
    eddy_error_t err;
    assert_int_equal(eddy__settings_get_int(st, "taskmanager.slots"), 4);
    assert_int_equal(eddy__settings_get_int(st, "parallelism.default"), 1);
    assert_int_equal(eddy__settings_get_int(st, "rest.port"), 8081);
    assert_int_equal(eddy__settings_get_int(st, "rpc.port"), 6123);
    assert_int_equal(eddy__settings_get_ms(st, "heartbeat.interval"), 1000);
    assert_int_equal(eddy__settings_get_ms(st, "heartbeat.timeout"), 5000);
    assert_int_equal(eddy__settings_get_ms(st, "scheduler.slot_wait"), 30000);
    assert_int_equal(eddy__settings_get_ms(st, "checkpoint.interval"), 0);
    assert_int_equal(eddy__settings_get_ms(st, "checkpoint.timeout"), 600000);
    assert_int_equal(eddy__settings_get_ms(st, "checkpoint.min_pause"), 0);
    assert_int_equal(eddy__settings_get_int(st, "checkpoint.retained"), 3);
    assert_string_equal(eddy__settings_get_str(st, "state.backend"), "heap");
    assert_string_equal(eddy__settings_get_str(st, "scheduler.placement"),
                        "spread");
    assert_string_equal(eddy__settings_get_str(st, "log.level"), "info");
    assert_string_equal(eddy__settings_get_str(st, "data.dir"), "/tmp/eddy");
    assert_string_equal(eddy__settings_get_str(st, "metadata.store"),
                        "/tmp/eddy/metadata.db");
    assert_string_equal(eddy__settings_get_str(st, "checkpoint.dir"),
                        "/tmp/eddy/checkpoints");
    assert_string_equal(eddy__settings_get_str(st, "state.rocksdb.dir"),
                        "/tmp/eddy/rocksdb");
    assert_null(eddy__settings_get_str(st, "log.file"));
    assert_null(eddy__settings_get_str(st, "restart.strategy"));
    assert_null(eddy__settings_get_str(st, "savepoint.path"));
    assert_null(eddy__settings_get_str(st, "job.id"));
    assert_false(eddy__settings_get_bool(st, "savepoint.allow_non_restored"));
    assert_string_equal(eddy__settings_origin(st, "rest.port"), "default");
    assert_int_equal(eddy__settings_layer(st, "rest.port"),
                     EDDY__LAYER_DEFAULT);
    eddy_error_clear(&err);
    TU_ASSERT_OK(eddy__settings_check(st, &err), &err);
}

static void test_table_is_consistent(void **state)
{
    (void)state;
    size_t n;
    const eddy__setting_def_t *d = eddy__settings_defs(&n);
    char env_i[300], env_j[300];
    assert_true(n >= 29);
    for (size_t i = 0; i < n; i++) {
        const char *k = d[i].sd_key;
        /* Keys are lower-case dotted words, so the YAML nesting and the
         * variable names are unambiguous. */
        assert_true(strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789._") ==
                    strlen(k));
        assert_non_null(strchr(k, '.'));
        assert_ptr_equal(eddy__settings_find(k), &d[i]);
        assert_non_null(d[i].sd_doc);
        assert_null(strchr(d[i].sd_doc, '|')); /* a Markdown table cell */
        if (d[i].sd_type != EDDY__SETTING_ENUM &&
            d[i].sd_type != EDDY__SETTING_PATH &&
            d[i].sd_type != EDDY__SETTING_ID &&
            d[i].sd_type != EDDY__SETTING_HOST) {
            /* The typed getters need a value. */
            assert_non_null(d[i].sd_default);
        }
        assert_int_equal(eddy__settings_env_name(k, env_i, sizeof(env_i)), 0);
        for (size_t j = 0; j < n; j++) {
            if (i == j) {
                continue;
            }
            size_t kl = strlen(k);
            /* No key is the section of another key. */
            assert_false(strncmp(d[j].sd_key, k, kl) == 0 &&
                         d[j].sd_key[kl] == '.');
            eddy__settings_env_name(d[j].sd_key, env_j, sizeof(env_j));
            assert_string_not_equal(env_i, env_j);
        }
    }
    assert_null(eddy__settings_find("no.such.key"));
    assert_null(eddy__settings_find("checkpoint"));
}

/* Every default is a valid value: loading it as a flag keeps it. */
static void test_defaults_are_valid(void **state)
{
    fixture_t *fx = *state;
    size_t n;
    const eddy__setting_def_t *d = eddy__settings_defs(&n);
    for (size_t i = 0; i < n; i++) {
        const char *v = eddy__settings_get_str(fx->st, d[i].sd_key);
        if (v == NULL) {
            continue;
        }
        char *copy = strdup(v);
        set_flag(fx->st, d[i].sd_key, copy);
        assert_string_equal(eddy__settings_get_str(fx->st, d[i].sd_key), copy);
        free(copy);
    }
}

/* The job keys' defaults are the runtime's defaults (src/runtime/config.c):
 * otherwise `eddy run` would report one value and use another. */
static void test_defaults_match_runtime_config(void **state)
{
    fixture_t *fx = *state;
    size_t n;
    const eddy__setting_def_t *d = eddy__settings_defs(&n);
    eddy__config_t a, b;
    eddy_error_t err;
    eddy__config_init(&a);
    eddy__config_init(&b);
    for (size_t i = 0; i < n; i++) {
        const char *v = eddy__settings_get_str(fx->st, d[i].sd_key);
        if (d[i].sd_job && v != NULL) {
            TU_ASSERT_OK(eddy__config_set(&b, d[i].sd_key, v, &err), &err);
        }
    }
    assert_int_equal(a.ck_interval_ms, b.ck_interval_ms);
    assert_int_equal(a.ck_timeout_ms, b.ck_timeout_ms);
    assert_int_equal(a.ck_min_pause_ms, b.ck_min_pause_ms);
    assert_int_equal(a.ck_max_concurrent, b.ck_max_concurrent);
    assert_int_equal(a.ck_retained, b.ck_retained);
    assert_int_equal(a.ck_exactly_once, b.ck_exactly_once);
    assert_string_equal(a.ck_dir, b.ck_dir);
    assert_string_equal(a.state_backend, b.state_backend);
    assert_string_equal(a.rocksdb_dir, b.rocksdb_dir);
    assert_int_equal(a.restart_strategy, b.restart_strategy);
    assert_int_equal(a.restart_attempts, b.restart_attempts);
    assert_int_equal(a.restart_delay_ms, b.restart_delay_ms);
    assert_int_equal(a.restart_max_delay_ms, b.restart_max_delay_ms);
    assert_true(a.restart_multiplier == b.restart_multiplier);
    assert_int_equal(a.allow_non_restored, b.allow_non_restored);
    assert_null(b.restore_path);
    /* restart.strategy has no default: setting one would mark it explicit
     * and stop the runtime from choosing exponential-delay itself. */
    assert_false(b.restart_explicit);
    eddy__config_free(&a);
    eddy__config_free(&b);
}

/* Whatever the settings accept for a job key, eddy__config_set accepts
 * too, so eddy__settings_apply_job cannot fail on a loaded value. */
static void test_job_values_accepted_by_runtime_config(void **state)
{
    (void)state;
    static const char *const samples[] = {
        "0",
        "1",
        "3",
        "16",
        "17",
        "1000",
        "1001",
        "-1",
        "10s",
        "1min",
        "5m",
        "1h",
        "0ms",
        "abc",
        "",
        " 5",
        "true",
        "false",
        "yes",
        "no",
        "on",
        "OFF",
        "heap",
        "rocksdb",
        "none",
        "fixed-delay",
        "exponential-delay",
        "exactly_once",
        "at_least_once",
        "/tmp/x",
        "file:///tmp/x",
        "s3://bucket/x",
        "2.5",
        "0.5",
        "1e3",
        "nan",
        "0123456789abcdef0123456789abcdef",
        "0123456789ABCDEF0123456789ABCDEF",
        "a\nb",
    };
    size_t n;
    const eddy__setting_def_t *d = eddy__settings_defs(&n);
    for (size_t i = 0; i < n; i++) {
        if (!d[i].sd_job) {
            continue;
        }
        int accepted = 0;
        for (size_t s = 0; s < EDDY_ARRAY_SIZE(samples); s++) {
            eddy__settings_t *st = eddy__settings_new();
            eddy__setting_kv_t kv = {d[i].sd_key, samples[s], NULL};
            eddy_error_t err;
            if (eddy__settings_load_flags(st, &kv, 1, &err) == 0) {
                eddy__config_t c;
                eddy__config_init(&c);
                const char *v = eddy__settings_get_str(st, d[i].sd_key);
                if (eddy__config_set(&c, d[i].sd_key, v, &err) != 0) {
                    fail_msg("%s='%s': settings accept it, the runtime "
                             "does not: %s",
                             d[i].sd_key, samples[s], err.msg);
                }
                eddy__config_free(&c);
                accepted++;
            }
            eddy__settings_destroy(st);
        }
        /* The samples really exercise every key. */
        if (accepted == 0 && strcmp(d[i].sd_key, "savepoint.path") != 0) {
            fail_msg("no sample value fits %s", d[i].sd_key);
        }
    }
}

/* ---- layer 2: YAML ---- */

static void test_yaml_nested(void **state)
{
    fixture_t *fx = *state;
    char want[400];
    load_yaml_ok(fx, "# a cluster\n"
                     "taskmanager:\n"
                     "  slots: 8\n"
                     "checkpoint:\n"
                     "  interval: 10s\n"
                     "  timeout: 2m\n"
                     "state:\n"
                     "  backend: rocksdb\n"
                     "  rocksdb:\n"
                     "    dir: /data/rocks\n"
                     "rest:\n"
                     "  port: 9081   # the UI\n");
    eddy__settings_t *st = fx->st;
    assert_int_equal(eddy__settings_get_int(st, "taskmanager.slots"), 8);
    assert_int_equal(eddy__settings_get_ms(st, "checkpoint.interval"), 10000);
    assert_int_equal(eddy__settings_get_ms(st, "checkpoint.timeout"), 120000);
    assert_string_equal(eddy__settings_get_str(st, "state.backend"), "rocksdb");
    assert_string_equal(eddy__settings_get_str(st, "state.rocksdb.dir"),
                        "/data/rocks");
    assert_int_equal(eddy__settings_get_int(st, "rest.port"), 9081);
    /* Origins point at the value. */
    snprintf(want, sizeof(want), "%s:5:13", fx->path);
    assert_string_equal(eddy__settings_origin(st, "checkpoint.interval"), want);
    snprintf(want, sizeof(want), "%s:10:10", fx->path);
    assert_string_equal(eddy__settings_origin(st, "state.rocksdb.dir"), want);
    assert_int_equal(eddy__settings_layer(st, "rest.port"), EDDY__LAYER_FILE);
    /* Keys the file does not mention keep their defaults. */
    assert_int_equal(eddy__settings_get_int(st, "rpc.port"), 6123);
    assert_int_equal(eddy__settings_layer(st, "rpc.port"), EDDY__LAYER_DEFAULT);
}

static void test_yaml_dotted_and_mixed(void **state)
{
    fixture_t *fx = *state;
    char want[400];
    load_yaml_ok(fx, "checkpoint.interval: 5s\n"
                     "\"rest.port\": 9000\n"
                     "checkpoint:\n"
                     "  timeout: 1m\n"
                     "state:\n"
                     "  rocksdb.dir: /r\n"
                     "heartbeat: {interval: 2s, timeout: 10s}\n"
                     "savepoint.allow_non_restored: 'yes'\n");
    eddy__settings_t *st = fx->st;
    assert_int_equal(eddy__settings_get_ms(st, "checkpoint.interval"), 5000);
    assert_int_equal(eddy__settings_get_ms(st, "checkpoint.timeout"), 60000);
    assert_int_equal(eddy__settings_get_int(st, "rest.port"), 9000);
    assert_string_equal(eddy__settings_get_str(st, "state.rocksdb.dir"), "/r");
    assert_int_equal(eddy__settings_get_ms(st, "heartbeat.interval"), 2000);
    assert_int_equal(eddy__settings_get_ms(st, "heartbeat.timeout"), 10000);
    /* Bools are stored in one spelling. */
    assert_true(eddy__settings_get_bool(st, "savepoint.allow_non_restored"));
    assert_string_equal(
        eddy__settings_get_str(st, "savepoint.allow_non_restored"), "true");
    snprintf(want, sizeof(want), "%s:1:22", fx->path);
    assert_string_equal(eddy__settings_origin(st, "checkpoint.interval"), want);
    snprintf(want, sizeof(want), "%s:7:36", fx->path);
    assert_string_equal(eddy__settings_origin(st, "heartbeat.timeout"), want);
}

static void test_yaml_empty_files(void **state)
{
    fixture_t *fx = *state;
    static const char *const empty[] = {
        "",
        "# nothing yet\n\n",
        "---\n",
        "~\n",
        "{}\n",
        "checkpoint:\n#  interval: 10s\n",
        "checkpoint: {}\nstate:\n  rocksdb:\n",
    };
    char *before = dump(fx->st);
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(empty); i++) {
        load_yaml_ok(fx, empty[i]);
        char *after = dump(fx->st);
        assert_string_equal(before, after);
        free(after);
    }
    free(before);
}

static void test_yaml_bom_and_crlf(void **state)
{
    fixture_t *fx = *state;
    load_yaml_ok(fx, "\xef\xbb\xbfrest:\r\n  port: 7000\r\n");
    assert_int_equal(eddy__settings_get_int(fx->st, "rest.port"), 7000);
}

/* ---- layer 3: environment ---- */

static void test_env_name_mapping(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(
        eddy__settings_env_name("checkpoint.interval", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "EDDY_CHECKPOINT_INTERVAL");
    eddy__settings_env_name("checkpoint.min_pause", buf, sizeof(buf));
    assert_string_equal(buf, "EDDY_CHECKPOINT_MIN_PAUSE");
    eddy__settings_env_name("state.rocksdb.dir", buf, sizeof(buf));
    assert_string_equal(buf, "EDDY_STATE_ROCKSDB_DIR");
    eddy__settings_env_name("some-key.with-dash2", buf, sizeof(buf));
    assert_string_equal(buf, "EDDY_SOME_KEY_WITH_DASH2");
    /* "EDDY_" + 7 + NUL needs 13 bytes. */
    assert_int_equal(eddy__settings_env_name("job.id1", buf, 13), 0);
    assert_string_equal(buf, "EDDY_JOB_ID1");
    assert_int_equal(eddy__settings_env_name("job.id1", buf, 12),
                     EDDY_ERR_INVALID);
}

static void test_env_layer(void **state)
{
    fixture_t *fx = *state;
    eddy_error_t err;
    char *envp[] = {
        "PATH=/usr/bin",
        "EDDY_REST_PORT_EXTRA=1", /* a longer name is another variable */
        "EDDY_REST_PORT=9000",
        "EDDY_REST_PORT=9999", /* like getenv, the first one counts */
        "eddy_rpc_port=1",     /* names are case-sensitive */
        "EDDY_CHECKPOINT_INTERVAL=7s",
        "EDDY_CHECKPOINT_MIN_PAUSE=250ms",
        "EDDY_STATE_ROCKSDB_DIR=/fast/rocks",
        "EDDY_SAVEPOINT_ALLOW_NON_RESTORED=On",
        /* Other parts of eddy use the prefix too; these are not keys. */
        "EDDY_FAULT=after_snapshot",
        "EDDY_CHECKPOINT_INTERVALL=1s",
        NULL,
    };
    eddy_error_clear(&err);
    TU_ASSERT_OK(eddy__settings_load_env(fx->st, envp, &err), &err);
    assert_int_equal(eddy__settings_get_int(fx->st, "rest.port"), 9000);
    assert_int_equal(eddy__settings_get_int(fx->st, "rpc.port"), 6123);
    assert_int_equal(eddy__settings_get_ms(fx->st, "checkpoint.interval"),
                     7000);
    assert_int_equal(eddy__settings_get_ms(fx->st, "checkpoint.min_pause"),
                     250);
    assert_string_equal(eddy__settings_get_str(fx->st, "state.rocksdb.dir"),
                        "/fast/rocks");
    assert_true(
        eddy__settings_get_bool(fx->st, "savepoint.allow_non_restored"));
    assert_string_equal(eddy__settings_origin(fx->st, "rest.port"),
                        "EDDY_REST_PORT");
    assert_int_equal(eddy__settings_layer(fx->st, "rest.port"),
                     EDDY__LAYER_ENV);
}

static void test_env_defaults_to_process_environment(void **state)
{
    fixture_t *fx = *state;
    eddy_error_t err;
    assert_int_equal(setenv("EDDY_TASKMANAGER_SLOTS", "12", 1), 0);
    int rc = eddy__settings_load_env(fx->st, NULL, &err);
    unsetenv("EDDY_TASKMANAGER_SLOTS");
    TU_ASSERT_OK(rc, &err);
    assert_int_equal(eddy__settings_get_int(fx->st, "taskmanager.slots"), 12);
    assert_string_equal(eddy__settings_origin(fx->st, "taskmanager.slots"),
                        "EDDY_TASKMANAGER_SLOTS");
}

static void test_env_cleared(void **state)
{
    fixture_t *fx = *state;
    eddy_error_t err;
    char **saved = environ;
    environ = NULL; /* what clearenv() leaves */
    int rc = eddy__settings_load_env(fx->st, NULL, &err);
    environ = saved;
    TU_ASSERT_OK(rc, &err);
    assert_int_equal(eddy__settings_get_int(fx->st, "rest.port"), 8081);
}

/* ---- layer 4: flags ---- */

static void test_flags_layer(void **state)
{
    fixture_t *fx = *state;
    eddy_error_t err;
    const eddy__setting_kv_t flags[] = {
        {"rest.port", "9100", "--rest-port"},
        {"checkpoint.retained", "5", NULL},
        {"data.dir", "/srv/eddy", "--data-dir"},
    };
    TU_ASSERT_OK(eddy__settings_load_flags(fx->st, flags, 3, &err), &err);
    assert_int_equal(eddy__settings_get_int(fx->st, "rest.port"), 9100);
    assert_int_equal(eddy__settings_get_int(fx->st, "checkpoint.retained"), 5);
    assert_string_equal(eddy__settings_origin(fx->st, "rest.port"),
                        "--rest-port");
    assert_string_equal(eddy__settings_origin(fx->st, "checkpoint.retained"),
                        "-D checkpoint.retained");
    assert_int_equal(eddy__settings_layer(fx->st, "rest.port"),
                     EDDY__LAYER_FLAG);
    /* An empty list is fine. */
    TU_ASSERT_OK(eddy__settings_load_flags(fx->st, NULL, 0, &err), &err);
}

/* ---- precedence ---- */

static void test_precedence(void **state)
{
    fixture_t *fx = *state;
    eddy_error_t err;
    char *envp[] = {"EDDY_CHECKPOINT_INTERVAL=2s", "EDDY_REST_PORT=9002", NULL};
    const eddy__setting_kv_t flags[] = {
        {"checkpoint.interval", "3s", "--checkpoint-interval"},
    };
    write_yaml(fx, "checkpoint.interval: 1s\nrest.port: 9001\n"
                   "rpc.port: 7001\n");

    /* In order: default < file < env < flag. */
    eddy__settings_t *st = fx->st;
    TU_ASSERT_OK(eddy__settings_load_file(st, fx->path, &err), &err);
    assert_int_equal(eddy__settings_get_ms(st, "checkpoint.interval"), 1000);
    TU_ASSERT_OK(eddy__settings_load_env(st, envp, &err), &err);
    assert_int_equal(eddy__settings_get_ms(st, "checkpoint.interval"), 2000);
    TU_ASSERT_OK(eddy__settings_load_flags(st, flags, 1, &err), &err);
    assert_int_equal(eddy__settings_get_ms(st, "checkpoint.interval"), 3000);
    assert_int_equal(eddy__settings_get_int(st, "rest.port"), 9002);
    assert_int_equal(eddy__settings_get_int(st, "rpc.port"), 7001);
    assert_int_equal(eddy__settings_get_int(st, "taskmanager.slots"), 4);
    char *forward = dump(st);

    /* In reverse: the same result, a lower layer never overrides. */
    eddy__settings_t *rev = eddy__settings_new();
    TU_ASSERT_OK(eddy__settings_load_flags(rev, flags, 1, &err), &err);
    TU_ASSERT_OK(eddy__settings_load_env(rev, envp, &err), &err);
    TU_ASSERT_OK(eddy__settings_load_file(rev, fx->path, &err), &err);
    char *backward = dump(rev);
    assert_string_equal(forward, backward);
    free(forward);
    free(backward);

    /* Within a layer the later value wins. */
    const eddy__setting_kv_t twice[] = {
        {"checkpoint.interval", "4s", NULL},
        {"checkpoint.interval", "5s", NULL},
    };
    TU_ASSERT_OK(eddy__settings_load_flags(rev, twice, 2, &err), &err);
    assert_int_equal(eddy__settings_get_ms(rev, "checkpoint.interval"), 5000);
    write_yaml(fx, "rpc.port: 7002\n");
    TU_ASSERT_OK(eddy__settings_load_file(rev, fx->path, &err), &err);
    assert_int_equal(eddy__settings_get_int(rev, "rpc.port"), 7002);
    eddy__settings_destroy(rev);
}

static void test_defaults_under_data_dir(void **state)
{
    fixture_t *fx = *state;
    char *envp[] = {"EDDY_CHECKPOINT_DIR=file:///mnt/ck", NULL};
    eddy_error_t err;
    load_yaml_ok(fx, "data:\n  dir: /var/lib/eddy//\n");
    assert_string_equal(eddy__settings_get_str(fx->st, "metadata.store"),
                        "/var/lib/eddy/metadata.db");
    assert_string_equal(eddy__settings_get_str(fx->st, "checkpoint.dir"),
                        "/var/lib/eddy/checkpoints");
    assert_string_equal(eddy__settings_get_str(fx->st, "state.rocksdb.dir"),
                        "/var/lib/eddy/rocksdb");
    assert_int_equal(eddy__settings_layer(fx->st, "metadata.store"),
                     EDDY__LAYER_DEFAULT);
    /* A key set itself no longer follows data.dir. */
    TU_ASSERT_OK(eddy__settings_load_env(fx->st, envp, &err), &err);
    set_flag(fx->st, "data.dir", "/");
    assert_string_equal(eddy__settings_get_str(fx->st, "checkpoint.dir"),
                        "file:///mnt/ck");
    assert_string_equal(eddy__settings_get_str(fx->st, "metadata.store"),
                        "/metadata.db");
}

/* ---- the job configuration ---- */

static void test_apply_job(void **state)
{
    fixture_t *fx = *state;
    eddy_error_t err;
    eddy__config_t c;
    char *envp[] = {"EDDY_STATE_BACKEND=rocksdb", NULL};
    const eddy__setting_kv_t flags[] = {
        {"restart.strategy", "fixed-delay", "--restart-strategy"},
        {"savepoint.allow_non_restored", "YES", NULL},
    };
    eddy__config_init(&c);
    /* What the job itself set (eddy_env_enable_checkpointing and co). */
    c.ck_interval_ms = 5000;
    c.ck_retained = 7;
    load_yaml_ok(fx, "checkpoint:\n  interval: 10s\nrest:\n  port: 9000\n");
    TU_ASSERT_OK(eddy__settings_load_env(fx->st, envp, &err), &err);
    TU_ASSERT_OK(eddy__settings_load_flags(fx->st, flags, 2, &err), &err);
    /* rest.port is not a job key: passing it would fail. */
    TU_ASSERT_OK(eddy__settings_apply_job(fx->st, &c, &err), &err);
    assert_int_equal(c.ck_interval_ms, 10000);
    assert_int_equal(c.ck_retained, 7); /* the default did not override */
    assert_string_equal(c.state_backend, "rocksdb");
    assert_int_equal(c.restart_strategy, EDDY__RESTART_FIXED);
    assert_true(c.restart_explicit);
    assert_true(c.allow_non_restored);
    assert_string_equal(c.ck_dir, "/tmp/eddy/checkpoints");
    assert_null(c.restore_path);
    eddy__config_free(&c);

    /* Keys under data.dir go along once data.dir is configured. */
    eddy__settings_t *st = eddy__settings_new();
    set_flag(st, "data.dir", "/srv/eddy");
    eddy__config_init(&c);
    TU_ASSERT_OK(eddy__settings_apply_job(st, &c, &err), &err);
    assert_string_equal(c.ck_dir, "/srv/eddy/checkpoints");
    assert_string_equal(c.rocksdb_dir, "/srv/eddy/rocksdb");
    assert_false(c.restart_explicit);
    assert_int_equal(c.ck_interval_ms, 0);
    eddy__config_free(&c);
    eddy__settings_destroy(st);
}

/* ---- errors: values ---- */

static void test_bad_values_in_yaml(void **state)
{
    fixture_t *fx = *state;
    expect_yaml_error(fx, "checkpoint:\n  interval: 10x\n", EDDY_ERR_INVALID,
                      ":2:13: bad value '10x' for checkpoint.interval: "
                      "expected a duration such as 500ms, 10s, 2m or 1h");
    expect_yaml_error(fx, "checkpoint.timeout: 0\n", EDDY_ERR_INVALID,
                      ":1:21: bad value '0' for checkpoint.timeout: "
                      "expected a duration greater than 0, such as 500ms, "
                      "10s, 2m or 1h");
    expect_yaml_error(fx, "taskmanager:\n  slots: 0\n", EDDY_ERR_INVALID,
                      ":2:10: bad value '0' for taskmanager.slots: expected "
                      "an integer from 1 to 1024");
    expect_yaml_error(fx, "parallelism.default: 32769\n", EDDY_ERR_INVALID,
                      ":1:22: bad value '32769' for parallelism.default: "
                      "expected an integer from 1 to 32768");
    expect_yaml_error(fx, "rest.port: 65536\n", EDDY_ERR_INVALID,
                      ":1:12: bad value '65536' for rest.port: expected a "
                      "port number from 1 to 65535");
    expect_yaml_error(fx, "scheduler:\n  placement: binpacking\n",
                      EDDY_ERR_INVALID,
                      ":2:14: bad value 'binpacking' for "
                      "scheduler.placement: expected spread or binpack");
    expect_yaml_error(fx, "restart.strategy: fixed\n", EDDY_ERR_INVALID,
                      ":1:19: bad value 'fixed' for restart.strategy: "
                      "expected none, fixed-delay or exponential-delay");
    expect_yaml_error(fx, "taskmanager:\n  host: tm-1:9000\n", EDDY_ERR_INVALID,
                      ":2:9: bad value 'tm-1:9000' for taskmanager.host: "
                      "expected a host name or IP address");
    expect_yaml_error(fx, "jobmanager.bind_host: \"http://a\"\n",
                      EDDY_ERR_INVALID,
                      ":1:23: bad value 'http://a' for jobmanager.bind_host: "
                      "expected a host name or IP address");
    expect_yaml_error(fx, "taskmanager.bind_host: \"a b\"\n", EDDY_ERR_INVALID,
                      ":1:24: bad value 'a b' for taskmanager.bind_host: "
                      "expected a host name or IP address");
    expect_yaml_error(fx, "checkpoint.dir: \"\"\n", EDDY_ERR_INVALID,
                      ":1:17: bad value '' for checkpoint.dir: expected a "
                      "directory or file:// URI");
    /* A quoted "~" is the string, not null. */
    expect_yaml_error(fx, "rpc.port: \"~\"\n", EDDY_ERR_INVALID,
                      ":1:11: bad value '~' for rpc.port: expected a port "
                      "number from 1 to 65535");
}

static void test_bad_values_in_env(void **state)
{
    fixture_t *fx = *state;
    char *port[] = {"EDDY_REST_PORT=80a", NULL};
    char *empty[] = {"EDDY_RPC_PORT=", NULL};
    char *flag[] = {"EDDY_SAVEPOINT_ALLOW_NON_RESTORED=maybe", NULL};
    char *dir[] = {"EDDY_CHECKPOINT_DIR=s3://bucket/ck", NULL};
    char *level[] = {"EDDY_LOG_LEVEL=INFO", NULL};
    expect_env_error(fx, port,
                     "EDDY_REST_PORT: bad value '80a' for rest.port: "
                     "expected a port number from 1 to 65535");
    expect_env_error(fx, empty,
                     "EDDY_RPC_PORT: bad value '' for rpc.port: expected a "
                     "port number from 1 to 65535");
    expect_env_error(fx, flag,
                     "EDDY_SAVEPOINT_ALLOW_NON_RESTORED: bad value 'maybe' "
                     "for savepoint.allow_non_restored: expected true or "
                     "false");
    expect_env_error(fx, dir,
                     "EDDY_CHECKPOINT_DIR: bad value 's3://bucket/ck' for "
                     "checkpoint.dir: expected a directory or file:// URI");
    expect_env_error(fx, level,
                     "EDDY_LOG_LEVEL: bad value 'INFO' for log.level: "
                     "expected error, warn, info or debug");
}

static void test_bad_values_in_flags(void **state)
{
    fixture_t *fx = *state;
    char longv[101];
    memset(longv, 'x', 100);
    longv[100] = '\0';
    expect_flag_error(fx, "job.id", "ABC", "--job-id",
                      "--job-id: bad value 'ABC' for job.id: expected 32 "
                      "lowercase hexadecimal digits");
    expect_flag_error(fx, "restart.multiplier", "0.5", NULL,
                      "-D restart.multiplier: bad value '0.5' for "
                      "restart.multiplier: expected a number from 1 to 1000");
    expect_flag_error(fx, "restart.multiplier", "nan", NULL,
                      "-D restart.multiplier: bad value 'nan' for "
                      "restart.multiplier: expected a number from 1 to 1000");
    expect_flag_error(fx, "metadata.store", "mysql://db/x", NULL,
                      "-D metadata.store: bad value 'mysql://db/x' for "
                      "metadata.store: expected a SQLite file path or a "
                      "postgresql:// URI");
    expect_flag_error(fx, "data.dir", "http://x/y", "--data-dir",
                      "--data-dir: bad value 'http://x/y' for data.dir: "
                      "expected a file system path");
    expect_flag_error(fx, "heartbeat.interval", "0", NULL,
                      "-D heartbeat.interval: bad value '0' for "
                      "heartbeat.interval: expected a duration greater than "
                      "0, such as 500ms, 10s, 2m or 1h");
    /* Control characters are escaped and long values cut. */
    expect_flag_error(fx, "log.file", "a\nb\x01", NULL,
                      "-D log.file: bad value 'a\\nb\\x01' for log.file: "
                      "expected a file system path");
    expect_flag_error(fx, "restart.attempts", longv, NULL,
                      "-D restart.attempts: bad value "
                      "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                      "xxxxxx...' for restart.attempts: expected an integer "
                      "from 0 to 1000000");
    expect_flag_error(fx, NULL, "1", "--weird",
                      "--weird: missing key or value");

    /* The forms each type does take. */
    set_flag(fx->st, "metadata.store", "postgresql://eddy@db/eddy");
    set_flag(fx->st, "metadata.store", "postgres://db/eddy");
    set_flag(fx->st, "metadata.store", "/var/eddy/meta.db");
    set_flag(fx->st, "checkpoint.dir", "file:///mnt/ck");
    set_flag(fx->st, "restart.multiplier", "1.5");
    set_flag(fx->st, "restart.delay", "1min");
    set_flag(fx->st, "job.id", "0123456789abcdef0123456789abcdef");
    set_flag(fx->st, "rest.port", "65535");
    set_flag(fx->st, "savepoint.allow_non_restored", "0");
    assert_int_equal(eddy__settings_get_ms(fx->st, "restart.delay"), 60000);
    assert_int_equal(eddy__settings_get_int(fx->st, "rest.port"), 65535);
    assert_false(
        eddy__settings_get_bool(fx->st, "savepoint.allow_non_restored"));
}

/* ---- errors: keys ---- */

static void test_unknown_keys(void **state)
{
    fixture_t *fx = *state;
    char *envp[] = {"EDDY_CHECKPOINT_INTERVALL=5s", NULL};
    eddy_error_t err;
    expect_yaml_error(fx, "chekpoint:\n  interval: 1s\n", EDDY_ERR_INVALID,
                      ":2:3: unknown key 'chekpoint.interval' (did you mean "
                      "'checkpoint.interval'?)");
    expect_yaml_error(fx, "checkpoint:\n  intervall: 1s\n", EDDY_ERR_INVALID,
                      ":2:3: unknown key 'checkpoint.intervall' (did you "
                      "mean 'checkpoint.interval'?)");
    expect_yaml_error(fx, "rset.port: 1\n", EDDY_ERR_INVALID,
                      ":1:1: unknown key 'rset.port' (did you mean "
                      "'rest.port'?)");
    /* Two swaps are two edits; plain Levenshtein would count four. */
    expect_yaml_error(fx, "chekcpoint.itnerval: 1s\n", EDDY_ERR_INVALID,
                      ":1:1: unknown key 'chekcpoint.itnerval' (did you "
                      "mean 'checkpoint.interval'?)");
    expect_yaml_error(fx, "interval: 1s\n", EDDY_ERR_INVALID,
                      ":1:1: unknown key 'interval' (did you mean "
                      "'heartbeat.interval' or 'checkpoint.interval'?)");
    expect_yaml_error(fx, "checkpoint:\n  slots: 4\n", EDDY_ERR_INVALID,
                      ":2:3: unknown key 'checkpoint.slots' (did you mean "
                      "'taskmanager.slots'?)");
    expect_yaml_error(fx, "dir: /x\n", EDDY_ERR_INVALID,
                      ":1:1: unknown key 'dir' (did you mean 'data.dir', "
                      "'checkpoint.dir' or 'state.rocksdb.dir'?)");
    expect_yaml_error(fx, "foo:\n  bar: 1\n", EDDY_ERR_INVALID,
                      ":2:3: unknown key 'foo.bar'");
    expect_yaml_error(fx, "rest.port: 1\nzzz:\n", EDDY_ERR_INVALID,
                      ":2:1: unknown key 'zzz'");
    expect_yaml_error(fx, "zzz: {}\n", EDDY_ERR_INVALID,
                      ":1:1: unknown key 'zzz'");
    expect_flag_error(fx, "chekpoint.interval", "1s", NULL,
                      "-D chekpoint.interval: unknown key "
                      "'chekpoint.interval' (did you mean "
                      "'checkpoint.interval'?)");
    expect_flag_error(fx, "rest.prot", "1", "--bogus",
                      "--bogus: unknown key 'rest.prot' (did you mean "
                      "'rest.port'?)");
    /* Variables that name no key are not errors (see load_env). */
    char *before = dump(fx->st);
    TU_ASSERT_OK(eddy__settings_load_env(fx->st, envp, &err), &err);
    char *after = dump(fx->st);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_shape_errors(void **state)
{
    fixture_t *fx = *state;
    expect_yaml_error(fx, "checkpoint: 10s\n", EDDY_ERR_INVALID,
                      ":1:1: 'checkpoint' is a section, not a key: expected "
                      "a mapping of its keys (such as 'checkpoint.interval')");
    expect_yaml_error(fx, "state:\n  rocksdb: [a, b]\n", EDDY_ERR_INVALID,
                      ":2:3: 'state.rocksdb' is a section, not a key: "
                      "expected a mapping of its keys (such as "
                      "'state.rocksdb.dir')");
    expect_yaml_error(fx, "checkpoint:\n  interval: [1s, 2s]\n",
                      EDDY_ERR_INVALID,
                      ":2:13: checkpoint.interval takes a single value, not "
                      "a list: expected a duration such as 500ms, 10s, 2m or "
                      "1h");
    expect_yaml_error(fx, "rest:\n  port:\n    value: 1\n", EDDY_ERR_INVALID,
                      ":3:5: rest.port takes a single value, not a mapping: "
                      "expected a port number from 1 to 65535");
    expect_yaml_error(fx, "checkpoint:\n  interval:\n  timeout: 1m\n",
                      EDDY_ERR_INVALID,
                      ":2:3: no value for checkpoint.interval: expected a "
                      "duration such as 500ms, 10s, 2m or 1h");
    expect_yaml_error(fx, "rest.port: ~\n", EDDY_ERR_INVALID,
                      ":1:1: no value for rest.port: expected a port number "
                      "from 1 to 65535");
    expect_yaml_error(fx, "rest.port: null\n", EDDY_ERR_INVALID,
                      ":1:1: no value for rest.port: expected a port number "
                      "from 1 to 65535");
}

/* ---- errors: malformed YAML ---- */

static void test_tabs_and_indentation(void **state)
{
    fixture_t *fx = *state;
    expect_yaml_error(fx, "checkpoint:\n\tinterval: 1s\n", EDDY_ERR_FORMAT,
                      ":2:1: tab character in indentation: indent with "
                      "spaces");
    expect_yaml_error(fx, "checkpoint:\n  interval: 1s\n  \ttimeout: 1m\n",
                      EDDY_ERR_FORMAT,
                      ":3:3: tab character in indentation: indent with "
                      "spaces");
    /* libyaml first hands out "10s timeout" as the value; the error is the
     * indentation, not that value. */
    expect_yaml_error(fx, "checkpoint:\n  interval: 10s\n   timeout: 5s\n",
                      EDDY_ERR_FORMAT,
                      ":3:11: invalid YAML: mapping values are not allowed in "
                      "this context (check the indentation; quote values "
                      "that contain ': ')");
    expect_yaml_error(fx, "checkpoint:\n  interval: 10s\n timeout: 5s\n",
                      EDDY_ERR_FORMAT,
                      ":3:2: invalid YAML: did not find expected key (check "
                      "the indentation)");
    expect_yaml_error(fx, "rest.port: 1\nrpc.port\n", EDDY_ERR_FORMAT,
                      ":2:1: invalid YAML: could not find expected ':' (each "
                      "line must be 'key: value')");
    expect_yaml_error(fx, "log.file: \"/tmp/x\n", EDDY_ERR_FORMAT,
                      ":2:1: invalid YAML: found unexpected end of stream");
    /* A syntax error wins over an earlier bad value. */
    expect_yaml_error(fx, "rest.port: x\nrpc.port: [1\n", EDDY_ERR_FORMAT,
                      ":3:1: invalid YAML: did not find expected ',' or ']'");
}

static void test_duplicate_keys(void **state)
{
    fixture_t *fx = *state;
    expect_yaml_error(fx, "checkpoint:\n  interval: 1s\n  interval: 2s\n",
                      EDDY_ERR_FORMAT,
                      ":3:3: duplicate key 'checkpoint.interval' (first set "
                      "at line 2, column 3)");
    expect_yaml_error(fx,
                      "checkpoint.interval: 1s\ncheckpoint:\n"
                      "  interval: 2s\n",
                      EDDY_ERR_FORMAT,
                      ":3:3: duplicate key 'checkpoint.interval' (first set "
                      "at line 1, column 1)");
    expect_yaml_error(fx,
                      "checkpoint:\n  interval: 1s\nrest.port: 1\n"
                      "checkpoint:\n  timeout: 1m\n",
                      EDDY_ERR_FORMAT,
                      ":4:1: duplicate key 'checkpoint' (first set at line 1, "
                      "column 1)");
    /* Structure before values: the duplicate is reported although line 1
     * already has a bad value; of two duplicates, the first. */
    expect_yaml_error(fx,
                      "rest.port: x\nrpc.port: 1\nrpc.port: 2\n"
                      "rest.port: 3\n",
                      EDDY_ERR_FORMAT,
                      ":3:1: duplicate key 'rpc.port' (first set at line 2, "
                      "column 1)");
}

static void test_yaml_features_refused(void **state)
{
    fixture_t *fx = *state;
    expect_yaml_error(fx, "rest.port: &p 8081\nrpc.port: *p\n", EDDY_ERR_FORMAT,
                      ":1:12: anchors and aliases (&name, *name) are not "
                      "supported");
    expect_yaml_error(fx, "rest.port: 1\nrpc.port: *p\n", EDDY_ERR_FORMAT,
                      ":2:11: anchors and aliases (&name, *name) are not "
                      "supported");
    /* "Billion laughs": refused at the first anchor, before any expansion. */
    expect_yaml_error(fx,
                      "a: &a [lol, lol, lol, lol, lol, lol, lol, lol]\n"
                      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                      "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                      "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
                      EDDY_ERR_FORMAT,
                      ":1:4: anchors and aliases (&name, *name) are not "
                      "supported");
    expect_yaml_error(fx, "just a string\n", EDDY_ERR_FORMAT,
                      ":1:1: the top level must be a mapping of keys to "
                      "values ('key: value' lines)");
    expect_yaml_error(fx, "- rest.port: 1\n", EDDY_ERR_FORMAT,
                      ":1:1: the top level must be a mapping of keys to "
                      "values ('key: value' lines)");
    expect_yaml_error(fx, "rest.port: 1\n---\nrpc.port: 2\n", EDDY_ERR_FORMAT,
                      ":2:1: a second YAML document ('---'): put every key "
                      "in one");
    expect_yaml_error(fx, "? [a, b]\n: 1\n", EDDY_ERR_FORMAT,
                      ":1:3: a key must be a string, not a list or mapping");
    expect_yaml_error(fx, "log.file: \"/tmp/a\\0b\"\n", EDDY_ERR_FORMAT,
                      ":1:11: a NUL character (\\0) is not allowed");
    expect_yaml_error(fx, "a: {b: {c: {d: {e: {f: {g: {h: {i: 1}}}}}}}}\n",
                      EDDY_ERR_FORMAT, ":1:32: nested more than 8 levels deep");
    expect_yaml_error(fx, "a: [[[[[[[[[1]]]]]]]]]\n", EDDY_ERR_FORMAT,
                      ":1:11: nested more than 8 levels deep");
}

static void test_bad_bytes(void **state)
{
    fixture_t *fx = *state;
    expect_yaml_error(fx, "rest.port: 1\nlog.file: /tmp/\xff\n",
                      EDDY_ERR_FORMAT,
                      ":2:16: invalid YAML: invalid leading UTF-8 octet (the "
                      "file must be UTF-8 text)");
    expect_yaml_error(fx, "rest.port: 1\n\x01\n", EDDY_ERR_FORMAT,
                      ":2:1: invalid YAML: control characters are not "
                      "allowed");
}

static void test_limits(void **state)
{
    fixture_t *fx = *state;
    char msg[128];
    /* A key longer than any key there is. */
    char key[300];
    memset(key, 'k', 299);
    key[299] = '\0';
    char *yaml = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&yaml, &len);
    fprintf(f, "%s: 1\n", key);
    fclose(f);
    expect_yaml_error(fx, yaml, EDDY_ERR_FORMAT,
                      ":1:1: key longer than 255 characters");
    free(yaml);

    /* Too many entries. */
    f = open_memstream(&yaml, &len);
    for (int i = 0; i < 4097; i++) {
        fprintf(f, "k%d: 1\n", i);
    }
    fclose(f);
    expect_yaml_error(fx, yaml, EDDY_ERR_FORMAT,
                      ":4097:1: more than 4096 keys");
    free(yaml);

    /* Exactly 1 MiB loads; one byte more does not. */
    size_t max = EDDY__SETTINGS_FILE_MAX;
    char *big = malloc(max + 2);
    const char *tail = "rest.port: 9000\n";
    memset(big, '#', max);
    for (size_t i = 99; i < max; i += 100) {
        big[i] = '\n';
    }
    memcpy(big + max - strlen(tail), tail, strlen(tail));
    big[max - strlen(tail) - 1] = '\n';
    big[max] = '\0';
    load_yaml_ok(fx, big);
    assert_int_equal(eddy__settings_get_int(fx->st, "rest.port"), 9000);
    big[max] = '\n';
    big[max + 1] = '\0';
    snprintf(msg, sizeof(msg),
             ": too large: a configuration file holds at most %d bytes "
             "(1 MiB)",
             EDDY__SETTINGS_FILE_MAX);
    expect_yaml_error(fx, big, EDDY_ERR_FORMAT, msg);
    free(big);
}

static void test_unreadable_files(void **state)
{
    fixture_t *fx = *state;
    char path[400], want[600];
    eddy_error_t err;
    snprintf(path, sizeof(path), "%s/missing.yaml", fx->dir);
    snprintf(want, sizeof(want),
             "%s: cannot read the configuration file: No such file or "
             "directory",
             path);
    char *before = dump(fx->st);
    int rc = eddy__settings_load_file(fx->st, path, &err);
    assert_int_equal(err.sys_errno, ENOENT);
    check_failure("missing", rc, &err, EDDY_ERR_NOT_FOUND, want, before,
                  fx->st);

    snprintf(want, sizeof(want),
             "%s: cannot read the configuration file: Is a directory", fx->dir);
    before = dump(fx->st);
    rc = eddy__settings_load_file(fx->st, fx->dir, &err);
    assert_int_equal(err.sys_errno, EISDIR);
    check_failure("directory", rc, &err, EDDY_ERR_IO, want, before, fx->st);
}

/* ---- all-or-nothing loads ---- */

static void test_failed_loads_change_nothing(void **state)
{
    fixture_t *fx = *state;
    char *envp[] = {"EDDY_REST_PORT=9000", "EDDY_RPC_PORT=x", NULL};
    const eddy__setting_kv_t flags[] = {
        {"rest.port", "9000", NULL},
        {"bogus.key", "1", NULL},
    };
    eddy_error_t err;
    write_yaml(fx, "rest.port: 9000\ncheckpoint.interval: soon\n");
    assert_int_equal(eddy__settings_load_file(fx->st, fx->path, &err),
                     EDDY_ERR_INVALID);
    assert_int_equal(eddy__settings_get_int(fx->st, "rest.port"), 8081);
    assert_int_equal(eddy__settings_load_env(fx->st, envp, &err),
                     EDDY_ERR_INVALID);
    assert_int_equal(eddy__settings_get_int(fx->st, "rest.port"), 8081);
    assert_int_equal(eddy__settings_load_flags(fx->st, flags, 2, &err),
                     EDDY_ERR_INVALID);
    assert_int_equal(eddy__settings_get_int(fx->st, "rest.port"), 8081);
    assert_string_equal(eddy__settings_origin(fx->st, "rest.port"), "default");
}

/* ---- rules across keys, and everything at once ---- */

static void test_cross_key_checks(void **state)
{
    fixture_t *fx = *state;
    char want[600];
    eddy_error_t err;
    char *envp[] = {"EDDY_HEARTBEAT_TIMEOUT=3s", NULL};
    load_yaml_ok(fx, "heartbeat:\n  interval: 5s\n");
    TU_ASSERT_OK(eddy__settings_load_env(fx->st, envp, &err), &err);
    assert_int_equal(eddy__settings_check(fx->st, &err), EDDY_ERR_INVALID);
    snprintf(want, sizeof(want),
             "heartbeat.timeout (3s, from EDDY_HEARTBEAT_TIMEOUT) must be "
             "longer than heartbeat.interval (5s, from %s:2:13)",
             fx->path);
    assert_string_equal(err.msg, want);
    /* A higher layer repairs it. */
    set_flag(fx->st, "heartbeat.timeout", "10s");
    TU_ASSERT_OK(eddy__settings_check(fx->st, &err), &err);
    /* Equal is not longer. */
    set_flag(fx->st, "heartbeat.timeout", "5000ms");
    assert_int_equal(eddy__settings_check(fx->st, &err), EDDY_ERR_INVALID);
    set_flag(fx->st, "heartbeat.timeout", "5001");
    TU_ASSERT_OK(eddy__settings_check(fx->st, &err), &err);

    const eddy__setting_kv_t port = {"rest.port", "6123", "--rest-port"};
    TU_ASSERT_OK(eddy__settings_load_flags(fx->st, &port, 1, &err), &err);
    assert_int_equal(eddy__settings_check(fx->st, &err), EDDY_ERR_INVALID);
    assert_string_equal(err.msg, "rest.port (from --rest-port) and rpc.port "
                                 "(from default) are both 6123: they must "
                                 "differ");
}

static void test_load_everything(void **state)
{
    fixture_t *fx = *state;
    eddy_error_t err;
    char *envp[] = {"EDDY_TASKMANAGER_SLOTS=6", "EDDY_REST_PORT=9500", NULL};
    char *clash[] = {"EDDY_RPC_PORT=9600", NULL};
    char *noenv[] = {NULL};
    const eddy__setting_kv_t flags[] = {{"rest.port", "9600", "--rest-port"}};
    write_yaml(fx, "taskmanager.slots: 2\nscheduler:\n  placement: binpack\n");
    TU_ASSERT_OK(eddy__settings_load(fx->st, fx->path, envp, flags, 1, &err),
                 &err);
    assert_int_equal(eddy__settings_get_int(fx->st, "taskmanager.slots"), 6);
    assert_string_equal(eddy__settings_get_str(fx->st, "scheduler.placement"),
                        "binpack");
    assert_int_equal(eddy__settings_get_int(fx->st, "rest.port"), 9600);

    /* No file; the check runs last. */
    eddy__settings_t *st = eddy__settings_new();
    assert_int_equal(eddy__settings_load(st, NULL, clash, flags, 1, &err),
                     EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(err.msg, "they must differ");
    eddy__settings_destroy(st);

    /* A bad file stops before the other layers. */
    st = eddy__settings_new();
    write_yaml(fx, "taskmanager.slots: many\n");
    assert_int_equal(eddy__settings_load(st, fx->path, envp, NULL, 0, &err),
                     EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(err.msg, "bad value 'many' for taskmanager.slots");
    assert_int_equal(eddy__settings_get_int(st, "rest.port"), 8081);
    TU_ASSERT_OK(eddy__settings_load(st, NULL, noenv, NULL, 0, &err), &err);
    eddy__settings_destroy(st);
}

/* ---- misuse of the getters is a bug: they abort ---- */

static void expect_abort(void (*fn)(eddy__settings_t *), eddy__settings_t *st)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Keep the child's "BUG" line out of the test log. */
        if (freopen("/dev/null", "w", stderr) == NULL) {
            _exit(3);
        }
        fn(st);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void get_unknown(eddy__settings_t *st)
{
    eddy__settings_get_int(st, "no.such.key");
}

static void get_wrong_type(eddy__settings_t *st)
{
    eddy__settings_get_ms(st, "rest.port");
}

static void get_unset_typed(eddy__settings_t *st)
{
    eddy__settings_get_int(st, "job.id");
}

static void get_bool_of_enum(eddy__settings_t *st)
{
    eddy__settings_get_bool(st, "state.backend");
}

static void test_getter_misuse_aborts(void **state)
{
    fixture_t *fx = *state;
    expect_abort(get_unknown, fx->st);
    expect_abort(get_wrong_type, fx->st);
    expect_abort(get_unset_typed, fx->st);
    expect_abort(get_bool_of_enum, fx->st);
}

/* ---- docs/configuration.md shows the table as it is ---- */

static void test_reference_is_current(void **state)
{
    (void)state;
    char path[512];
    size_t len, glen;
    char *gen = NULL;
    snprintf(path, sizeof(path), "%s/docs/configuration.md", EDDY_SOURCE_DIR);
    char *doc = tu_read_file(path, &len);
    FILE *f = open_memstream(&gen, &glen);
    eddy__settings_write_reference(f);
    fclose(f);
    TU_ASSERT_CONTAINS(gen, "| `checkpoint.interval` | `0` |");
    TU_ASSERT_CONTAINS(gen, "| `metadata.store` | `<data.dir>/metadata.db` |");
    if (strstr(doc, gen) == NULL) {
        tu_write_file("settings-reference.md", gen, glen);
        fail_msg("docs/configuration.md is out of date: replace its key "
                 "table with settings-reference.md (in the test's working "
                 "directory)");
    }
    free(gen);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_defaults),
        T(test_table_is_consistent),
        T(test_defaults_are_valid),
        T(test_defaults_match_runtime_config),
        T(test_job_values_accepted_by_runtime_config),
        T(test_yaml_nested),
        T(test_yaml_dotted_and_mixed),
        T(test_yaml_empty_files),
        T(test_yaml_bom_and_crlf),
        T(test_env_name_mapping),
        T(test_env_layer),
        T(test_env_defaults_to_process_environment),
        T(test_env_cleared),
        T(test_flags_layer),
        T(test_precedence),
        T(test_defaults_under_data_dir),
        T(test_apply_job),
        T(test_bad_values_in_yaml),
        T(test_bad_values_in_env),
        T(test_bad_values_in_flags),
        T(test_unknown_keys),
        T(test_shape_errors),
        T(test_tabs_and_indentation),
        T(test_duplicate_keys),
        T(test_yaml_features_refused),
        T(test_bad_bytes),
        T(test_limits),
        T(test_unreadable_files),
        T(test_failed_loads_change_nothing),
        T(test_cross_key_checks),
        T(test_load_everything),
        T(test_getter_misuse_aborts),
        T(test_reference_is_current),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
