/*
 * eddy — errors.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * One error vocabulary for the whole project: functions return 0 on success
 * or a negative eddy_err_t; callers that want details pass an optional
 * eddy_error_t, whose fixed-size message buffer means reporting an error never
 * allocates.
 */
#ifndef EDDY_ERROR_H
#define EDDY_ERROR_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EDDY_EXPORT __attribute__((visibility("default")))
#define EDDY_PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define EDDY_EXPORT
#define EDDY_PRINTF_LIKE(f, a)
#endif

/* X-macro list: name, value, description. */
#define EDDY_ERRNO_MAP(XX)                                                     \
    XX(INVALID, -1, "invalid argument")                                        \
    XX(NOMEM, -2, "out of memory")                                             \
    XX(IO, -3, "input/output error")                                           \
    XX(NOT_FOUND, -4, "not found")                                             \
    XX(NOT_A_JOB, -5, "not an eddy job")                                       \
    XX(USER, -6, "user function failed")                                       \
    XX(CANCELED, -7, "canceled")                                               \
    XX(BUSY, -8, "resource busy")                                              \
    XX(STATE, -9, "invalid state")                                             \
    XX(CRASHED, -10, "crashed")                                                \
    XX(UNSUPPORTED, -11, "unsupported")                                        \
    XX(FORMAT, -12, "malformed data")                                          \
    XX(EXTERNAL, -13, "external system error")                                 \
    XX(TIMEOUT, -14, "timed out")

typedef enum eddy_err {
    EDDY_OK = 0,
#define EDDY_ERR_ENUM_(name, val, s) EDDY_ERR_##name = (val),
    EDDY_ERRNO_MAP(EDDY_ERR_ENUM_)
#undef EDDY_ERR_ENUM_
} eddy_err_t;

/** Details of an error. Always NUL-terminated; empty message when OK. */
typedef struct eddy_error {
    eddy_err_t code;        /* same value the function returned */
    int sys_errno;          /* 0 unless a system call failed */
    unsigned retriable : 1; /* the caller may retry the operation */
    unsigned fatal : 1;     /* the owning object is now unusable */
    char msg[256];          /* human-readable */
} eddy_error_t;

/**
 * @brief Fills `err` (if not NULL) with `code` and a printf-formatted message.
 * @returns `code`, so that `return eddy_error_set(err, ...)` reads naturally.
 */
EDDY_EXPORT int eddy_error_set(eddy_error_t *err, int code, const char *fmt,
                               ...) EDDY_PRINTF_LIKE(3, 4);
EDDY_EXPORT int eddy_error_setv(eddy_error_t *err, int code, const char *fmt,
                                va_list ap);
/** @brief Resets `err` (if not NULL) to EDDY_OK with an empty message. */
EDDY_EXPORT void eddy_error_clear(eddy_error_t *err);
/** @brief The code's symbolic name, e.g. "EDDY_ERR_INVALID". */
EDDY_EXPORT const char *eddy_err_name(int code);
/** @brief A short description of the code, e.g. "invalid argument". */
EDDY_EXPORT const char *eddy_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* EDDY_ERROR_H */
