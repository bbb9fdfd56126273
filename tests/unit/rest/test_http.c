/*
 * eddy — unit tests for src/rest/http.c and src/rest/client.c: the REST
 * API's HTTP server and the client the CLI uses (DESIGN §8).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * One server on an ephemeral loopback port serves a few test routes; it is
 * driven with the client (which is tested along the way) and with raw
 * sockets for what a well-behaved client never sends: path tricks,
 * malformed multipart bodies, chunked bodies over the limit, garbage.
 * Every handler checks the parameters it is given, so a bad parameter
 * reaching a handler fails the run even when the status looked right.
 */
#include "test_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rest/client.h"
#include "rest/http.h"

#define MAX_BODY 4096
#define MAX_UPLOAD ((int64_t)256 << 10)
#define CALL_MS 10000

static eddy__http_server_t *g_srv;
static char g_dir[512]; /* test root */
static char g_up[600];  /* the server's upload dir */
static char g_base[64]; /* "http://127.0.0.1:PORT" */
static atomic_int g_bad_param;
static atomic_int g_calls; /* handler invocations */

/* What the last /upload saw. */
typedef struct upload_seen {
    pthread_mutex_t us_mu;
    int us_nparts;
    char us_name[8][64];
    char us_filename[8][128];
    int us_has_filename[8];
    char us_value[8][256];
    size_t us_value_len[8];
    char us_path[8][700];
    int64_t us_size[8];
    int us_path_existed[8];
} upload_seen_t;

static upload_seen_t g_seen = {.us_mu = PTHREAD_MUTEX_INITIALIZER};

/* ---- handlers ---- */

static void check_params(const eddy__http_req_t *req)
{
    for (int i = 0; i < req->hr_nparams; i++) {
        const char *p = req->hr_params[i];
        if (p == NULL || p[0] == '\0' || strchr(p, '/') != NULL ||
            strstr(p, "..") != NULL) {
            atomic_store(&g_bad_param, 1);
        }
        for (const unsigned char *c = (const unsigned char *)p;
             c != NULL && *c != '\0'; c++) {
            if (*c < 0x20 || *c == 0x7f) {
                atomic_store(&g_bad_param, 1);
            }
        }
    }
    atomic_fetch_add(&g_calls, 1);
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static void h_echo(void *arg, const eddy__http_req_t *req,
                   eddy__http_resp_t *resp)
{
    check_params(req);
    json_t *params = json_array();
    for (int i = 0; i < req->hr_nparams; i++) {
        json_array_append_new(params, json_string(req->hr_params[i]));
    }
    eddy__http_json(resp, 200,
                    json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:b}",
                              "route", (const char *)arg, "method",
                              req->hr_method, "path", req->hr_path, "params",
                              params, "x",
                              str_or_null(eddy__http_query(req, "x")), "y",
                              str_or_null(eddy__http_query(req, "y")), "flag",
                              str_or_null(eddy__http_query(req, "flag")),
                              "has_body", req->hr_body != NULL));
}

static void h_json(void *arg, const eddy__http_req_t *req,
                   eddy__http_resp_t *resp)
{
    EDDY_UNUSED(arg);
    check_params(req);
    json_t *body;
    if (eddy__http_body_json(req, resp, &body) != 0) {
        return;
    }
    json_object_set_new(body, "seen", json_true());
    eddy__http_json(resp, 201, body);
}

static void h_upload(void *arg, const eddy__http_req_t *req,
                     eddy__http_resp_t *resp)
{
    EDDY_UNUSED(arg);
    check_params(req);
    eddy__mutex_lock(&g_seen.us_mu);
    g_seen.us_nparts = req->hr_nparts;
    for (int i = 0; i < req->hr_nparts && i < 8; i++) {
        const eddy__http_part_t *p = &req->hr_parts[i];
        snprintf(g_seen.us_name[i], sizeof(g_seen.us_name[i]), "%s",
                 p->hp_name);
        g_seen.us_has_filename[i] = p->hp_filename != NULL;
        snprintf(g_seen.us_filename[i], sizeof(g_seen.us_filename[i]), "%s",
                 p->hp_filename != NULL ? p->hp_filename : "");
        g_seen.us_value_len[i] = p->hp_value_len;
        if (p->hp_value != NULL) {
            memcpy(g_seen.us_value[i], p->hp_value,
                   EDDY_MIN(p->hp_value_len + 1, sizeof(g_seen.us_value[i])));
        } else {
            g_seen.us_value[i][0] = '\0';
        }
        snprintf(g_seen.us_path[i], sizeof(g_seen.us_path[i]), "%s",
                 p->hp_file_path != NULL ? p->hp_file_path : "");
        g_seen.us_size[i] = p->hp_file_size;
        struct stat st;
        g_seen.us_path_existed[i] =
            p->hp_file_path != NULL && stat(p->hp_file_path, &st) == 0 &&
            (st.st_mode & 0777) == 0600 && st.st_size == p->hp_file_size;
    }
    eddy__mutex_unlock(&g_seen.us_mu);
    /* ?keep=1: take the file, as the JobManager does with a job .so. */
    const eddy__http_part_t *f = eddy__http_part(req, "job_file");
    const eddy__http_part_t *keep = eddy__http_part(req, "keep_as");
    if (f != NULL && keep != NULL && f->hp_file_path != NULL) {
        if (rename(f->hp_file_path, keep->hp_value) != 0) {
            eddy__http_error(resp, 500, "rename: %s", strerror(errno));
            return;
        }
    }
    eddy__http_json(resp, 200, json_pack("{s:i}", "parts", req->hr_nparts));
}

static void h_nothing(void *arg, const eddy__http_req_t *req,
                      eddy__http_resp_t *resp)
{
    check_params(req);
    if (arg != NULL) {
        resp->hs_status = *(const int *)arg;
    }
}

static void h_slow(void *arg, const eddy__http_req_t *req,
                   eddy__http_resp_t *resp)
{
    check_params(req);
    tu_sleep_us(*(const int *)arg * 1000L);
    eddy__http_json(resp, 200, json_pack("{s:b}", "ok", 1));
}

static void h_text(void *arg, const eddy__http_req_t *req,
                   eddy__http_resp_t *resp)
{
    EDDY_UNUSED(arg);
    check_params(req);
    eddy__http_text(resp, 200, "text/plain; version=0.0.4",
                    "eddy_task_managers 2\n");
}

static void h_badlocation(void *arg, const eddy__http_req_t *req,
                          eddy__http_resp_t *resp)
{
    EDDY_UNUSED(arg);
    check_params(req);
    eddy__http_json(resp, 302, json_object());
    snprintf(resp->hs_location, sizeof(resp->hs_location),
             "/x\r\nSet-Cookie: a=b");
}

