"""`nightshift`: the command for people.

nightshift workers                    the catalogue (mode, schedule, priority, sandbox, model)
nightshift run <worker> [--repo P]    run one worker now, print its artifact keys and UI links
nightshift up | down | status         the server-backed main job (see nightshift.ops)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from nightshift.cancellation import install_signal_handlers
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
    parameters: dict[str, Any]
    if registry.is_codechange(args.worker):
        if not args.task and args.worker != "review":
            raise ConfigError(f'{args.worker} needs --task "what to do"')
        parameters = {"task": args.task or "", "repository": args.repository or str(Path(args.repo).resolve()),
                      "permission_level": args.permission_level}  # fmt: skip
        if args.base_branch:
            parameters["base_branch"] = args.base_branch
        if args.test_command:
            parameters["test_command"] = args.test_command
    else:
        parameters = {"repo": str(Path(args.repo).resolve())}
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


def _stack_env(args: argparse.Namespace) -> Any:
    """The stack of `up`/`down`/`status`, its API, home and state directory exported before prefect loads."""
    if getattr(args, "state_dir", None):
        os.environ["NIGHTSHIFT_STATE_DIR"] = str(Path(args.state_dir).expanduser().resolve())
    from nightshift.ops import Stack

    for service in ("EventsWorker", "APILogWorker"):  # their "Still processing items" at exit is noise here
        logging.getLogger(service).setLevel(logging.ERROR)
    stack = Stack(port=getattr(args, "port", None))
    for name in ("PREFECT_API_URL", "PREFECT_HOME", "NIGHTSHIFT_STATE_DIR"):
        os.environ[name] = stack.env()[name]
    return stack


def cmd_up(args: argparse.Namespace) -> int:
    from nightshift.ops import UpOptions, up

    stack = _stack_env(args)
    options = UpOptions(
        port=args.port, repo=Path(args.repo) if args.repo else None, install=not args.no_install,
        run_audit=not args.no_run, force=args.force, wait_s=args.wait, redeploy=args.redeploy,
        concurrency=args.concurrency,
    )  # fmt: skip
    return up(options, stack=stack)


def cmd_down(args: argparse.Namespace) -> int:
    from nightshift.ops import down

    return down(stack=_stack_env(args))


def cmd_status(args: argparse.Namespace) -> int:
    from nightshift.ops import status

    return status(stack=_stack_env(args))


def _add_stack_args(parser: argparse.ArgumentParser, *, port: bool = True) -> None:
    parser.add_argument("--state-dir", help="state directory (default: $NIGHTSHIFT_STATE_DIR or ~/.local/share/...)")
    if port:
        parser.add_argument("--port", type=int, help="Prefect server port (default: the running one's, or 4200)")


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
    change = run.add_argument_group("code-change workers (feature, bugfix, test, docs, refactor-change, review)")
    change.add_argument("--task", help="what the agent should do")
    change.add_argument("--repository", help="repository URL or path (default: --repo)")
    change.add_argument("--base-branch", help="branch to start from (default: the remote's default)")
    change.add_argument("--test-command", help="command that runs the repository's tests")
    change.add_argument(
        "--permission-level", choices=["autonomous", "supervised", "human-required"], default="supervised"
    )
    run.set_defaults(func=cmd_run)
    up = commands.add_parser(
        "up",
        help="start a Prefect server, deploy every worker, start a worker, run the audit",
        description="Install what is missing, start a Prefect server (SQLite) and a process worker, bootstrap "
        "the pool, queues, limits and blocks, `prefect deploy --all`, trigger audit/default and wait for it. "
        "Idempotent: what runs is reused.",
    )
    _add_stack_args(up)
    up.add_argument("--repo", help="repository the deployments work on (default: the last one, else this checkout)")
    up.add_argument("--no-install", action="store_true", help="do not run scripts/setup.sh when something is missing")
    up.add_argument("--no-run", action="store_true", help="do not trigger the audit run")
    up.add_argument("--force", action="store_true", help="the audit run ignores a fresh earlier result")
    up.add_argument("--wait", type=float, default=1800.0, help="seconds to wait for the audit run (default 1800)")
    up.add_argument("--redeploy", action="store_true", help="run prefect deploy --all even when nothing changed")
    up.add_argument("--concurrency", type=int, help="agent runs alive at once (default 2)")
    up.set_defaults(func=cmd_up)
    down = commands.add_parser("down", help="stop the server and worker `nightshift up` started")
    _add_stack_args(down, port=False)
    down.set_defaults(func=cmd_down)
    status = commands.add_parser("status", help="deployments: mode, sandbox, schedule, last and next run, cost today")
    _add_stack_args(status, port=False)
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    install_signal_handlers()  # SIGTERM/SIGINT stop the agents before this process ends
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # An ephemeral API on a fresh PREFECT_HOME migrates its database first: ~25 s on 2 busy cores.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"nightshift: {exc}", file=sys.stderr)
        return 2
    except NightshiftError as exc:
        print(f"nightshift: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nightshift: interrupted; the agents were stopped", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
