/*
 * eddy — unit tests for src/net/dataplane.c: the TaskManager data plane
 * (TCP, credit-based flow control, pairing, failures).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Several data planes run in this one process over loopback, each with its
 * own self id, exactly as TaskManagers would across machines. Buffers carry
 * a (channel, sequence) stamp and bytes derived from it, so the consumer
 * checks order and content byte for byte. Fake peers are raw sockets that
 * speak the wire format by hand (HELLO, CREDIT, garbage), which makes the
 * pairing rule and failure handling deterministic to test.
 *
 * Blocking is observed, never assumed: "the sender is blocked" is
 * eddy__dp_out_wait_ns growing while a pusher thread has not finished, and
 * every wait has a deadline (tu_wait_until).
 *
 * EDDY_DP_BENCH=1 makes test_bench run for a few seconds and print its
 * figures (buffers/s, MB/s); by default it runs briefly.
 */
#include "test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "net/dataplane.h"

#define SEG 4096
#define TAG 0x1122334455667788ull

/* ---- peer-lost recorder ---- */

typedef struct lost_rec {
    pthread_mutex_t lr_mu;
    int lr_n;
    char lr_addr[128];
    char lr_reason[512];
} lost_rec_t;

static void on_lost(void *arg, const char *addr, const char *reason)
{
    lost_rec_t *r = arg;
    pthread_mutex_lock(&r->lr_mu);
    r->lr_n++;
    snprintf(r->lr_addr, sizeof(r->lr_addr), "%s", addr);
    snprintf(r->lr_reason, sizeof(r->lr_reason), "%s", reason);
    pthread_mutex_unlock(&r->lr_mu);
}

static void lost_init(lost_rec_t *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lr_mu, NULL);
}

static int lost_count(lost_rec_t *r)
{
    pthread_mutex_lock(&r->lr_mu);
    int n = r->lr_n;
    pthread_mutex_unlock(&r->lr_mu);
    return n;
}

typedef struct lost_arg {
    lost_rec_t *la_rec;
    int la_want;
} lost_arg_t;

static bool lost_reached(void *arg)
{
    lost_arg_t *a = arg;
    return lost_count(a->la_rec) >= a->la_want;
}

/* The callback runs after the socket is closed: wait for it. */
static void wait_lost(lost_rec_t *rec, int n)
{
    lost_arg_t a = {rec, n};
    assert_true(tu_wait_until(lost_reached, &a, 5000));
    assert_int_equal(lost_count(rec), n);
}

static eddy__dp_t *mkdp(const char *id, size_t seg, int excl, int flt,
                        lost_rec_t *rec)
{
    eddy__dp_options_t o;
    eddy__dp_options_init(&o);
    o.do_self_id = id;
    o.do_segment_size = seg;
    o.do_exclusive = excl;
    o.do_floating = flt;
    if (rec != NULL) {
        o.do_on_peer_lost = on_lost;
        o.do_arg = rec;
    }
    eddy_error_t err;
    eddy__dp_t *dp = eddy__dp_new(&o, &err);
    if (dp == NULL) {
        fail_msg("eddy__dp_new: %s", err.msg);
    }
    return dp;
}

static eddy__dp_chan_id_t cid(uint64_t job, uint32_t task, uint32_t chan)
{
    eddy__dp_chan_id_t id = {job, task, chan};
    return id;
}

/* ---- stamped buffers ---- */

static uint32_t mix(uint32_t a, uint32_t b)
{
    uint64_t x = ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(x >> 29);
}

static size_t stamp_len(uint32_t chan, uint32_t seq, size_t seg)
{
    if (seq % 7 == 3) {
        return seg; /* full segments too */
    }
    return 8 + mix(chan, seq) % (seg - 8);
}

static void stamp(eddy__buffer_t *b, uint32_t chan, uint32_t seq, size_t seg)
{
    size_t len = stamp_len(chan, seq, seg);
    memcpy(b->buf_data, &chan, 4);
    memcpy(b->buf_data + 4, &seq, 4);
    for (size_t k = 8; k < len; k++) {
        b->buf_data[k] = (unsigned char)(seq * 31u + chan * 7u + k);
    }
    b->buf_len = (uint32_t)len;
}

/* Returns NULL if `b` is buffer `seq` of `chan`, else what is wrong. */
static const char *stamp_check(const eddy__buffer_t *b, uint32_t chan,
                               uint32_t seq, size_t seg)
{
    static _Thread_local char why[160];
    uint32_t c, s;
    memcpy(&c, b->buf_data, 4);
    memcpy(&s, b->buf_data + 4, 4);
    if (c != chan || s != seq) {
        snprintf(why, sizeof(why), "got (%u,%u), want (%u,%u)", c, s, chan,
                 seq);
        return why;
    }
    size_t len = stamp_len(chan, seq, seg);
    if (b->buf_len != len) {
        snprintf(why, sizeof(why), "length %u, want %zu", b->buf_len, len);
        return why;
    }
    for (size_t k = 8; k < len; k++) {
        if (b->buf_data[k] != (unsigned char)(seq * 31u + chan * 7u + k)) {
            snprintf(why, sizeof(why), "byte %zu of (%u,%u) differs", k, chan,
                     seq);
            return why;
        }
    }
    return NULL;
}

/* ---- pusher threads ---- */

typedef struct pusher {
    eddy__dp_out_t *pu_out;
    eddy__pool_t *pu_pool;
    uint32_t pu_chan; /* stamp channel */
    int pu_n;
    size_t pu_seg;
    atomic_int pu_done; /* pushes that returned 0 */
    atomic_int pu_rc;   /* first error */
    atomic_bool pu_finished;
    pthread_t pu_th;
} pusher_t;

static void *push_main(void *arg)
{
    pusher_t *p = arg;
    for (int i = 0; i < p->pu_n; i++) {
        eddy__buffer_t *b = eddy__pool_get(p->pu_pool);
        if (b == NULL) {
            atomic_store(&p->pu_rc, EDDY_ERR_NOMEM);
            break;
        }
        stamp(b, p->pu_chan, (uint32_t)i, p->pu_seg);
        int rc = eddy__dp_push(p->pu_out, b);
        if (rc != 0) {
            atomic_store(&p->pu_rc, rc);
            break;
        }
        atomic_fetch_add(&p->pu_done, 1);
    }
    atomic_store(&p->pu_finished, true);
    return NULL;
}

static void pusher_start(pusher_t *p, eddy__dp_out_t *out, eddy__pool_t *pool,
                         uint32_t chan, int n, size_t seg)
{
    memset(p, 0, sizeof(*p));
    p->pu_out = out;
    p->pu_pool = pool;
    p->pu_chan = chan;
    p->pu_n = n;
    p->pu_seg = seg;
    atomic_init(&p->pu_done, 0);
    atomic_init(&p->pu_rc, 0);
    atomic_init(&p->pu_finished, false);
    assert_int_equal(pthread_create(&p->pu_th, NULL, push_main, p), 0);
}

static bool pusher_finished(void *arg)
{
    return atomic_load(&((pusher_t *)arg)->pu_finished);
}

/* The pusher is blocked on credit: not finished, and its wait grows. */
typedef struct blocked_arg {
    pusher_t *ba_p;
    int ba_done; /* pushes expected to have succeeded */
} blocked_arg_t;

static bool pusher_blocked(void *arg)
{
    blocked_arg_t *a = arg;
    return !atomic_load(&a->ba_p->pu_finished) &&
           atomic_load(&a->ba_p->pu_done) == a->ba_done &&
           eddy__dp_out_wait_ns(a->ba_p->pu_out) > 0;
}

/* ---- consumer helpers ---- */

/* Pops `n` buffers from `g`, checking each channel's sequence; `next` holds
 * the next expected sequence per channel, `stamp_chan` maps gate channel to
 * stamp channel. */
static void consume_n(eddy__gate_t *g, int n, uint32_t *next,
                      const uint32_t *stamp_chan, size_t seg)
{
    uint64_t deadline =
        eddy__now_ns() + (uint64_t)tu_timeout_ms(10000) * 1000000u;
    for (int i = 0; i < n; i++) {
        int ch = -1;
        eddy__buffer_t *b = eddy__gate_pop_until(g, &ch, deadline);
        if (b == NULL) {
            fail_msg("timed out waiting for buffer %d of %d", i, n);
        }
        const char *why = stamp_check(b, stamp_chan[ch], next[ch], seg);
        if (why != NULL) {
            eddy__buffer_release(b);
            fail_msg("channel %d: %s", ch, why);
        }
        next[ch]++;
        eddy__buffer_release(b);
    }
}

typedef struct consumer {
    eddy__gate_t *co_g;
    int co_n;
    uint32_t co_next[8];
    uint32_t co_stamp[8];
    size_t co_seg;
    int co_max_queued; /* largest queue seen (channel 0) */
    atomic_int co_got;
    char co_err[200];
    pthread_t co_th;
} consumer_t;

