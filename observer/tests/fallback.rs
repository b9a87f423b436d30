//! Plaintext fallback: a TLS failure followed shortly by a plaintext SMTP session between the same
//! addresses (what Postfix does after a failed opportunistic TLS attempt) is flagged.

mod common;
use common::*;
use ekuwatch::capture::{linktype, FileReader, Item, Packet};
use ekuwatch::flow::FlowConfig;
use ekuwatch::pipeline::Pipeline;
use serde_json::Value;

fn packets(name: &str) -> Vec<Packet> {
    let mut r = FileReader::open(&captures().join(name)).unwrap();
    let mut v = Vec::new();
    while let Some(Ok(Item::Packet(p))) = r.next_item() {
        v.push(p);
    }
    v
}

fn run(gap_secs: i64) -> Vec<Value> {
    let failed = packets("pf-reqccert-tls12-openssl-nocert.pcap");
    let plain = packets("pf-noask-plain-swaks.pcap");
    let shift = failed.last().unwrap().ts_ns + gap_secs * 1_000_000_000 - plain[0].ts_ns;
    let mut p = Pipeline::new(FlowConfig::default());
    for pkt in failed.iter().cloned().chain(plain.iter().map(|x| Packet {
        ts_ns: x.ts_ns + shift,
        ..x.clone()
    })) {
        assert_eq!(pkt.linktype, linktype::ETHERNET);
        p.packet(&pkt);
    }
    p.finish();
    p.take_events()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

#[test]
fn plaintext_session_after_tls_failure_is_a_fallback() {
    let ev = run(5);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0]["tls"]["outcome"]["result"], "closed_after_handshake");
    assert_eq!(ev[0]["client"]["ip"], ev[1]["client"]["ip"]);
    assert!(ev[1]["tls"].is_null());
    assert_eq!(ev[1]["smtp"]["plaintext_fallback"], true);
    assert_eq!(ev[0]["smtp"]["plaintext_fallback"], false);
}

#[test]
fn not_a_fallback_when_long_after_or_alone() {
    let ev = run(3600);
    assert_eq!(ev[1]["smtp"]["plaintext_fallback"], false);
    let alone = analyze(&captures().join("pf-noask-plain-swaks.pcap"));
    assert_eq!(alone[0]["smtp"]["plaintext_fallback"], false);
}
