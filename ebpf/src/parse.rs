//! Packet headers: Ethernet (with one VLAN tag) or raw IP, IPv4 or IPv6, TCP — read with small
//! bounded loads (the BPF stack is 512 bytes) — and the two tests that decide whether a packet
//! concerns ekuwatch at all (a watched port; a first payload that looks like SMTP or TLS).

use aya_ebpf::programs::TcContext;
use ekuwatch_ebpf_common::{mapped_v4, Config, FlowKey, MAX_PORTS};

/// The parsed headers of a TCP packet (the addresses go straight into the flow key).
pub(crate) struct Tcp {
    pub(crate) key: FlowKey,
    pub(crate) dir: usize,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    pub(crate) flags: u8,
    pub(crate) seq: u32,
    pub(crate) payload_off: u32,
    pub(crate) payload_len: u32,
}

pub(crate) const FIN: u8 = 0x01;
pub(crate) const SYN: u8 = 0x02;
pub(crate) const RST: u8 = 0x04;
pub(crate) const ACK: u8 = 0x10;

/// Reads the IP and TCP headers. Small loads only: the BPF stack is 512 bytes.
#[inline(always)]
pub(crate) fn parse(ctx: &TcContext, l2_len: usize) -> Option<Tcp> {
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
pub(crate) fn watched(cfg: &Config, port: u16) -> bool {
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
pub(crate) fn looks_like_smtp_or_tls(ctx: &TcContext, off: usize) -> bool {
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
