//! Mail without keys: transactions inferred from the sizes and order of encrypted application
//! records after the TLS handshake (rules and measured accuracy in docs/inference.md, "Mail
//! without keys"). Sans-IO and constant memory: it is told each record's direction and plaintext
//! size estimate, and the session's end.
//!
//! SMTP is lock step: the client writes, the server answers. A *turn* is a burst of client records
//! and the server records answering it (server records before any client record — TLS 1.3
//! session tickets — answer nothing). The first turn is the EHLO. After it, client turns are read
//! by what SMTP allows them to carry:
//! - **bare verb**: 4 to 7 plaintext bytes (`DATA`, `QUIT`, `RSET`, `NOOP` + CRLF, a bare LF or
//!   a stray CR; the shortest command with an argument, `HELO a` CRLF, is 8), known only when the
//!   cipher's overhead is exact (AEAD);
//! - **bulk**: more than 512 bytes, the longest command line (RFC 5321 §4.5.3.1.4): a message
//!   (or BDAT with its data);
//! - **command**: anything else (one command, or a pipelined group MAIL/RCPT/DATA).
//!
//! A body is a bulk turn; a turn after a bare verb that opened the way to it (DATA); or a turn
//! after the transaction's commands that no RCPT line could fill (> 268 bytes: `RCPT TO:<` + a
//! 256-octet path + `>` CRLF, RFC 5321 §4.5.3.1.3). A body the server answered is `delivered`
//! (a refusal after the body looks the same without keys: documented limit). A transaction that
//! ends (bare verb: RSET/QUIT, or the end of the session) without a body is
//! `rejected_before_data`.

use super::mail::{MailEvidence, MailFacts, Transaction, TxResult, MAX_TRANSACTIONS};

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF.
const LONGEST_COMMAND: u64 = 512;
/// `RCPT TO:<` + a 256-octet path (RFC 5321 §4.5.3.1.3) + `>` CRLF.
const LONGEST_RCPT: u64 = 9 + 256 + 3;
/// `MAIL FROM:<` + a 256-octet path + `>` CRLF.
const LONGEST_MAIL: u64 = 11 + 256 + 3;
/// `DATA`, `QUIT`, `RSET`, `NOOP` with CRLF (6), a bare LF (5) or a stray CR (7): shorter than
/// any command with an argument (`HELO a` CRLF is 8).
const BARE_VERB: std::ops::RangeInclusive<u64> = 4..=7;

/// A decision that waits for the next turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    /// A bare verb: DATA, or RSET/NOOP/QUIT.
    Bare,
    /// A bare verb in a transaction that could have reached DATA, then a turn `x` no longer than
    /// a MAIL line: DATA and a small body, or RSET and a new MAIL.
    AfterBare {
        x: u64,
        answered: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    BareVerb,
    Bulk,
    Command,
}

/// An inferred transaction as held during the session (the event's form is built at the end).
#[derive(Debug, Clone, Copy)]
struct Held {
    result: TxResult,
    /// Plaintext bytes of the body turn (0: no body).
    body: u32,
    unanswered: bool,
}

#[derive(Debug)]
pub struct MailInference {
    /// Transactions so far (the first [`MAX_TRANSACTIONS`]) and the count of the rest by result.
    held: Vec<Held>,
    more: [u32; 3],
    ehlo_accepted: Option<bool>,
    incomplete: bool,
    /// Plaintext bytes per record are exact (AEAD overhead known, no padding assumed).
    exact: bool,
    /// The client pads its records to blocks (TLS 1.3, mbedTLS): sizes are upper bounds.
    block: bool,
    /// Client bytes of the turn being written, and whether one is.
    burst: u64,
    burst_open: bool,
    turns: u32,
    /// An open transaction: its command turns so far, and the size of the first (its MAIL).
    open: Option<(u16, u64)>,
    /// A turn whose meaning depends on the next one.
    pending: Pending,
    /// The last body may go on in the next bulk turn (BDAT chunks after lock-step commands).
    continuable: bool,
    ended: bool,
}

impl MailInference {
    /// `exact`: the cipher's per-record overhead is exact (AEAD).
    pub fn new(exact: bool) -> Self {
        MailInference {
            held: Vec::new(),
            more: [0; 3],
            ehlo_accepted: None,
            incomplete: false,
            exact,
            block: false,
            burst: 0,
            burst_open: false,
            turns: 0,
            open: None,
            pending: Pending::None,
            continuable: false,
            ended: false,
        }
    }

    /// An application record of the client with `len` plaintext bytes (estimate; with `block`
    /// padding an upper bound, at most a block above).
    pub fn client_record(&mut self, len: u64, block: bool) {
        if self.ended {
            return;
        }
        self.block = block;
        if !self.burst_open {
            self.burst_open = true;
            self.burst = 0;
        }
        self.burst = self.burst.saturating_add(len);
    }

