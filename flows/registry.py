"""Every worker flow by worker name: what `nightshift run` and the deployments dispatch on."""

from __future__ import annotations

from typing import Any

from flows.analysis import ANALYSIS_FLOWS
from nightshift.errors import ConfigError

ANALYSIS: dict[str, Any] = dict(ANALYSIS_FLOWS)


def all_flows() -> dict[str, Any]:
    from flows.codechange import CODECHANGE_FLOWS
    from flows.local import LOCAL_FLOWS

    return {**ANALYSIS, **LOCAL_FLOWS, **CODECHANGE_FLOWS}


def is_codechange(worker: str) -> bool:
    from flows.codechange import CODECHANGE_FLOWS

    return worker in CODECHANGE_FLOWS


def flow_for(worker: str) -> Any:
    flows = all_flows()
    if worker not in flows:
        raise ConfigError(f"unknown worker {worker!r}; known: {', '.join(sorted(flows))}")
    return flows[worker]
