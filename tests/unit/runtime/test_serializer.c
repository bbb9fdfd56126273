/*
 * eddy — unit tests for src/runtime/serializer.c: the element wire format,
 * the buffer writer (eddy__outchan_t) and the reader (eddy__deser_t).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The writer ships buffers through a capturing push function that collects
 * them in an array; the reader then consumes that array. Records are compared
 * byte for byte, including key presence and timestamps.
 */
#include "test_util.h"

#include "runtime/serializer.h"

/* ---- capture: an eddy__push_fn that keeps every shipped buffer ---- */

typedef struct capture {
    eddy__buffer_t **bufs;
    size_t n;
    size_t cap;
    size_t fail_at; /* push number that fails (0 = never) */
    size_t pushes;
} capture_t;

static int capture_push(void *target, eddy__buffer_t *buf)
{
    capture_t *c = target;
    c->pushes++;
    if (c->fail_at != 0 && c->pushes >= c->fail_at) {
        /* Contract of eddy__push_fn: on error the buffer is released. */
        eddy__buffer_release(buf);
        return EDDY_ERR_CANCELED;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->bufs = realloc(c->bufs, c->cap * sizeof(*c->bufs));
    }
    c->bufs[c->n++] = buf;
    return 0;
}

static void capture_release(capture_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        eddy__buffer_release(c->bufs[i]);
    }
    free(c->bufs);
    memset(c, 0, sizeof(*c));
}

/* ---- reading back ---- */

typedef struct got {
    int kind;
    bool has_key;
    unsigned char *key;
    size_t klen;
    unsigned char *val;
    size_t vlen;
    int64_t ts;
    int64_t value;
} got_t;

typedef struct got_list {
    got_t *v;
    size_t n;
    size_t cap;
} got_list_t;

static void got_add(got_list_t *gl, const eddy__element_t *el)
{
    if (gl->n == gl->cap) {
        gl->cap = gl->cap ? gl->cap * 2 : 16;
        gl->v = realloc(gl->v, gl->cap * sizeof(*gl->v));
    }
    got_t *g = &gl->v[gl->n++];
    memset(g, 0, sizeof(*g));
    g->kind = el->el_kind;
    if (el->el_kind == EDDY__EL_RECORD) {
        const eddy_record_t *r = &el->el_rec;
        g->has_key = r->key != NULL;
        g->klen = r->key_len;
        g->key = malloc(r->key_len + 1);
        if (r->key_len > 0) {
            memcpy(g->key, r->key, r->key_len);
        }
        g->vlen = r->value_len;
        g->val = malloc(r->value_len + 1);
        if (r->value_len > 0) {
            memcpy(g->val, r->value, r->value_len);
        }
        g->ts = r->ts;
    } else {
        g->value = el->el_value;
    }
}

static void got_free(got_list_t *gl)
{
    for (size_t i = 0; i < gl->n; i++) {
        free(gl->v[i].key);
        free(gl->v[i].val);
    }
    free(gl->v);
    memset(gl, 0, sizeof(*gl));
}

/*
 * Feeds buffers to a reader in order and collects every element. The reader
 * takes ownership of each buffer. Returns 0 or the reader's error.
 */
static int read_bufs(eddy__buffer_t **bufs, size_t n, got_list_t *out)
{
    eddy__deser_t ds;
    eddy__deser_init(&ds);
    eddy__element_t el;
    int rc = 0;
    size_t i = 0;
    for (; i < n && rc == 0; i++) {
        eddy__deser_push(&ds, bufs[i]);
        while ((rc = eddy__deser_next(&ds, &el)) > 0) {
            got_add(out, &el);
        }
    }
    /* On error, release what the reader was not given. */
    for (; i < n; i++) {
        eddy__buffer_release(bufs[i]);
    }
    eddy__deser_close(&ds);
    return rc;
}

static int read_capture(capture_t *c, got_list_t *out)
{
    int rc = read_bufs(c->bufs, c->n, out);
    free(c->bufs);
    memset(c, 0, sizeof(*c));
    return rc;
}

static void assert_record(const got_t *g, const eddy_record_t *r)
{
    assert_int_equal(g->kind, EDDY__EL_RECORD);
    assert_int_equal(g->has_key, r->key != NULL);
    TU_ASSERT_BYTES(g->key, g->klen, r->key, r->key_len);
    TU_ASSERT_BYTES(g->val, g->vlen, r->value, r->value_len);
    assert_true(g->ts == r->ts);
}

/* Writes records with a pool of `seg`-byte segments, flushes, reads them
 * back and compares. Returns the number of buffers shipped. */