static void h_texterr(void *arg, const eddy__http_req_t *req,
                      eddy__http_resp_t *resp)
{
    EDDY_UNUSED(arg);
    check_params(req);
    eddy__http_text(resp, 503, "text/html", "<html>Bad\tgateway\r\nmore");
}

static void h_redirect(void *arg, const eddy__http_req_t *req,
                       eddy__http_resp_t *resp)
{
    EDDY_UNUSED(arg);
    check_params(req);
    eddy__http_json(resp, 302, json_object());
    snprintf(resp->hs_location, sizeof(resp->hs_location), "/overview");
}

static void h_error(void *arg, const eddy__http_req_t *req,
                    eddy__http_resp_t *resp)
{
    EDDY_UNUSED(arg);
    check_params(req);
    /* A message with bytes that are not UTF-8 still makes valid JSON. */
    eddy__http_error(resp, 409, "job %s is \xff\xfe busy", req->hr_params[0]);
}

static const int k_404 = 404, k_42 = 42, k_204 = 204, k_slow = 10,
                 k_slower = 1500;

/* ---- fixture ---- */

static int setup(void **state)
{
    EDDY_UNUSED(state);
    tu_tmpdir(g_dir, sizeof(g_dir));
    snprintf(g_up, sizeof(g_up), "%s/uploads", g_dir);
    if (mkdir(g_up, 0700) != 0) {
        return -1;
    }
    eddy__http_options_t o;
    eddy__http_options_init(&o);
    o.ho_max_body = MAX_BODY;
    o.ho_max_upload = MAX_UPLOAD;
    o.ho_upload_dir = g_up;
    o.ho_threads = 4;
    eddy_error_t err;
    g_srv = eddy__http_new(&o, &err);
    if (g_srv == NULL) {
        fprintf(stderr, "eddy__http_new: %s\n", err.msg);
        return -1;
    }
    eddy__http_route(g_srv, "GET", "/echo/{a}", h_echo, "echo");
    eddy__http_route(g_srv, "GET", "/jobs/{id}", h_echo, "job");
    eddy__http_route(g_srv, "GET", "/jobs/overview", h_echo, "overview");
    eddy__http_route(g_srv, "GET", "/jobs/{id}/status", h_echo, "status");
    eddy__http_route(g_srv, "POST", "/jobs/{id}/cancel", h_echo, "cancel");
    eddy__http_route(g_srv, "GET", "/a/{x}/c", h_echo, "a-x-c");
    eddy__http_route(g_srv, "GET", "/a/b/{y}", h_echo, "a-b-y");
    eddy__http_route(g_srv, "GET", "/", h_echo, "root");
    eddy__http_route(g_srv, "POST", "/json", h_json, NULL);
    eddy__http_route(g_srv, "POST", "/upload", h_upload, NULL);
    eddy__http_route(g_srv, "GET", "/nothing", h_nothing, NULL);
    eddy__http_route(g_srv, "GET", "/nothing404", h_nothing, (void *)&k_404);
    eddy__http_route(g_srv, "GET", "/status42", h_nothing, (void *)&k_42);
    eddy__http_route(g_srv, "DELETE", "/nothing204", h_nothing, (void *)&k_204);
    eddy__http_route(g_srv, "GET", "/slow", h_slow, (void *)&k_slow);
    eddy__http_route(g_srv, "GET", "/slower", h_slow, (void *)&k_slower);
    eddy__http_route(g_srv, "GET", "/metrics", h_text, NULL);
    eddy__http_route(g_srv, "GET", "/redirect", h_redirect, NULL);
    eddy__http_route(g_srv, "GET", "/texterr", h_texterr, NULL);
    eddy__http_route(g_srv, "GET", "/badlocation", h_badlocation, NULL);
    eddy__http_route(g_srv, "POST", "/jobs/{id}/error", h_error, NULL);
    if (eddy__http_start(g_srv, &err) != 0) {
        fprintf(stderr, "eddy__http_start: %s\n", err.msg);
        return -1;
    }
    snprintf(g_base, sizeof(g_base), "http://127.0.0.1:%d",
             eddy__http_port(g_srv));
    return 0;
}

static int teardown(void **state)
{
    EDDY_UNUSED(state);
    eddy__http_destroy(g_srv);
    g_srv = NULL;
    tu_rmtree(g_dir);
    /* No test may have let a bad parameter through. */
    return atomic_load(&g_bad_param) ? -1 : 0;
}

/* ---- helpers ---- */

/* A GET through the client; fails the test if no answer arrived. */
static eddy__rest_result_t call(const char *method, const char *path,
                                json_t *body)
{
    eddy__rest_result_t r;
    eddy_error_t err;
    TU_ASSERT_OK(eddy__rest_call(g_base, method, path, body, CALL_MS, &r, &err),
                 &err);
    return r;
}

