/*
 * eddy — unit tests for src/rpc/frame.c: control-plane envelopes and their
 * length-prefixed framing (DESIGN §7).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Equality of messages is checked by packing the decoded envelope again and
 * comparing bytes with the original: every field of the fixtures is set to
 * a non-default value, so a field lost on the way changes the bytes.
 */
#include "test_util.h"

#include "rpc/frame.h"

#define PEER "10.0.0.5:6123"
#define JOB_ID "0123456789abcdef0123456789abcdef"
#define NBODIES 14

/* One envelope of every body type, with every field set. */
typedef struct fixture {
    Eddy__Rpc__Register reg;
    Eddy__Rpc__RegisterAck reg_ack;
    Eddy__Rpc__RegisterReject reg_reject;
    Eddy__Rpc__SlotStatus slot[2];
    Eddy__Rpc__SlotStatus *slotp[2];
    Eddy__Rpc__Heartbeat hb;
    Eddy__Rpc__DeployTask deploy;
    Eddy__Rpc__CancelTask cancel;
    Eddy__Rpc__TaskStateChange state;
    Eddy__Rpc__TriggerCheckpoint trigger;
    Eddy__Rpc__AcknowledgeCheckpoint ack;
    Eddy__Rpc__DeclineCheckpoint decline;
    Eddy__Rpc__CheckpointComplete complete;
    Eddy__Rpc__CheckpointAbort abort_;
    Eddy__Rpc__KeyValue kv[2];
    Eddy__Rpc__KeyValue *kvp[2];
    char *args[2];
    char *placement[3];
    Eddy__Rpc__DeployJob deploy_job;
    Eddy__Rpc__CancelJob cancel_job;
    eddy__rpc_env_t env[NBODIES];
} fixture_t;

