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
 * Entry key: u32 key length (host order), key bytes, namespace bytes. The
 * length prefix makes the split unambiguous ("ab"+"c" is not "a"+"bc"). The
 * table hash is the record's key hash (sk_hash, computed once per record)
 * mixed with a hash of the namespace, so the key bytes are never rehashed;
 * an empty namespace costs no hashing at all. The composite key is built in
 * a scratch buffer owned by the backend (grown on demand, never per access).
 *
 * Entry value: with TTL, an 8-byte stamp (ks_now_ms of the last write)
 * first; then
 *   VALUE, REDUCING, AGGREGATING: the value bytes, in place in the arena;
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
 * dead bytes until a write to that table finds them above half of the arena
 * (and above 64 KiB; 1 KiB for nested maps); the table is then rebuilt
 * compactly (eddy__kv_compact), which also shrinks its slot array. Reads
 * never compact, so a pointer returned by a read stays valid across reads of
 * other keys. List areas and nested maps are freed at once on removal.
 *
 * TTL: a read of an expired entry (now - stamp > ttl_ms) removes it and
 * reports it absent; every write then examines CLEANUP_SLOTS slots of the
 * same table in round-robin order (a cursor per table) and removes expired
 * entries, so a whole table is swept every capacity/CLEANUP_SLOTS writes.
 * A write to an expired list or map starts a fresh one. for_each skips
 * expired entries without removing them.
 *
 * THREADS. One backend instance belongs to one subtask thread.
 */
#include <assert.h>
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
#define SCRATCH_MIN 256

/* A list: elements as (u32 length, bytes), in insertion order. */
typedef struct heap_list {
    size_t hl_len; /* bytes used in hl_data */
    size_t hl_cap;
    unsigned char hl_data[];
} heap_list_t;

typedef struct heap_table {
    eddy__kv_table_t ht_kv;
    size_t ht_cursor; /* next slot the TTL cleanup examines */
    size_t ht_ext;    /* bytes of list areas and nested maps */
} heap_table_t;

typedef struct heap_kstate {
    eddy__kstate_t hk_base; /* first: the public view */
    int hk_nkg;
    heap_table_t **hk_tables; /* [sid * nkg + kg - kg_first], NULL = empty */
    unsigned char *hk_scratch;
    size_t hk_scratch_cap;
} heap_kstate_t;

/* Where one (state, key, namespace) lives. */
typedef struct heap_ref {
    heap_table_t **hr_slot; /* the table pointer in hk_tables */
    int hr_mode;
    int64_t hr_ttl;
    size_t hr_hdr; /* STAMP_BYTES with TTL, else 0 */
    size_t hr_klen;
    uint64_t hr_hash;
} heap_ref_t;

