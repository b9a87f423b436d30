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

/// Runs the binary with extra environment variables (and `EKUWATCH_LOG`/`NO_COLOR` cleared first).
fn ekuwatch_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ekuwatch"));
    cmd.args(args)
        .env_remove("EKUWATCH_LOG")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A fresh temporary directory for one test.
fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ekuwatch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const ONE: &str = "pf-454-swaks-tlsoptional.pcap";

/// Log lines are coloured on a terminal only, and never with NO_COLOR (run under `script`, which
/// gives the process a pseudo-terminal).
#[test]
fn logs_are_coloured_only_on_a_terminal_without_no_color() {
    if missing_tool(&["script"]).is_some() {
        return skip_or_fail("script (util-linux) missing");
    }
    let one = captures().join(ONE);
    let cmd = format!(
        "{} analyze --report none {}",
        env!("CARGO_BIN_EXE_ekuwatch"),
        one.display()
    );
    let on_tty = |no_color: bool| {
        let mut c = Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .env("EKUWATCH_LOG", "info")
            .env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let out = c.output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tty = on_tty(false);
    assert!(tty.contains("reading"), "{tty}");
    assert!(tty.contains('\x1b'), "no colour on a terminal: {tty:?}");
    let tty_no_color = on_tty(true);
    assert!(tty_no_color.contains("reading"), "{tty_no_color}");
    assert!(
        !tty_no_color.contains('\x1b'),
        "colour with NO_COLOR: {tty_no_color:?}"
    );
    let (code, _, err) = ekuwatch_env(
        &["analyze", "--report", "none", one.to_str().unwrap()],
        &[("EKUWATCH_LOG", "info")],
    );
    assert_eq!(code, 0);
    assert!(err.contains("reading"), "{err}");
    assert!(!err.contains('\x1b'), "colour into a pipe: {err:?}");
}

/// `--log-format json`: standard error is one JSON object per line, the error lines included.
#[test]
fn json_logs_are_one_object_per_line() {
    let one = captures().join(ONE);
    let readme = repo().join("README.md");
    let (code, out, err) = ekuwatch_env(
        &[
            "analyze",
            "--log-format",
            "json",
            one.to_str().unwrap(),
            readme.to_str().unwrap(),
        ],
        &[("EKUWATCH_LOG", "info")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(out.starts_with("PEER"), "{out}");
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(lines.iter().any(|l| l["level"] == "INFO"
        && l["fields"]["message"] == "reading"
        && l["fields"]["file"] == one.to_str().unwrap()));
    assert!(lines.iter().any(|l| l["level"] == "ERROR"
        && l["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("README.md: not a pcap")));
}

#[test]
fn invalid_log_filter_is_a_usage_error() {
    let one = captures().join(ONE);
    let (code, out, err) = ekuwatch_env(
        &["analyze", one.to_str().unwrap()],
        &[("EKUWATCH_LOG", "ekuwatch=loud")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("ekuwatch: invalid EKUWATCH_LOG"), "{err}");
    // unset or empty: the default level, no error
    let (code, _, err) = ekuwatch_env(&["analyze", one.to_str().unwrap()], &[("EKUWATCH_LOG", "")]);
    assert_eq!(code, 0, "{err}");
}

/// A bad input does not stop the others: they are analysed and reported, each bad one is said on
/// one line, and the exit status is 1.
#[test]
fn bad_inputs_exit_1_after_the_rest_is_analysed() {
    let one = captures().join(ONE);
    let readme = repo().join("README.md");
    let (code, out, err) = ekuwatch(&[
        "analyze",
        "--events",
        "-",
        "--report",
        "none",
        readme.to_str().unwrap(),
        "/nonexistent/x.pcap",
        one.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out.lines().count(), 1, "the good capture's event: {out}");
    let lines: Vec<&str> = err.trim().lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with("ekuwatch: ") && lines[0].contains("README.md: not a pcap"));
    assert!(lines[1].contains("/nonexistent/x.pcap: cannot open"));
    // the io error is said once (not again as the error's source)
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    // the report still comes, and names the non-capture
    let (code, out, _) = ekuwatch(&["analyze", one.to_str().unwrap(), readme.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.starts_with("PEER") && out.contains("1 events"), "{out}");
    // an empty file named on the command line is no capture either
    let dir = tmpdir("empty-file");
    let empty = dir.join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let (code, _, err) = ekuwatch(&["analyze", empty.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// In a directory only captures are read (by magic number or a capture's name); other files are
/// skipped; a directory without a capture, or with a file named like a capture that is none, is
/// an error.
#[test]
fn directories_read_their_captures_and_skip_other_files() {
    let dir = tmpdir("walk");
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::copy(captures().join(ONE), sub.join("capture.dat")).unwrap();
    std::fs::write(dir.join("README.md"), "# notes\n").unwrap();
    std::fs::write(dir.join("a.keylog"), "CLIENT_RANDOM 00 00\n").unwrap();
    let (code, out, err) = ekuwatch_env(
        &["analyze", dir.to_str().unwrap()],
        &[("EKUWATCH_LOG", "info")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 files, 23 packets"), "{out}");
    assert!(err.contains("files=2"), "skipped files counted: {err}");
    // a file named like a capture that is none is read, and reported
    std::fs::write(sub.join("broken.pcap"), "not a capture").unwrap();
    let (code, out, err) = ekuwatch(&["analyze", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("1 events"), "{out}");
    assert!(err.contains("broken.pcap: not a pcap"), "{err}");
    // no capture at all
    let none = dir.join("none");
    std::fs::create_dir_all(&none).unwrap();
    std::fs::write(none.join("notes.txt"), "hello\n").unwrap();
    let (code, out, err) = ekuwatch(&["analyze", none.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "no report without any input: {out}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("no capture in {}", none.display())),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `ekuwatch analyze DIR --events - | head -1`: the reader goes away; the run ends quietly, exit 0.
#[test]
fn closed_standard_output_ends_quietly() {
    use std::io::BufRead;
    let dir = captures();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
        // twice the bundled captures: far more than a pipe buffer holds
        .args(["analyze", "--events", "-"])
        .args([&dir, &dir])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'), "{first}");
    // (the reader is dropped here: the pipe is closed)
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

/// `-` reads a capture from standard input, with the same events as the file.
#[test]
fn dash_reads_a_capture_from_standard_input() {
    let one = captures().join(ONE);
    let (code, from_file, err) = ekuwatch(&["analyze", "--events", "-", one.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
        .args(["analyze", "--events", "-", "-"])
        .stdin(std::fs::File::open(&one).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), from_file);
    assert_eq!(from_file.lines().count(), 1);
    // not a capture on standard input: exit 1, said once
    let out = Command::new(env!("CARGO_BIN_EXE_ekuwatch"))
        .args(["analyze", "-"])
        .stdin(std::fs::File::open(repo().join("README.md")).unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("(standard input): not a pcap"), "{err}");
    // twice is a usage error
    let (code, _, _) = ekuwatch(&["analyze", "-", "-"]);
    assert_eq!(code, 2);
}

/// `--keylog` takes several files and directories (every file in one, not recursive).
#[test]
fn keylog_accepts_several_files_and_a_directory() {
    let names = [
        "ossl-verify-tls13-openssl-both",
        "gnutls-verify-tls13-openssl-nocert",
    ];
    let caps: Vec<String> = names
        .iter()
        .map(|n| captures().join(format!("{n}.pcap")).display().to_string())
        .collect();
    let keys: Vec<std::path::PathBuf> = names
        .iter()
        .map(|n| captures().join(format!("{n}.keylog")))
        .collect();
    let decrypted = |extra: &[&str]| {
        let mut args = vec!["analyze", "--events", "-"];
        args.extend_from_slice(extra);
        args.extend(caps.iter().map(String::as_str));
        let (code, out, err) = ekuwatch(&args);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.lines().count(), 2, "{out}");
        out.matches("\"decryption\":\"ok\"").count()
    };
    assert_eq!(decrypted(&[]), 0);
    let (k0, k1) = (keys[0].to_str().unwrap(), keys[1].to_str().unwrap());
    assert_eq!(decrypted(&["--keylog", k0]), 1);
    assert_eq!(decrypted(&["--keylog", k0, "--keylog", k1]), 2);
    let dir = tmpdir("keylogs");
    for k in &keys {
        std::fs::copy(k, dir.join(k.file_name().unwrap())).unwrap();
    }
    // a capture in the directory is skipped (no malformed-line warning), a subfolder not read
    std::fs::copy(captures().join(ONE), dir.join(ONE)).unwrap();
    std::fs::create_dir_all(dir.join("old")).unwrap();
    assert_eq!(decrypted(&["--keylog", dir.to_str().unwrap()]), 2);
    let (_, _, err) = ekuwatch(&["analyze", "--keylog", dir.to_str().unwrap(), &caps[0]]);
    assert!(!err.contains("malformed"), "{err}");
    // a missing key log: said, the rest analysed, exit 1
    let (code, out, err) = ekuwatch(&[
        "analyze",
        "--keylog",
        "/nonexistent/k.keylog",
        "--events",
        "-",
        &caps[0],
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        err.contains("cannot read key log /nonexistent/k.keylog"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `--version` says which optional features are compiled in.
#[test]
fn version_lists_the_compiled_features() {
    let (code, out, _) = ekuwatch(&["--version"]);
    assert_eq!(code, 0);
    let features = if cfg!(feature = "ebpf") {
        "live, ebpf"
    } else if cfg!(feature = "live") {
        "live"
    } else {
        "none"
    };
    assert_eq!(
        out.trim(),
        format!(
            "ekuwatch {} (features: {features})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

/// Without the `live` feature, `ekuwatch live` says how to build it (usage error), whatever follows.
#[cfg(not(feature = "live"))]
#[test]
fn live_without_the_feature_says_how_to_build_it() {
    for args in [
        &["live"][..],
        &["live", "--interface", "eth0"],
        &["live", "--help"],
    ] {
        let (code, _, err) = ekuwatch(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(
            err.trim(),
            "ekuwatch: this ekuwatch was built without live capture: cargo build --release --features live"
        );
    }
}

#[cfg(feature = "live")]
#[test]
fn live_usage_errors_exit_2() {
    let (code, _, err) = ekuwatch(&["live"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no interface"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// A name that is no interface is said so, root or not — not blamed on a missing capability.
#[cfg(feature = "live")]
#[test]
fn nonexistent_interface_is_named_as_such() {
    let (code, _, err) = ekuwatch(&[
        "live",
        "--interface",
        "ekw-nosuch0",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("interface ekw-nosuch0: no such interface (interfaces here: ")
            && err.contains("lo"),
        "{err}"
    );
    assert!(!err.contains("CAP_NET_RAW"), "{err}");
}

/// The capability hint stays where it applies: an existing interface, no permission (run as
/// nobody with no capabilities).
#[cfg(feature = "live")]
#[test]
fn missing_capability_is_named_for_an_existing_interface() {
    if !is_root() || missing_tool(&["setpriv"]).is_some() {
        return skip_or_fail("needs root and setpriv (util-linux) to run as nobody");
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_ekuwatch"))
        .args(["live", "--interface", "lo", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.starts_with("setpriv:") {
        return skip_or_fail(&format!("nobody cannot run the test binary: {err}"));
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("interface lo: ") && err.contains("CAP_NET_RAW"),
        "{err}"
    );
}
