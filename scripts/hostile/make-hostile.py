#!/usr/bin/env python3
"""Generate hostile capture files for ekuwatch robustness tests.

Usage: make-hostile.py [--small] OUTDIR

Python 3 stdlib only, deterministic (fixed seeds, fixed timestamps). Writes classic pcap files
(linktype Ethernet, IPv4/TCP with consistent seq/ack and correct IPv4/TCP checksums) plus
OUTDIR/manifest.json. Every pcap also contains the unchanged frames of one normal, complete session
copied from captures/pf-askccert-tls12-openssl-serveronly.pcap (127.0.0.2:44221 -> 127.0.0.1:2526),
whose event must still be reported correctly: server port 2526, tls.version "1.2",
certificate_request.present true, client_certificate.chain[0].eku_class "server_only".

manifest.json: one object per file: file, what, expect_weirds (union over the file's events),
normal_session_port / normal_session_client_port, and "sessions": per hostile session, keyed by its
client port (a string): "weirds" / "smtp_anomalies" that must appear in that session's event and
"expect": dotted path in the event (list indices as numbers) -> value. garbage-keylog.txt is a key
log ("use_as": "--keylog") to run with "use_with" (a TLS 1.3 capture of the repository).

--small: 100 000 SYNs in syn-flood.pcap instead of 1 000 000.
"""
import base64
import json
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
NORMAL_PCAP = os.path.join(REPO, "captures", "pf-askccert-tls12-openssl-serveronly.pcap")
SERVER_CERT_PEM = os.path.join(REPO, "captures", "pki", "server.cert.pem")
TLS13_KEYLOG = os.path.join(REPO, "captures", "pf-askccert-tls13-openssl-both.keylog")

NORMAL_PORT = 2526
NORMAL_CLIENT_PORT = 44221
T_SYNTH = 1795414000.0  # synthetic sessions live before the normal session (1795414459..462)

# ---------------------------------------------------------------------------------------------
# pcap reading / writing


def read_pcap(path):
    """Tiny classic-pcap reader: [(ts_sec, ts_usec, data, orig_len)] (microsecond, either endian)."""
    d = open(path, "rb").read()
    magic = d[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        e = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        e = ">"
    else:
        raise SystemExit(f"{path}: not a microsecond classic pcap")
    linktype = struct.unpack(e + "I", d[20:24])[0]
    assert linktype == 1, "normal capture must be Ethernet"
    out, off = [], 24
    while off + 16 <= len(d):
        s, us, cl, ol = struct.unpack(e + "IIII", d[off:off + 16])
        out.append((s, us, d[off + 16:off + 16 + cl], ol))
        off += 16 + cl
    return out


class Pcap:
    """Buffered classic pcap writer (microsecond, little endian, Ethernet)."""

    def __init__(self, path, snaplen=262144):
        self.f = open(path, "wb", buffering=1 << 22)
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1))
        self.path = path
        self.frames = 0

    def add(self, ts, frame, caplen=None, orig_len=None):
        sec = int(ts)
        usec = int(round((ts - sec) * 1e6))
        if usec >= 1000000:
            sec, usec = sec + 1, usec - 1000000
        data = frame if caplen is None else frame[:caplen]
        ol = len(frame) if orig_len is None else orig_len
        self.f.write(struct.pack("<IIII", sec, usec, len(data), ol))
        self.f.write(data)
        self.frames += 1

    def add_raw(self, sec, usec, data, orig_len):
        self.f.write(struct.pack("<IIII", sec, usec, len(data), orig_len))
        self.f.write(data)
        self.frames += 1

    def close(self):
        self.f.close()


def add_normal(w, frames):
    for s, us, data, ol in frames:
        w.add_raw(s, us, data, ol)


# ---------------------------------------------------------------------------------------------
# Ethernet / IPv4 / TCP

ETH = bytes.fromhex("020000000001" "020000000002" "0800")
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def sum16(b):
    if len(b) & 1:
        b = b + b"\0"
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


_ipid = [0]


def tcp_frame(src, sport, dst, dport, seq, ack, flags, payload=b""):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                      65535, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, 20 + len(payload))
    ck = 0xFFFF - fold(sum16(pseudo) + sum16(tcp) + sum16(payload))
    tcp = tcp[:16] + struct.pack("!H", ck or 0xFFFF) + tcp[18:]
    _ipid[0] = (_ipid[0] + 1) & 0xFFFF
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), _ipid[0], 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", 0xFFFF - fold(sum16(ip))) + ip[12:]
    return ETH + ip + tcp + payload


class Clock:
    def __init__(self, t):
        self.t = t

    def tick(self, dt=0.0005):
        self.t += dt
        return self.t


