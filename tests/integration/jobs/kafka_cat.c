/*
 * kafka_cat — a test job that prints the values of Kafka topics.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 *   eddy run --local kafka_cat.so [-p N] -- BOOTSTRAP TOPICS
 * [raw|json|envelope] [CONNECT_TIMEOUT_MS]
 *
 * A bounded Kafka source (from the earliest offsets to the end offsets seen
 * at start) and the print sink, so the tests can check what a job reads
 * from `eddy kafka-dev` running in another process.
 */
#include <stdlib.h>
#include <string.h>

#include <eddy/eddy.h>

static int build(eddy_env_t *env, int argc, char **argv)
{
    static const char *const props[] = {"fetch.wait.max.ms", "10", NULL};
    if (argc < 2 || argc > 4) {
        return eddy_env_fail(env, "usage: kafka_cat.so -- BOOTSTRAP TOPICS "
                                  "[raw|json|envelope] [CONNECT_TIMEOUT_MS]");
    }
    eddy_kafka_source_opts_t o;
    memset(&o, 0, sizeof(o));
    o.bootstrap = argv[0];
    o.topic = argv[1];
    o.props = props;
    o.bounded = true;
    if (argc > 2 && strcmp(argv[2], "json") == 0) {
        o.format = EDDY_KAFKA_JSON;
    } else if (argc > 2 && strcmp(argv[2], "envelope") == 0) {
        o.format = EDDY_KAFKA_ENVELOPE;
    } else if (argc > 2 && strcmp(argv[2], "raw") != 0) {
        return eddy_env_fail(env, "unknown format '%s'", argv[2]);
    }
    if (argc > 3) {
        o.connect_timeout_ms = atoll(argv[3]);
    }
    eddy_stream_t *src = eddy_name(eddy_source_kafka(env, &o), "kafka");
    eddy_name(eddy_sink_print(src), "print");
    return 0;
}

EDDY_JOB("kafka-cat", build)
