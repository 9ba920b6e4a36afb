"""Panel strength marginal (one strength per group) against an arbitrary-precision reference.

The reference (tests/mixlogit/data/panel_reference.json, built by reference/panel_reference.py:
piecewise Gauss-Legendre in mpmath at 30 digits on pieces placed by a float64 scan,
independent of the library's mode-centred trapezoid rule) holds 69 groups of 1 to 256 choices:
groups simulated from the model across the required ranges (Gamma shape 0.1-100 with mean
0.01-100, LogNormal scale 0.05-3), the ranges' corners, groups whose L is near 0 or deep in
the tail, tiny margins and one-sided groups. For each it gives L, the derivatives in the
parameters (central differences in mpmath), along a random direction in d, and the posterior
mean, variance and quantiles of the strength.
"""

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import torch
from scipy import integrate, stats

from mixlogit.jax import panel as jp
from mixlogit.torch import gamma_logit_marginal
from mixlogit.torch import panel as tp

DATA = Path(__file__).parent / "data" / "panel_reference.json"
REF = json.loads(DATA.read_text())
GROUPS = REF["groups"]
PROBS = tuple(REF["probs"])
TINY = mp.mpf(2.2250738585072014e-308)  # below this a float64 L is not representable


def panel_of(family):
    """The reference groups of ``family`` as one panel: d, group ids, per-group parameters."""
    chosen = [g for g in GROUPS if g["family"] == family]
    d = np.concatenate([g["d"] for g in chosen])
    group = np.repeat(np.arange(len(chosen)), [len(g["d"]) for g in chosen])
    direction = np.concatenate([g["direction"] for g in chosen])
    params = {k: np.array([g["params"][k] for g in chosen]) for k in chosen[0]["params"]}
    return chosen, d, group, direction, params


def rel_error(got, ref, floor=TINY):
    """``|got - ref| / max(|ref|, floor)`` per element, in mpmath (ref holds strings)."""
    return np.array(
        [
            float(abs(mp.mpf(float(g)) - mp.mpf(r)) / max(abs(mp.mpf(r)), floor))
            for g, r in zip(np.ravel(got), ref, strict=True)
        ]
    )


def torch_results(family):
    """Values, error estimates and gradients on the reference panel of ``family``."""
    chosen, d, group, direction, params = panel_of(family)
    d_t = torch.tensor(d, requires_grad=True)
    p_t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    value, error = tp.panel_logit_marginal(d_t, torch.tensor(group), family, p_t, return_error=True)
    value.sum().backward()
    grads = {k: v.grad.numpy() for k, v in p_t.items()}
    direction_grad = np.bincount(group, d_t.grad.numpy() * direction, minlength=len(chosen))
    return value.detach().numpy(), error.numpy(), grads, direction_grad


@functools.partial(jax.jit, static_argnames=("family", "num_groups"))
def _jax_panel(d, group, first, second, family, num_groups):
    """Values, error estimates and the gradients of sum(L) in one compiled function."""
    names = ("shape", "rate") if family == "gamma" else ("loc", "scale")

    def marginal(d, first, second):
        params = dict(zip(names, (first, second), strict=True))
        return jp.panel_logit_marginal(
            d, group, family, params, num_groups=num_groups, return_error=True
        )

    value, pullback, error = jax.vjp(marginal, d, first, second, has_aux=True)
    return value, error, pullback(jnp.ones_like(value))


def jax_results(family):
    """As :func:`torch_results`, with the JAX front end under ``jax.jit`` (static groups)."""
    chosen, d, group, direction, params = panel_of(family)
    names = list(params)
    args = [jnp.asarray(d), jnp.asarray(group), *(jnp.asarray(params[k]) for k in names)]
    value, error, grads = _jax_panel(*args, family=family, num_groups=len(chosen))
    direction_grad = np.bincount(group, np.asarray(grads[0]) * direction, minlength=len(chosen))
    param_grads = {names[i]: np.asarray(grads[i + 1]) for i in range(2)}
    return np.asarray(value), np.asarray(error), param_grads, direction_grad


RESULTS = {}


def results(backend, family):
    key = (backend, family)
    if key not in RESULTS:
        RESULTS[key] = (torch_results if backend == "torch" else jax_results)(family)
    return RESULTS[key]


