#!/usr/bin/env bash
# Bounded fuzz runs. Usage: scripts/fuzz.sh [SECONDS] [TARGET|all]   (defaults: 60 s, pipeline).
# `all`: the whole-pipeline target for SECONDS, every other target for SECONDS/6 (at least 10 s).
# Seeds: the bundled captures (pipeline, as files), and for the other targets inputs made from them by
# scripts/fuzz-seeds.py into fuzz/corpus/<target> (kept between runs, not committed).
# FUZZ_RUNS=N also stops each run after N executions (the long runs in docs/robustness.md:
# FUZZ_RUNS=10000000 scripts/fuzz.sh 1800 TARGET). Crashes land in fuzz/artifacts/<target>/; a fixed
# one is copied to fuzz/regressions/<target>/, which `cargo test` replays (tests/fuzz_regressions.rs).
# Needs scripts/setup.sh first (nightly + cargo-fuzz) and tshark for the seeds.
# Writes only below fuzz/target, fuzz/corpus and fuzz/artifacts (all ignored by git); fuzz/Cargo.lock
# must be current and stays as it is (checked before and after).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
target=${2:-pipeline}
NIGHTLY=nightly-2026-05-19
# cargo-fuzz 0.13 cannot pass --locked to cargo, and its build rewrites a stale fuzz/Cargo.lock
# (a tracked file). So: the lock must already be current (checked with --locked, as the
# workspace's own builds are), and must be unchanged when the runs end.
if ! cargo "+${NIGHTLY}" metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null; then
  echo "fuzz: fuzz/Cargo.lock is not current; update it (cargo +${NIGHTLY} metadata --manifest-path fuzz/Cargo.toml) and commit it" >&2
  exit 1
fi
lock_before=$(sha256sum fuzz/Cargo.lock)
check_lock() {
  if [ "$(sha256sum fuzz/Cargo.lock)" != "$lock_before" ]; then
    echo "fuzz: the fuzz runs changed fuzz/Cargo.lock" >&2
    exit 1
  fi
}
trap check_lock EXIT
[ -e fuzz/corpus/.seeded ] || { python3 scripts/fuzz-seeds.py captures fuzz/corpus && touch fuzz/corpus/.seeded; }
run() { # target seconds [seed dirs...]
  local t=$1 s=$2; shift 2
  mkdir -p "fuzz/corpus/$t"
  # -rss_limit_mb: the analyzers must stay small on any input; -max_len: a few full-size packets.
  cargo "+${NIGHTLY}" fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" "$@" \
    -- -max_total_time="$s" -rss_limit_mb=1024 -max_len=65536 -timeout=10 -print_final_stats=1 \
    ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"}
}
if [ "$target" = all ]; then
  cargo "+${NIGHTLY}" fuzz build --fuzz-dir fuzz
  run pipeline "$secs" captures
  short=$(( secs / 6 > 10 ? secs / 6 : 10 ))
  for t in reassembly smtp tls x509 keylog config; do run "$t" "$short"; done
elif [ "$target" = pipeline ]; then
  run pipeline "$secs" captures
else
  run "$target" "$secs"
fi
