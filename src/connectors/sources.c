/*
 * eddy — built-in sources: collection, generator, text file.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Sources are polled by their task in batches (oc_poll); between two polls a
 * source is at a consistent position, which is where the task takes
 * checkpoints (oc_snapshot).
 *
 * Positions in checkpoints. Collection and generator subtask i of N emit
 * the indexes i, i+N, ...; each subtask saves (N, i, next index) in UNION
 * list state, so after a restore at any parallelism a subtask knows exactly
 * which indexes were emitted before (index j was iff j < next of old
 * subtask j mod N) and emits the others. The text source saves the byte
 * ranges it has not read yet ([pos, end), pos always at a line start) in
 * SPLIT list state: they are dealt out to the new subtasks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "runtime/runtime.h"

/* ---- index positions (collection, generator) ---- */

#define POS_STATE "positions"

typedef struct idx_pos {
    uint64_t *next; /* per old subtask: its next index; NULL = fresh */
    uint64_t par;   /* old parallelism */
} idx_pos_t;

static int idx_pos_add(void *arg, const void *elem, size_t len)
{
    idx_pos_t *ip = arg;
    eddy__rd_t rd;
    eddy__rd_init(&rd, elem, len);
    uint64_t par = eddy__rd_u64(&rd), sub = eddy__rd_u64(&rd),
             next = eddy__rd_u64(&rd);
    if (!eddy__rd_ok(&rd) || par == 0 || par > 1u << 20 || sub >= par ||
        (ip->par != 0 && ip->par != par)) {
        return EDDY_ERR_FORMAT;
    }
    if (ip->next == NULL) {
        ip->par = par;
        ip->next = eddy__calloc(par, sizeof(uint64_t));
        for (uint64_t i = 0; i < par; i++) {
            ip->next[i] = i; /* a subtask without a position emitted none */
        }
    }
    ip->next[sub] = next;
    return 0;
}

/* Loads restored positions; the first index this subtask must emit. */
static int idx_pos_restore(eddy__op_t *op, idx_pos_t *ip, uint64_t *first)
{
    memset(ip, 0, sizeof(*ip));
    uint64_t s = (uint64_t)op->op_ctx.cx_subtask;
    *first = s;
    int rc = eddy__op_restore_list(op->op_restore, POS_STATE, idx_pos_add, ip);
    if (rc != 0) {
        free(ip->next);
        ip->next = NULL;
        return eddy__op_fail(op, EDDY_ERR_FORMAT,
                             "malformed source position in the checkpoint");
    }
    if (ip->next != NULL && ip->par == (uint64_t)op->op_ctx.cx_parallelism) {
        /* Same parallelism: simply resume (no per-index checks). */
        *first = ip->next[s];
        free(ip->next);
        ip->next = NULL;
    }
    return 0;
}

/* True if index j was emitted before the restore. */
static inline bool idx_pos_emitted(const idx_pos_t *ip, uint64_t j)
{
    return ip->next != NULL && j < ip->next[j % ip->par];
}

static int idx_pos_snapshot(eddy__op_t *op, eddy__op_snap_t *snap,
                            uint64_t next)
{
    eddy__bytes_t b = {0};
    eddy__bytes_put_u64(&b, (uint64_t)op->op_ctx.cx_parallelism);
    eddy__bytes_put_u64(&b, (uint64_t)op->op_ctx.cx_subtask);
    eddy__bytes_put_u64(&b, next);
    int rc = eddy__op_snap_list_add(snap, POS_STATE, EDDY__OPLIST_UNION,
                                    b.b_data, b.b_len);
    eddy__bytes_free(&b);
    return rc;
}

/* ---- collection ---- */

typedef struct collection_config {
    eddy_record_t *records;
    size_t count;
} collection_config_t;

typedef struct collection_state {
    size_t next;
    idx_pos_t restored;
} collection_state_t;

static int collection_open(eddy__op_t *op)
{
    collection_state_t *st = eddy__calloc(1, sizeof(*st));
    op->op_data = st;
    uint64_t first;
    int rc = idx_pos_restore(op, &st->restored, &first);
    st->next = (size_t)first;
    return rc;
}

