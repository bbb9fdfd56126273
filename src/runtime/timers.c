/*
 * eddy — the timer service (see timers.h for the contract).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. Each domain holds its registered timers in three structures that
 * always contain exactly the same entries:
 *
 *   - a binary min-heap of slots (timestamp, sequence number, entry) ordered
 *     by (timestamp, sequence number). The sequence number counts
 *     registrations in the domain, so equal timestamps fire in registration
 *     order. Every entry knows its heap index (te_heap), so deleting an
 *     arbitrary timer is O(log n) and the heap never holds dead entries:
 *     count() is the heap size and next() the heap top, both exact.
 *   - a hash set (open addressing, linear probing, backward-shift deletion)
 *     keyed by (timestamp, key bytes, namespace bytes) for deduplication and
 *     deletion. The slot hash mixes the key's sk_hash, the timestamp and a
 *     hash of the namespace; slots carry the hash so probes rarely touch an
 *     entry.
 *   - one doubly linked list per key group, so for_each(kg) (snapshots, which
 *     walk every key group of a subtask) costs the timers of that group, not
 *     all timers of the domain.
 *
 * Entries are single allocations with the key and namespace bytes inline.
 * A popped entry leaves all three structures at once but stays alive as
 * ts_fired until the next call on the service (the returned eddy__timer_t
 * points into it); that call then recycles it. add() and delete() recycle it
 * only after they are done with their arguments, so re-registering or
 * deleting a fired timer through the popped eddy__timer_t's own pointers is
 * safe.
 *
 * Recycled entries go to free lists by size class (four classes per power of
 * two from 64 bytes to 64 KiB; larger entries are freed at once). Arrays
 * only grow. Once the service has seen its peak population, add/pop/delete
 * cycles call no allocator at all. While on a free list an entry is poisoned
 * (for ASan, or filled with 0xdb in builds without NDEBUG), so code that
 * keeps a fired timer's pointers past the next call fails loudly.
 *
 * Out of memory: add() reserves heap, set and key-group capacity and takes
 * the entry before it changes anything, so EDDY_ERR_NOMEM leaves the service
 * as it was.
 *
 * THREADS. One subtask thread; no locks.
 */
#include <assert.h>
#include <stdlib.h>

#include "runtime/timers.h"

#if defined(__SANITIZE_ADDRESS__)
#define TIMERS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TIMERS_ASAN 1
#endif
#endif

#if defined(TIMERS_ASAN)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#elif !defined(NDEBUG)
#define POISON(p, n) memset((p), 0xdb, (n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Size classes: 64 bytes, then four per power of two up to 64 KiB. */
#define CLASS_MIN_SHIFT 6
#define CLASS_MAX_SHIFT 16
#define NCLASSES (1 + (CLASS_MAX_SHIFT - CLASS_MIN_SHIFT) * 4)
#define UNPOOLED NCLASSES

#define HEAP_MIN_CAP 64
#define SET_MIN_CAP 64
#define KG_MIN_CAP 16

/* One registered (or just fired, or recycled) timer. */
typedef struct tentry tentry_t;
struct tentry {
    tentry_t *te_next;       /* key-group list; free list while recycled */
    tentry_t *te_prev;       /* key-group list */
    int64_t te_ts;           /* the timer's timestamp */
    uint64_t te_hash;        /* set hash of (timestamp, key, namespace) */
    uint64_t te_khash;       /* the key's sk_hash */
    size_t te_heap;          /* index in the domain's heap */
    size_t te_klen;          /* key bytes at te_data */
    size_t te_nslen;         /* namespace bytes at te_data + te_klen */
    int te_kg;               /* the key's key group */
    unsigned te_class;       /* size class, or UNPOOLED */
    unsigned char te_data[]; /* key bytes, then namespace bytes */
};

/* A heap slot carries the ordering fields itself, so sifting compares
 * without touching entries. */
typedef struct hslot {
    int64_t hs_ts;
    uint64_t hs_seq; /* registration sequence number in the domain */
    tentry_t *hs_e;
} hslot_t;

typedef struct sslot {
    uint64_t ss_hash;
    tentry_t *ss_e; /* NULL: empty */
} sslot_t;

