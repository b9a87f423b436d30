//! TLS handshake analyzer (sans-IO): both directions' bytes in, handshake facts out.
//!
//! Record layer across segments, handshake messages across records, per direction. Plaintext records
//! and handshake messages are parsed where they lie in the bytes fed; only one split across feeds is
//! gathered (one record at most, [`MAX_RECORD`]; one message, [`MAX_HANDSHAKE_MSG`]). Encrypted
//! records are *skipped by length* without buffering, and the client's record lengths are kept (first
//! [`MAX_ENC_RECORDS`]) for the TLS 1.3 inference. Handshake messages larger than
//! [`MAX_HANDSHAKE_MSG`] stop the analysis of that direction with a weird, never an allocation of the
//! claimed size. What all sessions of a flow table share (key log, chain cache) comes in as a
//! [`Context`] with every feed.
//!
//! ClientHello/ServerHello are parsed with `tls-parser`; CertificateRequest and Certificate are parsed
//! here because their TLS 1.3 shapes (context, per-entry extensions, `certificate_authorities` and
//! `oid_filters` extensions) are not covered by it.

pub mod decrypt;
pub mod keylog;

use crate::anomaly::{Anomaly, AnomalySet};
use crate::x509;
use crate::Dir;
use decrypt::RecordDecryptor;
use keylog::KeyLog;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// (Record lengths are kept in a `u16`.)
pub const MAX_RECORD: usize = 16384 + 2048;
pub const MAX_HANDSHAKE_MSG: usize = 256 * 1024;
/// (Counts of them are kept in a `u8`.)
pub const MAX_ENC_RECORDS: usize = 64;
// Record lengths and encrypted-record counts are kept in small integers.
const _: () = assert!(MAX_RECORD <= u16::MAX as usize && MAX_ENC_RECORDS < u8::MAX as usize);
/// A coalesced client flight at least this many bytes longer than an empty Certificate + Finished
/// holds a certificate (the smallest real certificates are ~300 bytes; a CertificateVerify ≤ 520).
const COALESCED_CERT_MIN: u16 = 200;
/// Certificates parsed per chain; the rest are counted (weird `tls_chain_too_long`).
pub const MAX_CHAIN: usize = 16;
/// CA names kept from a CertificateRequest; the rest are counted.
pub const MAX_CA_NAMES: usize = 256;
/// Alerts kept per session; the rest are counted (weird `tls_too_many_alerts`).
pub const MAX_ALERTS: usize = 8;
/// Records analysed per direction after the handshake before we call the session established.
const TAIL_RECORDS: u32 = 16;

const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    Plaintext,
    Decrypted,
    Inferred,
    Unknown,
}

impl Evidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Evidence::Plaintext => "plaintext",
            Evidence::Decrypted => "decrypted",
            Evidence::Inferred => "inferred",
            Evidence::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum CertStatus {
    /// No Certificate message from this side.
    Absent,
    /// A Certificate message with no certificates (client declined a CertificateRequest).
    Empty,
    Presented,
    Unknown,
}

impl CertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Absent => "absent",
            CertStatus::Empty => "empty",
            CertStatus::Presented => "presented",
            CertStatus::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeResult {
    Established,
    HandshakeFailed,
    ClosedAfterHandshake,
    Incomplete,
}

impl OutcomeResult {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeResult::Established => "established",
            OutcomeResult::HandshakeFailed => "handshake_failed",
            OutcomeResult::ClosedAfterHandshake => "closed_after_handshake",
            OutcomeResult::Incomplete => "incomplete",
        }
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

#[derive(Debug, Default)]
struct Side {
    hdr: [u8; 5],
    hdr_len: u8,
    cur_type: u8,
    lost: bool,
    encrypted: bool,
    /// ≤1.2: an encrypted handshake record (Finished) after CCS.
    finished: bool,
    ccs: bool,
    certificate_seen: bool,
    /// The record being buffered is an encrypted one to decrypt (key log).
    decrypting: bool,
    /// This side's Finished was decrypted (its handshake flight is fully known).
    dec_finished: bool,
    /// Body bytes of the current plaintext (or to-be-decrypted) record; 0 when none is open.
    body_need: u16,
    /// Encrypted body bytes still to skip.
    skip: u16,
    /// Records and application records seen (saturating).
    records: u16,
    app_records: u16,
    /// The part of a record that arrived so far, when a record spans segments (otherwise records
    /// are parsed where they lie in the segment, and this stays unallocated).
    body: Vec<u8>,
    /// The part of a handshake message that arrived so far, when a message spans records.
    hs: Vec<u8>,
}

/// A Certificate message as held until the event is built: the chain's facts are shared with the
/// chain cache (`x509::cache::Shared`) and judged at the message's time only then.
#[derive(Debug)]
struct HeldCert {
    status: CertStatus,
    evidence: Evidence,
    size_bytes: Option<u32>,
    chain: Option<x509::cache::Shared>,
    at: i64,
}

impl HeldCert {
    fn facts(&self) -> CertificateFacts {
        let (chain, chain_class) = match &self.chain {
            Some(shared) => x509::cache::retime(shared, self.at),
            None => Default::default(),
        };
        CertificateFacts {
            status: self.status,
            evidence: self.evidence,
            chain,
            chain_class,
            size_bytes: self.size_bytes.map(|n| n as usize),
        }
    }
}

/// Which wire shape a CertificateRequest body has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrShape {
    Tls13,
    /// TLS 1.2: with signature algorithms.
    Tls12,
    /// TLS ≤ 1.1: without.
    Tls11,
    /// Did not parse: present, no details.
    Malformed,
}

/// A CertificateRequest as held until the event: its body as received, checked when it came; the
/// names (CA distinguished names, algorithms) are built only for the event.
#[derive(Debug)]
struct HeldCr {
    evidence: Evidence,
    shape: CrShape,
    body: Box<[u8]>,
}

impl HeldCr {
    fn facts(&self) -> CertificateRequestFacts {
        let raw = match self.shape {
            CrShape::Tls13 => RawCr::parse13(&self.body),
            CrShape::Tls12 => RawCr::parse12(&self.body, true),
            CrShape::Tls11 => RawCr::parse12(&self.body, false),
            CrShape::Malformed => None,
        };
        let mut f = match raw {
            Some(r) => r.facts(),
            None => CertificateRequestFacts::bare(Some(true), self.evidence),
        };
        f.evidence = self.evidence;
        f
    }
}

/// An alert as seen: numbers, named only for the event.
#[derive(Debug, Clone, Copy)]
struct RawAlert {
    sender: Dir,
    encrypted: bool,
    /// Level and description; None while encrypted.
    level: Option<u8>,
    code: Option<u8>,
}

impl RawAlert {
    fn fatal(&self) -> bool {
        self.level == Some(2)
    }

    fn facts(&self) -> Alert {
        Alert {
            level: self.level.map(|l| match l {
                1 => "warning".to_string(),
                2 => "fatal".to_string(),
                n => n.to_string(),
            }),
            description: self.code.map(alert_name),
            code: self.code,
            sender: sender(self.sender),
            encrypted: self.encrypted,
        }
    }
}

/// Key-log decryption of one session. Boxed and only there when a key log is: most sessions have
/// none, and a handshaking connection's state must stay small (flow::connection::tests::flow_state_is_small).
#[derive(Debug)]
struct Keys {
    client_random: [u8; 32],
    /// TLS 1.2: decryptors waiting for each side's ChangeCipherSpec.
    pending12: [Option<RecordDecryptor>; 2],
    /// Record decryption per direction.
    dec: [Option<RecordDecryptor>; 2],
    /// Decrypted application data not yet taken by the connection (SMTP after TLS).
    app_plaintext: Vec<(Dir, Vec<u8>)>,
}

/// The `decryption` fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Decryption {
    /// No key log given.
    #[default]
    Off,
    NoKey,
    Failed,
    Ok,
}

/// What the TLS sessions of one flow table share: the key log and the certificate-chain cache.
/// Passed to [`TlsSession::feed`] rather than held by every session, whose own state stays small.
#[derive(Debug, Default)]
pub struct Context {
    pub keylog: KeyLog,
    pub chains: x509::cache::ChainCache,
}

