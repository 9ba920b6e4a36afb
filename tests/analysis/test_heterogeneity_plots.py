"""Plots: each returns a Figure whose drawn numbers are the analysed numbers."""

from __future__ import annotations

import dataclasses
import itertools
import math
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from scipy import stats

from analysis import plots
from analysis.converters import TrainingRun, training_runs_to_inference_data
from analysis.margins import subgroup_gains, subgroup_margins

matplotlib.use("Agg")

LONG_EDUCATION = [
    "primary school",
    "secondary school",
    "bachelor's degree",
    "graduate or professional degree",
]


def _layout(figure: Figure) -> None:
    """Run the constrained layout and a draw, so that artist extents are final."""
    figure.draw_without_rendering()


def _inside_figure(figure: Figure, artist) -> bool:
    box, frame = artist.get_window_extent(), figure.bbox
    return (
        box.x0 >= frame.x0 - 1
        and box.x1 <= frame.x1 + 1
        and box.y0 >= frame.y0 - 1
        and box.y1 <= frame.y1 + 1
    )


def _overlaps(first, second) -> bool:
    return first.get_window_extent().overlaps(second.get_window_extent())


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
    figure = plots.plot_subgroup_margins(margins)
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
    figure = plots.plot_subgroup_gains(gains)
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
    figure = plots.plot_strength_trajectories(idata, ["strength/mean", "strength/cv"])
    assert len(figure.axes) == 2
    # three runs -> three lines in each panel, the cv panel ends at the logged final cvs
    cv_lines = [line for line in figure.axes[1].get_lines() if len(line.get_xdata()) == 11]
    assert sorted(round(float(line.get_ydata()[-1]), 12) for line in cv_lines) == sorted(
        round(float(v), 12) for v in idata.strength["cv"].values
    )
    with pytest.raises(ValueError, match="not logged"):
        plots.plot_strength_trajectories(idata, ["strength/entropy"])
    figure.savefig(tmp_path / "trajectories.png", dpi=60)

    densities = plots.plot_strength_densities(idata)
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
    assert any("fixed β=0.1" in t.get_text() for t in densities.legends[0].get_texts())
    densities.savefig(tmp_path / "densities.png", dpi=60)


def test_individual_coefficients_and_wtp(tmp_path):
    rng = np.random.default_rng(3)
    population = stats.norm(loc=-0.6, scale=0.3)
    individual = population.rvs(size=400, random_state=rng) * 0.8 - 0.12  # shrunk towards mean
    figure = plots.plot_individual_coefficients(individual, population, name="price")
    line = next(line for line in figure.axes[0].get_lines() if len(line.get_xdata()) > 2)
    np.testing.assert_allclose(line.get_ydata(), population.pdf(line.get_xdata()), rtol=1e-12)
    figure.savefig(tmp_path / "individual.png", dpi=60)
    # population given as draws (a mixed logit's population_coefficients column): a KDE
    from_draws = plots.plot_individual_coefficients(
        individual, population.rvs(size=20_000, random_state=rng), name="price"
    )
    kde = next(line for line in from_draws.axes[0].get_lines() if len(line.get_xdata()) > 2)
    peak = population.pdf(-0.6)
    np.testing.assert_allclose(kde.get_ydata(), population.pdf(kde.get_xdata()), atol=0.05 * peak)

    price = -np.exp(rng.normal(-0.5, 0.2, size=5000))
    draws = {"renewable": rng.normal(1.5, 0.4, size=5000), "local": rng.normal(1.0, 0.2, 5000)}
    wtp_figure = plots.plot_willingness_to_pay(draws, price)
    assert len(wtp_figure.axes) == 2
    ratio = -draws["renewable"] / price
    median_line = next(
        line for line in wtp_figure.axes[0].get_lines() if line.get_label().startswith("median")
    )
    assert float(median_line.get_xdata()[0]) == pytest.approx(np.median(ratio))
    assert median_line.get_label() == f"median {np.median(ratio):.3g}"
    # the histogram bars are unlabelled ('_nolegend_'); the one labelled patch is the shaded
    # 5 %-95 % band, whose label states the interval it spans
    q05, q95 = np.quantile(ratio, [0.05, 0.95])
    labelled = [p for p in wtp_figure.axes[0].patches if not p.get_label().startswith("_")]
    assert [p.get_label() for p in labelled] == [f"5%-95%: [{q05:.3g}, {q95:.3g}]"]
    assert labelled[0].get_x() == pytest.approx(q05, rel=1e-12)
    assert labelled[0].get_x() + labelled[0].get_width() == pytest.approx(q95, rel=1e-12)
    # a zero line where 0 is near the draws (renewable: WTP ~ 2.5 +- 0.8), none where drawing
    # it would squeeze the histogram (WTP ~ 16.5 +- 0.4)
    zero_lines = [
        [float(line.get_xdata()[0]) for line in ax.get_lines() if line.get_color() == "0.35"]
        for ax in wtp_figure.axes
    ]
    assert zero_lines == [[0.0], [0.0]]
    far = plots.plot_willingness_to_pay(
        {"local": rng.normal(10.0, 0.2, 5000)}, -np.exp(rng.normal(-0.5, 0.02, 5000))
    )
    assert not [line for line in far.axes[0].get_lines() if line.get_color() == "0.35"]
    labelled_figure = plots.plot_willingness_to_pay(
        draws, price, price_name="pf", labels={"local": "local supplier", "pf": "fixed price"}
    )
    assert labelled_figure.axes[1].get_xlabel().startswith("WTP for local supplier (units of")
    assert labelled_figure.axes[0].get_xlabel().startswith("WTP for renewable (")
    assert "(fixed price)" in labelled_figure.get_suptitle()
    with pytest.raises(ValueError, match="nonzero"):
        plots.plot_willingness_to_pay(draws, np.zeros(5000))
    wtp_figure.savefig(tmp_path / "wtp.png", dpi=60)


