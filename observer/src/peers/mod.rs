//! Per-peer aggregation. A peer is the remote MTA as seen from the local side, named (best first)
//! by SNI → server certificate SAN → SMTP banner / EHLO name → IP, and aggregated by registered domain
//! (Public Suffix List, `psl` crate). For unknown direction the peer is the server side.
//!
//! Verdicts (outbound, and unknown direction where the client side is taken to be ours) answer
//! "who breaks when our certificate loses clientAuth" — rules in docs/policy.md:
//! `no_request`, `requests_rejects_server_only`, `requests_accepts_server_only`,
//! `requests_untested` (at risk), `requests_no_cert_ok`. They rest on what happened to the mail
//! (the event's `mail` object): a peer accepts a certificate class when a message was delivered
//! after it; a refusal at MAIL/RCPT/DATA or after the body, or a session refused at EHLO or in the
//! handshake, is a rejection. A refused recipient (x.1.y / x.2.y) is not a refused certificate; a
//! refusal seen without keys (`rejected_before_data`) counts only when no message after the same
//! class went through. Rejections after a certificate that is not publicly trusted, or after no
//! certificate, are kept apart as trust evidence, not EKU evidence.
//!
//! Where things are: `stats.rs` what is counted per peer ([`PeerStats`], [`ClassMail`]) and how one
//! session adds to it; `rules.rs` the verdict rules (docs/policy.md "Verdicts"): how a refusal is
//! classified and how the counts become a verdict and its evidence; `explain.rs` the verdict in one
//! sentence; `from_events.rs` session events read back from JSON Lines (`ekuwatch report`), so the
//! offline merge aggregates through the same [`PeerBook::add`] as `analyze` and `live`.

mod explain;
pub mod from_events;
mod rules;
pub mod session;
mod stats;
#[cfg(test)]
mod tests;

pub use explain::class_words;
pub use session::{session_peer, SessionPeer};
pub use stats::{messages, ClassMail, Message, PeerStats};

use crate::event::{Direction, SessionEvent};
use crate::tls::{CertStatus, OutcomeResult, TlsFacts};
use std::collections::{BTreeMap, BTreeSet};

const MAX_HOSTS: usize = 32;
const MAX_CA_NAMES: usize = 32;
/// Observers named per peer (`observers`); beyond it they are not listed.
const MAX_OBSERVERS: usize = 64;
/// (class, kind, issuer) entries kept for refusals seen without keys; beyond it they are counted
/// without their issuer.
const MAX_TENTATIVE: usize = 64;

/// The `certificate_request` of a session's messages: `yes`, `no` (none, or a resumed handshake,
/// where none can come), `unknown` (TLS 1.3 not inferable), `no_tls` (plaintext SMTP).
pub fn cr_label(ev: &SessionEvent) -> &'static str {
    match &ev.tls {
        None => "no_tls",
        Some(t) if t.resumed == Some(true) => "no",
        Some(t) => match t.certificate_request.present {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        },
    }
}

/// The client leaf's EKU class as the metrics name it (`no_cert` when none was sent, or no TLS).
pub fn client_eku_label(t: Option<&TlsFacts>) -> &'static str {
    let Some(t) = t else { return "no_cert" };
    let cc = &t.client_certificate;
    match cc.status {
        CertStatus::Presented => cc
            .chain
            .first()
            .and_then(|c| c.eku_class)
            .map_or("unknown", |c| c.as_str()),
        CertStatus::Empty | CertStatus::Absent => "no_cert",
        CertStatus::Unknown => "unknown",
    }
}

#[derive(Debug, Default)]
pub struct PeerBook {
    /// By direction, then registered domain (looked up by `&str`: no copy of the name per event).
    peers: BTreeMap<Direction, BTreeMap<String, PeerStats>>,
}

/// Registered domain of a host name (`mx1.mail.example.co.uk` → `example.co.uk`); IPs stay IPs.
pub fn registered_domain(name: &str) -> String {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    if n.parse::<std::net::IpAddr>().is_ok() {
        return n;
    }
    match psl::domain_str(&n) {
        Some(d) => d.to_string(),
        None => n,
    }
}

