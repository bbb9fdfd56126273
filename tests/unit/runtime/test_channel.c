/*
 * eddy — unit tests for src/runtime/channel.c: input gates, bounded channels
 * and back pressure.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Blocked threads are detected through the gate's own bookkeeping (writer
 * and reader waiting counts, read under the gate's lock) with deadlines, so
 * "the producer is blocked" is an observed fact, not a sleep.
 */
#include "test_util.h"

#include "runtime/channel.h"

static int writer_waiting(eddy__gate_t *g, int ch)
{
    pthread_mutex_lock(&g->g_mu);
    int n = g->g_chans[ch].ic_writer_waiting;
    pthread_mutex_unlock(&g->g_mu);
    return n;
}

static int reader_waiting(eddy__gate_t *g)
{
    pthread_mutex_lock(&g->g_mu);
    int n = g->g_reader_waiting;
    pthread_mutex_unlock(&g->g_mu);
    return n;
}

static bool writer0_blocked(void *arg)
{
    return writer_waiting(arg, 0) == 1;
}

static bool reader_blocked(void *arg)
{
    return reader_waiting(arg) == 1;
}

/* A buffer stamped with a sequence number in its first bytes. */
static eddy__buffer_t *stamped(eddy__pool_t *pl, uint32_t seq)
{
    eddy__buffer_t *b = eddy__pool_try_get(pl);
    assert_non_null(b);
    memcpy(b->buf_data, &seq, sizeof(seq));
    b->buf_len = sizeof(seq);
    return b;
}

static uint32_t stamp_of(const eddy__buffer_t *b)
{
    uint32_t seq;
    memcpy(&seq, b->buf_data, sizeof(seq));
    return seq;
}

static void test_fifo_per_channel(void **state)
{
    (void)state;
    eddy__pool_t *pl = eddy__pool_new(64, 8);
    eddy__gate_t *g = eddy__gate_new(1, 4, NULL);
    int ch = -1;
    assert_null(eddy__gate_pop(g, &ch, false)); /* empty */
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(eddy__gate_push(&g->g_chans[0], stamped(pl, i)), 0);
        assert_int_equal(eddy__gate_queued(g, 0), (int)i + 1);
    }
    for (uint32_t i = 0; i < 4; i++) {
        eddy__buffer_t *b = eddy__gate_pop(g, &ch, false);
        assert_non_null(b);
        assert_int_equal(ch, 0);
        assert_int_equal(stamp_of(b), i);
        assert_int_equal(eddy__gate_queued(g, 0), 3 - (int)i);
        eddy__buffer_release(b);
    }
    assert_null(eddy__gate_pop(g, &ch, false));
    /* The ring wraps around correctly: batches of 1..4 move its head
     * through every position many times. */
    uint32_t seq = 0, expect = 0;
    for (int round = 0; round < 40; round++) {
        int k = 1 + round % 4;
        for (int i = 0; i < k; i++) {
            assert_int_equal(
                eddy__gate_push(&g->g_chans[0], stamped(pl, seq++)), 0);
        }
        assert_int_equal(eddy__gate_queued(g, 0), k);
        for (int i = 0; i < k; i++) {
            eddy__buffer_t *b = eddy__gate_pop(g, &ch, false);
            assert_non_null(b);
            assert_int_equal(stamp_of(b), expect++);
            eddy__buffer_release(b);
        }
    }
    assert_null(eddy__gate_pop(g, &ch, false));
    eddy__gate_destroy(g);
    assert_int_equal(eddy__pool_available(pl), 8);
    eddy__pool_destroy(pl);
}

/* ---- back pressure ---- */

typedef struct producer {
    eddy__gate_t *g;
    eddy__pool_t *pl;
    int ch;
    int total;
    atomic_int pushed;
    atomic_int rc;
    atomic_int max_queued; /* as seen right after each push */
} producer_t;

