//! Glue between the layers for offline analysis: capture items in, session events out.
//! Counts what every layer skipped so nothing is lost silently.

use crate::capture::{CaptureError, CaptureReader, FileReader, ItemRef, Packet};
use crate::decode;
use crate::event::SessionEvent;
use crate::flow::{FlowConfig, FlowTable};
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
        self.stats.packets += 1;
        self.stats.bytes += data.len() as u64;
        self.stats.first_ts = Some(self.stats.first_ts.map_or(ts_ns, |t| t.min(ts_ns)));
        self.stats.last_ts = Some(self.stats.last_ts.map_or(ts_ns, |t| t.max(ts_ns)));
        match decode::decode(linktype, data) {
            Ok(seg) => self.flows.on_segment(&seg, ts_ns),
            Err(skip) => {
                *self.stats.skipped.entry(skip.name()).or_default() += 1;
                if skip.is_error() {
                    *self.stats.parse_errors.entry("decode").or_default() += 1;
                }
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
