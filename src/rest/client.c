/*
 * eddy — the REST client on libcurl (see client.h).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Bodies of answers are collected in memory up to MAX_ANSWER (an answer
 * from the JobManager is JSON or Prometheus text, never large); downloads
 * stream to a file instead, except the body of an error answer, which is
 * kept (up to MAX_ERROR_BODY) for its message.
 */
#include "rest/client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bytes.h"

#define DEFAULT_TIMEOUT_MS 30000
#define CONNECT_TIMEOUT_MS 5000
#define MAX_ANSWER ((size_t)64 << 20)
#define MAX_ERROR_BODY ((size_t)64 << 10)
#define MAX_URL 2048
#define START_HINT "is it running? start one with `eddy cluster start`"

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* One transfer: the easy handle and where the answer goes. */
typedef struct xfer {
    CURL *x_curl;
    char x_errbuf[CURL_ERROR_SIZE];
    char x_url[MAX_URL];
    char x_base[MAX_URL]; /* normalized base, for messages */
    eddy__bytes_t x_body;
    size_t x_max;     /* bytes of x_body kept */
    bool x_abort_big; /* a longer answer fails the call (else: cut) */
    bool x_too_big;
    int x_fd;     /* download: the file 2xx bodies go to, or -1 */
    int x_werrno; /* a failed write to x_fd */
    int64_t x_timeout_ms;
    struct curl_slist *x_headers;
} xfer_t;

/* ---- URLs ---- */

static bool has_bad_chars(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p <= 0x20 || *p == 0x7f) {
            return true;
        }
    }
    return false;
}

static int build_url(xfer_t *x, const char *base, const char *path,
                     eddy_error_t *err)
{
    if (base == NULL || base[0] == '\0') {
        return eddy_error_set(err, EDDY_ERR_INVALID, "no JobManager URL given");
    }
    if (path == NULL) {
        path = "";
    }
    if (has_bad_chars(base) || has_bad_chars(path)) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "invalid JobManager URL '%.200s%.200s': blanks "
                              "or control characters",
                              base, path);
    }
    const char *sep = strstr(base, "://");
    if (sep != NULL) {
        size_t sl = (size_t)(sep - base);
        if (!(sl == 4 && strncasecmp(base, "http", 4) == 0) &&
            !(sl == 5 && strncasecmp(base, "https", 5) == 0)) {
            return eddy_error_set(err, EDDY_ERR_INVALID,
                                  "invalid JobManager URL '%.200s': only "
                                  "http:// and https:// are supported",
                                  base);
        }
    }
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/') {
        bl--;
    }
    int n = snprintf(x->x_base, sizeof(x->x_base), "%s%.*s",
                     sep != NULL ? "" : "http://", (int)bl, base);
    if (n < 0 || (size_t)n >= sizeof(x->x_base)) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "invalid JobManager URL: too long");
    }
    n = snprintf(x->x_url, sizeof(x->x_url), "%s%s%s", x->x_base,
                 path[0] == '/' || path[0] == '\0' ? "" : "/", path);
    if (n < 0 || (size_t)n >= sizeof(x->x_url)) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "invalid JobManager URL: too long");
    }
    /* libcurl's own parser decides what it will accept; asking it first
     * turns "http://:80" or "http://[::1" into a clear error. */
    CURLU *u = curl_url();
    if (u == NULL) {
        return eddy_error_set(err, EDDY_ERR_NOMEM, "out of memory");
    }
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, x->x_url, 0);
    curl_url_cleanup(u);
    if (uc != CURLUE_OK) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "invalid JobManager URL '%.200s': %s", x->x_url,
                              curl_url_strerror(uc));
    }
    return 0;
}

