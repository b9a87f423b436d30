//! SMTP session analyzer (sans-IO): client and server bytes in, facts and a TLS hand-off decision out.
//!
//! It follows RFC 5321 / RFC 3207 only as far as the question needs: banner, EHLO/HELO name, whether
//! STARTTLS was advertised, the STARTTLS command and its reply. Hand-off to TLS happens only after a
//! `220` reply *and* when the next bytes look like a TLS record; `454`/`501` and anything else keep the
//! session in SMTP. Client bytes pipelined after STARTTLS before the reply are an anomaly and are never
//! parsed as TLS. After `354` (message content follows) the analyzer stops: bodies are never read.

pub mod infer;
pub mod mail;
pub mod stream;

use crate::anomaly::{Anomaly, AnomalySet};
use crate::Dir;
use serde::Serialize;
use std::collections::VecDeque;

/// Longest line kept (RFC 5321: 512 for commands, 1000 for text lines); longer lines are cut.
pub const MAX_LINE: usize = 1024;
/// Commands awaiting replies (pipelining) that we remember.
const MAX_PENDING: usize = 64;

named_enum! {
    /// How a session used STARTTLS (contract).
    pub enum StartTls {
        /// STARTTLS answered 220 and TLS followed.
        Accepted = "accepted",
        /// STARTTLS answered with something else (454, 501, ...).
        Refused = "refused",
        /// The server's EHLO reply did not advertise STARTTLS and the client did not try.
        NotOffered = "not_offered",
        /// Advertised, but the client never sent STARTTLS.
        NotAttempted = "not_attempted",
        /// TLS from the first byte (port 465 style).
        Implicit = "implicit",
        Unknown = "unknown",
    }
}

/// What the SMTP layer learned. Serialised as the event's `smtp` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmtpFacts {
    pub banner: Option<String>,
    pub helo: Option<String>,
    /// EHLO reply advertised STARTTLS (null when no EHLO reply was seen).
    pub starttls_offered: Option<bool>,
    pub starttls: StartTls,
    /// The reply code to STARTTLS, when seen.
    pub starttls_reply: Option<u16>,
    /// A session without TLS right after a failed TLS session between the same addresses.
    pub plaintext_fallback: bool,
    pub anomalies: AnomalySet,
}

/// What the caller must do after feeding bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep feeding SMTP.
    Continue,
    /// From byte `offset` of the chunk just fed, this direction (and everything after, both ways)
    /// is TLS.
    Tls { offset: usize },
    /// Nothing more of interest on this connection (message content, or not SMTP).
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Commands,
    /// STARTTLS sent, reply not yet seen.
    AwaitStarttlsReply,
    /// 220 seen: the next bytes should be TLS.
    TlsExpected,
    Done,
}

/// A client command whose reply matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Ehlo,
    StartTls,
    Data,
    Other,
}

