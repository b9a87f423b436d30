#!/usr/bin/env bash
# Bounded fuzz run of the whole-pipeline target, seeded with the bundled captures.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET]   (defaults: 60 s, pipeline). Needs scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
target=${2:-pipeline}
NIGHTLY=nightly-2026-05-19
mkdir -p "fuzz/corpus/${target}"
# -rss_limit_mb: the pipeline must stay small on any input; -max_len: a few full-size packets.
cargo "+${NIGHTLY}" fuzz run --fuzz-dir fuzz "${target}" "fuzz/corpus/${target}" captures \
  -- -max_total_time="${secs}" -rss_limit_mb=1024 -max_len=65536 -timeout=10 -print_final_stats=1
