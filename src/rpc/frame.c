/*
 * eddy — control-plane framing and envelope encoding (see frame.h).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "rpc/frame.h"

#include <inttypes.h>
#include <stdio.h>

/* Below this the decoder's buffer is never shrunk; above it, a buffer left
 * over from one large frame is given back once it is mostly empty, so a
 * single 16 MiB deploy does not pin 16 MiB per connection for good. */
#define DEC_MIN_CAP ((size_t)4096)
#define DEC_KEEP_CAP ((size_t)64 << 10)

static size_t max_or_default(size_t max_frame)
{
    if (max_frame == 0) {
        return EDDY__FRAME_MAX_DEFAULT;
    }
    return EDDY_MIN(max_frame, EDDY__FRAME_MAX_LIMIT);
}

static const char *peer_or_default(const char *peer)
{
    return peer != NULL && peer[0] != '\0' ? peer : "peer";
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* ---- decoder ---- */

void eddy__frame_dec_init(eddy__frame_dec_t *fd, const char *peer,
                          size_t max_frame)
{
    memset(fd, 0, sizeof(*fd));
    fd->fd_max = max_or_default(max_frame);
    eddy__fmt(fd->fd_peer, sizeof(fd->fd_peer), "%s", peer_or_default(peer));
}

void eddy__frame_dec_close(eddy__frame_dec_t *fd)
{
    eddy__free(fd->fd_buf);
    fd->fd_buf = NULL;
    fd->fd_cap = fd->fd_start = fd->fd_end = 0;
}

static int sticky_error(const eddy__frame_dec_t *fd, eddy_error_t *err)
{
    int rc = eddy_error_set(err, fd->fd_error,
                            "control connection from %s is unusable after a "
                            "framing error",
                            fd->fd_peer);
    if (err != NULL) {
        err->fatal = 1;
    }
    return rc;
}

/* Validates the header at fd_start once it is complete. Checking here,
 * rather than when the whole frame has arrived, refuses an oversized frame
 * before any of its payload is buffered. */
static int check_header(eddy__frame_dec_t *fd, eddy_error_t *err)
{
    if (eddy__frame_dec_pending(fd) < EDDY__FRAME_HEADER) {
        return 0;
    }
    uint32_t len = get_be32(fd->fd_buf + fd->fd_start);
    if (len <= fd->fd_max) {
        return 0;
    }
    fd->fd_error = EDDY_ERR_FORMAT;
    int rc = eddy_error_set(err, EDDY_ERR_FORMAT,
                            "frame of %" PRIu32 " bytes from %s exceeds the "
                            "maximum frame size of %zu bytes",
                            len, fd->fd_peer, fd->fd_max);
    if (err != NULL) {
        err->fatal = 1;
    }
    return rc;
}

int eddy__frame_dec_feed(eddy__frame_dec_t *fd, const void *p, size_t n,
                         eddy_error_t *err)
{
    if (fd->fd_error != 0) {
        return sticky_error(fd, err);
    }
    if (n == 0) {
        return 0;
    }
    /* Compact first: the bytes before fd_start were handed out already. */
    size_t pending = eddy__frame_dec_pending(fd);
    if (fd->fd_start > 0) {
        if (pending > 0) {
            memmove(fd->fd_buf, fd->fd_buf + fd->fd_start, pending);
        }
        fd->fd_start = 0;
        fd->fd_end = pending;
    }
    size_t need = pending + n;
    if (fd->fd_cap > DEC_KEEP_CAP && need <= DEC_KEEP_CAP) {
        fd->fd_buf = eddy__realloc(fd->fd_buf, DEC_KEEP_CAP);
        fd->fd_cap = DEC_KEEP_CAP;
    } else if (need > fd->fd_cap) {
        size_t cap = fd->fd_cap > 0 ? fd->fd_cap : DEC_MIN_CAP;
        while (cap < need) {
            cap *= 2;
        }
        fd->fd_buf = eddy__realloc(fd->fd_buf, cap);
        fd->fd_cap = cap;
    }
    memcpy(fd->fd_buf + fd->fd_end, p, n);
    fd->fd_end += n;
    return check_header(fd, err);
}

int eddy__frame_dec_next(eddy__frame_dec_t *fd, const void **payload,
                         size_t *len, eddy_error_t *err)
{
    if (fd->fd_error != 0) {
        return sticky_error(fd, err);
    }
    int rc = check_header(fd, err);
    if (rc != 0) {
        return rc;
    }
    size_t pending = eddy__frame_dec_pending(fd);
    if (pending < EDDY__FRAME_HEADER) {
        return 0;
    }
    size_t flen = get_be32(fd->fd_buf + fd->fd_start);
    if (pending - EDDY__FRAME_HEADER < flen) {
        return 0;
    }
    *payload = fd->fd_buf + fd->fd_start + EDDY__FRAME_HEADER;
    *len = flen;
    fd->fd_start += EDDY__FRAME_HEADER + flen;
    return 1;
}

int eddy__frame_dec_eof(const eddy__frame_dec_t *fd, eddy_error_t *err)
{
    if (fd->fd_error != 0) {
        return sticky_error(fd, err);
    }
    size_t pending = eddy__frame_dec_pending(fd);
    if (pending == 0) {
        return 0;
    }
    if (pending < EDDY__FRAME_HEADER) {
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "connection from %s closed inside a frame "
                              "header (%zu of %u bytes)",
                              fd->fd_peer, pending, EDDY__FRAME_HEADER);
    }
    return eddy_error_set(err, EDDY_ERR_FORMAT,
                          "connection from %s closed inside a frame (%zu of "
                          "%" PRIu32 " payload bytes)",
                          fd->fd_peer, pending - EDDY__FRAME_HEADER,
                          get_be32(fd->fd_buf + fd->fd_start));
}

