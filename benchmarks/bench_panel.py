"""Benchmark of the panel strength marginal (issue: identifiable strength, item 1).

Prints and saves (benchmarks/results/panel.{json,md}):

1. accuracy on the mpmath reference grid (tests/mixlogit/data/panel_reference.json), float64,
   by number of nodes: the largest relative error of L, of its parameter gradients and of its
   derivative along d, and of the posterior mean, variance and quantiles; and how far the
   error estimate (``return_error=True``) exceeds the actual error;
2. torch against JAX on the same groups (value, gradients, posterior), and the posterior moments
   and L against scipy's adaptive quadrature on fresh panels drawn here;
3. time per observation for N = 100,000 choices in 1,000 groups, forward and forward+backward,
   torch and JAX (jit), float64, for the Gamma and LogNormal panel marginals, as a ratio to
   plain ``log sigmoid(beta d)``.

Run: ``python -m benchmarks.bench_panel`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
from pathlib import Path

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import torch

jax.config.update("jax_enable_x64", True)

from benchmarks._report import markdown_table, save_report, timing_markdown  # noqa: E402
from benchmarks._timing import per_element, timings_against_baseline  # noqa: E402
from mixlogit.jax import panel as jp  # noqa: E402
from mixlogit.torch import panel as tp  # noqa: E402

REFERENCE = Path(__file__).parents[1] / "tests" / "mixlogit" / "data" / "panel_reference.json"
PARAMS = {"gamma": {"shape": 2.0, "rate": 16.7}, "lognormal": {"loc": -2.3, "scale": 0.6}}


#: The quantities whose largest relative error ``max_rel_error_<name>`` the accuracy rows hold.
ERRORS = ("log_marginal", "grad_params", "grad_direction", "mean", "variance", "quantiles")


def _max_rel(got, ref) -> float:
    tiny = mp.mpf(2.2250738585072014e-308)
    return max(
        float(abs(mp.mpf(float(g)) - mp.mpf(r)) / max(abs(mp.mpf(r)), tiny))
        for g, r in zip(np.ravel(got), ref, strict=True)
    )


def accuracy(nodes_list) -> list[dict]:
    groups = json.loads(REFERENCE.read_text())["groups"]
    probs = tuple(json.loads(REFERENCE.read_text())["probs"])
    rows = []
    for num_nodes in nodes_list:
        row = {"num_nodes": num_nodes}
        worst = dict.fromkeys(ERRORS, 0.0)
        overshoot = []
        for family in ("gamma", "lognormal"):
            chosen = [g for g in groups if g["family"] == family]
            d = torch.tensor(np.concatenate([g["d"] for g in chosen]), requires_grad=True)
            ids = torch.tensor(np.repeat(np.arange(len(chosen)), [len(g["d"]) for g in chosen]))
            direction = np.concatenate([g["direction"] for g in chosen])
            params = {
                k: torch.tensor(
                    [g["params"][k] for g in chosen], dtype=torch.float64, requires_grad=True
                )
                for k in chosen[0]["params"]
            }
            value, error = tp.panel_logit_marginal(
                d, ids, family, params, num_nodes=num_nodes, return_error=True
            )
            value.sum().backward()
            worst["log_marginal"] = max(
                worst["log_marginal"], _max_rel(value.detach(), [g["log_marginal"] for g in chosen])
            )
            size = 1.0 + np.abs(value.detach().numpy())
            for name, p in params.items():
                # Relative error where the gradient does not vanish: below 1e-6 of L's size per
                # unit of the parameter it is rounding-level (the test's floor covers those).
                ref = np.array([float(g["grad_params"][name]) for g in chosen])
                theta = np.array([abs(g["params"][name]) or 1.0 for g in chosen])
                keep = np.abs(ref) > 1e-6 * size / theta
                worst["grad_params"] = max(
                    worst["grad_params"],
                    _max_rel(
                        p.grad.numpy()[keep],
                        [g["grad_params"][name] for g, k in zip(chosen, keep, strict=True) if k],
                    ),
                )
            along = np.bincount(ids.numpy(), d.grad.numpy() * direction, minlength=len(chosen))
            worst["grad_direction"] = max(
                worst["grad_direction"], _max_rel(along, [g["grad_direction"] for g in chosen])
            )
            actual = np.abs(
                value.detach().numpy() - np.array([float(g["log_marginal"]) for g in chosen])
            )
            # the estimate bounds the error up to rounding (the test's floor): count that floor
            floor = 1e-12 * np.abs(value.detach().numpy()) + 1e-15
            overshoot.extend((error.numpy() + floor) / np.maximum(actual, 1e-300))
            post = tp.panel_strength_posterior(
                d.detach(),
                ids,
                family,
                {k: v.detach() for k, v in params.items()},
                probs=probs,
                num_nodes=num_nodes,
            )
            worst["mean"] = max(worst["mean"], _max_rel(post.mean, [g["mean"] for g in chosen]))
            worst["variance"] = max(
                worst["variance"], _max_rel(post.variance, [g["variance"] for g in chosen])
            )
            quantiles = [q for g in chosen for q in g["quantiles"]]
            worst["quantiles"] = max(worst["quantiles"], _max_rel(post.quantiles, quantiles))
        row.update({f"max_rel_error_{k}": v for k, v in worst.items()})
        row["min_error_estimate_over_actual"] = float(np.min(overshoot))
        rows.append(row)
        print(
            f"nodes {num_nodes:4d}: L {worst['log_marginal']:.1e}  dL/dparams {worst['grad_params']:.1e}"
            f"  dL/dd.v {worst['grad_direction']:.1e}  mean {worst['mean']:.1e}  var {worst['variance']:.1e}"
            f"  quantiles {worst['quantiles']:.1e}  estimate/actual >= {row['min_error_estimate_over_actual']:.1e}",
            flush=True,
        )
    return rows


def _max_rel_of(got, ref) -> float:
    """:func:`_max_rel` of two arrays of any shape."""
    return _max_rel(np.ravel(np.asarray(got, dtype=np.float64)), np.ravel(np.asarray(ref)))


def backend_agreement(num_nodes: int = 128) -> dict:
    """torch against JAX on the reference grid's groups, float64: the largest relative
    difference of L, its gradients in the parameters and in d, and the posterior moments and
    quantiles."""
    groups = json.loads(REFERENCE.read_text())["groups"]
    probs = tuple(json.loads(REFERENCE.read_text())["probs"])
    worst = dict.fromkeys(ERRORS, 0.0)
    for family in ("gamma", "lognormal"):
        chosen = [g for g in groups if g["family"] == family]
        d_np = np.concatenate([g["d"] for g in chosen])
        ids_np = np.repeat(np.arange(len(chosen)), [len(g["d"]) for g in chosen])
        names = list(chosen[0]["params"])
        params_np = {k: np.array([g["params"][k] for g in chosen], dtype=np.float64) for k in names}
        d = torch.tensor(d_np, requires_grad=True)
        params = {k: torch.tensor(v, requires_grad=True) for k, v in params_np.items()}
        value = tp.panel_logit_marginal(
            d, torch.tensor(ids_np), family, params, num_nodes=num_nodes
        )
        value.sum().backward()

        j_ids = jnp.asarray(ids_np)

        def total(d, p, family=family, ids=j_ids):
            return jp.panel_logit_marginal(d, ids, family, p, num_nodes=num_nodes).sum()

        j_value = jp.panel_logit_marginal(
            jnp.asarray(d_np), jnp.asarray(ids_np), family, params_np, num_nodes=num_nodes
        )
        j_grad_d, j_grad_p = jax.grad(total, argnums=(0, 1))(
            jnp.asarray(d_np), {k: jnp.asarray(v) for k, v in params_np.items()}
        )
        worst["log_marginal"] = max(worst["log_marginal"], _max_rel_of(value.detach(), j_value))
        # derivatives: relative where they exceed 1e-3 (1 + |L|), the test's rounding floor
        # for those that vanish (d = 0 groups); along each group's reference direction in d
        size = 1e-3 * (1.0 + np.abs(value.detach().numpy()))
        for k in names:
            a, b = params[k].grad.numpy(), np.asarray(j_grad_p[k])
            worst["grad_params"] = max(
                worst["grad_params"], float(np.max(np.abs(a - b) / (np.abs(b) + size)))
            )
        direction = np.concatenate([g["direction"] for g in chosen])
        along_t = np.bincount(ids_np, d.grad.numpy() * direction, minlength=len(chosen))
        along_j = np.bincount(ids_np, np.asarray(j_grad_d) * direction, minlength=len(chosen))
        worst["grad_direction"] = max(
            worst["grad_direction"],
            float(np.max(np.abs(along_t - along_j) / (np.abs(along_j) + size))),
        )
        post = tp.panel_strength_posterior(
            d.detach(),
            torch.tensor(ids_np),
            family,
            {k: torch.tensor(v) for k, v in params_np.items()},
            probs=probs,
            num_nodes=num_nodes,
        )
        j_post = jp.panel_strength_posterior(
            jnp.asarray(d_np),
            jnp.asarray(ids_np),
            family,
            params_np,
            probs=probs,
            num_nodes=num_nodes,
        )
        for name in ("mean", "variance", "quantiles"):
            worst[name] = max(worst[name], _max_rel_of(getattr(post, name), getattr(j_post, name)))
    print("torch vs JAX:", "  ".join(f"{k} {v:.1e}" for k, v in worst.items()), flush=True)
    return {"num_nodes": num_nodes, **{f"max_rel_diff_{k}": v for k, v in worst.items()}}


def direct_quadrature(seed: int = 20261202, num_groups: int = 24) -> dict:
    """Posterior moments and L against scipy's adaptive quadrature over ``u = log beta`` on
    panels drawn here (a design the rule was not developed on: sizes 1-48, |d| from 0.05 to
    30 of both signs, Gamma shape 0.2-60 and LogNormal scale 0.05-2)."""
    from scipy import integrate, special, stats

    rng = np.random.default_rng(seed)
    worst = {"log_marginal": 0.0, "mean": 0.0, "variance": 0.0}
    for family in ("gamma", "lognormal"):
        sizes = rng.integers(1, 49, num_groups)
        ids = np.repeat(np.arange(num_groups), sizes)
        d = rng.choice([-1.0, 1.0], ids.size, p=[0.3, 0.7]) * 10 ** rng.uniform(-1.3, 1.5, ids.size)
        if family == "gamma":
            shape = 10 ** rng.uniform(np.log10(0.2), np.log10(60), num_groups)
            rate = shape / 10 ** rng.uniform(-1.5, 0.5, num_groups)
            params = {"shape": shape, "rate": rate}
        else:
            params = {
                "loc": rng.uniform(-3.0, 1.0, num_groups),
                "scale": 10 ** rng.uniform(np.log10(0.05), np.log10(2.0), num_groups),
            }
        post = tp.panel_strength_posterior(
            torch.tensor(d),
            torch.tensor(ids),
            family,
            {k: torch.tensor(v) for k, v in params.items()},
        )
        for g in range(num_groups):
            dg = d[ids == g]
            if family == "gamma":
                a, b = params["shape"][g], params["rate"][g]

                def log_prior(u, a=a, b=b):
                    return a * np.log(b) + a * u - b * np.exp(u) - special.gammaln(a)

                centre, width = np.log(a / b), 1.0 / np.sqrt(a)
            else:
                m, sd = params["loc"][g], params["scale"][g]

                def log_prior(u, m=m, sd=sd):
                    return stats.norm.logpdf(u, m, sd)

                centre, width = m, sd

            def integrand(u, power, dg=dg, log_prior=log_prior):
                return np.exp(power * u + log_prior(u) - np.logaddexp(0.0, -np.exp(u) * dg).sum())

            # split the real line at the prior's bulk so quad sees the peak
            points = centre + width * np.array([-40.0, -8.0, -3.0, 0.0, 3.0, 8.0, 40.0])
            moments = []
            for power in range(3):
                pieces = [(-np.inf, points[0]), *itertools.pairwise(points), (points[-1], np.inf)]
                moments.append(
                    sum(
                        integrate.quad(
                            integrand, lo, hi, args=(power,), epsabs=0, epsrel=1e-13, limit=500
                        )[0]
                        for lo, hi in pieces
                    )
                )
            mean = moments[1] / moments[0]
            variance = moments[2] / moments[0] - mean**2
            worst["log_marginal"] = max(
                worst["log_marginal"], _max_rel_of(post.log_marginal[g], np.log(moments[0]))
            )
            worst["mean"] = max(worst["mean"], _max_rel_of(post.mean[g], mean))
            worst["variance"] = max(worst["variance"], _max_rel_of(post.variance[g], variance))
    print("vs direct quadrature:", "  ".join(f"{k} {v:.1e}" for k, v in worst.items()), flush=True)
    return {
        "seed": seed,
        "groups_per_family": num_groups,
        **{f"max_rel_error_{k}": v for k, v in worst.items()},
    }


def _panel_data(n, num_groups, rng):
    d = rng.normal(0.0, 5.0, n)
    group = np.repeat(np.arange(num_groups), n // num_groups)
    return d, group


def torch_cases(family, n, num_groups, rng):
    d_np, group_np = _panel_data(n, num_groups, rng)
    d, group = torch.tensor(d_np), torch.tensor(group_np)
    if family == "log_sigmoid":
        beta = torch.tensor(0.12, dtype=torch.float64, requires_grad=True)

        def fn(d, p):
            return torch.nn.functional.logsigmoid(p[0] * d)

        params = [beta]
    else:
        params = [
            torch.tensor(v, dtype=torch.float64, requires_grad=True)
            for v in PARAMS[family].values()
        ]
        names = list(PARAMS[family])

        def fn(d, p):
            return tp.panel_logit_marginal(
                d, group, family, dict(zip(names, p, strict=True)), num_groups=num_groups
            )

    dg = d.clone().requires_grad_(True)

    def forward():
        with torch.no_grad():
            fn(d, params)

    def backward():
        torch.autograd.grad(fn(dg, params).sum(), [dg, *params])

    return forward, backward


def jax_cases(family, n, num_groups, rng):
    d_np, group_np = _panel_data(n, num_groups, rng)
    d, group = jnp.asarray(d_np), jnp.asarray(group_np)
    if family == "log_sigmoid":
        params = (jnp.asarray(0.12),)

        def fn(d, p):
            return jax.nn.log_sigmoid(p[0] * d)

    else:
        params = tuple(jnp.asarray(v) for v in PARAMS[family].values())
        names = list(PARAMS[family])

        def fn(d, p):
            return jp.panel_logit_marginal(
                d, group, family, dict(zip(names, p, strict=True)), num_groups=num_groups
            )

    fwd = jax.jit(fn)
    bwd = jax.jit(jax.grad(lambda d, p: fn(d, p).sum(), argnums=(0, 1)))
    return (lambda: fwd(d, params).block_until_ready()), (
        lambda: jax.block_until_ready(bwd(d, params))
    )


def timing(n: int, num_groups: int, repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for backend, make in (("torch", torch_cases), ("jax", jax_cases)):
        cases = timings_against_baseline(
            lambda family: make(family, n, num_groups, rng),  # noqa: B023 (called in this loop)
            ("log_sigmoid", "gamma", "lognormal"),
            repeats,
        )
        for family, t in cases.items():
            rows.append(
                {
                    "backend": backend,
                    "marginal": family,
                    **per_element(t, n, 1e6, "us_per_observation"),
                }
            )
            r = rows[-1]
            print(
                f"{backend:5s} {family:11s} fwd {r['us_per_observation_fwd']:8.3f} us/obs (x{r['ratio_fwd']:.0f})"
                f"  fwd+bwd {r['us_per_observation_fwd_bwd']:8.3f} us/obs (x{r['ratio_fwd_bwd']:.0f})",
                flush=True,
            )
    return rows


def markdown(results) -> str:
    lines = ["# Panel strength-marginal benchmark", "", f"Machine: {results['machine']}", ""]
    lines += [
        "## Accuracy on the mpmath reference grid (69 groups of 1-256 choices, float64)",
        "",
        "Largest relative errors; the last column is the smallest ratio of the error estimate "
        "(`return_error=True`) to the actual error of L (>= 1: the estimate bounds it).",
        "",
    ]
    lines += markdown_table(
        (
            "nodes",
            "L",
            "dL/dparams",
            "dL/dd . v",
            "mean",
            "variance",
            "quantiles",
            "estimate / actual",
        ),
        (
            (
                r["num_nodes"],
                *(f"{r[f'max_rel_error_{e}']:.1e}" for e in ERRORS),
                f"{r['min_error_estimate_over_actual']:.1e}",
            )
            for r in results["accuracy"]
        ),
    )
    agree = results["backend_agreement"]
    lines += [
        "",
        f"torch vs JAX on the same groups ({agree['num_nodes']} nodes), largest relative "
        "difference: " + ", ".join(f"{e} {agree[f'max_rel_diff_{e}']:.1e}" for e in ERRORS) + ".",
    ]
    direct = results["direct_quadrature"]
    lines += [
        "",
        f"Against scipy's adaptive quadrature over log beta ({direct['groups_per_family']} fresh "
        f"panels per family, seed {direct['seed']}), largest relative error: "
        + ", ".join(
            f"{e} {direct[f'max_rel_error_{e}']:.1e}" for e in ("log_marginal", "mean", "variance")
        )
        + ".",
    ]
    lines += [
        "",
        f"## Time per observation, N = {results['n']:,} choices in {results['num_groups']:,} groups "
        "(float64, default 128 nodes; ratio to log sigmoid(beta d))",
        "",
    ]
    lines += timing_markdown(
        results["timing"],
        ("backend", "marginal"),
        "us_per_observation",
        "us/obs",
        time_format=".3f",
        ratio_format=".0f",
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    results = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "n": args.n,
        "num_groups": args.groups,
        "accuracy": accuracy((64, 96, 128, 192)),
        "backend_agreement": backend_agreement(),
        "direct_quadrature": direct_quadrature(),
        "timing": timing(args.n, args.groups, args.repeats),
    }
    save_report("panel", results, markdown(results))


if __name__ == "__main__":
    main()
