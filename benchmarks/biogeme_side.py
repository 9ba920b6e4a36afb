"""The Biogeme half of the mixlogit-against-Biogeme benchmark (issue 16); run with Biogeme's python.

This script imports only Biogeme, pandas, numpy and the standard library (the Biogeme
environment has no mixlogit). It reads the Swissmetro file that mixlogit ships
(``mixlogit/datasets/swissmetro.dat.gz``), prepares it as Biogeme's Swissmetro examples and
:func:`mixlogit.datasets.swissmetro_choice_data` do (PURPOSE in {1, 3}, CHOICE != 0, times and
costs / 100, no train or Swissmetro fare for GA holders, ``CAR_AV_SP = CAR_AV * (SP != 0)``,
``TRAIN_AV_SP = TRAIN_AV * (SP != 0)``), fits one model and writes a JSON file.

Models (``--model``):

* ``b01logit``: the MNL of Biogeme's example b01logit.
* ``b01logit_elasticities``: b01logit, then the point elasticities of the three choice
  probabilities with respect to the times and costs of each alternative (direct and cross),
  ``Derive(P_j, x_i) * x_i / P_j`` simulated at the estimates, per row and in aggregate
  (``sum_s P_sj E_sji / sum_s P_sj``, as Biogeme's indicator examples).
* ``b09nested``: the nested logit of Biogeme's example b09nested (nest "existing" = train and
  car, Swissmetro alone; its parameter MU in [1, 10], starting at 1).
* ``b11cnl``: the cross-nested logit of Biogeme's example b11cnl (train in nest "existing" with
  car, allocation ALPHA_EXISTING in [0, 1], and in nest "future" with Swissmetro, allocation
  1 - ALPHA_EXISTING; MU_EXISTING and MU_FUTURE in [1, 10]; starts 1, 1, 0.5).
* ``latent_class``: a two-class latent-class MNL on the panel (not a Biogeme example: its
  discrete-mixture examples put draws inside the classes): class-specific ASC_TRAIN, ASC_CAR,
  B_TIME and B_COST (``<name>_CLASS1``, ``<name>_CLASS2``), a constant class share
  (SHARE_CLASS2, the log odds of class 2 against class 1), the likelihood of a person
  ``sum_c pi_c prod_t P_t(beta_c)`` through ``PanelLikelihoodTrajectory``. Default start: every
  parameter 0 (the convention of Biogeme's examples).
* ``b12panel``: the error-components panel mixed logit of Biogeme's example b12panel: normal
  ASCs (means ASC_TRAIN, ASC_CAR; ASC_SM's mean fixed at 0; spreads ASC_*_S), a normal time
  coefficient (B_TIME, B_TIME_S), a fixed B_COST, panel by ID (the likelihood of a person is
  the product over her choices, averaged over her draws). With ``--draws-file`` the draws are
  a ``.npy`` of shape ``(persons, R, 4)`` standard normals, persons in increasing ID order,
  columns :data:`DRAW_COLUMNS`; they enter through Biogeme's user-defined random number
  generators, so the simulated likelihood is the same as the other library's. Without it,
  Biogeme's own ``NORMAL_ANTI`` draws (``--num-draws``, ``--seed``).
* ``mixing_covariates``: heterogeneity in means and variances written in the utilities (not a
  Biogeme example): a normal time coefficient whose mean moves with MALE and FIRST and whose
  spread is ``B_TIME_S exp(G_TIME_MALE MALE)``, a negative lognormal cost coefficient whose
  log-location moves with FIRST, fixed ASCs; by person; the draws of ``--draws-file``
  ``(persons, R, 2)``, columns :data:`COVARIATE_DRAW_COLUMNS`.

``--start-json`` (every model): starting values by parameter name, the others as the example.

The JSON holds the final log-likelihood, the estimates, classical (Rao-Cramer) and robust
(sandwich) standard errors by name, the wall time from building the ``BIOGEME`` object to
having the results (imports and data preparation outside), the number of draws and the Biogeme
version.

``/work/envs/biogeme/bin/python benchmarks/biogeme_side.py --model b01logit --out X.json``
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

DATA_FILE = Path(__file__).resolve().parents[1] / "mixlogit" / "datasets" / "swissmetro.dat.gz"
MODELS = (
    "b01logit",
    "b01logit_elasticities",
    "b09nested",
    "b11cnl",
    "latent_class",
    "b12panel",
    "mixing_covariates",
)
#: Columns of ``--draws-file``: the standard normals of the error components of train,
#: Swissmetro and car, then of the time coefficient.
DRAW_COLUMNS = ("ASC_TRAIN", "ASC_SM", "ASC_CAR", "B_TIME")
#: ``--draws-file`` columns of ``mixing_covariates``: the time and the (log) cost coefficient.
COVARIATE_DRAW_COLUMNS = ("B_TIME", "B_COST")
#: Alternatives (1 train, 2 Swissmetro, 3 car): their names, time and cost columns.
ALTERNATIVES = {
    1: ("TRAIN", "TRAIN_TT_SCALED", "TRAIN_COST_SCALED"),
    2: ("SM", "SM_TT_SCALED", "SM_COST_SCALED"),
    3: ("CAR", "CAR_TT_SCALED", "CAR_CO_SCALED"),
}
#: Biogeme options: no report files, nothing saved between iterations.
QUIET = {"generate_html": False, "generate_yaml": False, "save_iterations": False}


def swissmetro_frame(path: Path = DATA_FILE) -> pd.DataFrame:
    """The Swissmetro situations and variables of Biogeme's examples (6,768 rows, file order)."""
    frame = pd.read_csv(path, sep="\t", compression="gzip")
    frame = frame.loc[frame.PURPOSE.isin([1, 3]) & (frame.CHOICE != 0)].reset_index(drop=True)
    frame["SM_COST"] = frame.SM_CO * (frame.GA == 0)
    frame["TRAIN_COST"] = frame.TRAIN_CO * (frame.GA == 0)
    frame["CAR_AV_SP"] = frame.CAR_AV * (frame.SP != 0)
    frame["TRAIN_AV_SP"] = frame.TRAIN_AV * (frame.SP != 0)
    frame["TRAIN_TT_SCALED"] = frame.TRAIN_TT / 100.0
    frame["TRAIN_COST_SCALED"] = frame.TRAIN_COST / 100.0
    frame["SM_TT_SCALED"] = frame.SM_TT / 100.0
    frame["SM_COST_SCALED"] = frame.SM_COST / 100.0
    frame["CAR_TT_SCALED"] = frame.CAR_TT / 100.0
    frame["CAR_CO_SCALED"] = frame.CAR_CO / 100.0
    return frame.astype(float)


