"""Sandbox settings and the labels every nightshift container carries."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BackendChoice = Literal["auto", "docker", "process"]

# Labels: `managed` marks everything nightshift creates (the worker image carries it too, so every
# container started from the image inherits it); `owner` says which live process is responsible.
LABEL_MANAGED = "io.nightshift.managed"
LABEL_FLOW_RUN = "io.nightshift.flow-run"
LABEL_RUN = "io.nightshift.run"
LABEL_PROFILE = "io.nightshift.profile"
LABEL_OWNER = "io.nightshift.owner"
LABEL_POOL = "io.nightshift.pool"
MANAGED_SELECTOR = f"{LABEL_MANAGED}=true"

CONTAINER_UID = 10001  # the image's user `nightshift`
CONTAINER_WORKDIR = "/workspace"
CONTAINER_HOME = "/home/nightshift"
CONTAINER_SOCKET_DIR = "/run/ns"
CONTAINER_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
DEFAULT_IMAGE = "nightshift/worker:dev"


def _default_ca_bundle() -> Path | None:
    for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


class SandboxSettings(BaseModel):
    """How containers are run. Environment: NIGHTSHIFT_SANDBOX_* and NIGHTSHIFT_IMAGE."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: BackendChoice = Field(
        default="auto", description="auto: docker when the engine answers and the image exists, else process"
    )
    image: str = DEFAULT_IMAGE
    docker_cli: str = Field(default="docker", description="the docker client executable")
    memory: str = Field(default="2g", description="--memory (and --memory-swap: no swap)")
    cpus: float = Field(default=1.0, gt=0, description="--cpus")
    pids_limit: int = Field(default=256, ge=32, description="--pids-limit (threads count too)")
    tmp_size: str = Field(default="256m", description="size of the /tmp tmpfs")
    user: str | None = Field(
        default=None, description="uid:gid in the container; None: 10001:10001 when root, else the caller's"
    )
    ca_bundle: Path | None = Field(
        default_factory=_default_ca_bundle, description="mounted read-only for an HTTPS model API"
    )
    upstream: str | None = Field(default=None, description="HOST:PORT the host end connects to; None: from the API URL")
    api_url_env: str = Field(default="ANTHROPIC_BASE_URL", description="the CLI's variable for the API URL")
    default_api_url: str = "https://api.anthropic.com"
    warm_pool: int = Field(default=0, ge=0, description="started containers kept ready (root only)")
    state_root: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "nightshift-sandbox",
        description="host directories of runs (sockets, pool mounts), one folder per owner process",
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SandboxSettings:
        env = os.environ if environ is None else environ
        fields: dict[str, object] = {}
        names = {
            "NIGHTSHIFT_SANDBOX_BACKEND": "backend",
            "NIGHTSHIFT_IMAGE": "image",
            "NIGHTSHIFT_SANDBOX_MEMORY": "memory",
            "NIGHTSHIFT_SANDBOX_CPUS": "cpus",
            "NIGHTSHIFT_SANDBOX_PIDS": "pids_limit",
            "NIGHTSHIFT_SANDBOX_USER": "user",
            "NIGHTSHIFT_SANDBOX_UPSTREAM": "upstream",
            "NIGHTSHIFT_SANDBOX_WARM_POOL": "warm_pool",
        }
        for name, field in names.items():
            if env.get(name):
                fields[field] = env[name]
        if "NIGHTSHIFT_SANDBOX_CA_BUNDLE" in env:
            fields["ca_bundle"] = env["NIGHTSHIFT_SANDBOX_CA_BUNDLE"] or None
        return cls.model_validate(fields)
