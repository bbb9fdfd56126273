/*
 * eddy — the heap keyed-state backend (see state.h for the contract).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. One kv table (state/kv_table.h) per (state, key group), created on
 * the first write and freed when its last entry goes, so an idle key group
 * costs one NULL pointer and a snapshot of a key group walks its tables.
 * Tables start small (16 slots, 1 KiB arena chunks) and grow with their
 * contents, because a subtask may own thousands of key groups.
 *
 * Lanes. A state that declares lanes (state.h: window and slice state) has
 * one table per (state, lane, key group) instead, the lane a function of the
 * namespace. Records in event-time order all write the newest window or
 * slice: with one table per key group, its entries would be scattered
 * among those of every live window (a sliding window of 10 slices: ten
 * times the memory, pages and TLB entries per record); with a lane per
 * live window they are the only entries of their tables, so the memory
 * touched per record is that of one window, as for a tumbling window. The
 * lane is cached with the last namespace, so it costs nothing per record.
 *
 * Entry key: u32 key length (host order), key bytes, namespace bytes. The
 * length prefix makes the split unambiguous ("ab"+"c" is not "a"+"bc"). The
 * table hash is the record's key hash (sk_hash, computed once per record)
 * mixed with a hash of the namespace, so the key bytes are never rehashed;
 * an empty namespace costs no hashing at all, and the last namespace hashed
 * is remembered with its hash (window state names the same window or slice
 * for many records in a row). Lookups compare the key and namespace with
 * the entry's bytes piece by piece, so no composite key is ever built; an
 * insertion writes it straight into the new entry.
 *
 * Entry value: with TTL, an 8-byte stamp (ks_now_ms of the last write)
 * first; then
 *   VALUE, REDUCING, AGGREGATING: the value bytes, in place in the entry;
 *   LIST: a pointer to one malloc'ed, growable byte area holding the
 *         elements as (u32 length, bytes), appended in order;
 *   MAP:  a pointer to a nested kv table (user key -> user value), created
 *         small (8 slots, 256-byte chunks); removing its last entry removes
 *         the (key, namespace) entry.
 * The layout follows the state's kind (ss_kind); a call of another family
 * (say, a list call on a value state) is a caller bug, answered with
 * EDDY_ERR_INVALID by writes and "absent" by reads.
 *
 * Updating an existing value in place costs no allocation when the new
 * value fits the entry's capacity (a value that grows moves with headroom).
 *
 * Memory of removed entries and moved values stays in the table's arena as
 * dead bytes until a write to that table finds them above half of the bytes
 * handed out (and above 64 KiB; 1 KiB for nested maps); the table is then
 * rebuilt compactly (eddy__kv_compact), which also shrinks its slot array.
 * Reads never compact, so a pointer returned by a read stays valid across
 * reads of other keys. List areas and nested maps are freed at once on
 * removal.
 *
 * Inline entries. The tables of states without TTL are inline kv tables: an
 * entry whose key, namespace and value fit in the 64-byte slot (36 bytes:
 * an 8-byte key with an 8-byte value, or with a 16-byte window namespace
 * and an 8-byte accumulator) lives there, so a lookup costs one cache line
 * instead of a slot and an arena entry. Inline bytes move with their slot
 * on insertions that grow the table, removals and compaction, i.e. only
 * during calls that modify the state, which state.h allows; a key or value
 * the caller passes to an insertion may be such bytes of the same table
 * (a key from ko_for_each, a value from ko_get), so insert() and hk_put
 * copy those first (unalias). TTL tables keep their bytes in the arena: a
 * read that finds an entry expired removes it, and must not move others.
 *
 * Fast paths. ko_get, ko_put and ko_get_for_update serve a VALUE state
 * without TTL, an existing entry and a value that fits with a few loads:
 * the backend keeps, per (state, key group), the table pointer together
 * with copies of its slot array, mask and whether it may be written in
 * place (heap_tref_t, refreshed by every general path that changes them),
 * so a lookup reads that dense array and the slot, makes no copies, and
 * calls nothing unless the namespace differs from the last one. Everything
 * else (inserts, TTL, shared tables, compaction due, other kinds) takes the
 * general path, which does the same thing step by step.
 *
 * TTL: a read of an expired entry (now - stamp > ttl_ms) removes it and
 * reports it absent; every write then examines CLEANUP_SLOTS slots of the
 * same table in round-robin order (a cursor per table) and removes expired
 * entries, so a whole table is swept every capacity/CLEANUP_SLOTS writes.
 * A write to an expired list or map starts a fresh one. for_each skips
 * expired entries without removing them.
 *
 * Snapshots (copy-on-write per table). The synchronous part of a
 * checkpoint takes a reference on every table (O(tables), no copying) and
 * hands the frozen tables to the snapshot thread. A table with more than one
 * reference is never changed: the first write to it clones it (one key
 * group of one state, so the cost is spread over the writes that follow)
 * and the live side drops its reference to the original, which the
 * snapshot frees once written. The pause at a barrier is therefore
 * proportional to the number of tables, not to the state size. The old
 * table is released no earlier than the next modifying call (by the next
 * write that takes the general path, the next snapshot, or destroy), so a
 * value read from it may still be passed to the write that triggers the
 * clone.
 *
 * THREADS. One backend instance belongs to one subtask thread; tables are
 * shared with the snapshot thread only while frozen (read-only), and their
 * reference count is atomic.
 */
#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "state/kv_table.h"
#include "state/state.h"

enum { MODE_VALUE, MODE_LIST, MODE_MAP };

#define STAMP_BYTES 8
#define CLEANUP_SLOTS 4
#define TABLE_SLOTS 16
#define TABLE_CHUNK 1024
#define TABLE_COMPACT_MIN (64 * 1024)
#define MAP_SLOTS 8
#define MAP_CHUNK 256
#define MAP_COMPACT_MIN 1024
#define LIST_MIN_CAP 64
#define NS_CACHE_MAX 32 /* window namespaces are 16 bytes */

/* For the few helpers of the per-record path: GCC's heuristics otherwise
 * leave some as calls that cost more than their bodies. */
#define HEAP_INLINE static inline __attribute__((always_inline))
/* For the general paths behind them, so that their code does not crowd the
 * fast paths (register pressure, spills). */
#define HEAP_COLD static __attribute__((noinline))

/* A list: elements as (u32 length, bytes), in insertion order. */
typedef struct heap_list {
    size_t hl_len; /* bytes used in hl_data */
    size_t hl_cap;
    unsigned char hl_data[];
} heap_list_t;

typedef struct heap_table {
    /* First, next to the kv table's slot pointer and counts: the general
     * path's checks read one cache line. */
    atomic_int ht_refs; /* the live state + snapshots holding it */
    int ht_mode;
    eddy__kv_table_t ht_kv;
    size_t ht_cursor; /* next slot the TTL cleanup examines */
    size_t ht_ext;    /* bytes of list areas and nested maps */
    size_t ht_hdr;
} heap_table_t;

/*
 * The backend's handle on the table of one (state, key group), with copies
 * of what the fast paths need of the table (tref_sync), so that a lookup
 * reads this dense array, then the slot and the entry, but not the table's
 * header: one dependent cache miss fewer per record.
 */
typedef struct heap_tref {
    heap_table_t *tr_ht;        /* NULL: no entries */
    eddy__kv_entry_t *tr_slots; /* tr_ht->ht_kv.kt_slots, or NULL */
    size_t tr_mask;             /* tr_ht->ht_kv.kt_mask */
    bool tr_plain; /* the state is MODE_VALUE without TTL (fixed) */
    /* The fast paths may change tr_ht in place right now: tr_plain, no
     * snapshot holds it and no compaction is due. */
    bool tr_fast;
} heap_tref_t;

/* A state's entry layout, from its spec (fixed for the backend's life). */
typedef struct heap_info {
    /* Its table of lane l and key group kg: hk_trefs[base + l * nkg + kg] */
    ptrdiff_t hi_base;
    size_t hi_first; /* index of its first table in hk_trefs */
    size_t hi_lanes; /* 1, or a power of two with hi_lane */
    eddy__state_lane_fn hi_lane;
    const void *hi_lane_arg;
    int hi_mode;
    size_t hi_hdr; /* STAMP_BYTES with TTL, else 0 */
    int64_t hi_ttl;
} heap_info_t;

typedef struct heap_kstate {
    eddy__kstate_t hk_base; /* first: the public view */
    int hk_nkg;
    size_t hk_ntables;          /* of hk_trefs: every (state, lane, kg) */
    heap_tref_t *hk_trefs;      /* see heap_info_t */
    heap_info_t *hk_info;       /* [sid] */
    heap_table_t **hk_deferred; /* originals of tables cloned (see above) */
    size_t hk_ndeferred, hk_deferred_cap;
    /* The last namespace hashed (skey_locate); hk_ns_len 0: none. With
     * what hk_ns_lfn(ns, hk_ns_larg) gave it, if hk_ns_lfn != NULL. */
    size_t hk_ns_len;
    uint64_t hk_ns_mix;
    eddy__state_lane_fn hk_ns_lfn;
    const void *hk_ns_larg;
    size_t hk_ns_lane;
    unsigned char hk_ns[NS_CACHE_MAX];
} heap_kstate_t;

