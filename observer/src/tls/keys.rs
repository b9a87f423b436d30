//! Key-log decryption inside a session: the decryptors per direction (TLS 1.3 handshake then
//! application traffic secrets; TLS 1.2 key block armed at each side's ChangeCipherSpec), and what
//! decrypted records feed back (handshake messages, alerts, SMTP replies after STARTTLS).

use super::decrypt::RecordDecryptor;
use super::facts::Evidence;
use super::hello::ServerHelloFacts;
use super::names::ContentType;
use super::resumption::{read_new_session_ticket, resume_key, ResumeBy};
use super::session::{Phase, TlsSession};
use super::{keylog, Context};
use crate::anomaly::Anomaly;
use crate::Dir;

/// Decrypted application-data chunks held for the connection at most.
const MAX_APP_CHUNKS: usize = 64;

/// Key-log decryption of one session. Boxed and only there when a key log is: most sessions have
/// none, and a handshaking connection's state must stay small.
#[derive(Debug)]
pub(super) struct Keys {
    pub client_random: [u8; 32],
    /// TLS 1.2: decryptors waiting for each side's ChangeCipherSpec.
    pub pending12: [Option<RecordDecryptor>; 2],
    /// Record decryption per direction.
    pub dec: [Option<RecordDecryptor>; 2],
    /// Decrypted application data not yet taken by the connection (SMTP after TLS).
    pub app_plaintext: Vec<(Dir, Vec<u8>)>,
    /// TLS ≤ 1.2: what the ClientHello offered to resume ([`super::resumption`]): its ticket's and
    /// its session ID's keys.
    pub offered: [Option<[u8; 32]>; 2],
    /// TLS ≤ 1.2: this session's master secret, once known (for the tickets it is given).
    pub master: Option<Box<[u8]>>,
    /// TLS ≤ 1.2: a renegotiation's ClientHello random (decrypted), for its keys.
    pub reneg_random: Option<[u8; 32]>,
    /// TLS 1.3: a post-handshake CertificateRequest was decrypted; the client's answer (up to its
    /// Finished) is still to come.
    pub pha_pending: bool,
}

impl Keys {
    pub fn new(client_random: [u8; 32]) -> Self {
        Keys {
            client_random,
            pending12: [None, None],
            dec: [None, None],
            app_plaintext: Vec::new(),
            offered: [None, None],
            master: None,
            reneg_random: None,
            pha_pending: false,
        }
    }
}

/// The `decryption` fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Decryption {
    /// No key log given.
    #[default]
    Off,
    NoKey,
    Failed,
    Ok,
}

impl Decryption {
    pub fn fact(self) -> Option<&'static str> {
        match self {
            Decryption::Off => None,
            Decryption::NoKey => Some("no_key"),
            Decryption::Failed => Some("failed"),
            Decryption::Ok => Some("ok"),
        }
    }
}

impl TlsSession {
    /// Decrypted application data since the last call (direction, plaintext).
    pub fn take_app_plaintext(&mut self) -> Vec<(Dir, Vec<u8>)> {
        self.keys
            .as_mut()
            .map(|k| std::mem::take(&mut k.app_plaintext))
            .unwrap_or_default()
    }

    /// Whether the connection still wants decrypted application data; when it stops wanting it,
    /// decryption stops (message content is never decrypted).
    pub fn want_app_data(&mut self, want: bool) {
        self.want_app_data = want;
        if !want {
            // From now on only records that can be alerts are decrypted.
            self.tail_check();
        }
    }

    pub(super) fn app_decrypting(&self) -> bool {
        self.want_app_data
            && self
                .keys
                .as_ref()
                .is_some_and(|k| k.dec[1].is_some() || k.pending12[1].is_some())
    }

    /// This direction's record decryption, when keys are known.
    pub(super) fn dec(&self, d: Dir) -> Option<&RecordDecryptor> {
        self.keys.as_ref().and_then(|k| d.of(&k.dec).as_ref())
    }

