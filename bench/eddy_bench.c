/*
 * eddy-bench — throughput of eddy jobs against a bare C loop.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. Each case builds a job in this process with the public API
 * (eddy_env_new, the builders, eddy_env_execute) and runs a bounded generator
 * through it. The record count is calibrated: short trial runs (which also
 * warm up caches and the allocator) estimate the rate, then one timed run is
 * sized to last about --seconds. The figure is records / wall time of
 * eddy_env_execute (planning, thread start-up and teardown included).
 *
 * The baseline of a case is a single-threaded loop that does the same
 * per-record work without the engine: it calls the same user functions
 * (workload.c) through function pointers, with the same per-function scratch
 * reset the engine does, and for keyed cases counts the same keys in a plain
 * open-addressing hash table. It is measured the same way (calibrated, timed
 * for --seconds) once per workload and reused by the -p1 and -p2 cases, so
 * ratio = eddy_rps / baseline_rps shows both the engine's per-record overhead
 * (at p1) and its scaling (at p2).
 *
 * Event-time cases (windows, interval join) generate ascending timestamps,
 * EV_PER_MS records per millisecond, and keep them with monotonous
 * watermarks. Their baselines are hand-written loops computing the same
 * results as efficiently as we know how (see each bare_* function). Both
 * sides count their results (and sum the result values): eddy through a
 * count filter before the discard sink. After the figures, the baseline is
 * run over the record count of eddy's timed run, and a difference in the
 * results fails the case: a benchmark that computes something else is
 * worthless.
 *
 * Output: one line per case on stdout,
 *     case=NAME eddy_rps=N baseline_rps=N ratio=R
 * and, with --verbose, the runs behind each figure on stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <eddy/eddy.h>
#include <eddy/runner.h>
#include <ftw.h>
#include <unistd.h>

#include "workload.h"

#define EXIT_RUN_FAILED 1
#define EXIT_USAGE 2

/* Trial runs grow until one lasts at least this long. */
#define TRIAL_MIN_SECONDS 0.2
#define TRIAL_FIRST_RECORDS (1u << 18)
/* A timed run shorter than this fraction of --seconds is resized and rerun. */
#define TIMED_MIN_FRACTION 0.7
#define MAX_REPEAT 99

/* Event-time data: record i has timestamp EV_TS_BASE + i / EV_PER_MS (ms).
 * 1 000 records per ms is 1 M events per event-time second, so each of
 * EV_KEYS keys sees 100 records per 1 s slide and 1 000 per 10 s window.
 * EV_TS_BASE (2023-11-14 22:13:20 UTC) is a multiple of every window size. */
#define EV_TS_BASE INT64_C(1700000000000)
#define EV_PER_MS 1000
#define EV_KEYS 10000
#define EV_SIZE_MS 10000 /* tumbling and sliding windows */
#define EV_SLIDE_MS 1000
#define EV_GAP_MS 500 /* sessions; keys idle WL_IDLE_MS every WL_CYCLE_MS */
/* Interval join: right record i is EV_JOIN_SHIFT_MS after left record i,
 * and a pair joins when right - left is in [EV_JOIN_LOWER_MS,
 * EV_JOIN_UPPER_MS]. Ids are unique, so each right record joins exactly its
 * left one. */
#define EV_JOIN_SHIFT_MS 5
#define EV_JOIN_LOWER_MS 0
#define EV_JOIN_UPPER_MS 10

typedef enum workload_kind {
    WL_STATELESS,
    WL_KEYED,
    WL_TUMBLING,
    WL_SLIDING,
    WL_SESSION,
    WL_JOIN
} workload_kind_t;

typedef struct workload {
    const char *w_name;
    workload_kind_t w_kind;
    uint64_t w_nkeys;
} workload_t;

static const workload_t workloads[] = {
    {"stateless", WL_STATELESS, 0},   {"keyed-1k", WL_KEYED, 1000},
    {"keyed-1m", WL_KEYED, 1000000},  {"tumbling", WL_TUMBLING, EV_KEYS},
    {"sliding", WL_SLIDING, EV_KEYS}, {"session", WL_SESSION, EV_KEYS},
    {"interval-join", WL_JOIN, 0},
};

/* Event-time workloads check their results against the baseline's. */
#define WL_CHECKED(kind) ((kind) >= WL_TUMBLING)

typedef struct bench_case {
    const char *bc_name;
    int bc_workload; /* index in workloads[] */
    int bc_parallelism;
    int64_t bc_ckpt_ms; /* > 0: checkpoint every bc_ckpt_ms (heap state) */
} bench_case_t;

static const bench_case_t cases[] = {
    {"stateless-p1", 0, 1},
    {"stateless-p2", 0, 2},
    {"keyed-1k-p1", 1, 1},
    {"keyed-1k-p2", 1, 2},
    {"keyed-1m-p1", 2, 1},
    {"keyed-1m-p2", 2, 2},
    {"tumbling-count", 3, 1},
    {"sliding-count", 4, 1},
    {"session-count", 5, 1},
    {"interval-join", 6, 1},
    /* The same jobs with a checkpoint every second: compare with the rows
     * above to see what checkpoints cost (copy-on-write snapshots, barrier
     * alignment, the snapshot thread's writes, the final checkpoint). */
    {"keyed-1m-ckpt-p1", 2, 1, 1000},
    {"tumbling-count-ckpt", 3, 1, 1000},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))
#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