static size_t roundtrip(const eddy_record_t *recs, size_t n, size_t seg)
{
    eddy__pool_t *pool = eddy__pool_new(seg, 1 << 20);
    capture_t cap = {0};
    eddy__outchan_t oc;
    eddy__outchan_init(&oc, pool, capture_push, &cap);
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(eddy__outchan_write(&oc, &recs[i]), 0);
        bytes += eddy__record_wire_size(&recs[i]);
    }
    assert_int_equal(eddy__outchan_flush(&oc), 0);
    assert_null(oc.oc_buf);
    assert_true(oc.oc_bytes == bytes);
    size_t nbufs = cap.n;
    size_t total = 0;
    for (size_t i = 0; i < cap.n; i++) {
        assert_true(cap.bufs[i]->buf_len > 0);
        assert_true(cap.bufs[i]->buf_len <= seg);
        total += cap.bufs[i]->buf_len;
    }
    assert_true(total == bytes);
    got_list_t gl = {0};
    assert_int_equal(read_capture(&cap, &gl), 0);
    assert_int_equal(gl.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_record(&gl.v[i], &recs[i]);
    }
    got_free(&gl);
    eddy__outchan_close(&oc);
    assert_int_equal(eddy__pool_available(pool), 1 << 20);
    eddy__pool_destroy(pool);
    return nbufs;
}

static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        p[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 8)) & 0xff);
    }
    return p;
}

/* ---- the wire format, byte for byte ---- */

static void test_wire_format_exact(void **state)
{
    (void)state;
    eddy__pool_t *pool = eddy__pool_new(4096, 16);
    capture_t cap = {0};
    eddy__outchan_t oc;
    eddy__outchan_init(&oc, pool, capture_push, &cap);

    eddy_record_t plain = {NULL, 0, "hello", 5, EDDY_TS_NONE};
    eddy_record_t full = {"k1", 2, "v", 1, 0x0102030405060708ll};
    eddy_record_t keyonly = {"", 0, "", 0, EDDY_TS_NONE};
    eddy_record_t tsonly = {NULL, 0, "x", 1, -2};
    assert_int_equal(eddy__outchan_write(&oc, &plain), 0);
    assert_int_equal(eddy__outchan_write(&oc, &full), 0);
    assert_int_equal(eddy__outchan_write(&oc, &keyonly), 0);
    assert_int_equal(eddy__outchan_write(&oc, &tsonly), 0);
    assert_int_equal(eddy__outchan_write_event(&oc, EDDY__EL_WATERMARK, 258),
                     0);
    assert_int_equal(eddy__outchan_write_event(&oc, EDDY__EL_EOP, 0), 0);

    static const unsigned char expect1[] = {
        /* plain: len 6, tag RECORD, "hello" */
        6, 0, 0, 0, 0x01, 'h', 'e', 'l', 'l', 'o',
        /* full: len 16, tag RECORD|KEY|TS, ts LE, key len, key, value */
        16, 0, 0, 0, 0x31, 8, 7, 6, 5, 4, 3, 2, 1, 2, 0, 0, 0, 'k', '1', 'v',
        /* keyonly: empty key present, empty value */
        5, 0, 0, 0, 0x11, 0, 0, 0, 0,
        /* tsonly: ts -2 */
        10, 0, 0, 0, 0x21, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'x',
        /* watermark 258 */
        9, 0, 0, 0, 0x03, 2, 1, 0, 0, 0, 0, 0, 0};
    static const unsigned char expect2[] = {1, 0, 0, 0, 0x02};
    /* An event ships its buffer at once. */
    assert_int_equal(cap.n, 2);
    TU_ASSERT_BYTES(cap.bufs[0]->buf_data, cap.bufs[0]->buf_len, expect1,
                    sizeof(expect1));
    TU_ASSERT_BYTES(cap.bufs[1]->buf_data, cap.bufs[1]->buf_len, expect2,
                    sizeof(expect2));
    assert_int_equal(eddy__record_wire_size(&plain), 10);
    assert_int_equal(eddy__record_wire_size(&full), 20);
    assert_int_equal(eddy__record_wire_size(&keyonly), 9);
    assert_int_equal(eddy__record_wire_size(&tsonly), 14);

    capture_release(&cap);
    eddy__outchan_close(&oc);
    eddy__pool_destroy(pool);
}

/* ---- round trips ---- */

static void test_roundtrip_variants(void **state)
{
    (void)state;
    eddy_record_t recs[] = {
        {NULL, 0, "value only", 10, EDDY_TS_NONE},
        {"key", 3, "with key", 8, EDDY_TS_NONE},
        {NULL, 0, "with ts", 7, 1700000000000ll},
        {"k", 1, "both", 4, -1},
        {NULL, 0, "", 0, EDDY_TS_NONE},     /* empty value */
        {"", 0, "", 0, EDDY_TS_NONE},       /* empty key, empty value */
        {"", 0, "v", 1, 0},                 /* empty key, ts 0 */
        {"kk", 2, "", 0, INT64_MAX},        /* empty value, max ts */
        {NULL, 0, "min", 3, INT64_MIN + 1}, /* smallest real ts */
        {"\0\0", 2, "\0", 1, EDDY_TS_NONE}, /* binary bytes */
    };
    size_t n = EDDY_ARRAY_SIZE(recs);
    assert_int_equal(roundtrip(recs, n, 4096), 1);
    /* Tiny segments: most records sit in a buffer of their own. */
    roundtrip(recs, n, 24);
}