/// One TLS connection's analysis. Its fixed part is kept small (a busy MX has thousands of
/// handshakes in flight): hello facts as boxed slices, the CertificateRequest as its wire body,
/// alerts as numbers, decryption state in one box only when a key log is given; names and
/// strings are built by [`TlsSession::facts`].
#[derive(Debug, Default)]
pub struct TlsSession {
    sides: [Side; 2],
    client_hello: bool,
    server_hello: bool,
    server_kex_seen: bool,
    post_handshake_auth: bool,
    hrr: bool,
    resumed: Option<bool>,
    closed_first: Option<Dir>,
    /// The server ended (alert or close) after the handshake, before the client's 2nd application record.
    server_ended_early: bool,
    /// The client ended the session first (alert or close) after the handshake: not a rejection.
    client_ended: bool,
    failed_before_complete: bool,
    done: bool,
    /// The connection still wants decrypted application data (keeps the analysis going).
    want_app_data: bool,
    decryption: Decryption,
    /// Negotiated version code (0x0303, 0x0304, ...).
    version: Option<u16>,
    cipher: Option<u16>,
    /// TLS 1.3: index in the client's encrypted records where its handshake flight ended (inclusive).
    client_flight_end: Option<u8>,
    /// TLS 1.3: server encrypted records before the client's first one (its whole flight).
    server_flight_len: Option<u8>,
    ts_secs: i64,
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
    alerts: Vec<RawAlert>,
    /// TLS 1.3: lengths of the client's first encrypted records ([`MAX_ENC_RECORDS`]), and how
    /// many the server sent (counted up to the same limit): the record-length inference.
    client_enc: Vec<u16>,
    server_enc: u8,
    /// TLS 1.3: the server sent a record other than an alert after the client's flight.
    server_spoke_after_client_flight: bool,
    weirds: AnomalySet,
    keys: Option<Box<Keys>>,
}

fn idx(d: Dir) -> usize {
    match d {
        Dir::ToServer => 0,
        Dir::ToClient => 1,
    }
}

fn sender(d: Dir) -> &'static str {
    match d {
        Dir::ToServer => "client",
        Dir::ToClient => "server",
    }
}

impl TlsSession {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decrypted application data since the last call (direction, plaintext).
    pub fn take_app_plaintext(&mut self) -> Vec<(Dir, Vec<u8>)> {
        self.keys
            .as_mut()
            .map(|k| std::mem::take(&mut k.app_plaintext))
            .unwrap_or_default()
    }

    /// Whether the connection still wants decrypted application data; when it stops wanting it,
    /// decryption stops (message content is never decrypted).
    pub fn want_app_data(&mut self, want: bool) {
        self.want_app_data = want;
        if !want {
            // From now on only records that can be alerts are decrypted.
            self.tail_check();
        }
    }

    fn app_decrypting(&self) -> bool {
        self.want_app_data
            && self
                .keys
                .as_ref()
                .is_some_and(|k| k.dec[1].is_some() || k.pending12[1].is_some())
    }

    /// This direction's record decryption, when keys are known.
    fn dec(&self, i: usize) -> Option<&RecordDecryptor> {
        self.keys.as_ref().and_then(|k| k.dec[i].as_ref())
    }

