#!/usr/bin/env python3
"""Runs a command; prints "wall_s user_s sys_s maxrss_kb" with microsecond resolution
(/usr/bin/time reports 10 ms steps, too coarse for the read loop's ~0.1 s). Exit status is the
command's. Usage: timeit.py OUT_FILE CMD [ARGS...] (the command's stdout/stderr are inherited)."""
import os
import subprocess
import sys
import time

out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
p = subprocess.Popen(cmd)
_, status, ru = os.wait4(p.pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as f:
    f.write(f"{wall:.4f} {ru.ru_utime:.4f} {ru.ru_stime:.4f} {ru.ru_maxrss}\n")
sys.exit(os.waitstatus_to_exitcode(status))
