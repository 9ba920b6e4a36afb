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


# --- reliability at the edges of the parameter space (issue 14, item 5) ---------------------


def _values_and_grads(backend, d, loc, scale, dtype):
    """``log P`` and its gradients in ``(d, loc, scale)``, elementwise, as float64 NumPy."""
    if backend == "torch":
        dt = {"float32": torch.float32, "float64": torch.float64}[dtype]
        args = [
            torch.tensor(np.asarray(x, dtype=float), dtype=dt, requires_grad=True)
            for x in (d, loc, scale)
        ]
        out = lognormal_torch(*args)
        out.sum().backward()
        return [t.detach().double().numpy() for t in (out, *(a.grad for a in args))]
    # jitted: one compile of the whole program (eager dispatch compiles every op separately)
    f = jax.jit(
        jax.vmap(jax.value_and_grad(lambda d, l, s: lognormal_jax(d, l, s), argnums=(0, 1, 2)))
    )
    value, grads = f(
        *(jnp.asarray(np.asarray(x, dtype=float), dtype=dtype) for x in (d, loc, scale))
    )
    return [np.asarray(x, dtype=np.float64) for x in (value, *grads)]


def _point_mass(d, loc):
    """``log sigmoid(exp(loc) d)`` and its derivatives in ``d`` and ``loc`` (mpmath)."""
    d, loc = mp.mpf(d), mp.mpf(loc)
    beta = mp.exp(loc)
    tail = 1 / (1 + mp.exp(beta * d))  # sigmoid(-beta d)
    return -mp.log1p(mp.exp(-beta * d)), beta * tail, beta * d * tail


# (d, loc) pairs on both sides, with |d| e^loc from 0.05 to 30: those with loc + log|d| > 0
# are where the quadrature switches to its tail rule.
EDGE_D = [-30.0, -3.0, -1.0, -0.1, 0.1, 1.0, 3.0, 30.0, 5.0, -5.0]
EDGE_LOC = [0.0, 0.0, -1.0, -1.0, -1.0, -1.0, 0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scale_zero_is_the_point_mass_with_its_gradients(backend, dtype):
    """scale = 0 (documented as allowed) is the point mass beta = exp(loc): value and
    gradients of log sigmoid(exp(loc) d), and d/d scale = 0 (its limit: log P =
    log f(loc) + scale^2 f''(loc) / (2 f(loc)) + O(scale^4), f(u) = sigmoid(e^u d)).
    Before the fix every gradient was NaN here (and in torch the values too, where the tail
    rule was picked)."""
    value, gd, gl, gs = _values_and_grads(backend, EDGE_D, EDGE_LOC, [0.0] * len(EDGE_D), dtype)
    ref = np.array(
        [[float(x) for x in _point_mass(d, loc)] for d, loc in zip(EDGE_D, EDGE_LOC, strict=True)]
    )
    rtol = 1e-12 if dtype == "float64" else 2e-6
    for got, want in ((value, ref[:, 0]), (gd, ref[:, 1]), (gl, ref[:, 2])):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 1e-3)
    np.testing.assert_allclose(gs, 0.0, atol=rtol)


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize(
    ("dtype", "scales"), [("float32", [1e-3, 1e-4]), ("float64", [1e-8, 1e-9])]
)
def test_small_scale_gradients_match_the_small_scale_expansion(backend, dtype, scales):
    """At scale <= 1e-3 (float32) and <= 1e-8 (float64) the gradients were NaN in torch.
    Reference: log P = log f + s^2 f'' / (2 f) + O(s^4) with f(u) = sigmoid(e^u d) at u = loc,
    so d/d loc = f'/f + s^2 (f3/f - f'' f'/f^2) / 2 + O(s^4) (f3 the third derivative) and
    d/d scale = s f''/f (1 + O(s^2)), derivatives by mpmath."""
    mp.mp.dps = 30
    for s in scales:
        value, _, gl, gs = _values_and_grads(backend, EDGE_D, EDGE_LOC, [s] * len(EDGE_D), dtype)
        for i, (d, loc) in enumerate(zip(EDGE_D, EDGE_LOC, strict=True)):
            f = lambda u, d=d: 1 / (1 + mp.exp(-mp.exp(u) * d))  # noqa: E731
            f0, f1, f2, f3 = (mp.diff(f, mp.mpf(loc), n) for n in range(4))
            ref_value = float(mp.log(f0) + s * s * f2 / (2 * f0))
            ref_loc = float(f1 / f0 + s * s * (f3 / f0 - f2 * f1 / f0**2) / 2)
            rtol = 1e-10 if dtype == "float64" else 2e-5
            assert value[i] == pytest.approx(ref_value, rel=rtol, abs=rtol * 1e-3), (d, loc, s)
            assert gl[i] == pytest.approx(ref_loc, rel=rtol, abs=rtol * 1e-3), (d, loc, s)
            # The scale derivative is O(s): relative to it, float32 rounding of log P is
            # amplified by 1 / s (1e-7 / 1e-4 here); the quadrature itself is exact to O(s^2).
            want = float(s * f2 / f0)
            tol = 1e-6 if dtype == "float64" else 5e-2 * max(1.0, 1e-4 / s)
            assert gs[i] == pytest.approx(want, rel=tol, abs=1e-3 * s), (d, loc, s)


