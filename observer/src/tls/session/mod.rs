//! One TLS connection's analysis: bytes of each direction in stream order → records
//! ([`super::record`]) → handshake messages ([`super::handshake`]) → facts. It feeds the TLS 1.3
//! inference ([`super::inference`]), the outcome ([`super::outcome`]) and, with a key log, the
//! decryption ([`super::keys`]).
//!
//! Each direction goes through explicit phases ([`Phase`]): plaintext handshake, encrypted
//! handshake, finished. The session's fixed part is kept small (a busy MX has thousands of
//! handshakes in flight): hello facts as boxed slices, the CertificateRequest as its wire body,
//! alerts as numbers, decryption state in one box only when a key log is given; names and strings
//! are built by [`TlsSession::facts`].
//!
//! Files: this one holds the state and the record layer; `messages.rs` what each handshake message
//! changes; `reneg.rs` TLS ≤ 1.2 renegotiation; `report.rs` the facts; `kernel.rs` the hooks of
//! the eBPF record summaries.

mod kernel;
mod messages;
mod reneg;
mod report;

use super::cert_request::HeldCr;
use super::certificate::HeldCert;
use super::facts::Evidence;
use super::inference::{self, ClientRecord, Flights, ServerRecord};
use super::keys::{Decryption, Keys};
use super::names::ContentType;
use super::outcome::{Ending, Progress, RawAlert};
use super::record::{RecordReader, Step};
use super::Context;
use crate::anomaly::{Anomaly, AnomalySet};
use crate::Dir;

/// Records analysed per direction after the handshake before we call the session established.
const TAIL_RECORDS: u32 = 16;

/// Where one direction's handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Phase {
    /// Handshake messages in plaintext records.
    #[default]
    Plaintext,
    /// After ServerHello (TLS 1.3) or this side's ChangeCipherSpec (≤ 1.2): handshake messages
    /// are encrypted.
    Encrypted,
    /// This side's Finished was seen (≤ 1.2: its first encrypted handshake record) or decrypted.
    Finished,
}

/// One direction.
#[derive(Debug, Default)]
pub(super) struct Side {
    pub records: RecordReader,
    pub phase: Phase,
    /// A ChangeCipherSpec was seen (also a TLS 1.3 middlebox-compatibility one).
    ccs: bool,
    certificate_seen: bool,
    /// The record being read is an encrypted one to decrypt (key log).
    decrypting: bool,
    /// Records and application records seen (saturating).
    record_count: u16,
    app_records: u16,
    /// The part of a handshake message that arrived so far, when a message spans records.
    hs: Vec<u8>,
}

/// Application records reported per `feed` at most (a segment holds a few; a caller that feeds
/// more at once loses the rest for the mail inference, which then says `incomplete`).
const MAX_PENDING_APP_RECORDS: usize = 4096;

/// One TLS connection's analysis.
#[derive(Debug, Default)]
pub struct TlsSession {
    pub(super) sides: [Side; 2],
    client_hello: bool,
    server_hello: bool,
    server_kex_seen: bool,
    post_handshake_auth: bool,
    hrr: bool,
    resumed: Option<bool>,
    /// TLS ≤ 1.2: a renegotiation after the handshake.
    reneg: reneg::Reneg,
    /// Nothing more is needed from this connection (the outcome is known).
    done: bool,
    /// The connection still wants decrypted application data (keeps the analysis going).
    pub(super) want_app_data: bool,
    pub(super) decryption: Decryption,
    /// Negotiated version code (0x0303, 0x0304, ...).
    version: Option<u16>,
    pub(super) cipher: Option<u16>,
    ts_secs: i64,
    /// Server reply turns after the handshake: runs of server application records that follow a
    /// client application record (SMTP is lock step: one turn answers one command, or a
    /// pipelined group). TLS 1.3 session tickets sent before the client's first command are no
    /// turn.
    server_turns: u8,
    /// A client application record came since the server's last turn.
    client_spoke: bool,
    /// With keys: the server's first SMTP reply after TLS was 4xx/5xx.
    first_reply_refused: bool,
    /// Boxed: most sessions have none.
    cr: Option<Box<HeldCr>>,
    client_cert: Option<Box<HeldCert>>,
    server_cert: Option<Box<HeldCert>>,
    sni: Option<Box<str>>,
    alpn: Option<Box<str>>,
    offered_versions: Box<[u16]>,
    client_session_id: Box<[u8]>,
    /// JA4 and JA4S (fixed lengths: 36 and 25 ASCII characters).
    ja4: Option<[u8; 36]>,
    ja4s: Option<[u8; 25]>,
    pub(super) ending: Ending,
    pub(super) flights: Flights,
    weirds: AnomalySet,
    pub(super) keys: Option<Box<Keys>>,
}

