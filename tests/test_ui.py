"""A real browser on the Prefect UI: headless Chromium (the Debian package scripts/setup.sh installs)
renders the page of the artifact the audit run of `nightshift up` published; the test reads the rendered
text and keeps a screenshot under test-output/ui/."""

from __future__ import annotations

import html
import re
import subprocess
import tempfile
from pathlib import Path

import pytest
from test_deployments import UP_FINDING, StackInfo, screenshot_dir, stack  # noqa: F401 - the session's stack

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")


def chromium(url: str, *mode: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run; `--virtual-time-budget` lets the single-page app fetch and render."""
    with tempfile.TemporaryDirectory(prefix="nightshift-chromium-") as profile:
        argv = [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            "--hide-scrollbars", "--window-size=1400,1000", "--virtual-time-budget=20000", *mode, url,
        ]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def visible_text(dom: str) -> str:
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body))).strip()


def test_the_ui_renders_the_audit_report_artifact(stack: StackInfo) -> None:  # noqa: F811
    assert CHROMIUM.exists(), "chromium missing: run scripts/setup.sh"
    match = re.search(rf"artifact:  ({re.escape(stack.ui_url)}/artifacts/artifact/[0-9a-f-]{{36}})", stack.up_output)
    assert match, stack.up_output
    url = match.group(1)

    dom = chromium(url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = visible_text(dom.stdout)
    key = stack.report_key("audit")
    assert key in text  # the page is the artifact's, rendered by the app (not the empty HTML shell)
    assert f"audit: {stack.repo}" in text
    assert "claude-code haiku" in text  # the agent ran (not the local fallback)
    assert "Risk score 72/100" in text
    assert UP_FINDING in text

    shot = screenshot_dir() / "audit-report-artifact.png"
    shot.unlink(missing_ok=True)
    taken = chromium(url, f"--screenshot={shot}")
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
