/*
 * eddy — the TaskManager data plane (see dataplane.h for the design and
 * docs/network.md for the protocol).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "net/dataplane.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Frames handed to one sendmsg(): enough to batch many small credit frames
 * and a few MiB of buffers in one system call. */
#define WBATCH 64
/* Staging area of a connection's reads: headers, control frames, and the
 * start of DATA payloads that arrived together with them. A payload's rest
 * is read straight into its buffer. */
#define RBUF_SIZE ((size_t)64 << 10)
/* Bytes a connection may read or write per turn of the I/O loop, so that one
 * busy connection cannot starve the others. */
#define IO_BUDGET ((size_t)8 << 20)
#define HANDSHAKE_TIMEOUT_NS (10ull * 1000000000ull)
#define CLOSING_TIMEOUT_NS (1000000000ull)
/* After a duplicate-connection REJECT, wait this long for the peer's own
 * connection before dialing again. */
#define DUP_RETRY_NS (200ull * 1000000ull)
/* A connection parked for want of a receive buffer is retried this often. */
#define PARK_POLL_MS 1
/* accept() failing for want of descriptors pauses accepting this long. */
#define ACCEPT_PAUSE_NS (100ull * 1000000ull)
/* Largest credit count one CREDIT frame may carry (a sanity bound). */
#define MAX_CREDIT_FRAME (1u << 20)
/* Credits for channels whose output is not registered yet are parked (the
 * consumer's TaskManager may deploy first); at most this many channels. */
#define MAX_ORPHANS 65536
/* Job tags released lately, whose late credits are not parked. */
#define RELEASED_RING 256
/* Peers a data plane remembers; a HELLO naming one more is refused, so a
 * stream of made-up addresses cannot grow memory without bound. */
#define MAX_PEERS 4096

/* ---- little-endian helpers ---- */

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- wire format ---- */

/*
 * Header layout: type u8, flags u8 (0), reserved u16 (0), len u32, arg u32,
 * chan u32, task u32, job u64. The zero bytes let a garbage stream fail on
 * its first header instead of being read as a giant frame.
 */
void eddy__dp_hdr_encode(unsigned char *out, const eddy__dp_hdr_t *h)
{
    out[0] = h->h_type;
    out[1] = 0;
    put16(out + 2, 0);
    put32(out + 4, h->h_len);
    put32(out + 8, h->h_arg);
    put32(out + 12, h->h_id.ci_chan);
    put32(out + 16, h->h_id.ci_task);
    put64(out + 20, h->h_id.ci_job);
}

int eddy__dp_hdr_decode(const unsigned char *in, eddy__dp_hdr_t *h,
                        eddy_error_t *err)
{
    if (in[0] < EDDY__DP_HELLO || in[0] > EDDY__DP_BACKLOG) {
        return eddy_error_set(err, EDDY_ERR_FORMAT, "unknown frame type 0x%02x",
                              in[0]);
    }
    if (in[1] != 0 || get16(in + 2) != 0) {
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "frame header with non-zero reserved bytes");
    }
    h->h_type = in[0];
    h->h_len = get32(in + 4);
    h->h_arg = get32(in + 8);
    h->h_id.ci_chan = get32(in + 12);
    h->h_id.ci_task = get32(in + 16);
    h->h_id.ci_job = get64(in + 20);
    return 0;
}

size_t eddy__dp_hello_encode(unsigned char *out, size_t cap, int type,
                             const char *self_id, const char *addr,
                             uint32_t version)
{
    size_t il = strlen(self_id), al = strlen(addr);
    size_t len = 4 + 4 + 2 + il + 2 + al;
    if (il > EDDY__DP_NAME_MAX || al > EDDY__DP_NAME_MAX ||
        EDDY__DP_HDR_SIZE + len > cap) {
        return 0;
    }
    eddy__dp_hdr_t h = {(uint8_t)type, (uint32_t)len, 0, {0, 0, 0}};
    eddy__dp_hdr_encode(out, &h);
    unsigned char *p = out + EDDY__DP_HDR_SIZE;
    put32(p, EDDY__DP_MAGIC);
    put32(p + 4, version);
    put16(p + 8, (uint16_t)il);
    memcpy(p + 10, self_id, il);
    put16(p + 10 + il, (uint16_t)al);
    memcpy(p + 12 + il, addr, al);
    return EDDY__DP_HDR_SIZE + len;
}

typedef struct hello {
    uint32_t he_magic, he_version;
    char he_id[EDDY__DP_NAME_MAX + 1];
    char he_addr[EDDY__DP_NAME_MAX + 1];
} hello_t;

/* Returns 0, or -1 if the payload is not a well-formed HELLO body. */
static int hello_parse(const unsigned char *p, size_t len, hello_t *he)
{
    if (len < 12) {
        return -1;
    }
    he->he_magic = get32(p);
    he->he_version = get32(p + 4);
    size_t il = get16(p + 8);
    if (10 + il + 2 > len) {
        return -1;
    }
    size_t al = get16(p + 10 + il);
    if (12 + il + al != len || il == 0 || al == 0) {
        return -1;
    }
    memcpy(he->he_id, p + 10, il);
    he->he_id[il] = '\0';
    memcpy(he->he_addr, p + 12 + il, al);
    he->he_addr[al] = '\0';
    /* Names are printed in messages: refuse NULs and control bytes. */
    for (size_t i = 0; i < il; i++) {
        if ((unsigned char)he->he_id[i] < 0x20) {
            return -1;
        }
    }
    for (size_t i = 0; i < al; i++) {
        if ((unsigned char)he->he_addr[i] < 0x20) {
            return -1;
        }
    }
    return 0;
}

/* ---- channel-id hash tables (intrusive) ---- */

typedef struct hnode {
    struct hnode *h_next;
    eddy__dp_chan_id_t h_id;
} hnode_t;

typedef struct htab {
    hnode_t **ht_b;
    size_t ht_nb;
    size_t ht_count;
} htab_t;

static bool id_eq(eddy__dp_chan_id_t a, eddy__dp_chan_id_t b)
{
    return a.ci_job == b.ci_job && a.ci_task == b.ci_task &&
           a.ci_chan == b.ci_chan;
}

static size_t id_hash(eddy__dp_chan_id_t id, size_t nb)
{
    uint64_t x = id.ci_job ^ ((uint64_t)id.ci_task << 32 | id.ci_chan);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (size_t)(x & (nb - 1));
}

static void ht_init(htab_t *t)
{
    t->ht_nb = 64;
    t->ht_count = 0;
    t->ht_b = eddy__calloc(t->ht_nb, sizeof(hnode_t *));
}

static void ht_close(htab_t *t)
{
    eddy__free(t->ht_b);
    t->ht_b = NULL;
}

static hnode_t *ht_find(const htab_t *t, eddy__dp_chan_id_t id)
{
    for (hnode_t *n = t->ht_b[id_hash(id, t->ht_nb)]; n != NULL;
         n = n->h_next) {
        if (id_eq(n->h_id, id)) {
            return n;
        }
    }
    return NULL;
}

static void ht_insert(htab_t *t, hnode_t *n)
{
    if (t->ht_count >= t->ht_nb * 2) {
        size_t nb = t->ht_nb * 4;
        hnode_t **b = eddy__calloc(nb, sizeof(hnode_t *));
        for (size_t i = 0; i < t->ht_nb; i++) {
            hnode_t *m = t->ht_b[i];
            while (m != NULL) {
                hnode_t *next = m->h_next;
                size_t k = id_hash(m->h_id, nb);
                m->h_next = b[k];
                b[k] = m;
                m = next;
            }
        }
        eddy__free(t->ht_b);
        t->ht_b = b;
        t->ht_nb = nb;
    }
    size_t k = id_hash(n->h_id, t->ht_nb);
    n->h_next = t->ht_b[k];
    t->ht_b[k] = n;
    t->ht_count++;
}

static void ht_remove(htab_t *t, hnode_t *n)
{
    hnode_t **pp = &t->ht_b[id_hash(n->h_id, t->ht_nb)];
    while (*pp != NULL) {
        if (*pp == n) {
            *pp = n->h_next;
            n->h_next = NULL;
            t->ht_count--;
            return;
        }
        pp = &(*pp)->h_next;
    }
}

/* ---- objects ---- */

typedef struct dp_conn dp_conn_t;
typedef struct dp_in dp_in_t;

/* A remote TaskManager, by data address. Peers are never freed before the
 * data plane: there are as many as TaskManagers, and inputs and outputs keep
 * pointers to them. */
typedef struct dp_peer {
    struct dp_peer *p_next;
    char p_addr[EDDY__DP_NAME_MAX + 1];
    /* I/O thread only. */
    dp_conn_t *p_conn;    /* the established connection */
    dp_conn_t *p_dialing; /* our connection, handshake not finished */
    uint64_t p_retry_ns;  /* no dialing before this (eddy__now_ns) */
    /* dp_mu. */
    bool p_want;        /* a live input or output needs a connection */
    uint64_t p_epoch;   /* bumped when the connection is lost */
    char p_reason[320]; /* why it was lost the last time */
    eddy__dp_out_t *p_active, *p_active_tail; /* outputs with frames */
    /* dp_cmu. */
    dp_in_t *p_credq, *p_credq_tail; /* inputs with credits to send */
} dp_peer_t;

/* Receiver side of one channel. */
struct dp_in {
    hnode_t in_node; /* dp_ins, under dp_rmu; first member */
    eddy__dp_t *in_dp;
    dp_peer_t *in_peer;
    eddy__inchan_t *in_ic;
    /* dp_cmu. */
    int in_unused;    /* credits granted (sent or not) and not yet used */
    int in_pending;   /* credits not yet written to the sender */
    int in_floating;  /* floating credits this channel holds */
    int in_backlog;   /* the sender's last announced backlog */
    bool in_queued;   /* on in_peer->p_credq */
    bool in_starving; /* on dp_starving: wants floating, none free */
    bool in_dead;     /* its peer was lost: grants nothing more */
    dp_in_t *in_cnext, *in_snext;
    dp_in_t *in_gnext; /* eddy__dp_release_job's list of removed inputs */
};

/* Sender side of one channel. */
struct eddy__dp_out {
    hnode_t o_node; /* dp_outs while not released; first member */
    eddy__dp_t *o_dp;
    dp_peer_t *o_peer;
    uint64_t o_epoch; /* peer epoch at creation; differs once lost */
    atomic_int *o_cancel;
    /* dp_mu. */
    int o_credit; /* credits not yet used by a written buffer */
    eddy__buffer_t *o_qhead, *o_qtail; /* pushed, not yet taken by the I/O
                                          thread; the first o_credit of them
                                          have a credit */
    int o_qlen;
    int o_waiting;           /* pushers waiting (do_exclusive buffers queued
                                without credit) */
    bool o_announce;         /* a BACKLOG frame is due */
    bool o_active;           /* on o_peer->p_active */
    bool o_released;         /* job released or output removed */
    eddy__dp_out_t *o_anext; /* p_active link */
    eddy__dp_out_t *o_prev, *o_next; /* dp_out_all */
    uint64_t o_wait_since;           /* a pusher waits since (0: none) */
    pthread_cond_t o_cv;
    atomic_uint_fast64_t o_wait_ns; /* finished waits; updated under dp_mu */
};

