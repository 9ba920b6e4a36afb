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
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.converters import (
    LogSource,
    TrainingRun,
    subgroup_strengths,
    training_runs_to_inference_data,
)
from analysis.margins import subgroup_gains, subgroup_margins
from analysis.plots import (
    plot_individual_coefficients,
    plot_strength_densities,
    plot_strength_trajectories,
    plot_subgroup_forest,
    plot_subgroup_gains,
    plot_subgroup_margins,
    plot_willingness_to_pay,
)

__all__ = ["report"]

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
"""


def _figure_html(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _table_html(frame: pd.DataFrame, digits: int = 3) -> str:
    formatted = frame.copy()
    for column in formatted.columns:
        if pd.api.types.is_float_dtype(formatted[column]):
            formatted[column] = formatted[column].map(lambda v: f"{v:.{digits}g}")
    return formatted.to_html(index=False, escape=True, border=0)


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
    parts.append(_table_html(table, digits=4))
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
        parts.append(_table_html(table.drop(columns=["step"]), digits=4))
    return parts


def _margins_section(
    evaluation: pd.DataFrame,
    by: list[str],
    *,
    baseline: str | None,
    pair_id: str | None,
    bootstrap: Mapping[str, Any],
) -> list[str]:
    """``bootstrap``: ``cluster``, ``num_boot``, ``min_count``, ``seed`` of both tables."""
    margins = subgroup_margins(evaluation, by, **bootstrap)
    cluster, min_count = bootstrap["cluster"], bootstrap["min_count"]
    parts = [
        "<h2>Subgroup margins</h2>",
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
    parts.append(_figure_html(plot_subgroup_margins(margins), "subgroup margins"))
    parts.append(_table_html(margins.subgroups))
    methods = sorted(margins.subgroups["method"].unique())
    if baseline is not None and len(methods) > 1:
        gains = subgroup_gains(evaluation, by, baseline=baseline, pair_id=pair_id, **bootstrap)
        table = gains.subgroups
        best = table.loc[table["gain"].idxmax()]
        worst = table.loc[table["gain"].idxmin()]
        parts.append(f"<h2>Gains over {html.escape(baseline)}</h2>")
        lines = [
            f"Largest: <b>{html.escape(best['method'])}</b> on {html.escape(best['attribute'])}"
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
        parts.append('<p class="key">' + "<br>".join(lines) + "</p>")
        parts.append(_figure_html(plot_subgroup_gains(gains), "gains"))
        parts.append(_table_html(table))
    return parts


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
            f"{low['mean_strength_high']:.3g}] ({posterior.interval:.0%} HDI). Max r_hat "
            f"{diagnostics['max_r_hat']:.3f}, min bulk ESS {diagnostics['min_ess_bulk']:.0f}, "
            f"{diagnostics['num_divergences']} divergences.</p>"
        )
        parts.append(_figure_html(plot_subgroup_forest(posterior), "forest"))
        parts.append(_table_html(summary))
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
            f"Most decisive {strength(top)}; least decisive {strength(low)} "
            f"({fit.interval:.0%} intervals, {fit.family} strengths within subgroups, "
            f"{len(fit.annotators)} annotators).",
            f"Population (a random annotator): mean strength {population['mean']:.3g} "
            f"[{population['mean_low']:.3g}, {population['mean_high']:.3g}], CV "
            f"{population['cv']:.3g} [{population['cv_low']:.3g}, {population['cv_high']:.3g}].",
            f"Max r_hat {diagnostics['max_r_hat']:.3f}, min bulk ESS "
            f"{diagnostics['min_ess_bulk']:.0f}, {diagnostics['num_divergences']} divergences.",
        ]
        parts.append('<p class="key">' + "<br>".join(lines) + "</p>")
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
        parts.append(_table_html(table))
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
        parts.append(_table_html(pd.DataFrame(rows), digits=4))
        figure = plot_profile_cv(dict(profiles))
        parts.append(_figure_html(figure, "CV profile likelihood"))
        plt.close(figure)
    return parts


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


def _choice_fit_section(
    fit: Any,
    *,
    price: str | None,
    price_units: str | None,
    coefficient_units: Mapping[str, str],
    num_draws: int,
    seed: int,
) -> list[str]:
    individual, population = _choice_fit_draws(fit, num_draws, seed)
    parts = ["<h2>Choice model: heterogeneity of tastes</h2>"]
    lines = []
    loglik = getattr(fit, "loglik", None)
    if loglik is not None:
        lines.append(
            f"{html.escape(str(getattr(fit, 'method', 'fit')))}: log-likelihood {float(loglik):.3f}"
            f" on {getattr(fit, 'num_situations', '?')} choice situations"
        )
    for name in individual.columns:
        column = population[name]
        lines.append(
            f"<b>{html.escape(name)}</b>: population mean {column.mean():.4g}, SD "
            f"{column.std():.4g}; individual estimates range {individual[name].min():.4g} to "
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
            f"WTP {html.escape(a)} (= -{html.escape(a)}/{html.escape(price)}): median "
            f"{np.median(v):.4g}, 5-95 % [{np.quantile(v, 0.05):.4g}, {np.quantile(v, 0.95):.4g}]"
            for a, v in wtp.items()
        ]
    parts.append('<p class="key">' + "<br>".join(lines) + "</p>")
    table = fit.table() if hasattr(fit, "table") else fit.population()
    parts.append(_table_html(table.reset_index() if table.index.name else table, digits=4))
    for name in individual.columns:
        figure = plot_individual_coefficients(
            individual[name].to_numpy(),
            population[name].to_numpy(),
            name=name,
            units=coefficient_units.get(name),
        )
        parts.append(_figure_html(figure, f"individual {name}"))
        plt.close(figure)
    if price is not None:
        figure = plot_willingness_to_pay(
            {a: population[a].to_numpy() for a in attributes},
            population[price].to_numpy(),
            price_name=price,
            price_units=price_units,
        )
        parts.append(_figure_html(figure, "willingness to pay"))
        plt.close(figure)
    return parts


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
    posteriors: Sequence[Any] = (),
    choice_fit: Any | None = None,
    price: str | None = None,
    price_units: str | None = None,
    coefficient_units: Mapping[str, str] | None = None,
    panel_fit: Any | None = None,
    cv_profiles: Any | Sequence[Any] | Mapping[str, Any] = (),
    figures: Mapping[str, Figure] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    title: str = "Preference heterogeneity report",
    num_boot: int = 2000,
    min_count: int = 30,
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
        posteriors: :class:`~analysis.SubgroupPosterior` results to include.
        choice_fit: a ``mixlogit`` fit (classical ``EstimationResults`` or Bayesian
            ``BayesianResults``): its estimates, a histogram of individual-level estimates
            against the population density per random coefficient and, with ``price``, the
            willingness-to-pay distributions ``-beta_k / beta_price``.
        price: name of the price (cost) coefficient for WTP; None = no WTP.
        price_units: units of the price attribute (``"cents/kWh"``) for the WTP axis labels.
        coefficient_units: ``{coefficient: units}`` for the individual-coefficient axis labels
            (``{"cl": "utility per year of contract"}``).
        panel_fit: an :class:`~analysis.strength_panels.PanelStrengthFit` (annotator panels):
            the "Which subgroups are decisive" section with the subgroup forest, the annotator
            caterpillar and the subgroup table.
        cv_profiles: :class:`~analysis.identifiability.CVProfile` results (one, a sequence, or
            ``{label: profile}``) for that section: their numbers, a sentence reading each, and
            the profile-likelihood plot.
        figures: extra ``{caption: Figure}`` (e.g. choice-model coefficient or WTP plots).
        tables: extra ``{caption: DataFrame}``.
        title: report title.
        num_boot, min_count, seed: bootstrap settings.
    """
    sections: list[str] = []
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
        if not isinstance(evaluation, pd.DataFrame):
            evaluation = _read_table(Path(evaluation))
        columns = (
            list(by)
            if by is not None
            else [c for c in DEFAULT_SUBGROUP_COLUMNS if c in evaluation.columns]
        )
        if not columns:
            raise ValueError(
                f"no subgroup column found in the evaluation table {list(evaluation.columns)}; "
                "pass by=[...]"
            )
        bootstrap = {"cluster": cluster, "num_boot": num_boot, "min_count": min_count, "seed": seed}
        sections += _margins_section(
            evaluation, columns, baseline=baseline, pair_id=pair_id, bootstrap=bootstrap
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
            num_draws=20_000,
            seed=seed,
        )
    for caption, figure in (figures or {}).items():
        sections += [f"<h2>{html.escape(caption)}</h2>", _figure_html(figure, caption)]
    for caption, table in (tables or {}).items():
        sections += [f"<h2>{html.escape(caption)}</h2>", _table_html(table)]
    if not sections:
        raise ValueError(
            "nothing to report: give runs, run_dirs, evaluation, posteriors, panel_fit, "
            "cv_profiles, choice_fit or figures"
        )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><p class="note">Generated {stamp}.</p>'
        + "\n".join(sections)
        + "</body></html>\n"
    )
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


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
