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
 * Output: one line per case on stdout,
 *     case=NAME eddy_rps=N baseline_rps=N ratio=R
 * and, with --verbose, the runs behind each figure on stderr.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <eddy/eddy.h>

#include "workload.h"

#define EXIT_RUN_FAILED 1
#define EXIT_USAGE 2

/* Trial runs grow until one lasts at least this long. */
#define TRIAL_MIN_SECONDS 0.2
#define TRIAL_FIRST_RECORDS (1u << 18)
/* A timed run shorter than this fraction of --seconds is resized and rerun. */
#define TIMED_MIN_FRACTION 0.7
#define MAX_REPEAT 99

typedef enum workload_kind { WL_STATELESS, WL_KEYED } workload_kind_t;

typedef struct workload {
    const char *w_name;
    workload_kind_t w_kind;
    uint64_t w_nkeys;
} workload_t;

static const workload_t workloads[] = {
    {"stateless", WL_STATELESS, 0},
    {"keyed-1k", WL_KEYED, 1000},
    {"keyed-1m", WL_KEYED, 1000000},
};

typedef struct bench_case {
    const char *bc_name;
    int bc_workload; /* index in workloads[] */
    int bc_parallelism;
} bench_case_t;

static const bench_case_t cases[] = {
    {"stateless-p1", 0, 1}, {"stateless-p2", 0, 2}, {"keyed-1k-p1", 1, 1},
    {"keyed-1k-p2", 1, 2},  {"keyed-1m-p1", 2, 1},  {"keyed-1m-p2", 2, 2},
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
    "  --eddy-only       skip the baselines (for profiling); prints\n"
    "                    baseline_rps=- ratio=-\n"
    "  -h, --help        show this help\n"
    "\n"
    "Exit status: 0 success, 1 a job failed, 2 bad usage.\n";

typedef struct options {
    double o_seconds;
    uint64_t o_records; /* 0 = calibrate */
    int o_repeat;       /* timed runs per figure; the median is reported */
    bool o_verbose;
    bool o_eddy_only; /* skip the baselines (profiling, A/B runs) */
} options_t;

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

/* Builds and executes the case's job over `n` records; *secs is the wall
 * time of eddy_env_execute. Returns 0 or the job's error. */
static int run_eddy(const bench_case_t *bc, uint64_t n, double *secs)
{
    const workload_t *w = &workloads[bc->bc_workload];
    wl_opaque_t wl = {eddy_ctx_scratch, w->w_nkeys};
    eddy_error_t err;
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_name(env, bc->bc_name);
    eddy_env_set_parallelism(env, bc->bc_parallelism);
    eddy_stream_t *s = eddy_source_generator(env, n, 0, wl_generate, &wl);
    if (w->w_kind == WL_STATELESS) {
        s = eddy_map(s, wl_map, &wl);
        s = eddy_filter(s, wl_filter, &wl);
    } else {
        s = eddy_key_by(s, wl_key, &wl);
        s = eddy_aggregate(s, eddy_agg_count());
    }
    eddy_sink_discard(s);
    double t0 = now_seconds();
    int rc = eddy_env_execute(env, &err);
    *secs = now_seconds() - t0;
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
    wl_opaque_t wl = {bare_scratch_alloc, 0};
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
    wl_opaque_t wl = {bare_scratch_alloc, nkeys};
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

static int run_bare(const bench_case_t *bc, uint64_t n, double *secs)
{
    const workload_t *w = &workloads[bc->bc_workload];
    double t0 = now_seconds();
    int rc = w->w_kind == WL_STATELESS ? bare_stateless(n)
                                       : bare_keyed(n, w->w_nkeys);
    *secs = now_seconds() - t0;
    if (rc != 0) {
        fprintf(stderr, "eddy-bench: %s: the baseline loop failed\n",
                w->w_name);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Measurement                                                              */
/* ------------------------------------------------------------------------ */

typedef int (*run_fn)(const bench_case_t *bc, uint64_t n, double *secs);

static int timed_run(run_fn run, const char *what, const bench_case_t *bc,
                     const options_t *opt, uint64_t n, double *secs)
{
    int rc = run(bc, n, secs);
    if (rc == 0 && *secs <= 0) {
        *secs = 1e-9;
    }
    if (rc == 0 && opt->o_verbose) {
        fprintf(stderr, "  %-12s %-8s timed %12llu records %8.3f s %12.0f/s\n",
                bc->bc_name, what, (unsigned long long)n, *secs,
                (double)n / *secs);
    }
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Measures records/s of `run`: trial runs estimate the rate, then one run is
 * sized to last opt->o_seconds; with --repeat R, the median of R such runs. */
static int measure(run_fn run, const char *what, const bench_case_t *bc,
                   const options_t *opt, double *rps)
{
    uint64_t n = opt->o_records;
    double secs = 0;
    int rc;
    if (n == 0) {
        n = TRIAL_FIRST_RECORDS;
        for (;;) {
            if ((rc = run(bc, n, &secs)) != 0) {
                return rc;
            }
            if (opt->o_verbose) {
                fprintf(stderr, "  %-12s %-8s trial %12llu records %8.3f s\n",
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
        if ((rc = timed_run(run, what, bc, opt, n, &secs)) != 0) {
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
        if ((rc = timed_run(run, what, bc, opt, n, &secs)) != 0) {
            return rc;
        }
        rates[r] = (double)n / secs;
    }
    qsort(rates, (size_t)opt->o_repeat, sizeof(rates[0]), cmp_double);
    *rps = rates[opt->o_repeat / 2];
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
    double baseline[NWORKLOADS] = {0};
    status = 0;
    for (size_t k = 0; k < nrun; k++) {
        const bench_case_t *bc = run[k];
        double eddy_rps, *base = &baseline[bc->bc_workload];
        if (measure(run_eddy, "eddy", bc, &opt, &eddy_rps) != 0) {
            status = EXIT_RUN_FAILED;
            continue;
        }
        if (opt.o_eddy_only) {
            printf("case=%s eddy_rps=%.0f baseline_rps=- ratio=-\n",
                   bc->bc_name, eddy_rps);
        } else if (*base == 0 &&
                   measure(run_bare, "baseline", bc, &opt, base) != 0) {
            status = EXIT_RUN_FAILED;
            continue;
        } else {
            printf("case=%s eddy_rps=%.0f baseline_rps=%.0f ratio=%.3f\n",
                   bc->bc_name, eddy_rps, *base, eddy_rps / *base);
        }
        fflush(stdout);
    }

out:
    free(run);
    return status;
}
