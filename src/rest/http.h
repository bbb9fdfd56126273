/*
 * eddy — the HTTP layer under the JobManager's REST API (DESIGN.md §8): a
 * libmicrohttpd server with routing, limits, multipart uploads and JSON
 * responses.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. The server owns everything that is the same for every endpoint,
 * so that a handler only sees a request that is already known to be sane:
 *
 *  - Routing. Patterns are paths whose segments are either exact or
 *    "{name}" (one non-empty segment). Among the routes whose pattern and
 *    method match, the one with an exact segment at the first position
 *    where they differ wins, so "/jobs/submit" beats "/jobs/{id}". A path
 *    that no pattern matches is a 404; a path that some pattern matches
 *    under another method is a 405 with an Allow header. HEAD is served by
 *    the GET route without a body.
 *  - Paths are checked before routing, on the raw URI as received: a blank
 *    or control character, an empty segment ("//"), a segment that is "."
 *    or contains ".." (also percent-encoded), a bad percent escape, or a
 *    decoded segment holding '/', NUL or a control character is a 400.
 *    Parameters are percent-decoded. A trailing slash is ignored ("/jobs/"
 *    is "/jobs"); a path with more segments than any route is a 404.
 *  - Limits. A non-multipart body above ho_max_body, or a multipart body
 *    above ho_max_upload, is a 413. A Content-Length above the limit is
 *    refused before any of the body is read (libmicrohttpd then closes the
 *    connection). A chunked body is counted as it arrives; once over, what
 *    was stored is dropped at once and up to 1 MiB more is read and thrown
 *    away, so that the client still gets its 413; past that the connection
 *    is closed without an answer. Errors found inside a body (malformed
 *    multipart) are handled the same way, since libmicrohttpd cannot
 *    answer before the body has been read.
 *  - Protocol errors that libmicrohttpd detects itself (a malformed request
 *    line or chunked encoding, headers above the connection's 64 KiB
 *    memory: 400, 414, 431) get its own short HTML answer.
 *  - Uploads (multipart/form-data) are parsed as they stream in: file
 *    parts go straight to fresh files (O_EXCL, 0600) with server-chosen
 *    names under ho_upload_dir, never to memory; the client's filename is
 *    only reported. Files still present when the handler returns are
 *    unlinked, as are partial files of a failed upload. A malformed body
 *    (no boundary, bad headers, truncated) is a 400.
 *  - Errors are JSON: {"error": "..."}, with "Cache-Control: no-store" on
 *    every JSON response. A handler that leaves its response empty sends
 *    {} (status 200) or {"error": "<reason phrase>"} (4xx/5xx); a status
 *    outside 200..599, or a Content-Type or Location holding CR or LF,
 *    becomes a 500.
 *
 * SIGPIPE. libmicrohttpd sends with MSG_NOSIGNAL and blocks SIGPIPE in the
 * threads it starts, and the client (client.c) sets CURLOPT_NOSIGNAL, so a
 * peer that goes away never kills the process; nothing here changes the
 * process's signal dispositions.
 *
 * THREADS. eddy__http_new, _route, _start, _stop and _destroy are called by
 * one owning thread; routes are added before _start and are read-only
 * afterwards. Handlers run on the server's thread pool (ho_threads
 * threads, each serving many connections), so they may run concurrently
 * with each other and must be short: a slow handler delays the other
 * connections of its thread. A handler must not call eddy__http_stop or
 * eddy__http_destroy (they wait for running handlers). The helpers below
 * only touch the request and response they are given.
 */
#ifndef EDDY_REST_HTTP_H
#define EDDY_REST_HTTP_H

#include <jansson.h>

#include "common/internal.h"

/* The most {param} segments in a pattern, and segments in a path. */
#define EDDY__HTTP_MAX_PARAMS 8
#define EDDY__HTTP_MAX_SEGMENTS 16
/* The most parts in one multipart body, and bytes of a plain field. */
#define EDDY__HTTP_MAX_PARTS 32
#define EDDY__HTTP_MAX_FIELD ((size_t)64 << 10)

typedef struct eddy__http_server eddy__http_server_t;

typedef struct eddy__http_part { /* one multipart/form-data part */
    const char *hp_name;         /* form field name */
    const char *hp_filename;     /* NULL for a plain field */
    const char *hp_value; /* plain field: its value, NUL-terminated (<= 64 KiB);
                             NULL for a file part */
    size_t hp_value_len;
    const char *hp_file_path; /* file part: where the upload was stored (a
                                 fresh file under the server's upload dir);
                                 the handler may rename() it elsewhere; the
                                 server unlinks it after the handler returns
                                 if it still exists */
    int64_t hp_file_size;
} eddy__http_part_t;

