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
 * Removal (eddy__kv_remove) uses backward-shift deletion: the entries after
 * the hole that may move closer to their home slot shift back, so there are
 * no tombstones and lookups stay as short as if the removed key had never
 * been inserted. The arena cannot free single entries: the bytes of removed
 * entries and of values that moved are counted in kt_dead, and the owner
 * decides when to rebuild the table compactly (eddy__kv_compact), typically
 * once dead bytes exceed half of the arena, so reclaiming costs O(1)
 * amortised per dead byte.
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
    size_t kt_dead;     /* arena bytes no entry uses any more */
    size_t kt_init_cap; /* slots of the first slot array (power of two) */
    eddy__arena_t kt_arena;
} eddy__kv_table_t;

void eddy__kv_init(eddy__kv_table_t *kt);
/*
 * Like eddy__kv_init, for tables that start small because there are many of
 * them (one per state and key group, one per map): the first slot array has
 * `slots` entries (rounded up to a power of two, at least 2) and the arena
 * starts with `chunk`-byte chunks, doubling as the table grows up to the
 * chunk size of eddy__kv_init (256 KiB).
 */
void eddy__kv_init_sized(eddy__kv_table_t *kt, size_t slots, size_t chunk);
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

/*
 * Makes an entry's value `vlen` bytes long and returns its value space (like
 * realloc: the first min(old, new) bytes are kept, the rest is undefined).
 * Moves the entry's bytes to fresh arena space if they do not fit; the old
 * bytes stay readable until the table is compacted or closed. Returns NULL
 * on out of memory or if the entry would exceed 4 GiB.
 */
unsigned char *eddy__kv_reserve_value(eddy__kv_table_t *kt, eddy__kv_entry_t *e,
                                      size_t vlen);

/*
 * Removes `key`: returns 1 if it was present, 0 if not. Other entries may
 * move between slots, so entry pointers are invalid afterwards; key and
 * value bytes stay where they are (their arena space is counted as dead).
 */
int eddy__kv_remove(eddy__kv_table_t *kt, uint64_t hash, const void *key,
                    size_t klen);
/* Removes an entry found by eddy__kv_find or eddy__kv_upsert (same rules). */
void eddy__kv_remove_entry(eddy__kv_table_t *kt, eddy__kv_entry_t *e);

/*
 * Rebuilds the table without dead bytes: live keys and values are copied into
 * a fresh arena (values with no spare capacity: kv_vcap = kv_vlen) and the
 * slot array shrinks to the smallest size with a load factor of at most 1/4
 * (never below the initial size, never growing). An empty table frees its
 * slots and arena. Every entry, key and value pointer is invalid afterwards.
 * Returns 0, or EDDY_ERR_NOMEM with the table unchanged.
 */
int eddy__kv_compact(eddy__kv_table_t *kt);

static inline unsigned char *eddy__kv_value(const eddy__kv_entry_t *e)
{
    return e->kv_data + e->kv_klen;
}

#endif /* EDDY_STATE_KV_TABLE_H */
