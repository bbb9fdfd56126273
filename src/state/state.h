/*
 * eddy — keyed state: the backend interface and the heap backend.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN (DESIGN.md §5). A keyed operator subtask owns one state backend
 * instance (eddy__kstate_t). It holds every state the operator declared
 * (eddy_state_desc_t, indexed 0..n-1 in declaration order), for the key
 * groups the subtask owns. Every access names a state id and a "state key":
 * the record's key (with its hash and key group, computed once per record)
 * plus a namespace (bytes; empty for plain keyed state, the window for
 * window state).
 *
 * The interface is a vtable so that a RocksDB backend (issue 4: key = key
 * group (2 bytes BE) + key + namespace, one column family per state) sits
 * behind the same calls. The heap backend keeps one hash table per
 * (state, key group), created lazily, so a snapshot per key group is a walk
 * over that group's tables, and rescaling moves whole tables.
 *
 * Values are bytes. Pointers returned by get/iterate calls stay valid until
 * the next call that modifies the same state of the same backend, and
 * across at least 8 further reads of that state (the RocksDB backend copies
 * values into a small ring of buffers): operators must not hold more.
 *
 * TTL (desc.ttl_ms > 0): every write stamps the entry with the backend's
 * current time (eddy__kstate_set_time, processing time in ms); a read of an
 * entry older than ttl_ms finds nothing and removes it; and every write also
 * examines a few other entries of the same table and removes expired ones
 * (incremental cleanup), so expired state does not pile up even for keys
 * never read again. For list and map state the whole (key, namespace) entry
 * expires together, measured from its last write.
 *
 * THREADS. One backend instance belongs to one subtask thread.
 */
#ifndef EDDY_STATE_STATE_H
#define EDDY_STATE_STATE_H

#include "checkpoint/checkpoint.h"
#include "common/internal.h"

/* The key part of every state access. */
typedef struct eddy__skey {
    const void *sk_key;
    size_t sk_klen;
    uint64_t sk_hash; /* eddy__hash64(key) */
    int sk_kg;        /* eddy__key_group(hash, max_parallelism) */
    const void *sk_ns;
    size_t sk_nslen;
} eddy__skey_t;

/* Iterates a list (values) or a map (keys and values). */
typedef struct eddy__siter {
    void *si_impl[4]; /* backend-private cursor */
} eddy__siter_t;

typedef struct eddy__kstate eddy__kstate_t;

typedef struct eddy__kstate_ops {
    const char *ko_name; /* "heap", "rocksdb" */
    void (*ko_destroy)(eddy__kstate_t *ks);

    /* VALUE, REDUCING, AGGREGATING: one byte string per (key, ns).
     * get returns 1 and sets *v and *len if present, 0 if absent. */
    int (*ko_get)(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                  const void **v, size_t *len);
    int (*ko_put)(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                  const void *v, size_t len);
    /* VALUE, REDUCING, AGGREGATING, for fixed-size values updated in place
     * (window accumulators): one lookup instead of a get and a put. Sets
     * *value to the entry's `size` value bytes, writable in place, and
     * returns 0. An absent (or expired) entry is first inserted with `size`
     * zero bytes and *created set; otherwise *created is false and the bytes
     * are the current value. Counts as a write: with TTL the entry is
     * stamped with the current time. *value stays valid until the next call
     * that modifies the same state. An existing value of another length is
     * left alone: EDDY_ERR_FORMAT. Other errors: EDDY_ERR_INVALID (wrong
     * kind, too big), EDDY_ERR_NOMEM. */
    int (*ko_get_for_update)(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                             size_t size, void **value, bool *created);
    /* Removes (key, ns) from any kind of state; 0 whether or not present. */
    int (*ko_remove)(eddy__kstate_t *ks, int sid, const eddy__skey_t *k);

    /* LIST: append one element; iterate in insertion order. */
    int (*ko_list_add)(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                       const void *v, size_t len);
    /* Starts iterating; returns 1 if the list exists (non-empty), else 0. */
    int (*ko_list_iter)(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                        eddy__siter_t *it);
    /* Next element: 1 with *v and *len, 0 at the end. */
    int (*ko_list_next)(eddy__siter_t *it, const void **v, size_t *len);

    /* MAP: user key → value within (key, ns). */
    int (*ko_map_put)(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                      const void *uk, size_t uklen, const void *v, size_t vlen);
    int (*ko_map_get)(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                      const void *uk, size_t uklen, const void **v,
                      size_t *vlen);
    int (*ko_map_remove)(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                         const void *uk, size_t uklen);
    int (*ko_map_iter)(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                       eddy__siter_t *it);
    int (*ko_map_next)(eddy__siter_t *it, const void **uk, size_t *uklen,
                       const void **v, size_t *vlen);

    /* Every (key, ns) of a state within one key group, for snapshots,
     * window triggers on restore and tests. Calls fn for each; stops at the
     * first non-zero return and passes it on. Must not be used to modify
     * the state it walks. */
    int (*ko_for_each)(eddy__kstate_t *ks, int sid, int kg,
                       int (*fn)(void *arg, const void *key, size_t klen,
                                 const void *ns, size_t nslen),
                       void *arg);

    /* A hint that (sid, k) will be read soon: a backend that can starts
     * loading it into the cache now, so an operator that reads several
     * entries in a row (a sliding window combining its slices) waits for
     * their cache misses at once, not one after the other. NULL-able;
     * changes nothing. */
    void (*ko_prefetch)(eddy__kstate_t *ks, int sid, const eddy__skey_t *k);

    /* Approximate bytes held (metrics: eddy_state_size_bytes). */
    size_t (*ko_size)(eddy__kstate_t *ks);

    /* Checkpoints (src/checkpoint/checkpoint.h). ko_snapshot is the
     * synchronous part, on the task thread, and must be cheap: it returns a
     * frozen view whose ks_write runs later on another thread while the
     * task keeps changing the live state. */
    int (*ko_snapshot)(eddy__kstate_t *ks, int64_t ckpt_id, bool savepoint,
                       eddy__ksnap_t **out);
    /* Loads the key groups of this backend's range from the handles
     * (before any other call). Handles of states this backend does not
     * declare are an error naming the state, unless allow_unknown_states. */
    int (*ko_restore)(eddy__kstate_t *ks, const eddy__restore_src_t *src,
                      bool allow_unknown_states, eddy_error_t *err);
    /* Checkpoint n completed: incremental backends may now reference the
     * files of n in later checkpoints. NULL-able. */
    void (*ko_notify_complete)(eddy__kstate_t *ks, int64_t ckpt_id);
} eddy__kstate_ops_t;

