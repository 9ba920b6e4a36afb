"""Fixed parameters, offsets and bounds (``fit(fix=..., bounds=...)``), against a plain
numpy/scipy optimisation of the same (simulated) likelihood with the restriction written in.

The simulated data use seed 5507 and a four-alternative design, fresh for these tests.
"""

import warnings

import numpy as np
import pytest
from scipy import optimize
from scipy.special import logsumexp

from mixlogit import EstimationResults, MixedLogit, MultinomialLogit
from mixlogit.data import ChoiceData
from mixlogit.draws import standardised_draws
from mixlogit.estimation import check_simulation_noise
from mixlogit.estimation.restrictions import parse_restrictions
from mixlogit.simulate import simulate_choices

MNL_VARIABLES = ["ASC_1", "ASC_2", "ASC_3", "price", "time"]


@pytest.fixture(scope="module")
def mnl_data():
    truth = {"ASC_1": 0.4, "ASC_2": -0.3, "ASC_3": 0.2, "price": -1.1, "time": -0.6}
    return simulate_choices(
        MultinomialLogit(MNL_VARIABLES),
        truth,
        num_people=300,
        situations_per_person=4,
        num_alternatives=4,
        seed=5507,
    )


def numpy_mnl_fit(arrays, free, values):
    """scipy BFGS over the free coefficients of a numpy MNL log-likelihood; the others at
    ``values`` (so a fixed coefficient is an offset ``value * x``)."""
    X, chosen, available = arrays.X, arrays.chosen, arrays.available
    rows = np.arange(len(chosen))

    def negll(b):
        beta = values.copy()
        beta[free] = b
        v = np.where(available, X @ beta, -np.inf)
        return -np.sum(v[rows, chosen] - logsumexp(v, axis=1))

    found = optimize.minimize(negll, np.zeros(len(free)), method="BFGS", options={"gtol": 1e-9})
    beta = values.copy()
    beta[free] = found.x
    return beta, -found.fun


def test_fixed_asc_equals_leaving_it_out(mnl_data):
    # an ASC fixed at 0 is the usual normalisation: the same fit as not having the column
    kept = MultinomialLogit(["ASC_1", "ASC_3", "price", "time"]).fit(mnl_data)
    pinned = MultinomialLogit(MNL_VARIABLES).fit(mnl_data, fix={"ASC_2": 0.0})
    assert pinned.loglik == pytest.approx(kept.loglik, abs=1e-9)
    others = [n for n in MNL_VARIABLES if n != "ASC_2"]
    np.testing.assert_allclose([pinned[n] for n in others], kept.params, atol=1e-7)
    np.testing.assert_allclose(
        pinned.robust_std_errors[[MNL_VARIABLES.index(n) for n in others]],
        kept.robust_std_errors,
        rtol=1e-5,
    )
    assert pinned["ASC_2"] == 0.0
    assert np.isnan(pinned.std_errors[1]) and np.isnan(pinned.robust_std_errors[1])
    assert np.all(pinned.cov[1] == 0.0) and np.all(pinned.robust_cov[:, 1] == 0.0)
    # AIC, BIC and adjusted rho2 count the estimated parameters only
    assert pinned.num_estimated == 4 and pinned.num_params == 5
    assert pinned.aic == pytest.approx(kept.aic, abs=1e-8)
    assert pinned.bic == pytest.approx(kept.bic, abs=1e-8)
    assert pinned.rho2_adjusted == pytest.approx(kept.rho2_adjusted, abs=1e-12)
    text = str(pinned)
    assert "4 estimated, 1 fixed" in text and "Fixed: ASC_2 = 0" in text


def test_offset_matches_numpy_reference(mnl_data):
    # a coefficient fixed away from its estimate: an offset term; the other coefficients
    # re-adjust, as a numpy fit with the offset written in says
    model = MultinomialLogit(MNL_VARIABLES)
    results = model.fit(mnl_data, fix={"ASC_2": 0.0, "time": -1.0})
    arrays = mnl_data.to_arrays(MNL_VARIABLES)
    values = np.zeros(5)
    values[MNL_VARIABLES.index("time")] = -1.0
    beta, loglik = numpy_mnl_fit(arrays, np.array([0, 2, 3]), values)
    np.testing.assert_allclose(results.params, beta, atol=2e-6)
    assert results.loglik == pytest.approx(loglik, abs=1e-8)
    assert results.converged


