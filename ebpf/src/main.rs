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
// The flow lock's compare-and-swap: core's atomic types have no CAS on the BPF target (it needs
// BPF v3, which the build selects), the intrinsics do.
#![allow(internal_features)]
#![feature(core_intrinsics)]

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_loop, bpf_skb_load_bytes},
    macros::{classifier, map},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::TcContext,
    EbpfContext,
};
use core::intrinsics::{atomic_cxchg, atomic_xchg, AtomicOrdering};
use ekuwatch_ebpf_common::{
    counter, kind, mapped_v4, ArmRequest, Config, FlowKey, FlowState, PacketMeta, RecordHeader,
    Summary, FLAG_DONE, FLAG_EXP_0, FLAG_EXP_1, FLAG_FIN_0, FLAG_FIN_1, FLAG_FOLLOW_0,
    FLAG_FOLLOW_1, FLAG_OVER_BUDGET_0, FLAG_OVER_BUDGET_1, FLAG_SUMMARISE, MAX_CAPLEN, MAX_PORTS,
    MAX_SUMMARY_RECORDS,
};

/// A packet on its way to the ring: metadata and up to `MAX_CAPLEN` bytes, assembled in a per-CPU
/// slot (the stack is 512 bytes) and copied into the ring with one `bpf_ringbuf_output`.
#[repr(C)]
struct Sample {
    meta: PacketMeta,
    data: [u8; MAX_CAPLEN as usize],
}

/// Frame headers a summary carries at most (Ethernet + VLAN + IPv6 + TCP with options is 138).
const SUMMARY_HEADERS: u32 = 256;

/// A summary on its way to the ring, assembled in the same per-CPU slot as a packet.
#[repr(C)]
struct SummarySample {
    meta: PacketMeta,
    summary: Summary,
    data: [u8; SUMMARY_HEADERS as usize],
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
    hdr: [0; 2],
    exp: [0; 2],
    unsent: [0; 2],
    lock: 0,
};

