#!/usr/bin/env bash
# Benchmark of the REST API (not a CI test). Usage: bench/api.sh   (BENCH_SECONDS=10 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p custos -p custos-api-bench
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
exec target/release/custos-api-bench target/release/custos
