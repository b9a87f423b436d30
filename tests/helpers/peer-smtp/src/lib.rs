//! peer-smtp: the SMTP side of the Rust TLS peers (`tests/helpers/{boring,s2n,mbedtls,rustls}-peer`),
//! so that the peers differ only where their TLS stacks do. Blocking I/O, one connection at a
//! time, every line logged on standard error as `C: …` / `S: …` (captures/generate.sh keeps the
//! logs beside the captures).
//!
//! client: plaintext banner, EHLO (STARTTLS must be offered), STARTTLS — then, over the peer's TLS,
//!         EHLO / MAIL / RCPT / DATA / body / QUIT; a refusal (a reply other than the expected
//!         one) is answered with QUIT, as swaks does, and is the peer's error. `--implicit`: one
//!         line each way instead (openssl s_server, gnutls-serv).
//! server: one connection: banner, EHLO advertising STARTTLS, 220 to STARTTLS — then, over TLS,
//!         an accepting SMTP dialogue until QUIT or the client's close.

mod opts;
pub use opts::{parse_args, run, Opts};

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

static SERVER: AtomicBool = AtomicBool::new(false);

/// This process is the server (log prefixes: what it sends is `S:`).
pub fn set_server(server: bool) {
    SERVER.store(server, Ordering::Relaxed);
}

fn who(sent: bool) -> &'static str {
    if sent == SERVER.load(Ordering::Relaxed) {
        "S:"
    } else {
        "C:"
    }
}

