//! The handshake messages of a session, plaintext or decrypted: ChangeCipherSpec, ClientHello,
//! ServerHello, Certificate, CertificateRequest, Finished — what each changes in the session.

use super::super::cert_request::{CrCheck, HeldCr};
use super::super::certificate::{read_certificate_list, HeldCert};
use super::super::compressed::decompress_certificate;
use super::super::facts::{CertStatus, Evidence};
use super::super::handshake;
use super::super::hello::{read_client_hello, read_server_hello, ServerHello};
use super::super::keys::Keys;
use super::super::names::HandshakeType;
use super::super::resumption::{resume_key, ResumeBy};
use super::super::Context;
use super::{Phase, TlsSession};
use crate::anomaly::Anomaly;
use crate::Dir;

impl TlsSession {
    /// ≤1.2 only: CCS switches this side to encryption. Before a ServerHello (a middlebox-compat
    /// CCS around a HelloRetryRequest) or in TLS 1.3 it changes nothing.
    pub(super) fn change_cipher_spec(&mut self, dir: Dir) {
        self.side_mut(dir).ccs = true;
        if !self.server_hello || self.tls13() {
            self.drop_pending12(dir);
            return;
        }
        self.arm_tls12(dir);
        let s = self.side_mut(dir);
        if s.phase == Phase::Plaintext {
            s.phase = Phase::Encrypted;
        }
        if dir == Dir::ToClient && !self.sides[1].certificate_seen && !self.server_kex_seen {
            self.resumed = Some(true);
        }
    }

    /// Handshake-layer bytes of one direction (plaintext or decrypted).
    pub(in crate::tls) fn handshake_bytes(
        &mut self,
        ctx: &mut Context,
        dir: Dir,
        data: &[u8],
        evidence: Evidence,
    ) {
        let mut held = std::mem::take(&mut self.side_mut(dir).hs);
        let r = handshake::reassemble(&mut held, data, |msg| {
            self.handshake_message(ctx, dir, msg, evidence);
            let s = self.side(dir);
            // TLS 1.3: anything after ServerHello in these bytes would be encrypted; never
            // happens with a conforming peer.
            !((evidence == Evidence::Plaintext && s.phase != Phase::Plaintext) || s.records.lost())
        });
        self.side_mut(dir).hs = held;
        if r.is_err() {
            self.side_mut(dir).records.lose();
            self.weird(Anomaly::TlsHandshakeTooLarge);
        }
    }

    fn handshake_message(&mut self, ctx: &mut Context, dir: Dir, msg: &[u8], evidence: Evidence) {
        let (Some(&ty), Some(body)) = (msg.first(), msg.get(4..)) else {
            return;
        };
        if evidence == Evidence::Decrypted
            && self.renegotiation_message(ctx, dir, HandshakeType::from(ty), msg)
        {
            return;
        }
        match (dir, HandshakeType::from(ty)) {
            (Dir::ToServer, HandshakeType::ClientHello) => self.client_hello(ctx, msg),
            (Dir::ToClient, HandshakeType::ServerHello) => self.server_hello(ctx, msg),
            (_, HandshakeType::Certificate) => self.certificate(ctx, dir, body, evidence),
            (_, HandshakeType::CompressedCertificate) if self.tls13() => {
                self.compressed_certificate(ctx, dir, body, evidence)
            }
            (Dir::ToClient, HandshakeType::CertificateRequest) => {
                if self.post_handshake(dir) {
                    // Post-handshake authentication (RFC 8446 §4.6.2): the client answers with
                    // Certificate, CertificateVerify and Finished under its application key.
                    if let Some(k) = self.keys.as_mut() {
                        k.pha_pending = true;
                    }
                }
                self.certificate_request(body, evidence)
            }
            (Dir::ToClient, HandshakeType::ServerKeyExchange | HandshakeType::ServerHelloDone) => {
                self.server_kex_seen = true
            }
            (_, HandshakeType::Finished) if evidence == Evidence::Decrypted => {
                self.decrypted_finished(ctx, dir)
            }
            (_, HandshakeType::KeyUpdate) if evidence == Evidence::Decrypted => {
                self.decrypted_key_update(dir)
            }
            (Dir::ToClient, HandshakeType::NewSessionTicket) if !self.tls13() => {
                self.new_session_ticket(ctx, body)
            }
            _ => {}
        }
    }

