//! Per-connection analyzers: protocol detection, then SMTP (plaintext dialogue up to STARTTLS), the
//! hand-off to TLS, other text protocols' STARTTLS (POP3, IMAP, XMPP, FTP...), and the SMTP
//! dialogue inside TLS when keys let us decrypt it.

use super::roles::{looks_like_smtp_start, starts_with_client_hello};
use crate::anomaly::{Anomaly, AnomalySet};
use crate::smtp::infer::MailInference;
use crate::smtp::mail::{MailEvidence, MailFacts};
use crate::smtp::stream::MailStream;
use crate::smtp::{self, Next, SmtpSession, StartTls};
use crate::tcp::Chunk;
use crate::tls::{self, OutcomeResult, TlsFacts, TlsSession};
use crate::Dir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Proto {
    Detect,
    Smtp,
    Tls,
    /// A text protocol that is not SMTP (POP3, IMAP, XMPP, FTP...): watch the client for a TLS
    /// ClientHello at a segment boundary (its STARTTLS), for at most [`OTHER_SCAN_LIMIT`] bytes.
    OtherText,
    /// Plaintext SMTP after the SMTP analyzer's part (message content): only the mail
    /// dialogue is followed.
    SmtpMail,
    /// Nothing more of interest: bytes are ignored.
    Done,
    /// Not SMTP and not TLS: no event.
    Ignore,
}

/// Plaintext bytes of a non-SMTP protocol watched for a STARTTLS-style switch to TLS.
const OTHER_SCAN_LIMIT: u64 = 64 * 1024;

/// The SMTP side of a connection: the analyzer while the dialogue is plaintext; once TLS takes
/// over only its facts (line buffers and command queue freed), or nothing when the dialogue never
/// proved to be SMTP.
#[derive(Debug)]
enum Smtp {
    Live(Box<SmtpSession>),
    Over(Option<Box<HeldSmtp>>),
}

/// SMTP facts as held once TLS took over, strings as boxed slices.
#[derive(Debug)]
pub(super) struct HeldSmtp {
    banner: Option<Box<str>>,
    helo: Option<Box<str>>,
    anomalies: AnomalySet,
    starttls_offered: Option<bool>,
    starttls: StartTls,
    starttls_reply: Option<u16>,
    plaintext_fallback: bool,
}

impl HeldSmtp {
    fn new(f: smtp::SmtpFacts) -> Self {
        HeldSmtp {
            banner: f.banner.map(String::into_boxed_str),
            helo: f.helo.map(String::into_boxed_str),
            anomalies: f.anomalies,
            starttls_offered: f.starttls_offered,
            starttls: f.starttls,
            starttls_reply: f.starttls_reply,
            plaintext_fallback: f.plaintext_fallback,
        }
    }

    fn facts(&self) -> smtp::SmtpFacts {
        smtp::SmtpFacts {
            banner: self.banner.as_deref().map(String::from),
            helo: self.helo.as_deref().map(String::from),
            starttls_offered: self.starttls_offered,
            starttls: self.starttls,
            starttls_reply: self.starttls_reply,
            plaintext_fallback: self.plaintext_fallback,
            anomalies: self.anomalies,
        }
    }
}

impl Smtp {
    fn is_smtp(&self) -> bool {
        match self {
            Smtp::Live(s) => s.is_smtp(),
            Smtp::Over(f) => f.is_some(),
        }
    }

    fn facts(&self) -> Option<smtp::SmtpFacts> {
        match self {
            Smtp::Live(s) => s.is_smtp().then(|| s.facts()),
            Smtp::Over(f) => f.as_deref().map(HeldSmtp::facts),
        }
    }
}

/// Per-connection analyzers. Kept apart from the reassemblers so both can be borrowed at once.
/// What all connections share (key log, chain cache) is passed in, never held per connection.
#[derive(Debug)]
pub(super) struct Conversation {
    pub(super) proto: Proto,
    // Boxed: most flows (SYN floods, other protocols) never create them, and a flow's idle
    // state must stay small (tests: `flow_state_is_small`).
    smtp: Option<Smtp>,
    tls: Option<Box<TlsSession>>,
    /// The flow layer's anomalies.
    weirds: AnomalySet,
    /// `OtherText`: plaintext bytes watched so far, and the first bytes of a possible ClientHello.
    other_scanned: u32,
    other_prefix: ([u8; 6], u8),
    /// What happened to the mail (plaintext, decrypted or inferred).
    mail: Option<Box<Mail>>,
}

