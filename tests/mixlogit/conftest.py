import sys
import types

import jax
import pytest

# The accuracy tests compare float64 results; the library itself never flips this flag.
jax.config.update("jax_enable_x64", True)


@pytest.fixture
def fake_bayes(monkeypatch):
    """``mixlogit.bayes`` replaced by a module whose ``fit_bayes`` records its call and returns
    ``"posterior"``; the fixture is the record: ``model``, ``data``, ``method`` and ``kwargs``
    of the last call (empty until one is made)."""
    calls: dict = {}
    fake = types.ModuleType("mixlogit.bayes")

    def fit_bayes(model, data, method, **kwargs):
        calls.update(model=model, data=data, method=method, kwargs=kwargs)
        return "posterior"

    fake.fit_bayes = fit_bayes
    monkeypatch.setitem(sys.modules, "mixlogit.bayes", fake)
    return calls
