//! TLS 1.3 without keys: what the encrypted record lengths say. This file is `docs/inference.md`
//! in code — each rule there is one arm or one method here, in the same order:
//!
//! 1. The client's flight ([`Flights::client_record`], [`Flights::server_record`]): the client's
//!    encrypted records up to the first whose length is the Finished record's (or the coalesced
//!    empty Certificate + Finished), or — for a coalescing client — everything it sent before the
//!    server spoke again. With the client's key the decrypted Finished ends it instead
//!    ([`Flights::client_finished_decrypted`]).
//! 2. The rules table ([`Flights::infer`]): `[F]`, `[25, F]`, `[F + 8]`, `[L > F + 8 + 200]`,
//!    `[C, V, F]`, PSK, anything else `unknown`.
//! 3. The cross-check with the server's flight (5 records with a CR, 4 without, for stacks that
//!    write one message per record).
//! 4. Outcome signals: a 19-byte (11 with CCM_8) record is an encrypted alert; any other server
//!    record after the client's flight means the server accepted the handshake
//!    ([`Flights::complete`]).
//!
//! Record lengths here are the record header's length field (inner plaintext + 1 + AEAD tag).

use super::facts::{CertStatus, Evidence};

/// Client encrypted-record lengths kept for the inference (counts are kept in a `u8`).
pub const MAX_ENC_RECORDS: usize = 64;
const _: () = assert!(MAX_ENC_RECORDS < u8::MAX as usize);

/// A coalesced client flight at least this many bytes longer than an empty Certificate + Finished
/// holds a certificate (the smallest real certificates are ~300 bytes; a CertificateVerify ≤ 520).
const COALESCED_CERT_MIN: u16 = 200;

/// Record padding (RFC 8446 §5.4) a stack may add to every record, as far as the length rules
/// follow it: SunJSSE adds 16 bytes to each record; larger padding makes the flight `unknown`.
pub const MAX_PAD: u16 = 64;

/// Encrypted Finished record: hash-length verify_data + 4 (header) + 1 (inner type) + 16 (tag).
pub fn finished_len(cipher: Option<u16>) -> Option<u16> {
    match cipher? {
        0x1301 | 0x1303 | 0x1304 | 0x1305 => Some(32 + 21),
        0x1302 => Some(48 + 21),
        _ => None,
    }
}

/// Encrypted alert record: 2 bytes + inner type + AEAD tag (8 bytes for TLS_AES_128_CCM_8_SHA256).
pub fn alert_len(cipher: Option<u16>) -> usize {
    match cipher {
        Some(0x1305) => 2 + 1 + 8,
        _ => 2 + 1 + 16,
    }
}

/// Per-record overhead of an application-data record (inner content type, explicit nonce, AEAD
/// tag) and whether it is exact: AEAD suites yes (TLS 1.3 padding assumed absent); CBC suites
/// only a lower bound (IV 16 + MAC 20 + 1 byte of padding).
pub fn app_overhead(tls13: bool, cipher: Option<u16>) -> (u16, bool) {
    if tls13 {
        return (
            if cipher == Some(0x1305) {
                1 + 8
            } else {
                1 + 16
            },
            true,
        );
    }
    // TLS 1.2 AEAD suites by code (IANA registry): no name lookup per record
    match cipher.unwrap_or(0) {
        // CCM_8
        0xC0A0..=0xC0A3 | 0xC0A8..=0xC0AB | 0xC0AE | 0xC0AF => (8 + 8, true),
        // GCM (RSA/DH/DHE/PSK, ECDHE), CCM, ARIA-GCM, Camellia-GCM
        0x009C..=0x00AD
        | 0xC02B..=0xC032
        | 0xC09C..=0xC09F
        | 0xC0A4..=0xC0A7
        | 0xC0AC
        | 0xC0AD
        | 0xC050..=0xC071
            if is_gcm_or_ccm(cipher) =>
        {
            (8 + 16, true)
        }
        // ChaCha20-Poly1305
        0xCCA8..=0xCCAE => (16, true),
        _ => (16 + 20 + 1, false),
    }
}

