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

use crate::event::{Direction, SessionEvent};
use crate::smtp::mail::{MailEvidence, MailFacts, Stage, StatusSubject, TxResult};
use crate::tls::{CertStatus, OutcomeResult, TlsFacts};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

const MAX_HOSTS: usize = 32;
const MAX_CA_NAMES: usize = 32;
/// (class, kind, issuer) entries kept for refusals seen without keys; beyond it they are counted
/// without their issuer.
const MAX_TENTATIVE: usize = 64;

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
fn recipient_refusal(msg: &Message) -> bool {
    msg.evidence != MailEvidence::Inferred
        && matches!(
            msg.subject,
            Some(StatusSubject::Addressing | StatusSubject::Mailbox)
        )
}

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

/// Words for a client-certificate class in the report's sentences.
pub fn class_words(class: &str) -> &'static str {
    match class {
        "server_only" => "our serverAuth-only certificate",
        "server_and_client" => "our certificate with serverAuth and clientAuth",
        "client_only" => "our clientAuth-only certificate",
        "none" => "our certificate without an EKU extension",
        "any" => "our anyExtendedKeyUsage certificate",
        "other" => "our certificate with neither serverAuth nor clientAuth",
        "no_cert" => "no certificate",
        _ => "our certificate (EKU not visible without keys)",
    }
}

/// Classes a verifier checking the client EKU accepts (no EKU extension means any use).
fn allows_client_auth(class: &str) -> bool {
    matches!(class, "server_and_client" | "client_only" | "any" | "none")
}

fn stage_words(stage: &str) -> &'static str {
    match stage {
        "ehlo" => "EHLO",
        "mail" => "MAIL",
        "rcpt" => "RCPT",
        "data" => "DATA",
        "after_data" => "the end of data",
        "before_data" => "MAIL/RCPT/DATA (not visible without keys)",
        _ => "an unknown stage",
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "refused 3 of 3 messages at RCPT (security_policy)", "closed 1 session at EHLO …", … joined
/// with "and"; empty when nothing was refused. `outweighed`: mail after this class was delivered,
/// so its refusals seen without keys do not count (they are named apart).
fn refusal_words(cm: &ClassMail, outweighed: bool) -> String {
    let mut parts = Vec::new();
    if cm.refused_in_handshake > 0 {
        let why: Vec<String> = cm
            .reasons
            .keys()
            .filter(|r| r.starts_with("alert:") || *r == "handshake_failed")
            .map(|r| r.replace("alert:", "alert "))
            .collect();
        parts.push(format!(
            "failed {} in the handshake ({})",
            plural(cm.refused_in_handshake, "session", "sessions"),
            why.join(", ")
        ));
    }
    if cm.refused_at_ehlo > 0 {
        parts.push(format!(
            "closed {} at EHLO (right after the handshake, before any message)",
            plural(cm.refused_at_ehlo, "session", "sessions")
        ));
    }
    let not_counted = if outweighed { cm.inferred_refusals } else { 0 };
    let counted = cm
        .rejected
        .saturating_sub(cm.recipient_refusals)
        .saturating_sub(not_counted);
    if counted > 0 {
        let stages: Vec<(&String, &u64)> = cm
            .stages
            .iter()
            .filter(|(s, _)| *s != "ehlo" && !(outweighed && *s == "before_data"))
            .collect();
        let stage_list: Vec<String> = stages
            .iter()
            .map(|(s, n)| {
                if stages.len() > 1 {
                    format!("{}: {n}", stage_words(s))
                } else {
                    stage_words(s).to_string()
                }
            })
            .collect();
        let mut s = format!(
            "refused {counted} of {} at {}",
            plural(cm.messages, "message", "messages"),
            stage_list.join(", ")
        );
        let subj: Vec<&str> = cm
            .subjects
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "addressing" && *k != "mailbox")
            .collect();
        if !subj.is_empty() {
            s.push_str(&format!(" ({})", subj.join(", ")));
        }
        parts.push(s);
    }
    let mut apart = Vec::new();
    if cm.recipient_refusals > 0 {
        apart.push(format!(
            "{} for a recipient or mailbox",
            plural(cm.recipient_refusals, "message", "messages")
        ));
    }
    if not_counted > 0 {
        apart.push(format!(
            "{} seen without keys, outweighed by delivered mail",
            plural(not_counted, "message", "messages")
        ));
    }
    if !apart.is_empty() {
        parts.push(format!(
            "refused {} (not counted against the certificate)",
            apart.join(" and ")
        ));
    }
    parts.join(" and ")
}

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
    ambiguous: BTreeMap<(String, String), u64>,
    /// Refusals seen without keys, by (class, kind, issuer): they count against the certificate
    /// only when no message after that class was delivered (docs/policy.md).
    #[serde(skip)]
    tentative: BTreeMap<(String, &'static str, String), u64>,
}