typedef struct eddy__http_req {
    const char *hr_method; /* "GET", "POST", ... ("GET" for a HEAD request) */
    const char *hr_path;   /* URL path without query, as received */
    const char *hr_params[EDDY__HTTP_MAX_PARAMS]; /* values of {name} path
                                                     segments, in order */
    int hr_nparams;
    const unsigned char *hr_body; /* non-multipart body (NUL-terminated
                                     copy), or NULL */
    size_t hr_body_len;
    const eddy__http_part_t *hr_parts; /* multipart bodies */
    int hr_nparts;
    void *hr_conn; /* private: for eddy__http_query */
} eddy__http_req_t;

typedef struct eddy__http_resp {
    int hs_status;               /* default 200 */
    char *hs_body;               /* malloc'ed, server frees; NULL = empty */
    size_t hs_body_len;          /* bytes of hs_body */
    const char *hs_content_type; /* static string; default "application/json" */
    char hs_location[256];       /* optional Location header (redirects) */
} eddy__http_resp_t;

/*
 * A route's handler. `req` and everything it points to are valid until the
 * handler returns. Fill `resp` through the helpers below (or directly).
 * @locality a server thread (see THREADS).
 */
typedef void (*eddy__http_handler_t)(void *arg, const eddy__http_req_t *req,
                                     eddy__http_resp_t *resp);

typedef struct eddy__http_options {
    const char *ho_bind;   /* "127.0.0.1" (default) or "0.0.0.0" */
    int ho_port;           /* 0: an ephemeral port (see eddy__http_port) */
    size_t ho_max_body;    /* non-multipart bodies; default 1 MiB -> 413 */
    int64_t ho_max_upload; /* per multipart request total; default 512 MiB */
    const char *ho_upload_dir; /* where file parts are stored (must exist);
                                  required if any route accepts uploads */
    int ho_threads;         /* handler threads (MHD thread pool); default 4 */
    int ho_timeout_s;       /* idle connection timeout; default 30 */
    int ho_max_connections; /* open connections; default 256 */
} eddy__http_options_t;

/* @brief Sets every option to its default. */
void eddy__http_options_init(eddy__http_options_t *o);

/*
 * @brief Creates a server (not yet listening). Copies the options.
 * @returns the server, or NULL with EDDY_ERR_INVALID for bad options (a
 * bind address that does not resolve, an upload directory that is not a
 * writable directory, a negative limit).
 */
eddy__http_server_t *eddy__http_new(const eddy__http_options_t *o,
                                    eddy_error_t *err);

/*
 * @brief Adds a route. Routes are added before start. Pattern segments
 * "{name}" match one non-empty path segment. Exact segments win over
 * {params} when both match.
 * @remark A malformed pattern (not starting with '/', an empty segment,
 * more than EDDY__HTTP_MAX_PARAMS params or EDDY__HTTP_MAX_SEGMENTS
 * segments) or a call after start is a programming error: it aborts.
 */
void eddy__http_route(eddy__http_server_t *s, const char *method,
                      const char *pattern, eddy__http_handler_t fn, void *arg);

/*
 * @brief Binds and starts serving.
 * @returns 0; EDDY_ERR_IO naming the address ("cannot listen on
 * 127.0.0.1:8081: Address already in use"); EDDY_ERR_STATE if running.
 */
int eddy__http_start(eddy__http_server_t *s, eddy_error_t *err);

/* @brief The bound port once started (the configured port before). */
int eddy__http_port(const eddy__http_server_t *s);

/* @brief Stops listening, closes connections and waits for running
 * handlers. A no-op if not running. The server may be started again. */
void eddy__http_stop(eddy__http_server_t *s);

/* @brief Stops the server if needed and frees it. NULL is a no-op. */
void eddy__http_destroy(eddy__http_server_t *s);

/* ---- handler helpers (all set status + body + content type) ---- */

/* @brief A compact JSON body. Steals the reference to `body`; a NULL body
 * (a failed json_pack) gives a 500. */
void eddy__http_json(eddy__http_resp_t *r, int status, json_t *body);

/* @brief {"error": "<message>"}; bytes that are not UTF-8 become '?'. */
void eddy__http_error(eddy__http_resp_t *r, int status, const char *fmt, ...)
    EDDY_PRINTF_LIKE(3, 4);

/* @brief A copy of `text` with the given (static) content type. */
void eddy__http_text(eddy__http_resp_t *r, int status, const char *ctype,
                     const char *text);

/* @brief The percent-decoded value of query parameter ?name=value (the
 * first if repeated; "" for "?name"), or NULL. Valid until the handler
 * returns. */
const char *eddy__http_query(const eddy__http_req_t *req, const char *name);

/* @brief The multipart part named `name` (the first if repeated), or
 * NULL. */
const eddy__http_part_t *eddy__http_part(const eddy__http_req_t *req,
                                         const char *name);

/*
 * @brief Parses hr_body as a JSON object.
 * @returns 0 with *out (new ref; an empty body gives {}), or sets a 400
 * error on resp ("malformed JSON at line 1 column 7: ...", or "the request
 * body must be a JSON object") and returns EDDY_ERR_FORMAT.
 */
int eddy__http_body_json(const eddy__http_req_t *req, eddy__http_resp_t *resp,
                         json_t **out);

#endif /* EDDY_REST_HTTP_H */
