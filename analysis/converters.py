"""Training logs of MixDPO runs -> pandas and ArviZ ``InferenceData``.

A training log is one record per logging step with the keys written by the MixDPO trainer:
``step``, ``loss``, the strength family's ``log_keys()`` (:mod:`mixlogit.families`:
``strength/mean``, ``strength/variance``, ``strength/cv`` and one ``strength/<parameter>`` per
parameter: ``shape`` and ``rate`` for Gamma, ``loc`` and ``scale`` for LogNormal, ``beta`` for a
point mass) and the DPO reward statistics ``rewards/chosen``, ``rewards/rejected``, ``rewards/accuracies``, ``rewards/margins``.
Any other numeric key (``learning_rate``, ``grad_norm``, ``epoch``) is kept as well.

In ``InferenceData`` the slash becomes an underscore (``strength/mean`` -> ``strength_mean``)
because netCDF variable names cannot contain ``/``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from analysis._arviz import az
from mixlogit._deprecation import deprecated_keywords
from mixlogit.families import FAMILY_NAMES, LOG_PREFIX, NUMPY_OPS, REFIT_LOG_PREFIX, get_family

__all__ = [
    "TrainingInferenceData",
    "TrainingRun",
    "choice_fit_to_inference_data",
    "find_training_log",
    "read_training_log",
    "strength_distribution",
    "strength_family",
    "subgroup_strengths",
    "training_runs_to_inference_data",
]

_FAMILIES = tuple(get_family(name) for name in FAMILY_NAMES)
#: Every family's parameters, in registry order (a union: families may share names).
_ALL_PARAMETERS = tuple(dict.fromkeys(p for f in _FAMILIES for p in f.parameters))
_REQUIRED_KEYS = ("step", LOG_PREFIX + "mean", LOG_PREFIX + "variance")
# What a logged value must be: the moments' ranges, then each parameter's constraint.
_VALUE_RULES = {
    LOG_PREFIX + "mean": "positive",
    LOG_PREFIX + "variance": "nonnegative",
    LOG_PREFIX + "cv": "nonnegative",
    **{
        LOG_PREFIX + p: {"real": "finite"}.get(c, c)
        for f in _FAMILIES
        for p, c in f.constraints.items()
    },
}

LogSource = str | PathLike | pd.DataFrame | Iterable[Mapping[str, Any]]


def _variable_name(key: str) -> str:
    return key.replace("/", "_")


def _records_from_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path}: line {line_number} is not valid JSON ({error})"
                ) from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}: line {line_number} is not a JSON object")
            records.append(record)
    return records


_LOG_FILE_NAMES = (
    "log.jsonl",
    "logs.jsonl",
    "train_log.jsonl",
    "trainer_log.jsonl",
    "metrics.jsonl",
)


def find_training_log(path: str | PathLike) -> Path:
    """The log file of a run: ``path`` itself if a file, else the first found in the directory of
    ``log.jsonl``, ``logs.jsonl``, ``train_log.jsonl``, ``trainer_log.jsonl``, ``metrics.jsonl``,
    ``trainer_state.json`` (Hugging Face ``log_history``), or the ``trainer_state.json`` of the
    last ``checkpoint-<step>`` subdirectory."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"training log {path} does not exist")
    for candidate in (*_LOG_FILE_NAMES, "trainer_state.json"):
        if (path / candidate).is_file():
            return path / candidate
    checkpoints = sorted(
        (p for p in path.glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit()),
        key=lambda p: int(p.name.removeprefix("checkpoint-")),
    )
    if checkpoints and (checkpoints[-1] / "trainer_state.json").is_file():
        return checkpoints[-1] / "trainer_state.json"
    raise FileNotFoundError(
        f"{path} holds none of {[*_LOG_FILE_NAMES, 'trainer_state.json']} nor a checkpoint-*/"
        "trainer_state.json: pass the log file itself"
    )


#: Keys that say when a record was written, not what was measured: records of one step may
#: differ in them (the trainer's logger stamps every record with its wall-clock ``time``).
_BOOKKEEPING_KEYS = frozenset({"time"})