/* Credits that arrived before their output was added. */
typedef struct dp_orphan {
    hnode_t or_node; /* dp_orphans, under dp_mu; first member */
    dp_peer_t *or_peer;
    int or_credit;
} dp_orphan_t;

/* A frame committed to a connection's byte stream. */
typedef struct wframe {
    unsigned char f_hdr[EDDY__DP_HDR_SIZE];
    const unsigned char *f_pay;
    uint32_t f_len;        /* payload bytes */
    uint32_t f_off;        /* bytes of header + payload already written */
    bool f_data;           /* a DATA frame (stats) */
    eddy__buffer_t *f_buf; /* released once written */
    eddy__dp_out_t *f_out; /* DATA: its output, for purging */
} wframe_t;

enum conn_state {
    C_CONNECTING,  /* our non-blocking connect() in progress */
    C_HELLO_SENT,  /* ours: waiting for HELLO_ACK or REJECT */
    C_AWAIT_HELLO, /* accepted: waiting for the dialer's HELLO */
    C_ESTABLISHED,
    C_CLOSING, /* REJECT queued: close once written */
    C_DEAD,
};

/* A TCP connection; owned by the I/O thread. */
struct dp_conn {
    dp_conn_t *c_next;
    int c_fd;
    int c_state;
    bool c_outbound; /* we dialed it */
    bool c_self;     /* the accepted end of a connection to ourselves */
    bool c_counted;  /* counted in dp_nconn */
    dp_peer_t *c_peer;
    uint64_t c_since_ns;
    /* Reading. */
    unsigned char *c_rbuf;
    size_t c_rlen, c_roff;
    bool c_in_pay;             /* inside a DATA payload */
    eddy__dp_hdr_t c_rhdr;     /* its header */
    eddy__buffer_t *c_rtarget; /* its buffer, NULL to drop it */
    uint32_t c_rgot;
    bool c_parked; /* no receive buffer free: not reading */
    /* Writing. */
    wframe_t c_w[WBATCH];
    int c_whead, c_wcount;
    bool c_wblocked; /* the socket is full: wait for POLLOUT */
    unsigned char c_ctl[EDDY__DP_CTL_MAX]; /* handshake payload */
    unsigned char *c_spill; /* copy of a half-written purged buffer */
};

struct eddy__dp {
    char dp_self_id[EDDY__DP_NAME_MAX + 1];
    char dp_addr[EDDY__DP_NAME_MAX + 1];
    size_t dp_seg;
    int dp_exclusive, dp_floating;
    void (*dp_on_lost)(void *, const char *, const char *);
    void *dp_arg;
    int dp_lfd, dp_efd;
    pthread_t dp_thread;
    bool dp_thread_started;
    atomic_bool dp_stop;
    atomic_bool dp_kicked;
    eddy__pool_t *dp_pool; /* receive buffers */

    pthread_mutex_t dp_mu; /* outputs, peers, purge requests */
    htab_t dp_outs;
    eddy__dp_out_t *dp_out_all;
    dp_peer_t *dp_peers;
    uint64_t dp_purge_req, dp_purge_done;
    pthread_cond_t dp_purge_cv;
    htab_t dp_orphans;
    uint64_t dp_released[RELEASED_RING];
    size_t dp_nreleased;

    pthread_mutex_t dp_rmu; /* inputs table */
    htab_t dp_ins;

    pthread_mutex_t dp_cmu; /* credit state; a leaf lock */
    int dp_float_free;
    dp_in_t *dp_starving, *dp_starving_tail;

    /* I/O thread only. */
    dp_conn_t *dp_conns;
    struct pollfd *dp_pfds;
    dp_conn_t **dp_pconns;
    size_t dp_pcap;
    bool dp_again;               /* more to write: poll without sleeping */
    uint64_t dp_accept_after_ns; /* accept() paused until then */

    atomic_int dp_nconn;
    atomic_uint_fast64_t dp_bytes_out, dp_bytes_in;
    atomic_uint_fast64_t dp_bufs_out, dp_bufs_in, dp_dropped;
};

static void kick(eddy__dp_t *dp)
{
    /* Coalesced: the I/O thread clears the flag before it looks at the
     * queues, so a wake-up is only written when it might be asleep. */
    if (!atomic_exchange(&dp->dp_kicked, true)) {
        uint64_t one = 1;
        ssize_t rc = write(dp->dp_efd, &one, sizeof(one));
        EDDY_UNUSED(rc); /* EAGAIN: the counter is already non-zero */
    }
}

static bool on_io_thread(const eddy__dp_t *dp)
{
    return dp->dp_thread_started &&
           pthread_equal(pthread_self(), dp->dp_thread);
}

static const char *chan_str(char *buf, size_t size, eddy__dp_chan_id_t id)
{
    return eddy__fmt(buf, size, "%016" PRIx64 "/%u/%u", id.ci_job, id.ci_task,
                     id.ci_chan);
}

/* Splits "host:port" or "[v6]:port". Returns 0 or -1. */
static int split_addr(const char *addr, char *host, size_t hsize, char *port,
                      size_t psize)
{
    if (addr == NULL || strlen(addr) > EDDY__DP_NAME_MAX) {
        return -1;
    }
    const char *colon, *h = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':') {
            return -1;
        }
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL) {
            return -1;
        }
        hl = (size_t)(colon - addr);
    }
    const char *ps = colon + 1;
    char *end;
    long pn = strtol(ps, &end, 10);
    if (hl == 0 || hl >= hsize || *ps == '\0' || *end != '\0' || pn < 1 ||
        pn > 65535 || strlen(ps) >= psize) {
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    eddy__fmt(port, psize, "%ld", pn);
    return 0;
}

/* dp_mu held. Finds or creates the peer; NULL only when `capped` and the
 * peer table is full. */
static dp_peer_t *peer_get(eddy__dp_t *dp, const char *addr, bool capped)
{
    size_t n = 0;
    for (dp_peer_t *p = dp->dp_peers; p != NULL; p = p->p_next) {
        if (strcmp(p->p_addr, addr) == 0) {
            return p;
        }
        n++;
    }
    if (capped && n >= MAX_PEERS) {
        return NULL;
    }
    dp_peer_t *p = eddy__calloc(1, sizeof(*p));
    eddy__fmt(p->p_addr, sizeof(p->p_addr), "%s", addr);
    p->p_epoch = 1;
    p->p_next = dp->dp_peers;
    dp->dp_peers = p;
    return p;
}

/* ---- credits (receiver side); dp_cmu held ---- */

static void grant_locked(dp_in_t *in, int n)
{
    in->in_pending += n;
    if (!in->in_queued) {
        dp_peer_t *p = in->in_peer;
        in->in_queued = true;
        in->in_cnext = NULL;
        if (p->p_credq_tail != NULL) {
            p->p_credq_tail->in_cnext = in;
        } else {
            p->p_credq = in;
        }
        p->p_credq_tail = in;
    }
}

static void credq_remove_locked(dp_in_t *in)
{
    if (!in->in_queued) {
        return;
    }
    dp_peer_t *p = in->in_peer;
    dp_in_t **pp = &p->p_credq, *prev = NULL;
    while (*pp != NULL && *pp != in) {
        prev = *pp;
        pp = &(*pp)->in_cnext;
    }
    if (*pp == in) {
        *pp = in->in_cnext;
        if (p->p_credq_tail == in) {
            p->p_credq_tail = prev;
        }
    }
    in->in_queued = false;
    in->in_cnext = NULL;
}

static void starving_remove_locked(eddy__dp_t *dp, dp_in_t *in)
{
    if (!in->in_starving) {
        return;
    }
    dp_in_t **pp = &dp->dp_starving, *prev = NULL;
    while (*pp != NULL && *pp != in) {
        prev = *pp;
        pp = &(*pp)->in_snext;
    }
    if (*pp == in) {
        *pp = in->in_snext;
        if (dp->dp_starving_tail == in) {
            dp->dp_starving_tail = prev;
        }
    }
    in->in_starving = false;
    in->in_snext = NULL;
}

/*
 * Lends floating credits to a channel whose sender has more buffers waiting
 * than it has credits for. Returns whether any were granted. A channel left
 * wanting joins the starving list, served when floating credits come back.
 */
static bool lend_locked(eddy__dp_t *dp, dp_in_t *in)
{
    bool granted = false;
    if (in->in_dead) {
        return false;
    }
    while (in->in_backlog > in->in_unused && dp->dp_float_free > 0) {
        dp->dp_float_free--;
        in->in_floating++;
        in->in_unused++;
        grant_locked(in, 1);
        granted = true;
    }
    if (in->in_backlog > in->in_unused && !in->in_starving) {
        in->in_starving = true;
        in->in_snext = NULL;
        if (dp->dp_starving_tail != NULL) {
            dp->dp_starving_tail->in_snext = in;
        } else {
            dp->dp_starving = in;
        }
        dp->dp_starving_tail = in;
    }
    return granted;
}

static bool serve_starving_locked(eddy__dp_t *dp)
{
    bool any = false;
    while (dp->dp_float_free > 0 && dp->dp_starving != NULL) {
        dp_in_t *in = dp->dp_starving;
        dp->dp_starving = in->in_snext;
        if (dp->dp_starving == NULL) {
            dp->dp_starving_tail = NULL;
        }
        in->in_starving = false;
        in->in_snext = NULL;
        any |= lend_locked(dp, in);
    }
    return any;
}

/*
 * The gate's pop hook: the consumer took a buffer from a remote channel, so
 * one slot (and the receive buffer behind it) is free again. It goes back to
 * the floating budget if it was a floating one and the sender no longer
 * wants more than it has; otherwise it is a new credit for the sender.
 * Runs on the consumer's thread under the gate's lock: counters and a
 * coalesced wake-up only.
 */
static void on_pop(void *arg)
{
    dp_in_t *in = arg;
    eddy__dp_t *dp = in->in_dp;
    bool wake = false;
    eddy__mutex_lock(&dp->dp_cmu);
    if (in->in_dead ||
        (in->in_floating > 0 && in->in_backlog <= in->in_unused)) {
        if (in->in_floating > 0) {
            in->in_floating--;
            dp->dp_float_free++;
            wake = serve_starving_locked(dp);
        }
    } else {
        in->in_unused++;
        grant_locked(in, 1);
        wake = true;
    }
    eddy__mutex_unlock(&dp->dp_cmu);
    if (wake) {
        kick(dp);
    }
}

/* ---- outputs; dp_mu held ---- */

