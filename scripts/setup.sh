#!/usr/bin/env bash
# Install everything nightshift needs, idempotently: Python deps (uv, locked), the pinned agent CLIs
# (npm, locked), and — unless --no-system — Chromium and a running Docker engine.
# Safe to call again: each step checks first and prints what it did.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SYSTEM=1
for arg in "$@"; do
  case "$arg" in
    --no-system) SYSTEM=0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[setup] %s\n' "$*"; }

apt_install() {
  # apt_install PKG... : install missing Debian packages (root only), one `apt-get update` per call.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: need root to install ${missing[*]}" >&2; exit 1
  fi
  log "apt-get install ${missing[*]}"
  # Another apt run (e.g. ensure_docker.sh in parallel) holds the lock: wait for it.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# 1. uv and the Python environment (locked; certifi override lives in pyproject.toml).
if ! command -v uv >/dev/null 2>&1; then
  log "installing uv with pip"
  python3 -m pip install --quiet uv
fi
uv sync --frozen --quiet
log "python deps: $(uv run python -c 'import prefect; print("prefect", prefect.__version__)')"

# 2. The pinned agent CLIs (npm ci from tools/package-lock.json; native binaries come from the
#    optional platform packages, so npm 11 skipping postinstall does not matter).
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
stamp=tools/node_modules/.nightshift-lock.sha256
want=$(sha256sum tools/package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
   || [ ! -x tools/node_modules/@anthropic-ai/claude-code-linux-x64/claude ]; then
  log "npm ci (agent CLIs)"
  npm ci --prefix tools --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
log "claude: $(tools/node_modules/@anthropic-ai/claude-code-linux-x64/claude --version)"

# 3. System parts: Chromium (UI checks), git, Docker engine (sandbox tests).
if [ "$SYSTEM" = 1 ]; then
  apt_install chromium git
  log "chromium: $(chromium --version 2>/dev/null || echo missing)"
  if [ -x scripts/ensure_docker.sh ] || [ -f scripts/ensure_docker.sh ]; then
    bash scripts/ensure_docker.sh
    bash scripts/build_image.sh  # the worker image the sandbox tests run (cached: seconds)
  fi
fi
log "done ($ROOT)"
