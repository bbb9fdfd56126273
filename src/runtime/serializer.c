/*
 * eddy — element writer and reader (see serializer.h for the format).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include <assert.h>
#include <stdlib.h>

#include "runtime/serializer.h"

void eddy__outchan_init(eddy__outchan_t *oc, eddy__pool_t *pool,
                        eddy__push_fn push, void *target)
{
    memset(oc, 0, sizeof(*oc));
    oc->oc_pool = pool;
    oc->oc_push = push;
    oc->oc_target = target;
}

void eddy__outchan_close(eddy__outchan_t *oc)
{
    eddy__buffer_release(oc->oc_buf);
    oc->oc_buf = NULL;
}

int eddy__outchan_flush(eddy__outchan_t *oc)
{
    eddy__buffer_t *b = oc->oc_buf;
    if (b == NULL || b->buf_len == 0) {
        return 0;
    }
    oc->oc_buf = NULL;
    return oc->oc_push(oc->oc_target, b);
}

/* Copies bytes into the stream, shipping full buffers and taking new ones. */
static int put_bytes(eddy__outchan_t *oc, const void *src, size_t n)
{
    const unsigned char *p = src;
    while (n > 0) {
        eddy__buffer_t *b = oc->oc_buf;
        if (b == NULL) {
            b = eddy__pool_get(oc->oc_pool);
            if (b == NULL) {
                return EDDY_ERR_CANCELED;
            }
            oc->oc_buf = b;
        }
        size_t room = b->buf_cap - b->buf_len;
        if (room == 0) {
            int rc = eddy__outchan_flush(oc);
            if (rc != 0) {
                return rc;
            }
            continue;
        }
        size_t k = EDDY_MIN(room, n);
        memcpy(b->buf_data + b->buf_len, p, k);
        b->buf_len += (uint32_t)k;
        p += k;
        n -= k;
    }
    return 0;
}

int eddy__outchan_write_slow(eddy__outchan_t *oc, const eddy_record_t *rec)
{
    size_t total = eddy__record_wire_size(rec);
    if (total - 4 > EDDY__MAX_ELEMENT) {
        return EDDY_ERR_INVALID;
    }
    eddy__buffer_t *b = oc->oc_buf;
    /* Start small elements in a fresh buffer rather than splitting them:
     * spanning is only for elements that cannot fit anyway. */
    if (b != NULL && total <= b->buf_cap && b->buf_cap - b->buf_len < total) {
        int rc = eddy__outchan_flush(oc);
        if (rc != 0) {
            return rc;
        }
        b = NULL;
    }
    if (b == NULL && total <= oc->oc_pool->pl_segment_size) {
        b = eddy__pool_get(oc->oc_pool);
        if (b == NULL) {
            return EDDY_ERR_CANCELED;
        }
        oc->oc_buf = b;
        return eddy__outchan_write(oc, rec);
    }
    unsigned char hdr[32];
    size_t h = eddy__record_header(hdr, rec, total);
    int rc = put_bytes(oc, hdr, h);
    if (rc == 0 && rec->key != NULL) {
        rc = put_bytes(oc, rec->key, rec->key_len);
    }
    if (rc == 0) {
        rc = put_bytes(oc, rec->value, rec->value_len);
    }
    if (rc == 0) {
        oc->oc_bytes += total;
    }
    return rc;
}

int eddy__outchan_write_event(eddy__outchan_t *oc, int kind, int64_t value)
{
    unsigned char ev[13];
    size_t n = 5;
    ev[4] = (unsigned char)kind;
    if (kind != EDDY__EL_EOP) {
        uint64_t v = (uint64_t)value;
        eddy__put_u32(ev + 5, (uint32_t)v);
        eddy__put_u32(ev + 9, (uint32_t)(v >> 32));
        n = 13;
    }
    eddy__put_u32(ev, (uint32_t)(n - 4));
    int rc = put_bytes(oc, ev, n);
    if (rc == 0) {
        rc = eddy__outchan_flush(oc);
    }
    return rc;
}

/* ---- reader ---- */

void eddy__deser_init(eddy__deser_t *ds)
{
    memset(ds, 0, sizeof(*ds));
}

void eddy__deser_close(eddy__deser_t *ds)
{
    eddy__buffer_release(ds->ds_buf);
    free(ds->ds_spill);
    memset(ds, 0, sizeof(*ds));
}

void eddy__deser_push(eddy__deser_t *ds, eddy__buffer_t *buf)
{
    assert(ds->ds_buf == NULL);
    ds->ds_buf = buf;
    ds->ds_off = 0;
}

