/*
 * eddy — control-plane connections: TCP sockets carrying RPC frames.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. The JobManager and each TaskManager talk over one TCP connection
 * (DESIGN.md §7) carrying length-prefixed protobuf-c envelopes (frame.h).
 * A connection reads with a non-blocking socket driven by poll() in its
 * owner's loop (eddy__rpc_conn_read, then eddy__rpc_conn_next per frame),
 * and sends whole frames with blocking writes under a mutex, so any thread
 * may send (a TaskManager's snapshot threads acknowledge checkpoints
 * themselves). Control messages are small; a send that cannot finish
 * within the send timeout (a peer that stopped reading) fails and marks
 * the connection dead rather than blocking its caller forever.
 *
 * THREADS. Reading belongs to one thread; eddy__rpc_send is thread-safe.
 */
#ifndef EDDY_RPC_CONN_H
#define EDDY_RPC_CONN_H

#include <stdatomic.h>

#include "common/bytes.h"
#include "rpc/frame.h"

typedef struct eddy__rpc_conn {
    int rc_fd;
    char rc_peer[64];
    eddy__frame_dec_t rc_dec;
    eddy__arena_t rc_arena; /* decoded envelopes; reset per frame */
    pthread_mutex_t rc_send_mu;
    eddy__bytes_t rc_out; /* encoding buffer, under rc_send_mu */
    atomic_bool rc_dead;
    bool rc_eof;
} eddy__rpc_conn_t;

/* Splits "host:port" (port 1..65535; host may be empty: 127.0.0.1). */
int eddy__parse_hostport(const char *s, char *host, size_t hsize, int *port,
                         eddy_error_t *err);
/* Listens on host:port (port 0: ephemeral) with SO_REUSEADDR; *fd and the
 * bound port. The error names the address ("cannot listen on
 * 127.0.0.1:6123: Address already in use"). */
int eddy__tcp_listen(const char *host, int port, int *fd, int *bound,
                     eddy_error_t *err);
/* Connects to "host:port" within timeout_ms; a blocking socket with
 * TCP_NODELAY. */
int eddy__tcp_connect(const char *addr, int64_t timeout_ms, int *fd,
                      eddy_error_t *err);

/* Takes ownership of a connected socket (made non-blocking for reads). */
void eddy__rpc_conn_init(eddy__rpc_conn_t *c, int fd, const char *peer);
/* Closes the socket and frees the buffers. */
void eddy__rpc_conn_close(eddy__rpc_conn_t *c);
/* Reads what the socket has: 0, or EDDY_ERR_IO when the peer closed the
 * connection or it failed (message says which). */
int eddy__rpc_conn_read(eddy__rpc_conn_t *c, eddy_error_t *err);
/* The next buffered envelope: 1 with *env (valid until the next call), 0
 * if none is complete yet, or an error (bad frame, other version). */
int eddy__rpc_conn_next(eddy__rpc_conn_t *c, eddy__rpc_env_t **env,
                        eddy_error_t *err);
/* Sends one envelope (any thread): 0, or EDDY_ERR_IO (the connection is
 * then dead: further sends fail at once). */
int eddy__rpc_send(eddy__rpc_conn_t *c, eddy__rpc_env_t *env,
                   eddy_error_t *err);

#endif /* EDDY_RPC_CONN_H */
