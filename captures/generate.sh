#!/usr/bin/env bash
# Builds small pcaps of real Postfix smtpd / OpenSSL / GnuTLS / swaks SMTP sessions on loopback.
# One pcap per scenario in captures/ (+ <name>.keylog for TLS 1.3 and selected others), then runs
# make-expected.sh to write tshark goldens. Needs root (tcpdump, postfix). Re-runnable.
# Usage: captures/generate.sh [SCENARIO_NAME_SUBSTRING...]   (no argument = all scenarios)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pki="$here/pki"
W=${EKUWATCH_CAPTURE_WORKDIR:-/tmp/ekuwatch-captures}
SRV=127.0.0.1
CLI=127.0.0.2   # client source address for openssl s_client and swaks (gnutls-cli cannot bind: 127.0.0.1)
RCPT=root@lab.test
FROM=sender@out.lab.test

for t in postfix tcpdump openssl gnutls-cli swaks tshark; do
  command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "run as root (tcpdump, postfix)" >&2; exit 1; }

"$here/gen-pki.sh"

# ---------------------------------------------------------------- Postfix instance
PFCONF="$W/etc"
stop_all() {
  if [[ -n ${TCPDUMP_PID:-} ]]; then kill -INT "$TCPDUMP_PID" 2>/dev/null || true; wait "$TCPDUMP_PID" 2>/dev/null || true; fi
  if [[ -f "$PFCONF/main.cf" ]]; then postfix -c "$PFCONF" stop >/dev/null 2>&1 || true; fi
}
trap stop_all EXIT

stop_all
rm -rf "$W"
mkdir -p "$PFCONF" "$W/spool" "$W/data" "$W/tls"
cp "$pki/server.chain.pem" "$pki/server.key.pem" "$pki/root.cert.pem" "$W/tls/"
chmod 600 "$W/tls/server.key.pem"
# a key that does not match the certificate: smtpd cannot initialise TLS -> 454 to STARTTLS
cp "$pki/client-noeku.key.pem" "$W/tls/wrong.key.pem"; chmod 600 "$W/tls/wrong.key.pem"
chown postfix "$W/data"

cat > "$PFCONF/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $W/spool
data_directory = $W/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = $W
maillog_file = $W/maillog
myhostname = mx.lab.test
mydomain = lab.test
myorigin = lab.test
mydestination = lab.test, mx.lab.test
inet_interfaces = $SRV
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
local_transport = discard:local
default_transport = discard:remote
relayhost =
biff = no
smtpd_peername_lookup = no
smtpd_banner = \$myhostname ESMTP Postfix
smtpd_tls_chain_files = $W/tls/server.key.pem, $W/tls/server.chain.pem
smtpd_tls_security_level = may
smtpd_tls_loglevel = 2
smtpd_tls_received_header = yes
smtpd_tls_session_cache_database =
smtp_tls_security_level = none
tls_random_source = dev:/dev/urandom
CF

ASK="-o smtpd_tls_ask_ccert=yes -o smtpd_tls_CAfile=$W/tls/root.cert.pem"
cat > "$PFCONF/master.cf" <<CF
# port 2525: STARTTLS offered, no client certificate requested (smtpd_tls_ask_ccert=no)
$SRV:2525 inet n - n - - smtpd -o syslog_name=postfix/noask
# port 2526: STARTTLS, CertificateRequest listing the Lab Root CA
$SRV:2526 inet n - n - - smtpd -o syslog_name=postfix/askccert $ASK
# port 2527: STARTTLS mandatory, client certificate required
$SRV:2527 inet n - n - - smtpd -o syslog_name=postfix/reqccert $ASK -o smtpd_tls_req_ccert=yes -o smtpd_tls_security_level=encrypt
# port 2465: implicit TLS (wrapper mode)
$SRV:2465 inet n - n - - smtpd -o syslog_name=postfix/wrapper -o smtpd_tls_wrappermode=yes
# port 2528: no TLS at all
$SRV:2528 inet n - n - - smtpd -o syslog_name=postfix/notls -o smtpd_tls_security_level=none
# port 2529: STARTTLS offered but TLS cannot be initialised (key does not match certificate) -> 454
$SRV:2529 inet n - n - - smtpd -o syslog_name=postfix/broken -o smtpd_tls_chain_files= -o smtpd_tls_cert_file=$W/tls/server.chain.pem -o smtpd_tls_key_file=$W/tls/wrong.key.pem
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CF

postfix -c "$PFCONF" check
postfix -c "$PFCONF" start >/dev/null
for i in $(seq 50); do
  ss -ltn | grep -q "$SRV:2529" && break; sleep 0.2
done
ss -ltn | grep -q "$SRV:2529" || { echo "postfix did not start; see $W/maillog" >&2; cat "$W/maillog" >&2 || true; exit 1; }
[[ ${1:-} == --setup-only ]] && { trap - EXIT; echo "postfix running with config $PFCONF"; exit 0; }

