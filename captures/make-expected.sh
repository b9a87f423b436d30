#!/usr/bin/env bash
# Writes tshark goldens for every captures/*.pcap into captures/expected/:
#   <name>.tshark.jsonl        with <name>.keylog when it exists
#   <name>.tshark-nokeys.jsonl without keys, for captures that have a keylog
#   <name>.tshark-smtp.jsonl   SMTP verbs and reply codes (tests/oracle/tshark_smtp.py), with the keylog;
#                              for captures with a keylog, and for keyless ones whose SMTP is all plaintext
# Usage: captures/make-expected.sh [NAME_SUBSTRING...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
oracle="$here/../tests/oracle/tshark_facts.py"
smtp_oracle="$here/../tests/oracle/tshark_smtp.py"
mkdir -p "$here/expected"
shopt -s nullglob
for pcap in "$here"/*.pcap; do
  name=$(basename "$pcap" .pcap)
  if [[ $# -gt 0 ]]; then
    hit=0; for f in "$@"; do [[ $name == *"$f"* ]] && hit=1; done; [[ $hit == 1 ]] || continue
  fi
  if [[ -f "$here/$name.keylog" ]]; then
    python3 "$oracle" "$pcap" --keylog "$here/$name.keylog" > "$here/expected/$name.tshark.jsonl"
    python3 "$oracle" "$pcap" > "$here/expected/$name.tshark-nokeys.jsonl"
  else
    python3 "$oracle" "$pcap" > "$here/expected/$name.tshark.jsonl"
    rm -f "$here/expected/$name.tshark-nokeys.jsonl"
  fi
  smtp_out="$here/expected/$name.tshark-smtp.jsonl"
  if [[ -f "$here/$name.keylog" ]]; then
    python3 "$smtp_oracle" "$pcap" --keylog "$here/$name.keylog" > "$smtp_out"
    [[ -s $smtp_out ]] || rm -f "$smtp_out"   # not SMTP (ossl-verify, gnutls-verify)
  else
    python3 "$smtp_oracle" "$pcap" > "$smtp_out.tmp"
    if [[ -s $smtp_out.tmp ]] && ! grep -qv '"tls": "none"' "$smtp_out.tmp"; then
      mv "$smtp_out.tmp" "$smtp_out"
    else
      rm -f "$smtp_out.tmp" "$smtp_out"
    fi
  fi
done