    /// The key log's secrets for this session.
    fn secrets<'c>(&self, ctx: &'c Context) -> Option<&'c keylog::Secrets> {
        ctx.keylog.get(&self.keys.as_ref()?.client_random)
    }

    /// After the ServerHello: arm decryption with the key log's secrets, if it has this session's.
    pub(super) fn keys_for_server_hello(&mut self, ctx: &mut Context, sh: &ServerHelloFacts) {
        let secrets = self.secrets(ctx);
        if sh.version == 0x0304 {
            let Some((c, s)) = secrets.and_then(|k| {
                Some((
                    k.client_handshake.as_deref()?,
                    k.server_handshake.as_deref()?,
                ))
            }) else {
                return;
            };
            let dec = [
                RecordDecryptor::tls13(sh.cipher, c),
                RecordDecryptor::tls13(sh.cipher, s),
            ];
            let unsupported = dec[0].is_none();
            if let Some(k) = self.keys.as_mut() {
                k.dec = dec;
            }
            if unsupported {
                self.weird(Anomaly::TlsDecryptUnsupportedSuite);
            }
            return;
        }
        // The key log's master secret, else (an abbreviated handshake) the one of the session
        // whose ticket or session ID this one resumes.
        let resumed = self.keys.as_ref().and_then(|k| {
            let sid = (!sh.session_id.is_empty())
                .then(|| resume_key(ResumeBy::SessionId, &sh.session_id))
                .filter(|sid| k.offered[1] == Some(*sid));
            [k.offered[0], sid]
                .into_iter()
                .flatten()
                .find_map(|key| ctx.resumption.get(&key))
        });
        let (Some(master), Some(sr)) = (
            secrets.and_then(|k| k.master.as_deref()).or(resumed),
            sh.random,
        ) else {
            return;
        };
        let master: Box<[u8]> = master.into();
        if !sh.session_id.is_empty() {
            ctx.resumption
                .insert(resume_key(ResumeBy::SessionId, &sh.session_id), &master);
        }
        let found = self.keys.as_mut().map(|k| {
            k.master = Some(master.clone());
            let pair = RecordDecryptor::tls12_pair(sh.cipher, &master, &k.client_random, &sr);
            let found = pair.is_some();
            if let Some((c, s)) = pair {
                k.pending12 = [Some(c), Some(s)];
            }
            found
        });
        if found == Some(false) {
            self.weird(Anomaly::TlsDecryptUnsupportedSuite);
        }
    }

    /// TLS ≤ 1.2 NewSessionTicket: a later session offering this ticket resumes this one's
    /// master secret.
    pub(super) fn new_session_ticket(&mut self, ctx: &mut Context, body: &[u8]) {
        let (Some(master), Some(ticket)) = (
            self.keys.as_ref().and_then(|k| k.master.as_deref()),
            read_new_session_ticket(body),
        ) else {
            return;
        };
        ctx.resumption
            .insert(resume_key(ResumeBy::Ticket, ticket), master);
    }

    /// TLS 1.2: the decryptor waiting for this side's ChangeCipherSpec takes over.
    pub(super) fn arm_tls12(&mut self, d: Dir) {
        if let Some(k) = self.keys.as_mut() {
            *d.of_mut(&mut k.dec) = d.of_mut(&mut k.pending12).take();
        }
    }

    /// TLS 1.2: drop the decryptor waiting for this side (the CCS came before a ServerHello).
    pub(super) fn drop_pending12(&mut self, d: Dir) {
        if let Some(k) = self.keys.as_mut() {
            *d.of_mut(&mut k.pending12) = None;
        }
    }

    /// One decrypted record (TLS 1.3: inner content type; TLS 1.2: the record's type).
    pub(super) fn decrypted_record(&mut self, ctx: &mut Context, dir: Dir, body: &[u8]) {
        let header = *self.side(dir).records.header();
        let Some(keys) = self.keys.as_mut() else {
            return;
        };
        let Some(dec) = dir.of_mut(&mut keys.dec).as_mut() else {
            return;
        };
        let Some((inner, pt)) = dec.open(&header, body) else {
            // Wrong key (or a record we cannot decrypt): fall back to what the lengths say.
            *dir.of_mut(&mut keys.dec) = None;
            *dir.of_mut(&mut keys.pending12) = None;
            self.decryption = Decryption::Failed;
            self.weird(Anomaly::TlsDecryptFailed);
            return;
        };
        if self.decryption != Decryption::Failed {
            self.decryption = Decryption::Ok;
        }
        match ContentType::from(inner) {
            ContentType::Handshake => self.handshake_bytes(ctx, dir, &pt, Evidence::Decrypted),
            ContentType::Alert => {
                if let [level, code] = *pt {
                    self.ending.decrypted_alert(dir, level, code);
                }
            }
            ContentType::ApplicationData
                if self.want_app_data && keys.app_plaintext.len() < MAX_APP_CHUNKS =>
            {
                keys.app_plaintext.push((dir, pt));
            }
            _ => {}
        }
    }

    /// A decrypted KeyUpdate (TLS 1.3, RFC 8446 §4.6.3): this direction's later records use the
    /// next traffic secret. A KeyUpdate before the Finished, or one we cannot follow, stops
    /// decryption of that direction (counted).
    pub(super) fn decrypted_key_update(&mut self, dir: Dir) {
        let finished = self.side(dir).phase == Phase::Finished && self.tls13();
        let Some(k) = self.keys.as_mut() else {
            return;
        };
        let slot = dir.of_mut(&mut k.dec);
        let updated = finished && slot.as_mut().is_some_and(RecordDecryptor::next_secret);
        if !updated {
            *slot = None;
            self.weird(Anomaly::TlsUnexpectedKeyUpdate);
        }
    }

    /// A decrypted Finished: TLS 1.3 switches this direction to its application traffic key.
    pub(super) fn decrypted_finished(&mut self, ctx: &Context, dir: Dir) {
        if self.post_handshake(dir) {
            // A post-handshake Finished (the client's answer to a post-handshake
            // CertificateRequest, RFC 8446 §4.6.2): sent under the application key, which stays.
            if let Some(k) = self.keys.as_mut() {
                k.pha_pending = false;
            }
            return;
        }
        self.side_mut(dir).phase = Phase::Finished;
        if !self.tls13() {
            return;
        }
        if dir == Dir::ToServer {
            self.flights.client_finished_decrypted();
        }
        let secret = self.secrets(ctx).and_then(|k| {
            if dir == Dir::ToServer {
                k.client_traffic0.as_deref()
            } else {
                k.server_traffic0.as_deref()
            }
        });
        // Application keys: for the SMTP replies while wanted, and for alerts (never for content).
        let dec = match (secret, self.cipher) {
            (Some(sec), Some(c)) => RecordDecryptor::tls13(c, sec),
            _ => None,
        };
        if let Some(k) = self.keys.as_mut() {
            *dir.of_mut(&mut k.dec) = dec;
        }
    }
}
