#!/usr/bin/env python3
"""Two ekuwatch binaries on the same captures: instructions executed (valgrind callgrind; exact,
unlike time on a shared VM) and CPU time (median of REPS runs, the binaries alternating so both
meet the same load). For changes that must not cost speed (docs/performance.md).

    scripts/bench/ab.py OLD_BINARY NEW_BINARY CAPTURE... [--reps N] [--no-valgrind]

Captures: e.g. from scripts/bench/make-mail-pcap.py (mail and --handshake-only).
The totals compared here need no symbols, so release binaries do; to see where the instructions
go (callgrind_annotate per function or line), build with `cargo build --profile profiling`
(release code with debug info).
"""
import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import tempfile


def cpu_run(binary, capture):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([binary, "analyze", "--report", "none", capture], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def instructions(binary, capture):
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={os.path.join(d, 'cg')}",
             binary, "analyze", "--report", "none", capture],
            check=True, capture_output=True, text=True).stderr
    m = re.search(r"Collected : (\d+)", out)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("captures", nargs="+")
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--no-valgrind", action="store_true")
    a = ap.parse_args()
    valgrind = not a.no_valgrind and shutil.which("valgrind")
    print("| capture | instructions old | new | new/old | CPU s old | new | new/old |")
    print("|---|---|---|---|---|---|---|")
    for cap in a.captures:
        times = {"old": [], "new": []}
        for rep in range(a.reps):
            for side in (("old", "new") if rep % 2 == 0 else ("new", "old")):
                times[side].append(cpu_run(getattr(a, side), cap))
        told, tnew = (statistics.median(times[s]) for s in ("old", "new"))
        if valgrind:
            iold, inew = instructions(a.old, cap), instructions(a.new, cap)
            icol = f"{iold:,} | {inew:,} | {inew / iold:.3f}"
        else:
            icol = "- | - | -"
        print(f"| {os.path.basename(cap)} | {icol} | {told:.3f} | {tnew:.3f} | {tnew / told:.3f} |")


if __name__ == "__main__":
    main()
