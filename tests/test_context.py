"""gather_context end to end, on small real repositories built in tmp dirs (real `git init`)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from nightshift.context import (
    ContextBundle,
    ContextSignals,
    ContextSpec,
    RankingPolicy,
    SkipCode,
    files,
    gather_context,
    warm_index,
)
from nightshift.context import _load as load_file
from nightshift.context.files import BINARY_REASON, Listing, list_files, scan, scan_listing, start_listing
from nightshift.context.index import HashIndex, repo_key
from nightshift.context.paths import compile_globs
from nightshift.errors import ContextError

OLD_NS = 1_600_000_000 * 10**9  # 2020: old enough for index entries to be trusted


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name, value in {"NAME": "Test", "EMAIL": "test@example.invalid"}.items():
        monkeypatch.setenv(f"GIT_AUTHOR_{name}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{name}", value)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout


def write(repo: Path, files: Mapping[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def make_repo(root: Path, files: Mapping[str, str | bytes], *, use_git: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write(root, files)
    if use_git:
        git(root, "init", "-q", "-b", "main")
        commit(root, "initial")
    return root


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)


def age_files(repo: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            os.utime(os.path.join(dirpath, name), ns=(OLD_NS, OLD_NS), follow_symlinks=False)


def paths(bundle: ContextBundle) -> list[str]:
    return [f.path for f in bundle.files]


def skipped(bundle: ContextBundle) -> dict[str, SkipCode]:
    return {s.path: s.code for s in bundle.skipped}


def code(n: int, name: str = "f") -> str:
    """n lines of plain Python."""
    return "".join(f"def {name}_{i}(x):\n    return x + {i}\n" for i in range(n // 2))


# -- paths and globs -----------------------------------------------------------------------


def test_missing_repository_is_a_context_error(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="does not exist") as caught:
        gather_context(tmp_path / "nope", ContextSpec())
    assert caught.value.path == str(tmp_path / "nope")


def test_repository_that_is_a_file_is_a_context_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ContextError, match="not a directory"):
        gather_context(tmp_path / "file", ContextSpec())


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("src/[abc.py", "never closed"),
        ("src/{a,b.py", "never closed"),
        ("src/a**b/*.py", "whole path segment"),
        ("", "empty"),
        ("src\\*.py", "backslash"),
        ("[z-a].py", "bad character class"),
    ],
)
def test_bad_glob_is_a_context_error(tmp_path: Path, pattern: str, message: str) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    with pytest.raises(ContextError, match=message) as caught:
        gather_context(repo, ContextSpec(include=("**/*.py", pattern)))
    assert caught.value.pattern == pattern


@pytest.mark.parametrize("pattern", ["../secrets/*", "src/../../x", "{..,src}/*.py", "**/../*"])
def test_dotdot_pattern_is_refused(tmp_path: Path, pattern: str) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    with pytest.raises(ContextError, match=r"'\.\.' segments are refused"):
        gather_context(repo, ContextSpec(include=(pattern,)))
    with pytest.raises(ContextError, match=r"'\.\.' segments are refused"):
        gather_context(repo, ContextSpec(exclude=(pattern,)))


@pytest.mark.parametrize("pattern", ["/etc/*", "~/.ssh/*", "C:/Windows/*", "{/etc,src}/*"])
def test_absolute_pattern_is_refused(tmp_path: Path, pattern: str) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    with pytest.raises(ContextError, match="absolute patterns are refused") as caught:
        gather_context(repo, ContextSpec(include=(pattern,)))
    assert caught.value.pattern == pattern


@pytest.mark.parametrize("use_git", [True, False], ids=["git", "walk"])
def test_symlink_escaping_the_repository_is_skipped_with_reason(tmp_path: Path, use_git: bool) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwords.txt").write_text("root:hunter2\n")
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n", "inner/target.py": "y = 2\n"}, use_git=False)
    (repo / "leak.txt").symlink_to(outside / "passwords.txt")
    (repo / "leakdir").symlink_to(outside, target_is_directory=True)
    (repo / "relative_leak.txt").symlink_to("../outside/passwords.txt")
    (repo / "inner_link.py").symlink_to("inner/target.py")
    if use_git:
        git(repo, "init", "-q")
        commit(repo, "links")

    bundle = gather_context(repo, ContextSpec())

    codes = skipped(bundle)
    assert codes["leak.txt"] == SkipCode.symlink
    assert codes["relative_leak.txt"] == SkipCode.symlink
    assert codes["leakdir"] == SkipCode.symlink
    reasons = {s.path: s.reason for s in bundle.skipped}
    assert "escapes the repository" in reasons["leak.txt"]
    assert "inner_link.py" in paths(bundle)  # a link inside the repository is fine
    assert "hunter2" not in bundle.model_dump_json()


def test_directory_replaced_by_outside_symlink_is_not_followed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"pkg/mod.py": "x = 1\n", "main.py": "y = 2\n"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "mod.py").write_text("STOLEN = True\n")
    (repo / "pkg" / "mod.py").unlink()
    (repo / "pkg").rmdir()
    (repo / "pkg").symlink_to(outside, target_is_directory=True)  # git still lists pkg/mod.py

    bundle = gather_context(repo, ContextSpec())

    assert skipped(bundle)["pkg/mod.py"] == SkipCode.symlink
    assert "STOLEN" not in bundle.model_dump_json()


# -- candidate files -----------------------------------------------------------------------


GITIGNORED = {
    ".gitignore": "*.log\n!keep.log\nbuild_out/\n/secret_dir\n",
    "sub/.gitignore": "local_*.py\n",
    "app.py": "print('app')\n",
    "debug.log": "noise\n",
    "keep.log": "kept\n",
    "build_out/gen.py": "generated = 1\n",
    "secret_dir/x.py": "hidden = 1\n",
    "sub/local_settings.py": "DEBUG = True\n",
    "sub/mod.py": "m = 1\n",
    "sub/secret_dir/y.py": "visible = 1\n",
}
GITIGNORE_KEPT = [".gitignore", "app.py", "keep.log", "sub/.gitignore", "sub/mod.py", "sub/secret_dir/y.py"]


def test_gitignore_is_respected_with_git(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", GITIGNORED)
    bundle = gather_context(repo, ContextSpec())
    assert bundle.listed_with == "git"
    assert sorted(paths(bundle)) == GITIGNORE_KEPT
    assert bundle.skipped == []  # ignored files are not candidates, so not reported


def test_gitignore_is_respected_without_git(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", GITIGNORED, use_git=False)
    bundle = gather_context(repo, ContextSpec())
    assert bundle.listed_with == "filesystem"
    assert sorted(paths(bundle)) == GITIGNORE_KEPT


def test_untracked_files_are_candidates(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "a = 1\n"})
    write(repo, {"new.py": "n = 1\n"})
    assert sorted(paths(gather_context(repo, ContextSpec()))) == ["a.py", "new.py"]


def test_binary_huge_minified_vendored_empty_are_skipped_with_reasons(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "ok.py": "x = 1\n",
            "image.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
            "huge.py": "y = 2\n" * 10_000,
            "bundle.js": "var a=1;" * 2000,
            "lib.min.js": "var b=2;",
            "node_modules/pkg/index.js": "module.exports = 1\n",
            "vendor/lib/x.go": "package x\n",
            "dist/app.js": "console.log(1)\n",
            "build/out.txt": "out\n",
            ".venv/lib/site.py": "s = 1\n",
            "third_party/dep.c": "int x;\n",
            "poetry.lock": "[[package]]\n",
            "package-lock.json": "{}\n",
            "empty.py": "",
        },
    )
    bundle = gather_context(repo, ContextSpec(max_file_bytes=50_000))

    assert paths(bundle) == ["ok.py"]
    assert skipped(bundle) == {
        "image.png": SkipCode.binary,
        "huge.py": SkipCode.too_large,
        "bundle.js": SkipCode.minified,
        "lib.min.js": SkipCode.generated,
        "node_modules/pkg/index.js": SkipCode.vendored,
        "vendor/lib/x.go": SkipCode.vendored,
        "dist/app.js": SkipCode.vendored,
        "build/out.txt": SkipCode.vendored,
        ".venv/lib/site.py": SkipCode.vendored,
        "third_party/dep.c": SkipCode.vendored,
        "poetry.lock": SkipCode.generated,
        "package-lock.json": SkipCode.generated,
        "empty.py": SkipCode.empty,
    }
    reasons = {s.path: s.reason for s in bundle.skipped}
    assert reasons["huge.py"] == "too large (60000 bytes > max_file_bytes=50000)"
    assert reasons["node_modules/pkg/index.js"] == "vendored or generated directory 'node_modules/'"
    assert reasons["image.png"].startswith("binary")
    assert reasons["bundle.js"].startswith("minified")


def test_vendored_can_be_included_on_request(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"vendor/x.py": "x = 1\n"})
    assert paths(gather_context(repo, ContextSpec(skip_vendored=False))) == ["vendor/x.py"]


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {"src/a.py": "a\n", "src/deep/b.py": "b\n", "src/c.txt": "c\n", "docs/d.py": "d\n", "top.py": "t\n"},
    )
    bundle = gather_context(repo, ContextSpec(include=("src/**/*.py", "*.py"), exclude=("src/deep/",)))
    assert sorted(paths(bundle)) == ["src/a.py", "top.py"]
    # an explicit exclusion is reported; a file no include asked for is not
    assert [(s.path, s.reason) for s in bundle.skipped] == [("src/deep/b.py", "excluded by pattern 'src/deep/'")]


def test_file_deleted_from_the_working_tree_is_reported(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "a = 1\n", "gone.py": "g = 1\n"})
    (repo / "gone.py").unlink()
    assert skipped(gather_context(repo, ContextSpec()))["gone.py"] == SkipCode.missing


def test_repository_in_a_subdirectory_of_a_work_tree(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"outer.py": "o = 1\n", "svc/app.py": "a = 1\n", "svc/lib/x.py": "x = 1\n"})
    write(root, {"svc/lib/x.py": "x = 2\n"})
    commit(root, "touch x")
    spec = ContextSpec(ranking=RankingPolicy(recent_change=5, size_balance=0))
    bundle = gather_context(root / "svc", spec)
    assert paths(bundle) == ["lib/x.py", "app.py"]
    assert bundle.files[0].reasons == ["changed in the newest commit"]


# -- budget, ranking, chunking -------------------------------------------------------------


def many_files(n: int, lines: int = 40) -> dict[str, str | bytes]:
    return {f"pkg/mod_{i:02d}.py": code(lines, f"m{i}") for i in range(n)}


def test_budget_is_respected_and_the_rest_reported(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", many_files(30))
    bundle = gather_context(repo, ContextSpec(budget_tokens=2000))
    assert 0 < bundle.total_tokens <= 2000
    assert bundle.total_tokens == sum(f.tokens for f in bundle.files)
    assert all(f.tokens == -(-len(f.content) // 4) for f in bundle.files)
    over = [s for s in bundle.skipped if s.code == SkipCode.over_budget]
    assert len(over) + len(bundle.files) == 30
    assert "over the token budget" in over[0].reason
    assert bundle.token_estimate == "ceil(chars/4)"


def test_a_top_ranked_file_too_big_for_the_budget_is_truncated(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"big.py": code(2000, "big"), "small.py": code(10, "small")})
    spec = ContextSpec(budget_tokens=500, ranking=RankingPolicy(flagged=10, size_balance=0, truncate_top_n=1))
    bundle = gather_context(repo, spec, signals=ContextSignals(flagged=frozenset({"big.py"})))

    big = bundle.files[0]
    assert big.path == "big.py"
    assert big.truncated
    assert big.tokens <= 500
    assert big.content.endswith(" lines]\n")
    assert "… [truncated " in big.content
    assert bundle.total_tokens <= 500
    assert "small.py" in skipped(bundle)  # nothing left for it


def test_a_low_ranked_file_too_big_is_dropped_not_truncated(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"big.py": code(2000, "big"), "small.py": code(10, "small")})
    spec = ContextSpec(budget_tokens=500, ranking=RankingPolicy(truncate_top_n=0))
    bundle = gather_context(repo, spec)
    assert paths(bundle) == ["small.py"]
    assert skipped(bundle) == {"big.py": SkipCode.over_budget}


def test_flagged_and_entry_points_lead_for_audit(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "a_small.py": "a = 1\n",
            "pkg/cli.py": code(40, "cli"),
            "pkg/tool.py": code(40, "tool") + 'if __name__ == "__main__":\n    main()\n',
            "pkg/routes_here.py": "@app.route('/x')\ndef x():\n    return 1\n" + code(40, "r"),
            "pkg/risky.py": code(60, "risky"),
        },
    )
    spec = ContextSpec(ranking=RankingPolicy.for_worker("audit"))
    plain = gather_context(repo, ContextSpec())
    assert paths(plain)[0] == "a_small.py"  # size-balanced: the smallest first

    bundle = gather_context(repo, spec, signals=ContextSignals(flagged=frozenset({"pkg/risky.py"})))
    assert paths(bundle)[0] == "pkg/risky.py"
    assert set(paths(bundle)[1:4]) == {"pkg/cli.py", "pkg/tool.py", "pkg/routes_here.py"}
    reasons = {f.path: f.reasons for f in bundle.files}
    assert "flagged by a local analyzer" in reasons["pkg/risky.py"]
    assert "entry point (cli.py)" in reasons["pkg/cli.py"]
    assert "entry point (if __name__ == '__main__')" in reasons["pkg/tool.py"]
    assert "web routes (route handlers)" in reasons["pkg/routes_here.py"]


def test_untested_source_files_lead_for_testgaps(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "src/covered.py": "c = 1\n",
            "src/uncovered.py": code(80, "u"),
            "src/__init__.py": "\n",
            "web/widget.ts": "export const w = 1\n",
            "web/widget.test.ts": "test('w', () => {})\n",
            "web/form.ts": code(40, "form"),
            "tests/test_covered.py": "def test_c(): pass\n",
        },
    )
    bundle = gather_context(repo, ContextSpec(ranking=RankingPolicy.for_worker("testgaps")))
    assert paths(bundle)[:2] == ["web/form.ts", "src/uncovered.py"]
    assert {f.path for f in bundle.files if "no matching test file" in f.reasons} == {
        "web/form.ts",
        "src/uncovered.py",
    }


def test_git_activity_leads_for_predict(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"hot.py": "h = 0\n", "warm.py": "w = 0\n", "cold.py": "c = 0\n"})
    for i in range(1, 5):
        write(repo, {"hot.py": f"h = {i}\n"})
        if i % 2:
            write(repo, {"warm.py": f"w = {i}\n"})
        commit(repo, f"change {i}")
    write(repo, {"cold.py": "c = 1\n"})
    commit(repo, "cold once, most recently")

    predict = gather_context(repo, ContextSpec(ranking=RankingPolicy.for_worker("predict")))
    assert paths(predict) == ["hot.py", "warm.py", "cold.py"]
    assert "5 of the last 6 commits touch it" in predict.files[0].reasons

    recency = gather_context(repo, ContextSpec(ranking=RankingPolicy(recent_change=1, size_balance=0)))
    assert paths(recency) == ["cold.py", "hot.py", "warm.py"]


def test_worker_boosts_reorder(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "a = 1\n", "b.py": "b = 1\n"})
    assert paths(gather_context(repo, ContextSpec())) == ["a.py", "b.py"]  # a tie, broken by path
    boosted = gather_context(repo, ContextSpec(), signals=ContextSignals(boosts={"./b.py": 2.0}))
    assert paths(boosted) == ["b.py", "a.py"]


def test_order_is_deterministic_across_runs(tmp_path: Path) -> None:
    files = many_files(25) | {"x/cli.py": code(30, "c"), "y/app.py": code(30, "a")}
    first = make_repo(tmp_path / "one", files)
    second = make_repo(tmp_path / "two", dict(reversed(list(files.items()))))
    spec = ContextSpec(budget_tokens=3000, ranking=RankingPolicy.for_worker("audit"))
    dumps = [
        gather_context(first, spec).model_dump(exclude={"repo"}),
        gather_context(first, spec).model_dump(exclude={"repo"}),
        gather_context(second, spec).model_dump(exclude={"repo"}),
    ]
    assert dumps[0] == dumps[1] == dumps[2]


def test_chunking_splits_everything_into_budget_sized_chunks(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", many_files(20) | {"huge.py": code(3000, "huge")})
    spec = ContextSpec(budget_tokens=1500, chunking=True)
    bundle = gather_context(repo, spec)

    assert len(bundle.chunks) > 1
    assert all(sum(f.tokens for f in chunk) <= 1500 for chunk in bundle.chunks)
    assert sorted(f.path for chunk in bundle.chunks for f in chunk) == sorted(paths(bundle))
    assert len(bundle.files) == 21  # nothing dropped: the one file bigger than a chunk is cut
    assert [f.path for f in bundle.files if f.truncated] == ["huge.py"]
    assert bundle.skipped == []
    assert gather_context(repo, spec).model_dump() == bundle.model_dump()

    capped = gather_context(repo, spec.model_copy(update={"max_chunks": 2}))
    assert len(capped.chunks) == 2
    assert all(s.code == SkipCode.over_budget for s in capped.skipped)
    assert len(capped.files) + len(capped.skipped) == 21


def test_without_chunking_there_is_one_chunk(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", many_files(3))
    bundle = gather_context(repo, ContextSpec())
    assert bundle.chunks == [bundle.files]


# -- secrets -------------------------------------------------------------------------------

PLANTED = {
    "aws-access-key-id": "AKIAIOSFODNN7EXAMPLE",
    "aws-secret-access-key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "github-token": "ghp_R2d2C3p0L8k9J7h6G5f4D3s2A1q0W9e8R7t6",
    "anthropic-key": "sk-ant-api03-Qw3rTy7UiOp0AsDfGhJkL1zXcVbNm2-QwErTy9",
    "openai-key": "sk-proj-Zx9Cv8Bn7Mq6Wr5Et4Yu3Io2Pa1Sd0Fg",
    "slack-token": "xoxb-2837461029-1928374650-QpWoEiRuTyAlSkDjFhGz",
    "google-api-key": "AIzaSyD4x9Kq2Lm8Np3Rt7Vw1Yz5Bc6Df0Gh2Jk",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiIsImV4cCI6OTk5OTk5OTk5OX0.Xk2v9Qd8Lr4Tn6Wb1Mc3Zp7Ys5Ha0Ge",
    "url-credentials": "Zq9xT4kLm2W",
    "generic-secret": "N7#kV2!pQ9$wL4",
    "env-value": "plain-env-value-42",
    "private-key": "MIIEowIBAAKCAQEAv9Xo3KpL7Qz2Wm8Rt4Ny6Bh1Jc5Fd0Ge7Ha9Ib2Kc4Ld6Me8Nf",
}


def planted_repo(root: Path) -> Path:
    p = PLANTED
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{p['private-key']}\n{p['private-key']}\n-----END RSA PRIVATE KEY-----\n"
    return make_repo(
        root,
        {
            "settings.py": (
                f'AWS_ACCESS_KEY_ID = "{p["aws-access-key-id"]}"\n'
                f'AWS_SECRET_ACCESS_KEY = "{p["aws-secret-access-key"]}"\n'
                f'GITHUB = "{p["github-token"]}"\n'
                f'ANTHROPIC = "{p["anthropic-key"]}"\n'
                f'OPENAI = "{p["openai-key"]}"\n'
                f'SLACK = "{p["slack-token"]}"\n'
                f'GOOGLE = "{p["google-api-key"]}"\n'
                f'SESSION = "{p["jwt"]}"\n'
                f'DATABASE_URL = "postgres://app:{p["url-credentials"]}@db.internal:5432/app"\n'
                f'db_password = "{p["generic-secret"]}"\n'
            ),
            "deploy/key.pem": pem,
            ".env": f"APP_MODE={p['env-value']}\n",
            "README.md": "# demo\n",
        },
    )


def test_every_secret_kind_is_redacted_and_never_in_the_bundle(tmp_path: Path) -> None:
    repo = planted_repo(tmp_path / "r")
    bundle = gather_context(repo, ContextSpec())

    dumped = bundle.model_dump_json()
    for kind, value in PLANTED.items():
        assert value not in dumped, kind
        assert f"[REDACTED:{kind}]" in dumped, kind
    assert {h.kind for h in bundle.redactions} == set(PLANTED)
    pem = next(f for f in bundle.files if f.path == "deploy/key.pem")
    assert pem.content == "[REDACTED:private-key]\n"
    env = next(f for f in bundle.files if f.path == ".env")
    assert env.content == "APP_MODE=[REDACTED:env-value]\n"
    # no hash of a secret-bearing original either: it would let a weak secret be guessed
    assert env.sha256 == hashlib.sha256(env.content.encode()).hexdigest()
    readme = next(f for f in bundle.files if f.path == "README.md")
    assert readme.sha256 == hashlib.sha256((repo / "README.md").read_bytes()).hexdigest()


def test_secrets_are_redacted_in_chunks_and_truncated_files_too(tmp_path: Path) -> None:
    repo = planted_repo(tmp_path / "r")
    write(repo, {"settings.py": (repo / "settings.py").read_text() + code(400, "pad")})
    commit(repo, "pad")
    spec = ContextSpec(budget_tokens=200, chunking=True)
    dumped = gather_context(repo, spec).model_dump_json()
    assert not [kind for kind, value in PLANTED.items() if value in dumped]


# -- tree hash and index -------------------------------------------------------------------


def test_tree_hash_changes_when_a_file_changes_and_not_otherwise(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", many_files(5))
    spec = ContextSpec()
    first = gather_context(repo, spec).tree_hash
    assert gather_context(repo, spec).tree_hash == first

    os.utime(repo / "pkg/mod_01.py", ns=(time.time_ns(), time.time_ns() + 5 * 10**9))
    assert gather_context(repo, spec).tree_hash == first  # a touch is not a change

    original = (repo / "pkg/mod_01.py").read_text()
    write(repo, {"pkg/mod_01.py": original + "# edited\n"})
    edited = gather_context(repo, spec).tree_hash
    assert edited != first

    write(repo, {"pkg/mod_01.py": original})
    assert gather_context(repo, spec).tree_hash == first

    write(repo, {"pkg/new.py": "n = 1\n"})
    assert gather_context(repo, spec).tree_hash != first


def test_tree_hash_ignores_the_budget(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", many_files(10))
    assert (
        gather_context(repo, ContextSpec(budget_tokens=100)).tree_hash
        == gather_context(repo, ContextSpec(budget_tokens=100_000)).tree_hash
    )


def test_index_cache_is_reused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", many_files(12))
    age_files(repo)
    cache = tmp_path / "state" / "index"

    assert warm_index(repo, cache) == 12
    index_file = cache / f"{repo_key(repo.resolve())}.json"
    assert set(json.loads(index_file.read_text())["files"]) == {f"pkg/mod_{i:02d}.py" for i in range(12)}
    assert warm_index(repo, cache) == 0  # nothing re-hashed

    cold = gather_context(repo, ContextSpec(), cache_dir=None)
    warm = gather_context(repo, ContextSpec(), cache_dir=cache)
    assert warm.model_dump() == cold.model_dump()

    write(repo, {"pkg/mod_03.py": "changed = True\n"})
    os.utime(repo / "pkg/mod_03.py", ns=(OLD_NS + 1, OLD_NS + 1))
    assert warm_index(repo, cache) == 1  # only the changed file
    assert gather_context(repo, ContextSpec(), cache_dir=cache).tree_hash != cold.tree_hash

    (repo / "pkg/mod_04.py").unlink()
    warm_index(repo, cache)
    assert "pkg/mod_04.py" not in json.loads(index_file.read_text())["files"]


def test_secret_scan_verdicts_are_remembered_but_never_trusted_for_new_content(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"app.py": "x = 1\n", "other.py": "y = 2\n"})
    age_files(repo)
    cache = tmp_path / "cache"
    gather_context(repo, ContextSpec(), cache_dir=cache)
    index_file = cache / f"{repo_key(repo.resolve())}.json"
    assert set(json.loads(index_file.read_text())["clean"]) == {"app.py", "other.py"}

    token = "ghp_R2d2C3p0L8k9J7h6G5f4D3s2A1q0W9e8R7t6"
    write(repo, {"app.py": f'x = 1\nTOKEN = "{token}"\n'})
    os.utime(repo / "app.py", ns=(OLD_NS, OLD_NS))  # same mtime as before: only size and content differ
    bundle = gather_context(repo, ContextSpec(), cache_dir=cache)
    assert token not in bundle.model_dump_json()
    assert [h.kind for h in bundle.redactions] == ["github-token"]
    assert "app.py" not in json.loads(index_file.read_text())["clean"]


def test_freshly_written_files_are_rehashed_until_they_age(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "a = 1\n"})  # mtime: now
    cache = tmp_path / "cache"
    assert warm_index(repo, cache) == 1
    assert warm_index(repo, cache) == 1  # racily clean: not trusted yet
    age_files(repo)
    assert warm_index(repo, cache) == 1
    assert warm_index(repo, cache) == 0


def test_a_corrupt_index_is_rebuilt(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", many_files(3))
    age_files(repo)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"{repo_key(repo.resolve())}.json").write_text("{not json")
    assert warm_index(repo, cache) == 3
    assert warm_index(repo, cache) == 0


# -- git's index as the stat cache ------------------------------------------------------------


def aged_repo(root: Path, files: Mapping[str, str | bytes]) -> Path:
    """A repository whose files were old when git indexed them: git's index holds their stats."""
    repo = make_repo(root, files, use_git=False)
    age_files(repo)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "initial")
    return repo