/// The mail dialogue of a connection: exact from plaintext or decrypted SMTP, and inferred from
/// the encrypted records' sizes (both when keys are held: the exact one is reported).
#[derive(Debug, Default)]
struct Mail {
    /// Boxed: only plaintext sessions and sessions decrypted with keys have one.
    exact: Option<Box<MailStream>>,
    inferred: Option<MailInference>,
    /// A hole in the bytes: the dialogue cannot be followed to its end.
    gap: bool,
}

impl Mail {
    fn feed_exact(&mut self, dir: Dir, d: &[u8]) {
        if let Some(e) = &mut self.exact {
            e.feed(dir, d);
        }
    }
}

impl Conversation {
    pub(super) fn new() -> Self {
        Conversation {
            proto: Proto::Detect,
            smtp: None,
            tls: None,
            weirds: AnomalySet::EMPTY,
            other_scanned: 0,
            other_prefix: ([0; 6], 0),
            mail: None,
        }
    }

    pub(super) fn weird(&mut self, w: Anomaly) {
        self.weirds.insert(w);
    }

    pub(super) fn deliver(&mut self, ctx: &mut tls::Context, dir: Dir, chunk: Chunk<'_>, ts: i64) {
        match chunk {
            Chunk::Gap(n) => {
                self.weird(Anomaly::ContentGap);
                match self.proto {
                    Proto::Detect => self.proto = Proto::Ignore,
                    Proto::Tls => {
                        if let Some(t) = &mut self.tls {
                            t.on_gap(dir, n);
                        }
                    }
                    Proto::Smtp => {
                        self.weird(Anomaly::SmtpGap);
                        if let Some(Smtp::Live(s)) = &mut self.smtp {
                            s.on_gap(dir);
                        }
                    }
                    Proto::SmtpMail => self.weird(Anomaly::SmtpGap),
                    _ => {}
                }
                if let Some(m) = &mut self.mail {
                    m.gap = true;
                    if let Some(e) = &mut m.exact {
                        e.on_gap();
                    }
                }
            }
            Chunk::Data(d) => self.data(ctx, dir, d, ts),
            Chunk::Skipped(n) => match (&mut self.tls, self.proto) {
                // Record bodies the eBPF program skipped: the record layer checks they are.
                (Some(t), Proto::Tls) => t.on_skipped(dir, n),
                // Only TLS directions are summarised; anything else is a gap.
                _ => self.deliver(ctx, dir, Chunk::Gap(n), ts),
            },
        }
    }

    /// Bytes of `dir` until its next TLS record header, when known: where the eBPF program may
    /// start following the direction's records (see [`crate::flow::FlowTable::take_arm_requests`]).
    pub(super) fn next_header_in(&self, dir: Dir) -> Option<u64> {
        if self.proto != Proto::Tls {
            return None;
        }
        self.tls.as_ref()?.next_header_in(dir)
    }

    /// Only TLS record sizes and order are read from now on (the outcome is known, no
    /// application data is decrypted, no exact mail dialogue is read): summaries will do.
    pub(super) fn summarisable(&self) -> bool {
        self.proto == Proto::Tls
            && self.mail.as_ref().is_none_or(|m| m.exact.is_none())
            && self.tls.as_ref().is_some_and(|t| t.summarisable())
    }