def _method_colours(names) -> dict[str, tuple]:
    """The plots colour methods by the colorblind palette over the sorted method names."""
    import seaborn as sns

    ordered = sorted(names)
    return dict(zip(ordered, sns.color_palette("colorblind", len(ordered)), strict=True))


def _same_colour(first, second) -> bool:
    return bool(np.allclose(to_rgb(first), to_rgb(second), atol=1e-6))


def test_margin_plot_draws_means_whiskers_lines_and_sizes_of_the_table():
    margins = subgroup_margins(evaluation_table(), ["education", "conversation_type"], num_boot=200)
    figure = plots.plot_subgroup_margins(margins)
    table, overall = margins.subgroups, margins.overall
    colours = _method_colours(table["method"].unique())
    largest_n = table["n"].max()
    for ax, attribute in zip(figure.axes, ["education", "conversation_type"], strict=True):
        rows = table[table["attribute"] == attribute]
        for method, colour in colours.items():
            part = rows[rows["method"] == method]
            summary = overall.query("attribute == @attribute and method == @method")
            # solid line = micro, dashed line = macro, in the method's colour
            for kind, style in (("micro", "-"), ("macro", "--")):
                heights = [
                    float(line.get_ydata()[0])
                    for line in ax.get_lines()
                    if line.get_linestyle() == style and _same_colour(line.get_color(), colour)
                ]
                expected = float(summary.loc[summary["kind"] == kind, "mean"].iloc[0])
                assert heights == [pytest.approx(expected, rel=1e-12)], (method, kind)
            # markers: filled ones face the method colour, hollow ones (small) edge it
            points, areas, hollow = [], [], []
            for collection in ax.collections:
                if not isinstance(collection, PathCollection) or not len(collection.get_offsets()):
                    continue
                face = collection.get_facecolor()[0][:3]
                edge = collection.get_edgecolor()[0][:3]
                is_hollow = bool(np.allclose(face, 1.0))
                if _same_colour(edge if is_hollow else face, colour):
                    points.append(collection.get_offsets())
                    areas.append(collection.get_sizes())
                    hollow += [is_hollow] * len(collection.get_offsets())
            points, areas = np.concatenate(points), np.concatenate(areas)
            order = np.argsort(points[:, 0])  # left to right = subgroup order
            np.testing.assert_allclose(points[order, 1], part["mean"], rtol=1e-12)
            np.testing.assert_allclose(
                areas[order], 20 + 200 * part["n"].to_numpy() / largest_n, rtol=1e-12
            )
            assert np.array(hollow)[order].tolist() == part["small"].tolist()
            # whiskers span the bootstrap interval at the marker's x
            segments = np.array(
                [
                    segment
                    for collection in ax.collections
                    if isinstance(collection, LineCollection)
                    and _same_colour(collection.get_color()[0], colour)
                    for segment in collection.get_segments()
                ]
            )
            segments = segments[np.argsort(segments[:, 0, 0])]
            np.testing.assert_allclose(segments[:, 0, 0], points[order, 0])
            np.testing.assert_allclose(segments[:, 0, 1], part["ci_low"], rtol=1e-12)
            np.testing.assert_allclose(segments[:, 1, 1], part["ci_high"], rtol=1e-12)
    # the marker-size legend shows the areas drawn for the smallest and largest subgroup
    legend = figure.legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert "micro (all pairs)" in texts and "macro (mean of\nsubgroup means)" in texts
    for handle, text in zip(legend.legend_handles, texts, strict=True):
        if text.startswith("n = "):
            count = int(text.split()[2])
            assert handle.get_markersize() ** 2 == pytest.approx(20 + 200 * count / largest_n)
    sampled = {int(t.split()[2]) for t in texts if t.startswith("n = ")}
    assert {table["n"].min(), table["n"].max()} <= sampled


