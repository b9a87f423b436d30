#!/usr/bin/env python3
"""Writes captures/synthetic-tls13-oidfilters.pcap + .keylog: a hand-built SMTP STARTTLS session
whose TLS 1.3 CertificateRequest carries the oid_filters extension (RFC 8446 4.2.5), which no
common TLS stack sends.

No real TLS stack is involved: the handshake is well formed and encrypted exactly as TLS 1.3 does
(TLS_AES_128_GCM_SHA256, record keys from the traffic secrets in the key log), but the secrets are
fixed values (not derived from a key exchange) and the key shares, CertificateVerify signatures
and Finished MACs are dummy bytes. tshark decrypts it with the key log; a peer could not.

Session (client 192.0.2.10:40025 -> server 192.0.2.25:25):
  plaintext SMTP: 220, EHLO, 250 STARTTLS, STARTTLS, 220
  ClientHello / ServerHello (+ middlebox CCS)
  server, encrypted (handshake keys): record 0 = EncryptedExtensions + CertificateRequest
      (signature_algorithms, signature_algorithms_cert, certificate_authorities = O=Lab, CN=Lab Root CA,
       oid_filters = { 2.5.29.37 (EKU) : SEQUENCE { 1.3.6.1.5.5.7.3.2 (clientAuth) } }),
      record 1 = Certificate (server.cert + inter.cert) + CertificateVerify + Finished
  client: CCS, encrypted (handshake keys) Certificate (client-both.cert + inter.cert)
      + CertificateVerify + Finished
  application data (application keys): EHLO / 250, QUIT / 221, close_notify both ways, FIN.

Deterministic (fixed randoms, secrets, timestamps): re-running writes identical files.
Needs python3 with the `cryptography` package (AES-GCM, certificate parsing).
Usage: captures/make-oidfilters.py [OUTPUT_DIR]   (default: the directory of this script)
"""
import hashlib
import hmac
import os
import struct
import sys

from cryptography import x509
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else HERE
PKI = os.path.join(HERE, "pki")
NAME = "synthetic-tls13-oidfilters"

CLI_IP, SRV_IP = (192, 0, 2, 10), (192, 0, 2, 25)
CLI_PORT, SRV_PORT = 40025, 25
CLI_MAC, SRV_MAC = bytes.fromhex("020000000a0a"), bytes.fromhex("020000001919")


def fixed(label, n=32):
    """Deterministic 'random' bytes."""
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"ekuwatch synthetic {label} {i}".encode()).digest()
        i += 1
    return out[:n]


# ---------------------------------------------------------------- TLS encoding helpers
def u8(n): return struct.pack("!B", n)
def u16(n): return struct.pack("!H", n)
def u24(n): return struct.pack("!I", n)[1:]
def v8(b): return u8(len(b)) + b
def v16(b): return u16(len(b)) + b
def v24(b): return u24(len(b)) + b
def ext(typ, body): return u16(typ) + v16(body)
def hs(typ, body): return u8(typ) + v24(body)
def record(ctype, body): return u8(ctype) + b"\x03\x03" + v16(body)


def hkdf_expand_label(secret, label, context, length):
    info = u16(length) + v8(b"tls13 " + label) + v8(context)
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + u8(i), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


class Protector:
    """TLS 1.3 record protection for one direction and one traffic secret (AES-128-GCM)."""

    def __init__(self, secret):
        self.aead = AESGCM(hkdf_expand_label(secret, b"key", b"", 16))
        self.iv = hkdf_expand_label(secret, b"iv", b"", 12)
        self.seq = 0

    def seal(self, content, ctype):
        inner = content + u8(ctype)
        header = b"\x17\x03\x03" + u16(len(inner) + 16)
        nonce = bytes(a ^ b for a, b in zip(self.iv, b"\x00" * 4 + struct.pack("!Q", self.seq)))
        self.seq += 1
        return header + self.aead.encrypt(nonce, inner, header)


def pem_certs(path):
    with open(path, "rb") as f:
        return [c.public_bytes(Encoding.DER)
                for c in x509.load_pem_x509_certificates(f.read())]


def certificate_msg(ders):
    entries = b"".join(v24(d) + v16(b"") for d in ders)
    return hs(11, v8(b"") + v24(entries))


# ---------------------------------------------------------------- handshake content
server_ders = pem_certs(os.path.join(PKI, "server.cert.pem")) + pem_certs(os.path.join(PKI, "inter.cert.pem"))
client_ders = pem_certs(os.path.join(PKI, "client-both.cert.pem")) + pem_certs(os.path.join(PKI, "inter.cert.pem"))
with open(os.path.join(PKI, "root.cert.pem"), "rb") as f:
    root_dn = x509.load_pem_x509_certificate(f.read()).subject.public_bytes()

client_random = fixed("client random")
server_random = fixed("server random")
session_id = fixed("session id")
secrets = {k: fixed(k) for k in ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                                 "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0")}
SIGALGS = v16(b"".join(u16(s) for s in (0x0403, 0x0804, 0x0805, 0x0401)))

