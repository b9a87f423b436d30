//! TLS 1.3 without keys: what the encrypted record lengths say. This file is `docs/inference.md`
//! in code — each rule there is one arm or one method here, in the same order:
//!
//! 1. The client's flight ([`Flights::client_record`], [`Flights::server_record`]): the client's
//!    encrypted records up to the first whose length is the Finished record's (or the coalesced
//!    empty Certificate + Finished), or — for a coalescing client — everything it sent before the
//!    server spoke again; a record after a coalesced flight with a certificate that is too short
//!    for a CertificateVerify is the client's first application record
//!    ([`Flights::after_coalesced_flight`]). With the client's key the decrypted Finished ends it
//!    instead ([`Flights::client_finished_decrypted`]).
//! 2. The rules table ([`Flights::infer`]): `[F]`, `[25, F]`, `[F + 8]`, `[L > F + 8 + 200]`,
//!    `[C, V, F]`, PSK, anything else `unknown`.
//! 3. The cross-check with the server's flight (5 records with a CR, 4 without, for stacks that
//!    write one message per record).
//! 4. Outcome signals: a 19-byte (11 with CCM_8) record is an encrypted alert; any other server
//!    record after the client's flight means the server accepted the handshake
//!    ([`Flights::complete`]).
//!
//! Record lengths here are the record header's length field (inner plaintext + 1 + AEAD tag);
//! the lengths the rules compare with are in `lengths.rs`, the rules' unit tests in `tests.rs`.

use super::facts::{CertStatus, Evidence};

mod lengths;
pub use lengths::{alert_len, app_overhead, finished_len, key_update_len};

/// Client encrypted-record lengths kept for the inference (counts are kept in a `u8`).
pub const MAX_ENC_RECORDS: usize = 64;
const _: () = assert!(MAX_ENC_RECORDS < u8::MAX as usize);

/// A coalesced client flight at least this many bytes longer than an empty Certificate + Finished
/// holds a certificate (the smallest real certificates are ~300 bytes; a CertificateVerify ≤ 520).
const COALESCED_CERT_MIN: u16 = 200;

/// The shortest CertificateVerify plaintext: 4 (header) + 2 (scheme) + 2 (length) + a 64-byte
/// Ed25519 signature (every other scheme signs longer). A client record shorter than this plus
/// the record overhead cannot follow a non-empty Certificate.
const MIN_CERT_VERIFY: u16 = 4 + 2 + 2 + 64;

/// Record padding (RFC 8446 §5.4) a stack may add to every record, as far as the length rules
/// follow it: SunJSSE adds 16 bytes to each record; larger padding makes the flight `unknown`.
pub const MAX_PAD: u16 = 64;

/// Block padding (RFC 8446 §5.4 leaves the policy to the sender): every record's inner plaintext
/// (content + type byte) padded to a multiple of this. mbedTLS 3.x does it
/// (`MBEDTLS_SSL_CID_TLS1_3_PADDING_GRANULARITY`, 16 by default).
pub const BLOCK: u16 = 16;

/// A record's length when its inner plaintext of `inner` bytes (content + type byte) is padded to
/// a multiple of [`BLOCK`], with a 16-byte tag.
pub fn block_len(inner: u16) -> u16 {
    inner
        .div_ceil(BLOCK)
        .saturating_mul(BLOCK)
        .saturating_add(16)
}

/// The block-padded Finished record for a Finished record of `fin` bytes unpadded (16-byte tag).
fn block_fin(fin: u16) -> u16 {
    block_len(fin.saturating_sub(16))
}

/// What the inference says: CertificateRequest present, client certificate status, its
/// approximate size, and the evidence.
pub type Inferred = (Option<bool>, CertStatus, Option<usize>, Evidence);

const UNKNOWN: Inferred = (None, CertStatus::Unknown, None, Evidence::Unknown);

