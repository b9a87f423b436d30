#!/usr/bin/env python3
"""Generates ekuwatch.json (Grafana dashboard) and queries.json (every target's PromQL with the
Grafana variables replaced, for end-to-end tests against a real Prometheus).

Edit this file, run `python3 dashboards/grafana/generate.py`, then `python3 dashboards/check.py`.
Standard library only.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

# Substitutions used to turn dashboard expressions into plain PromQL (queries.json).
SUBST = [("$__rate_interval", "5m"), ("$__range", "1h"), ("$direction", "outbound"),
         ("$job", ".*"), ("$instance", ".*")]
# Every ekuwatch_ selector is limited to the observers chosen in the job and instance variables
# (several observers, one per MTA: all by default, or one to compare it with the fleet).
SCOPE = 'job=~"$job",instance=~"$instance"'


def scoped(expr):
    """expr with every ekuwatch_ selector limited to $job and $instance."""
    import re
    return re.sub(r"\b(ekuwatch_[a-z0-9_]+)(\{)?",
                  lambda m: f"{m.group(1)}{{{SCOPE}," if m.group(2) else f"{m.group(1)}{{{SCOPE}}}",
                  expr)

RI = "$__rate_interval"
RG = "$__range"
OUT = 'direction="outbound"'
DIR = 'direction=~"$direction"'
FAILED = 'result=~"handshake_failed|closed_after_handshake"'

panels = []
_next_id = [1]


def target(expr, legend="", ref=None, instant=False, fmt=None):
    t = {"datasource": DS, "expr": scoped(expr), "legendFormat": legend or "__auto", "range": not instant,
         "instant": instant, "editorMode": "code"}
    if fmt:
        t["format"] = fmt
    if ref:
        t["refId"] = ref
    return t


def panel(kind, title, x, y, w, h, targets, description="", unit=None, options=None,
          field_config=None, transformations=None, overrides=None):
    for i, t in enumerate(targets):
        t.setdefault("refId", chr(ord("A") + i))
    defaults = {"color": {"mode": "palette-classic"}}
    if unit:
        defaults["unit"] = unit
    if field_config:
        defaults.update(field_config)
    p = {
        "id": _next_id[0],
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
    }
    if transformations:
        p["transformations"] = transformations
    _next_id[0] += 1
    panels.append(p)
    return p


def row(title, y):
    panels.append({"id": _next_id[0], "type": "row", "title": title, "collapsed": False,
                   "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []})
    _next_id[0] += 1


def stat_opts(graph=False):
    return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value", "graphMode": "area" if graph else "none", "justifyMode": "auto",
            "orientation": "auto", "textMode": "auto", "showPercentChange": False}


def ts_opts(stack=False):
    return {"legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                       "calcs": ["mean", "lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"}}


def ts_field(stack=False, bars=False):
    custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 1, "fillOpacity": 30 if stack else 10,
              "showPoints": "never", "spanNulls": False,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    return {"custom": custom}


def bargauge_opts():
    return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal", "displayMode": "basic", "showUnfilled": True,
            "valueMode": "color", "namePlacement": "left", "sizing": "auto", "minVizHeight": 16,
            "maxVizHeight": 300}


def table_opts(sort_by):
    return {"showHeader": True, "cellHeight": "sm", "footer": {"show": False},
            "sortBy": [{"displayName": sort_by, "desc": True}]}


def ratio(num, den, by=""):
    agg = f"sum by ({by}) " if by else "sum "
    return f"{agg}({num}) / {agg}({den})"


# --------------------------------------------------------------------------------------------
y = 0
row("Overview (outbound: what our MTAs meet)", y); y += 1

cr_range = ratio(f"increase(ekuwatch_certificate_requests_total{{{OUT}}}[{RG}])",
                 f"increase(ekuwatch_certificate_request_checks_total{{{OUT}}}[{RG}])")
panel("stat", "Outbound CertificateRequest rate per handshake (range)", 0, y, 4, 5,
      [target(cr_range, "CR / handshake", instant=True)], unit="percentunit",
      description="Share of our non-resumed outbound handshakes (where CertificateRequest presence is "
                  "known) in which the peer sent a CertificateRequest, over the dashboard's time range. "
                  "Summed over every observer (instance).",
      options=stat_opts(), field_config={"decimals": 1, "color": {"mode": "thresholds"},
                                         "thresholds": {"mode": "absolute", "steps": [{"color": "blue", "value": None}]}})

est_known = 'certificate_request=~"true|false"'
cr_sess_range = (f"sum(increase(ekuwatch_established_sessions_total{{{OUT},certificate_request=\"true\"}}[{RG}])) / "
                 f"sum(increase(ekuwatch_established_sessions_total{{{OUT},{est_known}}}[{RG}]))")
panel("stat", "Outbound CertificateRequest rate per message-carrying session (range)", 4, y, 4, 5,
      [target(cr_sess_range, "CR / session", instant=True)], unit="percentunit",
      description="Share of outbound TLS sessions that carried SMTP after the handshake and met a "
                  "CertificateRequest (comparable to Gmail's 38% of outbound messages). Sessions whose "
                  "CertificateRequest presence is unknown are left out of the denominator.",
      options=stat_opts(), field_config={"decimals": 1, "color": {"mode": "thresholds"},
                                         "thresholds": {"mode": "absolute", "steps": [{"color": "blue", "value": None}]}})

panel("stat", "Peers rejecting serverAuth-only client certificates", 8, y, 4, 5,
      [target('count(max by (peer) (ekuwatch_peer_verdict{verdict="requests_rejects_server_only"} == 1)) or vector(0)',
              "peers", instant=True)],
      description="Peers whose verdict is requests_rejects_server_only on any observer: they ask for a "
                  "client certificate and refused a serverAuth-only one.",
      options=stat_opts(), field_config={"color": {"mode": "thresholds"}, "thresholds": {
          "mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}})

panel("stat", "Peers at risk (request, serverAuth-only untested)", 12, y, 4, 5,
      [target('count(max by (peer) (ekuwatch_peer_verdict{verdict="requests_untested"} == 1)) or vector(0)',
              "peers", instant=True)],
      description="Peers that send a CertificateRequest but have not yet been seen with a serverAuth-only "
                  "client certificate: how they will react when our certificate loses clientAuth is unknown.",
      options=stat_opts(), field_config={"color": {"mode": "thresholds"}, "thresholds": {
          "mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 1}]}})

panel("stat", "Failed handshakes after a serverAuth-only client certificate (range)", 16, y, 4, 5,
      [target(f"sum(increase(ekuwatch_handshake_outcomes_total{{{FAILED},client_eku_class=\"server_only\"}}[{RG}])) or vector(0)",
              "failures", instant=True)], unit="short",
      description="Handshakes that failed or were closed right after the handshake when the client "
                  "presented a serverAuth-only certificate, all directions, over the time range.",
      options=stat_opts(), field_config={"decimals": 0, "color": {"mode": "thresholds"}, "thresholds": {
          "mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}})

panel("stat", "Observers reporting", 20, y, 4, 5,
      [target("count(max by (instance) (ekuwatch_build_info == 1)) or vector(0)", "observers", instant=True)],
      description="Number of ekuwatch instances scraped (one per MTA / capture point).",
      options=stat_opts(), field_config={"color": {"mode": "thresholds"}, "thresholds": {
          "mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]}})
y += 5

panel("timeseries", "Outbound CertificateRequest rate per handshake", 0, y, 12, 8,
      [target(ratio(f"rate(ekuwatch_certificate_requests_total{{{OUT}}}[{RI}])",
                    f"rate(ekuwatch_certificate_request_checks_total{{{OUT}}}[{RI}])"), "all versions"),
       target(ratio(f"rate(ekuwatch_certificate_requests_total{{{OUT}}}[{RI}])",
                    f"rate(ekuwatch_certificate_request_checks_total{{{OUT}}}[{RI}])", by="version"),
              "TLS {{version}}")],
      unit="percentunit", options=ts_opts(), field_config=dict(ts_field(), min=0, max=1),
      description="CertificateRequests / non-resumed outbound handshakes where CR presence is known, "
                  "summed over all observers; per TLS version below.")

panel("timeseries", "Outbound CertificateRequest rate per message-carrying session", 12, y, 12, 8,
      [target(f"sum(rate(ekuwatch_established_sessions_total{{{OUT},certificate_request=\"true\"}}[{RI}])) / "
              f"sum(rate(ekuwatch_established_sessions_total{{{OUT},{est_known}}}[{RI}]))", "CR / session"),
       target(f"(sum(rate(ekuwatch_established_sessions_total{{{OUT},certificate_request=\"unknown\"}}[{RI}])) or vector(0)) / "
              f"sum(rate(ekuwatch_established_sessions_total{{{OUT}}}[{RI}]))", "CR presence unknown (share)")],
      unit="percentunit", options=ts_opts(), field_config=dict(ts_field(), min=0, max=1),
      description="Outbound TLS sessions that carried SMTP after the handshake and met a CertificateRequest, "
                  "over those where presence is known; the second series is the share where it is unknown.")
y += 8

row("CertificateRequests by peer and evidence", y); y += 1
top_peers = f"topk(15, sum by (peer) (increase(ekuwatch_certificate_request_checks_total{{{DIR}}}[{RG}])))"
panel("bargauge", "CertificateRequest rate by peer (top 15 peers by handshakes, $direction)", 0, y, 12, 10,
      [target(f"(sum by (peer) (increase(ekuwatch_certificate_requests_total{{{DIR}}}[{RG}])) / "
              f"sum by (peer) (increase(ekuwatch_certificate_request_checks_total{{{DIR}}}[{RG}]))) "
              f"and on (peer) {top_peers}", "{{peer}}", instant=True)],
      unit="percentunit", options=bargauge_opts(),
      field_config={"min": 0, "max": 1, "decimals": 0, "color": {"mode": "continuous-BlYlRd"}},
      description="Per peer (registered domain; low-volume peers are folded into 'other'), CertificateRequests "
                  "over checked handshakes in the time range, for the 15 peers with the most handshakes.")

panel("timeseries", "CertificateRequests by evidence ($direction)", 12, y, 12, 10,
      [target(f"sum by (evidence) (rate(ekuwatch_certificate_requests_total{{{DIR}}}[{RI}]))", "{{evidence}}")],
      unit="ops", options=ts_opts(), field_config=ts_field(stack=True),
      description="How each CertificateRequest is known: plaintext (TLS <= 1.2), decrypted (TLS 1.3 with keys), "
                  "inferred (TLS 1.3 record lengths), unknown.")
y += 10

panel("timeseries", "CertificateRequests by peer ($direction, top 10)", 0, y, 12, 8,
      [target(f"topk(10, sum by (peer) (rate(ekuwatch_certificate_requests_total{{{DIR}}}[{RI}])))", "{{peer}}")],
      unit="ops", options=ts_opts(), field_config=ts_field(),
      description="Rate of handshakes with a CertificateRequest, per peer.")

panel("bargauge", "CertificateRequest evidence mix (range, $direction)", 12, y, 12, 8,
      [target(f"sum by (evidence, version) (increase(ekuwatch_certificate_requests_total{{{DIR}}}[{RG}]))",
              "{{evidence}} / TLS {{version}}", instant=True)],
      unit="short", options=bargauge_opts(), field_config={"decimals": 0},
      description="CertificateRequests over the time range by evidence and TLS version.")
y += 8

row("Client certificates (EKU classes)", y); y += 1
panel("bargauge", "Client certificates presented by us (outbound), by EKU class", 0, y, 8, 9,
      [target(f"sum by (eku_class, trust) (increase(ekuwatch_client_certificates_total{{{OUT},status=\"presented\"}}[{RG}]))",
              "{{eku_class}} ({{trust}})", instant=True),
       target(f"sum by (status) (increase(ekuwatch_client_certificates_total{{{OUT},status!=\"presented\"}}[{RG}]))",
              "not presented: {{status}}", instant=True)],
      unit="short", options=bargauge_opts(), field_config={"decimals": 0},
      description="What our MTAs send when asked for a client certificate. server_only = will be refused by "
                  "OpenSSL/rustls verifiers that check the client EKU.")

panel("bargauge", "Client certificates presented by peers (inbound), by EKU class", 8, y, 8, 9,
      [target(f"sum by (eku_class, trust) (increase(ekuwatch_client_certificates_total{{direction=\"inbound\",status=\"presented\"}}[{RG}]))",
              "{{eku_class}} ({{trust}})", instant=True),
       target(f"sum by (status) (increase(ekuwatch_client_certificates_total{{direction=\"inbound\",status!=\"presented\"}}[{RG}]))",
              "not presented: {{status}}", instant=True)],
      unit="short", options=bargauge_opts(), field_config={"decimals": 0},
      description="What remote clients send to our MTAs when asked for a client certificate.")

panel("timeseries", "Presented client certificates by EKU class over time ($direction)", 16, y, 8, 9,
      [target(f"sum by (direction, eku_class) (rate(ekuwatch_client_certificates_total{{{DIR},status=\"presented\"}}[{RI}]))",
              "{{direction}} {{eku_class}}")],
      unit="ops", options=ts_opts(), field_config=ts_field(stack=True),
      description="Watch server_and_client turn into server_only as certificates are renewed from public CAs "
                  "that no longer issue clientAuth.")
y += 9

row("Outcomes: who rejects serverAuth-only client certificates", y); y += 1
panel("timeseries", "Handshake outcomes by client EKU class ($direction)", 0, y, 12, 9,
      [target(f"sum by (client_eku_class, result) (rate(ekuwatch_handshake_outcomes_total{{{DIR}}}[{RI}]))",
              "{{client_eku_class}} → {{result}}")],
      unit="ops", options=ts_opts(), field_config=ts_field(stack=True),
      description="How handshakes end, split by the EKU class of the client certificate (no_cert: none sent).")

panel("table", "Failed handshakes after a serverAuth-only client certificate, by peer (since observer start)", 12, y, 12, 9,
      # the counter itself, not increase(): a series born at 1 shows no increase within its range
      [target(f"sum by (direction, peer, result, alert) (ekuwatch_handshake_outcomes_total{{{FAILED},client_eku_class=\"server_only\"}}) > 0",
              "", instant=True, fmt="table")],
      options=table_opts("failures"),
      transformations=[{"id": "organize", "options": {
          "excludeByName": {"Time": True},
          "indexByName": {"peer": 0, "direction": 1, "result": 2, "alert": 3, "Value": 4},
          "renameByName": {"Value": "failures"}}}],
      field_config={"decimals": 0, "custom": {"align": "auto", "filterable": True}},
      description="Peers that failed the handshake or closed right after it when the client presented a "
                  "serverAuth-only certificate (outbound: the peer refused ours; inbound: we refused theirs). "
                  "alert 'unsupported_certificate' is the OpenSSL/rustls EKU check.")
y += 9

row("Mail: what happened to the messages after our client certificate", y); y += 1
# ekuwatch_smtp_messages_total counts messages (mail transactions) and, as result="refused_at_ehlo",
# sessions refused before any message. The queries end in `or vector(0)`: no series exist until
# the first SMTP message is seen (the metric is peer-labelled, so not pre-initialised); `on()`
# adds the 0 only when the query has no series at all.
MSG = "ekuwatch_smtp_messages_total"
NOT_EHLO = 'result!="refused_at_ehlo"'
REFUSED = 'result=~"rejected_.*|refused_at_ehlo"'
msg_cr = (f"sum(increase({MSG}{{{OUT},certificate_request=\"yes\",{NOT_EHLO}}}[{RG}])) / "
          f"sum(increase({MSG}{{{OUT},certificate_request=~\"yes|no|no_tls\",{NOT_EHLO}}}[{RG}]))")
panel("stat", "Outbound messages that met a CertificateRequest (range)", 0, y, 6, 8,
      [target(f"({msg_cr}) or on() vector(0)", "CR / message", instant=True)], unit="percentunit",
      description="Gmail's headline figure (\"38% of outbound messages meet a CertificateRequest\"): outbound "
                  "messages sent in a session with a CertificateRequest, over all outbound messages whose "
                  "session's CertificateRequest presence is known (plaintext SMTP and resumed sessions met none). "
                  "0 until a message is seen.",
      options=stat_opts(), field_config={"decimals": 1, "color": {"mode": "thresholds"},
                                         "thresholds": {"mode": "absolute", "steps": [{"color": "blue", "value": None}]}})

panel("timeseries", "Messages by result ($direction)", 6, y, 9, 8,
      [target(f"sum by (result) (rate({MSG}{{{DIR}}}[{RI}])) or on() vector(0)", "{{result}}")],
      unit="ops", options=ts_opts(), field_config=ts_field(stack=True),
      description="Messages per second by what became of them (delivered, rejected at MAIL/RCPT/DATA/after "
                  "the body, rejected before data when seen without keys, aborted, unknown); refused_at_ehlo "
                  "counts sessions closed right after the handshake, before any message.")

msg_cr_rate = (f"sum(rate({MSG}{{{OUT},certificate_request=\"yes\",{NOT_EHLO}}}[{RI}])) / "
               f"sum(rate({MSG}{{{OUT},certificate_request=~\"yes|no|no_tls\",{NOT_EHLO}}}[{RI}]))")
panel("timeseries", "Outbound CertificateRequest rate per message", 15, y, 9, 8,
      [target(f"({msg_cr_rate}) or on() vector(0)", "CR / message")],
      unit="percentunit", options=ts_opts(), field_config=dict(ts_field(), min=0, max=1),
      description="Outbound messages that met a CertificateRequest over those where presence is known "
                  "(0 while no message is seen).")
y += 8

panel("bargauge", "Rejections by SMTP stage and our client certificate's EKU class (range, $direction)", 0, y, 12, 9,
      [target(f"sum by (client_eku_class, result) (increase({MSG}{{{DIR},certificate_request=\"yes\",{REFUSED}}}[{RG}])) or on() vector(0)",
              "{{client_eku_class}} → {{result}}", instant=True)],
      unit="short", options=bargauge_opts(), field_config={"decimals": 0},
      description="Messages refused (rejected_mail / rejected_rcpt / rejected_data / rejected_after_data; "
                  "rejected_before_data without keys) and sessions refused at EHLO, under a CertificateRequest, "
                  "by the EKU class of the client certificate presented. Recipient refusals (x.1.y/x.2.y) are "
                  "included here; the verdicts keep them apart (docs/policy.md).")

panel("table", "Peers refusing mail after a serverAuth-only client certificate (since observer start)", 12, y, 12, 9,
      # the counter itself, not increase(): a series born at 1 shows no increase within its range
      [target(f"(sum by (peer, result) ({MSG}{{{OUT},certificate_request=\"yes\",client_eku_class=\"server_only\",{REFUSED}}}) > 0) or on() vector(0)",
              "", instant=True, fmt="table"),
       target(f"(sum by (peer) ({MSG}{{{OUT},certificate_request=\"yes\",client_eku_class=\"server_only\",result=\"delivered\"}}) > 0) or on() vector(0)",
              "", instant=True, fmt="table")],
      options=table_opts("peer"),
      transformations=[{"id": "merge", "options": {}},
                       {"id": "organize", "options": {
                           "excludeByName": {"Time": True},
                           "indexByName": {"peer": 0, "result": 1, "Value #A": 2, "Value #B": 3},
                           "renameByName": {"Value #A": "refused", "Value #B": "delivered after serverAuth-only"}}}],
      field_config={"decimals": 0, "custom": {"align": "auto", "filterable": True}},
      description="Outbound: who stops taking our mail when our certificate has serverAuth only — refusals by "
                  "SMTP stage beside the messages the same peer still delivered after such a certificate. "
                  "A single row of 0 without a peer means no such message has been seen yet.")
y += 9

row("Per-peer verdicts", y); y += 1
panel("table", "Per-peer verdict", 0, y, 12, 12,
      [target("max by (peer, verdict) (ekuwatch_peer_verdict == 1)", "", instant=True, fmt="table")],
      options=table_opts("peer"),
      transformations=[{"id": "organize", "options": {
          "excludeByName": {"Time": True, "Value": True},
          "indexByName": {"peer": 0, "verdict": 1},
          "renameByName": {}}}],
      field_config={"custom": {"align": "auto", "filterable": True}},
      overrides=[{"matcher": {"id": "byName", "options": "verdict"}, "properties": [
          {"id": "custom.cellOptions", "value": {"type": "color-text"}},
          {"id": "mappings", "value": [{"type": "value", "options": {
              "requests_rejects_server_only": {"color": "red", "index": 0},
              "requests_untested": {"color": "orange", "index": 1},
              "requests_accepts_server_only": {"color": "green", "index": 2},
              "requests_no_cert_ok": {"color": "green", "index": 3},
              "no_request": {"color": "text", "index": 4}}}]}]}],
      description="Current verdict per outbound peer (docs/policy.md). A peer seen by several observers with "
                  "different verdicts appears once per verdict.")

panel("bargauge", "Peers by verdict", 12, y, 12, 12,
      [target("count by (verdict) (max by (peer, verdict) (ekuwatch_peer_verdict == 1))", "{{verdict}}", instant=True)],
      unit="short", options=bargauge_opts(), field_config={"decimals": 0},
      description="Number of peers per verdict, merged over all observers.")
y += 12

row("Traffic", y); y += 1
panel("timeseries", "SMTP sessions by STARTTLS use ($direction)", 0, y, 12, 8,
      [target(f"sum by (direction, starttls) (rate(ekuwatch_smtp_sessions_total{{{DIR}}}[{RI}]))",
              "{{direction}} {{starttls}}")],
      unit="ops", options=ts_opts(), field_config=ts_field(stack=True))
panel("timeseries", "TLS handshakes by version and result ($direction)", 12, y, 12, 8,
      [target(f"sum by (version, resumed, result) (rate(ekuwatch_tls_handshakes_total{{{DIR}}}[{RI}]))",
              "TLS {{version}} resumed={{resumed}} {{result}}")],
      unit="ops", options=ts_opts(), field_config=ts_field(stack=True))
y += 8

row("Capture health (per observer)", y); y += 1
panel("timeseries", "Packets captured", 0, y, 8, 8,
      [target(f"sum by (instance, source) (rate(ekuwatch_capture_packets_total[{RI}]))", "{{instance}} {{source}}")],
      unit="pps", options=ts_opts(), field_config=ts_field())
panel("timeseries", "Dropped packets", 8, y, 8, 8,
      [target(f"sum by (instance, source, reason) (rate(ekuwatch_capture_dropped_packets_total[{RI}]))",
              "{{instance}} {{source}} {{reason}}")],
      unit="pps", options=ts_opts(), field_config=ts_field(),
      description="Any drop means missed handshakes: counts above are lower bounds.")
panel("timeseries", "Active flows", 16, y, 8, 8,
      [target("sum by (instance) (ekuwatch_flows_active)", "{{instance}}")],
      unit="short", options=ts_opts(), field_config=ts_field())
y += 8
panel("timeseries", "Weirds by kind", 0, y, 8, 8,
      [target(f"sum by (kind) (rate(ekuwatch_weirds_total[{RI}]))", "{{kind}}")],
      unit="ops", options=ts_opts(), field_config=ts_field())
panel("timeseries", "Parse errors by layer", 8, y, 8, 8,
      [target(f"sum by (layer) (rate(ekuwatch_parse_errors_total[{RI}]))", "{{layer}}")],
      unit="ops", options=ts_opts(), field_config=ts_field())
panel("table", "Observers (build info)", 16, y, 8, 8,
      [target("max by (instance, version) (ekuwatch_build_info)", "", instant=True, fmt="table")],
      options=table_opts("instance"),
      transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True},
                                                      "indexByName": {"instance": 0, "version": 1},
                                                      "renameByName": {}}}],
      field_config={"custom": {"align": "auto"}})
y += 8

dashboard = {
    "uid": "ekuwatch",
    "title": "ekuwatch: SMTP STARTTLS client certificates",
    "description": "CertificateRequests and client-certificate EKU classes seen on SMTP STARTTLS, per peer "
                   "(ekuwatch live). Panels sum over every scraped observer.",
    "tags": ["ekuwatch", "smtp", "tls"],
    "timezone": "",
    "editable": True,
    "graphTooltip": 1,
    "fiscalYearStartMonth": 0,
    "liveNow": False,
    "refresh": "1m",
    "schemaVersion": 39,
    "version": 1,
    "time": {"from": "now-24h", "to": "now"},
    "timepicker": {},
    "annotations": {"list": [{
        "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
        "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
        "type": "dashboard"}]},
    "links": [],
    "templating": {"list": [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "regex": "",
            "current": {"selected": False, "text": "Prometheus", "value": "DS_PROMETHEUS"},
            "hide": 0,
            "includeAll": False,
            "multi": False,
            "options": [],
            "refresh": 1,
            "skipUrlSync": False,
        },
        {
            "name": "job",
            "label": "Job",
            "type": "query",
            "datasource": DS,
            "definition": "label_values(ekuwatch_build_info, job)",
            "query": {"qryType": 1, "query": "label_values(ekuwatch_build_info, job)",
                      "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "hide": 0,
            "includeAll": True,
            "allValue": ".*",
            "multi": True,
            "options": [],
            "refresh": 2,
            "regex": "",
            "skipUrlSync": False,
            "sort": 1,
        },
        {
            "name": "instance",
            "label": "Observer",
            "type": "query",
            "datasource": DS,
            "definition": "label_values(ekuwatch_build_info{job=~\"$job\"}, instance)",
            "query": {"qryType": 1, "query": "label_values(ekuwatch_build_info{job=~\"$job\"}, instance)",
                      "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "hide": 0,
            "includeAll": True,
            "allValue": ".*",
            "multi": True,
            "options": [],
            "refresh": 2,
            "regex": "",
            "skipUrlSync": False,
            "sort": 1,
        },
        {
            "name": "direction",
            "label": "Direction",
            "type": "query",
            "datasource": DS,
            "definition": "label_values(ekuwatch_tls_handshakes_total, direction)",
            "query": {"qryType": 1, "query": "label_values(ekuwatch_tls_handshakes_total, direction)",
                      "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "current": {"selected": True, "text": ["outbound"], "value": ["outbound"]},
            "hide": 0,
            "includeAll": True,
            "allValue": ".*",
            "multi": True,
            "options": [],
            "refresh": 2,
            "regex": "",
            "skipUrlSync": False,
            "sort": 1,
        },
    ]},
    "panels": panels,
}


def flat_targets(d):
    out = []
    for p in d["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"]
            for a, b in SUBST:
                expr = expr.replace(a, b)
            out.append({"panel": p["title"], "expr": expr})
    return out


if __name__ == "__main__":
    with open(os.path.join(HERE, "ekuwatch.json"), "w") as f:
        json.dump(dashboard, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(HERE, "queries.json"), "w") as f:
        json.dump(flat_targets(dashboard), f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"{len(panels)} panels, {len(flat_targets(dashboard))} targets")
