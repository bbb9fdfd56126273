/*
 * eddy-bench — the user functions of the benchmark jobs (see workload.h).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Values are read with memcpy: records that crossed a channel point into a
 * network buffer and need not be 8-byte aligned.
 */
#include <string.h>

#include "workload.h"

/* splitmix64's finalizer: a good 64-bit mix in two multiplies. */
static inline uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* A bijection of 64-bit integers that spreads small ones over the range. */
static inline uint64_t spread(uint64_t x)
{
    x *= 0x9E3779B97F4A7C15ull;
    return x ^ (x >> 32);
}

/* Writes the 8-byte key `k` to scratch memory and points *key at it. */
static int put_key(eddy_ctx_t *ctx, const wl_opaque_t *wl, uint64_t k,
                   const void **key, size_t *key_len)
{
    void *p = wl->wl_scratch(ctx, WL_KEY_SIZE);
    if (p == NULL) {
        return eddy_ctx_fail(ctx, "out of scratch memory");
    }
    memcpy(p, &k, sizeof(k));
    *key = p;
    *key_len = WL_KEY_SIZE;
    return 0;
}

int wl_generate(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                void *opaque)
{
    const wl_opaque_t *wl = opaque;
    uint64_t v[2] = {index, mix64(index)};
    void *p = wl->wl_scratch(ctx, WL_VALUE_SIZE);
    if (p == NULL) {
        return eddy_ctx_fail(ctx, "out of scratch memory");
    }
    memcpy(p, v, sizeof(v));
    out->value = p;
    out->value_len = WL_VALUE_SIZE;
    return 0;
}

int wl_map(eddy_ctx_t *ctx, const eddy_record_t *in, eddy_record_t *out,
           void *opaque)
{
    const wl_opaque_t *wl = opaque;
    uint64_t v[2];
    if (in->value_len != WL_VALUE_SIZE) {
        return eddy_ctx_fail(ctx, "map: value of %zu bytes", in->value_len);
    }
    memcpy(v, in->value, sizeof(v));
    uint64_t x = v[1];
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 29;
    v[1] = x;
    void *p = wl->wl_scratch(ctx, WL_VALUE_SIZE);
    if (p == NULL) {
        return eddy_ctx_fail(ctx, "out of scratch memory");
    }
    memcpy(p, v, sizeof(v));
    out->value = p;
    out->value_len = WL_VALUE_SIZE;
    return 0;
}

int wl_filter(eddy_ctx_t *ctx, const eddy_record_t *in, void *opaque)
{
    (void)opaque;
    uint64_t payload;
    if (in->value_len != WL_VALUE_SIZE) {
        return eddy_ctx_fail(ctx, "filter: value of %zu bytes", in->value_len);
    }
    memcpy(&payload, (const unsigned char *)in->value + 8, sizeof(payload));
    return (payload & 3) != 0;
}

int wl_key(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
           size_t *key_len, void *opaque)
{
    const wl_opaque_t *wl = opaque;
    uint64_t index;
    if (in->value_len != WL_VALUE_SIZE) {
        return eddy_ctx_fail(ctx, "key: value of %zu bytes", in->value_len);
    }
    memcpy(&index, in->value, sizeof(index));
    /* Multiplying by an odd constant and xor-shifting are both bijections:
     * distinct indexes modulo nkeys give distinct, well-spread keys. */
    uint64_t k = (index % wl->wl_nkeys) * 0x9E3779B97F4A7C15ull;
    k ^= k >> 32;
    void *p = wl->wl_scratch(ctx, WL_KEY_SIZE);
    if (p == NULL) {
        return eddy_ctx_fail(ctx, "out of scratch memory");
    }
    memcpy(p, &k, sizeof(k));
    *key = p;
    *key_len = WL_KEY_SIZE;
    return 0;
}

int wl_generate_ts(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                   void *opaque)
{
    const wl_opaque_t *wl = opaque;
    int rc = wl_generate(ctx, index, out, opaque);
    if (rc == 0) {
        out->ts =
            wl->wl_ts_base + wl->wl_ts_shift + (int64_t)(index / wl->wl_per_ms);
    }
    return rc;
}

