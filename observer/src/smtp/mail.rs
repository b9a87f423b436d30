//! What happened to the mail of one session (the event's `mail` object): the reply to the EHLO
//! after TLS, one entry per mail transaction (how far it got, its result) and per-session totals.
//!
//! [`MailTracker`] builds it exactly from commands and replies (plaintext SMTP, or SMTP decrypted
//! with keys): it is fed command verbs, reply codes and body byte counts, never addresses, header
//! or body bytes. The keyless inference over encrypted records (`smtp::infer`) fills the same
//! types with `evidence: inferred`.

use serde::Serialize;

/// Transactions kept per session in detail; later ones are only counted in the totals.
pub const MAX_TRANSACTIONS: usize = 16;
/// Reply codes kept per transaction for RCPT (and BDAT chunks); the counts go on.
pub const MAX_CODES: usize = 8;

named_enum! {
    /// How mail facts were learned.
    pub enum MailEvidence {
        /// From plaintext SMTP commands and replies.
        Plaintext = "plaintext",
        /// From SMTP decrypted with the session's keys.
        Decrypted = "decrypted",
        /// From the sizes and order of encrypted records (docs/inference.md, "Mail without keys").
        Inferred = "inferred",
    }
}

named_enum! {
    /// What became of one mail transaction.
    pub enum TxResult {
        /// The body was transferred and accepted (2xx after it; without keys: answered).
        Delivered = "delivered",
        /// MAIL FROM refused.
        RejectedMail = "rejected_mail",
        /// Every RCPT TO refused.
        RejectedRcpt = "rejected_rcpt",
        /// DATA or BDAT refused before the body.
        RejectedData = "rejected_data",
        /// 4xx/5xx after the body.
        RejectedAfterData = "rejected_after_data",
        /// Without keys: refused at MAIL, RCPT or DATA (which one cannot be seen), no body sent.
        RejectedBeforeData = "rejected_before_data",
        /// The client gave up (RSET, QUIT, close) although nothing was refused.
        Aborted = "aborted",
        /// Cannot be told from what was seen (the reason is in `unknown_reason`).
        Unknown = "unknown",
    }
}

impl TxResult {
    pub fn rejected(self) -> bool {
        matches!(
            self,
            TxResult::RejectedMail
                | TxResult::RejectedRcpt
                | TxResult::RejectedData
                | TxResult::RejectedAfterData
                | TxResult::RejectedBeforeData
        )
    }

    /// The SMTP stage of a rejection.
    pub fn stage(self) -> Option<Stage> {
        Some(match self {
            TxResult::RejectedMail => Stage::Mail,
            TxResult::RejectedRcpt => Stage::Rcpt,
            TxResult::RejectedData => Stage::Data,
            TxResult::RejectedAfterData => Stage::AfterData,
            TxResult::RejectedBeforeData => Stage::BeforeData,
            _ => return None,
        })
    }
}

named_enum! {
    /// Where in the SMTP dialogue mail was refused.
    pub enum Stage {
        /// The first command after TLS (EHLO) was refused, or the server ended the session after
        /// answering it (`tls.outcome = closed_after_handshake`).
        Ehlo = "ehlo",
        Mail = "mail",
        Rcpt = "rcpt",
        Data = "data",
        AfterData = "after_data",
        /// Without keys: MAIL, RCPT or DATA.
        BeforeData = "before_data",
    }
}

named_enum! {
    /// RFC 3463 enhanced status code subject of a refusal (`x.S.y`): the class only, never the text.
    pub enum StatusSubject {
        Other = "other",
        Addressing = "addressing",
        Mailbox = "mailbox",
        MailSystem = "mail_system",
        Network = "network",
        Protocol = "protocol",
        Content = "content",
        SecurityPolicy = "security_policy",
    }
}

impl StatusSubject {
    pub fn from_digit(d: u8) -> Option<StatusSubject> {
        Some(match d {
            0 => StatusSubject::Other,
            1 => StatusSubject::Addressing,
            2 => StatusSubject::Mailbox,
            3 => StatusSubject::MailSystem,
            4 => StatusSubject::Network,
            5 => StatusSubject::Protocol,
            6 => StatusSubject::Content,
            7 => StatusSubject::SecurityPolicy,
            _ => return None,
        })
    }
}

/// Reply codes kept with a count beyond [`MAX_CODES`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Codes {
    pub codes: Vec<u16>,
    pub count: u32,
}

impl Codes {
    fn push(&mut self, c: u16) {
        if self.codes.len() < MAX_CODES {
            self.codes.push(c);
        }
        self.count = self.count.saturating_add(1);
    }
}

