//! The fuzz targets' bodies (`fuzz/fuzz_targets/*.rs` are one-line wrappers around these), so that
//! ordinary `cargo test` replays the same code on saved inputs: crash and coverage regressions in
//! `fuzz/regressions/<target>/` (`observer/tests/fuzz_regressions.rs`). Each function panics only
//! where the property it checks is broken; any other panic is a bug in the layer it drives.

use crate::capture::CaptureReader;
use crate::config::Config;
use crate::flow::FlowConfig;
use crate::peers::PeerBook;
use crate::pipeline::Pipeline;
use crate::sink::JsonlSink;
use crate::smtp::infer::MailInference;
use crate::smtp::mail::MailEvidence;
use crate::smtp::stream::MailStream;
use crate::smtp::SmtpSession;
use crate::tcp::{Chunk, Reassembler};
use crate::tls::keylog::KeyLog;
use crate::tls::{
    decompress_certificate, parse_certificate_list, parse_cr12, parse_cr13,
    read_new_session_ticket, Context, TlsSession,
};
use crate::x509::{cert_facts, chain, dn_from_der};
use crate::Dir;

/// Names of the targets, as in `fuzz/Cargo.toml` and `fuzz/regressions/`.
pub const TARGETS: [&str; 7] = [
    "pipeline",
    "reassembly",
    "smtp",
    "tls",
    "x509",
    "keylog",
    "config",
];

/// Runs target `name` on `data`; `false` for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "pipeline" => pipeline(data),
        "reassembly" => reassembly(data),
        "smtp" => smtp(data),
        "tls" => tls(data),
        "x509" => x509(data),
        "keylog" => keylog(data),
        "config" => config(data),
        _ => return false,
    }
    true
}

/// The whole offline pipeline: pcap/pcapng bytes → capture reader → decode → flows → reassembly →
/// SMTP → TLS → X.509 → events → per-peer book. Any input must end without a panic.
pub fn pipeline(data: &[u8]) {
    let cfg = FlowConfig {
        per_flow_cap: 64 * 1024,
        max_flows: 1024,
        ..FlowConfig::default()
    };
    let mut p = Pipeline::new(cfg);
    let _ = p.read(
        CaptureReader::new(std::path::Path::new("fuzz"), data),
        |_, _| {},
    );
    p.finish();
    let mut book = PeerBook::default();
    let mut sink = JsonlSink::new(Vec::new());
    for ev in p.take_events() {
        #[allow(
            clippy::expect_used,
            reason = "fuzz target: a broken invariant must crash the fuzzer, with the error"
        )]
        sink.write(&ev).expect("events always serialise");
        book.add(&ev);
    }
}

/// TCP reassembly under arbitrary operation sequences (4-byte op headers, then up to 63 payload
/// bytes for data ops): no panic, queue within the cap, delivered bytes never exceed those offered.
pub fn reassembly(data: &[u8]) {
    let cap = 4096;
    let mut r = Reassembler::new(cap);
    let mut delivered = 0u64;
    let mut offered = 0u64;
    let mut rest = data;
    while let Some((&[op, b1, b2, b3], after)) = rest.split_first_chunk::<4>() {
        let seq = u32::from_le_bytes([b1, b2, b3, op]);
        let len = usize::from(b2 % 64);
        // up to `len` bytes: what is left when fewer
        let (payload, after) = after.split_at_checked(len).unwrap_or((after, &[]));
        rest = after;
        let mut out = |c: Chunk<'_>| {
            if let Chunk::Data(d) = c {
                delivered += d.len() as u64;
            }
        };
        match op % 5 {
            0 => r.on_syn(seq),
            1 | 2 => {
                offered += payload.len() as u64;
                r.on_data(seq, payload, &mut out)
            }
            3 => r.on_peer_ack(seq, &mut out),
            _ => r.flush(&mut out),
        }
        assert!(r.buffered() <= cap + 64, "queue {} over cap", r.buffered());
    }
    assert!(delivered <= offered);
}

