//! The way up: packets (whole or cut) copied behind their metadata into the one ring buffer, from a
//! per-CPU scratch slot, and when to wake the reader.

use crate::{count, PACKETS, SCRATCH};
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_smp_processor_id, bpf_skb_load_bytes},
    programs::TcContext,
    EbpfContext,
};
use ekuwatch_ebpf_common::{counter, FlowState, PacketMeta, MAX_CAPLEN};

/// A packet on its way to the ring: metadata and up to `MAX_CAPLEN` bytes, assembled in a per-CPU
/// slot (the stack is 512 bytes) and copied into the ring with one `bpf_ringbuf_output`.
#[repr(C)]
pub(crate) struct Sample {
    pub(crate) meta: PacketMeta,
    pub(crate) data: [u8; MAX_CAPLEN as usize],
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_packet(
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

/// A packet of no tracked flow's state (a SYN, or one whose flow's lock stayed busy) goes up whole,
/// with no claim.
#[inline(always)]
pub(crate) fn send_whole(ctx: &TcContext, now: u64, egress: u32, wake_bytes: u64) {
    send_meta(ctx, whole(ctx, now, egress, 0, 0, 0), u32::MAX, wake_bytes);
}

/// The metadata of a packet that goes up whole (`caplen` is set when it is copied).
#[inline(always)]
pub(crate) fn whole(
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
pub(crate) fn send_meta(ctx: &TcContext, meta: PacketMeta, cut: u32, wake_bytes: u64) {
    match output(ctx, meta, cut, wake_bytes) {
        Some(caplen) => {
            count(counter::PACKETS_FORWARDED, 1);
            count(counter::BYTES_FORWARDED, u64::from(caplen));
        }
        None => count(counter::RING_FULL, 1),
    }
}

/// The reader is woken only once `wake_bytes` are waiting (it also polls on a short timer): one
/// wake-up per packet would cost more than everything else together.
#[inline(always)]
pub(crate) fn wake_flags(wake_bytes: u64) -> u64 {
    let flags = if PACKETS.query(BPF_RB_AVAIL_DATA as u64) >= wake_bytes {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    flags as u64
}

/// Copies the packet (up to `MAX_CAPLEN` bytes, or its first `cut`) behind its metadata into the
/// ring. Returns the bytes copied, None when the ring is full (the sample is lost).
#[inline(always)]
pub(crate) fn output(
    ctx: &TcContext,
    mut meta: PacketMeta,
    cut: u32,
    wake_bytes: u64,
) -> Option<u32> {
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
    PACKETS.output::<[u8]>(bytes, wake_flags(wake_bytes)).ok()?;
    Some(n)
}
