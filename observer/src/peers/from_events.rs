//! Session events read back from their JSON Lines (docs/events.md), for `ekuwatch report`: each line
//! becomes a [`SessionEvent`] again, so events from files — of one observer or of many — are
//! aggregated by the same [`super::PeerBook::add`] as `analyze` and `live` aggregate the events they
//! make. The report over the events equals `analyze`'s report over the captures
//! (observer/tests/report.rs checks every bundled capture).
//!
//! Everything the aggregation reads is read back exactly; fields it does not read are read back
//! where they are plain values and left empty otherwise (a certificate's `validity_window`, the
//! chain's `intermediates_eku`, a transaction's RCPT/BDAT reply lists and `unknown_reason`, the
//! RSET replies). A line is untrusted input: anything malformed or an unknown name is an
//! [`EventError`], never a panic.

use crate::anomaly::{Anomaly, AnomalySet};
use crate::event::{Direction, Endpoint, Observer, SessionEvent};
use crate::smtp::mail::{MailEvidence, MailFacts, Stage, StatusSubject, Transaction, TxResult};
use crate::smtp::{RepliesAfterTls, SmtpFacts, StartTls};
use crate::tls::{
    Alert, CertStatus, CertificateFacts, CertificateRequestFacts, Evidence, Outcome, OutcomeResult,
    TlsFacts,
};
use crate::x509::chain::{ChainClass, ROOT_STORE};
use crate::x509::{CertFacts, EkuClass, Validity};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Why a line is not a session event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a session event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("`{field}`: unknown value {value:?}")]
    Value { field: &'static str, value: String },
}

/// Observer names already seen, so the events of one observer share one name (at most
/// [`Self::MAX`] are kept; further names are allocated per event).
#[derive(Debug, Default)]
pub struct Observers(BTreeMap<String, Observer>);

impl Observers {
    const MAX: usize = 4096;

    fn get(&mut self, name: &str) -> Observer {
        if let Some(o) = self.0.get(name) {
            return o.clone();
        }
        let o = Observer::new(name);
        if self.0.len() < Self::MAX {
            self.0.insert(name.to_string(), o.clone());
        }
        o
    }
}

/// One line of an events file. `Ok(None)`: an empty line.
pub fn parse_line(
    line: &[u8],
    observers: &mut Observers,
) -> Result<Option<SessionEvent>, EventError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let w: WireEvent = serde_json::from_slice(line)?;
    let mut ev = w.into_event(observers)?;
    // The line's own `peer` is not trusted: made again from the facts, as when the event was made.
    ev.peer = super::session_peer(&ev);
    Ok(Some(ev))
}

/// A contract name (`named_enum!`) back to its value.
fn named<T: Copy>(
    field: &'static str,
    all: &[T],
    name: fn(T) -> &'static str,
    v: &str,
) -> Result<T, EventError> {
    all.iter()
        .copied()
        .find(|x| name(*x) == v)
        .ok_or_else(|| EventError::Value {
            field,
            value: v.to_string(),
        })
}

fn named_opt<T: Copy>(
    field: &'static str,
    all: &[T],
    name: fn(T) -> &'static str,
    v: Option<&str>,
) -> Result<Option<T>, EventError> {
    v.map(|v| named(field, all, name, v)).transpose()
}

/// One of a fixed set of names (fields the event keeps as `&'static str`).
fn one_of(
    field: &'static str,
    names: &[&'static str],
    v: &str,
) -> Result<&'static str, EventError> {
    names
        .iter()
        .copied()
        .find(|n| *n == v)
        .ok_or_else(|| EventError::Value {
            field,
            value: v.to_string(),
        })
}

fn one_of_opt(
    field: &'static str,
    names: &[&'static str],
    v: Option<&str>,
) -> Result<Option<&'static str>, EventError> {
    v.map(|v| one_of(field, names, v)).transpose()
}

const TRUST: &[&str] = &["public", "private", "unknown"];
const SIDES: &[&str] = &["client", "server"];

#[derive(Deserialize)]
struct WireEndpoint {
    ip: IpAddr,
    port: u16,
}

#[derive(Deserialize)]
struct WireEvent {
    #[serde(rename = "type")]
    kind: String,
    /// Absent in events written before the field existed: `unknown`.
    observer: Option<String>,
    ts: String,
    #[serde(default)]
    community_id: String,
    client: WireEndpoint,
    server: WireEndpoint,
    direction: String,
    smtp: Option<WireSmtp>,
    tls: Option<WireTls>,
    mail: Option<WireMail>,
    #[serde(default)]
    weirds: Vec<String>,
    #[serde(default)]
    packets: [u64; 2],
    #[serde(default)]
    payload_bytes: [u64; 2],
}

