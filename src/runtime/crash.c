/*
 * eddy — crash reports for faults inside user code.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * A job's code runs in our process, so a bad pointer in a user function
 * raises SIGSEGV in an eddy thread. We cannot safely continue that process,
 * but we can say exactly where it happened: every task thread records the
 * operator whose code it runs (eddy__tls_op), and this handler turns that into
 * one line on stderr before exiting. The handler uses only async-signal-safe
 * calls (write, _exit) and reads plain fields of the operator.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime.h"

#define EDDY_CRASH_EXIT 70 /* EX_SOFTWARE */

static const char *volatile crash_phase = "running the job";
static atomic_flag crash_reported = ATOMIC_FLAG_INIT;
static _Thread_local char *thread_altstack;

void eddy__crash_set_phase(const char *phase)
{
    crash_phase = phase;
}

/* Async-signal-safe string building. */
typedef struct sbuf {
    char b[512];
    size_t n;
} sbuf_t;

static void put(sbuf_t *s, const char *p)
{
    while (*p && s->n < sizeof(s->b) - 1) {
        s->b[s->n++] = *p++;
    }
}

static void put_int(sbuf_t *s, long v)
{
    char tmp[24];
    int i = 0;
    if (v < 0) {
        put(s, "-");
        v = -v;
    }
    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && i < (int)sizeof(tmp));
    while (i > 0 && s->n < sizeof(s->b) - 1) {
        s->b[s->n++] = tmp[--i];
    }
}

static const char *signame(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV (invalid memory access)";
    case SIGBUS:
        return "SIGBUS (bus error)";
    case SIGFPE:
        return "SIGFPE (arithmetic error)";
    case SIGILL:
        return "SIGILL (illegal instruction)";
    case SIGABRT:
        return "SIGABRT (abort, e.g. a failed assert)";
    default:
        return "a fatal signal";
    }
}

static void on_fatal(int sig, siginfo_t *info, void *uctx)
{
    EDDY_UNUSED(info);
    EDDY_UNUSED(uctx);
    /* Subtasks run the same code, so several threads can fault at once:
     * only the first reports (one line); the others wait for its _exit. */
    if (atomic_flag_test_and_set(&crash_reported)) {
        for (;;) {
            pause();
        }
    }
    sbuf_t s;
    s.n = 0;
    eddy__op_t *op = eddy__tls_op;
    put(&s, "eddy: job crashed: ");
    put(&s, signame(sig));
    if (op != NULL) {
        put(&s, " in operator '");
        put(&s, op->op_ctx.cx_name);
        put(&s, "' (subtask ");
        put_int(&s, op->op_ctx.cx_subtask + 1);
        put(&s, " of ");
        put_int(&s, op->op_ctx.cx_parallelism);
        put(&s, ")");
    } else {
        put(&s, " while ");
        put(&s, crash_phase);
    }
    put(&s, "\n");
    ssize_t w = write(STDERR_FILENO, s.b, s.n);
    EDDY_UNUSED(w);
    _exit(EDDY_CRASH_EXIT);
}

void eddy__crash_guard_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fatal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
    eddy__crash_thread_init();
}

void eddy__crash_thread_init(void)
{
    /* An alternate stack lets the handler run after a stack overflow. The
     * stack is kept for the thread's life (threads are few and long-lived). */
    if (thread_altstack != NULL) {
        return;
    }
    size_t size = 64 * 1024;
    thread_altstack = malloc(size);
    if (thread_altstack == NULL) {
        return;
    }
    stack_t ss;
    memset(&ss, 0, sizeof(ss));
    ss.ss_sp = thread_altstack;
    ss.ss_size = size;
    if (sigaltstack(&ss, NULL) != 0) {
        free(thread_altstack);
        thread_altstack = NULL;
    }
}

void eddy__crash_thread_close(void)
{
    if (thread_altstack == NULL) {
        return;
    }
    stack_t ss;
    memset(&ss, 0, sizeof(ss));
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    free(thread_altstack);
    thread_altstack = NULL;
}
