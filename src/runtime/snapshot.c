/*
 * eddy — checkpoints on the task side: barriers, alignment, snapshots,
 * notifications, the asynchronous writer, and restoring operators.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN (DESIGN.md §6, docs/checkpoints.md).
 *
 * Mailbox. The coordinator never calls into a task: it stores the id of a
 * trigger (sources), completion or abort in the task's atomics, raises
 * t_mail and pokes the gate, and the task looks at the mailbox between
 * buffers or source batches (one relaxed load on the hot path).
 *
 * Alignment (exactly-once). When barrier n arrives on a channel, that
 * channel is blocked in the gate (its buffers queue up, then its sender
 * feels back pressure) and the rest of the buffer being read stays in the
 * channel's deserializer. When every channel that has not ended has
 * delivered n, the task snapshots, forwards n, unblocks the channels and
 * drains what their deserializers still hold. A newer barrier m > n
 * abandons n. In at-least-once mode channels are never blocked: the task
 * snapshots when the last barrier n arrives, so records after n on fast
 * channels may be in the snapshot and be replayed after a restore.
 *
 * Snapshot. On the task thread: oc_snapshot of every operator in chain
 * order (operator list state, sinks pre-commit), the synchronous part of
 * every keyed backend (a frozen view), and a copy of the timers. Then the
 * barrier goes out (flushed at once so it does not wait for a full buffer)
 * and processing resumes, while the job's snapshot thread writes the files
 * and acknowledges to the coordinator.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/coordinator.h"
#include "checkpoint/storage.h"
#include "runtime/runtime.h"
#include "runtime/timers.h"

/* ---- operator accessors ---- */

const eddy__config_t *eddy__op_config(const eddy__op_t *op)
{
    return &op->op_node->s_env->e_cfg;
}

bool eddy__op_final_checkpoint(const eddy__op_t *op)
{
    /* Operators driven directly by unit tests have no task. */
    return op->op_task != NULL && op->op_task->t_job != NULL &&
           op->op_task->t_job->j_ckpt != NULL;
}

const char *eddy__op_job_id(const eddy__op_t *op)
{
    return op->op_node->s_env->e_cfg.job_id;
}

const char *eddy__op_uid(const eddy__op_t *op)
{
    return op->op_node->s_uid;
}

static void op_kg_range(const eddy__op_t *op, int *first, int *last)
{
    eddy__key_group_range(op->op_ctx.cx_subtask,
                          op->op_node->s_env->e_max_parallelism,
                          op->op_ctx.cx_parallelism, first, last);
}

/* ---- restore ---- */

typedef struct op_rs {
    eddy__op_restore_t *rs_opr;
    json_t *rs_subtasks; /* the operator's old subtask handles (borrowed) */
    const char *rs_chk_dir;
    bool rs_allow_unknown;
} op_rs_t;

static bool handle_meets(json_t *h, int first, int last)
{
    json_int_t a, b;
    if (json_unpack(json_object_get(h, "kg"), "[I, I]", &a, &b) != 0) {
        return false;
    }
    return a <= last && b >= first;
}

/* Reads one old subtask's operator list state bytes. */
static int read_opstate(json_t *h, const char *chk_dir, eddy__bytes_t *out,
                        eddy_error_t *err)
{
    json_t *o = json_object_get(h, "opstate");
    if (o == NULL || json_is_null(o)) {
        return 0;
    }
    const char *file = json_string_value(json_object_get(o, "file"));
    json_int_t len = json_integer_value(json_object_get(o, "length"));
    json_int_t crc = json_integer_value(json_object_get(o, "crc"));
    if (file == NULL || strstr(file, "..") != NULL || len < 0) {
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "malformed operator state handle in %s", chk_dir);
    }
    char path[4096];
    eddy__fmt(path, sizeof(path), "%s/%s", chk_dir, file);
    char *data;
    size_t n;
    int rc = eddy__read_file(path, &data, &n, err);
    if (rc != 0) {
        return rc;
    }
    if ((json_int_t)n != len || eddy__crc32c(0, data, n) != (uint32_t)crc) {
        free(data);
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "checkpoint file %s is corrupt", path);
    }
    eddy__bytes_put(out, data, n);
    free(data);
    return 0;
}

