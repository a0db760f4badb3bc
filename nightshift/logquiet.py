"""Run logs that show the cause, not the plumbing.

Prefect logs every failed task and flow run with its traceback at ERROR. For the errors nightshift
raises on purpose (`NightshiftError`: a timeout, a refused budget, a bad glob) the message already says
what happened and what to change, so `install` keeps those records' one-line message and sends the
traceback to the DEBUG logger `nightshift.tracebacks`. Unexpected exceptions keep their traceback.
Plugins that log at ERROR/WARNING about their own optional parts (stevedore about bandit's `sarif`
formatter) are quietened to CRITICAL.
"""

from __future__ import annotations

import logging

from nightshift.errors import NightshiftError

RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs", "prefect.flow_engine", "prefect.task_engine")
NOISY_PLUGIN_LOGGERS = ("stevedore.extension", "stevedore._cache")
tracebacks = logging.getLogger("nightshift.tracebacks")


class KnownErrorsOneLine(logging.Filter):
    """Drops the traceback of a `NightshiftError` from a record (after logging it at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, NightshiftError):
            if tracebacks.isEnabledFor(logging.DEBUG):
                tracebacks.debug("traceback of: %s", record.getMessage(), exc_info=record.exc_info)
            record.exc_info = None
            record.exc_text = None
        return True


_FILTER = KnownErrorsOneLine()


def install() -> None:
    """Idempotent: the filter on Prefect's run loggers, plugin noise off."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for name in NOISY_PLUGIN_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