/// ARIA/Camellia code points mix CBC and GCM suites: only the GCM ones (even codes from 0xC050).
fn is_gcm_or_ccm(cipher: Option<u16>) -> bool {
    match cipher.unwrap_or(0) {
        c @ 0xC050..=0xC071 => matches!(c, 0xC050..=0xC05F | 0xC06A..=0xC071),
        _ => true,
    }
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
    /// After the flight: application data.
    Application,
}

/// What a server application-data record is, for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRecord {
    /// Before the client's flight ended (the server's own flight).
    Flight,
    Alert,
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
        match (self.server_flight_len, finished_len(cipher)) {
            (Some(n), Some(_)) if n >= 4 && self.server_last_is_finished() => {
                u16::from(self.server_last_excess)
            }
            _ => 0,
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
            u16::from(self.client_pad)
        } else {
            self.server_pad(cipher)
        }
    }

    /// Whether a record of `len` from that side can be an encrypted alert: 2 bytes + inner type +
    /// tag, unpadded or with the side's padding.
    pub fn alert_sized(&self, client: bool, len: usize, cipher: Option<u16>) -> bool {
        let base = alert_len(cipher);
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
            if len == fin || len == fin + 8 {
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
        } else {
            ClientRecord::Application
        }
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
mod tests {
    use super::*;

    const AES128: Option<u16> = Some(0x1301);

    fn flight(lens: &[u16], server_flight: u8) -> Inferred {
        let mut f = Flights::default();
        for _ in 0..server_flight {
            f.count(false, 100, AES128);
        }
        for &l in lens {
            f.count(true, l, AES128);
            f.client_record(l, AES128, false);
        }
        f.server_record(200, AES128, false);
        f.infer(false, AES128)
    }

    /// The rules table of docs/inference.md, row by row.
    #[test]
    fn rules_table() {
        assert_eq!(flight(&[53], 4).0, Some(false));
        assert_eq!(flight(&[25, 53], 5).1, CertStatus::Empty);
        assert_eq!(flight(&[61], 1).1, CertStatus::Empty);
        assert_eq!(flight(&[900], 1).1, CertStatus::Presented);
        assert_eq!(
            flight(&[700, 80, 53], 5),
            (
                Some(true),
                CertStatus::Presented,
                Some(675),
                Evidence::Inferred
            )
        );
        assert_eq!(Flights::default().infer(true, AES128).0, Some(false));
        assert_eq!(flight(&[30, 40], 5), UNKNOWN);
        // cross-check with the server's flight
        assert_eq!(flight(&[53], 5), UNKNOWN);
        assert_eq!(flight(&[25, 53], 4), UNKNOWN);
    }

    const AES256: Option<u16> = Some(0x1302);

    /// Padded flights (SunJSSE adds 16 bytes to every record): docs/inference.md, "Padding".
    #[test]
    fn padded_flights() {
        let padded = |lens: &[u16], server_flight: u8| {
            let mut f = Flights::default();
            for _ in 0..server_flight {
                f.count(false, 100, AES256);
            }
            for &l in lens {
                f.count(true, l, AES256);
                f.client_record(l, AES256, false);
            }
            f.server_record(250, AES256, false);
            (f.infer(false, AES256), f.pad(true, AES256))
        };
        // no CR: the server's one-message-per-record flight of 4 says so; the Finished is 69 + 16
        assert_eq!(
            padded(&[85], 4),
            (
                (Some(false), CertStatus::Absent, None, Evidence::Inferred),
                16
            )
        );
        assert_eq!(
            padded(&[85], 1).0,
            UNKNOWN,
            "a coalescing server says nothing"
        );
        // empty Certificate and Finished: 25 + 16, 69 + 16
        assert_eq!(padded(&[41, 85], 5).0 .1, CertStatus::Empty);
        // Certificate, CertificateVerify, Finished, each + 16: the chain is 1010 - 25 - 16
        assert_eq!(
            padded(&[1010, 112, 85], 5),
            (
                (
                    Some(true),
                    CertStatus::Presented,
                    Some(969),
                    Evidence::Inferred
                ),
                16
            )
        );
        assert_eq!(padded(&[1010, 112, 85 + MAX_PAD + 1], 5).0, UNKNOWN);
    }

    /// Go sends its NewSessionTicket after the client's CertificateVerify and before its
    /// Finished, and its alert right after an empty Certificate.
    #[test]
    fn server_records_inside_the_client_flight() {
        let mut f = Flights::default();
        for _ in 0..5 {
            f.count(false, 100, AES128);
        }
        for l in [1010, 112] {
            f.count(true, l, AES128);
            assert_eq!(f.client_record(l, AES128, false), ClientRecord::Flight);
        }
        assert_eq!(f.server_record(1116, AES128, false), ServerRecord::Flight);
        assert!(!f.client_flight_over());
        f.count(true, 69, AES128);
        assert_eq!(f.client_record(69, AES128, false), ClientRecord::Flight);
        assert!(f.client_flight_over());
        assert_eq!(f.infer(false, AES128).1, CertStatus::Presented);
        assert_eq!(
            f.client_record(52, AES128, false),
            ClientRecord::Application
        );
        assert_eq!(f.client_record(35, AES128, false), ClientRecord::Alert);

        let mut f = Flights::default();
        for _ in 0..5 {
            f.count(false, 100, AES128);
        }
        f.count(true, 41, AES128);
        f.client_record(41, AES128, false);
        assert_eq!(f.server_record(19, AES128, false), ServerRecord::Alert);
        assert!(!f.client_flight_over());
        assert_eq!(f.infer(false, AES128).1, CertStatus::Empty, "cut short");
    }

    /// Go without client authentication: EE, Certificate, CertificateVerify, Finished and an early
    /// NewSessionTicket (RFC 8446 §4.6.1) — 5 records, no CR.
    #[test]
    fn early_ticket_in_the_server_flight() {
        let with_last = |last: u16, client: &[u16]| {
            let mut f = Flights::default();
            for l in [23, 980, 96, 53, last] {
                f.count(false, l, AES128);
            }
            for &l in client {
                f.count(true, l, AES128);
                f.client_record(l, AES128, false);
            }
            f.server_record(64, AES128, false);
            f.infer(false, AES128).0
        };
        assert_eq!(with_last(147, &[53]), Some(false), "early ticket");
        assert_eq!(
            with_last(53, &[53]),
            None,
            "5 records ending with Finished: a CR"
        );
        assert_eq!(with_last(147, &[69]), Some(false), "padded Finished, no CR");
    }

    /// A padded server (SunJSSE) alerts with 19 + its padding.
    #[test]
    fn padded_server_alert() {
        let mut f = Flights::default();
        for l in [65, 162, 996, 111, 85] {
            f.count(false, l, AES256);
        }
        f.count(true, 25, AES256);
        f.client_record(25, AES256, false);
        f.count(true, 69, AES256);
        f.client_record(69, AES256, false);
        assert_eq!(f.server_pad(AES256), 16);
        assert_eq!(f.server_record(35, AES256, false), ServerRecord::Alert);
        assert!(!f.complete());
    }

    #[test]
    fn alerts_and_completion() {
        let mut f = Flights::default();
        f.count(true, 53, AES128);
        assert_eq!(f.client_record(53, AES128, false), ClientRecord::Flight);
        assert!(f.client_flight_over() && !f.complete());
        assert_eq!(f.server_record(19, AES128, false), ServerRecord::Alert);
        assert!(!f.complete(), "an alert is not the server accepting");
        assert_eq!(f.server_record(200, AES128, false), ServerRecord::Other);
        assert!(f.complete());
        assert_eq!(f.client_record(19, AES128, false), ClientRecord::Alert);
        assert_eq!(
            f.client_record(30, AES128, false),
            ClientRecord::Application
        );
        assert_eq!(alert_len(Some(0x1305)), 11);
    }
}