/* ---- encoding ---- */

int eddy__frame_put(eddy__bytes_t *out, const void *payload, size_t n,
                    size_t max_frame, eddy_error_t *err)
{
    size_t max = max_or_default(max_frame);
    if (n > max) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "frame of %zu bytes exceeds the maximum frame "
                              "size of %zu bytes",
                              n, max);
    }
    unsigned char hdr[EDDY__FRAME_HEADER];
    put_be32(hdr, (uint32_t)n);
    eddy__bytes_put(out, hdr, sizeof(hdr));
    eddy__bytes_put(out, payload, n);
    return 0;
}

/* protobuf-c packs through an append callback; this one appends to an
 * eddy__bytes_t so the envelope lands directly behind its header in the
 * caller's reusable buffer, without a temporary copy. */
typedef struct bytes_sink {
    ProtobufCBuffer bs_base;
    eddy__bytes_t *bs_out;
} bytes_sink_t;

static void bytes_sink_append(ProtobufCBuffer *buf, size_t len,
                              const uint8_t *data)
{
    bytes_sink_t *bs = (bytes_sink_t *)buf;
    eddy__bytes_put(bs->bs_out, data, len);
}

int eddy__rpc_encode(eddy__bytes_t *out, eddy__rpc_env_t *env, size_t max_frame,
                     eddy_error_t *err)
{
    if (env->body_case == EDDY__RPC__ENVELOPE__BODY__NOT_SET) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "control message has no body");
    }
    env->version = EDDY__RPC_VERSION;
    size_t max = max_or_default(max_frame);
    size_t size = eddy__rpc__envelope__get_packed_size(env);
    if (size > max) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "%s message of %zu bytes exceeds the maximum "
                              "frame size of %zu bytes",
                              eddy__rpc_body_name(env->body_case), size, max);
    }
    unsigned char hdr[EDDY__FRAME_HEADER];
    put_be32(hdr, (uint32_t)size);
    eddy__bytes_put(out, hdr, sizeof(hdr));
    bytes_sink_t bs = {.bs_base = {.append = bytes_sink_append}, .bs_out = out};
    size_t packed = eddy__rpc__envelope__pack_to_buffer(env, &bs.bs_base);
    /* The header already went out with `size`: a mismatch would corrupt
     * the stream for every later frame, so it is a bug, not an error. */
    if (packed != size) {
        abort();
    }
    return 0;
}

/* protobuf-c allocates every submessage and string separately; serving
 * those from an arena makes decoding a small frame a few pointer bumps and
 * makes freeing it one reset. */
static void *arena_alloc(void *data, size_t size)
{
    return eddy__arena_alloc(data, size);
}

static void arena_free(void *data, void *p)
{
    EDDY_UNUSED(data);
    EDDY_UNUSED(p);
}

/* Finds Envelope.version (field 1, varint) by walking the wire format
 * without the schema. Used only when unpacking failed: a peer speaking
 * another version may send what this version cannot parse, and "protocol
 * version 2" is a far better diagnosis than "malformed message". Returns
 * false if the field is absent or the bytes are not protobuf at all. */
