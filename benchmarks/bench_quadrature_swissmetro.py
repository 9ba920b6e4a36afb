"""Converged quadrature on Swissmetro (Biogeme b05; issue 14, item 1).

b05: ASC_TRAIN, ASC_CAR and cost fixed, a normal travel-time coefficient; times and costs
/ 100, PURPOSE in {1, 3}, CHOICE != 0, availabilities, one coefficient draw per situation
(``panel=False``, as in Biogeme's example).

Prints and saves (benchmarks/results/quadrature_swissmetro.{json,md}):

1. ``MixedLogit(...).fit(data, method="quadrature")`` at the tolerance given (default the
   library's 1e-3): log-likelihood, the error estimate it reports, nodes per dimension, the
   rounds of refinement and the wall time, with an independent log-likelihood at the estimates
   (scipy's adaptive ``quad_vec`` per situation on the whole real line);
2. the log-likelihood error at those estimates of Gauss-Hermite and of the trapezoidal rule
   (the library's) against node count: why Gauss-Hermite cannot converge here;
3. the same fit with a second random coefficient (``--second``: a normal ASC_TRAIN, a normal
   cost or a negative lognormal cost).

Run: ``python -m benchmarks.bench_quadrature_swissmetro`` (a few minutes on 2 cores; add
``--rows 1500 --seed 14`` for a random subset of situations).
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
import warnings

import numpy as np
from scipy import integrate, special

from benchmarks._report import markdown_table, save_report
from mixlogit import ChoiceData, MixedLogit
from mixlogit._series import standard_normal_quadrature
from mixlogit.datasets import swissmetro_choice_data
from mixlogit.quadrature import trapezoid_normal_rule

SECOND = {
    "asc": ("ASC_1", "normal"),
    "cost": ("cost", "normal"),
    "lognormal-cost": ("cost", "-lognormal"),
}


def fit(model: MixedLogit, data: ChoiceData, tolerance: float) -> tuple[object, dict]:
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = model.fit(data, method="quadrature", panel=False, quadrature_tolerance=tolerance)
    wall = time.perf_counter() - start
    info = results.quadrature
    row = {
        "loglik": results.loglik,
        "error_estimate": info["error"],
        "tolerance": tolerance,
        "converged_rule": info["converged"],
        "nodes_per_dim": info["nodes_per_dim"],
        "nodes_total": int(np.prod(info["nodes_per_dim"])),
        "optimisations": len(info["rounds"]),
        "rounds": [
            {"nodes": r["nodes"], "loglik": r["loglik"], "error": r["error"]}
            for r in info["rounds"]
        ],
        "wall_s": wall,
        # peak resident memory of the whole process so far (Linux: KiB), an upper bound for this fit
        "peak_rss_gib_so_far": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "params": dict(zip(results.names, map(float, results.params), strict=True)),
        "std_err": dict(zip(results.names, map(float, results.std_errors), strict=True)),
        "warnings": [str(w.message) for w in caught],
    }
    return results, row


class B05Integrand:
    """Each situation's choice probability as a function of the time coefficient's ``z``."""

    def __init__(self, data: ChoiceData, params: dict):
        arrays = data.to_arrays(["ASC_1", "ASC_3", "cost", "time"])
        X, self.available = arrays.X, arrays.available
        diff = X - X[np.arange(X.shape[0]), arrays.chosen][:, None, :]
        names = list(arrays.variable_names)
        beta = np.array([params[n] for n in ("ASC_1", "ASC_3", "cost")])
        self.fixed = diff[..., [names.index(n) for n in ("ASC_1", "ASC_3", "cost")]] @ beta
        self.time = diff[..., names.index("time")]
        self.mean, self.sd = params["time"], params["sd.time"]
        self.weights = arrays.weights

    def probability(self, z: np.ndarray) -> np.ndarray:
        """``(S, len(z))`` probabilities of the chosen alternatives."""
        v = self.fixed[..., None] + self.time[..., None] * (self.mean + self.sd * z)
        v = np.where(self.available[..., None], v, -np.inf)
        return np.exp(-special.logsumexp(v, axis=1))

    def loglik(self, nodes: np.ndarray, weights: np.ndarray) -> float:
        return float(self.weights @ np.log(self.probability(nodes) @ weights))

    def adaptive_loglik(self) -> tuple[float, float]:
        def integrand(z):
            return (
                self.probability(np.array([z]))[:, 0] * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
            )

        p, bound = integrate.quad_vec(
            integrand, -np.inf, np.inf, epsabs=1e-14, epsrel=1e-12, norm="max"
        )
        return float(self.weights @ np.log(p)), float(bound)


def rule_errors(integrand: B05Integrand, reference: float) -> list[dict]:
    rows = []
    for n in (16, 32, 64, 128, 256, 512, 1024):
        gh_nodes, gh_log_w = standard_normal_quadrature(n)
        trap = trapezoid_normal_rule(n + 1)
        rows.append(
            {
                "nodes": n,
                "gauss_hermite_error": integrand.loglik(gh_nodes, np.exp(gh_log_w)) - reference,
                "trapezoid_nodes": n + 1,
                "trapezoid_error": integrand.loglik(*trap) - reference,
            }
        )
        print(
            f"{n:5d} nodes: Gauss-Hermite {rows[-1]['gauss_hermite_error']:+.3e}   "
            f"trapezoid ({n + 1}) {rows[-1]['trapezoid_error']:+.3e}",
            flush=True,
        )
    return rows


def print_fit(label: str, row: dict) -> None:
    print(
        f"{label}: LL {row['loglik']:.6f}, reported error {row['error_estimate']:.2e} "
        f"(tolerance {row['tolerance']:g}, met: {row['converged_rule']}), "
        f"{row['nodes_per_dim']} nodes/dim ({row['nodes_total']} in all), "
        f"{row['optimisations']} optimisations, {row['wall_s']:.1f} s, "
        f"peak RSS so far {row['peak_rss_gib_so_far']:.2f} GiB",
        flush=True,
    )
    for w in row["warnings"]:
        print(f"  warning: {w}")


def markdown(results: dict) -> str:
    lines = ["# Converged quadrature on Swissmetro b05", "", f"Command: `{results['command']}`"]
    lines += ["", f"Machine: {results['machine']}", ""]
    fits = [("b05 (normal time)", results["one_dimensional"])]
    fits += [(f"b05 + {k}", v) for k, v in results["two_dimensional"].items()]
    lines += markdown_table(
        ("model", "LL", "reported error", "nodes/dim", "optimisations", "wall s", "peak RSS GiB"),
        (
            (
                name,
                f"{r['loglik']:.6f}",
                f"{r['error_estimate']:.2e}",
                r["nodes_per_dim"],
                r["optimisations"],
                f"{r['wall_s']:.1f}",
                f"{r['peak_rss_gib_so_far']:.2f}",
            )
            for name, r in fits
        ),
    )
    ref = results["one_dimensional"]["reference"]
    lines += ["", f"Adaptive reference LL at the b05 estimates: {ref['loglik']:.6f}", ""]
    lines += ["## LL error at the b05 estimates by rule", ""]
    lines += markdown_table(
        ("nodes", "Gauss-Hermite", "trapezoid (nodes + 1)"),
        (
            (r["nodes"], f"{r['gauss_hermite_error']:+.2e}", f"{r['trapezoid_error']:+.2e}")
            for r in results["rule_errors"]
        ),
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="random subset of situations")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument(
        "--second",
        nargs="*",
        choices=sorted(SECOND),
        default=["asc"],
        help="second random coefficients of the two-dimensional fits",
    )
    parser.add_argument("--output", default="quadrature_swissmetro")
    args = parser.parse_args()
    data = swissmetro_choice_data(args.rows, args.seed)
    results: dict = {
        "command": "python -m benchmarks.bench_quadrature_swissmetro " + " ".join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "situations": int(data.to_arrays(["cost"]).X.shape[0]),
    }
    model = MixedLogit(fixed=["ASC_1", "ASC_3", "cost"], random={"time": "normal"})
    _, row = fit(model, data, args.tolerance)
    integrand = B05Integrand(data, row["params"])
    reference, bound = integrand.adaptive_loglik()
    row["reference"] = {"loglik": reference, "quad_vec_error_bound": bound}
    print_fit("b05", row)
    print(
        f"  adaptive reference at the estimates {reference:.6f} (|diff| "
        f"{abs(reference - row['loglik']):.2e})"
    )
    results["one_dimensional"] = row
    results["rule_errors"] = rule_errors(integrand, reference)
    results["two_dimensional"] = {}
    for key in args.second:
        name, distribution = SECOND[key]
        fixed = [v for v in ("ASC_1", "ASC_3", "cost") if v != name]
        two = MixedLogit(fixed=fixed, random={"time": "normal", name: distribution})
        _, row = fit(two, data, args.tolerance)
        print_fit(f"b05 + {key}", row)
        results["two_dimensional"][key] = row
    save_report(args.output, results, markdown(results))


if __name__ == "__main__":
    main()
