#!/usr/bin/env bash
# Build the local base image nightshift/base:bookworm with debootstrap + `docker import`.
#
# Used where no image registry is reachable (the Dockerfile's default base is the public
# python:3.11-slim-bookworm). Idempotent: skips when the image exists (FORCE=1 rebuilds).
# The rootfs is a minbase Debian bookworm with what the worker image needs at build and
# run time, so the Dockerfile needs no apt inside the build:
#   python3 (3.11), python3-venv (ensurepip, to bootstrap uv), ca-certificates, git.
#
# Env:
#   NIGHTSHIFT_BASE_IMAGE      tag to build   (default nightshift/base:bookworm)
#   NIGHTSHIFT_DEBIAN_MIRROR   Debian mirror  (default http://deb.debian.org/debian)
#   FORCE=1                    rebuild even if the image exists
set -euo pipefail

IMAGE="${NIGHTSHIFT_BASE_IMAGE:-nightshift/base:bookworm}"
MIRROR="${NIGHTSHIFT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates,git
LOCK_FILE=/run/lock/nightshift-base-image.lock
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

say() { echo "[build_base_image] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

t0=$SECONDS
"$HERE/ensure_docker.sh"

image_exists() { docker image inspect "$IMAGE" >/dev/null 2>&1; }

if [[ "${FORCE:-0}" != 1 ]] && image_exists; then
    say "$IMAGE already exists; skipping (FORCE=1 to rebuild)"
    exit 0
fi

[[ "$(id -u)" == 0 ]] || die "debootstrap needs root"

mkdir -p "$(dirname "$LOCK_FILE")"
exec 9>"$LOCK_FILE"
flock -w 900 9 || die "could not take $LOCK_FILE within 900 s"
if [[ "${FORCE:-0}" != 1 ]] && image_exists; then
    say "$IMAGE was built while waiting for the lock; skipping"
    exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)
    if ! apt-get "${apt_opts[@]}" install debootstrap >>/var/log/nightshift-apt.log 2>&1; then
        apt-get -q -o DPkg::Lock::Timeout=600 update >>/var/log/nightshift-apt.log 2>&1 || die "apt-get update failed"
        apt-get "${apt_opts[@]}" install debootstrap >>/var/log/nightshift-apt.log 2>&1 || die "apt-get install debootstrap failed"
    fi
fi

ROOTFS="$(mktemp -d /var/tmp/nightshift-rootfs.XXXXXX)"
cleanup() {
    # debootstrap mounts /proc and /sys inside the target; a failed run can leave them.
    local m
    for m in $(awk -v r="$ROOTFS" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$ROOTFS"
}
trap cleanup EXIT

say "debootstrap --variant=minbase $SUITE ($PACKAGES) from $MIRROR"
t1=$SECONDS
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" \
        >"$ROOTFS.log" 2>&1; then
    tail -n 40 "$ROOTFS.log" >&2 || true
    rm -f "$ROOTFS.log"
    die "debootstrap failed"
fi
rm -f "$ROOTFS.log"
say "debootstrap took $((SECONDS - t1))s"

# Slim the rootfs: package caches, lists, docs, man pages, non-C locales.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
       "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/var/log/*.log \
       "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name 'C.*' -not -name locale.alias \
    -exec rm -rf {} + 2>/dev/null || true
cat >"$ROOTFS/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
: >"$ROOTFS/etc/hostname"
: >"$ROOTFS/etc/resolv.conf"

say "docker import -> $IMAGE"
tar -C "$ROOTFS" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'LABEL io.nightshift.managed=true' \
    --change 'LABEL io.nightshift.role=base' \
    --change 'CMD ["/bin/bash"]' \
    - "$IMAGE" >/dev/null || die "docker import failed"

say "built $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')) in $((SECONDS - t0))s"
