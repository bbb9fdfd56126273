/*
 * eddy — built-in sinks: print, file, discard, collect.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Print: each subtask formats lines into its own 64 KiB buffer and writes
 * whole buffers to stdout under one process-wide lock, so lines of parallel
 * subtasks never interleave inside a line and each subtask's lines keep their
 * order. Buffers are written when full, when the task goes idle and at the
 * end, so interactive jobs show output promptly without a write per record.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/runtime.h"

/* ---- print ---- */

#define PRINT_BUFFER (64 * 1024)

static pthread_mutex_t stdout_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct print_state {
    char *buf;
    size_t len;
} print_state_t;

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int print_open(eddy__op_t *op)
{
    print_state_t *st = eddy__calloc(1, sizeof(*st));
    st->buf = eddy__malloc(PRINT_BUFFER);
    op->op_data = st;
    return 0;
}

static int print_write(eddy__op_t *op, const char *p, size_t n)
{
    eddy__mutex_lock(&stdout_mu);
    int rc = write_all(STDOUT_FILENO, p, n);
    eddy__mutex_unlock(&stdout_mu);
    if (rc != 0) {
        return eddy__op_fail(op, EDDY_ERR_IO,
                             "cannot write to standard output: %s",
                             strerror(-rc));
    }
    return 0;
}

static int print_flush(eddy__op_t *op)
{
    print_state_t *st = op->op_data;
    if (st == NULL || st->len == 0) {
        return 0;
    }
    size_t n = st->len;
    st->len = 0;
    return print_write(op, st->buf, n);
}

static int print_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    print_state_t *st = op->op_data;
    size_t need = rec->value_len + 1;
    if (EDDY_UNLIKELY(PRINT_BUFFER - st->len < need)) {
        int rc = print_flush(op);
        if (rc != 0) {
            return rc;
        }
        if (need > PRINT_BUFFER) {
            /* A huge line: write it whole, still under the lock so it is
             * never split by another subtask's output. */
            eddy__mutex_lock(&stdout_mu);
            rc = write_all(STDOUT_FILENO, rec->value, rec->value_len);
            if (rc == 0) {
                rc = write_all(STDOUT_FILENO, "\n", 1);
            }
            eddy__mutex_unlock(&stdout_mu);
            if (rc != 0) {
                return eddy__op_fail(op, EDDY_ERR_IO,
                                     "cannot write to standard output: %s",
                                     strerror(-rc));
            }
            return 0;
        }
    }
    if (rec->value_len > 0) { /* an empty value may be NULL */
        memcpy(st->buf + st->len, rec->value, rec->value_len);
    }
    st->len += rec->value_len;
    st->buf[st->len++] = '\n';
    return 0;
}

static void print_close(eddy__op_t *op)
{
    print_state_t *st = op->op_data;
    if (st != NULL) {
        free(st->buf);
        free(st);
        op->op_data = NULL;
    }
}

const eddy__op_class_t eddy__print_sink_class = {
    .oc_kind = "Sink: Print",
    .oc_sink = true,
    .oc_open = print_open,
    .oc_process = print_process,
    .oc_flush = print_flush,
    .oc_close = print_close,
};

/* ---- file ---- */

typedef struct file_state {
    FILE *f;
    char *iobuf;
    char path[4096];
} file_state_t;

static int file_open(eddy__op_t *op)
{
    const char *path = op->op_node->s_config;
    file_state_t *st = eddy__calloc(1, sizeof(*st));
    op->op_data = st;
    if (op->op_ctx.cx_parallelism == 1) {
        snprintf(st->path, sizeof(st->path), "%s", path);
    } else {
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            return eddy__op_fail(op, EDDY_ERR_IO,
                                 "cannot create directory '%s': %s", path,
                                 strerror(errno));
        }
        snprintf(st->path, sizeof(st->path), "%s/part-%d", path,
                 op->op_ctx.cx_subtask);
    }
    st->f = fopen(st->path, "wb");
    if (st->f == NULL) {
        return eddy__op_fail(op, EDDY_ERR_IO,
                             "cannot open '%s' for writing: %s", st->path,
                             strerror(errno));
    }
    st->iobuf = eddy__malloc(256 * 1024);
    setvbuf(st->f, st->iobuf, _IOFBF, 256 * 1024);
    return 0;
}

static int file_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    file_state_t *st = op->op_data;
    /* An empty value may be NULL, which fwrite must not see. */
    if (EDDY_UNLIKELY(
            (rec->value_len > 0 &&
             fwrite(rec->value, 1, rec->value_len, st->f) != rec->value_len) ||
            putc('\n', st->f) == EOF)) {
        return eddy__op_fail(op, EDDY_ERR_IO, "cannot write '%s': %s", st->path,
                             strerror(errno));
    }
    return 0;
}

static int file_end(eddy__op_t *op)
{
    file_state_t *st = op->op_data;
    FILE *f = st->f;
    st->f = NULL;
    if (fclose(f) != 0) {
        return eddy__op_fail(op, EDDY_ERR_IO, "cannot write '%s': %s", st->path,
                             strerror(errno));
    }
    return 0;
}

