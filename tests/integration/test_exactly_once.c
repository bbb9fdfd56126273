/*
 * Integration: exactly-once after crashes (issue 4 §9), with real processes.
 *
 * A dev broker (`eddy kafka-dev`) holds N numbered records in 4 partitions;
 * a private PostgreSQL server holds the table counts(k, c). The job
 * (examples/exactly_once.c) reads the records, keeps a running count per key
 * and writes "key,count" rows to PostgreSQL and to part files, both
 * exactly once. The test kills the job with SIGKILL at named points
 * (EDDY_FAULT: during alignment, during the asynchronous snapshot, after a
 * checkpoint completed but before the sinks committed, while a sink
 * commits) and at random moments, restarting it each time from the latest
 * checkpoint of the previous runs, until a run finishes; once, the newest
 * checkpoint is corrupted first, and the restart must fall back to the one
 * before. Then every key's counts in PostgreSQL and in the files must be
 * exactly 1, 2, ..., n.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "harness.h"
#include "pg_util.h"

#define N 24000
#define KEYS 7
#define TOPIC "numbers"

static tu_pg_t pg;
static bool pg_up;

static int group_setup(void **state)
{
    (void)state;
    char msg[512];
    int rc = tu_pg_start(&pg, NULL, msg, sizeof(msg));
    if (rc == TU_PG_SKIP) {
        fprintf(stderr, "skipping: %s\n", msg);
        return 0;
    }
    if (rc != TU_PG_OK) {
        fprintf(stderr, "cannot start PostgreSQL: %s\n", msg);
        return -1;
    }
    pg_up = true;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tu_pg_stop(&pg);
    return 0;
}

/* Starts the dev broker; returns it with its bootstrap address. */
static integ_proc_t *start_broker(char *bootstrap, size_t size)
{
    const char *argv[] = {EDDY_BIN,  "kafka-dev", "--port", "0",
                          "--topic", TOPIC ":4",  NULL};
    integ_proc_t *p = integ_spawn(argv, NULL);
    if (!integ_wait_stdout_lines(p, 1, integ_timeout(20))) {
        integ_dump(p);
        fail_msg("the dev broker did not start");
    }
    const char *line = strstr(p->pr_out, "bootstrap: ");
    assert_non_null(line);
    line += strlen("bootstrap: ");
    size_t n = strcspn(line, "\n");
    assert_true(n < size);
    memcpy(bootstrap, line, n);
    bootstrap[n] = '\0';
    return p;
}

static void produce(const char *bootstrap)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap,
                                       err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(rk);
    for (int i = 0; i < N; i++) {
        char v[16];
        int len = snprintf(v, sizeof(v), "%d", i);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(i % 4),
                    RD_KAFKA_V_VALUE(v, (size_t)len),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 10);
        }
        assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}

/* True if dir/<job id> holds a completed checkpoint. */
static bool has_checkpoint(const char *job_dir)
{
    DIR *d = opendir(job_dir);
    if (d == NULL) {
        return false;
    }
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "chk-", 4) == 0) {
            char p[1600];
            snprintf(p, sizeof(p), "%s/%s/_metadata", job_dir, de->d_name);
            found = access(p, F_OK) == 0;
        }
    }
    closedir(d);
    return found;
}

/* After this round the newest checkpoint's metadata is truncated. */
#define CORRUPT_ROUND 4

static void corrupt_newest(const char *job_dir)
{
    DIR *d = opendir(job_dir);
    assert_non_null(d);
    long best = -1;
    int complete = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "chk-", 4) == 0) {
            char p[1600];
            snprintf(p, sizeof(p), "%s/%s/_metadata", job_dir, de->d_name);
            if (access(p, F_OK) == 0) {
                complete++;
                long id = strtol(de->d_name + 4, NULL, 10);
                best = id > best ? id : best;
            }
        }
    }
    closedir(d);
    /* The fault point of that round leaves several completed ones. */
    assert_true(complete >= 2);
    char p[1600];
    snprintf(p, sizeof(p), "%s/chk-%ld/_metadata", job_dir, best);
    assert_int_equal(truncate(p, 10), 0);
}

/* Checks that each key's values are exactly 1..n_key (sorted input per
 * key is not needed: we count occurrences). */
static void check_counts(const char *what, int (*next)(void *, int *, long *),
                         void *arg)
{
    static int seen[KEYS][N / KEYS + 2];
    memset(seen, 0, sizeof(seen));
    int k;
    long c;
    long rows = 0;
    while (next(arg, &k, &c)) {
        if (k < 0 || k >= KEYS || c < 1 || c > N / KEYS + 1) {
            fail_msg("%s: bad row k%d,%ld", what, k, c);
        }
        seen[k][c]++;
        rows++;
    }
    for (k = 0; k < KEYS; k++) {
        long n = N / KEYS + (k < N % KEYS ? 1 : 0);
        for (long i = 1; i <= n; i++) {
            if (seen[k][i] != 1) {
                fail_msg("%s: key k%d count %ld appears %d times (rows %ld)",
                         what, k, i, seen[k][i], rows);
            }
        }
    }
    assert_int_equal(rows, N);
}

