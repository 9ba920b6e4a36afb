"""WTP space on Electricity: mixlogit against xlogit 0.2.7, and against preference space.

Train's Electricity data (361 people, 4,308 situations, panel by person). The model in WTP
space: ``U = lambda (w' x - pf)`` with a fixed price scale ``lambda`` (mixlogit's ``pf``
parameter is the price coefficient ``-lambda``) and independent normal WTPs for cl, loc, wk,
tod and seas, in cents per kWh, 600 Halton draws.

* **xlogit**, which writes the same model with ``scale_factor=pf`` (its scale must be fixed),
  fitted in its own environment (``benchmarks/.venv-xlogit``, as ``bench_electricity``), once
  from its default start and once from mixlogit's (the MNL estimates converted to WTPs,
  spreads 0.1). The two libraries use the same Halton points (primes 2, 3, 5, ... over the
  random coefficients in order), so each library's log-likelihood at the other's estimates is
  the same simulated function: the report gives the fits, each library evaluated at the
  other's point, and the estimates in units of xlogit's standard errors.
* **Preference space**: with a fixed price coefficient, WTP space is a reparametrisation of
  the preference-space model with a fixed ``pf`` and normal coefficients
  (``beta_k = -beta_pf w_k``), whose maximum is the same; the preference-space fit's implied
  WTPs (``-beta_k / beta_pf``, spreads ``sd_k / |beta_pf|``) are compared with the WTP-space
  estimates.
* **Random scale** (mixlogit only; xlogit cannot): ``pf`` negative lognormal in WTP space, and
  for contrast the preference-space model with the same lognormal price; the medians and
  5-95 % ranges of each WTP distribution. In preference space a WTP is a normal over a
  lognormal and has heavy tails; in WTP space it is the normal that was specified.

Run from the repository root: ``python -m benchmarks.bench_wtp_space``. Writes
``benchmarks/results/wtp_space.json`` and ``.md``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._report import git_output, markdown_table, save_report
from benchmarks._timing import run_measured
from benchmarks.bench_electricity import ensure_xlogit_env

WTP_VARIABLES = ["cl", "loc", "wk", "tod", "seas"]
NUM_DRAWS = 600

XLOGIT_WORKER = r"""
import json, sys, time
import numpy as np, pandas as pd
from xlogit import MixedLogit
csv, n_draws = sys.argv[1], int(sys.argv[2])
# optional third argument {"init": [...], "maxiter": n}: start there (maxiter 0: evaluate only)
given = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
v = ["cl", "loc", "wk", "tod", "seas"]
df = pd.read_csv(csv)
start = time.perf_counter()
model = MixedLogit()
model.fit(X=df[v], y=df["choice"], varnames=v, ids=df["chid"], panels=df["id"], alts=df["alt"],
          n_draws=n_draws, randvars={k: "n" for k in v}, scale_factor=df["pf"], verbose=0,
          **({} if not given else {"init_coeff": np.array(given["init"]),
                                   "maxiter": given.get("maxiter", 2000)}))
print(json.dumps({"fit_time": time.perf_counter() - start, "loglik": float(model.loglikelihood),
                  "names": [str(n) for n in model.coeff_names],
                  "params": [float(x) for x in model.coeff_],
                  "std_errors": [float(x) for x in model.stderr],
                  "converged": bool(model.convergence)}))
