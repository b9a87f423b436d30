//! Heap held per connection over its life (issue 7: per-flow state while handshaking, memory
//! flat). A counting allocator measures the live heap of one flow table holding 1 000 copies of
//! a real session (each its own client address), all at the same packet: the heap per
//! connection after every packet, less the bytes held of data still arriving (reassembly queues,
//! partial records and messages: `FlowTable::held_stream_bytes`). Printed as
//! `packet:state+held` (docs/robustness.md), and bounded:
//! - before TLS (TCP + SMTP dialogue): ≤ 1 KiB;
//! - at any moment of the handshake: ≤ 1 KiB — the flow, its analyzers, the facts gathered so far
//!   (hello, CertificateRequest, certificates) and its share of the flow table, which is measured
//!   too: what is left per connection once every flow is closed (the table keeps its buckets),
//!   ≤ 32 B;
//! - after the handshake, for the rest of the session (the mail dialogue, message bodies that
//!   may take minutes): ≤ 1 KiB + 128 B — the handshake's facts are held until the session ends
//!   (its event is written then, with what happened to the mail), plus the mail dialogue's
//!   counters (`smtp::infer`, no buffers: bodies are skipped by record length).
use ekuwatch::capture::{CaptureReader, Item, Packet};
use ekuwatch::flow::FlowConfig;
use ekuwatch::pipeline::Pipeline;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes live on the heap since `r` was opened.
fn live(r: &Region<'_, System>) -> isize {
    let c = r.change();
    // (growth by realloc is in bytes_allocated, shrinking in bytes_deallocated)
    c.bytes_allocated as isize - c.bytes_deallocated as isize
}

fn frames(name: &str) -> Vec<Packet> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../captures")
        .join(name);
    let mut r = CaptureReader::open(&p).unwrap();
    let mut v = Vec::new();
    while let Some(Ok(item)) = r.next_item() {
        if let Item::Packet(p) = item {
            v.push(p);
        }
    }
    v
}

#[test]
fn per_connection_heap() {
    for name in [
        "pf-askccert-tls12-openssl-both.pcap",
        "pf-askccert-tls13-openssl-both.pcap",
        "pf-askccert-tls12-gnutls-serveronly.pcap",
    ] {
        let t = frames(name);
        let k = 1000u32;
        let mut pipe = Pipeline::new(FlowConfig::default());
        let f = &t[0].data;
        let (cip, cport) = ([f[26], f[27], f[28], f[29]], [f[34], f[35]]);
        let region = Region::new(GLOBAL);
        let mut line = Vec::new();
        let mut per_packet = Vec::new();
        for (j, p) in t.iter().enumerate() {
            for c in 0..k {
                let mut d = p.data.clone();
                let from_client = d[26..30] == cip && d[34..36] == cport;
                let (a, _) = if from_client { (26, 34) } else { (30, 36) };
                d[a..a + 4].copy_from_slice(&[10, 9, (c >> 8) as u8, c as u8]);
                pipe.frame(p.ts_ns, p.linktype, &d);
            }
            let events = pipe.take_events().len(); // handed on, as a sink would
            let held = pipe.flows.held_stream_bytes() as isize;
            let per = (live(&region) - held) / k as isize;
            line.push(format!("{j}:{per}+{}", held / k as isize));
            per_packet.push((j, per, events));
        }
        eprintln!("{name}: {}", line.join(" "));
        // The packet whose processing gave the event (all 1 000 at once): the close.
        let ev_at = per_packet
            .iter()
            .position(|&(_, _, n)| n > 0)
            .unwrap_or_else(|| panic!("{name}: no event"));
        let hello = t
            .iter()
            .position(|p| {
                p.data
                    .windows(6)
                    .any(|w| w[0] == 0x16 && w[1] == 0x03 && w[5] == 0x01)
            })
            .expect("a ClientHello");
        // The table's share: what is left once every flow is closed.
        let table = per_packet.last().unwrap().1;
        assert!(
            table <= 32,
            "{name}: {table} B per connection left after the close"
        );
        for &(j, per, _) in &per_packet {
            let bound = if j <= hello { 1024 } else { 1024 + 128 };
            let state = per;
            assert!(
                state <= bound,
                "{name}: {state} B per connection after packet {j} (bound {bound}; ClientHello at \
                 {hello}, event at {ev_at}; table share {table} B)"
            );
        }
        assert_eq!(pipe.flows.active_flows(), 0, "{name}: flows left");
    }
}
