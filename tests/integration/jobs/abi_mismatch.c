/*
 * abi_mismatch — a job whose entry point claims a future ABI version.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * EDDY_JOB always stamps the ABI of the headers it is compiled with, so the
 * entry symbol is defined by hand here, as an old or future eddy would.
 */
#include <eddy/eddy.h>

static int build(eddy_env_t *env, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return eddy_env_fail(env, "abi_mismatch: must never be built");
}

EDDY_EXPORT const eddy_job_entry_t eddy_job_entry = {999, "from-the-future",
                                                     build};
