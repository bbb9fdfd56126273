/*
 * eddy — the job inspector: a job's graph, built in a child process
 * (inspect.h).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * DESIGN. The parent (eddy__inspect_job) prepares everything the child
 * needs (argv, descriptors, limits) before fork, because between fork and
 * exec a child of a multi-threaded process may only make async-signal-safe
 * calls: another thread may have held the allocator's lock at the fork.
 * The child's descriptors are moved to 4 and above first, so the dup2 calls
 * onto 0..3 can never clobber one another. Exec failures come back through
 * a close-on-exec pipe (fd 3 in the child): nothing read means exec worked.
 *
 * The parent never waits for end-of-file on the pipes: a process the job
 * forked may hold them open forever. It waits for the child itself (a pidfd
 * in the poll set; a 10 ms tick where pidfds are missing), checking with
 * waitid(WNOWAIT) so the child stays a zombie, and so its pid and process
 * group id cannot be reused, until the group has been killed. Only then is
 * the child reaped and what is left in the pipes drained.
 *
 * The child's messages are untrusted bytes: they are cut to one line,
 * made valid UTF-8 (invalid bytes and control characters become '?') and
 * shortened at a character boundary before they reach an error message,
 * which may end up in a REST response.
 *
 * THREADS. See inspect.h: any thread, no shared state. The child side runs
 * on the main thread of its own process.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eddy/runner.h"
#include "jobmanager/inspect.h"

#define INSPECT_CMD "__inspect"
#define EXIT_REPORTED 1 /* the child wrote an {"error": ...} report */
#define EXIT_USAGE 2
#define EXIT_EXEC_FAILED 127
#define STDERR_TAIL 2048     /* bytes of the child's stderr kept */
#define CONTEXT_MAX 160      /* bytes of its last line in a message */
#define DRAIN_MAX (1u << 20) /* stderr read after the child is gone */
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_MAX_OUTPUT ((size_t)4 << 20)
#define DEFAULT_MAX_MEMORY ((uint64_t)2 << 30)
#define CRASH_MARKER "eddy __inspect: crashed while "

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EDDY__SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define EDDY__SANITIZED 1
#endif
#endif

/* What the child is doing, for its crash marker and the parent's report.
 * The parent only accepts these words back. */
typedef enum phase {
    PHASE_LOADING,
    PHASE_BUILDING,
    PHASE_PLANNING,
    PHASE_UNLOADING
} phase_t;

static const char *const phase_names[] = {
    [PHASE_LOADING] = "loading its shared object",
    [PHASE_BUILDING] = "building its graph",
    [PHASE_PLANNING] = "planning its graph",
    [PHASE_UNLOADING] = "unloading it",
};

/* ---- text from the child ---- */

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    unsigned cp = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

/*
 * Copies at most `max` bytes of in[0..n) into out (size > max) as one line
 * of valid UTF-8: invalid bytes and control characters become '?', and the
 * copy stops at a character boundary.
 */
static void clean_text(const char *in, size_t n, char *out, size_t max)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(s + i, n - i);
        if (o + (len > 0 ? len : 1) > max) {
            break;
        }
        if (len == 0 || (len == 1 && (s[i] < 0x20 || s[i] == 0x7f))) {
            out[o++] = '?';
            i++;
            continue;
        }
        memcpy(out + o, s + i, len);
        o += len;
        i += len;
    }
    out[o] = '\0';
}

/* A JSON string of `s`, made valid UTF-8 first if it is not (jansson
 * refuses invalid UTF-8, and job names come from user code). */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    if (j == NULL) {
        size_t n = strlen(s);
        char *c = eddy__malloc(n + 1);
        clean_text(s, n, c, n);
        j = json_string(c);
        free(c);
    }
    return j;
}

/* Sets `err` and cuts the message at a character boundary: vsnprintf may
 * have split a multi-byte character at the end of the buffer. */
static int set_error(eddy_error_t *err, int code, const char *fmt, ...)
    EDDY_PRINTF_LIKE(3, 4);

static int set_error(eddy_error_t *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    eddy_error_setv(err, code, fmt, ap);
    va_end(ap);
    if (err != NULL) {
        size_t n = strlen(err->msg), i = 0;
        while (i < n) {
            size_t len = utf8_seq((unsigned char *)err->msg + i, n - i);
            if (len == 0) {
                break;
            }
            i += len;
        }
        err->msg[i] = '\0';
    }
    return code;
}

static const char *fmt_ms(char *buf, size_t size, int64_t ms)
{
    if (ms % 1000 == 0) {
        return eddy__fmt(buf, size, "%lld s", (long long)(ms / 1000));
    }
    return eddy__fmt(buf, size, "%lld ms", (long long)ms);
}

static const char *sig_name(char *buf, size_t size, int sig)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev != NULL) {
        return eddy__fmt(buf, size, "SIG%s", abbrev);
    }
    return eddy__fmt(buf, size, "signal %d", sig);
}

/* ---- plan JSON ---- */

