"""Bayesian mixed logit benchmark (``python -m benchmarks.bench_bayes``).

1. Electricity (Train; 361 people, 4,308 situations; pf, cl, loc, wk, tod, seas random normal,
   independent, panel by person): NUTS (NumPyro, vectorised chains) vs simulated maximum
   likelihood (``MixedLogit.fit``, 600 Halton draws): population means and SDs, r_hat, bulk ESS,
   wall time and time to 1,000 effective samples of the slowest population parameter; SVI on
   the same model (means and SDs vs NUTS, time; ``--svi-guide`` picks the SVI guide, default
   ``marginal``: person coefficients integrated by simulation).
2. Subsampled SVI on simulated data too large for one batch: peak memory (RSS) vs the data size.

Writes ``benchmarks/results/bayes_electricity.json`` / ``bayes_subsampling.json`` and a Markdown
table ``benchmarks/results/bayes.md``. ``--quick`` runs short chains (smoke test only).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
VARIABLES = ("pf", "cl", "loc", "wk", "tod", "seas")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def electricity(args: argparse.Namespace) -> dict:
    from mixlogit import ChoiceData, MixedLogit
    from mixlogit.bayes import fit_bayes
    from mixlogit.datasets import load_electricity

    data = ChoiceData(
        load_electricity(), choice="choice", alternative="alt", situation="chid", panel="id"
    )
    model = MixedLogit(random={v: "normal" for v in VARIABLES})
    t = time.perf_counter()
    ml = model.fit(data, num_draws=600)
    ml_seconds = time.perf_counter() - t
    ml_table = ml.table()

    previous = RESULTS / "bayes_electricity.json"
    if args.reuse_nuts and previous.exists():
        # re-run only ML and SVI against the saved NUTS posterior summary
        old = json.loads(previous.read_text())
        return _svi_part(args, model, data, ml, ml_seconds, old["nuts"], old["parameters"])
    res = fit_bayes(
        model,
        data,
        method="nuts",
        num_warmup=args.warmup,
        num_samples=args.samples,
        num_chains=args.chains,
        chain_method="vectorized",
        seed=0,
        diagnose=False,
    )
    diag = res.check(warn=False)
    summary = res.summary(var_names=["mean", "sd"])
    pop = res.population()
    rows = []
    for v in VARIABLES:
        for stat, ml_name in (("mean", v), ("sd", f"sd.{v}")):
            post = pop[(pop.coefficient == v) & (pop.statistic == stat)].iloc[0]
            est = float(ml_table.loc[ml_name, "estimate"])
            se = float(ml_table.loc[ml_name, "std_err"])
            if stat == "sd":
                est = abs(est)
            label = f"{stat}[{v}]"
            rows.append(
                {
                    "parameter": label,
                    "ml_estimate": est,
                    "ml_se": se,
                    "posterior_mean": float(post.posterior_mean),
                    "posterior_sd": float(post.posterior_sd),
                    "z_diff": (float(post.posterior_mean) - est) / float(post.posterior_sd),
                    "r_hat": float(summary.loc[label, "r_hat"]),
                    "ess_bulk": float(summary.loc[label, "ess_bulk"]),
                }
            )
    min_ess = min(r["ess_bulk"] for r in rows)
    slowest = min(rows, key=lambda r: r["ess_bulk"])["parameter"]
    nuts = {
        "chains": args.chains,
        "warmup": args.warmup,
        "samples": args.samples,
        "chain_method": "vectorized",
        "wall_seconds_incl_compile": res.fit_seconds,
        "postprocess_seconds": res.postprocess_seconds,
        "divergences": diag["divergences"],
        "max_r_hat_population": max(r["r_hat"] for r in rows),
        "min_ess_bulk_population": min_ess,
        "slowest_parameter": slowest,
        "seconds_per_1000_ess_slowest": res.fit_seconds * 1000.0 / min_ess,
        "elpd_loo": diag.get("elpd_loo"),
        "max_pareto_k": diag.get("max_pareto_k"),
        "loglik_method": res.loglik_method,
    }
    return _svi_part(args, model, data, ml, ml_seconds, nuts, rows)


def _svi_options(args: argparse.Namespace) -> dict:
    """The SVI settings both SVI fits share (guide, draws, step size; no diagnostics and no
    pointwise log-likelihood, which the benchmark does not report)."""
    return {
        "method": "svi",
        "local_guide": args.svi_guide,
        "num_draws": args.svi_draws,
        "learning_rate": args.svi_lr,
        "diagnose": False,
        "log_likelihood": False,
    }


def _svi_part(args, model, data, ml, ml_seconds, nuts, rows) -> dict:
    from mixlogit.bayes import fit_bayes

    svi = fit_bayes(
        model, data, num_steps=args.svi_steps, num_samples=1000, seed=0, **_svi_options(args)
    )
    svi_pop = svi.population()
    for r in rows:
        stat, v = r["parameter"][:-1].split("[")
        s = svi_pop[(svi_pop.coefficient == v) & (svi_pop.statistic == stat)].iloc[0]
        r["svi_mean"] = float(s.posterior_mean)
        r["svi_sd"] = float(s.posterior_sd)
        r["svi_minus_nuts_in_nuts_sd"] = (r["svi_mean"] - r["posterior_mean"]) / r["posterior_sd"]
    out = {
        "dataset": "electricity (361 people, 4308 situations, 6 random normals)",
        "ml": {"loglik": float(ml.loglik), "num_draws": 600, "seconds": ml_seconds},
        "nuts": nuts,
        "svi": {
            "steps": args.svi_steps,
            "seconds": svi.fit_seconds,
            "elbo_converged": svi.check(warn=False).get("elbo_converged"),
            "local_guide": args.svi_guide,
            "svi_draws": args.svi_draws if args.svi_guide == "marginal" else None,
            "learning_rate": args.svi_lr,
            "guide": _GUIDES[args.svi_guide],
            "max_abs_mean_diff_in_nuts_sd": max(
                abs(r["svi_minus_nuts_in_nuts_sd"]) for r in rows if r["parameter"][:4] == "mean"
            ),
            "max_abs_sd_diff_in_nuts_sd": max(
                abs(r["svi_minus_nuts_in_nuts_sd"]) for r in rows if r["parameter"][:2] == "sd"
            ),
        },
        "parameters": rows,
    }
    return out


_GUIDES = {
    "marginal": "person coefficients integrated by simulation (scrambled Sobol draws) + "
    "AutoMultivariateNormal on the population parameters",
    "noncentred": "AutoNormal (population) + mean-field Normal on the non-centred person draws",
    "centred": "AutoNormal (population) + mean-field Normal in coefficient space per person",
}


def subsampling(args: argparse.Namespace) -> dict:
    from mixlogit import ModelSpec
    from mixlogit.bayes import fit_bayes
    from mixlogit.simulate import draw_person_coefficients, simulate_choice_arrays

    spec = ModelSpec.build(fixed=["x0"], random={"x1": "normal", "price": "-lognormal"})
    P, T, J = args.big_people, 10, 4
    beta = draw_person_coefficients(
        spec, P, {"x0": 1.0}, {"x1": (0.5, 0.8), "price": (0.0, 0.5)}, seed=1
    )
    arr = simulate_choice_arrays(beta, T, J, spec.variables, seed=2)
    data_mib = (arr.X.nbytes + arr.available.nbytes + arr.chosen.nbytes) / 2**20
    rss_before = _peak_rss_mib()
    res = fit_bayes(
        spec,
        arr,
        batch_size=args.batch,
        num_steps=args.big_steps,
        num_samples=200,
        person_level=False,
        **_svi_options(args),
    )
    rss_after = _peak_rss_mib()
    pop = res.population()
    truth = {"x0": (1.0, None), "x1": (0.5, 0.8)}
    return {
        "people": P,
        "situations": P * T,
        "alternatives": J,
        "batch_people": args.batch,
        "local_guide": args.svi_guide,
        "steps": args.big_steps,
        "data_mib": data_mib,
        "peak_rss_before_fit_mib": rss_before,
        "peak_rss_after_fit_mib": rss_after,
        "fit_seconds": res.fit_seconds,
        "estimates": {
            f"{r.coefficient}.{r.statistic}": float(r.posterior_mean) for r in pop.itertuples()
        },
        "truth": {"x0.mean": 1.0, "x1.mean": 0.5, "x1.sd": 0.8, "price.mean": -np.exp(0.125)},
        "elbo_converged": res.check(warn=False).get("elbo_converged"),
        "_truth_note": str(truth),
    }


def _markdown(elec: dict | None, sub: dict | None) -> str:
    lines = ["# Bayesian mixed logit benchmark", ""]
    if elec:
        n = elec["nuts"]
        lines += [
            f"Electricity, NUTS {n['chains']} chains x {n['samples']} draws "
            f"({n['warmup']} warm-up, vectorised): wall {n['wall_seconds_incl_compile']:.0f} s "
            f"incl. compile, divergences {n['divergences']}, max r_hat "
            f"{n['max_r_hat_population']:.3f}, min bulk ESS {n['min_ess_bulk_population']:.0f} "
            f"({n['slowest_parameter']}), **{n['seconds_per_1000_ess_slowest']:.0f} s per 1,000 "
            f"ESS of the slowest population parameter**. SVI "
            f"(`local_guide={elec['svi'].get('local_guide', 'noncentred')!r}`) "
            f"{elec['svi']['steps']} steps: {elec['svi']['seconds']:.0f} s. ML (600 Halton "
            f"draws): LL {elec['ml']['loglik']:.2f} in {elec['ml']['seconds']:.0f} s.",
            "",
            "| parameter | ML (600 Halton) | ML SE | NUTS mean | NUTS sd | z | r_hat | ESS bulk "
            "| SVI mean | SVI sd | SVI z |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in elec["parameters"]:
            lines.append(
                f"| {r['parameter']} | {r['ml_estimate']:.3f} | {r['ml_se']:.3f} | "
                f"{r['posterior_mean']:.3f} | {r['posterior_sd']:.3f} | {r['z_diff']:+.2f} | "
                f"{r['r_hat']:.3f} | {r['ess_bulk']:.0f} | {r['svi_mean']:.3f} | "
                f"{r.get('svi_sd', float('nan')):.3f} | "
                f"{r['svi_minus_nuts_in_nuts_sd']:+.2f} |"
            )
        lines.append("")
    if sub:
        lines += [
            f"Subsampled SVI: {sub['people']:,} people, {sub['situations']:,} situations "
            f"({sub['data_mib']:.0f} MiB of arrays), batches of {sub['batch_people']} people, "
            f"{sub['steps']} steps in {sub['fit_seconds']:.0f} s; peak RSS "
            f"{sub['peak_rss_before_fit_mib']:.0f} MiB before the fit, "
            f"{sub['peak_rss_after_fit_mib']:.0f} MiB after.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--reuse-nuts", action="store_true", help="keep the saved NUTS results, redo ML and SVI"
    )
    parser.add_argument("--only", choices=("electricity", "subsampling"), default=None)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--svi-steps", type=int, default=3000)
    parser.add_argument(
        "--svi-guide", choices=("marginal", "noncentred", "centred"), default="marginal"
    )
    parser.add_argument("--svi-draws", type=int, default=512)
    parser.add_argument("--svi-lr", type=float, default=0.05)
    parser.add_argument("--big-people", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--big-steps", type=int, default=3000)
    args = parser.parse_args()
    if args.quick:
        args.chains, args.warmup, args.samples, args.svi_steps = 2, 100, 100, 500
        args.big_people, args.big_steps = 20_000, 300
    RESULTS.mkdir(exist_ok=True)
    elec = sub = None
    if args.only in (None, "electricity"):
        elec = electricity(args)
        (RESULTS / "bayes_electricity.json").write_text(json.dumps(elec, indent=2))
        print(json.dumps(elec["nuts"], indent=2), json.dumps(elec["svi"], indent=2))
    if args.only in (None, "subsampling"):
        sub = subsampling(args)
        (RESULTS / "bayes_subsampling.json").write_text(json.dumps(sub, indent=2))
        print(json.dumps(sub, indent=2))
    # the Markdown table shows the latest saved run of each part
    if elec is None and (RESULTS / "bayes_electricity.json").exists():
        elec = json.loads((RESULTS / "bayes_electricity.json").read_text())
    if sub is None and (RESULTS / "bayes_subsampling.json").exists():
        sub = json.loads((RESULTS / "bayes_subsampling.json").read_text())
    md = _markdown(elec, sub)
    (RESULTS / "bayes.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