# Margins beyond sqrt(finfo.max) (or below its inverse), and loc so large that loc + log|d|
# must be taken exactly: (d, loc, scale, dtype).
EXTREME = [
    (-1e300, -690.0, 0.5, "float64"),
    (1e300, -690.0, 0.5, "float64"),
    (-1e300, -680.0, 0.3, "float64"),
    (-1e300, -690.0, 1.0, "float64"),
    (-1e-300, 690.0, 1.0, "float64"),
    (-1e-300, 680.0, 0.5, "float64"),
    (-1e25, -57.0, 0.5, "float32"),
    (1e25, -50.0, 0.5, "float32"),
    (-1e-30, 60.0, 0.5, "float32"),
]


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize(("d", "loc", "scale", "dtype"), EXTREME)
def test_extreme_margins_match_mpmath(backend, d, loc, scale, dtype):
    """|log P - ref| <= tol max(1, |log P|), as on the main grid. Before the fix |d| was
    clipped to sqrt(finfo.max) when choosing the rule (and to 1e-12 finfo.max in it): e.g.
    (-1e300, -690, 0.5) gave -0.6934 for -2.1443, (-1e-30, 60, 0.5) in float32 -238.4 for
    -0.6932."""
    ref = float(mp.log(mp_lognormal_p(d, loc, scale)))
    value, gd, gl, gs = _values_and_grads(backend, [d], [loc], [scale], dtype)
    tol = 1e-6 if dtype == "float64" else 1e-5
    assert abs(value[0] - ref) <= tol * max(1.0, abs(ref)), (value[0], ref)
    assert np.isfinite([gd, gl, gs]).all()


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_zero_margin_with_large_loc_is_exactly_one_half(backend):
    """d = 0 gives log(1/2) for every loc, with d log P / dd = E[beta] / 2 = exp(loc +
    scale^2 / 2) / 2 and no gradient in loc, scale. Before the fix loc above ~350 (float64)
    sent d = 0 to the tail rule: log P = -3126 at loc = 400."""
    locs = [0.0, 360.0, 400.0, 700.0, 800.0]
    value, gd, gl, gs = _values_and_grads(backend, [0.0] * 5, locs, [0.5] * 5, "float64")
    np.testing.assert_allclose(value, np.log(0.5), rtol=1e-15)
    np.testing.assert_allclose(gd[:3], np.exp(np.array(locs[:3]) + 0.125) / 2, rtol=1e-12)
    np.testing.assert_allclose(np.r_[gl, gs], 0.0, atol=0)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_infinite_margins_have_their_limits_and_zero_gradients(backend):
    value, gd, gl, gs = _values_and_grads(
        backend,
        [np.inf, -np.inf, np.inf, -np.inf],
        [0.0, 0.0, 3.0, 3.0],
        [0.6, 0.6, 2.0, 0.0],
        "float64",
    )
    np.testing.assert_array_equal(value, [0.0, -np.inf, 0.0, -np.inf])
    np.testing.assert_array_equal(np.r_[gd, gl, gs], 0.0)
