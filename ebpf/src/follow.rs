//! A followed direction: the kernel tracks its TLS record headers packet by packet and, in summary
//! mode, sends one compact summary (frame headers + record headers) per packet that holds headers
//! instead of the packet (docs/ebpf.md).

use crate::parse::{Tcp, FIN, RST, SYN};
use crate::ring::{send_packet, wake_flags};
use crate::{after, count, PACKETS, SCRATCH};
use aya_ebpf::{
    helpers::{bpf_get_smp_processor_id, bpf_skb_load_bytes},
    programs::TcContext,
    EbpfContext,
};
use ekuwatch_ebpf_common::{
    counter, kind, FlowState, PacketMeta, RecordHeader, Summary, FLAG_FOLLOW_0, FLAG_FOLLOW_1,
    FLAG_SUMMARISE, MAX_SUMMARY_RECORDS,
};

/// Frame headers a summary carries at most (Ethernet + VLAN + IPv6 + TCP with options is 138).
const SUMMARY_HEADERS: u32 = 256;

/// A summary on its way to the ring, assembled in the same per-CPU slot as a packet.
#[repr(C)]
struct SummarySample {
    meta: PacketMeta,
    summary: Summary,
    data: [u8; SUMMARY_HEADERS as usize],
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
pub(crate) fn follow(
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
    if PACKETS.output::<[u8]>(bytes, wake_flags(wake)).is_ok() {
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
