/*
 * cluster_jobs — the jobs eddy-cluster-bench submits to a real cluster.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 *   shuffle N KEY PAGE    generator (parallelism 1) of N records with
 *                         100-byte values -> key_by (every record gets the
 *                         one-byte key KEY) -> counting sink (parallelism 2)
 *   keyed KEYS RATE PAGE  generator (parallelism 2, unbounded, RATE
 *                         records/s in all) -> key_by (index % KEYS) ->
 *                         aggregate(count) -> progress sink (parallelism 2)
 *
 * DESIGN. shuffle measures the data plane. With two TaskManagers of one
 * slot each, slot sharing puts the generator and sink subtask 0 in one
 * TaskManager and sink subtask 1 in the other. The benchmark picks KEY so
 * that its key group belongs to sink subtask 1: every record then crosses
 * the network, and none takes the in-process channel to subtask 0. (A
 * rebalance edge would send only half across, and would make the figure
 * the slower of a local and a remote channel.) The generator does no
 * per-record work: every record's value is the same static 100 bytes.
 * The sink counts and drops; it takes the clock at its first and its N-th
 * record, the source at record 0, and the benchmark's figure is the time
 * between record 0 leaving the generator and record N-1 reaching the sink.
 *
 * keyed is a long-running job with keyed state for the recovery case: the
 * progress sink stores, per subtask, the time of its latest record and
 * the count the aggregate emitted with it. After a TaskManager is killed,
 * the time shows when processing resumed, and the count whether the state
 * was restored (it continues from the checkpoint instead of starting at 1).
 *
 * Both write into PAGE, a file the benchmark created (cluster_jobs.h). The
 * build function maps it once per process: it runs again for each attempt
 * of the job in the TaskManagers, and in the JobManager's inspection
 * child, where the mapping is simply never written.
 *
 * THREADS. The user functions run on task threads; each writes only the
 * fields of its own subtask (or of source subtask 0).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <eddy/eddy.h>

#include "cluster_jobs.h"

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static cj_page_t *g_page;
static char g_page_path[4096];

/* The shuffle job's settings, fixed at build time. */
static uint64_t g_records;
static unsigned char g_key;
static const unsigned char g_value[CJ_VALUE_BYTES];