static void *producer_main(void *arg)
{
    producer_t *p = arg;
    for (int i = 0; i < p->total; i++) {
        eddy__buffer_t *b = eddy__pool_get(p->pl);
        if (b == NULL) {
            atomic_store(&p->rc, -1000);
            return NULL;
        }
        uint32_t seq = (uint32_t)i;
        memcpy(b->buf_data, &seq, sizeof(seq));
        b->buf_len = sizeof(seq);
        int rc = eddy__gate_push(&p->g->g_chans[p->ch], b);
        if (rc != 0) {
            atomic_store(&p->rc, rc);
            return NULL;
        }
        int q = eddy__gate_queued(p->g, p->ch);
        if (q > atomic_load(&p->max_queued)) {
            atomic_store(&p->max_queued, q);
        }
        atomic_fetch_add(&p->pushed, 1);
    }
    return NULL;
}

/* The producer has pushed `want` buffers and sleeps in the next push. */
typedef struct blocked_at {
    producer_t *p;
    int want;
} blocked_at_t;

static bool producer_blocked_at(void *arg)
{
    blocked_at_t *ba = arg;
    return atomic_load(&ba->p->pushed) == ba->want &&
           writer_waiting(ba->p->g, ba->p->ch) == 1;
}

static void test_back_pressure_blocks_producer(void **state)
{
    (void)state;
    enum { CAP = 3, TOTAL = 10 };
    eddy__pool_t *pl = eddy__pool_new(64, TOTAL + 2);
    eddy__gate_t *g = eddy__gate_new(1, CAP, NULL);
    producer_t p = {.g = g, .pl = pl, .ch = 0, .total = TOTAL};
    atomic_init(&p.pushed, 0);
    atomic_init(&p.rc, 0);
    atomic_init(&p.max_queued, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, producer_main, &p), 0);

    /* The producer fills the channel, then sleeps in push with the
     * (CAP+1)-th buffer in hand. */
    blocked_at_t ba = {&p, CAP};
    assert_true(tu_wait_until(producer_blocked_at, &ba, 5000));
    assert_int_equal(atomic_load(&p.pushed), CAP);
    assert_int_equal(eddy__gate_queued(g, 0), CAP);

    /* Each pop lets exactly one more buffer in. */
    for (int i = 0; i < TOTAL; i++) {
        int ch;
        eddy__buffer_t *b = eddy__gate_pop(g, &ch, true);
        assert_non_null(b);
        assert_int_equal(ch, 0);
        assert_int_equal(stamp_of(b), (uint32_t)i);
        eddy__buffer_release(b);
        int expect = EDDY_MIN(TOTAL, CAP + i + 1);
        if (expect < TOTAL) {
            /* Blocked again with exactly one more pushed. */
            ba.want = expect;
            if (!tu_wait_until(producer_blocked_at, &ba, 5000)) {
                fail_msg("after %d pops: pushed %d, writer waiting %d; "
                         "expected %d and blocked",
                         i + 1, atomic_load(&p.pushed), writer_waiting(g, 0),
                         expect);
            }
            assert_int_equal(eddy__gate_queued(g, 0), CAP);
        }
        assert_true(eddy__gate_queued(g, 0) <= CAP);
    }
    tu_join(th, 5000, "producer");
    assert_int_equal(atomic_load(&p.rc), 0);
    assert_int_equal(atomic_load(&p.pushed), TOTAL);
    assert_true(atomic_load(&p.max_queued) <= CAP);
    assert_int_equal(eddy__gate_queued(g, 0), 0);
    /* Time blocked is accounted as back pressure. */
    assert_true(atomic_load(&g->g_chans[0].ic_bp_ns) > 0);
    eddy__gate_destroy(g);
    assert_int_equal(eddy__pool_available(pl), TOTAL + 2);
    eddy__pool_destroy(pl);
}