def test_reference_spans_the_required_ranges():
    sizes = [len(g["d"]) for g in GROUPS]
    assert min(sizes) == 1 and max(sizes) == 256
    d = np.concatenate([g["d"] for g in GROUPS])
    assert np.abs(d).max() == 50.0 and (d > 0).any() and (d < 0).any() and (d == 0).any()
    gamma = [g["params"] for g in GROUPS if g["family"] == "gamma"]
    shapes = np.array([p["shape"] for p in gamma])
    means = shapes / np.array([p["rate"] for p in gamma])
    assert shapes.min() <= 0.1 and shapes.max() >= 100
    assert means.min() <= 0.01 * (1 + 1e-12) and means.max() >= 100 * (1 - 1e-12)
    scales = np.array([g["params"]["scale"] for g in GROUPS if g["family"] == "lognormal"])
    assert scales.min() <= 0.05 and scales.max() >= 3
    log_marginal = np.array([float(g["log_marginal"]) for g in GROUPS])
    assert log_marginal.min() < -2000 and log_marginal.max() > -1e-100  # both extremes
    assert {g["kind"] for g in GROUPS} >= {"near_zero", "deep_tail", "bimodal", "one_sided"}
    # The reference agrees with itself on refined pieces, and its derivative along d (a
    # posterior expectation) with central differences.
    assert REF["check_refined_log_marginal"] < 1e-15
    assert REF["check_finite_difference_direction"] < 1e-12


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("family", ["gamma", "lognormal"])
def test_values_and_gradients_match_mpmath(backend, family):
    chosen = [g for g in GROUPS if g["family"] == family]
    value, error, grads, direction_grad = results(backend, family)
    for x in (value, error, direction_grad, *grads.values()):
        assert np.all(np.isfinite(x))
    value_err = rel_error(value, [g["log_marginal"] for g in chosen])
    assert value_err.max() <= 1e-10, [chosen[i]["kind"] for i in np.argsort(value_err)[-3:]]
    # The error estimate (the rule on every other node) bounds the actual error, up to
    # rounding.
    actual = np.abs(value - np.array([float(g["log_marginal"]) for g in chosen]))
    assert np.all(actual <= np.maximum(error, 1e-12 * np.abs(value) + 1e-15))
    # Gradients: relative 1e-8, with a floor (rounding) for gradients that vanish, in units
    # of L per parameter, or per margin (dL/dd_i = E[beta sigmoid(-beta d_i)] <= E[beta]).
    size = 1.0 + np.abs(value)
    for name, grad in grads.items():
        ref = np.array([float(g["grad_params"][name]) for g in chosen])
        theta = np.array([abs(g["params"][name]) or 1.0 for g in chosen])
        assert np.all(np.abs(grad - ref) <= 1e-8 * np.abs(ref) + 1e-13 * size / theta), name
    ref = np.array([float(g["grad_direction"]) for g in chosen])
    mean = np.array([float(g["mean"]) for g in chosen])
    assert np.all(np.abs(direction_grad - ref) <= 1e-8 * np.abs(ref) + 1e-13 * size * mean)


@pytest.mark.parametrize("family", ["gamma", "lognormal"])
def test_torch_and_jax_agree(family):
    t_value, _, t_grads, t_dir = results("torch", family)
    j_value, _, j_grads, j_dir = results("jax", family)

    def close(a, b):
        # Relative 1e-12; the floor is rounding for derivatives that vanish (d = 0 groups).
        return np.all(np.abs(a - b) <= 1e-12 * np.abs(a) + 1e-15 * (1.0 + np.abs(t_value)))

    assert close(t_value, j_value) and close(t_dir, j_dir)
    for name in t_grads:
        assert close(t_grads[name], j_grads[name]), name


@pytest.mark.parametrize("family", ["gamma", "lognormal"])
def test_posterior_matches_mpmath(family):
    chosen, d, group, _, params = panel_of(family)
    post = tp.panel_strength_posterior(
        torch.tensor(d),
        torch.tensor(group),
        family,
        {k: torch.tensor(v) for k, v in params.items()},
        probs=PROBS,
    )
    assert post.quantiles.shape == (len(chosen), len(PROBS))
    assert rel_error(post.mean, [g["mean"] for g in chosen]).max() <= 1e-8
    assert rel_error(post.variance, [g["variance"] for g in chosen]).max() <= 1e-8
    quantiles = [q for g in chosen for q in g["quantiles"]]
    assert rel_error(post.quantiles, quantiles).max() <= 1e-7
    assert rel_error(post.log_marginal, [g["log_marginal"] for g in chosen]).max() <= 1e-10


