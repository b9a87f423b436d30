//! The self-contained HTML report.

use super::{at, counts, cut, mail_by_class_line, pct, summary};
use crate::peers::PeerBook;
use crate::pipeline::CaptureStats;

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
/// verdicts, messages by result) as inline SVG, and the per-peer table sortable by a click on its headers. No network.
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
    // What became of the messages: results, and sessions refused at EHLO (no message sent).
    let mut fates: Vec<(String, f64, String, String)> = at(&sum, "message_results")
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let n = v.as_f64().unwrap_or(0.0);
            let colour = match k.as_str() {
                "delivered" => "#2ca02c",
                k if k.starts_with("rejected") => "#d62728",
                _ => "#7f7f7f",
            };
            (
                format!("message {k}"),
                n,
                format!("{n}"),
                colour.to_string(),
            )
        })
        .collect();
    if let Some(n) = at(at(&sum, "rejection_stages"), "ehlo").as_f64() {
        fates.push((
            "session refused at EHLO".to_string(),
            n,
            format!("{n}"),
            "#d62728".to_string(),
        ));
    }
    let f_max = fates.iter().map(|r| r.1).fold(0.0, f64::max);
    let mut rows = String::new();
    for p in &peers {
        let colour = VERDICT_COLOURS
            .iter()
            .find(|(v, _)| Some(*v) == p.verdict())
            .map_or("#ffffff", |(_, c)| c);
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td data-v=\"{}\">{}</td><td data-v=\"{}\">{}</td><td data-v=\"{}\">{}</td><td data-v=\"{}\">{}</td><td data-v=\"{}\">{}</td><td>{}</td><td><span class=\"dot\" style=\"background:{colour}\"></span>{}</td><td>{}<br><small>{}</small></td><td>{}</td></tr>\n",
            html_escape(&p.peer),
            p.direction,
            p.sessions, p.sessions,
            p.tls_handshakes, p.tls_handshakes,
            p.cr_rate().unwrap_or(-1.0), pct(p.cr_rate()),
            p.messages, p.messages,
            p.cr_rate_per_message().unwrap_or(-1.0), pct(p.cr_rate_per_message()),
            html_escape(&counts(&p.rejection_stages)),
            p.verdict().unwrap_or("-"),
            html_escape(&p.explanation().unwrap_or_default()),
            html_escape(&mail_by_class_line(p)),
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
<p id="messages">{} messages ({} delivered, {} rejected); {} of {} messages where known met a CertificateRequest ({} per message). Rejection stages: {}. Verdict rules: docs/policy.md.</p>
<div id="charts">{}{}{}{}</div>
<h2>Peers</h2>
<table id="peers"><thead><tr><th>peer</th><th>direction</th><th>sessions</th><th>TLS</th><th>CR rate</th><th>messages</th><th>CR / message</th><th>rejection stages</th><th>verdict</th><th>why (mail after our certificate)</th><th>evidence</th></tr></thead>
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
        at(&sum, "messages"),
        at(&sum, "messages_delivered"),
        at(&sum, "messages_rejected"),
        at(&sum, "messages_with_cr"),
        at(&sum, "messages_cr_known"),
        pct(at(&sum, "cr_rate_per_message").as_f64()),
        html_escape(
            &at(&sum, "rejection_stages")
                .as_object()
                .filter(|m| !m.is_empty())
                .map_or("none".to_string(), |m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
        ),
        svg_bars("chart-cr", "CertificateRequest rate by peer", &cr_rows, 1.0),
        svg_bars(
            "chart-eku",
            "Client certificates (EKU class of the leaf)",
            &mix,
            mix_max
        ),
        svg_bars("chart-verdicts", "Peer verdicts", &verdicts, v_max),
        svg_bars("chart-mail", "What became of the mail", &fates, f_max),
        rows
    )
}
