#!/usr/bin/env bash
# Builds small pcaps of real Postfix smtpd / Exim / OpenSSL / GnuTLS / swaks / rustls / Python ssl SMTP sessions on loopback.
# One pcap per scenario in captures/ (+ <name>.keylog for TLS 1.3 and selected others), then runs
# make-expected.sh to write tshark goldens. Needs root (tcpdump, postfix). Re-runnable.
# Usage: captures/generate.sh [SCENARIO_NAME_SUBSTRING...]   (no argument = all scenarios)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pki="$here/pki"
W=${EKUWATCH_CAPTURE_WORKDIR:-/tmp/ekuwatch-captures}
SRV=${EKUWATCH_CAPTURE_SERVER:-127.0.0.1}   # the address Postfix listens on (a netns address in tests)
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
  if [[ -n ${SERVER_PID:-} ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [[ -n ${TCPDUMP_PID:-} ]]; then kill -INT "$TCPDUMP_PID" 2>/dev/null || true; wait "$TCPDUMP_PID" 2>/dev/null || true; fi
  if [[ -f "$PFCONF/main.cf" ]]; then postfix -c "$PFCONF" stop >/dev/null 2>&1 || true; fi
  if [[ -n ${EXIM_PID:-} ]]; then kill "$EXIM_PID" 2>/dev/null || true; wait "$EXIM_PID" 2>/dev/null || true; EXIM_PID=; fi
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
# ---- mail-transaction services (ports 2531-2534, scenarios pf-mail-*)
# header_checks: a message whose Subject contains "reject-after-data" is refused after its body (550)
header_checks = regexp:$W/header_checks
# mail for relay.test goes through the Postfix smtp client (transport relaylab) to port 2534
transport_maps = texthash:$W/transport
relaylab_destination_concurrency_limit = 1
# INFO actions only log: one "info: MAIL" / "info: RCPT" line per command (transaction boundaries
# and recipient counts for the truth files); the services below put them first in their lists
mail_info = check_sender_access static:INFO
mail_rcpt_restrictions = check_recipient_access static:INFO, check_recipient_access texthash:$W/rcpt_access, permit_tls_all_clientcerts, reject
mail_ccert_restrictions = check_sender_access static:INFO, check_ccert_access texthash:$W/ccert_access
CF
cat > "$W/header_checks" <<'HC'
/^Subject:.*reject-after-data/ REJECT 5.7.1 message refused after its body (ekuwatch test)
HC
printf 'relay.test relaylab:[%s]:2534\n' "$SRV" > "$W/transport"
cat > "$W/rcpt_access" <<'RA'
nobody@lab.test 550 5.1.1 User unknown
nobody@relay.test 550 5.1.1 User unknown
RA
# check_ccert_access keys: SHA-256 fingerprints (smtpd_tls_fingerprint_digest default) of both lab client certs
for v in both serveronly; do
  printf '%s REJECT client certificate %s refused by fingerprint (ekuwatch test)\n' \
    "$(openssl x509 -in "$pki/client-$v.cert.pem" -noout -fingerprint -sha256 | cut -d= -f2)" "$v"
done > "$W/ccert_access"
cp "$pki/client-both.chain.pem" "$pki/client-both.key.pem" "$W/tls/"; chmod 600 "$W/tls/client-both.key.pem"

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
# port 2530: as askccert, but the only key-exchange group is P-384: clients that send an X25519 key share get a HelloRetryRequest
$SRV:2530 inet n - n - - smtpd -o syslog_name=postfix/hrr $ASK -o tls_eecdh_auto_curves=secp384r1
# ---- mail-transaction services (scenarios pf-mail-*): all ask for a client cert (CA = Lab Root CA) and
# reject at MAIL time (smtpd_delay_reject=no)
# port 2531: RCPT accepted only with a trusted client cert (permit_tls_all_clientcerts, reject); nobody@lab.test -> 550 5.1.1
$SRV:2531 inet n - n - - smtpd -o syslog_name=postfix/mailtls $ASK -o smtpd_delay_reject=no -o smtpd_sender_restrictions=\$mail_info -o smtpd_recipient_restrictions=\$mail_rcpt_restrictions
# port 2532: MAIL refused by check_ccert_access (client cert SHA-256 fingerprint -> REJECT)
$SRV:2532 inet n - n - - smtpd -o syslog_name=postfix/ccertaccess $ASK -o smtpd_delay_reject=no -o smtpd_sender_restrictions=\$mail_ccert_restrictions -o smtpd_recipient_restrictions=\$mail_rcpt_restrictions
# port 2533: as 2531 without PIPELINING in the EHLO reply
$SRV:2533 inet n - n - - smtpd -o syslog_name=postfix/nopipe $ASK -o smtpd_delay_reject=no -o smtpd_sender_restrictions=\$mail_info -o smtpd_recipient_restrictions=\$mail_rcpt_restrictions -o smtpd_discard_ehlo_keywords=pipelining
# port 2534: receives from the Postfix smtp client (transport relaylab); as 2531, everything received is discarded
$SRV:2534 inet n - n - - smtpd -o syslog_name=postfix/relaytarget $ASK -o smtpd_delay_reject=no -o smtpd_sender_restrictions=\$mail_info -o smtpd_recipient_restrictions=\$mail_rcpt_restrictions -o content_filter=discard:relaytarget
# the Postfix smtp client for relay.test: from 127.0.0.2, opportunistic TLS with the "both" client cert,
# TLS connection reuse (via tlsproxy) so that queued messages share one connection
relaylab  unix  -       -       n       -       -       smtp -o syslog_name=postfix/relaylab -o smtp_bind_address=127.0.0.2 -o smtp_tls_security_level=may -o smtp_tls_chain_files=$W/tls/client-both.key.pem,$W/tls/client-both.chain.pem -o smtp_tls_CAfile=$W/tls/root.cert.pem -o smtp_tls_loglevel=1 -o smtp_tls_connection_reuse=yes -o smtp_connection_cache_destinations=[$SRV]:2534,[$SRV],$SRV
# tlsproxy's client role is off unless tlsproxy_client_security_level allows TLS (main.cf has smtp_tls_security_level = none)
tlsproxy  unix  -       -       n       -       0       tlsproxy -o tlsproxy_client_security_level=may -o tlsproxy_client_chain_files=$W/tls/client-both.key.pem,$W/tls/client-both.chain.pem -o tlsproxy_client_CAfile=$W/tls/root.cert.pem -o tlsproxy_client_loglevel=1
showq     unix  n       -       n       -       -       showq
# (locally submitted mail skips header_checks so that the relay.test message meant to be refused by port 2534 gets queued)
pickup    unix  n       -       n       60      1       pickup -o receive_override_options=no_header_body_checks
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
  ss -ltn | grep -q "$SRV:2530" && break; sleep 0.2
done
ss -ltn | grep -q "$SRV:2530" || { echo "postfix did not start; see $W/maillog" >&2; cat "$W/maillog" >&2 || true; exit 1; }
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
  [[ $KL == keylog && ! -s $keylog && -z ${KEYLOG_FROM_SERVER:-} ]] && echo "WARNING: $NAME: no keylog written" >&2
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
  local extra=(); [[ -n ${OSSL_EXTRA:-} ]] && read -ra extra <<< "$OSSL_EXTRA"   # e.g. OSSL_EXTRA="-ciphersuites X"
  local st=(-starttls smtp -name out.lab.test); local delay=1.2
  [[ ${OSSL_IMPLICIT:-} == 1 ]] && { st=(); delay=1.2; }
  run "$name" "$port" "$kl" bash -c '"$@"' _ sh_pipe "$delay" timeout 30 openssl s_client "${st[@]}" \
    -bind "$CLI:0" -connect "$SRV:$port" -servername mx.lab.test -CAfile root.cert.pem -verify_hostname mx.lab.test \
    "-tls${ver/./_}" "${certargs[@]}" "${klargs[@]}" "${extra[@]}" -ign_eof
}
# gnutls-cli with STARTTLS. gnu NAME PORT VERSION CERT KEYLOG
gnu() {
  local name=$1 port=$2 ver=$3 cert=$4 kl=$5 certargs=()
  [[ $cert != nocert ]] && certargs=(--x509certfile "client-$cert.chain.pem" --x509keyfile "client-$cert.key.pem")
  local klf=/dev/null; [[ $kl == keylog ]] && klf="$here/$name.keylog"
  run "$name" "$port" "$kl" bash -c '"$@"' _ sh_pipe 1.5 env SSLKEYLOGFILE="$klf" timeout 30 gnutls-cli \
    --starttls-proto=smtp --port "$port" --sni-hostname mx.lab.test --verify-hostname mx.lab.test \
    --x509cafile root.cert.pem --priority "NORMAL:-VERS-ALL:+VERS-TLS$ver${GNU_PRIO_EXTRA:-}" "${certargs[@]}" ${GNU_EXTRA:-} --crlf "$SRV"
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

# TLS 1.3 resumption: a first, uncaptured s_client session saves its session (ticket) with
# -sess_out, then the captured session offers it with -sess_in.  ossl_resumed NAME PORT CERT
ossl_resumed() {
  local name=$1 port=$2 cert=$3 certargs=()
  wanted "$name" || return 0
  [[ $cert != nocert ]] && certargs=(-cert "client-$cert.cert.pem" -key "client-$cert.key.pem")
  [[ $cert == both ]] && certargs+=(-cert_chain inter.cert.pem)
  local sess="$W/$name.sess.pem"; rm -f "$sess"
  ( cd "$pki" && NAME="$name-first" sh_pipe 1.2 timeout 30 openssl s_client -starttls smtp -name out.lab.test \
      -bind "$CLI:0" -connect "$SRV:$port" -servername mx.lab.test -CAfile root.cert.pem -verify_hostname mx.lab.test \
      -tls1_3 "${certargs[@]}" -sess_out "$sess" -ign_eof ) > "$W/logs/$name.first.client" 2>&1 || true
  [[ -s $sess ]] || echo "WARNING: $name: first session saved no session" >&2
  OSSL_EXTRA="-sess_in $sess" ossl "$name" "$port" 1.3 "$cert" keylog
}

# TLS 1.3 KeyUpdate: s_client's command letters (not with -ign_eof) send a KeyUpdate on a line "k"
# (update_not_requested) or "K" (update_requested: Postfix answers with its own KeyUpdate). SMTP
# commands that start with Q or R would be taken as s_client commands: they go in lower case.
dialog_ku() {
  sleep "$1"
  printf 'EHLO out.lab.test\r\n'; sleep 0.4
  printf 'K\n'; sleep 0.3
  printf 'MAIL FROM:<%s>\r\n' "$FROM"; sleep 0.3
  printf 'k\n'; sleep 0.3
  printf 'rcpt TO:<%s>\r\n' "$RCPT"; sleep 0.3
  printf 'DATA\r\n'; sleep 0.3
  printf 'Subject: ekuwatch test %s\r\n\r\nhello from %s\r\n.\r\n' "$NAME" "$NAME"; sleep 0.6
  printf 'K\n'; sleep 0.3
  printf 'quit\r\n'; sleep 1.5
}
ku_pipe() { local d=$1; shift; dialog_ku "$d" | "$@"; }
export -f dialog_ku ku_pipe
# ossl_ku NAME PORT CERT: s_client -starttls smtp -tls1_3 with KeyUpdates in both directions, key log
ossl_ku() {
  local name=$1 port=$2 cert=$3 certargs=()
  [[ $cert != nocert ]] && certargs=(-cert "client-$cert.cert.pem" -key "client-$cert.key.pem")
  [[ $cert == both ]] && certargs+=(-cert_chain inter.cert.pem)
  run "$name" "$port" keylog bash -c '"$@"' _ ku_pipe 1.2 timeout 30 openssl s_client -starttls smtp -name out.lab.test \
    -bind "$CLI:0" -connect "$SRV:$port" -servername mx.lab.test -CAfile root.cert.pem -verify_hostname mx.lab.test \
    -tls1_3 "${certargs[@]}" -keylogfile "$here/$name.keylog"
}

# Non-SMTP scenarios against a plain TLS server (openssl s_server / gnutls-serv) on 127.0.0.1.
# tls_srv NAME PORT SERVER-CMD... -- CLIENT-CMD...   (both run in pki/; server output -> logs/NAME.server.log)
tls_srv() {
  local name=$1 port=$2; shift 2
  wanted "$name" || return 0
  local scmd=(); while [[ $1 != -- ]]; do scmd+=("$1"); shift; done; shift
  ( cd "$pki" && exec "${scmd[@]}" ) > "$W/logs/$name.server" 2>&1 < /dev/null &
  SERVER_PID=$!
  for _ in $(seq 50); do ss -ltn | grep -qE "[:.]$port\b" && break; sleep 0.1; done
  run "$name" "$port" keylog "$@"
  kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  rm -f "$here/logs/$name.postfix.log"
  # keep the server's verdict lines, drop PEM blobs, session ids, times and the echoed text
  grep -vE '^(-----|[A-Za-z0-9+/=]{40,}$)|Session-ID|session ID|Session ID|Master-Key|Start Time|TLS session ticket|^ *[0-9a-f]{4} - ' \
    "$W/logs/$name.server" | sed -E 's/[0-9A-Fa-f]{40,}/<hex>/g' > "$here/logs/$name.server.log" || true
}
# s_client arguments for tls_srv (implicit TLS); sets CL.  ossl_args PORT VERSION CERT NAME
ossl_args() {
  local port=$1 ver=$2 cert=$3 name=$4
  CL=(-bind "$CLI:0" -connect "$SRV:$port" -servername mx.lab.test -CAfile root.cert.pem -verify_hostname mx.lab.test
      "-tls${ver/./_}" -keylogfile "$here/$name.keylog")
  [[ $cert != nocert ]] && CL+=(-cert "client-$cert.cert.pem" -key "client-$cert.key.pem")
  [[ $cert == both ]] && CL+=(-cert_chain inter.cert.pem)
  return 0
}
# the client sends one line after the handshake, then EOF on stdin makes s_client send close_notify
LINE_CLIENT='{ sleep 1; printf "hello from %s\n" "$0"; sleep 1; } | timeout 20 openssl s_client "$@"'
# ossl_srv NAME VERSION CERT : openssl s_server on 2600, client cert required (-Verify 1), purpose
# sslclient (clientAuth EKU required; also OpenSSL's default for a server), -verify_return_error, -rev echo
# [KIND=boring|s2n]: that peer is the client instead (--implicit: one line, then close; its key log)
ossl_srv() {
  local name=$1 ver=$2 cert=$3 kind=${4:-openssl}
  wanted "$name" || return 0
  line_client 2600 "$ver" "$cert" "$name" "$kind" || return 0
  tls_srv "$name" 2600 timeout 30 openssl s_server -accept "$SRV:2600" -naccept 1 -rev \
      -cert server.cert.pem -cert_chain inter.cert.pem -key server.key.pem \
      -Verify 1 -verify_return_error -CAfile root.cert.pem -purpose sslclient -- "${LC[@]}"
}
# line_client PORT VERSION CERT NAME KIND: the client command (LC) for an implicit-TLS line server
line_client() {
  local port=$1 ver=$2 cert=$3 name=$4 kind=$5
  if [[ $kind == openssl ]]; then
    ossl_args "$port" "$ver" "$cert" "$name"
    LC=(bash -c "$LINE_CLIENT" "$name" "${CL[@]}")
  else
    rust_peer_ready "$kind" || return 1
    srv_client_args "$kind" "$port" "$ver" "$cert" "$name"
    LC=("${CL[@]}" --implicit)
  fi
}
# gnutls_srv NAME VERSION CERT : gnutls-serv on 2601, --require-client-cert --verify-client-cert, echo mode
gnutls_srv() {
  local name=$1 ver=$2 cert=$3 kind=${4:-openssl}
  wanted "$name" || return 0
  line_client 2601 "$ver" "$cert" "$name" "$kind" || return 0
  tls_srv "$name" 2601 timeout 30 gnutls-serv -p 2601 --echo \
      --x509certfile server.chain.pem --x509keyfile server.key.pem --x509cafile root.cert.pem \
      --require-client-cert --verify-client-cert -- "${LC[@]}"
  # gnutls-serv prints whole certificates: keep its verdict and the key facts only
  [[ -f $here/logs/$name.server.log ]] && { grep -E '^(\* Accepted|- Status|- Description|- Got a certificate list|- Certificate\[|[[:space:]]+(Subject|Issuer):|[[:space:]]+Key Purpose|[[:space:]]+TLS WWW|- Version|- Client Signature|Error|\*\*\*|received cmd)' \
    "$W/logs/$name.server" | sed -E 's/ port [0-9]+ on .*//' > "$here/logs/$name.server.log" || true; }
}

# ---- rustls (third TLS stack): test helper tests/helpers/rustls-peer (standalone crate, not part of
# the workspace), a TLS 1.3-only SMTP STARTTLS client and server on rustls 0.23 + ring.  Built with
# cargo into $RUSTLS_TARGET_DIR (default /tmp/rustls-target) when cargo is available (a no-op when up
# to date); without cargo an existing binary is used, and without either the rustls scenarios are skipped.
RUSTLS_TARGET_DIR=${RUSTLS_TARGET_DIR:-/tmp/rustls-target}
RUSTLS_PEER="$RUSTLS_TARGET_DIR/release/rustls-peer"
RUSTLS_STATE=
rustls_ready() {
  [[ $RUSTLS_STATE == ok ]] && return 0
  [[ $RUSTLS_STATE == skip ]] && return 1
  if command -v cargo >/dev/null; then
    echo "building rustls-peer (cargo build --release, target dir $RUSTLS_TARGET_DIR)" >&2
    ( cd "$here/../tests/helpers/rustls-peer" && CARGO_TARGET_DIR="$RUSTLS_TARGET_DIR" cargo build --release --locked ) >&2 \
      || echo "WARNING: cargo build of rustls-peer failed" >&2
  fi
  if [[ -x $RUSTLS_PEER ]]; then RUSTLS_STATE=ok; return 0; fi
  echo "SKIPPING rustls scenarios: $RUSTLS_PEER missing and $(command -v cargo >/dev/null && echo 'cargo build failed' || echo 'cargo not found') (build tests/helpers/rustls-peer with: CARGO_TARGET_DIR=$RUSTLS_TARGET_DIR cargo build --release)" >&2
  RUSTLS_STATE=skip; return 1
}
# rustls client -> Postfix (STARTTLS, TLS 1.3 only, from 127.0.0.2); the helper runs the SMTP dialog
# itself and writes the key log.  rl_client NAME PORT CERT(nocert|variant: sends client-CERT.chain.pem as is)
# [HELPER-FLAGS...]
rl_client() {
  local name=$1 port=$2 cert=$3 certargs=(); shift 3
  wanted "$name" || return 0
  rustls_ready || return 0
  [[ $cert != nocert ]] && certargs=(--cert "client-$cert.chain.pem" --key "client-$cert.key.pem")
  run "$name" "$port" keylog timeout 30 "$RUSTLS_PEER" client --bind "$CLI" --port "$port" --sni mx.lab.test \
    --ca root.cert.pem "${certargs[@]}" --keylog "$here/$name.keylog" "$@"
}
# openssl s_client -starttls smtp -tls1_3 -> rustls server on 2602 (one connection; server.chain.pem;
# WebPkiClientVerifier with root.cert.pem, client cert optional (ask) or mandatory (require)).
# The committed key log is the client's; the server's goes to $W/logs/NAME.server.keylog.
# rl_srv NAME ask|require CERT
rl_srv() {
  local name=$1 mode=$2 cert=$3 certargs=()
  wanted "$name" || return 0
  rustls_ready || return 0
  [[ $cert != nocert ]] && certargs=(-cert "client-$cert.cert.pem" -key "client-$cert.key.pem")
  [[ $cert == both ]] && certargs+=(-cert_chain inter.cert.pem)
  rm -f "$W/logs/$name.server.keylog"
  tls_srv "$name" 2602 timeout 30 "$RUSTLS_PEER" server --port 2602 --chain server.chain.pem --key server.key.pem \
      --ca root.cert.pem "--$mode-client-cert" --keylog "$W/logs/$name.server.keylog" -- \
    bash -c '"$@"' _ sh_pipe 1.2 timeout 30 openssl s_client -starttls smtp -name out.lab.test \
      -bind "$CLI:0" -connect "$SRV:2602" -servername mx.lab.test -CAfile root.cert.pem -verify_hostname mx.lab.test \
      -tls1_3 "${certargs[@]}" -keylogfile "$here/$name.keylog" -ign_eof
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
# swaks answers Postfix's "421 4.7.1 Client certificate not trusted" with QUIT before the server's
# close arrives: the server still ended the session after one reply (closed_after_handshake)
swk  pf-reqccert-tls12-swaks-serveronly  2527 --tls --tls-protocol tlsv1_2 --tls-sni mx.lab.test \
       --tls-cert "$pki/client-serveronly.cert.pem" --tls-key "$pki/client-serveronly.key.pem"
swk  pf-reqccert-tls13-swaks-serveronly  2527 --tls --tls-protocol tlsv1_3 --tls-sni mx.lab.test \
       --tls-cert "$pki/client-serveronly.cert.pem" --tls-key "$pki/client-serveronly.key.pem"
# port 2465: implicit TLS (smtpd_tls_wrappermode=yes)
swk  pf-wrapper-tls12-swaks-nocert        2465 --tlsc --tls-protocol tlsv1_2 --tls-sni mx.lab.test
OSSL_IMPLICIT=1 ossl pf-wrapper-tls13-openssl-nocert 2465 1.3 nocert keylog
# port 2528: no TLS (STARTTLS not offered); swaks --tls-optional goes on in plaintext
swk  pf-notls-swaks-tlsoptional          2528 --tls-optional
# port 2529: STARTTLS offered, answered 454 (key does not match cert); swaks goes on in plaintext
swk  pf-454-swaks-tlsoptional            2529 --tls-optional --tls-sni mx.lab.test

# ---- TLS 1.3 additions (each with a client key log)
# all three TLS 1.3 cipher suites against ask_ccert with a serverAuth+clientAuth client cert
OSSL_EXTRA="-ciphersuites TLS_AES_128_GCM_SHA256"       ossl pf-askccert-tls13-openssl-both-aes128   2526 1.3 both keylog
OSSL_EXTRA="-ciphersuites TLS_AES_256_GCM_SHA384"       ossl pf-askccert-tls13-openssl-both-aes256   2526 1.3 both keylog
OSSL_EXTRA="-ciphersuites TLS_CHACHA20_POLY1305_SHA256" ossl pf-askccert-tls13-openssl-both-chacha20 2526 1.3 both keylog
GNU_PRIO_EXTRA=":-CIPHER-ALL:+CHACHA20-POLY1305" gnu pf-askccert-tls13-gnutls-serveronly-chacha20 2526 1.3 serveronly keylog
# HelloRetryRequest: port 2530 only accepts P-384; s_client sends an X25519 key share first
ossl pf-hrr-tls13-openssl-both            2530 1.3 both keylog
ossl pf-hrr-tls13-openssl-nocert          2530 1.3 nocert keylog
# PSK resumption (session ticket from an uncaptured first session): no CertificateRequest, no certificates
ossl_resumed pf-askccert-tls13-openssl-both-resumed 2526 both
ossl_resumed pf-noask-tls13-openssl-nocert-resumed  2525 nocert
# KeyUpdate after the handshake (client "K"/"k", Postfix answers each "K"); gnutls-cli --rehandshake
# in TLS 1.3 sends a KeyUpdate right after the handshake
ossl_ku pf-askccert-tls13-openssl-both-keyupdate   2526 both
ossl_ku pf-noask-tls13-openssl-nocert-keyupdate    2525 nocert
GNU_EXTRA=--rehandshake gnu pf-askccert-tls13-gnutls-nocert-keyupdate 2526 1.3 nocert keylog
# openssl s_server (port 2600, implicit TLS, not SMTP): client cert required, clientAuth EKU checked
ossl_srv ossl-verify-tls13-openssl-serveronly 1.3 serveronly   # alert 43 unsupported_certificate (encrypted)
ossl_srv ossl-verify-tls13-openssl-both       1.3 both         # accepted, one line echoed reversed
ossl_srv ossl-verify-tls13-openssl-nocert     1.3 nocert       # alert 116 certificate_required (encrypted)
ossl_srv ossl-verify-tls12-openssl-serveronly 1.2 serveronly   # alert 43 in plaintext
ossl_srv ossl-verify-tls12-openssl-nocert     1.2 nocert       # alert 40 handshake_failure in plaintext
# gnutls-serv (port 2601, implicit TLS, not SMTP): --require-client-cert --verify-client-cert
gnutls_srv gnutls-verify-tls13-openssl-serveronly 1.3 serveronly
gnutls_srv gnutls-verify-tls13-openssl-both       1.3 both
gnutls_srv gnutls-verify-tls13-openssl-nocert     1.3 nocert

# rustls client (tests/helpers/rustls-peer) -> Postfix, TLS 1.3
rl_client pf-askccert-tls13-rustls-nocert     2526 nocert
rl_client pf-askccert-tls13-rustls-both       2526 both         # leaf + intermediate (client-both.chain.pem)
rl_client pf-askccert-tls13-rustls-serveronly 2526 serveronly   # leaf only (client-serveronly.chain.pem)
rl_client pf-noask-tls13-rustls-nocert        2525 nocert
# two connections with one session cache: the second resumes (TLS 1.3 PSK)
rl_client pf-askccert-tls13-rustls-both-resumed 2526 both --sessions 2
# EHLO and QUIT written at once against req_ccert: Postfix answers 421 to the EHLO and closes while
# the client's QUIT is already on its way (closed_after_handshake, not established)
rl_client pf-reqccert-tls13-rustls-serveronly-eager 2527 serveronly --eager-quit
# openssl s_client -starttls smtp -tls1_3 -> rustls server (port 2602, SMTP STARTTLS), WebPkiClientVerifier
rl_srv rustls-ask-tls13-openssl-nocert         ask     nocert
rl_srv rustls-require-tls13-openssl-both       require both
rl_srv rustls-require-tls13-openssl-serveronly require serveronly
rl_srv rustls-require-tls13-openssl-nocert     require nocert
# RFC 8879 certificate compression (rustls on both ends, one algorithm offered): the server's and
# the client's Certificate are CompressedCertificate messages (type 25), encrypted like them.
# rl_rl NAME ask|require CERT ALGORITHM
rl_rl() {
  local name=$1 mode=$2 cert=$3 alg=$4 certargs=()
  wanted "$name" || return 0
  rustls_ready || return 0
  [[ $cert != nocert ]] && certargs=(--cert "client-$cert.chain.pem" --key "client-$cert.key.pem")
  rm -f "$W/logs/$name.server.keylog"
  tls_srv "$name" 2602 timeout 30 "$RUSTLS_PEER" server --port 2602 --chain server.chain.pem --key server.key.pem \
      --ca root.cert.pem "--$mode-client-cert" --keylog "$W/logs/$name.server.keylog" --compress "$alg" -- \
    env NAME="$name" timeout 30 "$RUSTLS_PEER" client --bind "$CLI" --port 2602 --sni mx.lab.test \
      --ca root.cert.pem "${certargs[@]}" --keylog "$here/$name.keylog" --compress "$alg"
}
rl_rl rustls-require-tls13-rustls-both-brotli   require both   brotli
rl_rl rustls-ask-tls13-rustls-nocert-brotli     ask     nocert brotli
rl_rl rustls-require-tls13-rustls-both-zlib     require both   zlib
# rustls client offering zlib to Postfix (OpenSSL 3.0 offers none, so nothing is compressed)
rl_client pf-askccert-tls13-rustls-both-zlib  2526 both --compress zlib

# ---- more TLS stacks (issue 15): Go crypto/tls, Java SunJSSE, NSS. Peers in tests/helpers/{go,java,nss}-peer.
# Each is built (or set up) once when its toolchain is there; without it its scenarios are skipped with a
# message, like the rustls ones. Servers: go-peer on 2603, java-peer on 2604 (SMTP STARTTLS, one connection).
# Where the client cannot write a key log (Java; Debian's NSS is built without SSLKEYLOGFILE) the
# committed NAME.keylog is the server's when the server writes one (go-peer); against Postfix these
# sessions have no key log: their truth is the configuration (port, certificate) and logs/NAME.postfix.log.
PEERS_DIR=${EKUWATCH_PEERS_DIR:-/tmp/ekuwatch-peers}
GO_PEER="$PEERS_DIR/go/go-peer"; GO_STATE=
go_ready() {
  [[ $GO_STATE == ok ]] && return 0; [[ $GO_STATE == skip ]] && return 1
  if command -v go >/dev/null; then
    echo "building go-peer (go build, into $PEERS_DIR/go)" >&2
    ( cd "$here/../tests/helpers/go-peer" && GOFLAGS=-mod=mod go build -trimpath -o "$GO_PEER" . ) >&2 \
      || echo "WARNING: go build of go-peer failed" >&2
  fi
  if [[ -x $GO_PEER ]]; then GO_STATE=ok; return 0; fi
  echo "SKIPPING go scenarios: $GO_PEER missing and $(command -v go >/dev/null && echo 'go build failed' || echo 'go not found (apt-get install golang-go)')" >&2
  GO_STATE=skip; return 1
}
JAVA_PEER_DIR="$PEERS_DIR/java"; JAVA_STATE=
java_ready() {
  [[ $JAVA_STATE == ok ]] && return 0; [[ $JAVA_STATE == skip ]] && return 1
  if command -v javac >/dev/null && command -v java >/dev/null; then
    echo "building java-peer (javac, into $JAVA_PEER_DIR)" >&2
    mkdir -p "$JAVA_PEER_DIR"
    javac -d "$JAVA_PEER_DIR" "$here/../tests/helpers/java-peer/Peer.java" >&2 || echo "WARNING: javac of Peer.java failed" >&2
  fi
  if [[ -f $JAVA_PEER_DIR/Peer.class ]] && command -v java >/dev/null; then JAVA_STATE=ok; return 0; fi
  echo "SKIPPING java scenarios: no java/javac (apt-get install openjdk-17-jdk-headless)" >&2
  JAVA_STATE=skip; return 1
}
JAVA_PEER=(java -cp "$JAVA_PEER_DIR" Peer)
NSS_STATE=
nss_ready() {   # one NSS database per client certificate variant: $PEERS_DIR/nssdb-VARIANT
  [[ $NSS_STATE == ok ]] && return 0; [[ $NSS_STATE == skip ]] && return 1
  if command -v tstclnt >/dev/null && command -v certutil >/dev/null && command -v pk12util >/dev/null; then
    local v; for v in nocert both serveronly untrusted server; do
      "$here/../tests/helpers/nss-peer/make-nssdb.sh" "$pki" "$PEERS_DIR/nssdb-$v" "$v" >/dev/null || { NSS_STATE=skip; break; }
    done
    [[ $NSS_STATE != skip ]] && { NSS_STATE=ok; return 0; }
  fi
  echo "SKIPPING nss scenarios: tstclnt/certutil/pk12util missing or failed (apt-get install libnss3-tools)" >&2
  NSS_STATE=skip; return 1
}
# certificate arguments of a peer client: go/java take the whole chain file (leaf [+ intermediate])
peer_cert_args() { PCA=(); [[ $1 != nocert ]] && PCA=(--cert "client-$1.chain.pem" --key "client-$1.key.pem"); return 0; }
# go_client NAME PORT VERSION CERT   (Go client -> Postfix, key log from the client)
go_client() {
  local name=$1 port=$2 ver=$3 cert=$4
  wanted "$name" || return 0; go_ready || return 0
  peer_cert_args "$cert"
  run "$name" "$port" keylog timeout 30 "$GO_PEER" client --bind "$CLI" --host "$SRV" --port "$port" --tls "$ver" \
    "${PCA[@]}" --keylog "$here/$name.keylog" --sessions "${SESSIONS:-1}"
}
# java_client NAME PORT VERSION CERT   (Java client -> Postfix, no key log)
java_client() {
  local name=$1 port=$2 ver=$3 cert=$4
  wanted "$name" || return 0; java_ready || return 0
  peer_cert_args "$cert"
  run "$name" "$port" - timeout 30 "${JAVA_PEER[@]}" client --bind "$CLI" --host "$SRV" --port "$port" --tls "$ver" "${PCA[@]}"
}
# nss_client NAME PORT VERSION CERT: tstclnt knows no STARTTLS: starttls-splice.py (client mode, listening on
# 127.0.0.1:2610, not captured) does the plaintext EHLO/STARTTLS with the server from 127.0.0.2, then copies
# tstclnt's bytes unchanged: the TLS on the captured connection is NSS's. No key log (see above).
nss_client() {
  local name=$1 port=$2 ver=$3 cert=$4 kl=${5:--}
  wanted "$name" || return 0; nss_ready || return 0
  local nick=(); [[ $cert != nocert ]] && nick=(-n client)
  local klf=/dev/null; [[ $kl == keylog ]] && klf="$here/$name.keylog"
  run "$name" "$port" "$kl" bash -c '"$@"' _ nss_pipe "$port" timeout 30 tstclnt -h 127.0.0.1 -p 2610 -a mx.lab.test \
    -d "sql:$PEERS_DIR/nssdb-$cert" "${nick[@]}" -V "tls$ver:tls$ver"
}
nss_pipe() {  # nss_pipe PORT CMD...: the splice, then the SMTP dialog into CMD's stdin
  local port=$1; shift
  python3 "$here/../tests/helpers/nss-peer/starttls-splice.py" client --listen 127.0.0.1:2610 --connect "$SRV:$port" --bind "$CLI" &
  local sp=$!
  for _ in $(seq 50); do ss -ltn | grep -q '127.0.0.1:2610 ' && break; sleep 0.1; done
  # tstclnt does not exit at the end of its input (it polls on): the session is over when the splice
  # has seen both sides close; then tstclnt is stopped
  { dialog 1.5 | "$@"; } & local cp=$!
  wait "$sp"; sleep 0.3
  pkill -P "$cp" 2>/dev/null; kill "$cp" 2>/dev/null; wait "$cp" 2>/dev/null
  return 0
}
export -f nss_pipe; export here SRV CLI
# peer_srv NAME PORT SERVER-CMD... -- CLIENT-CMD...: a peer server; its key log ($W/logs/NAME.server.keylog)
# becomes NAME.keylog when the client wrote none.
peer_srv() {
  local name=$1; shift
  KEYLOG_FROM_SERVER=1 tls_srv "$name" "$@"
  if [[ ! -s $here/$name.keylog && -s $W/logs/$name.server.keylog ]]; then
    cp "$W/logs/$name.server.keylog" "$here/$name.keylog"; echo "  $name: key log from the server" >&2
  fi
  [[ -s $here/$name.keylog ]] || { rm -f "$here/$name.keylog"; echo "  $name: no key log (client nor server)" >&2; }
  return 0
}
# srv_client_args KIND PORT VERSION CERT NAME: the client command (CL) for a peer server on PORT.
#   openssl: s_client -starttls smtp (leaf + -cert_chain inter for "both"), key log; go (key log)/java/nss: the peers.
srv_client_args() {
  local kind=$1 port=$2 ver=$3 cert=$4 name=$5
  case $kind in
    openssl)
      local c=(); [[ $cert != nocert ]] && c=(-cert "client-$cert.cert.pem" -key "client-$cert.key.pem")
      [[ $cert == both ]] && c+=(-cert_chain inter.cert.pem)
      CL=(bash -c '"$@"' _ sh_pipe 1.2 timeout 30 openssl s_client -starttls smtp -name out.lab.test \
        -bind "$CLI:0" -connect "$SRV:$port" -servername mx.lab.test -CAfile root.cert.pem -verify_hostname mx.lab.test \
        "-tls${ver/./_}" "${c[@]}" -keylogfile "$here/$name.keylog" -ign_eof) ;;
    go) peer_cert_args "$cert"
      CL=(env NAME="$name" timeout 30 "$GO_PEER" client --bind "$CLI" --host "$SRV" --port "$port" --tls "$ver" "${PCA[@]}" \
        --keylog "$here/$name.keylog" --sessions "${SESSIONS:-1}") ;;
    java) peer_cert_args "$cert"
      CL=(env NAME="$name" timeout 30 "${JAVA_PEER[@]}" client --bind "$CLI" --host "$SRV" --port "$port" --tls "$ver" "${PCA[@]}") ;;
    nss) local nick=(); [[ $cert != nocert ]] && nick=(-n client)
      CL=(bash -c '"$@"' _ nss_pipe "$port" timeout 30 tstclnt -h 127.0.0.1 -p 2610 -a mx.lab.test \
        -d "sql:$PEERS_DIR/nssdb-$cert" "${nick[@]}" -V "tls$ver:tls$ver") ;;
    wolfssl) peer_cert_args "$cert"   # no key log (Debian's wolfSSL has no secret callback)
      CL=(env NAME="$name" timeout 30 "$WOLFSSL_PEER" client --bind "$CLI" --host "$SRV" --port "$port" --tls "$ver" "${PCA[@]}") ;;
    boring|s2n|mbedtls) peer_cert_args "$cert"
      local more=(); [[ $kind != mbedtls && ${SESSIONS:-1} != 1 ]] && more=(--sessions "$SESSIONS")
      # shellcheck disable=SC2206 # CLIENT_FLAGS: extra client options, split on spaces
      [[ -n ${CLIENT_FLAGS:-} ]] && more+=($CLIENT_FLAGS)
      CL=(env NAME="$name" timeout 30 "$PEERS_CARGO_TARGET/release/$kind-peer" client --bind "$CLI" --host "$SRV" --port "$port" \
        --tls "$ver" "${PCA[@]}" --keylog "$here/$name.keylog" "${more[@]}") ;;
  esac
}
# go_srv NAME ask|require VERSION CERT [CLIENT=openssl]: go-peer server on 2603 (VerifyClientCertIfGiven /
# RequireAndVerifyClientCert, Lab Root CA, clientAuth EKU checked by crypto/tls)
go_srv() {
  local name=$1 mode=$2 ver=$3 cert=$4 kind=${5:-openssl}
  wanted "$name" || return 0; go_ready || return 0
  [[ $kind == java ]] && { java_ready || return 0; }; [[ $kind == nss ]] && { nss_ready || return 0; }
  srv_client_args "$kind" 2603 "$ver" "$cert" "$name"
  rm -f "$W/logs/$name.server.keylog"
  peer_srv "$name" 2603 timeout 30 "$GO_PEER" server --host "$SRV" --port 2603 --tls "$ver" --client-auth "$mode" \
      --keylog "$W/logs/$name.server.keylog" --sessions "${SESSIONS:-1}" -- "${CL[@]}"
}
# java_srv NAME ask|require VERSION CERT [CLIENT=openssl]: java-peer server on 2604 (setWantClientAuth /
# setNeedClientAuth, PKIX trust manager with the Lab Root CA: clientAuth EKU checked by SunJSSE)
java_srv() {
  local name=$1 mode=$2 ver=$3 cert=$4 kind=${5:-openssl}
  wanted "$name" || return 0; java_ready || return 0
  [[ $kind == nss ]] && { nss_ready || return 0; }; [[ $kind == go ]] && { go_ready || return 0; }
  srv_client_args "$kind" 2604 "$ver" "$cert" "$name"
  peer_srv "$name" 2604 timeout 30 "${JAVA_PEER[@]}" server --host "$SRV" --port 2604 --tls "$ver" --client-auth "$mode" -- "${CL[@]}"
}

