//! The metric families of docs/metrics.md on the `prometheus` crate's registry (the design
//! card's choice): one `CounterVec`/`GaugeVec` per family, declared once here with its help
//! text and label names; the live text format is the crate's `TextEncoder`.
//!
//! What the crate does not write is the timestamped OpenMetrics backfill of an offline analysis
//! (`analyze --openmetrics`: samples at packet times, grouped per family and series as `promtool
//! tsdb create-blocks-from openmetrics` requires): `snapshot` reads the registry back through
//! `gather()` and `openmetrics` writes the snapshots — the same families, labels and values.
//!
//! Why `prometheus` and not `prometheus-client`: the design card names it, its process collector
//! gives the standard `process_*` metrics, and its vectors take label values at run time in a
//! declared order (prometheus-client wants a label type per family at compile time, which this
//! catalogue would have to spell out twice).

use prometheus::core::Collector;
use prometheus::{CounterVec, Encoder, GaugeVec, Opts, TextEncoder};
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One family of the catalogue: its name without `_total`, type, help and label names.
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

const fn family(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: &'static [&'static str],
) -> Family {
    Family {
        name,
        kind,
        help,
        labels,
    }
}

use Kind::{Counter, Gauge};

/// The catalogue (docs/metrics.md is its prose).
pub const FAMILIES: &[Family] = &[
    family(
        "ekuwatch_smtp_sessions",
        Counter,
        "SMTP sessions by direction and STARTTLS use",
        &["direction", "starttls"],
    ),
    family(
        "ekuwatch_tls_handshakes",
        Counter,
        "TLS handshakes by version, resumption and result",
        &["direction", "version", "resumed", "result"],
    ),
    family(
        "ekuwatch_certificate_requests",
        Counter,
        "Non-resumed handshakes with a CertificateRequest",
        &["direction", "version", "evidence", "peer"],
    ),
    family(
        "ekuwatch_certificate_request_checks",
        Counter,
        "Non-resumed handshakes where CertificateRequest presence is known",
        &["direction", "version", "evidence", "peer"],
    ),
    family(
        "ekuwatch_established_sessions",
        Counter,
        "TLS sessions that carried SMTP after the handshake",
        &["direction", "certificate_request", "peer"],
    ),
    family(
        "ekuwatch_client_certificates",
        Counter,
        "Client certificates by status, leaf EKU class and trust",
        &["direction", "status", "eku_class", "trust", "peer"],
    ),
    family(
        "ekuwatch_handshake_outcomes",
        Counter,
        "Handshake outcomes by alert and the client certificate's EKU class",
        &["direction", "result", "alert", "client_eku_class", "peer"],
    ),
    family(
        "ekuwatch_smtp_messages",
        Counter,
        "SMTP messages (mail transactions) by result, CertificateRequest and the client certificate's EKU class; sessions refused at EHLO as result refused_at_ehlo",
        &["direction", "certificate_request", "client_eku_class", "result", "evidence", "peer"],
    ),
    family(
        "ekuwatch_peer_verdict",
        Gauge,
        "Current verdict per peer (1)",
        &["peer", "verdict"],
    ),
    family(
        "ekuwatch_capture_packets",
        Counter,
        "Packets read from the capture source",
        &["source"],
    ),
    family(
        "ekuwatch_capture_bytes",
        Counter,
        "Bytes of the packets read from the capture source (what reached user space)",
        &["source"],
    ),
    family(
        "ekuwatch_capture_dropped_packets",
        Counter,
        "Packets dropped before analysis",
        &["source", "reason"],
    ),
    family(
        "ekuwatch_flows_active",
        Gauge,
        "TCP flows in the flow table",
        &[],
    ),
    family(
        "ekuwatch_ebpf_packets",
        Counter,
        "Packets on watched ports seen by the eBPF program, by what it did with them",
        &["action"],
    ),
    family(
        "ekuwatch_ebpf_bytes",
        Counter,
        "Bytes of those packets (forwarded: bytes copied to user space)",
        &["action"],
    ),
    family(
        "ekuwatch_ebpf_flows",
        Counter,
        "Connections in the eBPF flow map, by event",
        &["event"],
    ),
    family(
        "ekuwatch_ebpf_unparsed_packets",
        Counter,
        "Frames the eBPF program did not read as TCP over IPv4/IPv6",
        &[],
    ),
    family(
        "ekuwatch_weirds",
        Counter,
        "Anomalies by kind",
        &["kind"],
    ),
    family(
        "ekuwatch_parse_errors",
        Counter,
        "Parse errors by layer",
        &["layer"],
    ),
    family(
        "ekuwatch_build_info",
        Gauge,
        "Build information (1)",
        &["version", "revision", "features"],
    ),
];