json_t *eddy__plan_to_json(eddy_env_t *env, const eddy__plan_t *pl)
{
    json_t *vertices = json_array();
    json_t *edges = json_array();
    json_int_t tasks = 0;
    for (int v = 0; v < pl->pl_nvertices; v++) {
        const eddy__vertex_t *vx = &pl->pl_vertices[v];
        json_t *ops = json_array();
        bool sink = false;
        for (int i = 0; i < vx->vx_nnodes; i++) {
            const eddy_stream_t *s = env->e_nodes[vx->vx_nodes[i]];
            sink |= s->s_class->oc_sink;
            json_array_append_new(ops, json_pack("{s:i, s:o, s:o}", "node",
                                                 s->s_id, "uid", jstr(s->s_uid),
                                                 "name", jstr(s->s_name)));
        }
        json_array_append_new(
            vertices,
            json_pack("{s:i, s:o, s:i, s:b, s:b, s:o}", "index", v, "name",
                      jstr(vx->vx_name), "parallelism", vx->vx_parallelism,
                      "source", env->e_nodes[vx->vx_head]->s_class->oc_source,
                      "sink", sink, "operators", ops));
        tasks += vx->vx_parallelism;
    }
    for (int e = 0; e < pl->pl_nedges; e++) {
        const eddy__edge_t *ed = &pl->pl_edges[e];
        if (ed->ed_chained) {
            continue;
        }
        json_array_append_new(
            edges,
            json_pack("{s:i, s:i, s:s}", "from", pl->pl_vertex_of[ed->ed_src],
                      "to", pl->pl_vertex_of[ed->ed_dst], "partitioner",
                      eddy__partitioner_name(ed->ed_part)));
    }
    return json_pack("{s:i, s:o, s:i, s:o, s:o, s:o, s:o, s:I}", "format",
                     EDDY__PLAN_FORMAT, "name", jstr(env->e_name),
                     "max_parallelism", env->e_max_parallelism, "config",
                     eddy__config_to_json(&env->e_cfg), "vertices", vertices,
                     "edges", edges, "operators",
                     eddy__plan_operators_json(env, pl), "tasks", tasks);
}

static bool int_in(const json_t *j, json_int_t lo, json_int_t hi)
{
    return json_is_integer(j) && json_integer_value(j) >= lo &&
           json_integer_value(j) <= hi;
}

static bool nonempty_string(const json_t *j)
{
    return json_is_string(j) && json_string_length(j) > 0;
}

static bool known_partitioner(const char *s)
{
#define XX(name, str)                                                          \
    if (EDDY__PART_##name != EDDY__PART_DEFAULT && strcmp(s, str) == 0) {      \
        return true;                                                           \
    }
    EDDY__PARTITIONER_MAP(XX)
#undef XX
    return false;
}

#define INVALID(...)                                                           \
    do {                                                                       \
        eddy__fmt(why, size, __VA_ARGS__);                                     \
        return false;                                                          \
    } while (0)

static bool vertex_valid(const json_t *vx, size_t v, json_int_t maxp,
                         const json_t *operators, size_t *nops, char *why,
                         size_t size)
{
    const json_t *ops = json_object_get(vx, "operators");
    json_int_t p = json_integer_value(json_object_get(vx, "parallelism"));
    if (!json_is_object(vx) ||
        json_integer_value(json_object_get(vx, "index")) != (json_int_t)v ||
        !json_is_integer(json_object_get(vx, "index"))) {
        INVALID("vertex %zu: not an object with index %zu", v, v);
    }
    if (!nonempty_string(json_object_get(vx, "name")) ||
        !int_in(json_object_get(vx, "parallelism"), 1, maxp) ||
        !json_is_boolean(json_object_get(vx, "source")) ||
        !json_is_boolean(json_object_get(vx, "sink")) || !json_is_array(ops) ||
        json_array_size(ops) == 0) {
        INVALID("vertex %zu: needs a name, a parallelism 1..%lld, source, "
                "sink and operators",
                v, (long long)maxp);
    }
    for (size_t i = 0; i < json_array_size(ops); i++) {
        const json_t *op = json_array_get(ops, i);
        const json_t *uid = json_object_get(op, "uid");
        if (!json_is_object(op) ||
            !int_in(json_object_get(op, "node"), 0, INT_MAX) ||
            !nonempty_string(uid) ||
            !json_is_string(json_object_get(op, "name"))) {
            INVALID("vertex %zu, operator %zu: needs a node, uid and name", v,
                    i);
        }
        const json_t *info = json_object_get(operators, json_string_value(uid));
        if (!json_is_object(info) ||
            json_integer_value(json_object_get(info, "parallelism")) != p) {
            INVALID("vertex %zu: operator '%s' is not listed in operators "
                    "with parallelism %lld",
                    v, json_string_value(uid), (long long)p);
        }
    }
    *nops += json_array_size(ops);
    return true;
}

