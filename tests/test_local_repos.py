"""Real git repositories for the local-analysis tests, built with GitPython in temporary directories.

`make_sample_repo` plants known problems at known places: a vulnerable module, secrets in a config file
and in a committed `.env`, undocumented and untested functions, a duplicated block, a complex function,
slow loop patterns, an import cycle (and a lazy one), and a history where a.py and b.py always change
together. `line_of` finds the line of a marker so the tests check exact lines, not guesses.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import git

AUTHOR = git.Actor("Test", "test@example.com")

# A realistic, non-filler access key id (AWS's documented example id is filler-free and well known).
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
ENV_SECRET = "q8Zr2LmX7vN4tY1pKs9W"

SAMPLE_FILES: dict[str, str] = {
    "pyproject.toml": '[project]\nname = "shop"\nversion = "0.1.0"\n',
    "README.md": "# shop\n\nA sample shop.\n",
    "config/settings.ini": f"[aws]\naws_access_key_id = {AWS_KEY_ID}\nregion = eu-west-1\n",
    ".env": f"PAYMENT_GATEWAY_SECRET={ENV_SECRET}\n",
    "src/shop/__init__.py": '"""The sample shop package."""\n',
    "src/shop/orders.py": """\
        \"\"\"Orders.\"\"\"
        from shop.billing import charge


        def place_order(amount):
            \"\"\"Place an order.\"\"\"
            return charge(amount)
        """,
    "src/shop/billing.py": """\
        \"\"\"Billing.\"\"\"
        from . import orders  # import cycle: orders imports billing


        def charge(amount):
            \"\"\"Charge an amount.\"\"\"
            return amount * 2


        def refund(amount):
            return orders.place_order(-amount)
        """,
    "src/shop/alpha.py": """\
        \"\"\"Alpha imports beta at import time.\"\"\"
        from shop import beta


        def a_value():
            \"\"\"A value.\"\"\"
            return beta.B
        """,
    "src/shop/beta.py": """\
        \"\"\"Beta imports alpha lazily: a cycle only through a function-level import.\"\"\"
        B = 1


        def use_alpha():
            \"\"\"Use alpha.\"\"\"
            from shop import alpha

            return alpha.a_value()
        """,
    "src/shop/risky.py": """\
        \"\"\"Deliberately unsafe code.\"\"\"
        import pickle
        import subprocess

        import yaml


        def run(cmd):
            \"\"\"Run a shell command.\"\"\"
            return subprocess.call(cmd, shell=True)  # MARK:shell


        def load_config(text):
            \"\"\"Load YAML.\"\"\"
            return yaml.load(text)  # MARK:yaml


        def load_blob(blob):
            \"\"\"Unpickle.\"\"\"
            return pickle.loads(blob)  # MARK:pickle


        def compute(expr):
            \"\"\"Evaluate.\"\"\"
            return eval(expr)  # MARK:eval
        """,
    "src/shop/util.py": """\
        import math


        def summarize(values):
            total = 0
            count = 0
            for value in values:
                if value is None:
                    continue
                total += value * 2
                count += 1
            mean = total / count if count else 0.0
            return {"total": total, "count": count, "mean": round(mean, 3), "sqrt": math.sqrt(total)}


        class Basket:
            \"\"\"A basket.\"\"\"

            def add(self, item):
                return item

            def _private(self):
                return None


        def grade(score):
            \"\"\"Many branches on purpose.\"\"\"
            if score > 90:
                return "A"
            elif score > 80:
                return "B"
            elif score > 70:
                return "C"
            elif score > 60:
                return "D"
            elif score > 50:
                return "E"
            elif score > 40 and score % 2 == 0:
                return "F"
            elif score > 30 or score == 0:
                return "G"
            elif score > 20:
                return "H"
            elif score > 10:
                return "I"
            elif score > 5:
                return "J"
            return "K"
        """,
    "src/shop/report.py": """\
        \"\"\"Reports.\"\"\"
        import math

        __all__ = ["build_report"]


        def build_report(rows):
            \"\"\"Build a report.\"\"\"
            acc = 0
            seen = 0
            for row in rows:
                if row is None:
                    continue
                acc += row * 2
                seen += 1
            mean = acc / seen if seen else 0.0
            return {"total": acc, "count": seen, "mean": round(mean, 3), "sqrt": math.sqrt(acc)}


        def helper_not_exported(x):
            return x
        """,
    "src/shop/slow.py": """\
        \"\"\"Slow patterns.\"\"\"
        import re


        def crunch(grid, words, queue):
            \"\"\"Crunch.\"\"\"
            seen = []
            text = ""
            for row in grid:  # MARK:outer
                for cell in row:
                    for item in cell:  # MARK:deep
                        if item in seen:  # MARK:membership
                            continue
                        seen.append(item)
            for word in words:
                text += word  # MARK:concat
                pattern = re.compile(word)  # MARK:regex
                pattern.match(text)
            while queue:
                queue.pop(0)  # MARK:pop
            return text
        """,
    "a.py": "A = 1\n",
    "b.py": "B = 1\n",
    "c.py": "C = 1\n",
    "tests/test_orders.py": """\
        from shop.orders import place_order


        def test_place_order():
            assert place_order(2) == 4
        """,
}


def write_files(root: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def commit(repo: git.Repo, files: Mapping[str, str], message: str) -> None:
    root = Path(repo.working_tree_dir or ".")
    write_files(root, files)
    repo.index.add(list(files))
    repo.index.commit(message, author=AUTHOR, committer=AUTHOR)


def make_repo(root: Path, files: Mapping[str, str], *history: tuple[str, Mapping[str, str]]) -> Path:
    """A git repository at `root`: a first commit holding `files`, then one commit per (message, files)."""
    root.mkdir(parents=True, exist_ok=True)
    with git.Repo.init(root) as repo:
        commit(repo, files, "initial")
        for message, changed in history:
            commit(repo, changed, message)
    return root


def make_sample_repo(root: Path) -> Path:
    """The sample repository, with a history in which a.py and b.py always change together."""
    return make_repo(
        root,
        SAMPLE_FILES,
        ("a and b", {"a.py": "A = 2\n", "b.py": "B = 2\n"}),
        ("a, b and c", {"a.py": "A = 3\n", "b.py": "B = 3\n", "c.py": "C = 3\n"}),
        ("c alone", {"c.py": "C = 4\n"}),
        ("a and b again", {"a.py": "A = 5\n", "b.py": "B = 5\n"}),
        ("docs", {"README.md": "# shop\n\nStill a sample shop.\n"}),
    )


def line_of(root: Path, path: str, marker: str) -> int:
    """1-based line of the first line of `path` containing `marker`."""
    for number, text in enumerate((root / path).read_text().splitlines(), start=1):
        if marker in text:
            return number
    raise AssertionError(f"{marker!r} not in {path}")


def test_sample_repo_history(tmp_path: Path) -> None:
    root = make_sample_repo(tmp_path / "shop")
    with git.Repo(root) as repo:
        messages = [c.message for c in repo.iter_commits()]
        assert messages == ["docs", "a and b again", "c alone", "a, b and c", "a and b", "initial"]
        assert not repo.is_dirty(untracked_files=True)
    assert line_of(root, "src/shop/risky.py", "MARK:shell") == 10
