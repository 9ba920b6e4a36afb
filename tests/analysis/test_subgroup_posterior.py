"""Subgroup-posterior model: exact likelihood, recovery of per-subgroup strengths, diagnostics."""

from __future__ import annotations

import math

import jax
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from numpyro import handlers
from scipy import integrate, special, stats

from analysis.plots import plot_subgroup_forest
from analysis.reporting import report
from analysis.subgroup_posterior import (
    SubgroupPosterior,
    fit_subgroup_strengths,
    subgroup_strength_model,
)


def _quad_log_marginal(distribution, d: float) -> float:
    """log E[sigmoid(beta d)] by adaptive quadrature, independent of mixlogit."""
    value, _ = integrate.quad(
        lambda b: distribution.pdf(b) * special.expit(b * d),
        0,
        np.inf,
        epsabs=0,
        epsrel=1e-12,
        limit=200,
    )
    return math.log(value)


@pytest.mark.parametrize("family", ["gamma", "lognormal", "fixed"])
def test_model_likelihood_is_the_exact_strength_marginal(family):
    d = np.array([-3.0, -0.4, 0.0, 0.7, 2.5, 6.0])
    y = np.array([1, 0, 1, 1, 0, 1])
    group = np.array([0, 0, 1, 1, 1, 0], dtype=np.int32)
    params = {
        "mu_log_mean": 0.2,
        "tau_log_mean": 0.5,
        "log_mean": 0.2 + 0.5 * np.array([-1.0, 0.8]),
        "mu_log_cv": math.log(0.6),
        "tau_log_cv": 0.3,
        "z_log_cv": np.array([0.5, -1.5]),
    }
    with jax.enable_x64(True):
        model = handlers.substitute(subgroup_strength_model, data=params)
        trace = handlers.trace(model).get_trace(d, group, 2, y, family=family, num_terms=24)
        log_likelihood = np.asarray(trace["y"]["fn"].log_prob(trace["y"]["value"]))
    means = np.exp(params["log_mean"])
    cvs = np.exp(params["mu_log_cv"] + params["tau_log_cv"] * params["z_log_cv"])
    expected = []
    for di, yi, gi in zip(d, y, group, strict=True):
        signed = di if yi == 1 else -di
        mean, cv = means[gi], cvs[gi]
        if family == "fixed":
            expected.append(math.log(special.expit(mean * signed)))
            continue
        if family == "gamma":
            distribution = stats.gamma(a=1 / cv**2, scale=mean * cv**2)
        else:
            scale = math.sqrt(math.log1p(cv**2))
            distribution = stats.lognorm(s=scale, scale=mean * math.exp(-(scale**2) / 2))
        expected.append(_quad_log_marginal(distribution, signed))
    # Gamma: exact series; LogNormal: 16-node Gauss-Hermite, accurate to ~1e-9 here
    tolerance = 1e-11 if family != "lognormal" else 1e-7
    np.testing.assert_allclose(log_likelihood, expected, rtol=tolerance, atol=tolerance)
    if family != "fixed":
        np.testing.assert_allclose(trace["mean_strength"]["value"], means, rtol=1e-14)
        np.testing.assert_allclose(trace["cv"]["value"], cvs, rtol=1e-14)


def _simulated_choices(seed: int) -> tuple[pd.DataFrame, dict[str, float], float]:
    """Choices of three subgroups with Gamma strengths of means 0.5, 1, 2 and CV 0.5."""
    rng = np.random.default_rng(seed)
    means = {"low": 0.5, "mid": 1.0, "high": 2.0}
    cv = 0.5
    frames = []
    for name, mean in means.items():
        n = 250
        d = rng.normal(0.0, 1.5, size=n)
        beta = rng.gamma(1 / cv**2, mean * cv**2, size=n)
        chosen = rng.random(n) < special.expit(beta * d)
        frames.append(pd.DataFrame({"margin": d, "group": name, "chosen": chosen.astype(int)}))
    frame = pd.concat(frames, ignore_index=True)
    frame["group"] = pd.Categorical(frame["group"], categories=list(means), ordered=True)
    return frame, means, cv


def _fit_choices(frame, family, num_warmup, num_samples, num_chains=2, **options):
    """NUTS chains (two by default) on the simulated choices (``chosen``) by ``group``."""
    return fit_subgroup_strengths(
        frame,
        "group",
        outcome="chosen",
        family=family,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        **options,
    )


