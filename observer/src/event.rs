//! The session event: one per TCP connection that spoke SMTP or TLS (the JSON Lines contract,
//! documented field by field in docs/events.md).

use crate::anomaly::AnomalySet;
use crate::smtp::mail::MailFacts;
use crate::smtp::{SmtpFacts, StartTls};
use crate::tls::TlsFacts;
use ipnet::IpNet;
use serde::Serialize;
use sha1::{Digest, Sha1};
use std::net::IpAddr;
use std::sync::Arc;

/// Who observed a session (the event's `observer`): the host name by default, `--observer NAME`
/// or `observer` in the configuration file. Shared by every event of a run (one allocation).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Observer(Arc<str>);

impl Observer {
    pub fn new(name: &str) -> Self {
        Observer(Arc::from(name))
    }

    /// This host's name (Linux: `/proc/sys/kernel/hostname`; else `$HOSTNAME`), `unknown` when
    /// neither says.
    pub fn host() -> Self {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "unknown".to_string());
        Observer::new(&name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Observer {
    fn default() -> Self {
        Observer::host()
    }
}

impl Serialize for Observer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

named_enum! {
    /// Which way a session goes, relative to our hosts (`--local-net`).
    pub enum Direction {
        /// A local client (our MTA) talking to a remote server.
        Outbound = "outbound",
        /// A remote client talking to our server.
        Inbound = "inbound",
        Unknown = "unknown",
    }
}

impl Direction {
    /// From `--local-net` CIDRs: outbound when only the client is local, inbound when only the server is.
    pub fn classify(local: &[IpNet], client: IpAddr, server: IpAddr) -> Direction {
        let c = local.iter().any(|n| n.contains(&client));
        let s = local.iter().any(|n| n.contains(&server));
        match (c, s) {
            (true, false) => Direction::Outbound,
            (false, true) => Direction::Inbound,
            _ => Direction::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Who observed the session (host name by default; `--observer`).
    pub observer: Observer,
    /// Time of the connection's first packet (RFC 3339, microseconds, UTC).
    pub ts: String,
    pub community_id: String,
    pub client: Endpoint,
    pub server: Endpoint,
    pub direction: Direction,
    /// What this session tells about its peer (its name and its share of the per-peer counts;
    /// [`crate::peers::session_peer`]). Derived from the rest of the event when it is built, and
    /// what [`crate::peers::PeerBook::add`] names the peer by: whoever changes an event's facts
    /// makes it again with `session_peer`.
    pub peer: crate::peers::SessionPeer,
    pub smtp: Option<SmtpFacts>,
    pub tls: Option<TlsFacts>,
    /// What happened to the mail (SMTP sessions: plaintext, decrypted or inferred).
    pub mail: Option<MailFacts>,
    /// The connection's TCP, TLS and X.509 anomalies (SMTP ones are in `smtp.anomalies`).
    pub weirds: AnomalySet,
    /// Packets and payload bytes seen per direction (client→server, server→client).
    pub packets: [u64; 2],
    pub payload_bytes: [u64; 2],
}

impl SessionEvent {
    /// Every anomaly of the connection, all layers (the event's `weirds` and `smtp.anomalies`).
    pub fn anomalies(&self) -> AnomalySet {
        let smtp = self
            .smtp
            .as_ref()
            .map_or(AnomalySet::EMPTY, |s| s.anomalies);
        self.weirds.union(smtp)
    }
}

/// What the flow layer knows of a connection when it reports it (`flow::FlowTable`), in roles.
pub(crate) struct Observed {
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    /// Time of the connection's first packet (ns).
    pub first_ts: i64,
    /// The SMTP analyzer's facts, when the dialogue proved to be SMTP.
    pub smtp: Option<SmtpFacts>,
    /// An SMTP analyzer was started (whatever it concluded).
    pub smtp_started: bool,
    /// The TLS analyzer's facts, once a ClientHello was seen.
    pub tls: Option<TlsFacts>,
    /// The mail dialogue's facts, when one was seen.
    pub mail: Option<MailFacts>,
    /// TCP, TLS and X.509 anomalies.
    pub weirds: AnomalySet,
    pub packets: [u32; 2],
    pub payload_bytes: [u64; 2],
}

/// The event of a connection, as `observer` saw it. `smtp_ports`: TLS from the first byte to one of them is implicit
/// TLS SMTP; `local_nets` give its direction.
pub(crate) fn build(
    o: Observed,
    observer: &Observer,
    local_nets: &[IpNet],
    smtp_ports: &[u16],
) -> SessionEvent {
    let Observed {
        client,
        server,
        first_ts,
        mut smtp,
        smtp_started,
        tls,
        mail,
        weirds,
        packets,
        payload_bytes,
    } = o;
    if smtp.is_none() && tls.is_some() && !smtp_started {
        // TLS from the first byte: implicit TLS. Only call it SMTP on a configured SMTP port.
        if smtp_ports.contains(&server.1) {
            smtp = Some(SmtpFacts {
                banner: None,
                helo: None,
                starttls_offered: None,
                starttls: StartTls::Implicit,
                starttls_reply: None,
                plaintext_fallback: false,
                anomalies: AnomalySet::EMPTY,
            });
        }
    }
    let mut ev = SessionEvent {
        kind: "session",
        observer: observer.clone(),
        ts: rfc3339_micros(first_ts),
        community_id: community_id(client.0, client.1, server.0, server.1),
        client: Endpoint {
            ip: client.0,
            port: client.1,
        },
        server: Endpoint {
            ip: server.0,
            port: server.1,
        },
        direction: Direction::classify(local_nets, client.0, server.0),
        // mail facts only for SMTP (TLS of another protocol carries no mail)
        mail: mail.filter(|_| smtp.is_some()),
        smtp,
        tls,
        weirds,
        packets: packets.map(u64::from),
        payload_bytes,
        peer: Default::default(),
    };
    ev.peer = crate::peers::session_peer(&ev);
    ev
}

pub fn rfc3339_micros(ts_ns: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ns / 1000 * 1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// Community ID v1 (seed 0) for a TCP connection.
pub fn community_id(a: IpAddr, ap: u16, b: IpAddr, bp: u16) -> String {
    fn bytes(ip: IpAddr) -> Vec<u8> {
        match ip {
            IpAddr::V4(v) => v.octets().to_vec(),
            IpAddr::V6(v) => v.octets().to_vec(),
        }
    }
    let (ab, bb) = (bytes(a), bytes(b));
    let ((sa, sp), (da, dp)) = if (ab.as_slice(), ap) <= (bb.as_slice(), bp) {
        ((ab, ap), (bb, bp))
    } else {
        ((bb, bp), (ab, ap))
    };
    let mut h = Sha1::new();
    h.update(0u16.to_be_bytes());
    h.update(&sa);
    h.update(&da);
    h.update([6u8, 0]);
    h.update(sp.to_be_bytes());
    h.update(dp.to_be_bytes());
    use base64::Engine;
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_id_reference_vector() {
        // From the Community ID spec's baseline (corelight/community-id-spec, tcp.pcap):
        // 128.232.110.120:34855 -> 66.35.250.204:80  =>  1:LQU9qZlK+B5F3KDmev6m5PMibrg=
        let a: IpAddr = "128.232.110.120".parse().unwrap();
        let b: IpAddr = "66.35.250.204".parse().unwrap();
        assert_eq!(
            community_id(a, 34855, b, 80),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            community_id(b, 80, a, 34855),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
    }

    #[test]
    fn direction() {
        let nets: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let l: IpAddr = "10.1.2.3".parse().unwrap();
        let r: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(Direction::classify(&nets, l, r), Direction::Outbound);
        assert_eq!(Direction::classify(&nets, r, l), Direction::Inbound);
        assert_eq!(Direction::classify(&nets, r, r), Direction::Unknown);
        assert_eq!(Direction::classify(&[], l, r), Direction::Unknown);
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            rfc3339_micros(1_400_000_000_123_456_789),
            "2014-05-13T16:53:20.123456Z"
        );
    }
}
