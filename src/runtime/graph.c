/*
 * eddy — the environment and the logical-graph builder (public job API).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Builders never fail loudly: the first error is recorded in the environment
 * (sticky), the builder returns NULL, and every builder accepts NULL inputs,
 * so a job's build function can be written without checking each call. The
 * job is then rejected with that first message.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/settings.h"
#include "eddy/runner.h"
#include "runtime/runtime.h"

#define DEFAULT_MAX_PARALLELISM 128
#define MAX_MAX_PARALLELISM 32768
#define DEFAULT_BUFFER_SIZE (32 * 1024)
#define DEFAULT_CHANNEL_CAPACITY 4

const char *eddy_version(void)
{
    return EDDY_VERSION_STR;
}

int64_t eddy_record_value_i64(const eddy_record_t *rec)
{
    int64_t v = 0;
    if (rec->value != NULL && rec->value_len >= sizeof(v)) {
        memcpy(&v, rec->value, sizeof(v));
    }
    return v;
}

eddy_env_t *eddy_env_new(void)
{
    eddy_env_t *env = eddy__calloc(1, sizeof(*env));
    eddy__arena_init(&env->e_arena, 64 * 1024);
    env->e_name = eddy__arena_strdup(&env->e_arena, "job");
    env->e_parallelism = 0; /* unset: the runner's default applies */
    env->e_max_parallelism = DEFAULT_MAX_PARALLELISM;
    env->e_buffer_size = DEFAULT_BUFFER_SIZE;
    env->e_channel_capacity = DEFAULT_CHANNEL_CAPACITY;
    env->e_wm_interval_ms = EDDY_DEFAULT_WATERMARK_INTERVAL_MS;
    eddy__config_init(&env->e_cfg);
    pthread_mutex_init(&env->e_mu, NULL);
    atomic_init(&env->e_cancel, 0);
    return env;
}

void eddy_env_destroy(eddy_env_t *env)
{
    if (env == NULL) {
        return;
    }
    free(env->e_nodes);
    eddy__config_free(&env->e_cfg);
    pthread_mutex_destroy(&env->e_mu);
    eddy__arena_close(&env->e_arena);
    free(env);
}

int eddy_env_fail(eddy_env_t *env, const char *fmt, ...)
{
    if (env == NULL) {
        return EDDY_ERR_INVALID;
    }
    if (!env->e_failed) {
        va_list ap;
        va_start(ap, fmt);
        eddy_error_setv(&env->e_error, EDDY_ERR_INVALID, fmt, ap);
        va_end(ap);
        env->e_failed = true;
    }
    return EDDY_ERR_INVALID;
}

void eddy_env_set_name(eddy_env_t *env, const char *name)
{
    if (env == NULL) {
        return;
    }
    if (name == NULL || name[0] == '\0') {
        eddy_env_fail(env, "eddy_env_set_name: the job name must not be empty");
        return;
    }
    env->e_name = eddy__arena_strdup(&env->e_arena, name);
}

void eddy_env_set_parallelism(eddy_env_t *env, int parallelism)
{
    if (env == NULL) {
        return;
    }
    if (parallelism < 1) {
        eddy_env_fail(env,
                      "eddy_env_set_parallelism: parallelism must be at "
                      "least 1, got %d",
                      parallelism);
        return;
    }
    env->e_parallelism = parallelism;
}

void eddy_env_set_max_parallelism(eddy_env_t *env, int max_par)
{
    if (env == NULL) {
        return;
    }
    if (max_par < 1 || max_par > MAX_MAX_PARALLELISM) {
        eddy_env_fail(env,
                      "eddy_env_set_max_parallelism: must be between 1 "
                      "and %d, got %d",
                      MAX_MAX_PARALLELISM, max_par);
        return;
    }
    env->e_max_parallelism = max_par;
}

void eddy_env_set_buffer_size(eddy_env_t *env, size_t size)
{
    if (env == NULL) {
        return;
    }
    if (size < 4096 || size > 1024 * 1024) {
        eddy_env_fail(env,
                      "eddy_env_set_buffer_size: must be between 4096 "
                      "and 1048576 bytes, got %zu",
                      size);
        return;
    }
    env->e_buffer_size = size;
}

void eddy_env_set_channel_capacity(eddy_env_t *env, int buffers)
{
    if (env == NULL) {
        return;
    }
    if (buffers < 1 || buffers > 1024) {
        eddy_env_fail(env,
                      "eddy_env_set_channel_capacity: must be between 1 "
                      "and 1024 buffers, got %d",
                      buffers);
        return;
    }
    env->e_channel_capacity = buffers;
}