static int parse_body(const unsigned char *p, size_t n, eddy__element_t *el)
{
    if (n < 1) {
        return EDDY_ERR_FORMAT;
    }
    unsigned tag = p[0];
    int kind = (int)(tag & EDDY__TAG_KIND_MASK);
    p++;
    n--;
    el->el_kind = kind;
    if (kind == EDDY__EL_RECORD) {
        eddy_record_t *r = &el->el_rec;
        r->ts = EDDY_TS_NONE;
        r->key = NULL;
        r->key_len = 0;
        if (tag & EDDY__TAG_HAS_TS) {
            if (n < 8) {
                return EDDY_ERR_FORMAT;
            }
            uint64_t v = (uint64_t)eddy__get_u32(p) |
                         (uint64_t)eddy__get_u32(p + 4) << 32;
            r->ts = (int64_t)v;
            p += 8;
            n -= 8;
        }
        if (tag & EDDY__TAG_HAS_KEY) {
            if (n < 4) {
                return EDDY_ERR_FORMAT;
            }
            size_t kl = eddy__get_u32(p);
            p += 4;
            n -= 4;
            if (kl > n) {
                return EDDY_ERR_FORMAT;
            }
            r->key = p;
            r->key_len = kl;
            p += kl;
            n -= kl;
        }
        r->value = p;
        r->value_len = n;
        return 1;
    }
    if (kind == EDDY__EL_EOP) {
        return n == 0 ? 1 : EDDY_ERR_FORMAT;
    }
    if (kind == EDDY__EL_WATERMARK || kind == EDDY__EL_BARRIER ||
        kind == EDDY__EL_LATENCY || kind == EDDY__EL_STATUS) {
        if (n != 8) {
            return EDDY_ERR_FORMAT;
        }
        el->el_value = (int64_t)((uint64_t)eddy__get_u32(p) |
                                 (uint64_t)eddy__get_u32(p + 4) << 32);
        return 1;
    }
    return EDDY_ERR_FORMAT;
}

static int spill_reserve(eddy__deser_t *ds, size_t need)
{
    if (need <= ds->ds_spill_cap) {
        return 0;
    }
    size_t cap = ds->ds_spill_cap ? ds->ds_spill_cap : 256;
    while (cap < need) {
        cap *= 2;
    }
    unsigned char *p = eddy__try_realloc(ds->ds_spill, cap);
    if (p == NULL) {
        return EDDY_ERR_NOMEM;
    }
    ds->ds_spill = p;
    ds->ds_spill_cap = cap;
    return 0;
}

int eddy__deser_next(eddy__deser_t *ds, eddy__element_t *el)
{
    eddy__buffer_t *b = ds->ds_buf;
    if (b == NULL) {
        return 0;
    }
    const unsigned char *data = b->buf_data;
    size_t len = b->buf_len;
    for (;;) {
        size_t rem = len - ds->ds_off;
        if (rem == 0) {
            eddy__buffer_release(b);
            ds->ds_buf = NULL;
            ds->ds_off = 0;
            return 0;
        }
        const unsigned char *p = data + ds->ds_off;
        if (ds->ds_spill_len == 0) {
            if (EDDY_LIKELY(rem >= 4)) {
                size_t body = eddy__get_u32(p);
                if (EDDY_LIKELY(body + 4 <= rem)) {
                    ds->ds_off += (uint32_t)(4 + body);
                    return parse_body(p + 4, body, el);
                }
            }
            /* The element continues in the next buffer: gather it. */
            int rc = spill_reserve(ds, EDDY_MAX(rem, 4));
            if (rc != 0) {
                return rc;
            }
            memcpy(ds->ds_spill, p, rem);
            ds->ds_spill_len = rem;
            ds->ds_off = (uint32_t)len;
            continue;
        }
        /* Continue an element that started in an earlier buffer. */
        if (ds->ds_spill_len < 4) {
            size_t k = EDDY_MIN(4 - ds->ds_spill_len, rem);
            memcpy(ds->ds_spill + ds->ds_spill_len, p, k);
            ds->ds_spill_len += k;
            ds->ds_off += (uint32_t)k;
            continue;
        }
        size_t body = eddy__get_u32(ds->ds_spill);
        if (body > EDDY__MAX_ELEMENT) {
            return EDDY_ERR_FORMAT;
        }
        size_t total = 4 + body;
        int rc = spill_reserve(ds, total);
        if (rc != 0) {
            return rc;
        }
        size_t k = EDDY_MIN(total - ds->ds_spill_len, rem);
        memcpy(ds->ds_spill + ds->ds_spill_len, p, k);
        ds->ds_spill_len += k;
        ds->ds_off += (uint32_t)k;
        if (ds->ds_spill_len == total) {
            ds->ds_spill_len = 0;
            return parse_body(ds->ds_spill + 4, total - 4, el);
        }
    }
}
