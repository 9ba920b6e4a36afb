"""``analysis.report``: a self-contained HTML heterogeneity report (PNG figures embedded).

:func:`report` gathers what it is given (training runs, a per-pair evaluation table, subgroup
posteriors, extra figures), computes the subgroup statistics, draws the figures and writes one
HTML file whose text states the key numbers: each run's learned strength (mean, variance, CV),
per attribute the micro and macro margins and the subgroup with the lowest margin, and the
largest and smallest gains over the baseline with their intervals.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import platform
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from importlib import metadata
from os import PathLike
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from analysis._arviz import az
from analysis.converters import (
    LogSource,
    TrainingRun,
    subgroup_strengths,
    training_runs_to_inference_data,
)
from analysis.margins import subgroup_gains, subgroup_margins
from analysis.plots import (
    plot_individual_coefficients,
    plot_policy_comparison,
    plot_strength_densities,
    plot_strength_trajectories,
    plot_subgroup_forest,
    plot_subgroup_gains,
    plot_subgroup_margins,
    plot_willingness_to_pay,
)
from analysis.policy_comparison import PolicyComparison, compare_policies

__all__ = ["learned_cv_sentences", "report"]

#: Subgroup columns looked for in an evaluation table when ``by`` is not given.
DEFAULT_SUBGROUP_COLUMNS = (
    "age",
    "gender",
    "education",
    "employment",
    "ethnicity",
    "region",
    "religion",
    "marital_status",
    "conversation_type",
)

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; border-bottom: 1px solid #ddd; padding-top: .6em; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; font-size: .85em; margin: .6em 0 1.2em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; display: block; margin: .4em 0 1em; }
.note { color: #555; font-size: .9em; } .key { background: #f7f9fc; padding: .5em 1em;
        border-left: 3px solid #4a7bd0; }
.summary { background: #f4f8f1; padding: .6em 1.2em; border: 1px solid #9cc28a;
           border-radius: 4px; } .summary dt { font-weight: 600; margin-top: .4em; }
.summary dd { margin-left: 1em; }
.warn { background: #fff4e5; padding: .5em 1em; border-left: 4px solid #e08a00; }
.ok { color: #2f6b2f; } .scroll { overflow-x: auto; max-width: 100%; }
.csv { font-size: .8em; margin: -.8em 0 1.2em; } .row { display: flex; gap: 1em; }
.row > div { flex: 1; min-width: 0; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: .5em 1em; }
footer { margin-top: 2em; border-top: 1px solid #ddd; font-size: .85em; color: #555; }
"""


#: Output format of the embedded figures while :func:`report` runs ("svg" or "png").
_FIGURE_FORMAT: ContextVar[str] = ContextVar("figure_format", default="svg")

#: Diagnostic thresholds of the warning boxes: split r_hat (Vehtari et al. 2021), bulk ESS per
#: chain, Pareto k of PSIS-LOO.
R_HAT_LIMIT, ESS_PER_CHAIN, PARETO_K_LIMIT = 1.01, 100, 0.7