@pytest.mark.slow
def test_recovers_known_subgroup_strengths_with_converged_chains():
    """Gamma strengths of means 0.5, 1, 2 (CV 0.5), 250 choices each, NUTS 4 x (300 + 600),
    the subgroup means non-centred.

    Four chains: R-hat <= 1.01 is the criterion of Vehtari et al. (2021) for at least four.
    With two (as this test had), a change of the marginal in its last bits (the Gamma series
    summed in another order) moved R-hat from below 1.01 to 1.013 with the same seeds; with
    four and the centred means, one NUTS seed of three left a chain stuck (68 divergences,
    R-hat 1.085): single choices inform the subgroup means weakly, the funnel that the
    non-centred form removes (0 divergences and R-hat <= 1.0032 for NUTS seeds 1-3 here, and
    <= 1.0063 on data seeds 11 and 12, which the test does not use).
    """
    frame, means, cv = _simulated_choices(seed=5)
    posterior = _fit_choices(
        frame, "gamma", 300, 600, num_chains=4, seed=1, interval=0.95, centered_mean=False
    )
    summary = posterior.summary().set_index("subgroup")
    assert summary.index.tolist() == ["low", "mid", "high"]
    for name, mean in means.items():
        row = summary.loc[name]
        assert row["mean_strength_low"] <= mean <= row["mean_strength_high"], (name, row)
        # one choice per pair carries little information: 250 pairs pin the mean to ~+-30 %
        assert row["mean_strength"] == pytest.approx(mean, rel=0.4), (name, row)
        assert row["mean_strength_r_hat"] <= 1.01, (name, row)
        # the CV is weakly identified by single choices: its chains mix more slowly
        assert row["cv_r_hat"] <= 1.03, (name, row)
        assert row["cv_low"] <= cv <= row["cv_high"]
    # the posterior separates the subgroups in the simulated order
    draws = posterior.idata.posterior["mean_strength"]
    assert float((draws.sel(subgroup="high") > draws.sel(subgroup="low")).mean()) > 0.95
    diagnostics = posterior.diagnostics()
    assert diagnostics["num_divergences"] <= 5
    # hyperparameters (pooling scales) mix more slowly than the subgroup strengths
    assert diagnostics["max_r_hat"] <= 1.03 and diagnostics["min_ess_bulk"] >= 100


@pytest.fixture(scope="module")
def small_posterior():
    frame, _, _ = _simulated_choices(seed=0)
    frame = frame.iloc[np.r_[0:60, 250:270, 500:560]].copy()
    # the plain-logit family keeps this structural run cheap; Gamma runs in the slow test
    posterior = _fit_choices(frame, "fixed", 30, 30, min_count=30)
    return frame, posterior


def test_small_run_structure_flags_and_errors(small_posterior):
    frame, posterior = small_posterior
    summary = posterior.summary()
    assert summary["subgroup"].tolist() == ["low", "mid", "high"]
    assert summary["n"].tolist() == [60, 20, 60]
    assert summary["small"].tolist() == [False, True, False]
    assert posterior.idata.posterior["mean_strength"].dims == ("chain", "draw", "subgroup")
    assert posterior.idata.posterior["mean_strength"].shape == (2, 30, 3)
    draws = posterior.idata.posterior["mean_strength"].sel(subgroup="mid").values
    assert summary.loc[1, "mean_strength"] == pytest.approx(draws.mean(), rel=1e-12)
    assert "cv" not in summary and posterior.diagnostics()["max_r_hat"] > 0
    # "fixed" is the point mass's old name; the result carries the canonical one
    assert posterior.family == "point_mass" and posterior.by == "group"
    with pytest.warns(DeprecationWarning, match="SubgroupPosterior.attribute is deprecated"):
        assert posterior.attribute == "group"
    with (
        pytest.warns(DeprecationWarning, match="attribute= is deprecated"),
        pytest.warns(DeprecationWarning, match="hdi_prob= is deprecated"),
    ):
        renamed = SubgroupPosterior(
            posterior.idata, attribute="group", family="point_mass", subgroups=[],
            counts=np.array([]), min_count=1, hdi_prob=0.5,
        )  # fmt: skip
    assert (renamed.by, renamed.interval) == ("group", 0.5)
    broken = frame.copy()
    broken.loc[3, "chosen"] = 2
    with pytest.raises(ValueError, match="'chosen' must hold 0 or 1; row 3 has 2"):
        fit_subgroup_strengths(broken, "group", outcome="chosen")
    with pytest.raises(ValueError, match="family"):
        fit_subgroup_strengths(frame, "group", family="weibull")
    with pytest.raises(ValueError, match="mixes methods"):
        fit_subgroup_strengths(frame.assign(method=["a", "b"] * 70), "group")


def test_forest_plot_and_report_of_a_posterior(small_posterior, tmp_path):
    _, posterior = small_posterior
    summary = posterior.summary()
    truth = {"mean_strength": {"low": 0.5, "mid": 1.0, "high": 2.0}}
    figure = plot_subgroup_forest(posterior, truth=truth)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "low (n=60)",
        "mid (n=20)",
        "high (n=60)",
    ]
    intervals = next(c for c in ax.collections if isinstance(c, LineCollection))
    drawn = np.array([[seg[0][0], seg[1][0]] for seg in intervals.get_segments()])
    np.testing.assert_allclose(drawn, summary[["mean_strength_low", "mean_strength_high"]])
    crosses = ax.collections[-1].get_offsets()
    np.testing.assert_allclose(np.asarray(crosses)[:, 0], [0.5, 1.0, 2.0])
    figure.savefig(tmp_path / "forest.png", dpi=60)
    path = report(tmp_path / "posterior.html", posteriors=[posterior])
    text = path.read_text()
    top = summary.loc[summary["mean_strength"].idxmax()]
    assert f"Strongest: {top['subgroup']} mean strength {top['mean_strength']:.3g}" in text
    # the forest, and the prior-vs-posterior overlay when the fit kept its prior draws
    expected = 1 + ("prior" in posterior.idata.groups())
    assert text.count("data:image/svg+xml;base64,") == expected
    assert "Diagnostics pass" in text or '<p class="warn"><b>Warning' in text
