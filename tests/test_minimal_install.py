"""The core install without the optional packages (issue 14, item 15).

A choice modeller may stop at ``pip install -e .``: no torch, no Pyro and (for the classical
route) no ArviZ. Each check runs in a fresh interpreter whose ``sys.meta_path`` refuses those
packages, so it fails as a minimal install would, whatever this environment has installed.
``.ci/minimal_install.sh`` checks the same against a real core-only virtual environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Put first on ``sys.meta_path``: importing any of these (or their submodules) fails.
BLOCKER = """
import importlib.abc
import sys

BLOCKED = ("torch", "pyro", "arviz")


class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None


sys.meta_path.insert(0, _Absent())
"""


#: The checks, run in one interpreter (importing JAX once); each records its outcome.
CHECKS = """
import json
import sys
import traceback

outcome = {}


def check(name):
    def run(function):
        try:
            outcome[name] = {"ok": True, "value": function()}
        except BaseException:
            outcome[name] = {"ok": False, "value": traceback.format_exc()}
    return run


@check("blocked")
def _():
    absent = []
    for name in BLOCKED:
        try:
            __import__(name)
        except ModuleNotFoundError:
            absent.append(name)
    return absent


@check("import")
def _():
    import mixlogit

    return mixlogit.__version__


@check("star")
def _():
    namespace = {}
    exec("from mixlogit import *", namespace)
    return sorted(k for k in namespace if not k.startswith("__"))


@check("torch_backend")
def _():
    import mixlogit

    try:
        mixlogit.torch
    except ModuleNotFoundError as error:
        return error.name
    return None


@check("mnl")
def _():
    import numpy as np

    import mixlogit
    from mixlogit import ChoiceData, MultinomialLogit

    frame = mixlogit.load_modecanada()
    data = ChoiceData(frame, choice="choice", alternative="alt", situation="case")
    fit = MultinomialLogit(["cost", "ivt", "ovt", "ASC_car", "ASC_bus"]).fit(data)
    str(fit)  # the printed report needs none of the optional packages either
    return {
        "loglik": fit.loglik,
        "converged": fit.converged,
        "finite_se": bool(np.all(np.isfinite(fit.robust_std_errors))),
    }


outcome["modules"] = sorted({m.split(".")[0] for m in sys.modules} & set(BLOCKED))
print(json.dumps(outcome))
"""


@pytest.fixture(scope="module")
def outcome() -> dict:
    """The outcome of :data:`CHECKS` in a fresh interpreter without torch, pyro and arviz."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER + CHECKS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _value(outcome: dict, name: str):
    assert outcome[name]["ok"], outcome[name]["value"]  # the traceback when it failed
    return outcome[name]["value"]


def test_blocker_blocks(outcome):
    # the checks are meaningful only if the blocked packages really fail to import
    assert _value(outcome, "blocked") == ["torch", "pyro", "arviz"]
    assert outcome["modules"] == []  # and nothing imported them anyway


def test_import_and_star_import_without_torch(outcome):
    import mixlogit

    assert _value(outcome, "import") == mixlogit.__version__
    # before: __all__ listed the lazy submodule "torch", so the star import imported
    # mixlogit.torch and failed with ModuleNotFoundError: No module named 'torch'
    star = _value(outcome, "star")
    assert star == sorted(k for k in mixlogit.__all__ if not k.startswith("__"))
    assert "MixedLogit" in star and "fit_bayes" in star
    # the star import must not rebind the user's ``jax`` to the mixlogit backend either
    assert "jax" not in star and "torch" not in star
    # the torch backend stays reachable as an attribute and fails only when asked for
    assert _value(outcome, "torch_backend") == "torch"


def test_mnl_fit_without_optional_packages(outcome):
    mnl = _value(outcome, "mnl")
    assert mnl["converged"] and mnl["finite_se"]
    assert mnl["loglik"] < 0
