//! ekuwatch's kernel program (TC classifier on ingress and egress). It only observes: every packet
//! is passed on unchanged with "no verdict" (`TC_ACT_UNSPEC`, which is also `TCX_NEXT`): the next
//! program on the hook, or the kernel's default, decides — as if ekuwatch were not there.
//!
//! For TCP packets on a watched port it keeps one LRU-hash entry per connection (canonical
//! 5-tuple), created on a SYN to a watched port or, for connections already running when the
//! program was attached, on a first payload that looks like SMTP or TLS. Packets of a live flow go
//! to user space through a perf buffer (metadata + the packet bytes). Forwarding stops when user
//! space puts the flow in `DONE` (its handshake outcome is known), or per direction when the
//! direction has forwarded `budget` payload bytes (a backstop); after that only FIN/RST packets
//! go up, so user space still sees the connection end. Everything skipped is counted.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_skb_load_bytes},
    macros::{classifier, map},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::TcContext,
    EbpfContext,
};
use ekuwatch_ebpf_common::{
    counter, mapped_v4, Config, FlowKey, FlowState, PacketMeta, FLAG_DONE, FLAG_FIN_0, FLAG_FIN_1,
    FLAG_OVER_BUDGET_0, FLAG_OVER_BUDGET_1, MAX_CAPLEN, MAX_PORTS,
};

/// A packet on its way to the ring: metadata and up to `MAX_CAPLEN` bytes, assembled in a per-CPU
/// slot (the stack is 512 bytes) and copied into the ring with one `bpf_ringbuf_output`.
#[repr(C)]
struct Sample {
    meta: PacketMeta,
    data: [u8; MAX_CAPLEN as usize],
}

/// A fresh flow's state (inserted by reference from read-only data, not from the small stack).
static ZERO: FlowState = FlowState {
    bytes: [0; 2],
    packets: [0; 2],
    forwarded: [0; 2],
    first_ns: 0,
    last_ns: 0,
    flags: 0,
    _pad: 0,
};

#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);
#[map]
static FLOWS: LruHashMap<FlowKey, FlowState> = LruHashMap::with_max_entries(65_536, 0);
/// Written by user space only: flows whose handshake outcome is known. The program moves the mark
/// into the flow's own state and deletes the entry.
#[map]
static DONE: LruHashMap<FlowKey, u32> = LruHashMap::with_max_entries(16_384, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);
/// One ring for all CPUs (packets arrive in order). Its size is set by user space at load time.
#[map]
static PACKETS: RingBuf = RingBuf::with_byte_size(1 << 24, 0);
/// One slot per CPU (indexed by CPU id; user space sizes it): per-CPU maps cap values at 32 KB.
/// TC programs do not nest on a CPU, so a slot is never used twice at once.
#[map]
static SCRATCH: Array<Sample> = Array::with_max_entries(1, 0);

/// `TC_ACT_UNSPEC` / `TCX_NEXT`.
const NO_VERDICT: i32 = -1;

#[classifier]
pub fn ekuwatch_ingress(ctx: TcContext) -> i32 {
    observe(&ctx, 0);
    NO_VERDICT
}

#[classifier]
pub fn ekuwatch_egress(ctx: TcContext) -> i32 {
    observe(&ctx, 1);
    NO_VERDICT
}

#[inline(always)]
fn count(idx: u32, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: a per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *p += n };
    }
}

