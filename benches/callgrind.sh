#!/usr/bin/env bash
# Run with: benches/callgrind.sh [grantmux|nginx] [BINARY]
#
# User-space instructions per proxied request, counted by callgrind: the stable
# measure for a change to the request path (BENCHMARKS.md, "Where the instructions
# go"). Wall-clock figures on a shared 2-core machine move with whatever else runs;
# instruction counts do not. The proxy runs under valgrind on CPU 0 with one
# worker, the configuration of benches/compare.py, against
# examples/bench_upstream.rs on CPU 1. Counting starts after a warm-up and covers a
# `wrk -t1 -c$CONNS` run of $SECS seconds.
#
# Prints one line, `TARGET Ir/request = N (TOTAL Ir / REQUESTS requests)`, and
# leaves the profile in $OUT (default target/callgrind/TARGET.out) for
# `callgrind_annotate --inclusive=yes`. Needs valgrind and wrk (and nginx for
# nginx); builds nothing: run `cargo build --release --bin grantmux --example
# bench_upstream` first.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-grantmux}
rel=${CARGO_TARGET_DIR:-target}/release
bin=${2:-}
secs=${SECS:-15}
conns=${CONNS:-8}
out=${OUT:-target/callgrind/$target.out}
mkdir -p "$(dirname "$out")"
rm -f "$out" "$out".*
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Ports, key and configurations come from compare.py, so both measure one job.
conf() { python3 -c "import sys; sys.path.insert(0, 'benches'); import compare; print(compare.$1)"; }
up_port=$(conf UP_PORT)
key=$(conf CALLER_KEY)

wait_port() {
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    exit 1
}

taskset -c 1 "$rel/examples/bench_upstream" "127.0.0.1:$up_port" >/dev/null 2>&1 &
pids+=($!)
wait_port "$up_port"

case "$target" in
grantmux)
    port=$(conf GMX_PORT)
    conf GRANTMUX_CONF >"$work/grantmux.toml"
    SIM_SECRET=sim-secret BENCH_KEY=$key GRANTMUX_WORKER_THREADS=1 GRANTMUX_LOG=warn \
        taskset -c 0 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        "${bin:-$rel/grantmux}" serve --config "$work/grantmux.toml" 2>"$work/valgrind.log" &
    ;;
nginx)
    port=$(conf NGINX_PORT)
    # master_process off: callgrind follows the one process that does the work.
    { echo "master_process off;"; conf NGINX_CONF | sed "s|@DIR@|$work|g"; } >"$work/nginx.conf"
    taskset -c 0 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        "${bin:-$(command -v nginx || echo /usr/sbin/nginx)}" -c "$work/nginx.conf" -p "$work" \
        2>"$work/valgrind.log" &
    ;;
*)
    echo "usage: $0 [grantmux|nginx] [BINARY]" >&2
    exit 2
    ;;
esac
pid=$!
pids+=("$pid")
wait_port "$port"

url="http://127.0.0.1:$port/v2/users/me"
load() { taskset -c 1 wrk -t1 -c"$conns" -d"$1" -H "Authorization: Bearer $key" "$url"; }
curl -fsS -o /dev/null -H "Authorization: Bearer $key" "$url"
callgrind_control -i on "$pid" >/dev/null 2>&1
load 3s >/dev/null
callgrind_control -z "$pid" >/dev/null 2>&1
requests=$(load "${secs}s" | awk '/requests in/ { print $1 }')
callgrind_control -d "$pid" >/dev/null 2>&1
kill -INT "$pid"
wait "$pid" 2>/dev/null || true

# `callgrind_control -d` writes the counted span as part 1; the rest goes to $out.
dump=$out.1
total=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
echo "$target Ir/request = $((total / requests)) ($total Ir / $requests requests) profile $dump"
