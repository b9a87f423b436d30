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
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use s2n_tls::callbacks::{SessionTicket, SessionTicketCallback, VerifyHostNameCallback};
use s2n_tls::config::Config;
use s2n_tls::connection::Connection;
use s2n_tls::enums::{Blinding, ClientAuthType, Mode};
use s2n_tls::security::Policy;

static SERVER_MODE: AtomicBool = AtomicBool::new(false);
/// The last session ticket the server gave the client (`--sessions`).
static TICKET: Mutex<Option<Vec<u8>>> = Mutex::new(None);

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage: s2n-peer client|server --port N [--host 127.0.0.1] [--bind 127.0.0.2]
  [--tls 1.2|1.3|any] [--ca root.cert.pem] [--sni mx.lab.test] [--cert chain.pem --key key.pem]
  [--keylog PATH] [--policy S2N-SECURITY-POLICY]
  client: [--implicit] (TLS from the start, no SMTP: one line written, one read, then close)
          [--sessions N] (N connections; each offers the previous one's ticket: resumption)
  server: [--client-auth none|ask|require] (cert/key default server.chain.pem / server.key.pem)";

struct Opts {
    server: bool,
    host: String,
    port: u16,
    bind: Option<String>,
    version: String,
    ca: String,
    sni: String,
    cert: Option<String>,
    key: Option<String>,
    keylog: Option<String>,
    client_auth: String,
    name: String,
    /// Client: implicit TLS, no SMTP (openssl s_server / gnutls-serv): one line, then close.
    implicit: bool,
    /// Client: connections made one after the other, sharing the session ticket.
    sessions: u32,
    /// An s2n security policy instead of the version's.
    policy: Option<String>,
}

fn parse_args() -> Res<Opts> {
    let mut a = std::env::args().skip(1);
    let mode = a.next().ok_or(USAGE)?;
    if mode != "client" && mode != "server" {
        return Err(USAGE.into());
    }
    let mut o = Opts {
        server: mode == "server",
        host: "127.0.0.1".into(),
        port: 0,
        bind: None,
        version: "1.3".into(),
        ca: "root.cert.pem".into(),
        sni: "mx.lab.test".into(),
        cert: None,
        key: None,
        keylog: None,
        client_auth: "none".into(),
        name: std::env::var("NAME").unwrap_or_else(|_| "s2n-peer".into()),
        implicit: false,
        sessions: 1,
        policy: None,
    };
    while let Some(k) = a.next() {
        let mut v = || a.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--host" => o.host = v()?,
            "--port" => o.port = v()?.parse()?,
            "--bind" => o.bind = Some(v()?),
            "--tls" => o.version = v()?,
            "--ca" => o.ca = v()?,
            "--sni" => o.sni = v()?,
            "--cert" | "--chain" => o.cert = Some(v()?),
            "--key" => o.key = Some(v()?),
            "--keylog" => o.keylog = Some(v()?),
            "--client-auth" => o.client_auth = v()?,
            "--name" => o.name = v()?,
            "--implicit" => o.implicit = true,
            "--sessions" => o.sessions = v()?.parse()?,
            "--policy" => o.policy = Some(v()?),
            _ => return Err(format!("unknown argument {k}\n{USAGE}").into()),
        }
    }
    if o.port == 0 {
        return Err(format!("--port is required\n{USAGE}").into());
    }
    if o.server && o.cert.is_none() {
        o.cert = Some("server.chain.pem".into());
        o.key = Some("server.key.pem".into());
    }
    Ok(o)
}

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
    let policy = o.policy.as_deref().unwrap_or(policy);
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

// ------------------------------------------------------------------ SMTP line I/O

fn who(sent: bool) -> &'static str {
    if sent == SERVER_MODE.load(Ordering::Relaxed) {
        "S:"
    } else {
        "C:"
    }
}

/// One line, byte by byte (before STARTTLS nothing after it may be consumed).
fn read_line<R: Read>(r: &mut R) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(0) => {
                return Ok((!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into()));
            }
            Ok(_) => {
                buf.push(b[0]);
                if b[0] == b'\n' {
                    return Ok(Some(String::from_utf8_lossy(&buf).into()));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn read_reply<R: Read>(r: &mut R) -> Res<(u16, String)> {
    let mut all = String::new();
    loop {
        let line = read_line(r)?.ok_or("connection closed while waiting for a reply")?;
        eprint!("{} {line}", who(false));
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            let code = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("bad reply line {line:?}"))?;
            return Ok((code, all));
        }
    }
}

fn send<W: Write>(w: &mut W, s: &str) -> Res<()> {
    for l in s.split_inclusive('\n') {
        eprint!("{} {l}", who(true));
    }
    w.write_all(s.as_bytes())?;
    w.flush()?;
    Ok(())
}

