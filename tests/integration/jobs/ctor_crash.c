/*
 * ctor_crash — a job whose shared object crashes while it is being loaded
 * (in a constructor, before eddy sees the entry point).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include <eddy/eddy.h>

static int *volatile nowhere;

#if defined(__GNUC__) || defined(__clang__)
#define NO_UBSAN __attribute__((no_sanitize("undefined")))
#else
#define NO_UBSAN
#endif

NO_UBSAN __attribute__((constructor)) static void crash_on_load(void)
{
    *nowhere = 42;
}

static int build(eddy_env_t *env, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return eddy_env_fail(env, "ctor_crash: must never be built");
}

EDDY_JOB("ctor-crash", build)
