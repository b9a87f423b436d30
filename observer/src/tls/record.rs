//! The TLS record layer of one direction: 5-byte headers across segments, then each record's body
//! either read (plaintext handshake, alert, CCS, or an encrypted record to decrypt) or skipped by
//! length without buffering. A body that lies whole in the bytes fed is lent where it lies; only a
//! body split across feeds is gathered (one record at most, [`MAX_RECORD`]).
//!
//! The reader does not decide what to do with a record: it reports the header
//! ([`Step::Header`]) and the session answers with [`RecordReader::read_body`] or
//! [`RecordReader::skip_body`].

use std::borrow::Cow;

/// Largest record accepted: 2^14 plaintext + 2048 (RFC 5246 §6.2.3; record lengths are kept in a
/// `u16`).
pub const MAX_RECORD: usize = 16384 + 2048;
const _: () = assert!(MAX_RECORD <= u16::MAX as usize);

/// What one step of reading found.
#[derive(Debug)]
pub enum Step<'a> {
    /// Bytes were taken; nothing to report yet.
    Progress,
    /// A valid header: the session must call `read_body` or `skip_body` (unless `len` is 0), then
    /// [`RecordReader::header_handled`].
    Header { ty: u8, len: usize },
    /// A whole body that was asked for.
    Body { ty: u8, body: Cow<'a, [u8]> },
    /// Not a TLS record header (unknown type or version, or too long): the direction is lost.
    BadHeader,
}

#[derive(Debug, Default)]
pub struct RecordReader {
    hdr: [u8; 5],
    hdr_len: u8,
    /// Body bytes of the record being read; 0 when none is open.
    body_need: u16,
    /// Encrypted body bytes still to skip.
    skip: u16,
    /// The part of a body that arrived so far, when it spans feeds.
    body: Vec<u8>,
    lost: bool,
}

impl RecordReader {
    /// The current record's header (the AEAD's additional data).
    pub fn header(&self) -> &[u8; 5] {
        &self.hdr
    }

    fn record_type(&self) -> u8 {
        self.hdr[0]
    }

    /// Whether the stream is out of sync (nothing more is read).
    pub fn lost(&self) -> bool {
        self.lost
    }

    pub fn lose(&mut self) {
        self.lost = true;
    }

    /// A body that was asked for is still arriving.
    pub fn in_body(&self) -> bool {
        self.body_need > 0
    }

    /// Bytes held of a body still arriving.
    pub fn buffered_bytes(&self) -> usize {
        self.body.capacity()
    }

    /// Bytes until the next record header, when this direction is in sync and between records or
    /// skipping a body (not in a header, not reading a body): where the eBPF program may take over
    /// following the headers.
    pub fn next_header_in(&self) -> Option<u64> {
        if self.lost || self.body_need > 0 {
            return None;
        }
        match self.hdr_len {
            0 => Some(0),
            5 => Some(u64::from(self.skip)),
            _ => None,
        }
    }

    /// Read the current record's body (`len` ≤ [`MAX_RECORD`], as the header said).
    pub fn read_body(&mut self, len: usize) {
        self.body_need = u16::try_from(len).unwrap_or(u16::MAX);
        self.body.clear();
    }

    /// The body asked for will not come (the eBPF program skipped it): skip it instead. True when
    /// nothing of it had arrived yet, so the direction stays in sync.
    pub fn abandon_body(&mut self) -> bool {
        if self.hdr_len != 5 || self.body_need == 0 || !self.body.is_empty() {
            return false;
        }
        self.skip = self.body_need;
        self.body_need = 0;
        true
    }

    /// Skip the current record's body.
    pub fn skip_body(&mut self, len: usize) {
        self.skip = u16::try_from(len).unwrap_or(u16::MAX);
    }

    /// After the session answered a header: true when the record is empty (nothing to read or
    /// skip), and the next header starts now.
    pub fn header_handled(&mut self) -> bool {
        let empty = self.body_need == 0 && self.skip == 0;
        if empty {
            self.hdr_len = 0;
        }
        empty
    }

    /// Missing bytes (`len`) in the stream: true when they lie inside a body being skipped anyway
    /// (still in sync), else the direction is lost.
    pub fn on_gap(&mut self, len: u64) -> bool {
        if self.hdr_len == 5 && u64::from(self.skip) >= len && self.body_need == 0 {
            self.skip -= len as u16; // len <= skip
            if self.skip == 0 {
                self.hdr_len = 0;
            }
            return true;
        }
        self.lost = true;
        false
    }

