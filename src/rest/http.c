/*
 * eddy — the REST API's HTTP layer on libmicrohttpd (see http.h).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. One http_conn_t lives for each request, from the URI callback
 * (which sees the URI exactly as received, before libmicrohttpd unescapes
 * it) to the completion callback (which also runs for requests aborted
 * half-way, so it is where files and buffers are always released). The
 * access callback is called once with the headers (route, limits and
 * multipart set-up; an early error response is queued here, which makes
 * libmicrohttpd skip the body and close), once per piece of the body, and
 * once at the end (the handler runs there).
 *
 * libmicrohttpd cannot queue a response while it is delivering body data,
 * so an error found inside the body (too big, malformed multipart) drops
 * everything stored so far, discards the rest up to DRAIN_MAX so that the
 * client still reads a proper error, and closes the connection past that.
 *
 * The multipart parser is a small streaming state machine over a fixed
 * 64 KiB window (hc_mp_buf): the stream is prefixed with a virtual CRLF so
 * that every boundary, the first included, is the delimiter
 * "\r\n--<boundary>"; body bytes are handed on as soon as they cannot be
 * the start of a delimiter. Memory per request is therefore bounded by
 * the window, the plain fields (64 KiB each, 32 parts) and ho_max_body.
 *
 * THREADS. See http.h. A request's http_conn_t is only touched by the
 * libmicrohttpd thread that owns its connection; the server's routes and
 * options are read-only while it runs.
 */
#include "rest/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bytes.h"

#define DEFAULT_MAX_BODY ((size_t)1 << 20)
#define DEFAULT_MAX_UPLOAD ((int64_t)512 << 20)
#define DEFAULT_THREADS 4
#define DEFAULT_TIMEOUT_S 30
#define DEFAULT_MAX_CONNECTIONS 256
/* Bytes discarded after an error inside the body before giving up on
 * answering and closing the connection instead. */
#define DRAIN_MAX ((int64_t)1 << 20)
/* libmicrohttpd's per-connection pool: request line, headers and the read
 * buffer that body pieces arrive in. Headers above about half of it get a
 * 431 from libmicrohttpd itself. */
#define CONN_MEMORY_LIMIT ((size_t)64 << 10)
#define MP_BUF_SIZE ((size_t)64 << 10)
/* Header bytes of one multipart part, and blanks allowed after a
 * boundary (RFC 2046 transport padding). */
#define MP_HEADER_MAX 8192
#define MP_PAD_MAX 64
/* RFC 2046: a boundary has 1 to 70 characters. */
#define MP_BOUNDARY_MAX 70
#define MAX_QUERY 32
/* Raw paths are cut to this many bytes in error messages. */
#define MSG_PATH_MAX 160

typedef struct route {
    char rt_method[16];
    int rt_nseg;
    char *rt_seg[EDDY__HTTP_MAX_SEGMENTS]; /* NULL for a {param} segment */
    eddy__http_handler_t rt_fn;
    void *rt_arg;
} route_t;

struct eddy__http_server {
    eddy__http_options_t sv_opt; /* strings point at the copies below */
    char *sv_bind;
    char *sv_upload_dir;
    route_t *sv_routes;
    size_t sv_nroutes;
    size_t sv_cap;
    struct MHD_Daemon *sv_mhd;
    int sv_port;
};

typedef enum mp_state {
    MP_PREAMBLE,
    MP_AFTER_DELIM,
    MP_HEADERS,
    MP_BODY,
    MP_EPILOGUE,
} mp_state_t;

typedef struct http_conn {
    eddy__http_server_t *hc_srv;
    eddy__arena_t hc_arena; /* URI, decoded strings, part names */
    char *hc_uri;           /* as received: path and query */
    char *hc_path;          /* the path part, as received */
    char hc_method[16];
    bool hc_started;
    bool hc_head;
    const route_t *hc_route;
    const char *hc_params[EDDY__HTTP_MAX_PARAMS];
    int hc_nparams;
    const char *hc_qkey[MAX_QUERY];
    const char *hc_qval[MAX_QUERY];
    int hc_nquery;

    /* The error to answer with, once set (0: none). */
    int hc_status;
    char hc_msg[384];
    char hc_allow[96];
    int64_t hc_discarded;

    /* Body accounting. */
    bool hc_multipart;
    int64_t hc_limit;
    int64_t hc_received;
    unsigned char *hc_body; /* non-multipart body, NUL-terminated */
    size_t hc_body_len;
    size_t hc_body_cap;

    /* Multipart parsing. */
    mp_state_t hc_mp_state;
    char hc_delim[4 + MP_BOUNDARY_MAX + 1]; /* "\r\n--" boundary */
    size_t hc_dlen;
    unsigned char *hc_mp_buf;
    size_t hc_mp_len;
    size_t hc_hdr_bytes;
    int hc_pad;
    char *hc_pname; /* of the part whose headers are being read */
    char *hc_pfilename;
    eddy__http_part_t hc_parts[EDDY__HTTP_MAX_PARTS];
    int hc_nparts;
    eddy__http_part_t *hc_cur;            /* part whose body is being read */
    int hc_fd;                            /* its file, or -1 */
    eddy__bytes_t hc_val;                 /* its value, if a plain field */
    char *hc_files[EDDY__HTTP_MAX_PARTS]; /* stored files still ours */
    int hc_nfiles;
} http_conn_t;

/* ---- small helpers ---- */

