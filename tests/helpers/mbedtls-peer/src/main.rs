//! mbedtls-peer: an SMTP STARTTLS peer on mbedTLS 3.6 (the `mbedtls-rs-sys` crate, which builds
//! the bundled mbedTLS with cmake and clang and generates its bindings with bindgen), used by
//! captures/generate.sh to put mbedTLS on the wire next to the other stacks. Debian's libmbedtls
//! is 2.28, which has no TLS 1.3; this one has.
//!
//! client: connect, plaintext EHLO + STARTTLS, TLS handshake (1.2 or 1.3, optionally with a client
//!         certificate chain, sent whenever a CertificateRequest comes), then EHLO / MAIL / RCPT /
//!         DATA / body / QUIT over TLS; a refusal (alert, or 4xx/5xx and close) is logged.
//! server: accept one connection, 220 banner, EHLO advertising STARTTLS, 220 to STARTTLS, TLS
//!         (server.chain.pem; client certificate none / ask = MBEDTLS_SSL_VERIFY_OPTIONAL /
//!         require = MBEDTLS_SSL_VERIFY_REQUIRED against root.cert.pem; a verify callback also
//!         checks the leaf's clientAuth EKU with mbedtls_x509_crt_check_extended_key_usage), then
//!         answer the SMTP dialogue inside TLS. With `ask` mbedTLS completes the handshake even
//!         when the certificate does not verify: the log line then says so.
//!
//! Both write an NSS key log (--keylog PATH) from mbedtls_ssl_set_export_keys_cb: TLS 1.3 traffic
//! secrets and the TLS 1.2 master secret, keyed by the client random. Lab use only.
//! Log lines the capture script and the tests read: "TLS established: ... client certificates: N"
//! and "TLS handshake failed: ...".
//!
//! mbedtls-rs-sys leaves the PSA external RNG (MBEDTLS_PSA_CRYPTO_EXTERNAL_RNG) to its user: it is
//! defined here, from /dev/urandom, and so is the TLS layer's f_rng.

use std::ffi::{c_char, c_int, c_uchar, c_uint, c_void, CStr, CString};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};

use mbedtls_rs_sys as sys;

static KEYLOG: Mutex<Option<File>> = Mutex::new(None);
static URANDOM: OnceLock<File> = OnceLock::new();

use peer_smtp::{Opts, Res};

const USAGE: &str =
    "usage: mbedtls-peer client|server --port N [--host 127.0.0.1] [--bind 127.0.0.2]
  [--tls 1.2|1.3|any] [--ca root.cert.pem] [--sni mx.lab.test] [--cert chain.pem --key key.pem]
  [--keylog PATH] [--groups LIST (e.g. P-384, X25519:P-256)]
  client: [--implicit] (TLS from the start, no SMTP: one line written, one read, then close)
  server: [--client-auth none|ask|require] (cert/key default server.chain.pem / server.key.pem)";

// mbedTLS constants (ssl.h, x509.h, net_sockets.h), spelled out: bindgen's names for them vary
const ERR_SSL_WANT_READ: c_int = -0x6900;
const ERR_SSL_WANT_WRITE: c_int = -0x6880;
const ERR_SSL_PEER_CLOSE_NOTIFY: c_int = -0x7880;
const ERR_SSL_CONN_EOF: c_int = -0x7280;
const ERR_SSL_RECEIVED_NEW_SESSION_TICKET: c_int = -0x7B00;
const ERR_X509_CERT_VERIFY_FAILED: c_int = -0x2700;
const ERR_NET_RECV_FAILED: c_int = -0x004C;
const ERR_NET_SEND_FAILED: c_int = -0x004E;
const SSL_IS_CLIENT: c_int = 0;
const SSL_IS_SERVER: c_int = 1;
const SSL_TRANSPORT_STREAM: c_int = 0;
const SSL_PRESET_DEFAULT: c_int = 0;
const SSL_VERIFY_NONE: c_int = 0;
const SSL_VERIFY_OPTIONAL: c_int = 1;
const SSL_VERIFY_REQUIRED: c_int = 2;
const TLS1_2: u16 = 0x0303;
const TLS1_3: u16 = 0x0304;
const X509_BADCERT_EXT_KEY_USAGE: u32 = 0x0800;
/// id-kp-clientAuth, 1.3.6.1.5.5.7.3.2, DER content octets
const OID_CLIENT_AUTH: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

