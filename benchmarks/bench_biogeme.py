"""mixlogit side by side with Biogeme 3.3.2 on Biogeme's Swissmetro examples (issue 16).

For each model this fits mixlogit here (imports outside the clock), runs the Biogeme half
(:mod:`benchmarks.biogeme_side`) with the Biogeme environment's python in a subprocess, and
compares the two: the absolute difference of the final log-likelihoods, the largest difference
of an estimate in units of its (robust) standard error, the largest relative differences of the
classical and robust standard errors, the elasticities, and the ratio of the wall times
(mixlogit / Biogeme; each from specifying the fit to having the results, compilation included).

* ``b01logit``: Biogeme's MNL b01logit on the same 6,768 situations (``swissmetro_choice_data``,
  no panel: both libraries' robust covariance is then the sandwich over situations).
* ``b01logit_elasticities``: b01logit's point and aggregate elasticities of the choice
  probabilities with respect to time and cost of each alternative, direct and cross
  (``results.elasticities`` against Biogeme's ``Derive(P, x) * x / P`` simulated at its
  estimates).
* ``b09nested``: Biogeme's nested logit b09nested (train and car in nest "existing", MU in
  [1, 10]) against ``NestedLogit(..., nests={"existing": [1, 3]})`` with ``lambda.existing`` in
  [0.1, 1]. mixlogit's ``lambda`` is Biogeme's ``1 / MU``: Biogeme's MU is compared in
  mixlogit's units, ``1 / MU`` with standard errors ``SE(MU) / MU^2`` (delta method).
* ``b11cnl``: Biogeme's cross-nested logit b11cnl (train in "existing" with car and in
  "future" with Swissmetro, allocations ALPHA_EXISTING and 1 - ALPHA_EXISTING) against
  ``CrossNestedLogit`` (``alpha.1.existing``), the MUs as for b09nested.
* ``latent_class``: a two-class latent-class MNL by person (class-specific constants, time
  and cost coefficients, a constant class share) against ``LatentClassLogit(...,
  num_classes=2, order_by="time").fit(data, method="ml")``. Biogeme's classes are renumbered by
  increasing time coefficient as mixlogit's (its share's sign flipped when they swap). The
  first row has each library's default start (mixlogit: its 5 starts; Biogeme: every
  parameter 0), the second Biogeme from mixlogit's estimates.
* ``b12panel``: Biogeme's error-components panel mixed logit (normal ASCs of train,
  Swissmetro and car with the Swissmetro mean fixed at 0, a normal time coefficient, a fixed
  cost coefficient; by person). mixlogit's Halton draws (``standardised_draws``, skip 100, the
  persons in ``data.panel_ids`` order, which is Biogeme's sorted-ID order of its panel rows)
  are saved to a ``.npy`` and handed to Biogeme's user-defined random number generators, so
  both maximise the same simulated likelihood; both start from Biogeme's example values
  (means 0, spreads 1). Rows: that start on both sides; Biogeme from mixlogit's estimates;
  mixlogit with ``num_starts=10, start_seed=0`` (the same start, then 9 perturbations of it)
  against Biogeme's first run.
* ``mixing_covariates``: heterogeneity in means and variances (issue 16): a normal time
  coefficient with mean shifted by ``MALE`` and ``FIRST`` and spread scaled by
  ``exp(gamma MALE)``, a negative lognormal cost whose log-location moves with ``FIRST``
  (``MixedLogit(..., mean_covariates=..., sd_covariates=...)``), by person, against the same
  model written in Biogeme's utilities; identical Halton draws as for b12panel, both from the
  stated start :data:`COVARIATE_START`, then Biogeme from mixlogit's estimates.

Targets: ``|LL difference|`` 1e-4 (closed-form likelihoods) and 1e-6 (identical draws),
estimates 0.01 SE, robust standard errors 1% relative. The Markdown's "Findings" are written
from the numbers (:func:`findings`).

Run from the repository root: ``python -m benchmarks.bench_biogeme`` (``--biogeme-python``,
``--models``, ``--num-draws``). Prints Markdown tables and writes
``benchmarks/results/biogeme.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._report import git_output, markdown_table, save_report
from benchmarks.biogeme_side import MODELS

ROOT = Path(__file__).resolve().parents[1]
BIOGEME_PYTHON = "/work/envs/biogeme/bin/python"
#: The simulated likelihoods (the same draws handed to both libraries).
SIMULATED = ("b12panel", "mixing_covariates")
TARGETS = {
    "loglik_mnl": 1e-4,
    "loglik_same_draws": 1e-6,
    "estimate_over_se": 0.01,
    "robust_se_relative": 0.01,
}
#: Biogeme's parameter names -> mixlogit's (alternatives 1 train, 2 Swissmetro, 3 car).
MNL_NAMES = {"ASC_TRAIN": "ASC_1", "ASC_CAR": "ASC_3", "B_TIME": "time", "B_COST": "cost"}
PANEL_NAMES = {
    **MNL_NAMES,
    "ASC_TRAIN_S": "sd.ASC_1",
    "ASC_SM_S": "sd.ASC_2",
    "ASC_CAR_S": "sd.ASC_3",
    "B_TIME_S": "sd.time",
}
NESTED_NAMES = {**MNL_NAMES, "MU": "lambda.existing"}
CNL_NAMES = {
    **MNL_NAMES,
    "MU_EXISTING": "lambda.existing",
    "MU_FUTURE": "lambda.future",
    "ALPHA_EXISTING": "alpha.1.existing",
}
#: The latent-class parameters with mixlogit's classes labelled 1 and 2 (its labels are read
#: from the fit: :func:`latent_names`).
LATENT_NAMES = {
    **{f"{b}_CLASS{c}": f"{m}.class{c}" for c in (1, 2) for b, m in MNL_NAMES.items()},
    "SHARE_CLASS2": "share.class2",
}
COVARIATE_NAMES = {
    "ASC_TRAIN": "ASC_1",
    "ASC_CAR": "ASC_3",
    "B_TIME": "time",
    "L_COST": "cost",
    "B_TIME_S": "sd.time",
    "L_COST_S": "sd.cost",
    "B_TIME_MALE": "time:MALE",
    "B_TIME_FIRST": "time:FIRST",
    "L_COST_FIRST": "cost:FIRST",
    "G_TIME_MALE": "ln_sd.time:MALE",
}
NAMES = {
    "mixing_covariates": COVARIATE_NAMES,
    "b01logit": MNL_NAMES,
    "b01logit_elasticities": MNL_NAMES,
    "b09nested": NESTED_NAMES,
    "b11cnl": CNL_NAMES,
    "latent_class": LATENT_NAMES,
    "b12panel": PANEL_NAMES,
}
#: Biogeme's nest parameters MU, compared as mixlogit's ``lambda = 1 / MU``.
MU_PARAMETERS = ("MU", "MU_EXISTING", "MU_FUTURE")
#: The draw columns of the Biogeme side (``biogeme_side.DRAW_COLUMNS``) as mixlogit's random
#: coefficients.
DRAW_COLUMNS = {"ASC_TRAIN": "ASC_1", "ASC_SM": "ASC_2", "ASC_CAR": "ASC_3", "B_TIME": "time"}
#: Alternatives as the Biogeme side names them.
ALTERNATIVE_NAMES = {1: "TRAIN", 2: "SM", 3: "CAR"}


#: ``(models the note is about, the note)``; a report keeps those of the models it ran.
NOTES = [
    (
        MODELS,
        "Biogeme's wall time includes its per-observation BHHH matrix for the robust standard "
        "errors, which Biogeme 3.3.2 builds by stacking one JAX gradient per row of the database "
        "(6,768 situations for b01logit, 752 persons for b12panel); compiling that stack is most "
        "of its time (about 150 s of b01logit's under cProfile). Its own 'Optimization time' is "
        "the column 'Biogeme optimisation s'.",
    ),
    (
        ("b01logit_elasticities",),
        "Elasticities: mixlogit leaves a point elasticity undefined (NaN) where the changed or "
        "the responding alternative is unavailable; Biogeme's Derive gives NaN only where the "
        "responding one is (probability 0) and exactly 0 for a cross elasticity with respect to "
        "an unavailable alternative's attribute ('defined on one side only'; all those Biogeme "
        "values are 0). Point differences are over the entries defined on both sides.",
    ),
    (
        ("b09nested", "b11cnl"),
        "b09nested, b11cnl: Biogeme's nest parameters MU (in [1, 10]) are shown and compared as "
        "mixlogit's lambda = 1 / MU (in [0.1, 1]), with standard errors SE(MU) / MU^2 (delta "
        "method; the relative standard error is the same in both units). Biogeme's cross-nested "
        "logit raises each allocation to the power MU_m, (alpha_jm exp(V_j))^MU_m, as mixlogit's.",
    ),
    (
        ("latent_class",),
        "latent_class: not a Biogeme example (its discrete-mixture examples have draws inside "
        "the classes); the Biogeme side writes log(sum_c pi_c PanelLikelihoodTrajectory(P_c)) with "
        "pi_2 = 1 / (1 + exp(-SHARE_CLASS2)). Default starts: mixlogit's own (5 starts, the "
        "first its default), Biogeme every parameter 0, where the two classes are identical.",
    ),
    (
        ("b12panel",),
        "b12panel: mixlogit's Halton draws (skip 100, primes 2, 3, 5, 7 in its column order ASC_1, "
        "ASC_2, ASC_3, time), reordered by name to Biogeme's columns, are Biogeme's draws "
        "through its user-defined random number generators; persons in increasing ID order on "
        "both sides. Both fits start from Biogeme's example values (means 0, spreads 1). The "
        "row 'mixlogit 10 starts' is fit(..., num_starts=10, start_seed=0): start 1 is that same "
        "start, starts 2 to 10 random perturbations of it; it is compared with Biogeme's first run.",
    ),
    (
        ("mixing_covariates",),
        "mixing_covariates: mixlogit's Halton draws (skip 100, primes 2, 3 in its column order "
        "time, cost) are Biogeme's draws, persons in increasing ID order. Both fits start from "
        "the same stated point (ASCs and shifts 0, time -1 with spread 0.5, log cost 0 with "
        "spread 0.5). The row 'mixlogit from Biogeme's estimates' restarts mixlogit at "
        "Biogeme's optimum: when it stays there, that point is a maximum of the same simulated "
        "likelihood, and the first row's gap is which local maximum each optimiser's path "
        "reached, not a difference of likelihoods.",
    ),
]


# ---------------------------------------------------------------------- comparison helpers
def loglik_difference(a: float, b: float) -> float:
    """``|a - b|``."""
    return abs(float(a) - float(b))


def max_scaled_difference(
    a: Mapping[str, float], b: Mapping[str, float], scale: Mapping[str, float]
) -> tuple[float, str]:
    """The largest ``|a[k] - b[k]| / scale[k]`` over the keys of ``b`` and the key reaching it.

    Raises:
        KeyError: a key of ``b`` missing from ``a`` or ``scale``.
    """
    ratios = {k: abs(a[k] - b[k]) / abs(scale[k]) for k in b}
    worst = max(ratios, key=ratios.__getitem__)
    return float(ratios[worst]), worst


def max_relative_difference(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[float, str]:
    """The largest ``|a[k] - b[k]| / |b[k]|`` over the keys of ``b`` (``b`` the reference)."""
    return max_scaled_difference(a, b, b)


def renamed(values: Mapping[str, float], names: Mapping[str, str]) -> dict[str, float]:
    """``values`` keyed by ``names[key]`` (Biogeme's names to mixlogit's)."""
    return {names[k]: float(v) for k, v in values.items()}


def compare_fits(mixlogit: Mapping[str, Any], biogeme: Mapping[str, Any], names: Mapping[str, str]):
    """The differences of two fits' summaries (``loglik``, ``estimates``, ``std_errors``,
    ``robust_std_errors``, ``wall_seconds``), Biogeme's keys mapped to mixlogit's by
    ``names``: ``loglik_abs_diff``, ``max_estimate_diff_over_se`` (robust SE of Biogeme) and
    its parameter, ``max_rel_diff_se`` / ``max_rel_diff_robust_se`` and theirs, and
    ``time_ratio`` (mixlogit / Biogeme)."""
    estimates = renamed(biogeme["estimates"], names)
    classical = renamed(biogeme["std_errors"], names)
    robust = renamed(biogeme["robust_std_errors"], names)
    shift, shift_at = max_scaled_difference(mixlogit["estimates"], estimates, robust)
    se, se_at = max_relative_difference(mixlogit["std_errors"], classical)
    rse, rse_at = max_relative_difference(mixlogit["robust_std_errors"], robust)
    return {
        "loglik_abs_diff": loglik_difference(mixlogit["loglik"], biogeme["loglik"]),
        "max_estimate_diff_over_se": shift,
        "max_estimate_diff_at": shift_at,
        "max_rel_diff_se": se,
        "max_rel_diff_se_at": se_at,
        "max_rel_diff_robust_se": rse,
        "max_rel_diff_robust_se_at": rse_at,
        "time_ratio": mixlogit["wall_seconds"] / biogeme["wall_seconds"],
    }


def mu_as_lambda(fit: Mapping[str, Any], parameters: Sequence[str] = MU_PARAMETERS) -> dict:
    """``fit`` (the Biogeme side's summary) with each nest parameter ``MU`` of ``parameters``
    that it has replaced by mixlogit's ``lambda = 1 / MU`` and its standard errors by the delta
    method's ``SE(MU) / MU^2``; the other entries unchanged."""
    out = dict(fit)
    for key in ("estimates", "std_errors", "robust_std_errors"):
        out[key] = dict(fit[key])
    for name in parameters:
        if name not in fit["estimates"]:
            continue
        mu = float(fit["estimates"][name])
        out["estimates"][name] = 1.0 / mu
        for key in ("std_errors", "robust_std_errors"):
            out[key][name] = float(fit[key][name]) / mu**2
    return out


def order_classes(fit: Mapping[str, Any], order_by: str = "B_TIME") -> tuple[dict, bool]:
    """``fit`` (a two-class latent-class summary, names ``<name>_CLASS1/2`` and
    ``SHARE_CLASS2``, the log odds of class 2) with the classes numbered by increasing
    ``order_by`` coefficient, as mixlogit numbers them, and whether they were swapped (the
    share's estimate then changes sign; standard errors are unchanged)."""
    first, second = fit["estimates"][f"{order_by}_CLASS1"], fit["estimates"][f"{order_by}_CLASS2"]
    if first <= second:
        return dict(fit), False
    swap = {"_CLASS1": "_CLASS2", "_CLASS2": "_CLASS1"}

    def renumbered(values: Mapping[str, float]) -> dict[str, float]:
        out = {}
        for name, value in values.items():
            tail = name[-len("_CLASS1") :]
            renamed = tail in swap and name != "SHARE_CLASS2"
            out[name[: -len(tail)] + swap[tail] if renamed else name] = value
        return out

    out = dict(fit)
    for key in ("estimates", "std_errors", "robust_std_errors"):
        out[key] = renumbered(fit[key])
    out["estimates"]["SHARE_CLASS2"] = -float(fit["estimates"]["SHARE_CLASS2"])
    return out, True


def in_mixlogit_units(model: str, fit: Mapping[str, Any]) -> dict:
    """The Biogeme side's summary of ``model`` as mixlogit parametrises it: nest parameters
    as ``1 / MU`` (b09nested, b11cnl), latent classes renumbered by increasing time
    coefficient (``classes_swapped`` added); other models unchanged."""
    if model in ("b09nested", "b11cnl"):
        return mu_as_lambda(fit)
    if model == "latent_class":
        ordered, swapped = order_classes(fit)
        return {**ordered, "classes_swapped": swapped}
    return dict(fit)


def latent_names(names: Sequence[str]) -> dict[str, str]:
    """Biogeme's two-class names -> mixlogit's, mixlogit's class labels read from its parameter
    names (``<variable>.<label>`` class-major, then ``share.<label>`` of the second class):
    its first class is Biogeme's ``_CLASS1``, its second ``_CLASS2``.

    Raises:
        ValueError: not two classes with every variable of :data:`MNL_NAMES`.
    """
    labels: list[str] = []
    for name in names:
        variable, _, label = name.rpartition(".")
        if variable in MNL_NAMES.values() and label not in labels:
            labels.append(label)
    out = {
        f"{b}_CLASS{k + 1}": f"{m}.{label}"
        for k, label in enumerate(labels)
        for b, m in MNL_NAMES.items()
    }
    out["SHARE_CLASS2"] = f"share.{labels[-1]}" if labels else ""
    if len(labels) != 2 or not set(out.values()) <= set(names):
        raise ValueError(
            f"not a two-class latent-class logit of {list(MNL_NAMES.values())}: {names}"
        )
    return out


def loglik_target(model: str) -> tuple[str, float]:
    """The log-likelihood target of ``model``: ``loglik_same_draws`` for the simulated b12panel,
    ``loglik_mnl`` for the closed-form likelihoods."""
    key = "loglik_same_draws" if model in SIMULATED else "loglik_mnl"
    return key, TARGETS[key]


def verdicts(model: str, comparison: Mapping[str, Any]) -> dict[str, bool]:
    """Whether a comparison meets each target: ``loglik``, ``estimates``, ``robust_se``."""
    return {
        "loglik": comparison["loglik_abs_diff"] <= loglik_target(model)[1],
        "estimates": comparison["max_estimate_diff_over_se"] <= TARGETS["estimate_over_se"],
        "robust_se": comparison["max_rel_diff_robust_se"] <= TARGETS["robust_se_relative"],
    }


def relative_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a - b| / |b|`` where both are finite (``b`` the reference), flattened."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(a[keep] - b[keep]) / np.abs(b[keep])


def max_relative_elasticity_difference(
    a: np.ndarray, b: np.ndarray, *, floor: float = 1e-12
) -> float:
    """The largest relative difference of two elasticity arrays where both are defined, with
    entries whose reference is below ``floor`` in size (exact zeros: a cost of 0 for GA
    holders) compared absolutely instead."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    if not keep.any():
        raise ValueError("no entry is defined in both arrays")
    a, b = a[keep], b[keep]
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), floor)))


# ---------------------------------------------------------------------- the two sides
def run_biogeme(
    python: str,
    model: str,
    out: Path,
    draws_file: Path | None = None,
    start: Mapping[str, float] | None = None,
) -> dict:
    """Run :mod:`benchmarks.biogeme_side` with Biogeme's python (optionally from ``start``,
    Biogeme's names); its JSON."""
    command = [python, str(ROOT / "benchmarks" / "biogeme_side.py"), "--model", model]
    command += ["--out", str(out)]
    if draws_file is not None:
        command += ["--draws-file", str(draws_file)]
    if start is not None:
        start_file = out.with_suffix(".start.json")
        start_file.write_text(json.dumps(dict(start)))
        command += ["--start-json", str(start_file)]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=out.parent)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    print(f"  biogeme: {done.stdout.strip()} (process {time.perf_counter() - began:.0f} s)")
    return json.loads(out.read_text())


