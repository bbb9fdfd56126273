/*
 * eddy — planning: logical graph → edges → chained job vertices.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Rules (DESIGN §3):
 * - Virtual nodes are expanded: a union contributes the edges of each of its
 *   inputs; a partition node imposes its partitioner (the one closest to the
 *   consumer wins); a key_by node's outgoing edges hash-partition.
 * - Parallelism: the operator's own, else its class default (a collection
 *   source is 1), else the environment's, else the runner's default.
 * - An unspecified partitioner is forward between equal parallelisms and
 *   rebalance otherwise (Flink's rule); an explicit forward between unequal
 *   parallelisms is an error.
 * - An operator is chained to its input when it has exactly one input edge,
 *   that edge is forward, the parallelisms match and chaining is not disabled.
 *   Chains may branch (one operator feeding several chained ones).
 */
#include <stdio.h>
#include <stdlib.h>

#include "runtime/runtime.h"

const char *eddy__partitioner_name(int part)
{
    switch (part) {
#define XX(name, s)                                                            \
    case EDDY__PART_##name:                                                    \
        return s;
        EDDY__PARTITIONER_MAP(XX)
#undef XX
    default:
        return "unknown";
    }
}

typedef struct edge_list {
    eddy__edge_t *v;
    size_t n;
    size_t cap;
} edge_list_t;

static void expand(eddy_stream_t *in, int part, int dst, int port,
                   edge_list_t *out)
{
    int tag = 0;
    if (in->s_kind == EDDY__NODE_SIDE) {
        tag = in->s_tag + 1;
        in = in->s_inputs[0];
        /* A keyed operator's side output is not keyed. */
        if (part == EDDY__PART_DEFAULT && in->s_keyed_out) {
            part = EDDY__PART_REBALANCE;
        }
    }
    switch (in->s_kind) {
    case EDDY__NODE_SIDE:
        return; /* the builder never nests side outputs */
    case EDDY__NODE_UNION:
        for (int i = 0; i < in->s_ninputs; i++) {
            expand(in->s_inputs[i], part, dst, port, out);
        }
        return;
    case EDDY__NODE_PARTITION:
        expand(in->s_inputs[0],
               part != EDDY__PART_DEFAULT ? part : in->s_partitioner, dst, port,
               out);
        return;
    case EDDY__NODE_OPERATOR:
        if (part == EDDY__PART_DEFAULT && in->s_keyed_out) {
            part = EDDY__PART_HASH;
        }
        eddy__grow((void **)&out->v, &out->cap, out->n + 1, sizeof(*out->v));
        out->v[out->n++] = (eddy__edge_t){.ed_src = in->s_id,
                                          .ed_dst = dst,
                                          .ed_port = port,
                                          .ed_tag = tag,
                                          .ed_part = part,
                                          .ed_chained = false};
        return;
    }
}

void eddy__plan_destroy(eddy__plan_t *pl)
{
    if (pl == NULL) {
        return;
    }
    for (int i = 0; i < pl->pl_nvertices; i++) {
        free(pl->pl_vertices[i].vx_nodes);
        free(pl->pl_vertices[i].vx_name);
    }
    free(pl->pl_vertices);
    free(pl->pl_edges);
    free(pl->pl_parallelism);
    free(pl->pl_vertex_of);
    free(pl);
}

static void vertex_name(eddy__plan_t *pl, eddy__vertex_t *vx)
{
    size_t len = 1;
    for (int i = 0; i < vx->vx_nnodes; i++) {
        len += strlen(pl->pl_env->e_nodes[vx->vx_nodes[i]]->s_name) + 4;
    }
    vx->vx_name = eddy__malloc(len);
    vx->vx_name[0] = '\0';
    for (int i = 0; i < vx->vx_nnodes; i++) {
        if (i > 0) {
            strcat(vx->vx_name, " -> ");
        }
        strcat(vx->vx_name, pl->pl_env->e_nodes[vx->vx_nodes[i]]->s_name);
    }
}

