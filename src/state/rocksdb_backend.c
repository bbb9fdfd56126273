/*
 * eddy — the RocksDB keyed-state backend (see state.h for the contract).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN (DESIGN.md §5, §6; docs/state-rocksdb.md has the measurements).
 * One RocksDB database per backend instance, in <workdir>/db, with one
 * column family per state (named after the state; a state called "default"
 * uses RocksDB's default family). The database is scratch space: the
 * write-ahead log is off and durability comes from checkpoints, so it is
 * removed on destroy (and the working directory with it, unless something
 * else was put there).
 *
 * Keys: key group (2 bytes, big-endian), varint key length, key, varint
 * namespace length, namespace. The lengths make (key, namespace) pairs
 * unambiguous ("ab"+"c" is not "a"+"bc") and the leading key group makes a
 * key-group range one contiguous key range (for_each, snapshots, rescaling).
 * MAP state appends a tag: 0 for the map's header, 1 followed by the user
 * key for each entry, so one map is the contiguous range [prefix+0,
 * prefix+2) and its entries sort after its header.
 *
 * Values: with TTL an 8-byte stamp (little-endian ms of the last write)
 * first, then
 *   VALUE, REDUCING, AGGREGATING: the value bytes;
 *   LIST: the elements as (u32 LE length, bytes), appended with RocksDB's
 *         merge operator (below);
 *   MAP:  each entry's value is the user value; with TTL the header holds
 *         the stamp of the whole map (the heap backend's "a list or map
 *         expires whole, from its last write"), without TTL there is no
 *         header.
 *
 * LIST layout, chosen by measurement (100k lists x 10 elements of 32 bytes,
 * WAL off, this machine): a merge operand per element adds 242k elements/s
 * and reads 216k lists/s (392k/s after compaction); one key per element
 * under a per-list header (which must be read on every add to find the next
 * sequence number and to refresh the TTL) adds 135k/s and reads 119k lists/s
 * (171k/s compacted). Merge wins both ways: an add is a blind write. Merge
 * operands carry (first stamp, last stamp) with TTL, so the merge can start
 * the list afresh when an add comes after the list expired, exactly as the
 * heap backend does, whichever order RocksDB merges in.
 *
 * Writes are batched. VALUE-kind writes (put, remove, get_for_update) go to
 * a write-back cache: a hash table of dirty entries in an arena, consulted by
 * every read and flushed as one WriteBatch when it holds CACHE_MAX entries
 * or CACHE_MAX_BYTES (batched puts run at about 2.5x single puts here).
 * LIST and MAP writes are appended to a pending WriteBatch that is committed
 * when it is large, or before any read of a state with pending writes.
 *
 * get_for_update returns a pointer into a per-state "pin" buffer holding
 * the entry; the caller writes through it until the next call that modifies
 * the same state, which moves the pin's bytes into the write-back cache.
 * While pinned, the bytes are written at every cache flush (so snapshots
 * see them) and reads see them. Calling it again for the same key returns
 * the same pointer, like the heap backend.
 *
 * Pointers returned by reads point into a ring of RING_SLOTS read slots per
 * state (a pinned RocksDB slice or a copy): they stay valid until the next
 * call that modifies the same state or until RING_SLOTS further reads of the
 * same state, whichever comes first. (The heap backend keeps them valid
 * across any number of reads; a copying backend cannot without unbounded
 * memory, and no operator holds more than two at once.) A map iteration is
 * materialised into one slot, so an abandoned iterator holds no RocksDB
 * resources.
 *
 * TTL: a read of an expired entry deletes it and reports it absent; every
 * write to a TTL state examines CLEANUP_ENTRIES more entries of that state
 * through a cursor (a RocksDB iterator walking the backend's key range) and
 * deletes the expired ones. The cursor reopens where it was whenever the
 * database was written since it opened (rk_epoch), so its view is current
 * and only the write-back cache, a pin or the pending batch can hold newer
 * bytes (checked); it also reopens every CLEANUP_REFRESH steps so it does
 * not pin old files. After a full sweep it rests for CLEANUP_PAUSE writes.
 * for_each skips expired entries.
 *
 * CHECKPOINTS. ko_snapshot (task thread) flushes the cache and creates a
 * RocksDB checkpoint in <workdir>/snap-<n>-<seq>: memtables are flushed and
 * SST files hard-linked, so it costs one memtable flush. ks_write (snapshot
 * thread) then either
 *  - for a checkpoint: copies into <shared> only the SST files that no
 *    completed checkpoint this backend was notified of already holds, named
 *    <backend uuid>-<checkpoint id>-<file> so that no two uploads share a
 *    name; copies the small private files (MANIFEST, CURRENT, OPTIONS) into
 *    chk-<n> as <stem>.rocksdb.<file>; and records every file with its size
 *    and CRC-32C in the handle:
 *      {"type": "rocksdb", "kg": [first, last], "states": [{name, kind,
 *       ttl_ms}...], "shared": [...], "private": [...],
 *       "sst": [{name, path, size, crc32c}...], "meta": [...same...]}
 *    Only files listed by the latest checkpoint notified complete
 *    (ko_notify_complete) are ever referenced, never those of a pending
 *    one, so the coordinator may delete a shared file as soon as no retained
 *    checkpoint lists it;
 *  - for a savepoint: writes the canonical format (checkpoint.h), reading
 *    the frozen checkpoint opened read-only.
 * Restore reads canonical handles through eddy__canon_load; a single
 * "rocksdb" handle of exactly this key-group range with the same states is
 * materialised as the new database (files copied and verified); otherwise
 * (rescaling, several handles, changed TTL) each handle is opened read-only
 * in a temporary directory and the entries of this backend's key groups are
 * copied over. A failed restore leaves an empty backend (or, if even that
 * cannot be opened, one whose every call fails).
 *
 * THREADS. A backend instance belongs to one subtask thread. A snapshot's
 * ks_write and ks_release may run on another thread, even after the backend
 * is destroyed: they share only the reference-counted registry (uuid,
 * confirmed files, working directory), guarded by its mutex, and RocksDB's
 * thread-safe process-wide block cache.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/storage.h"
#include "common/bytes.h"
#include "state/state.h"

enum { MODE_VALUE, MODE_LIST, MODE_MAP };

#define STAMP_BYTES 8
#define LIST_OP_HDR 16 /* (first stamp, last stamp) of a TTL list operand */
#define TAG_HEADER 0
#define TAG_ENTRY 1
#define RING_SLOTS 8
#define CACHE_MAX 1024
#define CACHE_SLOTS 2048 /* power of two, >= 2 * CACHE_MAX */
#define CACHE_MAX_BYTES (4u << 20)
#define CACHE_CHUNK (256u << 10)
#define BATCH_MAX_OPS 1024
#define BATCH_MAX_BYTES (4u << 20)
#define CLEANUP_ENTRIES 4
#define CLEANUP_REFRESH 1024
#define CLEANUP_PAUSE 256
#define BLOCK_CACHE_BYTES ((size_t)256 << 20)
#define WRITE_BUFFER_BYTES ((size_t)16 << 20)
#define COPY_CHUNK (1u << 20)
#define MAX_KG 65535 /* the key group is 2 bytes */

/* ---- little helpers ---- */

