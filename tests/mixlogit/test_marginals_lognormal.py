"""LogNormal strength marginal: Gauss-Hermite against mpmath, and the Monte Carlo estimator."""

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import torch

from mixlogit.jax import lognormal_logit_marginal as lognormal_jax
from mixlogit.torch import lognormal_logit_marginal as lognormal_torch


def mp_lognormal_p(d, loc, scale):
    """E[sigmoid(exp(loc + scale eps) d)] by tanh-sinh quadrature at 30 digits.

    The small side S = E[sigmoid(-beta |d|)] is integrated over windows around the mode of
    its integrand (found with mpmath's root finder), so deep tails keep their digits.
    """
    mp.mp.dps = 30
    d, loc, scale = mp.mpf(d), mp.mpf(loc), mp.mpf(scale)
    if d == 0:
        return mp.mpf(1) / 2
    a = abs(d)

    def log_f(e):
        return -e * e / 2 - mp.log1p(mp.exp(mp.exp(loc + scale * e) * a))

    def dlog_f(e):
        z = mp.exp(loc + scale * e) * a
        return -e - scale * z / (1 + mp.exp(-z))

    knee = -(mp.log(a) + loc) / scale
    mode = mp.findroot(dlog_f, (min(knee, 0) - 1 - scale, mp.mpf(0)), solver="anderson")
    f = lambda e: mp.exp(log_f(e)) / mp.sqrt(2 * mp.pi)  # noqa: E731
    pts = [mode + j for j in (-40, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 40)]
    s = mp.quad(f, [-mp.inf, *pts]) + mp.quad(f, [pts[-1], pts[-1] + 200])
    return 1 - s if d > 0 else s


def mp_lognormal_log_p(d, loc, scale):
    """log P with log1p on the large side, so a P within 1e-300 of 1 keeps its digits."""
    p = mp_lognormal_p(d, loc, scale)
    return mp.log1p(-mp_lognormal_p(-d, loc, scale)) if d > 0 else mp.log(p)


GRID_D = [-1e3, -30.0, -3.0, -1.0, -0.1, 0.0, 0.1, 1.0, 3.0, 30.0, 1e3]
GRID_LOC = [-2.3, -1.0, 0.0]
GRID_SCALE = [0.05, 0.6, 1.0, 2.0]


def test_quadrature_16_points_within_1e_6_of_mpmath_for_scale_up_to_2():
    """P within 1e-6 absolute, and log P within 1e-6 relative (adaptive centring keeps the
    tail), for |d| up to 1e3 and scale <= 2."""
    d, loc, scale = np.meshgrid(GRID_D, GRID_LOC, GRID_SCALE, indexing="ij")
    d, loc, scale = d.ravel(), loc.ravel(), scale.ravel()
    got = torch.exp(
        lognormal_torch(torch.tensor(d), torch.tensor(loc), torch.tensor(scale), num_points=16)
    ).numpy()
    ref = np.array([float(mp_lognormal_p(*args)) for args in zip(d, loc, scale, strict=True)])
    err = np.abs(got - ref)
    assert err.max() <= 1e-6, (err.max(), d[err.argmax()], loc[err.argmax()], scale[err.argmax()])
    log_got = lognormal_torch(
        torch.tensor(d), torch.tensor(loc), torch.tensor(scale), num_points=16
    ).numpy()
    log_ref = np.array(
        [float(mp_lognormal_log_p(*args)) for args in zip(d, loc, scale, strict=True)]
    )
    rel = np.abs(log_got - log_ref) / np.maximum(np.abs(log_ref), 1e-300)
    assert rel.max() <= 1e-6, (rel.max(), d[rel.argmax()], loc[rel.argmax()], scale[rel.argmax()])


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
