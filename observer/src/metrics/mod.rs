//! Metrics (a sink): the catalogue in docs/metrics.md, fed from session events and capture
//! counters, rendered as Prometheus text (live `/metrics`) or as timestamped OpenMetrics for
//! backfilling an offline analysis (`analyze --openmetrics`, `promtool tsdb create-blocks-from
//! openmetrics`).
//!
//! This module turns events and capture counters into series (labels, the bounded `peer` label);
//! `registry` holds them in the `prometheus` crate's registry and writes both formats.
//!
//! Cardinality: the `peer` label is a registered domain only for the watch-list and for the first
//! `top_n` peers to reach `PEER_MIN_SESSIONS` sessions; every other peer is `other`. Label values
//! ever created are therefore bounded by `top_n` + watch-list + 1, however long it runs.
//!
//! Who may take one of the `top_n` slots: outbound peers (named by what our client saw of the
//! server: SNI, certificate, banner) and peers of unknown direction (no `--local-net`, where all
//! sessions are unknown and the slots are the only peer labels there are). Inbound peers are named
//! by what the remote client says about itself (EHLO name, its own certificate), which anyone who
//! connects to our MTA can choose: an inbound session is labelled only when its peer is on the
//! watch-list, otherwise `other`, and it never counts towards a slot — so inbound clients cannot
//! use up the labels meant for the domains we send mail to.

mod registry;

use crate::anomaly::Anomaly;
use crate::event::{Direction, SessionEvent};
use crate::peers::{self, PeerBook};
use crate::smtp::mail::{MailFacts, Stage};
use crate::tls::CertStatus;
use registry::Series;
pub use registry::{openmetrics, Snapshot, FAMILIES};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// `result` of `ekuwatch_smtp_messages_total` for a session refused at EHLO (besides `TxResult::ALL`).
pub const REFUSED_AT_EHLO: &str = "refused_at_ehlo";

/// Sessions a peer needs before it gets its own `peer` label.
pub const PEER_MIN_SESSIONS: u64 = 2;
/// Peers tracked while waiting for a label (beyond it, new peers go straight to `other`).
const MAX_CANDIDATES: usize = 100_000;

#[derive(Debug, Default)]
pub struct Metrics {
    series: Series,
    top_n: usize,
    watch: BTreeSet<String>,
    labelled: BTreeSet<String>,
    candidates: HashMap<String, u64>,
}

impl Metrics {
    pub fn new(top_n: usize, watch: impl IntoIterator<Item = String>) -> Self {
        let m = Metrics {
            top_n,
            watch: watch.into_iter().collect(),
            ..Default::default()
        };
        m.series.set(
            "ekuwatch_build_info",
            &[
                ("version", crate::build::VERSION),
                ("revision", crate::build::REVISION),
                ("features", crate::build::FEATURES),
            ],
            1.0,
        );
        m.series.set("ekuwatch_flows_active", &[], 0.0);
        for a in Anomaly::ALL {
            m.series.add("ekuwatch_weirds", &[("kind", a.name())], 0.0);
        }
        for layer in ["capture", "decode"] {
            m.series
                .add("ekuwatch_parse_errors", &[("layer", layer)], 0.0);
        }
        m
    }

    /// Number of series (the cardinality bound is checked on this).
    pub fn series(&self) -> usize {
        self.series.count()
    }

    /// The `peer` label value for a registered domain seen in a session of this direction
    /// (bounded; inbound sessions take no slot; see the module doc).
    pub fn peer_label(&mut self, peer: &str, direction: Direction) -> String {
        if self.watch.contains(peer) {
            return peer.to_string();
        }
        if direction == Direction::Inbound {
            return "other".into();
        }
        if self.labelled.contains(peer) {
            return peer.to_string();
        }
        if self.labelled.len() >= self.top_n {
            return "other".into();
        }
        if self.candidates.len() >= MAX_CANDIDATES && !self.candidates.contains_key(peer) {
            return "other".into();
        }
        let n = self.candidates.entry(peer.to_string()).or_default();
        *n += 1;
        if *n >= PEER_MIN_SESSIONS {
            self.candidates.remove(peer);
            self.labelled.insert(peer.to_string());
            return peer.to_string();
        }
        "other".into()
    }

