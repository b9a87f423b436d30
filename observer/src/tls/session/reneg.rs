//! TLS ≤ 1.2 renegotiation (RFC 5246 §7.4.1.1, RFC 5746): a second handshake inside the first's
//! encryption — every record of it, ChangeCipherSpec included, is protected with the current keys.
//! A server that asks for a client certificate only for some requests (IIS does; OpenSSL offers
//! `SSL_renegotiate` with `SSL_VERIFY_PEER`) sends its CertificateRequest there, where the wire
//! shows only record types and lengths.
//!
//! Without keys: a renegotiation — a client handshake record (its ClientHello) after the handshake,
//! answered by server handshake records — makes "no CertificateRequest" and "no client
//! certificate" `unknown`: what the first handshake showed is no longer the whole story (weird
//! `tls_renegotiation`). A HelloRequest the client ignores, or a ClientHello the server refuses
//! (an alert instead of its flight), changes nothing. With keys: the renegotiation's messages are decrypted (its
//! CertificateRequest and the client's Certificate are facts like the first handshake's), and each
//! side's ChangeCipherSpec moves that direction to the keys the key log gives for the new
//! ClientHello's random. A renegotiation in which the server changes keys first is abbreviated (the
//! client resumed): no CertificateRequest, no certificates, as in a resumed first handshake.

use super::super::decrypt::RecordDecryptor;
use super::super::facts::{CertStatus, CertificateFacts, CertificateRequestFacts, Evidence};
use super::super::hello::{read_client_hello, read_server_hello, ServerHello};
use super::super::keys::Decryption;
use super::super::names::{ContentType, HandshakeType};
use super::super::Context;
use super::TlsSession;
use crate::anomaly::Anomaly;
use crate::Dir;

/// What is known of a renegotiation: flags in two bytes (a handshaking session's state must stay
/// small; the new ClientHello's random, needed only with keys, is kept in [`Keys`]).
///
/// [`Keys`]: super::super::keys::Keys
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reneg(u16);

/// The client sent a handshake record after the handshake: a renegotiation began.
const CLIENT: u16 = 1;
/// The server answered it with handshake records (a refused one gets an alert instead).
const SERVER_FLIGHT: u16 = 1 << 1;
/// Its ChangeCipherSpecs so far, and the Finished after each (client's, server's).
const CCS: [u16; 2] = [1 << 2, 1 << 3];
const FIN: [u16; 2] = [1 << 4, 1 << 5];
/// Its server flight was decrypted to the ServerHelloDone: whether it asked is known.
const CR_KNOWN: u16 = 1 << 6;
/// Its client flight was decrypted to the ClientKeyExchange: whether a certificate came is known
/// (a Certificate comes before it).
const CERT_KNOWN: u16 = 1 << 7;
/// An earlier renegotiation of the session left these unknown.
const CR_OPEN: u16 = 1 << 8;
const CERT_OPEN: u16 = 1 << 9;

impl Reneg {
    fn has(self, f: u16) -> bool {
        self.0 & f == f
    }

    fn set(&mut self, f: u16) {
        self.0 |= f;
    }

    /// Whether a renegotiation may have carried a CertificateRequest nobody saw.
    fn cr_unknown(self) -> bool {
        self.has(CR_OPEN) || (self.has(SERVER_FLIGHT) && !self.has(CR_KNOWN))
    }

    /// Whether a renegotiation may have carried a client Certificate nobody saw.
    fn cert_unknown(self) -> bool {
        self.has(CERT_OPEN) || (self.has(SERVER_FLIGHT) && !self.has(CERT_KNOWN))
    }
}

