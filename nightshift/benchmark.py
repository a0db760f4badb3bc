"""The benchmark worker: run the repository's benchmark (or test) command, keep a trend, flag regressions.

The command comes from `.nightshift.toml` (`[benchmark] command = "..."`, `repeat`, `threshold`),
defaulting to `python -m pytest -q` when the repository has tests. Each run measures the wall time of
`repeat` executions (through `nightshift.process`, with a timeout); the median is compared with the
median of the previous runs' medians, and a slowdown beyond `threshold` (default 20 %) is a finding.
History: `results/<repo-key>/benchmark/history.json`. The trend plot is an SVG (no plotting library).
"""

from __future__ import annotations

import base64
import shlex
import statistics
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from nightshift.context.paths import resolve_repo
from nightshift.errors import ConfigError
from nightshift.findings import Finding, Severity
from nightshift.local.models import LocalResult, ToolInfo, local_banner, python_tool
from nightshift.process import run_command
from nightshift.results import repo_key, results_dir


class BenchmarkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str | None = Field(default=None, description="shell-free command line, split with shlex")
    repeat: int = Field(default=3, ge=1, le=50)
    threshold: float = Field(default=0.20, gt=0, description="slowdown ratio that counts as a regression")
    timeout_s: float = Field(default=900, gt=0)


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime
    command: str
    durations_s: list[float]
    median_s: float
    ok: bool


class History(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples: list[Sample] = Field(default_factory=list)


def load_config(repo: Path) -> BenchmarkConfig:
    path = repo / ".nightshift.toml"
    if not path.is_file():
        return BenchmarkConfig()
    try:
        data = tomllib.loads(path.read_text()).get("benchmark", {})
        return BenchmarkConfig.model_validate(data)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: invalid [benchmark] settings: {exc}") from exc


def default_command(repo: Path) -> str:
    if any((repo / name).exists() for name in ("tests", "test", "pytest.ini", "conftest.py")):
        return f"{sys.executable} -m pytest -q -x -p no:cacheprovider"
    raise ConfigError(
        f'{repo}: no benchmark configured and no tests found; set [benchmark] command = "..." in .nightshift.toml'
    )


def trend_svg(medians: list[float], width: int = 480, height: int = 140) -> str:
    pad = 20
    top = max(medians) * 1.1 or 1.0
    step = (width - 2 * pad) / max(1, len(medians) - 1)
    points = " ".join(
        f"{pad + i * step:.1f},{height - pad - (m / top) * (height - 2 * pad):.1f}" for i, m in enumerate(medians)
    )
    dots = "".join(
        f'<circle cx="{pad + i * step:.1f}" cy="{height - pad - (m / top) * (height - 2 * pad):.1f}" r="3"/>'
        for i, m in enumerate(medians)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">'
        f'<rect width="100%" height="100%" fill="white"/>'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="2" points="{points}"/>'
        f'<g fill="#2563eb">{dots}</g>'
        f'<text x="{pad}" y="14">median wall time per run (s), max {max(medians):.2f}</text></svg>'
    )


def run_benchmark(repo: Path) -> LocalResult:
    root = resolve_repo(repo)
    config = load_config(root)
    command = config.command or default_command(root)
    argv = shlex.split(command)
    durations: list[float] = []
    ok = True
    for _ in range(config.repeat):
        try:
            result = run_command(argv, cwd=root, timeout_s=config.timeout_s)
        except FileNotFoundError as exc:
            raise ConfigError(f"benchmark command not found: {argv[0]!r} ({command})") from exc
        durations.append(round(result.duration_s, 4))
        ok = ok and result.returncode == 0 and result.stop_reason == "exited"
    median = statistics.median(durations)
    history_path = results_dir(repo_key(root), "benchmark") / "history.json"
    history = History.model_validate_json(history_path.read_text()) if history_path.is_file() else History()
    previous = [s.median_s for s in history.samples if s.ok and s.command == command]
    baseline = statistics.median(previous) if previous else None
    history.samples.append(Sample(at=datetime.now(UTC), command=command, durations_s=durations, median_s=median, ok=ok))
    history_path.parent.mkdir(parents=True, exist_ok=True)
    history_path.write_text(history.model_dump_json(indent=2))

    findings: list[Finding] = []
    change = (median / baseline - 1) if baseline else None
    if not ok:
        findings.append(
            Finding(
                worker="benchmark",
                rule="benchmark/failed",
                severity=Severity.high,
                title="benchmark command failed",
                description=f"`{command}` exited non-zero or timed out",
                source="local",
            )
        )
    if change is not None and change > config.threshold:
        findings.append(
            Finding(
                worker="benchmark",
                rule="benchmark/regression",
                severity=Severity.medium,
                title=f"slower by {change:.0%} than the baseline",
                description=f"median {median:.3f} s vs baseline {baseline:.3f} s (threshold {config.threshold:.0%})",
                source="local",
            )
        )
    medians = [s.median_s for s in history.samples if s.command == command]
    svg = trend_svg(medians)
    (history_path.parent / "trend.svg").write_text(svg)
    image = base64.b64encode(svg.encode()).decode()
    method = f"ran `{command}` {config.repeat} time(s) in the repository and measured wall time."
    tools: list[ToolInfo] = [python_tool()]
    verdict = (
        "first run: no baseline yet"
        if change is None
        else f"{change:+.1%} vs baseline {baseline:.3f} s" + (" — **regression**" if change > config.threshold else "")
    )
    summary = "\n\n".join(
        [
            local_banner(method, tools),
            f"## Benchmark\n\nMedian **{median:.3f} s** ({verdict}); {'all runs passed' if ok else 'a run FAILED'}.",
            f"![trend](data:image/svg+xml;base64,{image})",
            f"Trend over {len(medians)} run(s); history in `{history_path}`.",
        ]
    )
    rows = [
        {"at": s.at.isoformat(), "median_s": s.median_s, "runs": len(s.durations_s), "ok": s.ok}
        for s in history.samples
        if s.command == command
    ]
    return LocalResult(
        worker="benchmark",
        method=method,
        tools=tools,
        findings=findings,
        tables={"trend": rows},
        summary_markdown=summary,
        report={"median_s": median, "baseline_s": baseline, "change": change, "ok": ok, "command": command},
    )
