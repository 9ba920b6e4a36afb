"""Electricity mixed logit: mixlogit vs xlogit 0.2.7 side by side, plus mixlogit scaling.

Run from the repository root::

    python -m benchmarks.bench_electricity            # 600 draws side by side + scaling
    python -m benchmarks.bench_electricity --full     # also 1,500 draws with xlogit

xlogit is installed in its own virtual environment ``benchmarks/.venv-xlogit`` (created on first
use with ``xlogit==0.2.7``). Each fit runs in its own subprocess so that wall time, CPU time
(user + system, from ``os.wait4``) and peak resident memory are measured the same way for both
libraries. The model: Train's Electricity data, 361 people, 4,308 situations, six independent
normal coefficients (pf, cl, loc, wk, tod, seas), panel by person, Halton draws.

mixlogit runs twice at 600 draws: *cold* (empty JAX persistent compilation cache, so the fit
includes every XLA compilation) and *warm* (the same cache, as for any repeated fit of a model
with the same shapes). The worker sums JAX's backend-compile events to report compile time.

Results go to ``benchmarks/results/electricity.json`` and ``electricity.md``.
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

from benchmarks._timing import run_measured

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
XLOGIT_VENV = ROOT / "benchmarks" / ".venv-xlogit"
VARIABLES = ["pf", "cl", "loc", "wk", "tod", "seas"]

XLOGIT_WORKER = r"""
import json, sys, time
import numpy as np, pandas as pd
from xlogit import MixedLogit
csv, n_draws = sys.argv[1], int(sys.argv[2])
# optional third argument: evaluate xlogit's log-likelihood at these parameters (no fit)
at = np.array(json.loads(sys.argv[3])) if len(sys.argv) > 3 else None
v = ["pf", "cl", "loc", "wk", "tod", "seas"]
df = pd.read_csv(csv)
start = time.perf_counter()
model = MixedLogit()
model.fit(X=df[v], y=df["choice"], varnames=v, ids=df["chid"], panels=df["id"],
          alts=df["alt"], n_draws=n_draws, randvars={k: "n" for k in v}, verbose=0,
          **({} if at is None else {"init_coeff": at, "maxiter": 0}))
elapsed = time.perf_counter() - start
print(json.dumps({"fit_time": elapsed, "loglik": float(model.loglikelihood),
                  "names": [str(n) for n in model.coeff_names],
                  "params": [float(x) for x in model.coeff_],
                  "std_errors": [float(x) for x in model.stderr],
                  "iterations": int(model.total_iter), "converged": bool(model.convergence)}))
"""


def _mixlogit_loglik_at(num_draws: int, params: list[float]) -> None:
    """Print mixlogit's simulated log-likelihood at given parameters (same Halton draws)."""
    import jax.numpy as jnp

    from mixlogit import ChoiceData, MixedLogit
    from mixlogit.datasets import load_electricity
    from mixlogit.estimation import build_problem
    from mixlogit.likelihood import x64

    data = ChoiceData(
        load_electricity(), choice="choice", alternative="alt", situation="chid", panel="id"
    )
    model = MixedLogit(random={v: "normal" for v in VARIABLES})
    problem = build_problem(model, data, num_draws=num_draws, draws="halton")
    with x64():
        loglik = float(problem.loglik(jnp.asarray(params, dtype=jnp.float64), problem.data))
    print(json.dumps({"loglik": loglik}))


#: the steps of ``estimate`` timed by :func:`_time_budget` (names in mixlogit.estimation.fit)
BUDGET_STEPS = {
    "simulated_problem": "arrays, draws and jit set-up",
    "mnl_newton": "MNL start",
    "Optimiser.maximise": "optimiser (BFGS), compilation included",
    "find_separation": "separation check",
    "covariances": "Hessian and covariances",
}


def _time_budget() -> dict[str, float]:
    """Wall seconds of each of :data:`BUDGET_STEPS` in the next fits (wrappers installed in
    ``mixlogit.estimation.fit``'s namespace; ``other`` is set by the caller)."""
    from mixlogit.estimation import fit

    seconds = dict.fromkeys(BUDGET_STEPS, 0.0)

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - start

        return wrapper

    for name in BUDGET_STEPS:
        if name == "Optimiser.maximise":
            fit.Optimiser.maximise = timed(name, fit.Optimiser.maximise)
        else:
            setattr(fit, name, timed(name, getattr(fit, name)))
    return seconds