typedef struct tdomain {
    hslot_t *td_heap;
    size_t td_n; /* registered timers: heap size = set size */
    size_t td_heap_cap;
    sslot_t *td_set;
    size_t td_set_cap; /* 0 or a power of two */
    tentry_t **td_kgs; /* list heads by key group */
    size_t td_nkgs;
    uint64_t td_seq; /* next registration sequence number */
} tdomain_t;

struct eddy__timers {
    tdomain_t ts_dom[2];
    tentry_t *ts_free[NCLASSES];
    tentry_t *ts_fired; /* popped; alive until the next call */
    uint64_t ts_allocs; /* successful allocations (test hook) */
    int64_t ts_budget;  /* allocations still allowed; -1: unlimited */
};

/* Test hooks: deliberately not in timers.h. tests/unit/runtime/test_timers.c
 * declares them with these prototypes. */
uint64_t eddy__timers_allocations(const eddy__timers_t *ts);
void eddy__timers_set_alloc_budget(eddy__timers_t *ts, int64_t n);
int eddy__timers_check(const eddy__timers_t *ts);

/* ---- allocation ---- */

static void *talloc(eddy__timers_t *ts, size_t size)
{
    if (ts->ts_budget == 0) {
        return NULL;
    }
    void *p = eddy__try_malloc(size);
    if (p != NULL) {
        ts->ts_allocs++;
        if (ts->ts_budget > 0) {
            ts->ts_budget--;
        }
    }
    return p;
}

static void *trealloc(eddy__timers_t *ts, void *old, size_t size)
{
    if (ts->ts_budget == 0) {
        return NULL;
    }
    void *p = eddy__try_realloc(old, size);
    if (p != NULL) {
        ts->ts_allocs++;
        if (ts->ts_budget > 0) {
            ts->ts_budget--;
        }
    }
    return p;
}

static unsigned size_class(size_t size)
{
    if (size <= ((size_t)1 << CLASS_MIN_SHIFT)) {
        return 0;
    }
    size_t n = size - 1;
    unsigned p = 63u - (unsigned)__builtin_clzll((unsigned long long)n);
    if (p >= CLASS_MAX_SHIFT) {
        return UNPOOLED;
    }
    unsigned sub = (unsigned)(n >> (p - 2)) & 3u;
    return (p - CLASS_MIN_SHIFT) * 4u + sub + 1u;
}

static size_t class_size(unsigned c)
{
    if (c == 0) {
        return (size_t)1 << CLASS_MIN_SHIFT;
    }
    unsigned p = (c - 1) / 4 + CLASS_MIN_SHIFT;
    unsigned sub = (c - 1) % 4;
    return (size_t)(5 + sub) << (p - 2);
}

/* An entry with room for `data` inline bytes, or NULL on out of memory. */
static tentry_t *entry_take(eddy__timers_t *ts, size_t data)
{
    if (data > SIZE_MAX - sizeof(tentry_t)) {
        return NULL;
    }
    size_t size = sizeof(tentry_t) + data;
    unsigned c = size_class(size);
    tentry_t *e;
    if (c != UNPOOLED && (e = ts->ts_free[c]) != NULL) {
        /* te_next is never poisoned: it links the free list. */
        ts->ts_free[c] = e->te_next;
        UNPOISON(e, class_size(c));
    } else {
        e = talloc(ts, c != UNPOOLED ? class_size(c) : size);
        if (e == NULL) {
            return NULL;
        }
    }
    e->te_class = c;
    return e;
}

static void entry_recycle(eddy__timers_t *ts, tentry_t *e)
{
    unsigned c = e->te_class;
    if (c == UNPOOLED) {
        eddy__free(e);
        return;
    }
    e->te_next = ts->ts_free[c];
    ts->ts_free[c] = e;
    POISON((unsigned char *)e + sizeof(e->te_next),
           class_size(c) - sizeof(e->te_next));
}

/* Takes the class as an argument: a recycled entry's te_class is poisoned. */
static void entry_free(tentry_t *e, unsigned c)
{
    if (c != UNPOOLED) {
        UNPOISON(e, class_size(c));
    }
    eddy__free(e);
}

