/*
 * eddy — running keyed operators: reduce and aggregate.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Both keep one value per key in keyed state (state/state.h: the configured
 * backend, snapshotted with checkpoints) and emit the key's new result after
 * every record — the running semantics of Flink's keyed reduce. Aggregates
 * have a fixed-size accumulator, updated in place with one lookup
 * (ko_get_for_update); reduce values may change size, so reduce reads, calls
 * the function, emits, then stores.
 */
#include "runtime/runtime.h"

static const eddy__state_spec_t keyed_specs[] = {
    {"value", EDDY_STATE_VALUE, 0},
};

typedef struct keyed_state {
    eddy__kstate_t *ks;
    int max_par;
} keyed_state_t;

static int keyed_open(eddy__op_t *op)
{
    keyed_state_t *ks = eddy__calloc(1, sizeof(*ks));
    op->op_data = ks;
    ks->max_par = op->op_node->s_env->e_max_parallelism;
    return eddy__op_kstate_new(op, keyed_specs, 1, &ks->ks);
}

static void keyed_close(eddy__op_t *op)
{
    keyed_state_t *ks = op->op_data;
    if (ks != NULL) {
        eddy__kstate_destroy(ks->ks);
        eddy__free(ks);
        op->op_data = NULL;
    }
}

static inline void skey_of(const keyed_state_t *ks, const eddy_record_t *rec,
                           eddy__skey_t *k)
{
    k->sk_key = rec->key;
    k->sk_klen = rec->key_len;
    k->sk_hash = eddy__hash64(rec->key, rec->key_len);
    k->sk_kg = eddy__key_group(k->sk_hash, ks->max_par);
    k->sk_ns = NULL;
    k->sk_nslen = 0;
}

static int reduce_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    keyed_state_t *ks = op->op_data;
    eddy__skey_t k;
    skey_of(ks, rec, &k);
    const eddy__kstate_ops_t *o = ks->ks->ks_ops;
    const void *old;
    size_t oldlen;
    eddy_record_t out;
    eddy__record_copy(&out, rec);
    if (o->ko_get(ks->ks, 0, &k, &old, &oldlen)) {
        eddy_reduce_fn fn = (eddy_reduce_fn)op->op_node->s_fn;
        eddy_record_t acc;
        eddy__record_copy(&acc, rec);
        acc.value = old;
        acc.value_len = oldlen;
        eddy__op_enter(op);
        int rc = fn(&op->op_ctx, &acc, rec, &out, op->op_node->s_opaque);
        if (EDDY_UNLIKELY(rc != 0)) {
            return eddy__op_user_rc(op, rc);
        }
    }
    /* Store first: the result may point into the old value, which the put
     * keeps readable while it copies; then emit the stored bytes. */
    int rc = o->ko_put(ks->ks, 0, &k, out.value, out.value_len);
    if (EDDY_UNLIKELY(rc != 0)) {
        return eddy__op_fail(op, rc, "cannot store the reduced value");
    }
    if (!o->ko_get(ks->ks, 0, &k, &out.value, &out.value_len)) {
        return eddy__op_fail(op, EDDY_ERR_STATE, "reduced value vanished");
    }
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
    eddy__skey_t k;
    skey_of(ks, rec, &k);
    void *acc;
    bool created;
    int rc = ks->ks->ks_ops->ko_get_for_update(ks->ks, 0, &k, agg->acc_size,
                                               &acc, &created);
    if (EDDY_UNLIKELY(rc != 0)) {
        return eddy__op_fail(op, rc, "cannot update the accumulator: %s",
                             eddy_strerror(rc));
    }
    eddy__op_enter(op);
    if (created && agg->init != NULL) {
        agg->init(acc, agg->opaque);
    }
    rc = agg->add(&op->op_ctx, acc, rec, agg->opaque);
    if (EDDY_UNLIKELY(rc != 0)) {
        return eddy__op_user_rc(op, rc);
    }
    eddy_record_t out;
    eddy__record_copy(&out, rec);
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
