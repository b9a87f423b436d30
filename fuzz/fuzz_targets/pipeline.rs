//! The whole offline pipeline: pcap/pcapng bytes → capture reader → decode → flows → reassembly →
//! SMTP → TLS → X.509 → events → per-peer book. Any input must end without a panic.
#![no_main]

use ekuwatch::capture::CaptureReader;
use ekuwatch::flow::FlowConfig;
use ekuwatch::peers::PeerBook;
use ekuwatch::pipeline::Pipeline;
use ekuwatch::sink::JsonlSink;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = FlowConfig { per_flow_cap: 64 * 1024, max_flows: 1024, ..FlowConfig::default() };
    let mut p = Pipeline::new(cfg);
    let _ = p.read(CaptureReader::new(std::path::Path::new("fuzz"), data), |_, _| {});
    p.finish();
    let mut book = PeerBook::default();
    let mut sink = JsonlSink::new(Vec::new());
    for ev in p.take_events() {
        sink.write(&ev).expect("events always serialise");
        book.add(&ev);
    }
});
