"""Converged quadrature for one or two random coefficients."""

import numpy as np
import pytest

from mixlogit import MixedLogit
from mixlogit.quadrature import one_dimensional_rule, quadrature_rule
from mixlogit.simulate import simulate_choices


def test_rules_integrate_known_moments():
    nodes, weights = one_dimensional_rule("normal", 20)
    assert weights.sum() == pytest.approx(1.0)
    assert np.sum(weights * nodes**2) == pytest.approx(1.0, rel=1e-12)
    assert np.sum(weights * nodes**4) == pytest.approx(3.0, rel=1e-12)
    nodes, weights = one_dimensional_rule("uniform", 10)  # e = 2u - 1 on [-1, 1]
    assert np.sum(weights * nodes**2) == pytest.approx(1.0 / 3.0, rel=1e-12)
    nodes, weights = one_dimensional_rule("triangular", 64)  # variance 1/6
    assert np.sum(weights * nodes**2) == pytest.approx(1.0 / 6.0, rel=1e-3)
    model = MixedLogit(random={"a": "normal", "b": "uniform"})
    grid, log_w = quadrature_rule(model, 8)
    assert grid.shape == (1, 64, 2) and np.exp(log_w).sum() == pytest.approx(1.0)


def test_quadrature_converges_and_agrees_with_many_simulation_draws():
    model = MixedLogit(fixed=["ASC_1", "x1"], random={"price": "-lognormal"})
    truth = {"ASC_1": 0.5, "x1": 1.0, "price": 0.0, "sd.price": 0.8}
    data = simulate_choices(
        model,
        truth,
        num_people=150,
        situations_per_person=6,
        num_alternatives=2,
        seed=5,
        variable_scale={"price": 3.0},
    )
    results = model.fit(data, method="quadrature", quadrature_tolerance=1e-3)
    info = results.quadrature
    assert info["error"] < 1e-3
    assert info["nodes_per_dim"] >= 16 and len(info["rounds"]) >= 1
    # the reported error is the change when the rule is refined at the estimates
    last = info["rounds"][-1]
    assert last["error"] == pytest.approx(abs(last["loglik_refined"] - last["loglik"]))
    # an independent simulated likelihood at the quadrature estimates (many draws) agrees
    from mixlogit.estimation import build_problem
    from mixlogit.likelihood import x64

    problem = build_problem(model, data, num_draws=20000, draws="sobol", seed=1)
    import jax.numpy as jnp

    with x64():
        simulated = float(problem.loglik(jnp.asarray(results.params), problem.data))
    assert simulated == pytest.approx(results.loglik, abs=0.02)
    assert "nodes/dim" in str(results) and "nodes/dim" in results.summary_text()


def test_two_dimensional_quadrature_and_too_many_random_coefficients():
    model = MixedLogit(fixed=["ASC_1"], random={"x1": "normal", "x2": "triangular"})
    truth = {"ASC_1": 0.3, "x1": 1.0, "x2": -1.0, "sd.x1": 0.6, "spread.x2": 0.8}
    data = simulate_choices(model, truth, num_people=100, situations_per_person=4, seed=8)
    results = model.fit(data, method="quadrature", quadrature_tolerance=1e-2)
    assert results.quadrature["error"] < 1e-2 and results.converged
    three = MixedLogit(random={"x1": "normal", "x2": "normal", "x3": "normal"})
    with pytest.raises(ValueError, match="one or two random coefficients; the model has 3"):
        three.fit(data, method="quadrature")