def test_binding_bound_equals_fixing_at_the_bound(mnl_data):
    # the unrestricted price coefficient is near -1.1; a lower bound at -0.8 binds, and the
    # KKT point is the fit with price fixed at -0.8 (gradient pointing outside the box)
    model = MultinomialLogit(MNL_VARIABLES)
    free = model.fit(mnl_data, fix={"ASC_2": 0.0})
    assert free["price"] < -0.9
    with pytest.warns(RuntimeWarning, match=r"\['price'\] ended at a bound"):
        bounded = model.fit(mnl_data, fix={"ASC_2": 0.0}, bounds={"price": (-0.8, None)})
    at_bound = model.fit(mnl_data, fix={"ASC_2": 0.0, "price": -0.8})
    assert bounded["price"] == pytest.approx(-0.8, abs=1e-10)
    np.testing.assert_allclose(bounded.params, at_bound.params, atol=1e-5)
    assert bounded.loglik == pytest.approx(at_bound.loglik, abs=1e-8)
    assert bounded.converged  # the projected gradient vanishes
    assert "Bounds: price in [-0.8, inf]" in str(bounded)
    # a bound that does not bind leaves the fit as it was
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loose = model.fit(mnl_data, fix={"ASC_2": 0.0}, bounds={"price": (-5.0, 0.0)})
    np.testing.assert_allclose(loose.params, free.params, atol=1e-5)


def _numpy_panel_msl(arrays, person, standard, theta_of, free_start):
    """Panel simulated log-likelihood in numpy: person n's likelihood is the mean over draws r
    of the product over their situations of the logit probability with coefficients
    ``theta_of(b)(standard[n, r])``; maximised by scipy over the free parameters ``b``."""
    X, chosen, available = arrays.X, arrays.chosen, arrays.available
    rows = np.arange(len(chosen))

    def negll(b):
        beta = theta_of(b)(standard[person])  # (S, R, K)
        v = np.einsum("sjk,srk->srj", X, beta)
        v = np.where(available[:, None, :], v, -np.inf)
        log_p = v[rows, :, chosen] - logsumexp(v, axis=2)  # (S, R)
        per_person = np.zeros((standard.shape[0], standard.shape[1]))
        np.add.at(per_person, person, log_p)
        return -np.sum(logsumexp(per_person, axis=1) - np.log(standard.shape[1]))

    found = optimize.minimize(negll, free_start, method="BFGS", options={"gtol": 1e-7})
    return found.x, -found.fun


def test_error_component_with_fixed_mean_matches_numpy_msl():
    # random constants on all three non-base alternatives, one mean fixed at 0 (Biogeme's
    # b12panel normalisation): identified only because that mean is fixed
    model = MixedLogit(["price"], random={"ASC_1": "normal", "ASC_2": "normal"})
    truth = {"price": -1.0, "ASC_1": 0.5, "ASC_2": 0.0, "sd.ASC_1": 1.2, "sd.ASC_2": 0.8}
    data = simulate_choices(
        model, truth, num_people=120, situations_per_person=6, num_alternatives=3, seed=5508
    )
    num_draws = 64
    # with 64 Halton draws the simulated likelihood has local maxima (s and -s are not
    # equivalent for asymmetric draws): both optimisers start at the same point
    start = {"price": -0.5, "ASC_1": 0.0, "sd.ASC_1": 0.5, "sd.ASC_2": 0.5}
    results = model.fit(data, fix={"ASC_2": 0.0}, num_draws=num_draws, init=start, tolerance=1e-8)
    assert results.names == ["price", "ASC_1", "ASC_2", "sd.ASC_1", "sd.ASC_2"]
    assert results["ASC_2"] == 0.0
    arrays = data.to_arrays(model.spec.variables, check_identified=False)
    standard, _ = standardised_draws(model.spec, arrays.num_panels, num_draws, "halton", 0)

    def theta_of(b):
        price, mean1, sd1, sd2 = b

        def coefficients(z):  # z (..., 2): standard normals of ASC_1, ASC_2
            return np.stack(
                [np.full(z.shape[:-1], price), mean1 + sd1 * z[..., 0], sd2 * z[..., 1]], axis=-1
            )

        return coefficients

    b, loglik = _numpy_panel_msl(
        arrays, arrays.panel, standard, theta_of, np.array(list(start.values()))
    )
    assert results.loglik == pytest.approx(loglik, abs=1e-6)
    np.testing.assert_allclose(results.params[[0, 1, 3, 4]], b, atol=2e-5)
    # the simulation-noise check re-maximises with the same parameter held fixed
    report = check_simulation_noise(results)
    assert report["params_reestimated"]["ASC_2"] == 0.0