# nss_srv NAME ask|require VERSION CERT: NSS selfserv (server.chain.pem; -r request, -r -r require, verified
# against the Lab Root CA for client use: NSS checks the clientAuth EKU) on 127.0.0.1:2605 (not captured),
# behind starttls-splice.py in server mode on 2606 (captured): it answers the plaintext SMTP up to STARTTLS
# and then copies bytes to selfserv. selfserv is no SMTP server: it answers the first line after the
# handshake (the EHLO) as an HTTP request and closes. Client: openssl s_client -starttls smtp (key log).
export SPLICE="$here/../tests/helpers/nss-peer/starttls-splice.py"
nss_srv() {
  local name=$1 mode=$2 ver=$3 cert=$4
  wanted "$name" || return 0; nss_ready || return 0
  local r=(-r); [[ $mode == require ]] && r=(-r -r)
  srv_client_args openssl 2606 "$ver" "$cert" "$name"
  peer_srv "$name" 2606 bash -c 'timeout 30 selfserv "$@" & sp=$!; trap "kill $sp 2>/dev/null" EXIT; sleep 0.5
      python3 "$SPLICE" server --listen "$SRV:2606" --connect 127.0.0.1:2605' _ \
    -d "sql:$PEERS_DIR/nssdb-server" -e server -p 2605 -V "tls$ver:tls$ver" "${r[@]}" -- "${CL[@]}"
}