static void activate_locked(eddy__dp_out_t *o)
{
    if (!o->o_active) {
        dp_peer_t *p = o->o_peer;
        o->o_active = true;
        o->o_anext = NULL;
        if (p->p_active_tail != NULL) {
            p->p_active_tail->o_anext = o;
        } else {
            p->p_active = o;
        }
        p->p_active_tail = o;
    }
}

static void deactivate_locked(eddy__dp_out_t *o)
{
    if (!o->o_active) {
        return;
    }
    dp_peer_t *p = o->o_peer;
    eddy__dp_out_t **pp = &p->p_active, *prev = NULL;
    while (*pp != NULL && *pp != o) {
        prev = *pp;
        pp = &(*pp)->o_anext;
    }
    if (*pp == o) {
        *pp = o->o_anext;
        if (p->p_active_tail == o) {
            p->p_active_tail = prev;
        }
    }
    o->o_active = false;
    o->o_anext = NULL;
}

/* Moves the output's queued buffers onto *chain (released by the caller
 * after unlocking: a pool lock is a leaf, but there is no need to hold
 * dp_mu that long). */
static void drop_queue_locked(eddy__dp_out_t *o, eddy__buffer_t **chain)
{
    while (o->o_qhead != NULL) {
        eddy__buffer_t *b = o->o_qhead;
        o->o_qhead = b->buf_next;
        b->buf_next = *chain;
        *chain = b;
    }
    o->o_qtail = NULL;
    o->o_qlen = 0;
}

static void release_chain(eddy__buffer_t *chain)
{
    while (chain != NULL) {
        eddy__buffer_t *next = chain->buf_next;
        chain->buf_next = NULL;
        eddy__buffer_release(chain);
        chain = next;
    }
}

static void release_out_locked(eddy__dp_t *dp, eddy__dp_out_t *o,
                               eddy__buffer_t **chain)
{
    o->o_released = true;
    ht_remove(&dp->dp_outs, &o->o_node);
    deactivate_locked(o);
    o->o_announce = false;
    drop_queue_locked(o, chain);
    pthread_cond_broadcast(&o->o_cv);
}

/* dp_mu held. */
static bool recently_released(const eddy__dp_t *dp, uint64_t tag)
{
    size_t n = EDDY_MIN(dp->dp_nreleased, (size_t)RELEASED_RING);
    for (size_t i = 0; i < n; i++) {
        if (dp->dp_released[i] == tag) {
            return true;
        }
    }
    return false;
}

/* dp_mu held. Frees the orphans matching peer (if not NULL) or job tag. */
static void orphans_drop_locked(eddy__dp_t *dp, const dp_peer_t *peer,
                                uint64_t tag)
{
    htab_t *t = &dp->dp_orphans;
    for (size_t i = 0; i < t->ht_nb; i++) {
        hnode_t *n = t->ht_b[i];
        while (n != NULL) {
            hnode_t *next = n->h_next;
            dp_orphan_t * or = (dp_orphan_t *)n;
            if (peer != NULL ? or->or_peer == peer : n->h_id.ci_job == tag) {
                ht_remove(t, n);
                eddy__free(or);
            }
            n = next;
        }
    }
}

/* 0, or the code a push on `o` returns now. */
static int out_check_locked(const eddy__dp_out_t *o)
{
    if (o->o_released) {
        return EDDY_ERR_CANCELED;
    }
    if (o->o_epoch != o->o_peer->p_epoch) {
        return EDDY_ERR_IO;
    }
    return 0;
}

/* ---- connections (I/O thread) ---- */

static wframe_t *frame_add(dp_conn_t *c, int type, eddy__dp_chan_id_t id,
                           uint32_t arg, const unsigned char *pay, uint32_t len)
{
    wframe_t *f = &c->c_w[(c->c_whead + c->c_wcount) % WBATCH];
    c->c_wcount++;
    eddy__dp_hdr_t h = {(uint8_t)type, len, arg, id};
    eddy__dp_hdr_encode(f->f_hdr, &h);
    f->f_pay = pay;
    f->f_len = len;
    f->f_off = 0;
    f->f_data = type == EDDY__DP_DATA;
    f->f_buf = NULL;
    f->f_out = NULL;
    return f;
}

/* Queues a HELLO or HELLO_ACK; the connection has no frames yet. */
static void frame_hello(eddy__dp_t *dp, dp_conn_t *c, int type)
{
    unsigned char tmp[EDDY__DP_HDR_SIZE + EDDY__DP_CTL_MAX];
    size_t n = eddy__dp_hello_encode(tmp, sizeof(tmp), type, dp->dp_self_id,
                                     dp->dp_addr, EDDY__DP_VERSION);
    size_t len = n - EDDY__DP_HDR_SIZE;
    memcpy(c->c_ctl, tmp + EDDY__DP_HDR_SIZE, len);
    eddy__dp_chan_id_t none = {0, 0, 0};
    frame_add(c, type, none, 0, c->c_ctl, (uint32_t)len);
}

static void frame_reject(dp_conn_t *c, uint32_t code, const char *reason)
{
    size_t len = EDDY_MIN(strlen(reason), (size_t)EDDY__DP_CTL_MAX);
    memcpy(c->c_ctl, reason, len);
    eddy__dp_chan_id_t none = {0, 0, 0};
    frame_add(c, EDDY__DP_REJECT, none, code, c->c_ctl, (uint32_t)len);
    c->c_state = C_CLOSING;
    c->c_since_ns = eddy__now_ns();
}

/* Closes the socket and returns every buffer the connection holds; the
 * sweep frees the struct. Clears the peer's pointers to it. */
static void conn_close(eddy__dp_t *dp, dp_conn_t *c)
{
    if (c->c_state == C_DEAD) {
        return;
    }
    if (c->c_peer != NULL) {
        if (c->c_peer->p_conn == c) {
            c->c_peer->p_conn = NULL;
        }
        if (c->c_peer->p_dialing == c) {
            c->c_peer->p_dialing = NULL;
        }
    }
    if (c->c_counted) {
        atomic_fetch_sub(&dp->dp_nconn, 1);
        c->c_counted = false;
    }
    close(c->c_fd);
    c->c_fd = -1;
    for (int i = 0; i < c->c_wcount; i++) {
        eddy__buffer_release(c->c_w[(c->c_whead + i) % WBATCH].f_buf);
    }
    c->c_wcount = 0;
    eddy__buffer_release(c->c_rtarget);
    c->c_rtarget = NULL;
    c->c_state = C_DEAD;
}

/*
 * The connection to `p` is gone: every output created before now fails
 * (blocked pushers wake with EDDY_ERR_IO), inputs from it stop granting
 * credit and give back the floating credits they were not using, and the
 * TaskManager hears about it.
 */
static void peer_lost(eddy__dp_t *dp, dp_peer_t *p, const char *reason)
{
    eddy__buffer_t *chain = NULL;
    eddy__mutex_lock(&dp->dp_mu);
    uint64_t old = p->p_epoch++;
    eddy__fmt(p->p_reason, sizeof(p->p_reason), "%s", reason);
    p->p_want = false;
    for (eddy__dp_out_t *o = dp->dp_out_all; o != NULL; o = o->o_next) {
        if (o->o_peer == p && o->o_epoch == old && !o->o_released) {
            drop_queue_locked(o, &chain);
            o->o_announce = false;
            pthread_cond_broadcast(&o->o_cv);
        }
    }
    while (p->p_active != NULL) {
        deactivate_locked(p->p_active);
    }
    orphans_drop_locked(dp, p, 0);
    eddy__mutex_unlock(&dp->dp_mu);
    release_chain(chain);

    eddy__mutex_lock(&dp->dp_rmu);
    eddy__mutex_lock(&dp->dp_cmu);
    for (size_t i = 0; i < dp->dp_ins.ht_nb; i++) {
        for (hnode_t *n = dp->dp_ins.ht_b[i]; n != NULL; n = n->h_next) {
            dp_in_t *in = (dp_in_t *)n;
            if (in->in_peer != p || in->in_dead) {
                continue;
            }
            in->in_dead = true;
            in->in_pending = 0;
            credq_remove_locked(in);
            starving_remove_locked(dp, in);
            /* Floating credits not backing a queued buffer go back now;
             * the others when the consumer takes those buffers. */
            int r = EDDY_MIN(in->in_floating, in->in_unused);
            in->in_floating -= r;
            in->in_unused -= r;
            dp->dp_float_free += r;
        }
    }
    serve_starving_locked(dp);
    eddy__mutex_unlock(&dp->dp_cmu);
    eddy__mutex_unlock(&dp->dp_rmu);

    if (dp->dp_on_lost != NULL) {
        dp->dp_on_lost(dp->dp_arg, p->p_addr, reason);
    }
}

/*
 * Closes `c` after a failure described by fmt. If it was the peer's
 * connection (or our attempt to make one), the peer is lost; connections
 * that never identified themselves, the accepted end of a connection to
 * ourselves, and attempts that lost the pairing go quietly.
 */
static void conn_fail(eddy__dp_t *dp, dp_conn_t *c, const char *fmt, ...)
    EDDY_PRINTF_LIKE(3, 4);