static void *consume_main(void *arg)
{
    consumer_t *c = arg;
    uint64_t deadline =
        eddy__now_ns() + (uint64_t)tu_timeout_ms(15000) * 1000000u;
    for (int i = 0; i < c->co_n; i++) {
        int ch = -1;
        int q = eddy__gate_queued(c->co_g, 0);
        if (q > c->co_max_queued) {
            c->co_max_queued = q;
        }
        eddy__buffer_t *b = eddy__gate_pop_until(c->co_g, &ch, deadline);
        if (b == NULL) {
            snprintf(c->co_err, sizeof(c->co_err), "timeout at %d", i);
            return NULL;
        }
        const char *why =
            stamp_check(b, c->co_stamp[ch], c->co_next[ch], c->co_seg);
        eddy__buffer_release(b);
        if (why != NULL) {
            snprintf(c->co_err, sizeof(c->co_err), "channel %d: %s", ch, why);
            return NULL;
        }
        c->co_next[ch]++;
        atomic_fetch_add(&c->co_got, 1);
    }
    return NULL;
}

static void consumer_start(consumer_t *c, eddy__gate_t *g, int n, size_t seg)
{
    memset(c, 0, sizeof(*c));
    c->co_g = g;
    c->co_n = n;
    c->co_seg = seg;
    atomic_init(&c->co_got, 0);
    for (int i = 0; i < 8; i++) {
        c->co_stamp[i] = (uint32_t)i;
    }
    assert_int_equal(pthread_create(&c->co_th, NULL, consume_main, c), 0);
}

/* ---- waiting on counters ---- */

typedef struct conn_arg {
    eddy__dp_t *ca_dp;
    int ca_want;
} conn_arg_t;

static bool has_conns(void *arg)
{
    conn_arg_t *a = arg;
    eddy__dp_stats_t st;
    eddy__dp_stats(a->ca_dp, &st);
    return st.ds_connections == a->ca_want;
}

typedef struct queued_arg {
    eddy__gate_t *qa_g;
    int qa_ch;
    int qa_want;
} queued_arg_t;

static bool queued_is(void *arg)
{
    queued_arg_t *a = arg;
    return eddy__gate_queued(a->qa_g, a->qa_ch) == a->qa_want;
}

typedef struct float_arg {
    eddy__dp_t *fa_dp;
    int fa_want;
} float_arg_t;

static bool floating_is(void *arg)
{
    float_arg_t *a = arg;
    eddy__dp_credit_stats_t cs;
    eddy__dp_credit_stats(a->fa_dp, &cs);
    return cs.cs_floating_free == a->fa_want;
}

typedef struct dropped_arg {
    eddy__dp_t *da_dp;
    uint64_t da_want;
} dropped_arg_t;

static bool dropped_reached(void *arg)
{
    dropped_arg_t *a = arg;
    eddy__dp_credit_stats_t cs;
    eddy__dp_credit_stats(a->da_dp, &cs);
    return cs.cs_dropped >= a->da_want;
}

typedef struct out_arg {
    eddy__dp_t *oa_dp;
    uint64_t oa_want;
} out_arg_t;

/* The sender counts a buffer once sendmsg() returned, which may be after
 * the consumer already has it. */
static bool buffers_out_reached(void *arg)
{
    out_arg_t *a = arg;
    eddy__dp_stats_t st;
    eddy__dp_stats(a->oa_dp, &st);
    return st.ds_buffers_out >= a->oa_want;
}

static void assert_pool_bounded(eddy__dp_t *dp)
{
    eddy__dp_credit_stats_t cs;
    eddy__dp_credit_stats(dp, &cs);
    if (cs.cs_pool_allocated > cs.cs_pool_max) {
        fail_msg("receive pool holds %zu buffers, limit %zu",
                 cs.cs_pool_allocated, cs.cs_pool_max);
    }
}

/* ---- raw sockets (fake peers) ---- */

static int raw_listen(char *addr, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    snprintf(addr, size, "127.0.0.1:%d", ntohs(sa.sin_port));
    return fd;
}

