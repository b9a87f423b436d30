#!/usr/bin/env bash
# make-nssdb.sh PKI_DIR DB_DIR [VARIANT]: an NSS database (sql:) for tstclnt/selfserv with the Lab Root
# CA trusted (for servers and clients) and, with VARIANT, pki/client-VARIANT.chain.pem + its key under
# the nickname "client" ("server" for VARIANT=server: server.chain.pem). One database per variant:
# the lab client certificates share one subject, which NSS would group under one nickname.
set -euo pipefail
pki=$1 db=$2 v=${3:-}
rm -rf "$db"; mkdir -p "$db"
certutil -N -d "sql:$db" --empty-password
certutil -A -d "sql:$db" -n lab-root -t "CT,C,C" -i "$pki/root.cert.pem"
[[ -z $v || $v == nocert ]] && exit 0
base=client-$v nick=client; [[ $v == server ]] && { base=server; nick=server; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
openssl pkcs12 -export -in "$pki/$base.chain.pem" -inkey "$pki/$base.key.pem" -name "$nick" -passout pass: -out "$tmp/p.p12"
pk12util -i "$tmp/p.p12" -d "sql:$db" -W "" >/dev/null