/* Where one (state, key, namespace) lives. */
typedef struct heap_ref {
    heap_tref_t *hr_tref;
    heap_table_t **hr_slot; /* &hr_tref->tr_ht */
    const eddy__skey_t *hr_key;
    int hr_mode;
    int64_t hr_ttl;
    size_t hr_hdr;  /* STAMP_BYTES with TTL, else 0 */
    size_t hr_klen; /* of the composite key: 4 + key + namespace */
    uint64_t hr_hash;
} heap_ref_t;

/* Table handles a state's lanes may take per key group owned, at most: a
 * handle is 32 bytes, and a subtask may own up to 32768 key groups. */
#define LANE_TREFS_MAX 8192

/* The lanes of a state for `nkg` key groups: its ss_lanes rounded up to a
 * power of two, at most EDDY__STATE_MAX_LANES and LANE_TREFS_MAX / nkg
 * (many key groups spread the entries thinly anyway); 1 without a lane
 * function. */
static size_t spec_lanes(const eddy__state_spec_t *s, int nkg)
{
    if (s->ss_lane == NULL || s->ss_lanes <= 1) {
        return 1;
    }
    size_t n = 1;
    while (n < s->ss_lanes && n < EDDY__STATE_MAX_LANES &&
           2 * n * (size_t)nkg <= LANE_TREFS_MAX) {
        n *= 2;
    }
    return n;
}

static int mode_of(int kind)
{
    switch (kind) {
    case EDDY_STATE_LIST:
        return MODE_LIST;
    case EDDY_STATE_MAP:
        return MODE_MAP;
    default: /* VALUE, REDUCING, AGGREGATING */
        return MODE_VALUE;
    }
}

/* ---- sizes ---- */

static size_t kv_bytes(const eddy__kv_table_t *kt)
{
    size_t n = kt->kt_arena.ar_bytes;
    if (kt->kt_slots != NULL) {
        /* One slot more: the slack for aligning the array (kv_table.c). */
        n += (kt->kt_mask + 2) * sizeof(eddy__kv_entry_t);
    }
    return n;
}

static size_t map_bytes(const eddy__kv_table_t *m)
{
    return sizeof(*m) + kv_bytes(m);
}

static size_t list_bytes(const heap_list_t *l)
{
    return sizeof(*l) + l->hl_cap;
}

/* ---- entries ---- */

static inline void *ext_ptr(const eddy__kv_entry_t *e, size_t hdr)
{
    void *p;
    memcpy(&p, eddy__kv_value(e) + hdr, sizeof(p));
    return p;
}

static inline void set_ext_ptr(eddy__kv_entry_t *e, size_t hdr, void *p)
{
    memcpy(eddy__kv_value(e) + hdr, &p, sizeof(p));
}

static inline void stamp(eddy__kv_entry_t *e, const heap_kstate_t *hk,
                         size_t hdr)
{
    if (hdr > 0) {
        memcpy(eddy__kv_value(e), &hk->hk_base.ks_now_ms, STAMP_BYTES);
    }
}

/* "A read of an entry older than ttl_ms finds nothing": expired once the
 * age exceeds ttl_ms. A clock that went backwards expires nothing. */
static inline bool expired(const eddy__kv_entry_t *e, int64_t ttl, int64_t now)
{
    if (ttl <= 0) {
        return false;
    }
    int64_t st;
    memcpy(&st, eddy__kv_value(e), STAMP_BYTES);
    return now > st && (uint64_t)now - (uint64_t)st > (uint64_t)ttl;
}

static void map_free(eddy__kv_table_t *m)
{
    eddy__kv_close(m);
    free(m);
}

/* Frees what an entry points to (list area, nested map). */
static void free_ext(heap_table_t *ht, int mode, const eddy__kv_entry_t *e,
                     size_t hdr)
{
    if (mode == MODE_LIST) {
        heap_list_t *l = ext_ptr(e, hdr);
        ht->ht_ext -= list_bytes(l);
        free(l);
    } else if (mode == MODE_MAP) {
        eddy__kv_table_t *m = ext_ptr(e, hdr);
        ht->ht_ext -= map_bytes(m);
        map_free(m);
    }
}

static void table_free(heap_table_t *ht, int mode, size_t hdr)
{
    eddy__kv_table_t *kt = &ht->ht_kv;
    if (mode == MODE_LIST || mode == MODE_MAP) {
        for (size_t i = 0; kt->kt_slots != NULL && i <= kt->kt_mask; i++) {
            if (kt->kt_slots[i].kv_data != NULL) {
                free_ext(ht, mode, &kt->kt_slots[i], hdr);
            }
        }
    }
    eddy__kv_close(kt);
    free(ht);
}

/* Drops one reference; the last one frees the table. */
static void table_unref(heap_table_t *ht)
{
    if (atomic_fetch_sub_explicit(&ht->ht_refs, 1, memory_order_acq_rel) == 1) {
        table_free(ht, ht->ht_mode, ht->ht_hdr);
    }
}

/* Whether a snapshot holds the table too. Only this thread adds
 * references, so a count of 1 stays 1 until this thread snapshots again; the
 * acquire (a plain load on x86) orders this thread's writes after the
 * snapshot thread's reads that preceded its release of the table. */
static inline bool table_shared(heap_table_t *ht)
{
    return atomic_load_explicit(&ht->ht_refs, memory_order_acquire) > 1;
}

/* Whether a write must rebuild the table: dead bytes above half of the
 * bytes handed out (arena and inline) and at least min_dead. */
static inline bool compact_due(const eddy__kv_table_t *kt, size_t min_dead)
{
    return kt->kt_dead >= min_dead && kt->kt_dead > eddy__kv_bytes_used(kt) / 2;
}

/* Releases the originals of tables cloned by earlier writes. */
static void flush_deferred(heap_kstate_t *hk)
{
    for (size_t i = 0; i < hk->hk_ndeferred; i++) {
        table_unref(hk->hk_deferred[i]);
    }
    hk->hk_ndeferred = 0;
}

static heap_list_t *list_new(size_t need);
static eddy__kv_table_t *map_new(void);
static int map_set(eddy__kv_table_t *m, const void *uk, size_t uklen,
                   const void *v, size_t vlen);

/* A deep copy of a table (lists and nested maps too), compacted. */
static heap_table_t *table_clone(const heap_table_t *src)
{
    heap_table_t *ht = calloc(1, sizeof(*ht));
    if (ht == NULL) {
        return NULL;
    }
    const eddy__kv_table_t *kt = &src->ht_kv;
    /* Room for every entry at once; compaction may still shrink the copy
     * down to the usual first size (kt_init_cap, reset below). */
    size_t slots = EDDY_MAX((size_t)TABLE_SLOTS, kt->kt_count * 2);
    eddy__kv_init_sized(&ht->ht_kv, slots, TABLE_CHUNK);
    if (kt->kt_inline) {
        eddy__kv_set_inline(&ht->ht_kv);
    }
    atomic_init(&ht->ht_refs, 1);
    ht->ht_mode = src->ht_mode;
    ht->ht_hdr = src->ht_hdr;
    ht->ht_cursor = src->ht_cursor;
    size_t hdr = src->ht_hdr;
    for (size_t i = 0; kt->kt_slots != NULL && i <= kt->kt_mask; i++) {
        const eddy__kv_entry_t *e = &kt->kt_slots[i];
        if (e->kv_data == NULL) {
            continue;
        }
        /* Keys are distinct: insert without comparing any. */
        eddy__kv_entry_t *ne =
            eddy__kv_insert(&ht->ht_kv, e->kv_hash, e->kv_klen, e->kv_vlen);
        if (ne == NULL) {
            goto fail;
        }
        ne->kv_vlen = e->kv_vlen;
        memcpy(ne->kv_data, e->kv_data, (size_t)e->kv_klen + e->kv_vlen);
        if (src->ht_mode == MODE_LIST) {
            const heap_list_t *l = ext_ptr(e, hdr);
            heap_list_t *nl = list_new(l->hl_len);
            if (nl == NULL) {
                set_ext_ptr(ne, hdr, NULL);
                goto fail;
            }
            memcpy(nl->hl_data, l->hl_data, l->hl_len);
            nl->hl_len = l->hl_len;
            set_ext_ptr(ne, hdr, nl);
            ht->ht_ext += list_bytes(nl);
        } else if (src->ht_mode == MODE_MAP) {
            const eddy__kv_table_t *m = ext_ptr(e, hdr);
            eddy__kv_table_t *nm = map_new();
            set_ext_ptr(ne, hdr, nm);
            if (nm == NULL) {
                goto fail;
            }
            for (size_t k = 0; m->kt_slots != NULL && k <= m->kt_mask; k++) {
                const eddy__kv_entry_t *me = &m->kt_slots[k];
                if (me->kv_data != NULL &&
                    map_set(nm, me->kv_data, me->kv_klen, eddy__kv_value(me),
                            me->kv_vlen) != 0) {
                    goto fail;
                }
            }
            ht->ht_ext += map_bytes(nm);
        }
    }
    ht->ht_kv.kt_init_cap = src->ht_kv.kt_init_cap;
    return ht;
fail:
    /* Entries whose list or map could not be made hold NULL: free the
     * others and the table. */
    for (size_t i = 0; ht->ht_kv.kt_slots != NULL && i <= ht->ht_kv.kt_mask;
         i++) {
        eddy__kv_entry_t *e = &ht->ht_kv.kt_slots[i];
        if (e->kv_data != NULL && ht->ht_mode != MODE_VALUE &&
            ext_ptr(e, hdr) != NULL) {
            if (ht->ht_mode == MODE_LIST) {
                free(ext_ptr(e, hdr));
            } else {
                map_free(ext_ptr(e, hdr));
            }
        }
    }
    eddy__kv_close(&ht->ht_kv);
    free(ht);
    return NULL;
}

