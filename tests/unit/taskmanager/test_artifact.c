/*
 * eddy — unit tests for how a TaskManager gets a job's .so
 * (eddy__tm_fetch_artifact, src/taskmanager/taskmanager.c) and for the
 * SHA-256 it checks it with (src/common/digest.c): a download that does
 * not match is deleted and fails naming both digests, a cached copy that
 * does not match is fetched again, one that matches is used without a
 * request. A real HTTP server (src/rest/http.c) serves the bytes.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/digest.h"
#include "rest/http.h"
#include "taskmanager/taskmanager.h"

/* What the server answers GET /artifact with, and how often it did. */
static const char *g_body = "";
static atomic_int g_gets;

static void h_artifact(void *arg, const eddy__http_req_t *req,
                       eddy__http_resp_t *resp)
{
    (void)arg;
    (void)req;
    atomic_fetch_add(&g_gets, 1);
    resp->hs_status = 200;
    resp->hs_body = strdup(g_body);
    resp->hs_body_len = strlen(g_body);
    resp->hs_content_type = "application/octet-stream";
}

typedef struct fx {
    eddy__http_server_t *f_srv;
    char f_base[64];
    char f_dir[512];
    char f_dest[600];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    eddy__http_options_t o;
    eddy__http_options_init(&o);
    o.ho_threads = 1;
    eddy_error_t err = {0};
    f->f_srv = eddy__http_new(&o, &err);
    assert_non_null(f->f_srv);
    eddy__http_route(f->f_srv, "GET", "/artifact", h_artifact, NULL);
    TU_ASSERT_OK(eddy__http_start(f->f_srv, &err), &err);
    snprintf(f->f_base, sizeof(f->f_base), "http://127.0.0.1:%d",
             eddy__http_port(f->f_srv));
    tu_tmpdir(f->f_dir, sizeof(f->f_dir));
    snprintf(f->f_dest, sizeof(f->f_dest), "%s/job.so", f->f_dir);
    atomic_store(&g_gets, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    eddy__http_destroy(f->f_srv);
    tu_rmtree(f->f_dir);
    free(f);
    return 0;
}

static void assert_file(const char *path, const char *want)
{
    size_t len;
    char *got = tu_read_file(path, &len);
    TU_ASSERT_BYTES(got, len, want, strlen(want));
    free(got);
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* FIPS 180-2 test vectors, and a file equal to its bytes. */
static void test_sha256(void **state)
{
    fx_t *f = *state;
    char hex[EDDY__SHA256_HEX];
    eddy__sha256_hex("", 0, hex);
    assert_string_equal(
        hex,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    eddy__sha256_hex("abc", 3, hex);
    assert_string_equal(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two =
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    eddy__sha256_hex(two, strlen(two), hex);
    assert_string_equal(
        hex,
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* A file larger than the read buffer: a million 'a's. */
    char *big = malloc(1000000);
    memset(big, 'a', 1000000);
    tu_write_file(f->f_dest, big, 1000000);
    free(big);
    eddy_error_t err = {0};
    TU_ASSERT_OK(eddy__sha256_file(f->f_dest, hex, &err), &err);
    assert_string_equal(
        hex,
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    char missing[700];
    snprintf(missing, sizeof(missing), "%s/nope", f->f_dir);
    assert_int_equal(eddy__sha256_file(missing, hex, &err), EDDY_ERR_IO);
    TU_ASSERT_CONTAINS(err.msg, "nope");
}

static void test_download_checked(void **state)
{
    fx_t *f = *state;
    char sha[EDDY__SHA256_HEX];
    g_body = "the job's bytes";
    eddy__sha256_hex(g_body, strlen(g_body), sha);
    eddy_error_t err = {0};
    TU_ASSERT_OK(
        eddy__tm_fetch_artifact(f->f_base, "/artifact", sha, f->f_dest, &err),
        &err);
    assert_file(f->f_dest, "the job's bytes");
    assert_int_equal(atomic_load(&g_gets), 1);
    /* Cached and matching: no request. */
    TU_ASSERT_OK(
        eddy__tm_fetch_artifact(f->f_base, "/artifact", sha, f->f_dest, &err),
        &err);
    assert_int_equal(atomic_load(&g_gets), 1);
}

static void test_download_mismatch(void **state)
{
    fx_t *f = *state;
    char sha[EDDY__SHA256_HEX];
    eddy__sha256_hex("what the JobManager has", 23, sha);
    g_body = "something else arrived";
    eddy_error_t err = {0};
    int rc =
        eddy__tm_fetch_artifact(f->f_base, "/artifact", sha, f->f_dest, &err);
    assert_int_equal(rc, EDDY_ERR_IO);
    TU_ASSERT_CONTAINS(err.msg, "does not match its SHA-256");
    TU_ASSERT_CONTAINS(err.msg, sha);
    char got[EDDY__SHA256_HEX];
    eddy__sha256_hex(g_body, strlen(g_body), got);
    TU_ASSERT_CONTAINS(err.msg, got);
    /* Nothing kept, not even the temporary file. */
    assert_false(exists(f->f_dest));
    char tmp[700];
    snprintf(tmp, sizeof(tmp), "%s.tmp", f->f_dest);
    assert_false(exists(tmp));
}

static void test_cached_copy_corrupt(void **state)
{
    fx_t *f = *state;
    char sha[EDDY__SHA256_HEX];
    g_body = "the right bytes";
    eddy__sha256_hex(g_body, strlen(g_body), sha);
    tu_write_file(f->f_dest, "the right byteZ", 15); /* damaged on disk */
    eddy_error_t err = {0};
    TU_ASSERT_OK(
        eddy__tm_fetch_artifact(f->f_base, "/artifact", sha, f->f_dest, &err),
        &err);
    assert_int_equal(atomic_load(&g_gets), 1);
    assert_file(f->f_dest, "the right bytes");
}

/* A JobManager that sends no digest: the cached copy is used as it is. */
static void test_no_digest(void **state)
{
    fx_t *f = *state;
    g_body = "served";
    eddy_error_t err = {0};
    TU_ASSERT_OK(
        eddy__tm_fetch_artifact(f->f_base, "/artifact", "", f->f_dest, &err),
        &err);
    assert_file(f->f_dest, "served");
    g_body = "changed";
    TU_ASSERT_OK(
        eddy__tm_fetch_artifact(f->f_base, "/artifact", "", f->f_dest, &err),
        &err);
    assert_file(f->f_dest, "served");
    assert_int_equal(atomic_load(&g_gets), 1);
    /* A failing download leaves nothing. */
    unlink(f->f_dest);
    int rc =
        eddy__tm_fetch_artifact(f->f_base, "/missing", "", f->f_dest, &err);
    assert_int_equal(rc, EDDY_ERR_NOT_FOUND);
    assert_false(exists(f->f_dest));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_sha256),
        T(test_download_checked),
        T(test_download_mismatch),
        T(test_cached_copy_corrupt),
        T(test_no_digest),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
