//! Sinks: JSON Lines events and the per-peer reports (text table, JSON). Sinks are where output
//! happens; analyzers never print.

use crate::event::SessionEvent;
use crate::peers::{PeerBook, PeerStats};
use crate::pipeline::CaptureStats;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

/// Writes one JSON object per line.
pub struct JsonlSink<W: Write> {
    out: W,
    /// One line is serialised here first, then written with one call: serde_json writes token by
    /// token, and each token through a (boxed) writer costs more than the copy.
    line: Vec<u8>,
}

impl<W: Write> JsonlSink<W> {
    pub fn new(out: W) -> Self {
        JsonlSink {
            out,
            line: Vec::new(),
        }
    }

    pub fn write(&mut self, ev: &SessionEvent) -> std::io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, ev)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn counts<K: std::fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The default human report: one block per peer, busiest first, then capture health.
pub fn text_report(
    book: &PeerBook,
    stats: &CaptureStats,
    flows: &crate::flow::FlowStats,
) -> String {
    let mut o = String::new();
    let peers = book.peers();
    let _ = writeln!(
        o,
        "{:<32} {:<9} {:>6} {:>10} {:>14}  TLS VERSIONS",
        "PEER", "DIRECTION", "SESS", "TLS", "CERT REQUEST"
    );
    for p in &peers {
        let cr = match p.cr_rate() {
            Some(r) => format!("{}/{} {:.0}%", p.cr_present, p.cr_known, r * 100.0),
            None if p.tls_handshakes > 0 => "unknown".into(),
            None => "-".into(),
        };
        let _ = writeln!(
            o,
            "{:<32} {:<9} {:>6} {:>10} {:>14}  {}",
            cut(&p.peer, 32),
            p.direction,
            p.sessions,
            p.tls_handshakes,
            cr,
            counts(&p.tls_versions)
        );
        detail(&mut o, p);
    }
    let _ = writeln!(
        o,
        "\n{} peers, {} sessions; {} files, {} packets, {} flows, {} events",
        peers.len(),
        peers.iter().map(|p| p.sessions).sum::<u64>(),
        stats.files,
        stats.packets,
        flows.flows_created,
        flows.events
    );
    if !stats.skipped.is_empty() {
        let _ = writeln!(
            o,
            "skipped frames: {}",
            stats
                .skipped
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if !flows.weirds.is_empty() {
        let _ = writeln!(o, "weirds: {}", counts(&flows.weirds));
    }
    for e in &stats.file_errors {
        let _ = writeln!(o, "damaged input: {e}");
    }
    o
}

fn detail(o: &mut String, p: &PeerStats) {
    let hosts: Vec<&str> = p
        .hosts
        .iter()
        .map(String::as_str)
        .filter(|h| *h != p.peer)
        .collect();
    let ips: Vec<&str> = p.ips.iter().map(String::as_str).collect();
    let _ = writeln!(
        o,
        "    hosts: {}  ips: {}",
        if hosts.is_empty() {
            "-".into()
        } else {
            hosts.join(", ")
        },
        ips.join(", ")
    );
    let _ = writeln!(o, "    starttls: {}", counts(&p.starttls));
    if !p.ca_names.is_empty() {
        let _ = writeln!(
            o,
            "    CA names requested: {}",
            p.ca_names
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if !p.client_certs.is_empty() {
        let _ = writeln!(o, "    client certificates: {}", counts(&p.client_certs));
    }
    if !p.outcomes.is_empty() {
        let _ = writeln!(o, "    outcomes: {}", counts(&p.outcomes));
    }
    if !p.evidence.is_empty() {
        let _ = writeln!(o, "    CR evidence: {}", counts(&p.evidence));
    }
    if let Some(v) = p.verdict() {
        let _ = writeln!(o, "    verdict: {v} ({})", p.verdict_evidence());
    }
    if p.plaintext_fallbacks > 0 {
        let _ = writeln!(
            o,
            "    plaintext fallbacks after a TLS failure: {}",
            p.plaintext_fallbacks
        );
    }
}

/// Per-peer counts as reported (JSON `counts`, CSV columns).
fn peer_counts(p: &PeerStats) -> serde_json::Value {
    let rate = |a: u64, b: u64| {
        if b > 0 {
            Some(a as f64 / b as f64)
        } else {
            None
        }
    };
    serde_json::json!({
        "sessions": p.sessions,
        "tls_handshakes": p.tls_handshakes,
        "resumed": p.resumed,
        "cr_known": p.cr_known,
        "cr_present": p.cr_present,
        "cr_unknown": p.cr_unknown,
        "cr_rate_per_handshake": p.cr_rate(),
        "cr_rate_per_connection": rate(p.cr_present, p.sessions),
        "established": p.established,
        "established_with_cr": p.established_with_cr,
        "cr_rate_per_established_session": rate(p.established_with_cr, p.established),
        "starttls": p.starttls,
        "tls_versions": p.tls_versions,
        "cr_evidence": p.evidence,
        "client_certificates": p.client_certs,
        "client_certificate_trust": p.client_cert_trust,
        "answers": p.resolved_answers(),
        "rejection_reasons": p.rejection_reasons,
        "outcomes": p.outcomes,
        "plaintext_fallbacks": p.plaintext_fallbacks,
    })
}

/// Totals over all peers, for the report headers and charts.
fn summary(book: &PeerBook) -> serde_json::Value {
    let peers = book.peers();
    let mut verdicts: BTreeMap<String, u64> = BTreeMap::new();
    let mut classes: BTreeMap<String, u64> = BTreeMap::new();
    let (mut known, mut present, mut hs) = (0, 0, 0);
    let (mut with_tls, mut requesting) = (0u64, 0u64);
    for p in &peers {
        if let Some(v) = p.verdict() {
            *verdicts.entry(v.to_string()).or_default() += 1;
        }
        for (k, v) in &p.client_certs {
            *classes.entry(k.clone()).or_default() += v;
        }
        with_tls += u64::from(p.cr_known > 0);
        requesting += u64::from(p.cr_present > 0);
        known += p.cr_known;
        present += p.cr_present;
        hs += p.tls_handshakes;
    }
    serde_json::json!({
        "peers": peers.len(),
        "tls_handshakes": hs,
        "cr_known": known,
        "cr_present": present,
        "cr_rate_per_handshake": if known > 0 { Some(present as f64 / known as f64) } else { None },
        "verdicts": verdicts,
        "peers_with_tls": with_tls,
        "peers_requesting_client_certificates": requesting,
        "client_certificates": classes,
        "root_store": crate::x509::chain::ROOT_STORE,
    })
}

/// `v[key]`, `Null` when absent: what serde_json's `Index` gives (it never panics on a read), in a
/// form the no-panic indexing lint accepts.
fn at<'a>(v: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    static NULL: serde_json::Value = serde_json::Value::Null;
    v.get(key).unwrap_or(&NULL)
}

/// JSON report: `{"peers":[{"peer","direction","hosts","ips","verdict","evidence","counts"}],...}`.
pub fn json_report(
    book: &PeerBook,
    stats: &CaptureStats,
    flows: &crate::flow::FlowStats,
) -> serde_json::Value {
    serde_json::json!({
        "peers": book.peers().iter().map(|p| serde_json::json!({
            "peer": p.peer,
            "direction": p.direction,
            "hosts": p.hosts,
            "ips": p.ips,
            "verdict": p.verdict(),
            "evidence": p.verdict_evidence(),
            "ca_names": p.ca_names,
            "counts": peer_counts(p),
        })).collect::<Vec<_>>(),
        "summary": summary(book),
        "capture": {
            "files": stats.files,
            "packets": stats.packets,
            "bytes": stats.bytes,
            "skipped": stats.skipped,
            "parse_errors": stats.parse_errors,
            "file_errors": stats.file_errors,
            "flows": flows.flows_created,
            "flows_evicted": flows.flows_evicted,
            "events": flows.events,
            "weirds": flows.weirds,
        }
    })
}

fn pct(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{:.0}%", r * 100.0))
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Markdown report (reads well in a terminal pager too).
pub fn markdown_report(
    book: &PeerBook,
    stats: &CaptureStats,
    flows: &crate::flow::FlowStats,
) -> String {
    let sum = summary(book);
    let mut o = String::new();
    let _ = writeln!(o, "# ekuwatch report\n");
    let _ = writeln!(
        o,
        "{} peers, {} TLS handshakes, CertificateRequest in {} of {} handshakes where visible ({}). Root store: {}.\n",
        at(&sum, "peers"), at(&sum, "tls_handshakes"), at(&sum, "cr_present"), at(&sum, "cr_known"),
        pct(at(&sum, "cr_rate_per_handshake").as_f64()), crate::x509::chain::ROOT_STORE
    );
    let _ = writeln!(o, "## Verdicts\n");
    for (v, n) in at(&sum, "verdicts").as_object().into_iter().flatten() {
        let _ = writeln!(o, "- **{v}**: {n}");
    }
    let _ = writeln!(o, "\n## Peers\n");
    let _ = writeln!(
        o,
        "| peer | direction | sessions | TLS | CR rate | verdict | evidence |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---|---|");
    for p in book.peers() {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} |",
            md_escape(&p.peer),
            p.direction,
            p.sessions,
            p.tls_handshakes,
            pct(p.cr_rate()),
            p.verdict().unwrap_or("-"),
            md_escape(&p.verdict_evidence())
        );
    }
    let _ = writeln!(o, "\n## Details\n");
    for p in book.peers() {
        let _ = writeln!(o, "### {} ({})\n", md_escape(&p.peer), p.direction);
        let _ = writeln!(
            o,
            "- hosts: {}",
            p.hosts.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        let _ = writeln!(
            o,
            "- IPs: {}",
            p.ips.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        let _ = writeln!(o, "- STARTTLS: {}", counts(&p.starttls));
        let _ = writeln!(o, "- TLS versions: {}", counts(&p.tls_versions));
        let _ = writeln!(o, "- CR evidence: {}", counts(&p.evidence));
        if !p.ca_names.is_empty() {
            let _ = writeln!(
                o,
                "- CA names requested: {}",
                p.ca_names
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let _ = writeln!(
            o,
            "- client certificates: {} (trust: {})",
            counts(&p.client_certs),
            counts(&p.client_cert_trust)
        );
        let _ = writeln!(o, "- outcomes: {}\n", counts(&p.outcomes));
    }
    let _ = writeln!(
        o,
        "---\n{} files, {} packets, {} flows, {} events.",
        stats.files, stats.packets, flows.flows_created, flows.events
    );
    o
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV report: one row per peer.
pub fn csv_report(book: &PeerBook) -> String {
    let mut o = String::from(
        "peer,direction,sessions,tls_handshakes,resumed,cr_present,cr_known,cr_rate,established,verdict,evidence,hosts,ips\n",
    );
    for p in book.peers() {
        let row = [
            csv_field(&p.peer),
            p.direction.to_string(),
            p.sessions.to_string(),
            p.tls_handshakes.to_string(),
            p.resumed.to_string(),
            p.cr_present.to_string(),
            p.cr_known.to_string(),
            p.cr_rate().map_or(String::new(), |r| format!("{r:.4}")),
            p.established.to_string(),
            p.verdict().unwrap_or("").to_string(),
            csv_field(&p.verdict_evidence()),
            csv_field(&p.hosts.iter().cloned().collect::<Vec<_>>().join(" ")),
            csv_field(&p.ips.iter().cloned().collect::<Vec<_>>().join(" ")),
        ];
        o.push_str(&row.join(","));
        o.push('\n');
    }
    o
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Colours of the verdicts (the HTML test looks for them in the screenshot).
pub const VERDICT_COLOURS: [(&str, &str); 5] = [
    ("requests_rejects_server_only", "#d62728"),
    ("requests_untested", "#ff7f0e"),
    ("requests_accepts_server_only", "#2ca02c"),
    ("requests_no_cert_ok", "#1f77b4"),
    ("no_request", "#7f7f7f"),
];

/// Horizontal bar chart as inline SVG.
fn svg_bars(id: &str, title: &str, rows: &[(String, f64, String, String)], max: f64) -> String {
    let h = 30 + rows.len() * 26;
    let mut o = format!(
        "<figure><figcaption>{}</figcaption><svg id=\"{id}\" class=\"chart\" width=\"560\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        html_escape(title),
        html_escape(title)
    );
    for (i, (label, value, text, colour)) in rows.iter().enumerate() {
        let y = 10 + i * 26;
        let w = if max > 0.0 {
            (value / max * 300.0).max(2.0)
        } else {
            2.0
        };
        o.push_str(&format!(
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"200\" y=\"{}\" width=\"{w:.0}\" height=\"18\" fill=\"{colour}\"></rect><text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 14,
            html_escape(&cut(label, 30)),
            y,
            205.0 + w,
            y + 14,
            html_escape(text)
        ));
    }
    o.push_str("</svg></figure>");
    o
}

/// Self-contained HTML report: summary, charts (CR rate by peer, client-certificate EKU mix,
/// verdicts) as inline SVG, and the per-peer table sortable by a click on its headers. No network.
pub fn html_report(
    book: &PeerBook,
    stats: &CaptureStats,
    flows: &crate::flow::FlowStats,
) -> String {
    let sum = summary(book);
    let peers = book.peers();
    let cr_rows: Vec<(String, f64, String, String)> = peers
        .iter()
        .filter_map(|p| {
            p.cr_rate()
                .map(|r| (p.peer.clone(), r, pct(Some(r)), "#1f77b4".to_string()))
        })
        .take(20)
        .collect();
    let mix: Vec<(String, f64, String, String)> = at(&sum, "client_certificates")
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let n = v.as_f64().unwrap_or(0.0);
            let colour = if k.contains("server_only") {
                "#d62728"
            } else if k.contains("server_and_client") {
                "#ff7f0e"
            } else {
                "#9467bd"
            };
            (k.clone(), n, format!("{n}"), colour.to_string())
        })
        .collect();
    let mix_max = mix.iter().map(|r| r.1).fold(0.0, f64::max);
    let verdicts: Vec<(String, f64, String, String)> = VERDICT_COLOURS
        .iter()
        .map(|(v, c)| {
            let n = at(at(&sum, "verdicts"), v).as_f64().unwrap_or(0.0);
            (v.to_string(), n, format!("{n}"), c.to_string())
        })
        .collect();
    let v_max = verdicts.iter().map(|r| r.1).fold(0.0, f64::max);
    let mut rows = String::new();
    for p in &peers {
        let colour = VERDICT_COLOURS
            .iter()
            .find(|(v, _)| Some(*v) == p.verdict())
            .map_or("#ffffff", |(_, c)| c);
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td data-v=\"{}\">{}</td><td data-v=\"{}\">{}</td><td data-v=\"{}\">{}</td><td><span class=\"dot\" style=\"background:{colour}\"></span>{}</td><td>{}</td></tr>\n",
            html_escape(&p.peer),
            p.direction,
            p.sessions, p.sessions,
            p.tls_handshakes, p.tls_handshakes,
            p.cr_rate().unwrap_or(-1.0), pct(p.cr_rate()),
            p.verdict().unwrap_or("-"),
            html_escape(&p.verdict_evidence()),
        ));
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ekuwatch report</title>
<style>
body{{font-family:sans-serif;margin:20px;color:#222}} table{{border-collapse:collapse;margin-top:10px}}
th,td{{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left;vertical-align:top}}
th{{background:#eee;cursor:pointer}} figure{{display:inline-block;vertical-align:top;margin:0 20px 10px 0}}
figcaption{{font-weight:bold;margin-bottom:4px}} .dot{{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:5px}}
</style></head><body>
<h1>ekuwatch report</h1>
<p id="summary">{} peers, {} TLS handshakes; CertificateRequest in {} of {} handshakes where visible ({}). Root store: {}. {} files, {} packets, {} events.</p>
<div id="charts">{}{}{}</div>
<h2>Peers</h2>
<table id="peers"><thead><tr><th>peer</th><th>direction</th><th>sessions</th><th>TLS</th><th>CR rate</th><th>verdict</th><th>evidence</th></tr></thead>
<tbody>
{}</tbody></table>
<script>
document.querySelectorAll('#peers th').forEach(function(th, col) {{
  th.addEventListener('click', function() {{
    var body = document.querySelector('#peers tbody');
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
    rows.sort(function(a, b) {{
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      var r = (x !== undefined) ? (parseFloat(x) - parseFloat(y)) : a.cells[col].textContent.localeCompare(b.cells[col].textContent);
      return asc ? r : -r;
    }});
    rows.forEach(function(r) {{ body.appendChild(r); }});
  }});
}});
document.body.dataset.ready = '1';
</script>
</body></html>
"#,
        at(&sum, "peers"),
        at(&sum, "tls_handshakes"),
        at(&sum, "cr_present"),
        at(&sum, "cr_known"),
        pct(at(&sum, "cr_rate_per_handshake").as_f64()),
        html_escape(crate::x509::chain::ROOT_STORE),
        stats.files,
        stats.packets,
        flows.events,
        svg_bars("chart-cr", "CertificateRequest rate by peer", &cr_rows, 1.0),
        svg_bars(
            "chart-eku",
            "Client certificates (EKU class of the leaf)",
            &mix,
            mix_max
        ),
        svg_bars("chart-verdicts", "Peer verdicts", &verdicts, v_max),
        rows
    )
}
