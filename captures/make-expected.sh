#!/usr/bin/env bash
# Writes tshark goldens for every captures/*.pcap into captures/expected/:
#   <name>.tshark.jsonl        with <name>.keylog when it exists
#   <name>.tshark-nokeys.jsonl without keys, for captures that have a keylog
# Usage: captures/make-expected.sh [NAME_SUBSTRING...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
oracle="$here/../tests/oracle/tshark_facts.py"
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
done