static int mode_of(const eddy__kstate_t *ks, int sid)
{
    switch (ks->ks_specs[sid].ss_kind) {
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
        n += (kt->kt_mask + 1) * sizeof(eddy__kv_entry_t);
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

/* Removes an entry and what it points to; frees the table if it empties.
 * Does not compact, so other entries' bytes stay where they are. */
static void drop_entry(const heap_ref_t *r, eddy__kv_entry_t *e)
{
    heap_table_t *ht = *r->hr_slot;
    free_ext(ht, r->hr_mode, e, r->hr_hdr);
    eddy__kv_remove_entry(&ht->ht_kv, e);
    if (ht->ht_kv.kt_count == 0) {
        table_free(ht, r->hr_mode, r->hr_hdr);
        *r->hr_slot = NULL;
    }
}

/* Rebuilds a table once dead bytes exceed half of its arena. A failure only
 * postpones reclaiming, so it is ignored. Returns true if the table was
 * rebuilt (its entries' bytes moved). */
static bool maybe_compact(eddy__kv_table_t *kt, size_t min_dead)
{
    if (kt->kt_dead >= min_dead && kt->kt_dead > kt->kt_arena.ar_bytes / 2) {
        return eddy__kv_compact(kt) == 0;
    }
    return false;
}

/* ---- lookups ---- */

static uint64_t skey_hash(const eddy__skey_t *k)
{
    if (k->sk_nslen == 0) {
        return k->sk_hash;
    }
    /* Mix the namespace hash before combining, so (x, x) pairs and the like
     * do not cancel out. */
    uint64_t h = eddy__hash64(k->sk_ns, k->sk_nslen) * 0x9E3779B97F4A7C15ull;
    return k->sk_hash ^ h ^ (h >> 29);
}

/* Resolves the table slot and builds the composite key in the scratch
 * buffer. Returns 0, or EDDY_ERR_INVALID / EDDY_ERR_NOMEM. */
static int ref_init(heap_kstate_t *hk, int sid, const eddy__skey_t *k,
                    heap_ref_t *r)
{
    const eddy__kstate_t *ks = &hk->hk_base;
    assert(sid >= 0 && sid < ks->ks_nstates);
    assert(k->sk_kg >= ks->ks_kg_first && k->sk_kg <= ks->ks_kg_last);
    if (k->sk_klen > UINT32_MAX - 4 ||
        k->sk_nslen > UINT32_MAX - 4 - k->sk_klen) {
        return EDDY_ERR_INVALID;
    }
    size_t n = 4 + k->sk_klen + k->sk_nslen;
    if (EDDY_UNLIKELY(n > hk->hk_scratch_cap)) {
        size_t cap = EDDY_MAX(n, hk->hk_scratch_cap * 2);
        unsigned char *p = eddy__try_realloc(hk->hk_scratch, cap);
        if (p == NULL) {
            return EDDY_ERR_NOMEM;
        }
        hk->hk_scratch = p;
        hk->hk_scratch_cap = cap;
    }
    uint32_t klen = (uint32_t)k->sk_klen;
    memcpy(hk->hk_scratch, &klen, 4);
    if (k->sk_klen > 0) {
        memcpy(hk->hk_scratch + 4, k->sk_key, k->sk_klen);
    }
    if (k->sk_nslen > 0) {
        memcpy(hk->hk_scratch + 4 + k->sk_klen, k->sk_ns, k->sk_nslen);
    }
    r->hr_slot = &hk->hk_tables[(size_t)sid * (size_t)hk->hk_nkg +
                                (size_t)(k->sk_kg - ks->ks_kg_first)];
    r->hr_mode = mode_of(ks, sid);
    r->hr_ttl = ks->ks_specs[sid].ss_ttl_ms;
    r->hr_hdr = r->hr_ttl > 0 ? STAMP_BYTES : 0;
    r->hr_klen = n;
    r->hr_hash = skey_hash(k);
    return 0;
}

/* For writes: checks the state's kind and creates the table. */
static int ref_write(heap_kstate_t *hk, int sid, const eddy__skey_t *k,
                     int mode, heap_ref_t *r)
{
    int rc = ref_init(hk, sid, k, r);
    if (rc != 0) {
        return rc;
    }
    if (r->hr_mode != mode) {
        return EDDY_ERR_INVALID;
    }
    if (*r->hr_slot == NULL) {
        heap_table_t *ht = calloc(1, sizeof(*ht));
        if (ht == NULL) {
            return EDDY_ERR_NOMEM;
        }
        eddy__kv_init_sized(&ht->ht_kv, TABLE_SLOTS, TABLE_CHUNK);
        *r->hr_slot = ht;
    }
    return 0;
}

/* Finds the live entry of a reference; removes it if expired. */
static eddy__kv_entry_t *ref_find(heap_kstate_t *hk, const heap_ref_t *r)
{
    heap_table_t *ht = *r->hr_slot;
    if (ht == NULL) {
        return NULL;
    }
    eddy__kv_entry_t *e =
        eddy__kv_find(&ht->ht_kv, r->hr_hash, hk->hk_scratch, r->hr_klen);
    if (e != NULL && expired(e, r->hr_ttl, hk->hk_base.ks_now_ms)) {
        drop_entry(r, e);
        return NULL;
    }
    return e;
}

/* For reads: the live entry, or NULL (absent, expired, or another kind). */
static eddy__kv_entry_t *read_find(heap_kstate_t *hk, int sid,
                                   const eddy__skey_t *k, int mode,
                                   heap_ref_t *r)
{
    if (ref_init(hk, sid, k, r) != 0 || r->hr_mode != mode) {
        return NULL;
    }
    return ref_find(hk, r);
}

/* Finds the entry without expiring it (writes decide what to do). */
static eddy__kv_entry_t *write_find(heap_kstate_t *hk, const heap_ref_t *r)
{
    return eddy__kv_find(&(*r->hr_slot)->ht_kv, r->hr_hash, hk->hk_scratch,
                         r->hr_klen);
}

/* Inserts a new entry with `vlen` bytes of value (stamp included). */
static eddy__kv_entry_t *insert(heap_kstate_t *hk, const heap_ref_t *r,
                                size_t vlen)
{
    bool created;
    eddy__kv_entry_t *e =
        eddy__kv_upsert(&(*r->hr_slot)->ht_kv, r->hr_hash, hk->hk_scratch,
                        r->hr_klen, vlen, &created);
    if (e != NULL) {
        assert(created);
        e->kv_vlen = (uint32_t)vlen;
    }
    return e;
}

/*
 * After every write (including failed ones, which may have created an empty
 * table): incremental TTL cleanup, then reclaiming. The entry just written
 * carries a fresh stamp, so the cleanup never removes it (the cleanup may
 * shift slots, but not the bytes entries point to). Returns true if the
 * table was compacted, which moves every entry's bytes.
 */
static bool after_write(heap_kstate_t *hk, const heap_ref_t *r)
{
    heap_table_t *ht = *r->hr_slot;
    if (ht == NULL) {
        return false;
    }
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
        table_free(ht, r->hr_mode, r->hr_hdr);
        *r->hr_slot = NULL;
        return false;
    }
    return maybe_compact(kt, TABLE_COMPACT_MIN);
}

/* ---- VALUE, REDUCING, AGGREGATING ---- */

static int hk_get(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                  const void **v, size_t *len)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    heap_ref_t r;
    eddy__kv_entry_t *e = read_find(hk, sid, k, MODE_VALUE, &r);
    if (e == NULL) {
        return 0;
    }
    *v = eddy__kv_value(e) + r.hr_hdr;
    *len = e->kv_vlen - r.hr_hdr;
    return 1;
}