static void conn_fail(eddy__dp_t *dp, dp_conn_t *c, const char *fmt, ...)
{
    if (c->c_state == C_DEAD) {
        return;
    }
    char what[256], reason[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    dp_peer_t *p = c->c_peer;
    bool lost = false;
    if (p != NULL && !c->c_self) {
        if (p->p_conn == c) {
            lost = true;
            eddy__fmt(reason, sizeof(reason),
                      "connection to TaskManager %s lost: %s", p->p_addr, what);
        } else if (p->p_dialing == c) {
            lost = true;
            eddy__fmt(reason, sizeof(reason),
                      "cannot connect to TaskManager %s: %s", p->p_addr, what);
        }
    }
    conn_close(dp, c);
    if (lost) {
        peer_lost(dp, p, reason);
    }
}

static dp_conn_t *conn_new(eddy__dp_t *dp, int fd, int state)
{
    dp_conn_t *c = eddy__calloc(1, sizeof(*c));
    c->c_fd = fd;
    c->c_state = state;
    c->c_rbuf = eddy__malloc(RBUF_SIZE);
    c->c_since_ns = eddy__now_ns();
    c->c_next = dp->dp_conns;
    dp->dp_conns = c;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return c;
}

static void set_established(eddy__dp_t *dp, dp_conn_t *c)
{
    c->c_state = C_ESTABLISHED;
    c->c_counted = true;
    atomic_fetch_add(&dp->dp_nconn, 1);
    /* Credits queued while there was no connection go out now. */
    kick(dp);
}

/* ---- handshake ---- */

/* Orders (id, address) pairs: the connection dialed by the smaller one
 * survives a simultaneous connect. */
static int node_cmp(const eddy__dp_t *dp, const hello_t *he)
{
    int c = strcmp(dp->dp_self_id, he->he_id);
    return c != 0 ? c : strcmp(dp->dp_addr, he->he_addr);
}

static void on_hello(eddy__dp_t *dp, dp_conn_t *c, const hello_t *he)
{
    dp_peer_t *p;
    eddy__mutex_lock(&dp->dp_mu);
    p = peer_get(dp, he->he_addr, true);
    eddy__mutex_unlock(&dp->dp_mu);
    if (p == NULL) {
        conn_fail(dp, c, "too many peers");
        return;
    }

    if (he->he_version != EDDY__DP_VERSION) {
        char reason[320];
        eddy__fmt(reason, sizeof(reason),
                  "TaskManager %s (%s) speaks data-plane protocol version "
                  "%" PRIu32 ", this one (%s) speaks %u",
                  he->he_addr, he->he_id, he->he_version, dp->dp_self_id,
                  EDDY__DP_VERSION);
        frame_reject(c, EDDY__DP_REJECT_VERSION, reason);
        if (p->p_conn == NULL && p->p_dialing == NULL) {
            peer_lost(dp, p, reason);
        } else if (dp->dp_on_lost != NULL) {
            dp->dp_on_lost(dp->dp_arg, he->he_addr, reason);
        }
        return;
    }
    int cmp = node_cmp(dp, he);
    if (cmp == 0) {
        /* Our own connection to ourselves (tests): both ends read frames
         * into the same tables, so the dialed end alone sends ours. */
        c->c_self = true;
        c->c_peer = p;
        frame_hello(dp, c, EDDY__DP_HELLO_ACK);
        set_established(dp, c);
        return;
    }
    dp_conn_t *existing = p->p_conn != NULL ? p->p_conn : p->p_dialing;
    if (existing != NULL && existing->c_outbound && cmp < 0) {
        /* Both dialed; ours wins. The peer accepts ours by the same rule. */
        frame_reject(c, EDDY__DP_REJECT_DUPLICATE,
                     "simultaneous connect: keeping the connection dialed "
                     "by the smaller id");
        return;
    }
    if (existing != NULL) {
        if (existing == p->p_dialing) {
            /* Theirs wins. Nothing was sent on ours but its HELLO. */
            conn_close(dp, existing);
        } else {
            /* A live connection, yet the peer dialed again: it lost the old
             * one, so do we. */
            conn_fail(dp, existing,
                      "the peer opened a new connection (it lost this one)");
        }
    }
    c->c_peer = p;
    p->p_conn = c;
    frame_hello(dp, c, EDDY__DP_HELLO_ACK);
    set_established(dp, c);
}

/* Returns -1 if the connection was closed. */
static int on_handshake(eddy__dp_t *dp, dp_conn_t *c, const eddy__dp_hdr_t *h,
                        const unsigned char *pay)
{
    hello_t he;
    if (h->h_type == EDDY__DP_HELLO) {
        if (c->c_state != C_AWAIT_HELLO) {
            conn_fail(dp, c, "protocol error: unexpected HELLO");
            return -1;
        }
        if (hello_parse(pay, h->h_len, &he) != 0 ||
            he.he_magic != EDDY__DP_MAGIC) {
            /* Not an eddy data plane: nobody to report to. */
            conn_fail(dp, c, "malformed HELLO");
            return -1;
        }
        on_hello(dp, c, &he);
        return c->c_state == C_DEAD ? -1 : 0;
    }
    if (c->c_state != C_HELLO_SENT) {
        conn_fail(dp, c, "protocol error: unexpected %s",
                  h->h_type == EDDY__DP_REJECT ? "REJECT" : "HELLO_ACK");
        return -1;
    }
    if (h->h_type == EDDY__DP_REJECT) {
        if (h->h_arg == EDDY__DP_REJECT_DUPLICATE) {
            /* The peer keeps the connection it dialed; it is on its way. */
            c->c_peer->p_retry_ns = eddy__now_ns() + DUP_RETRY_NS;
            conn_close(dp, c);
            return -1;
        }
        char msg[EDDY__DP_CTL_MAX + 1];
        size_t n = h->h_len;
        memcpy(msg, pay, n);
        msg[n] = '\0';
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)msg[i] < 0x20) {
                msg[i] = '?';
            }
        }
        conn_fail(dp, c, "refused: %s", msg);
        return -1;
    }
    if (hello_parse(pay, h->h_len, &he) != 0 || he.he_magic != EDDY__DP_MAGIC) {
        conn_fail(dp, c, "protocol error: malformed HELLO_ACK");
        return -1;
    }
    if (he.he_version != EDDY__DP_VERSION) {
        conn_fail(dp, c,
                  "it speaks data-plane protocol version %" PRIu32
                  ", this one speaks %u",
                  he.he_version, EDDY__DP_VERSION);
        return -1;
    }
    dp_peer_t *p = c->c_peer;
    p->p_dialing = NULL;
    p->p_conn = c;
    set_established(dp, c);
    return 0;
}

/* ---- reading (I/O thread) ---- */

static void on_credit(eddy__dp_t *dp, dp_conn_t *c, const eddy__dp_hdr_t *h)
{
    eddy__mutex_lock(&dp->dp_mu);
    eddy__dp_out_t *o = (eddy__dp_out_t *)ht_find(&dp->dp_outs, h->h_id);
    if (o != NULL) {
        if (o->o_peer == c->c_peer && out_check_locked(o) == 0) {
            o->o_credit += (int)h->h_arg;
            if (o->o_qhead != NULL) {
                activate_locked(o); /* written later in this loop turn */
            }
            if (o->o_waiting > 0) {
                pthread_cond_signal(&o->o_cv);
            }
        }
    } else if (!recently_released(dp, h->h_id.ci_job)) {
        /* The consumer's side registered first: keep the credits for
         * eddy__dp_add_output. */
        dp_orphan_t * or = (dp_orphan_t *)ht_find(&dp->dp_orphans, h->h_id);
        if (or == NULL && dp->dp_orphans.ht_count < MAX_ORPHANS) {
            or = eddy__calloc(1, sizeof(* or));
            or->or_node.h_id = h->h_id;
            or->or_peer = c->c_peer;
            ht_insert(&dp->dp_orphans, & or->or_node);
        }
        if (or != NULL && or->or_peer == c->c_peer) {
            or->or_credit += (int)h->h_arg;
        }
    }
    eddy__mutex_unlock(&dp->dp_mu);
}

static void on_backlog(eddy__dp_t *dp, dp_conn_t *c, const eddy__dp_hdr_t *h)
{
    eddy__mutex_lock(&dp->dp_rmu);
    dp_in_t *in = (dp_in_t *)ht_find(&dp->dp_ins, h->h_id);
    if (in != NULL && in->in_peer == c->c_peer) {
        eddy__mutex_lock(&dp->dp_cmu);
        in->in_backlog = (int)EDDY_MIN(h->h_arg, (uint32_t)INT32_MAX);
        lend_locked(dp, in);
        eddy__mutex_unlock(&dp->dp_cmu);
    }
    eddy__mutex_unlock(&dp->dp_rmu);
}

/* Picks the buffer a DATA payload goes into. Returns 1 to park the
 * connection (no receive buffer free right now), else 0. */
static int begin_data(eddy__dp_t *dp, dp_conn_t *c, const eddy__dp_hdr_t *h)
{
    eddy__mutex_lock(&dp->dp_rmu);
    dp_in_t *in = (dp_in_t *)ht_find(&dp->dp_ins, h->h_id);
    bool known = in != NULL && in->in_peer == c->c_peer;
    eddy__mutex_unlock(&dp->dp_rmu);
    c->c_rtarget = NULL;
    if (!known) {
        return 0; /* late or unknown: read and drop */
    }
    eddy__buffer_t *b = eddy__pool_try_get(dp->dp_pool);
    if (b == NULL) {
        return 1;
    }
    c->c_rtarget = b;
    return 0;
}

/* A DATA payload is complete: hand it to its channel. -1 if the connection
 * was closed (the sender broke the credit protocol). */
static int finish_data(eddy__dp_t *dp, dp_conn_t *c)
{
    const eddy__dp_hdr_t *h = &c->c_rhdr;
    eddy__buffer_t *b = c->c_rtarget;
    c->c_rtarget = NULL;
    atomic_fetch_add_explicit(&dp->dp_bufs_in, 1, memory_order_relaxed);
    if (b == NULL) {
        atomic_fetch_add_explicit(&dp->dp_dropped, 1, memory_order_relaxed);
        return 0;
    }
    b->buf_len = h->h_len;
    char cs[64];
    eddy__mutex_lock(&dp->dp_rmu);
    dp_in_t *in = (dp_in_t *)ht_find(&dp->dp_ins, h->h_id);
    if (in == NULL || in->in_peer != c->c_peer) {
        /* Released while its payload was arriving. */
        eddy__mutex_unlock(&dp->dp_rmu);
        eddy__buffer_release(b);
        atomic_fetch_add_explicit(&dp->dp_dropped, 1, memory_order_relaxed);
        return 0;
    }
    eddy__mutex_lock(&dp->dp_cmu);
    if (in->in_dead) {
        eddy__mutex_unlock(&dp->dp_cmu);
        eddy__mutex_unlock(&dp->dp_rmu);
        eddy__buffer_release(b);
        atomic_fetch_add_explicit(&dp->dp_dropped, 1, memory_order_relaxed);
        return 0;
    }
    if (in->in_unused <= 0) {
        eddy__mutex_unlock(&dp->dp_cmu);
        eddy__mutex_unlock(&dp->dp_rmu);
        eddy__buffer_release(b);
        conn_fail(dp, c, "protocol error: DATA for channel %s without credit",
                  chan_str(cs, sizeof(cs), h->h_id));
        return -1;
    }
    in->in_unused--;
    in->in_backlog = (int)EDDY_MIN(h->h_arg, (uint32_t)INT32_MAX);
    lend_locked(dp, in);
    eddy__mutex_unlock(&dp->dp_cmu);
    int rc = eddy__gate_push_nowait(in->in_ic, b);
    eddy__mutex_unlock(&dp->dp_rmu);
    if (rc != 0) {
        /* Cannot happen while credits match ring slots; never block. */
        eddy__buffer_release(b);
        conn_fail(dp, c, "protocol error: channel %s is full",
                  chan_str(cs, sizeof(cs), h->h_id));
        return -1;
    }
    return 0;
}

/* Handles the frames buffered in c_rbuf. Returns -1 if the connection was
 * closed. Stops early (0) when the connection parks. */
