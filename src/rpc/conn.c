/*
 * eddy — control-plane connections (conn.h).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "rpc/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* A peer that does not read a control frame within this long is stuck. */
#define SEND_TIMEOUT_S 5

int eddy__parse_hostport(const char *s, char *host, size_t hsize, int *port,
                         eddy_error_t *err)
{
    const char *colon = s != NULL ? strrchr(s, ':') : NULL;
    if (colon == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "'%s' is not HOST:PORT",
                              s != NULL ? s : "");
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || p < 1 || p > 65535) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "'%s' has no valid port (1..65535)", s);
    }
    size_t hl = (size_t)(colon - s);
    if (hl == 0) {
        eddy__fmt(host, hsize, "127.0.0.1");
    } else if (hl >= hsize) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "host name too long: %s",
                              s);
    } else {
        memcpy(host, s, hl);
        host[hl] = '\0';
    }
    *port = (int)p;
    return 0;
}

static int resolve(const char *host, int port, struct sockaddr_storage *sa,
                   socklen_t *len, eddy_error_t *err)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int g = getaddrinfo(host, ps, &hints, &ai);
    if (g != 0 || ai == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "cannot resolve '%s': %s",
                              host, gai_strerror(g));
    }
    memcpy(sa, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

int eddy__tcp_listen(const char *host, int port, int *fd, int *bound,
                     eddy_error_t *err)
{
    struct sockaddr_storage sa;
    socklen_t len;
    int rc = resolve(host, port, &sa, &len, err);
    if (rc != 0) {
        return rc;
    }
    int s = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        return eddy_error_set(err, EDDY_ERR_IO, "socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s, (struct sockaddr *)&sa, len) != 0 || listen(s, 128) != 0) {
        int e = errno;
        close(s);
        return eddy_error_set(err, EDDY_ERR_IO, "cannot listen on %s:%d: %s",
                              host, port, strerror(e));
    }
    struct sockaddr_storage got;
    socklen_t glen = sizeof(got);
    getsockname(s, (struct sockaddr *)&got, &glen);
    *bound = ntohs(got.ss_family == AF_INET6
                       ? ((struct sockaddr_in6 *)&got)->sin6_port
                       : ((struct sockaddr_in *)&got)->sin_port);
    *fd = s;
    return 0;
}

int eddy__tcp_connect(const char *addr, int64_t timeout_ms, int *fd,
                      eddy_error_t *err)
{
    char host[256];
    int port;
    int rc = eddy__parse_hostport(addr, host, sizeof(host), &port, err);
    struct sockaddr_storage sa;
    socklen_t len;
    if (rc == 0) {
        rc = resolve(host, port, &sa, &len, err);
    }
    if (rc != 0) {
        return rc;
    }
    int s = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) {
        return eddy_error_set(err, EDDY_ERR_IO, "socket: %s", strerror(errno));
    }
    int e = 0;
    if (connect(s, (struct sockaddr *)&sa, len) != 0) {
        e = errno;
        if (e == EINPROGRESS) {
            struct pollfd p = {s, POLLOUT, 0};
            int n = poll(&p, 1, (int)timeout_ms);
            socklen_t el = sizeof(e);
            if (n == 1) {
                getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el);
            } else {
                e = ETIMEDOUT;
            }
        }
    }
    if (e != 0) {
        close(s);
        return eddy_error_set(err, EDDY_ERR_IO, "cannot connect to %s: %s",
                              addr, strerror(e));
    }
    int fl = fcntl(s, F_GETFL);
    fcntl(s, F_SETFL, fl & ~O_NONBLOCK);
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *fd = s;
    return 0;
}

void eddy__rpc_conn_init(eddy__rpc_conn_t *c, int fd, const char *peer)
{
    memset(c, 0, sizeof(*c));
    c->rc_fd = fd;
    eddy__fmt(c->rc_peer, sizeof(c->rc_peer), "%s", peer);
    eddy__frame_dec_init(&c->rc_dec, peer, 0);
    eddy__arena_init(&c->rc_arena, 4096);
    pthread_mutex_init(&c->rc_send_mu, NULL);
    atomic_init(&c->rc_dead, false);
    /* Reads are non-blocking (the owner polls); sends block with a
     * timeout (MSG_DONTWAIT is not used for them). */
    struct timeval tv = {SEND_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void eddy__rpc_conn_close(eddy__rpc_conn_t *c)
{
    if (c->rc_fd >= 0) {
        close(c->rc_fd);
        c->rc_fd = -1;
    }
    eddy__frame_dec_close(&c->rc_dec);
    eddy__arena_close(&c->rc_arena);
    eddy__bytes_free(&c->rc_out);
    pthread_mutex_destroy(&c->rc_send_mu);
}

int eddy__rpc_conn_read(eddy__rpc_conn_t *c, eddy_error_t *err)
{
    unsigned char buf[16384];
    for (;;) {
        ssize_t n = recv(c->rc_fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            int rc = eddy__frame_dec_feed(&c->rc_dec, buf, (size_t)n, err);
            if (rc != 0) {
                return rc;
            }
            if ((size_t)n < sizeof(buf)) {
                return 0;
            }
            continue;
        }
        if (n == 0) {
            c->rc_eof = true;
            atomic_store(&c->rc_dead, true);
            return eddy_error_set(err, EDDY_ERR_IO, "connection closed by %s",
                                  c->rc_peer);
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        }
        atomic_store(&c->rc_dead, true);
        return eddy_error_set(err, EDDY_ERR_IO, "connection to %s failed: %s",
                              c->rc_peer, strerror(errno));
    }
}

int eddy__rpc_conn_next(eddy__rpc_conn_t *c, eddy__rpc_env_t **env,
                        eddy_error_t *err)
{
    const void *p;
    size_t n;
    int rc = eddy__frame_dec_next(&c->rc_dec, &p, &n, err);
    if (rc <= 0) {
        return rc;
    }
    eddy__arena_reset(&c->rc_arena);
    rc = eddy__rpc_decode(&c->rc_arena, p, n, c->rc_peer, env, err);
    return rc == 0 ? 1 : rc;
}

int eddy__rpc_send(eddy__rpc_conn_t *c, eddy__rpc_env_t *env, eddy_error_t *err)
{
    if (atomic_load(&c->rc_dead)) {
        return eddy_error_set(err, EDDY_ERR_IO, "connection to %s is closed",
                              c->rc_peer);
    }
    eddy__mutex_lock(&c->rc_send_mu);
    eddy__bytes_reset(&c->rc_out);
    int rc = eddy__rpc_encode(&c->rc_out, env, 0, err);
    size_t off = 0;
    while (rc == 0 && off < c->rc_out.b_len) {
        ssize_t n = send(c->rc_fd, c->rc_out.b_data + off,
                         c->rc_out.b_len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* The socket is non-blocking for the reader: wait for room,
             * bounded by the send timeout. */
            struct pollfd p = {c->rc_fd, POLLOUT, 0};
            if (poll(&p, 1, SEND_TIMEOUT_S * 1000) != 1) {
                atomic_store(&c->rc_dead, true);
                rc = eddy_error_set(err, EDDY_ERR_IO,
                                    "%s stopped reading (send timed out)",
                                    c->rc_peer);
            }
        } else {
            atomic_store(&c->rc_dead, true);
            rc = eddy_error_set(err, EDDY_ERR_IO, "send to %s failed: %s",
                                c->rc_peer, strerror(errno));
        }
    }
    eddy__mutex_unlock(&c->rc_send_mu);
    return rc;
}
