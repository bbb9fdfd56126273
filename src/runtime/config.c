/*
 * eddy — a job's configuration keys (DESIGN.md §8).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "runtime/config.h"

void eddy__random_hex(char *out, size_t nbytes)
{
    unsigned char b[64];
    nbytes = EDDY_MIN(nbytes, sizeof(b));
    bool ok = false;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ok = read(fd, b, nbytes) == (ssize_t)nbytes;
        close(fd);
    }
    if (!ok) {
        /* No urandom (a chroot): time and pid still make ids distinct. */
        uint64_t x = eddy__now_ns() ^ ((uint64_t)getpid() << 32);
        for (size_t i = 0; i < nbytes; i++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            b[i] = (unsigned char)(x >> 56);
        }
    }
    for (size_t i = 0; i < nbytes; i++) {
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    }
    out[2 * nbytes] = '\0';
}

void eddy__config_init(eddy__config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->ck_timeout_ms = 10 * 60 * 1000;
    c->ck_max_concurrent = 1;
    c->ck_retained = 3;
    c->ck_exactly_once = true;
    c->ck_dir = eddy__strdup("/tmp/eddy/checkpoints");
    c->state_backend = eddy__strdup("heap");
    c->rocksdb_dir = eddy__strdup("/tmp/eddy/rocksdb");
    c->restart_strategy = EDDY__RESTART_NONE;
    c->restart_attempts = 3;
    c->restart_delay_ms = 1000;
    c->restart_max_delay_ms = 60 * 1000;
    c->restart_multiplier = 2.0;
    c->restart_reset_ms = 60 * 60 * 1000;
    eddy__random_hex(c->job_id, 16);
}

void eddy__config_free(eddy__config_t *c)
{
    free(c->ck_dir);
    free(c->state_backend);
    free(c->rocksdb_dir);
    free(c->restore_path);
    memset(c, 0, sizeof(*c));
}

int eddy__parse_duration_ms(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0') {
        return EDDY_ERR_INVALID;
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || v < 0) {
        return EDDY_ERR_INVALID;
    }
    int64_t mul;
    if (*end == '\0' || strcmp(end, "ms") == 0) {
        mul = 1;
    } else if (strcmp(end, "s") == 0) {
        mul = 1000;
    } else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0) {
        mul = 60 * 1000;
    } else if (strcmp(end, "h") == 0) {
        mul = 3600 * 1000;
    } else {
        return EDDY_ERR_INVALID;
    }
    if (v > INT64_MAX / mul) {
        return EDDY_ERR_INVALID;
    }
    *out = (int64_t)v * mul;
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return EDDY_ERR_INVALID;
    }
    *out = (int)v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0 ||
        strcmp(s, "yes") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0 ||
        strcmp(s, "no") == 0) {
        *out = false;
        return 0;
    }
    return EDDY_ERR_INVALID;
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = eddy__strdup(v);
}