static const char *jstr(const eddy__rest_result_t *r, const char *key)
{
    json_t *v = json_object_get(r->rr_json, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)eddy__http_port(g_srv));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {tu_timeout_ms(5000) / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Sends everything; returns false if the peer closed first. */
static bool raw_send(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        c += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads until the server closes (or the receive timeout); `out` gets the
 * NUL-terminated response. Returns its status code, 0 if none. */
static int raw_read(int fd, char *out, size_t size)
{
    size_t n = 0;
    for (;;) {
        if (n + 1 >= size) {
            break;
        }
        ssize_t k = recv(fd, out + n, size - n - 1, 0);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            break;
        }
        n += (size_t)k;
    }
    out[n] = '\0';
    int status = 0;
    if (sscanf(out, "HTTP/1.%*d %d", &status) != 1) {
        status = 0;
    }
    return status;
}

/* One request over a fresh connection; returns the status. */
static int raw_request(const char *req, size_t len, char *out, size_t size)
{
    int fd = raw_connect();
    raw_send(fd, req, len);
    int status = raw_read(fd, out, size);
    close(fd);
    return status;
}

static int raw_get(const char *target, char *out, size_t size)
{
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: "
                     "close\r\n\r\n",
                     target);
    return raw_request(req, (size_t)n, out, size);
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static bool upload_dir_empty(void *arg)
{
    EDDY_UNUSED(arg);
    return count_dir(g_up) == 0;
}

static bool upload_dir_has_file(void *arg)
{
    EDDY_UNUSED(arg);
    return count_dir(g_up) > 0;
}

static void assert_server_alive(void)
{
    eddy__rest_result_t r = call("GET", "/echo/alive", NULL);
    assert_int_equal(r.rr_status, 200);
    assert_string_equal(jstr(&r, "route"), "echo");
    eddy__rest_result_close(&r);
}

/* ---- routing ---- */

static void test_params_and_query(void **state)
{
    EDDY_UNUSED(state);
    eddy__rest_result_t r =
        call("GET", "/echo/hello%20w%C3%B6rld?x=1&y=a+b%26c&flag", NULL);
    assert_int_equal(r.rr_status, 200);
    assert_non_null(r.rr_json);
    assert_string_equal(jstr(&r, "route"), "echo");
    assert_string_equal(jstr(&r, "method"), "GET");
    assert_string_equal(jstr(&r, "path"), "/echo/hello%20w%C3%B6rld");
    json_t *params = json_object_get(r.rr_json, "params");
    assert_int_equal(json_array_size(params), 1);
    assert_string_equal(json_string_value(json_array_get(params, 0)),
                        "hello w\xc3\xb6rld");
    assert_string_equal(jstr(&r, "x"), "1");
    assert_string_equal(jstr(&r, "y"), "a b&c");
    assert_string_equal(jstr(&r, "flag"), "");
    eddy__rest_result_close(&r);

    /* Two params, a trailing slash, no query. */
    r = call("GET", "/jobs/j-42/status/", NULL);
    assert_int_equal(r.rr_status, 200);
    assert_string_equal(jstr(&r, "route"), "status");
    params = json_object_get(r.rr_json, "params");
    assert_int_equal(json_array_size(params), 1);
    assert_string_equal(json_string_value(json_array_get(params, 0)), "j-42");
    assert_true(json_is_null(json_object_get(r.rr_json, "x")));
    eddy__rest_result_close(&r);

    r = call("GET", "/", NULL);
    assert_int_equal(r.rr_status, 200);
    assert_string_equal(jstr(&r, "route"), "root");
    eddy__rest_result_close(&r);

    /* A bad escape in the query string is the client's error. */
    r = call("GET", "/echo/a?x=%G1", NULL);
    assert_int_equal(r.rr_status, 400);
    TU_ASSERT_CONTAINS(eddy__rest_error_text(&r), "invalid query string");
    eddy__rest_result_close(&r);
}

static void test_exact_beats_param(void **state)
{
    EDDY_UNUSED(state);
    eddy__rest_result_t r = call("GET", "/jobs/overview", NULL);
    assert_int_equal(r.rr_status, 200);
    assert_string_equal(jstr(&r, "route"), "overview");
    eddy__rest_result_close(&r);

    r = call("GET", "/jobs/overvie", NULL);
    assert_string_equal(jstr(&r, "route"), "job");
    eddy__rest_result_close(&r);

    /* Percent-encoding does not dodge the exact segment. */
    r = call("GET", "/jobs/%6Fverview", NULL);
    assert_string_equal(jstr(&r, "route"), "overview");
    eddy__rest_result_close(&r);

    /* /a/{x}/c and /a/b/{y} both match /a/b/c: the route exact at the
     * first differing position (b) wins, whatever the order added. */
    r = call("GET", "/a/b/c", NULL);
    assert_string_equal(jstr(&r, "route"), "a-b-y");
    eddy__rest_result_close(&r);
    r = call("GET", "/a/z/c", NULL);
    assert_string_equal(jstr(&r, "route"), "a-x-c");
    eddy__rest_result_close(&r);
}

static void test_404_405_head(void **state)
{
    EDDY_UNUSED(state);
    eddy__rest_result_t r = call("GET", "/foo", NULL);
    assert_int_equal(r.rr_status, 404);
    assert_string_equal(eddy__rest_error_text(&r),
                        "no such endpoint: GET /foo");
    eddy__rest_result_close(&r);

    r = call("GET", "/jobs/x/status/more", NULL);
    assert_int_equal(r.rr_status, 404);
    eddy__rest_result_close(&r);

    r = call("POST", "/jobs/abc/status", NULL);
    assert_int_equal(r.rr_status, 405);
    assert_string_equal(eddy__rest_error_text(&r),
                        "method POST is not allowed for /jobs/abc/status "
                        "(allowed: GET, HEAD)");
    eddy__rest_result_close(&r);

    char out[4096];
    const char req[] = "PUT /jobs/abc/cancel HTTP/1.1\r\nHost: x\r\n"
                       "Content-Length: 0\r\nConnection: close\r\n\r\n";
    assert_int_equal(raw_request(req, sizeof(req) - 1, out, sizeof(out)), 405);
    TU_ASSERT_CONTAINS(out, "\r\nAllow: POST\r\n");
    TU_ASSERT_CONTAINS(out, "\r\nCache-Control: no-store\r\n");
    TU_ASSERT_CONTAINS(out, "Content-Type: application/json");

    /* HEAD is GET without a body. */
    const char head[] = "HEAD /jobs/abc/status HTTP/1.1\r\nHost: x\r\n"
                        "Connection: close\r\n\r\n";
    assert_int_equal(raw_request(head, sizeof(head) - 1, out, sizeof(out)),
                     200);
    const char *end = strstr(out, "\r\n\r\n");
    assert_non_null(end);
    assert_string_equal(end, "\r\n\r\n");

    /* Other helpers: text, redirect, an error message that is not UTF-8. */
    r = call("GET", "/metrics", NULL);
    assert_int_equal(r.rr_status, 200);
    assert_null(r.rr_json);
    assert_string_equal(r.rr_body, "eddy_task_managers 2\n");
    eddy__rest_result_close(&r);
    assert_int_equal(raw_get("/redirect", out, sizeof(out)), 302);
    TU_ASSERT_CONTAINS(out, "\r\nLocation: /overview\r\n");
    r = call("POST", "/jobs/j1/error", NULL);
    assert_int_equal(r.rr_status, 409);
    assert_string_equal(eddy__rest_error_text(&r), "job j1 is ?? busy");
    eddy__rest_result_close(&r);
}

/* ---- bodies ---- */

static void test_json_body(void **state)
{
    EDDY_UNUSED(state);
    json_t *in = json_pack("{s:i, s:s}", "parallelism", 3, "name", "wc");
    eddy__rest_result_t r = call("POST", "/json", in);
    json_decref(in);
    assert_int_equal(r.rr_status, 201);
    assert_int_equal(
        json_integer_value(json_object_get(r.rr_json, "parallelism")), 3);
    assert_string_equal(jstr(&r, "name"), "wc");
    assert_true(json_is_true(json_object_get(r.rr_json, "seen")));
    eddy__rest_result_close(&r);

    /* No body: {}. */
    r = call("POST", "/json", NULL);
    assert_int_equal(r.rr_status, 201);
    assert_int_equal(json_object_size(r.rr_json), 1);
    eddy__rest_result_close(&r);

    /* Not an object. */
    in = json_pack("[i]", 1);
    r = call("POST", "/json", in);
    json_decref(in);
    assert_int_equal(r.rr_status, 400);
    assert_string_equal(eddy__rest_error_text(&r),
                        "the request body must be a JSON object");
    eddy__rest_result_close(&r);

    /* Malformed: the message says where. */
    char out[4096];
    const char bad[] = "POST /json HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: 12\r\nConnection: close\r\n\r\n"
                       "{\"a\": 1,, 2}";
    assert_int_equal(raw_request(bad, sizeof(bad) - 1, out, sizeof(out)), 400);
    TU_ASSERT_CONTAINS(out, "{\"error\":\"malformed JSON at line 1 column 9: ");
}

static void test_body_too_big(void **state)
{
    EDDY_UNUSED(state);
    char out[4096];
    /* Content-Length above the limit: refused before the body is read. */
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                     "Content-Type: application/json\r\n\r\n",
                     MAX_BODY + 1);
    int fd = raw_connect();
    assert_true(raw_send(fd, req, (size_t)n));
    assert_int_equal(raw_read(fd, out, sizeof(out)), 413);
    TU_ASSERT_CONTAINS(out, "the request body is larger than the limit of "
                            "4 KiB");
    close(fd);
    int before = atomic_load(&g_calls);

    /* A body exactly at the limit is fine. */
    char *big = malloc(MAX_BODY + 512);
    int hl = snprintf(big, 512,
                      "POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n{\"k\":\"",
                      MAX_BODY);
    int fill = MAX_BODY - 8;
    memset(big + hl, 'a', (size_t)fill);
    memcpy(big + hl + fill, "\"}", 2);
    assert_int_equal(
        raw_request(big, (size_t)(hl + fill + 2), out, sizeof(out)), 201);
    free(big);

    /* Chunked, a little over: the rest is drained and a 413 answered. */
    fd = raw_connect();
    const char head[] = "POST /json HTTP/1.1\r\nHost: x\r\n"
                        "Transfer-Encoding: chunked\r\nConnection: close\r\n"
                        "\r\n";
    assert_true(raw_send(fd, head, sizeof(head) - 1));
    char chunk[2100];
    memset(chunk, ' ', sizeof(chunk));
    memcpy(chunk, "7d0\r\n", 5); /* 2000 bytes */
    memcpy(chunk + 5 + 2000, "\r\n", 2);
    for (int i = 0; i < 3; i++) {
        assert_true(raw_send(fd, chunk, 5 + 2000 + 2));
    }
    assert_true(raw_send(fd, "0\r\n\r\n", 5));
    assert_int_equal(raw_read(fd, out, sizeof(out)), 413);
    close(fd);

    /* Chunked, far over: the server stops reading and closes. */
    fd = raw_connect();
    assert_true(raw_send(fd, head, sizeof(head) - 1));
    char *mb = malloc(65536 + 16);
    int cl = snprintf(mb, 16, "10000\r\n");
    memset(mb + cl, 'x', 65536);
    memcpy(mb + cl + 65536, "\r\n", 2);
    bool closed = false;
    for (int i = 0; i < 128 && !closed; i++) { /* up to 8 MiB */
        closed = !raw_send(fd, mb, (size_t)cl + 65536 + 2);
    }
    free(mb);
    assert_true(closed);
    close(fd);
    /* None of it reached a handler, and the server still serves. */
    assert_int_equal(atomic_load(&g_calls), before + 1);
    assert_server_alive();
}

