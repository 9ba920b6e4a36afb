"""The fused Gamma marginal: value and its three gradients in one pass over the series.

``gamma_log_marginal_and_grads`` against an arbitrary-precision reference computed here by
mpmath quadrature over the Gamma density (derivatives under the integral), on a grid of its
own (seed and design not used elsewhere); the precomputed gradients as the backends'
derivatives: torch ``gradcheck`` / ``gradgradcheck``, ``torch.autograd.functional.hessian``,
``jax.jvp`` and ``jax.hessian`` against finite differences.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import torch

import mixlogit.jax as mj
import mixlogit.torch as mt
from mixlogit import _kernels
from mixlogit.families import GAMMA
from mixlogit.families._numpy_ops import NUMPY_OPS
from mixlogit.jax._ops import OPS as JAX_OPS
from mixlogit.torch._ops import OPS as TORCH_OPS

jax.config.update("jax_enable_x64", True)

TERMS = {"float64": 24, "float32": 12}


def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(d, shape, rate)``, rounded to float32 so both precisions see the same numbers:
    random points (|d| log-uniform in [1e-9, 200], either sign; shape in [0.05, 50], rate in
    [0.1, 100], log-uniform), and the corners of (shape, rate) at d = -200, 200, 0, -1e-9."""
    rng = np.random.default_rng(918273)
    count = 28
    d = rng.choice([-1.0, 1.0], count) * np.exp(rng.uniform(np.log(1e-9), np.log(200.0), count))
    shape = np.exp(rng.uniform(np.log(0.05), np.log(50.0), count))
    rate = np.exp(rng.uniform(np.log(0.1), np.log(100.0), count))
    corners = [
        (x, k, r) for x in (-200.0, 200.0, 0.0, -1e-9) for k in (0.05, 50.0) for r in (0.1, 100.0)
    ]
    d, shape, rate = (
        np.concatenate([v, c])
        for v, c in zip((d, shape, rate), zip(*corners, strict=True), strict=True)
    )
    return tuple(v.astype(np.float32).astype(np.float64) for v in (d, shape, rate))


