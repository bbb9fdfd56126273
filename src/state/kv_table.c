/*
 * eddy — the heap key/value table (see kv_table.h for the design).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include <stdlib.h>

#include "state/kv_table.h"

#define INITIAL_CAPACITY 1024
#define MIN_CHUNK 64
#define MAX_CHUNK (256 * 1024)

_Static_assert(sizeof(eddy__kv_entry_t) == 64, "a slot is one cache line");

static inline bool entry_inline(const eddy__kv_entry_t *e)
{
    return e->kv_data == e->kv_inline;
}

/* The bytes an entry holds: its arena allocation (key, then value
 * capacity), rounded the way eddy__arena_alloc rounds, or its inline area. */
static inline size_t entry_bytes(const eddy__kv_entry_t *e)
{
    return entry_inline(e)
               ? EDDY__KV_INLINE
               : (((size_t)e->kv_klen + e->kv_vcap) + 7) & ~(size_t)7;
}

/* Copies the entry in `src` to `dst` (another slot): inline bytes come
 * along, so the copy's kv_data must point at its own. */
static inline void entry_copy(eddy__kv_entry_t *dst,
                              const eddy__kv_entry_t *src)
{
    *dst = *src;
    if (entry_inline(src)) {
        dst->kv_data = dst->kv_inline;
    }
}

/* Slot arrays are aligned to cache lines, so a slot is one line. calloc
 * with one slot of slack rather than aligned_alloc and memset: calloc gets
 * big arrays from the kernel already zeroed, without touching them. *mem is
 * what to free. */
static eddy__kv_entry_t *slots_new(size_t n, void **mem)
{
    void *p = calloc(n + 1, sizeof(eddy__kv_entry_t));
    *mem = p;
    if (p == NULL) {
        return NULL;
    }
    return (eddy__kv_entry_t *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

void eddy__kv_init(eddy__kv_table_t *kt)
{
    memset(kt, 0, sizeof(*kt));
    kt->kt_init_cap = INITIAL_CAPACITY;
    eddy__arena_init(&kt->kt_arena, MAX_CHUNK);
}

void eddy__kv_set_inline(eddy__kv_table_t *kt)
{
    kt->kt_inline = true;
}

void eddy__kv_init_sized(eddy__kv_table_t *kt, size_t slots, size_t chunk)
{
    memset(kt, 0, sizeof(*kt));
    size_t cap = 2;
    while (cap < slots) {
        cap *= 2;
    }
    kt->kt_init_cap = cap;
    chunk = (chunk + 7) & ~(size_t)7;
    eddy__arena_init(&kt->kt_arena,
                     EDDY_MAX(MIN_CHUNK, EDDY_MIN(chunk, MAX_CHUNK)));
}

/* Arena allocation for entries. Small tables start with small chunks and
 * double them as the arena fills, so a table costs memory in proportion to
 * its contents; tables from eddy__kv_init start at the maximum. */
static void *kv_alloc(eddy__kv_table_t *kt, size_t size)
{
    eddy__arena_t *ar = &kt->kt_arena;
    if (EDDY_UNLIKELY(ar->ar_chunk_size < MAX_CHUNK &&
                      ar->ar_bytes >= ar->ar_chunk_size * 2)) {
        ar->ar_chunk_size = EDDY_MIN(ar->ar_chunk_size * 2, MAX_CHUNK);
    }
    return eddy__arena_alloc(ar, size);
}

void eddy__kv_close(eddy__kv_table_t *kt)
{
    free(kt->kt_slots_mem);
    eddy__arena_close(&kt->kt_arena);
    memset(kt, 0, sizeof(*kt));
}

static int resize(eddy__kv_table_t *kt)
{
    size_t ncap = kt->kt_slots      ? (kt->kt_mask + 1) * 2
                  : kt->kt_init_cap ? kt->kt_init_cap
                                    : INITIAL_CAPACITY;
    void *mem;
    eddy__kv_entry_t *ns = slots_new(ncap, &mem);
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
            entry_copy(&ns[j], e);
        }
        free(kt->kt_slots_mem);
    }
    kt->kt_slots = ns;
    kt->kt_slots_mem = mem;
    kt->kt_mask = nmask;
    return 0;
}

/* Gives the new entry in slot e its bytes: inline if the table allows and
 * they fit, else in the arena. Sets kv_data and kv_vcap (at least vcap);
 * zeroes the value space. */