/// What a client application-data record is, for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRecord {
    /// Part of the client's handshake flight.
    Flight,
    /// The flight matched no pattern and is taken as over (weird
    /// `tls13_client_flight_unrecognised`).
    FlightUnrecognised,
    /// After the flight: an encrypted alert.
    Alert,
    /// After the flight: a record of a KeyUpdate's size (5 bytes of plaintext, which no SMTP
    /// command is).
    KeyUpdate,
    /// After the flight: application data.
    Application,
}

/// What a server application-data record is, for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRecord {
    /// Before the client's flight ended (the server's own flight).
    Flight,
    Alert,
    /// After the client's flight: a record of a KeyUpdate's size (no SMTP reply is 5 bytes).
    KeyUpdate,
    Other,
}

/// The record-length bookkeeping of one TLS 1.3 session.
#[derive(Debug, Default)]
pub struct Flights {
    /// Lengths of the client's first encrypted records ([`MAX_ENC_RECORDS`]).
    client_enc: Vec<u16>,
    /// Encrypted records the server sent (counted up to the same limit).
    server_enc: u8,
    /// Index in `client_enc` where the client's handshake flight ended (inclusive).
    client_flight_end: Option<u8>,
    /// Server encrypted records before the client's first one (its whole flight).
    server_flight_len: Option<u8>,
    /// The server sent a record other than an alert after the client's flight.
    server_spoke_after_client_flight: bool,
    /// The last encrypted record of the server's flight (its Finished when the server writes one
    /// message per record): its excess over the Finished length, or [`NOT_FINISHED`] when it is
    /// shorter or longer than any padded Finished. One byte: the session's fixed state is budgeted.
    server_last_excess: u8,
    /// Per-record padding of the client's records (≤ [`MAX_PAD`]), learnt from its flight (the
    /// Finished record's excess over the Finished length).
    client_pad: u8,
}

/// In `client_pad` (≤ [`MAX_PAD`] below it): the client pads to blocks of [`BLOCK`] instead (the
/// session's fixed state is budgeted: no byte of its own).
const CLIENT_BLOCK: u8 = 0x80;
const _: () = assert!(MAX_PAD < CLIENT_BLOCK as u16);

/// `server_last_excess` of a record that cannot be a (padded) Finished.
const NOT_FINISHED: u8 = u8::MAX;
const _: () = assert!(MAX_PAD < NOT_FINISHED as u16);

impl Flights {
    /// Counts an encrypted record of any type (all versions; only TLS 1.3 reads the counts).
    pub fn count(&mut self, client: bool, len: u16, cipher: Option<u16>) {
        if client {
            if self.client_enc.len() < MAX_ENC_RECORDS {
                self.client_enc.push(len);
            }
        } else if usize::from(self.server_enc) < MAX_ENC_RECORDS {
            self.server_enc += 1;
            if self.server_flight_len.is_none() {
                self.server_last_excess = finished_len(cipher)
                    .and_then(|fin| len.checked_sub(fin))
                    .filter(|p| *p <= MAX_PAD)
                    .and_then(|p| u8::try_from(p).ok())
                    .unwrap_or(NOT_FINISHED);
            }
        }
    }

    /// Per-record padding of the server's records: its Finished record's excess over the
    /// Finished length, when its flight is one message per record (≥ 4 records; the last is the
    /// Finished) and the excess is a padding at all (≤ [`MAX_PAD`]). 0 otherwise.
    pub fn server_pad(&self, cipher: Option<u16>) -> u16 {
        if self.server_block(cipher) {
            return 0;
        }
        match (self.server_flight_len, finished_len(cipher)) {
            (Some(n), Some(_)) if n >= 4 && self.server_last_is_finished() => {
                u16::from(self.server_last_excess)
            }
            _ => 0,
        }
    }

    /// Whether the server pads to blocks of [`BLOCK`]: its one-message-per-record flight (≥ 4
    /// records) ends with a block-padded Finished (11 bytes over an unpadded one for SHA-256 and
    /// SHA-384; no stack pads every record by a constant 11).
    fn server_block(&self, cipher: Option<u16>) -> bool {
        let (Some(n), Some(fin)) = (self.server_flight_len, finished_len(cipher)) else {
            return false;
        };
        n >= 4
            && cipher != Some(0x1305)
            && u16::from(self.server_last_excess) == block_fin(fin) - fin
    }

