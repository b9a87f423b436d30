//! Packet sources: classic pcap and pcapng files (and directories of them).
//!
//! A small streaming reader written for this project rather than a crate, because we need three things
//! the usual readers do not give together: pcapng `if_tsresol` per interface, the pcapng Decryption
//! Secrets Block (TLS key logs embedded in the capture), and "process up to the damage" on truncated
//! files with a precise report of where the damage is.
//!
//! Guarantees: no panics on any input; every allocation is bounded by [`MAX_BLOCK`]; a damaged file
//! yields every packet before the damage, then one [`CaptureError`].

mod inputs;
mod pcapng;

pub use inputs::{is_capture_magic, starts_like_capture, Inputs};
use pcapng::{Interface, PCAPNG_SHB};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Largest pcap record / pcapng block we accept (a jumbo frame is 9 KiB; 16 MiB covers any sane snaplen).
pub const MAX_BLOCK: usize = 16 * 1024 * 1024;

/// Packet and block buffers up to this capacity are kept for the next read; a rare larger one is
/// freed rather than held for the rest of the file.
const MAX_REUSED_BUFFER: usize = 64 * 1024;

/// Link-layer types (tcpdump.org LINKTYPE_* values) that [`crate::decode`] understands.
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    pub linktype: u32,
    /// Captured bytes (may be shorter than `orig_len` when the snaplen cut the frame).
    pub data: Vec<u8>,
    pub orig_len: u32,
}

/// What a source yields besides packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Packet(Packet),
    /// A pcapng Decryption Secrets Block: `secrets_type` 0x544c534b ("TLSK") is an NSS key log.
    Secrets {
        secrets_type: u32,
        data: Vec<u8>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    // The io errors are part of the message and not also a `source()`: a caller printing the
    // error chain (anyhow's `{:#}`) would print them twice.
    #[error("{path}: cannot open: {error}")]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file (magic {magic:08x})")]
    BadMagic { path: PathBuf, magic: u32 },
    #[error("{path}: truncated at byte {offset}: {what}")]
    Truncated {
        path: PathBuf,
        offset: u64,
        what: &'static str,
    },
    #[error("{path}: malformed at byte {offset}: {what}")]
    Malformed {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    #[error("{path}: read error at byte {offset}: {error}")]
    Io {
        path: PathBuf,
        offset: u64,
        error: std::io::Error,
    },
    /// A directory given to read holds no capture (by magic number, or a `.pcap`/`.pcapng`/`.cap`
    /// name).
    #[error("no capture in {dir} ({skipped} files, none pcap/pcapng)")]
    NoCapture { dir: PathBuf, skipped: usize },
}

enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
        linktype: u32,
    },
    PcapNg {
        big_endian: bool,
        interfaces: Vec<Interface>,
    },
}

/// A packet borrowed from the reader, valid until its next read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    pub linktype: u32,
    /// Captured bytes (may be shorter than sent when the snaplen cut the frame).
    pub data: &'a [u8],
}

/// What [`CaptureReader::next_ref`] reads.
#[derive(Debug, PartialEq, Eq)]
pub enum ItemRef<'a> {
    Packet(Frame<'a>),
    /// A pcapng Decryption Secrets Block.
    Secrets {
        secrets_type: u32,
        data: Vec<u8>,
    },
}

/// Streaming reader over one capture file.
pub struct CaptureReader<R: BufRead> {
    path: PathBuf,
    input: R,
    offset: u64,
    format: Format,
    done: bool,
    /// A packet buffer handed back with [`CaptureReader::recycle`], reused for the next packet.
    spare: Vec<u8>,
    /// The pcapng block buffer, reused from block to block.
    block: Vec<u8>,
    /// Bytes of the record last read in place (`next_ref`), consumed at the next read.
    in_place: usize,
    /// The packet last read by copy for `next_ref`, recycled at the next read.
    held: Vec<u8>,
}

pub type FileReader = CaptureReader<BufReader<File>>;