static void test_full_channel_does_not_block_others(void **state)
{
    (void)state;
    eddy__pool_t *pl = eddy__pool_new(64, 16);
    eddy__gate_t *g = eddy__gate_new(2, 1, NULL);
    producer_t p = {.g = g, .pl = pl, .ch = 0, .total = 3};
    atomic_init(&p.pushed, 0);
    atomic_init(&p.rc, 0);
    atomic_init(&p.max_queued, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, producer_main, &p), 0);
    assert_true(tu_wait_until(writer0_blocked, g, 5000));
    /* Channel 0 is full and its writer blocked; channel 1 still accepts
     * without blocking. */
    assert_int_equal(eddy__gate_push(&g->g_chans[1], stamped(pl, 77)), 0);
    assert_int_equal(eddy__gate_queued(g, 1), 1);
    int ch;
    int seen0 = 0, seen1 = 0;
    for (int i = 0; i < 4; i++) {
        eddy__buffer_t *b = eddy__gate_pop(g, &ch, true);
        assert_non_null(b);
        if (ch == 1) {
            assert_int_equal(stamp_of(b), 77);
            seen1++;
        } else {
            assert_int_equal(ch, 0);
            assert_int_equal(stamp_of(b), (uint32_t)seen0);
            seen0++;
        }
        eddy__buffer_release(b);
    }
    assert_int_equal(seen0, 3);
    assert_int_equal(seen1, 1);
    tu_join(th, 5000, "producer");
    eddy__gate_destroy(g);
    eddy__pool_destroy(pl);
}

/* ---- fairness ---- */

static void test_round_robin_across_channels(void **state)
{
    (void)state;
    eddy__pool_t *pl = eddy__pool_new(64, 32);
    eddy__gate_t *g = eddy__gate_new(3, 4, NULL);
    /* Channel 0 gets 4 buffers, channel 1 gets 2, channel 2 gets 3, pushed
     * channel by channel. */
    static const int fill[3] = {4, 2, 3};
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < fill[c]; i++) {
            assert_int_equal(
                eddy__gate_push(&g->g_chans[c],
                                stamped(pl, (uint32_t)(c * 100 + i))),
                0);
        }
    }
    /* The reader takes one buffer per channel in turn, skipping channels
     * that ran dry, and keeps each channel's order. */
    static const int order[] = {0, 1, 2, 0, 1, 2, 0, 2, 0};
    int next[3] = {0, 0, 0};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(order); i++) {
        int ch = -1;
        eddy__buffer_t *b = eddy__gate_pop(g, &ch, false);
        assert_non_null(b);
        assert_int_equal(ch, order[i]);
        assert_int_equal(stamp_of(b), (uint32_t)(ch * 100 + next[ch]++));
        eddy__buffer_release(b);
    }
    int ch;
    assert_null(eddy__gate_pop(g, &ch, false));

    /* A channel that becomes ready later queues behind the ready ones. */
    assert_int_equal(eddy__gate_push(&g->g_chans[2], stamped(pl, 1)), 0);
    assert_int_equal(eddy__gate_push(&g->g_chans[2], stamped(pl, 2)), 0);
    assert_int_equal(eddy__gate_push(&g->g_chans[0], stamped(pl, 3)), 0);
    assert_int_equal(eddy__gate_push(&g->g_chans[1], stamped(pl, 4)), 0);
    static const int order2[] = {2, 0, 1, 2};
    static const uint32_t stamps2[] = {1, 3, 4, 2};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(order2); i++) {
        eddy__buffer_t *b = eddy__gate_pop(g, &ch, false);
        assert_non_null(b);
        assert_int_equal(ch, order2[i]);
        assert_int_equal(stamp_of(b), stamps2[i]);
        eddy__buffer_release(b);
    }
    eddy__gate_destroy(g);
    assert_int_equal(eddy__pool_available(pl), 32);
    eddy__pool_destroy(pl);
}