static inline void le64_put(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static inline uint64_t le64_get(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static inline void le32_put(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static inline uint32_t le32_get(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline size_t varint_put(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

static bool varint_get(const unsigned char **p, const unsigned char *end,
                       uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        unsigned char b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* "A read of an entry older than ttl_ms finds nothing" (state.h): expired
 * once the age exceeds ttl; a clock that went backwards expires nothing. */
static inline bool expired_at(int64_t stamp, int64_t ttl, int64_t now)
{
    return ttl > 0 && now > stamp &&
           (uint64_t)now - (uint64_t)stamp > (uint64_t)ttl;
}

/* Grows a scratch buffer; 0 or EDDY_ERR_NOMEM. */
static int reserve(unsigned char **buf, size_t *cap, size_t need)
{
    if (EDDY_LIKELY(need <= *cap)) {
        return 0;
    }
    size_t ncap = EDDY_MAX(need, EDDY_MAX(*cap * 2, (size_t)64));
    unsigned char *p = eddy__try_realloc(*buf, ncap);
    if (p == NULL) {
        return EDDY_ERR_NOMEM;
    }
    *buf = p;
    *cap = ncap;
    return 0;
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = eddy__malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int mode_of_kind(int kind)
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

/* ---- keys ---- */

/* Upper bound of the encoded prefix around a key and a namespace. */
static inline size_t prefix_max(const eddy__skey_t *k)
{
    return 2 + 10 + k->sk_klen + 10 + k->sk_nslen;
}

static size_t prefix_put(unsigned char *p, const eddy__skey_t *k)
{
    p[0] = (unsigned char)(k->sk_kg >> 8);
    p[1] = (unsigned char)k->sk_kg;
    size_t n = 2 + varint_put(p + 2, k->sk_klen);
    if (k->sk_klen > 0) {
        memcpy(p + n, k->sk_key, k->sk_klen);
        n += k->sk_klen;
    }
    n += varint_put(p + n, k->sk_nslen);
    if (k->sk_nslen > 0) {
        memcpy(p + n, k->sk_ns, k->sk_nslen);
        n += k->sk_nslen;
    }
    return n;
}

/* A RocksDB key split back into its parts. */
typedef struct dkey {
    int dk_kg;
    const unsigned char *dk_key;
    size_t dk_klen;
    const unsigned char *dk_ns;
    size_t dk_nslen;
    size_t dk_plen; /* bytes of the (kg, key, ns) prefix */
    const unsigned char *dk_rest;
    size_t dk_restlen;
} dkey_t;

static bool key_parse(const void *key, size_t n, dkey_t *d)
{
    const unsigned char *p = key, *end = p + n;
    uint64_t kl, nl;
    if (n < 2) {
        return false;
    }
    d->dk_kg = p[0] << 8 | p[1];
    p += 2;
    if (!varint_get(&p, end, &kl) || kl > (uint64_t)(end - p)) {
        return false;
    }
    d->dk_key = p;
    d->dk_klen = (size_t)kl;
    p += kl;
    if (!varint_get(&p, end, &nl) || nl > (uint64_t)(end - p)) {
        return false;
    }
    d->dk_ns = p;
    d->dk_nslen = (size_t)nl;
    p += nl;
    d->dk_plen = (size_t)(p - (const unsigned char *)key);
    d->dk_rest = p;
    d->dk_restlen = (size_t)(end - p);
    return true;
}

/* ---- the registry shared with snapshots ---- */

typedef struct rfile {
    char *f_name; /* local file name, e.g. 000012.sst */
    char *f_abs;  /* absolute path of its copy in checkpoint storage */
    uint64_t f_size;
    uint32_t f_crc;
} rfile_t;

typedef struct rfiles {
    int64_t fl_id;
    rfile_t *fl_v;
    size_t fl_n;
} rfiles_t;

typedef struct rshared {
    pthread_mutex_t sh_mu;
    int sh_refs;
    char *sh_dir; /* the working directory, removed with the last ref */
    char sh_uuid[33];
    unsigned sh_seq;       /* unique names of staging and restore dirs */
    rfiles_t sh_confirmed; /* files of the latest completed checkpoint */
    rfiles_t *sh_pending;  /* files of written, not yet completed ones */
    size_t sh_npending;
} rshared_t;

static void rfiles_free(rfiles_t *fl)
{
    for (size_t i = 0; i < fl->fl_n; i++) {
        free(fl->fl_v[i].f_name);
        free(fl->fl_v[i].f_abs);
    }
    free(fl->fl_v);
    fl->fl_v = NULL;
    fl->fl_n = 0;
}

static void rfiles_add(rfiles_t *fl, const char *name, const char *abs,
                       uint64_t size, uint32_t crc)
{
    fl->fl_v = eddy__realloc(fl->fl_v, sizeof(rfile_t) * (fl->fl_n + 1));
    rfile_t *f = &fl->fl_v[fl->fl_n++];
    f->f_name = eddy__strdup(name);
    f->f_abs = eddy__strdup(abs);
    f->f_size = size;
    f->f_crc = crc;
}

static void shared_unref(rshared_t *sh)
{
    if (sh == NULL) {
        return;
    }
    eddy__mutex_lock(&sh->sh_mu);
    bool last = --sh->sh_refs == 0;
    eddy__mutex_unlock(&sh->sh_mu);
    if (!last) {
        return;
    }
    /* Everything in it was removed by its owner (the database by the
     * backend, snapshot and restore directories after use); the directory
     * itself goes only if nothing else was put there. */
    rmdir(sh->sh_dir);
    rfiles_free(&sh->sh_confirmed);
    for (size_t i = 0; i < sh->sh_npending; i++) {
        rfiles_free(&sh->sh_pending[i]);
    }
    free(sh->sh_pending);
    free(sh->sh_dir);
    pthread_mutex_destroy(&sh->sh_mu);
    free(sh);
}

static unsigned shared_seq(rshared_t *sh)
{
    eddy__mutex_lock(&sh->sh_mu);
    unsigned n = sh->sh_seq++;
    eddy__mutex_unlock(&sh->sh_mu);
    return n;
}

/* ---- the backend ---- */

typedef struct rslot {
    rocksdb_pinnableslice_t *sl_ps; /* or NULL: the bytes are in sl_buf */
    unsigned char *sl_buf;
    size_t sl_cap;
} rslot_t;

typedef struct rstate {
    rocksdb_column_family_handle_t *st_cf;
    int st_mode;
    int64_t st_ttl;
    size_t st_hdr;    /* STAMP_BYTES with TTL, else 0 */
    bool st_in_batch; /* writes of this state wait in rk_wb */
    rslot_t st_ring[RING_SLOTS];
    unsigned st_next;
    /* get_for_update: the pinned entry */
    bool st_pinned;
    uint64_t st_phash;
    unsigned char *st_pkey;
    size_t st_pklen, st_pkcap;
    unsigned char *st_pval;
    size_t st_pvlen, st_pvcap;
    /* TTL cleanup cursor */
    rocksdb_iterator_t *st_cur;
    unsigned st_cur_steps;
    unsigned st_cur_pause;
    uint64_t st_cur_epoch;    /* rk_epoch when the cursor opened */
    unsigned char *st_resume; /* key to seek to when the cursor reopens */
    size_t st_resume_len, st_resume_cap;
} rstate_t;

/* A dirty VALUE-kind entry of the write-back cache. */
typedef struct centry {
    unsigned char *ce_key;
    unsigned char *ce_val;
    uint64_t ce_hash;
    uint32_t ce_klen;
    uint32_t ce_vlen;
    uint32_t ce_vcap;
    int ce_sid;
    bool ce_used;
    bool ce_del;  /* a deletion */
    bool ce_gone; /* no bytes here: they are in the state's pin (or, after
                     a failed unpin, in the database) */
} centry_t;

typedef struct rk {
    eddy__kstate_t rk_base; /* first: the public view */
    rshared_t *rk_sh;
    char *rk_dbdir;
    rocksdb_t *rk_db;
    rocksdb_column_family_handle_t **rk_cfs; /* [0] is "default" */
    int rk_ncfs;
    rocksdb_checkpoint_t *rk_cpt;
    rocksdb_writeoptions_t *rk_wo;
    rocksdb_readoptions_t *rk_ro;     /* point reads */
    rocksdb_readoptions_t *rk_ro_it;  /* short internal iterations */
    rocksdb_readoptions_t *rk_ro_cur; /* cleanup cursors: whole range */
    unsigned char rk_lo[2], rk_hi[2]; /* the backend's key range */
    rocksdb_writebatch_t *rk_wb;
    rstate_t *rk_st;
    /* write-back cache */
    centry_t *rk_cache;
    uint32_t *rk_cused; /* slots in use, for flushing and clearing */
    size_t rk_ncache;
    eddy__arena_t rk_arena;
    bool rk_arena_big; /* drop the arena's chunks at the next flush */
    /* scratch */
    unsigned char *rk_key, *rk_key2, *rk_bound, *rk_op;
    size_t rk_kcap, rk_k2cap, rk_bcap, rk_opcap;
    uint64_t rk_epoch; /* counts writes to the database (batch commits) */
    /* the first failure of RocksDB itself: the backend is unusable */
    int rk_fail;
    eddy_error_t rk_ferr;
} rk_t;

static void set_fail(rk_t *rk, const char *what, char *rerr)
{
    if (rk->rk_fail == 0) {
        rk->rk_fail = EDDY_ERR_IO;
        eddy_error_set(&rk->rk_ferr, EDDY_ERR_IO, "RocksDB %s in %s: %s", what,
                       rk->rk_dbdir, rerr != NULL ? rerr : "failed");
    }
    rocksdb_free(rerr);
}

static inline int64_t now_ms(const rk_t *rk)
{
    return rk->rk_base.ks_now_ms;
}

static inline bool val_expired(const rk_t *rk, const rstate_t *s,
                               const unsigned char *v, size_t len)
{
    if (s->st_ttl <= 0) {
        return false;
    }
    /* A value too short for its stamp is damaged: treat it as gone. */
    return len < STAMP_BYTES ||
           expired_at((int64_t)le64_get(v), s->st_ttl, now_ms(rk));
}

/* ---- options ---- */

/* RocksDB counts into thread-local perf and I/O contexts by default; the
 * setting is per thread, so each thread that drives a database turns it
 * off (+25% on value updates, measured with bench/state_bench.c). */
static void perf_off(void)
{
    rocksdb_set_perf_level(rocksdb_disable);
}

static pthread_once_t g_cache_once = PTHREAD_ONCE_INIT;
static rocksdb_cache_t *g_cache;

static void cache_init(void)
{
    /* One block cache for every backend of the process, so memory is
     * bounded per TaskManager, not per subtask. Never freed. */
    g_cache = rocksdb_cache_create_lru(BLOCK_CACHE_BYTES);
}

/* The list merge operator. `ttl` decides the operand format. */
typedef struct mstate {
    int64_t ms_ttl;
} mstate_t;

static void merge_destroy(void *state)
{
    free(state);
}

static const char *merge_name(void *state)
{
    return ((mstate_t *)state)->ms_ttl > 0 ? "eddy.list.ttl.v1"
                                           : "eddy.list.v1";
}

static void merge_delete_value(void *state, const char *v, size_t len)
{
    EDDY_UNUSED(state);
    EDDY_UNUSED(len);
    free((void *)v);
}

/*
 * Full merge. A list value is [stamp] elements; a TTL operand is
 * [first stamp][last stamp] elements. An operand whose first stamp comes
 * after the list expired replaces it (a write to an expired list starts a
 * fresh one).
 */
static char *merge_full(void *state, const char *key, size_t klen,
                        const char *base, size_t blen, const char *const *ops,
                        const size_t *oplens, int nops, unsigned char *success,
                        size_t *outlen)
{
    EDDY_UNUSED(key);
    EDDY_UNUSED(klen);
    int64_t ttl = ((mstate_t *)state)->ms_ttl;
    size_t hdr = ttl > 0 ? STAMP_BYTES : 0, ohdr = ttl > 0 ? LIST_OP_HDR : 0;
    size_t total = hdr + (base != NULL ? blen : 0);
    for (int i = 0; i < nops; i++) {
        total += oplens[i];
    }
    unsigned char *out = malloc(total > 0 ? total : 1);
    if (out == NULL) {
        *success = 0;
        return NULL;
    }
    size_t n = hdr;
    bool have = false;
    int64_t cur = 0;
    if (base != NULL && blen >= hdr) {
        memcpy(out + hdr, base + hdr, blen - hdr);
        n = blen;
        have = true;
        cur = hdr > 0 ? (int64_t)le64_get((const unsigned char *)base) : 0;
    }
    for (int i = 0; i < nops; i++) {
        const unsigned char *op = (const unsigned char *)ops[i];
        if (oplens[i] < ohdr) {
            free(out);
            *success = 0;
            return NULL;
        }
        if (ttl > 0) {
            int64_t first = (int64_t)le64_get(op);
            if (have && expired_at(cur, ttl, first)) {
                n = hdr;
            }
            cur = (int64_t)le64_get(op + 8);
        }
        memcpy(out + n, op + ohdr, oplens[i] - ohdr);
        n += oplens[i] - ohdr;
        have = true;
    }
    if (hdr > 0) {
        le64_put(out, (uint64_t)cur);
    }
    *success = 1;
    *outlen = n;
    return (char *)out;
}

/* Partial merge: operands concatenate unless one starts after the previous
 * expired, in which case RocksDB keeps them apart (always correct). */
static char *merge_partial(void *state, const char *key, size_t klen,
                           const char *const *ops, const size_t *oplens,
                           int nops, unsigned char *success, size_t *outlen)
{
    EDDY_UNUSED(key);
    EDDY_UNUSED(klen);
    int64_t ttl = ((mstate_t *)state)->ms_ttl;
    size_t ohdr = ttl > 0 ? LIST_OP_HDR : 0;
    size_t total = ohdr;
    for (int i = 0; i < nops; i++) {
        if (oplens[i] < ohdr ||
            (ttl > 0 && i > 0 &&
             expired_at(
                 (int64_t)le64_get((const unsigned char *)ops[i - 1] + 8), ttl,
                 (int64_t)le64_get((const unsigned char *)ops[i])))) {
            *success = 0;
            return NULL;
        }
        total += oplens[i] - ohdr;
    }
    unsigned char *out = malloc(total > 0 ? total : 1);
    if (out == NULL || nops == 0) {
        free(out);
        *success = 0;
        return NULL;
    }
    size_t n = ohdr;
    for (int i = 0; i < nops; i++) {
        memcpy(out + n, ops[i] + ohdr, oplens[i] - ohdr);
        n += oplens[i] - ohdr;
    }
    if (ttl > 0) {
        memcpy(out, ops[0], 8);
        memcpy(out + 8, ops[nops - 1] + 8, 8);
    }
    *success = 1;
    *outlen = n;
    return (char *)out;
}

/* Options for the database and for one column family of `kind`. */
static rocksdb_options_t *options_new(bool list, int64_t ttl)
{
    pthread_once(&g_cache_once, cache_init);
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    rocksdb_options_set_max_background_jobs(o, 2);
    rocksdb_options_set_write_buffer_size(o, WRITE_BUFFER_BYTES);
    rocksdb_options_set_max_write_buffer_number(o, 3);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(o, 1);
    rocksdb_options_set_compression(o, rocksdb_lz4_compression);
    rocksdb_options_set_info_log_level(o, 2 /* WARN */);
    rocksdb_options_set_keep_log_file_num(o, 2);
    rocksdb_options_set_max_log_file_size(o, 1 << 20);
    rocksdb_options_set_stats_dump_period_sec(o, 0);
    rocksdb_block_based_table_options_t *bb =
        rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(bb, g_cache);
    /* Most reads are point lookups, many of absent keys (new windows). */
    rocksdb_block_based_options_set_filter_policy(
        bb, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(bb, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(bb,
                                                                            1);
    rocksdb_options_set_block_based_table_factory(o, bb);
    rocksdb_block_based_options_destroy(bb);
    /* A bloom filter on the memtable too: a point read of a key that is
     * not there (a new window, a first event of a key) skips the skip-list
     * search. The C API reaches these only through an options string. */
    rocksdb_options_t *o2 = rocksdb_options_create();
    char *e = NULL;
    rocksdb_get_options_from_string(o,
                                    "memtable_whole_key_filtering=true;"
                                    "memtable_prefix_bloom_size_ratio=0.1",
                                    o2, &e);
    if (e == NULL) {
        rocksdb_options_destroy(o);
        o = o2;
    } else {
        rocksdb_free(e);
        rocksdb_options_destroy(o2);
    }
    if (list) {
        mstate_t *ms = eddy__malloc(sizeof(*ms));
        ms->ms_ttl = ttl;
        /* The options take ownership of the operator (and it of ms). */
        rocksdb_options_set_merge_operator(
            o, rocksdb_mergeoperator_create(ms, merge_destroy, merge_full,
                                            merge_partial, merge_delete_value,
                                            merge_name));
    }
    return o;
}

/* Options of the database itself. */
static rocksdb_options_t *dbo_new(void)
{
    rocksdb_options_t *base = options_new(false, 0);
    rocksdb_options_t *o = rocksdb_options_create();
    /* The database is thrown away on close (the WAL is off and durability
     * comes from checkpoints): do not flush the memtables first. The C API
     * reaches this option only through an options string. */
    char *e = NULL;
    rocksdb_get_options_from_string(base, "avoid_flush_during_shutdown=true", o,
                                    &e);
    if (e != NULL) {
        rocksdb_free(e);
        rocksdb_options_destroy(o);
        return base;
    }
    rocksdb_options_destroy(base);
    return o;
}

/* A state as a database needs it (also for checkpoints of other backends). */
typedef struct sinfo {
    char *si_name;
    int si_kind;
    int64_t si_ttl;
} sinfo_t;

static void sinfo_free(sinfo_t *si, int n)
{
    for (int i = 0; si != NULL && i < n; i++) {
        free(si[i].si_name);
    }
    free(si);
}

/*
 * Opens the database at `path` with a column family per state (cf[i + 1]
 * for state i, or cf[0] for a state named "default"; cfi[i] says which).
 * `ro`: read-only, for frozen checkpoints. Returns NULL with a message.
 */
static rocksdb_t *db_open_states(const char *path, const sinfo_t *st, int n,
                                 bool ro, rocksdb_column_family_handle_t ***cfs,
                                 int **cfi, int *ncfs, eddy_error_t *err)
{
    int m = n + 1;
    const char **names = eddy__calloc((size_t)m, sizeof(char *));
    rocksdb_options_t **opts = eddy__calloc((size_t)m, sizeof(void *));
    rocksdb_column_family_handle_t **h =
        eddy__calloc((size_t)m, sizeof(void *));
    int *idx = eddy__calloc((size_t)(n + 1), sizeof(int));
    int k = 1;
    names[0] = "default";
    for (int i = 0; i < n; i++) {
        int mode = mode_of_kind(st[i].si_kind);
        rocksdb_options_t *o = options_new(mode == MODE_LIST, st[i].si_ttl);
        if (strcmp(st[i].si_name, "default") == 0) {
            opts[0] = o;
            idx[i] = 0;
        } else {
            names[k] = st[i].si_name;
            opts[k] = o;
            idx[i] = k++;
        }
    }
    if (opts[0] == NULL) {
        opts[0] = options_new(false, 0);
    }
    rocksdb_options_t *dbo = dbo_new();
    char *e = NULL;
    rocksdb_t *db = ro ? rocksdb_open_for_read_only_column_families(
                             dbo, path, k, names,
                             (const rocksdb_options_t *const *)opts, h, 0, &e)
                       : rocksdb_open_column_families(
                             dbo, path, k, names,
                             (const rocksdb_options_t *const *)opts, h, &e);
    if (e != NULL) {
        eddy_error_set(err, EDDY_ERR_IO, "cannot open RocksDB at %s: %s", path,
                       e);
        rocksdb_free(e);
        db = NULL;
    }
    rocksdb_options_destroy(dbo);
    for (int i = 0; i < k; i++) {
        rocksdb_options_destroy(opts[i]);
    }
    free(opts);
    free(names);
    if (db == NULL) {
        free(h);
        free(idx);
        return NULL;
    }
    *cfs = h;
    *cfi = idx;
    *ncfs = k;
    return db;
}

static void db_close_handles(rocksdb_t *db, rocksdb_column_family_handle_t **h,
                             int n)
{
    for (int i = 0; i < n; i++) {
        if (h[i] != NULL) {
            rocksdb_column_family_handle_destroy(h[i]);
        }
    }
    free(h);
    if (db != NULL) {
        rocksdb_close(db);
    }
}

static sinfo_t *sinfo_of(const eddy__kstate_t *ks)
{
    sinfo_t *si = eddy__calloc((size_t)ks->ks_nstates + 1, sizeof(*si));
    for (int i = 0; i < ks->ks_nstates; i++) {
        si[i].si_name = eddy__strdup(ks->ks_specs[i].ss_name);
        si[i].si_kind = ks->ks_specs[i].ss_kind;
        si[i].si_ttl = ks->ks_specs[i].ss_ttl_ms;
    }
    return si;
}

/* Releases everything that refers to the open database. */
static void rk_db_close(rk_t *rk)
{
    for (int sid = 0; sid < rk->rk_base.ks_nstates; sid++) {
        rstate_t *s = &rk->rk_st[sid];
        for (int i = 0; i < RING_SLOTS; i++) {
            if (s->st_ring[i].sl_ps != NULL) {
                rocksdb_pinnableslice_destroy(s->st_ring[i].sl_ps);
                s->st_ring[i].sl_ps = NULL;
            }
        }
        if (s->st_cur != NULL) {
            rocksdb_iter_destroy(s->st_cur);
            s->st_cur = NULL;
        }
        s->st_resume_len = 0;
        s->st_cf = NULL;
    }
    if (rk->rk_cpt != NULL) {
        rocksdb_checkpoint_object_destroy(rk->rk_cpt);
        rk->rk_cpt = NULL;
    }
    if (rk->rk_cfs != NULL) {
        db_close_handles(rk->rk_db, rk->rk_cfs, rk->rk_ncfs);
    } else if (rk->rk_db != NULL) {
        rocksdb_close(rk->rk_db);
    }
    rk->rk_cfs = NULL;
    rk->rk_db = NULL;
}

static int rk_db_open(rk_t *rk, eddy_error_t *err)
{
    eddy__kstate_t *ks = &rk->rk_base;
    sinfo_t *si = sinfo_of(ks);
    int *idx = NULL;
    rk->rk_db = db_open_states(rk->rk_dbdir, si, ks->ks_nstates, false,
                               &rk->rk_cfs, &idx, &rk->rk_ncfs, err);
    sinfo_free(si, ks->ks_nstates);
    if (rk->rk_db == NULL) {
        return err != NULL && err->code != 0 ? err->code : EDDY_ERR_IO;
    }
    for (int sid = 0; sid < ks->ks_nstates; sid++) {
        rk->rk_st[sid].st_cf = rk->rk_cfs[idx[sid]];
    }
    free(idx);
    char *e = NULL;
    rk->rk_cpt = rocksdb_checkpoint_object_create(rk->rk_db, &e);
    if (e != NULL) {
        eddy_error_set(err, EDDY_ERR_IO,
                       "cannot prepare RocksDB checkpoints in %s: %s",
                       rk->rk_dbdir, e);
        rocksdb_free(e);
        rk_db_close(rk);
        return EDDY_ERR_IO;
    }
    return 0;
}

/* ---- the pending write batch ---- */

static int batch_commit(rk_t *rk)
{
    if (rk->rk_fail != 0) {
        return rk->rk_fail;
    }
    if (rocksdb_writebatch_count(rk->rk_wb) == 0) {
        return 0;
    }
    char *e = NULL;
    rocksdb_write(rk->rk_db, rk->rk_wo, rk->rk_wb, &e);
    rocksdb_writebatch_clear(rk->rk_wb);
    rk->rk_epoch++;
    for (int sid = 0; sid < rk->rk_base.ks_nstates; sid++) {
        rk->rk_st[sid].st_in_batch = false;
    }
    if (e != NULL) {
        set_fail(rk, "write", e);
        return rk->rk_fail;
    }
    return 0;
}

static int batch_maybe_commit(rk_t *rk)
{
    size_t bytes;
    rocksdb_writebatch_data(rk->rk_wb, &bytes);
    if (rocksdb_writebatch_count(rk->rk_wb) >= BATCH_MAX_OPS ||
        bytes >= BATCH_MAX_BYTES) {
        return batch_commit(rk);
    }
    return rk->rk_fail;
}

/* Makes the state's pending writes visible to reads of the database. */
static inline int state_sync(rk_t *rk, const rstate_t *s)
{
    return s->st_in_batch ? batch_commit(rk) : rk->rk_fail;
}

/* ---- the write-back cache (VALUE kinds) ---- */

static centry_t *cache_find(rk_t *rk, int sid, const unsigned char *key,
                            size_t klen, uint64_t h)
{
    for (size_t i = h & (CACHE_SLOTS - 1);; i = (i + 1) & (CACHE_SLOTS - 1)) {
        centry_t *e = &rk->rk_cache[i];
        if (!e->ce_used) {
            return NULL;
        }
        if (e->ce_hash == h && e->ce_sid == sid && e->ce_klen == klen &&
            memcmp(e->ce_key, key, klen) == 0) {
            return e;
        }
    }
}

static void *arena_get(rk_t *rk, size_t n)
{
    if (n > CACHE_CHUNK) {
        rk->rk_arena_big = true;
    }
    return eddy__arena_alloc(&rk->rk_arena, n > 0 ? n : 1);
}

/*
 * Finds or adds the entry of a key and makes room for `vlen` value bytes
 * (the old bytes stay where they were if they fit). NULL on out of memory.
 * The caller flushes afterwards if the cache is full (cache_maybe_flush).
 */
static centry_t *cache_set(rk_t *rk, int sid, const unsigned char *key,
                           size_t klen, uint64_t h, size_t vlen)
{
    size_t i = h & (CACHE_SLOTS - 1);
    centry_t *e;
    for (;; i = (i + 1) & (CACHE_SLOTS - 1)) {
        e = &rk->rk_cache[i];
        if (!e->ce_used) {
            break;
        }
        if (e->ce_hash == h && e->ce_sid == sid && e->ce_klen == klen &&
            memcmp(e->ce_key, key, klen) == 0) {
            goto found;
        }
    }
    if (rk->rk_ncache >= CACHE_MAX) {
        return NULL; /* only after a failed flush */
    }
    /* A new entry is published only once its bytes are allocated. */
    unsigned char *kc = arena_get(rk, klen + vlen);
    if (kc == NULL) {
        return NULL;
    }
    memcpy(kc, key, klen);
    memset(e, 0, sizeof(*e));
    e->ce_key = kc;
    e->ce_val = kc + klen;
    e->ce_vcap = (uint32_t)vlen;
    e->ce_klen = (uint32_t)klen;
    e->ce_hash = h;
    e->ce_sid = sid;
    e->ce_used = true;
    rk->rk_cused[rk->rk_ncache++] = (uint32_t)i;
found:
    if (vlen > e->ce_vcap) {
        unsigned char *v = arena_get(rk, vlen);
        if (v == NULL) {
            return NULL;
        }
        e->ce_val = v;
        e->ce_vcap = (uint32_t)vlen;
    }
    e->ce_vlen = (uint32_t)vlen;
    e->ce_del = false;
    e->ce_gone = false;
    return e;
}

static void cache_clear(rk_t *rk)
{
    for (size_t i = 0; i < rk->rk_ncache; i++) {
        rk->rk_cache[rk->rk_cused[i]].ce_used = false;
    }
    rk->rk_ncache = 0;
    if (rk->rk_arena_big) {
        /* Do not keep a chunk sized for one huge value. */
        eddy__arena_close(&rk->rk_arena);
        eddy__arena_init(&rk->rk_arena, CACHE_CHUNK);
        rk->rk_arena_big = false;
    } else {
        eddy__arena_reset(&rk->rk_arena);
    }
}

/* Writes every dirty entry (and every pin's current bytes) and commits. */
static int cache_flush(rk_t *rk)
{
    if (rk->rk_fail != 0) {
        return rk->rk_fail;
    }
    for (size_t i = 0; i < rk->rk_ncache; i++) {
        const centry_t *e = &rk->rk_cache[rk->rk_cused[i]];
        rocksdb_column_family_handle_t *cf = rk->rk_st[e->ce_sid].st_cf;
        if (e->ce_gone) {
            continue;
        }
        if (e->ce_del) {
            rocksdb_writebatch_delete_cf(rk->rk_wb, cf, (const char *)e->ce_key,
                                         e->ce_klen);
        } else {
            rocksdb_writebatch_put_cf(rk->rk_wb, cf, (const char *)e->ce_key,
                                      e->ce_klen, (const char *)e->ce_val,
                                      e->ce_vlen);
        }
    }
    for (int sid = 0; sid < rk->rk_base.ks_nstates; sid++) {
        const rstate_t *s = &rk->rk_st[sid];
        if (s->st_pinned) {
            rocksdb_writebatch_put_cf(rk->rk_wb, s->st_cf,
                                      (const char *)s->st_pkey, s->st_pklen,
                                      (const char *)s->st_pval, s->st_pvlen);
        }
    }
    cache_clear(rk);
    return batch_commit(rk);
}

static inline int cache_maybe_flush(rk_t *rk)
{
    if (rk->rk_ncache >= CACHE_MAX ||
        rk->rk_arena.ar_bytes >= CACHE_MAX_BYTES) {
        return cache_flush(rk);
    }
    return rk->rk_fail;
}

/* Writes a pinned entry's bytes back into the cache: the pointer handed out
 * by get_for_update is no longer the entry's (a modifying call). */
static int unpin(rk_t *rk, int sid, rstate_t *s, bool deleted)
{
    if (!s->st_pinned) {
        return 0;
    }
    s->st_pinned = false;
    centry_t *e = cache_set(rk, sid, s->st_pkey, s->st_pklen, s->st_phash,
                            deleted ? 0 : s->st_pvlen);
    if (e == NULL) {
        /* No memory for the cache: write through instead. */
        if (deleted) {
            rocksdb_writebatch_delete_cf(rk->rk_wb, s->st_cf,
                                         (const char *)s->st_pkey, s->st_pklen);
        } else {
            rocksdb_writebatch_put_cf(rk->rk_wb, s->st_cf,
                                      (const char *)s->st_pkey, s->st_pklen,
                                      (const char *)s->st_pval, s->st_pvlen);
        }
        return batch_commit(rk);
    }
    if (deleted) {
        e->ce_del = true;
    } else if (s->st_pvlen > 0) {
        memcpy(e->ce_val, s->st_pval, s->st_pvlen);
    }
    return cache_maybe_flush(rk);
}

/* ---- reads ---- */

/* A point read that does not touch the read ring; NULL if absent (or on a
 * failure, which makes the backend fail). */
static rocksdb_pinnableslice_t *db_get(rk_t *rk, const rstate_t *s,
                                       const void *key, size_t klen,
                                       const unsigned char **v, size_t *len)
{
    if (EDDY_UNLIKELY(rk->rk_db == NULL)) {
        return NULL; /* a failed restore left no database (rk_fail set) */
    }
    char *e = NULL;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(rk->rk_db, rk->rk_ro, s->st_cf, key, klen, &e);
    if (e != NULL) {
        set_fail(rk, "read", e);
        return NULL;
    }
    if (ps != NULL) {
        *v = (const unsigned char *)rocksdb_pinnableslice_value(ps, len);
    }
    return ps;
}

/* The next read slot of a state, emptied. */
static rslot_t *ring_next(rstate_t *s)
{
    rslot_t *sl = &s->st_ring[s->st_next++ % RING_SLOTS];
    if (sl->sl_ps != NULL) {
        rocksdb_pinnableslice_destroy(sl->sl_ps);
        sl->sl_ps = NULL;
    }
    return sl;
}

/* Copies bytes into the next read slot; NULL on out of memory. */
static const unsigned char *ring_copy(rstate_t *s, const void *p, size_t n)
{
    rslot_t *sl = ring_next(s);
    if (reserve(&sl->sl_buf, &sl->sl_cap, n > 0 ? n : 1) != 0) {
        return NULL;
    }
    if (n > 0) {
        memcpy(sl->sl_buf, p, n);
    }
    return sl->sl_buf;
}

static inline bool pin_is(const rstate_t *s, const unsigned char *key,
                          size_t klen, uint64_t h)
{
    return s->st_pinned && s->st_phash == h && s->st_pklen == klen &&
           memcmp(s->st_pkey, key, klen) == 0;
}

/*
 * The live value (stamp included) of a VALUE-kind key: the pin, the cache,
 * then the database. An expired entry is deleted and reported absent. With
 * `want`, *v is stable for the caller (the pin or a read slot); without,
 * only the existence and the expiry deletion matter.
 */
static int value_lookup(rk_t *rk, int sid, rstate_t *s,
                        const unsigned char *key, size_t klen, uint64_t h,
                        bool want, const unsigned char **v, size_t *len)
{
    if (pin_is(s, key, klen, h)) {
        if (val_expired(rk, s, s->st_pval, s->st_pvlen)) {
            unpin(rk, sid, s, true);
            return 0;
        }
        *v = s->st_pval;
        *len = s->st_pvlen;
        return 1;
    }
    /* A "gone" entry holds no bytes: its key was pinned, and if it is not
     * any more, its bytes went straight to the database. */
    centry_t *e = cache_find(rk, sid, key, klen, h);
    if (e != NULL && !e->ce_gone) {
        if (e->ce_del) {
            return 0;
        }
        if (val_expired(rk, s, e->ce_val, e->ce_vlen)) {
            e->ce_del = true;
            e->ce_vlen = 0;
            return 0;
        }
        if (want) {
            *v = ring_copy(s, e->ce_val, e->ce_vlen);
            if (*v == NULL) {
                return 0;
            }
            *len = e->ce_vlen;
        }
        return 1;
    }
    const unsigned char *dv;
    size_t dl;
    rocksdb_pinnableslice_t *ps = db_get(rk, s, key, klen, &dv, &dl);
    if (ps == NULL) {
        return 0;
    }
    if (val_expired(rk, s, dv, dl)) {
        rocksdb_pinnableslice_destroy(ps);
        e = cache_set(rk, sid, key, klen, h, 0);
        if (e != NULL) {
            e->ce_del = true;
            cache_maybe_flush(rk);
        }
        return 0;
    }
    if (!want) {
        rocksdb_pinnableslice_destroy(ps);
        return 1;
    }
    rslot_t *sl = ring_next(s);
    sl->sl_ps = ps;
    *v = dv;
    *len = dl;
    return 1;
}

/* Builds the key of (k) into rk_key, with `extra` spare bytes; sets *n. */
static int key_make(rk_t *rk, const eddy__skey_t *k, size_t extra, size_t *n)
{
    assert(k->sk_kg >= rk->rk_base.ks_kg_first &&
           k->sk_kg <= rk->rk_base.ks_kg_last);
    if (k->sk_klen > UINT32_MAX - 64 ||
        k->sk_nslen > UINT32_MAX - 64 - k->sk_klen) {
        return EDDY_ERR_INVALID;
    }
    if (reserve(&rk->rk_key, &rk->rk_kcap, prefix_max(k) + extra) != 0) {
        return EDDY_ERR_NOMEM;
    }
    *n = prefix_put(rk->rk_key, k);
    return 0;
}

/* ---- TTL cleanup ---- */

/* Map helpers used by the cleanup (defined with the MAP calls). */
static int map_delete_all(rk_t *rk, rstate_t *s, const unsigned char *prefix,
                          size_t plen);

/*
 * Looks at one entry under the cursor and deletes it if it expired. The
 * cursor was opened (or reopened) after the last write to the database
 * (rk_epoch), so its view is the database's: only the write-back cache, a
 * pin or the pending batch can hold something newer, and those are
 * checked. The cursor's key and value stay valid: nothing here moves it.
 */
static void cleanup_examine(rk_t *rk, int sid, rstate_t *s,
                            const unsigned char *key, size_t klen,
                            const unsigned char *val, size_t vlen)
{
    dkey_t d;
    if (!key_parse(key, klen, &d)) {
        return;
    }
    if (s->st_mode == MODE_MAP &&
        (d.dk_restlen != 1 || d.dk_rest[0] != TAG_HEADER)) {
        return; /* entries go with their map's header */
    }
    if (s->st_mode == MODE_VALUE) {
        uint64_t h = eddy__hash64(key, klen);
        if (pin_is(s, key, klen, h)) {
            return; /* written by this very call */
        }
        centry_t *e = cache_find(rk, sid, key, klen, h);
        if (e != NULL && !e->ce_gone) {
            if (!e->ce_del && val_expired(rk, s, e->ce_val, e->ce_vlen)) {
                e->ce_del = true; /* flushed later as a deletion */
                e->ce_vlen = 0;
            }
            return;
        }
        if (val_expired(rk, s, val, vlen)) {
            e = cache_set(rk, sid, key, klen, h, 0);
            if (e != NULL) {
                e->ce_del = true;
                cache_maybe_flush(rk);
            }
        }
        return;
    }
    if (!val_expired(rk, s, val, vlen)) {
        return;
    }
    if (s->st_in_batch) {
        /* Writes of this state wait in the batch (a merge onto this very
         * list, say): apply them and look again. */
        const unsigned char *cv;
        size_t cl;
        if (batch_commit(rk) != 0) {
            return;
        }
        rocksdb_pinnableslice_t *ps = db_get(rk, s, key, klen, &cv, &cl);
        bool gone = ps != NULL && val_expired(rk, s, cv, cl);
        rocksdb_pinnableslice_destroy(ps);
        if (!gone) {
            return;
        }
    }
    if (s->st_mode == MODE_LIST) {
        rocksdb_writebatch_delete_cf(rk->rk_wb, s->st_cf, (const char *)key,
                                     klen);
        s->st_in_batch = true;
    } else {
        map_delete_all(rk, s, key, d.dk_plen);
    }
}

/* Saves the cursor's position and closes it (it reopens there). */
static void cursor_park(rstate_t *s)
{
    s->st_resume_len = 0;
    if (rocksdb_iter_valid(s->st_cur)) {
        size_t kl;
        const char *k = rocksdb_iter_key(s->st_cur, &kl);
        if (reserve(&s->st_resume, &s->st_resume_cap, kl) == 0) {
            memcpy(s->st_resume, k, kl);
            s->st_resume_len = kl;
        }
    }
    rocksdb_iter_destroy(s->st_cur);
    s->st_cur = NULL;
}

/* After a write to a TTL state: advance its cleanup cursor a few entries.
 * Best effort: failures only postpone the cleanup. */
static void cleanup_step(rk_t *rk, int sid, rstate_t *s)
{
    if (s->st_ttl <= 0 || rk->rk_fail != 0) {
        return;
    }
    if (s->st_cur_pause > 0) {
        s->st_cur_pause--;
        return;
    }
    if (s->st_cur != NULL && (s->st_cur_epoch != rk->rk_epoch ||
                              s->st_cur_steps >= CLEANUP_REFRESH)) {
        /* The database changed since the cursor opened (its view would be
         * stale), or it has pinned old memtables and files long enough. */
        cursor_park(s);
    }
    if (s->st_cur == NULL) {
        s->st_cur =
            rocksdb_create_iterator_cf(rk->rk_db, rk->rk_ro_cur, s->st_cf);
        if (s->st_resume_len > 0) {
            rocksdb_iter_seek(s->st_cur, (const char *)s->st_resume,
                              s->st_resume_len);
        } else {
            rocksdb_iter_seek(s->st_cur, (const char *)rk->rk_lo, 2);
        }
        s->st_cur_steps = 0;
        s->st_cur_epoch = rk->rk_epoch;
    }
    for (int i = 0; i < CLEANUP_ENTRIES; i++) {
        if (s->st_cur_epoch != rk->rk_epoch) {
            return; /* a write just happened: reopen next time */
        }
        if (!rocksdb_iter_valid(s->st_cur)) {
            /* A full sweep: rest, then start again from the beginning. */
            rocksdb_iter_destroy(s->st_cur);
            s->st_cur = NULL;
            s->st_resume_len = 0;
            s->st_cur_pause = CLEANUP_PAUSE;
            return;
        }
        size_t kl, vl;
        const char *k = rocksdb_iter_key(s->st_cur, &kl);
        const char *v = rocksdb_iter_value(s->st_cur, &vl);
        cleanup_examine(rk, sid, s, (const unsigned char *)k, kl,
                        (const unsigned char *)v, vl);
        rocksdb_iter_next(s->st_cur);
        s->st_cur_steps++;
    }
}

/* ---- VALUE, REDUCING, AGGREGATING ---- */

static int rk_get(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                  const void **v, size_t *len)
{
    rk_t *rk = (rk_t *)ks;
    rstate_t *s = &rk->rk_st[sid];
    size_t n;
    if (s->st_mode != MODE_VALUE || key_make(rk, k, 0, &n) != 0) {
        return 0;
    }
    const unsigned char *p;
    size_t pl;
    if (!value_lookup(rk, sid, s, rk->rk_key, n, eddy__hash64(rk->rk_key, n),
                      true, &p, &pl) ||
        pl < s->st_hdr) {
        return 0;
    }
    *v = p + s->st_hdr;
    *len = pl - s->st_hdr;
    return 1;
}

static int rk_put(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                  const void *v, size_t len)
{
    rk_t *rk = (rk_t *)ks;
    rstate_t *s = &rk->rk_st[sid];
    if (s->st_mode != MODE_VALUE || len > UINT32_MAX - STAMP_BYTES) {
        return EDDY_ERR_INVALID;
    }
    if (rk->rk_fail != 0) {
        return rk->rk_fail;
    }
    size_t n;
    int rc = key_make(rk, k, 0, &n);
    if (rc != 0) {
        return rc;
    }
    /* The pin's bytes stay where they are, so v may point into them. */
    rc = unpin(rk, sid, s, false);
    if (rc != 0) {
        return rc;
    }
    centry_t *e = cache_set(rk, sid, rk->rk_key, n, eddy__hash64(rk->rk_key, n),
                            s->st_hdr + len);
    if (e == NULL) {
        return EDDY_ERR_NOMEM;
    }
    if (s->st_hdr > 0) {
        le64_put(e->ce_val, (uint64_t)now_ms(rk));
    }
    if (len > 0) {
        memcpy(e->ce_val + s->st_hdr, v, len);
    }
    rc = cache_maybe_flush(rk);
    cleanup_step(rk, sid, s);
    return rc;
}

static int rk_get_for_update(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                             size_t size, void **value, bool *created)
{
    rk_t *rk = (rk_t *)ks;
    rstate_t *s = &rk->rk_st[sid];
    if (s->st_mode != MODE_VALUE || size > UINT32_MAX - STAMP_BYTES) {
        return EDDY_ERR_INVALID;
    }
    if (rk->rk_fail != 0) {
        return rk->rk_fail;
    }
    size_t n;
    int rc = key_make(rk, k, 0, &n);
    if (rc != 0) {
        return rc;
    }
    size_t need = s->st_hdr + size;
    uint64_t h = eddy__hash64(rk->rk_key, n);
    bool fresh;
    if (pin_is(s, rk->rk_key, n, h)) {
        /* The common case for a hot key: the same bytes again. */
        if (val_expired(rk, s, s->st_pval, s->st_pvlen)) {
            if (reserve(&s->st_pval, &s->st_pvcap, need) != 0) {
                return EDDY_ERR_NOMEM;
            }
            memset(s->st_pval, 0, need);
            s->st_pvlen = need;
            fresh = true;
        } else if (s->st_pvlen != need) {
            return EDDY_ERR_FORMAT; /* nothing written */
        } else {
            fresh = false;
        }
    } else {
        /* The current bytes, copied aside (into rk_op): unpinning the
         * previous key may flush the cache they live in. */
        const unsigned char *cur = NULL;
        size_t curlen = 0;
        rocksdb_pinnableslice_t *ps = NULL;
        centry_t *e = cache_find(rk, sid, rk->rk_key, n, h);
        if (e != NULL && !e->ce_gone) {
            if (!e->ce_del && !val_expired(rk, s, e->ce_val, e->ce_vlen)) {
                cur = e->ce_val;
                curlen = e->ce_vlen;
            }
        } else {
            ps = db_get(rk, s, rk->rk_key, n, &cur, &curlen);
            if (ps != NULL && val_expired(rk, s, cur, curlen)) {
                cur = NULL; /* overwritten below: no delete needed */
            }
            if (rk->rk_fail != 0) {
                return rk->rk_fail;
            }
        }
        if (cur != NULL && curlen != need) {
            rocksdb_pinnableslice_destroy(ps);
            return EDDY_ERR_FORMAT; /* nothing written */
        }
        fresh = cur == NULL;
        if (reserve(&rk->rk_op, &rk->rk_opcap, need + 1) != 0) {
            rocksdb_pinnableslice_destroy(ps);
            return EDDY_ERR_NOMEM;
        }
        if (!fresh) {
            memcpy(rk->rk_op, cur, need);
        }
        rocksdb_pinnableslice_destroy(ps);
        /* Another key's pin goes back to the cache (a modifying call). */
        rc = unpin(rk, sid, s, false);
        if (rc != 0) {
            return rc;
        }
        if (reserve(&s->st_pval, &s->st_pvcap, EDDY_MAX(need, (size_t)16)) !=
                0 ||
            reserve(&s->st_pkey, &s->st_pkcap, n) != 0) {
            return EDDY_ERR_NOMEM;
        }
        if (fresh) {
            memset(s->st_pval, 0, need);
        } else {
            memcpy(s->st_pval, rk->rk_op, need);
        }
        /* The key's cache entry, if any, is superseded by the pin. */
        e = cache_find(rk, sid, rk->rk_key, n, h);
        if (e != NULL) {
            e->ce_gone = true;
        }
        memcpy(s->st_pkey, rk->rk_key, n);
        s->st_pklen = n;
        s->st_phash = h;
        s->st_pvlen = need;
        s->st_pinned = true;
    }
    if (s->st_hdr > 0) {
        le64_put(s->st_pval, (uint64_t)now_ms(rk));
    }
    cleanup_step(rk, sid, s);
    *value = s->st_pval + s->st_hdr;
    *created = fresh;
    return 0;
}

/* ---- LIST ---- */

static int rk_list_add(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                       const void *v, size_t len)
{
    rk_t *rk = (rk_t *)ks;
    rstate_t *s = &rk->rk_st[sid];
    if (s->st_mode != MODE_LIST || len > UINT32_MAX) {
        return EDDY_ERR_INVALID;
    }
    if (rk->rk_fail != 0) {
        return rk->rk_fail;
    }
    size_t n;
    int rc = key_make(rk, k, 0, &n);
    if (rc != 0) {
        return rc;
    }
    size_t ohdr = s->st_ttl > 0 ? LIST_OP_HDR : 0;
    if (reserve(&rk->rk_op, &rk->rk_opcap, ohdr + 4 + len) != 0) {
        return EDDY_ERR_NOMEM;
    }
    if (ohdr > 0) {
        le64_put(rk->rk_op, (uint64_t)now_ms(rk));
        le64_put(rk->rk_op + 8, (uint64_t)now_ms(rk));
    }
    le32_put(rk->rk_op + ohdr, (uint32_t)len);
    if (len > 0) {
        memcpy(rk->rk_op + ohdr + 4, v, len);
    }
    rocksdb_writebatch_merge_cf(rk->rk_wb, s->st_cf, (const char *)rk->rk_key,
                                n, (const char *)rk->rk_op, ohdr + 4 + len);
    s->st_in_batch = true;
    rc = batch_maybe_commit(rk);
    cleanup_step(rk, sid, s);
    return rc;
}

static int rk_list_iter(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                        eddy__siter_t *it)
{
    rk_t *rk = (rk_t *)ks;
    rstate_t *s = &rk->rk_st[sid];
    size_t n;
    it->si_impl[0] = NULL;
    it->si_impl[1] = NULL;
    if (s->st_mode != MODE_LIST || key_make(rk, k, 0, &n) != 0 ||
        state_sync(rk, s) != 0) {
        return 0;
    }
    const unsigned char *v;
    size_t len;
    rocksdb_pinnableslice_t *ps = db_get(rk, s, rk->rk_key, n, &v, &len);
    if (ps == NULL) {
        return 0;
    }
    if (val_expired(rk, s, v, len)) {
        rocksdb_pinnableslice_destroy(ps);
        rocksdb_writebatch_delete_cf(rk->rk_wb, s->st_cf,
                                     (const char *)rk->rk_key, n);
        s->st_in_batch = true;
        return 0;
    }
    if (len <= s->st_hdr) {
        rocksdb_pinnableslice_destroy(ps);
        return 0;
    }
    rslot_t *sl = ring_next(s);
    sl->sl_ps = ps;
    it->si_impl[0] = (void *)(v + s->st_hdr);
    it->si_impl[1] = (void *)(v + len);
    return 1;
}

/* Elements as (u32 LE length, bytes); a damaged tail ends the iteration. */
static int rk_list_next(eddy__siter_t *it, const void **v, size_t *len)
{
    const unsigned char *p = it->si_impl[0], *end = it->si_impl[1];
    if (p == NULL || end - p < 4) {
        return 0;
    }
    uint32_t n = le32_get(p);
    if (n > (size_t)(end - p) - 4) {
        it->si_impl[0] = NULL;
        return 0;
    }
    *v = p + 4;
    *len = n;
    it->si_impl[0] = (void *)(p + 4 + n);
    return 1;
}

/* ---- MAP ---- */

/*
 * Builds the entry key prefix+1+uk in rk_key (sets *plen, *n), the header
 * key prefix+0 in rk_key2 and the map's upper bound prefix+2 in rk_bound.
 */
static int map_keys(rk_t *rk, const eddy__skey_t *k, const void *uk,
                    size_t uklen, size_t *plen, size_t *n)
{
    if (uklen > UINT32_MAX) {
        return EDDY_ERR_INVALID;
    }
    int rc = key_make(rk, k, 1 + uklen, plen);
    if (rc != 0) {
        return rc;
    }
    if (reserve(&rk->rk_key2, &rk->rk_k2cap, *plen + 1) != 0 ||
        reserve(&rk->rk_bound, &rk->rk_bcap, *plen + 1) != 0) {
        return EDDY_ERR_NOMEM;
    }
    memcpy(rk->rk_key2, rk->rk_key, *plen);
    rk->rk_key2[*plen] = TAG_HEADER;
    memcpy(rk->rk_bound, rk->rk_key, *plen);
    rk->rk_bound[*plen] = TAG_ENTRY + 1;
    rk->rk_key[*plen] = TAG_ENTRY;
    if (uklen > 0) {
        memcpy(rk->rk_key + *plen + 1, uk, uklen);
    }
    *n = *plen + 1 + uklen;
    return 0;
}

/* An iterator over [lo, hi) of a state, using rk_ro_it (hi must stay valid
 * and rk_ro_it unused by others until the iterator is destroyed). */
static rocksdb_iterator_t *iter_range(rk_t *rk, const rstate_t *s,
                                      const void *lo, size_t lolen,
                                      const void *hi, size_t hilen)
{
    rocksdb_readoptions_set_iterate_upper_bound(rk->rk_ro_it, hi, hilen);
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(rk->rk_db, rk->rk_ro_it, s->st_cf);
    rocksdb_iter_seek(it, lo, lolen);
    return it;
}

static int iter_close(rk_t *rk, rocksdb_iterator_t *it)
{
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    rocksdb_iter_destroy(it);
    if (e != NULL) {
        set_fail(rk, "iteration", e);
        return rk->rk_fail;
    }
    return 0;
}

/* Deletes a whole map (header and entries) in the pending batch. The state
 * must be in sync (state_sync). Uses rk_bound. */
static int map_delete_all(rk_t *rk, rstate_t *s, const unsigned char *prefix,
                          size_t plen)
{
    /* The prefix may live in rk_key or rk_key2: copy it first. */
    unsigned char lo[64];
    unsigned char *lop = plen + 1 <= sizeof(lo) ? lo : malloc(plen + 1);
    if (lop == NULL || reserve(&rk->rk_bound, &rk->rk_bcap, plen + 1) != 0) {
        if (lop != lo) {
            free(lop);
        }
        return EDDY_ERR_NOMEM;
    }
    memcpy(lop, prefix, plen);
    lop[plen] = TAG_HEADER;
    memcpy(rk->rk_bound, prefix, plen);
    rk->rk_bound[plen] = TAG_ENTRY + 1;
    rocksdb_iterator_t *it =
        iter_range(rk, s, lop, plen + 1, rk->rk_bound, plen + 1);
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl;
        const char *key = rocksdb_iter_key(it, &kl);
        rocksdb_writebatch_delete_cf(rk->rk_wb, s->st_cf, key, kl);
        s->st_in_batch = true;
    }
    if (lop != lo) {
        free(lop);
    }
    return iter_close(rk, it);
}

/*
 * With TTL: whether the map whose header key is in rk_key2 (prefix plen)
 * is alive. An expired map is deleted. 1 alive, 0 absent.
 */
static int map_alive(rk_t *rk, rstate_t *s, size_t plen)
{
    const unsigned char *v;
    size_t len;
    rocksdb_pinnableslice_t *ps =
        db_get(rk, s, rk->rk_key2, plen + 1, &v, &len);
    if (ps == NULL) {
        return 0;
    }
    bool gone = val_expired(rk, s, v, len);
    rocksdb_pinnableslice_destroy(ps);
    if (gone) {
        map_delete_all(rk, s, rk->rk_key2, plen);
        return 0;
    }
    return 1;
}

static void map_stamp(rk_t *rk, rstate_t *s, size_t plen)
{
    unsigned char st[STAMP_BYTES];
    le64_put(st, (uint64_t)now_ms(rk));
    rocksdb_writebatch_put_cf(rk->rk_wb, s->st_cf, (const char *)rk->rk_key2,
                              plen + 1, (const char *)st, sizeof(st));
    s->st_in_batch = true;
}

static int rk_map_put(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                      const void *uk, size_t uklen, const void *v, size_t vlen)
{
    rk_t *rk = (rk_t *)ks;
    rstate_t *s = &rk->rk_st[sid];
    if (s->st_mode != MODE_MAP || uklen > UINT32_MAX ||
        vlen > UINT32_MAX - uklen) {
        return EDDY_ERR_INVALID;
    }
    if (rk->rk_fail != 0) {
        return rk->rk_fail;
    }
    size_t plen, n;
    int rc = map_keys(rk, k, uk, uklen, &plen, &n);
    if (rc != 0) {
        return rc;
    }
    if (s->st_ttl > 0) {
        /* A put into an expired map starts a fresh one: map_alive deletes
         * the old entries (before the new ones, in the same batch). */
        rc = state_sync(rk, s);
        if (rc != 0) {
            return rc;
        }
        map_alive(rk, s, plen);
        map_stamp(rk, s, plen);
    }
    rocksdb_writebatch_put_cf(rk->rk_wb, s->st_cf, (const char *)rk->rk_key, n,
                              v, vlen);
    s->st_in_batch = true;
    rc = batch_maybe_commit(rk);
    cleanup_step(rk, sid, s);
    return rc;
}

static int rk_map_get(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                      const void *uk, size_t uklen, const void **v,
                      size_t *vlen)
{
    rk_t *rk = (rk_t *)ks;
    rstate_t *s = &rk->rk_st[sid];
    size_t plen, n;
    if (s->st_mode != MODE_MAP || map_keys(rk, k, uk, uklen, &plen, &n) != 0 ||
        state_sync(rk, s) != 0) {
        return 0;
    }
    if (s->st_ttl > 0 && !map_alive(rk, s, plen)) {
        return 0;
    }
    const unsigned char *p;
    size_t len;
    rocksdb_pinnableslice_t *ps = db_get(rk, s, rk->rk_key, n, &p, &len);
    if (ps == NULL) {
        return 0;
    }
    rslot_t *sl = ring_next(s);
    sl->sl_ps = ps;
    *v = p;
    *vlen = len;
    return 1;
}

static int rk_map_remove(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                         const void *uk, size_t uklen)
{
    rk_t *rk = (rk_t *)ks;
    rstate_t *s = &rk->rk_st[sid];
    size_t plen, n;
    int rc;
    if (s->st_mode != MODE_MAP) {
        return 0;
    }
    if (rk->rk_fail != 0) {
        return rk->rk_fail;
    }
    rc = map_keys(rk, k, uk, uklen, &plen, &n);
    if (rc != 0) {
        return rc;
    }
    if (s->st_ttl <= 0) {
        /* Without TTL there is no header to maintain: a blind delete. */
        rocksdb_writebatch_delete_cf(rk->rk_wb, s->st_cf,
                                     (const char *)rk->rk_key, n);
        s->st_in_batch = true;
        rc = batch_maybe_commit(rk);
        cleanup_step(rk, sid, s);
        return rc;
    }
    rc = state_sync(rk, s);
    if (rc != 0 || !map_alive(rk, s, plen)) {
        cleanup_step(rk, sid, s);
        return rc;
    }
    const unsigned char *p;
    size_t len;
    rocksdb_pinnableslice_t *ps = db_get(rk, s, rk->rk_key, n, &p, &len);
    if (ps != NULL) {
        rocksdb_pinnableslice_destroy(ps);
        rocksdb_writebatch_delete_cf(rk->rk_wb, s->st_cf,
                                     (const char *)rk->rk_key, n);
        s->st_in_batch = true;
        rc = batch_commit(rk);
        if (rc != 0) {
            return rc;
        }
        /* The last entry takes the map (its header) along; otherwise the
         * removal is a write that refreshes the map's stamp. */
        rocksdb_iterator_t *it =
            iter_range(rk, s, rk->rk_key2, plen + 1, rk->rk_bound, plen + 1);
        bool more = false;
        for (; rocksdb_iter_valid(it) && !more; rocksdb_iter_next(it)) {
            size_t kl;
            const char *key = rocksdb_iter_key(it, &kl);
            more = kl > plen && (unsigned char)key[plen] == TAG_ENTRY;
        }
        rc = iter_close(rk, it);
        if (rc != 0) {
            return rc;
        }
        if (more) {
            map_stamp(rk, s, plen);
        } else {
            rocksdb_writebatch_delete_cf(rk->rk_wb, s->st_cf,
                                         (const char *)rk->rk_key2, plen + 1);
            s->st_in_batch = true;
        }
        rc = batch_maybe_commit(rk);
    }
    cleanup_step(rk, sid, s);
    return rc;
}

static int rk_map_iter(eddy__kstate_t *ks, int sid, const eddy__skey_t *k,
                       eddy__siter_t *it)
{
    rk_t *rk = (rk_t *)ks;
    rstate_t *s = &rk->rk_st[sid];
    size_t plen, n;
    it->si_impl[0] = NULL;
    it->si_impl[1] = NULL;
    if (s->st_mode != MODE_MAP || map_keys(rk, k, NULL, 0, &plen, &n) != 0 ||
        state_sync(rk, s) != 0) {
        return 0;
    }
    if (s->st_ttl > 0 && !map_alive(rk, s, plen)) {
        return 0;
    }
    /* Materialised into one read slot as (u32 uklen, uk, u32 vlen, v), so
     * the iterator needs no cleanup and survives other calls. */
    rslot_t *sl = ring_next(s);
    size_t used = 0;
    rocksdb_iterator_t *ri =
        iter_range(rk, s, rk->rk_key, n, rk->rk_bound, plen + 1);
    for (; rocksdb_iter_valid(ri); rocksdb_iter_next(ri)) {
        size_t kl, vl;
        const char *key = rocksdb_iter_key(ri, &kl);
        const char *val = rocksdb_iter_value(ri, &vl);
        if (kl <= plen || (unsigned char)key[plen] != TAG_ENTRY) {
            continue;
        }
        size_t ukl = kl - plen - 1;
        if (reserve(&sl->sl_buf, &sl->sl_cap, used + 8 + ukl + vl) != 0) {
            rocksdb_iter_destroy(ri);
            return 0;
        }
        le32_put(sl->sl_buf + used, (uint32_t)ukl);
        memcpy(sl->sl_buf + used + 4, key + plen + 1, ukl);
        used += 4 + ukl;
        le32_put(sl->sl_buf + used, (uint32_t)vl);
        if (vl > 0) {
            memcpy(sl->sl_buf + used + 4, val, vl);
        }
        used += 4 + vl;
    }
    if (iter_close(rk, ri) != 0 || used == 0) {
        return 0;
    }
    it->si_impl[0] = sl->sl_buf;
    it->si_impl[1] = sl->sl_buf + used;
    return 1;
}

static int rk_map_next(eddy__siter_t *it, const void **uk, size_t *uklen,
                       const void **v, size_t *vlen)
{
    const unsigned char *p = it->si_impl[0], *end = it->si_impl[1];
    if (p == NULL || end - p < 8) {
        return 0;
    }
    uint32_t kl = le32_get(p);
    uint32_t vl = le32_get(p + 4 + kl);
    *uk = p + 4;
    *uklen = kl;
    *v = p + 8 + kl;
    *vlen = vl;
    it->si_impl[0] = (void *)(p + 8 + kl + vl);
    return 1;
}

/* ---- removal of any kind ---- */

static int rk_remove(eddy__kstate_t *ks, int sid, const eddy__skey_t *k)
{
    rk_t *rk = (rk_t *)ks;
    rstate_t *s = &rk->rk_st[sid];
    if (rk->rk_fail != 0) {
        return rk->rk_fail;
    }
    size_t n;
    int rc = key_make(rk, k, 1, &n);
    if (rc != 0) {
        return rc;
    }
    if (s->st_mode == MODE_VALUE) {
        rc = unpin(rk, sid, s, false);
        centry_t *e = rc == 0 ? cache_set(rk, sid, rk->rk_key, n,
                                          eddy__hash64(rk->rk_key, n), 0)
                              : NULL;
        if (e == NULL) {
            return rc != 0 ? rc : EDDY_ERR_NOMEM;
        }
        e->ce_del = true;
        rc = cache_maybe_flush(rk);
    } else if (s->st_mode == MODE_LIST) {
        rocksdb_writebatch_delete_cf(rk->rk_wb, s->st_cf,
                                     (const char *)rk->rk_key, n);
        s->st_in_batch = true;
        rc = batch_maybe_commit(rk);
    } else {
        rc = state_sync(rk, s);
        if (rc == 0) {
            rc = map_delete_all(rk, s, rk->rk_key, n);
        }
        if (rc == 0) {
            rc = batch_maybe_commit(rk);
        }
    }
    cleanup_step(rk, sid, s);
    return rc;
}

/* ---- whole states ---- */

static int rk_for_each(eddy__kstate_t *ks, int sid, int kg,
                       int (*fn)(void *arg, const void *key, size_t klen,
                                 const void *ns, size_t nslen),
                       void *arg)
{
    rk_t *rk = (rk_t *)ks;
    assert(sid >= 0 && sid < ks->ks_nstates);
    assert(kg >= ks->ks_kg_first && kg <= ks->ks_kg_last);
    rstate_t *s = &rk->rk_st[sid];
    int rc = s->st_mode == MODE_VALUE ? cache_flush(rk) : state_sync(rk, s);
    if (rc != 0) {
        return rc;
    }
    /* Own read options and buffers: fn may call back into the backend. */
    unsigned char lo[2] = {(unsigned char)(kg >> 8), (unsigned char)kg};
    unsigned char hi[2] = {(unsigned char)((kg + 1) >> 8),
                           (unsigned char)(kg + 1)};
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    if (kg < MAX_KG) {
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, 2);
    }
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(rk->rk_db, ro, s->st_cf);
    eddy__bytes_t last = {0}; /* the map prefix seen last */
    bool have_last = false;
    for (rocksdb_iter_seek(it, (const char *)lo, 2); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const unsigned char *key =
            (const unsigned char *)rocksdb_iter_key(it, &kl);
        dkey_t d;
        if (!key_parse(key, kl, &d) || d.dk_kg != kg) {
            continue;
        }
        const unsigned char *val =
            (const unsigned char *)rocksdb_iter_value(it, &vl);
        if (s->st_mode == MODE_MAP) {
            if (have_last && d.dk_plen == last.b_len &&
                memcmp(key, last.b_data, d.dk_plen) == 0) {
                continue; /* another entry of the map just seen */
            }
            eddy__bytes_reset(&last);
            eddy__bytes_put(&last, key, d.dk_plen);
            have_last = true;
            if (s->st_ttl > 0 &&
                (d.dk_restlen != 1 || d.dk_rest[0] != TAG_HEADER ||
                 val_expired(rk, s, val, vl))) {
                continue; /* expired (or headless) map: skip all of it */
            }
        } else if (d.dk_restlen != 0 || val_expired(rk, s, val, vl)) {
            continue;
        }
        rc = fn(arg, d.dk_key, d.dk_klen, d.dk_ns, d.dk_nslen);
        if (rc != 0) {
            break;
        }
    }
    int irc = iter_close(rk, it);
    rocksdb_readoptions_destroy(ro);
    eddy__bytes_free(&last);
    return rc != 0 ? rc : irc;
}

static size_t rk_size(eddy__kstate_t *ks)
{
    rk_t *rk = (rk_t *)ks;
    size_t n = sizeof(*rk) + rk->rk_arena.ar_bytes +
               CACHE_SLOTS * sizeof(centry_t) + rk->rk_kcap + rk->rk_k2cap +
               rk->rk_bcap + rk->rk_opcap;
    for (int i = 0; rk->rk_db != NULL && i < rk->rk_ncfs; i++) {
        uint64_t v;
        if (rocksdb_property_int_cf(rk->rk_db, rk->rk_cfs[i],
                                    "rocksdb.cur-size-all-mem-tables",
                                    &v) == 0) {
            n += (size_t)v;
        }
        if (rocksdb_property_int_cf(rk->rk_db, rk->rk_cfs[i],
                                    "rocksdb.live-sst-files-size", &v) == 0) {
            n += (size_t)v;
        }
    }
    for (int sid = 0; sid < ks->ks_nstates; sid++) {
        const rstate_t *s = &rk->rk_st[sid];
        n += s->st_pkcap + s->st_pvcap;
        for (int i = 0; i < RING_SLOTS; i++) {
            n += s->st_ring[i].sl_cap;
        }
    }
    return n;
}

/* ---- files ---- */

/*
 * Copies src to dst (created or truncated), fsyncing it, and computes size
 * and CRC-32C. With `want` non-NULL, checks them against it (a checkpoint
 * file being restored). Errors name the file at fault.
 */
typedef struct fsum {
    uint64_t fs_size;
    uint32_t fs_crc;
} fsum_t;

static int copy_file(const char *src, const char *dst, const fsum_t *want,
                     fsum_t *got, eddy_error_t *err)
{
    int in = -1, out = -1, rc = 0;
    unsigned char *buf = NULL;
    fsum_t sum = {0, 0};
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        rc = eddy_error_set(err,
                            errno == ENOENT ? EDDY_ERR_NOT_FOUND : EDDY_ERR_IO,
                            "checkpoint file %s %s", src,
                            errno == ENOENT ? "is missing" : strerror(errno));
        goto done;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot create %s: %s", dst,
                            strerror(errno));
        goto done;
    }
    buf = eddy__try_malloc(COPY_CHUNK);
    if (buf == NULL) {
        rc = eddy_error_set(err, EDDY_ERR_NOMEM, "out of memory copying %s",
                            src);
        goto done;
    }
    for (;;) {
        ssize_t r = read(in, buf, COPY_CHUNK);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = eddy_error_set(err, EDDY_ERR_IO, "cannot read %s: %s", src,
                                strerror(errno));
            goto done;
        }
        if (r == 0) {
            break;
        }
        sum.fs_crc = eddy__crc32c(sum.fs_crc, buf, (size_t)r);
        sum.fs_size += (uint64_t)r;
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w < 0) {
                rc = eddy_error_set(err, EDDY_ERR_IO, "cannot write %s: %s",
                                    dst, strerror(errno));
                goto done;
            }
            off += w;
        }
    }
    if (fsync(out) != 0) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot sync %s: %s", dst,
                            strerror(errno));
        goto done;
    }
    if (want != NULL && sum.fs_size != want->fs_size) {
        rc = eddy_error_set(err, EDDY_ERR_FORMAT,
                            "checkpoint file %s has %llu bytes, expected %llu "
                            "(truncated or replaced)",
                            src, (unsigned long long)sum.fs_size,
                            (unsigned long long)want->fs_size);
    } else if (want != NULL && sum.fs_crc != want->fs_crc) {
        rc = eddy_error_set(err, EDDY_ERR_FORMAT,
                            "checkpoint file %s is corrupt (checksum mismatch)",
                            src);
    }
done:
    free(buf);
    if (in >= 0) {
        close(in);
    }
    if (out >= 0 && close(out) != 0 && rc == 0) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot close %s: %s", dst,
                            strerror(errno));
    }
    if (rc == 0 && got != NULL) {
        *got = sum;
    }
    return rc;
}

