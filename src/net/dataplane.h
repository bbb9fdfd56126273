/*
 * eddy — the TaskManager data plane: buffers between subtasks in different
 * TaskManagers, over TCP, with credit-based flow control (DESIGN.md §7).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. One eddy__dp_t per TaskManager process listens on the data port
 * and keeps at most one TCP connection per peer TaskManager; every channel
 * between the two, in both directions, is multiplexed over it. A producer's
 * writer (eddy__outchan_t) whose consumer lives elsewhere pushes its full
 * buffers into eddy__dp_push; the receiving data plane copies each into a
 * buffer of its own receive pool and queues it on the consumer's gate
 * channel, so operators never know which transport they use.
 *
 * Flow control is by credit, per channel: a sender sends a buffer only
 * against a credit, and every credit stands for a free receive buffer and a
 * free slot in the consumer's channel, so the receiving I/O thread never has
 * to wait and a slow consumer stops only its own producers. A remote input
 * starts with do_exclusive credits; the receiver returns one each time the
 * consumer takes a buffer from the channel (a gate pop hook). A producer may
 * queue do_exclusive buffers beyond its credits before it blocks; buffers
 * queued without credit are announced as backlog, and the receiver lends
 * such a channel floating credits from a budget of do_floating shared by the
 * whole TaskManager, taking them back when the channel stops being
 * backlogged. The receive pool is sized to what can be promised: do_floating
 * plus do_exclusive + 1 per input (the extra one is the buffer the consumer
 * holds after its credit went back). docs/network.md has the frame format,
 * the credit rules, the pairing rule and why.
 *
 * Failure. A peer that vanishes, resets, or sends a malformed frame costs
 * exactly that connection: do_on_peer_lost reports it, every output towards
 * that peer fails with EDDY_ERR_IO (blocked pushes wake), inputs from it
 * stop granting credit, and other connections carry on. Data for a channel
 * nobody (or no longer anybody) listens to is read and dropped.
 *
 * THREADS. One I/O thread per data plane owns the listening socket and every
 * connection: it accepts, connects, reads, and writes all frames (poll(2)
 * over the sockets and an eventfd that the other threads use to wake it).
 * Task threads call eddy__dp_push, which queues the buffer on its output
 * (waiting on a condition variable while do_exclusive buffers already wait
 * without credit) and wakes the I/O thread; the I/O thread writes queued
 * buffers of all outputs of a connection with one sendmsg() and releases
 * them. Consumer threads return credits through the
 * gate's pop hook, which only updates counters and wakes the I/O thread. The
 * I/O thread never blocks on a task (its socket I/O is non-blocking and it
 * queues into gates with eddy__gate_push_nowait), so two TaskManagers pushing
 * to each other cannot deadlock on their sockets. Setup and teardown calls
 * (add_input, add_output, release_job, remove_output, wake, stats) may come
 * from any thread except do_on_peer_lost's (which is the I/O thread).
 *
 * Lock order: dp_rmu (inputs table) → gate lock → dp_cmu (credits, leaf);
 * dp_mu (outputs, peers) is never held together with those; buffer pool
 * locks are leaves.
 */
#ifndef EDDY_NET_DATAPLANE_H
#define EDDY_NET_DATAPLANE_H

#include <stdatomic.h>

#include "runtime/buffer.h"
#include "runtime/channel.h"

typedef struct eddy__dp eddy__dp_t;         /* one per TaskManager process */
typedef struct eddy__dp_out eddy__dp_out_t; /* sender side of a channel */

/* Identifies a channel cluster-wide. */
typedef struct eddy__dp_chan_id {
    uint64_t ci_job; /* caller's tag for (job, attempt); new attempt, new tag */
    uint32_t ci_task; /* consumer task's global index */
    uint32_t ci_chan; /* channel index inside the consumer's gate */
} eddy__dp_chan_id_t;

typedef struct eddy__dp_options {
    const char *do_bind;           /* default "127.0.0.1" */
    int do_port;                   /* 0 = ephemeral */
    const char *do_advertise_host; /* host in eddy__dp_address; default: bind
                                      (127.0.0.1 for 0.0.0.0, ::1 for ::) */
    const char *do_self_id;        /* this TaskManager's id (pairing tie-break,
                                      messages); default: the address */
    size_t do_segment_size;        /* buffer size, default 32 KiB (must equal
                                      the job's buffer size) */
    int do_exclusive; /* exclusive credits per remote input channel, def. 32 */
    int do_floating;  /* floating buffers per TaskManager, default 8 */
    /*
     * Called from the I/O thread when a peer connection is lost (EOF, reset,
     * protocol error, refused version, failed connect), with the peer's
     * address and a one-line reason. The TaskManager fails the affected
     * tasks. Must not call eddy__dp_release_job or eddy__dp_destroy.
     */
    void (*do_on_peer_lost)(void *arg, const char *peer_addr,
                            const char *reason);
    void *do_arg;
} eddy__dp_options_t;