fn expect<R: Read>(r: &mut R, want: u16) -> Res<String> {
    let (code, text) = read_reply(r)?;
    if code != want {
        return Err(format!("expected {want}, got {}", text.trim_end()).into());
    }
    Ok(text)
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
    let addr: SocketAddr = format!("{}:{}", o.host, o.port).parse()?;
    let tcp = match &o.bind {
        Some(b) => connect_from(format!("{b}:0").parse()?, addr)?,
        None => TcpStream::connect_timeout(&addr, Duration::from_secs(10))?,
    };
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    if !o.implicit {
        let mut t = &tcp;
        expect(&mut t, 220)?;
        send(&mut t, "EHLO out.lab.test\r\n")?;
        let ehlo = expect(&mut t, 250)?;
        if !ehlo.to_ascii_uppercase().contains("STARTTLS") {
            return Err("server does not offer STARTTLS".into());
        }
        send(&mut t, "STARTTLS\r\n")?;
        expect(&mut t, 220)?;
    }

    let mut tls = Tls::new(o, cfg, tcp)?;
    tls.handshake().map_err(|e| format!("TLS handshake: {e}"))?;
    eprintln!("TLS established: {}", tls.describe());
    if o.implicit {
        // a server that refused our certificate after its Finished answers with an alert: the
        // read fails
        send(&mut tls, &format!("hello from {}\n", o.name))?;
        let line = read_line(&mut tls)?.ok_or("closed without an answer")?;
        eprint!("S: {line}");
        let _ = tls.shutdown();
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest);
        return Ok(());
    }
    let body = format!(
        "Subject: ekuwatch test {n}\r\n\r\nhello from {n}\r\n.\r\n",
        n = o.name
    );
    let steps: [(&str, u16); 6] = [
        ("EHLO out.lab.test\r\n", 250),
        ("MAIL FROM:<sender@out.lab.test>\r\n", 250),
        ("RCPT TO:<root@lab.test>\r\n", 250),
        ("DATA\r\n", 354),
        (&body, 250),
        ("QUIT\r\n", 221),
    ];
    for (cmd, want) in steps {
        send(&mut tls, cmd)?;
        // a server that refused our certificate after its Finished answers with an alert
        let (code, text) = read_reply(&mut tls)?;
        if code != want {
            // the server refused (Postfix req_ccert: 421 and close): say QUIT as swaks would
            let _ = send(&mut tls, "QUIT\r\n");
            let mut rest = Vec::new();
            let _ = tls.read_to_end(&mut rest);
            return Err(format!("expected {want}, got {}", text.trim_end()).into());
        }
    }
    tls.shutdown(); // close_notify
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);
    Ok(())
}

/// A TCP connection from a chosen local address (the captures tell clients by 127.0.0.2).
fn connect_from(local: SocketAddr, to: SocketAddr) -> Res<TcpStream> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        None,
    )?;
    sock.bind(&local.into())?;
    sock.connect_timeout(&to.into(), Duration::from_secs(10))?;
    Ok(sock.into())
}

// ------------------------------------------------------------------ server

fn server(o: &Opts) -> Res<()> {
    let cfg = config(o)?;
    let listener = TcpListener::bind(format!("{}:{}", o.host, o.port))?;
    eprintln!(
        "listening on {}:{} (client auth: {})",
        o.host, o.port, o.client_auth
    );
    let (tcp, peer) = listener.accept()?;
    drop(listener);
    eprintln!("connection from {peer}");
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut t = &tcp;
    send(&mut t, "220 mx.lab.test ESMTP s2n-peer\r\n")?;
    loop {
        let line = read_line(&mut t)?.ok_or("client closed before STARTTLS")?;
        eprint!("C: {line}");
        let cmd = line.trim_end().to_ascii_uppercase();
        if cmd.starts_with("EHLO") {
            send(
                &mut t,
                "250-mx.lab.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n",
            )?;
        } else if cmd.starts_with("HELO") {
            send(&mut t, "250 mx.lab.test\r\n")?;
        } else if cmd == "STARTTLS" {
            send(&mut t, "220 2.0.0 Ready to start TLS\r\n")?;
            break;
        } else if cmd == "QUIT" {
            send(&mut t, "221 2.0.0 Bye\r\n")?;
            return Err("client quit before STARTTLS".into());
        } else {
            send(&mut t, "530 5.7.0 Must issue a STARTTLS command first\r\n")?;
        }
    }
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
    let mut in_data = false;
    loop {
        let line = match read_line(&mut tls) {
            Ok(Some(l)) => l,
            Ok(None) => {
                eprintln!("client closed the connection");
                break;
            }
            Err(e) => {
                eprintln!("client closed the connection ({e})");
                break;
            }
        };
        eprint!("C: {line}");
        if in_data {
            if line == ".\r\n" || line == ".\n" {
                in_data = false;
                send(&mut tls, "250 2.0.0 Ok: queued\r\n")?;
            }
            continue;
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        if cmd.starts_with("EHLO") {
            send(
                &mut tls,
                "250-mx.lab.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
            )?;
        } else if ["HELO", "MAIL", "RCPT", "RSET"]
            .iter()
            .any(|p| cmd.starts_with(p))
            || cmd == "NOOP"
        {
            send(&mut tls, "250 2.1.0 Ok\r\n")?;
        } else if cmd == "DATA" {
            in_data = true;
            send(&mut tls, "354 End data with <CR><LF>.<CR><LF>\r\n")?;
        } else if cmd == "QUIT" {
            send(&mut tls, "221 2.0.0 Bye\r\n")?;
            break;
        } else {
            send(&mut tls, "502 5.5.2 Error: command not recognized\r\n")?;
        }
    }
    tls.shutdown();
    Ok(())
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    SERVER_MODE.store(o.server, Ordering::Relaxed);
    let r = if o.server { server(&o) } else { client(&o) };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "s2n-peer {}: error: {e}",
                if o.server { "server" } else { "client" }
            );
            ExitCode::FAILURE
        }
    }
}
