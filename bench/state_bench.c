/*
 * eddy-state-bench — keyed-state backends side by side: the same work on
 * the heap backend and on the RocksDB backend, in one run.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. Each case runs a fixed number of operations through the backend
 * vtable (what operators call), over --keys distinct keys built up front
 * (key bytes, hash and key group computed once, as the runtime does per
 * record), visited in a pseudo-random order. The figure is operations per
 * second of wall time. The heap backend is the baseline: ratio =
 * rocksdb / heap. Cases:
 *   value_update  get + put of an 8-byte counter (process functions)
 *   value_update_ttl  the same with a TTL of 1 s while the clock covers
 *                 10 s (expiry on read and incremental cleanup at work)
 *   value_gfu     get_for_update + in-place increment (window aggregates)
 *   list_add      appends of 32-byte elements, 10 per key on average
 *   list_read     iterating every list once
 *   map_put       8-byte values under 4 user keys per key
 * then, for RocksDB only, checkpoint figures: the synchronous part
 * (ko_snapshot), the asynchronous write of a first checkpoint, and of a
 * second one after updating 10% of the keys (incremental: bytes uploaded).
 *
 * --case runs one case only (profiling), without the checkpoints.
 *
 * Output: one line per case on stdout,
 *     case=NAME heap_ops=N rocksdb_ops=N ratio=R
 *     case=checkpoint_N sync_ms=N write_ms=N files=N uploaded_bytes=N
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/storage.h"
#include "state/state.h"

#define MAXP 128

enum { S_VAL, S_AGG, S_LIST, S_MAP, S_TVAL, NSTATES };

#define TTL_MS 1000

static const eddy__state_spec_t specs[NSTATES] = {
    {"value", EDDY_STATE_VALUE, 0},       {"agg", EDDY_STATE_AGGREGATING, 0},
    {"list", EDDY_STATE_LIST, 0},         {"map", EDDY_STATE_MAP, 0},
    {"tvalue", EDDY_STATE_VALUE, TTL_MS},
};

static eddy__skey_t *g_keys;
static char *g_keybytes;
static size_t g_nkeys;
static char g_dir[512];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "eddy-state-bench: %s failed: %s\n", what,
            eddy_strerror(rc));
    exit(1);
}

static void make_keys(size_t n)
{
    g_nkeys = n;
    g_keys = eddy__calloc(n, sizeof(*g_keys));
    g_keybytes = eddy__calloc(n, 16);
    for (size_t i = 0; i < n; i++) {
        char *kb = g_keybytes + i * 16;
        int len = snprintf(kb, 16, "user-%zu", i);
        eddy__skey_t *k = &g_keys[i];
        k->sk_key = kb;
        k->sk_klen = (size_t)len;
        k->sk_hash = eddy__hash64(kb, (size_t)len);
        k->sk_kg = eddy__key_group(k->sk_hash, MAXP);
        k->sk_ns = NULL;
        k->sk_nslen = 0;
    }
}

static eddy__kstate_t *backend(bool rocksdb)
{
    if (!rocksdb) {
        return eddy__heap_kstate_new(specs, NSTATES, 0, MAXP - 1);
    }
    static int seq;
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/b%d", g_dir, seq++);
    eddy_error_t err = {0};
    eddy__kstate_t *ks =
        eddy__rocksdb_kstate_new(specs, NSTATES, 0, MAXP - 1, dir, &err);
    if (ks == NULL) {
        fprintf(stderr, "eddy-state-bench: %s\n", err.msg);
        exit(1);
    }
    return ks;
}

/* ---- cases: each returns operations done ---- */

static size_t run_value_update(eddy__kstate_t *ks, size_t ops)
{
    const eddy__kstate_ops_t *o = ks->ks_ops;
    uint64_t seed = 42;
    for (size_t i = 0; i < ops; i++) {
        const eddy__skey_t *k = &g_keys[rnd(&seed) % g_nkeys];
        const void *v;
        size_t len;
        int64_t n = 0;
        if (o->ko_get(ks, S_VAL, k, &v, &len) == 1) {
            memcpy(&n, v, sizeof(n));
        }
        n++;
        int rc = o->ko_put(ks, S_VAL, k, &n, sizeof(n));
        if (rc != 0) {
            die("put", rc);
        }
    }
    return ops;
}

/* value_update on a state with TTL while the clock runs: entries expire
 * (reads find them gone, the incremental cleanup removes the rest). */
