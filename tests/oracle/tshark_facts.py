#!/usr/bin/env python3
"""tshark oracle: TLS handshake facts per TCP connection, from tshark's dissection only.

Usage: tshark_facts.py PCAP [--keylog FILE]

Prints JSON Lines on stdout, one object per TCP connection (tcp.stream) that carried a TLS
ClientHello, sorted by (client ip, client port). Python 3.11 stdlib only; needs `tshark` on PATH
(or $TSHARK). Nothing but JSONL is printed on stdout.

Fields (client = the side that sent the ClientHello):
  client, server      "ip:port" ("[v6]:port" for IPv6)
  version             negotiated: ServerHello supported_versions if present, else ServerHello
                      version ("1.3","1.2","1.1","1.0","ssl3"); null without a ServerHello
  cipher              ServerHello cipher suite "0xc02f" (4 lower-case hex digits) or null
  sni                 ClientHello server_name or null
  cr_present          CertificateRequest seen; null when no ServerHello was seen, or when TLS 1.3
                      and the server's encrypted handshake was not decrypted (not visible)
  ca_names            per DN of the CR (TLS 1.2 certificate_authorities list or TLS 1.3
                      certificate_authorities extension): ["SHORT=value", ...] in DER order;
                      [] when the CR lists no DN; null when no CR (or not visible)
  client_cert         "absent" (no client Certificate message) | "empty" (zero certs) |
                      "presented" | null (TLS 1.3 client flight not decrypted)
  client_chain_len    number of certs in the client Certificate message (0 = empty), else null
  client_leaf_eku     EKU OIDs of the client leaf in certificate order; [] = no EKU extension;
                      null when no client cert / not visible
  server_chain_len    number of certs in the server Certificate message, else null
  server_leaf_eku     as client_leaf_eku for the server leaf
  alerts              plaintext or decrypted alerts: {"sender","level","description"}, in order
"""
import ipaddress
import json
import os
import subprocess
import sys

VERSIONS = {0x0304: "1.3", 0x0303: "1.2", 0x0302: "1.1", 0x0301: "1.0", 0x0300: "ssl3"}
SHORT = {
    "2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C", "2.5.4.7": "L",
    "2.5.4.8": "ST", "0.9.2342.19200300.100.1.25": "DC", "1.2.840.113549.1.9.1": "emailAddress",
}
EKU_EXT = "2.5.29.37"


def pairs_hook(pairs):
    # keep duplicate keys (tshark -T json repeats keys) and their order
    return pairs


def items(node):
    """(key, value) pairs of a JSON object kept as a list of pairs; [] for anything else."""
    return node if isinstance(node, list) and all(isinstance(p, tuple) for p in node) else []


def get(node, key, default=None):
    for k, v in items(node):
        if k == key:
            return v
    return default


def get_all(node, key):
    return [v for k, v in items(node) if k == key]


def walk(node):
    """Depth-first (key, value) over the whole tree, in document order."""
    for k, v in items(node):
        yield k, v
        yield from walk(v)


def run_tshark(args, parse_json=False):
    """Run tshark; exit code 2 with output (e.g. a capture cut short) is a warning, not an error."""
    tshark = os.environ.get("TSHARK", "tshark")
    res = subprocess.run([tshark, *args], capture_output=True, check=False)
    out = res.stdout.decode(errors="replace")
    if res.returncode != 0:
        sys.stderr.write(res.stderr.decode(errors="replace"))
        if parse_json:
            try:
                return json.loads(out or "[]", object_pairs_hook=pairs_hook)
            except ValueError:
                sys.exit(f"tshark failed with exit code {res.returncode}")
        if not out:
            sys.exit(f"tshark failed with exit code {res.returncode}")
        sys.stderr.write(f"warning: tshark exit code {res.returncode}; using its output\n")
        return out
    if parse_json:
        return json.loads(out or "[]", object_pairs_hook=pairs_hook)
    return out


