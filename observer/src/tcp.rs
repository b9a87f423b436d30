//! Per-direction TCP stream reassembly.
//!
//! Sequence numbers are unwrapped into 64-bit stream offsets relative to the next expected byte
//! (a signed 32-bit distance), so wrap-around at 2^32 is invisible to the rest of the code.
//!
//! Policy (documented in ARCHITECTURE.md):
//! - In-order bytes are delivered at once, without copying.
//! - Out-of-order bytes are queued (bounded by `cap` bytes); the **first copy of a byte wins**: a later
//!   segment overlapping queued bytes only fills the holes, and overlapping bytes that differ are
//!   counted as `overlap_conflicts` (a TCP evasion signature, Zeek's "TCP_ack_underflow_or_misorder"
//!   family; Suricata's "first" policy).
//! - Bytes already delivered are never revised: a retransmission of them is ignored.
//! - A hole becomes a [`Chunk::Gap`] when the queue overflows, when the other side acknowledges
//!   data we never saw while later data is queued, or when the stream is flushed at its end.
//!   Parsers above treat a gap as loss of sync.
//! - After [`Reassembler::stop`] nothing is buffered any more: the analyzers are done with the stream.

use std::collections::BTreeMap;

/// What the reassembler hands up, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk<'a> {
    Data(&'a [u8]),
    /// This many bytes are missing from the stream.
    Gap(u64),
    /// This many bytes passed the eBPF program, which skipped them as TLS record bodies
    /// ([`Reassembler::skip_to`]): not lost, but not here either.
    Skipped(u64),
}

const NO_FIN: u64 = u64::MAX;

#[derive(Debug)]
pub struct Reassembler {
    started: bool,
    /// Sequence number of stream offset 0.
    base: u32,
    /// Next expected stream offset.
    next: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    /// Queue limit in bytes (`u32`: a 4 GiB per-direction queue is far beyond any sane cap).
    cap: u32,
    stopped: bool,
    /// Counters read by the flow when it reports the connection.
    pub overlap_conflicts: u32,
    pub gaps: u32,
    pub gap_bytes: u64,
    pub overflows: u32,
    pub mid_stream: bool,
    /// Stream offset of this direction's FIN, once seen (`NO_FIN` before; a sentinel rather than
    /// an Option keeps the per-flow state small).
    fin_at: u64,
}

impl Reassembler {
    pub fn new(cap: usize) -> Self {
        Reassembler {
            started: false,
            base: 0,
            next: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            cap: u32::try_from(cap).unwrap_or(u32::MAX),
            stopped: false,
            overlap_conflicts: 0,
            gaps: 0,
            gap_bytes: 0,
            overflows: 0,
            mid_stream: false,
            fin_at: NO_FIN,
        }
    }

    /// Bytes held in the out-of-order queue.
    pub fn buffered(&self) -> usize {
        self.pending_bytes
    }

    /// Stream offset of the next expected byte (bytes delivered or skipped so far).
    pub fn position(&self) -> u64 {
        self.next
    }

    /// A SYN fixes the initial sequence number: data starts at `seq + 1`.
    pub fn on_syn(&mut self, seq: u32) {
        if !self.started {
            self.started = true;
            self.base = seq.wrapping_add(1);
        }
    }

    /// A FIN at `seq` (its own sequence number: after the segment's payload). The close takes
    /// effect in stream order: once every byte before it was delivered ([`Reassembler::reached_fin`]),
    /// or as a gap when the stream ends without them ([`Reassembler::close_at_fin`]).
    pub fn on_fin(&mut self, seq: u32) {
        if self.started && self.fin_at == NO_FIN {
            let at = self.unwrap(seq);
            if at >= 0 {
                self.fin_at = at as u64;
            }
        }
    }

    /// Everything before the FIN has been handed up (true too when no FIN offset is known).
    pub fn reached_fin(&self) -> bool {
        self.stopped || self.fin_at == NO_FIN || self.next >= self.fin_at
    }

    /// End of the stream: hand up what is queued, then the bytes missing before the FIN as a gap.
    pub fn close_at_fin(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        self.flush(out);
        let f = self.fin_at;
        if f != NO_FIN && !self.stopped && f > self.next {
            let n = f - self.next;
            self.gaps += 1;
            self.gap_bytes += n;
            out(Chunk::Gap(n));
            self.next = f;
        }
    }