/* Maps a namespace (never empty) to a lane; see eddy__state_spec_t. */
typedef unsigned (*eddy__state_lane_fn)(const void *ns, size_t nslen,
                                        const void *arg);

#define EDDY__STATE_MAX_LANES 64

/* Declared states, as the backend needs them. */
typedef struct eddy__state_spec {
    const char *ss_name;
    int ss_kind;       /* eddy_state_kind_t */
    int64_t ss_ttl_ms; /* 0 = no TTL */
    /*
     * Lanes, a layout hint (optional; zero = none). A state whose namespaces
     * many keys share and that come and go together (time windows and
     * slices: all keys write the newest one, the oldest one empties as a
     * whole) names a function from namespace to lane and the number of
     * lanes (a power of two, at most EDDY__STATE_MAX_LANES; the lane is
     * taken modulo it). The heap backend keeps the entries of each lane in
     * tables of their own, so the entries written now are not spread
     * among those of every live window (docs/state.md "Lanes"). The lane
     * must depend on the namespace bytes alone (restores recompute it);
     * entries without a namespace are in lane 0. It changes no semantics
     * and no snapshot format; other backends ignore it.
     */
    unsigned ss_lanes;
    eddy__state_lane_fn ss_lane;
    const void *ss_lane_arg;
} eddy__state_spec_t;

struct eddy__kstate {
    const eddy__kstate_ops_t *ks_ops;
    const eddy__state_spec_t *ks_specs;
    int ks_nstates;
    int ks_kg_first; /* key groups owned: first..last inclusive */
    int ks_kg_last;
    int64_t ks_now_ms; /* processing time for TTL stamps */
};

/*
 * Creates a heap backend for `nstates` states (specs are borrowed and must
 * outlive it) owning key groups first..last. Returns NULL on out of memory.
 */
eddy__kstate_t *eddy__heap_kstate_new(const eddy__state_spec_t *specs,
                                      int nstates, int kg_first, int kg_last);

/*
 * Creates a RocksDB backend (src/state/rocksdb_backend.c) for the same
 * states and key groups, its database in `workdir` (created if missing; it
 * must not hold a database already). The working files are removed on
 * destroy; durability comes from checkpoints. Pointers returned by reads
 * stay valid until the next call that modifies the same state or 8 further
 * reads of that state. Returns NULL with `err` set.
 */
eddy__kstate_t *eddy__rocksdb_kstate_new(const eddy__state_spec_t *specs,
                                         int nstates, int kg_first, int kg_last,
                                         const char *workdir,
                                         eddy_error_t *err);

static inline void eddy__kstate_destroy(eddy__kstate_t *ks)
{
    if (ks != NULL) {
        ks->ks_ops->ko_destroy(ks);
    }
}

/* Sets the time used for TTL stamps and expiry (ms). */
static inline void eddy__kstate_set_time(eddy__kstate_t *ks, int64_t now_ms)
{
    ks->ks_now_ms = now_ms;
}

#endif /* EDDY_STATE_STATE_H */