static inline bool entry_space(eddy__kv_table_t *kt, eddy__kv_entry_t *e,
                               size_t klen, size_t vcap)
{
    if (kt->kt_inline && klen + vcap <= EDDY__KV_INLINE) {
        e->kv_data = e->kv_inline;
        e->kv_vcap = (uint32_t)(EDDY__KV_INLINE - klen);
        kt->kt_inl_bytes += EDDY__KV_INLINE;
        /* All of it (a constant size: a few stores, no call); the caller
         * writes the key over the start. */
        memset(e->kv_inline, 0, EDDY__KV_INLINE);
        return true;
    }
    unsigned char *data = kv_alloc(kt, klen + vcap);
    if (data == NULL) {
        return false;
    }
    memset(data + klen, 0, vcap);
    e->kv_data = data;
    e->kv_vcap = (uint32_t)vcap;
    return true;
}

static inline bool same_key(const eddy__kv_entry_t *e, uint64_t hash,
                            const void *key, size_t klen)
{
    return e->kv_hash == hash && e->kv_klen == klen &&
           eddy__kv_bytes_equal(e->kv_data, key, klen);
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
    eddy__kv_entry_t *e = &kt->kt_slots[i];
    if (!entry_space(kt, e, klen, vcap)) {
        return NULL;
    }
    memcpy(e->kv_data, key, klen);
    e->kv_hash = hash;
    e->kv_klen = (uint32_t)klen;
    e->kv_vlen = 0;
    kt->kt_count++;
    *created = true;
    return e;
}

eddy__kv_entry_t *eddy__kv_insert(eddy__kv_table_t *kt, uint64_t hash,
                                  size_t klen, size_t vcap)
{
    if (klen > UINT32_MAX || vcap > UINT32_MAX) {
        return NULL;
    }
    if (EDDY_UNLIKELY(kt->kt_slots == NULL ||
                      (kt->kt_count + 1) * 2 > kt->kt_mask + 1)) {
        if (resize(kt) != 0) {
            return NULL;
        }
    }
    size_t i = hash & kt->kt_mask;
    while (kt->kt_slots[i].kv_data != NULL) {
        i = (i + 1) & kt->kt_mask;
    }
    eddy__kv_entry_t *e = &kt->kt_slots[i];
    if (!entry_space(kt, e, klen, vcap)) {
        return NULL;
    }
    e->kv_hash = hash;
    e->kv_klen = (uint32_t)klen;
    e->kv_vlen = 0;
    kt->kt_count++;
    return e;
}

/* Moves an entry's bytes to fresh arena space with room for a value of
 * `vlen` bytes plus headroom to grow, keeping the key and the first `keep`
 * value bytes. */
static int move_entry(eddy__kv_table_t *kt, eddy__kv_entry_t *e, size_t vlen,
                      size_t keep)
{
    size_t limit = UINT32_MAX - e->kv_klen;
    size_t cap = vlen < 64 ? 64 : vlen + vlen / 2;
    if (cap > limit) {
        cap = limit;
    }
    unsigned char *data = kv_alloc(kt, e->kv_klen + cap);
    if (data == NULL) {
        return EDDY_ERR_NOMEM;
    }
    memcpy(data, e->kv_data, e->kv_klen + keep);
    kt->kt_dead += entry_bytes(e);
    e->kv_data = data;
    e->kv_vcap = (uint32_t)cap;
    return 0;
}

int eddy__kv_set_value(eddy__kv_table_t *kt, eddy__kv_entry_t *e,
                       const void *value, size_t vlen)
{
    if (vlen > UINT32_MAX - e->kv_klen) {
        return EDDY_ERR_INVALID;
    }
    if (vlen > e->kv_vcap) {
        /* Move key and value to a bigger home; leave headroom to grow. The
         * old bytes stay valid, so `value` may point into them. */
        int rc = move_entry(kt, e, vlen, 0);
        if (rc != 0) {
            return rc;
        }
    }
    /* memmove: the new value may be computed from the old one in place. */
    if (vlen > 0) { /* an empty value may be NULL */
        memmove(e->kv_data + e->kv_klen, value, vlen);
    }
    e->kv_vlen = (uint32_t)vlen;
    return 0;
}

unsigned char *eddy__kv_reserve_value(eddy__kv_table_t *kt, eddy__kv_entry_t *e,
                                      size_t vlen)
{
    if (vlen > UINT32_MAX - e->kv_klen) {
        return NULL;
    }
    if (vlen > e->kv_vcap &&
        move_entry(kt, e, vlen, EDDY_MIN(vlen, e->kv_vlen)) != 0) {
        return NULL;
    }
    e->kv_vlen = (uint32_t)vlen;
    return e->kv_data + e->kv_klen;
}