    /// The eBPF program followed this direction's records and skipped the bytes before `seq` as
    /// record bodies: hand them up as [`Chunk::Skipped`] (up to the first queued byte, if any).
    /// Returns how many bytes were skipped (queued bytes it then delivers are not among them).
    pub fn skip_to(&mut self, seq: u32, out: &mut dyn FnMut(Chunk<'_>)) -> u64 {
        if !self.started || self.stopped {
            return 0;
        }
        let mut at = self.unwrap(seq);
        if let Some((&first, _)) = self.pending.iter().next() {
            at = at.min(first as i64);
        }
        if at <= self.next as i64 {
            return 0;
        }
        let skipped = at as u64 - self.next;
        out(Chunk::Skipped(skipped));
        self.next = at as u64;
        self.drain(out);
        skipped
    }

    /// Sequence number of the byte `ahead` bytes after the next expected one, when the stream is
    /// followed in order (started, not stopped, nothing queued out of order).
    pub fn seq_ahead(&self, ahead: u64) -> Option<u32> {
        (self.started && !self.stopped && self.pending.is_empty())
            .then(|| self.base.wrapping_add(self.next.wrapping_add(ahead) as u32))
    }

    /// Stop buffering: drop the queue, deliver nothing more.
    pub fn stop(&mut self) {
        self.stopped = true;
        self.pending.clear();
        self.pending_bytes = 0;
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    fn unwrap(&self, seq: u32) -> i64 {
        let expected = self.base.wrapping_add(self.next as u32);
        self.next as i64 + i64::from(seq.wrapping_sub(expected) as i32)
    }

    /// One segment's payload. Delivers whatever became contiguous.
    pub fn on_data(&mut self, seq: u32, payload: &[u8], out: &mut dyn FnMut(Chunk<'_>)) {
        if payload.is_empty() || self.stopped {
            return;
        }
        if !self.started {
            // Mid-stream start (no SYN seen): the first byte we see is offset 0.
            self.started = true;
            self.mid_stream = true;
            self.base = seq;
        }
        let start = self.unwrap(seq);
        let end = start + payload.len() as i64;
        let next = self.next as i64;
        if end <= next {
            return; // retransmission of delivered bytes
        }
        if start <= next {
            // start <= next < end: the payload's bytes from `next` on are new (always `Some`)
            if let Some(fresh) = payload.get((next - start) as usize..) {
                out(Chunk::Data(fresh));
            }
            self.next = end as u64;
            self.drain(out);
            return;
        }
        self.enqueue(start as u64, payload);
        if self.pending_bytes > self.cap as usize {
            self.overflows += 1;
            self.skip_to_first_pending(out);
        }
    }

    /// The other direction acknowledged up to `ack`: data before it was sent. If we hold later data
    /// and the acknowledged range reaches it, the hole will never be filled in this capture.
    pub fn on_peer_ack(&mut self, ack: u32, out: &mut dyn FnMut(Chunk<'_>)) {
        if !self.started || self.stopped || self.pending.is_empty() {
            return;
        }
        let acked = self.unwrap(ack);
        if let Some((&first, _)) = self.pending.iter().next() {
            if acked >= first as i64 {
                self.skip_to_first_pending(out);
            }
        }
    }

    /// End of the stream (FIN reached, RST, timeout, end of capture): hand up everything queued.
    pub fn flush(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        while !self.pending.is_empty() && !self.stopped {
            self.skip_to_first_pending(out);
        }
    }

    fn skip_to_first_pending(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        let Some((&first, _)) = self.pending.iter().next() else {
            return;
        };
        if first > self.next {
            let n = first - self.next;
            self.gaps += 1;
            self.gap_bytes += n;
            out(Chunk::Gap(n));
            self.next = first;
        }
        self.drain(out);
    }

    fn drain(&mut self, out: &mut dyn FnMut(Chunk<'_>)) {
        while let Some(entry) = self.pending.first_entry() {
            let start = *entry.key();
            if start > self.next {
                break;
            }
            let data = entry.remove();
            self.pending_bytes -= data.len();
            let end = start + data.len() as u64;
            if end > self.next && !self.stopped {
                // start <= next < end: the entry's bytes from `next` on are new (always `Some`)
                if let Some(fresh) = data.get((self.next - start) as usize..) {
                    out(Chunk::Data(fresh));
                }
                self.next = end;
            }
        }
    }

    /// Queue `payload` at `start`, keeping queued bytes where they overlap (first copy wins).
    fn enqueue(&mut self, start: u64, payload: &[u8]) {
        let end = start + payload.len() as u64;
        let mut pieces: Vec<(u64, u64)> = vec![(start, end)];
        // Existing segments that may overlap [start, end).
        let overlapping: Vec<(u64, u64)> = self
            .pending
            .range(..end)
            .filter(|(&s, d)| s + d.len() as u64 > start)
            .map(|(&s, d)| (s, s + d.len() as u64))
            .collect();
        for (s, e) in overlapping {
            // conflict check on the overlap
            let lo = s.max(start);
            let hi = e.min(end);
            if let Some(old) = self.pending.get(&s) {
                // [lo, hi) lies in both [s, e) and [start, end): both ranges are `Some`
                let a = old.get((lo - s) as usize..(hi - s) as usize);
                let b = payload.get((lo - start) as usize..(hi - start) as usize);
                if a != b {
                    self.overlap_conflicts += 1;
                }
            }
            pieces = pieces
                .into_iter()
                .flat_map(|(ps, pe)| {
                    let mut v = Vec::with_capacity(2);
                    if ps < s {
                        v.push((ps, pe.min(s)));
                    }
                    if pe > e {
                        v.push((ps.max(e), pe));
                    }
                    if pe <= s || ps >= e {
                        v.clear();
                        v.push((ps, pe));
                    }
                    v
                })
                .collect();
        }
        for (ps, pe) in pieces {
            if pe > ps {
                // every piece lies within [start, end): the range is always `Some`
                if let Some(piece) = payload.get((ps - start) as usize..(pe - start) as usize) {
                    let piece = piece.to_vec();
                    self.pending_bytes += piece.len();
                    self.pending.insert(ps, piece);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(
        r: &mut Reassembler,
        f: impl FnOnce(&mut Reassembler, &mut dyn FnMut(Chunk<'_>)),
    ) -> Vec<u8> {
        let mut got = Vec::new();
        f(r, &mut |c| match c {
            Chunk::Data(d) => got.extend_from_slice(d),
            Chunk::Gap(n) => got.extend(std::iter::repeat_n(b'?', n as usize)),
            Chunk::Skipped(n) => got.extend(std::iter::repeat_n(b'_', n as usize)),
        });
        got
    }

    #[test]
    fn skipped_bytes_are_not_gaps() {
        let mut r = Reassembler::new(1 << 16);
        r.on_syn(999);
        assert_eq!(run(&mut r, |r, o| r.on_data(1000, b"hdr", o)), b"hdr");
        // The kernel skipped 4 bytes; then the next header comes.
        assert_eq!(
            run(&mut r, |r, o| {
                r.skip_to(1007, o);
            }),
            b"____"
        );
        assert_eq!(run(&mut r, |r, o| r.on_data(1007, b"next", o)), b"next");
        // Skipping backwards or to where we are is nothing.
        assert_eq!(
            run(&mut r, |r, o| {
                r.skip_to(1005, o);
            }),
            b""
        );
        assert_eq!(
            run(&mut r, |r, o| {
                r.skip_to(1011, o);
            }),
            b""
        );
        // Queued bytes stop a skip at their start (what is there is delivered, not skipped).
        assert_eq!(run(&mut r, |r, o| r.on_data(1015, b"late", o)), b"");
        assert_eq!(
            run(&mut r, |r, o| {
                r.skip_to(1020, o);
            }),
            b"____late"
        );
        // ... and are not counted as skipped.
        let mut r2 = Reassembler::new(1 << 16);
        r2.on_syn(999);
        r2.on_data(1004, b"late", &mut |_| {});
        assert_eq!(r2.skip_to(1020, &mut |_| {}), 4);
        assert_eq!((r.gaps, r.gap_bytes), (0, 0));
        assert_eq!(r.seq_ahead(3), Some(1022));
    }

    #[test]
    fn in_order_out_of_order_and_retransmission() {
        let mut r = Reassembler::new(1 << 20);
        r.on_syn(999);
        let mut s = run(&mut r, |r, o| r.on_data(1006, b"world", o));
        assert!(s.is_empty());
        s.extend(run(&mut r, |r, o| r.on_data(1000, b"hello ", o)));
        s.extend(run(&mut r, |r, o| r.on_data(1000, b"hello ", o)));
        assert_eq!(s, b"hello world");
        assert_eq!(r.buffered(), 0);
    }

    /// A FIN takes effect in stream order: after the bytes it follows, or as a gap when they
    /// never come (the eBPF backend's byte budget, or loss).
    #[test]
    fn fin_waits_for_the_bytes_before_it() {
        let mut r = Reassembler::new(1 << 20);
        r.on_syn(999);
        assert!(run(&mut r, |r, o| r.on_data(1000, b"abc", o)) == b"abc");
        r.on_fin(1008); // "defgh" (1003..1008) not here yet
        assert!(!r.reached_fin());
        assert_eq!(run(&mut r, |r, o| r.on_data(1003, b"defgh", o)), b"defgh");
        assert!(r.reached_fin());

        let mut r = Reassembler::new(1 << 20);
        r.on_syn(999);
        run(&mut r, |r, o| r.on_data(1000, b"abc", o));
        r.on_fin(1010);
        run(&mut r, |r, o| r.on_data(1005, b"fg", o));
        assert_eq!(run(&mut r, |r, o| r.close_at_fin(o)), b"??fg???");
        assert!(r.reached_fin());
        assert_eq!((r.gaps, r.gap_bytes), (2, 5));

        // No SYN and no data: nothing to wait for.
        let mut r = Reassembler::new(1 << 20);
        r.on_fin(5);
        assert!(r.reached_fin());
    }

    #[test]
    fn wraps_around_2_pow_32() {
        let mut r = Reassembler::new(1 << 20);
        r.on_syn(u32::MAX - 3); // data starts at MAX-2
        let mut s = run(&mut r, |r, o| r.on_data(1, b"DEF", o));
        s.extend(run(&mut r, |r, o| r.on_data(u32::MAX - 2, b"abc", o)));
        s.extend(run(&mut r, |r, o| r.on_data(0, b"d", o)));
        assert_eq!(s, b"abcdDEF");
    }

    #[test]
    fn first_copy_wins_and_conflicts_are_counted() {
        let mut r = Reassembler::new(1 << 20);
        r.on_syn(0);
        run(&mut r, |r, o| r.on_data(5, b"AAAA", o)); // offsets 4..8
        run(&mut r, |r, o| r.on_data(3, b"xBBBBBy", o)); // 2..9 overlaps with different bytes
        assert_eq!(r.overlap_conflicts, 1);
        let s = run(&mut r, |r, o| r.on_data(1, b"ab", o));
        assert_eq!(s, b"abxBAAAAy");
    }

    #[test]
    fn gap_on_flush_and_on_ack() {
        let mut r = Reassembler::new(1 << 20);
        r.on_syn(0);
        run(&mut r, |r, o| r.on_data(11, b"later", o));
        let s = run(&mut r, |r, o| r.on_peer_ack(5, o));
        assert!(s.is_empty(), "ack does not reach the queued data");
        let s = run(&mut r, |r, o| r.on_peer_ack(16, o));
        assert_eq!(s, b"??????????later");
        assert_eq!((r.gaps, r.gap_bytes), (1, 10));
        run(&mut r, |r, o| r.on_data(30, b"x", o));
        let s = run(&mut r, |r, o| r.flush(o));
        assert_eq!(s.len(), 15);
    }

    #[test]
    fn overflow_forces_a_gap_and_bounds_memory() {
        let mut r = Reassembler::new(100);
        r.on_syn(0);
        for i in 0..50u32 {
            run(&mut r, |r, o| r.on_data(1000 + i * 10, &[b'z'; 10], o));
            assert!(r.buffered() <= 110);
        }
        assert!(r.overflows > 0);
    }

    #[test]
    fn stop_drops_everything() {
        let mut r = Reassembler::new(1 << 20);
        r.on_syn(0);
        run(&mut r, |r, o| r.on_data(100, b"queued", o));
        r.stop();
        assert_eq!(r.buffered(), 0);
        assert!(run(&mut r, |r, o| r.on_data(1, b"x", o)).is_empty());
    }

    proptest! {
        /// Reassembly equals the simple model (the original stream) under any segmentation,
        /// reordering and duplication, as long as every byte arrives at least once.
        #[test]
        fn matches_model(data in proptest::collection::vec(any::<u8>(), 1..2000),
                         cuts in proptest::collection::vec(1usize..200, 1..60),
                         order in proptest::collection::vec(any::<u32>(), 0..80),
                         isn in any::<u32>()) {
            let mut segs = Vec::new();
            let mut pos = 0;
            let mut i = 0;
            while pos < data.len() {
                let n = cuts[i % cuts.len()].min(data.len() - pos);
                segs.push((pos, n));
                pos += n;
                i += 1;
            }
            // duplicate and shuffle by the random keys
            let mut all: Vec<(u32, (usize, usize))> = segs.iter().enumerate()
                .map(|(k, s)| (order.get(k).copied().unwrap_or(k as u32), *s)).collect();
            for (k, s) in segs.iter().enumerate().step_by(3) {
                all.push((order.get(k + 1).copied().unwrap_or(0) ^ 0x5555, *s));
            }
            all.sort_by_key(|x| x.0);
            let mut r = Reassembler::new(1 << 22);
            r.on_syn(isn);
            let mut got = Vec::new();
            for (_, (off, n)) in all {
                let seq = isn.wrapping_add(1).wrapping_add(off as u32);
                r.on_data(seq, &data[off..off + n], &mut |c| match c {
                    Chunk::Data(d) => got.extend_from_slice(d),
                    Chunk::Gap(_) | Chunk::Skipped(_) => panic!("no gap expected"),
                });
            }
            prop_assert_eq!(got, data);
            prop_assert_eq!(r.buffered(), 0);
        }
    }
}
