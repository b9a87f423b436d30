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
    pub _pad: u32,
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
    pub const COUNT: u32 = 16;
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
}
