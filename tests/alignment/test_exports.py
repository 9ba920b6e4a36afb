"""The public API of ``alignment``: one screen of names, and the 0.1 names as deprecated aliases."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import alignment


def test_public_names_fit_on_a_screen_and_resolve():
    assert len(alignment.__all__) <= 25
    for name in alignment.__all__:
        assert getattr(alignment, name) is not None, name
    assert set(alignment.__all__) <= set(dir(alignment))


@pytest.mark.parametrize("name", sorted(alignment._DEPRECATED))
def test_names_of_the_first_release_warn_and_resolve(name):
    module, _, attribute = alignment._DEPRECATED[name].partition(":")
    with pytest.warns(DeprecationWarning, match=f"alignment.{name} is deprecated"):
        value = getattr(alignment, name)
    assert value is getattr(importlib.import_module(module), attribute)
    assert name not in alignment.__all__


def test_datasets_subpackage_exports_the_loaders():
    from alignment import datasets

    for name in datasets.__all__:
        assert getattr(datasets, name) is not None, name
    assert datasets.load_prism is alignment.load_prism
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert datasets.load_ground_truth()["population_cv"] > 0.9


def test_import_alignment_stays_light():
    code = (
        "import sys, alignment, alignment.datasets; "
        "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
