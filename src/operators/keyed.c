/*
 * eddy — running keyed operators: reduce and aggregate.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Both keep one value per key in a heap table (state/kv_table.h) owned by the
 * subtask, and emit the key's new result after every record — the running
 * semantics of Flink's keyed reduce. The key bytes in emitted records point
 * into the table, so emitting costs no copy.
 */
#include "runtime/runtime.h"
#include "state/kv_table.h"

typedef struct keyed_state {
    eddy__kv_table_t ks_table;
} keyed_state_t;

static int keyed_open(eddy__op_t *op)
{
    keyed_state_t *ks = eddy__calloc(1, sizeof(*ks));
    eddy__kv_init(&ks->ks_table);
    op->op_data = ks;
    return 0;
}

static void keyed_close(eddy__op_t *op)
{
    keyed_state_t *ks = op->op_data;
    if (ks != NULL) {
        eddy__kv_close(&ks->ks_table);
        eddy__free(ks);
        op->op_data = NULL;
    }
}

static int reduce_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    keyed_state_t *ks = op->op_data;
    bool created;
    uint64_t h = eddy__hash64(rec->key, rec->key_len);
    eddy__kv_entry_t *e =
        eddy__kv_upsert(&ks->ks_table, h, rec->key, rec->key_len, 0, &created);
    if (EDDY_UNLIKELY(e == NULL)) {
        return eddy__op_fail(op, EDDY_ERR_NOMEM, "out of memory for state");
    }
    eddy_record_t out;
    eddy__record_copy(&out, rec);
    if (!created) {
        eddy_reduce_fn fn = (eddy_reduce_fn)op->op_node->s_fn;
        eddy_record_t acc;
        eddy__record_copy(&acc, rec);
        acc.value = eddy__kv_value(e);
        acc.value_len = e->kv_vlen;
        eddy__op_enter(op);
        int rc = fn(&op->op_ctx, &acc, rec, &out, op->op_node->s_opaque);
        if (EDDY_UNLIKELY(rc != 0)) {
            return eddy__op_user_rc(op, rc);
        }
    }
    int rc = eddy__kv_set_value(&ks->ks_table, e, out.value, out.value_len);
    if (EDDY_UNLIKELY(rc != 0)) {
        return eddy__op_fail(op, rc, "cannot store the reduced value");
    }
    out.key = e->kv_data;
    out.key_len = e->kv_klen;
    out.value = eddy__kv_value(e);
    out.value_len = e->kv_vlen;
    return eddy__emit(op, &out);
}

const eddy__op_class_t eddy__reduce_class = {
    .oc_kind = "Reduce",
    .oc_keyed_input = true,
    .oc_open = keyed_open,
    .oc_process = reduce_process,
    .oc_close = keyed_close,
};

static int aggregate_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    keyed_state_t *ks = op->op_data;
    const eddy_aggregate_t *agg = op->op_node->s_config;
    bool created;
    uint64_t h = eddy__hash64(rec->key, rec->key_len);
    eddy__kv_entry_t *e = eddy__kv_upsert(
        &ks->ks_table, h, rec->key, rec->key_len, agg->acc_size, &created);
    if (EDDY_UNLIKELY(e == NULL)) {
        return eddy__op_fail(op, EDDY_ERR_NOMEM, "out of memory for state");
    }
    void *acc = eddy__kv_value(e);
    eddy__op_enter(op);
    if (created) {
        e->kv_vlen = (uint32_t)agg->acc_size;
        if (agg->init != NULL) {
            agg->init(acc, agg->opaque);
        }
    }
    int rc = agg->add(&op->op_ctx, acc, rec, agg->opaque);
    if (EDDY_UNLIKELY(rc != 0)) {
        return eddy__op_user_rc(op, rc);
    }
    eddy_record_t out;
    eddy__record_copy(&out, rec);
    out.key = e->kv_data;
    out.key_len = e->kv_klen;
    rc = agg->result(&op->op_ctx, acc, &out, agg->opaque);
    if (EDDY_UNLIKELY(rc != 0)) {
        return eddy__op_user_rc(op, rc);
    }
    return eddy__emit(op, &out);
}

const eddy__op_class_t eddy__aggregate_class = {
    .oc_kind = "Aggregate",
    .oc_keyed_input = true,
    .oc_open = keyed_open,
    .oc_process = aggregate_process,
    .oc_close = keyed_close,
};

/* ---- built-in aggregates: int64 accumulators, result points at them ---- */

static int i64_result(eddy_ctx_t *ctx, const void *acc, eddy_record_t *out,
                      void *opaque)
{
    EDDY_UNUSED(ctx);
    EDDY_UNUSED(opaque);
    out->value = acc;
    out->value_len = sizeof(int64_t);
    return 0;
}