static int process(eddy__dp_t *dp, dp_conn_t *c)
{
    for (;;) {
        if (c->c_state == C_DEAD) {
            return -1;
        }
        size_t avail = c->c_rlen - c->c_roff;
        if (c->c_state == C_CLOSING) {
            c->c_roff = c->c_rlen; /* a rejected connection: ignore it */
            return 0;
        }
        if (c->c_in_pay) {
            uint32_t want = c->c_rhdr.h_len - c->c_rgot;
            size_t take = EDDY_MIN(avail, (size_t)want);
            if (take > 0) {
                if (c->c_rtarget != NULL) {
                    memcpy(c->c_rtarget->buf_data + c->c_rgot,
                           c->c_rbuf + c->c_roff, take);
                }
                c->c_rgot += (uint32_t)take;
                c->c_roff += take;
            }
            if (c->c_rgot < c->c_rhdr.h_len) {
                return 0;
            }
            c->c_in_pay = false;
            if (finish_data(dp, c) < 0) {
                return -1;
            }
            continue;
        }
        if (avail < EDDY__DP_HDR_SIZE) {
            /* Judge a partial header by what is there, so that a short
             * burst of garbage is refused now, not at the handshake
             * timeout. */
            const unsigned char *p = c->c_rbuf + c->c_roff;
            if (avail > 0 &&
                (p[0] < EDDY__DP_HELLO || p[0] > EDDY__DP_BACKLOG ||
                 (c->c_state == C_AWAIT_HELLO && p[0] != EDDY__DP_HELLO))) {
                conn_fail(dp, c, "protocol error: unknown frame type 0x%02x",
                          p[0]);
                return -1;
            }
            if (avail >= 4 && (p[1] != 0 || p[2] != 0 || p[3] != 0)) {
                conn_fail(dp, c,
                          "protocol error: frame header with "
                          "non-zero reserved bytes");
                return -1;
            }
            return 0;
        }
        eddy__dp_hdr_t h;
        eddy_error_t e;
        if (eddy__dp_hdr_decode(c->c_rbuf + c->c_roff, &h, &e) != 0) {
            conn_fail(dp, c, "protocol error: %s", e.msg);
            return -1;
        }
        bool handshake = h.h_type == EDDY__DP_HELLO ||
                         h.h_type == EDDY__DP_HELLO_ACK ||
                         h.h_type == EDDY__DP_REJECT;
        if (handshake) {
            if (h.h_len > EDDY__DP_CTL_MAX) {
                conn_fail(dp, c,
                          "protocol error: handshake frame of %" PRIu32
                          " bytes",
                          h.h_len);
                return -1;
            }
            if (avail < EDDY__DP_HDR_SIZE + h.h_len) {
                return 0;
            }
            const unsigned char *pay =
                c->c_rbuf + c->c_roff + EDDY__DP_HDR_SIZE;
            c->c_roff += EDDY__DP_HDR_SIZE + h.h_len;
            if (on_handshake(dp, c, &h, pay) < 0) {
                return -1;
            }
            continue;
        }
        if (c->c_state != C_ESTABLISHED) {
            conn_fail(dp, c, "protocol error: frame type %d before HELLO",
                      h.h_type);
            return -1;
        }
        if (h.h_type == EDDY__DP_DATA) {
            if (h.h_len > dp->dp_seg) {
                conn_fail(dp, c,
                          "protocol error: DATA frame of %" PRIu32
                          " bytes, the segment size is %zu",
                          h.h_len, dp->dp_seg);
                return -1;
            }
            if (begin_data(dp, c, &h) != 0) {
                c->c_parked = true; /* the header stays unconsumed */
                return 0;
            }
            c->c_roff += EDDY__DP_HDR_SIZE;
            c->c_in_pay = true;
            c->c_rhdr = h;
            c->c_rgot = 0;
            continue;
        }
        if (h.h_len != 0 || (h.h_type == EDDY__DP_CREDIT &&
                             (h.h_arg == 0 || h.h_arg > MAX_CREDIT_FRAME))) {
            conn_fail(dp, c, "protocol error: malformed %s frame",
                      h.h_type == EDDY__DP_CREDIT ? "CREDIT" : "BACKLOG");
            return -1;
        }
        c->c_roff += EDDY__DP_HDR_SIZE;
        if (h.h_type == EDDY__DP_CREDIT) {
            on_credit(dp, c, &h);
        } else {
            on_backlog(dp, c, &h);
        }
    }
}

static void read_conn(eddy__dp_t *dp, dp_conn_t *c)
{
    size_t budget = IO_BUDGET;
    while (c->c_state != C_DEAD && c->c_state != C_CLOSING && !c->c_parked &&
           budget > 0) {
        ssize_t n;
        if (c->c_in_pay && c->c_rtarget != NULL && c->c_roff == c->c_rlen) {
            /* The rest of a payload goes straight into its buffer; what
             * follows it lands in the staging area. */
            uint32_t want = c->c_rhdr.h_len - c->c_rgot;
            struct iovec iov[2] = {{c->c_rtarget->buf_data + c->c_rgot, want},
                                   {c->c_rbuf, RBUF_SIZE}};
            c->c_roff = c->c_rlen = 0;
            n = readv(c->c_fd, iov, 2);
            if (n > 0) {
                size_t k = EDDY_MIN((size_t)n, (size_t)want);
                c->c_rgot += (uint32_t)k;
                c->c_rlen = (size_t)n - k;
            }
        } else {
            if (c->c_roff > 0) {
                memmove(c->c_rbuf, c->c_rbuf + c->c_roff,
                        c->c_rlen - c->c_roff);
                c->c_rlen -= c->c_roff;
                c->c_roff = 0;
            }
            if (c->c_rlen == RBUF_SIZE) {
                return; /* cannot happen: every frame fits the stage */
            }
            n = recv(c->c_fd, c->c_rbuf + c->c_rlen, RBUF_SIZE - c->c_rlen, 0);
            if (n > 0) {
                c->c_rlen += (size_t)n;
            }
        }
        if (n == 0) {
            conn_fail(dp, c, "connection closed by peer");
            return;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            conn_fail(dp, c, "%s", strerror(errno));
            return;
        }
        atomic_fetch_add_explicit(&dp->dp_bytes_in, (uint64_t)n,
                                  memory_order_relaxed);
        budget -= EDDY_MIN(budget, (size_t)n);
        if (process(dp, c) < 0) {
            return;
        }
    }
}

/* ---- writing (I/O thread) ---- */

/* Takes credits, backlog announcements and buffers for the peer of `c` into
 * its batch: credits first (they are small and unblock the peer), then one
 * frame per output in turn, so no channel waits behind another's queue. */
static void refill(eddy__dp_t *dp, dp_conn_t *c)
{
    dp_peer_t *p = c->c_peer;
    if (c->c_wcount == WBATCH) {
        return;
    }
    eddy__mutex_lock(&dp->dp_cmu);
    while (c->c_wcount < WBATCH && p->p_credq != NULL) {
        dp_in_t *in = p->p_credq;
        p->p_credq = in->in_cnext;
        if (p->p_credq == NULL) {
            p->p_credq_tail = NULL;
        }
        in->in_queued = false;
        in->in_cnext = NULL;
        if (in->in_pending > 0 && !in->in_dead) {
            frame_add(c, EDDY__DP_CREDIT, in->in_node.h_id,
                      (uint32_t)in->in_pending, NULL, 0);
            in->in_pending = 0;
        }
    }
    eddy__mutex_unlock(&dp->dp_cmu);
    if (c->c_wcount == WBATCH) {
        return;
    }
    eddy__mutex_lock(&dp->dp_mu);
    while (c->c_wcount < WBATCH && p->p_active != NULL) {
        eddy__dp_out_t *o = p->p_active;
        p->p_active = o->o_anext;
        if (p->p_active == NULL) {
            p->p_active_tail = NULL;
        }
        o->o_active = false;
        o->o_anext = NULL;
        if (o->o_qhead != NULL && o->o_credit > 0) {
            /* A buffer takes its credit when it enters the byte stream.
             * Its header carries how many more are queued behind it. */
            eddy__buffer_t *b = o->o_qhead;
            o->o_qhead = b->buf_next;
            if (o->o_qhead == NULL) {
                o->o_qtail = NULL;
            }
            b->buf_next = NULL;
            o->o_qlen--;
            o->o_credit--;
            wframe_t *f =
                frame_add(c, EDDY__DP_DATA, o->o_node.h_id, (uint32_t)o->o_qlen,
                          b->buf_data, b->buf_len);
            f->f_buf = b;
            f->f_out = o;
        }
        if (o->o_announce && c->c_wcount < WBATCH) {
            o->o_announce = false;
            if (o->o_qlen > o->o_credit) {
                frame_add(c, EDDY__DP_BACKLOG, o->o_node.h_id,
                          (uint32_t)o->o_qlen, NULL, 0);
            }
        }
        if ((o->o_qhead != NULL && o->o_credit > 0) || o->o_announce) {
            activate_locked(o);
        }
    }
    eddy__mutex_unlock(&dp->dp_mu);
}

static void consume(eddy__dp_t *dp, dp_conn_t *c, size_t n)
{
    while (n > 0) {
        wframe_t *f = &c->c_w[c->c_whead];
        size_t rem = EDDY__DP_HDR_SIZE + f->f_len - f->f_off;
        if (n < rem) {
            f->f_off += (uint32_t)n;
            return;
        }
        n -= rem;
        if (f->f_data) {
            atomic_fetch_add_explicit(&dp->dp_bufs_out, 1,
                                      memory_order_relaxed);
        }
        eddy__buffer_release(f->f_buf);
        f->f_buf = NULL;
        f->f_out = NULL;
        c->c_whead = (c->c_whead + 1) % WBATCH;
        c->c_wcount--;
    }
}

static void write_conn(eddy__dp_t *dp, dp_conn_t *c)
{
    size_t budget = IO_BUDGET;
    while (!c->c_wblocked && c->c_state != C_DEAD &&
           c->c_state != C_CONNECTING) {
        if (c->c_state == C_ESTABLISHED && c->c_peer->p_conn == c) {
            refill(dp, c);
        }
        if (c->c_wcount == 0) {
            if (c->c_state == C_CLOSING) {
                conn_close(dp, c);
            }
            return;
        }
        if (budget == 0) {
            dp->dp_again = true;
            return;
        }
        struct iovec iov[2 * WBATCH];
        int k = 0;
        for (int i = 0; i < c->c_wcount; i++) {
            wframe_t *f = &c->c_w[(c->c_whead + i) % WBATCH];
            size_t off = f->f_off;
            if (off < EDDY__DP_HDR_SIZE) {
                iov[k].iov_base = f->f_hdr + off;
                iov[k].iov_len = EDDY__DP_HDR_SIZE - off;
                k++;
                off = 0;
            } else {
                off -= EDDY__DP_HDR_SIZE;
            }
            if (f->f_len > off) {
                iov[k].iov_base = (void *)(f->f_pay + off);
                iov[k].iov_len = f->f_len - off;
                k++;
            }
        }
        struct msghdr m;
        memset(&m, 0, sizeof(m));
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)k;
        /* MSG_NOSIGNAL: a peer that vanished must not SIGPIPE the process. */
        ssize_t n = sendmsg(c->c_fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->c_wblocked = true;
                return;
            }
            conn_fail(dp, c, "%s", strerror(errno));
            return;
        }
        atomic_fetch_add_explicit(&dp->dp_bytes_out, (uint64_t)n,
                                  memory_order_relaxed);
        budget -= EDDY_MIN(budget, (size_t)n);
        consume(dp, c, (size_t)n);
    }
}