/* The payload (mix64 of the index) of a generated value. */
static inline int read_payload(eddy_ctx_t *ctx, const eddy_record_t *in,
                               uint64_t *payload)
{
    if (in->value_len != WL_VALUE_SIZE) {
        return eddy_ctx_fail(ctx, "key: value of %zu bytes", in->value_len);
    }
    memcpy(payload, (const unsigned char *)in->value + 8, sizeof(*payload));
    return 0;
}

int wl_key_mixed(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
                 size_t *key_len, void *opaque)
{
    const wl_opaque_t *wl = opaque;
    uint64_t payload = 0;
    int rc = read_payload(ctx, in, &payload);
    if (rc != 0) {
        return rc;
    }
    return put_key(ctx, wl, spread(payload % wl->wl_nkeys), key, key_len);
}

int wl_key_session(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
                   size_t *key_len, void *opaque)
{
    const wl_opaque_t *wl = opaque;
    uint64_t payload = 0;
    int rc = read_payload(ctx, in, &payload);
    if (rc != 0) {
        return rc;
    }
    uint64_t k = payload % wl->wl_nkeys;
    uint64_t period = (uint64_t)(in->ts - wl->wl_ts_base) / WL_IDLE_MS;
    if ((period + k) % (WL_CYCLE_MS / WL_IDLE_MS) == 0) {
        k = (k + 1) % wl->wl_nkeys; /* key k idles: its neighbour takes it */
    }
    return put_key(ctx, wl, spread(k), key, key_len);
}

int wl_key_id(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
              size_t *key_len, void *opaque)
{
    (void)opaque;
    if (in->value_len != WL_VALUE_SIZE) {
        return eddy_ctx_fail(ctx, "key: value of %zu bytes", in->value_len);
    }
    /* The index, in the record's own bytes. */
    *key = in->value;
    *key_len = WL_KEY_SIZE;
    return 0;
}

int wl_join(eddy_ctx_t *ctx, const eddy_record_t *left,
            const eddy_record_t *right, eddy_collector_t *out, void *opaque)
{
    const wl_opaque_t *wl = opaque;
    if (left->value_len != WL_VALUE_SIZE || right->value_len != WL_VALUE_SIZE) {
        return eddy_ctx_fail(ctx, "join: values of %zu and %zu bytes",
                             left->value_len, right->value_len);
    }
    unsigned char *p = wl->wl_scratch(ctx, WL_VALUE_SIZE);
    if (p == NULL) {
        return eddy_ctx_fail(ctx, "out of scratch memory");
    }
    memcpy(p, left->value, 8);
    memcpy(p + 8, (const unsigned char *)right->value + 8, 8);
    eddy_record_t rec = {left->key, left->key_len, p, WL_VALUE_SIZE,
                         EDDY_TS_NONE};
    return wl->wl_emit(out, &rec);
}

int wl_count(eddy_ctx_t *ctx, const eddy_record_t *in, void *opaque)
{
    wl_counter_t *wc = opaque;
    int sub = eddy_ctx_subtask(ctx);
    uint64_t v = 0;
    if (sub >= WL_MAX_SUBTASKS) {
        return eddy_ctx_fail(ctx, "count: subtask %d of at most %d", sub,
                             WL_MAX_SUBTASKS);
    }
    if (in->value_len >= sizeof(v)) {
        memcpy(&v, in->value, sizeof(v));
    }
    /* One writer per slot: plain load and store, no locked add. */
    atomic_store_explicit(
        &wc->wc_slot[sub].records,
        atomic_load_explicit(&wc->wc_slot[sub].records, memory_order_relaxed) +
            1,
        memory_order_relaxed);
    atomic_store_explicit(
        &wc->wc_slot[sub].sum,
        atomic_load_explicit(&wc->wc_slot[sub].sum, memory_order_relaxed) + v,
        memory_order_relaxed);
    return 1;
}