static void fixture_init(fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    eddy__rpc__register__init(&f->reg);
    f->reg.tm_id = "tm-7f3a";
    f->reg.host = "worker-3.example";
    f->reg.data_address = "10.0.0.7:41017";
    f->reg.slots = 4;
    f->reg.version = "0.1.0";

    eddy__rpc__register_ack__init(&f->reg_ack);
    f->reg_ack.jm_id = "jm-1";
    f->reg_ack.heartbeat_interval_ms = 1000;
    f->reg_ack.heartbeat_timeout_ms = 5000;

    eddy__rpc__register_reject__init(&f->reg_reject);
    f->reg_reject.reason = "tm id tm-7f3a is already registered";

    for (int i = 0; i < 2; i++) {
        eddy__rpc__slot_status__init(&f->slot[i]);
        f->slotp[i] = &f->slot[i];
    }
    f->slot[0].index = 3;
    f->slot[0].available = true;
    f->slot[0].job_id = "";
    f->slot[1].index = 1;
    f->slot[1].available = false;
    f->slot[1].job_id = JOB_ID;
    eddy__rpc__heartbeat__init(&f->hb);
    f->hb.seq = 42;
    f->hb.timestamp_ms = 1795000000123;
    f->hb.n_slots = 2;
    f->hb.slots = f->slotp;

    eddy__rpc__deploy_task__init(&f->deploy);
    f->deploy.job_id = JOB_ID;
    f->deploy.vertex = "window-agg";
    f->deploy.subtask = 2;
    f->deploy.parallelism = 3;
    f->deploy.attempt = 1;
    f->deploy.slot = 3;
    f->deploy.artifact = "file:///var/lib/eddy/jobs/wordcount.so";
    f->deploy.plan = "plans/" JOB_ID ".json";
    f->deploy.restore_path = "/ckpt/" JOB_ID "/chk-17";
    f->deploy.restore_checkpoint_id = 17;
    f->deploy.task_index = 5;

    eddy__rpc__cancel_task__init(&f->cancel);
    f->cancel.job_id = JOB_ID;
    f->cancel.vertex = "source";
    f->cancel.subtask = 1;
    f->cancel.attempt = 2;

    eddy__rpc__task_state_change__init(&f->state);
    f->state.job_id = JOB_ID;
    f->state.vertex = "sink";
    f->state.subtask = 0;
    f->state.attempt = 3;
    f->state.state = EDDY__RPC__TASK_STATE__TASK_STATE_FAILED;
    f->state.failure = "user function failed: division by zero\n at map";

    eddy__rpc__trigger_checkpoint__init(&f->trigger);
    f->trigger.job_id = JOB_ID;
    f->trigger.checkpoint_id = 18;
    f->trigger.timestamp_ms = 1795000000999;
    f->trigger.savepoint = true;

    eddy__rpc__acknowledge_checkpoint__init(&f->ack);
    f->ack.job_id = JOB_ID;
    f->ack.checkpoint_id = 18;
    f->ack.task = 5;
    f->ack.handles_json = "{\"window-agg\":{\"file\":\"chk-18/op-2\"}}";

    eddy__rpc__decline_checkpoint__init(&f->decline);
    f->decline.job_id = JOB_ID;
    f->decline.checkpoint_id = 19;
    f->decline.task = 4;
    f->decline.reason = "task not running yet";

    eddy__rpc__checkpoint_complete__init(&f->complete);
    f->complete.job_id = JOB_ID;
    f->complete.checkpoint_id = 18;

    eddy__rpc__checkpoint_abort__init(&f->abort_);
    f->abort_.job_id = JOB_ID;
    f->abort_.checkpoint_id = 19;
    f->abort_.reason = "declined by task 4";

    for (int i = 0; i < 2; i++) {
        eddy__rpc__key_value__init(&f->kv[i]);
        f->kvp[i] = &f->kv[i];
    }
    f->kv[0].key = "checkpoint.interval";
    f->kv[0].value = "1000";
    f->kv[1].key = "state.backend";
    f->kv[1].value = "rocksdb";
    f->args[0] = "--count";
    f->args[1] = "100";
    f->placement[0] = "127.0.0.1:40001";
    f->placement[1] = "127.0.0.1:40002";
    f->placement[2] = "127.0.0.1:40001";
    eddy__rpc__deploy_job__init(&f->deploy_job);
    f->deploy_job.job_id = JOB_ID;
    f->deploy_job.attempt = 3;
    f->deploy_job.artifact_url = "/jobs/" JOB_ID "/artifact";
    f->deploy_job.n_args = 2;
    f->deploy_job.args = f->args;
    f->deploy_job.parallelism = 2;
    f->deploy_job.n_options = 2;
    f->deploy_job.options = f->kvp;
    f->deploy_job.n_placement = 3;
    f->deploy_job.placement = f->placement;
    f->deploy_job.restore_path = "/tmp/ck/chk-4";
    f->deploy_job.plan_tasks = 3;
    eddy__rpc__cancel_job__init(&f->cancel_job);
    f->cancel_job.job_id = JOB_ID;
    f->cancel_job.attempt = 3;

    for (int i = 0; i < NBODIES; i++) {
        eddy__rpc__envelope__init(&f->env[i]);
    }
    eddy__rpc_env_t *e = f->env;
    e[0].body_case = EDDY__RPC__ENVELOPE__BODY_REGISTRATION;
    e[0].registration = &f->reg;
    e[1].body_case = EDDY__RPC__ENVELOPE__BODY_REGISTER_ACK;
    e[1].register_ack = &f->reg_ack;
    e[2].body_case = EDDY__RPC__ENVELOPE__BODY_REGISTER_REJECT;
    e[2].register_reject = &f->reg_reject;
    e[3].body_case = EDDY__RPC__ENVELOPE__BODY_HEARTBEAT;
    e[3].heartbeat = &f->hb;
    e[4].body_case = EDDY__RPC__ENVELOPE__BODY_DEPLOY_TASK;
    e[4].deploy_task = &f->deploy;
    e[5].body_case = EDDY__RPC__ENVELOPE__BODY_CANCEL_TASK;
    e[5].cancel_task = &f->cancel;
    e[6].body_case = EDDY__RPC__ENVELOPE__BODY_TASK_STATE;
    e[6].task_state = &f->state;
    e[7].body_case = EDDY__RPC__ENVELOPE__BODY_TRIGGER_CHECKPOINT;
    e[7].trigger_checkpoint = &f->trigger;
    e[8].body_case = EDDY__RPC__ENVELOPE__BODY_ACK_CHECKPOINT;
    e[8].ack_checkpoint = &f->ack;
    e[9].body_case = EDDY__RPC__ENVELOPE__BODY_DECLINE_CHECKPOINT;
    e[9].decline_checkpoint = &f->decline;
    e[10].body_case = EDDY__RPC__ENVELOPE__BODY_CHECKPOINT_COMPLETE;
    e[10].checkpoint_complete = &f->complete;
    e[11].body_case = EDDY__RPC__ENVELOPE__BODY_CHECKPOINT_ABORT;
    e[11].checkpoint_abort = &f->abort_;
    e[12].body_case = EDDY__RPC__ENVELOPE__BODY_DEPLOY_JOB;
    e[12].deploy_job = &f->deploy_job;
    e[13].body_case = EDDY__RPC__ENVELOPE__BODY_CANCEL_JOB;
    e[13].cancel_job = &f->cancel_job;
}