static int hk_put(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                  const void *v, size_t len)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    if (len > UINT32_MAX) {
        return EDDY_ERR_INVALID;
    }
    heap_ref_t r;
    int rc = ref_write(hk, sid, k, MODE_VALUE, &r);
    if (rc != 0) {
        return rc;
    }
    size_t need = r.hr_hdr + len;
    eddy__kv_entry_t *e = write_find(hk, &r);
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
        e = insert(hk, &r, need);
        dst = e != NULL ? eddy__kv_value(e) : NULL;
    }
    if (dst != NULL) {
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
static int hk_get_for_update(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                             size_t size, void **value, bool *created)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    if (size > UINT32_MAX) {
        return EDDY_ERR_INVALID;
    }
    heap_ref_t r;
    int rc = ref_write(hk, sid, k, MODE_VALUE, &r);
    if (rc != 0) {
        return rc;
    }
    size_t need = r.hr_hdr + size;
    eddy__kv_entry_t *e = write_find(hk, &r);
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
        e = insert(hk, &r, need); /* zero-filled */
        dst = e != NULL ? eddy__kv_value(e) : NULL;
    }
    if (dst == NULL) {
        after_write(hk, &r);
        return rc != 0 ? rc : EDDY_ERR_NOMEM;
    }
    stamp(e, hk, r.hr_hdr);
    if (EDDY_UNLIKELY(after_write(hk, &r))) {
        /* Compaction moved the bytes: find the entry again (the composite
         * key is still in the scratch buffer). */
        e = write_find(hk, &r);
        assert(e != NULL);
        dst = eddy__kv_value(e);
    }
    *value = dst + r.hr_hdr;
    *created = fresh;
    return 0;
}

static int hk_remove(eddy__kstate_t *ks, int sid, const eddy__skey_t *k)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    heap_ref_t r;
    int rc = ref_init(hk, sid, k, &r);
    if (rc != 0 || *r.hr_slot == NULL) {
        return rc;
    }
    eddy__kv_entry_t *e = write_find(hk, &r);
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
    eddy__kv_entry_t *e = write_find(hk, &r);
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
        e = insert(hk, &r, r.hr_hdr + sizeof(l));
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
    eddy__kv_entry_t *e = write_find(hk, &r);
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
        e = insert(hk, &r, r.hr_hdr + sizeof(m));
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
    const heap_table_t *ht = hk->hk_tables[(size_t)sid * (size_t)hk->hk_nkg +
                                           (size_t)(kg - ks->ks_kg_first)];
    if (ht == NULL) {
        return 0;
    }
    int64_t ttl = ks->ks_specs[sid].ss_ttl_ms;
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
    return 0;
}

static size_t hk_size(eddy__kstate_t *ks)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    size_t ntables = (size_t)ks->ks_nstates * (size_t)hk->hk_nkg;
    size_t n =
        sizeof(*hk) + hk->hk_scratch_cap + ntables * sizeof(*hk->hk_tables);
    for (size_t i = 0; i < ntables; i++) {
        const heap_table_t *ht = hk->hk_tables[i];
        if (ht != NULL) {
            n += sizeof(*ht) + kv_bytes(&ht->ht_kv) + ht->ht_ext;
        }
    }
    return n;
}

static void hk_destroy(eddy__kstate_t *ks)
{
    heap_kstate_t *hk = (heap_kstate_t *)ks;
    for (int sid = 0; sid < ks->ks_nstates; sid++) {
        size_t hdr = ks->ks_specs[sid].ss_ttl_ms > 0 ? STAMP_BYTES : 0;
        for (int g = 0; g < hk->hk_nkg; g++) {
            heap_table_t *ht =
                hk->hk_tables[(size_t)sid * (size_t)hk->hk_nkg + (size_t)g];
            if (ht != NULL) {
                table_free(ht, mode_of(ks, sid), hdr);
            }
        }
    }
    free(hk->hk_tables);
    free(hk->hk_scratch);
    free(hk);
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
    .ko_for_each = hk_for_each,
    .ko_size = hk_size,
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
    size_t ntables = (size_t)nstates * (size_t)hk->hk_nkg;
    hk->hk_tables = calloc(ntables ? ntables : 1, sizeof(*hk->hk_tables));
    hk->hk_scratch = eddy__try_malloc(SCRATCH_MIN);
    if (hk->hk_tables == NULL || hk->hk_scratch == NULL) {
        free(hk->hk_tables);
        free(hk->hk_scratch);
        free(hk);
        return NULL;
    }
    hk->hk_scratch_cap = SCRATCH_MIN;
    hk->hk_base.ks_ops = &heap_ops;
    hk->hk_base.ks_specs = specs;
    hk->hk_base.ks_nstates = nstates;
    hk->hk_base.ks_kg_first = kg_first;
    hk->hk_base.ks_kg_last = kg_last;
    hk->hk_base.ks_now_ms = 0;
    return &hk->hk_base;
}
