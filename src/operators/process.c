/*
 * eddy — keyed process functions, co-process functions, keyed state access,
 * timers and side outputs.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * A keyed process operator owns, per subtask, a state backend (heap today,
 * RocksDB later; src/state/state.h) for the key groups of that subtask and a
 * timer service (src/runtime/timers.h). Before every user callback the
 * operator puts the current key (bytes, hash, key group) into the context;
 * the state and timer functions act on that key. Event-time timers fire when
 * the input watermark passes them, before the watermark is forwarded, so
 * everything they emit precedes the watermark downstream. Processing-time
 * timers fire from the task's tick.
 */
#include <stdio.h>
#include <stdlib.h>

#include "runtime/runtime.h"
#include "runtime/timers.h"

/* ---- serializers ---- */

static const eddy_serializer_t ser_bytes = {"bytes", 1, 0};
static const eddy_serializer_t ser_i64 = {"i64", 1, sizeof(int64_t)};
static const eddy_serializer_t ser_f64 = {"f64", 1, sizeof(double)};
static const eddy_serializer_t ser_string = {"string", 1, 0};

const eddy_serializer_t *eddy_serializer_bytes(void)
{
    return &ser_bytes;
}
const eddy_serializer_t *eddy_serializer_i64(void)
{
    return &ser_i64;
}
const eddy_serializer_t *eddy_serializer_f64(void)
{
    return &ser_f64;
}
const eddy_serializer_t *eddy_serializer_string(void)
{
    return &ser_string;
}

/* ---- declaring state and side outputs (graph building) ---- */

static bool keyed_operator(const eddy_stream_t *s)
{
    return s->s_kind == EDDY__NODE_OPERATOR &&
           (s->s_class == &eddy__process_class ||
            s->s_class == &eddy__co_process_class);
}

int eddy_declare_state(eddy_stream_t *op, const eddy_state_desc_t *desc)
{
    if (op == NULL) {
        return -1;
    }
    eddy_env_t *env = op->s_env;
    if (!keyed_operator(op)) {
        eddy_env_fail(env,
                      "eddy_declare_state: '%s' is not a keyed process "
                      "operator (eddy_process or eddy_co_process)",
                      op->s_name);
        return -1;
    }
    if (desc == NULL || desc->name == NULL || desc->name[0] == '\0') {
        eddy_env_fail(env, "eddy_declare_state: the state needs a name");
        return -1;
    }
    if ((unsigned)desc->kind > EDDY_STATE_AGGREGATING) {
        eddy_env_fail(env,
                      "eddy_declare_state: state '%s' has an unknown "
                      "kind %d",
                      desc->name, (int)desc->kind);
        return -1;
    }
    if (desc->ttl_ms < 0) {
        eddy_env_fail(env, "eddy_declare_state: state '%s' has a negative TTL",
                      desc->name);
        return -1;
    }
    if (desc->kind == EDDY_STATE_REDUCING && desc->reduce == NULL) {
        eddy_env_fail(env,
                      "eddy_declare_state: reducing state '%s' needs a "
                      "reduce function",
                      desc->name);
        return -1;
    }
    if (desc->kind == EDDY_STATE_AGGREGATING &&
        !eddy__aggregate_usable(desc->aggregate)) {
        eddy_env_fail(env,
                      "eddy_declare_state: aggregating state '%s' needs "
                      "an aggregate with acc_size, add and result",
                      desc->name);
        return -1;
    }
    for (int i = 0; i < op->s_nstates; i++) {
        if (strcmp(op->s_states[i].name, desc->name) == 0) {
            eddy_env_fail(env,
                          "eddy_declare_state: '%s' already has a state "
                          "named '%s'",
                          op->s_name, desc->name);
            return -1;
        }
    }
    eddy__arena_t *ar = &env->e_arena;
    eddy_state_desc_t *arr =
        eddy__arena_alloc(ar, sizeof(*arr) * (size_t)(op->s_nstates + 1));
    if (op->s_nstates > 0) {
        memcpy(arr, op->s_states, sizeof(*arr) * (size_t)op->s_nstates);
    }
    eddy_state_desc_t *d = &arr[op->s_nstates];
    *d = *desc;
    d->name = eddy__arena_strdup(ar, desc->name);
    if (d->serializer == NULL) {
        d->serializer = &ser_bytes;
    }
    if (d->key_serializer == NULL) {
        d->key_serializer = &ser_bytes;
    }
    if (desc->aggregate != NULL) {
        d->aggregate =
            eddy__arena_memdup(ar, desc->aggregate, sizeof(*desc->aggregate));
    }
    op->s_states = arr;
    return op->s_nstates++;
}