static bool scan_version(const unsigned char *p, size_t len, uint64_t *version)
{
    eddy__rd_t r;
    eddy__rd_init(&r, p, len);
    while (!eddy__rd_done(&r)) {
        uint64_t tag = eddy__rd_varint(&r);
        uint64_t value = 0;
        switch (tag & 7) {
        case 0: /* varint */
            value = eddy__rd_varint(&r);
            if (tag >> 3 == 1 && eddy__rd_ok(&r)) {
                *version = value;
                return true;
            }
            break;
        case 1: /* 64-bit */
            eddy__rd_take(&r, 8);
            break;
        case 2: /* length-delimited */
            value = eddy__rd_varint(&r);
            if (value > (uint64_t)(r.rd_end - r.rd_p)) {
                return false;
            }
            eddy__rd_take(&r, (size_t)value);
            break;
        case 5: /* 32-bit */
            eddy__rd_take(&r, 4);
            break;
        default: /* groups (3, 4) are not used by proto3; 6, 7 invalid */
            return false;
        }
    }
    return false;
}

int eddy__rpc_decode(eddy__arena_t *ar, const void *payload, size_t len,
                     const char *peer, eddy__rpc_env_t **out, eddy_error_t *err)
{
    ProtobufCAllocator alloc = {
        .alloc = arena_alloc, .free = arena_free, .allocator_data = ar};
    peer = peer_or_default(peer);
    *out = NULL;
    eddy__rpc_env_t *env = eddy__rpc__envelope__unpack(&alloc, len, payload);
    uint64_t version = 0;
    if (env == NULL) {
        if (scan_version(payload, len, &version) &&
            version != EDDY__RPC_VERSION) {
            goto version_mismatch;
        }
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "malformed control message from %s (%zu "
                              "bytes)",
                              peer, len);
    }
    version = env->version;
    if (version == 0) {
        /* proto3 leaves a zero field off the wire: no version at all, which
         * no eddy sends (an empty frame, or not an envelope). */
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "control message from %s carries no protocol "
                              "version",
                              peer);
    }
    if (version != EDDY__RPC_VERSION) {
        goto version_mismatch;
    }
    if (env->body_case == EDDY__RPC__ENVELOPE__BODY__NOT_SET) {
        /* A newer peer of the same version may add a oneof member this
         * build does not know; protobuf-c keeps it as an unknown field. */
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "control message from %s has no body this "
                              "eddy understands",
                              peer);
    }
    *out = env;
    return 0;

version_mismatch:
    return eddy_error_set(err, EDDY_ERR_UNSUPPORTED,
                          "protocol version %" PRIu64 " from %s; this eddy "
                          "speaks %u",
                          version, peer, EDDY__RPC_VERSION);
}

const char *eddy__rpc_body_name(int body_case)
{
    switch (body_case) {
    case EDDY__RPC__ENVELOPE__BODY__NOT_SET:
        return "none";
    case EDDY__RPC__ENVELOPE__BODY_REGISTRATION:
        return "registration";
    case EDDY__RPC__ENVELOPE__BODY_REGISTER_ACK:
        return "register_ack";
    case EDDY__RPC__ENVELOPE__BODY_REGISTER_REJECT:
        return "register_reject";
    case EDDY__RPC__ENVELOPE__BODY_HEARTBEAT:
        return "heartbeat";
    case EDDY__RPC__ENVELOPE__BODY_DEPLOY_TASK:
        return "deploy_task";
    case EDDY__RPC__ENVELOPE__BODY_CANCEL_TASK:
        return "cancel_task";
    case EDDY__RPC__ENVELOPE__BODY_TASK_STATE:
        return "task_state";
    case EDDY__RPC__ENVELOPE__BODY_TRIGGER_CHECKPOINT:
        return "trigger_checkpoint";
    case EDDY__RPC__ENVELOPE__BODY_ACK_CHECKPOINT:
        return "ack_checkpoint";
    case EDDY__RPC__ENVELOPE__BODY_DECLINE_CHECKPOINT:
        return "decline_checkpoint";
    case EDDY__RPC__ENVELOPE__BODY_CHECKPOINT_COMPLETE:
        return "checkpoint_complete";
    case EDDY__RPC__ENVELOPE__BODY_CHECKPOINT_ABORT:
        return "checkpoint_abort";
    case EDDY__RPC__ENVELOPE__BODY_DEPLOY_JOB:
        return "deploy_job";
    case EDDY__RPC__ENVELOPE__BODY_CANCEL_JOB:
        return "cancel_job";
    }
    return "unknown";
}
