#!/usr/bin/env python3
"""Run ekuwatch over the files written by make-hostile.py and print a markdown table.

Usage: check-hostile.py EKUWATCH_BINARY OUTDIR [--timeout 60]

For every manifest entry: runs `ekuwatch analyze --events - --report json FILE` under
/usr/bin/time (wall time, peak RSS) with a timeout, then checks that
  * the process did not crash (exit status 0 or 1, no signal) and did not time out,
  * the normal session (client port 44221 -> server port 2526) is reported with tls.version "1.2",
    certificate_request.present true and client_certificate.chain[0].eku_class "server_only",
  * the normal session has no weirds,
  * every name in expect_weirds (and expect_smtp_anomalies) appears in some event,
  * for each entry of "sessions" (key: client port): that session is reported once, its event has
    the listed weirds / smtp anomalies, and every "expect" path (dotted, list indices as numbers)
    has the given value.
Exit status 1 if any check failed. Python 3 stdlib only.
"""
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def run(binary, args, timeout):
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf, \
            tempfile.TemporaryFile("w+b") as out, tempfile.TemporaryFile("w+b") as err:
        cmd = ["/usr/bin/time", "-o", tf.name, "-f", "%e s %M KB", binary, "analyze"] + args
        try:
            p = subprocess.run(cmd, stdout=out, stderr=err, timeout=timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        out.seek(0)
        err.seek(0)
        t = open(tf.name).read().strip().splitlines()
        return rc, (t[-1] if t else "?"), out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")


def events_of(stdout):
    evs = []
    # split on "\n" only: str.splitlines() also splits on U+0085/U+2028, which JSON strings may hold
    for line in stdout.split("\n"):
        if line.startswith('{"type":'):
            evs.append(json.loads(line))
    return evs


def get(d, path):
    for k in path:
        if isinstance(k, int):
            if not isinstance(d, list) or len(d) <= k:
                return None
        elif not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def normal_ok(ev):
    return (get(ev, ["tls", "version"]) == "1.2"
            and get(ev, ["tls", "certificate_request", "present"]) is True
            and get(ev, ["tls", "client_certificate", "chain", 0, "eku_class"]) == "server_only")


def human(n):
    for u in ("B", "KB", "MB", "GB"):
        if n < 1024 or u == "GB":
            return f"{n:.0f} {u}" if u == "B" else f"{n:.1f} {u}"
        n /= 1024


def main():
    binary, outdir = sys.argv[1], sys.argv[2]
    timeout = 60
    if "--timeout" in sys.argv:
        timeout = float(sys.argv[sys.argv.index("--timeout") + 1])
    manifest = json.load(open(os.path.join(outdir, "manifest.json")))
    failed = False
    rows = []
    # the normal session's own weirds (its close, e.g. a server RST), from its unchanged capture
    normal_src = os.path.join(REPO, "captures", "pf-askccert-tls12-openssl-serveronly.pcap")
    _, _, out0, _ = run(binary, ["--events", "-", "--report", "none", normal_src], timeout)
    normal_own = sorted({w for e in events_of(out0) for w in (e.get("weirds") or [])})
    for m in manifest:
        path = os.path.join(outdir, m["file"])
        if m.get("use_as") == "--keylog":
            target = os.path.join(REPO, m["use_with"])
            args = ["--events", "-", "--report", "json", "--keylog", path, target]
        else:
            args = ["--events", "-", "--report", "json", path]
        rc, tm, out, err = run(binary, args, timeout)
        problems = []
        if rc == "timeout":
            problems.append(f"TIMEOUT > {timeout} s")
        elif rc not in (0, 1):
            problems.append(f"exit status {rc}: {err.strip()[-300:]}")
        evs = []
        try:
            evs = events_of(out)
        except ValueError as e:
            problems.append(f"bad JSON event line: {e}")
        weirds = sorted({w for e in evs for w in (e.get("weirds") or [])})
        anomalies = sorted({a for e in evs for a in (get(e, ["smtp", "anomalies"]) or [])})
        if m.get("use_as") == "--keylog":
            pass  # checked through "sessions"
        else:
            normal = [e for e in evs if get(e, ["server", "port"]) == m["normal_session_port"]
                      and get(e, ["client", "port"]) == m["normal_session_client_port"]]
            if len(normal) != 1:
                problems.append(f"normal session reported {len(normal)} times")
            elif not normal_ok(normal[0]):
                problems.append("normal session facts wrong: " + json.dumps(normal[0].get("tls"))[:300])
            if len(normal) == 1 and sorted(normal[0].get("weirds") or []) != normal_own:
                problems.append(f"normal session has weirds {normal[0]['weirds']} "
                                f"(alone: {normal_own})")
        for port, spec in (m.get("sessions") or {}).items():
            sev = [e for e in evs if str(get(e, ["client", "port"])) == port]
            if len(sev) != 1:
                problems.append(f"session {port} reported {len(sev)} times")
                continue
            e = sev[0]
            for w in spec.get("weirds", []):
                if w not in (e.get("weirds") or []):
                    problems.append(f"session {port}: weird {w} not seen")
            for a in spec.get("smtp_anomalies", []):
                if a not in (get(e, ["smtp", "anomalies"]) or []):
                    problems.append(f"session {port}: smtp anomaly {a} not seen")
            for dpath, want in (spec.get("expect") or {}).items():
                keys = [int(k) if k.isdigit() else k for k in dpath.split(".")]
                got = get(e, keys)
                if got != want:
                    problems.append(f"session {port}: {dpath} = {got!r}, expected {want!r}")
        for w in m["expect_weirds"]:
            if w not in weirds:
                problems.append(f"expected weird {w} not seen")
        for a in m.get("expect_smtp_anomalies", []):
            if a not in anomalies:
                problems.append(f"expected smtp anomaly {a} not seen")
        if problems:
            failed = True
        size = os.path.getsize(path)
        rows.append((m["file"], human(size), tm, rc, len(evs), ", ".join(weirds + [f"smtp:{a}" for a in anomalies]) or "-",
                     "; ".join(problems) or "ok"))
        print(f"{m['file']}: rc={rc} {tm} events={len(evs)} weirds={weirds} anomalies={anomalies} "
              f"{'; '.join(problems) or 'ok'}", file=sys.stderr)
        if err.strip():
            print("  stderr: " + err.strip()[-400:].replace("\n", "\n  stderr: "), file=sys.stderr)
    print("| file | size | ekuwatch time / peak RSS | exit | events | weirds seen | check |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
