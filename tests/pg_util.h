/*
 * eddy — a private PostgreSQL server for tests, and query helpers.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * tu_pg_start() runs the ENVIRONMENT.md recipe in C: a fresh data directory
 * under $TMPDIR (initdb -A trust, UTF8, --no-sync), a postmaster listening
 * on 127.0.0.1 at a free port with its socket and lock file in that
 * directory (so nothing in /var/run/postgresql is needed), fsync off and
 * max_prepared_transactions set (64 by default). As root, initdb and the
 * server run as the `postgres` user (initdb refuses root); otherwise as the
 * calling user.
 *
 * CLEAN-UP, also when a test fails. tu_pg_stop() shuts the server down
 * (fast mode) and removes the directory; call it from a cmocka group
 * teardown, which runs even when tests fail. Servers still running at
 * exit() are stopped by an atexit handler. If the test process dies
 * (abort, a signal, ctest's timeout kill), the server gets SIGQUIT from the
 * kernel (PR_SET_PDEATHSIG), so no postmaster outlives its test; only the
 * temporary directory stays behind then. The server is the child of the
 * thread that called tu_pg_start(): call it from the main thread (cmocka
 * setups run there), since the signal fires when that thread ends.
 *
 * SKIPPING. tu_pg_start() returns TU_PG_SKIP only when no PostgreSQL server
 * binaries are installed in /usr/lib/postgresql/<version>/bin (the highest
 * version is used) and EDDY_PG_BINDIR does not name another directory;
 * every other problem, including an EDDY_PG_BINDIR without a server, is a
 * failure with a message (with the tail of the server log).
 *
 * The helpers do not use cmocka, so integration tests and benchmarks can
 * use them too; they link libpq.
 */
#ifndef EDDY_TESTS_PG_UTIL_H
#define EDDY_TESTS_PG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TU_PG_OK 0
#define TU_PG_SKIP 1
#define TU_PG_FAIL (-1)

typedef struct tu_pg {
    char pg_dir[256];     /* temporary directory: data/, socket, pg.log */
    char pg_conninfo[96]; /* postgresql://postgres@127.0.0.1:PORT/postgres */
    char pg_bindir[192];
    int pg_port;
    pid_t pg_pid; /* the postmaster; 0 when not running */
} tu_pg_t;

typedef struct tu_pg_opts {
    int max_prepared_transactions; /* -1: default 64; 0 disables 2PC */
} tu_pg_opts_t;

/*
 * Starts a private server (opts may be NULL for defaults) and waits until it
 * accepts connections (30 s, scaled by EDDY_TEST_TIMEOUT_MULTIPLIER).
 * Returns TU_PG_OK, TU_PG_SKIP (no binaries; `msg` says why) or TU_PG_FAIL
 * (`msg` says why). On anything but TU_PG_OK nothing is left running.
 */
int tu_pg_start(tu_pg_t *pg, const tu_pg_opts_t *opts, char *msg,
                size_t msglen);

/* Stops the server (fast shutdown, SIGKILL after 30 s) and removes its
 * directory. Safe to call twice and on a server that never started. */
void tu_pg_stop(tu_pg_t *pg);

/*
 * Runs `sql` (one or more statements, no parameters) on a new connection.
 * Returns 0, or -1 with the server's message in `msg`.
 */
int tu_pg_exec(const char *conninfo, const char *sql, char *msg, size_t msglen);

/*
 * Runs a query and returns its rows as text, malloc'ed: columns separated
 * by '|', each row ended by '\n', SQL NULL written as "NULL". NULL on error
 * (the message in `msg`). Use ORDER BY to compare results exactly.
 */
char *tu_pg_query(const char *conninfo, const char *sql, char *msg,
                  size_t msglen);

#endif /* EDDY_TESTS_PG_UTIL_H */
