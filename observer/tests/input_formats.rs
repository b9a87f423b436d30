//! The same real capture rewritten into every supported input shape — pcap (µs and ns), pcapng
//! (with if_tsresol), link types Ethernet / 802.1Q / QinQ / Linux SLL / SLL2 / raw IP / BSD NULL —
//! must give identical events. A truncated copy gives the events before the damage and a report.

mod common;
use common::*;
use ekuwatch::capture::{linktype, CaptureReader, FileReader, Item, Packet};
use ekuwatch::flow::FlowConfig;
use ekuwatch::pipeline::Pipeline;
use serde_json::Value;
use std::path::Path;

fn packets(path: &Path) -> Vec<Packet> {
    let mut r = FileReader::open(path).unwrap();
    let mut v = Vec::new();
    while let Some(Ok(Item::Packet(p))) = r.next_item() {
        v.push(p);
    }
    v
}

fn pcap(pkts: &[Packet], linktype: u32, nanos: bool) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(if nanos { 0xa1b2_3c4du32 } else { 0xa1b2_c3d4 }).to_le_bytes());
    v.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
    v.extend_from_slice(&linktype.to_le_bytes());
    for p in pkts {
        let secs = (p.ts_ns / 1_000_000_000) as u32;
        let frac = (p.ts_ns % 1_000_000_000) as u32;
        v.extend_from_slice(&secs.to_le_bytes());
        v.extend_from_slice(&(if nanos { frac } else { frac / 1000 }).to_le_bytes());
        v.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
        v.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
        v.extend_from_slice(&p.data);
    }
    v
}

fn block(ty: u32, body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
    let len = (b.len() + 12) as u32;
    let mut v = ty.to_le_bytes().to_vec();
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&b);
    v.extend_from_slice(&len.to_le_bytes());
    v
}

fn pcapng(pkts: &[Packet], linktype: u32) -> Vec<u8> {
    pcapng_with_secrets(pkts, linktype, None)
}

/// pcapng, optionally with a Decryption Secrets Block (TLS key log) before the packets, as
/// `editcap --inject-secrets tls,KEYLOG` writes it.
fn pcapng_with_secrets(pkts: &[Packet], linktype: u32, keylog: Option<&[u8]>) -> Vec<u8> {
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    let mut v = block(0x0A0D_0D0A, &shb);
    let mut idb = (linktype as u16).to_le_bytes().to_vec();
    idb.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]); // if_tsresol = 10^-9, end
    v.extend(block(1, &idb));
    if let Some(k) = keylog {
        let mut dsb = 0x544c_534bu32.to_le_bytes().to_vec();
        dsb.extend_from_slice(&(k.len() as u32).to_le_bytes());
        dsb.extend_from_slice(k);
        v.extend(block(10, &dsb));
    }
    for p in pkts {
        let ts = p.ts_ns as u64;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&p.data);
        v.extend(block(6, &epb));
    }
    v
}

fn events_of(bytes: &[u8]) -> (Vec<Value>, Vec<String>) {
    // The same observer name as `analyze` gives (common::OBSERVER).
    let mut p = Pipeline::new(FlowConfig {
        observer: ekuwatch::event::Observer::new(OBSERVER),
        ..FlowConfig::default()
    });
    let _ = p.read(CaptureReader::new(Path::new("mem"), bytes), |_, _| {});
    p.finish();
    let ev = p
        .take_events()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    (ev, p.stats.file_errors.clone())
}

/// Re-frame an Ethernet frame's IP packet under another link layer.
fn reframe(eth: &[u8], lt: &str) -> Vec<u8> {
    let ethertype = [eth[12], eth[13]];
    let ip = &eth[14..];
    match lt {
        "raw" => ip.to_vec(),
        "null" => [&2u32.to_le_bytes()[..], ip].concat(),
        "sll" => [
            &[0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0][..],
            &ethertype,
            ip,
        ]
        .concat(),
        "sll2" => [
            &ethertype[..],
            &[0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0],
            ip,
        ]
        .concat(),
        "vlan" => [&eth[..12], &[0x81, 0x00, 0x00, 0x64], &eth[12..]].concat(),
        "qinq" => [
            &eth[..12],
            &[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x64],
            &eth[12..],
        ]
        .concat(),
        _ => unreachable!(),
    }
}