    fn client_hello(&mut self, ctx: &Context, msg: &[u8]) {
        if self.client_hello {
            return; // second ClientHello after HelloRetryRequest: keep the first for JA4
        }
        self.client_hello = true;
        let Some(ch) = read_client_hello(msg) else {
            self.weird(Anomaly::TlsBadClientHello);
            return;
        };
        if let (false, Some(random)) = (ctx.keylog.is_empty(), ch.random) {
            let mut keys = Keys::new(random);
            keys.offered = [
                ch.ticket
                    .as_deref()
                    .map(|t| resume_key(ResumeBy::Ticket, t)),
                (!ch.session_id.is_empty())
                    .then(|| resume_key(ResumeBy::SessionId, &ch.session_id)),
            ];
            self.keys = Some(Box::new(keys));
        }
        if ch.bad_extensions {
            self.weird(Anomaly::TlsBadExtensions);
        }
        self.client_session_id = ch.session_id;
        self.sni = ch.sni;
        self.offered_versions = ch.offered_versions;
        self.post_handshake_auth = ch.post_handshake_auth;
        self.ja4 = Some(ch.ja4);
    }

    fn server_hello(&mut self, ctx: &mut Context, msg: &[u8]) {
        let sh = match read_server_hello(msg) {
            None => {
                self.weird(Anomaly::TlsBadServerHello);
                return;
            }
            Some(ServerHello::RetryRequest) => {
                self.hrr = true;
                return;
            }
            Some(ServerHello::Hello(sh)) => sh,
        };
        self.server_hello = true;
        self.version = Some(sh.version);
        self.cipher = Some(sh.cipher);
        self.ja4s = Some(sh.ja4s);
        if let Some(alpn) = &sh.alpn {
            self.alpn = alpn.clone();
        }
        if sh.version == 0x0304 {
            self.resumed = Some(sh.psk);
            for s in &mut self.sides {
                s.phase = Phase::Encrypted;
            }
        }
        self.keys_for_server_hello(ctx, &sh);
        if sh.version != 0x0304
            && !sh.session_id.is_empty()
            && sh.session_id == std::mem::take(&mut self.client_session_id)
        {
            self.resumed = Some(true);
        }
    }

    fn certificate(&mut self, ctx: &mut Context, dir: Dir, body: &[u8], evidence: Evidence) {
        let tls13 = self.tls13();
        self.side_mut(dir).certificate_seen = true;
        let held = match read_certificate_list(body, tls13) {
            Err(_) => {
                self.weird(Anomaly::TlsBadCertificateMessage);
                self.unknown_cert(evidence)
            }
            Ok(list) => {
                if list.total > list.certs.len() {
                    self.weird(Anomaly::TlsChainTooLong);
                }
                let shared = ctx.chains.shared(&list.certs, self.ts_secs);
                if shared.0.iter().any(|c| c.parse_error.is_some()) {
                    self.weird(Anomaly::X509ParseError);
                }
                HeldCert {
                    status: if list.total == 0 {
                        CertStatus::Empty
                    } else {
                        CertStatus::Presented
                    },
                    evidence,
                    chain: Some(shared),
                    at: self.ts_secs,
                    size_bytes: Some(u32::try_from(list.size).unwrap_or(u32::MAX)),
                }
            }
        };
        self.hold_cert(dir, held);
    }

    /// A certificate message was sent whose contents are not known.
    fn unknown_cert(&self, evidence: Evidence) -> HeldCert {
        HeldCert {
            status: CertStatus::Unknown,
            evidence,
            chain: None,
            at: self.ts_secs,
            size_bytes: None,
        }
    }

    fn hold_cert(&mut self, dir: Dir, held: HeldCert) {
        match dir {
            Dir::ToServer => self.client_cert = Some(Box::new(held)),
            Dir::ToClient => self.server_cert = Some(Box::new(held)),
        }
    }

    /// RFC 8879: the Certificate it stands for, decompressed; one that does not decompress leaves
    /// the certificate `unknown` (not `absent`: one was sent).
    fn compressed_certificate(
        &mut self,
        ctx: &mut Context,
        dir: Dir,
        body: &[u8],
        evidence: Evidence,
    ) {
        match decompress_certificate(body) {
            Ok(cert) => self.certificate(ctx, dir, &cert, evidence),
            Err(_) => {
                self.weird(Anomaly::TlsBadCompressedCertificate);
                self.side_mut(dir).certificate_seen = true;
                let held = self.unknown_cert(evidence);
                self.hold_cert(dir, held);
            }
        }
    }

    fn certificate_request(&mut self, body: &[u8], evidence: Evidence) {
        let (held, check) = HeldCr::check(body, self.version, evidence);
        match check {
            CrCheck::Ok => {}
            CrCheck::TooManyCaNames => self.weird(Anomaly::TlsTooManyCaNames),
            CrCheck::Malformed(_) => self.weird(Anomaly::TlsBadCertificateRequest),
        }
        self.cr = Some(Box::new(held));
    }
}
