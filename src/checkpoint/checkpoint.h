/*
 * eddy — checkpoints as operators and state backends see them.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN (DESIGN.md §5, §6; docs/checkpoints.md). A checkpoint n is taken by
 * every subtask when barrier n has reached it on all its inputs (sources:
 * when the coordinator triggers n). The task then, on its own thread:
 *
 *   1. calls oc_snapshot of each operator in chain order. An operator writes
 *      its operator state (named lists, below) into the eddy__op_snap_t and
 *      pre-commits (sinks: flush and close the transaction of checkpoint n);
 *   2. takes the synchronous part of every keyed backend's snapshot
 *      (ko_snapshot: a frozen view, cheap) and copies its timers;
 *   3. forwards barrier n downstream and goes on processing.
 *
 * A snapshot thread then writes files into <job dir>/chk-n/ (and shared/ for
 * incremental backends) and acknowledges n to the coordinator with handles:
 * JSON objects naming what was written. When every subtask has acknowledged,
 * the coordinator writes chk-n/_metadata, and only then notifies every
 * operator (oc_checkpoint_complete), which is when sinks commit.
 *
 * Operator state is a set of named lists of byte strings. On restore (also
 * with another parallelism) the lists of all old subtasks are redistributed:
 * SPLIT deals the elements out round-robin (each element to one subtask),
 * UNION gives every subtask all elements (Kafka sources keep offsets this way
 * and each keeps the partitions it now owns).
 *
 * Keyed state is snapshotted per key group so it can be restored into any
 * key-group range. The canonical format (below) is read by every backend;
 * savepoints always use it. A backend may write its own format in
 * checkpoints (RocksDB: incremental SST files); handles say which.
 */
#ifndef EDDY_CHECKPOINT_CHECKPOINT_H
#define EDDY_CHECKPOINT_CHECKPOINT_H

#include <jansson.h>

#include "common/bytes.h"
#include "common/internal.h"

typedef struct eddy__op eddy__op_t;
typedef struct eddy__kstate eddy__kstate_t;

/* ---- operator (non-keyed) list state ---- */

#define EDDY__OPLIST_SPLIT 0
#define EDDY__OPLIST_UNION 1

typedef struct eddy__op_snap eddy__op_snap_t;

/* The checkpoint being taken, and whether it is a savepoint. */
int64_t eddy__op_snap_id(const eddy__op_snap_t *s);
bool eddy__op_snap_is_savepoint(const eddy__op_snap_t *s);
/* Appends one element to operator list state `name` (created on first use
 * with `mode`; a name must keep its mode). Copies the bytes. */
int eddy__op_snap_list_add(eddy__op_snap_t *s, const char *name, int mode,
                           const void *elem, size_t len);

/* What an operator restores from (op->op_restore, NULL on a fresh start). */
typedef struct eddy__op_restore eddy__op_restore_t;

/* The checkpoint restored from. */
int64_t eddy__op_restore_id(const eddy__op_restore_t *r);
/*
 * Calls fn for each element of list state `name` assigned to this subtask,
 * in a deterministic order. Returns 0, fn's first non-zero return, or an
 * error. A name absent from the checkpoint has no elements.
 */
int eddy__op_restore_list(const eddy__op_restore_t *r, const char *name,
                          int (*fn)(void *arg, const void *elem, size_t len),
                          void *arg);

/* The runtime (and unit tests of operators) build these: */
eddy__op_snap_t *eddy__op_snap_new(int64_t id, bool savepoint);
void eddy__op_snap_free(eddy__op_snap_t *s);
/* True if no list state was written. */
bool eddy__op_snap_empty(const eddy__op_snap_t *s);
/* The bytes written into the checkpoint for this subtask's lists. */
void eddy__op_snap_encode(const eddy__op_snap_t *s, eddy__bytes_t *out);
/*
 * The restore view of `subtask` (of `parallelism`) from the encoded list
 * states of every old subtask, in old-subtask order (NULL entries: that
 * subtask wrote none). EDDY_ERR_FORMAT with a message on malformed input.
 */
int eddy__op_restore_new(int64_t id, const eddy__bytes_t *const *old, int nold,
                         int subtask, int parallelism, eddy__op_restore_t **out,
                         eddy_error_t *err);
void eddy__op_restore_free(eddy__op_restore_t *r);

/* ---- keyed state snapshots (backends) ---- */

/* Where the asynchronous part writes. Directories exist. */
typedef struct eddy__snap_target {
    const char *st_chk_dir;    /* <job dir>/chk-<n> (absolute) */
    const char *st_shared_dir; /* <job dir>/shared (absolute) */
    const char *st_stem;       /* unique per (operator, subtask) in chk-n */
    int64_t st_ckpt_id;
    bool st_savepoint; /* self-contained, canonical format only */
} eddy__snap_target_t;

