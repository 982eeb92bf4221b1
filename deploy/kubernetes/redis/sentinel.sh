#!/bin/sh
# Starts one Sentinel of the StatefulSet grantmux-redis-sentinel; the container's args
# (sentinel.yaml) are passed on to redis-server.
#
# Sentinel rewrites its config file as it learns (the replicas and other Sentinels it
# discovers, the epoch, the new primary after a failover), so the template
# sentinel.conf (read-only, from the ConfigMap) is copied into an emptyDir, with the
# primary it starts from and the password filled in.
#
# The primary it starts from, asked in this order (and again every 2 s until one answers):
#   1. another Sentinel: this one restarted, and the others may have failed over since;
#   2. the data node that says (ROLE) it is the primary.
# Sentinel refuses to start on a name it cannot resolve, so it waits for its primary
# rather than guess.
#
# Environment (sentinel.yaml): REDIS_PASSWORD (the Secret grantmux-redis), REDIS_HOSTS
# (the data nodes' stable names), SENTINEL_HOSTS (the Sentinels' stable names),
# POD_NAME (this pod's name).
set -eu

template=/etc/grantmux-redis/sentinel.conf
conf=/run/sentinel/sentinel.conf

: "${REDIS_PASSWORD:?is not set (the Secret grantmux-redis)}"
: "${REDIS_HOSTS:?is not set}"
: "${SENTINEL_HOSTS:?is not set}"
: "${POD_NAME:?is not set (the downward API)}"
case "$REDIS_PASSWORD" in
# Written between double quotes into the config file.
*[!!-~]* | *[\"\\]*)
    echo "sentinel.sh: the password must be printable ASCII without spaces, quotes or backslashes" >&2
    exit 1
    ;;
esac
master="$(sed -n 's/^sentinel monitor \([^ ]*\) .*/\1/p' "$template")"
[ -n "$master" ] || {
    echo "sentinel.sh: no 'sentinel monitor' line in $template" >&2
    exit 1
}

me=""
for host in $SENTINEL_HOSTS; do
    case "$host" in "$POD_NAME" | "$POD_NAME".*) me="$host" ;; esac
done
[ -n "$me" ] || {
    echo "sentinel.sh: this pod ($POD_NAME) is not in SENTINEL_HOSTS ($SENTINEL_HOSTS)" >&2
    exit 1
}

# One of REDIS_HOSTS, or nothing.
known() {
    for host in $REDIS_HOSTS; do
        if [ "$host" = "$1" ]; then
            echo "$host"
            return
        fi
    done
}

primary=""
while [ -z "$primary" ]; do
    for sentinel in $SENTINEL_HOSTS; do
        [ "$sentinel" != "$me" ] || continue
        answer="$(timeout 3 redis-cli --raw -h "$sentinel" -p 26379 \
            sentinel get-master-addr-by-name "$master" 2>/dev/null | head -n 1)" || true
        primary="$(known "$answer")"
        if [ -n "$primary" ]; then
            echo "sentinel.sh: Sentinel $sentinel names $primary the primary"
            break
        fi
    done
    if [ -z "$primary" ]; then
        for host in $REDIS_HOSTS; do
            role="$(REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli --raw -h "$host" \
                -p 6379 role 2>/dev/null | head -n 1)" || true
            if [ "$role" = master ]; then
                primary="$host"
                echo "sentinel.sh: no other Sentinel answered; $host says it is the primary"
                break
            fi
        done
    fi
    if [ -z "$primary" ]; then
        echo "sentinel.sh: no Sentinel and no primary answered yet; asking again in 2 s"
        sleep 2
    fi
done

umask 077
# The names are DNS names (letters, digits, dots and dashes): safe in sed.
sed "s/@PRIMARY@/$primary/" "$template" >"$conf"
{
    echo
    echo "# Added by sentinel.sh at start."
    # What the other Sentinels and the clients are told this Sentinel is: its stable
    # name (announce-hostnames), not the pod IP.
    echo "sentinel announce-ip $me"
    echo "sentinel announce-port 26379"
    # The data nodes' password (requirepass, masterauth there).
    printf 'sentinel auth-pass %s "%s"\n' "$master" "$REDIS_PASSWORD"
} >>"$conf"
echo "sentinel.sh: starting $me, monitoring $master at $primary"
exec redis-server "$conf" --sentinel "$@"