fn anomalies(field: &'static str, names: &[String]) -> Result<AnomalySet, EventError> {
    names
        .iter()
        .map(|n| named(field, Anomaly::ALL, Anomaly::name, n))
        .collect()
}

impl WireEvent {
    fn into_event(self, observers: &mut Observers) -> Result<SessionEvent, EventError> {
        one_of("type", &["session"], &self.kind)?;
        Ok(SessionEvent {
            kind: "session",
            observer: observers.get(self.observer.as_deref().unwrap_or("unknown")),
            ts: self.ts,
            community_id: self.community_id,
            client: Endpoint {
                ip: self.client.ip,
                port: self.client.port,
            },
            server: Endpoint {
                ip: self.server.ip,
                port: self.server.port,
            },
            direction: named(
                "direction",
                Direction::ALL,
                Direction::as_str,
                &self.direction,
            )?,
            smtp: self.smtp.map(WireSmtp::into_facts).transpose()?,
            tls: self.tls.map(WireTls::into_facts).transpose()?,
            mail: self.mail.map(WireMail::into_facts).transpose()?,
            weirds: anomalies("weirds", &self.weirds)?,
            packets: self.packets,
            payload_bytes: self.payload_bytes,
            peer: Default::default(),
        })
    }
}

#[derive(Deserialize)]
struct WireSmtp {
    banner: Option<String>,
    helo: Option<String>,
    starttls_offered: Option<bool>,
    starttls: String,
    starttls_reply: Option<u16>,
    #[serde(default)]
    plaintext_fallback: bool,
    #[serde(default)]
    anomalies: Vec<String>,
}

impl WireSmtp {
    fn into_facts(self) -> Result<SmtpFacts, EventError> {
        Ok(SmtpFacts {
            banner: self.banner,
            helo: self.helo,
            starttls_offered: self.starttls_offered,
            starttls: named(
                "smtp.starttls",
                StartTls::ALL,
                StartTls::as_str,
                &self.starttls,
            )?,
            starttls_reply: self.starttls_reply,
            plaintext_fallback: self.plaintext_fallback,
            anomalies: anomalies("smtp.anomalies", &self.anomalies)?,
        })
    }
}

#[derive(Deserialize)]
struct WireMail {
    evidence: String,
    ehlo_reply: Option<u16>,
    ehlo_accepted: Option<bool>,
    #[serde(default)]
    transactions: Vec<WireTransaction>,
    #[serde(default)]
    transactions_not_listed: u32,
    #[serde(default)]
    messages_delivered: u32,
    #[serde(default)]
    messages_rejected: u32,
    #[serde(default)]
    messages_other: u32,
    rejection_stage: Option<String>,
    quit: Option<u16>,
    #[serde(default)]
    incomplete: bool,
}

impl WireMail {
    fn into_facts(self) -> Result<MailFacts, EventError> {
        let evidence = named(
            "mail.evidence",
            MailEvidence::ALL,
            MailEvidence::as_str,
            &self.evidence,
        )?;
        let mut m = MailFacts::new(evidence);
        m.ehlo_reply = self.ehlo_reply;
        m.ehlo_accepted = self.ehlo_accepted;
        m.transactions = self
            .transactions
            .into_iter()
            .map(WireTransaction::into_facts)
            .collect::<Result<_, _>>()?;
        m.transactions_not_listed = self.transactions_not_listed;
        m.messages_delivered = self.messages_delivered;
        m.messages_rejected = self.messages_rejected;
        m.messages_other = self.messages_other;
        m.rejection_stage = named_opt(
            "mail.rejection_stage",
            Stage::ALL,
            Stage::as_str,
            self.rejection_stage.as_deref(),
        )?;
        m.quit = self.quit;
        m.incomplete = self.incomplete;
        Ok(m)
    }
}

#[derive(Deserialize)]
struct WireTransaction {
    evidence: String,
    mail: Option<u16>,
    rcpt_accepted: Option<u32>,
    rcpt_rejected: Option<u32>,
    data_command: Option<String>,
    data: Option<u16>,
    #[serde(default)]
    body_transferred: bool,
    body_bytes: Option<u64>,
    after_body: Option<u16>,
    result: String,
    refusal_subject: Option<String>,
}

