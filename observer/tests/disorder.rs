//! Property test: any resegmentation, reordering (within a burst of one side's packets, as the
//! network does) and duplication of the real streams in `captures/` and the public corpus yields
//! the same events as the ordered capture. Only the packet/byte counters may differ.

mod common;
use common::*;
use ekuwatch::capture::{FileReader, Item};
use ekuwatch::decode::{decode, Segment, TcpFlags};
use ekuwatch::flow::{FlowConfig, FlowTable};
use proptest::prelude::*;
use serde_json::Value;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
struct Seg {
    ts: i64,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    payload: Vec<u8>,
}

fn load(path: &Path) -> Vec<Seg> {
    let mut r = FileReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(Ok(item)) = r.next_item() {
        if let Item::Packet(p) = item {
            if let Ok(s) = decode(p.linktype, &p.data) {
                out.push(Seg {
                    ts: p.ts_ns,
                    src: s.src,
                    dst: s.dst,
                    sport: s.sport,
                    dport: s.dport,
                    seq: s.seq,
                    ack: s.ack,
                    flags: s.flags,
                    payload: s.payload.to_vec(),
                });
            }
        }
    }
    out
}

fn events(segs: &[Seg]) -> Vec<Value> {
    let mut t = FlowTable::new(FlowConfig::default());
    for s in segs {
        let seg = Segment {
            src: s.src,
            dst: s.dst,
            sport: s.sport,
            dport: s.dport,
            seq: s.seq,
            ack: s.ack,
            flags: s.flags,
            payload: &s.payload,
            truncated: false,
        };
        t.on_segment(&seg, s.ts);
    }
    t.finish_all();
    let mut v: Vec<Value> = t
        .take_events()
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("packets");
            o.remove("payload_bytes");
            v
        })
        .collect();
    v.sort_by_key(|e| e["community_id"].as_str().unwrap().to_string());
    v
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Split every data segment into random pieces, shuffle the pieces inside each burst of one
/// sender's data segments, and duplicate some. Control segments (SYN/FIN) stay in place; an RST
/// overtakes its sender's burst before it half of the time (two CPUs or capture queues).
fn disorder(segs: &[Seg], seed: u64) -> Vec<Seg> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    let mut burst: Vec<Seg> = Vec::new();
    let flush = |burst: &mut Vec<Seg>, out: &mut Vec<Seg>, rng: &mut Rng| {
        for i in (1..burst.len()).rev() {
            let j = rng.below(i + 1);
            burst.swap(i, j);
        }
        let n = burst.len();
        for k in 0..n {
            if rng.below(5) == 0 {
                let d = burst[k].clone();
                let at = k + rng.below(n - k);
                burst.insert(at.min(burst.len()), d);
            }
        }
        out.append(burst);
    };
    for s in segs {
        let control = s.flags.syn || s.flags.fin || s.flags.rst || s.payload.is_empty();
        let same_sender = burst
            .first()
            .is_none_or(|b| (b.src, b.sport) == (s.src, s.sport));
        if s.flags.rst && same_sender && !burst.is_empty() && rng.below(2) == 0 {
            out.push(s.clone());
            flush(&mut burst, &mut out, &mut rng);
            continue;
        }
        if control || !same_sender {
            flush(&mut burst, &mut out, &mut rng);
        }
        if control {
            out.push(s.clone());
            continue;
        }
        let mut off = 0;
        while off < s.payload.len() {
            let n = 1 + rng.below((s.payload.len() - off).min(700));
            let mut p = s.clone();
            p.seq = s.seq.wrapping_add(off as u32);
            p.payload = s.payload[off..off + n].to_vec();
            burst.push(p);
            off += n;
        }
    }
    flush(&mut burst, &mut out, &mut rng);
    out
}

/// Path and values of the first difference between two JSON values.
fn first_diff(a: &Value, b: &Value, path: &str) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                if y.get(k) != Some(v) {
                    return first_diff(v, y.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"));
                }
            }
            format!("{path}: keys differ")
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                if p != q {
                    return first_diff(p, q, &format!("{path}[{i}]"));
                }
            }
            String::new()
        }
        _ => format!("{path}: got {a} want {b}"),
    }
}

fn inputs() -> Vec<PathBuf> {
    let mut files = pcaps_in(&captures());
    match public_corpus() {
        Some(d) => {
            for rel in [
                "zeek/smtp-starttls.pcap",
                "zeek/xmpp-dialback-starttls.pcap",
                "zeek/client-certificate.pcap",
                "zeek/certificate-request-failed.pcap",
                "ndpi/smtp-starttls.pcap",
                "sv/smtp-startssl--input.pcap",
                "sv/tls-store-02--tls-client-auth.pcap",
            ] {
                files.push(d.join(rel));
            }
        }
        None => skip_or_fail("public corpus absent: disorder test runs on captures/ only"),
    }
    files
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn disordered_streams_give_identical_events(seed in any::<u64>()) {
        for f in inputs() {
            let segs = load(&f);
            let want = Value::from(events(&segs));
            prop_assert!(want.as_array().is_some_and(|w| !w.is_empty()), "{} gave no events", f.display());
            let got = Value::from(events(&disorder(&segs, seed)));
            prop_assert!(got == want, "{} seed {}: first difference: {}", f.display(), seed, first_diff(&got, &want, "events"));
        }
    }
}
