/*
 * eddy — SHA-256 (see digest.h).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "common/digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>

static void to_hex(const unsigned char *md, char hex[EDDY__SHA256_HEX])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

void eddy__sha256_hex(const void *p, size_t n, char hex[EDDY__SHA256_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32) {
        abort(); /* SHA-256 is always there; only memory could fail */
    }
    to_hex(md, hex);
}

int eddy__sha256_file(const char *path, char hex[EDDY__SHA256_HEX],
                      eddy_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return eddy_error_set(err, EDDY_ERR_IO, "cannot read %s: %s", path,
                              strerror(errno));
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        abort();
    }
    unsigned char buf[64 * 1024];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (EVP_DigestUpdate(ctx, buf, n) != 1) {
            abort();
        }
    }
    int rc = 0;
    if (ferror(f)) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot read %s: %s", path,
                            strerror(errno));
    } else {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (EVP_DigestFinal_ex(ctx, md, &len) != 1 || len != 32) {
            abort();
        }
        to_hex(md, hex);
    }
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return rc;
}
