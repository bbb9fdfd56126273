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
