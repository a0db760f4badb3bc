"""predict: which files are likely edited next, from the git history of files changed together.

History: the last `max_commits` non-merge commits reachable from HEAD (one `git log --name-only` through
GitPython). Commits touching more than `max_files_per_commit` files (mass renames, reformatting,
vendoring) are left out: they say little about which files belong together.

Association rules over those commits, each commit being the set of files it changed:

    together(A, B)   = commits that changed both A and B
    support(A → B)   = together(A, B) / commits considered
    confidence(A → B) = together(A, B) / commits that changed A

The *anchor* is what is being edited now: the files changed in the working tree (staged, unstaged or
untracked) when there are any, else the files of the most recent commit. For every other file B that
still exists, likelihood(B) = max over anchor files A of confidence(A → B), counting only pairs seen
together at least `min_together` times (one co-change is chance). The anchor file giving that maximum is
named in the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nightshift.findings import Finding, Severity
from nightshift.local.models import LocalResult, git_tool, local_result, markdown_table, rows
from nightshift.local.repofiles import repo_root
from nightshift.schemas import Prediction, PredictReport

WORKER = "predict"


class CoChangeRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    antecedent: str
    consequent: str
    together: int
    antecedent_commits: int
    support: float
    confidence: float


class PredictedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    likelihood: float = Field(description="confidence of the strongest rule from an anchor file")
    because_of: str = Field(description="the anchor file of that rule")
    together: int
    antecedent_commits: int
    support: float

    def reason(self) -> str:
        return (
            f"changed together with {self.because_of} in {self.together} of the {self.antecedent_commits} "
            f"commits that touched it (confidence {self.likelihood:.2f}, support {self.support:.3f})"
        )


class CoChangeHistory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    commits_considered: int
    commits_skipped_large: int
    anchor: str = Field(description="where the anchor files come from")
    anchor_files: list[str]
    predictions: list[PredictedFile]
    rules: list[CoChangeRule] = Field(description="strongest co-change rules of the whole history")
    note: str | None = None


def _git_repo(root: Path) -> Any | None:
    try:
        import git

        return git.Repo(root, search_parent_directories=True)
    except Exception:  # not a git repository, or git unusable: no history to learn from
        return None


def read_commits(repo: Any, root: Path, max_commits: int) -> list[list[str]]:
    """Files changed per non-merge commit, newest first, as paths relative to `root` (a git.Repo's)."""
    import git

    toplevel = Path(repo.working_tree_dir or root).resolve()
    prefix = root.relative_to(toplevel).as_posix() if root != toplevel else ""
    try:
        output: str = repo.git.log("--no-merges", "--name-only", "-z", "--format=%x01%H", "-n", str(max_commits))
    except git.GitCommandError:  # no commit yet
        return []
    commits: list[list[str]] = []
    for chunk in output.split("\x01")[1:]:
        names = [n.strip("\n") for n in chunk.split("\0")[1:]]
        files: list[str] = []
        for name in names:
            if not name:
                continue
            if prefix:
                if not name.startswith(prefix + "/"):
                    continue
                name = name[len(prefix) + 1 :]
            files.append(name)
        commits.append(sorted(set(files)))
    return commits


def _working_tree_changes(repo: Any, root: Path) -> list[str]:
    import git

    toplevel = Path(repo.working_tree_dir or root).resolve()
    changed: set[str] = set()
    try:
        changed.update(d.a_path or d.b_path or "" for d in repo.index.diff(None))
        if repo.head.is_valid():
            changed.update(d.a_path or d.b_path or "" for d in repo.index.diff("HEAD"))
        changed.update(repo.untracked_files)
    except git.GitCommandError:
        return []
    out: list[str] = []
    for name in changed:
        full = toplevel / name
        if name and full.is_relative_to(root):
            out.append(PurePosixPath(full.relative_to(root)).as_posix())
    return sorted(out)


def co_change_rules(commits: Sequence[Sequence[str]], *, min_together: int = 2) -> list[CoChangeRule]:
    """Every rule A → B with together(A, B) ≥ min_together, strongest first."""
    file_commits: Counter[str] = Counter()
    pair_commits: Counter[tuple[str, str]] = Counter()
    for files in commits:
        file_commits.update(files)
        pair_commits.update(combinations(sorted(files), 2))
    total = len(commits)
    rules: list[CoChangeRule] = []
    for (a, b), together in pair_commits.items():
        if together < min_together:
            continue
        for antecedent, consequent in ((a, b), (b, a)):
            rules.append(
                CoChangeRule(
                    antecedent=antecedent,
                    consequent=consequent,
                    together=together,
                    antecedent_commits=file_commits[antecedent],
                    support=round(together / total, 4),
                    confidence=round(together / file_commits[antecedent], 4),
                )
            )
    rules.sort(key=lambda r: (-r.confidence, -r.together, r.antecedent, r.consequent))
    return rules


def predict_next_edits(
    repo: Path,
    *,
    max_commits: int = 500,
    max_files_per_commit: int = 50,
    min_together: int = 2,
    top: int = 20,
    anchor_files: Sequence[str] | None = None,
) -> CoChangeHistory:
    """Co-change predictions for the files being edited now (see the module docstring)."""
    root = repo_root(repo)
    git_repo = _git_repo(root)
    if git_repo is None:
        return CoChangeHistory(
            commits_considered=0,
            commits_skipped_large=0,
            anchor="none",
            anchor_files=[],
            predictions=[],
            rules=[],
            note="not a git repository: there is no history to learn co-changes from",
        )
    try:
        all_commits = read_commits(git_repo, root, max_commits)
        commits = [c for c in all_commits if 0 < len(c) <= max_files_per_commit]
        skipped = sum(1 for c in all_commits if len(c) > max_files_per_commit)
        if anchor_files is not None:
            anchor, anchors = "given files", sorted(set(anchor_files))
        else:
            anchors = _working_tree_changes(git_repo, root)
            anchor = "working tree changes"
            if not anchors and commits:
                anchor, anchors = "most recent commit", list(commits[0])
    finally:
        git_repo.close()  # GitPython keeps `git cat-file` helpers alive until closed
    rules = co_change_rules(commits, min_together=min_together)

    anchor_set = set(anchors)
    best: dict[str, CoChangeRule] = {}
    for rule in rules:
        if rule.antecedent not in anchor_set or rule.consequent in anchor_set:
            continue
        if not (root / rule.consequent).is_file():
            continue
        current = best.get(rule.consequent)
        if current is None or (rule.confidence, rule.together) > (current.confidence, current.together):
            best[rule.consequent] = rule
    predictions = [
        PredictedFile(
            file=rule.consequent,
            likelihood=rule.confidence,
            because_of=rule.antecedent,
            together=rule.together,
            antecedent_commits=rule.antecedent_commits,
            support=rule.support,
        )
        for rule in sorted(best.values(), key=lambda r: (-r.confidence, -r.together, r.consequent))
    ][:top]
    note = None if commits else "the repository has no usable commit history yet"
    return CoChangeHistory(
        commits_considered=len(commits),
        commits_skipped_large=skipped,
        anchor=anchor,
        anchor_files=anchors,
        predictions=predictions,
        rules=rules[:50],
        note=note,
    )


def predict_report(history: CoChangeHistory) -> PredictReport:
    if history.note:
        summary = f"No predictions: {history.note}."
    elif not history.predictions:
        summary = (
            f"No file was changed together with the {len(history.anchor_files)} anchor files ({history.anchor}) "
            f"often enough in the last {history.commits_considered} commits to predict a next edit."
        )
    else:
        summary = (
            f"{len(history.predictions)} files likely edited next, from co-changes with the "
            f"{len(history.anchor_files)} files of the {history.anchor}, learnt from {history.commits_considered} "
            "commits (likelihood = association-rule confidence)."
        )
    return PredictReport(
        predictions=[Prediction(file=p.file, likelihood=p.likelihood, reason=p.reason()) for p in history.predictions],
        summary=summary,
    )


def run_predict(
    repo: Path,
    *,
    max_commits: int = 500,
    max_files_per_commit: int = 50,
    min_together: int = 2,
    anchor_files: Sequence[str] | None = None,
) -> LocalResult:
    """The predict worker as a `LocalResult` whose report is a `PredictReport`."""
    history = predict_next_edits(
        repo,
        max_commits=max_commits,
        max_files_per_commit=max_files_per_commit,
        min_together=min_together,
        anchor_files=anchor_files,
    )
    report = predict_report(history)
    tools = [git_tool()]
    method = (
        f"git co-change history: the last {history.commits_considered} non-merge commits (of at most "
        f"{max_commits}; {history.commits_skipped_large} touching more than {max_files_per_commit} files left "
        f"out); likelihood = confidence of the association rule anchor → file (together / commits of the "
        f"anchor, at least {min_together} co-changes), anchor = {history.anchor}."
    )
    findings = [
        Finding(
            worker=WORKER,
            rule="predict/co-change",
            severity=Severity.info,
            file=p.file,
            title=f"Likely edited next: {p.file}",
            description=f"likelihood {p.likelihood:.2f}: {p.reason()}.",
            source="local",
        )
        for p in history.predictions
    ]
    tables = {
        "predictions": rows(history.predictions),
        "anchor_files": [{"file": f} for f in history.anchor_files],
        "co_change_rules": rows(history.rules),
    }
    return local_result(
        worker=WORKER,
        method=method,
        tools=tools,
        findings=findings,
        tables=tables,
        sections=[
            f"## Likely next edits\n\n{report.summary}",
            markdown_table(
                tables["predictions"], ["file", "likelihood", "because_of", "together", "antecedent_commits"]
            ),
        ],
        report=report.model_dump(mode="json"),
    )
