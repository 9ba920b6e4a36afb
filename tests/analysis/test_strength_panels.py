"""Two-stage annotator-panel strength estimate (analysis.strength_panels).

Recovery tests generate their data here with seeds and group structures that development did
not use: development ran on seed 0 with the three default subgroups of
``alignment.datasets.annotator_panels`` (mean strengths 5 / 1.13 / 0.2, 72 annotators x 20
pairs). Here:

* ratios and annotator ranks: seed 57, TWO subgroups (gamma mean 2.4, lognormal mean 0.8) of
  20 annotators x 50 pairs each. The size follows from the Fisher information of a label about
  its annotator's log strength, E[(beta d)^2 p (1 - p)] ~ 0.2 at these strengths and the
  generator's gaps: 1,000 labels per subgroup give a log-mean SD near 0.07, so a 25 % band on
  the ratio is about 2.5 SD. (A subgroup at strength 0.1 would need ~50,000 labels: its labels
  are nearly coin flips.)
* spread: seed 57, FOUR subgroups (means 3, 1, 0.4, 0.12) of 10 annotators x 16 pairs.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from alignment.datasets.annotator_panels import make_panel_preference_data
from alignment.datasets.semisynthetic import SubgroupSpec
from analysis.strength_panels import (
    PANEL_NODES,
    fit_panel_strengths,
    panel_data,
    panel_log_likelihood,
)
from mixlogit.families import NUMPY_OPS, get_family

SUBGROUPS = (
    SubgroupSpec("steady", "gamma", {"shape": 6.0, "rate": 2.0}),  # mean 3, CV 0.41
    SubgroupSpec("casual", "lognormal", {"loc": -0.08, "scale": 0.4}),  # mean 1.0
    SubgroupSpec("hesitant", "gamma", {"shape": 3.0, "rate": 7.5}),  # mean 0.4, CV 0.58
    SubgroupSpec("noisy", "point_mass", {"beta": 0.12}),
)
TWO_SUBGROUPS = (
    SubgroupSpec("sharp", "gamma", {"shape": 8.0, "rate": 8.0 / 2.4}),  # mean 2.4, CV 0.35
    SubgroupSpec("loose", "lognormal", {"loc": math.log(0.8) - 0.5 * 0.39**2, "scale": 0.39}),
)


def _panel(homogeneous: bool, subgroups=SUBGROUPS, **sizes) -> pd.DataFrame:
    data = make_panel_preference_data(
        subgroups=subgroups, homogeneous=homogeneous, seed=57, **sizes
    )
    return pd.concat([data[s].to_pandas() for s in ("train", "test")], ignore_index=True)


def _tiny() -> pd.DataFrame:
    """A few annotators with known gaps and labels, drawn directly (no text)."""
    rng = np.random.default_rng(5)
    rows = []
    rich = "$25,000-$49,999"  # a subgroup name with dollar signs (matplotlib mathtext)
    for a, (subgroup, beta) in enumerate([(rich, 3.0), (rich, 2.0), ("b", 0.3), ("b", 0.5)]):
        for gap in rng.normal(0.0, 1.5, size=10):
            chose = rng.random() < special.expit(beta * gap)
            rows.append(
                {
                    "annotator_id": f"r{a}",
                    "subgroup": subgroup,
                    "reward_gap": gap if chose else -gap,
                    "true_strength": beta,
                }
            )
    return pd.DataFrame(rows)


def _quad_panel(d, family, params, moment=0, upper=None):
    """Independent reference: int_0^upper beta^moment p(beta) prod sigmoid(beta d) dbeta by
    scipy quad (``upper`` defaults to the prior's 1 - 1e-13 quantile)."""
    density = get_family(family).scipy(params)

    def integrand(beta):
        return beta**moment * density.pdf(beta) * np.prod(special.expit(beta * d))

    upper = float(density.ppf(1.0 - 1e-13)) if upper is None else upper
    return integrate.quad(integrand, 0.0, upper, epsabs=0.0, epsrel=1e-11, limit=400)[0]


# --- fast checks ----------------------------------------------------------------------------


def test_panel_log_likelihood_matches_quadrature_at_the_fit_nodes():
    """The panel marginal at PANEL_NODES nodes equals direct quadrature (1e-9 relative) over
    the CVs the prior allows, so using fewer nodes than the kernel's default costs nothing."""
    import jax
    import jax.numpy as jnp

    frame = _tiny()
    data = panel_data(frame)
    for family, mean, cv in [
        ("gamma", 1.0, 0.1),
        ("gamma", 0.5, 1.0),
        ("gamma", 2.0, 2.0),
        ("lognormal", 1.5, 0.6),
        ("lognormal", 0.3, 2.0),
    ]:
        params = get_family(family).from_mean_cv(NUMPY_OPS, mean, cv)
        params = {k: float(v) for k, v in params.items()}
        with jax.enable_x64(True):
            value = panel_log_likelihood(
                family,
                jnp.asarray(data.signed_gap),
                jnp.asarray(data.annotator),
                params,
                data.num_annotators,
                num_nodes=PANEL_NODES,
            )
        for a in range(data.num_annotators):
            reference = math.log(_quad_panel(data.signed_gap[data.annotator == a], family, params))
            assert float(value[a]) == pytest.approx(reference, rel=1e-9), (family, mean, cv, a)


@pytest.fixture(scope="module")
def tiny_fit():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_panel_strengths(
            _tiny(),
            num_warmup=60,
            num_samples=20,
            num_chains=2,
            num_annotator_draws=40,
            num_strata=20,
            seed=3,
        )
    return fit, caught


def test_fit_returns_labelled_inference_data(tiny_fit):
    fit, _ = tiny_fit
    idata = fit.idata
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(idata.groups())
    assert list(idata.posterior.coords["subgroup"].values) == ["$25,000-$49,999", "b"]
    assert list(idata.log_likelihood.coords["annotator"].values) == ["r0", "r1", "r2", "r3"]
    # the per-annotator log-likelihood is not named like the observed labels
    assert list(idata.log_likelihood.data_vars) == ["annotator_loglik"]
    assert "annotator_loglik" not in idata.observed_data
    assert idata.log_likelihood["annotator_loglik"].shape == (2, 20, 4)
    assert idata.posterior["mean_strength"].dims == ("chain", "draw", "subgroup")
    assert set(fit.subgroups["subgroup"]) == {"$25,000-$49,999", "b"}
    assert fit.subgroups["num_annotators"].tolist() == [2, 2]
    assert fit.subgroups["num_labels"].tolist() == [20, 20]
    table = fit.annotators
    assert list(table.columns) == [
        "annotator",
        "subgroup",
        "num_labels",
        "strength_mean",
        "strength_sd",
        "strength_q5",
        "strength_q50",
        "strength_q95",
    ]
    assert (table["strength_q5"] < table["strength_q50"]).all()
    assert (table["strength_q50"] < table["strength_q95"]).all()
    assert set(fit.population) == {"mean", "mean_low", "mean_high", "cv", "cv_low", "cv_high"}


def test_log_likelihood_group_is_the_panel_marginal_at_each_draw(tiny_fit):
    """annotator_loglik at a draw equals direct quadrature at that draw's parameters."""
    fit, _ = tiny_fit
    data = fit.data
    posterior = fit.idata.posterior
    for chain, draw in [(0, 0), (1, 19)]:
        for a in range(data.num_annotators):
            g = data.annotator_subgroup[a]
            params = {p: float(posterior[p][chain, draw, g]) for p in ("shape", "rate")}
            reference = math.log(_quad_panel(data.signed_gap[data.annotator == a], "gamma", params))
            value = float(fit.idata.log_likelihood["annotator_loglik"][chain, draw, a])
            assert value == pytest.approx(reference, rel=1e-8)


def test_annotator_posteriors_are_the_mixture_over_draws(tiny_fit):
    """Mean and SD: the posterior of beta_a given its labels, averaged over all 40 draws
    (law of total variance), by quadrature; quantiles: the mixture CDF at the reported 5 %
    and 95 % quantiles is within the stratification error 1 / (2 * 20) of 0.05 and 0.95."""
    fit, _ = tiny_fit
    data = fit.data
    posterior = fit.idata.posterior
    shapes = posterior["shape"].to_numpy().reshape(-1, data.num_subgroups)
    rates = posterior["rate"].to_numpy().reshape(-1, data.num_subgroups)
    for a in (0, 2):
        d = data.signed_gap[data.annotator == a]
        g = data.annotator_subgroup[a]
        row = fit.annotators.iloc[a]
        means, seconds, cdf_low, cdf_high = [], [], [], []
        for shape, rate in zip(shapes[:, g], rates[:, g], strict=True):
            params = {"shape": float(shape), "rate": float(rate)}
            z = _quad_panel(d, "gamma", params)
            means.append(_quad_panel(d, "gamma", params, 1) / z)
            seconds.append(_quad_panel(d, "gamma", params, 2) / z)
            for q, out in ((row["strength_q5"], cdf_low), (row["strength_q95"], cdf_high)):
                out.append(_quad_panel(d, "gamma", params, upper=float(q)) / z)
        mean = np.mean(means)
        assert row["strength_mean"] == pytest.approx(mean, rel=1e-7)
        assert row["strength_sd"] == pytest.approx(math.sqrt(np.mean(seconds) - mean**2), rel=1e-6)
        assert np.mean(cdf_low) == pytest.approx(0.05, abs=1 / 40 + 1e-3)
        assert np.mean(cdf_high) == pytest.approx(0.95, abs=1 / 40 + 1e-3)


def test_short_chains_warn(tiny_fit):
    _, caught = tiny_fit
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("min bulk ESS" in m for m in messages)


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (lambda f: f.drop(columns="subgroup"), {}, "column 'subgroup' not in"),
        (
            lambda f: f.assign(reward_gap=f["reward_gap"].where(f.index != 3)),
            {},
            "column 'reward_gap' is missing a value at row 3",
        ),
        (
            lambda f: f.assign(reward_gap=f["reward_gap"].mask(f.index == 4, np.inf)),
            {},
            "non-finite value inf at row 4",
        ),
        (
            lambda f: f.assign(subgroup=f["subgroup"].mask(f.index == 5, "b")),
            {},
            r"annotator 'r0' is in subgroups '\$25,000-\$49,999' and 'b' \(row 5\)",
        ),
        (lambda f: f.assign(chose=2), {"outcome": "chose"}, "must hold 0 or 1"),
        (lambda f: f, {"family": "point_mass"}, "no spread to estimate"),
        (lambda f: f, {"interval": 1.5}, "interval must be in"),
    ],
)
def test_bad_input_is_named(change, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_panel_strengths(change(_tiny()), num_warmup=1, num_samples=1, **kwargs)


# --- statistical recovery (data generated here, not tuned on) -------------------------------


@pytest.mark.slow
def test_two_stage_recovers_subgroup_ratios_and_annotator_order():
    """Known reward gaps, two subgroups: the ratio of the posterior mean strengths of the
    subgroups is within 25 % of the ratio of their annotators' true mean strengths, and the
    annotators' posterior means rank-correlate with their true strengths (Spearman >= 0.7)."""
    frame = _panel(False, TWO_SUBGROUPS, num_pairs=200, num_annotators=40, pairs_per_annotator=50)
    fit = fit_panel_strengths(frame, num_warmup=300, num_samples=300, seed=1)
    truth = frame.groupby("subgroup")["true_strength"].mean()
    table = fit.subgroups.set_index("subgroup")
    estimated = table.loc["sharp", "mean_strength"] / table.loc["loose", "mean_strength"]
    assert estimated == pytest.approx(truth["sharp"] / truth["loose"], rel=0.25)
    strengths = frame.groupby("annotator_id")["true_strength"].first()
    annotators = fit.annotators.set_index("annotator")
    rho = stats.spearmanr(annotators["strength_mean"], strengths[annotators.index]).statistic
    assert rho >= 0.7
    assert fit.diagnostics["max_r_hat"] < 1.05


@pytest.mark.slow
def test_panels_find_more_spread_in_the_heterogeneous_set():
    """One strength distribution for all annotators (no subgroups), four-subgroup data: the
    posterior mean CV on the heterogeneous set is at least twice that on its control with one
    common strength."""
    sizes = {"num_pairs": 80, "num_annotators": 40, "pairs_per_annotator": 16}
    heterogeneous, homogeneous = _panel(False, **sizes), _panel(True, **sizes)
    het = fit_panel_strengths(heterogeneous, by=None, num_warmup=300, num_samples=300, seed=2)
    hom = fit_panel_strengths(homogeneous, by=None, num_warmup=300, num_samples=300, seed=2)
    assert het.population["cv"] >= 2.0 * hom.population["cv"]
    # without subgroups the population is the one fitted distribution
    assert het.population["cv"] == pytest.approx(float(het.subgroups["cv"].iloc[0]), rel=1e-12)


# --- plots and report -----------------------------------------------------------------------


def test_plots_draw_dollar_names_literally(tiny_fit):
    from analysis.panel_plots import plot_annotator_strengths, plot_panel_subgroup_forest

    fit, _ = tiny_fit
    truth = dict(zip(_tiny()["annotator_id"], _tiny()["true_strength"], strict=True))
    forest = plot_panel_subgroup_forest(fit)
    caterpillar = plot_annotator_strengths(fit, truth=truth)
    for figure in (forest, caterpillar):
        figure.canvas.draw()  # mathtext would fail or swallow the dollars here
    ticks = [t.get_text() for t in forest.axes[0].get_yticklabels()]
    assert ticks[0].startswith(r"\$25,000-\$49,999")
    legend = [t.get_text() for t in caterpillar.axes[0].get_legend().get_texts()]
    assert r"\$25,000-\$49,999" in legend and "true strength" in legend
    # every annotator's posterior mean is drawn, in increasing order along the x axis
    offsets = np.concatenate(
        [c.get_offsets() for c in caterpillar.axes[0].collections if c.get_offsets().size]
    )
    for mean in fit.annotators["strength_mean"]:
        assert np.isclose(offsets[:, 1], mean).any()
    with pytest.raises(ValueError, match="truth has no strength for annotator"):
        plot_annotator_strengths(fit, truth={"r0": 1.0})


def test_report_states_which_subgroups_are_decisive(tiny_fit, tmp_path):
    import analysis
    from analysis.identifiability import profile_cv

    fit, _ = tiny_fit
    profile = profile_cv(_tiny(), (0.3, 1.0, 2.0), level="annotator", gaps="given")
    path = analysis.report(tmp_path / "r.html", panel_fit=fit, cv_profiles=[profile])
    text = path.read_text()
    assert "Which subgroups are decisive" in text
    top = fit.subgroups.loc[fit.subgroups["mean_strength"].idxmax()]
    assert (
        f"Most decisive subgroup {top['subgroup']}: mean strength {top['mean_strength']:.3g}"
        in text
    )
    assert f"CV {fit.population['cv']:.3g}" in text
    assert profile.interpretation() in text
    assert f"{profile.range:.4g}" in text  # the profile's range in its table
    # forest, caterpillar, prior vs posterior, profile
    assert text.count("data:image/svg+xml;base64,") == 4