    /// The key log's secrets for this session.
    fn secrets<'c>(&self, ctx: &'c Context) -> Option<&'c keylog::Secrets> {
        ctx.keylog.get(&self.keys.as_ref()?.client_random)
    }

    /// Bytes this session holds of a record or handshake message still arriving (its buffers).
    pub fn buffered_bytes(&self) -> usize {
        self.sides
            .iter()
            .map(|s| s.body.capacity() + s.hs.capacity())
            .sum()
    }

    fn weird(&mut self, w: Anomaly) {
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
            .any(|s| s.decrypting && s.body_need > 0 && !s.lost);
        (self.done && !mid_record) || (self.sides[0].lost && self.sides[1].lost)
    }

    pub fn saw_client_hello(&self) -> bool {
        self.client_hello
    }

    pub fn on_gap(&mut self, dir: Dir, len: u64) {
        let s = &mut self.sides[idx(dir)];
        if s.hdr_len == 5 && s.skip as u64 >= len && s.body_need == 0 {
            // The hole lies inside an encrypted record body we were skipping anyway: still in sync.
            s.skip -= len as u16; // len <= skip
            return;
        }
        if !s.lost {
            s.lost = true;
            self.weird(Anomaly::TlsLostSyncAfterGap);
        }
    }

    /// The TCP connection was closed (FIN or RST) by one side.
    pub fn on_close(&mut self, dir: Dir) {
        if self.closed_first.is_none() {
            self.closed_first = Some(dir);
        }
        if dir == Dir::ToClient {
            self.server_end();
        } else if !self.handshake_complete() && self.server_hello {
            self.failed_before_complete = true;
        } else if self.handshake_complete() {
            self.client_ended = true;
        }
    }

    fn server_end(&mut self) {
        if self.handshake_complete() {
            if self.sides[0].app_records < 2 && !self.done && !self.client_ended {
                self.server_ended_early = true;
                self.done = true;
            }
        } else if self.client_hello {
            self.failed_before_complete = true;
            self.done = true;
        }
    }

    /// Bytes of one direction, in stream order. `ctx` holds what the sessions of a flow table
    /// share (key log, chain cache).
    pub fn feed(&mut self, ctx: &mut Context, dir: Dir, mut data: &[u8], ts_ns: i64) {
        self.ts_secs = ts_ns.div_euclid(1_000_000_000);
        if self.decryption == Decryption::Off && !ctx.keylog.is_empty() {
            self.decryption = Decryption::NoKey;
        }
        let i = idx(dir);
        while !data.is_empty()
            && !self.sides[i].lost
            && (!self.done || (self.sides[i].decrypting && self.sides[i].body_need > 0))
        {
            let s = &mut self.sides[i];
            if s.skip > 0 {
                let n = (s.skip as usize).min(data.len());
                s.skip -= n as u16; // n <= skip
                data = &data[n..];
                if s.skip == 0 {
                    s.hdr_len = 0;
                }
                continue;
            }
            if s.hdr_len < 5 {
                let have = usize::from(s.hdr_len);
                let n = (5 - have).min(data.len());
                s.hdr[have..have + n].copy_from_slice(&data[..n]);
                s.hdr_len += n as u8; // n <= 5
                data = &data[n..];
                if s.hdr_len < 5 {
                    continue;
                }
                let [ty, major, minor, l0, l1] = s.hdr;
                let len = usize::from(u16::from_be_bytes([l0, l1]));
                if !(20..=24).contains(&ty) || major != 3 || minor > 4 || len > MAX_RECORD {
                    s.lost = true;
                    self.weird(Anomaly::TlsBadRecordHeader);
                    return;
                }
                self.record_start(dir, ty, len);
                let s = &mut self.sides[i];
                if s.body_need == 0 && s.skip == 0 {
                    s.hdr_len = 0;
                    if ty == 22 || ty == 21 {
                        self.weird(Anomaly::TlsEmptyRecord);
                    }
                }
                continue;
            }
            // A plaintext (or to-be-decrypted) record body: parsed where it lies when the segment
            // holds all of it, else gathered in `body` across segments.
            let need = s.body_need as usize;
            let ty = s.cur_type;
            if s.body.is_empty() && data.len() >= need {
                let (body, rest) = data.split_at(need);
                data = rest;
                s.body_need = 0;
                s.hdr_len = 0;
                self.record_body(ctx, dir, ty, body);
                continue;
            }
            let n = (need - s.body.len()).min(data.len());
            s.body.extend_from_slice(&data[..n]);
            data = &data[n..];
            if s.body.len() == need {
                let body = std::mem::take(&mut s.body);
                s.body_need = 0;
                s.hdr_len = 0;
                self.record_body(ctx, dir, ty, &body);
            }
        }
    }

    fn tls13(&self) -> bool {
        self.version == Some(0x0304)
    }

    /// Decide from the header whether to buffer the body or skip it.
    fn record_start(&mut self, dir: Dir, ty: u8, len: usize) {
        let i = idx(dir);
        let tls13 = self.tls13();
        let s = &mut self.sides[i];
        s.records = s.records.saturating_add(1);
        s.cur_type = ty;
        let plaintext_alert = ty == 21 && len == 2;
        let buffer = match ty {
            20 => true,
            21 => plaintext_alert || !s.encrypted,
            22 => !s.encrypted,
            _ => false,
        };
        s.decrypting = false;
        if buffer {
            s.body_need = len as u16; // len <= MAX_RECORD < 2^16
            s.body.clear();
            return;
        }
        // Once the SMTP replies are known, only records that may be alerts are decrypted (TLS 1.3:
        // alert-sized; ≤1.2: alert type): message content is never decrypted.
        let alert_len = if self.cipher == Some(0x1305) { 11 } else { 19 };
        let may_be_alert = if tls13 {
            ty == 23 && len == alert_len
        } else {
            ty == 21
        };
        let handshake_over = s.dec_finished || (!tls13 && s.finished);
        let wanted = !handshake_over || self.want_app_data || may_be_alert;
        let dec = self.keys.as_mut().and_then(|k| k.dec[i].as_mut());
        let s = &mut self.sides[i];
        match dec {
            Some(_) if wanted && len > 0 => {
                // Encrypted and we hold the key: buffer it to decrypt (bookkeeping below as without keys).
                s.decrypting = true;
                s.body_need = len as u16;
                s.body.clear();
            }
            Some(d) => {
                d.skip();
                s.skip = len as u16;
            }
            None => s.skip = len as u16,
        }
        // An encrypted record.
        match dir {
            Dir::ToServer if self.client_enc.len() < MAX_ENC_RECORDS => {
                self.client_enc.push(len as u16); // len <= MAX_RECORD
            }
            Dir::ToClient if usize::from(self.server_enc) < MAX_ENC_RECORDS => self.server_enc += 1,
            _ => {}
        }
        match (ty, tls13) {
            (21, _) => self.push_encrypted_alert(dir),
            (22, false) => {
                // ≤1.2: the first encrypted handshake record after CCS is Finished.
                self.sides[i].finished = true;
            }
            (23, false) => {
                if self.handshake_complete() {
                    self.sides[i].app_records = self.sides[i].app_records.saturating_add(1);
                }
            }
            (23, true) => self.tls13_encrypted_record(dir, len),
            _ => {}
        }
        self.tail_check();
    }

    fn tail_check(&mut self) {
        if self.handshake_complete() && !self.app_decrypting() {
            let c = self.sides[0].app_records;
            let records = u32::from(self.sides[0].records) + u32::from(self.sides[1].records);
            if c >= 2 || records > 2 * TAIL_RECORDS + 16 {
                self.done = true;
            }
        }
    }

    fn tls13_finished_len(&self) -> Option<u16> {
        // Finished = hash-length verify_data + 4 (header) + 1 (inner type) + 16 (AEAD tag)
        match self.cipher? {
            0x1301 | 0x1303 | 0x1304 | 0x1305 => Some(32 + 21),
            0x1302 => Some(48 + 21),
            _ => None,
        }
    }

    /// Length of an encrypted alert record in TLS 1.3: 2 bytes + inner type + AEAD tag.
    fn tls13_alert_len(&self) -> usize {
        match self.cipher {
            Some(0x1305) => 2 + 1 + 8, // TLS_AES_128_CCM_8_SHA256
            _ => 2 + 1 + 16,
        }
    }

    fn tls13_encrypted_record(&mut self, dir: Dir, len: usize) {
        let alert_len = self.tls13_alert_len();
        match dir {
            Dir::ToServer => {
                if self.server_flight_len.is_none() {
                    self.server_flight_len = Some(self.server_enc);
                }
                if self.client_flight_end.is_none() && self.dec(0).is_some() {
                    // With the key, the decrypted Finished marks the end of the flight.
                } else if self.client_flight_end.is_none() {
                    let n = self.client_enc.len();
                    let fin = self.tls13_finished_len();
                    let coalesced_empty = fin.map(|f| f + 8);
                    if Some(len as u16) == fin || Some(len as u16) == coalesced_empty {
                        self.client_flight_end = Some(n.saturating_sub(1) as u8);
                    } else if fin.is_none() || n >= 4 {
                        // Pattern not recognised: assume the flight is over, say so.
                        self.weird(Anomaly::Tls13ClientFlightUnrecognised);
                        self.client_flight_end = Some(n.saturating_sub(1) as u8);
                    }
                } else if len == alert_len {
                    // An encrypted alert (close_notify or fatal); 1-2 byte application records do
                    // not occur in SMTP, whose shortest line is 3 bytes.
                    self.push_encrypted_alert(dir);
                } else {
                    self.sides[0].app_records = self.sides[0].app_records.saturating_add(1);
                }
            }
            Dir::ToClient => {
                let client_records = self.client_enc.len();
                if self.client_flight_end.is_none() && client_records > 0 && self.dec(0).is_none() {
                    // The server speaks again only after the client's Finished: the client's
                    // flight was everything it sent so far (a coalescing stack's single record).
                    self.client_flight_end = Some((client_records - 1) as u8);
                }
                if self.client_flight_end.is_some() {
                    self.server_spoke_after_client_flight |= len != 19;
                    if len == alert_len {
                        self.push_encrypted_alert(dir);
                    } else {
                        self.tail_check();
                    }
                }
            }
        }
    }

    fn push_encrypted_alert(&mut self, dir: Dir) {
        self.add_alert(RawAlert {
            sender: dir,
            encrypted: true,
            level: None,
            code: None,
        });
        self.on_alert(dir, true);
    }

    /// Keeps the first [`MAX_ALERTS`] alerts (a peer may send warnings without end).
    fn add_alert(&mut self, a: RawAlert) {
        if self.alerts.len() < MAX_ALERTS {
            self.alerts.push(a);
        } else {
            self.weird(Anomaly::TlsTooManyAlerts);
        }
    }

    /// Whether both sides finished the handshake (as far as the wire shows).
    pub fn handshake_complete(&self) -> bool {
        if self.tls13() {
            self.client_flight_end.is_some() && self.server_spoke_after_client_flight
        } else {
            self.sides[0].finished && self.sides[1].finished
        }
    }

    fn on_alert(&mut self, dir: Dir, fatal_or_unknown: bool) {
        if dir == Dir::ToClient {
            if self.tls13() && self.client_flight_end.is_some() && !self.handshake_complete() {
                // TLS 1.3: an alert right after the client's flight (e.g. certificate_required).
                self.failed_before_complete = true;
                self.done = true;
                return;
            }
            if fatal_or_unknown {
                self.server_end();
            }
        } else if fatal_or_unknown && !self.handshake_complete() {
            self.failed_before_complete = true;
        } else if self.handshake_complete() {
            self.client_ended = true;
        }
    }

    fn record_body(&mut self, ctx: &mut Context, dir: Dir, ty: u8, body: &[u8]) {
        let i = idx(dir);
        if self.sides[i].decrypting {
            self.sides[i].decrypting = false;
            self.decrypted_record(ctx, dir, body);
            return;
        }
        match ty {
            20 => {
                let tls13 = self.tls13();
                let pending = self.keys.as_mut().and_then(|k| k.pending12[i].take());
                let s = &mut self.sides[i];
                s.ccs = true;
                // ≤1.2 only: CCS switches to encryption. Before a ServerHello (a middlebox-compat
                // CCS around a HelloRetryRequest) or in TLS 1.3 it changes nothing.
                if self.server_hello && !tls13 {
                    if let Some(k) = self.keys.as_mut() {
                        k.dec[i] = pending;
                    }
                    s.encrypted = true;
                    if dir == Dir::ToClient
                        && self.server_hello
                        && !self.sides[1].certificate_seen
                        && !self.server_kex_seen
                    {
                        self.resumed = Some(true);
                    }
                }
            }
            21 => {
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
            22 => self.handshake_bytes(ctx, dir, body, Evidence::Plaintext),
            _ => {}
        }
    }

    /// Handshake-layer bytes of one direction: whole messages are handled where they lie; a
    /// message's start that continues in a later record is kept in `hs` (at most one message,
    /// [`MAX_HANDSHAKE_MSG`]).
    fn handshake_bytes(&mut self, ctx: &mut Context, dir: Dir, data: &[u8], evidence: Evidence) {
        let i = idx(dir);
        let held = std::mem::take(&mut self.sides[i].hs);
        if held.len() + data.len() > MAX_HANDSHAKE_MSG + 4 {
            self.sides[i].lost = true;
            self.weird(Anomaly::TlsHandshakeTooLarge);
            return;
        }
        let (used, rest) = if held.is_empty() {
            let used = self.drain_handshake(ctx, dir, data, evidence);
            (used, data.get(used..).unwrap_or(&[]))
        } else {
            let mut all = held;
            all.extend_from_slice(data);
            let used = self.drain_handshake(ctx, dir, &all, evidence);
            if used < all.len() {
                all.drain(..used);
                self.sides[i].hs = all;
            }
            return;
        };
        if used < data.len() && !self.sides[i].lost {
            self.sides[i].hs = rest.to_vec();
        }
    }

    /// Handles the whole handshake messages at the start of `hs`; returns the bytes they took
    /// (all of them when the direction is lost or switched to encryption).
    fn drain_handshake(
        &mut self,
        ctx: &mut Context,
        dir: Dir,
        hs: &[u8],
        evidence: Evidence,
    ) -> usize {
        let i = idx(dir);
        let mut off = 0;
        while hs.len() - off >= 4 {
            let len = (usize::from(hs[off + 1]) << 16)
                | (usize::from(hs[off + 2]) << 8)
                | usize::from(hs[off + 3]);
            if len > MAX_HANDSHAKE_MSG {
                self.sides[i].lost = true;
                self.weird(Anomaly::TlsHandshakeTooLarge);
                return hs.len();
            }
            if hs.len() - off < 4 + len {
                break;
            }
            let msg = &hs[off..off + 4 + len];
            self.handshake_message(ctx, dir, msg, evidence);
            off += 4 + len;
            if (evidence == Evidence::Plaintext && self.sides[i].encrypted) || self.sides[i].lost {
                // TLS 1.3: anything after ServerHello in this buffer would be encrypted; never happens
                // with a conforming peer.
                return hs.len();
            }
        }
        off
    }

    fn handshake_message(&mut self, ctx: &mut Context, dir: Dir, msg: &[u8], evidence: Evidence) {
        let ty = msg[0];
        let body = &msg[4..];
        match (dir, ty) {
            (Dir::ToServer, 1) => self.client_hello(ctx, msg),
            (Dir::ToClient, 2) => self.server_hello(ctx, msg),
            (_, 11) => self.certificate(ctx, dir, body, evidence),
            (Dir::ToClient, 13) => self.certificate_request(body, evidence),
            (Dir::ToClient, 12 | 14) => self.server_kex_seen = true,
            (_, 20) if evidence == Evidence::Decrypted => self.decrypted_finished(ctx, dir),
            _ => {}
        }
    }

    /// One decrypted record (TLS 1.3: inner content type; TLS 1.2: the record's type).
    fn decrypted_record(&mut self, ctx: &mut Context, dir: Dir, body: &[u8]) {
        let i = idx(dir);
        let header = self.sides[i].hdr;
        let Some(keys) = self.keys.as_mut() else {
            return;
        };
        let Some(dec) = keys.dec[i].as_mut() else {
            return;
        };
        let Some((inner, pt)) = dec.open(&header, body) else {
            // Wrong key (or a record we cannot decrypt): fall back to what the lengths say.
            keys.dec[i] = None;
            keys.pending12[i] = None;
            self.decryption = Decryption::Failed;
            self.weird(Anomaly::TlsDecryptFailed);
            return;
        };
        if self.decryption != Decryption::Failed {
            self.decryption = Decryption::Ok;
        }
        match inner {
            22 => self.handshake_bytes(ctx, dir, &pt, Evidence::Decrypted),
            21 if pt.len() == 2 => {
                // Fill in the alert the record bookkeeping recorded as encrypted.
                if let Some(a) = self
                    .alerts
                    .iter_mut()
                    .rev()
                    .find(|a| a.sender == dir && a.encrypted && a.code.is_none())
                {
                    a.level = Some(pt[0]);
                    a.code = Some(pt[1]);
                }
            }
            23 if self.want_app_data => {
                if keys.app_plaintext.len() < 64 {
                    keys.app_plaintext.push((dir, pt));
                }
            }
            _ => {}
        }
    }

    /// A decrypted Finished: TLS 1.3 switches this direction to its application traffic key.
    fn decrypted_finished(&mut self, ctx: &Context, dir: Dir) {
        let i = idx(dir);
        self.sides[i].dec_finished = true;
        if !self.tls13() {
            return;
        }
        if dir == Dir::ToServer && self.client_flight_end.is_none() {
            let n = self.client_enc.len().saturating_sub(1);
            self.client_flight_end = Some(n as u8); // < MAX_ENC_RECORDS
        }
        let secret = self.secrets(ctx).and_then(|k| {
            if dir == Dir::ToServer {
                k.client_traffic0.as_deref()
            } else {
                k.server_traffic0.as_deref()
            }
        });
        // Application keys: for the SMTP replies while wanted, and for alerts (never for content).
        let dec = match (secret, self.cipher) {
            (Some(sec), Some(c)) => RecordDecryptor::tls13(c, sec),
            _ => None,
        };
        if let Some(k) = self.keys.as_mut() {
            k.dec[i] = dec;
        }
    }

    fn client_hello(&mut self, ctx: &Context, msg: &[u8]) {
        if self.client_hello {
            return; // second ClientHello after HelloRetryRequest: keep the first for JA4
        }
        self.client_hello = true;
        let parsed = tls_parser::parse_tls_message_handshake(msg);
        let Ok((
            _,
            tls_parser::TlsMessage::Handshake(tls_parser::TlsMessageHandshake::ClientHello(ch)),
        )) = parsed
        else {
            self.weird(Anomaly::TlsBadClientHello);
            return;
        };
        self.client_session_id = ch.session_id.unwrap_or_default().into();
        if let (false, Ok(client_random)) = (ctx.keylog.is_empty(), <[u8; 32]>::try_from(ch.random))
        {
            self.keys = Some(Box::new(Keys {
                client_random,
                pending12: [None, None],
                dec: [None, None],
                app_plaintext: Vec::new(),
            }));
        }
        let ciphers: Vec<u16> = ch.ciphers.iter().map(|c| c.0).collect();
        let exts = raw_extensions(ch.ext.unwrap_or(&[]));
        let mut sig_algs: Vec<u16> = Vec::new();
        let mut first_alpn: Option<Vec<u8>> = None;
        for (ty, data) in &exts {
            match *ty {
                0 => self.sni = parse_sni(data).map(String::into_boxed_str),
                13 => sig_algs = u16_list(data.get(2..).unwrap_or(&[])),
                16 => first_alpn = parse_alpn(data).into_iter().next(),
                43 => {
                    self.offered_versions = data.get(1..).map(u16_list).unwrap_or_default().into()
                }
                49 => self.post_handshake_auth = true,
                _ => {}
            }
        }
        if exts.is_empty() && ch.ext.is_some_and(|e| !e.is_empty()) {
            self.weird(Anomaly::TlsBadExtensions);
        }
        let max_version = self
            .offered_versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(ch.version.0);
        self.ja4 = Some(ja4(
            max_version,
            self.sni.is_some(),
            &ciphers,
            &exts,
            &sig_algs,
            first_alpn.as_deref(),
        ));
    }

    fn server_hello(&mut self, ctx: &Context, msg: &[u8]) {
        let parsed = tls_parser::parse_tls_message_handshake(msg);
        let Ok((
            _,
            tls_parser::TlsMessage::Handshake(tls_parser::TlsMessageHandshake::ServerHello(sh)),
        )) = parsed
        else {
            self.weird(Anomaly::TlsBadServerHello);
            return;
        };
        let exts = raw_extensions(sh.ext.unwrap_or(&[]));
        if sh.random == HRR_RANDOM {
            self.hrr = true;
            return;
        }
        self.server_hello = true;
        let mut version = sh.version.0;
        let mut psk = false;
        for (ty, data) in &exts {
            match *ty {
                43 if data.len() == 2 => version = u16::from_be_bytes([data[0], data[1]]),
                41 => psk = true,
                16 => {
                    self.alpn = parse_alpn(data)
                        .into_iter()
                        .next()
                        .map(|a| String::from_utf8_lossy(&a).into())
                }
                _ => {}
            }
        }
        self.version = Some(version);
        self.cipher = Some(sh.cipher.0);
        self.ja4s = Some(ja4s(
            version,
            sh.cipher.0,
            &exts,
            self.alpn.as_deref().map(str::as_bytes),
        ));
        let secrets = self.secrets(ctx);
        if version == 0x0304 {
            self.resumed = Some(psk);
            self.sides[0].encrypted = true;
            self.sides[1].encrypted = true;
            if let Some((c, s)) = secrets.and_then(|k| {
                Some((
                    k.client_handshake.as_deref()?,
                    k.server_handshake.as_deref()?,
                ))
            }) {
                let dec = [
                    RecordDecryptor::tls13(sh.cipher.0, c),
                    RecordDecryptor::tls13(sh.cipher.0, s),
                ];
                let unsupported = dec[0].is_none();
                if let Some(k) = self.keys.as_mut() {
                    k.dec = dec;
                }
                if unsupported {
                    self.weird(Anomaly::TlsDecryptUnsupportedSuite);
                }
            }
        } else {
            if let (Some(master), Ok(sr)) = (
                secrets.and_then(|k| k.master.as_deref()),
                <[u8; 32]>::try_from(sh.random),
            ) {
                let pair = self.keys.as_mut().map(|k| {
                    let pair =
                        RecordDecryptor::tls12_pair(sh.cipher.0, master, &k.client_random, &sr);
                    let found = pair.is_some();
                    if let Some((c, s)) = pair {
                        k.pending12 = [Some(c), Some(s)];
                    }
                    found
                });
                if pair == Some(false) {
                    self.weird(Anomaly::TlsDecryptUnsupportedSuite);
                }
            }
            let sid = sh.session_id.unwrap_or(&[]);
            if !sid.is_empty() && sid == &*std::mem::take(&mut self.client_session_id) {
                self.resumed = Some(true);
            }
        }
    }

    fn certificate(&mut self, ctx: &mut Context, dir: Dir, body: &[u8], evidence: Evidence) {
        let tls13 = self.tls13();
        self.sides[idx(dir)].certificate_seen = true;
        let (certs, total, size) = match parse_certificate_list(body, tls13) {
            Some(x) => x,
            None => {
                self.weird(Anomaly::TlsBadCertificateMessage);
                self.set_cert(
                    dir,
                    HeldCert {
                        status: CertStatus::Unknown,
                        evidence,
                        chain: None,
                        at: self.ts_secs,
                        size_bytes: None,
                    },
                );
                return;
            }
        };
        if total > certs.len() {
            self.weird(Anomaly::TlsChainTooLong);
        }
        let shared = ctx.chains.shared(&certs, self.ts_secs);
        if shared.0.iter().any(|c| c.parse_error.is_some()) {
            self.weird(Anomaly::X509ParseError);
        }
        let status = if total == 0 {
            CertStatus::Empty
        } else {
            CertStatus::Presented
        };
        self.set_cert(
            dir,
            HeldCert {
                status,
                evidence,
                chain: Some(shared),
                at: self.ts_secs,
                size_bytes: Some(u32::try_from(size).unwrap_or(u32::MAX)),
            },
        );
    }

    fn set_cert(&mut self, dir: Dir, f: HeldCert) {
        match dir {
            Dir::ToServer => self.client_cert = Some(Box::new(f)),
            Dir::ToClient => self.server_cert = Some(Box::new(f)),
        }
    }

    fn certificate_request(&mut self, body: &[u8], evidence: Evidence) {
        let shapes: &[CrShape] = match self.version {
            Some(0x0304) => &[CrShape::Tls13],
            Some(0x0303) => &[CrShape::Tls12],
            Some(_) => &[CrShape::Tls11],
            None => &[CrShape::Tls12, CrShape::Tls11],
        };
        let parsed = shapes.iter().find_map(|&shape| {
            let raw = match shape {
                CrShape::Tls13 => RawCr::parse13(body),
                CrShape::Tls11 => RawCr::parse12(body, false),
                _ => RawCr::parse12(body, true),
            };
            raw.map(|r| (shape, r.ca_names_dropped()))
        });
        let shape = match parsed {
            Some((shape, dropped)) => {
                if dropped {
                    self.weird(Anomaly::TlsTooManyCaNames);
                }
                shape
            }
            None => {
                self.weird(Anomaly::TlsBadCertificateRequest);
                CrShape::Malformed
            }
        };
        let body = if shape == CrShape::Malformed {
            Box::default()
        } else {
            body.into()
        };
        self.cr = Some(Box::new(HeldCr {
            evidence,
            shape,
            body,
        }));
    }

    /// TLS 1.3 without keys: what the client's encrypted flight says about CR and the client cert.
    fn tls13_inference(&self) -> (Option<bool>, CertStatus, Option<usize>, Evidence) {
        if self.resumed == Some(true) {
            // RFC 8446 §4.3.2: no CertificateRequest in PSK handshakes.
            return (Some(false), CertStatus::Absent, None, Evidence::Inferred);
        }
        let (Some(end), Some(fin)) = (self.client_flight_end, self.tls13_finished_len()) else {
            return (None, CertStatus::Unknown, None, Evidence::Unknown);
        };
        let end = usize::from(end);
        let flight = self.client_enc.get(..=end).unwrap_or(&self.client_enc);
        let inferred = match flight {
            [f] if *f == fin => (Some(false), CertStatus::Absent, None, Evidence::Inferred),
            [25, f] if *f == fin => (Some(true), CertStatus::Empty, Some(0), Evidence::Inferred),
            [f] if *f == fin + 8 => (Some(true), CertStatus::Empty, Some(0), Evidence::Inferred),
            // A coalescing client (rustls): Certificate + CertificateVerify + Finished in one
            // record. Anything this much longer than an empty Certificate + Finished carries a
            // certificate; its size cannot be separated from the signature's.
            [l] if *l > fin + 8 + COALESCED_CERT_MIN => {
                (Some(true), CertStatus::Presented, None, Evidence::Inferred)
            }
            [cert, _cv, f] if *f == fin && *cert > 25 => {
                // Certificate message: 4 header + 1 context + 3 list + per cert (3 + len + 2 ext).
                (
                    Some(true),
                    CertStatus::Presented,
                    Some(usize::from(*cert).saturating_sub(25)),
                    Evidence::Inferred,
                )
            }
            _ => (None, CertStatus::Unknown, None, Evidence::Unknown),
        };
        // Cross-check with the server's flight where the stack writes one message per record
        // (OpenSSL, GnuTLS): EE, Certificate, CertificateVerify, Finished = 4; with a CR 5.
        // Other counts (coalescing stacks) say nothing; a contradiction makes the answer unknown.
        match (self.server_flight_len, inferred.0) {
            (Some(5), Some(false)) | (Some(4), Some(true)) => {
                (None, CertStatus::Unknown, None, Evidence::Unknown)
            }
            _ => inferred,
        }
    }

    /// The facts, as complete as the wire allowed.
    pub fn facts(&self) -> TlsFacts {
        let tls13 = self.tls13();
        let mut cr = self.cr.as_deref().map_or(
            CertificateRequestFacts::bare(None, Evidence::Unknown),
            HeldCr::facts,
        );
        let unknown_cert = CertificateFacts {
            status: CertStatus::Unknown,
            evidence: Evidence::Unknown,
            chain: Default::default(),
            chain_class: None,
            size_bytes: None,
        };
        let mut client = self.client_cert.as_deref().map(HeldCert::facts);
        let server = self.server_cert.as_deref().map(HeldCert::facts);
        if tls13 {
            let (present, status, size, ev) = self.tls13_inference();
            if self.cr.is_none() && self.sides[1].dec_finished {
                // The server's whole flight was decrypted: no CertificateRequest in it.
                cr.present = Some(false);
                cr.evidence = Evidence::Decrypted;
            } else if self.cr.is_none() {
                cr.present = present;
                cr.evidence = ev;
            }
            if client.is_none() && self.sides[0].dec_finished {
                client = Some(CertificateFacts {
                    status: CertStatus::Absent,
                    evidence: Evidence::Decrypted,
                    chain: Default::default(),
                    chain_class: None,
                    size_bytes: None,
                });
            }
            if client.is_none() {
                client = Some(CertificateFacts {
                    status,
                    evidence: ev,
                    chain: Default::default(),
                    chain_class: None,
                    size_bytes: size,
                });
            }
        } else if self.server_hello {
            // ≤1.2: everything is in plaintext. We can say "absent" once the server finished its
            // part of the handshake (ServerHelloDone or CCS) without a CR.
            let server_flight_over = self.server_kex_seen || self.sides[1].ccs;
            if self.cr.is_none() && server_flight_over && !self.sides[1].lost {
                cr.present = Some(false);
                cr.evidence = Evidence::Plaintext;
            }
            if client.is_none()
                && (self.sides[0].ccs || self.sides[0].finished)
                && !self.sides[0].lost
            {
                client = Some(CertificateFacts {
                    status: CertStatus::Absent,
                    evidence: Evidence::Plaintext,
                    chain: Default::default(),
                    chain_class: None,
                    size_bytes: None,
                });
            }
        }
        let server = server.or_else(|| {
            if !tls13 && self.resumed == Some(true) {
                Some(CertificateFacts {
                    status: CertStatus::Absent,
                    evidence: Evidence::Plaintext,
                    chain: Default::default(),
                    chain_class: None,
                    size_bytes: None,
                })
            } else {
                None
            }
        });
        let server = server.unwrap_or_else(|| unknown_cert.clone());
        let result = if self.handshake_complete() {
            if self.server_ended_early {
                OutcomeResult::ClosedAfterHandshake
            } else {
                OutcomeResult::Established
            }
        } else if self.failed_before_complete
            || self.alerts.iter().any(RawAlert::fatal)
            || (self.closed_first.is_some() && self.client_hello)
        {
            OutcomeResult::HandshakeFailed
        } else {
            OutcomeResult::Incomplete
        };
        let alert = self
            .alerts
            .iter()
            .find(|a| a.fatal() || a.encrypted)
            .or_else(|| self.alerts.first())
            .map(RawAlert::facts)
            .filter(|_| result != OutcomeResult::Established);
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
            client_certificate: client.unwrap_or(unknown_cert),
            server_certificate: server,
            outcome: Outcome {
                result,
                alert,
                closed_by: self.closed_first.map(sender),
            },
            decryption: match self.decryption {
                Decryption::Off => None,
                Decryption::NoKey => Some("no_key"),
                Decryption::Failed => Some("failed"),
                Decryption::Ok => Some("ok"),
            },
            smtp_reply_after_tls: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small codecs. All bounds-checked; `None` means malformed.

struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some((usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u8()?);
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
    fn vec24(&mut self) -> Option<&'a [u8]> {
        let n = self.u24()?;
        self.take(n)
    }
}

fn u16_list(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// Extensions as (type, data), in wire order. Stops at the first malformed one.
pub fn raw_extensions(b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut c = Cur(b);
    let mut out = Vec::new();
    while !c.0.is_empty() {
        let (Some(t), Some(d)) = (c.u16(), c.vec16()) else {
            break;
        };
        out.push((t, d));
    }
    out
}

fn parse_sni(d: &[u8]) -> Option<String> {
    let mut c = Cur(Cur(d).vec16()?);
    while !c.0.is_empty() {
        let ty = c.u8()?;
        let name = c.vec16()?;
        if ty == 0 {
            return Some(String::from_utf8_lossy(name).chars().take(255).collect());
        }
    }
    None
}

fn parse_alpn(d: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Some(list) = Cur(d).vec16() else {
        return out;
    };
    let mut c = Cur(list);
    while let Some(p) = c.vec8() {
        out.push(p.to_vec());
    }
    out
}

/// Certificate message body → (DER certificates (at most MAX_CHAIN), total count, bytes of cert data).
pub fn parse_certificate_list(body: &[u8], tls13: bool) -> Option<(Vec<&[u8]>, usize, usize)> {
    let mut c = Cur(body);
    if tls13 {
        c.vec8()?; // certificate_request_context
    }
    let mut list = Cur(c.vec24()?);
    let mut certs = Vec::new();
    let mut total = 0;
    let mut size = 0;
    while !list.0.is_empty() {
        let der = list.vec24()?;
        if tls13 {
            list.vec16()?; // per-entry extensions
        }
        total += 1;
        size += der.len();
        if certs.len() < MAX_CHAIN {
            certs.push(der);
        }
    }
    Some((certs, total, size))
}

/// A CertificateRequest body split into its lists, every list's structure checked (so building
/// the facts from it cannot fail). Nothing is allocated.
#[derive(Debug, Default, Clone, Copy)]
struct RawCr<'a> {
    certificate_types: &'a [u8],
    signature_algorithms: &'a [u8],
    signature_algorithms_cert: &'a [u8],
    /// DistinguishedName entries, each a 16-bit length and DER.
    ca_names: &'a [u8],
    /// TLS 1.3 oid_filters entries.
    oid_filters: &'a [u8],
}

/// Entries of a list of 16-bit-length-prefixed items (CA names); None if malformed.
fn vec16_items(b: &[u8]) -> Option<usize> {
    let mut c = Cur(b);
    let mut n = 0;
    while !c.0.is_empty() {
        c.vec16()?;
        n += 1;
    }
    Some(n)
}

impl<'a> RawCr<'a> {
    /// TLS ≤ 1.2 (RFC 5246 §7.4.4; without signature algorithms before 1.2).
    fn parse12(body: &'a [u8], with_sig_algs: bool) -> Option<Self> {
        let mut c = Cur(body);
        let mut r = RawCr {
            certificate_types: c.vec8()?,
            ..RawCr::default()
        };
        if with_sig_algs {
            r.signature_algorithms = c.vec16()?;
        }
        r.ca_names = c.vec16()?;
        vec16_items(r.ca_names)?;
        c.0.is_empty().then_some(r)
    }

    /// TLS 1.3 (RFC 8446 §4.3.2): context + extensions.
    fn parse13(body: &'a [u8]) -> Option<Self> {
        let mut c = Cur(body);
        c.vec8()?;
        let exts = c.vec16()?;
        if !c.0.is_empty() {
            return None;
        }
        let mut r = RawCr::default();
        for (ty, data) in raw_extensions(exts) {
            match ty {
                13 => r.signature_algorithms = Cur(data).vec16()?,
                50 => r.signature_algorithms_cert = Cur(data).vec16()?,
                47 => {
                    r.ca_names = Cur(data).vec16()?;
                    vec16_items(r.ca_names)?;
                }
                48 => {
                    r.oid_filters = Cur(data).vec16()?;
                    let mut l = Cur(r.oid_filters);
                    while !l.0.is_empty() {
                        l.vec8()?;
                        l.vec16()?;
                    }
                }
                _ => {}
            }
        }
        Some(r)
    }

    /// More CA names than are kept ([`MAX_CA_NAMES`]).
    fn ca_names_dropped(&self) -> bool {
        vec16_items(self.ca_names).unwrap_or(0) > MAX_CA_NAMES
    }

    fn facts(&self) -> CertificateRequestFacts {
        let mut names = Cur(self.ca_names);
        let mut ca_names = Vec::new();
        while let (Some(dn), true) = (names.vec16(), ca_names.len() < MAX_CA_NAMES) {
            ca_names.push(x509::dn_from_der(dn).unwrap_or_else(|| format!("#{}", hex::encode(dn))));
        }
        let mut oid_filters = Vec::new();
        let mut l = Cur(self.oid_filters);
        while let (Some(oid), Some(values)) = (l.vec8(), l.vec16()) {
            oid_filters.push(oid_filter_desc(oid, values));
        }
        let names = |b: &[u8]| u16_list(b).into_iter().map(sig_alg_name).collect();
        CertificateRequestFacts {
            present: Some(true),
            evidence: Evidence::Plaintext,
            ca_names,
            signature_algorithms: names(self.signature_algorithms),
            certificate_types: self
                .certificate_types
                .iter()
                .map(|&t| cert_type_name(t))
                .collect(),
            oid_filters,
            signature_algorithms_cert: names(self.signature_algorithms_cert),
        }
    }
}

/// TLS ≤ 1.2 CertificateRequest → (facts, whether CA names were dropped).
pub fn parse_cr12(body: &[u8], with_sig_algs: bool) -> Option<(CertificateRequestFacts, bool)> {
    RawCr::parse12(body, with_sig_algs).map(|r| (r.facts(), r.ca_names_dropped()))
}

/// TLS 1.3 CertificateRequest → (facts, whether CA names were dropped).
pub fn parse_cr13(body: &[u8]) -> Option<(CertificateRequestFacts, bool)> {
    RawCr::parse13(body).map(|r| (r.facts(), r.ca_names_dropped()))
}

/// `oid=values`, EKU OIDs named (e.g. `extendedKeyUsage=clientAuth`).
fn oid_filter_desc(oid: &[u8], values: &[u8]) -> String {
    // RFC 8446 says "DER-encoded": seen both as bare OID content and as a full TLV (tshark's form).
    let oid = match der_next(oid) {
        Some((0x06, content, rest)) if rest.is_empty() => content,
        _ => oid,
    };
    let name = der_oid_string(oid).unwrap_or_else(|| format!("#{}", hex::encode(oid)));
    if name == "2.5.29.37" {
        // values: DER SEQUENCE OF KeyPurposeId
        let mut purposes = Vec::new();
        if let Some(inner) = der_tlv(values, 0x30) {
            let mut rest = inner;
            while let Some((tag, v, r)) = der_next(rest) {
                if tag == 0x06 {
                    if let Some(s) = der_oid_string(v) {
                        purposes.push(eku_name(&s));
                    }
                }
                rest = r;
            }
        }
        return format!("extendedKeyUsage={}", purposes.join("+"));
    }
    format!("{name}=#{}", hex::encode(values))
}

fn eku_name(oid: &str) -> String {
    match oid {
        "1.3.6.1.5.5.7.3.1" => "serverAuth",
        "1.3.6.1.5.5.7.3.2" => "clientAuth",
        "1.3.6.1.5.5.7.3.4" => "emailProtection",
        "2.5.29.37.0" => "anyExtendedKeyUsage",
        o => return o.to_string(),
    }
    .to_string()
}

fn der_next(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let l0 = *b.get(1)?;
    let (len, hdr) = if l0 < 0x80 {
        (usize::from(l0), 2)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 3 {
            return None;
        }
        let mut len = 0usize;
        for k in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + k)?);
        }
        (len, 2 + n)
    };
    let v = b.get(hdr..hdr.checked_add(len)?)?;
    Some((tag, v, &b[hdr + len..]))
}