def decode_as_args(pcap):
    """-d options: SMTP for every server port whose first payload in a stream starts with '220',
    TLS for every server port whose stream starts with a client TLS handshake record."""
    out = run_tshark(["-r", pcap, "-n", "-Y", "tcp.len > 0", "-T", "fields",
                      "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.payload"])
    first = {}  # stream -> [first payload, (srcport, dstport), first payload of the other side]
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) < 4:
            continue
        try:  # several values (comma-separated) when a packet carries tunnelled TCP: take the first
            payload = bytes.fromhex(parts[3].split(",")[0].replace(":", ""))
        except ValueError:
            continue
        ports = (int(parts[1]), int(parts[2]))
        st = first.get(parts[0])
        if st is None:
            first[parts[0]] = [payload, ports, None]
        elif st[2] is None and ports != st[1]:
            st[2] = payload
    smtp, tls = set(), set()
    for payload, (sport, dport), reply in first.values():
        if payload.startswith(b"\x16\x03"):  # TLS handshake record from the client
            tls.add(dport)
        elif (payload.startswith(b"220") and reply is not None
              and reply[:5].upper() in (b"EHLO ", b"HELO ", b"LHLO ")):  # SMTP, not FTP's 220
            smtp.add(sport)
    args = []
    for p in sorted(smtp):
        args += ["-d", f"tcp.port=={p},smtp"]
    for p in sorted(tls - smtp):
        args += ["-d", f"tcp.port=={p},tls"]
    return args


def dn_attrs(dn_node):
    """Attributes of one DN as 'SHORT=value' in wire order, from x509if RDN elements."""
    attrs = []
    for k, v in walk(dn_node):
        if k != "x509if.RelativeDistinguishedName_item_element":
            continue
        oid = get(v, "x509if.oid") or get(v, "x509if.id") or get(v, "x509if.type")
        leaves = [(lk, lv) for lk, lv in walk(v) if isinstance(lv, str)
                  and lk not in ("x509if.oid", "x509if.id", "x509if.type")]
        if len(leaves) > 1:  # drop CHOICE indices such as "x509sat.DirectoryString": "4"
            leaves = [(lk, lv) for lk, lv in leaves if not lk.endswith("DirectoryString")] or leaves
        value = leaves[-1][1] if leaves else ""
        attrs.append(f"{SHORT.get(oid, oid)}={value}")
    return attrs


def cert_eku(cert_tree):
    """EKU OIDs of a dissected certificate; [] if it has no EKU extension."""
    signed = get(cert_tree, "x509af.signedCertificate_element", cert_tree)
    for k, v in walk(signed):
        if k == "x509af.Extension_element" and get(v, "x509af.extension.id") == EKU_EXT:
            return [lv for lk, lv in walk(v) if lk == "x509ce.KeyPurposeId"]
    return []


def certificate_msg(hs):
    """(chain length, leaf EKU or None) of a Certificate handshake message."""
    certs = get(hs, "tls.handshake.certificates")
    ders = get_all(certs, "tls.handshake.certificate") if certs is not None else []
    trees = get_all(certs, "tls.handshake.certificate_tree") if certs is not None else []
    if not ders:
        return 0, None
    return len(ders), (cert_eku(trees[0]) if trees else None)


def ca_names_of_cr(hs):
    names = []
    for k, v in walk(hs):
        if k == "tls.handshake.dname":  # one DN (TLS 1.2 list and TLS 1.3 extension alike)
            names.append(dn_attrs(v))
    return names


def handshakes_and_alerts(tls_layer):
    """Handshake messages (dicts with a type) and alerts of one tls layer, in order."""
    out = []

    def visit(node):
        for k, v in items(node):
            if k == "tls.handshake" and get(v, "tls.handshake.type") is not None:
                out.append(("hs", v))
            elif k == "tls.alert_message" and get(v, "tls.alert_message.level") is not None:
                out.append(("alert", v))
            elif k in ("tls.record", "tls") or k.startswith("tls.record"):
                visit(v)
    visit(tls_layer)
    return out


