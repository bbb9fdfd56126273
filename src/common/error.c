/*
 * eddy — errors: names, descriptions and the message-carrying error struct.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include <stdio.h>
#include <string.h>

#include "eddy/error.h"

int eddy_error_setv(eddy_error_t *err, int code, const char *fmt, va_list ap)
{
    if (err == NULL) {
        return code;
    }
    err->code = (eddy_err_t)code;
    err->sys_errno = 0;
    err->retriable = 0;
    err->fatal = 0;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    return code;
}

int eddy_error_set(eddy_error_t *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    eddy_error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void eddy_error_clear(eddy_error_t *err)
{
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
}

const char *eddy_err_name(int code)
{
    switch (code) {
    case 0:
        return "EDDY_OK";
#define XX(name, val, s)                                                       \
    case val:                                                                  \
        return "EDDY_ERR_" #name;
        EDDY_ERRNO_MAP(XX)
#undef XX
    default:
        return "EDDY_ERR_UNKNOWN";
    }
}

const char *eddy_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define XX(name, val, s)                                                       \
    case val:                                                                  \
        return s;
        EDDY_ERRNO_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}
