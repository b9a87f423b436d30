//! Flow table: TCP connections by 5-tuple, client/server roles, per-direction reassembly, and the
//! per-connection conversation (SMTP, then TLS). Emits one [`SessionEvent`] per connection that spoke
//! SMTP or TLS — as soon as its handshake outcome is known, or when it ends.
//!
//! Time is packet time: idle timeouts compare packet timestamps, never the wall clock.
//! Memory: per-direction reassembly queues are capped (`per_flow_cap`), the number of flows is capped
//! (`max_flows`, oldest idle evicted first, counted), and once a connection's outcome is known its
//! reassembly stops: message bodies are neither buffered nor parsed.

use crate::anomaly::{Anomaly, AnomalySet};
use crate::decode::Segment;
use crate::event::{community_id, rfc3339_micros, Direction, Endpoint, SessionEvent};
use crate::smtp::{self, Next, SmtpSession, StartTls};
use crate::tcp::{Chunk, Reassembler};
use crate::tls::keylog::KeyLog;
use crate::tls::{self, OutcomeResult, TlsSession};
use crate::Dir;
use hashbrown::hash_table::{Entry, HashTable};
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct FlowConfig {
    pub idle_timeout_ns: i64,
    /// Out-of-order bytes queued per direction.
    pub per_flow_cap: usize,
    /// Out-of-order bytes queued across all flows; beyond it the flow that adds data has its queue
    /// flushed as gaps (weird `memcap_exceeded`).
    pub memcap: usize,
    pub max_flows: usize,
    pub local_nets: Vec<IpNet>,
    /// Server ports treated as SMTP when the conversation is TLS from the first byte.
    pub smtp_ports: Vec<u16>,
    /// Remember connections whose analysis is over ([`FlowTable::take_finished_analysis`]), for a
    /// capture backend that can stop delivering their packets (eBPF).
    pub report_done: bool,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            idle_timeout_ns: 300 * 1_000_000_000,
            per_flow_cap: 256 * 1024,
            memcap: 256 * 1024 * 1024,
            max_flows: 1_000_000,
            local_nets: Vec::new(),
            smtp_ports: vec![25, 465, 587],
            report_done: false,
        }
    }
}

/// Counters of the flow layer (become metrics / report footer).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlowStats {
    pub segments: u64,
    pub flows_created: u64,
    pub flows_evicted: u64,
    pub memcap_flushes: u64,
    pub flows_timed_out: u64,
    pub events: u64,
    pub truncated_segments: u64,
    /// Anomalies by name, counted once per event that has them (all layers, SMTP included).
    pub weirds: BTreeMap<&'static str, u64>,
}

/// A connection's two endpoints in canonical order (the smaller first), so both directions find
/// the same flow. Ordered like the endpoints themselves (the tie-break of `finish_all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key((IpAddr, u16), (IpAddr, u16));

/// One keyed hash over an image of the key (12 bytes for two IPv4 endpoints, 36 otherwise),
/// instead of the derived field-by-field hashing: the flow lookup is on every packet's path. Equal
/// keys have equal images. The table's hasher is aHash with random per-process keys (flow keys
/// are chosen by whoever sends packets: the keys keep collisions unpredictable), AES-based where
/// the CPU has it: ~3x cheaper here than std's SipHash.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let Key((a, pa), (b, pb)) = *self;
        match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                // Built in registers: a byte image on the stack read back as words stalls.
                h.write_u64((u64::from(u32::from(a)) << 32) | u64::from(u32::from(b)));
                h.write_u32((u32::from(pa) << 16) | u32::from(pb));
            }
            _ => {
                let v6 = |ip: IpAddr| match ip {
                    IpAddr::V4(x) => x.to_ipv6_mapped().octets(),
                    IpAddr::V6(x) => x.octets(),
                };
                let mut img = [0u8; 36];
                img[..16].copy_from_slice(&v6(a));
                img[16..18].copy_from_slice(&pa.to_be_bytes());
                img[18..34].copy_from_slice(&v6(b));
                img[34..].copy_from_slice(&pb.to_be_bytes());
                h.write(&img);
            }
        }
    }
}