class Conn:
    """One TCP connection with consistent sequence numbers; frames go to a Pcap writer."""

    def __init__(self, w, clock, cip, cport, sip, sport, cisn=1000000, sisn=5000000):
        self.w, self.clock = w, clock
        self.c, self.s = (ip4(cip), cport), (ip4(sip), sport)
        self.cisn, self.sisn = cisn, sisn
        self.seq = {"c": cisn + 1, "s": sisn + 1}

    def frame(self, d, seq, ack, flags, payload=b""):
        a, b = (self.c, self.s) if d == "c" else (self.s, self.c)
        return tcp_frame(a[0], a[1], b[0], b[1], seq, ack, flags, payload)

    def emit(self, d, seq, flags, payload=b"", ack=None):
        if ack is None:
            ack = self.seq["s" if d == "c" else "c"]
        self.w.add(self.clock.tick(), self.frame(d, seq, ack, flags, payload))

    def open(self):
        self.w.add(self.clock.tick(), self.frame("c", self.cisn, 0, SYN))
        self.w.add(self.clock.tick(), self.frame("s", self.sisn, self.cisn + 1, SYN | ACK))
        self.w.add(self.clock.tick(), self.frame("c", self.cisn + 1, self.sisn + 1, ACK))

    def send(self, d, data, mss=1448, ack=True):
        for i in range(0, len(data), mss):
            chunk = data[i:i + mss]
            self.emit(d, self.seq[d], PSH | ACK, chunk)
            self.seq[d] += len(chunk)
        if ack and data:
            o = "s" if d == "c" else "c"
            self.emit(o, self.seq[o], ACK)

    def close(self):
        self.emit("c", self.seq["c"], FIN | ACK)
        self.seq["c"] += 1
        self.emit("s", self.seq["s"], FIN | ACK)
        self.seq["s"] += 1
        self.emit("c", self.seq["c"], ACK)


# ---------------------------------------------------------------------------------------------
# TLS 1.2 building blocks


def u8(n):
    return struct.pack("!B", n)


def u16(n):
    return struct.pack("!H", n)


def u24(n):
    return struct.pack("!I", n)[1:]


def v8(b):
    return u8(len(b)) + b


def v16(b):
    return u16(len(b)) + b


def v24(b):
    return u24(len(b)) + b


def record(ct, body, ver=b"\x03\x03"):
    return u8(ct) + ver + u16(len(body)) + body


def records(ct, data, maxlen=16384, ver=b"\x03\x03"):
    return b"".join(record(ct, data[i:i + maxlen], ver) for i in range(0, len(data), maxlen))


def hs(t, body):
    return u8(t) + u24(len(body)) + body


def det_bytes(seed, n):
    return random.Random(seed).randbytes(n)


def client_hello(sni, seed=1):
    name = sni.encode()
    exts = b""
    exts += u16(0) + v16(v16(u8(0) + v16(name)))  # server_name
    exts += u16(10) + v16(v16(u16(23) + u16(24)))  # supported_groups
    exts += u16(11) + v16(v8(b"\x00"))  # ec_point_formats
    exts += u16(13) + v16(v16(u16(0x0401) + u16(0x0804) + u16(0x0403)))  # signature_algorithms
    exts += u16(0xFF01) + v16(b"\x00")  # renegotiation_info
    body = (b"\x03\x03" + det_bytes(seed, 32) + v8(b"") + v16(u16(0x009C) + u16(0x009D) + u16(0x002F))
            + v8(b"\x00") + v16(exts))
    return hs(1, body)


def server_hello(seed=2):
    exts = u16(0xFF01) + v16(b"\x00")
    body = b"\x03\x03" + det_bytes(seed, 32) + v8(det_bytes(seed + 1, 32)) + u16(0x009C) + b"\x00" + v16(exts)
    return hs(2, body)


def certificate(ders):
    return hs(11, v24(b"".join(v24(d) for d in ders)))


def certificate_request(dns, ca_len=None):
    cas = b"".join(v16(d) for d in dns)
    n = len(cas) if ca_len is None else ca_len
    sig = u16(0x0401) + u16(0x0804) + u16(0x0403)
    return hs(13, v8(b"\x01\x40") + v16(sig) + u16(n & 0xFFFF) + cas)


SERVER_HELLO_DONE = hs(14, b"")


def client_finish_flight(seed=3, cert=True):
    out = b""
    if cert:
        out += records(22, certificate([]))
    out += records(22, hs(16, v16(det_bytes(seed, 256))))
    out += record(20, b"\x01")
    out += record(22, det_bytes(seed + 1, 40))  # encrypted Finished
    return out


def server_finish_flight(seed=4):
    return record(20, b"\x01") + record(22, det_bytes(seed, 40))


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der(tag, body):
    return bytes([tag]) + der_len(len(body)) + body


def dn(cn, o="Hostile Example CAs"):
    def rdn(oid, val):
        return der(0x31, der(0x30, der(0x06, oid) + der(0x0C, val.encode())))
    return der(0x30, rdn(b"\x55\x04\x0a", o) + rdn(b"\x55\x04\x03", cn))


def server_cert_der():
    pem = open(SERVER_CERT_PEM).read()
    b64 = pem.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0]
    return base64.b64decode("".join(b64.split()))


# ---------------------------------------------------------------------------------------------
# SMTP prologue

BANNER = b"220 mx.hostile.example ESMTP\r\n"
EHLO_REPLY = b"250-mx.hostile.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250 8BITMIME\r\n"