fn der_tlv(b: &[u8], tag: u8) -> Option<&[u8]> {
    let (t, v, _) = der_next(b)?;
    (t == tag).then_some(v)
}

/// Dotted form of DER OID content bytes.
pub fn der_oid_string(b: &[u8]) -> Option<String> {
    let first = *b.first()?;
    let mut parts = vec![u64::from(first / 40).min(2), 0];
    parts[1] = u64::from(first) - parts[0] * 40;
    let mut acc: u64 = 0;
    for &x in &b[1..] {
        acc = acc.checked_mul(128)? | u64::from(x & 0x7f);
        if x & 0x80 == 0 {
            parts.push(acc);
            acc = 0;
        }
    }
    Some(
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

// ---------------------------------------------------------------------------------------------
// Names. Unknown values stay numbers.

pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

pub fn version_name(v: u16) -> String {
    match v {
        0x0304 => "1.3".into(),
        0x0303 => "1.2".into(),
        0x0302 => "1.1".into(),
        0x0301 => "1.0".into(),
        0x0300 => "ssl3".into(),
        o => format!("0x{o:04x}"),
    }
}

pub fn cipher_name(id: u16) -> String {
    tls_parser::TlsCipherSuite::from_id(id)
        .map_or_else(|| format!("0x{id:04x}"), |c| c.name.to_string())
}

pub fn sig_alg_name(v: u16) -> String {
    match v {
        0x0401 => "rsa_pkcs1_sha256",
        0x0501 => "rsa_pkcs1_sha384",
        0x0601 => "rsa_pkcs1_sha512",
        0x0201 => "rsa_pkcs1_sha1",
        0x0403 => "ecdsa_secp256r1_sha256",
        0x0503 => "ecdsa_secp384r1_sha384",
        0x0603 => "ecdsa_secp521r1_sha512",
        0x0203 => "ecdsa_sha1",
        0x0804 => "rsa_pss_rsae_sha256",
        0x0805 => "rsa_pss_rsae_sha384",
        0x0806 => "rsa_pss_rsae_sha512",
        0x0807 => "ed25519",
        0x0808 => "ed448",
        0x0809 => "rsa_pss_pss_sha256",
        0x080a => "rsa_pss_pss_sha384",
        0x080b => "rsa_pss_pss_sha512",
        0x0402 => "dsa_sha256",
        0x0502 => "dsa_sha384",
        0x0602 => "dsa_sha512",
        0x0202 => "dsa_sha1",
        0x0301 => "rsa_sha224",
        0x0303 => "ecdsa_sha224",
        0x0302 => "dsa_sha224",
        _ => return format!("0x{v:04x}"),
    }
    .to_string()
}

pub fn cert_type_name(t: u8) -> String {
    match t {
        1 => "rsa_sign",
        2 => "dss_sign",
        3 => "rsa_fixed_dh",
        4 => "dss_fixed_dh",
        5 => "rsa_ephemeral_dh",
        6 => "dss_ephemeral_dh",
        20 => "fortezza_dms",
        64 => "ecdsa_sign",
        65 => "rsa_fixed_ecdh",
        66 => "ecdsa_fixed_ecdh",
        _ => return t.to_string(),
    }
    .to_string()
}

pub fn alert_name(code: u8) -> String {
    match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return code.to_string(),
    }
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// JA4 / JA4S (FoxIO JA4 specification, TCP).

fn ja4_version(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        _ => "00",
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// JA4's two ALPN characters: first and last character when both are alphanumeric, else the
/// first and last hex digit of the value; `00` without ALPN.
fn alpn_chars(a: Option<&[u8]>) -> [u8; 2] {
    match a {
        Some([f, .., l]) | Some([f @ l]) => {
            if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                [*f, *l]
            } else {
                [HEX[usize::from(f >> 4)], HEX[usize::from(l & 0xf)]]
            }
        }
        _ => *b"00",
    }
}

/// Two decimal digits of a count capped at 99.
fn two_digits(n: usize) -> [u8; 2] {
    let n = n.min(99) as u8; // <= 99
    [b'0' + n / 10, b'0' + n % 10]
}

/// JA4's hash of lists of values: SHA-256 of the text `0a0b,1301,...` (four lowercase hex digits
/// per value, comma-separated, lists joined by `_`), first 6 bytes as 12 hex digits;
/// `000000000000` when the text is empty. The text is hashed as it is written, never built.
fn hash12(lists: &[&[u16]]) -> [u8; 12] {
    if lists.iter().all(|l| l.is_empty()) {
        return *b"000000000000";
    }
    let mut h = Sha256::new();
    for (i, list) in lists.iter().enumerate() {
        if i > 0 {
            h.update(b"_");
        }
        for (j, x) in list.iter().enumerate() {
            let digits = [12, 8, 4, 0].map(|shift| HEX[usize::from((x >> shift) & 0xf)]);
            if j > 0 {
                h.update(b",");
            }
            h.update(digits);
        }
    }
    let d = h.finalize();
    let mut out = [0u8; 12];
    for (k, b) in d[..6].iter().enumerate() {
        out[2 * k] = HEX[usize::from(b >> 4)];
        out[2 * k + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

/// The values JA4 is made of, as the specification selects them from a ClientHello.
struct Ja4Lists {
    /// Cipher suites without GREASE, sorted.
    ciphers: Vec<u16>,
    /// Extensions without GREASE (SNI and ALPN included).
    ext_count: usize,
    /// Extensions without GREASE, SNI and ALPN, sorted.
    exts: Vec<u16>,
    /// Signature algorithms without GREASE, in wire order.
    sig_algs: Vec<u16>,
}

impl Ja4Lists {
    fn new(ciphers: &[u16], exts: &[(u16, &[u8])], sig_algs: &[u16]) -> Self {
        let mut cs: Vec<u16> = ciphers.iter().copied().filter(|c| !is_grease(*c)).collect();
        cs.sort_unstable();
        let ext_codes: Vec<u16> = exts
            .iter()
            .map(|e| e.0)
            .filter(|e| !is_grease(*e))
            .collect();
        let ext_count = ext_codes.len();
        let mut es: Vec<u16> = ext_codes
            .into_iter()
            .filter(|e| *e != 0x0000 && *e != 0x0010)
            .collect();
        es.sort_unstable();
        Ja4Lists {
            ciphers: cs,
            ext_count,
            exts: es,
            sig_algs: sig_algs
                .iter()
                .copied()
                .filter(|s| !is_grease(*s))
                .collect(),
        }
    }
}

/// JA4 (FoxIO, TCP): 36 ASCII characters, `a_b_c`.
pub fn ja4(
    version: u16,
    sni: bool,
    ciphers: &[u16],
    exts: &[(u16, &[u8])],
    sig_algs: &[u16],
    alpn: Option<&[u8]>,
) -> [u8; 36] {
    let l = Ja4Lists::new(ciphers, exts, sig_algs);
    let mut out = [b'_'; 36];
    out[0] = b't';
    out[1..3].copy_from_slice(ja4_version(version).as_bytes());
    out[3] = if sni { b'd' } else { b'i' };
    out[4..6].copy_from_slice(&two_digits(l.ciphers.len()));
    out[6..8].copy_from_slice(&two_digits(l.ext_count));
    out[8..10].copy_from_slice(&alpn_chars(alpn));
    out[11..23].copy_from_slice(&hash12(&[&l.ciphers]));
    let c: &[&[u16]] = if l.exts.is_empty() {
        &[]
    } else if l.sig_algs.is_empty() {
        &[&l.exts]
    } else {
        &[&l.exts, &l.sig_algs]
    };
    out[24..36].copy_from_slice(&hash12(c));
    out
}

/// JA4S (FoxIO, TCP): 25 ASCII characters, `a_b_c`.
pub fn ja4s(version: u16, cipher: u16, exts: &[(u16, &[u8])], alpn: Option<&[u8]>) -> [u8; 25] {
    let codes: Vec<u16> = exts.iter().map(|e| e.0).collect();
    let mut out = [b'_'; 25];
    out[0] = b't';
    out[1..3].copy_from_slice(ja4_version(version).as_bytes());
    out[3..5].copy_from_slice(&two_digits(codes.len()));
    out[5..7].copy_from_slice(&alpn_chars(alpn));
    for (k, shift) in [12, 8, 4, 0].into_iter().enumerate() {
        out[8 + k] = HEX[usize::from((cipher >> shift) & 0xf)];
    }
    out[13..25].copy_from_slice(&hash12(&[&codes]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JA4/JA4S written as the specification reads (format strings, text built then hashed):
    /// the reference the allocation-free versions are checked against.
    mod reference {
        use super::super::{ja4_version, Ja4Lists};
        use sha2::{Digest, Sha256};

        fn alpn_chars(a: Option<&[u8]>) -> String {
            match a {
                Some(a) if !a.is_empty() => {
                    let (f, l) = (a[0], a[a.len() - 1]);
                    if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                        format!("{}{}", f as char, l as char)
                    } else {
                        let h = hex::encode(a);
                        format!("{}{}", &h[..1], &h[h.len() - 1..])
                    }
                }
                _ => "00".into(),
            }
        }

        pub fn hash12(s: &str) -> String {
            if s.is_empty() {
                return "000000000000".into();
            }
            hex::encode(&Sha256::digest(s.as_bytes())[..6])
        }

        pub fn hex_list(v: &[u16]) -> String {
            v.iter()
                .map(|x| format!("{x:04x}"))
                .collect::<Vec<_>>()
                .join(",")
        }

        /// (Selecting the values is shared, `Ja4Lists`; what is checked here is the text
        /// and its hashing.)
        pub fn ja4(
            version: u16,
            sni: bool,
            ciphers: &[u16],
            exts: &[(u16, &[u8])],
            sig_algs: &[u16],
            alpn: Option<&[u8]>,
        ) -> String {
            let l = Ja4Lists::new(ciphers, exts, sig_algs);
            let a = format!(
                "t{}{}{:02}{:02}{}",
                ja4_version(version),
                if sni { 'd' } else { 'i' },
                l.ciphers.len().min(99),
                l.ext_count.min(99),
                alpn_chars(alpn)
            );
            let b = hash12(&hex_list(&l.ciphers));
            let c_in = if l.exts.is_empty() {
                String::new()
            } else if l.sig_algs.is_empty() {
                hex_list(&l.exts)
            } else {
                format!("{}_{}", hex_list(&l.exts), hex_list(&l.sig_algs))
            };
            format!("{a}_{b}_{}", hash12(&c_in))
        }

        pub fn ja4s(
            version: u16,
            cipher: u16,
            exts: &[(u16, &[u8])],
            alpn: Option<&[u8]>,
        ) -> String {
            let codes: Vec<u16> = exts.iter().map(|e| e.0).collect();
            format!(
                "t{}{:02}{}_{:04x}_{}",
                ja4_version(version),
                codes.len().min(99),
                alpn_chars(alpn),
                cipher,
                hash12(&hex_list(&codes))
            )
        }
    }

    #[test]
    fn hash12_as_ja4_writes_it() {
        assert_eq!(&hash12(&[]), b"000000000000");
        assert_eq!(&hash12(&[&[], &[]]), b"000000000000");
        // SHA-256("0a0b,1301,0000,ffff"), as the reference computes it.
        let text = reference::hex_list(&[0x0a0b, 0x1301, 0, 0xffff]);
        assert_eq!(text, "0a0b,1301,0000,ffff");
        assert_eq!(
            std::str::from_utf8(&hash12(&[&[0x0a0b, 0x1301, 0, 0xffff]])).unwrap(),
            reference::hash12(&text)
        );
        // SHA-256("abc") = ba7816bf8f01... (FIPS 180-2 test vector) through the reference.
        assert_eq!(reference::hash12("abc"), "ba7816bf8f01");
    }

    proptest::proptest! {
        /// The allocation-free JA4/JA4S equal the specification-shaped reference on any hello.
        #[test]
        fn ja4_equals_reference(
            version in proptest::prop_oneof![proptest::strategy::Just(0x0304u16), proptest::strategy::Just(0x0303u16), proptest::num::u16::ANY],
            sni: bool,
            ciphers in proptest::collection::vec(proptest::num::u16::ANY, 0..120),
            ext_types in proptest::collection::vec(proptest::prop_oneof![proptest::strategy::Just(0u16), proptest::strategy::Just(16u16), proptest::strategy::Just(0x0a0au16), proptest::num::u16::ANY], 0..110),
            sigs in proptest::collection::vec(proptest::num::u16::ANY, 0..20),
            alpn in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..5)),
            cipher: u16,
        ) {
            let exts: Vec<(u16, &[u8])> = ext_types.iter().map(|&t| (t, &[][..])).collect();
            let a = alpn.as_deref();
            let fast = ja4(version, sni, &ciphers, &exts, &sigs, a);
            proptest::prop_assert_eq!(std::str::from_utf8(&fast).unwrap(), reference::ja4(version, sni, &ciphers, &exts, &sigs, a));
            let fast = ja4s(version, cipher, &exts, a);
            proptest::prop_assert_eq!(std::str::from_utf8(&fast).unwrap(), reference::ja4s(version, cipher, &exts, a));
        }
    }

    #[test]
    fn grease() {
        assert!(is_grease(0x0a0a));
        assert!(is_grease(0xfafa));
        assert!(!is_grease(0x0a1a));
        assert!(!is_grease(0x1301));
    }

    #[test]
    fn oid_strings() {
        assert_eq!(
            der_oid_string(&[0x55, 0x1d, 0x25]).as_deref(),
            Some("2.5.29.37")
        );
        assert_eq!(
            der_oid_string(&[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02]).as_deref(),
            Some("1.3.6.1.5.5.7.3.2")
        );
    }

    #[test]
    fn cr13_with_oid_filters_and_ca_names() {
        // extensions: signature_algorithms [0x0403], certificate_authorities [one DN],
        // oid_filters [EKU = clientAuth]
        let dn =
            hex::decode("3013311130 0f0603550403 0c084c616220524f4f54".replace(' ', "")).unwrap();
        let mut ca = Vec::new();
        ca.extend_from_slice(&(dn.len() as u16).to_be_bytes());
        ca.extend_from_slice(&dn);
        let mut ca_ext = (ca.len() as u16).to_be_bytes().to_vec();
        ca_ext.extend_from_slice(&ca);
        let eku_val = hex::decode("300a06082b06010505070302").unwrap();
        let mut filter = vec![3, 0x55, 0x1d, 0x25];
        filter.extend_from_slice(&(eku_val.len() as u16).to_be_bytes());
        filter.extend_from_slice(&eku_val);
        let mut of_ext = (filter.len() as u16).to_be_bytes().to_vec();
        of_ext.extend_from_slice(&filter);
        let mut exts = Vec::new();
        for (t, d) in [(13u16, vec![0, 2, 4, 3]), (47, ca_ext), (48, of_ext)] {
            exts.extend_from_slice(&t.to_be_bytes());
            exts.extend_from_slice(&(d.len() as u16).to_be_bytes());
            exts.extend_from_slice(&d);
        }
        let mut body = vec![0];
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let (f, dropped) = parse_cr13(&body).unwrap();
        assert!(!dropped);
        assert_eq!(f.signature_algorithms, vec!["ecdsa_secp256r1_sha256"]);
        assert_eq!(f.ca_names, vec!["CN=Lab ROOT"]);
        assert_eq!(f.oid_filters, vec!["extendedKeyUsage=clientAuth"]);
        for n in 0..body.len() {
            let _ = parse_cr13(&body[..n]);
        }
    }

    #[test]
    fn cr12_shapes() {
        // types [rsa_sign, ecdsa_sign], sig algs [0x0401], no CA names
        let body = [2, 1, 64, 0, 2, 4, 1, 0, 0];
        let (f, _) = parse_cr12(&body, true).unwrap();
        assert_eq!(f.certificate_types, vec!["rsa_sign", "ecdsa_sign"]);
        assert_eq!(f.signature_algorithms, vec!["rsa_pkcs1_sha256"]);
        assert!(f.ca_names.is_empty());
        assert!(parse_cr12(&body, false).is_none());
        for n in 0..body.len() {
            assert!(parse_cr12(&body[..n], true).is_none());
        }
    }

    #[test]
    fn certificate_lists() {
        assert_eq!(
            parse_certificate_list(&[0, 0, 0], false),
            Some((vec![], 0, 0))
        );
        assert_eq!(
            parse_certificate_list(&[0, 0, 0, 0], true),
            Some((vec![], 0, 0))
        );
        let body = [0, 0, 8, 0, 0, 2, 0xaa, 0xbb, 0, 0, 0];
        let (c, n, s) = parse_certificate_list(&body, false).unwrap();
        assert_eq!((c, n, s), (vec![&[0xaa, 0xbb][..], &[][..]], 2, 2));
        assert!(parse_certificate_list(&[0, 0, 9, 0], false).is_none());
    }

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
        assert_eq!(t.alerts.len(), MAX_ALERTS);
        assert!(t.weirds().contains(Anomaly::TlsTooManyAlerts));
        assert!(!t.is_done());
    }
}
