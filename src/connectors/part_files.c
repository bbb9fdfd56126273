/*
 * eddy — the exactly-once file sink: part files committed by checkpoints.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN (DESIGN.md §6, two-phase commit with a redoable commit).
 *
 * Each subtask writes records (value + '\n') to a hidden in-progress file
 *   DIR/.part-<subtask>-<token>-<seq>.inprogress
 * where <token> names the job attempt, so files of different attempts never
 * collide. At barrier n (pre-commit) the file is flushed, fsynced and
 * closed; it is now *pending* for n, under its final name
 *   DIR/part-<subtask>-<n>
 * and every pending file is recorded in the checkpoint (operator list state,
 * UNION: every subtask sees all of them). When checkpoint n completes, the
 * subtask renames its pending files of n and before to their final names
 * (commit). A rename is atomic, so a reader never sees a partial final file,
 * and it is redoable: after a crash the restored checkpoint names the
 * pending files, new subtask i commits the i-th share of them (a missing
 * source whose final name exists was committed already), and deletes every
 * in-progress file that the checkpoint does not name and that the current
 * attempt did not write: data after the checkpoint, which the sources replay.
 * Final names carry the checkpoint id, which only grows (also across
 * restores), so they never collide.
 *
 * At the end of a bounded input the task waits for a final checkpoint,
 * which commits the last file like any other. Without checkpoints the sink
 * commits at the end of the input.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/storage.h"
#include "runtime/runtime.h"

#define PENDING_STATE "pending-files"
#define INPROGRESS_SUFFIX ".inprogress"

typedef struct pending {
    int64_t id;
    char *tmp;   /* in-progress name, relative to the directory */
    char *final; /* final name */
} pending_t;

typedef struct pf_state {
    const char *dir;
    char token[48];
    FILE *f;
    char *iobuf;
    char cur[256]; /* current in-progress name */
    uint64_t seq;
    pending_t *pend;
    size_t npend, cpend;
} pf_state_t;

/* Renames a pending file to its final name; already done is fine. */
static int commit_one(eddy__op_t *op, const char *dir, const pending_t *p)
{
    char from[4096], to[4096];
    eddy__fault("commit");
    eddy__fmt(from, sizeof(from), "%s/%s", dir, p->tmp);
    eddy__fmt(to, sizeof(to), "%s/%s", dir, p->final);
    if (rename(from, to) == 0) {
        return 0;
    }
    if (errno == ENOENT && access(to, F_OK) == 0) {
        return 0; /* committed before a crash: the redo is a no-op */
    }
    return eddy__op_fail(op, EDDY_ERR_IO,
                         "cannot commit part file %s as %s: %s", from, to,
                         strerror(errno));
}

static void pending_free(pending_t *p)
{
    free(p->tmp);
    free(p->final);
}

static void add_pending(pf_state_t *st, int64_t id, const char *tmp,
                        const char *final)
{
    eddy__grow((void **)&st->pend, &st->cpend, st->npend + 1,
               sizeof(*st->pend));
    st->pend[st->npend++] =
        (pending_t){id, eddy__strdup(tmp), eddy__strdup(final)};
}

/* Commits pending files with id <= upto (all when upto is INT64_MAX). */
static int commit_upto(eddy__op_t *op, pf_state_t *st, int64_t upto)
{
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < st->npend; i++) {
        if (rc == 0 && st->pend[i].id <= upto) {
            rc = commit_one(op, st->dir, &st->pend[i]);
            if (rc == 0) {
                pending_free(&st->pend[i]);
                continue;
            }
        }
        st->pend[k++] = st->pend[i];
    }
    st->npend = k;
    if (rc == 0 && eddy__sync_dir(st->dir) != 0) {
        rc = eddy__op_fail(op, EDDY_ERR_IO, "cannot sync directory %s: %s",
                           st->dir, strerror(errno));
    }
    return rc;
}

/* Closes the in-progress file (flushed and synced); true if it had data. */
static int close_current(eddy__op_t *op, pf_state_t *st)
{
    if (st->f == NULL) {
        return 0;
    }
    FILE *f = st->f;
    st->f = NULL;
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        return eddy__op_fail(op, EDDY_ERR_IO, "cannot write %s/%s: %s", st->dir,
                             st->cur, strerror(errno));
    }
    return 1;
}