def _figure_html(figure: Figure, alt: str) -> str:
    """The figure embedded as vector SVG (or PNG at 300 dpi with ``figure_format="png"``)."""
    buffer = io.BytesIO()
    kind = _FIGURE_FORMAT.get()
    figure.savefig(buffer, format=kind, dpi=300, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    mime = "image/svg+xml" if kind == "svg" else "image/png"
    return f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{encoded}">'


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "table"


def _table_html(frame: pd.DataFrame, digits: int = 3, name: str = "table") -> str:
    """The table (floats to ``digits`` significant digits) in a scrolling box, with a link
    that downloads it as CSV at full precision (``name``.csv)."""
    formatted = frame.copy()
    for column in formatted.columns:
        if pd.api.types.is_float_dtype(formatted[column]):
            formatted[column] = formatted[column].map(lambda v: f"{v:.{digits}g}")
        elif formatted[column].dtype == object:  # mixed columns: format their floats only
            formatted[column] = formatted[column].map(
                lambda v: f"{v:.{digits}g}" if isinstance(v, float | np.floating) else v
            )
    encoded = base64.b64encode(frame.to_csv(index=False).encode("utf-8")).decode("ascii")
    link = (
        f'<p class="csv"><a download="{_slug(name)}.csv" '
        f'href="data:text/csv;base64,{encoded}">Download {html.escape(name)} (CSV)</a></p>'
    )
    table = formatted.to_html(index=False, escape=True, border=0)
    return f'<div class="scroll">{table}</div>{link}'


def _diagnostics_html(
    r_hat: float, ess_bulk: float, divergences: int, num_chains: int, pareto_k: float | None = None
) -> str:
    """One line of MCMC diagnostics; a warning box naming each failed check."""
    problems = []
    if math.isnan(r_hat):
        problems.append("r_hat not computable (one chain: run several to check convergence)")
    elif not r_hat <= R_HAT_LIMIT:
        problems.append(f"max r_hat {r_hat:.3f} &gt; {R_HAT_LIMIT} (chains disagree)")
    if not ess_bulk >= ESS_PER_CHAIN * num_chains:
        problems.append(
            f"min bulk ESS {ess_bulk:.0f} &lt; {ESS_PER_CHAIN * num_chains} "
            f"({ESS_PER_CHAIN} per chain)"
        )
    if divergences:
        problems.append(f"{divergences} divergent transitions (the sampler missed regions)")
    if pareto_k is not None and not pareto_k <= PARETO_K_LIMIT:
        problems.append(f"max Pareto k {pareto_k:.2f} &gt; {PARETO_K_LIMIT} (LOO unreliable)")
    text = f"Max r_hat {r_hat:.3f}, min bulk ESS {ess_bulk:.0f}, {divergences} divergences" + (
        "" if pareto_k is None else f", max Pareto k {pareto_k:.2f}"
    )
    if problems:
        return (
            '<p class="warn"><b>Warning: these draws have not converged.</b> '
            + "; ".join(problems)
            + ". Treat the numbers of this section as provisional: run longer chains.</p>"
        )
    return f'<p class="note ok">Diagnostics pass: {text}.</p>'


def _prior_posterior_parts(idata: Any, names: Sequence[str], what: str) -> list[str]:
    """Prior-vs-posterior outline densities of scalar sites in both groups, and a sentence on
    how far the data moved each (posterior contraction ``1 - var_post / var_prior``)."""
    if "prior" not in idata.groups():
        return []
    shown = [
        n
        for n in names
        if n in idata.posterior and n in idata.prior and idata.posterior[n].ndim == 2
    ]
    if not shown:
        return []
    import seaborn as sns

    figure = Figure(figsize=(3.4 * len(shown), 2.6))
    axes = np.atleast_1d(figure.subplots(1, len(shown)))
    sentences = []
    for ax, name in zip(axes, shown, strict=True):
        prior = idata.prior[name].values.ravel()
        posterior = idata.posterior[name].values.ravel()
        top = np.quantile(np.concatenate([prior, posterior]), 0.99)
        bins = np.linspace(min(prior.min(), posterior.min()), top, 40)
        for values, label, colour in ((prior, "prior", "0.5"), (posterior, "posterior", "C0")):
            ax.hist(
                values,
                bins=bins,
                density=True,
                histtype="step",
                linewidth=1.5,
                color=colour,
                label=label,
            )
        ax.set_xlabel(name)
        ax.set_yticks([])
        contraction = 1.0 - posterior.var() / prior.var()
        moved = (
            "the data moved it: the posterior is narrower"
            if contraction >= 0.5
            else "the data barely moved it: the posterior is close to the prior, so this "
            "estimate restates the prior rather than the data"
        )
        sentences.append(
            f"<b>{html.escape(name)}</b>: posterior variance {1 - contraction:.0%} of the "
            f"prior's; {moved}."
        )
    axes[0].legend(frameon=False)
    sns.despine(fig=figure, left=True)
    figure.suptitle(f"Prior and posterior: {what}")
    figure.tight_layout()
    parts = [_figure_html(figure, f"prior vs posterior {what}")]
    warn = any("barely" in s for s in sentences)
    parts.append(f'<p class="{"warn" if warn else "note"}">' + "<br>".join(sentences) + "</p>")
    return parts


def _interval(row: Mapping[str, Any], key: str) -> str:
    return f"{row[key]:+.3f} nats [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def _runs_from_dirs(run_dirs: Sequence[str | PathLike]) -> list[TrainingRun]:
    runs = []
    for directory in run_dirs:
        path = Path(directory)
        dataset = "unknown"
        for config_name in ("config.json", "run_config.json"):
            config = path / config_name
            if config.is_file():
                values = json.loads(config.read_text(encoding="utf-8"))
                if isinstance(values, dict):
                    dataset = str(values.get("dataset", values.get("dataset_name", dataset)))
                break
        runs.append(TrainingRun(path.name, path, dataset=dataset))
    return runs


def _runs_section(runs: list[TrainingRun]) -> list[str]:
    idata = training_runs_to_inference_data(runs)
    final = idata.strength
    table = pd.DataFrame(
        {
            "run": final["run"].values,
            "dataset": final["dataset"].values,
            "family": final["family"].values,
            "final_step": final["final_step"].values,
            "mean": final["mean"].values,
            "variance": final["variance"].values,
            "CV": final["cv"].values,
        }
    )
    parts = ["<h2>Learned preference strength</h2>"]
    sentences = [
        f"<b>{html.escape(str(r.run))}</b> ({html.escape(str(r.family))} on "
        f"{html.escape(str(r.dataset))}): mean {r.mean:.4g}, variance {r.variance:.4g}, "
        f"CV {r.CV:.3g} at step {r.final_step}"
        for r in table.itertuples()
    ]
    parts.append('<p class="key">' + "<br>".join(sentences) + "</p>")
    parts.append(_table_html(table, digits=4, name="learned strengths"))
    quantities = [
        q
        for q in ("strength/mean", "strength/variance", "strength/cv")
        if q.replace("/", "_") in idata.trajectory
    ]
    parts.append(_figure_html(plot_strength_trajectories(idata, quantities), "trajectories"))
    parts.append(
        '<p class="note">A CV that stays high through training means the data keep '
        "disagreeing about how strongly to prefer the chosen answer (heterogeneous annotators);"
        " a CV that collapses means they agree.</p>"
    )
    parts.append(_figure_html(plot_strength_densities(idata), "densities"))
    parts += _subgroup_strength_parts(runs)
    return parts


def _subgroup_strength_parts(runs: list[TrainingRun]) -> list[str]:
    """Per-level learned strengths of the runs that have them (annotator level / covariates)."""
    parts: list[str] = []
    for run in runs:
        table = subgroup_strengths(run.log)
        if table.empty:
            continue
        source = table["source"].iloc[0]
        top, bottom = table.iloc[0], table.iloc[-1]
        parts.append(f"<h3>Subgroup strengths learned by {html.escape(str(run.name))}</h3>")
        parts.append(
            f'<p class="key">Most decisive: <b>{html.escape(str(top["level"]))}</b> (mean '
            f"{top['mean']:.4g}, CV {top['cv']:.3g}); least: "
            f"<b>{html.escape(str(bottom['level']))}</b> (mean {bottom['mean']:.4g}, CV "
            f"{bottom['cv']:.3g}); ratio {top['mean'] / bottom['mean']:.3g}.</p>"
        )
        what = (
            "the end-of-training refit (the strength's MAP at the final policy's margins)"
            if source == "refit"
            else "the last logged training iterate"
        )
        parts.append(
            f'<p class="note">Point estimates from {what}, step {table["step"].iloc[0]}; they '
            "carry no interval. For intervals, fit the two-stage panel model on held-out "
            "reward gaps (<code>analysis.fit_panel_strengths</code>, the section "
            "&ldquo;Which subgroups are decisive&rdquo;).</p>"
        )
        parts.append(
            _table_html(table.drop(columns=["step"]), digits=4, name=f"strengths {run.name}")
        )
    return parts


def _shared_limits(figures: Sequence[Figure]) -> None:
    """Give every data axis of ``figures`` the union of their x and of their y ranges
    (figures compared side by side: the same position means the same value, whichever axis
    carries it; the categorical axis holds the same subgroups in both)."""
    axes = [ax for figure in figures for ax in figure.axes if ax.get_visible() and ax.has_data()]
    if len(axes) < 2:
        return
    for get, put in (("get_xlim", "set_xlim"), ("get_ylim", "set_ylim")):
        low = min(getattr(ax, get)()[0] for ax in axes)
        high = max(getattr(ax, get)()[1] for ax in axes)
        for ax in axes:
            getattr(ax, put)(low, high)


def _margins_section(
    evaluation: pd.DataFrame,
    by: list[str],
    *,
    baseline: str | None,
    pair_id: str | None,
    bootstrap: Mapping[str, Any],
    dataset: str | None = None,
) -> list[str]:
    """``bootstrap``: ``cluster``, ``num_boot``, ``min_count``, ``seed`` of both tables. With a
    ``dataset`` column, one block per dataset and their figures side by side on shared axes."""
    figures: dict[str, Figure] = {}
    if dataset is None:
        parts = _margins_block(
            evaluation,
            by,
            baseline=baseline,
            pair_id=pair_id,
            bootstrap=bootstrap,
            figures=figures,
            name="",
        )
        out = [
            _figure_html(figures[p[_FIG:]], p[_FIG:]) if p.startswith(_TAG) else p for _, p in parts
        ]
    else:
        names = [str(n) for n in dict.fromkeys(evaluation[dataset])]
        blocks = {
            name: _margins_block(
                evaluation[evaluation[dataset].astype(str) == name].drop(columns=[dataset]),
                by,
                baseline=baseline,
                pair_id=pair_id,
                bootstrap=bootstrap,
                figures=figures,
                name=name,
            )
            for name in names
        }
        out = []
        for kind, heading in (("margins", "Subgroup margins"), ("gains", f"Gains over {baseline}")):
            keys = [f"{name}/{kind}" for name in names if f"{name}/{kind}" in figures]
            if not keys:
                continue
            _shared_limits([figures[k] for k in keys])
            out.append(
                f"<h2>{html.escape(heading)}: {html.escape(' and '.join(names))} side by "
                "side (shared axes)</h2>"
            )
            out.append(
                '<div class="row">'
                + "".join(f"<div>{_figure_html(figures[k], k)}</div>" for k in keys)
                + "</div>"
            )
            for name in names:
                out += [p for k, p in blocks[name] if k == kind and not p.startswith(_TAG)]
    for figure in figures.values():
        plt.close(figure)
    return out


#: Placeholder of a figure in a margins block (``_TAG + key``).
_TAG = "<!--figure:"
_FIG = len(_TAG)


def _margins_block(
    evaluation: pd.DataFrame,
    by: list[str],
    *,
    baseline: str | None,
    pair_id: str | None,
    bootstrap: Mapping[str, Any],
    figures: dict[str, Figure],
    name: str,
) -> list[tuple[str, str]]:
    """``(kind, html)`` parts of one dataset's margins (kind ``"margins"``) and gains
    (``"gains"``); its figures go to ``figures[f"{name}/margins"]`` and ``[f"{name}/gains"]``,
    with a placeholder part (``_TAG + key``) where a single-dataset report shows them."""
    margins = subgroup_margins(evaluation, by, **bootstrap)
    cluster, min_count = bootstrap["cluster"], bootstrap["min_count"]
    where = f" on {html.escape(name)}" if name else ""
    parts = [
        f"<h3>Subgroup margins{where}</h3>" if name else "<h2>Subgroup margins</h2>",
        f'<p class="note">Margin = policy log-probability of the chosen minus the rejected '
        f"completion (nats). Micro = mean over pairs; macro = mean of subgroup means. "
        f"{margins.interval:.0%} bootstrap intervals ({margins.num_boot} replicates"
        + (f", resampling whole {html.escape(cluster)} clusters" if cluster else "")
        + f"); subgroups with fewer than {min_count} pairs are flagged small.</p>",
    ]
    key = []
    for (method, attribute), rows in margins.subgroups.groupby(["method", "attribute"], sort=False):
        overall = margins.overall.query("method == @method and attribute == @attribute")
        micro = overall[overall["kind"] == "micro"].iloc[0]
        macro = overall[overall["kind"] == "macro"].iloc[0]
        worst = rows.loc[rows["mean"].idxmin()]
        key.append(
            f"<b>{html.escape(method)}</b>, {html.escape(attribute)}: micro "
            f"{_interval(micro, 'mean')}, macro {_interval(macro, 'mean')}; lowest: "
            f"{html.escape(str(worst['subgroup']))} {_interval(worst, 'mean')} (n={worst['n']}"
            + (", small" if worst["small"] else "")
            + ")"
        )
    parts.append('<p class="key">' + "<br>".join(key) + "</p>")
    figures[f"{name}/margins"] = plot_subgroup_margins(
        margins, title=f"Subgroup margins{' on ' + name if name else ''}"
    )
    parts.append(f"{_TAG}{name}/margins")
    parts.append(_table_html(margins.subgroups, name=f"subgroup margins {name}".strip()))
    tagged = [("margins", p) for p in parts]
    methods = sorted(margins.subgroups["method"].unique())
    if baseline is not None and len(methods) > 1:
        gains = subgroup_gains(evaluation, by, baseline=baseline, pair_id=pair_id, **bootstrap)
        table = gains.subgroups
        best = table.loc[table["gain"].idxmax()]
        worst = table.loc[table["gain"].idxmin()]
        gain_parts = [
            f"<h3>Gains over {html.escape(baseline)}{where}</h3>"
            if name
            else f"<h2>Gains over {html.escape(baseline)}</h2>"
        ]
        lines = [
            f"Largest of the {len(table)} subgroup gains (picked after looking, so its interval "
            "is not adjusted for the choice; the summary box's contrasts are): "
            f"<b>{html.escape(best['method'])}</b> on {html.escape(best['attribute'])}"
            f" = {html.escape(str(best['subgroup']))}: {_interval(best, 'gain')} (n={best['n']}"
            + (", small" if best["small"] else "")
            + ")",
            f"Smallest: <b>{html.escape(worst['method'])}</b> on "
            f"{html.escape(worst['attribute'])} = {html.escape(str(worst['subgroup']))}: "
            f"{_interval(worst, 'gain')} (n={worst['n']}"
            + (", small" if worst["small"] else "")
            + ")",
        ]
        for row in gains.overall.itertuples():
            if row.kind == "macro":
                lines.append(
                    f"{html.escape(row.method)} macro gain over {html.escape(row.attribute)}: "
                    f"{row.gain:+.3f} nats [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
                )
        gain_parts.append('<p class="key">' + "<br>".join(lines) + "</p>")
        figures[f"{name}/gains"] = plot_subgroup_gains(
            gains, title=f"Gains over {baseline}{' on ' + name if name else ''}"
        )
        gain_parts.append(f"{_TAG}{name}/gains")
        gain_parts.append(_table_html(table, name=f"gains {name}".strip()))
        tagged += [("gains", p) for p in gain_parts]
    return tagged


def _posterior_section(posteriors: Sequence[Any]) -> list[str]:
    parts = ["<h2>Subgroup strength posteriors</h2>"]
    for posterior in posteriors:
        summary = posterior.summary()
        diagnostics = posterior.diagnostics()
        top = summary.loc[summary["mean_strength"].idxmax()]
        low = summary.loc[summary["mean_strength"].idxmin()]
        parts.append(
            f"<h3>{html.escape(posterior.by)} ({html.escape(posterior.family)})</h3>"
            f'<p class="key">Strongest: {html.escape(str(top["subgroup"]))} mean strength '
            f"{top['mean_strength']:.3g} [{top['mean_strength_low']:.3g}, "
            f"{top['mean_strength_high']:.3g}]; weakest: {html.escape(str(low['subgroup']))} "
            f"{low['mean_strength']:.3g} [{low['mean_strength_low']:.3g}, "
            f"{low['mean_strength_high']:.3g}] ({posterior.interval:.0%} HDI).</p>"
        )
        parts.append(
            _diagnostics_html(
                diagnostics["max_r_hat"],
                diagnostics["min_ess_bulk"],
                diagnostics["num_divergences"],
                posterior.idata.posterior.sizes["chain"],
            )
        )
        parts.append(_figure_html(plot_subgroup_forest(posterior), "forest"))
        parts += _prior_posterior_parts(
            posterior.idata, ["mu_log_mean", "mu_log_cv", "tau_log_mean"], "hyperparameters"
        )
        parts.append(_table_html(summary, name=f"subgroup posterior {posterior.by}"))
    return parts


def _panel_section(fit: Any | None, profiles: Mapping[str, Any]) -> list[str]:
    """ "Which subgroups are decisive": a panel strength fit and the CV profile likelihoods."""
    from analysis.panel_plots import (
        plot_annotator_strengths,
        plot_panel_subgroup_forest,
        plot_profile_cv,
    )

    parts = ["<h2>Which subgroups are decisive</h2>"]
    if fit is not None:
        table = fit.subgroups
        top = table.loc[table["mean_strength"].idxmax()]
        low = table.loc[table["mean_strength"].idxmin()]
        population, diagnostics = fit.population, fit.diagnostics

        def strength(row):
            return (
                f"{html.escape(str(row['subgroup']))}: mean strength {row['mean_strength']:.3g} "
                f"[{row['mean_strength_low']:.3g}, {row['mean_strength_high']:.3g}], "
                f"{row['relative_strength']:.2g} x the population mean"
            )

        lines = [
            f"Most decisive subgroup {strength(top)}; least decisive {strength(low)} "
            f"({fit.interval:.0%} intervals, {fit.family} strengths within subgroups, "
            f"{len(fit.annotators)} annotators).",
            f"Population (a random annotator): mean strength {population['mean']:.3g} "
            f"[{population['mean_low']:.3g}, {population['mean_high']:.3g}], CV "
            f"{population['cv']:.3g} [{population['cv_low']:.3g}, {population['cv_high']:.3g}].",
        ]
        parts.append('<p class="key">' + "<br>".join(lines) + "</p>")
        parts.append(
            _diagnostics_html(
                diagnostics["max_r_hat"],
                diagnostics["min_ess_bulk"],
                diagnostics["num_divergences"],
                fit.idata.posterior.sizes["chain"],
                _max_pareto_k(fit.idata),
            )
        )
        parts += _prior_posterior_parts(
            fit.idata, ["mu_log_mean", "mu_log_cv"], "population log mean and log CV"
        )
        parts.append(
            '<p class="note">Strengths are per unit of the reward gap the labels were scored '
            "with; each annotator keeps one strength over all its labels (panel likelihood), "
            "so the spread within and between subgroups is identified.</p>"
        )
        for plot, alt in (
            (plot_panel_subgroup_forest, "subgroup strengths"),
            (plot_annotator_strengths, "annotator strengths"),
        ):
            figure = plot(fit)
            parts.append(_figure_html(figure, alt))
            plt.close(figure)
        parts.append(_table_html(table, name="panel subgroup strengths"))
    if profiles:
        rows = []
        for label, profile in profiles.items():
            low_cv, high_cv = profile.interval()
            rows.append(
                {
                    "profile": label,
                    "level": profile.level,
                    "gaps": profile.gaps,
                    "by": profile.by or "",
                    "labels": profile.num_labels,
                    "range (nats)": profile.range,
                    "best CV": profile.best_cv,
                    "95 % CV interval": f"{low_cv:.3g} to {high_cv:.3g}",
                }
            )
        parts.append("<h3>Is the strength spread identified?</h3>")
        parts.append(
            '<p class="key">'
            + "<br>".join(
                f"<b>{html.escape(label)}</b>: {html.escape(profile.interpretation())}"
                for label, profile in profiles.items()
            )
            + "</p>"
        )
        parts.append(_table_html(pd.DataFrame(rows), digits=4, name="CV profiles"))
        figure = plot_profile_cv(dict(profiles))
        parts.append(_figure_html(figure, "CV profile likelihood"))
        plt.close(figure)
    return parts


def _max_pareto_k(idata: Any) -> float | None:
    """Largest Pareto k of PSIS-LOO over the log-likelihood's units, None without one."""
    if "log_likelihood" not in idata.groups():
        return None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning box reports a large k
        return float(az.loo(idata, pointwise=True).pareto_k.max())


def _choice_fit_draws(fit: Any, num_draws: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(individual-level estimates ``(I, K_random)``, population draws ``(R, K)``) of a fit."""
    if hasattr(fit, "population_coefficients"):  # classical EstimationResults
        individual = fit.individual_coefficients()
        population = fit.population_coefficients(num_draws=num_draws, seed=seed)
        random = [c for c in individual.columns if f"sd.{c}" in individual.columns]
        return individual[random], population
    if hasattr(fit, "population_draws") and hasattr(fit, "spec"):  # Bayesian BayesianResults
        names = [str(name) for name in fit.spec.variables]
        per_posterior_draw = max(1, num_draws // 1000)
        draws = np.asarray(fit.population_draws(num_draws=per_posterior_draw, seed=seed))
        population = pd.DataFrame(draws.reshape(-1, len(names)), columns=names)
        tidy = fit.individual_coefficients()
        individual = tidy.pivot(index="person", columns="coefficient", values="mean")
        # a fixed coefficient still varies across posterior draws: use the specification
        distributions = fit.population().groupby("coefficient")["distribution"].first()
        random = [c for c in names if c in individual.columns and distributions[c] != "fixed"]
        return individual[random], population
    raise TypeError(
        f"choice_fit must be a mixlogit fit (EstimationResults or BayesianResults), "
        f"got {type(fit).__name__}"
    )


def _estimation_parts(fit: Any) -> list[str]:
    """Header statistics, a plain reading of the termination, and the correlation of the
    estimates (robust covariance) with the strongly correlated pairs named."""
    statistics = fit.statistics()
    parts = ["<h3>Estimation</h3>"]
    gradient = float(statistics["gradient norm"])
    smallest = float(statistics["smallest eigenvalue of -H"])
    message = str(statistics["termination"])
    maximum = np.isfinite(smallest) and smallest > 0
    reading = (
        f"Optimiser message: &ldquo;{html.escape(message)}&rdquo;. Gradient norm {gradient:.2g}; "
        f"smallest eigenvalue of -H {smallest:.3g}"
        + (" (positive: a local maximum)." if maximum else " (not positive: not a maximum).")
    )
    ok = bool(statistics["converged"]) and maximum and gradient < 1e-3
    parts.append(f'<p class="{"note" if ok else "warn"}">{reading}</p>')
    rows = pd.DataFrame({"statistic": statistics.index, "value": statistics.values})
    parts.append(_table_html(rows, digits=6, name="estimation statistics"))
    correlation = fit.correlation()
    names = list(correlation.index)
    strong = [
        f"{a} and {b} ({correlation.loc[a, b]:+.2f})"
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if abs(correlation.loc[a, b]) > 0.7
    ]
    parts.append(
        '<p class="note">Correlation of the estimates (robust covariance)'
        + (
            ": strongly correlated (|r| &gt; 0.7): " + html.escape(", ".join(strong))
            if strong
            else ": no pair has |r| &gt; 0.7"
        )
        + ".</p>"
    )
    parts.append(
        _table_html(
            correlation.rename_axis(columns=None).reset_index(), name="correlation of estimates"
        )
    )
    return parts


def _bayesian_parts(fit: Any) -> list[str]:
    """MCMC diagnostics (warning box when a check fails) and PSIS-LOO of a Bayesian fit."""
    diagnostics = fit.check(warn=False)
    chains = fit.idata.posterior.sizes["chain"]
    parts = ["<h3>Posterior diagnostics</h3>"]
    if fit.method == "nuts":
        parts.append(
            _diagnostics_html(
                diagnostics.get("max_r_hat", float("nan")),
                diagnostics["min_ess_bulk"],
                diagnostics["divergences"],
                chains,
                diagnostics.get("max_pareto_k"),
            )
        )
    problems = [p for p in diagnostics["problems"] if "r_hat" not in p and "ESS" not in p]
    if fit.method != "nuts" and problems:
        parts.append('<p class="warn">' + html.escape("; ".join(problems)) + ".</p>")
    if "elpd_loo" in diagnostics:
        parts.append(
            f'<p class="note">PSIS-LOO leaving out one decision maker: elpd_loo '
            f"{diagnostics['elpd_loo']:.2f}, p_loo {diagnostics['p_loo']:.1f}, "
            f"{diagnostics['pareto_k_above_0.7']} decision makers with Pareto k &gt; 0.7.</p>"
        )
    return parts


def _choice_fit_section(
    fit: Any,
    *,
    price: str | None,
    price_units: str | None,
    coefficient_units: Mapping[str, str],
    labels: Mapping[str, str],
    num_draws: int,
    seed: int,
) -> list[str]:
    individual, population = _choice_fit_draws(fit, num_draws, seed)

    def named(code: str) -> str:
        """``"contract length (cl)"`` with a label, the code alone without one (HTML)."""
        word = labels.get(code)
        return html.escape(f"{word} ({code})" if word else code)

    parts = ["<h2>Choice model: heterogeneity of tastes</h2>"]
    lines = []
    loglik = getattr(fit, "loglik", None)
    if loglik is not None:
        lines.append(
            f"{html.escape(str(getattr(fit, 'method', 'fit')))}: log-likelihood {float(loglik):.3f}"
            f" on {getattr(fit, 'num_situations', '?')} choice situations"
        )
    exact = _normal_population_moments(fit)
    for name in individual.columns:
        column = population[name]
        mean, sd = exact.get(name, (column.mean(), column.std()))
        lines.append(
            f"<b>{named(name)}</b>: population mean {mean:.4g}, SD {sd:.4g}"
            + ("" if name in exact else f" (over {len(column):,} simulated draws)")
            + f"; individual estimates range {individual[name].min():.4g} to "
            f"{individual[name].max():.4g} (I={len(individual)})"
        )
    if price is not None:
        if price not in population.columns:
            raise ValueError(
                f"price coefficient {price!r} is not among the fit's coefficients "
                f"{list(population.columns)}"
            )
        attributes = [c for c in population.columns if c != price]
        wtp = {a: -population[a].to_numpy() / population[price].to_numpy() for a in attributes}
        lines += [
            f"WTP {named(a)} (= -{html.escape(a)}/{html.escape(price)}): median "
            f"{np.median(v):.4g}{_median_wtp_interval(fit, a, price, num_draws, seed)}, "
            f"5-95 % of people [{np.quantile(v, 0.05):.4g}, {np.quantile(v, 0.95):.4g}]"
            for a, v in wtp.items()
        ]
    parts.append('<p class="key">' + "<br>".join(lines) + "</p>")
    if hasattr(fit, "statistics"):  # classical fit: Biogeme's header and Apollo's checks
        parts += _estimation_parts(fit)
    elif hasattr(fit, "check"):  # Bayesian fit: MCMC diagnostics and LOO
        parts += _bayesian_parts(fit)
    table = fit.table() if hasattr(fit, "table") else fit.population()
    table = table.reset_index() if table.index.name else table
    if labels:
        table.insert(1, "label", [_parameter_label(str(p), labels) for p in table.iloc[:, 0]])
    parts.append(_table_html(table, digits=4, name="estimates"))
    grid = []  # one panel per random coefficient, two per row
    for name in individual.columns:
        # a normal coefficient's density at the estimates, so that the figure's population
        # mean is the table's estimate (not a simulated mean that differs in the third digit)
        density = stats.norm(*exact[name]) if name in exact else population[name].to_numpy()
        figure = plot_individual_coefficients(
            individual[name].to_numpy(),
            density,
            name=labels.get(name, name),
            units=coefficient_units.get(name),
        )
        grid.append(f"<div>{_figure_html(figure, f'individual {name}')}</div>")
        plt.close(figure)
    if grid:
        parts.append('<div class="grid">' + "".join(grid) + "</div>")
    if price is not None:
        figure = plot_willingness_to_pay(
            {a: population[a].to_numpy() for a in attributes},
            population[price].to_numpy(),
            price_name=price,
            price_units=price_units,
            labels=labels,
        )
        parts.append(_figure_html(figure, "willingness to pay"))
        plt.close(figure)
    return parts


def _median_wtp_interval(fit: Any, attribute: str, price: str, num_draws: int, seed: int) -> str:
    """`` (95 % CI [a, b])`` of the population median WTP of a classical fit: Krinsky-Robb
    over the estimates on the report's own population draws (same ``num_draws`` and
    ``seed``, so the median is the one printed); empty for a Bayesian fit, whose draws
    already carry the estimation uncertainty."""
    if not hasattr(fit, "statistics"):
        return ""
    import warnings

    from mixlogit.results import WTPMomentWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WTPMomentWarning)  # only the median is used
        wtp = fit.wtp(attribute, price, num_draws=num_draws, seed=seed, parameter_draws=200)
    low = wtp.get("kr_median_q2.5%", wtp.get("kr_q2.5%"))
    high = wtp.get("kr_median_q97.5%", wtp.get("kr_q97.5%"))
    return f" (95 % CI of the median [{low:.4g}, {high:.4g}])"


def _normal_population_moments(fit: Any) -> dict[str, tuple[float, float]]:
    """``{coefficient: (mean, SD)}`` of a classical fit's normal coefficients: the estimates
    themselves (the mean and ``sd.`` parameters), exact where simulated draws are not."""
    if not hasattr(fit, "statistics"):  # Bayesian fit: the posterior draws are the answer
        return {}
    estimates = fit.table()["estimate"]
    return {
        c.name: (float(estimates[c.name]), abs(float(estimates[f"sd.{c.name}"])))
        for c in fit.spec.coefficients
        if c.distribution == "normal" and c.sign == 1 and f"sd.{c.name}" in estimates.index
    }


def _parameter_label(parameter: str, labels: Mapping[str, str]) -> str:
    """Words for an estimates-table parameter: ``"sd.cl"`` -> ``"contract length: sd"``; a
    parameter whose variable has no label reads as itself."""
    statistic, _, variable = parameter.rpartition(".")
    if variable not in labels:
        return parameter
    return f"{labels[variable]}: {statistic}" if statistic else labels[variable]


def _policies_section(comparison: PolicyComparison) -> list[str]:
    """Reference policy, gain over it, accuracy and margin of every policy per dataset, the
    contrasts with the baseline, and their figure (datasets side by side, shared axes)."""
    level = f"{comparison.interval:.0%}"
    parts = [
        "<h2>Policies on held-out pairs</h2>",
        f'<p class="note">Margin: the policy\'s log-probability of the chosen minus the rejected '
        "response (nats). Accuracy: share of pairs on which the policy prefers the annotator's "
        "choice (chance 0.5). Gain over reference: margin minus the untrained reference "
        f"policy's margin on the same pair. {level} cluster-bootstrap intervals "
        f"({comparison.num_boot} replicates"
        + (f", whole {html.escape(comparison.cluster)} clusters" if comparison.cluster else "")
        + "), one set of replicates for every number of a dataset.</p>",
    ]
    figure = plot_policy_comparison(comparison)
    parts.append(_figure_html(figure, "policies"))
    plt.close(figure)
    parts.append(_table_html(comparison.policies, name="policies"))
    if not comparison.per_seed.empty:
        parts.append(
            '<h3>Seed replicates</h3><p class="note">Each training seed\'s own means (the '
            "open circles of the figure); the table above averages them per pair. The "
            "<code>*_seed_sd</code> columns are the SD of these rows.</p>"
        )
        parts.append(_table_html(comparison.per_seed, name="seed replicates"))
    if not comparison.contrasts.empty:
        parts.append(
            f"<h3>Contrasts with {html.escape(str(comparison.baseline))} (paired, "
            f"Holm-adjusted over {comparison.num_comparisons})</h3>"
        )
        parts.append(_table_html(comparison.contrasts, name="contrasts"))
    return parts


def learned_cv_sentences(runs: Sequence[TrainingRun] | Any) -> list[str]:
    """One sentence per strength family trained on several datasets: on which dataset the
    learned strength CV is highest, with every dataset's value (the last logged step).

    Args:
        runs: training runs, or the InferenceData of
            :func:`analysis.training_runs_to_inference_data` (its ``strength`` group).

    The CVs are training point estimates without intervals; the sentence says so. Families
    trained on one dataset only get no sentence.
    """
    if isinstance(runs, Sequence) and not runs:
        return []
    idata = runs if hasattr(runs, "groups") else training_runs_to_inference_data(list(runs))
    final = idata.strength
    table = pd.DataFrame(
        {
            "dataset": final["dataset"].values,
            "family": final["family"].values,
            "cv": final["cv"].values,
        }
    )
    lines = []
    for family, rows in table.groupby("family", sort=False):
        if rows["dataset"].nunique() < 2:
            continue
        ordered = rows.sort_values("cv", ascending=False)
        values = ", ".join(f"{r.dataset} {r.cv:.3g}" for r in ordered.itertuples())
        lines.append(
            f"Learned strength CV ({family}): highest on {ordered['dataset'].iloc[0]} "
            f"({values}); training point estimates without intervals."
        )
    return lines


def _summary_box(
    question: str | None,
    comparison: PolicyComparison | None,
    runs: list[TrainingRun],
) -> str:
    answer = ([] if comparison is None else comparison.answer()) + learned_cv_sentences(runs)
    if not answer:
        return ""
    if question is None and comparison is not None:
        sets = " and ".join(map(str, dict.fromkeys(comparison.policies["dataset"])))
        question = (
            f"Do the trained policies rank the annotators' choices better than "
            f"{comparison.baseline or 'the reference policy'} on held-out pairs of {sets}?"
        )
    items = [f"<dt>Question</dt><dd>{html.escape(question or 'What did training learn?')}</dd>"]
    if comparison is not None and not comparison.contrasts.empty:
        methods = ", ".join(dict.fromkeys(comparison.contrasts["method"]))
        items.append(
            f"<dt>Comparison</dt><dd>{html.escape(methods)} against "
            f"{html.escape(str(comparison.baseline))}: the mean per-pair margin difference on "
            f"the same held-out pairs, {comparison.interval:.0%} cluster-bootstrap intervals."
            "</dd>"
        )
    items.append("<dt>Answer</dt><dd>" + "<br>".join(map(html.escape, answer)) + "</dd>")
    if comparison is not None and not comparison.contrasts.empty:
        items.append(
            f"<dt>Multiple comparisons</dt><dd>{comparison.num_comparisons} "
            f"contrast{'s' if comparison.num_comparisons != 1 else ''}, Holm-adjusted "
            f"(family-wise level {comparison.alpha:g}). Subgroup-level gains in "
            "the sections below are exploratory: their intervals are not adjusted, and the "
            "largest of them is picked after looking.</dd>"
        )
    return '<div class="summary"><h2>Summary</h2><dl>' + "".join(items) + "</dl></div>"


#: Packages whose versions the reproducibility footer lists (those installed).
_FOOTER_PACKAGES = (
    "hetpref",
    "numpy",
    "scipy",
    "pandas",
    "jax",
    "numpyro",
    "torch",
    "transformers",
    "arviz",
    "matplotlib",
    "seaborn",
)


def _commit() -> str:
    """``git describe`` of the package's checkout ("-dirty" when modified), or "unknown"."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return out.stdout.strip() or "unknown"


def _footer(settings: Mapping[str, Any], wall_times: Mapping[str, float]) -> str:
    versions = []
    for package in _FOOTER_PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    times = ", ".join(f"{html.escape(k)} {v:.1f} s" for k, v in wall_times.items())
    rows = [
        f"Generated {stamp}; Python {platform.python_version()} on {platform.platform()}.",
        "Versions: " + html.escape(", ".join(versions)) + ".",
        f"Code: {html.escape(_commit())}.",
        "Settings: " + html.escape(", ".join(f"{k}={v}" for k, v in settings.items())) + ".",
        f"Wall time: {times}.",
    ]
    return "<footer><h2>Reproducibility</h2><p>" + "<br>".join(rows) + "</p></footer>"


def report(
    output: str | PathLike = "reports/heterogeneity_report.html",
    *,
    runs: TrainingRun | Sequence[TrainingRun] | Mapping[str, LogSource] | None = None,
    run_dirs: Sequence[str | PathLike] | None = None,
    evaluation: pd.DataFrame | str | PathLike | None = None,
    by: Sequence[str] | None = None,
    baseline: str | None = None,
    pair_id: str | None = None,
    cluster: str | None = None,
    replicate: str | None = "seed",
    posteriors: Sequence[Any] = (),
    choice_fit: Any | None = None,
    price: str | None = None,
    price_units: str | None = None,
    coefficient_units: Mapping[str, str] | None = None,
    variable_labels: Mapping[str, str] | None = None,
    panel_fit: Any | None = None,
    cv_profiles: Any | Sequence[Any] | Mapping[str, Any] = (),
    figures: Mapping[str, Figure] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    title: str = "Preference heterogeneity report",
    question: str | None = None,
    dataset: str | None = "dataset",
    settings: Mapping[str, Any] | None = None,
    wall_times: Mapping[str, float] | None = None,
    figure_format: str = "svg",
    num_boot: int = 2000,
    min_count: int = 30,
    interval: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
) -> Path:
    """Write a self-contained HTML report and return its path.

    Args:
        output: HTML file to write (parent directories are created).
        runs: training runs (see :func:`analysis.training_runs_to_inference_data`).
        run_dirs: run directories, each one run named after the directory (its log found by
            :func:`analysis.converters.find_training_log`; ``dataset`` read from ``config.json`` if any).
        evaluation: per-pair evaluation table (DataFrame, CSV, JSONL or Parquet path) with
            ``margin`` and subgroup columns, optionally ``method``.
        by: subgroup columns (default: those of :data:`DEFAULT_SUBGROUP_COLUMNS` present).
        baseline: method the others are compared with (gains section); None = no gains.
        pair_id: column matching pairs across methods (paired gains).
        cluster: column of clusters (annotators) resampled whole by the bootstrap.
        replicate: column of training seeds in ``evaluation`` (absent: one run per method):
            seed replicates are averaged per pair, with their spread and a per-seed table in
            the policies section (:func:`analysis.compare_policies`).
        posteriors: :class:`~analysis.SubgroupPosterior` results to include.
        choice_fit: a ``mixlogit`` fit (classical ``EstimationResults`` or Bayesian
            ``BayesianResults``): its estimates, a histogram of individual-level estimates
            against the population density per random coefficient and, with ``price``, the
            willingness-to-pay distributions ``-beta_k / beta_price``.
        price: name of the price (cost) coefficient for WTP; None = no WTP.
        price_units: units of the price attribute (``"cents/kWh"``) for the WTP axis labels.
        coefficient_units: ``{coefficient: units}`` for the individual-coefficient axis labels
            (``{"cl": "utility per year of contract"}``).
        variable_labels: ``{coefficient: words}`` for the choice-model section's figures,
            sentences and estimates table (``{"cl": "contract length"}``, e.g.
            :data:`mixlogit.datasets.ELECTRICITY_LABELS`); the codes stay in the tables.
        panel_fit: an :class:`~analysis.strength_panels.PanelStrengthFit` (annotator panels):
            the "Which subgroups are decisive" section with the subgroup forest, the annotator
            caterpillar and the subgroup table.
        cv_profiles: :class:`~analysis.identifiability.CVProfile` results (one, a sequence, or
            ``{label: profile}``) for that section: their numbers, a sentence reading each, and
            the profile-likelihood plot.
        figures: extra ``{caption: Figure}`` (e.g. choice-model coefficient or WTP plots).
        tables: extra ``{caption: DataFrame}``.
        title: report title.
        question: the question the summary box answers (default: whether the trained
            policies beat ``baseline`` on the held-out pairs of each dataset).
        dataset: column of ``evaluation`` naming the set each pair belongs to (e.g. a
            heterogeneous set and its homogeneous control): the sets are compared side by side
            on shared axes. Absent column: one set.
        settings: extra ``{name: value}`` for the reproducibility footer (the run's settings).
        wall_times: ``{stage: seconds}`` for the footer (the report's own time is added).
        figure_format: ``"svg"`` (vector, the default) or ``"png"`` (300 dpi).
        num_boot, min_count, seed: bootstrap settings.
        interval: mass of the policy comparison's intervals.
        alpha: family-wise level of its Holm-adjusted contrasts with ``baseline``.

    The report opens with a summary box (question, comparison, answer with its uncertainty,
    multiplicity) when ``evaluation`` has ``method`` and ``pair_id`` columns; the "Policies on
    held-out pairs" section then shows margin, preference accuracy and, with a
    ``reference_margin`` column, the gain over the reference policy
    (:func:`analysis.compare_policies`). Every table has a CSV download link; MCMC sections carry
    their diagnostics, in a warning box when a check fails, and prior-vs-posterior overlays.
    """
    if figure_format not in ("svg", "png"):
        raise ValueError(f"figure_format must be 'svg' or 'png', got {figure_format!r}")
    started = time.perf_counter()
    token = _FIGURE_FORMAT.set(figure_format)
    try:
        return _write_report(
            output,
            runs=runs,
            run_dirs=run_dirs,
            evaluation=evaluation,
            by=by,
            baseline=baseline,
            pair_id=pair_id,
            cluster=cluster,
            replicate=replicate,
            posteriors=posteriors,
            choice_fit=choice_fit,
            price=price,
            price_units=price_units,
            coefficient_units=coefficient_units,
            variable_labels=variable_labels,
            panel_fit=panel_fit,
            cv_profiles=cv_profiles,
            figures=figures,
            tables=tables,
            title=title,
            question=question,
            dataset=dataset,
            settings=settings,
            wall_times=wall_times,
            num_boot=num_boot,
            min_count=min_count,
            interval=interval,
            alpha=alpha,
            seed=seed,
            started=started,
        )
    finally:
        _FIGURE_FORMAT.reset(token)


def _write_report(
    output: str | PathLike,
    *,
    runs: Any,
    run_dirs: Sequence[str | PathLike] | None,
    evaluation: pd.DataFrame | str | PathLike | None,
    by: Sequence[str] | None,
    baseline: str | None,
    pair_id: str | None,
    cluster: str | None,
    replicate: str | None,
    posteriors: Sequence[Any],
    choice_fit: Any | None,
    price: str | None,
    price_units: str | None,
    coefficient_units: Mapping[str, str] | None,
    variable_labels: Mapping[str, str] | None,
    panel_fit: Any | None,
    cv_profiles: Any,
    figures: Mapping[str, Figure] | None,
    tables: Mapping[str, pd.DataFrame] | None,
    title: str,
    question: str | None,
    dataset: str | None,
    settings: Mapping[str, Any] | None,
    wall_times: Mapping[str, float] | None,
    num_boot: int,
    min_count: int,
    interval: float,
    alpha: float,
    seed: int,
    started: float,
) -> Path:
    sections: list[str] = []
    comparison: PolicyComparison | None = None
    run_list: list[TrainingRun] = []
    if runs is not None:
        run_list += (
            [runs]
            if isinstance(runs, TrainingRun)
            else (
                [TrainingRun(str(k), v) for k, v in runs.items()]
                if isinstance(runs, Mapping)
                else list(runs)
            )
        )
    if run_dirs:
        run_list += _runs_from_dirs(run_dirs)
    if run_list:
        sections += _runs_section(run_list)
    if evaluation is not None:
        table = (
            evaluation if isinstance(evaluation, pd.DataFrame) else _read_table(Path(evaluation))
        )
        columns = (
            list(by) if by is not None else [c for c in DEFAULT_SUBGROUP_COLUMNS if c in table]
        )
        if not columns:
            raise ValueError(
                f"no subgroup column found in the evaluation table {list(table.columns)}; "
                "pass by=[...]"
            )
        bootstrap = {"cluster": cluster, "num_boot": num_boot, "min_count": min_count, "seed": seed}
        split = dataset if dataset is not None and dataset in table.columns else None
        if pair_id is not None and "method" in table.columns:
            comparison = compare_policies(
                table,
                baseline=baseline,
                pair_id=pair_id,
                cluster=cluster,
                dataset=split,
                replicate=replicate,
                num_boot=num_boot,
                interval=interval,
                alpha=alpha,
                seed=seed,
            )
            # the answer's evidence follows the summary box, before the training details
            sections[:0] = _policies_section(comparison)
        if replicate is not None and replicate in table.columns and table[replicate].nunique() > 1:
            table = _seed_averaged(
                table,
                replicate,
                keys=[c for c in (dataset, "method", pair_id) if c is not None and c in table],
                keep=[*columns, *filter(None, [cluster])],
            )
        if split is not None and table[split].nunique() < 2:
            table, split = table.drop(columns=[split]), None
        sections += _margins_section(
            table,
            columns,
            baseline=baseline,
            pair_id=pair_id,
            bootstrap=bootstrap,
            dataset=split,
        )
    if posteriors:
        sections += _posterior_section(list(posteriors))
    profiles = _labelled_profiles(cv_profiles)
    if panel_fit is not None or profiles:
        sections += _panel_section(panel_fit, profiles)
    if choice_fit is not None:
        sections += _choice_fit_section(
            choice_fit,
            price=price,
            price_units=price_units,
            coefficient_units=dict(coefficient_units or {}),
            labels=dict(variable_labels or {}),
            num_draws=20_000,
            seed=seed,
        )
    for caption, figure in (figures or {}).items():
        sections += [f"<h2>{html.escape(caption)}</h2>", _figure_html(figure, caption)]
    for caption, table in (tables or {}).items():
        sections += [f"<h2>{html.escape(caption)}</h2>", _table_html(table, name=caption)]
    if not sections:
        raise ValueError(
            "nothing to report: give runs, run_dirs, evaluation, posteriors, panel_fit, "
            "cv_profiles, choice_fit or figures"
        )
    summary = _summary_box(question, comparison, run_list)
    footer_settings = {
        "num_boot": num_boot,
        "min_count": min_count,
        "interval": interval,
        "alpha": alpha,
        "seed": seed,
        "baseline": baseline,
        "cluster": cluster,
        **dict(settings or {}),
    }
    times = {**dict(wall_times or {}), "report": time.perf_counter() - started}
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        + summary
        + "\n".join(sections)
        + _footer(footer_settings, times)
        + "</body></html>\n"
    )
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