extern "C" {
    // error.h (MBEDTLS_ERROR_C is compiled in; the crate's bindings leave it out)
    fn mbedtls_strerror(errnum: c_int, buffer: *mut c_char, buflen: usize);
}

// ------------------------------------------------------------------ mbedTLS glue

/// mbedTLS's error text for a negative return code.
fn mbed_err(code: c_int) -> String {
    // MBEDTLS_NET_C is not compiled in: its texts are not in mbedtls_strerror
    match code {
        ERR_NET_RECV_FAILED => {
            return "NET - Reading information from the socket failed (-0x004c)".into()
        }
        ERR_NET_SEND_FAILED => {
            return "NET - Sending information through the socket failed (-0x004e)".into()
        }
        _ => {}
    }
    let mut buf = [0 as c_char; 200];
    unsafe { mbedtls_strerror(code, buf.as_mut_ptr(), buf.len()) };
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    format!("{s} (-0x{:04x})", -code)
}

fn check(what: &str, code: c_int) -> Res<c_int> {
    if code < 0 {
        return Err(format!("{what}: {}", mbed_err(code)).into());
    }
    Ok(code)
}

fn fill_random(buf: &mut [u8]) -> bool {
    let f = URANDOM.get_or_init(|| File::open("/dev/urandom").expect("/dev/urandom"));
    (&*f).read_exact(buf).is_ok()
}

/// f_rng for mbedtls_ssl_conf_rng and mbedtls_pk_parse_key.
unsafe extern "C" fn rng(_p: *mut c_void, out: *mut c_uchar, len: usize) -> c_int {
    if len == 0 {
        return 0;
    }
    if fill_random(std::slice::from_raw_parts_mut(out, len)) {
        0
    } else {
        -0x0034 // MBEDTLS_ERR_ENTROPY_SOURCE_FAILED
    }
}

/// MBEDTLS_PSA_CRYPTO_EXTERNAL_RNG: PSA's random numbers (TLS 1.3 key shares, randoms).
#[no_mangle]
pub unsafe extern "C" fn mbedtls_psa_external_get_random(
    _ctx: *mut c_void,
    output: *mut u8,
    output_size: usize,
    output_length: *mut usize,
) -> i32 {
    if output_size > 0 && !fill_random(std::slice::from_raw_parts_mut(output, output_size)) {
        *output_length = 0;
        return -147; // PSA_ERROR_INSUFFICIENT_ENTROPY
    }
    *output_length = output_size;
    0
}

/// NSS key log lines from mbedTLS's key export: the TLS 1.2 master secret, the TLS 1.3 handshake
/// and first application traffic secrets, each keyed by the client random.
unsafe extern "C" fn export_keys(
    _p: *mut c_void,
    typ: c_uint,
    secret: *const c_uchar,
    secret_len: usize,
    client_random: *const c_uchar,
    _server_random: *const c_uchar,
    _prf: c_uint,
) {
    let label = match typ {
        0 => "CLIENT_RANDOM",
        1 => "CLIENT_EARLY_TRAFFIC_SECRET",
        3 => "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        4 => "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        5 => "CLIENT_TRAFFIC_SECRET_0",
        6 => "SERVER_TRAFFIC_SECRET_0",
        _ => return,
    };
    let hex = |p: *const c_uchar, n: usize| {
        std::slice::from_raw_parts(p, n)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let line = format!(
        "{label} {} {}",
        hex(client_random, 32),
        hex(secret, secret_len)
    );
    if let Ok(mut g) = KEYLOG.lock() {
        if let Some(f) = g.as_mut() {
            let _ = writeln!(f, "{line}");
            let _ = f.flush();
        }
    }
}

/// Server verify callback: the leaf must allow client use (clientAuth EKU, or no EKU at all).
unsafe extern "C" fn verify_client_eku(
    _p: *mut c_void,
    crt: *mut sys::mbedtls_x509_crt,
    depth: c_int,
    flags: *mut u32,
) -> c_int {
    if depth == 0
        && sys::mbedtls_x509_crt_check_extended_key_usage(
            crt,
            OID_CLIENT_AUTH.as_ptr() as *const c_char,
            OID_CLIENT_AUTH.len(),
        ) != 0
    {
        *flags |= X509_BADCERT_EXT_KEY_USAGE;
    }
    0
}

thread_local! {
    static LAST_IO_ERROR: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

unsafe extern "C" fn bio_send(ctx: *mut c_void, buf: *const c_uchar, len: usize) -> c_int {
    let tcp = &*(ctx as *const TcpStream);
    loop {
        match (&*tcp).write(std::slice::from_raw_parts(buf, len)) {
            Ok(n) => return n as c_int,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                LAST_IO_ERROR.with(|l| *l.borrow_mut() = Some(format!("send: {e}")));
                return ERR_NET_SEND_FAILED;
            }
        }
    }
}

unsafe extern "C" fn bio_recv(ctx: *mut c_void, buf: *mut c_uchar, len: usize) -> c_int {
    let tcp = &*(ctx as *const TcpStream);
    loop {
        match (&*tcp).read(std::slice::from_raw_parts_mut(buf, len)) {
            Ok(n) => return n as c_int, // 0: EOF, MBEDTLS_ERR_SSL_CONN_EOF
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                LAST_IO_ERROR.with(|l| *l.borrow_mut() = Some(format!("recv: {e}")));
                return ERR_NET_RECV_FAILED;
            }
        }
    }
}

