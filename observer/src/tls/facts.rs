//! What the TLS analyzer reports: the event's `tls` object (docs/events.md). Plain data; built by
//! [`super::TlsSession::facts`].

use crate::x509;
use serde::Serialize;

named_enum! {
    /// How a fact about the handshake is known (contract).
    pub enum Evidence {
        Plaintext = "plaintext",
        Decrypted = "decrypted",
        Inferred = "inferred",
        Unknown = "unknown",
    }
}

named_enum! {
    /// One side's Certificate message.
    pub enum CertStatus {
        /// No Certificate message from this side.
        Absent = "absent",
        /// A Certificate message with no certificates (client declined a CertificateRequest).
        Empty = "empty",
        Presented = "presented",
        Unknown = "unknown",
    }
}

named_enum! {
    /// How the handshake ended (contract; rules in ARCHITECTURE.md).
    pub enum OutcomeResult {
        Established = "established",
        HandshakeFailed = "handshake_failed",
        ClosedAfterHandshake = "closed_after_handshake",
        Incomplete = "incomplete",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateRequestFacts {
    /// null when not known (TLS 1.3 without keys and no inference possible).
    pub present: Option<bool>,
    pub evidence: Evidence,
    pub ca_names: Vec<String>,
    pub signature_algorithms: Vec<String>,
    pub certificate_types: Vec<String>,
    pub oid_filters: Vec<String>,
    /// TLS 1.3 only: signature_algorithms_cert.
    pub signature_algorithms_cert: Vec<String>,
}

impl CertificateRequestFacts {
    /// No details: presence and evidence only.
    pub fn bare(present: Option<bool>, evidence: Evidence) -> Self {
        CertificateRequestFacts {
            present,
            evidence,
            ca_names: vec![],
            signature_algorithms: vec![],
            certificate_types: vec![],
            oid_filters: vec![],
            signature_algorithms_cert: vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateFacts {
    pub status: CertStatus,
    pub evidence: Evidence,
    pub chain: x509::cache::Chain,
    /// Whole-chain facts: client usability (OpenSSL / GnuTLS rules), trust, policy flags.
    pub chain_class: Option<x509::chain::ChainClass>,
    /// Bytes of certificate data in the message (or the inferred approximate size).
    pub size_bytes: Option<usize>,
}

impl CertificateFacts {
    /// No chain: status and evidence only (and the inferred size, if any).
    pub fn bare(status: CertStatus, evidence: Evidence, size_bytes: Option<usize>) -> Self {
        CertificateFacts {
            status,
            evidence,
            chain: Default::default(),
            chain_class: None,
            size_bytes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// `warning` / `fatal` / a number; null when encrypted.
    pub level: Option<String>,
    /// Name (e.g. `unsupported_certificate`) or the number; null when encrypted.
    pub description: Option<String>,
    pub code: Option<u8>,
    pub sender: &'static str,
    pub encrypted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub result: OutcomeResult,
    pub alert: Option<Alert>,
    /// Which side closed the TCP connection first (FIN/RST), if seen.
    pub closed_by: Option<&'static str>,
}

/// The event's `tls` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsFacts {
    pub version: Option<String>,
    pub cipher: Option<String>,
    /// The cipher suite code, `0x` + 4 lower-case hex digits (names are not unique across tools).
    pub cipher_id: Option<String>,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub offered_versions: Vec<String>,
    pub post_handshake_auth: bool,
    pub hello_retry_request: bool,
    pub resumed: Option<bool>,
    pub ja4: Option<String>,
    pub ja4s: Option<String>,
    pub certificate_request: CertificateRequestFacts,
    pub client_certificate: CertificateFacts,
    pub server_certificate: CertificateFacts,
    pub outcome: Outcome,
    /// Key-log decryption of this session: null (no key log given), `no_key` (none for this
    /// session), `failed` (a key did not decrypt: wrong key; facts fall back to inference), `ok`.
    pub decryption: Option<&'static str>,
    /// Server SMTP reply codes after TLS (needs keys; null otherwise). Filled by the connection.
    pub smtp_reply_after_tls: Option<crate::smtp::RepliesAfterTls>,
}
