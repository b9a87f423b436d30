//! Scaling with the number of concurrent connections (issue 7): the same real sessions, fed
//! through one pipeline with 1, 10 000 or 1 000 000 of them open at once.
//!
//! ```text
//! cargo bench --bench concurrency -- [--sessions S] N...     (default: S = 1 000 000; N = 1 10000 1000000)
//! ```
//!
//! Six real sessions from `captures/` (Postfix with OpenSSL, GnuTLS and rustls clients; TLS 1.2
//! and 1.3; with and without client certificates; one plaintext) are replayed `S` times, each
//! with its own client address and port. `N` slots each play one session packet by packet, in
//! rounds (one packet per slot per round, 1 µs of packet time apart); a slot whose session ended
//! starts the next one. So exactly `N` connections are open at every moment (until the tail),
//! and at N = 1 000 000 every one of them is mid-handshake at the same time. Events are drained
//! every 1 024 packets, as in live mode (not once per round: sessions of one template run in
//! lock step, and a round's events piled up would be most of the peak memory).
//!
//! Each `N` runs in a process of its own (peak memory is per process). Printed per run: wall time,
//! packets/s, sessions/s, peak RSS and the peak above an idle pipeline's, per open connection.
//! Checked per run (the run fails otherwise): one event per session, no flow evicted, no flow
//! left, and each template's sessions gave the same TLS outcome as the template alone.

use ekuwatch::capture::{CaptureReader, Item, Packet};

/// The same allocator as the `ekuwatch` binary (observer/src/main.rs).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use ekuwatch::event::SessionEvent;
use ekuwatch::flow::FlowConfig;
use ekuwatch::pipeline::Pipeline;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

const TEMPLATES: [&str; 6] = [
    "pf-askccert-tls13-openssl-both.pcap",
    "pf-askccert-tls12-gnutls-serveronly.pcap",
    "pf-reqccert-tls13-openssl-serveronly.pcap",
    "pf-noask-tls13-rustls-nocert.pcap",
    "pf-askccert-tls12-openssl-both.pcap",
    "pf-noask-plain-swaks.pcap",
];

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

struct Template {
    frames: Vec<Packet>,
    client: ([u8; 4], u16),
    /// What the session alone gives: (TLS outcome, client certificate status), as JSON text.
    expect: String,
}

fn summary(ev: &SessionEvent) -> String {
    let v = serde_json::to_value(ev).expect("event serialises");
    format!(
        "{} {} {}",
        v["tls"]["outcome"]["result"],
        v["tls"]["client_certificate"]["status"],
        v["smtp"]["starttls"]
    )
}

fn load(dir: &std::path::Path, name: &str) -> Template {
    let path = dir.join(name);
    let mut r = CaptureReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut frames = Vec::new();
    while let Some(item) = r.next_item() {
        if let Ok(Item::Packet(p)) = item {
            frames.push(p);
        }
    }
    let f = &frames[0].data; // Ethernet + IPv4; the first frame is the client's SYN
    let client = (
        [f[26], f[27], f[28], f[29]],
        u16::from_be_bytes([f[34], f[35]]),
    );
    let mut p = Pipeline::new(FlowConfig::default());
    for fr in &frames {
        p.packet(fr);
    }
    p.finish();
    let evs = p.take_events();
    assert_eq!(evs.len(), 1, "{name}: one session");
    Template {
        expect: summary(&evs[0]),
        frames,
        client,
    }
}

