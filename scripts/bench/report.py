#!/usr/bin/env python3
"""Markdown tables from run.sh's results.tsv (file, tool, wall s, peak RSS KB, scale, CPU s)."""
import collections
import json
import os
import statistics
import sys

res, files = sys.argv[1], sys.argv[2:]
runs = collections.defaultdict(list)
for line in open(res):
    f, tool, secs, kb, scale, *cpu = line.rstrip("\n").split("\t")
    runs[(f, tool)].append((float(secs), int(kb), float(scale), float(cpu[0]) if cpu else None))

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
print("| file | tool | runs (s) | median s | MB/s | packets/s | median CPU s (user+sys) | peak RSS MB |")
print("|---|---|---|---:|---:|---:|---:|---:|")
med = {}
cpu_med = {}
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
        cpus = [x[3] for x in r if x[3] is not None]
        cpu = statistics.median(cpus) * scale if cpus else None
        cpu_med[(name, tool.split("-")[0])] = cpu
        label = tool if scale == 1 else f"tshark (prefix {m['bytes'] / scale / 1e6:.0f} MB, x{scale:.2f})"
        shown = f"{full:.3f}" if scale == 1 else f"{full:.1f} (measured {secs:.2f})"
        print(f"| {name} | {label} | {' / '.join(f'{x[0]:.3f}' for x in r)} | {shown} | "
              f"{m['bytes'] / 1e6 / full:.1f} | {m['packets'] / full:,.0f} | "
              f"{'-' if cpu is None else f'{cpu:.3f}'} | {rss:.1f}"
              f"{' (prefix)' if scale != 1 else ''} |")
print()
print("| file | ekuwatch vs tshark (wall) | ekuwatch vs read loop (wall) | ekuwatch vs tshark (CPU) | ekuwatch vs read loop (CPU) | share of the read loop's speed (wall / CPU) |")
print("|---|---:|---:|---:|---:|---:|")


def ratio(a, b, fmt):
    return "-" if a is None or b is None or b == 0 else fmt.format(a / b)


for path in files:
    name = os.path.basename(path)
    e, t, r = med.get((name, "ekuwatch")), med.get((name, "tshark")), med.get((name, "readloop"))
    ec, tc, rc = (cpu_med.get((name, k)) for k in ("ekuwatch", "tshark", "readloop"))
    print(f"| {name} | {ratio(t, e, '{:.1f}x faster')} | {ratio(e, r, '{:.2f}x its time')} | "
          f"{ratio(tc, ec, '{:.1f}x faster')} | {ratio(ec, rc, '{:.2f}x its time')} | "
          f"{ratio(r, e, '{:.0%}')} / {ratio(rc, ec, '{:.0%}')} |")