static int sync_dir(const char *dir, eddy_error_t *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        return eddy_error_set(err, EDDY_ERR_IO, "cannot sync directory %s: %s",
                              dir, strerror(e));
    }
    close(fd);
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of a directory, sorted. */
static int list_dir(const char *dir, char ***out, size_t *n, eddy_error_t *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return eddy_error_set(err, EDDY_ERR_IO, "cannot read directory %s: %s",
                              dir, strerror(errno));
    }
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        eddy__grow((void **)&v, &cap, cnt + 1, sizeof(*v));
        v[cnt++] = eddy__strdup(de->d_name);
    }
    closedir(d);
    if (cnt > 1) {
        qsort(v, cnt, sizeof(*v), name_cmp);
    }
    *out = v;
    *n = cnt;
    return 0;
}

static void names_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* ---- snapshots ---- */

typedef struct rsnap {
    eddy__ksnap_t sn_base; /* first */
    rshared_t *sn_sh;
    char *sn_dir; /* the frozen checkpoint (hard links) */
    int64_t sn_id;
    bool sn_savepoint;
    int sn_kg_first, sn_kg_last;
    sinfo_t *sn_states;
    int sn_nstates;
    int64_t sn_now; /* entries expired by then are left out (canonical) */
} rsnap_t;

static json_t *states_json(const sinfo_t *st, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(a, json_pack("{s:s, s:i, s:I}", "name",
                                           st[i].si_name, "kind", st[i].si_kind,
                                           "ttl_ms", (json_int_t)st[i].si_ttl));
    }
    return a;
}