def smtp_starttls(c, helo=b"EHLO client.hostile.example\r\n"):
    c.open()
    c.send("s", BANNER)
    c.send("c", helo)
    c.send("s", EHLO_REPLY)
    c.send("c", b"STARTTLS\r\n")
    c.send("s", b"220 2.0.0 Ready to start TLS\r\n")


def app_data_and_close(c, seed=9):
    c.send("c", record(23, det_bytes(seed, 60)))
    c.send("s", record(23, det_bytes(seed + 1, 80)))
    c.send("c", record(21, det_bytes(seed + 2, 26)))
    c.close()


def tls12_session(c, server_flight, sni="mx.hostile.example", client_cert=True):
    """STARTTLS, ClientHello, the given server flight (record bytes), client finish, server finish."""
    smtp_starttls(c)
    c.send("c", record(22, client_hello(sni)))
    c.send("s", server_flight)
    c.send("c", client_finish_flight(cert=client_cert))
    c.send("s", server_finish_flight())
    app_data_and_close(c)


# ---------------------------------------------------------------------------------------------
# the normal capture's TLS streams (for one-byte-records)


def normal_streams(frames):
    """Reassembled payload per direction of the normal session (in-order, no retransmissions there)."""
    st = {"c": b"", "s": b""}
    for _, _, f, _ in frames:
        ip = f[14:]
        ihl = (ip[0] & 15) * 4
        tcp = ip[ihl:]
        sport = struct.unpack("!H", tcp[:2])[0]
        pay = tcp[(tcp[12] >> 4) * 4:]
        st["c" if sport == NORMAL_CLIENT_PORT else "s"] += pay
    return st


def split_records(b):
    out, off = [], 0
    while off + 5 <= len(b):
        n = struct.unpack("!H", b[off + 3:off + 5])[0]
        out.append((b[off], b[off + 1:off + 3], b[off + 5:off + 5 + n]))
        off += 5 + n
    return out


def one_byte_reframe(tls_bytes):
    """Plaintext handshake records -> 1-byte records; everything from CCS on is kept unchanged."""
    out, plain = b"", True
    for ct, ver, body in split_records(tls_bytes):
        if ct == 20:
            plain = False
        if plain and ct == 22:
            out += b"".join(record(22, body[i:i + 1], ver) for i in range(len(body)))
        else:
            out += record(ct, body, ver)
    return out


# ---------------------------------------------------------------------------------------------
# the files

MANIFEST = []
NORMAL_EXPECT = {
    "normal_session_port": NORMAL_PORT,
    "normal_session_client_port": NORMAL_CLIENT_PORT,
}


def entry(file, what, weirds, **kw):
    e = {"file": file, "what": what, "expect_weirds": weirds}
    e.update(NORMAL_EXPECT)
    e.update(kw)
    MANIFEST.append(e)