# Go, Java, NSS clients -> Postfix (2525 no request, 2526 ask_ccert, 2527 req_ccert), TLS 1.3
for st in go java nss; do
  "${st}_client" "pf-noask-tls13-$st-nocert" 2525 1.3 nocert
  for v in nocert serveronly both; do
    "${st}_client" "pf-askccert-tls13-$st-$v" 2526 1.3 "$v"
    "${st}_client" "pf-reqccert-tls13-$st-$v" 2527 1.3 "$v"
  done
  "${st}_client" "pf-askccert-tls12-$st-both"       2526 1.2 both
  "${st}_client" "pf-reqccert-tls12-$st-serveronly" 2527 1.2 serveronly
done
# Go and Java servers <- openssl s_client -starttls smtp (client key log)
for st in go java; do
  "${st}_srv" "$st-ask-tls13-openssl-nocert"         ask     1.3 nocert
  "${st}_srv" "$st-ask-tls13-openssl-serveronly"     ask     1.3 serveronly   # EKU: refused although optional
  "${st}_srv" "$st-require-tls13-openssl-both"       require 1.3 both
  "${st}_srv" "$st-require-tls13-openssl-serveronly" require 1.3 serveronly   # EKU: refused
  "${st}_srv" "$st-require-tls13-openssl-nocert"     require 1.3 nocert       # certificate missing
  "${st}_srv" "$st-require-tls13-openssl-untrusted"  require 1.3 untrusted    # unknown CA
  "${st}_srv" "$st-require-tls12-openssl-serveronly" require 1.2 serveronly
  "${st}_srv" "$st-require-tls12-openssl-both"       require 1.2 both