def _one_attribute_margins(names: list[str]):
    rng = np.random.default_rng(2)
    n = 300
    group = rng.choice(names, size=n)
    frames = [
        pd.DataFrame({"method": method, "group": group, "margin": rng.normal(lift, 1.0, n)})
        for method, lift in (("dpo", 0.0), ("mixdpo-gamma", 0.3), ("mixdpo-lognormal", 0.2))
    ]
    return pd.concat(frames, ignore_index=True)


def test_margin_and_gain_plots_keep_title_legend_and_labels_readable():
    evaluation = _one_attribute_margins(["consistent", "noisy", "polarised"])
    margins = subgroup_margins(evaluation, "group", num_boot=100)
    figure = plots.plot_subgroup_margins(margins, "group")
    _layout(figure)
    assert _inside_figure(figure, figure._suptitle)  # one narrow panel used to clip the title
    assert _inside_figure(figure, figure.legends[0])
    assert not _overlaps(figure.legends[0], figure.axes[0])
    assert not _overlaps(figure.legends[0], figure._suptitle)
    with pytest.raises(ValueError, match=r"method\(s\) \['ppo'\] not in the table"):
        plots.plot_subgroup_margins(margins, methods=["dpo", "ppo"])

    evaluation["pair"] = evaluation.groupby("method").cumcount()
    gains = subgroup_gains(evaluation, "group", baseline="dpo", pair_id="pair", num_boot=100)
    figure = plots.plot_subgroup_gains(gains)
    _layout(figure)
    assert _inside_figure(figure, figure.legends[0])  # the one-panel legend used to be clipped
    assert _inside_figure(figure, figure._suptitle)

    # long subgroup names wrap instead of running into each other
    long = subgroup_margins(
        _one_attribute_margins(LONG_EDUCATION), "group", num_boot=100, min_count=1
    )
    figure = plots.plot_subgroup_margins(long)
    _layout(figure)
    labels = figure.axes[0].get_xticklabels()
    texts = [t.get_text() for t in labels]
    assert sorted(t.replace("\n", " ") for t in texts) == sorted(LONG_EDUCATION)
    assert "\n" in next(t for t in texts if t.startswith("graduate"))
    for left, right in itertools.pairwise(labels):
        assert not _overlaps(left, right), (left.get_text(), right.get_text())


def test_gain_plot_draws_intervals_micro_macro_and_significance():
    gains = subgroup_gains(
        evaluation_table(), ["education"], baseline="dpo", pair_id="pair", num_boot=200
    )
    figure = plots.plot_subgroup_gains(gains)
    ax = figure.axes[0]
    colours = _method_colours(["dpo", *gains.subgroups["method"].unique()])
    assert [t.get_text() for t in ax.get_yticklabels()] == EDUCATION
    for method in ("mixdpo-gamma", "mixdpo-lognormal"):
        part = gains.subgroups.query("method == @method")
        segments = np.array(
            [
                segment
                for collection in ax.collections
                if isinstance(collection, LineCollection)
                and _same_colour(collection.get_color()[0], colours[method])
                for segment in collection.get_segments()
            ]
        )
        segments = segments[np.argsort(segments[:, 0, 1])]  # top to bottom = subgroup order
        np.testing.assert_allclose(segments[:, 0, 0], part["ci_low"], rtol=1e-12)
        np.testing.assert_allclose(segments[:, 1, 0], part["ci_high"], rtol=1e-12)
        np.testing.assert_allclose(np.round(segments[:, 0, 1]), np.arange(len(EDUCATION)))
        summary = gains.overall.query("method == @method")
        for kind, style in (("micro", "-"), ("macro", "--")):
            positions = [
                float(line.get_xdata()[0])
                for line in ax.get_lines()
                if line.get_linestyle() == style and _same_colour(line.get_color(), colours[method])
            ]
            expected = float(summary.loc[summary["kind"] == kind, "gain"].iloc[0])
            assert positions == [pytest.approx(expected, rel=1e-12)]
        # filled markers at the significant gains, hollow at the others
        drawn = {}
        for collection in ax.collections:
            if isinstance(collection, PathCollection) and len(collection.get_offsets()):
                face = collection.get_facecolor()[0][:3]
                edge = collection.get_edgecolor()[0][:3]
                hollow = bool(np.allclose(face, 1.0))
                if _same_colour(edge if hollow else face, colours[method]):
                    for x, _ in collection.get_offsets():
                        drawn[round(float(x), 12)] = not hollow
        expected_flags = {
            round(float(g), 12): bool(s)
            for g, s in zip(part["gain"], part["significant"], strict=True)
        }
        assert drawn == expected_flags


