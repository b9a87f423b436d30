#!/usr/bin/env python3
"""tshark oracle: SMTP command verbs and final reply codes per TCP connection, as tshark dissects them.

Usage: tshark_smtp.py PCAP [--keylog FILE] [--implicit-tls-port N ...]

Prints JSON Lines on stdout, one object per TCP connection (tcp.stream) in which tshark dissected
SMTP, sorted by (client ip, client port). Python 3.11 stdlib only; needs `tshark` on PATH (or
$TSHARK). Never prints addresses, parameters, reply texts or message bodies.

SMTP is recognised the same way as tshark_facts.py (`-d tcp.port==P,smtp` for every server port whose
stream starts with "220" answered by EHLO/HELO/LHLO). tshark 4.0 follows STARTTLS itself: after the
220 reply to STARTTLS it hands the stream to TLS, and with the key log (`-o tls.keylog_file:`) the
decrypted records go back to the SMTP dissector, so the commands and replies inside TLS are listed
after the plaintext ones. Implicit TLS (no STARTTLS) is dissected as SMTP only on ports 465 and
2465 (the lab's wrapper-mode port) or those given with --implicit-tls-port (`-d tls.port==N,smtp`).

Fields (client = the side that sent the first command):
  client, server  "ip:port"
  commands        command verbs in wire order, upper-case: one per `smtp.req.command` tshark
                  dissected, spelled as the first word of its `smtp.command_line` (tshark 4.0 cuts
                  smtp.req.command to 4 characters: "STAR" for STARTTLS): EHLO, STARTTLS, MAIL,
                  RCPT, DATA, BDAT, RSET, QUIT, ...; a word that is not 1-12 letters is listed as
                  "?" (its text is not printed)
  replies         reply codes in wire order (`smtp.response.code`); tshark 4.0 makes one
                  smtp.response item (one code) of a whole multi-line reply ("250-...", "250 ...")
                  that arrives in one PDU, so a multi-line reply counts once
  tls             "none" (no TLS record seen), "starttls" (TLS after STARTTLS), "implicit"
  decrypted       true when tshark dissected SMTP inside TLS (key log matched), else false; null
                  without TLS
  text_commands   how many of `commands` were read from client lines tshark 4.0 shows as
                  data-text-lines instead of smtp.req.command: tshark 4.0 does not dissect BDAT (the
                  BDAT line and its chunk, and commands pipelined before it in the same PDU, become
                  text) and can miss the end of a long DATA body (the following QUIT/RSET becomes a
                  "DATA fragment"). Leading lines of such a PDU that are SMTP commands (known verb)
                  are counted, up to and including a BDAT line; body text is never read as commands.
                  (A client that sends CR CR LF, e.g. gnutls-cli --crlf fed CR LF lines, gets each
                  line split by tshark into "VERB ...\r" and an empty line; the empty line is a
                  command without a verb for tshark, listed as "?".)
Commands and replies that tshark cannot see (encrypted, no or wrong key log) are simply absent.
"""
import ipaddress
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tshark_facts import decode_as_args, endpoint, get, get_all, items, run_tshark  # noqa: E402

VERB = re.compile(r"^[A-Za-z]{1,12}$")
# a command line (after unescape()) inside tshark's data-text-lines
TEXT_CMD = re.compile(r"^(HELO|EHLO|LHLO|MAIL|RCPT|DATA|BDAT|RSET|NOOP|QUIT|VRFY|EXPN|HELP|STARTTLS|AUTH)"
                      r"( [^\r\n]*)?(\r?\r\n|\r)$", re.IGNORECASE)   # "\r": tshark split "VERB\r\r\n"


def unescape(line):
    """tshark escapes CR, LF, backslash and non-printable bytes in data-text-lines ("\\r\\n")."""
    text = line.encode("latin-1", "backslashreplace").decode("unicode_escape")
    return text.encode("utf-8", "replace").decode("latin-1")  # one character per byte