done
# no CertificateRequest: Go sends its NewSessionTicket right after its Finished (RFC 8446 §4.6.1)
go_srv   go-noask-tls13-openssl-nocert   none 1.3 nocert
go_srv   go-noask-tls13-java-nocert      none 1.3 nocert java
go_srv   go-noask-tls13-nss-nocert       none 1.3 nocert nss
java_srv java-noask-tls13-openssl-nocert none 1.3 nocert
go_srv   go-require-tls13-java-untrusted require 1.3 untrusted java   # unknown CA: refused
# each stack against itself: Go (client key log), Java (no key log: the server's log and configuration)
go_srv   go-ask-tls13-go-nocert            ask     1.3 nocert     go
go_srv   go-require-tls13-go-both          require 1.3 both       go
go_srv   go-require-tls13-go-serveronly    require 1.3 serveronly go
java_srv java-ask-tls13-java-nocert        ask     1.3 nocert     java
java_srv java-require-tls13-java-both      require 1.3 both       java
java_srv java-require-tls13-java-serveronly require 1.3 serveronly java
# HelloRetryRequest (port 2530 accepts only P-384; the clients offer an X25519 key share first)
go_client   pf-hrr-tls13-go-both     2530 1.3 both
java_client pf-hrr-tls13-java-nocert 2530 1.3 nocert
nss_client  pf-hrr-tls13-nss-both    2530 1.3 both
# Resumption across stacks (SESSIONS=2: the peer makes or accepts two connections sharing its session
# cache or ticket key; the second resumes): TLS 1.3 PSK (no CertificateRequest can come) and TLS 1.2
# session tickets (abbreviated handshake: no Certificate, no CertificateRequest)
SESSIONS=2 go_client pf-askccert-tls13-go-both-resumed   2526 1.3 both
SESSIONS=2 go_client pf-askccert-tls12-go-both-resumed   2526 1.2 both
SESSIONS=2 go_client pf-noask-tls12-go-nocert-resumed    2525 1.2 nocert
SESSIONS=2 go_srv    go-require-tls13-go-both-resumed    require 1.3 both   go
SESSIONS=2 go_srv    go-ask-tls13-go-nocert-resumed      ask     1.3 nocert go
SESSIONS=2 go_srv    go-require-tls12-go-both-resumed    require 1.2 both   go
# NSS sends no serverAuth-only certificate (its serveronly scenarios are anonymous): an untrusted one
nss_client pf-askccert-tls13-nss-untrusted 2526 1.3 untrusted
nss_client pf-reqccert-tls13-nss-untrusted 2527 1.3 untrusted
# NSS server (selfserv behind the splice) <- openssl s_client
nss_srv nss-ask-tls13-openssl-nocert         ask     1.3 nocert
nss_srv nss-require-tls13-openssl-both       require 1.3 both
nss_srv nss-require-tls13-openssl-serveronly require 1.3 serveronly   # EKU: refused
nss_srv nss-require-tls13-openssl-nocert     require 1.3 nocert
nss_srv nss-require-tls12-openssl-serveronly require 1.2 serveronly

