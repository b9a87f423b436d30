//! End to end, as root: `ekuwatch live` captures real OpenSSL traffic on `lo` (an OpenSSL server
//! verifying client certificates with the ssl_client purpose; clients presenting a dual-EKU, a
//! serverAuth-only and no certificate), a real Prometheus server (Debian package) scrapes it, and
//! the counters read back through Prometheus's HTTP API match the events written for the same
//! traffic. Every dashboard query is executed against that Prometheus. SIGTERM leaves the final
//! counters consistent with the events.
#![cfg(feature = "live")]

mod common;
use common::*;
use serde_json::Value;
use std::io::Write;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn urlencode(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn prom_query(port: u16, q: &str) -> Value {
    let body = http_get(port, &format!("/api/v1/query?query={}", urlencode(q))).unwrap_or_default();
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

fn prom_scalar(port: u16, q: &str) -> Option<f64> {
    let r = prom_query(port, q);
    r["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

/// A real Prometheus (Debian package) scraping the given exporter ports every second, evaluating
/// the fleet recording rules (dashboards/prometheus/recording.yml) every second too.
fn start_prometheus(dir: &Path, exporters: &[u16], port: u16) -> Kill {
    let cfg = dir.join("prometheus.yml");
    let targets: Vec<String> = exporters
        .iter()
        .map(|p| format!("'127.0.0.1:{p}'"))
        .collect();
    let rules = std::fs::read_to_string(repo().join("dashboards/prometheus/recording.yml"))
        .unwrap()
        .replace("interval: 1m", "interval: 1s");
    std::fs::write(dir.join("recording.yml"), rules).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [recording.yml]\nscrape_configs:\n  - job_name: ekuwatch\n    static_configs: [{{targets: [{}]}}]\n",
            targets.join(", ")
        ),
    )
    .unwrap();
    Kill(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `openssl s_client` options: trust the lab root; with a lab client certificate variant, present
/// its leaf, its chain and its key.
fn tls_client_identity(c: &mut Command, pki: &Path, cert: Option<&str>) {
    c.arg("-CAfile").arg(pki.join("root.cert.pem"));
    if let Some(name) = cert {
        c.arg("-cert")
            .arg(pki.join(format!("client-{name}.cert.pem")));
        c.arg("-cert_chain")
            .arg(pki.join(format!("client-{name}.chain.pem")));
        c.arg("-key")
            .arg(pki.join(format!("client-{name}.key.pem")));
    }
}

fn client(pki: &Path, port: u16, cert: Option<&str>, version: &str) {
    client_from(pki, "127.0.0.2", "127.0.0.1", port, cert, version)
}

/// A TLS client from `from` to `to`: with `--local-net 127.0.0.2/32 127.0.0.4/32`, .2 → .1 is
/// outbound (our MTA sending) and .3 → .4 is inbound (a peer sending to our MTA).
fn client_from(pki: &Path, from: &str, to: &str, port: u16, cert: Option<&str>, version: &str) {
    let mut c = Command::new("openssl");
    c.args([
        "s_client",
        "-connect",
        &format!("{to}:{port}"),
        "-bind",
        &format!("{from}:0"),
        "-servername",
        "mx.lab.test",
        version,
    ]);
    tls_client_identity(&mut c, pki, cert);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ = child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"hello one\nhello two\n");
    std::thread::sleep(Duration::from_millis(600));
    drop(child.stdin.take());
    let _ = child.wait();
}

#[test]
fn live_capture_scraped_by_real_prometheus() {
    if !is_root() {
        return skip_or_fail("needs root (packet capture on lo)");
    }
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        return skip_or_fail("prometheus not installed (scripts/setup.sh installs it)");
    }
    let base = 20000 + (std::process::id() % 20000) as u16;
    let (tls_port, exporter, prom_port) = (base, base + 1, base + 2);
    let dir = std::env::temp_dir().join(format!("ekuwatch-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pki = captures().join("pki");
    let events = dir.join("events.jsonl");

    let mut ekw = Kill(
        Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
            .args([
                "live",
                "--interface",
                "lo",
                "--port",
                &tls_port.to_string(),
                "--listen",
                &format!("127.0.0.1:{exporter}"),
            ])
            .args(["--local-net", "127.0.0.2/32", "--local-net", "127.0.0.4/32"])
            .args(["--linger", "5", "--events"])
            .arg(&events)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for("exporter", 20, || {
        http_get(exporter, "/healthz").is_some_and(|b| b == "ok\n")
    });
    // Started as root, it runs as `nobody` once the capture is open.
    let status = std::fs::read_to_string(format!("/proc/{}/status", ekw.0.id())).unwrap();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    assert!(
        !uid.split_whitespace().skip(1).any(|u| u == "0"),
        "still root: {uid}"
    );

    let _server = Kill(
        Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &tls_port.to_string(),
                "-Verify",
                "3",
                "-verify_return_error",
            ])
            .args(["-purpose", "sslclient", "-naccept", "9", "-quiet"])
            .arg("-cert")
            .arg(pki.join("server.chain.pem"))
            .arg("-key")
            .arg(pki.join("server.key.pem"))
            .arg("-CAfile")
            .arg(pki.join("root.cert.pem"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    client(&pki, tls_port, Some("both"), "-tls1_2");
    client(&pki, tls_port, Some("serveronly"), "-tls1_2");
    client(&pki, tls_port, None, "-tls1_2");
    client(&pki, tls_port, Some("both"), "-tls1_3");
    client_from(
        &pki,
        "127.0.0.3",
        "127.0.0.4",
        tls_port,
        Some("both"),
        "-tls1_2",
    );
    client_from(
        &pki,
        "127.0.0.3",
        "127.0.0.4",
        tls_port,
        Some("clientonly"),
        "-tls1_2",
    );
    client_from(&pki, "127.0.0.3", "127.0.0.4", tls_port, None, "-tls1_2");

    // A real Prometheus scraping the exporter every second.
    let _prom = start_prometheus(&dir, &[exporter], prom_port);
    let evs = || {
        read_jsonl(&events)
            .into_iter()
            .filter(|e| !e["tls"].is_null())
            .collect::<Vec<Value>>()
    };
    wait_for("7 TLS events", 30, || evs().len() >= 7);
    let evs = evs();
    let n = evs.len() as f64;
    let with_cr = evs
        .iter()
        .filter(|e| e["tls"]["certificate_request"]["present"] == true)
        .count() as f64;
    let failed_43 = evs
        .iter()
        .filter(|e| e["tls"]["outcome"]["alert"]["code"] == 43)
        .count() as f64;
    assert_eq!(
        failed_43, 1.0,
        "the serverAuth-only client got alert 43: {evs:?}"
    );
    wait_for("Prometheus to scrape the counters", 60, || {
        prom_scalar(prom_port, "sum(ekuwatch_tls_handshakes_total)") == Some(n)
    });
    assert_eq!(
        prom_scalar(prom_port, "sum(ekuwatch_certificate_requests_total)"),
        Some(with_cr)
    );
    assert_eq!(
        prom_scalar(
            prom_port,
            r#"sum(ekuwatch_handshake_outcomes_total{client_eku_class="server_only",alert="unsupported_certificate"})"#
        ),
        Some(1.0)
    );
    assert_eq!(
        prom_scalar(
            prom_port,
            r#"sum(ekuwatch_tls_handshakes_total{direction="outbound"})"#
        ),
        Some(n - 3.0)
    );
    assert_eq!(
        prom_scalar(
            prom_port,
            r#"sum(ekuwatch_tls_handshakes_total{direction="inbound"})"#
        ),
        Some(3.0)
    );
    assert_eq!(
        prom_scalar(prom_port, r#"ekuwatch_peer_verdict{peer="lab.test"}"#),
        Some(1.0)
    );
    let v = prom_query(prom_port, "ekuwatch_peer_verdict");
    assert_eq!(
        v["data"]["result"][0]["metric"]["verdict"], "requests_rejects_server_only",
        "{v}"
    );

    // Every dashboard query runs against this Prometheus (rates need a few scrapes of each series).
    std::thread::sleep(Duration::from_secs(5));
    let queries = std::fs::read_to_string(repo().join("dashboards/grafana/queries.json")).ok();
    if let Some(q) = queries {
        let list: Vec<Value> = serde_json::from_str(&q).unwrap();
        let mut empty = Vec::new();
        for item in &list {
            let expr = item["expr"].as_str().unwrap();
            let r = prom_query(prom_port, expr);
            assert_eq!(
                r["status"], "success",
                "dashboard query failed: {expr}: {r}"
            );
            if r["data"]["result"].as_array().is_none_or(|a| a.is_empty()) {
                empty.push(expr.to_string());
            }
        }
        assert!(
            empty.is_empty(),
            "{} of {} dashboard queries returned nothing: {empty:#?}",
            empty.len(),
            list.len()
        );
    } else {
        skip_or_fail("dashboards/grafana/queries.json missing");
    }

    // /peers has the full table; SIGTERM: the final counters stay consistent with the events.
    let peers: Value = serde_json::from_str(&http_get(exporter, "/peers").unwrap()).unwrap();
    assert_eq!(peers["peers"][0]["verdict"], "requests_rejects_server_only");
    let pid = ekw.0.id();
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let final_metrics =
        http_get(exporter, "/metrics").expect("final counters served during linger");
    let total: f64 = final_metrics
        .lines()
        .filter(|l| l.starts_with("ekuwatch_tls_handshakes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let final_events = read_jsonl(&events)
        .into_iter()
        .filter(|e| !e["tls"].is_null())
        .count() as f64;
    assert_eq!(
        total, final_events,
        "final scrape matches the events written"
    );
    let status = ekw.0.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two observers — one on a veth pair to a network namespace, one on `lo` — scraped by the same
/// Prometheus: the dashboards' `sum by` queries aggregate across instances.
#[test]
fn two_observers_aggregate_in_one_prometheus() {
    if !is_root() {
        return skip_or_fail("needs root (network namespace, packet capture)");
    }
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        return skip_or_fail("prometheus not installed (scripts/setup.sh installs it)");
    }
    let id = std::process::id() % 10000;
    let (ns, veth) = (format!("ekw{id}"), format!("ekw{id}a"));
    let peer = format!("ekw{id}b");
    struct Cleanup(String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
            let _ = Command::new("ip").args(["link", "del", &self.1]).status();
        }
    }
    let _c = Cleanup(ns.clone(), veth.clone());
    let net = 100 + id % 100;
    assert!(sh(&format!(
        "ip netns add {ns} && ip link add {veth} type veth peer name {peer} && ip link set {peer} netns {ns} \
         && ip addr add 10.{net}.0.1/24 dev {veth} && ip link set {veth} up \
         && ip netns exec {ns} ip addr add 10.{net}.0.2/24 dev {peer} && ip netns exec {ns} ip link set {peer} up \
         && ip netns exec {ns} ip link set lo up"
    )));
    let base = 40000 + (std::process::id() % 10000) as u16;
    let (tls_port, exp_a, exp_b, prom_port) = (base, base + 1, base + 2, base + 3);
    let dir = std::env::temp_dir().join(format!("ekuwatch-two-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pki = captures().join("pki");
    let observer = |iface: &str, exporter: u16, events: &Path| {
        Kill(
            Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
                .args([
                    "live",
                    "--interface",
                    iface,
                    "--port",
                    &tls_port.to_string(),
                    "--listen",
                    &format!("127.0.0.1:{exporter}"),
                ])
                .args(["--linger", "3", "--user", "-", "--events"])
                .arg(events)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let (ev_a, ev_b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    let _oa = observer(&veth, exp_a, &ev_a);
    let _ob = observer("lo", exp_b, &ev_b);
    for e in [exp_a, exp_b] {
        wait_for("exporter", 20, || http_get(e, "/healthz").is_some());
    }
    // one TLS server in the namespace (reached over the veth), one on lo
    let server = |prefix: &str, addr: &str| {
        Kill(
            Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "exec {prefix} openssl s_server -accept {addr}:{tls_port} -quiet -naccept 4 -Verify 3 -cert {} -key {} -CAfile {}",
                    pki.join("server.chain.pem").display(),
                    pki.join("server.key.pem").display(),
                    pki.join("root.cert.pem").display()
                ))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let _sa = server(&format!("ip netns exec {ns}"), &format!("10.{net}.0.2"));
    let _sb = server("", "127.0.0.1");
    std::thread::sleep(Duration::from_millis(600));
    let connect = |addr: &str, bind: &str| {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("{addr}:{tls_port}"),
                "-bind",
                &format!("{bind}:0"),
                "-tls1_2",
                "-servername",
                "mx.lab.test",
            ])
            .arg("-cert")
            .arg(pki.join("client-both.chain.pem"))
            .arg("-key")
            .arg(pki.join("client-both.key.pem"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _ = child.stdin.as_mut().unwrap().write_all(b"hi\nthere\n");
        std::thread::sleep(Duration::from_millis(400));
        drop(child.stdin.take());
        let _ = child.wait();
    };
    connect(&format!("10.{net}.0.2"), &format!("10.{net}.0.1"));
    connect(&format!("10.{net}.0.2"), &format!("10.{net}.0.1"));
    connect("127.0.0.1", "127.0.0.2");
    let tls = |p: &Path| {
        read_jsonl(p)
            .into_iter()
            .filter(|e| !e["tls"].is_null())
            .count() as f64
    };
    wait_for("events on both observers", 30, || {
        tls(&ev_a) >= 2.0 && tls(&ev_b) >= 1.0
    });
    let _prom = start_prometheus(&dir, &[exp_a, exp_b], prom_port);
    let (a, b) = (tls(&ev_a), tls(&ev_b));
    wait_for("both instances scraped", 60, || {
        prom_scalar(
            prom_port,
            "count(count by (instance) (ekuwatch_tls_handshakes_total))",
        ) == Some(2.0)
            && prom_scalar(prom_port, "sum(ekuwatch_tls_handshakes_total)") == Some(a + b)
    });
    // per instance and aggregated, as the dashboards do it
    let q = format!(r#"sum(ekuwatch_tls_handshakes_total{{instance="127.0.0.1:{exp_a}"}})"#);
    assert_eq!(prom_scalar(prom_port, &q), Some(a));
    // every handshake here had a CR: the sum over instances is the sum of both observers
    assert_eq!(
        prom_scalar(prom_port, "sum(ekuwatch_certificate_requests_total)"),
        Some(a + b)
    );
    // The fleet recording rules run on what the two observers export: every rule healthy, and the
    // peers-per-verdict series equals its expression evaluated on the raw gauges.
    wait_for("recording rules evaluated", 30, || {
        let r = http_get(prom_port, "/api/v1/rules").unwrap_or_default();
        let v: Value = serde_json::from_str(&r).unwrap_or(Value::Null);
        let rules: Vec<&Value> = v["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        rules.len() == 8
            && rules
                .iter()
                .all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
    });
    let raw = "count(max by (peer, verdict) (ekuwatch_peer_verdict == 1))";
    wait_for("recorded peers per verdict", 30, || {
        prom_scalar(prom_port, "sum(verdict:ekuwatch_peers:count)") == prom_scalar(prom_port, raw)
            && prom_scalar(prom_port, raw).is_some()
    });
    // The capture interface disappears under observer A: it stops with an error, but what it had
    // counted is still served (linger) and equals its events.
    assert!(sh(&format!("ip link del {veth}")));
    std::thread::sleep(Duration::from_millis(800));
    let last =
        http_get(exp_a, "/metrics").expect("final counters served after the interface vanished");
    let counted: f64 = last
        .lines()
        .filter(|l| l.starts_with("ekuwatch_tls_handshakes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted, tls(&ev_a), "no counted data lost");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A real Postfix in a network namespace (the captures' lab configuration: ask_ccert on 2526,
/// req_ccert on 2527), real `openssl s_client -starttls smtp` clients sending mail across a veth pair,
/// `ekuwatch live` on the host side of the veth, a real Prometheus scraping it: counters match
/// the events, and the peer gets the verdict its configuration implies.
#[test]
fn postfix_across_a_network_namespace() {
    if !is_root() {
        return skip_or_fail("needs root (network namespace, Postfix, packet capture)");
    }
    let tools = [
        "postfix",
        "prometheus",
        "swaks",
        "gnutls-cli",
        "tshark",
        "tcpdump",
    ];
    if let Some(tool) = missing_tool(&tools) {
        return skip_or_fail(&format!(
            "{tool} not installed (scripts/setup.sh installs it)"
        ));
    }
    let lab = PostfixLab::start("ekp");
    let (veth, cli, srv, work) = (&lab.veth, &lab.cli, &lab.srv, &lab.work);
    let base = 50000 + (std::process::id() % 10000) as u16;
    let (exporter, prom_port) = (base, base + 1);
    let events = work.join("events.jsonl");
    let _ekw = Kill(
        Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
            .args([
                "live",
                "--interface",
                veth,
                "--port",
                "2525",
                "--port",
                "2526",
                "--port",
                "2527",
            ])
            .args([
                "--listen",
                &format!("127.0.0.1:{exporter}"),
                "--local-net",
                &format!("{cli}/32"),
                "--user",
                "-",
            ])
            .arg("--events")
            .arg(&events)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("exporter", 20, || http_get(exporter, "/healthz").is_some());
    let pki = captures().join("pki");
    let smtp = |port: u16, cert: Option<&str>| {
        let mut c = Command::new("openssl");
        c.args([
            "s_client",
            "-starttls",
            "smtp",
            "-connect",
            &format!("{srv}:{port}"),
            "-tls1_2",
            "-servername",
            "mx.lab.test",
            "-ign_eof",
        ]);
        tls_client_identity(&mut c, &pki, cert);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        for line in [
            "EHLO out.lab.test",
            "MAIL FROM:<sender@out.lab.test>",
            "RCPT TO:<root@lab.test>",
            "DATA",
            "Subject: e2e\r\n\r\nhello\r\n.",
            "QUIT",
        ] {
            let _ = stdin.write_all(format!("{line}\r\n").as_bytes());
            std::thread::sleep(Duration::from_millis(300));
        }
        drop(child.stdin.take());
        let _ = child.wait();
    };
    smtp(2526, Some("serveronly")); // ask_ccert: accepted ("Untrusted"), mail carried
    smtp(2526, Some("both"));
    smtp(2527, Some("serveronly")); // req_ccert: 421 "not designated for use as a client certificate"
    smtp(2525, None); // no CertificateRequest
    let tls = || {
        read_jsonl(&events)
            .into_iter()
            .filter(|e| !e["tls"].is_null())
            .collect::<Vec<Value>>()
    };
    wait_for("4 TLS sessions", 30, || tls().len() >= 4);
    let evs = tls();
    let by_port = |p: u16| {
        evs.iter()
            .find(|e| e["server"]["port"] == p)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        by_port(2525)["tls"]["certificate_request"]["present"],
        false
    );
    assert_eq!(
        by_port(2527)["tls"]["outcome"]["result"],
        "closed_after_handshake"
    );
    assert!(
        evs.iter()
            .all(|e| e["direction"] == "outbound" && e["smtp"]["starttls"] == "accepted"),
        "{evs:?}"
    );

    let _prom = start_prometheus(work, &[exporter], prom_port);
    let n = evs.len() as f64;
    wait_for("Prometheus to scrape the counters", 60, || {
        prom_scalar(prom_port, "sum(ekuwatch_tls_handshakes_total)") == Some(n)
    });
    assert_eq!(
        prom_scalar(prom_port, "sum(ekuwatch_certificate_requests_total)"),
        Some(3.0)
    );
    assert_eq!(
        prom_scalar(
            prom_port,
            r#"sum(ekuwatch_smtp_sessions_total{starttls="accepted"})"#
        ),
        Some(n)
    );
    let v = prom_query(prom_port, "ekuwatch_peer_verdict");
    assert_eq!(
        v["data"]["result"][0]["metric"]["verdict"], "requests_rejects_server_only",
        "{v}"
    );

    // What became of the mail, read back through Prometheus, against Postfix's own log: messages
    // it accepted (`data=N` of its disconnect lines counts DATA commands that succeeded, i.e.
    // the reply after the body) and sessions it aborted right after TLS (req_ccert).
    let maillog = || std::fs::read_to_string(work.join("maillog")).unwrap_or_default();
    wait_for("Postfix to log 4 disconnects", 20, || {
        maillog().matches("disconnect from").count() >= 4
    });
    let log = maillog();
    let accepted: f64 = log
        .lines()
        .filter(|l| l.contains("disconnect from"))
        .filter_map(|l| {
            let n = l.split_once(" data=")?.1;
            n.split(['/', ' ']).next()?.parse::<f64>().ok()
        })
        .sum();
    let aborted = log.matches("NOQUEUE: abort: TLS").count() as f64;
    assert_eq!(
        (accepted, aborted),
        (3.0, 1.0),
        "ask_ccert ×2 and noask carried a message, req_ccert closed: {log}"
    );
    assert_eq!(
        prom_scalar(
            prom_port,
            r#"sum(ekuwatch_smtp_messages_total{direction="outbound",result="delivered"})"#
        ),
        Some(accepted)
    );
    assert_eq!(
        prom_scalar(
            prom_port,
            r#"sum(ekuwatch_smtp_messages_total{result="refused_at_ehlo",client_eku_class="server_only",certificate_request="yes"})"#
        ),
        Some(aborted)
    );
    // The per-message CertificateRequest rate: the two ask_ccert messages of three.
    let rate = prom_scalar(
        prom_port,
        r#"sum(ekuwatch_smtp_messages_total{direction="outbound",certificate_request="yes",result!="refused_at_ehlo"}) / sum(ekuwatch_smtp_messages_total{direction="outbound",certificate_request=~"yes|no|no_tls",result!="refused_at_ehlo"})"#,
    )
    .unwrap();
    assert!((rate - 2.0 / 3.0).abs() < 1e-9, "{rate}");
}