/* Replaces the shared table in *slot by a private copy (make_writable). */
static int table_unshare(heap_kstate_t *hk, heap_table_t **slot)
{
    heap_table_t *ht = *slot;
    heap_table_t *c = table_clone(ht);
    if (c == NULL) {
        return EDDY_ERR_NOMEM;
    }
    if (hk->hk_ndeferred == hk->hk_deferred_cap) {
        size_t cap = hk->hk_deferred_cap ? hk->hk_deferred_cap * 2 : 8;
        heap_table_t **d = eddy__try_realloc(hk->hk_deferred, cap * sizeof(*d));
        if (d == NULL) {
            table_unref(c);
            return EDDY_ERR_NOMEM;
        }
        hk->hk_deferred = d;
        hk->hk_deferred_cap = cap;
    }
    hk->hk_deferred[hk->hk_ndeferred++] = ht;
    *slot = c;
    return 0;
}

/* Before changing the table in *slot: if a snapshot shares it, work on a
 * private copy from now on. */
static inline int make_writable(heap_kstate_t *hk, heap_table_t **slot)
{
    heap_table_t *ht = *slot;
    if (EDDY_LIKELY(ht == NULL || !table_shared(ht))) {
        return 0;
    }
    return table_unshare(hk, slot);
}

/*
 * Refreshes the fast paths' copy of a table's state. Every change of the
 * table pointer, of its slot array (inserts, compaction) or of its dead
 * bytes happens on a general path, which calls this before it returns (in
 * ref_write, drop_entry and after_write); a snapshot clears tr_fast.
 */
static void tref_sync(heap_tref_t *tr)
{
    heap_table_t *ht = tr->tr_ht;
    if (ht == NULL) {
        tr->tr_slots = NULL;
        tr->tr_mask = 0;
        tr->tr_fast = false;
        return;
    }
    tr->tr_slots = ht->ht_kv.kt_slots;
    tr->tr_mask = ht->ht_kv.kt_mask;
    /* Writes on the fast paths change no dead bytes, so a compaction not
     * due now is not due after them either. */
    tr->tr_fast = tr->tr_plain && tr->tr_slots != NULL && !table_shared(ht) &&
                  !compact_due(&ht->ht_kv, TABLE_COMPACT_MIN);
}

/* Removes an entry and what it points to; frees the table if it empties.
 * Does not compact, so other entries' arena bytes stay where they are
 * (inline ones move with their slots: TTL tables, whose reads remove, have
 * none). */
static void drop_entry(const heap_ref_t *r, eddy__kv_entry_t *e)
{
    heap_table_t *ht = *r->hr_slot;
    free_ext(ht, r->hr_mode, e, r->hr_hdr);
    eddy__kv_remove_entry(&ht->ht_kv, e);
    if (ht->ht_kv.kt_count == 0) {
        table_unref(ht);
        *r->hr_slot = NULL;
    }
    tref_sync(r->hr_tref);
}

/* Rebuilds a table once dead bytes exceed half of its arena. A failure only
 * postpones reclaiming, so it is ignored. Returns true if the table was
 * rebuilt (its entries' bytes moved). */
static bool maybe_compact(eddy__kv_table_t *kt, size_t min_dead)
{
    if (compact_due(kt, min_dead)) {
        return eddy__kv_compact(kt) == 0;
    }
    return false;
}

/* ---- lookups ---- */

/* Out of line: its loops would cost the inlined fast paths registers, and
 * with them a stack frame on every call. */
static __attribute__((noinline)) bool bytes_equal_any(const void *a,
                                                      const void *b, size_t n)
{
    return eddy__kv_bytes_equal(a, b, n);
}

/* Byte equality for probes, with the common lengths (8-byte ids, 16-byte
 * window namespaces, none) compared in registers. */
HEAP_INLINE bool same_bytes(const void *a, const void *b, size_t n)
{
    uint64_t x0, y0, x1, y1;
    switch (n) {
    case 0:
        return true;
    case 8:
        memcpy(&x0, a, 8);
        memcpy(&y0, b, 8);
        return x0 == y0;
    case 16:
        memcpy(&x0, a, 8);
        memcpy(&y0, b, 8);
        memcpy(&x1, (const unsigned char *)a + 8, 8);
        memcpy(&y1, (const unsigned char *)b + 8, 8);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    default:
        return bytes_equal_any(a, b, n);
    }
}

/* The namespace's part of the table hash. Window state names one namespace
 * (the window or slice) for many consecutive records, so the last one
 * hashed is remembered with its result. */
HEAP_COLD uint64_t ns_mix_slow(heap_kstate_t *hk, const void *ns, size_t nslen)
{
    /* Mix the namespace hash before combining, so (x, x) pairs and the like
     * do not cancel out. */
    uint64_t h = eddy__hash64(ns, nslen) * 0x9E3779B97F4A7C15ull;
    uint64_t mix = h ^ (h >> 29);
    if (nslen <= NS_CACHE_MAX) {
        memcpy(hk->hk_ns, ns, nslen);
        hk->hk_ns_len = nslen;
        hk->hk_ns_mix = mix;
        hk->hk_ns_lfn = NULL;
    }
    return mix;
}

/* What the lane function of a state with lanes gives k's namespace (not
 * empty), before taking it modulo the state's lanes (states sharing the
 * function may have different numbers of lanes); remembered with the
 * namespace if that is the one cached (ns_mix_slow). */
HEAP_COLD size_t lane_slow(heap_kstate_t *hk, const heap_info_t *hi,
                           const eddy__skey_t *k)
{
    size_t lane = hi->hi_lane(k->sk_ns, k->sk_nslen, hi->hi_lane_arg);
    if (k->sk_nslen == hk->hk_ns_len &&
        same_bytes(k->sk_ns, hk->hk_ns, k->sk_nslen)) {
        hk->hk_ns_lfn = hi->hi_lane;
        hk->hk_ns_larg = hi->hi_lane_arg;
        hk->hk_ns_lane = lane;
    }
    return lane;
}

/* The table handle of state `hi`'s lane `lane` and key group `kg`. */
HEAP_INLINE heap_tref_t *tref_at(const heap_kstate_t *hk, const heap_info_t *hi,
                                 size_t lane, int kg)
{
    return &hk->hk_trefs[hi->hi_base + (ptrdiff_t)(lane * (size_t)hk->hk_nkg) +
                         kg];
}

/* The table handle of (state, lane, key group) for k, and the table hash of
 * k (*hash): the key hash mixed with the namespace's. Window state names
 * the same namespace for many records in a row: both the namespace's hash
 * and its lane come from the cache then. */
HEAP_INLINE heap_tref_t *skey_locate(heap_kstate_t *hk, int sid,
                                     const eddy__skey_t *k, uint64_t *hash)
{
    const heap_info_t *hi = &hk->hk_info[sid];
    size_t nslen = k->sk_nslen;
    size_t lane = 0;
    if (nslen == 0) {
        *hash = k->sk_hash;
    } else if (EDDY_LIKELY(nslen == hk->hk_ns_len &&
                           same_bytes(k->sk_ns, hk->hk_ns, nslen))) {
        *hash = k->sk_hash ^ hk->hk_ns_mix;
        if (hi->hi_lanes > 1) {
            lane = (EDDY_LIKELY(hk->hk_ns_lfn == hi->hi_lane &&
                                hk->hk_ns_larg == hi->hi_lane_arg)
                        ? hk->hk_ns_lane
                        : lane_slow(hk, hi, k)) &
                   (hi->hi_lanes - 1);
        }
    } else {
        *hash = k->sk_hash ^ ns_mix_slow(hk, k->sk_ns, nslen);
        if (hi->hi_lanes > 1) {
            lane = lane_slow(hk, hi, k) & (hi->hi_lanes - 1);
        }
    }
    return tref_at(hk, hi, lane, k->sk_kg);
}

/* Resolves where (state, key, namespace) lives. Costs no copying: probes
 * compare the key and namespace in place (entry_is). Returns 0, or
 * EDDY_ERR_INVALID for a key and namespace too long for an entry. */
HEAP_INLINE int ref_init(heap_kstate_t *hk, int sid, const eddy__skey_t *k,
                         heap_ref_t *r)
{
    assert(sid >= 0 && sid < hk->hk_base.ks_nstates);
    assert(k->sk_kg >= hk->hk_base.ks_kg_first &&
           k->sk_kg <= hk->hk_base.ks_kg_last);
    if (EDDY_UNLIKELY(k->sk_klen > UINT32_MAX - 4 ||
                      k->sk_nslen > UINT32_MAX - 4 - k->sk_klen)) {
        return EDDY_ERR_INVALID;
    }
    const heap_info_t *hi = &hk->hk_info[sid];
    r->hr_tref = skey_locate(hk, sid, k, &r->hr_hash);
    r->hr_slot = &r->hr_tref->tr_ht;
    r->hr_key = k;
    r->hr_mode = hi->hi_mode;
    r->hr_ttl = hi->hi_ttl;
    r->hr_hdr = hi->hi_hdr;
    r->hr_klen = 4 + k->sk_klen + k->sk_nslen;
    return 0;
}

