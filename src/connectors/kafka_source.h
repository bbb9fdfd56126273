/*
 * eddy — the Kafka source: internals shared with partitions.c and the tests.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * The design is described at the top of kafka_source.c.
 */
#ifndef EDDY_CONNECTORS_KAFKA_SOURCE_H
#define EDDY_CONNECTORS_KAFKA_SOURCE_H

#include "runtime/runtime.h"

/* The operator class of eddy_source_kafka (its s_config starts with an
 * eddy__wm_source_conf_t, so eddy_source_with_watermarks applies). */
extern const eddy__op_class_t eddy__kafka_source_class;

/* Name of the operator list state (UNION mode) holding the offsets. */
#define EDDY__KAFKA_OFFSETS_STATE "kafka-offsets"

/*
 * The subtask (of `parallelism`) that reads `partition` of `topic`:
 * (start(topic) + partition) % parallelism, where start(topic) is the
 * topic's stable 64-bit hash modulo the parallelism. Consecutive partitions
 * of a topic go to consecutive subtasks, and different topics start at
 * different subtasks, as Flink's KafkaTopicPartitionAssigner does.
 */
int eddy__kafka_partition_owner(const char *topic, int32_t partition,
                                int parallelism);

/*
 * One element of the offsets state: the next offset to read from `partition`
 * of `topic`. Encoded as version:u8 (1) topic:blob partition:u32 offset:u64.
 */
void eddy__kafka_offset_encode(eddy__bytes_t *out, const char *topic,
                               int32_t partition, int64_t next_offset);
/* Decodes an element; false if it is malformed. `topic` points into `elem`
 * (not NUL-terminated: `topic_len` bytes). */
bool eddy__kafka_offset_decode(const void *elem, size_t len, const char **topic,
                               size_t *topic_len, int32_t *partition,
                               int64_t *next_offset);

/* True if p[0..n) is one JSON text (RFC 8259: any value, surrounded by
 * optional whitespace, strings in valid UTF-8, nesting up to 512 levels).
 * Allocates nothing. */
bool eddy__json_valid(const void *p, size_t n);

/* Offset commits of the source's subtasks that succeeded / failed so far
 * (0 for other streams). */
void eddy__kafka_source_commits(eddy_stream_t *source, uint64_t *ok,
                                uint64_t *failed);

#endif /* EDDY_CONNECTORS_KAFKA_SOURCE_H */