fn read_file_nul(path: &str) -> Res<Vec<u8>> {
    let mut v = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    v.push(0); // PEM input to mbedTLS includes the terminating NUL
    Ok(v)
}

fn parse_crt(path: &str) -> Res<*mut sys::mbedtls_x509_crt> {
    let buf = read_file_nul(path)?;
    unsafe {
        let crt: *mut sys::mbedtls_x509_crt = Box::into_raw(Box::new(std::mem::zeroed()));
        sys::mbedtls_x509_crt_init(crt);
        check(
            &format!("certificates {path}"),
            sys::mbedtls_x509_crt_parse(crt, buf.as_ptr(), buf.len()),
        )?;
        Ok(crt)
    }
}

fn group_id(name: &str) -> Res<u16> {
    Ok(match name.trim() {
        "P-256" | "secp256r1" | "prime256v1" => 23,
        "P-384" | "secp384r1" => 24,
        "P-521" | "secp521r1" => 25,
        "X25519" | "x25519" => 29,
        "X448" | "x448" => 30,
        g => return Err(format!("unknown group {g}").into()),
    })
}

/// The mbedTLS configuration (lives as long as the process: leaked on purpose).
fn config(o: &Opts) -> Res<*mut sys::mbedtls_ssl_config> {
    unsafe {
        check("psa_crypto_init", sys::psa_crypto_init())?;
        let conf: *mut sys::mbedtls_ssl_config = Box::into_raw(Box::new(std::mem::zeroed()));
        sys::mbedtls_ssl_config_init(conf);
        let endpoint = if o.server {
            SSL_IS_SERVER
        } else {
            SSL_IS_CLIENT
        };
        check(
            "mbedtls_ssl_config_defaults",
            sys::mbedtls_ssl_config_defaults(
                conf,
                endpoint,
                SSL_TRANSPORT_STREAM,
                SSL_PRESET_DEFAULT,
            ),
        )?;
        // mbedtls_ssl_conf_{min,max}_tls_version are static inline (no binding): the fields
        let (min, max) = match o.version.as_str() {
            "1.2" => (TLS1_2, TLS1_2),
            "1.3" => (TLS1_3, TLS1_3),
            "any" => (TLS1_2, TLS1_3),
            v => return Err(format!("--tls 1.2|1.3|any, not {v}").into()),
        };
        (*conf).private_min_tls_version = min as _;
        (*conf).private_max_tls_version = max as _;
        sys::mbedtls_ssl_conf_rng(conf, Some(rng), std::ptr::null_mut());
        let ca = parse_crt(&o.ca)?;
        sys::mbedtls_ssl_conf_ca_chain(conf, ca, std::ptr::null_mut());
        if let (Some(c), Some(k)) = (&o.cert, &o.key) {
            let chain = parse_crt(c)?;
            let pk: *mut sys::mbedtls_pk_context = Box::into_raw(Box::new(std::mem::zeroed()));
            sys::mbedtls_pk_init(pk);
            let kb = read_file_nul(k)?;
            check(
                &format!("key {k}"),
                sys::mbedtls_pk_parse_key(
                    pk,
                    kb.as_ptr(),
                    kb.len(),
                    std::ptr::null(),
                    0,
                    Some(rng),
                    std::ptr::null_mut(),
                ),
            )?;
            check(
                "mbedtls_ssl_conf_own_cert",
                sys::mbedtls_ssl_conf_own_cert(conf, chain, pk),
            )?;
        }
        if let Some(g) = o.extra("--groups") {
            let mut ids = g
                .split([':', ','])
                .map(group_id)
                .collect::<Res<Vec<u16>>>()?;
            ids.push(0); // MBEDTLS_SSL_IANA_TLS_GROUP_NONE ends the list
            sys::mbedtls_ssl_conf_groups(conf, Box::leak(ids.into_boxed_slice()).as_ptr());
        }
        if o.server {
            let mode = match o.client_auth.as_str() {
                "none" => SSL_VERIFY_NONE,
                "ask" => SSL_VERIFY_OPTIONAL,
                "require" => SSL_VERIFY_REQUIRED,
                m => return Err(format!("--client-auth none|ask|require, not {m}").into()),
            };
            sys::mbedtls_ssl_conf_authmode(conf, mode);
            sys::mbedtls_ssl_conf_verify(conf, Some(verify_client_eku), std::ptr::null_mut());
        } else {
            sys::mbedtls_ssl_conf_authmode(conf, SSL_VERIFY_REQUIRED);
        }
        if let Some(p) = &o.keylog {
            *KEYLOG.lock().unwrap() = Some(OpenOptions::new().create(true).append(true).open(p)?);
        }
        Ok(conf)
    }
}