/* ---- transfers ---- */

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
    xfer_t *x = arg;
    size_t n = size * nmemb;
    if (x->x_fd >= 0) {
        long code = 0;
        curl_easy_getinfo(x->x_curl, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && code < 300) {
            size_t left = n;
            while (left > 0) {
                ssize_t w = write(x->x_fd, p, left);
                if (w < 0) {
                    if (errno == EINTR) {
                        continue;
                    }
                    x->x_werrno = errno;
                    return 0; /* aborts the transfer */
                }
                p += w;
                left -= (size_t)w;
            }
            return n;
        }
    }
    if (x->x_body.b_len + n > x->x_max) {
        x->x_too_big = true;
        if (x->x_abort_big) {
            return 0;
        }
        n = x->x_max - x->x_body.b_len; /* keep the start of an error */
        eddy__bytes_put(&x->x_body, p, n);
        return size * nmemb;
    }
    eddy__bytes_put(&x->x_body, p, n);
    return n;
}

static int xfer_init(xfer_t *x, const char *base, const char *path,
                     int64_t timeout_ms, eddy_error_t *err)
{
    memset(x, 0, sizeof(*x));
    x->x_fd = -1;
    x->x_max = MAX_ANSWER;
    x->x_abort_big = true;
    x->x_timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    int rc = build_url(x, base, path, err);
    if (rc != 0) {
        return rc;
    }
    pthread_once(&g_once, global_init);
    if (g_init_rc != CURLE_OK) {
        return eddy_error_set(err, EDDY_ERR_IO, "cannot initialize libcurl: %s",
                              curl_easy_strerror(g_init_rc));
    }
    x->x_curl = curl_easy_init();
    if (x->x_curl == NULL) {
        return eddy_error_set(err, EDDY_ERR_IO,
                              "cannot initialize libcurl: out of memory");
    }
    CURL *c = x->x_curl;
    bool ok =
        curl_easy_setopt(c, CURLOPT_URL, x->x_url) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->x_errbuf) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                         (long)EDDY_MIN(x->x_timeout_ms, CONNECT_TIMEOUT_MS)) ==
            CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)x->x_timeout_ms) ==
            CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_WRITEDATA, x) == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
        /* A proxy from the environment must not capture local traffic. */
        curl_easy_setopt(c, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1") ==
            CURLE_OK &&
        curl_easy_setopt(c, CURLOPT_USERAGENT, "eddy/" EDDY_VERSION_STR) ==
            CURLE_OK;
    if (!ok) {
        return eddy_error_set(err, EDDY_ERR_IO,
                              "cannot set up the request to %s", x->x_url);
    }
    return 0;
}

static void xfer_close(xfer_t *x)
{
    if (x->x_curl != NULL) {
        curl_easy_cleanup(x->x_curl);
    }
    curl_slist_free_all(x->x_headers);
    eddy__bytes_free(&x->x_body);
    memset(x, 0, sizeof(*x));
    x->x_fd = -1;
}

static int add_header(xfer_t *x, const char *h)
{
    struct curl_slist *l = curl_slist_append(x->x_headers, h);
    if (l == NULL) {
        return -1;
    }
    x->x_headers = l;
    return 0;
}

/* "Connection refused" -> "connection refused", for the middle of a
 * sentence. */
static const char *lower_reason(char *buf, size_t size, const char *s)
{
    eddy__fmt(buf, size, "%s", s);
    if (buf[0] != '\0' && isupper((unsigned char)buf[0]) &&
        !isupper((unsigned char)buf[1])) {
        buf[0] = (char)tolower((unsigned char)buf[0]);
    }
    return buf;
}

