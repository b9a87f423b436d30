//! A skipped test is shown, not hidden in a passing test's output: `skip_or_fail` appends
//! `binary::test: reason` to EKUWATCH_SKIP_LOG, scripts/test.sh lists that file at its end
//! (scripts/skip-summary.sh), and with EKUWATCH_REQUIRE_ALL=1 (CI) a skip fails instead.
//! Checked by running this test binary again on its inner test, as cargo would.

mod common;
use common::repo;
use std::path::Path;
use std::process::{Command, Output};

const INNER: &str = "inner_test_that_skips";
const REASON: &str = "the self-test's reason";

/// Skips only when started by the tests below (EKUWATCH_SKIP_SELFTEST=1); otherwise passes.
#[test]
fn inner_test_that_skips() {
    if std::env::var("EKUWATCH_SKIP_SELFTEST").is_ok_and(|v| v == "1") {
        common::skip_or_fail(REASON);
    }
}

fn run_inner(log: &Path, require_all: bool, threads: &str) -> Output {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([INNER, "--exact", threads])
        .env("EKUWATCH_SKIP_SELFTEST", "1")
        .env("EKUWATCH_SKIP_LOG", log)
        .env_remove("EKUWATCH_REQUIRE_ALL");
    if require_all {
        c.env("EKUWATCH_REQUIRE_ALL", "1");
    }
    c.output().unwrap()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("ekuwatch-skips-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn a_skip_is_logged_with_its_test_and_reason() {
    let log = tmp("log");
    for threads in ["--test-threads=1", "--test-threads=2"] {
        let out = run_inner(&log, false, threads);
        assert!(out.status.success(), "{out:?}");
    }
    let line = format!("skips::{INNER}: {REASON}\n");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        line.repeat(2),
        "one line per skip, named by test binary and test"
    );

    // What scripts/test.sh prints at its end: the count and each skip once.
    let summary = Command::new("bash")
        .arg(repo().join("scripts/skip-summary.sh"))
        .arg(&log)
        .output()
        .unwrap();
    assert!(summary.status.success(), "{summary:?}");
    let text = String::from_utf8(summary.stdout).unwrap();
    assert!(text.starts_with("skipped: 1 "), "{text}");
    assert!(
        text.contains(&format!("\n  skips::{INNER}: {REASON}\n")),
        "{text}"
    );
    let _ = std::fs::remove_file(&log);

    // No skip, no summary.
    let none = Command::new("bash")
        .arg(repo().join("scripts/skip-summary.sh"))
        .arg(tmp("absent"))
        .output()
        .unwrap();
    assert!(none.status.success() && none.stdout.is_empty(), "{none:?}");
}

#[test]
fn with_require_all_a_skip_fails_the_test() {
    let log = tmp("ci");
    let out = run_inner(&log, true, "--test-threads=1");
    assert!(
        !out.status.success(),
        "a skip passed under EKUWATCH_REQUIRE_ALL=1"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(REASON),
        "{out:?}"
    );
    assert!(!log.exists(), "a failure is not a skip");
}

/// scripts/test.sh sets the log and prints the summary on every exit.
#[test]
fn the_test_command_lists_the_skips() {
    let script = std::fs::read_to_string(repo().join("scripts/test.sh")).unwrap();
    assert!(script.contains("export EKUWATCH_SKIP_LOG"), "{script}");
    assert!(
        script.contains("trap 'scripts/skip-summary.sh \"$EKUWATCH_SKIP_LOG\""),
        "{script}"
    );
}