/* Appends one canonical entry per (key, ns) of the state's key group kg. */
typedef struct canon_map {
    eddy__bytes_t cm_prefix; /* the map being collected */
    eddy__bytes_t cm_entries;
    uint64_t cm_count;
    uint64_t cm_stamp;
    bool cm_open;
} canon_map_t;

static void canon_map_emit(canon_map_t *cm, eddy__bytes_t *b, int sid)
{
    if (cm->cm_open && cm->cm_count > 0) {
        dkey_t d;
        bool ok = key_parse(cm->cm_prefix.b_data, cm->cm_prefix.b_len, &d);
        assert(ok);
        EDDY_UNUSED(ok);
        eddy__bytes_put_u8(b, EDDY__CANON_MAP);
        eddy__bytes_put_varint(b, (uint64_t)sid);
        eddy__bytes_put_blob(b, d.dk_key, d.dk_klen);
        eddy__bytes_put_blob(b, d.dk_ns, d.dk_nslen);
        eddy__bytes_put_u64(b, cm->cm_stamp);
        eddy__bytes_put_varint(b, cm->cm_count);
        eddy__bytes_put(b, cm->cm_entries.b_data, cm->cm_entries.b_len);
    }
    cm->cm_open = false;
    cm->cm_count = 0;
    cm->cm_stamp = 0;
    eddy__bytes_reset(&cm->cm_prefix);
    eddy__bytes_reset(&cm->cm_entries);
}