bool eddy__plan_json_valid(const json_t *plan, char *why, size_t size)
{
    const json_t *vertices = json_object_get(plan, "vertices");
    const json_t *edges = json_object_get(plan, "edges");
    const json_t *operators = json_object_get(plan, "operators");
    const json_t *config = json_object_get(plan, "config");
    const json_t *val;
    const char *key;
    json_int_t maxp, tasks = 0;
    size_t nops = 0;
    bool source = false;

    if (!json_is_object(plan)) {
        INVALID("not a JSON object");
    }
    if (!int_in(json_object_get(plan, "format"), EDDY__PLAN_FORMAT,
                EDDY__PLAN_FORMAT)) {
        INVALID("format is not %d", EDDY__PLAN_FORMAT);
    }
    if (!nonempty_string(json_object_get(plan, "name"))) {
        INVALID("no job name");
    }
    if (!int_in(json_object_get(plan, "max_parallelism"), 1, 32768)) {
        INVALID("max_parallelism is not an integer 1..32768");
    }
    maxp = json_integer_value(json_object_get(plan, "max_parallelism"));
    if (!json_is_object(config)) {
        INVALID("config is not an object");
    }
    json_object_foreach((json_t *)config, key, val)
    {
        if (!json_is_string(val)) {
            INVALID("config key '%s' is not a string", key);
        }
    }
    if (!json_is_object(operators)) {
        INVALID("operators is not an object");
    }
    json_object_foreach((json_t *)operators, key, val)
    {
        if (!json_is_object(val) ||
            !json_is_string(json_object_get(val, "name")) ||
            !int_in(json_object_get(val, "parallelism"), 1, maxp) ||
            !int_in(json_object_get(val, "max_parallelism"), maxp, maxp)) {
            INVALID("operator '%s': needs a name, a parallelism and the "
                    "max_parallelism",
                    key);
        }
    }
    if (!json_is_array(vertices) || json_array_size(vertices) == 0) {
        INVALID("no vertices");
    }
    for (size_t v = 0; v < json_array_size(vertices); v++) {
        const json_t *vx = json_array_get(vertices, v);
        if (!vertex_valid(vx, v, maxp, operators, &nops, why, size)) {
            return false;
        }
        tasks += json_integer_value(json_object_get(vx, "parallelism"));
        source |= json_is_true(json_object_get(vx, "source"));
    }
    if (!source) {
        INVALID("no source vertex");
    }
    if (nops != json_object_size(operators)) {
        INVALID("the vertices hold %zu operators, operators lists %zu", nops,
                json_object_size(operators));
    }
    if (!json_is_array(edges)) {
        INVALID("edges is not an array");
    }
    for (size_t e = 0; e < json_array_size(edges); e++) {
        const json_t *ed = json_array_get(edges, e);
        const json_t *part = json_object_get(ed, "partitioner");
        json_int_t nv = (json_int_t)json_array_size(vertices);
        /* Vertices are numbered in topological order, so an edge always
         * leads to a later vertex: the plan is acyclic. */
        if (!json_is_object(ed) ||
            !int_in(json_object_get(ed, "from"), 0, nv - 1) ||
            !int_in(json_object_get(ed, "to"), 0, nv - 1) ||
            json_integer_value(json_object_get(ed, "from")) >=
                json_integer_value(json_object_get(ed, "to")) ||
            !json_is_string(part) ||
            !known_partitioner(json_string_value(part))) {
            INVALID("edge %zu: needs from < to (vertex indexes) and a "
                    "partitioner",
                    e);
        }
    }
    if (!int_in(json_object_get(plan, "tasks"), tasks, tasks)) {
        INVALID("tasks is not the sum of the vertex parallelisms (%lld)",
                (long long)tasks);
    }
    return true;
}

#undef INVALID

/* ---- the child ---- */

static volatile sig_atomic_t child_phase = PHASE_LOADING;

/* Writes the phase marker, then dies of the same signal (SA_RESETHAND put
 * the default action back), so the parent sees which signal it was.
 * Async-signal-safe: write and raise only. */
static void on_fatal(int sig)
{
    char buf[128];
    size_t n = 0;
    const char *parts[] = {"\n" CRASH_MARKER, phase_names[child_phase], "\n"};
    for (size_t k = 0; k < EDDY_ARRAY_SIZE(parts); k++) {
        for (const char *p = parts[k]; *p != '\0' && n < sizeof(buf); p++) {
            buf[n++] = *p;
        }
    }
    ssize_t w = write(STDERR_FILENO, buf, n);
    EDDY_UNUSED(w);
    raise(sig);
}

