"""What a worker asks for: `ContextSpec` (globs, budget, limits, ranking, chunking)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from nightshift.context.ranking import RankingPolicy

DEFAULT_BUDGET_TOKENS = 100_000
DEFAULT_MAX_FILE_BYTES = 256 * 1024


class ContextSpec(BaseModel):
    """Globs are checked (and refused with `ContextError`) when the context is gathered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    include: tuple[str, ...] = Field(("**/*",), min_length=1, description="globs relative to the repo root")
    exclude: tuple[str, ...] = ()
    budget_tokens: int = Field(DEFAULT_BUDGET_TOKENS, gt=0, description="per prompt (per chunk), estimated")
    max_file_bytes: int = Field(DEFAULT_MAX_FILE_BYTES, gt=0, description="larger files are skipped unread")
    ranking: RankingPolicy = Field(default_factory=RankingPolicy)
    chunking: bool = Field(False, description="split everything selected into budget-sized chunks (map-reduce)")
    max_chunks: int | None = Field(None, ge=1, description="with chunking: at most this many chunks")
    skip_vendored: bool = Field(True, description="skip node_modules, vendor, dist, build, lock files...")
