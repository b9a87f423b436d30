#!/usr/bin/env python3
"""Build a large synthetic-but-real SMTP STARTTLS capture for benchmarking ekuwatch.

Every session in the output is a *real* session from captures/*.pcap (Postfix smtpd talking to
OpenSSL s_client / gnutls-cli / swaks on loopback), replayed with:

  * a distinct 4-tuple: client 10.x.y.z (unique per session), random client port,
    server IP from 192.0.2.0/24 / 198.51.100.0/24 / 203.0.113.0/24, server port 25;
  * timestamps shifted forward (sessions start every --interval seconds and overlap,
    so the reader sees many concurrent flows, like a busy MX);
  * (unless --handshake-only) a message body of 20-200 KB (--body-kb; uniform per session): after the
    TLS handshake and the first request/reply inside TLS (EHLO), before the client's next packet, extra client->server
    TLS application-data records (type 23, version 0x0303, random bytes, <= 16 KiB per record)
    are inserted, split into <= 1448-byte TCP segments, with a server ACK every 2 segments.
    Templates where the server sends nothing after that point (it rejected the client right
    after the handshake: encrypted alert + RST) get no body, as in reality.
    All later seq (client) / ack (server) numbers of that connection are shifted by the body
    length, so the TCP stream has no holes. IP and TCP checksums are recomputed.

Only STARTTLS sessions are used as templates: a single TCP connection whose client stream
contains a ClientHello after some plaintext (plain / refused-STARTTLS / implicit-TLS captures
are skipped), so every generated session is exactly one TLS session.

Output: classic pcap (usec), linktype Ethernet, plus <out>.manifest.json describing what was
generated (sessions, packets, per-template counts) for the sanity checks in run.sh.

python3 stdlib only; deterministic for a given --seed and set of template captures.
"""

import argparse
import glob
import heapq
import json
import os
import random
import re
import struct
import sys
from array import array

ETH_HDR_LEN = 14
MSS = 1448
MAX_RECORD = 16384  # whole TLS record (5-byte header + fragment) <= 16 KiB
SERVER_PORT = 25


# ---------------------------------------------------------------- checksums

def _fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def csum_bytes(data):
    """Internet checksum, returned as the 2 bytes to store (network order)."""
    if len(data) & 1:
        data = data + b"\0"
    # native (little-endian) 16-bit sum; one's complement sum is byte-order symmetric,
    # so the result is the byte-swapped checksum: store it little-endian.
    s = _fold(sum(array("H", data)))
    if sys.byteorder == "little":
        return struct.pack("<H", (~s) & 0xFFFF)
    return struct.pack(">H", (~s) & 0xFFFF)


def build_ip_tcp(src_ip, dst_ip, ip_tmpl, tcp_tmpl, sport, dport, seq, ack, flags, payload, ip_id):
    """ip_tmpl: original IPv4 header bytes (no options assumed beyond ihl), tcp_tmpl: original
    TCP header bytes incl. options. Returns IPv4 packet bytes with fresh checksums."""
    tcp = bytearray(tcp_tmpl)
    struct.pack_into("!HHII", tcp, 0, sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF)
    tcp[13] = flags
    tcp[16:18] = b"\0\0"
    seg = bytes(tcp) + payload
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 6, len(seg))
    tcp[16:18] = csum_bytes(pseudo + seg)
    ip = bytearray(ip_tmpl)
    struct.pack_into("!H", ip, 2, len(ip) + len(seg))
    struct.pack_into("!H", ip, 4, ip_id & 0xFFFF)
    ip[10:12] = b"\0\0"
    ip[12:16] = src_ip
    ip[16:20] = dst_ip
    ip[10:12] = csum_bytes(bytes(ip))
    return bytes(ip) + bytes(tcp) + payload


# ---------------------------------------------------------------- pcap input

