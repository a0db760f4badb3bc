"""`nightshift`: the command for people.

nightshift workers                    the catalogue (mode, schedule, priority, sandbox, model)
nightshift run <worker> [--repo P]    run one worker now, print its artifact keys and UI links
nightshift up | down | status         the server-backed main job (see nightshift.ops)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from nightshift.catalogue import CATALOGUE
from nightshift.errors import ConfigError, NightshiftError


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += [
        "  ".join(str(r.get(c, "") if r.get(c) is not None else "-").ljust(widths[c]) for c in columns) for r in rows
    ]
    return "\n".join(lines)


def cmd_workers(_: argparse.Namespace) -> int:
    rows = [
        {
            "worker": s.name,
            "mode": s.mode,
            "schedule": s.schedule_label,
            "priority": s.priority,
            "enabled": "yes" if s.enabled else "no",
            "sandbox": s.sandbox,
            "model": s.model,
            "output": s.output,
            "description": s.description,
        }
        for s in CATALOGUE.values()
    ]
    print(
        _table(rows, ["worker", "mode", "schedule", "priority", "enabled", "sandbox", "model", "output", "description"])
    )
    return 0


def ui_url() -> str | None:
    """The Prefect UI base URL, when a server (not the ephemeral API) is configured."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    if ui:
        return str(ui).rstrip("/")
    api = PREFECT_API_URL.value()
    return str(api).rstrip("/").removesuffix("/api") if api else None


def cmd_run(args: argparse.Namespace) -> int:
    from flows import registry

    flow = registry.flow_for(args.worker)
    parameters: dict[str, Any] = {"repo": str(Path(args.repo).resolve())}
    if args.worker in registry.ANALYSIS:
        parameters |= {"force": args.force, "mode": args.mode}
    state = flow(**parameters, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    result: Any = state.result(raise_on_failure=False)
    ui = ui_url()
    print(f"{args.worker}: {state.name}")
    if isinstance(result, dict):
        print(f"status: {result.get('status')}")
        if result.get("mode") == "local":
            print("mode: local (no AI agent ran; see the report for why and what ran instead)")
        for kind, key in (result.get("artifacts") or {}).items():
            link = f"  {ui}/artifacts/key/{key}" if ui else ""
            print(f"artifact {kind}: {key}{link}")
        if result.get("run_dir"):
            print(f"files: {result['run_dir']}")
    elif isinstance(result, BaseException):
        print(f"error: {result}", file=sys.stderr)
    if ui:
        print(f"flow run: {ui}/runs/flow-run/{flow_run_id}")
    else:
        print("flow run: ephemeral Prefect API (no UI); `nightshift up` starts a server with the UI")
    return 0 if state.is_completed() else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nightshift", description="Headless coding agents as Prefect workers.")
    commands = parser.add_subparsers(dest="command", required=True)
    workers = commands.add_parser("workers", help="list the worker catalogue")
    workers.set_defaults(func=cmd_workers)
    run = commands.add_parser("run", help="run one worker now")
    run.add_argument("worker", help="worker type, e.g. audit (see `nightshift workers`)")
    run.add_argument("--repo", default=".", help="repository to work on (default: current directory)")
    run.add_argument("--force", action="store_true", help="run even when a fresh result exists")
    run.add_argument(
        "--mode", choices=["auto", "agent", "local"], default="auto", help="agent, local fallback, or auto"
    )
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"nightshift: {exc}", file=sys.stderr)
        return 2
    except NightshiftError as exc:
        print(f"nightshift: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