static void install_fatal_handlers(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS,  SIGFPE, SIGILL,
                               SIGABRT, SIGTRAP, SIGSYS, SIGXCPU};
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    /* A stack overflow leaves no stack for the handler. */
    eddy__crash_thread_init();
    for (size_t i = 0; i < EDDY_ARRAY_SIZE(sigs); i++) {
        sigaction(sigs[i], &sa, NULL);
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return EDDY_ERR_IO;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_json(int fd, const json_t *doc)
{
    char *s = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    int rc = s != NULL ? write_all(fd, s, strlen(s)) : EDDY_ERR_NOMEM;
    if (rc == 0) {
        rc = write_all(fd, "\n", 1);
    }
    free(s);
    return rc;
}

/* Reports a failure the child understands: one line on stderr for a human
 * running `eddy __inspect` by hand, the {"error": ...} document for the
 * parent. */
static int child_report(int out_fd, int code, const char *msg)
{
    char clean[sizeof(((eddy_error_t *)0)->msg)];
    clean_text(msg, strlen(msg), clean, sizeof(clean) - 1);
    fprintf(stderr, "eddy __inspect: %s\n", clean);
    fflush(stderr);
    json_t *doc = json_pack("{s:{s:s, s:s}}", "error", "code",
                            eddy_err_name(code), "message", clean);
    write_json(out_fd, doc);
    json_decref(doc);
    return EXIT_REPORTED;
}

/* The loader's NOT_A_JOB messages start with the path ("'x.so' is not a
 * loadable shared object: ..."); they all become "'x.so' is not an eddy
 * job: it is not a loadable shared object: ...". */
static void not_a_job_msg(const char *path, const char *msg, char *out,
                          size_t size)
{
    size_t plen = strlen(path);
    const char *rest = NULL;
    if (msg[0] == '\'' && strncmp(msg + 1, path, plen) == 0 &&
        strncmp(msg + 1 + plen, "' ", 2) == 0) {
        rest = msg + plen + 3;
    }
    if (rest != NULL && strncmp(rest, "is not an eddy job", 18) == 0) {
        eddy__fmt(out, size, "%s", msg);
    } else if (rest != NULL) {
        eddy__fmt(out, size, "'%s' is not an eddy job: it %s", path, rest);
    } else {
        eddy__fmt(out, size, "'%s' is not an eddy job: %s", path, msg);
    }
}

/* Names and uids become JSON strings and uids key the checkpoint state:
 * they must be valid UTF-8, and uids unique (a user uid may collide with a
 * derived "auto-N" one). */
static int check_names(eddy_env_t *env, eddy_error_t *err)
{
    for (size_t i = 0; i < env->e_nnodes; i++) {
        const eddy_stream_t *s = env->e_nodes[i];
        json_t *a = json_string(s->s_name);
        json_t *b = json_string(s->s_uid);
        json_decref(a);
        json_decref(b);
        if (a == NULL || b == NULL) {
            return eddy_error_set(err, EDDY_ERR_INVALID,
                                  "the %s of operator %zu is not valid UTF-8",
                                  a == NULL ? "name" : "uid", i);
        }
        for (size_t k = 0; k < i; k++) {
            if (s->s_kind == EDDY__NODE_OPERATOR &&
                env->e_nodes[k]->s_kind == EDDY__NODE_OPERATOR &&
                strcmp(env->e_nodes[k]->s_uid, s->s_uid) == 0) {
                return eddy_error_set(err, EDDY_ERR_INVALID,
                                      "operators '%s' and '%s' have the same "
                                      "uid '%s'",
                                      env->e_nodes[k]->s_name, s->s_name,
                                      s->s_uid);
            }
        }
    }
    json_t *n = json_string(env->e_name);
    json_decref(n);
    if (n == NULL) {
        return eddy_error_set(err, EDDY_ERR_INVALID,
                              "the job name is not valid UTF-8");
    }
    return 0;
}

int eddy__inspect_main(int argc, char **argv)
{
    const char *path = NULL;
    int par = 1, jargc = 0, status = EXIT_REPORTED, rc;
    char **jargv = NULL;
    char msg[sizeof(((eddy_error_t *)0)->msg)];
    eddy_job_t *job = NULL;
    eddy_env_t *env = NULL;
    eddy__plan_t *pl = NULL;
    json_t *doc = NULL;
    eddy_error_t err;
    eddy_error_clear(&err);

    /* The plan's descriptor is private from here on: user code writing to
     * stdout (printf, fd 1) writes to stderr. */
    fflush(stdout);
    int out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    if (out_fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        fprintf(stderr, "eddy __inspect: cannot set up stdout: %s\n",
                strerror(errno));
        return EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--") == 0) {
            jargc = argc - i - 1;
            jargv = argv + i + 1;
            break;
        } else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) {
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            if (errno != 0 || *end != '\0' || end == argv[i] || v < 1 ||
                v > 32768) {
                path = NULL;
                break;
            }
            par = (int)v;
        } else if (path == NULL && i == 2) {
            path = argv[i];
        } else {
            path = NULL;
            break;
        }
    }
    if (path == NULL) {
        child_report(out_fd, EDDY_ERR_INVALID,
                     "usage: eddy " INSPECT_CMD
                     " JOB.so [-p N] [-- JOB ARGS...]");
        close(out_fd);
        return EXIT_USAGE;
    }

    install_fatal_handlers();
    child_phase = PHASE_LOADING;
    rc = eddy_job_open(path, &job, &err);
    if (rc == EDDY_ERR_NOT_A_JOB) {
        not_a_job_msg(path, err.msg, msg, sizeof(msg));
        child_report(out_fd, rc, msg);
        goto done;
    } else if (rc != 0) {
        child_report(out_fd, rc, err.msg);
        goto done;
    }
    env = eddy_env_new();
    eddy_env_set_default_parallelism(env, par);
    child_phase = PHASE_BUILDING;
    rc = eddy_job_build(job, env, jargc, jargv, &err);
    child_phase = PHASE_PLANNING;
    if (rc != 0) {
        eddy__fmt(msg, sizeof(msg), "the job's build function failed: %s",
                  err.msg);
        child_report(out_fd, EDDY_ERR_USER, msg);
        goto done;
    }
    eddy__plan_assign_uids(env);
    rc = check_names(env, &err);
    if (rc == 0) {
        rc = eddy__plan_build(env, &pl, &err);
    }
    if (rc != 0) {
        eddy__fmt(msg, sizeof(msg), "the job's graph is invalid: %s", err.msg);
        child_report(out_fd, EDDY_ERR_INVALID, msg);
        goto done;
    }
    doc = eddy__plan_to_json(env, pl);
    if (write_json(out_fd, doc) != 0) {
        fprintf(stderr, "eddy __inspect: cannot write the plan: %s\n",
                strerror(errno));
        goto done;
    }
    status = 0;

