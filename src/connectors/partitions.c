/*
 * eddy — the partitioned in-memory source and per-partition watermarks.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * eddy_source_partitions models a partitioned log (a Kafka topic, a set of
 * file splits) with bounded in-memory partitions, for tests and demos:
 * partition k is read by subtask k % parallelism, and a subtask interleaves
 * its partitions round robin, one record at a time, so timestamps are out of
 * order across partitions the way they are when a consumer polls several
 * partitions.
 *
 * With eddy_source_with_watermarks the source generates watermarks itself,
 * per partition, through an eddy__wm_mux_t (src/runtime/wm_mux.h): the
 * subtask's watermark is the minimum over its partitions that are neither
 * idle nor finished. A partition finishes right after its last record.
 *
 * THREADS. Each subtask's state is used only on its task's thread; the
 * configuration (records, strategy) is read-only graph memory.
 */
#include <stdlib.h>

#include "connectors/kafka_source.h"
#include "runtime/runtime.h"
#include "runtime/wm_mux.h"

typedef struct partitions_config {
    eddy__wm_source_conf_t pc_wm; /* first: see wm_mux.h */
    eddy_record_t **pc_records;   /* per partition */
    size_t *pc_counts;
    size_t pc_n;
} partitions_config_t;

typedef struct partitions_state {
    const eddy_watermark_strategy_t *ps_ws; /* NULL: no watermarks here */
    eddy__wm_mux_t ps_mux;
    size_t *ps_part; /* this subtask's partitions, ascending */
    size_t *ps_next; /* per local partition: its next record */
    int *ps_slot;    /* per local partition: its multiplexer slot */
    size_t ps_n;     /* local partitions */
    size_t ps_left;  /* local partitions with records left */
    size_t ps_cursor;
} partitions_state_t;

static int partitions_open(eddy__op_t *op)
{
    const partitions_config_t *cfg = op->op_node->s_config;
    partitions_state_t *st = eddy__calloc(1, sizeof(*st));
    op->op_data = st;
    size_t sub = (size_t)op->op_ctx.cx_subtask;
    size_t par = (size_t)op->op_ctx.cx_parallelism;
    size_t n = sub < cfg->pc_n ? (cfg->pc_n - sub + par - 1) / par : 0;
    st->ps_part = eddy__calloc(n + 1, sizeof(*st->ps_part));
    st->ps_next = eddy__calloc(n + 1, sizeof(*st->ps_next));
    st->ps_slot = eddy__calloc(n + 1, sizeof(*st->ps_slot));
    st->ps_n = n;
    st->ps_ws = cfg->pc_wm.wsc_strategy;
    int64_t now = eddy__now_ms();
    if (st->ps_ws != NULL) {
        eddy__wm_mux_init(&st->ps_mux, op, st->ps_ws,
                          op->op_node->s_env->e_wm_interval_ms, now);
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = sub + i * par;
        st->ps_part[i] = k;
        st->ps_slot[i] = -1;
        if (cfg->pc_counts[k] == 0) {
            continue; /* finished before it started: never holds back */
        }
        st->ps_left++;
        if (st->ps_ws != NULL) {
            st->ps_slot[i] = eddy__wm_mux_add(&st->ps_mux, now);
        }
    }
    if (st->ps_ws != NULL) {
        op->op_next_tick_ms = eddy__wm_mux_next_tick(&st->ps_mux);
    }
    return 0;
}

static int partitions_poll(eddy__op_t *op, int budget)
{
    const partitions_config_t *cfg = op->op_node->s_config;
    partitions_state_t *st = op->op_data;
    for (int i = 0; i < budget; i++) {
        if (st->ps_left == 0) {
            return EDDY__POLL_END;
        }
        /* The next partition with records left, round robin. */
        size_t j = st->ps_cursor;
        while (st->ps_next[j] == cfg->pc_counts[st->ps_part[j]]) {
            j = j + 1 == st->ps_n ? 0 : j + 1;
        }
        size_t k = st->ps_part[j];
        const eddy_record_t *rec = &cfg->pc_records[k][st->ps_next[j]++];
        bool last = st->ps_next[j] == cfg->pc_counts[k];
        st->ps_cursor = j + 1 == st->ps_n ? 0 : j + 1;
        int rc;
        if (st->ps_ws != NULL) {
            eddy__op_enter(op);
            rc = eddy__wm_mux_emit(&st->ps_mux, st->ps_slot[j], rec);
        } else {
            rc = eddy__emit(op, rec);
        }
        if (rc != 0) {
            return rc;
        }
        if (last) {
            st->ps_left--;
            if (st->ps_ws != NULL) {
                rc = eddy__wm_mux_finish(&st->ps_mux, st->ps_slot[j]);
                if (rc != 0) {
                    return rc;
                }
            }
        }
    }
    return EDDY__POLL_MORE;
}

static int partitions_tick(eddy__op_t *op, int64_t now_ms)
{
    partitions_state_t *st = op->op_data;
    int rc = eddy__wm_mux_tick(&st->ps_mux, now_ms);
    op->op_next_tick_ms = eddy__wm_mux_next_tick(&st->ps_mux);
    return rc;
}