def summary(results, wall: float) -> dict:
    """A mixlogit fit as the Biogeme side writes one (fixed parameters left out)."""
    fixed = results.fixed_parameters or {}
    keep = [k for k, name in enumerate(results.names) if name not in fixed]
    pick = lambda values: {results.names[k]: float(values[k]) for k in keep}  # noqa: E731
    return {
        "loglik": float(results.loglik),
        "estimates": pick(results.params),
        "std_errors": pick(results.std_errors),
        "robust_std_errors": pick(results.robust_std_errors),
        "wall_seconds": wall,
        "converged": bool(results.converged),
        "iterations": getattr(results, "iterations", None),
        "start_logliks": [float(s["loglik"]) for s in results.starts or []],
    }


def fit_nested(model_name: str):
    """mixlogit's b09nested (``NestedLogit``) or b11cnl (``CrossNestedLogit``), each lambda in
    [0.1, 1] as Biogeme's MU in [1, 10]."""
    from mixlogit import CrossNestedLogit, NestedLogit
    from mixlogit.datasets import swissmetro_choice_data

    data = swissmetro_choice_data()
    variables = list(MNL_NAMES.values())
    if model_name == "b09nested":
        nests = {"existing": [1, 3]}
        model = NestedLogit(variables, nests=nests)
    else:
        nests = {"existing": [1, 3], "future": [1, 2]}
        model = CrossNestedLogit(variables, nests=nests)
    bounds = {f"lambda.{nest}": (0.1, 1.0) for nest in nests}
    began = time.perf_counter()
    results = model.fit(data, bounds=bounds)
    return results, time.perf_counter() - began


