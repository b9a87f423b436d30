#!/usr/bin/env bash
# Creates the lab PKI in captures/pki/ (only if missing: committed so goldens stay stable).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pki="$here/pki"
mkdir -p "$pki"
cd "$pki"
if [[ -f .complete ]]; then exit 0; fi
rm -f ./*.pem ./*.cnf ./*.srl
DAYS=36500   # ~100 years: goldens must not expire

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key.pem" 2>/dev/null; }

# $1 name, $2 subject, $3 issuer name, $4 extension text
issue() {
  key "$1"
  printf '%s\n' "[ext]" "$4" > "$1.cnf"
  openssl req -new -key "$1.key.pem" -subj "$2" -out "$1.csr.pem"
  openssl x509 -req -in "$1.csr.pem" -CA "$3.cert.pem" -CAkey "$3.key.pem" \
    -set_serial "0x$(openssl rand -hex 8)" -days $DAYS -sha256 \
    -extfile "$1.cnf" -extensions ext -out "$1.cert.pem" 2>/dev/null
  rm -f "$1.csr.pem"
}

CA_EXT=$'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash'
key root
printf '%s\n' "[req]" "distinguished_name=dn" "[dn]" "[ext]" "$CA_EXT" > root.cnf
openssl req -new -x509 -config root.cnf -extensions ext -key root.key.pem -subj "/O=Lab/CN=Lab Root CA" \
  -days $DAYS -sha256 -set_serial 0x01 -out root.cert.pem
key other-root
printf '%s\n' "[req]" "distinguished_name=dn" "[dn]" "[ext]" "$CA_EXT" > other-root.cnf
openssl req -new -x509 -config other-root.cnf -extensions ext -key other-root.key.pem \
  -subj "/O=Elsewhere/CN=Other Root CA" -days $DAYS -sha256 -set_serial 0x01 -out other-root.cert.pem

INT_EXT=$'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid'
issue inter "/O=Lab/OU=Issuing/CN=Lab Intermediate CA" root "$INT_EXT"

LEAF=$'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid'
# server: mx.lab.test, serverAuth only (like Gmail SMTP-IN), issued by the intermediate
issue server "/O=Lab/CN=mx.lab.test" inter "$LEAF"$'\nsubjectAltName=DNS:mx.lab.test\nextendedKeyUsage=serverAuth'
# clients: out.lab.test in EKU variants, issued by the root (both: by the intermediate, sent as a chain of 2)
issue client-serveronly "/O=Lab/CN=out.lab.test" root "$LEAF"$'\nsubjectAltName=DNS:out.lab.test\nextendedKeyUsage=serverAuth'
issue client-both       "/O=Lab/CN=out.lab.test" inter "$LEAF"$'\nsubjectAltName=DNS:out.lab.test\nextendedKeyUsage=serverAuth,clientAuth'
issue client-clientonly "/O=Lab/CN=out.lab.test" root "$LEAF"$'\nsubjectAltName=DNS:out.lab.test\nextendedKeyUsage=clientAuth'
issue client-noeku      "/O=Lab/CN=out.lab.test" root "$LEAF"$'\nsubjectAltName=DNS:out.lab.test'
issue client-untrusted  "/O=Elsewhere/CN=out.lab.test" other-root "$LEAF"$'\nsubjectAltName=DNS:out.lab.test\nextendedKeyUsage=serverAuth,clientAuth'

# chain files (leaf first, then intermediate)
cat server.cert.pem inter.cert.pem > server.chain.pem
cat client-both.cert.pem inter.cert.pem > client-both.chain.pem
for v in serveronly clientonly noeku untrusted; do cp client-$v.cert.pem client-$v.chain.pem; done
rm -f ./*.cnf ./*.srl
chmod 644 ./*.pem
touch .complete
