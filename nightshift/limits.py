"""The global concurrency limit around every agent run: `agent-<backend>`, default 2 slots.

The limit lives on the Prefect server (`prefect gcl ls` shows it); it is created on first use when
missing, so a fresh server or the test harness enforces it too. `NIGHTSHIFT_AGENT_CONCURRENCY` sets the
size a missing limit is created with; an existing limit is never resized here (the bootstrap does).

Before a slot is even asked for, the budget guard (`nightshift.budget.admit`) counts the launch or
refuses it with `BudgetRefusedError`: a refused run never waits in the queue for a slot.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from nightshift import budget

DEFAULT_AGENT_CONCURRENCY = 2
_ensured: set[str] = set()
_lock = threading.Lock()


def limit_name(backend: str) -> str:
    return f"agent-{backend}"


def ensure_limit(name: str, limit: int) -> None:
    with _lock:
        if name in _ensured:
            return
        with get_client(sync_client=True) as client:
            try:
                client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                with suppress(ObjectAlreadyExists):
                    client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
        _ensured.add(name)


@contextmanager
def agent_slot(backend: str) -> Iterator[None]:
    """Hold one slot of the backend's limit for the duration of an agent run (after the budget guard's yes)."""
    budget.admit(backend)
    name = limit_name(backend)
    ensure_limit(name, int(os.environ.get("NIGHTSHIFT_AGENT_CONCURRENCY", DEFAULT_AGENT_CONCURRENCY)))
    with concurrency(name, occupy=1, strict=True, lease_duration=3600):
        yield
