"""Subgroup margins: micro and macro averages, bootstrap intervals, gains between methods.

Input is a per-pair evaluation table: one row per (held-out preference pair, method) with the
pair's ``margin`` (policy log-probability of the chosen minus the rejected completion, in nats)
and the subgroup columns of the pair's annotator (``age``, ``gender``, ``education``...) or of
the pair itself (``conversation_type``).

Definitions, per method and per subgroup attribute (rows whose attribute is missing are left out
of that attribute and counted in ``n_missing``):

* subgroup mean: the mean margin over the subgroup's pairs;
* micro average: the mean over all pairs (large subgroups weigh more);
* macro average: the unweighted mean of the subgroup means (every subgroup weighs the same).

Intervals are percentile bootstrap intervals. Subgroup means and the macro average use a
stratified bootstrap (each subgroup resampled within itself, so every replicate keeps every
subgroup's size); the micro average resamples all pairs together. With ``cluster`` (e.g.
``"annotator_id"``) whole clusters are resampled instead of pairs (all clusters together,
not within subgroups, so that an annotator may have pairs in several subgroups, as with a
per-pair ``conversation_type``): this keeps the correlation between one annotator's pairs,
which pair-level resampling ignores and which makes its intervals too narrow.

A cluster replicate can miss a subgroup entirely (none of its resampled annotators has a pair
in it: with 40 annotators, a subgroup of 3 is absent from ~4 % of the replicates, one of a
single annotator from ~36 %). Intervals are then conditional on the subgroup being observed:
a subgroup's interval is taken over the replicates in which it appears, the macro average's
over the replicates in which every subgroup appears, and the tables report how many
replicates were used and how many missed (``replicates_used``, ``replicates_missing``). When
fewer than ``MIN_REPLICATES`` (100, the smallest ``num_boot`` accepted) remain, the interval
is NaN and a :class:`SparseBootstrapWarning` names the subgroup and the counts; a subgroup
with a single cluster also warns (its conditional interval has zero width).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alignment.metrics import micro_macro_margins
from mixlogit._deprecation import deprecated_keywords, renamed_attribute
from mixlogit.data import plain_value

__all__ = [
    "MIN_REPLICATES",
    "SparseBootstrapWarning",
    "SubgroupGains",
    "SubgroupMargins",
    "bootstrap_group_means",
    "cluster_bootstrap_group_means",
    "micro_macro_margins",
    "subgroup_gains",
    "subgroup_margins",
]

# Largest number of resampled indices held in memory at once by the bootstrap.
_CHUNK_ELEMENTS = 4_000_000

#: Fewest bootstrap replicates a percentile interval is computed from (the smallest ``num_boot``
#: accepted): a 95 % interval then still has 2-3 replicates beyond each end.
MIN_REPLICATES = 100


class SparseBootstrapWarning(UserWarning):
    """A cluster-bootstrap interval rests on too few replicates, or on a single cluster."""


# The warnings are raised with stacklevel=4 (helper, subgroup_margins/subgroup_gains, their
# keyword-renaming wrapper) so that they point at the caller's line.


def bootstrap_group_means(
    unit_sums: np.ndarray,
    unit_counts: np.ndarray,
    unit_groups: np.ndarray,
    num_groups: int,
    num_boot: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Stratified bootstrap replicates of group means, vectorised over replicates.

    Each group's units are resampled with replacement within the group; a replicate's group
    mean is ``sum(resampled unit sums) / sum(resampled unit counts)``, i.e. the mean over the
    pairs of the resampled units (a unit is one pair, or one cluster of pairs).

    Args:
        unit_sums: ``(U,)`` sum of the values of each unit.
        unit_counts: ``(U,)`` number of values in each unit (>= 1).
        unit_groups: ``(U,)`` int group code in ``[0, num_groups)``; every group must have a unit.
        num_groups: number of groups ``G``.
        num_boot: number of replicates ``B``.
        rng: NumPy random generator.

    Returns:
        ``(B, G)`` float64 replicate group means.
    """
    unit_sums = np.asarray(unit_sums, dtype=np.float64)
    unit_counts = np.asarray(unit_counts, dtype=np.float64)
    unit_groups = np.asarray(unit_groups)
    replicates = np.empty((num_boot, num_groups))
    for group in range(num_groups):
        members = np.flatnonzero(unit_groups == group)
        if members.size == 0:
            raise ValueError(f"group {group} has no unit to resample")
        sums, counts = unit_sums[members], unit_counts[members]
        all_counts_one = bool(np.all(counts == 1))
        chunk = max(1, _CHUNK_ELEMENTS // members.size)
        for start in range(0, num_boot, chunk):
            stop = min(num_boot, start + chunk)
            index = rng.integers(0, members.size, size=(stop - start, members.size))
            if all_counts_one:
                replicates[start:stop, group] = sums[index].mean(axis=1)
            else:
                replicates[start:stop, group] = sums[index].sum(axis=1) / counts[index].sum(axis=1)
    return replicates


def _percentile_interval(replicates: np.ndarray, interval: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = 1.0 - interval
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2], axis=0)
    return low, high