client_hello = hs(1, b"\x03\x03" + client_random + v8(session_id) + v16(u16(0x1301)) + v8(b"\x00") + v16(
    ext(0, v16(b"\x00" + v16(b"mx.lab.test")))                    # server_name
    + ext(10, v16(u16(0x001d)))                                   # supported_groups: x25519
    + ext(13, SIGALGS)                                            # signature_algorithms
    + ext(43, v8(u16(0x0304)))                                    # supported_versions: TLS 1.3
    + ext(45, v16(u16(0x001d) + v16(fixed("client key share"))))  # key_share (dummy x25519 key)
))
server_hello = hs(2, b"\x03\x03" + server_random + v8(session_id) + u16(0x1301) + b"\x00" + v16(
    ext(43, u16(0x0304))
    + ext(45, u16(0x001d) + v16(fixed("server key share")))
))
encrypted_extensions = hs(8, v16(b""))
# RFC 8446 4.2.5 says only "DER-encoded"; Wireshark parses certificate_extension_oid as a complete
# DER OBJECT IDENTIFIER (tag 06, length, contents), so that is what is sent here.
EKU_OID = bytes.fromhex("0603551d25")                              # OID 2.5.29.37 (extKeyUsage), DER
EKU_CLIENTAUTH = bytes.fromhex("300a06082b06010505070302")          # SEQUENCE { 1.3.6.1.5.5.7.3.2 }
certificate_request = hs(13, v8(b"") + v16(
    ext(13, SIGALGS)                                              # signature_algorithms
    + ext(50, SIGALGS)                                            # signature_algorithms_cert
    + ext(47, v16(v16(root_dn)))                                  # certificate_authorities
    + ext(48, v16(v8(EKU_OID) + v16(EKU_CLIENTAUTH)))             # oid_filters
))


def cert_verify(who):
    return hs(15, u16(0x0403) + v16(fixed(f"{who} signature", 71)))


def finished(who):
    return hs(20, fixed(f"{who} finished", 32))


s_hs = Protector(secrets["SERVER_HANDSHAKE_TRAFFIC_SECRET"])
c_hs = Protector(secrets["CLIENT_HANDSHAKE_TRAFFIC_SECRET"])
s_app = Protector(secrets["SERVER_TRAFFIC_SECRET_0"])
c_app = Protector(secrets["CLIENT_TRAFFIC_SECRET_0"])
CCS = record(20, b"\x01")

# (direction, payload): "c" = client -> server, "s" = server -> client
flow = [
    ("s", b"220 mx.lab.test ESMTP synthetic\r\n"),
    ("c", b"EHLO out.lab.test\r\n"),
    ("s", b"250-mx.lab.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
    ("c", b"STARTTLS\r\n"),
    ("s", b"220 2.0.0 Ready to start TLS\r\n"),
    ("c", record(22, client_hello)),
    ("s", record(22, server_hello) + CCS
     + s_hs.seal(encrypted_extensions + certificate_request, 22)
     + s_hs.seal(certificate_msg(server_ders) + cert_verify("server") + finished("server"), 22)),
    ("c", CCS + c_hs.seal(certificate_msg(client_ders) + cert_verify("client") + finished("client"), 22)),
    ("c", c_app.seal(b"EHLO out.lab.test\r\n", 23)),
    ("s", s_app.seal(b"250-mx.lab.test\r\n250 PIPELINING\r\n", 23)),
    ("c", c_app.seal(b"QUIT\r\n", 23)),
    ("s", s_app.seal(b"221 2.0.0 Bye\r\n", 23) + s_app.seal(b"\x01\x00", 21)),
    ("c", c_app.seal(b"\x01\x00", 21)),
]

# ---------------------------------------------------------------- TCP/IPv4/Ethernet + pcap
def csum(data):
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Conn:
    def __init__(self):
        self.seq = {"c": 0x1000_0000, "s": 0x5000_0000}
        self.ipid = {"c": 0x100, "s": 0x900}
        self.t = 1767225600.0  # 2026-01-01T00:00:00Z
        self.frames = []

    def packet(self, d, flags, payload=b""):
        o = "s" if d == "c" else "c"
        src, dst = (CLI_IP, SRV_IP) if d == "c" else (SRV_IP, CLI_IP)
        sport, dport = (CLI_PORT, SRV_PORT) if d == "c" else (SRV_PORT, CLI_PORT)
        ack = self.seq[o] if flags & 0x10 else 0
        tcp = struct.pack("!HHIIBBHHH", sport, dport, self.seq[d], ack, 5 << 4, flags, 65483, 0, 0) + payload
        pseudo = bytes(src) + bytes(dst) + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + u16(csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), self.ipid[d], 0x4000, 64, 6, 0,
                         bytes(src), bytes(dst))
        ip = ip[:10] + u16(csum(ip)) + ip[12:]
        self.ipid[d] += 1
        eth = (SRV_MAC + CLI_MAC if d == "c" else CLI_MAC + SRV_MAC) + b"\x08\x00"
        self.t += 0.0005
        self.frames.append((self.t, eth + ip + tcp))
        self.seq[d] += len(payload) + (1 if flags & 0x03 else 0)  # SYN/FIN take one sequence number

    def send(self, d, data, mss=1448):
        for i in range(0, len(data), mss):
            self.packet(d, 0x18, data[i:i + mss])          # PSH|ACK
        self.packet("s" if d == "c" else "c", 0x10)         # ACK from the peer


conn = Conn()
conn.packet("c", 0x02)         # SYN
conn.packet("s", 0x12)         # SYN|ACK
conn.packet("c", 0x10)         # ACK
for d, data in flow:
    conn.send(d, data)
conn.packet("c", 0x11)         # FIN|ACK
conn.packet("s", 0x11)         # FIN|ACK
conn.packet("c", 0x10)         # ACK

with open(os.path.join(OUT, NAME + ".pcap"), "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for t, frame in conn.frames:
        sec = int(t)
        usec = int(round((t - sec) * 1e6))
        f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
with open(os.path.join(OUT, NAME + ".keylog"), "w") as f:
    for label, secret in secrets.items():
        f.write(f"{label} {client_random.hex()} {secret.hex()}\n")
print(f"wrote {NAME}.pcap ({len(conn.frames)} frames) and {NAME}.keylog in {OUT}")
