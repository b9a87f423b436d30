//! What is counted per peer, and how one session adds to it (the verdict rules that read these
//! counts are in `rules.rs`).

use super::rules::{chain_issuer, classify, session_refusal};
use super::{bump, MAX_HOSTS, MAX_TENTATIVE};
use crate::smtp::mail::{MailEvidence, MailFacts, Stage, StatusSubject, TxResult};
use crate::tls::{CertStatus, OutcomeResult, TlsFacts};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What became of the mail after one client-certificate class (what our side presented under a
/// CertificateRequest: `server_only`, `server_and_client`, ..., `unknown_eku`, `no_cert`) on one
/// peer.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ClassMail {
    /// Non-resumed sessions with a CertificateRequest in which this class was presented.
    pub sessions: u64,
    /// Messages (mail transactions) in those sessions, and what became of them.
    pub messages: u64,
    pub delivered: u64,
    pub rejected: u64,
    /// Aborted by the client, or result unknown.
    pub other: u64,
    /// Rejected messages whose enhanced status code (exact evidence) names a recipient (x.1.y) or a
    /// mailbox (x.2.y): not counted against the certificate.
    pub recipient_refusals: u64,
    /// Rejected messages seen without keys (`rejected_before_data`: MAIL, RCPT or DATA, reason not
    /// visible).
    pub inferred_refusals: u64,
    /// Sessions refused at EHLO (closed right after the handshake, or EHLO answered 4xx/5xx).
    pub refused_at_ehlo: u64,
    /// Sessions whose handshake failed (alert, or closed before it finished).
    pub refused_in_handshake: u64,
    /// Rejections by SMTP stage (`ehlo`: sessions; the others: messages).
    pub stages: BTreeMap<String, u64>,
    /// Rejected messages by enhanced status subject (exact evidence, when the reply had a code).
    pub subjects: BTreeMap<String, u64>,
    /// Session refusals by reason (`alert:<name>`, `closed_after_handshake`, `smtp_<code>_after_tls`).
    pub reasons: BTreeMap<String, u64>,
}

impl ClassMail {
    /// Rejected messages counted against the certificate (not recipient refusals).
    pub fn certificate_refusals(&self) -> u64 {
        self.rejected.saturating_sub(self.recipient_refusals)
    }

    /// Sessions refused before any message could be sent.
    pub fn refused_sessions(&self) -> u64 {
        self.refused_at_ehlo + self.refused_in_handshake
    }
}

/// One message (mail transaction) of a session as verdicts, reports and metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    pub result: TxResult,
    pub evidence: MailEvidence,
    pub subject: Option<StatusSubject>,
}

/// The messages of a session: the listed transactions, then those beyond the list (counted in the
/// session's totals only) as `delivered`, `rejected_before_data` (inferred) or `unknown` (an exact
/// refusal whose stage is not listed).
pub fn messages(m: &MailFacts) -> impl Iterator<Item = Message> + '_ {
    let (mut d, mut r, mut o) = (0u32, 0u32, 0u32);
    for t in &m.transactions {
        match t.result {
            TxResult::Delivered => d += 1,
            x if x.rejected() => r += 1,
            _ => o += 1,
        }
    }
    let unlisted = |result, n: u32| {
        std::iter::repeat_n(
            Message {
                result,
                evidence: m.evidence,
                subject: None,
            },
            n as usize,
        )
    };
    let refused = if m.evidence == MailEvidence::Inferred {
        TxResult::RejectedBeforeData
    } else {
        TxResult::Unknown
    };
    m.transactions
        .iter()
        .map(|t| Message {
            result: t.result,
            evidence: t.evidence,
            subject: t.refusal_subject,
        })
        .chain(unlisted(
            TxResult::Delivered,
            m.messages_delivered.saturating_sub(d),
        ))
        .chain(unlisted(refused, m.messages_rejected.saturating_sub(r)))
        .chain(unlisted(
            TxResult::Unknown,
            m.messages_other.saturating_sub(o),
        ))
}