static void *arena_alloc(http_conn_t *hc, size_t n)
{
    void *p = eddy__arena_alloc(&hc->hc_arena, n);
    if (p == NULL) {
        /* Control plane: out of memory aborts, as eddy__malloc does. */
        fprintf(stderr, "eddy: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

static char *arena_strndup(http_conn_t *hc, const char *s, size_t n)
{
    char *d = arena_alloc(hc, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Percent-decodes s[0..n) into a fresh arena string; `plus` turns '+'
 * into ' ' (query strings). Returns NULL for a bad escape or a decoded
 * NUL; *len gets the decoded length. */
static char *pct_decode(http_conn_t *hc, const char *s, size_t n, bool plus,
                        size_t *len)
{
    char *d = arena_alloc(hc, n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                return NULL;
            }
            c = hi * 16 + lo;
            i += 2;
        } else if (plus && c == '+') {
            c = ' ';
        }
        if (c == 0) {
            return NULL;
        }
        d[k++] = (char)c;
    }
    d[k] = '\0';
    *len = k;
    return d;
}

/* Copies a raw path for a message, cut short so that one hostile URI
 * cannot crowd out the rest of the message. */
static const char *msg_path(const http_conn_t *hc, char *buf, size_t size)
{
    const char *p = hc->hc_path != NULL ? hc->hc_path : "?";
    size_t n = strlen(p);
    if (n > MSG_PATH_MAX) {
        return eddy__fmt(buf, size, "%.*s...", MSG_PATH_MAX, p);
    }
    return eddy__fmt(buf, size, "%s", p);
}

/* ---- responses ---- */

static void free_body(void *p)
{
    free(p);
}

/* A JSON string of `msg`, replacing bytes jansson refuses (not UTF-8). */
static json_t *json_message(const char *msg)
{
    json_t *s = json_string(msg);
    if (s != NULL) {
        return s;
    }
    size_t n = strlen(msg);
    char *copy = eddy__malloc(n + 1);
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)msg[i];
        copy[i] = c >= 0x80 ? '?' : (char)c;
    }
    s = json_string(copy);
    eddy__free(copy);
    return s;
}

static char *error_body(const char *msg, size_t *len)
{
    json_t *o = json_object();
    json_t *m = json_message(msg);
    if (o == NULL || m == NULL || json_object_set_new(o, "error", m) != 0) {
        json_decref(o);
        static const char fallback[] = "{\"error\":\"internal error\"}";
        *len = sizeof(fallback) - 1;
        return eddy__strdup(fallback);
    }
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (body == NULL) {
        fprintf(stderr, "eddy: out of memory encoding a JSON error\n");
        abort();
    }
    *len = strlen(body);
    return body;
}

static bool header_value_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; p != NULL && *p;
         p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
            return false;
        }
    }
    return true;
}

/*
 * Queues `body` (taken; freed with free()) as the response; `allow` adds
 * an Allow header (405). No "Connection: close" is needed after an early
 * error: libmicrohttpd closes by itself when it skips a body, and after an
 * error found inside the body the rest was drained.
 */
static enum MHD_Result send_response(struct MHD_Connection *conn, int status,
                                     char *body, size_t len, const char *ctype,
                                     const char *location, const char *allow)
{
    struct MHD_Response *r;
    if (body == NULL || len == 0) {
        free(body);
        r = MHD_create_response_from_buffer(0, (void *)"",
                                            MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer_with_free_callback(len, body,
                                                               free_body);
        if (r == NULL) {
            free(body);
        }
    }
    if (r == NULL) {
        return MHD_NO;
    }
    /* Handlers set Content-Type and Location: a CR or LF in them would
     * split the header (response splitting), so they are checked here
     * and not only by libmicrohttpd. */
    bool ok = header_value_ok(ctype) && header_value_ok(location);
    if (len > 0 && ctype != NULL) {
        ok = ok && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                           ctype) == MHD_YES;
        if (strncmp(ctype, "application/json", 16) == 0) {
            ok = ok && MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                                               "no-store") == MHD_YES;
        }
    }
    /* The dashboard is served from the same origin: never let a browser
     * sniff a JSON or text body into something executable. */
    ok = ok && MHD_add_response_header(r, "X-Content-Type-Options",
                                       "nosniff") == MHD_YES;
    if (location != NULL && location[0] != '\0') {
        ok = ok && MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION,
                                           location) == MHD_YES;
    }
    if (allow != NULL && allow[0] != '\0') {
        ok = ok && MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow) ==
                       MHD_YES;
    }
    if (!ok) {
        MHD_destroy_response(r);
        size_t elen;
        char *ebody = error_body("internal error: the handler set an invalid "
                                 "response header",
                                 &elen);
        return send_response(conn, 500, ebody, elen, "application/json", NULL,
                             NULL);
    }
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_error(http_conn_t *hc, struct MHD_Connection *conn)
{
    size_t len;
    char *body = error_body(hc->hc_msg, &len);
    return send_response(conn, hc->hc_status, body, len, "application/json",
                         NULL, hc->hc_allow);
}

/* ---- request state ---- */

static void close_file(http_conn_t *hc)
{
    if (hc->hc_fd >= 0) {
        close(hc->hc_fd);
        hc->hc_fd = -1;
    }
}

/* Unlinks every stored file that is still ours. A handler may have
 * renamed one away, which makes its unlink a harmless ENOENT. */
static void remove_files(http_conn_t *hc)
{
    close_file(hc);
    for (int i = 0; i < hc->hc_nfiles; i++) {
        if (hc->hc_files[i] != NULL) {
            unlink(hc->hc_files[i]);
            hc->hc_files[i] = NULL;
        }
    }
    hc->hc_nfiles = 0;
}

/* Frees what the body has stored so far (errors, completion). */
static void drop_stored(http_conn_t *hc)
{
    remove_files(hc);
    eddy__free(hc->hc_body);
    hc->hc_body = NULL;
    hc->hc_body_len = hc->hc_body_cap = 0;
    eddy__free(hc->hc_mp_buf);
    hc->hc_mp_buf = NULL;
    hc->hc_mp_len = 0;
    eddy__bytes_free(&hc->hc_val);
    hc->hc_nparts = 0;
    hc->hc_cur = NULL;
}

/* Records the error to answer with. The first error wins: later ones are
 * consequences. Returns -1 for the caller's convenience. */
static int fail(http_conn_t *hc, int status, const char *fmt, ...)
    EDDY_PRINTF_LIKE(3, 4);
static int fail(http_conn_t *hc, int status, const char *fmt, ...)
{
    if (hc->hc_status == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(hc->hc_msg, sizeof(hc->hc_msg), fmt, ap);
        va_end(ap);
        hc->hc_status = status;
    }
    drop_stored(hc);
    return -1;
}

static http_conn_t *conn_new(eddy__http_server_t *s, const char *uri)
{
    http_conn_t *hc = eddy__calloc(1, sizeof(*hc));
    hc->hc_srv = s;
    hc->hc_fd = -1;
    eddy__arena_init(&hc->hc_arena, 4096);
    hc->hc_uri = arena_strndup(hc, uri, strlen(uri));
    return hc;
}

static void conn_free(http_conn_t *hc)
{
    if (hc == NULL) {
        return;
    }
    drop_stored(hc);
    eddy__arena_close(&hc->hc_arena);
    eddy__free(hc);
}

/* ---- paths, routes, queries ---- */

/*
 * Splits and decodes the raw path. Returns 0, or -1 with the error set.
 * *too_many is set (and 0 returned) for more segments than any route can
 * have, which is a 404 rather than a 400.
 */