def _availability():
    from biogeme.expressions import Variable

    return {1: Variable("TRAIN_AV_SP"), 2: Variable("SM_AV"), 3: Variable("CAR_AV_SP")}


def _mnl_utilities(start: dict[str, float] | None = None, suffix: str = ""):
    """b01logit's utilities; parameter names end with ``suffix``, starts from ``start`` (by
    name, default 0)."""
    from biogeme.expressions import Beta, Variable

    start = start or {}

    def beta(name: str, fixed: int = 0):
        name += suffix
        return Beta(name, 0 if fixed else start.get(name, 0), None, None, fixed)

    asc = {1: beta("ASC_TRAIN"), 2: beta("ASC_SM", fixed=1), 3: beta("ASC_CAR")}
    b_time = beta("B_TIME")
    b_cost = beta("B_COST")
    return {
        alt: asc[alt] + b_time * Variable(tt) + b_cost * Variable(cost)
        for alt, (_, tt, cost) in ALTERNATIVES.items()
    }


def _estimate(database, formula, **options) -> tuple[object, float]:
    """Fit in a scratch directory (Biogeme writes its parameter file there); the results and
    the seconds from building the ``BIOGEME`` object to having them."""
    from biogeme.biogeme import BIOGEME

    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            began = time.perf_counter()
            the_biogeme = BIOGEME(database, formula, **QUIET, **options)
            the_biogeme.model_name = "mixlogit_benchmark"
            results = the_biogeme.estimate()
            wall = time.perf_counter() - began
        finally:
            os.chdir(here)
    return results, wall


