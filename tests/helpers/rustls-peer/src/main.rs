//! rustls-peer: a TLS 1.3 SMTP STARTTLS peer built on rustls (ring provider), used by
//! captures/generate.sh to put a third TLS stack on the wire next to OpenSSL and GnuTLS.
//!
//! client: connect, plaintext EHLO + STARTTLS, TLS 1.3 handshake (optionally with a client
//!         certificate), then EHLO / MAIL / RCPT / DATA / body / QUIT over TLS.
//! server: accept one connection, 220 banner, EHLO advertising STARTTLS, 220 to STARTTLS, TLS 1.3
//!         (server.chain.pem, optional or mandatory client certificate checked by rustls's
//!         WebPkiClientVerifier against root.cert.pem), then answer the SMTP dialog inside TLS.
//!
//! Both write an NSS key log (`--keylog PATH`, or SSLKEYLOGFILE through rustls::KeyLogFile).
//! Lab use only.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::ring::default_provider;
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, ClientConnection, KeyLog, KeyLogFile, RootCertStore, ServerConfig,
    ServerConnection, StreamOwned,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// true in server mode: what we send is logged as "S:", what we receive as "C:"
use peer_smtp::{read_reply, send, Res};

const USAGE: &str = "usage:
  rustls-peer client --port N [--host 127.0.0.1] [--bind 127.0.0.2] [--ca root.cert.pem]
                     [--sni mx.lab.test] [--cert chain.pem --key key.pem] [--keylog PATH] [--name NAME]
                    [--eager-quit]   (after TLS: EHLO and QUIT written at once, as two records)
                    [--sessions N]   (N connections sharing the session cache: later ones resume)
  both:              [--compress brotli|zlib] (RFC 8879 certificate compression offered and accepted)
  rustls-peer server --port N [--host 127.0.0.1] [--chain server.chain.pem] [--key server.key.pem]
                     [--ca root.cert.pem] [--ask-client-cert | --require-client-cert] [--keylog PATH]
Key log: --keylog PATH, else SSLKEYLOGFILE (rustls::KeyLogFile).";

/// NSS key log lines appended to a file.
#[derive(Debug)]
struct KeyLogPath(Mutex<File>);

impl KeyLog for KeyLogPath {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = format!("{label} {} {}\n", hex(client_random), hex(secret));
        if let Ok(mut f) = self.0.lock() {
            let _ = f.write_all(line.as_bytes());
            let _ = f.flush();
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Opts {
    mode: String,
    host: String,
    port: u16,
    bind: Option<String>,
    ca: String,
    sni: String,
    cert: Option<String>,
    key: Option<String>,
    keylog: Option<String>,
    name: String,
    client_auth: ClientAuth,
    /// Client: after TLS, write EHLO and QUIT at once (two records) and read whatever comes back.
    eager_quit: bool,
    /// Client: connections one after the other with one configuration (its in-memory session
    /// cache: the later ones resume with the server's ticket).
    sessions: u32,
    /// RFC 8879 certificate compression, sent and accepted (none unless asked for).
    compress: Option<String>,
}

/// The compressor and decompressor of `--compress` (none: rustls's defaults would enable every
/// algorithm its features build, and the other captures are made without compression).
#[allow(clippy::type_complexity)]
fn compression(
    o: &Opts,
) -> Res<(
    Vec<&'static dyn rustls::compress::CertCompressor>,
    Vec<&'static dyn rustls::compress::CertDecompressor>,
)> {
    use rustls::compress::{
        BROTLI_COMPRESSOR, BROTLI_DECOMPRESSOR, ZLIB_COMPRESSOR, ZLIB_DECOMPRESSOR,
    };
    Ok(match o.compress.as_deref() {
        None => (vec![], vec![]),
        Some("brotli") => (vec![BROTLI_COMPRESSOR], vec![BROTLI_DECOMPRESSOR]),
        Some("zlib") => (vec![ZLIB_COMPRESSOR], vec![ZLIB_DECOMPRESSOR]),
        Some(a) => return Err(format!("--compress brotli|zlib, not {a}").into()),
    })
}

#[derive(PartialEq, Clone, Copy, Debug)]
enum ClientAuth {
    None,
    Ask,
    Require,
}

fn parse_args() -> Res<Opts> {
    let mut a = std::env::args().skip(1);
    let mode = a.next().ok_or(USAGE)?;
    if mode != "client" && mode != "server" {
        return Err(USAGE.into());
    }
    let mut o = Opts {
        mode,
        host: "127.0.0.1".into(),
        port: 0,
        bind: None,
        ca: "root.cert.pem".into(),
        sni: "mx.lab.test".into(),
        cert: None,
        key: None,
        keylog: None,
        name: std::env::var("NAME").unwrap_or_else(|_| "rustls-peer".into()),
        client_auth: ClientAuth::None,
        eager_quit: false,
        sessions: 1,
        compress: None,
    };
    while let Some(k) = a.next() {
        let mut v = || a.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--host" => o.host = v()?,
            "--port" => o.port = v()?.parse()?,
            "--bind" => o.bind = Some(v()?),
            "--ca" => o.ca = v()?,
            "--sni" => o.sni = v()?,
            "--cert" | "--chain" => o.cert = Some(v()?),
            "--key" => o.key = Some(v()?),
            "--keylog" => o.keylog = Some(v()?),
            "--name" => o.name = v()?,
            "--ask-client-cert" => o.client_auth = ClientAuth::Ask,
            "--require-client-cert" => o.client_auth = ClientAuth::Require,
            "--eager-quit" => o.eager_quit = true,
            "--sessions" => o.sessions = v()?.parse()?,
            "--compress" => o.compress = Some(v()?),
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {k}\n{USAGE}").into()),
        }
    }
    if o.port == 0 {
        return Err(format!("--port is required\n{USAGE}").into());
    }
    Ok(o)
}

fn key_log(o: &Opts) -> Res<Arc<dyn KeyLog>> {
    Ok(match &o.keylog {
        Some(p) => Arc::new(KeyLogPath(Mutex::new(
            OpenOptions::new().create(true).append(true).open(p)?,
        ))),
        None => Arc::new(KeyLogFile::new()),
    })
}

fn certs(path: &str) -> Res<Vec<CertificateDer<'static>>> {
    let v = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path}: {e}"))?;
    if v.is_empty() {
        return Err(format!("{path}: no certificate").into());
    }
    Ok(v)
}