int eddy__task_restore_prepare(eddy__task_t *t, eddy_error_t *err)
{
    eddy__job_t *job = t->t_job;
    if (job->j_restore == NULL) {
        return 0;
    }
    json_t *ops = json_object_get(job->j_restore, "operators");
    int64_t id =
        json_integer_value(json_object_get(job->j_restore, "checkpoint_id"));
    for (int i = 0; i < t->t_nops; i++) {
        eddy__op_t *op = t->t_ops[i];
        json_t *o = json_object_get(ops, eddy__op_uid(op));
        if (o == NULL) {
            continue; /* a new operator: starts empty */
        }
        op_rs_t *rs = eddy__calloc(1, sizeof(*rs));
        op->op_rs = rs;
        rs->rs_subtasks = json_object_get(o, "subtasks");
        rs->rs_chk_dir = job->j_restore_dir;
        rs->rs_allow_unknown = job->j_env->e_cfg.allow_non_restored;
        size_t n = json_array_size(rs->rs_subtasks);
        eddy__bytes_t *bytes = eddy__calloc(n + 1, sizeof(eddy__bytes_t));
        const eddy__bytes_t **ptrs = eddy__calloc(n + 1, sizeof(void *));
        int rc = 0;
        for (size_t k = 0; k < n && rc == 0; k++) {
            rc = read_opstate(json_array_get(rs->rs_subtasks, k),
                              job->j_restore_dir, &bytes[k], err);
            ptrs[k] = &bytes[k];
        }
        if (rc == 0) {
            rc = eddy__op_restore_new(id, ptrs, (int)n, op->op_ctx.cx_subtask,
                                      op->op_ctx.cx_parallelism, &rs->rs_opr,
                                      err);
        }
        for (size_t k = 0; k < n; k++) {
            eddy__bytes_free(&bytes[k]);
        }
        free(bytes);
        free(ptrs);
        if (rc != 0) {
            return rc;
        }
        op->op_restore = rs->rs_opr;
    }
    return 0;
}

void eddy__task_restore_free(eddy__task_t *t)
{
    for (int i = 0; i < t->t_nops; i++) {
        eddy__op_t *op = t->t_ops[i];
        op_rs_t *rs = op->op_rs;
        if (rs != NULL) {
            eddy__op_restore_free(rs->rs_opr);
            free(rs);
        }
        op->op_rs = NULL;
        op->op_restore = NULL;
    }
}

#ifdef EDDY_HAVE_ROCKSDB_BACKEND
#define ROCKSDB_AVAILABLE 1
#else
#define ROCKSDB_AVAILABLE 0
#endif

int eddy__op_kstate_new(eddy__op_t *op, const eddy__state_spec_t *specs,
                        int nstates, eddy__kstate_t **out)
{
    int first, last;
    op_kg_range(op, &first, &last);
    const eddy__config_t *cfg = eddy__op_config(op);
    eddy__kstate_t *ks = NULL;
    eddy_error_t err = {0};
    if (strcmp(cfg->state_backend, "rocksdb") == 0) {
#if ROCKSDB_AVAILABLE
        char dir[4096];
        eddy__fmt(dir, sizeof(dir), "%s/%s/op%d-%d", cfg->rocksdb_dir,
                  cfg->job_id, op->op_node->s_id, op->op_ctx.cx_subtask);
        eddy__rmtree(dir);
        ks = eddy__rocksdb_kstate_new(specs, nstates, first, last, dir, &err);
        if (ks == NULL) {
            return eddy__op_fail(op, err.code ? err.code : EDDY_ERR_IO,
                                 "cannot open the RocksDB state backend: %s",
                                 err.msg);
        }
#else
        return eddy__op_fail(op, EDDY_ERR_UNSUPPORTED,
                             "state.backend rocksdb is not built in");
#endif
    } else {
        ks = eddy__heap_kstate_new(specs, nstates, first, last);
        if (ks == NULL) {
            return eddy__op_fail(op, EDDY_ERR_NOMEM,
                                 "out of memory creating keyed state");
        }
    }
    op_rs_t *rs = op->op_rs;
    if (rs != NULL) {
        size_t n = json_array_size(rs->rs_subtasks);
        json_t **hs = eddy__calloc(n + 1, sizeof(json_t *));
        int nh = 0;
        for (size_t k = 0; k < n; k++) {
            json_t *h = json_array_get(rs->rs_subtasks, k);
            json_t *kh = json_object_get(h, "keyed");
            if (json_is_object(kh) && handle_meets(h, first, last)) {
                hs[nh++] = kh;
            }
        }
        eddy__restore_src_t src = {hs, nh, rs->rs_chk_dir};
        int rc = 0;
        if (nh > 0) {
            rc = ks->ks_ops->ko_restore(ks, &src, rs->rs_allow_unknown, &err);
        }
        free(hs);
        if (rc != 0) {
            eddy__kstate_destroy(ks);
            return eddy__op_fail(op, rc, "cannot restore keyed state: %s",
                                 err.msg);
        }
    }
    op->op_kstate = ks;
    *out = ks;
    return 0;
}

