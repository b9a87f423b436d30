//! The `ekuwatch` binary as a user runs it: exit codes, one-line errors, reports.

mod common;
use common::*;
use std::process::Command;

fn ekuwatch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn per_peer_table_on_the_bundled_captures() {
    let dir = captures();
    let (code, out, _) = ekuwatch(&["analyze", dir.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.starts_with("PEER"), "{out}");
    assert!(out.contains("lab.test"), "{out}");
    assert!(
        out.contains("CA names requested: \"CN=Lab Root CA,O=Lab\""),
        "{out}"
    );
    assert!(out.contains("presented/server_only"), "{out}");
}

#[test]
fn json_report_and_events() {
    let dir = captures();
    let tmp = std::env::temp_dir().join(format!("ekuwatch-cli-{}.jsonl", std::process::id()));
    let (code, out, _) = ekuwatch(&[
        "analyze",
        "--report",
        "json",
        "--events",
        tmp.to_str().unwrap(),
        "--local-net",
        "127.0.0.2/32",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let peers = report["peers"].as_array().unwrap();
    let outbound = peers
        .iter()
        .find(|p| p["direction"] == "outbound")
        .expect("outbound peer (client 127.0.0.2 is local)");
    assert_eq!(outbound["peer"], "lab.test");
    assert!(outbound["counts"]["cr_present"].as_u64().unwrap() > 0);
    assert!(outbound["verdict"].is_string(), "{outbound}");
    assert!(outbound["evidence"]
        .as_str()
        .unwrap()
        .contains("CertificateRequest"));
    let events = read_jsonl(&tmp);
    assert_eq!(
        events.len() as u64,
        report["capture"]["events"].as_u64().unwrap()
    );
    assert!(events.iter().any(|e| e["direction"] == "outbound"));
    let _ = std::fs::remove_file(tmp);
}

#[test]
fn errors_are_one_line_with_non_zero_exit() {
    let (code, _, err) = ekuwatch(&["analyze", "/nonexistent/x.pcap"]);
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/x.pcap"));
    let (code, _, _) = ekuwatch(&["analyze", "--local-net", "not-a-cidr", "x.pcap"]);
    assert_eq!(code, 2);
    let (code, _, _) = ekuwatch(&["frobnicate"]);
    assert_eq!(code, 2);
    let notpcap = captures().join("README.md");
    let (code, _, err) = ekuwatch(&["analyze", notpcap.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a pcap"), "{err}");
}

/// Data hygiene: with key logs and full logging, no secret, address or message content appears
/// in events, reports or logs.
#[test]
fn no_secrets_addresses_or_content_in_any_output() {
    let dir = captures();
    let mut args: Vec<String> = vec![
        "analyze".into(),
        "--events".into(),
        "-".into(),
        "--report".into(),
        "json".into(),
    ];
    let mut secrets = Vec::new();
    for f in pcaps_in(&dir) {
        let k = f.with_extension("keylog");
        if let Ok(text) = std::fs::read_to_string(&k) {
            secrets.extend(
                text.lines()
                    .filter_map(|l| l.split(' ').nth(2))
                    .map(|s| s.to_ascii_lowercase()),
            );
            args.push("--keylog".into());
            args.push(k.to_string_lossy().into());
        }
    }
    assert!(secrets.len() > 20);
    args.push(dir.to_string_lossy().into());
    let out = Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
        .args(&args)
        .env("EKUWATCH_LOG", "trace")
        .output()
        .unwrap();
    assert!(out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .to_ascii_lowercase();
    assert!(all.contains("\"decryption\":\"ok\""), "keys were used");
    for s in &secrets {
        assert!(!all.contains(s.as_str()), "a key log secret leaked");
    }
    for needle in [
        "sender@out.lab.test",
        "root@lab.test",
        "mail from",
        "rcpt to",
        "hello from",
        "subject:",
    ] {
        assert!(!all.contains(needle), "{needle:?} leaked into the output");
    }
}

/// `--openmetrics` output is accepted by promtool's backfill, and its final counters match the events.
#[test]
fn openmetrics_backfill_is_accepted_by_promtool() {
    if Command::new("promtool").arg("--version").output().is_err() {
        return skip_or_fail("promtool not installed (scripts/setup.sh installs prometheus)");
    }
    let dir = std::env::temp_dir().join(format!("ekuwatch-om-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let om = dir.join("out.om");
    let (code, out, err) = ekuwatch(&[
        "analyze",
        "--report",
        "none",
        "--events",
        "-",
        "--openmetrics",
        om.to_str().unwrap(),
        captures().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let tls_events = out.lines().filter(|l| !l.contains("\"tls\":null")).count() as f64;
    let text = std::fs::read_to_string(&om).unwrap();
    assert!(text.ends_with("# EOF\n"));
    // the last sample of every handshake series, summed, is the number of TLS events
    let mut last: std::collections::BTreeMap<String, f64> = Default::default();
    for l in text
        .lines()
        .filter(|l| l.starts_with("ekuwatch_tls_handshakes_total{"))
    {
        let (series, rest) = l.split_once("} ").unwrap();
        last.insert(
            series.to_string(),
            rest.split(' ').next().unwrap().parse().unwrap(),
        );
    }
    assert_eq!(last.values().sum::<f64>(), tls_events);
    let st = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_accepts_the_example_and_rejects_unknown_keys() {
    let example = repo().join("deploy/ekuwatch.toml");
    let (code, out, err) = ekuwatch(&["check-config", example.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok ("), "{out}");
    let bad = std::env::temp_dir().join(format!("ekuwatch-bad-{}.toml", std::process::id()));
    std::fs::write(&bad, "interface = \"eth0\"\nlocal_net = [\"10.0.0.0/8\"]\n").unwrap();
    let (code, _, err) = ekuwatch(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown field") && err.trim().lines().count() == 1,
        "{err}"
    );
    let (code, _, _) = ekuwatch(&[
        "analyze",
        "--config",
        bad.to_str().unwrap(),
        captures().to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    let _ = std::fs::remove_file(bad);
}
