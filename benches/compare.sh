#!/usr/bin/env bash
# Run with: benches/compare.sh [--long] [--threads 2] [REPORT.md]
#
# One command on a fresh Debian machine with Rust: installs nginx, HAProxy, wrk and
# oha, builds grantmux in release, runs the refresh figures (benches/refresh.rs),
# then grantmux, nginx, HAProxy and a direct connection side by side
# (benches/compare.py), and writes the Markdown report (default
# benches/results/latest.md). Tune with ROUNDS, SAT_SECS, LAT_SECS, RATES, CONNS,
# PROXY_CPU and LOAD_CPU; the defaults finish in about 6 minutes once built.
#
# --long: 5 rounds with 20 s fixed-rate phases (about 17 minutes once built), so
# that the added-p99 verdicts hold from run to run. --threads 2: every proxy with
# two workers, proxies, load and upstream sharing both cores (compare.py THREADS).
set -euo pipefail

cd "$(dirname "$0")/.."
while [ $# -gt 0 ]; do
    case "$1" in
    --long) export LONG=1; shift ;;
    --threads) export THREADS="$2"; shift 2 ;;
    -*) echo "usage: $0 [--long] [--threads N] [REPORT.md]" >&2; exit 2 ;;
    *) break ;;
    esac
done
report=${1:-benches/results/latest.md}
mkdir -p "$(dirname "$report")"
export PATH="$HOME/.cargo/bin:$PATH"

need_apt=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v taskset >/dev/null || need_apt+=(util-linux)
command -v python3 >/dev/null || need_apt+=(python3)
command -v curl >/dev/null || need_apt+=(curl)
if ! command -v oha >/dev/null; then
    # oha is built with native-tls (Debian's OpenSSL), see below.
    command -v pkg-config >/dev/null || need_apt+=(pkg-config)
    [ -e /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing ${need_apt[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"
# Debian starts the packaged services; they would share the cores under test.
for svc in nginx haproxy; do
    if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done

# oha and the release build compile in parallel: both are CPU-bound, but the
# linker and the build scripts leave gaps the other fills. oha's default TLS is
# rustls on aws-lc-rs, whose C build alone takes minutes on 2 cores; the
# comparison speaks plain HTTP, so oha links Debian's OpenSSL instead.
oha_pid=
if ! command -v oha >/dev/null; then
    echo "building oha (cargo install oha --locked --no-default-features --features native-tls)" >&2
    cargo install oha --locked --no-default-features --features native-tls \
        >/tmp/grantmux-oha-install.log 2>&1 &
    oha_pid=$!
fi
echo "building grantmux (release)" >&2
cargo build --release --locked --bin grantmux --example bench_upstream --bench refresh >&2
if [ -n "$oha_pid" ] && ! wait "$oha_pid"; then
    echo "cargo install oha failed; see /tmp/grantmux-oha-install.log" >&2
    exit 1
fi

refresh_md=$(mktemp)
echo "refresh figures (cargo bench --bench refresh)" >&2
cargo bench --locked --bench refresh 2>/dev/null | grep '^|' >"$refresh_md"

echo "comparison (benches/compare.py)" >&2
python3 benches/compare.py "$report" "$refresh_md"
rm -f "$refresh_md"
echo "report written to $report" >&2
