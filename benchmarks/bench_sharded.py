"""Mixed logit with the decision makers split between 2 host CPU devices (``fit(devices=2)``).

Train's Electricity data replicated to about 1e5 and 1e6 rows (situation x alternative), six
independent normal coefficients, panel by person, 100 Halton draws, standard errors. Each fit
runs in its own process (wall, CPU time and peak RSS measured the same way,
:func:`benchmarks._timing.run_measured`), three ways:

* ``plain``: one device, no flag;
* ``1 of 2``: ``XLA_FLAGS=--xla_force_host_platform_device_count=2``, default device only;
* ``2 devices``: the same flag, ``devices=2``.

Reported: the largest difference of the estimates, standard errors and log-likelihood from
the ``1 of 2`` fit (same process set-up), the fit time, the time of one value + gradient +
scores evaluation at the estimates (best of 3), the bytes of the blocked arrays each device
holds and the process's peak RSS (host devices share one process, so RSS is their sum).
Two CPU cores here: two host devices run on one core each.

Run: ``python -m benchmarks.bench_sharded`` (about five minutes on 2 cores). Results go to
``benchmarks/results/sharded.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from benchmarks._report import markdown_table, save_report
from benchmarks._timing import best_time, run_measured

VARIABLES = ["pf", "cl", "loc", "wk", "tod", "seas"]
#: replications of Electricity's 17,232 rows: ~1e5 and ~1e6 rows
REPLICATIONS = (6, 58)
NUM_DRAWS = 100
SETUPS = {"plain": (False, None), "1 of 2": (True, None), "2 devices": (True, 2)}


def _worker(replicate: int, devices: int | None) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import pandas as pd

    from mixlogit import ChoiceData, MixedLogit
    from mixlogit.datasets import load_electricity
    from mixlogit.estimation.sharding import block_bytes_per_device
    from mixlogit.likelihood import x64

    frame = load_electricity()
    copies = []
    for copy in range(replicate):
        part = frame.copy()
        part["id"] += copy * (frame["id"].max() + 1)
        part["chid"] += copy * (frame["chid"].max() + 1)
        copies.append(part)
    frame = pd.concat(copies, ignore_index=True)
    data = ChoiceData(frame, choice="choice", alternative="alt", situation="chid", panel="id")
    model = MixedLogit(random={v: "normal" for v in VARIABLES})
    start = time.perf_counter()
    results = model.fit(data, num_draws=NUM_DRAWS, draws="halton", devices=devices)
    fit_time = time.perf_counter() - start
    problem = results.problem
    with x64():
        theta = jnp.asarray(results.params)
        evaluation = best_time(
            lambda: jax.block_until_ready(problem.value_and_grad(theta, problem.data)), 3
        )
    print(
        json.dumps(
            {
                "rows": len(frame),
                "persons": int(frame["id"].nunique()),
                "host_devices": len(jax.devices()),
                "devices_used": len(problem.data.blocks.dX.sharding.device_set),
                "fit_time": fit_time,
                "evaluation_time": evaluation,
                "iterations": results.iterations,
                "function_evaluations": results.function_evaluations,
                "loglik": results.loglik,
                "params": results.params.tolist(),
                "std_errors": np.sqrt(np.diag(results.cov)).tolist(),
                "converged": results.converged,
                "block_bytes_per_device": block_bytes_per_device(problem.data.blocks),
            }
        )
    )


def run(replicate: int, flag: bool, devices: int | None) -> dict:
    env = {**os.environ}
    env.pop("XLA_FLAGS", None)
    if flag:
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    command = [sys.executable, "-m", "benchmarks.bench_sharded", "--worker"]
    command += ["--replicate", str(replicate), "--devices", str(devices or 0)]
    return run_measured(command, env=env)


def _markdown(report: dict) -> str:
    lines = ["# Mixed logit on 2 host devices (Electricity replicated)", ""]
    lines += [
        f"Machine: {report['machine']['cpus']} CPUs; {NUM_DRAWS} Halton draws, 6 normals, "
        "panel, standard errors. Differences are to the `1 of 2` fit.",
        "",
    ]
    rows = []
    for r in report["runs"]:
        held = r["block_bytes_per_device"].values()
        rows.append(
            [
                f"{r['rows']:,}",
                r["setup"],
                f"{r['fit_time']:.1f}",
                f"{r['evaluation_time'] * 1e3:.0f}",
                r["iterations"],
                " / ".join(f"{b / 2**20:.0f}" for b in held),
                f"{r['peak_rss_mib']:.0f}",
                f"{r['max_abs_param_diff']:.1e}",
                f"{r['max_rel_se_diff']:.1e}",
                f"{r['loglik_diff']:.1e}",
            ]
        )
    lines += markdown_table(
        [
            "rows",
            "setup",
            "fit (s)",
            "value+grad+scores (ms)",
            "iterations",
            "blocked arrays per device (MiB)",
            "process peak RSS (MiB)",
            "max abs. estimate diff.",
            "max rel. SE diff.",
            "log-lik. diff.",
        ],
        rows,
    )
    lines += ["", "Run: `python -m benchmarks.bench_sharded`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--replicate", type=int, default=1)
    parser.add_argument("--devices", type=int, default=0)
    args = parser.parse_args()
    if args.worker:
        _worker(args.replicate, args.devices or None)
        return
    report: dict = {"machine": {"cpus": os.cpu_count()}, "num_draws": NUM_DRAWS, "runs": []}
    for replicate in REPLICATIONS:
        by_setup = {}
        for setup, (flag, devices) in SETUPS.items():
            record = run(replicate, flag, devices)
            by_setup[setup] = record
            print(
                f"{record['rows']:>9,} rows  {setup:9s} fit {record['fit_time']:6.1f}s  eval "
                f"{record['evaluation_time'] * 1e3:6.0f}ms  rss {record['peak_rss_mib']:6.0f}MiB  "
                f"held {record['block_bytes_per_device']}",
                flush=True,
            )
        reference = by_setup["1 of 2"]
        for setup, record in by_setup.items():
            record.update(
                setup=setup,
                max_abs_param_diff=max(
                    abs(a - b) for a, b in zip(record["params"], reference["params"], strict=True)
                ),
                max_rel_se_diff=max(
                    abs(a / b - 1.0)
                    for a, b in zip(record["std_errors"], reference["std_errors"], strict=True)
                ),
                loglik_diff=abs(record["loglik"] - reference["loglik"]),
            )
            report["runs"].append(record)
    save_report("sharded", report, _markdown(report))
    print(_markdown(report))


if __name__ == "__main__":
    main()