static void test_record_exactly_fills_buffer(void **state)
{
    (void)state;
    enum { SEG = 4096 };
    unsigned char *v = pattern(SEG, 1);
    eddy__pool_t *pool = eddy__pool_new(SEG, 64);
    capture_t cap = {0};
    eddy__outchan_t oc;
    eddy__outchan_init(&oc, pool, capture_push, &cap);

    /* One record of exactly SEG bytes on the wire: it fills a buffer that
     * is shipped on the next write. */
    eddy_record_t full = {NULL, 0, v, SEG - 5, EDDY_TS_NONE};
    assert_int_equal(eddy__record_wire_size(&full), SEG);
    assert_int_equal(eddy__outchan_write(&oc, &full), 0);
    assert_int_equal(cap.n, 0);
    assert_int_equal(oc.oc_buf->buf_len, SEG);
    /* Two halves, with key and timestamp, fill the next buffer. */
    eddy_record_t half = {"key", 3, v, SEG / 2 - 5 - 8 - 4 - 3, 77};
    assert_int_equal(eddy__record_wire_size(&half), SEG / 2);
    assert_int_equal(eddy__outchan_write(&oc, &half), 0);
    assert_int_equal(cap.n, 1);
    assert_int_equal(eddy__outchan_write(&oc, &half), 0);
    assert_int_equal(cap.n, 1);
    assert_int_equal(oc.oc_buf->buf_len, SEG);
    /* A record that fits in a buffer but not in the rest of this one
     * starts a fresh buffer rather than being split. */
    eddy_record_t big = {NULL, 0, v, 4000 - 5, EDDY_TS_NONE};
    eddy_record_t small = {NULL, 0, v, 200 - 5, EDDY_TS_NONE};
    assert_int_equal(eddy__outchan_write(&oc, &big), 0);
    assert_int_equal(eddy__outchan_write(&oc, &small), 0);
    assert_int_equal(eddy__outchan_flush(&oc), 0);
    assert_int_equal(cap.n, 4);
    assert_int_equal(cap.bufs[0]->buf_len, SEG);
    assert_int_equal(cap.bufs[1]->buf_len, SEG);
    assert_int_equal(cap.bufs[2]->buf_len, 4000);
    assert_int_equal(cap.bufs[3]->buf_len, 200);

    /* A record of exactly one buffer after a partly filled buffer starts
     * a buffer of its own too, and fills it. */
    eddy_record_t tiny = {NULL, 0, "t", 1, EDDY_TS_NONE};
    assert_int_equal(eddy__outchan_write(&oc, &tiny), 0);
    assert_int_equal(eddy__outchan_write(&oc, &full), 0);
    assert_int_equal(eddy__outchan_flush(&oc), 0);
    assert_int_equal(cap.n, 6);
    assert_int_equal(cap.bufs[4]->buf_len, 6);
    assert_int_equal(cap.bufs[5]->buf_len, SEG);

    got_list_t gl = {0};
    assert_int_equal(read_capture(&cap, &gl), 0);
    assert_int_equal(gl.n, 7);
    assert_record(&gl.v[0], &full);
    assert_record(&gl.v[1], &half);
    assert_record(&gl.v[2], &half);
    assert_record(&gl.v[3], &big);
    assert_record(&gl.v[4], &small);
    assert_record(&gl.v[5], &tiny);
    assert_record(&gl.v[6], &full);
    got_free(&gl);
    eddy__outchan_close(&oc);
    eddy__pool_destroy(pool);
    free(v);
}

static void test_writer_straddles_every_offset(void **state)
{
    (void)state;
    /* 64-byte segments. A first record of every size moves the start of a
     * large record (with key and timestamp) across every offset of a
     * buffer, so its header, key and value are cut at every position. */
    enum { SEG = 64 };
    unsigned char *big = pattern(300, 2);
    unsigned char *small = pattern(SEG + 20, 3);
    for (size_t first = 0; first <= SEG + 10; first++) {
        for (size_t blen = SEG - 20; blen <= 3 * SEG; blen += 29) {
            eddy_record_t recs[4] = {
                {NULL, 0, small, first, EDDY_TS_NONE},
                {"0123456789", 10, big, blen, 123456789},
                {"k", 1, small, 3, EDDY_TS_NONE},
                {NULL, 0, big, blen + 7, -5},
            };
            roundtrip(recs, 4, SEG);
        }
    }
    free(big);
    free(small);
}

