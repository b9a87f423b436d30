//! What the eBPF tests share (`tests/ebpf.rs`, `tests/ebpf_summaries.rs`): captures as frames,
//! loading the program, and the live loop replayed frame by frame through BPF_PROG_TEST_RUN
//! (optionally with a key log or with user space lagging behind), the file analysis to compare
//! with, and the frame surgery (resegmenting, retransmitting, reordering).
#![allow(dead_code)] // each test binary uses its part

use crate::common::{is_root, skip_or_fail};
use ekuwatch::capture::{CaptureReader, Item, Packet};
use ekuwatch::ebpf::{EbpfCapture, EbpfOptions};
use ekuwatch::flow::FlowConfig;
use ekuwatch::pipeline::Pipeline;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// `TC_ACT_UNSPEC`: the program never decides a packet's fate.
pub const NO_VERDICT: i32 = -1;

pub fn frames(path: &Path) -> Vec<Packet> {
    let mut r = CaptureReader::open(path).unwrap();
    let mut v = Vec::new();
    while let Some(item) = r.next_item() {
        if let Ok(Item::Packet(p)) = item {
            v.push(p);
        }
    }
    v
}

pub fn load(ports: &[u16], budget: u64) -> Option<EbpfCapture> {
    if !is_root() {
        skip_or_fail("needs root (loading eBPF programs)");
        return None;
    }
    Some(
        EbpfCapture::load(&EbpfOptions {
            interface: "lo".into(),
            ports: ports.to_vec(),
            budget,
            ring_bytes: 1 << 24,
        })
        .expect("the kernel program loads and passes the verifier"),
    )
}

/// Events without their timestamps (kernel time differs from capture time).
pub fn untimed(evs: Vec<ekuwatch::event::SessionEvent>) -> Vec<Value> {
    evs.iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap();
            v.as_object_mut().unwrap().remove("ts");
            v
        })
        .collect()
}

/// A summary as it went up: the frame's headers and the record headers (offset, bytes).
pub type SentSummary = (Vec<u8>, Vec<(u32, [u8; 5])>);

/// What the live loop does, one frame at a time through BPF_PROG_TEST_RUN.
pub struct Replay {
    pub frames_in: usize,
    /// Whole packets that went up.
    pub forwarded: Vec<Vec<u8>>,
    /// Summaries that went up: the frame's headers and the record headers standing for its payload.
    pub summaries: Vec<SentSummary>,
    pub events: Vec<Value>,
}

/// `mark_done`: tell the kernel which connections are not SMTP/TLS; `arm`: let it follow TLS
/// record headers and send summaries (what the live loop does).
pub fn replay(
    cap: &mut EbpfCapture,
    frames: &[Packet],
    cfg: FlowConfig,
    mark_done: bool,
    arm: bool,
) -> Replay {
    replay_keyed(cap, frames, cfg, mark_done, arm, b"")
}

/// [`replay`] with a key log (`keylog` empty: none).
pub fn replay_keyed(
    cap: &mut EbpfCapture,
    frames: &[Packet],
    cfg: FlowConfig,
    mark_done: bool,
    arm: bool,
    keylog: &[u8],
) -> Replay {
    replay_lagging(cap, frames, cfg, mark_done, arm, keylog, 1)
}