def _seed_averaged(
    table: pd.DataFrame, replicate: str, keys: Sequence[str], keep: Sequence[str]
) -> pd.DataFrame:
    """One row per ``keys`` (dataset, method, pair): the numeric columns averaged over seeds,
    ``keep`` and the other descriptive columns taken from the first seed (they describe the
    pair). Without a pair column the rows are left as they are (each seed's pairs count)."""
    if "method" not in keys or len(keys) < 2 or keys[-1] == "method":
        return table
    numeric = [
        c for c in table.select_dtypes("number").columns if c not in (*keys, *keep, replicate)
    ]
    rest = [c for c in table.columns if c not in (*keys, *numeric, replicate)]
    aggregate = {**dict.fromkeys(numeric, "mean"), **dict.fromkeys(rest, "first")}
    return table.groupby(keys, sort=False, as_index=False).agg(aggregate)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"evaluation table {path} does not exist")
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return pd.read_csv(path)
    if name.endswith((".jsonl", ".jsonl.gz")):
        return pd.read_json(path, lines=True)
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    raise ValueError(f"{path}: expected .csv, .jsonl or .parquet")


def _labelled_profiles(profiles: Any) -> dict[str, Any]:
    """``{label: CVProfile}`` from one profile, a sequence or a mapping (labels from the model)."""
    if isinstance(profiles, Sequence) and not profiles:
        return {}
    from analysis.identifiability import CVProfile  # imports JAX: only when there are profiles

    if isinstance(profiles, CVProfile):
        profiles = [profiles]
    if isinstance(profiles, Mapping):
        return dict(profiles)
    labelled = {}
    for profile in profiles:
        if not isinstance(profile, CVProfile):
            raise TypeError(
                f"cv_profiles must hold CVProfile results, got {type(profile).__name__}"
            )
        label = profile.label
        labelled[label if label not in labelled else f"{label} ({len(labelled) + 1})"] = profile
    return labelled