def test_posterior_matches_direct_quadrature_and_jax():
    """Moments by scipy.integrate.quad over beta, and the JAX front end, on a small panel."""
    rng = np.random.default_rng(7)
    d = rng.choice([-1.0, 1.0], 12) * 10 ** rng.uniform(-1, 1, 12)
    group = np.repeat([0, 1, 2], 4)
    shape, rate = np.array([0.5, 3.0, 20.0]), np.array([1.0, 10.0, 4.0])
    post = tp.panel_strength_posterior(
        torch.tensor(d),
        torch.tensor(group),
        "gamma",
        {"shape": torch.tensor(shape), "rate": torch.tensor(rate)},
    )
    for g in range(3):
        dg = d[group == g]

        def density(beta, power, g=g, dg=dg):
            like = np.exp(-np.logaddexp(0.0, -beta * dg).sum())
            return beta**power * stats.gamma.pdf(beta, shape[g], scale=1 / rate[g]) * like

        moments = [
            integrate.quad(density, 0, np.inf, args=(m,), epsabs=0, epsrel=1e-13, limit=400)[0]
            for m in range(3)
        ]
        mean = moments[1] / moments[0]
        assert abs(post.mean[g].item() / mean - 1) <= 1e-8
        assert abs(post.variance[g].item() / (moments[2] / moments[0] - mean**2) - 1) <= 1e-8
        assert abs(post.log_marginal[g].item() - np.log(moments[0])) <= 1e-10
    jax_post = jp.panel_strength_posterior(
        jnp.asarray(d), jnp.asarray(group), "gamma", {"shape": shape, "rate": rate}
    )
    for t, j in zip(post, jax_post, strict=True):
        np.testing.assert_allclose(np.asarray(j), t.numpy(), rtol=1e-12, atol=0)


def test_a_group_of_one_is_the_single_choice_marginal():
    rng = np.random.default_rng(11)
    n = 300
    shape = 10 ** rng.uniform(-1, 2, n)
    rate = shape / 10 ** rng.uniform(-2, 2, n)
    d = rng.choice([-1.0, 1.0], n) * 10 ** rng.uniform(-3, np.log10(50), n)
    d[:6] = [0.0, 50.0, -50.0, 1e-9, -1e-9, 25.0]
    args = [torch.tensor(x) for x in (d, shape, rate)]
    single = gamma_logit_marginal(*args)
    panel = tp.gamma_panel_logit_marginal(args[0], torch.arange(n), args[1], args[2])
    assert (single.abs() > 0).all()  # relative precision right down to L = -1e-200
    assert torch.all((panel - single).abs() <= 1e-12 * single.abs())


def test_point_mass_is_a_sum_of_log_sigmoids():
    rng = np.random.default_rng(3)
    d = torch.tensor(rng.normal(0, 5, 50))
    group = torch.tensor(rng.integers(0, 6, 50))
    beta = torch.tensor(rng.uniform(0.05, 2.0, 6))
    value = tp.point_mass_panel_logit_marginal(d, group, beta)
    expected = torch.zeros(6, dtype=torch.float64).index_add(
        0, group, torch.nn.functional.logsigmoid(beta[group] * d)
    )
    assert torch.allclose(value, expected, rtol=1e-15, atol=0)
    fixed = tp.panel_logit_marginal(d, group, "fixed", {"beta": beta})
    assert torch.equal(fixed, value)
    post = tp.panel_strength_posterior(d, group, "point_mass", {"beta": 0.1}, num_groups=6)
    assert torch.all(post.mean == 0.1) and torch.all(post.variance == 0)
    assert torch.all(post.quantiles == 0.1) and torch.allclose(
        post.log_marginal, tp.point_mass_panel_logit_marginal(d, group, 0.1, num_groups=6)
    )


def test_empty_groups_get_zero_and_the_prior():
    d = torch.tensor([1.5, -0.5, 2.0], dtype=torch.float64)
    group = torch.tensor([1, 1, 3])
    shape = torch.tensor([2.0, 2.0, 0.3, 5.0], dtype=torch.float64, requires_grad=True)
    rate = torch.tensor(16.7, dtype=torch.float64, requires_grad=True)
    value, error = tp.gamma_panel_logit_marginal(
        d, group, shape, rate, num_groups=4, return_error=True
    )
    assert value[0] == 0 and value[2] == 0 and error[0] == 0 and error[2] == 0
    assert value[1] < 0 and value[3] < 0
    value.sum().backward()
    assert torch.isfinite(shape.grad).all() and shape.grad[0] == 0 and shape.grad[2] == 0
    post = tp.panel_strength_posterior(
        d, group, "gamma", {"shape": shape.detach(), "rate": 16.7}, num_groups=4
    )
    for g in (0, 2):
        k = shape[g].item()
        assert post.mean[g].item() == pytest.approx(k / 16.7, rel=1e-15)
        assert post.variance[g].item() == pytest.approx(k / 16.7**2, rel=1e-15)
        prior = stats.gamma.ppf(PROBS, k, scale=1 / 16.7)
        np.testing.assert_allclose(post.quantiles[g].numpy(), prior, rtol=1e-7)
    empty = tp.lognormal_panel_logit_marginal(d[:0], group[:0], -2.3, 0.6, num_groups=2)
    assert torch.equal(empty, torch.zeros(2, dtype=torch.float64))