# ---- A certificate asked for after the handshake: openssl s_server behind the STARTTLS splice (captured port
# 2612; s_server on 2613) asks for nothing in the handshake, then — two seconds in, its stdin command — TLS 1.2:
# renegotiates ('R': with a CertificateRequest, as a server that wants a certificate only for some requests;
# 'r': without one); TLS 1.3: post-handshake authentication ('c': a CertificateRequest after the handshake;
# the client offers it with -enable_pha). Client: s_client -starttls smtp, whose key log holds every secret.
# late_srv NAME VERSION CMD(- for none) CERT [S_SERVER-OPTION [S_CLIENT-OPTION]]
# -no_resumption_on_reneg: else the client resumes its session and the renegotiation is abbreviated (no CR).
late_srv() {
  local name=$1 ver=$2 cmd=$3 cert=$4 sopt=${5:-} copt=${6:-}
  wanted "$name" || return 0
  srv_client_args openssl 2612 "$ver" "$cert" "$name"
  # s_server answers no SMTP: the client ends the session (close_notify at the end of its input: no -ign_eof;
  # -nocommands, else its "RCPT" line would start a renegotiation of its own)
  local a cl=(); for a in "${CL[@]}"; do [[ $a != -ign_eof ]] && cl+=("$a"); done; CL=("${cl[@]}" -nocommands $copt)
  peer_srv "$name" 2612 bash -c '{ sleep 2; [[ $0 == - ]] || echo "$0"; sleep 5; } | timeout 20 openssl s_server -accept 127.0.0.1:2613 \
      -naccept 1 "-tls${1/./_}" -cert server.cert.pem -cert_chain inter.cert.pem -key server.key.pem -CAfile root.cert.pem $2 & sp=$!
      trap "kill $sp 2>/dev/null" EXIT; sleep 0.5
      python3 "$SPLICE" server --listen "$SRV:2612" --connect 127.0.0.1:2613' "$cmd" "$ver" "$sopt" -- "${CL[@]}"
}
late_srv reneg-request-tls12-openssl-both   1.2 R both   -no_resumption_on_reneg   # leaf + intermediate, in the renegotiation
late_srv reneg-request-tls12-openssl-nocert 1.2 R nocert -no_resumption_on_reneg   # an empty Certificate, in the renegotiation
late_srv reneg-norequest-tls12-openssl-both 1.2 r both   -no_resumption_on_reneg   # a full renegotiation without a CR
late_srv reneg-resumed-tls12-openssl-both   1.2 R both                             # asked, but the client resumed: no CR
late_srv ossl-pha-tls13-openssl-both         1.3 c both   "" -enable_pha            # TLS 1.3 post-handshake CR, leaf + intermediate
late_srv ossl-pha-tls13-openssl-nocert       1.3 c nocert "" -enable_pha            # post-handshake CR, empty Certificate
late_srv ossl-phaoffered-tls13-openssl-both  1.3 - both   "" -enable_pha            # offered, never asked (-: no command)
# Java and NSS clients <- go-peer server: the Go server's key log decrypts them
for st in java nss; do
  go_srv "go-ask-tls13-$st-nocert"         ask     1.3 nocert     "$st"
  go_srv "go-require-tls13-$st-both"       require 1.3 both       "$st"
  go_srv "go-require-tls13-$st-serveronly" require 1.3 serveronly "$st"
  go_srv "go-require-tls13-$st-nocert"     require 1.3 nocert     "$st"
done