def reference(d: float, k: float, r: float) -> tuple[mp.mpf, mp.mpf, mp.mpf, mp.mpf]:
    """``(log P, dlogP/dd, dlogP/dshape, dlogP/drate)`` at the exact binary inputs, 30 digits.

    With ``x = beta r = e^t ~ Gamma(k, 1)`` and ``a = |d| / r``, ``S = E[sigmoid(-x a)]`` and
    its derivatives are integrals over ``t`` of the log-concave ``exp(k t - e^t) sigmoid(-a e^t)
    / Gamma(k)`` times smooth factors: ``dS/da = -E[x sigmoid(xa) sigmoid(-xa)]``,
    ``dS/dk = E[sigmoid(-xa) (log x - digamma k)]``. Tanh-sinh on pieces outward from the
    mode, on each of which the log-integrand falls by at most 30, down to 110 below the peak.
    """
    d, k, r = mp.mpf(d), mp.mpf(k), mp.mpf(r)
    if d == 0:  # S = 1/2, and the two-sided derivative E[beta] / 4 / P
        return mp.log(mp.mpf(1) / 2), k / (2 * r), mp.mpf(0), mp.mpf(0)
    a = abs(d) / r
    log_norm = -mp.loggamma(k)
    digamma = mp.digamma(k)

    def sigmoid(z):
        return 1 / (1 + mp.exp(-z))

    def log_integrand(t):
        return k * t - mp.exp(t) - mp.log1p(mp.exp(a * mp.exp(t))) + log_norm

    def slope(t):
        z = a * mp.exp(t)
        return k - mp.exp(t) - z * sigmoid(z)

    lo, hi = mp.log(k / (1 + a)), mp.log(k)  # slope >= 0 at lo, < 0 at hi
    for _ in range(120):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if slope(mid) > 0 else (lo, mid)
    mode = (lo + hi) / 2
    z = a * mp.exp(mode)
    width = 1 / mp.sqrt(mp.exp(mode) + z * sigmoid(z) + z * z * sigmoid(z) * sigmoid(-z))
    peak = log_integrand(mode)
    points = [mode]
    for side in (-1, 1):
        at, step = mode, width
        while log_integrand(at) > peak - 110:
            while log_integrand(at) - log_integrand(at + side * step) > 30:
                step /= 2
            at += side * step
            points.append(at)
            step *= 2
    points.sort()

    def integral(factor):
        # mp.quad stops on an absolute error estimate: scale the integrand to 1 at its peak
        scaled = mp.quad(lambda t: factor(t) * mp.exp(log_integrand(t) - peak), points)
        return scaled * mp.exp(peak)

    s = integral(lambda t: 1)
    ds_da = -integral(lambda t: mp.exp(t) * sigmoid(a * mp.exp(t)))
    if a >= 1:
        ds_dk = integral(lambda t: t - digamma)
    else:
        # E[log x - digamma] = 0, so sigmoid(-xa) - 1/2 = -tanh(xa/2)/2 may replace
        # sigmoid(-xa): no O(1) terms cancel to the O(a) result
        # (the factor 1 + exp(a e^t) cancels the integrand's sigmoid)
        ds_dk = (
            -integral(
                lambda t: mp.tanh(a * mp.exp(t) / 2) * (1 + mp.exp(a * mp.exp(t))) * (t - digamma)
            )
            / 2
        )
    sign = 1 if d > 0 else -1
    p, dp_ds = (1 - s, -1) if d > 0 else (s, 1)
    log_p = mp.log1p(-s) if d > 0 else mp.log(s)
    return (
        log_p,
        dp_ds * sign * ds_da / r / p,
        dp_ds * ds_dk / p,
        -dp_ds * a * ds_da / r / p,
    )


@functools.cache
def reference_grid() -> tuple[tuple[np.ndarray, ...], list[tuple[mp.mpf, ...]]]:
    mp.mp.dps = 30
    d, shape, rate = _grid()
    return (d, shape, rate), [reference(*p) for p in zip(d, shape, rate, strict=True)]


def max_rel_error(got: np.ndarray, ref: list, floor: float) -> tuple[float, int]:
    """Largest ``|got - ref| / max(|ref|, floor)`` (in mpmath) and where."""
    errors = [
        float(abs(mp.mpf(float(g)) - r) / max(abs(r), floor)) for g, r in zip(got, ref, strict=True)
    ]
    return max(errors), int(np.argmax(errors))


def fused(backend: str, dtype: str, d, shape, rate):
    """``(log P, dd, dshape, drate)`` as float64 NumPy, from the kernel and from autodiff
    of the public function (which must give the same gradients)."""
    if backend == "torch":
        args = [torch.tensor(x, dtype=getattr(torch, dtype)) for x in (d, shape, rate)]
        direct = _kernels.gamma_log_marginal_and_grads(TORCH_OPS, *args, TERMS[dtype])
        leaves = [x.clone().requires_grad_(True) for x in args]
        value = mt.gamma_logit_marginal(*leaves)
        autodiff = (value, *torch.autograd.grad(value.sum(), leaves))
        convert = lambda x: x.detach().double().numpy()  # noqa: E731
    else:
        args = [jnp.asarray(x, dtype=getattr(jnp, dtype)) for x in (d, shape, rate)]
        direct = _kernels.gamma_log_marginal_and_grads(JAX_OPS, *args, TERMS[dtype])
        value, grads = jax.value_and_grad(
            lambda *a: mj.gamma_logit_marginal(*a).sum(), argnums=(0, 1, 2)
        )(*args)
        autodiff = (mj.gamma_logit_marginal(*args), *grads)
        convert = lambda x: np.asarray(x, dtype=np.float64)  # noqa: E731
    return [convert(x) for x in direct], [convert(x) for x in autodiff]


