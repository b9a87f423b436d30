//! Types shared by the kernel program (`ebpf/`) and user space (`observer/src/capture/ebpf.rs`).
//! Everything is `#[repr(C)]`, fixed-size and padding-explicit: the same bytes are read by both sides.
#![no_std]

/// Most ports the kernel program watches (the SMTP ports 25, 465, 587 plus configured ones).
pub const MAX_PORTS: usize = 16;
/// Largest packet prefix copied to user space (a power of two): a GSO super-packet can be 64 KB.
pub const MAX_CAPLEN: u32 = 65_536;

/// Canonical TCP 5-tuple: the (address, port) pair that sorts lower is `a`. IPv4 addresses are
/// stored as IPv4-mapped IPv6 (`::ffff:a.b.c.d`), so one key type serves both families.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub addr_a: [u8; 16],
    pub addr_b: [u8; 16],
    pub port_a: u16,
    pub port_b: u16,
    pub _pad: u32,
}

impl FlowKey {
    /// The canonical key of a packet from `src` to `dst`, and the packet's direction in it
    /// (0: a → b, 1: b → a).
    pub fn canonical(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16) -> (FlowKey, usize) {
        if le(&src, sport, &dst, dport) {
            let k = FlowKey {
                addr_a: src,
                addr_b: dst,
                port_a: sport,
                port_b: dport,
                _pad: 0,
            };
            (k, 0)
        } else {
            let k = FlowKey {
                addr_a: dst,
                addr_b: src,
                port_a: dport,
                port_b: sport,
                _pad: 0,
            };
            (k, 1)
        }
    }
}

/// `(a, ap) <= (b, bp)`, written out byte by byte (the BPF target has no `memcmp`).
#[inline(always)]
fn le(a: &[u8; 16], ap: u16, b: &[u8; 16], bp: u16) -> bool {
    let mut i = 0;
    while i < 16 {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    ap <= bp
}

/// IPv4-mapped IPv6 form of an IPv4 address.
pub fn mapped_v4(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

/// `FlowState::flags` bits.
pub const FLAG_DONE: u32 = 1; // user space said the handshake outcome is known
pub const FLAG_OVER_BUDGET_0: u32 = 2; // direction 0 spent its byte budget
pub const FLAG_OVER_BUDGET_1: u32 = 4; // direction 1 spent its byte budget
pub const FLAG_FIN_0: u32 = 8;
pub const FLAG_FIN_1: u32 = 16;
/// Direction 0 / 1 is followed: the kernel knows where its next TLS record header is
/// (`FlowState::hdr`) and keeps track packet by packet.
pub const FLAG_FOLLOW_0: u32 = 32;
pub const FLAG_FOLLOW_1: u32 = 64;
/// Summary mode: the followed directions of this flow go up as summaries instead of packets.
pub const FLAG_SUMMARISE: u32 = 512;
/// `FlowState::exp[d]` holds the sequence number after the last in-order payload of direction d.
pub const FLAG_EXP_0: u32 = 128;
pub const FLAG_EXP_1: u32 = 256;

/// Most record headers one summary carries (a packet with more goes up whole).
pub const MAX_SUMMARY_RECORDS: usize = 32;

/// `PacketMeta::kind` bits.
pub mod kind {
    /// The sample is a summary: a [`super::Summary`] follows the metadata, then the frame's
    /// headers only (its payload is not sent).
    pub const SUMMARY: u32 = 1;
    /// Every payload byte of this direction before `PacketMeta::in_order_to` passed the kernel
    /// in order; those user space did not get were TLS record bodies the kernel skipped (not
    /// loss).
    pub const IN_ORDER: u32 = 2;
    /// After this packet the kernel follows its direction's record headers.
    pub const FOLLOWING: u32 = 4;
}

/// Per-flow kernel state (LRU hash value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowState {
    /// TCP payload bytes seen per direction (forwarded or not).
    pub bytes: [u64; 2],
    pub packets: [u64; 2],
    /// Payload bytes forwarded to user space, per direction (the budget counts these).
    pub forwarded: [u64; 2],
    pub first_ns: u64,
    pub last_ns: u64,
    pub flags: u32,
    pub _pad: u32,
    /// Summary mode: sequence number of the next TLS record header, per direction.
    pub hdr: [u32; 2],
    /// Sequence number after the last in-order payload byte, per direction (`FLAG_EXP_*`).
    pub exp: [u32; 2],
    /// Packets of each direction not sent since its last sample (summary mode: body-only packets
    /// and ACKs); the next sample of that direction carries the count (`PacketMeta::unsent`).
    pub unsent: [u32; 2],
    /// The flow's lock (0 free, 1 held by a CPU updating the flow; kernel only, atomic: BPF has
    /// 64-bit atomics only).
    pub lock: u64,
}

/// Written by user space only (`ARM` map). For each direction in `dirs` (bit 0: direction 0,
/// bit 1: direction 1) not followed yet, `hdr` is the sequence number of its next TLS record
/// header as user space's reassembly knows it: the kernel starts following the direction when
/// that header has not passed yet (it lies at or after the kernel's `exp`), else refuses.
/// `summarise` (0/1): from now on, followed directions go up as summaries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ArmRequest {
    pub hdr: [u32; 2],
    pub dirs: u32,
    pub summarise: u32,
}

/// One TLS record header found by the kernel: its offset in the packet's payload and its bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    pub offset: u32,
    pub bytes: [u8; 5],
    pub _pad: [u8; 3],
}

/// The record headers of one packet in summary mode. On the wire (after `PacketMeta`, when its
/// kind has `kind::SUMMARY`) only `count` records are sent, directly followed by the frame's
/// headers (`PacketMeta::caplen` bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub count: u32,
    /// The packet's payload length (its bytes after the last header are record body).
    pub payload_len: u32,
    pub records: [RecordHeader; MAX_SUMMARY_RECORDS],
}

