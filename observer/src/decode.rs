//! Link, network and transport decoding: one captured frame in, one TCP segment (or a reason) out.
//!
//! Link layers are peeled here (Ethernet with 802.1Q/QinQ, Linux SLL/SLL2, BSD NULL/LOOP, raw IP);
//! IPv4/IPv6/TCP headers are parsed by `etherparse` in its lax mode so that snaplen-cut frames still
//! give their headers and the payload bytes that were captured.

use crate::capture::linktype;
use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use std::net::IpAddr;

/// TCP flag bits we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// A decoded TCP segment, borrowed from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub payload: &'a [u8],
    /// The frame was cut by the snaplen (or lies about its lengths): `payload` is shorter than sent.
    pub truncated: bool,
}

/// Why a frame gave no TCP segment. Counted, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    UnsupportedLinkType,
    /// Not IPv4/IPv6 (ARP, LLDP, ...).
    NotIp,
    /// IP but not TCP (UDP, ICMP, ...).
    NotTcp,
    /// A non-first IP fragment, or a first fragment: we do not reassemble IP fragments.
    IpFragment,
    /// Headers cut short or invalid.
    Malformed,
}

impl Skip {
    pub fn name(self) -> &'static str {
        match self {
            Skip::UnsupportedLinkType => "unsupported_link_type",
            Skip::NotIp => "not_ip",
            Skip::NotTcp => "not_tcp",
            Skip::IpFragment => "ip_fragment",
            Skip::Malformed => "malformed_headers",
        }
    }

    /// Whether this is damage (counted as a parse error) rather than simply other traffic.
    pub fn is_error(self) -> bool {
        matches!(self, Skip::Malformed | Skip::UnsupportedLinkType)
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;

/// Decodes one frame of the given link type into a TCP segment.
pub fn decode(linktype: u32, frame: &[u8]) -> Result<Segment<'_>, Skip> {
    let fast = match linktype {
        linktype::ETHERNET => match frame.split_first_chunk::<14>() {
            Some((&[.., t0, t1], ip)) if u16::from_be_bytes([t0, t1]) == ETHERTYPE_IPV4 => {
                ipv4_tcp(ip)
            }
            _ => None,
        },
        linktype::RAW | linktype::IPV4 => ipv4_tcp(frame),
        _ => None,
    };
    if let Some(seg) = fast {
        return Ok(seg);
    }
    general(linktype, frame)
}

/// The common case, decoded in place: IPv4 (not a fragment, lengths consistent with the frame)
/// carrying TCP (a valid data offset). `None` for anything else — other protocols, fragments,
/// options the lengths do not allow, frames cut by the snaplen — which the general path
/// (`etherparse`) decodes; both give the same segment wherever this one answers (tests).
fn ipv4_tcp(ip: &[u8]) -> Option<Segment<'_>> {
    // (fixed-size arrays: the constant indexes below are checked at compile time)
    let h: &[u8; 20] = ip.first_chunk()?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let fragment = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0; // MF or an offset
    if h[0] >> 4 != 4 || ihl < 20 || fragment || h[9] != 6 {
        return None;
    }
    // `None` when total < ihl or total > ip.len()
    let tcp = ip.get(ihl..total)?;
    let t: &[u8; 20] = tcp.first_chunk()?;
    let doff = usize::from(t[12] >> 4) * 4;
    if doff < 20 {
        return None;
    }
    let payload = tcp.get(doff..)?; // `None` when doff > tcp.len()
    let flags = t[13];
    Some(Segment {
        src: IpAddr::from([h[12], h[13], h[14], h[15]]),
        dst: IpAddr::from([h[16], h[17], h[18], h[19]]),
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
        flags: TcpFlags {
            fin: flags & 0x01 != 0,
            syn: flags & 0x02 != 0,
            rst: flags & 0x04 != 0,
            ack: flags & 0x10 != 0,
        },
        payload,
        truncated: false,
    })
}

/// Every link type and network layer, through `etherparse` (lax: cut frames keep their headers).
fn general(linktype: u32, frame: &[u8]) -> Result<Segment<'_>, Skip> {
    let sliced = match linktype {
        linktype::ETHERNET => LaxSlicedPacket::from_ethernet(frame).map_err(|_| Skip::Malformed)?,
        linktype::RAW | linktype::IPV4 | linktype::IPV6 => {
            LaxSlicedPacket::from_ip(frame).map_err(|_| Skip::Malformed)?
        }
        linktype::NULL | linktype::LOOP => {
            let (&fam, ip) = frame.split_first_chunk::<4>().ok_or(Skip::Malformed)?;
            // NULL: host byte order of the capturing machine; LOOP: network order. Accept both.
            let le = u32::from_le_bytes(fam);
            let be = u32::from_be_bytes(fam);
            let is_ip = |f: u32| matches!(f, 2 | 24 | 28 | 30);
            if !(is_ip(le) || is_ip(be)) {
                return Err(Skip::NotIp);
            }
            LaxSlicedPacket::from_ip(ip).map_err(|_| Skip::Malformed)?
        }
        linktype::LINUX_SLL => {
            // 16-byte header; protocol (ethertype) in the last two bytes.
            let (&[.., p0, p1], rest) = frame.split_first_chunk::<16>().ok_or(Skip::Malformed)?;
            from_ether_type(u16::from_be_bytes([p0, p1]), rest)?
        }
        linktype::LINUX_SLL2 => {
            // 20-byte header; protocol type first.
            let (&[p0, p1, ..], rest) = frame.split_first_chunk::<20>().ok_or(Skip::Malformed)?;
            from_ether_type(u16::from_be_bytes([p0, p1]), rest)?
        }
        _ => return Err(Skip::UnsupportedLinkType),
    };
    to_segment(&sliced)
}