    /// Reads from `data` until something is to be reported (or the bytes are used up).
    pub fn step<'a>(&mut self, data: &mut &'a [u8]) -> Step<'a> {
        if self.skip > 0 {
            let n = usize::from(self.skip).min(data.len());
            self.skip -= n as u16; // n <= skip
            *data = data.get(n..).unwrap_or_default();
            if self.skip == 0 {
                self.hdr_len = 0;
            }
            return Step::Progress;
        }
        if self.hdr_len < 5 {
            let have = usize::from(self.hdr_len);
            let n = (5 - have).min(data.len());
            let (head, rest) = data.split_at(n);
            if let Some(dst) = self.hdr.get_mut(have..have + n) {
                dst.copy_from_slice(head);
            }
            self.hdr_len += n as u8; // n <= 5
            *data = rest;
            if self.hdr_len < 5 {
                return Step::Progress;
            }
            let [ty, major, minor, l0, l1] = self.hdr;
            let len = usize::from(u16::from_be_bytes([l0, l1]));
            if !(20..=24).contains(&ty) || major != 3 || minor > 4 || len > MAX_RECORD {
                self.lost = true;
                return Step::BadHeader;
            }
            return Step::Header { ty, len };
        }
        // A body that was asked for: lent where it lies when the bytes hold all of it, else
        // gathered across feeds.
        let need = usize::from(self.body_need);
        let ty = self.record_type();
        if self.body.is_empty() {
            if let Some((body, rest)) = data.split_at_checked(need) {
                *data = rest;
                self.body_need = 0;
                self.hdr_len = 0;
                return Step::Body {
                    ty,
                    body: Cow::Borrowed(body),
                };
            }
        }
        let n = need.saturating_sub(self.body.len()).min(data.len());
        let (part, rest) = data.split_at(n);
        self.body.extend_from_slice(part);
        *data = rest;
        if self.body.len() == need {
            self.body_need = 0;
            self.hdr_len = 0;
            return Step::Body {
                ty,
                body: Cow::Owned(std::mem::take(&mut self.body)),
            };
        }
        Step::Progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body asked for that the eBPF program kept: skipped instead when none of it came, so the
    /// next header is read in sync; not once part of it was read.
    #[test]
    fn abandoned_body_is_skipped_in_sync() {
        let mut r = RecordReader::default();
        let mut d: &[u8] = &[23, 3, 3, 0, 19];
        assert!(matches!(r.step(&mut d), Step::Header { len: 19, .. }));
        r.read_body(19);
        assert!(r.abandon_body());
        assert!(r.on_gap(19));
        let mut d: &[u8] = &[21, 3, 3, 0, 2, 1, 0];
        assert!(matches!(r.step(&mut d), Step::Header { ty: 21, len: 2 }));
        let mut r = RecordReader::default();
        let mut d: &[u8] = &[23, 3, 3, 0, 19, 1, 2];
        assert!(matches!(r.step(&mut d), Step::Header { len: 19, .. }));
        r.read_body(19);
        let _ = r.step(&mut d);
        assert!(!r.abandon_body(), "part of the body was read");
    }

    /// Headers and bodies split anywhere read the same; skipped bodies are never reported.
    #[test]
    fn records_across_feeds() {
        let stream = [
            &[22, 3, 3, 0, 3, 1, 2, 3][..],
            &[23, 3, 3, 0, 4, 9, 9, 9, 9],
            &[21, 3, 3, 0, 2, 2, 40],
        ]
        .concat();
        for split in 0..stream.len() {
            let mut r = RecordReader::default();
            let mut got = Vec::new();
            for mut part in [&stream[..split], &stream[split..]] {
                while !part.is_empty() {
                    match r.step(&mut part) {
                        Step::Header { ty, len } => {
                            if ty == 23 {
                                r.skip_body(len);
                            } else {
                                r.read_body(len);
                            }
                            r.header_handled();
                        }
                        Step::Body { ty, body } => got.push((ty, body.into_owned())),
                        Step::Progress => {}
                        Step::BadHeader => panic!("bad header"),
                    }
                }
            }
            assert_eq!(
                got,
                vec![(22, vec![1, 2, 3]), (21, vec![2, 40])],
                "split {split}"
            );
        }
    }

    #[test]
    fn bad_headers_lose_sync() {
        for h in [
            [0x47, 0x45, 0x54, 0x20, 0x2f],
            [22, 2, 0, 0, 1],
            [23, 3, 3, 0xff, 0xff],
        ] {
            let mut r = RecordReader::default();
            let mut d = &h[..];
            assert!(matches!(r.step(&mut d), Step::BadHeader));
            assert!(r.lost());
        }
    }

    #[test]
    fn a_gap_inside_a_skipped_body_keeps_sync() {
        let mut r = RecordReader::default();
        let mut d = &[23u8, 3, 3, 0, 10, 1, 2][..];
        let Step::Header { len, .. } = r.step(&mut d) else {
            panic!()
        };
        r.skip_body(len);
        r.header_handled();
        r.step(&mut d);
        assert!(r.on_gap(8));
        let mut next = &[21u8, 3, 3, 0, 2, 1, 0][..];
        assert!(matches!(r.step(&mut next), Step::Header { ty: 21, len: 2 }));
        assert!(!RecordReader::default().on_gap(1));
    }
}
