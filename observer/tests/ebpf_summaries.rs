//! The eBPF record summaries, as root, on the real kernel: once user space knows where a TLS
//! direction's next record header is, the kernel follows the headers and sends summaries instead
//! of packets. Whatever happens meanwhile — retransmissions and reordering, user space lagging
//! behind, key logs, 1 MB bodies — the events equal the file's; where two CPUs race on one
//! direction (a known limit, docs/ebpf.md) the difference is never silent.
#![cfg(feature = "ebpf")]

mod common;
mod ebpf_support;
use common::*;
use ebpf_support::*;
use ekuwatch::capture::Packet;
use ekuwatch::flow::FlowConfig;
use ekuwatch::pipeline::Pipeline;
use std::collections::BTreeSet;
use std::time::Duration;

/// While the kernel summarises, segments come retransmitted and out of order: it gives up
/// following the direction, sends the packet whole with how far the direction passed in order,
/// and user space (the authority) arms it again. The events equal those of the same disordered
/// frames read as a file, and summaries were really used.
#[test]
fn disorder_while_summarising_gives_the_same_events() {
    let cfg = FlowConfig {
        smtp_ports: vec![25, 465, 587, 2465, 2531, 2532],
        ..FlowConfig::default()
    };
    let mut summarised = 0;
    for name in [
        "pf-mail-delivered-tls12-py-both.pcap",
        "pf-mail-multi-tls13-py-both.pcap",
        "exim-mail-multi-tls13-py-both.pcap",
        "pf-mail-1mb-tls13-py-both.pcap",
    ] {
        // Loopback captures carry up to 64 KB per frame; BPF_PROG_TEST_RUN takes a page at most:
        // cut into Ethernet-sized segments, as on a real link.
        let fr = resegment(&frames(&captures().join(name)), 1448);
        let ports: BTreeSet<u16> = direct_frames(&fr, cfg.clone())
            .iter()
            .map(|e| e["server"]["port"].as_u64().unwrap() as u16)
            .collect();
        for (variant, shuffled) in [
            ("retransmissions", retransmit(&fr, 5)),
            ("reordering", reorder(&fr, 7)),
        ] {
            let Some(mut cap) = load(&ports.iter().copied().collect::<Vec<_>>(), 64 * 1024) else {
                return;
            };
            let r = replay(&mut cap, &shuffled, cfg.clone(), true, true);
            let want = direct_frames(&shuffled, cfg.clone());
            assert_eq!(r.events, want, "{name} with {variant}");
            let c = cap.counters();
            assert!(c.get("summary_exits") > 0, "{name} {variant}: {c:?}");
            summarised += r.summaries.len();
        }
    }
    assert!(summarised > 0, "no summaries were sent");
}

/// With a key log the SMTP dialogue is decrypted to its end, so user space asks for no summaries
/// and the kernel sends keyed sessions whole: the events equal the file's with the same key log,
/// KeyUpdates in both directions included (a session summarised after its outcome would stop
/// decrypting at the first record the kernel kept: `TlsSession::on_skipped`).
#[test]
fn keyed_sessions_through_the_kernel_give_the_same_events() {
    let cfg = FlowConfig {
        smtp_ports: vec![25, 465, 587, 2465],
        ..FlowConfig::default()
    };
    for name in [
        "pf-askccert-tls13-openssl-both-keyupdate",
        "pf-noask-tls13-openssl-nocert-keyupdate",
        "pf-askccert-tls13-gnutls-nocert-keyupdate",
        "pf-mail-multi-tls13-py-both",
        "exim-mail-multi-tls13-py-both",
        "pf-reqccert-tls13-openssl-serveronly",
        "pf-mail-1mb-tls13-py-both",
    ] {
        let path = captures().join(format!("{name}.pcap"));
        let keylog = std::fs::read(captures().join(format!("{name}.keylog"))).unwrap();
        let fr = resegment(&frames(&path), 1448);
        let mut p = Pipeline::new(cfg.clone());
        p.flows.add_keylog(&keylog);
        for f in &fr {
            p.packet(f);
        }
        p.finish();
        let want = untimed(p.take_events());
        let ports: Vec<u16> = want
            .iter()
            .map(|e| e["server"]["port"].as_u64().unwrap() as u16)
            .collect();
        let Some(mut cap) = load(&ports, 64 * 1024) else {
            return;
        };
        let r = replay_keyed(&mut cap, &fr, cfg.clone(), true, true, &keylog);
        assert_eq!(r.events, want, "{name}");
        assert!(
            want.iter().all(|e| e["tls"]["decryption"] == "ok"),
            "{name}: {want:?}"
        );
        assert!(r.summaries.is_empty(), "{name}: summaries while decrypting");
    }
}

