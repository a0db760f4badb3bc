"""document: undocumented public API by ast, with __all__ respected."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_local_repos import make_repo, make_sample_repo

from nightshift.local.document import find_undocumented, run_document


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sample_repo(tmp_path_factory.mktemp("document") / "shop")


def test_undocumented_public_objects_of_the_sample(sample: Path) -> None:
    result = run_document(sample)
    found = {(f.rule, f.file, f.line, f.title) for f in result.findings}
    assert ("D103", "src/shop/util.py", 4, "Public function summarize has no docstring") in found
    assert ("D102", "src/shop/util.py", 19, "Public method Basket.add has no docstring") in found
    assert ("D100", "src/shop/util.py", 1, "Public module shop.util has no docstring") in found
    assert ("D103", "src/shop/billing.py", 10, "Public function refund has no docstring") in found
    titles = " ".join(f.title for f in result.findings)
    assert "_private" not in titles  # private method
    assert "helper_not_exported" not in titles  # not in report.py's __all__
    assert "grade" not in titles  # documented
    assert "test_place_order" not in titles  # tests are not API
    assert result.summary_markdown.startswith("**Local analysis (no AI agent).**")


def test_coverage_per_module(sample: Path) -> None:
    report = find_undocumented(sample)
    modules = {m.module: m for m in report.modules}
    util = modules["shop.util"]  # module, summarize, Basket, Basket.add, grade
    assert (util.public_objects, util.documented, util.percent) == (5, 2, 40.0)
    assert modules["shop.report"].uses_all
    assert (modules["shop.report"].public_objects, modules["shop.report"].percent) == (2, 100.0)
    assert modules["shop"].public_objects == 1  # the package docstring


def test_private_modules_dunder_all_forms_and_setters(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "lib",
        {
            "pkg/__init__.py": "",
            "pkg/_internal.py": "def hidden():\n    pass\n",
            "pkg/api.py": """\
                \"\"\"API.\"\"\"
                from typing import overload

                __all__ = ["Thing"]
                __all__ += ["made"]


                class Thing:
                    \"\"\"A thing.\"\"\"

                    @property
                    def size(self):
                        return 1

                    @size.setter
                    def size(self, value):
                        pass

                    class Inner:
                        pass


                def made():
                    \"\"\"Made.\"\"\"


                def other():
                    pass
                """,
        },
    )
    report = find_undocumented(root)
    missing = {(o.kind, o.name) for o in report.undocumented}
    assert missing == {("package", "pkg"), ("method", "Thing.size"), ("class", "Thing.Inner")}
    assert all(o.file != "pkg/_internal.py" for o in report.objects)