typedef struct timer_load {
    eddy__timers_t *tl_timers;
    const char *tl_dir;
    eddy_error_t *tl_err;
} timer_load_t;

static int load_timers(void *arg, int kg, const void *p, size_t n)
{
    timer_load_t *tl = arg;
    eddy__rd_t rd;
    eddy__rd_init(&rd, p, n);
    while (!eddy__rd_done(&rd)) {
        int tag = eddy__rd_u8(&rd);
        int dom = eddy__rd_u8(&rd);
        int64_t when = (int64_t)eddy__rd_u64(&rd);
        eddy__skey_t k;
        k.sk_key = eddy__rd_blob(&rd, &k.sk_klen);
        k.sk_ns = eddy__rd_blob(&rd, &k.sk_nslen);
        if (!eddy__rd_ok(&rd) || tag != EDDY__CANON_TIMER ||
            (dom != EDDY__TIME_EVENT && dom != EDDY__TIME_PROCESSING)) {
            return eddy_error_set(tl->tl_err, EDDY_ERR_FORMAT,
                                  "malformed timers (key group %d) in %s", kg,
                                  tl->tl_dir);
        }
        k.sk_hash = eddy__hash64(k.sk_key, k.sk_klen);
        k.sk_kg = kg;
        int rc = eddy__timers_add(tl->tl_timers, dom, when, &k);
        if (rc != 0) {
            return eddy_error_set(tl->tl_err, rc, "cannot restore timers");
        }
    }
    return 0;
}

int eddy__op_timers_new(eddy__op_t *op, eddy__timers_t **out)
{
    eddy__timers_t *tm = eddy__timers_new();
    op_rs_t *rs = op->op_rs;
    if (rs != NULL) {
        int first, last;
        op_kg_range(op, &first, &last);
        eddy_error_t err = {0};
        timer_load_t tl = {tm, rs->rs_chk_dir, &err};
        size_t n = json_array_size(rs->rs_subtasks);
        int rc = 0;
        for (size_t k = 0; k < n && rc == 0; k++) {
            json_t *h = json_array_get(rs->rs_subtasks, k);
            json_t *th = json_object_get(h, "timers");
            if (json_is_object(th) && handle_meets(h, first, last)) {
                rc = eddy__canon_read(th, rs->rs_chk_dir, first, last,
                                      load_timers, &tl, &err);
            }
        }
        if (rc != 0) {
            eddy__timers_destroy(tm);
            return eddy__op_fail(op, rc, "cannot restore timers: %s", err.msg);
        }
        int64_t next = eddy__timers_next(tm, EDDY__TIME_PROCESSING);
        if (next < op->op_next_tick_ms) {
            op->op_next_tick_ms = next;
        }
    }
    op->op_timers = tm;
    *out = tm;
    return 0;
}

/* ---- the snapshot writer ---- */

typedef struct part {
    const char *p_uid;
    int p_node;
    int p_subtask;
    int p_kg_first, p_kg_last;
    eddy__bytes_t p_opstate;
    bool p_has_opstate;
    eddy__ksnap_t *p_ksnap;
    eddy__bytes_t p_timers; /* canonical sections back to back */
    json_t *p_tgroups;      /* [[kg, off, len], ...] into p_timers */
} part_t;

typedef struct item {
    struct item *it_next;
    int64_t it_id;
    int it_task;
    part_t *it_parts;
    int it_nparts;
} item_t;

struct eddy__snapshotter {
    eddy__job_t *s_job;
    pthread_t s_thread;
    pthread_mutex_t s_mu;
    pthread_cond_t s_cv;
    item_t *s_head, *s_tail;
    bool s_stop;
    bool s_drop;
};

static void part_free(part_t *p)
{
    eddy__bytes_free(&p->p_opstate);
    if (p->p_ksnap != NULL) {
        p->p_ksnap->ks_release(p->p_ksnap);
    }
    eddy__bytes_free(&p->p_timers);
    json_decref(p->p_tgroups);
}