static void file_close(eddy__op_t *op)
{
    file_state_t *st = op->op_data;
    if (st != NULL) {
        if (st->f != NULL) {
            fclose(st->f);
        }
        free(st->iobuf);
        free(st);
        op->op_data = NULL;
    }
}

const eddy__op_class_t eddy__file_sink_class = {
    .oc_kind = "Sink: File",
    .oc_sink = true,
    .oc_open = file_open,
    .oc_process = file_process,
    .oc_end_input = file_end,
    .oc_close = file_close,
};

/* ---- discard ---- */

static int discard_process(void *opv, const eddy_record_t *rec)
{
    EDDY_UNUSED(opv);
    EDDY_UNUSED(rec);
    return 0;
}

const eddy__op_class_t eddy__discard_sink_class = {
    .oc_kind = "Sink: Discard",
    .oc_sink = true,
    .oc_process = discard_process,
};

/* ---- collect ---- */

struct eddy_collection_s {
    pthread_mutex_t cl_mu;
    eddy_record_t *cl_recs;
    size_t cl_n;
    size_t cl_cap;
    eddy__arena_t cl_arena;
};

eddy_collection_t *eddy_collection_new(void)
{
    eddy_collection_t *c = eddy__calloc(1, sizeof(*c));
    pthread_mutex_init(&c->cl_mu, NULL);
    eddy__arena_init(&c->cl_arena, 256 * 1024);
    return c;
}

void eddy_collection_destroy(eddy_collection_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->cl_recs);
    eddy__arena_close(&c->cl_arena);
    pthread_mutex_destroy(&c->cl_mu);
    free(c);
}

size_t eddy_collection_count(eddy_collection_t *c)
{
    eddy__mutex_lock(&c->cl_mu);
    size_t n = c->cl_n;
    eddy__mutex_unlock(&c->cl_mu);
    return n;
}

const eddy_record_t *eddy_collection_get(eddy_collection_t *c, size_t i)
{
    eddy__mutex_lock(&c->cl_mu);
    const eddy_record_t *r = i < c->cl_n ? &c->cl_recs[i] : NULL;
    eddy__mutex_unlock(&c->cl_mu);
    return r;
}

static int collect_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    eddy_collection_t *c = op->op_node->s_config;
    eddy__mutex_lock(&c->cl_mu);
    eddy__grow((void **)&c->cl_recs, &c->cl_cap, c->cl_n + 1,
               sizeof(*c->cl_recs));
    eddy_record_t *d = &c->cl_recs[c->cl_n];
    *d = *rec;
    /* One arena block per record: key, value and a NUL so tests can treat
     * text values as C strings. */
    char *mem =
        eddy__arena_alloc(&c->cl_arena, rec->key_len + rec->value_len + 2);
    int rc = 0;
    if (mem == NULL) {
        rc = EDDY_ERR_NOMEM;
    } else {
        if (rec->key != NULL) {
            memcpy(mem, rec->key, rec->key_len);
            mem[rec->key_len] = '\0';
            d->key = mem;
            mem += rec->key_len + 1;
        }
        if (rec->value_len > 0) { /* an empty value may be NULL */
            memcpy(mem, rec->value, rec->value_len);
        }
        mem[rec->value_len] = '\0';
        d->value = mem;
        c->cl_n++;
    }
    eddy__mutex_unlock(&c->cl_mu);
    if (rc != 0) {
        return eddy__op_fail(op, rc, "out of memory collecting results");
    }
    return 0;
}

const eddy__op_class_t eddy__collect_sink_class = {
    .oc_kind = "Sink: Collect",
    .oc_sink = true,
    .oc_process = collect_process,
};

/* ---- builders ---- */

eddy_stream_t *eddy_sink_print(eddy_stream_t *in)
{
    return in == NULL
               ? NULL
               : eddy__node_add(in->s_env, &eddy__print_sink_class, &in, 1);
}

eddy_stream_t *eddy_sink_file(eddy_stream_t *in, const char *path)
{
    if (in == NULL) {
        return NULL;
    }
    if (path == NULL || path[0] == '\0') {
        eddy_env_fail(in->s_env, "eddy_sink_file: no path given");
        return NULL;
    }
    eddy_stream_t *s =
        eddy__node_add(in->s_env, &eddy__file_sink_class, &in, 1);
    if (s != NULL) {
        s->s_config = eddy__arena_strdup(&in->s_env->e_arena, path);
    }
    return s;
}

eddy_stream_t *eddy_sink_discard(eddy_stream_t *in)
{
    return in == NULL
               ? NULL
               : eddy__node_add(in->s_env, &eddy__discard_sink_class, &in, 1);
}

eddy_stream_t *eddy_sink_collect(eddy_stream_t *in, eddy_collection_t *coll)
{
    if (in == NULL) {
        return NULL;
    }
    if (coll == NULL) {
        eddy_env_fail(in->s_env, "eddy_sink_collect: collection is NULL");
        return NULL;
    }
    eddy_stream_t *s =
        eddy__node_add(in->s_env, &eddy__collect_sink_class, &in, 1);
    if (s != NULL) {
        s->s_config = coll;
    }
    return s;
}