def fit_latent_class():
    """mixlogit's two-class latent-class MNL on the panel, its default (5) starts; the
    warnings it gave."""
    from mixlogit import LatentClassLogit
    from mixlogit.datasets import swissmetro_choice_data

    data = swissmetro_choice_data(panel=True)
    model = LatentClassLogit(list(MNL_NAMES.values()), num_classes=2, order_by="time")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        began = time.perf_counter()
        results = model.fit(data, method="ml")
        wall = time.perf_counter() - began
    for w in caught:
        print(f"  mixlogit warning: {w.message}")
    return results, wall, [str(w.message) for w in caught]


def fit_mnl(panel: bool = False):
    from mixlogit import MultinomialLogit
    from mixlogit.datasets import swissmetro_choice_data

    data = swissmetro_choice_data(panel=panel)
    model = MultinomialLogit(list(MNL_NAMES.values()))
    began = time.perf_counter()
    results = model.fit(data)
    return results, time.perf_counter() - began


def mixlogit_elasticities(results) -> tuple[dict, float]:
    """``{variable: {"aggregate": (3, 3), "point": (S, 3, 3)}}`` (changed, responding) and
    the seconds the two calls took."""
    began = time.perf_counter()
    out = {}
    for variable in ("time", "cost"):
        e = results.elasticities(variable)
        out[variable] = {"aggregate": e.aggregate.to_numpy(), "point": np.asarray(e.point)}
        assert list(e.aggregate.index) == [1, 2, 3], e.aggregate.index
        assert list(e.aggregate.columns) == [1, 2, 3], e.aggregate.columns
        assert np.array_equal(e.situation_ids, np.arange(len(e.situation_ids)))
    return out, time.perf_counter() - began


