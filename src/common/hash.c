/*
 * eddy — the key hash and key-group arithmetic.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The hash decides which key group (and so which subtask and which part of a
 * checkpoint) a key belongs to. It is therefore part of the persistent format:
 * changing it would scatter restored state over the wrong subtasks.
 *
 * Construction: 16-byte blocks are folded with a 64x64→128 multiply whose two
 * halves are xored ("folded multiply"); this mixes every input bit into every
 * output bit in two multiplies per block, which keeps short keys (the common
 * case: words, ids) at a few nanoseconds.
 */
#include "common/internal.h"

#define K0 0x9E3779B97F4A7C15ull
#define K1 0xC2B2AE3D27D4EB4Full
#define K2 0x165667B19E3779F9ull
#define K3 0xD6E8FEB86659FD93ull

static inline uint64_t fold(uint64_t a, uint64_t b)
{
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t load64(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
           (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
           (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static inline uint64_t load_tail(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

uint64_t eddy__hash64(const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t n = len;
    uint64_t h = K0 ^ fold((uint64_t)len ^ K1, K3);
    while (n >= 16) {
        h = fold(load64(p) ^ K1, load64(p + 8) ^ h);
        p += 16;
        n -= 16;
    }
    if (n >= 8) {
        h = fold(load64(p) ^ K2, h ^ K1);
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        h = fold(load_tail(p, n) ^ K3, h ^ K2);
    }
    return fold(h ^ K0, K1 ^ (uint64_t)len);
}

void eddy__key_group_range(int subtask, int max_parallelism, int parallelism,
                           int *first, int *last)
{
    /* Inverse of eddy__key_group_subtask: the smallest kg with
     * kg*p/maxp >= subtask, up to the smallest one of the next subtask. */
    *first = (int)(((int64_t)subtask * max_parallelism + parallelism - 1) /
                   parallelism);
    *last = (int)(((int64_t)(subtask + 1) * max_parallelism - 1) / parallelism);
}