/* Whether entry e holds the composite key [u32 klen][key][namespace] of k,
 * `n` bytes long: compared piece by piece, so no composite key is built. */
HEAP_INLINE bool entry_is(const eddy__kv_entry_t *e, const eddy__skey_t *k,
                          size_t n)
{
    if (e->kv_klen != n) {
        return false;
    }
    const unsigned char *d = e->kv_data;
    uint32_t klen;
    memcpy(&klen, d, 4);
    return klen == k->sk_klen && same_bytes(d + 4, k->sk_key, klen) &&
           same_bytes(d + 4 + klen, k->sk_ns, k->sk_nslen);
}

/* The entry of (hash, k) in a table, or NULL. The 64-bit hash in the slot
 * decides almost every mismatch without touching the entry's bytes. */
HEAP_INLINE eddy__kv_entry_t *table_find(const heap_table_t *ht, uint64_t hash,
                                         const eddy__skey_t *k, size_t n)
{
    eddy__kv_entry_t *slots = ht->ht_kv.kt_slots;
    if (EDDY_UNLIKELY(slots == NULL)) {
        return NULL;
    }
    size_t mask = ht->ht_kv.kt_mask;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        eddy__kv_entry_t *e = &slots[i];
        if (e->kv_data == NULL) {
            return NULL;
        }
        if (e->kv_hash == hash && EDDY_LIKELY(entry_is(e, k, n))) {
            return e;
        }
    }
}

/* The entry of a reference in its table (which must exist), or NULL. */
static inline eddy__kv_entry_t *probe(const heap_ref_t *r)
{
    return table_find(*r->hr_slot, r->hr_hash, r->hr_key, r->hr_klen);
}

static heap_table_t *table_new(const heap_ref_t *r)
{
    heap_table_t *ht = calloc(1, sizeof(*ht));
    if (ht != NULL) {
        eddy__kv_init_sized(&ht->ht_kv, TABLE_SLOTS, TABLE_CHUNK);
        if (r->hr_ttl <= 0) {
            eddy__kv_set_inline(&ht->ht_kv); /* see DESIGN: Inline entries */
        }
        atomic_init(&ht->ht_refs, 1);
        ht->ht_mode = r->hr_mode;
        ht->ht_hdr = r->hr_hdr;
    }
    return ht;
}

/* For writes: checks the state's kind, releases the originals of tables
 * cloned by earlier writes, and makes the table exist and be writable. */
static inline int ref_write(heap_kstate_t *hk, int sid, const eddy__skey_t *k,
                            int mode, heap_ref_t *r)
{
    int rc = ref_init(hk, sid, k, r);
    if (EDDY_UNLIKELY(rc != 0)) {
        return rc;
    }
    if (EDDY_UNLIKELY(r->hr_mode != mode)) {
        return EDDY_ERR_INVALID;
    }
    if (EDDY_UNLIKELY(hk->hk_ndeferred > 0)) {
        flush_deferred(hk);
    }
    heap_table_t *before = *r->hr_slot;
    if (EDDY_UNLIKELY(before == NULL)) {
        *r->hr_slot = table_new(r);
        rc = *r->hr_slot != NULL ? 0 : EDDY_ERR_NOMEM;
    } else {
        rc = make_writable(hk, r->hr_slot);
    }
    if (*r->hr_slot != before) {
        tref_sync(r->hr_tref); /* a new table, or a private copy */
    }
    return rc;
}

/* Finds the live entry of a reference; removes it if expired. */
static inline eddy__kv_entry_t *ref_find(heap_kstate_t *hk, const heap_ref_t *r)
{
    heap_table_t *ht = *r->hr_slot;
    if (ht == NULL) {
        return NULL;
    }
    eddy__kv_entry_t *e = probe(r);
    if (EDDY_UNLIKELY(r->hr_ttl > 0) && e != NULL &&
        expired(e, r->hr_ttl, hk->hk_base.ks_now_ms)) {
        if (!table_shared(ht)) {
            drop_entry(r, e); /* a frozen table is cleaned after a clone */
        }
        return NULL;
    }
    return e;
}

/* For reads: the live entry, or NULL (absent, expired, or another kind). */
static inline eddy__kv_entry_t *read_find(heap_kstate_t *hk, int sid,
                                          const eddy__skey_t *k, int mode,
                                          heap_ref_t *r)
{
    if (ref_init(hk, sid, k, r) != 0 || r->hr_mode != mode) {
        return NULL;
    }
    return ref_find(hk, r);
}

/* memmove for keys and values: the common sizes (ids, namespaces,
 * accumulators: 8 to 16 bytes) with two loads and two stores, which read
 * everything before writing anything, rather than a call. */
HEAP_INLINE void copy_bytes(unsigned char *dst, const void *src, size_t len)
{
    const unsigned char *p = src;
    if (len >= 8 && len <= 16) {
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + len - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + len - 8, &b, 8);
    } else if (len > 0) {
        memmove(dst, src, len);
    }
}

/* Whether p points into the slot array of an inline table, i.e. at bytes
 * an insertion into that table may move (kv_table.h). */
static inline bool in_slots(const eddy__kv_table_t *kt, const void *p)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)kt->kt_slots;
    return kt->kt_inline && b != 0 && a >= b &&
           a - b < (kt->kt_mask + 1) * sizeof(eddy__kv_entry_t);
}

/* If the `len` bytes at *p are inline bytes of kt, copies them to `buf`
 * (EDDY__KV_INLINE bytes: inline keys and values are no longer) and points
 * *p at the copy, so an insertion into kt may move them. */
static inline void unalias(const eddy__kv_table_t *kt, const void **p,
                           size_t len, unsigned char *buf)
{
    if (len > 0 && in_slots(kt, *p)) {
        assert(len <= EDDY__KV_INLINE);
        memcpy(buf, *p, len);
        *p = buf;
    }
}

/* Inserts a new entry (absent: the caller just probed) with `vlen` bytes of
 * zeroed value (stamp included), writing the composite key straight into
 * the entry. The key and namespace may be inline bytes of the same table
 * (a key from ko_for_each): they are copied before the insertion. */
static eddy__kv_entry_t *insert(const heap_ref_t *r, size_t vlen)
{
    const eddy__skey_t *k = r->hr_key;
    eddy__kv_table_t *kt = &(*r->hr_slot)->ht_kv;
    const void *key = k->sk_key, *ns = k->sk_ns;
    unsigned char kbuf[EDDY__KV_INLINE], nbuf[EDDY__KV_INLINE];
    unalias(kt, &key, k->sk_klen, kbuf);
    unalias(kt, &ns, k->sk_nslen, nbuf);
    eddy__kv_entry_t *e = eddy__kv_insert(kt, r->hr_hash, r->hr_klen, vlen);
    if (e != NULL) {
        uint32_t klen = (uint32_t)k->sk_klen;
        memcpy(e->kv_data, &klen, 4);
        copy_bytes(e->kv_data + 4, key, klen);
        copy_bytes(e->kv_data + 4 + klen, ns, k->sk_nslen);
        e->kv_vlen = (uint32_t)vlen;
    }
    return e;
}

/* The TTL cleanup and reclaiming of after_write (below). */
static bool after_write_slow(heap_kstate_t *hk, const heap_ref_t *r)
{
    heap_table_t *ht = *r->hr_slot;
    eddy__kv_table_t *kt = &ht->ht_kv;
    if (r->hr_ttl > 0) {
        int64_t now = hk->hk_base.ks_now_ms;
        for (int n = 0; n < CLEANUP_SLOTS && kt->kt_count > 0; n++) {
            size_t i = ht->ht_cursor & kt->kt_mask;
            eddy__kv_entry_t *e = &kt->kt_slots[i];
            if (e->kv_data != NULL && expired(e, r->hr_ttl, now)) {
                /* The backward shift may fill slot i: look at it again. */
                free_ext(ht, r->hr_mode, e, r->hr_hdr);
                eddy__kv_remove_entry(kt, e);
            } else {
                ht->ht_cursor = i + 1;
            }
        }
    }
    if (kt->kt_count == 0) {
        table_unref(ht);
        *r->hr_slot = NULL;
        return false;
    }
    return maybe_compact(kt, TABLE_COMPACT_MIN);
}

/*
 * After every write (including failed ones, which may have created an empty
 * table): incremental TTL cleanup, then reclaiming, then the fast paths'
 * copy of the table's state. The entry just written carries a fresh stamp,
 * so the cleanup never removes it (the cleanup may shift slots, but not the
 * bytes entries point to: TTL tables are not inline). Returns true if the
 * table was compacted, which moves every entry's bytes.
 */
static bool after_write(heap_kstate_t *hk, const heap_ref_t *r)
{
    const heap_table_t *ht = *r->hr_slot;
    bool moved = false;
    /* maybe_compact needs kt_dead >= TABLE_COMPACT_MIN */
    if (ht != NULL && (r->hr_ttl > 0 || ht->ht_kv.kt_count == 0 ||
                       ht->ht_kv.kt_dead >= TABLE_COMPACT_MIN)) {
        moved = after_write_slow(hk, r);
    }
    tref_sync(r->hr_tref);
    return moved;
}

