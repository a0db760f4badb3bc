#!/usr/bin/env bash
# The main job in one command: install what is missing, then `nightshift up` (Prefect server + worker,
# bootstrap, prefect deploy --all, the audit worker on this checkout or --repo PATH; prints the UI URL
# and the report artifact link). Idempotent. `uv run nightshift down` stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec uv run nightshift up "$@"
