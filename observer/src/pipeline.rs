//! Glue between the layers for offline analysis: capture items in, session events out.
//! Counts what every layer skipped so nothing is lost silently.

use crate::capture::{CaptureError, CaptureReader, FileReader, ItemRef, Packet};
use crate::decode::{self, Segment, TcpFlags};
use crate::event::SessionEvent;
use crate::flow::{FlowConfig, FlowTable, KernelSegment};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

#[derive(Debug, Default, Clone)]
pub struct CaptureStats {
    pub files: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Frames that gave no TCP segment, by reason (`not_tcp`, `ip_fragment`, ...).
    pub skipped: BTreeMap<&'static str, u64>,
    /// Damage by layer (`capture`, `decode`).
    pub parse_errors: BTreeMap<&'static str, u64>,
    /// One line per damaged or unreadable file.
    pub file_errors: Vec<String>,
    /// Decryption Secrets Blocks seen in pcapng files (TLS key logs among them are used).
    pub secrets_blocks: u64,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
}

/// What the eBPF program says about a frame it sent (see `ebpf/`): how far its direction passed
/// the kernel in order, and for a summary the TLS record headers that stand for its payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelHint {
    /// Every byte of its direction before this sequence number passed the kernel in order
    /// (those user space did not get were record bodies the kernel skipped).
    pub in_order_to: Option<u32>,
    /// The kernel follows this direction's record headers (after this frame).
    pub following: bool,
    /// Packets of this direction the kernel did not send since its previous sample.
    pub unsent: u32,
    pub summary: Option<RecordHeaders>,
}

/// Record headers of a summarised packet: (offset in its payload, the 5 header bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordHeaders {
    headers: [(u32, [u8; 5]); RecordHeaders::MAX],
    count: u8,
    /// The summarised packet's payload length.
    pub payload_len: u32,
}

impl RecordHeaders {
    /// Most headers one summary carries.
    pub const MAX: usize = 32;

    /// Adds a header; false when full.
    pub fn push(&mut self, offset: u32, bytes: [u8; 5]) -> bool {
        match self.headers.get_mut(usize::from(self.count)) {
            Some(slot) => {
                *slot = (offset, bytes);
                self.count += 1;
                true
            }
            None => false,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(u32, [u8; 5])> {
        self.headers.iter().take(usize::from(self.count))
    }
}

pub struct Pipeline {
    pub flows: FlowTable,
    pub stats: CaptureStats,
}

impl Pipeline {
    pub fn new(cfg: FlowConfig) -> Self {
        Pipeline {
            flows: FlowTable::new(cfg),
            stats: CaptureStats::default(),
        }
    }

    pub fn packet(&mut self, p: &Packet) {
        self.frame(p.ts_ns, p.linktype, &p.data);
    }

    /// One captured frame, borrowed (live backends hand frames over without copying them).
    pub fn frame(&mut self, ts_ns: i64, linktype: u32, data: &[u8]) {
        if let Some(seg) = self.decoded(ts_ns, linktype, data) {
            self.flows.on_segment(&seg, ts_ns);
        }
    }

    /// Counts a frame and decodes it (frames that give no TCP segment are counted by reason).
    fn decoded<'a>(&mut self, ts_ns: i64, linktype: u32, data: &'a [u8]) -> Option<Segment<'a>> {
        self.stats.packets += 1;
        self.stats.bytes += data.len() as u64;
        self.stats.first_ts = Some(self.stats.first_ts.map_or(ts_ns, |t| t.min(ts_ns)));
        self.stats.last_ts = Some(self.stats.last_ts.map_or(ts_ns, |t| t.max(ts_ns)));
        match decode::decode(linktype, data) {
            Ok(seg) => Some(seg),
            Err(skip) => {
                *self.stats.skipped.entry(skip.name()).or_default() += 1;
                if skip.is_error() {
                    *self.stats.parse_errors.entry("decode").or_default() += 1;
                }
                None
            }
        }
    }