    /// An application record of the server: it answers the client's turn, if one is waiting.
    pub fn server_record(&mut self) {
        if self.ended || !self.burst_open {
            return;
        }
        self.burst_open = false;
        self.turn(self.burst, true);
    }

    /// Turns answered so far.
    pub fn turns(&self) -> u32 {
        self.turns
    }

    fn kind(&self, bytes: u64) -> Kind {
        // block-padded: a turn of one block (≤ 15 bytes with its type byte) holds no command with
        // an argument that a transaction's later turns send (RCPT lines are longer)
        let one_block = self.block && (1..u64::from(crate::tls::inference::BLOCK)).contains(&bytes);
        if (self.exact && BARE_VERB.contains(&bytes)) || one_block {
            Kind::BareVerb
        } else if bytes > LONGEST_COMMAND {
            Kind::Bulk
        } else {
            Kind::Command
        }
    }

    fn turn(&mut self, bytes: u64, answered: bool) {
        self.turns = self.turns.saturating_add(1);
        if self.turns == 1 {
            return; // the EHLO (its fate: `finish`)
        }
        if self.turns >= 2 && answered {
            self.ehlo_accepted = Some(true); // the server went on after answering it
        }
        let kind = self.kind(bytes);
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => {}
            Pending::Bare => {
                // DATA alone (lock step) comes after MAIL and at least one RCPT, each a turn;
                // after a pipelined group (one turn) a bare verb is RSET/NOOP/QUIT.
                let may_be_data = self.open.is_some_and(|(cmds, _)| cmds >= 2);
                if may_be_data && kind != Kind::BareVerb {
                    if kind == Kind::Bulk || bytes > LONGEST_MAIL {
                        self.body(bytes, answered);
                    } else {
                        self.pending = Pending::AfterBare { x: bytes, answered };
                    }
                    return;
                }
                // it was RSET or NOOP: the transaction ended without a body
                self.end_without_body();
            }
            Pending::AfterBare { x, answered: xa } => {
                if kind == Kind::BareVerb {
                    // DATA, a small body, then QUIT/RSET
                    self.body(x, xa);
                } else {
                    // RSET, then `x` was the next MAIL (and this turn its RCPT…)
                    self.end_without_body();
                    self.open = Some((1, x));
                }
            }
        }
        if kind != Kind::Bulk {
            self.continuable = false;
        }
        match kind {
            Kind::BareVerb => self.pending = Pending::Bare,
            Kind::Bulk if self.continuable => self.more_body(bytes, answered),
            Kind::Bulk => self.body(bytes, answered),
            Kind::Command => match self.open {
                Some((n, _)) if n >= 1 && bytes > LONGEST_RCPT => self.body(bytes, answered),
                Some((n, first)) => self.open = Some((n.saturating_add(1), first)),
                // words the server never answered (it had ended the session) open nothing
                None if !answered => {}
                None => self.open = Some((1, bytes)),
            },
        }
    }

    /// Another chunk of the last body (BDAT): the message's fate is the last chunk's.
    fn more_body(&mut self, bytes: u64, answered: bool) {
        if let Some(h) = self.held.last_mut() {
            h.body = h
                .body
                .saturating_add(u32::try_from(bytes).unwrap_or(u32::MAX));
            h.unanswered = !answered;
            h.result = if answered {
                TxResult::Delivered
            } else {
                TxResult::Unknown
            };
        }
    }

    fn push(&mut self, h: Held) {
        if self.held.len() < MAX_TRANSACTIONS {
            self.held.reserve_exact(1);
            self.held.push(h);
        } else {
            let i = match h.result {
                TxResult::Delivered => 0,
                r if r.rejected() => 1,
                _ => 2,
            };
            if let Some(n) = self.more.get_mut(i) {
                *n = n.saturating_add(1);
            }
        }
    }

    fn body(&mut self, bytes: u64, answered: bool) {
        // chunks may follow a body sent after commands of its own (lock-step BDAT)
        self.continuable = self.open.is_some();
        self.open = None;
        self.push(Held {
            result: if answered {
                TxResult::Delivered
            } else {
                TxResult::Unknown
            },
            body: u32::try_from(bytes).unwrap_or(u32::MAX),
            unanswered: !answered,
        });
    }

    fn end_without_body(&mut self) {
        if self.open.take().is_some() {
            self.push(Held {
                result: TxResult::RejectedBeforeData,
                body: 0,
                unanswered: false,
            });
        }
    }

    /// The session ended (close, alert, end of input) or could not be followed (`incomplete`).
    pub fn finish(&mut self, incomplete: bool) -> MailFacts {
        if !self.ended {
            self.ended = true;
            if self.burst_open {
                self.burst_open = false;
                self.turn(self.burst, false);
            }
            match std::mem::replace(&mut self.pending, Pending::None) {
                // the last bare verb was QUIT (or RSET before the end)
                Pending::Bare => self.end_without_body(),
                // DATA and a small body, then the end
                Pending::AfterBare { x, answered } => self.body(x, answered),
                Pending::None => {}
            }
            if self.open.is_some() {
                if incomplete {
                    self.open = None;
                    self.push(Held {
                        result: TxResult::Unknown,
                        body: 0,
                        unanswered: false,
                    });
                } else {
                    self.end_without_body();
                }
            }
            self.incomplete = incomplete;
        }
        let mut f = MailFacts::new(MailEvidence::Inferred);
        f.ehlo_accepted = self.ehlo_accepted;
        f.incomplete = self.incomplete;
        for h in &self.held {
            let mut t = Transaction::new(MailEvidence::Inferred);
            t.result = h.result;
            if h.body > 0 {
                t.data_command = Some("inferred");
                t.body_transferred = true;
                t.body_bytes = Some(u64::from(h.body));
            }
            if h.result == TxResult::Unknown {
                t.unknown_reason = Some(if h.unanswered {
                    "the session ended before the reply to the body"
                } else {
                    "the dialogue could not be followed to its end"
                });
            }
            f.push(t);
        }
        f.messages_delivered += self.more[0];
        f.messages_rejected += self.more[1];
        f.messages_other += self.more[2];
        f.transactions_not_listed = self.more.iter().sum();
        f
    }
}

