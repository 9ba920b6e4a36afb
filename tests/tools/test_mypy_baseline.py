"""tools/mypy_baseline.py: the per-module error-code baseline in pyproject.toml."""

from __future__ import annotations

import tomllib

import pytest

REPORT = """\
mixlogit/bayes/results.py:227: error: "BayesianResults" has no attribute "kind"  [attr-defined]
mixlogit/bayes/results.py:240:5: error: Incompatible types in assignment  [assignment]
mixlogit/bayes/results.py:241: error: "BayesianResults" has no attribute "idata"  [attr-defined]
analysis/__init__.py:3: error: Need type annotation for "x"  [var-annotated]
mixlogit/bayes/fit.py:275: note: By default the bodies of untyped functions are not checked  [annotation-unchecked]
alignment/metrics.py:55: note: "list" is invariant
Found 4 errors in 2 files (checked 70 source files)
"""


def test_errors_are_grouped_by_module_and_notes_ignored(mypy_baseline):
    assert mypy_baseline.errors_by_module(REPORT) == {
        "mixlogit.bayes.results": {"attr-defined", "assignment"},
        "analysis": {"var-annotated"},
    }


def test_block_is_valid_toml_that_disables_exactly_those_codes(mypy_baseline):
    block = mypy_baseline.baseline_block(mypy_baseline.errors_by_module(REPORT))
    parsed = tomllib.loads(block)["tool"]["mypy"]["overrides"]
    assert parsed == [
        {"module": "analysis", "disable_error_code": ["var-annotated"]},
        {"module": "mixlogit.bayes.results", "disable_error_code": ["assignment", "attr-defined"]},
    ]
    assert block.startswith(mypy_baseline.START) and block.endswith(mypy_baseline.END + "\n")


def test_strip_block_restores_the_text_around_it(mypy_baseline):
    mb = mypy_baseline
    config = '[tool.mypy]\nfiles = ["mixlogit"]\n'
    with_block = config + "\n" + mb.baseline_block({"mixlogit.spec": ["union-attr"]})
    assert mb.strip_block(with_block) == config
    assert mb.strip_block(config) == config
    with pytest.raises(ValueError, match="without"):
        mb.strip_block(config + mb.START + "\n")


def test_pyproject_baseline_is_well_formed(mypy_baseline):
    # Every baselined module exists, and each entry disables at least one code.
    text = mypy_baseline.PYPROJECT.read_text()
    block = text[text.index(mypy_baseline.START) :]
    for entry in tomllib.loads(block).get("tool", {}).get("mypy", {}).get("overrides", []):
        path = mypy_baseline.ROOT.joinpath(*entry["module"].split("."))
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), entry
        assert entry["disable_error_code"], entry
