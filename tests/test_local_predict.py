"""predict: co-change association rules from a real git history."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_local_repos import make_repo, make_sample_repo

from nightshift.local.predict import co_change_rules, predict_next_edits, run_predict
from nightshift.schemas import PredictReport


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return make_sample_repo(tmp_path / "shop")


def test_working_tree_edit_predicts_its_co_changed_files(sample: Path) -> None:
    (sample / "a.py").write_text("A = 6\n")  # being edited now
    history = predict_next_edits(sample)
    assert history.anchor == "working tree changes"
    assert history.anchor_files == ["a.py"]
    assert history.commits_considered == 6
    top = {p.file: p for p in history.predictions}
    # a.py changed in 4 commits (initial, 'a and b', 'a, b and c', 'a and b again'); b.py in all 4 of them
    assert top["b.py"].likelihood == 1.0
    assert (top["b.py"].together, top["b.py"].antecedent_commits) == (4, 4)
    assert top["b.py"].support == round(4 / 6, 4)
    # c.py changed with a.py in 'initial' and 'a, b and c' only
    assert top["c.py"].likelihood == 0.5
    assert [p.file for p in history.predictions] == ["b.py", "c.py"]  # files seen with a.py once are left out


def test_predict_result_fills_the_shared_schema(sample: Path) -> None:
    (sample / "b.py").write_text("B = 6\n")
    result = run_predict(sample)
    assert result.report is not None
    report = PredictReport.model_validate(result.report)
    assert report.predictions[0].file == "a.py"
    assert report.predictions[0].likelihood == 1.0
    assert "changed together with b.py in 4 of the 4 commits" in report.predictions[0].reason
    assert next((f.rule, f.severity.value, f.file) for f in result.findings) == ("predict/co-change", "info", "a.py")
    assert "association rule" in result.method
    assert "anchor = working tree changes" in result.method
    assert result.summary_markdown.startswith("**Local analysis (no AI agent).**")


def test_clean_tree_uses_the_last_commit(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "r",
        {"x.py": "1\n", "y.py": "1\n", "z.py": "1\n"},
        ("x y", {"x.py": "2\n", "y.py": "2\n"}),
        ("x y z", {"x.py": "3\n", "y.py": "3\n", "z.py": "3\n"}),
        ("x", {"x.py": "4\n"}),
    )
    history = predict_next_edits(root)
    assert (history.anchor, history.anchor_files) == ("most recent commit", ["x.py"])
    assert [(p.file, p.likelihood) for p in history.predictions] == [("y.py", 0.75), ("z.py", 0.5)]


def test_large_commits_and_deleted_files_are_left_out(tmp_path: Path) -> None:
    bulk = {f"gen/f{i}.py": "1\n" for i in range(60)}
    root = make_repo(
        tmp_path / "r",
        {"a.py": "1\n", "gone.py": "1\n"},
        ("a gone", {"a.py": "2\n", "gone.py": "2\n"}),
        ("bulk", {**bulk, "a.py": "3\n"}),
    )
    (root / "gone.py").unlink()
    (root / "a.py").write_text("4\n")
    history = predict_next_edits(root, anchor_files=["a.py"])
    assert history.commits_skipped_large == 1
    assert history.commits_considered == 2
    assert history.predictions == []  # gone.py co-changed twice but no longer exists


def test_rules_support_and_confidence() -> None:
    rules = {(r.antecedent, r.consequent): r for r in co_change_rules([["a", "b"], ["a", "b"], ["a"], ["c"]])}
    assert set(rules) == {("a", "b"), ("b", "a")}
    assert (rules[("a", "b")].support, rules[("a", "b")].confidence) == (0.5, round(2 / 3, 4))
    assert rules[("b", "a")].confidence == 1.0


def test_not_a_git_repository_is_explained(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("1\n")
    result = run_predict(tmp_path)
    assert result.status == "completed"
    report = PredictReport.model_validate(result.report)
    assert report.predictions == []
    assert report.summary == "No predictions: not a git repository: there is no history to learn co-changes from."
