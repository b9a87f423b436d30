#!/usr/bin/env python3
"""Fails when the declared MSRV is below what the locked dependencies declare.

Reads `cargo metadata --format-version 1 --locked --all-features` (every optional backend's
dependencies too) and compares each package's `rust_version` with the `rust-version` the workspace
members declare (observer/Cargo.toml; a member without one is held to the same). Exit 1, one line,
naming the highest requirement above it; exit 0 otherwise. The code's own needs (std APIs) are
checked by clippy's `incompatible_msrv` lint, which reads the same `rust-version`.

    scripts/check-msrv.py
"""
import json
import subprocess
import sys
from pathlib import Path


def version(v):
    """'1.88' / '1.88.0' -> (1, 88, 0)"""
    parts = [int(p) for p in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--all-features"],
        cwd=root,
        stdout=subprocess.PIPE,
    )
    if r.returncode != 0:
        print(f"check-msrv: cargo metadata failed (exit {r.returncode}; its error is above)")
        return 1
    meta = json.loads(r.stdout)
    members = set(meta["workspace_members"])
    declared = [
        p["rust_version"]
        for p in meta["packages"]
        if p["id"] in members and p.get("rust_version")
    ]
    if not declared:
        print("check-msrv: no workspace member declares rust-version")
        return 1
    msrv = min(declared, key=version)
    worst = max(
        (
            (version(p["rust_version"]), p["name"], p["version"], p["rust_version"])
            for p in meta["packages"]
            if p["id"] not in members and p.get("rust_version")
        ),
        default=None,
    )
    if worst and worst[0] > version(msrv):
        _, name, ver, needs = worst
        print(
            f"check-msrv: rust-version {msrv} is too low: {name} {ver} (in Cargo.lock) needs {needs}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
