#!/usr/bin/env bash
# eBPF vs libpcap backend, same replayed traffic (issue 6; results in docs/performance.md).
#
#   sudo scripts/bench/ebpf.sh            # results: $BENCH_DIR/ebpf-results.md
#
# Synthetic mail captures (scripts/bench/make-mail-pcap.py: real Postfix/OpenSSL/GnuTLS sessions,
# 20-200 KB bodies, port 25) are replayed with tcpreplay, at their own timing, into one end of a
# veth pair; `ekuwatch live` listens on the other end, once per backend (and once not at all, for
# the machine's baseline). The rate rises the way it does on a busy MX: more sessions at once
# (a new session every INTERVAL seconds), each at the same pace (~2.4 MB/s per body); the last
# run replays the densest capture as fast as tcpreplay can (--topspeed). Per run: packets and bytes delivered to user space, the
# observer's CPU seconds (user+sys, /usr/bin/time), the eBPF program's own run time in the kernel
# (bpf_stats), the machine's busy CPU above the baseline, drops, and whether the two backends'
# events are identical (timestamps aside).
#
# Environment: BENCH_DIR (default /tmp/ekuwatch-bench), MAIL_MB (default 250), BODY_KB (message
# body sizes, default "20-200"; "1024-10240" for 1-10 MB), INTERVALS (session
# spacing in seconds, default "0.02 0.005 0.002 0.001 0.0005"; "top" adds a --topspeed run of the
# last), CARGO_TARGET_DIR (default /tmp/bench-target), EKUWATCH (a pre-built binary built with
# --features ebpf).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
BENCH_DIR="${BENCH_DIR:-/tmp/ekuwatch-bench}"
MAIL_MB="${MAIL_MB:-250}"
BODY_KB="${BODY_KB:-20-200}"
INTERVALS="${INTERVALS:-0.02 0.005 0.002 0.001 0.0005 top}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/bench-target}"
mkdir -p "$BENCH_DIR"
[ "$(id -u)" -eq 0 ] || { echo "ebpf.sh: needs root (veth, eBPF, packet capture)" >&2; exit 1; }

command -v tcpreplay >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpreplay >/dev/null
"$repo/scripts/setup.sh" >/dev/null
if [ -z "${EKUWATCH:-}" ]; then
  (cd "$repo" && cargo build --release --locked --features ebpf -q)
  EKUWATCH="$CARGO_TARGET_DIR/release/ekuwatch"
fi

A=ekbench0; B=ekbench1
cleanup() { ip link del "$A" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip link add "$A" type veth peer name "$B"
# The templates come from loopback captures with segments of up to 64 KB: at the default MTU
# tcpreplay fails to send those frames ("Failed packets") and both backends see a gap.
ip link set "$A" mtu 65535; ip link set "$B" mtu 65535
ip link set "$A" up; ip link set "$B" up
sysctl -qw kernel.bpf_stats_enabled=1

busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }   # user nice system irq softirq (jiffies)
prog_ns() {  # run_time_ns of the BPF programs a process holds
  local pid=$1 t=0
  for fd in /proc/"$pid"/fd/*; do
    if [ "$(readlink "$fd" 2>/dev/null)" = "anon_inode:bpf-prog" ]; then
      t=$(( t + $(awk '/^run_time_ns/{print $2}' /proc/"$pid"/fdinfo/"${fd##*/}") ))
    fi
  done
  echo "$t"
}

runs="$BENCH_DIR/ebpf-runs.jsonl"; : > "$runs"
port=19980
for rate in $INTERVALS; do
  if [ "$rate" = top ]; then speed=(--topspeed); else
    speed=()
    pcap="$BENCH_DIR/mail-$MAIL_MB-b$BODY_KB-i$rate.pcap"
    [ -s "$pcap" ] || python3 "$here/make-mail-pcap.py" --target-mb "$MAIL_MB" --interval "$rate" \
      --body-kb "$BODY_KB" --out "$pcap" --seed 1 >/dev/null
  fi
  for backend in none pcap ebpf; do
    port=$((port + 1))
    tag="$backend-$rate"
    obs=""
    if [ "$backend" != none ]; then
      /usr/bin/time -f '%U %S' -o "$BENCH_DIR/$tag.time" \
        "$EKUWATCH" live --backend "$backend" --interface "$B" --listen "127.0.0.1:$port" \
        --local-net 10.0.0.0/8 --user - --linger 0 --events "$BENCH_DIR/$tag.jsonl" 2>/dev/null &
      obs=$!
      for _ in $(seq 100); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    fi
    b0=$(busy)
    tcpreplay -q -i "$A" "${speed[@]}" "$pcap" > "$BENCH_DIR/$tag.replay" 2>&1
    sleep 2   # let the observer drain what is queued
    b1=$(busy)
    metrics=""; bpf_ns=0
    if [ -n "$obs" ]; then
      metrics=$(curl -sf "127.0.0.1:$port/metrics" || true)
      epid=$(pgrep -P "$obs" | head -1 || true); epid=${epid:-$obs}
      [ "$backend" = ebpf ] && bpf_ns=$(prog_ns "$epid")
      kill -TERM "$epid"; wait "$obs" || true
    fi
    python3 - "$runs" "$tag" "$backend" "$rate" "$BENCH_DIR" "$((b1 - b0))" "$bpf_ns" "$(getconf CLK_TCK)" <<'PY'
import json, re, sys
runs, tag, backend, rate, d, busy, bpf_ns, hz = sys.argv[1:]
replay = open(f"{d}/{tag}.replay").read()
m = re.search(r"Actual: (\d+) packets \((\d+) bytes\) sent in ([\d.]+) seconds", replay)
mbps = re.search(r"Rated: [\d.]+ Bps, ([\d.]+) Mbps", replay)
r = {"tag": tag, "backend": backend, "rate": rate, "sent_packets": int(m[1]), "sent_bytes": int(m[2]),
     "seconds": float(m[3]), "mbps": float(mbps[1]) if mbps else None,
     "machine_busy_s": int(busy) / int(hz), "bpf_prog_s": int(bpf_ns) / 1e9}
if backend != "none":
    u, s = open(f"{d}/{tag}.time").read().split()[-2:]
    r["observer_cpu_s"] = float(u) + float(s)
print(json.dumps(r))
open(runs, "a").write(json.dumps(r) + "\n")
PY
    [ -n "$metrics" ] && printf '%s\n' "$metrics" > "$BENCH_DIR/$tag.metrics"
  done
done
python3 "$here/ebpf-report.py" "$BENCH_DIR" > "$BENCH_DIR/ebpf-results.md"
cat "$BENCH_DIR/ebpf-results.md"
