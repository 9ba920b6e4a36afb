"""Bayesian fits (NUTS/SVI, NumPyro/Pyro) on small simulated data with known truth."""

from __future__ import annotations

import warnings
from functools import partial

import arviz as az
import jax
import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy.special import log_softmax

from mixlogit.bayes import BayesPriors, LatentClassLogit, fit_bayes, panel_arrays
from mixlogit.simulate import draw_person_coefficients, simulate_choice_arrays
from mixlogit.spec import ModelSpec


def _mle(arr):
    """Independent MNL maximum likelihood with scipy (estimate, SE)."""

    def negll(b):
        V = np.where(arr.available, arr.X @ b, -np.inf)
        return -log_softmax(V, 1)[np.arange(len(V)), arr.chosen].sum()

    fit = optimize.minimize(negll, np.zeros(arr.X.shape[2]), method="BFGS", options={"gtol": 1e-9})
    return fit.x, np.sqrt(np.diag(fit.hess_inv))


@pytest.fixture(scope="module")
def mnl_fit():
    rng = np.random.default_rng(11)
    beta = np.tile([1.0, -0.7], (300, 1))
    arr = simulate_choice_arrays(beta, 1, 3, ("x0", "x1"), seed=int(rng.integers(1000)))
    spec = ModelSpec.build(fixed=["x0", "x1"])
    res = fit_bayes(spec, arr, num_warmup=300, num_samples=300, num_chains=2, seed=1)
    return arr, res


def test_mnl_nuts_matches_maximum_likelihood(mnl_fit):
    arr, res = mnl_fit
    mle, se = _mle(arr)
    pop = res.population()
    post_mean = pop.posterior_mean.to_numpy()
    post_sd = pop.posterior_sd.to_numpy()
    # With 300 observations and Normal(0, 10) priors the posterior is the likelihood to
    # O(1/n): means within 0.3 posterior SD of the MLE, SDs within 20% of the ML SEs.
    np.testing.assert_array_less(np.abs(post_mean - mle) / post_sd, 0.3)
    np.testing.assert_allclose(post_sd, se, rtol=0.2)
    assert res.diagnostics["divergences"] == 0
    assert res.diagnostics["max_r_hat"] < 1.05


def test_inference_data_groups_and_pointwise_loglik(mnl_fit):
    arr, res = mnl_fit
    idata = res.idata
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data"):
        assert group in idata.groups()
    assert "posterior_predictive" in idata.groups()
    ll = idata.log_likelihood["choice"].values
    assert ll.shape == (2, 300, arr.num_panels)
    # pointwise log-likelihood at one draw equals the numpy log-likelihood per person
    b = idata.posterior["beta_fixed"].values[1, 17]
    V = np.where(arr.available, arr.X @ b, -np.inf)
    lp = log_softmax(V, 1)[np.arange(len(V)), arr.chosen]
    np.testing.assert_allclose(ll[1, 17], np.bincount(arr.panel, lp), rtol=1e-10)
    np.testing.assert_array_equal(idata.observed_data["choice"].values, arr.chosen)
    # replicated choice shares = the model's predicted shares averaged over the posterior
    rep = idata.posterior_predictive["choice"].values
    assert rep.shape == (2, 300, len(arr.chosen))
    draws = idata.posterior["beta_fixed"].values.reshape(-1, 2)
    V = np.where(arr.available[None], np.einsum("sjk,dk->dsj", arr.X, draws), -np.inf)
    predicted = np.exp(log_softmax(V, -1)).mean((0, 1))
    rep_share = np.stack([(rep == j).mean() for j in range(3)])
    np.testing.assert_allclose(rep_share, predicted, atol=0.005)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo)


