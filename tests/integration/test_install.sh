#!/usr/bin/env bash
# eddy — integration: install, then build a job against the installed eddy
# the way a job author does (pkg-config), and run it with the installed CLI.
# Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
#
#   test_install.sh --build-dir DIR --source-dir DIR --cmake CMAKE --cc CC
#                   --sanitize {"",address,thread}
#
# Steps: `cmake --install DIR --prefix TMP`; find eddy.pc (GNUInstallDirs may
# put it under lib/ or lib/<multiarch>/); compile examples/word_count.c with
# `CC -shared -fPIC ... $(pkg-config --cflags --libs eddy)` and nothing from
# the source or build tree; run TMP/bin/eddy on it with no LD_LIBRARY_PATH;
# compare the output with the exact expected text.
#
# SANITIZERS: in a sanitizer build the installed libeddy and eddy are
# instrumented, so the job is compiled with the same -fsanitize flags (a job
# built like that is what a developer of such a build would produce). The
# test is skipped (exit 77) only when pkg-config is not installed.
set -euo pipefail

build_dir='' source_dir='' cmake=cmake cc=cc sanitize=''
while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --source-dir) source_dir=$2; shift 2 ;;
    --cmake) cmake=$2; shift 2 ;;
    --cc) cc=$2; shift 2 ;;
    --sanitize) sanitize=$2; shift 2 ;;
    *) echo "test_install.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
if [ -z "$build_dir" ] || [ -z "$source_dir" ]; then
    echo "test_install.sh: --build-dir and --source-dir are required" >&2
    exit 2
fi

if ! command -v pkg-config >/dev/null 2>&1; then
    echo "SKIP: pkg-config is not installed"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/eddy-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Shows a file's content in a failure message.
show() {
    echo "--- $1:" >&2
    cat "$1" >&2 || true
}

echo "installing $build_dir into $prefix"
if ! "$cmake" --install "$build_dir" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
    show "$tmp/install.log"
    fail "cmake --install failed"
fi

for h in eddy.h error.h runner.h; do
    [ -f "$prefix/include/eddy/$h" ] || fail "include/eddy/$h was not installed"
done
[ -x "$prefix/bin/eddy" ] || fail "bin/eddy was not installed"

pc=$(find "$prefix" -path '*/pkgconfig/eddy.pc' | head -n 1)
[ -n "$pc" ] || fail "no eddy.pc under $prefix"
echo "found ${pc#"$prefix"/}"
flags=$(env -u PKG_CONFIG_LIBDIR PKG_CONFIG_PATH="$(dirname "$pc")" \
    pkg-config --cflags --libs eddy) || fail "pkg-config cannot read eddy.pc"
echo "pkg-config: $flags"
# Every -I and -L must point into the prefix, or the job would be built
# against some other eddy (or none).
for f in $flags; do
    case "$f" in
    -I* | -L*)
        case "$f" in
        -?"$prefix"/*) ;;
        *) fail "pkg-config flag '$f' points outside the install prefix $prefix" ;;
        esac
        ;;
    esac
done

san_flags=()
case "$sanitize" in
"") ;;
address) san_flags=("-fsanitize=address,undefined" -fno-omit-frame-pointer) ;;
thread) san_flags=(-fsanitize=thread) ;;
*) fail "unknown sanitizer '$sanitize'" ;;
esac

mkdir "$tmp/job"
cp "$source_dir/examples/word_count.c" "$tmp/job/"
# shellcheck disable=SC2086 # $flags is a list of words
if ! (cd "$tmp/job" && "$cc" -std=c11 -Wall -Wextra -Werror -shared -fPIC \
    "${san_flags[@]}" word_count.c $flags -o wc.so) >"$tmp/cc.log" 2>&1; then
    show "$tmp/cc.log"
    fail "cannot compile examples/word_count.c against the installed eddy"
fi

unset LD_LIBRARY_PATH
eddy=$prefix/bin/eddy

# The installed CLI must use the installed library.
version=$("$eddy" version) || fail "installed eddy does not run"
echo "$version"
case "$version" in
"eddy "*" (job ABI "*")") ;;
*) fail "unexpected version output '$version'" ;;
esac
if command -v ldd >/dev/null 2>&1; then
    lib=$(ldd "$eddy" | awk '/libeddy/ { print $3 }')
    case "$lib" in
    "$prefix"/*) ;;
    *) fail "installed eddy loads libeddy from '$lib', not from $prefix" ;;
    esac
fi

printf 'The cat\r\nthe CAT, the dog.\n\n\n42 cats!' >"$tmp/in.txt"
expected=$(printf 'the\t1\ncat\t1\nthe\t2\ncat\t2\nthe\t3\ndog\t1\n42\t1\ncats\t1')

run() {
    local par=$1
    "$eddy" run --local "$tmp/job/wc.so" -p "$par" -q -- "$tmp/in.txt" \
        >"$tmp/out.$par" 2>"$tmp/err.$par"
}

set +e
run 1
rc=$?
set -e
if [ $rc -ne 0 ] || [ -s "$tmp/err.1" ] ||
    [ "$(cat "$tmp/out.1")" != "$expected" ]; then
    echo "exit status $rc" >&2
    show "$tmp/out.1"
    show "$tmp/err.1"
    fail "installed eddy with the pkg-config-built job: wrong result"
fi

# With more subtasks lines of different words may interleave, but each
# word's counts keep their order: a stable sort by word must agree.
set +e
run 3
rc=$?
set -e
sorted_expected=$(printf '%s\n' "$expected" | LC_ALL=C sort -s -t "$(printf '\t')" -k1,1)
sorted_out=$(LC_ALL=C sort -s -t "$(printf '\t')" -k1,1 "$tmp/out.3")
if [ $rc -ne 0 ] || [ -s "$tmp/err.3" ] || [ "$sorted_out" != "$sorted_expected" ]; then
    echo "exit status $rc" >&2
    show "$tmp/out.3"
    show "$tmp/err.3"
    fail "installed eddy with -p 3: wrong result"
fi

echo "PASS: installed eddy runs a job built with pkg-config"
