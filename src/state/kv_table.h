/*
 * eddy — the heap key/value table behind keyed state.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. Open addressing with linear probing over an array of slots that
 * carry the full 64-bit key hash, so a probe compares the hash before
 * touching the key bytes (one cache miss per lookup in the common case).
 * Keys and values live in an arena: inserting a new key costs a pointer
 * bump, never a malloc per record. A value that outgrows its space moves to
 * fresh arena space (the old bytes are reclaimed when state is rebuilt).
 * The probe index uses the hash's low bits; key groups use its high bits
 * (eddy__key_group), so the two stay independent.
 *
 * THREADS. A table belongs to one subtask; no locking.
 */
#ifndef EDDY_STATE_KV_TABLE_H
#define EDDY_STATE_KV_TABLE_H

#include "common/internal.h"

typedef struct eddy__kv_entry {
    uint64_t kv_hash;
    unsigned char *kv_data; /* key bytes, then value bytes; NULL = empty */
    uint32_t kv_klen;
    uint32_t kv_vlen;
    uint32_t kv_vcap;
} eddy__kv_entry_t;

typedef struct eddy__kv_table {
    eddy__kv_entry_t *kt_slots;
    size_t kt_mask; /* capacity - 1 (power of two) */
    size_t kt_count;
    eddy__arena_t kt_arena;
} eddy__kv_table_t;

void eddy__kv_init(eddy__kv_table_t *kt);
void eddy__kv_close(eddy__kv_table_t *kt);

/*
 * Finds the entry of `key`, inserting it with `vcap` bytes of zeroed value
 * space (vlen 0) if absent; *created tells which. Returns NULL only on out of
 * memory. The entry pointer is valid until the next insertion.
 */
eddy__kv_entry_t *eddy__kv_upsert(eddy__kv_table_t *kt, uint64_t hash,
                                  const void *key, size_t klen, size_t vcap,
                                  bool *created);
/* Finds an entry or returns NULL. */
eddy__kv_entry_t *eddy__kv_find(eddy__kv_table_t *kt, uint64_t hash,
                                const void *key, size_t klen);
/* Replaces an entry's value. Returns 0 or EDDY_ERR_NOMEM. */
int eddy__kv_set_value(eddy__kv_table_t *kt, eddy__kv_entry_t *e,
                       const void *value, size_t vlen);

static inline unsigned char *eddy__kv_value(const eddy__kv_entry_t *e)
{
    return e->kv_data + e->kv_klen;
}

#endif /* EDDY_STATE_KV_TABLE_H */