static void test_random_records_small_segments(void **state)
{
    (void)state;
    enum { N = 3000 };
    uint64_t rng = 7;
    unsigned char *bytes = pattern(1000, 4);
    eddy_record_t *recs = calloc(N, sizeof(*recs));
    for (size_t i = 0; i < N; i++) {
        uint64_t r = tu_rand(&rng);
        size_t klen = (size_t)(r % 40);
        size_t vlen = (size_t)((r >> 8) % 300);
        recs[i].key = (r >> 20) & 1 ? bytes + (r >> 24) % 500 : NULL;
        recs[i].key_len = recs[i].key != NULL ? klen : 0;
        recs[i].value = bytes + (r >> 32) % 500;
        recs[i].value_len = vlen;
        recs[i].ts =
            (r >> 21) & 1 ? (int64_t)(r >> 1) - INT64_MAX / 2 : EDDY_TS_NONE;
    }
    static const size_t segs[] = {32, 64, 100, 257, 4096};
    for (size_t s = 0; s < EDDY_ARRAY_SIZE(segs); s++) {
        roundtrip(recs, N, segs[s]);
    }
    free(recs);
    free(bytes);
}

static void test_record_much_larger_than_buffer(void **state)
{
    (void)state;
    enum { SEG = 4096, BIG = 100 * 1024 };
    unsigned char *v = pattern(BIG, 5);
    eddy__pool_t *pool = eddy__pool_new(SEG, 1000);
    capture_t cap = {0};
    eddy__outchan_t oc;
    eddy__outchan_init(&oc, pool, capture_push, &cap);
    eddy_record_t rec = {NULL, 0, v, BIG, EDDY_TS_NONE};
    assert_int_equal(eddy__outchan_write(&oc, &rec), 0);
    assert_int_equal(eddy__outchan_flush(&oc), 0);
    /* 102405 bytes: 25 full buffers and 2005 bytes in the 26th. */
    assert_int_equal(cap.n, 26);
    for (size_t i = 0; i < 25; i++) {
        assert_int_equal(cap.bufs[i]->buf_len, SEG);
    }
    assert_int_equal(cap.bufs[25]->buf_len, BIG + 5 - 25 * SEG);
    got_list_t gl = {0};
    assert_int_equal(read_capture(&cap, &gl), 0);
    assert_int_equal(gl.n, 1);
    assert_record(&gl.v[0], &rec);
    got_free(&gl);

    /* The same with a key and timestamp, between small records, and
     * starting in a partly filled buffer. */
    eddy_record_t recs[] = {
        {NULL, 0, "before", 6, EDDY_TS_NONE},
        {"big-key", 7, v, BIG, 42},
        {"after", 5, "x", 1, EDDY_TS_NONE},
        {NULL, 0, v + 1, BIG - 1, EDDY_TS_NONE},
    };
    /* 11 + 102424 bytes leave 35 in the 26th buffer, where the 15-byte
     * record fits; the last record spans on: 204854 bytes, 51 buffers. */
    assert_int_equal(roundtrip(recs, EDDY_ARRAY_SIZE(recs), SEG), 51);
    eddy__outchan_close(&oc);
    assert_int_equal(eddy__pool_available(pool), 1000);
    eddy__pool_destroy(pool);
    free(v);
}

/* ---- the reader, fed arbitrary cuts of a byte stream ---- */

/* Serializes `recs` (and a watermark after every 3rd) into one byte
 * string. */
static unsigned char *serialize_stream(const eddy_record_t *recs, size_t n,
                                       size_t *len)
{
    eddy__pool_t *pool = eddy__pool_new(1 << 20, 4);
    capture_t cap = {0};
    eddy__outchan_t oc;
    eddy__outchan_init(&oc, pool, capture_push, &cap);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(eddy__outchan_write(&oc, &recs[i]), 0);
        if (i % 3 == 2) {
            assert_int_equal(eddy__outchan_write_event(&oc, EDDY__EL_WATERMARK,
                                                       (int64_t)i * -1000),
                             0);
        }
    }
    assert_int_equal(eddy__outchan_write_event(&oc, EDDY__EL_EOP, 0), 0);
    size_t total = 0;
    for (size_t i = 0; i < cap.n; i++) {
        total += cap.bufs[i]->buf_len;
    }
    unsigned char *s = malloc(total);
    size_t off = 0;
    for (size_t i = 0; i < cap.n; i++) {
        memcpy(s + off, cap.bufs[i]->buf_data, cap.bufs[i]->buf_len);
        off += cap.bufs[i]->buf_len;
    }
    capture_release(&cap);
    eddy__outchan_close(&oc);
    eddy__pool_destroy(pool);
    *len = total;
    return s;
}