/*
 * Drops from every connection's batch the frames of outputs released since
 * the last purge, so their buffers go back to their pools before
 * eddy__dp_release_job returns (the job's pool may be destroyed right
 * after). A frame already half written cannot leave the byte stream: its
 * payload is copied aside and the buffer released.
 */
static void purge(eddy__dp_t *dp)
{
    eddy__buffer_t *chain = NULL;
    eddy__mutex_lock(&dp->dp_mu);
    if (dp->dp_purge_done == dp->dp_purge_req) {
        eddy__mutex_unlock(&dp->dp_mu);
        return;
    }
    uint64_t target = dp->dp_purge_req;
    for (dp_conn_t *c = dp->dp_conns; c != NULL; c = c->c_next) {
        int kept = 0;
        for (int i = 0; i < c->c_wcount; i++) {
            wframe_t f = c->c_w[(c->c_whead + i) % WBATCH];
            if (f.f_out != NULL && f.f_out->o_released) {
                if (f.f_off == 0) {
                    f.f_buf->buf_next = chain;
                    chain = f.f_buf;
                    continue;
                }
                if (c->c_spill == NULL) {
                    c->c_spill = eddy__malloc(dp->dp_seg);
                }
                memcpy(c->c_spill, f.f_pay, f.f_len);
                f.f_pay = c->c_spill;
                f.f_buf->buf_next = chain;
                chain = f.f_buf;
                f.f_buf = NULL;
                f.f_out = NULL;
            }
            c->c_w[(c->c_whead + kept) % WBATCH] = f;
            kept++;
        }
        c->c_wcount = kept;
    }
    dp->dp_purge_done = target;
    pthread_cond_broadcast(&dp->dp_purge_cv);
    eddy__mutex_unlock(&dp->dp_mu);
    release_chain(chain);
}

/* Asks the I/O thread to purge and waits for it (or purges inline when
 * called from it). */
static void purge_wait(eddy__dp_t *dp)
{
    if (on_io_thread(dp)) {
        purge(dp);
        return;
    }
    eddy__mutex_lock(&dp->dp_mu);
    uint64_t mine = ++dp->dp_purge_req;
    eddy__mutex_unlock(&dp->dp_mu);
    kick(dp);
    eddy__mutex_lock(&dp->dp_mu);
    while (dp->dp_purge_done < mine) {
        pthread_cond_wait(&dp->dp_purge_cv, &dp->dp_mu);
    }
    eddy__mutex_unlock(&dp->dp_mu);
}

/* ---- the I/O loop ---- */

/* The socket's own address as "host:port" ("[v6]:port"). */
static void sock_name(int fd, char *out, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    int rc = getsockname(fd, (struct sockaddr *)&ss, &sl);
    if (rc != 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
                    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        eddy__fmt(out, size, "?");
        return;
    }
    if (ss.ss_family == AF_INET6) {
        eddy__fmt(out, size, "[%s]:%s", host, serv);
    } else {
        eddy__fmt(out, size, "%s:%s", host, serv);
    }
}

static void accept_all(eddy__dp_t *dp)
{
    for (;;) {
        int fd = accept4(dp->dp_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED) {
                /* Out of descriptors or memory: the pending connection
                 * keeps the socket readable, so stop polling it for a
                 * while instead of spinning. */
                dp->dp_accept_after_ns = eddy__now_ns() + ACCEPT_PAUSE_NS;
            }
            return;
        }
        conn_new(dp, fd, C_AWAIT_HELLO);
    }
}

static void dial(eddy__dp_t *dp, dp_peer_t *p)
{
    char host[EDDY__DP_NAME_MAX + 1], port[16], reason[320];
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (split_addr(p->p_addr, host, sizeof(host), port, sizeof(port)) != 0) {
        eddy__fmt(reason, sizeof(reason), "bad TaskManager address '%s'",
                  p->p_addr);
        peer_lost(dp, p, reason);
        return;
    }
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        eddy__fmt(reason, sizeof(reason),
                  "cannot connect to TaskManager %s: %s", p->p_addr,
                  gai_strerror(gai));
        peer_lost(dp, p, reason);
        return;
    }
    int fd =
        socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? -1 : connect(fd, ai->ai_addr, ai->ai_addrlen);
    int e = errno;
    freeaddrinfo(ai);
    if (fd < 0 || (rc != 0 && e != EINPROGRESS)) {
        if (fd >= 0) {
            close(fd);
        }
        eddy__fmt(reason, sizeof(reason),
                  "cannot connect to TaskManager %s: %s", p->p_addr,
                  strerror(e));
        peer_lost(dp, p, reason);
        return;
    }
    dp_conn_t *c = conn_new(dp, fd, C_CONNECTING);
    c->c_outbound = true;
    c->c_peer = p;
    p->p_dialing = c;
    if (rc == 0) {
        c->c_state = C_HELLO_SENT;
        frame_hello(dp, c, EDDY__DP_HELLO);
    }
}

static void dial_wanted(eddy__dp_t *dp, uint64_t now)
{
    /* p_conn and p_dialing belong to this thread; p_want to dp_mu. The
     * peer list only grows (at its head), so walking it unlocked after
     * reading the head under the lock is safe. */
    eddy__mutex_lock(&dp->dp_mu);
    dp_peer_t *head = dp->dp_peers;
    eddy__mutex_unlock(&dp->dp_mu);
    for (dp_peer_t *p = head; p != NULL; p = p->p_next) {
        if (p->p_conn != NULL || p->p_dialing != NULL || now < p->p_retry_ns) {
            continue;
        }
        eddy__mutex_lock(&dp->dp_mu);
        bool want = p->p_want;
        eddy__mutex_unlock(&dp->dp_mu);
        if (want) {
            dial(dp, p);
        }
    }
}

static void finish_connect(eddy__dp_t *dp, dp_conn_t *c)
{
    int e = 0;
    socklen_t el = sizeof(e);
    if (getsockopt(c->c_fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0) {
        e = errno;
    }
    if (e != 0) {
        conn_fail(dp, c, "%s", strerror(e));
        return;
    }
    c->c_state = C_HELLO_SENT;
    c->c_since_ns = eddy__now_ns();
    frame_hello(dp, c, EDDY__DP_HELLO);
}

static void check_timeouts(eddy__dp_t *dp)
{
    uint64_t now = eddy__now_ns();
    for (dp_conn_t *c = dp->dp_conns; c != NULL; c = c->c_next) {
        uint64_t age = now > c->c_since_ns ? now - c->c_since_ns : 0;
        if ((c->c_state == C_CONNECTING || c->c_state == C_HELLO_SENT ||
             c->c_state == C_AWAIT_HELLO) &&
            age > HANDSHAKE_TIMEOUT_NS) {
            conn_fail(dp, c, "handshake timed out");
        } else if (c->c_state == C_CLOSING && age > CLOSING_TIMEOUT_NS) {
            conn_close(dp, c);
        }
    }
}

static void sweep(eddy__dp_t *dp)
{
    dp_conn_t **pp = &dp->dp_conns;
    while (*pp != NULL) {
        dp_conn_t *c = *pp;
        if (c->c_state == C_DEAD) {
            *pp = c->c_next;
            eddy__free(c->c_rbuf);
            eddy__free(c->c_spill);
            eddy__free(c);
        } else {
            pp = &c->c_next;
        }
    }
}

static void *io_main(void *arg)
{
    eddy__dp_t *dp = arg;
    while (!atomic_load(&dp->dp_stop)) {
        size_t nc = 0;
        for (dp_conn_t *c = dp->dp_conns; c != NULL; c = c->c_next) {
            nc++;
        }
        if (nc + 2 > dp->dp_pcap) {
            size_t cap = dp->dp_pcap, cap2 = dp->dp_pcap;
            eddy__grow((void **)&dp->dp_pfds, &cap, nc + 2,
                       sizeof(struct pollfd));
            eddy__grow((void **)&dp->dp_pconns, &cap2, nc + 2,
                       sizeof(dp_conn_t *));
            dp->dp_pcap = EDDY_MIN(cap, cap2);
        }
        int timeout = -1;
        uint64_t now = eddy__now_ns();
        nfds_t n = 0;
        dp->dp_pfds[n++] = (struct pollfd){dp->dp_efd, POLLIN, 0};
        bool accepting = now >= dp->dp_accept_after_ns;
        dp->dp_pfds[n++] =
            (struct pollfd){dp->dp_lfd, accepting ? POLLIN : 0, 0};
        if (!accepting) {
            timeout = (int)((dp->dp_accept_after_ns - now) / 1000000u) + 1;
        }
        for (dp_conn_t *c = dp->dp_conns; c != NULL; c = c->c_next) {
            short ev = 0;
            if (c->c_state == C_CONNECTING) {
                ev = POLLOUT;
            } else {
                if (!c->c_parked && c->c_state != C_CLOSING) {
                    ev |= POLLIN;
                }
                if (c->c_wcount > 0) {
                    ev |= POLLOUT;
                }
            }
            if (c->c_parked) {
                timeout = PARK_POLL_MS;
            } else if (c->c_state != C_ESTABLISHED && timeout < 0) {
                timeout = 200; /* handshake and closing timeouts */
            }
            dp->dp_pconns[n] = c;
            dp->dp_pfds[n++] = (struct pollfd){c->c_fd, ev, 0};
        }
        eddy__mutex_lock(&dp->dp_mu);
        dp_peer_t *peers = dp->dp_peers;
        eddy__mutex_unlock(&dp->dp_mu);
        for (dp_peer_t *p = peers; p != NULL; p = p->p_next) {
            if (p->p_retry_ns > now && timeout < 0) {
                timeout = (int)((p->p_retry_ns - now) / 1000000u) + 1;
            }
        }
        if (dp->dp_again) {
            timeout = 0;
            dp->dp_again = false;
        }
        int rc = poll(dp->dp_pfds, n, timeout);
        if (rc < 0 && errno != EINTR) {
            /* Cannot happen with valid descriptors; do not spin. */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        if (dp->dp_pfds[0].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(dp->dp_efd, &v, sizeof(v));
            EDDY_UNUSED(r);
        }
        /* Before looking at any queue: a kick from now on writes again. */
        atomic_store(&dp->dp_kicked, false);
        purge(dp);
        if (dp->dp_pfds[1].revents & POLLIN) {
            accept_all(dp);
        }
        for (nfds_t i = 2; i < n; i++) {
            dp_conn_t *c = dp->dp_pconns[i];
            short re = dp->dp_pfds[i].revents;
            if (re == 0 || c->c_state == C_DEAD) {
                continue;
            }
            if (c->c_state == C_CONNECTING) {
                finish_connect(dp, c);
                continue;
            }
            if (re & POLLOUT) {
                c->c_wblocked = false;
            }
            if (c->c_state == C_CLOSING && (re & (POLLHUP | POLLERR))) {
                conn_close(dp, c);
            } else if (re & (POLLIN | POLLHUP | POLLERR)) {
                read_conn(dp, c);
            }
        }
        for (dp_conn_t *c = dp->dp_conns; c != NULL; c = c->c_next) {
            if (c->c_parked && c->c_state != C_DEAD) {
                c->c_parked = false;
                if (process(dp, c) == 0 && !c->c_parked) {
                    read_conn(dp, c);
                }
            }
        }
        now = eddy__now_ns();
        dial_wanted(dp, now);
        for (dp_conn_t *c = dp->dp_conns; c != NULL; c = c->c_next) {
            write_conn(dp, c);
        }
        check_timeouts(dp);
        sweep(dp);
    }
    return NULL;
}

/* ---- public API ---- */

void eddy__dp_options_init(eddy__dp_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->do_bind = "127.0.0.1";
    o->do_segment_size = 32 * 1024;
    o->do_exclusive = 32;
    o->do_floating = 8;
}

static int listen_on(eddy__dp_t *dp, const eddy__dp_options_t *o,
                     eddy_error_t *err)
{
    struct addrinfo hints, *ai = NULL;
    char port[16];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    eddy__fmt(port, sizeof(port), "%d", o->do_port);
    int gai = getaddrinfo(o->do_bind, port, &hints, &ai);
    if (gai != 0) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "data plane: cannot resolve bind address "
                              "'%s': %s",
                              o->do_bind, gai_strerror(gai));
    }
    int fd =
        socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        listen(fd, 128) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(ai);
        eddy_error_set(err, EDDY_ERR_IO,
                       "data plane: cannot listen on %s:%d: %s", o->do_bind,
                       o->do_port, strerror(e));
        if (err != NULL) {
            err->sys_errno = e;
        }
        return EDDY_ERR_IO;
    }
    freeaddrinfo(ai);
    dp->dp_lfd = fd;
    char bound[128];
    sock_name(fd, bound, sizeof(bound));
    const char *colon = strrchr(bound, ':');
    const char *host = o->do_advertise_host;
    if (host == NULL || host[0] == '\0') {
        host = o->do_bind;
        if (strcmp(host, "0.0.0.0") == 0) {
            host = "127.0.0.1";
        } else if (strcmp(host, "::") == 0) {
            host = "::1";
        }
    }
    const char *fmt = strchr(host, ':') != NULL ? "[%s]%s" : "%s%s";
    if ((size_t)snprintf(dp->dp_addr, sizeof(dp->dp_addr), fmt, host,
                         colon != NULL ? colon : ":0") >= sizeof(dp->dp_addr)) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "data plane: advertised host too long");
    }
    return 0;
}