def test_save_load_keeps_restrictions(mnl_data, tmp_path):
    results = MultinomialLogit(MNL_VARIABLES).fit(
        mnl_data, fix={"ASC_2": 0.0}, bounds={"time": (None, 0.0)}
    )
    path = tmp_path / "fit.json"
    results.save(path)
    loaded = EstimationResults.load(path)
    assert loaded.fixed_parameters == {"ASC_2": 0.0}
    assert loaded.bounds == {"time": (None, 0.0)}
    assert np.isnan(loaded.std_errors[1]) and loaded.num_estimated == 4
    assert loaded.aic == pytest.approx(results.aic)


@pytest.mark.parametrize(
    "fix, bounds, message",
    [
        ({"ASC_9": 0.0}, None, r"fix: \['ASC_9'\] are not parameters"),
        ({"price": float("inf")}, None, r"fix\['price'\] must be finite"),
        ({"price": "cheap"}, None, r"fix\['price'\] must be a number"),
        (None, {"price": (1.0, 0.0)}, r"bounds\['price'\]: lower 1.0 must be below upper 0.0"),
        (None, {"price": 1.0}, r"bounds\['price'\] must be a pair"),
        ({"price": 0.0}, {"price": (-1.0, 1.0)}, "both fixed and bounded"),
        ({n: 0.0 for n in MNL_VARIABLES}, None, "every parameter is fixed"),
    ],
)
def test_bad_restrictions_are_named(fix, bounds, message):
    with pytest.raises(ValueError, match=message):
        parse_restrictions(MNL_VARIABLES, fix, bounds)


def test_bounds_need_a_bounded_optimiser_and_bayes_refuses_fix(mnl_data):
    model = MultinomialLogit(MNL_VARIABLES)
    with pytest.raises(ValueError, match="bounds need optimizer='l-bfgs-b'"):
        model.fit(mnl_data, fix={"ASC_2": 0.0}, bounds={"price": (-2, 0)}, optimizer="bfgs")
    with pytest.raises(TypeError, match="fix"):
        MixedLogit(["price"], random={"time": "normal"}).fit(
            mnl_data, method="nuts", fix={"price": -1.0}
        )


def test_halton_options_reach_the_fit_and_its_rebuilt_problems():
    # fit(halton_options=...) draws with those points; prediction on data passed again (a
    # rebuilt problem) uses the same points as the fit's own problem
    model = MixedLogit(["price"], random={"ASC_1": "normal", "time": "normal"})
    truth = {"price": -1.0, "ASC_1": 0.3, "time": -0.5, "sd.ASC_1": 0.9, "sd.time": 0.6}
    data = simulate_choices(
        model, truth, num_people=60, situations_per_person=5, num_alternatives=3, seed=5509
    )
    default = model.fit(data, num_draws=32, hessian=False)
    same = model.fit(
        data, num_draws=32, hessian=False, halton_options={"skip": 100, "primes": [2, 3]}
    )
    assert same.loglik == default.loglik
    other = model.fit(
        data, num_draws=32, hessian=False, halton_options={"skip": 1, "primes": [7, 11]}
    )
    assert other.loglik != default.loglik
    assert other.halton_options == {"skip": 1, "primes": (7, 11)}
    np.testing.assert_allclose(other.predict(data).to_numpy(), other.predict().to_numpy())
    assert "skip 1, primes (7, 11)" in str(other)
    with pytest.raises(ValueError, match="apply to Halton draws"):
        model.fit(data, num_draws=8, draws="sobol", halton_options={"skip": 5})


# ---------------------------------------------------------------- linear equality constraints
def test_equality_constraints_equal_the_model_with_merged_columns(mnl_data):
    """``ASC_1 = ASC_2`` and ``time = 0.5 * price`` are one coefficient on ``ASC_1 + ASC_2``
    and one on ``price + 0.5 time``: the same maximum, and the constrained parameters carry
    that coefficient's standard errors (the dependent one scaled by its factor)."""
    model = MultinomialLogit(MNL_VARIABLES)
    constrained = model.fit(mnl_data, constraints=["ASC_1 = ASC_2", "time = 0.5 * price"])
    arrays = mnl_data.to_arrays(MNL_VARIABLES)
    X = arrays.X
    merged = np.stack([X[..., 0] + X[..., 1], X[..., 2], X[..., 3] + 0.5 * X[..., 4]], axis=-1)
    beta, loglik = numpy_mnl_fit(arrays._replace(X=merged), np.arange(3), np.zeros(3))
    assert constrained.loglik == pytest.approx(loglik, abs=1e-8)
    expected = [beta[0], beta[0], beta[1], beta[2], 0.5 * beta[2]]
    np.testing.assert_allclose(constrained.params, expected, rtol=1e-5)
    reference = MultinomialLogit(["both", "ASC_3", "combo"])
    frame = mnl_data.frame.assign(
        both=lambda f: f.alt.isin([1, 2]).astype(float),
        combo=lambda f: f.price + 0.5 * f.time,
    )
    merged_data = ChoiceData(
        frame, choice="choice", alternative="alt", situation="situation", panel="person"
    )
    fit = reference.fit(merged_data)
    se = dict(zip(fit.names, fit.std_errors, strict=True))
    robust = dict(zip(fit.names, fit.robust_std_errors, strict=True))
    np.testing.assert_allclose(
        constrained.std_errors,
        [se["both"], se["both"], se["ASC_3"], se["combo"], 0.5 * se["combo"]],
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        constrained.robust_std_errors,
        [robust["both"], robust["both"], robust["ASC_3"], robust["combo"], 0.5 * robust["combo"]],
        rtol=1e-5,
    )
    assert constrained.num_estimated == 3 and constrained.aic == pytest.approx(fit.aic)
    assert constrained.constraints == ["ASC_1 - ASC_2 = 0", "time - 0.5 * price = 0"]
    assert "Constraints: ASC_1 - ASC_2 = 0; time - 0.5 * price = 0" in constrained.summary_text()
    assert constrained.hessian_eigenvalues().shape == (3,)


