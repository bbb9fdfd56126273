/*
 * eddy — unit tests for src/runtime/buffer.c: the buffer pool.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Blocking behaviour is checked by waiting (with a deadline) until the other
 * thread is really asleep inside the pool — pl_waiters counts it under the
 * pool's lock — rather than by sleeping and hoping.
 */
#include "test_util.h"

#include "runtime/buffer.h"

static size_t waiters(eddy__pool_t *pl)
{
    pthread_mutex_lock(&pl->pl_mu);
    int n = pl->pl_waiters;
    pthread_mutex_unlock(&pl->pl_mu);
    return (size_t)n;
}

static bool has_waiter(void *arg)
{
    return waiters(arg) == 1;
}

static void test_lazy_allocation_up_to_max(void **state)
{
    (void)state;
    eddy__pool_t *pl = eddy__pool_new(4096, 3);
    /* Nothing is allocated until asked for. */
    assert_int_equal(pl->pl_allocated, 0);
    assert_int_equal(eddy__pool_available(pl), 3);

    eddy__buffer_t *a = eddy__pool_try_get(pl);
    assert_non_null(a);
    assert_int_equal(pl->pl_allocated, 1);
    assert_int_equal(eddy__pool_available(pl), 2);
    assert_int_equal(a->buf_cap, 4096);
    assert_int_equal(a->buf_len, 0);
    assert_ptr_equal(a->buf_pool, pl);
    assert_int_equal((uintptr_t)a->buf_data % 16, 0);
    memset(a->buf_data, 0xab, 4096); /* the whole segment is usable */

    /* A released buffer is reused before a new one is allocated. */
    a->buf_len = 77;
    eddy__buffer_release(a);
    assert_int_equal(eddy__pool_available(pl), 3);
    eddy__buffer_t *a2 = eddy__pool_get(pl);
    assert_ptr_equal(a2, a);
    assert_int_equal(a2->buf_len, 0); /* reset on get */
    assert_null(a2->buf_next);
    assert_int_equal(pl->pl_allocated, 1);

    eddy__buffer_t *b = eddy__pool_try_get(pl);
    eddy__buffer_t *c = eddy__pool_get(pl);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(b != a2 && c != a2 && b != c);
    assert_int_equal(pl->pl_allocated, 3);
    assert_int_equal(eddy__pool_available(pl), 0);

    /* Exhausted: try_get fails at once, and nothing more is allocated. */
    assert_null(eddy__pool_try_get(pl));
    assert_null(eddy__pool_try_get(pl));
    assert_int_equal(pl->pl_allocated, 3);

    eddy__buffer_release(b);
    assert_int_equal(eddy__pool_available(pl), 1);
    assert_ptr_equal(eddy__pool_try_get(pl), b);
    assert_int_equal(eddy__pool_available(pl), 0);

    eddy__buffer_release(NULL); /* no-op */
    eddy__buffer_release(a2);
    eddy__buffer_release(b);
    eddy__buffer_release(c);
    assert_int_equal(eddy__pool_available(pl), 3);
    eddy__pool_destroy(pl);
    eddy__pool_destroy(NULL);
}

static void test_zero_max_means_one(void **state)
{
    (void)state;
    eddy__pool_t *pl = eddy__pool_new(64, 0);
    assert_int_equal(eddy__pool_available(pl), 1);
    eddy__buffer_t *b = eddy__pool_try_get(pl);
    assert_non_null(b);
    assert_null(eddy__pool_try_get(pl));
    eddy__buffer_release(b);
    eddy__pool_destroy(pl);
}

typedef struct getter {
    eddy__pool_t *pl;
    eddy__buffer_t *got;
    atomic_int done;
} getter_t;

static void *getter_main(void *arg)
{
    getter_t *g = arg;
    g->got = eddy__pool_get(g->pl);
    atomic_store(&g->done, 1);
    return NULL;
}

static void test_get_blocks_until_release(void **state)
{
    (void)state;
    eddy__pool_t *pl = eddy__pool_new(128, 2);
    eddy__buffer_t *a = eddy__pool_get(pl);
    eddy__buffer_t *b = eddy__pool_get(pl);
    assert_int_equal(eddy__pool_available(pl), 0);

    getter_t g = {.pl = pl, .got = NULL};
    atomic_init(&g.done, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, getter_main, &g), 0);
    /* The getter is asleep inside the pool, without a buffer. */
    assert_true(tu_wait_until(has_waiter, pl, 5000));
    assert_int_equal(atomic_load(&g.done), 0);

    eddy__buffer_release(b);
    tu_join(th, 5000, "pool getter");
    assert_int_equal(atomic_load(&g.done), 1);
    assert_ptr_equal(g.got, b);
    assert_int_equal(waiters(pl), 0);
    /* The time spent blocked is accounted. */
    assert_true(atomic_load(&pl->pl_wait_ns) > 0);

    eddy__buffer_release(a);
    eddy__buffer_release(g.got);
    eddy__pool_destroy(pl);
}