eddy__dp_t *eddy__dp_new(const eddy__dp_options_t *o, eddy_error_t *err)
{
    eddy__dp_options_t def;
    if (o == NULL) {
        eddy__dp_options_init(&def);
        o = &def;
    }
    if (o->do_segment_size == 0 || o->do_segment_size > ((size_t)1 << 30) ||
        o->do_exclusive < 1 || o->do_floating < 0 || o->do_port < 0 ||
        o->do_port > 65535 ||
        (o->do_self_id != NULL &&
         (o->do_self_id[0] == '\0' ||
          strlen(o->do_self_id) > EDDY__DP_NAME_MAX))) {
        eddy_error_set(err, EDDY_ERR_INVALID,
                       "data plane: invalid options (segment size %zu, "
                       "exclusive %d, floating %d, port %d)",
                       o->do_segment_size, o->do_exclusive, o->do_floating,
                       o->do_port);
        return NULL;
    }
    eddy__dp_t *dp = eddy__calloc(1, sizeof(*dp));
    dp->dp_lfd = dp->dp_efd = -1;
    dp->dp_seg = o->do_segment_size;
    dp->dp_exclusive = o->do_exclusive;
    dp->dp_floating = o->do_floating;
    dp->dp_on_lost = o->do_on_peer_lost;
    dp->dp_arg = o->do_arg;
    pthread_mutex_init(&dp->dp_mu, NULL);
    pthread_mutex_init(&dp->dp_rmu, NULL);
    pthread_mutex_init(&dp->dp_cmu, NULL);
    pthread_cond_init(&dp->dp_purge_cv, NULL);
    ht_init(&dp->dp_outs);
    ht_init(&dp->dp_ins);
    ht_init(&dp->dp_orphans);
    atomic_init(&dp->dp_stop, false);
    atomic_init(&dp->dp_kicked, false);
    atomic_init(&dp->dp_nconn, 0);
    atomic_init(&dp->dp_bytes_out, 0);
    atomic_init(&dp->dp_bytes_in, 0);
    atomic_init(&dp->dp_bufs_out, 0);
    atomic_init(&dp->dp_bufs_in, 0);
    atomic_init(&dp->dp_dropped, 0);
    dp->dp_float_free = o->do_floating;
    dp->dp_pool = eddy__pool_new(o->do_segment_size, (size_t)o->do_floating);
    if (listen_on(dp, o, err) != 0) {
        goto fail;
    }
    eddy__fmt(dp->dp_self_id, sizeof(dp->dp_self_id), "%s",
              o->do_self_id != NULL ? o->do_self_id : dp->dp_addr);
    dp->dp_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (dp->dp_efd < 0) {
        eddy_error_set(err, EDDY_ERR_IO, "data plane: eventfd: %s",
                       strerror(errno));
        goto fail;
    }
    if (pthread_create(&dp->dp_thread, NULL, io_main, dp) != 0) {
        eddy_error_set(err, EDDY_ERR_IO,
                       "data plane: cannot start the I/O thread");
        goto fail;
    }
    dp->dp_thread_started = true;
    return dp;
fail:
    eddy__dp_destroy(dp);
    return NULL;
}

const char *eddy__dp_address(const eddy__dp_t *dp)
{
    return dp->dp_addr;
}

void eddy__dp_destroy(eddy__dp_t *dp)
{
    if (dp == NULL) {
        return;
    }
    if (dp->dp_thread_started) {
        atomic_store(&dp->dp_stop, true);
        uint64_t one = 1;
        ssize_t r = write(dp->dp_efd, &one, sizeof(one));
        EDDY_UNUSED(r);
        pthread_join(dp->dp_thread, NULL);
    }
    for (dp_conn_t *c = dp->dp_conns; c != NULL; c = c->c_next) {
        conn_close(dp, c);
    }
    sweep(dp);
    eddy__buffer_t *chain = NULL;
    while (dp->dp_out_all != NULL) {
        eddy__dp_out_t *o = dp->dp_out_all;
        dp->dp_out_all = o->o_next;
        drop_queue_locked(o, &chain);
        pthread_cond_destroy(&o->o_cv);
        eddy__free(o);
    }
    release_chain(chain);
    /* Inputs still registered: their gates must already be gone (see the
     * header), so only our records are freed. */
    for (size_t i = 0; i < dp->dp_ins.ht_nb; i++) {
        hnode_t *n = dp->dp_ins.ht_b[i];
        while (n != NULL) {
            hnode_t *next = n->h_next;
            eddy__free(n);
            n = next;
        }
    }
    while (dp->dp_peers != NULL) {
        dp_peer_t *p = dp->dp_peers;
        dp->dp_peers = p->p_next;
        eddy__free(p);
    }
    for (size_t i = 0; i < dp->dp_orphans.ht_nb; i++) {
        hnode_t *n = dp->dp_orphans.ht_b[i];
        while (n != NULL) {
            hnode_t *next = n->h_next;
            eddy__free(n);
            n = next;
        }
    }
    ht_close(&dp->dp_outs);
    ht_close(&dp->dp_ins);
    ht_close(&dp->dp_orphans);
    eddy__pool_destroy(dp->dp_pool);
    if (dp->dp_lfd >= 0) {
        close(dp->dp_lfd);
    }
    if (dp->dp_efd >= 0) {
        close(dp->dp_efd);
    }
    eddy__free(dp->dp_pfds);
    eddy__free(dp->dp_pconns);
    pthread_cond_destroy(&dp->dp_purge_cv);
    pthread_mutex_destroy(&dp->dp_cmu);
    pthread_mutex_destroy(&dp->dp_rmu);
    pthread_mutex_destroy(&dp->dp_mu);
    eddy__free(dp);
}

static int check_peer_addr(const char *addr, eddy_error_t *err)
{
    char host[EDDY__DP_NAME_MAX + 1], port[16];
    if (split_addr(addr, host, sizeof(host), port, sizeof(port)) != 0) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "data plane: bad TaskManager address '%s' "
                              "(want host:port)",
                              addr != NULL ? addr : "(null)");
    }
    return 0;
}

int eddy__dp_add_input(eddy__dp_t *dp, eddy__dp_chan_id_t id,
                       const char *peer_addr, eddy__inchan_t *ic,
                       eddy_error_t *err)
{
    char cs[64];
    if (dp == NULL || ic == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "data plane: add_input needs a channel");
    }
    int rc = check_peer_addr(peer_addr, err);
    if (rc != 0) {
        return rc;
    }
    eddy__mutex_lock(&dp->dp_mu);
    dp_peer_t *p = peer_get(dp, peer_addr, false);
    eddy__mutex_unlock(&dp->dp_mu);

    dp_in_t *in = eddy__calloc(1, sizeof(*in));
    in->in_node.h_id = id;
    in->in_dp = dp;
    in->in_peer = p;
    in->in_ic = ic;
    eddy__mutex_lock(&dp->dp_rmu);
    if (ht_find(&dp->dp_ins, id) != NULL) {
        eddy__mutex_unlock(&dp->dp_rmu);
        eddy__free(in);
        return eddy_error_set(err, EDDY_ERR_STATE,
                              "data plane: channel %s already has an input",
                              chan_str(cs, sizeof(cs), id));
    }
    ht_insert(&dp->dp_ins, &in->in_node);
    eddy__pool_add_capacity(dp->dp_pool, (size_t)dp->dp_exclusive + 1);
    eddy__gate_set_capacity(ic->ic_gate, ic->ic_index,
                            dp->dp_exclusive + dp->dp_floating);
    eddy__gate_set_pop_hook(ic->ic_gate, ic->ic_index, on_pop, in);
    eddy__mutex_lock(&dp->dp_cmu);
    in->in_unused = dp->dp_exclusive;
    grant_locked(in, dp->dp_exclusive);
    eddy__mutex_unlock(&dp->dp_cmu);
    eddy__mutex_unlock(&dp->dp_rmu);

    eddy__mutex_lock(&dp->dp_mu);
    p->p_want = true;
    eddy__mutex_unlock(&dp->dp_mu);
    kick(dp);
    return 0;
}