/// User space lagging behind the kernel (it reads the ring and sends its arms only every few
/// frames, in the middle of records and while the kernel already follows or summarises): the
/// events equal the file's, for lags from 2 to 40 frames, with summaries used.
#[test]
fn lagging_user_space_gives_the_same_events() {
    let cfg = FlowConfig {
        smtp_ports: vec![25, 465, 587, 2465, 2531, 2532, 2540, 2541],
        ..FlowConfig::default()
    };
    let mut summarised = 0;
    for name in [
        "pf-mail-delivered-tls12-py-both",
        "pf-mail-multi-tls13-py-both",
        "exim-mail-multi-tls13-py-both",
        "pf-mail-1mb-tls13-py-both",
        "pf-mail-bdat-tls13-py-both",
        "pf-askccert-tls13-openssl-both-keyupdate",
    ] {
        let fr = resegment(&frames(&captures().join(format!("{name}.pcap"))), 1448);
        let want = direct_frames(&fr, cfg.clone());
        let ports: Vec<u16> = want
            .iter()
            .map(|e| e["server"]["port"].as_u64().unwrap() as u16)
            .collect();
        for lag in [2, 3, 7, 16, 40] {
            let Some(mut cap) = load(&ports, 64 * 1024) else {
                return;
            };
            let r = replay_lagging(&mut cap, &fr, cfg.clone(), true, true, b"", lag);
            assert_eq!(r.events, want, "{name} with user space {lag} frames behind");
            summarised += r.summaries.len();
        }
    }
    assert!(summarised > 0, "no summaries were sent");
}

/// A 1 MB message over TLS 1.3 (real Postfix, cut into Ethernet-sized segments), frame by frame
/// and without user-space lag: after the handshake the body goes up as record summaries — what
/// reaches user space is a small fraction of the bytes, and the event is the file's.
#[test]
fn large_body_goes_up_as_summaries() {
    let cfg = FlowConfig {
        smtp_ports: vec![25, 2531],
        ..FlowConfig::default()
    };
    let fr = resegment(
        &frames(&captures().join("pf-mail-1mb-tls13-py-both.pcap")),
        1448,
    );
    let Some(mut cap) = load(&[2531], 64 * 1024) else {
        return;
    };
    let r = replay(&mut cap, &fr, cfg.clone(), true, true);
    assert_eq!(r.events, direct_frames(&fr, cfg));
    let wire: usize = fr.iter().map(|f| f.data.len()).sum();
    let c = cap.counters();
    let up = c.get("bytes_forwarded") as usize;
    eprintln!(
        "{} frames, {wire} bytes: {} whole packets, {} summaries, {} not sent; {up} bytes to user \
         space ({:.2} %)",
        fr.len(),
        r.forwarded.len(),
        r.summaries.len(),
        c.get("packets_skipped_body"),
        100.0 * up as f64 / wire as f64
    );
    assert!(up * 100 < wire * 3, "{up} of {wire} bytes went up");
}

