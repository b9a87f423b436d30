//! How a handshake ended (`tls.outcome`; rules in ARCHITECTURE.md, "Outcome"): the end signals a
//! session sees (alerts, TCP closes) and the result they give.

use super::facts::{Alert, OutcomeResult};
use super::names::{alert_level_name, alert_name};
use crate::Dir;

/// Alerts kept per session; the rest are counted (weird `tls_too_many_alerts`).
pub const MAX_ALERTS: usize = 8;

/// The side that sent something, as the event names it.
pub fn sender(d: Dir) -> &'static str {
    match d {
        Dir::ToServer => "client",
        Dir::ToClient => "server",
    }
}

/// An alert as seen: numbers, named only for the event.
#[derive(Debug, Clone, Copy)]
pub struct RawAlert {
    pub sender: Dir,
    pub encrypted: bool,
    /// Level and description; None while encrypted.
    pub level: Option<u8>,
    pub code: Option<u8>,
}

impl RawAlert {
    pub fn encrypted(sender: Dir) -> Self {
        RawAlert {
            sender,
            encrypted: true,
            level: None,
            code: None,
        }
    }

    pub fn fatal(&self) -> bool {
        self.level == Some(2)
    }

    pub fn facts(&self) -> Alert {
        Alert {
            level: self.level.map(alert_level_name),
            description: self.code.map(alert_name),
            code: self.code,
            sender: sender(self.sender),
            encrypted: self.encrypted,
        }
    }
}

/// Where the handshake stood when an end signal came.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub client_hello: bool,
    pub server_hello: bool,
    /// Both sides finished (as far as the wire shows).
    pub complete: bool,
    /// TLS 1.3: the client's flight is over (the server's next record decides).
    pub tls13_client_flight_over: bool,
    /// Server reply turns after the handshake (see `TlsSession`).
    pub server_turns: u8,
    /// With keys: the server's first SMTP reply after TLS was 4xx/5xx.
    pub first_reply_refused: bool,
    /// The analysis was already over.
    pub done: bool,
}

/// The end signals of one session.
#[derive(Debug, Default)]
pub struct Ending {
    closed_first: Option<Dir>,
    /// The server ended (alert or close) after the handshake having answered at most the first
    /// command after TLS.
    server_ended_early: bool,
    /// The client ended the session first (alert or close) after the handshake: not a rejection.
    client_ended: bool,
    failed_before_complete: bool,
    alerts: Vec<RawAlert>,
}

impl Ending {
    /// Keeps the first [`MAX_ALERTS`] alerts (a peer may send warnings without end); false when
    /// the alert was dropped.
    pub fn add_alert(&mut self, a: RawAlert) -> bool {
        if self.alerts.len() < MAX_ALERTS {
            self.alerts.push(a);
            true
        } else {
            false
        }
    }

    /// A decrypted alert fills in the one the record layer recorded as encrypted.
    pub fn decrypted_alert(&mut self, sender: Dir, level: u8, code: u8) {
        if let Some(a) = self
            .alerts
            .iter_mut()
            .rev()
            .find(|a| a.sender == sender && a.encrypted && a.code.is_none())
        {
            a.level = Some(level);
            a.code = Some(code);
        }
    }

    #[cfg(test)]
    pub fn alerts(&self) -> &[RawAlert] {
        &self.alerts
    }

    /// The server ended the session (close, or a fatal/encrypted alert). After the handshake, a
    /// server that answered at most one command (or, with keys, refused the first) rejected the
    /// client right after TLS, whatever the client wrote meanwhile. True: the analysis is over.
    fn server_end(&mut self, p: &Progress) -> bool {
        if p.complete {
            let at_most_one_answer = p.server_turns <= 1 || p.first_reply_refused;
            if at_most_one_answer && !p.done && !self.client_ended {
                self.server_ended_early = true;
                return true;
            }
        } else if p.client_hello {
            self.failed_before_complete = true;
            return true;
        }
        false
    }

    /// An alert from `dir` (`fatal_or_unknown`: fatal, close_notify, or encrypted). True: the
    /// analysis is over.
    pub fn on_alert(&mut self, dir: Dir, fatal_or_unknown: bool, p: &Progress) -> bool {
        if dir == Dir::ToClient {
            if p.tls13_client_flight_over && !p.complete {
                // TLS 1.3: an alert right after the client's flight (e.g. certificate_required).
                self.failed_before_complete = true;
                return true;
            }
            if fatal_or_unknown {
                return self.server_end(p);
            }
        } else if fatal_or_unknown && !p.complete {
            self.failed_before_complete = true;
        } else if p.complete {
            self.client_ended = true;
        }
        false
    }

    /// The TCP connection was closed (FIN or RST) by `dir`'s sender. True: the analysis is over.
    pub fn on_close(&mut self, dir: Dir, p: &Progress) -> bool {
        if self.closed_first.is_none() {
            self.closed_first = Some(dir);
        }
        if dir == Dir::ToClient {
            return self.server_end(p);
        }
        if !p.complete && p.server_hello {
            self.failed_before_complete = true;
        } else if p.complete {
            self.client_ended = true;
        }
        false
    }

    /// The result, and the alert that explains it (none when established).
    pub fn result(&self, complete: bool, client_hello: bool) -> (OutcomeResult, Option<Alert>) {
        let result = if complete {
            if self.server_ended_early {
                OutcomeResult::ClosedAfterHandshake
            } else {
                OutcomeResult::Established
            }
        } else if self.failed_before_complete
            || self.alerts.iter().any(RawAlert::fatal)
            || (self.closed_first.is_some() && client_hello)
        {
            OutcomeResult::HandshakeFailed
        } else {
            OutcomeResult::Incomplete
        };
        let alert = self
            .alerts
            .iter()
            .find(|a| a.fatal() || a.encrypted)
            .or_else(|| self.alerts.first())
            .map(RawAlert::facts)
            .filter(|_| result != OutcomeResult::Established);
        (result, alert)
    }

    /// Who closed the TCP connection first.
    pub fn closed_by(&self) -> Option<&'static str> {
        self.closed_first.map(sender)
    }
}
