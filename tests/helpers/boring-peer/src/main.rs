//! boring-peer: an SMTP STARTTLS peer on BoringSSL (the `boring` crate, which builds BoringSSL
//! with cmake), used by captures/generate.sh to put BoringSSL on the wire next to the other stacks.
//!
//! client: connect, plaintext EHLO + STARTTLS, TLS handshake (1.2 or 1.3, optionally with a client
//!         certificate chain, sent whatever the CertificateRequest's CA list says), then EHLO /
//!         MAIL / RCPT / DATA / body / QUIT over TLS; a refusal (alert, or 4xx/5xx and close) is
//!         logged.
//! server: accept one connection, 220 banner, EHLO advertising STARTTLS, 220 to STARTTLS, TLS
//!         (server.chain.pem; client certificate none / ask = SSL_VERIFY_PEER / require =
//!         SSL_VERIFY_PEER | FAIL_IF_NO_PEER_CERT against root.cert.pem, CA names from it; the
//!         chain is verified for the ssl_client purpose: clientAuth EKU), then answer the SMTP
//!         dialogue inside TLS. `--groups P-384` restricts the key-exchange groups (a client that
//!         key-shares X25519 first gets a HelloRetryRequest).
//!
//! Both write an NSS key log (--keylog PATH, SSL_CTX_set_keylog_callback). Lab use only.
//! Log lines the capture script and the tests read: "TLS established: ... client certificates: N"
//! and "TLS handshake failed: ...".

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use boring::ssl::{
    Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslStream, SslVerifyMode,
    SslVersion,
};
use boring::x509::X509Name;

static SERVER_MODE: AtomicBool = AtomicBool::new(false);

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const USAGE: &str =
    "usage: boring-peer client|server --port N [--host 127.0.0.1] [--bind 127.0.0.2]
  [--tls 1.2|1.3|any] [--ca root.cert.pem] [--sni mx.lab.test] [--cert chain.pem --key key.pem]
  [--keylog PATH] [--groups LIST (e.g. P-384, X25519:P-256)]
  client: [--implicit] (TLS from the start, no SMTP: one line written, one read, then close)
          [--sessions N] (N connections; each offers the previous one's session: resumption)
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
    groups: Option<String>,
    client_auth: String,
    name: String,
    /// Client: implicit TLS, no SMTP (openssl s_server / gnutls-serv): one line, then close.
    implicit: bool,
    /// Client: connections one after the other; each offers the session (ticket) the server
    /// gave the one before (resumption).
    sessions: u32,
}

/// The last session the server gave the client (`--sessions`).
static SESSION: Mutex<Option<boring::ssl::SslSession>> = Mutex::new(None);

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
        groups: None,
        client_auth: "none".into(),
        name: std::env::var("NAME").unwrap_or_else(|_| "boring-peer".into()),
        implicit: false,
        sessions: 1,
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
            "--groups" => o.groups = Some(v()?),
            "--client-auth" => o.client_auth = v()?,
            "--name" => o.name = v()?,
            "--implicit" => o.implicit = true,
            "--sessions" => o.sessions = v()?.parse()?,
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