void eddy_env_enable_checkpointing(eddy_env_t *env, int64_t interval_ms)
{
    if (env == NULL) {
        return;
    }
    if (interval_ms < 10) {
        eddy_env_fail(env,
                      "eddy_env_enable_checkpointing: the interval must be "
                      "at least 10 ms, got %lld",
                      (long long)interval_ms);
        return;
    }
    env->e_cfg.ck_interval_ms = interval_ms;
}

int eddy_env_set_option(eddy_env_t *env, const char *key, const char *value,
                        eddy_error_t *err)
{
    if (env == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "no environment");
    }
    return eddy__config_set(&env->e_cfg, key, value, err);
}

int eddy_env_load_config(eddy_env_t *env, const char *path, eddy_error_t *err)
{
    if (env == NULL || path == NULL || *path == '\0') {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "a configuration file path is needed");
    }
    eddy__settings_t *st = eddy__settings_new();
    int rc = eddy__settings_load_file(st, path, err);
    if (rc == 0) {
        rc = eddy__settings_check(st, err);
    }
    if (rc == 0) {
        rc = eddy__settings_apply_job(st, &env->e_cfg, err);
    }
    eddy__settings_destroy(st);
    return rc;
}

const char *eddy_env_job_id(const eddy_env_t *env)
{
    return env->e_cfg.job_id;
}

int eddy_env_checkpoint_summary(const eddy_env_t *env, uint64_t *completed,
                                uint64_t *failed, char *latest, size_t size)
{
    if (env == NULL || !env->e_ck_ran) {
        return EDDY_ERR_INVALID;
    }
    *completed = env->e_ck_completed;
    *failed = env->e_ck_failed;
    if (latest != NULL && size > 0) {
        eddy__fmt(latest, size, "%s", env->e_ck_latest);
    }
    return 0;
}

const char *eddy_env_checkpoint_dir(eddy_env_t *env)
{
    if (env == NULL || env->e_cfg.ck_interval_ms <= 0) {
        return NULL;
    }
    char *p = eddy__arena_alloc(&env->e_arena, 4200);
    eddy__fmt(p, 4200, "%s/%s", eddy__config_ck_path(&env->e_cfg),
              env->e_cfg.job_id);
    return p;
}

void eddy_env_set_watermark_interval(eddy_env_t *env, int64_t interval_ms)
{
    if (env == NULL) {
        return;
    }
    if (interval_ms < 0) {
        eddy_env_fail(env,
                      "eddy_env_set_watermark_interval: must be >= 0 ms, "
                      "got %lld",
                      (long long)interval_ms);
        return;
    }
    env->e_wm_interval_ms = interval_ms;
}

void eddy_env_cancel(eddy_env_t *env)
{
    if (env != NULL) {
        atomic_store(&env->e_cancel, 1);
    }
}

int eddy_env_execute(eddy_env_t *env, eddy_error_t *err)
{
    if (env == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "no environment");
    }
    if (env->e_failed) {
        return eddy_error_set(err, env->e_error.code, "%s", env->e_error.msg);
    }
    if (env->e_executed) {
        return eddy_error_set(err, EDDY_ERR_STATE,
                              "this environment has already been executed");
    }
    env->e_executed = true;
    /* Operators without a uid get one from their position in the graph:
     * stable as long as the job builds the same graph. */
    eddy__plan_assign_uids(env);
    eddy__plan_t *plan = NULL;
    int rc = eddy__plan_build(env, &plan, err);
    if (rc != 0) {
        return rc;
    }
    rc = eddy__local_run(env, plan, err);
    eddy__plan_destroy(plan);
    return rc;
}

/* ---- nodes ---- */