    /// Counts one session event; `peer` is its registered domain (peers::registered_domain).
    pub fn observe(&mut self, ev: &SessionEvent, peer: &str) {
        let dir = ev.direction.as_str();
        let peer = self.peer_label(peer, ev.direction);
        let peer = peer.as_str();
        let s = &self.series;
        if let Some(m) = &ev.mail {
            observe_mail(s, ev, m, dir, peer);
        }
        if let Some(smtp) = &ev.smtp {
            let labels = [("direction", dir), ("starttls", smtp.starttls.as_str())];
            s.add("ekuwatch_smtp_sessions", &labels, 1.0);
        }
        for w in ev.anomalies().names() {
            s.add("ekuwatch_weirds", &[("kind", w)], 1.0);
        }
        let Some(t) = &ev.tls else { return };
        let version = t.version.as_deref().unwrap_or("unknown");
        let resumed = t.resumed == Some(true);
        let result = t.outcome.result.as_str();
        s.add(
            "ekuwatch_tls_handshakes",
            &[
                ("direction", dir),
                ("version", version),
                ("resumed", if resumed { "true" } else { "false" }),
                ("result", result),
            ],
            1.0,
        );
        let cr = &t.certificate_request;
        let cr_labels = [
            ("direction", dir),
            ("version", version),
            ("evidence", cr.evidence.as_str()),
            ("peer", peer),
        ];
        if !resumed && cr.present.is_some() {
            s.add("ekuwatch_certificate_request_checks", &cr_labels, 1.0);
            if cr.present == Some(true) {
                s.add("ekuwatch_certificate_requests", &cr_labels, 1.0);
            }
        }
        if t.outcome.result == crate::tls::OutcomeResult::Established {
            let crv = match cr.present {
                None => "unknown",
                Some(true) => "true",
                Some(false) => "false",
            };
            let labels = [
                ("direction", dir),
                ("certificate_request", crv),
                ("peer", peer),
            ];
            s.add("ekuwatch_established_sessions", &labels, 1.0);
        }
        let cc = &t.client_certificate;
        let class = cc
            .chain
            .first()
            .and_then(|c| c.eku_class)
            .map_or("unknown", |c| c.as_str());
        let trust = cc.chain_class.as_ref().map_or("unknown", |c| c.trust);
        let presented = cc.status == CertStatus::Presented;
        if cc.status != CertStatus::Absent || cr.present == Some(true) {
            let labels = [
                ("direction", dir),
                ("status", cc.status.as_str()),
                ("eku_class", if presented { class } else { "none" }),
                ("trust", if presented { trust } else { "unknown" }),
                ("peer", peer),
            ];
            s.add("ekuwatch_client_certificates", &labels, 1.0);
        }
        let alert = match &t.outcome.alert {
            None => "none",
            Some(a) => a.description.as_deref().unwrap_or("encrypted"),
        };
        let client_class = match cc.status {
            CertStatus::Presented => class,
            CertStatus::Empty | CertStatus::Absent => "no_cert",
            CertStatus::Unknown => "unknown",
        };
        let labels = [
            ("direction", dir),
            ("result", result),
            ("alert", alert),
            ("client_eku_class", client_class),
            ("peer", peer),
        ];
        s.add("ekuwatch_handshake_outcomes", &labels, 1.0);
    }

    /// Current verdicts (one series per labelled peer; `other` peers are not listed).
    pub fn set_verdicts(&mut self, book: &PeerBook) {
        self.series.clear("ekuwatch_peer_verdict");
        for p in book.peers() {
            let (Some(v), true) = (
                p.verdict(),
                self.watch.contains(&p.peer) || self.labelled.contains(&p.peer),
            ) else {
                continue;
            };
            let labels = [("peer", p.peer.as_str()), ("verdict", v)];
            self.series.set("ekuwatch_peer_verdict", &labels, 1.0);
        }
    }