impl TlsSession {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes this session holds of a record or handshake message still arriving (its buffers).
    pub fn buffered_bytes(&self) -> usize {
        self.sides
            .iter()
            .map(|s| s.records.buffered_bytes() + s.hs.capacity())
            .sum()
    }

    pub(super) fn side(&self, d: Dir) -> &Side {
        d.of(&self.sides)
    }

    pub(super) fn side_mut(&mut self, d: Dir) -> &mut Side {
        d.of_mut(&mut self.sides)
    }

    pub(super) fn weird(&mut self, w: Anomaly) {
        self.weirds.insert(w);
    }

    /// The anomalies seen.
    pub fn weirds(&self) -> AnomalySet {
        self.weirds
    }

    /// True once nothing more is needed from this connection (handshake outcome known).
    pub fn is_done(&self) -> bool {
        let mid_record = self
            .sides
            .iter()
            .any(|s| s.decrypting && s.records.in_body() && !s.records.lost());
        (self.done && !mid_record) || self.sides.iter().all(|s| s.records.lost())
    }

    /// Both directions lost record sync: nothing more can be read.
    pub fn lost_both(&self) -> bool {
        self.sides.iter().all(|s| s.records.lost())
    }

    /// A direction lost record sync (after a gap): the records after it are unknown.
    pub fn lost_any(&self) -> bool {
        self.sides.iter().any(|s| s.records.lost())
    }

    /// Decryption with the key log failed on some record (the decrypted dialogue is partial).
    pub fn decryption_failed(&self) -> bool {
        self.decryption == Decryption::Failed
    }

    pub fn saw_client_hello(&self) -> bool {
        self.client_hello
    }

    pub(super) fn tls13(&self) -> bool {
        self.version == Some(0x0304)
    }

    /// Whether both sides finished the handshake (as far as the wire shows).
    pub fn handshake_complete(&self) -> bool {
        if self.tls13() {
            self.flights.complete()
        } else {
            self.sides.iter().all(|s| s.phase == Phase::Finished)
        }
    }

    fn progress(&self) -> Progress {
        Progress {
            client_hello: self.client_hello,
            server_hello: self.server_hello,
            complete: self.handshake_complete(),
            tls13_client_flight_over: self.tls13() && self.flights.client_flight_over(),
            server_turns: self.server_turns,
            first_reply_refused: self.first_reply_refused,
            done: self.done,
        }
    }

    pub fn on_gap(&mut self, dir: Dir, len: u64) {
        let s = self.side_mut(dir);
        let was_lost = s.records.lost();
        if !s.records.on_gap(len) && !was_lost {
            self.weird(Anomaly::TlsLostSyncAfterGap);
        }
    }

    /// The TCP connection was closed (FIN or RST) by one side.
    pub fn on_close(&mut self, dir: Dir) {
        let p = self.progress();
        if self.ending.on_close(dir, &p) {
            self.done = true;
        }
    }

    fn on_alert(&mut self, dir: Dir, fatal_or_unknown: bool) {
        let p = self.progress();
        if self.ending.on_alert(dir, fatal_or_unknown, &p) {
            self.done = true;
        }
    }

    fn add_alert(&mut self, a: RawAlert) {
        if !self.ending.add_alert(a) {
            self.weird(Anomaly::TlsTooManyAlerts);
        }
    }

    fn push_encrypted_alert(&mut self, dir: Dir) {
        self.add_alert(RawAlert::encrypted(dir));
        self.on_alert(dir, true);
    }