fn plausible_host(s: &str) -> bool {
    s.contains('.')
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// The name of the peer of this session, best evidence first.
pub fn peer_name(ev: &SessionEvent) -> String {
    let tls = ev.tls.as_ref();
    let smtp = ev.smtp.as_ref();
    let candidates: Vec<Option<String>> = if ev.direction == Direction::Inbound {
        vec![
            tls.and_then(|t| t.client_certificate.chain.first())
                .and_then(|c| c.san_dns.first().cloned()),
            smtp.and_then(|s| s.helo.clone()),
        ]
    } else {
        vec![
            tls.and_then(|t| t.sni.clone()),
            tls.and_then(|t| t.server_certificate.chain.first())
                .and_then(|c| c.san_dns.first().cloned()),
            smtp.and_then(|s| {
                s.banner
                    .as_deref()
                    .and_then(|b| b.split_whitespace().next())
                    .map(str::to_string)
            }),
        ]
    };
    for c in candidates.into_iter().flatten() {
        let c = c.trim_start_matches("*.").to_string();
        if plausible_host(&c) {
            return c.to_ascii_lowercase();
        }
    }
    let ip = if ev.direction == Direction::Inbound {
        ev.client.ip
    } else {
        ev.server.ip
    };
    ip.to_string()
}

/// Counts one more `key` (allocating the key only the first time).
fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

/// Adds `v` to a set kept below [`MAX_HOSTS`] (allocating only for a new value).
fn add_capped(set: &mut BTreeSet<String>, v: &str) {
    if set.len() < MAX_HOSTS && !set.contains(v) {
        set.insert(v.to_string());
    }
}

/// Short text formatted on the stack (an address to look up without allocating).
struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackStr<N> {
    /// The formatted text, cut at `N` bytes (on a character boundary).
    fn format(args: std::fmt::Arguments<'_>) -> Self {
        let mut s = StackStr {
            buf: [0; N],
            len: 0,
        };
        let _ = std::fmt::Write::write_fmt(&mut s, args);
        s
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> std::fmt::Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl PeerBook {
    /// Adds one session to its peer (named by the event's `peer`, [`session::session_peer`]).
    pub fn add(&mut self, ev: &SessionEvent) {
        let peers = self.peers.entry(ev.direction).or_default();
        let p = match peers.get_mut(ev.peer.domain.as_str()) {
            Some(p) => p,
            None => peers
                .entry(ev.peer.domain.clone())
                .or_insert_with(|| PeerStats {
                    peer: ev.peer.domain.clone(),
                    direction: ev.direction.as_str(),
                    ..Default::default()
                }),
        };
        p.add_session(ev, &ev.peer.host);
    }
}

impl PeerStats {
    /// Adds one session of this peer (`host`: the peer's name in this session).
    fn add_session(&mut self, ev: &SessionEvent, host: &str) {
        self.add_counts(ev);
        self.add_labels(ev, host);
    }

    /// What the verdict and the rates count ([`session::session_peer`] needs only this).
    fn add_counts(&mut self, ev: &SessionEvent) {
        let p = self;
        p.sessions += 1;
        if let Some(m) = &ev.mail {
            p.count_mail(m, cr_label(ev));
        }
        let Some(t) = &ev.tls else { return };
        p.tls_handshakes += 1;
        if t.resumed == Some(true) {
            p.resumed += 1;
        } else {
            match t.certificate_request.present {
                Some(true) => {
                    p.cr_known += 1;
                    p.cr_present += 1;
                }
                Some(false) => p.cr_known += 1,
                None => p.cr_unknown += 1,
            }
        }
        if t.outcome.result == OutcomeResult::Established {
            p.established += 1;
            if t.certificate_request.present == Some(true) {
                p.established_with_cr += 1;
            }
        }
        if t.certificate_request.present == Some(true) && t.resumed != Some(true) {
            p.count_answers(t, ev.mail.as_ref());
        }
    }

    /// Names and breakdowns for the reports (hosts, addresses, versions, outcomes, ...).
    fn add_labels(&mut self, ev: &SessionEvent, host: &str) {
        let p = self;
        add_capped(&mut p.hosts, host);
        let observer = ev.observer.as_str();
        if p.observers.len() < MAX_OBSERVERS && !p.observers.contains(observer) {
            p.observers.insert(observer.to_string());
        }
        let ip = if ev.direction == Direction::Inbound {
            ev.client.ip
        } else {
            ev.server.ip
        };
        add_capped(
            &mut p.ips,
            StackStr::<48>::format(format_args!("{ip}")).as_str(),
        );
        bump(
            &mut p.starttls,
            ev.smtp.as_ref().map_or("none", |s| s.starttls.as_str()),
        );
        if ev.smtp.as_ref().is_some_and(|s| s.plaintext_fallback) {
            p.plaintext_fallbacks += 1;
        }
        let Some(t) = &ev.tls else { return };
        bump(
            &mut p.tls_versions,
            t.version.as_deref().unwrap_or("unknown"),
        );
        bump(&mut p.outcomes, t.outcome.result.as_str());
        bump(&mut p.evidence, t.certificate_request.evidence.as_str());
        for n in &t.certificate_request.ca_names {
            if p.ca_names.len() < MAX_CA_NAMES && !p.ca_names.contains(n) {
                p.ca_names.insert(n.clone());
            }
        }
        let cc = &t.client_certificate;
        if let Some(c) = &cc.chain_class {
            bump(&mut p.client_cert_trust, c.trust);
        }
        let key = match (cc.status, cc.chain.first().and_then(|c| c.eku_class)) {
            (CertStatus::Presented, Some(class)) => format!("presented/{}", class.as_str()),
            // TLS 1.3 without keys: a chain was inferred from record lengths, its EKU is not visible.
            (CertStatus::Presented, None) => "presented/unknown_eku".to_string(),
            (s, _) => s.as_str().to_string(),
        };
        if cc.status != CertStatus::Absent || t.certificate_request.present == Some(true) {
            *p.client_certs.entry(key).or_default() += 1;
        }
    }
}

impl PeerBook {
    /// Peers, busiest first.
    pub fn peers(&self) -> Vec<&PeerStats> {
        let mut v: Vec<&PeerStats> = self.peers.values().flat_map(|m| m.values()).collect();
        v.sort_by(|a, b| {
            b.sessions
                .cmp(&a.sessions)
                .then(a.peer.cmp(&b.peer))
                .then(a.direction.cmp(b.direction))
        });
        v
    }
}