/* ---- VALUE, REDUCING, AGGREGATING ---- */

/*
 * The fast paths (hk_get, hk_put, hk_get_for_update) serve the per-record
 * case: a VALUE state without TTL whose table exists, is not shared with a
 * snapshot and has no compaction due; the entry exists and its value fits.
 * They do exactly what the general paths (*_any) do then: find, update in
 * place, and nothing else (no stamp without TTL; after_write would find
 * nothing to do). Only the release of cloned originals waits for the next
 * general path (see Snapshots). Anything else goes to the general path,
 * which starts over.
 */

/* The first entry with `hash`, or NULL if there is none (k is absent).
 * The caller checks that it is k's (entry_is); if it is not (two keys with
 * the same 64-bit hash), the general path probes on. Comparing hashes only
 * keeps the loop small. */
HEAP_INLINE eddy__kv_entry_t *fast_probe(const heap_tref_t *tr, uint64_t hash)
{
    eddy__kv_entry_t *slots = tr->tr_slots;
    if (EDDY_UNLIKELY(slots == NULL)) {
        return NULL;
    }
    size_t mask = tr->tr_mask;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        eddy__kv_entry_t *e = &slots[i];
        if (e->kv_data == NULL) {
            return NULL;
        }
        if (e->kv_hash == hash) {
            return e;
        }
    }
}

/* Below this, a key, a namespace and a value always fit an entry (4 GiB
 * with the length prefix): the fast insertion needs no other check. */
#define FAST_MAX (UINT32_MAX / 4)

/*
 * Inserts k, absent (fast_probe found no entry with its hash), into the
 * fast-writable table of tr (skey_locate's for k), with `vlen` zero bytes of
 * value: what the general path does for a new key of a plain state after all
 * its checks, which cannot fail here (the key, namespace and vlen are below
 * FAST_MAX). NULL on out of memory.
 */
HEAP_INLINE eddy__kv_entry_t *
fast_insert(heap_tref_t *tr, const eddy__skey_t *k, uint64_t hash, size_t vlen)
{
    heap_ref_t r;
    r.hr_tref = tr;
    r.hr_slot = &r.hr_tref->tr_ht;
    r.hr_key = k;
    r.hr_mode = MODE_VALUE;
    r.hr_ttl = 0;
    r.hr_hdr = 0;
    r.hr_klen = 4 + k->sk_klen + k->sk_nslen;
    r.hr_hash = hash;
    eddy__kv_entry_t *e = insert(&r, vlen);
    /* The slot array may have grown. Nothing else after_write does applies:
     * no TTL, and an insertion makes no dead bytes. */
    if (r.hr_tref->tr_ht->ht_kv.kt_slots != r.hr_tref->tr_slots) {
        tref_sync(r.hr_tref);
    }
    return e;
}

HEAP_INLINE bool fast_sizes(const eddy__skey_t *k, size_t vlen)
{
    return k->sk_klen < FAST_MAX && k->sk_nslen < FAST_MAX && vlen < FAST_MAX;
}

/* Cheap checks of the caller's arguments (STYLE §4: bugs, asserted). */
#define ASSERT_ARGS(hk, sid, k)                                                \
    assert((unsigned)(sid) < (unsigned)(hk)->hk_base.ks_nstates &&             \
           (unsigned)((k)->sk_kg - (hk)->hk_base.ks_kg_first) <                \
               (unsigned)(hk)->hk_nkg)

HEAP_COLD int hk_get_any(heap_kstate_t *hk, int sid, const eddy__skey_t *k,
                         const void **v, size_t *len)
{
    heap_ref_t r;
    eddy__kv_entry_t *e = read_find(hk, sid, k, MODE_VALUE, &r);
    if (e == NULL) {
        return 0;
    }
    *v = eddy__kv_value(e) + r.hr_hdr;
    *len = e->kv_vlen - r.hr_hdr;
    return 1;
}

HEAP_COLD int hk_put_any(heap_kstate_t *hk, int sid, const eddy__skey_t *k,
                         const void *v, size_t len)
{
    if (EDDY_UNLIKELY(len > UINT32_MAX)) {
        return EDDY_ERR_INVALID;
    }
    heap_ref_t r;
    int rc = ref_write(hk, sid, k, MODE_VALUE, &r);
    if (EDDY_UNLIKELY(rc != 0)) {
        return rc;
    }
    unsigned char vbuf[EDDY__KV_INLINE];
    size_t need = r.hr_hdr + len;
    eddy__kv_entry_t *e = probe(&r);
    unsigned char *dst = NULL;
    if (EDDY_LIKELY(e != NULL && need <= e->kv_vcap)) {
        /* The common case: update in place, no allocation. */
        e->kv_vlen = (uint32_t)need;
        dst = eddy__kv_value(e);
    } else if ((uint64_t)need + r.hr_klen > UINT32_MAX) {
        rc = EDDY_ERR_INVALID; /* an entry holds at most 4 GiB */
    } else if (e != NULL) {
        /* Old bytes stay valid while moving, so v may point into them. */
        dst = eddy__kv_reserve_value(&(*r.hr_slot)->ht_kv, e, need);
    } else {
        /* v may be another entry's inline value, which inserting moves. */
        unalias(&(*r.hr_slot)->ht_kv, &v, len, vbuf);
        e = insert(&r, need);
        dst = e != NULL ? eddy__kv_value(e) : NULL;
    }
    if (EDDY_LIKELY(dst != NULL)) {
        if (len > 0) {
            memmove(dst + r.hr_hdr, v, len); /* v may alias the old value */
        }
        stamp(e, hk, r.hr_hdr);
    } else if (rc == 0) {
        rc = EDDY_ERR_NOMEM;
    }
    after_write(hk, &r);
    return rc;
}

/* One lookup for a read-modify-write of a fixed-size value (state.h). */
HEAP_COLD int hk_gfu_any(heap_kstate_t *hk, int sid, const eddy__skey_t *k,
                         size_t size, void **value, bool *created)
{
    if (EDDY_UNLIKELY(size > UINT32_MAX)) {
        return EDDY_ERR_INVALID;
    }
    heap_ref_t r;
    int rc = ref_write(hk, sid, k, MODE_VALUE, &r);
    if (EDDY_UNLIKELY(rc != 0)) {
        return rc;
    }
    size_t need = r.hr_hdr + size;
    eddy__kv_entry_t *e = probe(&r);
    unsigned char *dst = NULL;
    bool fresh = true;
    if (EDDY_LIKELY(e != NULL &&
                    !expired(e, r.hr_ttl, hk->hk_base.ks_now_ms))) {
        if (EDDY_UNLIKELY(e->kv_vlen != need)) {
            return EDDY_ERR_FORMAT; /* nothing written */
        }
        /* The common case: the value in place. */
        dst = eddy__kv_value(e);
        fresh = false;
    } else if ((uint64_t)need + r.hr_klen > UINT32_MAX) {
        rc = EDDY_ERR_INVALID; /* an entry holds at most 4 GiB */
    } else if (e != NULL) {
        /* Expired: as if removed by a read, then inserted afresh. */
        dst = eddy__kv_reserve_value(&(*r.hr_slot)->ht_kv, e, need);
        if (dst != NULL) {
            memset(dst, 0, need);
        }
    } else {
        e = insert(&r, need); /* zero-filled */
        dst = e != NULL ? eddy__kv_value(e) : NULL;
    }
    if (EDDY_UNLIKELY(dst == NULL)) {
        after_write(hk, &r);
        return rc != 0 ? rc : EDDY_ERR_NOMEM;
    }
    stamp(e, hk, r.hr_hdr);
    if (EDDY_UNLIKELY(after_write(hk, &r))) {
        /* Compaction moved the bytes: find the entry again. */
        e = probe(&r);
        assert(e != NULL);
        dst = eddy__kv_value(e);
    }
    *value = dst + r.hr_hdr;
    *created = fresh;
    return 0;
}

static int hk_get(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                  const void **v, size_t *len)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    ASSERT_ARGS(hk, sid, k);
    uint64_t hash;
    const heap_tref_t *tr = skey_locate(hk, sid, k, &hash);
    if (EDDY_LIKELY(tr->tr_plain)) {
        /* A read changes nothing without TTL: any table will do. */
        if (tr->tr_slots == NULL) {
            return 0;
        }
        eddy__kv_entry_t *e = fast_probe(tr, hash);
        if (e == NULL) {
            return 0;
        }
        if (EDDY_LIKELY(entry_is(e, k, 4 + k->sk_klen + k->sk_nslen))) {
            *v = eddy__kv_value(e);
            *len = e->kv_vlen;
            return 1;
        }
    }
    return hk_get_any(hk, sid, k, v, len);
}

static int hk_put(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                  const void *v, size_t len)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    ASSERT_ARGS(hk, sid, k);
    uint64_t hash;
    heap_tref_t *tr = skey_locate(hk, sid, k, &hash);
    if (EDDY_LIKELY(tr->tr_fast)) {
        eddy__kv_entry_t *e = fast_probe(tr, hash);
        if (EDDY_LIKELY(e != NULL && len <= e->kv_vcap &&
                        entry_is(e, k, 4 + k->sk_klen + k->sk_nslen))) {
            e->kv_vlen = (uint32_t)len;
            /* v may alias the old value */
            copy_bytes(eddy__kv_value(e), v, len);
            return 0;
        }
        if (e == NULL && fast_sizes(k, len)) {
            /* A new key. v may be another entry's inline value, which
             * inserting moves. */
            unsigned char vbuf[EDDY__KV_INLINE];
            unalias(&tr->tr_ht->ht_kv, &v, len, vbuf);
            e = fast_insert(tr, k, hash, len);
            if (EDDY_UNLIKELY(e == NULL)) {
                return EDDY_ERR_NOMEM;
            }
            e->kv_vlen = (uint32_t)len;
            copy_bytes(eddy__kv_value(e), v, len);
            return 0;
        }
    }
    return hk_put_any(hk, sid, k, v, len);
}