def _seconds(text: str | None) -> float | None:
    """Seconds of a ``timedelta`` written as ``[D day[s], ]H:MM:SS[.ffffff]`` (or a number)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    days = 0
    if "day" in text:
        head, text = text.split(",")
        days = int(head.split()[0])
    hours, minutes, seconds = text.strip().split(":")
    return days * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _summary(results, wall: float) -> dict:
    from biogeme.version import __version__

    names = list(results.beta_names)
    values = results.get_beta_values()
    classical = np.sqrt(np.diag(np.asarray(results.rao_cramer_variance_covariance_matrix)))
    robust = np.sqrt(np.diag(np.asarray(results.robust_variance_covariance_matrix)))
    raw = results.raw_estimation_results
    messages = {str(k): str(v) for k, v in (raw.optimization_messages or {}).items()}
    return {
        "loglik": float(results.final_loglikelihood),
        "estimates": {name: float(values[name]) for name in names},
        "std_errors": dict(zip(names, classical.tolist(), strict=True)),
        "robust_std_errors": dict(zip(names, robust.tolist(), strict=True)),
        "wall_seconds": wall,
        "converged": bool(results.algorithm_has_converged),
        "optimization_seconds": _seconds(messages.get("Optimization time")),
        "optimization_messages": messages,
        "biogeme_version": __version__,
    }


def fit_b01logit(frame: pd.DataFrame) -> tuple[dict, object]:
    """b01logit: the summary and Biogeme's results."""
    from biogeme.database import Database
    from biogeme.expressions import Variable
    from biogeme.models import loglogit

    formula = loglogit(_mnl_utilities(), _availability(), Variable("CHOICE"))
    results, wall = _estimate(Database("swissmetro", frame.copy()), formula)
    return {**_summary(results, wall), "num_draws": 0}, results


def fit_b09nested(frame: pd.DataFrame, start: dict[str, float] | None = None) -> dict:
    """b09nested: train and car in nest "existing" (MU in [1, 10]), Swissmetro alone."""
    from biogeme.database import Database
    from biogeme.expressions import Beta, Variable
    from biogeme.models import lognested
    from biogeme.nests import NestsForNestedLogit, OneNestForNestedLogit

    start = start or {}
    mu = Beta("MU", start.get("MU", 1), 1, 10, 0)
    existing = OneNestForNestedLogit(nest_param=mu, list_of_alternatives=[1, 3], name="existing")
    nests = NestsForNestedLogit(choice_set=list(ALTERNATIVES), tuple_of_nests=(existing,))
    formula = lognested(_mnl_utilities(start), _availability(), nests, Variable("CHOICE"))
    results, wall = _estimate(Database("swissmetro", frame.copy()), formula)
    return {**_summary(results, wall), "num_draws": 0, "start": start or "example"}


def fit_b11cnl(frame: pd.DataFrame, start: dict[str, float] | None = None) -> dict:
    """b11cnl: train in "existing" (with car) and "future" (with Swissmetro), allocations
    ALPHA_EXISTING and 1 - ALPHA_EXISTING."""
    from biogeme.database import Database
    from biogeme.expressions import Beta, Variable
    from biogeme.models import logcnl
    from biogeme.nests import NestsForCrossNestedLogit, OneNestForCrossNestedLogit

    start = start or {}
    mu_existing = Beta("MU_EXISTING", start.get("MU_EXISTING", 1), 1, 10, 0)
    mu_future = Beta("MU_FUTURE", start.get("MU_FUTURE", 1), 1, 10, 0)
    alpha_existing = Beta("ALPHA_EXISTING", start.get("ALPHA_EXISTING", 0.5), 0, 1, 0)
    existing = OneNestForCrossNestedLogit(
        nest_param=mu_existing,
        dict_of_alpha={1: alpha_existing, 2: 0.0, 3: 1.0},
        name="existing",
    )
    future = OneNestForCrossNestedLogit(
        nest_param=mu_future, dict_of_alpha={1: 1 - alpha_existing, 2: 1.0, 3: 0.0}, name="future"
    )
    nests = NestsForCrossNestedLogit(
        choice_set=list(ALTERNATIVES), tuple_of_nests=(existing, future)
    )
    formula = logcnl(_mnl_utilities(start), _availability(), nests, Variable("CHOICE"))
    results, wall = _estimate(Database("swissmetro", frame.copy()), formula)
    return {**_summary(results, wall), "num_draws": 0, "start": start or "example"}


