//! The exporter of `ekuwatch live` under hostile clients, as root (live capture on `lo`): hundreds
//! of idle connections, an endless request head, concurrent scrapes and wrong methods. Scrapes keep
//! answering and the observer's memory stays bounded.
#![cfg(feature = "live")]

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// One request, written as given; the whole response (head and body), or None.
fn raw(port: u16, request: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request).ok()?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned())
}

#[test]
fn exporter_survives_hostile_clients() {
    if !is_root() {
        return skip_or_fail("needs root (packet capture on lo)");
    }
    let port = 30000 + (std::process::id() % 20000) as u16;
    let ekw = Kill(
        Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
            .args(["live", "--interface", "lo", "--port", "1"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = ekw.0.id();
    wait_for("exporter", 20, || {
        http_get(port, "/healthz").is_some_and(|b| b == "ok\n")
    });
    let metrics = http_get(port, "/metrics").unwrap();
    for family in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
        "ekuwatch_build_info{features=",
    ] {
        assert!(metrics.contains(family), "{family} not in /metrics");
    }
    assert!(metrics.contains("revision=\"") && metrics.contains("features=\"live"));
    let rss_before = rss_kib(pid);

    // Methods and paths.
    let r = raw(
        port,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert!(
        r.starts_with("HTTP/1.1 405") && r.contains("allow: GET, HEAD"),
        "{r}"
    );
    let r = raw(port, b"HEAD /metrics HTTP/1.0\r\n\r\n").unwrap();
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200") && body.is_empty(), "{r}");
    assert!(
        !head.contains("content-length: 0"),
        "HEAD says the GET length: {head}"
    );
    let r = raw(port, b"GET /nope HTTP/1.0\r\n\r\n").unwrap();
    assert!(r.starts_with("HTTP/1.0 404"), "{r}");

    // Slowloris: 300 connections that never finish a request head.
    let idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ").ok()?;
            Some(s)
        })
        .collect();
    assert!(
        idle.len() >= 250,
        "only {} idle connections opened",
        idle.len()
    );

    // An endless request head: 64 MiB of one header line. The server stops reading at its limit.
    let flood = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nX-Big: ");
        let chunk = vec![b'a'; 1 << 20];
        let mut sent = 0usize;
        for _ in 0..64 {
            match s.write_all(&chunk) {
                Ok(()) => sent += chunk.len(),
                Err(_) => break, // closed by the server: what should happen
            }
        }
        sent
    });

    // Concurrent scrapes while all that is going on: every one answers, quickly.
    let t = Instant::now();
    let scrapes: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || http_get(port, "/metrics")))
        .collect();
    for s in scrapes {
        let body = s.join().unwrap().expect("a scrape got no answer");
        assert!(body.contains("ekuwatch_capture_packets_total"));
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "20 scrapes took {:?}",
        t.elapsed()
    );
    let sent = flood.join().unwrap();
    assert!(
        sent < 64 << 20,
        "the server read a 64 MiB request head ({sent} bytes accepted)"
    );
    let rss_after = rss_kib(pid);
    eprintln!(
        "RSS {rss_before} KiB before, {rss_after} KiB with {} idle connections and a 64 MiB head refused",
        idle.len()
    );
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    // The idle connections are closed by the server once their head deadline passes.
    std::thread::sleep(Duration::from_secs(7));
    let mut closed = 0;
    for mut s in idle {
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut b = [0u8; 256];
        if s.read(&mut b).is_ok() {
            closed += 1; // EOF or the 408 the server sends before closing
        }
    }
    assert!(closed >= 250, "only {closed} idle connections were closed");
    assert_eq!(http_get(port, "/healthz").as_deref(), Some("ok\n"));
}

/// `[web]` in the configuration file: HTTPS with the given certificate, basic auth against bcrypt
/// hashes (checked with curl, as Prometheus would scrape it).
#[test]
fn exporter_tls_and_basic_auth() {
    if !is_root() {
        return skip_or_fail("needs root (packet capture on lo)");
    }
    if let Some(m) = missing_tool(&["openssl", "curl"]) {
        return skip_or_fail(&format!("{m} not installed"));
    }
    let dir = std::env::temp_dir().join(format!("ekuwatch-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    assert!(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256"
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success());
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    // check-config reads [web] as live would: a missing key file and a bad hash are errors.
    let bad = dir.join("bad.toml");
    for (web, want) in [
        (
            format!(
                "[web.tls_server_config]\ncert_file = \"{}\"\nkey_file = \"/nonexistent.pem\"\n",
                cert.display()
            ),
            "/nonexistent.pem",
        ),
        (
            "[web.basic_auth_users]\nprometheus = \"plaintext\"\n".to_string(),
            "not a bcrypt hash",
        ),
    ] {
        std::fs::write(&bad, web).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
            .arg("check-config")
            .arg(&bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{err}");
    }
    let port = 32000 + (std::process::id() % 20000) as u16;
    let conf = dir.join("ekuwatch.toml");
    std::fs::write(
        &conf,
        format!(
            "interface = \"lo\"\nlisten = \"127.0.0.1:{port}\"\n\n[web.tls_server_config]\n\
             cert_file = \"{}\"\nkey_file = \"{}\"\n\n[web.basic_auth_users]\nprometheus = \"{hash}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let _ekw = Kill(
        Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
            .args(["live", "--config"])
            .arg(&conf)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let curl = |auth: Option<&str>, scheme: &str| -> (String, String) {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-m",
            "5",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(&cert);
        if let Some(a) = auth {
            c.args(["-u", a]);
        }
        let out = c
            .arg(format!("{scheme}://127.0.0.1:{port}/metrics"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
        (code.to_string(), body.to_string())
    };
    wait_for("the HTTPS exporter", 20, || curl(None, "https").0 == "401");
    let (code, body) = curl(Some("prometheus:s3cret"), "https");
    assert_eq!(code, "200");
    assert!(body.contains("ekuwatch_capture_packets_total"));
    assert_eq!(curl(Some("prometheus:wrong"), "https").0, "401");
    assert_eq!(curl(Some("nobody:s3cret"), "https").0, "401");
    // Plain HTTP on the TLS port gets nothing.
    assert_ne!(curl(Some("prometheus:s3cret"), "http").0, "200");
}