    /// A frame from the eBPF program with what the kernel says about it ([`KernelHint`]).
    pub fn kernel_frame(&mut self, ts_ns: i64, linktype: u32, data: &[u8], hint: &KernelHint) {
        let Some(seg) = self.decoded(ts_ns, linktype, data) else {
            return;
        };
        // Every packet is counted once: this one, and those the kernel did not send before it.
        let packets = hint.unsent.saturating_add(1);
        let k = KernelSegment {
            skipped_to: hint.in_order_to,
            summary: hint.summary.is_some(),
            following: hint.following,
            packets,
        };
        match &hint.summary {
            None => self.flows.on_kernel_segment(&seg, ts_ns, k),
            Some(headers) => {
                // The frame came without its payload: each record header stands at its own
                // sequence number (the bytes between were record bodies the kernel skipped).
                for (i, (offset, bytes)) in headers.iter().enumerate() {
                    let one = Segment {
                        seq: seg.seq.wrapping_add(*offset),
                        payload: bytes,
                        truncated: false,
                        flags: TcpFlags {
                            ack: seg.flags.ack,
                            ..TcpFlags::default()
                        },
                        ..seg
                    };
                    let k = KernelSegment {
                        packets: if i == 0 { packets } else { 0 },
                        skipped_to: Some(one.seq),
                        ..k
                    };
                    self.flows.on_kernel_segment(&one, ts_ns, k);
                }
                // The packet's bytes after its last header are record body: skipped up to its end.
                let end = Segment {
                    seq: seg.seq.wrapping_add(headers.payload_len),
                    payload: &[],
                    truncated: false,
                    flags: TcpFlags::default(),
                    ..seg
                };
                let k = KernelSegment {
                    packets: 0,
                    skipped_to: Some(end.seq),
                    ..k
                };
                self.flows.on_kernel_segment(&end, ts_ns, k);
            }
        }
    }

    /// Reads one file to its end or to its damage. Packets before the damage are processed; the
    /// damage is recorded in `stats.file_errors` and returned.
    /// `progress(pipeline, bytes)` runs after every packet (progress bar, draining events, metric
    /// snapshots in packet time).
    pub fn read_file(
        &mut self,
        path: &Path,
        progress: impl FnMut(&mut Self, u64),
    ) -> Result<(), CaptureError> {
        self.read(FileReader::open(path), progress)
    }

    /// Reads from any capture reader (a file, or bytes in memory for fuzzing).
    pub fn read<R: BufRead>(
        &mut self,
        reader: Result<CaptureReader<R>, CaptureError>,
        mut progress: impl FnMut(&mut Self, u64),
    ) -> Result<(), CaptureError> {
        self.stats.files += 1;
        let mut r = match reader {
            Ok(r) => r,
            Err(e) => {
                self.stats.file_errors.push(e.to_string());
                *self.stats.parse_errors.entry("capture").or_default() += 1;
                return Err(e);
            }
        };
        while let Some(item) = r.next_ref() {
            match item {
                Ok(ItemRef::Packet(f)) => {
                    self.frame(f.ts_ns, f.linktype, f.data);
                    progress(self, f.data.len() as u64 + 16);
                }
                Ok(ItemRef::Secrets { secrets_type, data }) => {
                    self.stats.secrets_blocks += 1;
                    if secrets_type == 0x544c_534b {
                        self.flows.add_keylog(&data); // "TLSK": NSS key log
                    }
                }
                Err(e) => {
                    self.stats.file_errors.push(e.to_string());
                    *self.stats.parse_errors.entry("capture").or_default() += 1;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    pub fn finish(&mut self) {
        self.flows.finish_all();
    }

    pub fn take_events(&mut self) -> Vec<SessionEvent> {
        self.flows.take_events()
    }

    /// Events completed so far, drained in place (see [`FlowTable::drain_events`]).
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, SessionEvent> {
        self.flows.drain_events()
    }
}