done:
    json_decref(doc);
    eddy__plan_destroy(pl);
    /* Unloading runs the job's destructors: still user code. */
    child_phase = PHASE_UNLOADING;
    eddy_env_destroy(env);
    eddy_job_close(job);
    close(out_fd);
    return status;
}

/* ---- the parent ---- */

void eddy__inspect_options_init(eddy__inspect_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->io_exe = "/proc/self/exe";
    o->io_timeout_ms = DEFAULT_TIMEOUT_MS;
    o->io_max_output = DEFAULT_MAX_OUTPUT;
#ifdef EDDY__SANITIZED
    o->io_max_memory = 0;
#else
    o->io_max_memory = DEFAULT_MAX_MEMORY;
#endif
}

/* Everything the child does between fork and exec, prepared beforehand. */
typedef struct child_setup {
    const char *cs_exe;
    char **cs_argv;
    int cs_stdin;  /* /dev/null */
    int cs_stdout; /* write ends of the pipes */
    int cs_stderr;
    int cs_exec_err; /* write end of the exec-error pipe */
    int cs_maxfd;    /* close_range fallback: close 4..maxfd-1 */
    pid_t cs_parent;
    bool cs_limit_as;
    struct rlimit cs_as;
    bool cs_limit_cpu;
    struct rlimit cs_cpu;
} child_setup_t;

/* Runs in the forked child: async-signal-safe calls only. */
static _Noreturn void child_exec(const child_setup_t *cs)
{
    static const struct rlimit no_core = {0, 0};
    int ef = cs->cs_exec_err;
    int e;
    setpgid(0, 0);
    /* Die with the parent's thread that started us, and not run on if it
     * is already gone. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != cs->cs_parent) {
        _exit(EXIT_EXEC_FAILED);
    }
    if (dup2(cs->cs_exec_err, 3) < 0) {
        goto fail;
    }
    ef = 3;
    if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0 || dup2(cs->cs_stdin, 0) < 0 ||
        dup2(cs->cs_stdout, 1) < 0 || dup2(cs->cs_stderr, 2) < 0) {
        goto fail;
    }
    if (close_range(4, ~0U, 0) != 0) {
        for (int fd = 4; fd < cs->cs_maxfd; fd++) {
            close(fd);
        }
    }
    if (setrlimit(RLIMIT_CORE, &no_core) != 0 ||
        (cs->cs_limit_as && setrlimit(RLIMIT_AS, &cs->cs_as) != 0) ||
        (cs->cs_limit_cpu && setrlimit(RLIMIT_CPU, &cs->cs_cpu) != 0)) {
        goto fail;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            sigaction(sig, &dfl, NULL); /* fails for glibc's own: fine */
        }
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(cs->cs_exe, cs->cs_argv);
fail:
    e = errno;
    if (write(ef, &e, sizeof(e)) < 0) {
        /* Nothing else to do: the parent sees status 127. */
    }
    _exit(EXIT_EXEC_FAILED);
}

typedef struct inspect_run {
    pid_t ir_pid;
    int ir_out; /* read ends, non-blocking; -1 once at end of file */
    int ir_err;
    int ir_exec_err;
    char *ir_buf; /* stdout: the plan */
    size_t ir_len;
    size_t ir_cap;
    size_t ir_max;
    char ir_tail[STDERR_TAIL]; /* stderr: a ring of its last bytes */
    uint64_t ir_tail_total;
    bool ir_overflow;
    bool ir_timed_out;
    bool ir_exited;
} inspect_run_t;

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Moves fd to 4 or above (keeping close-on-exec): see DESIGN above. */
static int fd_above3(int fd)
{
    if (fd < 0 || fd > 3) {
        return fd;
    }
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 4);
    close(fd);
    return nfd;
}

/* Reads what `*fd` has now, up to `budget` bytes; closes it at end of
 * file. */