/* ---- uploads ---- */

/* Bytes that look like boundaries in part: CRLF and runs of dashes. */
static void fill_tricky(unsigned char *p, size_t n, uint64_t seed)
{
    static const char frag[] = "\r\n--------------------------";
    for (size_t i = 0; i < n;) {
        uint64_t r = tu_rand(&seed);
        if (r % 16 == 0 && i + sizeof(frag) < n) {
            size_t k = 2 + (size_t)(r >> 8) % (sizeof(frag) - 2);
            memcpy(p + i, frag, k);
            i += k;
        } else {
            p[i++] = (unsigned char)(r >> 24);
        }
    }
}

static void test_multipart_upload(void **state)
{
    EDDY_UNUSED(state);
    size_t n = 200 * 1024 + 7;
    unsigned char *data = malloc(n);
    fill_tricky(data, n, 42);
    char src[700], kept[700];
    snprintf(src, sizeof(src), "%s/wordcount.so", g_dir);
    snprintf(kept, sizeof(kept), "%s/kept.so", g_dir);
    tu_write_file(src, data, n);

    const char *names[] = {"parallelism", "keep_as", "args"};
    const char *values[] = {"4", kept, "--in topic \"a\" \xc3\xa9"};
    eddy__rest_result_t r;
    eddy_error_t err;
    TU_ASSERT_OK(eddy__rest_upload(g_base, "/upload", "job_file", src, names,
                                   values, 3, CALL_MS, &r, &err),
                 &err);
    assert_int_equal(r.rr_status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.rr_json, "parts")),
                     4);
    eddy__rest_result_close(&r);

    eddy__mutex_lock(&g_seen.us_mu);
    assert_int_equal(g_seen.us_nparts, 4);
    assert_string_equal(g_seen.us_name[0], "job_file");
    assert_true(g_seen.us_has_filename[0]);
    assert_string_equal(g_seen.us_filename[0], "wordcount.so");
    assert_int_equal(g_seen.us_size[0], (int64_t)n);
    assert_true(g_seen.us_path_existed[0]); /* 0600, size as reported */
    assert_true(strncmp(g_seen.us_path[0], g_up, strlen(g_up)) == 0);
    assert_string_equal(g_seen.us_name[1], "parallelism");
    assert_false(g_seen.us_has_filename[1]);
    assert_string_equal(g_seen.us_value[1], "4");
    assert_int_equal(g_seen.us_value_len[1], 1);
    assert_string_equal(g_seen.us_value[2], kept);
    assert_string_equal(g_seen.us_value[3], values[2]);
    eddy__mutex_unlock(&g_seen.us_mu);

    /* The renamed file is byte-exact; nothing is left in the upload dir. */
    size_t got_len;
    char *got = tu_read_file(kept, &got_len);
    TU_ASSERT_BYTES(got, got_len, data, n);
    free(got);
    assert_int_equal(count_dir(g_up), 0);

    /* Not renamed: the server removes it after the handler. */
    TU_ASSERT_OK(eddy__rest_upload(g_base, "/upload", "job_file", src, names,
                                   values, 1, CALL_MS, &r, &err),
                 &err);
    assert_int_equal(r.rr_status, 200);
    eddy__rest_result_close(&r);
    eddy__mutex_lock(&g_seen.us_mu);
    assert_int_equal(g_seen.us_nparts, 2);
    assert_true(g_seen.us_path_existed[0]);
    struct stat st;
    assert_int_not_equal(stat(g_seen.us_path[0], &st), 0);
    eddy__mutex_unlock(&g_seen.us_mu);
    assert_int_equal(count_dir(g_up), 0);
    free(data);
}