fn key(a: (IpAddr, u16), b: (IpAddr, u16)) -> Key {
    if a <= b {
        Key(a, b)
    } else {
        Key(b, a)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Detect,
    Smtp,
    Tls,
    /// A text protocol that is not SMTP (POP3, IMAP, XMPP, FTP...): watch the client for a TLS
    /// ClientHello at a segment boundary (its STARTTLS), for at most [`OTHER_SCAN_LIMIT`] bytes.
    OtherText,
    /// Outcome known or nothing more of interest: bytes are ignored.
    Done,
    /// Not SMTP and not TLS: no event.
    Ignore,
}

/// A plaintext SMTP session this soon after a TLS failure between the same addresses is a fallback
/// (Postfix retries without TLS after a failed opportunistic TLS attempt).
const FALLBACK_WINDOW_NS: i64 = 15 * 60 * 1_000_000_000;
const MAX_REMEMBERED_FAILURES: usize = 65_536;

/// Plaintext bytes of a non-SMTP protocol watched for a STARTTLS-style switch to TLS.
const OTHER_SCAN_LIMIT: u64 = 64 * 1024;

/// Does this chunk begin with a TLS record carrying a ClientHello?
fn starts_with_client_hello(d: &[u8]) -> bool {
    matches!(d, [0x16, 0x03, 0..=0x04, _, _, 0x01, ..])
}

/// The SMTP side of a connection: the analyzer while the dialogue is plaintext; once TLS takes
/// over only its facts (line buffers and command queue freed), or nothing when the dialogue never
/// proved to be SMTP.
#[derive(Debug)]
enum Smtp {
    Live(Box<SmtpSession>),
    Over(Option<Box<HeldSmtp>>),
}

/// SMTP facts as held once TLS took over, strings as boxed slices.
#[derive(Debug)]
struct HeldSmtp {
    banner: Option<Box<str>>,
    helo: Option<Box<str>>,
    anomalies: AnomalySet,
    starttls_offered: Option<bool>,
    starttls: StartTls,
    starttls_reply: Option<u16>,
    plaintext_fallback: bool,
}

impl HeldSmtp {
    fn new(f: smtp::SmtpFacts) -> Self {
        HeldSmtp {
            banner: f.banner.map(String::into_boxed_str),
            helo: f.helo.map(String::into_boxed_str),
            anomalies: f.anomalies,
            starttls_offered: f.starttls_offered,
            starttls: f.starttls,
            starttls_reply: f.starttls_reply,
            plaintext_fallback: f.plaintext_fallback,
        }
    }

    fn facts(&self) -> smtp::SmtpFacts {
        smtp::SmtpFacts {
            banner: self.banner.as_deref().map(String::from),
            helo: self.helo.as_deref().map(String::from),
            starttls_offered: self.starttls_offered,
            starttls: self.starttls,
            starttls_reply: self.starttls_reply,
            plaintext_fallback: self.plaintext_fallback,
            anomalies: self.anomalies,
        }
    }
}

impl Smtp {
    fn is_smtp(&self) -> bool {
        match self {
            Smtp::Live(s) => s.is_smtp(),
            Smtp::Over(f) => f.is_some(),
        }
    }

    fn facts(&self) -> Option<smtp::SmtpFacts> {
        match self {
            Smtp::Live(s) => s.is_smtp().then(|| s.facts()),
            Smtp::Over(f) => f.as_deref().map(HeldSmtp::facts),
        }
    }
}

/// Per-connection analyzers. Kept apart from the reassemblers so both can be borrowed at once.
/// What all connections share (key log, chain cache) is passed in, never held per connection.
#[derive(Debug)]
struct Conversation {
    proto: Proto,
    // Boxed: most flows (SYN floods, other protocols) never create them, and a flow's idle
    // state must stay small (tests: `flow_state_is_small`).
    smtp: Option<Smtp>,
    tls: Option<Box<TlsSession>>,
    /// The flow layer's anomalies.
    weirds: AnomalySet,
    /// `OtherText`: plaintext bytes watched so far, and the first bytes of a possible ClientHello.
    other_scanned: u32,
    other_prefix: ([u8; 6], u8),
    /// SMTP inside TLS, when keys let us decrypt it (reply codes only).
    after_tls: Option<Box<smtp::PostTlsTracker>>,
}

impl Conversation {
    fn new() -> Self {
        Conversation {
            proto: Proto::Detect,
            smtp: None,
            tls: None,
            weirds: AnomalySet::EMPTY,
            other_scanned: 0,
            other_prefix: ([0; 6], 0),
            after_tls: None,
        }
    }

    fn weird(&mut self, w: Anomaly) {
        self.weirds.insert(w);
    }

    fn deliver(&mut self, ctx: &mut tls::Context, dir: Dir, chunk: Chunk<'_>, ts: i64) {
        match chunk {
            Chunk::Gap(n) => {
                self.weird(Anomaly::ContentGap);
                match self.proto {
                    Proto::Detect => self.proto = Proto::Ignore,
                    Proto::Tls => {
                        if let Some(t) = &mut self.tls {
                            t.on_gap(dir, n);
                        }
                    }
                    Proto::Smtp => {
                        self.weird(Anomaly::SmtpGap);
                        if let Some(Smtp::Live(s)) = &mut self.smtp {
                            s.on_gap(dir);
                        }
                    }
                    _ => {}
                }
            }
            Chunk::Data(d) => self.data(ctx, dir, d, ts),
        }
    }

    fn data(&mut self, ctx: &mut tls::Context, dir: Dir, d: &[u8], ts: i64) {
        if self.proto == Proto::Detect {
            self.proto = if smtp::looks_like_tls(d) {
                self.tls = Some(Box::default());
                Proto::Tls
            } else if looks_like_smtp_start(dir, d) {
                self.smtp = Some(Smtp::Live(Box::default()));
                Proto::Smtp
            } else {
                Proto::OtherText
            };
        }
        if self.proto == Proto::OtherText {
            self.other_text(ctx, dir, d, ts);
            return;
        }
        match self.proto {
            Proto::Smtp => {
                let Some(Smtp::Live(s)) = &mut self.smtp else {
                    return;
                };
                match s.feed(dir, d) {
                    Next::Continue => {
                        if s.is_not_smtp() {
                            self.proto = Proto::OtherText;
                        }
                    }
                    Next::Tls { offset } => {
                        self.proto = Proto::Tls;
                        // The SMTP analyzer's work is over (its state is final): keep its facts.
                        let is_smtp = s.is_smtp();
                        let facts = is_smtp.then(|| Box::new(HeldSmtp::new(s.facts())));
                        self.smtp = Some(Smtp::Over(facts));
                        let mut t = Box::new(TlsSession::default());
                        // SMTP over TLS: follow the decrypted dialogue's reply codes when keys allow.
                        t.want_app_data(is_smtp);
                        t.feed(ctx, dir, d.get(offset..).unwrap_or(&[]), ts);
                        self.tls = Some(t);
                        self.pump_app_data();
                        self.check_done();
                    }
                    Next::Stop => {
                        self.proto = if s.is_not_smtp() {
                            Proto::OtherText
                        } else {
                            Proto::Done
                        };
                    }
                }
            }
            Proto::Tls => {
                if let Some(t) = &mut self.tls {
                    t.feed(ctx, dir, d, ts);
                }
                self.pump_app_data();
                self.check_done();
            }
            _ => {}
        }
    }

    /// A non-SMTP text protocol: look for the client's ClientHello at the start of a chunk (its
    /// STARTTLS switch). The first 6 bytes may arrive in several chunks.
    fn other_text(&mut self, ctx: &mut tls::Context, dir: Dir, d: &[u8], ts: i64) {
        let (prefix, have) = &mut self.other_prefix;
        if dir == Dir::ToServer && (*have > 0 || d.first() == Some(&0x16)) {
            let at = usize::from(*have);
            let take = (6 - at).min(d.len());
            prefix[at..at + take].copy_from_slice(&d[..take]);
            *have += take as u8; // take <= 6
            if *have < 6 {
                return;
            }
            let first = *prefix;
            self.other_prefix = ([0; 6], 0);
            if starts_with_client_hello(&first) {
                self.proto = Proto::Tls;
                let mut t = Box::new(TlsSession::default());
                t.feed(ctx, dir, &first, ts);
                t.feed(ctx, dir, &d[take..], ts);
                self.tls = Some(t);
                self.check_done();
                return;
            }
        }
        self.other_scanned = self
            .other_scanned
            .saturating_add(u32::try_from(d.len()).unwrap_or(u32::MAX));
        if u64::from(self.other_scanned) > OTHER_SCAN_LIMIT {
            self.proto = Proto::Ignore;
        }
    }

    /// Decrypted SMTP after STARTTLS → reply codes; stop decryption once they are known.
    fn pump_app_data(&mut self) {
        let Some(t) = &mut self.tls else { return };
        let chunks = t.take_app_plaintext();
        if chunks.is_empty() {
            return;
        }
        let tracker = self.after_tls.get_or_insert_with(Box::default);
        for (dir, pt) in chunks {
            tracker.feed(dir, &pt);
        }
        if tracker.finished() {
            t.want_app_data(false);
        }
    }

    fn check_done(&mut self) {
        if self.tls.as_ref().is_some_and(|t| t.is_done()) {
            self.proto = Proto::Done;
        }
    }

    /// The event is out and later bytes are ignored: the analyzers and what they hold (facts,
    /// buffers) are freed, so a connection that goes on (a message body) keeps only its `Flow`.
    fn release(&mut self) {
        self.smtp = None;
        self.tls = None;
        self.after_tls = None;
        self.other_prefix = ([0; 6], 0);
    }

    fn on_close(&mut self, dir: Dir) {
        if let Some(t) = &mut self.tls {
            t.on_close(dir);
        }
        self.check_done();
    }

    fn reportable(&self) -> bool {
        if self.proto == Proto::Ignore {
            return false;
        }
        self.tls.as_ref().is_some_and(|t| t.saw_client_hello())
            || self.smtp.as_ref().is_some_and(Smtp::is_smtp)
    }

    /// Bytes held of data still arriving (partial TLS records and messages, SMTP lines).
    fn buffered_bytes(&self) -> usize {
        let smtp = match &self.smtp {
            Some(Smtp::Live(s)) => s.buffered_bytes(),
            _ => 0,
        };
        smtp + self.tls.as_ref().map_or(0, |t| t.buffered_bytes())
    }
}

/// First byte of an SMTP conversation: a reply code digit from the server, a command letter from
/// the client. (One byte, because a chunk may be that short; the SMTP analyzer rejects FTP, POP3...)
fn looks_like_smtp_start(dir: Dir, d: &[u8]) -> bool {
    match dir {
        Dir::ToClient => d.first().is_some_and(u8::is_ascii_digit),
        Dir::ToServer => d.first().is_some_and(u8::is_ascii_alphabetic),
    }
}

#[derive(Debug)]
struct Flow {
    /// Both endpoints (the table finds flows by it).
    key: Key,
    /// The client is the key's first endpoint.
    client_first: bool,
    /// Roles come from a SYN (certain) or from content (heuristic, may swap once).
    roles_certain: bool,
    first_ts: i64,
    last_ts: i64,
    reasm: [Reassembler; 2],
    conv: Conversation,
    fin: [bool; 2],
    /// The FIN reached the analyzers (in stream order, after every byte before it).
    close_seen: [bool; 2],
    /// Which direction's FIN came first (closes reach the analyzers in that order).
    first_fin: Option<u8>,
    /// Packets per direction (saturating: a count past 4 billion on one connection stays there).
    packets: [u32; 2],
    bytes: [u64; 2],
    any_payload: bool,
    emitted: bool,
    /// Its end of analysis was reported (`report_done`).
    done_reported: bool,
}

/// Direction by index (`i`'s inverse).
const DIRS: [Dir; 2] = [Dir::ToServer, Dir::ToClient];

/// Direction indexes, the one whose FIN came first first.
fn fin_order(first: Option<u8>) -> [usize; 2] {
    if first == Some(1) {
        [1, 0]
    } else {
        [0, 1]
    }
}

fn i(d: Dir) -> usize {
    match d {
        Dir::ToServer => 0,
        Dir::ToClient => 1,
    }
}

impl Flow {
    /// (client, server).
    fn roles(&self) -> ((IpAddr, u16), (IpAddr, u16)) {
        let Key(a, b) = self.key;
        if self.client_first {
            (a, b)
        } else {
            (b, a)
        }
    }

    fn dir_of(&self, src: (IpAddr, u16)) -> Dir {
        if src == self.roles().0 {
            Dir::ToServer
        } else {
            Dir::ToClient
        }
    }
}

/// Guess whether the sender of these first payload bytes is the server.
fn sender_is_server(p: &[u8]) -> Option<bool> {
    if p.len() >= 6 && p[0] == 0x16 && p[1] == 3 {
        return match p[5] {
            1 => Some(false),
            2 => Some(true),
            _ => None,
        };
    }
    if p.len() >= 4 && p[..3].iter().all(u8::is_ascii_digit) && matches!(p[3], b' ' | b'-') {
        return Some(true);
    }
    if p.starts_with(b"+OK") || p.starts_with(b"* OK") {
        return Some(true);
    }
    let up: Vec<u8> = p.iter().take(5).map(u8::to_ascii_uppercase).collect();
    if up.starts_with(b"EHLO") || up.starts_with(b"HELO") {
        return Some(false);
    }
    None
}

pub struct FlowTable {
    cfg: FlowConfig,
    /// Boxed values keep the table's buckets small (a million idle flows: ~100 MB of buckets
    /// plus ~0.5 KB per flow, instead of 2^21 buckets of whole flows).
    flows: HashTable<Box<Flow>>,
    hasher: ahash::RandomState,
    pub stats: FlowStats,
    out: Vec<SessionEvent>,
    now: i64,
    last_sweep: i64,
    /// What the connections' TLS analyzers share: the key log, and certificate chains already
    /// parsed, by content (x509::cache).
    ctx: tls::Context,
    /// Last TLS failure (handshake_failed / closed_after_handshake) per (client IP, server IP).
    tls_failures: HashMap<(IpAddr, IpAddr), i64>,
    /// Bytes queued in reassembly across all flows, kept up to date per packet.
    buffered: usize,
    /// Connections whose analysis is over (only with `report_done`), drained by the caller.
    done: Vec<((IpAddr, u16), (IpAddr, u16))>,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> Self {
        FlowTable {
            cfg,
            flows: HashTable::new(),
            hasher: ahash::RandomState::new(),
            stats: FlowStats::default(),
            out: Vec::new(),
            now: i64::MIN,
            last_sweep: i64::MIN,
            buffered: 0,
            ctx: tls::Context::default(),
            tls_failures: HashMap::new(),
            done: Vec::new(),
        }
    }

    /// Adds TLS key log lines (a `--keylog` file or a pcapng Decryption Secrets Block). Connections
    /// that start afterwards decrypt with them.
    pub fn add_keylog(&mut self, text: &[u8]) {
        self.ctx.keylog.add(text);
    }

    pub fn keylog(&self) -> &KeyLog {
        &self.ctx.keylog
    }

    pub fn active_flows(&self) -> usize {
        self.flows.len()
    }

    /// Bytes queued in reassembly across all flows.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Bytes of stream data held across all flows: reassembly queues plus the analyzers' partial
    /// lines, records and handshake messages. Walks every flow (tests, diagnostics).
    pub fn held_stream_bytes(&self) -> usize {
        self.flows
            .iter()
            .map(|f| f.reasm[0].buffered() + f.reasm[1].buffered() + f.conv.buffered_bytes())
            .sum()
    }

    /// Connections (client, server) whose analysis ended since the last call: their event is out
    /// (or they are not SMTP/TLS), and later payload would be ignored. Only their FIN/RST still
    /// matter. Empty unless `report_done` is set.
    pub fn take_finished_analysis(&mut self) -> Vec<((IpAddr, u16), (IpAddr, u16))> {
        std::mem::take(&mut self.done)
    }

    /// Events completed so far (drained).
    pub fn take_events(&mut self) -> Vec<SessionEvent> {
        std::mem::take(&mut self.out)
    }

    /// Events completed so far, drained in place (the queue keeps its room: sinks drain after
    /// every packet, and an event is a kilobyte).
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, SessionEvent> {
        self.out.drain(..)
    }

    pub fn on_segment(&mut self, seg: &Segment<'_>, ts: i64) {
        self.stats.segments += 1;
        if seg.truncated {
            self.stats.truncated_segments += 1;
        }
        if ts > self.now {
            self.now = ts;
        }
        if self.last_sweep == i64::MIN {
            self.last_sweep = ts;
        }
        if self.now.saturating_sub(self.last_sweep) > 10_000_000_000 {
            self.sweep(self.now.saturating_sub(self.cfg.idle_timeout_ns));
            self.last_sweep = self.now;
        }
        let src = (seg.src, seg.sport);
        let dst = (seg.dst, seg.dport);
        let k = key(src, dst);
        // One lookup per packet (two when a flow is created in a full table).
        let opens = (seg.flags.syn || !seg.payload.is_empty()) && !seg.flags.rst;
        let hash = self.hasher.hash_one(k);
        if opens
            && self.flows.len() >= self.cfg.max_flows
            && self.flows.find(hash, |f| f.key == k).is_none()
        {
            self.evict();
        }
        let hasher = &self.hasher;
        let flow: &mut Flow =
            match self
                .flows
                .entry(hash, |f| f.key == k, |f| hasher.hash_one(f.key))
            {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    if !opens {
                        return; // stray ACK/FIN/RST of a connection we do not track
                    }
                    let (client, server, certain) = if seg.flags.syn {
                        if seg.flags.ack {
                            (dst, src, true)
                        } else {
                            (src, dst, true)
                        }
                    } else if self.cfg.smtp_ports.contains(&seg.sport)
                        && !self.cfg.smtp_ports.contains(&seg.dport)
                    {
                        (dst, src, false)
                    } else {
                        (src, dst, false)
                    };
                    self.stats.flows_created += 1;
                    let cap = self.cfg.per_flow_cap;
                    debug_assert_eq!(key(client, server), k);
                    v.insert(Box::new(Flow {
                        key: k,
                        client_first: client == k.0,
                        roles_certain: certain,
                        first_ts: ts,
                        last_ts: ts,
                        reasm: [Reassembler::new(cap), Reassembler::new(cap)],
                        conv: Conversation::new(),
                        fin: [false; 2],
                        close_seen: [false; 2],
                        first_fin: None,
                        packets: [0; 2],
                        bytes: [0; 2],
                        any_payload: false,
                        emitted: false,
                        done_reported: false,
                    }))
                    .into_mut()
                }
            };
        let queued_before = flow.reasm[0].buffered() + flow.reasm[1].buffered();
        flow.last_ts = ts;
        if !flow.roles_certain && !flow.any_payload && !seg.payload.is_empty() {
            if let Some(is_server) = sender_is_server(seg.payload) {
                let sender_is_client_now = src == flow.roles().0;
                if is_server == sender_is_client_now {
                    flow.client_first = !flow.client_first;
                }
                flow.roles_certain = true;
            }
        }
        let dir = flow.dir_of(src);
        let d = i(dir);
        flow.packets[d] = flow.packets[d].saturating_add(1);
        if seg.truncated {
            flow.conv.weird(Anomaly::TruncatedPacket);
        }
        if seg.flags.syn {
            flow.reasm[d].on_syn(seg.seq);
        }
        if !seg.payload.is_empty() {
            flow.any_payload = true;
            flow.bytes[d] += seg.payload.len() as u64;
            let Flow { reasm, conv, .. } = flow;
            let ctx = &mut self.ctx;
            reasm[d].on_data(seg.seq, seg.payload, &mut |c| conv.deliver(ctx, dir, c, ts));
            if reasm[d].mid_stream {
                conv.weird(Anomaly::MidStreamStart);
            }
        }
        if seg.flags.ack {
            let Flow { reasm, conv, .. } = flow;
            let ctx = &mut self.ctx;
            reasm[1 - d].on_peer_ack(seg.ack, &mut |c| conv.deliver(ctx, dir.flip(), c, ts));
        }
        if seg.flags.fin {
            if flow.first_fin.is_none() {
                flow.first_fin = Some(d as u8);
            }
            flow.fin[d] = true;
            flow.reasm[d].on_fin(seg.seq.wrapping_add(seg.payload.len() as u32));
        }
        if seg.flags.rst {
            flow.conv.weird(if dir == Dir::ToServer {
                Anomaly::RstByClient
            } else {
                Anomaly::RstByServer
            });
            // The sender's stream ends here: bytes it sent before the RST that we never saw are
            // a gap, not a clean close.
            let Flow { reasm, conv, .. } = flow;
            let ctx = &mut self.ctx;
            reasm[d].on_fin(seg.seq.wrapping_add(seg.payload.len() as u32));
            reasm[d].close_at_fin(&mut |c| conv.deliver(ctx, dir, c, ts));
            flow.conv.on_close(dir);
        }
        // A FIN closes its direction once the bytes before it are in (it may overtake them);
        // closes reach the analyzers in the order the FINs came.
        for k in fin_order(flow.first_fin) {
            if flow.fin[k] && !flow.close_seen[k] {
                if !flow.reasm[k].reached_fin() {
                    break;
                }
                flow.close_seen[k] = true;
                flow.conv.on_close(DIRS[k]);
            }
        }
        if self.buffered + flow.reasm[0].buffered() + flow.reasm[1].buffered()
            > self.cfg.memcap + queued_before
        {
            // Global memory cap: this flow's queued data is handed up now, holes become gaps.
            self.stats.memcap_flushes += 1;
            flow.conv.weird(Anomaly::MemcapExceeded);
            let Flow { reasm, conv, .. } = flow;
            let ctx = &mut self.ctx;
            reasm[d].flush(&mut |c| conv.deliver(ctx, dir, c, ts));
        }
        if flow.conv.proto == Proto::Done || flow.conv.proto == Proto::Ignore {
            flow.reasm[0].stop();
            flow.reasm[1].stop();
            if flow.conv.proto == Proto::Ignore {
                flow.conv.release(); // no event will come from it
            }
            if self.cfg.report_done && !flow.done_reported {
                flow.done_reported = true;
                self.done.push(flow.roles());
            }
        }
        let ready = (flow.conv.proto == Proto::Done && !flow.emitted).then(|| {
            flow.emitted = true;
            let ev = make_event(flow, &self.cfg);
            flow.conv.release();
            (ev, flow.first_ts, flow.last_ts)
        });
        self.buffered =
            self.buffered + flow.reasm[0].buffered() + flow.reasm[1].buffered() - queued_before;
        let closed = seg.flags.rst || (flow.fin[0] && flow.fin[1]);
        if let Some((ev, first_ts, last_ts)) = ready {
            self.emit(ev, first_ts, last_ts);
        }
        if closed {
            self.finish(k);
        }
    }

    /// Counts and queues an event; remembers TLS failures per (client, server) address pair and
    /// flags a later plaintext session between the same pair as a plaintext fallback.
    fn emit(&mut self, mut ev: SessionEvent, first_ts: i64, last_ts: i64) {
        let pair = (ev.client.ip, ev.server.ip);
        match (&ev.tls, &mut ev.smtp) {
            (Some(t), _)
                if matches!(
                    t.outcome.result,
                    OutcomeResult::HandshakeFailed | OutcomeResult::ClosedAfterHandshake
                ) =>
            {
                if self.tls_failures.len() >= MAX_REMEMBERED_FAILURES {
                    let horizon = last_ts.saturating_sub(FALLBACK_WINDOW_NS);
                    self.tls_failures.retain(|_, t| *t >= horizon);
                    if self.tls_failures.len() >= MAX_REMEMBERED_FAILURES {
                        self.tls_failures.clear();
                    }
                }
                self.tls_failures.insert(pair, last_ts);
            }
            (None, Some(smtp)) if smtp.starttls != StartTls::Accepted => {
                if let Some(&failed_at) = self.tls_failures.get(&pair) {
                    if first_ts >= failed_at && first_ts - failed_at <= FALLBACK_WINDOW_NS {
                        smtp.plaintext_fallback = true;
                    }
                }
            }
            _ => {}
        }
        count_event(&mut self.stats, &ev);
        self.out.push(ev);
    }

    fn finish(&mut self, k: Key) {
        let hash = self.hasher.hash_one(k);
        let Ok(entry) = self.flows.find_entry(hash, |f| f.key == k) else {
            return;
        };
        let (mut flow, _) = entry.remove();
        self.buffered -= flow.reasm[0].buffered() + flow.reasm[1].buffered();
        if flow.emitted {
            return;
        }
        let last_ts = flow.last_ts;
        let Flow {
            reasm,
            conv,
            fin,
            close_seen,
            first_fin,
            ..
        } = &mut *flow;
        let ctx = &mut self.ctx;
        for d in fin_order(*first_fin) {
            let dir = DIRS[d];
            // Queued bytes, then whatever never arrived before a FIN (a gap), then the FIN.
            reasm[d].close_at_fin(&mut |c| conv.deliver(ctx, dir, c, last_ts));
            if fin[d] && !close_seen[d] {
                close_seen[d] = true;
                conv.on_close(dir);
            }
        }
        if flow.conv.reportable() {
            let ev = make_event(&flow, &self.cfg);
            self.emit(ev, flow.first_ts, flow.last_ts);
        }
    }

    fn sweep(&mut self, older_than: i64) {
        let old: Vec<Key> = self
            .flows
            .iter()
            .filter(|f| f.last_ts < older_than)
            .map(|f| f.key)
            .collect();
        self.stats.flows_timed_out += old.len() as u64;
        for k in old {
            self.finish(k);
        }
    }

    /// Table full: drop the least recently active tenth (reporting what they had).
    fn evict(&mut self) {
        let mut ts: Vec<(i64, Key)> = self.flows.iter().map(|f| (f.last_ts, f.key)).collect();
        let n = (ts.len() / 10).max(1);
        ts.select_nth_unstable(n - 1);
        for (_, k) in ts.into_iter().take(n) {
            self.stats.flows_evicted += 1;
            self.finish(k);
        }
    }

    /// End of input: every remaining flow is finished and reported.
    pub fn finish_all(&mut self) {
        let mut keys: Vec<(i64, Key)> = self.flows.iter().map(|f| (f.first_ts, f.key)).collect();
        keys.sort();
        for (_, k) in keys {
            self.finish(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TcpFlags;

    fn seg(sport: u16, seq: u32, flags: TcpFlags, payload: &[u8]) -> Segment<'_> {
        Segment {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            sport,
            dport: 25,
            seq,
            ack: 0,
            flags,
            payload,
            truncated: false,
        }
    }

    /// Issue 7: per-flow state while handshaking ≤ 1 KiB plus buffered bytes; an idle or
    /// SYN-only flow costs only its `Flow` (analyzers are boxed and created on first payload).
    #[test]
    fn flow_state_is_small() {
        use std::mem::size_of;
        let flow = size_of::<Flow>();
        let fixed = flow + size_of::<TlsSession>() + size_of::<HeldSmtp>();
        eprintln!(
            "Flow {flow} bytes, SmtpSession {}, TlsSession {}, HeldSmtp {}: {fixed} while handshaking",
            size_of::<SmtpSession>(),
            size_of::<TlsSession>(),
            size_of::<HeldSmtp>(),
        );
        // x86_64: 304 + 408 + 56 = 768 B, leaving ~250 B of the 1 KiB budget (issue 7) for the
        // facts and the table's share (tests/flow_memory.rs measures the whole).
        assert!(flow <= 320, "Flow is {flow} bytes");
        assert!(
            fixed <= 768,
            "fixed state while handshaking is {fixed} bytes"
        );
    }

    #[test]
    fn global_memcap_bounds_queued_bytes_across_flows() {
        let cfg = FlowConfig {
            memcap: 10_000,
            per_flow_cap: 8_000,
            ..FlowConfig::default()
        };
        let mut t = FlowTable::new(cfg);
        let syn = TcpFlags {
            syn: true,
            ..TcpFlags::default()
        };
        let data = [b'x'; 1000];
        for port in 1000..1020u16 {
            t.on_segment(&seg(port, 0, syn, &[]), 1);
            // a hole at offset 0, then queued data behind it
            for k in 0..5u32 {
                t.on_segment(&seg(port, 100 + k * 1000, TcpFlags::default(), &data), 2);
                assert!(
                    t.buffered_bytes() <= 10_000 + 1000,
                    "{}",
                    t.buffered_bytes()
                );
            }
        }
        assert!(t.stats.memcap_flushes > 0);
        let real: usize = t
            .flows
            .iter()
            .map(|f| f.reasm[0].buffered() + f.reasm[1].buffered())
            .sum();
        assert_eq!(real, t.buffered_bytes(), "incremental accounting is exact");
        t.finish_all();
        assert_eq!(t.buffered_bytes(), 0);
    }
}

fn count_event(stats: &mut FlowStats, ev: &SessionEvent) {
    stats.events += 1;
    for w in ev.anomalies().names() {
        *stats.weirds.entry(w).or_default() += 1;
    }
}

fn make_event(flow: &Flow, cfg: &FlowConfig) -> SessionEvent {
    let conv = &flow.conv;
    let (client, server) = flow.roles();
    let mut smtp = conv.smtp.as_ref().and_then(Smtp::facts);
    let tls = conv.tls.as_ref().filter(|t| t.saw_client_hello()).map(|t| {
        let mut f = t.facts();
        f.smtp_reply_after_tls = conv
            .after_tls
            .as_ref()
            .filter(|a| a.seen())
            .map(|a| a.replies.clone());
        f
    });
    if smtp.is_none() && tls.is_some() && conv.smtp.is_none() {
        // TLS from the first byte: implicit TLS. Only call it SMTP on a configured SMTP port.
        if cfg.smtp_ports.contains(&server.1) {
            smtp = Some(smtp::SmtpFacts {
                banner: None,
                helo: None,
                starttls_offered: None,
                starttls: StartTls::Implicit,
                starttls_reply: None,
                plaintext_fallback: false,
                anomalies: AnomalySet::EMPTY,
            });
        }
    }
    let mut weirds = conv.weirds;
    if let Some(t) = &conv.tls {
        weirds = weirds.union(t.weirds());
    }
    for r in &flow.reasm {
        if r.overlap_conflicts > 0 {
            weirds.insert(Anomaly::TcpOverlapConflict);
        }
        if r.overflows > 0 {
            weirds.insert(Anomaly::ReassemblyBufferOverflow);
        }
    }
    SessionEvent {
        kind: "session",
        ts: rfc3339_micros(flow.first_ts),
        community_id: community_id(client.0, client.1, server.0, server.1),
        client: Endpoint {
            ip: client.0,
            port: client.1,
        },
        server: Endpoint {
            ip: server.0,
            port: server.1,
        },
        direction: Direction::classify(&cfg.local_nets, client.0, server.0),
        smtp,
        tls,
        weirds,
        packets: flow.packets.map(u64::from),
        payload_bytes: flow.bytes,
    }
}
