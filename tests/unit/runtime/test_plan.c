/*
 * eddy — unit tests for src/runtime/plan.c: partitioner resolution,
 * parallelism, chaining into job vertices, and planning errors (DESIGN §3).
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Graphs are built with the public job API and planned with
 * eddy__plan_build; nothing runs.
 */
#include "test_util.h"

#include "runtime/runtime.h"

/* ---- user functions (never called: nothing runs) ---- */

static int gen(eddy_ctx_t *ctx, uint64_t i, eddy_record_t *out, void *opaque)
{
    (void)ctx;
    (void)i;
    (void)out;
    (void)opaque;
    return 0;
}

static int ident(eddy_ctx_t *ctx, const eddy_record_t *in, eddy_record_t *out,
                 void *opaque)
{
    (void)ctx;
    (void)in;
    (void)out;
    (void)opaque;
    return 0;
}

static int keep(eddy_ctx_t *ctx, const eddy_record_t *in, void *opaque)
{
    (void)ctx;
    (void)in;
    (void)opaque;
    return 1;
}

static int fm(eddy_ctx_t *ctx, const eddy_record_t *in, eddy_collector_t *out,
              void *opaque)
{
    (void)ctx;
    (void)in;
    (void)out;
    (void)opaque;
    return 0;
}

static int sum(eddy_ctx_t *ctx, const eddy_record_t *acc,
               const eddy_record_t *in, eddy_record_t *out, void *opaque)
{
    (void)ctx;
    (void)acc;
    (void)in;
    (void)out;
    (void)opaque;
    return 0;
}

/* ---- helpers ---- */

static eddy__plan_t *plan_ok(eddy_env_t *env)
{
    eddy__plan_t *pl = NULL;
    eddy_error_t err;
    eddy_error_clear(&err);
    assert_false(env->e_failed);
    TU_ASSERT_OK(eddy__plan_build(env, &pl, &err), &err);
    assert_non_null(pl);
    assert_int_equal(pl->pl_nnodes, (int)env->e_nnodes);
    return pl;
}

static void plan_fails(eddy_env_t *env, const char *msg)
{
    eddy__plan_t *pl = NULL;
    eddy_error_t err;
    eddy_error_clear(&err);
    int rc = eddy__plan_build(env, &pl, &err);
    assert_int_equal(rc, EDDY_ERR_INVALID);
    assert_int_equal(err.code, EDDY_ERR_INVALID);
    assert_null(pl);
    assert_string_equal(err.msg, msg);
}

static const eddy__edge_t *edge(const eddy__plan_t *pl, eddy_stream_t *src,
                                eddy_stream_t *dst)
{
    const eddy__edge_t *found = NULL;
    for (int i = 0; i < pl->pl_nedges; i++) {
        if (pl->pl_edges[i].ed_src == src->s_id &&
            pl->pl_edges[i].ed_dst == dst->s_id) {
            assert_null(found); /* exactly one such edge */
            found = &pl->pl_edges[i];
        }
    }
    if (found == NULL) {
        fail_msg("no edge '%s' -> '%s'", src->s_name, dst->s_name);
    }
    return found;
}

static void assert_edge(const eddy__plan_t *pl, eddy_stream_t *src,
                        eddy_stream_t *dst, int part, bool chained)
{
    const eddy__edge_t *ed = edge(pl, src, dst);
    if (ed->ed_part != part || ed->ed_chained != chained) {
        fail_msg("edge '%s' -> '%s': %s%s, expected %s%s", src->s_name,
                 dst->s_name, eddy__partitioner_name(ed->ed_part),
                 ed->ed_chained ? " chained" : "", eddy__partitioner_name(part),
                 chained ? " chained" : "");
    }
}

static const eddy__vertex_t *vertex_of(const eddy__plan_t *pl, eddy_stream_t *s)
{
    int v = pl->pl_vertex_of[s->s_id];
    assert_in_range(v, 0, pl->pl_nvertices - 1);
    return &pl->pl_vertices[v];
}