fn run(sessions: u64, n: u64) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../captures");
    let templates: Vec<Template> = TEMPLATES.iter().map(|t| load(&dir, t)).collect();
    let cfg = FlowConfig {
        max_flows: (n as usize) * 11 / 10 + 16,
        ..FlowConfig::default()
    };
    let mut pipe = Pipeline::new(cfg);
    let idle_kb = status_kb("VmRSS:");
    // Slot state: (session number, next frame index).
    let mut slots: Vec<(u64, usize)> = Vec::with_capacity(n as usize);
    let mut next_session = 0u64;
    let mut frame = Vec::with_capacity(2048);
    let (mut packets, mut bytes, mut clock) = (0u64, 0u64, 1_800_000_000_000_000_000i64);
    let mut got: BTreeMap<(usize, String), u64> = BTreeMap::new();
    let mut events = 0u64;
    let mut drain = |pipe: &mut Pipeline, got: &mut BTreeMap<(usize, String), u64>| {
        for ev in pipe.take_events() {
            // The template is encoded in the client port (see below).
            let t = usize::from(ev.client.port.wrapping_sub(1024)) % TEMPLATES.len();
            *got.entry((t, summary(&ev))).or_default() += 1;
            events += 1;
        }
    };
    let start = Instant::now();
    while next_session < n.min(sessions) {
        slots.push((next_session, 0));
        next_session += 1;
    }
    while !slots.is_empty() {
        let mut i = 0;
        while i < slots.len() {
            let (s, k) = slots[i];
            let t = &templates[(s % TEMPLATES.len() as u64) as usize];
            let p = &t.frames[k];
            frame.clear();
            frame.extend_from_slice(&p.data);
            let from_client =
                frame[26..30] == t.client.0 && frame[34..36] == t.client.1.to_be_bytes();
            let (a, pt) = if from_client { (26, 34) } else { (30, 36) };
            // Client 10.x.y.z unique per session; its port names the template:
            // 1024 + 6 * j + template.
            let ip = [10, (s >> 16) as u8, (s >> 8) as u8, s as u8];
            let port = 1024 + ((s >> 8) % 10_000) as u16 * 6 + (s % 6) as u16;
            frame[a..a + 4].copy_from_slice(&ip);
            frame[pt..pt + 2].copy_from_slice(&port.to_be_bytes());
            clock += 1_000;
            pipe.frame(clock, p.linktype, &frame);
            packets += 1;
            if packets % 1024 == 0 {
                // Events are handed on as they come (live mode drains after every batch of
                // packets): a round of lock-stepped sessions must not pile up its events.
                drain(&mut pipe, &mut got);
            }
            bytes += frame.len() as u64;
            if k + 1 < t.frames.len() {
                slots[i].1 = k + 1;
                i += 1;
            } else if next_session < sessions {
                slots[i] = (next_session, 0);
                next_session += 1;
                i += 1;
            } else {
                slots.swap_remove(i);
            }
        }
        drain(&mut pipe, &mut got);
    }
    pipe.finish();
    drain(&mut pipe, &mut got);
    let secs = start.elapsed().as_secs_f64();
    let peak_kb = status_kb("VmHWM:");
    println!(
        "concurrency {n:>9}: {sessions} sessions, {packets} packets ({:.1} MB) in {secs:.2} s = \
         {:.0} packets/s, {:.0} sessions/s; peak RSS {:.1} MB ({:.0} B per open connection above \
         the idle pipeline's {:.1} MB)",
        bytes as f64 / 1e6,
        packets as f64 / secs,
        sessions as f64 / secs,
        peak_kb as f64 / 1024.0,
        (peak_kb.saturating_sub(idle_kb) * 1024) as f64 / n as f64,
        idle_kb as f64 / 1024.0,
    );
    for ((t, sum), count) in &got {
        assert_eq!(
            sum, &templates[*t].expect,
            "{count} sessions of {} differ from the template alone",
            TEMPLATES[*t]
        );
    }
    let st = &pipe.flows.stats;
    assert_eq!(events, sessions, "one event per session");
    assert_eq!(st.flows_evicted, 0, "no flow evicted");
    assert_eq!(pipe.flows.active_flows(), 0, "no flow left");
}

fn main() {
    let mut sessions = 1_000_000u64;
    let mut ns = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sessions" => {
                sessions = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--sessions COUNT")
            }
            "--bench" => {} // passed by `cargo bench`
            n => ns.push(n.parse::<u64>().expect("concurrency: a number")),
        }
    }
    if ns.is_empty() {
        ns = vec![1, 10_000, 1_000_000];
    }
    if ns.len() == 1 {
        return run(sessions.max(ns[0]), ns[0]);
    }
    for n in ns {
        let st = std::process::Command::new(std::env::current_exe().expect("own path"))
            .args(["--sessions", &sessions.to_string(), &n.to_string()])
            .status()
            .expect("re-run for one concurrency");
        assert!(st.success(), "concurrency {n} failed");
    }
}
