//! The default human report: one block per peer, busiest first, then capture health.

use super::{counts, cut, mail_by_class_line, pct};
use crate::peers::{PeerBook, PeerStats};
use crate::pipeline::CaptureStats;
use std::fmt::Write as _;

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
        "{:<32} {:<9} {:>6} {:>10} {:>14} {:>6} {:>7}  TLS VERSIONS",
        "PEER", "DIRECTION", "SESS", "TLS", "CERT REQUEST", "MSGS", "CR/MSG"
    );
    for p in &peers {
        let cr = match p.cr_rate() {
            Some(r) => format!("{}/{} {:.0}%", p.cr_present, p.cr_known, r * 100.0),
            None if p.tls_handshakes > 0 => "unknown".into(),
            None => "-".into(),
        };
        let _ = writeln!(
            o,
            "{:<32} {:<9} {:>6} {:>10} {:>14} {:>6} {:>7}  {}",
            cut(&p.peer, 32),
            p.direction,
            p.sessions,
            p.tls_handshakes,
            cr,
            p.messages,
            pct(p.cr_rate_per_message()),
            counts(&p.tls_versions)
        );
        detail(&mut o, p);
    }
    let messages: u64 = peers.iter().map(|p| p.messages).sum();
    let known: u64 = peers.iter().map(|p| p.messages_cr_known).sum();
    let with_cr: u64 = peers.iter().map(|p| p.messages_with_cr).sum();
    let _ = writeln!(
        o,
        "\n{} peers, {} sessions, {} messages ({} of {} where known met a CertificateRequest: {}); {} files, {} packets, {} flows, {} events",
        peers.len(),
        peers.iter().map(|p| p.sessions).sum::<u64>(),
        messages,
        with_cr,
        known,
        pct((known > 0).then(|| with_cr as f64 / known as f64)),
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
    if peers.iter().any(|p| p.verdict().is_some()) {
        let _ = writeln!(
            o,
            "verdict rules and the evidence each rests on: docs/policy.md (\"Verdicts\")"
        );
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
    if p.messages > 0 || p.rejection_stages.contains_key("ehlo") {
        let _ = writeln!(
            o,
            "    messages: {} (delivered {}, rejected {}, other {}); met a CertificateRequest: {}/{} {}",
            p.messages,
            p.messages_delivered,
            p.messages_rejected,
            p.messages_other,
            p.messages_with_cr,
            p.messages_cr_known,
            pct(p.cr_rate_per_message())
        );
    }
    if !p.rejection_stages.is_empty() {
        let _ = writeln!(
            o,
            "    rejection stages: {}{}",
            counts(&p.rejection_stages),
            if p.recipient_refusals > 0 {
                format!(" (recipient/mailbox refusals: {})", p.recipient_refusals)
            } else {
                String::new()
            }
        );
    }
    if !p.mail_by_class.is_empty() {
        let _ = writeln!(
            o,
            "    mail after our client certificate: {}",
            mail_by_class_line(p)
        );
    }
    if let Some(v) = p.verdict() {
        let _ = writeln!(o, "    verdict: {v} ({})", p.verdict_evidence());
    }
    if let Some(e) = p.explanation() {
        let _ = writeln!(o, "    why: {e}");
    }
    if p.plaintext_fallbacks > 0 {
        let _ = writeln!(
            o,
            "    plaintext fallbacks after a TLS failure: {}",
            p.plaintext_fallbacks
        );
    }
}