static int inputs_of(const eddy__plan_t *pl, eddy_stream_t *s)
{
    int n = 0;
    for (int i = 0; i < pl->pl_nedges; i++) {
        n += pl->pl_edges[i].ed_dst == s->s_id;
    }
    return n;
}

static eddy_stream_t *source(eddy_env_t *env, const char *name)
{
    return eddy_name(eddy_source_generator(env, 10, 0, gen, NULL), name);
}

/* ---- chaining ---- */

static void test_forward_chain_is_one_vertex(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 2);
    eddy_stream_t *a = source(env, "A");
    eddy_stream_t *b = eddy_name(eddy_map(a, ident, NULL), "B");
    eddy_stream_t *c = eddy_name(eddy_filter(b, keep, NULL), "C");
    eddy_stream_t *d = eddy_name(eddy_sink_discard(c), "D");
    eddy__plan_t *pl = plan_ok(env);

    assert_int_equal(pl->pl_nvertices, 1);
    const eddy__vertex_t *vx = &pl->pl_vertices[0];
    assert_string_equal(vx->vx_name, "A -> B -> C -> D");
    assert_int_equal(vx->vx_parallelism, 2);
    assert_int_equal(vx->vx_head, a->s_id);
    assert_int_equal(vx->vx_nnodes, 4);
    eddy_stream_t *order[] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(vx->vx_nodes[i], order[i]->s_id);
        assert_int_equal(pl->pl_vertex_of[order[i]->s_id], 0);
        assert_int_equal(pl->pl_parallelism[order[i]->s_id], 2);
    }
    assert_int_equal(pl->pl_nedges, 3);
    assert_edge(pl, a, b, EDDY__PART_FORWARD, true);
    assert_edge(pl, b, c, EDDY__PART_FORWARD, true);
    assert_edge(pl, c, d, EDDY__PART_FORWARD, true);
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
}

static void test_default_operator_names(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *s = eddy_source_generator(env, 10, 0, gen, NULL);
    eddy_sink_discard(eddy_flat_map(
        eddy_filter(eddy_map(s, ident, NULL), keep, NULL), fm, NULL));
    eddy__plan_t *pl = plan_ok(env);
    assert_int_equal(pl->pl_nvertices, 1);
    assert_string_equal(pl->pl_vertices[0].vx_name,
                        "Source: Generator -> Map -> Filter -> FlatMap -> "
                        "Sink: Discard");
    /* Without any setting, everything runs with parallelism 1. */
    assert_int_equal(pl->pl_vertices[0].vx_parallelism, 1);
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
}

static void test_key_by_starts_hash_edge(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 3);
    eddy_stream_t *src = eddy_source_generator(env, 10, 0, gen, NULL);
    eddy_stream_t *m = eddy_map(src, ident, NULL);
    eddy_stream_t *k = eddy_key_by(m, NULL, NULL);
    eddy_stream_t *r = eddy_reduce(k, sum, NULL);
    eddy_stream_t *snk = eddy_sink_discard(r);
    eddy__plan_t *pl = plan_ok(env);

    assert_int_equal(pl->pl_nvertices, 2);
    /* key_by chains with its upstream; its output is hash-partitioned. */
    assert_edge(pl, src, m, EDDY__PART_FORWARD, true);
    assert_edge(pl, m, k, EDDY__PART_FORWARD, true);
    assert_edge(pl, k, r, EDDY__PART_HASH, false);
    assert_edge(pl, r, snk, EDDY__PART_FORWARD, true);
    assert_string_equal(vertex_of(pl, k)->vx_name,
                        "Source: Generator -> Map -> KeyBy");
    assert_string_equal(vertex_of(pl, r)->vx_name, "Reduce -> Sink: Discard");
    assert_int_equal(vertex_of(pl, r)->vx_head, r->s_id);
    assert_int_equal(vertex_of(pl, r)->vx_parallelism, 3);
    assert_true(vertex_of(pl, k) != vertex_of(pl, r));
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
}

