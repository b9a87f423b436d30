#!/usr/bin/env python3
"""Sanity checks for a file made by make-mail-pcap.py (python3 stdlib only).

  check.py --ekuwatch BIN [--tshark] FILE.pcap

Reads FILE.pcap.manifest.json and checks:
  1. `ekuwatch analyze --events -` emits exactly one event per generated session;
  2. each session's event equals the event of its template capture, apart from fields that
     legitimately change (ts, community_id, client/server addresses, direction, packet and
     payload counters);
  3. with --tshark: tshark (SMTP decode on port 25, TCP desegmentation) finds as many
     ClientHellos as sessions and as many Certificate messages as the templates contain
     (sum over templates of count x certificates-in-template).
Exit status 1 if any check fails.
"""

import argparse
import collections
import json
import os
import subprocess
import sys

# packets/payload_bytes count only what ekuwatch followed (it stops following a flow a few
# packets after the handshake), so an inserted body legitimately changes them.
VOLATILE = {"ts", "community_id", "client", "server", "direction", "packets", "payload_bytes"}


def events(binary, path):
    out = subprocess.run([binary, "analyze", "--report", "none", "--events", "-", path],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def strip(ev):
    return {k: v for k, v in ev.items() if k not in VOLATILE}


def diff(a, b, path=""):
    if type(a) is not type(b):
        return [f"{path}: {json.dumps(a)[:80]} != {json.dumps(b)[:80]}"]
    if isinstance(a, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += diff(a.get(k), b.get(k), f"{path}.{k}")
        return out
    if isinstance(a, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: {json.dumps(a)[:80]} != {json.dumps(b)[:80]}"]


def tshark_counts(path, port):
    """Number of ClientHello (1) and Certificate (11) handshake messages tshark sees."""
    out = subprocess.run(
        ["tshark", "-r", path, "-o", "tcp.desegment_tcp_streams:TRUE", "-d", f"tcp.port=={port},smtp",
         "-Y", "tls.handshake.type==1 || tls.handshake.type==11",
         "-T", "fields", "-e", "tls.handshake.type"],
        check=True, capture_output=True, text=True).stdout
    c = collections.Counter()
    for line in out.splitlines():
        for t in line.replace(";", ",").split(","):
            if t.strip():
                c[t.strip()] += 1
    return c["1"], c["11"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ekuwatch", required=True)
    ap.add_argument("--tshark", action="store_true")
    ap.add_argument("--captures", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "..", "..", "captures"))
    ap.add_argument("pcap")
    a = ap.parse_args()
    m = json.load(open(a.pcap + ".manifest.json"))
    ok = True

    tmpl_ev = {}
    for name, cnt in m["templates"].items():
        if cnt:
            evs = events(a.ekuwatch, os.path.join(a.captures, name))
            assert len(evs) == 1, (name, len(evs))
            tmpl_ev[name] = evs[0]

    evs = events(a.ekuwatch, a.pcap)
    print(f"sessions generated: {m['sessions']}  ekuwatch events: {len(evs)}")
    if len(evs) != m["sessions"]:
        ok = False
        print("FAIL: event count != sessions")
    by_tuple = {(e["client"]["ip"], e["client"]["port"]): e for e in evs}
    mismatches = collections.Counter()
    examples = {}
    missing = 0
    for cip, cport, sip, sport, name, body, _extra in m["session_list"]:
        e = by_tuple.get((cip, cport))
        if e is None:
            missing += 1
            continue
        t = tmpl_ev[name]
        d = diff(strip(t), strip(e))
        for line in d:
            key = (name, line.split(":")[0])
            mismatches[key] += 1
            examples.setdefault(key, (f"{cip}:{cport}", line))
    if missing:
        ok = False
        print(f"FAIL: {missing} sessions without an event")
    if mismatches:
        ok = False
        print(f"FAIL: {sum(mismatches.values())} field differences vs template events:")
        for (name, field), n in sorted(mismatches.items()):
            print(f"  {n:6d}  {name} {field}   e.g. {examples[(name, field)]}")
    else:
        print("all session events equal their template's event (modulo addresses/ts/counters)")

    if a.tshark:
        exp_ch = exp_cert = 0
        for name, cnt in m["templates"].items():
            if cnt:
                ch, cert = tshark_counts(os.path.join(a.captures, name),
                                         tmpl_ev[name]["server"]["port"])
                exp_ch += cnt * ch
                exp_cert += cnt * cert
        ch, cert = tshark_counts(a.pcap, m["server_port"])
        print(f"tshark ClientHello: {ch} (expected {exp_ch}); Certificate: {cert} (expected {exp_cert})")
        if (ch, cert) != (exp_ch, exp_cert):
            ok = False
            print("FAIL: tshark handshake counts differ")
    print("OK" if ok else "CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