/* get_for_update of a key absent from a fast-writable table (a new window,
 * say): inserted zero-filled without the general path's detour. */
HEAP_COLD int hk_gfu_new(heap_kstate_t *hk, int sid, heap_tref_t *tr,
                         uint64_t hash, const eddy__skey_t *k, size_t size,
                         void **value, bool *created)
{
    if (!fast_sizes(k, size)) {
        return hk_gfu_any(hk, sid, k, size, value, created);
    }
    eddy__kv_entry_t *e = fast_insert(tr, k, hash, size);
    if (EDDY_UNLIKELY(e == NULL)) {
        return EDDY_ERR_NOMEM;
    }
    *value = eddy__kv_value(e);
    *created = true;
    return 0;
}

static int hk_get_for_update(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                             size_t size, void **value, bool *created)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    ASSERT_ARGS(hk, sid, k);
    uint64_t hash;
    heap_tref_t *tr = skey_locate(hk, sid, k, &hash);
    if (EDDY_LIKELY(tr->tr_fast)) {
        eddy__kv_entry_t *e = fast_probe(tr, hash);
        if (EDDY_LIKELY(e != NULL && e->kv_vlen == size &&
                        entry_is(e, k, 4 + k->sk_klen + k->sk_nslen))) {
            *value = eddy__kv_value(e);
            *created = false;
            return 0;
        }
        if (e == NULL) {
            return hk_gfu_new(hk, sid, tr, hash, k, size, value, created);
        }
    }
    return hk_gfu_any(hk, sid, k, size, value, created);
}

/* The slot where k's probe starts: for an inline entry (window state),
 * the entry and its value. */
static void hk_prefetch(eddy__kstate_t *ks, int sid, const eddy__skey_t *k)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    ASSERT_ARGS(hk, sid, k);
    uint64_t hash;
    const heap_tref_t *tr = skey_locate(hk, sid, k, &hash);
    if (tr->tr_slots != NULL) {
        __builtin_prefetch(&tr->tr_slots[hash & tr->tr_mask]);
    }
}

static int hk_remove(eddy__kstate_t *ks, int sid, const eddy__skey_t *k)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    heap_ref_t r;
    int rc = ref_init(hk, sid, k, &r);
    if (rc != 0 || *r.hr_slot == NULL) {
        return rc;
    }
    flush_deferred(hk);
    rc = make_writable(hk, r.hr_slot);
    if (rc != 0) {
        return rc;
    }
    eddy__kv_entry_t *e = probe(&r);
    if (e != NULL) {
        drop_entry(&r, e);
    }
    after_write(hk, &r);
    return 0;
}

/* ---- LIST ---- */

static heap_list_t *list_new(size_t need)
{
    size_t cap = EDDY_MAX(LIST_MIN_CAP, need);
    heap_list_t *l = eddy__try_malloc(sizeof(*l) + cap);
    if (l != NULL) {
        l->hl_len = 0;
        l->hl_cap = cap;
    }
    return l;
}

static void list_append(heap_list_t *l, const void *v, size_t len)
{
    uint32_t n = (uint32_t)len;
    memcpy(l->hl_data + l->hl_len, &n, 4);
    if (len > 0) {
        memcpy(l->hl_data + l->hl_len + 4, v, len);
    }
    l->hl_len += 4 + len;
}

static int hk_list_add(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                       const void *v, size_t len)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    if (len > UINT32_MAX) {
        return EDDY_ERR_INVALID;
    }
    heap_ref_t r;
    int rc = ref_write(hk, sid, k, MODE_LIST, &r);
    if (rc != 0) {
        return rc;
    }
    heap_table_t *ht = *r.hr_slot;
    eddy__kv_entry_t *e = probe(&r);
    if (e != NULL && !expired(e, r.hr_ttl, hk->hk_base.ks_now_ms)) {
        heap_list_t *l = ext_ptr(e, r.hr_hdr);
        size_t need = l->hl_len + 4 + len;
        if (need > l->hl_cap) {
            size_t cap = EDDY_MAX(need, l->hl_cap * 2);
            /* The element may come from this very list (an iterator). */
            uintptr_t p = (uintptr_t)v, base = (uintptr_t)l->hl_data;
            bool inside = len > 0 && p >= base && p < base + l->hl_len;
            heap_list_t *nl = eddy__try_realloc(l, sizeof(*l) + cap);
            if (nl == NULL) {
                rc = EDDY_ERR_NOMEM;
                goto done;
            }
            if (inside) {
                v = nl->hl_data + (p - base);
            }
            ht->ht_ext += cap - nl->hl_cap;
            nl->hl_cap = cap;
            l = nl;
            set_ext_ptr(e, r.hr_hdr, l);
        }
        list_append(l, v, len);
        stamp(e, hk, r.hr_hdr);
        goto done;
    }
    /* A new list, or a fresh one replacing an expired list (whose bytes may
     * hold v, so it is freed only after the copy). */
    heap_list_t *l = list_new(4 + len);
    if (l == NULL) {
        rc = EDDY_ERR_NOMEM;
        goto done;
    }
    list_append(l, v, len);
    if (e == NULL) {
        e = insert(&r, r.hr_hdr + sizeof(l));
        if (e == NULL) {
            free(l);
            rc = EDDY_ERR_NOMEM;
            goto done;
        }
    } else {
        free_ext(ht, MODE_LIST, e, r.hr_hdr);
    }
    set_ext_ptr(e, r.hr_hdr, l);
    ht->ht_ext += list_bytes(l);
    stamp(e, hk, r.hr_hdr);
done:
    after_write(hk, &r);
    return rc;
}

static int hk_list_iter(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                        eddy__siter_t *it)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    heap_ref_t r;
    eddy__kv_entry_t *e = read_find(hk, sid, k, MODE_LIST, &r);
    it->si_impl[0] = NULL;
    it->si_impl[1] = NULL;
    if (e == NULL) {
        return 0;
    }
    heap_list_t *l = ext_ptr(e, r.hr_hdr);
    it->si_impl[0] = l->hl_data;
    it->si_impl[1] = l->hl_data + l->hl_len;
    return 1;
}

static int hk_list_next(eddy__siter_t *it, const void **v, size_t *len)
{
    unsigned char *p = it->si_impl[0];
    if (p == NULL || p >= (unsigned char *)it->si_impl[1]) {
        return 0;
    }
    uint32_t n;
    memcpy(&n, p, 4);
    *v = p + 4;
    *len = n;
    it->si_impl[0] = p + 4 + n;
    return 1;
}

/* ---- MAP ---- */

static eddy__kv_table_t *map_new(void)
{
    eddy__kv_table_t *m = eddy__try_malloc(sizeof(*m));
    if (m != NULL) {
        eddy__kv_init_sized(m, MAP_SLOTS, MAP_CHUNK);
    }
    return m;
}

/* Sets uk -> v in a map. On failure the map is as before. */
static int map_set(eddy__kv_table_t *m, const void *uk, size_t uklen,
                   const void *v, size_t vlen)
{
    uint64_t h = eddy__hash64(uk, uklen);
    eddy__kv_entry_t *me = eddy__kv_find(m, h, uk, uklen);
    if (me != NULL) {
        return eddy__kv_set_value(m, me, v, vlen);
    }
    bool created;
    me = eddy__kv_upsert(m, h, uk, uklen, vlen, &created);
    if (me == NULL) {
        return EDDY_ERR_NOMEM;
    }
    if (vlen > 0) {
        memcpy(eddy__kv_value(me), v, vlen);
    }
    me->kv_vlen = (uint32_t)vlen;
    return 0;
}

static int hk_map_put(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                      const void *uk, size_t uklen, const void *v, size_t vlen)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    if (uklen > UINT32_MAX || vlen > UINT32_MAX - uklen) {
        return EDDY_ERR_INVALID;
    }
    heap_ref_t r;
    int rc = ref_write(hk, sid, k, MODE_MAP, &r);
    if (rc != 0) {
        return rc;
    }
    heap_table_t *ht = *r.hr_slot;
    eddy__kv_entry_t *e = probe(&r);
    if (e != NULL && !expired(e, r.hr_ttl, hk->hk_base.ks_now_ms)) {
        eddy__kv_table_t *m = ext_ptr(e, r.hr_hdr);
        size_t before = map_bytes(m);
        rc = map_set(m, uk, uklen, v, vlen);
        if (rc == 0) {
            maybe_compact(m, MAP_COMPACT_MIN);
            stamp(e, hk, r.hr_hdr);
        }
        ht->ht_ext = ht->ht_ext - before + map_bytes(m);
        goto done;
    }
    /* A new map, or a fresh one replacing an expired map (whose bytes may
     * hold uk or v, so it is freed only after the copy). */
    eddy__kv_table_t *m = map_new();
    if (m == NULL) {
        rc = EDDY_ERR_NOMEM;
        goto done;
    }
    rc = map_set(m, uk, uklen, v, vlen);
    if (rc == 0 && e == NULL) {
        e = insert(&r, r.hr_hdr + sizeof(m));
        rc = e != NULL ? 0 : EDDY_ERR_NOMEM;
    } else if (rc == 0) {
        free_ext(ht, MODE_MAP, e, r.hr_hdr);
    }
    if (rc != 0) {
        map_free(m);
        goto done;
    }
    set_ext_ptr(e, r.hr_hdr, m);
    ht->ht_ext += map_bytes(m);
    stamp(e, hk, r.hr_hdr);