impl PeerStats {
    /// A message after `class` was delivered (or, without mail facts, a session established).
    fn class_accepted(&self, class: &str) -> bool {
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

    /// The verdict in one plain sentence (None without a verdict).
    pub fn explanation(&self) -> Option<String> {
        let v = self.verdict()?;
        let peer = &self.peer;
        let none = ClassMail::default();
        let so = self.mail_by_class.get("server_only").unwrap_or(&none);
        let with_client_auth: u64 = self
            .mail_by_class
            .iter()
            .filter(|(c, _)| allows_client_auth(c))
            .map(|(_, m)| m.delivered)
            .sum();
        let also = if with_client_auth > 0 {
            format!(
                "; it delivered {} after a certificate with clientAuth",
                plural(with_client_auth, "message", "messages")
            )
        } else {
            String::new()
        };
        let s = match v {
            "no_request" => format!(
                "{peer} sent no CertificateRequest in {}; {} of {} met one",
                plural(self.cr_known, "handshake", "handshakes"),
                self.messages_with_cr,
                plural(self.messages, "message", "messages")
            ),
            "requests_rejects_server_only" => {
                let words = refusal_words(so, so.delivered > 0);
                let words = if words.is_empty() {
                    "refused mail".to_string()
                } else {
                    words
                };
                let through = if so.delivered > 0 {
                    format!(
                        " (in other sessions it delivered {} of {} after it)",
                        so.delivered,
                        plural(so.messages, "message", "messages")
                    )
                } else {
                    String::new()
                };
                format!(
                    "{peer} {words} after {}{through}{also}",
                    class_words("server_only")
                )
            }
            "requests_accepts_server_only" => {
                let refused = refusal_words(so, so.delivered > 0);
                format!(
                    "{peer} asks for a client certificate and delivered {} of {} after {}{}",
                    so.delivered,
                    plural(so.messages, "message", "messages"),
                    class_words("server_only"),
                    if refused.is_empty() {
                        String::new()
                    } else {
                        format!(" (it also {refused})")
                    }
                )
            }
            "requests_no_cert_ok" => {
                let nc = self.mail_by_class.get("no_cert").unwrap_or(&none);
                format!(
                    "{peer} asks for a client certificate and delivered {} of {} although we sent none",
                    nc.delivered,
                    plural(nc.messages, "message", "messages")
                )
            }
            _ => {
                let seen: Vec<String> = self
                    .mail_by_class
                    .iter()
                    .map(|(c, m)| {
                        let refused = refusal_words(m, m.delivered > 0);
                        let mut s = format!(
                            "after {} it delivered {} of {}",
                            class_words(c),
                            m.delivered,
                            plural(m.messages, "message", "messages")
                        );
                        if !refused.is_empty() {
                            s.push_str(&format!(" and {refused}"));
                        }
                        s
                    })
                    .collect();
                format!(
                    "{peer} asks for a client certificate, but no message has gone through after {} yet (at risk){}{}",
                    class_words("server_only"),
                    if seen.is_empty() { "" } else { ": " },
                    seen.join("; ")
                )
            }
        };
        Some(format!("{s}."))
    }

    pub fn cr_rate(&self) -> Option<f64> {
        (self.cr_known > 0).then(|| self.cr_present as f64 / self.cr_known as f64)
    }

    /// Messages that met a CertificateRequest, over those whose session's CR presence is known.
    pub fn cr_rate_per_message(&self) -> Option<f64> {
        (self.messages_cr_known > 0)
            .then(|| self.messages_with_cr as f64 / self.messages_cr_known as f64)
    }

    /// Counts the session's messages (every session with mail facts, TLS or not).
    fn count_mail(&mut self, m: &MailFacts, cr: &str) {
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
    fn count_answers(&mut self, t: &TlsFacts, mail: Option<&MailFacts>) {
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
    fn answer(&mut self, class: &str, kind: &str, issuer: Option<&str>, reason: Option<String>) {
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

/// A refusal of the whole session under a CertificateRequest, before any message: (reason, alert
/// code, in the handshake). A TLS alert, a close right after the handshake, the EHLO after TLS
/// refused; without mail facts also a 4xx/5xx to MAIL or the first RCPT (keys, no `mail`).
fn session_refusal(t: &TlsFacts, mail: Option<&MailFacts>) -> Option<(String, Option<u8>, bool)> {
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
fn classify(code: Option<u8>, class: &str, public: bool) -> &'static str {
    match code {
        Some(43) => "rejected_eku",
        Some(42 | 44 | 45 | 46 | 48 | 49) => "rejected_trust",
        _ if class == "no_cert" => "rejected_no_cert",
        _ if public => "rejected_eku",
        _ => "rejected_ambiguous",
    }
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
        if let Some(m) = &ev.mail {
            p.count_mail(m, cr_label(ev));
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
            p.count_answers(t, ev.mail.as_ref());
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

    use crate::flow::FlowConfig;
    use crate::pipeline::Pipeline;
    use crate::smtp::mail::{Codes, Transaction};

    /// The one session event of a bundled capture (our side 127.0.0.2, so outbound), no keys.
    fn event(name: &str) -> SessionEvent {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../captures")
            .join(name);
        let mut p = Pipeline::new(FlowConfig {
            local_nets: vec!["127.0.0.2/32".parse().unwrap()],
            ..Default::default()
        });
        p.read_file(&path, |_, _| {}).unwrap();
        p.finish();
        let mut evs = p.take_events();
        assert_eq!(evs.len(), 1, "{name}");
        evs.remove(0)
    }

    /// Postfix ask_ccert, TLS 1.2: our serverAuth-only certificate (Lab Root CA, private) under a
    /// CertificateRequest, established (Postfix queued the message: captures/logs).
    fn server_only() -> SessionEvent {
        let ev = event("pf-askccert-tls12-openssl-serveronly.pcap");
        let t = ev.tls.as_ref().unwrap();
        assert_eq!(t.certificate_request.present, Some(true));
        assert_eq!(client_eku_label(Some(t)), "server_only");
        ev
    }

    /// The same server, our certificate with serverAuth and clientAuth from the same lab PKI.
    fn dual() -> SessionEvent {
        let ev = event("pf-askccert-tls12-openssl-both.pcap");
        assert_eq!(client_eku_label(ev.tls.as_ref()), "server_and_client");
        ev
    }

    fn tx(evidence: MailEvidence, result: TxResult, subject: Option<StatusSubject>) -> Transaction {
        let mut t = Transaction::new(evidence);
        t.result = result;
        t.refusal_subject = subject;
        if evidence != MailEvidence::Inferred {
            t.mail = Some(250);
            let refused = result == TxResult::RejectedRcpt;
            t.rcpt = Some(Codes {
                codes: vec![if refused { 550 } else { 250 }],
                count: 1,
            });
            t.rcpt_accepted = Some(u32::from(!refused));
            t.rcpt_rejected = Some(u32::from(refused));
        }
        t
    }

    fn with_mail(
        mut ev: SessionEvent,
        evidence: MailEvidence,
        txs: Vec<Transaction>,
    ) -> SessionEvent {
        let mut m = MailFacts::new(evidence);
        m.ehlo_accepted = Some(true);
        for t in txs {
            m.push(t);
        }
        ev.mail = Some(m);
        ev
    }

    fn book(evs: &[SessionEvent]) -> PeerStats {
        let mut b = PeerBook::default();
        for ev in evs {
            b.add(ev);
        }
        let peers = b.peers();
        assert_eq!(peers.len(), 1);
        peers[0].clone()
    }

    const DEC: MailEvidence = MailEvidence::Decrypted;
    const INF: MailEvidence = MailEvidence::Inferred;

    #[test]
    fn policy_refusal_at_rcpt_after_server_only_is_a_rejection() {
        // 5.7.1 at RCPT after serverAuth-only; the same peer delivered after our dual-EKU
        // certificate from the same CA: it trusts the CA, so the refusal is about the EKU.
        let refused = tx(
            DEC,
            TxResult::RejectedRcpt,
            Some(StatusSubject::SecurityPolicy),
        );
        let p = book(&[
            with_mail(
                server_only(),
                DEC,
                vec![refused.clone(), refused.clone(), refused],
            ),
            with_mail(dual(), DEC, vec![tx(DEC, TxResult::Delivered, None)]),
        ]);
        assert_eq!(p.verdict(), Some("requests_rejects_server_only"));
        let a = p.resolved_answers();
        assert_eq!(a.get("server_only/rejected_eku"), Some(&3), "{a:?}");
        assert_eq!(a.get("server_and_client/accepted"), Some(&1));
        let so = &p.mail_by_class["server_only"];
        assert_eq!((so.messages, so.rejected, so.delivered), (3, 3, 0));
        assert_eq!(so.stages.get("rcpt"), Some(&3));
        assert_eq!(p.rejection_stages.get("rcpt"), Some(&3));
        let e = p.explanation().unwrap();
        assert!(
            e.contains("refused 3 of 3 messages at RCPT (security_policy) after our serverAuth-only certificate"),
            "{e}"
        );
        assert!(
            e.contains("it delivered 1 message after a certificate with clientAuth"),
            "{e}"
        );
        assert!(p
            .verdict_evidence()
            .contains("rejected_rcpt(security_policy):3"));
    }

    #[test]
    fn refused_recipient_is_not_a_refused_certificate() {
        // 5.1.1 (addressing) and 5.2.2 (mailbox) after serverAuth-only: counted apart.
        let p = book(&[with_mail(
            server_only(),
            DEC,
            vec![
                tx(DEC, TxResult::RejectedRcpt, Some(StatusSubject::Addressing)),
                tx(DEC, TxResult::RejectedRcpt, Some(StatusSubject::Mailbox)),
                tx(DEC, TxResult::Delivered, None),
            ],
        )]);
        assert_eq!(p.verdict(), Some("requests_accepts_server_only"));
        let a = p.resolved_answers();
        assert_eq!(a.get("server_only/recipient_refused"), Some(&2), "{a:?}");
        assert!(!a.keys().any(|k| k.contains("rejected")), "{a:?}");
        assert_eq!(p.recipient_refusals, 2);
        assert_eq!(p.mail_by_class["server_only"].certificate_refusals(), 0);
        let e = p.explanation().unwrap();
        assert!(
            e.contains("delivered 1 of 3 messages after our serverAuth-only certificate")
                && e.contains("refused 2 messages for a recipient or mailbox (not counted against the certificate)"),
            "{e}"
        );
        // Recipient refusals alone prove nothing either way: untested, not "rejects".
        let p = book(&[with_mail(
            server_only(),
            DEC,
            vec![tx(
                DEC,
                TxResult::RejectedRcpt,
                Some(StatusSubject::Addressing),
            )],
        )]);
        assert_eq!(p.verdict(), Some("requests_untested"));
        // Plaintext evidence is exact too.
        let p = book(&[with_mail(
            server_only(),
            MailEvidence::Plaintext,
            vec![tx(
                MailEvidence::Plaintext,
                TxResult::RejectedMail,
                Some(StatusSubject::Mailbox),
            )],
        )]);
        assert_eq!(
            p.resolved_answers().get("server_only/recipient_refused"),
            Some(&1)
        );
    }

    #[test]
    fn delivered_mail_outweighs_refusals_seen_without_keys() {
        // Without keys a refusal before data may be about a recipient: mail delivered after the
        // same class (same peer, another session) outweighs it.
        let p = book(&[
            with_mail(
                server_only(),
                INF,
                vec![tx(INF, TxResult::RejectedBeforeData, None)],
            ),
            with_mail(server_only(), INF, vec![tx(INF, TxResult::Delivered, None)]),
        ]);
        assert_eq!(p.verdict(), Some("requests_accepts_server_only"));
        assert_eq!(p.outweighed_refusals().get("server_only"), Some(&1));
        assert!(p
            .verdict_evidence()
            .contains("outweighed by delivered mail: server_only:1"));
        let e = p.explanation().unwrap();
        assert!(
            e.contains("refused 1 message seen without keys, outweighed by delivered mail"),
            "{e}"
        );
        let so = &p.mail_by_class["server_only"];
        assert_eq!((so.inferred_refusals, so.rejected, so.delivered), (1, 1, 1));
        // Mail delivered after another class does not outweigh it: with nothing through after
        // serverAuth-only, the refusal counts (and the accepted CA makes it an EKU refusal).
        let p = book(&[
            with_mail(
                server_only(),
                INF,
                vec![tx(INF, TxResult::RejectedBeforeData, None)],
            ),
            with_mail(dual(), INF, vec![tx(INF, TxResult::Delivered, None)]),
        ]);
        assert_eq!(p.verdict(), Some("requests_rejects_server_only"));
        assert_eq!(
            p.resolved_answers().get("server_only/rejected_eku"),
            Some(&1)
        );
        let e = p.explanation().unwrap();
        assert!(
            e.contains("refused 1 of 1 message at MAIL/RCPT/DATA"),
            "{e}"
        );
        // Alone, with a private CA nobody accepted: ambiguous (trust or EKU), so untested.
        let p = book(&[with_mail(
            server_only(),
            INF,
            vec![tx(INF, TxResult::RejectedBeforeData, None)],
        )]);
        assert_eq!(p.verdict(), Some("requests_untested"));
        assert_eq!(
            p.resolved_answers().get("server_only/rejected_ambiguous"),
            Some(&1)
        );
    }

    #[test]
    fn refused_at_ehlo_is_a_rejection_and_a_stage() {
        // The EHLO after TLS refused (the session stays up): no message could be sent.
        let mut refused = with_mail(server_only(), INF, vec![]);
        refused.mail.as_mut().unwrap().refused_at_ehlo();
        let p = book(&[
            refused,
            with_mail(dual(), INF, vec![tx(INF, TxResult::Delivered, None)]),
        ]);
        assert_eq!(p.verdict(), Some("requests_rejects_server_only"));
        assert_eq!(p.rejection_stages.get("ehlo"), Some(&1));
        assert_eq!(p.mail_by_class["server_only"].refused_at_ehlo, 1);
        let e = p.explanation().unwrap();
        assert!(e.contains("closed 1 session at EHLO"), "{e}");
    }

    #[test]
    fn a_session_without_a_message_proves_nothing() {
        // Established, EHLO accepted, QUIT: no message went through after serverAuth-only.
        let p = book(&[with_mail(server_only(), DEC, vec![])]);
        assert_eq!(p.verdict(), Some("requests_untested"));
        assert_eq!(p.resolved_answers().get("server_only/no_message"), Some(&1));
        // An aborted transaction is no delivery either.
        let p = book(&[with_mail(
            server_only(),
            DEC,
            vec![tx(DEC, TxResult::Aborted, None)],
        )]);
        assert_eq!(p.verdict(), Some("requests_untested"));
        assert_eq!(p.mail_by_class["server_only"].other, 1);
    }

    #[test]
    fn messages_and_the_per_message_cr_rate() {
        // The same peer: a plaintext session (no TLS: met no CertificateRequest) with one message,
        // a STARTTLS session under a CertificateRequest with three.
        let plain = event("pf-noask-plain-swaks.pcap");
        assert!(plain.tls.is_none());
        assert_eq!(cr_label(&plain), "no_tls");
        let d = || tx(DEC, TxResult::Delivered, None);
        let p = book(&[plain, with_mail(dual(), DEC, vec![d(), d(), d()])]);
        assert_eq!(p.messages, 4);
        assert_eq!((p.messages_with_cr, p.messages_cr_known), (3, 4));
        assert_eq!(p.cr_rate_per_message(), Some(0.75));
        assert_eq!(p.messages_delivered, 4);
        assert_eq!(p.message_results.get("delivered"), Some(&4));
    }

    #[test]
    fn transactions_beyond_the_list_are_counted() {
        let mut m = MailFacts::new(INF);
        for _ in 0..crate::smtp::mail::MAX_TRANSACTIONS + 4 {
            m.push(tx(INF, TxResult::Delivered, None));
        }
        m.push(tx(INF, TxResult::RejectedBeforeData, None));
        let all: Vec<Message> = messages(&m).collect();
        assert_eq!(all.len(), crate::smtp::mail::MAX_TRANSACTIONS + 5);
        assert_eq!(
            all.iter()
                .filter(|x| x.result == TxResult::RejectedBeforeData)
                .count(),
            1
        );
    }

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