static const char *const usage =
    "usage: eddy-bench [options] [CASE...]\n"
    "\n"
    "Measures eddy's throughput (records/s) on small in-process jobs and\n"
    "compares it with a bare C loop doing the same per-record work. Prints\n"
    "one line per case:\n"
    "\n"
    "  case=NAME eddy_rps=N baseline_rps=N ratio=R\n"
    "\n"
    "where ratio = eddy_rps / baseline_rps. Runs every case unless CASEs are\n"
    "named.\n"
    "\n"
    "Cases (-pN: every operator at parallelism N):\n"
    "  stateless-p1, stateless-p2\n"
    "      generator -> map -> filter -> discard, chained into one task.\n"
    "  keyed-1k-p1, keyed-1k-p2, keyed-1m-p1, keyed-1m-p2\n"
    "      generator -> key_by -> aggregate(eddy_agg_count) -> discard, over\n"
    "      1 000 or 1 000 000 distinct 8-byte keys; records cross a hash-\n"
    "      partitioned channel between two tasks.\n"
    "  tumbling-count, sliding-count, session-count (parallelism 1)\n"
    "      generator -> assign_timestamps(monotonous) -> key_by ->\n"
    "      window_aggregate(eddy_agg_count) -> count filter -> discard over\n"
    "      10 000 keys: 10 s tumbling windows; 10 s windows sliding by 1 s;\n"
    "      sessions with a 500 ms gap (each key idles 1 s in every 10 s).\n"
    "      Event time: 1 000 records per ms, ascending.\n"
    "  keyed-1m-ckpt-p1, tumbling-count-ckpt\n"
    "      keyed-1m-p1 and tumbling-count with a checkpoint every second\n"
    "      (heap state, written under $TMPDIR, removed afterwards).\n"
    "  interval-join (parallelism 1)\n"
    "      two such generators keyed by a unique id, interval-joined with\n"
    "      bounds [0, 10] ms; right record i is 5 ms after left record i, so\n"
    "      each id joins once. Records/s count the records of both sides.\n"
    "\n"
    "The generator writes a 16-byte value (index, mixed index) to scratch\n"
    "memory; map applies a multiply-xorshift to the payload into new scratch\n"
    "memory; filter keeps 3 records in 4; the key is (index % keys), spread\n"
    "by a bijective mix.\n"
    "\n"
    "The baseline is a single-threaded loop calling the same functions\n"
    "through function pointers; keyed baselines count the keys in a plain\n"
    "open-addressing hash table. The -p2 cases are compared with the same\n"
    "single-threaded baseline, so their ratio shows how eddy scales.\n"
    "Window and join baselines are hand-written loops computing the same\n"
    "results; the results of eddy's timed run are checked against the\n"
    "baseline's over the same records (a mismatch fails the case).\n"
    "\n"
    "Each figure comes from one timed run sized by short trial runs to last\n"
    "about --seconds; eddy's time is the wall time of eddy_env_execute.\n"
    "\n"
    "Options:\n"
    "  -s, --seconds S   target duration of each timed run (default 3)\n"
    "  -n, --records N   use exactly N records per run (no calibration)\n"
    "  -r, --repeat R    report the median of R timed runs (default 1)\n"
    "  -l, --list        list the case names and exit\n"
    "  -v, --verbose     describe every run on stderr\n"
    "  --eddy-only       skip the baselines and the result checks (for\n"
    "                    profiling); prints baseline_rps=- ratio=-\n"
    "  -h, --help        show this help\n"
    "\n"
    "Exit status: 0 success, 1 a job failed or computed a wrong result,\n"
    "2 bad usage.\n";

typedef struct options {
    double o_seconds;
    uint64_t o_records; /* 0 = calibrate */
    int o_repeat;       /* timed runs per figure; the median is reported */
    bool o_verbose;
    bool o_eddy_only; /* skip the baselines (profiling, A/B runs) */
} options_t;

/* What a run computed: the records reaching the end of the job and the sum
 * of their values' first 8 bytes (event-time cases only; else zero). */
typedef struct result {
    uint64_t r_records;
    uint64_t r_sum;
    uint64_t r_late; /* records eddy dropped as late */
} result_t;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Written at the end of each baseline run so its work is observable. */
static volatile uint64_t bare_sink;

/* The user functions as the baseline sees them: pointers it cannot look
 * through, as the engine sees the functions of a loaded job. */
static eddy_generator_fn volatile bare_generate = wl_generate;
static eddy_map_fn volatile bare_map = wl_map;
static eddy_filter_fn volatile bare_filter = wl_filter;
static eddy_key_fn volatile bare_key = wl_key;

/* ------------------------------------------------------------------------ */
/* eddy runs                                                                */
/* ------------------------------------------------------------------------ */

/* A generator of `n` records with event timestamps, and monotonous
 * watermarks (the timestamps ascend). */
static eddy_stream_t *event_source(eddy_env_t *env, uint64_t n, wl_opaque_t *wl)
{
    eddy_watermark_strategy_t ws = eddy_watermarks_monotonous();
    eddy_stream_t *s = eddy_source_generator(env, n, 0, wl_generate_ts, wl);
    return eddy_assign_timestamps(s, &ws);
}