static void item_free(item_t *it)
{
    for (int i = 0; i < it->it_nparts; i++) {
        part_free(&it->it_parts[i]);
    }
    free(it->it_parts);
    free(it);
}

static int write_whole(const char *dir, const char *name, const void *data,
                       size_t len, eddy_error_t *err)
{
    char path[4096];
    eddy__fmt(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wbx");
    if (f == NULL) {
        return eddy_error_set(err, EDDY_ERR_IO, "cannot create %s: %s", path,
                              strerror(errno));
    }
    bool ok = fwrite(data, 1, len, f) == len && fflush(f) == 0 &&
              fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        return eddy_error_set(err, EDDY_ERR_IO, "cannot write %s", path);
    }
    return 0;
}

static int write_part(part_t *p, const char *dir, const char *shared,
                      int64_t id, bool savepoint, json_t **out,
                      eddy_error_t *err)
{
    char stem[256], name[300];
    eddy__fmt(stem, sizeof(stem), "op%d-%d", p->p_node, p->p_subtask);
    json_t *h = json_pack("{s:i, s:[i, i]}", "subtask", p->p_subtask, "kg",
                          p->p_kg_first, p->p_kg_last);
    int rc = 0;
    if (p->p_has_opstate) {
        eddy__fmt(name, sizeof(name), "%s.opstate", stem);
        rc = write_whole(dir, name, p->p_opstate.b_data, p->p_opstate.b_len,
                         err);
        if (rc == 0) {
            json_object_set_new(
                h, "opstate",
                json_pack("{s:s, s:i, s:I, s:I}", "file", name, "offset", 0,
                          "length", (json_int_t)p->p_opstate.b_len, "crc",
                          (json_int_t)eddy__crc32c(0, p->p_opstate.b_data,
                                                   p->p_opstate.b_len)));
        }
    }
    if (rc == 0 && p->p_ksnap != NULL) {
        eddy__snap_target_t tg = {dir, shared, stem, id, savepoint};
        json_t *kh = NULL;
        rc = p->p_ksnap->ks_write(p->p_ksnap, &tg, &kh, err);
        if (rc == 0) {
            json_object_set_new(h, "keyed", kh);
        }
    }
    if (rc == 0 && p->p_tgroups != NULL && json_array_size(p->p_tgroups)) {
        eddy__fmt(name, sizeof(name), "%s.timers", stem);
        eddy__canon_writer_t w;
        rc = eddy__canon_open(&w, dir, name, err);
        size_t i;
        json_t *g;
        json_array_foreach(p->p_tgroups, i, g)
        {
            if (rc != 0) {
                break;
            }
            json_int_t kg, off, len;
            json_unpack(g, "[I, I, I]", &kg, &off, &len);
            eddy__canon_begin(&w, (int)kg);
            eddy__bytes_put(eddy__canon_buf(&w), p->p_timers.b_data + off,
                            (size_t)len);
            rc = eddy__canon_end(&w, err);
        }
        json_t *groups = NULL;
        if (rc == 0) {
            rc = eddy__canon_close(&w, &groups, err);
        } else {
            eddy__canon_abort(&w);
        }
        if (rc == 0) {
            json_object_set_new(h, "timers",
                                json_pack("{s:s, s:s, s:[], s:o}", "type",
                                          "canonical", "file", name, "states",
                                          "groups", groups));
        }
    }
    if (rc != 0) {
        json_decref(h);
        return rc;
    }
    *out = h;
    return 0;
}

static void process_item(eddy__snapshotter_t *s, item_t *it)
{
    const eddy__ckpt_port_t *c = s->s_job->j_ckpt;
    char dir[4096], shared[4096];
    bool savepoint = false;
    if (c->cp_dir(c->cp_arg, it->it_id, dir, sizeof(dir), &savepoint) != 0) {
        return; /* aborted meanwhile */
    }
    eddy__fmt(shared, sizeof(shared), "%s/shared", c->cp_job_dir(c->cp_arg));
    json_t *ops = json_object();
    eddy_error_t err = {0};
    int rc = 0;
    for (int i = 0; i < it->it_nparts && rc == 0; i++) {
        json_t *h = NULL;
        rc = write_part(&it->it_parts[i], dir, shared, it->it_id, savepoint, &h,
                        &err);
        if (rc == 0) {
            json_object_set_new(ops, it->it_parts[i].p_uid, h);
        }
    }
    if (rc != 0) {
        json_decref(ops);
        c->cp_decline(c->cp_arg, it->it_id, it->it_task, err.msg);
        return;
    }
    eddy__fault("snapshot");
    c->cp_ack(c->cp_arg, it->it_id, it->it_task, ops);
}

