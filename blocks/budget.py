"""`Budget`: the global limits of the budget guard (`nightshift.budget`), editable in the Prefect UI.

    Budget(max_launches_per_hour=20, max_usd_per_day=10).save("default")

The guard reads the document named by `NIGHTSHIFT_BUDGET_BLOCK` (prefect.yaml sets `default`, which the
bootstrap creates). Without such a document the guard stays out of the way (plain local runs, tests).
"""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field

from nightshift.budget import BudgetLimits

_DEFAULTS = BudgetLimits()


class Budget(Block):
    """Caps on agent launches and spend for all nightshift workers together, and the cool-off after a quota error."""

    _block_type_name: ClassVar[str] = "Nightshift Budget"
    _block_type_slug: ClassVar[str] = "nightshift-budget"
    _description: ClassVar[str] = (
        "Global caps on agent launches per hour and per day and on USD per day for all nightshift workers, "
        "and how long every agent run pauses after a quota or usage-limit error (HTTP 429). A run the guard "
        "refuses ends as 'Refused' with the reason; it is not retried."
    )

    enabled: bool = Field(
        default=_DEFAULTS.enabled, description="Off: no caps and no cool-off (spend is still recorded)."
    )
    max_launches_per_hour: int | None = Field(
        default=_DEFAULTS.max_launches_per_hour,
        ge=0,
        title="Max launches per hour",
        description="Agent CLI launches allowed in any rolling 60 minutes, all workers together. Empty: no cap.",
    )
    max_launches_per_day: int | None = Field(
        default=_DEFAULTS.max_launches_per_day,
        ge=0,
        title="Max launches per day",
        description="Agent CLI launches allowed per UTC day, all workers together. Empty: no cap.",
    )
    max_usd_per_day: float | None = Field(
        default=_DEFAULTS.max_usd_per_day,
        ge=0,
        title="Max USD per day",
        description="No new agent launch once the runs of this UTC day have cost this much (as reported by "
        "the CLI; runs already going may end a little above it). Empty: no cap.",
    )
    cooloff_minutes: float = Field(
        default=_DEFAULTS.cooloff_minutes,
        ge=0,
        title="Cool-off minutes",
        description="After an API quota or usage-limit error, refuse every agent launch for this long (or "
        "until the reset time the API announced, when it did).",
    )

    def limits(self) -> BudgetLimits:
        return BudgetLimits(
            enabled=self.enabled,
            max_launches_per_hour=self.max_launches_per_hour,
            max_launches_per_day=self.max_launches_per_day,
            max_usd_per_day=self.max_usd_per_day,
            cooloff_minutes=self.cooloff_minutes,
        )
