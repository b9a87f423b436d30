#!/usr/bin/env bash
# The test command (README): installs what it needs (scripts/setup.sh), then runs the whole suite:
# unit + integration tests (golden, tshark differential, public corpus, property tests; with
# --all-features also the live and eBPF backends, which build the kernel program and, as root,
# load it into the running kernel) and bounded fuzz runs.
# A test that cannot run here (no root, no ../shared) skips and says why in EKUWATCH_SKIP_LOG; the
# skips are listed at the end, also when a step fails (CI sets EKUWATCH_REQUIRE_ALL=1: no skips).
set -euo pipefail
cd "$(dirname "$0")/.."
EKUWATCH_SKIP_LOG=$(mktemp "${TMPDIR:-/tmp}/ekuwatch-skips.XXXXXX")
export EKUWATCH_SKIP_LOG
trap 'scripts/skip-summary.sh "$EKUWATCH_SKIP_LOG"; rm -f "$EKUWATCH_SKIP_LOG"' EXIT
./scripts/setup.sh
cargo fmt --all -- --check
cargo fmt --manifest-path ebpf/Cargo.toml -- --check   # the kernel program is its own workspace
cargo clippy --workspace --locked --all-targets --all-features -- -D warnings
python3 scripts/check-msrv.py   # rust-version covers every locked dependency's own
# the binary a default build makes (no `live`): `ekuwatch live` says how to build it
cargo test --locked -p ekuwatch --lib --test cli
cargo test --workspace --locked --all-features
# concurrency benchmark, bounded (docs/performance.md has the full runs): its own checks must hold —
# one event per session, each session's outcome as its template's alone, no flow evicted or left.
# Its own target dir: `cargo bench` builds the ekuwatch binary (default features) into
# <target>/release/ekuwatch, which would replace the user's release build (e.g. one with
# --features live).
CARGO_TARGET_DIR="${EKUWATCH_BENCH_TARGET_DIR:-target/test-bench}" \
  cargo bench --locked -p ekuwatch --bench concurrency -- --sessions 20000 1 1000
# dashboards and alert rules: structure, PromQL parse, rule unit tests
python3 dashboards/check.py
promtool check rules dashboards/prometheus/alerts.yml
promtool test rules dashboards/prometheus/alerts_test.yml
promtool check rules dashboards/prometheus/recording.yml
promtool test rules dashboards/prometheus/recording_test.yml
./scripts/fuzz.sh "${EKUWATCH_FUZZ_SECONDS:-60}" all
if [ -s "$EKUWATCH_SKIP_LOG" ]; then
  echo "all tests that ran passed; some were skipped (listed below)"
else
  echo "all tests passed"
fi
