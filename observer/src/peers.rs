//! Per-peer aggregation. A peer is the remote MTA as seen from the local side, named (best first)
//! by SNI → server certificate SAN → SMTP banner / EHLO name → IP, and aggregated by registered domain
//! (Public Suffix List, `psl` crate). For unknown direction the peer is the server side.
//!
//! Verdicts (outbound, and unknown direction where the client side is taken to be ours) answer
//! "who breaks when our certificate loses clientAuth" — rules in docs/policy.md:
//! `no_request`, `requests_rejects_server_only`, `requests_accepts_server_only`,
//! `requests_untested` (at risk), `requests_no_cert_ok`. Rejections after a certificate that is not
//! publicly trusted, or after no certificate, are kept apart as trust evidence, not EKU evidence.

use crate::event::{Direction, SessionEvent};
use crate::tls::{CertStatus, OutcomeResult, TlsFacts};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

const MAX_HOSTS: usize = 32;
const MAX_CA_NAMES: usize = 32;

#[derive(Debug, Default, Clone, Serialize)]
pub struct PeerStats {
    pub peer: String,
    pub direction: &'static str,
    pub hosts: BTreeSet<String>,
    pub ips: BTreeSet<String>,
    pub sessions: u64,
    /// By `smtp.starttls` value (plus `none` for TLS without SMTP).
    pub starttls: BTreeMap<String, u64>,
    pub tls_handshakes: u64,
    pub resumed: u64,
    pub tls_versions: BTreeMap<String, u64>,
    /// Non-resumed handshakes where CR presence is known, and how many had a CR.
    pub cr_known: u64,
    pub cr_present: u64,
    pub cr_unknown: u64,
    /// How the CR facts are known, per handshake (`plaintext`, `decrypted`, `inferred`, `unknown`).
    pub evidence: BTreeMap<String, u64>,
    pub plaintext_fallbacks: u64,
    pub ca_names: BTreeSet<String>,
    /// Client certificates by `status/eku_class` of the leaf (`presented/server_only`, `empty`, ...).
    pub client_certs: BTreeMap<String, u64>,
    /// Presented client chains by trust (`public`, `private`, `unknown`) — inbound: who sends what.
    pub client_cert_trust: BTreeMap<String, u64>,
    pub outcomes: BTreeMap<String, u64>,
    /// Established TLS sessions (they carried SMTP after the handshake).
    pub established: u64,
    /// Established sessions that saw a CertificateRequest.
    pub established_with_cr: u64,
    /// What we presented under a CR and how the peer answered: `<eku class>/<accepted|rejected_eku|
    /// rejected_trust|rejected_no_cert|rejected_ambiguous>` (eku class `server_only`,
    /// `server_and_client`, `client_only`, `none`, `any`, `other`, `unknown_eku`, or `no_cert`).
    pub answers: BTreeMap<String, u64>,
    /// Why sessions were counted as rejected: `alert:<name>`, `closed_after_handshake`,
    /// `smtp_<code>_after_tls`.
    pub rejection_reasons: BTreeMap<String, u64>,
    /// Issuers (trust anchor, or the top certificate's issuer) of chains this peer accepted.
    pub accepted_issuers: BTreeSet<String>,
    /// Rejections without a stated reason, by (class, issuer): resolved against `accepted_issuers`.
    #[serde(skip)]
    ambiguous: BTreeMap<(String, String), u64>,
}

impl PeerStats {
    /// `answers`, with unexplained rejections of a chain whose issuer this peer accepted in another
    /// session moved to `rejected_eku`: the peer trusts that CA, so what it refused was the EKU
    /// (Postfix `smtpd_tls_req_ccert` logs "not designated for use as a client certificate" and closes).
    pub fn resolved_answers(&self) -> BTreeMap<String, u64> {
        let mut a = self.answers.clone();
        for ((class, issuer), n) in &self.ambiguous {
            if self.accepted_issuers.contains(issuer) {
                let amb = a.entry(format!("{class}/rejected_ambiguous")).or_default();
                *amb -= n;
                if *amb == 0 {
                    a.remove(&format!("{class}/rejected_ambiguous"));
                }
                *a.entry(format!("{class}/rejected_eku")).or_default() += n;
            }
        }
        a
    }