static void test_key_by_into_stateless_operator(void **state)
{
    (void)state;
    /* A keyed stream into a map or sink is hash-partitioned as well. */
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *src = source(env, "S");
    eddy_stream_t *k = eddy_key_by(src, NULL, NULL);
    eddy_stream_t *m = eddy_name(eddy_map(k, ident, NULL), "M");
    eddy_stream_t *snk = eddy_name(eddy_sink_discard(k), "Out");
    eddy__plan_t *pl = plan_ok(env);
    assert_int_equal(pl->pl_nvertices, 3);
    assert_edge(pl, src, k, EDDY__PART_FORWARD, true);
    assert_edge(pl, k, m, EDDY__PART_HASH, false);
    assert_edge(pl, k, snk, EDDY__PART_HASH, false);
    assert_string_equal(vertex_of(pl, k)->vx_name, "S -> KeyBy");
    assert_string_equal(vertex_of(pl, m)->vx_name, "M");
    assert_string_equal(vertex_of(pl, snk)->vx_name, "Out");
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
}

static void test_parallelism_change_rebalances(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 4);
    /* A collection source defaults to parallelism 1 whatever the env. */
    const char *const strs[] = {"a", "b"};
    eddy_stream_t *src = eddy_source_strings(env, strs, 2);
    eddy_stream_t *m = eddy_map(src, ident, NULL);
    eddy_stream_t *m2 = eddy_parallelism(eddy_map(m, ident, NULL), 2);
    eddy_stream_t *snk = eddy_sink_discard(m2);
    eddy__plan_t *pl = plan_ok(env);
    assert_int_equal(pl->pl_nvertices, 4);
    assert_int_equal(pl->pl_parallelism[src->s_id], 1);
    assert_int_equal(pl->pl_parallelism[m->s_id], 4);
    assert_int_equal(pl->pl_parallelism[m2->s_id], 2);
    /* The sink takes the env's parallelism 4, unlike its input: new vertex
     * again. */
    assert_int_equal(pl->pl_parallelism[snk->s_id], 4);
    assert_edge(pl, src, m, EDDY__PART_REBALANCE, false);
    assert_edge(pl, m, m2, EDDY__PART_REBALANCE, false);
    assert_edge(pl, m2, snk, EDDY__PART_REBALANCE, false);
    assert_int_equal(vertex_of(pl, src)->vx_parallelism, 1);
    assert_int_equal(vertex_of(pl, m)->vx_parallelism, 4);
    assert_int_equal(vertex_of(pl, m2)->vx_parallelism, 2);
    assert_string_equal(vertex_of(pl, src)->vx_name, "Source: Collection");
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
}

static void test_runner_default_parallelism(void **state)
{
    (void)state;
    /* The runner's -p applies when the job does not set a parallelism. */
    eddy_env_t *env = eddy_env_new();
    env->e_default_parallelism = 3;
    eddy_stream_t *src = source(env, "S");
    eddy__plan_t *pl = plan_ok(env);
    assert_int_equal(pl->pl_parallelism[src->s_id], 3);
    eddy__plan_destroy(pl);
    /* The job's own setting wins over the runner's. */
    eddy_env_set_parallelism(env, 5);
    pl = plan_ok(env);
    assert_int_equal(pl->pl_parallelism[src->s_id], 5);
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
}

