/*
 * eddy — memory helpers and the arena allocator.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The control-plane allocators abort on failure: a job graph or a plan that
 * cannot be allocated is not worth unwinding. Data-path code uses the try
 * variants, arenas and buffer pools instead.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/internal.h"

static void oom(size_t size)
{
    fprintf(stderr, "eddy: out of memory allocating %zu bytes\n", size);
    abort();
}

void *eddy__malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        oom(size);
    }
    return p;
}

void *eddy__calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        oom(n * size);
    }
    return p;
}

void *eddy__realloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL) {
        oom(size);
    }
    return q;
}

char *eddy__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = eddy__malloc(n);
    memcpy(d, s, n);
    return d;
}

void eddy__free(void *p)
{
    /* Like uv__free: keep errno intact so callers can free on error paths. */
    int saved = errno;
    free(p);
    errno = saved;
}

void *eddy__try_malloc(size_t size)
{
    return malloc(size ? size : 1);
}

void *eddy__try_realloc(void *p, size_t size)
{
    return realloc(p, size ? size : 1);
}

void eddy__grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return;
    }
    size_t ncap = *cap ? *cap * 2 : 8;
    while (ncap < need) {
        ncap *= 2;
    }
    *arr = eddy__realloc(*arr, ncap * elem);
    *cap = ncap;
}

/* ---- arena ---- */

struct eddy__arena_chunk {
    eddy__arena_chunk_t *next;
    size_t size; /* usable bytes in data[] */
    size_t used;
    _Alignas(16) unsigned char data[];
};

void eddy__arena_init(eddy__arena_t *ar, size_t chunk_size)
{
    ar->ar_head = NULL;
    ar->ar_chunk_size = chunk_size ? chunk_size : 64 * 1024;
    ar->ar_bytes = 0;
}

void eddy__arena_close(eddy__arena_t *ar)
{
    eddy__arena_chunk_t *c = ar->ar_head;
    while (c != NULL) {
        eddy__arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    ar->ar_head = NULL;
    ar->ar_bytes = 0;
}

void *eddy__arena_alloc(eddy__arena_t *ar, size_t size)
{
    size_t need = (size + 7) & ~(size_t)7;
    eddy__arena_chunk_t *c = ar->ar_head;
    if (EDDY_UNLIKELY(c == NULL || c->size - c->used < need)) {
        size_t csize = ar->ar_chunk_size;
        while (csize < need) {
            csize *= 2;
        }
        c = eddy__try_malloc(sizeof(*c) + csize);
        if (c == NULL) {
            return NULL;
        }
        c->size = csize;
        c->used = 0;
        c->next = ar->ar_head;
        ar->ar_head = c;
    }
    void *p = c->data + c->used;
    c->used += need;
    ar->ar_bytes += need;
    return p;
}

void eddy__arena_reset(eddy__arena_t *ar)
{
    eddy__arena_chunk_t *keep = NULL;
    eddy__arena_chunk_t *c = ar->ar_head;
    while (c != NULL) {
        eddy__arena_chunk_t *next = c->next;
        if (keep == NULL || c->size > keep->size) {
            if (keep != NULL) {
                free(keep);
            }
            keep = c;
        } else {
            free(c);
        }
        c = next;
    }
    if (keep != NULL) {
        keep->used = 0;
        keep->next = NULL;
    }
    ar->ar_head = keep;
    ar->ar_bytes = 0;
}

void *eddy__arena_memdup(eddy__arena_t *ar, const void *p, size_t n)
{
    void *d = eddy__arena_alloc(ar, n);
    if (d != NULL && n > 0) {
        memcpy(d, p, n);
    }
    return d;
}

char *eddy__arena_strdup(eddy__arena_t *ar, const char *s)
{
    return eddy__arena_memdup(ar, s, strlen(s) + 1);
}

uint64_t eddy__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

char *eddy__fmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return buf;
}
