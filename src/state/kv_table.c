/*
 * eddy — the heap key/value table (see kv_table.h for the design).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include <stdlib.h>

#include "state/kv_table.h"

#define INITIAL_CAPACITY 1024

void eddy__kv_init(eddy__kv_table_t *kt)
{
    memset(kt, 0, sizeof(*kt));
    eddy__arena_init(&kt->kt_arena, 256 * 1024);
}

void eddy__kv_close(eddy__kv_table_t *kt)
{
    free(kt->kt_slots);
    eddy__arena_close(&kt->kt_arena);
    memset(kt, 0, sizeof(*kt));
}

static int resize(eddy__kv_table_t *kt)
{
    size_t ncap = kt->kt_slots ? (kt->kt_mask + 1) * 2 : INITIAL_CAPACITY;
    eddy__kv_entry_t *ns = calloc(ncap, sizeof(*ns));
    if (ns == NULL) {
        return EDDY_ERR_NOMEM;
    }
    size_t nmask = ncap - 1;
    if (kt->kt_slots != NULL) {
        for (size_t i = 0; i <= kt->kt_mask; i++) {
            eddy__kv_entry_t *e = &kt->kt_slots[i];
            if (e->kv_data == NULL) {
                continue;
            }
            size_t j = e->kv_hash & nmask;
            while (ns[j].kv_data != NULL) {
                j = (j + 1) & nmask;
            }
            ns[j] = *e;
        }
        free(kt->kt_slots);
    }
    kt->kt_slots = ns;
    kt->kt_mask = nmask;
    return 0;
}

/* Keys are usually short (ids, words): compare them inline in 8-byte words
 * rather than through a memcmp call. */
static inline bool bytes_equal(const unsigned char *a, const unsigned char *b,
                               size_t n)
{
    while (n >= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) {
            return false;
        }
        a += 8;
        b += 8;
        n -= 8;
    }
    while (n > 0) {
        if (*a++ != *b++) {
            return false;
        }
        n--;
    }
    return true;
}

static inline bool same_key(const eddy__kv_entry_t *e, uint64_t hash,
                            const void *key, size_t klen)
{
    return e->kv_hash == hash && e->kv_klen == klen &&
           bytes_equal(e->kv_data, key, klen);
}

eddy__kv_entry_t *eddy__kv_find(eddy__kv_table_t *kt, uint64_t hash,
                                const void *key, size_t klen)
{
    if (kt->kt_slots == NULL) {
        return NULL;
    }
    size_t i = hash & kt->kt_mask;
    for (;;) {
        eddy__kv_entry_t *e = &kt->kt_slots[i];
        if (e->kv_data == NULL) {
            return NULL;
        }
        if (same_key(e, hash, key, klen)) {
            return e;
        }
        i = (i + 1) & kt->kt_mask;
    }
}

eddy__kv_entry_t *eddy__kv_upsert(eddy__kv_table_t *kt, uint64_t hash,
                                  const void *key, size_t klen, size_t vcap,
                                  bool *created)
{
    if (EDDY_UNLIKELY(kt->kt_slots == NULL ||
                      (kt->kt_count + 1) * 2 > kt->kt_mask + 1)) {
        if (resize(kt) != 0) {
            return NULL;
        }
    }
    size_t i = hash & kt->kt_mask;
    for (;;) {
        eddy__kv_entry_t *e = &kt->kt_slots[i];
        if (e->kv_data == NULL) {
            break;
        }
        if (EDDY_LIKELY(same_key(e, hash, key, klen))) {
            *created = false;
            return e;
        }
        i = (i + 1) & kt->kt_mask;
    }
    if (klen > UINT32_MAX || vcap > UINT32_MAX) {
        return NULL;
    }
    unsigned char *data = eddy__arena_alloc(&kt->kt_arena, klen + vcap);
    if (data == NULL) {
        return NULL;
    }
    memcpy(data, key, klen);
    memset(data + klen, 0, vcap);
    eddy__kv_entry_t *e = &kt->kt_slots[i];
    e->kv_hash = hash;
    e->kv_data = data;
    e->kv_klen = (uint32_t)klen;
    e->kv_vlen = 0;
    e->kv_vcap = (uint32_t)vcap;
    kt->kt_count++;
    *created = true;
    return e;
}

int eddy__kv_set_value(eddy__kv_table_t *kt, eddy__kv_entry_t *e,
                       const void *value, size_t vlen)
{
    if (vlen > UINT32_MAX - e->kv_klen) {
        return EDDY_ERR_INVALID;
    }
    if (vlen > e->kv_vcap) {
        /* Move key and value to a bigger home; leave headroom to grow. */
        size_t cap = vlen < 64 ? 64 : vlen + vlen / 2;
        unsigned char *data =
            eddy__arena_alloc(&kt->kt_arena, e->kv_klen + cap);
        if (data == NULL) {
            return EDDY_ERR_NOMEM;
        }
        memcpy(data, e->kv_data, e->kv_klen);
        e->kv_data = data;
        e->kv_vcap = (uint32_t)cap;
    }
    /* memmove: the new value may be computed from the old one in place. */
    if (vlen > 0) { /* an empty value may be NULL */
        memmove(e->kv_data + e->kv_klen, value, vlen);
    }
    e->kv_vlen = (uint32_t)vlen;
    return 0;
}
