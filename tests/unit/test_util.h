/*
 * eddy — helpers shared by the unit tests.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Asserts that print both sides, deadline-based waiting (never fixed
 * sleeps), joining threads with a deadline, temporary directories, and
 * running an environment with a readable failure message.
 *
 * Timeouts scale with EDDY_TEST_TIMEOUT_MULTIPLIER (like libuv's
 * UV_TEST_TIMEOUT_MULTIPLIER) for slow machines and sanitizer builds.
 *
 * THREADS. cmocka's asserts longjmp and must only be used on the thread that
 * runs the test; helper threads record what they saw in plain or atomic
 * variables that the test thread asserts on after joining.
 */
#ifndef EDDY_TESTS_UNIT_TEST_UTIL_H
#define EDDY_TESTS_UNIT_TEST_UTIL_H

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eddy/eddy.h"

/* ---- asserts ---- */

/* Fails unless `hay` contains `needle`; prints both. */
#define TU_ASSERT_CONTAINS(hay, needle)                                        \
    do {                                                                       \
        const char *tu_h_ = (hay);                                             \
        const char *tu_n_ = (needle);                                          \
        if (tu_h_ == NULL || strstr(tu_h_, tu_n_) == NULL) {                   \
            fail_msg("\"%s\" does not contain \"%s\"",                         \
                     tu_h_ != NULL ? tu_h_ : "(null)", tu_n_);                 \
        }                                                                      \
    } while (0)

/* Fails unless the job call returned 0; prints the error details. */
#define TU_ASSERT_OK(rc, err)                                                  \
    do {                                                                       \
        int tu_rc_ = (rc);                                                     \
        if (tu_rc_ != 0) {                                                     \
            fail_msg("expected success, got %d (%s): %s", tu_rc_,              \
                     eddy_err_name(tu_rc_), (err)->msg);                       \
        }                                                                      \
    } while (0)

/* Byte-exact comparison of a record field with expected bytes. */
#define TU_ASSERT_BYTES(ptr, len, eptr, elen)                                  \
    do {                                                                       \
        size_t tu_l_ = (len), tu_el_ = (elen);                                 \
        assert_int_equal(tu_l_, tu_el_);                                       \
        if (tu_l_ > 0) {                                                       \
            assert_memory_equal((ptr), (eptr), tu_l_);                         \
        }                                                                      \
    } while (0)

/* ---- time and deadlines ---- */

static inline int tu_timeout_ms(int ms)
{
    const char *m = getenv("EDDY_TEST_TIMEOUT_MULTIPLIER");
    int k = m != NULL ? atoi(m) : 1;
    return ms * (k > 0 ? k : 1);
}

static inline uint64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void tu_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * Polls `cond(arg)` until it holds or `timeout_ms` (scaled) passes. Returns
 * whether it held. The poll interval starts small and backs off to 2 ms, so
 * a condition that is already true costs nothing.
 */
static inline bool tu_wait_until(bool (*cond)(void *), void *arg,
                                 int timeout_ms)
{
    uint64_t deadline = tu_now_ms() + (uint64_t)tu_timeout_ms(timeout_ms);
    long delay = 20;
    for (;;) {
        if (cond(arg)) {
            return true;
        }
        if (tu_now_ms() >= deadline) {
            return cond(arg);
        }
        tu_sleep_us(delay);
        if (delay < 2000) {
            delay *= 2;
        }
    }
}

/*
 * Joins a thread, aborting the test binary if it does not finish in time: a
 * hung thread still uses the test's stack, so longjmp-ing out of the test
 * would only turn a hang into memory corruption.
 */
static inline void tu_join(pthread_t th, int timeout_ms, const char *what)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)tu_timeout_ms(timeout_ms);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc = pthread_timedjoin_np(th, NULL, &ts);
    if (rc != 0) {
        fprintf(stderr, "FATAL: thread '%s' did not finish within %d ms (%s)\n",
                what, tu_timeout_ms(timeout_ms), strerror(rc));
        abort();
    }
}

/* ---- files ---- */

/* Creates a fresh temporary directory; `out` gets its path. */
static inline void tu_tmpdir(char *out, size_t size)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    snprintf(out, size, "%s/eddy-unit-XXXXXX", base);
    if (mkdtemp(out) == NULL) {
        fail_msg("mkdtemp(%s): %s", out, strerror(errno));
    }
}

static inline int tu_rm_entry(const char *path, const struct stat *sb, int flag,
                              struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes a directory tree (best effort). */
static inline void tu_rmtree(const char *path)
{
    nftw(path, tu_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        fail_msg("fopen(%s): %s", path, strerror(errno));
    }
    if (len > 0 && fwrite(data, 1, len, f) != len) {
        fail_msg("fwrite(%s): %s", path, strerror(errno));
    }
    if (fclose(f) != 0) {
        fail_msg("fclose(%s): %s", path, strerror(errno));
    }
}

/* Reads a whole file into a malloc'ed, NUL-terminated buffer. */
static inline char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fail_msg("fopen(%s): %s", path, strerror(errno));
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        if (k == 0) {
            break;
        }
        n += k;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* ---- records ---- */

/* A value-only record over a C string. */
static inline eddy_record_t tu_str_rec(const char *s)
{
    eddy_record_t r = {NULL, 0, s, strlen(s), EDDY_TS_NONE};
    return r;
}

/* The collected record's value as a C string (the collect sink adds NULs). */
static inline const char *tu_coll_str(eddy_collection_t *c, size_t i)
{
    const eddy_record_t *r = eddy_collection_get(c, i);
    assert_non_null(r);
    return r->value;
}

/* A deterministic PRNG (xorshift64*), so failures reproduce. */
static inline uint64_t tu_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#endif /* EDDY_TESTS_UNIT_TEST_UTIL_H */
