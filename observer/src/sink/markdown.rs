//! The Markdown report.

use super::{at, counts, mail_by_class_line, pct, summary};
use crate::peers::PeerBook;
use crate::pipeline::CaptureStats;
use std::fmt::Write as _;

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
    let _ = writeln!(
        o,
        "{} messages ({} delivered, {} rejected); {} of {} messages where known met a CertificateRequest ({} per message). Rejection stages: {}.\n",
        at(&sum, "messages"), at(&sum, "messages_delivered"), at(&sum, "messages_rejected"),
        at(&sum, "messages_with_cr"), at(&sum, "messages_cr_known"),
        pct(at(&sum, "cr_rate_per_message").as_f64()),
        at(&sum, "rejection_stages").as_object().filter(|m| !m.is_empty()).map_or("none".to_string(), |m| {
            m.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ")
        })
    );
    let _ = writeln!(o, "## Verdicts\n");
    for (v, n) in at(&sum, "verdicts").as_object().into_iter().flatten() {
        let _ = writeln!(o, "- **{v}**: {n}");
    }
    let _ = writeln!(
        o,
        "\nThe rules and the evidence each verdict rests on: `docs/policy.md` (Verdicts)."
    );
    let _ = writeln!(o, "\n## Peers\n");
    let _ = writeln!(
        o,
        "| peer | direction | sessions | TLS | CR rate | messages | CR / message | rejection stages | verdict | evidence |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---|---|---|");
    for p in book.peers() {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md_escape(&p.peer),
            p.direction,
            p.sessions,
            p.tls_handshakes,
            pct(p.cr_rate()),
            p.messages,
            pct(p.cr_rate_per_message()),
            counts(&p.rejection_stages),
            p.verdict().unwrap_or("-"),
            md_escape(&p.verdict_evidence())
        );
    }
    let _ = writeln!(o, "\n## Details\n");
    for p in book.peers() {
        let _ = writeln!(o, "### {} ({})\n", md_escape(&p.peer), p.direction);
        if let Some(e) = p.explanation() {
            let _ = writeln!(o, "- **why**: {}", md_escape(&e));
        }
        let _ = writeln!(
            o,
            "- messages: {} (delivered {}, rejected {}, other {}); met a CertificateRequest: {} of {} ({}); rejection stages: {}",
            p.messages,
            p.messages_delivered,
            p.messages_rejected,
            p.messages_other,
            p.messages_with_cr,
            p.messages_cr_known,
            pct(p.cr_rate_per_message()),
            counts(&p.rejection_stages)
        );
        if !p.mail_by_class.is_empty() {
            let _ = writeln!(
                o,
                "- mail after our client certificate: {}",
                md_escape(&mail_by_class_line(p))
            );
        }
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