static int count_add(eddy_ctx_t *ctx, void *acc, const eddy_record_t *in,
                     void *opaque)
{
    EDDY_UNUSED(ctx);
    EDDY_UNUSED(in);
    EDDY_UNUSED(opaque);
    int64_t v;
    memcpy(&v, acc, sizeof(v));
    v++;
    memcpy(acc, &v, sizeof(v));
    return 0;
}

static int sum_add(eddy_ctx_t *ctx, void *acc, const eddy_record_t *in,
                   void *opaque)
{
    EDDY_UNUSED(ctx);
    EDDY_UNUSED(opaque);
    int64_t v;
    memcpy(&v, acc, sizeof(v));
    /* Wrap on overflow like Java's long rather than invoke UB. */
    v = (int64_t)((uint64_t)v + (uint64_t)eddy_record_value_i64(in));
    memcpy(acc, &v, sizeof(v));
    return 0;
}

/* min/max accumulators: [int64 value][int64 seen flag]. */
static int min_add(eddy_ctx_t *ctx, void *acc, const eddy_record_t *in,
                   void *opaque)
{
    EDDY_UNUSED(ctx);
    EDDY_UNUSED(opaque);
    int64_t a[2];
    memcpy(a, acc, sizeof(a));
    int64_t x = eddy_record_value_i64(in);
    if (!a[1] || x < a[0]) {
        a[0] = x;
        a[1] = 1;
    }
    memcpy(acc, a, sizeof(a));
    return 0;
}

static int max_add(eddy_ctx_t *ctx, void *acc, const eddy_record_t *in,
                   void *opaque)
{
    EDDY_UNUSED(ctx);
    EDDY_UNUSED(opaque);
    int64_t a[2];
    memcpy(a, acc, sizeof(a));
    int64_t x = eddy_record_value_i64(in);
    if (!a[1] || x > a[0]) {
        a[0] = x;
        a[1] = 1;
    }
    memcpy(acc, a, sizeof(a));
    return 0;
}

static int sum_merge(eddy_ctx_t *ctx, void *acc, const void *other,
                     void *opaque)
{
    EDDY_UNUSED(ctx);
    EDDY_UNUSED(opaque);
    int64_t a, b;
    memcpy(&a, acc, sizeof(a));
    memcpy(&b, other, sizeof(b));
    a = (int64_t)((uint64_t)a + (uint64_t)b);
    memcpy(acc, &a, sizeof(a));
    return 0;
}

static int extreme_merge(void *acc, const void *other, bool want_min)
{
    int64_t a[2], b[2];
    memcpy(a, acc, sizeof(a));
    memcpy(b, other, sizeof(b));
    if (b[1] && (!a[1] || (want_min ? b[0] < a[0] : b[0] > a[0]))) {
        memcpy(acc, b, sizeof(b));
    }
    return 0;
}

static int min_merge(eddy_ctx_t *ctx, void *acc, const void *other,
                     void *opaque)
{
    EDDY_UNUSED(ctx);
    EDDY_UNUSED(opaque);
    return extreme_merge(acc, other, true);
}

static int max_merge(eddy_ctx_t *ctx, void *acc, const void *other,
                     void *opaque)
{
    EDDY_UNUSED(ctx);
    EDDY_UNUSED(opaque);
    return extreme_merge(acc, other, false);
}

/* Count and sum merge the same way: add the int64 accumulators. */
static const eddy_aggregate_t agg_count = {
    .acc_size = sizeof(int64_t),
    .add = count_add,
    .result = i64_result,
    .merge = sum_merge,
};
static const eddy_aggregate_t agg_sum = {
    .acc_size = sizeof(int64_t),
    .add = sum_add,
    .result = i64_result,
    .merge = sum_merge,
};
static const eddy_aggregate_t agg_min = {
    .acc_size = 2 * sizeof(int64_t),
    .add = min_add,
    .result = i64_result,
    .merge = min_merge,
};
static const eddy_aggregate_t agg_max = {
    .acc_size = 2 * sizeof(int64_t),
    .add = max_add,
    .result = i64_result,
    .merge = max_merge,
};

const eddy_aggregate_t *eddy_agg_count(void)
{
    return &agg_count;
}
const eddy_aggregate_t *eddy_agg_sum_i64(void)
{
    return &agg_sum;
}
const eddy_aggregate_t *eddy_agg_min_i64(void)
{
    return &agg_min;
}
const eddy_aggregate_t *eddy_agg_max_i64(void)
{
    return &agg_max;
}