static int canon_state_kg(rocksdb_iterator_t *it, const sinfo_t *si, int sid,
                          int kg, int64_t now, eddy__bytes_t *b,
                          canon_map_t *cm, const char *path, eddy_error_t *err)
{
    int mode = mode_of_kind(si->si_kind);
    size_t hdr = si->si_ttl > 0 ? STAMP_BYTES : 0;
    unsigned char lo[2] = {(unsigned char)(kg >> 8), (unsigned char)kg};
    for (rocksdb_iter_seek(it, (const char *)lo, 2); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const unsigned char *key =
            (const unsigned char *)rocksdb_iter_key(it, &kl);
        const unsigned char *val =
            (const unsigned char *)rocksdb_iter_value(it, &vl);
        dkey_t d;
        if (!key_parse(key, kl, &d)) {
            return eddy_error_set(err, EDDY_ERR_FORMAT,
                                  "malformed key in state '%s' of %s",
                                  si->si_name, path);
        }
        if (d.dk_kg != kg) {
            break;
        }
        if (mode == MODE_MAP) {
            if (d.dk_restlen == 0) {
                continue;
            }
            if (cm->cm_prefix.b_len != d.dk_plen ||
                memcmp(cm->cm_prefix.b_data, key, d.dk_plen) != 0) {
                /* A new map. With TTL it starts with its header; entries
                 * without one are leftovers of a deleted map. */
                canon_map_emit(cm, b, sid);
                eddy__bytes_put(&cm->cm_prefix, key, d.dk_plen);
                cm->cm_open =
                    hdr == 0 ||
                    (d.dk_rest[0] == TAG_HEADER && vl >= hdr &&
                     !expired_at((int64_t)le64_get(val), si->si_ttl, now));
                if (hdr > 0 && cm->cm_open) {
                    cm->cm_stamp = le64_get(val);
                    continue;
                }
            }
            if (cm->cm_open && d.dk_rest[0] == TAG_ENTRY) {
                eddy__bytes_put_blob(&cm->cm_entries, d.dk_rest + 1,
                                     d.dk_restlen - 1);
                eddy__bytes_put_blob(&cm->cm_entries, val, vl);
                cm->cm_count++;
            }
            continue;
        }
        if (d.dk_restlen != 0 || vl < hdr) {
            return eddy_error_set(err, EDDY_ERR_FORMAT,
                                  "malformed entry in state '%s' of %s",
                                  si->si_name, path);
        }
        uint64_t stamp = hdr > 0 ? le64_get(val) : 0;
        if (expired_at((int64_t)stamp, si->si_ttl, now)) {
            continue; /* like the heap backend: expired state is not saved */
        }
        if (mode == MODE_VALUE) {
            eddy__bytes_put_u8(b, EDDY__CANON_VALUE);
            eddy__bytes_put_varint(b, (uint64_t)sid);
            eddy__bytes_put_blob(b, d.dk_key, d.dk_klen);
            eddy__bytes_put_blob(b, d.dk_ns, d.dk_nslen);
            eddy__bytes_put_u64(b, stamp);
            eddy__bytes_put_blob(b, val + hdr, vl - hdr);
            continue;
        }
        /* LIST: count the elements, checking the encoding, then copy. */
        uint64_t cnt = 0;
        size_t p = hdr;
        while (vl - p >= 4 && le32_get(val + p) <= vl - p - 4) {
            p += 4 + le32_get(val + p);
            cnt++;
        }
        if (p != vl) {
            return eddy_error_set(err, EDDY_ERR_FORMAT,
                                  "malformed list in state '%s' of %s",
                                  si->si_name, path);
        }
        eddy__bytes_put_u8(b, EDDY__CANON_LIST);
        eddy__bytes_put_varint(b, (uint64_t)sid);
        eddy__bytes_put_blob(b, d.dk_key, d.dk_klen);
        eddy__bytes_put_blob(b, d.dk_ns, d.dk_nslen);
        eddy__bytes_put_u64(b, stamp);
        eddy__bytes_put_varint(b, cnt);
        for (p = hdr; p < vl; p += 4 + le32_get(val + p)) {
            eddy__bytes_put_blob(b, val + p + 4, le32_get(val + p));
        }
    }
    canon_map_emit(cm, b, sid);
    char *e = NULL;
    rocksdb_iter_get_error(it, &e);
    if (e != NULL) {
        eddy_error_set(err, EDDY_ERR_IO, "cannot read the snapshot %s: %s",
                       path, e);
        rocksdb_free(e);
        return EDDY_ERR_IO;
    }
    return 0;
}

