/*
 * eddy — growable byte strings and a bounds-checked reader, for the binary
 * formats of snapshots and control messages.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Integers are little-endian and fixed width (u8/u32/u64) or unsigned LEB128
 * varints. The reader never reads past its end: a short or malformed input
 * sets rd_bad and every later read returns zeros, so a decoder checks once
 * at the end (eddy__rd_ok) instead of after every field.
 */
#ifndef EDDY_COMMON_BYTES_H
#define EDDY_COMMON_BYTES_H

#include "common/internal.h"

typedef struct eddy__bytes {
    unsigned char *b_data;
    size_t b_len;
    size_t b_cap;
} eddy__bytes_t;

/* Appends n bytes (aborts on out of memory, like eddy__malloc). */
void eddy__bytes_put(eddy__bytes_t *b, const void *p, size_t n);
void eddy__bytes_put_u8(eddy__bytes_t *b, uint8_t v);
void eddy__bytes_put_u32(eddy__bytes_t *b, uint32_t v);
void eddy__bytes_put_u64(eddy__bytes_t *b, uint64_t v);
void eddy__bytes_put_varint(eddy__bytes_t *b, uint64_t v);
/* A varint length, then the bytes. */
void eddy__bytes_put_blob(eddy__bytes_t *b, const void *p, size_t n);
void eddy__bytes_reset(eddy__bytes_t *b);
void eddy__bytes_free(eddy__bytes_t *b);

typedef struct eddy__rd {
    const unsigned char *rd_p;
    const unsigned char *rd_end;
    bool rd_bad;
} eddy__rd_t;

static inline void eddy__rd_init(eddy__rd_t *r, const void *p, size_t n)
{
    r->rd_p = p;
    r->rd_end = r->rd_p + n;
    r->rd_bad = false;
}

static inline bool eddy__rd_ok(const eddy__rd_t *r)
{
    return !r->rd_bad;
}

static inline bool eddy__rd_done(const eddy__rd_t *r)
{
    return r->rd_bad || r->rd_p == r->rd_end;
}

/* Returns a pointer to the next n bytes and skips them, or NULL (bad). */
const void *eddy__rd_take(eddy__rd_t *r, size_t n);
uint8_t eddy__rd_u8(eddy__rd_t *r);
uint32_t eddy__rd_u32(eddy__rd_t *r);
uint64_t eddy__rd_u64(eddy__rd_t *r);
uint64_t eddy__rd_varint(eddy__rd_t *r);
/* A blob written by eddy__bytes_put_blob: sets *len, returns its bytes. */
const void *eddy__rd_blob(eddy__rd_t *r, size_t *len);

/* CRC-32C (Castagnoli) of a byte range, continuing from `crc` (start 0). */
uint32_t eddy__crc32c(uint32_t crc, const void *p, size_t n);

#endif /* EDDY_COMMON_BYTES_H */