def read_pcap(path):
    """Returns list of (ts_float, ipv4_packet_bytes). Supports classic pcap (usec/nsec, both
    endians) with linktype Ethernet (1), Linux cooked SLL (113) or SLL2 (276)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        e, div = "<", 1e6
    elif magic == b"\xa1\xb2\xc3\xd4":
        e, div = ">", 1e6
    elif magic == b"\x4d\x3c\xb2\xa1":
        e, div = "<", 1e9
    elif magic == b"\xa1\xb2\x3c\x4d":
        e, div = ">", 1e9
    else:
        raise ValueError(f"{path}: not a classic pcap (pcapng is not supported as a template)")
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
    off = 24
    out = []
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + incl]
        off += incl
        if linktype == 1:
            ethertype = struct.unpack("!H", frame[12:14])[0]
            l3 = frame[14:]
            if ethertype == 0x8100:
                ethertype = struct.unpack("!H", frame[16:18])[0]
                l3 = frame[18:]
        elif linktype == 113:
            ethertype = struct.unpack("!H", frame[14:16])[0]
            l3 = frame[16:]
        elif linktype == 276:
            ethertype = struct.unpack("!H", frame[0:2])[0]
            l3 = frame[20:]
        elif linktype in (101, 12, 14):  # raw IP
            ethertype, l3 = 0x0800, frame
        else:
            raise ValueError(f"{path}: unsupported linktype {linktype}")
        if ethertype != 0x0800 or not l3 or (l3[0] >> 4) != 4:
            continue
        out.append((sec + frac / div, l3))
    return out


# ---------------------------------------------------------------- templates

CH_RE = re.compile(rb"\x16\x03[\x00-\x04]..\x01", re.S)
SH_RE = re.compile(rb"\x16\x03[\x00-\x04]..\x02", re.S)


def tls_records(stream, start):
    recs = []
    off = start
    while off + 5 <= len(stream):
        ctype = stream[off]
        if ctype not in (20, 21, 22, 23) or stream[off + 1] != 3:
            break
        ln = struct.unpack("!H", stream[off + 3:off + 5])[0]
        recs.append((ctype, off, off + 5 + ln))
        off += 5 + ln
    return recs


class Template:
    pass


def load_template(path):
    """Parse a capture into a Template, or return (None, reason) if unusable."""
    pkts = read_pcap(path)
    if not pkts:
        return None, "empty"
    t0 = pkts[0][0]
    parsed = []
    syn = None
    for ts, ip in pkts:
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 6:
            return None, "non-TCP packet"
        tot = struct.unpack("!H", ip[2:4])[0]
        ip = ip[:tot]
        tcp_off = ihl
        doff = (ip[tcp_off + 12] >> 4) * 4
        sport, dport, seq, ack = struct.unpack("!HHII", ip[tcp_off:tcp_off + 12])
        flags = ip[tcp_off + 13]
        p = dict(ts=ts - t0, ip_hdr=ip[:ihl], tcp_hdr=ip[tcp_off:tcp_off + doff],
                 src=ip[12:16], dst=ip[16:20], sport=sport, dport=dport, seq=seq, ack=ack,
                 flags=flags, payload=ip[tcp_off + doff:])
        if flags & 0x02 and not flags & 0x10 and syn is None:
            syn = p
        parsed.append(p)
    if syn is None:
        return None, "no SYN"
    cli = (syn["src"], syn["sport"])
    srv = (syn["dst"], syn["dport"])
    for p in parsed:
        a, b = (p["src"], p["sport"]), (p["dst"], p["dport"])
        if {a, b} != {cli, srv}:
            return None, "more than one TCP connection"
        p["from_client"] = a == cli
    isn_c = syn["seq"]
    synack = next((p for p in parsed if not p["from_client"] and p["flags"] & 0x12 == 0x12), None)
    if synack is None:
        return None, "no SYN-ACK"
    isn_s = synack["seq"]

    def stream(from_client, isn):
        buf = bytearray()
        segs = []
        for i, p in enumerate(parsed):
            if p["from_client"] != from_client or not p["payload"]:
                continue
            rel = (p["seq"] - isn - 1) & 0xFFFFFFFF
            end = rel + len(p["payload"])
            if len(buf) < end:
                buf.extend(b"\0" * (end - len(buf)))
            buf[rel:end] = p["payload"]
            segs.append((i, rel, end))
        return bytes(buf), segs

    cstream, csegs = stream(True, isn_c)
    sstream, ssegs = stream(False, isn_s)
    m = CH_RE.search(cstream)
    if not m:
        return None, "no ClientHello (no TLS)"
    if m.start() == 0:
        return None, "implicit TLS (no STARTTLS)"
    ms = SH_RE.search(sstream)
    if not ms:
        return None, "no ServerHello"
    crecs = tls_records(cstream, m.start())
    def pkt_of(off):  # client packet carrying stream offset off
        return next(i for i, rel, end in csegs if rel <= off < end)

    # end of the client's handshake flight: its ChangeCipherSpec (TLS 1.2, TLS 1.3 compat mode)
    # or else its first type-23 record (TLS 1.3 Finished)
    ccs = next((r for r in crecs if r[0] == 20), None)
    first23 = next((r for r in crecs if r[0] == 23), None)
    if ccs is None and first23 is None:
        return None, "client handshake flight not found"
    idx_fin = pkt_of((ccs or first23)[2] - 1)
    # the client's first request inside TLS (EHLO) ...
    idx_ehlo = next((i for i, rel, end in csegs if i > idx_fin), None)
    if idx_ehlo is None:
        return None, "client sent nothing after its handshake"
    # ... the server's answer ...
    idx_s = next((i for i, rel, end in ssegs if i > idx_ehlo), None)
    if idx_s is None:
        return None, "server silent after the client's first request"
    # ... and the body goes right before the client's next payload packet
    ins = next((i for i, rel, end in csegs if i > idx_s), None)
    if ins is None:
        return None, "no client packet after handshake"
    S = next(rel for i, rel, end in csegs if i == ins)  # relative client seq of insertion
    for i, rel, end in csegs:
        if i < ins and end > S:
            return None, "client segments out of order around insertion point"
    t = Template()
    t.path = path
    t.name = os.path.basename(path)
    t.start_abs = t0
    t.pkts = parsed
    t.isn_c, t.isn_s = isn_c, isn_s
    t.ins = ins
    t.ins_rel = S
    # server seq at insertion point (what the client acks)
    t.srv_next = parsed[ins]["ack"]
    t.cli_tmpl = parsed[ins]
    t.srv_tmpl = next(p for p in reversed(parsed[:ins]) if not p["from_client"])
    # a body only if the server still talks after the insertion point (it reads the mail);
    # sessions the server ends right after the handshake (e.g. required client cert missing:
    # encrypted alert + RST) carry no mail in reality, so they stay handshake-only.
    t.body_ok = any(not p["from_client"] and p["payload"] for p in parsed[ins:])
    return t, None


# ---------------------------------------------------------------- session synthesis

SRV_NETS = [bytes([192, 0, 2]), bytes([198, 51, 100]), bytes([203, 0, 113])]
CLI_MAC = bytes.fromhex("020000000001")
SRV_MAC = bytes.fromhex("020000000002")
ETH_C2S = SRV_MAC + CLI_MAC + b"\x08\x00"
ETH_S2C = CLI_MAC + SRV_MAC + b"\x08\x00"


# Message body sizes, KB (uniform per session): --body-kb
BODY_KB = (20, 200)


def make_body_records(rng, size):
    out = bytearray()
    while len(out) < size:
        frag = min(MAX_RECORD - 5, max(16, size - len(out) - 5))
        out += b"\x17\x03\x03" + struct.pack("!H", frag) + rng.randbytes(frag)
    return bytes(out)


def synth_session(t, n, start_ts, rng, handshake_only):
    """Returns (list of (ts, frame_bytes), body_len)."""
    cip = bytes([10, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF])
    if cip[3] in (0, 255):  # avoid .0/.255 look-alikes; still unique because n maps 1:1
        cip = bytes([11, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF])
    sip = rng.choice(SRV_NETS) + bytes([rng.randint(1, 254)])
    cport = rng.randint(1024, 65535)
    # fresh ISNs, consistent with the original relative numbers
    dc = (rng.getrandbits(32) - t.isn_c) & 0xFFFFFFFF
    ds = (rng.getrandbits(32) - t.isn_s) & 0xFFFFFFFF
    ipid_c = rng.getrandbits(16)
    ipid_s = rng.getrandbits(16)

    size = rng.randint(BODY_KB[0] * 1024, BODY_KB[1] * 1024)
    body = b"" if handshake_only or not t.body_ok else make_body_records(rng, size)
    B = len(body)
    S_abs = (t.isn_c + 1 + t.ins_rel) & 0xFFFFFFFF  # original absolute client seq at insertion

    def after(a, b):  # a >= b in seq space
        return ((a - b) & 0xFFFFFFFF) < 0x80000000

    frames = []
    shift_t = 0.0
    for i, p in enumerate(t.pkts):
        if i == t.ins and B:
            # insert the body: client segments + server ACKs
            prev_ts = t.pkts[i - 1]["ts"]
            ts = prev_ts + 0.0001
            c, s = t.cli_tmpl, t.srv_tmpl
            nseg = 0
            for off in range(0, B, MSS):
                chunk = body[off:off + MSS]
                last = off + MSS >= B
                flags = 0x18 if last else 0x10
                ipid_c += 1
                pkt = build_ip_tcp(cip, sip, c["ip_hdr"], c["tcp_hdr"], cport, SERVER_PORT,
                                   S_abs + off + dc, t.srv_next + ds, flags, chunk, ipid_c)
                frames.append((start_ts + ts, ETH_C2S + pkt))
                ts += 0.00004
                nseg += 1
                if nseg % 2 == 0 or last:
                    ipid_s += 1
                    pkt = build_ip_tcp(sip, cip, s["ip_hdr"], s["tcp_hdr"], SERVER_PORT, cport,
                                       t.srv_next + ds, S_abs + off + len(chunk) + dc, 0x10, b"",
                                       ipid_s)
                    frames.append((start_ts + ts, ETH_S2C + pkt))
                    ts += 0.00001
            shift_t = max(0.0, ts - p["ts"]) + 0.0001
        seq, ack = p["seq"], p["ack"]
        if B and i >= t.ins:
            if p["from_client"]:
                if after(seq, S_abs):
                    seq = (seq + B) & 0xFFFFFFFF
            elif p["flags"] & 0x10 and after(ack, S_abs):
                ack = (ack + B) & 0xFFFFFFFF
        if p["from_client"]:
            seq, ack = seq + dc, (ack + ds if p["flags"] & 0x10 else ack)
            ipid_c += 1
            pkt = build_ip_tcp(cip, sip, p["ip_hdr"], p["tcp_hdr"], cport, SERVER_PORT, seq, ack,
                               p["flags"], p["payload"], ipid_c)
            eth = ETH_C2S
        else:
            seq, ack = seq + ds, (ack + dc if p["flags"] & 0x10 else ack)
            ipid_s += 1
            pkt = build_ip_tcp(sip, cip, p["ip_hdr"], p["tcp_hdr"], SERVER_PORT, cport, seq, ack,
                               p["flags"], p["payload"], ipid_s)
            eth = ETH_S2C
        frames.append((start_ts + p["ts"] + (shift_t if i >= t.ins else 0.0), eth + pkt))
    return frames, B, (".".join(map(str, cip)), cport, ".".join(map(str, sip)))


# ---------------------------------------------------------------- main

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target-mb", type=float, default=None,
                    help="stop adding sessions once the file reaches this size (MB = 10^6 bytes); "
                         "default 250, or 50 with --handshake-only")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--handshake-only", action="store_true",
                    help="insert no message bodies: every packet belongs to the handshake replay")
    ap.add_argument("--captures", default=os.path.join(here, "..", "..", "captures"),
                    help="directory of template captures (default: repo captures/)")
    ap.add_argument("--interval", type=float, default=0.02,
                    help="seconds between session starts (sessions overlap), default 0.02")
    ap.add_argument("--body-kb", default="20-200",
                    help="message body size range in KB, uniform per session (default 20-200)")
    args = ap.parse_args()
    global BODY_KB
    lo, hi = (int(x) for x in args.body_kb.split("-"))
    BODY_KB = (lo, hi)
    target = int((args.target_mb if args.target_mb is not None
                  else (50 if args.handshake_only else 250)) * 1_000_000)

    templates = []
    skipped = {}
    for path in sorted(glob.glob(os.path.join(args.captures, "*.pcap"))):
        if os.path.basename(path).startswith("synthetic-"):
            # hand-built, not a real session (and the server ends it right after the handshake
            # with an alert, not the RST the "no body for rejected sessions" rule looks for)
            skipped[os.path.basename(path)] = "hand-built, not a real session"
            continue
        t, why = load_template(path)
        if t is None:
            skipped[os.path.basename(path)] = why
        else:
            templates.append(t)
    if not templates:
        sys.exit("no usable STARTTLS template captures")
    print(f"templates: {len(templates)} usable, {len(skipped)} skipped", file=sys.stderr)
    for k, v in skipped.items():
        print(f"  skipped {k}: {v}", file=sys.stderr)

    rng = random.Random(args.seed)
    # one day after the newest template, so certificate validity (notBefore) is unchanged
    base_ts = float(int(max(t.start_abs for t in templates)) // 86400 * 86400 + 86400)
    per_tmpl = {t.name: 0 for t in templates}
    planned = 24
    session_list = []  # [client ip, client port, server ip, server port, template, body, extra pkts]
    body_total = 0
    n = 0
    # build session list lazily but decide count by planned size
    heap = []
    counter = 0
    with open(args.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        written = 24
        packets = 0
        next_start = base_ts
        done_creating = False

        def push_session():
            nonlocal n, planned, next_start, body_total, counter
            t = rng.choice(templates)
            n += 1
            frames, B, tup = synth_session(t, n, next_start, rng, args.handshake_only)
            per_tmpl[t.name] += 1
            session_list.append([tup[0], tup[1], tup[2], SERVER_PORT, t.name, B,
                                 sum(1 for _, fr in frames) - len(t.pkts)])
            body_total += B
            planned += sum(16 + len(fr) for _, fr in frames)
            next_start += args.interval * (0.5 + rng.random())
            counter += 1
            heapq.heappush(heap, (frames[0][0], counter, frames, 0))

        push_session()
        while heap:
            ts, c, frames, pos = heapq.heappop(heap)
            # start every session whose start time is <= ts before emitting
            while not done_creating and next_start <= ts:
                if planned >= target:
                    done_creating = True
                    break
                push_session()
                heapq.heappush(heap, (ts, c, frames, pos))
                ts, c, frames, pos = heapq.heappop(heap)
            fts, fr = frames[pos]
            sec = int(fts)
            usec = int(round((fts - sec) * 1e6))
            if usec >= 1_000_000:
                sec, usec = sec + 1, usec - 1_000_000
            f.write(struct.pack("<IIII", sec, usec, len(fr), len(fr)))
            f.write(fr)
            written += 16 + len(fr)
            packets += 1
            if pos + 1 < len(frames):
                heapq.heappush(heap, (frames[pos + 1][0], c, frames, pos + 1))
            if not heap and not done_creating:
                if planned >= target:
                    done_creating = True
                else:
                    push_session()

    manifest = {
        "file": os.path.abspath(args.out),
        "mode": "handshake-only" if args.handshake_only else "mail",
        "seed": args.seed,
        "target_bytes": target,
        "bytes": written,
        "packets": packets,
        "sessions": n,
        "body_bytes": body_total,
        "sessions_with_body": sum(1 for s in session_list if s[5]),
        "server_port": SERVER_PORT,
        "templates": per_tmpl,
        "skipped": skipped,
        "session_list": session_list,
    }
    with open(args.out + ".manifest.json", "w") as mf:
        json.dump(manifest, mf, sort_keys=True)
    print(json.dumps({k: manifest[k] for k in ("file", "mode", "bytes", "packets", "sessions",
                                               "body_bytes")}), file=sys.stderr)


if __name__ == "__main__":
    main()