    /// Bytes of one direction, in stream order. `ctx` holds what the sessions of a flow table
    /// share (key log, chain cache).
    pub fn feed(&mut self, ctx: &mut Context, dir: Dir, mut data: &[u8], ts_ns: i64) {
        self.ts_secs = ts_ns.div_euclid(1_000_000_000);
        if self.decryption == Decryption::Off && !ctx.keylog.is_empty() {
            self.decryption = Decryption::NoKey;
        }
        while !data.is_empty() && self.reading(dir) {
            match self.side_mut(dir).records.step(&mut data) {
                Step::Progress => {}
                Step::BadHeader => {
                    self.weird(Anomaly::TlsBadRecordHeader);
                    return;
                }
                Step::Header { ty, len } => {
                    self.record_start(ctx, dir, ty, len);
                    let empty = self.side_mut(dir).records.header_handled();
                    if empty
                        && matches!(
                            ContentType::from(ty),
                            ContentType::Handshake | ContentType::Alert
                        )
                    {
                        self.weird(Anomaly::TlsEmptyRecord);
                    }
                }
                Step::Body { ty, body } => self.record_body(ctx, dir, ty, &body),
            }
        }
    }

    /// Whether this direction's bytes are still read: in sync, and the outcome not known yet
    /// (or a record to decrypt is half read).
    fn reading(&self, dir: Dir) -> bool {
        // After the outcome is known, records are still followed (headers only, bodies skipped
        // unless decrypting): their sizes and order tell what happened to the mail.
        !self.side(dir).records.lost()
    }

    /// Decide from the header whether to read the body or skip it.
    fn record_start(&mut self, ctx: &mut Context, dir: Dir, ty: u8, len: usize) {
        if self.renegotiation_record(dir, ty, len) {
            return;
        }
        if self.done {
            self.tail_record(ctx, dir, ty, len);
            return;
        }
        let tls13 = self.tls13();
        let ct = ContentType::from(ty);
        let s = dir.of_mut(&mut self.sides);
        s.record_count = s.record_count.saturating_add(1);
        let plaintext_alert = ct == ContentType::Alert && len == 2;
        let plaintext = s.phase == Phase::Plaintext;
        let read = match ct {
            ContentType::ChangeCipherSpec => true,
            ContentType::Alert => plaintext_alert || plaintext,
            ContentType::Handshake => plaintext,
            _ => false,
        };
        s.decrypting = false;
        if read {
            s.records.read_body(len);
            return;
        }
        // Once the SMTP replies are known, only records that may be alerts or KeyUpdates are
        // decrypted (TLS 1.3: of their sizes; ≤1.2: alert type): message content is never
        // decrypted.
        let handshake_over = s.phase == Phase::Finished;
        let may_be_control = self.control_sized(dir, ct, len);
        let wanted = !handshake_over
            || self.want_app_data
            || may_be_control
            || self.post_handshake_wanted(dir);
        // (bookkeeping below as without keys)
        self.encrypted_body(dir, len, wanted);
        // An encrypted record. Only TLS 1.3 reads the lengths (≤ 1.2 spends no memory on them).
        let len16 = u16::try_from(len).unwrap_or(u16::MAX); // len <= MAX_RECORD
        if tls13 {
            self.flights.count(dir == Dir::ToServer, len16, self.cipher);
        }
        match (ct, tls13) {
            (ContentType::Alert, _) => self.push_encrypted_alert(dir),
            (ContentType::Handshake, false) => {
                // ≤1.2: the first encrypted handshake record after CCS is Finished.
                self.side_mut(dir).phase = Phase::Finished;
            }
            (ContentType::ApplicationData, false) if self.handshake_complete() => {
                self.count_app_record(ctx, dir, len);
            }
            (ContentType::ApplicationData, true) => self.tls13_encrypted_record(ctx, dir, len16),
            _ => {}
        }
        self.tail_check();
    }

    /// An application-data record after the handshake.
    fn count_app_record(&mut self, ctx: &mut Context, dir: Dir, len: usize) {
        self.app_record(ctx, dir, len);
        let s = self.side_mut(dir);
        s.app_records = s.app_records.saturating_add(1);
        match dir {
            Dir::ToServer => self.client_spoke = true,
            Dir::ToClient if self.client_spoke => {
                self.client_spoke = false;
                self.server_turns = self.server_turns.saturating_add(1);
            }
            Dir::ToClient => {}
        }
    }

