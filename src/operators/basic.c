/*
 * eddy — stateless operators: map, filter, flat_map, key_by.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 *
 * Each wraps one user function: reset the operator's scratch memory, call
 * the function, pass the result on by function call. No allocation.
 */
#include "runtime/runtime.h"

static int map_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    eddy_map_fn fn = (eddy_map_fn)op->op_node->s_fn;
    eddy_record_t out;
    eddy__record_copy(&out, rec);
    eddy__op_enter(op);
    int rc = fn(&op->op_ctx, rec, &out, op->op_node->s_opaque);
    if (EDDY_UNLIKELY(rc != 0)) {
        return eddy__op_user_rc(op, rc);
    }
    return eddy__emit(op, &out);
}

const eddy__op_class_t eddy__map_class = {
    .oc_kind = "Map",
    .oc_process = map_process,
};

static int filter_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    eddy_filter_fn fn = (eddy_filter_fn)op->op_node->s_fn;
    eddy__op_enter(op);
    int rc = fn(&op->op_ctx, rec, op->op_node->s_opaque);
    if (rc == 1) {
        return eddy__emit(op, rec);
    }
    if (EDDY_UNLIKELY(rc != 0)) {
        if (rc > 1) {
            return eddy__op_fail(op, EDDY_ERR_INVALID,
                                 "filter function returned %d; it must return "
                                 "1 (keep), 0 (drop) or a negative error",
                                 rc);
        }
        return eddy__op_user_rc(op, rc);
    }
    return 0;
}

const eddy__op_class_t eddy__filter_class = {
    .oc_kind = "Filter",
    .oc_process = filter_process,
};

static int flat_map_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    eddy_flat_map_fn fn = (eddy_flat_map_fn)op->op_node->s_fn;
    eddy__op_enter(op);
    int rc = fn(&op->op_ctx, rec, &op->op_out, op->op_node->s_opaque);
    if (EDDY_UNLIKELY(rc != 0)) {
        return eddy__op_user_rc(op, rc);
    }
    return 0;
}

const eddy__op_class_t eddy__flat_map_class = {
    .oc_kind = "FlatMap",
    .oc_process = flat_map_process,
};

static int key_by_process(void *opv, const eddy_record_t *rec)
{
    eddy__op_t *op = opv;
    eddy_key_fn fn = (eddy_key_fn)op->op_node->s_fn;
    if (fn == NULL) {
        if (EDDY_UNLIKELY(rec->key == NULL)) {
            return eddy__op_fail(op, EDDY_ERR_INVALID,
                                 "record has no key (eddy_key_by with a NULL "
                                 "selector keys by the key records carry)");
        }
        return eddy__emit(op, rec);
    }
    eddy_record_t out;
    eddy__record_copy(&out, rec);
    eddy__op_enter(op);
    int rc =
        fn(&op->op_ctx, rec, &out.key, &out.key_len, op->op_node->s_opaque);
    if (EDDY_UNLIKELY(rc != 0)) {
        return eddy__op_user_rc(op, rc);
    }
    if (EDDY_UNLIKELY(out.key == NULL)) {
        if (out.key_len != 0) {
            return eddy__op_fail(op, EDDY_ERR_INVALID,
                                 "key selector returned a NULL key of length "
                                 "%zu",
                                 out.key_len);
        }
        out.key = ""; /* the empty key */
    }
    return eddy__emit(op, &out);
}

const eddy__op_class_t eddy__key_by_class = {
    .oc_kind = "KeyBy",
    .oc_process = key_by_process,
};