/* A hand-made multipart body, sent one byte per segment so that every
 * delimiter and header is split across reads. */
static void test_multipart_byte_by_byte(void **state)
{
    EDDY_UNUSED(state);
    const char body[] = "preamble to ignore\r\n"
                        "--XyZ\r\n"
                        "Content-Disposition: form-data; name=\"note\"\r\n"
                        "\r\n"
                        "line1\r\n--XyY is not a boundary: --Xy\r\n-\r\n"
                        "--XyZ  \r\n" /* transport padding */
                        "content-disposition: form-data; "
                        "filename=\"C:\\\\evil\\\\..\\\\x.so\"; "
                        "name=job_file\r\n"
                        "Content-Type: application/octet-stream\r\n"
                        "\r\n"
                        "\x7f"
                        "ELF\r\n\r\n--X\r\n\x00\x01\r\n"
                        "--XyZ--\r\n"
                        "epilogue\r\n";
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      "multipart/form-data; boundary=\"XyZ\"\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      sizeof(body) - 1);
    int fd = raw_connect();
    assert_true(raw_send(fd, head, (size_t)hl));
    for (size_t i = 0; i < sizeof(body) - 1; i++) {
        assert_true(raw_send(fd, body + i, 1));
    }
    char out[4096];
    assert_int_equal(raw_read(fd, out, sizeof(out)), 200);
    close(fd);
    eddy__mutex_lock(&g_seen.us_mu);
    assert_int_equal(g_seen.us_nparts, 2);
    assert_string_equal(g_seen.us_name[0], "note");
    assert_string_equal(g_seen.us_value[0],
                        "line1\r\n--XyY is not a boundary: --Xy\r\n-");
    assert_string_equal(g_seen.us_name[1], "job_file");
    assert_string_equal(g_seen.us_filename[1], "C:\\evil\\..\\x.so");
    assert_int_equal(g_seen.us_size[1], 15);
    assert_true(g_seen.us_path_existed[1]);
    eddy__mutex_unlock(&g_seen.us_mu);
    assert_int_equal(count_dir(g_up), 0);
}

static void test_upload_too_big(void **state)
{
    EDDY_UNUSED(state);
    int before = atomic_load(&g_calls);
    size_t n = (size_t)MAX_UPLOAD + 1;
    unsigned char *data = malloc(n);
    fill_tricky(data, n, 7);
    char src[700];
    snprintf(src, sizeof(src), "%s/big.so", g_dir);
    tu_write_file(src, data, n);
    free(data);

    /* The client sends a Content-Length: refused up front. */
    eddy__rest_result_t r;
    eddy_error_t err;
    TU_ASSERT_OK(eddy__rest_upload(g_base, "/upload", "job_file", src, NULL,
                                   NULL, 0, CALL_MS, &r, &err),
                 &err);
    assert_int_equal(r.rr_status, 413);
    assert_string_equal(eddy__rest_error_text(&r),
                        "the upload is larger than the limit of 256 KiB");
    eddy__rest_result_close(&r);
    assert_int_equal(count_dir(g_up), 0);

    /* Chunked: found while streaming; the partial file is deleted. */
    int fd = raw_connect();
    const char head[] =
        "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: multipart/form-data; boundary=B0\r\n"
        "Connection: close\r\n\r\n";
    const char part[] = "--B0\r\nContent-Disposition: form-data; "
                        "name=\"job_file\"; filename=\"a.so\"\r\n\r\n";
    char hdr[32];
    assert_true(raw_send(fd, head, sizeof(head) - 1));
    int hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", sizeof(part) - 1);
    assert_true(raw_send(fd, hdr, (size_t)hl));
    assert_true(raw_send(fd, part, sizeof(part) - 1));
    assert_true(raw_send(fd, "\r\n", 2));
    char chunk[8192 + 16];
    hl = snprintf(chunk, 16, "2000\r\n");
    memset(chunk + hl, 'z', 8192);
    memcpy(chunk + hl + 8192, "\r\n", 2);
    /* 40 x 8 KiB: over the 256 KiB limit by 64 KiB, under the drain cap. */
    for (int i = 0; i < 40; i++) {
        assert_true(raw_send(fd, chunk, (size_t)hl + 8192 + 2));
        if (i == 8) {
            /* The partial file exists while the upload is in progress. */
            assert_true(tu_wait_until(upload_dir_has_file, NULL, 2000));
        }
    }
    assert_true(raw_send(fd, "0\r\n\r\n", 5));
    char out[4096];
    assert_int_equal(raw_read(fd, out, sizeof(out)), 413);
    close(fd);
    assert_true(tu_wait_until(upload_dir_empty, NULL, 2000));
    assert_int_equal(atomic_load(&g_calls), before);
    assert_server_alive();
}