/* Packs an envelope as is (no version stamping) into a new buffer. */
static uint8_t *pack(const eddy__rpc_env_t *env, size_t *len)
{
    *len = eddy__rpc__envelope__get_packed_size(env);
    uint8_t *buf = malloc(*len > 0 ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(eddy__rpc__envelope__pack(env, buf), *len);
    return buf;
}

/* Fails unless `got` packs to the same bytes as `want`. */
static void assert_env_equal(const eddy__rpc_env_t *got,
                             const eddy__rpc_env_t *want)
{
    size_t glen, wlen;
    uint8_t *g = pack(got, &glen);
    uint8_t *w = pack(want, &wlen);
    assert_int_equal(got->body_case, want->body_case);
    TU_ASSERT_BYTES(g, glen, w, wlen);
    free(g);
    free(w);
}

/* The whole fixture as one stream of frames. */
static void encode_all(fixture_t *f, eddy__bytes_t *out)
{
    eddy_error_t err;
    for (int i = 0; i < NBODIES; i++) {
        TU_ASSERT_OK(eddy__rpc_encode(out, &f->env[i], 0, &err), &err);
    }
}

/* Drains whole frames from `fd`, decoding each and checking it against the
 * fixture in order; returns the new count of frames seen. */
static int drain(eddy__frame_dec_t *fd, eddy__arena_t *ar, fixture_t *f,
                 int seen)
{
    eddy_error_t err;
    const void *payload;
    size_t len;
    int rc;
    while ((rc = eddy__frame_dec_next(fd, &payload, &len, &err)) == 1) {
        eddy__rpc_env_t *env = NULL;
        assert_true(seen < NBODIES);
        eddy__arena_reset(ar);
        TU_ASSERT_OK(eddy__rpc_decode(ar, payload, len, PEER, &env, &err),
                     &err);
        assert_env_equal(env, &f->env[seen % NBODIES]);
        seen++;
    }
    TU_ASSERT_OK(rc, &err);
    return seen;
}

static void test_round_trip_every_type(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    /* Every oneof member of Envelope has a case here: a message added to
     * eddy.proto without a round trip fails this count (field 1 is the
     * version, the rest are the body). */
    assert_int_equal(eddy__rpc__envelope__descriptor.n_fields - 1, NBODIES);

    eddy__bytes_t out = {0};
    eddy__arena_t ar;
    eddy__arena_init(&ar, 4096);
    eddy_error_t err;
    bool seen_case[64] = {false};
    for (int i = 0; i < NBODIES; i++) {
        f.env[i].version = 77; /* encode stamps the version it speaks */
        eddy__bytes_reset(&out);
        TU_ASSERT_OK(eddy__rpc_encode(&out, &f.env[i], 0, &err), &err);
        assert_int_equal(f.env[i].version, EDDY__RPC_VERSION);
        /* Header: big-endian length of the rest. */
        assert_true(out.b_len > EDDY__FRAME_HEADER);
        uint32_t hlen = (uint32_t)out.b_data[0] << 24 |
                        (uint32_t)out.b_data[1] << 16 |
                        (uint32_t)out.b_data[2] << 8 | out.b_data[3];
        assert_int_equal(hlen, out.b_len - EDDY__FRAME_HEADER);

        eddy__rpc_env_t *env = NULL;
        eddy__arena_reset(&ar);
        TU_ASSERT_OK(eddy__rpc_decode(&ar, out.b_data + EDDY__FRAME_HEADER,
                                      hlen, PEER, &env, &err),
                     &err);
        assert_non_null(env);
        assert_int_equal(env->version, EDDY__RPC_VERSION);
        assert_env_equal(env, &f.env[i]);
        assert_true(env->body_case < 64);
        assert_false(seen_case[env->body_case]);
        seen_case[env->body_case] = true;
        assert_string_not_equal(eddy__rpc_body_name(env->body_case), "unknown");
    }

    /* Spot checks that the byte comparison is not comparing two empties. */
    eddy__rpc_env_t *env = NULL;
    eddy__bytes_reset(&out);
    TU_ASSERT_OK(eddy__rpc_encode(&out, &f.env[4], 0, &err), &err);
    eddy__arena_reset(&ar);
    TU_ASSERT_OK(eddy__rpc_decode(&ar, out.b_data + EDDY__FRAME_HEADER,
                                  out.b_len - EDDY__FRAME_HEADER, PEER, &env,
                                  &err),
                 &err);
    assert_string_equal(env->deploy_task->job_id, JOB_ID);
    assert_string_equal(env->deploy_task->restore_path,
                        "/ckpt/" JOB_ID "/chk-17");
    assert_int_equal(env->deploy_task->subtask, 2);
    assert_int_equal(env->deploy_task->restore_checkpoint_id, 17);

    eddy__bytes_reset(&out);
    TU_ASSERT_OK(eddy__rpc_encode(&out, &f.env[3], 0, &err), &err);
    eddy__arena_reset(&ar);
    TU_ASSERT_OK(eddy__rpc_decode(&ar, out.b_data + EDDY__FRAME_HEADER,
                                  out.b_len - EDDY__FRAME_HEADER, PEER, &env,
                                  &err),
                 &err);
    assert_int_equal(env->heartbeat->n_slots, 2);
    assert_int_equal(env->heartbeat->slots[0]->index, 3);
    assert_true(env->heartbeat->slots[0]->available);
    assert_string_equal(env->heartbeat->slots[1]->job_id, JOB_ID);

    eddy__bytes_free(&out);
    eddy__arena_close(&ar);
}

static void test_stream_one_byte_at_a_time(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    eddy__bytes_t out = {0};
    encode_all(&f, &out);

    eddy__frame_dec_t fd;
    eddy__frame_dec_init(&fd, PEER, 0);
    eddy__arena_t ar;
    eddy__arena_init(&ar, 4096);
    eddy_error_t err;
    int seen = 0;
    for (size_t i = 0; i < out.b_len; i++) {
        TU_ASSERT_OK(eddy__frame_dec_feed(&fd, out.b_data + i, 1, &err), &err);
        int before = seen;
        seen = drain(&fd, &ar, &f, seen);
        /* At most one frame can complete per byte. */
        assert_true(seen - before <= 1);
    }
    assert_int_equal(seen, NBODIES);
    assert_int_equal(eddy__frame_dec_pending(&fd), 0);
    TU_ASSERT_OK(eddy__frame_dec_eof(&fd, &err), &err);
    eddy__frame_dec_close(&fd);
    eddy__arena_close(&ar);
    eddy__bytes_free(&out);
}

/* xorshift64*: reproducible randomness for chunking and corruption. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static void test_stream_random_chunks(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    eddy__bytes_t out = {0};
    encode_all(&f, &out);
    eddy__arena_t ar;
    eddy__arena_init(&ar, 4096);
    eddy_error_t err;
    uint64_t seed = 0x5eed0001;

    for (int round = 0; round < 500; round++) {
        eddy__frame_dec_t fd;
        eddy__frame_dec_init(&fd, PEER, 0);
        int seen = 0;
        size_t off = 0;
        while (off < out.b_len) {
            /* Mostly small chunks (split headers), sometimes several
             * frames at once. */
            size_t max = rnd(&seed) % 4 == 0 ? out.b_len : 16;
            size_t n = 1 + rnd(&seed) % max;
            n = EDDY_MIN(n, out.b_len - off);
            TU_ASSERT_OK(eddy__frame_dec_feed(&fd, out.b_data + off, n, &err),
                         &err);
            off += n;
            seen = drain(&fd, &ar, &f, seen);
        }
        assert_int_equal(seen, NBODIES);
        TU_ASSERT_OK(eddy__frame_dec_eof(&fd, &err), &err);
        eddy__frame_dec_close(&fd);
    }
    eddy__arena_close(&ar);
    eddy__bytes_free(&out);
}

