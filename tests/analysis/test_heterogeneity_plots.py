"""Plots: each returns a Figure whose drawn numbers are the analysed numbers."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from scipy import stats

from analysis.converters import TrainingRun, training_runs_to_inference_data
from analysis.margins import subgroup_gains, subgroup_margins
from analysis.plots import (
    plot_individual_coefficients,
    plot_strength_densities,
    plot_strength_trajectories,
    plot_subgroup_gains,
    plot_subgroup_margins,
    plot_willingness_to_pay,
)

matplotlib.use("Agg")

EDUCATION = ["primary", "secondary", "bachelor", "graduate"]


def evaluation_table(seed: int = 0) -> pd.DataFrame:
    """Three policies scored on the same 600 pairs; MixDPO helps the small 'primary' group."""
    rng = np.random.default_rng(seed)
    n = 600
    education = rng.choice(EDUCATION, size=n, p=[0.04, 0.3, 0.4, 0.26])
    conversation = rng.choice(["values", "controversy", "unguided"], size=n)
    base = rng.normal(0.4, 1.0, size=n) - 0.5 * (education == "primary")
    lift = {"dpo": 0.0, "mixdpo-gamma": 0.3, "mixdpo-lognormal": 0.2}
    frames = [
        pd.DataFrame(
            {
                "pair": np.arange(n),
                "method": method,
                "education": pd.Categorical(education, categories=EDUCATION, ordered=True),
                "conversation_type": conversation,
                "margin": base
                + shift
                + 0.6 * (education == "primary") * (shift > 0)
                + rng.normal(0, 0.3, n),
            }
        )
        for method, shift in lift.items()
    ]
    return pd.concat(frames, ignore_index=True)


def test_subgroup_margin_plot_draws_the_computed_micro_and_macro(tmp_path):
    margins = subgroup_margins(evaluation_table(), ["education", "conversation_type"], num_boot=300)
    figure = plot_subgroup_margins(margins)
    assert isinstance(figure, Figure)
    axes = figure.axes
    assert len(axes) == 2
    assert [t.get_text() for t in axes[0].get_xticklabels()] == EDUCATION
    horizontal = sorted(
        round(float(line.get_ydata()[0]), 12)
        for line in axes[0].get_lines()
        if len(set(line.get_ydata())) == 1 and line.get_linestyle() in ("-", "--")
    )
    expected = margins.overall.query("attribute == 'education'")["mean"].round(12).tolist()
    assert horizontal == sorted(expected)
    # marker areas grow with the subgroup's pair count; 'primary' (~24 pairs) is hollow (small)
    collections = [c for c in axes[0].collections if len(c.get_offsets())]
    filled_areas = np.concatenate(
        [
            c.get_sizes()
            for c in collections
            if c.get_facecolor().size and c.get_facecolor()[0][:3].tolist() != [1.0, 1.0, 1.0]
        ]
    )
    assert filled_areas.min() > 20
    figure.savefig(tmp_path / "margins.png", dpi=60)


def test_gain_plot_per_subgroup_and_context(tmp_path):
    gains = subgroup_gains(
        evaluation_table(),
        ["education", "conversation_type"],
        baseline="dpo",
        pair_id="pair",
        num_boot=300,
    )
    figure = plot_subgroup_gains(gains)
    assert len(figure.axes) == 2
    assert figure.axes[1].get_title() == "conversation_type"
    # one interval per (method, subgroup): 2 methods x 4 education levels
    segments = [c for c in figure.axes[0].collections if isinstance(c, LineCollection)]
    assert sum(len(c.get_segments()) for c in segments) == 8
    primary = gains.subgroups.query("attribute == 'education' and subgroup == 'primary'")
    assert (primary["gain"] > 0.5).all()  # the simulated extra lift of 0.6 for 'primary'
    figure.savefig(tmp_path / "gains.png", dpi=60)


def _runs() -> list[TrainingRun]:
    steps = list(range(0, 101, 10))
    runs = []
    for dataset, decay in (("heterogeneous", 0.0), ("homogeneous", 0.02)):
        shapes = [
            2.0 * math.exp(-0.01 * s) if decay == 0 else 2.0 * math.exp(decay * s) for s in steps
        ]
        records = [
            {
                "step": s,
                "loss": 0.69 - 0.001 * s,
                "strength/mean": k / 16.7,
                "strength/variance": k / 16.7**2,
                "strength/cv": 1 / math.sqrt(k),
                "strength/shape": k,
                "strength/rate": 16.7,
            }
            for s, k in zip(steps, shapes, strict=True)
        ]
        runs.append(TrainingRun(f"gamma-{dataset}", records, dataset=dataset))
    runs.append(
        TrainingRun(
            "dpo-heterogeneous",
            [
                {
                    "step": s,
                    "strength/mean": 0.1,
                    "strength/variance": 0.0,
                    "strength/cv": 0.0,
                    "strength/beta": 0.1,
                }
                for s in steps
            ],
            dataset="heterogeneous",
        )
    )
    return runs


def test_trajectory_and_density_plots(tmp_path):
    idata = training_runs_to_inference_data(_runs())
    figure = plot_strength_trajectories(idata, ["strength/mean", "strength/cv"])
    assert len(figure.axes) == 2
    # three runs -> three lines in each panel, the cv panel ends at the logged final cvs
    cv_lines = [line for line in figure.axes[1].get_lines() if len(line.get_xdata()) == 11]
    assert sorted(round(float(line.get_ydata()[-1]), 12) for line in cv_lines) == sorted(
        round(float(v), 12) for v in idata.strength["cv"].values
    )
    with pytest.raises(ValueError, match="not logged"):
        plot_strength_trajectories(idata, ["strength/entropy"])
    figure.savefig(tmp_path / "trajectories.png", dpi=60)

    densities = plot_strength_densities(idata)
    ax = densities.axes[0]
    curves = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    assert len(curves) == 2  # two Gamma runs, the fixed run is a vertical line
    final = idata.strength.sel(run="gamma-heterogeneous")
    reference = stats.gamma(a=float(final["shape"]), scale=1 / float(final["rate"]))
    x, y = curves[0].get_xdata(), curves[0].get_ydata()
    np.testing.assert_allclose(y, reference.pdf(x), rtol=1e-12)
    # the axis ends at the largest 99.5 % quantile of the drawn distributions
    homogeneous = idata.strength.sel(run="gamma-homogeneous")
    upper = stats.gamma(a=float(homogeneous["shape"]), scale=1 / float(homogeneous["rate"]))
    assert x[-1] == pytest.approx(max(reference.ppf(0.995), upper.ppf(0.995)), rel=1e-12)
    assert any("fixed β=0.1" in t.get_text() for t in ax.get_legend().get_texts())
    densities.savefig(tmp_path / "densities.png", dpi=60)


def test_individual_coefficients_and_wtp(tmp_path):
    rng = np.random.default_rng(3)
    population = stats.norm(loc=-0.6, scale=0.3)
    individual = population.rvs(size=400, random_state=rng) * 0.8 - 0.12  # shrunk towards mean
    figure = plot_individual_coefficients(individual, population, name="price")
    line = next(line for line in figure.axes[0].get_lines() if len(line.get_xdata()) > 2)
    np.testing.assert_allclose(line.get_ydata(), population.pdf(line.get_xdata()), rtol=1e-12)
    figure.savefig(tmp_path / "individual.png", dpi=60)
    # population given as draws (a mixed logit's population_coefficients column): a KDE
    from_draws = plot_individual_coefficients(
        individual, population.rvs(size=20_000, random_state=rng), name="price"
    )
    kde = next(line for line in from_draws.axes[0].get_lines() if len(line.get_xdata()) > 2)
    peak = population.pdf(-0.6)
    np.testing.assert_allclose(kde.get_ydata(), population.pdf(kde.get_xdata()), atol=0.05 * peak)

    price = -np.exp(rng.normal(-0.5, 0.2, size=5000))
    draws = {"renewable": rng.normal(1.5, 0.4, size=5000), "local": rng.normal(1.0, 0.2, 5000)}
    wtp_figure = plot_willingness_to_pay(draws, price)
    assert len(wtp_figure.axes) == 2
    median_line = wtp_figure.axes[0].get_lines()[0]
    assert float(median_line.get_xdata()[0]) == pytest.approx(
        np.median(-draws["renewable"] / price)
    )
    assert any(isinstance(c, PolyCollection) or c.get_label() for c in wtp_figure.axes[0].patches)
    with pytest.raises(ValueError, match="nonzero"):
        plot_willingness_to_pay(draws, np.zeros(5000))
    wtp_figure.savefig(tmp_path / "wtp.png", dpi=60)
