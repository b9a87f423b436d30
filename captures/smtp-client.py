#!/usr/bin/env python3
"""Scripted SMTP STARTTLS client for the mail-transaction captures (stdlib only, raw socket + ssl).

Usage: smtp-client.py --port N --tls 1.2|1.3 [--cert VARIANT] [--keylog FILE] [--pki DIR]
                      [--bind IP] [--server IP] [--ehlo-only] TXN...

Connects from --bind (default 127.0.0.2) to --server (127.0.0.1), reads the banner, EHLO, STARTTLS,
TLS handshake (only the given version; trust pki/root.cert.pem, SNI/hostname mx.lab.test; client
certificate pki/client-VARIANT.key.pem + client-VARIANT.chain.pem, i.e. "both" sends leaf +
intermediate), EHLO again, then one mail transaction per TXN argument with RSET between
transactions, QUIT, close_notify. Secrets go to --keylog (ssl.SSLContext.keylog_filename, NSS format).

TXN is a comma-separated list of key=value (repeat rcpt= for several recipients):
  rcpt=ADDR      a recipient (several allowed)          size=N   body size in bytes (default 300)
  pipe=1         MAIL, all RCPTs and DATA (or the BDAT  bdat=N   send the body with BDAT in chunks of
                 command + its data) in one write                N bytes (last one "BDAT n LAST")
  abort=1        RSET after the RCPTs instead of DATA   subject=TEXT  Subject header
--ehlo-only: after the TLS handshake send EHLO and then QUIT whatever the answer (no transaction).

Prints the dialogue as "C: VERB" / "S: CODE first-line" (never message bodies) on stdout.
"""
import argparse
import os
import socket
import ssl
import sys


class Smtp:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, data, show):
        self.sock.sendall(data)
        for verb in show:
            print(f"C: {verb}", flush=True)

    def reply(self):
        """One complete (possibly multi-line) reply: (code, [lines])."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode(errors="replace"))
            if len(line) < 4 or line[3:4] != b"-":
                code = int(line[:3])
                print(f"S: {code} {lines[0][4:]}", flush=True)
                return code, lines


def body_bytes(size, subject, idx):
    head = (f"From: <sender@out.lab.test>\r\nTo: <root@lab.test>\r\nSubject: {subject}\r\n"
            f"Message-ID: <ekuwatch-{os.getpid()}-{idx}@out.lab.test>\r\n\r\n").encode()
    out = bytearray(head)
    n = 0
    while len(out) < size - 2:
        line = f"line {n:06d} " + "x" * 60
        out += line[: max(1, size - 2 - len(out))].encode() + b"\r\n"
        n += 1
    return bytes(out)


def parse_txn(spec):
    t = {"rcpt": [], "size": 300, "pipe": False, "bdat": 0, "abort": False, "subject": "ekuwatch mail test"}
    for part in spec.split(","):
        k, _, v = part.partition("=")
        if k == "rcpt":
            t["rcpt"].append(v)
        elif k in ("size", "bdat"):
            t[k] = int(v)
        elif k in ("pipe", "abort"):
            t[k] = v not in ("0", "")
        elif k == "subject":
            t["subject"] = v
        else:
            sys.exit(f"unknown txn key {k}")
    return t


def transaction(s, t, idx):
    body = body_bytes(t["size"], t["subject"], idx)
    mail = b"MAIL FROM:<sender@out.lab.test>" + (f" SIZE={len(body)}".encode())
    cmds = [(mail + b"\r\n", "MAIL")] + [(f"RCPT TO:<{r}>\r\n".encode(), "RCPT") for r in t["rcpt"]]
    chunks = []
    if t["bdat"]:
        for off in range(0, len(body), t["bdat"]):
            part = body[off:off + t["bdat"]]
            last = off + t["bdat"] >= len(body)
            chunks.append((f"BDAT {len(part)}{' LAST' if last else ''}\r\n".encode() + part))
    if t["pipe"] and not t["abort"]:
        first = chunks[0] if chunks else b"DATA\r\n"
        s.send(b"".join(c for c, _ in cmds) + first, [v for _, v in cmds] + ["BDAT" if chunks else "DATA"])
        codes = [s.reply()[0] for _ in cmds]
        last_code = s.reply()[0]
        if chunks:
            for c in chunks[1:]:
                s.send(c, ["BDAT"])
                s.reply()
            return
        if last_code == 354:
            s.send(body + b".\r\n", [])
            s.reply()
        return
    s.send(cmds[0][0], ["MAIL"])
    code, _ = s.reply()
    if code >= 400:
        return
    ok = 0
    for c, v in cmds[1:]:
        s.send(c, [v])
        if s.reply()[0] < 400:
            ok += 1
    if t["abort"] or ok == 0:
        return
    if chunks:
        for c in chunks:
            s.send(c, ["BDAT"])
            if s.reply()[0] >= 400:
                return
        return
    s.send(b"DATA\r\n", ["DATA"])
    if s.reply()[0] == 354:
        s.send(body + b".\r\n", [])
        s.reply()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--server", default="127.0.0.1")
    ap.add_argument("--bind", default="127.0.0.2")
    ap.add_argument("--tls", choices=["1.2", "1.3"], required=True)
    ap.add_argument("--cert", default="nocert")
    ap.add_argument("--keylog")
    ap.add_argument("--pki", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "pki"))
    ap.add_argument("--ehlo-only", action="store_true")
    ap.add_argument("txn", nargs="*")
    a = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    v = ssl.TLSVersion.TLSv1_3 if a.tls == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = v
    ctx.load_verify_locations(os.path.join(a.pki, "root.cert.pem"))
    if a.cert != "nocert":
        ctx.load_cert_chain(os.path.join(a.pki, f"client-{a.cert}.chain.pem"),
                            os.path.join(a.pki, f"client-{a.cert}.key.pem"))
    if a.keylog:
        ctx.keylog_filename = a.keylog

    raw = socket.create_connection((a.server, a.port), source_address=(a.bind, 0), timeout=30)
    s = Smtp(raw)
    s.reply()
    s.send(b"EHLO out.lab.test\r\n", ["EHLO"])
    s.reply()
    s.send(b"STARTTLS\r\n", ["STARTTLS"])
    if s.reply()[0] != 220:
        sys.exit("STARTTLS refused")
    tls = ctx.wrap_socket(raw, server_hostname="mx.lab.test")
    print(f"# TLS {tls.version()} {tls.cipher()[0]}", flush=True)
    s = Smtp(tls)
    s.send(b"EHLO out.lab.test\r\n", ["EHLO"])
    try:
        code, lines = s.reply()
        print("# EHLO keywords: " + " ".join(l[4:].split(" ")[0].upper() for l in lines[1:]), flush=True)
        if not a.ehlo_only and code == 250:
            for i, spec in enumerate(a.txn):
                if i:
                    s.send(b"RSET\r\n", ["RSET"])
                    s.reply()
                transaction(s, parse_txn(spec), i)
        s.send(b"QUIT\r\n", ["QUIT"])
        s.reply()
        tls.unwrap()  # close_notify
    except (ConnectionError, OSError, ssl.SSLError) as e:
        print(f"# connection ended: {e}", flush=True)
    raw.close()


if __name__ == "__main__":
    main()