static void test_explicit_partitioners(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 2);
    eddy_stream_t *src = source(env, "S");
    eddy_stream_t *reb =
        eddy_name(eddy_map(eddy_rebalance(src), ident, NULL), "Reb");
    eddy_stream_t *bc =
        eddy_name(eddy_map(eddy_broadcast(src), ident, NULL), "Bc");
    eddy_stream_t *fw =
        eddy_name(eddy_map(eddy_forward(reb), ident, NULL), "Fw");
    /* The partitioner closest to the consumer wins. */
    eddy_stream_t *both = eddy_name(
        eddy_map(eddy_broadcast(eddy_rebalance(bc)), ident, NULL), "Both");
    /* An explicit partitioner overrides key_by's hash partitioning. */
    eddy_stream_t *k = eddy_key_by(fw, NULL, NULL);
    eddy_stream_t *rk =
        eddy_name(eddy_map(eddy_rebalance(k), ident, NULL), "RebKeyed");
    eddy__plan_t *pl = plan_ok(env);

    assert_edge(pl, src, reb, EDDY__PART_REBALANCE, false);
    assert_edge(pl, src, bc, EDDY__PART_BROADCAST, false);
    assert_edge(pl, reb, fw, EDDY__PART_FORWARD, true);
    assert_edge(pl, bc, both, EDDY__PART_BROADCAST, false);
    assert_edge(pl, fw, k, EDDY__PART_FORWARD, true);
    assert_edge(pl, k, rk, EDDY__PART_REBALANCE, false);
    assert_int_equal(pl->pl_nedges, 6);
    /* Virtual nodes are not part of any vertex. */
    for (size_t i = 0; i < env->e_nnodes; i++) {
        eddy_stream_t *s = env->e_nodes[i];
        if (s->s_kind != EDDY__NODE_OPERATOR) {
            assert_int_equal(pl->pl_vertex_of[i], -1);
        } else {
            assert_true(pl->pl_vertex_of[i] >= 0);
        }
    }
    assert_int_equal(pl->pl_nvertices, 5);
    assert_string_equal(vertex_of(pl, src)->vx_name, "S");
    assert_string_equal(vertex_of(pl, reb)->vx_name, "Reb -> Fw -> KeyBy");
    assert_string_equal(vertex_of(pl, bc)->vx_name, "Bc");
    assert_string_equal(vertex_of(pl, both)->vx_name, "Both");
    assert_string_equal(vertex_of(pl, rk)->vx_name, "RebKeyed");
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
}

static void test_forward_needs_equal_parallelism(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *src = eddy_parallelism(source(env, "Src"), 2);
    eddy_stream_t *m = eddy_name(eddy_map(eddy_forward(src), ident, NULL), "M");
    eddy_parallelism(m, 3);
    eddy_sink_discard(m);
    plan_fails(env, "forward edge from 'Src' (parallelism 2) to 'M' "
                    "(parallelism 3): a forward edge needs equal parallelism; "
                    "use eddy_rebalance");
    /* eddy_env_execute reports the same. */
    eddy_error_t err;
    assert_int_equal(eddy_env_execute(env, &err), EDDY_ERR_INVALID);
    TU_ASSERT_CONTAINS(err.msg, "forward edge from 'Src' (parallelism 2)");
    eddy_env_destroy(env);
}

static void test_disable_chaining(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *src = source(env, "S");
    eddy_stream_t *m =
        eddy_disable_chaining(eddy_name(eddy_map(src, ident, NULL), "M"));
    eddy_stream_t *f = eddy_name(eddy_filter(m, keep, NULL), "F");
    eddy_stream_t *snk =
        eddy_disable_chaining(eddy_name(eddy_sink_discard(f), "Out"));
    eddy__plan_t *pl = plan_ok(env);
    assert_int_equal(pl->pl_nvertices, 3);
    /* Still a forward edge, just not chained. */
    assert_edge(pl, src, m, EDDY__PART_FORWARD, false);
    assert_edge(pl, m, f, EDDY__PART_FORWARD, true);
    assert_edge(pl, f, snk, EDDY__PART_FORWARD, false);
    assert_string_equal(pl->pl_vertices[0].vx_name, "S");
    assert_string_equal(pl->pl_vertices[1].vx_name, "M -> F");
    assert_string_equal(pl->pl_vertices[2].vx_name, "Out");
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
}