/// One mail transaction (MAIL FROM to the reply after the body, or to its end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transaction {
    pub evidence: MailEvidence,
    /// Reply to MAIL FROM (exact evidence only).
    pub mail: Option<u16>,
    /// RCPT TO replies (exact evidence only).
    pub rcpt: Option<Codes>,
    /// Recipients accepted / refused (null without keys).
    pub rcpt_accepted: Option<u32>,
    pub rcpt_rejected: Option<u32>,
    /// `data` or `bdat` when the client asked to send the message (exact), or `inferred`.
    pub data_command: Option<&'static str>,
    /// Reply to DATA (354 when accepted); for BDAT the replies to each chunk.
    pub data: Option<u16>,
    pub bdat: Option<Codes>,
    /// The body was sent.
    pub body_transferred: bool,
    /// Approximate body size in bytes (exact: bytes up to the end-of-data line or the BDAT sizes;
    /// inferred: plaintext bytes of the records that carried it, commands included).
    pub body_bytes: Option<u64>,
    /// The reply after the body (exact evidence only).
    pub after_body: Option<u16>,
    pub result: TxResult,
    /// For a refusal with an enhanced status code: its subject (RFC 3463).
    pub refusal_subject: Option<StatusSubject>,
    /// Why the result is `unknown` (or why a refusal's stage is uncertain).
    pub unknown_reason: Option<&'static str>,
}

impl Transaction {
    pub fn new(evidence: MailEvidence) -> Self {
        Transaction {
            evidence,
            mail: None,
            rcpt: None,
            rcpt_accepted: None,
            rcpt_rejected: None,
            data_command: None,
            data: None,
            bdat: None,
            body_transferred: false,
            body_bytes: None,
            after_body: None,
            result: TxResult::Unknown,
            refusal_subject: None,
            unknown_reason: None,
        }
    }
}

/// The event's `mail` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailFacts {
    pub evidence: MailEvidence,
    /// Reply code to the EHLO/HELO after TLS (plaintext sessions: the last EHLO); exact only.
    pub ehlo_reply: Option<u16>,
    /// The EHLO after TLS was accepted: exact from its code; without keys, true when the
    /// server answered a later command, false when it ended the session after answering it.
    pub ehlo_accepted: Option<bool>,
    pub transactions: Vec<Transaction>,
    /// Transactions beyond [`MAX_TRANSACTIONS`], counted in the totals only.
    pub transactions_not_listed: u32,
    pub messages_delivered: u32,
    pub messages_rejected: u32,
    /// Transactions whose result is `unknown` or `aborted`.
    pub messages_other: u32,
    /// Stage of the first rejection in the session (or `ehlo`).
    pub rejection_stage: Option<Stage>,
    /// Replies to RSET (exact evidence only) and the QUIT reply, when seen.
    pub rset: Option<Codes>,
    pub quit: Option<u16>,
    /// The dialogue could not be followed to its end (gap, lost TLS sync, cut capture).
    pub incomplete: bool,
}

impl MailFacts {
    pub fn new(evidence: MailEvidence) -> Self {
        MailFacts {
            evidence,
            ehlo_reply: None,
            ehlo_accepted: None,
            transactions: Vec::new(),
            transactions_not_listed: 0,
            messages_delivered: 0,
            messages_rejected: 0,
            messages_other: 0,
            rejection_stage: None,
            rset: None,
            quit: None,
            incomplete: false,
        }
    }

    /// A transaction is over: count it, keep it when there is room.
    pub fn push(&mut self, t: Transaction) {
        match t.result {
            TxResult::Delivered => self.messages_delivered += 1,
            r if r.rejected() => {
                self.messages_rejected += 1;
                if self.rejection_stage.is_none() {
                    self.rejection_stage = r.stage();
                }
            }
            _ => self.messages_other += 1,
        }
        if self.transactions.len() < MAX_TRANSACTIONS {
            // one at a time: most sessions carry one message (a Vec would reserve four)
            self.transactions.reserve_exact(1);
            self.transactions.push(t);
        } else {
            self.transactions_not_listed = self.transactions_not_listed.saturating_add(1);
        }
    }

    /// The session was refused at its first command after TLS.
    pub fn refused_at_ehlo(&mut self) {
        self.ehlo_accepted = Some(false);
        if self.rejection_stage.is_none() {
            self.rejection_stage = Some(Stage::Ehlo);
        }
    }

    /// Transactions in total (listed and not).
    pub fn transaction_count(&self) -> u32 {
        self.messages_delivered + self.messages_rejected + self.messages_other
    }
}

/// A command as the tracker needs it: the verb, and for BDAT its size and LAST flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Hello,
    Mail,
    Rcpt,
    Data,
    Bdat { size: u64, last: bool },
    Rset,
    Quit,
    StartTls,
    Other,
}