def test_gain_plot_marks_undefined_intervals_apart_from_intervals_that_include_zero():
    """A NaN interval (too few bootstrap replicates observe the subgroup) is drawn as a cross
    with its own legend entry, not as the hollow marker that means "the interval includes 0"."""
    gains = subgroup_gains(
        evaluation_table(), ["education"], baseline="dpo", pair_id="pair", num_boot=200
    )
    table = gains.subgroups.copy()
    undefined = (table["method"] == "mixdpo-gamma") & (table["subgroup"] == EDUCATION[1])
    table.loc[undefined, ["ci_low", "ci_high"]] = np.nan
    table.loc[undefined, "significant"] = False
    figure = plots.plot_subgroup_gains(dataclasses.replace(gains, subgroups=table))
    ax = figure.axes[0]
    colour = _method_colours(["dpo", *table["method"].unique()])["mixdpo-gamma"]
    crosses, circles = [], []
    for collection in ax.collections:
        if not isinstance(collection, PathCollection) or not len(collection.get_offsets()):
            continue
        vertices = collection.get_paths()[0].vertices
        is_cross = len(vertices) == 4  # matplotlib's "x" marker: two strokes
        colours = collection.get_edgecolor() if is_cross else collection.get_facecolor()
        if is_cross:
            crosses += [tuple(xy) for xy in collection.get_offsets()]
            assert _same_colour(colours[0][:3], colour)
        else:
            circles += [round(float(x), 12) for x, _ in collection.get_offsets()]
    expected = table.loc[undefined, "gain"].iloc[0]
    assert len(crosses) == 1 and crosses[0][0] == pytest.approx(expected, rel=1e-12)
    assert round(float(expected), 12) not in circles
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "CI includes 0" in legend and "no CI (too few replicates)" in legend
    # without undefined intervals there is no such legend entry
    figure = plots.plot_subgroup_gains(gains)
    assert "no CI (too few replicates)" not in [t.get_text() for t in figure.legends[0].get_texts()]


def _fake_posterior():
    """A SubgroupPosterior stand-in with a known summary and pooled-median draws."""
    summary = pd.DataFrame(
        {
            "subgroup": ["consistent", "noisy", "polarised"],
            "n": [250, 20, 150],
            "small": [False, True, False],
            "mean_strength": [1.8, 0.7, 1.45],
            "mean_strength_low": [1.3, 0.1, 1.0],
            "mean_strength_high": [2.45, 1.25, 2.0],
            "cv": [0.42, 0.47, 0.44],
            "cv_low": [0.17, 0.12, 0.15],
            "cv_high": [0.72, 0.77, 0.73],
        }
    )
    mu_log_mean = xr.DataArray(np.log([[0.9, 1.1, 1.2, 1.4, 1.0]]), dims=("chain", "draw"))
    return SimpleNamespace(
        summary=lambda: summary,
        family="gamma",
        by="annotator group",
        interval=0.9,
        min_count=30,
        idata=SimpleNamespace(posterior={"mu_log_mean": mu_log_mean}),
    )


