/*
 * eddy — the REST client (libcurl) that the CLI uses to talk to the
 * JobManager, and TaskManagers use to fetch job artifacts (DESIGN.md §8).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. One libcurl easy handle per call: this is the control plane,
 * where a connection set-up per command costs nothing that matters, and a
 * handle per call needs no locking. Every transport failure becomes one
 * line that says what to do ("cannot reach the JobManager at ... (connection
 * refused); is it running? start one with `eddy cluster start`"); a
 * response with any status is a success of the call, and the caller looks
 * at rr_status (eddy__rest_error_text gives the server's message).
 *
 * URLs. `base` is "http://host:port" (a trailing slash is fine; "host:port"
 * without a scheme means http://); `path` is appended ("/jobs"). Only http
 * and https are spoken, redirects are not followed, and proxies from the
 * environment are not used for localhost/127.0.0.1/::1. Timeouts: connect
 * 5 s, total `timeout_ms` (0: 30 s).
 *
 * THREADS. Every function may be called from any thread; libcurl's global
 * initialization runs once (pthread_once). Signals: CURLOPT_NOSIGNAL is set
 * and libcurl sends with MSG_NOSIGNAL, so a server that goes away raises no
 * SIGPIPE.
 */
#ifndef EDDY_REST_CLIENT_H
#define EDDY_REST_CLIENT_H

#include <jansson.h>

#include "common/internal.h"

typedef struct eddy__rest_result {
    int rr_status;   /* HTTP status, 0 if no response */
    json_t *rr_json; /* parsed body if it was JSON, else NULL (caller
                        decrefs, or eddy__rest_result_close) */
    char *rr_body;   /* raw body, NUL-terminated (caller frees, or
                        eddy__rest_result_close); "" if empty */
    size_t rr_body_len;
    char rr_errtext[160]; /* private: backs eddy__rest_error_text */
} eddy__rest_result_t;

/* @brief Frees the body and JSON and zeroes the result. */
void eddy__rest_result_close(eddy__rest_result_t *r);

/*
 * @brief One request. `method` is "GET"/"POST"/...; `body` may be NULL (no
 * body) or a JSON value (sent as application/json; not stolen).
 * @returns 0 when a response arrived (any status) with *out filled;
 * EDDY_ERR_IO with one clear line when no response arrived (connection
 * refused, timeout, reset; err->retriable set); EDDY_ERR_INVALID for a
 * bad URL or arguments. *out is zeroed on error.
 */
int eddy__rest_call(const char *base, const char *method, const char *path,
                    json_t *body, int64_t timeout_ms, eddy__rest_result_t *out,
                    eddy_error_t *err);

/*
 * @brief multipart/form-data POST: one file part (field name `file_field`,
 * streamed from `file_path`, with its base name as the filename) plus
 * plain fields (names[i]=values[i]). Same return convention as
 * eddy__rest_call; a file that cannot be read is EDDY_ERR_NOT_FOUND
 * (missing) or EDDY_ERR_IO.
 */
int eddy__rest_upload(const char *base, const char *path,
                      const char *file_field, const char *file_path,
                      const char *const *names, const char *const *values,
                      int nfields, int64_t timeout_ms, eddy__rest_result_t *out,
                      eddy_error_t *err);

/*
 * @brief Downloads GET base+path into a new file `dest` (written to
 * "dest.tmp", fsync'ed, then renamed, so `dest` is either absent or
 * whole).
 * @returns 0; for a non-2xx answer EDDY_ERR_NOT_FOUND (404) or EDDY_ERR_IO
 * with the server's {"error"} text; transport errors as eddy__rest_call.
 * Nothing is left behind on error.
 */
int eddy__rest_download(const char *base, const char *path, const char *dest,
                        int64_t timeout_ms, eddy_error_t *err);

/* @brief The error text of a non-2xx result: the body's "error" string, or
 * "HTTP 500" (with the start of a non-JSON body, if any). */
const char *eddy__rest_error_text(const eddy__rest_result_t *r);

#endif /* EDDY_REST_CLIENT_H */