/// [`replay_keyed`] with user space behind the kernel: the ring is read, and done marks and arm
/// requests sent, only every `lag` frames (the kernel has gone on meanwhile, as on a busy host:
/// arms refer to headers it may already have passed).
pub fn replay_lagging(
    cap: &mut EbpfCapture,
    frames: &[Packet],
    cfg: FlowConfig,
    mark_done: bool,
    arm: bool,
    keylog: &[u8],
    lag: usize,
) -> Replay {
    let mut pipe = Pipeline::new(FlowConfig {
        report_done: true,
        ..cfg
    });
    pipe.flows.add_keylog(keylog);
    let mut forwarded = Vec::new();
    let mut summaries = Vec::new();
    let mut batch = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let egress = i % 2 == 1; // both hooks see traffic
        assert_eq!(cap.test_run(&f.data, egress).unwrap(), NO_VERDICT);
        if (i + 1) % lag != 0 && i + 1 != frames.len() {
            continue;
        }
        batch.clear();
        cap.poll(Duration::ZERO, &mut batch).unwrap();
        for (p, hint) in &batch {
            match &hint.summary {
                Some(h) => summaries.push((p.data.clone(), h.iter().copied().collect())),
                None => forwarded.push(p.data.clone()),
            }
            pipe.kernel_frame(p.ts_ns, p.linktype, &p.data, hint);
        }
        let done = pipe.flows.take_finished_analysis();
        if mark_done {
            cap.mark_done(&done);
        }
        let arms = pipe.flows.take_arm_requests();
        if arm {
            cap.arm(&arms);
        }
    }
    pipe.finish();
    Replay {
        frames_in: frames.len(),
        forwarded,
        summaries,
        events: untimed(pipe.take_events()),
    }
}

pub fn direct(path: &Path, cfg: FlowConfig) -> Vec<Value> {
    let mut p = Pipeline::new(cfg);
    let _ = p.read_file(path, |_, _| {});
    p.finish();
    untimed(p.take_events())
}

/// The events of a frame sequence read as a file would be.
pub fn direct_frames(frames: &[Packet], cfg: FlowConfig) -> Vec<Value> {
    let mut p = Pipeline::new(cfg);
    for f in frames {
        p.packet(f);
    }
    p.finish();
    untimed(p.take_events())
}

/// Ethernet/IPv4/TCP frames with more than `mss` payload bytes cut into segments of `mss` (the
/// same headers, lengths and sequence numbers adjusted; FIN only on the last).
pub fn resegment(fr: &[Packet], mss: usize) -> Vec<Packet> {
    let mut out = Vec::new();
    for f in fr {
        let d = &f.data;
        let ihl = usize::from(d[14] & 0x0f) * 4;
        let l4 = 14 + ihl;
        let doff = usize::from(d[l4 + 12] >> 4) * 4;
        let total = usize::from(u16::from_be_bytes([d[16], d[17]]));
        let payload = &d[l4 + doff..14 + total];
        if d[12..14] != [8, 0] || payload.len() <= mss {
            out.push(f.clone());
            continue;
        }
        let seq = u32::from_be_bytes(d[l4 + 4..l4 + 8].try_into().unwrap());
        let chunks: Vec<&[u8]> = payload.chunks(mss).collect();
        for (i, c) in chunks.iter().enumerate() {
            let mut g = d[..l4 + doff].to_vec();
            let len = (ihl + doff + c.len()) as u16;
            g[16..18].copy_from_slice(&len.to_be_bytes());
            let s = seq.wrapping_add((i * mss) as u32);
            g[l4 + 4..l4 + 8].copy_from_slice(&s.to_be_bytes());
            if i + 1 < chunks.len() {
                g[l4 + 13] &= !0x01; // FIN on the last segment only
            }
            g.extend_from_slice(c);
            out.push(Packet {
                ts_ns: f.ts_ns,
                linktype: f.linktype,
                orig_len: g.len() as u32,
                data: g,
            });
        }
    }
    out
}

/// Every `n`th data frame sent twice (the copy right after the next frame).
pub fn retransmit(fr: &[Packet], n: usize) -> Vec<Packet> {
    let mut out = Vec::new();
    let mut pending = None;
    for (i, f) in fr.iter().enumerate() {
        out.push(f.clone());
        if let Some(p) = pending.take() {
            out.push(p);
        }
        if i % n == n - 1 && f.data.len() > 66 {
            pending = Some(f.clone());
        }
    }
    out.extend(pending);
    out
}

/// Every `n`th frame swapped with the one after it.
pub fn reorder(fr: &[Packet], n: usize) -> Vec<Packet> {
    let mut out: Vec<Packet> = fr.to_vec();
    let mut i = n - 1;
    while i + 1 < out.len() {
        out.swap(i, i + 1);
        i += n;
    }
    out
}