def _mixlogit_worker(num_draws: int, replicate: int, hessian: bool, cache_dir: str | None) -> None:
    import jax
    import numpy as np
    import pandas as pd

    if cache_dir:
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    compile_seconds = [0.0]

    def on_duration(event: str, duration: float, **_: object) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compile_seconds[0] += duration

    jax.monitoring.register_event_duration_secs_listener(on_duration)

    from mixlogit import ChoiceData, MixedLogit
    from mixlogit.datasets import load_electricity

    frame = load_electricity()
    if replicate > 1:
        copies = []
        for copy in range(replicate):
            part = frame.copy()
            part["id"] = part["id"] + copy * (frame["id"].max() + 1)
            part["chid"] = part["chid"] + copy * (frame["chid"].max() + 1)
            copies.append(part)
        frame = pd.concat(copies, ignore_index=True)
    budget = _time_budget()
    start, cpu_start = time.perf_counter(), time.process_time()
    data = ChoiceData(frame, choice="choice", alternative="alt", situation="chid", panel="id")
    model = MixedLogit(random={v: "normal" for v in VARIABLES})
    results = model.fit(data, num_draws=num_draws, draws="halton", hessian=hessian)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    budget["other"] = elapsed - sum(budget.values())
    print(
        json.dumps(
            {
                "fit_time": elapsed,
                "fit_cpu_time": cpu,
                "compile_time": compile_seconds[0],
                "budget": budget,
                "function_evaluations": results.function_evaluations,
                "loglik": results.loglik,
                "names": results.names,
                "params": results.params.tolist(),
                "std_errors": np.sqrt(np.diag(results.cov)).tolist() if hessian else None,
                "iterations": results.iterations,
                "converged": results.converged,
            }
        )
    )


def ensure_xlogit_env() -> Path:
    python = XLOGIT_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(XLOGIT_VENV)], check=True)
    check = subprocess.run([str(python), "-c", "import xlogit"], capture_output=True)
    if check.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "xlogit==0.2.7", "pandas"], check=True
        )
    return python