static int split_path(http_conn_t *hc, const char **seg, int *nseg,
                      bool *too_many)
{
    char pbuf[MSG_PATH_MAX + 8];
    const char *p = hc->hc_path;
    size_t n = strlen(p);
    *nseg = 0;
    *too_many = false;
    if (p[0] != '/') {
        return fail(hc, 400, "invalid path '%s': it must start with '/'",
                    msg_path(hc, pbuf, sizeof(pbuf)));
    }
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)p[k];
        if (c <= 0x20 || c == 0x7f) {
            return fail(hc, 400,
                        "invalid path '%s': blank or control character",
                        msg_path(hc, pbuf, sizeof(pbuf)));
        }
    }
    size_t i = 1;
    while (i < n) {
        const char *end = memchr(p + i, '/', n - i);
        size_t e = end != NULL ? (size_t)(end - p) : n;
        if (e == i) {
            return fail(hc, 400, "invalid path '%s': empty segment",
                        msg_path(hc, pbuf, sizeof(pbuf)));
        }
        size_t dlen;
        char *d = pct_decode(hc, p + i, e - i, false, &dlen);
        if (d == NULL) {
            return fail(hc, 400,
                        "invalid path '%s': bad percent-encoding or an "
                        "encoded NUL",
                        msg_path(hc, pbuf, sizeof(pbuf)));
        }
        for (size_t k = 0; k < dlen; k++) {
            unsigned char c = (unsigned char)d[k];
            if (c < 0x20 || c == 0x7f || c == '/') {
                return fail(hc, 400,
                            "invalid path '%s': a segment holds '/' or a "
                            "control character",
                            msg_path(hc, pbuf, sizeof(pbuf)));
            }
        }
        if (strcmp(d, ".") == 0 || strstr(d, "..") != NULL) {
            return fail(hc, 400,
                        "invalid path '%s': '.' and '..' are not allowed",
                        msg_path(hc, pbuf, sizeof(pbuf)));
        }
        if (*nseg == EDDY__HTTP_MAX_SEGMENTS) {
            *too_many = true;
            return 0;
        }
        seg[(*nseg)++] = d;
        /* A trailing slash ends the path ("/jobs/" is "/jobs"). */
        i = e + 1;
    }
    return 0;
}

static int parse_query(http_conn_t *hc, const char *q)
{
    while (*q != '\0') {
        const char *amp = strchr(q, '&');
        size_t n = amp != NULL ? (size_t)(amp - q) : strlen(q);
        if (n > 0) {
            const char *eq = memchr(q, '=', n);
            size_t klen = eq != NULL ? (size_t)(eq - q) : n;
            size_t dk, dv;
            char *k = pct_decode(hc, q, klen, true, &dk);
            char *v = eq != NULL
                          ? pct_decode(hc, eq + 1, n - klen - 1, true, &dv)
                          : arena_strndup(hc, "", 0);
            if (k == NULL || v == NULL) {
                return fail(hc, 400,
                            "invalid query string: bad percent-encoding or "
                            "an encoded NUL");
            }
            if (hc->hc_nquery == MAX_QUERY) {
                return fail(hc, 400,
                            "invalid query string: more than %d parameters",
                            MAX_QUERY);
            }
            hc->hc_qkey[hc->hc_nquery] = k;
            hc->hc_qval[hc->hc_nquery] = v;
            hc->hc_nquery++;
        }
        if (amp == NULL) {
            break;
        }
        q = amp + 1;
    }
    return 0;
}

/* Does route `a` beat route `b` for the same path? The first position
 * where one is exact and the other a parameter decides. */
static bool more_specific(const route_t *a, const route_t *b)
{
    for (int i = 0; i < a->rt_nseg; i++) {
        bool ea = a->rt_seg[i] != NULL, eb = b->rt_seg[i] != NULL;
        if (ea != eb) {
            return ea;
        }
    }
    return false;
}

static void allow_add(char *allow, size_t size, const char *method)
{
    /* Look for the method as a whole list item. */
    size_t ml = strlen(method);
    for (const char *p = allow; *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        if (n == ml && memcmp(p, method, n) == 0) {
            return;
        }
        p += n;
        while (*p == ',' || *p == ' ') {
            p++;
        }
    }
    size_t len = strlen(allow);
    snprintf(allow + len, size - len, "%s%s", len > 0 ? ", " : "", method);
}

/* Finds the route; sets a 404/405 error if there is none. */
static int route_request(http_conn_t *hc)
{
    eddy__http_server_t *s = hc->hc_srv;
    char pbuf[MSG_PATH_MAX + 8];
    const char *seg[EDDY__HTTP_MAX_SEGMENTS];
    int nseg;
    bool too_many;
    if (split_path(hc, seg, &nseg, &too_many) != 0) {
        return -1;
    }
    const char *method = hc->hc_head ? "GET" : hc->hc_method;
    const route_t *best = NULL;
    bool path_found = false;
    char allow[sizeof(hc->hc_allow)] = "";
    for (size_t r = 0; r < s->sv_nroutes && !too_many; r++) {
        const route_t *rt = &s->sv_routes[r];
        if (rt->rt_nseg != nseg) {
            continue;
        }
        int i = 0;
        while (i < nseg &&
               (rt->rt_seg[i] == NULL || strcmp(rt->rt_seg[i], seg[i]) == 0)) {
            i++;
        }
        if (i < nseg) {
            continue;
        }
        path_found = true;
        allow_add(allow, sizeof(allow), rt->rt_method);
        if (strcmp(rt->rt_method, "GET") == 0) {
            allow_add(allow, sizeof(allow), "HEAD");
        }
        if (strcmp(rt->rt_method, method) == 0 &&
            (best == NULL || more_specific(rt, best))) {
            best = rt;
        }
    }
    if (best == NULL) {
        if (path_found) {
            eddy__fmt(hc->hc_allow, sizeof(hc->hc_allow), "%s", allow);
            return fail(hc, 405,
                        "method %s is not allowed for %s (allowed: %s)",
                        hc->hc_method, msg_path(hc, pbuf, sizeof(pbuf)), allow);
        }
        return fail(hc, 404, "no such endpoint: %s %s", hc->hc_method,
                    msg_path(hc, pbuf, sizeof(pbuf)));
    }
    hc->hc_route = best;
    for (int i = 0; i < nseg; i++) {
        if (best->rt_seg[i] == NULL) {
            hc->hc_params[hc->hc_nparams++] = seg[i];
        }
    }
    return 0;
}