def lstat_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = os.lstat

    def counting(path: str | os.PathLike[str], *args: object, **kwargs: object) -> os.stat_result:
        seen.append(os.fspath(path))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", counting)
    return seen


def test_files_git_vouches_for_are_not_even_lstat_ed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = aged_repo(tmp_path / "r", {**many_files(6), "empty.py": "", "image.bin": b"\x00\x01" * 10})
    cache = tmp_path / "cache"
    assert warm_index(repo, cache) == 7  # the empty file is known empty without a read

    inside = f"{repo.resolve()}/"
    seen = lstat_calls(monkeypatch)
    assert warm_index(repo, cache) == 0
    warm = gather_context(repo, ContextSpec(), cache_dir=cache)
    monkeypatch.undo()
    assert [p for p in seen if p.startswith(inside)] == []

    cold = gather_context(repo, ContextSpec())
    assert warm.model_dump() == cold.model_dump()
    assert skipped(warm) == {"empty.py": SkipCode.empty, "image.bin": SkipCode.binary}


def test_a_file_changed_since_git_indexed_it_is_read_again(tmp_path: Path) -> None:
    repo = aged_repo(tmp_path / "r", many_files(4))
    cache = tmp_path / "cache"
    warm_index(repo, cache)

    original = (repo / "pkg/mod_01.py").read_text()
    write(repo, {"pkg/mod_01.py": original.replace("return", "yield")})  # same size
    os.utime(repo / "pkg/mod_01.py", ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    write(repo, {"pkg/mod_02.py": "changed = True\n"})
    os.utime(repo / "pkg/mod_02.py", ns=(OLD_NS, OLD_NS))  # the old mtime: only size and ctime tell
    assert warm_index(repo, cache) == 2

    warm = gather_context(repo, ContextSpec(), cache_dir=cache)
    assert warm.model_dump() == gather_context(repo, ContextSpec()).model_dump()
    contents = {f.path: f.content for f in warm.files}
    assert contents["pkg/mod_02.py"] == "changed = True\n"
    assert "yield" in contents["pkg/mod_01.py"]


@pytest.mark.parametrize("flag", ["--assume-unchanged", "--skip-worktree"])
def test_files_git_is_told_not_to_check_are_checked(tmp_path: Path, flag: str) -> None:
    repo = aged_repo(tmp_path / "r", {"a.py": "a = 1\n", "b.py": "b = 2\n"})
    cache = tmp_path / "cache"
    warm_index(repo, cache)
    git(repo, "update-index", flag, "a.py")
    write(repo, {"a.py": "a = 'changed behind git's back'\n"})
    os.utime(repo / "a.py", ns=(OLD_NS, OLD_NS))

    warm = gather_context(repo, ContextSpec(), cache_dir=cache)
    assert {f.path: f.content for f in warm.files}["a.py"] == "a = 'changed behind git's back'\n"
    assert warm.tree_hash == gather_context(repo, ContextSpec()).tree_hash


def test_symlinks_replacing_indexed_files_and_directories_are_not_followed(tmp_path: Path) -> None:
    files = {"pkg/mod.py": "x = 1\n", "leak.py": "y = 2\n", "main.py": "z = 3\n"}
    repo = aged_repo(tmp_path / "r", files)
    cache = tmp_path / "cache"
    warm_index(repo, cache)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "mod.py").write_text("STOLEN = 1\n")
    (outside / "leak.py").write_text("STOLEN = 2\n")
    (repo / "pkg" / "mod.py").unlink()
    (repo / "pkg").rmdir()
    (repo / "pkg").symlink_to(outside, target_is_directory=True)
    (repo / "leak.py").unlink()
    (repo / "leak.py").symlink_to(outside / "leak.py")

    bundle = gather_context(repo, ContextSpec(), cache_dir=cache)
    # (git lists the new symlink `pkg` as an untracked file)
    assert skipped(bundle) == {"pkg/mod.py": SkipCode.symlink, "leak.py": SkipCode.symlink, "pkg": SkipCode.symlink}
    assert "STOLEN" not in bundle.model_dump_json()