/* Counters for metrics and tests. */
typedef struct eddy__dp_stats {
    int ds_connections; /* established TCP connections (a connection to our
                           own address counts twice: both ends are ours) */
    uint64_t ds_bytes_out, ds_bytes_in;     /* socket bytes, all frames */
    uint64_t ds_buffers_out, ds_buffers_in; /* DATA frames written / read */
} eddy__dp_stats_t;

/* Credit and memory figures (tests, metrics). */
typedef struct eddy__dp_credit_stats {
    size_t cs_pool_allocated;  /* receive buffers that exist */
    size_t cs_pool_max;        /* the receive pool's limit */
    int cs_floating_free;      /* floating credits not lent out */
    int cs_floating_total;     /* do_floating */
    int cs_inputs, cs_outputs; /* channels registered (not released) */
    uint64_t cs_dropped;       /* DATA frames for unknown channels, dropped */
} eddy__dp_credit_stats_t;

/* @brief Fills `o` with the defaults. */
void eddy__dp_options_init(eddy__dp_options_t *o);
/*
 * @brief Binds the data port and starts the I/O thread.
 * @returns the data plane, or NULL with `err` set (EDDY_ERR_INVALID for bad
 * options, EDDY_ERR_IO if the port cannot be bound).
 */
eddy__dp_t *eddy__dp_new(const eddy__dp_options_t *o, eddy_error_t *err);
/* @brief "host:port" ("[::1]:port" for IPv6) — announced at registration. */
const char *eddy__dp_address(const eddy__dp_t *dp);
/*
 * @brief Stops the I/O thread and frees everything; NULL is a no-op.
 * @remark Call after every job was released and the gates they fed were
 * destroyed (their queued buffers belong to this data plane's pool), and
 * while no thread is inside eddy__dp_push. Outputs still registered are
 * freed here, their queued buffers released to their own pools.
 */
void eddy__dp_destroy(eddy__dp_t *dp);

/*
 * @brief Receiver side: channel `ic` of a consumer's gate is fed by the
 * producer at the TaskManager whose data address is `peer_addr` (our own
 * address only in tests; in-process channels never use the data plane).
 * @remark Grows the channel's ring to do_exclusive + do_floating, installs
 * the gate's pop hook on it, grants do_exclusive credits and connects to the
 * peer if needed. The gate must outlive eddy__dp_release_job(id.ci_job).
 * @returns 0, EDDY_ERR_INVALID (bad address), or EDDY_ERR_STATE (the
 * channel id already has an input).
 */
int eddy__dp_add_input(eddy__dp_t *dp, eddy__dp_chan_id_t id,
                       const char *peer_addr, eddy__inchan_t *ic,
                       eddy_error_t *err);
/*
 * @brief Sender side: a channel towards the consumer at `peer_addr`.
 * `cancel`: when *cancel != 0 a blocked push gives up (EDDY_ERR_CANCELED);
 * raise it, then call eddy__dp_wake.
 * @returns the output (owned by the data plane: eddy__dp_remove_output or
 * eddy__dp_destroy frees it), or NULL with `err` set (EDDY_ERR_INVALID,
 * EDDY_ERR_STATE if the channel id already has an output).
 */
eddy__dp_out_t *eddy__dp_add_output(eddy__dp_t *dp, eddy__dp_chan_id_t id,
                                    const char *peer_addr, atomic_int *cancel,
                                    eddy_error_t *err);
/*
 * @brief An eddy__push_fn (target = eddy__dp_out_t*): queues the buffer on
 * the output; the I/O thread sends it as soon as a credit is available. The
 * queue may hold do_exclusive buffers beyond the credits the output has;
 * when it does, the push blocks (and counts the wait) until a credit comes.
 * Always takes ownership of `buf` (released once written, or at once on
 * error).
 * @returns 0, EDDY_ERR_CANCELED (cancel flag, or the job was released),
 * EDDY_ERR_IO (the connection to the peer was lost; eddy__dp_out_status has
 * the message), or EDDY_ERR_INVALID (buffer larger than the segment size).
 * @locality the producing task's thread; one thread per output.
 */