/// Splits `data` into two-way chunks: a control byte (bit 7: to the client; low 7 bits times
/// `unit`: length) and that many bytes.
fn chunks(data: &[u8], unit: usize) -> impl Iterator<Item = (u8, Dir, &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (&ctl, after) = rest.split_first()?;
        let n = usize::from(ctl & 0x7f) * unit;
        let dir = if ctl & 0x80 == 0 {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        // `n` bytes, or what is left when fewer
        let (chunk, after) = after.split_at_checked(n).unwrap_or((after, &[]));
        rest = after;
        Some((ctl, dir, chunk))
    })
}

/// The SMTP STARTTLS state machine, the mail dialogue (exact) and the keyless mail inference
/// (each chunk taken as one record) on a two-way byte stream.
pub fn smtp(data: &[u8]) {
    let mut s = SmtpSession::new();
    let mut t = MailStream::new(MailEvidence::Plaintext);
    let mut inf = MailInference::new(true);
    for (_, dir, chunk) in chunks(data, 1) {
        let _ = s.feed(dir, chunk);
        t.feed(dir, chunk);
        match dir {
            Dir::ToServer => inf.client_record(chunk.len() as u64, chunk.len() % 2 == 1),
            Dir::ToClient => inf.server_record(),
        }
    }
    let f = s.facts();
    assert!(f.banner.as_ref().is_none_or(|b| b.chars().count() <= 255));
    let m = t.finish();
    assert!(m.transactions.len() <= crate::smtp::mail::MAX_TRANSACTIONS);
    assert_eq!(
        m.transaction_count(),
        m.transactions.len() as u32 + m.transactions_not_listed
    );
    let i = inf.finish(false);
    assert!(i.transactions.len() <= crate::smtp::mail::MAX_TRANSACTIONS);
}

/// The TLS handshake analyzer (1.2 and 1.3 shapes, with a key log so the decryption paths run) on
/// a two-way byte stream (lengths in 4-byte units; control byte 0xff also closes its direction),
/// plus the hand-written message parsers on the raw bytes.
pub fn tls(data: &[u8]) {
    let _ = parse_cr12(data, true);
    let _ = parse_cr12(data, false);
    let _ = parse_cr13(data);
    let _ = parse_certificate_list(data, true);
    let _ = parse_certificate_list(data, false);
    // RFC 8879: the declared length bounds the output whatever the compressed bytes say
    if let Ok(cert) = decompress_certificate(data) {
        assert!(cert.len() <= crate::tls::MAX_HANDSHAKE_MSG);
        let _ = parse_certificate_list(&cert, true);
    }
    let _ = read_new_session_ticket(data);
    let mut ctx = Context::default();
    ctx.keylog.add(
        format!(
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET {} {}\n",
            "00".repeat(32),
            "11".repeat(32)
        )
        .as_bytes(),
    );
    let mut t = TlsSession::new();
    t.want_app_data(true);
    for (ctl, dir, chunk) in chunks(data, 4) {
        t.feed(&mut ctx, dir, chunk, 1_700_000_000_000_000_000);
        let _ = t.take_app_plaintext();
        if ctl == 0xff {
            t.on_close(dir);
        }
    }
    let _ = t.facts();
}

/// Certificate facts and whole-chain classification on arbitrary DER (the input, and its halves
/// as a three-certificate chain).
pub fn x509(data: &[u8]) {
    let _ = dn_from_der(data);
    let (first, second) = data.split_at_checked(data.len() / 2).unwrap_or((data, &[]));
    let ders: Vec<&[u8]> = vec![data, first, second];
    let facts: Vec<_> = ders.iter().map(|d| cert_facts(d, 1_700_000_000)).collect();
    let _ = chain::classify(&ders, &facts, 1_700_000_000);
}

/// Key log parsing: any bytes, never a panic; malformed lines are counted.
pub fn keylog(data: &[u8]) {
    let mut k = KeyLog::default();
    k.add(data);
    let _ = k.get(&[0u8; 32]);
}

/// Configuration parsing: any text gives a configuration or a one-line error.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        match Config::parse(text) {
            Ok(c) => {
                let _ = c.flow_config();
            }
            Err(e) => assert!(!e.contains('\n'), "multi-line config error: {e}"),
        }
    }
}
