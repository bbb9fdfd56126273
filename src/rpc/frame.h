/*
 * eddy — control-plane framing: length-prefixed protobuf-c envelopes over a
 * byte stream (DESIGN.md §7).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * A frame is a big-endian u32 payload length followed by that many bytes;
 * the payload is one packed eddy.rpc.Envelope (src/rpc/eddy.proto). TCP
 * delivers the stream in arbitrary pieces, so the decoder accepts any chunk
 * size (a header split across reads, several frames in one read) and hands
 * out whole frames only.
 *
 * Limits. A frame longer than the decoder's maximum (default 16 MiB) is
 * rejected as soon as its header is complete, before any of its payload is
 * buffered, so a corrupt or hostile length cannot make the process allocate
 * 4 GiB. A framing error leaves the stream out of step (the next header
 * cannot be found), so it is sticky: the connection must be closed.
 *
 * Memory. The decoder keeps one growable buffer that it compacts and
 * reuses, the encoder appends to a caller-owned eddy__bytes_t that the
 * caller resets and reuses, and eddy__rpc_decode unpacks into a
 * caller-owned arena: steady-state traffic of small frames does not call
 * malloc at all once the buffers have grown.
 *
 * Versions. Every envelope carries EDDY__RPC_VERSION; eddy__rpc_decode
 * rejects any other value with a message naming the peer and both
 * versions, since a peer speaking another protocol would otherwise be
 * misread field by field.
 *
 * THREADS. None of this is thread-safe; a connection is owned by one
 * thread (STYLE §8).
 */
#ifndef EDDY_RPC_FRAME_H
#define EDDY_RPC_FRAME_H

#include "common/bytes.h"
#include "common/internal.h"
#include "rpc/eddy.pb-c.h"

/* The protocol version this build speaks (Envelope.version). */
#define EDDY__RPC_VERSION 1u
/* Bytes of the length prefix. */
#define EDDY__FRAME_HEADER 4u
/* Default and hard upper bound of a frame's payload length. */
#define EDDY__FRAME_MAX_DEFAULT ((size_t)16 << 20)
#define EDDY__FRAME_MAX_LIMIT ((size_t)UINT32_MAX)

/* Short names for the generated types (protoc-c spells out the package). */
typedef Eddy__Rpc__Envelope eddy__rpc_env_t;

/* ---- incremental decoder ---- */

typedef struct eddy__frame_dec {
    unsigned char *fd_buf; /* buffered stream bytes */
    size_t fd_cap;         /* allocated size of fd_buf */
    size_t fd_start;       /* first byte not yet handed out */
    size_t fd_end;         /* end of the buffered bytes */
    size_t fd_max;         /* largest payload accepted */
    int fd_error;          /* sticky framing error, 0 if none */
    char fd_peer[64];      /* for error messages */
} eddy__frame_dec_t;

/*
 * @brief Initializes a decoder for the stream from `peer` ("host:port",
 * used only in error messages; NULL reads "peer").
 * @param max_frame largest payload accepted; 0 means EDDY__FRAME_MAX_DEFAULT.
 * Values above EDDY__FRAME_MAX_LIMIT are clamped to it.
 */
void eddy__frame_dec_init(eddy__frame_dec_t *fd, const char *peer,
                          size_t max_frame);
/* @brief Frees the buffer. The decoder may be initialized again. */
void eddy__frame_dec_close(eddy__frame_dec_t *fd);

/*
 * @brief Appends `n` bytes read from the stream.
 * @returns 0, or EDDY_ERR_FORMAT (sticky, err->fatal set) if the buffered
 * stream starts with a header announcing a frame above the maximum.
 * @remark Invalidates the payload pointer of the last eddy__frame_dec_next,
 * because the buffer is compacted and may move.
 */
int eddy__frame_dec_feed(eddy__frame_dec_t *fd, const void *p, size_t n,
                         eddy_error_t *err);

/*
 * @brief Takes the next whole frame out of the buffer.
 * @returns 1 with *payload and *len set (borrowed: valid until the next
 * eddy__frame_dec_feed or eddy__frame_dec_close), 0 if no whole frame is
 * buffered yet, or EDDY_ERR_FORMAT (sticky) for an oversized frame.
 */
int eddy__frame_dec_next(eddy__frame_dec_t *fd, const void **payload,
                         size_t *len, eddy_error_t *err);

/*
 * @brief The stream has ended (the peer closed the connection).
 * @returns 0 if it ended on a frame boundary, else EDDY_ERR_FORMAT saying
 * how much of the last frame arrived (a truncated frame is never returned).
 */
int eddy__frame_dec_eof(const eddy__frame_dec_t *fd, eddy_error_t *err);

/* @brief Stream bytes buffered but not yet returned as frames. */
static inline size_t eddy__frame_dec_pending(const eddy__frame_dec_t *fd)
{
    return fd->fd_end - fd->fd_start;
}

/* ---- encoding ---- */

/*
 * @brief Appends one frame holding `n` payload bytes to `out`.
 * @returns 0, or EDDY_ERR_INVALID if n exceeds `max_frame` (0: default);
 * `out` is then unchanged.
 */
int eddy__frame_put(eddy__bytes_t *out, const void *payload, size_t n,
                    size_t max_frame, eddy_error_t *err);

/*
 * @brief Sets env->version to EDDY__RPC_VERSION and appends the packed
 * envelope as one frame to `out` (appending lets a caller batch several
 * frames into one write).
 * @returns 0; EDDY_ERR_INVALID if no body is set or the packed envelope
 * exceeds `max_frame` (0: default); `out` is then unchanged.
 */
int eddy__rpc_encode(eddy__bytes_t *out, eddy__rpc_env_t *env, size_t max_frame,
                     eddy_error_t *err);

/*
 * @brief Unpacks a frame payload from `peer` (for messages) into `ar`.
 * @returns 0 with *out set, pointing into `ar` (valid until the arena is
 * reset or closed; nothing to free); EDDY_ERR_FORMAT for a payload that is
 * not an envelope or has no known body; EDDY_ERR_UNSUPPORTED for another
 * protocol version ("protocol version 2 from 10.0.0.5:6123; this eddy
 * speaks 1").
 * @remark The caller resets the arena between frames; its first chunk is
 * kept, so decoding small frames does not allocate.
 */
int eddy__rpc_decode(eddy__arena_t *ar, const void *payload, size_t len,
                     const char *peer, eddy__rpc_env_t **out,
                     eddy_error_t *err);

/* @brief The oneof member's name ("heartbeat"), or "none" / "unknown". */
const char *eddy__rpc_body_name(int body_case);

#endif /* EDDY_RPC_FRAME_H */
