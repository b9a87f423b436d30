#!/usr/bin/env python3
"""Table of scripts/bench/ebpf.sh runs (markdown): per rate, what each backend cost and delivered,
and whether the eBPF backend's events equal libpcap's (timestamps aside)."""
import json
import os
import re
import sys

d = sys.argv[1]
runs = [json.loads(l) for l in open(os.path.join(d, "ebpf-runs.jsonl")) if l.strip()]


def metric(tag, series):
    try:
        text = open(os.path.join(d, f"{tag}.metrics")).read()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def events(tag):
    try:
        evs = [json.loads(l) for l in open(os.path.join(d, f"{tag}.jsonl")) if l.strip()]
    except OSError:
        return None
    for e in evs:
        e.pop("ts", None)
    return sorted(evs, key=lambda e: (e["client"]["ip"], e["client"]["port"]))


by = {(r["rate"], r["backend"]): r for r in runs}
rates = []
for r in runs:
    if r["rate"] not in rates:
        rates.append(r["rate"])
print("| new session every | achieved | backend | packets to user space | bytes to user space | observer CPU s | BPF program s (kernel) | machine CPU s above baseline | drops | events | same events as pcap |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for rate in rates:
    base = by.get((rate, "none"))
    pcap_ev = events(f"pcap-{rate}")
    for backend in ("pcap", "ebpf"):
        r = by.get((rate, backend))
        if not r:
            continue
        tag = r["tag"]
        src = f'{{source="{backend}"}}'
        pk = metric(tag, "ekuwatch_capture_packets_total" + src) or 0
        by_ = metric(tag, "ekuwatch_capture_bytes_total" + src) or 0
        if backend == "ebpf":
            # everything the ring carried: whole packets, and summaries with their metadata
            by_ = metric(tag, 'ekuwatch_ebpf_bytes_total{action="forwarded"}') or by_
        if backend == "pcap":
            drops = (metric(tag, 'ekuwatch_capture_dropped_packets_total{reason="kernel",source="pcap"}') or 0) + (
                metric(tag, 'ekuwatch_capture_dropped_packets_total{reason="interface",source="pcap"}') or 0)
        else:
            drops = metric(tag, 'ekuwatch_capture_dropped_packets_total{reason="ring_buffer",source="ebpf"}') or 0
        ev = events(tag)
        if backend == "pcap":
            same = "—"
        else:
            key = lambda e: (e["client"]["ip"], e["client"]["port"])
            a = {key(e): e for e in pcap_ev or []}
            b = {key(e): e for e in ev or []}
            common = a.keys() & b.keys()
            differ = sum(1 for k in common if a[k] != b[k])
            same = "yes" if differ == 0 and len(a) == len(b) else f"{len(common) - differ} of {len(common)} common identical; {len(b) - len(common)} only eBPF, {len(a) - len(common)} only pcap"
        above = r["machine_busy_s"] - base["machine_busy_s"] if base else float("nan")
        label = "as fast as possible" if rate == "top" else f"{float(rate) * 1000:g} ms"
        print(f'| {label} | {r["mbps"] or 0:.0f} Mbit/s | {backend} | {pk:.0f} ({100 * pk / r["sent_packets"]:.1f}%) '
              f'| {by_ / 1e6:.1f} MB ({100 * by_ / r["sent_bytes"]:.2f}%) | {r["observer_cpu_s"]:.2f} | {r["bpf_prog_s"]:.3f} '
              f'| {above:.2f} | {drops:.0f} | {len(ev or [])} | {same} |')
