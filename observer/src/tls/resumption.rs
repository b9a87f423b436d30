//! TLS ≤ 1.2 resumption with a key log: an abbreviated handshake reuses the master secret of an
//! earlier session, and many stacks (s2n-tls; OpenSSL-based MTAs through SSLKEYLOGFILE shims)
//! write no `CLIENT_RANDOM` line for it. The master secrets of sessions decrypted here are kept by
//! the session ID their ServerHello gave (RFC 5246 §7.4.1.2) and by the ticket their
//! NewSessionTicket carried (RFC 5077 §3.3); a later ClientHello offering that ticket, or a
//! ServerHello echoing that session ID, finds the secret (as Wireshark does). Only SHA-256 digests
//! of IDs and tickets are kept; the map is bounded.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Most resumable sessions kept; when full the map starts over (an older session's resumption is
/// then `no_key`, as without this cache).
pub const MAX_RESUMABLE: usize = 65_536;

/// What a resumable session is known by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeBy {
    SessionId,
    Ticket,
}

/// The digest naming one session ID or ticket.
pub fn resume_key(by: ResumeBy, id: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(match by {
        ResumeBy::SessionId => b"sid",
        ResumeBy::Ticket => b"tkt",
    });
    h.update(id);
    h.finalize().into()
}

/// Master secrets by [`resume_key`].
#[derive(Default)]
pub struct Resumable {
    masters: HashMap<[u8; 32], Box<[u8]>>,
}

impl std::fmt::Debug for Resumable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Resumable({} sessions, values redacted)",
            self.masters.len()
        )
    }
}

impl Resumable {
    pub fn insert(&mut self, key: [u8; 32], master: &[u8]) {
        if self.masters.len() >= MAX_RESUMABLE && !self.masters.contains_key(&key) {
            self.masters.clear();
        }
        self.masters.insert(key, master.into());
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<&[u8]> {
        self.masters.get(key).map(|m| &**m)
    }

    pub fn len(&self) -> usize {
        self.masters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.masters.is_empty()
    }
}

/// The ticket of a TLS 1.2 NewSessionTicket body (lifetime hint, then the ticket); None if it
/// does not parse or is empty.
pub fn read_new_session_ticket(body: &[u8]) -> Option<&[u8]> {
    let mut r = super::codec::Reader::new(body);
    r.take(4, "ticket_lifetime_hint").ok()?;
    let t = r.vec16("ticket").ok()?;
    (!t.is_empty() && r.is_empty()).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tickets_are_kept_apart_and_bounded() {
        let mut r = Resumable::default();
        let sid = resume_key(ResumeBy::SessionId, b"abc");
        let tkt = resume_key(ResumeBy::Ticket, b"abc");
        assert_ne!(sid, tkt);
        r.insert(sid, b"master");
        assert_eq!(r.get(&sid), Some(&b"master"[..]));
        assert_eq!(r.get(&tkt), None);
        for i in 0..MAX_RESUMABLE as u32 + 5 {
            r.insert(resume_key(ResumeBy::Ticket, &i.to_be_bytes()), b"m");
        }
        assert!(r.len() <= MAX_RESUMABLE);
    }

    #[test]
    fn new_session_ticket_bodies() {
        assert_eq!(
            read_new_session_ticket(&[0, 0, 0, 9, 0, 2, 7, 8]),
            Some(&[7u8, 8][..])
        );
        assert_eq!(read_new_session_ticket(&[0, 0, 0, 9, 0, 0]), None); // empty
        assert_eq!(read_new_session_ticket(&[0, 0, 0, 9, 0, 3, 7, 8]), None); // short
        assert_eq!(read_new_session_ticket(&[0, 0, 0, 9, 0, 1, 7, 8]), None); // trailing
    }
}