static void test_malformed_multipart(void **state)
{
    EDDY_UNUSED(state);
    int before = atomic_load(&g_calls);
    static const struct {
        const char *ctype;
        const char *body;
        const char *msg;
    } cases[] = {
        {"multipart/form-data", "--x\r\n", "no boundary"},
        {"multipart/form-data; boundary=", "--x\r\n", "no boundary"},
        {"multipart/form-data; boundary=\"B1", "", "bad Content-Type"},
        /* Truncated: the file part never ends. */
        {"multipart/form-data; boundary=B1",
         "--B1\r\nContent-Disposition: form-data; name=\"f\"; "
         "filename=\"f.so\"\r\n\r\nsome bytes",
         "ends before the closing boundary"},
        /* Truncated inside the headers. */
        {"multipart/form-data; boundary=B1",
         "--B1\r\nContent-Disposition: form-da",
         "ends before the closing boundary"},
        /* Nothing but a preamble. */
        {"multipart/form-data; boundary=B1", "hello",
         "ends before the closing boundary"},
        {"multipart/form-data; boundary=B1",
         "--B1\r\nContent-Disposition: form-data\r\n\r\nv\r\n--B1--",
         "no Content-Disposition name"},
        {"multipart/form-data; boundary=B1",
         "--B1\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n"
         "--B1--",
         "not form-data"},
        {"multipart/form-data; boundary=B1",
         "--B1garbage\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n"
         "--B1--",
         "bad boundary line"},
        {"multipart/form-data; boundary=B1",
         "--B1\r\nContent-Disposition: form-data; name=\"a\r\n\r\nv\r\n"
         "--B1--",
         "bad Content-Disposition"},
    };
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(cases); i++) {
        char req[1024], out[4096];
        int n = snprintf(req, sizeof(req),
                         "POST /upload HTTP/1.1\r\nHost: x\r\n"
                         "Content-Type: %s\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n%s",
                         cases[i].ctype, strlen(cases[i].body), cases[i].body);
        int status = raw_request(req, (size_t)n, out, sizeof(out));
        if (status != 400 || strstr(out, cases[i].msg) == NULL) {
            fail_msg("case %zu: expected 400 with \"%s\", got:\n%s", i,
                     cases[i].msg, out);
        }
        TU_ASSERT_CONTAINS(out, "malformed multipart body");
    }
    /* A plain field over 64 KiB. */
    size_t vn = EDDY__HTTP_MAX_FIELD + 1;
    size_t cap = vn + 512;
    char *req = malloc(cap);
    const char pre[] = "--B2\r\nContent-Disposition: form-data; name=big\r\n"
                       "\r\n";
    const char post[] = "\r\n--B2--\r\n";
    size_t blen = sizeof(pre) - 1 + vn + sizeof(post) - 1;
    int hl = snprintf(req, cap,
                      "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      "multipart/form-data; boundary=B2\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                      blen, pre);
    memset(req + hl, 'v', vn);
    memcpy(req + hl + vn, post, sizeof(post) - 1);
    char out[4096];
    assert_int_equal(
        raw_request(req, (size_t)hl + vn + sizeof(post) - 1, out, sizeof(out)),
        413);
    TU_ASSERT_CONTAINS(out, "form field 'big' is larger than 64 KiB");
    free(req);
    assert_int_equal(atomic_load(&g_calls), before);
    assert_true(tu_wait_until(upload_dir_empty, NULL, 2000));
    assert_server_alive();
}

/* ---- hostile paths and bytes ---- */

static void test_path_tricks(void **state)
{
    EDDY_UNUSED(state);
    int before = atomic_load(&g_calls);
    static const char *const bad[] = {
        "/jobs/..%2f..%2fetc/status",
        "/jobs/%2e%2e/status",
        "/jobs/%2E%2e",
        "/jobs/../status",
        "/jobs/./status",
        "/jobs/a..b/status",
        "/jobs/%00/status",
        "/jobs/a%00b",
        "/jobs/a%2fb/status",
        "/jobs/a%2Fb",
        "/jobs//status",
        "//jobs/x",
        "/jobs/%0a/status",
        "/jobs/%7f",
        "/jobs/%/status",
        "/jobs/%4/status",
        "/echo/%zz",
        "/echo/x%",
    };
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(bad); i++) {
        char out[4096];
        int status = raw_get(bad[i], out, sizeof(out));
        if (status != 400 && status != 404) {
            fail_msg("%s: expected 400 or 404, got %d:\n%s", bad[i], status,
                     out);
        }
        TU_ASSERT_CONTAINS(out, "{\"error\":");
    }
    assert_int_equal(atomic_load(&g_calls), before);
    assert_int_equal(atomic_load(&g_bad_param), 0);

    /* The client refuses blanks itself; the server refuses them too. */
    char out[4096];
    assert_int_equal(raw_get("/jobs/a b/status", out, sizeof(out)), 400);
    TU_ASSERT_CONTAINS(out, "blank or control character");
    assert_server_alive();
}

/* Sends bytes that libmicrohttpd waits on (a NUL, blank lines) and hangs
 * up without waiting for an answer. */
static void send_and_hang_up(const void *p, size_t n)
{
    int fd = raw_connect();
    raw_send(fd, p, n);
    close(fd);
}

static void test_garbage(void **state)
{
    EDDY_UNUSED(state);
    int before = atomic_load(&g_calls);
    char out[4096];
    static const char nul[] = "\x00\x01\x02 GARBAGE \xff\xfe\r\n\r\n";
    send_and_hang_up(nul, sizeof(nul) - 1);
    send_and_hang_up("\r\n\r\n\r\n", 6);
    send_and_hang_up("GET /echo/x HTTP/1.1\r\nHo",
                     strlen("GET /echo/x HTTP/1.1\r\nHo"));
    /* libmicrohttpd answers protocol errors itself (short HTML bodies). */
    int status = raw_request("GARBAGE\r\n\r\n", strlen("GARBAGE\r\n\r\n"), out,
                             sizeof(out));
    assert_true(status == 0 || status == 400);
    assert_int_equal(raw_request("GET /echo/x\r\n\r\n",
                                 strlen("GET /echo/x\r\n\r\n"), out,
                                 sizeof(out)),
                     400);
    static const char chunked[] =
        "POST /json HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "\r\nzz\r\n";
    assert_int_equal(
        raw_request(chunked, sizeof(chunked) - 1, out, sizeof(out)), 400);
    /* Headers and URIs larger than the connection's memory. */
    size_t hn = 200 * 1024;
    char *huge = malloc(hn + 64);
    int hl = snprintf(huge, 64, "GET /echo/x HTTP/1.1\r\nX-Big: ");
    memset(huge + hl, 'h', hn);
    memcpy(huge + hl + hn, "\r\n\r\n", 4);
    assert_int_equal(raw_request(huge, (size_t)hl + hn + 4, out, sizeof(out)),
                     431);
    hl = snprintf(huge, 64, "GET /echo/");
    memset(huge + hl, 'a', hn);
    memcpy(huge + hl + hn, " HTTP/1.1\r\n\r\n", 13);
    assert_int_equal(raw_request(huge, (size_t)hl + hn + 13, out, sizeof(out)),
                     414);
    free(huge);

    /* A body that stops half-way: its partial file goes as soon as the
     * server sees the hang-up (well before the 30 s idle timeout). */
    int fd = raw_connect();
    const char part[] = "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: "
                        "multipart/form-data; boundary=B\r\nContent-Length: "
                        "1000\r\n\r\n--B\r\nContent-Disposition: form-data; "
                        "name=f; filename=f\r\n\r\nabc";
    assert_true(raw_send(fd, part, sizeof(part) - 1));
    assert_true(tu_wait_until(upload_dir_has_file, NULL, 2000));
    close(fd);
    assert_true(tu_wait_until(upload_dir_empty, NULL, 2000));
    assert_int_equal(atomic_load(&g_calls), before);
    assert_server_alive();
}

