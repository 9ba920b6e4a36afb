"""Gamma strength marginal against an arbitrary-precision reference (mpmath).

The grid (tests/mixlogit/data/gamma_reference.json, built by reference/gamma_reference.py with
tanh-sinh quadrature at 40 digits, independent of the library's series) spans shape in
[0.02, 1000], rate in [1e-3, 1e3], |d|/rate in [0, 1e5], both signs, down to log P = -11513.
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import torch

from mixlogit.jax import gamma_logit_marginal as gamma_jax
from mixlogit.torch import gamma_logit_marginal as gamma_torch

DATA = Path(__file__).parent / "data" / "gamma_reference.json"
REF = json.loads(DATA.read_text())["points"]
D = np.array([p["d"] for p in REF])
SHAPE = np.array([p["shape"] for p in REF])
RATE = np.array([p["rate"] for p in REF])


def ref_array(key):
    return [mp.mpf(p[key]) for p in REF]


def max_rel_error(got, ref, floor):
    """Largest |got - ref| / max(|ref|, floor) over the grid, computed in mpmath."""
    worst, where = 0.0, -1
    for i, (g, r) in enumerate(zip(got, ref, strict=True)):
        err = abs(mp.mpf(float(g)) - r) / max(abs(r), floor)
        if err > worst:
            worst, where = float(err), i
    return worst, where


def torch_values_and_grads(dtype):
    d = torch.tensor(D, dtype=dtype, requires_grad=True)
    k = torch.tensor(SHAPE, dtype=dtype, requires_grad=True)
    r = torch.tensor(RATE, dtype=dtype, requires_grad=True)
    out = gamma_torch(d, k, r)
    out.sum().backward()
    return [t.detach().double().numpy() for t in (out, d.grad, k.grad, r.grad)]


def jax_values_and_grads(dtype):
    # jitted: one compile of the whole program, as NumPyro and optax run it (eager dispatch
    # compiles every op separately, most of this test's time)
    f = jax.jit(jax.vmap(jax.value_and_grad(lambda d, k, r: gamma_jax(d, k, r), argnums=(0, 1, 2))))
    value, (gd, gk, gr) = f(
        jnp.asarray(D, dtype=dtype), jnp.asarray(SHAPE, dtype=dtype), jnp.asarray(RATE, dtype=dtype)
    )
    return [np.asarray(x, dtype=np.float64) for x in (value, gd, gk, gr)]


def test_grid_spans_the_required_ranges():
    # Inputs are rounded to float32 (so both precisions see the same numbers): allow 1e-6.
    assert SHAPE.min() <= 0.02 * (1 + 1e-6) and SHAPE.max() >= 1000
    assert RATE.min() <= 1e-3 * (1 + 1e-6) and RATE.max() >= 1e3
    ratio = np.abs(D) / RATE
    assert ratio.min() == 0 and ratio.max() >= 0.99e5
    assert (D < 0).any() and (D > 0).any()
    log_p = np.array([float(x) for x in ref_array("log_p")])
    assert log_p.min() < np.log(1e-300)  # the far negative tail is on the grid


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_float64_values_and_gradients_match_mpmath(backend):
    values, gd, gk, gr = (
        torch_values_and_grads(torch.float64)
        if backend == "torch"
        else jax_values_and_grads(jnp.float64)
    )
    for arr in (values, gd, gk, gr):
        assert np.all(np.isfinite(arr)), "NaN or inf on the grid"
    # Values of log P: relative 1e-12 (floor: the smallest normal float64, below which the
    # reference itself is not representable).
    err, i = max_rel_error(values, ref_array("log_p"), mp.mpf(2.3e-308))
    assert err <= 1e-12, (err, REF[i], values[i])
    for got, key in ((gd, "grad_d"), (gk, "grad_shape"), (gr, "grad_rate")):
        err, i = max_rel_error(got, ref_array(key), mp.mpf(2.3e-308))
        assert err <= 1e-8, (key, err, REF[i], got[i])


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_float32_values_match_mpmath(backend):
    if backend == "torch":
        values = torch_values_and_grads(torch.float32)[0]
    else:
        values = jax_values_and_grads(jnp.float32)[0]
    assert np.all(np.isfinite(values))
    err, i = max_rel_error(values, ref_array("log_p"), mp.mpf(1.2e-38))
    assert err <= 1e-5, (err, REF[i], values[i])


def test_reference_file_is_reproducible_live():
    """Recompute a few fixture points with mpmath now, two ways: the quadrature of the
    reference script and the Lerch transcendent of the published closed form."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gamma_reference", Path(__file__).parent / "reference" / "gamma_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mp.mp.dps = 30
    picks = [i for i, p in enumerate(REF) if p["shape"] in (0.5, 2.0) and p["rate"] == 1.0][::5]
    assert len(picks) >= 4
    for i in picks:
        p = REF[i]
        a = abs(mp.mpf(p["d"])) / mp.mpf(p["rate"])
        live = module.reference_point((p["shape"], a))
        log_s = mp.mpf(live["log_s"])
        expected = mp.log1p(-mp.exp(log_s)) if p["d"] > 0 else log_s
        assert abs(expected - mp.mpf(p["log_p"])) <= 1e-20 * abs(expected)
        if a > 0:
            k = mp.mpf(p["shape"])
            # S = a^-k Phi(-1, k, 1 + 1/a) (Lerch transcendent)
            lerch = -k * mp.log(a) + mp.log(mp.lerchphi(-1, k, 1 + 1 / a))
            assert abs(lerch - log_s) <= 1e-15 * abs(log_s)


def test_naive_truncated_series_is_wrong_near_zero_but_ours_is_exact():
    """The published 1000-term Hurwitz/Lerch truncation fails at small d; the accelerated
    series does not (k=2, rate=10, d=1e-4: P = 0.500005)."""
    k, rate, d = 2.0, 10.0, 1e-4
    n = np.arange(1, 1001)
    naive_s = np.sum((-1.0) ** (n + 1) * (1 + n * d / rate) ** (-k))
    naive_p = 1 - naive_s
    exact = float(torch.exp(gamma_torch(torch.tensor(d, dtype=torch.float64), k, rate)))
    assert abs(naive_p - 0.500005) > 0.4  # the truncation is badly off (about 0.99)
    assert exact == pytest.approx(0.5 + k / rate * d / 4, rel=1e-12, abs=0)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_infinite_margins_have_their_limits_and_zero_gradients(backend):
    """d = +inf gives log P = 0 exactly (all its derivatives 0), d = -inf gives -inf; the
    gradients are 0 at both, as for the LogNormal. Before the fix the rate derivative was NaN
    at both (inf / rate^2 times a zero)."""
    d = np.array([np.inf, -np.inf, np.inf, -np.inf])
    shape, rate = np.array([2.0, 2.0, 0.3, 50.0]), np.array([16.7, 16.7, 1e-3, 1e3])
    if backend == "torch":
        args = [torch.tensor(x, requires_grad=True) for x in (d, shape, rate)]
        out = gamma_torch(*args)
        out.sum().backward()
        value, grads = out.detach().numpy(), [a.grad.numpy() for a in args]
    else:
        f = jax.jit(jax.vmap(jax.value_and_grad(lambda *a: gamma_jax(*a), argnums=(0, 1, 2))))
        value, grads = f(*(jnp.asarray(x) for x in (d, shape, rate)))
    np.testing.assert_array_equal(np.asarray(value), [0.0, -np.inf, 0.0, -np.inf])
    np.testing.assert_array_equal(np.concatenate([np.asarray(g) for g in grads]), 0.0)
