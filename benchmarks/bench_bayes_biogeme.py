"""Bayesian Electricity mixed logit: mixlogit's NUTS beside Biogeme 3.3.2's, side by side.

The same specification on both sides (``benchmarks.bench_bayes``: six independent normal
coefficients, panel by person, the non-centred hierarchical model with one standard normal per
person and coefficient), the same priors (means ``Normal(0, 10)``, spreads ``HalfNormal(5)``:
mixlogit's defaults, given to Biogeme as ``prior=`` factories), the same sampler family
(NumPyro's NUTS, chains vectorised on one device), chains, warm-up, draws and target acceptance.
mixlogit: ``MixedLogit(...).fit(data, method="nuts", ...)``; Biogeme:
``BIOGEME.bayesian_estimation()`` in its own environment (:mod:`benchmarks.biogeme_bayes_side`,
run with ``--biogeme-python``). Each wall time runs from specifying the fit to having the
posterior, compilation included, imports and data loading outside. Reported: posterior means
and SDs side by side (their difference in posterior SDs), bulk ESS, r_hat, divergences, and the
seconds per 1,000 effective samples of each side's slowest population parameter.

Run from the repository root: ``python -m benchmarks.bench_bayes_biogeme`` (``--chains``,
``--warmup``, ``--draws``). Writes ``benchmarks/results/bayes_biogeme.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._report import git_output, markdown_table, save_report

ROOT = Path(__file__).resolve().parents[1]
BIOGEME_PYTHON = "/work/envs/biogeme/bin/python"
VARIABLES = ("pf", "cl", "loc", "wk", "tod", "seas")


def mixlogit_nuts(args: argparse.Namespace) -> dict[str, Any]:
    from mixlogit import ChoiceData, MixedLogit
    from mixlogit.datasets import load_electricity

    data = ChoiceData(
        load_electricity(), choice="choice", alternative="alt", situation="chid", panel="id"
    )
    model = MixedLogit(random={v: "normal" for v in VARIABLES})
    began = time.perf_counter()
    results = model.fit(
        data,
        method="nuts",
        num_warmup=args.warmup,
        num_samples=args.draws,
        num_chains=args.chains,
        chain_method="vectorized",
        target_accept=args.target_accept,
        seed=0,
        diagnose=False,
    )
    wall = time.perf_counter() - began
    summary = results.summary(var_names=["mean", "sd"])
    divergences = int(results.check(warn=False)["divergences"])
    parameters = {}
    for v in VARIABLES:
        for stat in ("mean", "sd"):
            row = summary.loc[f"{stat}[{v}]"]
            parameters[f"{stat}[{v}]"] = {
                "posterior_mean": float(row["mean"]),
                "posterior_sd": float(row["sd"]),
                "ess_bulk": float(row["ess_bulk"]),
                "r_hat": float(row["r_hat"]),
            }
    return {"wall_seconds": wall, "divergences": divergences, "parameters": parameters}


def biogeme_nuts(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    from mixlogit.datasets import load_electricity

    csv = scratch / "electricity.csv"
    load_electricity().to_csv(csv, index=False)
    out = scratch / "biogeme_bayes.json"
    command = [args.biogeme_python, str(ROOT / "benchmarks" / "biogeme_bayes_side.py")]
    command += ["--csv", str(csv), "--out", str(out), "--chains", str(args.chains)]
    command += ["--warmup", str(args.warmup), "--draws", str(args.draws)]
    command += ["--target-accept", str(args.target_accept)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=scratch)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    print(f"  {done.stdout.strip().splitlines()[-1]}", flush=True)
    payload = json.loads(out.read_text())
    # Biogeme's names B_PF, B_PF_S as mixlogit's mean[pf], sd[pf]
    renamed = {}
    for v in VARIABLES:
        renamed[f"mean[{v}]"] = payload["parameters"][f"B_{v.upper()}"]
        renamed[f"sd[{v}]"] = payload["parameters"][f"B_{v.upper()}_S"]
    payload["parameters"] = renamed
    return payload


def per_1000_ess(side: dict[str, Any]) -> tuple[float, str]:
    slowest = min(side["parameters"], key=lambda n: side["parameters"][n]["ess_bulk"])
    ess = side["parameters"][slowest]["ess_bulk"]
    return side["wall_seconds"] * 1000.0 / ess, slowest


def markdown(payload: dict[str, Any]) -> str:
    mine, theirs = payload["mixlogit"], payload["biogeme"]
    rows = []
    for name in mine["parameters"]:
        a, b = mine["parameters"][name], theirs["parameters"][name]
        pooled = max(a["posterior_sd"], b["posterior_sd"])
        rows.append(
            [
                name,
                f"{a['posterior_mean']:.3f}",
                f"{b['posterior_mean']:.3f}",
                f"{a['posterior_sd']:.3f}",
                f"{b['posterior_sd']:.3f}",
                f"{(a['posterior_mean'] - b['posterior_mean']) / pooled:+.2f}",
                f"{a['ess_bulk']:.0f}",
                f"{b['ess_bulk']:.0f}",
                f"{a['r_hat']:.3f}",
                f"{b['r_hat']:.3f}",
            ]
        )
    s = payload["settings"]
    mine_rate, mine_slowest = per_1000_ess(mine)
    their_rate, their_slowest = per_1000_ess(theirs)
    lines = [
        "# Bayesian Electricity mixed logit: mixlogit NUTS vs Biogeme 3.3.2",
        "",
        f"Command: `{payload['command']}`; {s['chains']} chains x {s['draws']} draws after "
        f"{s['warmup']} warm-up, vectorised, target acceptance {s['target_accept']}; "
        f"{payload['machine']['cpus']} CPUs, load {payload['machine']['load_avg_start'][0]:.1f} "
        "at the start. Same priors (means Normal(0, 10), spreads HalfNormal(5)), same "
        "non-centred model.",
        "",
        *markdown_table(
            [
                "parameter",
                "mean mixlogit",
                "mean Biogeme",
                "sd mixlogit",
                "sd Biogeme",
                "diff / larger sd",
                "ESS mixlogit",
                "ESS Biogeme",
                "r_hat mixlogit",
                "r_hat Biogeme",
            ],
            rows,
        ),
        "",
        f"- Wall time: mixlogit {mine['wall_seconds']:.1f} s, Biogeme "
        f"{theirs['wall_seconds']:.1f} s (ratio {mine['wall_seconds'] / theirs['wall_seconds']:.3f}); "
        f"divergences {mine['divergences']} and {theirs['divergences']}.",
        f"- Seconds per 1,000 ESS of the slowest population parameter: mixlogit "
        f"{mine_rate:.1f} ({mine_slowest}), Biogeme {their_rate:.1f} ({their_slowest}); ratio "
        f"{mine_rate / their_rate:.3f}.",
        f"- Largest difference of posterior means: "
        f"{payload['max_abs_mean_difference_in_sd']:.2f} posterior SDs (Monte "
        "Carlo error on both sides included).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--biogeme-python", default=BIOGEME_PYTHON)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--target-accept", type=float, default=0.85)
    parser.add_argument(
        "--report", default="bayes_biogeme", help="name of the saved results (default %(default)s)"
    )
    args = parser.parse_args(argv)
    payload: dict[str, Any] = {
        "command": "python -m benchmarks.bench_bayes_biogeme "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()},
        "commit": git_output("rev-parse", "HEAD"),
        "uncommitted_files": (git_output("status", "--porcelain") or "").splitlines(),
        "settings": {
            "chains": args.chains,
            "warmup": args.warmup,
            "draws": args.draws,
            "target_accept": args.target_accept,
        },
    }
    print("mixlogit NUTS:", flush=True)
    payload["mixlogit"] = mixlogit_nuts(args)
    print(f"  {payload['mixlogit']['wall_seconds']:.1f} s", flush=True)
    print("Biogeme NUTS:", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        payload["biogeme"] = biogeme_nuts(args, Path(scratch))
    mine, theirs = payload["mixlogit"]["parameters"], payload["biogeme"]["parameters"]
    payload["max_abs_mean_difference_in_sd"] = max(
        abs(mine[n]["posterior_mean"] - theirs[n]["posterior_mean"])
        / max(mine[n]["posterior_sd"], theirs[n]["posterior_sd"])
        for n in mine
    )
    for side in ("mixlogit", "biogeme"):
        rate, slowest = per_1000_ess(payload[side])
        payload[side]["seconds_per_1000_ess_slowest"] = rate
        payload[side]["slowest_parameter"] = slowest
    text = markdown(payload)
    print(text)
    save_report(args.report, payload, text)


if __name__ == "__main__":
    main()