impl TlsSession {
    /// A record after a TLS ≤ 1.2 handshake that belongs to a renegotiation: handshake records
    /// are read (decrypted when keys are held), a ChangeCipherSpec switches keys. False when the
    /// record is not one (left to the usual path).
    pub(super) fn renegotiation_record(&mut self, dir: Dir, ty: u8, len: usize) -> bool {
        let ct = ContentType::from(ty);
        if self.tls13()
            || !self.server_hello
            || !matches!(ct, ContentType::Handshake | ContentType::ChangeCipherSpec)
            || !self.handshake_complete()
        {
            return false;
        }
        self.weird(Anomaly::TlsRenegotiation);
        let s = self.side_mut(dir);
        s.record_count = s.record_count.saturating_add(1);
        if ct == ContentType::ChangeCipherSpec {
            // Protected with the old keys; its content is known (1).
            self.encrypted_body(dir, len, false);
            self.renegotiation_keys(dir);
            let r = &mut self.reneg;
            if dir == Dir::ToClient && r.has(CLIENT) && !r.has(CCS[0]) {
                // The server changed keys first: an abbreviated handshake (the client resumed a
                // session), which has no CertificateRequest and no certificates.
                r.set(CR_KNOWN | CERT_KNOWN);
            }
            r.set(*dir.of(&CCS));
            return true;
        }
        let r = &mut self.reneg;
        if dir == Dir::ToServer && (!r.has(CLIENT) || r.has(FIN[0] | FIN[1])) {
            // A (further) renegotiation begins with the client's ClientHello.
            let mut next = Reneg(CLIENT);
            if r.cr_unknown() {
                next.set(CR_OPEN);
            }
            if r.cert_unknown() {
                next.set(CERT_OPEN);
            }
            *r = next;
            if let Some(k) = self.keys.as_mut() {
                k.reneg_random = None;
            }
        } else if dir == Dir::ToClient && r.has(CLIENT) {
            r.set(SERVER_FLIGHT);
        }
        let r = &mut self.reneg;
        if r.has(*dir.of(&CCS)) {
            // The first handshake record after a side's ChangeCipherSpec is its Finished.
            r.set(*dir.of(&FIN));
        }
        self.encrypted_body(dir, len, true);
        true
    }

    /// A decrypted handshake message of a renegotiation. True when it was one (handled here).
    pub(super) fn renegotiation_message(
        &mut self,
        ctx: &Context,
        dir: Dir,
        ty: HandshakeType,
        msg: &[u8],
    ) -> bool {
        if !self.reneg.has(CLIENT) || self.tls13() {
            return false;
        }
        match (dir, ty) {
            (Dir::ToServer, HandshakeType::ClientHello) => {
                let random = read_client_hello(msg).and_then(|ch| ch.random);
                if let Some(k) = self.keys.as_mut() {
                    k.reneg_random = random;
                }
                true
            }
            (Dir::ToClient, HandshakeType::ServerHello) => {
                if let Some(ServerHello::Hello(sh)) = read_server_hello(msg) {
                    self.renegotiation_server_hello(ctx, sh.cipher, sh.random);
                }
                true
            }
            (Dir::ToClient, HandshakeType::ServerHelloDone) => {
                self.reneg.set(CR_KNOWN);
                true
            }
            (Dir::ToServer, HandshakeType::ClientKeyExchange) => {
                self.reneg.set(CERT_KNOWN);
                true
            }
            _ => false,
        }
    }

    /// The renegotiated keys, waiting for each side's ChangeCipherSpec: the key log's master
    /// secret for the new ClientHello's random.
    fn renegotiation_server_hello(
        &mut self,
        ctx: &Context,
        cipher: u16,
        server_random: Option<[u8; 32]>,
    ) {
        let (Some(cr), Some(sr)) = (
            self.keys.as_ref().and_then(|k| k.reneg_random),
            server_random,
        ) else {
            return;
        };
        let Some(master) = ctx.keylog.get(&cr).and_then(|s| s.master.as_deref()) else {
            return;
        };
        if let Some(k) = self.keys.as_mut() {
            k.pending12 = match RecordDecryptor::tls12_pair(cipher, master, &cr, &sr) {
                Some((c, s)) => [Some(c), Some(s)],
                None => [None, None],
            };
            k.master = Some(master.into());
        }
    }

    /// A renegotiation's ChangeCipherSpec: this direction's later records use the new keys. When
    /// the key log had none, this direction is no longer decrypted.
    fn renegotiation_keys(&mut self, dir: Dir) {
        let was = self.dec(dir).is_some();
        self.arm_tls12(dir);
        if was && self.dec(dir).is_none() {
            self.decryption = Decryption::Failed;
        }
    }

    /// The facts a renegotiation leaves open: without its decrypted flights, "no CR" and "no
    /// client certificate" from the first handshake are no longer known.
    pub(super) fn renegotiation_facts(
        &self,
        cr: &mut CertificateRequestFacts,
        client: &mut Option<CertificateFacts>,
    ) {
        if self.reneg.cr_unknown() && cr.present != Some(true) {
            *cr = CertificateRequestFacts::bare(None, Evidence::Unknown);
        }
        let open = client
            .as_ref()
            .is_none_or(|c| matches!(c.status, CertStatus::Absent | CertStatus::Empty));
        if self.reneg.cert_unknown() && open {
            *client = Some(CertificateFacts::bare(
                CertStatus::Unknown,
                Evidence::Unknown,
                None,
            ));
        }
    }
}
