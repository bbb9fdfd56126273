/*
 * eddy — operator (non-keyed) list state: snapshot, encoding, redistribution.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Encoding of one subtask's lists (inside its checkpoint file):
 *   nlists:varint, then per list: name:blob mode:u8 count:varint
 *   count × elem:blob
 * On restore the lists of the old subtasks are concatenated in old-subtask
 * order; SPLIT deals element i to new subtask i % parallelism, UNION gives
 * every new subtask all of them. The order is deterministic, so a restore
 * with the same parallelism and the same input is reproducible.
 */
#include "checkpoint/checkpoint.h"

typedef struct oplist {
    char *ol_name;
    int ol_mode;
    size_t ol_count;
    eddy__bytes_t ol_data; /* elements as blobs */
} oplist_t;

struct eddy__op_snap {
    int64_t os_id;
    bool os_savepoint;
    oplist_t *os_lists;
    int os_n;
};

eddy__op_snap_t *eddy__op_snap_new(int64_t id, bool savepoint)
{
    eddy__op_snap_t *s = eddy__calloc(1, sizeof(*s));
    s->os_id = id;
    s->os_savepoint = savepoint;
    return s;
}

void eddy__op_snap_free(eddy__op_snap_t *s)
{
    if (s == NULL) {
        return;
    }
    for (int i = 0; i < s->os_n; i++) {
        free(s->os_lists[i].ol_name);
        eddy__bytes_free(&s->os_lists[i].ol_data);
    }
    free(s->os_lists);
    free(s);
}

int64_t eddy__op_snap_id(const eddy__op_snap_t *s)
{
    return s->os_id;
}

bool eddy__op_snap_is_savepoint(const eddy__op_snap_t *s)
{
    return s->os_savepoint;
}

bool eddy__op_snap_empty(const eddy__op_snap_t *s)
{
    return s->os_n == 0;
}

int eddy__op_snap_list_add(eddy__op_snap_t *s, const char *name, int mode,
                           const void *elem, size_t len)
{
    if (name == NULL ||
        (mode != EDDY__OPLIST_SPLIT && mode != EDDY__OPLIST_UNION)) {
        return EDDY_ERR_INVALID;
    }
    oplist_t *l = NULL;
    for (int i = 0; i < s->os_n; i++) {
        if (strcmp(s->os_lists[i].ol_name, name) == 0) {
            l = &s->os_lists[i];
            break;
        }
    }
    if (l == NULL) {
        s->os_lists =
            eddy__realloc(s->os_lists, sizeof(*l) * (size_t)(s->os_n + 1));
        l = &s->os_lists[s->os_n++];
        memset(l, 0, sizeof(*l));
        l->ol_name = eddy__strdup(name);
        l->ol_mode = mode;
    } else if (l->ol_mode != mode) {
        return EDDY_ERR_INVALID;
    }
    eddy__bytes_put_blob(&l->ol_data, elem, len);
    l->ol_count++;
    return 0;
}

void eddy__op_snap_encode(const eddy__op_snap_t *s, eddy__bytes_t *out)
{
    eddy__bytes_put_varint(out, (uint64_t)s->os_n);
    for (int i = 0; i < s->os_n; i++) {
        const oplist_t *l = &s->os_lists[i];
        eddy__bytes_put_blob(out, l->ol_name, strlen(l->ol_name));
        eddy__bytes_put_u8(out, (uint8_t)l->ol_mode);
        eddy__bytes_put_varint(out, l->ol_count);
        eddy__bytes_put(out, l->ol_data.b_data, l->ol_data.b_len);
    }
}

/* ---- restore ---- */

typedef struct relem {
    const void *re_p;
    size_t re_len;
} relem_t;

typedef struct rlist {
    char *rl_name;
    int rl_mode;
    relem_t *rl_elems; /* this subtask's elements, in order */
    size_t rl_n;
    size_t rl_seen; /* SPLIT: elements dealt so far (all subtasks) */
} rlist_t;

struct eddy__op_restore {
    int64_t or_id;
    rlist_t *or_lists;
    int or_n;
    unsigned char **or_copies; /* the old subtasks' bytes */
    int or_ncopies;
};

int64_t eddy__op_restore_id(const eddy__op_restore_t *r)
{
    return r->or_id;
}