# ---- BoringSSL and s2n-tls (issue 15): Rust peers tests/helpers/{boring,s2n}-peer (standalone crates, not in the
# workspace, each with its Cargo.lock): the `boring` crate builds BoringSSL with cmake (needs cmake, clang/libclang,
# go: apt-get install cmake clang libclang-dev golang-go), `s2n-tls` builds s2n-tls on aws-lc (aws-lc-rs: cmake).
# Built once into $PEERS_CARGO_TARGET; a first build takes minutes on 2 cores. Same CLI as go-peer: client (key log
# from the client) and server (boring-peer on 2607, s2n-peer on 2608; its key log in $W/logs/NAME.server.keylog).
PEERS_CARGO_TARGET=${EKUWATCH_PEERS_CARGO_TARGET:-$PEERS_DIR/cargo-target}
declare -A RP_STATE
rust_peer_ready() {  # rust_peer_ready boring|s2n|mbedtls
  local st=$1 bin="$PEERS_CARGO_TARGET/release/$1-peer"
  [[ ${RP_STATE[$st]:-} == ok ]] && return 0; [[ ${RP_STATE[$st]:-} == skip ]] && return 1
  if command -v cargo >/dev/null; then
    echo "building $st-peer (cargo build --release --locked, target dir $PEERS_CARGO_TARGET)" >&2
    ( cd "$here/../tests/helpers/$st-peer" && CARGO_TARGET_DIR="$PEERS_CARGO_TARGET" cargo build --release --locked ) >&2 \
      || echo "WARNING: cargo build of $st-peer failed (cmake, ninja, clang, libclang, go installed?)" >&2
  fi
  if [[ -x $bin ]]; then RP_STATE[$st]=ok; return 0; fi
  echo "SKIPPING $st scenarios: $bin missing" >&2
  RP_STATE[$st]=skip; return 1
}
# rp_client KIND NAME PORT VERSION CERT   (boring-peer / s2n-peer client -> Postfix, key log from the client)
rp_client() {
  local kind=$1 name=$2 port=$3 ver=$4 cert=$5
  wanted "$name" || return 0; rust_peer_ready "$kind" || return 0
  srv_client_args "$kind" "$port" "$ver" "$cert" "$name"
  run "$name" "$port" keylog "${CL[@]}"
}
# rp_srv KIND NAME none|ask|require VERSION CERT [CLIENT=openssl] [SERVER-FLAGS...]: boring-peer (2607) / s2n-peer
# (2608) / mbedtls-peer (2611) server: client certificate verified against the Lab Root CA for client use
# (clientAuth EKU)
rp_srv() {
  local kind=$1 name=$2 mode=$3 ver=$4 cert=$5 ckind=${6:-openssl}; shift 5; [[ $# -gt 0 ]] && shift
  wanted "$name" || return 0; rust_peer_ready "$kind" || return 0
  [[ $ckind == boring || $ckind == s2n || $ckind == mbedtls ]] && { rust_peer_ready "$ckind" || return 0; }
  [[ $ckind == wolfssl ]] && { wolfssl_ready || return 0; }
  local port=2607; [[ $kind == s2n ]] && port=2608; [[ $kind == mbedtls ]] && port=2611
  srv_client_args "$ckind" "$port" "$ver" "$cert" "$name"
  rm -f "$W/logs/$name.server.keylog"
  peer_srv "$name" "$port" timeout 30 "$PEERS_CARGO_TARGET/release/$kind-peer" server --host "$SRV" --port "$port" \
      --tls "$ver" --client-auth "$mode" --keylog "$W/logs/$name.server.keylog" "$@" -- "${CL[@]}"
}
for st in boring s2n; do
  # clients -> Postfix (2525 no request, 2526 ask_ccert, 2527 req_ccert, 2530 P-384 only: HelloRetryRequest).
  # TLS 1.2 (CertificateRequest and certificates in plaintext) only for refusals: each test run costs ~1.5 s
  # a capture (tshark), so the matrix keeps what the inference and the outcome need.
  rp_client "$st" "pf-noask-tls13-$st-nocert" 2525 1.3 nocert
  for v in nocert serveronly both; do
    rp_client "$st" "pf-askccert-tls13-$st-$v" 2526 1.3 "$v"
    rp_client "$st" "pf-reqccert-tls13-$st-$v" 2527 1.3 "$v"
  done
  rp_client "$st" "pf-reqccert-tls13-$st-untrusted" 2527 1.3 untrusted   # unknown CA: 421 after the handshake
  rp_client "$st" "pf-hrr-tls13-$st-both"           2530 1.3 both
  rp_client "$st" "pf-reqccert-tls12-$st-serveronly" 2527 1.2 serveronly
  # BoringSSL (Gmail's stack) and s2n-tls resuming with Postfix's ticket: two connections, one session cache
  SESSIONS=2 rp_client "$st" "pf-askccert-tls13-$st-both-resumed" 2526 1.3 both
  SESSIONS=2 rp_client "$st" "pf-askccert-tls12-$st-both-resumed" 2526 1.2 both
  # servers <- openssl s_client -starttls smtp (client key log)
  rp_srv "$st" "$st-noask-tls13-openssl-nocert"         none    1.3 nocert
  rp_srv "$st" "$st-ask-tls13-openssl-nocert"           ask     1.3 nocert
  rp_srv "$st" "$st-ask-tls13-openssl-serveronly"       ask     1.3 serveronly   # EKU: refused although optional
  rp_srv "$st" "$st-require-tls13-openssl-both"         require 1.3 both
  rp_srv "$st" "$st-require-tls13-openssl-serveronly"   require 1.3 serveronly   # EKU: refused
  rp_srv "$st" "$st-require-tls13-openssl-nocert"       require 1.3 nocert       # certificate missing
  rp_srv "$st" "$st-require-tls13-openssl-untrusted"    require 1.3 untrusted    # unknown CA
  rp_srv "$st" "$st-require-tls12-openssl-serveronly"   require 1.2 serveronly
  # each against itself
  rp_srv "$st" "$st-ask-tls13-$st-nocert"               ask     1.3 nocert     "$st"
  rp_srv "$st" "$st-require-tls13-$st-both"             require 1.3 both       "$st"
  rp_srv "$st" "$st-require-tls13-$st-serveronly"       require 1.3 serveronly "$st"
  # clients -> openssl s_server (2600) and gnutls-serv (2601), implicit TLS, client certificate required
  # (gnutls-serv does not check the EKU: a serverAuth-only leaf is accepted like "both", not captured)
  for v in both serveronly nocert; do
    ossl_srv "ossl-verify-tls13-$st-$v" 1.3 "$v" "$st"
  done
  gnutls_srv "gnutls-verify-tls13-$st-both"   1.3 both   "$st"
  gnutls_srv "gnutls-verify-tls13-$st-nocert" 1.3 nocert "$st"
done
# BoringSSL server with P-384 only, s2n-tls server on policy "20230317" (NIST curves only): s_client
# key-shares X25519 first -> HelloRetryRequest
rp_srv boring boring-require-tls13-openssl-both-hrr require 1.3 both openssl --groups P-384
rp_srv s2n    s2n-require-tls13-openssl-both-hrr    require 1.3 both openssl --policy 20230317
rp_srv s2n    s2n-ask-tls13-openssl-nocert-hrr      ask     1.3 nocert openssl --policy 20230317
# BoringSSL on both ends with RFC 8879 zlib certificate compression (Chrome and Google's stacks
# compress certificates): both Certificates go as CompressedCertificate
CLIENT_FLAGS="--compress zlib" rp_srv boring boring-require-tls13-boring-both-zlib   require 1.3 both   boring --compress zlib
CLIENT_FLAGS="--compress zlib" rp_srv boring boring-ask-tls13-boring-nocert-zlib     ask     1.3 nocert boring --compress zlib

# ---- wolfSSL (Debian libwolfssl-dev 5.5.4): tests/helpers/wolfssl-peer/wolfssl-peer.c, the go-peer command line in
# C, built with cc. Debian's wolfSSL has no key-log (secret) callback: its client sessions against Postfix are
# checked against the configuration and Postfix's log; as a server (2609) the client's (s_client) key log is used.
WOLFSSL_PEER="$PEERS_DIR/wolfssl/wolfssl-peer"; WOLFSSL_STATE=
wolfssl_ready() {
  [[ $WOLFSSL_STATE == ok ]] && return 0; [[ $WOLFSSL_STATE == skip ]] && return 1
  if [[ -f /usr/include/wolfssl/ssl.h ]] && command -v cc >/dev/null; then
    mkdir -p "$PEERS_DIR/wolfssl"
    cc -O2 -Wall -o "$WOLFSSL_PEER" "$here/../tests/helpers/wolfssl-peer/wolfssl-peer.c" -lwolfssl >&2 \
      || echo "WARNING: cc of wolfssl-peer.c failed" >&2
  fi
  if [[ -x $WOLFSSL_PEER ]]; then WOLFSSL_STATE=ok; return 0; fi
  echo "SKIPPING wolfssl scenarios: no wolfssl-peer (apt-get install libwolfssl-dev)" >&2
  WOLFSSL_STATE=skip; return 1
}
wolfssl_client() {  # wolfssl_client NAME PORT VERSION CERT
  local name=$1 port=$2 ver=$3 cert=$4
  wanted "$name" || return 0; wolfssl_ready || return 0
  srv_client_args wolfssl "$port" "$ver" "$cert" "$name"
  run "$name" "$port" - "${CL[@]}"
}
wolfssl_srv() {  # wolfssl_srv NAME none|ask|require VERSION CERT: wolfssl-peer server on 2609 <- s_client (key log)
  local name=$1 mode=$2 ver=$3 cert=$4
  wanted "$name" || return 0; wolfssl_ready || return 0
  srv_client_args openssl 2609 "$ver" "$cert" "$name"
  peer_srv "$name" 2609 timeout 30 "$WOLFSSL_PEER" server --host "$SRV" --port 2609 --tls "$ver" --client-auth "$mode" -- "${CL[@]}"
}
wolfssl_client pf-noask-tls13-wolfssl-nocert 2525 1.3 nocert
for v in nocert serveronly both; do
  wolfssl_client "pf-askccert-tls13-wolfssl-$v" 2526 1.3 "$v"
  wolfssl_client "pf-reqccert-tls13-wolfssl-$v" 2527 1.3 "$v"
done
wolfssl_client pf-hrr-tls13-wolfssl-both 2530 1.3 both
wolfssl_srv wolfssl-noask-tls13-openssl-nocert         none    1.3 nocert
wolfssl_srv wolfssl-ask-tls13-openssl-nocert           ask     1.3 nocert
wolfssl_srv wolfssl-require-tls13-openssl-both         require 1.3 both
wolfssl_srv wolfssl-require-tls13-openssl-serveronly   require 1.3 serveronly
wolfssl_srv wolfssl-require-tls13-openssl-nocert       require 1.3 nocert
wolfssl_srv wolfssl-require-tls13-openssl-untrusted    require 1.3 untrusted
wolfssl_srv wolfssl-require-tls12-openssl-serveronly   require 1.2 serveronly
# across stacks: BoringSSL's coalesced client flight against s2n-tls's one-message-per-record server and back;
# wolfSSL as a client against the BoringSSL server, whose key log decrypts it (the wolfSSL client writes none)
rp_srv s2n    s2n-ask-tls13-boring-nocert            ask     1.3 nocert     boring
rp_srv s2n    s2n-require-tls13-boring-both          require 1.3 both       boring
rp_srv boring boring-ask-tls13-s2n-nocert            ask     1.3 nocert     s2n
rp_srv boring boring-require-tls13-s2n-both          require 1.3 both       s2n
rp_srv boring boring-ask-tls13-wolfssl-nocert        ask     1.3 nocert     wolfssl
rp_srv boring boring-require-tls13-wolfssl-both      require 1.3 both       wolfssl
rp_srv boring boring-require-tls13-wolfssl-serveronly require 1.3 serveronly wolfssl

# ---- mbedTLS 3.6 (Debian's libmbedtls 2.28 has no TLS 1.3): tests/helpers/mbedtls-peer, a Rust peer on the
# mbedtls-rs-sys crate, which builds its bundled mbedTLS with cmake, ninja and clang (bindgen: libclang). Built like
# boring-peer into $PEERS_CARGO_TARGET; skipped when it cannot be. Key log from mbedtls_ssl_set_export_keys_cb, on
# either side. Server on 2611: ask = MBEDTLS_SSL_VERIFY_OPTIONAL (the handshake completes whatever the verification
# says), require = MBEDTLS_SSL_VERIFY_REQUIRED; a verify callback checks the clientAuth EKU.
rp_client mbedtls pf-noask-tls13-mbedtls-nocert 2525 1.3 nocert
for v in nocert serveronly both; do
  rp_client mbedtls "pf-askccert-tls13-mbedtls-$v" 2526 1.3 "$v"
done
for v in nocert serveronly; do
  rp_client mbedtls "pf-reqccert-tls13-mbedtls-$v" 2527 1.3 "$v"
done
rp_client mbedtls pf-askccert-tls12-mbedtls-both 2526 1.2 both
rp_srv mbedtls mbedtls-ask-tls13-openssl-nocert           ask     1.3 nocert
rp_srv mbedtls mbedtls-require-tls13-openssl-both         require 1.3 both
rp_srv mbedtls mbedtls-require-tls13-openssl-serveronly   require 1.3 serveronly   # EKU: refused
rp_srv mbedtls mbedtls-require-tls13-openssl-nocert       require 1.3 nocert       # certificate missing
rp_srv mbedtls mbedtls-require-tls12-openssl-serveronly   require 1.2 serveronly
rp_srv mbedtls mbedtls-require-tls13-mbedtls-both         require 1.3 both       mbedtls

# ---------------------------------------------------------------- mail transactions after STARTTLS
# (pf-mail-*: Postfix services 2531-2534; exim-mail-*: Exim 4.96 on 2540/2541). Client: captures/smtp-client.py
# (Debian's /usr/bin/python3, stdlib ssl = system OpenSSL; key log via SSLContext.keylog_filename) unless noted.
# Each scenario also writes logs/NAME.postfix.log or logs/NAME.exim.log (full server account: smtpd, cleanup,
# qmgr, discard / Exim mainlog), logs/NAME.client.log (the client's transcript: verbs and reply codes) and
# expected/NAME.truth.json (from the server log, mail-truth.py).
PY=/usr/bin/python3; [[ -x $PY ]] || PY=python3
mail_outputs() {  # NAME postfix|exim LOG-LINES-BEFORE
  local name=$1 kind=$2 before=$3 src
  sleep 1.5   # let qmgr/discard (or Exim's delivery) finish logging
  if [[ $kind == postfix ]]; then src="$W/maillog"; else src="$W/exim/log/mainlog"; rm -f "$here/logs/$name.postfix.log"; fi
  tail -n +"$((before + 1))" "$src" | "$PY" "$here/mail-truth.py" "filter-$kind" > "$here/logs/$name.$kind.log"
  "$PY" "$here/mail-truth.py" truth "$here/logs/$name.$kind.log" > "$here/expected/$name.truth.json"
  grep -E '^(C|S): |^# ' "$W/logs/$name.client" > "$here/logs/$name.client.log" 2>/dev/null || rm -f "$here/logs/$name.client.log"
  printf '%-45s truth: %s\n' "$name" "$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(("ehlo_refused " if d["ehlo_refused"] else "")+" ".join("%s(%d/%d)"%(t["result"],t["rcpt_accepted"],t["rcpt_rejected"]) for t in d["transactions"]))' "$here/expected/$name.truth.json")"
}
# pym NAME PORT VERSION CERT [--ehlo-only] TXN...   (Postfix server)
pym() {
  local name=$1 port=$2 ver=$3 cert=$4; shift 4
  wanted "$name" || return 0
  local before; before=$(wc -l < "$W/maillog")
  run "$name" "$port" keylog "$PY" "$here/smtp-client.py" --server "$SRV" --port "$port" --tls "$ver" --cert "$cert" \
    --pki "$pki" --keylog "$here/$name.keylog" "$@"
  mail_outputs "$name" postfix "$before"
}
# ---- Exim (Debian exim4-daemon-light, GnuTLS), unpacked by get-exim.sh into /opt/ekuwatch-exim, started once
EXIM_PID=
exim_start() {
  [[ -n $EXIM_PID ]] && return 0
  local bin; bin=$("$here/get-exim.sh") || { echo "SKIPPING exim scenarios: get-exim.sh failed" >&2; return 1; }
  local E="$W/exim"; mkdir -p "$E/spool" "$E/log"
  cp "$pki/server.chain.pem" "$pki/server.key.pem" "$pki/root.cert.pem" "$E/"
  cat > "$E/exim.conf" <<CF
# ekuwatch lab Exim: receives on 2540/2541, never delivers anywhere (redirect router -> :blackhole:)
exim_path = $bin
deliver_drop_privilege = true
primary_hostname = mx.lab.test
qualify_domain = lab.test
local_interfaces = <; $SRV.2540 ; $SRV.2541
spool_directory = $E/spool
log_file_path = $E/log/%slog
log_selector = +incoming_port +received_recipients +smtp_confirmation +smtp_connection +smtp_protocol_error \\
  +smtp_syntax_error +tls_certificate_verified +tls_peerdn +tls_sni +pipelining +smtp_no_mail
keep_environment =
host_lookup =
rfc1413_hosts =
tls_advertise_hosts = *
tls_certificate = $E/server.chain.pem
tls_privatekey = $E/server.key.pem
# ask every client for a certificate (CertificateRequest, CA = Lab Root CA), never require one
tls_verify_certificates = $E/root.cert.pem
tls_try_verify_hosts = *
pipelining_advertise_hosts = *
chunking_advertise_hosts = *
acl_smtp_mail = acl_mail
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = acl_data

begin acl
acl_mail:
  warn   logwrite = ekuwatch-txn: MAIL
  accept
acl_rcpt:
  deny   recipients = nobody@lab.test
         message = 5.1.1 unknown user
  # port 2540: RCPT refused unless the client certificate verified
  deny   condition = \${if eq{\$received_port}{2540}}
         !verify = certificate
         message = 5.7.1 client certificate not verified
  warn   logwrite = ekuwatch-rcpt: accepted
  accept
acl_data:
  # port 2541: RCPT accepted, the message refused after its body unless the client certificate verified
  deny   condition = \${if eq{\$received_port}{2541}}
         !verify = certificate
         message = 5.7.1 client certificate not verified
  deny   condition = \${if match{\$h_Subject:}{reject-after-data}}
         message = 5.7.1 message refused after its body
  accept

begin routers
blackhole:
  driver = redirect
  data = :blackhole:
CF
  chown -R Debian-exim:Debian-exim "$E"; chmod 600 "$E/server.key.pem"
  chown root:root "$E/exim.conf"; chmod 644 "$E/exim.conf"   # Exim insists on a root-owned configuration
  "$bin" -bV -C "$E/exim.conf" 2>/dev/null | head -1 > "$W/exim-version"
  "$bin" -C "$E/exim.conf" -bdf -oX 2540:2541 > "$E/daemon.out" 2>&1 &
  EXIM_PID=$!
  for _ in $(seq 50); do ss -ltn | grep -q "$SRV:2541" && break; sleep 0.1; done
  ss -ltn | grep -q "$SRV:2541" || { echo "exim did not start: $(cat "$E/daemon.out")" >&2; return 1; }
}
# exm NAME PORT VERSION CERT TXN...   (Exim server)
exm() {
  local name=$1 port=$2 ver=$3 cert=$4; shift 4
  wanted "$name" || return 0
  exim_start || return 0
  local before; before=$(wc -l < "$W/exim/log/mainlog" 2>/dev/null || echo 0)
  run "$name" "$port" keylog "$PY" "$here/smtp-client.py" --server "$SRV" --port "$port" --tls "$ver" --cert "$cert" \
    --pki "$pki" --keylog "$here/$name.keylog" "$@"
  mail_outputs "$name" exim "$before"
}
# exm_peer NAME PORT VERSION CERT KIND: another stack's SMTP client (srv_client_args KIND: go, boring, s2n with their
# key logs; java, nss, wolfssl without) -> Exim; the peer's own dialogue (one message); truth from Exim's log
exm_peer() {
  local name=$1 port=$2 ver=$3 cert=$4 kind=$5 kl=-
  wanted "$name" || return 0
  case $kind in
    go) go_ready || return 0; kl=keylog ;;
    boring|s2n) rust_peer_ready "$kind" || return 0; kl=keylog ;;
    java) java_ready || return 0 ;;
    nss) nss_ready || return 0 ;;
    wolfssl) wolfssl_ready || return 0 ;;
  esac
  exim_start || return 0
  srv_client_args "$kind" "$port" "$ver" "$cert" "$name"
  local before; before=$(wc -l < "$W/exim/log/mainlog" 2>/dev/null || echo 0)
  run "$name" "$port" "$kl" "${CL[@]}"
  mail_outputs "$name" exim "$before"
}
# The Postfix smtp client (transport relaylab, TLS with the "both" client cert, connection reuse) delivers
# several queued messages to port 2534 over one connection. No key log (the smtp client/tlsproxy cannot write one).
# Messages are queued while relaylab is in defer_transports, then "postqueue -f" hands them to qmgr at once.
# pf_client NAME  (messages: see below)
pf_client() {
  local name=$1
  wanted "$name" || return 0
  postconf -c "$PFCONF" -e defer_transports=relaylab; postfix -c "$PFCONF" reload >/dev/null 2>&1; sleep 1
  local i subj size rc
  for i in 1 2 3; do
    subj="ekuwatch relay $i"; size=400; rc=("root@relay.test")
    [[ $i == 2 ]] && { size=30000; rc=("root@relay.test" "nobody@relay.test" "postmaster@relay.test"); }
    [[ $i == 3 ]] && { subj="ekuwatch relay 3 reject-after-data"; size=2000; }
    { printf 'From: <sender@out.lab.test>\nTo: <root@relay.test>\nSubject: %s\n\n' "$subj"
      head -c $((size * 3 / 4)) /dev/zero | tr '\0' 'x' | fold -w 70; echo; } \
      | sendmail -C "$PFCONF" -f sender@out.lab.test "${rc[@]}"
  done
  for _ in $(seq 50); do [[ $(postqueue -c "$PFCONF" -j | grep -c relay.test) -ge 3 ]] && grep -q 'deferred transport' "$W/maillog" && break; sleep 0.2; done
  local before; before=$(wc -l < "$W/maillog")
  run "$name" 2534 - bash -c 'postqueue -c "$0" -f; for _ in $(seq 150); do tail -n +"$2" "$1" | grep -q "relaytarget/smtpd\[[0-9]*\]: disconnect from" && break; sleep 0.2; done' \
    "$PFCONF" "$W/maillog" "$((before + 1))"
  postconf -c "$PFCONF" -e defer_transports=; postfix -c "$PFCONF" reload >/dev/null 2>&1
  mail_outputs "$name" postfix "$before"
}

