/*
 * eddy — input gates and local channels.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. A consuming subtask owns one input gate; each upstream subtask that
 * sends to it owns one channel of that gate. A channel is a bounded queue of
 * buffers: its capacity plays the role of the receiver's credit (DESIGN §7),
 * so a sender that runs ahead blocks in eddy__gate_push() and back pressure
 * travels up to the sources, channel by channel, without blocking other
 * channels. The gate keeps a FIFO of channels that hold data, so the reader
 * serves channels fairly and finds data in O(1).
 *
 * Local channels push straight into the gate; the TCP transport (src/net/)
 * receives buffers from the network and queues them on the same channels, so
 * tasks never know which transport they use. Its I/O thread must never block,
 * so it uses eddy__gate_push_nowait() on channels whose ring it has sized to
 * the credits it grants (eddy__gate_set_capacity), and learns through a
 * per-channel pop hook when the consumer takes a buffer, which is when it
 * returns a credit to the remote sender.
 *
 * THREADS. One mutex per gate covers all its channels: pushes and pops are per
 * buffer (hundreds of records), so the lock is cheap. Condition variables are
 * signalled only when someone waits.
 */
#ifndef EDDY_RUNTIME_CHANNEL_H
#define EDDY_RUNTIME_CHANNEL_H

#include "runtime/buffer.h"

typedef struct eddy__gate eddy__gate_t;

/* Called when the consumer takes a buffer from a channel (see
 * eddy__gate_set_pop_hook). */
typedef void (*eddy__gate_pop_fn)(void *arg);

typedef struct eddy__inchan {
    eddy__gate_t *ic_gate;
    int ic_index;
    eddy__buffer_t **ic_ring;
    int ic_cap;
    int ic_head;
    int ic_count;
    bool ic_in_ready;
    bool ic_blocked; /* aligning a checkpoint: not served */
    int ic_writer_waiting;
    pthread_cond_t ic_space;
    atomic_uint_fast64_t ic_bp_ns; /* time the sender spent blocked */
    eddy__gate_pop_fn ic_on_pop;   /* remote channels: returns a credit */
    void *ic_on_pop_arg;
} eddy__inchan_t;

struct eddy__gate {
    pthread_mutex_t g_mu;
    pthread_cond_t g_data;
    int g_reader_waiting;
    eddy__inchan_t *g_chans;
    int g_n;
    int *g_ready; /* ring of channel indexes holding data */
    int g_rhead;
    int g_rcount;
    bool g_poked; /* eddy__gate_poke: the next wait returns at once */
    atomic_int *g_cancel;
};

/* Creates a gate of `nchannels` channels holding `capacity` buffers each. */
eddy__gate_t *eddy__gate_new(int nchannels, int capacity, atomic_int *cancel);
/* Destroys the gate, releasing any buffers still queued. */
void eddy__gate_destroy(eddy__gate_t *g);
/*
 * Queues `buf` on a channel (an eddy__push_fn; target is eddy__inchan_t*).
 * Blocks while the channel is full. Returns 0, or EDDY_ERR_CANCELED if the
 * cancel flag was raised (the buffer is then released).
 */
int eddy__gate_push(void *inchan, eddy__buffer_t *buf);
/*
 * Queues `buf` on a channel if it has room, never blocking. Returns 0, or
 * EDDY_ERR_BUSY if the channel is full, in which case the caller still owns
 * `buf`. Ignores the cancel flag: a cancelled gate is drained by
 * eddy__gate_destroy like any other.
 */
int eddy__gate_push_nowait(void *inchan, eddy__buffer_t *buf);
/*
 * Grows a channel's ring so it holds at least `capacity` buffers (never
 * shrinks it). Buffers already queued keep their order.
 */
void eddy__gate_set_capacity(eddy__gate_t *g, int channel, int capacity);
/*
 * Installs (or, with fn == NULL, removes) a hook called each time the
 * consumer takes a buffer from `channel`. The hook runs on the consumer's
 * thread with the gate's lock held, so it must be quick and must not call
 * back into the gate; in exchange, once eddy__gate_set_pop_hook(g, ch, NULL,
 * NULL) has returned, no call of the old hook is running or will run, and
 * its `arg` may be freed.
 */
void eddy__gate_set_pop_hook(eddy__gate_t *g, int channel, eddy__gate_pop_fn fn,
                             void *arg);
/*
 * Takes the next buffer and its channel index. With block == false returns
 * NULL at once if nothing is queued; with block == true waits, returning NULL
 * only when cancelled.
 */
eddy__buffer_t *eddy__gate_pop(eddy__gate_t *g, int *channel, bool block);
/* Like a blocking pop, but gives up at `deadline_ns` (eddy__now_ns clock):
 * returns NULL on timeout or cancellation. */
eddy__buffer_t *eddy__gate_pop_until(eddy__gate_t *g, int *channel,
                                     uint64_t deadline_ns);
/*
 * Checkpoint alignment: a blocked channel keeps queueing (up to its
 * capacity, then its sender blocks) but is not served until unblocked.
 */
void eddy__gate_block(eddy__gate_t *g, int channel);
void eddy__gate_unblock(eddy__gate_t *g, int channel);
/* Makes the reader's current or next wait return NULL once, so it looks at
 * its mailbox (checkpoint notifications). */
void eddy__gate_poke(eddy__gate_t *g);
/* Wakes every waiter of the gate (used on cancellation). */
void eddy__gate_wake(eddy__gate_t *g);
/* Buffers queued on a channel (tests, metrics). */
int eddy__gate_queued(eddy__gate_t *g, int channel);

#endif /* EDDY_RUNTIME_CHANNEL_H */