static size_t run_value_update_ttl(eddy__kstate_t *ks, size_t ops)
{
    const eddy__kstate_ops_t *o = ks->ks_ops;
    uint64_t seed = 46;
    for (size_t i = 0; i < ops; i++) {
        /* The clock covers ten TTLs over the run. */
        eddy__kstate_set_time(ks, (int64_t)(i * 10 * TTL_MS / ops));
        const eddy__skey_t *k = &g_keys[rnd(&seed) % g_nkeys];
        const void *v;
        size_t len;
        int64_t n = 0;
        if (o->ko_get(ks, S_TVAL, k, &v, &len) == 1) {
            memcpy(&n, v, sizeof(n));
        }
        n++;
        int rc = o->ko_put(ks, S_TVAL, k, &n, sizeof(n));
        if (rc != 0) {
            die("put", rc);
        }
    }
    return ops;
}

static size_t run_value_gfu(eddy__kstate_t *ks, size_t ops)
{
    const eddy__kstate_ops_t *o = ks->ks_ops;
    uint64_t seed = 43;
    for (size_t i = 0; i < ops; i++) {
        const eddy__skey_t *k = &g_keys[rnd(&seed) % g_nkeys];
        void *p;
        bool created;
        int rc = o->ko_get_for_update(ks, S_AGG, k, 8, &p, &created);
        if (rc != 0) {
            die("get_for_update", rc);
        }
        int64_t n;
        memcpy(&n, p, 8);
        n++;
        memcpy(p, &n, 8);
    }
    return ops;
}

static size_t run_list_add(eddy__kstate_t *ks, size_t ops)
{
    const eddy__kstate_ops_t *o = ks->ks_ops;
    uint64_t seed = 44;
    char el[32];
    memset(el, 'e', sizeof(el));
    size_t nk = g_nkeys / 10 ? g_nkeys / 10 : 1;
    for (size_t i = 0; i < ops; i++) {
        const eddy__skey_t *k = &g_keys[rnd(&seed) % nk];
        memcpy(el, &i, sizeof(i));
        int rc = o->ko_list_add(ks, S_LIST, k, el, sizeof(el));
        if (rc != 0) {
            die("list_add", rc);
        }
    }
    return ops;
}

static size_t run_list_read(eddy__kstate_t *ks, size_t ops)
{
    EDDY_UNUSED(ops);
    const eddy__kstate_ops_t *o = ks->ks_ops;
    size_t nk = g_nkeys / 10 ? g_nkeys / 10 : 1, elems = 0;
    for (size_t i = 0; i < nk; i++) {
        eddy__siter_t it;
        const void *v;
        size_t len;
        if (o->ko_list_iter(ks, S_LIST, &g_keys[i], &it) == 1) {
            while (o->ko_list_next(&it, &v, &len) == 1) {
                elems++;
            }
        }
    }
    if (elems == 0) {
        die("list_read", EDDY_ERR_STATE);
    }
    return nk;
}

static size_t run_map_put(eddy__kstate_t *ks, size_t ops)
{
    const eddy__kstate_ops_t *o = ks->ks_ops;
    uint64_t seed = 45;
    for (size_t i = 0; i < ops; i++) {
        uint64_t r = rnd(&seed);
        const eddy__skey_t *k = &g_keys[r % g_nkeys];
        char uk = (char)('a' + (r >> 40) % 4);
        int rc = o->ko_map_put(ks, S_MAP, k, &uk, 1, &i, sizeof(i));
        if (rc != 0) {
            die("map_put", rc);
        }
    }
    return ops;
}

typedef size_t (*case_fn)(eddy__kstate_t *, size_t);

static const char *g_only; /* --case NAME: run only that case */

/* Runs `fn` on both backends (state carried over between cases). */
static void compare(const char *name, case_fn fn, size_t ops,
                    eddy__kstate_t *heap, eddy__kstate_t *rdb)
{
    if (g_only != NULL && strcmp(g_only, name) != 0) {
        return;
    }
    double t0 = now_s();
    size_t nh = fn(heap, ops);
    double t1 = now_s();
    size_t nr = fn(rdb, ops);
    double t2 = now_s();
    double h = (double)nh / (t1 - t0), r = (double)nr / (t2 - t1);
    printf("case=%s heap_ops=%.0f rocksdb_ops=%.0f ratio=%.3f\n", name, h, r,
           r / h);
    fflush(stdout);
}

/* ---- checkpoints ---- */

