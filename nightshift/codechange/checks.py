"""The repository's test command: checked before the agent runs, run after each agent turn.

The command is a shell line (`make test`, `cd app && npm test`) run by `/bin/sh -c` in the clone,
in its own process group with a timeout, through `nightshift.process.run_command`. It sees the
worker's environment minus anything secret-looking (API keys, tokens, Prefect and agent settings):
the code under test is the repository's, not ours to trust.

"Not found" is told apart from "failed": the command's program is looked up before the agent spends
anything, and a shell exit 126/127 with "not found"/"Permission denied" is a `TestCommandError`
(bad configuration), never failures to feed back to the agent.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from nightshift.agents.base import is_secret_env_name
from nightshift.context.secrets import redact
from nightshift.errors import TestCommandError
from nightshift.process import run_command

SHELL = "/bin/sh"
OUTPUT_TAIL_CHARS = 6000
_PRIVATE_PREFIXES = ("PREFECT_", "ANTHROPIC_", "NIGHTSHIFT_", "CLAUDE_", "GIT_CONFIG_", "GITHUB_")
_SHELL_WORDS = frozenset(
    {"cd", "export", "set", "test", "[", "true", "false", ":", ".", "source", "exec", "env", "if", "for", "(", "{"}
)


class TestRun(BaseModel):
    """One run of the test command."""

    __test__ = False
    model_config = ConfigDict(extra="forbid")

    iteration: int = Field(ge=1)
    command: str
    passed: bool
    exit_code: int | None
    timed_out: bool = False
    duration_s: float
    output: str = Field(description="tail of stdout then stderr, secrets redacted")

    def short(self) -> str:
        verdict = "passed" if self.passed else ("timed out" if self.timed_out else f"failed (exit {self.exit_code})")
        return f"iteration {self.iteration}: `{self.command}` {verdict} in {self.duration_s:.1f}s"


def suite_env(parent: dict[str, str] | None = None) -> dict[str, str]:
    """The worker's environment without secrets or our own settings, and without bytecode files."""
    source = dict(os.environ if parent is None else parent)
    env = {
        name: value
        for name, value in source.items()
        if not is_secret_env_name(name) and not name.upper().startswith(_PRIVATE_PREFIXES)
    }
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env |= {"PYTHONDONTWRITEBYTECODE": "1", "CI": "1"}
    return env


def _program(command: str) -> str | None:
    """The program a simple command line starts, or None when the shell decides (builtins, syntax)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    words = [w for w in words if not ("=" in w and w.split("=", 1)[0].isidentifier())] or [""]
    first = words[0]
    return None if not first or first in _SHELL_WORDS else first


def check_test_command(command: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    """Raise `TestCommandError` when the command's program does not exist: before any agent cost."""
    program = _program(command)
    if program is None:
        return
    if "/" in program:
        path = (cwd / program) if not Path(program).is_absolute() else Path(program)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise TestCommandError(
                f"test command not runnable: {program} (from `{command}`) is not an executable file in the clone",
                command=command,
            )
        return
    search = (env or suite_env()).get("PATH", "")
    if shutil.which(program, path=search) is None:
        raise TestCommandError(
            f"test command not found: {program!r} (from `{command}`) is not on the PATH of the worker",
            command=command,
        )


def run_tests(command: str, cwd: Path, *, iteration: int, timeout_s: float) -> TestRun:
    """Run the test command once; a failing suite is a result, a missing program is an error."""
    result = run_command([SHELL, "-c", command], cwd=cwd, env=suite_env(), timeout_s=timeout_s)
    stderr = result.stderr_tail
    if result.returncode in (126, 127) and ("not found" in stderr or "Permission denied" in stderr):
        raise TestCommandError(
            f"test command `{command}` could not start (exit {result.returncode}): {stderr.strip()[-300:]}",
            command=command,
        )
    combined = result.stdout.rstrip() + ("\n--- stderr ---\n" + stderr.rstrip() if stderr.strip() else "")
    tail = combined[-OUTPUT_TAIL_CHARS:]
    return TestRun(
        iteration=iteration,
        command=command,
        passed=result.stop_reason == "exited" and result.returncode == 0,
        exit_code=result.returncode,
        timed_out=result.stop_reason == "timeout",
        duration_s=round(result.duration_s, 3),
        output=redact(tail, "test-output.txt")[0],
    )
