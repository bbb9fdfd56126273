/*
 * eddy — the element wire format and its buffer writer and reader.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. A channel carries a byte stream of elements cut into buffers. An
 * element is a 4-byte little-endian body length followed by the body; the body
 * starts with a tag byte:
 *
 *   RECORD     tag 0x01 | 0x10 (has key) | 0x20 (has timestamp)
 *              [i64 ts] [u32 key_len key] value...      (value_len = rest)
 *   EOP        tag 0x02                                  end of partition
 *   WATERMARK  tag 0x03 i64                              (reserved: issue 3)
 *   BARRIER    tag 0x04 i64 checkpoint id                (reserved: issue 4)
 *   LATENCY    tag 0x05 i64 emit time                    (reserved)
 *   STATUS     tag 0x06 i64 1 = idle, 0 = active         stream status
 *
 * Elements may span buffers, so records larger than a buffer are fine. The
 * reader hands out records that point straight into the buffer when an element
 * lies inside one buffer (the common case: no copy), and reassembles spanning
 * elements in a per-channel spill area that is reused (no per-record malloc).
 *
 * Events are in-band: they are written in order with the records, and the
 * writer ships its buffer right after an event so it is not delayed.
 *
 * THREADS. A writer (eddy__outchan_t) belongs to the producing task's thread,
 * a reader (eddy__deser_t) to the consuming task's thread.
 */
#ifndef EDDY_RUNTIME_SERIALIZER_H
#define EDDY_RUNTIME_SERIALIZER_H

#include "runtime/buffer.h"

typedef enum eddy__elem_kind {
    EDDY__EL_RECORD = 0x01,
    EDDY__EL_EOP = 0x02,
    EDDY__EL_WATERMARK = 0x03,
    EDDY__EL_BARRIER = 0x04,
    EDDY__EL_LATENCY = 0x05,
    EDDY__EL_STATUS = 0x06,
} eddy__elem_kind_t;

/* Largest element body accepted (a record's key, value and header). Readers
 * reject longer lengths as corrupt instead of trying to allocate them. */
#define EDDY__MAX_ELEMENT (256u * 1024 * 1024)

#define EDDY__TAG_KIND_MASK 0x0f
#define EDDY__TAG_HAS_KEY 0x10
#define EDDY__TAG_HAS_TS 0x20

typedef struct eddy__element {
    int el_kind;          /* eddy__elem_kind_t */
    eddy_record_t el_rec; /* EDDY__EL_RECORD */
    int64_t el_value;     /* payload of WATERMARK, BARRIER, LATENCY */
} eddy__element_t;

/* Ships a filled buffer downstream; may block (back pressure). Returns 0, or
 * a negative error (e.g. EDDY_ERR_CANCELED) after which the buffer has been
 * released. */
typedef int (*eddy__push_fn)(void *target, eddy__buffer_t *buf);

typedef struct eddy__outchan {
    eddy__buffer_t *oc_buf; /* buffer being filled, or NULL */
    eddy__pool_t *oc_pool;
    eddy__push_fn oc_push;
    void *oc_target;
    uint64_t oc_bytes; /* bytes written (metrics) */
} eddy__outchan_t;

void eddy__outchan_init(eddy__outchan_t *oc, eddy__pool_t *pool,
                        eddy__push_fn push, void *target);
/* Releases a partially filled buffer without shipping it. */
void eddy__outchan_close(eddy__outchan_t *oc);
int eddy__outchan_write_slow(eddy__outchan_t *oc, const eddy_record_t *rec);
/* Writes an event and ships the buffer. */
int eddy__outchan_write_event(eddy__outchan_t *oc, int kind, int64_t value);
/* Ships the partially filled buffer, if any. */
int eddy__outchan_flush(eddy__outchan_t *oc);

static inline size_t eddy__record_wire_size(const eddy_record_t *rec)
{
    return 4 + 1 + (rec->ts != EDDY_TS_NONE ? 8 : 0) +
           (rec->key != NULL ? 4 + rec->key_len : 0) + rec->value_len;
}

static inline void eddy__put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline uint32_t eddy__get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* Encodes the element header (length, tag, ts, key length) into `hdr`
 * (at least 17 bytes); returns the header size. */
static inline size_t eddy__record_header(unsigned char *hdr,
                                         const eddy_record_t *rec, size_t total)
{
    size_t n = 5;
    unsigned char tag = EDDY__EL_RECORD;
    eddy__put_u32(hdr, (uint32_t)(total - 4));
    if (rec->ts != EDDY_TS_NONE) {
        tag |= EDDY__TAG_HAS_TS;
        uint64_t ts = (uint64_t)rec->ts;
        eddy__put_u32(hdr + n, (uint32_t)ts);
        eddy__put_u32(hdr + n + 4, (uint32_t)(ts >> 32));
        n += 8;
    }
    if (rec->key != NULL) {
        tag |= EDDY__TAG_HAS_KEY;
        eddy__put_u32(hdr + n, (uint32_t)rec->key_len);
        n += 4;
    }
    hdr[4] = tag;
    return n;
}

/* Copies n bytes; short keys and values (the common case) are copied
 * inline with at most two overlapping loads and stores instead of a call
 * to memcpy. Copies nothing (and reads no pointer) when n is 0. */
static inline void eddy__copy_bytes(unsigned char *dst, const void *src,
                                    size_t n)
{
    const unsigned char *s = src;
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else if (n > 0 && n < 4) {
        dst[0] = s[0];
        dst[n / 2] = s[n / 2];
        dst[n - 1] = s[n - 1];
    } else if (n > 16) {
        memcpy(dst, s, n);
    }
}

/* Writes a record: the fast path copies into the current buffer. It is
 * forced inline: GCC otherwise keeps one out-of-line copy per library. */
__attribute__((always_inline)) static inline int
eddy__outchan_write(eddy__outchan_t *oc, const eddy_record_t *rec)
{
    size_t total = eddy__record_wire_size(rec);
    eddy__buffer_t *b = oc->oc_buf;
    if (EDDY_LIKELY(b != NULL && b->buf_cap - b->buf_len >= total)) {
        unsigned char *p = b->buf_data + b->buf_len;
        size_t h = eddy__record_header(p, rec, total);
        p += h;
        if (rec->key != NULL) {
            eddy__copy_bytes(p, rec->key, rec->key_len);
            p += rec->key_len;
        }
        eddy__copy_bytes(p, rec->value, rec->value_len);
        b->buf_len += (uint32_t)total;
        oc->oc_bytes += total;
        return 0;
    }
    return eddy__outchan_write_slow(oc, rec);
}

typedef struct eddy__deser {
    eddy__buffer_t *ds_buf; /* buffer being read, or NULL */
    uint32_t ds_off;
    unsigned char *ds_spill; /* reassembly area for spanning elements */
    size_t ds_spill_cap;
    size_t ds_spill_len; /* bytes gathered; 0 = not inside an element */
} eddy__deser_t;

void eddy__deser_init(eddy__deser_t *ds);
/* Releases any buffer still held and the spill area. */
void eddy__deser_close(eddy__deser_t *ds);
/* Hands the reader the next buffer of the channel; the previous one must have
 * been consumed (eddy__deser_next returned 0). */
void eddy__deser_push(eddy__deser_t *ds, eddy__buffer_t *buf);
/*
 * Reads the next element. Returns 1 with `el` filled (valid until the next
 * call), 0 when the buffer is consumed (it has been released) or a negative
 * error for malformed input.
 */
int eddy__deser_next(eddy__deser_t *ds, eddy__element_t *el);

#endif /* EDDY_RUNTIME_SERIALIZER_H */