/* ---- multipart ---- */

/* Case-insensitive prefix test. */
static bool has_prefix_ci(const char *s, size_t n, const char *prefix)
{
    size_t pl = strlen(prefix);
    return n >= pl && strncasecmp(s, prefix, pl) == 0;
}

/*
 * Reads one parameter of a header value ("; name=value" or
 * "; name=\"quoted\""), starting at *pp. Returns 1 with the name and the
 * (unquoted, unescaped, arena) value, 0 at the end, -1 if malformed.
 */
static int next_param(http_conn_t *hc, const char **pp, const char *end,
                      const char **name, size_t *nlen, char **value)
{
    const char *p = *pp;
    while (p < end && (*p == ' ' || *p == '\t' || *p == ';')) {
        p++;
    }
    if (p == end) {
        *pp = p;
        return 0;
    }
    const char *n0 = p;
    while (p < end && *p != '=' && *p != ';' && *p != ' ' && *p != '\t') {
        p++;
    }
    *name = n0;
    *nlen = (size_t)(p - n0);
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    if (p == end || *p != '=' || *nlen == 0) {
        return -1;
    }
    p++;
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    char *v = arena_alloc(hc, (size_t)(end - p) + 1);
    size_t k = 0;
    if (p < end && *p == '"') {
        p++;
        while (p < end && *p != '"') {
            if (*p == '\\' && p + 1 < end) {
                p++;
            }
            v[k++] = *p++;
        }
        if (p == end) {
            return -1; /* unterminated quoted string */
        }
        p++;
    } else {
        while (p < end && *p != ';' && *p != ' ' && *p != '\t') {
            v[k++] = *p++;
        }
    }
    v[k] = '\0';
    *value = v;
    *pp = p;
    return 1;
}

/* Reads the boundary out of a multipart Content-Type. */
static int multipart_begin(http_conn_t *hc, const char *ctype)
{
    const char *p = strchr(ctype, ';');
    const char *end = ctype + strlen(ctype);
    const char *boundary = NULL;
    while (p != NULL) {
        const char *name;
        size_t nlen;
        char *value;
        int rc = next_param(hc, &p, end, &name, &nlen, &value);
        if (rc < 0) {
            return fail(hc, 400,
                        "malformed multipart body: bad Content-Type "
                        "parameters");
        }
        if (rc == 0) {
            break;
        }
        if (nlen == 8 && strncasecmp(name, "boundary", 8) == 0) {
            boundary = value;
        }
    }
    if (boundary == NULL || boundary[0] == '\0') {
        return fail(hc, 400,
                    "malformed multipart body: no boundary in the "
                    "Content-Type");
    }
    size_t bl = strlen(boundary);
    if (bl > MP_BOUNDARY_MAX) {
        return fail(hc, 400,
                    "malformed multipart body: the boundary is longer than "
                    "%d characters",
                    MP_BOUNDARY_MAX);
    }
    for (size_t i = 0; i < bl; i++) {
        unsigned char c = (unsigned char)boundary[i];
        if (c < 0x20 || c >= 0x7f) {
            return fail(hc, 400,
                        "malformed multipart body: bad character in the "
                        "boundary");
        }
    }
    hc->hc_multipart = true;
    hc->hc_dlen = (size_t)snprintf(hc->hc_delim, sizeof(hc->hc_delim),
                                   "\r\n--%s", boundary);
    hc->hc_mp_buf = eddy__malloc(MP_BUF_SIZE);
    /* The virtual CRLF before the first boundary (see the file header). */
    memcpy(hc->hc_mp_buf, "\r\n", 2);
    hc->hc_mp_len = 2;
    hc->hc_mp_state = MP_PREAMBLE;
    return 0;
}

static int part_header(http_conn_t *hc, const char *line, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return fail(hc, 400,
                        "malformed multipart body: control character in a "
                        "part header");
        }
    }
    const char *colon = memchr(line, ':', n);
    if (colon == NULL || colon == line) {
        return fail(hc, 400, "malformed multipart body: bad part header");
    }
    size_t nl = (size_t)(colon - line);
    if (!(nl == 19 && strncasecmp(line, "Content-Disposition", 19) == 0)) {
        return 0; /* Content-Type and others do not matter here */
    }
    const char *p = colon + 1, *end = line + n;
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    if (!has_prefix_ci(p, (size_t)(end - p), "form-data")) {
        return fail(hc, 400,
                    "malformed multipart body: a part is not form-data");
    }
    p += 9;
    hc->hc_pname = NULL;
    hc->hc_pfilename = NULL;
    for (;;) {
        const char *name;
        size_t pl;
        char *value;
        int rc = next_param(hc, &p, end, &name, &pl, &value);
        if (rc < 0) {
            return fail(hc, 400,
                        "malformed multipart body: bad Content-Disposition");
        }
        if (rc == 0) {
            break;
        }
        if (pl == 4 && strncasecmp(name, "name", 4) == 0) {
            hc->hc_pname = value;
        } else if (pl == 8 && strncasecmp(name, "filename", 8) == 0) {
            hc->hc_pfilename = value;
        }
    }
    return 0;
}

static int part_begin(http_conn_t *hc)
{
    eddy__http_server_t *s = hc->hc_srv;
    if (hc->hc_pname == NULL || hc->hc_pname[0] == '\0') {
        return fail(hc, 400,
                    "malformed multipart body: a part has no "
                    "Content-Disposition name");
    }
    if (hc->hc_nparts == EDDY__HTTP_MAX_PARTS) {
        return fail(hc, 400, "multipart body has more than %d parts",
                    EDDY__HTTP_MAX_PARTS);
    }
    eddy__http_part_t *pt = &hc->hc_parts[hc->hc_nparts++];
    memset(pt, 0, sizeof(*pt));
    pt->hp_name = hc->hc_pname;
    pt->hp_filename = hc->hc_pfilename;
    hc->hc_cur = pt;
    if (pt->hp_filename == NULL) {
        eddy__bytes_reset(&hc->hc_val);
        return 0;
    }
    if (s->sv_upload_dir == NULL) {
        return fail(hc, 500,
                    "file uploads are not accepted: the server has no "
                    "upload directory");
    }
    size_t tl = strlen(s->sv_upload_dir) + sizeof("/upload-XXXXXX");
    char *path = arena_alloc(hc, tl);
    snprintf(path, tl, "%s/upload-XXXXXX", s->sv_upload_dir);
    /* mkostemp creates with O_EXCL and mode 0600 under a name we chose;
     * the client's filename never touches the file system. */
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        return fail(hc, 500, "cannot store the upload in %s: %s",
                    s->sv_upload_dir, strerror(errno));
    }
    hc->hc_fd = fd;
    hc->hc_files[hc->hc_nfiles++] = path;
    pt->hp_file_path = path;
    return 0;
}

