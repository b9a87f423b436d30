//! Memory stays flat over many complete connections (issue 7): real sessions from the bundled
//! captures (Postfix with OpenSSL, GnuTLS and rustls clients; TLS 1.2 and 1.3; with and without
//! client certificates), each replayed with its own client address and port, fed through one
//! pipeline with events drained as a live observer does. Resident memory is read at every tenth of
//! the run: after the first tenth (tables and caches warm), it must not grow.
//!
//! `EKUWATCH_SOAK_CONNECTIONS` sets the count (CI: 100 000; docs/robustness.md: 1 000 000).

mod common;
use common::*;
use ekuwatch::capture::{CaptureReader, Item, Packet};
use ekuwatch::flow::FlowConfig;
use ekuwatch::pipeline::Pipeline;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Frames of one capture (Ethernet + IPv4, one TCP connection).
fn template(name: &str) -> Vec<Packet> {
    let mut r = CaptureReader::open(&captures().join(name)).unwrap();
    let mut v = Vec::new();
    while let Some(item) = r.next_item() {
        if let Ok(Item::Packet(p)) = item {
            v.push(p);
        }
    }
    v
}

#[test]
fn memory_is_flat_over_many_connections() {
    let n: u64 = std::env::var("EKUWATCH_SOAK_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let templates: Vec<Vec<Packet>> = [
        "pf-askccert-tls13-openssl-both.pcap",
        "pf-askccert-tls12-gnutls-serveronly.pcap",
        "pf-reqccert-tls13-openssl-serveronly.pcap",
        "pf-noask-tls13-rustls-nocert.pcap",
        "pf-askccert-tls12-openssl-both.pcap",
        "pf-noask-plain-swaks.pcap",
    ]
    .iter()
    .map(|t| template(t))
    .collect();
    // The client side of each template (the sender of the first SYN).
    let client_of = |t: &[Packet]| -> ([u8; 4], u16) {
        let f = &t[0].data;
        (
            [f[26], f[27], f[28], f[29]],
            u16::from_be_bytes([f[34], f[35]]),
        )
    };
    let mut pipe = Pipeline::new(FlowConfig::default());
    let (mut events, mut samples) = (0u64, Vec::new());
    let t0 = templates[0][0].ts_ns;
    for i in 0..n {
        let t = &templates[(i % templates.len() as u64) as usize];
        let (cip, cport) = client_of(t);
        // A distinct client per connection: 10.x.y.z, port from the connection number.
        let ip = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let port = 1024 + (i % 60_000) as u16;
        let shift = t0 + i as i64 * 2_000_000 - t[0].ts_ns; // a new connection every 2 ms
        for p in t {
            let mut d = p.data.clone();
            let from_client = d[26..30] == cip && d[34..36] == cport.to_be_bytes();
            let (a, pt) = if from_client { (26, 34) } else { (30, 36) };
            d[a..a + 4].copy_from_slice(&ip);
            d[pt..pt + 2].copy_from_slice(&port.to_be_bytes());
            pipe.frame(p.ts_ns + shift, p.linktype, &d);
        }
        events += pipe.take_events().len() as u64;
        if (i + 1) % (n / 10) == 0 {
            samples.push(rss_kb());
        }
    }
    pipe.finish();
    events += pipe.take_events().len() as u64;
    eprintln!(
        "{n} connections, {events} events, {} flows left; RSS by tenth (KB): {samples:?}",
        pipe.flows.active_flows()
    );
    assert_eq!(events, n, "one event per connection");
    assert_eq!(pipe.flows.active_flows(), 0);
    // Flat: after the first tenth, at most 8 MB more (allocator noise), whatever n is.
    let warm = samples[0];
    let last = *samples.last().unwrap();
    assert!(
        last <= warm + 8 * 1024,
        "resident memory grew from {warm} KB to {last} KB: {samples:?}"
    );
}
