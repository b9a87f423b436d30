#!/usr/bin/env python3
"""Structural check of the ekuwatch Grafana dashboard (standard library only).

  python3 dashboards/check.py            # exit 0 when fine, 1 with one line per problem otherwise

Checks: valid JSON; the DS_PROMETHEUS datasource variable and the direction variable; every panel
(rows aside) uses datasource ${DS_PROMETHEUS}, has a gridPos inside the 24-column grid, targets with
a non-empty expr and unique refIds; panel ids unique; no two panels overlap; every ekuwatch_ metric
used is in the metric catalogue and every label it is matched on exists for it; every `by (...)`
label is a catalogue label of a metric in the expression (or instance/job); each expression
aggregates (sum/max/count/topk by ...) so several observers merge; queries.json holds exactly the
dashboard's targets with $__rate_interval→5m, $__range→1h, $direction→outbound, $job/$instance→.*;
the job and instance variables exist and every ekuwatch_ selector is limited by them.
If promtool is on PATH, every queries.json expression is also parsed by it (as a recording rule).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DASHBOARD = os.path.join(HERE, "grafana", "ekuwatch.json")
QUERIES = os.path.join(HERE, "grafana", "queries.json")
SUBST = [("$__rate_interval", "5m"), ("$__range", "1h"), ("$direction", "outbound"),
         ("$job", ".*"), ("$instance", ".*")]
SCOPE = 'job=~"$job",instance=~"$instance"'

DS_UID = "${DS_PROMETHEUS}"

# The metric catalogue (contract with the exporter): name -> label names.
PEERLESS = set()
CATALOGUE = {
    "ekuwatch_smtp_sessions_total": {"direction", "starttls"},
    "ekuwatch_tls_handshakes_total": {"direction", "version", "resumed", "result"},
    "ekuwatch_certificate_requests_total": {"direction", "version", "evidence", "peer"},
    "ekuwatch_certificate_request_checks_total": {"direction", "version", "evidence", "peer"},
    "ekuwatch_established_sessions_total": {"direction", "certificate_request", "peer"},
    "ekuwatch_client_certificates_total": {"direction", "status", "eku_class", "trust", "peer"},
    "ekuwatch_handshake_outcomes_total": {"direction", "result", "alert", "client_eku_class", "peer"},
    "ekuwatch_smtp_messages_total": {"direction", "certificate_request", "client_eku_class", "result",
                                     "evidence", "peer"},
    "ekuwatch_peer_verdict": {"peer", "verdict"},
    "ekuwatch_capture_packets_total": {"source"},
    "ekuwatch_capture_dropped_packets_total": {"source", "reason"},
    "ekuwatch_flows_active": set(),
    "ekuwatch_weirds_total": {"kind"},
    "ekuwatch_parse_errors_total": {"layer"},
    "ekuwatch_build_info": {"version", "revision", "features"},
}
# Label values fixed by the catalogue (values used in equality matchers must be among these).
VALUES = {
    "direction": {"outbound", "inbound", "unknown"},
    "starttls": {"accepted", "refused", "not_offered", "not_attempted", "implicit", "unknown"},
    "version": None,  # also build_info's version: free
    "revision": None,
    "features": None,
    "resumed": {"true", "false"},
    "result": {"established", "handshake_failed", "closed_after_handshake", "incomplete"},
    "evidence": {"plaintext", "decrypted", "inferred", "unknown"},
    "certificate_request": {"true", "false", "unknown"},
    "status": {"absent", "empty", "presented", "unknown"},
    "eku_class": {"server_only", "client_only", "server_and_client", "any", "none", "other", "unknown"},
    "client_eku_class": {"server_only", "client_only", "server_and_client", "any", "none", "other",
                         "unknown", "no_cert"},
    "trust": {"public", "private", "unknown"},
    "verdict": {"no_request", "requests_rejects_server_only", "requests_accepts_server_only",
                "requests_untested", "requests_no_cert_ok"},
}
# Where a metric's label takes other values than the label of that name elsewhere.
METRIC_VALUES = {
    "ekuwatch_smtp_messages_total": {
        "result": {"delivered", "rejected_mail", "rejected_rcpt", "rejected_data", "rejected_after_data",
                   "rejected_before_data", "aborted", "unknown", "refused_at_ehlo"},
        "certificate_request": {"yes", "no", "unknown", "no_tls"},
        "evidence": {"plaintext", "decrypted", "inferred"},
    },
}
TARGET_LABELS = {"instance", "job"}

problems = []


def bad(msg):
    problems.append(msg)


def check_expr(where, expr):
    metrics = re.findall(r"\bekuwatch_[a-z0-9_]+\b", expr)
    if not metrics:
        bad(f"{where}: no ekuwatch_ metric in {expr!r}")
    labels_here = set(TARGET_LABELS)
    for m in metrics:
        if m not in CATALOGUE:
            bad(f"{where}: metric {m} is not in the catalogue")
        else:
            labels_here |= CATALOGUE[m]
    # selectors: metric{...}
    for m, body in re.findall(r"\b(ekuwatch_[a-z0-9_]+)\s*\{([^}]*)\}", expr):
        for lab, op, val in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"', body):
            if m in CATALOGUE and lab not in CATALOGUE[m] | TARGET_LABELS:
                bad(f"{where}: {m} has no label {lab!r}")
            allowed = METRIC_VALUES.get(m, {}).get(lab, VALUES.get(lab))
            if allowed and not val.startswith("$"):
                vals = [val] if op in ("=", "!=") else re.split(r"\|", val)
                for v in vals:
                    if v not in allowed and not re.search(r"[.*+?()\[\]]", v):
                        bad(f"{where}: {lab}={v!r} is not a catalogue value")
    for grp in re.findall(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)", expr):
        for lab in [x.strip() for x in grp.split(",") if x.strip()]:
            if lab not in labels_here:
                bad(f"{where}: grouping label {lab!r} is not a label of {sorted(set(metrics))}")
    for m, body in re.findall(r"\b(ekuwatch_[a-z0-9_]+)\s*(\{[^}]*\})?", expr):
        if not body.startswith("{" + SCOPE):
            bad(f"{where}: {m} is not limited to the observers chosen ({SCOPE}) in {expr!r}")
    if not re.search(r"\b(sum|max|min|count|avg|topk|bottomk)\b", expr):
        bad(f"{where}: expression does not aggregate across instances: {expr!r}")
    if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
        bad(f"{where}: unbalanced brackets in {expr!r}")


def overlap(a, b):
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def main():
    try:
        with open(DASHBOARD) as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{DASHBOARD}: {e}")
        return 1
    for key in ("title", "uid", "panels", "templating", "schemaVersion"):
        if key not in dash:
            bad(f"dashboard: missing {key}")
    if not isinstance(dash.get("schemaVersion"), int) or dash.get("schemaVersion", 0) < 36:
        bad("dashboard: schemaVersion should be an integer >= 36")
    if "__inputs" in dash:
        bad("dashboard: __inputs present: file provisioning would not substitute it")

    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("DS_PROMETHEUS")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        bad("templating: need a datasource variable DS_PROMETHEUS with query 'prometheus'")
    dv = variables.get("direction")
    if not dv:
        bad("templating: missing variable 'direction'")
    else:
        q = dv.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if q != "label_values(ekuwatch_tls_handshakes_total, direction)":
            bad(f"templating: direction query is {q!r}")
        if (dv.get("datasource") or {}).get("uid") != DS_UID:
            bad("templating: direction variable does not use ${DS_PROMETHEUS}")

    for name, q_want in (("job", "label_values(ekuwatch_build_info, job)"),
                         ("instance", 'label_values(ekuwatch_build_info{job=~"$job"}, instance)')):
        v = variables.get(name)
        q = (v or {}).get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if not v or q != q_want or not v.get("includeAll") or v.get("allValue") != ".*":
            bad(f"templating: need variable {name!r} ({q_want}, All = .*) for several observers")

    ids, boxes, expected = set(), [], []
    for i, p in enumerate(dash.get("panels", [])):
        title = p.get("title") or f"panel #{i}"
        where = f"panel {title!r}"
        pid = p.get("id")
        if not isinstance(pid, int):
            bad(f"{where}: missing integer id")
        elif pid in ids:
            bad(f"{where}: duplicate id {pid}")
        ids.add(pid)
        gp = p.get("gridPos")
        if not isinstance(gp, dict) or not all(isinstance(gp.get(k), int) for k in "xywh"):
            bad(f"{where}: missing or incomplete gridPos")
        else:
            if gp["x"] < 0 or gp["w"] <= 0 or gp["h"] <= 0 or gp["x"] + gp["w"] > 24:
                bad(f"{where}: gridPos outside the 24-column grid: {gp}")
            for other_title, other in boxes:
                if overlap(gp, other):
                    bad(f"{where}: overlaps panel {other_title!r}")
            boxes.append((title, gp))
        if p.get("type") == "row":
            if p.get("panels"):
                bad(f"{where}: collapsed rows with nested panels are not checked; keep rows open")
            continue
        if p.get("type") not in {"timeseries", "stat", "table", "barchart", "bargauge", "text"}:
            bad(f"{where}: unexpected panel type {p.get('type')!r}")
        if p.get("datasource") != {"type": "prometheus", "uid": DS_UID}:
            bad(f"{where}: datasource is {p.get('datasource')!r}, want ${{DS_PROMETHEUS}}")
        targets = p.get("targets") or []
        if not targets:
            bad(f"{where}: no targets")
        refs = set()
        for t in targets:
            ref = t.get("refId")
            if not ref or ref in refs:
                bad(f"{where}: missing or duplicate refId {ref!r}")
            refs.add(ref)
            if t.get("datasource", p.get("datasource")) != {"type": "prometheus", "uid": DS_UID}:
                bad(f"{where}: target {ref} datasource is not ${{DS_PROMETHEUS}}")
            expr = (t.get("expr") or "").strip()
            if not expr:
                bad(f"{where}: target {ref} has no expr")
                continue
            for var in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expr):
                if var not in ("__rate_interval", "__range", "direction", "job", "instance"):
                    bad(f"{where}: target {ref} uses unknown variable ${var}")
            check_expr(f"{where} target {ref}", expr)
            flat = expr
            for a, b in SUBST:
                flat = flat.replace(a, b)
            expected.append({"panel": p.get("title"), "expr": flat})

    try:
        with open(QUERIES) as f:
            queries = json.load(f)
    except (OSError, ValueError) as e:
        bad(f"{QUERIES}: {e}")
        queries = None
    if queries is not None:
        if not isinstance(queries, list) or not all(
                isinstance(q, dict) and set(q) == {"panel", "expr"} for q in queries):
            bad("queries.json: must be a list of {\"panel\", \"expr\"} objects")
        else:
            key = lambda q: (q["panel"], q["expr"])
            want, have = sorted(map(key, expected)), sorted(map(key, queries))
            for q in sorted(set(want) - set(have)):
                bad(f"queries.json: missing {q}")
            for q in sorted(set(have) - set(want)):
                bad(f"queries.json: not in the dashboard: {q}")
            if len(want) != len(have) and set(want) == set(have):
                bad("queries.json: duplicate entries differ from the dashboard")
            for q in queries:
                if "$" in q["expr"]:
                    bad(f"queries.json: unsubstituted variable in {q['expr']!r}")

    promtool = shutil.which("promtool")
    if promtool and queries and isinstance(queries, list):
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            f.write("groups:\n- name: dashboard_queries\n  rules:\n")
            for i, q in enumerate(queries):
                f.write(f"  - record: ekuwatch_dashboard_query_{i}\n    expr: {json.dumps(q['expr'])}\n")
            path = f.name
        try:
            r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
            if r.returncode != 0:
                bad("promtool rejects a dashboard query:\n" + r.stdout + r.stderr)
        finally:
            os.unlink(path)
        checked = "; PromQL parsed by promtool"
    else:
        checked = "; promtool not found, PromQL not parsed"

    if problems:
        for p in problems:
            print(p)
        print(f"{len(problems)} problem(s)")
        return 1
    n_panels = sum(1 for p in dash["panels"] if p.get("type") != "row")
    print(f"ok: {n_panels} panels, {len(expected)} targets, queries.json in sync{checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
