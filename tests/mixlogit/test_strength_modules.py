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


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_float32_conditional_variance_is_never_negative(backend):
    """A posterior CV below sqrt(float32 eps) (LogNormal scale 1e-3, Gamma shape 1e6) leaves
    E[beta^2] - mean^2 as rounding noise: it was negative at 18 and 36 of these 601 margins.
    Now it is clamped at 0 and stays within that noise of the float64 value: E[beta^2] and
    mean^2 each sum 16 rounded quadrature terms, so their difference carries up to
    2 * 16 eps mean^2 (the bound was 30 eps, which one margin of 601 exceeded by 4 % with
    the library versions of 2026-12-02)."""
    from mixlogit.families import GAMMA, LOGNORMAL, NUMPY_OPS
    from mixlogit.jax._ops import OPS as JAX_OPS

    d64 = np.linspace(-30.0, 30.0, 601)
    for family, params in (
        (LOGNORMAL, {"loc": -1.0, "scale": 1e-3}),
        (GAMMA, {"shape": 1e6, "rate": 1e6}),
    ):
        if backend == "torch":
            cls = mt.LogNormalStrength if family is LOGNORMAL else mt.GammaStrength
            options = {"method": "quadrature"} if family is LOGNORMAL else {}
            strength = cls(**params, **options)
            assert strength.mean.dtype == torch.float32
            mean, var = strength.conditional_moments(
                torch.tensor(d64, dtype=torch.float32), torch.ones(601)
            )
        else:
            f32 = {k: jnp.full(601, v, dtype=jnp.float32) for k, v in params.items()}
            mean, var = family.conditional_moments(
                JAX_OPS, jnp.asarray(d64, dtype=jnp.float32), f32
            )
        mean, var = (
            np.asarray(x.detach() if backend == "torch" else x, dtype=np.float64)
            for x in (mean, var)
        )
        ref_mean, ref_var = family.conditional_moments(
            NUMPY_OPS, d64, {k: np.full(601, v) for k, v in params.items()}
        )
        assert var.min() >= 0.0, (family.name, var.min())
        noise = 2 * 16 * np.finfo(np.float32).eps * ref_mean**2
        assert np.all(np.abs(var - ref_var) <= noise), family.name


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("lib", [mt, mj])
def test_values_the_stored_dtype_cannot_hold_are_refused(lib):
    """In float32 (torch's default dtype, JAX without x64) GammaStrength(1e300) stored
    raw_shape = inf and GammaStrength(rate=1e-50) a rate softplus(raw) = 0; now both raise,
    naming the parameter and the value. In float64 the same values are fine."""
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match=r"shape = 1e\+300 is out of range .*float32"):
            lib.GammaStrength(1e300)
        with pytest.raises(ValueError, match=r"rate = 1e-50 is out of range .*float32"):
            lib.GammaStrength(rate=1e-50)
        with pytest.raises(ValueError, match=r"loc = -1e\+100 is out of range"):
            lib.LogNormalStrength(loc=-1e100)
        with pytest.raises(ValueError, match=r"beta = 1e\+40 is out of range"):
            lib.FixedStrength(beta=1e40)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with jax.enable_x64(True):
            big = lib.GammaStrength(1e300)
            assert big.mean.item() == pytest.approx(1e300 / 16.7, rel=1e-12)
    finally:
        torch.set_default_dtype(default)
