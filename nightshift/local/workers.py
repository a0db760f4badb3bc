"""One entry point for every local analysis: `run_local(worker, repo, **options)`.

Workers with a local analysis run it; the agent-only ones (deepdive, ultralearn) return the
`needs-agent` result. Worker modules are imported on first use (bandit, radon and coverage load only
when their worker runs).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from nightshift.errors import ConfigError
from nightshift.local.models import LocalResult
from nightshift.local.needs_agent import AGENT_ONLY_WORKERS, needs_agent_result

# worker → (module, function)
LOCAL_ANALYSES: dict[str, tuple[str, str]] = {
    "map": ("nightshift.local.repomap", "run_map"),
    "audit": ("nightshift.local.audit", "run_audit"),
    "testgaps": ("nightshift.local.testgaps", "run_testgaps"),
    "document": ("nightshift.local.document", "run_document"),
    "refactor": ("nightshift.local.refactor", "run_refactor"),
    "optimize": ("nightshift.local.optimize", "run_optimize"),
    "predict": ("nightshift.local.predict", "run_predict"),
}


def has_local_analysis(worker: str) -> bool:
    return worker in LOCAL_ANALYSES


def run_local(
    worker: str, repo: Path, *, no_agent_reason: str = "no agent is available", **options: Any
) -> LocalResult:
    """The local analysis of `worker` on `repo`; `options` go to its `run_<worker>` function.

    For agent-only workers the result has status `needs-agent` and explains `no_agent_reason`.
    """
    if worker in LOCAL_ANALYSES:
        module_name, function_name = LOCAL_ANALYSES[worker]
        runner = getattr(importlib.import_module(module_name), function_name)
        result: LocalResult = runner(Path(repo), **options)
        return result
    if worker in AGENT_ONLY_WORKERS:
        return needs_agent_result(worker, no_agent_reason)
    raise ConfigError(f"no local analysis for worker {worker!r}; known: {', '.join(sorted(LOCAL_ANALYSES))}")