static void *snapshotter_main(void *arg)
{
    eddy__snapshotter_t *s = arg;
    eddy__mutex_lock(&s->s_mu);
    for (;;) {
        while (s->s_head == NULL && !s->s_stop) {
            pthread_cond_wait(&s->s_cv, &s->s_mu);
        }
        item_t *it = s->s_head;
        if (it == NULL) {
            break;
        }
        s->s_head = it->it_next;
        if (s->s_head == NULL) {
            s->s_tail = NULL;
        }
        bool drop = s->s_drop;
        eddy__mutex_unlock(&s->s_mu);
        if (!drop) {
            process_item(s, it);
        }
        item_free(it);
        eddy__mutex_lock(&s->s_mu);
    }
    eddy__mutex_unlock(&s->s_mu);
    return NULL;
}

eddy__snapshotter_t *eddy__snapshotter_new(eddy__job_t *job)
{
    eddy__snapshotter_t *s = eddy__calloc(1, sizeof(*s));
    s->s_job = job;
    pthread_mutex_init(&s->s_mu, NULL);
    pthread_cond_init(&s->s_cv, NULL);
    if (pthread_create(&s->s_thread, NULL, snapshotter_main, s) != 0) {
        pthread_cond_destroy(&s->s_cv);
        pthread_mutex_destroy(&s->s_mu);
        free(s);
        return NULL;
    }
    return s;
}

void eddy__snapshotter_destroy(eddy__snapshotter_t *s, bool drop)
{
    if (s == NULL) {
        return;
    }
    eddy__mutex_lock(&s->s_mu);
    s->s_stop = true;
    s->s_drop = drop;
    pthread_cond_signal(&s->s_cv);
    eddy__mutex_unlock(&s->s_mu);
    pthread_join(s->s_thread, NULL);
    pthread_cond_destroy(&s->s_cv);
    pthread_mutex_destroy(&s->s_mu);
    free(s);
}

static void submit(eddy__snapshotter_t *s, item_t *it)
{
    eddy__mutex_lock(&s->s_mu);
    if (s->s_tail != NULL) {
        s->s_tail->it_next = it;
    } else {
        s->s_head = it;
    }
    s->s_tail = it;
    pthread_cond_signal(&s->s_cv);
    eddy__mutex_unlock(&s->s_mu);
}

/* ---- taking a snapshot on the task thread ---- */

typedef struct tenc_dom {
    eddy__bytes_t *b;
    int dom;
} tenc_dom_t;

static int encode_timer_dom(void *arg, const eddy__timer_t *tm)
{
    tenc_dom_t *e = arg;
    eddy__bytes_put_u8(e->b, EDDY__CANON_TIMER);
    eddy__bytes_put_u8(e->b, (uint8_t)e->dom);
    eddy__bytes_put_u64(e->b, (uint64_t)tm->tm_ts);
    eddy__bytes_put_blob(e->b, tm->tm_key.sk_key, tm->tm_key.sk_klen);
    eddy__bytes_put_blob(e->b, tm->tm_key.sk_ns, tm->tm_key.sk_nslen);
    return 0;
}

static void snapshot_timers(part_t *p, eddy__timers_t *tm)
{
    p->p_tgroups = json_array();
    for (int kg = p->p_kg_first; kg <= p->p_kg_last; kg++) {
        size_t start = p->p_timers.b_len;
        for (int dom = 0; dom < 2; dom++) {
            tenc_dom_t e = {&p->p_timers, dom};
            eddy__timers_for_each(tm, dom, kg, encode_timer_dom, &e);
        }
        if (p->p_timers.b_len > start) {
            json_array_append_new(
                p->p_tgroups,
                json_pack("[i, I, I]", kg, (json_int_t)start,
                          (json_int_t)(p->p_timers.b_len - start)));
        }
    }
}

/* A work item for checkpoint `id` of task t, with one empty part per
 * operator of the chain. */
