//! What packagers take from the repository: the license, the release profile, and files generated
//! from the CLI definition (clap), committed so that a package build needs no extra step: man
//! pages in `docs/man/` (`ekuwatch.1` and one per subcommand, `ekuwatch-analyze.1`, …) by
//! clap_mangen, and shell completions in `completions/` (bash, zsh, fish) by clap_complete. They
//! describe the full binary (`--features live`, as shipped).
//!
//! This test is also their generator: it fails when a committed file differs from what the CLI
//! gives now (a flag was added or its help changed), and
//! `EKUWATCH_REGENERATE=1 cargo test --features live --test packaging` rewrites them.

mod common;
use common::repo;

/// Cargo.toml says Apache-2.0; the full text is beside it.
#[test]
fn license_file_is_the_apache_2_0_text() {
    let manifest = std::fs::read_to_string(repo().join("observer/Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"Apache-2.0\""));
    let text = std::fs::read_to_string(repo().join("LICENSE")).unwrap();
    for part in [
        "Apache License",
        "Version 2.0, January 2004",
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        "END OF TERMS AND CONDITIONS",
    ] {
        assert!(text.contains(part), "LICENSE lacks {part:?}");
    }
}

/// The shipped binary carries no debug info; the profiling profile is the same build with it.
#[test]
fn release_is_stripped_and_profiling_has_debug_info() {
    let root: toml::Table = std::fs::read_to_string(repo().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let profile = |name: &str| root["profile"][name].as_table().unwrap().clone();
    let release = profile("release");
    assert!(
        matches!(
            release.get("debug"),
            None | Some(toml::Value::Boolean(false)) | Some(toml::Value::Integer(0))
        ),
        "{release:?}"
    );
    assert_eq!(release["strip"].as_str(), Some("debuginfo"), "{release:?}");
    let profiling = profile("profiling");
    assert_eq!(profiling["inherits"].as_str(), Some("release"));
    assert!(
        profiling["debug"].as_integer().is_some_and(|d| d > 0),
        "{profiling:?}"
    );
    assert_eq!(profiling["strip"].as_str(), Some("none"));
}

/// Man pages and completions describe the full binary (`--features live`).
#[cfg(feature = "live")]
mod generated {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_file())
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            std::fs::read(e.path()).unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Generated now into a temporary folder, compared with (or, regenerating, written over) the
    /// committed folder.
    fn check(committed: PathBuf, generate: impl Fn(&Path)) {
        let tmp = std::env::temp_dir().join(format!(
            "ekuwatch-packaging-{}-{}",
            std::process::id(),
            committed.file_name().unwrap().to_string_lossy()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        generate(&tmp);
        let now = files_in(&tmp);
        assert!(!now.is_empty());
        if std::env::var("EKUWATCH_REGENERATE").is_ok_and(|v| v == "1") {
            let _ = std::fs::remove_dir_all(&committed);
            std::fs::create_dir_all(&committed).unwrap();
            for (name, bytes) in &now {
                std::fs::write(committed.join(name), bytes).unwrap();
            }
        }
        let before = files_in(&committed);
        let _ = std::fs::remove_dir_all(&tmp);
        let stale: Vec<&String> = now
            .keys()
            .filter(|n| before.get(*n) != now.get(*n))
            .chain(before.keys().filter(|n| !now.contains_key(*n)))
            .collect();
        assert!(
            stale.is_empty(),
            "{}: {stale:?} differ from what the CLI gives now; regenerate with \
             EKUWATCH_REGENERATE=1 cargo test --features live --test packaging",
            committed.display()
        );
    }

    #[test]
    fn man_pages_are_current() {
        use clap::CommandFactory;
        check(repo().join("docs/man"), |dir| {
            // The pages name the version only: what features a build has is `--version`'s to say
            // (test.sh builds with every feature, a package with `live`).
            let cmd = ekuwatch::cli::Cli::command().version(env!("CARGO_PKG_VERSION"));
            clap_mangen::generate_to(cmd, dir).unwrap();
        });
    }

    #[test]
    fn shell_completions_are_current() {
        use clap::CommandFactory;
        use clap_complete::Shell;
        check(repo().join("completions"), |dir| {
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                clap_complete::generate_to(
                    shell,
                    &mut ekuwatch::cli::Cli::command(),
                    "ekuwatch",
                    dir,
                )
                .unwrap();
            }
        });
    }
}