/* A savepoint: the canonical format, read from the frozen checkpoint. */
static int write_canonical(rsnap_t *sn, const eddy__snap_target_t *t,
                           json_t **handle, eddy_error_t *err)
{
    rocksdb_column_family_handle_t **cfs = NULL;
    int *cfi = NULL, ncfs = 0;
    rocksdb_t *db = db_open_states(sn->sn_dir, sn->sn_states, sn->sn_nstates,
                                   true, &cfs, &cfi, &ncfs, err);
    if (db == NULL) {
        return err != NULL && err->code != 0 ? err->code : EDDY_ERR_IO;
    }
    char name[512];
    eddy__fmt(name, sizeof(name), "%s.keyed", t->st_stem);
    eddy__canon_writer_t w;
    int rc = eddy__canon_open(&w, t->st_chk_dir, name, err);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    unsigned char hi[2] = {(unsigned char)((sn->sn_kg_last + 1) >> 8),
                           (unsigned char)(sn->sn_kg_last + 1)};
    if (sn->sn_kg_last < MAX_KG) {
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, 2);
    }
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t **its =
        eddy__calloc((size_t)sn->sn_nstates + 1, sizeof(*its));
    for (int i = 0; i < sn->sn_nstates; i++) {
        its[i] = rocksdb_create_iterator_cf(db, ro, cfs[cfi[i]]);
    }
    canon_map_t cm;
    memset(&cm, 0, sizeof(cm));
    for (int kg = sn->sn_kg_first; rc == 0 && kg <= sn->sn_kg_last; kg++) {
        eddy__canon_begin(&w, kg);
        for (int i = 0; rc == 0 && i < sn->sn_nstates; i++) {
            rc = canon_state_kg(its[i], &sn->sn_states[i], i, kg, sn->sn_now,
                                eddy__canon_buf(&w), &cm, sn->sn_dir, err);
        }
        if (rc == 0) {
            rc = eddy__canon_end(&w, err);
        }
    }
    for (int i = 0; i < sn->sn_nstates; i++) {
        rocksdb_iter_destroy(its[i]);
    }
    free(its);
    rocksdb_readoptions_destroy(ro);
    eddy__bytes_free(&cm.cm_prefix);
    eddy__bytes_free(&cm.cm_entries);
    db_close_handles(db, cfs, ncfs);
    free(cfi);
    json_t *groups = NULL;
    if (rc == 0) {
        rc = eddy__canon_close(&w, &groups, err);
    } else if (w.cw_f != NULL) {
        eddy__canon_abort(&w);
    }
    if (rc != 0) {
        return rc;
    }
    json_t *states = json_array();
    for (int i = 0; i < sn->sn_nstates; i++) {
        json_array_append_new(
            states, json_pack("{s:s, s:i}", "name", sn->sn_states[i].si_name,
                              "kind", sn->sn_states[i].si_kind));
    }
    *handle = json_pack("{s:s, s:s, s:o, s:o}", "type", "canonical", "file",
                        name, "states", states, "groups", groups);
    return 0;
}

/* The confirmed copy of a local SST in this shared directory, if any. */
static bool confirmed_lookup(rshared_t *sh, const char *name,
                             const char *shared_real, char **abs, fsum_t *sum)
{
    bool found = false;
    eddy__mutex_lock(&sh->sh_mu);
    for (size_t i = 0; i < sh->sh_confirmed.fl_n && !found; i++) {
        const rfile_t *f = &sh->sh_confirmed.fl_v[i];
        if (strcmp(f->f_name, name) != 0) {
            continue;
        }
        /* Only a file in the same checkpoint storage can be shared (a
         * restore from another job's checkpoint uploads afresh). */
        const char *slash = strrchr(f->f_abs, '/');
        if (slash != NULL && shared_real != NULL &&
            strlen(shared_real) == (size_t)(slash - f->f_abs) &&
            strncmp(f->f_abs, shared_real, (size_t)(slash - f->f_abs)) == 0) {
            *abs = eddy__strdup(f->f_abs);
            sum->fs_size = f->f_size;
            sum->fs_crc = f->f_crc;
            found = true;
        }
    }
    eddy__mutex_unlock(&sh->sh_mu);
    return found;
}

static json_t *file_json(const char *name, const char *path, fsum_t sum)
{
    return json_pack("{s:s, s:s, s:I, s:I}", "name", name, "path", path, "size",
                     (json_int_t)sum.fs_size, "crc32c", (json_int_t)sum.fs_crc);
}