/* A decoder that has streamed many small frames still holds its first
 * small buffer, and gives back the memory of one large frame. */
static void test_decoder_buffer_reuse(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    eddy__bytes_t out = {0};
    encode_all(&f, &out);
    eddy__frame_dec_t fd;
    eddy__frame_dec_init(&fd, PEER, 0);
    eddy__arena_t ar;
    eddy__arena_init(&ar, 4096);
    eddy_error_t err;

    for (int i = 0; i < 200; i++) {
        TU_ASSERT_OK(eddy__frame_dec_feed(&fd, out.b_data, out.b_len, &err),
                     &err);
        assert_int_equal(drain(&fd, &ar, &f, 0), NBODIES);
    }
    assert_true(fd.fd_cap <= 4096);

    /* One 1 MiB frame grows the buffer; the next small feed shrinks it. */
    size_t big = (size_t)1 << 20;
    unsigned char *payload = calloc(1, big);
    assert_non_null(payload);
    eddy__bytes_t bigf = {0};
    TU_ASSERT_OK(eddy__frame_put(&bigf, payload, big, 0, &err), &err);
    TU_ASSERT_OK(eddy__frame_dec_feed(&fd, bigf.b_data, bigf.b_len, &err),
                 &err);
    assert_true(fd.fd_cap >= big);
    const void *p;
    size_t len;
    assert_int_equal(eddy__frame_dec_next(&fd, &p, &len, &err), 1);
    assert_int_equal(len, big);
    TU_ASSERT_OK(eddy__frame_dec_feed(&fd, out.b_data, out.b_len, &err), &err);
    assert_true(fd.fd_cap <= ((size_t)64 << 10));
    assert_int_equal(drain(&fd, &ar, &f, 0), NBODIES);

    free(payload);
    eddy__bytes_free(&bigf);
    eddy__frame_dec_close(&fd);
    eddy__arena_close(&ar);
    eddy__bytes_free(&out);
}