/* Runs the transfer; maps a failure without an answer to one line. */
static int xfer_perform(xfer_t *x, eddy_error_t *err)
{
    CURLcode rc = curl_easy_perform(x->x_curl);
    if (rc == CURLE_OK) {
        return 0;
    }
    long os = 0;
    curl_easy_getinfo(x->x_curl, CURLINFO_OS_ERRNO, &os);
    char why[CURL_ERROR_SIZE + 32];
    const char *detail =
        x->x_errbuf[0] != '\0' ? x->x_errbuf : curl_easy_strerror(rc);
    int code = EDDY_ERR_IO;
    int ret;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        ret = eddy_error_set(
            err, code, "cannot reach the JobManager at %s (%s); " START_HINT,
            x->x_base,
            os != 0 ? lower_reason(why, sizeof(why), strerror((int)os))
                    : detail);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        ret = eddy_error_set(err, code,
                             "cannot reach the JobManager at %s (unknown "
                             "host)",
                             x->x_base);
        break;
    case CURLE_OPERATION_TIMEDOUT: {
        curl_off_t connected = 0;
        curl_easy_getinfo(x->x_curl, CURLINFO_CONNECT_TIME_T, &connected);
        if (connected == 0) {
            ret = eddy_error_set(err, code,
                                 "cannot reach the JobManager at %s "
                                 "(connection timed out); " START_HINT,
                                 x->x_base);
        } else {
            ret = eddy_error_set(err, code,
                                 "the JobManager at %s did not answer within "
                                 "%lld ms (timed out)",
                                 x->x_base, (long long)x->x_timeout_ms);
        }
        break;
    }
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        ret = eddy_error_set(err, code,
                             "the JobManager at %s closed the connection "
                             "without a complete answer (%s)",
                             x->x_base, detail);
        break;
    case CURLE_WRITE_ERROR:
        if (x->x_werrno != 0) {
            ret = eddy_error_set(err, code, "cannot write the download: %s",
                                 strerror(x->x_werrno));
        } else if (x->x_too_big) {
            ret = eddy_error_set(err, code,
                                 "the answer from %s is larger than %zu MiB",
                                 x->x_url, x->x_max >> 20);
        } else {
            ret = eddy_error_set(err, code, "request to %s failed: %s",
                                 x->x_url, detail);
        }
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        ret =
            eddy_error_set(err, EDDY_ERR_INVALID,
                           "invalid JobManager URL '%s': %s", x->x_url, detail);
        break;
    default:
        ret = eddy_error_set(err, code, "request to %s failed: %s", x->x_url,
                             detail);
        break;
    }
    if (err != NULL && ret == EDDY_ERR_IO && x->x_werrno == 0) {
        err->retriable = 1;
        err->sys_errno = (int)os;
    }
    return ret;
}