def biogeme_elasticity_arrays(block: Mapping[str, Any], variable: str) -> tuple[np.ndarray, ...]:
    """The Biogeme side's aggregate ``(3, 3)`` and point ``(S, 3, 3)`` elasticities of
    ``variable`` (changed alternative, responding alternative), NaN where undefined."""
    alts = list(ALTERNATIVE_NAMES.values())
    aggregate = np.array([[block["aggregate"][variable][i][j] for j in alts] for i in alts])
    point = np.stack(
        [
            np.stack(
                [
                    np.array(block["point"][variable][i][j], dtype=float)  # None -> nan
                    for j in alts
                ],
                axis=-1,
            )
            for i in alts
        ],
        axis=1,
    )
    return aggregate, point


def _max_abs(values: np.ndarray) -> float | None:
    """The largest finite ``|value|``, or None when there is none."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(np.max(np.abs(finite))) if finite.size else None


def compare_elasticities(mine: Mapping[str, Any], block: Mapping[str, Any]) -> dict:
    """Largest relative differences (aggregate direct, aggregate cross, point) per variable,
    the point entries defined on one side only (mixlogit leaves a point elasticity undefined
    where the changed or the responding alternative is unavailable; Biogeme only where the
    responding one is, and gives 0 for the other) and the aggregate tables side by side."""
    out = {}
    direct = np.eye(3, dtype=bool)
    for variable, arrays in mine.items():
        aggregate, point = biogeme_elasticity_arrays(block, variable)
        out[variable] = {
            "aggregate_direct_max_rel_diff": max_relative_elasticity_difference(
                arrays["aggregate"][direct], aggregate[direct]
            ),
            "aggregate_cross_max_rel_diff": max_relative_elasticity_difference(
                arrays["aggregate"][~direct], aggregate[~direct]
            ),
            "point_max_rel_diff": max_relative_elasticity_difference(arrays["point"], point),
            "point_defined_both": int((np.isfinite(arrays["point"]) & np.isfinite(point)).sum()),
            "point_defined_only_one": int(
                (np.isfinite(arrays["point"]) != np.isfinite(point)).sum()
            ),
            "point_only_biogeme_max_abs": _max_abs(point[~np.isfinite(arrays["point"])]),
            "point_only_mixlogit_count": int(
                (np.isfinite(arrays["point"]) & ~np.isfinite(point)).sum()
            ),
            "aggregate_mixlogit": arrays["aggregate"].tolist(),
            "aggregate_biogeme": aggregate.tolist(),
        }
    return out


def panel_model():
    from mixlogit import MixedLogit

    return MixedLogit(
        fixed=["cost"],
        random={name: "normal" for name in DRAW_COLUMNS.values()},
    )


def save_panel_draws(model, data, num_draws: int, path: Path) -> None:
    """mixlogit's standardised Halton draws of ``model`` (as its fit builds them: seed 0, skip
    100) as ``(persons, R, 4)``, persons in ``data.panel_ids`` order, columns reordered by
    name to the Biogeme side's :data:`DRAW_COLUMNS`."""
    from mixlogit.draws import standardised_draws

    standard, _ = standardised_draws(model, len(data.panel_ids), num_draws, "halton", 0)
    order = list(model.random)
    columns = [order.index(name) for name in DRAW_COLUMNS.values()]
    np.save(path, np.ascontiguousarray(standard[:, :, columns]))