"""


def electricity():
    from mixlogit import ChoiceData
    from mixlogit.datasets import load_electricity

    frame = load_electricity()
    data = ChoiceData(frame, choice="choice", alternative="alt", situation="chid", panel="id")
    return frame, data


def run_xlogit(csv: Path, init: list[float] | None = None, maxiter: int = 2000) -> dict:
    python = ensure_xlogit_env()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(XLOGIT_WORKER)
        script = handle.name
    try:
        extra = [] if init is None else [json.dumps({"init": init, "maxiter": maxiter})]
        return run_measured([str(python), script, str(csv), str(NUM_DRAWS), *extra])
    finally:
        os.unlink(script)


def xlogit_to_mixlogit(names: list[str], params: list[float]) -> dict[str, float]:
    """xlogit's WTP-space coefficients by mixlogit's names (``sd.<v>`` for its spreads, the
    price coefficient ``pf = -lambda``)."""
    out = {}
    for name, value in zip(names, params, strict=True):
        if name.startswith("sd."):
            out[name] = abs(value)  # the sign of a spread is not identified
        elif name in WTP_VARIABLES:
            out[name] = value
        else:  # the scale factor's coefficient
            out["pf"] = -value
    return out


def fit_summary(results, wall: float) -> dict[str, Any]:
    table = results.table()
    return {
        "loglik": float(results.loglik),
        "estimates": {n: float(v) for n, v in table["estimate"].items()},
        "std_errors": {n: float(v) for n, v in table["std_err"].items()},
        "robust_std_errors": {n: float(v) for n, v in table["robust_std_err"].items()},
        "converged": bool(results.converged),
        "wall_seconds": wall,
    }


def timed_fit(model, data, **options):
    began = time.perf_counter()
    results = model.fit(data, num_draws=NUM_DRAWS, **options)
    return results, time.perf_counter() - began


def loglik_at(model, data, point: dict[str, float]) -> float:
    import jax.numpy as jnp

    from mixlogit.estimation import build_problem
    from mixlogit.likelihood import x64

    problem = build_problem(model, data, num_draws=NUM_DRAWS)
    theta = np.array([point[n] for n in model.parameter_names])
    with x64():
        return float(problem.loglik(jnp.asarray(theta), problem.data))


def distribution_rows(results, label: str) -> list[list[str]]:
    rows = []
    for name in WTP_VARIABLES:
        wtp = results.wtp(name, "pf", num_draws=200_000, seed=3)
        rows.append(
            [
                label,
                name,
                f"{wtp['median']:.3f}",
                f"{wtp['q05']:.3f}",
                f"{wtp['q95']:.3f}",
                f"{wtp['mean']:.3f}" if np.isfinite(wtp["mean"]) else "-",
                f"{wtp['sd']:.3f}" if np.isfinite(wtp["sd"]) else "-",
            ]
        )
    return rows


def main() -> None:
    from mixlogit import MixedLogit

    frame, data = electricity()
    payload: dict[str, Any] = {
        "command": "python -m benchmarks.bench_wtp_space",
        "machine": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()},
        "commit": git_output("rev-parse", "HEAD"),
        "uncommitted_files": (git_output("status", "--porcelain") or "").splitlines(),
        "num_draws": NUM_DRAWS,
    }
    random = {v: "normal" for v in WTP_VARIABLES}
    wtp_model = MixedLogit(["pf"], random, wtp_space="pf")
    preference_model = MixedLogit(["pf"], random)
    print("mixlogit, WTP space (fixed scale):", flush=True)
    wtp_fit, wtp_wall = timed_fit(wtp_model, data)
    print("mixlogit, preference space (fixed price):", flush=True)
    pref_fit, pref_wall = timed_fit(preference_model, data)
    payload["mixlogit_wtp_space"] = fit_summary(wtp_fit, wtp_wall)
    payload["mixlogit_preference_space"] = fit_summary(pref_fit, pref_wall)
    implied = {"pf": pref_fit["pf"]}
    for name in WTP_VARIABLES:
        implied[name] = -pref_fit[name] / pref_fit["pf"]
        implied[f"sd.{name}"] = abs(pref_fit[f"sd.{name}"] / pref_fit["pf"])
    mine = payload["mixlogit_wtp_space"]["estimates"]
    payload["preference_vs_wtp"] = {
        "loglik_difference": wtp_fit.loglik - pref_fit.loglik,
        "max_abs_wtp_difference": max(abs(implied[n] - mine[n]) for n in implied if n != "pf"),
        "implied_wtps": implied,
    }

    from mixlogit.estimation.start import mnl_newton, starting_values

    arrays = data.to_arrays(wtp_model.spec.variables, check_identified=False)
    theta0 = starting_values(wtp_model.spec, None, mnl_newton(arrays))
    start = dict(zip(wtp_model.parameter_names, theta0.tolist(), strict=True))
    payload["mixlogit_start"] = start

    def in_xlogit_order(point: dict[str, float], names: list[str]) -> list[float]:
        return [point[n] if n in point else -point["pf"] for n in names]

    print("xlogit, WTP space (scale_factor=pf), its default start:", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        csv = Path(scratch) / "electricity.csv"
        frame.to_csv(csv, index=False)
        default = run_xlogit(csv)
        names = default["names"]
        print("xlogit from mixlogit's start:", flush=True)
        xl = run_xlogit(csv, in_xlogit_order(start, names))
        xl_at_mine = run_xlogit(csv, in_xlogit_order(mine, names), maxiter=0)
    default_point = xlogit_to_mixlogit(names, default["params"])
    payload["xlogit_default_start"] = {
        **default,
        "as_mixlogit": default_point,
        "mixlogit_at_this_point": loglik_at(wtp_model, data, default_point),
    }
    xl_point = xlogit_to_mixlogit(names, xl["params"])
    xl_se = xlogit_to_mixlogit(names, xl["std_errors"])
    xl_se["pf"] = abs(xl_se["pf"])
    payload["xlogit"] = {**xl, "as_mixlogit": xl_point}
    payload["xlogit_at_mixlogit"] = xl_at_mine["loglik"]
    payload["mixlogit_at_xlogit"] = loglik_at(wtp_model, data, xl_point)
    z = {n: (abs(mine[n]) - abs(xl_point[n])) / xl_se[n] for n in xl_point}
    payload["vs_xlogit"] = {
        "loglik_difference": wtp_fit.loglik - xl["loglik"],
        "max_abs_estimate_difference_over_xlogit_se": max(abs(v) for v in z.values()),
        "z": z,
        "max_rel_se_difference": max(
            abs(payload["mixlogit_wtp_space"]["std_errors"][n] / xl_se[n] - 1) for n in xl_se
        ),
        "time_ratio": wtp_wall / xl["fit_time"],
    }

    print("mixlogit, random (lognormal) price scale:", flush=True)
    lognormal = {"pf": "-lognormal", **random}
    random_wtp, random_wtp_wall = timed_fit(MixedLogit([], lognormal, wtp_space="pf"), data)
    random_pref, random_pref_wall = timed_fit(MixedLogit([], lognormal), data)
    payload["random_scale"] = {
        "wtp_space": fit_summary(random_wtp, random_wtp_wall),
        "preference_space": fit_summary(random_pref, random_pref_wall),
    }
    distributions = distribution_rows(random_wtp, "WTP space") + distribution_rows(
        random_pref, "preference space"
    )
    payload["random_scale"]["wtp_distributions"] = distributions
    text = markdown(payload, distributions)
    print(text)
    save_report("wtp_space", payload, text)


def markdown(payload: dict[str, Any], distributions: list[list[str]]) -> str:
    mine = payload["mixlogit_wtp_space"]
    xl = payload["xlogit"]
    versus = payload["vs_xlogit"]
    pref = payload["preference_vs_wtp"]
    names = ["pf", *WTP_VARIABLES, *(f"sd.{v}" for v in WTP_VARIABLES)]
    rows = [
        [
            name,
            f"{mine['estimates'][name]:.5f}",
            f"{xl['as_mixlogit'][name]:.5f}",
            f"{pref['implied_wtps'][name]:.5f}",
            f"{mine['std_errors'][name]:.5f}",
            f"{mine['robust_std_errors'][name]:.5f}",
        ]
        for name in names
    ]
    random = payload["random_scale"]
    lines = [
        "# WTP space on Electricity: mixlogit vs xlogit 0.2.7 and vs preference space",
        "",
        f"Command: `{payload['command']}`; {payload['num_draws']} Halton draws (the same points "
        "in both libraries); 2 CPUs. WTPs in cents per kWh; `pf` is the price coefficient "
        "(xlogit's scale factor coefficient with the sign flipped).",
        "",
        *markdown_table(
            [
                "parameter",
                "mixlogit (WTP space)",
                "xlogit (WTP space, mixlogit's start)",
                "mixlogit preference space, implied",
                "SE mixlogit",
                "robust SE mixlogit",
            ],
            rows,
        ),
        "",
        f"- Log-likelihoods: mixlogit {mine['loglik']:.6f}, xlogit {xl['loglik']:.6f} "
        f"(difference {versus['loglik_difference']:+.2e}); mixlogit's likelihood at xlogit's "
        f"estimates {payload['mixlogit_at_xlogit']:.6f}, xlogit's at mixlogit's "
        f"{payload['xlogit_at_mixlogit']:.6f}.",
        f"- xlogit from its default start (its MNL coefficients as WTPs): LL "
        f"{payload['xlogit_default_start']['loglik']:.6f}, scale coefficient "
        f"{-payload['xlogit_default_start']['as_mixlogit']['pf']:.5f}, converged "
        f"{payload['xlogit_default_start']['converged']} (mixlogit's likelihood at that point "
        f"{payload['xlogit_default_start']['mixlogit_at_this_point']:.6f}); the table's xlogit "
        "column starts from mixlogit's start.",
        f"- Estimates within {versus['max_abs_estimate_difference_over_xlogit_se']:.2e} of "
        f"xlogit's standard errors; standard errors within "
        f"{100 * versus['max_rel_se_difference']:.2g} % of xlogit's; wall time "
        f"{mine['wall_seconds']:.1f} s vs {xl['fit_time']:.1f} s (ratio "
        f"{versus['time_ratio']:.3f}, compilation included, imports outside).",
        f"- Preference space with the same fixed price: LL "
        f"{payload['mixlogit_preference_space']['loglik']:.6f} (WTP space minus preference "
        f"space {pref['loglik_difference']:+.2e}); implied WTPs within "
        f"{pref['max_abs_wtp_difference']:.2e} of the WTP-space estimates.",
        "",
        "## Random price scale (mixlogit only)",
        "",
        f"`pf` negative lognormal: LL {random['wtp_space']['loglik']:.3f} in WTP space (normal "
        f"WTPs) and {random['preference_space']['loglik']:.3f} in preference space (normal "
        "coefficients, WTP = their ratio to the lognormal price). Population distribution of "
        "each WTP (200,000 draws):",
        "",
        *markdown_table(["space", "WTP of", "median", "q05", "q95", "mean", "sd"], distributions),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