void eddy__kv_remove_entry(eddy__kv_table_t *kt, eddy__kv_entry_t *e)
{
    eddy__kv_entry_t *slots = kt->kt_slots;
    size_t mask = kt->kt_mask;
    size_t hole = (size_t)(e - slots);
    kt->kt_dead += entry_bytes(e);
    kt->kt_count--;
    /* Backward shift: walk the probe run after the hole. An entry may fill
     * the hole unless its home slot lies cyclically in (hole, j], i.e. unless
     * it is closer to its home than the hole is; moving it leaves a new hole
     * at j. The run ends at the first empty slot. */
    for (size_t j = (hole + 1) & mask; slots[j].kv_data != NULL;
         j = (j + 1) & mask) {
        size_t home = slots[j].kv_hash & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            entry_copy(&slots[hole], &slots[j]);
            hole = j;
        }
    }
    memset(&slots[hole], 0, sizeof(slots[hole]));
}

int eddy__kv_remove(eddy__kv_table_t *kt, uint64_t hash, const void *key,
                    size_t klen)
{
    eddy__kv_entry_t *e = eddy__kv_find(kt, hash, key, klen);
    if (e == NULL) {
        return 0;
    }
    eddy__kv_remove_entry(kt, e);
    return 1;
}

int eddy__kv_compact(eddy__kv_table_t *kt)
{
    size_t chunk = kt->kt_arena.ar_chunk_size;
    if (kt->kt_count == 0) {
        free(kt->kt_slots_mem);
        kt->kt_slots = NULL;
        kt->kt_slots_mem = NULL;
        kt->kt_mask = 0;
        kt->kt_dead = 0;
        kt->kt_inl_bytes = 0;
        eddy__arena_close(&kt->kt_arena);
        eddy__arena_init(&kt->kt_arena, chunk);
        return 0;
    }
    size_t cap = kt->kt_init_cap ? kt->kt_init_cap : INITIAL_CAPACITY;
    while (cap < kt->kt_count * 4) {
        cap *= 2;
    }
    cap = EDDY_MIN(cap, kt->kt_mask + 1);
    /* What stays inline (an inline table takes in every entry that now
     * fits) and how many arena bytes the others need, so that one first
     * chunk holds them all. */
    size_t live = 0, inl = 0;
    for (size_t i = 0; i <= kt->kt_mask; i++) {
        const eddy__kv_entry_t *e = &kt->kt_slots[i];
        if (e->kv_data == NULL) {
            continue;
        }
        size_t n = (size_t)e->kv_klen + e->kv_vlen;
        if (kt->kt_inline && n <= EDDY__KV_INLINE) {
            inl += EDDY__KV_INLINE;
        } else {
            live += (n + 7) & ~(size_t)7;
        }
    }
    void *mem;
    eddy__kv_entry_t *ns = slots_new(cap, &mem);
    if (ns == NULL) {
        return EDDY_ERR_NOMEM;
    }
    eddy__arena_t na;
    eddy__arena_init(&na, EDDY_MAX(live, MIN_CHUNK));
    size_t nmask = cap - 1;
    for (size_t i = 0; i <= kt->kt_mask; i++) {
        eddy__kv_entry_t *e = &kt->kt_slots[i];
        if (e->kv_data == NULL) {
            continue;
        }
        size_t j = e->kv_hash & nmask;
        while (ns[j].kv_data != NULL) {
            j = (j + 1) & nmask;
        }
        eddy__kv_entry_t *ne = &ns[j];
        *ne = *e;
        size_t n = (size_t)e->kv_klen + e->kv_vlen;
        if (kt->kt_inline && n <= EDDY__KV_INLINE) {
            ne->kv_data = ne->kv_inline;
            ne->kv_vcap = (uint32_t)(EDDY__KV_INLINE - e->kv_klen);
        } else {
            ne->kv_data = eddy__arena_alloc(&na, n);
            ne->kv_vcap = e->kv_vlen;
            if (ne->kv_data == NULL) {
                free(mem);
                eddy__arena_close(&na);
                return EDDY_ERR_NOMEM;
            }
        }
        if (n > 0) {
            memcpy(ne->kv_data, e->kv_data, n);
        }
    }
    /* Later chunks grow in proportion to the table again (kv_alloc), from
     * at most the chunk size it had. */
    na.ar_chunk_size =
        EDDY_MIN(chunk, EDDY_MAX(MIN_CHUNK, (live / 2 + 7) & ~(size_t)7));
    free(kt->kt_slots_mem);
    eddy__arena_close(&kt->kt_arena);
    kt->kt_slots = ns;
    kt->kt_slots_mem = mem;
    kt->kt_mask = nmask;
    kt->kt_arena = na;
    kt->kt_dead = 0;
    kt->kt_inl_bytes = inl;
    return 0;
}
