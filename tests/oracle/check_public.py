#!/usr/bin/env python3
"""Checks tshark_facts.py against public captures whose facts are known (documented in
shared/corpus/public/README.md). Skips (exit 0, message on stderr) when the corpus folder or
tshark is absent. Usage: check_public.py [CORPUS_DIR]  (default: ../shared/corpus/public beside
the repository checkout)."""
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ORACLE = os.path.join(HERE, "tshark_facts.py")
DEFAULT = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "corpus", "public"))
SA, CA, EP = "1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.4"

# file -> list (one per connection, sorted by client) of expected field subsets
EXPECTED = {
    "zeek/client-certificate.pcap": [dict(version="1.2", cr_present=True, ca_names=[], client_cert="presented",
                                          client_leaf_eku=[CA, EP], server_leaf_eku=[SA, CA])],
    "zeek/certificate-request-failed.pcap": [dict(version="1.2", cr_present=True,
                                                  ca_names=[["C=US", "ST=Some-State", "L=Somewhere", "O=SomeOrg"]],
                                                  client_cert="empty", client_chain_len=0, server_leaf_eku=[SA],
                                                  alerts=[{"sender": "server", "level": 2, "description": 40}])],
    "zeek/xmpp-dialback-starttls.pcap": [dict(version="1.2", cr_present=True, ca_names=[], client_cert="presented",
                                              client_chain_len=4, client_leaf_eku=[SA, CA], server_leaf_eku=[SA, CA])],
    "zeek/smtp-starttls.pcap": [dict(version="1.2", cipher="0xc02f", cr_present=False, client_cert="absent",
                                     server_chain_len=3, server_leaf_eku=[SA, CA])],
    "sv/smtp-startssl--input.pcap": [dict(version="1.3", cr_present=None, client_cert=None, server_chain_len=None)],
    "zeek/pop3-starttls.pcap": [dict(version="1.2", cr_present=True, ca_names=[], client_cert="empty", server_leaf_eku=[])],
    "sv/tls-store-02--tls-client-auth.pcap": [dict(version="1.2", cr_present=True, client_cert="presented",
                                                   client_leaf_eku=[], server_leaf_eku=[])],
    "arkime/ssl-selfsign.pcap": [dict(version="ssl3", cr_present=True, client_cert="presented")],
}


def main():
    corpus = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    if not os.path.isdir(corpus):
        print(f"SKIP: public corpus not found at {corpus}", file=sys.stderr)
        return 0
    if shutil.which(os.environ.get("TSHARK", "tshark")) is None:
        print("SKIP: tshark not installed", file=sys.stderr)
        return 0
    failures = 0
    for rel, expected in EXPECTED.items():
        path = os.path.join(corpus, rel)
        if not os.path.exists(path):
            print(f"SKIP {rel}: missing", file=sys.stderr)
            continue
        out = subprocess.run([sys.executable, ORACLE, path], capture_output=True, text=True, check=True).stdout
        got = [json.loads(line) for line in out.splitlines()]
        if len(got) != len(expected):
            print(f"FAIL {rel}: {len(got)} connections, expected {len(expected)}")
            failures += 1
            continue
        for g, e in zip(got, expected):
            bad = {k: (g.get(k), v) for k, v in e.items() if g.get(k) != v}
            if bad:
                print(f"FAIL {rel}: " + "; ".join(f"{k}: got {a!r}, want {b!r}" for k, (a, b) in bad.items()))
                failures += 1
            else:
                print(f"ok   {rel}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
