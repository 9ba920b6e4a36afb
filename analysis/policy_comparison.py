"""Policies compared on held-out pairs: margin, gain over the reference, preference accuracy,
and paired contrasts with a baseline, Holm-adjusted for the number of comparisons.

Input is the per-pair evaluation table of :mod:`analysis.margins` (one row per pair and
method, ``margin`` in nats) with, optionally, ``reference_margin`` (the reference policy's
margin on the same pair) and a ``dataset`` column (e.g. a heterogeneous set and its
homogeneous control). Per dataset and method:

* ``margin``: mean margin over pairs;
* ``accuracy``: share of pairs with a positive margin (ties count one half), i.e. how often
  the policy ranks the annotator's choice first;
* ``gain_over_reference``: mean of ``margin - reference_margin``, what training added.

Per dataset, every other method is contrasted with ``baseline`` on the same pairs (mean of the
per-pair differences).

Seed replicates (a ``seed`` column: several training runs of one method, each scoring the same
pairs) are grouped: every per-pair quantity is first averaged over the method's seeds, so the
intervals describe the seed-averaged policy on resampled annotators, and the spread between
seeds is reported beside them (``seeds``, ``*_seed_sd``: the SD over seeds of each seed's mean;
``seeds_above``: how many of a method's seeds beat the baseline's seed-averaged margin) with
one row per seed in :attr:`PolicyComparison.per_seed`.

All intervals and p-values come from ONE cluster bootstrap per dataset: the same resampled
annotators (or pairs) for every quantity, so a figure and a table that show one quantity show
the same draws. A contrast's p-value is the two-sided bootstrap p-value
``(1 + 2 min(#rep <= 0, #rep >= 0)) / (B + 1)``, capped at 1; Holm's step-down adjustment runs
over all contrasts of the table (every dataset and method), and a difference is "detected"
when its adjusted p-value is below ``alpha``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.margins import MIN_REPLICATES, cluster_bootstrap_group_means
from mixlogit.data import plain_value

__all__ = ["PolicyComparison", "compare_policies", "holm_adjust"]

#: Name of the reference policy's rows in :attr:`PolicyComparison.policies`.
REFERENCE = "reference"

#: Dataset name of a table without a dataset column.
SINGLE_SET = "all"


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order.

    ``p_(i)`` sorted ascending becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def _bootstrap_p_value(replicates: np.ndarray) -> float:
    below, above = int(np.sum(replicates <= 0)), int(np.sum(replicates >= 0))
    return min(1.0, (1 + 2 * min(below, above)) / (replicates.size + 1))


@dataclass(frozen=True)
class PolicyComparison:
    """Result of :func:`compare_policies`.

    Attributes:
        policies: one row per (``dataset``, ``method``), the reference policy included as
            method ``"reference"`` when the table has ``reference_margin``: ``n`` pairs,
            ``margin``, ``accuracy``, ``gain_over_reference`` (NaN for the reference itself)
            and for each ``*_low``/``*_high`` (percentile ``interval``); then ``seeds`` (runs
            averaged) and ``margin_seed_sd``, ``accuracy_seed_sd``,
            ``gain_over_reference_seed_sd`` (SD over seeds of each seed's mean), these with
            seed replicates only.
        contrasts: one row per (``dataset``, ``method``) other than ``baseline``: ``gain``
            (mean paired margin difference, nats), ``gain_low``, ``gain_high``, ``p_value``,
            ``p_holm`` (adjusted over every row) and ``detected`` (``p_holm < alpha``); then
            ``seeds``, ``gain_seed_sd`` and ``seeds_above`` (seeds whose mean margin exceeds
            the baseline's seed-averaged mean margin), with seed replicates only.
        per_seed: with seed replicates, one row per (``dataset``, ``method``, seed): ``n``,
            ``margin``, ``accuracy``, ``gain_over_reference`` of that run alone; empty
            without.
        baseline, interval, alpha, num_boot, cluster, replicate: the settings
            (``replicate``: the seed column used, None without seed replicates).
    """

    policies: pd.DataFrame
    contrasts: pd.DataFrame
    baseline: str | None
    interval: float
    alpha: float
    num_boot: int
    cluster: str | None
    per_seed: pd.DataFrame = field(default_factory=pd.DataFrame)
    replicate: str | None = None

    @property
    def num_comparisons(self) -> int:
        return len(self.contrasts)

    def answer(self) -> list[str]:
        """Plain sentences that state the comparison's result with its uncertainty (no HTML)."""
        level = f"{self.interval:.0%}"
        lines = []
        if self.replicate is not None:
            counts = sorted(set(self.policies.loc[self.policies["method"] != REFERENCE, "seeds"]))
            lines.append(
                f"Each policy's numbers are averaged over its "
                f"{'/'.join(str(int(c)) for c in counts)} training seeds; the intervals are "
                "over annotators, the seed-to-seed spread is in the tables."
            )
        if not self.contrasts.empty:
            detected = self.contrasts[self.contrasts["detected"]]
            if detected.empty:
                widest = self.contrasts.loc[self.contrasts["gain"].abs().idxmax()]
                lines.append(
                    f"No difference from {self.baseline} detected: "
                    + (
                        "the comparison does not have"
                        if self.num_comparisons == 1
                        else f"none of the {self.num_comparisons} comparisons has"
                    )
                    + " a Holm-adjusted p-value below "
                    f"{self.alpha:g}. The largest in size, {widest['method']}"
                    f"{_on(widest['dataset'])}, is {widest['gain']:+.3f} nats "
                    f"[{widest['gain_low']:+.3f}, {widest['gain_high']:+.3f}]."
                )
            else:
                for row in detected.itertuples():
                    direction = "above" if row.gain > 0 else "below"
                    lines.append(
                        f"{row.method} is {direction} {self.baseline}{_on(row.dataset)}: "
                        f"{row.gain:+.3f} nats [{row.gain_low:+.3f}, {row.gain_high:+.3f}], "
                        f"Holm-adjusted p = {row.p_holm:.2g}"
                        + (
                            f" (one of {self.num_comparisons} comparisons)."
                            if self.num_comparisons > 1
                            else "."
                        )
                    )
                rest = self.num_comparisons - len(detected)
                if rest == 1:
                    lines.append("The other comparison detects no difference.")
                elif rest:
                    lines.append(f"The other {rest} comparisons detect no difference.")
        trained = self.policies[self.policies["method"] != REFERENCE].dropna(
            subset=["gain_over_reference"]
        )
        for dataset, rows in trained.groupby("dataset", sort=False):
            low, high = rows["gain_over_reference"].min(), rows["gain_over_reference"].max()
            everyone = bool((rows["gain_over_reference_low"] > 0).all())
            spread = f"{low:+.3f}" if len(rows) == 1 else f"{low:+.3f} to {high:+.3f}"
            verb = "every policy gains" if everyone else "the policies gain"
            opening = f"{verb[0].upper()}{verb[1:]}" if dataset == SINGLE_SET else verb
            lines.append(
                ("" if dataset == SINGLE_SET else f"On {dataset}, ") + f"{opening} "
                f"{spread} nats over the reference policy"
                + (
                    f" (each {level} interval above 0)."
                    if everyone
                    else f" (not every {level} interval excludes 0)."
                )
            )
        return lines


def _on(dataset: object) -> str:
    """ " on <dataset>", or "" for the single unnamed set."""
    return "" if dataset == SINGLE_SET else f" on {dataset}"


def _units(frame: pd.DataFrame, cluster: str | None, pair_id: str) -> np.ndarray:
    if cluster is None:
        return pd.factorize(frame[pair_id])[0]
    missing = frame[cluster].isna().to_numpy()
    if missing.any():
        row = frame.index[int(np.flatnonzero(missing)[0])]
        raise ValueError(f"cluster column {cluster!r} is missing at row {row!r}")
    return pd.factorize(frame[cluster])[0]


def _accuracy(margins: np.ndarray) -> np.ndarray:
    return (margins > 0) + 0.5 * (margins == 0)  # ties count one half


def compare_policies(
    evaluation: pd.DataFrame,
    *,
    baseline: str | None = None,
    pair_id: str = "pair_id",
    cluster: str | None = None,
    dataset: str | None = "dataset",
    value: str = "margin",
    reference: str | None = "reference_margin",
    replicate: str | None = "seed",
    num_boot: int = 2000,
    interval: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
) -> PolicyComparison:
    """Compare the policies of an evaluation table on the same held-out pairs.

    Args:
        evaluation: one row per (pair, method): ``method``, ``pair_id``, ``value`` and
            optionally ``reference``, ``dataset`` and ``cluster`` columns.
        baseline: method the others are contrasted with (None: no contrasts).
        pair_id: column matching a pair across methods; within a dataset every method must
            have scored the same pairs, each once.
        cluster: column of clusters (annotators) resampled whole; None resamples pairs.
        dataset: column splitting the table into separately compared sets (absent or None:
            one set named ``"all"``, left out of the sentences).
        value: margin column (nats).
        reference: column of the reference policy's margin on the same pair (absent or None:
            no reference row and no gain over it).
        replicate: column of training seeds (absent or None: one run per method): each seed
            of a method scores the same pairs once; the per-pair quantities are averaged over
            seeds and the seed-to-seed spread is reported (module docstring).
        num_boot: bootstrap replicates (at least ``MIN_REPLICATES``).
        interval: mass of the percentile intervals.
        alpha: family-wise level of the Holm-adjusted contrasts.
        seed: bootstrap seed.

    Raises:
        ValueError: a missing column, a method without the baseline's pairs, a pair scored
            twice by one method, a non-finite value (naming its row), or bad settings.
    """
    if num_boot < MIN_REPLICATES:
        raise ValueError(f"num_boot must be at least {MIN_REPLICATES}, got {num_boot}")
    if not 0.0 < interval < 1.0 or not 0.0 < alpha < 1.0:
        raise ValueError(f"interval and alpha must lie in (0, 1), got {interval}, {alpha}")
    required = ["method", pair_id, value] + ([cluster] if cluster else [])
    absent = [c for c in required if c not in evaluation.columns]
    if absent:
        raise ValueError(
            f"evaluation table lacks column(s) {absent}; it has {list(evaluation.columns)}"
        )
    use_reference = reference is not None and reference in evaluation.columns
    numeric = [value] + ([reference] if use_reference else [])
    for column in numeric:
        values = pd.to_numeric(evaluation[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row = evaluation.index[int(np.flatnonzero(bad)[0])]
            raise ValueError(
                f"column {column!r} has a non-finite value {evaluation.loc[row, column]} at "
                f"row {row!r}"
            )
    frame = evaluation.copy()
    if dataset is None or dataset not in frame.columns:
        frame["_dataset"], dataset = SINGLE_SET, "_dataset"
    replicated = replicate is not None and replicate in frame.columns
    if replicated and frame[replicate].nunique(dropna=False) < 2:
        replicated = False  # one seed throughout: nothing to group
    if replicated and frame[replicate].isna().any():
        row = frame.index[int(np.flatnonzero(frame[replicate].isna().to_numpy())[0])]
        raise ValueError(f"seed column {replicate!r} is missing at row {row!r}")
    seed_column = str(replicate) if replicated else "_seed"
    if not replicated:
        frame[seed_column] = 0
    methods = list(dict.fromkeys(frame["method"]))
    if baseline is not None and baseline not in methods:
        raise ValueError(f"baseline {baseline!r} is not among the methods {methods}")
    lo_q, hi_q = 50 * (1 - interval), 50 * (1 + interval)
    rng = np.random.default_rng(seed)
    policy_rows, contrast_rows, seed_rows = [], [], []
    for name, rows in frame.groupby(dataset, sort=False):
        runs = _runs_by_method(rows, name, pair_id, seed_column, replicated)
        first = next(iter(runs.values()))[0]
        pairs = first.index
        for method, parts in runs.items():
            for part in parts:
                if not part.index.sort_values().equals(pairs.sort_values()):
                    extra = part.index.symmetric_difference(pairs)[:3].tolist()
                    raise ValueError(
                        f"on {name!r}, {method!r} and {next(iter(runs))!r} scored different "
                        f"pairs (e.g. {extra}): policies are compared on the same pairs"
                    )
        # (seeds, pairs) margins of each method, pairs in one order
        by_seed = {
            m: np.stack([p.loc[pairs, value].to_numpy(dtype=np.float64) for p in parts])
            for m, parts in runs.items()
        }
        if baseline is not None and baseline not in by_seed:
            raise ValueError(
                f"baseline {baseline!r} has no rows on {name!r}: methods {list(by_seed)}"
            )
        # the reference policy's margins of each run (a seed may initialise its own reference)
        refs = (
            {
                m: np.stack([p.loc[pairs, reference].to_numpy(dtype=np.float64) for p in parts])
                for m, parts in runs.items()
            }
            if use_reference
            else None
        )
        ref = None if refs is None else next(iter(refs.values())).mean(axis=0)
        aligned = {m: margins.mean(axis=0) for m, margins in by_seed.items()}
        # every per-pair quantity of the dataset, resampled together (one set of draws)
        quantities: dict[tuple[str, str], np.ndarray] = {}
        if ref is not None:
            quantities[REFERENCE, "margin"] = ref
            quantities[REFERENCE, "accuracy"] = _accuracy(ref)
        # (seeds, pairs) per-run values of each method: averaged over seeds (axis 0) they
        # are the per-pair quantities resampled below, over pairs (axis 1) each seed's means
        per_run = {
            method: {
                "margin": margins,
                "accuracy": _accuracy(margins),
                "gain_over_reference": (
                    margins - refs[method] if refs is not None else np.full(margins.shape, np.nan)
                ),
            }
            for method, margins in by_seed.items()
        }
        for method, margins in aligned.items():
            quantities[method, "margin"] = margins
            quantities[method, "accuracy"] = per_run[method]["accuracy"].mean(axis=0)
            if refs is not None:
                quantities[method, "gain_over_reference"] = per_run[method][
                    "gain_over_reference"
                ].mean(axis=0)
            if baseline is not None and method != baseline:
                quantities[method, "contrast"] = margins - aligned[baseline]
        seed_means = {
            method: {key: values.mean(axis=1) for key, values in run.items()}
            for method, run in per_run.items()
        }
        if replicated:
            for method, parts in runs.items():
                for k, part in enumerate(parts):
                    seed_rows.append(
                        {
                            "dataset": name,
                            "method": method,
                            seed_column: part.attrs["seed"],
                            "n": len(pairs),
                            **{key: float(v[k]) for key, v in seed_means[method].items()},
                        }
                    )
        units = _units(first.reset_index(), cluster, pair_id)
        num_units = int(units.max()) + 1
        counts = np.bincount(units, minlength=num_units).astype(np.float64)
        sums = np.stack(
            [np.bincount(units, weights=v, minlength=num_units) for v in quantities.values()],
            axis=1,
        )
        replicates, _ = cluster_bootstrap_group_means(
            sums, np.repeat(counts[:, None], len(quantities), axis=1), num_boot, rng
        )
        low, high = np.percentile(replicates, [lo_q, hi_q], axis=0)
        stats = {
            key: (float(v.mean()), float(low[i]), float(high[i]), replicates[:, i])
            for i, (key, v) in enumerate(quantities.items())
        }
        for method in ([REFERENCE] if ref is not None else []) + list(aligned):
            record: dict = {"dataset": name, "method": method, "n": len(pairs)}
            for key in ("margin", "accuracy", "gain_over_reference"):
                mean, lo, hi, _ = stats.get((method, key), (np.nan, np.nan, np.nan, None))
                record.update({key: mean, f"{key}_low": lo, f"{key}_high": hi})
            record["seeds"] = len(by_seed[method]) if method in by_seed else 1
            for key in ("margin", "accuracy", "gain_over_reference"):
                record[f"{key}_seed_sd"] = (
                    _seed_sd(seed_means[method][key]) if method in seed_means else np.nan
                )
            policy_rows.append(record)
        for method in aligned:
            if (method, "contrast") not in stats:
                continue
            gain, lo, hi, reps = stats[method, "contrast"]
            per_seed_gain = seed_means[method]["margin"] - aligned[baseline].mean()
            contrast_rows.append(
                {
                    "dataset": name,
                    "method": method,
                    "baseline": baseline,
                    "n": len(pairs),
                    "gain": gain,
                    "gain_low": lo,
                    "gain_high": hi,
                    "p_value": _bootstrap_p_value(reps),
                    "seeds": len(per_seed_gain),
                    "gain_seed_sd": _seed_sd(per_seed_gain),
                    "seeds_above": int(np.sum(per_seed_gain > 0)),
                }
            )
    contrasts = pd.DataFrame(
        contrast_rows,
        columns=[
            "dataset",
            "method",
            "baseline",
            "n",
            "gain",
            "gain_low",
            "gain_high",
            "p_value",
            "seeds",
            "gain_seed_sd",
            "seeds_above",
        ],
    )
    contrasts.insert(8, "p_holm", holm_adjust(contrasts["p_value"].to_numpy()))
    contrasts.insert(9, "detected", contrasts["p_holm"] < alpha)
    policies = pd.DataFrame(policy_rows)
    if not replicated:  # one run per method: no seed columns to read
        policies = policies.drop(
            columns=[c for c in policies if c.startswith("seed") or c.endswith("_seed_sd")]
        )
        contrasts = contrasts.drop(columns=["seeds", "gain_seed_sd", "seeds_above"])
    return PolicyComparison(
        policies=policies,
        contrasts=contrasts,
        baseline=baseline,
        interval=interval,
        alpha=alpha,
        num_boot=num_boot,
        cluster=cluster,
        per_seed=pd.DataFrame(seed_rows),
        replicate=replicate if replicated else None,
    )


def _seed_sd(values: np.ndarray) -> float:
    """SD over seeds (``ddof=1``), NaN for a single seed."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def _runs_by_method(
    rows: pd.DataFrame, name: object, pair_id: str, replicate: str, replicated: bool
) -> dict[Any, list[pd.DataFrame]]:
    """``{method: [one frame per seed, indexed by pair]}`` of one dataset; a pair scored twice
    by one run is an error naming it."""
    runs: dict[Any, list[pd.DataFrame]] = {}
    for method, part in rows.groupby("method", sort=False):
        for seed_value, run in part.groupby(replicate, sort=True):
            twice = run[pair_id].duplicated()
            if twice.any():
                row = run.index[int(np.flatnonzero(twice.to_numpy())[0])]
                where = f" seed {plain_value(seed_value)!r}" if replicated else ""
                raise ValueError(
                    f"{method!r}{where} on {name!r} scores pair {plain_value(run.loc[row, pair_id])!r} "
                    f"twice (row {plain_value(row)!r}): one row per pair and method"
                    + (" and seed" if replicated else "")
                )
            indexed = run.set_index(pair_id)
            indexed.attrs["seed"] = seed_value
            runs.setdefault(method, []).append(indexed)
    return runs