    fn data(&mut self, ctx: &mut tls::Context, dir: Dir, d: &[u8], ts: i64) {
        if self.proto == Proto::Detect {
            self.proto = if smtp::looks_like_tls(d) {
                self.tls = Some(Box::default());
                Proto::Tls
            } else if looks_like_smtp_start(dir, d) {
                self.smtp = Some(Smtp::Live(Box::default()));
                Proto::Smtp
            } else {
                Proto::OtherText
            };
        }
        if self.proto == Proto::OtherText {
            self.other_text(ctx, dir, d, ts);
            return;
        }
        match self.proto {
            Proto::Smtp => {
                let Some(Smtp::Live(s)) = &mut self.smtp else {
                    return;
                };
                let next = s.feed(dir, d);
                // The mail dialogue of a session without TLS: from its first MAIL on (the SMTP
                // analyzer parsed what came before), then every byte.
                let had_mail = self.mail.is_some();
                if let Some(at) = s.take_mail_start() {
                    let mut m = Box::new(MailStream::plaintext_from_mail(s.ehlo_reply));
                    m.feed(dir, d.get(at..).unwrap_or_default());
                    self.mail = Some(Box::new(Mail {
                        exact: Some(m),
                        ..Mail::default()
                    }));
                } else if had_mail && !matches!(next, Next::Tls { .. }) {
                    if let Some(m) = &mut self.mail {
                        m.feed_exact(dir, d);
                    }
                }
                match next {
                    Next::Continue => {
                        if s.is_not_smtp() {
                            self.proto = Proto::OtherText;
                            self.mail = None;
                        }
                    }
                    Next::Tls { offset } => {
                        self.proto = Proto::Tls;
                        // The SMTP analyzer's work is over (its state is final): keep its facts.
                        let is_smtp = s.is_smtp();
                        let facts = is_smtp.then(|| Box::new(HeldSmtp::new(s.facts())));
                        self.smtp = Some(Smtp::Over(facts));
                        let mut t = Box::new(TlsSession::default());
                        // SMTP over TLS: follow the decrypted dialogue when keys allow.
                        t.want_app_data(is_smtp);
                        // the mail after TLS is what counts: the plaintext part is dropped
                        self.mail = None;
                        t.feed(ctx, dir, d.get(offset..).unwrap_or(&[]), ts);
                        self.tls = Some(t);
                        self.after_tls_feed(ctx);
                    }
                    Next::Stop => {
                        if s.is_not_smtp() {
                            self.proto = Proto::OtherText;
                            self.mail = None;
                        } else {
                            // message content: only the mail dialogue goes on
                            self.proto = Proto::SmtpMail;
                        }
                    }
                }
            }
            Proto::SmtpMail => {
                if let Some(m) = &mut self.mail {
                    m.feed_exact(dir, d);
                }
            }
            Proto::Tls => {
                if let Some(t) = &mut self.tls {
                    t.feed(ctx, dir, d, ts);
                }
                self.after_tls_feed(ctx);
            }
            _ => {}
        }
    }

    /// A non-SMTP text protocol: look for the client's ClientHello at the start of a chunk (its
    /// STARTTLS switch). The first 6 bytes may arrive in several chunks.
    fn other_text(&mut self, ctx: &mut tls::Context, dir: Dir, d: &[u8], ts: i64) {
        let (prefix, have) = &mut self.other_prefix;
        if dir == Dir::ToServer && (*have > 0 || d.first() == Some(&0x16)) {
            let at = usize::from(*have);
            // Copies min(6 - at, d.len()) bytes after the `at` already held.
            let mut take = 0;
            for (p, &b) in prefix.iter_mut().skip(at).zip(d) {
                *p = b;
                take += 1;
            }
            *have += take as u8; // take <= 6
            if *have < 6 {
                return;
            }
            let first = *prefix;
            self.other_prefix = ([0; 6], 0);
            if starts_with_client_hello(&first) {
                self.proto = Proto::Tls;
                let mut t = Box::new(TlsSession::default());
                t.feed(ctx, dir, &first, ts);
                t.feed(ctx, dir, d.get(take..).unwrap_or(&[]), ts);
                self.tls = Some(t);
                self.after_tls_feed(ctx);
                return;
            }
        }
        self.other_scanned = self
            .other_scanned
            .saturating_add(u32::try_from(d.len()).unwrap_or(u32::MAX));
        if u64::from(self.other_scanned) > OTHER_SCAN_LIMIT {
            self.proto = Proto::Ignore;
        }
    }

    /// After TLS bytes were fed: application records to the keyless inference, decrypted SMTP
    /// to the exact one.
    fn after_tls_feed(&mut self, ctx: &mut tls::Context) {
        if !ctx.app_records.is_empty() {
            let m = self.mail.get_or_insert_with(Box::default);
            for r in ctx.app_records.drain(..) {
                let inf = m
                    .inferred
                    .get_or_insert_with(|| MailInference::new(r.exact));
                match r.dir {
                    Dir::ToServer => inf.client_record(u64::from(r.plaintext), r.block),
                    Dir::ToClient => inf.server_record(),
                }
            }
        }
        let Some(t) = &mut self.tls else { return };
        let chunks = t.take_app_plaintext();
        if !chunks.is_empty() {
            let m = self.mail.get_or_insert_with(Box::default);
            let e = m
                .exact
                .get_or_insert_with(|| Box::new(MailStream::new(MailEvidence::Decrypted)));
            for (dir, pt) in chunks {
                e.feed(dir, &pt);
            }
            if let Some(code) = e.first_reply {
                t.first_reply(code);
            }
        }
        self.check_done();
    }