static rlist_t *rlist_get(eddy__op_restore_t *r, const char *name, size_t n,
                          int mode, bool *mode_clash)
{
    for (int i = 0; i < r->or_n; i++) {
        rlist_t *l = &r->or_lists[i];
        if (strlen(l->rl_name) == n && memcmp(l->rl_name, name, n) == 0) {
            *mode_clash = l->rl_mode != mode;
            return l;
        }
    }
    r->or_lists =
        eddy__realloc(r->or_lists, sizeof(rlist_t) * (size_t)(r->or_n + 1));
    rlist_t *l = &r->or_lists[r->or_n++];
    memset(l, 0, sizeof(*l));
    l->rl_name = eddy__malloc(n + 1);
    memcpy(l->rl_name, name, n);
    l->rl_name[n] = '\0';
    l->rl_mode = mode;
    *mode_clash = false;
    return l;
}

static int decode_one(eddy__op_restore_t *r, const unsigned char *p, size_t n,
                      int subtask, int parallelism)
{
    eddy__rd_t rd;
    eddy__rd_init(&rd, p, n);
    uint64_t nlists = eddy__rd_varint(&rd);
    for (uint64_t i = 0; i < nlists && eddy__rd_ok(&rd); i++) {
        size_t nlen;
        const char *name = eddy__rd_blob(&rd, &nlen);
        int mode = eddy__rd_u8(&rd);
        uint64_t count = eddy__rd_varint(&rd);
        if (!eddy__rd_ok(&rd) ||
            (mode != EDDY__OPLIST_SPLIT && mode != EDDY__OPLIST_UNION) ||
            count > n) {
            return EDDY_ERR_FORMAT;
        }
        bool clash;
        rlist_t *l = rlist_get(r, name, nlen, mode, &clash);
        if (clash) {
            return EDDY_ERR_FORMAT;
        }
        for (uint64_t k = 0; k < count; k++) {
            size_t len;
            const void *e = eddy__rd_blob(&rd, &len);
            if (!eddy__rd_ok(&rd)) {
                return EDDY_ERR_FORMAT;
            }
            bool mine = mode == EDDY__OPLIST_UNION ||
                        (int)(l->rl_seen % (size_t)parallelism) == subtask;
            l->rl_seen++;
            if (mine) {
                l->rl_elems =
                    eddy__realloc(l->rl_elems, sizeof(relem_t) * (l->rl_n + 1));
                l->rl_elems[l->rl_n++] = (relem_t){e, len};
            }
        }
    }
    return eddy__rd_ok(&rd) && eddy__rd_done(&rd) ? 0 : EDDY_ERR_FORMAT;
}

int eddy__op_restore_new(int64_t id, const eddy__bytes_t *const *old, int nold,
                         int subtask, int parallelism, eddy__op_restore_t **out,
                         eddy_error_t *err)
{
    eddy__op_restore_t *r = eddy__calloc(1, sizeof(*r));
    r->or_id = id;
    r->or_copies = eddy__calloc((size_t)(nold > 0 ? nold : 1), sizeof(void *));
    for (int i = 0; i < nold; i++) {
        if (old[i] == NULL || old[i]->b_len == 0) {
            continue;
        }
        unsigned char *c = eddy__malloc(old[i]->b_len);
        memcpy(c, old[i]->b_data, old[i]->b_len);
        r->or_copies[r->or_ncopies++] = c;
        if (decode_one(r, c, old[i]->b_len, subtask, parallelism) != 0) {
            eddy__op_restore_free(r);
            return eddy_error_set(err, EDDY_ERR_FORMAT,
                                  "malformed operator state of old subtask "
                                  "%d",
                                  i + 1);
        }
    }
    *out = r;
    return 0;
}

void eddy__op_restore_free(eddy__op_restore_t *r)
{
    if (r == NULL) {
        return;
    }
    for (int i = 0; i < r->or_n; i++) {
        free(r->or_lists[i].rl_name);
        free(r->or_lists[i].rl_elems);
    }
    free(r->or_lists);
    for (int i = 0; i < r->or_ncopies; i++) {
        free(r->or_copies[i]);
    }
    free(r->or_copies);
    free(r);
}

int eddy__op_restore_list(const eddy__op_restore_t *r, const char *name,
                          int (*fn)(void *arg, const void *elem, size_t len),
                          void *arg)
{
    if (r == NULL) {
        return 0;
    }
    for (int i = 0; i < r->or_n; i++) {
        const rlist_t *l = &r->or_lists[i];
        if (strcmp(l->rl_name, name) != 0) {
            continue;
        }
        for (size_t k = 0; k < l->rl_n; k++) {
            int rc = fn(arg, l->rl_elems[k].re_p, l->rl_elems[k].re_len);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}
