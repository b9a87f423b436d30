//! With the `ebpf` feature: compiles the kernel program (../ebpf) for the BPF target and hands its
//! path to the crate as `EKUWATCH_EBPF_OBJECT`. Without it: nothing (the default build needs only
//! stable Rust).
//!
//! The kernel crate needs `-Z build-std=core` for `bpfel-unknown-none`: the pinned nightly with
//! rust-src, and bpf-linker on PATH (scripts/setup.sh installs both). `EKUWATCH_EBPF_TOOLCHAIN`
//! overrides the toolchain.
use std::path::PathBuf;
use std::process::Command;

const NIGHTLY: &str = "nightly-2026-05-19";

/// The commit being built (`ekuwatch_build_info{revision}`, `--version`): `git rev-parse`, or
/// `EKUWATCH_REVISION` when set (a build from a tarball), else `unknown`.
fn revision() {
    println!("cargo:rerun-if-env-changed=EKUWATCH_REVISION");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("..");
    for p in [".git/HEAD", ".git/index"] {
        if root.join(p).exists() {
            println!("cargo:rerun-if-changed={}", root.join(p).display());
        }
    }
    let rev = std::env::var("EKUWATCH_REVISION").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(&root)
            .output()
            .ok()?;
        let rev = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !rev.is_empty()).then_some(rev)
    });
    println!(
        "cargo:rustc-env=EKUWATCH_REVISION={}",
        rev.as_deref().unwrap_or("unknown")
    );
}

fn main() {
    println!("cargo:rerun-if-env-changed=EKUWATCH_EBPF_TOOLCHAIN");
    revision();
    if std::env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir.join("..");
    for p in [
        "ebpf/src",
        "ebpf/Cargo.toml",
        "ebpf/Cargo.lock",
        "ebpf-common/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let target_dir = out.join("ebpf-target");
    let toolchain = std::env::var("EKUWATCH_EBPF_TOOLCHAIN").unwrap_or_else(|_| NIGHTLY.into());
    let mut cmd = Command::new("rustup");
    cmd.args(["run", &toolchain, "cargo", "build", "--release", "--locked"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--manifest-path")
        .arg(root.join("ebpf/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // BTF for the loader; debug info is where BTF comes from. BPF v3 (kernel ≥ 5.12) for the
        // compare-and-swap of the flow lock.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf\x1f-Ctarget-cpu=v3",
        );
    // The outer build's settings must not leak into the BPF build.
    for k in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(k);
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("cannot run rustup to build the eBPF program ({e}); run scripts/setup.sh")
    });
    if !status.success() {
        panic!(
            "building the eBPF program failed; it needs `rustup toolchain install {NIGHTLY} \
             --component rust-src` and `cargo install bpf-linker@0.10.4 --locked` (scripts/setup.sh)"
        );
    }
    let obj = target_dir.join("bpfel-unknown-none/release/ekuwatch-ebpf");
    println!("cargo:rustc-env=EKUWATCH_EBPF_OBJECT={}", obj.display());
}