static int pf_snapshot(eddy__op_t *op, eddy__op_snap_t *snap)
{
    pf_state_t *st = op->op_data;
    int64_t id = eddy__op_snap_id(snap);
    int rc = close_current(op, st);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        char final[256];
        eddy__fmt(final, sizeof(final), "part-%d-%lld", op->op_ctx.cx_subtask,
                  (long long)id);
        add_pending(st, id, st->cur, final);
    }
    eddy__bytes_t b = {0};
    rc = 0;
    for (size_t i = 0; i < st->npend && rc == 0; i++) {
        eddy__bytes_reset(&b);
        eddy__bytes_put_u64(&b, (uint64_t)st->pend[i].id);
        eddy__bytes_put_blob(&b, st->pend[i].tmp, strlen(st->pend[i].tmp));
        eddy__bytes_put_blob(&b, st->pend[i].final, strlen(st->pend[i].final));
        rc = eddy__op_snap_list_add(snap, PENDING_STATE, EDDY__OPLIST_UNION,
                                    b.b_data, b.b_len);
    }
    eddy__bytes_free(&b);
    return rc;
}

static int pf_complete(eddy__op_t *op, int64_t id)
{
    return commit_upto(op, op->op_data, id);
}

/* ---- restore ---- */

typedef struct restored {
    pending_t *all;
    size_t n, cap;
} restored_t;

static bool safe_name(const char *s, size_t n)
{
    if (n == 0 || n > 200) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '/' || s[i] == '\0') {
            return false;
        }
    }
    return !(n <= 2 && s[0] == '.');
}

static int restored_add(void *arg, const void *elem, size_t len)
{
    restored_t *r = arg;
    eddy__rd_t rd;
    eddy__rd_init(&rd, elem, len);
    int64_t id = (int64_t)eddy__rd_u64(&rd);
    size_t tl, fl;
    const char *tmp = eddy__rd_blob(&rd, &tl);
    const char *final = eddy__rd_blob(&rd, &fl);
    if (!eddy__rd_ok(&rd) || !safe_name(tmp, tl) || !safe_name(final, fl)) {
        return EDDY_ERR_FORMAT;
    }
    eddy__grow((void **)&r->all, &r->cap, r->n + 1, sizeof(*r->all));
    pending_t *p = &r->all[r->n++];
    p->id = id;
    p->tmp = eddy__malloc(tl + 1);
    memcpy(p->tmp, tmp, tl);
    p->tmp[tl] = '\0';
    p->final = eddy__malloc(fl + 1);
    memcpy(p->final, final, fl);
    p->final[fl] = '\0';
    return 0;
}

/* Deletes in-progress files that neither the checkpoint names nor this
 * attempt wrote. */