impl FileReader {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let file = File::open(path).map_err(|error| CaptureError::Open {
            path: path.to_owned(),
            error,
        })?;
        // Big enough that most records lie whole in it and are read in place.
        CaptureReader::new(path, BufReader::with_capacity(1 << 18, file))
    }
}

fn u16_of(a: [u8; 2], be: bool) -> u16 {
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

fn u32_of(a: [u8; 4], be: bool) -> u32 {
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

/// The first `N` 32-bit fields of `b` in the given byte order, and the bytes after them; `None`
/// when `b` is shorter than `4 * N`.
fn u32s<const N: usize>(b: &[u8], be: bool) -> Option<([u32; N], &[u8])> {
    let (head, rest) = b.split_at_checked(4 * N)?;
    let words = head.as_chunks::<4>().0.first_chunk::<N>()?;
    let mut out = [0; N];
    for (o, &w) in out.iter_mut().zip(words) {
        *o = u32_of(w, be);
    }
    Some((out, rest))
}

impl<R: BufRead> CaptureReader<R> {
    pub fn new(path: &Path, mut input: R) -> Result<Self, CaptureError> {
        let path = path.to_owned();
        let mut magic = [0u8; 4];
        read_exact_or(&mut input, &mut magic, &path, 0, "file header")?;
        let mut me = CaptureReader {
            path,
            input,
            offset: 4,
            format: Format::Pcap {
                big_endian: false,
                nanos: false,
                linktype: 0,
            },
            done: false,
            spare: Vec::new(),
            block: Vec::new(),
            in_place: 0,
            held: Vec::new(),
        };
        match u32::from_le_bytes(magic) {
            0xa1b2_c3d4 | 0xa1b2_3c4d | 0xd4c3_b2a1 | 0x4d3c_b2a1 => {
                let le = u32::from_le_bytes(magic);
                let big_endian = le == 0xd4c3_b2a1 || le == 0x4d3c_b2a1;
                let nanos = le == 0xa1b2_3c4d || le == 0x4d3c_b2a1;
                // version, reserved, snaplen, then the link type
                let mut rest = [[0u8; 4]; 5];
                me.read_exact(rest.as_flattened_mut(), "pcap file header")?;
                let [_, _, _, _, linktype] = rest;
                let linktype = u32_of(linktype, big_endian) & 0x0fff_ffff;
                me.format = Format::Pcap {
                    big_endian,
                    nanos,
                    linktype,
                };
            }
            PCAPNG_SHB => {
                me.format = Format::PcapNg {
                    big_endian: false,
                    interfaces: Vec::new(),
                };
                me.read_shb_rest()?;
            }
            other => {
                return Err(CaptureError::BadMagic {
                    path: me.path,
                    magic: other,
                })
            }
        }
        Ok(me)
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), CaptureError> {
        read_exact_or(&mut self.input, buf, &self.path, self.offset, what)?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn malformed(&self, what: impl Into<String>) -> CaptureError {
        CaptureError::Malformed {
            path: self.path.clone(),
            offset: self.offset,
            what: what.into(),
        }
    }

    /// Hands a packet's buffer back once the caller is done with it: the next packet is read into
    /// it, so reading a file costs no allocation per packet.
    pub fn recycle(&mut self, data: Vec<u8>) {
        if data.capacity() <= MAX_REUSED_BUFFER {
            self.spare = data;
        }
    }

    /// A buffer of `len` bytes for a packet (the recycled one when there is one).
    fn packet_buf(&mut self, len: usize) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.spare);
        v.clear();
        v.resize(len, 0);
        v
    }

    /// What the previous `next_ref` lent is over: consume the record read in place, recycle the
    /// packet read by copy.
    fn settle(&mut self) {
        self.input.consume(std::mem::take(&mut self.in_place));
        if self.held.capacity() > 0 {
            let held = std::mem::take(&mut self.held);
            self.recycle(held);
        }
    }

    /// Next packet (borrowed) or secrets block; `None` at a clean end of file. A pcap record that
    /// lies whole in the input's buffer is read where it lies, without a copy; others (across the
    /// buffer's end, pcapng blocks) are read as by [`CaptureReader::next_item`].
    pub fn next_ref(&mut self) -> Option<Result<ItemRef<'_>, CaptureError>> {
        self.settle();
        if self.done {
            return None;
        }
        if let Format::Pcap {
            big_endian,
            nanos,
            linktype,
        } = self.format
        {
            // record header: seconds, fraction, captured length, original length
            let whole = match self.input.fill_buf() {
                Ok(b) => match b.split_first_chunk::<16>() {
                    Some((&[s0, s1, s2, s3, f0, f1, f2, f3, c0, c1, c2, c3, ..], data)) => {
                        let caplen = u32_of([c0, c1, c2, c3], big_endian) as usize;
                        (caplen <= MAX_BLOCK && data.len() >= caplen).then_some((
                            u32_of([s0, s1, s2, s3], big_endian),
                            u32_of([f0, f1, f2, f3], big_endian),
                            caplen,
                        ))
                    }
                    None => None,
                },
                Err(_) => None,
            };
            if let Some((secs, frac, caplen)) = whole {
                // (The buffer is not empty: this returns it again, without reading.)
                match self.input.fill_buf() {
                    Ok(b) => {
                        let Some(data) = b.get(16..16 + caplen) else {
                            // Only a `BufRead` that breaks that promise gets here.
                            self.done = true;
                            return Some(Err(CaptureError::Malformed {
                                path: self.path.clone(),
                                offset: self.offset,
                                what: "input buffer changed between reads".into(),
                            }));
                        };
                        let (secs, frac) = (secs as i64, frac as i64);
                        let ts_ns = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
                        self.in_place = 16 + caplen;
                        self.offset += (16 + caplen) as u64;
                        return Some(Ok(ItemRef::Packet(Frame {
                            ts_ns,
                            linktype,
                            data,
                        })));
                    }
                    Err(error) => {
                        self.done = true;
                        return Some(Err(CaptureError::Io {
                            path: self.path.clone(),
                            offset: self.offset,
                            error,
                        }));
                    }
                }
            }
        }
        Some(match self.next_item()? {
            Ok(Item::Packet(p)) => {
                self.held = p.data;
                Ok(ItemRef::Packet(Frame {
                    ts_ns: p.ts_ns,
                    linktype: p.linktype,
                    data: &self.held,
                }))
            }
            Ok(Item::Secrets { secrets_type, data }) => Ok(ItemRef::Secrets { secrets_type, data }),
            Err(e) => Err(e),
        })
    }

    /// Next packet or secrets block; `None` at a clean end of file.
    pub fn next_item(&mut self) -> Option<Result<Item, CaptureError>> {
        self.settle();
        if self.done {
            return None;
        }
        let r = match self.format {
            Format::Pcap { .. } => self.next_pcap(),
            Format::PcapNg { .. } => self.next_pcapng(),
        };
        match r {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// Reads a header at a record boundary: `Ok(false)` on clean EOF before any byte.
    fn read_header(&mut self, buf: &mut [u8], what: &'static str) -> Result<bool, CaptureError> {
        let mut got = 0;
        while got < buf.len() {
            let Some(unread) = buf.get_mut(got..) else {
                break; // (`got` never passes `buf.len()`: a reader's count is at most what it was given)
            };
            match self.input.read(unread) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(CaptureError::Truncated {
                        path: self.path.clone(),
                        offset: self.offset,
                        what,
                    })
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    return Err(CaptureError::Io {
                        path: self.path.clone(),
                        offset: self.offset,
                        error,
                    })
                }
            }
        }
        self.offset += buf.len() as u64;
        Ok(true)
    }

    fn next_pcap(&mut self) -> Result<Option<Item>, CaptureError> {
        let Format::Pcap {
            big_endian,
            nanos,
            linktype,
        } = self.format
        else {
            return Ok(None);
        };
        let mut hdr = [[0u8; 4]; 4];
        if !self.read_header(hdr.as_flattened_mut(), "pcap record header")? {
            return Ok(None);
        }
        let [secs, frac, caplen, orig_len] = hdr;
        let secs = u32_of(secs, big_endian) as i64;
        let frac = u32_of(frac, big_endian) as i64;
        let caplen = u32_of(caplen, big_endian) as usize;
        let orig_len = u32_of(orig_len, big_endian);
        if caplen > MAX_BLOCK {
            return Err(self.malformed(format!("record length {caplen} exceeds {MAX_BLOCK}")));
        }
        let mut data = self.packet_buf(caplen);
        self.read_exact(&mut data, "pcap record data")?;
        let ts_ns = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        Ok(Some(Item::Packet(Packet {
            ts_ns,
            linktype,
            data,
            orig_len,
        })))
    }
}