/// Two CPUs at once: consecutive frames of one direction go through the program from two threads
/// pinned to two CPUs and released together by a spinning barrier (BPF_PROG_TEST_RUN runs on the
/// calling CPU), as when one connection's packets are handled by two CPUs (veth, RPS; a NIC's RSS
/// keeps a flow on one queue). The flow's lock keeps the kernel's in-order bookkeeping and the
/// ring in one order; a packet that finds the lock busy for the whole spin goes up whole. Every
/// event is the file's. What this test found on the way: without the lock a summary's in-order
/// claim overtook the packet it covered (events of the 1 MB session differed without a weird);
/// user space counted queued bytes a claim delivered twice (`payload_bytes`); an RST that overtook
/// its sender's last data ended the stream before it (now the flow waits for those bytes).
#[test]
fn two_cpus_at_once_give_the_same_events() {
    let cfg = FlowConfig {
        smtp_ports: vec![25, 465, 587, 2465, 2531, 2532, 2540, 2541],
        ..FlowConfig::default()
    };
    let (mut same, mut busy, mut waited) = (0, 0, 0);
    let cpu_count = std::thread::available_parallelism().map_or(1, |n| n.get());
    for name in [
        "pf-mail-multi-tls13-py-both",
        "exim-mail-multi-tls13-py-both",
        "pf-mail-1mb-tls13-py-both",
    ] {
        let fr = resegment(&frames(&captures().join(format!("{name}.pcap"))), 1448);
        let want = direct_frames(&fr, cfg.clone());
        let ports: Vec<u16> = want
            .iter()
            .map(|e| e["server"]["port"].as_u64().unwrap() as u16)
            .collect();
        let Some(mut cap) = load(&ports, 64 * 1024) else {
            return;
        };
        let mut pipe = Pipeline::new(FlowConfig {
            report_done: true,
            ..cfg.clone()
        });
        // Pairs of consecutive frames of the same direction (a burst of one side; a reply cannot
        // race the request it answers), else one frame alone.
        let mut groups: Vec<&[Packet]> = Vec::new();
        let mut i = 0;
        while i < fr.len() {
            let n = if i + 1 < fr.len() && fr[i].data[26..30] == fr[i + 1].data[26..30] {
                2
            } else {
                1
            };
            groups.push(&fr[i..i + n]);
            i += n;
        }
        let mut batch = Vec::new();
        for group in groups {
            // A spinning barrier: both threads leave it within nanoseconds (a futex wake-up takes
            // microseconds, longer than the program runs).
            let barrier = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|s| {
                for (k, f) in group.iter().enumerate() {
                    let (cap, barrier) = (&cap, &barrier);
                    s.spawn(move || {
                        // One thread per CPU, so that the two runs really overlap.
                        let mut cpus = nix::sched::CpuSet::new();
                        if cpus.set(k % cpu_count).is_ok() {
                            let _ =
                                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus);
                        }
                        barrier.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        while barrier.load(std::sync::atomic::Ordering::SeqCst) < group.len() {
                            std::hint::spin_loop();
                        }
                        assert_eq!(cap.test_run(&f.data, false).unwrap(), NO_VERDICT);
                    });
                }
            });
            batch.clear();
            cap.poll(Duration::ZERO, &mut batch).unwrap();
            for (p, hint) in &batch {
                pipe.kernel_frame(p.ts_ns, p.linktype, &p.data, hint);
            }
            let done = pipe.flows.take_finished_analysis();
            cap.mark_done(&done);
            let arms = pipe.flows.take_arm_requests();
            cap.arm(&arms);
        }
        pipe.finish();
        let got = untimed(pipe.take_events());
        assert_eq!(got.len(), want.len(), "{name}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{name}: an event differs from the file's");
            same += 1;
        }
        busy += cap.counters().get("lock_busy");
        waited += cap.counters().get("lock_waited");
    }
    eprintln!(
        "two CPUs at once: {same} events, all as the file's; {waited} packets waited for their \
         flow's lock, {busy} found it busy for the whole spin"
    );
}