def fit_latent_class(frame: pd.DataFrame, start: dict[str, float] | None = None) -> dict:
    """Two-class latent-class MNL by person: ``log(sum_c pi_c prod_t P_t(beta_c))`` with
    ``pi_2 = 1 / (1 + exp(-SHARE_CLASS2))``; every parameter starts at 0 unless ``start``."""
    from biogeme.database import Database
    from biogeme.expressions import Beta, PanelLikelihoodTrajectory, Variable, exp, log
    from biogeme.models import logit

    start = start or {}
    share = Beta("SHARE_CLASS2", start.get("SHARE_CLASS2", 0), None, None, 0)
    probability = {1: 1 / (1 + exp(share)), 2: 1 / (1 + exp(-share))}
    likelihood = {
        c: PanelLikelihoodTrajectory(
            logit(_mnl_utilities(start, f"_CLASS{c}"), _availability(), Variable("CHOICE"))
        )
        for c in (1, 2)
    }
    formula = log(probability[1] * likelihood[1] + probability[2] * likelihood[2])
    database = Database("swissmetro", frame.copy())
    database.panel("ID")
    results, wall = _estimate(database, formula)
    return {
        **_summary(results, wall),
        "num_draws": 0,
        "num_persons": int(frame.ID.nunique()),
        "start": start or "every parameter 0",
    }


def b01logit_elasticities(frame: pd.DataFrame) -> dict:
    """b01logit and its point elasticities (direct and cross) simulated at the estimates."""
    from biogeme.biogeme import BIOGEME
    from biogeme.database import Database
    from biogeme.expressions import Derive, Variable
    from biogeme.models import logit

    summary, results = fit_b01logit(frame)
    utilities, availability = _mnl_utilities(), _availability()
    probability = {alt: logit(utilities, availability, alt) for alt in ALTERNATIVES}
    formulas = {f"P_{ALTERNATIVES[j][0]}": probability[j] for j in ALTERNATIVES}
    keys = []
    for kind, position in (("time", 1), ("cost", 2)):
        for spec in ALTERNATIVES.values():
            column = spec[position]
            for j in ALTERNATIVES:
                key = f"{kind}|{spec[0]}|{ALTERNATIVES[j][0]}"
                keys.append((key, kind, spec[0], ALTERNATIVES[j][0]))
                formulas[key] = Derive(probability[j], column) * Variable(column) / probability[j]
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            began = time.perf_counter()
            simulator = BIOGEME(Database("swissmetro", frame.copy()), formulas, **QUIET)
            simulated = simulator.simulate(results.get_beta_values())
            seconds = time.perf_counter() - began
        finally:
            os.chdir(here)
    aggregate: dict[str, dict[str, dict[str, float]]] = {"time": {}, "cost": {}}
    point: dict[str, dict[str, dict[str, list]]] = {"time": {}, "cost": {}}
    for key, kind, changed, responding in keys:
        prob = simulated[f"P_{responding}"].to_numpy()
        elasticity = simulated[key].to_numpy(dtype=float)
        defined = prob > 0
        value = np.sum(prob[defined] * elasticity[defined]) / np.sum(prob)
        aggregate[kind].setdefault(changed, {})[responding] = float(value)
        row = np.where(defined, elasticity, np.nan)
        point[kind].setdefault(changed, {})[responding] = [
            None if not np.isfinite(v) else float(v) for v in row
        ]
    summary.update(
        {
            "elasticities": {
                "aggregate": aggregate,
                "point": point,
                "note": "[variable][changed alternative][responding alternative]; point: per "
                "row in file order after the exclusions, null where the responding "
                "alternative is unavailable",
                "simulation_seconds": seconds,
            }
        }
    )
    return summary