# float32: relative 1e-5 with a floor of 1e-30 (far-tail values and gradients of d > 0 are
# below it, where float32 keeps no relative precision); the gradients get 3e-5, as their
# error carries the conditioning of the series (weights rounded to float32, see _series.py).
TOLERANCE = {"float64": (1e-10, 1e-10, 1e-300), "float32": (1e-5, 3e-5, 1e-30)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_fused_value_and_gradients_match_mpmath(backend, dtype):
    (d, shape, rate), ref = reference_grid()
    direct, autodiff = fused(backend, dtype, d, shape, rate)
    value_tol, grad_tol, floor = TOLERANCE[dtype]
    names = ("log_p", "dlogp_dd", "dlogp_dshape", "dlogp_drate")
    for i, (name, got) in enumerate(zip(names, direct, strict=True)):
        assert np.all(np.isfinite(got)), name
        err, at = max_rel_error(got, [r[i] for r in ref], floor)
        tol = value_tol if i == 0 else grad_tol
        assert err <= tol, (name, err, (d[at], shape[at], rate[at]), got[at], ref[at][i])
    for got, expected in zip(autodiff, direct, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", ["torch", "jax", "numpy"])
def test_fused_value_is_the_value_path_bit_for_bit(backend):
    d, shape, rate = _grid()
    if backend == "torch":
        ops, args = TORCH_OPS, [torch.tensor(x) for x in (d, shape, rate)]
    elif backend == "jax":
        ops, args = JAX_OPS, [jnp.asarray(x) for x in (d, shape, rate)]
    else:
        ops, args = NUMPY_OPS, [d, shape, rate]
    value = _kernels.gamma_log_marginal(ops, *args, 24)
    log_p, *_ = _kernels.gamma_log_marginal_and_grads(ops, *args, 24)
    np.testing.assert_array_equal(np.asarray(log_p), np.asarray(value))
    family_value = GAMMA.log_marginal(ops, args[0], {"shape": args[1], "rate": args[2]})
    np.testing.assert_array_equal(np.asarray(family_value), np.asarray(value))


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_limits_zero_infinity_and_clipping(backend):
    """d = 0: dlogP/dd is the two-sided limit shape / (2 rate), the others 0; d = +-inf:
    exact limits and zero gradients; |d| / rate beyond the clip: finite, d and rate get 0."""
    big = 1e305  # |d| / rate = 1e308: finite, beyond finfo.max / (4 num_terms)
    d = np.array([0.0, -0.0, np.inf, -np.inf, big, -big])
    shape = np.array([2.0, 0.3, 2.0, 50.0, 3.0, 3.0])
    rate = np.array([16.7, 0.1, 16.7, 1e-3, 1e-3, 1e-3])
    ops, cast = (TORCH_OPS, torch.tensor) if backend == "torch" else (JAX_OPS, jnp.asarray)
    log_p, dd, dk, dr = (
        np.asarray(x)
        for x in _kernels.gamma_log_marginal_and_grads(ops, *map(cast, (d, shape, rate)), 24)
    )
    np.testing.assert_allclose(log_p[:2], np.log(0.5), rtol=1e-14)
    np.testing.assert_allclose(dd[:2], shape[:2] / (2 * rate[:2]), rtol=1e-12)
    np.testing.assert_array_equal(np.concatenate([dk[:2], dr[:2]]), 0.0)
    np.testing.assert_array_equal(log_p[2:4], [0.0, -np.inf])
    np.testing.assert_array_equal(np.concatenate([dd[2:], dr[2:]]), 0.0)
    np.testing.assert_array_equal(dk[2:4], 0.0)
    assert np.all(np.isfinite(log_p[4:])) and np.all(np.isfinite(dk[4:]))


def test_torch_gradcheck_with_broadcast_inputs():
    """First and second derivatives (gradgradcheck: the double-backward path recomputes the
    gradients with a graph), with inputs that broadcast so gradients are summed back."""
    d = torch.tensor([-30.0, -0.7, 0.0, 1e-6, 2.5, 150.0], dtype=torch.float64, requires_grad=True)
    shape = torch.tensor([[0.4], [7.0]], dtype=torch.float64, requires_grad=True)
    rate = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)

    def f(d, shape, rate):
        return _kernels.gamma_log_marginal_fused(TORCH_OPS, d, shape, rate, 24)

    assert f(d, shape, rate).shape == (2, 6)
    assert torch.autograd.gradcheck(f, (d, shape, rate))
    assert torch.autograd.gradgradcheck(f, (d, shape, rate))


def test_torch_hessian_is_the_jax_hessian():
    """``torch.autograd.functional.hessian`` (fit_strength_mle's standard errors) through the
    custom Function agrees with JAX's hessian and with differences of the gradient."""
    rng = np.random.default_rng(5150)
    margins = rng.normal(0.0, 3.0, 40)
    theta = np.array([1.7, 4.2])

    def torch_nll(x):
        return -mt.gamma_logit_marginal(torch.tensor(margins), x[0], x[1]).sum()

    def jax_nll(x):
        return -mj.gamma_logit_marginal(jnp.asarray(margins), x[0], x[1]).sum()

    h_torch = torch.autograd.functional.hessian(torch_nll, torch.tensor(theta)).numpy()
    h_jax = np.asarray(jax.hessian(jax_nll)(jnp.asarray(theta)))
    np.testing.assert_allclose(h_torch, h_jax, rtol=1e-12)
    gradient = jax.grad(jax_nll)
    step = 1e-5
    columns = [
        (
            np.asarray(gradient(jnp.asarray(theta + step * e)))
            - np.asarray(gradient(jnp.asarray(theta - step * e)))
        )
        / (2 * step)
        for e in np.eye(2)
    ]
    np.testing.assert_allclose(h_jax, np.stack(columns, axis=1), rtol=1e-7)


def test_jax_jvp_and_hessian_match_finite_differences():
    d = jnp.asarray([-40.0, -1.3, 0.0, 3e-7, 0.8, 90.0])
    shape = jnp.asarray([0.06, 2.0, 5.0, 45.0, 0.5, 3.0])
    rate = jnp.asarray([0.2, 4.0, 1.0, 80.0, 0.15, 9.0])
    tangents = (jnp.asarray([0.3, -1.0, 0.5, 2.0, 1.0, -0.4]), 0.1 * shape, -0.2 * rate)

    def f(d, shape, rate):
        return mj.gamma_logit_marginal(d, shape, rate)

    _, jvp = jax.jvp(f, (d, shape, rate), tangents)
    step = 1e-6
    plus = f(*(x + step * t for x, t in zip((d, shape, rate), tangents, strict=True)))
    minus = f(*(x - step * t for x, t in zip((d, shape, rate), tangents, strict=True)))
    np.testing.assert_allclose(jvp, (plus - minus) / (2 * step), rtol=1e-7, atol=1e-12)

    def per_point(x):  # x = (d, shape, rate) of one point
        return mj.gamma_logit_marginal(x[0], x[1], x[2])

    points = jnp.stack([d, shape, rate], axis=1)
    hessians = jax.vmap(jax.hessian(per_point))(points)
    gradient = jax.vmap(jax.grad(per_point))
    scale = jnp.maximum(jnp.abs(points), 1.0)
    for j in range(3):
        h = 1e-5 * scale[:, j : j + 1] * jnp.eye(3)[j]
        column = (gradient(points + h) - gradient(points - h)) / (2 * h[:, j : j + 1])
        np.testing.assert_allclose(hessians[:, :, j], column, rtol=1e-6, atol=1e-9)
    assert jnp.allclose(hessians, jnp.swapaxes(hessians, 1, 2), rtol=1e-10, atol=1e-14)
