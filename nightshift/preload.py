"""The preload worker: warm what later runs need, and report what it warmed and how long it took.

- the context index (file hashes) for every enabled agent worker's globs, so skip-if-fresh checks and
  context gathering read only changed files;
- the agent binary (one `claude --version`, which also pages the 380 MB binary into the cache);
- the worker image, when Docker answers (`docker image inspect`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nightshift.agents.claude import ClaudeSettings, find_claude_binary
from nightshift.analysis import context_spec_for
from nightshift.catalogue import CATALOGUE
from nightshift.context import warm_index
from nightshift.context.paths import resolve_repo
from nightshift.errors import AgentNotFoundError
from nightshift.local.models import LocalResult, local_banner, python_tool
from nightshift.process import run_command
from nightshift.results import repo_key, state_dir

WORKER_IMAGE = "nightshift/worker:dev"


def index_dir() -> Path:
    return state_dir() / "index"


def _timed(label: str, action: Any) -> dict[str, Any]:
    started = time.monotonic()
    try:
        detail = action()
        status = "warm"
    except Exception as exc:  # a missing part is reported, not fatal: preload only helps
        detail, status = str(exc), "skipped"
    return {"item": label, "status": status, "detail": str(detail), "seconds": round(time.monotonic() - started, 3)}


def run_preload(repo: Path) -> LocalResult:
    root = resolve_repo(repo)
    rows = []
    for spec in CATALOGUE.values():
        if spec.mode == "agent":
            rows.append(
                _timed(
                    f"context index ({spec.name})",
                    lambda spec=spec: f"{warm_index(root, index_dir(), spec=context_spec_for(spec))} file(s) hashed",
                )
            )

    def binary() -> str:
        try:
            path = find_claude_binary(ClaudeSettings.from_env().binary)
        except AgentNotFoundError as exc:
            raise RuntimeError(str(exc)) from exc
        out = run_command([str(path), "--version"], cwd=root, timeout_s=60)
        return f"{path}: {out.stdout.strip()}"

    def image() -> str:
        out = run_command(
            ["docker", "image", "inspect", "--format", "{{.Id}} {{.Size}}", WORKER_IMAGE], cwd=root, timeout_s=30
        )
        if out.returncode != 0:
            raise RuntimeError(f"{WORKER_IMAGE} not present ({out.stderr_tail.strip()[:200]})")
        return f"{WORKER_IMAGE}: {out.stdout.strip()}"

    rows.append(_timed("agent binary", binary))
    rows.append(_timed("worker image", image))
    total = sum(r["seconds"] for r in rows)
    method = "hashed candidate files into the context index, ran the agent CLI's --version, inspected the image."
    tools = [python_tool()]
    summary = "\n\n".join(
        [
            local_banner(method, tools),
            f"## Preload\n\nWarmed {sum(r['status'] == 'warm' for r in rows)} of {len(rows)} item(s) in {total:.2f} s "
            f"(index in `{index_dir()}`, repository key `{repo_key(root)}`).\n\n"
            + "\n".join(f"- {r['item']}: **{r['status']}** in {r['seconds']} s — {r['detail']}" for r in rows),
        ]
    )
    return LocalResult(
        worker="preload", method=method, tools=tools, tables={"warmed": rows}, summary_markdown=summary,
        report={"seconds": total},
    )  # fmt: skip
