//! s2n-peer: an SMTP STARTTLS peer on s2n-tls (the `s2n-tls` crate, with aws-lc as its libcrypto
//! through aws-lc-rs), used by captures/generate.sh to put s2n-tls on the wire next to the other
//! stacks.
//!
//! client: connect, plaintext EHLO + STARTTLS, TLS handshake (1.2 or 1.3; client auth optional:
//!         the configured chain is sent when a certificate is requested, an empty Certificate
//!         otherwise), then EHLO / MAIL / RCPT / DATA / body / QUIT over TLS; a refusal is logged.
//! server: accept one connection, 220 banner, EHLO advertising STARTTLS, 220 to STARTTLS, TLS
//!         (server.chain.pem; client certificate none / ask = S2N_CERT_AUTH_OPTIONAL / require =
//!         S2N_CERT_AUTH_REQUIRED, trusted against root.cert.pem; s2n checks the clientAuth EKU
//!         ("intent")), then answer the SMTP dialogue inside TLS.
//!
//! TLS versions by security policy: 1.3 "AWS-CRT-SDK-TLSv1.3", 1.2 "ELBSecurityPolicy-TLS-1-2-2017-01",
//! any "default_tls13"; `--policy NAME` names another (a server on "20230317", P-256/P-384/P-521
//! only, answers a client that key-shares X25519 with a HelloRetryRequest). Both write an NSS key log (--keylog PATH, s2n_config_set_key_log_cb).
//! client: `--sessions N` makes N connections, each offering the session ticket the previous one
//! received (TLS 1.3 NewSessionTicket after the handshake, TLS 1.2 NewSessionTicket in it).
//! Blinding is self-service (no 10-30 s delay after an error). Lab use only.
//! Log lines the capture script and the tests read: "TLS established: ... client certificates: N"
//! and "TLS handshake failed: ...".

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use s2n_tls::callbacks::{SessionTicket, SessionTicketCallback, VerifyHostNameCallback};
use s2n_tls::config::Config;
use s2n_tls::connection::Connection;
use s2n_tls::enums::{Blinding, ClientAuthType, Mode};
use s2n_tls::security::Policy;

/// The last session ticket the server gave the client (`--sessions`).
static TICKET: Mutex<Option<Vec<u8>>> = Mutex::new(None);

use peer_smtp::{Opts, Res};