# ---------------------------------------------------------------- scenario runner
FILTER=("$@")
if [[ ${#FILTER[@]} -eq 0 ]]; then   # full run: drop outputs of scenarios that no longer exist
  rm -f "$here"/*.pcap "$here"/*.keylog "$here"/expected/*.jsonl "$here"/logs/*.log
fi
mkdir -p "$W/logs" "$here/logs"
wanted() {
  [[ ${#FILTER[@]} -eq 0 ]] && return 0
  local f; for f in "${FILTER[@]}"; do [[ $1 == *"$f"* ]] && return 0; done; return 1
}

# SMTP commands sent after the TLS handshake (or from the start for plaintext / implicit TLS)
dialog() {   # $1 = initial delay (s): time for STARTTLS + handshake
  sleep "$1"
  printf 'EHLO out.lab.test\r\n'; sleep 0.4
  printf 'MAIL FROM:<%s>\r\n' "$FROM"; sleep 0.3
  printf 'RCPT TO:<%s>\r\n' "$RCPT"; sleep 0.3
  printf 'DATA\r\n'; sleep 0.3
  printf 'Subject: ekuwatch test %s\r\n\r\nhello from %s\r\n.\r\n' "$NAME" "$NAME"; sleep 0.6
  printf 'QUIT\r\n'; sleep 1.5
}

# run NAME PORT KEYLOG(keylog|-) CLIENT-COMMAND...
run() {
  NAME=$1 PORT=$2 KL=$3; shift 3; export NAME
  wanted "$NAME" || return 0
  local pcap="$here/$NAME.pcap" keylog="$here/$NAME.keylog"
  rm -f "$pcap" "$keylog"
  KEYLOG=/dev/null; [[ $KL == keylog ]] && KEYLOG=$keylog
  local before; before=$(wc -l < "$W/maillog")
  tcpdump -i lo -s 0 -U -w "$pcap" "tcp port $PORT" 2> "$W/logs/$NAME.tcpdump" &
  TCPDUMP_PID=$!
  for _ in $(seq 50); do grep -q 'listening on' "$W/logs/$NAME.tcpdump" 2>/dev/null && break; sleep 0.1; done
  set +e +o pipefail
  ( cd "$pki" && "$@" ) > "$W/logs/$NAME.client" 2>&1
  local rc=$?
  set -e -o pipefail
  sleep 1
  kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID" || true; TCPDUMP_PID=
  [[ $KL == keylog && ! -s $keylog ]] && echo "WARNING: $NAME: no keylog written" >&2
  [[ $KL != keylog ]] && rm -f "$keylog"
  sleep 0.3
  # Postfix's account of the session (timestamps/pids/fingerprints stripped)
  tail -n +"$((before + 1))" "$W/maillog" \
    | grep -E 'smtpd\[[0-9]+\]: (connect from|disconnect from|lost connection|.*TLS connection established|certificate verification failed|NOQUEUE|warning|SSL_accept error|[0-9A-F]+: client=|.*: subject_CN=|Client certificate|.*TLS not available|timeout)' \
    | grep -v 'issuer=/' \
    | sed -E 's/^.{15} mx //; s/\[[0-9]+\]:/:/; s/, fingerprint=.*//; s/^(postfix\/[a-z0-9]+\/smtpd: )[0-9A-F]{8,}: /\1QUEUEID: /' \
    > "$here/logs/$NAME.postfix.log" || true
  printf '%-45s client-rc=%-3s %6s bytes  %s\n' "$NAME" "$rc" "$(stat -c %s "$pcap")" \
    "$(grep -oE '(Trusted|Untrusted|Anonymous|Verified) TLS connection established|certificate verification failed.*|abort: TLS from [^:]*: .*|TLS not available.*|lost connection after [A-Z]+' "$here/logs/$NAME.postfix.log" | paste -sd';' -)"
}

# openssl s_client with STARTTLS.  ossl NAME PORT VERSION(1.2|1.3) CERT(nocert|variant) KEYLOG
ossl() {
  local name=$1 port=$2 ver=$3 cert=$4 kl=$5 certargs=()
  [[ $cert != nocert ]] && certargs=(-cert "client-$cert.cert.pem" -key "client-$cert.key.pem")
  # the "both" leaf is issued by the intermediate: send leaf + intermediate
  [[ $cert == both ]] && certargs+=(-cert_chain inter.cert.pem)
  local klargs=(); [[ $kl == keylog ]] && klargs=(-keylogfile "$here/$name.keylog")
  local st=(-starttls smtp -name out.lab.test); local delay=1.2
  [[ ${OSSL_IMPLICIT:-} == 1 ]] && { st=(); delay=1.2; }
  run "$name" "$port" "$kl" bash -c '"$@"' _ sh_pipe "$delay" timeout 30 openssl s_client "${st[@]}" \
    -bind "$CLI:0" -connect "$SRV:$port" -servername mx.lab.test -CAfile root.cert.pem -verify_hostname mx.lab.test \
    "-tls${ver/./_}" "${certargs[@]}" "${klargs[@]}" -ign_eof
}
# gnutls-cli with STARTTLS. gnu NAME PORT VERSION CERT KEYLOG
gnu() {
  local name=$1 port=$2 ver=$3 cert=$4 kl=$5 certargs=()
  [[ $cert != nocert ]] && certargs=(--x509certfile "client-$cert.chain.pem" --x509keyfile "client-$cert.key.pem")
  local klf=/dev/null; [[ $kl == keylog ]] && klf="$here/$name.keylog"
  run "$name" "$port" "$kl" bash -c '"$@"' _ sh_pipe 1.5 env SSLKEYLOGFILE="$klf" timeout 30 gnutls-cli \
    --starttls-proto=smtp --port "$port" --sni-hostname mx.lab.test --verify-hostname mx.lab.test \
    --x509cafile root.cert.pem --priority "NORMAL:-VERS-ALL:+VERS-TLS$ver" "${certargs[@]}" --crlf "$SRV"
}
# sh_pipe DELAY CMD...: feed the SMTP dialog into CMD's stdin
sh_pipe() { local d=$1; shift; dialog "$d" | "$@"; }
export -f sh_pipe dialog
export FROM RCPT
swk() {  # swk NAME PORT SWAKS-ARGS...
  local name=$1 port=$2; shift 2
  run "$name" "$port" - env NAME="$name" timeout 30 swaks --server "$SRV" --port "$port" --local-interface "$CLI" --helo out.lab.test \
    --from "$FROM" --to "$RCPT" --header "Subject: ekuwatch test $name" --body "hello from $name" "$@"
}

# ---------------------------------------------------------------- scenarios
# port 2525: STARTTLS, no CertificateRequest
ossl pf-noask-tls12-openssl-nocert      2525 1.2 nocert -
ossl pf-noask-tls13-openssl-nocert      2525 1.3 nocert keylog
gnu  pf-noask-tls13-gnutls-nocert       2525 1.3 nocert keylog
swk  pf-noask-tls12-swaks-nocert        2525 --tls --tls-protocol tlsv1_2 --tls-sni mx.lab.test
swk  pf-noask-plain-swaks               2525            # STARTTLS offered, client stays in plaintext
# port 2526: smtpd_tls_ask_ccert=yes, CA names = Lab Root CA
for v in nocert serveronly both clientonly noeku untrusted; do
  ossl "pf-askccert-tls12-openssl-$v"   2526 1.2 "$v" -
done
gnu  pf-askccert-tls12-gnutls-nocert     2526 1.2 nocert -
gnu  pf-askccert-tls12-gnutls-serveronly 2526 1.2 serveronly -
gnu  pf-askccert-tls12-gnutls-both       2526 1.2 both -
swk  pf-askccert-tls12-swaks-both        2526 --tls --tls-protocol tlsv1_2 --tls-sni mx.lab.test \
       --tls-cert "$pki/client-both.chain.pem" --tls-key "$pki/client-both.key.pem"
for v in nocert serveronly both; do
  ossl "pf-askccert-tls13-openssl-$v"   2526 1.3 "$v" keylog
done
gnu  pf-askccert-tls13-gnutls-nocert     2526 1.3 nocert keylog
gnu  pf-askccert-tls13-gnutls-clientonly 2526 1.3 clientonly keylog
# port 2527: smtpd_tls_req_ccert=yes (handshake completes, then 421 + close when the cert is missing/untrusted)
ossl pf-reqccert-tls12-openssl-nocert     2527 1.2 nocert -
ossl pf-reqccert-tls12-openssl-serveronly 2527 1.2 serveronly keylog
ossl pf-reqccert-tls12-openssl-both       2527 1.2 both -
ossl pf-reqccert-tls13-openssl-nocert     2527 1.3 nocert keylog
ossl pf-reqccert-tls13-openssl-serveronly 2527 1.3 serveronly keylog
# port 2465: implicit TLS (smtpd_tls_wrappermode=yes)
swk  pf-wrapper-tls12-swaks-nocert        2465 --tlsc --tls-protocol tlsv1_2 --tls-sni mx.lab.test
OSSL_IMPLICIT=1 ossl pf-wrapper-tls13-openssl-nocert 2465 1.3 nocert keylog
# port 2528: no TLS (STARTTLS not offered); swaks --tls-optional goes on in plaintext
swk  pf-notls-swaks-tlsoptional          2528 --tls-optional
# port 2529: STARTTLS offered, answered 454 (key does not match cert); swaks goes on in plaintext
swk  pf-454-swaks-tlsoptional            2529 --tls-optional --tls-sni mx.lab.test

stop_all
trap - EXIT
chmod 644 "$here"/*.pcap "$here"/*.keylog 2>/dev/null || true
chown --reference="$here" "$here"/*.pcap "$here"/*.keylog 2>/dev/null || true   # tcpdump writes as user tcpdump
if [[ -x "$here/make-expected.sh" ]]; then "$here/make-expected.sh" "${FILTER[@]}"; fi
