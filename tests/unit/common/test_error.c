/*
 * eddy — unit tests for src/common/error.c: names, descriptions and the
 * message-carrying error struct (DESIGN §4).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

static void test_err_names(void **state)
{
    (void)state;
    assert_string_equal(eddy_err_name(0), "EDDY_OK");
    assert_string_equal(eddy_err_name(EDDY_ERR_INVALID), "EDDY_ERR_INVALID");
    assert_string_equal(eddy_err_name(EDDY_ERR_NOMEM), "EDDY_ERR_NOMEM");
    assert_string_equal(eddy_err_name(EDDY_ERR_IO), "EDDY_ERR_IO");
    assert_string_equal(eddy_err_name(EDDY_ERR_NOT_FOUND),
                        "EDDY_ERR_NOT_FOUND");
    assert_string_equal(eddy_err_name(EDDY_ERR_NOT_A_JOB),
                        "EDDY_ERR_NOT_A_JOB");
    assert_string_equal(eddy_err_name(EDDY_ERR_USER), "EDDY_ERR_USER");
    assert_string_equal(eddy_err_name(EDDY_ERR_CANCELED), "EDDY_ERR_CANCELED");
    assert_string_equal(eddy_err_name(EDDY_ERR_BUSY), "EDDY_ERR_BUSY");
    assert_string_equal(eddy_err_name(EDDY_ERR_STATE), "EDDY_ERR_STATE");
    assert_string_equal(eddy_err_name(EDDY_ERR_CRASHED), "EDDY_ERR_CRASHED");
    assert_string_equal(eddy_err_name(EDDY_ERR_UNSUPPORTED),
                        "EDDY_ERR_UNSUPPORTED");
    assert_string_equal(eddy_err_name(EDDY_ERR_FORMAT), "EDDY_ERR_FORMAT");
    /* Unknown codes, including positive ones, never return NULL. */
    assert_string_equal(eddy_err_name(-9999), "EDDY_ERR_UNKNOWN");
    assert_string_equal(eddy_err_name(1), "EDDY_ERR_UNKNOWN");
    assert_string_equal(eddy_err_name(INT32_MIN), "EDDY_ERR_UNKNOWN");
}

static void test_err_values_are_stable(void **state)
{
    (void)state;
    /* The numeric values cross process boundaries (exit codes, RPC): pin
     * them. */
    assert_int_equal(EDDY_OK, 0);
    assert_int_equal(EDDY_ERR_INVALID, -1);
    assert_int_equal(EDDY_ERR_NOMEM, -2);
    assert_int_equal(EDDY_ERR_IO, -3);
    assert_int_equal(EDDY_ERR_NOT_FOUND, -4);
    assert_int_equal(EDDY_ERR_NOT_A_JOB, -5);
    assert_int_equal(EDDY_ERR_USER, -6);
    assert_int_equal(EDDY_ERR_CANCELED, -7);
    assert_int_equal(EDDY_ERR_BUSY, -8);
    assert_int_equal(EDDY_ERR_STATE, -9);
    assert_int_equal(EDDY_ERR_CRASHED, -10);
    assert_int_equal(EDDY_ERR_UNSUPPORTED, -11);
    assert_int_equal(EDDY_ERR_FORMAT, -12);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(eddy_strerror(0), "success");
    assert_string_equal(eddy_strerror(EDDY_ERR_INVALID), "invalid argument");
    assert_string_equal(eddy_strerror(EDDY_ERR_NOMEM), "out of memory");
    assert_string_equal(eddy_strerror(EDDY_ERR_IO), "input/output error");
    assert_string_equal(eddy_strerror(EDDY_ERR_NOT_FOUND), "not found");
    assert_string_equal(eddy_strerror(EDDY_ERR_NOT_A_JOB), "not an eddy job");
    assert_string_equal(eddy_strerror(EDDY_ERR_USER), "user function failed");
    assert_string_equal(eddy_strerror(EDDY_ERR_CANCELED), "canceled");
    assert_string_equal(eddy_strerror(EDDY_ERR_BUSY), "resource busy");
    assert_string_equal(eddy_strerror(EDDY_ERR_STATE), "invalid state");
    assert_string_equal(eddy_strerror(EDDY_ERR_CRASHED), "crashed");
    assert_string_equal(eddy_strerror(EDDY_ERR_UNSUPPORTED), "unsupported");
    assert_string_equal(eddy_strerror(EDDY_ERR_FORMAT), "malformed data");
    assert_string_equal(eddy_strerror(-1000), "unknown error");
    assert_string_equal(eddy_strerror(42), "unknown error");
}