def endpoint(ip, port):
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def main(argv):
    args = argv[1:]
    keylog = None
    if "--keylog" in args:
        i = args.index("--keylog")
        if i + 1 >= len(args):
            sys.exit("usage: tshark_facts.py PCAP [--keylog FILE]")
        keylog = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        sys.exit("usage: tshark_facts.py PCAP [--keylog FILE]")
    pcap = args[0]
    targs = ["-r", pcap, "-n", "-o", "tcp.desegment_tcp_streams:TRUE",
             "-o", "tls.desegment_ssl_records:TRUE", "-o", "tls.desegment_ssl_application_data:TRUE"]
    if keylog:
        targs += ["-o", f"tls.keylog_file:{os.path.abspath(keylog)}"]
    targs += decode_as_args(pcap) + ["-T", "json"]
    frames = run_tshark(targs, parse_json=True)

    conns = {}
    for frame in frames:
        layers = get(get(frame, "_source"), "layers")
        tcp = get(layers, "tcp")
        if tcp is None:
            continue
        ipl = get(layers, "ip") or get(layers, "ipv6")
        if ipl is None:
            continue
        src = get(ipl, "ip.src") or get(ipl, "ipv6.src")
        dst = get(ipl, "ip.dst") or get(ipl, "ipv6.dst")
        sport, dport = int(get(tcp, "tcp.srcport")), int(get(tcp, "tcp.dstport"))
        stream = int(get(tcp, "tcp.stream"))
        for tls_layer in get_all(layers, "tls"):
            for kind, node in handshakes_and_alerts(tls_layer):
                c = conns.setdefault(stream, {"events": []})
                c["events"].append(((src, sport), (dst, dport), kind, node))

    results = []
    for stream, c in conns.items():
        hello = next((e for e in c["events"] if e[2] == "hs"
                      and get(e[3], "tls.handshake.type") == "1"), None)
        if hello is None:
            continue
        cli, srv = hello[0], hello[1]
        r = {"client": endpoint(*cli), "server": endpoint(*srv), "version": None, "cipher": None,
             "sni": None, "cr_present": False, "ca_names": None, "client_cert": "absent",
             "client_chain_len": None, "client_leaf_eku": None, "server_chain_len": None,
             "server_leaf_eku": None, "alerts": []}
        sni = next((v for k, v in walk(hello[3]) if k == "tls.handshake.extensions_server_name"), None)
        r["sni"] = sni
        server_types, client_types = [], []
        for frm, _to, kind, node in c["events"]:
            from_client = frm == cli
            if kind == "alert":
                r["alerts"].append({"sender": "client" if from_client else "server",
                                    "level": int(get(node, "tls.alert_message.level")),
                                    "description": int(get(node, "tls.alert_message.desc"))})
                continue
            htype = int(get(node, "tls.handshake.type"))
            (client_types if from_client else server_types).append(htype)
            if not from_client and htype == 2 and r["version"] is None:
                sv = [v for k, v in walk(node) if k == "tls.handshake.extensions.supported_version"]
                ver = int(sv[0], 16) if sv else int(get(node, "tls.handshake.version"), 16)
                r["version"] = VERSIONS.get(ver, f"0x{ver:04x}")
                cs = get(node, "tls.handshake.ciphersuite")
                r["cipher"] = f"0x{int(cs, 16):04x}" if cs is not None else None
            elif not from_client and htype == 13 and not r["cr_present"]:
                r["cr_present"] = True
                r["ca_names"] = ca_names_of_cr(node)
            elif htype in (11, 25):
                # 25: RFC 8879 CompressedCertificate, which tshark decompresses (zlib, brotli,
                # zstd) and dissects as the Certificate it stands for, one level down
                if htype == 25:
                    node = get(node, "tls.compress_certificate.compressed_certificate_message_tree")
                    if node is None:
                        # not decompressed (tshark 4.0 leaves zlib alone): tshark cannot say
                        if from_client and r["client_cert"] == "absent":
                            r["client_cert"] = None
                        continue
                n, eku = certificate_msg(node)
                if from_client and r["client_cert"] == "absent":
                    r["client_cert"] = "presented" if n else "empty"
                    r["client_chain_len"] = n
                    r["client_leaf_eku"] = eku if n else None
                elif not from_client and r["server_chain_len"] is None:
                    r["server_chain_len"] = n
                    r["server_leaf_eku"] = eku if n else None
        if r["version"] is None:
            # no ServerHello seen (server side not captured / handshake cut): CR not knowable
            r["cr_present"] = None
        elif r["version"] == "1.3":
            # Everything after ServerHello is encrypted: visible only if tshark decrypted it.
            if not any(t != 2 for t in server_types):
                r["cr_present"] = None
                r["ca_names"] = None
            if not any(t != 1 for t in client_types) and r["client_cert"] == "absent":
                r["client_cert"] = None
        results.append(r)

    def sort_key(r):
        ip, port = r["client"].rsplit(":", 1)
        a = ipaddress.ip_address(ip.strip("[]"))
        return (a.version, int(a), int(port))

    for r in sorted(results, key=sort_key):
        sys.stdout.write(json.dumps(r, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv)
