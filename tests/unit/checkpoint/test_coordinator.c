/*
 * eddy — the checkpoint coordinator on its own: triggers on the interval,
 * min pause, one in flight, completion writes _metadata and notifies,
 * timeouts and declines abort cleanly, retention deletes old checkpoints
 * and shared files no retained checkpoint lists (one completion later),
 * savepoints go to their own directory and are never deleted.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

#include <sys/stat.h>

#include "checkpoint/coordinator.h"
#include "checkpoint/storage.h"

typedef struct events {
    int64_t triggered[64];
    int ntriggered;
    int64_t completed[64];
    int ncompleted;
    int64_t aborted[64];
    int naborted;
} events_t;

static void on_trigger(void *arg, int64_t id, bool savepoint)
{
    (void)savepoint;
    events_t *e = arg;
    e->triggered[e->ntriggered++] = id;
}

static void on_complete(void *arg, int64_t id)
{
    events_t *e = arg;
    e->completed[e->ncompleted++] = id;
}

static void on_abort(void *arg, int64_t id)
{
    events_t *e = arg;
    e->aborted[e->naborted++] = id;
}

/* The coordinator stamps completions and aborts with the wall clock (in
 * ms), so the times tests pass to it are offsets from the wall clock. */
static int64_t wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool exists(const char *dir, const char *name)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static eddy__coord_t *make(const char *job_dir, int ntasks, events_t *ev,
                           int64_t interval, int64_t timeout, int64_t pause,
                           int retained)
{
    eddy__config_t cfg;
    eddy__config_init(&cfg);
    cfg.ck_interval_ms = interval;
    cfg.ck_timeout_ms = timeout;
    cfg.ck_min_pause_ms = pause;
    cfg.ck_retained = retained;
    json_t *ops = json_pack("{s:{s:s, s:i, s:i}}", "op", "name", "Op",
                            "parallelism", ntasks, "max_parallelism", 128);
    eddy__coord_hooks_t hooks = {ev, on_trigger, on_complete, on_abort};
    eddy__coord_t *c = NULL;
    eddy_error_t err = {0};
    TU_ASSERT_OK(
        eddy__coord_new(&cfg, job_dir, "job", ops, ntasks, 0, &hooks, &c, &err),
        &err);
    json_decref(ops);
    eddy__config_free(&cfg);
    return c;
}

/* An acknowledgement whose handle lists `shared` (may be NULL). */
static json_t *ack(int subtask, const char *shared)
{
    json_t *h = json_pack("{s:i, s:[i, i]}", "subtask", subtask, "kg", 0, 127);
    if (shared != NULL) {
        json_object_set_new(
            h, "keyed",
            json_pack("{s:s, s:[s]}", "type", "test", "shared", shared));
    }
    return json_pack("{s:o}", "op", h);
}

static void test_interval_pause_and_completion(void **state)
{
    (void)state;
    char dir[256];
    tu_tmpdir(dir, sizeof(dir));
    events_t ev = {0};
    eddy__coord_t *c = make(dir, 2, &ev, 100, 10000, 500, 3);
    int64_t T = wall();
    eddy__coord_start(c, T);
    assert_true(eddy__coord_poll(c, T + 50, 1000) <= 50);
    assert_int_equal(ev.ntriggered, 0); /* not before the interval */
    eddy__coord_poll(c, T + 100, 1000);
    assert_int_equal(ev.ntriggered, 1);
    int64_t id = ev.triggered[0];
    assert_int_equal(id, 1);
    eddy__coord_poll(c, T + 300, 1000);
    assert_int_equal(ev.ntriggered, 1); /* one in flight at most */
    eddy__coord_ack(c, id, 0, ack(0, NULL));
    assert_int_equal(ev.ncompleted, 0);
    eddy__coord_ack(c, id, 0, ack(0, NULL)); /* a duplicate is dropped */
    assert_int_equal(ev.ncompleted, 0);
    eddy__coord_ack(c, id, 1, ack(1, NULL));
    assert_int_equal(ev.ncompleted, 1);
    assert_true(exists(dir, "chk-1/_metadata"));
    json_t *meta = NULL;
    char chk[512];
    snprintf(chk, sizeof(chk), "%s/chk-1", dir);
    eddy_error_t err = {0};
    TU_ASSERT_OK(eddy__ckpt_load(chk, &meta, &err), &err);
    json_t *subs = json_object_get(
        json_object_get(json_object_get(meta, "operators"), "op"), "subtasks");
    assert_int_equal(json_array_size(subs), 2);
    json_decref(meta);
    /* The interval is due 100 ms after the first trigger, but the min
     * pause holds the next one until 500 ms after the completion. */
    eddy__coord_stats_t st;
    eddy__coord_stats(c, &st);
    assert_int_equal(st.cs_latest_id, 1);
    assert_int_equal(st.cs_completed, 1);
    eddy__coord_poll(c, st.cs_latest_end_ms + 300, 1000);
    assert_int_equal(ev.ntriggered, 1);
    eddy__coord_poll(c, st.cs_latest_end_ms + 510, 1000);
    assert_int_equal(ev.ntriggered, 2);
    eddy__coord_destroy(c);
    assert_int_equal(ev.naborted, 1); /* the one in flight, at destroy */
    tu_rmtree(dir);
}

