/*
 * cat — a test job that prints the lines of a text file unchanged.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 *   eddy run --local cat.so [-p N] -- FILE
 *
 * The text file source and the print sink with nothing in between, so the
 * tests can check both byte for byte.
 */
#include <eddy/eddy.h>

static int build(eddy_env_t *env, int argc, char **argv)
{
    if (argc != 1) {
        return eddy_env_fail(env, "usage: cat.so -- FILE");
    }
    eddy_stream_t *lines =
        eddy_name(eddy_source_text_file(env, argv[0]), "lines");
    eddy_name(eddy_sink_print(lines), "print");
    return 0;
}

EDDY_JOB("cat", build)