def test_a_bimodal_posterior_is_resolved():
    """Tiny margins, mostly right: the strength is near the prior's (every choice a coin
    flip) or large (a second, narrow mode far in the prior's tail)."""
    d = np.concatenate([np.full(120, 0.003), np.full(40, -0.003)])
    u = np.linspace(-40.0, 40.0, 80_001)  # a fine trapezoid rule: exact for this integrand
    z = 0.003 * np.exp(u)
    h = stats.norm.logpdf(u, -2.3, 2.5) - 120 * np.logaddexp(0, -z) - 40 * np.logaddexp(0, z)
    inner = (h[1:-1] > h[:-2]) & (h[1:-1] >= h[2:])
    assert inner.sum() == 2  # two modes, at u ~ -2.2 and ~ 5.9
    reference = np.log(integrate.trapezoid(np.exp(h - h.max()), u)) + h.max()
    value, error = tp.lognormal_panel_logit_marginal(
        torch.tensor(d), torch.zeros(160, dtype=torch.long), -2.3, 2.5, return_error=True
    )
    assert abs(value.item() - reference) <= 1e-10 * abs(reference)
    assert error.item() >= abs(value.item() - reference)


def _narrow_reference(d: np.ndarray, log_density) -> float:
    """``log int exp(log p(u) + sum log sigmoid(e^u d)) du`` by a fine trapezoid rule on the
    prior's bulk (the prior is far narrower than the likelihood here)."""
    u = np.linspace(-0.5, 0.5, 200_001) + np.log(2.0)
    h = log_density(u) - np.sum(np.logaddexp(0, -np.exp(u)[:, None] * d[None, :]), axis=1)
    return float(np.log(integrate.trapezoid(np.exp(h - h.max()), u)) + h.max())


@pytest.mark.parametrize("family", ["gamma", "lognormal"])
def test_the_narrowest_validated_strength_is_accurate_and_a_narrower_one_refused(family):
    """At CV 0.0101 (just inside :data:`mixlogit._panel.MIN_STRENGTH_CV`) both backends match
    a fine quadrature; at CV 0.009 the rule used to return values off by up to nats (its own
    error estimate O(1)): it is refused with an error naming the group and its CV."""
    from scipy import special

    rng = np.random.default_rng(97)
    d = rng.normal(0.0, 2.0, 24)
    group = np.repeat(np.arange(3), 8)
    for cv, ok in ((0.0101, True), (0.009, False)):
        if family == "gamma":
            shape = 1 / cv**2
            params = {"shape": shape, "rate": shape / 2.0}  # mean 2

            def log_density(u, shape=shape):
                rate = shape / 2.0
                return shape * np.log(rate) - special.gammaln(shape) + shape * u - rate * np.exp(u)
        else:
            scale = float(np.sqrt(np.log1p(cv**2)))
            params = {"loc": np.log(2.0) - scale**2 / 2, "scale": scale}

            def log_density(u, loc=params["loc"], scale=scale):
                return stats.norm.logpdf(u, loc, scale)

        if not ok:
            with pytest.raises(ValueError, match=r"group 0 .* has CV 0\.009 < 0\.01"):
                tp.panel_logit_marginal(torch.tensor(d), torch.tensor(group), family, params)
            continue
        torch_value = tp.panel_logit_marginal(torch.tensor(d), torch.tensor(group), family, params)
        jax_value = jp.panel_logit_marginal(jnp.asarray(d), jnp.asarray(group), family, params)
        for g in range(3):
            reference = _narrow_reference(d[group == g], log_density)
            assert abs(float(torch_value[g]) - reference) <= 1e-10 * abs(reference)
            assert abs(float(jax_value[g]) - reference) <= 1e-10 * abs(reference)


def test_per_group_parameters_and_order():
    rng = np.random.default_rng(5)
    d = torch.tensor(rng.normal(0, 3, 40))
    group = torch.tensor(rng.integers(0, 5, 40))
    scalar = tp.lognormal_panel_logit_marginal(d, group, -1.0, 0.8)
    arrays = tp.lognormal_panel_logit_marginal(
        d,
        group,
        torch.full((5,), -1.0, dtype=torch.float64),
        torch.full((5,), 0.8, dtype=torch.float64),
    )
    assert torch.equal(scalar, arrays)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    shuffled = tp.lognormal_panel_logit_marginal(d[order], group[order], -1.0, 0.8)
    assert torch.allclose(shuffled, scalar, rtol=1e-13, atol=0)