    /// Whether that side pads to blocks (its application records' sizes are known only to
    /// [`BLOCK`] bytes).
    pub fn block_padded(&self, client: bool, cipher: Option<u16>) -> bool {
        if client {
            self.client_pad == CLIENT_BLOCK
        } else {
            self.server_block(cipher)
        }
    }

    /// Whether the last record of the server's flight is its Finished (F + padding ≤ [`MAX_PAD`]).
    /// Not when a server that asks for no certificate sent its NewSessionTicket right after its
    /// Finished (RFC 8446 §4.6.1 allows it; Go does).
    fn server_last_is_finished(&self) -> bool {
        self.server_last_excess != NOT_FINISHED
    }

    /// What a one-message-per-record server flight says about a CertificateRequest: 4 records (EE,
    /// Certificate, CertificateVerify, Finished) none; 5 ending with the Finished one; 5 ending with
    /// something else (an early NewSessionTicket, only sent without a CR) none. None otherwise
    /// (a coalescing server).
    fn server_flight_says_cr(&self) -> Option<bool> {
        match self.server_flight_len? {
            4 => Some(false),
            5 => Some(self.server_last_is_finished()),
            _ => None,
        }
    }

    /// Per-record padding of `client`'s or the server's records, as learnt so far.
    pub fn pad(&self, client: bool, cipher: Option<u16>) -> u16 {
        if client {
            if self.client_pad == CLIENT_BLOCK {
                return 0;
            }
            u16::from(self.client_pad)
        } else {
            self.server_pad(cipher)
        }
    }

    /// Whether a record of `len` from that side can be an encrypted alert: 2 bytes + inner type +
    /// tag, unpadded or with the side's padding.
    pub fn alert_sized(&self, client: bool, len: usize, cipher: Option<u16>) -> bool {
        if self.block_padded(client, cipher) {
            // An alert, a KeyUpdate and an SMTP line of up to 15 bytes are all one block: only
            // the server's record right after the client's flight (its refusal) is taken for an
            // alert; later ones are data (the decryption, with keys, tells them apart).
            return !client
                && !self.server_spoke_after_client_flight
                && len == usize::from(block_len(3));
        }
        let base = alert_len(cipher);
        let pad = usize::from(self.pad(client, cipher));
        len == base || (pad > 0 && len == base + pad)
    }

    /// Whether a record of `len` from that side after the handshake can be a KeyUpdate (RFC 8446
    /// §4.6.3): 5 bytes + inner type + tag, unpadded or with the side's padding. SMTP has no
    /// 5-byte command or reply, so such a record is taken for one (with keys it is decrypted).
    pub fn key_update_sized(&self, client: bool, len: usize, cipher: Option<u16>) -> bool {
        if self.block_padded(client, cipher) {
            return false; // one block, as an alert or a short SMTP line
        }
        let base = key_update_len(cipher);
        let pad = usize::from(self.pad(client, cipher));
        len == base || (pad > 0 && len == base + pad)
    }

    /// Whether the client's records so far can be its whole flight (TLS 1.3: [Finished],
    /// [empty Certificate, Finished], [Certificate, CertificateVerify, Finished] or one coalesced
    /// record; each record with the same padding). A server record before that (Go sends its
    /// NewSessionTicket after the client's CertificateVerify, and its alert after an empty
    /// Certificate) does not end it.
    fn can_be_whole_flight(&self, fin: u16) -> bool {
        match *self.client_enc {
            [r] => r >= fin,
            // an empty Certificate and the Finished; or a second record shorter than any
            // CertificateVerify or Finished (≥ 72 + 17 bytes, ≥ F): application data after a
            // coalesced flight, the EHLO pipelined before the server's NewSessionTicket
            [a, b] => (b > a && b - a == fin - 25 && a >= 25) || b < fin,
            [a, _, c] => c >= fin && a > 25,
            _ => true,
        }
    }