/// Configuration written by user space before attaching (array map, one element).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    pub ports: [u16; MAX_PORTS],
    pub nports: u32,
    /// Bytes before the IP header: 14 on Ethernet (and loopback), 0 on raw-IP devices.
    pub l2_len: u32,
    /// Per-direction payload bytes forwarded before the kernel stops on its own (backstop for
    /// flows user space never marks done).
    pub budget: u64,
    /// Wake the reader once this many bytes wait in the ring (it polls on a timer otherwise).
    pub wake_bytes: u64,
}

/// Header of each packet sample, followed by `caplen` packet bytes (from the link layer).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PacketMeta {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC); user space adds the offset to wall time.
    pub ktime_ns: u64,
    /// Length of the packet on the wire (skb->len).
    pub len: u32,
    /// Bytes that follow this header.
    pub caplen: u32,
    /// 0: ingress, 1: egress.
    pub egress: u32,
    /// `kind::*` bits (0: a plain packet).
    pub kind: u32,
    /// Packets of this direction the kernel did not send since its previous sample (summary
    /// mode), so user space counts every packet.
    pub unsent: u32,
    /// With `kind::IN_ORDER`: the sequence number up to which this direction's bytes passed the
    /// kernel in order (this packet's own for an in-order one).
    pub in_order_to: u32,
}

/// Counter indexes in the per-CPU `COUNTERS` array (user space sums the CPUs).
pub mod counter {
    /// TCP packets on a watched port.
    pub const PACKETS_SEEN: u32 = 0;
    pub const BYTES_SEEN: u32 = 1;
    /// Packets (and their captured bytes) sent to user space.
    pub const PACKETS_FORWARDED: u32 = 2;
    pub const BYTES_FORWARDED: u32 = 3;
    /// Packets of tracked flows not sent because the flow was done.
    pub const PACKETS_SKIPPED_DONE: u32 = 4;
    pub const BYTES_SKIPPED_DONE: u32 = 5;
    /// Packets not sent because their direction spent its byte budget.
    pub const PACKETS_SKIPPED_BUDGET: u32 = 6;
    pub const BYTES_SKIPPED_BUDGET: u32 = 7;
    /// Packets on a watched port of no tracked flow (no SYN seen, not SMTP/TLS-looking).
    pub const PACKETS_UNTRACKED: u32 = 8;
    pub const BYTES_UNTRACKED: u32 = 9;
    pub const FLOWS_TRACKED: u32 = 10;
    /// Flow insertions the map refused.
    pub const MAP_INSERT_FAILED: u32 = 11;
    pub const FLOWS_MARKED_DONE: u32 = 12;
    pub const FLOWS_OVER_BUDGET: u32 = 13;
    /// Frames that are not TCP over IPv4/IPv6 (or too short to read).
    pub const NOT_PARSED: u32 = 14;
    /// Packets to forward that the ring had no room for (lost: user space is behind).
    pub const RING_FULL: u32 = 15;
    /// Summary mode: packets sent as summaries, and their bytes (which stayed in the kernel; the
    /// summaries' own bytes count as `BYTES_FORWARDED`).
    pub const PACKETS_SUMMARISED: u32 = 16;
    pub const BYTES_SUMMARISED: u32 = 17;
    /// Summary mode: packets of record bodies only, and ACKs (nothing sent), and their bytes.
    pub const PACKETS_SKIPPED_BODY: u32 = 18;
    pub const BYTES_SKIPPED_BODY: u32 = 19;
    /// Directions that started being followed, and arm requests refused (the header had passed).
    pub const ARMS_APPLIED: u32 = 20;
    pub const ARMS_REFUSED: u32 = 21;
    /// Followed directions the kernel lost (out of order, split header, odd record, too many
    /// records in one packet, FIN/RST): their packets go up whole until user space arms again.
    pub const SUMMARY_EXITS: u32 = 22;
    /// SYNs (and SYN-ACKs) of unknown connections, kept in the half-open map (and its refusals).
    pub const HALF_OPEN_SEEN: u32 = 23;
    pub const HALF_OPEN_INSERT_FAILED: u32 = 24;
    /// Packets that found their flow's lock held by another CPU for the whole spin: sent whole,
    /// without an in-order claim, the flow's state untouched.
    pub const LOCK_BUSY: u32 = 25;
    /// Packets that found their flow's lock held and waited for it (another CPU was updating the
    /// flow at that moment).
    pub const LOCK_WAITED: u32 = 26;
    pub const COUNT: u32 = 27;
    /// Names, in index order (metric label values).
    pub const NAMES: [&str; COUNT as usize] = [
        "packets_seen",
        "bytes_seen",
        "packets_forwarded",
        "bytes_forwarded",
        "packets_skipped_done",
        "bytes_skipped_done",
        "packets_skipped_budget",
        "bytes_skipped_budget",
        "packets_untracked",
        "bytes_untracked",
        "flows_tracked",
        "map_insert_failed",
        "flows_marked_done",
        "flows_over_budget",
        "not_parsed",
        "ring_full",
        "packets_summarised",
        "bytes_summarised",
        "packets_skipped_body",
        "bytes_skipped_body",
        "arms_applied",
        "arms_refused",
        "summary_exits",
        "half_open_seen",
        "half_open_insert_failed",
        "lock_busy",
        "lock_waited",
    ];
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain #[repr(C)] structs of integers with explicit padding fields: every bit pattern
    // is valid and there are no implicit padding bytes.
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowState {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::PacketMeta {}
    unsafe impl aya::Pod for super::ArmRequest {}
}
