"""Models in willingness-to-pay space (``MixedLogit(..., wtp_space="price")``).

Independent references: an MNL in WTP space is the preference-space MNL reparametrised, so
the maximum, the predictions and the elasticities coincide and the WTP's standard errors are
the delta method's (ML is invariant and its covariance transforms with the Jacobian at the
maximum); the simulated likelihood against a NumPy reference written from the parameter names;
recovery of known WTPs on data simulated with a seed and a design not used in development.
"""

import numpy as np
import pytest
from scipy import special

from mixlogit import MixedLogit, MultinomialLogit
from mixlogit.draws import standardised_draws
from mixlogit.simulate import simulate_choices


@pytest.fixture(scope="module")
def mnl_pair():
    preference = MultinomialLogit(["x1", "x2", "price"])
    data = simulate_choices(
        preference,
        {"x1": 0.8, "x2": -0.5, "price": -1.2},
        num_people=300,
        seed=31,
        variable_scale={"price": 2.0},
    )
    wtp_space = MixedLogit(["x1", "x2", "price"], wtp_space="price")
    return data, preference.fit(data), wtp_space.fit(data)


def test_mnl_in_wtp_space_is_the_preference_space_mnl_reparametrised(mnl_pair):
    _, preference, wtp_space = mnl_pair
    assert wtp_space.loglik == pytest.approx(preference.loglik, abs=1e-9)
    assert wtp_space["price"] == pytest.approx(preference["price"], rel=1e-7)
    for name in ("x1", "x2"):
        ratio = preference.wtp(name, "price")
        direct = wtp_space.wtp(name, "price")
        assert direct["wtp"] == pytest.approx(ratio["wtp"], rel=1e-7)
        # delta method in preference space = the WTP-space parameter's own standard errors
        assert direct["std_err"] == pytest.approx(ratio["std_err"], rel=1e-6)
        assert direct["robust_std_err"] == pytest.approx(ratio["robust_std_err"], rel=1e-6)
        assert direct["q2.5%"] < direct["kr_median"] < direct["q97.5%"]
    np.testing.assert_allclose(
        wtp_space.predict().to_numpy(), preference.predict().to_numpy(), rtol=1e-7
    )
    e_pref = preference.elasticities("x1")
    e_wtp = wtp_space.elasticities("x1")
    np.testing.assert_allclose(e_wtp.aggregate.to_numpy(), e_pref.aggregate.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(e_wtp.std_errors.to_numpy(), e_pref.std_errors.to_numpy(), rtol=1e-5)


MODEL = MixedLogit(
    ["ASC_1", "x2"],
    {"price": "-lognormal", "x1": "normal", "x3": "triangular"},
    mean_covariates={"x1": ["z"]},
    wtp_space="price",
)


def reference_unit_loglik(model, data, theta, standard, log_weights):
    """Per-person simulated log-likelihood with ``beta_k = -beta_p w_k``, from the names."""
    p = dict(zip(model.parameter_names, theta, strict=True))
    arrays = data.to_arrays(model.variables)
    z = data.unit_values(["z"])[:, 0]
    e = {name: standard[..., k] for k, name in enumerate(model.random)}
    price = -np.exp(p["price"] + p["sd.price"] * e["price"])  # (P, R)
    wtp = {
        "ASC_1": np.full_like(price, p["ASC_1"]),
        "x2": np.full_like(price, p["x2"]),
        "x1": p["x1"] + p["x1:z"] * z[:, None] + p["sd.x1"] * e["x1"],
        "x3": p["x3"] + p["spread.x3"] * e["x3"],
    }
    beta = np.stack(
        [price if n == "price" else -price * wtp[n] for n in model.variables], axis=-1
    )  # (P, R, K)
    v = np.einsum("sjk,srk->sjr", arrays.X, beta[arrays.panel])
    v = np.where(arrays.available[:, :, None], v, -np.inf)
    logp = v[np.arange(len(v)), arrays.chosen] - special.logsumexp(v, axis=1)
    per_unit = np.zeros((arrays.num_panels, logp.shape[1]))
    np.add.at(per_unit, arrays.panel, logp)
    return special.logsumexp(per_unit + log_weights, axis=1)


@pytest.mark.parametrize("layout", ["blocks", "grid", "gathered"])
def test_simulated_likelihood_matches_numpy_in_every_layout(
    layout, likelihood_in_layout, one_long_panel
):
    names = MODEL.parameter_names
    truth = dict.fromkeys(names, 0.3)
    data = simulate_choices(MODEL, truth, num_people=15, situations_per_person=3, seed=12)
    if layout == "gathered":
        data = one_long_panel(data, 25, keep=("z",))
    standard, log_w = standardised_draws(MODEL, data.num_panels, 17, "mlhs", 2)
    theta = np.random.default_rng(8).normal(0.0, 0.3, len(names))
    unit_ll, value, grad, scores = likelihood_in_layout(
        MODEL, data, standard, log_w, theta, layout, 6
    )
    expected = reference_unit_loglik(MODEL, data, theta, standard, log_w)
    np.testing.assert_allclose(unit_ll, expected, rtol=1e-11)
    assert value == pytest.approx(expected.sum(), rel=1e-11)
    np.testing.assert_allclose(grad, scores.sum(axis=0), rtol=1e-9, atol=1e-10)
    numeric = np.empty(len(theta))
    for i in range(len(theta)):
        up, down = theta.copy(), theta.copy()
        up[i] += 1e-6
        down[i] -= 1e-6
        numeric[i] = (
            reference_unit_loglik(MODEL, data, up, standard, log_w).sum()
            - reference_unit_loglik(MODEL, data, down, standard, log_w).sum()
        ) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_recovers_known_wtps_on_fresh_data():
    """Seed 20261205 and a design unlike the development case (two random WTPs, one of them
    uniform, a fixed WTP, a lognormal price scale); every parameter within 3.5 robust SE and
    the WTP medians within 3.5 of their Krinsky-Robb half-widths, tolerances fixed before the
    first run."""
    model = MixedLogit(
        ["comfort"],
        {"price": "-lognormal", "time": "normal", "wifi": "uniform"},
        wtp_space="price",
    )
    truth = {
        "comfort": 2.0,
        "price": -0.3,
        "time": -3.0,
        "wifi": 1.0,
        "sd.price": 0.5,
        "sd.time": 1.2,
        "spread.wifi": 0.8,
    }
    data = simulate_choices(
        model,
        truth,
        num_people=1000,
        situations_per_person=8,
        seed=20261205,
        variable_scale={"price": 1.5},
    )
    results = model.fit(data, num_draws=400)
    table = results.table()
    for name, value in truth.items():
        gap = abs(table.loc[name, "estimate"] - value) / table.loc[name, "robust_std_err"]
        assert gap < 3.5, (name, table.loc[name, "estimate"], value)
    # a random WTP is drawn from its own distribution: median = location for these symmetric ones
    for name in ("time", "wifi"):
        wtp = results.wtp(name, "price", num_draws=40_000, parameter_draws=40)
        half = (wtp["kr_median_q97.5%"] - wtp["kr_median_q2.5%"]) / 2
        assert abs(wtp["median"] - truth[name]) < 3.5 * half, (name, wtp["median"])
        assert wtp["mean"] == pytest.approx(results[name], abs=0.03)
    fixed = results.wtp("comfort", "price")
    assert fixed["wtp"] == results["comfort"]
    conditional = results.individual_coefficients()
    assert list(conditional.columns[:3]) == ["price", "time", "wifi"]  # WTPs of each person


def test_wtp_space_is_checked_and_kept():
    with pytest.raises(ValueError, match="wtp_space='cost' is not a variable"):
        MixedLogit(["x1", "price"], wtp_space="cost")
    model = MixedLogit(["x1"], {"price": "-lognormal"}, wtp_space="price")
    assert MixedLogit.from_dict(model.to_dict()).spec == model.spec
    assert "wtp_space='price'" in repr(model)
    data = simulate_choices(model, dict.fromkeys(model.parameter_names, 0.1), num_people=10)
    with pytest.raises(NotImplementedError, match="preference space only"):
        model.fit(data, method="svi", num_steps=1)