def test_constraints_with_fixed_values_likelihood_ratio_and_persistence(mnl_data, tmp_path):
    from mixlogit.model_comparison import likelihood_ratio_test

    model = MultinomialLogit(MNL_VARIABLES)
    full = model.fit(mnl_data)
    # with a fixed ASC_1 the first constraint pins ASC_2 too: two parameters held, one free
    # fewer for the second constraint
    restricted = model.fit(
        mnl_data, fix={"ASC_1": 0.2}, constraints=["ASC_2 + ASC_3 = ASC_1", "time = price"]
    )
    p = dict(zip(restricted.names, restricted.params, strict=True))
    assert p["ASC_2"] + p["ASC_3"] == pytest.approx(0.2, abs=1e-12)
    assert p["time"] == pytest.approx(p["price"], abs=1e-12)
    test = likelihood_ratio_test(restricted, full)
    assert test.df == 3  # one fixed value and two constraints
    assert test.statistic == pytest.approx(2 * (full.loglik - restricted.loglik))
    path = tmp_path / "constrained.json"
    restricted.save(path)
    loaded = EstimationResults.load(path)
    assert loaded.constraints == restricted.constraints and loaded.num_estimated == 2
    np.testing.assert_array_equal(loaded.std_errors, restricted.std_errors)
    boot = MultinomialLogit(MNL_VARIABLES).fit(mnl_data, constraints=["time = price"])
    draws = boot.bootstrap(3, seed=1).draws
    np.testing.assert_allclose(draws[:, 3], draws[:, 4], rtol=1e-10)


def test_constrained_mixed_logit_holds_the_constraint_at_a_maximum(mnl_data):
    model = MixedLogit(["ASC_1", "ASC_2", "ASC_3"], {"price": "normal", "time": "normal"})
    results = model.fit(mnl_data, num_draws=60, constraints=["sd.price = sd.time"])
    assert results["sd.price"] == results["sd.time"]
    assert results.converged and results.num_estimated == 6
    free = results.restrictions.project(results.gradient)
    assert np.max(np.abs(free)) < 1e-3
    se = dict(zip(results.names, results.robust_std_errors, strict=True))
    assert se["sd.price"] == pytest.approx(se["sd.time"], rel=1e-12)


@pytest.mark.parametrize(
    "constraints, fix, bounds, message",
    [
        (["price = cost"], None, None, r"\['cost'\] are not parameters"),
        (["price * time = 0"], None, None, "is not linear"),
        (["price = time = 1"], None, None, "must have one '='"),
        (["2 = 3"], None, None, "involves no parameter"),
        (["price +"], None, None, "must have one '='"),
        (["price + = time"], None, None, "a term is missing"),
        (["price = time", "2 * price = 2 * time"], None, None, "is implied by"),
        (["ASC_1 = 1"], {"ASC_1": 0.0}, None, "contradicts"),
        (["price = time"], None, {"time": (None, 0.0)}, r"\['time'\] are bounded and determined"),
        ([({"price": "x"}, 0.0)], None, None, "expected a string"),
    ],
)
def test_bad_constraints_are_named(constraints, fix, bounds, message):
    with pytest.raises(ValueError, match=message):
        parse_restrictions(MNL_VARIABLES, fix, bounds, constraints)


def test_constraints_refuse_newton(mnl_data):
    with pytest.raises(ValueError, match="does not take constraints"):
        MultinomialLogit(MNL_VARIABLES).fit(
            mnl_data, constraints=["price = time"], optimizer="newton"
        )