fn read_exact_or<R: Read>(
    input: &mut R,
    buf: &mut [u8],
    path: &Path,
    offset: u64,
    what: &'static str,
) -> Result<(), CaptureError> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            CaptureError::Truncated {
                path: path.to_owned(),
                offset,
                what,
            }
        } else {
            CaptureError::Io {
                path: path.to_owned(),
                offset,
                error: e,
            }
        }
    })
}

fn ts_to_ns(ts: u64, units_per_sec: u64) -> i64 {
    let secs = ts / units_per_sec;
    let frac = ts % units_per_sec;
    let ns = (u128::from(frac) * 1_000_000_000 / u128::from(units_per_sec)) as u64;
    (secs.saturating_mul(1_000_000_000).saturating_add(ns)).min(i64::MAX as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::pcapng::{idb_tsresol, PCAPNG_DSB, PCAPNG_EPB};
    use super::*;

    fn pcap_bytes(nanos: bool, records: &[(&[u8], u32)]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(if nanos { 0xa1b2_3c4du32 } else { 0xa1b2_c3d4 }).to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for (i, (d, orig)) in records.iter().enumerate() {
            v.extend_from_slice(&(100 + i as u32).to_le_bytes());
            v.extend_from_slice(&7u32.to_le_bytes());
            v.extend_from_slice(&(d.len() as u32).to_le_bytes());
            v.extend_from_slice(&orig.to_le_bytes());
            v.extend_from_slice(d);
        }
        v
    }

    fn all(bytes: &[u8]) -> (Vec<Item>, Option<CaptureError>) {
        let mut r = match CaptureReader::new(Path::new("t"), bytes) {
            Ok(r) => r,
            Err(e) => return (vec![], Some(e)),
        };
        let mut items = vec![];
        while let Some(x) = r.next_item() {
            match x {
                Ok(i) => items.push(i),
                Err(e) => return (items, Some(e)),
            }
        }
        (items, None)
    }

    /// Reading in place (`next_ref`) gives what reading by copy (`next_item`) gives — packets,
    /// secrets, the error and its offset — whatever the input buffer's size (records across its
    /// end take the copying path), on a pcap, a truncated pcap and the pcapng captures.
    #[test]
    fn in_place_reading_equals_copying() {
        let recs: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; (i * 37) % 300]).collect();
        let records: Vec<(&[u8], u32)> = recs.iter().map(|r| (&r[..], r.len() as u32)).collect();
        let pcap = pcap_bytes(true, &records);
        // pcapng: section header, interface, a secrets block, then the same packets.
        let block = |ty: u32, body: &[u8]| {
            let len = (12 + body.len().div_ceil(4) * 4) as u32;
            let mut b = ty.to_le_bytes().to_vec();
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(body);
            b.resize(len as usize - 4, 0);
            b.extend_from_slice(&len.to_le_bytes());
            b
        };
        let mut ng = block(
            PCAPNG_SHB,
            &[
                0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        );
        ng.extend(block(1, &[1, 0, 0, 0, 0, 0, 4, 0]));
        let mut dsb = 0x544c_534bu32.to_le_bytes().to_vec();
        dsb.extend_from_slice(&5u32.to_le_bytes());
        dsb.extend_from_slice(b"KEYS\n");
        ng.extend(block(PCAPNG_DSB, &dsb));
        for r in &recs {
            let mut epb = vec![0u8; 4];
            epb.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 0]);
            epb.extend_from_slice(&(r.len() as u32).to_le_bytes());
            epb.extend_from_slice(&(r.len() as u32).to_le_bytes());
            epb.extend_from_slice(r);
            ng.extend(block(PCAPNG_EPB, &epb));
        }
        let inputs = [pcap.clone(), pcap[..pcap.len() - 5].to_vec(), ng];
        for (bytes, (n, damaged)) in inputs.iter().zip([(40, false), (39, true), (41, false)]) {
            let (copied, err) = all(bytes);
            assert_eq!((copied.len(), err.is_some()), (n, damaged), "{err:?}");
            for cap in [1, 7, 16, 100, 333, 4096, 1 << 18] {
                let input = std::io::BufReader::with_capacity(cap, &bytes[..]);
                let mut r = CaptureReader::new(Path::new("t"), input).unwrap();
                let mut got = vec![];
                let mut got_err = None;
                while let Some(x) = r.next_ref() {
                    match x {
                        Ok(ItemRef::Packet(f)) => got.push(Item::Packet(Packet {
                            ts_ns: f.ts_ns,
                            linktype: f.linktype,
                            data: f.data.to_vec(),
                            orig_len: 0,
                        })),
                        Ok(ItemRef::Secrets { secrets_type, data }) => {
                            got.push(Item::Secrets { secrets_type, data })
                        }
                        Err(e) => got_err = Some(e.to_string()),
                    }
                }
                let strip = |i: &Item| match i {
                    Item::Packet(p) => Item::Packet(Packet {
                        orig_len: 0,
                        ..p.clone()
                    }),
                    other => other.clone(),
                };
                let copied: Vec<Item> = copied.iter().map(strip).collect();
                assert_eq!(got, copied, "buffer {cap}");
                assert_eq!(got_err, err.as_ref().map(|e| e.to_string()), "buffer {cap}");
            }
        }
    }

    #[test]
    fn pcap_micro_and_nano() {
        let b = pcap_bytes(false, &[(b"abc", 3), (b"de", 60)]);
        let (items, err) = all(&b);
        assert!(err.is_none());
        assert_eq!(items.len(), 2);
        let Item::Packet(p) = &items[1] else { panic!() };
        assert_eq!(p.ts_ns, 101_000_007_000);
        assert_eq!(p.orig_len, 60);
        let b = pcap_bytes(true, &[(b"abc", 3)]);
        let (items, _) = all(&b);
        let Item::Packet(p) = &items[0] else { panic!() };
        assert_eq!(p.ts_ns, 100_000_000_007);
    }

    #[test]
    fn truncated_pcap_yields_packets_before_damage() {
        let b = pcap_bytes(false, &[(b"abcdef", 6), (b"ghijkl", 6)]);
        for cut in 24..b.len() {
            let (items, err) = all(&b[..cut]);
            let complete = if cut >= 24 + 22 { 1 } else { 0 };
            assert_eq!(items.len(), complete, "cut {cut}");
            assert_eq!(err.is_some(), cut != 24 && cut != 24 + 22, "cut {cut}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            all(b"hello world, not a pcap").1,
            Some(CaptureError::BadMagic { .. })
        ));
        assert!(matches!(
            all(b"\xd4\xc3").1,
            Some(CaptureError::Truncated { .. })
        ));
        let mut huge = pcap_bytes(false, &[]);
        huge.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        assert!(matches!(all(&huge).1, Some(CaptureError::Malformed { .. })));
    }

    #[test]
    fn tsresol() {
        assert_eq!(
            idb_tsresol(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0], false),
            1_000_000_000
        );
        assert_eq!(idb_tsresol(&[9, 0, 1, 0, 0x8a, 0, 0, 0], false), 1024);
        assert_eq!(idb_tsresol(&[], false), 1_000_000);
        assert_eq!(ts_to_ns(1_500_000, 1_000_000), 1_500_000_000);
    }
}
