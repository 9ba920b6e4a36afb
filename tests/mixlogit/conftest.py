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


@pytest.fixture
def likelihood_in_layout():
    """``evaluate(model, data, standard, log_weights, theta, layout, chunk_size)`` ->
    ``(unit_loglik, value, gradient, unit_scores)`` of the simulated likelihood at ``theta``
    with the given draws, in ``layout``: ``"blocks"`` (unit blocks), ``"grid"`` (the
    draw-chunked grid, blocks dropped) or ``"gathered"`` (``data`` must be an unbalanced
    panel, see :func:`one_long_panel`); the layout is asserted."""
    import jax.numpy as jnp
    import numpy as np

    from mixlogit.estimation import build_problem
    from mixlogit.likelihood import x64

    def evaluate(model, data, standard, log_weights, theta, layout, chunk_size):
        problem = build_problem(
            model, data, standard=standard, log_weights=log_weights, chunk_size=chunk_size
        )
        lik_data = problem.data if layout != "grid" else problem.data._replace(blocks=None)
        assert problem.likelihood.gathered == (layout == "gathered")
        assert (lik_data.blocks is not None) == (layout == "blocks")
        with x64():
            t = jnp.asarray(theta)
            likelihood = problem.likelihood
            unit_ll = np.asarray(likelihood.unit_loglik(t, lik_data))
            value, grad = likelihood.value_and_grad(t, lik_data)
            scores = np.asarray(likelihood.unit_scores(t, lik_data))
        return unit_ll, float(value), np.asarray(grad), scores

    return evaluate


@pytest.fixture
def one_long_panel():
    """``make(data, situations, keep=())``: ``data`` with its first ``situations`` situations
    moved to person 0 (who keeps one value of each column in ``keep``, e.g. covariates), an
    unbalanced panel that the likelihood stores in the gathered layout."""
    from mixlogit.data import ChoiceData

    def make(data, situations, keep=()):
        frame = data.frame.copy()
        first = frame.loc[frame.person == 0, list(keep)].iloc[0].to_numpy()
        moved = frame.situation < situations
        frame.loc[moved, "person"] = 0
        if keep:
            frame.loc[moved, list(keep)] = first
        return ChoiceData(
            frame, choice="choice", alternative="alt", situation="situation", panel="person"
        )

    return make
