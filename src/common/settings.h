/*
 * eddy — settings: a process's configuration as one flat, typed table.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. Every configuration key of DESIGN.md §8 ("checkpoint.interval",
 * "rest.port", ...) is declared once, in the table in settings.c, with its
 * type, default, range and description. A settings object holds one value
 * per key and where that value came from. Values arrive in four layers:
 *
 *   1. built-in defaults;
 *   2. eddy.yaml (nested "checkpoint:\n  interval: 10s" or dotted
 *      "checkpoint.interval: 10s" keys);
 *   3. EDDY_* environment variables (EDDY_CHECKPOINT_INTERVAL);
 *   4. flags, which the CLI maps to keys and passes in.
 *
 * A higher layer always wins, whatever order the loaders are called in, so
 * a caller cannot get precedence wrong; within one layer the later value
 * wins. Each load is all-or-nothing: it validates every value first and
 * changes nothing when one is bad, so a failed load leaves the previous,
 * valid configuration in place. Errors name the source (file:line:column,
 * the variable or the flag), the key, the bad value and the expected form.
 *
 * The job-level keys (checkpoint.*, state.*, restart.*, savepoint.*,
 * job.id) are the keys of the runtime's eddy__config_t;
 * eddy__settings_apply_job passes the ones the user set to eddy__config_set,
 * so `eddy run` and the JobManager share one vocabulary.
 *
 * THREADS. Loading mutates the object and must happen on one thread; once
 * loaded, the getters only read and may be called from any thread.
 */
#ifndef EDDY_COMMON_SETTINGS_H
#define EDDY_COMMON_SETTINGS_H

#include <stdio.h>

#include "common/internal.h"

struct eddy__config;

/* Files larger than this are refused before parsing: a configuration file
 * is a few hundred bytes, and the cap bounds the parser's memory. */
#define EDDY__SETTINGS_FILE_MAX (1024 * 1024)

/* Value types; settings.c gives each its validation and expected form. */
typedef enum eddy__setting_type {
    EDDY__SETTING_DURATION, /* eddy__parse_duration_ms, in [min, max] ms */
    EDDY__SETTING_INT,      /* decimal, in [min, max] */
    EDDY__SETTING_PORT,     /* decimal, 1..65535 */
    EDDY__SETTING_NUMBER,   /* floating point, in [min, max] */
    EDDY__SETTING_BOOL,     /* stored as "true"/"false" */
    EDDY__SETTING_ENUM,     /* one of sd_choices */
    EDDY__SETTING_PATH,     /* non-empty, not a URI */
    EDDY__SETTING_URI_PATH, /* a path or a file:// URI */
    EDDY__SETTING_STORE,    /* a path or a postgresql:// URI */
    EDDY__SETTING_ID,       /* a job id: 32 lowercase hex digits */
    EDDY__SETTING_HOST,     /* a host name, IPv4 or IPv6 address */
} eddy__setting_type_t;

/* Where a value came from, lowest precedence first. */
typedef enum eddy__settings_layer {
    EDDY__LAYER_DEFAULT = 0,
    EDDY__LAYER_FILE = 1,
    EDDY__LAYER_ENV = 2,
    EDDY__LAYER_FLAG = 3,
} eddy__settings_layer_t;

/* One key of the table. */
typedef struct eddy__setting_def {
    const char *sd_key; /* "checkpoint.interval" */
    eddy__setting_type_t sd_type;
    const char *sd_default; /* NULL: unset unless configured */
    bool sd_in_data_dir;    /* the default is data.dir/sd_default */
    int64_t sd_min;         /* integers, ports, numbers; durations: ms */
    int64_t sd_max;
    const char *sd_choices; /* enums: "heap|rocksdb" */
    bool sd_job;            /* a key of eddy__config_t */
    const char *sd_doc;     /* one line for docs/configuration.md */
} eddy__setting_def_t;

/* A flag the CLI parsed: the key it stands for and how the user spelled
 * it ("--rest-port"), which error messages quote; NULL spells "-D KEY". */
typedef struct eddy__setting_kv {
    const char *kv_key;
    const char *kv_value;
    const char *kv_flag;
} eddy__setting_kv_t;

typedef struct eddy__settings eddy__settings_t;

/**
 * @brief The key table, in documentation order.
 * @param n gets the number of keys.
 */
const eddy__setting_def_t *eddy__settings_defs(size_t *n);
/** @brief The key's definition, or NULL for an unknown key. */
const eddy__setting_def_t *eddy__settings_find(const char *key);

