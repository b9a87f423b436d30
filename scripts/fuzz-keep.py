#!/usr/bin/env python3
"""Saves fuzz inputs for `cargo test` to replay (observer/tests/fuzz_regressions.rs).

    scripts/fuzz-keep.py FUZZ_DIR [--out DIR] [--per-target N] [--max-bytes B]

For each target: every crash, leak, timeout or OOM input libFuzzer left in FUZZ_DIR/artifacts/<target>/
(copied as-is: fix the bug, then keep the input), and the N largest corpus inputs of at most B bytes
from FUZZ_DIR/corpus/<target>/ that the fuzzer found itself (not the seeds): after a long run these are
the inputs that reach deepest (decrypted handshakes, overlapping segments, whole chains), small
enough to commit. Written to DIR/<target>/cov-<sha1> (content-named: idempotent; DIR defaults to
FUZZ_DIR/regressions).
"""
import argparse
import hashlib
import pathlib
import shutil

TARGETS = ["pipeline", "reassembly", "smtp", "tls", "x509", "keylog", "config"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fuzz_dir", type=pathlib.Path)
    ap.add_argument("--out", type=pathlib.Path)
    ap.add_argument("--per-target", type=int, default=12)
    ap.add_argument("--max-bytes", type=int, default=4096)
    a = ap.parse_args()
    for t in TARGETS:
        out = (a.out or a.fuzz_dir / "regressions") / t
        out.mkdir(parents=True, exist_ok=True)
        for art in sorted((a.fuzz_dir / "artifacts" / t).glob("*")):
            if art.is_file():
                shutil.copy(art, out / art.name)
                print(f"{t}: kept artifact {art.name}")
        corpus = []
        for p in (a.fuzz_dir / "corpus" / t).glob("*"):
            if p.name.startswith("seed-"):
                continue
            try:  # a running fuzzer replaces inputs as it reduces them
                data = p.read_bytes()
            except OSError:
                continue
            if 0 < len(data) <= a.max_bytes:
                corpus.append((-len(data), p.name, data))
        corpus.sort()
        for _, _, data in corpus[:a.per_target]:
            (out / ("cov-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)
        print(f"{t}: {min(len(corpus), a.per_target)} corpus inputs kept "
              f"(of {len(corpus)} up to {a.max_bytes} bytes)")


if __name__ == "__main__":
    main()