def covariate_model():
    from mixlogit import MixedLogit

    return MixedLogit(
        ["ASC_1", "ASC_3"],
        {"time": "normal", "cost": "-lognormal"},
        mean_covariates={"time": ["MALE", "FIRST"], "cost": ["FIRST"]},
        sd_covariates={"time": ["MALE"]},
    )


#: The stated start of ``mixing_covariates`` on both sides (mixlogit's names): ASCs and shifts
#: 0, time -1 (spread 0.5), cost -exp(0) = -1 (log spread 0.5).
COVARIATE_START = {"time": -1.0, "sd.time": 0.5, "cost": 0.0, "sd.cost": 0.5}


def fit_covariates(num_draws: int, draws_path: Path, start: Mapping[str, float] | None = None):
    """mixlogit's fit of :func:`covariate_model` (Halton draws, seed 0, skip 100) from
    :data:`COVARIATE_START` (or ``start``, mixlogit's names); the draws saved to ``draws_path``
    in Biogeme's column order."""
    from mixlogit.datasets import swissmetro_choice_data
    from mixlogit.draws import standardised_draws

    data = swissmetro_choice_data(panel=True, covariates=("MALE", "FIRST"))
    assert np.all(np.diff(data.panel_ids) > 0), "persons are not in increasing ID order"
    model = covariate_model()
    standard, _ = standardised_draws(model, len(data.panel_ids), num_draws, "halton", 0)
    order = list(model.random)  # time, cost: Biogeme's B_TIME, B_COST columns
    np.save(
        draws_path, np.ascontiguousarray(standard[:, :, [order.index("time"), order.index("cost")]])
    )
    began = time.perf_counter()
    init = dict(start) if start is not None else COVARIATE_START
    results = model.fit(data, num_draws=num_draws, draws="halton", seed=0, init=init)
    return results, time.perf_counter() - began