static int part_data(http_conn_t *hc, const unsigned char *p, size_t n)
{
    eddy__http_part_t *pt = hc->hc_cur;
    if (n == 0) {
        return 0;
    }
    if (pt->hp_filename == NULL) {
        if (hc->hc_val.b_len + n > EDDY__HTTP_MAX_FIELD) {
            return fail(hc, 413, "form field '%s' is larger than %zu KiB",
                        pt->hp_name, EDDY__HTTP_MAX_FIELD >> 10);
        }
        eddy__bytes_put(&hc->hc_val, p, n);
        return 0;
    }
    while (n > 0) {
        ssize_t w = write(hc->hc_fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail(hc, 500, "cannot store the upload in %s: %s",
                        hc->hc_srv->sv_upload_dir, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
        pt->hp_file_size += w;
    }
    return 0;
}

static int part_end(http_conn_t *hc)
{
    eddy__http_part_t *pt = hc->hc_cur;
    hc->hc_cur = NULL;
    if (pt->hp_filename != NULL) {
        int rc = close(hc->hc_fd);
        hc->hc_fd = -1;
        if (rc != 0 && errno != EINTR) {
            return fail(hc, 500, "cannot store the upload in %s: %s",
                        hc->hc_srv->sv_upload_dir, strerror(errno));
        }
        return 0;
    }
    char *v =
        arena_strndup(hc, (const char *)hc->hc_val.b_data, hc->hc_val.b_len);
    pt->hp_value = v;
    pt->hp_value_len = hc->hc_val.b_len;
    return 0;
}

/* Runs the state machine over the window; keeps what may be the start of
 * a delimiter (or an incomplete header line) for the next piece. */
static int mp_process(http_conn_t *hc)
{
    unsigned char *b = hc->hc_mp_buf;
    size_t len = hc->hc_mp_len, off = 0;
    const size_t dlen = hc->hc_dlen;
    bool more = true;
    while (more) {
        unsigned char *cur = b + off;
        size_t avail = len - off;
        switch (hc->hc_mp_state) {
        case MP_PREAMBLE:
        case MP_BODY: {
            unsigned char *d = memmem(cur, avail, hc->hc_delim, dlen);
            if (d != NULL) {
                size_t n = (size_t)(d - cur);
                if (hc->hc_mp_state == MP_BODY &&
                    (part_data(hc, cur, n) != 0 || part_end(hc) != 0)) {
                    return -1;
                }
                off += n + dlen;
                hc->hc_mp_state = MP_AFTER_DELIM;
                hc->hc_pad = 0;
                break;
            }
            size_t safe = avail >= dlen ? avail - (dlen - 1) : 0;
            if (hc->hc_mp_state == MP_BODY && part_data(hc, cur, safe) != 0) {
                return -1;
            }
            off += safe;
            more = false;
            break;
        }
        case MP_AFTER_DELIM:
            if (avail >= 1 && (cur[0] == ' ' || cur[0] == '\t')) {
                if (++hc->hc_pad > MP_PAD_MAX) {
                    return fail(hc, 400,
                                "malformed multipart body: bad boundary line");
                }
                off++;
            } else if (avail < 2) {
                more = false;
            } else if (cur[0] == '-' && cur[1] == '-') {
                hc->hc_mp_state = MP_EPILOGUE;
            } else if (cur[0] == '\r' && cur[1] == '\n') {
                off += 2;
                hc->hc_mp_state = MP_HEADERS;
                hc->hc_hdr_bytes = 0;
                hc->hc_pname = hc->hc_pfilename = NULL;
            } else {
                return fail(hc, 400,
                            "malformed multipart body: bad boundary line");
            }
            break;
        case MP_HEADERS: {
            unsigned char *e = memmem(cur, avail, "\r\n", 2);
            if (e == NULL) {
                if (hc->hc_hdr_bytes + avail > MP_HEADER_MAX) {
                    return fail(hc, 400,
                                "malformed multipart body: part headers "
                                "longer than %d bytes",
                                MP_HEADER_MAX);
                }
                more = false;
                break;
            }
            size_t n = (size_t)(e - cur);
            hc->hc_hdr_bytes += n + 2;
            if (hc->hc_hdr_bytes > MP_HEADER_MAX) {
                return fail(hc, 400,
                            "malformed multipart body: part headers longer "
                            "than %d bytes",
                            MP_HEADER_MAX);
            }
            off += n + 2;
            if (n == 0) {
                if (part_begin(hc) != 0) {
                    return -1;
                }
                hc->hc_mp_state = MP_BODY;
            } else if (part_header(hc, (const char *)cur, n) != 0) {
                return -1;
            }
            break;
        }
        case MP_EPILOGUE:
            off = len;
            more = false;
            break;
        }
    }
    memmove(b, b + off, len - off);
    hc->hc_mp_len = len - off;
    return 0;
}

static int mp_feed(http_conn_t *hc, const char *data, size_t n)
{
    while (n > 0) {
        /* mp_process always leaves less than MP_HEADER_MAX + 2 bytes, so
         * there is room for at least part of the next piece. */
        size_t k = EDDY_MIN(n, MP_BUF_SIZE - hc->hc_mp_len);
        memcpy(hc->hc_mp_buf + hc->hc_mp_len, data, k);
        hc->hc_mp_len += k;
        data += k;
        n -= k;
        if (mp_process(hc) != 0) {
            return -1;
        }
    }
    return 0;
}

static int mp_finish(http_conn_t *hc)
{
    if (hc->hc_mp_state != MP_EPILOGUE) {
        return fail(hc, 400,
                    "malformed multipart body: it ends before the closing "
                    "boundary");
    }
    eddy__free(hc->hc_mp_buf);
    hc->hc_mp_buf = NULL;
    return 0;
}

/* ---- the request flow ---- */

static int64_t content_length(struct MHD_Connection *conn)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (v == NULL) {
        return -1;
    }
    int64_t n = 0;
    for (const char *p = v; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return -1; /* libmicrohttpd rejects these itself */
        }
        if (n > (INT64_MAX - 9) / 10) {
            return INT64_MAX;
        }
        n = n * 10 + (*p - '0');
    }
    return n;
}