def _draw_generators(
    draws_file: Path | None, columns: tuple[str, ...], persons: np.ndarray, num_draws: int
) -> tuple[dict | None, dict[str, str], int]:
    """Biogeme's user random number generators that hand out the ``(persons, R, len(columns))``
    standard normals of ``draws_file`` (``None``: Biogeme's own antithetic normals), the draw
    kind of each column, and the number of draws."""
    from biogeme.draws import RandomNumberGeneratorTuple

    if draws_file is None:
        return None, dict.fromkeys(columns, "NORMAL_ANTI"), num_draws
    draws = np.load(draws_file)
    if draws.ndim != 3 or draws.shape[0] != len(persons) or draws.shape[2] != len(columns):
        raise ValueError(
            f"{draws_file}: draws of shape {draws.shape}; expected ({len(persons)}, R, "
            f"{len(columns)})"
        )

    def column(k: int):
        def generator(sample_size: int, number_of_draws: int) -> np.ndarray:
            if (sample_size, number_of_draws) != draws.shape[:2]:
                raise ValueError(
                    f"Biogeme asked for ({sample_size}, {number_of_draws}) draws; the file "
                    f"has {draws.shape[:2]}"
                )
            return np.ascontiguousarray(draws[:, :, k], dtype=float)

        return generator

    generators = {
        f"FILE_{name}": RandomNumberGeneratorTuple(
            column(k), f"{name} draws from {draws_file.name}"
        )
        for k, name in enumerate(columns)
    }
    return generators, {name: f"FILE_{name}" for name in columns}, int(draws.shape[1])


def _fit_panel_mixture(
    frame: pd.DataFrame,
    utilities: dict,
    generators: dict | None,
    num_draws: int,
    seed: int,
    draws_file: Path | None,
    draw_columns: tuple[str, ...],
) -> dict:
    """Estimate the panel mixed logit of ``utilities`` (by ID, Monte Carlo over the draws
    of ``generators`` or Biogeme's own with ``seed``); the summary and the draw settings."""
    from biogeme.database import Database
    from biogeme.expressions import MonteCarlo, PanelLikelihoodTrajectory, Variable, log
    from biogeme.models import logit

    kernel = logit(utilities, _availability(), Variable("CHOICE"))
    formula = log(MonteCarlo(PanelLikelihoodTrajectory(kernel)))
    database = Database("swissmetro", frame.copy())
    database.panel("ID")
    options = {"number_of_draws": num_draws}
    if draws_file is None:
        options["seed"] = seed
    results, wall = _estimate(database, formula, random_number_generators=generators, **options)
    return {
        **_summary(results, wall),
        "num_draws": num_draws,
        "num_persons": int(frame.ID.nunique()),
        "draws": str(draws_file) if draws_file is not None else f"NORMAL_ANTI seed {seed}",
        "draw_columns": list(draw_columns),
    }


def fit_mixing_covariates(
    frame: pd.DataFrame,
    draws_file: Path | None,
    num_draws: int,
    seed: int,
    start: dict[str, float] | None = None,
) -> dict:
    """A panel mixed logit with heterogeneity in means and variances, written in the
    utilities as Biogeme's users write it: the time coefficient normal with mean
    ``B_TIME + B_TIME_MALE MALE + B_TIME_FIRST FIRST`` and spread
    ``B_TIME_S exp(G_TIME_MALE MALE)``; the cost coefficient ``-exp(L_COST + L_COST_FIRST FIRST
    + L_COST_S draw)`` (a negative lognormal); fixed ASCs of train and car; by person. Starts
    from ``start`` (by parameter name; 0 for the rest)."""
    start = start or {}
    from biogeme.expressions import Beta, Draws, Variable, exp

    def beta(name: str):
        return Beta(name, start.get(name, 0), None, None, 0)

    persons = np.unique(frame.ID.to_numpy())
    generators, kinds, num_draws = _draw_generators(
        draws_file, COVARIATE_DRAW_COLUMNS, persons, num_draws
    )

    # Biogeme renames the variables of a panel model per situation in place, so each utility
    # gets expression trees of its own (a shared tree would be renamed once per use)
    def b_time():
        male, first = Variable("MALE"), Variable("FIRST")
        spread = beta("B_TIME_S") * exp(beta("G_TIME_MALE") * Variable("MALE"))
        return (
            beta("B_TIME")
            + beta("B_TIME_MALE") * male
            + beta("B_TIME_FIRST") * first
            + spread * Draws("B_TIME_RND", kinds["B_TIME"])
        )

    def b_cost():
        return -exp(
            beta("L_COST")
            + beta("L_COST_FIRST") * Variable("FIRST")
            + beta("L_COST_S") * Draws("B_COST_RND", kinds["B_COST"])
        )

    asc = {1: beta("ASC_TRAIN"), 2: 0, 3: beta("ASC_CAR")}
    utilities = {
        alt: asc[alt] + b_time() * Variable(tt) + b_cost() * Variable(cost)
        for alt, (_, tt, cost) in ALTERNATIVES.items()
    }
    return _fit_panel_mixture(
        frame, utilities, generators, num_draws, seed, draws_file, COVARIATE_DRAW_COLUMNS
    ) | {"start": start or "all parameters 0"}