/// The name samples of a family carry (`_total` for counters, as Prometheus names them).
pub fn sample_name(f: &Family) -> String {
    match f.kind {
        Kind::Counter => format!("{}_total", f.name),
        Kind::Gauge => f.name.to_string(),
    }
}

enum Vector {
    Counter(CounterVec),
    Gauge(GaugeVec),
}

/// Every series' value at one moment: (family, label pairs sorted by name, value).
pub type Snapshot = Vec<(&'static str, Vec<(String, String)>, f64)>;

/// The registry with the catalogue's families registered.
pub struct Series {
    registry: prometheus::Registry,
    vectors: BTreeMap<&'static str, (&'static Family, Vector)>,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("families", &self.vectors.len())
            .finish()
    }
}

impl Default for Series {
    fn default() -> Self {
        Self::new()
    }
}

impl Series {
    pub fn new() -> Self {
        let registry = prometheus::Registry::new();
        let mut vectors = BTreeMap::new();
        for f in FAMILIES {
            let opts = Opts::new(sample_name(f), f.help);
            // Names and labels are constants, checked by `every_family_registers`; a family the
            // crate refused would only be missing from the output.
            let v = match f.kind {
                Kind::Counter => CounterVec::new(opts, f.labels).map(|v| {
                    let _ = registry.register(Box::new(v.clone()));
                    Vector::Counter(v)
                }),
                Kind::Gauge => GaugeVec::new(opts, f.labels).map(|v| {
                    let _ = registry.register(Box::new(v.clone()));
                    Vector::Gauge(v)
                }),
            };
            if let Ok(v) = v {
                vectors.insert(f.name, (f, v));
            }
        }
        Series { registry, vectors }
    }

    /// The values of `labels` in the family's declared order; None when a name is missing or
    /// unknown (a programming error, caught by the tests through the rendered series).
    fn values<'a>(f: &Family, labels: &[(&'static str, &'a str)]) -> Option<Vec<&'a str>> {
        if labels.len() != f.labels.len() {
            debug_assert!(false, "{}: labels {labels:?}", f.name);
            return None;
        }
        let v = f
            .labels
            .iter()
            .map(|name| labels.iter().find(|(n, _)| n == name).map(|(_, v)| *v))
            .collect::<Option<Vec<_>>>();
        debug_assert!(v.is_some(), "{}: labels {labels:?}", f.name);
        v
    }