    fn check_done(&mut self) {
        if self.tls.as_ref().is_some_and(|t| t.lost_both()) {
            self.proto = Proto::Done;
        }
    }

    /// No event will come from this connection (not SMTP/TLS) and later bytes are ignored: the
    /// analyzers and what they hold (facts, buffers) are freed.
    pub(super) fn release(&mut self) {
        self.smtp = None;
        self.tls = None;
        self.mail = None;
        self.other_prefix = ([0; 6], 0);
    }

    pub(super) fn on_close(&mut self, dir: Dir) {
        if let Some(t) = &mut self.tls {
            t.on_close(dir);
        }
        self.check_done();
    }

    pub(super) fn reportable(&self) -> bool {
        if self.proto == Proto::Ignore {
            return false;
        }
        self.tls.as_ref().is_some_and(|t| t.saw_client_hello())
            || self.smtp.as_ref().is_some_and(Smtp::is_smtp)
    }

    /// Bytes held of data still arriving (partial TLS records and messages, SMTP lines).
    pub(super) fn buffered_bytes(&self) -> usize {
        let smtp = match &self.smtp {
            Some(Smtp::Live(s)) => s.buffered_bytes(),
            _ => 0,
        };
        smtp + self.tls.as_ref().map_or(0, |t| t.buffered_bytes())
    }

    /// The event's SMTP facts, when the dialogue proved to be SMTP.
    pub(super) fn smtp_facts(&self) -> Option<smtp::SmtpFacts> {
        self.smtp.as_ref().and_then(Smtp::facts)
    }

    /// An SMTP analyzer was started (the first bytes looked like SMTP), whatever it concluded.
    /// Without one, TLS facts mean TLS from the first byte (or after another protocol's STARTTLS).
    pub(super) fn smtp_started(&self) -> bool {
        self.smtp.is_some()
    }

    /// The event's TLS facts (with the reply codes of the SMTP dialogue inside TLS, when
    /// decrypted), once a ClientHello was seen.
    pub(super) fn tls_facts(&self) -> Option<TlsFacts> {
        self.tls.as_ref().filter(|t| t.saw_client_hello()).map(|t| {
            let mut f = t.facts();
            f.smtp_reply_after_tls = self
                .mail
                .as_ref()
                .and_then(|m| m.exact.as_deref())
                .filter(|e| e.facts().evidence == MailEvidence::Decrypted)
                .and_then(smtp::RepliesAfterTls::from_stream);
            f
        })
    }

    /// What happened to the mail, as far as the session went (ends its open transaction). Exact
    /// when the dialogue was plaintext or decrypted throughout, else inferred.
    pub(super) fn mail_facts(&mut self, tls: Option<&TlsFacts>) -> Option<MailFacts> {
        let Some(m) = self.mail.as_mut() else {
            // SMTP without TLS and without a transaction: its EHLO, no message
            return match &self.smtp {
                Some(Smtp::Live(s)) if s.is_smtp() && self.tls.is_none() => {
                    let mut f = MailFacts::new(MailEvidence::Plaintext);
                    f.ehlo_reply = s.ehlo_reply;
                    f.ehlo_accepted = s.ehlo_reply.map(|c| c < 400);
                    Some(f)
                }
                _ => None,
            };
        };
        let lost = self.tls.as_ref().is_some_and(|t| t.lost_any());
        let decryption_broke = self.tls.as_ref().is_some_and(|t| t.decryption_failed());
        let incomplete = m.gap || lost;
        let exact_usable = m
            .exact
            .as_ref()
            .is_some_and(|e| e.first_reply.is_some() && !decryption_broke);
        let mut facts = match (&mut m.exact, &mut m.inferred) {
            (Some(e), _) if exact_usable => {
                if incomplete {
                    e.on_gap();
                }
                e.finish()
            }
            (_, Some(i)) => i.finish(incomplete),
            _ => return None,
        };
        if tls.is_some_and(|t| t.outcome.result == OutcomeResult::ClosedAfterHandshake)
            && facts.transactions.is_empty()
        {
            facts.refused_at_ehlo();
        }
        Some(facts)
    }

    /// The flow layer's and the TLS analyzer's anomalies.
    pub(super) fn weirds(&self) -> AnomalySet {
        let mut weirds = self.weirds;
        if let Some(t) = &self.tls {
            weirds = weirds.union(t.weirds());
        }
        weirds
    }
}