/* The window of an event-time window case. */
static eddy_window_spec_t event_window(workload_kind_t kind)
{
    switch (kind) {
    case WL_SLIDING:
        return eddy_window_sliding(EV_SIZE_MS, EV_SLIDE_MS);
    case WL_SESSION:
        return eddy_window_session(EV_GAP_MS);
    default:
        return eddy_window_tumbling(EV_SIZE_MS);
    }
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Builds and executes the case's job over `n` records; *secs is the wall
 * time of eddy_env_execute. Returns 0 or the job's error. */
static int run_eddy(const bench_case_t *bc, uint64_t n, double *secs,
                    result_t *res)
{
    const workload_t *w = &workloads[bc->bc_workload];
    wl_opaque_t wl = {.wl_scratch = eddy_ctx_scratch,
                      .wl_nkeys = w->w_nkeys,
                      .wl_ts_base = EV_TS_BASE,
                      .wl_per_ms = EV_PER_MS,
                      .wl_emit = eddy_collect};
    wl_opaque_t wr = wl;
    wl_counter_t counter;
    eddy_error_t err;
    eddy_stream_t *op = NULL;
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_name(env, bc->bc_name);
    eddy_env_set_parallelism(env, bc->bc_parallelism);
    for (int i = 0; i < WL_MAX_SUBTASKS; i++) {
        atomic_init(&counter.wc_slot[i].records, 0);
        atomic_init(&counter.wc_slot[i].sum, 0);
    }
    eddy_stream_t *s = NULL;
    switch (w->w_kind) {
    case WL_STATELESS:
        s = eddy_source_generator(env, n, 0, wl_generate, &wl);
        s = eddy_map(s, wl_map, &wl);
        s = eddy_filter(s, wl_filter, &wl);
        break;
    case WL_KEYED:
        s = eddy_source_generator(env, n, 0, wl_generate, &wl);
        s = eddy_key_by(s, wl_key, &wl);
        s = eddy_aggregate(s, eddy_agg_count());
        break;
    case WL_TUMBLING:
    case WL_SLIDING:
    case WL_SESSION: {
        eddy_window_spec_t spec = event_window(w->w_kind);
        s = eddy_key_by(event_source(env, n, &wl),
                        w->w_kind == WL_SESSION ? wl_key_session : wl_key_mixed,
                        &wl);
        s = op = eddy_window_aggregate(s, &spec, eddy_agg_count());
        s = eddy_filter(s, wl_count, &counter);
        break;
    }
    case WL_JOIN: {
        /* n records in all: the left side gets the odd one. */
        wr.wl_ts_shift = EV_JOIN_SHIFT_MS;
        eddy_stream_t *l =
            eddy_key_by(event_source(env, n - n / 2, &wl), wl_key_id, &wl);
        eddy_stream_t *r =
            eddy_key_by(event_source(env, n / 2, &wr), wl_key_id, &wr);
        s = op = eddy_interval_join(l, r, EV_JOIN_LOWER_MS, EV_JOIN_UPPER_MS,
                                    wl_join, &wl);
        s = eddy_filter(s, wl_count, &counter);
        break;
    }
    }
    eddy_sink_discard(s);
    char ckdir[256] = "";
    if (bc->bc_ckpt_ms > 0) {
        const char *tmp = getenv("TMPDIR");
        snprintf(ckdir, sizeof(ckdir), "%s/eddy-bench-XXXXXX",
                 tmp != NULL && *tmp ? tmp : "/tmp");
        if (mkdtemp(ckdir) == NULL) {
            fprintf(stderr, "eddy-bench: cannot create %s: %s\n", ckdir,
                    strerror(errno));
            eddy_env_destroy(env);
            return EDDY_ERR_IO;
        }
        eddy_env_enable_checkpointing(env, bc->bc_ckpt_ms);
        if (eddy_env_set_option(env, "checkpoint.dir", ckdir, &err) != 0) {
            fprintf(stderr, "eddy-bench: %s\n", err.msg);
            eddy_env_destroy(env);
            return EDDY_ERR_INVALID;
        }
    }
    double t0 = now_seconds();
    int rc = eddy_env_execute(env, &err);
    *secs = now_seconds() - t0;
    if (ckdir[0] != '\0') {
        nftw(ckdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    memset(res, 0, sizeof(*res));
    if (rc == 0 && op != NULL) {
        for (int i = 0; i < WL_MAX_SUBTASKS; i++) {
            res->r_records += atomic_load(&counter.wc_slot[i].records);
            res->r_sum += atomic_load(&counter.wc_slot[i].sum);
        }
        res->r_late = eddy_late_records_dropped(op);
    }
    eddy_env_destroy(env);
    if (rc != 0) {
        fprintf(stderr, "eddy-bench: %s: %s\n", bc->bc_name, err.msg);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Baseline runs                                                            */
/* ------------------------------------------------------------------------ */

/* The baseline's eddy_ctx_scratch: the same bump allocation over a block
 * that the caller resets before each user-function call. */
typedef struct bare_scratch {
    unsigned char bs_block[4096];
    size_t bs_used;
} bare_scratch_t;

static void *bare_scratch_alloc(eddy_ctx_t *ctx, size_t size)
{
    bare_scratch_t *bs = (bare_scratch_t *)ctx;
    size_t need = (size + 7) & ~(size_t)7;
    if (sizeof(bs->bs_block) - bs->bs_used < need) {
        return NULL;
    }
    void *p = bs->bs_block + bs->bs_used;
    bs->bs_used += need;
    return p;
}

static eddy_ctx_t *bare_ctx(bare_scratch_t *bs)
{
    bs->bs_used = 0;
    return (eddy_ctx_t *)bs;
}

static int bare_stateless(uint64_t n)
{
    static _Alignas(8) bare_scratch_t sc_gen, sc_map, sc_filter;
    wl_opaque_t wl = {.wl_scratch = bare_scratch_alloc};
    eddy_generator_fn gen = bare_generate;
    eddy_map_fn map = bare_map;
    eddy_filter_fn filter = bare_filter;
    uint64_t kept = 0;
    for (uint64_t i = 0; i < n; i++) {
        eddy_record_t rec = {NULL, 0, "", 0, EDDY_TS_NONE};
        if (gen(bare_ctx(&sc_gen), i, &rec, &wl) != 0) {
            return -1;
        }
        eddy_record_t out = rec;
        if (map(bare_ctx(&sc_map), &rec, &out, &wl) != 0) {
            return -1;
        }
        int rc = filter(bare_ctx(&sc_filter), &out, &wl);
        if (rc < 0) {
            return -1;
        }
        kept += rc == 1;
    }
    bare_sink = kept;
    return 0;
}

/* One slot of the baseline's count table; count 0 marks a free slot. */
typedef struct bare_slot {
    uint64_t key;
    uint64_t count;
} bare_slot_t;

/* murmur3's 64-bit finalizer. */
static inline uint64_t bare_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xFF51AFD7ED558CCDull;
    k ^= k >> 33;
    k *= 0xC4CEB9FE1A85EC53ull;
    return k ^ (k >> 33);
}

/* Doubles the table (rehashing every key); returns false on out of memory. */
static bool bare_grow(bare_slot_t **slots, size_t *mask)
{
    size_t ncap = (*mask + 1) * 2;
    bare_slot_t *ns = calloc(ncap, sizeof(*ns));
    if (ns == NULL) {
        return false;
    }
    for (size_t i = 0; i <= *mask; i++) {
        bare_slot_t *e = &(*slots)[i];
        if (e->count == 0) {
            continue;
        }
        size_t j = bare_hash(e->key) & (ncap - 1);
        while (ns[j].count != 0) {
            j = (j + 1) & (ncap - 1);
        }
        ns[j] = *e;
    }
    free(*slots);
    *slots = ns;
    *mask = ncap - 1;
    return true;
}

static int bare_keyed(uint64_t n, uint64_t nkeys)
{
    static _Alignas(8) bare_scratch_t sc_gen, sc_key;
    wl_opaque_t wl = {.wl_scratch = bare_scratch_alloc, .wl_nkeys = nkeys};
    eddy_generator_fn gen = bare_generate;
    eddy_key_fn keyfn = bare_key;
    /* Grows from 1024 slots at load 1/2, like a table that does not know
     * its key count in advance. */
    size_t mask = 1023, used = 0;
    bare_slot_t *slots = calloc(mask + 1, sizeof(*slots));
    uint64_t sum = 0;
    int rc = -1;
    if (slots == NULL) {
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        eddy_record_t rec = {NULL, 0, "", 0, EDDY_TS_NONE};
        const void *kp;
        size_t klen;
        uint64_t k;
        if (gen(bare_ctx(&sc_gen), i, &rec, &wl) != 0 ||
            keyfn(bare_ctx(&sc_key), &rec, &kp, &klen, &wl) != 0 ||
            klen != sizeof(k)) {
            goto done;
        }
        memcpy(&k, kp, sizeof(k));
        uint64_t h = bare_hash(k);
        size_t j = h & mask;
        while (slots[j].count != 0 && slots[j].key != k) {
            j = (j + 1) & mask;
        }
        if (slots[j].count == 0) {
            if ((used + 1) * 2 > mask + 1) {
                if (!bare_grow(&slots, &mask)) {
                    goto done;
                }
                j = h & mask;
                while (slots[j].count != 0) {
                    j = (j + 1) & mask;
                }
            }
            slots[j].key = k;
            used++;
        }
        /* The running count is the record a keyed aggregate emits. */
        sum += ++slots[j].count;
    }
    rc = 0;
done:
    free(slots);
    bare_sink = sum;
    return rc;
}

/* ---- event-time baselines ---- */

/* The user functions of the event-time baselines, seen as in a job. */
static eddy_generator_fn volatile bare_generate_ts = wl_generate_ts;
static eddy_key_fn volatile bare_key_mixed = wl_key_mixed;
static eddy_key_fn volatile bare_key_session = wl_key_session;
static eddy_key_fn volatile bare_key_id = wl_key_id;
static eddy_join_fn volatile bare_join_fn = wl_join;

/* The opaque of the event-time baselines (left side for the join). */
static wl_opaque_t bare_event_opaque(uint64_t nkeys)
{
    wl_opaque_t wl = {.wl_scratch = bare_scratch_alloc,
                      .wl_nkeys = nkeys,
                      .wl_ts_base = EV_TS_BASE,
                      .wl_per_ms = EV_PER_MS};
    return wl;
}

/* Generates record i and selects its 8-byte key, as the source chain of an
 * event-time job does. Returns false if a function failed. */
static inline bool bare_gen_key(uint64_t i, eddy_key_fn keyfn, wl_opaque_t *wl,
                                eddy_record_t *rec, uint64_t *k)
{
    static _Alignas(8) bare_scratch_t sc_gen, sc_key;
    const void *kp;
    size_t klen;
    *rec = (eddy_record_t){NULL, 0, "", 0, EDDY_TS_NONE};
    if (bare_generate_ts(bare_ctx(&sc_gen), i, rec, wl) != 0 ||
        keyfn(bare_ctx(&sc_key), rec, &kp, &klen, wl) != 0 ||
        klen != sizeof(*k)) {
        return false;
    }
    memcpy(k, kp, sizeof(*k));
    return true;
}

/* An open-addressing table of u64 key -> u64 value (0 marks a free slot),
 * as in bare_keyed: 1 024 slots, doubling at load 1/2. */
typedef struct bare_table {
    bare_slot_t *bt_slots;
    size_t bt_mask;
    size_t bt_used;
} bare_table_t;

static bool bare_table_init(bare_table_t *t)
{
    t->bt_mask = 1023;
    t->bt_used = 0;
    t->bt_slots = calloc(t->bt_mask + 1, sizeof(*t->bt_slots));
    return t->bt_slots != NULL;
}

/* The slot of key `k`, inserted with value 0 if absent (the caller then
 * makes the value non-zero); NULL on out of memory. */
static inline bare_slot_t *bare_table_slot(bare_table_t *t, uint64_t k)
{
    uint64_t h = bare_hash(k);
    size_t j = h & t->bt_mask;
    while (t->bt_slots[j].count != 0) {
        if (t->bt_slots[j].key == k) {
            return &t->bt_slots[j];
        }
        j = (j + 1) & t->bt_mask;
    }
    if ((t->bt_used + 1) * 2 > t->bt_mask + 1) {
        if (!bare_grow(&t->bt_slots, &t->bt_mask)) {
            return NULL;
        }
        j = h & t->bt_mask;
        while (t->bt_slots[j].count != 0) {
            j = (j + 1) & t->bt_mask;
        }
    }
    t->bt_used++;
    t->bt_slots[j].key = k;
    return &t->bt_slots[j];
}

/* Removes key `k` (present) by backward-shift deletion, which keeps every
 * probe sequence unbroken without tombstones. */
static void bare_table_remove(bare_table_t *t, uint64_t k)
{
    size_t j = bare_hash(k) & t->bt_mask;
    while (t->bt_slots[j].key != k || t->bt_slots[j].count == 0) {
        j = (j + 1) & t->bt_mask;
    }
    for (size_t i = j;;) {
        t->bt_slots[j].count = 0;
        for (;;) {
            i = (i + 1) & t->bt_mask;
            if (t->bt_slots[i].count == 0) {
                t->bt_used--;
                return;
            }
            /* The entry at i may move to the hole at j unless its home
             * slot lies cyclically in (j, i]. */
            size_t home = bare_hash(t->bt_slots[i].key) & t->bt_mask;
            bool stays =
                j <= i ? (j < home && home <= i) : (j < home || home <= i);
            if (!stays) {
                t->bt_slots[j] = t->bt_slots[i];
                j = i;
                break;
            }
        }
    }
}

/* Emits every count of the table as a result, then empties it (keeping its
 * capacity). */
static void bare_table_flush(bare_table_t *t, result_t *res)
{
    for (size_t j = 0; j <= t->bt_mask; j++) {
        uint64_t c = t->bt_slots[j].count;
        res->r_records += c != 0;
        res->r_sum += c;
    }
    memset(t->bt_slots, 0, (t->bt_mask + 1) * sizeof(*t->bt_slots));
    t->bt_used = 0;
}

/*
 * Tumbling windows: per record the window start, then (key -> count) in the
 * table of that window. The timestamps ascend, so one window is open at a
 * time: when event time reaches the end of the open window (as the
 * monotonous watermark max ts - 1 reaches end - 1 in eddy), its counts are
 * emitted and cleared. The last window is emitted at the end of the input.
 */
static int bare_tumbling(uint64_t n, result_t *res)
{
    wl_opaque_t wl = bare_event_opaque(EV_KEYS);
    eddy_key_fn keyfn = bare_key_mixed;
    bare_table_t t;
    int64_t open_start = INT64_MIN;
    int rc = -1;
    if (!bare_table_init(&t)) {
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        eddy_record_t rec;
        uint64_t k;
        if (!bare_gen_key(i, keyfn, &wl, &rec, &k)) {
            goto done;
        }
        int64_t start = rec.ts - rec.ts % EV_SIZE_MS;
        if (start != open_start) {
            if (start < open_start) {
                goto done; /* the loop relies on ascending timestamps */
            }
            bare_table_flush(&t, res);
            open_start = start;
        }
        bare_slot_t *e = bare_table_slot(&t, k);
        if (e == NULL) {
            goto done;
        }
        e->count++;
    }
    bare_table_flush(&t, res);
    rc = 0;
done:
    free(t.bt_slots);
    return rc;
}

/*
 * Sliding windows, from slices of one slide (1 s): keys get a dense index
 * (one hash lookup per record), and each slice is an array of counts by key
 * index, in a ring of size/slide + 1 slices. A running array holds the
 * counts of the window that closes next; when event time reaches a window's
 * end, its newest slice is added in, every key with a non-zero count is
 * emitted, and its oldest slice (in no later window) is subtracted out and
 * cleared: three passes over the keys per slide, nothing per window and
 * record. At the end of the input every remaining window is emitted.
 */
#define BARE_SLICES (EV_SIZE_MS / EV_SLIDE_MS + 1)

typedef struct bare_sliced {
    bare_table_t bs_index; /* key -> dense index + 1 */
    uint64_t bs_nkeys;
    uint64_t bs_cap;    /* keys the arrays hold */
    uint64_t *bs_slice; /* BARE_SLICES arrays of bs_cap counts */
    uint64_t *bs_run;   /* the next window's counts */
} bare_sliced_t;

/* Doubles the count arrays; false on out of memory. */
static bool bare_sliced_grow(bare_sliced_t *b)
{
    uint64_t ncap = b->bs_cap != 0 ? b->bs_cap * 2 : 1024;
    uint64_t *ns = calloc(BARE_SLICES * ncap, sizeof(*ns));
    uint64_t *nr = calloc(ncap, sizeof(*nr));
    if (ns == NULL || nr == NULL) {
        free(ns);
        free(nr);
        return false;
    }
    for (int s = 0; s < BARE_SLICES && b->bs_cap != 0; s++) {
        memcpy(ns + s * ncap, b->bs_slice + s * b->bs_cap,
               b->bs_cap * sizeof(*ns));
    }
    if (b->bs_cap != 0) {
        memcpy(nr, b->bs_run, b->bs_cap * sizeof(*nr));
    }
    free(b->bs_slice);
    free(b->bs_run);
    b->bs_slice = ns;
    b->bs_run = nr;
    b->bs_cap = ncap;
    return true;
}

static inline uint64_t *bare_slice(bare_sliced_t *b, int64_t start)
{
    return b->bs_slice +
           (uint64_t)(start / EV_SLIDE_MS % BARE_SLICES) * b->bs_cap;
}

/* Emits window [end - size, end). */
static void bare_sliced_fire(bare_sliced_t *b, int64_t end, result_t *res)
{
    const uint64_t *newest = bare_slice(b, end - EV_SLIDE_MS);
    uint64_t *oldest = bare_slice(b, end - EV_SIZE_MS);
    uint64_t *run = b->bs_run;
    for (uint64_t x = 0; x < b->bs_nkeys; x++) {
        run[x] += newest[x];
    }
    for (uint64_t x = 0; x < b->bs_nkeys; x++) {
        res->r_records += run[x] != 0;
        res->r_sum += run[x];
    }
    for (uint64_t x = 0; x < b->bs_nkeys; x++) {
        run[x] -= oldest[x];
        oldest[x] = 0;
    }
}

static int bare_sliding(uint64_t n, result_t *res)
{
    wl_opaque_t wl = bare_event_opaque(EV_KEYS);
    eddy_key_fn keyfn = bare_key_mixed;
    bare_sliced_t b = {0};
    int64_t next_end = INT64_MIN; /* the next window to fire */
    int64_t last_slice = INT64_MIN;
    int rc = -1;
    if (!bare_table_init(&b.bs_index) || !bare_sliced_grow(&b)) {
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        eddy_record_t rec;
        uint64_t k;
        if (!bare_gen_key(i, keyfn, &wl, &rec, &k)) {
            goto done;
        }
        int64_t slice = rec.ts - rec.ts % EV_SLIDE_MS;
        if (slice != last_slice) {
            if (slice < last_slice) {
                goto done; /* the loop relies on ascending timestamps */
            }
            if (next_end == INT64_MIN) {
                next_end = slice + EV_SLIDE_MS;
            }
            while (next_end <= rec.ts) {
                bare_sliced_fire(&b, next_end, res);
                next_end += EV_SLIDE_MS;
            }
            last_slice = slice;
        }
        bare_slot_t *e = bare_table_slot(&b.bs_index, k);
        if (e == NULL) {
            goto done;
        }
        if (e->count == 0) {
            if (b.bs_nkeys == b.bs_cap && !bare_sliced_grow(&b)) {
                goto done;
            }
            e->count = ++b.bs_nkeys;
        }
        bare_slice(&b, slice)[e->count - 1]++;
    }
    /* The end of the input: every window holding a slice fires. */
    while (n > 0 && next_end <= last_slice + EV_SIZE_MS) {
        bare_sliced_fire(&b, next_end, res);
        next_end += EV_SLIDE_MS;
    }
    rc = 0;
done:
    free(b.bs_index.bt_slots);
    free(b.bs_slice);
    free(b.bs_run);
    return rc;
}

/*
 * Session windows: per key (dense index, as above) the timestamp of its
 * last record and the count of its open session. A record more than the gap
 * after its key's last one closes the session (it is emitted) and opens a
 * new one; at the end of the input every open session is emitted. With
 * ascending timestamps this is exactly when eddy's session [first, last +
 * gap) stops merging.
 */
static int bare_session(uint64_t n, result_t *res)
{
    wl_opaque_t wl = bare_event_opaque(EV_KEYS);
    eddy_key_fn keyfn = bare_key_session;
    bare_table_t index; /* key -> dense index + 1 */
    uint64_t nkeys = 0, cap = 0;
    int64_t *last = NULL;
    uint64_t *count = NULL;
    int rc = -1;
    if (!bare_table_init(&index)) {
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        eddy_record_t rec;
        uint64_t k;
        if (!bare_gen_key(i, keyfn, &wl, &rec, &k)) {
            goto done;
        }
        bare_slot_t *e = bare_table_slot(&index, k);
        if (e == NULL) {
            goto done;
        }
        if (e->count == 0) {
            if (nkeys == cap) {
                uint64_t ncap = cap != 0 ? cap * 2 : 1024;
                int64_t *nl = realloc(last, ncap * sizeof(*nl));
                if (nl == NULL) {
                    goto done;
                }
                last = nl;
                uint64_t *nc = realloc(count, ncap * sizeof(*nc));
                if (nc == NULL) {
                    goto done;
                }
                count = nc;
                cap = ncap;
            }
            count[nkeys] = 0;
            e->count = ++nkeys;
        }
        uint64_t x = e->count - 1;
        if (count[x] != 0 && rec.ts - last[x] > EV_GAP_MS) {
            res->r_records++;
            res->r_sum += count[x];
            count[x] = 0;
        }
        count[x]++;
        last[x] = rec.ts;
    }
    for (uint64_t x = 0; x < nkeys; x++) {
        res->r_records += count[x] != 0;
        res->r_sum += count[x];
    }
    rc = 0;
done:
    free(index.bt_slots);
    free(last);
    free(count);
    return rc;
}

/* A buffered left record of the join. */
typedef struct bare_left {
    uint64_t bl_id;
    int64_t bl_ts;
    unsigned char bl_value[WL_VALUE_SIZE];
} bare_left_t;

/* The baseline's wl_emit: counts a join result. */
static int bare_emit(eddy_collector_t *out, const eddy_record_t *rec)
{
    result_t *res = (result_t *)(void *)out;
    uint64_t v = 0;
    if (rec->value_len >= sizeof(v)) {
        memcpy(&v, rec->value, sizeof(v));
    }
    res->r_records++;
    res->r_sum += v;
    return 0;
}

/*
 * Interval join. Left records (ascending timestamps) are buffered in a ring
 * in arrival order, with a hash table id -> sequence number; a right record
 * first evicts the left records that no right record can match any more
 * (left ts + upper < right ts: right timestamps ascend too), then probes
 * the table with its id and joins when right - left is within the bounds.
 * The loop feeds left record i, then right record i: every right record
 * finds its left one buffered, so no right record needs buffering. Ids are
 * unique (one left record per id), as in this data.
 */
static int bare_join(uint64_t n, result_t *res)
{
    static _Alignas(8) bare_scratch_t sc_join;
    wl_opaque_t wl = bare_event_opaque(0), wr = wl;
    eddy_key_fn keyfn = bare_key_id;
    eddy_join_fn join = bare_join_fn;
    uint64_t nleft = n - n / 2, nright = n / 2;
    bare_table_t index; /* id -> sequence number + 1 */
    size_t rmask = 4095;
    bare_left_t *ring = calloc(rmask + 1, sizeof(*ring));
    uint64_t head = 0, tail = 0; /* buffered: sequence numbers [head, tail) */
    int rc = -1;
    wl.wl_emit = bare_emit;
    wr.wl_ts_shift = EV_JOIN_SHIFT_MS;
    if (ring == NULL || !bare_table_init(&index)) {
        free(ring);
        return -1;
    }
    for (uint64_t i = 0; i < nleft; i++) {
        eddy_record_t rec;
        uint64_t k;
        if (!bare_gen_key(i, keyfn, &wl, &rec, &k)) {
            goto done;
        }
        if (tail - head > rmask) {
            size_t ncap = (rmask + 1) * 2;
            bare_left_t *nr = malloc(ncap * sizeof(*nr));
            if (nr == NULL) {
                goto done;
            }
            for (uint64_t q = head; q < tail; q++) {
                nr[q & (ncap - 1)] = ring[q & rmask];
            }
            free(ring);
            ring = nr;
            rmask = ncap - 1;
        }
        bare_left_t *l = &ring[tail & rmask];
        l->bl_id = k;
        l->bl_ts = rec.ts;
        memcpy(l->bl_value, rec.value, WL_VALUE_SIZE);
        bare_slot_t *e = bare_table_slot(&index, k);
        if (e == NULL || e->count != 0) {
            goto done; /* out of memory, or an id seen twice */
        }
        e->count = ++tail;

        if (i >= nright) {
            continue;
        }
        if (!bare_gen_key(i, keyfn, &wr, &rec, &k)) {
            goto done;
        }
        while (head < tail &&
               ring[head & rmask].bl_ts + EV_JOIN_UPPER_MS < rec.ts) {
            bare_table_remove(&index, ring[head & rmask].bl_id);
            head++;
        }
        /* A lookup without insertion: probe until the id or a free slot. */
        size_t j = bare_hash(k) & index.bt_mask;
        while (index.bt_slots[j].count != 0 && index.bt_slots[j].key != k) {
            j = (j + 1) & index.bt_mask;
        }
        if (index.bt_slots[j].count == 0) {
            continue;
        }
        l = &ring[(index.bt_slots[j].count - 1) & rmask];
        if (l->bl_ts + EV_JOIN_LOWER_MS <= rec.ts &&
            rec.ts <= l->bl_ts + EV_JOIN_UPPER_MS) {
            eddy_record_t left = {&l->bl_id, sizeof(l->bl_id), l->bl_value,
                                  WL_VALUE_SIZE, l->bl_ts};
            if (join(bare_ctx(&sc_join), &left, &rec,
                     (eddy_collector_t *)(void *)res, &wl) != 0) {
                goto done;
            }
        }
    }
    rc = 0;
done:
    free(index.bt_slots);
    free(ring);
    return rc;
}

static int run_bare(const bench_case_t *bc, uint64_t n, double *secs,
                    result_t *res)
{
    const workload_t *w = &workloads[bc->bc_workload];
    int rc = -1;
    memset(res, 0, sizeof(*res));
    double t0 = now_seconds();
    switch (w->w_kind) {
    case WL_STATELESS:
        rc = bare_stateless(n);
        break;
    case WL_KEYED:
        rc = bare_keyed(n, w->w_nkeys);
        break;
    case WL_TUMBLING:
        rc = bare_tumbling(n, res);
        break;
    case WL_SLIDING:
        rc = bare_sliding(n, res);
        break;
    case WL_SESSION:
        rc = bare_session(n, res);
        break;
    case WL_JOIN:
        rc = bare_join(n, res);
        break;
    }
    *secs = now_seconds() - t0;
    bare_sink = res->r_records;
    if (rc != 0) {
        fprintf(stderr, "eddy-bench: %s: the baseline loop failed\n",
                w->w_name);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Measurement                                                              */
/* ------------------------------------------------------------------------ */

typedef int (*run_fn)(const bench_case_t *bc, uint64_t n, double *secs,
                      result_t *res);

/* The figure of a run and what it computed. */
typedef struct measured {
    double m_rps;
    uint64_t m_records; /* the records of the timed runs */
    result_t m_result;  /* the result of the timed runs */
} measured_t;

static bool same_result(const result_t *a, const result_t *b)
{
    return a->r_records == b->r_records && a->r_sum == b->r_sum &&
           a->r_late == b->r_late;
}

static void result_mismatch(const bench_case_t *bc, uint64_t n,
                            const char *what_a, const result_t *a,
                            const char *what_b, const result_t *b)
{
    fprintf(stderr,
            "eddy-bench: %s: wrong result over %" PRIu64 " records: %s "
            "emitted %" PRIu64 " results (sum %" PRIu64 ", %" PRIu64
            " late records dropped), %s %" PRIu64 " (sum %" PRIu64 ", %" PRIu64
            " late)\n",
            bc->bc_name, n, what_a, a->r_records, a->r_sum, a->r_late, what_b,
            b->r_records, b->r_sum, b->r_late);
}

static int timed_run(run_fn run, const char *what, const bench_case_t *bc,
                     const options_t *opt, uint64_t n, double *secs,
                     result_t *res)
{
    int rc = run(bc, n, secs, res);
    if (rc == 0 && *secs <= 0) {
        *secs = 1e-9;
    }
    if (rc == 0 && opt->o_verbose) {
        fprintf(stderr,
                "  %-14s %-8s timed %12llu records %8.3f s %12.0f/s"
                " results %llu\n",
                bc->bc_name, what, (unsigned long long)n, *secs,
                (double)n / *secs, (unsigned long long)res->r_records);
    }
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Measures records/s of `run`: trial runs estimate the rate, then one run is
 * sized to last opt->o_seconds; with --repeat R, the median of R such runs.
 * The repeated timed runs must compute the same result. */
static int measure(run_fn run, const char *what, const bench_case_t *bc,
                   const options_t *opt, measured_t *m)
{
    uint64_t n = opt->o_records;
    double secs = 0;
    result_t res;
    int rc;
    if (n == 0) {
        n = TRIAL_FIRST_RECORDS;
        for (;;) {
            if ((rc = run(bc, n, &secs, &res)) != 0) {
                return rc;
            }
            if (opt->o_verbose) {
                fprintf(stderr, "  %-14s %-8s trial %12llu records %8.3f s\n",
                        bc->bc_name, what, (unsigned long long)n, secs);
            }
            if (secs >= TRIAL_MIN_SECONDS) {
                break;
            }
            double grow = secs > 0 ? 1.5 * TRIAL_MIN_SECONDS / secs : 16;
            n = (uint64_t)((double)n * (grow < 16 ? grow : 16));
        }
        double want = (double)n / secs * opt->o_seconds;
        if (want > (double)n) {
            n = (uint64_t)want;
        }
    }
    /* Rerun a timed run that ended far too early: with many keys the trials
     * are dominated by first inserts and underestimate the steady rate. */
    for (int attempt = 0;; attempt++) {
        if ((rc = timed_run(run, what, bc, opt, n, &secs, &m->m_result)) != 0) {
            return rc;
        }
        if (opt->o_records != 0 || attempt == 2 ||
            secs >= TIMED_MIN_FRACTION * opt->o_seconds) {
            break;
        }
        n = (uint64_t)((double)n / secs * opt->o_seconds);
    }
    double rates[MAX_REPEAT];
    rates[0] = (double)n / secs;
    for (int r = 1; r < opt->o_repeat; r++) {
        if ((rc = timed_run(run, what, bc, opt, n, &secs, &res)) != 0) {
            return rc;
        }
        if (!same_result(&res, &m->m_result)) {
            result_mismatch(bc, n, what, &res, "an earlier run", &m->m_result);
            return -1;
        }
        rates[r] = (double)n / secs;
    }
    qsort(rates, (size_t)opt->o_repeat, sizeof(rates[0]), cmp_double);
    m->m_rps = rates[opt->o_repeat / 2];
    m->m_records = n;
    return 0;
}

static const bench_case_t *find_case(const char *name)
{
    for (size_t i = 0; i < NCASES; i++) {
        if (strcmp(cases[i].bc_name, name) == 0) {
            return &cases[i];
        }
    }
    return NULL;
}

static bool parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0 ||
        v > 3600) {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_records(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v == 0) {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

/* Returns the value of option `arg` (argv[*i]): "--opt=V", "--opt V" or
 * "-o V"; NULL (after an error message) when it is missing. */
static const char *option_value(int argc, char **argv, int *i, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (arg[1] == '-' && eq != NULL) {
        return eq + 1;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "eddy-bench: option '%s' needs a value\n", arg);
        return NULL;
    }
    return argv[++*i];
}

static bool is_option(const char *arg, const char *s, const char *l)
{
    size_t n = strlen(l);
    return strcmp(arg, s) == 0 || strcmp(arg, l) == 0 ||
           (strncmp(arg, l, n) == 0 && arg[n] == '=');
}

int main(int argc, char **argv)
{
    options_t opt = {3.0, 0, 1, false, false};
    const bench_case_t **run = calloc(NCASES + (size_t)argc, sizeof(*run));
    size_t nrun = 0;
    bool only_names = false;
    int status = EXIT_USAGE;
    if (run == NULL) {
        fprintf(stderr, "eddy-bench: out of memory\n");
        return EXIT_RUN_FAILED;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (only_names || arg[0] != '-') {
            const bench_case_t *bc = find_case(arg);
            if (bc == NULL) {
                fprintf(stderr,
                        "eddy-bench: unknown case '%s' (see eddy-bench "
                        "--list)\n",
                        arg);
                goto out;
            }
            run[nrun++] = bc;
        } else if (strcmp(arg, "--") == 0) {
            only_names = true;
        } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(usage, stdout);
            status = 0;
            goto out;
        } else if (strcmp(arg, "-l") == 0 || strcmp(arg, "--list") == 0) {
            for (size_t k = 0; k < NCASES; k++) {
                puts(cases[k].bc_name);
            }
            status = 0;
            goto out;
        } else if (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0) {
            opt.o_verbose = true;
        } else if (strcmp(arg, "--eddy-only") == 0) {
            opt.o_eddy_only = true;
        } else if (is_option(arg, "-s", "--seconds")) {
            const char *v = option_value(argc, argv, &i, arg);
            if (v == NULL) {
                goto out;
            }
            if (!parse_seconds(v, &opt.o_seconds)) {
                fprintf(stderr,
                        "eddy-bench: --seconds: '%s' is not a duration in "
                        "(0, 3600]\n",
                        v);
                goto out;
            }
        } else if (is_option(arg, "-n", "--records")) {
            const char *v = option_value(argc, argv, &i, arg);
            if (v == NULL) {
                goto out;
            }
            if (!parse_records(v, &opt.o_records)) {
                fprintf(stderr,
                        "eddy-bench: --records: '%s' is not a positive "
                        "count\n",
                        v);
                goto out;
            }
        } else if (is_option(arg, "-r", "--repeat")) {
            const char *v = option_value(argc, argv, &i, arg);
            uint64_t r;
            if (v == NULL) {
                goto out;
            }
            if (!parse_records(v, &r) || r > MAX_REPEAT) {
                fprintf(stderr,
                        "eddy-bench: --repeat: '%s' is not a count in 1..%d\n",
                        v, MAX_REPEAT);
                goto out;
            }
            opt.o_repeat = (int)r;
        } else {
            fprintf(stderr,
                    "eddy-bench: unknown option '%s' (see eddy-bench "
                    "--help)\n",
                    arg);
            goto out;
        }
    }
    if (nrun == 0) {
        for (size_t k = 0; k < NCASES; k++) {
            run[nrun++] = &cases[k];
        }
    }

    /* Baselines are per workload, measured when first needed. */
    measured_t baseline[NWORKLOADS];
    memset(baseline, 0, sizeof(baseline));
    status = 0;
    for (size_t k = 0; k < nrun; k++) {
        const bench_case_t *bc = run[k];
        measured_t em, *base = &baseline[bc->bc_workload];
        if (measure(run_eddy, "eddy", bc, &opt, &em) != 0) {
            status = EXIT_RUN_FAILED;
            continue;
        }
        if (opt.o_eddy_only) {
            printf("case=%s eddy_rps=%.0f baseline_rps=- ratio=-\n",
                   bc->bc_name, em.m_rps);
            fflush(stdout);
            continue;
        }
        if (base->m_rps == 0 &&
            measure(run_bare, "baseline", bc, &opt, base) != 0) {
            status = EXIT_RUN_FAILED;
            continue;
        }
        if (WL_CHECKED(workloads[bc->bc_workload].w_kind)) {
            /* The baseline over eddy's records, unless it ran them. */
            result_t want = base->m_result;
            double secs;
            if (base->m_records != em.m_records &&
                run_bare(bc, em.m_records, &secs, &want) != 0) {
                status = EXIT_RUN_FAILED;
                continue;
            }
            if (opt.o_verbose) {
                fprintf(stderr,
                        "  %-14s results over %" PRIu64
                        " records: eddy %" PRIu64 " (sum %" PRIu64
                        "), baseline %" PRIu64 " (sum %" PRIu64 ")\n",
                        bc->bc_name, em.m_records, em.m_result.r_records,
                        em.m_result.r_sum, want.r_records, want.r_sum);
            }
            if (!same_result(&em.m_result, &want)) {
                result_mismatch(bc, em.m_records, "eddy", &em.m_result,
                                "the baseline", &want);
                status = EXIT_RUN_FAILED;
                continue;
            }
        }
        printf("case=%s eddy_rps=%.0f baseline_rps=%.0f ratio=%.3f\n",
               bc->bc_name, em.m_rps, base->m_rps, em.m_rps / base->m_rps);
        fflush(stdout);
    }

out:
    free(run);
    return status;
}