# port 2531 (permit_tls_all_clientcerts, reject): serverAuth-only client cert -> RCPT refused; "both" -> delivered
pym pf-mail-rcptreject-tls13-py-serveronly 2531 1.3 serveronly "rcpt=root@lab.test"
pym pf-mail-rcptreject-tls12-py-serveronly 2531 1.2 serveronly "rcpt=root@lab.test"
pym pf-mail-rcptreject-tls13-py-nocert     2531 1.3 nocert     "rcpt=root@lab.test,pipe=1"
pym pf-mail-delivered-tls13-py-both        2531 1.3 both       "rcpt=root@lab.test"
pym pf-mail-delivered-tls12-py-both        2531 1.2 both       "rcpt=root@lab.test,size=10000"
# several messages on one connection, RSET between: delivered with one of three recipients refused (550 5.1.1),
# refused after the body (header_checks), aborted (RSET after RCPT), delivered 100 kB
pym pf-mail-multi-tls13-py-both 2531 1.3 both \
  "rcpt=root@lab.test,rcpt=nobody@lab.test,rcpt=postmaster@lab.test,size=300" \
  "rcpt=root@lab.test,size=5000,subject=ekuwatch reject-after-data" \
  "rcpt=root@lab.test,abort=1" \
  "rcpt=root@lab.test,size=100000"
