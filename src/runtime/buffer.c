/*
 * eddy — the buffer pool (see buffer.h for the design).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include <assert.h>
#include <stdlib.h>

#include "runtime/buffer.h"

eddy__pool_t *eddy__pool_new(size_t segment_size, size_t max_buffers)
{
    eddy__pool_t *pl = eddy__calloc(1, sizeof(*pl));
    pthread_mutex_init(&pl->pl_mu, NULL);
    pthread_cond_init(&pl->pl_cv, NULL);
    pl->pl_segment_size = segment_size;
    pl->pl_max = max_buffers ? max_buffers : 1;
    atomic_init(&pl->pl_wait_ns, 0);
    return pl;
}

void eddy__pool_destroy(eddy__pool_t *pl)
{
    if (pl == NULL) {
        return;
    }
    assert(pl->pl_available == pl->pl_allocated && "buffers still in use");
    eddy__buffer_t *b = pl->pl_free;
    while (b != NULL) {
        eddy__buffer_t *next = b->buf_next;
        free(b);
        b = next;
    }
    pthread_cond_destroy(&pl->pl_cv);
    pthread_mutex_destroy(&pl->pl_mu);
    free(pl);
}

void eddy__pool_set_cancel(eddy__pool_t *pl, atomic_int *cancel)
{
    pl->pl_cancel = cancel;
}

/* Called with the lock held. */
static eddy__buffer_t *take_locked(eddy__pool_t *pl)
{
    eddy__buffer_t *b = pl->pl_free;
    if (b != NULL) {
        pl->pl_free = b->buf_next;
        pl->pl_available--;
    } else if (pl->pl_allocated < pl->pl_max) {
        b = eddy__try_malloc(sizeof(*b) + pl->pl_segment_size);
        if (b == NULL) {
            return NULL;
        }
        b->buf_pool = pl;
        b->buf_cap = (uint32_t)pl->pl_segment_size;
        pl->pl_allocated++;
    } else {
        return NULL;
    }
    b->buf_next = NULL;
    b->buf_len = 0;
    return b;
}

static bool cancelled(eddy__pool_t *pl)
{
    return pl->pl_cancel != NULL &&
           atomic_load_explicit(pl->pl_cancel, memory_order_relaxed) != 0;
}

eddy__buffer_t *eddy__pool_get(eddy__pool_t *pl)
{
    eddy__mutex_lock(&pl->pl_mu);
    eddy__buffer_t *b = take_locked(pl);
    if (b == NULL && !(pl->pl_free == NULL && pl->pl_allocated < pl->pl_max)) {
        uint64_t t0 = eddy__now_ns();
        while (b == NULL && !cancelled(pl)) {
            pl->pl_waiters++;
            pthread_cond_wait(&pl->pl_cv, &pl->pl_mu);
            pl->pl_waiters--;
            b = take_locked(pl);
        }
        atomic_fetch_add_explicit(&pl->pl_wait_ns, eddy__now_ns() - t0,
                                  memory_order_relaxed);
    }
    eddy__mutex_unlock(&pl->pl_mu);
    return b;
}

eddy__buffer_t *eddy__pool_try_get(eddy__pool_t *pl)
{
    eddy__mutex_lock(&pl->pl_mu);
    eddy__buffer_t *b = take_locked(pl);
    eddy__mutex_unlock(&pl->pl_mu);
    return b;
}

void eddy__buffer_release(eddy__buffer_t *buf)
{
    if (buf == NULL) {
        return;
    }
    eddy__pool_t *pl = buf->buf_pool;
    eddy__mutex_lock(&pl->pl_mu);
    if (pl->pl_allocated > pl->pl_max) {
        /* The limit was lowered while this buffer was out. */
        pl->pl_allocated--;
        eddy__mutex_unlock(&pl->pl_mu);
        free(buf);
        return;
    }
    buf->buf_next = pl->pl_free;
    pl->pl_free = buf;
    pl->pl_available++;
    if (pl->pl_waiters > 0) {
        pthread_cond_signal(&pl->pl_cv);
    }
    eddy__mutex_unlock(&pl->pl_mu);
}

void eddy__pool_wake(eddy__pool_t *pl)
{
    eddy__mutex_lock(&pl->pl_mu);
    pthread_cond_broadcast(&pl->pl_cv);
    eddy__mutex_unlock(&pl->pl_mu);
}

size_t eddy__pool_available(eddy__pool_t *pl)
{
    eddy__mutex_lock(&pl->pl_mu);
    size_t n = pl->pl_available;
    if (pl->pl_max > pl->pl_allocated) {
        n += pl->pl_max - pl->pl_allocated;
    }
    eddy__mutex_unlock(&pl->pl_mu);
    return n;
}

void eddy__pool_add_capacity(eddy__pool_t *pl, size_t n)
{
    eddy__mutex_lock(&pl->pl_mu);
    pl->pl_max += n;
    if (pl->pl_waiters > 0) {
        pthread_cond_broadcast(&pl->pl_cv);
    }
    eddy__mutex_unlock(&pl->pl_mu);
}

void eddy__pool_remove_capacity(eddy__pool_t *pl, size_t n)
{
    eddy__buffer_t *surplus = NULL;
    eddy__mutex_lock(&pl->pl_mu);
    pl->pl_max = n < pl->pl_max ? pl->pl_max - n : 0;
    while (pl->pl_allocated > pl->pl_max && pl->pl_free != NULL) {
        eddy__buffer_t *b = pl->pl_free;
        pl->pl_free = b->buf_next;
        pl->pl_available--;
        pl->pl_allocated--;
        b->buf_next = surplus;
        surplus = b;
    }
    eddy__mutex_unlock(&pl->pl_mu);
    /* Outside the lock: free() can take a while. */
    while (surplus != NULL) {
        eddy__buffer_t *next = surplus->buf_next;
        free(surplus);
        surplus = next;
    }
}