/// A line as text: borrowed when it is UTF-8 (almost always; checked faster than the lossy
/// conversion's chunking), else with replacement characters.
fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => s.into(),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// The first `n` characters of `s`.
fn first_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// The three-digit code a reply line starts with.
fn reply_code(line: &[u8]) -> Option<u16> {
    match *line {
        [a @ b'0'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9', ..] => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// A line without its `\r\n` / `\n` ending.
fn trim_eol(mut l: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = l {
        l = rest;
    }
    l
}

#[derive(Debug, Default)]
struct LineBuf {
    buf: Vec<u8>,
    overlong: bool,
}

impl LineBuf {
    /// Appends bytes up to and including the first `\n`; returns how many were consumed and whether
    /// a line is complete.
    fn push(&mut self, data: &[u8]) -> (usize, bool) {
        // (`i < data.len()`: the line through its `\n` is always `Some`)
        let (line, done) = match data.iter().position(|&b| b == b'\n') {
            Some(i) => (data.get(..=i).unwrap_or(data), true),
            None => (data, false),
        };
        let room = MAX_LINE.saturating_sub(self.buf.len());
        if line.len() > room {
            self.overlong = true;
        }
        self.buf.extend_from_slice(line.get(..room).unwrap_or(line));
        (line.len(), done)
    }

    fn take_line(&mut self) -> (Vec<u8>, bool) {
        let mut l = std::mem::take(&mut self.buf);
        let n = trim_eol(&l).len();
        l.truncate(n);
        (l, std::mem::take(&mut self.overlong))
    }
}

#[derive(Debug)]
pub struct SmtpSession {
    pub facts: SmtpFacts,
    state: State,
    client: LineBuf,
    server: LineBuf,
    /// Commands awaiting their reply, in order.
    pending: VecDeque<Cmd>,
    /// The first server reply (banner) still expected.
    banner_pending: bool,
    /// Multi-line reply being read: its code and whether it mentions STARTTLS.
    reply_starttls: bool,
    /// Enough evidence that this is SMTP (EHLO/HELO seen, or an ESMTP banner).
    confirmed: bool,
    not_smtp: bool,
    /// The last reply to EHLO/HELO (for the mail facts of a session without TLS).
    pub ehlo_reply: Option<u16>,
    /// The first MAIL command was seen (the mail dialogue starts there).
    mail_seen: bool,
    mail_line: bool,
    /// Offset just past the first MAIL line in the chunk just fed: the caller's mail dialogue
    /// starts there (`take_mail_start`).
    mail_start: Option<usize>,
}

impl Default for SmtpSession {
    fn default() -> Self {
        Self::new()
    }
}

/// Does this look like the start of a TLS record carrying a handshake or alert?
pub fn looks_like_tls(b: &[u8]) -> bool {
    matches!(
        b,
        [0x16 | 0x15, 0x03, 0..=0x04, ..] | [0x16 | 0x15] | [0x16 | 0x15, 0x03]
    )
}

impl SmtpSession {
    pub fn new() -> Self {
        SmtpSession {
            facts: SmtpFacts {
                banner: None,
                helo: None,
                starttls_offered: None,
                starttls: StartTls::Unknown,
                starttls_reply: None,
                plaintext_fallback: false,
                anomalies: AnomalySet::EMPTY,
            },
            state: State::Commands,
            client: LineBuf::default(),
            server: LineBuf::default(),
            pending: VecDeque::new(),
            banner_pending: true,
            reply_starttls: false,
            confirmed: false,
            not_smtp: false,
            ehlo_reply: None,
            mail_seen: false,
            mail_line: false,
            mail_start: None,
        }
    }

    /// Where the first MAIL command ended in the chunk just fed (the mail dialogue of a session
    /// without TLS is followed from there; the commands before it are this analyzer's).
    pub fn take_mail_start(&mut self) -> Option<usize> {
        self.mail_start.take()
    }

    /// Whether the peers were seen speaking SMTP (as opposed to FTP, POP3, ... which share prefixes).
    pub fn is_smtp(&self) -> bool {
        self.confirmed && !self.not_smtp
    }

    /// Bytes held of lines still arriving.
    pub fn buffered_bytes(&self) -> usize {
        self.client.buf.capacity() + self.server.buf.capacity()
    }

    pub fn is_not_smtp(&self) -> bool {
        self.not_smtp
    }

    fn anomaly(&mut self, a: Anomaly) {
        self.facts.anomalies.insert(a);
    }

    /// Feed bytes from one direction.
    pub fn feed(&mut self, dir: Dir, data: &[u8]) -> Next {
        let mut off = 0;
        while let Some(rest @ [first, ..]) = data.get(off..) {
            match self.state {
                State::Done => return Next::Stop,
                State::TlsExpected => {
                    if looks_like_tls(rest) {
                        self.facts.starttls = StartTls::Accepted;
                        self.state = State::Done;
                        return Next::Tls { offset: off };
                    }
                    // 220 to STARTTLS but the conversation goes on in plaintext: not TLS.
                    self.anomaly(Anomaly::StarttlsContinuedPlaintext);
                    self.facts.starttls = StartTls::Unknown;
                    self.state = State::Commands;
                }
                State::Commands
                    if dir == Dir::ToServer
                        && self.pending.is_empty()
                        && self.facts.helo.is_none()
                        && self.facts.starttls_reply.is_none()
                        && self.client.buf.is_empty()
                        && *first == 0x16
                        && looks_like_tls(rest) =>
                {
                    // The client's first bytes are a TLS ClientHello, without STARTTLS (implicit TLS
                    // sent to a plaintext SMTP port). After any command (e.g. a refused STARTTLS)
                    // such bytes stay SMTP.
                    self.anomaly(Anomaly::TlsWithoutStarttls);
                    self.state = State::Done;
                    return Next::Tls { offset: off };
                }
                State::AwaitStarttlsReply if dir == Dir::ToServer => {
                    // RFC 3207: nothing may follow STARTTLS before the reply. Never parse it as TLS.
                    self.anomaly(Anomaly::StarttlsPipelinedData);
                    return Next::Continue;
                }
                _ => {}
            }
            let buf = match dir {
                Dir::ToServer => &mut self.client,
                Dir::ToClient => &mut self.server,
            };
            // A whole line in this chunk: the bytes before its `\n`.
            let whole = rest
                .iter()
                .position(|&b| b == b'\n')
                .and_then(|i| rest.get(..i));
            let (line, overlong): (std::borrow::Cow<'_, [u8]>, bool) = match whole {
                // A whole line in this chunk and nothing buffered: read where it lies.
                Some(l) if buf.buf.is_empty() && !buf.overlong && l.len() < MAX_LINE => {
                    off += l.len() + 1;
                    (trim_eol(l).into(), false)
                }
                _ => {
                    let (n, complete) = buf.push(rest);
                    off += n;
                    if !complete {
                        if buf.overlong {
                            // reported as soon as the cap is hit: a line that never ends is seen too
                            self.anomaly(Anomaly::SmtpLineTooLong);
                        }
                        continue;
                    }
                    let (l, overlong) = buf.take_line();
                    (l.into(), overlong)
                }
            };
            let line = text(&line);
            if overlong {
                self.anomaly(Anomaly::SmtpLineTooLong);
                // a cut line is not a command we can trust (e.g. an endless EHLO): keep the
                // reply pairing, take nothing from it
                if dir == Dir::ToServer {
                    if self.pending.len() < MAX_PENDING {
                        self.pending.push_back(Cmd::Other);
                    }
                    continue;
                }
            }
            let next = match dir {
                Dir::ToServer => self.client_line(&line),
                Dir::ToClient => self.server_line(&line),
            };
            if std::mem::take(&mut self.mail_line) {
                self.mail_start = Some(off);
            }
            if self.not_smtp {
                self.state = State::Done;
                return Next::Stop;
            }
            if next == Next::Stop {
                self.state = State::Done;
                return Next::Stop;
            }
        }
        Next::Continue
    }

    fn client_line(&mut self, line: &str) -> Next {
        let word = line.split(' ').next().unwrap_or("");
        // The command verb in upper case, without an allocation (commands are short; a longer
        // word is no command).
        let mut upper = [0u8; 16];
        let verb = match upper.get_mut(..word.len()) {
            Some(u) => {
                u.copy_from_slice(word.as_bytes());
                u.make_ascii_uppercase();
                std::str::from_utf8(u).unwrap_or("")
            }
            None => "",
        };
        if verb == "MAIL" && !self.mail_seen {
            self.mail_seen = true;
            self.mail_line = true;
        }
        match verb {
            "EHLO" | "HELO" | "LHLO" => {
                self.confirmed = true;
                if self.facts.helo.is_none() {
                    let name = line.get(5..).unwrap_or("").trim();
                    self.facts.helo = Some(first_chars(name, 255).to_string());
                }
            }
            "STARTTLS" => {
                self.state = State::AwaitStarttlsReply;
            }
            "AUTH"
                if !self.confirmed
                    && matches!(
                        line.get(5..)
                            .unwrap_or("")
                            .trim()
                            .to_ascii_uppercase()
                            .as_str(),
                        "TLS" | "SSL" | "TLS-C"
                    ) =>
            {
                self.not_smtp = true; // FTP (RFC 4217)
            }
            "MAIL" | "RCPT" | "DATA" | "RSET" | "NOOP" | "QUIT" | "VRFY" | "EXPN" | "HELP"
            | "AUTH" | "BDAT" | "ETRN" | "XCLIENT" | "XFORWARD" => {}
            // Other text protocols that share the "220" greeting or use STARTTLS-like commands.
            "USER" | "PASS" | "FEAT" | "SYST" | "PBSZ" | "PROT" | "CAPA" | "STLS" | "LOGIN"
            | "CAPABILITY" => {
                if !self.confirmed {
                    self.not_smtp = true;
                }
            }
            _ => {
                if !self.confirmed
                    && (line.starts_with('<') || word.chars().any(|c| !c.is_ascii_alphabetic()))
                {
                    self.not_smtp = true;
                }
                if word.len() > 1 && word.len() < 16 && line.len() > 3 && !self.confirmed {
                    // "A1 STARTTLS" (IMAP tags) and other non-SMTP shapes.
                    if line
                        .split(' ')
                        .nth(1)
                        .is_some_and(|w| w.eq_ignore_ascii_case("STARTTLS"))
                    {
                        self.not_smtp = true;
                    }
                }
            }
        }
        if self.pending.len() < MAX_PENDING {
            self.pending.push_back(match verb {
                "EHLO" => Cmd::Ehlo,
                "STARTTLS" => Cmd::StartTls,
                "DATA" => Cmd::Data,
                _ => Cmd::Other,
            });
        } else {
            self.anomaly(Anomaly::SmtpTooManyPipelinedCommands);
        }
        Next::Continue
    }

    fn server_line(&mut self, line: &str) -> Next {
        let bytes = line.as_bytes();
        let code = match reply_code(bytes) {
            Some(c) => c,
            None => {
                if self.banner_pending && !self.confirmed {
                    // "+OK" (POP3), "* OK" (IMAP), "<?xml" (XMPP): not SMTP.
                    self.not_smtp = true;
                } else {
                    self.anomaly(Anomaly::SmtpBadReply);
                }
                return Next::Continue;
            }
        };
        let last = bytes.get(3) != Some(&b'-');
        let text = line.get(4..).unwrap_or("");
        if self.banner_pending {
            if code != 220 && code != 554 && code != 421 {
                self.not_smtp = !self.confirmed;
                return Next::Continue;
            }
            if self.facts.banner.is_none() {
                self.facts.banner = Some(first_chars(text, 255).to_string());
                if text.contains("SMTP") {
                    self.confirmed = true;
                }
            }
            if last {
                self.banner_pending = false;
            }
            return Next::Continue;
        }
        let cmd = self.pending.front().copied().unwrap_or(Cmd::Other);
        if cmd == Cmd::Ehlo
            && text
                .split([' ', '='])
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("STARTTLS"))
        {
            self.reply_starttls = true;
        }
        if !last {
            return Next::Continue;
        }
        self.pending.pop_front();
        match cmd {
            Cmd::Ehlo => {
                self.ehlo_reply = Some(code);
                if code == 250 && self.facts.starttls_offered != Some(true) {
                    self.facts.starttls_offered = Some(self.reply_starttls);
                }
                self.reply_starttls = false;
            }
            Cmd::StartTls => {
                self.facts.starttls_reply = Some(code);
                if code == 220 {
                    self.state = State::TlsExpected;
                } else {
                    self.facts.starttls = StartTls::Refused;
                    self.state = State::Commands;
                }
            }
            Cmd::Data if code == 354 => return Next::Stop,
            _ => {}
        }
        Next::Continue
    }

    /// A hole in one direction: drop the partial line (the next line resynchronises).
    pub fn on_gap(&mut self, dir: Dir) {
        let buf = match dir {
            Dir::ToServer => &mut self.client,
            Dir::ToClient => &mut self.server,
        };
        buf.buf.clear();
        buf.overlong = false;
    }

    /// The facts with the final STARTTLS classification (what the connection showed so far).
    pub fn facts(&self) -> SmtpFacts {
        let mut f = self.facts.clone();
        if f.starttls == StartTls::Unknown {
            f.starttls = match (self.state, f.starttls_offered) {
                (State::AwaitStarttlsReply | State::TlsExpected, _) => StartTls::Unknown,
                (_, Some(false)) => StartTls::NotOffered,
                (_, Some(true)) if f.starttls_reply.is_none() => StartTls::NotAttempted,
                _ => StartTls::Unknown,
            };
            if f.anomalies.contains(Anomaly::StarttlsContinuedPlaintext) {
                f.starttls = StartTls::Unknown;
            }
        }
        f
    }
}

/// Server reply codes seen inside TLS (decrypted with keys): the first reply, and the replies to
/// EHLO/HELO, MAIL, the first RCPT and DATA of the first transaction. Only codes and command
/// verbs are looked at; addresses and message content are never kept (the whole dialogue is in
/// the event's `mail`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepliesAfterTls {
    pub first: Option<u16>,
    pub ehlo: Option<u16>,
    pub mail: Option<u16>,
    pub rcpt: Option<u16>,
    pub data: Option<u16>,
}

impl RepliesAfterTls {
    /// From the decrypted dialogue: its first reply, and the first replies to EHLO, MAIL, RCPT and
    /// DATA/BDAT (the object is reported only when a reply was seen).
    pub fn from_stream(s: &stream::MailStream) -> Option<Self> {
        let first = s.first_reply?;
        let f = s.facts();
        let t = f.transactions.first();
        Some(RepliesAfterTls {
            first: Some(first),
            ehlo: f.ehlo_reply,
            mail: t.and_then(|t| t.mail),
            rcpt: t
                .and_then(|t| t.rcpt.as_ref())
                .and_then(|c| c.codes.first().copied()),
            data: t.and_then(|t| t.data.or_else(|| t.bdat.as_ref()?.codes.first().copied())),
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn starttls_names_are_the_serialised_ones() {
        for &v in StartTls::ALL {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        assert_eq!(first_chars("héllo", 2), "hé");
        assert_eq!(first_chars("ab", 5), "ab");
    }

    use super::*;
    use proptest::prelude::*;

    fn session(script: &[(Dir, &[u8])]) -> (SmtpSession, Vec<Next>) {
        let mut s = SmtpSession::new();
        let nexts = script.iter().map(|(d, b)| s.feed(*d, b)).collect();
        (s, nexts)
    }

    const C: Dir = Dir::ToServer;
    const S: Dir = Dir::ToClient;

    #[test]
    fn starttls_handoff_on_220_and_tls_bytes() {
        let (s, n) = session(&[
            (S, b"220 mx.example.net ESMTP Postfix\r\n"),
            (C, b"EHLO out.example.org\r\n"),
            (
                S,
                b"250-mx.example.net\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
            ),
            (C, b"STARTTLS\r\n"),
            (S, b"220 2.0.0 Ready to start TLS\r\n"),
            (C, b"\x16\x03\x01\x00\x05hello"),
        ]);
        assert_eq!(n[5], Next::Tls { offset: 0 });
        assert_eq!(
            s.facts.banner.as_deref(),
            Some("mx.example.net ESMTP Postfix")
        );
        assert_eq!(s.facts.helo.as_deref(), Some("out.example.org"));
        assert_eq!(s.facts.starttls_offered, Some(true));
        assert_eq!(s.facts.starttls, StartTls::Accepted);
        assert!(s.is_smtp());
    }

    #[test]
    fn refusal_454_stays_in_smtp() {
        let (s, n) = session(&[
            (S, b"220 mx ESMTP\r\n"),
            (C, b"EHLO a\r\n"),
            (S, b"250-mx\r\n250 STARTTLS\r\n"),
            (C, b"STARTTLS\r\n"),
            (S, b"454 4.7.0 TLS not available due to local problem\r\n"),
            (C, b"\x16\x03\x01\x00\x05hello\r\n"),
        ]);
        assert_eq!(n[5], Next::Continue);
        assert_eq!(s.facts().starttls, StartTls::Refused);
        assert_eq!(s.facts.starttls_reply, Some(454));
    }

    #[test]
    fn pipelined_bytes_after_starttls_are_an_anomaly_not_tls() {
        let (s, n) = session(&[
            (S, b"220 mx ESMTP\r\n"),
            (C, b"EHLO a\r\n"),
            (S, b"250 STARTTLS\r\n"),
            (C, b"STARTTLS\r\n"),
            (C, b"\x16\x03\x01\x00\x05hello"),
            (S, b"220 go ahead\r\n"),
        ]);
        assert_eq!(n[4], Next::Continue);
        assert!(s.facts.anomalies.contains(Anomaly::StarttlsPipelinedData));
    }

    #[test]
    fn plaintext_after_220_is_not_tls() {
        let (s, n) = session(&[
            (S, b"220 mx ESMTP\r\n"),
            (C, b"EHLO a\r\n"),
            (S, b"250 STARTTLS\r\n"),
            (C, b"STARTTLS\r\n"),
            (S, b"220 go ahead\r\n"),
            (C, b"EHLO a\r\n"),
        ]);
        assert_eq!(n[5], Next::Continue);
        assert_ne!(s.facts().starttls, StartTls::Accepted);
    }

    #[test]
    fn client_hello_without_starttls_is_tls_and_an_anomaly() {
        let (s, n) = session(&[(S, b"220 mx ESMTP\r\n"), (C, b"\x16\x03\x01\x02\x00\x01")]);
        assert_eq!(n[1], Next::Tls { offset: 0 });
        assert!(s.facts.anomalies.contains(Anomaly::TlsWithoutStarttls));
    }

    #[test]
    fn other_protocols_are_not_smtp() {
        for script in [
            &[(S, &b"+OK POP3 ready\r\n"[..])][..],
            &[(S, b"* OK IMAP4rev1 ready\r\n")],
            &[(S, b"220 ProFTPD Server\r\n"), (C, b"AUTH TLS\r\n")],
            &[(S, b"220 ftp\r\n"), (C, b"USER anonymous\r\n")],
            &[(C, b"<?xml version='1.0'?><stream:stream>\r\n")],
        ] {
            let (s, _) = session(script);
            assert!(!s.is_smtp(), "{script:?}");
        }
    }

    #[test]
    fn message_content_is_never_read() {
        let (_, n) = session(&[
            (S, b"220 mx ESMTP\r\n"),
            (C, b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"),
            (S, b"250 mx\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        ]);
        assert_eq!(n[2], Next::Stop);
    }

    #[test]
    fn long_lines_are_cut_and_flagged() {
        let mut long = vec![b'A'; 100_000];
        long.extend_from_slice(b"\r\n");
        let (s, _) = session(&[
            (S, b"220 mx ESMTP\r\n"),
            (C, b"EHLO "),
            (C, &long),
            (S, b"500 line too long\r\n"),
            (C, b"EHLO real.example\r\n"),
        ]);
        assert!(s.facts.anomalies.contains(Anomaly::SmtpLineTooLong));
        assert_eq!(
            s.facts.helo.as_deref(),
            Some("real.example"),
            "the cut EHLO is not taken"
        );
        // a line that never ends is flagged too
        let (s, _) = session(&[(S, b"220 mx ESMTP\r\n"), (C, &[b'B'; 5000])]);
        assert!(s.facts.anomalies.contains(Anomaly::SmtpLineTooLong));
    }

    proptest! {
        /// Any chunking of the same conversation gives the same facts and the same hand-off point.
        #[test]
        fn chunking_does_not_matter(cuts in proptest::collection::vec(1usize..40, 1..30)) {
            let server = b"220 mx.example.net ESMTP\r\n250-mx\r\n250-SIZE 1000\r\n250 STARTTLS\r\n220 ready\r\n".to_vec();
            let client = b"EHLO out.example.org\r\nSTARTTLS\r\n\x16\x03\x01\x00\x01x".to_vec();
            // interleave: banner, EHLO, reply, STARTTLS, 220, TLS
            let plan: [(Dir, std::ops::Range<usize>); 6] = [
                (S, 0..26), (C, 0..22), (S, 26..63), (C, 22..32), (S, 63..74), (C, 32..38)];
            let mut s = SmtpSession::new();
            let mut tls_at = None;
            let mut k = 0;
            for (dir, range) in plan {
                let bytes = if dir == S { &server[range.clone()] } else { &client[range.clone()] };
                let mut off = 0;
                while off < bytes.len() {
                    let n = cuts[k % cuts.len()].min(bytes.len() - off);
                    k += 1;
                    if let Next::Tls { offset } = s.feed(dir, &bytes[off..off + n]) {
                        tls_at = Some(range.start + off + offset);
                        break;
                    }
                    off += n;
                }
            }
            prop_assert_eq!(tls_at, Some(32));
            prop_assert_eq!(s.facts.helo.as_deref(), Some("out.example.org"));
            prop_assert_eq!(s.facts.starttls_offered, Some(true));
            prop_assert_eq!(s.facts.starttls, StartTls::Accepted);
        }
    }
}
