//! ekuwatch's kernel program (TC classifier on ingress and egress). It only observes: every packet
//! is passed on unchanged with "no verdict" (`TC_ACT_UNSPEC`, which is also `TCX_NEXT`): the next
//! program on the hook, or the kernel's default, decides — as if ekuwatch were not there.
//!
//! For TCP packets on a watched port it keeps one LRU-hash entry per connection (canonical
//! 5-tuple), created on a SYN to a watched port or, for connections already running when the
//! program was attached, on a first payload that looks like SMTP or TLS. Packets of a live flow go
//! to user space through one ring buffer (metadata + the packet bytes), or — once user space armed a
//! direction — as summaries of their TLS record headers. Forwarding stops when user space puts the
//! flow in `DONE` (its handshake outcome is known), or per direction when the direction has
//! forwarded `budget` payload bytes (a backstop); after that only FIN/RST packets go up, so user
//! space still sees the connection end. Everything skipped is counted.
//!
//! Here: the maps, the entry points and each packet's update of its flow. `parse` reads the
//! headers, `lock` is the per-flow lock, `follow` tracks record headers and summarises, `ring`
//! sends what goes up.
#![no_std]
#![no_main]
// The flow lock's compare-and-swap: core's atomic types have no CAS on the BPF target (it needs
// BPF v3, which the build selects), the intrinsics do.
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod follow;
mod lock;
mod parse;
mod ring;

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{classifier, map},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::TcContext,
};
use ekuwatch_ebpf_common::{
    counter, ArmRequest, Config, FlowKey, FlowState, FLAG_DONE, FLAG_EXP_0, FLAG_EXP_1, FLAG_FIN_0,
    FLAG_FIN_1, FLAG_FOLLOW_0, FLAG_FOLLOW_1, FLAG_OVER_BUDGET_0, FLAG_OVER_BUDGET_1,
    FLAG_SUMMARISE,
};
use follow::follow;
use lock::{lock, unlock};
use parse::{looks_like_smtp_or_tls, parse, watched, Tcp, ACK, FIN, RST, SYN};
use ring::{send_packet, send_whole, Sample};

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
pub(crate) fn count(idx: u32, n: u64) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: a per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *p += n };
    }
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
                send_whole(ctx, now, egress, cfg.wake_bytes);
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
        send_whole(ctx, now, egress, cfg.wake_bytes);
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
pub(crate) fn after(a: u32, b: u32) -> bool {
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