static void fmt_size(char *buf, size_t size, int64_t n)
{
    if (n >= ((int64_t)1 << 20) && n % ((int64_t)1 << 20) == 0) {
        eddy__fmt(buf, size, "%" PRId64 " MiB", n >> 20);
    } else if (n >= 1024 && n % 1024 == 0) {
        eddy__fmt(buf, size, "%" PRId64 " KiB", n >> 10);
    } else {
        eddy__fmt(buf, size, "%" PRId64 " bytes", n);
    }
}

static int fail_too_large(http_conn_t *hc)
{
    char lim[32];
    fmt_size(lim, sizeof(lim), hc->hc_limit);
    return fail(hc, 413, "%s is larger than the limit of %s",
                hc->hc_multipart ? "the upload" : "the request body", lim);
}

/* First call: the headers are in. */
static int request_begin(http_conn_t *hc, struct MHD_Connection *conn,
                         const char *method)
{
    eddy__http_server_t *s = hc->hc_srv;
    eddy__fmt(hc->hc_method, sizeof(hc->hc_method), "%s", method);
    hc->hc_head = strcmp(method, "HEAD") == 0;
    char *q = strchr(hc->hc_uri, '?');
    hc->hc_path = q != NULL
                      ? arena_strndup(hc, hc->hc_uri, (size_t)(q - hc->hc_uri))
                      : hc->hc_uri;
    if (route_request(hc) != 0) {
        return -1;
    }
    if (q != NULL && parse_query(hc, q + 1) != 0) {
        return -1;
    }
    const char *ctype = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ctype != NULL &&
        has_prefix_ci(ctype, strlen(ctype), "multipart/form-data")) {
        if (multipart_begin(hc, ctype) != 0) {
            return -1;
        }
        hc->hc_limit = s->sv_opt.ho_max_upload;
    } else {
        hc->hc_limit =
            (int64_t)EDDY_MIN(s->sv_opt.ho_max_body, (size_t)INT64_MAX);
    }
    int64_t cl = content_length(conn);
    if (cl > hc->hc_limit) {
        return fail_too_large(hc);
    }
    if (cl > 0 && !hc->hc_multipart) {
        /* Known size: one allocation, no regrowth. */
        hc->hc_body_cap = (size_t)cl + 1;
        hc->hc_body = eddy__malloc(hc->hc_body_cap);
    }
    return 0;
}

/* A piece of the body. Returns -1 to close the connection. */
static int request_data(http_conn_t *hc, const char *data, size_t n)
{
    if (hc->hc_status != 0) {
        hc->hc_discarded += (int64_t)n;
        return hc->hc_discarded > DRAIN_MAX ? -1 : 0;
    }
    hc->hc_received += (int64_t)n;
    if (hc->hc_received > hc->hc_limit) {
        fail_too_large(hc);
        hc->hc_discarded += (int64_t)n;
        return 0;
    }
    if (hc->hc_multipart) {
        mp_feed(hc, data, n);
        return 0;
    }
    size_t need = hc->hc_body_len + n + 1;
    if (need > hc->hc_body_cap) {
        size_t cap = hc->hc_body_cap > 0 ? hc->hc_body_cap : 4096;
        while (cap < need) {
            cap *= 2;
        }
        hc->hc_body = eddy__realloc(hc->hc_body, cap);
        hc->hc_body_cap = cap;
    }
    memcpy(hc->hc_body + hc->hc_body_len, data, n);
    hc->hc_body_len += n;
    return 0;
}

static void resp_set_body(eddy__http_resp_t *r, int status, char *body,
                          size_t len, const char *ctype)
{
    free(r->hs_body);
    r->hs_status = status;
    r->hs_body = body;
    r->hs_body_len = len;
    r->hs_content_type = ctype;
}

/* Last call: run the handler and answer. */
static enum MHD_Result request_end(http_conn_t *hc, struct MHD_Connection *conn)
{
    if (hc->hc_status == 0 && hc->hc_multipart) {
        mp_finish(hc);
    }
    if (hc->hc_status != 0) {
        return send_error(hc, conn);
    }
    eddy__http_req_t req;
    memset(&req, 0, sizeof(req));
    req.hr_method = hc->hc_head ? "GET" : hc->hc_method;
    req.hr_path = hc->hc_path;
    memcpy(req.hr_params, hc->hc_params, sizeof(hc->hc_params));
    req.hr_nparams = hc->hc_nparams;
    if (!hc->hc_multipart && hc->hc_body_len > 0) {
        hc->hc_body[hc->hc_body_len] = '\0';
        req.hr_body = hc->hc_body;
        req.hr_body_len = hc->hc_body_len;
    }
    if (hc->hc_multipart) {
        req.hr_parts = hc->hc_parts;
        req.hr_nparts = hc->hc_nparts;
    }
    req.hr_conn = hc;

    eddy__http_resp_t resp;
    memset(&resp, 0, sizeof(resp));
    resp.hs_status = 200;
    hc->hc_route->rt_fn(hc->hc_route->rt_arg, &req, &resp);
    remove_files(hc);

    int status = resp.hs_status;
    if (status < 200 || status > 599) {
        free(resp.hs_body);
        resp.hs_body = NULL;
        char msg[96];
        eddy__fmt(msg, sizeof(msg),
                  "internal error: the handler set HTTP status %d", status);
        status = 500;
        resp.hs_body = error_body(msg, &resp.hs_body_len);
        resp.hs_content_type = NULL;
    }
    if (status == 204 || status == 304) {
        /* These have no body by definition. */
        free(resp.hs_body);
        resp.hs_body = NULL;
        resp.hs_body_len = 0;
    } else if (resp.hs_body == NULL) {
        if (status >= 400) {
            const char *reason = MHD_get_reason_phrase_for((unsigned)status);
            resp.hs_body = error_body(reason[0] != '\0' ? reason : "error",
                                      &resp.hs_body_len);
        } else {
            resp.hs_body = eddy__strdup("{}");
            resp.hs_body_len = 2;
        }
        resp.hs_content_type = NULL;
    }
    return send_response(conn, status, resp.hs_body, resp.hs_body_len,
                         resp.hs_content_type != NULL ? resp.hs_content_type
                                                      : "application/json",
                         resp.hs_location[0] != '\0' ? resp.hs_location : NULL,
                         NULL);
}