#[test]
fn every_input_shape_gives_the_same_events() {
    let cap = captures().join("pf-askccert-tls12-openssl-serveronly.pcap");
    let pkts = packets(&cap);
    assert!(pkts.iter().all(|p| p.linktype == linktype::ETHERNET));
    let want = analyze(&cap);
    assert_eq!(want.len(), 1);
    let (got, _) = events_of(&pcap(&pkts, linktype::ETHERNET, true));
    assert_eq!(got, want, "pcap ns");
    let (got, _) = events_of(&pcapng(&pkts, linktype::ETHERNET));
    assert_eq!(got, want, "pcapng ns tsresol");
    for (name, lt) in [
        ("raw", linktype::RAW),
        ("null", linktype::NULL),
        ("sll", linktype::LINUX_SLL),
        ("sll2", linktype::LINUX_SLL2),
        ("vlan", linktype::ETHERNET),
        ("qinq", linktype::ETHERNET),
    ] {
        let re: Vec<Packet> = pkts
            .iter()
            .map(|p| Packet {
                data: reframe(&p.data, name),
                linktype: lt,
                ..p.clone()
            })
            .collect();
        let (got, _) = events_of(&pcap(&re, lt, false));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn truncated_file_gives_events_before_the_damage() {
    // Two sessions back to back; cut the file in the middle of the second one's last packets.
    let a = packets(&captures().join("pf-noask-tls12-openssl-nocert.pcap"));
    let b = packets(&captures().join("pf-askccert-tls12-openssl-both.pcap"));
    let shift = a.last().unwrap().ts_ns + 1_000_000_000 - b[0].ts_ns;
    let all: Vec<Packet> = a
        .iter()
        .cloned()
        .chain(b.iter().map(|p| Packet {
            ts_ns: p.ts_ns + shift,
            ..p.clone()
        }))
        .collect();
    let bytes = pcap(&all, linktype::ETHERNET, false);
    let (full, errs) = events_of(&bytes);
    assert_eq!(full.len(), 2);
    assert!(errs.is_empty());
    let cut = &bytes[..bytes.len() - 30];
    let (part, errs) = events_of(cut);
    assert_eq!(errs.len(), 1, "damage reported");
    assert!(errs[0].contains("truncated"), "{errs:?}");
    assert_eq!(part.len(), 2, "both sessions still reported");
    assert_eq!(part[0], full[0], "the complete session is unchanged");
}

#[test]
fn snaplen_cut_frames_are_flagged_not_fatal() {
    let pkts = packets(&captures().join("pf-askccert-tls12-openssl-both.pcap"));
    let cut: Vec<Packet> = pkts
        .iter()
        .map(|p| Packet {
            data: p.data[..p.data.len().min(200)].to_vec(),
            ..p.clone()
        })
        .collect();
    let (ev, _) = events_of(&pcap(&cut, linktype::ETHERNET, false));
    assert_eq!(ev.len(), 1);
    let w: Vec<&str> = ev[0]["weirds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(w.contains(&"truncated_packet"), "{w:?}");
}

#[test]
fn keys_embedded_in_pcapng_decrypt_like_a_keylog_file() {
    let cap = captures().join("pf-askccert-tls13-openssl-serveronly.pcap");
    let keylog = std::fs::read(cap.with_extension("keylog")).unwrap();
    let pkts = packets(&cap);
    let (without, _) = events_of(&pcapng(&pkts, linktype::ETHERNET));
    assert_eq!(
        without[0]["tls"]["certificate_request"]["evidence"],
        "inferred"
    );
    let (with, _) = events_of(&pcapng_with_secrets(
        &pkts,
        linktype::ETHERNET,
        Some(&keylog),
    ));
    let t = &with[0]["tls"];
    assert_eq!(t["decryption"], "ok");
    assert_eq!(t["certificate_request"]["evidence"], "decrypted");
    assert_eq!(
        t["client_certificate"]["chain"][0]["eku_class"],
        "server_only"
    );
    assert_eq!(
        with,
        analyze_with_keys(&cap),
        "same events as with --keylog"
    );
}

#[test]
fn a_wrong_key_falls_back_to_inference() {
    let cap = captures().join("pf-askccert-tls13-openssl-serveronly.pcap");
    let keylog = String::from_utf8(std::fs::read(cap.with_extension("keylog")).unwrap()).unwrap();
    // same client_random, every secret byte flipped
    let wrong: String = keylog
        .lines()
        .map(|l| {
            let mut f: Vec<String> = l.split(' ').map(str::to_string).collect();
            if f.len() == 3 {
                f[2] = f[2]
                    .chars()
                    .map(|c| if c == '0' { '1' } else { '0' })
                    .collect();
            }
            f.join(" ") + "\n"
        })
        .collect();
    let pkts = packets(&cap);
    let (ev, _) = events_of(&pcapng_with_secrets(
        &pkts,
        linktype::ETHERNET,
        Some(wrong.as_bytes()),
    ));
    let t = &ev[0]["tls"];
    assert_eq!(t["decryption"], "failed");
    assert_eq!(t["certificate_request"]["evidence"], "inferred");
    assert_eq!(t["certificate_request"]["present"], true);
    assert!(ev[0]["weirds"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w == "tls_decrypt_failed"));
}
