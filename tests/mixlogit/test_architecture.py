"""Layering of the choice-model modules: no import cycles, checked by tools/import_cycles.py."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _checker():
    spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "tools/import_cycles.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("import_cycles", module)
    spec.loader.exec_module(module)
    return module


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_function_level_and_package_init_cycles(tmp_path, capsys):
    checker = _checker()
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "def f():\n    from pkg import b\n",  # deferred import still counts
            "pkg/b.py": "from pkg.a import f\n",
            # results -> drivers (its __init__ runs first) -> fit -> results
            "pkg/results.py": "from pkg.drivers.problem import build\n",
            "pkg/drivers/__init__.py": "from pkg.drivers.fit import estimate\n",
            "pkg/drivers/fit.py": "from pkg.results import Results\n",
            "pkg/drivers/problem.py": "build = 1\n",
            # never run: not an edge
            "pkg/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\n",
            "pkg/c.py": "import pkg.typed\n",
        },
    )
    assert checker.main(["pkg", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "cycle among 2 modules: pkg.a, pkg.b" in out
    assert "cycle among 3 modules: pkg.drivers, pkg.drivers.fit, pkg.results" in out
    assert "pkg.c" not in out and "2 cycle(s)" in out


def test_checker_accepts_a_layered_package(tmp_path, capsys):
    checker = _checker()
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.high import g\n",  # re-exports are no cycle
            "pkg/low.py": "x = 1\n",
            "pkg/high.py": "from . import low\nfrom .low import x\ndef g():\n    import pkg.low\n",
        },
    )
    assert checker.main(["pkg", "--root", str(tmp_path)]) == 0
    assert "0 cycle(s)" in capsys.readouterr().out


def test_choice_model_modules_have_no_import_cycle():
    checker = _checker()
    graph = checker.import_graph(checker._modules(ROOT, "mixlogit"))
    cycles = checker.find_cycles(graph)
    # the strength layer (families and its torch / JAX backends) is layered by its own owner
    strength = ("mixlogit.torch", "mixlogit.jax", "mixlogit.families")
    ours = [members for members, _ in cycles if any(not m.startswith(strength) for m in members)]
    assert ours == []


def test_deprecated_names_warn_and_resolve():
    import mixlogit
    from mixlogit import bayes, models
    from mixlogit.spec import ModelSpec, as_model_spec

    with pytest.warns(DeprecationWarning, match="mixlogit.models.MixedLogit is deprecated"):
        assert models.MixedLogit is mixlogit.MixedLogit
    with pytest.warns(DeprecationWarning, match="BayesSpec is deprecated"):
        assert bayes.BayesSpec is ModelSpec
    with pytest.warns(DeprecationWarning, match="spec_from_model"):
        assert bayes.spec_from_model is as_model_spec
    spec = ModelSpec.build(["a"], {"b": "-gamma"})
    with pytest.warns(DeprecationWarning, match=r"ModelSpec.names is deprecated"):
        assert spec.names == ("a", "b")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert spec.variables == ("a", "b") and spec.gamma_random == ("b",)
