//! Flow table: TCP connections by 5-tuple, client/server roles, per-direction reassembly, and the
//! per-connection conversation (SMTP, then TLS). Emits one [`SessionEvent`] per connection that spoke
//! SMTP or TLS — as soon as its handshake outcome is known, or when it ends.
//!
//! Time is packet time: idle timeouts compare packet timestamps, never the wall clock.
//! Memory: per-direction reassembly queues are capped (`per_flow_cap`), the number of flows is capped
//! (`max_flows`, oldest idle evicted first, counted), and once a connection's outcome is known its
//! reassembly stops: message bodies are neither buffered nor parsed.
//!
//! One concern per file: `key` (the table's key and its hashing), `roles` (who is the client, what
//! the first bytes are), `connection` (one connection's state, its event), `conversation` (the
//! analyzers: SMTP, the hand-off to TLS, other protocols' STARTTLS, decrypted SMTP), `fallback`
//! (plaintext sessions after a TLS failure). The event itself is assembled in `crate::event`.

mod connection;
mod conversation;
mod fallback;
mod key;
mod roles;

use crate::anomaly::Anomaly;
use crate::decode::Segment;
use crate::event::SessionEvent;
use crate::tls::{self, keylog::KeyLog};
use crate::Dir;
use connection::{fin_order, Flow};
use conversation::Proto;
use fallback::TlsFailures;
use hashbrown::hash_table::{Entry, HashTable};
use ipnet::IpNet;
use key::{key, Key};
use roles::{initial_roles, sender_is_server};
use std::collections::BTreeMap;
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
    /// Written into every event (`observer`): the host name unless configured.
    pub observer: crate::event::Observer,
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
            observer: crate::event::Observer::host(),
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

impl FlowStats {
    pub(crate) fn count_event(&mut self, ev: &SessionEvent) {
        self.events += 1;
        for w in ev.anomalies().names() {
            *self.weirds.entry(w).or_default() += 1;
        }
    }
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
    /// Last TLS failure per address pair, for plaintext fallbacks.
    tls_failures: TlsFailures,
    /// Bytes queued in reassembly across all flows, kept up to date per packet.
    buffered: usize,
    /// Connections whose analysis is over (only with `report_done`), drained by the caller.
    done: Vec<((IpAddr, u16), (IpAddr, u16))>,
    /// Directions the eBPF program may summarise from now on (only with `report_done`).
    arms: Vec<ArmRequest>,
}

/// A request to the eBPF program (only with `report_done`): follow these directions' TLS record
/// headers from the given sequence numbers (the next header of each; `[to server, to client]`,
/// None: leave that direction as it is), and with `summarise`, send summaries instead of the
/// followed directions' packets from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmRequest {
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    pub next_header_seq: [Option<u32>; 2],
    pub summarise: bool,
}

