"""Figures of preference heterogeneity; every function returns a ``matplotlib.figure.Figure``.

Figures are built on ``matplotlib.figure.Figure`` directly (not ``pyplot``), so making many of
them leaks nothing and needs no interactive backend; Jupyter shows a returned figure inline and
``fig.savefig(path)`` writes it. Styling comes from a seaborn ``whitegrid`` context that is
applied per figure and leaves the global ``rcParams`` untouched. Names from the data (subgroups,
methods, runs, attributes) are drawn literally through :func:`analysis._labels.literal`: a
``$`` in ``"$25,000-$49,999"`` is not read as mathtext.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis._labels import literal
from analysis.converters import (
    TrainingRun,
    strength_distribution,
    training_runs_to_inference_data,
)
from analysis.margins import SubgroupGains, SubgroupMargins
from mixlogit._deprecation import deprecated_keywords
from mixlogit.families import NUMPY_OPS, get_family

__all__ = [
    "METHOD_COLOURS",
    "plot_individual_coefficients",
    "plot_policy_comparison",
    "plot_strength_densities",
    "plot_strength_trajectories",
    "plot_subgroup_forest",
    "plot_subgroup_gains",
    "plot_subgroup_margins",
    "plot_willingness_to_pay",
]

_STYLE = "whitegrid"


#: One colour per policy in every figure of a report (seaborn "colorblind" entries): the
#: reference grey, DPO blue, the MixDPO families orange and green, the variance-corrected and
#: agreement baselines purple and brown. Other names take the remaining colours in sorted order.
METHOD_COLOURS = {
    "reference": 7,
    "dpo": 0,
    "mixdpo-gamma": 1,
    "mixdpo-lognormal": 2,
    "variance-corrected-dpo": 4,
    "agreement-dpo": 5,
}


#: Indices of the colorblind palette not given to a method: strong ones, then pale ones.
_STRONG_FREE = (3, 9)
_PALE_FREE = (6, 8)
#: Methods' colours lent to other names when the figure has no such method: green and purple
#: first, as they read apart from the free vermillion and sky blue.
_BORROW_ORDER = (2, 4, 1, 0, 5)
#: The reference policy's grey: the last of the strong colours for other names.
_GREY = METHOD_COLOURS["reference"]


def _palette(names: Sequence[str]) -> dict[str, Any]:
    """``{name: colour}``: :data:`METHOD_COLOURS` for the names it knows, the other colours of
    the palette for the rest (sorted, so a figure's colours do not depend on drawing order)."""
    colours = sns.color_palette("colorblind", 10)
    known = {n: colours[METHOD_COLOURS[n]] for n in names if n in METHOD_COLOURS}
    used = {METHOD_COLOURS[n] for n in known}
    others = sorted(n for n in dict.fromkeys(names) if n not in METHOD_COLOURS)
    # the strong free colours first, then the methods' colours this figure does not use (grey
    # last of them), the pale pink and yellow last (a yellow marker on white is hard to see)
    unused = [i for i in _BORROW_ORDER if i in METHOD_COLOURS.values() and i not in used]
    order = [*_STRONG_FREE, *unused, _GREY, *_PALE_FREE]
    spare = [colours[i] for i in order]
    return {**known, **{n: spare[i % len(spare)] for i, n in enumerate(others)}}


def _run_styles(runs: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Colour and line style per run: a run named after a policy of :data:`METHOD_COLOURS`
    (``"mixdpo-gamma-heterogeneous"``) takes that policy's colour, so a run reads in the same
    colour as its policy in every figure; runs sharing a colour differ in line style."""
    known = sorted(METHOD_COLOURS, key=len, reverse=True)
    policy = {r: next((m for m in known if str(r).startswith(m)), str(r)) for r in runs}
    colours = _palette(list(dict.fromkeys(policy.values())))
    seen: dict[str, int] = {}
    styles = {}
    for run in runs:
        index = seen.get(policy[run], 0)
        seen[policy[run]] = index + 1
        styles[run] = ("-", "--", ":", "-.")[index % 4]
    return {r: colours[policy[r]] for r in runs}, styles


def _marker_sizes(counts: np.ndarray, largest: float, most: float | None = None) -> np.ndarray:
    """Marker areas (points^2) growing linearly with the count: 20 at 0, ``largest`` at ``most``.

    ``most`` defaults to the largest of ``counts``; pass it to size a legend sample or a subset
    on the same scale as the full table.
    """
    counts = np.asarray(counts, dtype=np.float64)
    top = float(counts.max()) if most is None else float(most)
    return 20.0 + (largest - 20.0) * counts / max(top, 1.0)


def _size_handles(counts: np.ndarray, largest: float) -> list[Line2D]:
    """Legend samples of marker area for the smallest and largest count (and one between)."""
    low, high = int(np.min(counts)), int(np.max(counts))
    samples = sorted({low, (low + high) // 2, high}) if high > low else [high]
    areas = _marker_sizes(np.array(samples), largest, most=high)
    # Line2D markersize is a diameter in points, scatter ``s`` an area in points^2
    return [
        Line2D(
            [],
            [],
            color="0.45",
            marker="o",
            markersize=float(np.sqrt(area)),
            linestyle="",
            label=f"n = {count} pairs",
        )
        for count, area in zip(samples, areas, strict=True)
    ]


def _hollow_handle(colour: Any, label: str) -> Line2D:
    """Legend entry of a hollow marker (small subgroups, intervals that include 0)."""
    return Line2D(
        [], [], color=colour, marker="o", markerfacecolor="white", linestyle="", label=label
    )


def _method_handles(
    colours: Mapping[str, Any], methods: Sequence[str], micro: str, macro: str
) -> list[Line2D]:
    """Legend entries: one marker per method, then the solid micro and dashed macro lines."""
    return [
        *(
            Line2D([], [], color=colours[m], marker="o", linestyle="", label=literal(m))
            for m in methods
        ),
        Line2D([], [], color="0.3", linestyle="-", label=micro),
        Line2D([], [], color="0.3", linestyle="--", label=macro),
    ]


def _dodge(
    rows: pd.DataFrame, methods: Sequence[str], spread: float
) -> tuple[list[Any], list[tuple[str, pd.DataFrame, np.ndarray]]]:
    """Where each method's subgroup markers go on the subgroup axis of one panel.

    Returns the subgroups of ``rows`` in order of first appearance (subgroup ``i`` at ``i``) and
    per method ``(method, its rows, their positions)``, the methods side by side within
    ``spread``.
    """
    levels = list(dict.fromkeys(rows["subgroup"]))
    position = {level: i for i, level in enumerate(levels)}
    spacing = spread / max(len(methods), 1)
    parts = []
    for k, method in enumerate(methods):
        part = rows[rows["method"] == method]
        offset = (k - (len(methods) - 1) / 2) * spacing
        parts.append((method, part, np.array([position[s] for s in part["subgroup"]]) + offset))
    return levels, parts


def _interval_bars(
    ax: Any,
    position: np.ndarray,
    part: pd.DataFrame,
    value: str,
    colour: Any,
    *,
    vertical: bool,
    **style: Any,
) -> None:
    """Bars from ``part["ci_low"]`` to ``part["ci_high"]`` through ``part[value]``, at
    ``position`` on the subgroup axis (``x`` when ``vertical``)."""
    centre = part[value]
    spans = [centre - part["ci_low"], part["ci_high"] - centre]
    if vertical:
        ax.errorbar(position, centre, yerr=spans, fmt="none", ecolor=colour, capsize=2, **style)
    else:
        ax.errorbar(centre, position, xerr=spans, fmt="none", ecolor=colour, capsize=2, **style)


def _filled_and_hollow(
    ax: Any, x: Any, y: Any, hollow: np.ndarray, colour: Any, sizes: Any, **filled: Any
) -> None:
    """Scatter ``(x, y)`` in ``colour``, hollow where ``hollow``; ``sizes`` scalar or per point."""
    per_point = np.ndim(sizes) > 0
    ax.scatter(
        x[~hollow],
        y[~hollow],
        s=sizes[~hollow] if per_point else sizes,
        color=colour,
        zorder=3,
        **filled,
    )
    ax.scatter(
        x[hollow],
        y[hollow],
        s=sizes[hollow] if per_point else sizes,
        facecolor="white",
        edgecolor=colour,
        linewidth=1.4,
        zorder=3,
    )


def _truth_crosses(
    ax: Any,
    truth: Mapping[str, Mapping[str, float]] | None,
    quantity: str,
    subgroups: Sequence[str],
    y: np.ndarray,
    label: str | None = None,
) -> None:
    """Red crosses at the true ``truth[quantity][subgroup]`` of each subgroup row ``y`` of a
    forest plot (simulated data); nothing when ``truth`` is None or lacks ``quantity``."""
    if truth is not None and quantity in truth:
        ax.scatter(
            [truth[quantity][s] for s in subgroups],
            y,
            marker="x",
            color="C3",
            s=50,
            zorder=4,
            label=label,
        )


def _wrap(label: object, width: int) -> str:
    """Tick label broken into lines of at most ``width`` characters (long subgroup names).

    Returns the raw text: pass it through :func:`literal` before drawing it (the wrapping counts
    the characters shown, not the escapes).
    """
    lines = textwrap.wrap(str(label), width, break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines) or str(label)


def _title(figure: Figure, text: str, width_inches: float) -> None:
    """Suptitle wrapped to the figure width (~11 characters per inch at medium size)."""
    figure.suptitle(textwrap.fill(text, max(20, int(11 * width_inches))), fontsize="medium")


def _new_figure(num_panels: int, *, panel_width: float, height: float, sharey: bool) -> tuple:
    figure = Figure(figsize=(panel_width * num_panels, height), layout="constrained")
    axes = figure.subplots(1, num_panels, sharey=sharey, squeeze=False)[0]
    return figure, axes


def _panels(table: pd.DataFrame, by: str | Sequence[str] | None) -> list[str]:
    """The subgroup columns to draw, one panel each (the tables' ``attribute`` column)."""
    present = list(dict.fromkeys(table["attribute"]))
    if by is None:
        return present
    wanted = [by] if isinstance(by, str) else list(by)
    unknown = [a for a in wanted if a not in present]
    if unknown:
        raise ValueError(f"subgroup column(s) {unknown} not in the table; it has {present}")
    return wanted


@deprecated_keywords(attributes="by")
def plot_subgroup_margins(
    margins: SubgroupMargins,
    by: str | Sequence[str] | None = None,
    *,
    methods: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Mean margin per subgroup with bootstrap intervals, micro (solid) and macro (dashed) lines.

    One panel per attribute, one colour per method (dodged). Marker area is proportional to the
    subgroup's number of pairs; hollow markers are subgroups flagged ``small``. The shaded band
    around each micro line is its bootstrap interval.

    Args:
        margins: output of :func:`analysis.subgroup_margins`.
        by: subgroup column(s) to draw, one panel each (default: all; formerly
            ``attributes``).
        methods: methods to draw, in legend order (default: all).
        title: figure title.
    """
    table, overall = margins.subgroups, margins.overall
    panels = _panels(table, by)
    method_names = list(methods) if methods is not None else list(dict.fromkeys(table["method"]))
    unknown_methods = [m for m in method_names if m not in set(table["method"])]
    if unknown_methods:
        raise ValueError(
            f"method(s) {unknown_methods} not in the table; it has "
            f"{list(dict.fromkeys(table['method']))}"
        )
    colours = _palette(sorted(dict.fromkeys(table["method"])))
    shown = table[table["attribute"].isin(panels) & table["method"].isin(method_names)]
    counts = shown["n"].to_numpy(float)
    most = float(counts.max())
    num_levels = shown.groupby("attribute")["subgroup"].nunique()
    panel_width = max(3.4, 0.35 + 0.22 * len(method_names) * num_levels.max())
    legend_width = 2.4
    width = panel_width * len(panels) + legend_width
    with sns.axes_style(_STYLE):
        figure = Figure(figsize=(width, 4.4), layout="constrained")
        axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        for ax, attribute in zip(axes, panels, strict=True):
            rows = shown[shown["attribute"] == attribute]
            levels, parts = _dodge(rows, method_names, 0.6)
            for method, part, x in parts:
                if part.empty:
                    continue
                colour = colours[method]
                _interval_bars(ax, x, part, "mean", colour, vertical=True, elinewidth=1.2, zorder=2)
                _filled_and_hollow(
                    ax,
                    x,
                    part["mean"],
                    part["small"].to_numpy(bool),
                    colour,
                    _marker_sizes(part["n"].to_numpy(float), 220.0, most=most),
                    edgecolor="white",
                    linewidth=0.6,
                )
                summary = overall[
                    (overall["attribute"] == attribute) & (overall["method"] == method)
                ]
                micro = summary[summary["kind"] == "micro"].iloc[0]
                macro = summary[summary["kind"] == "macro"].iloc[0]
                ax.axhline(micro["mean"], color=colour, linestyle="-", linewidth=1.2, zorder=1)
                ax.axhspan(micro["ci_low"], micro["ci_high"], color=colour, alpha=0.12, zorder=0)
                ax.axhline(macro["mean"], color=colour, linestyle="--", linewidth=1.2, zorder=1)
            # long subgroup names ("graduate or professional degree") wrap onto several lines
            slot = panel_width / max(len(levels), 1)
            ax.set_xticks(
                range(len(levels)),
                [literal(_wrap(level, max(10, int(12 * slot)))) for level in levels],
            )
            ax.set_xlabel(literal(attribute))
            ax.set_xlim(-0.6, len(levels) - 0.4)
        axes[0].set_ylabel(literal(f"mean {margins.value} (nats)"))
        handles = [
            *_method_handles(
                colours, method_names, "micro (all pairs)", "macro (mean of\nsubgroup means)"
            ),
            _hollow_handle("0.3", f"small: n < {margins.min_count}"),
            *_size_handles(counts, 220.0),
        ]
        figure.legend(
            handles=handles,
            loc="outside right center",
            fontsize="small",
            frameon=False,
            labelspacing=0.9,
        )
        _title(
            figure,
            title
            or f"Subgroup margins ({margins.interval:.0%} bootstrap intervals; "
            "shaded: micro interval; marker area ∝ pairs)",
            width,
        )
    return figure


@deprecated_keywords(attributes="by")
def plot_subgroup_gains(
    gains: SubgroupGains,
    by: str | Sequence[str] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Gain of each method over the baseline per subgroup, one panel per attribute or context.

    Horizontal intervals are bootstrap CIs; filled markers exclude 0, hollow markers do not,
    and a cross marks a subgroup whose interval is undefined (fewer than
    :data:`analysis.margins.MIN_REPLICATES` bootstrap replicates observe it); ``n`` is printed beside each subgroup; the solid and dashed vertical lines are the micro and
    macro gains. Pass a context column (``conversation_type``) as one of ``by`` when computing
    the gains to get a per-context panel. ``by`` selects the subgroup columns drawn (default:
    all; formerly ``attributes``).
    """
    table, overall = gains.subgroups, gains.overall
    panels = _panels(table, by)
    method_names = list(dict.fromkeys(table["method"]))
    baseline = str(table["baseline"].iloc[0])
    # same colour per method as in plot_subgroup_margins (palette over all sorted names)
    colours = _palette(sorted([baseline, *method_names]))
    height = 1.8 + 0.45 * len(method_names) ** 0.5 * (
        table.groupby("attribute")["subgroup"].nunique().max()
    )
    panel_width = 4.6
    width = panel_width * len(panels)
    any_undefined = False
    with sns.axes_style(_STYLE):
        figure, axes = _new_figure(
            len(panels), panel_width=panel_width, height=height, sharey=False
        )
        for ax, attribute in zip(axes, panels, strict=True):
            rows = table[table["attribute"] == attribute]
            levels, parts = _dodge(rows, method_names, 0.5)
            for method, part, y in parts:
                colour = colours[method]
                _interval_bars(ax, y, part, "gain", colour, vertical=False, elinewidth=1.4)
                # three states, three markers: the interval excludes 0 (filled), includes 0
                # (hollow), or is undefined (a cross: too few bootstrap replicates saw the
                # subgroup), so that "no interval" never reads as "includes 0"
                undefined = (part["ci_low"].isna() | part["ci_high"].isna()).to_numpy(bool)
                defined = part[~undefined]
                _filled_and_hollow(
                    ax,
                    defined["gain"],
                    y[~undefined],
                    ~defined["significant"].to_numpy(bool),
                    colour,
                    36,
                )
                if undefined.any():
                    any_undefined = True
                    ax.scatter(
                        part["gain"][undefined],
                        y[undefined],
                        s=40,
                        marker="x",
                        color=colour,
                        linewidth=1.6,
                        zorder=3,
                    )
                summary = overall[
                    (overall["attribute"] == attribute) & (overall["method"] == method)
                ]
                for kind, style in (("micro", "-"), ("macro", "--")):
                    ax.axvline(
                        summary.loc[summary["kind"] == kind, "gain"].iloc[0],
                        color=colour,
                        linestyle=style,
                        linewidth=1.0,
                        alpha=0.8,
                    )
            ax.axvline(0.0, color="black", linewidth=0.8)
            for position, level in enumerate(levels):
                at = rows[rows["subgroup"] == level]
                counts = "/".join(str(n) for n in dict.fromkeys(at["n"]))
                if not gains.paired:
                    counts += f" vs {'/'.join(str(n) for n in dict.fromkeys(at['n_baseline']))}"
                ax.annotate(
                    f"n={counts}" + (" (small)" if at["small"].any() else ""),
                    (1.0, position),
                    xycoords=("axes fraction", "data"),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize="x-small",
                    color="0.35",
                )
            ax.set_yticks(range(len(levels)), [literal(_wrap(level, 18)) for level in levels])
            ax.set_ylim(len(levels) - 0.5, -0.5)
            ax.set_xlabel(literal(f"margin gain over {baseline} (nats)"))
            ax.set_title(literal(attribute), fontsize="medium")
        handles = [
            *_method_handles(
                colours, method_names, "micro gain (all pairs)", "macro gain (mean of subgroups)"
            ),
            _hollow_handle("0.3", "CI includes 0"),
        ]
        if any_undefined:
            handles.append(
                Line2D(
                    [],
                    [],
                    color="0.3",
                    marker="x",
                    linestyle="",
                    label="no CI (too few replicates)",
                )
            )
        # as many legend columns as fit the figure width (~2 inches per entry), in rows below
        columns = max(1, min(len(handles), int(width // 2.0)))
        figure.legend(
            handles=handles,
            loc="outside lower center",
            ncols=columns,
            fontsize="small",
            frameon=False,
        )
        _title(
            figure,
            title
            or f"Margin gains over {literal(baseline)} ({gains.interval:.0%} bootstrap intervals"
            + (", paired" if gains.paired else "")
            + "; n = pairs per subgroup)",
            width,
        )
    return figure


def _trajectory_frame(data: Any) -> pd.DataFrame:
    """Long table ``run, dataset, family, step, <variables>`` from InferenceData or runs."""
    if isinstance(data, pd.DataFrame):
        frame = data.copy()
        if "run" not in frame:
            frame["run"] = "run"
        for column in ("dataset", "family"):
            if column not in frame:
                frame[column] = "unknown"
        return frame.rename(columns=lambda c: str(c).replace("/", "_"))
    if hasattr(data, "trajectory"):
        return data.trajectory.to_dataframe().reset_index()
    if isinstance(data, TrainingRun | Mapping) or (
        isinstance(data, Sequence) and data and isinstance(data[0], TrainingRun)
    ):
        data = training_runs_to_inference_data(data)
    if not hasattr(data, "trajectory"):
        raise TypeError(
            "expected InferenceData with a 'trajectory' group, TrainingRun(s), {name: log} or a "
            f"DataFrame; got {type(data).__name__}"
        )
    frame = data.trajectory.to_dataframe().reset_index()
    return frame


#: Axis labels of the strength statistics a MixDPO run logs.
_QUANTITY_LABELS = {
    "strength/mean": "mean of strength β",
    "strength/variance": "variance of β",
    "strength/cv": "CV of β (SD / mean)",
    "loss": "training loss (nats)",
    "rewards/margins": "reward margin (nats)",
}


def plot_strength_trajectories(
    runs: Any,
    quantities: Sequence[str] = ("strength/mean", "strength/variance"),
    *,
    hue: str = "dataset",
    style: str = "family",
    log_scale: Sequence[str] = ("strength/variance",),
    title: str | None = None,
) -> Figure:
    """Strength mean, variance (or any logged key) against training step, one line per run.

    Args:
        runs: InferenceData from :func:`training_runs_to_inference_data`, TrainingRun(s),
            ``{name: log}``, or a long DataFrame with ``step``, ``run`` and the quantities.
        quantities: logged keys, one panel each (``"strength/cv"``, ``"rewards/margins"``...).
        hue: run label mapped to colour (``"dataset"``, ``"family"`` or ``"run"``).
        style: run label mapped to line style.
        log_scale: quantities drawn on a log y axis.
    """
    frame = _trajectory_frame(runs)
    names = [q.replace("/", "_") for q in quantities]
    missing = [q for q, n in zip(quantities, names, strict=True) if n not in frame]
    if missing:
        raise ValueError(f"quantities {missing} are not logged; available: {sorted(frame.columns)}")
    with sns.axes_style(_STYLE):
        figure = Figure(figsize=(4.2 * len(names) + 1.8, 3.6), layout="constrained")
        axes = figure.subplots(1, len(names), squeeze=False)[0]
        for ax, quantity, name in zip(axes, quantities, names, strict=True):
            part = frame.dropna(subset=[name])
            sns.lineplot(
                data=part,
                x="step",
                y=name,
                hue=hue,
                style=style,
                units="run",
                estimator=None,
                ax=ax,
                legend=ax is axes[-1],
                palette="colorblind",
            )
            ax.set_ylabel(_QUANTITY_LABELS.get(quantity, literal(quantity)))
            ax.set_xlabel("training step")
            if quantity in log_scale:
                ax.set_yscale("log")
        legend = axes[-1].get_legend()
        if legend is not None:
            # seaborn puts the legend inside the last panel; move it beside the panels
            handles, labels = axes[-1].get_legend_handles_labels()
            legend.remove()
            figure.legend(
                handles,
                [literal(label) for label in labels],  # run, dataset and family names
                loc="outside right center",
                fontsize="small",
                frameon=False,
            )
        figure.suptitle(title or "Learned strength during training", fontsize="medium")
    return figure


def _strength_specs(strengths: Any) -> list[tuple[str, str, dict[str, float]]]:
    """``[(label, family, parameters)]`` from InferenceData or a mapping."""
    if hasattr(strengths, "strength"):
        group = strengths.strength
        specs = []
        for run, family in zip(group["run"].values, group["family"].values, strict=True):
            parameters = get_family(str(family)).parameters
            params = {p: float(group[p].sel(run=run)) for p in parameters}
            specs.append((str(run), str(family), params))
        return specs
    if isinstance(strengths, Mapping):
        specs = []
        for label, spec in strengths.items():
            if hasattr(spec, "family") and hasattr(spec, "constrained_parameters"):
                params = {k: float(v) for k, v in spec.constrained_parameters().items()}
                specs.append((str(label), str(spec.family), params))
            else:
                family, params = spec
                specs.append((str(label), str(family), {k: float(v) for k, v in params.items()}))
        return specs
    raise TypeError(
        "strengths must be InferenceData with a 'strength' group or a mapping {label: "
        "(family, {parameter: value})} / {label: strength object}"
    )


def plot_strength_densities(
    strengths: Any,
    *,
    upper: float | None = None,
    num_points: int = 512,
    title: str | None = None,
) -> Figure:
    """Densities of learned strength distributions; a fixed strength is a vertical line.

    Args:
        strengths: InferenceData from :func:`training_runs_to_inference_data` (its
            ``strength`` group: the last logged step of each run), a mapping ``{label: (family,
            {parameter: value})}``, or ``{label: GammaStrength | LogNormalStrength |
            FixedStrength}`` from :mod:`mixlogit`.
        upper: right end of the strength axis (default: the largest 99.5 % quantile).
        num_points: grid size of each curve.

    The legend gives each distribution's mean and coefficient of variation.
    """
    specs = _strength_specs(strengths)
    distributions = [
        (label, family, params, strength_distribution(family, **params))
        for label, family, params in specs
    ]
    if upper is None:
        tops = [d.ppf(0.995) for *_, d in distributions if d is not None]
        tops += [1.5 * p["beta"] for _, f, p, d in distributions if d is None]
        upper = float(max(tops))
    grid = np.linspace(upper / (10 * num_points), upper, num_points)
    colours, styles = _run_styles([label for label, *_ in specs])
    with sns.axes_style(_STYLE):
        figure, axes = _new_figure(
            1, panel_width=6.4, height=3.6 + 0.2 * len(distributions), sharey=False
        )
        ax = axes[0]
        for label, family, params, distribution in distributions:
            if distribution is None:
                ax.axvline(
                    params["beta"],
                    color=colours[label],
                    linestyle=":",
                    linewidth=1.6,
                    label=f"{literal(label)}: fixed β={params['beta']:.3g}",
                )
                continue
            moments = get_family(family).moments(NUMPY_OPS, params)
            ax.plot(
                grid,
                distribution.pdf(grid),
                color=colours[label],
                linestyle=styles[label],
                linewidth=1.8,
                label=f"{literal(label)}: {literal(family)}, mean {moments['mean']:.3g}, "
                f"CV {moments['cv']:.2f}",
            )  # outlines only: filled densities overlap into one band
        ax.set_xlim(0, upper)
        # a Gamma with shape < 1 has a pole at 0: scale the y axis to the curves' bodies
        tops = [
            distribution.pdf(grid[grid >= distribution.ppf(0.05)]).max()
            for *_, distribution in distributions
            if distribution is not None and np.any(grid >= distribution.ppf(0.05))
        ]
        ax.set_ylim(0, 1.1 * max(tops) if tops else None)
        ax.set_xlabel("preference strength β")
        ax.set_ylabel("density")
        # below the axes: the curves of a heterogeneous run reach the top right corner
        figure.legend(loc="outside lower center", fontsize="small", frameon=False)
        figure.suptitle(title or "Learned strength distributions", fontsize="medium")
    return figure


def plot_subgroup_forest(
    posterior: Any,
    *,
    truth: Mapping[str, Mapping[str, float]] | None = None,
    title: str | None = None,
) -> Figure:
    """Forest plot of a :class:`~analysis.subgroup_posterior.SubgroupPosterior`.

    Left: posterior mean strength per subgroup with its HDI; right (Gamma/LogNormal): the
    coefficient of variation. Marker area ~ pairs, hollow = small subgroup; the dotted line is
    the pooled (population) median ``exp(mu_log_mean)``. ``truth`` (``{"mean_strength": {...},
    "cv": {...}}`` keyed by subgroup) adds red crosses, for simulated data.
    """
    summary = posterior.summary()
    quantities = [q for q in ("mean_strength", "cv") if q in summary.columns]
    labels = {
        "mean_strength": "mean strength β of the subgroup",
        "cv": "coefficient of variation of β (SD / mean)",
    }
    sizes = _marker_sizes(summary["n"].to_numpy(float), 200.0)
    small = summary["small"].to_numpy(bool)
    y = np.arange(len(summary))
    with sns.axes_style(_STYLE):
        figure, axes = _new_figure(
            len(quantities), panel_width=4.4, height=2.4 + 0.5 * len(summary), sharey=True
        )
        for ax, quantity in zip(axes, quantities, strict=True):
            centre = summary[quantity].to_numpy()
            ax.hlines(
                y,
                summary[f"{quantity}_low"],
                summary[f"{quantity}_high"],
                color="C0",
                linewidth=2.0,
            )
            _filled_and_hollow(ax, centre, y, small, "C0", sizes)
            if quantity == "mean_strength":
                pooled = float(np.exp(posterior.idata.posterior["mu_log_mean"].median()))
                ax.axvline(pooled, color="0.4", linestyle=":", label=f"pooled median {pooled:.3g}")
            _truth_crosses(ax, truth, quantity, summary["subgroup"], y, label="truth")
            ax.set_xlabel(labels[quantity])
        axes[0].set_yticks(
            y,
            [
                literal(f"{s} (n={n})")
                for s, n in zip(summary["subgroup"], summary["n"], strict=True)
            ],
        )
        axes[0].set_ylim(len(summary) - 0.5, -0.5)
        axes[0].set_ylabel(literal(posterior.by))
        # one legend below the panels, so that it never covers an interval
        handles = [
            Line2D([], [], color="C0", linewidth=2.0, label=f"{posterior.interval:.0%} HDI"),
            _hollow_handle("C0", f"small: n < {posterior.min_count}"),
        ]
        seen = set()
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                if label not in seen:
                    seen.add(label)
                    handles.append(handle)
        handles += _size_handles(summary["n"].to_numpy(), 200.0)
        figure.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(len(handles), 4),
            fontsize="small",
            frameon=False,
        )
        figure.suptitle(
            title
            or f"Subgroup strength posteriors ({posterior.family}, {posterior.interval:.0%} HDI)",
            fontsize="medium",
        )
    return figure


class _EmpiricalDensity:
    """Gaussian-KDE density, quantiles and mean of population draws (scipy-like interface)."""

    def __init__(self, draws: np.ndarray) -> None:
        from scipy import stats

        if draws.size < 2 or not np.all(np.isfinite(draws)):
            raise ValueError("population draws must be finite and at least 2")
        self.draws = draws
        self.pdf = stats.gaussian_kde(draws)

    def ppf(self, q):
        return np.quantile(self.draws, q)

    def mean(self) -> float:
        return float(self.draws.mean())


def plot_individual_coefficients(
    individual: np.ndarray,
    population: Any,
    *,
    name: str = "coefficient",
    units: str | None = None,
    bins: int | str = "auto",
    title: str | None = None,
) -> Figure:
    """Histogram of individual-level coefficients against the population density.

    Args:
        individual: ``(I,)`` per-individual estimates (conditional means ``E[beta_i | y_i]`` of
            a mixed logit, or posterior means).
        population: a frozen ``scipy.stats`` distribution, ``(family, {parameter: value})``
            of a strength family, or a 1-D array of population draws (e.g. a column of
            ``EstimationResults.population_coefficients()``), drawn as a Gaussian KDE.
        name: coefficient name for the axis label.
        units: units of the coefficient for the axis label (``"utility per year"``).

    Individual conditional means are shrunk towards the population mean, so their histogram is
    narrower than the population density; the two means should agree.
    """
    values = np.asarray(individual, dtype=np.float64).ravel()
    if values.size == 0 or not np.all(np.isfinite(values)):
        bad = np.flatnonzero(~np.isfinite(values))
        raise ValueError(
            f"individual coefficients must be finite and non-empty (bad entries {bad[:5].tolist()})"
        )
    if isinstance(population, tuple):
        population = strength_distribution(population[0], **population[1])
    if isinstance(population, np.ndarray | pd.Series | list):
        population = _EmpiricalDensity(np.asarray(population, dtype=np.float64).ravel())
    low, high = population.ppf([0.001, 0.999])
    low, high = min(low, values.min()), max(high, values.max())
    grid = np.linspace(low, high, 512)
    with sns.axes_style(_STYLE):
        figure, axes = _new_figure(1, panel_width=6.0, height=4.4, sharey=False)
        ax = axes[0]
        ax.hist(
            values,
            bins=bins,
            density=True,
            color="C0",
            alpha=0.45,
            label=f"individual estimates (I={values.size})",
        )
        ax.plot(grid, population.pdf(grid), color="C1", linewidth=2.0, label="population density")
        ax.axvline(
            values.mean(),
            color="C0",
            linestyle="--",
            linewidth=1.2,
            label=f"mean of individuals {values.mean():.3g}",
        )
        ax.axvline(
            float(population.mean()),
            color="C1",
            linestyle=":",
            linewidth=1.4,
            label=f"population mean {float(population.mean()):.3g}",
        )
        ax.set_xlabel(literal(f"{name} coefficient" + (f" ({units})" if units else "")))
        ax.set_ylabel("density")
        figure.legend(loc="outside lower center", ncols=2, fontsize="small", frameon=False)
        figure.suptitle(
            title or f"Individual-level {literal(name)} vs the population", fontsize="medium"
        )
    return figure


def plot_willingness_to_pay(
    coefficient_draws: Mapping[str, np.ndarray],
    price_draws: np.ndarray,
    *,
    price_name: str = "price",
    price_units: str | None = None,
    quantiles: tuple[float, float] = (0.05, 0.95),
    max_columns: int = 3,
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """Willingness-to-pay distributions ``-beta_k / beta_price``, one panel per attribute.

    Args:
        coefficient_draws: ``{attribute: (R,) draws}`` of each coefficient (population draws of
            a mixed logit, or posterior draws).
        price_draws: ``(R,)`` draws of the price coefficient, jointly drawn with the others
            (same index = same draw), nonzero.
        price_name: label of the price coefficient.
        price_units: units of the price attribute (``"cents/kWh"``); WTP is in these units
            per unit of the attribute.
        quantiles: quantiles marked on each panel.
        max_columns: panels per row.
        labels: ``{variable: words}`` for the axis labels and title (``{"cl": "contract
            length"}``, e.g. :data:`mixlogit.datasets.ELECTRICITY_LABELS`); variables without an
            entry keep their name.

    Panels show a histogram of the WTP draws, trimmed to the 0.5 %-99.5 % range for display
    (ratios of random coefficients can be heavy-tailed), with the median (black line) and the
    ``quantiles`` (shaded); each panel's title states both. A thin grey line marks WTP = 0
    (where 0 lies within a display range's width of the draws).
    """
    words = dict(labels or {})
    price = np.asarray(price_draws, dtype=np.float64)
    if np.any(price == 0) or not np.all(np.isfinite(price)):
        raise ValueError("price_draws must be finite and nonzero (WTP divides by them)")
    if not coefficient_draws:
        raise ValueError("coefficient_draws is empty: give {attribute: draws}")
    num_panels = len(coefficient_draws)
    columns = max(1, min(max_columns, num_panels))
    rows = -(-num_panels // columns)
    with sns.axes_style(_STYLE):
        figure = Figure(figsize=(4.0 * columns, 0.6 + 3.0 * rows), layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for ax in axes[num_panels:]:
            ax.set_visible(False)
        for index, (attribute, draws) in enumerate(coefficient_draws.items()):
            ax = axes[index]
            draws = np.asarray(draws, dtype=np.float64)
            if draws.shape != price.shape:
                raise ValueError(
                    f"draws of {attribute!r} have shape {draws.shape}, price draws {price.shape}"
                )
            wtp = -draws / price
            low, high = np.quantile(wtp, [0.005, 0.995])
            shown = wtp[(wtp >= low) & (wtp <= high)]
            ax.hist(shown, bins="auto", density=True, color="C2", alpha=0.5)
            median = float(np.median(wtp))
            q_low, q_high = np.quantile(wtp, quantiles)
            # the zero line, unless drawing it would squeeze the histogram to a sliver
            if low - (high - low) <= 0.0 <= high + (high - low):
                ax.axvline(0.0, color="0.35", linewidth=0.8, zorder=1)
            ax.axvline(median, color="black", linewidth=1.4, label=f"median {median:.3g}")
            ax.axvspan(
                q_low,
                q_high,
                color="C2",
                alpha=0.12,
                label=f"{quantiles[0]:.0%}-{quantiles[1]:.0%}: [{q_low:.3g}, {q_high:.3g}]",
            )
            ax.set_title(
                f"median {median:.3g}; {quantiles[0]:.0%}-{quantiles[1]:.0%} "
                f"[{q_low:.3g}, {q_high:.3g}]",
                fontsize="small",
            )
            unit = price_units if price_units else f"units of {words.get(price_name, price_name)}"
            ax.set_xlabel(
                literal(_wrap(f"WTP for {words.get(attribute, attribute)} ({unit} per unit)", 40))
            )
            if index % columns == 0:
                ax.set_ylabel("density")
        figure.suptitle(
            title
            or f"Willingness to pay = -β_attribute / β_{literal(price_name)}"
            + (f" ({literal(words[price_name])})" if price_name in words else ""),
            fontsize="medium",
        )
    return figure


def plot_policy_comparison(comparison: Any, *, title: str | None = None) -> Figure:
    """Margin, gain over the reference and preference accuracy of each policy, one column per
    dataset on shared axes, with the bootstrap intervals of :func:`analysis.compare_policies`.

    Rows: mean margin (nats), gain over the reference policy (nats, zero line), accuracy (share
    of pairs ranked as the annotator did, chance line at 0.5). One colour per policy
    (:data:`METHOD_COLOURS`); the reference policy appears in the margin and accuracy rows.
    With seed replicates the small open circles to the right of a policy are its seeds' own
    means, the filled marker and bars the seed-averaged policy.
    """
    table = comparison.policies
    seeds = getattr(comparison, "per_seed", pd.DataFrame())
    datasets = list(dict.fromkeys(table["dataset"]))
    methods = list(dict.fromkeys(table["method"]))
    colours = _palette(methods)
    quantities = [("margin", "mean margin (nats)", 0.0), ("accuracy", "accuracy", 0.5)]
    if table["gain_over_reference"].notna().any():
        quantities.insert(1, ("gain_over_reference", "gain over reference (nats)", 0.0))
    with sns.axes_style(_STYLE):
        figure = Figure(figsize=(3.2 * len(datasets) + 1.6, 2.4 * len(quantities) + 0.6))
        axes = figure.subplots(
            len(quantities), len(datasets), sharey="row", sharex=True, squeeze=False
        )
        for column, dataset in enumerate(datasets):
            rows = table[table["dataset"] == dataset].set_index("method")
            for row, (key, label, line) in enumerate(quantities):
                ax = axes[row, column]
                ax.axhline(line, color="0.35", linewidth=0.8, zorder=1)
                for position, method in enumerate(methods):
                    if method not in rows.index or not np.isfinite(rows.loc[method, key]):
                        continue
                    value = rows.loc[method, key]
                    span = [[value - rows.loc[method, f"{key}_low"]],
                            [rows.loc[method, f"{key}_high"] - value]]  # fmt: skip
                    ax.errorbar(position, value, yerr=span, fmt="o", color=colours[method],
                                capsize=3, markersize=6, zorder=3)  # fmt: skip
                    if key in seeds.columns:
                        mine = seeds[(seeds["dataset"] == dataset) & (seeds["method"] == method)]
                        ax.scatter(
                            np.full(len(mine), position + 0.22),
                            mine[key],
                            s=14,
                            facecolor="white",
                            edgecolor=colours[method],
                            linewidth=1.0,
                            zorder=3,
                        )
                ax.set_xticks(range(len(methods)))
                ax.set_xticklabels([literal(m) for m in methods], rotation=30, ha="right")
                if column == 0:
                    ax.set_ylabel(label)
                if row == 0:
                    ax.set_title(_wrap(literal(dataset), 30))
        figure.suptitle(
            _wrap(
                title
                or "Policies on held-out pairs (bars: bootstrap intervals"
                + ("; open circles: single seeds)" if not seeds.empty else ")"),
                int(11 * figure.get_figwidth()),  # characters that fit the figure's width
            ),
            fontsize="medium",
        )
        figure.tight_layout()
    return figure
