//! The CSV report: one row per peer.

use super::{counts, mail_by_class_line};
use crate::peers::PeerBook;

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
        "peer,direction,sessions,tls_handshakes,resumed,cr_present,cr_known,cr_rate,established,verdict,evidence,hosts,ips,messages,messages_delivered,messages_rejected,messages_other,messages_with_cr,messages_cr_known,cr_rate_per_message,rejection_stages,recipient_refusals,mail_by_class,explanation\n",
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
            p.messages.to_string(),
            p.messages_delivered.to_string(),
            p.messages_rejected.to_string(),
            p.messages_other.to_string(),
            p.messages_with_cr.to_string(),
            p.messages_cr_known.to_string(),
            p.cr_rate_per_message()
                .map_or(String::new(), |r| format!("{r:.4}")),
            csv_field(&counts(&p.rejection_stages)),
            p.recipient_refusals.to_string(),
            csv_field(&mail_by_class_line(p)),
            csv_field(&p.explanation().unwrap_or_default()),
        ];
        o.push_str(&row.join(","));
        o.push('\n');
    }
    o
}