int eddy_side_output_id(eddy_stream_t *op, const char *name)
{
    if (op == NULL) {
        return -1;
    }
    eddy_env_t *env = op->s_env;
    if (op->s_kind != EDDY__NODE_OPERATOR) {
        eddy_env_fail(env, "eddy_side_output: '%s' is not an operator",
                      op->s_name);
        return -1;
    }
    if (name == NULL || name[0] == '\0') {
        eddy_env_fail(env, "eddy_side_output: the side output needs a name");
        return -1;
    }
    for (int i = 0; i < op->s_ntags; i++) {
        if (strcmp(op->s_tags[i], name) == 0) {
            return i;
        }
    }
    eddy__arena_t *ar = &env->e_arena;
    char **tags = eddy__arena_alloc(ar, sizeof(char *) * (op->s_ntags + 1));
    if (op->s_ntags > 0) {
        memcpy(tags, op->s_tags, sizeof(char *) * op->s_ntags);
    }
    tags[op->s_ntags] = eddy__arena_strdup(ar, name);
    op->s_tags = tags;
    return op->s_ntags++;
}

eddy_stream_t *eddy_side_output(eddy_stream_t *op, const char *name)
{
    int tag = eddy_side_output_id(op, name);
    if (tag < 0) {
        return NULL;
    }
    eddy_stream_t *s = eddy__node_virtual(op->s_env, EDDY__NODE_SIDE, &op, 1);
    if (s != NULL) {
        s->s_tag = tag;
        char nm[300];
        snprintf(nm, sizeof(nm), "%s [%s]", op->s_name, name);
        s->s_name = eddy__arena_strdup(&op->s_env->e_arena, nm);
        s->s_keyed_out = false;
    }
    return s;
}

int eddy_collect_side(eddy_ctx_t *ctx, int tag, const eddy_record_t *rec)
{
    eddy__op_t *op = ctx->cx_op;
    if (tag < 0 || tag >= op->op_nside) {
        return eddy_ctx_fail(ctx,
                             "eddy_collect_side: no side output with id "
                             "%d (declare it with eddy_side_output_id)",
                             tag);
    }
    return eddy_collect(&op->op_side[tag], rec);
}

/* ---- state access ---- */

static int state_check(eddy_ctx_t *ctx, int id, int kind, const char *api)
{
    eddy__op_t *op = ctx->cx_op;
    if (EDDY_UNLIKELY(ctx->cx_state == NULL || !ctx->cx_has_key)) {
        return eddy_ctx_fail(ctx,
                             "%s: keyed state is only available in keyed "
                             "process functions",
                             api);
    }
    if (EDDY_UNLIKELY(id < 0 || id >= op->op_node->s_nstates)) {
        return eddy_ctx_fail(ctx, "%s: no state with id %d", api, id);
    }
    int have = op->op_node->s_states[id].kind;
    bool ok = kind == have ||
              (kind == EDDY_STATE_VALUE && (have == EDDY_STATE_REDUCING));
    if (EDDY_UNLIKELY(!ok && kind >= 0)) {
        return eddy_ctx_fail(ctx, "%s: state '%s' is not of that kind", api,
                             op->op_node->s_states[id].name);
    }
    return 0;
}

static int check_size(eddy_ctx_t *ctx, const eddy_serializer_t *ser, size_t len,
                      const char *state)
{
    if (ser->fixed_size != 0 && len != ser->fixed_size) {
        return eddy_ctx_fail(ctx,
                             "state '%s' (%s) takes %zu-byte values, got "
                             "%zu bytes",
                             state, ser->name, ser->fixed_size, len);
    }
    return 0;
}