impl Command {
    /// From a command line (only the verb, and BDAT's numbers, are looked at).
    pub fn parse(line: &[u8]) -> Command {
        let mut words = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let verb = words.next().unwrap_or_default();
        let is = |v: &[u8]| verb.eq_ignore_ascii_case(v);
        if is(b"EHLO") || is(b"HELO") || is(b"LHLO") {
            Command::Hello
        } else if is(b"MAIL") {
            Command::Mail
        } else if is(b"RCPT") {
            Command::Rcpt
        } else if is(b"DATA") {
            Command::Data
        } else if is(b"BDAT") {
            let size = words
                .next()
                .and_then(|w| std::str::from_utf8(w).ok())
                .and_then(|w| w.parse().ok());
            match size {
                Some(size) => Command::Bdat {
                    size,
                    last: words
                        .next()
                        .is_some_and(|w| w.eq_ignore_ascii_case(b"LAST")),
                },
                None => Command::Other, // a BDAT without a size is refused (501): no body follows
            }
        } else if is(b"RSET") {
            Command::Rset
        } else if is(b"QUIT") {
            Command::Quit
        } else if is(b"STARTTLS") {
            Command::StartTls
        } else {
            Command::Other
        }
    }
}

/// A final reply line: the code and the enhanced status subject, when the text starts with one.
pub fn enhanced_subject(text_after_code: &[u8]) -> Option<StatusSubject> {
    // "5.7.1 ...": class.subject.detail
    match *text_after_code {
        [c @ (b'2' | b'4' | b'5'), b'.', s @ b'0'..=b'9', b'.', ..] if c >= b'2' => {
            StatusSubject::from_digit(s - b'0')
        }
        _ => None,
    }
}

/// Exact transaction tracking from commands and final replies, in order (SMTP pairs replies with
/// commands in order, pipelined or not).
#[derive(Debug)]
pub struct MailTracker {
    pub facts: MailFacts,
    /// Boxed: between transactions (most of a session's life) it costs a pointer.
    open: Option<Box<Transaction>>,
    /// Commands awaiting their reply, in order (capped: a client that pipelines more is odd).
    pending: std::collections::VecDeque<Command>,
    /// The body of the open transaction is being sent (after 354, or BDAT chunks).
    pub(crate) in_body: bool,
    /// The next reply answers the body (its end-of-data line).
    body_reply_expected: bool,
    hellos: u32,
}

const MAX_PENDING: usize = 128;

impl MailTracker {
    pub fn new(evidence: MailEvidence) -> Self {
        MailTracker {
            facts: MailFacts::new(evidence),
            open: None,
            pending: std::collections::VecDeque::new(),
            in_body: false,
            body_reply_expected: false,
            hellos: 0,
        }
    }

    fn tx(&mut self) -> &mut Transaction {
        let ev = self.facts.evidence;
        self.open
            .get_or_insert_with(|| Box::new(Transaction::new(ev)))
    }

    /// A command was sent. False when too many await their replies (the command is dropped).
    pub fn command(&mut self, c: Command) -> bool {
        if self.pending.len() >= MAX_PENDING {
            return false;
        }
        match c {
            // A MAIL while a transaction is open (no RSET): the old one ended unanswered.
            Command::Mail if self.open.as_ref().is_some_and(|t| t.mail.is_some()) => {
                self.close_open(
                    TxResult::Aborted,
                    Some("new MAIL before the transaction ended"),
                );
            }
            Command::Bdat { size, .. } => {
                let t = self.tx();
                t.data_command = Some("bdat");
                t.body_transferred = true;
                t.body_bytes = Some(t.body_bytes.unwrap_or(0).saturating_add(size));
            }
            Command::Data => self.tx().data_command = Some("data"),
            _ => {}
        }
        self.pending.push_back(c);
        true
    }

    /// The body (after 354) is over: `bytes` were sent before the end-of-data line.
    pub fn body_end(&mut self, bytes: u64) {
        self.in_body = false;
        let t = self.tx();
        t.body_transferred = true;
        t.body_bytes = Some(bytes);
        self.body_reply_expected = true;
    }

