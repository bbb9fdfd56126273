/*
 * eddy — the canonical keyed-state format: writing sections per key group,
 * reading them back with checks, and loading them into any backend.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * A section's CRC-32C is kept in the handle, not in the file, so a torn or
 * overwritten file is caught at restore (EDDY_ERR_FORMAT naming the file)
 * instead of loading wrong state.
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "state/state.h"

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = eddy__malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int eddy__canon_open(eddy__canon_writer_t *w, const char *dir, const char *name,
                     eddy_error_t *err)
{
    memset(w, 0, sizeof(*w));
    w->cw_path = join_path(dir, name);
    w->cw_f = fopen(w->cw_path, "wbx");
    if (w->cw_f == NULL) {
        int rc = eddy_error_set(err, EDDY_ERR_IO, "cannot create %s: %s",
                                w->cw_path, strerror(errno));
        free(w->cw_path);
        w->cw_path = NULL;
        return rc;
    }
    w->cw_groups = json_array();
    w->cw_kg = -1;
    return 0;
}

void eddy__canon_begin(eddy__canon_writer_t *w, int kg)
{
    w->cw_kg = kg;
    eddy__bytes_reset(&w->cw_buf);
}

int eddy__canon_end(eddy__canon_writer_t *w, eddy_error_t *err)
{
    size_t n = w->cw_buf.b_len;
    if (n == 0) {
        return 0;
    }
    if (fwrite(w->cw_buf.b_data, 1, n, w->cw_f) != n) {
        return eddy_error_set(err, EDDY_ERR_IO, "cannot write %s: %s",
                              w->cw_path, strerror(errno));
    }
    uint32_t crc = eddy__crc32c(0, w->cw_buf.b_data, n);
    json_array_append_new(
        w->cw_groups, json_pack("[i, I, I, I]", w->cw_kg, (json_int_t)w->cw_off,
                                (json_int_t)n, (json_int_t)crc));
    w->cw_off += n;
    eddy__bytes_reset(&w->cw_buf);
    return 0;
}

int eddy__canon_close(eddy__canon_writer_t *w, json_t **groups,
                      eddy_error_t *err)
{
    int rc = 0;
    if (fflush(w->cw_f) != 0 || fsync(fileno(w->cw_f)) != 0) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot write %s: %s", w->cw_path,
                            strerror(errno));
    }
    if (fclose(w->cw_f) != 0 && rc == 0) {
        rc = eddy_error_set(err, EDDY_ERR_IO, "cannot close %s: %s", w->cw_path,
                            strerror(errno));
    }
    w->cw_f = NULL;
    if (rc == 0) {
        *groups = w->cw_groups;
        w->cw_groups = NULL;
    }
    eddy__canon_abort(w);
    return rc;
}

void eddy__canon_abort(eddy__canon_writer_t *w)
{
    if (w->cw_f != NULL) {
        fclose(w->cw_f);
        unlink(w->cw_path);
        w->cw_f = NULL;
    }
    json_decref(w->cw_groups);
    w->cw_groups = NULL;
    free(w->cw_path);
    w->cw_path = NULL;
    eddy__bytes_free(&w->cw_buf);
}

/* ---- reading ---- */