static int collection_snapshot(eddy__op_t *op, eddy__op_snap_t *snap)
{
    collection_state_t *st = op->op_data;
    return idx_pos_snapshot(op, snap, st->next);
}

static int collection_poll(eddy__op_t *op, int budget)
{
    const collection_config_t *cfg = op->op_node->s_config;
    collection_state_t *st = op->op_data;
    size_t step = (size_t)op->op_ctx.cx_parallelism;
    for (int i = 0; i < budget; i++) {
        if (st->next >= cfg->count) {
            return EDDY__POLL_END;
        }
        if (EDDY_UNLIKELY(idx_pos_emitted(&st->restored, st->next))) {
            st->next += step;
            continue;
        }
        int rc = eddy__emit(op, &cfg->records[st->next]);
        if (rc != 0) {
            return rc;
        }
        st->next += step;
    }
    return EDDY__POLL_MORE;
}

static void free_collection(eddy__op_t *op)
{
    collection_state_t *st = op->op_data;
    if (st != NULL) {
        free(st->restored.next);
    }
    eddy__free(op->op_data);
    op->op_data = NULL;
}

const eddy__op_class_t eddy__collection_source_class = {
    .oc_kind = "Source: Collection",
    .oc_default_parallelism = 1,
    .oc_source = true,
    .oc_open = collection_open,
    .oc_poll = collection_poll,
    .oc_close = free_collection,
    .oc_snapshot = collection_snapshot,
};

eddy_stream_t *eddy_source_collection(eddy_env_t *env,
                                      const eddy_record_t *records,
                                      size_t count)
{
    if (env == NULL) {
        return NULL;
    }
    if (records == NULL && count > 0) {
        eddy_env_fail(env, "eddy_source_collection: records is NULL");
        return NULL;
    }
    eddy_stream_t *s =
        eddy__node_add(env, &eddy__collection_source_class, NULL, 0);
    if (s == NULL) {
        return NULL;
    }
    eddy__arena_t *ar = &env->e_arena;
    collection_config_t *cfg = eddy__arena_alloc(ar, sizeof(*cfg));
    cfg->count = count;
    cfg->records = eddy__arena_alloc(ar, sizeof(eddy_record_t) * (count + 1));
    for (size_t i = 0; i < count; i++) {
        const eddy_record_t *r = &records[i];
        eddy_record_t *d = &cfg->records[i];
        *d = *r;
        d->key =
            r->key != NULL ? eddy__arena_memdup(ar, r->key, r->key_len) : NULL;
        d->value = eddy__arena_memdup(ar, r->value != NULL ? r->value : "",
                                      r->value != NULL ? r->value_len : 0);
        if (r->value == NULL) {
            d->value_len = 0;
        }
    }
    s->s_config = cfg;
    return s;
}

eddy_stream_t *eddy_source_strings(eddy_env_t *env, const char *const *strings,
                                   size_t count)
{
    if (env == NULL) {
        return NULL;
    }
    if (strings == NULL && count > 0) {
        eddy_env_fail(env, "eddy_source_strings: strings is NULL");
        return NULL;
    }
    eddy_record_t *recs = eddy__calloc(count + 1, sizeof(*recs));
    for (size_t i = 0; i < count; i++) {
        if (strings[i] == NULL) {
            free(recs);
            eddy_env_fail(env, "eddy_source_strings: string %zu is NULL", i);
            return NULL;
        }
        recs[i].value = strings[i];
        recs[i].value_len = strlen(strings[i]);
        recs[i].ts = EDDY_TS_NONE;
    }
    eddy_stream_t *s = eddy_source_collection(env, recs, count);
    free(recs);
    return s;
}

/* ---- generator ---- */

typedef struct generator_config {
    uint64_t count; /* 0 = unbounded */
    double rate;    /* records/s in total; 0 = unlimited */
} generator_config_t;

typedef struct generator_state {
    uint64_t next;
    uint64_t emitted;
    uint64_t start_ns;
    double rate; /* this subtask's share */
    idx_pos_t restored;
} generator_state_t;

