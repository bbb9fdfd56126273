/*
 * eddy — input gates and local channels (see channel.h for the design).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include <stdlib.h>
#include <time.h>

#include "runtime/channel.h"

static bool is_cancelled(const eddy__gate_t *g)
{
    return g->g_cancel != NULL &&
           atomic_load_explicit(g->g_cancel, memory_order_relaxed) != 0;
}

eddy__gate_t *eddy__gate_new(int nchannels, int capacity, atomic_int *cancel)
{
    eddy__gate_t *g = eddy__calloc(1, sizeof(*g));
    pthread_mutex_init(&g->g_mu, NULL);
    /* Timed waits use the monotonic clock (eddy__now_ns). */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->g_data, &ca);
    pthread_condattr_destroy(&ca);
    g->g_n = nchannels;
    g->g_cancel = cancel;
    g->g_chans = eddy__calloc((size_t)nchannels, sizeof(eddy__inchan_t));
    g->g_ready = eddy__calloc((size_t)nchannels, sizeof(int));
    for (int i = 0; i < nchannels; i++) {
        eddy__inchan_t *ic = &g->g_chans[i];
        ic->ic_gate = g;
        ic->ic_index = i;
        ic->ic_cap = capacity < 1 ? 1 : capacity;
        ic->ic_ring = eddy__calloc((size_t)ic->ic_cap, sizeof(void *));
        pthread_cond_init(&ic->ic_space, NULL);
        atomic_init(&ic->ic_bp_ns, 0);
    }
    return g;
}

void eddy__gate_destroy(eddy__gate_t *g)
{
    if (g == NULL) {
        return;
    }
    for (int i = 0; i < g->g_n; i++) {
        eddy__inchan_t *ic = &g->g_chans[i];
        while (ic->ic_count > 0) {
            eddy__buffer_release(ic->ic_ring[ic->ic_head]);
            ic->ic_head = (ic->ic_head + 1) % ic->ic_cap;
            ic->ic_count--;
        }
        pthread_cond_destroy(&ic->ic_space);
        free(ic->ic_ring);
    }
    free(g->g_chans);
    free(g->g_ready);
    pthread_cond_destroy(&g->g_data);
    pthread_mutex_destroy(&g->g_mu);
    free(g);
}

/* Lock held. */
static void ready_append(eddy__gate_t *g, eddy__inchan_t *ic)
{
    g->g_ready[(g->g_rhead + g->g_rcount) % g->g_n] = ic->ic_index;
    g->g_rcount++;
    ic->ic_in_ready = true;
}

int eddy__gate_push(void *inchan, eddy__buffer_t *buf)
{
    eddy__inchan_t *ic = inchan;
    eddy__gate_t *g = ic->ic_gate;
    eddy__mutex_lock(&g->g_mu);
    if (ic->ic_count == ic->ic_cap) {
        uint64_t t0 = eddy__now_ns();
        while (ic->ic_count == ic->ic_cap && !is_cancelled(g)) {
            ic->ic_writer_waiting++;
            pthread_cond_wait(&ic->ic_space, &g->g_mu);
            ic->ic_writer_waiting--;
        }
        atomic_fetch_add_explicit(&ic->ic_bp_ns, eddy__now_ns() - t0,
                                  memory_order_relaxed);
    }
    if (is_cancelled(g)) {
        eddy__mutex_unlock(&g->g_mu);
        eddy__buffer_release(buf);
        return EDDY_ERR_CANCELED;
    }
    ic->ic_ring[(ic->ic_head + ic->ic_count) % ic->ic_cap] = buf;
    ic->ic_count++;
    if (!ic->ic_in_ready && !ic->ic_blocked) {
        ready_append(g, ic);
    }
    if (g->g_reader_waiting) {
        pthread_cond_signal(&g->g_data);
    }
    eddy__mutex_unlock(&g->g_mu);
    return 0;
}

int eddy__gate_push_nowait(void *inchan, eddy__buffer_t *buf)
{
    eddy__inchan_t *ic = inchan;
    eddy__gate_t *g = ic->ic_gate;
    eddy__mutex_lock(&g->g_mu);
    if (ic->ic_count == ic->ic_cap) {
        eddy__mutex_unlock(&g->g_mu);
        return EDDY_ERR_BUSY;
    }
    ic->ic_ring[(ic->ic_head + ic->ic_count) % ic->ic_cap] = buf;
    ic->ic_count++;
    if (!ic->ic_in_ready && !ic->ic_blocked) {
        ready_append(g, ic);
    }
    if (g->g_reader_waiting) {
        pthread_cond_signal(&g->g_data);
    }
    eddy__mutex_unlock(&g->g_mu);
    return 0;
}

void eddy__gate_set_capacity(eddy__gate_t *g, int channel, int capacity)
{
    eddy__mutex_lock(&g->g_mu);
    eddy__inchan_t *ic = &g->g_chans[channel];
    if (capacity > ic->ic_cap) {
        eddy__buffer_t **ring =
            eddy__calloc((size_t)capacity, sizeof(eddy__buffer_t *));
        for (int i = 0; i < ic->ic_count; i++) {
            ring[i] = ic->ic_ring[(ic->ic_head + i) % ic->ic_cap];
        }
        free(ic->ic_ring);
        ic->ic_ring = ring;
        ic->ic_head = 0;
        ic->ic_cap = capacity;
        if (ic->ic_writer_waiting) {
            pthread_cond_broadcast(&ic->ic_space);
        }
    }
    eddy__mutex_unlock(&g->g_mu);
}