done:
    after_write(hk, &r);
    return rc;
}

static int hk_map_get(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                      const void *uk, size_t uklen, const void **v,
                      size_t *vlen)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    heap_ref_t r;
    eddy__kv_entry_t *e = read_find(hk, sid, k, MODE_MAP, &r);
    if (e == NULL) {
        return 0;
    }
    eddy__kv_table_t *m = ext_ptr(e, r.hr_hdr);
    eddy__kv_entry_t *me = eddy__kv_find(m, eddy__hash64(uk, uklen), uk, uklen);
    if (me == NULL) {
        return 0;
    }
    *v = eddy__kv_value(me);
    *vlen = me->kv_vlen;
    return 1;
}

static int hk_map_remove(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                         const void *uk, size_t uklen)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    heap_ref_t r;
    int rc = ref_init(hk, sid, k, &r);
    if (rc != 0 || *r.hr_slot == NULL || r.hr_mode != MODE_MAP) {
        return rc;
    }
    flush_deferred(hk);
    rc = make_writable(hk, r.hr_slot);
    if (rc != 0) {
        return rc;
    }
    eddy__kv_entry_t *e = ref_find(hk, &r); /* removes an expired map */
    if (e != NULL) {
        heap_table_t *ht = *r.hr_slot;
        eddy__kv_table_t *m = ext_ptr(e, r.hr_hdr);
        size_t before = map_bytes(m);
        if (eddy__kv_remove(m, eddy__hash64(uk, uklen), uk, uklen)) {
            if (m->kt_count == 0) {
                drop_entry(&r, e); /* the last entry takes the map along */
            } else {
                maybe_compact(m, MAP_COMPACT_MIN);
                ht->ht_ext = ht->ht_ext - before + map_bytes(m);
                stamp(e, hk, r.hr_hdr);
            }
        }
    }
    after_write(hk, &r);
    return 0;
}

static int hk_map_iter(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                       eddy__siter_t *it)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    heap_ref_t r;
    eddy__kv_entry_t *e = read_find(hk, sid, k, MODE_MAP, &r);
    it->si_impl[0] = e != NULL ? ext_ptr(e, r.hr_hdr) : NULL;
    it->si_impl[1] = (void *)(uintptr_t)0; /* next slot */
    return e != NULL;
}

static int hk_map_next(eddy__siter_t *it, const void **uk, size_t *uklen,
                       const void **v, size_t *vlen)
{
    eddy__kv_table_t *m = it->si_impl[0];
    if (m == NULL || m->kt_slots == NULL) {
        return 0;
    }
    for (size_t i = (uintptr_t)it->si_impl[1]; i <= m->kt_mask; i++) {
        const eddy__kv_entry_t *me = &m->kt_slots[i];
        if (me->kv_data != NULL) {
            *uk = me->kv_data;
            *uklen = me->kv_klen;
            *v = eddy__kv_value(me);
            *vlen = me->kv_vlen;
            it->si_impl[1] = (void *)(uintptr_t)(i + 1);
            return 1;
        }
    }
    it->si_impl[0] = NULL;
    return 0;
}

/* ---- whole states ---- */

static int hk_for_each(eddy__kstate_t *ks, int sid, int kg,
                       int (*fn)(void *arg, const void *key, size_t klen,
                                 const void *ns, size_t nslen),
                       void *arg)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    assert(sid >= 0 && sid < ks->ks_nstates);
    assert(kg >= ks->ks_kg_first && kg <= ks->ks_kg_last);
    const heap_info_t *hi = &hk->hk_info[sid];
    int64_t ttl = ks->ks_specs[sid].ss_ttl_ms;
    for (size_t lane = 0; lane < hi->hi_lanes; lane++) {
        const heap_table_t *ht = tref_at(hk, hi, lane, kg)->tr_ht;
        if (ht == NULL) {
            continue;
        }
        const eddy__kv_table_t *kt = &ht->ht_kv;
        for (size_t i = 0; kt->kt_slots != NULL && i <= kt->kt_mask; i++) {
            const eddy__kv_entry_t *e = &kt->kt_slots[i];
            if (e->kv_data == NULL || expired(e, ttl, ks->ks_now_ms)) {
                continue;
            }
            uint32_t klen;
            memcpy(&klen, e->kv_data, 4);
            const unsigned char *key = e->kv_data + 4;
            int rc = fn(arg, key, klen, key + klen, e->kv_klen - 4 - klen);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

static size_t hk_size(eddy__kstate_t *ks)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    size_t ntables = hk->hk_ntables;
    size_t n = sizeof(*hk) + ntables * sizeof(*hk->hk_trefs) +
               (size_t)ks->ks_nstates * sizeof(*hk->hk_info);
    for (size_t i = 0; i < ntables; i++) {
        const heap_table_t *ht = hk->hk_trefs[i].tr_ht;
        if (ht != NULL) {
            n += sizeof(*ht) + kv_bytes(&ht->ht_kv) + ht->ht_ext;
        }
    }
    return n;
}

static void hk_destroy(eddy__kstate_t *ks)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    flush_deferred(hk);
    free(hk->hk_deferred);
    size_t ntables = hk->hk_ntables;
    for (size_t i = 0; i < ntables; i++) {
        if (hk->hk_trefs[i].tr_ht != NULL) {
            /* A snapshot may still hold it. */
            table_unref(hk->hk_trefs[i].tr_ht);
        }
    }
    free(hk->hk_trefs);
    free(hk->hk_info);
    free(hk);
}

/* ---- snapshots ---- */

typedef struct heap_snap {
    eddy__ksnap_t hs_base; /* first */
    int hs_nstates;
    eddy__state_spec_t *hs_specs; /* copies: the operator may be gone */
    int hs_kg_first, hs_kg_last, hs_nkg;
    size_t hs_ntables;
    size_t *hs_first, *hs_lanes; /* [sid]: hi_first, hi_lanes */
    heap_table_t **hs_tables;    /* hk_trefs' tables; a reference on each */
    int64_t hs_now;
} heap_snap_t;

/* Writes one frozen table's live entries in the canonical format. */
static void encode_table(eddy__bytes_t *b, int sid, const heap_table_t *ht,
                         int64_t ttl, int64_t now)
{
    const eddy__kv_table_t *kt = &ht->ht_kv;
    size_t hdr = ht->ht_hdr;
    for (size_t i = 0; kt->kt_slots != NULL && i <= kt->kt_mask; i++) {
        const eddy__kv_entry_t *e = &kt->kt_slots[i];
        if (e->kv_data == NULL || expired(e, ttl, now)) {
            continue;
        }
        uint32_t klen;
        memcpy(&klen, e->kv_data, 4);
        const unsigned char *key = e->kv_data + 4;
        int64_t st = 0;
        if (hdr > 0) {
            memcpy(&st, eddy__kv_value(e), STAMP_BYTES);
        }
        int tag = ht->ht_mode == MODE_LIST  ? EDDY__CANON_LIST
                  : ht->ht_mode == MODE_MAP ? EDDY__CANON_MAP
                                            : EDDY__CANON_VALUE;
        eddy__bytes_put_u8(b, (uint8_t)tag);
        eddy__bytes_put_varint(b, (uint64_t)sid);
        eddy__bytes_put_blob(b, key, klen);
        eddy__bytes_put_blob(b, key + klen, e->kv_klen - 4 - klen);
        eddy__bytes_put_u64(b, (uint64_t)st);
        if (ht->ht_mode == MODE_VALUE) {
            eddy__bytes_put_blob(b, eddy__kv_value(e) + hdr, e->kv_vlen - hdr);
        } else if (ht->ht_mode == MODE_LIST) {
            const heap_list_t *l = ext_ptr(e, hdr);
            uint64_t n = 0;
            for (size_t off = 0; off < l->hl_len; n++) {
                uint32_t len;
                memcpy(&len, l->hl_data + off, 4);
                off += 4 + len;
            }
            eddy__bytes_put_varint(b, n);
            for (size_t off = 0; off < l->hl_len;) {
                uint32_t len;
                memcpy(&len, l->hl_data + off, 4);
                eddy__bytes_put_blob(b, l->hl_data + off + 4, len);
                off += 4 + len;
            }
        } else {
            const eddy__kv_table_t *m = ext_ptr(e, hdr);
            eddy__bytes_put_varint(b, m->kt_count);
            for (size_t k = 0; m->kt_slots != NULL && k <= m->kt_mask; k++) {
                const eddy__kv_entry_t *me = &m->kt_slots[k];
                if (me->kv_data != NULL) {
                    eddy__bytes_put_blob(b, me->kv_data, me->kv_klen);
                    eddy__bytes_put_blob(b, eddy__kv_value(me), me->kv_vlen);
                }
            }
        }
    }
}

