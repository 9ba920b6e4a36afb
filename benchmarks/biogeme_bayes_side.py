"""Biogeme 3.3.2's Bayesian estimation of the Electricity mixed logit (run with Biogeme's python).

The specification of ``benchmarks.bench_bayes`` written in Biogeme: six independent normal
coefficients (pf, cl, loc, wk, tod, seas), each ``B_<V> + B_<V>_S * Draws("<V>_EPS",
"NORMAL")`` as a ``DistributedParameter`` (one standard normal per person: the non-centred
hierarchical model that mixlogit's NUTS samples), ``loglogit`` per situation on a panel
database by person; the priors of mixlogit's :class:`~mixlogit.bayes.BayesPriors` (means
``Normal(0, 10)``, spreads ``HalfNormal(5)``) through Biogeme's ``prior=`` factories; NumPyro's
NUTS with vectorised chains (``mcmc_sampling_strategy="numpyro-vectorized"``), the chains,
warm-up, draws and target acceptance given on the command line.

Usage: ``python benchmarks/biogeme_bayes_side.py --csv electricity.csv --out out.json
[--chains 4 --warmup 500 --draws 1000 --target-accept 0.85]``. Writes the wall time (from
building the ``BIOGEME`` object to having the results), and per population parameter the
posterior mean and SD, bulk ESS and r_hat (ArviZ), and the divergences.
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

VARIABLES = ("pf", "cl", "loc", "wk", "tod", "seas")
NUM_ALTERNATIVES = 4


def wide_frame(path: Path) -> pd.DataFrame:
    """Electricity (long: ``id``, ``chid``, ``alt``, ``choice`` and the variables) in wide
    form: one row per situation, ``<v>_<alt>`` columns, ``CHOICE`` 1..4, sorted by person."""
    long = pd.read_csv(path)
    wide = long.pivot(index=["id", "chid"], columns="alt", values=list(VARIABLES))
    wide.columns = [f"{v}_{int(a)}" for v, a in wide.columns]
    chosen = long.loc[long.choice == 1].set_index(["id", "chid"])["alt"]
    wide["CHOICE"] = chosen.reindex(wide.index).to_numpy()
    wide = wide.reset_index().sort_values(["id", "chid"]).reset_index(drop=True)
    return wide.astype(float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--target-accept", type=float, default=0.85)
    args = parser.parse_args()

    import arviz as az
    import pymc as pm
    from biogeme.biogeme import BIOGEME
    from biogeme.database import Database
    from biogeme.expressions import Beta, DistributedParameter, Draws, Variable
    from biogeme.models import loglogit
    from biogeme.version import __version__

    def mean_prior(name, initial_value, lower_bound, upper_bound):
        return pm.Normal(name, mu=0.0, sigma=10.0)

    def spread_prior(name, initial_value, lower_bound, upper_bound):
        return pm.HalfNormal(name, sigma=5.0)

    frame = wide_frame(args.csv)
    coefficients = {}
    for v in VARIABLES:
        mean = Beta(f"B_{v.upper()}", 0.0, None, None, 0, prior=mean_prior)
        spread = Beta(f"B_{v.upper()}_S", 1.0, 0.0, None, 0, prior=spread_prior)
        coefficients[v] = DistributedParameter(
            f"B_{v.upper()}_RND", mean + spread * Draws(f"{v.upper()}_EPS", "NORMAL")
        )
    utilities = {
        alt: sum(coefficients[v] * Variable(f"{v}_{alt}") for v in VARIABLES)
        for alt in range(1, NUM_ALTERNATIVES + 1)
    }
    formula = loglogit(utilities, None, Variable("CHOICE"))
    database = Database("electricity", frame)
    database.panel("id")
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            began = time.perf_counter()
            the_biogeme = BIOGEME(
                database,
                formula,
                bayesian_draws=args.draws,
                warmup=args.warmup,
                chains=args.chains,
                target_accept=args.target_accept,
                mcmc_sampling_strategy="numpyro-vectorized",
                sample_from_prior=False,
                calculate_likelihood=False,
                calculate_waic=False,
                calculate_loo=False,
                generate_html=False,
                generate_yaml=False,
                generate_netcdf=False,
                save_iterations=False,
            )
            the_biogeme.model_name = "electricity_bayes"
            results = the_biogeme.bayesian_estimation()
            wall = time.perf_counter() - began
        finally:
            os.chdir(here)
    posterior = results.idata.posterior
    names = [f"B_{v.upper()}{suffix}" for v in VARIABLES for suffix in ("", "_S")]
    summary = az.summary(posterior, var_names=names, kind="all")
    divergences = int(np.asarray(results.idata.sample_stats["diverging"]).sum())
    payload = {
        "biogeme_version": __version__,
        "wall_seconds": wall,
        "chains": args.chains,
        "warmup": args.warmup,
        "draws": args.draws,
        "target_accept": args.target_accept,
        "divergences": divergences,
        "parameters": {
            name: {
                "posterior_mean": float(summary.loc[name, "mean"]),
                "posterior_sd": float(summary.loc[name, "sd"]),
                "ess_bulk": float(summary.loc[name, "ess_bulk"]),
                "r_hat": float(summary.loc[name, "r_hat"]),
            }
            for name in names
        },
    }
    args.out.write_text(json.dumps(payload, indent=1))
    print(f"Biogeme {__version__}: {wall:.1f} s, divergences {divergences}")


if __name__ == "__main__":
    main()
