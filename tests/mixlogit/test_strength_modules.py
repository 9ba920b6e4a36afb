"""Strength objects: torch modules and JAX pytrees (moments, sampling, posteriors, state)."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import integrate, stats

import mixlogit.jax as mj
import mixlogit.torch as mt


def numeric_posterior_moments(density, d, y):
    """Posterior mean/var of beta by adaptive quadrature (scipy), for an independent check."""
    lik = (lambda b: 1 / (1 + np.exp(-b * d))) if y == 1 else (lambda b: 1 / (1 + np.exp(b * d)))
    z = integrate.quad(lambda b: density(b) * lik(b), 0, np.inf, limit=400, epsabs=0, epsrel=1e-13)[
        0
    ]
    m1 = integrate.quad(
        lambda b: b * density(b) * lik(b), 0, np.inf, limit=400, epsabs=0, epsrel=1e-13
    )[0]
    m2 = integrate.quad(
        lambda b: b * b * density(b) * lik(b), 0, np.inf, limit=400, epsabs=0, epsrel=1e-13
    )[0]
    mean = m1 / z
    return mean, m2 / z - mean**2


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_moments_and_parameters(backend):
    lib = mt if backend == "torch" else mj
    g = lib.GammaStrength(shape=2.0, rate=16.7)
    assert float(g.mean) == pytest.approx(2.0 / 16.7, rel=1e-6)
    assert float(g.variance) == pytest.approx(2.0 / 16.7**2, rel=1e-6)
    assert float(g.coefficient_of_variation) == pytest.approx(1 / np.sqrt(2), rel=1e-6)
    ln = lib.LogNormalStrength(loc=-2.3, scale=0.6)
    assert float(ln.mean) == pytest.approx(np.exp(-2.3 + 0.18), rel=1e-6)
    assert float(ln.variance) == pytest.approx(np.expm1(0.36) * np.exp(-4.6 + 0.36), rel=1e-5)
    assert set(ln.constrained_parameters()) == {"loc", "scale"}
    f = lib.FixedStrength(beta=0.1)
    assert float(f.mean) == pytest.approx(0.1) and float(f.variance) == 0


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("y", [0, 1])
@pytest.mark.parametrize("d", [-8.0, 0.0, 3.0, 40.0])
def test_conditional_moments_match_numerical_integration(backend, y, d):
    lib = mt if backend == "torch" else mj
    gamma = lib.GammaStrength(shape=2.0, rate=16.7)
    lognormal = lib.LogNormalStrength(loc=-2.3, scale=0.6)
    for strength, density in (
        (gamma, stats.gamma(a=2.0, scale=1 / 16.7).pdf),
        (lognormal, stats.lognorm(s=0.6, scale=np.exp(-2.3)).pdf),
    ):
        d_arr = torch.tensor([d], dtype=torch.float64) if backend == "torch" else jnp.array([d])
        y_arr = torch.tensor([y]) if backend == "torch" else jnp.array([y])
        mean, var = strength.conditional_moments(d_arr, y_arr)
        ref_mean, ref_var = numeric_posterior_moments(density, d, y)
        # Gamma: exact identity; LogNormal: 16-point Gauss-Hermite.
        rtol = 1e-5 if backend == "torch" else 1e-6  # torch parameters are float32
        if strength.family == "lognormal":
            rtol = 1e-3
        assert float(mean[0]) == pytest.approx(ref_mean, rel=rtol)
        assert float(var[0]) == pytest.approx(ref_var, rel=rtol * 10)


def test_choosing_the_option_raises_the_strength_posterior_when_it_has_positive_margin():
    g = mt.GammaStrength(shape=2.0, rate=16.7)
    d = torch.tensor([5.0, 5.0])
    mean, _ = g.conditional_moments(d, torch.tensor([1, 0]))
    assert mean[0] > g.mean > mean[1]


def test_torch_state_dict_roundtrip_and_frozen_buffers():
    g = mt.GammaStrength(shape=3.0, rate=7.0)
    assert {n for n, _ in g.named_parameters()} == {"raw_shape", "raw_rate"}
    buf = io.BytesIO()
    torch.save(g.state_dict(), buf)
    buf.seek(0)
    h = mt.GammaStrength(shape=1.0, rate=1.0)
    h.load_state_dict(torch.load(buf))
    assert float(h.shape) == pytest.approx(3.0, rel=1e-6)
    frozen = mt.LogNormalStrength(loc=-1.0, scale=0.5, learnable=False)
    assert list(frozen.parameters()) == []
    assert set(frozen.state_dict()) == {"loc", "raw_scale"}


def test_torch_gradients_reach_raw_parameters():
    g = mt.GammaStrength()
    loss = -g.log_marginal(torch.tensor([0.3, -0.2, 1.5])).sum()
    loss.backward()
    assert g.raw_shape.grad is not None and torch.isfinite(g.raw_shape.grad)
    ln = mt.LogNormalStrength(method="mc", num_samples=16)
    (
        -ln.log_marginal(torch.tensor([0.3, 1.0]), generator=torch.Generator().manual_seed(0)).sum()
    ).backward()
    assert torch.isfinite(ln.raw_scale.grad) and torch.isfinite(ln.loc.grad)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_samples_have_the_right_moments(backend):
    n = 200_000
    if backend == "torch":
        torch.manual_seed(0)
        g = mt.GammaStrength(shape=2.0, rate=16.7)
        ln = mt.LogNormalStrength(loc=-2.3, scale=0.6)
        sg, sl = g.sample((n,)).detach().numpy(), ln.sample((n,)).detach().numpy()
    else:
        g, ln = mj.GammaStrength(shape=2.0, rate=16.7), mj.LogNormalStrength(loc=-2.3, scale=0.6)
        sg = np.asarray(g.sample(jax.random.PRNGKey(0), (n,)))
        sl = np.asarray(ln.sample(jax.random.PRNGKey(1), (n,)))
    for s, strength in ((sg, g), (sl, ln)):
        se = np.sqrt(float(strength.variance) / n)
        assert abs(s.mean() - float(strength.mean)) < 5 * se
        assert s.var() == pytest.approx(float(strength.variance), rel=0.05)


def test_jax_pytree_roundtrip_grad_and_frozen():
    g = mj.GammaStrength(shape=2.0, rate=16.7)
    leaves, treedef = jax.tree_util.tree_flatten(g)
    assert len(leaves) == 2
    again = jax.tree_util.tree_unflatten(treedef, leaves)
    assert float(again.shape) == pytest.approx(2.0, rel=1e-6)
    grad = jax.grad(lambda s: s.log_marginal(1.0))(g)
    assert isinstance(grad, mj.GammaStrength)
    frozen = mj.GammaStrength(shape=2.0, rate=16.7, learnable=False)
    assert jax.tree_util.tree_leaves(frozen) == []
    out = jax.jit(lambda s, x: s.log_marginal(x))(frozen, jnp.array([0.0, 1.0]))
    assert out.shape == (2,)


@pytest.mark.parametrize("lib", [mt, mj])
def test_invalid_parameters_are_named(lib):
    with pytest.raises(ValueError, match="shape must be a positive finite number, got -1"):
        lib.GammaStrength(shape=-1.0)
    with pytest.raises(ValueError, match="scale must be a positive"):
        lib.LogNormalStrength(scale=0.0)
    with pytest.raises(ValueError, match="beta must be a positive"):
        lib.FixedStrength(beta=float("nan"))
    with pytest.raises(ValueError, match="method must be"):
        lib.LogNormalStrength(method="exact")


def test_both_backends_export_the_same_public_names():
    import inspect

    from mixlogit._frontend import PUBLIC_NAMES

    assert mt.__all__ == mj.__all__ == list(PUBLIC_NAMES)
    for name in PUBLIC_NAMES:
        torch_object, jax_object = getattr(mt, name), getattr(mj, name)
        # result records are backend-neutral NamedTuples, shared by both
        assert torch_object is not jax_object or name in {"StrengthMLE", "PanelPosterior"}, name
        assert inspect.getdoc(torch_object) and inspect.getdoc(jax_object), name


def test_front_end_signatures_name_each_backends_random_source():
    import inspect

    torch_keywords = inspect.signature(mt.lognormal_logit_marginal).parameters
    jax_keywords = inspect.signature(mj.lognormal_logit_marginal).parameters
    assert list(torch_keywords)[-2:] == ["noise", "generator"]
    assert list(jax_keywords)[-2:] == ["noise", "key"]
    assert "backend" not in inspect.signature(mt.fit_strength_mle).parameters
    with pytest.raises(TypeError, match="unexpected keyword argument 'key'"):
        mt.lognormal_logit_marginal(0.5, -2.3, 0.6, key=jax.random.PRNGKey(0))
    # Same draws from the same generator state, whichever front end asks.
    d = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    draws = {"method": "mc", "num_samples": 64}
    a = mt.lognormal_logit_marginal(
        d, -2.3, 0.6, **draws, generator=torch.Generator().manual_seed(3)
    )
    b = mt.LogNormalStrength(num_samples=64).log_marginal(
        d, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(a, b.to(a.dtype), rtol=1e-6, atol=0)
