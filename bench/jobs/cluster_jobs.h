/*
 * cluster_jobs.h — the report page shared by eddy-cluster-bench and its
 * jobs (bench/jobs/cluster_jobs.c).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. The jobs run inside TaskManager processes, so they cannot hand
 * figures back through memory the benchmark owns. Instead the benchmark
 * creates a small file, and every process that runs a task of the job
 * maps it (MAP_SHARED) and writes its figures there: timestamps of
 * CLOCK_MONOTONIC, which is one clock for every process of the machine,
 * record counts and the pid of the process doing the work. The benchmark
 * reads the same page while the job runs. A file, not a pipe or a log
 * line, because the writers sit on the per-record path: a relaxed store
 * to a mapped page costs what a store to the heap costs.
 *
 * THREADS. Each field has one writer: the source fields the source
 * subtask, cs_sub[i] subtask i of the measuring operator. Fields are
 * lock-free 64-bit atomics, which are address-free and therefore valid
 * across processes; the benchmark reads them with relaxed loads.
 */
#ifndef EDDY_BENCH_CLUSTER_JOBS_H
#define EDDY_BENCH_CLUSTER_JOBS_H

#include <stdatomic.h>
#include <stdint.h>

#define CJ_MAGIC UINT64_C(0x65646479636c7573) /* "eddyclus" */
#define CJ_MAX_SUBTASKS 8
/* Key groups of the jobs: fixed so that the benchmark can compute which
 * subtask a key lands on (the shuffle case routes all records to one). */
#define CJ_MAX_PARALLELISM 128
/* Bytes of value per record in the shuffle job. */
#define CJ_VALUE_BYTES 100

/* What one subtask of the measuring operator reports. One cache line each,
 * so subtasks in one process do not share lines. */
typedef struct cj_sub {
    _Atomic uint64_t cs_pid;        /* process running the subtask */
    _Atomic uint64_t cs_records;    /* records seen */
    _Atomic uint64_t cs_first_ns;   /* CLOCK_MONOTONIC at the first record */
    _Atomic uint64_t cs_last_ns;    /* shuffle: at record N; keyed: latest */
    _Atomic uint64_t cs_last_count; /* keyed: the latest per-key count */
    uint64_t cs_pad[3];
} cj_sub_t;

typedef struct cj_page {
    uint64_t cp_magic; /* CJ_MAGIC, written by the benchmark */
    uint64_t cp_pad0[7];
    _Atomic uint64_t cp_src_pid;      /* process running source subtask 0 */
    _Atomic uint64_t cp_src_first_ns; /* when record 0 was generated */
    uint64_t cp_pad1[6];
    cj_sub_t cp_sub[CJ_MAX_SUBTASKS];
} cj_page_t;

#endif /* EDDY_BENCH_CLUSTER_JOBS_H */