/* ---- handlers that misbehave ---- */

static void test_handler_without_body(void **state)
{
    EDDY_UNUSED(state);
    eddy__rest_result_t r = call("GET", "/nothing", NULL);
    assert_int_equal(r.rr_status, 200);
    assert_string_equal(r.rr_body, "{}");
    assert_true(json_is_object(r.rr_json));
    eddy__rest_result_close(&r);

    r = call("GET", "/nothing404", NULL);
    assert_int_equal(r.rr_status, 404);
    assert_string_equal(r.rr_body, "{\"error\":\"Not Found\"}");
    assert_string_equal(eddy__rest_error_text(&r), "Not Found");
    eddy__rest_result_close(&r);

    r = call("GET", "/status42", NULL);
    assert_int_equal(r.rr_status, 500);
    assert_string_equal(eddy__rest_error_text(&r),
                        "internal error: the handler set HTTP status 42");
    eddy__rest_result_close(&r);

    /* A header that would split the response. */
    char out[4096];
    assert_int_equal(raw_get("/badlocation", out, sizeof(out)), 500);
    assert_null(strstr(out, "Set-Cookie"));
    TU_ASSERT_CONTAINS(out, "the handler set an invalid response header");

    r = call("DELETE", "/nothing204", NULL);
    assert_int_equal(r.rr_status, 204);
    assert_int_equal(r.rr_body_len, 0);
    assert_null(r.rr_json);
    eddy__rest_result_close(&r);
}

/* ---- concurrency ---- */

typedef struct worker {
    pthread_t w_th;
    int w_status;
    int w_rc;
    bool w_ok;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    eddy__rest_result_t r;
    eddy_error_t err;
    w->w_rc = eddy__rest_call(g_base, "GET", "/slow", NULL, CALL_MS, &r, &err);
    if (w->w_rc == 0) {
        w->w_status = r.rr_status;
        w->w_ok = json_is_true(json_object_get(r.rr_json, "ok"));
        eddy__rest_result_close(&r);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    EDDY_UNUSED(state);
    enum { N = 50 };
    worker_t w[N];
    memset(w, 0, sizeof(w));
    uint64_t t0 = tu_now_ms();
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_create(&w[i].w_th, NULL, worker_main, &w[i]),
                         0);
    }
    for (int i = 0; i < N; i++) {
        tu_join(w[i].w_th, 20000, "rest worker");
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].w_rc, 0);
        assert_int_equal(w[i].w_status, 200);
        assert_true(w[i].w_ok);
    }
    /* 50 x 10 ms on 4 threads: concurrent, not one at a time... */
    uint64_t took = tu_now_ms() - t0;
    assert_true(took < (uint64_t)tu_timeout_ms(10000));
}

/* ---- the client's errors ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_client_errors(void **state)
{
    EDDY_UNUSED(state);
    eddy__rest_result_t r;
    eddy_error_t err;
    char base[64], want[256];
    int port = free_port();
    snprintf(base, sizeof(base), "127.0.0.1:%d/", port);
    assert_int_equal(
        eddy__rest_call(base, "GET", "/jobs", NULL, 2000, &r, &err),
        EDDY_ERR_IO);
    snprintf(want, sizeof(want),
             "cannot reach the JobManager at http://127.0.0.1:%d (connection "
             "refused); is it running? start one with `eddy cluster start`",
             port);
    assert_string_equal(err.msg, want);
    assert_true(err.retriable);
    assert_int_equal(r.rr_status, 0);
    assert_null(r.rr_body);

    /* Bad URLs and arguments. */
    assert_int_equal(eddy__rest_call("http://", "GET", "/", NULL, 0, &r, &err),
                     EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(err.msg, "invalid JobManager URL");
    assert_int_equal(eddy__rest_call("ftp://x", "GET", "/", NULL, 0, &r, &err),
                     EDDY_ERR_INVALID);
    assert_int_equal(eddy__rest_call("", "GET", "/", NULL, 0, &r, &err),
                     EDDY_ERR_INVALID);
    assert_int_equal(eddy__rest_call(g_base, "G T", "/", NULL, 0, &r, &err),
                     EDDY_ERR_INVALID);
    assert_int_equal(eddy__rest_call(g_base, "GET", "/a b", NULL, 0, &r, &err),
                     EDDY_ERR_INVALID);

    /* No scheme, trailing slash, a path without its leading slash. */
    snprintf(base, sizeof(base), "127.0.0.1:%d/", eddy__http_port(g_srv));
    TU_ASSERT_OK(
        eddy__rest_call(base, "GET", "echo/x", NULL, CALL_MS, &r, &err), &err);
    assert_int_equal(r.rr_status, 200);
    assert_string_equal(jstr(&r, "path"), "/echo/x");
    eddy__rest_result_close(&r);

    /* Timeout: the handler takes 1.5 s, the call allows 200 ms. */
    assert_int_equal(
        eddy__rest_call(g_base, "GET", "/slower", NULL, 200, &r, &err),
        EDDY_ERR_IO);
    snprintf(want, sizeof(want),
             "the JobManager at %s did not answer within 200 ms (timed out)",
             g_base);
    assert_string_equal(err.msg, want);

    /* Upload of a missing file. */
    assert_int_equal(eddy__rest_upload(g_base, "/upload", "job_file",
                                       "/nonexistent/x.so", NULL, NULL, 0, 0,
                                       &r, &err),
                     EDDY_ERR_NOT_FOUND);
    assert_string_equal(err.msg, "cannot read /nonexistent/x.so: No such file "
                                 "or directory");
}