def test_no_file_is_taken_on_git_s_word_when_its_index_is_written_meanwhile(tmp_path: Path) -> None:
    repo = aged_repo(tmp_path / "r", many_files(3)).resolve()
    assert set(list_files(repo, git_stats=True).unchanged) == {f"pkg/mod_{i:02d}.py" for i in range(3)}

    pending = start_listing(repo)
    write(repo, {"new.py": "n = 1\n"})
    git(repo, "add", "new.py")  # a new index file, whether or not git has read the old one yet
    listing = pending.result()
    assert listing.unchanged == {}
    assert listing.paths == ["new.py", *(f"pkg/mod_{i:02d}.py" for i in range(3))]


def test_tracked_files_scanned_early_are_reconciled_with_the_listing(tmp_path: Path) -> None:
    repo = aged_repo(tmp_path / "r", {**many_files(3), "gone.py": "g = 1\n"}).resolve()
    write(repo, {"new.py": "n = 1\n"})
    listing = list_files(repo, git_stats=True)

    class Early:  # git named gone.py as tracked, then listed the files again without it
        def tracked(self) -> Listing:
            return replace(listing, paths=[*(p for p in listing.paths if p != "new.py"), "gone.py"])

        def result(self) -> Listing:
            return replace(listing, paths=[p for p in listing.paths if p != "gone.py"])

    globs = {"include": compile_globs(["**/*"]), "exclude": compile_globs([]), "max_file_bytes": 10**6}
    final, found = scan_listing(repo, Early(), **globs, skip_vendored=True, index=HashIndex(repo))  # type: ignore[arg-type]
    expected = scan(repo, final, **globs, skip_vendored=True, index=HashIndex(repo))  # type: ignore[arg-type]
    assert sorted(found.paths) == sorted(expected.paths) == sorted(p for p in listing.paths if p != "gone.py")
    assert found.tree_hash == expected.tree_hash
    assert dict(zip(found.paths, found.sha256s, strict=True)) == dict(
        zip(expected.paths, expected.sha256s, strict=True)
    )