def _observed_intervals(
    replicates: np.ndarray, interval: float, levels: Sequence, context: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile interval of each column over the replicates in which it is observed.

    Args:
        replicates: ``(B, G)`` replicate group means (or gains), NaN where a replicate has no
            pair of the group.
        interval: interval level.
        levels: the ``G`` subgroup names, for the warning.
        context: ``"method 'dpo', attribute 'age'"``, for the warning.

    Returns:
        ``(G,)`` low and high ends (NaN where fewer than :data:`MIN_REPLICATES` replicates
        observe the group, with a :class:`SparseBootstrapWarning`) and ``(G,)`` int number of
        replicates used.
    """
    num_boot, num_groups = replicates.shape
    observed = np.isfinite(replicates)
    used = observed.sum(axis=0)
    low, high = np.full(num_groups, np.nan), np.full(num_groups, np.nan)
    for group in range(num_groups):
        if used[group] < MIN_REPLICATES:
            warnings.warn(
                f"{context}: subgroup {plain_value(levels[group])!r} is absent from "
                f"{num_boot - used[group]} of {num_boot} cluster-bootstrap replicates; the "
                f"{used[group]} left are fewer than {MIN_REPLICATES}, so its interval is NaN "
                "(increase num_boot or merge small subgroups)",
                SparseBootstrapWarning,
                stacklevel=4,
            )
            continue
        column = replicates[observed[:, group], group]
        low[group], high[group] = _percentile_interval(column, interval)
    return low, high, used


def _macro_replicates(
    replicates: np.ndarray, levels: Sequence, context: str
) -> tuple[np.ndarray, int]:
    """Macro averages of the replicates that observe every group, and how many those are.

    Returns ``(R,)`` replicate macro averages over the ``R`` complete replicates (the macro
    interval is conditional on every subgroup being observed); warns (and returns an empty
    array) when ``R`` < :data:`MIN_REPLICATES`, naming the subgroup missed most often.
    """
    observed = np.isfinite(replicates)
    complete = observed.all(axis=1)
    used = int(complete.sum())
    if used < MIN_REPLICATES:
        misses = (~observed).sum(axis=0)
        worst = int(np.argmax(misses))
        warnings.warn(
            f"{context}: {replicates.shape[0] - used} of {replicates.shape[0]} cluster-bootstrap "
            f"replicates miss at least one subgroup (most often {plain_value(levels[worst])!r}, in "
            f"{misses[worst]}); the {used} complete ones are fewer than {MIN_REPLICATES}, so the "
            "macro interval is NaN (increase num_boot or merge small subgroups)",
            SparseBootstrapWarning,
            stacklevel=4,
        )
        return np.empty(0), used
    return replicates[complete].mean(axis=1), used


def _interval_or_nan(replicates: np.ndarray, interval: float) -> tuple[float, float]:
    """Percentile interval of ``(R,)`` replicates; NaN for none (already warned about)."""
    if replicates.size == 0:
        return float("nan"), float("nan")
    low, high = _percentile_interval(replicates, interval)
    return float(low), float(high)


def _check_common(
    evaluation: pd.DataFrame,
    by: str | Sequence[str],
    value: str,
    columns: Sequence[str | None],
    num_boot: int,
    interval: float,
    min_count: int,
) -> list[str]:
    if not isinstance(evaluation, pd.DataFrame):
        raise TypeError(f"evaluation must be a pandas DataFrame, got {type(evaluation).__name__}")
    attributes = [by] if isinstance(by, str) else list(by)
    if not attributes:
        raise ValueError("by must name at least one subgroup column")
    needed = [value, *attributes, *(c for c in columns if c is not None)]
    missing = [c for c in needed if c not in evaluation.columns]
    if missing:
        raise ValueError(
            f"column(s) {missing} not in the evaluation table {list(evaluation.columns)}"
        )
    values = pd.to_numeric(evaluation[value], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = np.flatnonzero(bad)[0]
        raise ValueError(
            f"column {value!r} has non-finite or non-numeric value "
            f"{plain_value(evaluation[value].iloc[row])!r} at row {plain_value(evaluation.index[row])!r}"
        )
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1), got {interval}")
    if num_boot < 100:
        raise ValueError(f"num_boot={num_boot} is too few replicates for an interval (use >= 100)")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    return attributes


def _levels(column: pd.Series) -> list:
    """Subgroup levels in display order: categorical order if any, else sorted."""
    present = column.dropna().unique()
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [level for level in column.cat.categories if level in set(present)]
    try:
        return sorted(present)
    except TypeError:
        return sorted(present, key=str)


def cluster_bootstrap_group_means(
    cell_sums: np.ndarray,
    cell_counts: np.ndarray,
    num_boot: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster bootstrap replicates of group means and of the overall mean, vectorised.

    Clusters (annotators) are resampled with replacement, all together; a replicate's group
    mean pools the pairs of every resampled cluster in that group, so a cluster may contribute
    to several groups (an annotator's pairs of several conversation types). A replicate in
    which no resampled cluster has a pair of some group gives NaN for that group;
    :func:`subgroup_margins` then computes the group's interval over the replicates that
    observe it (conditional on the group being observed).

    Args:
        cell_sums: ``(C, G)`` sum of the values of cluster ``c`` in group ``g``.
        cell_counts: ``(C, G)`` number of those values.
        num_boot: replicates ``B``.
        rng: NumPy random generator.

    Returns:
        ``(B, G)`` replicate group means and ``(B,)`` replicate overall means.
    """
    num_clusters, num_groups = cell_sums.shape
    group_means = np.empty((num_boot, num_groups))
    overall = np.empty(num_boot)
    chunk = max(1, _CHUNK_ELEMENTS // num_clusters)
    uniform = np.full(num_clusters, 1.0 / num_clusters)
    for start in range(0, num_boot, chunk):
        stop = min(num_boot, start + chunk)
        multiplicity = rng.multinomial(num_clusters, uniform, size=stop - start).astype(float)
        sums, counts = multiplicity @ cell_sums, multiplicity @ cell_counts
        with np.errstate(invalid="ignore", divide="ignore"):
            group_means[start:stop] = sums / counts
        overall[start:stop] = sums.sum(axis=1) / counts.sum(axis=1)
    return group_means, overall


def _cluster_cells(
    frame: pd.DataFrame, value: str, group_codes: np.ndarray, num_groups: int, cluster: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(C, G)`` sums and counts of the values of each cluster in each group."""
    keys = frame[cluster].to_numpy()
    missing = pd.isna(keys)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ValueError(
            f"cluster column {cluster!r} is missing at row {plain_value(frame.index[row])!r}"
        )
    cluster_codes = pd.factorize(keys)[0]
    shape = (int(cluster_codes.max()) + 1, num_groups)
    values = frame[value].to_numpy(dtype=np.float64)
    sums = np.zeros(shape)
    counts = np.zeros(shape)
    np.add.at(sums, (cluster_codes, group_codes), values)
    np.add.at(counts, (cluster_codes, group_codes), 1.0)
    return sums, counts


@dataclass(frozen=True)
class _AttributeReplicates:
    """Point estimates and bootstrap replicates of one method on one subgroup attribute."""

    levels: list
    counts: np.ndarray  # (G,) pairs per subgroup
    means: np.ndarray  # (G,)
    stds: np.ndarray  # (G,)
    group_replicates: np.ndarray  # (B, G)
    micro: float
    macro: float
    micro_replicates: np.ndarray  # (B,)
    num_missing: int


def _attribute_replicates(
    frame: pd.DataFrame,
    value: str,
    attribute: str,
    levels: list,
    cluster: str | None,
    num_boot: int,
    rng: np.random.Generator,
    context: str,
) -> _AttributeReplicates:
    known = frame[attribute].notna().to_numpy()
    kept = frame.loc[known]
    codes = pd.Categorical(kept[attribute], categories=levels).codes.astype(np.int64)
    present = np.bincount(codes, minlength=len(levels)) > 0
    if not present.all():
        absent = [levels[i] for i in np.flatnonzero(~present)]
        raise ValueError(f"subgroup(s) {absent} of {attribute!r} have no pair for this method")
    values = kept[value].to_numpy(dtype=np.float64)
    point = micro_macro_margins(values, kept[attribute], levels=levels)
    counts = np.array(list(point["counts"].values()))
    means = np.array(list(point["by_group"].values()))
    stds = pd.Series(values).groupby(codes).std(ddof=1).fillna(0.0).to_numpy()
    if cluster is None:
        group_replicates = bootstrap_group_means(
            values, np.ones_like(values), codes, len(levels), num_boot, rng
        )
        micro_replicates = bootstrap_group_means(
            values, np.ones_like(values), np.zeros_like(codes), 1, num_boot, rng
        )[:, 0]
    else:
        sums, cell_counts = _cluster_cells(kept, value, codes, len(levels), cluster)
        single = np.flatnonzero((cell_counts > 0).sum(axis=0) == 1)
        if single.size:
            # every replicate that observes such a group has the same mean: a zero-width
            # interval that says nothing about the variation between annotators
            warnings.warn(
                f"{context}: subgroup(s) {[plain_value(levels[g]) for g in single]} have pairs of a "
                f"single {cluster!r} cluster; their cluster-bootstrap intervals have zero width",
                SparseBootstrapWarning,
                stacklevel=4,
            )
        group_replicates, micro_replicates = cluster_bootstrap_group_means(
            sums, cell_counts, num_boot, rng
        )
    return _AttributeReplicates(
        levels=levels,
        counts=counts,
        means=means,
        stds=stds,
        group_replicates=group_replicates,
        micro=point["micro"],
        macro=point["macro"],
        micro_replicates=micro_replicates,
        num_missing=int((~known).sum()),
    )


@dataclass(frozen=True)
class SubgroupMargins:
    """Subgroup margins of one or several methods.

    Attributes:
        subgroups: one row per (method, attribute, subgroup): ``method``, ``attribute``,
            ``subgroup``, ``n`` (pairs), ``mean``, ``std`` (sample standard deviation of the
            margins; 0 for a subgroup of one pair), ``ci_low``, ``ci_high``, ``small``
            (``n < min_count``), ``replicates_used`` (bootstrap replicates that observe the
            subgroup, over which its interval is taken) and ``replicates_missing``
            (``num_boot - replicates_used``: cluster replicates without the subgroup; always 0
            without ``cluster``).
        overall: one row per (method, attribute, kind) with kind ``"micro"`` or ``"macro"``:
            ``method``, ``attribute``, ``kind``, ``n`` (pairs with a known attribute),
            ``num_subgroups``, ``n_missing``, ``mean``, ``ci_low``, ``ci_high``,
            ``replicates_used``, ``replicates_missing`` (for the macro average: replicates that
            observe every subgroup, and those that miss at least one).
        value: the margin column summarised.
        interval: interval level (0.95 = 95 %; formerly ``confidence``).
        num_boot: bootstrap replicates.
        min_count: subgroups with fewer pairs are flagged ``small``.
    """

    subgroups: pd.DataFrame
    overall: pd.DataFrame
    value: str
    interval: float
    num_boot: int
    min_count: int

    confidence = renamed_attribute("interval")


def _method_frames(evaluation: pd.DataFrame, method: str | None) -> list[tuple[str, pd.DataFrame]]:
    if method is None:
        return [("all", evaluation)]
    if evaluation[method].isna().any():
        row = int(np.flatnonzero(evaluation[method].isna())[0])
        raise ValueError(
            f"method column {method!r} is missing at row {plain_value(evaluation.index[row])!r}"
        )
    return [(str(name), frame) for name, frame in evaluation.groupby(method, sort=True)]


@deprecated_keywords(confidence="interval")
def subgroup_margins(
    evaluation: pd.DataFrame,
    by: str | Sequence[str],
    *,
    value: str = "margin",
    method: str | None = "method",
    cluster: str | None = None,
    num_boot: int = 2000,
    interval: float = 0.95,
    min_count: int = 30,
    seed: int | np.random.Generator | None = 0,
) -> SubgroupMargins:
    """Mean margin per subgroup with micro and macro averages and bootstrap intervals.

    Args:
        evaluation: per-pair table with the ``value`` column and the ``by`` columns.
        by: subgroup column(s), each summarised on its own (``["age", "education"]``).
        value: margin column (nats).
        method: column naming the evaluated policy; ``None`` or absent = one method ``"all"``.
        cluster: column whose clusters (annotators) are resampled as wholes; None = pairs.
        num_boot: bootstrap replicates.
        interval: interval level (formerly ``confidence``).
        min_count: subgroups with fewer pairs are flagged ``small``.
        seed: seed or generator of the bootstrap.

    Returns:
        :class:`SubgroupMargins`.

    Warns:
        SparseBootstrapWarning: with ``cluster``, when a subgroup (or, for the macro average,
            any subgroup) is observed in fewer than :data:`MIN_REPLICATES` replicates (that
            interval is NaN), or has a single cluster (zero-width interval).
    """
    if method is not None and method not in evaluation.columns:
        method = None
    attributes = _check_common(
        evaluation, by, value, [method, cluster], num_boot, interval, min_count
    )
    rng = np.random.default_rng(seed)
    subgroup_rows, overall_rows = [], []
    for method_name, frame in _method_frames(evaluation, method):
        for attribute in attributes:
            levels = _levels(frame[attribute])
            if not levels:
                raise ValueError(f"column {attribute!r} has no known subgroup for {method_name!r}")
            context = f"method {method_name!r}, attribute {attribute!r}"
            rep = _attribute_replicates(
                frame, value, attribute, levels, cluster, num_boot, rng, context
            )
            low, high, used = _observed_intervals(rep.group_replicates, interval, levels, context)
            for i, level in enumerate(levels):
                subgroup_rows.append(
                    {
                        "method": method_name,
                        "attribute": attribute,
                        "subgroup": level,
                        "n": int(rep.counts[i]),
                        "mean": rep.means[i],
                        "std": rep.stds[i],
                        "ci_low": low[i],
                        "ci_high": high[i],
                        "small": bool(rep.counts[i] < min_count),
                        "replicates_used": int(used[i]),
                        "replicates_missing": int(num_boot - used[i]),
                    }
                )
            macro_replicates, macro_used = _macro_replicates(
                rep.group_replicates, levels, f"{context}, macro average"
            )
            for kind, estimate, replicates, kind_used in (
                ("micro", rep.micro, rep.micro_replicates, num_boot),
                ("macro", rep.macro, macro_replicates, macro_used),
            ):
                kind_low, kind_high = _interval_or_nan(replicates, interval)
                overall_rows.append(
                    {
                        "method": method_name,
                        "attribute": attribute,
                        "kind": kind,
                        "n": int(rep.counts.sum()),
                        "num_subgroups": len(levels),
                        "n_missing": rep.num_missing,
                        "mean": estimate,
                        "ci_low": kind_low,
                        "ci_high": kind_high,
                        "replicates_used": kind_used,
                        "replicates_missing": num_boot - kind_used,
                    }
                )
    return SubgroupMargins(
        subgroups=pd.DataFrame(subgroup_rows),
        overall=pd.DataFrame(overall_rows),
        value=value,
        interval=interval,
        num_boot=num_boot,
        min_count=min_count,
    )


@dataclass(frozen=True)
class SubgroupGains:
    """Gains of methods over a baseline: mean margin of the method minus the baseline's.

    Attributes:
        subgroups: one row per (method, attribute, subgroup): ``method``, ``baseline``,
            ``attribute``, ``subgroup``, ``n`` (pairs of the method), ``n_baseline``, ``gain``,
            ``ci_low``, ``ci_high``, ``significant`` (the interval excludes 0; False for a NaN
            interval), ``small`` (fewer than ``min_count`` pairs in either arm),
            ``replicates_used`` and ``replicates_missing`` (as in :class:`SubgroupMargins`;
            unpaired, a replicate counts when both arms observe the subgroup).
        overall: one row per (method, attribute, kind) with kind ``"micro"``/``"macro"``:
            the same columns with ``n`` and ``n_baseline`` summed over subgroups.
        paired: whether the gains were computed on matched pairs (``pair_id`` given).
        interval, num_boot, min_count: as in :class:`SubgroupMargins`.
    """

    subgroups: pd.DataFrame
    overall: pd.DataFrame
    paired: bool
    interval: float
    num_boot: int
    min_count: int

    confidence = renamed_attribute("interval")


def _paired_differences(
    evaluation: pd.DataFrame, value: str, method: str, baseline: str, other: str, pair_id: str
) -> pd.DataFrame:
    subset = evaluation.loc[evaluation[method].astype(str).isin([baseline, other])]
    duplicated = subset.duplicated([pair_id, method])
    if duplicated.any():
        row = subset.loc[duplicated].iloc[0]
        raise ValueError(
            f"pair {row[pair_id]!r} is evaluated more than once by method {row[method]!r}"
        )
    arms = {
        name: frame.set_index(pair_id) for name, frame in subset.groupby(subset[method].astype(str))
    }
    base, treated = arms[baseline], arms[other]
    unmatched = base.index.symmetric_difference(treated.index)
    if len(unmatched):
        raise ValueError(
            f"{len(unmatched)} pair(s) evaluated by only one of {baseline!r} and {other!r} "
            f"(first: {unmatched[0]!r}); paired gains need every pair in both arms"
        )
    differences = treated.drop(columns=[method]).copy()
    differences[value] = treated[value] - base.loc[treated.index, value]
    return differences.reset_index()


@deprecated_keywords(confidence="interval")
def subgroup_gains(
    evaluation: pd.DataFrame,
    by: str | Sequence[str],
    *,
    baseline: str,
    methods: Sequence[str] | None = None,
    value: str = "margin",
    method: str = "method",
    pair_id: str | None = None,
    cluster: str | None = None,
    num_boot: int = 2000,
    interval: float = 0.95,
    min_count: int = 30,
    seed: int | np.random.Generator | None = 0,
) -> SubgroupGains:
    """Margin gain of each method over ``baseline`` per subgroup, micro and macro, with CIs.

    With ``pair_id`` the same held-out pairs were scored by both methods: the gain is the mean of
    the per-pair differences and the bootstrap resamples pairs (or clusters) jointly, which is
    much tighter than comparing two independent means. Without it the two arms are resampled
    independently and the gain is the difference of their means.

    Args:
        evaluation: per-pair table with ``value``, ``method`` and the ``by`` columns.
        by: subgroup column(s); a context such as ``conversation_type`` is one more column.
        baseline: name of the reference method (``"dpo"``).
        methods: methods compared to the baseline (default: every other method).
        value, cluster, num_boot, interval, min_count, seed: as in :func:`subgroup_margins`.
        method: column naming the method.
        pair_id: column identifying a held-out pair across methods, for paired gains.

    Returns:
        :class:`SubgroupGains`.

    Warns:
        SparseBootstrapWarning: as in :func:`subgroup_margins`.
    """
    attributes = _check_common(
        evaluation, by, value, [method, pair_id, cluster], num_boot, interval, min_count
    )
    names = sorted(evaluation[method].dropna().astype(str).unique())
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not a value of column {method!r}: {names}")
    others = [m for m in names if m != baseline] if methods is None else list(methods)
    unknown = [m for m in others if m not in names or m == baseline]
    if unknown or not others:
        raise ValueError(
            f"methods {unknown or others} must be values of {method!r} other than {baseline!r}"
        )
    rng = np.random.default_rng(seed)
    subgroup_rows, overall_rows = [], []
    arms = {name: frame for name, frame in evaluation.groupby(evaluation[method].astype(str))}
    for other in others:
        if pair_id is not None:
            differences = _paired_differences(evaluation, value, method, baseline, other, pair_id)
        for attribute in attributes:
            levels = _levels(
                pd.concat([arms[other][attribute], arms[baseline][attribute]], ignore_index=True)
            )
            context = f"method {other!r} over {baseline!r}, attribute {attribute!r}"
            if pair_id is not None:
                rep = _attribute_replicates(
                    differences, value, attribute, levels, cluster, num_boot, rng, context
                )
                estimates, replicates = rep.means, rep.group_replicates
                micro, micro_replicates = rep.micro, rep.micro_replicates
                counts = counts_base = rep.counts
            else:
                treated = _attribute_replicates(
                    arms[other], value, attribute, levels, cluster, num_boot, rng, context
                )
                base = _attribute_replicates(
                    arms[baseline], value, attribute, levels, cluster, num_boot, rng, context
                )
                estimates = treated.means - base.means
                replicates = treated.group_replicates - base.group_replicates
                micro = treated.micro - base.micro
                micro_replicates = treated.micro_replicates - base.micro_replicates
                counts, counts_base = treated.counts, base.counts
            # unpaired: NaN where either arm's replicate misses the subgroup
            low, high, used = _observed_intervals(replicates, interval, levels, context)
            for i, level in enumerate(levels):
                subgroup_rows.append(
                    {
                        "method": other,
                        "baseline": baseline,
                        "attribute": attribute,
                        "subgroup": level,
                        "n": int(counts[i]),
                        "n_baseline": int(counts_base[i]),
                        "gain": estimates[i],
                        "ci_low": low[i],
                        "ci_high": high[i],
                        "significant": bool(low[i] > 0 or high[i] < 0),
                        "small": bool(min(counts[i], counts_base[i]) < min_count),
                        "replicates_used": int(used[i]),
                        "replicates_missing": int(num_boot - used[i]),
                    }
                )
            macro_replicates, macro_used = _macro_replicates(
                replicates, levels, f"{context}, macro average"
            )
            for kind, estimate, kind_replicates, kind_used in (
                ("micro", micro, micro_replicates, num_boot),
                ("macro", float(estimates.mean()), macro_replicates, macro_used),
            ):
                kind_low, kind_high = _interval_or_nan(kind_replicates, interval)
                overall_rows.append(
                    {
                        "method": other,
                        "baseline": baseline,
                        "attribute": attribute,
                        "kind": kind,
                        "n": int(counts.sum()),
                        "n_baseline": int(counts_base.sum()),
                        "gain": float(estimate),
                        "ci_low": kind_low,
                        "ci_high": kind_high,
                        "significant": bool(kind_low > 0 or kind_high < 0),
                        "replicates_used": kind_used,
                        "replicates_missing": num_boot - kind_used,
                    }
                )
    return SubgroupGains(
        subgroups=pd.DataFrame(subgroup_rows),
        overall=pd.DataFrame(overall_rows),
        paired=pair_id is not None,
        interval=interval,
        num_boot=num_boot,
        min_count=min_count,
    )