/* A checkpoint: new SST files to shared/, the rest to chk-n. */
static int write_incremental(rsnap_t *sn, const eddy__snap_target_t *t,
                             json_t **handle, eddy_error_t *err)
{
    char **names = NULL;
    size_t nnames = 0;
    int rc = list_dir(sn->sn_dir, &names, &nnames, err);
    if (rc != 0) {
        return rc;
    }
    char *shared_real = realpath(t->st_shared_dir, NULL);
    if (shared_real == NULL) {
        names_free(names, nnames);
        return eddy_error_set(err, EDDY_ERR_IO,
                              "checkpoint storage %s is not usable: %s",
                              t->st_shared_dir, strerror(errno));
    }
    const char *sbase = strrchr(shared_real, '/');
    sbase = sbase != NULL ? sbase + 1 : shared_real;
    json_t *shared = json_array(), *priv = json_array();
    json_t *ssts = json_array(), *metas = json_array();
    rfiles_t mine = {sn->sn_id, NULL, 0};
    rfiles_t fresh = {sn->sn_id, NULL, 0}; /* uploaded by this call */
    for (size_t i = 0; rc == 0 && i < nnames; i++) {
        const char *name = names[i];
        char *src = path_join(sn->sn_dir, name);
        char rel[1024], dname[512];
        fsum_t sum;
        char *abs = NULL;
        if (ends_with(name, ".sst")) {
            bool have =
                confirmed_lookup(sn->sn_sh, name, shared_real, &abs, &sum);
            if (have && access(abs, F_OK) != 0) {
                free(abs); /* gone meanwhile: upload it again */
                abs = NULL;
                have = false;
            }
            if (!have) {
                eddy__fmt(dname, sizeof(dname), "%s-%lld-%s",
                          sn->sn_sh->sh_uuid, (long long)sn->sn_id, name);
                abs = path_join(shared_real, dname);
                /* Written under a temporary name and renamed, so a shared
                 * file is either whole or absent. */
                char *tmp = eddy__malloc(strlen(abs) + 8);
                sprintf(tmp, "%s.tmp", abs);
                rc = copy_file(src, tmp, NULL, &sum, err);
                if (rc == 0 && rename(tmp, abs) != 0) {
                    rc =
                        eddy_error_set(err, EDDY_ERR_IO, "cannot rename %s: %s",
                                       tmp, strerror(errno));
                }
                if (rc != 0) {
                    unlink(tmp);
                } else {
                    rfiles_add(&fresh, name, abs, sum.fs_size, sum.fs_crc);
                }
                free(tmp);
            }
            if (rc == 0) {
                const char *slash = strrchr(abs, '/');
                eddy__fmt(rel, sizeof(rel), "%s/%s", sbase, slash + 1);
                json_array_append_new(shared, json_string(rel));
                json_array_append_new(ssts, file_json(name, rel, sum));
                rfiles_add(&mine, name, abs, sum.fs_size, sum.fs_crc);
            }
        } else {
            eddy__fmt(rel, sizeof(rel), "%s.rocksdb.%s", t->st_stem, name);
            abs = path_join(t->st_chk_dir, rel);
            rc = copy_file(src, abs, NULL, &sum, err);
            if (rc == 0) {
                json_array_append_new(priv, json_string(rel));
                json_array_append_new(metas, file_json(name, rel, sum));
            }
        }
        free(abs);
        free(src);
    }
    if (rc == 0 && fresh.fl_n > 0) {
        rc = sync_dir(shared_real, err);
    }
    if (rc == 0) {
        rc = sync_dir(t->st_chk_dir, err);
    }
    free(shared_real);
    names_free(names, nnames);
    if (rc != 0) {
        /* No handle will list what this call uploaded: take it back. */
        for (size_t i = 0; i < fresh.fl_n; i++) {
            unlink(fresh.fl_v[i].f_abs);
        }
        rfiles_free(&fresh);
        rfiles_free(&mine);
        json_decref(shared);
        json_decref(priv);
        json_decref(ssts);
        json_decref(metas);
        return rc;
    }
    rfiles_free(&fresh);
    /* Referenced by later checkpoints only once n is complete. */
    rshared_t *sh = sn->sn_sh;
    eddy__mutex_lock(&sh->sh_mu);
    sh->sh_pending =
        eddy__realloc(sh->sh_pending, sizeof(rfiles_t) * (sh->sh_npending + 1));
    sh->sh_pending[sh->sh_npending++] = mine;
    eddy__mutex_unlock(&sh->sh_mu);
    *handle =
        json_pack("{s:s, s:[i, i], s:o, s:o, s:o, s:o, s:o}", "type", "rocksdb",
                  "kg", sn->sn_kg_first, sn->sn_kg_last, "states",
                  states_json(sn->sn_states, sn->sn_nstates), "shared", shared,
                  "private", priv, "sst", ssts, "meta", metas);
    return 0;
}

static int sn_write(eddy__ksnap_t *base, const eddy__snap_target_t *t,
                    json_t **handle, eddy_error_t *err)
{
    rsnap_t *sn = (rsnap_t *)base;
    perf_off();
    if (t->st_savepoint || sn->sn_savepoint) {
        return write_canonical(sn, t, handle, err);
    }
    return write_incremental(sn, t, handle, err);
}

static void sn_release(eddy__ksnap_t *base)
{
    rsnap_t *sn = (rsnap_t *)base;
    if (sn == NULL) {
        return;
    }
    eddy__rmtree(sn->sn_dir);
    free(sn->sn_dir);
    sinfo_free(sn->sn_states, sn->sn_nstates);
    shared_unref(sn->sn_sh);
    free(sn);
}

static int rk_snapshot(eddy__kstate_t *ks, int64_t ckpt_id, bool savepoint,
                       eddy__ksnap_t **out)
{
    rk_t *rk = (rk_t *)ks;
    perf_off(); /* the task thread, if the backend was made elsewhere */
    int rc = cache_flush(rk);
    if (rc != 0) {
        return rc;
    }
    rshared_t *sh = rk->rk_sh;
    char name[64];
    eddy__fmt(name, sizeof(name), "snap-%lld-%u", (long long)ckpt_id,
              shared_seq(sh));
    char *dir = path_join(sh->sh_dir, name);
    /* log_size_for_flush 0: always flush the memtables (the WAL is off). */
    char *e = NULL;
    rocksdb_checkpoint_create(rk->rk_cpt, dir, 0, &e);
    if (e != NULL) {
        rocksdb_free(e);
        eddy__rmtree(dir);
        free(dir);
        return EDDY_ERR_IO;
    }
    rsnap_t *sn = eddy__calloc(1, sizeof(*sn));
    sn->sn_base.ks_write = sn_write;
    sn->sn_base.ks_release = sn_release;
    sn->sn_sh = sh;
    eddy__mutex_lock(&sh->sh_mu);
    sh->sh_refs++;
    eddy__mutex_unlock(&sh->sh_mu);
    sn->sn_dir = dir;
    sn->sn_id = ckpt_id;
    sn->sn_savepoint = savepoint;
    sn->sn_kg_first = ks->ks_kg_first;
    sn->sn_kg_last = ks->ks_kg_last;
    sn->sn_states = sinfo_of(ks);
    sn->sn_nstates = ks->ks_nstates;
    sn->sn_now = ks->ks_now_ms;
    *out = &sn->sn_base;
    return 0;
}

static void rk_notify_complete(eddy__kstate_t *ks, int64_t ckpt_id)
{
    rshared_t *sh = ((rk_t *)ks)->rk_sh;
    eddy__mutex_lock(&sh->sh_mu);
    size_t keep = 0;
    for (size_t i = 0; i < sh->sh_npending; i++) {
        rfiles_t *p = &sh->sh_pending[i];
        if (p->fl_id == ckpt_id) {
            rfiles_free(&sh->sh_confirmed);
            sh->sh_confirmed = *p;
        } else if (p->fl_id < ckpt_id) {
            rfiles_free(p); /* subsumed or aborted */
        } else {
            sh->sh_pending[keep++] = *p;
        }
    }
    sh->sh_npending = keep;
    eddy__mutex_unlock(&sh->sh_mu);
}

/* ---- restore ---- */

typedef struct hfile {
    const char *hf_name;
    char *hf_abs;
    fsum_t hf_sum;
    bool hf_sst;
} hfile_t;

typedef struct rhandle {
    int rh_kg_first, rh_kg_last;
    sinfo_t *rh_states;
    int rh_nstates;
    hfile_t *rh_files;
    size_t rh_nfiles;
} rhandle_t;

static void rhandle_free(rhandle_t *rh)
{
    sinfo_free(rh->rh_states, rh->rh_nstates);
    for (size_t i = 0; i < rh->rh_nfiles; i++) {
        free(rh->rh_files[i].hf_abs);
    }
    free(rh->rh_files);
    memset(rh, 0, sizeof(*rh));
}

static bool safe_name(const char *s)
{
    return s != NULL && s[0] != '\0' && s[0] != '.' && strchr(s, '/') == NULL;
}

static bool safe_rel(const char *s)
{
    return s != NULL && s[0] != '\0' && s[0] != '/' && strstr(s, "..") == NULL;
}

static int parse_files(const json_t *a, const char *base, bool sst,
                       rhandle_t *rh, const char *chk_dir, eddy_error_t *err)
{
    size_t i;
    const json_t *f;
    json_array_foreach(a, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        const char *path = json_string_value(json_object_get(f, "path"));
        json_t *size = json_object_get(f, "size"),
               *crc = json_object_get(f, "crc32c");
        if (!safe_name(name) || !safe_rel(path) || !json_is_integer(size) ||
            !json_is_integer(crc) || json_integer_value(size) < 0) {
            return eddy_error_set(err, EDDY_ERR_FORMAT,
                                  "malformed RocksDB state handle in %s "
                                  "(file entry %zu)",
                                  chk_dir, i);
        }
        rh->rh_files =
            eddy__realloc(rh->rh_files, sizeof(hfile_t) * (rh->rh_nfiles + 1));
        hfile_t *hf = &rh->rh_files[rh->rh_nfiles++];
        hf->hf_name = name;
        hf->hf_abs = path_join(base, path);
        hf->hf_sum.fs_size = (uint64_t)json_integer_value(size);
        hf->hf_sum.fs_crc = (uint32_t)json_integer_value(crc);
        hf->hf_sst = sst;
    }
    return 0;
}

static int rhandle_parse(const json_t *h, const char *chk_dir, rhandle_t *rh,
                         eddy_error_t *err)
{
    memset(rh, 0, sizeof(*rh));
    json_int_t f, l;
    const json_t *states = json_object_get(h, "states");
    const json_t *ssts = json_object_get(h, "sst");
    const json_t *metas = json_object_get(h, "meta");
    if (json_unpack((json_t *)h, "{s:[I, I]}", "kg", &f, &l) != 0 || f < 0 ||
        l < f || l > MAX_KG || !json_is_array(states) || !json_is_array(ssts) ||
        !json_is_array(metas)) {
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "malformed RocksDB state handle in %s", chk_dir);
    }
    rh->rh_kg_first = (int)f;
    rh->rh_kg_last = (int)l;
    rh->rh_nstates = (int)json_array_size(states);
    rh->rh_states = eddy__calloc((size_t)rh->rh_nstates + 1, sizeof(sinfo_t));
    for (int i = 0; i < rh->rh_nstates; i++) {
        const json_t *st = json_array_get(states, (size_t)i);
        const char *name = json_string_value(json_object_get(st, "name"));
        const json_t *kind = json_object_get(st, "kind");
        if (name == NULL || !json_is_integer(kind)) {
            return eddy_error_set(err, EDDY_ERR_FORMAT,
                                  "malformed RocksDB state handle in %s",
                                  chk_dir);
        }
        rh->rh_states[i].si_name = eddy__strdup(name);
        rh->rh_states[i].si_kind = (int)json_integer_value(kind);
        rh->rh_states[i].si_ttl =
            json_integer_value(json_object_get(st, "ttl_ms"));
    }
    char job_dir[4096];
    eddy__fmt(job_dir, sizeof(job_dir), "%s/..", chk_dir);
    int rc = parse_files(ssts, job_dir, true, rh, chk_dir, err);
    if (rc == 0) {
        rc = parse_files(metas, chk_dir, false, rh, chk_dir, err);
    }
    return rc;
}

/* Matches a handle's states to this backend's: map[i] = sid or -1. */
static int map_states(rk_t *rk, const rhandle_t *rh, bool allow_unknown,
                      int *map, bool *same, eddy_error_t *err)
{
    const eddy__kstate_t *ks = &rk->rk_base;
    *same = true;
    for (int i = 0; i < rh->rh_nstates; i++) {
        const sinfo_t *si = &rh->rh_states[i];
        map[i] = -1;
        for (int s = 0; s < ks->ks_nstates; s++) {
            if (strcmp(ks->ks_specs[s].ss_name, si->si_name) == 0) {
                map[i] = s;
            }
        }
        if (map[i] < 0) {
            *same = false;
            if (!allow_unknown) {
                return eddy_error_set(
                    err, EDDY_ERR_STATE,
                    "the checkpoint has keyed state '%s' that the operator "
                    "does not declare (allow it with "
                    "--allow-non-restored-state)",
                    si->si_name);
            }
            continue;
        }
        const eddy__state_spec_t *sp = &ks->ks_specs[map[i]];
        if (sp->ss_kind != si->si_kind) {
            return eddy_error_set(err, EDDY_ERR_STATE,
                                  "keyed state '%s' changed its kind since the "
                                  "checkpoint",
                                  si->si_name);
        }
        if ((sp->ss_ttl_ms > 0) != (si->si_ttl > 0)) {
            *same = false; /* the value layout changes */
        }
    }
    return 0;
}