static void test_error_set_formats(void **state)
{
    (void)state;
    eddy_error_t err;
    memset(&err, 0x5a, sizeof(err));
    int rc = eddy_error_set(&err, EDDY_ERR_IO, "cannot open '%s': %s (%d)",
                            "/x/y", "gone", 42);
    assert_int_equal(rc, EDDY_ERR_IO);
    assert_int_equal(err.code, EDDY_ERR_IO);
    assert_string_equal(err.msg, "cannot open '/x/y': gone (42)");
    /* The detail flags are reset, whatever the struct held before. */
    assert_int_equal(err.sys_errno, 0);
    assert_int_equal(err.retriable, 0);
    assert_int_equal(err.fatal, 0);

    /* A later set replaces the message completely. */
    rc = eddy_error_set(&err, EDDY_ERR_USER, "x");
    assert_int_equal(rc, EDDY_ERR_USER);
    assert_int_equal(err.code, EDDY_ERR_USER);
    assert_string_equal(err.msg, "x");
}

static void test_error_set_null_returns_code(void **state)
{
    (void)state;
    assert_int_equal(eddy_error_set(NULL, EDDY_ERR_STATE, "ignored %d", 1),
                     EDDY_ERR_STATE);
    assert_int_equal(eddy_error_set(NULL, 0, "ok"), 0);
    eddy_error_clear(NULL); /* must not crash */
}

static void test_error_set_truncates(void **state)
{
    (void)state;
    char big[1000];
    for (size_t i = 0; i < sizeof(big) - 1; i++) {
        big[i] = (char)('a' + i % 26);
    }
    big[sizeof(big) - 1] = '\0';
    eddy_error_t err;
    memset(&err, 0x5a, sizeof(err));
    int rc = eddy_error_set(&err, EDDY_ERR_INVALID, "<%s>", big);
    assert_int_equal(rc, EDDY_ERR_INVALID);
    /* Exactly sizeof(msg) - 1 characters survive, then the terminator. */
    assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
    assert_int_equal(err.msg[sizeof(err.msg) - 1], '\0');
    assert_int_equal(err.msg[0], '<');
    assert_memory_equal(err.msg + 1, big, sizeof(err.msg) - 2);

    /* A message of exactly 255 characters fits without loss. */
    char exact[256];
    memset(exact, 'z', 255);
    exact[255] = '\0';
    eddy_error_set(&err, EDDY_ERR_IO, "%s", exact);
    assert_string_equal(err.msg, exact);
}

static int setv_helper(eddy_error_t *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = eddy_error_setv(err, code, fmt, ap);
    va_end(ap);
    return rc;
}

static void test_error_setv(void **state)
{
    (void)state;
    eddy_error_t err;
    assert_int_equal(setv_helper(&err, EDDY_ERR_FORMAT, "%s=%d", "k", -7),
                     EDDY_ERR_FORMAT);
    assert_int_equal(err.code, EDDY_ERR_FORMAT);
    assert_string_equal(err.msg, "k=-7");
}

static void test_error_clear(void **state)
{
    (void)state;
    eddy_error_t err;
    eddy_error_set(&err, EDDY_ERR_CRASHED, "boom");
    err.sys_errno = 5;
    err.fatal = 1;
    err.retriable = 1;
    eddy_error_clear(&err);
    assert_int_equal(err.code, EDDY_OK);
    assert_int_equal(err.sys_errno, 0);
    assert_int_equal(err.fatal, 0);
    assert_int_equal(err.retriable, 0);
    assert_string_equal(err.msg, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_err_values_are_stable),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_error_set_formats),
        cmocka_unit_test(test_error_set_null_returns_code),
        cmocka_unit_test(test_error_set_truncates),
        cmocka_unit_test(test_error_setv),
        cmocka_unit_test(test_error_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
