"""Converged quadrature for one or two random coefficients."""

import numpy as np
import pytest

from mixlogit import MixedLogit
from mixlogit.datasets import swissmetro_choice_data
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
    refined = last["refinements"][0]["refined_loglik"]
    assert last["error"] == pytest.approx(abs(refined[0] - last["loglik"]))
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


# --------------------------------------------------------------------- Swissmetro b05 (issue 14)
B05 = MixedLogit(fixed=["ASC_1", "ASC_3", "cost"], random={"time": "normal"})


def adaptive_b05_loglik(data, results) -> float:
    """Independent b05 log-likelihood at ``results``' estimates: each situation's probability
    integrated over the normal time coefficient by scipy's adaptive Gauss-Kronrod rule
    (``quad_vec``, all situations at once) on the whole real line."""
    from scipy import integrate, special

    arrays = data.to_arrays(["ASC_1", "ASC_3", "cost", "time"])
    X, available = arrays.X, arrays.available
    rows = np.arange(X.shape[0])
    diff = X - X[rows, arrays.chosen][:, None, :]  # utility differences to the chosen one
    names = list(arrays.variable_names)
    fixed = diff[..., [names.index(n) for n in ("ASC_1", "ASC_3", "cost")]] @ np.array(
        [results["ASC_1"], results["ASC_3"], results["cost"]]
    )
    time = diff[..., names.index("time")]
    mean, sd = results["time"], results["sd.time"]

    def integrand(z):
        v = np.where(available, fixed + time * (mean + sd * z), -np.inf)
        return np.exp(-special.logsumexp(v, axis=1) - 0.5 * z * z) / np.sqrt(2.0 * np.pi)

    probability, bound = integrate.quad_vec(
        integrand, -np.inf, np.inf, epsabs=1e-14, epsrel=1e-12, norm="max"
    )
    assert bound < 1e-11
    return float(np.sum(arrays.weights * np.log(probability)))


def check_b05(data, results, tolerance):
    info = results.quadrature
    assert info["converged"] and info["error"] <= tolerance
    reference = adaptive_b05_loglik(data, results)
    # the reported error (the change to the refined rule) bounds the true one: the rule
    # converges geometrically, so the refinement is off by a small fraction of that change
    assert abs(results.loglik - reference) <= 1.1 * info["error"] + 1e-8
    return reference


def test_swissmetro_b05_quadrature_converges_to_the_adaptive_reference():
    # Gauss-Hermite needed > 256 nodes here and broke at 512 (NaN weights, ZeroDivisionError)
    data = swissmetro_choice_data(rows=1500, seed=14)
    results = B05.fit(data, method="quadrature", panel=False, hessian=False)
    check_b05(data, results, 1e-3)
    assert results.quadrature["nodes_per_dim"] <= 513
    assert results["sd.time"] > 1.0  # a steep integrand: the case the rule is for


@pytest.mark.slow
def test_swissmetro_b05_full_data_matches_reference():
    data = swissmetro_choice_data()
    results = B05.fit(data, method="quadrature", panel=False, quadrature_tolerance=1e-4)
    reference = check_b05(data, results, 1e-4)
    assert reference == pytest.approx(-5214.893, abs=2e-3)


@pytest.mark.parametrize("num_nodes", [1000, 2500])
def test_node_generators_are_finite_and_sum_to_one_at_many_nodes(num_nodes):
    from mixlogit._series import standard_normal_quadrature
    from mixlogit.quadrature import trapezoid_normal_rule

    nodes, log_weights = standard_normal_quadrature(num_nodes)  # hermgauss: NaN beyond ~370
    assert nodes.shape == log_weights.shape == (num_nodes,)
    assert np.all(np.isfinite(nodes)) and np.all(np.isfinite(log_weights))
    weights = np.exp(log_weights)
    assert weights.sum() == pytest.approx(1.0, abs=1e-13)
    assert np.sum(weights * nodes**2) == pytest.approx(1.0, rel=1e-12)
    assert np.sum(weights * nodes**4) == pytest.approx(3.0, rel=1e-12)
    for x, w in (one_dimensional_rule("normal", num_nodes), trapezoid_normal_rule(num_nodes)):
        assert np.all(np.isfinite(x)) and np.all(w >= 0) and w.sum() == pytest.approx(1.0)
        assert np.sum(w * x**4) == pytest.approx(3.0, rel=1e-12)
        assert np.sum(w * np.cos(x)) == pytest.approx(np.exp(-0.5), rel=1e-12)