    /// Adds `v` to a series.
    pub fn add(&self, name: &str, labels: &[(&'static str, &str)], v: f64) {
        let Some((f, vec)) = self.vectors.get(name) else {
            return;
        };
        let Some(vals) = Self::values(f, labels) else {
            return;
        };
        match vec {
            Vector::Counter(c) => c.with_label_values(&vals).inc_by(v.max(0.0)),
            Vector::Gauge(g) => g.with_label_values(&vals).add(v),
        }
    }

    /// Sets a series to `v` (a counter mirrored from an absolute count: it moves by the
    /// difference, and starts again from `v` if the source went back).
    pub fn set(&self, name: &str, labels: &[(&'static str, &str)], v: f64) {
        let Some((f, vec)) = self.vectors.get(name) else {
            return;
        };
        let Some(vals) = Self::values(f, labels) else {
            return;
        };
        match vec {
            Vector::Gauge(g) => g.with_label_values(&vals).set(v),
            Vector::Counter(c) => {
                let c = c.with_label_values(&vals);
                let now = c.get();
                if v < now {
                    c.reset();
                    c.inc_by(v.max(0.0));
                } else {
                    c.inc_by(v - now);
                }
            }
        }
    }

    /// Removes every series of a family (the verdict gauge is rewritten whole).
    pub fn clear(&self, name: &str) {
        match self.vectors.get(name) {
            Some((_, Vector::Counter(c))) => c.reset(),
            Some((_, Vector::Gauge(g))) => g.reset(),
            None => {}
        }
    }

    fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// Number of series (the cardinality bound is checked on this).
    pub fn count(&self) -> usize {
        self.vectors
            .values()
            .map(|(_, v)| match v {
                Vector::Counter(c) => c.collect(),
                Vector::Gauge(g) => g.collect(),
            })
            .flat_map(|fams| fams.into_iter().map(|f| f.get_metric().len()))
            .sum()
    }

    /// Prometheus text exposition (format 0.0.4), by the crate's encoder.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if TextEncoder::new().encode(&self.gather(), &mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Every series' value now, read back from the registry.
    pub fn snapshot(&self) -> Snapshot {
        let by_sample: BTreeMap<String, &'static str> =
            FAMILIES.iter().map(|f| (sample_name(f), f.name)).collect();
        let mut snap = Vec::new();
        for mf in self.gather() {
            let Some(family) = by_sample.get(mf.name()).copied() else {
                continue;
            };
            for m in mf.get_metric() {
                let labels = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_string(), l.value().to_string()))
                    .collect();
                let v = match mf.get_field_type() {
                    prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
                    _ => m.get_gauge().get_value(),
                };
                snap.push((family, labels, v));
            }
        }
        snap
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// OpenMetrics text with timestamps from snapshots taken at packet times (seconds), grouped by
/// family and series as `promtool tsdb create-blocks-from openmetrics` requires.
pub fn openmetrics(snapshots: &[(f64, Snapshot)]) -> String {
    type Key = (&'static str, Vec<(String, String)>);
    let mut series: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
    for (ts, snap) in snapshots {
        for (family, labels, v) in snap {
            series
                .entry((*family, labels.clone()))
                .or_default()
                .push((*ts, *v));
        }
    }
    let mut o = String::new();
    let mut families: Vec<&Family> = FAMILIES.iter().collect();
    families.sort_by_key(|f| f.name);
    for f in families {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(o, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(o, "# TYPE {} {kind}", f.name);
        let sname = sample_name(f);
        for ((n, labels), samples) in series.range((f.name, Vec::new())..) {
            if *n != f.name {
                break;
            }
            let l = if labels.is_empty() {
                String::new()
            } else {
                let inner: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                format!("{{{}}}", inner.join(","))
            };
            for (ts, v) in samples {
                let _ = writeln!(o, "{sname}{l} {v} {ts:.3}");
            }
        }
    }
    o.push_str("# EOF\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_registers() {
        let s = Series::new();
        assert_eq!(s.vectors.len(), FAMILIES.len());
        // Label names unique per family and never the reserved ones.
        for f in FAMILIES {
            let mut l = f.labels.to_vec();
            l.sort_unstable();
            l.dedup();
            assert_eq!(l.len(), f.labels.len(), "{}", f.name);
        }
    }

    #[test]
    fn counters_mirror_absolute_counts() {
        let s = Series::new();
        let l = [("source", "pcap")];
        s.set("ekuwatch_capture_packets", &l, 5.0);
        s.set("ekuwatch_capture_packets", &l, 9.0);
        assert!(s
            .render()
            .contains("ekuwatch_capture_packets_total{source=\"pcap\"} 9\n"));
        // The source went back (a restarted capture): the counter starts again, as Prometheus
        // expects of a counter reset.
        s.set("ekuwatch_capture_packets", &l, 2.0);
        assert!(s
            .render()
            .contains("ekuwatch_capture_packets_total{source=\"pcap\"} 2\n"));
        s.add("ekuwatch_capture_packets", &l, 1.0);
        let snap = s.snapshot();
        assert!(snap.contains(&(
            "ekuwatch_capture_packets",
            vec![("source".into(), "pcap".into())],
            3.0
        )));
        s.clear("ekuwatch_capture_packets");
        assert_eq!(s.count(), 0);
    }

    #[test]
    fn label_values_are_escaped_in_the_backfill() {
        let s = Series::new();
        s.add("ekuwatch_weirds", &[("kind", "a\"b\\c\nd")], 1.0);
        let om = openmetrics(&[(1.0, s.snapshot())]);
        assert!(
            om.contains("ekuwatch_weirds_total{kind=\"a\\\"b\\\\c\\nd\"} 1 1.000\n"),
            "{om}"
        );
        assert!(s
            .render()
            .contains("ekuwatch_weirds_total{kind=\"a\\\"b\\\\c\\nd\"} 1\n"));
    }
}