static void test_busy_channel_cannot_starve_others(void **state)
{
    (void)state;
    /* Channel 0 is refilled after every pop; channel 1 has one buffer. It
     * must come out within two pops. */
    eddy__pool_t *pl = eddy__pool_new(64, 16);
    eddy__gate_t *g = eddy__gate_new(2, 4, NULL);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(eddy__gate_push(&g->g_chans[0], stamped(pl, i)), 0);
    }
    assert_int_equal(eddy__gate_push(&g->g_chans[1], stamped(pl, 99)), 0);
    int pops_until_1 = 0;
    for (int i = 0; i < 10; i++) {
        int ch;
        eddy__buffer_t *b = eddy__gate_pop(g, &ch, false);
        assert_non_null(b);
        eddy__buffer_release(b);
        pops_until_1++;
        if (ch == 1) {
            break;
        }
        assert_int_equal(
            eddy__gate_push(&g->g_chans[0], stamped(pl, 10 + (uint32_t)i)), 0);
    }
    assert_int_equal(pops_until_1, 2);
    eddy__gate_destroy(g);
    eddy__pool_destroy(pl);
}

/* ---- blocking pop and cancellation ---- */

typedef struct popper {
    eddy__gate_t *g;
    eddy__buffer_t *got;
    int ch;
    atomic_int done;
} popper_t;

static void *popper_main(void *arg)
{
    popper_t *p = arg;
    p->got = eddy__gate_pop(p->g, &p->ch, true);
    atomic_store(&p->done, 1);
    return NULL;
}

static void test_blocking_pop_wakes_on_push(void **state)
{
    (void)state;
    eddy__pool_t *pl = eddy__pool_new(64, 4);
    eddy__gate_t *g = eddy__gate_new(3, 2, NULL);
    popper_t p = {.g = g, .ch = -1};
    atomic_init(&p.done, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, popper_main, &p), 0);
    assert_true(tu_wait_until(reader_blocked, g, 5000));
    assert_int_equal(atomic_load(&p.done), 0);
    assert_int_equal(eddy__gate_push(&g->g_chans[2], stamped(pl, 5)), 0);
    tu_join(th, 5000, "popper");
    assert_non_null(p.got);
    assert_int_equal(p.ch, 2);
    assert_int_equal(stamp_of(p.got), 5);
    eddy__buffer_release(p.got);
    eddy__gate_destroy(g);
    eddy__pool_destroy(pl);
}

static void test_cancel_wakes_blocked_pop(void **state)
{
    (void)state;
    atomic_int cancel;
    atomic_init(&cancel, 0);
    eddy__gate_t *g = eddy__gate_new(2, 2, &cancel);
    popper_t p = {.g = g, .ch = -1};
    atomic_init(&p.done, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, popper_main, &p), 0);
    assert_true(tu_wait_until(reader_blocked, g, 5000));

    /* A wake without cancellation does not make the reader give up. */
    eddy__gate_wake(g);
    assert_true(tu_wait_until(reader_blocked, g, 5000));
    assert_int_equal(atomic_load(&p.done), 0);

    atomic_store(&cancel, 1);
    eddy__gate_wake(g);
    tu_join(th, 5000, "cancelled popper");
    assert_null(p.got);
    /* Later blocking pops on the cancelled gate return at once. */
    int ch;
    assert_null(eddy__gate_pop(g, &ch, true));
    eddy__gate_destroy(g);
}