/* Cuts `s` at the given offsets into pool buffers and reads them. */
static void read_cuts(const unsigned char *s, size_t len, const size_t *cuts,
                      size_t ncuts, const eddy_record_t *recs, size_t n)
{
    eddy__pool_t *pool = eddy__pool_new(len, ncuts + 1);
    eddy__buffer_t **bufs = calloc(ncuts + 1, sizeof(*bufs));
    size_t prev = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        bufs[i] = eddy__pool_try_get(pool);
        assert_non_null(bufs[i]);
        memcpy(bufs[i]->buf_data, s + prev, end - prev);
        bufs[i]->buf_len = (uint32_t)(end - prev);
        prev = end;
    }
    got_list_t gl = {0};
    assert_int_equal(read_bufs(bufs, ncuts + 1, &gl), 0);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(k < gl.n);
        assert_record(&gl.v[k++], &recs[i]);
        if (i % 3 == 2) {
            assert_true(k < gl.n);
            assert_int_equal(gl.v[k].kind, EDDY__EL_WATERMARK);
            assert_true(gl.v[k].value == (int64_t)i * -1000);
            k++;
        }
    }
    assert_true(k < gl.n);
    assert_int_equal(gl.v[k].kind, EDDY__EL_EOP);
    assert_int_equal(gl.n, k + 1);
    got_free(&gl);
    free(bufs);
    assert_int_equal(eddy__pool_available(pool), ncuts + 1);
    eddy__pool_destroy(pool);
}

static void test_reader_every_cut(void **state)
{
    (void)state;
    unsigned char *v = pattern(100, 6);
    eddy_record_t recs[] = {
        {NULL, 0, v, 3, EDDY_TS_NONE},  {"key", 3, v, 20, 99},
        {NULL, 0, "", 0, -7},           {"", 0, v, 1, EDDY_TS_NONE},
        {"kk", 2, v, 60, EDDY_TS_NONE}, {NULL, 0, v + 5, 9, 1},
    };
    size_t n = EDDY_ARRAY_SIZE(recs);
    size_t len;
    unsigned char *s = serialize_stream(recs, n, &len);

    /* One cut at every offset: element headers, lengths, keys and events
     * split at every byte. */
    for (size_t cut = 1; cut < len; cut++) {
        read_cuts(s, len, &cut, 1, recs, n);
    }
    /* Equal chunks of every size, down to one byte per buffer. */
    size_t *cuts = calloc(len, sizeof(size_t));
    for (size_t chunk = 1; chunk < len; chunk++) {
        size_t nc = 0;
        for (size_t off = chunk; off < len; off += chunk) {
            cuts[nc++] = off;
        }
        read_cuts(s, len, cuts, nc, recs, n);
    }
    /* Random cuts. */
    uint64_t rng = 11;
    for (int iter = 0; iter < 300; iter++) {
        size_t nc = 0, off = 0;
        for (;;) {
            off += 1 + (size_t)(tu_rand(&rng) % 40);
            if (off >= len) {
                break;
            }
            cuts[nc++] = off;
        }
        read_cuts(s, len, cuts, nc, recs, n);
    }
    free(cuts);
    free(s);
    free(v);
}

/* ---- events ---- */

static void test_events_interleaved(void **state)
{
    (void)state;
    eddy__pool_t *pool = eddy__pool_new(4096, 16);
    capture_t cap = {0};
    eddy__outchan_t oc;
    eddy__outchan_init(&oc, pool, capture_push, &cap);
    static const int64_t wms[] = {0, -5, 1, INT64_MAX, INT64_MIN, 1ll << 40};
    eddy_record_t r = {"k", 1, "v", 1, 3};
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(wms); i++) {
        assert_int_equal(eddy__outchan_write(&oc, &r), 0);
        assert_int_equal(
            eddy__outchan_write_event(&oc, EDDY__EL_WATERMARK, wms[i]), 0);
        /* Each event ships the buffer it ends. */
        assert_int_equal(cap.n, i + 1);
        assert_null(oc.oc_buf);
    }
    assert_int_equal(eddy__outchan_write_event(&oc, EDDY__EL_BARRIER, 17), 0);
    assert_int_equal(eddy__outchan_write_event(&oc, EDDY__EL_LATENCY, -99), 0);
    assert_int_equal(eddy__outchan_write_event(&oc, EDDY__EL_EOP, 12345), 0);
    assert_int_equal(cap.n, EDDY_ARRAY_SIZE(wms) + 3);
    /* Nothing is left to flush. */
    assert_int_equal(eddy__outchan_flush(&oc), 0);
    assert_int_equal(cap.n, EDDY_ARRAY_SIZE(wms) + 3);

    got_list_t gl = {0};
    assert_int_equal(read_capture(&cap, &gl), 0);
    assert_int_equal(gl.n, 2 * EDDY_ARRAY_SIZE(wms) + 3);
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(wms); i++) {
        assert_record(&gl.v[2 * i], &r);
        assert_int_equal(gl.v[2 * i + 1].kind, EDDY__EL_WATERMARK);
        assert_true(gl.v[2 * i + 1].value == wms[i]);
    }
    size_t k = 2 * EDDY_ARRAY_SIZE(wms);
    assert_int_equal(gl.v[k].kind, EDDY__EL_BARRIER);
    assert_true(gl.v[k].value == 17);
    assert_int_equal(gl.v[k + 1].kind, EDDY__EL_LATENCY);
    assert_true(gl.v[k + 1].value == -99);
    assert_int_equal(gl.v[k + 2].kind, EDDY__EL_EOP);
    got_free(&gl);
    eddy__outchan_close(&oc);
    eddy__pool_destroy(pool);
}