static void drain(inspect_run_t *r, int *fd, size_t budget)
{
    char chunk[16384];
    while (*fd >= 0 && budget > 0) {
        ssize_t n = read(*fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                close_fd(fd);
            }
            return;
        }
        if (n == 0) {
            close_fd(fd);
            return;
        }
        budget -= EDDY_MIN(budget, (size_t)n);
        if (fd == &r->ir_out) {
            if (r->ir_len + (size_t)n > r->ir_max) {
                r->ir_overflow = true;
                return;
            }
            eddy__grow((void **)&r->ir_buf, &r->ir_cap, r->ir_len + (size_t)n,
                       1);
            memcpy(r->ir_buf + r->ir_len, chunk, (size_t)n);
            r->ir_len += (size_t)n;
        } else {
            /* Only the last STDERR_TAIL bytes can survive in the ring. */
            size_t skip = (size_t)n > STDERR_TAIL ? (size_t)n - STDERR_TAIL : 0;
            r->ir_tail_total += skip;
            for (size_t i = skip; i < (size_t)n; i++) {
                r->ir_tail[r->ir_tail_total++ % STDERR_TAIL] = chunk[i];
            }
        }
    }
}

/* Whether the child has ended, leaving it a zombie (WNOWAIT). */
static bool child_ended(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    for (;;) {
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0) {
            return si.si_pid == pid;
        }
        if (errno != EINTR) {
            return true; /* ECHILD: reaped by someone else; stop waiting */
        }
    }
}

/* Reads the child's output until it ends, the deadline passes or the plan
 * is too large. */
static void watch(inspect_run_t *r, int64_t timeout_ms)
{
    uint64_t deadline = eddy__now_ns() + (uint64_t)timeout_ms * 1000000u;
#ifdef SYS_pidfd_open
    int pidfd = (int)syscall(SYS_pidfd_open, r->ir_pid, 0);
#else
    int pidfd = -1;
#endif
    for (;;) {
        if (child_ended(r->ir_pid)) {
            r->ir_exited = true;
            break;
        }
        uint64_t now = eddy__now_ns();
        if (now >= deadline) {
            r->ir_timed_out = true;
            break;
        }
        int wait_ms = (int)EDDY_MIN((deadline - now + 999999) / 1000000,
                                    (uint64_t)INT_MAX);
        if (pidfd < 0) {
            wait_ms = EDDY_MIN(wait_ms, 10);
        }
        struct pollfd p[3];
        nfds_t n = 0;
        if (r->ir_out >= 0) {
            p[n++] = (struct pollfd){.fd = r->ir_out, .events = POLLIN};
        }
        if (r->ir_err >= 0) {
            p[n++] = (struct pollfd){.fd = r->ir_err, .events = POLLIN};
        }
        if (pidfd >= 0) {
            p[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        }
        if (poll(p, n, wait_ms) < 0 && errno != EINTR) {
            /* Cannot happen with valid descriptors; do not spin. */
            struct timespec ts = {0, 10 * 1000000};
            nanosleep(&ts, NULL);
        }
        drain(r, &r->ir_out, r->ir_max + 1);
        drain(r, &r->ir_err, DRAIN_MAX);
        if (r->ir_overflow) {
            break;
        }
    }
    if (pidfd >= 0) {
        close(pidfd);
    }
}

/* The child's stderr tail as text: its last line (without the crash
 * marker) cleaned into `line`, and the phase from the marker (-1: none). */
static int stderr_context(const inspect_run_t *r, char *line, size_t size)
{
    char text[STDERR_TAIL + 1];
    size_t n = (size_t)EDDY_MIN(r->ir_tail_total, (uint64_t)STDERR_TAIL);
    size_t start = r->ir_tail_total > STDERR_TAIL
                       ? (size_t)(r->ir_tail_total % STDERR_TAIL)
                       : 0;
    int phase = -1;
    for (size_t i = 0; i < n; i++) {
        char c = r->ir_tail[(start + i) % STDERR_TAIL];
        text[i] = c == '\0' ? '?' : c;
    }
    text[n] = '\0';
    char *m = NULL;
    for (char *p = strstr(text, "\n" CRASH_MARKER); p != NULL;
         p = strstr(p + 1, "\n" CRASH_MARKER)) {
        m = p;
    }
    if (m != NULL) {
        const char *what = m + 1 + strlen(CRASH_MARKER);
        for (int k = 0; k < (int)EDDY_ARRAY_SIZE(phase_names); k++) {
            size_t len = strlen(phase_names[k]);
            if (strncmp(what, phase_names[k], len) == 0 &&
                (what[len] == '\n' || what[len] == '\0')) {
                phase = k;
            }
        }
        *m = '\0';
        n = (size_t)(m - text);
    }
    /* The last non-blank line; the first one may be cut by the ring. */
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' ||
                     text[n - 1] == ' ' || text[n - 1] == '\t')) {
        n--;
    }
    size_t b = n;
    while (b > 0 && text[b - 1] != '\n') {
        b--;
    }
    clean_text(text + b, n - b, line, EDDY_MIN(size - 1, CONTEXT_MAX));
    return phase;
}