int eddy__dp_push(void *out, eddy__buffer_t *buf);
/* @brief Nanoseconds pushes on this output spent waiting for credit (the
 * task's back-pressure measure), including a wait still in progress. */
uint64_t eddy__dp_out_wait_ns(const eddy__dp_out_t *o);
/*
 * @brief 0 while the output is usable; otherwise the code a push would
 * return, with `err` (optional) saying why, e.g. "connection to TaskManager
 * 127.0.0.1:4711 lost: connection reset by peer".
 */
int eddy__dp_out_status(eddy__dp_out_t *o, eddy_error_t *err);
/*
 * @brief Frees an output. No thread may be inside eddy__dp_push on it or
 * use it afterwards. Drops its unsent buffers like eddy__dp_release_job.
 */
void eddy__dp_remove_output(eddy__dp_t *dp, eddy__dp_out_t *o);
/*
 * @brief Drops every input and output of a job tag (a cancelled or finished
 * attempt): blocked pushes return EDDY_ERR_CANCELED and so do later ones,
 * unsent buffers go back to their pools (including those the I/O thread had
 * already taken; a half-written one is finished from a copy), late data for
 * those channels is discarded, credits and buffers are returned. Must be
 * called before the gates of that attempt are destroyed. Outputs stay
 * allocated (pushes on them fail) until eddy__dp_remove_output.
 */
void eddy__dp_release_job(eddy__dp_t *dp, uint64_t job_tag);
/* @brief Wakes pushers blocked on credit so they look at their cancel flag. */
void eddy__dp_wake(eddy__dp_t *dp);
void eddy__dp_stats(eddy__dp_t *dp, eddy__dp_stats_t *out);
void eddy__dp_credit_stats(eddy__dp_t *dp, eddy__dp_credit_stats_t *out);

/* ---- wire format (docs/network.md; exposed for tests and fuzzers) ---- */

#define EDDY__DP_VERSION 1u
#define EDDY__DP_MAGIC 0x59444445u /* "EDDY" little-endian */
#define EDDY__DP_HDR_SIZE 28u
/* Largest HELLO / HELLO_ACK / REJECT payload accepted. */
#define EDDY__DP_CTL_MAX 1024u
/* Longest self id and address carried in a HELLO. */
#define EDDY__DP_NAME_MAX 255u

typedef enum eddy__dp_frame_type {
    EDDY__DP_HELLO = 1,     /* first frame of a connection (the dialer's) */
    EDDY__DP_HELLO_ACK = 2, /* the acceptor keeps this connection */
    EDDY__DP_REJECT = 3,    /* the acceptor refuses it (arg: reason code) */
    EDDY__DP_DATA = 4,      /* one buffer's bytes (arg: sender's backlog) */
    EDDY__DP_CREDIT = 5,    /* arg more credits for a channel */
    EDDY__DP_BACKLOG = 6,   /* sender has arg buffers waiting */
} eddy__dp_frame_type_t;

typedef enum eddy__dp_reject {
    EDDY__DP_REJECT_DUPLICATE = 1, /* simultaneous connect: use the other */
    EDDY__DP_REJECT_VERSION = 2,   /* protocol version or magic mismatch */
} eddy__dp_reject_t;

typedef struct eddy__dp_hdr {
    uint8_t h_type;          /* eddy__dp_frame_type_t */
    uint32_t h_len;          /* payload bytes after the header */
    uint32_t h_arg;          /* backlog, credits or reject code */
    eddy__dp_chan_id_t h_id; /* DATA, CREDIT, BACKLOG */
} eddy__dp_hdr_t;

/* @brief Encodes a frame header (little-endian, EDDY__DP_HDR_SIZE bytes). */
void eddy__dp_hdr_encode(unsigned char *out, const eddy__dp_hdr_t *h);
/* @brief Decodes and checks a header: known type, reserved bytes zero.
 * @returns 0 or EDDY_ERR_FORMAT. */
int eddy__dp_hdr_decode(const unsigned char *in, eddy__dp_hdr_t *h,
                        eddy_error_t *err);
/*
 * @brief Encodes a whole HELLO or HELLO_ACK frame into `out`.
 * @returns its size, or 0 if it does not fit `cap` or a name is too long.
 */
size_t eddy__dp_hello_encode(unsigned char *out, size_t cap, int type,
                             const char *self_id, const char *addr,
                             uint32_t version);

#endif /* EDDY_NET_DATAPLANE_H */
