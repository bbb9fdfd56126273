#!/usr/bin/env bash
# Installs the Debian packages eddy needs to build, test and run.
# Idempotent: when everything is installed it prints nothing and takes well
# under a second. Run as root, or as a user who can sudo.
set -euo pipefail

packages=(
  gcc make cmake pkg-config      # toolchain
  libcmocka-dev                  # unit tests
  libjansson-dev                 # JSON (checkpoint metadata)
  librdkafka-dev                 # Kafka source, sink, dev broker
  librocksdb-dev                 # rocksdb state backend
  libpq-dev postgresql           # PostgreSQL sink (and its tests)
  libyaml-dev                    # eddy.yaml (src/common/settings.c)
  libsqlite3-dev                 # JobManager metadata store (src/meta/)
  protobuf-c-compiler            # protoc-c: control-plane messages (src/rpc/)
  libprotobuf-c-dev              # their runtime library
  libmicrohttpd-dev              # REST API of the JobManager (src/rest/)
  libcurl4-openssl-dev           # REST client of the CLI, artifact fetch
  libssl-dev                     # SHA-256 of job artifacts (libcrypto)
  clang-format                   # style check
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
