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
per-pair differences). All intervals and p-values come from ONE cluster bootstrap per dataset:
the same resampled annotators (or pairs) for every quantity, so a figure and a table that show
one quantity show the same draws. A contrast's p-value is the two-sided bootstrap p-value
``(1 + 2 min(#rep <= 0, #rep >= 0)) / (B + 1)``, capped at 1; Holm's step-down adjustment runs
over all contrasts of the table (every dataset and method), and a difference is "detected"
when its adjusted p-value is below ``alpha``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.margins import MIN_REPLICATES, cluster_bootstrap_group_means

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
            and for each ``*_low``/``*_high`` (percentile ``interval``).
        contrasts: one row per (``dataset``, ``method``) other than ``baseline``: ``gain``
            (mean paired margin difference, nats), ``gain_low``, ``gain_high``, ``p_value``,
            ``p_holm`` (adjusted over every row) and ``detected`` (``p_holm < alpha``).
        baseline, interval, alpha, num_boot, cluster: the settings.
    """

    policies: pd.DataFrame
    contrasts: pd.DataFrame
    baseline: str | None
    interval: float
    alpha: float
    num_boot: int
    cluster: str | None

    @property
    def num_comparisons(self) -> int:
        return len(self.contrasts)

    def answer(self) -> list[str]:
        """Plain sentences that state the comparison's result with its uncertainty (no HTML)."""
        level = f"{self.interval:.0%}"
        lines = []
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
    methods = list(dict.fromkeys(frame["method"]))
    if baseline is not None and baseline not in methods:
        raise ValueError(f"baseline {baseline!r} is not among the methods {methods}")
    lo_q, hi_q = 50 * (1 - interval), 50 * (1 + interval)
    rng = np.random.default_rng(seed)
    policy_rows, contrast_rows = [], []
    for name, rows in frame.groupby(dataset, sort=False):
        wide = {}
        for method, part in rows.groupby("method", sort=False):
            twice = part[pair_id].duplicated()
            if twice.any():
                row = part.index[int(np.flatnonzero(twice.to_numpy())[0])]
                raise ValueError(
                    f"{method!r} on {name!r} scores pair {part.loc[row, pair_id]!r} twice "
                    f"(row {row!r}): one row per pair and method"
                )
            wide[method] = part.set_index(pair_id)
        first = next(iter(wide.values()))
        pairs = first.index
        for method, part in wide.items():
            if not part.index.sort_values().equals(pairs.sort_values()):
                extra = part.index.symmetric_difference(pairs)[:3].tolist()
                raise ValueError(
                    f"on {name!r}, {method!r} and {next(iter(wide))!r} scored different pairs "
                    f"(e.g. {extra}): policies are compared on the same pairs"
                )
        aligned = {m: p.loc[pairs, value].to_numpy(dtype=np.float64) for m, p in wide.items()}
        if baseline is not None and baseline not in aligned:
            raise ValueError(
                f"baseline {baseline!r} has no rows on {name!r}: methods {list(aligned)}"
            )
        ref = first.loc[pairs, reference].to_numpy(dtype=np.float64) if use_reference else None
        # every per-pair quantity of the dataset, resampled together (one set of draws)
        quantities: dict[tuple[str, str], np.ndarray] = {}
        if ref is not None:
            quantities[REFERENCE, "margin"] = ref
            quantities[REFERENCE, "accuracy"] = _accuracy(ref)
        for method, margins in aligned.items():
            quantities[method, "margin"] = margins
            quantities[method, "accuracy"] = _accuracy(margins)
            if ref is not None:
                quantities[method, "gain_over_reference"] = margins - ref
            if baseline is not None and method != baseline:
                quantities[method, "contrast"] = margins - aligned[baseline]
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
            policy_rows.append(record)
        for method in aligned:
            if (method, "contrast") not in stats:
                continue
            gain, lo, hi, reps = stats[method, "contrast"]
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
                }
            )
    contrasts = pd.DataFrame(
        contrast_rows,
        columns=["dataset", "method", "baseline", "n", "gain", "gain_low", "gain_high", "p_value"],
    )
    contrasts["p_holm"] = holm_adjust(contrasts["p_value"].to_numpy())
    contrasts["detected"] = contrasts["p_holm"] < alpha
    return PolicyComparison(
        policies=pd.DataFrame(policy_rows),
        contrasts=contrasts,
        baseline=baseline,
        interval=interval,
        alpha=alpha,
        num_boot=num_boot,
        cluster=cluster,
    )