def test_forest_plot_draws_hdis_means_sizes_in_table_order():
    posterior = _fake_posterior()
    summary = posterior.summary()
    truth = {"mean_strength": {"consistent": 2.0, "noisy": 0.5, "polarised": 1.0}}
    figure = plots.plot_subgroup_forest(posterior, truth=truth)
    assert len(figure.axes) == 2
    ticks = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert ticks == ["consistent (n=250)", "noisy (n=20)", "polarised (n=150)"]
    for ax, quantity in zip(figure.axes, ["mean_strength", "cv"], strict=True):
        intervals = next(c for c in ax.collections if isinstance(c, LineCollection))
        segments = np.array(intervals.get_segments())
        np.testing.assert_allclose(segments[:, 0, 0], summary[f"{quantity}_low"])
        np.testing.assert_allclose(segments[:, 1, 0], summary[f"{quantity}_high"])
        np.testing.assert_allclose(segments[:, 0, 1], [0, 1, 2])  # row i = summary row i
        points = [c for c in ax.collections if isinstance(c, PathCollection)][:2]
        filled, hollow = points
        np.testing.assert_allclose(filled.get_offsets()[:, 0], summary[quantity][[0, 2]])
        np.testing.assert_allclose(hollow.get_offsets()[:, 0], summary[quantity][[1]])
        np.testing.assert_allclose(filled.get_sizes(), 20 + 180 * np.array([250, 150]) / 250)
        np.testing.assert_allclose(hollow.get_sizes(), 20 + 180 * 20 / 250)
    pooled = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == ":"]
    assert float(pooled[0].get_xdata()[0]) == pytest.approx(1.1, rel=1e-12)  # exp(median)
    crosses = [c for c in figure.axes[0].collections if isinstance(c, PathCollection)][2]
    np.testing.assert_allclose(crosses.get_offsets(), [[2.0, 0], [0.5, 1], [1.0, 2]])
    _layout(figure)
    for ax in figure.axes:
        assert not _overlaps(figure.legends[0], ax)


def test_individual_histogram_and_wtp_panels_draw_the_data():
    rng = np.random.default_rng(4)
    individual = rng.normal(-0.2, 0.25, size=361)
    population = stats.norm(loc=-0.2, scale=0.3)
    figure = plots.plot_individual_coefficients(individual, population, name="cl", units="per year")
    ax = figure.axes[0]
    heights, edges = np.histogram(individual, bins="auto", density=True)
    np.testing.assert_allclose([bar.get_height() for bar in ax.patches], heights, rtol=1e-12)
    np.testing.assert_allclose([bar.get_x() for bar in ax.patches], edges[:-1], rtol=1e-12)
    means = [float(line.get_xdata()[0]) for line in ax.get_lines() if line.get_linestyle() != "-"]
    assert means == [pytest.approx(individual.mean()), pytest.approx(-0.2)]
    assert ax.get_xlabel() == "cl coefficient (per year)"
    _layout(figure)
    assert not _overlaps(figure.legends[0], ax)

    price = -np.exp(rng.normal(-0.2, 0.1, size=4000))
    names = ["cl", "loc", "wk", "tod", "seas"]
    draws = {name: rng.normal(k - 2, 0.5, size=4000) for k, name in enumerate(names)}
    figure = plots.plot_willingness_to_pay(draws, price, price_name="pf", price_units="cents/kWh")
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert len(figure.axes) == 6 and len(visible) == 5  # 2 rows of at most 3 panels
    for ax, name in zip(visible, names, strict=True):
        wtp = -draws[name] / price
        low, high = np.quantile(wtp, [0.005, 0.995])
        heights, _ = np.histogram(wtp[(wtp >= low) & (wtp <= high)], bins="auto", density=True)
        band = next(c for c in ax.patches + ax.collections if c.get_label().startswith("5%"))
        bars = [bar for bar in ax.patches if bar is not band]
        np.testing.assert_allclose([bar.get_height() for bar in bars], heights, rtol=1e-12)
        q05, q95 = np.quantile(wtp, [0.05, 0.95])
        # axvspan: a rectangle from x = q05 of width q95 - q05 (x in data coordinates)
        assert band.get_x() == pytest.approx(q05, rel=1e-12)
        assert band.get_x() + band.get_width() == pytest.approx(q95, rel=1e-12)
        assert f"median {np.median(wtp):.3g}" in ax.get_title()
        assert ax.get_xlabel() == f"WTP for {name} (cents/kWh per unit)"
    with pytest.raises(ValueError, match="coefficient_draws is empty"):
        plots.plot_willingness_to_pay({}, price)


def test_unnamed_groups_get_strong_colours_before_pale_ones():
    """Subgroups (names that are not methods) take dark colours first: the pale pink and
    yellow of the colorblind palette, hard to see as markers on white, only after eight
    others; and never a colour of a method drawn in the same figure."""
    from analysis.plots import _palette

    def luminance(colour):
        red, green, blue = to_rgb(colour)
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    names = [f"group {i}" for i in range(8)]
    colours = _palette(names)
    assert max(luminance(colours[n]) for n in names) < 0.7
    assert len({to_rgb(c) for c in colours.values()}) == len(names)
    with_methods = _palette(["dpo", "mixdpo-gamma", "decisive", "moderate", "uncertain"])
    method_colours = {to_rgb(with_methods[m]) for m in ("dpo", "mixdpo-gamma")}
    assert not method_colours & {
        to_rgb(with_methods[n]) for n in ("decisive", "moderate", "uncertain")
    }
