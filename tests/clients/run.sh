#!/usr/bin/env bash
# The client matrix: real, unmodified Zoom client libraries, installed from
# their registries at the versions pinned here, driven against a real
# `grantmux serve` in front of a real `grantmux sim`. Each library gets only
# its URL settings changed, or, where its URLs are in its code, nothing but
# environment variables: HTTPS_PROXY naming grantmux's forward proxy and a CA
# variable (NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE) naming grantmux's CA, so
# that https://zoom.us and https://api.zoom.us are answered by grantmux.
#
#   bash tests/clients/run.sh
#
# Prints one PASS/FAIL line per library flow, writes tests/clients/RESULTS.md
# and exits non-zero if any fails. Logs of the last run (grantmux, sim, each
# flow) are left in target/clients-matrix/.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=tests/clients
BIN=target/debug/grantmux
VENV=target/clients-venv
LOGS=target/clients-matrix
started=$SECONDS

command -v node >/dev/null || { echo "client matrix: node is not installed" >&2; exit 1; }
if [ ! -x "$BIN" ]; then cargo build --locked; fi
rm -rf "$LOGS" && mkdir -p "$LOGS"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/grantmux-clients.XXXXXX")
pids=()
# Stops the processes this script started, by id, and forgets them.
stop() {
  local pid keep=()
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do [[ " $* " == *" $pid "* ]] || keep+=("$pid"); done
  pids=("${keep[@]}")
}
cleanup() {
  stop "${pids[@]}"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- dependencies: npm in the background while pip runs -------------------
(cd "$HERE" && exec npm ci --no-audit --no-fund --loglevel=error) >"$LOGS/npm.log" 2>&1 &
npm_pid=$!
pids+=("$npm_pid")
if ! "$VENV/bin/python" -c '' 2>/dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
    -r "$HERE/requirements.txt" >"$LOGS/pip.log" 2>&1; then
  echo "client matrix: pip install failed:" >&2; tail -20 "$LOGS/pip.log" >&2; exit 1
fi
if ! wait "$npm_pid"; then
  echo "client matrix: npm ci failed:" >&2; tail -20 "$LOGS/npm.log" >&2; exit 1
fi
installed=$SECONDS

# --- grantmux sim and grantmux serve on free loopback ports ---------------
# Loopback calls never go through a proxy the environment may name.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
key() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
export MATRIX_CLIENT_ID=sim-client MATRIX_CLIENT_SECRET=sim-secret MATRIX_ACCOUNT_ID=sim-account
# A public client (PKCE, no secret), registered at the sim and in grantmux.
export MATRIX_PUBLIC_CLIENT_ID=sim-public-client
export MATRIX_CALLER_KEY_ZOOM_PYTHON_CLIENT=$(key) MATRIX_CALLER_KEY_CURL=$(key)

# Polls `url` until it answers 2xx (at most 30 s); fails at once if process
# `pid` has exited. Python, not curl: python3 is here wherever this runs.
wait_ready() {
  python3 - "$1" "$2" <<'PY'
import sys, time, urllib.request
url, pid = sys.argv[1], sys.argv[2]
def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2):
            sys.exit(0)
    except OSError:
        pass
    if not alive():
        sys.exit(1)
    time.sleep(0.05)  # poll interval
sys.exit(1)
PY
}

# Waits (at most 30 s) for grantmux's JSON line "grantmux started" in log `$1`
# and prints its forward_proxy and tls ports; fails at once if process `$2`
# has exited.
started_ports() {
  python3 - "$1" "$2" <<'PY'
import json, sys, time
log, pid = sys.argv[1], sys.argv[2]
def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    with open(log) as f:
        for line in f:
            try:
                fields = json.loads(line)["fields"]
            except (ValueError, KeyError, TypeError):
                continue
            if fields.get("message") == "grantmux started":
                print(fields["forward_proxy"].rsplit(":", 1)[1], fields["tls"].rsplit(":", 1)[1])
                sys.exit(0)
    if not alive():
        sys.exit(1)
    time.sleep(0.05)  # poll interval
sys.exit(1)
PY
}