static bool is_hex32(const char *s)
{
    if (strlen(s) != 32) {
        return false;
    }
    for (int i = 0; i < 32; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

int eddy__config_set(eddy__config_t *c, const char *key, const char *v,
                     eddy_error_t *err)
{
    const char *want = NULL;
    int rc = 0;
    if (key == NULL || v == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID, "missing key or value");
    }
    if (strcmp(key, "checkpoint.interval") == 0) {
        want = "a duration (e.g. 500ms, 10s, 0 = off)";
        rc = eddy__parse_duration_ms(v, &c->ck_interval_ms);
    } else if (strcmp(key, "checkpoint.timeout") == 0) {
        want = "a positive duration (e.g. 10m)";
        rc = eddy__parse_duration_ms(v, &c->ck_timeout_ms);
        rc = rc == 0 && c->ck_timeout_ms == 0 ? EDDY_ERR_INVALID : rc;
    } else if (strcmp(key, "checkpoint.min_pause") == 0) {
        want = "a duration";
        rc = eddy__parse_duration_ms(v, &c->ck_min_pause_ms);
    } else if (strcmp(key, "checkpoint.max_concurrent") == 0) {
        want = "an integer 1..16";
        rc = parse_int(v, 1, 16, &c->ck_max_concurrent);
    } else if (strcmp(key, "checkpoint.retained") == 0) {
        want = "an integer 1..1000";
        rc = parse_int(v, 1, 1000, &c->ck_retained);
    } else if (strcmp(key, "checkpoint.mode") == 0) {
        want = "exactly_once or at_least_once";
        if (strcmp(v, "exactly_once") == 0) {
            c->ck_exactly_once = true;
        } else if (strcmp(v, "at_least_once") == 0) {
            c->ck_exactly_once = false;
        } else {
            rc = EDDY_ERR_INVALID;
        }
    } else if (strcmp(key, "checkpoint.dir") == 0) {
        want = "a directory or file:// URI";
        if (*v == '\0' || (strncmp(v, "s3://", 5) == 0)) {
            rc = EDDY_ERR_INVALID;
            want = "a directory or file:// URI (s3:// is not supported yet)";
        } else {
            set_str(&c->ck_dir, v);
        }
    } else if (strcmp(key, "state.backend") == 0) {
        want = "heap or rocksdb";
        if (strcmp(v, "heap") == 0 || strcmp(v, "rocksdb") == 0) {
            set_str(&c->state_backend, v);
        } else {
            rc = EDDY_ERR_INVALID;
        }
    } else if (strcmp(key, "state.rocksdb.dir") == 0) {
        want = "a directory";
        rc = *v ? 0 : EDDY_ERR_INVALID;
        if (rc == 0) {
            set_str(&c->rocksdb_dir, v);
        }
    } else if (strcmp(key, "restart.strategy") == 0) {
        want = "none, fixed-delay or exponential-delay";
        c->restart_explicit = true;
        if (strcmp(v, "none") == 0) {
            c->restart_strategy = EDDY__RESTART_NONE;
        } else if (strcmp(v, "fixed-delay") == 0) {
            c->restart_strategy = EDDY__RESTART_FIXED;
        } else if (strcmp(v, "exponential-delay") == 0) {
            c->restart_strategy = EDDY__RESTART_EXPONENTIAL;
        } else {
            rc = EDDY_ERR_INVALID;
        }
    } else if (strcmp(key, "restart.attempts") == 0) {
        want = "an integer 0..1000000";
        rc = parse_int(v, 0, 1000000, &c->restart_attempts);
    } else if (strcmp(key, "restart.delay") == 0) {
        want = "a duration";
        rc = eddy__parse_duration_ms(v, &c->restart_delay_ms);
    } else if (strcmp(key, "restart.max_delay") == 0) {
        want = "a duration";
        rc = eddy__parse_duration_ms(v, &c->restart_max_delay_ms);
    } else if (strcmp(key, "restart.multiplier") == 0) {
        want = "a number >= 1";
        char *end;
        double d = strtod(v, &end);
        rc = end == v || *end != '\0' || !(d >= 1.0 && d <= 1000.0)
                 ? EDDY_ERR_INVALID
                 : 0;
        if (rc == 0) {
            c->restart_multiplier = d;
        }
    } else if (strcmp(key, "savepoint.path") == 0) {
        want = "a checkpoint or savepoint directory";
        rc = *v ? 0 : EDDY_ERR_INVALID;
        if (rc == 0) {
            set_str(&c->restore_path, v);
        }
    } else if (strcmp(key, "savepoint.allow_non_restored") == 0) {
        want = "true or false";
        rc = parse_bool(v, &c->allow_non_restored);
    } else if (strcmp(key, "job.id") == 0) {
        want = "32 lowercase hex characters";
        rc = is_hex32(v) ? 0 : EDDY_ERR_INVALID;
        if (rc == 0) {
            memcpy(c->job_id, v, 33);
        }
    } else {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "unknown configuration key '%s'", key);
    }
    if (rc != 0) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "bad value '%s' for %s: expected %s", v, key,
                              want);
    }
    return 0;
}

static void put_i64(json_t *o, const char *key, int64_t v)
{
    char buf[32];
    json_object_set_new(
        o, key, json_string(eddy__fmt(buf, sizeof(buf), "%lld", (long long)v)));
}

static void put_str(json_t *o, const char *key, const char *v)
{
    json_object_set_new(o, key, json_string(v));
}

json_t *eddy__config_to_json(const eddy__config_t *c)
{
    static const char *const strategies[] = {
        [EDDY__RESTART_NONE] = "none",
        [EDDY__RESTART_FIXED] = "fixed-delay",
        [EDDY__RESTART_EXPONENTIAL] = "exponential-delay",
    };
    char buf[40];
    json_t *o = json_object();
    put_i64(o, "checkpoint.interval", c->ck_interval_ms);
    put_i64(o, "checkpoint.timeout", c->ck_timeout_ms);
    put_i64(o, "checkpoint.min_pause", c->ck_min_pause_ms);
    put_i64(o, "checkpoint.max_concurrent", c->ck_max_concurrent);
    put_i64(o, "checkpoint.retained", c->ck_retained);
    put_str(o, "checkpoint.mode",
            c->ck_exactly_once ? "exactly_once" : "at_least_once");
    put_str(o, "checkpoint.dir", c->ck_dir);
    put_str(o, "state.backend", c->state_backend);
    put_str(o, "state.rocksdb.dir", c->rocksdb_dir);
    if (c->restart_explicit && c->restart_strategy >= 0 &&
        c->restart_strategy < (int)EDDY_ARRAY_SIZE(strategies)) {
        put_str(o, "restart.strategy", strategies[c->restart_strategy]);
    }
    put_i64(o, "restart.attempts", c->restart_attempts);
    put_i64(o, "restart.delay", c->restart_delay_ms);
    put_i64(o, "restart.max_delay", c->restart_max_delay_ms);
    /* The shortest of %.15g..%.17g that strtod reads back exactly (17
     * digits always do): "1.1", not "1.1000000000000001". */
    for (int prec = 15; prec <= 17; prec++) {
        eddy__fmt(buf, sizeof(buf), "%.*g", prec, c->restart_multiplier);
        if (strtod(buf, NULL) == c->restart_multiplier) {
            break;
        }
    }
    put_str(o, "restart.multiplier", buf);
    if (c->restore_path != NULL) {
        put_str(o, "savepoint.path", c->restore_path);
    }
    put_str(o, "savepoint.allow_non_restored",
            c->allow_non_restored ? "true" : "false");
    put_str(o, "job.id", c->job_id);
    return o;
}

const char *eddy__config_ck_path(const eddy__config_t *c)
{
    if (strncmp(c->ck_dir, "file://", 7) == 0) {
        return c->ck_dir + 7;
    }
    return c->ck_dir;
}
