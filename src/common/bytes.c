/*
 * eddy — growable byte strings, a bounds-checked reader and CRC-32C.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "common/bytes.h"

static void reserve(eddy__bytes_t *b, size_t n)
{
    if (b->b_cap - b->b_len >= n) {
        return;
    }
    size_t cap = b->b_cap ? b->b_cap : 256;
    while (cap - b->b_len < n) {
        cap *= 2;
    }
    b->b_data = eddy__realloc(b->b_data, cap);
    b->b_cap = cap;
}

void eddy__bytes_put(eddy__bytes_t *b, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }
    reserve(b, n);
    memcpy(b->b_data + b->b_len, p, n);
    b->b_len += n;
}

void eddy__bytes_put_u8(eddy__bytes_t *b, uint8_t v)
{
    eddy__bytes_put(b, &v, 1);
}

void eddy__bytes_put_u32(eddy__bytes_t *b, uint32_t v)
{
    unsigned char p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
    eddy__bytes_put(b, p, 4);
}

void eddy__bytes_put_u64(eddy__bytes_t *b, uint64_t v)
{
    unsigned char p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
    eddy__bytes_put(b, p, 8);
}

void eddy__bytes_put_varint(eddy__bytes_t *b, uint64_t v)
{
    unsigned char p[10];
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    eddy__bytes_put(b, p, n);
}

void eddy__bytes_put_blob(eddy__bytes_t *b, const void *p, size_t n)
{
    eddy__bytes_put_varint(b, n);
    eddy__bytes_put(b, p, n);
}

void eddy__bytes_reset(eddy__bytes_t *b)
{
    b->b_len = 0;
}

void eddy__bytes_free(eddy__bytes_t *b)
{
    free(b->b_data);
    memset(b, 0, sizeof(*b));
}

const void *eddy__rd_take(eddy__rd_t *r, size_t n)
{
    if (r->rd_bad || (size_t)(r->rd_end - r->rd_p) < n) {
        r->rd_bad = true;
        return NULL;
    }
    const void *p = r->rd_p;
    r->rd_p += n;
    return p;
}

uint8_t eddy__rd_u8(eddy__rd_t *r)
{
    const unsigned char *p = eddy__rd_take(r, 1);
    return p ? p[0] : 0;
}

uint32_t eddy__rd_u32(eddy__rd_t *r)
{
    const unsigned char *p = eddy__rd_take(r, 4);
    uint32_t v = 0;
    for (int i = 3; p != NULL && i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

uint64_t eddy__rd_u64(eddy__rd_t *r)
{
    const unsigned char *p = eddy__rd_take(r, 8);
    uint64_t v = 0;
    for (int i = 7; p != NULL && i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

uint64_t eddy__rd_varint(eddy__rd_t *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        const unsigned char *p = eddy__rd_take(r, 1);
        if (p == NULL) {
            return 0;
        }
        v |= (uint64_t)(*p & 0x7f) << shift;
        if ((*p & 0x80) == 0) {
            return v;
        }
    }
    r->rd_bad = true; /* more than 10 bytes: not a varint */
    return 0;
}

const void *eddy__rd_blob(eddy__rd_t *r, size_t *len)
{
    uint64_t n = eddy__rd_varint(r);
    if (r->rd_bad || n > (uint64_t)(r->rd_end - r->rd_p)) {
        r->rd_bad = true;
        *len = 0;
        return NULL;
    }
    *len = (size_t)n;
    return eddy__rd_take(r, (size_t)n);
}

/* Table-driven CRC-32C (reflected polynomial 0x82F63B78). */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        crc_table[i] = c;
    }
}

uint32_t eddy__crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *s = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc = crc_table[(crc ^ s[i]) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}
