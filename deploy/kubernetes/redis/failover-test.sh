#!/usr/bin/env bash
# Runs this folder's start scripts (redis.sh, sentinel.sh and the template
# sentinel.conf) with real redis-server processes, as the five pods would run them,
# and checks what the layout promises:
#   - a new layout: pod 0 the primary, pod 1 its replica, three Sentinels that agree
#     on it; a write waited for (WAIT 1) reaches the replica;
#   - the primary killed: the Sentinels promote the replica within seconds, and the
#     new primary refuses writes (min-replicas-to-write) until the old one is back,
#     as its replica, from what the Sentinels say;
#   - a Sentinel replaced with its state lost learns the primary from the others;
#   - every Sentinel away: a restarting data node finds the primary by asking the
#     other one, and Sentinels started afresh find it the same way;
#   - a failover back to pod 0, and the data written before is still there.
#
# The pods' names (REDIS_HOSTS, SENTINEL_HOSTS) and the data nodes' args are read from
# the rendered manifests (`kubectl kustomize`). Each "pod" gets a loopback address of
# its own, and its name resolves to it through /etc/hosts, in a network, mount and PID
# namespace of this test's own (unshare): nothing outside is touched, and every
# process it started ends with it. The paths the scripts use are redirected into a
# temporary folder.
#
# Needs root (unshare), redis-server and redis-cli 7.0 or later, kubectl, and a
# python3 with PyYAML (the first argument, default python3). deploy/check.sh runs it.
set -euo pipefail
trap 'echo "failover-test.sh: failed at line $LINENO" >&2' ERR

if [ "${1:-}" != --inside ]; then
    self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
    python="${1:-python3}"
    # A path relative to where it was called from: made absolute before the cd.
    case "$python" in */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;; esac
    cd "$(dirname "$self")"
    for tool in unshare redis-server redis-cli kubectl; do
        command -v "$tool" >/dev/null || { echo "failover-test.sh: $tool is needed" >&2; exit 1; }
    done
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    kubectl kustomize . >"$work/rendered.yaml"
    # The StatefulSets' host lists and the data nodes' args, one per line.
    "$python" - "$work" <<'PY'
import sys, yaml
work = sys.argv[1]
objects = [o for o in yaml.safe_load_all(open(f"{work}/rendered.yaml")) if o]
sets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "StatefulSet"}
def container(name):
    return sets[name]["spec"]["template"]["spec"]["containers"][0]
def env(name, var):
    return next(v["value"] for v in container(name)["env"] if v["name"] == var)
open(f"{work}/redis-hosts", "w").write(env("grantmux-redis", "REDIS_HOSTS") + "\n")
open(f"{work}/sentinel-hosts", "w").write(env("grantmux-redis", "SENTINEL_HOSTS") + "\n")
assert env("grantmux-redis-sentinel", "REDIS_HOSTS") == env("grantmux-redis", "REDIS_HOSTS")
assert env("grantmux-redis-sentinel", "SENTINEL_HOSTS") == env("grantmux-redis", "SENTINEL_HOSTS")
open(f"{work}/redis-args", "w").write("\n".join(container("grantmux-redis")["args"]) + "\n")
PY
    cp redis.sh sentinel.sh sentinel.conf "$work/"
    unshare --net --mount --pid --fork --mount-proc bash "$self" --inside "$work"
    exit
fi

# --- inside the namespaces ------------------------------------------------------
work="$2"
ip link set lo up
read -r -a redis_hosts <"$work/redis-hosts"
read -r -a sentinel_hosts <"$work/sentinel-hosts"
mapfile -t redis_args <"$work/redis-args"
[ "${#redis_hosts[@]}" -eq 2 ] && [ "${#sentinel_hosts[@]}" -eq 3 ] \
    || { echo "failover-test.sh: expects 2 data nodes and 3 Sentinels" >&2; exit 1; }
r0="${redis_hosts[0]}" r1="${redis_hosts[1]}"

declare -A address pid
n=2
{
    echo "127.0.0.1 localhost"
    for host in "${redis_hosts[@]}" "${sentinel_hosts[@]}"; do
        address[$host]="127.0.0.$n"
        echo "127.0.0.$n $host"
        n=$((n + 1))
    done
} >"$work/hosts"
mount --bind "$work/hosts" /etc/hosts

REDIS_PASSWORD="$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
REDIS_HOSTS="${redis_hosts[*]}"
SENTINEL_HOSTS="${sentinel_hosts[*]}"
export REDIS_PASSWORD REDIS_HOSTS SENTINEL_HOSTS

# A pod's files: the scripts with their paths (/etc/grantmux-redis, /run/redis,
# /run/sentinel, /data) moved into the pod's folder. A new pod starts with an empty
# run/ (the emptyDir) and keeps data/ (its claim).
pod_files() {
    local host="$1" dir="$work/pods/$1"
    rm -rf "$dir/run" "$dir/scripts"
    mkdir -p "$dir/data" "$dir/run" "$dir/scripts"
    for file in redis.sh sentinel.sh sentinel.conf; do
        sed -e "s#/etc/grantmux-redis#$dir/scripts#g" -e "s#/run/redis#$dir/run#g" \
            -e "s#/run/sentinel#$dir/run#g" "$work/$file" >"$dir/scripts/$file"
    done
}
data_args() {
    local dir="$1" arg
    for arg in "${redis_args[@]}"; do
        [ "$arg" = /data ] && arg="$dir/data"
        printf '%s\n' "$arg"
    done
}
start_redis() {
    local host="$1" dir="$work/pods/$1"
    local -a args
    pod_files "$host"
    mapfile -t args < <(data_args "$dir")
    # --bind: the pods share one network here; --save "": no RDB snapshots besides the
    # AOF (the test's data dir is a temporary folder).
    POD_NAME="${host%%.*}" REDISCLI_AUTH="$REDIS_PASSWORD" \
        sh "$dir/scripts/redis.sh" "${args[@]}" --bind "${address[$host]}" --save "" \
        >>"$work/$host.log" 2>&1 &
    pid[$host]=$!
}
start_sentinel() {
    local host="$1" dir="$work/pods/$1"
    rm -rf "$dir"
    pod_files "$host"
    POD_NAME="${host%%.*}" sh "$dir/scripts/sentinel.sh" --bind "${address[$host]}" \
        >>"$work/$host.log" 2>&1 &
    pid[$host]=$!
}
stop() { # kill -9, as a node failure would
    kill -9 "${pid[$1]}" 2>/dev/null || true
    wait "${pid[$1]}" 2>/dev/null || true
}

data() { REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli --raw -h "$1" "${@:2}" 2>&1 || true; }
sentinel() { timeout 3 redis-cli --raw -h "$1" -p 26379 "${@:2}" 2>&1 || true; }
role() { data "$1" role | head -n 1; }
master_of() { sentinel "$1" sentinel get-master-addr-by-name grantmux | head -n 1; }
all_sentinels_say() {
    local s
    for s in "${sentinel_hosts[@]}"; do
        [ "$(master_of "$s")" = "$1" ] || return 1
    done
}
replica_of() { # $1 is a replica of $2 and in sync
    local info
    info="$(data "$1" info replication)"
    grep -q "^master_host:$2" <<<"$info" && grep -q '^master_link_status:up' <<<"$info"
}
quorum() { sentinel "$1" sentinel ckquorum grantmux | grep -q '^OK'; }
writes() { # a write to $1 is accepted and reaches the replica (WAIT 1)
    [ "$(data "$1" set k "$2")" = OK ] && [ "$(data "$1" wait 1 2000)" = 1 ]
}

step=""
fail() {
    echo "FAILED: $step: $*" >&2
    for log in "$work"/*.log; do
        echo "--- $(basename "$log")" >&2
        tail -n 15 "$log" >&2
    done
    exit 1
}
# Retries "$@" once a second for up to $seconds.
eventually() {
    local seconds="$1" i
    shift
    for ((i = 0; i < seconds; i++)); do
        "$@" && return 0
        sleep 1
    done
    fail "not within ${seconds}s: $*"
}
is() { [ "$(role "$1")" = "$2" ]; }

step="a new layout"
start_redis "$r0"
eventually 20 is "$r0" master
start_redis "$r1"
eventually 30 replica_of "$r1" "$r0"
for s in "${sentinel_hosts[@]}"; do start_sentinel "$s"; done
eventually 30 all_sentinels_say "$r0"
eventually 30 quorum "${sentinel_hosts[0]}"
eventually 30 writes "$r0" v1
echo "ok: $step: $r0 the primary, $r1 its replica, 3 Sentinels agree"

step="the primary killed"
stop "$r0"
start=$SECONDS
eventually 40 all_sentinels_say "$r1"
echo "ok: $step: the Sentinels promoted $r1 after $((SECONDS - start))s"
eventually 10 is "$r1" master
answer="$(data "$r1" set k lost)"
[[ "$answer" == NOREPLICAS* ]] || fail "a write without a replica was not refused: $answer"
echo "ok: $step: $r1 refuses writes without a replica (NOREPLICAS)"
start_redis "$r0"
eventually 30 replica_of "$r0" "$r1"
# (Sentinel would also turn a returning old primary into a replica, but only after
# it ran as a second primary for a while.)
grep -q "Sentinel .* names $r1 the primary" "$work/$r0.log" || fail "$r0 did not ask the Sentinels"
eventually 30 writes "$r1" v2
echo "ok: $step: $r0 came back as the replica of $r1; writes reach it"

step="a Sentinel replaced"
stop "${sentinel_hosts[1]}"
start_sentinel "${sentinel_hosts[1]}"
eventually 30 all_sentinels_say "$r1"
eventually 30 quorum "${sentinel_hosts[1]}"
grep -q "Sentinel .* names $r1 the primary" "$work/${sentinel_hosts[1]}.log" \
    || fail "it did not learn the primary from another Sentinel"
echo "ok: $step: it learned $r1 from the others"

step="every Sentinel away"
for s in "${sentinel_hosts[@]}"; do stop "$s"; done
stop "$r0"
start_redis "$r0"
eventually 30 replica_of "$r0" "$r1"
grep -q "no Sentinel answered; $r1 says it is the primary" "$work/$r0.log" \
    || fail "$r0 did not ask $r1"
for s in "${sentinel_hosts[@]}"; do start_sentinel "$s"; done
eventually 30 all_sentinels_say "$r1"
eventually 30 quorum "${sentinel_hosts[2]}"
echo "ok: $step: $r0 restarted as the replica of $r1, new Sentinels found $r1"

step="a failover back"
stop "$r1"
eventually 40 all_sentinels_say "$r0"
start_redis "$r1"
eventually 30 replica_of "$r1" "$r0"
[ "$(data "$r0" get k)" = v2 ] || fail "the last write is gone: $(data "$r0" get k)"
eventually 30 writes "$r0" v3
echo "ok: $step: $r0 the primary again, $r1 its replica, no write lost"

mode="$(stat -c %a "$work/pods/$r0/run/redis.conf") $(stat -c %a "$work/pods/${sentinel_hosts[0]}/run/sentinel.conf")"
[ "$mode" = "600 600" ] || fail "the config files with the password are not 0600: $mode"
echo "failover-test.sh: passed"
