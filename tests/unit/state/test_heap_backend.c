/*
 * eddy — unit tests for src/state/heap_backend.c: the heap keyed-state
 * backend, through the behavioural suite every backend passes
 * (kstate_suite.h: value, list, map, reducing and aggregating state;
 * namespaces; key groups; TTL; get_for_update), with the heap's exact
 * memory accounting checked too.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "state/kstate_suite.h"

static const suite_caps_t SUITE_CAPS = {
    .sc_name = "heap",
    .sc_exact_memory = true,
    .sc_time_factor = 1,
};

static eddy__kstate_t *suite_new(const eddy__state_spec_t *sp, int nstates,
                                 int kg_first, int kg_last)
{
    return eddy__heap_kstate_new(sp, nstates, kg_first, kg_last);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define U(name) cmocka_unit_test(name)
    const struct CMUnitTest tests[] = {KSTATE_SUITE_TESTS(T, U)};
#undef T
#undef U
    return cmocka_run_group_tests(tests, NULL, NULL);
}