def test_float32_is_close_to_float64():
    rng = np.random.default_rng(2)
    d = rng.normal(0, 3, 60)
    group = rng.integers(0, 4, 60)
    exact = tp.gamma_panel_logit_marginal(torch.tensor(d), torch.tensor(group), 2.0, 16.7)
    single = tp.gamma_panel_logit_marginal(
        torch.tensor(d, dtype=torch.float32), torch.tensor(group), 2.0, 16.7
    )
    assert single.dtype == torch.float32
    assert torch.allclose(single.double(), exact, rtol=1e-5, atol=0)


def _call(name):
    d = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    group = torch.tensor([0, 1, 1])
    calls = {
        "nan d": lambda: tp.gamma_panel_logit_marginal(
            d * torch.tensor([1, np.nan, 1]), group, 2.0, 16.7
        ),
        "2-D d": lambda: tp.gamma_panel_logit_marginal(d[None], group, 2.0, 16.7),
        "length": lambda: tp.gamma_panel_logit_marginal(d, group[:2], 2.0, 16.7),
        "float ids": lambda: tp.gamma_panel_logit_marginal(d, group.double(), 2.0, 16.7),
        "id range": lambda: tp.gamma_panel_logit_marginal(
            d, torch.tensor([0, 5, 1]), 2.0, 16.7, num_groups=2
        ),
        "negative id": lambda: tp.gamma_panel_logit_marginal(
            d, torch.tensor([0, -1, 1]), 2.0, 16.7
        ),
        "param shape": lambda: tp.gamma_panel_logit_marginal(d, group, torch.ones(3), 16.7),
        "rate sign": lambda: tp.gamma_panel_logit_marginal(
            d, group, 2.0, torch.tensor([1.0, -1.0])
        ),
        "scale zero": lambda: tp.lognormal_panel_logit_marginal(d, group, -2.3, 0.0),
        "family": lambda: tp.panel_logit_marginal(d, group, "weibull", {}),
        "params": lambda: tp.panel_logit_marginal(d, group, "gamma", {"shape": 2.0}),
        "probs": lambda: tp.panel_strength_posterior(
            d, group, "gamma", {"shape": 2.0, "rate": 1.0}, probs=(0.5, 1.0)
        ),
        "nodes": lambda: tp.gamma_panel_logit_marginal(d, group, 2.0, 16.7, num_nodes=2),
        "groups": lambda: tp.gamma_panel_logit_marginal(d, group, 2.0, 16.7, num_groups=-1),
        "jit ids": lambda: jax.jit(
            lambda g: jp.gamma_panel_logit_marginal(jnp.ones(3), g, 2.0, 16.7)
        )(jnp.array([0, 1, 1])),
    }
    return calls[name]


#: ``{call: the message it must raise}`` (a regular expression), a ``ValueError`` unless the
#: call is in :data:`_TYPE_ERRORS`.
_MESSAGES = {
    "nan d": r"d must be finite; d\[1\] = nan",
    "2-D d": r"d must be 1-D",
    "length": r"group must be 1-D with one id per choice",
    "float ids": r"group must hold integer ids, got dtype torch.float64",
    "id range": r"group ids must lie in \[0, num_groups=2\); group\[1\] = 5",
    "negative id": r"group\[1\] = -1",
    "param shape": r"gamma parameter shape must be a scalar or have shape \(num_groups,\) = "
    r"\(2,\), got shape \(3,\)",
    "rate sign": r"gamma parameter rate\[1\] must be positive and finite, got -1.0",
    "scale zero": r"lognormal parameter scale must be positive and finite, got 0.0",
    "family": r"'weibull'",
    "params": r"gamma strength takes parameters \['shape', 'rate'\], got \['shape'\]",
    "probs": r"probs must lie in \(0, 1\), got 1.0",
    "nodes": r"num_nodes must be an integer >= 3, got 2",
    "groups": r"num_groups must be an integer >= 0, got -1",
    "jit ids": r"num_groups must be given \(a static integer\) when group is traced",
}
_TYPE_ERRORS = {"float ids"}


@pytest.mark.parametrize("name", list(_MESSAGES))
def test_bad_inputs_raise_clear_errors(name):
    error = TypeError if name in _TYPE_ERRORS else ValueError
    with pytest.raises(error, match=_MESSAGES[name]):
        _call(name)()