    fn answered(&self, prefix: &str, suffix: &str) -> u64 {
        self.resolved_answers()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && k.ends_with(suffix))
            .map(|(_, v)| v)
            .sum()
    }

    /// The verdict for this peer (None for inbound peers and peers without TLS).
    pub fn verdict(&self) -> Option<&'static str> {
        if self.direction == "inbound" || self.tls_handshakes == self.resumed {
            return None;
        }
        if self.cr_present == 0 {
            return (self.cr_known > 0).then_some("no_request");
        }
        Some(if self.answered("server_only/", "rejected_eku") > 0 {
            "requests_rejects_server_only"
        } else if self.answered("server_only/", "accepted") > 0 {
            "requests_accepts_server_only"
        } else if self.answered("no_cert/", "accepted") > 0
            && self.answers.keys().all(|k| k.starts_with("no_cert/"))
        {
            "requests_no_cert_ok"
        } else {
            "requests_untested"
        })
    }

    /// One line naming the evidence behind the verdict.
    pub fn verdict_evidence(&self) -> String {
        let mut parts = Vec::new();
        if self.cr_present == 0 {
            parts.push(format!(
                "no CertificateRequest in {} handshakes",
                self.cr_known
            ));
        } else {
            parts.push(format!(
                "CertificateRequest in {}/{} handshakes",
                self.cr_present, self.cr_known
            ));
        }
        for (k, v) in &self.resolved_answers() {
            parts.push(format!("{k}:{v}"));
        }
        if !self.rejection_reasons.is_empty() {
            let r: Vec<String> = self
                .rejection_reasons
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            parts.push(format!("rejections: {}", r.join(" ")));
        }
        if self.plaintext_fallbacks > 0 {
            parts.push(format!("plaintext fallbacks:{}", self.plaintext_fallbacks));
        }
        parts.join("; ")
    }

    pub fn cr_rate(&self) -> Option<f64> {
        (self.cr_known > 0).then(|| self.cr_present as f64 / self.cr_known as f64)
    }
}

