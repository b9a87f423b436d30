//! Sinks: JSON Lines events and the per-peer reports, one file per format (`text`, `markdown`,
//! `html`, `json`, `csv`); the totals and helpers they share are here. Sinks are where output
//! happens; analyzers never print.

mod csv;
mod html;
mod json;
mod markdown;
mod text;

pub use csv::csv_report;
pub use html::{html_report, VERDICT_COLOURS};
pub use json::{json_report, write_json_report};
pub use markdown::markdown_report;
pub use text::text_report;

use crate::event::SessionEvent;
use crate::peers::{PeerBook, PeerStats};
use std::collections::BTreeMap;
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

pub(crate) fn counts<K: std::fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Per-peer counts as reported (JSON `counts`, CSV columns).
pub(crate) fn peer_counts(p: &PeerStats) -> serde_json::Value {
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
        "messages": p.messages,
        "messages_delivered": p.messages_delivered,
        "messages_rejected": p.messages_rejected,
        "messages_other": p.messages_other,
        "messages_cr_known": p.messages_cr_known,
        "messages_with_cr": p.messages_with_cr,
        "cr_rate_per_message": p.cr_rate_per_message(),
        "message_results": p.message_results,
        "rejection_stages": p.rejection_stages,
        "recipient_refusals": p.recipient_refusals,
        "mail_by_class": p.mail_by_class,
        "refusals_outweighed_by_delivered_mail": p.outweighed_refusals(),
    })
}

/// `class: delivered d/m, refused r at stage:n …` for each class we presented under a
/// CertificateRequest (text and Markdown details, CSV).
pub(crate) fn mail_by_class_line(p: &PeerStats) -> String {
    if p.mail_by_class.is_empty() {
        return "-".into();
    }
    p.mail_by_class
        .iter()
        .map(|(class, m)| {
            let mut s = format!("{class}: delivered {}/{}", m.delivered, m.messages);
            if m.rejected > 0 {
                s.push_str(&format!(", rejected {}", m.rejected));
            }
            if m.refused_sessions() > 0 {
                s.push_str(&format!(
                    ", sessions refused {} (ehlo {}, handshake {})",
                    m.refused_sessions(),
                    m.refused_at_ehlo,
                    m.refused_in_handshake
                ));
            }
            if !m.stages.is_empty() {
                s.push_str(&format!(" [stages {}]", counts(&m.stages)));
            }
            if !m.subjects.is_empty() {
                s.push_str(&format!(" [{}]", counts(&m.subjects)));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Totals over all peers, for the report headers and charts.
pub(crate) fn summary(book: &PeerBook) -> serde_json::Value {
    let peers = book.peers();
    let mut verdicts: BTreeMap<String, u64> = BTreeMap::new();
    let mut classes: BTreeMap<String, u64> = BTreeMap::new();
    let (mut known, mut present, mut hs) = (0, 0, 0);
    let (mut with_tls, mut requesting) = (0u64, 0u64);
    let (mut messages, mut delivered, mut rejected) = (0u64, 0u64, 0u64);
    let (mut msg_known, mut msg_cr) = (0u64, 0u64);
    let mut stages: BTreeMap<String, u64> = BTreeMap::new();
    let mut results: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_class: BTreeMap<String, BTreeMap<&str, u64>> = BTreeMap::new();
    for p in &peers {
        messages += p.messages;
        delivered += p.messages_delivered;
        rejected += p.messages_rejected;
        msg_known += p.messages_cr_known;
        msg_cr += p.messages_with_cr;
        for (k, v) in &p.rejection_stages {
            *stages.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &p.message_results {
            *results.entry(k.clone()).or_default() += v;
        }
        for (class, m) in &p.mail_by_class {
            let c = by_class.entry(class.clone()).or_default();
            for (k, v) in [
                ("messages", m.messages),
                ("delivered", m.delivered),
                ("rejected", m.rejected),
                ("recipient_refusals", m.recipient_refusals),
                ("refused_at_ehlo", m.refused_at_ehlo),
                ("refused_in_handshake", m.refused_in_handshake),
            ] {
                *c.entry(k).or_default() += v;
            }
        }
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
        "messages": messages,
        "messages_delivered": delivered,
        "messages_rejected": rejected,
        "messages_cr_known": msg_known,
        "messages_with_cr": msg_cr,
        "cr_rate_per_message": if msg_known > 0 { Some(msg_cr as f64 / msg_known as f64) } else { None },
        "message_results": results,
        "rejection_stages": stages,
        "mail_by_class": by_class,
    })
}

/// `v[key]`, `Null` when absent: what serde_json's `Index` gives (it never panics on a read), in a
/// form the no-panic indexing lint accepts.
pub(crate) fn at<'a>(v: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    static NULL: serde_json::Value = serde_json::Value::Null;
    v.get(key).unwrap_or(&NULL)
}

pub(crate) fn pct(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{:.0}%", r * 100.0))
}