static void test_event_straddles_buffers(void **state)
{
    (void)state;
    enum { SEG = 64 };
    unsigned char *v = pattern(SEG, 7);
    /* Leave `room` bytes in the buffer, then write a 13-byte watermark. */
    for (size_t room = 0; room <= 14; room++) {
        eddy__pool_t *pool = eddy__pool_new(SEG, 16);
        capture_t cap = {0};
        eddy__outchan_t oc;
        eddy__outchan_init(&oc, pool, capture_push, &cap);
        eddy_record_t r = {NULL, 0, v, SEG - room - 5, EDDY_TS_NONE};
        assert_int_equal(eddy__outchan_write(&oc, &r), 0);
        assert_int_equal(
            eddy__outchan_write_event(&oc, EDDY__EL_WATERMARK, -123456789), 0);
        assert_int_equal(eddy__outchan_write_event(&oc, EDDY__EL_EOP, 0), 0);
        got_list_t gl = {0};
        assert_int_equal(read_capture(&cap, &gl), 0);
        assert_int_equal(gl.n, 3);
        assert_record(&gl.v[0], &r);
        assert_int_equal(gl.v[1].kind, EDDY__EL_WATERMARK);
        assert_true(gl.v[1].value == -123456789);
        assert_int_equal(gl.v[2].kind, EDDY__EL_EOP);
        got_free(&gl);
        eddy__outchan_close(&oc);
        assert_int_equal(eddy__pool_available(pool), 16);
        eddy__pool_destroy(pool);
    }
    free(v);
}

/* ---- malformed input ---- */

/* Reads one buffer holding `bytes`; returns the first non-positive result
 * of eddy__deser_next and how many elements came before it. */
static int read_raw(const unsigned char *bytes, size_t len, size_t *nok)
{
    eddy__pool_t *pool = eddy__pool_new(len + 16, 1);
    eddy__buffer_t *b = eddy__pool_try_get(pool);
    memcpy(b->buf_data, bytes, len);
    b->buf_len = (uint32_t)len;
    eddy__deser_t ds;
    eddy__deser_init(&ds);
    eddy__deser_push(&ds, b);
    eddy__element_t el;
    int rc;
    *nok = 0;
    while ((rc = eddy__deser_next(&ds, &el)) > 0) {
        (*nok)++;
    }
    eddy__deser_close(&ds);
    assert_int_equal(eddy__pool_available(pool), 1);
    eddy__pool_destroy(pool);
    return rc;
}