/// One line (up to and including LF), byte by byte: before STARTTLS nothing after it may be
/// consumed (the TLS handshake's bytes must stay in the socket). None at EOF before any byte.
pub fn read_line<R: Read>(r: &mut R) -> io::Result<Option<String>> {
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

/// A whole (possibly multi-line) SMTP reply: its code and text.
pub fn read_reply<R: Read>(r: &mut R) -> Res<(u16, String)> {
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

pub fn send<W: Write>(w: &mut W, s: &str) -> Res<()> {
    for l in s.split_inclusive('\n') {
        eprint!("{} {l}", who(true));
    }
    w.write_all(s.as_bytes())?;
    w.flush()?;
    Ok(())
}

/// A reply with this code, else an error naming what came.
pub fn expect<R: Read>(r: &mut R, want: u16) -> Res<String> {
    let (code, text) = read_reply(r)?;
    if code != want {
        return Err(format!("expected {want}, got {}", text.trim_end()).into());
    }
    Ok(text)
}

/// A TCP connection to `host:port`, from `bind` (an address; the captures tell clients by
/// 127.0.0.2) when given; replies are awaited 20 s at most.
pub fn connect(host: &str, port: u16, bind: Option<&str>) -> Res<TcpStream> {
    let to: SocketAddr = format!("{host}:{port}").parse()?;
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        None,
    )?;
    if let Some(b) = bind {
        let local: SocketAddr = format!("{b}:0").parse()?;
        sock.bind(&local.into())?;
    }
    sock.connect_timeout(&to.into(), Duration::from_secs(10))?;
    let tcp: TcpStream = sock.into();
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    Ok(tcp)
}

/// Client, plaintext: banner, EHLO (STARTTLS offered), STARTTLS, 220. The socket is then the
/// TLS stack's.
pub fn client_starttls(tcp: &TcpStream) -> Res<()> {
    let mut t = tcp;
    expect(&mut t, 220)?;
    send(&mut t, "EHLO out.lab.test\r\n")?;
    let ehlo = expect(&mut t, 250)?;
    if !ehlo.to_ascii_uppercase().contains("STARTTLS") {
        return Err("server does not offer STARTTLS".into());
    }
    send(&mut t, "STARTTLS\r\n")?;
    expect(&mut t, 220)?;
    Ok(())
}

/// Client, over TLS: one message (its subject and body name `name`), then QUIT. A server that
/// refused the certificate after its Finished answers with an alert: the read fails. A refusal
/// by reply (Postfix req_ccert: 421 and close) is answered with QUIT, the rest read, and is the
/// error. The TLS close is the caller's.
pub fn client_mail<S: Read + Write>(tls: &mut S, name: &str) -> Res<()> {
    let body = format!("Subject: ekuwatch test {name}\r\n\r\nhello from {name}\r\n.\r\n");
    let steps: [(&str, u16); 6] = [
        ("EHLO out.lab.test\r\n", 250),
        ("MAIL FROM:<sender@out.lab.test>\r\n", 250),
        ("RCPT TO:<root@lab.test>\r\n", 250),
        ("DATA\r\n", 354),
        (&body, 250),
        ("QUIT\r\n", 221),
    ];
    for (cmd, want) in steps {
        send(tls, cmd)?;
        let (code, text) = read_reply(tls)?;
        if code != want {
            let _ = send(tls, "QUIT\r\n");
            let mut rest = Vec::new();
            let _ = tls.read_to_end(&mut rest);
            return Err(format!("expected {want}, got {}", text.trim_end()).into());
        }
    }
    Ok(())
}

/// Client, implicit TLS without SMTP (openssl s_server, gnutls-serv): one line written, one
/// read. A server that refused the certificate after its Finished answers with an alert: the
/// read fails.
pub fn client_line<S: Read + Write>(tls: &mut S, name: &str) -> Res<()> {
    send(tls, &format!("hello from {name}\n"))?;
    let line = read_line(tls)?.ok_or("closed without an answer")?;
    eprint!("S: {line}");
    Ok(())
}

/// Server: one connection on `host:port` (`what` names the client-auth mode in the log); reads
/// wait 30 s at most.
pub fn accept(host: &str, port: u16, what: &str) -> Res<TcpStream> {
    let listener = TcpListener::bind(format!("{host}:{port}"))?;
    eprintln!("listening on {host}:{port} (client auth: {what})");
    let (tcp, peer) = listener.accept()?;
    eprintln!("connection from {peer}");
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(tcp)
}

/// Server, plaintext: banner (`220 mx.lab.test ESMTP {software}`), EHLO advertising STARTTLS,
/// until the client's STARTTLS is answered with 220. The socket is then the TLS stack's.
pub fn server_starttls(tcp: &TcpStream, software: &str) -> Res<()> {
    let mut t = tcp;
    send(&mut t, &format!("220 mx.lab.test ESMTP {software}\r\n"))?;
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
            return Ok(());
        } else if cmd == "QUIT" {
            send(&mut t, "221 2.0.0 Bye\r\n")?;
            return Err("client quit before STARTTLS".into());
        } else {
            send(&mut t, "530 5.7.0 Must issue a STARTTLS command first\r\n")?;
        }
    }
}

/// Server, over TLS: accepts every command and message until QUIT or the client's close (a
/// read error — an alert, a reset — ends it too, logged). The TLS close is the caller's.
pub fn server_mail<S: Read + Write>(tls: &mut S) -> Res<()> {
    let mut in_data = false;
    loop {
        let line = match read_line(tls) {
            Ok(Some(l)) => l,
            Ok(None) => {
                eprintln!("client closed the connection");
                return Ok(());
            }
            Err(e) => {
                eprintln!("client closed the connection ({e})");
                return Ok(());
            }
        };
        eprint!("C: {line}");
        if in_data {
            if line == ".\r\n" || line == ".\n" {
                in_data = false;
                send(tls, "250 2.0.0 Ok: queued\r\n")?;
            }
            continue;
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        if cmd.starts_with("EHLO") {
            send(tls, "250-mx.lab.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")?;
        } else if ["HELO", "MAIL", "RCPT", "RSET"]
            .iter()
            .any(|p| cmd.starts_with(p))
            || cmd == "NOOP"
        {
            send(tls, "250 2.1.0 Ok\r\n")?;
        } else if cmd == "DATA" {
            in_data = true;
            send(tls, "354 End data with <CR><LF>.<CR><LF>\r\n")?;
        } else if cmd == "QUIT" {
            send(tls, "221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else {
            send(tls, "502 5.5.2 Error: command not recognized\r\n")?;
        }
    }
}
