/*
 * eddy — checkpoint storage: directory layout, _metadata, validation.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Layout (DESIGN.md §6), for file:// storage:
 *   <checkpoint dir>/<job id>/chk-<n>/_metadata      JSON, written last
 *   <checkpoint dir>/<job id>/chk-<n>/op<node>-<subtask>.{opstate,timers,keyed}
 *   <checkpoint dir>/<job id>/shared/...              incremental files
 * A chk-<n> directory without _metadata is an incomplete checkpoint: it is
 * never restored from and is deleted when found. _metadata is written to a
 * temporary name, synced and renamed, so it is either whole or absent.
 * The format of _metadata is documented in docs/checkpoints.md.
 */
#ifndef EDDY_CHECKPOINT_STORAGE_H
#define EDDY_CHECKPOINT_STORAGE_H

#include <jansson.h>

#include "common/internal.h"

#define EDDY__METADATA "_metadata"
#define EDDY__METADATA_FORMAT "eddy-checkpoint"
#define EDDY__METADATA_VERSION 1

/* mkdir -p; 0 or EDDY_ERR_IO with a message. */
int eddy__mkdirs(const char *path, eddy_error_t *err);
/* rm -rf (best effort); 0 or EDDY_ERR_IO. */
int eddy__rmtree(const char *path);
/* Writes `data` to dir/name atomically (temp file, fsync, rename). */
int eddy__write_file_atomic(const char *dir, const char *name, const void *data,
                            size_t len, eddy_error_t *err);
/* fsyncs a directory, so renames and creations in it are durable; 0 or
 * -1 with errno. */
int eddy__sync_dir(const char *dir);
/* Reads a whole file (NUL-terminated); 0, EDDY_ERR_NOT_FOUND or _IO. */
int eddy__read_file(const char *path, char **data, size_t *len,
                    eddy_error_t *err);

/*
 * Checkpoints usable for a restore from `path`, newest first: `path` itself
 * if it holds a _metadata file, otherwise its chk-<n> subdirectories that
 * hold one. Returns the count (0 if none) and a malloc'ed array of malloc'ed
 * absolute paths.
 */
int eddy__ckpt_candidates(const char *path, char ***out);
void eddy__ckpt_candidates_free(char **c, int n);
/* The largest n of chk-<n> under job_dir (complete or not), or 0. */
int64_t eddy__ckpt_max_id(const char *job_dir);

/*
 * Reads and checks a checkpoint: _metadata parses and has the expected
 * format and version, every file it names exists and is long enough, and
 * every checksummed section matches. Returns 0 with *meta (caller decrefs),
 * or EDDY_ERR_NOT_FOUND / EDDY_ERR_FORMAT / EDDY_ERR_IO with a message
 * naming the file.
 */
int eddy__ckpt_load(const char *chk_dir, json_t **meta, eddy_error_t *err);

#endif /* EDDY_CHECKPOINT_STORAGE_H */