def _merge_duplicate_steps(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """One row per step: records of the same step are merged when they agree on shared keys.

    The Hugging Face Trainer logs its end-of-training summary (``train_runtime``...) at the last
    step with the same strength values, a moment later; that merges (keeping the first record's
    ``time``). Two records of one step that disagree on a measured value (a resumed run that
    logged a step again with other values) raise.
    """
    if not frame["step"].duplicated().any():
        return frame
    merged = []
    for step, rows in frame.groupby("step", sort=False):
        if len(rows) > 1:
            for column in (c for c in rows.columns if c not in _BOOKKEEPING_KEYS):
                values = rows[column].dropna().to_numpy(dtype=np.float64)
                if values.size > 1 and not np.all(values == values[0]):
                    raise ValueError(
                        f"{label}: step {int(step)} is logged more than once with different "
                        f"{column!r} ({values[0].item()!r} vs {values[1].item()!r}); "
                        "a resumed run? keep one record per step"
                    )
        merged.append(rows.bfill().iloc[[0]])
    return pd.concat(merged)


def read_training_log(source: LogSource, *, name: str | None = None) -> pd.DataFrame:
    """Read one training run's per-step log into a DataFrame sorted by step.

    Args:
        source: a JSONL file (one JSON object per line), a Hugging Face ``trainer_state.json``
            (its ``log_history``), a run directory (see :func:`find_training_log`), a
            DataFrame, or an iterable of dict records.
        name: label used in error messages (defaults to the file name).

    Returns:
        DataFrame with one row per logging step (``step`` as int64 column, sorted ascending)
        and one float column per numeric logged key. Records without ``strength/mean`` (the
        trainer's evaluation and end-of-training summaries) are dropped.

    Raises:
        ValueError: a required key (``step``, ``strength/mean``, ``strength/variance``) is
            missing everywhere, a strength value is not finite or not positive where it must be,
            or a step is logged twice with different values (records of one step that agree,
            like the Trainer's end-of-training summary, are merged).
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
        label = name or "training log"
    elif isinstance(source, str | PathLike):
        path = find_training_log(source)
        label = name or str(path)
        if path.suffix == ".json":
            with path.open(encoding="utf-8") as handle:
                state = json.load(handle)
            if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
                raise ValueError(f"{path}: expected a Trainer state with a 'log_history' list")
            frame = pd.DataFrame.from_records(state["log_history"])
        else:
            frame = pd.DataFrame.from_records(_records_from_jsonl(path))
    else:
        label = name or "training log"
        records = list(source)
        bad = [i for i, record in enumerate(records) if not isinstance(record, Mapping)]
        if bad:
            raise ValueError(
                f"{label}: record {bad[0]} is a {type(records[bad[0]]).__name__}, not a dict"
            )
        frame = pd.DataFrame.from_records(records)

    missing = [key for key in _REQUIRED_KEYS if key not in frame.columns]
    if missing:
        raise ValueError(
            f"{label}: missing key(s) {missing}; found {sorted(map(str, frame.columns))}"
        )
    # the refit record (REFIT_LOG_PREFIX keys, at the last step) joins that step's row below
    keep = frame[LOG_PREFIX + "mean"].notna()
    if REFIT_LOG_PREFIX + "mean" in frame:
        keep |= frame[REFIT_LOG_PREFIX + "mean"].notna()
    frame = frame.loc[keep].copy()
    if frame.empty:
        raise ValueError(f"{label}: no record has a value for 'strength/mean'")

    numeric = {}
    for column in frame.columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.notna().any() or column in _REQUIRED_KEYS:
            numeric[column] = values
    frame = pd.DataFrame(numeric, index=frame.index)

    steps = frame["step"]
    if steps.isna().any() or (steps != np.round(steps)).any():
        row = int(np.flatnonzero(steps.isna() | (steps != np.round(steps)))[0])
        raise ValueError(f"{label}: record {row} has step {steps.iloc[row]!r}, not an integer")
    frame["step"] = steps.astype(np.int64)
    frame = _merge_duplicate_steps(frame, label)
    frame = frame.loc[frame[LOG_PREFIX + "mean"].notna()]
    if frame.empty:
        raise ValueError(f"{label}: no record has a value for 'strength/mean'")
    for column, rule in _VALUE_RULES.items():
        if column not in frame:
            continue
        values = frame[column].to_numpy()
        bad = ~np.isfinite(values)
        if rule == "positive":
            bad |= values <= 0
        elif rule == "nonnegative":
            bad |= values < 0
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{label}: column {column!r} has invalid value {values[row]!r} at step "
                f"{int(frame['step'].iloc[row])} (must be {rule})"
            )
    return frame.sort_values("step").reset_index(drop=True)


def _final_prefix(log: pd.DataFrame) -> str:
    """The log prefix of a run's learned strength: the end-of-training refit's when the log has
    it (``strength_refit/...`` at the last step), else the last ``strength/...`` values."""
    key = REFIT_LOG_PREFIX + "mean"
    if key in log and np.isfinite(log[key].iloc[-1]):
        return REFIT_LOG_PREFIX
    return LOG_PREFIX


def subgroup_strengths(log: LogSource) -> pd.DataFrame:
    """The learned strength of each covariate level of a run (annotator-level or covariate
    MixDPO logs ``strength/<level>/mean`` and ``/cv``; the refit ``strength_refit/...``).

    Args:
        log: anything :func:`read_training_log` reads.

    Returns:
        One row per level, most decisive (largest mean) first: ``level``, ``mean`` (strength
        units, as ``beta``), ``cv``, ``source`` (``"refit"`` for the end-of-training refit,
        else ``"training"``: the last logged iterate) and ``step``. Empty for a run without
        covariate levels.
    """
    frame = log if isinstance(log, pd.DataFrame) else read_training_log(log)
    prefix = _final_prefix(frame)
    last = frame.iloc[-1]
    rows = []
    for column in frame.columns:
        level = column.removeprefix(prefix).removesuffix("/mean")
        if not column.startswith(prefix) or not column.endswith("/mean") or not level:
            continue
        if "/" in level or prefix + level + "/cv" not in frame:
            continue
        rows.append(
            {
                "level": level,
                "mean": float(last[column]),
                "cv": float(last[prefix + level + "/cv"]),
                "source": "refit" if prefix == REFIT_LOG_PREFIX else "training",
                "step": int(last["step"]),
            }
        )
    table = pd.DataFrame(rows, columns=["level", "mean", "cv", "source", "step"])
    return table.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)


def strength_family(log: pd.DataFrame) -> str:
    """Canonical name of the strength family of a training log (``"gamma"``, ``"lognormal"``,
    ``"point_mass"``), from which ``strength/<parameter>`` keys it has.

    Raises:
        ValueError: the log holds the parameters of no family or of several.
    """
    present = [
        family.name
        for family in _FAMILIES
        if all(LOG_PREFIX + p in log.columns for p in family.parameters)
    ]
    if len(present) != 1:
        keys = sorted(c for c in log.columns if str(c).startswith(LOG_PREFIX))
        raise ValueError(
            f"cannot tell the strength family from keys {keys}: expected exactly one of "
            + ", ".join(f"{f.name}: {list(f.parameters)}" for f in _FAMILIES)
        )
    return present[0]


def strength_distribution(family: str, **parameters: float) -> Any:
    """Frozen ``scipy.stats`` distribution of a strength family with the logged parameters
    (``get_family(family).scipy``; ``None`` for a point mass, which has no density).

    Gamma(shape, rate) has density ``rate^shape b^(shape-1) e^(-rate b) / Gamma(shape)``;
    LogNormal(loc, scale) is ``exp(Normal(loc, scale))``.
    """
    spec = get_family(family)
    if sorted(parameters) != sorted(spec.parameters):
        raise ValueError(
            f"{spec.name} strength takes parameters {list(spec.parameters)}, "
            f"got {sorted(parameters)}"
        )
    return spec.scipy(spec.check_params(parameters))


@dataclass(frozen=True)
class TrainingRun:
    """One training run's log with the labels that tell runs apart in plots and reports.

    Attributes:
        name: unique run label (``"mixdpo-gamma-prism"``).
        log: a per-step log or anything :func:`read_training_log` reads.
        dataset: the preference data set it was trained on (``"prism"``); ``"unknown"`` if unset.
        family: a :mod:`mixlogit.families` name (``"gamma"``, ``"lognormal"``, ``"point_mass"``
            or its alias ``"fixed"``); inferred from the log if unset.
    """

    name: str
    log: LogSource
    dataset: str = "unknown"
    family: str | None = None


def _as_runs(
    runs: TrainingRun | Sequence[TrainingRun] | Mapping[str, LogSource],
) -> list[TrainingRun]:
    if isinstance(runs, TrainingRun):
        return [runs]
    if isinstance(runs, Mapping):
        return [TrainingRun(name=str(key), log=value) for key, value in runs.items()]
    runs = list(runs)
    if not runs or not all(isinstance(run, TrainingRun) for run in runs):
        raise TypeError("runs must be a TrainingRun, a non-empty sequence of them, or {name: log}")
    return runs


class TrainingInferenceData(az.InferenceData):
    """ArviZ ``InferenceData`` of training runs (standard groups only) with two views.

    ``trajectory`` and ``strength`` are read from the ``constant_data`` group (see
    :func:`training_runs_to_inference_data`); they are not groups, so ``to_netcdf`` writes
    only the standard groups and ``az.from_netcdf`` returns a plain ``InferenceData`` whose
    ``constant_data`` still holds both.
    """

    @property
    def trajectory(self) -> xr.Dataset:
        """Every logged key, dims ``(run, step)``, with coordinates ``dataset(run)``,
        ``family(run)``."""
        return _trajectory_view(self.constant_data)

    @property
    def strength(self) -> xr.Dataset:
        """The fitted distribution of each run (its last logged step): ``mean``,
        ``variance``, ``cv``, the families' parameters and ``final_step``, dim ``run``."""
        return _strength_view(self.constant_data)


#: Prefix of the last-step values in ``constant_data`` (the trajectories keep the log names).
_FINAL = "final_"


def _trajectory_view(constant: xr.Dataset) -> xr.Dataset:
    names = [v for v in constant.data_vars if "step" in constant[v].dims]
    return constant[names]


def _strength_view(constant: xr.Dataset) -> xr.Dataset:
    names = [v for v in constant.data_vars if str(v).startswith(_FINAL)]
    view = constant[names].drop_vars("step", errors="ignore")
    renames = {v: str(v).removeprefix(_FINAL) for v in names if v != _FINAL + "step"}
    return view.rename(renames)


@deprecated_keywords(num_strength_draws="num_draws")
def training_runs_to_inference_data(
    runs: TrainingRun | Sequence[TrainingRun] | Mapping[str, LogSource],
    *,
    num_draws: int = 1000,
    seed: int = 0,
) -> TrainingInferenceData:
    """Strength trajectories of one or several training runs as ArviZ ``InferenceData``.

    Only ArviZ's own groups, so ``az.summary(idata)``, ``az.plot_posterior`` and
    ``to_netcdf`` work as on any fit:

    * ``posterior`` (when ``num_draws > 0``): ``strength``, ``num_draws`` exact draws from each
      run's fitted distribution (its last logged step), dims ``(chain, draw, run)``: independent
      draws arranged in 4 chains when ``num_draws`` is a multiple of 4 (at least 16), else
      one, so that r_hat (~1) and ESS are defined. These are draws of the learned *population* distribution of strength across
      annotators (a training run is a point estimate), not a Bayesian posterior; the attribute
      ``draws_of`` says so. A point-mass run has one value, repeated.
    * ``constant_data``: what the draws are computed from. The trajectories: every logged
      numeric key, dims ``(run, step)`` (``strength_mean``, ``loss``...); ``step`` is the union
      of the runs' logged steps, so a run that did not log a step (a shorter run, another
      logging interval) holds NaN there, as do the parameters of the other families in a mix of
      Gamma and LogNormal runs. The fitted distributions: ``final_mean``, ``final_variance``,
      ``final_cv``, ``final_<parameter>`` and ``final_step``, dim ``run`` (parameters of other
      families are NaN): the end-of-training refit's values (``strength_refit/...``) where the
      run logged them (annotator-level runs, ``MixDPOConfig.strength_refit``), else the last
      logged ones; the posterior draws use the same. Coordinates ``dataset(run)`` and
      ``family(run)`` label runs.

    The returned object also has the views ``idata.trajectory`` (the ``(run, step)``
    variables) and ``idata.strength`` (the ``final_*`` variables without the prefix), see
    :class:`TrainingInferenceData`.

    Args:
        runs: a :class:`TrainingRun`, a sequence of them, or a mapping ``{run name: log}``.
        num_draws: draws per run in the ``posterior`` group (0 = no ``posterior``; formerly
            ``num_strength_draws``).
        seed: seed of those draws.
    """
    run_list = _as_runs(runs)
    names = [run.name for run in run_list]
    if len(set(names)) != len(names):
        raise ValueError(f"run names must be unique, got {names}")

    logs, families = [], []
    for run in run_list:
        log = read_training_log(run.log, name=run.name)
        inferred = strength_family(log)
        if run.family is not None and get_family(run.family).name != inferred:
            raise ValueError(
                f"run {run.name!r} is labelled family {run.family!r} but its log has the "
                f"parameters of {inferred!r}"
            )
        logs.append(log)
        families.append(inferred)

    steps = np.unique(np.concatenate([log["step"].to_numpy() for log in logs]))
    keys: list[str] = []
    for log in logs:
        keys.extend(c for c in log.columns if c != "step" and c not in keys)
    constant: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    for key in keys:
        table = np.full((len(logs), steps.size), np.nan)
        for row, log in enumerate(logs):
            if key in log:
                table[row, np.searchsorted(steps, log["step"].to_numpy())] = log[key].to_numpy()
        constant[_variable_name(key)] = (("run", "step"), table)
    run_coords = {
        "run": names,
        "dataset": ("run", [run.dataset for run in run_list]),
        "family": ("run", families),
    }
    for quantity in ("mean", "variance", "cv", *_ALL_PARAMETERS):
        values = np.full(len(logs), np.nan)
        for row, log in enumerate(logs):
            prefix = _final_prefix(log)
            key = prefix + quantity
            if quantity == "cv" and key not in log:
                last = log.iloc[-1]
                values[row] = math.sqrt(last[prefix + "variance"]) / last[prefix + "mean"]
            elif key in log:
                values[row] = log[key].iloc[-1]
        if quantity in ("mean", "variance", "cv") or np.isfinite(values).any():
            constant[_FINAL + quantity] = (("run",), values)
    constant[_FINAL + "step"] = (("run",), np.array([log["step"].iloc[-1] for log in logs]))
    constant_ds = xr.Dataset(constant, coords={**run_coords, "step": steps})
    constant_ds.attrs["log_keys"] = json.dumps({_variable_name(k): k for k in keys})
    groups = {"constant_data": constant_ds}

    if num_draws > 0:
        rng = np.random.default_rng(seed)
        draws = np.empty((1, num_draws, len(logs)))
        for row, (log, family) in enumerate(zip(logs, families, strict=True)):
            prefix = _final_prefix(log)
            parameters = {p: float(log[prefix + p].iloc[-1]) for p in get_family(family).parameters}
            distribution = strength_distribution(family, **parameters)
            if distribution is None:  # a point mass
                draws[0, :, row] = get_family(family).mean(NUMPY_OPS, parameters)
            else:
                draws[0, :, row] = distribution.rvs(size=num_draws, random_state=rng)
        chains = _num_chains(num_draws)
        groups["posterior"] = xr.Dataset(
            {"strength": (("chain", "draw", "run"), draws.reshape(chains, -1, len(logs)))},
            coords={
                **run_coords,
                "chain": np.arange(chains),
                "draw": np.arange(num_draws // chains),
            },
            attrs={
                "draws_of": "the fitted population distribution of strength of each run "
                "(last logged step); not a Bayesian posterior"
            },
        )
    return TrainingInferenceData(**groups)


@deprecated_keywords(population_draws="num_population_draws")
def choice_fit_to_inference_data(
    fit: Any,
    *,
    num_draws: int = 4000,
    robust: bool = False,
    num_population_draws: int = 0,
    seed: int = 0,
) -> Any:
    """A ``mixlogit`` choice-model fit as ArviZ ``InferenceData``.

    A Bayesian fit (``mixlogit`` ``BayesianResults``, which carries ``idata``) becomes a copy
    of its ``idata`` arranged for ArviZ: ``posterior`` holds the population parameters
    (``fit.population_vars`` first) and no per-person variable, so ``az.summary(idata)`` is
    the population table; the person-level latent draws of a sampled hierarchical model
    (``z``, ``u_std``: real-valued, dims ``(chain, draw, person, ...)``) move to
    ``unconstrained_posterior`` (their Gamma transform ``u`` is left out: it follows from
    ``u_std`` and ``log_shape``; each person's coefficients are ``fit.beta_person``); the
    per-person log-likelihood is named ``person_choices`` (it scores all of a person's
    choices, while ``observed_data["choice"]`` is per situation), so ``az.loo`` leaves out a
    person and ``az.plot_loo_pit(idata, y="first_alternative_count")`` compares each person's
    count of first-alternative choices with its leave-one-person-out predictive. Groups that
    the fit lacks stay absent. A classical fit (``EstimationResults``: ``names``, ``params``, ``cov``,
    ``robust_cov``...) becomes an object with ArviZ's own groups only:

    * ``posterior``: ``theta``, ``num_draws`` draws of the parameters from their asymptotic
      normal distribution ``N(params, cov)`` (``robust_cov`` with ``robust=True``), dims
      ``(chain, draw, parameter)``: independent draws arranged in 4 chains when ``num_draws``
      is a multiple of 4 (at least 16), else one, so ``az.summary(idata)`` and ArviZ plots
      apply (as a Laplace approximation is stored). This is the sampling distribution of the
      estimator, not a Bayesian posterior: the attributes ``draws_of`` and ``covariance`` say
      so.
    * ``constant_data``: the estimates the draws are centred at: ``estimate``, ``std_err``,
      ``robust_std_err``, ``z`` with dim ``parameter``.
    * ``predictions`` (when ``num_population_draws > 0`` (formerly ``population_draws``) and
      the model has random coefficients): draws of every coefficient over the population at
      the estimates (the coefficients of new decision makers), one variable per coefficient,
      dims ``(chain, draw)`` (chains as for ``posterior``).

    The fit's header statistics (``method``, ``loglik``, ``null_loglik``, ``aic``, ``bic``,
    ``num_situations``, ``converged``) are attributes of the object and of ``constant_data``,
    stored netCDF-safe: numbers as float or int, ``converged`` as 0/1.
    """
    if hasattr(fit, "idata"):
        return _native_bayesian_idata(fit)
    required = ("names", "params", "cov")
    missing = [name for name in required if not hasattr(fit, name)]
    if missing:
        raise TypeError(
            f"expected a mixlogit fit (EstimationResults or BayesianResults); "
            f"{type(fit).__name__} lacks {missing}"
        )
    names = [str(name) for name in fit.names]
    params = np.asarray(fit.params, dtype=np.float64)
    cov = np.asarray(fit.robust_cov if robust else fit.cov, dtype=np.float64)
    if cov.shape != (params.size, params.size) or not np.all(np.isfinite(cov)):
        raise ValueError(f"the fit's covariance has shape {cov.shape} or non-finite entries")
    std_err = np.sqrt(np.diag(np.asarray(fit.cov, dtype=np.float64)))
    robust_err = np.sqrt(np.diag(np.asarray(getattr(fit, "robust_cov", fit.cov), dtype=float)))
    attrs = {
        key: _netcdf_attribute(value)
        for key in ("method", "loglik", "null_loglik", "aic", "bic", "num_situations", "converged")
        if (value := getattr(fit, key, None)) is not None
    }
    estimates = xr.Dataset(
        {
            "estimate": (("parameter",), params),
            "std_err": (("parameter",), std_err),
            "robust_std_err": (("parameter",), robust_err),
            "z": (("parameter",), params / std_err),
        },
        coords={"parameter": names},
        attrs=attrs,
    )
    rng = np.random.default_rng(seed)
    # the covariance may be only positive semi-definite (a parameter at a bound): use eigh
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    if eigenvalues.min() < -1e-10 * max(1.0, eigenvalues.max()):
        raise ValueError(
            f"the fit's covariance is not positive semi-definite ({eigenvalues.min()})"
        )
    root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
    draws = params + rng.standard_normal((num_draws, params.size)) @ root.T
    chains = _num_chains(num_draws)
    groups = {
        "posterior": xr.Dataset(
            {"theta": (("chain", "draw", "parameter"), draws.reshape(chains, -1, params.size))},
            coords={
                "chain": np.arange(chains),
                "draw": np.arange(num_draws // chains),
                "parameter": names,
            },
            attrs={
                "covariance": "robust" if robust else "classical",
                "draws_of": "the asymptotic normal distribution of the estimator; not a "
                "Bayesian posterior",
            },
        ),
        "constant_data": estimates,
    }
    if num_population_draws > 0 and getattr(getattr(fit, "model", None), "random", None):
        population = fit.population_coefficients(num_draws=num_population_draws, seed=seed)
        chains = _num_chains(num_population_draws)
        groups["predictions"] = xr.Dataset(
            {
                str(c): (("chain", "draw"), population[c].to_numpy().reshape(chains, -1))
                for c in population
            },
            coords={
                "chain": np.arange(chains),
                "draw": np.arange(num_population_draws // chains),
            },
            attrs={"draws_of": "coefficients of new decision makers at the estimates"},
        )
    idata = az.InferenceData(**groups)
    idata.attrs.update(attrs)
    return idata


#: Per-person latent draws moved out of ``posterior`` by :func:`_native_bayesian_idata`.
_PERSON_LATENTS = ("z", "u_std")


def _native_bayesian_idata(fit: Any) -> Any:
    """The ArviZ-native copy of a ``BayesianResults``' ``idata`` (see
    :func:`choice_fit_to_inference_data`)."""
    source = fit.idata
    posterior = source.posterior
    person = [v for v in posterior.data_vars if "person" in posterior[v].dims]
    population = [v for v in getattr(fit, "population_vars", []) if v in posterior]
    rest = [v for v in posterior.data_vars if v not in person and v not in population]
    groups = {"posterior": posterior[population + rest]}
    latents = [v for v in _PERSON_LATENTS if v in person]
    if latents:
        groups["unconstrained_posterior"] = posterior[latents]
    for group in source.groups():
        if group == "posterior":
            continue
        dataset = source[group]
        if group == "log_likelihood":
            dataset = dataset.rename({"choice": "person_choices"} if "choice" in dataset else {})
        groups[group] = dataset
    idata = az.InferenceData(**groups)
    idata.attrs.update({k: _netcdf_attribute(v) for k, v in source.attrs.items()})
    return idata


def _num_chains(num_draws: int) -> int:
    """Chains to arrange ``num_draws`` independent draws in: 4 when they split evenly into
    chains of at least 4 draws (ArviZ computes r_hat, ~1 for independent draws, and ESS only
    with two chains or more), else 1."""
    return 4 if num_draws % 4 == 0 and num_draws >= 16 else 1


def _netcdf_attribute(value: Any) -> str | int | float:
    """An attribute netCDF can store: strings stay, booleans become 0/1 (netCDF has no
    boolean type), integers int, anything else float."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    return float(value)