static eddy_stream_t *node_new(eddy_env_t *env, eddy__node_kind_t kind,
                               eddy_stream_t *const *inputs, int ninputs)
{
    for (int i = 0; i < ninputs; i++) {
        if (inputs[i] == NULL) {
            /* An earlier builder failed and recorded why. */
            if (!env->e_failed) {
                eddy_env_fail(env, "a stream passed to the job API is NULL");
            }
            return NULL;
        }
        if (inputs[i]->s_env != env) {
            eddy_env_fail(env, "streams of different environments cannot be "
                               "combined");
            return NULL;
        }
    }
    eddy_stream_t *s = eddy__arena_alloc(&env->e_arena, sizeof(*s));
    if (s == NULL) {
        eddy_env_fail(env, "out of memory");
        return NULL;
    }
    memset(s, 0, sizeof(*s));
    s->s_env = env;
    s->s_kind = kind;
    s->s_id = (int)env->e_nnodes;
    if (ninputs > 0) {
        s->s_inputs =
            eddy__arena_alloc(&env->e_arena, sizeof(*s->s_inputs) * ninputs);
        memcpy(s->s_inputs, inputs, sizeof(*s->s_inputs) * ninputs);
    }
    s->s_ninputs = ninputs;
    eddy__grow((void **)&env->e_nodes, &env->e_nodes_cap, env->e_nnodes + 1,
               sizeof(*env->e_nodes));
    env->e_nodes[env->e_nnodes++] = s;
    return s;
}

eddy_stream_t *eddy__node_add(eddy_env_t *env, const eddy__op_class_t *cls,
                              eddy_stream_t *const *inputs, int ninputs)
{
    if (env == NULL) {
        return NULL;
    }
    eddy_stream_t *s = node_new(env, EDDY__NODE_OPERATOR, inputs, ninputs);
    if (s != NULL) {
        s->s_class = cls;
        s->s_name = eddy__arena_strdup(&env->e_arena, cls->oc_kind);
    }
    return s;
}

eddy_stream_t *eddy__node_virtual(eddy_env_t *env, eddy__node_kind_t kind,
                                  eddy_stream_t *const *inputs, int ninputs)
{
    return node_new(env, kind, inputs, ninputs);
}

/* The environment of a possibly-NULL stream is unknown; builders that get a
 * NULL stream just propagate NULL (the error is already recorded). */
eddy_env_t *eddy__stream_env(eddy_stream_t *s)
{
    return s != NULL ? s->s_env : NULL;
}

static eddy_stream_t *unary(eddy_stream_t *in, const eddy__op_class_t *cls,
                            void (*fn)(void), void *opaque, const char *api)
{
    if (in == NULL) {
        return NULL;
    }
    if (fn == NULL && cls != &eddy__key_by_class) {
        eddy_env_fail(in->s_env, "%s: the function must not be NULL", api);
        return NULL;
    }
    eddy_stream_t *s = eddy__node_add(in->s_env, cls, &in, 1);
    if (s != NULL) {
        s->s_fn = fn;
        s->s_opaque = opaque;
    }
    return s;
}

eddy_stream_t *eddy_map(eddy_stream_t *in, eddy_map_fn fn, void *opaque)
{
    return unary(in, &eddy__map_class, (void (*)(void))fn, opaque, "eddy_map");
}

eddy_stream_t *eddy_filter(eddy_stream_t *in, eddy_filter_fn fn, void *opaque)
{
    return unary(in, &eddy__filter_class, (void (*)(void))fn, opaque,
                 "eddy_filter");
}

eddy_stream_t *eddy_flat_map(eddy_stream_t *in, eddy_flat_map_fn fn,
                             void *opaque)
{
    return unary(in, &eddy__flat_map_class, (void (*)(void))fn, opaque,
                 "eddy_flat_map");
}

eddy_stream_t *eddy_key_by(eddy_stream_t *in, eddy_key_fn fn, void *opaque)
{
    eddy_stream_t *s = unary(in, &eddy__key_by_class, (void (*)(void))fn,
                             opaque, "eddy_key_by");
    if (s != NULL) {
        s->s_keyed_out = true;
    }
    return s;
}

eddy_stream_t *eddy_reduce(eddy_stream_t *keyed, eddy_reduce_fn fn,
                           void *opaque)
{
    return unary(keyed, &eddy__reduce_class, (void (*)(void))fn, opaque,
                 "eddy_reduce");
}

eddy_stream_t *eddy_aggregate(eddy_stream_t *keyed, const eddy_aggregate_t *agg)
{
    if (keyed == NULL) {
        return NULL;
    }
    eddy_env_t *env = keyed->s_env;
    if (agg == NULL || agg->add == NULL || agg->result == NULL) {
        eddy_env_fail(env, "eddy_aggregate: the aggregate needs add and result "
                           "functions");
        return NULL;
    }
    if (agg->acc_size == 0 || agg->acc_size > 65536) {
        eddy_env_fail(env,
                      "eddy_aggregate: acc_size must be between 1 and "
                      "65536 bytes, got %zu",
                      agg->acc_size);
        return NULL;
    }
    eddy_stream_t *s = eddy__node_add(env, &eddy__aggregate_class, &keyed, 1);
    if (s != NULL) {
        s->s_config = eddy__arena_memdup(&env->e_arena, agg, sizeof(*agg));
    }
    return s;
}

