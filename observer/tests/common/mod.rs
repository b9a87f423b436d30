//! Helpers shared by the integration tests: run the pipeline on a file, find the captures and the
//! public corpus, and compare our events with the tshark oracle's facts (tests/oracle/tshark_facts.py).
#![allow(dead_code)]

use ekuwatch::flow::FlowConfig;
use ekuwatch::pipeline::Pipeline;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The observer name tests give (`--observer`, `FlowConfig::observer`): goldens must not depend on
/// the host name.
pub const OBSERVER: &str = "test-observer";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn captures() -> PathBuf {
    repo().join("captures")
}

/// `../shared/corpus/public` beside the checkout, if present.
pub fn public_corpus() -> Option<PathBuf> {
    let p = repo().parent()?.join("shared/corpus/public");
    p.is_dir().then_some(p)
}

/// A test that cannot run here (missing folder, tool or root) calls this and returns.
/// CI sets EKUWATCH_REQUIRE_ALL=1: then nothing may be skipped, and this fails the test.
/// Otherwise the skip is shown: cargo hides a passing test's output, so the reason is also
/// appended as one line `test-binary::test-name: reason` to the file named by EKUWATCH_SKIP_LOG,
/// which scripts/test.sh sets and lists under "skipped:" at its end (scripts/skip-summary.sh).
pub fn skip_or_fail(why: &str) {
    if std::env::var("EKUWATCH_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("required test input missing (EKUWATCH_REQUIRE_ALL=1): {why}");
    }
    eprintln!("SKIPPED: {why}");
    if let Some(log) = std::env::var_os("EKUWATCH_SKIP_LOG").filter(|v| !v.is_empty()) {
        log_skip(Path::new(&log), &current_test(), why);
    }
}

/// `binary::test` of the running test: libtest names each test's thread after the test (with
/// `--test-threads=1` too); the binary is this integration test's crate.
pub fn current_test() -> String {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    format!("{}::{test}", env!("CARGO_CRATE_NAME"))
}

/// One line per skip, appended in one write (tests of a binary run in parallel threads, binaries
/// one after another). A log that cannot be written fails the test: a skip must not go unseen.
pub fn log_skip(log: &Path, test: &str, why: &str) {
    use std::io::Write;
    let line = format!("{test}: {}\n", why.replace('\n', " "));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .unwrap_or_else(|e| panic!("cannot append to EKUWATCH_SKIP_LOG {}: {e}", log.display()));
}

pub fn pcaps_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    v.sort();
    v
}

pub fn analyze_with(path: &Path, cfg: FlowConfig) -> Vec<Value> {
    analyze_keyed(path, cfg, None)
}

