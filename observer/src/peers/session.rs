//! What one session tells about its peer: the event's `peer` object (docs/events.md). It is the
//! session's share of the per-peer counts, made by the same code that aggregates ([`PeerStats`] of
//! this one session), written flat so that a store without nested-JSON functions (ClickHouse 18.16:
//! `visitParamExtract*`) can sum it per peer and apply the cross-session rules itself
//! (deploy/clickhouse/, docs/policy.md): refusals seen without keys outweighed by delivered mail,
//! and unexplained refusals of a chain whose issuer the peer accepted.

use super::{peer_name, registered_domain, PeerStats};
use crate::event::SessionEvent;
use serde::Serialize;

/// How the peer answered what we presented under a CertificateRequest in this session (one count
/// per message, or per session refused before any message): docs/policy.md "Verdicts".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Answers {
    pub accepted: u32,
    pub rejected_eku: u32,
    pub rejected_trust: u32,
    pub rejected_no_cert: u32,
    pub rejected_ambiguous: u32,
    pub recipient_refused: u32,
    pub no_message: u32,
    pub unfinished: u32,
}

/// Refusals seen without keys (`rejected_before_data`), by how they would count: they count only
/// when no message after the same class was delivered to the peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tentative {
    pub rejected_eku: u32,
    pub rejected_no_cert: u32,
    pub rejected_ambiguous: u32,
}

/// The event's `peer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SessionPeer {
    /// Registered domain of the peer (Public Suffix List), or its IP: the per-peer key.
    pub domain: String,
    /// The peer's name in this session (SNI, certificate SAN, banner/EHLO name, or IP).
    pub host: String,
    /// The class we presented under a CertificateRequest (non-resumed handshakes only):
    /// `server_only`, `server_and_client`, `client_only`, `none`, `any`, `other`, `unknown_eku`,
    /// `no_cert`; null otherwise.
    pub class: Option<String>,
    /// Trust anchor of that chain, or the issuer of its last certificate.
    pub issuer: Option<String>,
    /// 1 for a TLS handshake, 0 without TLS; `resumed` likewise (not `tls`: that key is the
    /// event's `tls` object, which `visitParamExtractRaw(event, 'tls')` must find).
    pub handshakes: u32,
    pub resumed: u32,
    /// Non-resumed handshakes whose CR presence is known (0/1), and with a CR.
    pub cr_known: u32,
    pub cr_present: u32,
    pub established: u32,
    pub established_with_cr: u32,
    /// Messages, and those whose session's CR presence is known / that met one.
    pub messages: u32,
    pub messages_delivered: u32,
    pub messages_rejected: u32,
    pub messages_cr_known: u32,
    pub messages_with_cr: u32,
    pub answers: Answers,
    pub tentative: Tentative,
}

fn n(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The event's `peer`, from the rest of the event (everything but `peer`).
pub fn session_peer(ev: &SessionEvent) -> SessionPeer {
    let host = peer_name(ev);
    let domain = registered_domain(&host);
    let mut p = PeerStats::default();
    p.add_counts(ev);
    // one class per session: every answer key is `<class>/<kind>`
    let mut answers = Answers::default();
    for (key, count) in &p.answers {
        let slot = match key.rsplit_once('/').map_or("", |(_, kind)| kind) {
            "accepted" => &mut answers.accepted,
            "rejected_eku" => &mut answers.rejected_eku,
            "rejected_trust" => &mut answers.rejected_trust,
            "rejected_no_cert" => &mut answers.rejected_no_cert,
            "rejected_ambiguous" => &mut answers.rejected_ambiguous,
            "recipient_refused" => &mut answers.recipient_refused,
            "no_message" => &mut answers.no_message,
            "unfinished" => &mut answers.unfinished,
            // every kind `count_answers` gives is above; a new one must be added to `Answers`
            // (observer/tests/clickhouse.rs compares these with the report's answers)
            _ => continue,
        };
        *slot = slot.saturating_add(n(*count));
    }
    let class = p.mail_by_class.into_keys().next();
    let mut tentative = Tentative::default();
    for ((_, kind, _), count) in &p.tentative {
        let slot = match *kind {
            "rejected_eku" => &mut tentative.rejected_eku,
            "rejected_no_cert" => &mut tentative.rejected_no_cert,
            _ => &mut tentative.rejected_ambiguous,
        };
        *slot = slot.saturating_add(n(*count));
    }
    SessionPeer {
        domain,
        host,
        issuer: class
            .as_ref()
            .and(ev.tls.as_ref())
            .and_then(super::rules::chain_issuer),
        class,
        handshakes: n(p.tls_handshakes),
        resumed: n(p.resumed),
        cr_known: n(p.cr_known),
        cr_present: n(p.cr_present),
        established: n(p.established),
        established_with_cr: n(p.established_with_cr),
        messages: n(p.messages),
        messages_delivered: n(p.messages_delivered),
        messages_rejected: n(p.messages_rejected),
        messages_cr_known: n(p.messages_cr_known),
        messages_with_cr: n(p.messages_with_cr),
        answers,
        tentative,
    }
}
