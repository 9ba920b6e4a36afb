"""What the classical results report (issue 14, item 16): robust inference first, spreads as
magnitudes, WTP moments that exist, and a convergence line that does not contradict itself."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from scipy import stats

from mixlogit import MixedLogit, simulate_choices
from mixlogit.mixing import reciprocal_moments_exist
from mixlogit.results import WTPMomentWarning

TRUTH = {"x2": 0.5, "price": -1.0, "x1": 0.0, "sd.price": 0.6, "sd.x1": 0.5}


@pytest.fixture(scope="module")
def fit():
    """A small panel mixed logit (normal price, lognormal x1) started at a negative SD of
    price, so the optimiser ends with ``sd.price < 0`` (seed 29; 60 people x 4 situations,
    30 draws: a second or so)."""
    model = MixedLogit(fixed=["x2"], random={"price": "normal", "x1": "lognormal"})
    data = simulate_choices(model, TRUTH, num_people=60, situations_per_person=4, seed=29)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny sample may stop short of the tolerance
        return model.fit(data, num_draws=30, init={"sd.price": -0.6, "sd.x1": 0.5})


def test_fixture_ends_with_a_negative_spread(fit):
    # the premise of the magnitude test below: the raw parameter is negative
    assert fit["sd.price"] < 0


def test_table_leads_with_robust_inference(fit):
    # before: columns estimate, std_err, robust_std_err, z, p_value (p from the classical SE)
    table = fit.table()
    assert list(table.columns) == [
        "estimate",
        "robust_std_err",
        "robust_z",
        "robust_p_value",
        "std_err",
        "z",
        "p_value",
    ]
    estimate = table["estimate"].to_numpy()
    np.testing.assert_allclose(table["robust_std_err"], np.sqrt(np.diag(fit.robust_cov)))
    np.testing.assert_allclose(table["robust_z"], estimate / fit.robust_std_errors)
    np.testing.assert_allclose(
        table["robust_p_value"], 2 * stats.norm.sf(np.abs(estimate / fit.robust_std_errors))
    )
    np.testing.assert_allclose(
        table["p_value"], 2 * stats.norm.sf(np.abs(estimate / fit.std_errors))
    )
    # robust and classical SEs differ here, so the test tells which one the p-value used
    assert not np.allclose(table["robust_std_err"], table["std_err"], rtol=0.01)
    # the Wald interval of summary() is built on the robust SE too
    summary = fit.summary(interval=0.9)
    half = stats.norm.ppf(0.95) * fit.robust_std_errors
    np.testing.assert_allclose(summary["q5%"], estimate - half)
    np.testing.assert_allclose(summary["q95%"], estimate + half)


def test_spreads_are_reported_as_magnitudes_with_a_footnote(fit):
    # before: the table and report showed sd.price < 0 (as Electricity's sd.seas = -1.606)
    table = fit.table()
    assert table.loc["sd.price", "estimate"] == pytest.approx(-fit["sd.price"])
    assert table.loc["sd.price", "estimate"] > 0 and table.loc["sd.x1", "estimate"] > 0
    assert table.loc["price", "estimate"] == fit["price"]  # means keep their sign
    # the raw parameter stays accessible
    raw = fit.table(raw=True)
    np.testing.assert_array_equal(raw["estimate"], fit.params)
    assert fit.summary(raw=True).loc["sd.price", "estimate"] == fit["sd.price"]
    # the SE does not change with the sign; |z| does not either
    assert table.loc["sd.price", "robust_z"] == pytest.approx(-raw.loc["sd.price", "robust_z"])
    text = str(fit)
    flat = " ".join(text.split())  # the footnote is wrapped
    assert "Spreads (sd.price, sd.x1) are shown as magnitudes" in flat
    assert "is not identified" in flat and "Estimated with a negative sign: sd.price." in flat
    assert "robust_*: sandwich covariance" in text
    row = next(line for line in text.splitlines() if line.startswith("sd.price"))
    assert "-" not in row.split()[1]


def test_cholesky_columns_take_the_sign_of_their_diagonal(fit):
    # a correlated block: flipping a column of L leaves L L' unchanged
    model = MixedLogit(random={"x1": "normal", "x2": "normal"}, correlated=["x1", "x2"])
    names = ["x1", "x2", "chol.x1.x1", "chol.x2.x1", "chol.x2.x2"]
    params = np.array([0.3, -0.2, -0.8, 0.4, -0.6])
    fake = dataclasses.replace(fit, model=model, names=names, params=params)
    np.testing.assert_array_equal(fake.spread_signs, [1, 1, -1, -1, -1])
    L = np.array([[-0.8, 0.0], [0.4, -0.6]])
    shown = fake.spread_signs[2:] * params[2:]
    L_shown = np.array([[shown[0], 0.0], [shown[1], shown[2]]])
    np.testing.assert_allclose(L_shown @ L_shown.T, L @ L.T)


def test_random_cost_wtp_without_moments_warns_and_reports_quantiles(fit):
    # before: mean and SD of -x2 / price (price normal: no finite moments), silently
    with pytest.warns(WTPMomentWarning, match=r"normal \(its density is positive at 0\)"):
        wtp = fit.wtp("x2", "price", num_draws=20_000)
    assert list(wtp.index[:5]) == ["median", "q05", "q25", "q75", "q95"]
    assert np.isnan(wtp["mean"]) and np.isnan(wtp["sd"])
    population = fit.population_coefficients(num_draws=20_000)
    ratio = -population["x2"] / population["price"]
    assert wtp["median"] == pytest.approx(np.median(ratio))
    # a lognormal cost has every moment: no warning, finite mean
    with warnings.catch_warnings():
        warnings.simplefilter("error", WTPMomentWarning)
        lognormal = fit.wtp("price", "x1", num_draws=20_000)
    assert np.isfinite(lognormal["mean"]) and np.isfinite(lognormal["sd"])


@pytest.mark.parametrize(
    ("distribution", "first", "spread", "expected"),
    [
        ("uniform", 2.0, 1.0, (True, True)),  # on [1, 3]: bounded away from 0
        ("triangular", 0.5, 1.0, (False, False)),  # straddles 0
        ("truncnormal", 1.0, 0.5, (False, False)),  # density positive at the truncation 0
        ("gamma", np.log(1.5), 0.0, (True, False)),  # shape 1.5: mean only
        ("gamma", np.log(3.0), 0.0, (True, True)),
        ("gamma", np.log(0.8), 0.0, (False, False)),
    ],
)
def test_inverse_cost_moments_by_distribution(fit, distribution, first, spread, expected):
    model = MixedLogit(random={"price": distribution})
    names = list(model.spec.parameter_names)
    fake = dataclasses.replace(fit, model=model, names=names, params=np.array([first, spread]))
    assert fake._inverse_cost_moments("price")[:2] == expected


@pytest.mark.parametrize(
    ("distribution", "first", "spread", "expected", "reason"),
    [
        ("normal", -1.0, 0.3, (False, False), "normal (its density is positive at 0)"),
        ("normal", -1.0, 0.0, (True, True), ""),  # a constant -1
        ("normal", 0.0, 0.0, (False, False), "the constant 0"),
        ("truncnormal", 2.0, 0.1, (False, False), "truncnormal (its density is positive at 0)"),
        ("lognormal", -3.0, 2.0, (True, True), ""),
        ("uniform", -2.0, 1.5, (True, True), ""),  # on [-3.5, -0.5]
        ("uniform", -2.0, -2.5, (False, False), "uniform on [-4.5, 0.5], which contains 0"),
        ("uniform", 1.0, 1.0, (False, False), "uniform on [0, 2], which contains 0"),
        ("triangular", 0.5, 1.0, (False, False), "triangular on [-0.5, 1.5], which contains 0"),
        # the triangular density falls linearly to 0 at an endpoint: E|1/X| is finite there
        ("triangular", 1.0, 1.0, (True, False), "triangular on [0, 2], which ends at 0"),
        ("gamma", np.log(0.5), 3.0, (False, False), "gamma with shape 0.5 <= 1"),
        ("gamma", 0.0, 0.0, (False, False), "gamma with shape 1 <= 1"),
        ("gamma", np.log(1.7), -2.0, (True, False), "gamma with shape 1.7 <= 2"),
        ("gamma", np.log(2.5), 0.0, (True, True), ""),
        (None, -0.4, 0.0, (True, True), ""),  # a fixed coefficient
    ],
)
def test_reciprocal_moments_rule(distribution, first, spread, expected, reason):
    assert reciprocal_moments_exist(distribution, first, spread) == (*expected, reason)


def test_reciprocal_moments_rule_matches_simulated_sample_means():
    # the rule against simulation (seed 71): with moments, the sample mean of 1/X over 10^6
    # draws matches its closed form; without, the sample means of successive blocks disagree
    rng = np.random.default_rng(71)
    lognormal = np.exp(rng.normal(0.3, 0.5, 1_000_000))
    assert reciprocal_moments_exist("lognormal", 0.3, 0.5)[0]
    assert np.mean(1 / lognormal) == pytest.approx(np.exp(-0.3 + 0.5**2 / 2), rel=2e-3)
    gamma = rng.gamma(3.0, 1.0, 1_000_000)
    assert reciprocal_moments_exist("gamma", np.log(3.0), 0.0)[:2] == (True, True)
    assert np.mean(1 / gamma) == pytest.approx(1 / 2, rel=5e-3)  # E[1/X] = 1 / (k - 1)
    assert not reciprocal_moments_exist("normal", -1.0, 0.5)[0]
    block_means = (1 / rng.normal(-1.0, 0.5, (20, 50_000))).mean(1)
    # (a 1/X with a finite SD of order 1 would give block means within about 0.05)
    assert block_means.max() - block_means.min() > 1.0
    with pytest.raises(ValueError, match="unknown mixing distribution 'beta'"):
        reciprocal_moments_exist("beta", 0.0, 1.0)


def test_convergence_line_does_not_contradict_the_termination_message(fit):
    # before: "Converged: True (Desired error not necessarily achieved due to precision loss.)"
    lossy = dataclasses.replace(
        fit, converged=True, message="Desired error not necessarily achieved due to precision loss."
    )
    lines = str(lossy).splitlines()
    converged = next(line for line in lines if line.startswith("Converged:"))
    assert converged.startswith("Converged: yes (gradient criterion met")
    assert "Desired error" not in converged
    termination = next(line for line in lines if line.startswith("Termination:"))
    assert termination.startswith("Termination: Desired error not necessarily achieved")
    failed = dataclasses.replace(fit, converged=False, message="Maximum number of iterations")
    text = str(failed)
    assert "Converged: no (largest |gradient|" in text
    assert "Termination: Maximum number of iterations" in text


# ------------------------------------------------------------------ issue 16, item 5: WTP intervals
def test_fixed_wtp_delta_and_krinsky_robb_intervals_agree_within_monte_carlo_error():
    from mixlogit import MultinomialLogit

    model = MultinomialLogit(["x1", "price"])
    # a precise model (3,000 situations, seed 8123): the ratio is close to normal
    data = simulate_choices(model, {"x1": 1.0, "price": -2.0}, num_people=600, seed=8123)
    fit = model.fit(data)
    wtp = fit.wtp("x1", "price", num_draws=200_000, seed=3)
    value, se = wtp["wtp"], wtp["robust_std_err"]
    assert wtp["q2.5%"] == pytest.approx(value - stats.norm.ppf(0.975) * se, rel=1e-12)
    assert wtp["q97.5%"] == pytest.approx(value + stats.norm.ppf(0.975) * se, rel=1e-12)
    # Monte Carlo SE of a 2.5% quantile of 200,000 draws: sqrt(p (1 - p) / n) / density
    mc = np.sqrt(0.025 * 0.975 / 200_000) / (stats.norm.pdf(1.96) / se)
    for bound in ("q2.5%", "q97.5%"):
        assert abs(wtp[f"kr_{bound}"] - wtp[bound]) < 4 * mc + 0.02 * se
    assert abs(wtp["kr_median"] - value) < 0.02 * se
    # the Krinsky-Robb quantiles are those of the ratio at draws from N(estimate, robust cov)
    i, j = fit.names.index("x1"), fit.names.index("price")
    draws = np.random.default_rng(3).multivariate_normal(
        fit.params[[i, j]], fit.robust_cov[np.ix_([i, j], [i, j])], size=200_000, method="eigh"
    )
    np.testing.assert_allclose(
        [wtp["kr_q2.5%"], wtp["kr_median"], wtp["kr_q97.5%"]],
        np.quantile(-draws[:, 0] / draws[:, 1], [0.025, 0.5, 0.975]),
        rtol=1e-12,
    )


def test_krinsky_robb_follows_the_skew_of_an_imprecise_cost_coefficient():
    from mixlogit import MultinomialLogit

    model = MultinomialLogit(["x1", "price"])
    # a weak price effect in a small sample (seed 8124): 1 / beta_price is skewed
    data = simulate_choices(model, {"x1": 1.0, "price": -0.4}, num_people=40, seed=8124)
    fit = model.fit(data)
    wtp = fit.wtp("x1", "price", interval=0.9)
    assert {"q5%", "q95%", "kr_q5%", "kr_q95%"} <= set(wtp.index)
    delta_low, delta_high = wtp["wtp"] - wtp["q5%"], wtp["q95%"] - wtp["wtp"]
    assert delta_low == pytest.approx(delta_high, rel=1e-12)  # Wald: symmetric
    kr_low, kr_high = wtp["kr_median"] - wtp["kr_q5%"], wtp["kr_q95%"] - wtp["kr_median"]
    # a positive WTP over a cost coefficient that may come near 0: the upper tail is longer
    assert wtp["wtp"] > 0 and kr_high > 1.2 * kr_low


def test_statistics_correlation_and_exports(fit):
    statistics = fit.statistics()
    assert statistics["likelihood ratio vs null"] == pytest.approx(
        2 * (fit.loglik - fit.null_loglik), rel=1e-12
    )
    # the identification figures are those of the inverse classical covariance
    eigenvalues = np.linalg.eigvalsh(np.linalg.inv(fit.cov))
    assert statistics["smallest eigenvalue of -H"] == pytest.approx(eigenvalues[0], rel=1e-8)
    assert statistics["condition number of -H"] == pytest.approx(
        eigenvalues[-1] / eigenvalues[0], rel=1e-8
    )
    assert statistics["gradient norm"] == pytest.approx(np.linalg.norm(fit.gradient), rel=1e-12)
    correlation = fit.correlation().to_numpy()
    sd = np.sqrt(np.diag(fit.robust_cov))
    np.testing.assert_allclose(correlation, fit.robust_cov / np.outer(sd, sd), rtol=1e-12)
    np.testing.assert_allclose(np.diag(correlation), 1.0, rtol=1e-12)
    assert "Gradient norm:" in str(fit) and "smallest eigenvalue of -H" in str(fit)
    latex = fit.to_latex()
    assert latex.startswith("\\begin{tabular}") and latex.endswith("\\end{tabular}")
    assert latex.count("\\\\") == len(fit.names) + 2  # header, one row each, footer
    html = fit.to_html()
    assert html.count("<table") == 3 and "Correlation of the estimates" in html


def test_a_nearly_collinear_variable_shows_in_the_eigenvalues():
    model = MixedLogit(fixed=["x1", "x2"])
    data = simulate_choices(model, {"x1": 1.0, "x2": -0.5}, num_people=200, seed=8125)
    frame = data.frame.copy()
    rng = np.random.default_rng(8126)
    frame["x2"] = frame["x1"] + 1e-4 * rng.normal(size=len(frame))  # x2 barely differs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weak = MixedLogit(fixed=["x1", "x2"]).fit(data.with_frame(frame))
    assert weak.statistics()["condition number of -H"] > 1e6