static int raw_connect(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    assert_non_null(colon);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static int raw_accept(int lfd)
{
    struct pollfd pf = {lfd, POLLIN, 0};
    assert_int_equal(poll(&pf, 1, tu_timeout_ms(5000)), 1);
    int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    return fd;
}

static void raw_write(int fd, const void *p, size_t n)
{
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads exactly n bytes; returns 0, or -1 on EOF/error/timeout. */
static int raw_read(int fd, void *p, size_t n)
{
    size_t got = 0;
    uint64_t deadline = tu_now_ms() + (uint64_t)tu_timeout_ms(5000);
    while (got < n) {
        struct pollfd pf = {fd, POLLIN, 0};
        int left = (int)(deadline - tu_now_ms());
        if (left <= 0 || poll(&pf, 1, left) != 1) {
            return -1;
        }
        ssize_t k = recv(fd, (char *)p + got, n - got, 0);
        if (k <= 0) {
            return -1;
        }
        got += (size_t)k;
    }
    return 0;
}

/* Reads one frame; payload (if any, ≤ cap) into pay. */
static int raw_frame(int fd, eddy__dp_hdr_t *h, unsigned char *pay, size_t cap)
{
    unsigned char hb[EDDY__DP_HDR_SIZE];
    if (raw_read(fd, hb, sizeof(hb)) != 0) {
        return -1;
    }
    assert_int_equal(eddy__dp_hdr_decode(hb, h, NULL), 0);
    assert_true(h->h_len <= cap);
    if (h->h_len > 0 && raw_read(fd, pay, h->h_len) != 0) {
        return -1;
    }
    return 0;
}

/* Waits for the peer to close `fd` (reads until EOF, ignoring bytes). */
static bool raw_closed(int fd)
{
    unsigned char tmp[4096];
    uint64_t deadline = tu_now_ms() + (uint64_t)tu_timeout_ms(5000);
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        int left = (int)(deadline - tu_now_ms());
        if (left <= 0 || poll(&pf, 1, left) != 1) {
            return false;
        }
        ssize_t k = recv(fd, tmp, sizeof(tmp), 0);
        if (k <= 0) {
            return true;
        }
    }
}

static void raw_hello(int fd, int type, const char *id, const char *addr,
                      uint32_t version)
{
    unsigned char buf[600];
    size_t n = eddy__dp_hello_encode(buf, sizeof(buf), type, id, addr, version);
    assert_true(n > 0);
    raw_write(fd, buf, n);
}

static void raw_ctl(int fd, int type, eddy__dp_chan_id_t id, uint32_t arg)
{
    unsigned char hb[EDDY__DP_HDR_SIZE];
    eddy__dp_hdr_t h = {(uint8_t)type, 0, arg, id};
    eddy__dp_hdr_encode(hb, &h);
    raw_write(fd, hb, sizeof(hb));
}

/* ---- tests ---- */

/* Header encode/decode round trip and the checks on garbage. */
static void test_wire_format(void **state)
{
    (void)state;
    unsigned char b[EDDY__DP_HDR_SIZE];
    eddy__dp_hdr_t h = {EDDY__DP_DATA, 32768, 5, {TAG, 7, 9}}, d;
    eddy__dp_hdr_encode(b, &h);
    assert_int_equal(b[0], EDDY__DP_DATA);
    assert_int_equal(eddy__dp_hdr_decode(b, &d, NULL), 0);
    assert_int_equal(d.h_type, EDDY__DP_DATA);
    assert_int_equal(d.h_len, 32768);
    assert_int_equal(d.h_arg, 5);
    assert_true(d.h_id.ci_job == TAG);
    assert_int_equal(d.h_id.ci_task, 7);
    assert_int_equal(d.h_id.ci_chan, 9);
    eddy_error_t err;
    b[1] = 1;
    assert_int_equal(eddy__dp_hdr_decode(b, &d, &err), EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(err.msg, "reserved");
    b[1] = 0;
    b[0] = 'G';
    assert_int_equal(eddy__dp_hdr_decode(b, &d, &err), EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(err.msg, "unknown frame type 0x47");
    unsigned char big[64];
    assert_int_equal(eddy__dp_hello_encode(big, sizeof(big), EDDY__DP_HELLO,
                                           "tm", "127.0.0.1:1", 1),
                     EDDY__DP_HDR_SIZE + 4 + 4 + 2 + 2 + 2 + 11);
    assert_int_equal(
        eddy__dp_hello_encode(big, 20, EDDY__DP_HELLO, "tm", "127.0.0.1:1", 1),
        0);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    eddy_error_t err;
    eddy__dp_options_t o;
    eddy__dp_options_init(&o);
    o.do_exclusive = 0;
    assert_null(eddy__dp_new(&o, &err));
    assert_int_equal(err.code, EDDY_ERR_INVALID);
    eddy__dp_options_init(&o);
    o.do_bind = "203.0.113.1"; /* TEST-NET-3: not ours */
    assert_null(eddy__dp_new(&o, &err));
    assert_int_equal(err.code, EDDY_ERR_IO);
    TU_ASSERT_CONTAINS(err.msg, "cannot listen on 203.0.113.1");

    eddy__dp_t *dp = mkdp("tm-a", SEG, 2, 2, NULL);
    TU_ASSERT_CONTAINS(eddy__dp_address(dp), "127.0.0.1:");
    atomic_int cancel;
    atomic_init(&cancel, 0);
    assert_null(eddy__dp_add_output(dp, cid(1, 0, 0), "nohost", &cancel, &err));
    assert_int_equal(err.code, EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(err.msg, "bad TaskManager address 'nohost'");
    assert_null(
        eddy__dp_add_output(dp, cid(1, 0, 0), "h:99999", &cancel, &err));
    eddy__gate_t *g = eddy__gate_new(1, 1, &cancel);
    assert_int_equal(
        eddy__dp_add_input(dp, cid(1, 0, 0), "x:", g->g_chans, &err),
        EDDY_ERR_INVALID);
    /* One input and one output per channel id. */
    TU_ASSERT_OK(
        eddy__dp_add_input(dp, cid(1, 0, 0), "127.0.0.1:9", g->g_chans, &err),
        &err);
    assert_int_equal(
        eddy__dp_add_input(dp, cid(1, 0, 0), "127.0.0.1:9", g->g_chans, &err),
        EDDY_ERR_STATE);
    TU_ASSERT_CONTAINS(err.msg, "already has an input");
    eddy__dp_out_t *o1 =
        eddy__dp_add_output(dp, cid(2, 0, 0), "127.0.0.1:9", &cancel, &err);
    assert_non_null(o1);
    assert_null(
        eddy__dp_add_output(dp, cid(2, 0, 0), "127.0.0.1:9", &cancel, &err));
    assert_int_equal(err.code, EDDY_ERR_STATE);
    /* A buffer larger than the data plane's segment size is refused. */
    eddy__pool_t *big = eddy__pool_new(2 * SEG, 1);
    eddy__buffer_t *b = eddy__pool_get(big);
    b->buf_len = SEG + 1;
    assert_int_equal(eddy__dp_push(o1, b), EDDY_ERR_INVALID);
    assert_int_equal(eddy__pool_available(big), 1); /* released */
    eddy__pool_destroy(big);
    eddy__dp_release_job(dp, 1);
    eddy__dp_release_job(dp, 2);
    eddy__dp_remove_output(dp, o1);
    eddy__gate_destroy(g);
    eddy__dp_destroy(dp);
}

/* Many buffers on several channels, both directions over one connection:
 * every buffer arrives once, in order, byte for byte. */
static void test_order_and_content(void **state)
{
    (void)state;
    enum { NCH = 3, N = 400 };
    eddy__dp_t *a = mkdp("tm-a", SEG, 2, 4, NULL);
    eddy__dp_t *b = mkdp("tm-b", SEG, 2, 4, NULL);
    atomic_int cancel;
    atomic_init(&cancel, 0);
    eddy_error_t err;
    eddy__pool_t *pa = eddy__pool_new(SEG, 64), *pb = eddy__pool_new(SEG, 64);
    eddy__gate_t *gb = eddy__gate_new(NCH, 1, &cancel);
    eddy__gate_t *ga = eddy__gate_new(1, 1, &cancel);
    eddy__dp_out_t *out[NCH + 1];
    pusher_t pu[NCH + 1];
    for (int c = 0; c < NCH; c++) {
        TU_ASSERT_OK(eddy__dp_add_input(b, cid(TAG, 5, (uint32_t)c),
                                        eddy__dp_address(a), &gb->g_chans[c],
                                        &err),
                     &err);
        out[c] = eddy__dp_add_output(a, cid(TAG, 5, (uint32_t)c),
                                     eddy__dp_address(b), &cancel, &err);
        assert_non_null(out[c]);
    }
    /* The reverse direction: b sends to a on the same connection. */
    TU_ASSERT_OK(eddy__dp_add_input(a, cid(TAG, 6, 0), eddy__dp_address(b),
                                    &ga->g_chans[0], &err),
                 &err);
    out[NCH] = eddy__dp_add_output(b, cid(TAG, 6, 0), eddy__dp_address(a),
                                   &cancel, &err);
    assert_non_null(out[NCH]);
    for (int c = 0; c < NCH; c++) {
        pusher_start(&pu[c], out[c], pa, (uint32_t)c, N, SEG);
    }
    pusher_start(&pu[NCH], out[NCH], pb, 0, N, SEG);

    consumer_t rev;
    consumer_start(&rev, ga, N, SEG);
    uint32_t next[NCH] = {0}, sc[NCH] = {0, 1, 2};
    consume_n(gb, NCH * N, next, sc, SEG);
    tu_join(rev.co_th, 20000, "consumer");
    assert_string_equal(rev.co_err, "");
    for (int c = 0; c <= NCH; c++) {
        tu_join(pu[c].pu_th, 5000, "pusher");
        assert_int_equal(atomic_load(&pu[c].pu_rc), 0);
        assert_int_equal(atomic_load(&pu[c].pu_done), N);
    }
    for (int c = 0; c < NCH; c++) {
        assert_int_equal(next[c], N);
    }
    assert_int_equal(eddy__gate_queued(gb, 0), 0);

    out_arg_t oa = {a, NCH * N}, ob = {b, N};
    assert_true(tu_wait_until(buffers_out_reached, &oa, 5000));
    assert_true(tu_wait_until(buffers_out_reached, &ob, 5000));
    eddy__dp_stats_t sa, sb;
    eddy__dp_stats(a, &sa);
    eddy__dp_stats(b, &sb);
    assert_int_equal(sa.ds_connections, 1);
    assert_int_equal(sb.ds_connections, 1);
    assert_int_equal(sa.ds_buffers_out, NCH * N);
    assert_int_equal(sb.ds_buffers_in, NCH * N);
    assert_int_equal(sb.ds_buffers_out, N);
    assert_int_equal(sa.ds_buffers_in, N);
    assert_true(sa.ds_bytes_out > (uint64_t)NCH * N * 8);
    assert_pool_bounded(a);
    assert_pool_bounded(b);

    eddy__dp_release_job(a, TAG);
    eddy__dp_release_job(b, TAG);
    eddy__gate_destroy(ga);
    eddy__gate_destroy(gb);
    eddy__dp_credit_stats_t cs;
    eddy__dp_credit_stats(b, &cs);
    assert_int_equal(cs.cs_inputs, 0);
    assert_int_equal(cs.cs_outputs, 0);
    eddy__dp_destroy(a);
    eddy__dp_destroy(b);
    eddy__pool_destroy(pa);
    eddy__pool_destroy(pb);
}

/* The consumer's TaskManager registers its input (and grants credits) long
 * before the producer's registers the output: the credits wait for it. */
static void test_input_before_output(void **state)
{
    (void)state;
    eddy__dp_t *a = mkdp("tm-a", SEG, 2, 0, NULL);
    eddy__dp_t *b = mkdp("tm-b", SEG, 2, 0, NULL);
    atomic_int cancel;
    atomic_init(&cancel, 0);
    eddy_error_t err;
    eddy__pool_t *pool = eddy__pool_new(SEG, 8);
    eddy__gate_t *g = eddy__gate_new(1, 1, &cancel);
    TU_ASSERT_OK(eddy__dp_add_input(b, cid(TAG, 0, 0), eddy__dp_address(a),
                                    g->g_chans, &err),
                 &err);
    conn_arg_t ca = {a, 1};
    assert_true(tu_wait_until(has_conns, &ca, 5000));
    tu_sleep_us(20000); /* the credits have long arrived at a */
    eddy__dp_out_t *o = eddy__dp_add_output(a, cid(TAG, 0, 0),
                                            eddy__dp_address(b), &cancel, &err);
    /* Two credits: two buffers go out, no further push on top of the
     * queue allowance has to wait. */
    pusher_t pu;
    pusher_start(&pu, o, pool, 0, 4, SEG);
    queued_arg_t qa = {g, 0, 2};
    assert_true(tu_wait_until(queued_is, &qa, 5000));
    tu_join(pu.pu_th, 5000, "pusher");
    assert_int_equal(atomic_load(&pu.pu_rc), 0);
    assert_int_equal(eddy__dp_out_wait_ns(o), 0);
    uint32_t next = 0, sc = 0;
    consume_n(g, 4, &next, &sc, SEG);

    /* Credits for a released job are not parked for a later output. */
    eddy__dp_release_job(a, TAG);
    eddy__dp_release_job(b, TAG);
    eddy__gate_destroy(g);
    g = eddy__gate_new(1, 1, &cancel);
    TU_ASSERT_OK(eddy__dp_add_input(b, cid(TAG, 0, 1), eddy__dp_address(a),
                                    g->g_chans, &err),
                 &err);
    tu_sleep_us(20000);
    eddy__dp_out_t *late = eddy__dp_add_output(
        a, cid(TAG, 0, 1), eddy__dp_address(b), &cancel, &err);
    assert_non_null(late);
    eddy__buffer_t *buf = eddy__pool_get(pool);
    stamp(buf, 0, 0, SEG);
    assert_int_equal(eddy__dp_push(late, buf), 0); /* queued, no credit */
    tu_sleep_us(20000);
    assert_int_equal(eddy__gate_queued(g, 0), 0);

    eddy__dp_release_job(a, TAG);
    eddy__dp_release_job(b, TAG);
    eddy__gate_destroy(g);
    eddy__dp_destroy(a);
    eddy__dp_destroy(b);
    eddy__pool_destroy(pool);
}

/* Both TaskManagers dial each other at the same moment: exactly one
 * connection survives on each side, and no frame is lost. */
typedef struct dial_arg {
    eddy__dp_t *dl_dp;
    eddy__dp_t *dl_other;
    eddy__gate_t *dl_gate;
    atomic_int *dl_cancel;
    atomic_int *dl_go;
    eddy__dp_out_t *dl_out;
} dial_arg_t;

static void *dial_main(void *arg)
{
    dial_arg_t *d = arg;
    while (atomic_load(d->dl_go) == 0) {
    }
    eddy__dp_add_input(d->dl_dp, cid(TAG, 1, 0), eddy__dp_address(d->dl_other),
                       &d->dl_gate->g_chans[0], NULL);
    d->dl_out =
        eddy__dp_add_output(d->dl_dp, cid(TAG + 1, 1, 0),
                            eddy__dp_address(d->dl_other), d->dl_cancel, NULL);
    return NULL;
}

static void test_simultaneous_connect(void **state)
{
    (void)state;
    enum { ROUNDS = 12, N = 20 };
    for (int r = 0; r < ROUNDS; r++) {
        /* Alternate which side has the smaller id. */
        eddy__dp_t *a = mkdp(r % 2 ? "tm-x" : "tm-a", SEG, 2, 2, NULL);
        eddy__dp_t *b = mkdp(r % 2 ? "tm-b" : "tm-y", SEG, 2, 2, NULL);
        atomic_int cancel, go;
        atomic_init(&cancel, 0);
        atomic_init(&go, 0);
        eddy__pool_t *pool = eddy__pool_new(SEG, 16);
        eddy__gate_t *ga = eddy__gate_new(1, 1, &cancel);
        eddy__gate_t *gb = eddy__gate_new(1, 1, &cancel);
        /* a's input TAG/1/0 is fed by b's output TAG/1/0, and so on: each
         * thread adds its input (tag TAG) and its output (tag TAG+1). */
        dial_arg_t da = {a, b, ga, &cancel, &go, NULL};
        dial_arg_t db = {b, a, gb, &cancel, &go, NULL};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, dial_main, &da);
        pthread_create(&tb, NULL, dial_main, &db);
        atomic_store(&go, 1);
        tu_join(ta, 5000, "dial a");
        tu_join(tb, 5000, "dial b");
        assert_non_null(da.dl_out);
        assert_non_null(db.dl_out);
        /* Output TAG+1/1/0 of a feeds nobody; send on the inputs' ids. */
        eddy_error_t err;
        eddy__dp_out_t *oa = eddy__dp_add_output(
            a, cid(TAG, 1, 0), eddy__dp_address(b), &cancel, &err);
        eddy__dp_out_t *ob = eddy__dp_add_output(
            b, cid(TAG, 1, 0), eddy__dp_address(a), &cancel, &err);
        assert_non_null(oa);
        assert_non_null(ob);
        pusher_t pa, pb;
        pusher_start(&pa, oa, pool, 0, N, SEG);
        pusher_start(&pb, ob, pool, 0, N, SEG);
        uint32_t na = 0, nb = 0, sc = 0;
        consume_n(ga, N, &na, &sc, SEG);
        consume_n(gb, N, &nb, &sc, SEG);
        tu_join(pa.pu_th, 5000, "pusher a");
        tu_join(pb.pu_th, 5000, "pusher b");
        assert_int_equal(atomic_load(&pa.pu_rc), 0);
        assert_int_equal(atomic_load(&pb.pu_rc), 0);
        conn_arg_t ca = {a, 1}, cb = {b, 1};
        assert_true(tu_wait_until(has_conns, &ca, 5000));
        assert_true(tu_wait_until(has_conns, &cb, 5000));
        eddy__dp_release_job(a, TAG);
        eddy__dp_release_job(a, TAG + 1);
        eddy__dp_release_job(b, TAG);
        eddy__dp_release_job(b, TAG + 1);
        eddy__gate_destroy(ga);
        eddy__gate_destroy(gb);
        eddy__dp_destroy(a);
        eddy__dp_destroy(b);
        eddy__pool_destroy(pool);
    }
}

/*
 * The pairing rule, made deterministic with a fake peer: the data plane
 * dials the fake, the fake dials back before answering. The connection
 * dialed by the smaller id must be the one kept, on both decisions.
 */
static void pairing_case(bool fake_smaller)
{
    const char *fake_id = fake_smaller ? "tm-0" : "tm-z";
    eddy__dp_t *a = mkdp("tm-m", SEG, 2, 2, NULL);
    char faddr[64];
    int lfd = raw_listen(faddr, sizeof(faddr));
    atomic_int cancel;
    atomic_init(&cancel, 0);
    eddy_error_t err;
    eddy__pool_t *pool = eddy__pool_new(SEG, 4);
    eddy__dp_out_t *o =
        eddy__dp_add_output(a, cid(TAG, 3, 1), faddr, &cancel, &err);
    assert_non_null(o);

    /* a dials us: read its HELLO, do not answer yet. */
    int c_out = raw_accept(lfd);
    eddy__dp_hdr_t h;
    unsigned char pay[SEG];
    assert_int_equal(raw_frame(c_out, &h, pay, sizeof(pay)), 0);
    assert_int_equal(h.h_type, EDDY__DP_HELLO);
    /* We dial a at the same time. */
    int c_in = raw_connect(eddy__dp_address(a));
    raw_hello(c_in, EDDY__DP_HELLO, fake_id, faddr, EDDY__DP_VERSION);
    int keep;
    if (fake_smaller) {
        /* Ours (fake-dialed) wins: a accepts it and drops its own. */
        assert_int_equal(raw_frame(c_in, &h, pay, sizeof(pay)), 0);
        assert_int_equal(h.h_type, EDDY__DP_HELLO_ACK);
        assert_true(raw_closed(c_out));
        keep = c_in;
    } else {
        /* a's wins: it rejects ours as a duplicate; we accept a's. */
        assert_int_equal(raw_frame(c_in, &h, pay, sizeof(pay)), 0);
        assert_int_equal(h.h_type, EDDY__DP_REJECT);
        assert_int_equal(h.h_arg, EDDY__DP_REJECT_DUPLICATE);
        assert_true(raw_closed(c_in));
        raw_hello(c_out, EDDY__DP_HELLO_ACK, fake_id, faddr, EDDY__DP_VERSION);
        keep = c_out;
    }
    conn_arg_t ca = {a, 1};
    assert_true(tu_wait_until(has_conns, &ca, 5000));
    /* The kept connection carries data: grant one credit, get the buffer. */
    raw_ctl(keep, EDDY__DP_CREDIT, cid(TAG, 3, 1), 1);
    eddy__buffer_t *b = eddy__pool_get(pool);
    stamp(b, 1, 0, SEG);
    assert_int_equal(eddy__dp_push(o, b), 0);
    /* If the push ran before our credit arrived it announced its backlog
     * first; then comes the buffer. */
    assert_int_equal(raw_frame(keep, &h, pay, sizeof(pay)), 0);
    if (h.h_type == EDDY__DP_BACKLOG) {
        assert_int_equal(h.h_arg, 1);
        assert_int_equal(raw_frame(keep, &h, pay, sizeof(pay)), 0);
    }
    assert_int_equal(h.h_type, EDDY__DP_DATA);
    assert_true(h.h_id.ci_job == TAG && h.h_id.ci_task == 3 &&
                h.h_id.ci_chan == 1);
    assert_int_equal(h.h_arg, 0); /* backlog */
    assert_int_equal(h.h_len, stamp_len(1, 0, SEG));
    eddy__buffer_t *chk = eddy__pool_get(pool);
    memcpy(chk->buf_data, pay, h.h_len);
    chk->buf_len = h.h_len;
    assert_null(stamp_check(chk, 1, 0, SEG));
    eddy__buffer_release(chk);
    eddy__dp_stats_t st;
    eddy__dp_stats(a, &st);
    assert_int_equal(st.ds_connections, 1);

    close(keep);
    close(lfd);
    eddy__dp_release_job(a, TAG);
    eddy__dp_remove_output(a, o);
    eddy__dp_destroy(a);
    eddy__pool_destroy(pool);
}

static void test_pairing_rule(void **state)
{
    (void)state;
    pairing_case(false);
    pairing_case(true);
}

/* With no credit left, and do_exclusive buffers queued behind, the sender
 * blocks, and its wait is counted. */
static void test_credit_blocks_sender(void **state)
{
    (void)state;
    eddy__dp_t *a = mkdp("tm-a", SEG, 2, 0, NULL);
    eddy__dp_t *b = mkdp("tm-b", SEG, 2, 0, NULL);
    atomic_int cancel;
    atomic_init(&cancel, 0);
    eddy_error_t err;
    eddy__pool_t *pool = eddy__pool_new(SEG, 8);
    eddy__gate_t *g = eddy__gate_new(1, 1, &cancel);
    TU_ASSERT_OK(eddy__dp_add_input(b, cid(TAG, 0, 0), eddy__dp_address(a),
                                    g->g_chans, &err),
                 &err);
    eddy__dp_out_t *o = eddy__dp_add_output(a, cid(TAG, 0, 0),
                                            eddy__dp_address(b), &cancel, &err);
    pusher_t pu;
    pusher_start(&pu, o, pool, 0, 8, SEG);
    /* Two exclusive credits: two buffers arrive, two more wait in the
     * output's queue, the fifth push waits. */
    queued_arg_t qa = {g, 0, 2};
    assert_true(tu_wait_until(queued_is, &qa, 5000));
    blocked_arg_t ba = {&pu, 4};
    assert_true(tu_wait_until(pusher_blocked, &ba, 5000));
    uint64_t w1 = eddy__dp_out_wait_ns(o);
    tu_sleep_us(30000);
    uint64_t w2 = eddy__dp_out_wait_ns(o);
    assert_true(w2 >= w1 + 20000000u); /* grows while blocked */
    assert_int_equal(atomic_load(&pu.pu_done), 4);
    assert_int_equal(eddy__gate_queued(g, 0), 2);

    /* Each pop returns one credit: exactly one more buffer gets through,
     * and the producer gets one push further. */
    uint32_t next = 0, sc = 0;
    consume_n(g, 1, &next, &sc, SEG);
    blocked_arg_t ba5 = {&pu, 5};
    assert_true(tu_wait_until(pusher_blocked, &ba5, 5000));
    assert_true(tu_wait_until(queued_is, &qa, 5000));
    tu_sleep_us(10000);
    assert_int_equal(atomic_load(&pu.pu_done), 5);
    assert_int_equal(eddy__gate_queued(g, 0), 2);
    consume_n(g, 7, &next, &sc, SEG);
    assert_true(tu_wait_until(pusher_finished, &pu, 5000));
    tu_join(pu.pu_th, 5000, "pusher");
    assert_int_equal(atomic_load(&pu.pu_rc), 0);
    uint64_t w3 = eddy__dp_out_wait_ns(o);
    assert_true(w3 >= w2);
    tu_sleep_us(5000);
    assert_int_equal(eddy__dp_out_wait_ns(o), w3); /* not waiting now */

    eddy__dp_release_job(a, TAG);
    eddy__dp_release_job(b, TAG);
    eddy__gate_destroy(g);
    eddy__dp_destroy(a);
    eddy__dp_destroy(b);
    eddy__pool_destroy(pool);
}

/* One consumer never pops; another channel on the same connection keeps
 * flowing, and the stalled one holds at most exclusive + floating. */
static void test_stalled_consumer_isolated(void **state)
{
    (void)state;
    enum { EXCL = 2, FLT = 4, N = 600 };
    eddy__dp_t *a = mkdp("tm-a", SEG, EXCL, FLT, NULL);
    eddy__dp_t *b = mkdp("tm-b", SEG, EXCL, FLT, NULL);
    atomic_int cancel, cancel1;
    atomic_init(&cancel, 0);
    atomic_init(&cancel1, 0);
    eddy_error_t err;
    eddy__pool_t *pool = eddy__pool_new(SEG, 32);
    eddy__gate_t *g1 = eddy__gate_new(1, 1, &cancel); /* stalled */
    eddy__gate_t *g2 = eddy__gate_new(1, 1, &cancel); /* flowing */
    TU_ASSERT_OK(eddy__dp_add_input(b, cid(TAG, 1, 0), eddy__dp_address(a),
                                    g1->g_chans, &err),
                 &err);
    TU_ASSERT_OK(eddy__dp_add_input(b, cid(TAG, 2, 0), eddy__dp_address(a),
                                    g2->g_chans, &err),
                 &err);
    eddy__dp_out_t *o1 = eddy__dp_add_output(
        a, cid(TAG, 1, 0), eddy__dp_address(b), &cancel1, &err);
    eddy__dp_out_t *o2 = eddy__dp_add_output(
        a, cid(TAG, 2, 0), eddy__dp_address(b), &cancel, &err);
    pusher_t p1, p2;
    pusher_start(&p1, o1, pool, 0, 100, SEG);
    /* The stalled channel fills: its exclusive credits, then every floating
     * credit (its sender keeps announcing backlog). */
    queued_arg_t qa = {g1, 0, EXCL + FLT};
    assert_true(tu_wait_until(queued_is, &qa, 5000));
    blocked_arg_t ba = {&p1, EXCL + FLT + EXCL}; /* + its sender queue */
    assert_true(tu_wait_until(pusher_blocked, &ba, 5000));
    float_arg_t fa = {b, 0};
    assert_true(floating_is(&fa));

    pusher_start(&p2, o2, pool, 0, N, SEG);
    consumer_t co;
    consumer_start(&co, g2, N, SEG);
    tu_join(co.co_th, 20000, "consumer");
    assert_string_equal(co.co_err, "");
    assert_int_equal(atomic_load(&co.co_got), N);
    tu_join(p2.pu_th, 5000, "pusher 2");
    assert_int_equal(atomic_load(&p2.pu_rc), 0);
    /* The flowing channel only ever had its exclusive credits. */
    assert_true(co.co_max_queued <= EXCL);
    /* Meanwhile the stalled one did not move. */
    assert_int_equal(eddy__gate_queued(g1, 0), EXCL + FLT);
    assert_int_equal(atomic_load(&p1.pu_done), EXCL + FLT + EXCL);
    assert_false(atomic_load(&p1.pu_finished));
    assert_pool_bounded(b);

    /* Cancelling the stalled producer wakes it. */
    atomic_store(&cancel1, 1);
    eddy__dp_wake(a);
    tu_join(p1.pu_th, 5000, "pusher 1");
    assert_int_equal(atomic_load(&p1.pu_rc), EDDY_ERR_CANCELED);

    eddy__dp_release_job(a, TAG);
    eddy__dp_release_job(b, TAG);
    eddy__gate_destroy(g1);
    eddy__gate_destroy(g2);
    eddy__dp_destroy(a);
    eddy__dp_destroy(b);
    eddy__pool_destroy(pool);
}

/* Floating credits go to the backlogged channel and come back to the
 * budget once it is drained. */
static void test_floating_lent_and_returned(void **state)
{
    (void)state;
    enum { EXCL = 1, FLT = 3, N = 40 };
    eddy__dp_t *a = mkdp("tm-a", SEG, EXCL, FLT, NULL);
    eddy__dp_t *b = mkdp("tm-b", SEG, EXCL, FLT, NULL);
    atomic_int cancel;
    atomic_init(&cancel, 0);
    eddy_error_t err;
    eddy__pool_t *pool = eddy__pool_new(SEG, 16);
    eddy__gate_t *g = eddy__gate_new(1, 1, &cancel);
    TU_ASSERT_OK(eddy__dp_add_input(b, cid(TAG, 0, 0), eddy__dp_address(a),
                                    g->g_chans, &err),
                 &err);
    eddy__dp_out_t *o = eddy__dp_add_output(a, cid(TAG, 0, 0),
                                            eddy__dp_address(b), &cancel, &err);
    float_arg_t full = {b, FLT}, none = {b, 0};
    assert_true(floating_is(&full));
    pusher_t pu;
    pusher_start(&pu, o, pool, 0, N, SEG);
    queued_arg_t qa = {g, 0, EXCL + FLT};
    assert_true(tu_wait_until(queued_is, &qa, 5000));
    assert_true(tu_wait_until(floating_is, &none, 5000));
    blocked_arg_t ba = {&pu, EXCL + FLT + EXCL};
    assert_true(tu_wait_until(pusher_blocked, &ba, 5000));
    eddy__dp_credit_stats_t cs;
    eddy__dp_credit_stats(b, &cs);
    /* do_floating + (exclusive + 1) per input. */
    assert_int_equal(cs.cs_pool_max, FLT + EXCL + 1);
    assert_pool_bounded(b);

    /* Drain slowly; the queue never holds more than exclusive + floating. */
    uint32_t next = 0, sc = 0;
    for (int i = 0; i < N; i++) {
        assert_true(eddy__gate_queued(g, 0) <= EXCL + FLT);
        assert_pool_bounded(b);
        consume_n(g, 1, &next, &sc, SEG);
    }
    tu_join(pu.pu_th, 5000, "pusher");
    assert_int_equal(atomic_load(&pu.pu_rc), 0);
    /* No backlog any more: every floating credit is back in the budget. */
    assert_true(tu_wait_until(floating_is, &full, 5000));
    assert_int_equal(eddy__gate_queued(g, 0), 0);

    eddy__dp_release_job(a, TAG);
    eddy__dp_release_job(b, TAG);
    eddy__dp_credit_stats(b, &cs);
    assert_int_equal(cs.cs_pool_max, FLT);
    assert_int_equal(cs.cs_floating_free, FLT);
    eddy__gate_destroy(g);
    eddy__dp_destroy(a);
    eddy__dp_destroy(b);
    eddy__pool_destroy(pool);
}

/* release_job: a blocked sender wakes with EDDY_ERR_CANCELED, later pushes
 * too, late data for released inputs is dropped, and another job on the
 * same connection is untouched. */
static void test_release_job(void **state)
{
    (void)state;
    const uint64_t T1 = 0xA1, T2 = 0xA2;
    eddy__dp_t *a = mkdp("tm-a", SEG, 2, 0, NULL);
    eddy__dp_t *b = mkdp("tm-b", SEG, 2, 0, NULL);
    atomic_int cancel;
    atomic_init(&cancel, 0);
    eddy_error_t err;
    eddy__pool_t *pool = eddy__pool_new(SEG, 16);
    eddy__gate_t *g1 = eddy__gate_new(2, 1, &cancel);
    eddy__gate_t *g2 = eddy__gate_new(1, 1, &cancel);
    TU_ASSERT_OK(eddy__dp_add_input(b, cid(T1, 0, 0), eddy__dp_address(a),
                                    &g1->g_chans[0], &err),
                 &err);
    TU_ASSERT_OK(eddy__dp_add_input(b, cid(T1, 0, 1), eddy__dp_address(a),
                                    &g1->g_chans[1], &err),
                 &err);
    TU_ASSERT_OK(eddy__dp_add_input(b, cid(T2, 0, 0), eddy__dp_address(a),
                                    g2->g_chans, &err),
                 &err);
    eddy__dp_out_t *o1 = eddy__dp_add_output(
        a, cid(T1, 0, 0), eddy__dp_address(b), &cancel, &err);
    eddy__dp_out_t *o1b = eddy__dp_add_output(
        a, cid(T1, 0, 1), eddy__dp_address(b), &cancel, &err);
    eddy__dp_out_t *o2 = eddy__dp_add_output(
        a, cid(T2, 0, 0), eddy__dp_address(b), &cancel, &err);
    pusher_t pu;
    pusher_start(&pu, o1, pool, 0, 10, SEG);
    blocked_arg_t ba = {&pu, 4};
    assert_true(tu_wait_until(pusher_blocked, &ba, 5000));
    /* One buffer through o1b proves its credits arrived: it has one left
     * (the one its pop returns may or may not follow). */
    eddy__buffer_t *buf = eddy__pool_get(pool);
    stamp(buf, 1, 0, SEG);
    assert_int_equal(eddy__dp_push(o1b, buf), 0);
    uint32_t next1[2] = {0, 0}, sc1[2] = {0, 1};
    queued_arg_t q1 = {g1, 1, 1};
    assert_true(tu_wait_until(queued_is, &q1, 5000));
    eddy__gate_block(g1, 0); /* pop channel 1 only */
    consume_n(g1, 1, next1, sc1, SEG);
    eddy__gate_unblock(g1, 0);

    /* Receiver side released while its sender still holds credit: the
     * late buffer is read and dropped, not queued. */
    eddy__dp_credit_stats_t cs;
    eddy__dp_credit_stats(b, &cs);
    uint64_t dropped0 = cs.cs_dropped;
    eddy__dp_release_job(b, T1);
    buf = eddy__pool_get(pool);
    stamp(buf, 1, 1, SEG);
    assert_int_equal(eddy__dp_push(o1b, buf), 0);
    dropped_arg_t da = {b, dropped0 + 1};
    assert_true(tu_wait_until(dropped_reached, &da, 5000));
    assert_int_equal(eddy__gate_queued(g1, 1), 0);
    assert_int_equal(eddy__gate_queued(g1, 0), 2);

    /* Sender side released: the blocked push gives up, and so do later. */
    eddy__dp_release_job(a, T1);
    tu_join(pu.pu_th, 5000, "pusher");
    assert_int_equal(atomic_load(&pu.pu_rc), EDDY_ERR_CANCELED);
    buf = eddy__pool_get(pool);
    stamp(buf, 0, 99, SEG);
    assert_int_equal(eddy__dp_push(o1, buf), EDDY_ERR_CANCELED);
    assert_int_equal(eddy__dp_out_status(o1, &err), EDDY_ERR_CANCELED);
    TU_ASSERT_CONTAINS(err.msg, "released");
    /* Every buffer went back to the sender's pool. */
    assert_int_equal(eddy__pool_available(pool), 16);

    /* Job T2 on the same connection still flows. */
    pusher_t p2;
    pusher_start(&p2, o2, pool, 0, 50, SEG);
    uint32_t next = 0, sc = 0;
    consume_n(g2, 50, &next, &sc, SEG);
    tu_join(p2.pu_th, 5000, "pusher 2");
    assert_int_equal(atomic_load(&p2.pu_rc), 0);
    eddy__dp_stats_t st;
    eddy__dp_stats(a, &st);
    assert_int_equal(st.ds_connections, 1);

    eddy__dp_remove_output(a, o1);
    eddy__dp_remove_output(a, o1b);
    eddy__dp_release_job(a, T2);
    eddy__dp_release_job(b, T2);
    eddy__gate_destroy(g1);
    eddy__gate_destroy(g2);
    /* Memory follows the pool's limit down once the gates gave back. */
    eddy__dp_credit_stats(b, &cs);
    assert_int_equal(cs.cs_inputs, 0);
    assert_true(cs.cs_pool_allocated <= cs.cs_pool_max);
    assert_int_equal(cs.cs_pool_max, 1);
    eddy__dp_destroy(a);
    eddy__dp_destroy(b);
    eddy__pool_destroy(pool);
}

/* The receiver vanishes: its blocked sender fails with EDDY_ERR_IO, so do
 * later pushes, on_peer_lost names the peer; other peers are unaffected. */
static void test_peer_destroyed(void **state)
{
    (void)state;
    lost_rec_t rec;
    lost_init(&rec);
    eddy__dp_t *a = mkdp("tm-a", SEG, 2, 0, &rec);
    eddy__dp_t *b = mkdp("tm-b", SEG, 2, 0, NULL);
    eddy__dp_t *c = mkdp("tm-c", SEG, 2, 0, NULL);
    char baddr[128];
    snprintf(baddr, sizeof(baddr), "%s", eddy__dp_address(b));
    atomic_int cancel;
    atomic_init(&cancel, 0);
    eddy_error_t err;
    eddy__pool_t *pool = eddy__pool_new(SEG, 16);
    eddy__gate_t *gb = eddy__gate_new(1, 1, &cancel);
    eddy__gate_t *gc = eddy__gate_new(1, 1, &cancel);
    TU_ASSERT_OK(eddy__dp_add_input(b, cid(TAG, 0, 0), eddy__dp_address(a),
                                    gb->g_chans, &err),
                 &err);
    TU_ASSERT_OK(eddy__dp_add_input(c, cid(TAG, 1, 0), eddy__dp_address(a),
                                    gc->g_chans, &err),
                 &err);
    eddy__dp_out_t *ob =
        eddy__dp_add_output(a, cid(TAG, 0, 0), baddr, &cancel, &err);
    eddy__dp_out_t *oc = eddy__dp_add_output(
        a, cid(TAG, 1, 0), eddy__dp_address(c), &cancel, &err);
    pusher_t pu;
    pusher_start(&pu, ob, pool, 0, 10, SEG);
    blocked_arg_t ba = {&pu, 4};
    assert_true(tu_wait_until(pusher_blocked, &ba, 5000));
    conn_arg_t two = {a, 2}; /* to b and to c */
    assert_true(tu_wait_until(has_conns, &two, 5000));

    /* TaskManager b goes away. */
    eddy__dp_release_job(b, TAG);
    eddy__gate_destroy(gb);
    eddy__dp_destroy(b);

    tu_join(pu.pu_th, 5000, "pusher");
    assert_int_equal(atomic_load(&pu.pu_rc), EDDY_ERR_IO);
    wait_lost(&rec, 1);
    assert_string_equal(rec.lr_addr, baddr);
    char want[200];
    snprintf(want, sizeof(want), "connection to TaskManager %s lost", baddr);
    TU_ASSERT_CONTAINS(rec.lr_reason, want);
    eddy__buffer_t *buf = eddy__pool_get(pool);
    stamp(buf, 0, 0, SEG);
    assert_int_equal(eddy__dp_push(ob, buf), EDDY_ERR_IO);
    assert_int_equal(eddy__dp_out_status(ob, &err), EDDY_ERR_IO);
    TU_ASSERT_CONTAINS(err.msg, want);
    assert_int_equal(eddy__pool_available(pool), 16);

    /* a keeps working with c. */
    pusher_t pc;
    pusher_start(&pc, oc, pool, 0, 30, SEG);
    uint32_t next = 0, sc = 0;
    consume_n(gc, 30, &next, &sc, SEG);
    tu_join(pc.pu_th, 5000, "pusher c");
    assert_int_equal(atomic_load(&pc.pu_rc), 0);
    conn_arg_t one = {a, 1};
    assert_true(tu_wait_until(has_conns, &one, 5000));

    /* A connect to a port nobody listens on fails the same way. */
    int lfd;
    char dead[64];
    lfd = raw_listen(dead, sizeof(dead));
    close(lfd);
    eddy__dp_out_t *od =
        eddy__dp_add_output(a, cid(TAG, 2, 0), dead, &cancel, &err);
    /* Pushes queue (up to do_exclusive without credit), then fail once the
     * connect has failed. */
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        buf = eddy__pool_get(pool);
        stamp(buf, 0, (uint32_t)i, SEG);
        rc = eddy__dp_push(od, buf);
    }
    assert_int_equal(rc, EDDY_ERR_IO);
    assert_int_equal(eddy__dp_out_status(od, &err), EDDY_ERR_IO);
    TU_ASSERT_CONTAINS(err.msg, "cannot connect to TaskManager");
    wait_lost(&rec, 2);
    assert_int_equal(eddy__pool_available(pool), 16); /* queue dropped */

    eddy__dp_release_job(a, TAG);
    eddy__dp_release_job(c, TAG);
    eddy__gate_destroy(gc);
    eddy__dp_destroy(a);
    eddy__dp_destroy(c);
    eddy__pool_destroy(pool);
}

/* Garbage, a wrong protocol version and a credit-breaking peer each cost
 * one connection; the data plane keeps serving the others. */
static void test_bad_peers(void **state)
{
    (void)state;
    lost_rec_t rec;
    lost_init(&rec);
    eddy__dp_t *a = mkdp("tm-a", SEG, 2, 2, &rec);
    eddy__dp_t *b = mkdp("tm-b", SEG, 2, 2, NULL);
    atomic_int cancel;
    atomic_init(&cancel, 0);
    eddy_error_t err;

    /* 1. An HTTP request on the data port: dropped, nobody to report. */
    int fd = raw_connect(eddy__dp_address(a));
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_write(fd, http, strlen(http));
    assert_true(raw_closed(fd));
    close(fd);
    /* Random bytes, including a huge length in a would-be header. */
    fd = raw_connect(eddy__dp_address(a));
    unsigned char junk[256];
    uint64_t seed = 42;
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (unsigned char)tu_rand(&seed);
    }
    junk[0] = EDDY__DP_HELLO;
    junk[1] = junk[2] = junk[3] = 0;
    junk[4] = junk[5] = junk[6] = junk[7] = 0xff;
    raw_write(fd, junk, sizeof(junk));
    assert_true(raw_closed(fd));
    close(fd);
    assert_int_equal(lost_count(&rec), 0);

    /* 2. A HELLO with another protocol version: refused with a reason. */
    fd = raw_connect(eddy__dp_address(a));
    raw_hello(fd, EDDY__DP_HELLO, "tm-old", "127.0.0.1:1", 99);
    eddy__dp_hdr_t h;
    unsigned char pay[EDDY__DP_CTL_MAX + 1];
    assert_int_equal(raw_frame(fd, &h, pay, EDDY__DP_CTL_MAX), 0);
    assert_int_equal(h.h_type, EDDY__DP_REJECT);
    assert_int_equal(h.h_arg, EDDY__DP_REJECT_VERSION);
    pay[h.h_len] = '\0';
    TU_ASSERT_CONTAINS((char *)pay, "version 99");
    assert_true(raw_closed(fd));
    close(fd);
    wait_lost(&rec, 1);
    assert_string_equal(rec.lr_addr, "127.0.0.1:1");
    TU_ASSERT_CONTAINS(rec.lr_reason, "protocol version 99");

    /* 3. A peer that sends DATA without credit: protocol error. */
    fd = raw_connect(eddy__dp_address(a));
    raw_hello(fd, EDDY__DP_HELLO, "tm-evil", "127.0.0.1:2", EDDY__DP_VERSION);
    assert_int_equal(raw_frame(fd, &h, pay, EDDY__DP_CTL_MAX), 0);
    assert_int_equal(h.h_type, EDDY__DP_HELLO_ACK);
    eddy__gate_t *ge = eddy__gate_new(1, 1, &cancel);
    TU_ASSERT_OK(
        eddy__dp_add_input(a, cid(TAG, 9, 0), "127.0.0.1:2", ge->g_chans, &err),
        &err);
    /* The input's two exclusive credits arrive; we send three buffers. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(raw_frame(fd, &h, pay, EDDY__DP_CTL_MAX), 0);
        if (h.h_type == EDDY__DP_CREDIT && h.h_arg == 2) {
            break;
        }
    }
    assert_int_equal(h.h_type, EDDY__DP_CREDIT);
    unsigned char frame[EDDY__DP_HDR_SIZE + 16];
    eddy__dp_hdr_t dh = {EDDY__DP_DATA, 16, 0, cid(TAG, 9, 0)};
    eddy__dp_hdr_encode(frame, &dh);
    memset(frame + EDDY__DP_HDR_SIZE, 0xab, 16);
    for (int i = 0; i < 3; i++) {
        send(fd, frame, sizeof(frame), MSG_NOSIGNAL);
    }
    assert_true(raw_closed(fd));
    close(fd);
    wait_lost(&rec, 2);
    TU_ASSERT_CONTAINS(rec.lr_reason,
                       "connection to TaskManager 127.0.0.1:2 lost: "
                       "protocol error: DATA for channel");
    TU_ASSERT_CONTAINS(rec.lr_reason, "without credit");
    /* The two buffers sent against credit were delivered intact. */
    assert_int_equal(eddy__gate_queued(ge, 0), 2);

    /* 4. A payload longer than the segment size. */
    fd = raw_connect(eddy__dp_address(a));
    raw_hello(fd, EDDY__DP_HELLO, "tm-evil2", "127.0.0.1:3", EDDY__DP_VERSION);
    assert_int_equal(raw_frame(fd, &h, pay, EDDY__DP_CTL_MAX), 0);
    dh.h_len = SEG + 1;
    eddy__dp_hdr_encode(frame, &dh);
    raw_write(fd, frame, EDDY__DP_HDR_SIZE);
    assert_true(raw_closed(fd));
    close(fd);
    wait_lost(&rec, 3);
    TU_ASSERT_CONTAINS(rec.lr_reason, "the segment size is 4096");

    /* a still works with a real peer. */
    eddy__pool_t *pool = eddy__pool_new(SEG, 8);
    eddy__gate_t *g = eddy__gate_new(1, 1, &cancel);
    TU_ASSERT_OK(eddy__dp_add_input(b, cid(TAG, 1, 0), eddy__dp_address(a),
                                    g->g_chans, &err),
                 &err);
    eddy__dp_out_t *o = eddy__dp_add_output(a, cid(TAG, 1, 0),
                                            eddy__dp_address(b), &cancel, &err);
    pusher_t pu;
    pusher_start(&pu, o, pool, 0, 20, SEG);
    uint32_t next = 0, sc = 0;
    consume_n(g, 20, &next, &sc, SEG);
    tu_join(pu.pu_th, 5000, "pusher");
    assert_int_equal(atomic_load(&pu.pu_rc), 0);
    assert_int_equal(lost_count(&rec), 3);

    eddy__dp_release_job(a, TAG);
    eddy__dp_release_job(b, TAG);
    eddy__gate_destroy(g);
    eddy__gate_destroy(ge);
    eddy__dp_destroy(a);
    eddy__dp_destroy(b);
    eddy__pool_destroy(pool);
}

/* In tests a data plane may feed its own gates over loopback. */
static void test_self_connection(void **state)
{
    (void)state;
    eddy__dp_t *a = mkdp("tm-a", SEG, 2, 2, NULL);
    atomic_int cancel;
    atomic_init(&cancel, 0);
    eddy_error_t err;
    eddy__pool_t *pool = eddy__pool_new(SEG, 8);
    eddy__gate_t *g = eddy__gate_new(1, 1, &cancel);
    TU_ASSERT_OK(eddy__dp_add_input(a, cid(TAG, 0, 0), eddy__dp_address(a),
                                    g->g_chans, &err),
                 &err);
    eddy__dp_out_t *o = eddy__dp_add_output(a, cid(TAG, 0, 0),
                                            eddy__dp_address(a), &cancel, &err);
    pusher_t pu;
    pusher_start(&pu, o, pool, 0, 100, SEG);
    uint32_t next = 0, sc = 0;
    consume_n(g, 100, &next, &sc, SEG);
    tu_join(pu.pu_th, 5000, "pusher");
    assert_int_equal(atomic_load(&pu.pu_rc), 0);
    eddy__dp_stats_t st;
    eddy__dp_stats(a, &st);
    assert_int_equal(st.ds_connections, 2); /* both ends are ours */
    eddy__dp_release_job(a, TAG);
    eddy__gate_destroy(g);
    eddy__dp_destroy(a);
    eddy__pool_destroy(pool);
}

/* Many channels, random consumer pace: the receive pool never exceeds its
 * limit and no channel queue exceeds exclusive + floating. */
typedef struct slow_arg {
    eddy__gate_t *sl_g;
    eddy__dp_t *sl_dp;
    int sl_n;
    int sl_nch;
    int sl_limit;
    uint32_t sl_next[8];
    char sl_err[200];
} slow_arg_t;

static void *slow_main(void *arg)
{
    slow_arg_t *s = arg;
    uint64_t seed = 7;
    uint64_t deadline =
        eddy__now_ns() + (uint64_t)tu_timeout_ms(15000) * 1000000u;
    for (int i = 0; i < s->sl_n; i++) {
        for (int c = 0; c < s->sl_nch; c++) {
            if (eddy__gate_queued(s->sl_g, c) > s->sl_limit) {
                snprintf(s->sl_err, sizeof(s->sl_err),
                         "channel %d holds %d > %d", c,
                         eddy__gate_queued(s->sl_g, c), s->sl_limit);
                return NULL;
            }
        }
        eddy__dp_credit_stats_t cs;
        eddy__dp_credit_stats(s->sl_dp, &cs);
        if (cs.cs_pool_allocated > cs.cs_pool_max) {
            snprintf(s->sl_err, sizeof(s->sl_err), "pool %zu > %zu",
                     cs.cs_pool_allocated, cs.cs_pool_max);
            return NULL;
        }
        if (tu_rand(&seed) % 8 == 0) {
            tu_sleep_us((long)(tu_rand(&seed) % 300));
        }
        int ch;
        eddy__buffer_t *b = eddy__gate_pop_until(s->sl_g, &ch, deadline);
        if (b == NULL) {
            snprintf(s->sl_err, sizeof(s->sl_err), "timeout at %d", i);
            return NULL;
        }
        const char *why = stamp_check(b, (uint32_t)ch, s->sl_next[ch], SEG);
        eddy__buffer_release(b);
        if (why != NULL) {
            snprintf(s->sl_err, sizeof(s->sl_err), "%s", why);
            return NULL;
        }
        s->sl_next[ch]++;
    }
    return NULL;
}

static void test_memory_bounded(void **state)
{
    (void)state;
    enum { NCH = 6, N = 300, EXCL = 2, FLT = 5 };
    eddy__dp_t *a = mkdp("tm-a", SEG, EXCL, FLT, NULL);
    eddy__dp_t *b = mkdp("tm-b", SEG, EXCL, FLT, NULL);
    atomic_int cancel;
    atomic_init(&cancel, 0);
    eddy_error_t err;
    eddy__pool_t *pool = eddy__pool_new(SEG, 64);
    eddy__gate_t *g = eddy__gate_new(NCH, 1, &cancel);
    eddy__dp_out_t *o[NCH];
    pusher_t pu[NCH];
    for (int c = 0; c < NCH; c++) {
        TU_ASSERT_OK(eddy__dp_add_input(b, cid(TAG, 0, (uint32_t)c),
                                        eddy__dp_address(a), &g->g_chans[c],
                                        &err),
                     &err);
        o[c] = eddy__dp_add_output(a, cid(TAG, 0, (uint32_t)c),
                                   eddy__dp_address(b), &cancel, &err);
    }
    slow_arg_t sa;
    memset(&sa, 0, sizeof(sa));
    sa.sl_g = g;
    sa.sl_dp = b;
    sa.sl_n = NCH * N;
    sa.sl_nch = NCH;
    sa.sl_limit = EXCL + FLT;
    pthread_t th;
    pthread_create(&th, NULL, slow_main, &sa);
    for (int c = 0; c < NCH; c++) {
        pusher_start(&pu[c], o[c], pool, (uint32_t)c, N, SEG);
    }
    tu_join(th, 30000, "slow consumer");
    for (int c = 0; c < NCH; c++) {
        atomic_store(&cancel, 1); /* only matters if the consumer failed */
    }
    eddy__dp_wake(a);
    for (int c = 0; c < NCH; c++) {
        tu_join(pu[c].pu_th, 5000, "pusher");
    }
    assert_string_equal(sa.sl_err, "");
    for (int c = 0; c < NCH; c++) {
        assert_int_equal(sa.sl_next[c], N);
        assert_int_equal(atomic_load(&pu[c].pu_rc), 0);
    }
    eddy__dp_credit_stats_t cs;
    eddy__dp_credit_stats(b, &cs);
    assert_int_equal(cs.cs_pool_max, FLT + NCH * (EXCL + 1));
    assert_true(cs.cs_pool_allocated <= cs.cs_pool_max);
    float_arg_t full = {b, FLT};
    assert_true(tu_wait_until(floating_is, &full, 5000));

    eddy__dp_release_job(a, TAG);
    eddy__dp_release_job(b, TAG);
    eddy__gate_destroy(g);
    eddy__dp_destroy(a);
    eddy__dp_destroy(b);
    eddy__pool_destroy(pool);
}

/* Throughput between two data planes in this process (32 KiB buffers). */
typedef struct bench_cons {
    eddy__gate_t *bc_g;
    uint64_t bc_n, bc_bytes;
    atomic_bool *bc_stop;
} bench_cons_t;

static void *bench_consume(void *arg)
{
    bench_cons_t *c = arg;
    for (;;) {
        int ch;
        uint64_t deadline = eddy__now_ns() + 200000000u;
        eddy__buffer_t *b = eddy__gate_pop_until(c->bc_g, &ch, deadline);
        if (b == NULL) {
            if (atomic_load(c->bc_stop)) {
                return NULL;
            }
            continue;
        }
        c->bc_n++;
        c->bc_bytes += b->buf_len;
        eddy__buffer_release(b);
    }
}

typedef struct bench_push {
    eddy__dp_out_t *bp_out;
    eddy__pool_t *bp_pool;
    uint64_t bp_until_ns;
    uint64_t bp_n;
} bench_push_t;

static void *bench_push(void *arg)
{
    bench_push_t *p = arg;
    while (eddy__now_ns() < p->bp_until_ns) {
        for (int k = 0; k < 64; k++) {
            eddy__buffer_t *b = eddy__pool_get(p->bp_pool);
            b->buf_len = b->buf_cap;
            if (eddy__dp_push(p->bp_out, b) != 0) {
                return NULL;
            }
            p->bp_n++;
        }
    }
    return NULL;
}

static void test_bench(void **state)
{
    (void)state;
    enum { MAXCH = 8, BSEG = 32 * 1024 };
    const char *env = getenv("EDDY_DP_BENCH");
    uint64_t ms = env != NULL && atoi(env) > 0 ? 3000 : 300;
    /* EDDY_DP_BENCH_ARGS="channels exclusive floating" to explore. */
    int NCH = 4, excl = 2, flt = 8;
    const char *args = getenv("EDDY_DP_BENCH_ARGS");
    if (args != NULL) {
        sscanf(args, "%d %d %d", &NCH, &excl, &flt);
        NCH = NCH < 1 ? 1 : NCH > MAXCH ? MAXCH : NCH;
    }
    eddy__dp_t *a = mkdp("tm-a", BSEG, excl, flt, NULL);
    eddy__dp_t *b = mkdp("tm-b", BSEG, excl, flt, NULL);
    atomic_int cancel;
    atomic_init(&cancel, 0);
    atomic_bool stop;
    atomic_init(&stop, false);
    eddy_error_t err;
    eddy__pool_t *pool = eddy__pool_new(BSEG, 64);
    eddy__gate_t *g = eddy__gate_new(NCH, 1, &cancel);
    bench_push_t bp[MAXCH];
    pthread_t tp[MAXCH], tc;
    bench_cons_t bc = {g, 0, 0, &stop};
    pthread_create(&tc, NULL, bench_consume, &bc);
    uint64_t t0 = eddy__now_ns();
    for (int c = 0; c < NCH; c++) {
        TU_ASSERT_OK(eddy__dp_add_input(b, cid(TAG, 0, (uint32_t)c),
                                        eddy__dp_address(a), &g->g_chans[c],
                                        &err),
                     &err);
        bp[c].bp_out = eddy__dp_add_output(a, cid(TAG, 0, (uint32_t)c),
                                           eddy__dp_address(b), &cancel, &err);
        bp[c].bp_pool = pool;
        bp[c].bp_until_ns = t0 + ms * 1000000u;
        bp[c].bp_n = 0;
        pthread_create(&tp[c], NULL, bench_push, &bp[c]);
    }
    uint64_t pushed = 0;
    for (int c = 0; c < NCH; c++) {
        tu_join(tp[c], 20000, "bench pusher");
        pushed += bp[c].bp_n;
    }
    /* Wait for the consumer to see everything. */
    uint64_t deadline = tu_now_ms() + (uint64_t)tu_timeout_ms(10000);
    eddy__dp_stats_t st;
    do {
        eddy__dp_stats(b, &st);
    } while (st.ds_buffers_in < pushed && tu_now_ms() < deadline);
    for (;;) {
        int q = 0;
        for (int c = 0; c < NCH; c++) {
            q += eddy__gate_queued(g, c);
        }
        if (q == 0 || tu_now_ms() >= deadline) {
            break;
        }
        tu_sleep_us(1000);
    }
    double secs = (double)(eddy__now_ns() - t0) / 1e9;
    atomic_store(&stop, true);
    tu_join(tc, 5000, "bench consumer");
    assert_int_equal(bc.bc_n, pushed);
    printf("dataplane bench: %d channels, 32 KiB buffers, exclusive %d, "
           "floating %d, %.2f s: %.0f buffers/s, %.0f MB/s\n",
           NCH, excl, flt, secs, (double)bc.bc_n / secs,
           (double)bc.bc_bytes / secs / 1e6);
    eddy__dp_release_job(a, TAG);
    eddy__dp_release_job(b, TAG);
    eddy__gate_destroy(g);
    eddy__dp_destroy(a);
    eddy__dp_destroy(b);
    eddy__pool_destroy(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_format),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_order_and_content),
        cmocka_unit_test(test_input_before_output),
        cmocka_unit_test(test_simultaneous_connect),
        cmocka_unit_test(test_pairing_rule),
        cmocka_unit_test(test_credit_blocks_sender),
        cmocka_unit_test(test_stalled_consumer_isolated),
        cmocka_unit_test(test_floating_lent_and_returned),
        cmocka_unit_test(test_release_job),
        cmocka_unit_test(test_peer_destroyed),
        cmocka_unit_test(test_bad_peers),
        cmocka_unit_test(test_self_connection),
        cmocka_unit_test(test_memory_bounded),
        cmocka_unit_test(test_bench),
    };
    if (getenv("EDDY_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("EDDY_TEST_FILTER"));
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