def main(argv):
    args = argv[1:]
    keylog, implicit = None, {465, 2465}
    usage = "usage: tshark_smtp.py PCAP [--keylog FILE] [--implicit-tls-port N ...]"
    rest = []
    i = 0
    while i < len(args):
        if args[i] in ("--keylog", "--implicit-tls-port"):
            if i + 1 >= len(args):
                sys.exit(usage)
            if args[i] == "--keylog":
                keylog = args[i + 1]
            else:
                implicit.add(int(args[i + 1]))
            i += 2
        else:
            rest.append(args[i])
            i += 1
    if len(rest) != 1:
        sys.exit(usage)
    pcap = rest[0]
    targs = ["-r", pcap, "-n", "-o", "tcp.desegment_tcp_streams:TRUE",
             "-o", "tls.desegment_ssl_records:TRUE", "-o", "tls.desegment_ssl_application_data:TRUE",
             "-o", "smtp.desegment_lines:TRUE", "-o", "smtp.desegment_data:TRUE"]
    if keylog:
        targs += ["-o", f"tls.keylog_file:{os.path.abspath(keylog)}"]
    da = decode_as_args(pcap)
    for p in sorted(implicit):
        da += ["-d", f"tls.port=={p},smtp"]
    targs += da + ["-T", "json", "-J", "frame ip ipv6 tcp tls smtp"]
    frames = run_tshark(targs, parse_json=True)

    conns = {}
    for frame in frames:
        layers = get(get(frame, "_source"), "layers")
        tcp = get(layers, "tcp")
        ipl = get(layers, "ip") or get(layers, "ipv6")
        if tcp is None or ipl is None:
            continue
        src = get(ipl, "ip.src") or get(ipl, "ipv6.src")
        dst = get(ipl, "ip.dst") or get(ipl, "ipv6.dst")
        sport, dport = int(get(tcp, "tcp.srcport")), int(get(tcp, "tcp.dstport"))
        stream = int(get(tcp, "tcp.stream"))
        c = conns.setdefault(stream, {"client": None, "server": None, "commands": [], "replies": [],
                                      "tls_seen": False, "first_tls_before_smtp": None,
                                      "decrypted": False, "smtp_seen": False, "text_commands": 0,
                                      "bdat_left": 0})
        has_tls = bool(get_all(layers, "tls"))
        if has_tls:
            c["tls_seen"] = True
            if c["first_tls_before_smtp"] is None:
                c["first_tls_before_smtp"] = not c["smtp_seen"]
        for smtp in get_all(layers, "smtp"):
            c["smtp_seen"] = True
            if has_tls:
                c["decrypted"] = True
            for k, v in items(smtp):
                if k == "smtp.command_line_tree":
                    verb = get(v, "smtp.req.command")
                    if verb is None:
                        continue
                    if c["client"] is None:
                        c["client"], c["server"] = (src, sport), (dst, dport)
                    c["commands"].append(verb)
                elif k == "smtp.command_line" and isinstance(v, str):
                    # tshark 4.0's smtp.req.command keeps 4 characters ("STAR" for STARTTLS): the verb
                    # is the command line's first word, which replaces it just below
                    c["_line"] = v
                elif k == "smtp.response_tree":
                    code = get(v, "smtp.response.code")
                    if code is None:
                        continue
                    if c["client"] is None:
                        c["client"], c["server"] = (dst, dport), (src, sport)
                    c["replies"].append(int(code))
                elif k == "data-text-lines" and c["client"] is not None and (src, sport) == c["client"]:
                    # tshark 4.0 does not dissect BDAT, and can miss the end of a long DATA body: it then
                    # shows client bytes as text lines. Command lines are read from them; after a
                    # "BDAT n" line the next n bytes (chunk data, possibly spread over several PDUs) are
                    # skipped; any other line that is not a command (body text) ends the PDU's scan.
                    for line, _ in items(v):
                        raw = unescape(line)
                        if c["bdat_left"] >= len(raw):
                            c["bdat_left"] -= len(raw)
                            continue
                        raw, c["bdat_left"] = raw[c["bdat_left"]:], 0
                        m = TEXT_CMD.match(raw)
                        if not m:
                            break
                        verb = m.group(1).upper()
                        c["commands"].append(verb)
                        c["text_commands"] += 1
                        if verb == "BDAT":
                            n = re.match(r"BDAT +(\d+)", raw, re.IGNORECASE)
                            c["bdat_left"] = int(n.group(1)) if n else 0
                if k == "smtp.command_line_tree" and "_line" in c:
                    word = c.pop("_line").split(" ", 1)[0].strip()
                    c["commands"][-1] = word.upper() if VERB.match(word) else "?"

    results = []
    for c in conns.values():
        if not c["smtp_seen"] or c["client"] is None:
            continue
        if not c["tls_seen"]:
            tls = "none"
        elif c["first_tls_before_smtp"]:
            tls = "implicit"
        else:
            tls = "starttls"
        results.append({"client": endpoint(*c["client"]), "server": endpoint(*c["server"]),
                        "commands": c["commands"], "replies": c["replies"], "tls": tls,
                        "decrypted": c["decrypted"] if c["tls_seen"] else None,
                        "text_commands": c["text_commands"]})

    def sort_key(r):
        ip, port = r["client"].rsplit(":", 1)
        a = ipaddress.ip_address(ip.strip("[]"))
        return (a.version, int(a), int(port))

    for r in sorted(results, key=sort_key):
        sys.stdout.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main(sys.argv)