#define KS(ctx) ((ctx)->cx_state)
#define OPS(ctx) ((ctx)->cx_state->ks_ops)
#define DESC(ctx, id) (&(ctx)->cx_op->op_node->s_states[id])

int eddy_value_get(eddy_ctx_t *ctx, int id, const void **v, size_t *len)
{
    int rc = state_check(ctx, id, EDDY_STATE_VALUE, "eddy_value_get");
    if (rc != 0) {
        return rc;
    }
    return OPS(ctx)->ko_get(KS(ctx), id, &ctx->cx_key, v, len);
}

int eddy_value_set(eddy_ctx_t *ctx, int id, const void *v, size_t len)
{
    int rc = state_check(ctx, id, EDDY_STATE_VALUE, "eddy_value_set");
    if (rc == 0 && DESC(ctx, id)->kind != EDDY_STATE_VALUE) {
        rc = eddy_ctx_fail(ctx,
                           "eddy_value_set: state '%s' is not a value "
                           "state",
                           DESC(ctx, id)->name);
    }
    if (rc == 0) {
        rc = check_size(ctx, DESC(ctx, id)->serializer, len,
                        DESC(ctx, id)->name);
    }
    return rc != 0 ? rc : OPS(ctx)->ko_put(KS(ctx), id, &ctx->cx_key, v, len);
}

int eddy_state_clear(eddy_ctx_t *ctx, int id)
{
    int rc = state_check(ctx, id, -1, "eddy_state_clear");
    return rc != 0 ? rc : OPS(ctx)->ko_remove(KS(ctx), id, &ctx->cx_key);
}

int eddy_list_add(eddy_ctx_t *ctx, int id, const void *v, size_t len)
{
    int rc = state_check(ctx, id, EDDY_STATE_LIST, "eddy_list_add");
    if (rc == 0) {
        rc = check_size(ctx, DESC(ctx, id)->serializer, len,
                        DESC(ctx, id)->name);
    }
    return rc != 0 ? rc
                   : OPS(ctx)->ko_list_add(KS(ctx), id, &ctx->cx_key, v, len);
}

int eddy_list_iter(eddy_ctx_t *ctx, int id, eddy_state_iter_t *it)
{
    int rc = state_check(ctx, id, EDDY_STATE_LIST, "eddy_list_iter");
    if (rc != 0) {
        return rc;
    }
    memset(it, 0, sizeof(*it));
    it->impl[5] = (void *)OPS(ctx);
    return OPS(ctx)->ko_list_iter(KS(ctx), id, &ctx->cx_key,
                                  (eddy__siter_t *)it);
}

int eddy_list_next(eddy_state_iter_t *it, const void **v, size_t *len)
{
    const eddy__kstate_ops_t *ops = it->impl[5];
    return ops == NULL ? 0 : ops->ko_list_next((eddy__siter_t *)it, v, len);
}

int eddy_map_put(eddy_ctx_t *ctx, int id, const void *k, size_t kl,
                 const void *v, size_t vl)
{
    int rc = state_check(ctx, id, EDDY_STATE_MAP, "eddy_map_put");
    if (rc == 0) {
        rc = check_size(ctx, DESC(ctx, id)->key_serializer, kl,
                        DESC(ctx, id)->name);
    }
    if (rc == 0) {
        rc =
            check_size(ctx, DESC(ctx, id)->serializer, vl, DESC(ctx, id)->name);
    }
    return rc != 0
               ? rc
               : OPS(ctx)->ko_map_put(KS(ctx), id, &ctx->cx_key, k, kl, v, vl);
}

int eddy_map_get(eddy_ctx_t *ctx, int id, const void *k, size_t kl,
                 const void **v, size_t *vl)
{
    int rc = state_check(ctx, id, EDDY_STATE_MAP, "eddy_map_get");
    return rc != 0
               ? rc
               : OPS(ctx)->ko_map_get(KS(ctx), id, &ctx->cx_key, k, kl, v, vl);
}

