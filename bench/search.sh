#!/usr/bin/env bash
# Benchmark of the session search index (not a CI test): indexing throughput, index size and
# query latency with synthetic sessions and terminal text. Arguments go to the benchmark:
#   bench/search.sh                                   the full run: 1,000,000 records, 10 GiB of text
#                                                     (needs ~25 GB free under /work: ~11-13 GB at the end,
#                                                     more during merges; ~15-20 min on 2 cores)
#   bench/search.sh --records 100000 --text-gib 0.5   a quick one
#   bench/search.sh --help                            the options (--dir, --keep, --queries, --seed)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p custos-search-bench
exec "${CARGO_TARGET_DIR:-target}"/release/custos-search-bench "$@"