/// One TLS connection over a TcpStream (both boxed: mbedTLS keeps pointers to them).
struct Tls {
    ssl: *mut sys::mbedtls_ssl_context,
    _tcp: Box<TcpStream>,
}

impl Tls {
    fn new(conf: *mut sys::mbedtls_ssl_config, tcp: TcpStream, sni: Option<&str>) -> Res<Tls> {
        let tcp = Box::new(tcp);
        unsafe {
            let ssl: *mut sys::mbedtls_ssl_context = Box::into_raw(Box::new(std::mem::zeroed()));
            sys::mbedtls_ssl_init(ssl);
            check("mbedtls_ssl_setup", sys::mbedtls_ssl_setup(ssl, conf))?;
            if let Some(h) = sni {
                let h = CString::new(h)?;
                // SNI and the name the server certificate is verified for
                check(
                    "mbedtls_ssl_set_hostname",
                    sys::mbedtls_ssl_set_hostname(ssl, h.as_ptr()),
                )?;
            }
            sys::mbedtls_ssl_set_bio(
                ssl,
                &*tcp as *const TcpStream as *mut c_void,
                Some(bio_send),
                Some(bio_recv),
                None,
            );
            sys::mbedtls_ssl_set_export_keys_cb(ssl, Some(export_keys), std::ptr::null_mut());
            Ok(Tls { ssl, _tcp: tcp })
        }
    }

    fn handshake(&mut self) -> Result<(), String> {
        loop {
            let r = unsafe { sys::mbedtls_ssl_handshake(self.ssl) };
            match r {
                0 => return Ok(()),
                ERR_SSL_WANT_READ | ERR_SSL_WANT_WRITE => continue,
                _ => return Err(self.describe_error(r)),
            }
        }
    }

    fn describe_error(&self, r: c_int) -> String {
        let mut s = mbed_err(r);
        if r == ERR_X509_CERT_VERIFY_FAILED {
            s.push_str(&format!(": {}", self.verify_info()));
        }
        if r == ERR_NET_RECV_FAILED || r == ERR_NET_SEND_FAILED {
            if let Some(e) = LAST_IO_ERROR.with(|l| l.borrow_mut().take()) {
                s.push_str(&format!(": {e}"));
            }
        }
        s
    }