def gen_syn_flood(out, normal, n):
    path = os.path.join(out, "syn-flood.pcap")
    w = Pcap(path)
    dst = ip4("192.0.2.25")
    # Template: Ethernet + IPv4 + TCP SYN, 54 bytes; per frame patch ip id, src ip, sport, seq, checksums.
    ip_t = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, b"\0\0\0\0", dst))
    tcp_t = bytearray(struct.pack("!HHIIBBHHH", 0, 25, 0, 0, 5 << 4, SYN, 29200, 0, 0))
    ip_base = sum16(bytes(ip_t))
    tcp_base = sum16(bytes(tcp_t)) + sum16(dst) + 6 + 20
    rec = 16 + 54
    buf = bytearray(rec * n)
    t0 = 1795414400  # n SYNs over 50 s, all before the normal session (and within the idle timeout)
    step_us = 50_000_000 // n
    pack_into = struct.pack_into
    frame0 = bytearray(ETH) + ip_t + tcp_t
    for i in range(n):
        o = i * rec
        us = i * step_us
        pack_into("<IIII", buf, o, t0 + us // 1000000, us % 1000000, 54, 54)
        buf[o + 16:o + 70] = frame0
        a, b, c = 100, 64 + ((i >> 16) & 63), (i >> 8) & 255  # 100.64.0.0/10, distinct per i
        d = i & 255
        sport = 1024 + (i * 7919) % 64000
        seq = (i * 2654435761) & 0xFFFFFFFF
        ipid = i & 0xFFFF
        s_ip = (a << 8 | b) + (c << 8 | d)
        ipck = 0xFFFF - fold(ip_base + s_ip + ipid)
        tck = 0xFFFF - fold(tcp_base + s_ip + sport + (seq >> 16) + (seq & 0xFFFF))
        pack_into("!HHH", buf, o + 16 + 18, ipid, 0, 64 << 8 | 6)
        pack_into("!H4B", buf, o + 16 + 24, ipck, a, b, c, d)
        pack_into("!HHI", buf, o + 16 + 34, sport, 25, seq)
        pack_into("!H", buf, o + 16 + 50, tck)
    w.f.write(buf)
    w.frames += n
    add_normal(w, normal)
    w.close()
    entry("syn-flood.pcap",
          f"{n} SYNs (no payload, never answered) from distinct 100.64.0.0/10 addresses and ports to "
          "192.0.2.25:25 within 50 s, then the normal session (so the flow table is full when it starts)",
          [], syns=n)


def gen_overlap_conflict(out, normal):
    path = os.path.join(out, "overlap-conflict.pcap")
    w = Pcap(path)
    clk = Clock(T_SYNTH)
    c = Conn(w, clk, "10.0.2.1", 40002, "10.0.2.25", 25)
    c.open()
    c.send("s", BANNER)
    good, evil = b"EHLO good.example\r\n", b"EHLO evil.example\r\n"
    s0 = c.seq["c"]
    # "EHLO " is held back (a hole); the rest arrives out of order, twice, with different bytes at the
    # same sequence numbers while both copies are queued; then the head fills the hole; finally a
    # late "evil" retransmission of the whole line (bytes already delivered)
    c.emit("c", s0 + 11, PSH | ACK, good[11:])
    c.emit("c", s0 + 5, PSH | ACK, good[5:11])
    c.emit("c", s0 + 3, PSH | ACK, evil[3:])
    c.emit("c", s0, PSH | ACK, good[:5])
    c.emit("c", s0, PSH | ACK, evil)
    c.seq["c"] += len(good)
    c.emit("s", c.seq["s"], ACK)
    c.send("s", EHLO_REPLY)
    c.send("c", b"STARTTLS\r\n")
    c.send("s", b"220 2.0.0 Ready to start TLS\r\n")
    ch_good = record(22, client_hello("good.example", seed=11))
    ch_evil = record(22, client_hello("evil.example", seed=11))
    assert len(ch_good) == len(ch_evil)
    s0 = c.seq["c"]
    n = len(ch_good)
    h, m = 10, n // 2
    # the first 10 bytes are held back; tail, middle (good SNI), an overlapping evil copy of
    # [10, n) (evil SNI), then the head, then a late full evil copy
    c.emit("c", s0 + m, PSH | ACK, ch_good[m:])
    c.emit("c", s0 + h, PSH | ACK, ch_good[h:m])
    c.emit("c", s0 + h, PSH | ACK, ch_evil[h:])
    c.emit("c", s0, PSH | ACK, ch_good[:h])
    c.emit("c", s0, PSH | ACK, ch_evil)
    c.seq["c"] += n
    c.emit("s", c.seq["s"], ACK)
    der = server_cert_der()
    flight = records(22, server_hello() + certificate([der]) + certificate_request([dn("Good Root CA")])
                     + SERVER_HELLO_DONE)
    c.send("s", flight)
    c.send("c", client_finish_flight())
    c.send("s", server_finish_flight())
    app_data_and_close(c)
    add_normal(w, normal)
    w.close()
    entry("overlap-conflict.pcap",
          "10.0.2.1:40002 -> 10.0.2.25:25: the EHLO line and the ClientHello are sent out of order and "
          "retransmitted over overlapping sequence ranges with different bytes (EHLO good.example vs "
          "EHLO evil.example; ClientHello SNI good.example vs evil.example); then a TLS 1.2 server flight "
          "with CertificateRequest. Both conflicting copies are queued out of order before the hole is "
          "filled, so a first-copy-wins reassembler keeps the good bytes (helo good.example, sni "
          "good.example); the final evil retransmissions cover already-delivered bytes",
          ["tcp_overlap_conflict"],
          sessions={"40002": {"weirds": ["tcp_overlap_conflict"],
                              "expect": {"smtp.helo": "good.example", "tls.sni": "good.example",
                                         "tls.certificate_request.present": True}}})


def gen_tls_16mb(out, normal):
    path = os.path.join(out, "tls-16mb-length.pcap")
    w = Pcap(path)
    clk = Clock(T_SYNTH)
    # A: handshake message length 0xFFFFFF inside a normal 100-byte record
    c = Conn(w, clk, "10.0.3.1", 40031, "10.0.3.25", 25)
    smtp_starttls(c)
    c.send("c", record(22, client_hello("mx.hostile.example")))
    body = u8(2) + u24(0xFFFFFF) + det_bytes(31, 96)
    c.send("s", record(22, body) + records(22, det_bytes(32, 40000)))
    c.send("c", client_finish_flight())
    c.close()
    # B: record header length 0xFFFF (> 2^14 + 2048) followed by 70 000 bytes
    c = Conn(w, clk, "10.0.3.2", 40032, "10.0.3.25", 25)
    smtp_starttls(c)
    c.send("c", record(22, client_hello("mx.hostile.example")))
    c.send("s", b"\x16\x03\x03\xff\xff" + server_hello() + det_bytes(33, 70000))
    c.close()
    add_normal(w, normal)
    w.close()
    entry("tls-16mb-length.pcap",
          "session A (client port 40031): server's first handshake record (100 bytes) holds a ServerHello "
          "header claiming length 0xFFFFFF; session B (client port 40032): server record header length "
          "0xFFFF followed by 70 000 bytes",
          ["tls_handshake_too_large", "tls_bad_record_header"],
          sessions={"40031": {"weirds": ["tls_handshake_too_large"]},
                    "40032": {"weirds": ["tls_bad_record_header"]}})


def gen_endless_line(out, normal):
    path = os.path.join(out, "endless-smtp-line.pcap")
    w = Pcap(path)
    clk = Clock(T_SYNTH)
    line = (b"EHLO " + b"A" * 1443) * ((5 * 1024 * 1024) // 1448)
    # A: 5 MB without a newline, then the client closes
    c = Conn(w, clk, "10.0.4.1", 40004, "10.0.4.25", 25)
    c.open()
    c.send("s", BANNER)
    c.send("c", line)
    c.close()
    # B: the same 5 MB, then CRLF, the server's 500, then a normal STARTTLS + TLS 1.2 handshake
    c = Conn(w, clk, "10.0.4.2", 40005, "10.0.4.25", 25)
    c.open()
    c.send("s", BANNER)
    c.send("c", line + b"\r\n")
    c.send("s", b"500 5.5.0 Line too long\r\n")
    c.send("c", b"EHLO client.hostile.example\r\n")
    c.send("s", EHLO_REPLY)
    c.send("c", b"STARTTLS\r\n")
    c.send("s", b"220 2.0.0 Ready to start TLS\r\n")
    c.send("c", record(22, client_hello("mx.hostile.example")))
    c.send("s", records(22, server_hello() + certificate([server_cert_der()])
                        + certificate_request([dn("Root")]) + SERVER_HELLO_DONE))
    c.send("c", client_finish_flight())
    c.send("s", server_finish_flight())
    app_data_and_close(c)
    add_normal(w, normal)
    w.close()
    entry("endless-smtp-line.pcap",
          f"after the banner the client sends {len(line)} bytes without a newline (1448-byte segments). "
          "Session A (client port 40004): then closes without ever sending a newline. Session B (client "
          "port 40005): then CRLF, 500 reply, EHLO, STARTTLS and a TLS 1.2 handshake with "
          "CertificateRequest",
          [], expect_smtp_anomalies=["smtp_line_too_long"],
          sessions={"40004": {"weirds": []},
                    "40005": {"weirds": [], "smtp_anomalies": ["smtp_line_too_long"],
                              "expect": {"tls.version": "1.2", "tls.certificate_request.present": True}}})


def gen_huge_ca_list(out, normal):
    path = os.path.join(out, "huge-ca-list.pcap")
    w = Pcap(path)
    clk = Clock(T_SYNTH)
    der = server_cert_der()
    # A: the largest well-formed list (the TLS 1.2 length field is 16 bits): ~1280 DNs, ~65 KB
    dns, total = [], 0
    i = 0
    while True:
        d = dn(f"Hostile Example Issuing CA number {i:05d}")
        if total + 2 + len(d) > 0xFFFF:
            break
        dns.append(d)
        total += 2 + len(d)
        i += 1
    c = Conn(w, clk, "10.0.5.1", 40051, "10.0.5.25", 25)
    flight = records(22, server_hello() + certificate([der]) + certificate_request(dns) + SERVER_HELLO_DONE)
    tls12_session(c, flight)
    # B: 1500 DNs (> 64 KB): the 16-bit length field cannot describe it (written modulo 2^16)
    dns_b = [dn(f"Hostile Example Issuing CA number {i:05d}") for i in range(1500)]
    c = Conn(w, clk, "10.0.5.2", 40052, "10.0.5.25", 25)
    flight = records(22, server_hello() + certificate([der]) + certificate_request(dns_b) + SERVER_HELLO_DONE)
    tls12_session(c, flight)
    add_normal(w, normal)
    w.close()
    entry("huge-ca-list.pcap",
          f"TLS 1.2 (plaintext handshake), Certificate = server.cert.pem, CertificateRequest with a large "
          f"certificate_authorities list split over 16 KB records. Session A (client port 40051): "
          f"{len(dns)} DNs, {total} bytes (the maximum a 16-bit length allows). Session B (client port "
          f"40052): 1500 DNs ({sum(2 + len(d) for d in dns_b)} bytes, > 64 KB, so the 16-bit length field "
          f"is wrong: written modulo 2^16)",
          ["tls_too_many_ca_names", "tls_bad_certificate_request"],
          sessions={"40051": {"weirds": ["tls_too_many_ca_names"],
                              "expect": {"tls.version": "1.2", "tls.certificate_request.present": True,
                                         "tls.server_certificate.status": "presented"},
                              "ca_names_sent": len(dns), "ca_names_reported": 256},
                    "40052": {"weirds": ["tls_bad_certificate_request"],
                              "expect": {"tls.certificate_request.present": True},
                              "ca_names_sent": 1500}})


def gen_thousands_of_certs(out, normal):
    path = os.path.join(out, "thousands-of-certs.pcap")
    w = Pcap(path)
    clk = Clock(T_SYNTH)
    der = server_cert_der()
    c = Conn(w, clk, "10.0.6.1", 40061, "10.0.6.25", 25)
    flight = records(22, server_hello() + certificate([der] * 3000) + SERVER_HELLO_DONE)
    tls12_session(c, flight, client_cert=False)
    c = Conn(w, clk, "10.0.6.2", 40062, "10.0.6.25", 25)
    flight = records(22, server_hello() + certificate([der] * 400) + SERVER_HELLO_DONE)
    tls12_session(c, flight, client_cert=False)
    add_normal(w, normal)
    w.close()
    entry("thousands-of-certs.pcap",
          f"TLS 1.2 server Certificate messages of copies of server.cert.pem ({len(der)} bytes DER). "
          f"Session A (client port 40061): 3000 copies (~{3000 * (len(der) + 3) // 1024} KB message). "
          f"Session B (client port 40062): 400 copies (~{400 * (len(der) + 3) // 1024} KB, below the "
          f"256 KB handshake-message limit)",
          ["tls_handshake_too_large", "tls_chain_too_long"],
          sessions={"40061": {"weirds": ["tls_handshake_too_large"]},
                    "40062": {"weirds": ["tls_chain_too_long"],
                              "expect": {"tls.server_certificate.status": "presented"},
                              "chain_reported": 16}})


def gen_one_byte_records(out, normal):
    path = os.path.join(out, "one-byte-records.pcap")
    w = Pcap(path)
    clk = Clock(T_SYNTH)
    st = normal_streams(normal)
    # split at the STARTTLS exchange: the client's TLS starts after "STARTTLS\r\n",
    # the server's after the "220 2.0.0 ..." line that follows
    ci = st["c"].index(b"STARTTLS\r\n") + 10
    sr = st["s"].index(b"220 2.0.0")
    si = st["s"].index(b"\r\n", sr) + 2
    c_plain, c_tls = st["c"][:ci], st["c"][ci:]
    s_plain, s_tls = st["s"][:si], st["s"][si:]
    c = Conn(w, clk, "10.0.7.1", 40007, "10.0.7.25", 25)
    c.open()
    # replay the SMTP dialogue line by line (server banner, EHLO, reply, STARTTLS, 220)
    s_lines = s_plain.split(b"\r\n")[:-1]
    c_lines = c_plain.split(b"\r\n")[:-1]
    c.send("s", s_lines[0] + b"\r\n")
    c.send("c", c_lines[0] + b"\r\n")
    c.send("s", b"".join(x + b"\r\n" for x in s_lines[1:-1]))
    c.send("c", c_lines[1] + b"\r\n")
    c.send("s", s_lines[-1] + b"\r\n")
    # TLS flights in order: ClientHello, server flight, client flight, server flight, then the rest
    c_recs = split_records(c_tls)
    s_recs = split_records(s_tls)

    def take(recs, stop):
        """Pop records up to and including the first one for which stop(ct, body, seen_ccs) holds."""
        out, seen_ccs = b"", False
        while recs:
            ct, ver, body = recs.pop(0)
            out += record(ct, body, ver)
            if stop(ct, body, seen_ccs):
                break
            seen_ccs = seen_ccs or ct == 20
        return out

    ch = take(c_recs, lambda ct, b, ccs: True)
    sf = take(s_recs, lambda ct, b, ccs: ct == 22 and b.endswith(SERVER_HELLO_DONE))
    cf = take(c_recs, lambda ct, b, ccs: ccs)  # ... ChangeCipherSpec, encrypted Finished
    c.send("c", one_byte_reframe(ch))
    c.send("s", one_byte_reframe(sf))
    c.send("c", one_byte_reframe(cf))
    rest_s = b"".join(record(ct, b, v) for ct, v, b in s_recs)
    rest_c = b"".join(record(ct, b, v) for ct, v, b in c_recs)
    c.send("s", one_byte_reframe(rest_s))
    c.send("c", rest_c)
    c.close()
    add_normal(w, normal)
    w.close()
    entry("one-byte-records.pcap",
          "the normal session's SMTP dialogue and TLS 1.2 streams replayed as 10.0.7.1:40007 -> "
          "10.0.7.25:25 with every plaintext handshake message re-framed into 1-byte TLS records "
          "(ChangeCipherSpec and everything after it unchanged); it should give the same TLS facts as the "
          "normal session",
          [],
          sessions={"40007": {"weirds": [],
                              "expect": {"tls.version": "1.2", "tls.certificate_request.present": True,
                                         "tls.client_certificate.chain.0.eku_class": "server_only"}}})


def gen_truncated(out, normal):
    path = os.path.join(out, "truncated.pcap")
    w = Pcap(path)
    add_normal(w, normal)
    clk = Clock(float(normal[-1][0]) + 1)
    c = Conn(w, clk, "10.0.8.1", 40008, "10.0.8.25", 25)
    der = server_cert_der()
    flight = records(22, server_hello() + certificate([der]) + certificate_request([dn("Root")])
                     + SERVER_HELLO_DONE)
    tls12_session(c, flight)
    w.close()
    # cut in the middle of the largest packet record of the second session (its server flight)
    d = open(path, "rb").read()
    off = 24 + sum(16 + len(f[2]) for f in normal)
    best = (0, None)
    while off + 16 <= len(d):
        cl = struct.unpack("<I", d[off + 8:off + 12])[0]
        if cl > best[0]:
            best = (cl, off + 16 + cl // 2)
        off += 16 + cl
    target = best[1]
    assert target
    open(path, "wb").write(d[:target])
    entry("truncated.pcap",
          "the normal session, then a TLS 1.2 session (10.0.8.1:40008 -> :25) whose server-flight packet "
          f"record is cut in the middle: the file ends mid-record at byte {target}",
          [], truncated_at=target,
          note="ekuwatch 0.1 exits 0 and warns 'truncated at byte N: pcap record data' on stderr",
          sessions={"40008": {"weirds": []}})


def gen_snaplen_cut(out, normal):
    path = os.path.join(out, "snaplen-cut.pcap")
    w = Pcap(path)
    # the cut copy uses client port 44222 (rewritten, checksums not fixed) so it is a different flow
    for s, us, data, ol in normal:
        f = bytearray(data)
        ip = 14
        ihl = (f[ip] & 15) * 4
        t = ip + ihl
        sp, dp = struct.unpack("!HH", f[t:t + 4])
        if sp == NORMAL_CLIENT_PORT:
            sp = NORMAL_CLIENT_PORT + 1
        if dp == NORMAL_CLIENT_PORT:
            dp = NORMAL_CLIENT_PORT + 1
        struct.pack_into("!HH", f, t, sp, dp)
        struct.pack_into("!H", f, t + 16, 0)  # TCP checksum: unknown after the edit, 0
        w.add_raw(s - 60, us, bytes(f[:96]), ol)
    add_normal(w, normal)
    w.close()
    entry("snaplen-cut.pcap",
          "the normal session rewritten to client port 44222 (60 s earlier) with every frame captured at "
          "caplen 96 (orig_len kept), then the unchanged normal session",
          ["truncated_packet"],
          sessions={"44222": {"weirds": ["truncated_packet"]}})


def gen_garbage_keylog(out):
    path = os.path.join(out, "garbage-keylog.txt")
    rng = random.Random(10)
    parts = []
    parts.append(b"# hostile key log\n")
    parts.append(rng.randbytes(4096) + b"\n")
    parts.append(b"CLIENT_RANDOM " + b"a" * (1024 * 1024) + b"\n")  # 1 MB line
    parts.append(b"X" * (1024 * 1024) + b"\n")  # 1 MB line, no spaces
    parts.append(b"CLIENT_RANDOM zz" + b"1" * 62 + b" " + b"ab" * 48 + b"\n")  # wrong hex
    parts.append(b"CLIENT_RANDOM " + b"ab" * 32 + b" " + b"0g" * 48 + b"\n")  # wrong hex secret
    parts.append(b"CLIENT_RANDOM " + b"ab" * 31 + b" " + b"cd" * 48 + b"\n")  # short random
    parts.append(b"CLIENT_HANDSHAKE_TRAFFIC_SECRET " + b"ab" * 32 + b"\n")  # too few fields
    parts.append(b"SERVER_TRAFFIC_SECRET_0 " + b"ab" * 32 + b" " + b"cd" * 48 + b" extra\n")  # too many
    parts.append(b"CLIENT_RANDOM\n\n   \n\t\t\n")
    parts.append(b"\xff\xfe\x00C\x00L\x00I\x00E\x00N\x00T\r\n")  # UTF-16-ish
    parts.append(b"CLIENT_RANDOM " + b"\x00" * 64 + b" " + b"\x00" * 96 + b"\n")
    parts.append(b"UNKNOWN_LABEL " + b"ab" * 32 + b" " + b"cd" * 32 + b"\n")
    parts.append(b"CLIENT_RANDOM " + b"ef" * 32 + b" " + b"12" * (1 << 16) + b"\n")  # 128 KB secret
    # two valid-looking lines that match no session
    parts.append(b"CLIENT_RANDOM " + rng.randbytes(32).hex().encode() + b" " + rng.randbytes(48).hex().encode() + b"\n")
    parts.append(b"SERVER_HANDSHAKE_TRAFFIC_SECRET " + rng.randbytes(32).hex().encode() + b" "
                 + rng.randbytes(48).hex().encode() + b"\r\n")
    # the real key log of a TLS 1.3 capture, interleaved with more junk, no final newline
    real = open(TLS13_KEYLOG, "rb").read().splitlines()
    for k, ln in enumerate(real):
        parts.append(ln + (b"\r\n" if k % 2 else b"\n"))
        parts.append(rng.randbytes(200).replace(b"\n", b"") + b"\n")
    parts.append(rng.randbytes(100).replace(b"\n", b""))
    open(path, "wb").write(b"".join(parts))
    MANIFEST.append({
        "file": "garbage-keylog.txt",
        "what": "key log with binary junk, two 1 MB lines, bad hex, wrong field counts, a 128 KB secret, "
                "2 valid-looking lines matching nothing, and the real lines of "
                "captures/pf-askccert-tls13-openssl-both.keylog interleaved with junk",
        "expect_weirds": [],
        "use_as": "--keylog",
        "use_with": "captures/pf-askccert-tls13-openssl-both.pcap",
        "note": "the TLS 1.3 session of use_with must still be decrypted: its event is identical to the one "
                "produced with captures/pf-askccert-tls13-openssl-both.keylog (ekuwatch 0.1 warns "
                "'malformed key log lines ignored lines=35' on stderr and exits 0)",
        "normal_session_port": 2526,
        "normal_session_client_port": 35601,
        "sessions": {"35601": {"weirds": [], "expect": {
            "tls.version": "1.3", "tls.certificate_request.present": True,
            "tls.certificate_request.evidence": "decrypted",
            "tls.client_certificate.chain.0.eku_class": "server_and_client"}}},
    })


def gen_random_garbage(out, normal):
    path = os.path.join(out, "random-garbage.pcap")
    w = Pcap(path)
    rng = random.Random(11)
    n = 50000
    t0 = normal[0][0] + normal[0][1] / 1e6 - 1.0
    span = (normal[-1][0] + normal[-1][1] / 1e6 + 1.0) - t0
    times = [t0 + span * k / n for k in range(n)]
    ni = 0
    tnorm = [s + us / 1e6 for s, us, _, _ in normal]
    pool = {}
    for k in range(n):
        t = times[k]
        while ni < len(normal) and tnorm[ni] <= t:
            s, us, data, ol = normal[ni]
            w.add_raw(s, us, data, ol)
            ni += 1
        kind = k % 4
        if kind <= 1:
            ln = rng.randrange(0, 1501)
            body = bytearray(rng.randbytes(ln))
            if kind == 1 and ln >= 14:
                body[12:14] = b"\x08\x00"  # IPv4 ethertype, everything else random
                if ln >= 27 and body[26] == 127:
                    body[26] = 10  # never 127.0.0.0/8: cannot touch the normal flow
        elif kind == 2:
            # valid Ethernet + IPv4 header (no fragment), TCP to port 25 with a random TCP header
            pl = rng.randrange(0, 1500 - 34 + 1)
            src = bytes([10, 9]) + rng.randbytes(2)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + pl, k & 0xFFFF, 0, 64, 6, 0, src, ip4("10.9.0.25"))
            tcpb = bytearray(rng.randbytes(pl))
            if pl >= 4:
                struct.pack_into("!H", tcpb, 2, 25)
            body = bytearray(ETH + ip + bytes(tcpb))
        else:
            # sane IPv4/TCP from a pool of 64 clients to 10.9.0.25:25; random payload that often starts
            # like SMTP or a TLS record; sequence numbers wander around each flow's expected position
            j = rng.randrange(64)
            sport = 30000 + j
            base = 7000000 + j * 1000000
            if j not in pool:
                pool[j] = base + 1
                body = bytearray(tcp_frame(ip4("10.9.1.%d" % j), sport, ip4("10.9.0.25"), 25, base, 0, SYN))
            else:
                pre = rng.choice([b"\x16\x03\x03", b"\x16\x03\x01\x40\x00\x01", b"220 ", b"EHLO ",
                                  b"STARTTLS\r\n", b"\x17\x03\x03", b""])
                pay = pre + rng.randbytes(rng.randrange(0, 1400))
                seq = pool[j] + rng.choice([0, 0, 0, -100, 50, 3000, -3000])
                flags = rng.choice([PSH | ACK, ACK, PSH | ACK | FIN, SYN, PSH | ACK])
                if rng.random() < 0.5:  # server -> client
                    body = bytearray(tcp_frame(ip4("10.9.0.25"), 25, ip4("10.9.1.%d" % j), sport,
                                               seq + 1000, pool[j], flags, pay))
                else:
                    body = bytearray(tcp_frame(ip4("10.9.1.%d" % j), sport, ip4("10.9.0.25"), 25,
                                               seq, 0, flags, pay))
                    pool[j] = max(pool[j], seq + len(pay))
        w.add(t, bytes(body))
    while ni < len(normal):
        s, us, data, ol = normal[ni]
        w.add_raw(s, us, data, ol)
        ni += 1
    w.close()
    entry("random-garbage.pcap",
          "50 000 seeded random frames of length up to 1500: 1/4 fully random, 1/4 with an IPv4 "
          "ethertype and random rest, 1/4 valid IPv4 header + random TCP header/payload to 10.9.0.25:25, "
          "1/4 sane IPv4/TCP segments of 64 flows 10.9.1.x:3000x <-> 10.9.0.25:25 with random flags, "
          "wandering sequence numbers and random payloads that often start like SMTP or a TLS record; "
          "the normal session's frames are interleaved at their own timestamps",
          [])


def main():
    args = sys.argv[1:]
    small = "--small" in args
    args = [a for a in args if a != "--small"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    out = args[0]
    os.makedirs(out, exist_ok=True)
    normal = read_pcap(NORMAL_PCAP)
    gen_syn_flood(out, normal, 100_000 if small else 1_000_000)
    gen_overlap_conflict(out, normal)
    gen_tls_16mb(out, normal)
    gen_endless_line(out, normal)
    gen_huge_ca_list(out, normal)
    gen_thousands_of_certs(out, normal)
    gen_one_byte_records(out, normal)
    gen_truncated(out, normal)
    gen_snaplen_cut(out, normal)
    gen_garbage_keylog(out)
    gen_random_garbage(out, normal)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(MANIFEST, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