/// Plaintext bytes of an application record of `len` bytes: `len` minus the cipher's overhead,
/// and whether that is exact (AEAD; TLS 1.3 padding is assumed absent).
pub fn plaintext_len(
    len: usize,
    tls13: bool,
    cipher: Option<u16>,
    cipher_name: &str,
) -> (u64, bool) {
    let overhead = if tls13 {
        Some(if cipher == Some(0x1305) { 9 } else { 17 })
    } else if cipher_name.contains("CCM_8") {
        Some(8 + 8)
    } else if cipher_name.contains("GCM") || cipher_name.contains("CCM") {
        Some(8 + 16)
    } else if cipher_name.contains("CHACHA20") {
        Some(16)
    } else {
        None
    };
    match overhead {
        Some(o) => ((len as u64).saturating_sub(o), true),
        // CBC: IV, MAC and padding; at least 16 + 20 + 1
        None => ((len as u64).saturating_sub(37), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (client bytes, answered) turns after the EHLO turn.
    fn run(turns: &[u64], last_answered: bool) -> MailFacts {
        let mut m = MailInference::new(true);
        m.client_record(20, false); // EHLO
        m.server_record();
        for (i, &b) in turns.iter().enumerate() {
            m.client_record(b, false);
            if i + 1 < turns.len() || last_answered {
                m.server_record();
            }
        }
        m.finish(false)
    }

    fn results(f: &MailFacts) -> Vec<TxResult> {
        f.transactions.iter().map(|t| t.result).collect()
    }

    #[test]
    fn lock_step_delivery() {
        // MAIL, RCPT, DATA, body, QUIT
        let f = run(&[30, 25, 6, 90, 6], true);
        assert_eq!(results(&f), [TxResult::Delivered]);
        assert_eq!(f.ehlo_accepted, Some(true));
    }

    #[test]
    fn pipelined_delivery_and_refusal() {
        let f = run(&[70, 2000, 6], true);
        assert_eq!(results(&f), [TxResult::Delivered]);
        let f = run(&[70, 6], true);
        assert_eq!(results(&f), [TxResult::RejectedBeforeData]);
        // two messages on one connection, then QUIT
        let f = run(&[70, 900, 70, 40_000, 6], true);
        assert_eq!(results(&f), [TxResult::Delivered, TxResult::Delivered]);
        // refused group, RSET, a second group delivered
        let f = run(&[70, 6, 70, 900, 6], true);
        assert_eq!(
            results(&f),
            [TxResult::RejectedBeforeData, TxResult::Delivered]
        );
    }

    #[test]
    fn lock_step_rcpt_refused_then_rset_and_a_second_message() {
        // MAIL, RCPT (refused), RSET, MAIL, RCPT, DATA, body, QUIT
        let f = run(&[30, 25, 6, 30, 25, 6, 300, 6], true);
        assert_eq!(
            results(&f),
            [TxResult::RejectedBeforeData, TxResult::Delivered]
        );
        // refused at DATA (no valid recipients), then QUIT
        let f = run(&[30, 25, 6, 6], true);
        assert_eq!(results(&f), [TxResult::RejectedBeforeData]);
    }

    #[test]
    fn bdat_and_unanswered_body() {
        let f = run(&[30, 25, 5000], true);
        assert_eq!(results(&f), [TxResult::Delivered]);
        let f = run(&[70, 5000], false);
        assert_eq!(results(&f), [TxResult::Unknown]);
    }

    #[test]
    fn only_ehlo() {
        let mut m = MailInference::new(true);
        m.client_record(20, false);
        m.server_record();
        let f = m.finish(false);
        assert!(f.transactions.is_empty());
        assert_eq!(f.ehlo_accepted, None);
    }
}
