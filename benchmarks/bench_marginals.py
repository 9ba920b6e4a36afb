"""Benchmark of the strength marginals (issue: foundation).

Prints and saves (benchmarks/results/marginals.{json,md}):

1. time per element of each marginal vs plain ``log sigmoid(beta d)`` at 1e6 elements,
   forward and forward+backward, torch and JAX, float64 and float32, as ratios; ``gamma`` is
   the public function (gradients fused into the forward pass), ``gamma_unfused_autodiff``
   the same series differentiated by the backend's autodiff, for comparison;
2. accuracy of the Gamma marginal vs number of series terms, beside the naive 1000-term
   truncation of the published closed form, against the mpmath reference grid;
3. gradient variance of the LogNormal K=16 Monte Carlo estimator vs quadrature (zero).

Run: ``python -m benchmarks.bench_marginals`` (about two minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import torch

jax.config.update("jax_enable_x64", True)

import mixlogit.jax as mj  # noqa: E402
import mixlogit.torch as mt  # noqa: E402
from benchmarks._report import markdown_table, save_report, timing_markdown  # noqa: E402
from benchmarks._timing import per_element, timings_against_baseline  # noqa: E402
from mixlogit import _kernels  # noqa: E402
from mixlogit._series import default_num_terms  # noqa: E402
from mixlogit.jax._ops import OPS as JAX_OPS  # noqa: E402
from mixlogit.torch._ops import OPS as TORCH_OPS  # noqa: E402

REFERENCE = Path(__file__).parents[1] / "tests" / "mixlogit" / "data" / "gamma_reference.json"

#: The marginals timed, baseline first.
MARGINALS = ("log_sigmoid", "gamma", "gamma_unfused_autodiff", "lognormal_quad16", "lognormal_mc16")


def unfused_gamma(ops, bits):
    """The Gamma marginal differentiated by autodiff through the series (the value-only
    kernel, as the public function computed it before the fused gradients)."""
    num_terms = default_num_terms(bits)
    return lambda d, p: _kernels.gamma_log_marginal(ops, d, p[0], p[1], num_terms)


def torch_case(name, dtype, n, rng):
    d = torch.tensor(rng.normal(0, 5, n), dtype=dtype)
    fns = {
        "log_sigmoid": lambda d, p: torch.nn.functional.logsigmoid(p[0] * d),
        "gamma": lambda d, p: mt.gamma_logit_marginal(d, p[0], p[1]),
        "gamma_unfused_autodiff": unfused_gamma(TORCH_OPS, torch.finfo(dtype).bits),
        "lognormal_quad16": lambda d, p: mt.lognormal_logit_marginal(d, p[0], p[1]),
        "lognormal_mc16": lambda d, p: mt.lognormal_logit_marginal(d, p[0], p[1], method="mc"),
    }
    params = {
        "log_sigmoid": (0.12,),
        "gamma": (2.0, 16.7),
        "gamma_unfused_autodiff": (2.0, 16.7),
        "lognormal_quad16": (-2.3, 0.6),
        "lognormal_mc16": (-2.3, 0.6),
    }
    fn = fns[name]
    p = [torch.tensor(v, dtype=dtype, requires_grad=True) for v in params[name]]
    dg = d.clone().requires_grad_(True)

    def forward():
        with torch.no_grad():
            fn(d, p)

    def backward():
        out = fn(dg, p).sum()
        torch.autograd.grad(out, [dg, *p])

    return forward, backward


def jax_case(name, dtype, n, rng):
    d = jnp.asarray(rng.normal(0, 5, n), dtype=dtype)
    key = jax.random.PRNGKey(0)
    fns = {
        "log_sigmoid": (lambda d, p: jax.nn.log_sigmoid(p[0] * d), (0.12,)),
        "gamma": (lambda d, p: mj.gamma_logit_marginal(d, p[0], p[1]), (2.0, 16.7)),
        "gamma_unfused_autodiff": (unfused_gamma(JAX_OPS, jnp.finfo(dtype).bits), (2.0, 16.7)),
        "lognormal_quad16": (lambda d, p: mj.lognormal_logit_marginal(d, p[0], p[1]), (-2.3, 0.6)),
        "lognormal_mc16": (
            lambda d, p: mj.lognormal_logit_marginal(d, p[0], p[1], method="mc", key=key),
            (-2.3, 0.6),
        ),
    }
    fn, params = fns[name]
    p = tuple(jnp.asarray(v, dtype=dtype) for v in params)
    fwd = jax.jit(fn)
    bwd = jax.jit(jax.grad(lambda d, p: fn(d, p).sum(), argnums=(0, 1)))
    return (lambda: fwd(d, p).block_until_ready()), (lambda: jax.block_until_ready(bwd(d, p)))


def timing_table(n: int, repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    names = list(MARGINALS)
    for backend, make in (("torch", torch_case), ("jax", jax_case)):
        for dtype_name in ("float64", "float32"):
            dtype = getattr(torch if backend == "torch" else jnp, dtype_name)
            cases = timings_against_baseline(
                lambda name: make(name, dtype, n, rng),  # noqa: B023 (called in this loop)
                names,
                repeats,
            )
            for name, t in cases.items():
                rows.append(
                    {
                        "backend": backend,
                        "dtype": dtype_name,
                        "marginal": name,
                        **per_element(t, n, 1e9, "ns_per_element"),
                    }
                )
                print(
                    f"{backend:5s} {dtype_name} {name:17s} fwd {rows[-1]['ns_per_element_fwd']:8.1f} ns/el"
                    f" (x{rows[-1]['ratio_fwd']:.1f})  fwd+bwd {rows[-1]['ns_per_element_fwd_bwd']:8.1f}"
                    f" ns/el (x{rows[-1]['ratio_fwd_bwd']:.1f})",
                    flush=True,
                )
    return rows


def accuracy_vs_terms() -> list[dict]:
    """Max relative error of log P on the reference grid per series length, and the naive
    1000-term truncation ``1 - sum_{n<=1000} (-1)^(n+1) (1 + n d/rate)^-k`` (d > 0 side)."""
    ref = json.loads(REFERENCE.read_text())["points"]
    d = np.array([p["d"] for p in ref])
    k = np.array([p["shape"] for p in ref])
    r = np.array([p["rate"] for p in ref])
    log_p = [mp.mpf(p["log_p"]) for p in ref]

    def worst(values):
        errs = [
            float(abs(mp.mpf(float(v)) - t) / max(abs(t), mp.mpf(2.3e-308)))
            if np.isfinite(v)
            else np.inf
            for v, t in zip(values, log_p, strict=True)
        ]
        return max(errs), float(np.median(errs))

    rows = []
    for n in (4, 8, 12, 16, 20, 24, 28, 32):
        values = mt.gamma_logit_marginal(
            torch.tensor(d), torch.tensor(k), torch.tensor(r), num_terms=n
        ).numpy()
        w, med = worst(values)
        rows.append(
            {"method": f"accelerated, {n} terms", "max_rel_error": w, "median_rel_error": med}
        )
        print(f"accelerated series {n:4d} terms: max rel err {w:.2e}, median {med:.2e}")
    # Naive truncation of the Hurwitz/Lerch series, as published (both signs via P(-d) = 1 - P(d)).
    nn = np.arange(1, 1001)[:, None]
    a = np.abs(d) / r
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        s = np.sum((-1.0) ** (nn + 1) * (1 + nn * a) ** (-k), axis=0)
        naive = np.where(d > 0, np.log1p(-s), np.log(s))
    w, med = worst(naive)
    bad = int(np.sum(~np.isfinite(naive)))
    rows.append(
        {
            "method": "naive 1000-term truncation",
            "max_rel_error": w,
            "median_rel_error": med,
            "non_finite": bad,
        }
    )
    print(f"naive 1000-term truncation: max rel err {w:.2e}, median {med:.2e}, non-finite {bad}")
    k2 = 2.0
    s_small = np.sum((-1.0) ** (nn[:, 0] + 1) * (1 + nn[:, 0] * 1e-4 / 10) ** (-k2))
    example = {
        "k": 2.0,
        "rate": 10.0,
        "d": 1e-4,
        "naive_P": float(1 - s_small),
        "exact_P": float(
            torch.exp(mt.gamma_logit_marginal(torch.tensor(1e-4, dtype=torch.float64), 2.0, 10.0))
        ),
    }
    print(
        f"example k=2, rate=10, d=1e-4: naive P = {example['naive_P']:.6f}, exact P = {example['exact_P']:.10f}"
    )
    return rows, example


def gradient_variance(reps: int = 2000) -> list[dict]:
    """Variance of d/d(loc), d/d(scale) of the batch loss -mean log P for K=16 MC vs quadrature."""
    rng = np.random.default_rng(0)
    d = torch.tensor(rng.normal(0, 5, 64))
    rows = []
    for method in ("mc", "quadrature"):
        grads = []
        gen = torch.Generator().manual_seed(0)
        for _ in range(reps if method == "mc" else 5):
            loc = torch.tensor(-2.3, dtype=torch.float64, requires_grad=True)
            scale = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
            loss = -mt.lognormal_logit_marginal(
                d, loc, scale, method=method, num_samples=16, generator=gen
            ).mean()
            grads.append([float(g) for g in torch.autograd.grad(loss, [loc, scale])])
        grads = np.array(grads)
        rows.append(
            {
                "method": "MC K=16" if method == "mc" else "quadrature 16",
                "grad_loc_mean": float(grads[:, 0].mean()),
                "grad_loc_var": float(grads[:, 0].var()),
                "grad_scale_mean": float(grads[:, 1].mean()),
                "grad_scale_var": float(grads[:, 1].var()),
            }
        )
        print(
            f"{rows[-1]['method']:14s} grad loc {rows[-1]['grad_loc_mean']:+.5f} (var {rows[-1]['grad_loc_var']:.2e})"
            f"  grad scale {rows[-1]['grad_scale_mean']:+.5f} (var {rows[-1]['grad_scale_var']:.2e})"
        )
    return rows


def markdown(results) -> str:
    lines = ["# Strength-marginal benchmark", "", f"Machine: {results['machine']}", ""]
    lines += [
        f"## Time per element at n = {results['n']:,} (ratio to log sigmoid(beta d))",
        "",
    ]
    lines += timing_markdown(
        results["timing"],
        ("backend", "dtype", "marginal"),
        "ns_per_element",
        "ns/el",
        time_format=".1f",
        ratio_format=".1f",
    )
    lines += ["", "## Gamma marginal accuracy vs series length (reference grid, float64)", ""]
    lines += markdown_table(
        ("method", "max rel. error", "median rel. error"),
        (
            (r["method"], f"{r['max_rel_error']:.2e}", f"{r['median_rel_error']:.2e}")
            for r in results["accuracy"]
        ),
    )
    ex = results["naive_example"]
    lines += [
        "",
        f"k=2, rate=10, d=1e-4: naive P = {ex['naive_P']:.6f}, exact P = {ex['exact_P']:.10f}",
        "",
    ]
    lines += ["## LogNormal gradient variance (batch of 64, loss -mean log P)", ""]
    lines += markdown_table(
        ("estimator", "d/dloc mean", "var", "d/dscale mean", "var"),
        (
            (
                r["method"],
                f"{r['grad_loc_mean']:+.5f}",
                f"{r['grad_loc_var']:.2e}",
                f"{r['grad_scale_mean']:+.5f}",
                f"{r['grad_scale_var']:.2e}",
            )
            for r in results["gradient_variance"]
        ),
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "n": args.n,
        "timing": timing_table(args.n, args.repeats),
    }
    results["accuracy"], results["naive_example"] = accuracy_vs_terms()
    results["gradient_variance"] = gradient_variance()
    save_report("marginals", results, markdown(results))


if __name__ == "__main__":
    main()