/* The child's {"error": ...} report, if stdout holds one. */
static bool reported_error(const inspect_run_t *r, eddy_error_t *err, int *rc)
{
    json_t *doc = json_loadb(r->ir_buf != NULL ? r->ir_buf : "", r->ir_len,
                             JSON_REJECT_DUPLICATES, NULL);
    const json_t *e = json_object_get(doc, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    bool ok = false;
    if (code != NULL && msg != NULL) {
        char clean[sizeof(err->msg)];
        clean_text(msg, strlen(msg), clean, sizeof(clean) - 1);
        *rc = EDDY_ERR_INVALID;
#define XX(name, val, s)                                                       \
    if (strcmp(code, "EDDY_ERR_" #name) == 0) {                                \
        *rc = val;                                                             \
    }
        EDDY_ERRNO_MAP(XX)
#undef XX
        set_error(err, *rc, "%s", clean);
        ok = true;
    }
    json_decref(doc);
    return ok;
}

/* Turns how the child ended into the result. */
static int conclude(const inspect_run_t *r, const char *exe, int64_t timeout_ms,
                    int status, int exec_errno, json_t **plan,
                    eddy_error_t *err)
{
    char line[CONTEXT_MAX + 1], what[64], why[160];
    int phase = stderr_context(r, line, sizeof(line));
    const char *sep = line[0] != '\0' ? ": " : "";
    const char *during = phase_names[phase >= 0 ? phase : PHASE_BUILDING];
    int rc;

    if (exec_errno != 0) {
        return set_error(err, EDDY_ERR_IO,
                         "cannot run the job inspector '%s': %s", exe,
                         strerror(exec_errno));
    }
    if (r->ir_timed_out) {
        return set_error(err, EDDY_ERR_TIMEOUT,
                         "the job did not finish building its graph within "
                         "%s",
                         fmt_ms(what, sizeof(what), timeout_ms));
    }
    if (r->ir_overflow) {
        return set_error(err, EDDY_ERR_FORMAT,
                         "the job's graph description is larger than %zu "
                         "bytes",
                         r->ir_max);
    }
    if (status < 0) {
        return set_error(err, EDDY_ERR_IO,
                         "the job inspector's exit status was lost (is "
                         "SIGCHLD ignored?)");
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU) {
        return set_error(err, EDDY_ERR_TIMEOUT,
                         "the job used more CPU time than allowed while %s",
                         during);
    }
    if (WIFSIGNALED(status)) {
        return set_error(
            err, EDDY_ERR_CRASHED, "the job crashed while %s (%s)%s%s", during,
            sig_name(what, sizeof(what), WTERMSIG(status)), sep, line);
    }
    int code = WEXITSTATUS(status);
    if (code == EXIT_REPORTED && reported_error(r, err, &rc)) {
        return rc;
    }
    if (code != 0 || r->ir_len == 0) {
        return set_error(err, EDDY_ERR_USER,
                         "the job exited (status %d) while %s%s%s", code,
                         during, sep, line);
    }
    json_error_t jerr;
    json_t *doc =
        json_loadb(r->ir_buf, r->ir_len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        return set_error(err, EDDY_ERR_FORMAT,
                         "the job inspector printed no valid JSON (%s)",
                         jerr.text);
    }
    if (!eddy__plan_json_valid(doc, why, sizeof(why))) {
        json_decref(doc);
        return set_error(err, EDDY_ERR_FORMAT,
                         "the job inspector printed a malformed plan: %s", why);
    }
    *plan = doc;
    return 0;
}

int eddy__inspect_job(const eddy__inspect_options_t *o, const char *so_path,
                      int parallelism, char *const *args, int nargs,
                      json_t **plan, eddy_error_t *err)
{
    eddy__inspect_options_t defaults;
    inspect_run_t r;
    child_setup_t cs;
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, execp[2] = {-1, -1};
    int devnull = -1, status = -1, exec_errno = 0, rc;
    char pbuf[16];
    char **argv = NULL;
    sigset_t all, old;
    struct rlimit nofile;

    *plan = NULL;
    memset(&r, 0, sizeof(r));
    r.ir_out = r.ir_err = r.ir_exec_err = -1;
    eddy__inspect_options_init(&defaults);
    if (o == NULL) {
        o = &defaults;
    }
    const char *exe = o->io_exe != NULL ? o->io_exe : defaults.io_exe;
    if (so_path == NULL || so_path[0] == '\0' || nargs < 0 ||
        (nargs > 0 && args == NULL)) {
        return set_error(err, EDDY_ERR_INVALID, "no job file given");
    }
    int64_t timeout_ms =
        o->io_timeout_ms > 0 ? o->io_timeout_ms : DEFAULT_TIMEOUT_MS;
    r.ir_max = o->io_max_output > 0 ? o->io_max_output : DEFAULT_MAX_OUTPUT;

    /* argv: exe __inspect JOB.so -p N [-- args...] */
    argv = eddy__calloc((size_t)nargs + 7, sizeof(char *));
    int ac = 0;
    argv[ac++] = (char *)exe;
    argv[ac++] = INSPECT_CMD;
    argv[ac++] = (char *)so_path;
    argv[ac++] = "-p";
    argv[ac++] = eddy__fmt(pbuf, sizeof(pbuf), "%d", EDDY_MAX(parallelism, 1));
    if (nargs > 0) {
        argv[ac++] = "--";
        for (int i = 0; i < nargs; i++) {
            argv[ac++] = args[i];
        }
    }

    if (pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0 ||
        pipe2(execp, O_CLOEXEC) != 0 ||
        (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        rc = set_error(err, EDDY_ERR_IO, "cannot start the job inspector: %s",
                       strerror(errno));
        goto out;
    }
    outp[0] = fd_above3(outp[0]);
    outp[1] = fd_above3(outp[1]);
    errp[0] = fd_above3(errp[0]);
    errp[1] = fd_above3(errp[1]);
    execp[0] = fd_above3(execp[0]);
    execp[1] = fd_above3(execp[1]);
    devnull = fd_above3(devnull);
    if (outp[0] < 0 || outp[1] < 0 || errp[0] < 0 || errp[1] < 0 ||
        execp[0] < 0 || execp[1] < 0 || devnull < 0) {
        rc = set_error(err, EDDY_ERR_IO,
                       "cannot start the job inspector: out of descriptors");
        goto out;
    }

    memset(&cs, 0, sizeof(cs));
    cs.cs_exe = exe;
    cs.cs_argv = argv;
    cs.cs_stdin = devnull;
    cs.cs_stdout = outp[1];
    cs.cs_stderr = errp[1];
    cs.cs_exec_err = execp[1];
    cs.cs_maxfd = getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
                          nofile.rlim_cur != RLIM_INFINITY
                      ? (int)EDDY_MIN(nofile.rlim_cur, (rlim_t)65536)
                      : 65536;
    cs.cs_parent = getpid();
    if (o->io_max_memory > 0) {
        cs.cs_limit_as = true;
        cs.cs_as.rlim_cur = cs.cs_as.rlim_max = (rlim_t)o->io_max_memory;
    }
    /* A backstop for when the parent cannot kill the child: CPU time a
     * little above the wall-clock limit (SIGXCPU, then SIGKILL). */
    cs.cs_limit_cpu = true;
    cs.cs_cpu.rlim_cur = (rlim_t)((timeout_ms + 999) / 1000 + 1);
    cs.cs_cpu.rlim_max = cs.cs_cpu.rlim_cur + 1;

    /* No signal handler of this process may run in the child before it
     * has reset the dispositions. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r.ir_pid = fork();
    int fork_errno = errno;
    if (r.ir_pid == 0) {
        child_exec(&cs);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close_fd(&outp[1]);
    close_fd(&errp[1]);
    close_fd(&execp[1]);
    close_fd(&devnull);
    if (r.ir_pid < 0) {
        rc = set_error(err, EDDY_ERR_IO, "cannot start the job inspector: %s",
                       strerror(fork_errno));
        goto out;
    }
    /* Also here, so that a kill of the group cannot precede the child's own
     * setpgid (EACCES once it has exec'd: then it did it). */
    setpgid(r.ir_pid, r.ir_pid);

    r.ir_out = outp[0];
    r.ir_err = errp[0];
    r.ir_exec_err = execp[0];
    outp[0] = errp[0] = execp[0] = -1;
    fcntl(r.ir_out, F_SETFL, O_NONBLOCK);
    fcntl(r.ir_err, F_SETFL, O_NONBLOCK);
    fcntl(r.ir_exec_err, F_SETFL, O_NONBLOCK);

    watch(&r, timeout_ms);

    /* The group goes in any case: the child if it still runs, and whatever
     * it forked. A child that left the group is killed by pid. */
    kill(-r.ir_pid, SIGKILL);
    if (!r.ir_exited) {
        kill(r.ir_pid, SIGKILL);
    }
    for (;;) {
        int st;
        pid_t w = waitpid(r.ir_pid, &st, 0);
        if (w == r.ir_pid) {
            status = st;
            break;
        }
        if (w < 0 && errno != EINTR) {
            break;
        }
    }
    if (!r.ir_overflow && !r.ir_timed_out) {
        drain(&r, &r.ir_out, r.ir_max + 1);
        drain(&r, &r.ir_err, DRAIN_MAX);
    }
    int e = 0;
    if (read(r.ir_exec_err, &e, sizeof(e)) == (ssize_t)sizeof(e)) {
        exec_errno = e != 0 ? e : EIO;
    }
    rc = conclude(&r, exe, timeout_ms, status, exec_errno, plan, err);

out:
    close_fd(&outp[0]);
    close_fd(&outp[1]);
    close_fd(&errp[0]);
    close_fd(&errp[1]);
    close_fd(&execp[0]);
    close_fd(&execp[1]);
    close_fd(&devnull);
    close_fd(&r.ir_out);
    close_fd(&r.ir_err);
    close_fd(&r.ir_exec_err);
    free(r.ir_buf);
    free(argv);
    return rc;
}