static void test_union_gives_multiple_inputs(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_parallelism(env, 2);
    eddy_stream_t *a = source(env, "A");
    eddy_stream_t *b = source(env, "B");
    eddy_stream_t *c = eddy_parallelism(source(env, "C"), 1);
    eddy_stream_t *u = eddy_union(eddy_union(a, b), c);
    eddy_stream_t *m = eddy_name(eddy_map(u, ident, NULL), "M");
    eddy_stream_t *snk = eddy_name(eddy_sink_discard(m), "Out");
    eddy__plan_t *pl = plan_ok(env);
    assert_int_equal(pl->pl_vertex_of[u->s_id], -1);
    assert_int_equal(inputs_of(pl, m), 3);
    /* Equal parallelism: forward, but never chained with several inputs. */
    assert_edge(pl, a, m, EDDY__PART_FORWARD, false);
    assert_edge(pl, b, m, EDDY__PART_FORWARD, false);
    assert_edge(pl, c, m, EDDY__PART_REBALANCE, false);
    assert_edge(pl, m, snk, EDDY__PART_FORWARD, true);
    assert_int_equal(pl->pl_nvertices, 4);
    assert_string_equal(vertex_of(pl, m)->vx_name, "M -> Out");
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
}

static void test_union_of_keyed_streams(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *a = eddy_key_by(source(env, "A"), NULL, NULL);
    eddy_stream_t *b = eddy_key_by(source(env, "B"), NULL, NULL);
    eddy_stream_t *r = eddy_reduce(eddy_union(a, b), sum, NULL);
    eddy_sink_discard(r);
    eddy__plan_t *pl = plan_ok(env);
    assert_int_equal(inputs_of(pl, r), 2);
    assert_edge(pl, a, r, EDDY__PART_HASH, false);
    assert_edge(pl, b, r, EDDY__PART_HASH, false);
    assert_int_equal(pl->pl_nvertices, 3);
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
}

static void test_branching_chain(void **state)
{
    (void)state;
    /* One operator feeding two chained ones: a single vertex. */
    eddy_env_t *env = eddy_env_new();
    eddy_stream_t *s = source(env, "S");
    eddy_stream_t *m1 = eddy_name(eddy_map(s, ident, NULL), "M1");
    eddy_stream_t *o1 = eddy_name(eddy_sink_discard(m1), "O1");
    eddy_stream_t *m2 = eddy_name(eddy_map(s, ident, NULL), "M2");
    eddy_stream_t *o2 = eddy_name(eddy_sink_discard(m2), "O2");
    eddy__plan_t *pl = plan_ok(env);
    assert_int_equal(pl->pl_nvertices, 1);
    assert_int_equal(pl->pl_vertices[0].vx_nnodes, 5);
    assert_string_equal(pl->pl_vertices[0].vx_name,
                        "S -> M1 -> O1 -> M2 -> O2");
    assert_edge(pl, s, m1, EDDY__PART_FORWARD, true);
    assert_edge(pl, s, m2, EDDY__PART_FORWARD, true);
    assert_edge(pl, m1, o1, EDDY__PART_FORWARD, true);
    assert_edge(pl, m2, o2, EDDY__PART_FORWARD, true);
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
}

/* ---- planning errors ---- */

static void test_keyed_operator_needs_key_by(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_sink_discard(eddy_reduce(source(env, "S"), sum, NULL));
    plan_fails(env, "operator 'Reduce' needs a keyed stream: apply "
                    "eddy_key_by to its input");
    eddy_env_destroy(env);

    env = eddy_env_new();
    eddy_name(eddy_aggregate(eddy_map(source(env, "S"), ident, NULL),
                             eddy_agg_count()),
              "Counter");
    plan_fails(env, "operator 'Counter' needs a keyed stream: apply "
                    "eddy_key_by to its input");
    eddy_env_destroy(env);

    /* key_by, then a map, then reduce: the map's output is not keyed. */
    env = eddy_env_new();
    eddy_reduce(
        eddy_map(eddy_key_by(source(env, "S"), NULL, NULL), ident, NULL), sum,
        NULL);
    plan_fails(env, "operator 'Reduce' needs a keyed stream: apply "
                    "eddy_key_by to its input");
    eddy_env_destroy(env);

    /* A union with one unkeyed input. */
    env = eddy_env_new();
    eddy_stream_t *a = eddy_key_by(source(env, "A"), NULL, NULL);
    eddy_reduce(eddy_union(a, source(env, "B")), sum, NULL);
    plan_fails(env, "operator 'Reduce' needs a keyed stream: apply "
                    "eddy_key_by to its input");
    eddy_env_destroy(env);

    /* Rebalancing a keyed stream loses the keying. */
    env = eddy_env_new();
    eddy_reduce(eddy_rebalance(eddy_key_by(source(env, "A"), NULL, NULL)), sum,
                NULL);
    plan_fails(env, "operator 'Reduce' needs a keyed stream: apply "
                    "eddy_key_by to its input");
    eddy_env_destroy(env);
}

