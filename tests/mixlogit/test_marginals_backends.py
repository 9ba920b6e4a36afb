"""Torch and JAX agree; limits, collapse to the point mass, dtypes and edge values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mixlogit.jax as mj
import mixlogit.torch as mt


def random_grid(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 4, n)
    shape = 10.0 ** rng.uniform(-1.7, 3, n)
    rate = 10.0 ** rng.uniform(-3, 3, n)
    loc = rng.uniform(-4, 1, n)
    scale = rng.uniform(0.01, 2, n)
    return d, shape, rate, loc, scale


def test_torch_and_jax_agree_to_1e_12_in_float64_values_and_gradients():
    d, shape, rate, loc, scale = random_grid()
    for torch_fn, jax_fn, params in (
        (mt.gamma_logit_marginal, mj.gamma_logit_marginal, (shape, rate)),
        (mt.lognormal_logit_marginal, mj.lognormal_logit_marginal, (loc, scale)),
        (mt.point_mass_logit_marginal, mj.point_mass_logit_marginal, (shape / rate,)),
    ):
        args_t = [torch.tensor(x, requires_grad=True) for x in (d, *params)]
        out_t = torch_fn(*args_t)
        out_t.sum().backward()
        grads_t = [a.grad.numpy() for a in args_t]
        out_j, grads_j = jax.value_and_grad(
            lambda *a, f=jax_fn: f(*a).sum(), argnums=tuple(range(len(args_t)))
        )(*[jnp.asarray(x) for x in (d, *params)])
        out_j = jax_fn(*[jnp.asarray(x) for x in (d, *params)])
        # atol: subnormal values (below 2.2e-308) carry no relative precision in either backend
        np.testing.assert_allclose(out_t.detach().numpy(), out_j, rtol=1e-12, atol=1e-300)
        for gt, gj in zip(grads_t, grads_j, strict=True):
            np.testing.assert_allclose(gt, gj, rtol=1e-12, atol=1e-300)


def delta_method_error(d, mean, variance):
    """Second-order prediction of log E[sigmoid(beta d)] - log sigmoid(mean d):
    Var/2 * sigmoid''(x) d^2 / sigmoid(x) = Var/2 d^2 (1 - s)(1 - 2 s), s = sigmoid(mean d)."""
    x = mean * d
    sig = 1 / (1 + np.exp(-x))
    return 0.5 * variance * d * d * (1 - sig) * (1 - 2 * sig)


@pytest.mark.parametrize("d", [-5.0, -0.3, 0.0, 0.2, 4.0])
def test_gamma_collapses_to_log_sigmoid_of_mean_as_variance_vanishes(d):
    """Shape -> infinity at fixed mean: the error is Var/2 (log sigmoid)'' + O(Var^2)."""
    mean = 0.5
    target = float(torch.nn.functional.logsigmoid(torch.tensor(mean * d, dtype=torch.float64)))
    for shape in (1e2, 1e3, 1e4, 1e5, 1e6):
        got = float(
            mt.gamma_logit_marginal(torch.tensor(d, dtype=torch.float64), shape, shape / mean)
        )
        err = got - target
        predicted = delta_method_error(d, mean, mean**2 / shape)
        if d == 0:
            assert abs(err) < 1e-15
        else:
            # relative deviation from the second-order term shrinks like the variance
            assert abs(err / predicted - 1) < 30 / shape, (shape, err, predicted)


@pytest.mark.parametrize("d", [-5.0, 0.2, 4.0])
def test_lognormal_collapses_as_scale_vanishes(d):
    mean = 0.5
    target = float(torch.nn.functional.logsigmoid(torch.tensor(mean * d, dtype=torch.float64)))
    for scale in (0.1, 0.03, 0.01, 0.003, 0.001):
        loc = np.log(mean) - scale**2 / 2
        got = float(mt.lognormal_logit_marginal(torch.tensor(d, dtype=torch.float64), loc, scale))
        predicted = delta_method_error(d, mean, mean**2 * np.expm1(scale**2))
        assert abs((got - target) / predicted - 1) < 20 * scale, (scale, got - target, predicted)


def test_derivative_at_zero_is_the_two_sided_limit():
    d = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    out = mt.gamma_logit_marginal(d, 2.0, 10.0)
    out.backward()
    assert float(out) == pytest.approx(np.log(0.5), rel=1e-15)
    assert float(d.grad) == pytest.approx(2.0 / 10.0 / 2.0, rel=1e-13)  # E[beta]/4 / (1/2)
    g = jax.grad(lambda x: mj.gamma_logit_marginal(x, 2.0, 10.0))(0.0)
    assert float(g) == pytest.approx(0.1, rel=1e-13)


def test_infinite_margins_and_shapes_broadcast():
    out = mt.gamma_logit_marginal(torch.tensor([np.inf, -np.inf]), 2.0, 10.0)
    assert out[0] == 0 and out[1] == -np.inf
    out = mt.gamma_logit_marginal(torch.zeros(3, 1), torch.ones(4), 1.0)
    assert out.shape == (3, 4)
    assert mj.gamma_logit_marginal(jnp.zeros((3, 1)), jnp.ones(4), 1.0).shape == (3, 4)


def test_dtypes_follow_inputs():
    assert mt.gamma_logit_marginal(torch.tensor(1.0), 2.0, 3.0).dtype == torch.float32
    assert (
        mt.gamma_logit_marginal(torch.tensor(1.0, dtype=torch.float64), 2.0, 3.0).dtype
        == torch.float64
    )
    half = mt.gamma_logit_marginal(torch.tensor([1.0, -2.0], dtype=torch.bfloat16), 2.0, 3.0)
    assert half.dtype == torch.bfloat16
    ref = mt.gamma_logit_marginal(torch.tensor([1.0, -2.0], dtype=torch.float64), 2.0, 3.0)
    torch.testing.assert_close(half.double(), ref, rtol=1e-2, atol=0)
    assert mj.gamma_logit_marginal(jnp.float32(1.0), 2.0, 3.0).dtype == jnp.float32
    assert mj.gamma_logit_marginal(jnp.float64(1.0), 2.0, 3.0).dtype == jnp.float64


def test_jit_and_vmap():
    f = jax.jit(jax.vmap(mj.gamma_logit_marginal, in_axes=(0, None, None)))
    x = jnp.linspace(-3, 3, 7)
    np.testing.assert_allclose(f(x, 2.0, 5.0), mj.gamma_logit_marginal(x, 2.0, 5.0), rtol=1e-15)
