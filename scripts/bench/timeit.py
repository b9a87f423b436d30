#!/usr/bin/env python3
"""Runs a command; writes "wall_s user_s sys_s maxrss_kb" to OUT_FILE: wall and CPU with
microsecond resolution (/usr/bin/time reports 10 ms steps, too coarse for the read loop's ~0.1 s),
peak RSS as /usr/bin/time measures it (the command's own: a child forked from this Python process
would count Python's memory before its exec). Exit status is the command's.
Usage: timeit.py OUT_FILE CMD [ARGS...] (the command's stdout/stderr are inherited)."""
import os
import subprocess
import sys
import time

out, cmd = sys.argv[1], sys.argv[2:]
rss_file = out + ".rss"
t0 = time.perf_counter()
p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file, *cmd])
_, status, ru = os.wait4(p.pid, 0)  # rusage includes /usr/bin/time's reaped child (the command)
wall = time.perf_counter() - t0
rss = open(rss_file).read().split()[-1]
with open(out, "w") as f:
    f.write(f"{wall:.4f} {ru.ru_utime:.4f} {ru.ru_stime:.4f} {rss}\n")
sys.exit(os.waitstatus_to_exitcode(status))