/* Sets r->rr_errtext from a non-JSON body: "HTTP 502: <first line>". */
static void set_errtext(eddy__rest_result_t *r)
{
    int n =
        snprintf(r->rr_errtext, sizeof(r->rr_errtext), "HTTP %d", r->rr_status);
    if (r->rr_json != NULL || r->rr_body_len == 0 || n < 0) {
        return;
    }
    size_t k = (size_t)n;
    const char *sep = ": ";
    memcpy(r->rr_errtext + k, sep, 2);
    k += 2;
    for (size_t i = 0; i < r->rr_body_len && k + 1 < sizeof(r->rr_errtext);
         i++) {
        unsigned char c = (unsigned char)r->rr_body[i];
        if (c == '\n' || c == '\r') {
            break;
        }
        r->rr_errtext[k++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    r->rr_errtext[k] = '\0';
}

/* Moves the answer into *out. */
static void fill_result(xfer_t *x, eddy__rest_result_t *out)
{
    long code = 0;
    curl_easy_getinfo(x->x_curl, CURLINFO_RESPONSE_CODE, &code);
    out->rr_status = (int)code;
    eddy__bytes_put(&x->x_body, "", 1);
    out->rr_body = (char *)x->x_body.b_data;
    out->rr_body_len = x->x_body.b_len - 1;
    memset(&x->x_body, 0, sizeof(x->x_body));
    const char *ctype = NULL;
    curl_easy_getinfo(x->x_curl, CURLINFO_CONTENT_TYPE, &ctype);
    if (out->rr_body_len > 0 && ctype != NULL && strstr(ctype, "json")) {
        out->rr_json =
            json_loadb(out->rr_body, out->rr_body_len, JSON_DECODE_ANY, NULL);
    }
    set_errtext(out);
}

void eddy__rest_result_close(eddy__rest_result_t *r)
{
    if (r == NULL) {
        return;
    }
    json_decref(r->rr_json);
    free(r->rr_body);
    memset(r, 0, sizeof(*r));
}

const char *eddy__rest_error_text(const eddy__rest_result_t *r)
{
    json_t *e = json_is_object(r->rr_json)
                    ? json_object_get(r->rr_json, "error")
                    : NULL;
    if (json_is_string(e)) {
        return json_string_value(e);
    }
    if (r->rr_errtext[0] != '\0') {
        return r->rr_errtext;
    }
    return r->rr_status != 0 ? "HTTP error" : "no response";
}

static bool valid_method(const char *m)
{
    if (m == NULL || m[0] == '\0' || strlen(m) > 16) {
        return false;
    }
    for (const char *p = m; *p != '\0'; p++) {
        if (!isupper((unsigned char)*p)) {
            return false;
        }
    }
    return true;
}

int eddy__rest_call(const char *base, const char *method, const char *path,
                    json_t *body, int64_t timeout_ms, eddy__rest_result_t *out,
                    eddy_error_t *err)
{
    xfer_t x;
    char *text = NULL;
    int rc;
    memset(out, 0, sizeof(*out));
    if (!valid_method(method)) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "invalid HTTP method '%.32s'",
                              method != NULL ? method : "(null)");
    }
    rc = xfer_init(&x, base, path, timeout_ms, err);
    if (rc != 0) {
        goto done;
    }
    CURL *c = x.x_curl;
    bool ok = add_header(&x, "Accept: application/json") == 0;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL) {
            rc = eddy_error_set(err, EDDY_ERR_INVALID,
                                "cannot encode the request body as JSON");
            goto done;
        }
        ok = ok && add_header(&x, "Content-Type: application/json") == 0 &&
             /* Small JSON bodies: no 100-continue round trip. */
             add_header(&x, "Expect:") == 0 &&
             curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                              (curl_off_t)strlen(text)) == CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_POSTFIELDS, text) == CURLE_OK;
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        ok = ok &&
             curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0) ==
                 CURLE_OK &&
             curl_easy_setopt(c, CURLOPT_POSTFIELDS, "") == CURLE_OK;
    }
    if (strcmp(method, "HEAD") == 0) {
        ok = ok && curl_easy_setopt(c, CURLOPT_NOBODY, 1L) == CURLE_OK;
    } else if (strcmp(method, "GET") == 0 && body == NULL) {
        ok = ok && curl_easy_setopt(c, CURLOPT_HTTPGET, 1L) == CURLE_OK;
    } else if (strcmp(method, "POST") != 0) {
        ok = ok &&
             curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
    }
    ok = ok && curl_easy_setopt(c, CURLOPT_HTTPHEADER, x.x_headers) == CURLE_OK;
    if (!ok) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot set up the request to %s",
                            x.x_url);
        goto done;
    }
    rc = xfer_perform(&x, err);
    if (rc == 0) {
        fill_result(&x, out);
    }
done:
    free(text);
    xfer_close(&x);
    return rc;
}

/* Checks that `path` is a readable regular file before libcurl streams
 * it, so that the error names the file rather than the transfer. */
static int check_file(const char *path, eddy_error_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        int rc =
            eddy_error_set(err, e == ENOENT ? EDDY_ERR_NOT_FOUND : EDDY_ERR_IO,
                           "cannot read %s: %s", path, strerror(e));
        if (err != NULL) {
            err->sys_errno = e;
        }
        return rc;
    }
    struct stat st;
    bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!regular) {
        return eddy_error_set(err, EDDY_ERR_IO,
                              "cannot read %s: not a regular file", path);
    }
    return 0;
}

