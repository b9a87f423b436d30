#!/usr/bin/env python3
"""Synthetic fleet events for the scale figures in docs/performance.md (by hand, never in CI).

    synth-events.py BASE.jsonl N [--peers P] [--observers O] [--clickhouse]

Writes N session events to standard output, cycling through the lines of BASE.jsonl (events of
the bundled captures: `ekuwatch analyze captures/ --local-net 127.0.0.2/32 --events BASE.jsonl`).
Event i becomes a session of peer p(i mod P).example instead of lab.test — every name of the lab
(SNI, certificate SANs and names, banner, EHLO name, CA names, the event's `peer`) is renamed
together, so `ekuwatch report` finds the same peer the event names — seen by observer
mta-(i mod O), from client 10.x.y.z, its timestamp moved by i milliseconds. With --clickhouse each
line is wrapped as the row {"raw": line} for INSERT ... FORMAT JSONEachRow (deploy/vector.toml).
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("n", type=int)
    ap.add_argument("--peers", type=int, default=10000)
    ap.add_argument("--observers", type=int, default=200)
    ap.add_argument("--clickhouse", action="store_true")
    a = ap.parse_args()
    base = [l.rstrip("\n") for l in open(a.base) if l.strip()]
    # Pre-split each template at its lab names and observer, so an event is one join.
    templates = []
    for l in base:
        v = json.loads(l)
        v["observer"] = "@@OBS@@"
        v["client"]["ip"] = "@@IP@@"
        v["ts"] = "@@TS@@"
        templates.append(json.dumps(v, separators=(",", ":")))
    out = sys.stdout
    buf = []
    for i in range(a.n):
        t = templates[i % len(templates)]
        peer = f"p{i % a.peers}.example"
        ms = i % 86_400_000
        ts = f"2026-12-01T{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}000Z"
        line = (t.replace("lab.test", peer)
                .replace("@@OBS@@", f"mta-{i % a.observers}")
                .replace("@@IP@@", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
                .replace("@@TS@@", ts))
        if a.clickhouse:
            line = json.dumps({"raw": line}, separators=(",", ":"))
        buf.append(line)
        if len(buf) >= 10000:
            out.write("\n".join(buf) + "\n")
            buf.clear()
    if buf:
        out.write("\n".join(buf) + "\n")


if __name__ == "__main__":
    main()