/// Events carry `observer` = [`OBSERVER`] (not this host's name), so goldens are the same on
/// every machine.
fn analyze_keyed(path: &Path, cfg: FlowConfig, keylog: Option<&[u8]>) -> Vec<Value> {
    let cfg = FlowConfig {
        observer: ekuwatch::event::Observer::new(OBSERVER),
        ..cfg
    };
    let mut p = Pipeline::new(cfg);
    if let Some(k) = keylog {
        p.flows.add_keylog(k);
    }
    let _ = p.read_file(path, |_, _| {});
    p.finish();
    p.take_events()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

pub fn analyze(path: &Path) -> Vec<Value> {
    analyze_with(path, FlowConfig::default())
}

/// With the key log beside the capture (`<name>.keylog`) when there is one.
pub fn analyze_with_keys(path: &Path) -> Vec<Value> {
    let keylog = std::fs::read(path.with_extension("keylog")).ok();
    analyze_keyed(path, FlowConfig::default(), keylog.as_deref())
}

pub fn endpoint(v: &Value) -> String {
    let ip = v["ip"].as_str().unwrap();
    if ip.contains(':') {
        format!("[{ip}]:{}", v["port"])
    } else {
        format!("{ip}:{}", v["port"])
    }
}

/// RFC 4514 string → attributes in DER order (our names are most-specific-first).
pub fn rfc4514_to_der_order(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == ',' || c == '+' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts.reverse();
    parts
}

fn eku_oids(cert: &Value) -> Vec<String> {
    let mut v: Vec<String> = match cert["eku"].as_array() {
        Some(a) => a
            .iter()
            .map(|n| ekuwatch::x509::eku_oid(n.as_str().unwrap()))
            .collect(),
        None => vec![],
    };
    v.sort();
    v
}

fn sorted(v: &Value) -> Value {
    match v.as_array() {
        Some(a) => {
            let mut s: Vec<String> = a
                .iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect();
            s.sort();
            Value::from(s)
        }
        None => Value::Null,
    }
}

/// Compares our events with the oracle's lines for one capture. Returns the disagreements
/// (empty = agreement) and how many handshake facts were compared.
pub fn compare_with_oracle(ours: &[Value], oracle: &[Value]) -> (Vec<String>, usize) {
    let mut bad = Vec::new();
    let mut compared = 0;
    for o in oracle {
        let client = o["client"].as_str().unwrap();
        let Some(ev) = ours
            .iter()
            .find(|e| endpoint(&e["client"]) == client && !e["tls"].is_null())
        else {
            bad.push(format!(
                "{client}: oracle has a TLS handshake, we have no TLS event"
            ));
            continue;
        };
        let t = &ev["tls"];
        let mut check = |what: &str, ours: Value, theirs: &Value| {
            compared += 1;
            if &ours != theirs {
                bad.push(format!("{client}: {what}: ours {ours} vs tshark {theirs}"));
            }
        };
        check("version", t["version"].clone(), &o["version"]);
        check("cipher", t["cipher_id"].clone(), &o["cipher"]);
        check("sni", t["sni"].clone(), &o["sni"]);
        // CertificateRequest presence: the oracle says null when it cannot see (TLS 1.3 without
        // keys); then ours must not claim plaintext knowledge.
        let cr = &t["certificate_request"];
        if o["cr_present"].is_null() {
            check(
                "cr_evidence_not_plaintext",
                Value::Bool(cr["evidence"] != "plaintext"),
                &Value::Bool(true),
            );
        } else if cr["evidence"] != "unknown" {
            check("cr_present", cr["present"].clone(), &o["cr_present"]);
        }
        if cr["present"] == Value::Bool(true) && cr["evidence"] != "inferred" {
            let names: Vec<Value> = cr["ca_names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| Value::from(rfc4514_to_der_order(n.as_str().unwrap())))
                .collect();
            check("ca_names", Value::from(names), &o["ca_names"]);
        }
        // The first fatal alert tshark saw (plaintext, or decrypted with the key log) is our
        // outcome's alert, whenever we could read it (plaintext or decrypted).
        let fatal = o["alerts"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["level"] == 2));
        if let Some(f) = fatal {
            let ours = &t["outcome"]["alert"];
            if !ours["code"].is_null() || t["decryption"] == "ok" || ours["encrypted"] == false {
                check(
                    "fatal_alert",
                    serde_json::json!([ours["sender"], ours["code"]]),
                    &serde_json::json!([f["sender"], f["description"]]),
                );
            }
        }
        for (side, key) in [
            ("client", "client_certificate"),
            ("server", "server_certificate"),
        ] {
            let c = &t[key];
            let ostatus = if side == "client" {
                o["client_cert"].clone()
            } else {
                Value::Null
            };
            if side == "client" && !ostatus.is_null() && c["status"] != "unknown" {
                check("client_cert", c["status"].clone(), &ostatus);
            }
            if c["evidence"] == "inferred" || c["status"] == "unknown" {
                continue;
            }
            let olen = &o[format!("{side}_chain_len").as_str()];
            if !olen.is_null() {
                check(
                    &format!("{side}_chain_len"),
                    Value::from(c["chain"].as_array().unwrap().len()),
                    olen,
                );
            }
            let oeku = &o[format!("{side}_leaf_eku").as_str()];
            if !oeku.is_null() {
                let ours = c["chain"]
                    .as_array()
                    .unwrap()
                    .first()
                    .map(eku_oids)
                    .map(Value::from)
                    .unwrap_or(Value::Null);
                check(&format!("{side}_leaf_eku"), ours, &sorted(oeku));
            }
        }
    }
    (bad, compared)
}

pub fn read_jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs the tshark oracle on a capture (with its key log when given). None when tshark/python3 are missing.
pub fn tshark_oracle(pcap: &Path, keylog: Option<&Path>) -> Option<Vec<Value>> {
    let script = repo().join("tests/oracle/tshark_facts.py");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(&script).arg(pcap);
    if let Some(k) = keylog {
        cmd.arg("--keylog").arg(k);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("tshark") && err.contains("not found") {
            return None;
        }
        panic!("oracle failed on {}: {err}", pcap.display());
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

pub fn have_tshark() -> bool {
    std::process::Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `sh -c CMD`; true when it succeeded.
pub fn sh(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .is_ok_and(|s| s.success())
}

pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The first of `tools` not on PATH.
pub fn missing_tool(tools: &[&str]) -> Option<String> {
    tools
        .iter()
        .find(|t| !sh(&format!("command -v {t} >/dev/null")))
        .map(|t| t.to_string())
}

/// A real Postfix (captures/generate.sh --setup-only: ports 2525 no client-cert request, 2526
/// ask_ccert, 2527 req_ccert) in a network namespace, reached over a veth pair whose host end is
/// `veth` (address `cli`; Postfix at `srv`). Torn down on drop.
#[allow(dead_code)]
pub struct PostfixLab {
    pub ns: String,
    pub veth: String,
    pub cli: String,
    pub srv: String,
    pub work: PathBuf,
}

#[allow(dead_code)]
impl PostfixLab {
    /// `tag`: a short distinct prefix per test (interface names are at most 15 bytes).
    pub fn start(tag: &str) -> PostfixLab {
        use std::process::Command;
        let id = std::process::id() % 10000;
        let (ns, veth, peer) = (
            format!("{tag}{id}"),
            format!("{tag}{id}a"),
            format!("{tag}{id}b"),
        );
        let net = 150 + (id + tag.len() as u32 * 7) % 100;
        let work = std::env::temp_dir().join(format!("ekuwatch-{tag}-{}", std::process::id()));
        let lab = PostfixLab {
            ns,
            veth,
            cli: format!("10.{net}.0.1"),
            srv: format!("10.{net}.0.2"),
            work,
        };
        let PostfixLab {
            ns, veth, cli, srv, ..
        } = &lab;
        assert!(sh(&format!(
            "ip netns add {ns} && ip link add {veth} type veth peer name {peer} && ip link set {peer} netns {ns} \
             && ip addr add {cli}/24 dev {veth} && ip link set {veth} up \
             && ip netns exec {ns} ip addr add {srv}/24 dev {peer} && ip netns exec {ns} ip link set {peer} up \
             && ip netns exec {ns} ip link set lo up"
        )));
        let setup = Command::new("ip")
            .args(["netns", "exec", ns, "env"])
            .arg(format!("EKUWATCH_CAPTURE_WORKDIR={}", lab.work.display()))
            .arg(format!("EKUWATCH_CAPTURE_SERVER={srv}"))
            .arg(repo().join("captures/generate.sh"))
            .arg("--setup-only")
            .output()
            .unwrap();
        assert!(
            setup.status.success(),
            "Postfix did not start: {}",
            String::from_utf8_lossy(&setup.stderr)
        );
        lab
    }
}

impl Drop for PostfixLab {
    fn drop(&mut self) {
        use std::process::Command;
        let conf = self.work.join("etc");
        let _ = Command::new("ip")
            .args(["netns", "exec", &self.ns, "postfix", "-c"])
            .arg(&conf)
            .arg("stop")
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// A child process killed (and reaped) when dropped.
#[allow(dead_code)]
pub struct Kill(pub std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET http://127.0.0.1:PORT/PATH (HTTP/1.0); the body, or None.
#[allow(dead_code)]
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Polls `f` every 200 ms until it holds; fails the test after `secs`.
#[allow(dead_code)]
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
