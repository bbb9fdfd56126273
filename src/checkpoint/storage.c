/*
 * eddy — checkpoint storage on a file system.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/storage.h"
#include "common/bytes.h"

int eddy__mkdirs(const char *path, eddy_error_t *err)
{
    char *p = eddy__strdup(path);
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') {
            continue;
        }
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int rc = eddy_error_set(err, EDDY_ERR_IO,
                                    "cannot create directory %s: %s", p,
                                    strerror(errno));
            free(p);
            return rc;
        }
        p[i] = c;
    }
    free(p);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return eddy_error_set(err, EDDY_ERR_IO, "%s is not a directory", path);
    }
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    EDDY_UNUSED(sb);
    EDDY_UNUSED(flag);
    EDDY_UNUSED(ftw);
    remove(path);
    return 0;
}

int eddy__rmtree(const char *path)
{
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
        return EDDY_ERR_IO;
    }
    return 0;
}

int eddy__sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int eddy__write_file_atomic(const char *dir, const char *name, const void *data,
                            size_t len, eddy_error_t *err)
{
    char tmp[4096], final[4096];
    eddy__fmt(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    eddy__fmt(final, sizeof(final), "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return eddy_error_set(err, EDDY_ERR_IO, "cannot create %s: %s", tmp,
                              strerror(errno));
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return eddy_error_set(err, EDDY_ERR_IO, "cannot write %s: %s", tmp,
                                  strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return eddy_error_set(err, EDDY_ERR_IO, "cannot sync %s: %s", tmp,
                              strerror(errno));
    }
    if (rename(tmp, final) != 0) {
        unlink(tmp);
        return eddy_error_set(err, EDDY_ERR_IO, "cannot rename %s: %s", tmp,
                              strerror(errno));
    }
    /* The rename is durable once the directory is synced. */
    eddy__sync_dir(dir);
    return 0;
}

int eddy__read_file(const char *path, char **data, size_t *len,
                    eddy_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return eddy_error_set(
            err, errno == ENOENT ? EDDY_ERR_NOT_FOUND : EDDY_ERR_IO,
            "cannot open %s: %s", path, strerror(errno));
    }
    eddy__bytes_t b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        eddy__bytes_put(&b, chunk, n);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        eddy__bytes_free(&b);
        return eddy_error_set(err, EDDY_ERR_IO, "cannot read %s", path);
    }
    eddy__bytes_put_u8(&b, 0);
    *data = (char *)b.b_data;
    *len = b.b_len - 1;
    return 0;
}

/* ---- finding checkpoints ---- */

static bool has_metadata(const char *dir)
{
    char p[4096];
    eddy__fmt(p, sizeof(p), "%s/%s", dir, EDDY__METADATA);
    return access(p, R_OK) == 0;
}

static int64_t chk_id(const char *name)
{
    if (strncmp(name, "chk-", 4) != 0) {
        return -1;
    }
    char *end;
    errno = 0;
    long long v = strtoll(name + 4, &end, 10);
    if (errno != 0 || end == name + 4 || *end != '\0' || v <= 0) {
        return -1;
    }
    return v;
}

typedef struct cand {
    int64_t id;
    char *path;
} cand_t;

static int cand_cmp(const void *a, const void *b)
{
    const cand_t *x = a, *y = b;
    return x->id < y->id ? 1 : x->id > y->id ? -1 : 0;
}

int eddy__ckpt_candidates(const char *path, char ***out)
{
    char abs[4096];
    if (realpath(path, abs) == NULL) {
        *out = NULL;
        return 0;
    }
    if (has_metadata(abs)) {
        *out = eddy__calloc(1, sizeof(char *));
        (*out)[0] = eddy__strdup(abs);
        return 1;
    }
    DIR *d = opendir(abs);
    if (d == NULL) {
        *out = NULL;
        return 0;
    }
    cand_t *c = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int64_t id = chk_id(de->d_name);
        if (id < 0) {
            continue;
        }
        char p[4096];
        eddy__fmt(p, sizeof(p), "%s/%s", abs, de->d_name);
        if (!has_metadata(p)) {
            continue;
        }
        eddy__grow((void **)&c, &cap, n + 1, sizeof(*c));
        c[n].id = id;
        c[n].path = eddy__strdup(p);
        n++;
    }
    closedir(d);
    if (n > 1) {
        qsort(c, n, sizeof(*c), cand_cmp);
    }
    *out = eddy__calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        (*out)[i] = c[i].path;
    }
    free(c);
    return (int)n;
}

void eddy__ckpt_candidates_free(char **c, int n)
{
    for (int i = 0; i < n; i++) {
        free(c[i]);
    }
    free(c);
}

int64_t eddy__ckpt_max_id(const char *job_dir)
{
    DIR *d = opendir(job_dir);
    if (d == NULL) {
        return 0;
    }
    int64_t max = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int64_t id = chk_id(de->d_name);
        if (id > max) {
            max = id;
        }
    }
    closedir(d);
    return max;
}

/* ---- validation ---- */

typedef struct vctx {
    const char *chk_dir;
    char job_dir[4096];
    eddy_error_t *err;
} vctx_t;

static bool safe_rel(const char *rel)
{
    /* Names in a checkpoint are plain relative names; "shared/x" is the
     * only allowed subdirectory. Nothing may climb out. */
    return rel[0] != '/' && strstr(rel, "..") == NULL;
}