def fit_panel(num_draws: int, draws_path: Path, num_starts: int = 1):
    from mixlogit.datasets import swissmetro_choice_data

    data = swissmetro_choice_data(panel=True)
    assert np.all(np.diff(data.panel_ids) > 0), "persons are not in increasing ID order"
    model = panel_model()
    save_panel_draws(model, data, num_draws, draws_path)
    # Biogeme's example starts: means 0, spreads 1
    init = {name: (1.0 if name.startswith("sd.") else 0.0) for name in PANEL_NAMES.values()}
    init["ASC_2"] = 0.0
    starts = {"num_starts": num_starts, "start_seed": 0} if num_starts > 1 else {}
    began = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = model.fit(
            data,
            num_draws=num_draws,
            draws="halton",
            seed=0,
            init=init,
            fix={"ASC_2": 0.0},
            **starts,
        )
    wall = time.perf_counter() - began
    for w in caught:
        print(f"  mixlogit warning: {w.message}")
    return results, wall


# ---------------------------------------------------------------------- report
def _fmt(value: float, spec: str = ".3g") -> str:
    return f"{value:{spec}}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _fit_pairs(cases: Sequence[Mapping[str, Any]]):
    """``(case, label, mixlogit, biogeme, comparison)`` per row: both default starts, then
    Biogeme from mixlogit's estimates (b12panel, latent_class), then mixlogit's multistart
    against Biogeme's first run (b12panel); Biogeme's fits in mixlogit's units."""
    for case in cases:
        model = case["model"]
        mine = case["mixlogit"]
        yield case, model, mine, in_mixlogit_units(model, case["biogeme"]), case["comparison"]
        if "biogeme_from_mixlogit" in case:
            label = f"{model}, Biogeme from mixlogit's estimates"
            warm = in_mixlogit_units(model, case["biogeme_from_mixlogit"])
            yield case, label, mine, warm, case["comparison_from_mixlogit"]
        if "mixlogit_from_biogeme" in case:
            label = f"{model}, mixlogit from Biogeme's estimates"
            biogeme = in_mixlogit_units(model, case["biogeme"])
            yield (
                case,
                label,
                case["mixlogit_from_biogeme"],
                biogeme,
                case["comparison_mixlogit_from_biogeme"],
            )
        if "mixlogit_multistart" in case:
            multi = case["mixlogit_multistart"]
            label = f"{model}, mixlogit {len(multi['start_logliks'])} starts"
            biogeme = in_mixlogit_units(model, case["biogeme"])
            yield case, label, multi, biogeme, case["comparison_multistart"]


def fit_rows(cases: Sequence[Mapping[str, Any]]) -> list[str]:
    header = (
        "model",
        "draws",
        "LL mixlogit",
        "LL Biogeme",
        "abs LL diff",
        "max abs est diff / SE",
        "max rel diff SE",
        "max rel diff robust SE",
        "mixlogit s",
        "Biogeme s",
        "Biogeme optimisation s",
        "time ratio",
    )
    rows = []
    for case, label, mine, biogeme, c in _fit_pairs(cases):
        rows.append(
            (
                label,
                case["num_draws"] or "-",
                f"{mine['loglik']:.6f}",
                f"{biogeme['loglik']:.6f}",
                _fmt(c["loglik_abs_diff"], ".2e"),
                f"{c['max_estimate_diff_over_se']:.2e} ({c['max_estimate_diff_at']})",
                f"{c['max_rel_diff_se']:.2e} ({c['max_rel_diff_se_at']})",
                f"{c['max_rel_diff_robust_se']:.2e} ({c['max_rel_diff_robust_se_at']})",
                f"{mine['wall_seconds']:.1f}",
                f"{biogeme['wall_seconds']:.1f}",
                _seconds(biogeme.get("optimization_seconds")),
                f"{c['time_ratio']:.3f}",
            )
        )
    return markdown_table(header, rows)


def parameter_rows(case: Mapping[str, Any]) -> list[str]:
    """Estimates, standard errors and robust standard errors side by side (Biogeme's in
    mixlogit's units: ``1 / MU``, classes by increasing time coefficient)."""
    model = case["model"]
    names = case.get("names") or NAMES[model]
    mixlogit_runs = [("", case["mixlogit"])]
    if "mixlogit_from_biogeme" in case:
        mixlogit_runs.append((" (from Biogeme)", case["mixlogit_from_biogeme"]))
    if "mixlogit_multistart" in case:
        multi = case["mixlogit_multistart"]
        mixlogit_runs.append((f" ({len(multi['start_logliks'])} starts)", multi))
    runs = [("", in_mixlogit_units(model, case["biogeme"]))]
    if "biogeme_from_mixlogit" in case:
        runs.append((" (from mixlogit)", in_mixlogit_units(model, case["biogeme_from_mixlogit"])))
    rows = []
    for biogeme_name, name in names.items():
        shown = f"1/{biogeme_name}" if biogeme_name in MU_PARAMETERS else biogeme_name
        row = [f"{name} ({shown})"]
        for key in ("estimates", "std_errors", "robust_std_errors"):
            row += [f"{m[key][name]:.6f}" for _, m in mixlogit_runs]
            row += [f"{b[key][biogeme_name]:.6f}" for _, b in runs]
        rows.append(row)
    header = ["parameter"]
    for title in ("", "SE ", "rob. SE "):
        header += [f"{title}mixlogit{label}" for label, _ in mixlogit_runs]
        header += [f"{title}Biogeme{label}" for label, _ in runs]
    return markdown_table(header, rows)