    fn end_flight_at_last(&mut self) {
        let n = self.client_enc.len().saturating_sub(1);
        self.client_flight_end = Some(n as u8); // < MAX_ENC_RECORDS
    }

    /// A client application-data record (already counted). `keyed`: the client's handshake key is
    /// known, so its decrypted Finished ends the flight instead of the lengths.
    pub fn client_record(&mut self, len: u16, cipher: Option<u16>, keyed: bool) -> ClientRecord {
        if self.server_flight_len.is_none() {
            self.server_flight_len = Some(self.server_enc);
        }
        if self.client_flight_end.is_none() {
            if keyed {
                return ClientRecord::Flight;
            }
            let Some(fin) = finished_len(cipher) else {
                self.end_flight_at_last();
                return ClientRecord::FlightUnrecognised;
            };
            if self.after_coalesced_flight(len, fin, cipher) {
                // The client's first application record, written before the server answered
                // (BoringSSL): its coalesced flight was the record before.
                self.client_flight_end = Some(0);
                return ClientRecord::Application;
            }
            if len == fin || len == fin + 8 {
                self.end_flight_at_last();
            } else if self.block_padded_flight_end(len, fin, cipher) {
                self.client_pad = CLIENT_BLOCK;
                self.end_flight_at_last();
            } else if let Some(pad) = self.padded_flight_end(len, fin) {
                self.client_pad = u8::try_from(pad).unwrap_or(0); // ≤ MAX_PAD
                self.end_flight_at_last();
            } else if self.client_enc.len() >= 4 {
                // Pattern not recognised: take the flight as over, and say so.
                self.end_flight_at_last();
                return ClientRecord::FlightUnrecognised;
            }
            return ClientRecord::Flight;
        }
        if self.alert_sized(true, usize::from(len), cipher) {
            // An encrypted alert (close_notify or fatal); 1-2 byte application records do not
            // occur in SMTP, whose shortest line is 3 bytes.
            ClientRecord::Alert
        } else if self.key_update_sized(true, usize::from(len), cipher) {
            ClientRecord::KeyUpdate
        } else {
            ClientRecord::Application
        }
    }

    /// Whether the client's second record (of `len`, the last in `client_enc`) is application
    /// data after a coalesced flight: the first record is longer than any Certificate-less flight
    /// (so it carries a certificate), and a non-empty Certificate must be followed by a
    /// CertificateVerify, which no record this short can hold (nor a Finished). TLS 1.3 lets the
    /// client write application data right after its Finished, before the server speaks again.
    /// (A Finished cannot follow a non-empty Certificate either.)
    fn after_coalesced_flight(&self, len: u16, fin: u16, cipher: Option<u16>) -> bool {
        let overhead = u16::try_from(alert_len(cipher) - 2).unwrap_or(17);
        matches!(*self.client_enc, [a, b] if b == len
            && a > fin + 8 + COALESCED_CERT_MIN + MAX_PAD
            && len < MIN_CERT_VERIFY + overhead)
    }

    /// The client's record of `len` (the last in `client_enc`) ends a flight whose records all
    /// carry the same padding: the padding, or None. TLS 1.3 rules, whatever the padding:
    /// - `[25 + p, F + p]`: an empty Certificate and the Finished differ by F − 25;
    /// - `[C + p, V + p, F + p]` after a Certificate (first record longer than any padded
    ///   Finished): the third record is the Finished;
    /// - `[F + p]` when the server's one-message-per-record flight had no CR
    ///   ([`Flights::server_flight_says_cr`]): the client's flight is its Finished alone.
    fn padded_flight_end(&self, len: u16, fin: u16) -> Option<u16> {
        let pad = len.checked_sub(fin).filter(|p| *p <= MAX_PAD)?;
        match *self.client_enc {
            [a, b] if b == len && b > a && b - a == fin - 25 => Some(pad),
            [a, _, c] if c == len && a > fin + 8 + COALESCED_CERT_MIN + MAX_PAD => Some(pad),
            [r] if r == len && self.server_flight_says_cr() == Some(false) => Some(pad),
            _ => None,
        }
    }

