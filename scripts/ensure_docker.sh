#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine; install and start one if not.
#
# Idempotent and safe to run concurrently: if `docker info` answers it does nothing,
# otherwise (under a lock) it installs docker.io from Debian, writes a daemon.json that
# needs no default bridge (no docker0, no iptables, no 172.17/16 traffic), picks a
# storage driver that works here (overlay2 -> fuse-overlayfs -> vfs), starts dockerd in
# the background with its log in $NIGHTSHIFT_DOCKERD_LOG and waits (bounded) for it.
#
# Env:
#   NIGHTSHIFT_DOCKERD_LOG      dockerd log file   (default /var/log/nightshift-dockerd.log)
#   NIGHTSHIFT_DOCKER_WAIT      seconds to wait for dockerd to answer (default 90)
#   NIGHTSHIFT_DOCKER_LOCK      lock file          (default /run/lock/nightshift-docker.lock)
set -euo pipefail

LOG_FILE="${NIGHTSHIFT_DOCKERD_LOG:-/var/log/nightshift-dockerd.log}"
WAIT_S="${NIGHTSHIFT_DOCKER_WAIT:-90}"
LOCK_FILE="${NIGHTSHIFT_DOCKER_LOCK:-/run/lock/nightshift-docker.lock}"
DAEMON_JSON=/etc/docker/daemon.json
DATA_ROOT=/var/lib/docker