#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);
#[map]
static FLOWS: LruHashMap<FlowKey, FlowState> = LruHashMap::with_max_entries(65_536, 0);
/// Written by user space only: flows whose handshake outcome is known. The program moves the mark
/// into the flow's own state and deletes the entry.
#[map]
static DONE: LruHashMap<FlowKey, u32> = LruHashMap::with_max_entries(16_384, 0);
/// Connections between their SYN and their first ACK or payload (see `observe`): kept apart so
/// that half-open ones (a SYN flood) cannot evict established ones from `FLOWS`.
#[map]
static HALF_OPEN: LruHashMap<FlowKey, u32> = LruHashMap::with_max_entries(65_536, 0);
/// Written by user space only: switch flows to summary mode (`ArmRequest`). The program applies
/// or refuses the request at the flow's next packet and deletes it.
#[map]
static ARM: LruHashMap<FlowKey, ArmRequest> = LruHashMap::with_max_entries(16_384, 0);
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
    seq: u32,
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
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
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
    let (syn, ack, rst) = (p.flags & SYN != 0, p.flags & ACK != 0, p.flags & RST != 0);

    let state = match FLOWS.get_ptr_mut(key) {
        Some(s) => s,
        None => {
            if syn && !rst && (dport_w || ack) {
                // Half-open: the SYN (and SYN-ACK) go up — user space needs the initial sequence
                // numbers — but the connection enters FLOWS only when it carries on (the
                // handshake's ACK, or a payload). A SYN flood churns HALF_OPEN, never FLOWS.
                if HALF_OPEN.insert(key, &1, 0).is_err() {
                    count(counter::HALF_OPEN_INSERT_FAILED, 1);
                } else {
                    count(counter::HALF_OPEN_SEEN, 1);
                }
                send_meta(
                    ctx,
                    whole(ctx, now, egress, 0, 0, 0),
                    u32::MAX,
                    cfg.wake_bytes,
                );
                return;
            }
            let half_open = HALF_OPEN.get_ptr(key).is_some();
            let new_flow = half_open
                || (p.payload_len >= 4 && looks_like_smtp_or_tls(ctx, p.payload_off as usize));
            if !new_flow {
                count(counter::PACKETS_UNTRACKED, 1);
                count(counter::BYTES_UNTRACKED, len);
                return;
            }
            if half_open {
                let _ = HALF_OPEN.remove(key);
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
    // One CPU at a time updates a flow: packets of one connection can run on two CPUs at once
    // (ingress and egress; veth or RPS spreading one direction), and the kernel's in-order
    // bookkeeping and its samples in the ring must be in the same order (a summary's claim "every
    // byte before X passed in order" read out of order skips bytes user space never got).
    if !lock(state) {
        // Held by the other CPU far longer than a packet takes: this packet goes up whole with no
        // claim and the flow's state is untouched (the next in-order check sees the packet as
        // missing and leaves summary mode: user space's reassembly sorts it out, never silently).
        count(counter::LOCK_BUSY, 1);
        send_meta(
            ctx,
            whole(ctx, now, egress, 0, 0, 0),
            u32::MAX,
            cfg.wake_bytes,
        );
        return;
    }
    // SAFETY: a value pointer from the map lookup, valid for this program run, and this CPU holds
    // the flow's lock until `unlock` below.
    let st = unsafe { &mut *state };
    let over = update(ctx, cfg, st, &p, egress, now, len);
    unlock(state);
    if over {
        // Freed after the unlock (a freed LRU element is reused at once; the lock word must not be
        // written after this). A late retransmission finds no flow and is counted as untracked.
        let _ = FLOWS.remove(key);
    }
}

/// Tries this many times at most to take a flow's lock (the holder is another CPU in the middle of
/// one packet: a few microseconds). `bpf_loop` (kernel ≥ 5.17): its callback is verified once,
/// where an open-coded loop is walked iteration by iteration (1 024 at most).
const SPIN: u32 = 1 << 14;

/// The state `try_lock` works on (on the caller's stack, handed to `bpf_loop`).
#[repr(C)]
struct Spin {
    lock: *mut u64,
    won: u64,
    tries: u64,
}

/// One attempt: 1 (stop) once the lock is taken, 0 (go on) while it is held.
extern "C" fn try_lock(_i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the `Spin` `lock` passed to `bpf_loop`, alive for the whole loop; its
    // `lock` points into a map value valid for this program run, accessed only atomically.
    let s = unsafe { &mut *(ctx as *mut Spin) };
    s.tries += 1;
    // A volatile read first (BPF v3 has no atomic load; an aligned 64-bit load is single-copy
    // atomic), so waiting does not hammer the cache line with exchanges.
    // SAFETY: as above.
    if unsafe { core::ptr::read_volatile(s.lock) } != 0 {
        return 0;
    }
    // SAFETY: as above.
    let (_, won) = unsafe {
        atomic_cxchg::<u64, { AtomicOrdering::Acquire }, { AtomicOrdering::Relaxed }>(s.lock, 0, 1)
    };
    if won {
        s.won = 1;
        return 1;
    }
    0
}

/// Takes the flow's lock (`FlowState::lock`: 0 free, 1 held). False when it stayed busy.
#[inline(always)]
fn lock(st: *mut FlowState) -> bool {
    let mut s = Spin {
        // SAFETY: only the address is taken.
        lock: unsafe { core::ptr::addr_of_mut!((*st).lock) },
        won: 0,
        tries: 0,
    };
    // SAFETY: `try_lock` is a BPF callback of the right signature; `s` outlives the call.
    unsafe {
        bpf_loop(
            SPIN,
            try_lock as *mut core::ffi::c_void,
            &mut s as *mut Spin as *mut core::ffi::c_void,
            0,
        )
    };
    if s.tries > 1 {
        count(counter::LOCK_WAITED, 1);
    }
    s.won == 1
}

#[inline(always)]
fn unlock(st: *mut FlowState) {
    // SAFETY: as in `lock`. An exchange (a full barrier on BPF), not a plain store: every write
    // made under the lock is visible to the next holder.
    unsafe {
        atomic_xchg::<u64, { AtomicOrdering::Release }>(core::ptr::addr_of_mut!((*st).lock), 0)
    };
}

/// A tracked flow's packet, with the flow's lock held. True when the connection is over.
#[inline(always)]
fn update(
    ctx: &TcContext,
    cfg: &Config,
    st: &mut FlowState,
    p: &Tcp,
    egress: u32,
    now: u64,
    len: u64,
) -> bool {
    let key = &p.key;
    let (fin, rst) = (p.flags & FIN != 0, p.flags & RST != 0);
    st.last_ns = now;
    let d = p.dir & 1;
    st.packets[d] += 1;
    st.bytes[d] += u64::from(p.payload_len);
    if st.flags & FLAG_DONE == 0 && DONE.get_ptr(key).is_some() {
        st.flags |= FLAG_DONE;
        let _ = DONE.remove(key);
        count(counter::FLOWS_MARKED_DONE, 1);
    }
    if let Some(req) = ARM.get_ptr(key) {
        // SAFETY: a value pointer from the map lookup, read at once.
        let req = unsafe { *req };
        let _ = ARM.remove(key);
        apply_arm(st, &req);
    }
    let end = p.seq.wrapping_add(p.payload_len);
    let following = if d == 0 { FLAG_FOLLOW_0 } else { FLAG_FOLLOW_1 };
    if st.flags & following != 0 && st.flags & FLAG_DONE == 0 {
        follow(ctx, st, p, d, egress, now, cfg.wake_bytes);
    } else {
        if p.payload_len > 0 {
            let exp = if d == 0 { FLAG_EXP_0 } else { FLAG_EXP_1 };
            if st.flags & exp == 0 || after(end, st.exp[d]) {
                st.exp[d] = end;
                st.flags |= exp;
            }
        }
        full(ctx, st, p, d, egress, now, cfg.budget, cfg.wake_bytes, len);
    }
    if fin {
        st.flags |= if d == 0 { FLAG_FIN_0 } else { FLAG_FIN_1 };
    }
    // The connection is over: its slot is freed once the lock is released.
    rst || st.flags & (FLAG_FIN_0 | FLAG_FIN_1) == (FLAG_FIN_0 | FLAG_FIN_1)
}

/// Sequence number `a` lies after `b` (wrapping).
#[inline(always)]
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Applies an arm request: a direction not followed yet is followed from the header user space
/// named, when it has not passed the kernel yet (at or after the end of the last in-order
/// payload); `summarise` switches the flow's followed directions to summaries.
#[inline(always)]
fn apply_arm(st: &mut FlowState, req: &ArmRequest) {
    if req.summarise != 0 {
        st.flags |= FLAG_SUMMARISE;
    }
    let mut d = 0;
    while d < 2 {
        let (exp_flag, sum_flag) = if d == 0 {
            (FLAG_EXP_0, FLAG_FOLLOW_0)
        } else {
            (FLAG_EXP_1, FLAG_FOLLOW_1)
        };
        if req.dirs & (1 << d) != 0 && st.flags & sum_flag == 0 {
            let hdr = req.hdr[d];
            if st.flags & exp_flag != 0 && !after(st.exp[d], hdr) {
                st.hdr[d] = hdr;
                st.flags |= sum_flag;
                if st.flags & FLAG_SUMMARISE != 0 {
                    // Summarised again after a disorder: the budget (a backstop for flows that
                    // are never summarised) counts from here.
                    st.forwarded[d] = 0;
                }
                count(counter::ARMS_APPLIED, 1);
            } else {
                count(counter::ARMS_REFUSED, 1);
            }
        }
        d += 1;
    }
}

/// Full-packet mode: forward until the flow is done or its direction spent its budget.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn full(
    ctx: &TcContext,
    st: &mut FlowState,
    p: &Tcp,
    d: usize,
    egress: u32,
    now: u64,
    budget: u64,
    wake_bytes: u64,
    len: u64,
) {
    let control = p.flags & (FIN | RST | SYN) != 0;
    let over = if d == 0 {
        FLAG_OVER_BUDGET_0
    } else {
        FLAG_OVER_BUDGET_1
    };
    let mut cut = u32::MAX;
    let forward = if st.flags & FLAG_DONE != 0 || st.flags & over != 0 {
        control
    } else if st.forwarded[d] + u64::from(p.payload_len) > budget {
        st.flags |= over;
        count(counter::FLOWS_OVER_BUDGET, 1);
        // This packet goes up cut after its headers: user space sees a snaplen-cut packet
        // (weird `truncated_packet`) and, at the FIN, the missing bytes as a gap.
        cut = p.payload_off;
        true
    } else {
        true
    };
    if forward {
        st.forwarded[d] += u64::from(p.payload_len);
        send_packet(ctx, st, d, now, egress, 0, 0, cut, wake_bytes);
    } else if st.flags & FLAG_DONE != 0 {
        count(counter::PACKETS_SKIPPED_DONE, 1);
        count(counter::BYTES_SKIPPED_DONE, len);
    } else {
        count(counter::PACKETS_SKIPPED_BUDGET, 1);
        count(counter::BYTES_SKIPPED_BUDGET, len);
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn send_packet(
    ctx: &TcContext,
    st: &mut FlowState,
    d: usize,
    now: u64,
    egress: u32,
    kind: u32,
    in_order_to: u32,
    cut: u32,
    wake_bytes: u64,
) {
    let meta = whole(ctx, now, egress, kind, st.unsent[d], in_order_to);
    st.unsent[d] = 0;
    send_meta(ctx, meta, cut, wake_bytes);
}

/// The metadata of a packet that goes up whole (`caplen` is set when it is copied).
#[inline(always)]
fn whole(
    ctx: &TcContext,
    now: u64,
    egress: u32,
    kind: u32,
    unsent: u32,
    in_order_to: u32,
) -> PacketMeta {
    PacketMeta {
        ktime_ns: now,
        len: ctx.len(),
        caplen: 0,
        egress,
        kind,
        unsent,
        in_order_to,
    }
}

#[inline(always)]
fn send_meta(ctx: &TcContext, meta: PacketMeta, cut: u32, wake_bytes: u64) {
    match output(ctx, meta, cut, wake_bytes) {
        Some(caplen) => {
            count(counter::PACKETS_FORWARDED, 1);
            count(counter::BYTES_FORWARDED, u64::from(caplen));
        }
        None => count(counter::RING_FULL, 1),
    }
}

/// A followed direction: track its TLS record headers through its in-order packets. Before
/// summary mode the packets go up whole (the kernel only keeps track, so that summary mode can
/// start at once however far user space lags behind). In summary mode a packet that holds
/// headers goes up as a summary (its frame headers and the record headers); a packet of body
/// bytes only, or an ACK, goes nowhere. Anything the kernel cannot follow or summarise — a packet
/// out of order, a header split across packets, a header that is not TLS, a record that is not
/// application data, more headers than a summary holds, FIN/RST/SYN — goes up whole and ends
/// following the direction: user space's reassembly is the authority and arms it again.
#[inline(always)]
fn follow(
    ctx: &TcContext,
    st: &mut FlowState,
    p: &Tcp,
    d: usize,
    egress: u32,
    now: u64,
    wake: u64,
) {
    let sum_flag = if d == 0 { FLAG_FOLLOW_0 } else { FLAG_FOLLOW_1 };
    let summarise = st.flags & FLAG_SUMMARISE != 0;
    let in_order = p.seq == st.exp[d];
    let control = p.flags & (FIN | RST | SYN) != 0;
    if p.payload_len == 0 && !control {
        if !summarise {
            send_packet(ctx, st, d, now, egress, kind::FOLLOWING, 0, u32::MAX, wake);
            return;
        }
        // An ACK: only the other direction's bytes matter, and they are followed there.
        st.unsent[d] = st.unsent[d].wrapping_add(1);
        count(counter::PACKETS_SKIPPED_BODY, 1);
        count(counter::BYTES_SKIPPED_BODY, u64::from(ctx.len()));
        return;
    }
    if !in_order || control {
        // Out of order (a gap, a retransmission) or the end: this packet goes up whole, and
        // with it how far this direction passed in order (the bytes before were seen).
        st.flags &= !sum_flag;
        count(counter::SUMMARY_EXITS, 1);
        let passed = st.exp[d];
        // From now on `exp` is the furthest byte seen, as in full mode: an arm is accepted only
        // for a header beyond it.
        let end = p.seq.wrapping_add(p.payload_len);
        if after(end, passed) {
            st.exp[d] = end;
        }
        // The claim is needed only where bytes were skipped (summarising); made without need
        // it would be wrong when two CPUs hand packets of a direction to the ring out of the
        // order they updated the flow in.
        let k = if summarise { kind::IN_ORDER } else { 0 };
        send_packet(ctx, st, d, now, egress, k, passed, u32::MAX, wake);
        return;
    }
    let end = p.seq.wrapping_add(p.payload_len);
    st.exp[d] = end;
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let Some(slot) = SCRATCH.get_ptr_mut(cpu) else {
        return;
    };
    // SAFETY: this CPU's slot (larger than a SummarySample); nothing else uses it meanwhile.
    let sample = unsafe { &mut *(slot as *mut SummarySample) };
    let mut n = 0usize;
    let mut hdr = st.hdr[d];
    let mut ok = true;
    let mut i = 0;
    while i < MAX_SUMMARY_RECORDS {
        if !after(end, hdr) {
            break;
        }
        let off = hdr.wrapping_sub(p.seq);
        if off > p.payload_len || p.payload_len - off < 5 {
            ok = false; // split across packets (or behind us)
            break;
        }
        let Ok(b) = ctx.load::<[u8; 5]>((p.payload_off + off) as usize) else {
            ok = false;
            break;
        };
        let rlen = u32::from(u16::from_be_bytes([b[3], b[4]]));
        if !(20..=24).contains(&b[0]) || b[1] != 3 || rlen > 16384 + 2048 {
            ok = false;
            break;
        }
        if summarise && b[0] != 23 {
            // Not application data (a ChangeCipherSpec, a plaintext alert, a handshake
            // message): user space may want its body, so the packet goes up whole.
            ok = false;
            break;
        }
        if let Some(r) = sample.summary.records.get_mut(n) {
            *r = RecordHeader {
                offset: off,
                bytes: b,
                _pad: [0; 3],
            };
        }
        n += 1;
        hdr = hdr.wrapping_add(5 + rlen);
        i += 1;
    }
    if ok && after(end, hdr) {
        ok = false; // more headers than a summary holds
    }
    if !ok {
        st.flags &= !sum_flag;
        count(counter::SUMMARY_EXITS, 1);
        let k = if summarise { kind::IN_ORDER } else { 0 };
        send_packet(ctx, st, d, now, egress, k, p.seq, u32::MAX, wake);
        return;
    }
    st.hdr[d] = hdr;
    if !summarise {
        // Nothing was skipped: a plain packet (and the kernel follows the direction).
        send_packet(ctx, st, d, now, egress, kind::FOLLOWING, 0, u32::MAX, wake);
        return;
    }
    if n == 0 {
        st.unsent[d] = st.unsent[d].wrapping_add(1);
        count(counter::PACKETS_SKIPPED_BODY, 1);
        count(counter::BYTES_SKIPPED_BODY, u64::from(ctx.len()));
        return;
    }
    sample.summary.count = n as u32;
    sample.summary.payload_len = p.payload_len;
    let hl = if p.payload_off > SUMMARY_HEADERS {
        SUMMARY_HEADERS
    } else {
        p.payload_off
    };
    if hl == 0 {
        return;
    }
    // Masked so the verifier sees the bound: 1..=SUMMARY_HEADERS (a power of two).
    let hl = ((hl - 1) & (SUMMARY_HEADERS - 1)) + 1;
    sample.meta = PacketMeta {
        ktime_ns: now,
        len: ctx.len(),
        caplen: hl,
        egress,
        kind: kind::SUMMARY | kind::IN_ORDER | kind::FOLLOWING,
        unsent: st.unsent[d],
        in_order_to: p.seq,
    };
    // The frame's headers go right after the `n` record headers (the sample is sent compact:
    // metadata, count and payload length, `n` records, the frame's headers).
    if n > MAX_SUMMARY_RECORDS {
        return;
    }
    let rec = core::mem::size_of::<RecordHeader>();
    // SAFETY: `n` ≤ MAX_SUMMARY_RECORDS, so the destination lies within `records` + `data`
    // (repr(C), contiguous), whose room after record `n` is at least `data`'s, ≥ `hl`; the
    // helper bounds-checks the packet side.
    let r = unsafe {
        let dst = (sample.summary.records.as_mut_ptr() as *mut u8).add(n * rec);
        bpf_skb_load_bytes(ctx.as_ptr() as *const _, 0, dst as *mut _, hl)
    };
    if r != 0 {
        return;
    }
    let size = core::mem::size_of::<PacketMeta>() + 8 + n * rec + hl as usize;
    // SAFETY: `size` ≤ size_of::<SummarySample>(), all of it written above.
    let bytes = unsafe { core::slice::from_raw_parts(slot as *const u8, size) };
    let flags = if PACKETS.query(BPF_RB_AVAIL_DATA as u64) >= wake {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    if PACKETS.output::<[u8]>(bytes, flags as u64).is_ok() {
        st.unsent[d] = 0;
        // The packet counts as summarised (its bytes stayed in the kernel); what went up, the
        // summary, counts as forwarded bytes.
        count(counter::PACKETS_SUMMARISED, 1);
        count(counter::BYTES_SUMMARISED, u64::from(ctx.len()));
        count(counter::BYTES_FORWARDED, size as u64);
    } else {
        count(counter::RING_FULL, 1);
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