fn private_key(path: &str) -> Res<PrivateKeyDer<'static>> {
    Ok(PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{path}: {e}"))?)
}

fn roots(path: &str) -> Res<Arc<RootCertStore>> {
    let mut r = RootCertStore::empty();
    for c in certs(path)? {
        r.add(c)?;
    }
    Ok(Arc::new(r))
}

// ------------------------------------------------------------------ client

fn client(o: &Opts) -> Res<()> {
    let provider = Arc::new(default_provider());
    let verifier =
        WebPkiServerVerifier::builder_with_provider(roots(&o.ca)?, provider.clone()).build()?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_webpki_verifier(verifier);
    let mut cfg = match (&o.cert, &o.key) {
        (Some(c), Some(k)) => builder.with_client_auth_cert(certs(c)?, private_key(k)?)?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("--cert and --key go together".into()),
    };
    cfg.key_log = key_log(o)?;
    (cfg.cert_compressors, cfg.cert_decompressors) = compression(o)?;
    let cfg = Arc::new(cfg);
    for i in 0..o.sessions {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        client_session(o, &cfg)?;
    }
    Ok(())
}

fn client_session(o: &Opts, cfg: &Arc<ClientConfig>) -> Res<()> {
    let tcp = peer_smtp::connect(&o.host, o.port, o.bind.as_deref())?;
    peer_smtp::client_starttls(&tcp)?;

    let sni = ServerName::try_from(o.sni.clone())?;
    let conn = ClientConnection::new(cfg.clone(), sni)?;
    let mut tls = StreamOwned::new(conn, tcp);
    // drive the handshake to completion before the first SMTP command
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    eprintln!(
        "TLS established: {:?} {:?} {:?}",
        tls.conn.protocol_version(),
        tls.conn.negotiated_cipher_suite().map(|s| s.suite()),
        tls.conn.handshake_kind()
    );

    if o.eager_quit {
        // A client that writes its next command before the reply arrives (swaks answers a 421
        // with QUIT before the server's close is in): two records, then whatever the server says.
        send(&mut tls, "EHLO out.lab.test\r\n")?;
        send(&mut tls, "QUIT\r\n")?;
        while let Ok((code, _)) = read_reply(&mut tls) {
            if code == 221 || code == 421 {
                break;
            }
        }
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest);
        return Ok(());
    }
    peer_smtp::client_mail(&mut tls, &o.name)?;
    tls.conn.send_close_notify();
    tls.conn.complete_io(&mut tls.sock)?;
    // read the peer's close_notify / EOF
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);
    Ok(())
}

// ------------------------------------------------------------------ server

fn server(o: &Opts) -> Res<()> {
    let provider = Arc::new(default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match o.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Ask => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(&o.ca)?, provider.clone())
                .allow_unauthenticated()
                .build()?,
        ),
        ClientAuth::Require => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(&o.ca)?, provider.clone()).build()?,
        ),
    };
    let chain = o.cert.clone().unwrap_or_else(|| "server.chain.pem".into());
    let key = o.key.clone().unwrap_or_else(|| "server.key.pem".into());
    let mut cfg = builder.with_single_cert(certs(&chain)?, private_key(&key)?)?;
    cfg.key_log = key_log(o)?;
    (cfg.cert_compressors, cfg.cert_decompressors) = compression(o)?;
    let cfg = Arc::new(cfg);

    let tcp = peer_smtp::accept(&o.host, o.port, &format!("{:?}", o.client_auth))?;
    peer_smtp::server_starttls(&tcp, "rustls-peer")?;

    let conn = ServerConnection::new(cfg)?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            // complete_io has already written the alert rustls queued for this error
            eprintln!("TLS handshake failed: {e}");
            return Err(e.into());
        }
    }
    let pc = tls.conn.peer_certificates().map(|c| c.len()).unwrap_or(0);
    eprintln!(
        "TLS established: {:?} {:?}, client certificates: {pc}",
        tls.conn.protocol_version(),
        tls.conn.negotiated_cipher_suite().map(|s| s.suite())
    );
    // the server's NewSessionTickets are sent with the first write (or now)
    tls.conn.complete_io(&mut tls.sock).ok();

    peer_smtp::server_mail(&mut tls)?;
    tls.conn.send_close_notify();
    let _ = tls.conn.complete_io(&mut tls.sock);
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
    peer_smtp::set_server(o.mode == "server");
    let r = if o.mode == "client" {
        client(&o)
    } else {
        server(&o)
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rustls-peer {}: error: {e}", o.mode);
            ExitCode::FAILURE
        }
    }
}
