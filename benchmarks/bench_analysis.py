"""Speed of the analysis tools: vectorised bootstrap and the subgroup-posterior likelihood.

Run from the repository root: ``python -m benchmarks.bench_analysis``. Prints a table and writes
``benchmarks/results/bench_analysis.json`` and ``.md``.

Rows:

* ``subgroup_margins``: 4 subgroup attributes x 3 methods over ``N`` pairs with 2000 bootstrap
  replicates (pair resampling and cluster resampling of 10-pair annotators); figure: seconds
  and resampled pairs per second.
* ``likelihood``: value-and-gradient of the subgroup model's Gamma log-likelihood per pair, one
  signed-margin evaluation (what :mod:`analysis.subgroup_posterior` does) against
  ``GammaLogitBernoulli.log_prob`` (both signs, then select), float64, jitted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._timing import best_time

RESULTS = Path(__file__).resolve().parent / "results"


def bench_margins(num_pairs: int, num_boot: int = 2000) -> list[dict]:
    from analysis.margins import subgroup_margins

    rng = np.random.default_rng(0)
    base = pd.DataFrame(
        {
            "annotator_id": np.arange(num_pairs) // 10,
            "margin": rng.normal(size=num_pairs),
        }
    )
    for column, levels in (("age", 6), ("gender", 3), ("education", 7), ("region", 5)):
        per_annotator = rng.integers(0, levels, size=num_pairs // 10 + 1)
        base[column] = per_annotator[base["annotator_id"]]
    frame = pd.concat([base.assign(method=m) for m in ("dpo", "gamma", "lognormal")])
    by = ["age", "gender", "education", "region"]
    rows = []
    for cluster in (None, "annotator_id"):
        seconds = best_time(
            lambda cluster=cluster: subgroup_margins(frame, by, num_boot=num_boot, cluster=cluster),
            repeats=2,
            warm_up=False,  # a call takes seconds; the first of the two absorbs the caches
        )
        # each replicate resamples every pair twice per attribute (subgroups + micro)
        resampled = 2 * len(by) * len(frame) * num_boot
        rows.append(
            {
                "benchmark": "subgroup_margins",
                "resampling": "pairs" if cluster is None else "annotators",
                "pairs": len(frame),
                "replicates": num_boot,
                "seconds": round(seconds, 3),
                "resampled_pairs_per_s": f"{resampled / seconds:.3g}",
            }
        )
    return rows


def bench_likelihood(num_pairs: int = 100_000) -> list[dict]:
    import jax
    import jax.numpy as jnp

    from mixlogit.jax import GammaLogitBernoulli, gamma_logit_marginal

    rows = []
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        d = jnp.asarray(rng.normal(size=num_pairs))
        y = jnp.asarray(rng.random(num_pairs) < 0.6)
        params = jnp.asarray([2.0, 2.0])

        def signed(theta, num_terms):
            flipped = jnp.where(y, d, -d)
            return gamma_logit_marginal(flipped, theta[0], theta[1], num_terms=num_terms).sum()

        def both_signs(theta):
            return GammaLogitBernoulli(d, theta[0], theta[1]).log_prob(y).sum()

        variants = {
            "signed margin, 12 terms (analysis default)": lambda t: signed(t, 12),
            "signed margin, 24 terms": lambda t: signed(t, 24),
            "GammaLogitBernoulli.log_prob (24 terms)": both_signs,
        }
        for name, function in variants.items():
            step = jax.jit(jax.value_and_grad(function))
            # the warm-up call compiles
            seconds = best_time(lambda step=step: step(params)[0].block_until_ready(), repeats=5)
            rows.append(
                {
                    "benchmark": "likelihood value+grad",
                    "variant": name,
                    "pairs": num_pairs,
                    "ns_per_pair": round(1e9 * seconds / num_pairs, 1),
                }
            )
    return rows


def main() -> None:
    rows = bench_margins(100_000) + bench_likelihood()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    print(f"(1-minute load average during the run: {load:.1f} on {os.cpu_count()} cores)")
    RESULTS.mkdir(exist_ok=True)
    payload = {"rows": rows, "load_average": load, "cpu_count": os.cpu_count()}
    (RESULTS / "bench_analysis.json").write_text(json.dumps(payload, indent=1))
    lines = ["| benchmark | variant | pairs | figure |", "|---|---|---|---|"]
    for row in rows:
        if row["benchmark"] == "subgroup_margins":
            lines.append(
                f"| subgroup_margins ({row['replicates']} replicates) | {row['resampling']} | "
                f"{row['pairs']} | {row['seconds']} s ({row['resampled_pairs_per_s']} pairs/s) |"
            )
        else:
            lines.append(
                f"| {row['benchmark']} | {row['variant']} | {row['pairs']} | "
                f"{row['ns_per_pair']} ns/pair |"
            )
    lines.append(f"\nLoad average {load:.1f} on {os.cpu_count()} cores during the run.")
    (RESULTS / "bench_analysis.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