static void test_oversized_frames(void **state)
{
    (void)state;
    eddy_error_t err;
    const void *p;
    size_t len;

    /* Exactly the maximum passes. */
    unsigned char payload[1025];
    memset(payload, 'x', sizeof(payload));
    eddy__bytes_t out = {0};
    TU_ASSERT_OK(eddy__frame_put(&out, payload, 1024, 1024, &err), &err);
    eddy__frame_dec_t fd;
    eddy__frame_dec_init(&fd, PEER, 1024);
    TU_ASSERT_OK(eddy__frame_dec_feed(&fd, out.b_data, out.b_len, &err), &err);
    assert_int_equal(eddy__frame_dec_next(&fd, &p, &len, &err), 1);
    assert_int_equal(len, 1024);
    eddy__frame_dec_close(&fd);

    /* One more byte is refused when the header completes, before the
     * payload arrives; the error is sticky. */
    unsigned char hdr[4] = {0, 0, 0x04, 0x01}; /* 1025 */
    eddy__frame_dec_init(&fd, PEER, 1024);
    TU_ASSERT_OK(eddy__frame_dec_feed(&fd, hdr, 3, &err), &err);
    assert_int_equal(eddy__frame_dec_next(&fd, &p, &len, &err), 0);
    assert_int_equal(eddy__frame_dec_feed(&fd, hdr + 3, 1, &err),
                     EDDY_ERR_FORMAT);
    assert_string_equal(err.msg, "frame of 1025 bytes from " PEER
                                 " exceeds the maximum frame size of 1024 "
                                 "bytes");
    assert_true(err.fatal);
    assert_int_equal(eddy__frame_dec_next(&fd, &p, &len, &err),
                     EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(err.msg, "unusable after a framing error");
    assert_int_equal(eddy__frame_dec_feed(&fd, payload, 10, &err),
                     EDDY_ERR_FORMAT);
    assert_int_equal(eddy__frame_dec_eof(&fd, &err), EDDY_ERR_FORMAT);
    eddy__frame_dec_close(&fd);

    /* An oversized frame behind a good one: the good one is returned,
     * then the error. */
    eddy__bytes_reset(&out);
    TU_ASSERT_OK(eddy__frame_put(&out, payload, 10, 0, &err), &err);
    eddy__bytes_put(&out, hdr, 4);
    eddy__frame_dec_init(&fd, PEER, 1024);
    TU_ASSERT_OK(eddy__frame_dec_feed(&fd, out.b_data, out.b_len, &err), &err);
    assert_int_equal(eddy__frame_dec_next(&fd, &p, &len, &err), 1);
    assert_int_equal(len, 10);
    assert_int_equal(eddy__frame_dec_next(&fd, &p, &len, &err),
                     EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(err.msg, "frame of 1025 bytes");
    eddy__frame_dec_close(&fd);

    /* The default maximum is 16 MiB. */
    unsigned char huge[4] = {0x01, 0x00, 0x00, 0x01};
    eddy__frame_dec_init(&fd, NULL, 0);
    assert_int_equal(eddy__frame_dec_feed(&fd, huge, 4, &err), EDDY_ERR_FORMAT);
    assert_string_equal(err.msg, "frame of 16777217 bytes from peer exceeds "
                                 "the maximum frame size of 16777216 bytes");
    eddy__frame_dec_close(&fd);

    /* The encoders refuse too, leaving the output untouched. */
    eddy__bytes_reset(&out);
    assert_int_equal(eddy__frame_put(&out, payload, 1025, 1024, &err),
                     EDDY_ERR_INVALID);
    assert_int_equal(out.b_len, 0);
    fixture_t f;
    fixture_init(&f);
    assert_int_equal(eddy__rpc_encode(&out, &f.env[4], 64, &err),
                     EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(err.msg, "deploy_task message of");
    TU_ASSERT_CONTAINS(err.msg, "maximum frame size of 64 bytes");
    assert_int_equal(out.b_len, 0);
    eddy__bytes_free(&out);
}

static void test_truncated_input(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    eddy__bytes_t out = {0};
    eddy_error_t err;
    TU_ASSERT_OK(eddy__rpc_encode(&out, &f.env[4], 0, &err), &err);
    size_t plen = out.b_len - EDDY__FRAME_HEADER;
    const void *p;
    size_t len;

    /* A frame missing its last byte is never handed out; EOF says so. */
    eddy__frame_dec_t fd;
    eddy__frame_dec_init(&fd, PEER, 0);
    TU_ASSERT_OK(eddy__frame_dec_feed(&fd, out.b_data, out.b_len - 1, &err),
                 &err);
    assert_int_equal(eddy__frame_dec_next(&fd, &p, &len, &err), 0);
    assert_int_equal(eddy__frame_dec_eof(&fd, &err), EDDY_ERR_FORMAT);
    char want[160];
    snprintf(want, sizeof(want),
             "connection from " PEER " closed inside a frame (%zu of %zu "
             "payload bytes)",
             plen - 1, plen);
    assert_string_equal(err.msg, want);
    eddy__frame_dec_close(&fd);

    /* Half a header. */
    eddy__frame_dec_init(&fd, PEER, 0);
    TU_ASSERT_OK(eddy__frame_dec_feed(&fd, out.b_data, 2, &err), &err);
    assert_int_equal(eddy__frame_dec_next(&fd, &p, &len, &err), 0);
    assert_int_equal(eddy__frame_dec_eof(&fd, &err), EDDY_ERR_FORMAT);
    assert_string_equal(err.msg, "connection from " PEER
                                 " closed inside a frame header (2 of 4 "
                                 "bytes)");
    eddy__frame_dec_close(&fd);

    /* A payload cut inside its last field does not unpack. */
    eddy__arena_t ar;
    eddy__arena_init(&ar, 4096);
    eddy__rpc_env_t *env = (eddy__rpc_env_t *)&ar; /* must be cleared */
    assert_int_equal(eddy__rpc_decode(&ar, out.b_data + EDDY__FRAME_HEADER,
                                      plen - 1, PEER, &env, &err),
                     EDDY_ERR_FORMAT);
    assert_null(env);
    snprintf(want, sizeof(want),
             "malformed control message from " PEER " (%zu bytes)", plen - 1);
    assert_string_equal(err.msg, want);
    eddy__arena_close(&ar);
    eddy__bytes_free(&out);
}

static void test_garbage_payloads(void **state)
{
    (void)state;
    eddy__arena_t ar;
    eddy__arena_init(&ar, 4096);
    eddy_error_t err;
    eddy__rpc_env_t *env = NULL;

    /* Not protobuf at all. */
    unsigned char ff[32];
    memset(ff, 0xff, sizeof(ff));
    assert_int_equal(eddy__rpc_decode(&ar, ff, sizeof(ff), PEER, &env, &err),
                     EDDY_ERR_FORMAT);
    assert_string_equal(err.msg,
                        "malformed control message from " PEER " (32 bytes)");
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(
        eddy__rpc_decode(&ar, http, strlen(http), PEER, &env, &err),
        EDDY_ERR_FORMAT);

    /* An empty frame is an envelope with nothing set: no version. */
    assert_int_equal(eddy__rpc_decode(&ar, "", 0, PEER, &env, &err),
                     EDDY_ERR_FORMAT);
    assert_string_equal(err.msg, "control message from " PEER
                                 " carries no protocol version");

    /* The right version but no body, or a body this build does not know
     * (field 99, length-delimited, 1 byte). */
    unsigned char nobody[] = {0x08, 0x01};
    assert_int_equal(
        eddy__rpc_decode(&ar, nobody, sizeof(nobody), PEER, &env, &err),
        EDDY_ERR_FORMAT);
    assert_string_equal(err.msg, "control message from " PEER
                                 " has no body this eddy understands");
    unsigned char unknown[] = {0x08, 0x01, 0x9a, 0x06, 0x01, 0x00};
    assert_int_equal(
        eddy__rpc_decode(&ar, unknown, sizeof(unknown), PEER, &env, &err),
        EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(err.msg, "no body this eddy understands");
    assert_null(env);

    /* The encoder refuses an envelope without a body. */
    eddy__rpc_env_t empty = EDDY__RPC__ENVELOPE__INIT;
    eddy__bytes_t out = {0};
    assert_int_equal(eddy__rpc_encode(&out, &empty, 0, &err), EDDY_ERR_INVALID);
    assert_int_equal(out.b_len, 0);
    eddy__arena_close(&ar);
}

static void test_version_mismatch(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    eddy__arena_t ar;
    eddy__arena_init(&ar, 4096);
    eddy_error_t err;
    eddy__rpc_env_t *env = NULL;

    /* A well-formed envelope from a version-2 peer, through the decoder. */
    f.env[0].version = 2;
    size_t len;
    uint8_t *payload = pack(&f.env[0], &len);
    eddy__bytes_t out = {0};
    TU_ASSERT_OK(eddy__frame_put(&out, payload, len, 0, &err), &err);
    eddy__frame_dec_t fd;
    eddy__frame_dec_init(&fd, PEER, 0);
    TU_ASSERT_OK(eddy__frame_dec_feed(&fd, out.b_data, out.b_len, &err), &err);
    const void *p;
    size_t plen;
    assert_int_equal(eddy__frame_dec_next(&fd, &p, &plen, &err), 1);
    assert_int_equal(eddy__rpc_decode(&ar, p, plen, PEER, &env, &err),
                     EDDY_ERR_UNSUPPORTED);
    assert_string_equal(err.msg,
                        "protocol version 2 from " PEER "; this eddy speaks 1");
    assert_null(env);
    eddy__frame_dec_close(&fd);
    free(payload);

    /* A version-2 payload this version cannot even parse (field 10 as a
     * varint, where version 1 has a message) still names the version. */
    unsigned char v2[] = {0x08, 0x02, 0x50, 0x05};
    assert_int_equal(eddy__rpc_decode(&ar, v2, sizeof(v2), PEER, &env, &err),
                     EDDY_ERR_UNSUPPORTED);
    assert_string_equal(err.msg,
                        "protocol version 2 from " PEER "; this eddy speaks 1");
    /* The same bytes claiming version 1 are simply malformed. */
    v2[1] = 0x01;
    assert_int_equal(eddy__rpc_decode(&ar, v2, sizeof(v2), PEER, &env, &err),
                     EDDY_ERR_FORMAT);
    TU_ASSERT_CONTAINS(err.msg, "malformed control message");

    /* A large version survives the message too. */
    f.env[1].version = 300;
    payload = pack(&f.env[1], &len);
    assert_int_equal(eddy__rpc_decode(&ar, payload, len, NULL, &env, &err),
                     EDDY_ERR_UNSUPPORTED);
    assert_string_equal(err.msg,
                        "protocol version 300 from peer; this eddy speaks 1");
    free(payload);
    eddy__bytes_free(&out);
    eddy__arena_close(&ar);
}

/*
 * Corrupts a valid stream at random (flipped bytes, inserted and deleted
 * bytes, truncation) and runs it through the decoder in random chunks. The
 * only requirement is a clean outcome for each frame — decoded or an error
 * — and no memory error (run under ASan in the address build). The counts
 * at the end make sure both outcomes were exercised.
 */
static void test_randomized_corruption(void **state)
{
    (void)state;
    fixture_t f;
    fixture_init(&f);
    eddy__bytes_t good = {0};
    encode_all(&f, &good);
    eddy__arena_t ar;
    eddy__arena_init(&ar, 4096);
    unsigned char *buf = malloc(good.b_len + 64);
    assert_non_null(buf);
    uint64_t seed = 0xc0ffee;
    unsigned decoded = 0, bad_payloads = 0, bad_streams = 0;

    for (int iter = 0; iter < 5000; iter++) {
        size_t n = good.b_len;
        memcpy(buf, good.b_data, n);
        int edits = 1 + (int)(rnd(&seed) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = rnd(&seed) % n;
            switch (rnd(&seed) % 4) {
            case 0: /* flip */
                buf[at] ^= (unsigned char)(1 + rnd(&seed) % 255);
                break;
            case 1: /* insert */
                if (n < good.b_len + 64) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = (unsigned char)rnd(&seed);
                    n++;
                }
                break;
            case 2: /* delete */
                if (n > 1) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
                break;
            default: /* truncate */
                n = at + 1;
                break;
            }
        }

        eddy__frame_dec_t fd;
        eddy__frame_dec_init(&fd, PEER, 4096);
        eddy_error_t err;
        size_t off = 0;
        bool failed = false;
        size_t frames = 0;
        while (off < n && !failed) {
            size_t c = EDDY_MIN(1 + rnd(&seed) % 64, n - off);
            if (eddy__frame_dec_feed(&fd, buf + off, c, &err) != 0) {
                failed = true;
                break;
            }
            off += c;
            const void *p;
            size_t plen;
            int rc;
            while ((rc = eddy__frame_dec_next(&fd, &p, &plen, &err)) == 1) {
                /* Every frame consumes at least its header: a decoder
                 * that hands out more frames than that is not advancing. */
                assert_true(++frames <= n / EDDY__FRAME_HEADER);
                eddy__rpc_env_t *env = NULL;
                eddy__arena_reset(&ar);
                if (eddy__rpc_decode(&ar, p, plen, PEER, &env, &err) == 0) {
                    assert_non_null(env);
                    /* Touch the whole message: repacking walks it. */
                    size_t rl;
                    free(pack(env, &rl));
                    decoded++;
                } else {
                    assert_null(env);
                    assert_true(err.msg[0] != '\0');
                    bad_payloads++;
                }
            }
            if (rc < 0) {
                failed = true;
            }
        }
        if (failed || eddy__frame_dec_eof(&fd, &err) != 0) {
            assert_true(err.msg[0] != '\0');
            bad_streams++;
        }
        eddy__frame_dec_close(&fd);

        /* Raw garbage straight into the envelope decoder. */
        size_t glen = rnd(&seed) % 96;
        for (size_t i = 0; i < glen; i++) {
            buf[i] = (unsigned char)rnd(&seed);
        }
        eddy__rpc_env_t *env = NULL;
        eddy__arena_reset(&ar);
        eddy_error_t err2;
        if (eddy__rpc_decode(&ar, buf, glen, PEER, &env, &err2) == 0) {
            size_t rl;
            free(pack(env, &rl));
        }
    }
    print_message("corruption: %u frames decoded, %u payloads and %u "
                  "streams rejected\n",
                  decoded, bad_payloads, bad_streams);
    assert_true(decoded > 1000);
    assert_true(bad_payloads > 100);
    assert_true(bad_streams > 100);
    free(buf);
    eddy__arena_close(&ar);
    eddy__bytes_free(&good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_stream_one_byte_at_a_time),
        cmocka_unit_test(test_stream_random_chunks),
        cmocka_unit_test(test_decoder_buffer_reuse),
        cmocka_unit_test(test_oversized_frames),
        cmocka_unit_test(test_truncated_input),
        cmocka_unit_test(test_garbage_payloads),
        cmocka_unit_test(test_version_mismatch),
        cmocka_unit_test(test_randomized_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