def _meets(ok: bool) -> str:
    return "meets" if ok else "misses"


def findings(cases: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per row of the fit table, from its numbers: each target met or missed,
    the log-likelihoods where they differ (which library is higher), the starts of the
    multistart fits, and the time ratio."""
    sentences = []
    described: list[Mapping[str, Any]] = []  # mixlogit fits whose starts are already told
    for case, label, mine, biogeme, c in _fit_pairs(cases):
        model = case["model"]
        ok = verdicts(model, c)
        _, target = loglik_target(model)
        text = (
            f"{label}: |LL diff| {c['loglik_abs_diff']:.1e} ({_meets(ok['loglik'])} {target:g}), "
            f"estimates within {c['max_estimate_diff_over_se']:.1e} robust SE "
            f"({_meets(ok['estimates'])} {TARGETS['estimate_over_se']:g}), robust SEs within "
            f"{100 * c['max_rel_diff_robust_se']:.2g} % "
            f"({_meets(ok['robust_se'])} {100 * TARGETS['robust_se_relative']:g} %)"
        )
        if not ok["loglik"]:
            higher = "Biogeme" if biogeme["loglik"] > mine["loglik"] else "mixlogit"
            text += (
                f"; LL mixlogit {mine['loglik']:.4f}, Biogeme {biogeme['loglik']:.4f}: {higher}'s "
                "is higher, so the two stopped at different maxima (converged: mixlogit "
                f"{mine['converged']}, Biogeme {biogeme['converged']})"
            )
        starts = mine.get("start_logliks") or []
        if len(starts) > 1 and not any(mine is seen for seen in described):
            described.append(mine)
            best = max(starts)
            reached = sum(value >= best - 1e-2 for value in starts)
            text += (
                f"; mixlogit's {len(starts)} starts reached LLs from {min(starts):.4f} to "
                f"{best:.4f} ({reached} within 0.01 of the best; its first start {starts[0]:.4f})"
            )
        if biogeme.get("classes_swapped"):
            text += "; Biogeme's classes renumbered to mixlogit's order"
        ratio = c["time_ratio"]
        speed = f"{1 / ratio:.1f} times faster" if ratio < 1 else f"{ratio:.1f} times slower"
        sentences.append(f"{text}; mixlogit {speed}.")
    return sentences


def elasticity_rows(comparison: Mapping[str, Any]) -> list[str]:
    rows = []
    alts = list(ALTERNATIVE_NAMES.values())
    for variable, c in comparison.items():
        for i, changed in enumerate(alts):
            for j, responding in enumerate(alts):
                m, b = c["aggregate_mixlogit"][i][j], c["aggregate_biogeme"][i][j]
                rows.append(
                    (
                        variable,
                        changed,
                        responding,
                        "direct" if i == j else "cross",
                        f"{m:.8f}",
                        f"{b:.8f}",
                        f"{abs(m - b) / max(abs(b), 1e-12):.2e}",
                    )
                )
    header = ("variable", "changed", "responding", "", "mixlogit", "Biogeme", "rel diff")
    summary_rows = [
        (
            variable,
            f"{c['aggregate_direct_max_rel_diff']:.2e}",
            f"{c['aggregate_cross_max_rel_diff']:.2e}",
            f"{c['point_max_rel_diff']:.2e}",
            c["point_defined_both"],
            c["point_defined_only_one"],
        )
        for variable, c in comparison.items()
    ]
    summary_header = (
        "variable",
        "aggregate direct max rel diff",
        "aggregate cross max rel diff",
        "point max rel diff",
        "point entries compared",
        "defined on one side only",
    )
    return [*markdown_table(summary_header, summary_rows), "", *markdown_table(header, rows)]


def markdown(payload: Mapping[str, Any]) -> str:
    lines = [
        "# mixlogit against Biogeme 3.3.2 (Swissmetro)",
        "",
        f"Command: `{payload['command']}`; Biogeme {payload['biogeme_version']}; "
        f"{payload['machine']['cpus']} CPUs, load {payload['machine']['load_avg_start'][0]:.1f} "
        "at the start. Targets: "
        + ", ".join(f"{k} {v:g}" for k, v in TARGETS.items())
        + ". Times: each library's wall time from specifying the fit to having its results "
        "(compilation included, imports and data loading outside).",
        "",
    ]
    lines += fit_rows(payload["cases"])
    lines += [
        "",
        "Findings (written from the numbers above): " + " ".join(findings(payload["cases"])),
    ]
    for case in payload["cases"]:
        lines += ["", f"## {case['model']}", ""]
        lines += parameter_rows(case)
        if "elasticities" in case:
            e = case["elasticities"]
            lines += [
                "",
                f"Elasticities: mixlogit {e['mixlogit_seconds']:.1f} s, Biogeme simulation "
                f"{e['biogeme_seconds']:.1f} s.",
                "",
            ]
            lines += elasticity_rows(e["comparison"])
    for note in payload.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _start_in_biogeme_names(
    names: Mapping[str, str], estimates: Mapping[str, float]
) -> dict[str, float]:
    """mixlogit's estimates as starting values by Biogeme's names (b12panel, latent_class)."""
    inverse = {v: k for k, v in names.items()}
    return {inverse[k]: float(v) for k, v in estimates.items()}


def run_case(model: str, python: str, num_draws: int, scratch: Path) -> dict:
    print(f"{model}:", flush=True)
    out = scratch / f"{model}.json"
    case: dict[str, Any] = {"model": model, "num_draws": 0}
    names = NAMES[model]
    draws_path = None
    if model in ("b01logit", "b01logit_elasticities"):
        results, wall = fit_mnl()
        case["mixlogit"] = summary(results, wall)
        biogeme = run_biogeme(python, model, out)
        if model == "b01logit_elasticities":
            mine, seconds = mixlogit_elasticities(results)
            block = biogeme.pop("elasticities")
            case["elasticities"] = {
                "comparison": compare_elasticities(mine, block),
                "mixlogit_seconds": seconds,
                "biogeme_seconds": block["simulation_seconds"],
            }
    elif model in ("b09nested", "b11cnl"):
        results, wall = fit_nested(model)
        case["mixlogit"] = summary(results, wall)
        biogeme = run_biogeme(python, model, out)
    elif model == "latent_class":
        results, wall, messages = fit_latent_class()
        case["mixlogit"] = {**summary(results, wall), "warnings": messages}
        names = case["names"] = latent_names(results.names)
        biogeme = run_biogeme(python, model, out)
    elif model == "mixing_covariates":
        draws_path = scratch / "mixing_covariates_draws.npy"
        results, wall = fit_covariates(num_draws, draws_path)
        case["mixlogit"] = summary(results, wall)
        case["num_draws"] = num_draws
        start = _start_in_biogeme_names(names, {n: 0.0 for n in names.values()} | COVARIATE_START)
        biogeme = run_biogeme(python, model, out, draws_path, start)
        # and mixlogit from Biogeme's estimates: is Biogeme's point a maximum of the same
        # simulated likelihood (the two then differ by which maximum the path reached)?
        print("  mixlogit from Biogeme's estimates:", flush=True)
        from_biogeme = renamed(biogeme["estimates"], names)
        warm_mine, warm_wall = fit_covariates(num_draws, draws_path, from_biogeme)
        case["mixlogit_from_biogeme"] = summary(warm_mine, warm_wall)
        case["comparison_mixlogit_from_biogeme"] = compare_fits(
            case["mixlogit_from_biogeme"], biogeme, names
        )
    else:
        draws_path = scratch / "b12panel_draws.npy"
        results, wall = fit_panel(num_draws, draws_path)
        case["mixlogit"] = summary(results, wall)
        case["num_draws"] = num_draws
        biogeme = run_biogeme(python, model, out, draws_path)
        print("  mixlogit with 10 starts:", flush=True)
        multi, multi_wall = fit_panel(num_draws, draws_path, num_starts=10)
        case["mixlogit_multistart"] = summary(multi, multi_wall)
        case["comparison_multistart"] = compare_fits(
            case["mixlogit_multistart"], in_mixlogit_units(model, biogeme), names
        )
    if model in ("latent_class", "b12panel", "mixing_covariates"):
        # and from mixlogit's estimates: do the two agree on that maximum?
        start = _start_in_biogeme_names(names, case["mixlogit"]["estimates"])
        warm = run_biogeme(python, model, scratch / f"{model}_warm.json", draws_path, start)
        case["biogeme_from_mixlogit"] = warm
        case["comparison_from_mixlogit"] = compare_fits(
            case["mixlogit"], in_mixlogit_units(model, warm), names
        )
    case["biogeme"] = biogeme
    case["comparison"] = compare_fits(case["mixlogit"], in_mixlogit_units(model, biogeme), names)
    for _, label, mine, other, c in _fit_pairs([case]):
        print(
            f"  {label}: LL {mine['loglik']:.6f} vs {other['loglik']:.6f} "
            f"(diff {c['loglik_abs_diff']:.2e}); max est diff {c['max_estimate_diff_over_se']:.2e} "
            f"SE; robust SE {c['max_rel_diff_robust_se']:.2e}; time {mine['wall_seconds']:.1f} s "
            f"vs {other['wall_seconds']:.1f} s",
            flush=True,
        )
    return case


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--biogeme-python", default=BIOGEME_PYTHON)
    parser.add_argument(
        "--models",
        default=",".join(MODELS),
        help=f"comma-separated, of {', '.join(MODELS)}",
    )
    parser.add_argument(
        "--num-draws", type=int, default=500, help="draws per person of the simulated models"
    )
    parser.add_argument(
        "--report",
        default="biogeme",
        help="name of the saved results (benchmarks/results/<report>.json and .md)",
    )
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {list(MODELS)}")
    payload: dict[str, Any] = {
        "command": "python -m benchmarks.bench_biogeme "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_start": os.getloadavg(),
        },
        "commit": git_output("rev-parse", "HEAD"),
        "uncommitted_files": (git_output("status", "--porcelain") or "").splitlines(),
        "targets": TARGETS,
    }
    with tempfile.TemporaryDirectory() as scratch:
        payload["cases"] = [
            run_case(model, args.biogeme_python, args.num_draws, Path(scratch)) for model in models
        ]
    payload["biogeme_version"] = payload["cases"][0]["biogeme"]["biogeme_version"]
    payload["notes"] = [text for about, text in NOTES if set(about) & set(models)]
    text = markdown(payload)
    print(text)
    save_report(args.report, payload, text)


if __name__ == "__main__":
    main()
