"""Latent-class logit: maximum likelihood against NUTS on the same model and data.

Issue 16 asks that the classical and Bayesian fits of one latent-class model agree within their
uncertainty. Data: two classes of people, ``CLASS_BETA`` (not the tests' design), constant
shares ``SHARE``, :func:`mixlogit.simulate.simulate_choice_arrays` for the choices, the fresh
``SEEDS`` (every seed reported). Per seed: the ML fit (``LatentClassLogit.fit(method="ml")``,
5 starts), NUTS (2 chains, ``--warmup`` / ``--samples``), each chain's posterior means, the
largest ``r_hat``, and the agreement of the pooled posterior with ML: the largest
``|posterior mean - ML| / posterior SD`` and the range of posterior SD / robust SE, pooled and
per chain (a chain that sits in another mode shows as a chain that disagrees).

Run: ``python -m benchmarks.bench_latent_class`` (``--seeds 9101`` for one); writes
``benchmarks/results/latent_class.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from benchmarks._report import markdown_table, save_report
from mixlogit import ChoiceData, LatentClassLogit
from mixlogit.simulate import simulate_choice_arrays

VARIABLES = ("x1", "x2", "x3")
CLASS_BETA = np.array([[-1.5, 0.8, 0.3], [0.6, -0.7, 1.2]])
SHARE = 0.4  # of class 0
SEEDS = (9101, 9102, 9103)
NUM_PEOPLE, NUM_SITUATIONS, NUM_ALTERNATIVES = 400, 8, 3


def simulated_data(seed: int) -> ChoiceData:
    rng = np.random.default_rng(seed)
    member = (rng.random(NUM_PEOPLE) >= SHARE).astype(int)
    arrays = simulate_choice_arrays(
        CLASS_BETA[member], NUM_SITUATIONS, NUM_ALTERNATIVES, VARIABLES, seed=seed + 1
    )
    num_s, num_j, _ = arrays.X.shape
    frame = pd.DataFrame(
        {
            "person": np.repeat(arrays.panel, num_j),
            "situation": np.repeat(np.arange(num_s), num_j),
            "alt": np.tile(np.arange(num_j), num_s),
            "choice": (np.arange(num_j)[None] == arrays.chosen[:, None]).astype(int).ravel(),
        }
    )
    for k, name in enumerate(VARIABLES):
        frame[name] = arrays.X[..., k].ravel()
    return ChoiceData(
        frame, choice="choice", alternative="alt", situation="situation", panel="person"
    )


def compare(seed: int, warmup: int, samples: int) -> dict:
    data = simulated_data(seed)
    model = LatentClassLogit(list(VARIABLES), num_classes=2, order_by="x1")
    start = time.perf_counter()
    ml = model.fit(data, method="ml")
    ml_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bayes = model.fit(
            data, method="nuts", num_warmup=warmup, num_samples=samples, num_chains=2, seed=seed
        )
    nuts_seconds = time.perf_counter() - start
    posterior = bayes.idata.posterior
    beta = np.asarray(posterior["beta_class"])  # (chain, draw, C, K)
    share = np.asarray(posterior["class_share"])  # (chain, draw, C)
    # the ML parameterisation: class coefficients, then log(share_1 / share_0)
    draws = np.concatenate(
        [beta.reshape(*beta.shape[:2], -1), np.log(share[..., 1:] / share[..., :1])], axis=-1
    )
    se = ml.robust_std_errors

    def agreement(sample: np.ndarray) -> dict:
        mean, sd = sample.mean(axis=0), sample.std(axis=0)
        return {
            "max_abs_diff_in_posterior_sd": float(np.max(np.abs(mean - ml.params) / sd)),
            "sd_over_robust_se": [float(np.min(sd / se)), float(np.max(sd / se))],
            "means": mean.tolist(),
        }

    import arviz as az

    r_hat = az.rhat(bayes.idata, var_names=["beta_class", "class_share"])
    return {
        "seed": seed,
        "ml": {
            "names": ml.names,
            "params": ml.params.tolist(),
            "robust_std_errors": se.tolist(),
            "loglik": ml.loglik,
            "seconds": ml_seconds,
        },
        "nuts": {"seconds": nuts_seconds, "warmup": warmup, "samples": samples, "chains": 2},
        "max_r_hat": float(max(float(r_hat[v].max()) for v in r_hat.data_vars)),
        "pooled": agreement(draws.reshape(-1, draws.shape[-1])),
        "per_chain": [agreement(draws[c]) for c in range(draws.shape[0])],
    }


def markdown(results: dict) -> str:
    lines = [
        "# Latent-class logit: maximum likelihood against NUTS",
        "",
        f"Command: `python -m benchmarks.bench_latent_class`; {NUM_PEOPLE} people x "
        f"{NUM_SITUATIONS} situations x {NUM_ALTERNATIVES} alternatives, two classes "
        f"(share {SHARE} / {1 - SHARE:.1f}), every seed reported.",
        "",
    ]
    rows = []
    for run in results["runs"]:
        for label, block in [("pooled", run["pooled"])] + [
            (f"chain {c}", b) for c, b in enumerate(run["per_chain"])
        ]:
            rows.append(
                [
                    run["seed"],
                    label,
                    f"{run['max_r_hat']:.2f}" if label == "pooled" else "",
                    f"{block['max_abs_diff_in_posterior_sd']:.2f}",
                    f"{block['sd_over_robust_se'][0]:.2f}-{block['sd_over_robust_se'][1]:.2f}",
                ]
            )
    lines += markdown_table(
        [
            "seed",
            "draws",
            "max r_hat",
            "max abs(mean - ML) / posterior SD",
            "posterior SD / robust SE",
        ],
        rows,
    )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args(argv)
    runs = []
    for seed in args.seeds:
        runs.append(compare(seed, args.warmup, args.samples))
        print(f"seed {seed}: r_hat {runs[-1]['max_r_hat']:.2f}, pooled {runs[-1]['pooled']}")
    results = {"runs": runs}
    text = markdown(results)
    print(text)
    save_report("latent_class", results, text)


if __name__ == "__main__":
    main()