int eddy__rest_upload(const char *base, const char *path,
                      const char *file_field, const char *file_path,
                      const char *const *names, const char *const *values,
                      int nfields, int64_t timeout_ms, eddy__rest_result_t *out,
                      eddy_error_t *err)
{
    xfer_t x;
    curl_mime *mime = NULL;
    int rc;
    memset(out, 0, sizeof(*out));
    memset(&x, 0, sizeof(x));
    if (file_field == NULL || file_path == NULL || nfields < 0 ||
        (nfields > 0 && (names == NULL || values == NULL))) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "upload: missing file field, file or fields");
    }
    for (int i = 0; i < nfields; i++) {
        if (names[i] == NULL || values[i] == NULL) {
            return eddy_error_set(err, EDDY_ERR_INVALID,
                                  "upload: field %d has no name or value", i);
        }
    }
    rc = check_file(file_path, err);
    if (rc != 0) {
        return rc;
    }
    rc = xfer_init(&x, base, path, timeout_ms, err);
    if (rc != 0) {
        goto done;
    }
    mime = curl_mime_init(x.x_curl);
    curl_mimepart *part = mime != NULL ? curl_mime_addpart(mime) : NULL;
    bool ok = part != NULL && curl_mime_name(part, file_field) == CURLE_OK &&
              curl_mime_filedata(part, file_path) == CURLE_OK;
    for (int i = 0; ok && i < nfields; i++) {
        part = curl_mime_addpart(mime);
        ok = part != NULL && curl_mime_name(part, names[i]) == CURLE_OK &&
             curl_mime_data(part, values[i], CURL_ZERO_TERMINATED) == CURLE_OK;
    }
    ok = ok && add_header(&x, "Accept: application/json") == 0 &&
         curl_easy_setopt(x.x_curl, CURLOPT_HTTPHEADER, x.x_headers) ==
             CURLE_OK &&
         curl_easy_setopt(x.x_curl, CURLOPT_MIMEPOST, mime) == CURLE_OK;
    if (!ok) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot set up the upload to %s",
                            x.x_url);
        goto done;
    }
    rc = xfer_perform(&x, err);
    if (rc == 0) {
        fill_result(&x, out);
    }
done:
    /* The handle refers to the mime structure: free the handle first. */
    xfer_close(&x);
    curl_mime_free(mime);
    return rc;
}

int eddy__rest_download(const char *base, const char *path, const char *dest,
                        int64_t timeout_ms, eddy_error_t *err)
{
    xfer_t x;
    char tmp[4096];
    int fd = -1;
    bool created = false;
    int rc;
    memset(&x, 0, sizeof(x));
    x.x_fd = -1;
    if (dest == NULL || dest[0] == '\0') {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "download: no destination file");
    }
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", dest);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "download: destination path too long");
    }
    rc = xfer_init(&x, base, path, timeout_ms, err);
    if (rc != 0) {
        goto done;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot create %s: %s", tmp,
                            strerror(errno));
        goto done;
    }
    created = true;
    x.x_fd = fd;
    x.x_max = MAX_ERROR_BODY;
    x.x_abort_big = false;
    if (add_header(&x, "Accept: */*") != 0 ||
        curl_easy_setopt(x.x_curl, CURLOPT_HTTPHEADER, x.x_headers) !=
            CURLE_OK ||
        curl_easy_setopt(x.x_curl, CURLOPT_HTTPGET, 1L) != CURLE_OK) {
        rc = eddy_error_set(err, EDDY_ERR_IO,
                            "cannot set up the download from %s", x.x_url);
        goto done;
    }
    rc = xfer_perform(&x, err);
    if (rc != 0) {
        goto done;
    }
    eddy__rest_result_t res;
    memset(&res, 0, sizeof(res));
    fill_result(&x, &res);
    if (res.rr_status < 200 || res.rr_status > 299) {
        rc = eddy_error_set(
            err, res.rr_status == 404 ? EDDY_ERR_NOT_FOUND : EDDY_ERR_IO,
            "cannot download %s: %s", x.x_url, eddy__rest_error_text(&res));
        eddy__rest_result_close(&res);
        goto done;
    }
    eddy__rest_result_close(&res);
    /* The file must be whole on disk before its final name appears. */
    if (fsync(fd) != 0) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot write %s: %s", tmp,
                            strerror(errno));
        goto done;
    }
    int crc = close(fd);
    fd = -1;
    if (crc != 0) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot write %s: %s", tmp,
                            strerror(errno));
        goto done;
    }
    if (rename(tmp, dest) != 0) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot rename %s to %s: %s", tmp,
                            dest, strerror(errno));
        goto done;
    }
done:
    if (fd >= 0) {
        close(fd);
    }
    if (rc != 0 && created) {
        unlink(tmp);
    }
    xfer_close(&x);
    return rc;
}
