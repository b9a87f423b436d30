//! What the eBPF backend's record summaries need from a session: where the next record header
//! is, bytes skipped inside a body, and whether only record sizes matter from now on.

use super::{Phase, TlsSession};
use crate::anomaly::Anomaly;
use crate::Dir;

impl TlsSession {
    /// Bytes the eBPF program skipped as record bodies: they must lie inside the body being
    /// skipped; if not, the kernel and user space disagree on where records are (counted) and
    /// the direction is lost like after a gap.
    pub fn on_skipped(&mut self, dir: Dir, len: u64) {
        let s = self.side_mut(dir);
        if s.decrypting && s.records.abandon_body() {
            // A record kept for decryption (an alert or KeyUpdate by its size, after the outcome)
            // was summarised: this direction can no longer follow its keys.
            s.decrypting = false;
            if let Some(k) = self.keys.as_mut() {
                *dir.of_mut(&mut k.dec) = None;
            }
        }
        let s = self.side_mut(dir);
        let was_lost = s.records.lost();
        if !s.records.on_gap(len) && !was_lost {
            self.weird(Anomaly::EbpfSummaryMismatch);
        }
    }

    /// Bytes of `dir` until its next record header, when that is known (in sync, not inside a
    /// header or a body being read): where the kernel may start following the records.
    pub fn next_header_in(&self, dir: Dir) -> Option<u64> {
        self.side(dir).records.next_header_in()
    }

    /// Only record sizes and order are read from now on (the kernel may send summaries of the
    /// application records): without a key log, once both sides encrypt (TLS 1.3: after the
    /// ServerHello; ≤ 1.2: after both ChangeCipherSpecs) — the certificates and the
    /// CertificateRequest are behind; with one, once the outcome is known and no application
    /// data is decrypted any more — and never for a TLS 1.3 client that offered post-handshake
    /// authentication (its server's records are decrypted for a late CertificateRequest).
    pub fn summarisable(&self) -> bool {
        if self.keys.is_some() {
            let late_request = self.tls13() && self.post_handshake_auth;
            return self.done && !self.app_decrypting() && !late_request;
        }
        self.done || self.sides.iter().all(|s| s.phase != Phase::Plaintext)
    }
}