def test_git_output_that_a_file_name_could_forge_is_not_trusted(tmp_path: Path) -> None:
    # a name with newlines in it reads, in `git ls-files --debug` output, like stat lines of its own
    forged = "a.py\n  mtime: 1:0\n  dev: 0\tino: 0\n  uid: 0\tgid: 0\n  size: 6\tflags: 0\nH 100644 0 0\tb.py"
    repo = aged_repo(tmp_path / "r", {"a.py": "a = 1\n", "b.py": "b = 2\n", forged: "c = 3\n"}).resolve()
    listing = list_files(repo, git_stats=True)
    assert listing.unchanged == {}
    assert forged in listing.paths
    cache = tmp_path / "cache"
    warm_index(repo, cache)
    assert gather_context(repo, ContextSpec(), cache_dir=cache) == gather_context(repo, ContextSpec())


def test_a_subdirectory_repository_uses_the_work_tree_s_index(tmp_path: Path) -> None:
    root = aged_repo(tmp_path / "r", {"outer.py": "o = 1\n", "svc/app.py": "a = 1\n", "svc/lib/x.py": "x = 1\n"})
    assert set(list_files((root / "svc").resolve(), git_stats=True).unchanged) == {"app.py", "lib/x.py"}
    cache = tmp_path / "cache"
    assert warm_index(root / "svc", cache) == 2
    assert warm_index(root / "svc", cache) == 0