    /// A final reply line (`code`, enhanced status subject if any).
    pub fn reply(&mut self, code: u16, subject: Option<StatusSubject>) {
        let refused = code >= 400;
        if std::mem::take(&mut self.body_reply_expected) {
            let t = self.tx();
            t.after_body = Some(code);
            let res = if refused {
                TxResult::RejectedAfterData
            } else {
                TxResult::Delivered
            };
            self.refusal(subject, refused);
            self.close_open(res, None);
            return;
        }
        let Some(cmd) = self.pending.pop_front() else {
            return; // a reply nobody asked for (the banner is not fed here)
        };
        match cmd {
            Command::Hello => {
                self.hellos += 1;
                self.facts.ehlo_reply = Some(code);
                self.facts.ehlo_accepted = Some(!refused);
                if refused && self.hellos == 1 {
                    self.facts.refused_at_ehlo();
                }
            }
            Command::Mail => {
                let t = self.tx();
                t.mail = Some(code);
                self.refusal(subject, refused);
                if refused {
                    self.close_open(TxResult::RejectedMail, None);
                }
            }
            Command::Rcpt => {
                if self.open.is_none() {
                    return; // RCPT after a refused MAIL (pipelined): 503, no transaction
                }
                let t = self.tx();
                t.rcpt.get_or_insert_with(Codes::default).push(code);
                let (a, r) = (t.rcpt_accepted.get_or_insert(0), refused);
                if !r {
                    *a += 1;
                }
                let rej = t.rcpt_rejected.get_or_insert(0);
                if r {
                    *rej += 1;
                }
                self.refusal(subject, refused);
            }
            Command::Data => {
                if self.open.is_none() {
                    return;
                }
                let t = self.tx();
                t.data = Some(code);
                if code == 354 {
                    self.in_body = true;
                } else {
                    let res = Self::before_body_result(t);
                    self.refusal(subject, refused);
                    self.close_open(res, None);
                }
            }
            Command::Bdat { last, .. } => {
                let Some(t) = self.open.as_mut() else {
                    return;
                };
                t.bdat.get_or_insert_with(Codes::default).push(code);
                if refused || last {
                    t.after_body = Some(code);
                    let before_body =
                        t.rcpt_accepted.unwrap_or(0) == 0 || t.mail.is_none_or(|m| m >= 400);
                    let res = match (refused, before_body) {
                        (false, _) => TxResult::Delivered,
                        (true, true) => Self::before_body_result(t),
                        (true, false) => TxResult::RejectedAfterData,
                    };
                    self.refusal(subject, refused);
                    self.close_open(res, None);
                }
            }
            Command::Rset => {
                self.facts
                    .rset
                    .get_or_insert_with(Codes::default)
                    .push(code);
                self.end_before_body("RSET before the body");
            }
            Command::Quit => {
                self.facts.quit = Some(code);
                self.end_before_body("QUIT before the body");
            }
            Command::StartTls | Command::Other => {}
        }
    }

    /// A transaction that ended before its body: the stage of the refusal.
    fn before_body_result(t: &Transaction) -> TxResult {
        if t.mail.is_some_and(|m| m >= 400) {
            TxResult::RejectedMail
        } else if t.rcpt_accepted.unwrap_or(0) == 0 && t.rcpt_rejected.unwrap_or(0) > 0 {
            TxResult::RejectedRcpt
        } else {
            TxResult::RejectedData
        }
    }

    /// The client ended an open transaction before its body: refused recipients, or gave up.
    fn end_before_body(&mut self, why: &'static str) {
        let Some(t) = self.open.as_ref() else { return };
        if t.rcpt_rejected.unwrap_or(0) > 0 && t.rcpt_accepted.unwrap_or(0) == 0 {
            self.close_open(TxResult::RejectedRcpt, None);
        } else {
            self.close_open(TxResult::Aborted, Some(why));
        }
    }

    fn refusal(&mut self, subject: Option<StatusSubject>, refused: bool) {
        if refused {
            if let Some(t) = self.open.as_mut() {
                if t.refusal_subject.is_none() {
                    t.refusal_subject = subject;
                }
            }
        }
    }

    fn close_open(&mut self, res: TxResult, why: Option<&'static str>) {
        if let Some(mut t) = self.open.take() {
            t.result = res;
            if res == TxResult::Aborted || res == TxResult::Unknown {
                t.unknown_reason = why;
            }
            self.facts.push(*t);
        }
        self.in_body = false;
    }

    /// The session ended (or analysis stopped): an open transaction ends as seen.
    pub fn finish(&mut self, incomplete: bool) -> MailFacts {
        let mut tracker = std::mem::replace(self, MailTracker::new(self.facts.evidence));
        if let Some(t) = tracker.open.as_ref() {
            if t.body_transferred {
                tracker.close_open(TxResult::Unknown, Some("no reply after the body was seen"));
            } else if t.mail.is_none() {
                tracker.close_open(
                    TxResult::Unknown,
                    Some("the session ended before the reply to MAIL"),
                );
            } else {
                tracker.end_before_body("the session ended before the body");
            }
        }
        tracker.facts.incomplete |= incomplete;
        tracker.facts
    }
}