# The file store (so the interception CA is made once, in the state folder,
# and `grantmux ca` can print it); the forward proxy and the TLS listener on
# ports of their own choosing, read back from the "grantmux started" line.
write_config() {
  rm -rf "$WORK/state"
  cat >"$WORK/proxy.toml" <<TOML
[listen]
proxy = "127.0.0.1:$proxy_port"
admin = "127.0.0.1:$admin_port"
public_url = "http://127.0.0.1:$proxy_port"
forward_proxy = "127.0.0.1:0"
tls = "127.0.0.1:0"
[zoom]
api_url = "$MATRIX_SIM_URL"
oauth_url = "$MATRIX_SIM_URL"
[[app]]
client_id = "$MATRIX_CLIENT_ID"
client_secret_env = "MATRIX_SIM_SECRET"
[[app]]
client_id = "$MATRIX_PUBLIC_CLIENT_ID"
public = true
[intercept]
ca_bundle_export = "$WORK/ca-bundle.pem"
[store]
backend = "file"
path = "$WORK/state"
TOML
  for name in zoom-python-client curl; do
    local var="MATRIX_CALLER_KEY_$(echo "$name" | tr 'a-z-' 'A-Z_')"
    cat >>"$WORK/proxy.toml" <<TOML
[[caller]]
name = "$name"
key_env = "$var"
grant = { client_id = "$MATRIX_CLIENT_ID", account_id = "$MATRIX_ACCOUNT_ID" }
TOML
  done
}

started_ok=
for attempt in 1 2 3; do
  # Three ports free now; a port taken in between makes a start fail, and the
  # next attempt picks others.
  read -r sim_port proxy_port admin_port < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')
  export MATRIX_SIM_URL="http://127.0.0.1:$sim_port"
  export MATRIX_GRANTMUX_URL="http://127.0.0.1:$proxy_port"
  export MATRIX_GRANTMUX_ADMIN_URL="http://127.0.0.1:$admin_port"
  "$BIN" sim --listen "127.0.0.1:$sim_port" \
    --client-id "$MATRIX_CLIENT_ID" --client-secret "$MATRIX_CLIENT_SECRET" \
    --account-id "$MATRIX_ACCOUNT_ID" --public-client-id "$MATRIX_PUBLIC_CLIENT_ID" >"$LOGS/sim.log" 2>&1 &
  sim_pid=$!
  pids+=("$sim_pid")
  # The sim has no /healthz; /_sim/stats answers once it serves.
  if ! wait_ready "$MATRIX_SIM_URL/_sim/stats" "$sim_pid"; then stop "$sim_pid"; continue; fi
  write_config
  MATRIX_SIM_SECRET=$MATRIX_CLIENT_SECRET "$BIN" --log-format json serve --config "$WORK/proxy.toml" \
    >"$LOGS/grantmux.log" 2>&1 &
  gm_pid=$!
  pids+=("$gm_pid")
  if ports=$(started_ports "$LOGS/grantmux.log" "$gm_pid") \
      && wait_ready "$MATRIX_GRANTMUX_ADMIN_URL/healthz" "$gm_pid"; then
    read -r forward_port tls_port <<<"$ports"
    started_ok=1
    break
  fi
  stop "$gm_pid" "$sim_pid"
done
if [ -z "$started_ok" ]; then
  echo "client matrix: grantmux sim / serve did not start; last logs:" >&2
  tail -5 "$LOGS/sim.log" "$LOGS/grantmux.log" >&2 2>/dev/null || true
  exit 1
fi

# Interception: what the flows whose URLs are in their code are given. The CA
# as `grantmux ca` prints it (Node's NODE_EXTRA_CA_CERTS adds it to its
# roots), and the bundle grantmux wrote at start (the platform's roots plus
# the CA, for REQUESTS_CA_BUNDLE, which replaces requests' store).
if ! MATRIX_SIM_SECRET=$MATRIX_CLIENT_SECRET "$BIN" ca --config "$WORK/proxy.toml" \
    >"$WORK/grantmux-ca.pem" 2>"$LOGS/grantmux-ca.log"; then
  echo "client matrix: grantmux ca failed:" >&2; cat "$LOGS/grantmux-ca.log" >&2; exit 1
fi
if ! cmp -s "$WORK/grantmux-ca.pem" "$WORK/state/intercept-ca.crt" || [ ! -s "$WORK/ca-bundle.pem" ]; then
  echo "client matrix: grantmux ca printed another CA than the state folder's, or no bundle was written" >&2
  exit 1
fi
export MATRIX_FORWARD_PROXY="http://127.0.0.1:$forward_port" MATRIX_TLS_PORT=$tls_port
export MATRIX_CA_PEM="$WORK/grantmux-ca.pem" MATRIX_CA_BUNDLE="$WORK/ca-bundle.pem"

# Any other https call (only real Zoom is https here) fails at once on a
# closed local port instead of leaving the machine; loopback calls go direct.
# The interception flows get grantmux's forward proxy instead (matrix.py).
export HTTPS_PROXY=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9
unset HTTP_PROXY http_proxy ALL_PROXY all_proxy
export PYTHONDONTWRITEBYTECODE=1

status=0
python3 "$HERE/matrix.py" --python "$PWD/$VENV/bin/python" --logs "$LOGS" --results "$HERE/RESULTS.md" || status=$?
echo "client matrix: $((SECONDS - started)) s (installs $((installed - started)) s)"
exit "$status"
