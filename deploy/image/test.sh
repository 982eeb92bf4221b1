#!/usr/bin/env bash
# The container image, run for real: builds grantmux (release), assembles the image
# FROM scratch (build.sh), and runs it under Docker against the simulator
# (checks.py: traffic, JSON logs, 1,000 connections under --memory 64m, docker stop,
# a restart that keeps its grants). .ci/run calls it; by hand:
#
#   sudo bash deploy/image/test.sh
#
# Root, because it installs Debian's docker.io when no engine is installed, and
# starts dockerd when none is running (and stops it again at the end). Host
# networking and 127.0.0.1 only: dockerd is started without its bridge, and no
# container gets one. Nothing is pulled: no registry is needed.
set -euo pipefail
cd "$(dirname "$0")/../.."

[ "$(id -u)" = 0 ] || { echo "deploy/image/test.sh: run as root (sudo bash $0)" >&2; exit 1; }

if ! command -v dockerd >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

dockerd_pid=""
dockerd_log=""
stop_dockerd() {
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
        rm -f "$dockerd_log"
    fi
}
trap stop_dockerd EXIT

if ! docker info >/dev/null 2>&1; then
    dockerd_log="$(mktemp -t dockerd.XXXXXX.log)"
    # --bridge=none --iptables=false: no docker0 and no NAT rules; every container
    # here runs with --network host.
    dockerd --bridge=none --iptables=false >"$dockerd_log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || { cat "$dockerd_log" >&2; echo "dockerd exited" >&2; exit 1; }
        sleep 1
    done
    docker info >/dev/null 2>&1 || { tail -n 30 "$dockerd_log" >&2; echo "dockerd did not answer in 60 s" >&2; exit 1; }
fi
docker version --format 'docker: client {{.Client.Version}}, engine {{.Server.Version}}'

cargo build --release --locked --bin grantmux
image=grantmux:scratch
bash deploy/image/build.sh --binary target/release/grantmux --tag "$image"
python3 deploy/image/checks.py --image "$image" --binary target/release/grantmux
