//! The ClickHouse event store (deploy/clickhouse/) against `ekuwatch report` (the oracle), on a
//! real server: Debian 12's clickhouse-server (18.16; scripts/setup.sh installs it) started on
//! free loopback ports with its own configuration and data directory below target/. The events of
//! the bundled captures go in through the HTTP interface as Vector sends them (deploy/vector.toml:
//! `INSERT INTO "ekuwatch"."events_landing" FORMAT JSONEachRow`, one `{"raw": line}` per row),
//! split across three simulated observers; the SQL views' verdicts, rates, message counts and
//! per-class answers must equal `ekuwatch report --report json` over the same event files.
//! Without a clickhouse-server the test skips (fails under EKUWATCH_REQUIRE_ALL=1).

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ekuwatch");

/// The server binary: Debian's package, or an official build's `clickhouse server`.
fn server_command() -> Option<Command> {
    for p in ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"] {
        if Path::new(p).is_file() {
            return Some(Command::new(p));
        }
    }
    if Path::new("/usr/bin/clickhouse").is_file() {
        let mut c = Command::new("/usr/bin/clickhouse");
        c.arg("server");
        return Some(c);
    }
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A clickhouse-server of this test; stopped when dropped.
struct Server {
    child: Child,
    http: u16,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(mut cmd: Command, dir: &Path) -> Server {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let (http, tcp) = (free_port(), free_port());
        let d = dir.display();
        // 18.16 reads <yandex>; current servers accept it too.
        std::fs::write(
            dir.join("config.xml"),
            format!(
                r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog><size>10M</size><count>1</count></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>104857600</mark_cache_size>
  <uncompressed_cache_size>104857600</uncompressed_cache_size>
  <remote_servers>
    <ekuwatch><shard><replica><host>127.0.0.1</host><port>{tcp}</port></replica></shard></ekuwatch>
  </remote_servers>
</yandex>
"#
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("users.xml"),
            r#"<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"#,
        )
        .unwrap();
        let child = cmd
            .arg(format!("--config-file={d}/config.xml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            http,
            dir: dir.to_path_buf(),
        };
        let start = Instant::now();
        loop {
            if let Ok((200, body)) = server.try_http("GET", "/ping", b"") {
                if body.starts_with("Ok") {
                    return server;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "clickhouse-server did not answer /ping within 30 s: {}",
                std::fs::read_to_string(server.dir.join("error.log"))
                    .or_else(|_| std::fs::read_to_string(server.dir.join("stderr")))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One HTTP/1.0 request (the body read to the end of the connection).
    fn try_http(&self, method: &str, target: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            s,
            "{method} {target} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )?;
        s.write_all(body)?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        let resp = String::from_utf8_lossy(&resp).into_owned();
        let status = resp
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Runs one statement (in the POST body); its output.
    fn sql(&self, query: &str) -> String {
        let (status, body) = self.try_http("POST", "/", query.as_bytes()).unwrap();
        assert_eq!(status, 200, "{query}\n{body}");
        body
    }

    /// Runs a file of statements separated by `;` at the end of a line.
    fn sql_file(&self, name: &str) {
        let text = std::fs::read_to_string(repo().join("deploy/clickhouse").join(name)).unwrap();
        for stmt in text.replace("{cluster}", "ekuwatch").split(";\n") {
            let body: String = stmt
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            if !body.trim().is_empty() {
                self.sql(&body);
            }
        }
    }

    /// Inserts event lines as Vector does (deploy/vector.toml).
    fn insert_events(&self, lines: &str) {
        let rows: String = lines
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("{}\n", serde_json::json!({ "raw": l })))
            .collect();
        let target =
            "/?query=INSERT%20INTO%20%22ekuwatch%22.%22events_landing%22%20FORMAT%20JSONEachRow";
        let (status, body) = self.try_http("POST", target, rows.as_bytes()).unwrap();
        assert_eq!(status, 200, "insert: {body}");
    }

    fn rows(&self, query: &str) -> Vec<Value> {
        self.sql(&format!("{query} FORMAT JSONEachRow"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// 18.16 writes 64-bit integers as strings in JSON; current servers as numbers.
fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Events of the bundled captures (our side 127.0.0.2), with or without the key logs.
fn events(keys: bool, dir: &Path) -> String {
    let file = dir.join(if keys { "keys.jsonl" } else { "nokeys.jsonl" });
    let mut c = Command::new(BIN);
    c.args([
        "analyze",
        "--observer",
        OBSERVER,
        "--local-net",
        "127.0.0.2/32",
    ])
    .args(["--report", "none", "--events"])
    .arg(&file);
    if keys {
        c.arg("--keylog").arg(captures());
    }
    let out = c.arg(captures()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(file).unwrap()
}

/// Lines with their `observer` replaced.
fn as_observer(lines: &[&str], name: &str) -> String {
    lines
        .iter()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["observer"] = Value::from(name);
            format!("{v}\n")
        })
        .collect()
}

/// Compares the SQL views with `ekuwatch report --report json` over `files`; the differences.
fn compare(server: &Server, files: &[PathBuf]) -> Vec<String> {
    let out = Command::new(BIN)
        .args(["report", "--report", "json"])
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sql: BTreeMap<(String, String), Value> = server
        .rows("SELECT * FROM ekuwatch.peer_verdicts")
        .into_iter()
        .map(|r| {
            let key = (
                r["direction"].as_str().unwrap().to_string(),
                r["peer"].as_str().unwrap().to_string(),
            );
            (key, r)
        })
        .collect();
    let mut classes: BTreeMap<(String, String), BTreeMap<String, f64>> = BTreeMap::new();
    for r in server.rows("SELECT * FROM ekuwatch.peer_class_answers") {
        let key = (
            r["direction"].as_str().unwrap().to_string(),
            r["peer"].as_str().unwrap().to_string(),
        );
        let class = r["class"].as_str().unwrap();
        for kind in [
            "accepted",
            "rejected_eku",
            "rejected_trust",
            "rejected_no_cert",
            "rejected_ambiguous",
            "recipient_refused",
            "no_message",
            "unfinished",
        ] {
            let n = num(&r[kind]).unwrap();
            if n > 0.0 {
                classes
                    .entry(key.clone())
                    .or_default()
                    .insert(format!("{class}/{kind}"), n);
            }
        }
    }
    let mut bad = Vec::new();
    let peers = report["peers"].as_array().unwrap();
    if peers.len() != sql.len() {
        bad.push(format!(
            "{} peers in the report, {} in SQL",
            peers.len(),
            sql.len()
        ));
    }
    for p in peers {
        let key = (
            p["direction"].as_str().unwrap().to_string(),
            p["peer"].as_str().unwrap().to_string(),
        );
        let Some(row) = sql.get(&key) else {
            bad.push(format!("{key:?}: not in SQL"));
            continue;
        };
        let verdict = p["verdict"].as_str().unwrap_or("");
        if row["verdict"] != verdict {
            bad.push(format!(
                "{key:?}: verdict SQL {} vs report {verdict}",
                row["verdict"]
            ));
        }
        let c = &p["counts"];
        for field in [
            "sessions",
            "cr_known",
            "cr_present",
            "established",
            "established_with_cr",
            "messages",
            "messages_delivered",
            "messages_rejected",
            "messages_cr_known",
            "messages_with_cr",
            "cr_rate_per_handshake",
            "cr_rate_per_connection",
            "cr_rate_per_established_session",
            "cr_rate_per_message",
        ] {
            let (ours, theirs) = (num(&row[field]), num(&c[field]));
            let same = match (ours, theirs) {
                (Some(a), Some(b)) => (a - b).abs() < 1e-9,
                (None, None) => true,
                _ => false,
            };
            if !same {
                bad.push(format!(
                    "{key:?}: {field} SQL {} vs report {}",
                    row[field], c[field]
                ));
            }
        }
        let answers: BTreeMap<String, f64> = c["answers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), num(v).unwrap()))
            .collect();
        let sql_answers = classes.get(&key).cloned().unwrap_or_default();
        if answers != sql_answers {
            bad.push(format!(
                "{key:?}: answers SQL {sql_answers:?} vs report {answers:?}"
            ));
        }
        let mut observers: Vec<String> = row["observers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap().to_string())
            .collect();
        observers.sort();
        if Value::from(observers.clone()) != p["observers"] {
            bad.push(format!(
                "{key:?}: observers SQL {observers:?} vs report {}",
                p["observers"]
            ));
        }
    }
    bad
}

#[test]
fn sql_verdicts_and_rates_equal_ekuwatch_report_over_three_observers() {
    let Some(cmd) = server_command() else {
        skip_or_fail("no clickhouse-server (scripts/setup.sh installs Debian's package)");
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clickhouse");
    let server = Server::start(cmd, &dir.join("server"));
    server.sql_file("schema.sql");
    server.sql_file("verdicts.sql");
    let work = dir.join("events");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let keyed = events(true, &work);
    let keyless = events(false, &work);
    let keyed: Vec<&str> = keyed.lines().collect();
    let keyless: Vec<&str> = keyless.lines().collect();
    assert!(keyed.len() > 100);

    // 1. Two observers saw the sessions with keys (alternate lines), a third saw them all without
    //    keys: refusals seen without keys meet mail delivered after the same class.
    let a: Vec<&str> = keyed.iter().copied().step_by(2).collect();
    let b: Vec<&str> = keyed.iter().copied().skip(1).step_by(2).collect();
    let mut files = Vec::new();
    for (name, lines) in [("mta-a", &a), ("mta-b", &b), ("mta-c", &keyless)] {
        let text = as_observer(lines, name);
        let f = work.join(format!("{name}.jsonl"));
        std::fs::write(&f, &text).unwrap();
        server.insert_events(&text);
        files.push(f);
    }
    let n = server.sql("SELECT count() FROM ekuwatch.sessions_all");
    assert_eq!(
        n.trim(),
        (keyed.len() + keyless.len()).to_string(),
        "every event became a row"
    );
    let bad = compare(&server, &files);
    assert!(bad.is_empty(), "mixed keys:\n{}", bad.join("\n"));

    // 2. Only keyless events, split across three observers: refusals seen without keys count where
    //    no mail after the same class went through.
    server.sql("TRUNCATE TABLE ekuwatch.sessions");
    let mut files = Vec::new();
    for i in 0..3 {
        let lines: Vec<&str> = keyless.iter().copied().skip(i).step_by(3).collect();
        let name = format!("mta-{i}");
        let text = as_observer(&lines, &name);
        let f = work.join(format!("{name}.jsonl"));
        std::fs::write(&f, &text).unwrap();
        server.insert_events(&text);
        files.push(f);
    }
    let bad = compare(&server, &files);
    assert!(bad.is_empty(), "without keys:\n{}", bad.join("\n"));
    let verdicts = server.rows("SELECT verdict FROM ekuwatch.peer_verdicts");
    assert!(
        verdicts.iter().any(|v| v["verdict"] != ""),
        "the comparison covers verdicts: {verdicts:?}"
    );
}
