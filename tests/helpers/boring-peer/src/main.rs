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
use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use boring::ssl::{
    CertificateCompressionAlgorithm, CertificateCompressor, Ssl, SslContext, SslContextBuilder,
    SslFiletype, SslMethod, SslStream, SslVerifyMode, SslVersion,
};
use boring::x509::X509Name;

use peer_smtp::{Opts, Res};

const USAGE: &str =
    "usage: boring-peer client|server --port N [--host 127.0.0.1] [--bind 127.0.0.2]
  [--tls 1.2|1.3|any] [--ca root.cert.pem] [--sni mx.lab.test] [--cert chain.pem --key key.pem]
  [--keylog PATH] [--groups LIST (e.g. P-384, X25519:P-256)]
  [--compress zlib] (RFC 8879 certificate compression, both ways)
  client: [--implicit] (TLS from the start, no SMTP: one line written, one read, then close)
          [--sessions N] (N connections; each offers the previous one's session: resumption)
  server: [--client-auth none|ask|require] (cert/key default server.chain.pem / server.key.pem)";

/// RFC 8879 zlib certificate compression (BoringSSL takes the algorithm from the application).
struct Zlib;
impl CertificateCompressor for Zlib {
    const ALGORITHM: CertificateCompressionAlgorithm = CertificateCompressionAlgorithm::ZLIB;
    const CAN_COMPRESS: bool = true;
    const CAN_DECOMPRESS: bool = true;

    fn compress<W: Write>(&self, input: &[u8], output: &mut W) -> std::io::Result<()> {
        let mut z = flate2::write::ZlibEncoder::new(output, flate2::Compression::default());
        z.write_all(input)?;
        z.finish().map(|_| ())
    }

    fn decompress<W: Write>(&self, input: &[u8], output: &mut W) -> std::io::Result<()> {
        let mut z = flate2::write::ZlibDecoder::new(output);
        z.write_all(input)?;
        z.finish().map(|_| ())
    }
}

/// The last session the server gave the client (`--sessions`).
static SESSION: Mutex<Option<boring::ssl::SslSession>> = Mutex::new(None);

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
    if let Some(g) = o.extra("--groups") {
        b.set_curves_list(g)?;
    }
    match o.extra("--compress") {
        None => {}
        Some("zlib") => b.add_certificate_compression_algorithm(Zlib)?,
        Some(a) => return Err(format!("--compress zlib, not {a}").into()),
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
    let tcp = peer_smtp::connect(&o.host, o.port, o.bind.as_deref())?;
    if !o.implicit {
        peer_smtp::client_starttls(&tcp)?;
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
        peer_smtp::client_line(&mut tls, &o.name)?;
    } else {
        peer_smtp::client_mail(&mut tls, &o.name)?;
    }
    let _ = tls.shutdown(); // close_notify
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);
    Ok(())
}

// ------------------------------------------------------------------ server

fn server(o: &Opts) -> Res<()> {
    let ctx = context(o)?;
    let tcp = peer_smtp::accept(&o.host, o.port, &o.client_auth)?;
    peer_smtp::server_starttls(&tcp, "boring-peer")?;
    let mut tls = match Ssl::new(&ctx)?.accept(tcp) {
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
    peer_smtp::server_mail(&mut tls)?;
    let _ = tls.shutdown();
    Ok(())
}

fn main() -> ExitCode {
    peer_smtp::run(
        "boring-peer",
        USAGE,
        &["--groups", "--compress"],
        client,
        server,
    )
}
