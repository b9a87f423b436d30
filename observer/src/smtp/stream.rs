//! SMTP bytes (plaintext, or decrypted with keys) → commands, replies and body lengths for the
//! [`MailTracker`]. Constant memory: of each line only its first bytes are kept (the verb, BDAT's
//! size, a reply's code and enhanced status); message bodies are scanned for their end
//! (`CRLF . CRLF`) or skipped by BDAT's length, never kept.

use super::mail::{enhanced_subject, Command, MailEvidence, MailFacts, MailTracker};
use crate::Dir;

/// Bytes kept of each line: enough for `BDAT <20 digits> LAST` and `NNN X.Y.Z`.
const PREFIX: usize = 40;

/// The start of the line being read, the rest is dropped.
#[derive(Debug, Clone, Copy)]
struct LinePrefix {
    buf: [u8; PREFIX],
    len: u8,
}

impl Default for LinePrefix {
    fn default() -> Self {
        LinePrefix {
            buf: [0; PREFIX],
            len: 0,
        }
    }
}

impl LinePrefix {
    /// Takes bytes up to and including the first `\n`; returns how many were consumed and the
    /// line (without its ending) when it is complete.
    fn push(&mut self, data: &[u8]) -> (usize, Option<Line>) {
        let (line, done) = match memchr::memchr(b'\n', data) {
            Some(i) => (data.get(..=i).unwrap_or(data), true),
            None => (data, false),
        };
        let have = usize::from(self.len);
        let room = PREFIX.saturating_sub(have);
        let take = line.len().min(room);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(have..have + take), line.get(..take)) {
            dst.copy_from_slice(src);
        }
        self.len = u8::try_from(have + take).unwrap_or(u8::MAX); // ≤ PREFIX
        if !done {
            return (line.len(), None);
        }
        let n = usize::from(std::mem::take(&mut self.len));
        let mut l = self.buf.get(..n).unwrap_or_default();
        while let [rest @ .., b'\n' | b'\r'] = l {
            l = rest;
        }
        (line.len(), Some(Line::from(l)))
    }
}

/// Where the end-of-data scan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyAt {
    /// At the start of a line (the body's first byte counts as one).
    LineStart,
    /// `.` at a line start.
    Dot,
    /// `.\r` at a line start.
    DotCr,
    /// Inside a line.
    Mid,
}

#[derive(Debug)]
pub struct MailStream {
    tracker: MailTracker,
    lines: [LinePrefix; 2],
    body_at: BodyAt,
    body_bytes: u64,
    /// Client bytes still to skip: a BDAT chunk's data.
    skip: u64,
    /// The first final reply seen.
    pub first_reply: Option<u16>,
    incomplete: bool,
}

impl MailStream {
    pub fn new(evidence: MailEvidence) -> Self {
        MailStream {
            tracker: MailTracker::new(evidence),
            lines: [LinePrefix::default(); 2],
            body_at: BodyAt::LineStart,
            body_bytes: 0,
            skip: 0,
            first_reply: None,
            incomplete: false,
        }
    }

    /// The mail dialogue of a session without TLS, from its first MAIL command on (the SMTP
    /// analyzer read what came before: the EHLO reply).
    pub fn plaintext_from_mail(ehlo_reply: Option<u16>) -> Self {
        let mut m = MailStream::new(MailEvidence::Plaintext);
        m.tracker.facts.ehlo_reply = ehlo_reply;
        m.tracker.facts.ehlo_accepted = ehlo_reply.map(|c| c < 400);
        m.first_reply = ehlo_reply;
        m.tracker.command(Command::Mail);
        m
    }

    pub fn facts(&self) -> &MailFacts {
        &self.tracker.facts
    }

    /// Whether a message body is being read (plaintext: the caller may stop other parsing).
    pub fn in_body(&self) -> bool {
        self.tracker.in_body || self.skip > 0
    }