    /// Capture-side counters (absolute values).
    pub fn set_capture(
        &mut self,
        source: &str,
        packets: u64,
        drops: &[(&str, u64)],
        flows_active: usize,
        parse_errors: &BTreeMap<&'static str, u64>,
    ) {
        let s = &self.series;
        s.set(
            "ekuwatch_capture_packets",
            &[("source", source)],
            packets as f64,
        );
        for (reason, n) in drops {
            let labels = [("source", source), ("reason", *reason)];
            s.set("ekuwatch_capture_dropped_packets", &labels, *n as f64);
        }
        s.set("ekuwatch_flows_active", &[], flows_active as f64);
        for (layer, n) in parse_errors {
            s.set("ekuwatch_parse_errors", &[("layer", *layer)], *n as f64);
        }
    }

    /// Bytes of the packets read (libpcap: every packet of the SMTP ports; eBPF: what it forwarded).
    pub fn set_capture_bytes(&mut self, source: &str, bytes: u64) {
        self.series.set(
            "ekuwatch_capture_bytes",
            &[("source", source)],
            bytes as f64,
        );
    }

    /// The eBPF program's counters (names from `ekuwatch_ebpf_common::counter::NAMES`), the
    /// done marks and the arm requests user space wrote into the kernel maps (sent, refused).
    pub fn set_ebpf(&mut self, kernel: &[(&str, u64)], marks: (u64, u64), arms: (u64, u64)) {
        let s = &self.series;
        for (name, v) in kernel {
            let v = *v as f64;
            let (family, label, value) = match *name {
                "packets_forwarded" => ("ekuwatch_ebpf_packets", "action", "forwarded"),
                "packets_skipped_done" => ("ekuwatch_ebpf_packets", "action", "skipped_done"),
                "packets_skipped_budget" => ("ekuwatch_ebpf_packets", "action", "skipped_budget"),
                "packets_untracked" => ("ekuwatch_ebpf_packets", "action", "untracked"),
                "bytes_forwarded" => ("ekuwatch_ebpf_bytes", "action", "forwarded"),
                "bytes_skipped_done" => ("ekuwatch_ebpf_bytes", "action", "skipped_done"),
                "bytes_skipped_budget" => ("ekuwatch_ebpf_bytes", "action", "skipped_budget"),
                "bytes_untracked" => ("ekuwatch_ebpf_bytes", "action", "untracked"),
                "flows_tracked" => ("ekuwatch_ebpf_flows", "event", "tracked"),
                "flows_marked_done" => ("ekuwatch_ebpf_flows", "event", "marked_done"),
                "flows_over_budget" => ("ekuwatch_ebpf_flows", "event", "over_budget"),
                "map_insert_failed" => ("ekuwatch_ebpf_flows", "event", "map_full"),
                "packets_summarised" => ("ekuwatch_ebpf_packets", "action", "summarised"),
                "bytes_summarised" => ("ekuwatch_ebpf_bytes", "action", "summarised"),
                "packets_skipped_body" => ("ekuwatch_ebpf_packets", "action", "skipped_body"),
                "bytes_skipped_body" => ("ekuwatch_ebpf_bytes", "action", "skipped_body"),
                "arms_applied" => ("ekuwatch_ebpf_flows", "event", "summary_started"),
                "arms_refused" => ("ekuwatch_ebpf_flows", "event", "arm_refused"),
                "summary_exits" => ("ekuwatch_ebpf_flows", "event", "summary_exit"),
                "half_open_seen" => ("ekuwatch_ebpf_flows", "event", "half_open"),
                "half_open_insert_failed" => ("ekuwatch_ebpf_flows", "event", "half_open_map_full"),
                "lock_busy" => ("ekuwatch_ebpf_flows", "event", "lock_busy"),
                "lock_waited" => ("ekuwatch_ebpf_flows", "event", "lock_waited"),
                "ring_full" => continue, // exported as capture drops (reason ring_buffer)
                "not_parsed" => {
                    s.set("ekuwatch_ebpf_unparsed_packets", &[], v);
                    continue;
                }
                _ => continue, // totals (packets_seen, bytes_seen) are the sums of the above
            };
            s.set(family, &[(label, value)], v);
        }
        let sent = [
            ("mark_sent", marks.0),
            ("mark_failed", marks.1),
            ("arm_sent", arms.0),
            ("arm_failed", arms.1),
        ];
        for (event, n) in sent {
            s.set("ekuwatch_ebpf_flows", &[("event", event)], n as f64);
        }
    }