def fit_b12panel(
    frame: pd.DataFrame,
    draws_file: Path | None,
    num_draws: int,
    seed: int,
    start: dict[str, float] | None = None,
) -> dict:
    """b12panel with the draws of ``draws_file`` (user generators) or Biogeme's own, from the
    example's starting values (means 0, spreads 1) or ``start`` (by parameter name)."""
    start = start or {}
    from biogeme.expressions import Beta, Draws, Variable

    persons = np.unique(frame.ID.to_numpy())  # Biogeme's flat panel rows: groupby(ID), sorted
    generators, kinds, num_draws = _draw_generators(draws_file, DRAW_COLUMNS, persons, num_draws)

    def normal(name: str, fixed_mean: int = 0):
        mean = Beta(name, 0 if fixed_mean else start.get(name, 0), None, None, fixed_mean)
        spread = Beta(f"{name}_S", start.get(f"{name}_S", 1), None, None, 0)
        return mean + spread * Draws(f"{name}_RND", kinds[name])

    asc = {1: normal("ASC_TRAIN"), 2: normal("ASC_SM", fixed_mean=1), 3: normal("ASC_CAR")}
    b_time = normal("B_TIME")
    b_cost = Beta("B_COST", start.get("B_COST", 0), None, None, 0)
    utilities = {
        alt: asc[alt] + b_time * Variable(tt) + b_cost * Variable(cost)
        for alt, (_, tt, cost) in ALTERNATIVES.items()
    }
    return _fit_panel_mixture(
        frame, utilities, generators, num_draws, seed, draws_file, DRAW_COLUMNS
    ) | {"start": start or "example (means 0, spreads 1)"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--draws-file", type=Path, default=None, help="b12panel: (N, R, 4) .npy")
    parser.add_argument("--num-draws", type=int, default=500, help="b12panel without a file")
    parser.add_argument("--seed", type=int, default=1223, help="b12panel without a file")
    parser.add_argument(
        "--start-json", type=Path, default=None, help="starting values by parameter name"
    )
    args = parser.parse_args(argv)
    frame = swissmetro_frame()
    start = json.loads(args.start_json.read_text()) if args.start_json else None
    if args.model == "b01logit":
        payload = fit_b01logit(frame)[0]
    elif args.model == "b01logit_elasticities":
        payload = b01logit_elasticities(frame)
    elif args.model == "b09nested":
        payload = fit_b09nested(frame, start)
    elif args.model == "b11cnl":
        payload = fit_b11cnl(frame, start)
    elif args.model == "latent_class":
        payload = fit_latent_class(frame, start)
    elif args.model == "mixing_covariates":
        payload = fit_mixing_covariates(frame, args.draws_file, args.num_draws, args.seed, start)
    else:
        payload = fit_b12panel(frame, args.draws_file, args.num_draws, args.seed, start)
    payload = {"model": args.model, "num_rows": len(frame), **payload}
    args.out.write_text(json.dumps(payload, indent=1))
    print(
        f"{args.model}: LL {payload['loglik']:.6f}, {payload['wall_seconds']:.1f} s, "
        f"Biogeme {payload['biogeme_version']}"
    )


if __name__ == "__main__":
    main()
