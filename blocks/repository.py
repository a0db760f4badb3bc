"""`RepositoryTarget`: a repository the code-change workers may work on, saved once in Prefect.

    RepositoryTarget(url="https://github.com/acme/shop.git", base_branch="main",
                     test_command="make test", token=SecretStr("ghp_...")).save("shop")

The token is a `SecretStr`: Prefect stores it encrypted and shows it obfuscated; nightshift hands it to
git through the environment (never argv, the URL, logs or artifacts) and to the GitHub API.
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from nightshift.codechange.target import ChangeTarget


class RepositoryTarget(Block):
    """A repository for nightshift's code-change workers (feature, bugfix, test, docs, refactor-change, review)."""

    _block_type_name = "Repository Target"
    _block_type_slug = "nightshift-repository-target"
    _description = "A repository nightshift's code-change workers clone, change, test and push to."

    url: str = Field(description="Repository URL (https, ssh, file) or a path on the worker's machine.")
    base_branch: str | None = Field(
        default=None, description="Branch to start from and open pull requests against; empty: the default branch."
    )
    test_command: str | None = Field(
        default=None, description="Shell command that runs the tests in the clone, e.g. `make test`."
    )
    test_timeout_s: float = Field(default=900.0, gt=0, description="Seconds before a test run is stopped.")
    token: SecretStr | None = Field(
        default=None, description="Token for https pushes and the GitHub API (pull requests, review comments)."
    )

    def target(self) -> ChangeTarget:
        return ChangeTarget(
            repository=self.url,
            base_branch=self.base_branch,
            test_command=self.test_command,
            test_timeout_s=self.test_timeout_s,
            token=self.token,
        )