    /// An application record after the handshake, for the caller's keyless mail inference.
    fn app_record(&self, ctx: &mut Context, dir: Dir, len: usize) {
        let (overhead, exact) = inference::app_overhead(self.tls13(), self.cipher);
        // a side that pads to blocks (mbedTLS) gives sizes only to a block
        let block = self.tls13() && self.flights.block_padded(dir == Dir::ToServer, self.cipher);
        let exact = exact && !block;
        // TLS 1.3 record padding learnt from the handshake flights (SunJSSE: 16 bytes a record)
        let overhead = if self.tls13() {
            overhead.saturating_add(self.flights.pad(dir == Dir::ToServer, self.cipher))
        } else {
            overhead
        };
        let plaintext =
            u32::try_from(len.saturating_sub(usize::from(overhead))).unwrap_or(u32::MAX);
        if ctx.app_records.len() < MAX_PENDING_APP_RECORDS {
            ctx.app_records.push(super::AppRecord {
                dir,
                plaintext,
                exact,
                block,
            });
        }
    }

    /// An encrypted record's body: read to be decrypted when it is `wanted` and we hold this
    /// direction's key, else skipped by length (the decryptor counts it, to stay in step).
    fn encrypted_body(&mut self, dir: Dir, len: usize, wanted: bool) {
        let dec = self
            .keys
            .as_mut()
            .and_then(|k| dir.of_mut(&mut k.dec).as_mut());
        let s = dir.of_mut(&mut self.sides);
        s.decrypting = false;
        match dec {
            Some(_) if wanted && len > 0 => {
                s.decrypting = true;
                s.records.read_body(len);
            }
            Some(d) => {
                d.skip();
                s.records.skip_body(len);
            }
            None => s.records.skip_body(len),
        }
    }

    /// A record after the outcome is known: the facts are final; application records are only
    /// reported (and decrypted when keys are held and the dialogue is followed), alerts end the
    /// mail dialogue.
    fn tail_record(&mut self, ctx: &mut Context, dir: Dir, ty: u8, len: usize) {
        let ct = ContentType::from(ty);
        let control = self.control_sized(dir, ct, len);
        let app = ct == ContentType::ApplicationData && !control;
        // KeyUpdates are decrypted whenever keys are held: the records after them need the
        // next key.
        let want = (self.want_app_data && app) || control || self.post_handshake_wanted(dir);
        self.encrypted_body(dir, len, want);
        if app {
            self.app_record(ctx, dir, len);
        }
    }

    /// Whether an encrypted record can be an alert or (TLS 1.3) a KeyUpdate, from its size: only
    /// these are decrypted once the SMTP dialogue is no longer followed.
    fn control_sized(&self, dir: Dir, ct: ContentType, len: usize) -> bool {
        if !self.tls13() {
            return ct == ContentType::Alert;
        }
        let client = dir == Dir::ToServer;
        ct == ContentType::ApplicationData
            && (self.flights.alert_sized(client, len, self.cipher)
                || self.flights.key_update_sized(client, len, self.cipher))
    }

    /// TLS 1.3: this side's handshake is over, so a handshake message from it now is a
    /// post-handshake one (RFC 8446 §4.6).
    pub(super) fn post_handshake(&self, dir: Dir) -> bool {
        self.tls13() && self.side(dir).phase == Phase::Finished
    }

    /// TLS 1.3 with keys, when the client offered post-handshake authentication: the server's
    /// records may hold a CertificateRequest (they are replies, never message content), and after
    /// one the client's hold its answer, up to its Finished.
    fn post_handshake_wanted(&self, dir: Dir) -> bool {
        self.tls13()
            && self.post_handshake_auth
            && match dir {
                Dir::ToClient => true,
                Dir::ToServer => self.keys.as_ref().is_some_and(|k| k.pha_pending),
            }
    }

    /// With keys: the server's first SMTP reply after TLS (from the decrypted dialogue).
    pub fn first_reply(&mut self, code: u16) {
        self.first_reply_refused = code >= 400;
    }

