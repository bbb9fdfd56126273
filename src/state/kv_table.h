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
 * Inline tables (eddy__kv_set_inline). A slot is one cache line (64 bytes)
 * with room for EDDY__KV_INLINE bytes of key and value: in an inline table
 * an entry whose key and value capacity fit keeps them in its slot
 * (kv_data points there), so a lookup touches one cache line instead of a
 * slot and an arena entry; a value that outgrows the slot moves to the
 * arena as usual. The price is that inline bytes move with their slot: on
 * an insertion that grows the slot array, on a removal (the backward shift)
 * and on compaction, so a pointer to an inline key or value is valid only
 * until the next insertion or removal, and a caller must not pass such a
 * pointer to an insertion into the same table. The bytes of removed inline
 * entries count as dead bytes like arena bytes (eddy__kv_bytes_used), so the
 * same compaction rule shrinks the slot array.
 *
 * THREADS. A table belongs to one subtask; no locking.
 */
#ifndef EDDY_STATE_KV_TABLE_H
#define EDDY_STATE_KV_TABLE_H

#include "common/internal.h"

#define EDDY__KV_INLINE 36 /* what fills a slot to 64 bytes */

typedef struct eddy__kv_entry {
    uint64_t kv_hash;
    /* Key bytes, then value bytes: in the arena or in kv_inline. NULL =
     * empty slot. */
    unsigned char *kv_data;
    uint32_t kv_klen;
    uint32_t kv_vlen;
    uint32_t kv_vcap;
    unsigned char kv_inline[EDDY__KV_INLINE];
} eddy__kv_entry_t;

typedef struct eddy__kv_table {
    eddy__kv_entry_t *kt_slots; /* aligned to 64 bytes */
    void *kt_slots_mem;         /* the allocation holding kt_slots */
    size_t kt_mask;             /* capacity - 1 (power of two) */
    size_t kt_count;
    size_t kt_dead;      /* entry bytes no entry uses any more */
    size_t kt_init_cap;  /* slots of the first slot array (power of two) */
    size_t kt_inl_bytes; /* inline bytes handed out (eddy__kv_bytes_used) */
    bool kt_inline;      /* entries may live in their slots */
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
/* Makes a table inline (see above). Call it after init, before the first
 * insertion. */
void eddy__kv_set_inline(eddy__kv_table_t *kt);

/*
 * Finds the entry of `key`, inserting it with `vcap` bytes of zeroed value
 * space (vlen 0) if absent; *created tells which. Returns NULL only on out of
 * memory. The entry pointer is valid until the next insertion.
 */
eddy__kv_entry_t *eddy__kv_upsert(eddy__kv_table_t *kt, uint64_t hash,
                                  const void *key, size_t klen, size_t vcap,
                                  bool *created);
/*
 * Inserts an entry for a key the caller knows to be absent (it has just
 * probed for it), with `klen` bytes of key space that the caller fills in
 * before the next call on the table, and `vcap` bytes of zeroed value space
 * (vlen 0). Unlike eddy__kv_upsert it compares no keys: it takes the first
 * free slot of the probe sequence. Returns NULL on out of memory or if the
 * entry would exceed 4 GiB. The entry pointer is valid until the next
 * insertion.
 */
eddy__kv_entry_t *eddy__kv_insert(eddy__kv_table_t *kt, uint64_t hash,
                                  size_t klen, size_t vcap);
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
 * value bytes stay where they are (their arena space is counted as dead),
 * except inline ones, which move with their slots.
 */
int eddy__kv_remove(eddy__kv_table_t *kt, uint64_t hash, const void *key,
                    size_t klen);
/* Removes an entry found by eddy__kv_find or eddy__kv_upsert (same rules). */
void eddy__kv_remove_entry(eddy__kv_table_t *kt, eddy__kv_entry_t *e);

/*
 * Rebuilds the table without dead bytes: live keys and values are copied into
 * a fresh arena (values with no spare capacity: kv_vcap = kv_vlen; in an
 * inline table, into their slots where they now fit) and the
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

/* Entry bytes handed out since the table was built or last compacted
 * (arena and inline); kt_dead of them are no longer used. */
static inline size_t eddy__kv_bytes_used(const eddy__kv_table_t *kt)
{
    return kt->kt_arena.ar_bytes + kt->kt_inl_bytes;
}

/* Key comparison for probes. Keys are usually short (ids, words, window
 * namespaces): compare them inline in 8-byte words rather than through a
 * memcmp call. */
static inline bool eddy__kv_bytes_equal(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;
    while (n >= 8) {
        uint64_t x, y;
        memcpy(&x, p, 8);
        memcpy(&y, q, 8);
        if (x != y) {
            return false;
        }
        p += 8;
        q += 8;
        n -= 8;
    }
    if (n >= 4) {
        uint32_t x, y, x2, y2;
        memcpy(&x, p, 4);
        memcpy(&y, q, 4);
        memcpy(&x2, p + n - 4, 4);
        memcpy(&y2, q + n - 4, 4);
        return x == y && x2 == y2;
    }
    while (n > 0) {
        if (*p++ != *q++) {
            return false;
        }
        n--;
    }
    return true;
}

#endif /* EDDY_STATE_KV_TABLE_H */