    /// Prometheus text exposition (format 0.0.4), written by the `prometheus` crate.
    pub fn render(&self) -> String {
        self.series.render()
    }

    /// A snapshot of every series, for timestamped OpenMetrics.
    pub fn snapshot(&self) -> Snapshot {
        self.series.snapshot()
    }

    /// OpenMetrics text with timestamps from snapshots taken at packet times (seconds).
    pub fn openmetrics(&self, snapshots: &[(f64, Snapshot)]) -> String {
        openmetrics(snapshots)
    }
}

/// `ekuwatch_smtp_messages_total`: one per message of the session (peers::messages: the listed
/// transactions and those counted beyond the list), and one `refused_at_ehlo` for a session
/// refused at its first command after TLS (no message could be sent).
fn observe_mail(s: &Series, ev: &SessionEvent, m: &MailFacts, dir: &str, peer: &str) {
    let cr = peers::cr_label(ev);
    let class = peers::client_eku_label(ev.tls.as_ref());
    let add = |result: &str, evidence: &str| {
        let labels = [
            ("direction", dir),
            ("certificate_request", cr),
            ("client_eku_class", class),
            ("result", result),
            ("evidence", evidence),
            ("peer", peer),
        ];
        s.add("ekuwatch_smtp_messages", &labels, 1.0);
    };
    for msg in peers::messages(m) {
        add(msg.result.as_str(), msg.evidence.as_str());
    }
    if m.rejection_stage == Some(Stage::Ehlo) {
        add(REFUSED_AT_EHLO, m.evidence.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_labels_are_bounded() {
        let mut m = Metrics::new(3, ["watched.example".to_string()]);
        let mut values = BTreeSet::new();
        for round in 0..3 {
            for i in 0..10_000 {
                values.insert(m.peer_label(&format!("p{i}.example"), Direction::Outbound));
            }
            values.insert(m.peer_label("watched.example", Direction::Outbound));
            let _ = round;
        }
        assert!(values.len() <= 3 + 1 + 1, "{}", values.len());
        assert!(values.contains("watched.example") && values.contains("other"));
    }

    #[test]
    fn inbound_clients_cannot_take_peer_slots() {
        let mut m = Metrics::new(2, ["watched.example".to_string()]);
        // Inbound clients name themselves (EHLO): however often they come, they stay `other`
        // and leave the slots free.
        for _ in 0..10 {
            for name in ["squat1.example", "squat2.example", "squat3.example"] {
                assert_eq!(m.peer_label(name, Direction::Inbound), "other");
            }
        }
        // The watch-list is labelled in either direction.
        assert_eq!(
            m.peer_label("watched.example", Direction::Inbound),
            "watched.example"
        );
        // The slots are still there for the domains we send to (and for unknown direction).
        for _ in 0..PEER_MIN_SESSIONS {
            m.peer_label("gmail.com", Direction::Outbound);
            m.peer_label("lab.test", Direction::Unknown);
        }
        assert_eq!(m.peer_label("gmail.com", Direction::Outbound), "gmail.com");
        assert_eq!(m.peer_label("lab.test", Direction::Unknown), "lab.test");
        // An inbound client claiming a labelled outbound peer's name gets no series under it.
        assert_eq!(m.peer_label("gmail.com", Direction::Inbound), "other");
        // Slots are full now: a later outbound peer is `other`.
        for _ in 0..PEER_MIN_SESSIONS {
            assert_eq!(m.peer_label("late.example", Direction::Outbound), "other");
        }
    }

    #[test]
    fn every_anomaly_is_preinitialised() {
        let text = Metrics::new(1, []).render();
        for a in Anomaly::ALL {
            let line = format!("ekuwatch_weirds_total{{kind=\"{}\"}} 0\n", a.name());
            assert!(text.contains(&line), "{line}");
        }
    }

    /// The session events of bundled captures (our side 127.0.0.2: outbound), no keys.
    fn events(names: &[&str]) -> Vec<SessionEvent> {
        let mut p = crate::pipeline::Pipeline::new(crate::flow::FlowConfig {
            local_nets: vec!["127.0.0.2/32".parse().unwrap()],
            ..Default::default()
        });
        for n in names {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../captures")
                .join(n);
            p.read_file(&path, |_, _| {}).unwrap();
        }
        p.finish();
        p.take_events()
    }

    #[test]
    fn smtp_messages_by_result_cr_and_client_class() {
        // Postfix logs (captures/logs): ask_ccert queued the message sent after our
        // serverAuth-only certificate; req_ccert aborted the session after TLS ("Client certificate
        // not trusted"), before any message; the plaintext session's message was queued.
        let evs = events(&[
            "pf-askccert-tls12-openssl-serveronly.pcap",
            "pf-reqccert-tls12-openssl-serveronly.pcap",
            "pf-noask-plain-swaks.pcap",
        ]);
        let mut m = Metrics::new(10, ["lab.test".to_string()]);
        for ev in &evs {
            m.observe(ev, "lab.test");
        }
        let t = m.render();
        for line in [
            "# TYPE ekuwatch_smtp_messages_total counter\n",
            "ekuwatch_smtp_messages_total{certificate_request=\"yes\",client_eku_class=\"server_only\",direction=\"outbound\",evidence=\"inferred\",peer=\"lab.test\",result=\"delivered\"} 1\n",
            "ekuwatch_smtp_messages_total{certificate_request=\"yes\",client_eku_class=\"server_only\",direction=\"outbound\",evidence=\"inferred\",peer=\"lab.test\",result=\"refused_at_ehlo\"} 1\n",
            "ekuwatch_smtp_messages_total{certificate_request=\"no_tls\",client_eku_class=\"no_cert\",direction=\"outbound\",evidence=\"plaintext\",peer=\"lab.test\",result=\"delivered\"} 1\n",
        ] {
            assert!(t.contains(line), "{line}\n{t}");
        }
        let series = t
            .lines()
            .filter(|l| l.starts_with("ekuwatch_smtp_messages_total{"))
            .count();
        assert_eq!(series, 3, "{t}");
        // The backfill comes from the same catalogue.
        let om = m.openmetrics(&[(60.0, m.snapshot())]);
        assert!(
            om.contains("# TYPE ekuwatch_smtp_messages counter\n"),
            "{om}"
        );
        assert!(om.contains("ekuwatch_smtp_messages_total{certificate_request=\"yes\",client_eku_class=\"server_only\",direction=\"outbound\",evidence=\"inferred\",peer=\"lab.test\",result=\"refused_at_ehlo\"} 1 60.000\n"), "{om}");
        // result values: the transaction results plus refused_at_ehlo, which is none of them.
        assert!(!crate::smtp::mail::TxResult::ALL
            .iter()
            .any(|r| r.as_str() == REFUSED_AT_EHLO));
    }

    #[test]
    fn smtp_messages_peer_label_is_bounded_like_the_others() {
        // No slots and no watch-list: every peer is `other`, in this family as in the rest.
        let evs = events(&["pf-askccert-tls12-openssl-serveronly.pcap"]);
        let mut m = Metrics::new(0, []);
        for _ in 0..3 {
            m.observe(&evs[0], "lab.test");
        }
        let t = m.render();
        assert!(
            t.contains("evidence=\"inferred\",peer=\"other\",result=\"delivered\"} 3\n"),
            "{t}"
        );
        assert!(!t.contains("peer=\"lab.test\""), "{t}");
    }

    #[test]
    fn text_format_shapes() {
        let mut m = Metrics::new(10, []);
        m.set_capture("pcap", 5, &[("kernel", 2)], 1, &BTreeMap::new());
        let t = m.render();
        assert!(t.contains("# TYPE ekuwatch_capture_packets_total counter\nekuwatch_capture_packets_total{source=\"pcap\"} 5\n"), "{t}");
        assert!(t.contains("ekuwatch_build_info{features=\""));
        let om = m.openmetrics(&[(10.0, m.snapshot()), (70.0, m.snapshot())]);
        assert!(om.contains("# TYPE ekuwatch_capture_packets counter\nekuwatch_capture_packets_total{source=\"pcap\"} 5 10.000\nekuwatch_capture_packets_total{source=\"pcap\"} 5 70.000\n"), "{om}");
        assert!(om.ends_with("# EOF\n"));
    }
}
