//! Which files the command line's paths stand for: named files as they are, directories walked for
//! the files that start like a capture (or are named like one), and what could not be used.

use super::pcapng::PCAPNG_SHB;
use super::CaptureError;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Pcap (either byte order, micro- or nanosecond timestamps) or pcapng: the first four bytes of a
/// capture file.
pub fn is_capture_magic(magic: [u8; 4]) -> bool {
    matches!(
        u32::from_le_bytes(magic),
        0xa1b2_c3d4 | 0xa1b2_3c4d | 0xd4c3_b2a1 | 0x4d3c_b2a1 | PCAPNG_SHB
    )
}

/// Whether the file at `path` starts with a capture's magic number (reads at most 4 bytes).
pub fn starts_like_capture(path: &Path) -> std::io::Result<bool> {
    let mut head = Vec::with_capacity(4);
    File::open(path)?.take(4).read_to_end(&mut head)?;
    Ok(<[u8; 4]>::try_from(head.as_slice()).is_ok_and(is_capture_magic))
}

/// File names that claim to be captures: in a directory they are read whatever their first bytes
/// (so a damaged one is reported, not skipped).
fn named_like_capture(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|x| x.to_str()),
        Some("pcap" | "pcapng" | "cap")
    )
}

/// The capture files of the command line's paths, in order, and what could not be used.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Files to read: a file named as a path is taken as it is (if it is no capture, reading it
    /// says so); a directory contributes, recursively and sorted by name, its files that start
    /// with a pcap/pcapng magic number or are named `*.pcap`, `*.pcapng`, `*.cap`.
    pub files: Vec<PathBuf>,
    /// Paths that could not be used: missing or unreadable paths (also inside a directory), and
    /// directories that hold no capture at all ([`CaptureError::NoCapture`]).
    pub errors: Vec<CaptureError>,
    /// Files met in directories that are not captures (README, key logs, scripts, …): skipped.
    pub skipped: usize,
}

impl Inputs {
    /// Adds one path (see [`Inputs::files`]). Directories reached twice (symbolic links) are walked
    /// once.
    pub fn add(&mut self, path: &Path) {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(error) => {
                self.errors.push(CaptureError::Open {
                    path: path.to_owned(),
                    error,
                });
                return;
            }
        };
        if !meta.is_dir() {
            self.files.push(path.to_owned());
            return;
        }
        let (files, errors, skipped) = (self.files.len(), self.errors.len(), self.skipped);
        let mut seen = std::collections::HashSet::new();
        self.walk(path, &mut seen);
        if self.files.len() == files && self.errors.len() == errors {
            self.errors.push(CaptureError::NoCapture {
                dir: path.to_owned(),
                skipped: self.skipped - skipped,
            });
        }
    }

    fn walk(&mut self, dir: &Path, seen: &mut std::collections::HashSet<PathBuf>) {
        if let Ok(real) = dir.canonicalize() {
            if !seen.insert(real) {
                return;
            }
        }
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(error) => {
                self.errors.push(CaptureError::Open {
                    path: dir.to_owned(),
                    error,
                });
                return;
            }
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            let meta = match std::fs::metadata(&e) {
                Ok(m) => m,
                Err(error) => {
                    self.errors.push(CaptureError::Open { path: e, error });
                    continue;
                }
            };
            if meta.is_dir() {
                self.walk(&e, seen);
            } else if !meta.is_file() {
                self.skipped += 1; // sockets, FIFOs, devices: never opened
            } else if named_like_capture(&e) {
                self.files.push(e);
            } else {
                match starts_like_capture(&e) {
                    Ok(true) => self.files.push(e),
                    Ok(false) => self.skipped += 1,
                    Err(error) => self.errors.push(CaptureError::Open { path: e, error }),
                }
            }
        }
    }
}
