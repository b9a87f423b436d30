//! The flow table's key: a connection's two endpoints in canonical order, and its hashing.

use std::net::IpAddr;

/// A connection's two endpoints in canonical order (the smaller first), so both directions find
/// the same flow. Ordered like the endpoints themselves (the tie-break of `finish_all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key(pub(super) (IpAddr, u16), pub(super) (IpAddr, u16));

/// One keyed hash over an image of the key (12 bytes for two IPv4 endpoints, 36 otherwise),
/// instead of the derived field-by-field hashing: the flow lookup is on every packet's path. Equal
/// keys have equal images. The table's hasher is aHash with random per-process keys (flow keys
/// are chosen by whoever sends packets: the keys keep collisions unpredictable), AES-based where
/// the CPU has it: ~3x cheaper here than std's SipHash.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let Key((a, pa), (b, pb)) = *self;
        match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                // Built in registers: a byte image on the stack read back as words stalls.
                h.write_u64((u64::from(u32::from(a)) << 32) | u64::from(u32::from(b)));
                h.write_u32((u32::from(pa) << 16) | u32::from(pb));
            }
            _ => {
                let v6 = |ip: IpAddr| match ip {
                    IpAddr::V4(x) => x.to_ipv6_mapped().octets(),
                    IpAddr::V6(x) => x.octets(),
                };
                let mut img = [0u8; 36];
                img[..16].copy_from_slice(&v6(a));
                img[16..18].copy_from_slice(&pa.to_be_bytes());
                img[18..34].copy_from_slice(&v6(b));
                img[34..].copy_from_slice(&pb.to_be_bytes());
                h.write(&img);
            }
        }
    }
}

pub(super) fn key(a: (IpAddr, u16), b: (IpAddr, u16)) -> Key {
    if a <= b {
        Key(a, b)
    } else {
        Key(b, a)
    }
}