def xlogit_version() -> str:
    """The xlogit version installed in :data:`XLOGIT_VENV` (as its package metadata says)."""
    python = ensure_xlogit_env()
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('xlogit'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def run_xlogit(csv: Path, num_draws: int, at: list[float] | None = None) -> dict:
    python = ensure_xlogit_env()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(XLOGIT_WORKER)
        script = handle.name
    extra = [] if at is None else [json.dumps(at)]
    try:
        return run_measured([str(python), script, str(csv), str(num_draws), *extra])
    finally:
        os.unlink(script)


def run_mixlogit(
    num_draws: int, replicate: int = 1, hessian: bool = True, cache_dir: Path | None = None
) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_electricity", "--worker"]
    command += ["--draws", str(num_draws), "--replicate", str(replicate)]
    if not hessian:
        command.append("--no-hessian")
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    return run_measured(command)


def _compare(mix: dict, xl: dict) -> dict:
    by_name = dict(zip(xl["names"], xl["params"], strict=True))
    se = dict(zip(xl["names"], xl["std_errors"], strict=True))
    deviation = {}
    for name, value in zip(mix["names"], mix["params"], strict=True):
        if name in by_name:
            # sd signs are not identified; compare magnitudes
            a, b = (
                (abs(value), abs(by_name[name]))
                if name.startswith("sd.")
                else (value, by_name[name])
            )
            deviation[name] = (a - b) / se[name]
    return {
        "loglik_difference": mix["loglik"] - xl["loglik"],
        "max_abs_z_vs_xlogit": max(abs(d) for d in deviation.values()),
        "max_abs_z_means_vs_xlogit": max(
            abs(d) for n, d in deviation.items() if not n.startswith("sd.")
        ),
        "z_vs_xlogit": deviation,
        "wall_ratio_fit": mix["fit_time"] / xl["fit_time"],
        "wall_ratio_process": mix["process_wall_time"] / xl["process_wall_time"],
        "cpu_ratio": mix["cpu_time"] / xl["cpu_time"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--draws", type=int, default=600)
    parser.add_argument("--replicate", type=int, default=1)
    parser.add_argument("--no-hessian", action="store_true")
    parser.add_argument("--full", action="store_true", help="also 1,500 draws with xlogit")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--loglik-at", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker and args.loglik_at:
        _mixlogit_loglik_at(args.draws, json.loads(args.loglik_at))
        return
    if args.worker:
        _mixlogit_worker(args.draws, args.replicate, not args.no_hessian, args.cache_dir)
        return

    from mixlogit.datasets import load_electricity

    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "xlogit_version": xlogit_version(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "electricity.csv"
        load_electricity().to_csv(csv, index=False)
        side_by_side = []
        draw_counts = [600, 1500] if args.full else [600]
        for num_draws in draw_counts:
            cache = Path(tmp) / f"jax-cache-{num_draws}"
            mix = run_mixlogit(num_draws, cache_dir=cache)  # cold: empty compilation cache
            xl = run_xlogit(csv, num_draws)
            warm = run_mixlogit(num_draws, cache_dir=cache)  # warm: compiled executables cached
            row = {
                "draws": num_draws,
                "mixlogit": mix,
                "mixlogit_warm": warm,
                "xlogit": xl,
                **_compare(mix, xl),
                "warm_wall_ratio_fit": warm["fit_time"] / xl["fit_time"],
                "warm_cpu_ratio": warm["cpu_time"] / xl["cpu_time"],
            }
            # Each library's log-likelihood at the other's estimates: equal values show the
            # two use the same draws and likelihood, so a gap between the fits is the optimiser's
            xl_at_mix = run_xlogit(csv, num_draws, at=mix["params"])["loglik"]
            at_xlogit = ["--draws", str(num_draws), "--loglik-at", json.dumps(xl["params"])]
            mix_at_xl = run_measured(
                [sys.executable, "-m", "benchmarks.bench_electricity", "--worker", *at_xlogit]
            )["loglik"]
            row["cross_check"] = {
                "xlogit_loglik_at_mixlogit_estimates": xl_at_mix,
                "mixlogit_loglik_at_xlogit_estimates": mix_at_xl,
            }
            print(
                f"{num_draws} draws: xlogit's LL at mixlogit's estimates {xl_at_mix:.6f}; "
                f"mixlogit's LL at xlogit's estimates {mix_at_xl:.6f}",
                flush=True,
            )
            side_by_side.append(row)
            for label, m in (("mixlogit cold", mix), ("mixlogit warm", warm)):
                print(
                    f"{num_draws} draws: {label} LL {m['loglik']:.3f} fit {m['fit_time']:.1f}s "
                    f"(cpu {m['fit_cpu_time']:.1f}s, compile {m['compile_time']:.1f}s) "
                    f"process cpu {m['cpu_time']:.1f}s rss {m['peak_rss_mib']:.0f}MiB "
                    f"iterations {m['iterations']} evaluations {m['function_evaluations']}",
                    flush=True,
                )
            print(
                f"{num_draws} draws: xlogit LL {xl['loglik']:.3f} fit {xl['fit_time']:.1f}s "
                f"process cpu {xl['cpu_time']:.1f}s rss {xl['peak_rss_mib']:.0f}MiB iterations "
                f"{xl['iterations']} | wall ratio cold {row['wall_ratio_fit']:.3f} warm "
                f"{row['warm_wall_ratio_fit']:.3f}, cpu ratio cold {row['cpu_ratio']:.3f} warm "
                f"{row['warm_cpu_ratio']:.3f}, max|z| {row['max_abs_z_vs_xlogit']:.2f}",
                flush=True,
            )
        if not args.full:
            mix1500 = run_mixlogit(1500)
            side_by_side.append({"draws": 1500, "mixlogit": mix1500})
            print(f"1500 draws: mixlogit LL {mix1500['loglik']:.3f} fit {mix1500['fit_time']:.1f}s")
        report["side_by_side"] = side_by_side
    previous = RESULTS / "electricity.json"
    if args.no_scaling and previous.exists():
        # keep the scaling tables of the last full run
        old = json.loads(previous.read_text())
        for key in ("scaling_draws", "scaling_situations"):
            if key in old:
                report[key] = old[key]
    if not args.no_scaling:
        draws_scaling = []
        for num_draws in (100, 250, 500, 1000, 2000):
            record = run_mixlogit(num_draws, hessian=False)
            draws_scaling.append({"draws": num_draws, **_scaling_fields(record)})
            print(f"draws {num_draws}: {record['fit_time']:.1f}s", flush=True)
        size_scaling = []
        for replicate in (1, 2, 4, 8):
            record = run_mixlogit(500, replicate=replicate, hessian=False)
            size_scaling.append(
                {"replicate": replicate, "situations": 4308 * replicate, **_scaling_fields(record)}
            )
            print(f"replicate {replicate}: {record['fit_time']:.1f}s", flush=True)
        report["scaling_draws"] = draws_scaling
        report["scaling_situations"] = size_scaling
    report["machine"]["load_average_end"] = os.getloadavg()
    (RESULTS / "electricity.json").write_text(json.dumps(report, indent=1))
    (RESULTS / "electricity.md").write_text(_markdown(report))
    print(_markdown(report))


def _scaling_fields(record: dict) -> dict:
    keys = ("fit_time", "process_wall_time", "cpu_time", "peak_rss_mib", "loglik", "iterations")
    return {k: record[k] for k in keys}


def _markdown(report: dict) -> str:
    lines = [
        "# Electricity mixed logit: mixlogit vs xlogit 0.2.7",
        "",
        f"Machine: {report['machine']['cpus']} CPUs, load average at start "
        f"{report['machine']['load_average'][0]:.1f}, at end "
        f"{report['machine'].get('load_average_end', [float('nan')])[0]:.1f} (other jobs "
        "share the machine; CPU time is less sensitive to that than wall time).",
        "",
        "Fit time includes data preparation, starting values (MNL), JIT compilation, the "
        "optimisation and the standard errors for mixlogit; model construction and fit for xlogit.",
        "",
        "mixlogit *cold*: empty JAX compilation cache (every XLA compilation is in the fit "
        "time); *warm*: the persistent compilation cache already holds the executables (a "
        "repeated fit). Compile = time in XLA backend compilation during the fit.",
        "",
        "| draws | library | log-likelihood | fit wall (s) | fit CPU (s) | compile (s) "
        "| process CPU (s) | peak RSS (MiB) | iterations |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {"mixlogit": "mixlogit (cold)", "mixlogit_warm": "mixlogit (warm)"}
    for row in report["side_by_side"]:
        for lib in ("mixlogit", "mixlogit_warm", "xlogit"):
            if lib not in row:
                continue
            r = row[lib]
            fit_cpu = f"{r['fit_cpu_time']:.1f}" if "fit_cpu_time" in r else ""
            compile_time = f"{r['compile_time']:.1f}" if "compile_time" in r else ""
            lines.append(
                f"| {row['draws']} | {labels.get(lib, lib)} | {r['loglik']:.3f} | "
                f"{r['fit_time']:.1f} | {fit_cpu} | {compile_time} | {r['cpu_time']:.1f} | "
                f"{r['peak_rss_mib']:.0f} | {r['iterations']} |"
            )
        if "xlogit" in row:
            lines.append(
                f"| {row['draws']} | **ratio mixlogit/xlogit** | diff "
                f"{row['loglik_difference']:+.3f} | **cold {row['wall_ratio_fit']:.3f}, warm "
                f"{row['warm_wall_ratio_fit']:.3f}** | | | cold {row['cpu_ratio']:.3f}, warm "
                f"{row['warm_cpu_ratio']:.3f} | | max abs z vs xlogit "
                f"{row['max_abs_z_vs_xlogit']:.2f} |"
            )
        if "cross_check" in row:
            cross = row["cross_check"]
            lines.append(
                f"| {row['draws']} | cross-check | xlogit's LL at mixlogit's estimates "
                f"{cross['xlogit_loglik_at_mixlogit_estimates']:.6f}; mixlogit's LL at xlogit's "
                f"estimates {cross['mixlogit_loglik_at_xlogit_estimates']:.6f} | | | | | | |"
            )
    budget_rows = [
        (row["draws"], label, row[lib]["budget"])
        for row in report["side_by_side"]
        for lib, label in (("mixlogit", "cold"), ("mixlogit_warm", "warm"))
        if lib in row and "budget" in row[lib]
    ]
    if budget_rows:
        steps = [*BUDGET_STEPS.values(), "other (data, results, ...)"]
        lines += [
            "",
            "## Where mixlogit's fit time goes (wall seconds)",
            "",
            "| draws | cache | " + " | ".join(steps) + " |",
            "|---:|---|" + "---:|" * len(steps),
        ]
        for draws, label, budget in budget_rows:
            cells = [f"{budget[name]:.2f}" for name in (*BUDGET_STEPS, "other")]
            lines.append(f"| {draws} | {label} | " + " | ".join(cells) + " |")
    if "scaling_draws" in report:
        lines += [
            "",
            "## mixlogit scaling (no standard errors)",
            "",
            "| draws | situations | fit wall (s) | CPU (s) | peak RSS (MiB) | log-likelihood |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in report["scaling_draws"]:
            lines.append(
                f"| {r['draws']} | 4308 | {r['fit_time']:.1f} | {r['cpu_time']:.1f} | "
                f"{r['peak_rss_mib']:.0f} | {r['loglik']:.3f} |"
            )
        for r in report["scaling_situations"]:
            lines.append(
                f"| 500 | {r['situations']} | {r['fit_time']:.1f} | {r['cpu_time']:.1f} | "
                f"{r['peak_rss_mib']:.0f} | {r['loglik']:.3f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
