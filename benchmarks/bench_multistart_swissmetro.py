"""Multistart and the simulation-noise diagnostic on the Swissmetro panel mixed logit.

Issue 14, item 2: on Swissmetro (Biogeme's b05 data preparation: PURPOSE in {1, 3},
CHOICE != 0, times and costs / 100, GA holders pay no train or Swissmetro fare,
availabilities; a panel by ID) with random normal ASC_TRAIN (``ASC_1``), ASC_CAR (``ASC_3``)
and time coefficient by person, a fixed cost coefficient and 500 Halton draws, BFGS from the
default start stops at a worse local maximum (-3589.74) than Biogeme reports on the same
simulated likelihood (-3584.23), with ``converged=True``. The correlated variant here is the
full Cholesky factor of the three random coefficients (see :data:`ISSUE`: not the issue's
correlated model). This runs ``MixedLogit.fit(..., num_starts=10, start_seed=0,
simulation_noise=True)`` for both variants and records every start's log-likelihood, how many
reached the best, the first start that did, the wall time and the simulation-noise report.

Run from the repository root: ``python -m benchmarks.bench_multistart_swissmetro``
(``--starts``, ``--draws``, ``--variants``; about 5 minutes on 2 cores). Prints the figures
and writes ``benchmarks/results/multistart_swissmetro.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from mixlogit import ChoiceData, LocalMaximumWarning, MixedLogit, SimulationNoiseWarning
from mixlogit.datasets import swissmetro_choice_data
from mixlogit.estimation.diagnostics import SAME_MAXIMUM_TOLERANCE

RESULTS = Path(__file__).resolve().parent / "results"
#: Biogeme's final log-likelihood on the same simulated likelihood, and this library's from
#: the default start, as issue 14 quotes them. The issue's correlated (Cholesky) variant is not
#: fully specified there; the full 3 x 3 Cholesky factor of the three random coefficients run
#: here reaches -3574.15 from the default start, not -3632.26, so it is another model and its
#: row records the issue's figures for reference only (``comparable: false``).
ISSUE = {
    "independent": {"biogeme": -3584.23, "default_start": -3589.74, "comparable": True},
    "correlated": {"biogeme": -3625.49, "default_start": -3632.26, "comparable": False},
}
RANDOM = ("ASC_1", "ASC_3", "time")


def run(data: ChoiceData, variant: str, num_starts: int, num_draws: int) -> dict:
    model = MixedLogit(
        fixed=["cost"],
        random={name: "normal" for name in RANDOM},
        correlated=variant == "correlated",
    )
    began = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = model.fit(
            data,
            num_draws=num_draws,
            num_starts=num_starts,
            start_seed=0,
            simulation_noise=True,
        )
    wall = time.perf_counter() - began
    starts = results.starts or []
    logliks = np.array([s["loglik"] for s in starts])
    at_best = logliks >= results.loglik - SAME_MAXIMUM_TOLERANCE
    noise = results.simulation_noise or {}
    row = {
        "variant": variant,
        "num_draws": num_draws,
        "num_starts": num_starts,
        "start_seed": 0,
        "best_loglik": results.loglik,
        "issue_figures": ISSUE[variant],
        "best_minus_biogeme": (
            results.loglik - ISSUE[variant]["biogeme"] if ISSUE[variant]["comparable"] else None
        ),
        "default_start_loglik": float(logliks[0]),
        "starts_reaching_best": int(at_best.sum()),
        "first_start_reaching_best": int(np.argmax(at_best)) + 1,
        "start_logliks": logliks.tolist(),
        "start_converged": [s["converged"] for s in starts],
        "start_iterations": [s["iterations"] for s in starts],
        "start_seconds": [s["time"] for s in starts],
        "converged": results.converged,
        "params": dict(zip(results.names, results.params.tolist(), strict=True)),
        "std_errors": dict(zip(results.names, results.std_errors.tolist(), strict=True)),
        "wall_seconds": wall,
        "local_maximum_warning": any(issubclass(w.category, LocalMaximumWarning) for w in caught),
        "simulation_noise_warning": any(
            issubclass(w.category, SimulationNoiseWarning) for w in caught
        ),
        "simulation_noise": {
            k: noise.get(k)
            for k in (
                "draws",
                "skip",
                "loglik_at_estimates",
                "loglik_reestimated",
                "loglik_change",
                "max_abs_shift_in_se",
                "shift_in_se",
                "converged",
            )
        },
    }
    biogeme = (
        f"Biogeme {ISSUE[variant]['biogeme']}"
        if ISSUE[variant]["comparable"]
        else "not the issue's correlated model: no Biogeme figure to compare"
    )
    print(
        f"{variant}: best {row['best_loglik']:.4f} ({biogeme}), default start "
        f"{row['default_start_loglik']:.4f}; {row['starts_reaching_best']} of {num_starts} "
        f"starts reached the best, first start {row['first_start_reaching_best']}; "
        f"wall {wall:.1f} s",
        flush=True,
    )
    print("  start log-likelihoods:", ", ".join(f"{v:.4f}" for v in logliks), flush=True)
    print(
        f"  simulation noise: log-lik change {noise.get('loglik_change', float('nan')):+.3f}, "
        f"largest shift {noise.get('max_abs_shift_in_se', float('nan')):.2f} SE",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=10, help="num_starts per variant")
    parser.add_argument("--draws", type=int, default=500, help="Halton draws per person")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["independent", "correlated"],
        choices=sorted(ISSUE),
    )
    args = parser.parse_args(argv)
    data = swissmetro_choice_data(panel=True)
    payload = {
        "cases": [run(data, variant, args.starts, args.draws) for variant in args.variants],
        "load_average": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "multistart_swissmetro.json").write_text(
        json.dumps(payload, indent=1, default=float)
    )


if __name__ == "__main__":
    main()
