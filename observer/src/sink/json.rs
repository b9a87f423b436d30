//! The JSON report (also served as `/peers` by the live exporter).

use super::{peer_counts, summary};
use crate::peers::PeerBook;
use crate::pipeline::CaptureStats;

/// JSON report: `{"peers":[{"peer","direction","hosts","ips","verdict","evidence","counts"}],...}`.
pub fn json_report(
    book: &PeerBook,
    stats: &CaptureStats,
    flows: &crate::flow::FlowStats,
) -> serde_json::Value {
    serde_json::json!({
        "peers": book.peers().iter().map(|p| serde_json::json!({
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
        })).collect::<Vec<_>>(),
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