/* The popped entry's pointers die at the next call on the service. */
static void release_fired(eddy__timers_t *ts)
{
    if (ts->ts_fired != NULL) {
        entry_recycle(ts, ts->ts_fired);
        ts->ts_fired = NULL;
    }
}

/* ---- hashing and matching ---- */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

static inline uint64_t timer_hash(int64_t when, const eddy__skey_t *k)
{
    uint64_t nsh = k->sk_nslen > 0 ? eddy__hash64(k->sk_ns, k->sk_nslen) : 0;
    uint64_t t = mix64((uint64_t)when ^ ((nsh << 32) | (nsh >> 32)));
    return mix64(k->sk_hash ^ t);
}

static inline bool entry_matches(const tentry_t *e, int64_t when,
                                 const eddy__skey_t *k)
{
    if (e->te_ts != when || e->te_khash != k->sk_hash ||
        e->te_klen != k->sk_klen || e->te_nslen != k->sk_nslen) {
        return false;
    }
    if (e->te_klen > 0 && memcmp(e->te_data, k->sk_key, e->te_klen) != 0) {
        return false;
    }
    return e->te_nslen == 0 ||
           memcmp(e->te_data + e->te_klen, k->sk_ns, e->te_nslen) == 0;
}

static inline void entry_to_timer(const tentry_t *e, eddy__timer_t *t)
{
    t->tm_ts = e->te_ts;
    t->tm_key.sk_key = e->te_data;
    t->tm_key.sk_klen = e->te_klen;
    t->tm_key.sk_hash = e->te_khash;
    t->tm_key.sk_kg = e->te_kg;
    t->tm_key.sk_ns = e->te_data + e->te_klen;
    t->tm_key.sk_nslen = e->te_nslen;
}

/* ---- the heap ---- */

static inline bool hless(const hslot_t *a, const hslot_t *b)
{
    return a->hs_ts < b->hs_ts ||
           (a->hs_ts == b->hs_ts && a->hs_seq < b->hs_seq);
}

static void sift_up(tdomain_t *td, size_t i)
{
    hslot_t *h = td->td_heap;
    hslot_t s = h[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&s, &h[p])) {
            break;
        }
        h[i] = h[p];
        h[i].hs_e->te_heap = i;
        i = p;
    }
    h[i] = s;
    s.hs_e->te_heap = i;
}

static void sift_down(tdomain_t *td, size_t i)
{
    hslot_t *h = td->td_heap;
    size_t n = td->td_n;
    hslot_t s = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && hless(&h[c + 1], &h[c])) {
            c++;
        }
        if (!hless(&h[c], &s)) {
            break;
        }
        h[i] = h[c];
        h[i].hs_e->te_heap = i;
        i = c;
    }
    h[i] = s;
    s.hs_e->te_heap = i;
}

static void heap_remove(tdomain_t *td, size_t i)
{
    assert(i < td->td_n);
    td->td_n--;
    if (i == td->td_n) {
        return;
    }
    hslot_t *h = td->td_heap;
    h[i] = h[td->td_n];
    h[i].hs_e->te_heap = i;
    if (i > 0 && hless(&h[i], &h[(i - 1) / 2])) {
        sift_up(td, i);
    } else {
        sift_down(td, i);
    }
}

/* ---- the hash set ---- */

/* The slot holding the timer, or SIZE_MAX. */
static size_t set_find(const tdomain_t *td, uint64_t hash, int64_t when,
                       const eddy__skey_t *k)
{
    if (td->td_set_cap == 0) {
        return SIZE_MAX;
    }
    size_t mask = td->td_set_cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const sslot_t *s = &td->td_set[i];
        if (s->ss_e == NULL) {
            return SIZE_MAX;
        }
        if (s->ss_hash == hash && entry_matches(s->ss_e, when, k)) {
            return i;
        }
    }
}

/* The slot holding a registered entry. */
static size_t set_slot_of(const tdomain_t *td, const tentry_t *e)
{
    size_t mask = td->td_set_cap - 1;
    size_t i = e->te_hash & mask;
    while (td->td_set[i].ss_e != e) {
        assert(td->td_set[i].ss_e != NULL);
        i = (i + 1) & mask;
    }
    return i;
}

