#!/usr/bin/env bash
# The whole test suite from a fresh clone: install what is missing, lint, type-check, test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] ruff"
uv run ruff check .
uv run ruff format --check .
echo "[test] mypy"
uv run mypy
echo "[test] pytest"
uv run pytest "$@"
