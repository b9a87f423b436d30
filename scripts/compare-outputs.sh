#!/usr/bin/env bash
# Compares two ekuwatch binaries' outputs — events, every report format, OpenMetrics — on every
# bundled capture and every public capture in ../shared/corpus/public, with and without the key
# logs, each capture alone and all together. For refactors that must not change behaviour:
#   scripts/compare-outputs.sh OLD_BINARY NEW_BINARY [OUT_DIR]
# Prints one line per difference and exits 1 if there is any.
set -uo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2
out=${3:-$(mktemp -d)}
mkdir -p "$out"
public=../shared/corpus/public
inputs=(captures/*.pcap captures/*.pcapng)
[ -d "$public" ] && inputs+=("$public"/*/*.pcap "$public"/*/*.pcapng)
differ=0 runs=0
run() { # name, args...
  local name=$1; shift
  for side in old new; do
    local bin=$old; [ $side = new ] && bin=$new
    local d="$out/$side/$name"; mkdir -p "$d"
    "$bin" analyze --events "$d/events.jsonl" --openmetrics "$d/om.txt" --report text "$@" \
      >"$d/report.txt" 2>"$d/stderr.raw"; echo $? >"$d/rc"
    # log lines without their time stamps
    sed -E 's/^[^ ]*[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z[^ ]* +//' "$d/stderr.raw" >"$d/stderr.txt"
    rm "$d/stderr.raw"
    for fmt in json markdown csv html; do
      "$bin" analyze --report $fmt "$@" >"$d/report.$fmt" 2>/dev/null
    done
  done
  runs=$((runs + 1))
  if ! diff -rq "$out/old/$name" "$out/new/$name" >/dev/null; then
    differ=$((differ + 1))
    diff -rq "$out/old/$name" "$out/new/$name" | sed "s|^|$name: |"
  fi
}
for f in "${inputs[@]}"; do
  [ -e "$f" ] || continue
  base=$(basename "$f"); base=${base%.*}
  run "$base" "$f"
  kl="captures/$base.keylog"
  [ -e "$kl" ] && run "$base+keylog" --keylog "$kl" "$f"
done
keylogs=()
for k in captures/*.keylog; do keylogs+=(--keylog "$k"); done
run all-bundled captures/
run all-bundled+keylogs "${keylogs[@]}" captures/
run all-bundled+local --local-net 192.0.2.0/24 captures/
[ -d "$public" ] && run all-public "$public"
echo "$runs runs, $differ with differences (outputs in $out)"
[ "$differ" -eq 0 ]