int eddy_map_remove(eddy_ctx_t *ctx, int id, const void *k, size_t kl)
{
    int rc = state_check(ctx, id, EDDY_STATE_MAP, "eddy_map_remove");
    return rc != 0 ? rc
                   : OPS(ctx)->ko_map_remove(KS(ctx), id, &ctx->cx_key, k, kl);
}

int eddy_map_iter(eddy_ctx_t *ctx, int id, eddy_state_iter_t *it)
{
    int rc = state_check(ctx, id, EDDY_STATE_MAP, "eddy_map_iter");
    if (rc != 0) {
        return rc;
    }
    memset(it, 0, sizeof(*it));
    it->impl[5] = (void *)OPS(ctx);
    return OPS(ctx)->ko_map_iter(KS(ctx), id, &ctx->cx_key,
                                 (eddy__siter_t *)it);
}

int eddy_map_next(eddy_state_iter_t *it, const void **k, size_t *kl,
                  const void **v, size_t *vl)
{
    const eddy__kstate_ops_t *ops = it->impl[5];
    return ops == NULL ? 0
                       : ops->ko_map_next((eddy__siter_t *)it, k, kl, v, vl);
}

int eddy_reducing_add(eddy_ctx_t *ctx, int id, const void *v, size_t len)
{
    int rc = state_check(ctx, id, EDDY_STATE_REDUCING, "eddy_reducing_add");
    if (rc != 0) {
        return rc;
    }
    const eddy_state_desc_t *d = DESC(ctx, id);
    if ((rc = check_size(ctx, d->serializer, len, d->name)) != 0) {
        return rc;
    }
    const void *cur;
    size_t curlen;
    rc = OPS(ctx)->ko_get(KS(ctx), id, &ctx->cx_key, &cur, &curlen);
    if (rc < 0) {
        return rc;
    }
    if (rc == 0) {
        return OPS(ctx)->ko_put(KS(ctx), id, &ctx->cx_key, v, len);
    }
    size_t klen;
    const void *key = eddy_ctx_key(ctx, &klen);
    eddy_record_t acc = {key, klen, cur, curlen, EDDY_TS_NONE};
    eddy_record_t in = {key, klen, v, len, EDDY_TS_NONE};
    eddy_record_t out = in;
    rc = d->reduce(ctx, &acc, &in, &out, d->reduce_opaque);
    if (rc != 0) {
        return rc;
    }
    if ((rc = check_size(ctx, d->serializer, out.value_len, d->name)) != 0) {
        return rc;
    }
    return OPS(ctx)->ko_put(KS(ctx), id, &ctx->cx_key, out.value,
                            out.value_len);
}

int eddy_aggregating_add(eddy_ctx_t *ctx, int id, const eddy_record_t *rec)
{
    int rc =
        state_check(ctx, id, EDDY_STATE_AGGREGATING, "eddy_aggregating_add");
    if (rc != 0) {
        return rc;
    }
    const eddy_aggregate_t *agg = DESC(ctx, id)->aggregate;
    const void *cur;
    size_t curlen;
    rc = OPS(ctx)->ko_get(KS(ctx), id, &ctx->cx_key, &cur, &curlen);
    if (rc < 0) {
        return rc;
    }
    /* Work on a scratch copy so the backend sees one put per add. */
    unsigned char *acc = eddy_ctx_scratch(ctx, agg->acc_size);
    if (acc == NULL) {
        return eddy_ctx_fail(ctx, "out of memory");
    }
    if (rc == 1 && curlen == agg->acc_size) {
        memcpy(acc, cur, agg->acc_size);
    } else {
        memset(acc, 0, agg->acc_size);
        if (agg->init != NULL) {
            agg->init(acc, agg->opaque);
        }
    }
    rc = agg->add(ctx, acc, rec, agg->opaque);
    if (rc != 0) {
        return rc;
    }
    return OPS(ctx)->ko_put(KS(ctx), id, &ctx->cx_key, acc, agg->acc_size);
}