void eddy__gate_set_pop_hook(eddy__gate_t *g, int channel, eddy__gate_pop_fn fn,
                             void *arg)
{
    eddy__mutex_lock(&g->g_mu);
    g->g_chans[channel].ic_on_pop = fn;
    g->g_chans[channel].ic_on_pop_arg = fn != NULL ? arg : NULL;
    eddy__mutex_unlock(&g->g_mu);
}

/* deadline: 0 = do not wait, UINT64_MAX = wait without limit. */
static eddy__buffer_t *pop(eddy__gate_t *g, int *channel, uint64_t deadline)
{
    eddy__mutex_lock(&g->g_mu);
    while (g->g_rcount == 0) {
        if (deadline == 0 || is_cancelled(g) || g->g_poked) {
            g->g_poked = deadline == 0 && g->g_poked;
            eddy__mutex_unlock(&g->g_mu);
            return NULL;
        }
        g->g_reader_waiting++;
        if (deadline == UINT64_MAX) {
            pthread_cond_wait(&g->g_data, &g->g_mu);
        } else {
            if (eddy__now_ns() >= deadline) {
                g->g_reader_waiting--;
                eddy__mutex_unlock(&g->g_mu);
                return NULL;
            }
            struct timespec ts = {(time_t)(deadline / 1000000000u),
                                  (long)(deadline % 1000000000u)};
            pthread_cond_timedwait(&g->g_data, &g->g_mu, &ts);
        }
        g->g_reader_waiting--;
    }
    int idx = g->g_ready[g->g_rhead];
    g->g_rhead = (g->g_rhead + 1) % g->g_n;
    g->g_rcount--;
    eddy__inchan_t *ic = &g->g_chans[idx];
    eddy__buffer_t *b = ic->ic_ring[ic->ic_head];
    ic->ic_head = (ic->ic_head + 1) % ic->ic_cap;
    ic->ic_count--;
    ic->ic_in_ready = false;
    if (ic->ic_count > 0 && !ic->ic_blocked) {
        /* Back of the queue: channels take turns, one buffer each. */
        ready_append(g, ic);
    }
    if (ic->ic_writer_waiting) {
        pthread_cond_signal(&ic->ic_space);
    }
    if (ic->ic_on_pop != NULL) {
        /* Under the lock, so that removing the hook waits for this call. */
        ic->ic_on_pop(ic->ic_on_pop_arg);
    }
    eddy__mutex_unlock(&g->g_mu);
    *channel = idx;
    return b;
}

eddy__buffer_t *eddy__gate_pop(eddy__gate_t *g, int *channel, bool block)
{
    return pop(g, channel, block ? UINT64_MAX : 0);
}

eddy__buffer_t *eddy__gate_pop_until(eddy__gate_t *g, int *channel,
                                     uint64_t deadline_ns)
{
    return pop(g, channel, deadline_ns == 0 ? 1 : deadline_ns);
}

void eddy__gate_block(eddy__gate_t *g, int channel)
{
    eddy__mutex_lock(&g->g_mu);
    eddy__inchan_t *ic = &g->g_chans[channel];
    if (!ic->ic_blocked) {
        ic->ic_blocked = true;
        if (ic->ic_in_ready) {
            /* Take it out of the ready ring, keeping the others' order. */
            int n = g->g_rcount, k = 0;
            for (int i = 0; i < n; i++) {
                int idx = g->g_ready[(g->g_rhead + i) % g->g_n];
                if (idx != channel) {
                    g->g_ready[(g->g_rhead + k++) % g->g_n] = idx;
                }
            }
            g->g_rcount = k;
            ic->ic_in_ready = false;
        }
    }
    eddy__mutex_unlock(&g->g_mu);
}

void eddy__gate_unblock(eddy__gate_t *g, int channel)
{
    eddy__mutex_lock(&g->g_mu);
    eddy__inchan_t *ic = &g->g_chans[channel];
    if (ic->ic_blocked) {
        ic->ic_blocked = false;
        if (ic->ic_count > 0 && !ic->ic_in_ready) {
            ready_append(g, ic);
        }
    }
    eddy__mutex_unlock(&g->g_mu);
}

void eddy__gate_poke(eddy__gate_t *g)
{
    eddy__mutex_lock(&g->g_mu);
    g->g_poked = true;
    pthread_cond_broadcast(&g->g_data);
    eddy__mutex_unlock(&g->g_mu);
}

void eddy__gate_wake(eddy__gate_t *g)
{
    eddy__mutex_lock(&g->g_mu);
    pthread_cond_broadcast(&g->g_data);
    for (int i = 0; i < g->g_n; i++) {
        pthread_cond_broadcast(&g->g_chans[i].ic_space);
    }
    eddy__mutex_unlock(&g->g_mu);
}

int eddy__gate_queued(eddy__gate_t *g, int channel)
{
    eddy__mutex_lock(&g->g_mu);
    int n = g->g_chans[channel].ic_count;
    eddy__mutex_unlock(&g->g_mu);
    return n;
}
