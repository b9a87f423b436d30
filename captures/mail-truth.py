#!/usr/bin/env python3
"""Server-log filters and truth files for the mail-transaction captures (pf-mail-*, exim-mail-*).

  mail-truth.py filter-postfix  < new maillog lines  > logs/NAME.postfix.log
  mail-truth.py filter-exim     < new mainlog lines  > logs/NAME.exim.log
  mail-truth.py truth logs/NAME.postfix.log|logs/NAME.exim.log  > expected/NAME.truth.json

Filters drop timestamps, host names, pids, client ports, fingerprints and the per-run message-id
text, and rename queue ids (Postfix) / message ids (Exim) to Q1, Q2, ... in order of appearance,
so that one id stays recognisable across smtpd, cleanup, qmgr and discard lines.

The truth file is derived from the server's log only. Transaction boundaries come from log lines
the lab configurations write on purpose for every MAIL command (Postfix: `check_sender_access
static:INFO` -> "info: MAIL from"; Exim: `acl_smtp_mail` `logwrite = ekuwatch-txn: MAIL`), recipient
counts from one line per RCPT (Postfix: `check_recipient_access static:INFO` before the other
checks -> "info: RCPT from", minus "reject: RCPT"; Exim: "ekuwatch-rcpt: accepted" /
"rejected RCPT"). Results:
  delivered            the server took the message (Postfix: cleanup message-id + status=sent;
                       Exim: "<=" line; "=> :blackhole:" follows)
  rejected_mail        MAIL refused                 rejected_rcpt   every RCPT refused, no message
  rejected_data        DATA/BDAT command refused    rejected_after_data  refused after the body
  aborted              transaction ended (RSET/QUIT) before a message was sent
Session: ehlo_refused = Postfix logged "abort: TLS from ..." (smtpd_tls_req_ccert: 421 to the
first EHLO after the handshake) before any transaction.
Stdlib only.
"""
import json
import re
import sys

PF_KEEP = re.compile(
    r"postfix/[a-z0-9]+/(smtpd|smtp)\[\d+\]: (connect from|disconnect from|lost connection|.*TLS connection established|"
    r"certificate verification failed|NOQUEUE|[0-9A-F]{6,}: |warning|SSL_accept error|.*: subject_CN=|"
    r"Client certificate|.*TLS not available|timeout|.*[Cc]onnection reuse)"
    r"|postfix/(cleanup|qmgr|discard|bounce|tlsproxy|error)\[\d+\]: ")


def rename(ids, key, prefix="Q"):
    if key not in ids:
        ids[key] = f"{prefix}{len(ids) + 1}"
    return ids[key]


def filter_postfix(lines):
    ids = {}
    out = []
    for line in lines:
        line = line.rstrip("\n")
        if not PF_KEEP.search(line) or "issuer=/" in line or "SSL_accept:" in line:
            continue
        if re.search(r"postfix/(tlsproxy)\[\d+\]: (connect|disconnect) ", line):
            continue
        line = re.sub(r"^.{15} \S+ ", "", line)
        line = re.sub(r"\[\d+\]:", ":", line, count=1)
        line = re.sub(r", fingerprint=.*", "", line)
        line = re.sub(r"(message-id=<)[^>]*(>)", r"\1...\2", line)
        line = re.sub(r"\b(?<![.:])[0-9A-F]{10,12}\b", lambda m: rename(ids, m.group(0)), line)
        line = re.sub(r"\bdelay=[0-9.]+, delays=[0-9./]+, ", "", line)
        line = re.sub(r"(127\.0\.0\.\d)\]:\d{4,5}", r"\1]", line)
        out.append(line)
    return out


def filter_exim(lines):
    ids = {}
    out = []
    for line in lines:
        line = line.rstrip("\n")
        line = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? (\[\d+\] )?", "", line)
        if line.startswith("exim ") and "daemon started" in line:
            continue
        line = re.sub(r"\b[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}\b", lambda m: rename(ids, m.group(0), "M"), line)
        line = re.sub(r"(\[127\.0\.0\.\d\]):\d+", r"\1", line)
        line = re.sub(r"\bid=\S+", "id=<...>", line)
        out.append(line)
    return out


def new_txn():
    return {"result": None, "rcpt_accepted": 0, "rcpt_rejected": 0, "_rcpt_seen": 0, "_ids": []}


