#!/bin/sh
# Starts one data node of the StatefulSet grantmux-redis as the primary or as a replica
# of it; the container's args (statefulset.yaml) are passed on to redis-server.
#
# Who the primary is, asked in this order:
#   1. the Sentinels. After a failover pod 1 may be the primary: a restarted pod 0 must
#      come back as its replica, never as a second primary with older data;
#   2. when no Sentinel answers (the first start, or all of them away): the other data
#      node, if it says (ROLE) it is the primary;
#   3. else the first name in REDIS_HOSTS, pod 0: a new layout starts with pod 0 as the
#      primary and pod 1 as its replica.
#
# The password goes into a config file on an emptyDir, mode 0600: never into the
# process list or the manifests. Sentinel's CONFIG REWRITE (after it turns this node
# into a primary or a replica) writes into that file; it is written anew at each start.
#
# Environment (statefulset.yaml): REDIS_PASSWORD (the Secret grantmux-redis),
# REDIS_HOSTS (the data nodes' stable names, pod 0 first), SENTINEL_HOSTS (the
# Sentinels' stable names), POD_NAME (this pod's name). The primary's name for the
# Sentinels is the one sentinel.conf monitors.
set -eu

template=/etc/grantmux-redis/sentinel.conf
conf=/run/redis/redis.conf

: "${REDIS_PASSWORD:?is not set (the Secret grantmux-redis)}"
: "${REDIS_HOSTS:?is not set}"
: "${SENTINEL_HOSTS:?is not set}"
: "${POD_NAME:?is not set (the downward API)}"
case "$REDIS_PASSWORD" in
# Written between double quotes into the config file.
*[!!-~]* | *[\"\\]*)
    echo "redis.sh: the password must be printable ASCII without spaces, quotes or backslashes" >&2
    exit 1
    ;;
esac
master="$(sed -n 's/^sentinel monitor \([^ ]*\) .*/\1/p' "$template")"
[ -n "$master" ] || {
    echo "redis.sh: no 'sentinel monitor' line in $template" >&2
    exit 1
}

me=""
for host in $REDIS_HOSTS; do
    case "$host" in "$POD_NAME" | "$POD_NAME".*) me="$host" ;; esac
done
[ -n "$me" ] || {
    echo "redis.sh: this pod ($POD_NAME) is not in REDIS_HOSTS ($REDIS_HOSTS)" >&2
    exit 1
}

# One of REDIS_HOSTS, or nothing: an error text or an address the layout does not
# know is no answer.
known() {
    for host in $REDIS_HOSTS; do
        if [ "$host" = "$1" ]; then
            echo "$host"
            return
        fi
    done
}

primary=""
for sentinel in $SENTINEL_HOSTS; do
    # Sentinels take no password (see sentinel.conf).
    answer="$(env -u REDISCLI_AUTH timeout 3 redis-cli --raw -h "$sentinel" -p 26379 \
        sentinel get-master-addr-by-name "$master" 2>/dev/null | head -n 1)" || true
    primary="$(known "$answer")"
    if [ -n "$primary" ]; then
        echo "redis.sh: Sentinel $sentinel names $primary the primary"
        break
    fi
done
if [ -z "$primary" ]; then
    for host in $REDIS_HOSTS; do
        [ "$host" != "$me" ] || continue
        role="$(REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli --raw -h "$host" -p 6379 \
            role 2>/dev/null | head -n 1)" || true
        if [ "$role" = master ]; then
            primary="$host"
            echo "redis.sh: no Sentinel answered; $host says it is the primary"
            break
        fi
    done
fi
if [ -z "$primary" ]; then
    primary="${REDIS_HOSTS%% *}"
    echo "redis.sh: no Sentinel and no primary answered; $primary is the primary"
fi

umask 077
{
    echo "# Written by redis.sh at each start."
    printf 'requirepass "%s"\n' "$REDIS_PASSWORD"
    # A replica's password for its primary: after a failover either node may be either.
    printf 'masterauth "%s"\n' "$REDIS_PASSWORD"
    # The primary lists its replicas to the Sentinels by these: the stable name, not
    # the pod IP, which changes when the pod is replaced.
    echo "replica-announce-ip $me"
    echo "replica-announce-port 6379"
    if [ "$primary" != "$me" ]; then
        echo "replicaof $primary 6379"
    fi
} >"$conf"
if [ "$primary" = "$me" ]; then
    echo "redis.sh: starting $me as the primary"
else
    echo "redis.sh: starting $me as a replica of $primary"
fi
exec redis-server "$conf" "$@"