eddy_stream_t *eddy_union(eddy_stream_t *a, eddy_stream_t *b)
{
    eddy_env_t *env = a != NULL ? a->s_env : (b != NULL ? b->s_env : NULL);
    if (a == NULL || b == NULL || env == NULL) {
        return NULL;
    }
    eddy_stream_t *in[2] = {a, b};
    eddy_stream_t *s = node_new(env, EDDY__NODE_UNION, in, 2);
    if (s != NULL) {
        s->s_name = eddy__arena_strdup(&env->e_arena, "Union");
    }
    return s;
}

static eddy_stream_t *partition(eddy_stream_t *in, int part, const char *name)
{
    if (in == NULL) {
        return NULL;
    }
    eddy_stream_t *s = node_new(in->s_env, EDDY__NODE_PARTITION, &in, 1);
    if (s != NULL) {
        s->s_partitioner = part;
        s->s_name = eddy__arena_strdup(&in->s_env->e_arena, name);
    }
    return s;
}

eddy_stream_t *eddy_rebalance(eddy_stream_t *in)
{
    return partition(in, EDDY__PART_REBALANCE, "Rebalance");
}

eddy_stream_t *eddy_broadcast(eddy_stream_t *in)
{
    return partition(in, EDDY__PART_BROADCAST, "Broadcast");
}

eddy_stream_t *eddy_forward(eddy_stream_t *in)
{
    return partition(in, EDDY__PART_FORWARD, "Forward");
}

/* ---- settings ---- */

static bool physical(eddy_stream_t *s, const char *api)
{
    if (s->s_kind != EDDY__NODE_OPERATOR) {
        eddy_env_fail(s->s_env,
                      "%s: '%s' is not an operator (apply it to the "
                      "operator before or after)",
                      api, s->s_name);
        return false;
    }
    return true;
}

eddy_stream_t *eddy_name(eddy_stream_t *s, const char *name)
{
    if (s == NULL) {
        return NULL;
    }
    if (name == NULL || name[0] == '\0') {
        eddy_env_fail(s->s_env, "eddy_name: the name must not be empty");
        return NULL;
    }
    if (!physical(s, "eddy_name")) {
        return NULL;
    }
    s->s_name = eddy__arena_strdup(&s->s_env->e_arena, name);
    return s;
}

eddy_stream_t *eddy_uid(eddy_stream_t *s, const char *uid)
{
    if (s == NULL) {
        return NULL;
    }
    if (uid == NULL || uid[0] == '\0') {
        eddy_env_fail(s->s_env, "eddy_uid: the uid must not be empty");
        return NULL;
    }
    if (!physical(s, "eddy_uid")) {
        return NULL;
    }
    eddy_env_t *env = s->s_env;
    for (size_t i = 0; i < env->e_nnodes; i++) {
        eddy_stream_t *o = env->e_nodes[i];
        if (o != s && o->s_uid != NULL && strcmp(o->s_uid, uid) == 0) {
            eddy_env_fail(env,
                          "eddy_uid: uid '%s' is used by both '%s' and "
                          "'%s'; uids must be unique",
                          uid, o->s_name, s->s_name);
            return NULL;
        }
    }
    s->s_uid = eddy__arena_strdup(&env->e_arena, uid);
    return s;
}

eddy_stream_t *eddy_parallelism(eddy_stream_t *s, int parallelism)
{
    if (s == NULL) {
        return NULL;
    }
    if (!physical(s, "eddy_parallelism")) {
        return NULL;
    }
    if (parallelism < 1 || parallelism > s->s_env->e_max_parallelism) {
        eddy_env_fail(s->s_env,
                      "eddy_parallelism: '%s' parallelism must be "
                      "between 1 and the max parallelism %d, got %d",
                      s->s_name, s->s_env->e_max_parallelism, parallelism);
        return NULL;
    }
    s->s_parallelism = parallelism;
    return s;
}

eddy_stream_t *eddy_disable_chaining(eddy_stream_t *s)
{
    if (s == NULL) {
        return NULL;
    }
    if (!physical(s, "eddy_disable_chaining")) {
        return NULL;
    }
    s->s_no_chain = true;
    return s;
}