static int generator_open(eddy__op_t *op)
{
    const generator_config_t *cfg = op->op_node->s_config;
    generator_state_t *st = eddy__calloc(1, sizeof(*st));
    op->op_data = st;
    st->rate = cfg->rate / op->op_ctx.cx_parallelism;
    st->start_ns = eddy__now_ns();
    return idx_pos_restore(op, &st->restored, &st->next);
}

static int generator_snapshot(eddy__op_t *op, eddy__op_snap_t *snap)
{
    generator_state_t *st = op->op_data;
    return idx_pos_snapshot(op, snap, st->next);
}

static void free_generator(eddy__op_t *op)
{
    generator_state_t *st = op->op_data;
    if (st != NULL) {
        free(st->restored.next);
    }
    eddy__free(op->op_data);
    op->op_data = NULL;
}

static int generator_poll(eddy__op_t *op, int budget)
{
    const generator_config_t *cfg = op->op_node->s_config;
    generator_state_t *st = op->op_data;
    eddy_generator_fn fn = (eddy_generator_fn)op->op_node->s_fn;
    uint64_t step = (uint64_t)op->op_ctx.cx_parallelism;
    uint64_t n = (uint64_t)budget;
    if (st->rate > 0) {
        double elapsed = (double)(eddy__now_ns() - st->start_ns) / 1e9;
        uint64_t allowed = (uint64_t)(elapsed * st->rate) + 1;
        if (allowed <= st->emitted) {
            /* Ahead of schedule: ship what we have, then sleep until the
             * next record is due (at most 50 ms, to notice cancellation). */
            int rc = eddy__task_flush(op->op_task);
            if (rc != 0) {
                return rc;
            }
            double wait = ((double)(st->emitted + 1) / st->rate) - elapsed;
            if (wait > 0.05) {
                wait = 0.05;
            }
            if (wait > 0) {
                struct timespec ts = {0, (long)(wait * 1e9)};
                nanosleep(&ts, NULL);
            }
            return EDDY__POLL_MORE;
        }
        n = EDDY_MIN(n, allowed - st->emitted);
    }
    for (uint64_t i = 0; i < n; i++) {
        if (cfg->count != 0 && st->next >= cfg->count) {
            return EDDY__POLL_END;
        }
        if (EDDY_UNLIKELY(idx_pos_emitted(&st->restored, st->next))) {
            st->next += step;
            continue;
        }
        eddy_record_t rec = {NULL, 0, "", 0, EDDY_TS_NONE};
        eddy__op_enter(op);
        int rc = fn(&op->op_ctx, st->next, &rec, op->op_node->s_opaque);
        if (EDDY_UNLIKELY(rc != 0)) {
            return eddy__op_user_rc(op, rc);
        }
        rc = eddy__emit(op, &rec);
        if (EDDY_UNLIKELY(rc != 0)) {
            return rc;
        }
        st->next += step;
        st->emitted++;
    }
    return EDDY__POLL_MORE;
}

const eddy__op_class_t eddy__generator_source_class = {
    .oc_kind = "Source: Generator",
    .oc_source = true,
    .oc_open = generator_open,
    .oc_poll = generator_poll,
    .oc_close = free_generator,
    .oc_snapshot = generator_snapshot,
};

eddy_stream_t *eddy_source_generator(eddy_env_t *env, uint64_t count,
                                     double rate, eddy_generator_fn fn,
                                     void *opaque)
{
    if (env == NULL) {
        return NULL;
    }
    if (fn == NULL) {
        eddy_env_fail(env, "eddy_source_generator: the function must not be "
                           "NULL");
        return NULL;
    }
    if (!(rate >= 0)) {
        eddy_env_fail(env, "eddy_source_generator: rate must be >= 0");
        return NULL;
    }
    eddy_stream_t *s =
        eddy__node_add(env, &eddy__generator_source_class, NULL, 0);
    if (s == NULL) {
        return NULL;
    }
    generator_config_t *cfg = eddy__arena_alloc(&env->e_arena, sizeof(*cfg));
    cfg->count = count;
    cfg->rate = rate;
    s->s_config = cfg;
    s->s_fn = (void (*)(void))fn;
    s->s_opaque = opaque;
    return s;
}

/* ---- text file ---- */

typedef struct text_range {
    int64_t tr_pos; /* offset of the next line's first byte */
    int64_t tr_end; /* lines starting before `end` are ours */
} text_range_t;