const USAGE: &str = "usage: s2n-peer client|server --port N [--host 127.0.0.1] [--bind 127.0.0.2]
  [--tls 1.2|1.3|any] [--ca root.cert.pem] [--sni mx.lab.test] [--cert chain.pem --key key.pem]
  [--keylog PATH] [--policy S2N-SECURITY-POLICY]
  client: [--implicit] (TLS from the start, no SMTP: one line written, one read, then close)
          [--sessions N] (N connections; each offers the previous one's ticket: resumption)
  server: [--client-auth none|ask|require] (cert/key default server.chain.pem / server.key.pem)";

/// Every name is accepted: the server checks a client certificate's chain and EKU, not its name.
struct AnyHost;
impl VerifyHostNameCallback for AnyHost {
    fn verify_host_name(&self, _: &str) -> bool {
        true
    }
}

/// The server name the client expects.
struct Host(String);
impl VerifyHostNameCallback for Host {
    fn verify_host_name(&self, h: &str) -> bool {
        h.eq_ignore_ascii_case(&self.0)
    }
}

unsafe extern "C" fn key_log(
    ctx: *mut std::ffi::c_void,
    _conn: *mut s2n_tls_sys::s2n_connection,
    line: *mut u8,
    len: usize,
) -> std::ffi::c_int {
    // SAFETY: ctx is the leaked Mutex<File> of `config`, line/len the callback's buffer.
    let f = &*(ctx as *const Mutex<File>);
    let l = std::slice::from_raw_parts(line, len);
    if let Ok(mut f) = f.lock() {
        let _ = f.write_all(l);
        let _ = f.write_all(b"\n");
        let _ = f.flush();
    }
    0
}

fn config(o: &Opts) -> Res<Config> {
    let mut b = Config::builder();
    let policy = match o.version.as_str() {
        "1.3" => "AWS-CRT-SDK-TLSv1.3",
        "1.2" => "ELBSecurityPolicy-TLS-1-2-2017-01",
        "any" => "default_tls13",
        v => return Err(format!("--tls 1.2|1.3|any, not {v}").into()),
    };
    let policy = o.extra("--policy").unwrap_or(policy);
    b.set_security_policy(&Policy::from_version(policy)?)?;
    if !o.server && o.sessions > 1 {
        b.enable_session_tickets(true)?;
        b.set_session_ticket_callback(KeepTicket)?;
    }
    b.with_system_certs(false)?;
    b.trust_pem(&std::fs::read(&o.ca)?)?;
    if let (Some(c), Some(k)) = (&o.cert, &o.key) {
        b.load_pem(&std::fs::read(c)?, &std::fs::read(k)?)?;
    }
    if let Some(p) = &o.keylog {
        let f: &'static Mutex<File> = Box::leak(Box::new(Mutex::new(
            OpenOptions::new().create(true).append(true).open(p)?,
        )));
        // SAFETY: the context lives for the whole process (leaked).
        unsafe {
            b.set_key_log_callback(Some(key_log), f as *const _ as *mut std::ffi::c_void)?;
        }
    }
    if o.server {
        b.set_client_auth_type(match o.client_auth.as_str() {
            "none" => ClientAuthType::None,
            "ask" => ClientAuthType::Optional,
            "require" => ClientAuthType::Required,
            m => return Err(format!("--client-auth none|ask|require, not {m}").into()),
        })?;
        b.set_verify_host_callback(AnyHost)?;
    } else {
        // answer a CertificateRequest: with the configured chain, or an empty Certificate
        b.set_client_auth_type(ClientAuthType::Optional)?;
        b.set_verify_host_callback(Host(o.sni.clone()))?;
    }
    Ok(b.build()?)
}

/// Keeps the newest session ticket for the next connection.
struct KeepTicket;
impl SessionTicketCallback for KeepTicket {
    fn on_session_ticket(&self, _: &mut Connection, ticket: &SessionTicket) {
        let Ok(len) = ticket.len() else { return };
        let mut data = vec![0; len];
        if ticket.data(&mut data).is_ok() {
            if let Ok(mut t) = TICKET.lock() {
                *t = Some(data);
            }
        }
    }
}

/// An s2n connection on a blocking socket.
struct Tls {
    conn: Connection,
    _tcp: Box<TcpStream>,
}

/// s2n's I/O callbacks on the blocking socket: bytes moved, or -1 with errno set.
unsafe extern "C" fn recv_cb(
    ctx: *mut std::ffi::c_void,
    buf: *mut u8,
    len: u32,
) -> std::ffi::c_int {
    // SAFETY: ctx is the connection's boxed TcpStream; buf/len s2n's buffer.
    let mut tcp = &*(ctx as *const TcpStream);
    let b = std::slice::from_raw_parts_mut(buf, len as usize);
    io_result(tcp.read(b))
}

unsafe extern "C" fn send_cb(
    ctx: *mut std::ffi::c_void,
    buf: *const u8,
    len: u32,
) -> std::ffi::c_int {
    // SAFETY: as recv_cb.
    let mut tcp = &*(ctx as *const TcpStream);
    let b = std::slice::from_raw_parts(buf, len as usize);
    io_result(tcp.write(b))
}

fn io_result(r: io::Result<usize>) -> std::ffi::c_int {
    match r {
        Ok(n) => n as std::ffi::c_int,
        Err(e) => {
            // s2n reads errno (EAGAIN: try again; anything else: an I/O error)
            let code = e.raw_os_error().unwrap_or(5); // EIO
            unsafe { *errno_location() = code };
            -1
        }
    }
}

extern "C" {
    #[link_name = "__errno_location"]
    fn errno_location() -> *mut std::ffi::c_int;
}

