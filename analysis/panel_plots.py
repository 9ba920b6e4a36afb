"""Figures of annotator-panel strength fits and of the CV profile likelihood.

Each function returns a ``matplotlib.figure.Figure`` built like those of :mod:`analysis.plots`
(no ``pyplot``, seaborn ``whitegrid`` per figure). Text from the data (subgroup and annotator
names such as ``"$25,000-$49,999"``) is drawn literally through :func:`analysis._labels.literal`
(``$`` escaped so that matplotlib does not read it as mathtext).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis._labels import literal
from analysis.identifiability import LIKELIHOOD_RATIO_THRESHOLD, CVProfile
from analysis.plots import _STYLE, _new_figure, _palette, _truth_crosses, _wrap
from analysis.strength_panels import PanelStrengthFit, _quantile_label

__all__ = ["plot_annotator_strengths", "plot_panel_subgroup_forest", "plot_profile_cv"]


def _interval_columns(fit: PanelStrengthFit) -> tuple[str, str]:
    low, _, high = fit.probs
    return f"strength_{_quantile_label(low)}", f"strength_{_quantile_label(high)}"


def plot_annotator_strengths(
    fit: PanelStrengthFit,
    *,
    truth: Mapping[str, float] | None = None,
    log_scale: bool = True,
    title: str | None = None,
) -> Figure:
    """Caterpillar plot: every annotator's posterior mean strength with its interval, sorted.

    Colour = subgroup. ``truth`` (``{annotator: beta}``, for simulated data) adds black crosses.
    """
    table = fit.annotators.sort_values("strength_mean", kind="stable").reset_index(drop=True)
    low, high = _interval_columns(fit)
    subgroups = list(dict.fromkeys(fit.subgroups["subgroup"]))
    colours = _palette(subgroups)
    x = np.arange(len(table))
    with sns.axes_style(_STYLE):
        figure = Figure(figsize=(max(6.0, 0.07 * len(table) + 3.0), 4.2), layout="constrained")
        ax = figure.subplots()
        for subgroup in subgroups:
            rows = (table["subgroup"] == subgroup).to_numpy()
            colour = colours[subgroup]
            ax.vlines(x[rows], table[low][rows], table[high][rows], color=colour, alpha=0.6)
            ax.scatter(x[rows], table["strength_mean"][rows], s=14, color=colour, zorder=3)
        handles = [
            Line2D([], [], color=colours[s], marker="o", linestyle="", label=literal(s))
            for s in subgroups
        ]
        if truth is not None:
            missing = sorted(set(table["annotator"]) - set(map(str, truth)))
            if missing:
                raise ValueError(f"truth has no strength for annotator(s) {missing[:5]}")
            true = {str(k): float(v) for k, v in truth.items()}
            ax.scatter(
                x, [true[a] for a in table["annotator"]], marker="x", s=16, color="0.1", zorder=4
            )
            handles.append(
                Line2D([], [], color="0.1", marker="x", linestyle="", label="true strength")
            )
        if log_scale:
            ax.set_yscale("log")
        ax.set_xlabel("annotator (sorted by posterior mean strength)")
        ax.set_ylabel("strength β (per unit of reward gap)")
        ax.set_xticks([])
        ax.legend(
            handles=handles,
            title=literal(fit.by) if fit.by else None,
            fontsize="small",
            loc="upper left",
        )
        figure.suptitle(
            title
            or f"Annotator strengths: posterior means and {fit.interval:.0%} intervals "
            f"({fit.family} within subgroup)",
            fontsize="medium",
        )
    return figure


def plot_panel_subgroup_forest(
    fit: PanelStrengthFit,
    *,
    truth: Mapping[str, Mapping[str, float]] | None = None,
    title: str | None = None,
) -> Figure:
    """Forest plot of the subgroups of a :class:`~analysis.strength_panels.PanelStrengthFit`.

    Left: posterior mean strength of each subgroup (log axis) with its interval and the
    population mean (dotted); right: the CV of the strength within the subgroup. Marker area ~
    annotators. ``truth`` (``{"mean_strength": {...}, "cv": {...}}`` keyed by subgroup) adds red
    crosses, for simulated data.
    """
    table = fit.subgroups
    quantities = {
        "mean_strength": "mean strength β of the subgroup",
        "cv": "CV of β within the subgroup (SD / mean)",
    }
    sizes = 30.0 + 170.0 * table["num_annotators"] / max(int(table["num_annotators"].max()), 1)
    y = np.arange(len(table))
    with sns.axes_style(_STYLE):
        figure, axes = _new_figure(2, panel_width=4.4, height=2.4 + 0.5 * len(table), sharey=True)
        for ax, (quantity, label) in zip(axes, quantities.items(), strict=True):
            ax.hlines(y, table[f"{quantity}_low"], table[f"{quantity}_high"], color="C0", lw=2.0)
            ax.scatter(table[quantity], y, s=sizes, color="C0", zorder=3)
            if quantity == "mean_strength":
                ax.set_xscale("log")
                # plain numbers at 1, 2, 5 x 10^k: labelled minor ticks of a narrow range
                # collide in mathtext
                ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.axvline(fit.population["mean"], color="0.4", linestyle=":")
            _truth_crosses(ax, truth, quantity, table["subgroup"], y)
            ax.set_xlabel(label)
        axes[0].set_yticks(
            y,
            [
                literal(_wrap(f"{s} ({n} annotators)", 28))
                for s, n in zip(table["subgroup"], table["num_annotators"], strict=True)
            ],
        )
        axes[0].set_ylim(len(table) - 0.5, -0.5)
        if fit.by:
            axes[0].set_ylabel(literal(fit.by))
        handles = [
            Line2D([], [], color="C0", linewidth=2.0, label=f"{fit.interval:.0%} interval"),
            Line2D(
                [],
                [],
                color="0.4",
                linestyle=":",
                label=f"population mean {fit.population['mean']:.3g}",
            ),
        ]
        if truth is not None:
            handles.append(Line2D([], [], color="C3", marker="x", linestyle="", label="truth"))
        figure.legend(
            handles=handles, loc="outside lower center", ncols=3, fontsize="small", frameon=False
        )
        figure.suptitle(
            title or f"Subgroup strengths from annotator panels ({fit.family})", fontsize="medium"
        )
    return figure


def plot_profile_cv(
    profiles: CVProfile | Mapping[str, CVProfile],
    *,
    title: str | None = None,
) -> Figure:
    """Profile log-likelihood of the strength CV, each curve relative to its maximum.

    ``profiles``: one :class:`~analysis.identifiability.CVProfile` or ``{label: profile}``. The
    dashed line is the drop of an approximate 95 % profile-likelihood interval; a curve that
    stays above it everywhere is flat: the CV is not identified.
    """
    if isinstance(profiles, CVProfile):
        profiles = {profiles.label: profiles}
    if not profiles:
        raise ValueError("profiles is empty: pass at least one CVProfile")
    colours = _palette(list(profiles))
    with sns.axes_style(_STYLE):
        figure = Figure(figsize=(6.4, 4.0), layout="constrained")
        ax = figure.subplots()
        for label, profile in profiles.items():
            table = profile.table
            relative = table["profile_loglik"] - table["profile_loglik"].max()
            ax.plot(
                table["cv"],
                relative,
                marker="o",
                color=colours[label],
                label=literal(f"{label} (range {profile.range:.3g})"),
            )
        ax.axhline(
            -LIKELIHOOD_RATIO_THRESHOLD,
            color="0.4",
            linestyle="--",
            label=f"-{LIKELIHOOD_RATIO_THRESHOLD:.2f} (95 % likelihood ratio)",
        )
        ax.set_xscale("log")
        cvs = sorted({float(c) for p in profiles.values() for c in p.table["cv"]})
        ax.set_xticks(cvs, [f"{c:.3g}" for c in cvs])
        ax.minorticks_off()
        ax.set_xlabel("CV of the strength β (fixed)")
        ax.set_ylabel("profile log-likelihood − its maximum (nats)")
        ax.legend(fontsize="small")
        figure.suptitle(title or "Is the strength spread identified?", fontsize="medium")
    return figure