static void set_put(sslot_t *set, size_t cap, uint64_t hash, tentry_t *e)
{
    size_t mask = cap - 1;
    size_t i = hash & mask;
    while (set[i].ss_e != NULL) {
        i = (i + 1) & mask;
    }
    set[i].ss_hash = hash;
    set[i].ss_e = e;
}

/* Backward-shift deletion: no tombstones, so probes stay short. */
static void set_remove_at(tdomain_t *td, size_t i)
{
    sslot_t *set = td->td_set;
    size_t mask = td->td_set_cap - 1;
    for (;;) {
        set[i].ss_e = NULL;
        size_t j = i;
        for (;;) {
            j = (j + 1) & mask;
            if (set[j].ss_e == NULL) {
                return;
            }
            /* The entry at j may fill the hole at i unless its home slot
             * lies cyclically within (i, j]. */
            size_t home = set[j].ss_hash & mask;
            bool stays =
                i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!stays) {
                set[i] = set[j];
                i = j;
                break;
            }
        }
    }
}

/* ---- key-group lists ---- */

static void kg_link(tdomain_t *td, tentry_t *e)
{
    tentry_t **head = &td->td_kgs[e->te_kg];
    e->te_prev = NULL;
    e->te_next = *head;
    if (*head != NULL) {
        (*head)->te_prev = e;
    }
    *head = e;
}

static void kg_unlink(tdomain_t *td, tentry_t *e)
{
    if (e->te_prev != NULL) {
        e->te_prev->te_next = e->te_next;
    } else {
        td->td_kgs[e->te_kg] = e->te_next;
    }
    if (e->te_next != NULL) {
        e->te_next->te_prev = e->te_prev;
    }
}

/* ---- capacity ---- */

/* Makes room for one more timer of key group `kg` without changing any
 * timer; 0 or EDDY_ERR_NOMEM. */
static int reserve(eddy__timers_t *ts, tdomain_t *td, int kg)
{
    if (td->td_n == td->td_heap_cap) {
        size_t ncap = td->td_heap_cap ? td->td_heap_cap * 2 : HEAP_MIN_CAP;
        hslot_t *nh = trealloc(ts, td->td_heap, ncap * sizeof(*nh));
        if (nh == NULL) {
            return EDDY_ERR_NOMEM;
        }
        td->td_heap = nh;
        td->td_heap_cap = ncap;
    }
    /* Keep the set at most 3/4 full. */
    if ((td->td_n + 1) * 4 > td->td_set_cap * 3) {
        size_t ncap = td->td_set_cap ? td->td_set_cap * 2 : SET_MIN_CAP;
        sslot_t *ns = talloc(ts, ncap * sizeof(*ns));
        if (ns == NULL) {
            return EDDY_ERR_NOMEM;
        }
        memset(ns, 0, ncap * sizeof(*ns));
        for (size_t i = 0; i < td->td_set_cap; i++) {
            if (td->td_set[i].ss_e != NULL) {
                set_put(ns, ncap, td->td_set[i].ss_hash, td->td_set[i].ss_e);
            }
        }
        eddy__free(td->td_set);
        td->td_set = ns;
        td->td_set_cap = ncap;
    }
    if ((size_t)kg >= td->td_nkgs) {
        size_t ncap = EDDY_MAX((size_t)kg + 1, td->td_nkgs * 2);
        ncap = EDDY_MAX(ncap, (size_t)KG_MIN_CAP);
        tentry_t **nk = trealloc(ts, td->td_kgs, ncap * sizeof(*nk));
        if (nk == NULL) {
            return EDDY_ERR_NOMEM;
        }
        memset(nk + td->td_nkgs, 0, (ncap - td->td_nkgs) * sizeof(*nk));
        td->td_kgs = nk;
        td->td_nkgs = ncap;
    }
    return 0;
}

/* ---- the interface ---- */

eddy__timers_t *eddy__timers_new(void)
{
    eddy__timers_t *ts = eddy__calloc(1, sizeof(*ts));
    ts->ts_budget = -1;
    return ts;
}

