/*
 * eddy — SHA-256 of files and bytes (OpenSSL's libcrypto), for checking
 * job artifacts after they travel from the JobManager to TaskManagers.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#ifndef EDDY_COMMON_DIGEST_H
#define EDDY_COMMON_DIGEST_H

#include "common/internal.h"

#define EDDY__SHA256_HEX 65 /* 64 lowercase hex digits and a NUL */

/* The SHA-256 of n bytes, as lowercase hex. */
void eddy__sha256_hex(const void *p, size_t n, char hex[EDDY__SHA256_HEX]);

/* The SHA-256 of a file's contents, as lowercase hex. Returns 0, or
 * EDDY_ERR_IO naming the file (missing, unreadable). */
int eddy__sha256_file(const char *path, char hex[EDDY__SHA256_HEX],
                      eddy_error_t *err);

#endif /* EDDY_COMMON_DIGEST_H */
