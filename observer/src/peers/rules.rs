//! The verdict rules (docs/policy.md "Verdicts"): how a refusal is classified, how refusals seen
//! without keys and unexplained ones are resolved, and how a peer's counts become its verdict and
//! the evidence line behind it.

use super::PeerStats;
use crate::smtp::mail::{MailFacts, Stage};
use crate::tls::{OutcomeResult, TlsFacts};
use std::collections::BTreeMap;

impl PeerStats {
    /// A message after `class` was delivered (or, without mail facts, a session established).
    pub(super) fn class_accepted(&self, class: &str) -> bool {
        self.answers
            .get(&format!("{class}/accepted"))
            .is_some_and(|n| *n > 0)
    }

    /// `answers`, with (1) refusals seen without keys added where no message after the same class
    /// went through, and (2) unexplained rejections of a chain whose issuer this peer accepted in
    /// another session moved to `rejected_eku`: the peer trusts that CA, so what it refused was the
    /// EKU (Postfix `smtpd_tls_req_ccert` logs "not designated for use as a client certificate"
    /// and closes).
    pub fn resolved_answers(&self) -> BTreeMap<String, u64> {
        let mut a = self.answers.clone();
        let mut ambiguous = self.ambiguous.clone();
        for ((class, kind, issuer), n) in &self.tentative {
            if self.class_accepted(class) {
                continue;
            }
            *a.entry(format!("{class}/{kind}")).or_default() += n;
            if *kind == "rejected_ambiguous" && !issuer.is_empty() {
                *ambiguous
                    .entry((class.clone(), issuer.clone()))
                    .or_default() += n;
            }
        }
        for ((class, issuer), n) in &ambiguous {
            if self.accepted_issuers.contains(issuer) {
                let key = format!("{class}/rejected_ambiguous");
                let amb = a.entry(key.clone()).or_default();
                let moved = (*n).min(*amb);
                *amb -= moved;
                if *amb == 0 {
                    a.remove(&key);
                }
                *a.entry(format!("{class}/rejected_eku")).or_default() += moved;
            }
        }
        a
    }

    /// Refusals seen without keys that delivered mail after the same class outweighed, by class.
    pub fn outweighed_refusals(&self) -> BTreeMap<String, u64> {
        let mut o = BTreeMap::new();
        for ((class, _, _), n) in &self.tentative {
            if self.class_accepted(class) {
                *o.entry(class.clone()).or_default() += n;
            }
        }
        o
    }

    /// The verdict for this peer (None for inbound peers and peers without TLS).
    pub fn verdict(&self) -> Option<&'static str> {
        if self.direction == "inbound" || self.tls_handshakes == self.resumed {
            return None;
        }
        if self.cr_present == 0 {
            return (self.cr_known > 0).then_some("no_request");
        }
        let answers = self.resolved_answers();
        let count = |prefix: &str, suffix: &str| -> u64 {
            answers
                .iter()
                .filter(|(k, _)| k.starts_with(prefix) && k.ends_with(suffix))
                .map(|(_, v)| v)
                .sum()
        };
        Some(if count("server_only/", "/rejected_eku") > 0 {
            "requests_rejects_server_only"
        } else if count("server_only/", "/accepted") > 0 {
            "requests_accepts_server_only"
        } else if count("no_cert/", "/accepted") > 0
            && answers.keys().all(|k| k.starts_with("no_cert/"))
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
        let outweighed = self.outweighed_refusals();
        if !outweighed.is_empty() {
            let r: Vec<String> = outweighed.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            parts.push(format!(
                "refusals without keys outweighed by delivered mail: {}",
                r.join(" ")
            ));
        }
        if self.plaintext_fallbacks > 0 {
            parts.push(format!("plaintext fallbacks:{}", self.plaintext_fallbacks));
        }
        parts.join("; ")
    }
}

/// The trust anchor of the client chain, or the issuer of its last certificate.
pub(super) fn chain_issuer(t: &TlsFacts) -> Option<String> {
    let cc = &t.client_certificate;
    cc.chain_class
        .as_ref()
        .and_then(|c| c.trust_anchor.clone())
        .or_else(|| cc.chain.last().and_then(|c| c.issuer.clone()))
}

/// A refusal of the whole session under a CertificateRequest, before any message: (reason, alert
/// code, in the handshake). A TLS alert, a close right after the handshake, the EHLO after TLS
/// refused; without mail facts also a 4xx/5xx to MAIL or the first RCPT (keys, no `mail`).
pub(super) fn session_refusal(
    t: &TlsFacts,
    mail: Option<&MailFacts>,
) -> Option<(String, Option<u8>, bool)> {
    let replies = t.smtp_reply_after_tls.as_ref();
    let bad_reply = replies.and_then(|r| {
        let codes = if mail.is_some() {
            // MAIL and RCPT refusals are per message (below)
            [r.first, r.ehlo, None, None]
        } else {
            [r.first, r.ehlo, r.mail, r.rcpt]
        };
        codes.into_iter().flatten().find(|c| *c >= 400)
    });
    let failed = t.outcome.result == OutcomeResult::HandshakeFailed;
    Some(match (t.outcome.result, &t.outcome.alert, bad_reply) {
        (OutcomeResult::HandshakeFailed | OutcomeResult::ClosedAfterHandshake, Some(a), _)
            if a.code.is_some() =>
        {
            (
                format!("alert:{}", a.description.clone().unwrap_or_default()),
                a.code,
                failed,
            )
        }
        (_, _, Some(code)) => (format!("smtp_{code}_after_tls"), None, false),
        (OutcomeResult::HandshakeFailed, _, _) => ("handshake_failed".to_string(), None, true),
        (OutcomeResult::ClosedAfterHandshake, _, _) => {
            ("closed_after_handshake".to_string(), None, false)
        }
        _ if mail.is_some_and(|m| m.rejection_stage == Some(Stage::Ehlo)) => {
            ("refused_at_ehlo".to_string(), None, false)
        }
        _ => return None,
    })
}

/// What a refusal after `class` says about the certificate: the alert when there is one, else
/// (no reason given) a publicly trusted chain points at its EKU, a private or unknown one may just
/// be untrusted.
pub(super) fn classify(code: Option<u8>, class: &str, public: bool) -> &'static str {
    match code {
        Some(43) => "rejected_eku",
        Some(42 | 44 | 45 | 46 | 48 | 49) => "rejected_trust",
        _ if class == "no_cert" => "rejected_no_cert",
        _ if public => "rejected_eku",
        _ => "rejected_ambiguous",
    }
}