static void partitions_close(eddy__op_t *op)
{
    partitions_state_t *st = op->op_data;
    if (st == NULL) {
        return;
    }
    if (st->ps_ws != NULL) {
        eddy__wm_mux_close(&st->ps_mux);
    }
    free(st->ps_part);
    free(st->ps_next);
    free(st->ps_slot);
    free(st);
    op->op_data = NULL;
}

static const eddy__op_class_t partitions_class = {
    .oc_kind = "Source: Partitions",
    .oc_source = true,
    .oc_open = partitions_open,
    .oc_poll = partitions_poll,
    .oc_tick = partitions_tick,
    .oc_close = partitions_close,
};

/*
 * Sources that generate per-partition watermarks with an eddy__wm_mux_t when
 * given a strategy; their s_config starts with eddy__wm_source_conf_t. A new
 * partitioned source (the Kafka source) adds its class here.
 */
static const eddy__op_class_t *const partition_aware[] = {
    &partitions_class,
    &eddy__kafka_source_class,
};

static eddy__wm_source_conf_t *partition_aware_conf(eddy_stream_t *s)
{
    if (s->s_kind != EDDY__NODE_OPERATOR) {
        return NULL;
    }
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(partition_aware); i++) {
        if (s->s_class == partition_aware[i]) {
            return s->s_config;
        }
    }
    return NULL;
}

eddy_stream_t *eddy_source_partitions(eddy_env_t *env,
                                      const eddy_record_t *const *partitions,
                                      const size_t *counts, size_t npartitions)
{
    if (env == NULL) {
        return NULL;
    }
    if (npartitions > 0 && (partitions == NULL || counts == NULL)) {
        eddy_env_fail(env, "eddy_source_partitions: partitions or counts is "
                           "NULL");
        return NULL;
    }
    for (size_t k = 0; k < npartitions; k++) {
        if (partitions[k] == NULL && counts[k] > 0) {
            eddy_env_fail(env,
                          "eddy_source_partitions: partition %zu is NULL but "
                          "has %zu records",
                          k, counts[k]);
            return NULL;
        }
    }
    eddy_stream_t *s = eddy__node_add(env, &partitions_class, NULL, 0);
    if (s == NULL) {
        return NULL;
    }
    eddy__arena_t *ar = &env->e_arena;
    partitions_config_t *cfg = eddy__arena_alloc(ar, sizeof(*cfg));
    memset(cfg, 0, sizeof(*cfg));
    cfg->pc_n = npartitions;
    cfg->pc_records =
        eddy__arena_alloc(ar, sizeof(*cfg->pc_records) * (npartitions + 1));
    cfg->pc_counts =
        eddy__arena_alloc(ar, sizeof(*cfg->pc_counts) * (npartitions + 1));
    for (size_t k = 0; k < npartitions; k++) {
        size_t count = counts[k];
        eddy_record_t *d = eddy__arena_alloc(ar, sizeof(*d) * (count + 1));
        for (size_t i = 0; i < count; i++) {
            const eddy_record_t *r = &partitions[k][i];
            d[i] = *r;
            d[i].key = r->key != NULL
                           ? eddy__arena_memdup(ar, r->key, r->key_len)
                           : NULL;
            if (r->key == NULL) {
                d[i].key_len = 0;
            }
            d[i].value =
                eddy__arena_memdup(ar, r->value != NULL ? r->value : "",
                                   r->value != NULL ? r->value_len : 0);
            if (r->value == NULL) {
                d[i].value_len = 0;
            }
        }
        cfg->pc_records[k] = d;
        cfg->pc_counts[k] = count;
    }
    s->s_config = cfg;
    return s;
}

eddy_stream_t *eddy_source_with_watermarks(eddy_stream_t *source,
                                           const eddy_watermark_strategy_t *ws)
{
    if (source == NULL) {
        return NULL;
    }
    eddy_env_t *env = source->s_env;
    if (!eddy__wm_strategy_check(env, "eddy_source_with_watermarks", ws)) {
        return NULL;
    }
    if (source->s_kind != EDDY__NODE_OPERATOR || !source->s_class->oc_source) {
        eddy_env_fail(env,
                      "eddy_source_with_watermarks: '%s' is not a source; use "
                      "eddy_assign_timestamps on other streams",
                      source->s_name != NULL ? source->s_name : "stream");
        return NULL;
    }
    eddy__wm_source_conf_t *conf = partition_aware_conf(source);
    if (conf == NULL) {
        /* Not partitioned: each subtask is one partition, which is what a
         * timestamp assigner chained right after the source computes. */
        eddy_stream_t *s = eddy_assign_timestamps(source, ws);
        if (s != NULL) {
            s->s_parallelism = source->s_parallelism != 0
                                   ? source->s_parallelism
                                   : source->s_class->oc_default_parallelism;
        }
        return s;
    }
    if (conf->wsc_strategy != NULL) {
        eddy_env_fail(env,
                      "eddy_source_with_watermarks: source '%s' already has a "
                      "watermark strategy",
                      source->s_name);
        return NULL;
    }
    conf->wsc_strategy = eddy__arena_memdup(&env->e_arena, ws, sizeof(*ws));
    return source;
}