typedef struct text_rows {
    char *p;
    char *save;
    bool started;
} text_rows_t;

static int next_text_row(void *arg, int *k, long *c)
{
    text_rows_t *t = arg;
    char *line = strtok_r(t->started ? NULL : t->p, "\n", &t->save);
    t->started = true;
    if (line == NULL) {
        return 0;
    }
    /* PostgreSQL rows are "k3|17"; file lines "k3,17". */
    if (sscanf(line, "k%d%*[|,]%ld", k, c) != 2) {
        fail_msg("malformed output line '%s'", line);
    }
    return 1;
}

/* The committed part files' lines; `settled`: no in-progress file may be
 * left (a finished run). */
static char *read_parts(const char *dir, bool settled)
{
    size_t cap = 1 << 20, len = 0;
    char *all = malloc(cap);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int inprogress = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            inprogress += strstr(de->d_name, ".inprogress") != NULL;
            continue;
        }
        char p[1024];
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        FILE *f = fopen(p, "rb");
        assert_non_null(f);
        size_t n;
        char buf[65536];
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
            if (len + n + 1 > cap) {
                cap = (len + n + 1) * 2;
                all = realloc(all, cap);
            }
            memcpy(all + len, buf, n);
            len += n;
        }
        fclose(f);
    }
    closedir(d);
    all[len] = '\0';
    if (settled) {
        assert_int_equal(inprogress, 0);
    }
    return all;
}