impl Tls {
    fn new(o: &Opts, cfg: Config, tcp: TcpStream) -> Res<Self> {
        let mut conn = Connection::new(if o.server { Mode::Server } else { Mode::Client });
        conn.set_blinding(Blinding::SelfService)?;
        conn.set_config(cfg)?;
        if !o.server {
            conn.set_server_name(&o.sni)?;
            let ticket = TICKET.lock().ok().and_then(|t| t.clone());
            if let Some(t) = ticket {
                conn.set_session_ticket(&t)?;
            }
        }
        // The socket is boxed so that its address, the callbacks' context, stays put.
        let tcp = Box::new(tcp);
        conn.set_receive_callback(Some(recv_cb))?;
        conn.set_send_callback(Some(send_cb))?;
        // SAFETY: the context is the boxed socket, which lives as long as the connection (`_tcp`).
        unsafe {
            let ctx = &*tcp as *const TcpStream as *mut std::ffi::c_void;
            conn.set_receive_context(ctx)?;
            conn.set_send_context(ctx)?;
        }
        Ok(Tls { conn, _tcp: tcp })
    }

    fn handshake(&mut self) -> Res<()> {
        loop {
            match self.conn.poll_negotiate() {
                Poll::Ready(Ok(_)) => return Ok(()),
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => continue,
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "version {:?} cipher {} resumed {}",
            self.conn.actual_protocol_version(),
            self.conn.cipher_suite().unwrap_or("?"),
            self.conn.resumed()
        )
    }

    fn shutdown(&mut self) {
        while let Poll::Pending = self.conn.poll_shutdown_send() {}
    }
}

impl Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.poll_recv(buf) {
                Poll::Ready(Ok(n)) => return Ok(n),
                Poll::Ready(Err(e)) => return Err(io::Error::other(e)),
                Poll::Pending => continue,
            }
        }
    }
}

impl Write for Tls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.conn.poll_send(buf) {
                Poll::Ready(Ok(n)) => return Ok(n),
                Poll::Ready(Err(e)) => return Err(io::Error::other(e)),
                Poll::Pending => continue,
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        loop {
            match self.conn.poll_flush() {
                Poll::Ready(Ok(_)) => return Ok(()),
                Poll::Ready(Err(e)) => return Err(io::Error::other(e)),
                Poll::Pending => continue,
            }
        }
    }
}

// ------------------------------------------------------------------ client

fn client(o: &Opts) -> Res<()> {
    let cfg = config(o)?;
    for i in 0..o.sessions {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        client_session(o, cfg.clone())?;
    }
    Ok(())
}

fn client_session(o: &Opts, cfg: Config) -> Res<()> {
    let tcp = peer_smtp::connect(&o.host, o.port, o.bind.as_deref())?;
    if !o.implicit {
        peer_smtp::client_starttls(&tcp)?;
    }
    let mut tls = Tls::new(o, cfg, tcp)?;
    tls.handshake().map_err(|e| format!("TLS handshake: {e}"))?;
    eprintln!("TLS established: {}", tls.describe());
    if o.implicit {
        peer_smtp::client_line(&mut tls, &o.name)?;
    } else {
        peer_smtp::client_mail(&mut tls, &o.name)?;
    }
    tls.shutdown(); // close_notify
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);
    Ok(())
}

// ------------------------------------------------------------------ server

fn server(o: &Opts) -> Res<()> {
    let cfg = config(o)?;
    let tcp = peer_smtp::accept(&o.host, o.port, &o.client_auth)?;
    peer_smtp::server_starttls(&tcp, "s2n-peer")?;
    let mut tls = Tls::new(o, cfg, tcp)?;
    if let Err(e) = tls.handshake() {
        // s2n has already sent the alert for this error
        eprintln!("TLS handshake failed: {e}");
        return Err(format!("TLS handshake failed: {e}").into());
    }
    let n = tls.conn.peer_cert_chain().map(|c| c.len()).unwrap_or(0);
    eprintln!(
        "TLS established: {}, client certificates: {n}",
        tls.describe()
    );
    peer_smtp::server_mail(&mut tls)?;
    tls.shutdown();
    Ok(())
}

fn main() -> ExitCode {
    peer_smtp::run("s2n-peer", USAGE, &["--policy"], client, server)
}