def test_a_file_changed_between_scan_and_read_is_held_to_the_scan_rules(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "a = 1\n"}).resolve()
    index = HashIndex(repo)
    scanned = hashlib.sha256(b"a = 1\n").hexdigest()
    (repo / "a.py").write_bytes(b"\x00binary now\n")
    assert load_file(repo, "a.py", 6, scanned, False, index, 1000) == (SkipCode.binary, BINARY_REASON)
    (repo / "a.py").write_text("x = 2\n" * 100)
    assert load_file(repo, "a.py", 6, scanned, False, index, 100)[0] == SkipCode.too_large
    (repo / "a.py").write_text("")
    assert load_file(repo, "a.py", 6, scanned, False, index, 100) == (SkipCode.empty, "empty file")
    (repo / "a.py").write_text("b = 22\n")
    loaded = load_file(repo, "a.py", 6, scanned, False, index, 100)
    assert loaded[0] == "b = 22\n"


def test_a_git_that_hangs_is_killed_and_the_repository_walked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "a = 1\n"})
    fake = tmp_path / "bin" / "git"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(files, "GIT_TIMEOUT_S", 0.2)
    started = time.monotonic()
    bundle = gather_context(repo, ContextSpec())
    assert time.monotonic() - started < 10
    assert bundle.listed_with == "filesystem"
    assert paths(bundle) == ["a.py"]


def test_corrupt_index_entries_are_read_again(tmp_path: Path) -> None:
    repo = aged_repo(tmp_path / "r", many_files(4))
    cache = tmp_path / "cache"
    assert warm_index(repo, cache) == 4
    index_file = cache / f"{repo_key(repo.resolve())}.json"
    raw = json.loads(index_file.read_text())
    keys = sorted(raw["files"])
    for path, garbage in zip(
        keys, ["", "x y z", "{size} {mtime} sha Q 1 2", "{size} {mtime} sha - 1 many"], strict=True
    ):
        size, mtime = raw["files"][path].split(" ")[:2]
        raw["files"][path] = garbage.format(size=size, mtime=mtime)
    index_file.write_text(json.dumps(raw))

    assert warm_index(repo, cache) == 4
    assert gather_context(repo, ContextSpec(), cache_dir=cache) == gather_context(repo, ContextSpec())
    assert warm_index(repo, cache) == 0


def test_bundle_models_forbid_extra_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        ContextSpec(budget=5)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="extra"):
        RankingPolicy(recency=1)  # type: ignore[call-arg]