static void test_malformed_input(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        unsigned char bytes[32];
        size_t len;
    } cases[] = {
        {"empty body", {0, 0, 0, 0}, 4},
        {"unknown tag 0", {1, 0, 0, 0, 0x00}, 5},
        {"unknown tag 7", {1, 0, 0, 0, 0x07}, 5},
        {"unknown tag 15", {1, 0, 0, 0, 0x0f}, 5},
        {"unknown tag with flags", {1, 0, 0, 0, 0x3e}, 5},
        {"EOP with payload", {2, 0, 0, 0, 0x02, 0}, 6},
        {"watermark too short", {5, 0, 0, 0, 0x03, 1, 2, 3, 4}, 9},
        {"watermark too long",
         {10, 0, 0, 0, 0x03, 1, 2, 3, 4, 5, 6, 7, 8, 9},
         14},
        {"barrier without payload", {1, 0, 0, 0, 0x04}, 5},
        {"latency too short", {2, 0, 0, 0, 0x05, 1}, 6},
        {"timestamp flag, short body", {5, 0, 0, 0, 0x21, 1, 2, 3, 4}, 9},
        {"key flag, no key length", {3, 0, 0, 0, 0x11, 1, 0}, 7},
        {"key longer than body", {7, 0, 0, 0, 0x11, 3, 0, 0, 0, 'a', 'b'}, 11},
        {"key length 2^32-1",
         {7, 0, 0, 0, 0x11, 0xff, 0xff, 0xff, 0xff, 'a', 'b'},
         11},
        {"ts and key flags, key too long",
         {17, 0, 0, 0, 0x31, 1, 2,   3,   4,   5,  6,
          7,  8, 9, 0, 0,    0, 'k', 'v', 'x', 'y'},
         21},
    };
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(cases); i++) {
        size_t nok;
        int rc = read_raw(cases[i].bytes, cases[i].len, &nok);
        if (rc != EDDY_ERR_FORMAT || nok != 0) {
            fail_msg("case '%s': rc %d (%s), %zu elements; expected "
                     "EDDY_ERR_FORMAT",
                     cases[i].what, rc, eddy_err_name(rc), nok);
        }
    }
    /* A valid element followed by a corrupt one: the first is delivered,
     * then the error. */
    static const unsigned char mixed[] = {2, 0, 0, 0, 0x01, 'a',
                                          1, 0, 0, 0, 0x09};
    size_t nok;
    assert_int_equal(read_raw(mixed, sizeof(mixed), &nok), EDDY_ERR_FORMAT);
    assert_int_equal(nok, 1);
    /* A key exactly as long as the rest of the body is fine (empty
     * value). */
    static const unsigned char edge[] = {7, 0, 0, 0,   0x11, 2,
                                         0, 0, 0, 'a', 'b'};
    assert_int_equal(read_raw(edge, sizeof(edge), &nok), 0);
    assert_int_equal(nok, 1);
}

static void test_malformed_spanning_element(void **state)
{
    (void)state;
    /* A corrupt element cut across buffers is reported after reassembly. */
    static const unsigned char bad[] = {10, 0, 0,   0,   0x11, 0xff, 0,
                                        0,  0, 'a', 'b', 'c',  'd',  'e'};
    for (size_t cut = 1; cut < sizeof(bad); cut++) {
        eddy__pool_t *pool = eddy__pool_new(sizeof(bad), 2);
        eddy__buffer_t *b1 = eddy__pool_try_get(pool);
        eddy__buffer_t *b2 = eddy__pool_try_get(pool);
        memcpy(b1->buf_data, bad, cut);
        b1->buf_len = (uint32_t)cut;
        memcpy(b2->buf_data, bad + cut, sizeof(bad) - cut);
        b2->buf_len = (uint32_t)(sizeof(bad) - cut);
        eddy__deser_t ds;
        eddy__deser_init(&ds);
        eddy__element_t el;
        eddy__deser_push(&ds, b1);
        assert_int_equal(eddy__deser_next(&ds, &el), 0);
        eddy__deser_push(&ds, b2);
        assert_int_equal(eddy__deser_next(&ds, &el), EDDY_ERR_FORMAT);
        eddy__deser_close(&ds);
        assert_int_equal(eddy__pool_available(pool), 2);
        eddy__pool_destroy(pool);
    }
}

static void test_garbage_never_crashes(void **state)
{
    (void)state;
    /* Random bytes, one buffer per reader: every result is an element, the
     * end of the buffer or EDDY_ERR_FORMAT. ASan checks the reads. */
    uint64_t rng = 2024;
    unsigned char bytes[256];
    int formats = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = 1 + (size_t)(tu_rand(&rng) % sizeof(bytes));
        for (size_t i = 0; i < len; i++) {
            bytes[i] = (unsigned char)tu_rand(&rng);
        }
        /* Keep the first length small half the time, so bodies are parsed
         * rather than waiting for more data. */
        if (iter & 1) {
            bytes[0] = (unsigned char)(tu_rand(&rng) % (len + 1));
            if (len > 3) {
                bytes[1] = bytes[2] = bytes[3] = 0;
            }
        }
        size_t nok;
        int rc = read_raw(bytes, len, &nok);
        if (rc != 0 && rc != EDDY_ERR_FORMAT) {
            fail_msg("iteration %d: unexpected result %d", iter, rc);
        }
        formats += rc == EDDY_ERR_FORMAT;
    }
    assert_true(formats > 1000);
}

static void test_truncated_element_released_on_close(void **state)
{
    (void)state;
    /* A reader closed in the middle of a spanning element frees its spill
     * area (ASan's leak check) and holds no buffer. */
    eddy__pool_t *pool = eddy__pool_new(64, 2);
    eddy__buffer_t *b = eddy__pool_try_get(pool);
    static const unsigned char part[] = {200, 0, 0, 0, 0x01, 'a', 'b'};
    memcpy(b->buf_data, part, sizeof(part));
    b->buf_len = sizeof(part);
    eddy__deser_t ds;
    eddy__deser_init(&ds);
    eddy__element_t el;
    assert_int_equal(eddy__deser_next(&ds, &el), 0); /* nothing pushed */
    eddy__deser_push(&ds, b);
    assert_int_equal(eddy__deser_next(&ds, &el), 0);
    assert_null(ds.ds_buf);
    assert_int_equal(eddy__pool_available(pool), 2);
    eddy__deser_close(&ds);
    eddy__pool_destroy(pool);
}