static item_t *item_new(eddy__task_t *t, int64_t id)
{
    item_t *it = eddy__calloc(1, sizeof(*it));
    it->it_id = id;
    it->it_task = t->t_index;
    it->it_parts = eddy__calloc((size_t)t->t_nops, sizeof(part_t));
    it->it_nparts = t->t_nops;
    for (int i = 0; i < t->t_nops; i++) {
        eddy__op_t *op = t->t_ops[i];
        part_t *p = &it->it_parts[i];
        p->p_uid = eddy__op_uid(op);
        p->p_node = op->op_node->s_id;
        p->p_subtask = op->op_ctx.cx_subtask;
        op_kg_range(op, &p->p_kg_first, &p->p_kg_last);
    }
    return it;
}

/* The parts of every operator of the chain; NULL and a failure recorded on
 * error. */
static item_t *collect(eddy__task_t *t, int64_t id, bool savepoint, int *rcp)
{
    item_t *it = item_new(t, id);
    int rc = 0;
    for (int i = 0; i < t->t_nops && rc == 0; i++) {
        eddy__op_t *op = t->t_ops[i];
        part_t *p = &it->it_parts[i];
        if (op->op_class->oc_snapshot != NULL) {
            eddy__op_snap_t *s = eddy__op_snap_new(id, savepoint);
            eddy__tls_op = op;
            rc = op->op_class->oc_snapshot(op, s);
            if (rc == 0 && !eddy__op_snap_empty(s)) {
                eddy__op_snap_encode(s, &p->p_opstate);
                p->p_has_opstate = true;
            }
            eddy__op_snap_free(s);
            if (rc != 0) {
                rc = eddy__op_user_rc(op, rc);
                break;
            }
        }
        if (op->op_kstate != NULL) {
            if (op->op_kstate->ks_ops->ko_snapshot == NULL) {
                rc = eddy__op_fail(op, EDDY_ERR_UNSUPPORTED,
                                   "the %s state backend cannot snapshot",
                                   op->op_kstate->ks_ops->ko_name);
                break;
            }
            rc = op->op_kstate->ks_ops->ko_snapshot(op->op_kstate, id,
                                                    savepoint, &p->p_ksnap);
            if (rc != 0) {
                rc = eddy__op_fail(op, rc, "cannot snapshot keyed state: %s",
                                   eddy_strerror(rc));
                break;
            }
        }
        if (op->op_timers != NULL) {
            snapshot_timers(p, op->op_timers);
        }
    }
    if (rc != 0) {
        item_free(it);
        *rcp = rc;
        return NULL;
    }
    *rcp = 0;
    return it;
}

static int take_snapshot(eddy__task_t *t, int64_t id, bool savepoint)
{
    eddy__job_t *job = t->t_job;
    int rc;
    item_t *it = collect(t, id, savepoint, &rc);
    if (it == NULL) {
        if (job->j_ckpt != NULL) {
            job->j_ckpt->cp_decline(job->j_ckpt->cp_arg, id, t->t_index,
                                    "a snapshot failed");
        }
        return rc;
    }
    int64_t value = id | (savepoint ? EDDY__BARRIER_SAVEPOINT : 0);
    for (int i = 0; i < t->t_nwriters && rc == 0; i++) {
        rc = eddy__writer_event(t->t_writers[i], EDDY__EL_BARRIER, value);
        if (rc == 0) {
            rc = eddy__writer_flush(t->t_writers[i]);
        }
    }
    t->t_last_snap = id;
    if (t->t_ended) {
        t->t_final_id = id; /* covers everything up to the end */
    }
    if (rc != 0 || job->j_snapper == NULL) {
        item_free(it);
        return rc;
    }
    submit(job->j_snapper, it);
    return 0;
}

/* ---- the mailbox ---- */

static void unblock_all(eddy__task_t *t)
{
    for (int c = 0; c < t->t_nin; c++) {
        if (t->t_in_barrier[c]) {
            t->t_in_barrier[c] = false;
            if (t->t_job->j_env->e_cfg.ck_exactly_once) {
                eddy__gate_unblock(t->t_gate, c);
                t->t_drain[t->t_ndrain++] = c;
            }
        }
    }
    t->t_align_id = 0;
}