    pub fn feed(&mut self, dir: Dir, mut data: &[u8]) {
        while !data.is_empty() {
            if dir == Dir::ToServer {
                if self.skip > 0 {
                    let n = usize::try_from(self.skip)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    self.skip -= n as u64;
                    data = data.get(n..).unwrap_or_default();
                    continue;
                }
                if self.tracker.in_body {
                    let n = self.scan_body(data);
                    data = data.get(n..).unwrap_or_default();
                    continue;
                }
            }
            let (n, line) = dir.of_mut(&mut self.lines).push(data);
            data = data.get(n..).unwrap_or_default();
            if let Some(line) = line {
                self.line(dir, line.as_slice());
            }
        }
    }

    fn line(&mut self, dir: Dir, line: &[u8]) {
        match dir {
            Dir::ToServer => {
                let c = Command::parse(line);
                if let Command::Bdat { size, .. } = c {
                    self.skip = size;
                }
                if !self.tracker.command(c) {
                    self.incomplete = true;
                }
            }
            Dir::ToClient => {
                let code = match *line {
                    [a @ b'0'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9', ref rest @ ..] => {
                        if rest.first() == Some(&b'-') {
                            return; // a continuation line
                        }
                        let code = u16::from(a - b'0') * 100
                            + u16::from(b - b'0') * 10
                            + u16::from(c - b'0');
                        (code, enhanced_subject(rest.get(1..).unwrap_or_default()))
                    }
                    _ => return,
                };
                self.first_reply.get_or_insert(code.0);
                self.tracker.reply(code.0, code.1);
                if self.tracker.in_body {
                    self.body_at = BodyAt::LineStart;
                    self.body_bytes = 0;
                }
            }
        }
    }

    /// Client bytes of a body: returns how many belong to it (through the end-of-data line).
    fn scan_body(&mut self, data: &[u8]) -> usize {
        let mut i = 0;
        while let Some(&b) = data.get(i) {
            self.body_at = match (self.body_at, b) {
                (BodyAt::LineStart, b'.') => BodyAt::Dot,
                // `.` CR… LF ends the data (a stray CR before the LF too: Postfix takes it)
                (BodyAt::Dot | BodyAt::DotCr, b'\r') => BodyAt::DotCr,
                (BodyAt::Dot | BodyAt::DotCr, b'\n') => {
                    // end of data: the bytes before the dot line are the body
                    let before = self.body_bytes + i as u64;
                    let dot_line = if self.body_at == BodyAt::DotCr { 2 } else { 1 };
                    self.tracker.body_end(before.saturating_sub(dot_line));
                    return i + 1;
                }
                (_, b'\n') => BodyAt::LineStart,
                (BodyAt::Mid, _) => {
                    // jump to the next line end
                    match data.get(i..).and_then(|r| memchr::memchr(b'\n', r)) {
                        Some(j) => {
                            i += j;
                            continue;
                        }
                        None => {
                            i = data.len();
                            break;
                        }
                    }
                }
                _ => BodyAt::Mid,
            };
            i += 1;
        }
        self.body_bytes += i as u64;
        i
    }

    /// A hole in one direction: the dialogue cannot be followed exactly any more.
    pub fn on_gap(&mut self) {
        self.incomplete = true;
    }

    pub fn is_incomplete(&self) -> bool {
        self.incomplete
    }

    /// The session ended: the facts, with an open transaction ended as seen.
    pub fn finish(&mut self) -> MailFacts {
        let incomplete = self.incomplete;
        self.tracker.finish(incomplete)
    }
}

/// A copy of a line's first [`PREFIX`] bytes (so the prefix buffer can be reused at once).
#[derive(Clone, Copy)]
struct Line {
    buf: [u8; PREFIX],
    len: usize,
}

impl From<&[u8]> for Line {
    fn from(l: &[u8]) -> Self {
        let mut buf = [0; PREFIX];
        let len = l.len().min(PREFIX);
        if let (Some(d), Some(s)) = (buf.get_mut(..len), l.get(..len)) {
            d.copy_from_slice(s);
        }
        Line { buf, len }
    }
}

impl Line {
    fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::mail::TxResult;