int eddy_aggregating_get(eddy_ctx_t *ctx, int id, eddy_record_t *out)
{
    int rc =
        state_check(ctx, id, EDDY_STATE_AGGREGATING, "eddy_aggregating_get");
    if (rc != 0) {
        return rc;
    }
    const eddy_aggregate_t *agg = DESC(ctx, id)->aggregate;
    const void *cur;
    size_t curlen;
    rc = OPS(ctx)->ko_get(KS(ctx), id, &ctx->cx_key, &cur, &curlen);
    if (rc <= 0) {
        return rc;
    }
    out->key = ctx->cx_key.sk_key;
    out->key_len = ctx->cx_key.sk_klen;
    rc = agg->result(ctx, cur, out, agg->opaque);
    return rc != 0 ? rc : 1;
}

const void *eddy_ctx_key(const eddy_ctx_t *ctx, size_t *len)
{
    if (!ctx->cx_has_key) {
        if (len != NULL) {
            *len = 0;
        }
        return NULL;
    }
    if (len != NULL) {
        *len = ctx->cx_key.sk_klen;
    }
    return ctx->cx_key.sk_key;
}

int eddy_timer_register(eddy_ctx_t *ctx, eddy_time_domain_t domain, int64_t ts)
{
    if (ctx->cx_timers == NULL || !ctx->cx_has_key) {
        return eddy_ctx_fail(ctx, "eddy_timer_register: timers are only "
                                  "available in keyed process functions");
    }
    int dom =
        domain == EDDY_EVENT_TIME ? EDDY__TIME_EVENT : EDDY__TIME_PROCESSING;
    int rc = eddy__timers_add(ctx->cx_timers, dom, ts, &ctx->cx_key);
    if (rc != 0) {
        return eddy_ctx_fail(ctx, "out of memory registering a timer");
    }
    if (dom == EDDY__TIME_PROCESSING) {
        eddy__op_t *op = ctx->cx_op;
        if (ts < op->op_next_tick_ms) {
            op->op_next_tick_ms = ts;
            eddy__task_update_tick(op->op_task);
        }
    }
    return 0;
}

int eddy_timer_delete(eddy_ctx_t *ctx, eddy_time_domain_t domain, int64_t ts)
{
    if (ctx->cx_timers == NULL || !ctx->cx_has_key) {
        return eddy_ctx_fail(ctx, "eddy_timer_delete: timers are only "
                                  "available in keyed process functions");
    }
    int dom =
        domain == EDDY_EVENT_TIME ? EDDY__TIME_EVENT : EDDY__TIME_PROCESSING;
    return eddy__timers_delete(ctx->cx_timers, dom, ts, &ctx->cx_key);
}

/* ---- the keyed process operator ---- */

#define TTL_TICK_MS 100

typedef struct proc_state {
    eddy__kstate_t *ks;
    eddy__timers_t *timers;
    eddy__state_spec_t *specs;
    bool ttl;
    int max_par;
    unsigned char *keybuf; /* the firing timer's key and namespace */
    size_t keycap;
} proc_state_t;

static int proc_open(eddy__op_t *op)
{
    const eddy_stream_t *n = op->op_node;
    proc_state_t *ps = eddy__calloc(1, sizeof(*ps));
    op->op_data = ps;
    ps->max_par = n->s_env->e_max_parallelism;
    int first, last;
    eddy__key_group_range(op->op_ctx.cx_subtask, ps->max_par,
                          op->op_ctx.cx_parallelism, &first, &last);
    ps->specs = eddy__calloc((size_t)n->s_nstates + 1, sizeof(*ps->specs));
    for (int i = 0; i < n->s_nstates; i++) {
        ps->specs[i].ss_name = n->s_states[i].name;
        ps->specs[i].ss_kind = n->s_states[i].kind;
        ps->specs[i].ss_ttl_ms = n->s_states[i].ttl_ms;
        ps->ttl |= n->s_states[i].ttl_ms > 0;
    }
    EDDY_UNUSED(first);
    EDDY_UNUSED(last);
    int rc = eddy__op_kstate_new(op, ps->specs, n->s_nstates, &ps->ks);
    if (rc == 0) {
        rc = eddy__op_timers_new(op, &ps->timers);
    }
    if (rc != 0) {
        return rc;
    }
    int64_t now = eddy__now_ms();
    eddy__kstate_set_time(ps->ks, now);
    op->op_ctx.cx_state = ps->ks;
    op->op_ctx.cx_timers = ps->timers;
    if (ps->ttl) {
        op->op_next_tick_ms = EDDY_MIN(op->op_next_tick_ms, now + TTL_TICK_MS);
    }
    return 0;
}