static void test_crashes_keep_exactly_once(void **state)
{
    (void)state;
    if (!pg_up) {
        skip();
    }
    char msg[512];
    assert_int_equal(tu_pg_exec(pg.pg_conninfo,
                                "DROP TABLE IF EXISTS counts;"
                                "CREATE TABLE counts (k text, c bigint)",
                                msg, sizeof(msg)),
                     0);
    char bootstrap[256];
    integ_proc_t *broker = start_broker(bootstrap, sizeof(bootstrap));
    produce(bootstrap);

    char *tmp = integ_tmpdir_new();
    char *ckdir = integ_path(tmp, "checkpoints");
    char *out = integ_path(tmp, "out");
    /* Named points, then random kills, then a run to the end. */
    const char *faults[] = {"align:3",  "snapshot:2", "complete:2",
                            "commit:2", "complete:4", NULL /* random */,
                            NULL /* random */};
    const int rounds = (int)(sizeof(faults) / sizeof(faults[0])) + 1;
    char restore[1400] = "";
    srand((unsigned)time(NULL));
    bool finished = false;
    for (int r = 0; r < rounds + 6 && !finished; r++) {
        char job_id[40], job_dir[1200];
        snprintf(job_id, sizeof(job_id), "%032x", r + 1);
        snprintf(job_dir, sizeof(job_dir), "%s/%s", ckdir, job_id);
        const char *argv[32];
        int a = 0;
        argv[a++] = EDDY_BIN;
        argv[a++] = "run";
        argv[a++] = "--local";
        argv[a++] = EXACTLY_ONCE_SO;
        argv[a++] = "-p";
        argv[a++] = "2";
        argv[a++] = "--checkpoint-interval";
        argv[a++] = "100ms";
        argv[a++] = "--checkpoint-dir";
        argv[a++] = ckdir;
        argv[a++] = "--job-id";
        argv[a++] = job_id;
        argv[a++] = "--restart-strategy";
        argv[a++] = "none";
        if (restore[0] != '\0') {
            argv[a++] = "--from-savepoint";
            argv[a++] = restore;
        }
        argv[a++] = "--";
        argv[a++] = "--kafka";
        argv[a++] = bootstrap;
        argv[a++] = "--topic";
        argv[a++] = TOPIC;
        argv[a++] = "--pg";
        argv[a++] = pg.pg_conninfo;
        argv[a++] = "--table";
        argv[a++] = "counts";
        argv[a++] = "--out";
        argv[a++] = out;
        argv[a++] = "--throttle";
        argv[a++] = "4000";
        argv[a] = NULL;
        char fault_env[64];
        const char *env[] = {NULL, NULL};
        bool random_kill = r >= (int)(sizeof(faults) / sizeof(faults[0])) - 2 &&
                           r < (int)(sizeof(faults) / sizeof(faults[0]));
        if (r < (int)(sizeof(faults) / sizeof(faults[0])) &&
            faults[r] != NULL) {
            snprintf(fault_env, sizeof(fault_env), "EDDY_FAULT=%s", faults[r]);
            env[0] = fault_env;
        }
        integ_proc_t *p = integ_spawn(argv, env);
        if (random_kill) {
            /* Somewhere between 0.3 and 1.3 s into the run. */
            double until = integ_now() + 0.3 + (rand() % 1000) / 1000.0;
            while (integ_now() < until && p->pr_pid > 0 &&
                   kill(p->pr_pid, 0) == 0) {
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
            kill(p->pr_pid, SIGKILL);
        }
        integ_finish(p, integ_timeout(60));
        if (p->pr_timed_out) {
            integ_dump(p);
            fail_msg("round %d timed out", r);
        }
        if (p->pr_signal == SIGKILL) {
            /* Expected: a fault point or the random kill. */
        } else if (p->pr_exit == 0) {
            finished = true;
        } else {
            integ_dump(p);
            fail_msg("round %d failed", r);
        }
        fprintf(stderr, "round %d (%s%s): %s after %.2f s\n", r,
                env[0] != NULL ? env[0] : "", random_kill ? "random kill" : "",
                finished ? "finished" : "killed", p->pr_end - p->pr_start);
        if (env[0] != NULL && !finished) {
            assert_true(integ_contains(p->pr_err, "EDDY_FAULT"));
        }
        if (r == CORRUPT_ROUND + 1) {
            /* The newest checkpoint of the run before was corrupted: this
             * run must have said so and used the previous one. */
            if (!integ_contains(p->pr_err, "is unusable")) {
                integ_dump(p);
                fail_msg("round %d did not fall back", r);
            }
        }
        integ_proc_free(p);
        if (has_checkpoint(job_dir)) {
            snprintf(restore, sizeof(restore), "%s", job_dir);
        }
        if (r == CORRUPT_ROUND) {
            corrupt_newest(restore);
        }
    }
    assert_true(finished);

    char *rows = tu_pg_query(pg.pg_conninfo, "SELECT k, c FROM counts", msg,
                             sizeof(msg));
    if (rows == NULL) {
        fail_msg("query failed: %s", msg);
    }
    text_rows_t t = {rows, NULL, false};
    check_counts("PostgreSQL", next_text_row, &t);
    free(rows);
    char *files = read_parts(out, true);
    text_rows_t f = {files, NULL, false};
    check_counts("part files", next_text_row, &f);
    free(files);
    /* Nothing left prepared. */
    rows = tu_pg_query(pg.pg_conninfo, "SELECT count(*) FROM pg_prepared_xacts",
                       msg, sizeof(msg));
    assert_non_null(rows);
    assert_string_equal(rows, "0\n");
    free(rows);

    kill(broker->pr_pid, SIGTERM);
    integ_finish(broker, integ_timeout(10));
    integ_proc_free(broker);
    free(ckdir);
    free(out);
    integ_tmpdir_remove(tmp);
}

/* SIGTERM with --stop-with-savepoint, then a second run from the savepoint
 * (at another parallelism): the part files hold every count exactly once. */
static void test_stop_with_savepoint_and_resume(void **state)
{
    (void)state;
    char *tmp = integ_tmpdir_new();
    char *ckdir = integ_path(tmp, "checkpoints");
    char *spdir = integ_path(tmp, "savepoints");
    char *out = integ_path(tmp, "out");
    char count[16];
    snprintf(count, sizeof(count), "%d", N);
    const char *argv1[] = {EDDY_BIN,
                           "run",
                           "--local",
                           EXACTLY_ONCE_SO,
                           "-p",
                           "2",
                           "--checkpoint-interval",
                           "1h",
                           "--checkpoint-dir",
                           ckdir,
                           "--stop-with-savepoint",
                           spdir,
                           "--",
                           "--count",
                           count,
                           "--rate",
                           "8000",
                           "--out",
                           out,
                           NULL};
    integ_proc_t *p = integ_spawn(argv1, NULL);
    struct timespec ts = {1, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);
    kill(p->pr_pid, SIGTERM);
    integ_finish(p, integ_timeout(30));
    integ_assert_exit(p, 0);
    const char *at = strstr(p->pr_err, "stopped with savepoint ");
    if (at == NULL) {
        integ_dump(p);
        fail_msg("no savepoint path on stderr");
    }
    char savepoint[1024];
    at += strlen("stopped with savepoint ");
    size_t n = strcspn(at, "\n");
    assert_true(n < sizeof(savepoint));
    memcpy(savepoint, at, n);
    savepoint[n] = '\0';
    integ_proc_free(p);

    /* Part of the output is committed already (the savepoint's commit);
     * what came after it is still in progress, for the restore to drop. */
    char *files = read_parts(out, false);
    size_t first_lines = integ_count_lines(files, strlen(files));
    free(files);
    assert_true(first_lines > 0 && first_lines < N);

    const char *argv2[] = {EDDY_BIN,
                           "run",
                           "--local",
                           EXACTLY_ONCE_SO,
                           "-p",
                           "3",
                           "--checkpoint-interval",
                           "50ms",
                           "--checkpoint-dir",
                           ckdir,
                           "--from-savepoint",
                           savepoint,
                           "--",
                           "--count",
                           count,
                           "--out",
                           out,
                           NULL};
    p = integ_run(argv2, NULL, integ_timeout(60));
    integ_assert_exit(p, 0);
    integ_proc_free(p);
    files = read_parts(out, true);
    text_rows_t f = {files, NULL, false};
    check_counts("part files after a savepoint", next_text_row, &f);
    free(files);
    free(ckdir);
    free(spdir);
    free(out);
    integ_tmpdir_remove(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crashes_keep_exactly_once),
        cmocka_unit_test(test_stop_with_savepoint_and_resume),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