static void delete_orphans(pf_state_t *st, const restored_t *r)
{
    DIR *d = opendir(st->dir);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    size_t sl = strlen(INPROGRESS_SUFFIX);
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (strncmp(de->d_name, ".part-", 6) != 0 || n < sl ||
            strcmp(de->d_name + n - sl, INPROGRESS_SUFFIX) != 0 ||
            strstr(de->d_name, st->token) != NULL) {
            continue;
        }
        bool named = false;
        for (size_t i = 0; i < r->n && !named; i++) {
            named = strcmp(r->all[i].tmp, de->d_name) == 0;
        }
        if (!named) {
            char p[4096];
            eddy__fmt(p, sizeof(p), "%s/%s", st->dir, de->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

static int pf_open(eddy__op_t *op)
{
    pf_state_t *st = eddy__calloc(1, sizeof(*st));
    op->op_data = st;
    st->dir = op->op_node->s_config;
    eddy__fmt(st->token, sizeof(st->token), "%s~%d", eddy__op_job_id(op),
              op->op_task->t_job->j_attempt);
    if (mkdir(st->dir, 0755) != 0 && errno != EEXIST) {
        return eddy__op_fail(op, EDDY_ERR_IO, "cannot create directory %s: %s",
                             st->dir, strerror(errno));
    }
    if (op->op_restore == NULL) {
        return 0;
    }
    restored_t r = {0};
    int rc =
        eddy__op_restore_list(op->op_restore, PENDING_STATE, restored_add, &r);
    if (rc != 0) {
        rc = eddy__op_fail(op, EDDY_ERR_FORMAT,
                           "malformed pending-file state in the checkpoint");
    }
    /* Commit this subtask's share of what the checkpoint pre-committed. */
    for (size_t i = 0; i < r.n && rc == 0; i++) {
        if ((int)(i % (size_t)op->op_ctx.cx_parallelism) ==
            op->op_ctx.cx_subtask) {
            rc = commit_one(op, st->dir, &r.all[i]);
        }
    }
    if (rc == 0) {
        delete_orphans(st, &r);
        eddy__sync_dir(st->dir);
    }
    for (size_t i = 0; i < r.n; i++) {
        pending_free(&r.all[i]);
    }
    free(r.all);
    return rc;
}

static int pf_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    pf_state_t *st = op->op_data;
    if (EDDY_UNLIKELY(st->f == NULL)) {
        eddy__fmt(st->cur, sizeof(st->cur), ".part-%d-%s-%llu%s",
                  op->op_ctx.cx_subtask, st->token,
                  (unsigned long long)st->seq++, INPROGRESS_SUFFIX);
        char p[4096];
        eddy__fmt(p, sizeof(p), "%s/%s", st->dir, st->cur);
        st->f = fopen(p, "wbx");
        if (st->f == NULL) {
            return eddy__op_fail(op, EDDY_ERR_IO, "cannot create %s: %s", p,
                                 strerror(errno));
        }
        if (st->iobuf == NULL) {
            st->iobuf = eddy__malloc(256 * 1024);
        }
        setvbuf(st->f, st->iobuf, _IOFBF, 256 * 1024);
    }
    if (EDDY_UNLIKELY(
            (rec->value_len > 0 &&
             fwrite(rec->value, 1, rec->value_len, st->f) != rec->value_len) ||
            putc('\n', st->f) == EOF)) {
        return eddy__op_fail(op, EDDY_ERR_IO, "cannot write %s/%s: %s", st->dir,
                             st->cur, strerror(errno));
    }
    return 0;
}

/* End of a bounded input. With checkpointing a final checkpoint follows
 * (eddy__op_final_checkpoint): it pre-commits the current file and its
 * completion commits it. Without, nothing will be replayed: commit now. */
static int pf_end(eddy__op_t *op)
{
    pf_state_t *st = op->op_data;
    if (eddy__op_final_checkpoint(op)) {
        return st->f != NULL && fflush(st->f) != 0
                   ? eddy__op_fail(op, EDDY_ERR_IO, "cannot write %s/%s: %s",
                                   st->dir, st->cur, strerror(errno))
                   : 0;
    }
    int rc = close_current(op, st);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        char final[256];
        eddy__fmt(final, sizeof(final), "part-%d-final-%s",
                  op->op_ctx.cx_subtask, st->token);
        add_pending(st, INT64_MAX, st->cur, final);
    }
    return commit_upto(op, st, INT64_MAX);
}

static void pf_close(eddy__op_t *op)
{
    pf_state_t *st = op->op_data;
    if (st == NULL) {
        return;
    }
    if (st->f != NULL) {
        fclose(st->f); /* left in progress: a restore deletes it */
    }
    for (size_t i = 0; i < st->npend; i++) {
        pending_free(&st->pend[i]);
    }
    free(st->pend);
    free(st->iobuf);
    free(st);
    op->op_data = NULL;
}

static const eddy__op_class_t part_files_class = {
    .oc_kind = "Sink: PartFiles",
    .oc_sink = true,
    .oc_open = pf_open,
    .oc_process = pf_process,
    .oc_end_input = pf_end,
    .oc_close = pf_close,
    .oc_snapshot = pf_snapshot,
    .oc_checkpoint_complete = pf_complete,
};

eddy_stream_t *eddy_sink_part_files(eddy_stream_t *in, const char *dir)
{
    if (in == NULL) {
        return NULL;
    }
    if (dir == NULL || dir[0] == '\0') {
        eddy_env_fail(in->s_env, "eddy_sink_part_files: no directory given");
        return NULL;
    }
    eddy_stream_t *s = eddy__node_add(in->s_env, &part_files_class, &in, 1);
    if (s != NULL) {
        s->s_config = eddy__arena_strdup(&in->s_env->e_arena, dir);
    }
    return s;
}