/* ---- libmicrohttpd callbacks ---- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    EDDY_UNUSED(conn);
    return conn_new(cls, uri != NULL ? uri : "");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    EDDY_UNUSED(version);
    http_conn_t *hc = *con_cls;
    if (hc == NULL) {
        /* on_uri always runs first; this only guards against a future
         * libmicrohttpd that skips it. */
        hc = conn_new(cls, url);
        *con_cls = hc;
    }
    if (!hc->hc_started) {
        hc->hc_started = true;
        if (request_begin(hc, conn, method) != 0) {
            /* libmicrohttpd skips any body and closes after this. */
            return send_error(hc, conn);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return request_data(hc, upload_data, n) == 0 ? MHD_YES : MHD_NO;
    }
    return request_end(hc, conn);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    EDDY_UNUSED(cls);
    EDDY_UNUSED(conn);
    EDDY_UNUSED(toe);
    conn_free(*con_cls);
    *con_cls = NULL;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    /* libmicrohttpd's messages are about peers (bad requests, resets);
     * the server reports what matters to clients in responses instead. */
    EDDY_UNUSED(cls);
    EDDY_UNUSED(fmt);
    EDDY_UNUSED(ap);
}

/* ---- server lifecycle ---- */

void eddy__http_options_init(eddy__http_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->ho_bind = "127.0.0.1";
    o->ho_port = 0;
    o->ho_max_body = DEFAULT_MAX_BODY;
    o->ho_max_upload = DEFAULT_MAX_UPLOAD;
    o->ho_upload_dir = NULL;
    o->ho_threads = DEFAULT_THREADS;
    o->ho_timeout_s = DEFAULT_TIMEOUT_S;
    o->ho_max_connections = DEFAULT_MAX_CONNECTIONS;
}

eddy__http_server_t *eddy__http_new(const eddy__http_options_t *o,
                                    eddy_error_t *err)
{
    eddy__http_options_t def;
    if (o == NULL) {
        eddy__http_options_init(&def);
        o = &def;
    }
    if (o->ho_port < 0 || o->ho_port > 65535) {
        eddy_error_set(err, EDDY_ERR_INVALID,
                       "invalid REST port %d (expected 0..65535)", o->ho_port);
        return NULL;
    }
    if (o->ho_max_upload < 0 || o->ho_threads < 0 || o->ho_timeout_s < 0 ||
        o->ho_max_connections < 0) {
        eddy_error_set(err, EDDY_ERR_INVALID,
                       "invalid HTTP server options: negative limit");
        return NULL;
    }
    if (o->ho_upload_dir != NULL) {
        struct stat st;
        if (stat(o->ho_upload_dir, &st) != 0) {
            eddy_error_set(err, EDDY_ERR_INVALID, "upload directory %s: %s",
                           o->ho_upload_dir, strerror(errno));
            return NULL;
        }
        if (!S_ISDIR(st.st_mode) || access(o->ho_upload_dir, W_OK | X_OK)) {
            eddy_error_set(err, EDDY_ERR_INVALID,
                           "upload directory %s is not a writable directory",
                           o->ho_upload_dir);
            return NULL;
        }
    }
    eddy__http_server_t *s = eddy__calloc(1, sizeof(*s));
    s->sv_opt = *o;
    s->sv_bind = eddy__strdup(
        o->ho_bind != NULL && o->ho_bind[0] != '\0' ? o->ho_bind : "127.0.0.1");
    s->sv_opt.ho_bind = s->sv_bind;
    if (o->ho_upload_dir != NULL) {
        s->sv_upload_dir = eddy__strdup(o->ho_upload_dir);
    }
    s->sv_opt.ho_upload_dir = s->sv_upload_dir;
    if (s->sv_opt.ho_max_body == 0) {
        s->sv_opt.ho_max_body = DEFAULT_MAX_BODY;
    }
    if (s->sv_opt.ho_max_upload == 0) {
        s->sv_opt.ho_max_upload = DEFAULT_MAX_UPLOAD;
    }
    if (s->sv_opt.ho_threads == 0) {
        s->sv_opt.ho_threads = DEFAULT_THREADS;
    }
    if (s->sv_opt.ho_timeout_s == 0) {
        s->sv_opt.ho_timeout_s = DEFAULT_TIMEOUT_S;
    }
    if (s->sv_opt.ho_max_connections == 0) {
        s->sv_opt.ho_max_connections = DEFAULT_MAX_CONNECTIONS;
    }
    s->sv_port = o->ho_port;
    return s;
}

static void route_abort(const char *pattern, const char *why)
{
    fprintf(stderr, "eddy: bad HTTP route '%s': %s\n", pattern, why);
    abort();
}

void eddy__http_route(eddy__http_server_t *s, const char *method,
                      const char *pattern, eddy__http_handler_t fn, void *arg)
{
    if (s->sv_mhd != NULL) {
        route_abort(pattern, "routes must be added before start");
    }
    if (method == NULL || method[0] == '\0' ||
        strlen(method) >= sizeof(((route_t *)0)->rt_method) || fn == NULL) {
        route_abort(pattern, "bad method or no handler");
    }
    if (pattern == NULL || pattern[0] != '/') {
        route_abort(pattern != NULL ? pattern : "(null)",
                    "a pattern starts with '/'");
    }
    eddy__grow((void **)&s->sv_routes, &s->sv_cap, s->sv_nroutes + 1,
               sizeof(route_t));
    route_t *rt = &s->sv_routes[s->sv_nroutes];
    memset(rt, 0, sizeof(*rt));
    eddy__fmt(rt->rt_method, sizeof(rt->rt_method), "%s", method);
    rt->rt_fn = fn;
    rt->rt_arg = arg;
    int nparams = 0;
    const char *p = pattern + 1;
    while (*p != '\0') {
        const char *e = strchr(p, '/');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        if (n == 0) {
            route_abort(pattern, "empty segment");
        }
        if (rt->rt_nseg == EDDY__HTTP_MAX_SEGMENTS) {
            route_abort(pattern, "too many segments");
        }
        if (p[0] == '{') {
            if (n < 3 || p[n - 1] != '}') {
                route_abort(pattern, "a parameter is written {name}");
            }
            if (++nparams > EDDY__HTTP_MAX_PARAMS) {
                route_abort(pattern, "too many parameters");
            }
            rt->rt_seg[rt->rt_nseg++] = NULL;
        } else {
            char *seg = eddy__malloc(n + 1);
            memcpy(seg, p, n);
            seg[n] = '\0';
            rt->rt_seg[rt->rt_nseg++] = seg;
        }
        p += n;
        if (*p == '/') {
            p++;
        }
    }
    s->sv_nroutes++;
}

