"""`SandboxProfile`: what an agent run may touch, one document per profile of the worker catalogue.

The bootstrap saves the catalogue's three profiles as `strict`, `permissive` and `disabled`, describing
what nightshift enforces for each (`nightshift.analysis.agent_request` and `workspace`); the container
fields apply to runs on the Docker work pool (docker/README.md). Each deployment's `sandbox:<profile>` tag
names the document that applies to it.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from prefect.blocks.core import Block
from pydantic import Field

from nightshift.catalogue import READ_ONLY_TOOLS, WRITE_TOOLS
from nightshift.catalogue import SandboxProfile as ProfileName


class SandboxProfile(Block):
    """How tightly an agent run is confined: its tools, where it may write, its container."""

    _block_type_name: ClassVar[str] = "Nightshift Sandbox Profile"
    _block_type_slug: ClassVar[str] = "nightshift-sandbox-profile"
    _description: ClassVar[str] = (
        "What an agent run of a nightshift worker may touch: the tools it is offered, whether it reads the "
        "repository itself or works on a disposable copy, and, on the Docker work pool, its container."
    )

    profile: ProfileName = Field(description="The catalogue profile this document describes.")
    tools: list[str] | None = Field(
        default=None, description="Tools offered to the agent. Empty: every tool of the CLI."
    )
    disallowed_tools: list[str] = Field(
        default_factory=list, description="Tools refused even if the model asks for them."
    )
    permission_mode: Literal["default", "acceptEdits"] = Field(
        description="`default`: edits are denied headless. `acceptEdits`: edits are applied (to the copy)."
    )
    disposable_workspace: bool = Field(
        description="Work on a throwaway copy of the repository, deleted after the run (the repository itself "
        "is never written)."
    )
    container_network: Literal["none", "host"] = Field(
        default="none",
        description="Docker pool only. `none`: no network; the model API is reached through a unix-socket bridge.",
    )
    docker_image: str = Field(default="nightshift/worker:dev", description="Docker pool only: the worker image.")
    memory: str = Field(default="2g", description="Docker pool only: container memory limit (docker --memory).")
    cpus: float = Field(default=1.0, gt=0, description="Docker pool only: container CPU limit (docker --cpus).")


def catalogue_profiles() -> dict[ProfileName, SandboxProfile]:
    """The three profiles the worker catalogue refers to, as nightshift enforces them."""
    return {
        "strict": SandboxProfile(
            profile="strict",
            tools=list(READ_ONLY_TOOLS),
            disallowed_tools=[*WRITE_TOOLS, "Bash"],
            permission_mode="default",
            disposable_workspace=False,
        ),
        "permissive": SandboxProfile(profile="permissive", permission_mode="acceptEdits", disposable_workspace=True),
        "disabled": SandboxProfile(
            profile="disabled", permission_mode="acceptEdits", disposable_workspace=True, container_network="host"
        ),
    }