    /// The client's record of `len` (the last in `client_enc`) ends a block-padded flight (every
    /// record a whole number of [`BLOCK`]s, the last a block-padded Finished): `[F]` (unless the
    /// server's flight showed a CR), `[empty Certificate, F]`, `[Certificate, CertificateVerify,
    /// F]`. An unpadded Finished is never a whole number of blocks (F ≡ 5 mod 16).
    fn block_padded_flight_end(&self, len: u16, fin: u16, cipher: Option<u16>) -> bool {
        let bf = block_fin(fin);
        if len != bf || cipher == Some(0x1305) || self.client_enc.iter().any(|r| r % BLOCK != 0) {
            return false;
        }
        match *self.client_enc {
            [_] => self.server_flight_says_cr() != Some(true),
            [a, _] => a == block_len(9),
            [a, _, _] => a > block_len(9),
            _ => false,
        }
    }

    /// A server application-data record. `client_keyed`: as in [`Flights::client_record`].
    pub fn server_record(
        &mut self,
        len: u16,
        cipher: Option<u16>,
        client_keyed: bool,
    ) -> ServerRecord {
        let whole = finished_len(cipher).is_none_or(|fin| self.can_be_whole_flight(fin));
        if self.client_flight_end.is_none() && !self.client_enc.is_empty() && !client_keyed && whole
        {
            // The server speaks again after the client's Finished (or alerts): the client's
            // flight was everything it sent so far (a coalescing stack's single record).
            self.end_flight_at_last();
        }
        let alert = self.alert_sized(false, usize::from(len), cipher);
        if self.client_flight_end.is_none() {
            // Still inside the client's flight: a NewSessionTicket (Go) is nothing yet, an alert
            // ends the handshake.
            return if alert && self.server_flight_len.is_some() {
                ServerRecord::Alert
            } else {
                ServerRecord::Flight
            };
        }
        if self.key_update_sized(false, usize::from(len), cipher) {
            return ServerRecord::KeyUpdate;
        }
        self.server_spoke_after_client_flight |= !alert;
        if alert {
            ServerRecord::Alert
        } else {
            ServerRecord::Other
        }
    }

    /// The client's Finished was decrypted: its flight ends with the last record.
    pub fn client_finished_decrypted(&mut self) {
        if self.client_flight_end.is_none() {
            self.end_flight_at_last();
        }
    }

    /// The client's flight is over (as far as the lengths or the key show).
    pub fn client_flight_over(&self) -> bool {
        self.client_flight_end.is_some()
    }

    /// Both sides finished: the client's flight is over and the server spoke after it.
    pub fn complete(&self) -> bool {
        self.client_flight_end.is_some() && self.server_spoke_after_client_flight
    }

    /// The rules of docs/inference.md, on the client's flight.
    pub fn infer(&self, resumed: bool, cipher: Option<u16>) -> Inferred {
        if resumed {
            // RFC 8446 §4.3.2: no CertificateRequest in PSK handshakes.
            return (Some(false), CertStatus::Absent, None, Evidence::Inferred);
        }
        let Some(fin) = finished_len(cipher) else {
            return UNKNOWN;
        };
        let Some(end) = self.client_flight_end else {
            return self.infer_cut_short(fin);
        };
        let end = usize::from(end);
        let flight = self.client_enc.get(..=end).unwrap_or(&self.client_enc);
        let inferred = match *flight {
            _ if self.client_pad == CLIENT_BLOCK => self.infer_block(flight, fin),
            _ if self.client_pad > 0 => self.infer_padded(flight, fin),
            [f] if f == fin => (Some(false), CertStatus::Absent, None, Evidence::Inferred),
            [25, f] if f == fin => (Some(true), CertStatus::Empty, Some(0), Evidence::Inferred),
            [f] if f == fin + 8 => (Some(true), CertStatus::Empty, Some(0), Evidence::Inferred),
            // A coalescing client (rustls): Certificate + CertificateVerify + Finished in one
            // record. Anything this much longer than an empty Certificate + Finished carries a
            // certificate; its size cannot be separated from the signature's.
            [l] if l > fin + 8 + COALESCED_CERT_MIN => {
                (Some(true), CertStatus::Presented, None, Evidence::Inferred)
            }
            [cert, _cv, f] if f == fin && cert > 25 => {
                // Certificate message: 4 header + 1 context + 3 list + per cert (3 + len + 2 ext).
                (
                    Some(true),
                    CertStatus::Presented,
                    Some(usize::from(cert).saturating_sub(25)),
                    Evidence::Inferred,
                )
            }
            _ => UNKNOWN,
        };
        self.cross_check(inferred)
    }