/* Creates, binds and listens; the error names the address. */
static int listen_socket(eddy__http_server_t *s, eddy_error_t *err)
{
    char port[16];
    eddy__fmt(port, sizeof(port), "%d", s->sv_opt.ho_port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(s->sv_bind, port, &hints, &res);
    if (rc != 0) {
        return eddy_error_set(err, EDDY_ERR_IO, "cannot listen on %s:%d: %s",
                              s->sv_bind, s->sv_opt.ho_port, gai_strerror(rc));
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC,
                    res->ai_protocol);
    int one = 1;
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 128) != 0 ||
        fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(res);
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot listen on %s:%d: %s",
                            s->sv_bind, s->sv_opt.ho_port, strerror(e));
        if (err != NULL) {
            err->sys_errno = e;
        }
        return rc;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        s->sv_port = ss.ss_family == AF_INET6
                         ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    return fd;
}

int eddy__http_start(eddy__http_server_t *s, eddy_error_t *err)
{
    if (s->sv_mhd != NULL) {
        return eddy_error_set(err, EDDY_ERR_STATE,
                              "the HTTP server is already running");
    }
    int fd = listen_socket(s, err);
    if (fd < 0) {
        return fd;
    }
    unsigned threads = (unsigned)s->sv_opt.ho_threads;
    unsigned conns = EDDY_MAX((unsigned)s->sv_opt.ho_max_connections, threads);
    /* A thread pool with internal polling: handlers run on the pool.
     * poll(), not epoll: with epoll, libmicrohttpd 0.9.75 does not notice
     * a client that hangs up in the middle of a body until the idle
     * timeout, which would keep its partial upload on disk that long. No
     * MHD_USE_ERROR_LOG, and a silent logger besides. */
    s->sv_mhd = MHD_start_daemon(
        MHD_USE_POLL_INTERNAL_THREAD, 0, NULL, NULL, on_request, s,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_URI_LOG_CALLBACK,
        on_uri, (void *)s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, (void *)s,
        MHD_OPTION_EXTERNAL_LOGGER, on_log, (void *)NULL,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
        conns, MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONN_MEMORY_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->sv_opt.ho_timeout_s,
        MHD_OPTION_END);
    if (s->sv_mhd == NULL) {
        /* Whether libmicrohttpd closed the socket on this path differs
         * between versions; closing it here could close someone else's
         * descriptor, so a failed start may leak it. */
        return eddy_error_set(err, EDDY_ERR_IO,
                              "cannot start the HTTP server on %s:%d",
                              s->sv_bind, s->sv_port);
    }
    return 0;
}

int eddy__http_port(const eddy__http_server_t *s)
{
    return s->sv_port;
}

void eddy__http_stop(eddy__http_server_t *s)
{
    if (s == NULL || s->sv_mhd == NULL) {
        return;
    }
    /* Joins the pool threads (so running handlers finish), closes every
     * connection (on_completed frees their requests) and the listening
     * socket. */
    MHD_stop_daemon(s->sv_mhd);
    s->sv_mhd = NULL;
}

void eddy__http_destroy(eddy__http_server_t *s)
{
    if (s == NULL) {
        return;
    }
    eddy__http_stop(s);
    for (size_t r = 0; r < s->sv_nroutes; r++) {
        for (int i = 0; i < s->sv_routes[r].rt_nseg; i++) {
            eddy__free(s->sv_routes[r].rt_seg[i]);
        }
    }
    eddy__free(s->sv_routes);
    eddy__free(s->sv_bind);
    eddy__free(s->sv_upload_dir);
    eddy__free(s);
}

/* ---- handler helpers ---- */

void eddy__http_json(eddy__http_resp_t *r, int status, json_t *body)
{
    if (body == NULL) {
        eddy__http_error(r, 500, "internal error: no JSON body");
        return;
    }
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (text == NULL) {
        eddy__http_error(r, 500, "internal error: cannot encode JSON");
        return;
    }
    resp_set_body(r, status, text, strlen(text), "application/json");
}

void eddy__http_error(eddy__http_resp_t *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t len;
    char *body = error_body(msg, &len);
    resp_set_body(r, status, body, len, "application/json");
}

void eddy__http_text(eddy__http_resp_t *r, int status, const char *ctype,
                     const char *text)
{
    size_t n = text != NULL ? strlen(text) : 0;
    char *body = eddy__malloc(n + 1);
    if (n > 0) {
        memcpy(body, text, n);
    }
    body[n] = '\0';
    resp_set_body(r, status, body, n,
                  ctype != NULL ? ctype : "text/plain; charset=utf-8");
}

const char *eddy__http_query(const eddy__http_req_t *req, const char *name)
{
    const http_conn_t *hc = req->hr_conn;
    if (hc == NULL || name == NULL) {
        return NULL;
    }
    for (int i = 0; i < hc->hc_nquery; i++) {
        if (strcmp(hc->hc_qkey[i], name) == 0) {
            return hc->hc_qval[i];
        }
    }
    return NULL;
}

const eddy__http_part_t *eddy__http_part(const eddy__http_req_t *req,
                                         const char *name)
{
    for (int i = 0; i < req->hr_nparts; i++) {
        if (strcmp(req->hr_parts[i].hp_name, name) == 0) {
            return &req->hr_parts[i];
        }
    }
    return NULL;
}

int eddy__http_body_json(const eddy__http_req_t *req, eddy__http_resp_t *resp,
                         json_t **out)
{
    *out = NULL;
    size_t n = req->hr_body != NULL ? req->hr_body_len : 0;
    size_t i = 0;
    while (i < n && (req->hr_body[i] == ' ' || req->hr_body[i] == '\t' ||
                     req->hr_body[i] == '\r' || req->hr_body[i] == '\n')) {
        i++;
    }
    if (i == n) {
        *out = json_object();
        return 0;
    }
    json_error_t jerr;
    json_t *v = json_loadb((const char *)req->hr_body, n,
                           JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL) {
        eddy__http_error(resp, 400, "malformed JSON at line %d column %d: %s",
                         jerr.line, jerr.column, jerr.text);
        return EDDY_ERR_FORMAT;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        eddy__http_error(resp, 400, "the request body must be a JSON object");
        return EDDY_ERR_FORMAT;
    }
    *out = v;
    return 0;
}