int eddy__canon_read(const json_t *handle, const char *chk_dir, int kg_first,
                     int kg_last,
                     int (*fn)(void *arg, int kg, const void *p, size_t n),
                     void *arg, eddy_error_t *err)
{
    const char *file = json_string_value(json_object_get(handle, "file"));
    const json_t *groups = json_object_get(handle, "groups");
    if (file == NULL || !json_is_array(groups) || strstr(file, "..") != NULL) {
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "malformed state handle in %s/_metadata",
                              chk_dir);
    }
    char *path = join_path(chk_dir, file);
    FILE *f = NULL;
    unsigned char *buf = NULL;
    int rc = 0;
    size_t i;
    json_t *g;
    json_array_foreach(groups, i, g)
    {
        json_int_t kg, off, len, crc;
        if (json_unpack((json_t *)g, "[I, I, I, I]", &kg, &off, &len, &crc) !=
                0 ||
            off < 0 || len < 0 || len > ((json_int_t)1 << 34)) {
            rc = eddy_error_set(err, EDDY_ERR_FORMAT,
                                "malformed state handle for %s", path);
            break;
        }
        if (kg < kg_first || kg > kg_last) {
            continue;
        }
        if (f == NULL && (f = fopen(path, "rb")) == NULL) {
            rc = eddy_error_set(
                err, errno == ENOENT ? EDDY_ERR_NOT_FOUND : EDDY_ERR_IO,
                "cannot open checkpoint file %s: %s", path, strerror(errno));
            break;
        }
        unsigned char *nb = eddy__try_realloc(buf, (size_t)len + 1);
        if (nb == NULL) {
            rc = eddy_error_set(err, EDDY_ERR_NOMEM, "out of memory reading %s",
                                path);
            break;
        }
        buf = nb;
        if (fseeko(f, (off_t)off, SEEK_SET) != 0 ||
            fread(buf, 1, (size_t)len, f) != (size_t)len) {
            rc = eddy_error_set(err, EDDY_ERR_FORMAT,
                                "checkpoint file %s is truncated", path);
            break;
        }
        if (eddy__crc32c(0, buf, (size_t)len) != (uint32_t)crc) {
            rc = eddy_error_set(err, EDDY_ERR_FORMAT,
                                "checkpoint file %s is corrupt (checksum "
                                "mismatch in key group %d)",
                                path, (int)kg);
            break;
        }
        rc = fn(arg, (int)kg, buf, (size_t)len);
        if (rc != 0) {
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    free(buf);
    free(path);
    return rc;
}

/* ---- loading into a backend ---- */

typedef struct loader {
    eddy__kstate_t *ld_ks;
    int *ld_sid; /* handle's state index -> backend sid, -1 = skip */
    int ld_nsids;
    const char *ld_chk_dir;
    eddy_error_t *ld_err;
} loader_t;

static int bad_section(loader_t *ld, int kg)
{
    return eddy_error_set(ld->ld_err, EDDY_ERR_FORMAT,
                          "malformed keyed state (key group %d) in %s", kg,
                          ld->ld_chk_dir);
}

static int load_section(void *arg, int kg, const void *p, size_t n)
{
    loader_t *ld = arg;
    eddy__kstate_t *ks = ld->ld_ks;
    const eddy__kstate_ops_t *o = ks->ks_ops;
    eddy__rd_t rd;
    eddy__rd_init(&rd, p, n);
    int64_t saved_now = ks->ks_now_ms;
    int rc = 0;
    while (rc == 0 && !eddy__rd_done(&rd)) {
        int tag = eddy__rd_u8(&rd);
        if (tag == EDDY__CANON_TIMER) {
            /* Timers are restored by the timer service, from its own
             * handle; a keyed handle never holds them, but skip cleanly. */
            size_t l;
            eddy__rd_u8(&rd);
            eddy__rd_u64(&rd);
            eddy__rd_blob(&rd, &l);
            eddy__rd_blob(&rd, &l);
            continue;
        }
        uint64_t hsid = eddy__rd_varint(&rd);
        eddy__skey_t k;
        k.sk_key = eddy__rd_blob(&rd, &k.sk_klen);
        k.sk_ns = eddy__rd_blob(&rd, &k.sk_nslen);
        int64_t stamp = (int64_t)eddy__rd_u64(&rd);
        if (!eddy__rd_ok(&rd) || hsid >= (uint64_t)ld->ld_nsids) {
            return bad_section(ld, kg);
        }
        k.sk_hash = eddy__hash64(k.sk_key, k.sk_klen);
        k.sk_kg = kg;
        int sid = ld->ld_sid[hsid];
        /* Entries saved without TTL (stamp 0) restored into a state that
         * now has one start their life at the restore. */
        ks->ks_now_ms = stamp != 0 ? stamp : saved_now;
        if (tag == EDDY__CANON_VALUE) {
            size_t vl;
            const void *v = eddy__rd_blob(&rd, &vl);
            if (!eddy__rd_ok(&rd)) {
                return bad_section(ld, kg);
            }
            if (sid >= 0) {
                rc = o->ko_put(ks, sid, &k, v, vl);
            }
        } else if (tag == EDDY__CANON_LIST) {
            uint64_t cnt = eddy__rd_varint(&rd);
            for (uint64_t i = 0; i < cnt && rc == 0; i++) {
                size_t vl;
                const void *v = eddy__rd_blob(&rd, &vl);
                if (!eddy__rd_ok(&rd)) {
                    return bad_section(ld, kg);
                }
                if (sid >= 0) {
                    rc = o->ko_list_add(ks, sid, &k, v, vl);
                }
            }
        } else if (tag == EDDY__CANON_MAP) {
            uint64_t cnt = eddy__rd_varint(&rd);
            for (uint64_t i = 0; i < cnt && rc == 0; i++) {
                size_t ul, vl;
                const void *uk = eddy__rd_blob(&rd, &ul);
                const void *v = eddy__rd_blob(&rd, &vl);
                if (!eddy__rd_ok(&rd)) {
                    return bad_section(ld, kg);
                }
                if (sid >= 0) {
                    rc = o->ko_map_put(ks, sid, &k, uk, ul, v, vl);
                }
            }
        } else {
            return bad_section(ld, kg);
        }
    }
    ks->ks_now_ms = saved_now;
    if (rc != 0) {
        return eddy_error_set(ld->ld_err, rc,
                              "cannot load keyed state (key group %d): %s", kg,
                              eddy_strerror(rc));
    }
    return eddy__rd_ok(&rd) ? 0 : bad_section(ld, kg);
}

int eddy__canon_load(eddy__kstate_t *ks, const json_t *handle,
                     const char *chk_dir, bool allow_unknown_states,
                     eddy_error_t *err)
{
    const json_t *states = json_object_get(handle, "states");
    if (!json_is_array(states)) {
        return eddy_error_set(err, EDDY_ERR_FORMAT,
                              "malformed keyed state handle in %s", chk_dir);
    }
    loader_t ld = {ks, NULL, (int)json_array_size(states), chk_dir, err};
    ld.ld_sid = eddy__calloc((size_t)ld.ld_nsids + 1, sizeof(int));
    int rc = 0;
    for (int i = 0; i < ld.ld_nsids && rc == 0; i++) {
        const json_t *st = json_array_get(states, (size_t)i);
        const char *name = json_string_value(json_object_get(st, "name"));
        json_int_t kind = json_integer_value(json_object_get(st, "kind"));
        ld.ld_sid[i] = -1;
        if (name == NULL) {
            rc = eddy_error_set(err, EDDY_ERR_FORMAT,
                                "malformed keyed state handle in %s", chk_dir);
            break;
        }
        for (int s = 0; s < ks->ks_nstates; s++) {
            if (strcmp(ks->ks_specs[s].ss_name, name) == 0) {
                ld.ld_sid[i] = s;
            }
        }
        if (ld.ld_sid[i] < 0 && !allow_unknown_states) {
            rc = eddy_error_set(err, EDDY_ERR_STATE,
                                "the checkpoint has keyed state '%s' that the "
                                "operator does not declare (allow it with "
                                "--allow-non-restored-state)",
                                name);
        } else if (ld.ld_sid[i] >= 0 &&
                   ks->ks_specs[ld.ld_sid[i]].ss_kind != (int)kind) {
            rc = eddy_error_set(err, EDDY_ERR_STATE,
                                "keyed state '%s' changed its kind since the "
                                "checkpoint",
                                name);
        }
    }
    if (rc == 0) {
        rc = eddy__canon_read(handle, chk_dir, ks->ks_kg_first, ks->ks_kg_last,
                              load_section, &ld, err);
    }
    free(ld.ld_sid);
    return rc;
}

json_t *eddy__canon_states_json(const eddy__kstate_t *ks)
{
    json_t *a = json_array();
    for (int s = 0; s < ks->ks_nstates; s++) {
        json_array_append_new(a, json_pack("{s:s, s:i}", "name",
                                           ks->ks_specs[s].ss_name, "kind",
                                           ks->ks_specs[s].ss_kind));
    }
    return a;
}