static int check_range(vctx_t *v, const char *path, FILE *f, json_int_t off,
                       json_int_t len, json_int_t crc, bool check_crc)
{
    if (off < 0 || len < 0 || len > ((json_int_t)1 << 34)) {
        return eddy_error_set(v->err, EDDY_ERR_FORMAT,
                              "checkpoint %s: bad section of %s", v->chk_dir,
                              path);
    }
    if (!check_crc) {
        return 0;
    }
    unsigned char *buf = eddy__try_malloc((size_t)len + 1);
    if (buf == NULL) {
        return eddy_error_set(v->err, EDDY_ERR_NOMEM, "out of memory");
    }
    int rc = 0;
    if (fseeko(f, (off_t)off, SEEK_SET) != 0 ||
        fread(buf, 1, (size_t)len, f) != (size_t)len) {
        rc = eddy_error_set(v->err, EDDY_ERR_FORMAT,
                            "checkpoint file %s is truncated", path);
    } else if (eddy__crc32c(0, buf, (size_t)len) != (uint32_t)crc) {
        rc = eddy_error_set(v->err, EDDY_ERR_FORMAT,
                            "checkpoint file %s is corrupt (checksum "
                            "mismatch)",
                            path);
    }
    free(buf);
    return rc;
}

static int check_file_obj(vctx_t *v, json_t *o)
{
    const char *rel = json_string_value(json_object_get(o, "file"));
    if (!safe_rel(rel)) {
        return eddy_error_set(v->err, EDDY_ERR_FORMAT,
                              "checkpoint %s: unsafe file name '%s'",
                              v->chk_dir, rel);
    }
    char path[4096];
    eddy__fmt(path, sizeof(path), "%s/%s", v->chk_dir, rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return eddy_error_set(v->err, EDDY_ERR_NOT_FOUND,
                              "checkpoint file %s is missing", path);
    }
    int rc = 0;
    json_t *groups = json_object_get(o, "groups");
    if (json_is_array(groups)) {
        size_t i;
        json_t *g;
        json_array_foreach(groups, i, g)
        {
            json_int_t kg, off, len, crc;
            if (json_unpack(g, "[I, I, I, I]", &kg, &off, &len, &crc) != 0) {
                rc = eddy_error_set(v->err, EDDY_ERR_FORMAT,
                                    "checkpoint %s: malformed handle of %s",
                                    v->chk_dir, path);
                break;
            }
            rc = check_range(v, path, f, off, len, crc, true);
            if (rc != 0) {
                break;
            }
        }
    } else if (json_object_get(o, "crc") != NULL) {
        rc = check_range(v, path, f,
                         json_integer_value(json_object_get(o, "offset")),
                         json_integer_value(json_object_get(o, "length")),
                         json_integer_value(json_object_get(o, "crc")), true);
    }
    fclose(f);
    return rc;
}

static int check_list(vctx_t *v, json_t *a, const char *base)
{
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        const char *rel = json_string_value(e);
        if (!safe_rel(rel)) {
            return eddy_error_set(v->err, EDDY_ERR_FORMAT,
                                  "checkpoint %s: unsafe file name",
                                  v->chk_dir);
        }
        char path[4096];
        eddy__fmt(path, sizeof(path), "%s/%s", base, rel);
        if (access(path, R_OK) != 0) {
            return eddy_error_set(v->err, EDDY_ERR_NOT_FOUND,
                                  "checkpoint file %s is missing", path);
        }
    }
    return 0;
}

static int walk(vctx_t *v, json_t *j)
{
    int rc = 0;
    if (json_is_object(j)) {
        if (json_is_string(json_object_get(j, "file"))) {
            rc = check_file_obj(v, j);
        }
        if (rc == 0 && json_is_array(json_object_get(j, "shared"))) {
            rc = check_list(v, json_object_get(j, "shared"), v->job_dir);
        }
        if (rc == 0 && json_is_array(json_object_get(j, "private"))) {
            rc = check_list(v, json_object_get(j, "private"), v->chk_dir);
        }
        const char *k;
        json_t *val;
        json_object_foreach(j, k, val)
        {
            if (rc != 0) {
                break;
            }
            if (json_is_object(val) || json_is_array(val)) {
                rc = walk(v, val);
            }
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *e;
        json_array_foreach(j, i, e)
        {
            if (rc != 0) {
                break;
            }
            if (json_is_object(e) || json_is_array(e)) {
                rc = walk(v, e);
            }
        }
    }
    return rc;
}

int eddy__ckpt_load(const char *chk_dir, json_t **meta, eddy_error_t *err)
{
    char path[4096];
    eddy__fmt(path, sizeof(path), "%s/%s", chk_dir, EDDY__METADATA);
    char *data;
    size_t len;
    int rc = eddy__read_file(path, &data, &len, err);
    if (rc != 0) {
        return rc;
    }
    json_error_t je;
    json_t *m = json_loadb(data, len, 0, &je);
    free(data);
    if (m == NULL || !json_is_object(m)) {
        json_decref(m);
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "checkpoint metadata %s is corrupt: %s", path,
                              je.text);
    }
    const char *fmt = json_string_value(json_object_get(m, "format"));
    json_int_t ver = json_integer_value(json_object_get(m, "version"));
    if (fmt == NULL || strcmp(fmt, EDDY__METADATA_FORMAT) != 0 ||
        !json_is_object(json_object_get(m, "operators")) ||
        json_integer_value(json_object_get(m, "checkpoint_id")) <= 0) {
        json_decref(m);
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "%s is not eddy checkpoint metadata", path);
    }
    if (ver != EDDY__METADATA_VERSION) {
        json_decref(m);
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "%s has format version %lld; this eddy reads "
                              "version %d",
                              path, (long long)ver, EDDY__METADATA_VERSION);
    }
    vctx_t v = {chk_dir, {0}, err};
    eddy__fmt(v.job_dir, sizeof(v.job_dir), "%s/..", chk_dir);
    rc = walk(&v, json_object_get(m, "operators"));
    if (rc != 0) {
        json_decref(m);
        return rc;
    }
    *meta = m;
    return 0;
}