    fn verify_flags(&self) -> u32 {
        unsafe { sys::mbedtls_ssl_get_verify_result(self.ssl) }
    }

    fn verify_info(&self) -> String {
        let flags = self.verify_flags();
        let mut buf = [0 as c_char; 512];
        let p = c"";
        unsafe {
            sys::mbedtls_x509_crt_verify_info(buf.as_mut_ptr(), buf.len(), p.as_ptr(), flags)
        };
        let s = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
        format!("{} (flags 0x{flags:x})", s.trim().replace('\n', "; "))
    }

    fn describe(&self) -> String {
        let s = |p: *const c_char| {
            if p.is_null() {
                "?".to_string()
            } else {
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            }
        };
        unsafe {
            format!(
                "version {} cipher {}",
                s(sys::mbedtls_ssl_get_version(self.ssl)),
                s(sys::mbedtls_ssl_get_ciphersuite(self.ssl))
            )
        }
    }

    /// Certificates the peer sent (leaf and chain), as mbedTLS kept them.
    fn peer_certificates(&self) -> usize {
        let mut n = 0;
        let mut p = unsafe { sys::mbedtls_ssl_get_peer_cert(self.ssl) };
        while !p.is_null() {
            unsafe {
                if (*p).raw.len > 0 {
                    n += 1;
                }
                p = (*p).next;
            }
        }
        n
    }

    fn shutdown(&mut self) {
        unsafe {
            let _ = sys::mbedtls_ssl_close_notify(self.ssl);
        }
    }
}

impl Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let r = unsafe { sys::mbedtls_ssl_read(self.ssl, buf.as_mut_ptr(), buf.len()) };
            match r {
                r if r >= 0 => return Ok(r as usize),
                ERR_SSL_WANT_READ | ERR_SSL_WANT_WRITE | ERR_SSL_RECEIVED_NEW_SESSION_TICKET => {
                    continue
                }
                ERR_SSL_PEER_CLOSE_NOTIFY | ERR_SSL_CONN_EOF => return Ok(0),
                r => return Err(io::Error::other(self.describe_error(r))),
            }
        }
    }
}

impl Write for Tls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let r = unsafe { sys::mbedtls_ssl_write(self.ssl, buf.as_ptr(), buf.len()) };
            match r {
                r if r >= 0 => return Ok(r as usize),
                ERR_SSL_WANT_READ | ERR_SSL_WANT_WRITE => continue,
                r => return Err(io::Error::other(self.describe_error(r))),
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ------------------------------------------------------------------ client

fn client(o: &Opts) -> Res<()> {
    if o.sessions != 1 {
        return Err("--sessions: resumption is not built into mbedtls-peer".into());
    }
    let conf = config(o)?;
    let tcp = peer_smtp::connect(&o.host, o.port, o.bind.as_deref())?;
    if !o.implicit {
        peer_smtp::client_starttls(&tcp)?;
    }

    let mut tls = Tls::new(conf, tcp, Some(&o.sni))?;
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
    let conf = config(o)?;
    let tcp = peer_smtp::accept(&o.host, o.port, &o.client_auth)?;
    peer_smtp::server_starttls(&tcp, "mbedtls-peer")?;
    let mut tls = Tls::new(conf, tcp, None)?;
    if let Err(e) = tls.handshake() {
        // mbedTLS has already sent the alert for this error
        eprintln!("TLS handshake failed: {e}");
        return Err(format!("TLS handshake failed: {e}").into());
    }
    let n = tls.peer_certificates();
    // `ask` (MBEDTLS_SSL_VERIFY_OPTIONAL) completes the handshake whatever the verification says
    let unverified = if n > 0 && tls.verify_flags() != 0 {
        format!(", not verified: {}", tls.verify_info())
    } else {
        String::new()
    };
    eprintln!(
        "TLS established: {}, client certificates: {n}{unverified}",
        tls.describe()
    );
    peer_smtp::server_mail(&mut tls)?;
    tls.shutdown();
    Ok(())
}

fn main() -> ExitCode {
    peer_smtp::run("mbedtls-peer", USAGE, &["--groups"], client, server)
}
