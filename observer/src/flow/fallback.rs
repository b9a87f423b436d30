//! Plaintext fallback: a plaintext SMTP session soon after a TLS failure between the same
//! addresses (Postfix retries without TLS after a failed opportunistic TLS attempt). The table
//! remembers the last failure per address pair, in bounded memory.

use crate::event::SessionEvent;
use crate::smtp::StartTls;
use crate::tls::OutcomeResult;
use std::collections::HashMap;
use std::net::IpAddr;

/// A plaintext SMTP session this soon after a TLS failure between the same addresses is a fallback
/// (Postfix retries without TLS after a failed opportunistic TLS attempt).
const FALLBACK_WINDOW_NS: i64 = 15 * 60 * 1_000_000_000;
const MAX_REMEMBERED_FAILURES: usize = 65_536;

/// Last TLS failure (handshake_failed / closed_after_handshake) per (client IP, server IP).
#[derive(Debug, Default)]
pub(super) struct TlsFailures {
    last: HashMap<(IpAddr, IpAddr), i64>,
}

impl TlsFailures {
    /// Sees every event in the order they are emitted: remembers TLS failures per (client, server)
    /// address pair and flags a later plaintext session between the same pair as a plaintext
    /// fallback.
    pub(super) fn on_event(&mut self, ev: &mut SessionEvent, first_ts: i64, last_ts: i64) {
        let pair = (ev.client.ip, ev.server.ip);
        match (&ev.tls, &mut ev.smtp) {
            (Some(t), _)
                if matches!(
                    t.outcome.result,
                    OutcomeResult::HandshakeFailed | OutcomeResult::ClosedAfterHandshake
                ) =>
            {
                self.remember(pair, last_ts);
            }
            (None, Some(smtp))
                if smtp.starttls != StartTls::Accepted && self.follows_failure(pair, first_ts) =>
            {
                smtp.plaintext_fallback = true;
            }
            _ => {}
        }
    }

    /// A TLS failure at `last_ts`. When full, failures older than the window are forgotten (all
    /// of them if that is not enough).
    fn remember(&mut self, pair: (IpAddr, IpAddr), last_ts: i64) {
        if self.last.len() >= MAX_REMEMBERED_FAILURES {
            let horizon = last_ts.saturating_sub(FALLBACK_WINDOW_NS);
            self.last.retain(|_, t| *t >= horizon);
            if self.last.len() >= MAX_REMEMBERED_FAILURES {
                self.last.clear();
            }
        }
        self.last.insert(pair, last_ts);
    }

    /// A session starting at `first_ts` comes within the window after a failure of the pair.
    fn follows_failure(&self, pair: (IpAddr, IpAddr), first_ts: i64) -> bool {
        self.last.get(&pair).is_some_and(|&failed_at| {
            first_ts >= failed_at && first_ts - failed_at <= FALLBACK_WINDOW_NS
        })
    }
}
