//! `ekuwatch report EVENTS…` against `ekuwatch analyze` (the oracle) over the same events: the
//! bundled captures, with their key logs and our side marked (so there are outbound verdicts),
//! analysed once with `--events`; then the events reported from that one file, and split across
//! three simulated observers (one file plain, one gzip, one on standard input). Every report format
//! must say the same per peer; only the capture counters (packets, flows: unknown to `report`)
//! may differ.

mod common;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ekuwatch");
const FORMATS: [&str; 5] = ["json", "text", "markdown", "html", "csv"];

fn work(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `ekuwatch analyze` over the captures, once for all tests: (events file, report per format).
fn analyze_captures() -> &'static (PathBuf, Vec<String>) {
    static ONCE: std::sync::OnceLock<(PathBuf, Vec<String>)> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| analyze_into(&work("report-analyze")))
}

fn analyze_into(dir: &Path) -> (PathBuf, Vec<String>) {
    let events = dir.join("events.jsonl");
    let caps = captures();
    let run = |format: &str, events: Option<&Path>| {
        let mut c = Command::new(BIN);
        c.args([
            "analyze",
            "--observer",
            OBSERVER,
            "--local-net",
            "127.0.0.2/32",
        ])
        .arg("--keylog")
        .arg(&caps)
        .args(["--report", format]);
        if let Some(e) = events {
            c.arg("--events").arg(e);
        }
        let out = c.arg(&caps).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let mut reports = vec![run(FORMATS[0], Some(&events))];
    reports.extend(FORMATS[1..].iter().map(|f| run(f, None)));
    (events, reports)
}

fn report(format: &str, files: &[&Path], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(["report", "--report", format])
        .args(files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if stdin.is_some() {
        c.arg("-").stdin(Stdio::piped());
    }
    let mut child = c.spawn().unwrap();
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        w.write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The report without what only a capture can tell (packets, flows, bytes, files).
fn per_peer(format: &str, report: &str, drop_observers: bool) -> String {
    if format == "json" {
        let mut v: Value = serde_json::from_str(report).unwrap();
        v.as_object_mut().unwrap().remove("capture");
        if drop_observers {
            for p in v["peers"].as_array_mut().unwrap() {
                p.as_object_mut().unwrap().remove("observers");
            }
        }
        return serde_json::to_string_pretty(&v).unwrap();
    }
    report
        .lines()
        .filter(|l| !(l.contains(" files, ") && l.contains(" packets")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn report_over_the_events_equals_analyze_over_the_captures() {
    let (events, analyzed) = analyze_captures();
    let text = std::fs::read_to_string(events).unwrap();
    assert!(text.lines().count() > 100, "the captures give many events");
    assert!(
        text.lines()
            .all(|l| l.contains(&format!("\"observer\":\"{OBSERVER}\""))),
        "every event names its observer"
    );
    for (format, want) in FORMATS.iter().zip(analyzed) {
        let (code, got, err) = report(format, &[events], None);
        assert_eq!(code, 0, "{format}: {err}");
        assert_eq!(
            per_peer(format, &got, false),
            per_peer(format, want, false),
            "{format}: report differs from analyze"
        );
    }
    let v: Value = serde_json::from_str(&analyzed[0]).unwrap();
    let verdicts: Vec<&str> = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["verdict"].as_str())
        .collect();
    assert!(
        verdicts.contains(&"requests_rejects_server_only"),
        "outbound verdicts are compared: {verdicts:?}"
    );
}

#[test]
fn events_of_three_observers_merge_to_the_same_report() {
    let dir = work("report-three-observers");
    let (events, analyzed) = analyze_captures();
    let text = std::fs::read_to_string(events).unwrap();
    let mut parts = [String::new(), String::new(), String::new()];
    for (i, line) in text.lines().enumerate() {
        let mut v: Value = serde_json::from_str(line).unwrap();
        v["observer"] = Value::from(format!("mta{}", i % 3));
        parts[i % 3].push_str(&format!("{v}\n"));
    }
    let plain = dir.join("mta0.jsonl");
    std::fs::write(&plain, &parts[0]).unwrap();
    let gz = dir.join("mta1.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(parts[1].as_bytes()).unwrap();
    enc.finish().unwrap();
    for (format, want) in FORMATS.iter().zip(analyzed) {
        let (code, got, err) = report(format, &[&plain, &gz], Some(parts[2].as_bytes()));
        assert_eq!(code, 0, "{format}: {err}");
        assert_eq!(
            per_peer(format, &got, true),
            per_peer(format, want, true),
            "{format}: merged report differs from analyze"
        );
        if *format == "json" {
            let v: Value = serde_json::from_str(&got).unwrap();
            for p in v["peers"].as_array().unwrap() {
                assert_eq!(p["observers"], serde_json::json!(["mta0", "mta1", "mta2"]));
            }
        }
    }
}

#[test]
fn bad_lines_are_said_with_file_and_line_and_the_rest_is_reported() {
    let dir = work("report-bad-lines");
    let (events, analyzed) = analyze_captures();
    let mut text = std::fs::read_to_string(events).unwrap();
    text.insert_str(0, "not json\n{\"type\":\"session\",\"observer\":1}\n\n");
    let damaged = dir.join("damaged.jsonl");
    std::fs::write(&damaged, text).unwrap();
    let missing = dir.join("missing.jsonl");
    let (code, got, err) = report("json", &[&damaged, &missing], None);
    assert_eq!(code, 1, "bad input: exit 1");
    assert!(err.contains("damaged.jsonl:1: "), "{err}");
    assert!(err.contains("damaged.jsonl:2: "), "{err}");
    assert!(
        !err.contains("damaged.jsonl:3: "),
        "an empty line is no error: {err}"
    );
    assert!(err.contains("missing.jsonl: "), "{err}");
    assert_eq!(
        per_peer("json", &got, false),
        per_peer("json", &analyzed[0], false),
        "the good lines are still reported"
    );
    let (code, _, err) = report("json", &[], None);
    assert_eq!(code, 2, "no EVENTS is a usage error: {err}");
}