# the same with PIPELINING used (MAIL, RCPTs, DATA in one write), TLS 1.2
pym pf-mail-multipipe-tls12-py-both 2531 1.2 both \
  "rcpt=root@lab.test,rcpt=nobody@lab.test,size=300,pipe=1" \
  "rcpt=root@lab.test,size=5000,subject=ekuwatch reject-after-data,pipe=1" \
  "rcpt=nobody@lab.test,pipe=1" \
  "rcpt=root@lab.test,size=20000,pipe=1"
# 1 MB body, pipelined
pym pf-mail-1mb-tls13-py-both 2531 1.3 both "rcpt=root@lab.test,rcpt=postmaster@lab.test,size=1000000,pipe=1"
# CHUNKING: BDAT in 4 kB chunks then "BDAT n LAST"; second message one "BDAT n LAST"; third pipelined BDAT LAST
pym pf-mail-bdat-tls13-py-both 2531 1.3 both "rcpt=root@lab.test,size=10000,bdat=4096" "rcpt=root@lab.test,size=800,bdat=100000" \
  "rcpt=root@lab.test,rcpt=nobody@lab.test,size=3000,bdat=100000,pipe=1"
pym pf-mail-bdat-tls12-py-both 2531 1.2 both "rcpt=root@lab.test,size=50000,bdat=16384" "rcpt=root@lab.test,size=2000,bdat=100000,subject=ekuwatch reject-after-data"
# port 2533: PIPELINING not offered; the client waits for every reply
pym pf-mail-nopipe-tls13-py-both 2533 1.3 both "rcpt=root@lab.test,rcpt=nobody@lab.test,size=2000" "rcpt=root@lab.test,size=300"
pym pf-mail-nopipe-tls12-py-serveronly 2533 1.2 serveronly "rcpt=root@lab.test"
# port 2532: check_ccert_access (fingerprints of the both and serveronly certs -> REJECT) refuses MAIL
pym pf-mail-ccertaccess-tls13-py-both       2532 1.3 both       "rcpt=root@lab.test" "rcpt=root@lab.test"
pym pf-mail-ccertaccess-tls12-py-serveronly 2532 1.2 serveronly "rcpt=root@lab.test"
pym pf-mail-ccertaccess-tls13-py-nocert     2532 1.3 nocert     "rcpt=root@lab.test"
# port 2527 (smtpd_tls_req_ccert): 421 to the EHLO after the handshake, the client still sends QUIT
pym pf-mail-reqccert-tls13-py-serveronly 2527 1.3 serveronly --ehlo-only
pym pf-mail-reqccert-tls12-py-serveronly 2527 1.2 serveronly --ehlo-only
# Postfix smtp client -> port 2534: three queued messages over one TLS connection (pipelined, keyless)
pf_client pf-mail-pfclient-tls13-postfix-both
# Exim 4.96 (GnuTLS): 2540 refuses RCPT without a verified client cert; 2541 refuses after the body instead
exm exim-mail-rcptverify-tls13-py-untrusted 2540 1.3 untrusted "rcpt=root@lab.test"
exm exim-mail-rcptverify-tls12-py-untrusted 2540 1.2 untrusted "rcpt=root@lab.test,pipe=1"
exm exim-mail-rcptverify-tls13-py-nocert    2540 1.3 nocert    "rcpt=root@lab.test"
exm exim-mail-rcptverify-tls13-py-serveronly 2540 1.3 serveronly "rcpt=root@lab.test"
exm exim-mail-rcptverify-tls12-py-both      2540 1.2 both      "rcpt=root@lab.test,rcpt=nobody@lab.test,size=5000"
exm exim-mail-dataverify-tls13-py-untrusted 2541 1.3 untrusted "rcpt=root@lab.test,size=3000"
exm exim-mail-dataverify-tls12-py-nocert    2541 1.2 nocert    "rcpt=root@lab.test,size=3000,pipe=1"
exm exim-mail-dataverify-tls13-py-serveronly 2541 1.3 serveronly "rcpt=root@lab.test,size=3000"
exm exim-mail-multi-tls13-py-both 2541 1.3 both \
  "rcpt=root@lab.test,rcpt=nobody@lab.test,size=300,pipe=1" \
  "rcpt=root@lab.test,size=5000,subject=ekuwatch reject-after-data" \
  "rcpt=root@lab.test,abort=1" \
  "rcpt=root@lab.test,size=200000,bdat=65536"
exm exim-mail-bdat-tls12-py-both 2541 1.2 both "rcpt=root@lab.test,size=10000,bdat=4096" "rcpt=root@lab.test,size=3000,bdat=100000,pipe=1"
# Every other stack as an Exim client (port 2540: RCPT refused unless the client certificate verified; Exim asks
# every client): a certificate, none (refused at RCPT after a completed handshake), and TLS 1.2. Not NSS without
# a certificate: tstclnt writes the whole dialogue whatever the replies (the body after a refused RCPT and 503
# to DATA), which no SMTP client does (Exim drops it with a plaintext 421 after four unknown commands)
for st in go boring s2n java nss wolfssl; do
  exm_peer "exim-mail-rcptverify-tls13-$st-both"   2540 1.3 both   "$st"
  [[ $st != nss ]] && exm_peer "exim-mail-rcptverify-tls13-$st-nocert" 2540 1.3 nocert "$st"
  exm_peer "exim-mail-rcptverify-tls12-$st-both"   2540 1.2 both   "$st"
done

stop_all
trap - EXIT
# synthetic, not captured: hand-built TLS 1.3 session whose CertificateRequest carries oid_filters
# (deterministic; needs python3 with the cryptography package)
if wanted synthetic-tls13-oidfilters; then python3 "$here/make-oidfilters.py"; fi
chmod 644 "$here"/*.pcap "$here"/*.keylog 2>/dev/null || true
chown --reference="$here" "$here"/*.pcap "$here"/*.keylog 2>/dev/null || true   # tcpdump writes as user tcpdump
if [[ -x "$here/make-expected.sh" ]]; then "$here/make-expected.sh" "${FILTER[@]}"; fi