/// The parsed headers of a TCP packet (the addresses go straight into the flow key).
struct Tcp {
    key: FlowKey,
    dir: usize,
    sport: u16,
    dport: u16,
    flags: u8,
    payload_off: u32,
    payload_len: u32,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// Reads the IP and TCP headers. Small loads only: the BPF stack is 512 bytes.
#[inline(always)]
fn parse(ctx: &TcContext, l2_len: usize) -> Option<Tcp> {
    let mut l3 = l2_len;
    let ethertype = if l2_len >= 14 {
        let mut et = u16::from_be(ctx.load::<u16>(12).ok()?);
        if et == 0x8100 || et == 0x88a8 {
            et = u16::from_be(ctx.load::<u16>(16).ok()?);
            l3 += 4;
        }
        et
    } else {
        // Raw IP: the version nibble decides.
        match ctx.load::<u8>(0).ok()? >> 4 {
            4 => 0x0800,
            6 => 0x86dd,
            _ => return None,
        }
    };
    let (src, dst, l4, ip_payload_len) = if ethertype == 0x0800 {
        let h = ctx.load::<[u8; 12]>(l3).ok()?;
        let ihl = u32::from(h[0] & 0x0f) * 4;
        let total = u32::from(u16::from_be_bytes([h[2], h[3]]));
        let frag = u16::from_be_bytes([h[6], h[7]]) & 0x3fff;
        if h[9] != 6 || ihl < 20 || frag != 0 || total < ihl {
            return None;
        }
        let a = ctx.load::<[u8; 8]>(l3 + 12).ok()?;
        let src = mapped_v4([a[0], a[1], a[2], a[3]]);
        let dst = mapped_v4([a[4], a[5], a[6], a[7]]);
        (src, dst, l3 as u32 + ihl, total - ihl)
    } else if ethertype == 0x86dd {
        let h = ctx.load::<[u8; 8]>(l3).ok()?;
        if h[6] != 6 {
            return None; // extension headers: not followed (rare on SMTP)
        }
        let src = ctx.load::<[u8; 16]>(l3 + 8).ok()?;
        let dst = ctx.load::<[u8; 16]>(l3 + 24).ok()?;
        (
            src,
            dst,
            l3 as u32 + 40,
            u32::from(u16::from_be_bytes([h[4], h[5]])),
        )
    } else {
        return None;
    };
    let t = ctx.load::<[u8; 14]>(l4 as usize).ok()?;
    let doff = u32::from(t[12] >> 4) * 4;
    if doff < 20 {
        return None;
    }
    let sport = u16::from_be_bytes([t[0], t[1]]);
    let dport = u16::from_be_bytes([t[2], t[3]]);
    let (key, dir) = FlowKey::canonical(src, sport, dst, dport);
    // Payload length from the IP header (frames may carry Ethernet padding), bounded by the skb.
    let in_skb = ctx.len().saturating_sub(l4 + doff);
    let by_ip = ip_payload_len.saturating_sub(doff);
    Some(Tcp {
        key,
        dir,
        sport,
        dport,
        flags: t[13],
        payload_off: l4 + doff,
        payload_len: if by_ip < in_skb { by_ip } else { in_skb },
    })
}

#[inline(always)]
fn watched(cfg: &Config, port: u16) -> bool {
    let mut i = 0;
    while i < MAX_PORTS {
        if (i as u32) < cfg.nports && cfg.ports[i] == port {
            return true;
        }
        i += 1;
    }
    false
}

/// A connection already running when the program was attached: its first payload starts like an
/// SMTP reply ("220 ", "250-"), an SMTP greeting command, or a TLS record.
#[inline(always)]
fn looks_like_smtp_or_tls(ctx: &TcContext, off: usize) -> bool {
    let Ok(b) = ctx.load::<[u8; 4]>(off) else {
        return false;
    };
    let digit = |c: u8| c.is_ascii_digit();
    if digit(b[0]) && digit(b[1]) && digit(b[2]) && (b[3] == b' ' || b[3] == b'-') {
        return true;
    }
    let up = [b[0] & 0xdf, b[1] & 0xdf, b[2] & 0xdf, b[3] & 0xdf];
    if up == *b"EHLO" || up == *b"HELO" || up == *b"STAR" || up == *b"QUIT" || up == *b"MAIL" {
        return true;
    }
    (0x14..=0x17).contains(&b[0]) && b[1] == 3 && b[2] <= 4
}

#[inline(always)]
fn observe(ctx: &TcContext, egress: u32) {
    let Some(cfg) = CONFIG.get(0) else { return };
    let Some(p) = parse(ctx, cfg.l2_len as usize) else {
        count(counter::NOT_PARSED, 1);
        return;
    };
    let sport_w = watched(cfg, p.sport);
    let dport_w = watched(cfg, p.dport);
    if !sport_w && !dport_w {
        return;
    }
    let len = u64::from(ctx.len());
    count(counter::PACKETS_SEEN, 1);
    count(counter::BYTES_SEEN, len);
    let now = unsafe { bpf_ktime_get_ns() };
    let key = &p.key;
    let (syn, ack, fin, rst) = (
        p.flags & SYN != 0,
        p.flags & ACK != 0,
        p.flags & FIN != 0,
        p.flags & RST != 0,
    );

    let state = match FLOWS.get_ptr_mut(key) {
        Some(s) => s,
        None => {
            let new_flow = (syn && !rst && (dport_w || ack))
                || (p.payload_len >= 4 && looks_like_smtp_or_tls(ctx, p.payload_off as usize));
            if !new_flow {
                count(counter::PACKETS_UNTRACKED, 1);
                count(counter::BYTES_UNTRACKED, len);
                return;
            }
            if FLOWS.insert(key, &ZERO, 0).is_err() {
                count(counter::MAP_INSERT_FAILED, 1);
                return;
            }
            count(counter::FLOWS_TRACKED, 1);
            match FLOWS.get_ptr_mut(key) {
                Some(s) => {
                    // SAFETY: the value just inserted, valid for this run.
                    unsafe { (*s).first_ns = now };
                    s
                }
                None => return,
            }
        }
    };
    // SAFETY: a value pointer from the map lookup, valid for this program run. Two CPUs may update
    // the same flow at once (ingress and egress); the counters are then approximate.
    let st = unsafe { &mut *state };
    st.last_ns = now;
    let d = p.dir & 1;
    st.packets[d] += 1;
    st.bytes[d] += u64::from(p.payload_len);
    if st.flags & FLAG_DONE == 0 && DONE.get_ptr(key).is_some() {
        st.flags |= FLAG_DONE;
        let _ = DONE.remove(key);
        count(counter::FLOWS_MARKED_DONE, 1);
    }
    let over = if d == 0 {
        FLAG_OVER_BUDGET_0
    } else {
        FLAG_OVER_BUDGET_1
    };
    let control = fin || rst || syn;
    let mut cut = u32::MAX;
    let forward = if st.flags & FLAG_DONE != 0 {
        control
    } else if st.flags & over != 0 {
        control
    } else if st.forwarded[d] + u64::from(p.payload_len) > cfg.budget {
        st.flags |= over;
        count(counter::FLOWS_OVER_BUDGET, 1);
        // This packet goes up cut after its headers: user space sees a snaplen-cut packet
        // (weird `truncated_packet`) and, at the FIN, the missing bytes as a gap.
        cut = p.payload_off;
        true
    } else {
        true
    };
    if fin {
        st.flags |= if d == 0 { FLAG_FIN_0 } else { FLAG_FIN_1 };
    }
    if forward {
        st.forwarded[d] += u64::from(p.payload_len);
        let meta = PacketMeta {
            ktime_ns: now,
            len: ctx.len(),
            caplen: 0,
            egress,
            _pad: 0,
        };
        match output(ctx, meta, cut, cfg.wake_bytes) {
            Some(caplen) => {
                count(counter::PACKETS_FORWARDED, 1);
                count(counter::BYTES_FORWARDED, u64::from(caplen));
            }
            None => count(counter::RING_FULL, 1),
        }
    } else if st.flags & FLAG_DONE != 0 {
        count(counter::PACKETS_SKIPPED_DONE, 1);
        count(counter::BYTES_SKIPPED_DONE, len);
    } else {
        count(counter::PACKETS_SKIPPED_BUDGET, 1);
        count(counter::BYTES_SKIPPED_BUDGET, len);
    }
    // The connection is over: free the slot (a late retransmission finds no flow and is counted
    // as untracked).
    if rst || st.flags & (FLAG_FIN_0 | FLAG_FIN_1) == (FLAG_FIN_0 | FLAG_FIN_1) {
        let _ = FLOWS.remove(key);
    }
}

/// Copies the packet (up to `MAX_CAPLEN` bytes, or its first `cut`) behind its metadata into the ring. The consumer is
/// woken only once `wake_bytes` are waiting (it also polls on a short timer): one wake-up per
/// packet would cost more than everything else together. Returns the bytes copied, None when the
/// ring is full (the sample is lost).
#[inline(always)]
fn output(ctx: &TcContext, mut meta: PacketMeta, cut: u32, wake_bytes: u64) -> Option<u32> {
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let slot = SCRATCH.get_ptr_mut(cpu)?;
    // SAFETY: this CPU's slot; nothing else uses it while the program runs.
    let sample = unsafe { &mut *slot };
    let len = ctx.len();
    if len == 0 {
        return None;
    }
    let n = if len > cut { cut } else { len };
    if n == 0 {
        return None;
    }
    let n = if n > MAX_CAPLEN { MAX_CAPLEN } else { n };
    // Masked so the verifier sees the bound: 1..=MAX_CAPLEN (a power of two).
    let n = ((n - 1) & (MAX_CAPLEN - 1)) + 1;
    meta.caplen = n;
    sample.meta = meta;
    // SAFETY: `n` ≤ the slot's data size; the helper bounds-checks the packet side.
    let r = unsafe {
        bpf_skb_load_bytes(
            ctx.as_ptr() as *const _,
            0,
            sample.data.as_mut_ptr() as *mut _,
            n,
        )
    };
    if r != 0 {
        return None;
    }
    let size = core::mem::size_of::<PacketMeta>() + n as usize;
    // SAFETY: `size` ≤ size_of::<Sample>() (the slot), all of it initialised above.
    let bytes = unsafe { core::slice::from_raw_parts(slot as *const u8, size) };
    let flags = if PACKETS.query(BPF_RB_AVAIL_DATA as u64) >= wake_bytes {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    PACKETS.output::<[u8]>(bytes, flags as u64).ok()?;
    Some(n)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