fn from_ether_type(proto: u16, rest: &[u8]) -> Result<LaxSlicedPacket<'_>, Skip> {
    match proto {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 | 0x8100 | 0x88a8 | 0x9100 => Ok(
            LaxSlicedPacket::from_ether_type(etherparse::EtherType(proto), rest),
        ),
        _ => Err(Skip::NotIp),
    }
}

fn to_segment<'a>(p: &LaxSlicedPacket<'a>) -> Result<Segment<'a>, Skip> {
    let (src, dst, ip_payload) = match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                v4.payload(),
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                v6.payload(),
            )
        }
        None => {
            return Err(if p.stop_err.is_some() {
                Skip::Malformed
            } else {
                Skip::NotIp
            });
        }
    };
    if ip_payload.fragmented {
        return Err(Skip::IpFragment);
    }
    if ip_payload.ip_number != etherparse::IpNumber::TCP {
        return Err(Skip::NotTcp);
    }
    match &p.transport {
        Some(TransportSlice::Tcp(tcp)) => Ok(Segment {
            src,
            dst,
            sport: tcp.source_port(),
            dport: tcp.destination_port(),
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
            flags: TcpFlags {
                syn: tcp.syn(),
                ack: tcp.ack(),
                fin: tcp.fin(),
                rst: tcp.rst(),
            },
            payload: tcp.payload(),
            truncated: ip_payload.incomplete,
        }),
        _ => Err(Skip::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_ipv4(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(41000, 25, 1000, 4096)
            .ack(77)
            .psh();
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn all_link_types_give_the_same_segment() {
        let ip = tcp_ipv4(b"EHLO x\r\n");
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ip);
        let mut qinq = vec![0u8; 12];
        qinq.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]);
        qinq.extend_from_slice(&ip);
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ip);
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&ip);
        let cases = [
            (linktype::ETHERNET, eth),
            (linktype::ETHERNET, qinq),
            (linktype::LINUX_SLL, sll),
            (linktype::LINUX_SLL2, sll2),
            (linktype::NULL, null),
            (linktype::RAW, ip.clone()),
        ];
        for (lt, frame) in &cases {
            let s = decode(*lt, frame).unwrap_or_else(|e| panic!("linktype {lt}: {e:?}"));
            assert_eq!(s.payload, b"EHLO x\r\n");
            assert_eq!((s.sport, s.dport, s.seq, s.ack), (41000, 25, 1000, 77));
            assert!(!s.truncated);
        }
    }

    #[test]
    fn snaplen_cut_keeps_headers_and_marks_truncation() {
        let ip = tcp_ipv4(b"EHLO some.long.name.example\r\n");
        let cut = &ip[..ip.len() - 10];
        let s = decode(linktype::RAW, cut).unwrap();
        assert!(s.truncated);
        assert_eq!(s.payload, b"EHLO some.long.name");
    }

    #[test]
    fn every_prefix_of_a_frame_is_safe() {
        let ip = tcp_ipv4(b"220 hi\r\n");
        for lt in [
            linktype::RAW,
            linktype::ETHERNET,
            linktype::LINUX_SLL,
            linktype::LINUX_SLL2,
            linktype::NULL,
            9999,
        ] {
            for n in 0..ip.len() {
                let _ = decode(lt, &ip[..n]);
            }
        }
    }

    #[test]
    fn ipv6_and_udp() {
        let b = PacketBuilder::ipv6([1; 16], [2; 16], 64).tcp(1, 25, 5, 100);
        let mut v = Vec::new();
        b.write(&mut v, b"x").unwrap();
        let s = decode(linktype::RAW, &v).unwrap();
        assert_eq!(
            s.dst,
            "202:202:202:202:202:202:202:202".parse::<IpAddr>().unwrap()
        );
        let b = PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9).udp(53, 53);
        let mut v = Vec::new();
        b.write(&mut v, b"x").unwrap();
        assert_eq!(decode(linktype::RAW, &v), Err(Skip::NotTcp));
    }

    /// Frames from the captures, and every single-byte change and every prefix of them: where the
    /// in-place IPv4/TCP decoder answers, it gives what the general path gives.
    #[test]
    fn fast_path_equals_general_path() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../captures");
        let mut frames = Vec::new();
        for name in [
            "pf-askccert-tls12-openssl-both.pcap",
            "pf-noask-tls13-openssl-nocert.pcap",
        ] {
            let mut r = crate::capture::CaptureReader::open(&dir.join(name)).unwrap();
            while let Some(Ok(item)) = r.next_item() {
                if let crate::capture::Item::Packet(p) = item {
                    frames.push((p.linktype, p.data));
                }
            }
        }
        let (mut answered, mut checked) = (0, 0);
        let mut check = |lt: u32, f: &[u8]| {
            checked += 1;
            let fast = match lt {
                linktype::ETHERNET if f.get(12..14) == Some(&[0x08, 0x00]) => ipv4_tcp(&f[14..]),
                _ => ipv4_tcp(f),
            };
            if let Some(seg) = fast {
                answered += 1;
                assert_eq!(Ok(seg), general(lt, f), "frame {f:02x?}");
            }
        };
        for (lt, f) in &frames {
            for n in 0..=f.len().min(80) {
                check(*lt, &f[..n]);
            }
            for i in 0..f.len().min(80) {
                for v in [
                    0u8, 1, 0x06, 0x11, 0x40, 0x45, 0x46, 0x4f, 0x50, 0x80, 0x20, 0x3f, 0xff,
                ] {
                    let mut g = f.clone();
                    g[i] = v;
                    check(*lt, &g);
                }
            }
        }
        assert!(
            answered > checked / 4,
            "{answered} of {checked} answered in place"
        );
    }
}