    /// A padded flight (padding `client_pad`, ended by [`Flights::padded_flight_end`]).
    fn infer_padded(&self, flight: &[u16], fin: u16) -> Inferred {
        let pad = u16::from(self.client_pad);
        match *flight {
            [f] if f == fin + pad => (Some(false), CertStatus::Absent, None, Evidence::Inferred),
            [_, f] if f == fin + pad => {
                (Some(true), CertStatus::Empty, Some(0), Evidence::Inferred)
            }
            [cert, _cv, f] if f == fin + pad && cert > 25 + pad => (
                Some(true),
                CertStatus::Presented,
                Some(usize::from(cert - 25 - pad)),
                Evidence::Inferred,
            ),
            _ => UNKNOWN,
        }
    }

    /// A block-padded flight (ended by [`Flights::block_padded_flight_end`]). The chain size is
    /// known to [`BLOCK`] bytes: the middle of the range is given.
    fn infer_block(&self, flight: &[u16], fin: u16) -> Inferred {
        let bf = block_fin(fin);
        match *flight {
            [f] if f == bf => (Some(false), CertStatus::Absent, None, Evidence::Inferred),
            [e, f] if f == bf && e == block_len(9) => {
                (Some(true), CertStatus::Empty, Some(0), Evidence::Inferred)
            }
            [cert, _cv, f] if f == bf && cert > block_len(9) => (
                Some(true),
                CertStatus::Presented,
                Some(usize::from(cert.saturating_sub(25 + BLOCK / 2))),
                Evidence::Inferred,
            ),
            _ => UNKNOWN,
        }
    }

    /// The handshake ended (server alert or close) before the client's flight did. What it had
    /// sent still says something: a first record shorter than any Finished can only be an empty
    /// Certificate (padded or not); one longer than any padded Finished or coalesced empty flight
    /// carries a certificate.
    fn infer_cut_short(&self, fin: u16) -> Inferred {
        let inferred = match self.client_enc.first() {
            Some(&r) if (25..fin).contains(&r) && r - 25 <= MAX_PAD => {
                (Some(true), CertStatus::Empty, Some(0), Evidence::Inferred)
            }
            Some(&r) if r > fin + 8 + COALESCED_CERT_MIN + MAX_PAD => {
                (Some(true), CertStatus::Presented, None, Evidence::Inferred)
            }
            _ => UNKNOWN,
        };
        self.cross_check(inferred)
    }

    fn cross_check(&self, inferred: Inferred) -> Inferred {
        // Cross-check with the server's flight where the stack writes one message per record
        // (OpenSSL, GnuTLS, Go, SunJSSE): EE, Certificate, CertificateVerify, Finished = 4; with a
        // CR 5; 5 ending with an early NewSessionTicket (Go) has none. Other counts (coalescing
        // stacks) say nothing; a contradiction makes the answer unknown.
        match (self.server_flight_says_cr(), inferred.0) {
            (Some(cr), Some(inferred_cr)) if cr != inferred_cr => UNKNOWN,
            _ => inferred,
        }
    }
}

#[cfg(test)]
mod tests;
