//! The JSON report (also served as `/peers` by the live exporter).

use super::{peer_counts, summary};
use crate::peers::PeerBook;
use crate::pipeline::CaptureStats;

/// One peer as the JSON report lists it.
fn peer_json(p: &crate::peers::PeerStats) -> serde_json::Value {
    serde_json::json!({
        "peer": p.peer,
        "direction": p.direction,
        "observers": p.observers,
        "hosts": p.hosts,
        "ips": p.ips,
        "verdict": p.verdict(),
        "evidence": p.verdict_evidence(),
        "explanation": p.explanation(),
        "ca_names": p.ca_names,
        "counts": peer_counts(p),
    })
}

/// The report without its peers (`"peers": []`).
fn frame(
    book: &PeerBook,
    stats: &CaptureStats,
    flows: &crate::flow::FlowStats,
) -> serde_json::Value {
    serde_json::json!({
        "peers": [],
        "summary": summary(book),
        "capture": {
            "files": stats.files,
            "packets": stats.packets,
            "bytes": stats.bytes,
            "skipped": stats.skipped,
            "parse_errors": stats.parse_errors,
            "file_errors": stats.file_errors,
            "flows": flows.flows_created,
            "flows_evicted": flows.flows_evicted,
            "events": flows.events,
            "weirds": flows.weirds,
        }
    })
}

/// JSON report: `{"peers":[{"peer","direction","observers","hosts","ips","verdict","evidence",
/// "counts"}],...}`.
pub fn json_report(
    book: &PeerBook,
    stats: &CaptureStats,
    flows: &crate::flow::FlowStats,
) -> serde_json::Value {
    let mut v = frame(book, stats, flows);
    if let Some(peers) = v.get_mut("peers") {
        *peers = book.peers().into_iter().map(peer_json).collect();
    }
    v
}

/// The JSON report pretty-printed to `out` (the same text as `to_string_pretty(json_report(..))`
/// and a newline), one peer at a time: memory for one peer's JSON, not for every peer's (the
/// whole report as a `Value` takes about ten times its text: 1 GB for 20 000 peers).
pub fn write_json_report<W: std::io::Write>(
    out: &mut W,
    book: &PeerBook,
    stats: &CaptureStats,
    flows: &crate::flow::FlowStats,
) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(&frame(book, stats, flows))?;
    // keys are sorted: "capture", "peers", "summary"; strings never hold a raw newline
    const EMPTY: &str = "\"peers\": []";
    let (head, tail) = text
        .split_once(EMPTY)
        .ok_or_else(|| std::io::Error::other("report frame without peers"))?;
    out.write_all(head.as_bytes())?;
    out.write_all(b"\"peers\": [")?;
    let peers = book.peers();
    for (i, p) in peers.iter().enumerate() {
        let one = serde_json::to_string_pretty(&peer_json(p))?;
        out.write_all(if i == 0 { b"\n    " } else { b",\n    " })?;
        out.write_all(one.replace('\n', "\n    ").as_bytes())?;
    }
    if !peers.is_empty() {
        out.write_all(b"\n  ")?;
    }
    out.write_all(b"]")?;
    out.write_all(tail.as_bytes())?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed text is the pretty-printed report, with peers and without.
    #[test]
    fn streamed_report_is_the_pretty_report() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../captures");
        let mut p = crate::pipeline::Pipeline::new(crate::flow::FlowConfig {
            local_nets: vec!["127.0.0.2/32".parse().unwrap()],
            ..Default::default()
        });
        let mut book = PeerBook::default();
        let mut files: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|f| f.extension().is_some_and(|x| x == "pcap"))
            .collect();
        files.sort();
        for f in files.iter().take(40) {
            p.read_file(f, |_, _| {}).unwrap();
        }
        p.finish();
        for ev in p.take_events() {
            book.add(&ev);
        }
        for book in [PeerBook::default(), book] {
            let mut out = Vec::new();
            write_json_report(&mut out, &book, &p.stats, &p.flows.stats).unwrap();
            let want = serde_json::to_string_pretty(&json_report(&book, &p.stats, &p.flows.stats))
                .unwrap()
                + "\n";
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }
}