/// What the eBPF program says about a segment it sent (see [`FlowTable::on_kernel_segment`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSegment {
    /// Every byte of its direction before this sequence number passed the kernel in order;
    /// those user space did not get were record bodies the kernel skipped.
    pub skipped_to: Option<u32>,
    /// One record header of a summary, standing at its own sequence number (not a whole packet).
    pub summary: bool,
    /// The kernel follows this direction's record headers (after this segment).
    pub following: bool,
    /// Packets it stands for (with those the kernel did not send before it; 0 for a summary's
    /// later headers).
    pub packets: u32,
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
            tls_failures: TlsFailures::default(),
            done: Vec::new(),
            arms: Vec::new(),
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

    /// Connections (client, server) whose analysis ended since the last call: they are not
    /// SMTP/TLS (or their records can no longer be followed), and later payload would be ignored. Only their FIN/RST still
    /// matter. Empty unless `report_done` is set.
    pub fn take_finished_analysis(&mut self) -> Vec<((IpAddr, u16), (IpAddr, u16))> {
        std::mem::take(&mut self.done)
    }

    /// Directions the eBPF program may follow by record headers from now on (see
    /// [`ArmRequest`]), since the last call. Empty unless `report_done` is set.
    pub fn take_arm_requests(&mut self) -> Vec<ArmRequest> {
        std::mem::take(&mut self.arms)
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
        let k = KernelSegment {
            skipped_to: None,
            summary: false,
            following: true,
            packets: 1,
        };
        self.segment(seg, ts, k);
    }

    /// A segment from the eBPF program: a whole packet or one record header of a summary
    /// ([`KernelSegment`]).
    pub fn on_kernel_segment(&mut self, seg: &Segment<'_>, ts: i64, k: KernelSegment) {
        self.segment(seg, ts, k);
    }

    fn segment(&mut self, seg: &Segment<'_>, ts: i64, kernel: KernelSegment) {
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
        self.sweep_if_due();
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
                    let (client, server, certain) = initial_roles(seg, &self.cfg.smtp_ports);
                    self.stats.flows_created += 1;
                    let cap = self.cfg.per_flow_cap;
                    debug_assert_eq!(key(client, server), k);
                    v.insert(Box::new(Flow::new(k, client, certain, ts, cap)))
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
        let packets = dir.of_mut(&mut flow.packets);
        *packets = packets.saturating_add(kernel.packets);
        if seg.truncated {
            flow.conv.weird(Anomaly::TruncatedPacket);
        }
        if seg.flags.syn {
            dir.of_mut(&mut flow.reasm).on_syn(seg.seq);
        }
        if let Some(to) = kernel.skipped_to {
            // The bytes before `to` passed the kernel; those not here it skipped as record bodies.
            let Flow { reasm, conv, .. } = flow;
            let ctx = &mut self.ctx;
            let r = dir.of_mut(reasm);
            let skipped = r.skip_to(to, &mut |c| conv.deliver(ctx, dir, c, ts));
            // They were on the wire all the same (queued bytes it delivers were counted when
            // they came).
            *dir.of_mut(&mut flow.bytes) += skipped;
        }
        if !kernel.following && !seg.payload.is_empty() {
            // The kernel does not follow this direction (any more): it may be armed again.
            flow.armed &= !dir_bit(dir);
        }
        if !seg.payload.is_empty() {
            flow.any_payload = true;
            *dir.of_mut(&mut flow.bytes) += seg.payload.len() as u64;
            let Flow { reasm, conv, .. } = flow;
            let ctx = &mut self.ctx;
            let r = dir.of_mut(reasm);
            r.on_data(seg.seq, seg.payload, &mut |c| conv.deliver(ctx, dir, c, ts));
            if r.mid_stream {
                conv.weird(Anomaly::MidStreamStart);
            }
        }
        if seg.flags.ack {
            let Flow { reasm, conv, .. } = flow;
            let ctx = &mut self.ctx;
            dir.flip()
                .of_mut(reasm)
                .on_peer_ack(seg.ack, &mut |c| conv.deliver(ctx, dir.flip(), c, ts));
        }
        if seg.flags.fin {
            if flow.first_fin.is_none() {
                flow.first_fin = Some(dir);
            }
            *dir.of_mut(&mut flow.fin) = true;
            dir.of_mut(&mut flow.reasm)
                .on_fin(seg.seq.wrapping_add(seg.payload.len() as u32));
        }
        if seg.flags.rst {
            flow.conv.weird(if dir == Dir::ToServer {
                Anomaly::RstByClient
            } else {
                Anomaly::RstByServer
            });
            // The sender's stream ends here, like at a FIN: once the bytes it sent before the
            // RST are in — an RST can overtake its sender's last data (two CPUs or capture
            // queues) — or, if they never come, when the flow ends: a gap, not a clean close.
            if flow.rst.is_none() {
                flow.rst = Some(dir);
                flow.rst_ms =
                    u32::try_from(ts.saturating_sub(flow.first_ts) / 1_000_000).unwrap_or(u32::MAX);
                if !*dir.of(&flow.fin) {
                    if flow.first_fin.is_none() {
                        flow.first_fin = Some(dir);
                    }
                    *dir.of_mut(&mut flow.fin) = true;
                    dir.of_mut(&mut flow.reasm)
                        .on_fin(seg.seq.wrapping_add(seg.payload.len() as u32));
                }
            }
        }
        // A FIN closes its direction once the bytes before it are in (it may overtake them);
        // closes reach the analyzers in the order the FINs came.
        for fin_dir in fin_order(flow.first_fin) {
            if *fin_dir.of(&flow.fin) && !*fin_dir.of(&flow.close_seen) {
                if !fin_dir.of(&flow.reasm).reached_fin() {
                    break;
                }
                *fin_dir.of_mut(&mut flow.close_seen) = true;
                flow.conv.on_close(fin_dir);
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
            dir.of_mut(reasm)
                .flush(&mut |c| conv.deliver(ctx, dir, c, ts));
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
        if self.cfg.report_done && flow.conv.proto == Proto::Tls {
            arm(flow, &mut self.arms);
        }
        self.buffered =
            self.buffered + flow.reasm[0].buffered() + flow.reasm[1].buffered() - queued_before;
        // The event is written when the session ends: what happened to its mail is known then.
        let closed = match flow.rst {
            Some(d) => d.of(&flow.reasm).reached_fin(),
            None => flow.fin[0] && flow.fin[1],
        };
        if closed {
            self.finish(k);
        }
    }

    /// Counts and queues an event; remembers TLS failures per (client, server) address pair and
    /// flags a later plaintext session between the same pair as a plaintext fallback
    /// ([`TlsFailures`]).
    fn emit(&mut self, mut ev: SessionEvent, first_ts: i64, last_ts: i64) {
        self.tls_failures.on_event(&mut ev, first_ts, last_ts);
        self.stats.count_event(&ev);
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
        for dir in fin_order(*first_fin) {
            // Queued bytes, then whatever never arrived before a FIN (a gap), then the FIN.
            dir.of_mut(reasm)
                .close_at_fin(&mut |c| conv.deliver(ctx, dir, c, last_ts));
            if *dir.of(fin) && !*dir.of(close_seen) {
                *dir.of_mut(close_seen) = true;
                conv.on_close(dir);
            }
        }
        if flow.conv.reportable() {
            let ev = flow.event(&self.cfg);
            self.emit(ev, flow.first_ts, flow.last_ts);
        }
    }

    /// Live capture on a quiet link: the clock moves on without packets (`now_ns` is the wall
    /// clock, which live packet timestamps follow). Flows waiting on time — an RST's linger, the
    /// idle timeout — end at the sweep as they would had packets come; without this a session
    /// reset before its last bytes arrived was reported only when traffic resumed.
    pub fn advance_clock(&mut self, now_ns: i64) {
        if now_ns > self.now {
            self.now = now_ns;
        }
        self.sweep_if_due();
    }

    /// Idle flows and lingering resets are looked at every [`SWEEP_EVERY_NS`] of capture time.
    fn sweep_if_due(&mut self) {
        if self.last_sweep != i64::MIN && self.now.saturating_sub(self.last_sweep) > SWEEP_EVERY_NS
        {
            self.sweep(self.now.saturating_sub(self.cfg.idle_timeout_ns));
            self.last_sweep = self.now;
        }
    }

    fn sweep(&mut self, older_than: i64) {
        let reset_before = self.now.saturating_sub(RST_LINGER_NS);
        let mut idle = 0;
        let old: Vec<Key> = self
            .flows
            .iter()
            .filter(|f| {
                let is_idle = f.last_ts < older_than;
                idle += u64::from(is_idle);
                let rst_ts = f
                    .first_ts
                    .saturating_add(i64::from(f.rst_ms).saturating_mul(1_000_000));
                is_idle || (f.rst.is_some() && rst_ts < reset_before)
            })
            .map(|f| f.key)
            .collect();
        self.stats.flows_timed_out += idle;
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

fn dir_bit(dir: Dir) -> u8 {
    match dir {
        Dir::ToServer => 1,
        Dir::ToClient => 2,
    }
}

/// Asked the kernel to send summaries (`Flow::armed`).
const SUMMARISE: u8 = 4;

/// How long a reset connection waits for bytes its RST overtook (then they are a gap). Checked
/// with the idle sweep.
pub(crate) const RST_LINGER_NS: i64 = 2_000_000_000;

/// The idle sweep's period, in capture time (live: also while no packet comes).
const SWEEP_EVERY_NS: i64 = 10_000_000_000;

/// Queues an arm request for the directions of a TLS flow that the kernel may follow by record
/// headers now and does not yet, and for summaries once only record sizes are read (see
/// [`ArmRequest`]).
fn arm(flow: &mut Flow, arms: &mut Vec<ArmRequest>) {
    let mut next = [None, None];
    let summarise_now = flow.armed & SUMMARISE == 0 && flow.conv.summarisable();
    if summarise_now {
        flow.armed |= SUMMARISE;
    }
    for dir in [Dir::ToServer, Dir::ToClient] {
        if flow.armed & dir_bit(dir) != 0 || *dir.of(&flow.fin) {
            continue;
        }
        let seq = flow
            .conv
            .next_header_in(dir)
            .and_then(|ahead| dir.of(&flow.reasm).seq_ahead(ahead));
        if let Some(seq) = seq {
            flow.armed |= dir_bit(dir);
            *dir.of_mut(&mut next) = Some(seq);
        }
    }
    if next != [None, None] || summarise_now {
        let (client, server) = flow.roles();
        arms.push(ArmRequest {
            client,
            server,
            next_header_seq: next,
            // Every request after the first to summarise says so too: a later request for the
            // flow replaces an earlier one in the kernel's map before it is applied.
            summarise: flow.armed & SUMMARISE != 0,
        });
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

    /// A reset that overtook its sender's bytes waits for them; if they never come and no other
    /// packet does either (a quiet link in live capture), the wall clock ends the wait.
    #[test]
    fn lingering_reset_ends_on_a_quiet_link() {
        let mut t = FlowTable::new(FlowConfig::default());
        let syn = TcpFlags {
            syn: true,
            ..TcpFlags::default()
        };
        let rst = TcpFlags {
            rst: true,
            ..TcpFlags::default()
        };
        let s = 1_000_000_000;
        t.on_segment(&seg(1000, 0, syn, &[]), s);
        t.on_segment(&seg(1000, 1, TcpFlags::default(), b"EHLO a\r\n"), s + 1);
        // bytes 9..20 never arrive; the RST says the stream ended at 20
        t.on_segment(&seg(1000, 20, rst, &[]), s + 2);
        assert!(t.take_events().is_empty(), "waits for the overtaken bytes");
        t.advance_clock(s + 5_000_000_000);
        assert!(t.take_events().is_empty(), "no sweep yet");
        t.advance_clock(s + 11_000_000_000);
        assert_eq!(
            t.take_events().len(),
            1,
            "the sweep ends it without a packet"
        );
    }
}