    const C: Dir = Dir::ToServer;
    const S: Dir = Dir::ToClient;

    fn run(script: &[(Dir, &[u8])]) -> MailFacts {
        let mut m = MailStream::new(MailEvidence::Decrypted);
        for (d, b) in script {
            m.feed(*d, b);
        }
        m.finish()
    }

    #[test]
    fn stray_carriage_returns_and_a_refused_quit() {
        // gnutls-cli --crlf fed CRLF lines: CR CR LF everywhere (Postfix takes the data end)
        let f = run(&[
            (C, b"EHLO a\r\r\n"),
            (S, b"250-mx\r\n250 8BITMIME\r\n"),
            (C, b"MAIL FROM:<a@b>\r\r\n"),
            (S, b"250 2.1.0 Ok\r\n"),
            (C, b"RCPT TO:<c@d>\r\r\n"),
            (S, b"250 2.1.5 Ok\r\n"),
            (C, b"DATA\r\r\n"),
            (S, b"354 go\r\n"),
            (C, b"Subject: x\r\r\n\r\r\nhello\r\r\n.\r\r\n"),
            (S, b"250 2.0.0 Ok: queued\r\n"),
            (C, b"QUIT\r\r\n"),
            (S, b"500 5.5.2 Error: bad syntax\r\n"),
        ]);
        assert_eq!(f.transactions.len(), 1);
        assert_eq!(f.transactions[0].result, TxResult::Delivered);
        assert_eq!(f.quit, Some(500));
    }

    proptest::proptest! {
        /// Any chunking of the same dialogue gives the same facts (lines, bodies and BDAT data
        /// split anywhere).
        #[test]
        fn chunking_does_not_matter(cuts in proptest::collection::vec(1usize..50, 1..40)) {
            let script: [(Dir, &[u8]); 8] = [
                (C, b"EHLO a\r\n"),
                (S, b"250-mx\r\n250 CHUNKING\r\n"),
                (C, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"),
                (S, b"250 ok\r\n250 ok\r\n354 go\r\n"),
                (C, b"Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 12 LAST\r\nhello\r\n.\r\nxy"),
                (S, b"250 queued\r\n250 ok\r\n550 5.1.1 no\r\n"),
                (C, b"QUIT\r\n"),
                (S, b"221 bye\r\n"),
            ];
            let whole = run(&script);
            let mut m = MailStream::new(MailEvidence::Decrypted);
            let mut k = 0;
            for (d, b) in script {
                let mut off = 0;
                while off < b.len() {
                    let n = cuts[k % cuts.len()].min(b.len() - off);
                    k += 1;
                    m.feed(d, &b[off..off + n]);
                    off += n;
                }
            }
            proptest::prop_assert_eq!(m.finish(), whole);
        }
    }

    #[test]
    fn pipelined_refusals_and_bdat() {
        let f = run(&[
            (C, b"EHLO a\r\n"),
            (S, b"250 mx\r\n"),
            (C, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n"),
            (S, b"250 ok\r\n550 5.1.1 no such user\r\n554 5.7.1 <e@f>: Recipient address rejected: Access denied\r\n554 5.5.1 Error: no valid recipients\r\n"),
            (C, b"RSET\r\n"),
            (S, b"250 ok\r\n"),
            (C, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 5 LAST\r\nhello"),
            (S, b"250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n"),
            (C, b"QUIT\r\n"),
            (S, b"221 bye\r\n"),
        ]);
        let r: Vec<_> = f.transactions.iter().map(|t| t.result).collect();
        assert_eq!(r, [TxResult::RejectedRcpt, TxResult::Delivered]);
        assert_eq!(f.transactions[0].rcpt_rejected, Some(2));
        assert_eq!(
            f.transactions[0].refusal_subject,
            Some(crate::smtp::mail::StatusSubject::Addressing)
        );
        assert_eq!(f.transactions[1].body_bytes, Some(5));
        assert_eq!(f.quit, Some(221));
        assert_eq!(f.rset.as_ref().map(|c| c.codes.clone()), Some(vec![250]));
    }
}