/* The keyed job's number of keys. */
static uint64_t g_keys;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* Maps the report page at `path` (once per process and path). */
static int map_page(eddy_env_t *env, const char *path)
{
    int rc = 0;
    pthread_mutex_lock(&g_mu);
    if (g_page != NULL && strcmp(g_page_path, path) == 0) {
        goto out;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        rc = eddy_env_fail(env, "cannot open the report page %s: %s", path,
                           strerror(errno));
        goto out;
    }
    void *p = mmap(NULL, sizeof(cj_page_t), PROT_READ | PROT_WRITE, MAP_SHARED,
                   fd, 0);
    int map_errno = errno;
    off_t size = lseek(fd, 0, SEEK_END);
    close(fd);
    if (p == MAP_FAILED) {
        rc = eddy_env_fail(env, "cannot map the report page %s: %s", path,
                           strerror(map_errno));
        goto out;
    }
    /* A short file would fault on access (SIGBUS), so check before use. */
    if (size < (off_t)sizeof(cj_page_t) ||
        ((cj_page_t *)p)->cp_magic != CJ_MAGIC) {
        munmap(p, sizeof(cj_page_t));
        rc = eddy_env_fail(env, "%s is not a report page of eddy-cluster-bench",
                           path);
        goto out;
    }
    /* A previous mapping stays: task threads of an older attempt may still
     * write to it while they wind down. */
    g_page = p;
    snprintf(g_page_path, sizeof(g_page_path), "%s", path);
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo ||
        v > hi) {
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* ---- shuffle ---- */

static int shuffle_gen(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                       void *opaque)
{
    cj_page_t *pg = opaque;
    (void)ctx;
    if (index == 0) {
        atomic_store_explicit(&pg->cp_src_pid, (uint64_t)getpid(),
                              memory_order_relaxed);
        atomic_store_explicit(&pg->cp_src_first_ns, now_ns(),
                              memory_order_relaxed);
    }
    out->value = g_value;
    out->value_len = sizeof(g_value);
    return 0;
}

static int shuffle_key(eddy_ctx_t *ctx, const eddy_record_t *in,
                       const void **key, size_t *key_len, void *opaque)
{
    (void)ctx;
    (void)in;
    (void)opaque;
    *key = &g_key;
    *key_len = 1;
    return 0;
}

static int shuffle_sink(eddy_ctx_t *ctx, const eddy_record_t *in, void *opaque)
{
    cj_page_t *pg = opaque;
    cj_sub_t *sub = &pg->cp_sub[eddy_ctx_subtask(ctx)];
    uint64_t n =
        atomic_load_explicit(&sub->cs_records, memory_order_relaxed) + 1;
    (void)in;
    atomic_store_explicit(&sub->cs_records, n, memory_order_relaxed);
    if (n == 1) {
        atomic_store_explicit(&sub->cs_pid, (uint64_t)getpid(),
                              memory_order_relaxed);
        atomic_store_explicit(&sub->cs_first_ns, now_ns(),
                              memory_order_relaxed);
    }
    if (n == g_records) {
        atomic_store_explicit(&sub->cs_last_ns, now_ns(), memory_order_relaxed);
    }
    return 0; /* counted; nothing reaches the discard sink */
}

static int build_shuffle(eddy_env_t *env, int argc, char **argv)
{
    uint64_t n, key;
    if (argc != 4 || parse_u64(argv[1], 1, UINT64_C(1) << 40, &n) != 0 ||
        parse_u64(argv[2], 0, 255, &key) != 0) {
        return eddy_env_fail(env, "usage: cluster_jobs.so -- shuffle "
                                  "RECORDS KEY(0..255) PAGE");
    }
    int rc = map_page(env, argv[3]);
    if (rc != 0) {
        return rc;
    }
    g_records = n;
    g_key = (unsigned char)key;
    eddy_env_set_name(env, "cluster-bench-shuffle");
    eddy_env_set_parallelism(env, 2);
    eddy_env_set_max_parallelism(env, CJ_MAX_PARALLELISM);
    eddy_stream_t *s = eddy_source_generator(env, n, 0, shuffle_gen, g_page);
    s = eddy_parallelism(eddy_uid(s, "generator"), 1);
    s = eddy_key_by(s, shuffle_key, NULL);
    s = eddy_parallelism(eddy_filter(s, shuffle_sink, g_page), 2);
    eddy_sink_discard(eddy_uid(s, "count"));
    return 0;
}

/* ---- keyed ---- */

static int keyed_gen(eddy_ctx_t *ctx, uint64_t index, eddy_record_t *out,
                     void *opaque)
{
    (void)opaque;
    uint64_t *v = eddy_ctx_scratch(ctx, sizeof(*v));
    if (v == NULL) {
        return eddy_ctx_fail(ctx, "out of scratch memory");
    }
    *v = index;
    out->value = v;
    out->value_len = sizeof(*v);
    return 0;
}

static int keyed_key(eddy_ctx_t *ctx, const eddy_record_t *in, const void **key,
                     size_t *key_len, void *opaque)
{
    uint64_t index, *k = eddy_ctx_scratch(ctx, sizeof(*k));
    (void)opaque;
    if (k == NULL || in->value_len != sizeof(index)) {
        return eddy_ctx_fail(ctx, "unexpected record");
    }
    memcpy(&index, in->value, sizeof(index));
    *k = index % g_keys;
    *key = k;
    *key_len = sizeof(*k);
    return 0;
}

static int keyed_progress(eddy_ctx_t *ctx, const eddy_record_t *in,
                          void *opaque)
{
    cj_page_t *pg = opaque;
    cj_sub_t *sub = &pg->cp_sub[eddy_ctx_subtask(ctx)];
    uint64_t n =
        atomic_load_explicit(&sub->cs_records, memory_order_relaxed) + 1;
    atomic_store_explicit(&sub->cs_records, n, memory_order_relaxed);
    atomic_store_explicit(&sub->cs_pid, (uint64_t)getpid(),
                          memory_order_relaxed);
    atomic_store_explicit(&sub->cs_last_count,
                          (uint64_t)eddy_record_value_i64(in),
                          memory_order_relaxed);
    atomic_store_explicit(&sub->cs_last_ns, now_ns(), memory_order_relaxed);
    return 0;
}

static int build_keyed(eddy_env_t *env, int argc, char **argv)
{
    uint64_t keys, rate;
    if (argc != 4 || parse_u64(argv[1], 1, 1000000, &keys) != 0 ||
        parse_u64(argv[2], 1, 100000000, &rate) != 0) {
        return eddy_env_fail(env,
                             "usage: cluster_jobs.so -- keyed KEYS RATE PAGE");
    }
    int rc = map_page(env, argv[3]);
    if (rc != 0) {
        return rc;
    }
    g_keys = keys;
    eddy_env_set_name(env, "cluster-bench-keyed");
    eddy_env_set_parallelism(env, 2);
    eddy_env_set_max_parallelism(env, CJ_MAX_PARALLELISM);
    eddy_stream_t *s =
        eddy_source_generator(env, 0, (double)rate, keyed_gen, NULL);
    s = eddy_key_by(eddy_uid(s, "generator"), keyed_key, NULL);
    s = eddy_uid(eddy_aggregate(s, eddy_agg_count()), "counts");
    s = eddy_uid(eddy_filter(s, keyed_progress, g_page), "progress");
    eddy_sink_discard(s);
    return 0;
}

static int build(eddy_env_t *env, int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "shuffle") == 0) {
        return build_shuffle(env, argc, argv);
    }
    if (argc >= 1 && strcmp(argv[0], "keyed") == 0) {
        return build_keyed(env, argc, argv);
    }
    return eddy_env_fail(env, "usage: cluster_jobs.so -- shuffle|keyed ...");
}

EDDY_JOB("cluster-bench", build)
