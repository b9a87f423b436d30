#!/usr/bin/env python3
"""starttls-splice: lets a TLS tool that knows no STARTTLS (NSS tstclnt / selfserv) speak SMTP STARTTLS.

client mode: listen on --listen, accept one connection from the TLS client (tstclnt), connect to the
  SMTP server --connect (from --bind), read the banner, EHLO, STARTTLS, 220, then copy bytes both
  ways unchanged: the TLS on the captured connection is the client's own.
server mode: listen on --listen (the captured SMTP port), accept one SMTP client, 220 banner, answer
  EHLO (STARTTLS offered) until STARTTLS, 220, then connect to the TLS server --connect (selfserv)
  and copy bytes both ways unchanged.

The plaintext dialogue is logged to stderr (C:/S:). Lab use only (captures/generate.sh)."""
import argparse
import socket
import sys
import threading


def log(s):
    sys.stderr.write(s)
    sys.stderr.flush()


def addr(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def read_line(sock):
    buf = b""
    while not buf.endswith(b"\n"):
        c = sock.recv(1)
        if not c:
            raise EOFError("connection closed")
        buf += c
    return buf


def read_reply(sock):
    while True:
        line = read_line(sock)
        log("S: " + line.decode("latin-1"))
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3])


def send(sock, who, s):
    for l in s.splitlines(True):
        log(who + " " + l)
    sock.sendall(s.encode("latin-1"))


def pump(src, dst):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def splice(down, up):
    """Copies both ways until the server side (`up` in client mode, the SMTP client in server mode
    is `down`) has closed, then gives the other side 1 s to finish (tstclnt never closes by itself)."""
    t_down = threading.Thread(target=pump, args=(down, up), daemon=True)
    t_up = threading.Thread(target=pump, args=(up, down), daemon=True)
    t_down.start()
    t_up.start()
    t_up.join(timeout=120)
    t_down.join(timeout=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["client", "server"])
    ap.add_argument("--listen", required=True)
    ap.add_argument("--connect", required=True)
    ap.add_argument("--bind")
    a = ap.parse_args()
    ln = socket.socket()
    ln.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ln.bind(addr(a.listen))
    ln.listen(1)
    log("listening on %s\n" % a.listen)
    down, peer = ln.accept()
    ln.close()
    log("connection from %s:%d\n" % peer)
    if a.mode == "client":
        up = socket.socket()
        if a.bind:
            up.bind((a.bind, 0))
        up.settimeout(30)
        up.connect(addr(a.connect))
        if read_reply(up) != 220:
            sys.exit("no 220 banner")
        send(up, "C:", "EHLO out.lab.test\r\n")
        if read_reply(up) != 250:
            sys.exit("EHLO refused")
        send(up, "C:", "STARTTLS\r\n")
        if read_reply(up) != 220:
            sys.exit("STARTTLS refused")
        up.settimeout(None)
        log("STARTTLS done: splicing\n")
        splice(down, up)
    else:
        down.settimeout(30)
        send(down, "S:", "220 mx.lab.test ESMTP nss-peer\r\n")
        while True:
            line = read_line(down).decode("latin-1")
            log("C: " + line)
            cmd = line.strip().upper()
            if cmd.startswith("EHLO"):
                send(down, "S:", "250-mx.lab.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
            elif cmd == "STARTTLS":
                send(down, "S:", "220 2.0.0 Ready to start TLS\r\n")
                break
            elif cmd == "QUIT":
                send(down, "S:", "221 2.0.0 Bye\r\n")
                sys.exit("client quit before STARTTLS")
            else:
                send(down, "S:", "530 5.7.0 Must issue a STARTTLS command first\r\n")
        down.settimeout(None)
        up = socket.create_connection(addr(a.connect))
        log("STARTTLS done: splicing\n")
        splice(down, up)
    log("spliced connection ended\n")


if __name__ == "__main__":
    main()
