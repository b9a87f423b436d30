//! One TCP connection's state in the table: its key and roles, per-direction reassembly, FINs and
//! counters, and its conversation (the analyzers). Per-direction pairs are `[client→server,
//! server→client]`, reached by direction ([`side`], [`side_mut`]).

use super::conversation::Conversation;
use super::key::Key;
use super::FlowConfig;
use crate::anomaly::{Anomaly, AnomalySet};
use crate::event::{self, SessionEvent};
use crate::tcp::Reassembler;
use crate::Dir;
use std::net::IpAddr;

#[derive(Debug)]
pub(super) struct Flow {
    /// Both endpoints (the table finds flows by it).
    pub(super) key: Key,
    /// The client is the key's first endpoint.
    pub(super) client_first: bool,
    /// Roles come from a SYN (certain) or from content (heuristic, may swap once).
    pub(super) roles_certain: bool,
    pub(super) first_ts: i64,
    pub(super) last_ts: i64,
    pub(super) reasm: [Reassembler; 2],
    pub(super) conv: Conversation,
    pub(super) fin: [bool; 2],
    /// The FIN reached the analyzers (in stream order, after every byte before it).
    pub(super) close_seen: [bool; 2],
    /// Which direction's FIN came first (closes reach the analyzers in that order).
    pub(super) first_fin: Option<Dir>,
    /// The first RST's sender, and when it came (`rst_ms`: milliseconds after `first_ts`,
    /// saturating; small fields that fit the struct's padding: the flow stays 320 bytes). The flow
    /// ends once every byte its sender sent before it is in, or [`super::RST_LINGER_NS`] later (the
    /// missing bytes are a gap then).
    pub(super) rst: Option<Dir>,
    pub(super) rst_ms: u32,
    /// Packets per direction (saturating: a count past 4 billion on one connection stays there).
    pub(super) packets: [u32; 2],
    pub(super) bytes: [u64; 2],
    pub(super) any_payload: bool,
    pub(super) emitted: bool,
    /// Its end of analysis was reported (`report_done`).
    pub(super) done_reported: bool,
    /// Directions (bit 0: to server, bit 1: to client) user space asked the eBPF program to
    /// summarise, as far as it knows (cleared by a whole packet of that direction).
    pub(super) armed: u8,
}

/// Directions, the one whose FIN came first first.
pub(super) fn fin_order(first: Option<Dir>) -> [Dir; 2] {
    if first == Some(Dir::ToClient) {
        [Dir::ToClient, Dir::ToServer]
    } else {
        [Dir::ToServer, Dir::ToClient]
    }
}

impl Flow {
    /// A new flow at `ts` between `client` and `server` (whose canonical key is `key`); `certain`:
    /// the roles come from a SYN.
    pub(super) fn new(
        key: Key,
        client: (IpAddr, u16),
        certain: bool,
        ts: i64,
        per_flow_cap: usize,
    ) -> Self {
        Flow {
            key,
            client_first: client == key.0,
            roles_certain: certain,
            first_ts: ts,
            last_ts: ts,
            reasm: [
                Reassembler::new(per_flow_cap),
                Reassembler::new(per_flow_cap),
            ],
            conv: Conversation::new(),
            fin: [false; 2],
            close_seen: [false; 2],
            first_fin: None,
            rst: None,
            rst_ms: 0,
            packets: [0; 2],
            bytes: [0; 2],
            any_payload: false,
            emitted: false,
            done_reported: false,
            armed: 0,
        }
    }

    /// (client, server).
    pub(super) fn roles(&self) -> ((IpAddr, u16), (IpAddr, u16)) {
        let Key(a, b) = self.key;
        if self.client_first {
            (a, b)
        } else {
            (b, a)
        }
    }

    pub(super) fn dir_of(&self, src: (IpAddr, u16)) -> Dir {
        if src == self.roles().0 {
            Dir::ToServer
        } else {
            Dir::ToClient
        }
    }

    /// The connection's anomalies: the conversation's (flow layer, TLS) and reassembly's.
    fn weirds(&self) -> AnomalySet {
        let mut weirds = self.conv.weirds();
        for r in &self.reasm {
            if r.overlap_conflicts > 0 {
                weirds.insert(Anomaly::TcpOverlapConflict);
            }
            if r.overflows > 0 {
                weirds.insert(Anomaly::ReassemblyBufferOverflow);
            }
        }
        weirds
    }

    /// The connection's event, from what its analyzers hold now.
    pub(super) fn event(&mut self, cfg: &FlowConfig) -> SessionEvent {
        let (client, server) = self.roles();
        let tls = self.conv.tls_facts();
        let mail = self.conv.mail_facts(tls.as_ref());
        let observed = event::Observed {
            client,
            server,
            first_ts: self.first_ts,
            smtp: self.conv.smtp_facts(),
            smtp_started: self.conv.smtp_started(),
            tls,
            mail,
            weirds: self.weirds(),
            packets: self.packets,
            payload_bytes: self.bytes,
        };
        event::build(observed, &cfg.observer, &cfg.local_nets, &cfg.smtp_ports)
    }
}

#[cfg(test)]
mod tests {
    use super::super::conversation::HeldSmtp;
    use super::*;
    use crate::smtp::SmtpSession;
    use crate::tls::TlsSession;

    /// Issue 7: per-flow state while handshaking ≤ 1 KiB plus buffered bytes; an idle or
    /// SYN-only flow costs only its `Flow` (analyzers are boxed and created on first payload).
    #[test]
    fn flow_state_is_small() {
        use std::mem::size_of;
        let flow = size_of::<Flow>();
        let fixed = flow + size_of::<TlsSession>() + size_of::<HeldSmtp>();
        eprintln!(
            "Flow {flow} bytes, SmtpSession {}, TlsSession {}, HeldSmtp {}: {fixed} while handshaking",
            size_of::<SmtpSession>(),
            size_of::<TlsSession>(),
            size_of::<HeldSmtp>(),
        );
        // x86_64: 312 + 400 + 48 = 760 B, leaving ~250 B of the 1 KiB budget (issue 7) for the
        // facts and the table's share (tests/flow_memory.rs measures the whole).
        assert!(flow <= 320, "Flow is {flow} bytes");
        assert!(
            fixed <= 768,
            "fixed state while handshaking is {fixed} bytes"
        );
    }
}