/**
 * @brief Writes the environment variable for `key` into `buf`: "EDDY_" and
 *        the key in upper case with '.' and '-' turned into '_'
 *        ("checkpoint.min_pause" → "EDDY_CHECKPOINT_MIN_PAUSE").
 * @returns 0, or EDDY_ERR_INVALID when `buf` is too small.
 */
int eddy__settings_env_name(const char *key, char *buf, size_t size);

/** @brief A settings object holding the built-in defaults. */
eddy__settings_t *eddy__settings_new(void);
/** @brief Frees `st`; NULL is a no-op. */
void eddy__settings_destroy(eddy__settings_t *st);

/**
 * @brief Loads a YAML file (layer 2).
 * @returns 0; EDDY_ERR_NOT_FOUND for a missing file and EDDY_ERR_IO for
 *          one that cannot be read (err->sys_errno set); EDDY_ERR_FORMAT,
 *          with "FILE:LINE:COLUMN: ...", for YAML that is not plain
 *          configuration (syntax errors such as tabs or bad indentation,
 *          duplicate keys, anchors and aliases, several documents, keys that
 *          are not strings, NUL characters, deep nesting, a file over
 *          EDDY__SETTINGS_FILE_MAX); EDDY_ERR_INVALID for an unknown key, a
 *          bad or missing value, or a list or mapping where a key takes one
 *          value. On error nothing changes.
 */
int eddy__settings_load_file(eddy__settings_t *st, const char *path,
                             eddy_error_t *err);
/**
 * @brief Loads the EDDY_* variable of every key (layer 3) from `envp` (a
 *        NULL-terminated "NAME=value" array; NULL means this process's
 *        environment). Variables that name no key are ignored: EDDY_FAULT
 *        and the test variables share the prefix.
 * @returns 0, or EDDY_ERR_INVALID naming the variable; nothing changes.
 */
int eddy__settings_load_env(eddy__settings_t *st, char *const *envp,
                            eddy_error_t *err);
/**
 * @brief Sets keys from flags (layer 4), in order.
 * @returns 0, or EDDY_ERR_INVALID naming the flag; nothing changes.
 */
int eddy__settings_load_flags(eddy__settings_t *st,
                              const eddy__setting_kv_t *flags, size_t n,
                              eddy_error_t *err);
/**
 * @brief Checks rules that span keys (heartbeat.timeout longer than
 *        heartbeat.interval; rest.port and rpc.port differ). Call it once
 *        every layer is loaded: a lower layer may break a rule that a higher
 *        one repairs.
 * @returns 0, or EDDY_ERR_INVALID naming both keys and their sources.
 */
int eddy__settings_check(const eddy__settings_t *st, eddy_error_t *err);
/**
 * @brief All of the above: the file (skipped when `path` is NULL), the
 *        environment (`envp` as for _load_env), the flags, then the check.
 */
int eddy__settings_load(eddy__settings_t *st, const char *path,
                        char *const *envp, const eddy__setting_kv_t *flags,
                        size_t nflags, eddy_error_t *err);

/**
 * @brief Passes the job-level keys the user configured (file, environment or
 *        flag; for the keys under data.dir, also when data.dir was
 *        configured) to eddy__config_set. Defaults are not passed, so what
 *        the job itself set (eddy_env_enable_checkpointing) survives unless
 *        the user overrides it.
 * @returns 0, or eddy__config_set's error prefixed with the value's source.
 */
int eddy__settings_apply_job(const eddy__settings_t *st, struct eddy__config *c,
                             eddy_error_t *err);

/*
 * Getters. The key must be in the table and of the getter's type (get_str
 * takes any type); anything else is a bug and aborts. Values were validated
 * when loaded, so these cannot fail.
 */
/** @brief The value as configured (bools as "true"/"false"); NULL: unset. */
const char *eddy__settings_get_str(const eddy__settings_t *st, const char *key);
/** @brief A duration key in milliseconds. */
int64_t eddy__settings_get_ms(const eddy__settings_t *st, const char *key);
/** @brief An integer or port key. */
int eddy__settings_get_int(const eddy__settings_t *st, const char *key);
/** @brief A bool key. */
bool eddy__settings_get_bool(const eddy__settings_t *st, const char *key);
/** @brief Where the value came from: "default", "eddy.yaml:3:13",
 *         "EDDY_REST_PORT", "--rest-port". */
const char *eddy__settings_origin(const eddy__settings_t *st, const char *key);
/** @brief The layer the value came from. */
eddy__settings_layer_t eddy__settings_layer(const eddy__settings_t *st,
                                            const char *key);

/**
 * @brief Writes the key table as Markdown (the generated part of
 *        docs/configuration.md).
 */
void eddy__settings_write_reference(FILE *out);

#endif /* EDDY_COMMON_SETTINGS_H */