/* Copies the handle's files into dir, checking sizes and checksums. */
static int materialize(const rhandle_t *rh, const char *dir, eddy_error_t *err)
{
    for (size_t i = 0; i < rh->rh_nfiles; i++) {
        const hfile_t *hf = &rh->rh_files[i];
        char *dst = path_join(dir, hf->hf_name);
        int rc = copy_file(hf->hf_abs, dst, &hf->hf_sum, NULL, err);
        free(dst);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* The fast path: the handle's database becomes this backend's. */
static int restore_fast(rk_t *rk, const rhandle_t *rh, eddy_error_t *err)
{
    rk_db_close(rk);
    eddy__rmtree(rk->rk_dbdir);
    int rc = eddy__mkdirs(rk->rk_dbdir, err);
    if (rc == 0) {
        rc = materialize(rh, rk->rk_dbdir, err);
    }
    if (rc == 0) {
        eddy_error_t oerr = {0};
        rc = rk_db_open(rk, &oerr);
        if (rc != 0) {
            eddy_error_set(err, rc, "cannot open the restored state: %s",
                           oerr.msg);
        }
    }
    if (rc != 0) {
        /* Leave an empty, working backend behind (or, if even that fails,
         * one whose every call fails). */
        eddy_error_t oerr = {0};
        eddy__rmtree(rk->rk_dbdir);
        if (eddy__mkdirs(rk->rk_dbdir, &oerr) != 0 ||
            rk_db_open(rk, &oerr) != 0) {
            rk->rk_fail = EDDY_ERR_IO;
            rk->rk_ferr = oerr;
        }
        return rc;
    }
    /* Those files are held by a completed checkpoint (the restored one):
     * later checkpoints may reference rather than upload them. */
    rshared_t *sh = rk->rk_sh;
    eddy__mutex_lock(&sh->sh_mu);
    rfiles_free(&sh->sh_confirmed);
    sh->sh_confirmed.fl_id = -1;
    for (size_t i = 0; i < rh->rh_nfiles; i++) {
        const hfile_t *hf = &rh->rh_files[i];
        char *real = hf->hf_sst ? realpath(hf->hf_abs, NULL) : NULL;
        if (real != NULL) {
            rfiles_add(&sh->sh_confirmed, hf->hf_name, real, hf->hf_sum.fs_size,
                       hf->hf_sum.fs_crc);
        }
        free(real);
    }
    eddy__mutex_unlock(&sh->sh_mu);
    return 0;
}

/* Writes one entry converted to the destination's TTL layout. */
static void copy_entry(rk_t *rk, rstate_t *ds, const sinfo_t *si,
                       const unsigned char *key, size_t kl,
                       const unsigned char *val, size_t vl, eddy__bytes_t *tmp,
                       eddy__bytes_t *last_map)
{
    bool src_ttl = si->si_ttl > 0, dst_ttl = ds->st_ttl > 0;
    const char *k = (const char *)key;
    if (src_ttl == dst_ttl) {
        rocksdb_writebatch_put_cf(rk->rk_wb, ds->st_cf, k, kl,
                                  (const char *)val, vl);
        return;
    }
    unsigned char stamp[STAMP_BYTES];
    le64_put(stamp, (uint64_t)now_ms(rk));
    if (ds->st_mode == MODE_MAP) {
        dkey_t d;
        if (!key_parse(key, kl, &d) || d.dk_restlen == 0) {
            return;
        }
        if (d.dk_rest[0] == TAG_HEADER) {
            return; /* dropped, or rebuilt below */
        }
        if (dst_ttl && (last_map->b_len != d.dk_plen ||
                        memcmp(last_map->b_data, key, d.dk_plen) != 0)) {
            /* The first entry of a map that now needs a header. */
            eddy__bytes_reset(last_map);
            eddy__bytes_put(last_map, key, d.dk_plen);
            eddy__bytes_put_u8(last_map, TAG_HEADER);
            rocksdb_writebatch_put_cf(
                rk->rk_wb, ds->st_cf, (const char *)last_map->b_data,
                d.dk_plen + 1, (const char *)stamp, sizeof(stamp));
            last_map->b_len = d.dk_plen;
        }
        rocksdb_writebatch_put_cf(rk->rk_wb, ds->st_cf, k, kl,
                                  (const char *)val, vl);
        return;
    }
    if (src_ttl) {
        if (vl >= STAMP_BYTES) {
            rocksdb_writebatch_put_cf(rk->rk_wb, ds->st_cf, k, kl,
                                      (const char *)val + STAMP_BYTES,
                                      vl - STAMP_BYTES);
        }
        return;
    }
    /* Newly under TTL: stamped with the restore time. */
    eddy__bytes_reset(tmp);
    eddy__bytes_put(tmp, stamp, sizeof(stamp));
    eddy__bytes_put(tmp, val, vl);
    rocksdb_writebatch_put_cf(rk->rk_wb, ds->st_cf, k, kl,
                              (const char *)tmp->b_data, tmp->b_len);
}

/* The general path: the entries of our key groups, copied from the
 * handle's database opened read-only. */
static int restore_copy(rk_t *rk, const rhandle_t *rh, const int *map,
                        eddy_error_t *err)
{
    int lo = EDDY_MAX(rk->rk_base.ks_kg_first, rh->rh_kg_first);
    int hi = EDDY_MIN(rk->rk_base.ks_kg_last, rh->rh_kg_last);
    if (lo > hi) {
        return 0;
    }
    char name[64];
    eddy__fmt(name, sizeof(name), "restore-%u", shared_seq(rk->rk_sh));
    char *dir = path_join(rk->rk_sh->sh_dir, name);
    rocksdb_t *db = NULL;
    rocksdb_column_family_handle_t **cfs = NULL;
    int *cfi = NULL, ncfs = 0;
    int rc = eddy__mkdirs(dir, err);
    if (rc == 0) {
        rc = materialize(rh, dir, err);
    }
    if (rc == 0) {
        db = db_open_states(dir, rh->rh_states, rh->rh_nstates, true, &cfs,
                            &cfi, &ncfs, err);
        if (db == NULL) {
            rc = err != NULL && err->code != 0 ? err->code : EDDY_ERR_IO;
        }
    }
    unsigned char lok[2] = {(unsigned char)(lo >> 8), (unsigned char)lo};
    unsigned char hik[2] = {(unsigned char)((hi + 1) >> 8),
                            (unsigned char)(hi + 1)};
    eddy__bytes_t tmp = {0}, last_map = {0};
    for (int i = 0; rc == 0 && i < rh->rh_nstates; i++) {
        if (map[i] < 0) {
            continue;
        }
        rstate_t *ds = &rk->rk_st[map[i]];
        rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
        rocksdb_readoptions_set_fill_cache(ro, 0);
        if (hi < MAX_KG) {
            rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hik,
                                                        2);
        }
        rocksdb_iterator_t *it =
            rocksdb_create_iterator_cf(db, ro, cfs[cfi[i]]);
        eddy__bytes_reset(&last_map);
        for (rocksdb_iter_seek(it, (const char *)lok, 2);
             rc == 0 && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t kl, vl;
            const char *key = rocksdb_iter_key(it, &kl);
            const char *val = rocksdb_iter_value(it, &vl);
            copy_entry(rk, ds, &rh->rh_states[i], (const unsigned char *)key,
                       kl, (const unsigned char *)val, vl, &tmp, &last_map);
            rc = batch_maybe_commit(rk);
        }
        char *e = NULL;
        rocksdb_iter_get_error(it, &e);
        if (e != NULL && rc == 0) {
            rc = eddy_error_set(err, EDDY_ERR_IO,
                                "cannot read the checkpoint copy in %s: %s",
                                dir, e);
        }
        rocksdb_free(e);
        rocksdb_iter_destroy(it);
        rocksdb_readoptions_destroy(ro);
    }
    eddy__bytes_free(&tmp);
    eddy__bytes_free(&last_map);
    if (db != NULL) {
        db_close_handles(db, cfs, ncfs);
    }
    free(cfi);
    eddy__rmtree(dir);
    free(dir);
    if (rc == 0) {
        rc = batch_commit(rk);
        if (rc != 0) {
            eddy_error_set(err, rc, "%s", rk->rk_ferr.msg);
        }
    }
    return rc;
}

static int rk_restore(eddy__kstate_t *ks, const eddy__restore_src_t *src,
                      bool allow_unknown_states, eddy_error_t *err)
{
    rk_t *rk = (rk_t *)ks;
    perf_off(); /* the task thread, if the backend was made elsewhere */
    int rc = cache_flush(rk);
    if (rc != 0) {
        return eddy_error_set(err, rc, "%s", rk->rk_ferr.msg);
    }
    for (int i = 0; i < src->rs_n; i++) {
        const char *type =
            json_string_value(json_object_get(src->rs_handles[i], "type"));
        if (type == NULL ||
            (strcmp(type, "canonical") != 0 && strcmp(type, "rocksdb") != 0)) {
            return eddy_error_set(err, EDDY_ERR_FORMAT,
                                  "unsupported keyed state handle type '%s' "
                                  "in %s",
                                  type != NULL ? type : "(none)",
                                  src->rs_chk_dir);
        }
    }
    for (int i = 0; rc == 0 && i < src->rs_n; i++) {
        const json_t *h = src->rs_handles[i];
        if (strcmp(json_string_value(json_object_get(h, "type")),
                   "canonical") == 0) {
            rc = eddy__canon_load(ks, h, src->rs_chk_dir, allow_unknown_states,
                                  err);
            if (rc == 0) {
                rc = cache_flush(rk);
                if (rc != 0) {
                    eddy_error_set(err, rc, "%s", rk->rk_ferr.msg);
                }
            }
            continue;
        }
        rhandle_t rh;
        rc = rhandle_parse(h, src->rs_chk_dir, &rh, err);
        int *map = eddy__calloc((size_t)rh.rh_nstates + 1, sizeof(int));
        bool same = false;
        if (rc == 0) {
            rc = map_states(rk, &rh, allow_unknown_states, map, &same, err);
        }
        if (rc == 0) {
            if (src->rs_n == 1 && same && rh.rh_kg_first == ks->ks_kg_first &&
                rh.rh_kg_last == ks->ks_kg_last) {
                rc = restore_fast(rk, &rh, err);
            } else {
                rc = restore_copy(rk, &rh, map, err);
            }
        }
        free(map);
        rhandle_free(&rh);
    }
    return rc;
}

/* ---- lifecycle ---- */

static void rk_destroy(eddy__kstate_t *ks)
{
    rk_t *rk = (rk_t *)ks;
    rk_db_close(rk);
    if (rk->rk_dbdir != NULL) {
        eddy__rmtree(rk->rk_dbdir);
    }
    for (int sid = 0; rk->rk_st != NULL && sid < ks->ks_nstates; sid++) {
        rstate_t *s = &rk->rk_st[sid];
        for (int i = 0; i < RING_SLOTS; i++) {
            free(s->st_ring[i].sl_buf);
        }
        free(s->st_pkey);
        free(s->st_pval);
        free(s->st_resume);
    }
    free(rk->rk_st);
    if (rk->rk_wb != NULL) {
        rocksdb_writebatch_destroy(rk->rk_wb);
    }
    if (rk->rk_wo != NULL) {
        rocksdb_writeoptions_destroy(rk->rk_wo);
    }
    if (rk->rk_ro != NULL) {
        rocksdb_readoptions_destroy(rk->rk_ro);
    }
    if (rk->rk_ro_it != NULL) {
        rocksdb_readoptions_destroy(rk->rk_ro_it);
    }
    if (rk->rk_ro_cur != NULL) {
        rocksdb_readoptions_destroy(rk->rk_ro_cur);
    }
    eddy__arena_close(&rk->rk_arena);
    free(rk->rk_cache);
    free(rk->rk_cused);
    free(rk->rk_key);
    free(rk->rk_key2);
    free(rk->rk_bound);
    free(rk->rk_op);
    free(rk->rk_dbdir);
    shared_unref(rk->rk_sh);
    free(rk);
}

static const eddy__kstate_ops_t rocksdb_ops = {
    .ko_name = "rocksdb",
    .ko_destroy = rk_destroy,
    .ko_get = rk_get,
    .ko_put = rk_put,
    .ko_get_for_update = rk_get_for_update,
    .ko_remove = rk_remove,
    .ko_list_add = rk_list_add,
    .ko_list_iter = rk_list_iter,
    .ko_list_next = rk_list_next,
    .ko_map_put = rk_map_put,
    .ko_map_get = rk_map_get,
    .ko_map_remove = rk_map_remove,
    .ko_map_iter = rk_map_iter,
    .ko_map_next = rk_map_next,
    .ko_for_each = rk_for_each,
    .ko_size = rk_size,
    .ko_snapshot = rk_snapshot,
    .ko_restore = rk_restore,
    .ko_notify_complete = rk_notify_complete,
};

static rshared_t *shared_new(const char *workdir, eddy_error_t *err)
{
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        eddy_error_set(err, EDDY_ERR_IO, "cannot get random bytes: %s",
                       strerror(errno));
        return NULL;
    }
    rshared_t *sh = eddy__calloc(1, sizeof(*sh));
    pthread_mutex_init(&sh->sh_mu, NULL);
    sh->sh_refs = 1;
    sh->sh_dir = eddy__strdup(workdir);
    for (size_t i = 0; i < sizeof(rnd); i++) {
        snprintf(sh->sh_uuid + 2 * i, 3, "%02x", rnd[i]);
    }
    return sh;
}

eddy__kstate_t *eddy__rocksdb_kstate_new(const eddy__state_spec_t *specs,
                                         int nstates, int kg_first, int kg_last,
                                         const char *workdir, eddy_error_t *err)
{
    assert(nstates >= 0 && (nstates == 0 || specs != NULL));
    assert(kg_first >= 0 && kg_first <= kg_last);
    if (kg_last > MAX_KG) {
        eddy_error_set(err, EDDY_ERR_INVALID,
                       "key group %d is beyond the RocksDB backend's limit %d",
                       kg_last, MAX_KG);
        return NULL;
    }
    for (int i = 0; i < nstates; i++) {
        for (int j = 0; j < i; j++) {
            if (strcmp(specs[i].ss_name, specs[j].ss_name) == 0) {
                eddy_error_set(err, EDDY_ERR_INVALID,
                               "two keyed states are named '%s'",
                               specs[i].ss_name);
                return NULL;
            }
        }
    }
    if (eddy__mkdirs(workdir, err) != 0) {
        return NULL;
    }
    char *dbdir = path_join(workdir, "db");
    if (access(dbdir, F_OK) == 0) {
        eddy_error_set(err, EDDY_ERR_BUSY,
                       "RocksDB working directory %s is in use (or left over)",
                       dbdir);
        free(dbdir);
        return NULL;
    }
    rshared_t *sh = shared_new(workdir, err);
    if (sh == NULL) {
        free(dbdir);
        return NULL;
    }
    rk_t *rk = eddy__calloc(1, sizeof(*rk));
    eddy__kstate_t *ks = &rk->rk_base;
    ks->ks_ops = &rocksdb_ops;
    ks->ks_specs = specs;
    ks->ks_nstates = nstates;
    ks->ks_kg_first = kg_first;
    ks->ks_kg_last = kg_last;
    ks->ks_now_ms = 0;
    rk->rk_sh = sh;
    rk->rk_dbdir = dbdir;
    rk->rk_st = eddy__calloc((size_t)nstates + 1, sizeof(rstate_t));
    for (int sid = 0; sid < nstates; sid++) {
        rstate_t *s = &rk->rk_st[sid];
        s->st_mode = mode_of_kind(specs[sid].ss_kind);
        s->st_ttl = specs[sid].ss_ttl_ms > 0 ? specs[sid].ss_ttl_ms : 0;
        s->st_hdr = s->st_ttl > 0 ? STAMP_BYTES : 0;
    }
    rk->rk_cache = eddy__calloc(CACHE_SLOTS, sizeof(centry_t));
    rk->rk_cused = eddy__calloc(CACHE_MAX + 1, sizeof(uint32_t));
    eddy__arena_init(&rk->rk_arena, CACHE_CHUNK);
    rk->rk_wb = rocksdb_writebatch_create();
    rk->rk_wo = rocksdb_writeoptions_create();
    /* Checkpoints are the durability: no write-ahead log. */
    rocksdb_writeoptions_disable_WAL(rk->rk_wo, 1);
    rk->rk_ro = rocksdb_readoptions_create();
    rk->rk_ro_it = rocksdb_readoptions_create();
    rk->rk_ro_cur = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(rk->rk_ro_cur, 0);
    rk->rk_lo[0] = (unsigned char)(kg_first >> 8);
    rk->rk_lo[1] = (unsigned char)kg_first;
    rk->rk_hi[0] = (unsigned char)((kg_last + 1) >> 8);
    rk->rk_hi[1] = (unsigned char)(kg_last + 1);
    if (kg_last < MAX_KG) {
        rocksdb_readoptions_set_iterate_upper_bound(rk->rk_ro_cur,
                                                    (const char *)rk->rk_hi, 2);
    }
    if (rk_db_open(rk, err) != 0) {
        rk_destroy(ks);
        return NULL;
    }
    perf_off();
    return ks;
}