static void test_cancel_wakes_blocked_push(void **state)
{
    (void)state;
    atomic_int cancel;
    atomic_init(&cancel, 0);
    eddy__pool_t *pl = eddy__pool_new(64, 4);
    eddy__gate_t *g = eddy__gate_new(1, 1, &cancel);
    producer_t p = {.g = g, .pl = pl, .ch = 0, .total = 2};
    atomic_init(&p.pushed, 0);
    atomic_init(&p.rc, 0);
    atomic_init(&p.max_queued, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, producer_main, &p), 0);
    assert_true(tu_wait_until(writer0_blocked, g, 5000));
    assert_int_equal(atomic_load(&p.pushed), 1);
    /* Two buffers out of the pool: one queued, one in the blocked push. */
    assert_int_equal(eddy__pool_available(pl), 2);

    atomic_store(&cancel, 1);
    eddy__gate_wake(g);
    tu_join(th, 5000, "cancelled producer");
    assert_int_equal(atomic_load(&p.rc), EDDY_ERR_CANCELED);
    assert_int_equal(atomic_load(&p.pushed), 1);
    /* The rejected buffer went back to the pool; the queue is unchanged. */
    assert_int_equal(eddy__pool_available(pl), 3);
    assert_int_equal(eddy__gate_queued(g, 0), 1);

    /* A push on a cancelled gate fails at once and releases its buffer,
     * even with room in the channel. */
    eddy__gate_t *g2 = eddy__gate_new(1, 4, &cancel);
    eddy__buffer_t *b = eddy__pool_try_get(pl);
    assert_int_equal(eddy__gate_push(&g2->g_chans[0], b), EDDY_ERR_CANCELED);
    assert_int_equal(eddy__gate_queued(g2, 0), 0);
    assert_int_equal(eddy__pool_available(pl), 3);
    eddy__gate_destroy(g2);

    /* Destroying the gate releases what is still queued. */
    eddy__gate_destroy(g);
    assert_int_equal(eddy__pool_available(pl), 4);
    eddy__pool_destroy(pl);
}

/* ---- several producers at once ---- */

static void test_many_producers_keep_order(void **state)
{
    (void)state;
    enum { NPROD = 3, TOTAL = 3000, CAP = 2 };
    eddy__pool_t *pl = eddy__pool_new(64, NPROD * (CAP + 2));
    eddy__gate_t *g = eddy__gate_new(NPROD, CAP, NULL);
    producer_t p[NPROD];
    pthread_t th[NPROD];
    for (int i = 0; i < NPROD; i++) {
        p[i] = (producer_t){.g = g, .pl = pl, .ch = i, .total = TOTAL};
        atomic_init(&p[i].pushed, 0);
        atomic_init(&p[i].rc, 0);
        atomic_init(&p[i].max_queued, 0);
        assert_int_equal(pthread_create(&th[i], NULL, producer_main, &p[i]), 0);
    }
    uint32_t next[NPROD] = {0};
    for (int n = 0; n < NPROD * TOTAL; n++) {
        int ch;
        eddy__buffer_t *b = eddy__gate_pop(g, &ch, true);
        assert_non_null(b);
        assert_in_range(ch, 0, NPROD - 1);
        /* Each channel delivers its producer's buffers in order. */
        assert_int_equal(stamp_of(b), next[ch]);
        next[ch]++;
        assert_true(eddy__gate_queued(g, ch) <= CAP);
        eddy__buffer_release(b);
    }
    for (int i = 0; i < NPROD; i++) {
        tu_join(th[i], 30000, "producer");
        assert_int_equal(atomic_load(&p[i].rc), 0);
        assert_true(atomic_load(&p[i].max_queued) <= CAP);
        assert_int_equal(next[i], TOTAL);
    }
    int ch;
    assert_null(eddy__gate_pop(g, &ch, false));
    eddy__gate_destroy(g);
    assert_int_equal(eddy__pool_available(pl), NPROD * (CAP + 2));
    eddy__pool_destroy(pl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_per_channel),
        cmocka_unit_test(test_back_pressure_blocks_producer),
        cmocka_unit_test(test_full_channel_does_not_block_others),
        cmocka_unit_test(test_round_robin_across_channels),
        cmocka_unit_test(test_busy_channel_cannot_starve_others),
        cmocka_unit_test(test_blocking_pop_wakes_on_push),
        cmocka_unit_test(test_cancel_wakes_blocked_pop),
        cmocka_unit_test(test_cancel_wakes_blocked_push),
        cmocka_unit_test(test_many_producers_keep_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