    pub(super) fn tail_check(&mut self) {
        if self.handshake_complete() && !self.app_decrypting() {
            // The outcome is settled once the server answered a second command (unless, with
            // keys, its first answer was a refusal: then its close is awaited).
            let settled = self.server_turns >= 2 && !self.first_reply_refused;
            let records =
                u32::from(self.sides[0].record_count) + u32::from(self.sides[1].record_count);
            if settled || records > 2 * TAIL_RECORDS + 16 {
                self.done = true;
            }
        }
    }

    /// A TLS 1.3 application-data record (the record-length inference reads it).
    fn tls13_encrypted_record(&mut self, ctx: &mut Context, dir: Dir, len: u16) {
        let client_keyed = self.dec(Dir::ToServer).is_some();
        match dir {
            Dir::ToServer => match self.flights.client_record(len, self.cipher, client_keyed) {
                ClientRecord::Flight => {}
                ClientRecord::FlightUnrecognised => {
                    self.weird(Anomaly::Tls13ClientFlightUnrecognised)
                }
                ClientRecord::Alert => self.push_encrypted_alert(dir),
                ClientRecord::KeyUpdate => {}
                ClientRecord::Application => {
                    self.count_app_record(ctx, Dir::ToServer, usize::from(len))
                }
            },
            Dir::ToClient => match self.flights.server_record(len, self.cipher, client_keyed) {
                ServerRecord::Flight => {}
                ServerRecord::Alert => self.push_encrypted_alert(dir),
                ServerRecord::KeyUpdate => {}
                ServerRecord::Other => {
                    self.count_app_record(ctx, dir, usize::from(len));
                    self.tail_check();
                }
            },
        }
    }

    fn record_body(&mut self, ctx: &mut Context, dir: Dir, ty: u8, body: &[u8]) {
        if self.side(dir).decrypting {
            self.side_mut(dir).decrypting = false;
            self.decrypted_record(ctx, dir, body);
            return;
        }
        match ContentType::from(ty) {
            ContentType::ChangeCipherSpec => self.change_cipher_spec(dir),
            ContentType::Alert => {
                if let [level, code] = *body {
                    self.add_alert(RawAlert {
                        sender: dir,
                        encrypted: false,
                        level: Some(level),
                        code: Some(code),
                    });
                    // close_notify (0) is a warning; user_canceled too.
                    self.on_alert(dir, level == 2 || code == 0);
                } else {
                    self.weird(Anomaly::TlsBadAlert);
                }
            }
            ContentType::Handshake => self.handshake_bytes(ctx, dir, body, Evidence::Plaintext),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::outcome::MAX_ALERTS;
    use super::*;

    #[test]
    fn bad_record_header_loses_sync_without_panic() {
        let mut t = TlsSession::new();
        t.feed(
            &mut Context::default(),
            Dir::ToServer,
            b"GET / HTTP/1.1\r\n",
            0,
        );
        assert!(t.weirds().contains(Anomaly::TlsBadRecordHeader));
        t.feed(&mut Context::default(), Dir::ToServer, b"more", 0);
    }

    #[test]
    fn huge_declared_handshake_is_refused() {
        let mut t = TlsSession::new();
        // record of 4 bytes with a handshake header claiming 16 MB
        t.feed(
            &mut Context::default(),
            Dir::ToClient,
            &[22, 3, 3, 0, 4, 11, 0xff, 0xff, 0xff],
            0,
        );
        assert!(t.weirds().contains(Anomaly::TlsHandshakeTooLarge));
    }

    /// A peer sending warning alerts without end: the session keeps the first few and counts
    /// the rest as a weird (its memory stays bounded).
    #[test]
    fn endless_warning_alerts_are_bounded() {
        let mut t = TlsSession::new();
        let mut ctx = Context::default();
        // user_canceled (90) at warning level: not an end of the session.
        let alert = [21, 3, 3, 0, 2, 1, 90];
        for _ in 0..10_000 {
            t.feed(&mut ctx, Dir::ToClient, &alert, 0);
        }
        assert_eq!(t.ending.alerts().len(), MAX_ALERTS);
        assert!(t.weirds().contains(Anomaly::TlsTooManyAlerts));
        assert!(!t.is_done());
    }
}