say() { echo "[ensure_docker] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

docker_answers() { timeout 20 docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && docker_answers; then
    say "docker engine already answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')); nothing to do"
    exit 0
fi

[[ "$(id -u)" == 0 ]] || die "docker is not running and starting it needs root (run as root or start dockerd yourself)"

mkdir -p "$(dirname "$LOCK_FILE")"
exec 9>"$LOCK_FILE"
say "waiting for lock $LOCK_FILE"
flock -w 600 9 || die "could not take $LOCK_FILE within 600 s"

# Another caller may have done the work while we waited for the lock.
if command -v docker >/dev/null 2>&1 && docker_answers; then
    say "docker engine came up while waiting for the lock; nothing to do"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
APT_LOG=/var/log/nightshift-apt.log
APT_OPTS=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)

apt_install() {
    # One `apt-get update` first only when a package has no install candidate yet.
    local need_update=0 pkg policy
    for pkg in "$@"; do
        policy="$(apt-cache policy "$pkg" 2>/dev/null || true)"
        [[ $policy =~ Candidate:\ [^\(] ]] || need_update=1
    done
    if [[ $need_update == 1 ]]; then
        say "apt-get update (log: $APT_LOG)"
        apt-get -q -o DPkg::Lock::Timeout=600 update >>"$APT_LOG" 2>&1 \
            || { tail -n 20 "$APT_LOG" >&2; die "apt-get update failed"; }
    fi
    say "apt-get install $* (log: $APT_LOG)"
    apt-get "${APT_OPTS[@]}" install "$@" >>"$APT_LOG" 2>&1 \
        || { tail -n 20 "$APT_LOG" >&2; die "apt-get install $* failed"; }
}

# --- the engine packages ------------------------------------------------------------
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    # Write daemon.json before installing, so an init script that does start the
    # service on install never creates the default bridge.
    if [[ ! -e $DAEMON_JSON ]]; then
        mkdir -p "$(dirname "$DAEMON_JSON")"
        echo '{"bridge": "none", "iptables": false, "ip-forward": false, "ip-masq": false}' >"$DAEMON_JSON"
    fi
    apt_install docker.io
else
    say "docker.io already installed ($(dockerd --version 2>/dev/null || echo '?'))"
fi

# --- storage driver ----------------------------------------------------------------
overlay_works() {
    mkdir -p "$DATA_ROOT"
    local d rc=1
    d="$(mktemp -d "$DATA_ROOT/.ovl-probe.XXXXXX")"
    mkdir -p "$d"/{l1,l2,u,w,m}
    echo probe >"$d/l1/f"
    if mount -t overlay overlay -o "lowerdir=$d/l1:$d/l2,upperdir=$d/u,workdir=$d/w" "$d/m" 2>/dev/null; then
        if [[ "$(cat "$d/m/f" 2>/dev/null)" == probe ]] && echo x >"$d/m/g" 2>/dev/null && [[ -e "$d/u/g" ]]; then
            rc=0
        fi
        umount "$d/m" 2>/dev/null || umount -l "$d/m" 2>/dev/null || true
    fi
    rm -rf "$d"
    return $rc
}

pick_storage_driver() {
    if overlay_works; then
        echo overlay2
        return
    fi
    say "kernel overlayfs does not work on $DATA_ROOT; trying fuse-overlayfs"
    if [[ -e /dev/fuse ]]; then
        command -v fuse-overlayfs >/dev/null 2>&1 || apt_install fuse-overlayfs fuse3 || true
        if command -v fuse-overlayfs >/dev/null 2>&1; then
            echo fuse-overlayfs
            return
        fi
    fi
    say "no overlay available; falling back to vfs (slow, uses more disk)"
    echo vfs
}

# --- daemon.json ---------------------------------------------------------------------
# We own daemon.json when it is absent or only has keys we write; a richer one written
# by someone else is kept as is (with a warning if it would create the default bridge).
OUR_KEYS='["bridge","iptables","ip-forward","ip-masq","storage-driver","userland-proxy","log-driver","log-opts","features"]'
daemon_json_is_ours() {
    [[ ! -s $DAEMON_JSON ]] && return 0
    python3 - "$DAEMON_JSON" "$OUR_KEYS" <<'PY'
import json, sys
try:
    cfg = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(1)
sys.exit(0 if isinstance(cfg, dict) and set(cfg) <= set(json.loads(sys.argv[2])) else 1)
PY
}

if daemon_json_is_ours; then
    DRIVER="$(pick_storage_driver)"
    mkdir -p "$(dirname "$DAEMON_JSON")"
    cat >"$DAEMON_JSON.tmp" <<EOF
{
  "bridge": "none",
  "iptables": false,
  "ip-forward": false,
  "ip-masq": false,
  "userland-proxy": false,
  "storage-driver": "$DRIVER",
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"}
}
EOF
    mv -f "$DAEMON_JSON.tmp" "$DAEMON_JSON"
    say "wrote $DAEMON_JSON (bridge none, iptables off, storage-driver $DRIVER)"
else
    say "keeping existing $DAEMON_JSON (it has keys nightshift does not manage)"
    grep -q '"bridge"[[:space:]]*:[[:space:]]*"none"' "$DAEMON_JSON" \
        || say "WARNING: $DAEMON_JSON does not set \"bridge\": \"none\"; dockerd will create docker0"
fi

# --- start dockerd -------------------------------------------------------------------
# cgroup v1 hierarchies must be mounted for runc; mount them if this machine has none.
if [[ ! -e /sys/fs/cgroup/cgroup.controllers ]] && ! mountpoint -q /sys/fs/cgroup/memory 2>/dev/null; then
    if command -v cgroupfs-mount >/dev/null 2>&1; then
        say "mounting cgroup hierarchies (cgroupfs-mount)"
        cgroupfs-mount || say "cgroupfs-mount failed; continuing"
    fi
fi

if pgrep -x dockerd >/dev/null 2>&1; then
    say "a dockerd process exists but does not answer yet; waiting for it"
else
    # A pid file left by a killed dockerd makes the next one refuse to start.
    for pidf in /var/run/docker.pid /run/docker/containerd/containerd.pid; do
        if [[ -f $pidf ]] && ! kill -0 "$(cat "$pidf" 2>/dev/null)" 2>/dev/null; then
            rm -f "$pidf"
        fi
    done
    mkdir -p "$(dirname "$LOG_FILE")"
    say "starting dockerd (log: $LOG_FILE)"
    # setsid + no inherited fds: dockerd outlives this script and the CI step that ran it.
    setsid nohup dockerd >>"$LOG_FILE" 2>&1 </dev/null 9>&- &
    disown || true
fi

start=$SECONDS
until docker_answers; do
    if ! pgrep -x dockerd >/dev/null 2>&1 && (( SECONDS - start > 3 )); then
        say "dockerd exited; last lines of $LOG_FILE:"
        tail -n 30 "$LOG_FILE" >&2 || true
        die "dockerd failed to start"
    fi
    if (( SECONDS - start >= WAIT_S )); then
        tail -n 30 "$LOG_FILE" >&2 || true
        die "docker info did not answer within ${WAIT_S}s"
    fi
    sleep 1
done

say "docker engine up in $((SECONDS - start))s: server $(docker version --format '{{.Server.Version}}'), storage driver $(docker info --format '{{.Driver}}')"
