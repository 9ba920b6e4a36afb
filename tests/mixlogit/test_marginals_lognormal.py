"""LogNormal strength marginal: Gauss-Hermite against mpmath, and the Monte Carlo estimator."""

import importlib.util
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import torch

from mixlogit.jax import lognormal_logit_marginal as lognormal_jax
from mixlogit.torch import lognormal_logit_marginal as lognormal_torch


def _load_reference_module():
    spec = importlib.util.spec_from_file_location(
        "lognormal_reference", Path(__file__).parent / "reference" / "lognormal_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REFERENCE = _load_reference_module()
POINTS = json.loads((Path(__file__).parent / "data" / "lognormal_reference.json").read_text())[
    "points"
]


def mp_lognormal_p(d, loc, scale):
    """E[sigmoid(exp(loc + scale eps) d)] at 30 digits (see reference/lognormal_reference.py)."""
    s = REFERENCE.small_side(d, loc, scale)
    return 1 - s if d > 0 else s


def test_quadrature_16_points_within_1e_6_of_mpmath_for_scale_up_to_2():
    """P within 1e-6 absolute, and log P within 1e-6 absolute near 0 and relative in the tail
    (|error| <= 1e-6 max(1, |log P|)), on a grid of |d| up to 1e3, loc in [-2.3, 0], scale in
    [0.05, 2] (both sides of the switch between quadrature domains at scale 0.65)."""
    d = torch.tensor([p["d"] for p in POINTS], dtype=torch.float64)
    loc = torch.tensor([p["loc"] for p in POINTS], dtype=torch.float64)
    scale = torch.tensor([p["scale"] for p in POINTS], dtype=torch.float64)
    assert float(scale.max()) == 2.0 and float(d.abs().max()) == 1e3
    log_got = lognormal_torch(d, loc, scale, num_points=16).numpy()
    log_ref = np.array([float(mp.mpf(p["log_p"])) for p in POINTS])
    abs_err = np.abs(np.exp(log_got) - np.exp(log_ref))
    assert abs_err.max() <= 1e-6, POINTS[int(abs_err.argmax())]
    scaled = np.abs(log_got - log_ref) / np.maximum(np.abs(log_ref), 1.0)
    assert scaled.max() <= 1e-6, POINTS[int(scaled.argmax())]
    # the JAX twin gives the same numbers
    log_jax = np.asarray(
        lognormal_jax(jnp.asarray(d.numpy()), jnp.asarray(loc.numpy()), jnp.asarray(scale.numpy()))
    )
    np.testing.assert_allclose(log_jax, log_got, rtol=1e-12, atol=1e-300)


def test_reference_fixture_is_reproducible_live():
    for p in POINTS[::37]:
        s = REFERENCE.small_side(p["d"], p["loc"], p["scale"])
        live = mp.log1p(-s) if p["d"] > 0 else mp.log(s)
        assert abs(live - mp.mpf(p["log_p"])) <= 1e-20 * max(abs(live), mp.mpf(1e-300))


def test_quadrature_converges_with_more_points():
    d, loc, scale = 7.0, 0.0, 2.0
    ref = float(mp.log(mp_lognormal_p(d, loc, scale)))
    errs = [
        abs(
            float(lognormal_torch(torch.tensor(d, dtype=torch.float64), loc, scale, num_points=n))
            - ref
        )
        for n in (8, 16, 32, 64)
    ]
    assert errs[-1] < 1e-10
    assert errs[-1] < errs[0]


def test_mc_estimator_is_unbiased_for_the_probability():
    """E_eps[(1/K) sum_k sigmoid(beta_k d)] = P(d): t-test over 4000 independent K=16 estimates."""
    gen = torch.Generator().manual_seed(0)
    d = torch.tensor([-3.0, -0.5, 0.7, 4.0], dtype=torch.float64)
    loc, scale = -0.3, 0.9
    reps = 4000
    est = torch.exp(
        lognormal_torch(d.expand(reps, 4), loc, scale, method="mc", num_samples=16, generator=gen)
    )
    ref = np.array([float(mp_lognormal_p(float(x), loc, scale)) for x in d])
    mean = est.mean(0).numpy()
    se = est.std(0).numpy() / np.sqrt(reps)
    z = (mean - ref) / se
    assert np.all(np.abs(z) < 4), z
    # The log of the MC average is biased downwards (Jensen), which is why the test is on P;
    # the bias is clearest where P is small.
    log_est = lognormal_torch(d[:1].expand(reps, 1), loc, scale, method="mc", generator=gen)
    log_se = log_est.std() / np.sqrt(reps)
    assert float(log_est.mean()) < np.log(ref[0]) - 3 * float(log_se)


def test_mc_with_caller_noise_matches_manual_average_and_shared_noise_broadcasts():
    d = torch.tensor([0.5, -2.0], dtype=torch.float64)
    noise = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = lognormal_torch(d, -2.3, 0.6, method="mc", noise=noise)
    beta = torch.exp(-2.3 + 0.6 * noise)
    manual = torch.log(torch.sigmoid(beta * d).mean(0))
    torch.testing.assert_close(got, manual, rtol=1e-14, atol=0)
    shared = lognormal_torch(d, -2.3, 0.6, method="mc", noise=noise[:, 0])
    beta = torch.exp(-2.3 + 0.6 * noise[:, :1])
    torch.testing.assert_close(
        shared, torch.log(torch.sigmoid(beta * d).mean(0)), rtol=1e-14, atol=0
    )


def test_mc_jax_with_key_and_noise():
    d = jnp.array([0.5, -2.0])
    noise = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
    got = lognormal_jax(d, -2.3, 0.6, method="mc", noise=noise)
    beta = jnp.exp(-2.3 + 0.6 * noise)
    np.testing.assert_allclose(got, jnp.log(jax.nn.sigmoid(beta * d).mean(0)), rtol=1e-13)
    assert lognormal_jax(d, -2.3, 0.6, method="mc", key=jax.random.PRNGKey(1)).shape == (2,)
    with pytest.raises(ValueError, match=r"noise.*key"):
        lognormal_jax(d, -2.3, 0.6, method="mc")


def test_bad_method_is_named():
    with pytest.raises(ValueError, match="'simpson'"):
        lognormal_torch(torch.tensor(1.0), 0.0, 1.0, method="simpson")
    with pytest.raises(ValueError, match="'simpson'"):
        lognormal_jax(1.0, 0.0, 1.0, method="simpson")