fn context(o: &Opts) -> Res<SslContext> {
    let mut b = SslContextBuilder::new(SslMethod::tls())?;
    let (min, max) = match o.version.as_str() {
        "1.2" => (SslVersion::TLS1_2, SslVersion::TLS1_2),
        "1.3" => (SslVersion::TLS1_3, SslVersion::TLS1_3),
        "any" => (SslVersion::TLS1_2, SslVersion::TLS1_3),
        v => return Err(format!("--tls 1.2|1.3|any, not {v}").into()),
    };
    b.set_min_proto_version(Some(min))?;
    b.set_max_proto_version(Some(max))?;
    b.set_ca_file(&o.ca)?;
    if let (Some(c), Some(k)) = (&o.cert, &o.key) {
        b.set_certificate_chain_file(c)?;
        b.set_private_key_file(k, SslFiletype::PEM)?;
        b.check_private_key()?;
    }
    if let Some(g) = &o.groups {
        b.set_curves_list(g)?;
    }
    if !o.server {
        b.set_session_cache_mode(boring::ssl::SslSessionCacheMode::CLIENT);
        b.set_new_session_callback(|_, s| {
            if let Ok(mut held) = SESSION.lock() {
                *held = Some(s);
            }
        });
    }
    if let Some(p) = &o.keylog {
        let f = Mutex::new(OpenOptions::new().create(true).append(true).open(p)?);
        b.set_keylog_callback(move |_, line| {
            if let Ok(mut f) = f.lock() {
                let _ = writeln!(f, "{line}");
                let _ = f.flush();
            }
        });
    }
    if o.server {
        match o.client_auth.as_str() {
            "none" => b.set_verify(SslVerifyMode::NONE),
            "ask" | "require" => {
                b.set_client_ca_list(X509Name::load_client_ca_file(&o.ca)?);
                let mut m = SslVerifyMode::PEER;
                if o.client_auth == "require" {
                    m |= SslVerifyMode::FAIL_IF_NO_PEER_CERT;
                }
                b.set_verify(m);
            }
            m => return Err(format!("--client-auth none|ask|require, not {m}").into()),
        }
    } else {
        b.set_verify(SslVerifyMode::PEER);
    }
    Ok(b.build())
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

fn describe<S>(s: &SslStream<S>) -> String {
    let ssl = s.ssl();
    format!(
        "version {} cipher {} resumed {}",
        ssl.version_str(),
        ssl.current_cipher().map(|c| c.name()).unwrap_or("?"),
        ssl.session_reused()
    )
}

// ------------------------------------------------------------------ client

fn client(o: &Opts) -> Res<()> {
    let ctx = context(o)?;
    for i in 0..o.sessions {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        client_session(o, &ctx)?;
    }
    Ok(())
}

fn client_session(o: &Opts, ctx: &SslContext) -> Res<()> {
    let addr: SocketAddr = format!("{}:{}", o.host, o.port).parse()?;
    let tcp = match &o.bind {
        Some(b) => {
            let local: SocketAddr = format!("{b}:0").parse()?;
            connect_from(local, addr)?
        }
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

    let mut ssl = Ssl::new(ctx)?;
    if let Some(s) = SESSION.lock().ok().and_then(|h| h.clone()) {
        // SAFETY: the session comes from a connection of this same context
        unsafe { ssl.set_session(&s)? };
    }
    ssl.set_hostname(&o.sni)?;
    ssl.param_mut().set_host(&o.sni)?;
    let mut tls = ssl
        .connect(tcp)
        .map_err(|e| format!("TLS handshake: {e}"))?;
    eprintln!("TLS established: {}", describe(&tls));
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
        // a server that refused our certificate after its Finished answers with an alert: the
        // read fails
        let (code, text) = read_reply(&mut tls)?;
        if code != want {
            // the server refused (Postfix req_ccert: 421 and close): say QUIT as swaks would
            let _ = send(&mut tls, "QUIT\r\n");
            let mut rest = Vec::new();
            let _ = tls.read_to_end(&mut rest);
            return Err(format!("expected {want}, got {}", text.trim_end()).into());
        }
    }
    let _ = tls.shutdown(); // close_notify
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
    let ctx = context(o)?;
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
    send(&mut t, "220 mx.lab.test ESMTP boring-peer\r\n")?;
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
    let tls = match Ssl::new(&ctx)?.accept(tcp) {
        Ok(s) => s,
        Err(e) => {
            // BoringSSL has already sent the alert for this error
            eprintln!("TLS handshake failed: {e}");
            return Err(format!("TLS handshake failed: {e}").into());
        }
    };
    // on a server the peer chain excludes the leaf (OpenSSL's convention)
    let n = match tls.ssl().peer_certificate() {
        Some(_) => 1 + tls.ssl().peer_cert_chain().map(|c| c.len()).unwrap_or(0),
        None => 0,
    };
    eprintln!(
        "TLS established: {}, client certificates: {n}",
        describe(&tls)
    );
    let mut r = BufReader::new(tls);
    let mut in_data = false;
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => {
                eprintln!("client closed the connection");
                break;
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("client closed the connection ({e})");
                break;
            }
        }
        eprint!("C: {line}");
        let w = r.get_mut();
        if in_data {
            if line == ".\r\n" || line == ".\n" {
                in_data = false;
                send(w, "250 2.0.0 Ok: queued\r\n")?;
            }
            continue;
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        if cmd.starts_with("EHLO") {
            send(w, "250-mx.lab.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")?;
        } else if ["HELO", "MAIL", "RCPT", "RSET"]
            .iter()
            .any(|p| cmd.starts_with(p))
            || cmd == "NOOP"
        {
            send(w, "250 2.1.0 Ok\r\n")?;
        } else if cmd == "DATA" {
            in_data = true;
            send(w, "354 End data with <CR><LF>.<CR><LF>\r\n")?;
        } else if cmd == "QUIT" {
            send(w, "221 2.0.0 Bye\r\n")?;
            break;
        } else {
            send(w, "502 5.5.2 Error: command not recognized\r\n")?;
        }
    }
    let _ = r.get_mut().shutdown();
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
                "boring-peer {}: error: {e}",
                if o.server { "server" } else { "client" }
            );
            ExitCode::FAILURE
        }
    }
}
