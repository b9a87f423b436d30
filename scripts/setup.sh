#!/usr/bin/env bash
# Installs what the test suite needs on Debian 12 with only stable Rust. Idempotent: every step checks
# first. Needs root (or sudo) for apt. Set EKUWATCH_SKIP_FUZZ_SETUP=1 to skip cargo-fuzz.
set -euo pipefail

NIGHTLY=nightly-2026-05-19        # pinned: the nightly these machines ship (rustc 1.97, LLVM 22)
CARGO_FUZZ_VERSION=0.13.1
BPF_LINKER_VERSION=0.10.4          # uses rustc's own LLVM 22 (0.13 wants LLVM 23); see docs/ebpf.md

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v tshark >/dev/null || need_apt+=(tshark)
command -v python3 >/dev/null || need_apt+=(python3)
command -v tcpdump >/dev/null || need_apt+=(tcpdump)
command -v chromium >/dev/null || need_apt+=(chromium)   # the HTML report is checked in headless Chromium
command -v prometheus >/dev/null || need_apt+=(prometheus) # live exporter test scrapes with a real Prometheus; promtool
[ -e /usr/include/pcap.h ] || need_apt+=(libpcap-dev)     # `--features live` links libpcap
command -v openssl >/dev/null || need_apt+=(openssl)
[ -x /usr/bin/time ] || need_apt+=(time)
# real Postfix (and the clients captures/generate.sh checks for) for the live end-to-end test
command -v postfix >/dev/null || need_apt+=(postfix)
command -v swaks >/dev/null || need_apt+=(swaks)
# swaks --tls needs Net::SSLeay, only a "Recommends" of swaks (not installed with --no-install-recommends)
perl -MNet::SSLeay -e1 2>/dev/null || need_apt+=(libnet-ssleay-perl)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)   # the unit is verified (tests/deployment.rs)
# the fleet event store: observer/tests/clickhouse.rs runs deploy/clickhouse/*.sql on a real server
# (Debian 12: ClickHouse 18.16; the test starts its own instance on free loopback ports)
[ -x /usr/sbin/clickhouse-server ] || command -v clickhouse >/dev/null || need_apt+=(clickhouse-server)
command -v gnutls-cli >/dev/null || need_apt+=(gnutls-bin)                    # peak-RSS checks on hostile captures
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# rustfmt: the test command checks formatting (a minimal-profile toolchain lacks it).
if ! cargo fmt --version >/dev/null 2>&1; then
  rustup component add rustfmt
fi
# clippy: the test command lints (-D warnings); a minimal-profile toolchain lacks it too.
if ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add clippy
fi

# The pinned nightly: cargo-fuzz, and building the eBPF program (-Z build-std=core needs rust-src).
if ! rustup toolchain list | grep -q "^${NIGHTLY}"; then
  echo "setup: installing Rust ${NIGHTLY} (cargo-fuzz, eBPF program)"
  rustup toolchain install "${NIGHTLY}" --profile minimal
fi
if ! rustup component list --toolchain "${NIGHTLY}" --installed | grep -q '^rust-src'; then
  echo "setup: adding rust-src to ${NIGHTLY} (eBPF program: build-std)"
  rustup component add rust-src --toolchain "${NIGHTLY}"
fi
# bpf-linker links the kernel program (feature `ebpf`, built by observer/build.rs).
if ! bpf-linker --version 2>/dev/null | grep -q "${BPF_LINKER_VERSION}"; then
  echo "setup: installing bpf-linker ${BPF_LINKER_VERSION} (~4 min)"
  cargo install bpf-linker --version "${BPF_LINKER_VERSION}" --locked
fi

if [ "${EKUWATCH_SKIP_FUZZ_SETUP:-0}" != "1" ]; then
  if ! cargo fuzz --version 2>/dev/null | grep -q "${CARGO_FUZZ_VERSION}"; then
    echo "setup: installing cargo-fuzz ${CARGO_FUZZ_VERSION}"
    cargo install cargo-fuzz --version "${CARGO_FUZZ_VERSION}" --locked
  fi
fi
echo "setup: ok (tshark $(tshark --version 2>/dev/null | head -1 | awk '{print $3}'))"
