"""The public API of ``alignment``: the datasets sub-package, a light import.

The screen of top-level names and the deprecated aliases of the first release are checked
for every package in tests/test_repository.py."""

from __future__ import annotations

import subprocess
import sys
import warnings

import alignment


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