typedef struct text_state {
    FILE *f;
    char *line;
    size_t cap;
    off_t pos; /* offset of the next line's first byte */
    off_t end; /* this subtask reads lines starting before `end` */
    char *iobuf;
    bool seekable;
    text_range_t *more; /* restored ranges still to read after this one */
    size_t nmore, cmore;
} text_state_t;

#define TEXT_STATE "ranges"

static int text_range_add(void *arg, const void *elem, size_t len)
{
    text_state_t *st = arg;
    eddy__rd_t rd;
    eddy__rd_init(&rd, elem, len);
    text_range_t r;
    r.tr_pos = (int64_t)eddy__rd_u64(&rd);
    r.tr_end = (int64_t)eddy__rd_u64(&rd);
    if (!eddy__rd_ok(&rd) || r.tr_pos < 0 || r.tr_end < r.tr_pos) {
        return EDDY_ERR_FORMAT;
    }
    if (r.tr_pos < r.tr_end) {
        eddy__grow((void **)&st->more, &st->cmore, st->nmore + 1,
                   sizeof(*st->more));
        st->more[st->nmore++] = r;
    }
    return 0;
}

/* Moves to the next restored range; false when none is left. */
static bool text_next_range(eddy__op_t *op, text_state_t *st, int *rc)
{
    *rc = 0;
    if (st->nmore == 0) {
        return false;
    }
    text_range_t r = st->more[0];
    memmove(st->more, st->more + 1, sizeof(*st->more) * (st->nmore - 1));
    st->nmore--;
    if (fseeko(st->f, (off_t)r.tr_pos, SEEK_SET) != 0) {
        *rc =
            eddy__op_fail(op, EDDY_ERR_IO, "cannot seek in '%s': %s",
                          (const char *)op->op_node->s_config, strerror(errno));
        return false;
    }
    st->pos = (off_t)r.tr_pos;
    st->end = (off_t)r.tr_end;
    return true;
}

static int text_open(eddy__op_t *op)
{
    const char *path = op->op_node->s_config;
    text_state_t *st = eddy__calloc(1, sizeof(*st));
    op->op_data = st;
    st->f = fopen(path, "rb");
    if (st->f == NULL) {
        return eddy__op_fail(op, EDDY_ERR_IO, "cannot open '%s': %s", path,
                             strerror(errno));
    }
    struct stat sb;
    if (fstat(fileno(st->f), &sb) != 0 || S_ISDIR(sb.st_mode)) {
        return eddy__op_fail(op, EDDY_ERR_IO, "cannot read '%s': %s", path,
                             S_ISDIR(sb.st_mode) ? "is a directory"
                                                 : strerror(errno));
    }
    st->iobuf = eddy__malloc(256 * 1024);
    setvbuf(st->f, st->iobuf, _IOFBF, 256 * 1024);
    int s = op->op_ctx.cx_subtask, p = op->op_ctx.cx_parallelism;
    off_t size = S_ISREG(sb.st_mode) ? sb.st_size : 0;
    st->seekable = S_ISREG(sb.st_mode);
    if (op->op_restore != NULL) {
        /* Resume the ranges not read yet (dealt out by the restore). */
        if (eddy__op_restore_list(op->op_restore, TEXT_STATE, text_range_add,
                                  st) != 0) {
            return eddy__op_fail(op, EDDY_ERR_FORMAT,
                                 "malformed text source position in the "
                                 "checkpoint");
        }
        if (st->nmore > 0 && !st->seekable) {
            return eddy__op_fail(op, EDDY_ERR_UNSUPPORTED,
                                 "cannot resume reading '%s' from a "
                                 "checkpoint: it is not a regular file",
                                 path);
        }
        int rc;
        if (!text_next_range(op, st, &rc)) {
            st->pos = st->end = 0;
        }
        return rc;
    }
    if (!st->seekable) {
        /* A pipe or device cannot be split: subtask 0 reads it all. */
        st->end = s == 0 ? INT64_MAX : 0;
        return 0;
    }
    off_t start = (off_t)((int64_t)size * s / p);
    st->end = (off_t)((int64_t)size * (s + 1) / p);
    if (start >= st->end) {
        st->pos = st->end; /* empty range */
        return 0;
    }
    if (start > 0) {
        /* The line containing `start` belongs to us only if it starts
         * exactly there, i.e. the previous byte ends a line. */
        if (fseeko(st->f, start - 1, SEEK_SET) != 0) {
            return eddy__op_fail(op, EDDY_ERR_IO, "cannot seek in '%s': %s",
                                 path, strerror(errno));
        }
        int c = fgetc(st->f);
        st->pos = start;
        if (c != '\n') {
            ssize_t n = getline(&st->line, &st->cap, st->f);
            if (n > 0) {
                st->pos += n;
            }
        }
    }
    return 0;
}