/// A refusal whose enhanced status code (exact evidence) says it is about a recipient or mailbox.
pub(super) fn recipient_refusal(msg: &Message) -> bool {
    msg.evidence != MailEvidence::Inferred
        && matches!(
            msg.subject,
            Some(StatusSubject::Addressing | StatusSubject::Mailbox)
        )
}
#[derive(Debug, Default, Clone, Serialize)]
pub struct PeerStats {
    pub peer: String,
    pub direction: &'static str,
    /// Observers whose events name this peer (`observer`; the first [`super::MAX_OBSERVERS`]).
    pub observers: BTreeSet<String>,
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
    /// What we presented under a CR and how the peer answered, one count per message (or per
    /// session refused before any message): `<eku class>/<accepted|rejected_eku|rejected_trust|
    /// rejected_no_cert|rejected_ambiguous|recipient_refused|no_message|unfinished>` (eku class
    /// `server_only`, `server_and_client`, `client_only`, `none`, `any`, `other`, `unknown_eku`, or
    /// `no_cert`). Refusals seen without keys are added by [`PeerStats::resolved_answers`].
    pub answers: BTreeMap<String, u64>,
    /// Why sessions or messages were counted as rejected: `alert:<name>`,
    /// `closed_after_handshake`, `smtp_<code>_after_tls`, `<result>(<subject>)` for a message.
    pub rejection_reasons: BTreeMap<String, u64>,
    /// Issuers (trust anchor, or the top certificate's issuer) of chains this peer accepted.
    pub accepted_issuers: BTreeSet<String>,
    /// Messages (mail transactions, the event's `mail`) in every session, TLS or not.
    pub messages: u64,
    pub messages_delivered: u64,
    pub messages_rejected: u64,
    /// Aborted by the client, or result unknown.
    pub messages_other: u64,
    /// Messages whose session's CertificateRequest presence is known (plaintext sessions and
    /// resumed handshakes included: they met none), and those that met one.
    pub messages_cr_known: u64,
    pub messages_with_cr: u64,
    /// Messages by result (`delivered`, `rejected_rcpt`, ...; docs/events.md).
    pub message_results: BTreeMap<String, u64>,
    /// Rejections by SMTP stage over all the peer's mail (`ehlo`: sessions refused there).
    pub rejection_stages: BTreeMap<String, u64>,
    /// Messages refused for a recipient or mailbox (x.1.y / x.2.y, exact evidence).
    pub recipient_refusals: u64,
    /// Under a CertificateRequest, by the class we presented: what became of the mail.
    pub mail_by_class: BTreeMap<String, ClassMail>,
    /// Rejections without a stated reason, by (class, issuer): resolved against `accepted_issuers`.
    #[serde(skip)]
    pub(super) ambiguous: BTreeMap<(String, String), u64>,
    /// Refusals seen without keys, by (class, kind, issuer): they count against the certificate
    /// only when no message after that class was delivered (docs/policy.md).
    #[serde(skip)]
    pub(super) tentative: BTreeMap<(String, &'static str, String), u64>,
}

impl PeerStats {
    pub fn cr_rate(&self) -> Option<f64> {
        (self.cr_known > 0).then(|| self.cr_present as f64 / self.cr_known as f64)
    }

    /// Messages that met a CertificateRequest, over those whose session's CR presence is known.
    pub fn cr_rate_per_message(&self) -> Option<f64> {
        (self.messages_cr_known > 0)
            .then(|| self.messages_with_cr as f64 / self.messages_cr_known as f64)
    }

    /// Counts the session's messages (every session with mail facts, TLS or not).
    pub(super) fn count_mail(&mut self, m: &MailFacts, cr: &str) {
        for msg in messages(m) {
            self.messages += 1;
            match cr {
                "yes" => {
                    self.messages_cr_known += 1;
                    self.messages_with_cr += 1;
                }
                "no" | "no_tls" => self.messages_cr_known += 1,
                _ => {}
            }
            bump(&mut self.message_results, msg.result.as_str());
            if msg.result == TxResult::Delivered {
                self.messages_delivered += 1;
            } else if let Some(stage) = msg.result.stage() {
                self.messages_rejected += 1;
                bump(&mut self.rejection_stages, stage.as_str());
                if recipient_refusal(&msg) {
                    self.recipient_refusals += 1;
                }
            } else {
                self.messages_other += 1;
            }
        }
        if m.rejection_stage == Some(Stage::Ehlo) {
            bump(&mut self.rejection_stages, Stage::Ehlo.as_str());
        }
    }