static void test_timeout_and_decline_abort(void **state)
{
    (void)state;
    char dir[256];
    tu_tmpdir(dir, sizeof(dir));
    events_t ev = {0};
    eddy__coord_t *c = make(dir, 2, &ev, 100, 500, 0, 3);
    int64_t T = wall();
    eddy__coord_start(c, T);
    eddy__coord_poll(c, T + 100, 1000);
    assert_int_equal(ev.ntriggered, 1);
    assert_true(exists(dir, "chk-1"));
    eddy__coord_ack(c, 1, 0, ack(0, NULL));
    eddy__coord_poll(c, T + 700, 1000); /* 600 ms > timeout */
    assert_int_equal(ev.naborted, 1);
    assert_int_equal(ev.aborted[0], 1);
    assert_false(exists(dir, "chk-1")); /* its directory is gone */
    eddy__coord_stats_t st;
    eddy__coord_stats(c, &st);
    TU_ASSERT_CONTAINS(st.cs_last_failure, "timed out");
    TU_ASSERT_CONTAINS(st.cs_last_failure, "1 of 2 tasks");
    /* A late ack of the aborted checkpoint is dropped. */
    eddy__coord_ack(c, 1, 1, ack(1, NULL));
    assert_int_equal(ev.ncompleted, 0);
    /* The next one comes as scheduled; a decline aborts it at once. */
    eddy__coord_poll(c, wall() + 1000, 1000);
    assert_int_equal(ev.ntriggered, 2);
    eddy__coord_decline(c, 2, 1, "disk full");
    assert_int_equal(ev.naborted, 2);
    assert_false(exists(dir, "chk-2"));
    eddy__coord_stats(c, &st);
    TU_ASSERT_CONTAINS(st.cs_last_failure, "disk full");
    assert_int_equal(st.cs_failed, 2);
    eddy__coord_destroy(c);
    tu_rmtree(dir);
}

static void complete_one(eddy__coord_t *c, events_t *ev, int64_t now,
                         const char *shared)
{
    int before = ev->ntriggered;
    eddy__coord_trigger_soon(c, now);
    eddy__coord_poll(c, now, 1000);
    assert_int_equal(ev->ntriggered, before + 1);
    int64_t id = ev->triggered[before];
    eddy__coord_ack(c, id, 0, ack(0, shared));
}

static void touch(const char *dir, const char *name)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
}

static void test_retention_and_shared_files(void **state)
{
    (void)state;
    char dir[256];
    tu_tmpdir(dir, sizeof(dir));
    events_t ev = {0};
    eddy__coord_t *c = make(dir, 1, &ev, 1000000, 100000, 0, 2);
    eddy__coord_start(c, wall());
    touch(dir, "shared/a.sst");
    touch(dir, "shared/b.sst");
    complete_one(c, &ev, wall(), "shared/a.sst"); /* chk-1 uses a */
    complete_one(c, &ev, wall(), "shared/a.sst"); /* chk-2 uses a */
    complete_one(c, &ev, wall(),
                 "shared/b.sst"); /* chk-3 uses b; drops chk-1 */
    assert_int_equal(ev.ncompleted, 3);
    assert_false(exists(dir, "chk-1"));
    assert_true(exists(dir, "chk-2") && exists(dir, "chk-3"));
    assert_true(exists(dir, "shared/a.sst"));     /* chk-2 still lists it */
    complete_one(c, &ev, wall(), "shared/b.sst"); /* drops chk-2 */
    assert_false(exists(dir, "chk-2"));
    /* a is no longer listed, but is deleted one completion later only. */
    assert_true(exists(dir, "shared/a.sst"));
    complete_one(c, &ev, wall(), "shared/b.sst");
    assert_false(exists(dir, "shared/a.sst"));
    assert_true(exists(dir, "shared/b.sst"));

    /* A savepoint goes to its own directory and is never deleted. */
    char sp[512];
    snprintf(sp, sizeof(sp), "%s/savepoints/sp-1", dir);
    eddy_error_t err = {0};
    int64_t id = eddy__coord_trigger_savepoint(c, sp, &err);
    assert_true(id > 0);
    eddy__coord_ack(c, id, 0, ack(0, NULL));
    assert_int_equal(eddy__coord_wait(c, id, 1000, &err), 1);
    for (int64_t t = 6; t < 10; t++) {
        complete_one(c, &ev, wall() + t, NULL);
    }
    char meta[600];
    snprintf(meta, sizeof(meta), "%s/_metadata", sp);
    assert_int_equal(access(meta, F_OK), 0);
    eddy__coord_destroy(c);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interval_pause_and_completion),
        cmocka_unit_test(test_timeout_and_decline_abort),
        cmocka_unit_test(test_retention_and_shared_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