static int text_snapshot(eddy__op_t *op, eddy__op_snap_t *snap)
{
    text_state_t *st = op->op_data;
    eddy__bytes_t b = {0};
    int rc = 0;
    for (size_t i = 0; i <= st->nmore && rc == 0; i++) {
        int64_t pos = i == 0 ? (int64_t)st->pos : st->more[i - 1].tr_pos;
        int64_t end = i == 0 ? (int64_t)st->end : st->more[i - 1].tr_end;
        if (i == 0 && end == INT64_MAX && pos < end) {
            return eddy__op_fail(op, EDDY_ERR_UNSUPPORTED,
                                 "cannot checkpoint a position in '%s': it "
                                 "is not a regular file",
                                 (const char *)op->op_node->s_config);
        }
        eddy__bytes_reset(&b);
        eddy__bytes_put_u64(&b, (uint64_t)EDDY_MIN(pos, end));
        eddy__bytes_put_u64(&b, (uint64_t)end);
        rc = eddy__op_snap_list_add(snap, TEXT_STATE, EDDY__OPLIST_SPLIT,
                                    b.b_data, b.b_len);
    }
    eddy__bytes_free(&b);
    return rc;
}

static int text_poll(eddy__op_t *op, int budget)
{
    text_state_t *st = op->op_data;
    for (int i = 0; i < budget; i++) {
        if (st->pos >= st->end) {
            int rc;
            if (text_next_range(op, st, &rc)) {
                continue;
            }
            return rc != 0 ? rc : EDDY__POLL_END;
        }
        errno = 0;
        ssize_t n = getline(&st->line, &st->cap, st->f);
        if (n < 0) {
            if (ferror(st->f)) {
                return eddy__op_fail(op, EDDY_ERR_IO, "cannot read '%s': %s",
                                     (const char *)op->op_node->s_config,
                                     strerror(errno));
            }
            st->pos = st->end; /* the file is shorter than it was */
            continue;
        }
        st->pos += n;
        size_t len = (size_t)n;
        if (len > 0 && st->line[len - 1] == '\n') {
            len--;
            if (len > 0 && st->line[len - 1] == '\r') {
                len--;
            }
        }
        eddy_record_t rec = {NULL, 0, st->line, len, EDDY_TS_NONE};
        int rc = eddy__emit(op, &rec);
        if (rc != 0) {
            return rc;
        }
    }
    return EDDY__POLL_MORE;
}

static void text_close(eddy__op_t *op)
{
    text_state_t *st = op->op_data;
    if (st == NULL) {
        return;
    }
    if (st->f != NULL) {
        fclose(st->f);
    }
    free(st->iobuf);
    free(st->line);
    free(st->more);
    free(st);
    op->op_data = NULL;
}

const eddy__op_class_t eddy__text_source_class = {
    .oc_kind = "Source: TextFile",
    .oc_source = true,
    .oc_open = text_open,
    .oc_poll = text_poll,
    .oc_close = text_close,
    .oc_snapshot = text_snapshot,
};

eddy_stream_t *eddy_source_text_file(eddy_env_t *env, const char *path)
{
    if (env == NULL) {
        return NULL;
    }
    if (path == NULL || path[0] == '\0') {
        eddy_env_fail(env, "eddy_source_text_file: no path given");
        return NULL;
    }
    eddy_stream_t *s = eddy__node_add(env, &eddy__text_source_class, NULL, 0);
    if (s != NULL) {
        s->s_config = eddy__arena_strdup(&env->e_arena, path);
    }
    return s;
}
