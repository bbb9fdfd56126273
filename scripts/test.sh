#!/usr/bin/env bash
# Installs what eddy needs, then builds and runs the whole test suite twice
# through ctest: an optimised build (build/) and an AddressSanitizer +
# UndefinedBehaviorSanitizer build (build-asan/).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
jobs=$(nproc)

echo "== style check (clang-format)"
scripts/check-format.sh

for variant in release asan; do
  if [ "$variant" = release ]; then
    dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDDY_SANITIZE=)
  else
    dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DEDDY_SANITIZE=address)
  fi
  echo "== $variant build ($dir)"
  cmake -S . -B "$dir" "${flags[@]}" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
  echo "== $variant tests"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 300
done
