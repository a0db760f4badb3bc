#!/usr/bin/env bash
# Build the worker image (default nightshift/worker:dev) from the project's Dockerfile.
#
# ensure docker -> ensure the local base image -> put the host CA bundle into the build
# context (docker/ca/ca-bundle.crt, git-ignored, used by build stages only) ->
# docker build --network host. Idempotent; a no-change rebuild is all cache hits.
#
# Env:
#   NIGHTSHIFT_IMAGE        tag to build      (default nightshift/worker:dev)
#   NIGHTSHIFT_BASE_IMAGE   BASE_IMAGE arg    (default nightshift/base:bookworm, built by
#                           build_base_image.sh; set to python:3.11-slim-bookworm where a
#                           registry is reachable)
#   NIGHTSHIFT_CA_BUNDLE    CA bundle for HTTPS in the build (default the system bundle;
#                           empty string = none)
#   NIGHTSHIFT_BUILD_LOG    full docker build output (default /tmp/nightshift-build.log)
#   NIGHTSHIFT_PREPARE_ONLY=1  stop before `docker build`: engine, base image and CA bundle ready
#                           (the first build step of deployments/docker-pool.yaml)
# Extra arguments are passed to `docker build` (e.g. --no-cache, --build-arg X=Y).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
IMAGE="${NIGHTSHIFT_IMAGE:-nightshift/worker:dev}"
BASE_IMAGE="${NIGHTSHIFT_BASE_IMAGE:-nightshift/base:bookworm}"
CA_BUNDLE="${NIGHTSHIFT_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
BUILD_LOG="${NIGHTSHIFT_BUILD_LOG:-/tmp/nightshift-build.log}"
LOCK_FILE=/tmp/nightshift-build-image.lock

say() { echo "[build_image] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

t0=$SECONDS
"$HERE/ensure_docker.sh"
if [[ $BASE_IMAGE == nightshift/base:* ]]; then
    NIGHTSHIFT_BASE_IMAGE="$BASE_IMAGE" "$HERE/build_base_image.sh"
fi

exec 9>"$LOCK_FILE"
flock -w 1800 9 || die "another build holds $LOCK_FILE for over 30 min"

CA_DEST="$ROOT/docker/ca/ca-bundle.crt"
if [[ -n $CA_BUNDLE ]]; then
    [[ -r $CA_BUNDLE ]] || die "CA bundle $CA_BUNDLE not readable (set NIGHTSHIFT_CA_BUNDLE='' for none)"
    # Copy only on change: a rewritten file would still hit the cache, but this keeps it obvious.
    cmp -s "$CA_BUNDLE" "$CA_DEST" 2>/dev/null || install -m 0644 "$CA_BUNDLE" "$CA_DEST"
else
    rm -f "$CA_DEST"
fi

if [[ ${NIGHTSHIFT_PREPARE_ONLY:-0} == 1 ]]; then
    say "context ready for $IMAGE (engine, base image $BASE_IMAGE, CA bundle); not building (NIGHTSHIFT_PREPARE_ONLY=1)"
    exit 0
fi

# Without the buildx plugin the CLI would refuse DOCKER_BUILDKIT=1; use the legacy builder.
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi

say "docker build $IMAGE (BASE_IMAGE=$BASE_IMAGE, builder: $([[ ${DOCKER_BUILDKIT:-1} == 0 ]] && echo legacy || echo buildkit), log: $BUILD_LOG)"
t1=$SECONDS
if ! docker build --network host \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --label io.nightshift.managed=true \
        -t "$IMAGE" "$@" "$ROOT" >"$BUILD_LOG" 2>&1; then
    tail -n 40 "$BUILD_LOG" >&2
    die "docker build failed (full log: $BUILD_LOG)"
fi

# The legacy builder leaves each stage's result as a dangling image: that is its cache.
# Drop the dangling nightshift images this build did not use (old workers, stale stages).
if [[ ${DOCKER_BUILDKIT:-1} == 0 && ${NIGHTSHIFT_PRUNE:-1} == 1 ]]; then
    used="$(grep -oE '^ ---> [0-9a-f]{12}$' "$BUILD_LOG" | awk '{print $2}' | sort -u)"
    removed=0
    for id in $(docker images -q --filter dangling=true --filter label=io.nightshift.managed=true | sort -u); do
        if ! grep -qx "$id" <<<"$used" && docker rmi "$id" >/dev/null 2>&1; then
            removed=$((removed + 1))
        fi
    done
    (( removed == 0 )) || say "removed $removed stale nightshift images"
fi

steps=$(grep -cE '^Step [0-9]+/' "$BUILD_LOG" || true)
cached=$(grep -c 'Using cache' "$BUILD_LOG" || true)
size=$(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')
say "built $IMAGE ($size) in $((SECONDS - t1))s [steps: $steps, cached: $cached]; total $((SECONDS - t0))s"