static void test_download(void **state)
{
    EDDY_UNUSED(state);
    eddy_error_t err;
    char dest[700], tmp[710];
    snprintf(dest, sizeof(dest), "%s/artifact.txt", g_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", dest);
    TU_ASSERT_OK(eddy__rest_download(g_base, "/metrics", dest, CALL_MS, &err),
                 &err);
    size_t n;
    char *got = tu_read_file(dest, &n);
    assert_string_equal(got, "eddy_task_managers 2\n");
    free(got);
    struct stat st;
    assert_int_not_equal(stat(tmp, &st), 0);
    unlink(dest);

    /* 404: the server's message, nothing left behind. */
    assert_int_equal(eddy__rest_download(g_base, "/jobs/x/artifact/none", dest,
                                         CALL_MS, &err),
                     EDDY_ERR_NOT_FOUND);
    char want[512];
    snprintf(want, sizeof(want),
             "cannot download %s/jobs/x/artifact/none: no such endpoint: GET "
             "/jobs/x/artifact/none",
             g_base);
    assert_string_equal(err.msg, want);
    assert_int_not_equal(stat(dest, &st), 0);
    assert_int_not_equal(stat(tmp, &st), 0);

    /* Unreachable. */
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", free_port());
    assert_int_equal(eddy__rest_download(base, "/x", dest, 2000, &err),
                     EDDY_ERR_IO);
    TU_ASSERT_CONTAINS(err.msg, "(connection refused)");
    assert_int_not_equal(stat(tmp, &st), 0);
}

static void test_error_text(void **state)
{
    EDDY_UNUSED(state);
    eddy__rest_result_t r;
    memset(&r, 0, sizeof(r));
    assert_string_equal(eddy__rest_error_text(&r), "no response");
    r = call("GET", "/nothing404", NULL);
    assert_string_equal(eddy__rest_error_text(&r), "Not Found");
    eddy__rest_result_close(&r);
    /* A non-JSON body: status and its first line. */
    r = call("GET", "/texterr", NULL);
    assert_int_equal(r.rr_status, 503);
    assert_null(r.rr_json);
    assert_string_equal(eddy__rest_error_text(&r),
                        "HTTP 503: <html>Bad?gateway");
    eddy__rest_result_close(&r);
    assert_null(r.rr_body);
    /* An empty one: the status alone. */
    r = call("DELETE", "/nothing204", NULL);
    assert_string_equal(eddy__rest_error_text(&r), "HTTP 204");
    eddy__rest_result_close(&r);
}

/* ---- lifecycle (own servers) ---- */

static int count_fds(void)
{
    return count_dir("/proc/self/fd");
}

static void test_lifecycle(void **state)
{
    EDDY_UNUSED(state);
    eddy_error_t err;
    eddy__http_options_t o;
    eddy__http_options_init(&o);
    assert_string_equal(o.ho_bind, "127.0.0.1");
    assert_int_equal(o.ho_max_body, 1 << 20);
    assert_int_equal(o.ho_max_upload, (int64_t)512 << 20);
    assert_int_equal(o.ho_threads, 4);
    assert_int_equal(o.ho_timeout_s, 30);

    /* The port is taken: the error names it. */
    o.ho_port = eddy__http_port(g_srv);
    eddy__http_server_t *s = eddy__http_new(&o, &err);
    assert_non_null(s);
    assert_int_equal(eddy__http_start(s, &err), EDDY_ERR_IO);
    char want[128];
    snprintf(want, sizeof(want),
             "cannot listen on 127.0.0.1:%d: Address already in use",
             o.ho_port);
    assert_string_equal(err.msg, want);
    eddy__http_destroy(s);

    o.ho_port = 0;
    o.ho_upload_dir = "/nonexistent/uploads";
    assert_null(eddy__http_new(&o, &err));
    assert_int_equal(err.code, EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(err.msg, "/nonexistent/uploads");
    o.ho_upload_dir = NULL;
    o.ho_bind = "not-an-address.invalid";
    s = eddy__http_new(&o, &err);
    assert_non_null(s);
    assert_int_equal(eddy__http_start(s, &err), EDDY_ERR_IO);
    TU_ASSERT_CONTAINS(err.msg, "cannot listen on not-an-address.invalid:0");
    eddy__http_destroy(s);
    eddy__http_destroy(NULL);

    /* Start, serve, stop, start again; no descriptor leaks. A file part
     * without an upload directory is refused. */
    o.ho_bind = NULL;
    o.ho_threads = 1;
    int fds = count_fds();
    s = NULL;
    for (int round = 0; round < 3; round++) {
        /* Rounds 0 and 2 use a new server, round 1 restarts the first. */
        if (s == NULL) {
            s = eddy__http_new(&o, &err);
            assert_non_null(s);
            eddy__http_route(s, "POST", "/upload", h_upload, NULL);
            eddy__http_route(s, "GET", "/echo/{a}", h_echo, "mini");
        }
        TU_ASSERT_OK(eddy__http_start(s, &err), &err);
        assert_int_equal(eddy__http_start(s, &err), EDDY_ERR_STATE);
        assert_int_not_equal(eddy__http_port(s), 0);
        char base[64];
        snprintf(base, sizeof(base), "http://127.0.0.1:%d", eddy__http_port(s));
        eddy__rest_result_t r;
        TU_ASSERT_OK(
            eddy__rest_call(base, "GET", "/echo/1", NULL, CALL_MS, &r, &err),
            &err);
        assert_string_equal(jstr(&r, "route"), "mini");
        eddy__rest_result_close(&r);
        char src[700];
        snprintf(src, sizeof(src), "%s/small.so", g_dir);
        tu_write_file(src, "x", 1);
        TU_ASSERT_OK(eddy__rest_upload(base, "/upload", "job_file", src, NULL,
                                       NULL, 0, CALL_MS, &r, &err),
                     &err);
        assert_int_equal(r.rr_status, 500);
        TU_ASSERT_CONTAINS(eddy__rest_error_text(&r), "no upload directory");
        eddy__rest_result_close(&r);
        eddy__http_stop(s);
        eddy__http_stop(s);
        assert_int_not_equal(
            eddy__rest_call(base, "GET", "/echo/1", NULL, 2000, &r, &err), 0);
        if (round != 0) {
            eddy__http_destroy(s);
            s = NULL;
        }
    }
    /* libcurl and libmicrohttpd close some descriptors from their own
     * threads a moment later: give them a second before calling it a
     * leak. */
    for (int i = 0; i < 100 && count_fds() != fds; i++) {
        usleep(10000);
    }
    assert_int_equal(count_fds(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_and_query),
        cmocka_unit_test(test_exact_beats_param),
        cmocka_unit_test(test_404_405_head),
        cmocka_unit_test(test_json_body),
        cmocka_unit_test(test_body_too_big),
        cmocka_unit_test(test_multipart_upload),
        cmocka_unit_test(test_multipart_byte_by_byte),
        cmocka_unit_test(test_upload_too_big),
        cmocka_unit_test(test_malformed_multipart),
        cmocka_unit_test(test_path_tricks),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_handler_without_body),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_client_errors),
        cmocka_unit_test(test_download),
        cmocka_unit_test(test_error_text),
        cmocka_unit_test(test_lifecycle),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
