"""Architecture of the choice-model modules: deprecated names still warn and resolve.

Import cycles and layering are checked for every package by tests/test_layering.py, the
checker itself by tests/tools/test_import_cycles.py.
"""

from __future__ import annotations

import warnings

import pytest


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
