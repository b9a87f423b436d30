#!/usr/bin/env bash
# Throughput benchmark: ekuwatch vs tshark vs a bare libpcap read loop.
#
#   scripts/bench/run.sh                 # everything, results in $BENCH_DIR/results.md
#
# Environment:
#   BENCH_DIR       work dir for generated captures and results (default /tmp/ekuwatch-bench)
#   CARGO_TARGET_DIR  (default /tmp/bench-target, so a developer's target/ is never locked)
#   REPS            repetitions per measurement, median reported (default 3)
#   MAIL_MB / HS_MB target sizes of the mail / handshake-only captures (default 250 / 50)
#   SEED            generator seed (default 1)
#   TSHARK_LIMIT_S  if one full tshark run is predicted to exceed this, tshark is measured on a
#                   prefix of TSHARK_PREFIX_MB and scaled linearly (default 900 s / 50 MB)
#   EKUWATCH        use this pre-built binary instead of building
#   CHECK_TSHARK=1  also run the (slow) tshark handshake-count sanity check
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/ekuwatch-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/bench-target}"
REPS="${REPS:-3}"
MAIL_MB="${MAIL_MB:-250}"
HS_MB="${HS_MB:-50}"
SEED="${SEED:-1}"
TSHARK_LIMIT_S="${TSHARK_LIMIT_S:-900}"
TSHARK_PREFIX_MB="${TSHARK_PREFIX_MB:-50}"
mkdir -p "$BENCH_DIR"

if [ -n "${EKUWATCH:-}" ]; then
  EKU="$EKUWATCH"   # pre-built binary: skip the build
else
  echo "== build" >&2
  # The profiling profile: the release build's code plus debug info, so the measured binary can
  # also be profiled (perf record --call-graph dwarf, callgrind); release itself ships stripped.
  (cd "$repo" && cargo build --profile profiling -p ekuwatch >&2)
  EKU="$CARGO_TARGET_DIR/profiling/ekuwatch"
fi
{ echo "commit $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- observer || echo ' + uncommitted observer/ changes')";
  echo "nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo); kernel $(uname -r)";
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"; } > "$BENCH_DIR/env.txt"
gcc -O2 -o "$BENCH_DIR/readloop" "$here/readloop.c" -lpcap
READLOOP="$BENCH_DIR/readloop"

MAIL="$BENCH_DIR/mail-${MAIL_MB}mb.pcap"
HS="$BENCH_DIR/handshake-${HS_MB}mb.pcap"
echo "== generate (if absent)" >&2
[ -s "$MAIL.manifest.json" ] || python3 "$here/make-mail-pcap.py" --seed "$SEED" --target-mb "$MAIL_MB" --out "$MAIL"
[ -s "$HS.manifest.json" ] || python3 "$here/make-mail-pcap.py" --seed "$SEED" --handshake-only --target-mb "$HS_MB" --out "$HS"

echo "== sanity checks" >&2
for f in "$MAIL" "$HS"; do
  python3 "$here/check.py" --ekuwatch "$EKU" ${CHECK_TSHARK:+--tshark} "$f" >&2
done

TSHARK_FILTER='tls.handshake.type==11 || tls.handshake.type==13 || tls.handshake.type==2'
tshark_cmd() { # file
  tshark -r "$1" -Y "$TSHARK_FILTER" -T fields -e tcp.stream -e tls.handshake.type \
    -e tls.handshake.version -e x509ce.KeyPurposeId -e x509if.RDNSequence_item \
    -o tcp.desegment_tcp_streams:TRUE -d tcp.port==25,smtp
}

RES="$BENCH_DIR/results.tsv"
: > "$RES"
# once LABEL FILE SCALE RUN CMD... : one timed run of CMD (timeit.py: microseconds), one line appended
once() {
  local label="$1" file="$2" scale="$3" run="$4"; shift 4
  python3 "$here/timeit.py" "$BENCH_DIR/time.out" "$@" > "$BENCH_DIR/$label.out" 2> "$BENCH_DIR/$label.err" \
    || { echo "FAILED: $label $*" >&2; cat "$BENCH_DIR/$label.err" >&2; exit 1; }
  read -r secs user sys kb < "$BENCH_DIR/time.out"
  cpu=$(python3 -c "print(round($user + $sys, 4))")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(basename "$file")" "$label" "$secs" "$kb" "$scale" "$cpu" >> "$RES"
  echo "  $label $(basename "$file") run $run: ${secs}s wall, ${cpu}s CPU, ${kb}KB" >&2
}
# measure LABEL FILE SCALE CMD... : REPS runs of CMD
measure() {
  local i
  for i in $(seq 1 "$REPS"); do once "$1" "$2" "$3" "$i" "${@:4}"; done
}

for f in "$MAIL" "$HS"; do
  echo "== $(basename "$f")" >&2
  # The read loop and ekuwatch alternate, so that both meet the same load on a shared machine
  # (their ratio is a goal).
  for i in $(seq 1 "$REPS"); do
    once readloop "$f" 1 "$i" "$READLOOP" "$f"
    once ekuwatch "$f" 1 "$i" "$EKU" analyze --report none --events /dev/null "$f"
  done
  # tshark: predict from a prefix whether a full run fits in TSHARK_LIMIT_S
  size=$(stat -c %s "$f")
  prefix="$BENCH_DIR/$(basename "$f" .pcap).prefix${TSHARK_PREFIX_MB}mb.pcap"
  if [ "$size" -gt $((TSHARK_PREFIX_MB * 1000000)) ]; then
    if [ ! -s "$prefix" ]; then
      # packets in the first TSHARK_PREFIX_MB MB (pcap record header 16 bytes + frame)
      npk=$(python3 - "$f" "$TSHARK_PREFIX_MB" <<'EOF'
import struct, sys
lim = int(float(sys.argv[2]) * 1e6); n = 0; off = 24
with open(sys.argv[1], "rb") as fh:
    fh.seek(24)
    while True:
        h = fh.read(16)
        if len(h) < 16: break
        incl = struct.unpack("<IIII", h)[2]
        if off + 16 + incl > lim: break
        fh.seek(incl, 1); off += 16 + incl; n += 1
print(n)
EOF
)
      editcap -r "$f" "$prefix" "1-$npk"
    fi
    t0=$(date +%s.%N); tshark_cmd "$prefix" > /dev/null 2>&1; t1=$(date +%s.%N)
    predicted=$(python3 -c "print(($t1-$t0) * $size / $(stat -c %s "$prefix"))")
    echo "  tshark on $(basename "$prefix"): $(python3 -c "print(round($t1-$t0,1))")s -> full file predicted ${predicted%.*}s" >&2
    if python3 -c "import sys; sys.exit(0 if $predicted > $TSHARK_LIMIT_S else 1)"; then
      scale=$(python3 -c "print($size / $(stat -c %s "$prefix"))")
      export -f tshark_cmd; export TSHARK_FILTER
      measure tshark-prefix "$f" "$scale" bash -c 'tshark_cmd "$0"' "$prefix"
      continue
    fi
  fi
  export -f tshark_cmd; export TSHARK_FILTER
  measure tshark "$f" 1 bash -c 'tshark_cmd "$0"' "$f"
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$BENCH_DIR/env.txt"
{ sed 's/^/    /' "$BENCH_DIR/env.txt"; echo; python3 "$here/report.py" "$RES" "$MAIL" "$HS"; } | tee "$BENCH_DIR/results.md"
