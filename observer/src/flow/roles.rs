//! Who is the client, and what a conversation's first bytes say: roles of a new flow (SYN, SMTP
//! port), the first payload's sender role (it may swap a guessed pair once), and the first-byte
//! tests that pick the analyzer.

use crate::decode::Segment;
use crate::Dir;
use std::net::IpAddr;

/// Roles of a new flow from its first segment, as (client, server, certain): the sender of a SYN
/// without ACK is the client (a SYN+ACK's receiver); without a SYN, the configured SMTP port side
/// is the server — a guess the first payload may correct ([`sender_is_server`]).
pub(super) fn initial_roles(
    seg: &Segment<'_>,
    smtp_ports: &[u16],
) -> ((IpAddr, u16), (IpAddr, u16), bool) {
    let src = (seg.src, seg.sport);
    let dst = (seg.dst, seg.dport);
    if seg.flags.syn {
        if seg.flags.ack {
            (dst, src, true)
        } else {
            (src, dst, true)
        }
    } else if smtp_ports.contains(&seg.sport) && !smtp_ports.contains(&seg.dport) {
        (dst, src, false)
    } else {
        (src, dst, false)
    }
}

/// Guess whether the sender of these first payload bytes is the server.
pub(super) fn sender_is_server(p: &[u8]) -> Option<bool> {
    if let [0x16, 3, _, _, _, msg, ..] = p {
        return match msg {
            1 => Some(false),
            2 => Some(true),
            _ => None,
        };
    }
    if let [a, b, c, b' ' | b'-', ..] = p {
        if [a, b, c].into_iter().all(u8::is_ascii_digit) {
            return Some(true);
        }
    }
    if p.starts_with(b"+OK") || p.starts_with(b"* OK") {
        return Some(true);
    }
    let up: Vec<u8> = p.iter().take(5).map(u8::to_ascii_uppercase).collect();
    if up.starts_with(b"EHLO") || up.starts_with(b"HELO") {
        return Some(false);
    }
    None
}

/// First byte of an SMTP conversation: a reply code digit from the server, a command letter from
/// the client. (One byte, because a chunk may be that short; the SMTP analyzer rejects FTP, POP3...)
pub(super) fn looks_like_smtp_start(dir: Dir, d: &[u8]) -> bool {
    match dir {
        Dir::ToClient => d.first().is_some_and(u8::is_ascii_digit),
        Dir::ToServer => d.first().is_some_and(u8::is_ascii_alphabetic),
    }
}

/// Does this chunk begin with a TLS record carrying a ClientHello?
pub(super) fn starts_with_client_hello(d: &[u8]) -> bool {
    matches!(d, [0x16, 0x03, 0..=0x04, _, _, 0x01, ..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_payload_roles() {
        assert_eq!(sender_is_server(&[0x16, 3, 1, 0, 0x40, 1]), Some(false));
        assert_eq!(sender_is_server(&[0x16, 3, 3, 0, 0x40, 2, 0]), Some(true));
        assert_eq!(sender_is_server(&[0x16, 3, 3, 0, 0x40, 11]), None);
        // too short for a handshake header: the text tests still apply (and fail)
        assert_eq!(sender_is_server(&[0x16, 3, 3, 0, 0x40]), None);
        assert_eq!(sender_is_server(b"220 mx ESMTP"), Some(true));
        assert_eq!(sender_is_server(b"250-mx"), Some(true));
        assert_eq!(sender_is_server(b"220"), None);
        assert_eq!(sender_is_server(b"22a "), None);
        assert_eq!(sender_is_server(b"+OK POP3"), Some(true));
        assert_eq!(sender_is_server(b"* OK IMAP"), Some(true));
        assert_eq!(sender_is_server(b"ehlo client"), Some(false));
        assert_eq!(sender_is_server(b"HELO"), Some(false));
        assert_eq!(sender_is_server(b"MAIL FROM:<>"), None);
        assert_eq!(sender_is_server(b""), None);
    }
}