int eddy__task_check_mail(eddy__task_t *t)
{
    atomic_store(&t->t_mail, false);
    int rc = 0;
    int64_t ab = atomic_load(&t->t_abort);
    if (ab > t->t_abort_seen) {
        t->t_abort_seen = ab;
        if (t->t_align_id != 0 && t->t_align_id <= ab) {
            unblock_all(t);
        }
        for (int i = 0; i < t->t_nops && rc == 0; i++) {
            eddy__op_t *op = t->t_ops[i];
            if (op->op_class->oc_checkpoint_abort != NULL) {
                eddy__tls_op = op;
                rc = op->op_class->oc_checkpoint_abort(op, ab);
                rc = rc ? eddy__op_user_rc(op, rc) : 0;
            }
        }
    }
    int64_t done = atomic_load(&t->t_complete);
    if (done > t->t_complete_seen) {
        t->t_complete_seen = done;
        for (int i = 0; i < t->t_nops && rc == 0; i++) {
            eddy__op_t *op = t->t_ops[i];
            if (op->op_kstate != NULL &&
                op->op_kstate->ks_ops->ko_notify_complete != NULL) {
                op->op_kstate->ks_ops->ko_notify_complete(op->op_kstate, done);
            }
            if (op->op_class->oc_checkpoint_complete != NULL) {
                eddy__tls_op = op;
                rc = op->op_class->oc_checkpoint_complete(op, done);
                rc = rc ? eddy__op_user_rc(op, rc) : 0;
            }
        }
    }
    /* Triggers last: a snapshot should build on the newest completion the
     * task knows of (incremental backends reference its files). */
    int64_t trig = atomic_load(&t->t_trigger);
    int64_t tid = trig & ~(EDDY__BARRIER_SAVEPOINT | EDDY__TRIGGER_DRAIN);
    if (rc == 0 && t->t_gate == NULL && tid > t->t_trigger_seen) {
        /* The mailbox holds the newest trigger only: ids between the last
         * one taken and this one were replaced before this source saw
         * them (a savepoint requested while a checkpoint was pending).
         * They can never complete; decline them so they abort now rather
         * than at checkpoint.timeout. */
        const eddy__ckpt_port_t *port = t->t_job->j_ckpt;
        for (int64_t skip = EDDY_MAX(t->t_trigger_seen + 1, tid - 16);
             port != NULL && t->t_trigger_seen > 0 && skip < tid; skip++) {
            port->cp_decline(port->cp_arg, skip, t->t_index,
                             "a newer trigger reached the source first");
        }
        t->t_trigger_seen = tid;
        if ((trig & EDDY__TRIGGER_DRAIN) != 0) {
            rc = eddy__task_drain(t);
        }
        if (rc == 0) {
            rc = take_snapshot(t, tid, (trig & EDDY__BARRIER_SAVEPOINT) != 0);
        }
    }
    return rc;
}

/* ---- alignment ---- */

static int check_aligned(eddy__task_t *t)
{
    for (int c = 0; c < t->t_nin; c++) {
        if (!t->t_in_barrier[c] && !t->t_in_done[c]) {
            return 0;
        }
    }
    int64_t id = t->t_align_id;
    bool sp = t->t_align_savepoint;
    int rc = 0;
    if (t->t_nin_done == t->t_nin) {
        /* Every input has ended: end the operators first, so that this
         * snapshot is the task's final one (after its end of input) and
         * does not leave it waiting for a barrier that ended upstream
         * tasks will never send. */
        rc = eddy__task_finish(t);
    }
    if (rc == 0) {
        rc = take_snapshot(t, id, sp);
    }
    unblock_all(t);
    return rc;
}

int eddy__task_on_barrier(eddy__task_t *t, int ch, int64_t value)
{
    int64_t id = value & ~EDDY__BARRIER_SAVEPOINT;
    if (id <= t->t_last_snap || id <= t->t_abort_seen) {
        return 0; /* taken already, or aborted */
    }
    if (id < t->t_align_id) {
        return 0; /* an abandoned older checkpoint */
    }
    if (id > t->t_align_id) {
        if (t->t_align_id != 0) {
            unblock_all(t); /* a newer one overtakes it */
        }
        t->t_align_id = id;
        t->t_align_savepoint = (value & EDDY__BARRIER_SAVEPOINT) != 0;
    }
    if (!t->t_in_barrier[ch]) {
        t->t_in_barrier[ch] = true;
        if (t->t_job->j_env->e_cfg.ck_exactly_once) {
            eddy__gate_block(t->t_gate, ch);
            eddy__fault("align");
        }
    }
    return check_aligned(t);
}

