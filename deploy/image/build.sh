#!/usr/bin/env bash
# Assembles the grantmux container image without pulling anything: the equivalent of
# deploy/Dockerfile's distroless image, built FROM scratch out of this machine's own
# files. deploy/image/test.sh runs what it builds.
#
#   bash deploy/image/build.sh [--binary PATH] [--tag NAME:TAG]
#
# Without --binary it runs `cargo build --release --locked --bin grantmux` and takes
# target/release/grantmux. It needs a running Docker engine (test.sh starts one).
#
# Why not deploy/Dockerfile itself: it pulls rust:1-slim-bookworm and
# gcr.io/distroless/cc-debian12, and no registry is reachable where CI runs. What the
# distroless image gives the binary is put together here instead, from this Debian 12
# machine (the same release distroless cc-debian12 is cut from):
#
#   /usr/local/bin/grantmux          the release binary, as the Dockerfile copies it
#   the loader and shared libraries  exactly what `ldd` lists (glibc, libgcc_s, libm),
#                                    each at the path the binary asks for; taken from
#                                    the machine that built the binary, so they match it
#   /etc/ssl/certs/ca-certificates.crt   the CA roots, and SSL_CERT_FILE naming them
#   /etc/passwd, /etc/group          root, nobody and nonroot (65532), as distroless
#   /etc/nsswitch.conf, /etc/os-release, /tmp (1777), /home/nonroot (65532, workdir)
#   /var/lib/grantmux                owned by 65532: the store's mount point. A new
#                                    Docker volume mounted there takes this owner, as
#                                    fsGroup makes the PersistentVolumeClaim writable
#                                    in deploy/kubernetes/sidecar/single-replica
#
# and the same USER, EXPOSE, ENTRYPOINT and CMD as deploy/Dockerfile (test.sh checks
# that they match). No shell, no package manager.
#
# The tree is packed into one tar with fixed owners, modes and times (the owners come
# from tar's flags, so this needs no root) and ADDed to a FROM scratch Dockerfile: ADD
# unpacks a local tar as it is, which is how Debian's own base images are made.
set -euo pipefail
cd "$(dirname "$0")/../.."

binary=""
tag="grantmux:scratch"
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --tag) tag="$2"; shift 2 ;;
        *) echo "usage: $0 [--binary PATH] [--tag NAME:TAG]" >&2; exit 64 ;;
    esac
done

if [ -z "$binary" ]; then
    cargo build --release --locked --bin grantmux
    binary=target/release/grantmux
fi
[ -x "$binary" ] || { echo "build.sh: no executable at $binary" >&2; exit 1; }
certs=/etc/ssl/certs/ca-certificates.crt
[ -s "$certs" ] || { echo "build.sh: $certs missing (apt-get install ca-certificates)" >&2; exit 1; }

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
root="$context/root"       # files owned by root
nonroot="$context/nonroot" # folders owned by 65532

# The binary, and each library ldd resolves, at the path the binary will look for
# it. `cp -L` copies the file a symlink names (/lib64/ld-linux-x86-64.so.2 is one).
install -D -m 0755 "$binary" "$root/usr/local/bin/grantmux"
# A static binary has none: ldd says "not a dynamic executable" and exits 1.
libraries="$(ldd "$binary" 2>&1 || true)"
if grep -q 'not found' <<<"$libraries"; then
    echo "build.sh: ldd cannot resolve every library:" >&2
    echo "$libraries" >&2
    exit 1
fi
# "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2
# (0x...)"; linux-vdso has no file.
while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$libraries")

install -D -m 0644 "$certs" "$root$certs"
mkdir -p "$root/etc"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
# glibc reads it for name lookups; without it the defaults differ between versions.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
install -m 0644 /etc/os-release "$root/etc/os-release"
mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
mkdir -p "$root/home" "$root/var/lib"
mkdir -p "$nonroot/home/nonroot" && chmod 0700 "$nonroot/home/nonroot"
mkdir -p "$nonroot/var/lib/grantmux" && chmod 0700 "$nonroot/var/lib/grantmux"

# One reproducible tar: the root-owned tree, then the two nonroot folders appended with
# their own owner. Their parents (/home, /var/lib) stay root's.
tar_flags=(--sort=name --mtime=@0 --numeric-owner --format=gnu)
tar -C "$root" -cf "$context/rootfs.tar" "${tar_flags[@]}" --owner=0 --group=0 .
tar -C "$nonroot" -rf "$context/rootfs.tar" "${tar_flags[@]}" --owner=65532 --group=65532 \
    --no-recursion home/nonroot var/lib/grantmux

cp deploy/image/Dockerfile "$context/Dockerfile"
# The legacy builder: it needs no buildx plugin (Debian's docker.io has none) and, FROM
# scratch, nothing from a registry. DOCKER_BUILDKIT=0 keeps a newer client from asking
# for buildx.
DOCKER_BUILDKIT=0 docker build --quiet --tag "$tag" "$context" >/dev/null
echo "build.sh: built $tag ($(docker image inspect -f '{{.Size}}' "$tag") bytes) from $binary"