impl WireTransaction {
    fn into_facts(self) -> Result<Transaction, EventError> {
        let f = "mail.transactions[].evidence";
        let mut t = Transaction::new(named(
            f,
            MailEvidence::ALL,
            MailEvidence::as_str,
            &self.evidence,
        )?);
        t.mail = self.mail;
        t.rcpt_accepted = self.rcpt_accepted;
        t.rcpt_rejected = self.rcpt_rejected;
        t.data_command = one_of_opt(
            "mail.transactions[].data_command",
            &["data", "bdat", "inferred"],
            self.data_command.as_deref(),
        )?;
        t.data = self.data;
        t.body_transferred = self.body_transferred;
        t.body_bytes = self.body_bytes;
        t.after_body = self.after_body;
        t.result = named(
            "mail.transactions[].result",
            TxResult::ALL,
            TxResult::as_str,
            &self.result,
        )?;
        t.refusal_subject = named_opt(
            "mail.transactions[].refusal_subject",
            StatusSubject::ALL,
            StatusSubject::as_str,
            self.refusal_subject.as_deref(),
        )?;
        Ok(t)
    }
}

#[derive(Deserialize)]
struct WireTls {
    version: Option<String>,
    cipher: Option<String>,
    cipher_id: Option<String>,
    sni: Option<String>,
    alpn: Option<String>,
    #[serde(default)]
    offered_versions: Vec<String>,
    #[serde(default)]
    post_handshake_auth: bool,
    #[serde(default)]
    hello_retry_request: bool,
    resumed: Option<bool>,
    ja4: Option<String>,
    ja4s: Option<String>,
    certificate_request: WireCertRequest,
    client_certificate: WireCertificate,
    server_certificate: WireCertificate,
    outcome: WireOutcome,
    decryption: Option<String>,
    smtp_reply_after_tls: Option<WireReplies>,
}

impl WireTls {
    fn into_facts(self) -> Result<TlsFacts, EventError> {
        Ok(TlsFacts {
            version: self.version,
            cipher: self.cipher,
            cipher_id: self.cipher_id,
            sni: self.sni,
            alpn: self.alpn,
            offered_versions: self.offered_versions,
            post_handshake_auth: self.post_handshake_auth,
            hello_retry_request: self.hello_retry_request,
            resumed: self.resumed,
            ja4: self.ja4,
            ja4s: self.ja4s,
            certificate_request: self.certificate_request.into_facts()?,
            client_certificate: self
                .client_certificate
                .into_facts("tls.client_certificate")?,
            server_certificate: self
                .server_certificate
                .into_facts("tls.server_certificate")?,
            outcome: self.outcome.into_facts()?,
            decryption: one_of_opt(
                "tls.decryption",
                &["no_key", "failed", "ok"],
                self.decryption.as_deref(),
            )?,
            smtp_reply_after_tls: self.smtp_reply_after_tls.map(|r| RepliesAfterTls {
                first: r.first,
                ehlo: r.ehlo,
                mail: r.mail,
                rcpt: r.rcpt,
                data: r.data,
            }),
        })
    }
}

#[derive(Deserialize)]
struct WireReplies {
    first: Option<u16>,
    ehlo: Option<u16>,
    mail: Option<u16>,
    rcpt: Option<u16>,
    data: Option<u16>,
}

#[derive(Deserialize)]
struct WireCertRequest {
    present: Option<bool>,
    evidence: String,
    #[serde(default)]
    ca_names: Vec<String>,
    #[serde(default)]
    signature_algorithms: Vec<String>,
    #[serde(default)]
    certificate_types: Vec<String>,
    #[serde(default)]
    oid_filters: Vec<String>,
    #[serde(default)]
    signature_algorithms_cert: Vec<String>,
}

impl WireCertRequest {
    fn into_facts(self) -> Result<CertificateRequestFacts, EventError> {
        let f = "tls.certificate_request.evidence";
        Ok(CertificateRequestFacts {
            present: self.present,
            evidence: named(f, Evidence::ALL, Evidence::as_str, &self.evidence)?,
            ca_names: self.ca_names,
            signature_algorithms: self.signature_algorithms,
            certificate_types: self.certificate_types,
            oid_filters: self.oid_filters,
            signature_algorithms_cert: self.signature_algorithms_cert,
        })
    }
}

#[derive(Deserialize)]
struct WireCertificate {
    status: String,
    evidence: String,
    #[serde(default)]
    chain: Vec<WireCert>,
    chain_class: Option<WireChainClass>,
    size_bytes: Option<usize>,
}