int eddy__task_on_channel_end(eddy__task_t *t, int ch)
{
    EDDY_UNUSED(ch);
    if (t->t_align_id == 0) {
        return 0;
    }
    return check_aligned(t);
}

void eddy__task_ckpt_init(eddy__task_t *t)
{
    atomic_init(&t->t_trigger, 0);
    atomic_init(&t->t_complete, 0);
    atomic_init(&t->t_abort, 0);
    atomic_init(&t->t_mail, false);
    atomic_init(&t->t_finished, false);
    atomic_init(&t->t_acked_finished, 0);
    t->t_in_barrier = eddy__calloc((size_t)t->t_nin + 1, sizeof(bool));
    t->t_drain = eddy__calloc((size_t)t->t_nin + 1, sizeof(int));
    t->t_final_opstate =
        eddy__calloc((size_t)t->t_nops + 1, sizeof(eddy__bytes_t));
}

void eddy__task_ckpt_close(eddy__task_t *t)
{
    free(t->t_in_barrier);
    free(t->t_drain);
    if (t->t_final_opstate != NULL) {
        for (int i = 0; i < t->t_nops; i++) {
            eddy__bytes_free(&t->t_final_opstate[i]);
        }
    }
    free(t->t_final_opstate);
}

void eddy__task_finished(eddy__task_t *t)
{
    /* A finished source keeps its last position (say, the end of a file)
     * so that a restore does not read its input again. */
    if (t->t_gate == NULL && t->t_job->j_ckpt != NULL) {
        eddy__op_t *head = t->t_ops[0];
        if (head->op_class->oc_snapshot != NULL) {
            eddy__op_snap_t *s = eddy__op_snap_new(INT64_MAX, false);
            eddy__tls_op = head;
            if (head->op_class->oc_snapshot(head, s) == 0 &&
                !eddy__op_snap_empty(s)) {
                eddy__op_snap_encode(s, &t->t_final_opstate[0]);
            }
            eddy__op_snap_free(s);
        }
    }
    atomic_store(&t->t_finished, true);
}

/* Called by the job's coordinator thread: acknowledges `id` for a finished
 * task with what it left. */
void eddy__task_ack_finished(eddy__task_t *t, int64_t id)
{
    eddy__job_t *job = t->t_job;
    if (job->j_snapper == NULL) {
        return;
    }
    item_t *it = item_new(t, id);
    for (int i = 0; i < t->t_nops; i++) {
        part_t *p = &it->it_parts[i];
        if (t->t_final_opstate[i].b_len > 0) {
            eddy__bytes_put(&p->p_opstate, t->t_final_opstate[i].b_data,
                            t->t_final_opstate[i].b_len);
            p->p_has_opstate = true;
        }
    }
    submit(job->j_snapper, it);
}

/* ---- the job's side of the coordinator's hooks (local.c, TaskManager) ---- */

void eddy__task_poke(eddy__task_t *t)
{
    atomic_store(&t->t_mail, true);
    if (t->t_gate != NULL) {
        eddy__gate_poke(t->t_gate);
    }
}

void eddy__job_trigger_sources(eddy__job_t *job, int64_t word)
{
    atomic_store(&job->j_triggered,
                 word & ~(EDDY__BARRIER_SAVEPOINT | EDDY__TRIGGER_DRAIN));
    for (int i = 0; i < job->j_ntasks; i++) {
        eddy__task_t *t = job->j_tasks[i];
        if (t->t_gate == NULL) {
            atomic_store(&t->t_trigger, word);
            eddy__task_poke(t);
        }
    }
}

void eddy__job_notify(eddy__job_t *job, int64_t id, bool complete)
{
    for (int i = 0; i < job->j_ntasks; i++) {
        eddy__task_t *t = job->j_tasks[i];
        atomic_store(complete ? &t->t_complete : &t->t_abort, id);
        eddy__task_poke(t);
    }
}

void eddy__job_ack_finished(eddy__job_t *job)
{
    int64_t trig = atomic_load(&job->j_triggered);
    for (int i = 0; i < job->j_ntasks; i++) {
        eddy__task_t *t = job->j_tasks[i];
        if (atomic_load(&t->t_finished) &&
            atomic_load(&t->t_acked_finished) < trig) {
            atomic_store(&t->t_acked_finished, trig);
            eddy__task_ack_finished(t, trig);
        }
    }
}