typedef struct releaser {
    eddy__buffer_t *buf;
    eddy__pool_t *pl;
} releaser_t;

static void *releaser_main(void *arg)
{
    releaser_t *r = arg;
    /* Release only once the main thread is blocked in get. */
    uint64_t deadline = tu_now_ms() + (uint64_t)tu_timeout_ms(5000);
    while (waiters(r->pl) == 0 && tu_now_ms() < deadline) {
        tu_sleep_us(100);
    }
    eddy__buffer_release(r->buf);
    return NULL;
}

static void test_release_from_another_thread(void **state)
{
    (void)state;
    eddy__pool_t *pl = eddy__pool_new(128, 1);
    eddy__buffer_t *a = eddy__pool_get(pl);
    releaser_t r = {a, pl};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, releaser_main, &r), 0);
    eddy__buffer_t *b = eddy__pool_get(pl); /* blocks until released */
    assert_ptr_equal(b, a);
    tu_join(th, 5000, "releaser");
    eddy__buffer_release(b);
    eddy__pool_destroy(pl);
}

static void test_cancel_wakes_blocked_get(void **state)
{
    (void)state;
    atomic_int cancel;
    atomic_init(&cancel, 0);
    eddy__pool_t *pl = eddy__pool_new(128, 1);
    eddy__pool_set_cancel(pl, &cancel);
    eddy__buffer_t *a = eddy__pool_get(pl);

    getter_t g = {.pl = pl, .got = NULL};
    atomic_init(&g.done, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, getter_main, &g), 0);
    assert_true(tu_wait_until(has_waiter, pl, 5000));

    /* A wake without the flag raised is spurious: the getter sleeps on. */
    eddy__pool_wake(pl);
    assert_true(tu_wait_until(has_waiter, pl, 5000));
    assert_int_equal(atomic_load(&g.done), 0);

    atomic_store(&cancel, 1);
    eddy__pool_wake(pl);
    tu_join(th, 5000, "cancelled getter");
    assert_null(g.got);
    assert_int_equal(waiters(pl), 0);

    /* Once cancelled, an exhausted pool refuses at once... */
    assert_null(eddy__pool_get(pl));
    /* ...but free buffers are still handed out. */
    eddy__buffer_release(a);
    eddy__buffer_t *b = eddy__pool_get(pl);
    assert_ptr_equal(b, a);
    eddy__buffer_release(b);
    assert_int_equal(eddy__pool_available(pl), 1);
    eddy__pool_destroy(pl);
}

/* ---- many threads ---- */

typedef struct stress {
    eddy__pool_t *pl;
    atomic_int out; /* buffers currently taken */
    atomic_int max_out;
    atomic_int errors;
    int iters;
} stress_t;

static void *stress_main(void *arg)
{
    stress_t *s = arg;
    for (int i = 0; i < s->iters; i++) {
        eddy__buffer_t *b =
            (i & 1) ? eddy__pool_get(s->pl) : eddy__pool_try_get(s->pl);
        if (b == NULL) {
            if (i & 1) {
                atomic_fetch_add(&s->errors, 1); /* blocking get failed */
            }
            continue;
        }
        int now = atomic_fetch_add(&s->out, 1) + 1;
        int prev = atomic_load(&s->max_out);
        while (now > prev &&
               !atomic_compare_exchange_weak(&s->max_out, &prev, now)) {
        }
        /* Each holder owns the segment: write it, check it is intact. */
        memset(b->buf_data, i & 0xff, 64);
        b->buf_len = 64;
        for (int k = 0; k < 64; k++) {
            if (b->buf_data[k] != (unsigned char)(i & 0xff)) {
                atomic_fetch_add(&s->errors, 1);
                break;
            }
        }
        atomic_fetch_sub(&s->out, 1);
        eddy__buffer_release(b);
    }
    return NULL;
}

static void test_concurrent_get_release(void **state)
{
    (void)state;
    enum { THREADS = 4, MAX = 2 };
    stress_t s = {.pl = eddy__pool_new(64, MAX), .iters = 20000};
    atomic_init(&s.out, 0);
    atomic_init(&s.max_out, 0);
    atomic_init(&s.errors, 0);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, stress_main, &s), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        tu_join(th[i], 30000, "pool stress");
    }
    assert_int_equal(atomic_load(&s.errors), 0);
    assert_true(atomic_load(&s.max_out) <= MAX);
    assert_true(atomic_load(&s.max_out) >= 1);
    assert_true(s.pl->pl_allocated <= MAX);
    assert_int_equal(eddy__pool_available(s.pl), MAX);
    assert_int_equal(waiters(s.pl), 0);
    eddy__pool_destroy(s.pl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lazy_allocation_up_to_max),
        cmocka_unit_test(test_zero_max_means_one),
        cmocka_unit_test(test_get_blocks_until_release),
        cmocka_unit_test(test_release_from_another_thread),
        cmocka_unit_test(test_cancel_wakes_blocked_get),
        cmocka_unit_test(test_concurrent_get_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