static void test_no_sources(void **state)
{
    (void)state;
    static const char *msg = "the job defines no sources: build its graph "
                             "with eddy_source_* and the transformations on "
                             "them";
    eddy_env_t *env = eddy_env_new();
    plan_fails(env, msg);
    eddy_error_t err;
    assert_int_equal(eddy_env_execute(env, &err), EDDY_ERR_INVALID);
    assert_string_equal(err.msg, msg);
    eddy_env_destroy(env);
}

static void test_parallelism_above_max(void **state)
{
    (void)state;
    eddy_env_t *env = eddy_env_new();
    eddy_env_set_max_parallelism(env, 4);
    eddy_env_set_parallelism(env, 8);
    source(env, "Src");
    plan_fails(env, "operator 'Src': parallelism 8 exceeds the max "
                    "parallelism 4 (eddy_env_set_max_parallelism)");
    eddy_env_destroy(env);

    /* An operator's own parallelism checked against a max lowered
     * afterwards. */
    env = eddy_env_new();
    eddy_stream_t *s = source(env, "Src");
    eddy_parallelism(eddy_name(eddy_map(s, ident, NULL), "Wide"), 100);
    eddy_env_set_max_parallelism(env, 64);
    plan_fails(env, "operator 'Wide': parallelism 100 exceeds the max "
                    "parallelism 64 (eddy_env_set_max_parallelism)");
    eddy_env_destroy(env);

    /* Exactly the max is fine. */
    env = eddy_env_new();
    eddy_env_set_max_parallelism(env, 4);
    eddy_env_set_parallelism(env, 4);
    s = source(env, "Src");
    eddy__plan_t *pl = plan_ok(env);
    assert_int_equal(pl->pl_parallelism[s->s_id], 4);
    eddy__plan_destroy(pl);
    eddy_env_destroy(env);
}

static void test_partitioner_names(void **state)
{
    (void)state;
    assert_string_equal(eddy__partitioner_name(EDDY__PART_DEFAULT), "default");
    assert_string_equal(eddy__partitioner_name(EDDY__PART_FORWARD), "forward");
    assert_string_equal(eddy__partitioner_name(EDDY__PART_HASH), "hash");
    assert_string_equal(eddy__partitioner_name(EDDY__PART_REBALANCE),
                        "rebalance");
    assert_string_equal(eddy__partitioner_name(EDDY__PART_BROADCAST),
                        "broadcast");
    assert_string_equal(eddy__partitioner_name(99), "unknown");
    eddy__plan_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_chain_is_one_vertex),
        cmocka_unit_test(test_default_operator_names),
        cmocka_unit_test(test_key_by_starts_hash_edge),
        cmocka_unit_test(test_key_by_into_stateless_operator),
        cmocka_unit_test(test_parallelism_change_rebalances),
        cmocka_unit_test(test_runner_default_parallelism),
        cmocka_unit_test(test_explicit_partitioners),
        cmocka_unit_test(test_forward_needs_equal_parallelism),
        cmocka_unit_test(test_disable_chaining),
        cmocka_unit_test(test_union_gives_multiple_inputs),
        cmocka_unit_test(test_union_of_keyed_streams),
        cmocka_unit_test(test_branching_chain),
        cmocka_unit_test(test_keyed_operator_needs_key_by),
        cmocka_unit_test(test_no_sources),
        cmocka_unit_test(test_parallelism_above_max),
        cmocka_unit_test(test_partitioner_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