static int hs_write(eddy__ksnap_t *base, const eddy__snap_target_t *t,
                    json_t **handle, eddy_error_t *err)
{
    heap_snap_t *hs = (heap_snap_t *)base;
    char name[300];
    eddy__fmt(name, sizeof(name), "%s.keyed", t->st_stem);
    eddy__canon_writer_t w;
    int rc = eddy__canon_open(&w, t->st_chk_dir, name, err);
    if (rc != 0) {
        return rc;
    }
    for (int g = 0; g < hs->hs_nkg && rc == 0; g++) {
        eddy__canon_begin(&w, hs->hs_kg_first + g);
        for (int sid = 0; sid < hs->hs_nstates; sid++) {
            for (size_t lane = 0; lane < hs->hs_lanes[sid]; lane++) {
                const heap_table_t *ht =
                    hs->hs_tables[hs->hs_first[sid] +
                                  lane * (size_t)hs->hs_nkg + (size_t)g];
                if (ht != NULL) {
                    encode_table(eddy__canon_buf(&w), sid, ht,
                                 hs->hs_specs[sid].ss_ttl_ms, hs->hs_now);
                }
            }
        }
        rc = eddy__canon_end(&w, err);
    }
    json_t *groups = NULL;
    if (rc != 0) {
        eddy__canon_abort(&w);
        return rc;
    }
    rc = eddy__canon_close(&w, &groups, err);
    if (rc != 0) {
        return rc;
    }
    json_t *states = json_array();
    for (int sid = 0; sid < hs->hs_nstates; sid++) {
        json_array_append_new(
            states, json_pack("{s:s, s:i}", "name", hs->hs_specs[sid].ss_name,
                              "kind", hs->hs_specs[sid].ss_kind));
    }
    *handle = json_pack("{s:s, s:s, s:o, s:o}", "type", "canonical", "file",
                        name, "states", states, "groups", groups);
    return 0;
}

static void hs_release(eddy__ksnap_t *base)
{
    heap_snap_t *hs = (heap_snap_t *)base;
    for (size_t i = 0; i < hs->hs_ntables; i++) {
        if (hs->hs_tables[i] != NULL) {
            table_unref(hs->hs_tables[i]);
        }
    }
    for (int sid = 0; sid < hs->hs_nstates; sid++) {
        free((char *)hs->hs_specs[sid].ss_name);
    }
    free(hs->hs_specs);
    free(hs->hs_first);
    free(hs->hs_lanes);
    free(hs->hs_tables);
    free(hs);
}

static int hk_snapshot(eddy__kstate_t *ks, int64_t ckpt_id, bool savepoint,
                       eddy__ksnap_t **out)
{
    EDDY_UNUSED(ckpt_id);
    EDDY_UNUSED(savepoint);
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    flush_deferred(hk); /* no caller may still read those originals */
    heap_snap_t *hs = calloc(1, sizeof(*hs));
    size_t n = hk->hk_ntables;
    if (hs == NULL) {
        return EDDY_ERR_NOMEM;
    }
    size_t ns1 = (size_t)ks->ks_nstates + 1;
    hs->hs_tables = calloc(n ? n : 1, sizeof(*hs->hs_tables));
    hs->hs_specs = calloc(ns1, sizeof(*hs->hs_specs));
    hs->hs_first = calloc(ns1, sizeof(*hs->hs_first));
    hs->hs_lanes = calloc(ns1, sizeof(*hs->hs_lanes));
    if (hs->hs_tables == NULL || hs->hs_specs == NULL || hs->hs_first == NULL ||
        hs->hs_lanes == NULL) {
        free(hs->hs_tables);
        free(hs->hs_specs);
        free(hs->hs_first);
        free(hs->hs_lanes);
        free(hs);
        return EDDY_ERR_NOMEM;
    }
    hs->hs_ntables = n;
    hs->hs_base.ks_write = hs_write;
    hs->hs_base.ks_release = hs_release;
    hs->hs_nstates = ks->ks_nstates;
    for (int sid = 0; sid < ks->ks_nstates; sid++) {
        hs->hs_specs[sid] = ks->ks_specs[sid];
        hs->hs_specs[sid].ss_name = eddy__strdup(ks->ks_specs[sid].ss_name);
        hs->hs_first[sid] = hk->hk_info[sid].hi_first;
        hs->hs_lanes[sid] = hk->hk_info[sid].hi_lanes;
    }
    hs->hs_kg_first = ks->ks_kg_first;
    hs->hs_kg_last = ks->ks_kg_last;
    hs->hs_nkg = hk->hk_nkg;
    hs->hs_now = ks->ks_now_ms;
    for (size_t i = 0; i < n; i++) {
        heap_table_t *ht = hk->hk_trefs[i].tr_ht;
        /* From now on the first write to the table clones it. */
        hk->hk_trefs[i].tr_fast = false;
        if (ht != NULL) {
            atomic_fetch_add_explicit(&ht->ht_refs, 1, memory_order_acq_rel);
            hs->hs_tables[i] = ht;
        }
    }
    *out = &hs->hs_base;
    return 0;
}

static int hk_restore(eddy__kstate_t *ks, const eddy__restore_src_t *src,
                      bool allow_unknown_states, eddy_error_t *err)
{
    for (int i = 0; i < src->rs_n; i++) {
        const char *type =
            json_string_value(json_object_get(src->rs_handles[i], "type"));
        if (type == NULL || strcmp(type, "canonical") != 0) {
            return eddy_error_set(err, EDDY_ERR_UNSUPPORTED,
                                  "the heap state backend cannot read %s "
                                  "keyed state in %s (restore it with "
                                  "state.backend: %s, or from a savepoint)",
                                  type ? type : "unknown", src->rs_chk_dir,
                                  type ? type : "the original backend");
        }
        int rc = eddy__canon_load(ks, src->rs_handles[i], src->rs_chk_dir,
                                  allow_unknown_states, err);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static const eddy__kstate_ops_t heap_ops = {
    .ko_name = "heap",
    .ko_destroy = hk_destroy,
    .ko_get = hk_get,
    .ko_put = hk_put,
    .ko_get_for_update = hk_get_for_update,
    .ko_remove = hk_remove,
    .ko_list_add = hk_list_add,
    .ko_list_iter = hk_list_iter,
    .ko_list_next = hk_list_next,
    .ko_map_put = hk_map_put,
    .ko_map_get = hk_map_get,
    .ko_map_remove = hk_map_remove,
    .ko_map_iter = hk_map_iter,
    .ko_map_next = hk_map_next,
    .ko_prefetch = hk_prefetch,
    .ko_for_each = hk_for_each,
    .ko_size = hk_size,
    .ko_snapshot = hk_snapshot,
    .ko_restore = hk_restore,
};

eddy__kstate_t *eddy__heap_kstate_new(const eddy__state_spec_t *specs,
                                      int nstates, int kg_first, int kg_last)
{
    assert(nstates >= 0 && (nstates == 0 || specs != NULL));
    assert(kg_first >= 0 && kg_first <= kg_last);
    heap_kstate_t *hk = calloc(1, sizeof(*hk));
    if (hk == NULL) {
        return NULL;
    }
    hk->hk_nkg = kg_last - kg_first + 1;
    size_t ntables = 0;
    for (int sid = 0; sid < nstates; sid++) {
        ntables += spec_lanes(&specs[sid], hk->hk_nkg) * (size_t)hk->hk_nkg;
    }
    hk->hk_ntables = ntables;
    hk->hk_trefs = calloc(ntables ? ntables : 1, sizeof(*hk->hk_trefs));
    hk->hk_info = calloc(nstates ? (size_t)nstates : 1, sizeof(*hk->hk_info));
    if (hk->hk_trefs == NULL || hk->hk_info == NULL) {
        free(hk->hk_trefs);
        free(hk->hk_info);
        free(hk);
        return NULL;
    }
    size_t first = 0;
    for (int sid = 0; sid < nstates; sid++) {
        heap_info_t *hi = &hk->hk_info[sid];
        hi->hi_mode = mode_of(specs[sid].ss_kind);
        hi->hi_ttl = specs[sid].ss_ttl_ms > 0 ? specs[sid].ss_ttl_ms : 0;
        hi->hi_hdr = hi->hi_ttl > 0 ? STAMP_BYTES : 0;
        hi->hi_lanes = spec_lanes(&specs[sid], hk->hk_nkg);
        hi->hi_lane = hi->hi_lanes > 1 ? specs[sid].ss_lane : NULL;
        hi->hi_lane_arg = specs[sid].ss_lane_arg;
        hi->hi_first = first;
        hi->hi_base = (ptrdiff_t)first - kg_first;
        size_t n = hi->hi_lanes * (size_t)hk->hk_nkg;
        for (size_t i = 0; i < n; i++) {
            hk->hk_trefs[first + i].tr_plain =
                hi->hi_mode == MODE_VALUE && hi->hi_ttl == 0;
        }
        first += n;
    }
    hk->hk_base.ks_ops = &heap_ops;
    hk->hk_base.ks_specs = specs;
    hk->hk_base.ks_nstates = nstates;
    hk->hk_base.ks_kg_first = kg_first;
    hk->hk_base.ks_kg_last = kg_last;
    hk->hk_base.ks_now_ms = 0;
    return &hk->hk_base;
}