/* ---- writer errors and cleanup ---- */

static void test_push_failure_propagates(void **state)
{
    (void)state;
    enum { SEG = 64 };
    unsigned char *v = pattern(1000, 8);
    eddy__pool_t *pool = eddy__pool_new(SEG, 64);
    capture_t cap = {0};
    cap.fail_at = 3;
    eddy__outchan_t oc;
    eddy__outchan_init(&oc, pool, capture_push, &cap);
    eddy_record_t r = {NULL, 0, v, 40, EDDY_TS_NONE};
    int rc = 0;
    int i = 0;
    for (; i < 10 && rc == 0; i++) {
        rc = eddy__outchan_write(&oc, &r);
    }
    /* Buffers 1 and 2 went out; the third push failed on the 4th write. */
    assert_int_equal(rc, EDDY_ERR_CANCELED);
    assert_int_equal(i, 4);
    assert_int_equal(cap.n, 2);
    /* A spanning record fails the same way in the middle. */
    eddy_record_t big = {NULL, 0, v, 1000, EDDY_TS_NONE};
    assert_int_equal(eddy__outchan_write(&oc, &big), EDDY_ERR_CANCELED);
    assert_int_equal(eddy__outchan_write_event(&oc, EDDY__EL_EOP, 0),
                     EDDY_ERR_CANCELED);
    eddy__outchan_close(&oc);
    capture_release(&cap);
    /* Every buffer is back: no leak on the error path. */
    assert_int_equal(eddy__pool_available(pool), 64);
    eddy__pool_destroy(pool);
    free(v);
}

static void test_pool_cancel_fails_write(void **state)
{
    (void)state;
    atomic_int cancel;
    atomic_init(&cancel, 1);
    eddy__pool_t *pool = eddy__pool_new(64, 1);
    eddy__pool_set_cancel(pool, &cancel);
    eddy__buffer_t *held = eddy__pool_try_get(pool);
    capture_t cap = {0};
    eddy__outchan_t oc;
    eddy__outchan_init(&oc, pool, capture_push, &cap);
    eddy_record_t r = {NULL, 0, "x", 1, EDDY_TS_NONE};
    /* The pool is exhausted and cancelled: the writer gives up at once
     * instead of waiting for a buffer. */
    assert_int_equal(eddy__outchan_write(&oc, &r), EDDY_ERR_CANCELED);
    assert_int_equal(eddy__outchan_write_event(&oc, EDDY__EL_WATERMARK, 1),
                     EDDY_ERR_CANCELED);
    assert_int_equal(cap.n, 0);
    eddy__buffer_release(held);
    eddy__outchan_close(&oc);
    eddy__pool_destroy(pool);
}

static void test_close_releases_partial_buffer(void **state)
{
    (void)state;
    eddy__pool_t *pool = eddy__pool_new(256, 4);
    capture_t cap = {0};
    eddy__outchan_t oc;
    eddy__outchan_init(&oc, pool, capture_push, &cap);
    assert_int_equal(eddy__outchan_flush(&oc), 0); /* nothing to flush */
    eddy_record_t r = {NULL, 0, "abc", 3, EDDY_TS_NONE};
    assert_int_equal(eddy__outchan_write(&oc, &r), 0);
    assert_int_equal(eddy__pool_available(pool), 3);
    eddy__outchan_close(&oc);
    assert_null(oc.oc_buf);
    assert_int_equal(cap.n, 0);
    assert_int_equal(eddy__pool_available(pool), 4);
    eddy__outchan_close(&oc); /* twice is fine */
    eddy__pool_destroy(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_format_exact),
        cmocka_unit_test(test_roundtrip_variants),
        cmocka_unit_test(test_record_exactly_fills_buffer),
        cmocka_unit_test(test_writer_straddles_every_offset),
        cmocka_unit_test(test_random_records_small_segments),
        cmocka_unit_test(test_record_much_larger_than_buffer),
        cmocka_unit_test(test_reader_every_cut),
        cmocka_unit_test(test_events_interleaved),
        cmocka_unit_test(test_event_straddles_buffers),
        cmocka_unit_test(test_malformed_input),
        cmocka_unit_test(test_malformed_spanning_element),
        cmocka_unit_test(test_garbage_never_crashes),
        cmocka_unit_test(test_truncated_element_released_on_close),
        cmocka_unit_test(test_push_failure_propagates),
        cmocka_unit_test(test_pool_cancel_fails_write),
        cmocka_unit_test(test_close_releases_partial_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