/*
 * The frozen view taken by ko_snapshot. ks_write runs on a snapshot thread
 * while the task goes on changing the live state; it writes files and
 * returns a handle (a JSON object with at least "type"), paths in it
 * relative to the job directory's chk-n (or "../shared/..."). Files in
 * shared/ that a handle uses are listed in its "shared" array (relative to
 * the job directory): the coordinator deletes a shared file once no retained
 * checkpoint lists it. ks_release frees the view (any thread).
 */
typedef struct eddy__ksnap eddy__ksnap_t;
struct eddy__ksnap {
    int (*ks_write)(eddy__ksnap_t *s, const eddy__snap_target_t *t,
                    json_t **handle, eddy_error_t *err);
    void (*ks_release)(eddy__ksnap_t *s);
};

/* Handles to restore keyed state from: every handle of the old subtasks
 * whose key-group range meets the new one. */
typedef struct eddy__restore_src {
    json_t **rs_handles;
    int rs_n;
    const char *rs_chk_dir; /* the restored checkpoint's directory */
} eddy__restore_src_t;

/* ---- the canonical keyed format (per key group) ----
 *
 * A file holds sections, one per key group; the handle lists them:
 *   {"type": "canonical", "file": NAME,
 *    "states": [{"name": N, "kind": eddy_state_kind_t}, ... by state id],
 *    "groups": [[kg, offset, length, crc32c], ...]}
 * A section is a sequence of entries, each starting with a u8 tag:
 *   1 VALUE  sid:varint key:blob ns:blob stamp:u64 value:blob
 *   2 LIST   sid key ns stamp, count:varint, count × elem:blob
 *   3 MAP    sid key ns stamp, count:varint, count × (ukey:blob value:blob)
 *   4 TIMER  domain:u8 ts:u64 key:blob ns:blob
 * `stamp` is the TTL write time (ms), 0 without TTL. Readers skip unknown
 * sids only when allowed (state that no operator claims).
 */
#define EDDY__CANON_VALUE 1
#define EDDY__CANON_LIST 2
#define EDDY__CANON_MAP 3
#define EDDY__CANON_TIMER 4

/* Writes a canonical file section by section (used from the snapshot
 * thread). */
typedef struct eddy__canon_writer {
    FILE *cw_f;
    char *cw_path;
    json_t *cw_groups;
    eddy__bytes_t cw_buf; /* the current section */
    int cw_kg;
    uint64_t cw_off;
} eddy__canon_writer_t;

int eddy__canon_open(eddy__canon_writer_t *w, const char *dir, const char *name,
                     eddy_error_t *err);
void eddy__canon_begin(eddy__canon_writer_t *w, int kg);
static inline eddy__bytes_t *eddy__canon_buf(eddy__canon_writer_t *w)
{
    return &w->cw_buf;
}
/* Ends the section (empty sections are not written). */
int eddy__canon_end(eddy__canon_writer_t *w, eddy_error_t *err);
/* Flushes, fsyncs, closes; returns the "groups" array (caller owns). */
int eddy__canon_close(eddy__canon_writer_t *w, json_t **groups,
                      eddy_error_t *err);
void eddy__canon_abort(eddy__canon_writer_t *w);

/*
 * Reads every section of `handle` (canonical) whose key group is in
 * [kg_first, kg_last], checking its CRC, and calls fn with the section's
 * bytes. Returns 0, fn's first non-zero return, or EDDY_ERR_CORRUPT /
 * EDDY_ERR_IO with a message naming the file.
 */
int eddy__canon_read(const json_t *handle, const char *chk_dir, int kg_first,
                     int kg_last,
                     int (*fn)(void *arg, int kg, const void *p, size_t n),
                     void *arg, eddy_error_t *err);

/*
 * Loads a canonical handle into any backend through its vtable (ko_put,
 * ko_list_add, ko_map_put; TTL stamps kept): the key groups of the
 * backend's range only. States are matched by name; a state the backend
 * does not declare is an error unless allow_unknown_states; a state whose
 * kind changed is an error.
 */
int eddy__canon_load(eddy__kstate_t *ks, const json_t *handle,
                     const char *chk_dir, bool allow_unknown_states,
                     eddy_error_t *err);
/* The "states" array of a handle for the backend's declared states. */
json_t *eddy__canon_states_json(const eddy__kstate_t *ks);

#endif /* EDDY_CHECKPOINT_CHECKPOINT_H */