def truth_postfix(lines):
    txns, cur, ehlo_refused = [], None, False
    received, sent, after_data = set(), set(), set()
    for line in lines:
        m = re.match(r"postfix/(?:([a-z0-9]+)/)?(\w+): (.*)", line)
        if not m:
            continue
        svc, prog, msg = m.groups()
        if prog == "smtpd":
            if re.match(r"NOQUEUE: abort: TLS from", msg) and not txns:
                ehlo_refused = True
            if re.match(r"(NOQUEUE|Q\d+): info: MAIL from", msg):
                cur = new_txn(); txns.append(cur)
            elif re.match(r"(NOQUEUE|Q\d+): reject: MAIL from", msg):
                if cur is None or cur["_rcpt_seen"] or cur["result"]:
                    cur = new_txn(); txns.append(cur)
                cur["result"] = "rejected_mail"
            elif cur is not None and re.match(r"(NOQUEUE|Q\d+): info: RCPT from", msg):
                cur["_rcpt_seen"] += 1
            elif cur is not None and re.match(r"(NOQUEUE|Q\d+): reject: RCPT from", msg):
                cur["rcpt_rejected"] += 1
            elif cur is not None and re.match(r"(NOQUEUE|Q\d+): reject: (DATA|BDAT) from", msg):
                cur["_data_rejected"] = True
            elif cur is not None and re.match(r"Q\d+: reject: END-OF-MESSAGE from", msg):
                after_data.add(msg.split(":")[0]); cur["_ids"].append(msg.split(":")[0])
            elif cur is not None and re.match(r"Q\d+: client=", msg):
                cur["_ids"].append(msg.split(":")[0])
        elif prog == "cleanup":
            qid = msg.split(":")[0]
            if re.match(r"Q\d+: message-id=", msg):
                received.add(qid)
            elif re.match(r"Q\d+: (reject|discard): ", msg):
                after_data.add(qid)
        elif prog == "discard" and "status=sent" in msg:
            sent.add(msg.split(":")[0])
    for t in txns:
        t["rcpt_accepted"] = max(0, t["_rcpt_seen"] - t["rcpt_rejected"])
        if t["result"]:
            pass
        elif any(q in after_data for q in t["_ids"]):
            t["result"] = "rejected_after_data"
        elif any(q in received and q in sent for q in t["_ids"]):
            t["result"] = "delivered"
        elif t.get("_data_rejected") and t["rcpt_accepted"]:
            t["result"] = "rejected_data"
        elif t["rcpt_accepted"] == 0 and t["rcpt_rejected"]:
            t["result"] = "rejected_rcpt"
        else:
            t["result"] = "aborted"
    return ehlo_refused, txns


def truth_exim(lines):
    txns, cur = [], None
    for msg in lines:
        if "ekuwatch-txn: MAIL" in msg:
            cur = new_txn(); txns.append(cur)
        elif cur is None:
            continue
        elif "ekuwatch-rcpt: accepted" in msg:
            cur["rcpt_accepted"] += 1
        elif "rejected MAIL" in msg:
            cur["result"] = "rejected_mail"
        elif "rejected RCPT" in msg:
            cur["rcpt_rejected"] += 1
        elif "rejected after DATA" in msg:
            cur["result"] = "rejected_after_data"
        elif re.search(r"rejected (DATA|BDAT)\b", msg):
            cur["result"] = cur["result"] or "rejected_data"
        elif re.match(r"M\d+ <= ", msg):
            cur["result"] = "delivered"
    for t in txns:
        if t["result"] is None:
            t["result"] = "rejected_rcpt" if t["rcpt_accepted"] == 0 and t["rcpt_rejected"] else "aborted"
    return False, txns


def main(argv):
    if len(argv) == 2 and argv[1] in ("filter-postfix", "filter-exim"):
        f = filter_postfix if argv[1] == "filter-postfix" else filter_exim
        sys.stdout.write("".join(l + "\n" for l in f(sys.stdin)))
        return
    if len(argv) == 3 and argv[1] == "truth":
        path = argv[2]
        with open(path) as fh:
            lines = [l.rstrip("\n") for l in fh]
        is_exim = path.endswith(".exim.log")
        ehlo_refused, txns = (truth_exim if is_exim else truth_postfix)(lines)
        rel = "logs/" + path.rsplit("/", 1)[-1]
        out = {"source": f"server log {rel} (mail-truth.py)",
               "server": "exim" if is_exim else "postfix",
               "ehlo_refused": ehlo_refused,
               "transactions": [{k: v for k, v in t.items() if not k.startswith("_")} for t in txns]}
        sys.stdout.write(json.dumps(out, indent=1) + "\n")
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
