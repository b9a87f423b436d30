#!/usr/bin/env bash
# Unpacks Debian's Exim (exim4-daemon-light, GnuTLS build) into /opt/ekuwatch-exim without installing it:
# Exim and Postfix are both "mail-transport-agent" packages, so apt cannot install Exim beside Postfix.
# `apt-get download` + `dpkg -x` needs no dpkg database change. The only system change is the
# "Debian-exim" system user (Debian's exim binary resolves it by name at start-up; created if missing).
# Also fetches libidn12 (a dependency not pulled in by Postfix) into the same tree.
# Idempotent: does nothing when /opt/ekuwatch-exim/.complete exists. Prints the path of the wrapper
# /opt/ekuwatch-exim/exim4 (sets LD_LIBRARY_PATH, execs usr/sbin/exim4); use it as exim_path too.
set -euo pipefail
dest=${EKUWATCH_EXIM_DIR:-/opt/ekuwatch-exim}
if [[ ! -f $dest/.complete ]]; then
  [[ $(id -u) == 0 ]] || { echo "get-exim.sh: run as root" >&2; exit 1; }
  tmp=$(mktemp -d); chmod 755 "$tmp"
  ( cd "$tmp" && apt-get download exim4-daemon-light libidn12 >&2 )
  rm -rf "$dest"; mkdir -p "$dest"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$dest"; done
  dpkg-deb -f "$tmp"/exim4-daemon-light_*.deb Version > "$dest/.version"
  rm -rf "$tmp"
  # Exim re-executes itself (exim_path) for deliveries with a purged environment: this wrapper puts
  # the unpacked libraries back on the library path
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s/usr/lib/x86_64-linux-gnu exec %s/usr/sbin/exim4 "$@"\n' "$dest" "$dest" > "$dest/exim4"
  chmod 755 "$dest/exim4"
  # drop the setuid bit: the loader ignores LD_LIBRARY_PATH in setuid programs run by Debian-exim
  chmod u-s "$dest/usr/sbin/exim4"
  touch "$dest/.complete"
fi
getent passwd Debian-exim >/dev/null || useradd --system --user-group --no-create-home \
  --home-dir /var/spool/exim4 --shell /usr/sbin/nologin Debian-exim
"$dest/exim4" -C /dev/null -bV >/dev/null 2>&1 || { echo "get-exim.sh: $dest/exim4 does not run" >&2; exit 1; }
echo "$dest/exim4"
