"""Bayesian backend building blocks against independent NumPy/SciPy references (fast)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import logsumexp, softmax

from mixlogit._choice_ops import choice_ops
from mixlogit.arrays import ChoiceArrays
from mixlogit.bayes import BayesPriors, panel_arrays
from mixlogit.bayes import model as bm
from mixlogit.bayes import numpyro_model as nm
from mixlogit.mixing import hierarchical_coefficients, hierarchical_moments
from mixlogit.quadrature import standard_normal_rule
from mixlogit.simulate import simulate_choice_arrays
from mixlogit.spec import CoefficientSpec, ModelSpec

OPS = choice_ops("jax")


def _batch(panel):
    return nm.BACKEND.batch(panel)


def _small_arrays(seed=0, P=7, T=3, J=3, K=2, unbalanced=True):
    rng = np.random.default_rng(seed)
    arr = simulate_choice_arrays(
        rng.normal(size=(P, K)),
        T,
        J,
        tuple(f"x{k}" for k in range(K)),
        seed=seed,
        unavailable_fraction=0.3,
    )
    if unbalanced:  # drop some situations so people have 1..T of them
        keep = np.ones(len(arr.chosen), bool)
        keep[[1, 2, 7]] = False
        arr = arr._replace(
            X=arr.X[keep],
            chosen=arr.chosen[keep],
            available=arr.available[keep],
            panel=arr.panel[keep],
            weights=rng.uniform(0.5, 2.0, keep.sum()),
        )
    return arr


def test_spec_validation_names_the_problem():
    with pytest.raises(ValueError, match=r"'price'.*unknown mixing distribution 'logn'"):
        ModelSpec.build(random={"price": "logn"})
    with pytest.raises(ValueError, match="correlated coefficient 'b' has distribution 'gamma'"):
        ModelSpec.build(random={"a": "normal", "b": "gamma"}, correlated=["a", "b"])
    with pytest.raises(ValueError, match="duplicate"):
        ModelSpec((CoefficientSpec("a"), CoefficientSpec("a")))
    with pytest.raises(ValueError, match="sign must be"):
        ModelSpec.build(random={"a": ("lognormal", 2)})
    with pytest.raises(ValueError, match="fixed_scale"):
        BayesPriors(fixed_scale=-1.0)
    with pytest.raises(ValueError, match="unknown coefficients"):
        BayesPriors(location={"zz": 1.0}).location_scale(ModelSpec.build(fixed=["a"]), "fixed")


def test_panel_arrays_regroup_every_situation():
    arr = _small_arrays()
    panel = panel_arrays(arr)
    P, _T, _J, _K = panel.X.shape
    assert P == arr.num_panels and panel.num_situations == len(arr.chosen)
    idx = panel.situation_index
    real = idx >= 0
    np.testing.assert_array_equal(np.sort(idx[real]), np.arange(len(arr.chosen)))
    np.testing.assert_array_equal(panel.X[real], arr.X[idx[real]])
    np.testing.assert_array_equal(panel.chosen[real], arr.chosen[idx[real]])
    assert np.all(panel.weights[~real] == 0)
    # every real situation sits in its own person's row
    rows = np.nonzero(real)[0]
    np.testing.assert_array_equal(arr.panel[idx[real]], rows)


def test_panel_arrays_reject_bad_input():
    arr = _small_arrays(unbalanced=False)
    X = arr.X.copy()
    X[4, 1, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite value in variable 'x0' \\(situation 4"):
        panel_arrays(arr._replace(X=X))
    avail = arr.available.copy()
    avail[5, arr.chosen[5]] = False
    with pytest.raises(ValueError, match="chosen alternative unavailable in situation 5"):
        panel_arrays(arr._replace(available=avail))


def test_person_loglik_matches_numpy_and_padding_is_neutral():
    arr = _small_arrays()
    panel = panel_arrays(arr)
    rng = np.random.default_rng(3)
    beta = rng.normal(size=(arr.num_panels, 2))
    with jax.enable_x64(True):
        got = np.asarray(bm.person_loglik(OPS, _batch(panel), jax.numpy.asarray(beta)))
    V = np.einsum("sjk,sk->sj", arr.X, beta[arr.panel])
    V[~arr.available] = -np.inf
    lp = np.log(softmax(V, axis=1)[np.arange(len(V)), arr.chosen])
    want = np.bincount(arr.panel, weights=arr.weights * lp, minlength=arr.num_panels)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "jax", "torch"])
def test_coefficient_transforms_match_scipy_quantiles(backend):
    """The hierarchical transforms, written once over ``ops``, in every backend."""
    spec = ModelSpec.build(
        fixed=["f"],
        random={
            "n": "normal",
            "ln": ("lognormal", -1),
            "u": "uniform",
            "t": "triangular",
            "tn": ("truncnormal", -1),
            "g": ("gamma", -1),
        },
    )
    p = np.array([0.01, 0.2, 0.5, 0.77, 0.99])
    z = stats.norm.ppf(p)
    mu = np.array([0.3, -0.2, 1.0, -0.5, 0.4, 0.7])
    sigma = np.array([0.8, 0.6, 2.0, 1.5, 1.3])
    log_shape = np.array([0.4])
    u = np.array([0.3, 1.0, 2.0, 0.5, 4.0])
    params = {"beta_fixed": np.array([1.5]), "mu": mu, "sigma": sigma, "log_shape": log_shape}
    zz, uu = np.repeat(z[:, None], 5, 1), u[:, None]
    if backend == "torch":
        import torch

        convert = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    else:
        convert = jax.numpy.asarray if backend == "jax" else np.asarray
    with jax.enable_x64(True):
        params = {k: convert(v) for k, v in params.items()}
        got = hierarchical_coefficients(choice_ops(backend), spec, params, convert(zz), convert(uu))
        got = np.asarray(got)
    np.testing.assert_allclose(got[:, 0], 1.5)
    np.testing.assert_allclose(got[:, 1], stats.norm(0.3, 0.8).ppf(p), rtol=1e-12)
    np.testing.assert_allclose(
        got[:, 2], -stats.lognorm(0.6, scale=np.exp(-0.2)).ppf(p), rtol=1e-12
    )
    np.testing.assert_allclose(got[:, 3], stats.uniform(1.0 - 2.0, 4.0).ppf(p), rtol=1e-12)
    np.testing.assert_allclose(got[:, 4], stats.triang(0.5, -0.5 - 1.5, 3.0).ppf(p), rtol=1e-10)
    tn = stats.truncnorm((0 - 0.4) / 1.3, np.inf, loc=0.4, scale=1.3)
    np.testing.assert_allclose(got[:, 5], -tn.ppf(p), rtol=1e-9)
    # gamma: mean * u / shape with mean = exp(0.7)
    np.testing.assert_allclose(got[:, 6], -np.exp(0.7) * u / np.exp(0.4), rtol=1e-12)


def test_population_moments_match_scipy():
    spec = ModelSpec.build(
        random={"ln": ("lognormal", -1), "tn": "truncnormal", "g": "gamma", "t": "triangular"}
    )
    samples = {
        "mu": np.array([0.2, -0.3, 0.5, 1.0]),
        "sigma": np.array([0.7, 0.9, 0.4]),
        "log_shape": np.array([1.1]),
    }
    m = hierarchical_moments(spec, samples)
    ln = stats.lognorm(0.7, scale=np.exp(0.2))
    tn = stats.truncnorm(0.3 / 0.9, np.inf, loc=-0.3, scale=0.9)
    g = stats.gamma(np.exp(1.1), scale=np.exp(0.5) / np.exp(1.1))
    tri = stats.triang(0.5, 1.0 - 0.4, 0.8)
    np.testing.assert_allclose(m["mean"], [-ln.mean(), tn.mean(), g.mean(), tri.mean()], rtol=1e-10)
    np.testing.assert_allclose(m["sd"], [ln.std(), tn.std(), g.std(), tri.std()], rtol=1e-10)


def test_quadrature_loglik_matches_adaptive_integration():
    arr = _small_arrays(P=4, T=3, K=2, unbalanced=False)
    panel = panel_arrays(arr)
    spec = ModelSpec.build(fixed=["x0"], random={"x1": ("lognormal", -1)})
    nodes, logw = standard_normal_rule(120, 1)
    with jax.enable_x64(True):
        params = {
            "beta_fixed": jax.numpy.asarray([0.7]),
            "mu": jax.numpy.asarray([0.1]),
            "sigma": jax.numpy.asarray([0.8]),
        }
        got, _ = bm.quadrature_person_loglik(
            OPS, spec, params, _batch(panel), jax.numpy.asarray(nodes), jax.numpy.asarray(logw)
        )
        got = np.asarray(got)

    def person_lik(n, b):
        rows = np.flatnonzero(arr.panel == n)
        V = arr.X[rows] @ np.array([0.7, b])
        V[~arr.available[rows]] = -np.inf
        return np.prod(softmax(V, 1)[np.arange(len(rows)), arr.chosen[rows]])

    for n in range(4):
        value, _ = integrate.quad(
            lambda zz, n=n: person_lik(n, -np.exp(0.1 + 0.8 * zz)) * stats.norm.pdf(zz),
            -12,
            12,
            epsabs=1e-13,
            epsrel=1e-12,
        )
        np.testing.assert_allclose(got[n], np.log(value), rtol=0, atol=1e-9)


def test_latent_class_loglik_is_the_exact_mixture():
    arr = _small_arrays(P=5, T=4, K=2, unbalanced=False)
    panel = panel_arrays(arr)
    beta_class = np.array([[-1.0, 0.5], [2.0, -0.3], [0.1, 0.1]])
    share = np.array([0.2, 0.5, 0.3])
    with jax.enable_x64(True):
        params = {
            "beta_class": jax.numpy.asarray(beta_class),
            "class_share": jax.numpy.asarray(share),
        }
        got, _joint = bm.latent_class_person_loglik(OPS, params, _batch(panel))
        got = np.asarray(got)
    want = []
    for n in range(5):
        rows = np.flatnonzero(arr.panel == n)
        per_class = []
        for c in range(3):
            V = arr.X[rows] @ beta_class[c]
            V[~arr.available[rows]] = -np.inf
            per_class.append(np.log(softmax(V, 1)[np.arange(len(rows)), arr.chosen[rows]]).sum())
        want.append(logsumexp(np.log(share) + np.array(per_class)))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_gauss_hermite_rule_integrates_normal_moments():
    nodes, logw = standard_normal_rule(10, 2)
    w = np.exp(logw)
    assert nodes.shape == (100, 2)
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-14)
    np.testing.assert_allclose(w @ nodes[:, 0] ** 4, 3.0, rtol=1e-12)
    np.testing.assert_allclose(w @ (nodes[:, 0] ** 2 * nodes[:, 1] ** 2), 1.0, rtol=1e-12)


def test_choice_arrays_column_selection_errors():
    from mixlogit.bayes.panel import choice_arrays_from_data

    arr = _small_arrays(unbalanced=False)
    sub = choice_arrays_from_data(arr, ["x1"])
    np.testing.assert_array_equal(sub.X[..., 0], arr.X[..., 1])
    with pytest.raises(ValueError, match=r"variables \['price'\] are not columns"):
        choice_arrays_from_data(arr, ["price"])
    with pytest.raises(TypeError, match="ChoiceData"):
        choice_arrays_from_data({"X": 1}, ["x0"])
    assert isinstance(sub, ChoiceArrays)


@pytest.mark.parametrize("shape", [0.3, 1.0, 7.5, 60.0])
def test_standardised_log_gamma_is_the_gamma_law_standardised(shape):
    import jax.numpy as jnp
    import torch
    from scipy.special import digamma, polygamma

    from mixlogit.bayes import pyro_model as pm

    w = np.linspace(-40.0, 10.0, 50001)
    m, s = digamma(shape), np.sqrt(polygamma(1, shape))
    log_u = m + s * w
    # change of variables from scipy's Gamma(shape) density: du/dw = u * s
    want = stats.gamma(shape).logpdf(np.exp(log_u)) + log_u + np.log(s)
    with jax.enable_x64(True):
        got_jax = np.asarray(nm.StandardisedLogGamma(shape).log_prob(jnp.asarray(w)))
        u_jax = np.asarray(bm.gamma_from_standardised(OPS, jnp.log(shape), jnp.asarray(w)))
    got_torch = pm.StandardisedLogGamma(torch.tensor(shape, dtype=torch.float64)).log_prob(
        torch.as_tensor(w)
    )
    finite = want > -600
    np.testing.assert_allclose(got_jax[finite], want[finite], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(got_torch.numpy()[finite], want[finite], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(u_jax, np.exp(log_u), rtol=1e-12)
    # standardised: unit mass, mean 0, variance 1 whatever the shape
    density = np.exp(want)
    assert integrate.trapezoid(density, w) == pytest.approx(1.0, abs=1e-6)
    assert integrate.trapezoid(w * density, w) == pytest.approx(0.0, abs=1e-5)
    assert integrate.trapezoid(w**2 * density, w) == pytest.approx(1.0, abs=1e-5)
    # draws mapped back through gamma_from_standardised follow Gamma(shape, 1)
    with jax.enable_x64(True):
        draws = nm.StandardisedLogGamma(shape).sample(jax.random.PRNGKey(0), (4000,))
        u = np.asarray(bm.gamma_from_standardised(OPS, jnp.log(shape), draws))
    assert stats.kstest(u, stats.gamma(shape).cdf).pvalue > 1e-3
    torch.manual_seed(0)
    u_t = bm.gamma_from_standardised(
        pm.OPS,
        torch.log(torch.tensor(shape, dtype=torch.float64)),
        pm.StandardisedLogGamma(torch.tensor(shape, dtype=torch.float64)).sample((4000,)),
    )
    assert stats.kstest(u_t.numpy(), stats.gamma(shape).cdf).pvalue > 1e-3


def test_simulated_model_loglik_is_the_simulated_marginal():
    """The SVI marginal model's per-person term is log mean_r L_n(beta(z_r)) (NumPy reference)."""
    from functools import partial

    from numpyro import handlers

    spec = ModelSpec.build(fixed=["x0"], random={"x1": "normal"})
    panel = panel_arrays(_small_arrays(seed=4))
    z_draws = np.random.default_rng(1).normal(size=(64, 1))
    params = {"beta_fixed": np.array([0.4]), "mu": np.array([-0.3]), "sigma": np.array([1.2])}
    with jax.enable_x64(True):
        model = partial(
            nm.simulated_model,
            num_panels=panel.num_panels,
            spec=spec,
            priors=BayesPriors(),
            z_draws=z_draws,
        )
        trace = handlers.trace(handlers.condition(model, params)).get_trace(_batch(panel))
        got = np.asarray(trace["loglik"]["fn"].log_factor)
    beta = np.stack([np.full(64, 0.4), -0.3 + 1.2 * z_draws[:, 0]], -1)  # (R, K)
    V = np.einsum("ptjk,rk->ptrj", panel.X, beta)
    V = np.where(panel.available[:, :, None, :], V, -np.inf)
    logp = V - logsumexp(V, axis=-1, keepdims=True)
    chosen = np.take_along_axis(logp, panel.chosen[:, :, None, None], axis=-1)[..., 0]
    ll_r = np.einsum("pt,ptr->pr", panel.weights, np.where(panel.weights[..., None] > 0, chosen, 0))
    want = logsumexp(ll_r, axis=-1) - np.log(64)
    np.testing.assert_allclose(got, want, rtol=1e-10)