static void proc_close(eddy__op_t *op)
{
    proc_state_t *ps = op->op_data;
    if (ps != NULL) {
        eddy__kstate_destroy(ps->ks);
        eddy__timers_destroy(ps->timers);
        free(ps->specs);
        free(ps->keybuf);
        free(ps);
        op->op_data = NULL;
    }
    op->op_ctx.cx_state = NULL;
    op->op_ctx.cx_timers = NULL;
}

static inline void set_key(eddy__op_t *op, const eddy_record_t *rec)
{
    proc_state_t *ps = op->op_data;
    eddy__skey_t *k = &op->op_ctx.cx_key;
    k->sk_key = rec->key;
    k->sk_klen = rec->key_len;
    k->sk_hash = eddy__hash64(rec->key, rec->key_len);
    k->sk_kg = eddy__key_group(k->sk_hash, ps->max_par);
    k->sk_ns = NULL;
    k->sk_nslen = 0;
    op->op_ctx.cx_has_key = true;
}

static int proc_process_port(eddy__op_t *op, const eddy_record_t *rec, int port)
{
    proc_state_t *ps = op->op_data;
    if (ps->ttl) {
        /* TTL is measured per access, not per tick (up to TTL_TICK_MS off). */
        eddy__kstate_set_time(ps->ks, eddy__now_ms());
    }
    set_key(op, rec);
    eddy__op_enter(op);
    int rc;
    if (op->op_class == &eddy__process_class) {
        const eddy_process_fn_t *fn = op->op_node->s_config;
        rc = fn->process(&op->op_ctx, rec, &op->op_out, fn->opaque);
    } else {
        const eddy_co_process_fn_t *fn = op->op_node->s_config;
        rc = port == 0
                 ? fn->process1(&op->op_ctx, rec, &op->op_out, fn->opaque)
                 : fn->process2(&op->op_ctx, rec, &op->op_out, fn->opaque);
    }
    op->op_ctx.cx_has_key = false;
    return rc != 0 ? eddy__op_user_rc(op, rc) : 0;
}

static int proc_process(void *opv, const eddy_record_t *rec)
{
    return proc_process_port(opv, rec, 0);
}

static int proc_process2(void *opv, const eddy_record_t *rec)
{
    return proc_process_port(opv, rec, 1);
}

/*
 * Makes a fired timer's key current. The timer's key and namespace point
 * into the timer service's entry, which its next call recycles (timers.h),
 * and on_timer may register or delete timers: copy them, so the current key
 * stays valid for the whole callback.
 */
static int timer_key(eddy__op_t *op, proc_state_t *ps, const eddy__timer_t *tm)
{
    const eddy__skey_t *k = &tm->tm_key;
    size_t need = k->sk_klen + k->sk_nslen;
    if (need > ps->keycap) {
        unsigned char *p = eddy__try_realloc(ps->keybuf, need);
        if (p == NULL) {
            return eddy__op_fail(op, EDDY_ERR_NOMEM, "out of memory");
        }
        ps->keybuf = p;
        ps->keycap = need;
    }
    eddy__skey_t *ck = &op->op_ctx.cx_key;
    *ck = *k;
    if (k->sk_klen > 0) {
        memcpy(ps->keybuf, k->sk_key, k->sk_klen);
        ck->sk_key = ps->keybuf;
    }
    if (k->sk_nslen > 0) {
        memcpy(ps->keybuf + k->sk_klen, k->sk_ns, k->sk_nslen);
        ck->sk_ns = ps->keybuf + k->sk_klen;
    }
    return 0;
}