def test_trapezoid_rule_nests_and_beats_gauss_hermite_on_a_steep_logistic():
    from scipy import integrate, special

    from mixlogit.quadrature import refined_nodes, trapezoid_normal_rule

    coarse, _ = trapezoid_normal_rule(65)
    fine, _ = trapezoid_normal_rule(refined_nodes(65))
    np.testing.assert_allclose(fine[::2], coarse, atol=1e-14)

    def f(z):  # a choice probability with a large spread: poles at distance pi / 20
        return special.expit(0.3 + 20.0 * z)

    exact = integrate.quad(
        lambda z: f(z) * np.exp(-0.5 * z * z), -40, 40, points=[-0.015], epsabs=1e-15, limit=200
    )[0]
    exact /= np.sqrt(2.0 * np.pi)
    trapezoid = {
        n: abs(np.sum(w * f(x)) - exact)
        for n, (x, w) in ((n, trapezoid_normal_rule(n)) for n in (129, 257, 513))
    }
    # geometric convergence: each halving of the spacing squares the error
    assert trapezoid[257] < 1e-2 * trapezoid[129] and trapezoid[513] < 1e-12
    x, w = one_dimensional_rule("normal", 1024)  # twice the nodes, still 1e-5 off
    assert abs(np.sum(w * f(x)) - exact) > 1e-6


def test_tensor_rule_refuses_non_finite_weights():
    from mixlogit.quadrature import tensor_rule

    good = one_dimensional_rule("normal", 5)
    with pytest.raises(FloatingPointError, match="non-finite"):
        tensor_rule([good, (good[0], np.full(5, np.nan))])


def test_unreachable_tolerance_warns_naming_tolerance_and_nodes(monkeypatch):
    from mixlogit.estimation import quadrature as driver
    from mixlogit.estimation.optimize import ConvergenceWarning

    monkeypatch.setattr(driver, "MAX_NODES_PER_DIM", 65)
    data = swissmetro_choice_data(rows=400, seed=3)
    with pytest.warns(ConvergenceWarning, match=r"tolerance 1e-09 within 65 nodes") as caught:
        results = B05.fit(data, method="quadrature", panel=False, quadrature_tolerance=1e-9)
    assert "33-node rule" in str(caught[0].message)
    info = results.quadrature
    assert not info["converged"] and info["error"] > 1e-9 and info["nodes_per_dim"] == 33
    with pytest.raises(ValueError, match=r"leave room for a refinement \(127 nodes\)"):
        B05.fit(data, method="quadrature", panel=False, num_nodes=64)
    with pytest.raises(ValueError, match="quadrature_tolerance must be > 0"):
        B05.fit(data, method="quadrature", panel=False, quadrature_tolerance=0.0)


@pytest.mark.slow  # about 50 s on 2 busy cores
def test_two_dimensional_rule_refines_the_steep_dimension_only():
    # time enters steeply (large spread), a random ASC flatly: only time's nodes grow
    model = MixedLogit(fixed=["ASC_3", "cost"], random={"time": "normal", "ASC_1": "normal"})
    data = swissmetro_choice_data(rows=1500, seed=5)
    results = model.fit(data, method="quadrature", panel=False, hessian=False)
    info = results.quadrature
    assert info["converged"] and info["error"] <= 1e-3
    time_nodes, asc_nodes = info["nodes_per_dim"]
    assert time_nodes > asc_nodes == 17
    assert f"{info['nodes_per_dim']} nodes/dim" in results.summary_text()
    # the rule of the estimates is rebuilt for predictions
    assert results.predict().shape == (1500, 3)
