#!/usr/bin/env bash
# Runs the test suite under ThreadSanitizer (build-tsan/). Run it after
# touching concurrency. Excluded:
# - integ_crash: its jobs fault on purpose in several threads at once and
#   end the process with _exit, which TSan reports as races and leaked
#   threads by design;
# - the tests that run librdkafka (kafka_source, kafka_sink, integ_kafka_dev,
#   integ_exactly_once, and integ_cluster's test_taskmanager_killed, whose
#   job reads from the dev broker; the other cluster tests run below, one
#   by one): librdkafka starts its threads with C11 thrd_create,
#   which GCC 12's TSan does not intercept, so TSan crashes in its allocator
#   on those threads before any test code runs.
# RocksDB's uninstrumented threads are handled by scripts/tsan.supp.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DEDDY_SANITIZE=thread >/dev/null
cmake --build build-tsan -j"$(nproc)" >/dev/null
TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp" \
  ctest --test-dir build-tsan --output-on-failure -j"$(nproc)" -E 'integ_crash|kafka|integ_exactly_once|integ_cluster'
for t in test_word_count test_jobmanager_killed test_back_pressure \
         test_rest_hostility test_not_enough_slots test_addresses; do
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp" \
    EDDY_TEST_FILTER=$t build-tsan/tests/integration/integ_cluster
done
