//! A session's facts as the event carries them, from what the wire showed, decryption or the
//! TLS 1.3 inference.

use super::super::cert_request::HeldCr;
use super::super::certificate::HeldCert;
use super::super::facts::{
    CertStatus, CertificateFacts, CertificateRequestFacts, Evidence, Outcome, TlsFacts,
};
use super::super::names::{cipher_name, is_grease, version_name};
use super::{Phase, TlsSession};

impl TlsSession {
    /// The facts, as complete as the wire allowed.
    pub fn facts(&self) -> TlsFacts {
        let tls13 = self.tls13();
        let mut cr = self.cr.as_deref().map_or(
            CertificateRequestFacts::bare(None, Evidence::Unknown),
            HeldCr::facts,
        );
        let mut client = self.client_cert.as_deref().map(HeldCert::facts);
        let mut server = self.server_cert.as_deref().map(HeldCert::facts);
        let [client_side, server_side] = &self.sides;
        if tls13 {
            let (present, status, size, ev) =
                self.flights.infer(self.resumed == Some(true), self.cipher);
            if self.cr.is_none() && server_side.phase == Phase::Finished {
                // The server's whole flight was decrypted: no CertificateRequest in it.
                cr.present = Some(false);
                cr.evidence = Evidence::Decrypted;
            } else if self.cr.is_none() {
                cr.present = present;
                cr.evidence = ev;
            }
            if client.is_none() && client_side.phase == Phase::Finished {
                client = Some(CertificateFacts::bare(
                    CertStatus::Absent,
                    Evidence::Decrypted,
                    None,
                ));
            }
            if client.is_none() {
                client = Some(CertificateFacts::bare(status, ev, size));
            }
            if self.post_handshake_auth && cr.evidence == Evidence::Inferred {
                // The client offered post-handshake authentication: without keys a later
                // CertificateRequest and the client's answer look like any application records.
                if cr.present == Some(false) {
                    cr = CertificateRequestFacts::bare(None, Evidence::Unknown);
                }
                if client
                    .as_ref()
                    .is_some_and(|c| c.status == CertStatus::Absent)
                {
                    client = Some(CertificateFacts::bare(
                        CertStatus::Unknown,
                        Evidence::Unknown,
                        None,
                    ));
                }
            }
        } else if self.server_hello {
            // ≤1.2: everything is in plaintext. We can say "absent" once the server finished its
            // part of the handshake (ServerHelloDone or CCS) without a CR.
            let server_flight_over = self.server_kex_seen || server_side.ccs;
            if self.cr.is_none() && server_flight_over && !server_side.records.lost() {
                cr.present = Some(false);
                cr.evidence = Evidence::Plaintext;
            }
            if client.is_none()
                && (client_side.ccs || client_side.phase == Phase::Finished)
                && !client_side.records.lost()
            {
                client = Some(CertificateFacts::bare(
                    CertStatus::Absent,
                    Evidence::Plaintext,
                    None,
                ));
            }
            self.renegotiation_facts(&mut cr, &mut client);
        }
        if server.is_none() && self.resumed == Some(true) {
            // A resumed handshake authenticates with the session: no server Certificate (≤ 1.2:
            // abbreviated handshake; TLS 1.3: PSK, RFC 8446 §4.4.2), as for the CR.
            let ev = if tls13 {
                cr.evidence
            } else {
                Evidence::Plaintext
            };
            server = Some(CertificateFacts::bare(CertStatus::Absent, ev, None));
        }
        let unknown = || CertificateFacts::bare(CertStatus::Unknown, Evidence::Unknown, None);
        let (result, alert) = self
            .ending
            .result(self.handshake_complete(), self.client_hello);
        TlsFacts {
            version: self.version.map(version_name),
            cipher: self.cipher.map(cipher_name),
            cipher_id: self.cipher.map(|c| format!("0x{c:04x}")),
            sni: self.sni.as_deref().map(String::from),
            alpn: self.alpn.as_deref().map(String::from),
            offered_versions: self
                .offered_versions
                .iter()
                .filter(|v| !is_grease(**v))
                .map(|v| version_name(*v))
                .collect(),
            post_handshake_auth: self.post_handshake_auth,
            hello_retry_request: self.hrr,
            resumed: self
                .resumed
                .or(if self.server_hello { Some(false) } else { None }),
            ja4: self.ja4.map(|a| String::from_utf8_lossy(&a).into_owned()),
            ja4s: self.ja4s.map(|a| String::from_utf8_lossy(&a).into_owned()),
            certificate_request: cr,
            client_certificate: client.unwrap_or_else(unknown),
            server_certificate: server.unwrap_or_else(unknown),
            outcome: Outcome {
                result,
                alert,
                closed_by: self.ending.closed_by(),
            },
            decryption: self.decryption.fact(),
            smtp_reply_after_tls: None,
        }
    }
}