def test_results_contract_and_deprecated_wtp_order(mnl_fit):
    """wtp(attribute, cost) as in EstimationResults; the old (cost, attributes) order warns."""
    _, res = mnl_fit
    new = res.wtp("x0", "x1", level="population", num_draws=32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = res.wtp("x1", attributes=["x0"], level="population", num_population_draws=32)
    messages = [str(w.message) for w in caught if w.category is DeprecationWarning]
    assert any("wtp(cost, attributes) is deprecated" in m for m in messages)
    assert any("num_population_draws= is deprecated" in m for m in messages)
    pd.testing.assert_frame_equal(new, old)
    draws = res.idata.posterior["beta_fixed"].values.reshape(-1, 2)
    individual = res.wtp("x0", "x1")  # MNL: every person has the population coefficients
    np.testing.assert_allclose(individual["mean"], np.mean(-draws[:, 0] / draws[:, 1]))
    # interval columns follow the interval; summary() is a DataFrame, str() the report
    table = res.population(interval=0.9)
    assert list(table.columns[-3:]) == ["q5%", "median", "q95%"]
    assert table["q5%"].iloc[0] == pytest.approx(np.quantile(draws[:, 0], 0.05))
    assert isinstance(res.summary(), pd.DataFrame) and "hdi_5%" in res.summary(interval=0.9)
    text = str(res)
    assert text == res.summary_text() and "Specification: fixed=['x0', 'x1']" in text


def test_deprecated_keywords_of_fit_bayes():
    spec = ModelSpec.build(fixed=["x0"], random={"x1": "normal"})
    arr = simulate_choice_arrays(np.ones((10, 2)), 2, 2, spec.variables)
    common = dict(method="svi", num_steps=20, log_likelihood=False, diagnose=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = fit_bayes(spec, arr, svi_draws=8, num_posterior_draws=5, loglik_draws=4, **common)
    assert {str(w.message) for w in caught if w.category is DeprecationWarning} == {
        "fit_bayes: svi_draws= is deprecated, use num_draws=8",
        "fit_bayes: num_posterior_draws= is deprecated, use num_samples=5",
        "fit_bayes: loglik_draws= is deprecated, use num_loglik_draws=4",
    }
    new = fit_bayes(spec, arr, num_draws=8, num_samples=5, num_loglik_draws=4, **common)
    assert old.settings == new.settings and new.settings["num_draws"] == 8
    np.testing.assert_array_equal(old.elbo, new.elbo)
    with pytest.raises(TypeError, match=r"pass num_draws= only"):
        fit_bayes(spec, arr, svi_draws=8, num_draws=9, **common)
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['svi_draw'\]"):
        fit_bayes(spec, arr, svi_draw=8, **common)


def test_subsampled_objective_is_unbiased():
    """Average of the scaled batch log-densities over a partition = full log-density."""
    from numpyro.infer.util import log_density

    from mixlogit.bayes import numpyro_model as nm

    spec = ModelSpec.build(fixed=["x0"], random={"x1": "normal", "price": ("gamma", -1)})
    beta = draw_person_coefficients(spec, 12, {"x0": 1.0}, {"x1": (0.5, 0.8), "price": (0.0, 1.0)})
    panel = panel_arrays(simulate_choice_arrays(beta, 3, 3, spec.variables, seed=4))
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        params = {
            "beta_fixed": np.array([0.9]),
            "mu": np.array([0.4, 0.1]),
            "sigma": np.array([0.7]),
            "log_shape": np.array([0.3]),
            "z": rng.normal(size=(12, 1)),
            "u_std": rng.normal(size=(12, 1)),
        }

        def batch(idx):
            return {
                "X": panel.X[idx],
                "chosen": panel.chosen[idx],
                "available": panel.available[idx],
                "weights": panel.weights[idx],
            }

        model = partial(nm.hierarchical_model, num_panels=12, spec=spec, priors=BayesPriors())
        full, _ = log_density(model, (batch(np.arange(12)),), {}, params)
        parts = []
        for idx in np.split(np.arange(12), 4):
            p = dict(params, z=params["z"][idx], u_std=params["u_std"][idx])
            parts.append(float(log_density(model, (batch(idx), idx), {}, p)[0]))
    # global prior terms appear once in every batch, person terms are scaled by P / B = 4
    np.testing.assert_allclose(np.mean(parts), float(full), rtol=1e-12)


def test_pyro_and_numpyro_models_have_the_same_log_density():
    import pyro
    import torch
    from numpyro.infer.util import log_density

    from mixlogit.bayes import numpyro_model as nm
    from mixlogit.bayes import pyro_model as pm

    spec = ModelSpec.build(
        fixed=["x0"],
        random={"x1": "normal", "x2": "normal", "price": ("gamma", -1), "t": "triangular"},
        correlated=["x1", "x2"],
    )
    rng = np.random.default_rng(5)
    arr = simulate_choice_arrays(rng.normal(size=(6, 5)), 3, 3, spec.variables, seed=5)
    panel = panel_arrays(arr)
    L = np.linalg.cholesky(np.array([[1.0, 0.4], [0.4, 1.0]]))
    params = {
        "beta_fixed": np.array([0.9]),
        "mu": np.array([0.4, -0.2, 0.1, 0.3]),
        "sigma": np.array([0.7, 1.1, 0.5]),
        "log_shape": np.array([0.3]),
        "L_corr": L,
        "z": rng.normal(size=(6, 3)),
        "u_std": rng.normal(size=(6, 1)),
    }
    batch_np = {k: getattr(panel, k) for k in ("X", "chosen", "available", "weights")}
    priors = BayesPriors(location={"x0": 0.5}, scale={"price": 2.0})
    with jax.enable_x64(True):
        model = partial(nm.hierarchical_model, num_panels=6, spec=spec, priors=priors)
        want = float(log_density(model, (batch_np,), {}, params)[0])
    batch_t = pm.BACKEND.batch(panel)
    tparams = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in params.items()}
    pmodel = partial(pm.hierarchical_model, num_panels=6, spec=spec, priors=priors)
    trace = pyro.poutine.trace(pyro.poutine.condition(pmodel, data=tparams)).get_trace(batch_t)
    got = float(trace.log_prob_sum())
    # torch's and JAX's digamma/trigamma (standardised gamma draws) agree to ~1e-12 relative
    np.testing.assert_allclose(got, want, rtol=1e-10)

    # latent class (ordered coefficient + factor prior) and quadrature models
    lc_params = {
        "class_share": np.array([0.3, 0.7]),
        "beta_ordered": np.array([-1.0, 0.5]),
        "beta_rest": rng.normal(size=(2, 4)),
    }
    with jax.enable_x64(True):
        lc = partial(
            nm.latent_class_model,
            num_panels=6,
            spec=spec,
            priors=priors,
            num_classes=2,
            order_by=2,
        )
        want = float(log_density(lc, (batch_np,), {}, lc_params)[0])
    tlc = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in lc_params.items()}
    plc = partial(
        pm.latent_class_model, num_panels=6, spec=spec, priors=priors, num_classes=2, order_by=2
    )
    got = float(
        pyro.poutine.trace(pyro.poutine.condition(plc, data=tlc)).get_trace(batch_t).log_prob_sum()
    )
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_svi_subsampled_hierarchical_outputs():
    spec = ModelSpec.build(fixed=["x0"], random={"x1": "normal", "price": ("lognormal", -1)})
    beta = draw_person_coefficients(
        spec, 60, {"x0": 1.0}, {"x1": (0.5, 0.8), "price": (0.0, 0.4)}, seed=3
    )
    arr = simulate_choice_arrays(beta, 6, 3, spec.variables, seed=3)
    res = fit_bayes(
        spec,
        arr,
        method="svi",
        batch_size=20,
        num_steps=400,
        learning_rate=0.03,
        local_guide="noncentred",  # per-person guides on subsampled plates
        num_samples=100,
        num_loglik_draws=64,
        diagnose=False,
    )
    assert res.elbo.shape == (400,)
    assert res.elbo[-100:].mean() > res.elbo[:100].mean() + 20
    assert res.idata.posterior["z"].shape == (1, 100, 60, 2)
    ind = res.individual_coefficients()
    assert list(ind.columns) == ["person", "coefficient", "mean", "sd", "q3%", "median", "q97%"]
    assert len(ind) == 60 * 3
    # price is lognormal with sign -1: every person draw negative, so WTP is well defined
    assert (ind[ind.coefficient == "price"]["q97%"] < 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wtp = res.wtp(cost="price", level="individual")
        pop_wtp = res.wtp(cost="price", level="population", num_draws=256)
    assert set(wtp.attribute) == {"x0", "x1"}
    assert set(pop_wtp.statistic) == {"mean", "median"}
    # the fixed-coefficient WTP of x0 is 1 / mean(-price)... sign: positive
    assert pop_wtp.query("attribute == 'x0'").posterior_mean.gt(0).all()
    with pytest.raises(ValueError, match="cost coefficient 'cost' is not in the model"):
        res.wtp("x1", "cost")


def _svi_recovers_truth(num_people, situations, num_steps, num_draws, spread_range, gamma):
    """Default SVI (person coefficients integrated by simulation, full-covariance Gaussian on
    the population parameters) on x1, x2 normal random (and price gamma, mean -1, shape e):
    every population mean and SD within 3 posterior SDs of the truth, posterior SDs not
    collapsed, person draws from their conditionals."""
    random = {"x1": "normal", "x2": "normal"}
    truth = {"x0": 1.0}, {"x1": (0.5, 1.0), "x2": (-1.0, 0.6)}
    expected = {
        ("x0", "mean"): 1.0,
        ("x1", "mean"): 0.5,
        ("x1", "sd"): 1.0,
        ("x2", "mean"): -1.0,
        ("x2", "sd"): 0.6,
    }
    if gamma:
        random["price"] = ("gamma", -1)
        truth[1]["price"] = (0.0, 1.0)
        expected[("price", "mean")] = -1.0
        expected[("price", "sd")] = np.exp(-0.5)  # gamma shape e: sd = mean / sqrt(shape)
    spec = ModelSpec.build(fixed=["x0"], random=random)
    beta = draw_person_coefficients(spec, num_people, *truth, seed=21)
    arr = simulate_choice_arrays(beta, situations, 3, spec.variables, seed=22)
    res = fit_bayes(
        spec,
        arr,
        method="svi",
        num_steps=num_steps,
        learning_rate=0.03,
        num_draws=num_draws,
        num_samples=200,
        num_loglik_draws=32,
        diagnose=False,
    )
    assert res.settings["local_guide"] == "marginal"
    pop = res.population().set_index(["coefficient", "statistic"])
    for key, value in expected.items():
        mean, sd = pop.loc[key, "posterior_mean"], pop.loc[key, "posterior_sd"]
        assert abs(mean - value) <= 3 * sd, (key, mean, sd, value)
        # a collapsed guide gives SDs of population parameters near 0 (or SDs near 0)
        assert 0.01 < sd < 1.0, (key, sd)
    assert pop.loc[("x2", "sd"), "posterior_mean"] > 0.2
    # converged: the last quarter of the ELBO trace is flat within its noise
    quarter = res.elbo[-num_steps // 4 :]
    half = len(quarter) // 2
    noise = quarter.std() / np.sqrt(half)
    assert abs(quarter[:half].mean() - quarter[half:].mean()) < 4 * noise
    # person draws track their own choices: the spread of person means of x1 is a sizeable
    # part of the population SD (shrunk towards the mean, not collapsed onto it)
    ind = res.individual_coefficients()
    spread = ind[ind.coefficient == "x1"]["mean"].std()
    assert spread_range[0] < spread < spread_range[1], spread


def test_svi_marginal_guide_recovers_means_and_sds():
    _svi_recovers_truth(120, 8, 800, num_draws=64, spread_range=(0.2, 1.0), gamma=False)


@pytest.mark.slow
def test_svi_marginal_guide_recovers_means_and_sds_with_gamma():
    # compiling the reparameterised Gamma sampler's gradient dominates the run time
    _svi_recovers_truth(300, 10, 1500, num_draws=128, spread_range=(0.3, 1.0), gamma=True)


@pytest.mark.parametrize(
    ("local_guide", "positive_guide"), [("noncentred", "gamma"), ("centred", "lognormal")]
)
def test_person_guides_drive_the_standardised_gamma_site(local_guide, positive_guide):
    """The per-person guides (LogNormal or Gamma on u) reach the model's ``u_std`` site: the
    ELBO improves and the person draws ``u`` are positive."""
    spec = ModelSpec.build(fixed=["x0"], random={"price": ("gamma", -1)})
    beta = draw_person_coefficients(spec, 40, {"x0": 1.0}, {"price": (0.0, 1.0)}, seed=5)
    arr = simulate_choice_arrays(beta, 5, 3, spec.variables, seed=6)
    res = fit_bayes(
        spec,
        arr,
        method="svi",
        local_guide=local_guide,
        positive_guide=positive_guide,
        num_steps=300,
        learning_rate=0.03,
        num_samples=50,
        num_loglik_draws=32,
        diagnose=False,
    )
    assert np.isfinite(res.elbo).all()
    assert res.elbo[-50:].mean() > res.elbo[:50].mean() + 20
    u = res.idata.posterior["u"].values
    assert u.shape == (1, 50, 40, 1) and (u > 0).all()


def test_fit_bayes_rejects_bad_arguments():
    spec = ModelSpec.build(fixed=["x0"], random={"x1": "normal", "x2": "normal", "x3": "normal"})
    arr = simulate_choice_arrays(np.ones((4, 4)), 2, 2, spec.variables)
    with pytest.raises(ValueError, match="method must be one of"):
        fit_bayes(spec, arr, method="mcmc")
    with pytest.raises(ValueError, match="local_guide must be one of"):
        fit_bayes(spec, arr, method="svi", local_guide="meanfield")
    with pytest.raises(ValueError, match="lr_decay must be in"):
        fit_bayes(spec, arr, method="svi", lr_decay=0.0)
    with pytest.raises(
        ValueError, match="at most 2 random coefficients per person, the model has 3"
    ):
        fit_bayes(spec, arr, integrate="quadrature")
    with pytest.raises(ValueError, match="only available with method='svi'"):
        fit_bayes(spec, arr, batch_size=2)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        LatentClassLogit(["x0"], num_classes=1)
    with pytest.raises(ValueError, match="order_by 'zz'"):
        LatentClassLogit(["x0"], order_by="zz")


@pytest.fixture(scope="module")
def svi_panel_fit():
    """``MixedLogit.fit(method="svi")`` on ChoiceData whose panel ids are not ``0 .. P-1``
    (30 people labelled ``1000 + 7 * (29 - p)``: descending, so an id is not its position)."""
    from mixlogit import ChoiceData, MixedLogit

    spec = ModelSpec.build(fixed=["x0"], random={"x1": "normal"})
    beta = draw_person_coefficients(spec, 30, {"x0": 1.0}, {"x1": (0.5, 0.5)}, seed=2)
    arr = simulate_choice_arrays(beta, 4, 3, spec.variables, seed=2)
    S, J, _ = arr.X.shape
    frame = pd.DataFrame(
        {
            "sit": np.repeat(np.arange(S), J),
            "alt": np.tile(np.arange(J), S),
            "person": np.repeat(1000 + 7 * (29 - arr.panel), J),
            "chosen": (np.arange(J)[None, :] == arr.chosen[:, None]).ravel().astype(int),
            "x0": arr.X[..., 0].ravel(),
            "x1": arr.X[..., 1].ravel(),
        }
    )
    data = ChoiceData(frame, choice="chosen", alternative="alt", situation="sit", panel="person")
    model = MixedLogit(fixed=["x0"], random={"x1": "normal"})
    res = model.fit(data, method="svi", num_steps=200, num_samples=50, diagnose=False)
    return spec, data, res


def test_mixedlogit_dispatches_to_bayes(svi_panel_fit):
    spec, _, res = svi_panel_fit
    assert res.spec == spec
    assert res.idata.log_likelihood["choice"].shape == (1, 50, 30)
    assert res.idata.observed_data["choice"].shape == (120,)


def test_person_labels_are_the_panel_ids(svi_panel_fit):
    # before: people were labelled 0 .. P-1 where the classical results use the panel ids
    _, data, res = svi_panel_fit
    ids = np.asarray(data.panel_ids)
    assert not np.array_equal(ids, np.arange(len(ids)))
    individual = res.individual_coefficients()
    np.testing.assert_array_equal(individual["person"].to_numpy(), np.repeat(ids, 2))
    np.testing.assert_array_equal(res.idata.posterior["z"].coords["person"].values, ids)
    np.testing.assert_array_equal(res.idata.log_likelihood["choice"].coords["person"].values, ids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # x0 > 0: the cost-sign warning of every draw
        wtp = res.wtp("x1", "x0")
    np.testing.assert_array_equal(wtp["person"].to_numpy(), ids)
    # the person with the most extreme conditional mean of x1 is found under their own id
    person = individual[individual["coefficient"] == "x1"].set_index("person")["mean"]
    k = int(np.argmax(res.beta_person[..., 1].mean((0, 1))))
    assert person.idxmax() == ids[k]


def test_cost_sign_warning_never_rounds_a_share_to_zero():
    from mixlogit.bayes.results import BayesDiagnosticWarning, BayesianResults

    # before: "the cost coefficient is >= 0 in 0.0% of draws" for 1 draw in 4000
    cost = -np.ones(4000)
    cost[7] = 0.2
    with pytest.warns(BayesDiagnosticWarning, match=r">= 0 in 1 of 4000 draws \(< 0\.1%\)"):
        BayesianResults._warn_cost_sign(cost)
    cost[:1000] = 0.5
    with pytest.warns(BayesDiagnosticWarning, match=r"in 1000 of 4000 draws \(25\.0%\)"):
        BayesianResults._warn_cost_sign(cost)
    cost[:3999] = 0.5
    with pytest.warns(BayesDiagnosticWarning, match=r"in 3999 of 4000 draws \(> 99\.9%\)"):
        BayesianResults._warn_cost_sign(cost)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BayesianResults._warn_cost_sign(-np.ones(4000))  # all negative: silent


# ------------------------------------------------------------------------------------------
# Slow statistical checks
# ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_gamma_coefficient_posterior_covers_truth():
    spec = ModelSpec.build(fixed=["x0"], random={"x1": "normal", "price": ("gamma", -1)})
    truth = {"x0": 1.0}, {"x1": (0.5, 0.8), "price": (0.0, 1.0)}
    beta = draw_person_coefficients(spec, 200, *truth, seed=7)
    arr = simulate_choice_arrays(beta, 8, 3, spec.variables, seed=8)
    res = fit_bayes(spec, arr, num_warmup=400, num_samples=400, num_chains=2, seed=3)
    pop = res.population().set_index(["coefficient", "statistic"])
    expected = {
        ("x0", "mean"): 1.0,
        ("x1", "mean"): 0.5,
        ("x1", "sd"): 0.8,
        ("price", "mean"): -1.0,
        ("price", "sd"): np.exp(-0.5),  # gamma shape e: sd = mean / sqrt(shape)
    }
    # each population value within 3 posterior SDs (a 99.7% interval; 5 checks)
    for key, value in expected.items():
        mean, sd = pop.loc[key, "posterior_mean"], pop.loc[key, "posterior_sd"]
        assert abs(mean - value) <= 3 * sd, (key, mean, sd, value)
    assert res.diagnostics["divergences"] == 0
    # the standardised log-gamma person draws remove the shape/draw funnel (was r_hat 1.47)
    print("gamma NUTS diagnostics:", res.diagnostics)
    assert res.diagnostics["max_r_hat"] <= 1.01, res.diagnostics


@pytest.mark.slow
def test_latent_class_recovers_membership_and_compare():
    truth_class = (np.arange(120) >= 48).astype(int)
    beta = np.where(truth_class[:, None] == 0, [[-2.0, 1.0, 0.5]], [[1.0, -1.0, 0.5]])
    arr = simulate_choice_arrays(beta, 10, 3, ("a", "b", "c"), seed=3)
    lc = LatentClassLogit(["a", "b", "c"], num_classes=2).fit(
        arr, num_warmup=250, num_samples=250, num_chains=2, seed=1
    )
    member = lc.class_membership()
    accuracy = (member.most_likely_class.to_numpy() == truth_class).mean()
    assert accuracy >= 0.95
    pop = lc.population()
    share = pop[pop.statistic == "share"]
    assert share.iloc[0]["q3%"] <= 0.4 <= share.iloc[0]["q97%"]
    mnl = fit_bayes(
        ModelSpec.build(fixed=["a", "b", "c"]), arr, num_warmup=200, num_samples=250, num_chains=2
    )
    mixed = fit_bayes(
        ModelSpec.build(fixed=["c"], random={"a": "normal", "b": "normal"}),
        arr,
        integrate="quadrature",
        num_nodes=16,
        num_warmup=250,
        num_samples=250,
        num_chains=2,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = az.compare({"mnl": mnl.idata, "mixed": mixed.idata, "latent": lc.idata})
    # no warning about the log_likelihood group or unreliable LOO (pandas deprecations inside
    # ArviZ are not ours)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "log_likelihood" in m or "Pareto" in m], messages
    assert table.index[0] == "latent"
    assert table.index[-1] == "mnl"


@pytest.mark.slow
def test_pyro_and_numpyro_posteriors_agree():
    spec = ModelSpec.build(fixed=["x0", "price"], random={"x1": "normal"})
    beta = draw_person_coefficients(spec, 80, {"x0": 1.0, "price": -1.0}, {"x1": (0.5, 0.8)})
    arr = simulate_choice_arrays(beta, 6, 3, spec.variables, seed=9)
    kw = dict(
        integrate="quadrature",
        num_nodes=20,
        num_warmup=300,
        num_samples=400,
        num_chains=2,
        diagnose=False,
    )
    a = fit_bayes(spec, arr, backend="numpyro", **kw).summary()
    b = fit_bayes(spec, arr, backend="pyro", **kw).summary()
    mcse = np.sqrt(a["mcse_mean"] ** 2 + b["mcse_mean"] ** 2)
    diff = (a["mean"] - b["mean"]).abs()
    assert (diff <= 4 * mcse + 0.02).all(), pd.concat([a["mean"], b["mean"], mcse], axis=1)
    np.testing.assert_allclose(a["sd"], b["sd"], rtol=0.25)


def test_single_chain_nuts_reports_ess_without_r_hat():
    """One NUTS chain: ESS is still defined (r_hat is not), and the check must not fail."""
    rng = np.random.default_rng(12)
    beta = np.tile([1.0, -0.7], (150, 1))
    arr = simulate_choice_arrays(beta, 1, 3, ("x0", "x1"), seed=int(rng.integers(1000)))
    res = fit_bayes(
        ModelSpec.build(fixed=["x0", "x1"]),
        arr,
        num_warmup=150,
        num_samples=150,
        num_chains=1,
        seed=2,
    )
    diag = res.diagnostics
    assert "max_r_hat" not in diag
    assert diag["min_ess_bulk"] > 0 and np.isfinite(diag["min_ess_bulk"])
