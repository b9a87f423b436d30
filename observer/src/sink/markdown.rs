//! The Markdown report.

use super::{at, counts, pct, summary};
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
