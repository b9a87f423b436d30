#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, taken from the bundled real captures (tshark reads them).

    scripts/fuzz-seeds.py CAPTURES_DIR CORPUS_DIR

Writes CORPUS_DIR/<target>/seed-* in each target's own input encoding (fuzz/fuzz_targets/*.rs):
  smtp    each TCP stream: chunks as [ctl][bytes], ctl bit 7 = to-client, low 7 bits = length
  tls     the part of each stream from the first ClientHello on: ctl length counts 4-byte units
          (a chunk's last 1-3 bytes are carried into that direction's next chunk)
  x509    every certificate in every Certificate message (TLS 1.3 ones decrypted with the capture's
          key log)
  keylog  the captures' key logs
  config  deploy/ekuwatch.toml
The pipeline target is seeded with the capture files themselves (scripts/fuzz.sh passes the
directory). Idempotent: files are named by content hash.
"""
import hashlib
import pathlib
import subprocess
import sys


def put(corpus, target, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)


def follow(pcap):
    """[(to_client, bytes)] of TCP stream 0, in capture order."""
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-q", "-z", "follow,tcp,raw,0"],
        capture_output=True, text=True, check=True).stdout
    chunks = []
    for line in out.splitlines():
        s = line.strip()
        if not s or any(c not in "0123456789abcdef" for c in s):
            continue
        chunks.append((line.startswith("\t"), bytes.fromhex(s)))
    return chunks


def smtp_seed(chunks):
    out = bytearray()
    for to_client, data in chunks:
        for i in range(0, len(data), 127):
            piece = data[i:i + 127]
            out.append((0x80 if to_client else 0) | len(piece))
            out += piece
    return bytes(out)


def tls_seed(chunks):
    start = next((i for i, (tc, d) in enumerate(chunks) if not tc and d[:2] == b"\x16\x03"), None)
    if start is None:
        return None
    out = bytearray()
    carry = {False: b"", True: b""}
    for to_client, data in chunks[start:]:
        data = carry[to_client] + data
        usable = len(data) - len(data) % 4
        carry[to_client] = data[usable:]
        for i in range(0, usable, 508):
            piece = data[i:min(i + 508, usable)]
            out.append((0x80 if to_client else 0) | (len(piece) // 4))
            out += piece
    return bytes(out)


def certificates(pcap):
    cmd = ["tshark", "-r", str(pcap), "-Y", "tls.handshake.certificate", "-T", "fields",
           "-e", "tls.handshake.certificate"]
    keylog = pcap.with_suffix(".keylog")
    if keylog.exists():
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.split():
        for h in line.split(","):
            if h:
                yield bytes.fromhex(h.replace(":", ""))


def main():
    captures, corpus = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    repo = pathlib.Path(__file__).resolve().parent.parent
    n = 0
    for pcap in sorted(captures.glob("*.pcap")):
        chunks = follow(pcap)
        if chunks:
            put(corpus, "smtp", smtp_seed(chunks))
            t = tls_seed(chunks)
            if t:
                put(corpus, "tls", t)
        for der in certificates(pcap):
            put(corpus, "x509", der)
        n += 1
    for kl in sorted(captures.glob("*.keylog")):
        put(corpus, "keylog", kl.read_bytes())
    put(corpus, "config", (repo / "deploy" / "ekuwatch.toml").read_bytes())
    counts = {t.name: len(list(t.glob("seed-*"))) for t in sorted(corpus.iterdir()) if t.is_dir()}
    print(f"fuzz-seeds: {n} captures -> " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