int eddy__plan_build(eddy_env_t *env, eddy__plan_t **out, eddy_error_t *err)
{
    int rc = 0;
    edge_list_t edges = {0};
    eddy__plan_t *pl = eddy__calloc(1, sizeof(*pl));
    int n = (int)env->e_nnodes;
    int maxp = env->e_max_parallelism;
    int envp = env->e_parallelism > 0           ? env->e_parallelism
               : env->e_default_parallelism > 0 ? env->e_default_parallelism
                                                : 1;
    pl->pl_env = env;
    pl->pl_nnodes = n;
    pl->pl_parallelism = eddy__calloc((size_t)n, sizeof(int));
    pl->pl_vertex_of = eddy__calloc((size_t)n, sizeof(int));

    int nphysical = 0;
    bool have_source = false;
    for (int i = 0; i < n; i++) {
        eddy_stream_t *s = env->e_nodes[i];
        pl->pl_vertex_of[i] = -1;
        if (s->s_kind != EDDY__NODE_OPERATOR) {
            continue;
        }
        nphysical++;
        have_source |= s->s_class->oc_source;
        int p = s->s_parallelism;
        if (p == 0) {
            p = s->s_class->oc_default_parallelism;
        }
        if (p == 0 && s->s_class == &eddy__key_by_class && s->s_ninputs == 1 &&
            s->s_inputs[0]->s_kind == EDDY__NODE_OPERATOR) {
            /* The key selector belongs to its input, as Flink's keyBy (a
             * partitioning, not an operator): with the input's parallelism
             * it is chained to it. With the default parallelism a
             * round-robin exchange would come first whenever the input's
             * parallelism differs, and records of one key would reach the
             * keyed operator out of order. Inputs come first in node order,
             * so the input's parallelism is known. */
            p = pl->pl_parallelism[s->s_inputs[0]->s_id];
        }
        if (p == 0) {
            p = envp;
        }
        if (p > maxp) {
            rc = eddy_error_set(err, EDDY_ERR_INVALID,
                                "operator '%s': parallelism %d exceeds the max "
                                "parallelism %d (eddy_env_set_max_parallelism)",
                                s->s_name, p, maxp);
            goto fail;
        }
        pl->pl_parallelism[i] = p;
        for (int k = 0; k < s->s_ninputs; k++) {
            expand(s->s_inputs[k], EDDY__PART_DEFAULT, i,
                   s->s_class->oc_inputs == 2 ? k : 0, &edges);
        }
    }
    if (nphysical == 0 || !have_source) {
        rc = eddy_error_set(err, EDDY_ERR_INVALID,
                            "the job defines no sources: build its graph with "
                            "eddy_source_* and the transformations on them");
        goto fail;
    }

    /* Resolve partitioners and check keyed inputs. */
    for (size_t e = 0; e < edges.n; e++) {
        eddy__edge_t *ed = &edges.v[e];
        eddy_stream_t *src = env->e_nodes[ed->ed_src];
        eddy_stream_t *dst = env->e_nodes[ed->ed_dst];
        int ps = pl->pl_parallelism[ed->ed_src];
        int pd = pl->pl_parallelism[ed->ed_dst];
        if (ed->ed_part == EDDY__PART_DEFAULT) {
            ed->ed_part = ps == pd ? EDDY__PART_FORWARD : EDDY__PART_REBALANCE;
        }
        if (ed->ed_part == EDDY__PART_FORWARD && ps != pd) {
            rc = eddy_error_set(err, EDDY_ERR_INVALID,
                                "forward edge from '%s' (parallelism %d) to "
                                "'%s' (parallelism %d): a forward edge needs "
                                "equal parallelism; use eddy_rebalance",
                                src->s_name, ps, dst->s_name, pd);
            goto fail;
        }
        if (dst->s_class->oc_keyed_input && ed->ed_part != EDDY__PART_HASH) {
            rc = eddy_error_set(err, EDDY_ERR_INVALID,
                                "operator '%s' needs a keyed stream: apply "
                                "eddy_key_by to its input",
                                dst->s_name);
            goto fail;
        }
    }
    for (int i = 0; i < n; i++) {
        eddy_stream_t *s = env->e_nodes[i];
        if (s->s_kind == EDDY__NODE_OPERATOR && s->s_class->oc_keyed_input &&
            s->s_ninputs == 0) {
            rc = eddy_error_set(err, EDDY_ERR_INVALID,
                                "operator '%s' has no input", s->s_name);
            goto fail;
        }
    }

    /* Chaining and vertices, in node order (topological). */
    for (int i = 0; i < n; i++) {
        eddy_stream_t *s = env->e_nodes[i];
        if (s->s_kind != EDDY__NODE_OPERATOR) {
            continue;
        }
        int nin = 0;
        eddy__edge_t *only = NULL;
        for (size_t e = 0; e < edges.n; e++) {
            if (edges.v[e].ed_dst == i) {
                nin++;
                only = &edges.v[e];
            }
        }
        bool chain = nin == 1 && only->ed_part == EDDY__PART_FORWARD &&
                     !s->s_no_chain && !s->s_class->oc_source &&
                     pl->pl_parallelism[only->ed_src] == pl->pl_parallelism[i];
        if (chain) {
            only->ed_chained = true;
            int v = pl->pl_vertex_of[only->ed_src];
            eddy__vertex_t *vx = &pl->pl_vertices[v];
            vx->vx_nodes =
                eddy__realloc(vx->vx_nodes, sizeof(int) * (vx->vx_nnodes + 1));
            vx->vx_nodes[vx->vx_nnodes++] = i;
            pl->pl_vertex_of[i] = v;
        } else {
            pl->pl_vertices =
                eddy__realloc(pl->pl_vertices, sizeof(*pl->pl_vertices) *
                                                   (pl->pl_nvertices + 1));
            eddy__vertex_t *vx = &pl->pl_vertices[pl->pl_nvertices];
            memset(vx, 0, sizeof(*vx));
            vx->vx_head = i;
            vx->vx_nodes = eddy__malloc(sizeof(int));
            vx->vx_nodes[0] = i;
            vx->vx_nnodes = 1;
            vx->vx_parallelism = pl->pl_parallelism[i];
            pl->pl_vertex_of[i] = pl->pl_nvertices++;
        }
    }
    for (int v = 0; v < pl->pl_nvertices; v++) {
        vertex_name(pl, &pl->pl_vertices[v]);
    }
    pl->pl_edges = edges.v;
    pl->pl_nedges = (int)edges.n;
    *out = pl;
    return 0;

fail:
    free(edges.v);
    eddy__plan_destroy(pl);
    return rc;
}

void eddy__plan_assign_uids(eddy_env_t *env)
{
    for (size_t i = 0; i < env->e_nnodes; i++) {
        eddy_stream_t *s = env->e_nodes[i];
        if (s->s_uid == NULL) {
            char uid[32];
            eddy__fmt(uid, sizeof(uid), "auto-%d", s->s_id);
            s->s_uid = eddy__arena_strdup(&env->e_arena, uid);
        }
    }
}