static int fire(eddy__op_t *op, int domain, int64_t limit)
{
    proc_state_t *ps = op->op_data;
    int (*on_timer)(eddy_ctx_t *, int64_t, eddy_time_domain_t,
                    eddy_collector_t *, void *);
    void *opaque;
    if (op->op_class == &eddy__process_class) {
        const eddy_process_fn_t *fn = op->op_node->s_config;
        on_timer = fn->on_timer;
        opaque = fn->opaque;
    } else {
        const eddy_co_process_fn_t *fn = op->op_node->s_config;
        on_timer = fn->on_timer;
        opaque = fn->opaque;
    }
    eddy__timer_t tm;
    while (eddy__timers_pop(ps->timers, domain, limit, &tm) == 1) {
        if (on_timer == NULL) {
            continue;
        }
        int rc = timer_key(op, ps, &tm);
        if (rc != 0) {
            return rc;
        }
        if (ps->ttl && domain == EDDY__TIME_EVENT) {
            eddy__kstate_set_time(ps->ks, eddy__now_ms());
        }
        op->op_ctx.cx_has_key = true;
        eddy__op_enter(op);
        rc = on_timer(&op->op_ctx, tm.tm_ts,
                      domain == EDDY__TIME_EVENT ? EDDY_EVENT_TIME
                                                 : EDDY_PROCESSING_TIME,
                      &op->op_out, opaque);
        op->op_ctx.cx_has_key = false;
        if (rc != 0) {
            return eddy__op_user_rc(op, rc);
        }
    }
    return 0;
}

static int proc_watermark(eddy__op_t *op, int64_t wm)
{
    int rc = fire(op, EDDY__TIME_EVENT, wm);
    return rc != 0 ? rc : eddy__op_forward_watermark(op, wm);
}

static int proc_tick(eddy__op_t *op, int64_t now)
{
    proc_state_t *ps = op->op_data;
    eddy__kstate_set_time(ps->ks, now);
    int rc = fire(op, EDDY__TIME_PROCESSING, now);
    int64_t next = eddy__timers_next(ps->timers, EDDY__TIME_PROCESSING);
    if (ps->ttl && next > now + TTL_TICK_MS) {
        next = now + TTL_TICK_MS;
    }
    op->op_next_tick_ms = next;
    return rc;
}

const eddy__op_class_t eddy__process_class = {
    .oc_kind = "Process",
    .oc_keyed_input = true,
    .oc_inputs = 1,
    .oc_open = proc_open,
    .oc_process = proc_process,
    .oc_watermark = proc_watermark,
    .oc_tick = proc_tick,
    .oc_close = proc_close,
};

const eddy__op_class_t eddy__co_process_class = {
    .oc_kind = "CoProcess",
    .oc_keyed_input = true,
    .oc_inputs = 2,
    .oc_open = proc_open,
    .oc_process = proc_process,
    .oc_process2 = proc_process2,
    .oc_watermark = proc_watermark,
    .oc_tick = proc_tick,
    .oc_close = proc_close,
};

eddy_stream_t *eddy_process(eddy_stream_t *keyed, const eddy_process_fn_t *fn)
{
    if (keyed == NULL) {
        return NULL;
    }
    if (fn == NULL || fn->process == NULL) {
        eddy_env_fail(keyed->s_env, "eddy_process: the process function must "
                                    "not be NULL");
        return NULL;
    }
    eddy_stream_t *s =
        eddy__node_add(keyed->s_env, &eddy__process_class, &keyed, 1);
    if (s != NULL) {
        s->s_config =
            eddy__arena_memdup(&keyed->s_env->e_arena, fn, sizeof(*fn));
    }
    return s;
}

eddy_stream_t *eddy_co_process(eddy_stream_t *keyed1, eddy_stream_t *keyed2,
                               const eddy_co_process_fn_t *fn)
{
    if (keyed1 == NULL || keyed2 == NULL) {
        return NULL;
    }
    if (fn == NULL || fn->process1 == NULL || fn->process2 == NULL) {
        eddy_env_fail(keyed1->s_env, "eddy_co_process: process1 and process2 "
                                     "must not be NULL");
        return NULL;
    }
    eddy_stream_t *in[2] = {keyed1, keyed2};
    eddy_stream_t *s =
        eddy__node_add(keyed1->s_env, &eddy__co_process_class, in, 2);
    if (s != NULL) {
        s->s_config =
            eddy__arena_memdup(&keyed1->s_env->e_arena, fn, sizeof(*fn));
    }
    return s;
}