static uint64_t dir_bytes(const char *dir, size_t *files)
{
    DIR *d = opendir(dir);
    uint64_t n = 0;
    *files = 0;
    if (d == NULL) {
        return 0;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char p[2048];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (de->d_name[0] != '.' && stat(p, &st) == 0) {
            n += (uint64_t)st.st_size;
            (*files)++;
        }
    }
    closedir(d);
    return n;
}

static void checkpoint(eddy__kstate_t *ks, int64_t id, const char *job,
                       const char *shared)
{
    size_t f0, f1;
    uint64_t b0 = dir_bytes(shared, &f0);
    char chk[700];
    snprintf(chk, sizeof(chk), "%s/chk-%lld", job, (long long)id);
    eddy_error_t err = {0};
    if (eddy__mkdirs(chk, &err) != 0) {
        fprintf(stderr, "eddy-state-bench: %s\n", err.msg);
        exit(1);
    }
    eddy__ksnap_t *snap = NULL;
    double t0 = now_s();
    int rc = ks->ks_ops->ko_snapshot(ks, id, false, &snap);
    double t1 = now_s();
    if (rc != 0) {
        die("ko_snapshot", rc);
    }
    eddy__snap_target_t t = {chk, shared, "op1-0", id, false};
    json_t *h = NULL;
    rc = snap->ks_write(snap, &t, &h, &err);
    double t2 = now_s();
    if (rc != 0) {
        fprintf(stderr, "eddy-state-bench: ks_write: %s\n", err.msg);
        exit(1);
    }
    snap->ks_release(snap);
    uint64_t b1 = dir_bytes(shared, &f1);
    printf("case=checkpoint_%lld sync_ms=%.1f write_ms=%.1f files=%zu "
           "uploaded_files=%zu uploaded_bytes=%llu\n",
           (long long)id, (t1 - t0) * 1e3, (t2 - t1) * 1e3,
           json_array_size(json_object_get(h, "shared")), f1 - f0,
           (unsigned long long)(b1 - b0));
    fflush(stdout);
    json_decref(h);
    ks->ks_ops->ko_notify_complete(ks, id);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: eddy-state-bench [--keys N] [--ops N] [--dir DIR]\n"
            "  --keys N  distinct keys (default 1000000)\n"
            "  --ops N   operations per case (default 2000000)\n"
            "  --case C  only case C (value_update, value_update_ttl,\n"
            "            value_gfu, list_add, list_read, map_put), no\n"
            "            checkpoints\n"
            "  --dir D   where RocksDB works (default $TMPDIR or /tmp)\n");
}

int main(int argc, char **argv)
{
    size_t keys = 1000000, ops = 2000000;
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc) {
            keys = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc) {
            ops = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
            g_only = argv[++i];
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            base = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0) {
            usage();
            return 0;
        } else {
            usage();
            return 2;
        }
    }
    if (keys == 0 || ops == 0) {
        usage();
        return 2;
    }
    snprintf(g_dir, sizeof(g_dir), "%s/eddy-state-bench-XXXXXX", base);
    if (mkdtemp(g_dir) == NULL) {
        fprintf(stderr, "eddy-state-bench: mkdtemp %s: %s\n", g_dir,
                strerror(errno));
        return 1;
    }
    make_keys(keys);
    printf("# keys=%zu ops=%zu dir=%s\n", keys, ops, g_dir);
    eddy__kstate_t *heap = backend(false), *rdb = backend(true);
    compare("value_update", run_value_update, ops, heap, rdb);
    compare("value_update_ttl", run_value_update_ttl, ops, heap, rdb);
    compare("value_gfu", run_value_gfu, ops, heap, rdb);
    compare("list_add", run_list_add, ops, heap, rdb);
    compare("list_read", run_list_read, ops, heap, rdb);
    compare("map_put", run_map_put, ops, heap, rdb);
    eddy__kstate_destroy(heap);
    if (g_only != NULL) {
        eddy__kstate_destroy(rdb);
        eddy__rmtree(g_dir);
        return 0;
    }

    char job[600], shared[700];
    snprintf(job, sizeof(job), "%s/job", g_dir);
    snprintf(shared, sizeof(shared), "%s/shared", job);
    eddy_error_t err = {0};
    if (eddy__mkdirs(shared, &err) != 0) {
        fprintf(stderr, "eddy-state-bench: %s\n", err.msg);
        return 1;
    }
    checkpoint(rdb, 1, job, shared);
    run_value_update(rdb, keys / 10);
    checkpoint(rdb, 2, job, shared);
    eddy__kstate_destroy(rdb);
    eddy__rmtree(g_dir);
    free(g_keys);
    free(g_keybytes);
    return 0;
}
