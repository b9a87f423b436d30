#!/usr/bin/env python3
"""Markdown tables from run.sh's results.tsv (file, tool, seconds, peak RSS KB, scale)."""
import collections
import json
import os
import statistics
import sys

res, files = sys.argv[1], sys.argv[2:]
runs = collections.defaultdict(list)
for line in open(res):
    f, tool, secs, kb, scale = line.rstrip("\n").split("\t")
    runs[(f, tool)].append((float(secs), int(kb), float(scale)))

info = {}
print("| file | size MB | packets | sessions | TLS body MB |")
print("|---|---:|---:|---:|---:|")
for path in files:
    m = json.load(open(path + ".manifest.json"))
    name = os.path.basename(path)
    info[name] = m
    print(f"| {name} | {m['bytes'] / 1e6:.1f} | {m['packets']:,} | {m['sessions']:,} | "
          f"{m['body_bytes'] / 1e6:.1f} |")
print()
print("| file | tool | runs (s) | median s | MB/s | packets/s | peak RSS MB |")
print("|---|---|---|---:|---:|---:|---:|")
med = {}
for path in files:
    name = os.path.basename(path)
    m = info[name]
    for tool in ("ekuwatch", "tshark", "tshark-prefix", "readloop"):
        r = runs.get((name, tool))
        if not r:
            continue
        scale = r[0][2]
        secs = statistics.median(x[0] for x in r)
        full = secs * scale
        rss = max(x[1] for x in r) / 1024
        med[(name, tool.split("-")[0])] = full
        label = tool if scale == 1 else f"tshark (prefix {m['bytes'] / scale / 1e6:.0f} MB, x{scale:.2f})"
        shown = f"{full:.2f}" if scale == 1 else f"{full:.1f} (measured {secs:.2f})"
        print(f"| {name} | {label} | {' / '.join(f'{x[0]:.2f}' for x in r)} | {shown} | "
              f"{m['bytes'] / 1e6 / full:.1f} | {m['packets'] / full:,.0f} | {rss:.1f}"
              f"{' (prefix)' if scale != 1 else ''} |")
print()
print("| file | ekuwatch vs tshark (speed-up) | ekuwatch vs read loop (time ratio) |")
print("|---|---:|---:|")
for path in files:
    name = os.path.basename(path)
    e, t, r = med.get((name, "ekuwatch")), med.get((name, "tshark")), med.get((name, "readloop"))
    print(f"| {name} | {t / e:.1f}x faster | {e / r:.1f}x slower |")