eddy__dp_out_t *eddy__dp_add_output(eddy__dp_t *dp, eddy__dp_chan_id_t id,
                                    const char *peer_addr, atomic_int *cancel,
                                    eddy_error_t *err)
{
    char cs[64];
    if (dp == NULL) {
        eddy_error_set(err, EDDY_ERR_INVALID, "data plane: NULL");
        return NULL;
    }
    if (check_peer_addr(peer_addr, err) != 0) {
        return NULL;
    }
    eddy__mutex_lock(&dp->dp_mu);
    if (ht_find(&dp->dp_outs, id) != NULL) {
        eddy__mutex_unlock(&dp->dp_mu);
        eddy_error_set(err, EDDY_ERR_STATE,
                       "data plane: channel %s already has an output",
                       chan_str(cs, sizeof(cs), id));
        return NULL;
    }
    dp_peer_t *p = peer_get(dp, peer_addr, false);
    eddy__dp_out_t *o = eddy__calloc(1, sizeof(*o));
    o->o_node.h_id = id;
    o->o_dp = dp;
    o->o_peer = p;
    o->o_epoch = p->p_epoch;
    o->o_cancel = cancel;
    pthread_cond_init(&o->o_cv, NULL);
    atomic_init(&o->o_wait_ns, 0);
    ht_insert(&dp->dp_outs, &o->o_node);
    dp_orphan_t * or = (dp_orphan_t *)ht_find(&dp->dp_orphans, id);
    if (or != NULL) {
        if (or->or_peer == p) {
            o->o_credit = or->or_credit;
        }
        ht_remove(&dp->dp_orphans, & or->or_node);
        eddy__free(or);
    }
    o->o_next = dp->dp_out_all;
    if (dp->dp_out_all != NULL) {
        dp->dp_out_all->o_prev = o;
    }
    dp->dp_out_all = o;
    p->p_want = true;
    eddy__mutex_unlock(&dp->dp_mu);
    kick(dp);
    return o;
}

static bool out_cancelled(const eddy__dp_out_t *o)
{
    return o->o_cancel != NULL &&
           atomic_load_explicit(o->o_cancel, memory_order_relaxed) != 0;
}

int eddy__dp_push(void *target, eddy__buffer_t *buf)
{
    eddy__dp_out_t *o = target;
    eddy__dp_t *dp = o->o_dp;
    if (buf->buf_len > dp->dp_seg) {
        eddy__buffer_release(buf);
        return EDDY_ERR_INVALID;
    }
    int rc;
    uint64_t t0 = 0;
    bool wake = false;
    eddy__mutex_lock(&dp->dp_mu);
    for (;;) {
        rc = out_check_locked(o);
        /* Room while fewer than do_exclusive queued buffers lack a credit:
         * the producer runs ahead by that much, which hides a credit round
         * trip and shows the receiver a real backlog. */
        if (rc != 0 || o->o_qlen - o->o_credit < dp->dp_exclusive) {
            break;
        }
        if (out_cancelled(o)) {
            rc = EDDY_ERR_CANCELED;
            break;
        }
        if (t0 == 0) {
            t0 = eddy__now_ns();
            o->o_wait_since = t0;
        }
        o->o_waiting++;
        pthread_cond_wait(&o->o_cv, &dp->dp_mu);
        o->o_waiting--;
    }
    if (t0 != 0) {
        atomic_fetch_add_explicit(&o->o_wait_ns, eddy__now_ns() - t0,
                                  memory_order_relaxed);
        o->o_wait_since = 0;
    }
    if (rc == 0) {
        buf->buf_next = NULL;
        if (o->o_qtail != NULL) {
            o->o_qtail->buf_next = buf;
        } else {
            o->o_qhead = buf;
        }
        o->o_qtail = buf;
        o->o_qlen++;
        if (o->o_qlen > o->o_credit) {
            /* Tell the receiver about the backlog: it may lend floating
             * credits. One announcement covers every push until the I/O
             * thread writes it (it reports the queue length then). */
            o->o_announce = true;
        }
        /* An output already on the active list is already owed a look
         * by the I/O thread: no wake-up needed. */
        wake = !o->o_active;
        if (o->o_credit > 0 || o->o_announce) {
            activate_locked(o);
        } else {
            wake = false;
        }
    }
    eddy__mutex_unlock(&dp->dp_mu);
    if (rc != 0) {
        eddy__buffer_release(buf);
    } else if (wake) {
        kick(dp);
    }
    return rc;
}

uint64_t eddy__dp_out_wait_ns(const eddy__dp_out_t *o)
{
    /* Under the lock so that a wait in progress is counted exactly once:
     * the figure grows while a pusher is blocked, and never goes back. */
    eddy__dp_t *dp = o->o_dp;
    eddy__mutex_lock(&dp->dp_mu);
    uint64_t ns = atomic_load_explicit(&o->o_wait_ns, memory_order_relaxed);
    if (o->o_wait_since != 0) {
        ns += eddy__now_ns() - o->o_wait_since;
    }
    eddy__mutex_unlock(&dp->dp_mu);
    return ns;
}

int eddy__dp_out_status(eddy__dp_out_t *o, eddy_error_t *err)
{
    eddy__dp_t *dp = o->o_dp;
    char cs[64];
    eddy__mutex_lock(&dp->dp_mu);
    int rc = out_check_locked(o);
    if (rc == EDDY_ERR_IO) {
        eddy_error_set(err, rc, "%s", o->o_peer->p_reason);
    } else if (rc != 0) {
        eddy_error_set(err, rc, "data plane: channel %s was released",
                       chan_str(cs, sizeof(cs), o->o_node.h_id));
    } else {
        eddy_error_clear(err);
    }
    eddy__mutex_unlock(&dp->dp_mu);
    return rc;
}

void eddy__dp_remove_output(eddy__dp_t *dp, eddy__dp_out_t *o)
{
    if (o == NULL) {
        return;
    }
    eddy__buffer_t *chain = NULL;
    eddy__mutex_lock(&dp->dp_mu);
    if (!o->o_released) {
        release_out_locked(dp, o, &chain);
    }
    eddy__mutex_unlock(&dp->dp_mu);
    release_chain(chain);
    purge_wait(dp);
    eddy__mutex_lock(&dp->dp_mu);
    if (o->o_prev != NULL) {
        o->o_prev->o_next = o->o_next;
    } else {
        dp->dp_out_all = o->o_next;
    }
    if (o->o_next != NULL) {
        o->o_next->o_prev = o->o_prev;
    }
    eddy__mutex_unlock(&dp->dp_mu);
    pthread_cond_destroy(&o->o_cv);
    eddy__free(o);
}

void eddy__dp_release_job(eddy__dp_t *dp, uint64_t job_tag)
{
    eddy__buffer_t *chain = NULL;
    eddy__mutex_lock(&dp->dp_mu);
    for (eddy__dp_out_t *o = dp->dp_out_all; o != NULL; o = o->o_next) {
        if (o->o_node.h_id.ci_job == job_tag && !o->o_released) {
            release_out_locked(dp, o, &chain);
        }
    }
    orphans_drop_locked(dp, NULL, job_tag);
    if (!recently_released(dp, job_tag)) {
        dp->dp_released[dp->dp_nreleased++ % RELEASED_RING] = job_tag;
    }
    eddy__mutex_unlock(&dp->dp_mu);
    release_chain(chain);
    purge_wait(dp);

    dp_in_t *gone = NULL;
    size_t ngone = 0;
    bool wake = false;
    eddy__mutex_lock(&dp->dp_rmu);
    for (size_t i = 0; i < dp->dp_ins.ht_nb; i++) {
        hnode_t *n = dp->dp_ins.ht_b[i];
        while (n != NULL) {
            hnode_t *next = n->h_next;
            dp_in_t *in = (dp_in_t *)n;
            if (n->h_id.ci_job == job_tag) {
                ht_remove(&dp->dp_ins, n);
                /* Once this returns no pop runs on_pop(in) any more. */
                eddy__gate_set_pop_hook(in->in_ic->ic_gate, in->in_ic->ic_index,
                                        NULL, NULL);
                in->in_gnext = gone;
                gone = in;
                ngone++;
            }
            n = next;
        }
    }
    if (gone != NULL) {
        eddy__mutex_lock(&dp->dp_cmu);
        for (dp_in_t *in = gone; in != NULL; in = in->in_gnext) {
            credq_remove_locked(in);
            starving_remove_locked(dp, in);
            dp->dp_float_free += in->in_floating;
            in->in_floating = 0;
        }
        wake = serve_starving_locked(dp);
        eddy__mutex_unlock(&dp->dp_cmu);
    }
    eddy__mutex_unlock(&dp->dp_rmu);
    if (ngone > 0) {
        /* Buffers still queued in the released gates come back to the pool
         * when those gates are destroyed; the pool frees them then. */
        eddy__pool_remove_capacity(dp->dp_pool,
                                   ngone * ((size_t)dp->dp_exclusive + 1));
    }
    while (gone != NULL) {
        dp_in_t *next = gone->in_gnext;
        eddy__free(gone);
        gone = next;
    }
    if (wake) {
        kick(dp);
    }
}

void eddy__dp_wake(eddy__dp_t *dp)
{
    eddy__mutex_lock(&dp->dp_mu);
    for (eddy__dp_out_t *o = dp->dp_out_all; o != NULL; o = o->o_next) {
        pthread_cond_broadcast(&o->o_cv);
    }
    eddy__mutex_unlock(&dp->dp_mu);
}

void eddy__dp_stats(eddy__dp_t *dp, eddy__dp_stats_t *out)
{
    out->ds_connections = atomic_load(&dp->dp_nconn);
    out->ds_bytes_out = atomic_load(&dp->dp_bytes_out);
    out->ds_bytes_in = atomic_load(&dp->dp_bytes_in);
    out->ds_buffers_out = atomic_load(&dp->dp_bufs_out);
    out->ds_buffers_in = atomic_load(&dp->dp_bufs_in);
}

void eddy__dp_credit_stats(eddy__dp_t *dp, eddy__dp_credit_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    eddy__mutex_lock(&dp->dp_pool->pl_mu);
    out->cs_pool_allocated = dp->dp_pool->pl_allocated;
    out->cs_pool_max = dp->dp_pool->pl_max;
    eddy__mutex_unlock(&dp->dp_pool->pl_mu);
    eddy__mutex_lock(&dp->dp_rmu);
    out->cs_inputs = (int)dp->dp_ins.ht_count;
    eddy__mutex_unlock(&dp->dp_rmu);
    eddy__mutex_lock(&dp->dp_cmu);
    out->cs_floating_free = dp->dp_float_free;
    eddy__mutex_unlock(&dp->dp_cmu);
    out->cs_floating_total = dp->dp_floating;
    eddy__mutex_lock(&dp->dp_mu);
    out->cs_outputs = (int)dp->dp_outs.ht_count;
    eddy__mutex_unlock(&dp->dp_mu);
    out->cs_dropped = atomic_load(&dp->dp_dropped);
}
