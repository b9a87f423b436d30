//! Replays saved fuzz inputs through the fuzz targets' own code (`ekuwatch::fuzzing`), so that a
//! crash once found and fixed stays fixed under ordinary `cargo test`, without nightly or
//! cargo-fuzz. `fuzz/regressions/<target>/` holds, per target: `crash-*` inputs that once broke a
//! property (none so far: docs/robustness.md), and `cov-*` inputs, a few small ones from the
//! minimized corpus of the long runs that reach deep paths (decrypted handshakes, reassembly
//! overlaps, chains), so each target's replay exercises real work.

use ekuwatch::fuzzing;
use std::path::Path;

#[test]
fn every_saved_input_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    for target in fuzzing::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        files.sort();
        assert!(
            !files.is_empty(),
            "{}: no saved inputs for target {target}",
            dir.display()
        );
        for f in files {
            let data = std::fs::read(&f).expect("readable input");
            // A panic here names the file through the message below.
            let r = std::panic::catch_unwind(|| fuzzing::run(target, &data));
            assert!(
                matches!(r, Ok(true)),
                "{target}: {} panicked or is unknown",
                f.display()
            );
        }
    }
}

#[test]
fn the_bundled_captures_run_through_the_pipeline_target() {
    // The pipeline target's seeds: every real capture must pass the same checks (events
    // serialise, the peer book takes them).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../captures");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("captures/") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            fuzzing::pipeline(&std::fs::read(&p).expect("readable capture"));
            n += 1;
        }
    }
    assert!(n >= 50, "only {n} captures found");
}

#[test]
fn unknown_target_names_are_refused() {
    assert!(!fuzzing::run("no-such-target", b""));
}