void eddy__timers_destroy(eddy__timers_t *ts)
{
    if (ts == NULL) {
        return;
    }
    for (size_t d = 0; d < EDDY_ARRAY_SIZE(ts->ts_dom); d++) {
        tdomain_t *td = &ts->ts_dom[d];
        for (size_t i = 0; i < td->td_n; i++) {
            entry_free(td->td_heap[i].hs_e, td->td_heap[i].hs_e->te_class);
        }
        eddy__free(td->td_heap);
        eddy__free(td->td_set);
        eddy__free(td->td_kgs);
    }
    if (ts->ts_fired != NULL) {
        entry_free(ts->ts_fired, ts->ts_fired->te_class);
    }
    for (size_t c = 0; c < NCLASSES; c++) {
        tentry_t *e = ts->ts_free[c];
        while (e != NULL) {
            tentry_t *next = e->te_next;
            entry_free(e, (unsigned)c);
            e = next;
        }
    }
    eddy__free(ts);
}

int eddy__timers_add(eddy__timers_t *ts, int domain, int64_t when,
                     const eddy__skey_t *k)
{
    assert(domain == EDDY__TIME_EVENT || domain == EDDY__TIME_PROCESSING);
    assert(k->sk_kg >= 0);
    tdomain_t *td = &ts->ts_dom[domain];
    uint64_t hash = timer_hash(when, k);
    int rc = 0;
    tentry_t *e = NULL;

    if (set_find(td, hash, when, k) != SIZE_MAX) {
        goto out; /* already registered: keeps its place */
    }
    if ((rc = reserve(ts, td, k->sk_kg)) != 0) {
        goto out;
    }
    if (k->sk_klen > SIZE_MAX - k->sk_nslen ||
        (e = entry_take(ts, k->sk_klen + k->sk_nslen)) == NULL) {
        rc = EDDY_ERR_NOMEM;
        goto out;
    }
    e->te_ts = when;
    e->te_hash = hash;
    e->te_khash = k->sk_hash;
    e->te_klen = k->sk_klen;
    e->te_nslen = k->sk_nslen;
    e->te_kg = k->sk_kg;
    if (k->sk_klen > 0) {
        memcpy(e->te_data, k->sk_key, k->sk_klen);
    }
    if (k->sk_nslen > 0) {
        memcpy(e->te_data + k->sk_klen, k->sk_ns, k->sk_nslen);
    }
    set_put(td->td_set, td->td_set_cap, hash, e);
    kg_link(td, e);
    size_t i = td->td_n++;
    td->td_heap[i].hs_ts = when;
    td->td_heap[i].hs_seq = td->td_seq++;
    td->td_heap[i].hs_e = e;
    sift_up(td, i);
out:
    /* Only now: `k` may point into the fired entry. */
    release_fired(ts);
    return rc;
}

int eddy__timers_delete(eddy__timers_t *ts, int domain, int64_t when,
                        const eddy__skey_t *k)
{
    assert(domain == EDDY__TIME_EVENT || domain == EDDY__TIME_PROCESSING);
    tdomain_t *td = &ts->ts_dom[domain];
    size_t i = set_find(td, timer_hash(when, k), when, k);
    if (i != SIZE_MAX) {
        tentry_t *e = td->td_set[i].ss_e;
        set_remove_at(td, i);
        heap_remove(td, e->te_heap);
        kg_unlink(td, e);
        entry_recycle(ts, e);
    }
    /* Only now: `k` may point into the fired entry. */
    release_fired(ts);
    return 0;
}

int eddy__timers_pop(eddy__timers_t *ts, int domain, int64_t limit,
                     eddy__timer_t *out)
{
    assert(domain == EDDY__TIME_EVENT || domain == EDDY__TIME_PROCESSING);
    tdomain_t *td = &ts->ts_dom[domain];
    release_fired(ts);
    if (td->td_n == 0 || td->td_heap[0].hs_ts > limit) {
        return 0;
    }
    tentry_t *e = td->td_heap[0].hs_e;
    heap_remove(td, 0);
    set_remove_at(td, set_slot_of(td, e));
    kg_unlink(td, e);
    ts->ts_fired = e;
    entry_to_timer(e, out);
    return 1;
}

int64_t eddy__timers_next(const eddy__timers_t *ts, int domain)
{
    assert(domain == EDDY__TIME_EVENT || domain == EDDY__TIME_PROCESSING);
    const tdomain_t *td = &ts->ts_dom[domain];
    return td->td_n > 0 ? td->td_heap[0].hs_ts : INT64_MAX;
}

