//! Per-peer aggregation. A peer is the remote MTA as seen from the local side, named (best first)
//! by SNI → server certificate SAN → SMTP banner / EHLO name → IP, and aggregated by registered domain
//! (Public Suffix List, `psl` crate). For unknown direction the peer is the server side.

use crate::event::{Direction, SessionEvent};
use crate::tls::CertStatus;
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
    pub outcomes: BTreeMap<String, u64>,
}

impl PeerStats {
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

impl PeerBook {
    pub fn add(&mut self, ev: &SessionEvent) {
        let host = peer_name(ev);
        let domain = registered_domain(&host);
        let p = self
            .peers
            .entry((ev.direction, domain.clone()))
            .or_insert_with(|| PeerStats {
                peer: domain,
                direction: ev.direction.as_str(),
                ..Default::default()
            });
        if p.hosts.len() < MAX_HOSTS {
            p.hosts.insert(host);
        }
        let ip = if ev.direction == Direction::Inbound {
            ev.client.ip
        } else {
            ev.server.ip
        };
        if p.ips.len() < MAX_HOSTS {
            p.ips.insert(ip.to_string());
        }
        p.sessions += 1;
        let st = ev.smtp.as_ref().map_or("none".to_string(), |s| {
            serde_json::to_value(s.starttls)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        });
        *p.starttls.entry(st).or_default() += 1;
        if ev.smtp.as_ref().is_some_and(|s| s.plaintext_fallback) {
            p.plaintext_fallbacks += 1;
        }
        let Some(t) = &ev.tls else { return };
        p.tls_handshakes += 1;
        *p.tls_versions
            .entry(t.version.clone().unwrap_or_else(|| "unknown".into()))
            .or_default() += 1;
        *p.outcomes
            .entry(t.outcome.result.as_str().to_string())
            .or_default() += 1;
        *p.evidence
            .entry(t.certificate_request.evidence.as_str().to_string())
            .or_default() += 1;
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
            if p.ca_names.len() < MAX_CA_NAMES {
                p.ca_names.insert(n.clone());
            }
        }
        let cc = &t.client_certificate;
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
