#!/usr/bin/env bash
# Installs what eddy needs, builds it, and runs the demo: the word count
# example at parallelism 4 on the bundled text, in the local runtime.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

echo "== eddy run --local build/examples/word_count.so -p 4 -- examples/data/words.txt" >&2
build/eddy run --local build/examples/word_count.so -p 4 -- examples/data/words.txt