size_t eddy__timers_count(const eddy__timers_t *ts, int domain)
{
    assert(domain == EDDY__TIME_EVENT || domain == EDDY__TIME_PROCESSING);
    return ts->ts_dom[domain].td_n;
}

/* fn must not call into the service: the walk follows the live lists. */
int eddy__timers_for_each(eddy__timers_t *ts, int domain, int kg,
                          int (*fn)(void *arg, const eddy__timer_t *t),
                          void *arg)
{
    assert(domain == EDDY__TIME_EVENT || domain == EDDY__TIME_PROCESSING);
    tdomain_t *td = &ts->ts_dom[domain];
    release_fired(ts);
    if (kg < 0 || (size_t)kg >= td->td_nkgs) {
        return 0;
    }
    for (const tentry_t *e = td->td_kgs[kg]; e != NULL; e = e->te_next) {
        eddy__timer_t t;
        entry_to_timer(e, &t);
        int rc = fn(arg, &t);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- test hooks ---- */

uint64_t eddy__timers_allocations(const eddy__timers_t *ts)
{
    return ts->ts_allocs;
}

/* Lets the next n allocations succeed and fails the rest (n < 0: no limit). */
void eddy__timers_set_alloc_budget(eddy__timers_t *ts, int64_t n)
{
    ts->ts_budget = n < 0 ? -1 : n;
}

/* Verifies every invariant; 0, or the number of the first that fails. */
int eddy__timers_check(const eddy__timers_t *ts)
{
    for (size_t d = 0; d < EDDY_ARRAY_SIZE(ts->ts_dom); d++) {
        const tdomain_t *td = &ts->ts_dom[d];
        if (td->td_n > td->td_heap_cap || td->td_n * 4 > td->td_set_cap * 3) {
            return 1;
        }
        for (size_t i = 0; i < td->td_n; i++) {
            const hslot_t *s = &td->td_heap[i];
            const tentry_t *e = s->hs_e;
            if (e == NULL || e == ts->ts_fired || e->te_heap != i ||
                s->hs_ts != e->te_ts || s->hs_seq >= td->td_seq) {
                return 2;
            }
            if (i > 0 && hless(s, &td->td_heap[(i - 1) / 2])) {
                return 3; /* heap order */
            }
            if (e->te_class !=
                size_class(sizeof(tentry_t) + e->te_klen + e->te_nslen)) {
                return 4;
            }
            if ((size_t)e->te_kg >= td->td_nkgs) {
                return 5;
            }
            eddy__skey_t k = {e->te_data,
                              e->te_klen,
                              e->te_khash,
                              e->te_kg,
                              e->te_data + e->te_klen,
                              e->te_nslen};
            if (e->te_hash != timer_hash(e->te_ts, &k)) {
                return 6;
            }
            /* Reachable from its home slot without crossing a gap. */
            size_t j = set_find(td, e->te_hash, e->te_ts, &k);
            if (j == SIZE_MAX || td->td_set[j].ss_e != e) {
                return 7;
            }
        }
        size_t used = 0;
        for (size_t i = 0; i < td->td_set_cap; i++) {
            const sslot_t *s = &td->td_set[i];
            if (s->ss_e != NULL) {
                used++;
                if (s->ss_hash != s->ss_e->te_hash ||
                    s->ss_e->te_heap >= td->td_n ||
                    td->td_heap[s->ss_e->te_heap].hs_e != s->ss_e) {
                    return 8;
                }
            }
        }
        if (used != td->td_n) {
            return 9;
        }
        size_t listed = 0;
        for (size_t g = 0; g < td->td_nkgs; g++) {
            const tentry_t *prev = NULL;
            for (const tentry_t *e = td->td_kgs[g]; e != NULL; e = e->te_next) {
                if (e->te_prev != prev || (size_t)e->te_kg != g ||
                    e->te_heap >= td->td_n ||
                    td->td_heap[e->te_heap].hs_e != e) {
                    return 10;
                }
                prev = e;
                if (++listed > td->td_n) {
                    return 11;
                }
            }
        }
        if (listed != td->td_n) {
            return 11;
        }
    }
    return 0;
}