    /// How the peer answered what we presented under a CertificateRequest (non-resumed).
    pub(super) fn count_answers(&mut self, t: &TlsFacts, mail: Option<&MailFacts>) {
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
        let public = cc.chain_class.as_ref().is_some_and(|c| c.trust == "public");
        let issuer = chain_issuer(t);
        let cm = self.mail_by_class.entry(class.clone()).or_default();
        cm.sessions += 1;
        if let Some((reason, code, in_handshake)) = session_refusal(t, mail) {
            let kind = classify(code, &class, public);
            bump(&mut cm.reasons, &reason);
            if in_handshake {
                cm.refused_in_handshake += 1;
            } else {
                cm.refused_at_ehlo += 1;
                bump(&mut cm.stages, Stage::Ehlo.as_str());
            }
            self.answer(&class, kind, issuer.as_deref(), Some(reason));
            return;
        }
        let m = match mail {
            // No mail dialogue seen (TLS without SMTP facts): the session's outcome decides.
            None => {
                let kind = if t.outcome.result == OutcomeResult::Established {
                    "accepted"
                } else {
                    "unfinished"
                };
                self.answer(&class, kind, issuer.as_deref(), None);
                return;
            }
            // The capture ended before the handshake's outcome (refusals were handled above).
            Some(_) if t.outcome.result != OutcomeResult::Established => {
                self.answer(&class, "unfinished", None, None);
                return;
            }
            Some(m) => m,
        };
        let mut any = false;
        for msg in messages(m) {
            any = true;
            let Some(cm) = self.mail_by_class.get_mut(&class) else {
                continue; // inserted above for this session
            };
            cm.messages += 1;
            match msg.result {
                TxResult::Delivered => {
                    cm.delivered += 1;
                    self.answer(&class, "accepted", issuer.as_deref(), None);
                }
                r if r.rejected() => {
                    cm.rejected += 1;
                    if let Some(stage) = r.stage() {
                        bump(&mut cm.stages, stage.as_str());
                    }
                    if let Some(s) = msg.subject {
                        bump(&mut cm.subjects, s.as_str());
                    }
                    if recipient_refusal(&msg) {
                        cm.recipient_refusals += 1;
                        self.answer(&class, "recipient_refused", None, None);
                    } else if msg.evidence == MailEvidence::Inferred {
                        cm.inferred_refusals += 1;
                        let kind = classify(None, &class, public);
                        let issuer = match issuer.as_deref() {
                            Some(i) if self.tentative.len() < MAX_TENTATIVE => i.to_string(),
                            _ => String::new(),
                        };
                        *self
                            .tentative
                            .entry((class.clone(), kind, issuer))
                            .or_default() += 1;
                    } else {
                        let reason = match msg.subject {
                            Some(s) => format!("{}({})", r.as_str(), s.as_str()),
                            None => r.as_str().to_string(),
                        };
                        let kind = classify(None, &class, public);
                        self.answer(&class, kind, issuer.as_deref(), Some(reason));
                    }
                }
                _ => cm.other += 1,
            }
        }
        if !any {
            self.answer(&class, "no_message", None, None);
        }
    }

    /// Counts one answer (`class/kind`), its reason, and the issuer it tells about.
    pub(super) fn answer(
        &mut self,
        class: &str,
        kind: &str,
        issuer: Option<&str>,
        reason: Option<String>,
    ) {
        bump(&mut self.answers, &format!("{class}/{kind}"));
        if let Some(r) = reason {
            bump(&mut self.rejection_reasons, &r);
        }
        if let Some(i) = issuer {
            if kind == "accepted" {
                if self.accepted_issuers.len() < MAX_HOSTS && !self.accepted_issuers.contains(i) {
                    self.accepted_issuers.insert(i.to_string());
                }
            } else if kind == "rejected_ambiguous" {
                *self
                    .ambiguous
                    .entry((class.to_string(), i.to_string()))
                    .or_default() += 1;
            }
        }
    }
}