impl WireCertificate {
    fn into_facts(self, field: &'static str) -> Result<CertificateFacts, EventError> {
        let chain: Vec<CertFacts> = self
            .chain
            .into_iter()
            .map(|c| c.into_facts(field))
            .collect::<Result<_, _>>()?;
        Ok(CertificateFacts {
            status: named(field, CertStatus::ALL, CertStatus::as_str, &self.status)?,
            evidence: named(field, Evidence::ALL, Evidence::as_str, &self.evidence)?,
            chain: chain.into(),
            chain_class: self.chain_class.map(|c| c.into_facts(field)).transpose()?,
            size_bytes: self.size_bytes,
        })
    }
}

#[derive(Deserialize)]
struct WireCert {
    subject: Option<String>,
    issuer: Option<String>,
    serial: Option<String>,
    not_before: Option<String>,
    not_after: Option<String>,
    validity: Option<String>,
    #[serde(default)]
    san_dns: Vec<String>,
    eku: Option<Vec<String>>,
    eku_class: Option<String>,
    #[serde(default)]
    sha256: String,
    key: Option<String>,
    trust: String,
    #[serde(default)]
    size_bytes: usize,
    parse_error: Option<String>,
}

impl WireCert {
    fn into_facts(self, field: &'static str) -> Result<CertFacts, EventError> {
        Ok(CertFacts {
            subject: self.subject,
            issuer: self.issuer,
            serial: self.serial,
            not_before: self.not_before,
            not_after: self.not_after,
            validity: named_opt(
                field,
                Validity::ALL,
                Validity::as_str,
                self.validity.as_deref(),
            )?,
            san_dns: self.san_dns,
            eku: self.eku,
            eku_class: named_opt(
                field,
                EkuClass::ALL,
                EkuClass::as_str,
                self.eku_class.as_deref(),
            )?,
            sha256: self.sha256,
            key: self.key,
            trust: one_of(field, TRUST, &self.trust)?,
            size_bytes: self.size_bytes,
            parse_error: self.parse_error,
            validity_window: None,
        })
    }
}

#[derive(Deserialize)]
struct WireChainClass {
    case: String,
    leaf_eku_class: Option<String>,
    #[serde(default)]
    openssl_client_ok: bool,
    #[serde(default)]
    gnutls_client_ok: bool,
    trust: String,
    trust_anchor: Option<String>,
    #[serde(default)]
    policy_flags: Vec<String>,
    days_until_leaf_expiry: Option<i64>,
}

impl WireChainClass {
    fn into_facts(self, field: &'static str) -> Result<ChainClass, EventError> {
        Ok(ChainClass {
            case: one_of(
                field,
                &[
                    "client_capable",
                    "server_only_leaf",
                    "dual_eku_leaf_under_server_only_intermediate",
                    "leaf_without_client_eku",
                    "unparsed",
                ],
                &self.case,
            )?,
            leaf_eku_class: named_opt(
                field,
                EkuClass::ALL,
                EkuClass::as_str,
                self.leaf_eku_class.as_deref(),
            )?,
            intermediates_eku: Vec::new(),
            openssl_client_ok: self.openssl_client_ok,
            gnutls_client_ok: self.gnutls_client_ok,
            trust: one_of(field, TRUST, &self.trust)?,
            trust_anchor: self.trust_anchor,
            root_store: ROOT_STORE,
            policy_flags: self.policy_flags,
            days_until_leaf_expiry: self.days_until_leaf_expiry,
        })
    }
}

#[derive(Deserialize)]
struct WireOutcome {
    result: String,
    alert: Option<WireAlert>,
    closed_by: Option<String>,
}

#[derive(Deserialize)]
struct WireAlert {
    level: Option<String>,
    description: Option<String>,
    code: Option<u8>,
    sender: String,
    #[serde(default)]
    encrypted: bool,
}

impl WireOutcome {
    fn into_facts(self) -> Result<Outcome, EventError> {
        let f = "tls.outcome";
        Ok(Outcome {
            result: named(f, OutcomeResult::ALL, OutcomeResult::as_str, &self.result)?,
            alert: self
                .alert
                .map(|a| -> Result<Alert, EventError> {
                    Ok(Alert {
                        level: a.level,
                        description: a.description,
                        code: a.code,
                        sender: one_of("tls.outcome.alert.sender", SIDES, &a.sender)?,
                        encrypted: a.encrypted,
                    })
                })
                .transpose()?,
            closed_by: one_of_opt("tls.outcome.closed_by", SIDES, self.closed_by.as_deref())?,
        })
    }
}