#[derive(Debug, Default)]
pub struct PeerBook {
    peers: BTreeMap<(Direction, String), PeerStats>,
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

/// The trust anchor of the client chain, or the issuer of its last certificate.
fn chain_issuer(t: &TlsFacts) -> Option<String> {
    let cc = &t.client_certificate;
    cc.chain_class
        .as_ref()
        .and_then(|c| c.trust_anchor.clone())
        .or_else(|| cc.chain.last().and_then(|c| c.issuer.clone()))
}

/// What the client presented under a CertificateRequest and how the server answered:
/// (class, answer, rejection reason).
fn answer(t: &TlsFacts) -> (String, &'static str, Option<String>) {
    let cc = &t.client_certificate;
    let class = match cc.status {
        CertStatus::Presented => cc
            .chain
            .first()
            .and_then(|c| c.eku_class)
            .map_or("unknown_eku".to_string(), |c| c.as_str().to_string()),
        CertStatus::Empty | CertStatus::Absent => "no_cert".to_string(),
        CertStatus::Unknown => "unknown_eku".to_string(),
    };
    let replies = t.smtp_reply_after_tls.as_ref();
    let bad_reply = replies.and_then(|r| {
        [r.first, r.ehlo, r.mail, r.rcpt]
            .into_iter()
            .flatten()
            .find(|c| *c >= 400)
    });
    let reason = match (t.outcome.result, &t.outcome.alert, bad_reply) {
        (OutcomeResult::HandshakeFailed | OutcomeResult::ClosedAfterHandshake, Some(a), _)
            if a.code.is_some() =>
        {
            Some((
                format!("alert:{}", a.description.clone().unwrap_or_default()),
                a.code,
            ))
        }
        (_, _, Some(code)) => Some((format!("smtp_{code}_after_tls"), None)),
        (OutcomeResult::HandshakeFailed, _, _) => Some(("handshake_failed".to_string(), None)),
        (OutcomeResult::ClosedAfterHandshake, _, _) => {
            Some(("closed_after_handshake".to_string(), None))
        }
        _ => None,
    };
    let Some((reason, code)) = reason else {
        let kind = if t.outcome.result == OutcomeResult::Established {
            "accepted"
        } else {
            "unfinished"
        };
        return (class, kind, None);
    };
    let public = cc.chain_class.as_ref().is_some_and(|c| c.trust == "public");
    let kind = match code {
        Some(43) => "rejected_eku",
        Some(42 | 44 | 45 | 46 | 48 | 49) => "rejected_trust",
        Some(40 | 116) if class == "no_cert" => "rejected_no_cert",
        _ if class == "no_cert" => "rejected_no_cert",
        // No alert to say why: a publicly trusted chain rejected right after the handshake points at
        // its EKU; a private or unknown chain may just be untrusted.
        _ if public => "rejected_eku",
        _ => "rejected_ambiguous",
    };
    (class, kind, Some(reason))
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
    pub fn add(&mut self, ev: &SessionEvent) {
        let host = peer_name(ev);
        let domain = registered_domain(&host);
        // The peer's name is copied only when the peer is new.
        let p =
            self.peers
                .entry((ev.direction, domain))
                .or_insert_with_key(|(direction, domain)| PeerStats {
                    peer: domain.clone(),
                    direction: direction.as_str(),
                    ..Default::default()
                });
        add_capped(&mut p.hosts, &host);
        let ip = if ev.direction == Direction::Inbound {
            ev.client.ip
        } else {
            ev.server.ip
        };
        add_capped(
            &mut p.ips,
            StackStr::<48>::format(format_args!("{ip}")).as_str(),
        );
        p.sessions += 1;
        bump(
            &mut p.starttls,
            ev.smtp.as_ref().map_or("none", |s| s.starttls.as_str()),
        );
        if ev.smtp.as_ref().is_some_and(|s| s.plaintext_fallback) {
            p.plaintext_fallbacks += 1;
        }
        let Some(t) = &ev.tls else { return };
        p.tls_handshakes += 1;
        bump(
            &mut p.tls_versions,
            t.version.as_deref().unwrap_or("unknown"),
        );
        bump(&mut p.outcomes, t.outcome.result.as_str());
        bump(&mut p.evidence, t.certificate_request.evidence.as_str());
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
        for n in &t.certificate_request.ca_names {
            if p.ca_names.len() < MAX_CA_NAMES && !p.ca_names.contains(n) {
                p.ca_names.insert(n.clone());
            }
        }
        if t.outcome.result == OutcomeResult::Established {
            p.established += 1;
            if t.certificate_request.present == Some(true) {
                p.established_with_cr += 1;
            }
        }
        if t.certificate_request.present == Some(true) && t.resumed != Some(true) {
            let (class, kind, reason) = answer(t);
            *p.answers.entry(format!("{class}/{kind}")).or_default() += 1;
            if let Some(r) = reason {
                *p.rejection_reasons.entry(r).or_default() += 1;
            }
            let issuer = chain_issuer(t);
            if let Some(i) = issuer {
                if kind == "accepted" && p.accepted_issuers.len() < MAX_HOSTS {
                    p.accepted_issuers.insert(i);
                } else if kind == "rejected_ambiguous" {
                    *p.ambiguous.entry((class, i)).or_default() += 1;
                }
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

    /// Peers, busiest first.
    pub fn peers(&self) -> Vec<&PeerStats> {
        let mut v: Vec<&PeerStats> = self.peers.values().collect();
        v.sort_by(|a, b| {
            b.sessions
                .cmp(&a.sessions)
                .then(a.peer.cmp(&b.peer))
                .then(a.direction.cmp(b.direction))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_domains() {
        assert_eq!(registered_domain("mx1.mail.example.co.uk"), "example.co.uk");
        assert_eq!(
            registered_domain("gmail-smtp-in.l.google.com."),
            "google.com"
        );
        assert_eq!(registered_domain("192.0.2.1"), "192.0.2.1");
        assert_eq!(registered_domain("MX.Lab.Test"), "lab.test");
    }
}
