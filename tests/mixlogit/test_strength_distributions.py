"""Pyro and NumPyro distributions with the exact strength marginal, and their models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import mixlogit.jax as mj
import mixlogit.torch as mt


@pytest.mark.parametrize("family", ["gamma", "lognormal"])
def test_log_prob_is_the_exact_marginal_for_both_outcomes(family):
    d = np.array([-3.0, -0.2, 0.0, 0.5, 7.0])
    y = np.array([1, 0, 1, 0, 1])
    if family == "gamma":
        pt = mt.GammaLogitBernoulli(torch.tensor(d), 2.0, 16.7)
        pj = mj.GammaLogitBernoulli(jnp.asarray(d), 2.0, 16.7)
        ref = lambda x: mt.gamma_logit_marginal(torch.tensor(x), 2.0, 16.7).numpy()  # noqa: E731
    else:
        pt = mt.LogNormalLogitBernoulli(torch.tensor(d), -2.3, 0.6)
        pj = mj.LogNormalLogitBernoulli(jnp.asarray(d), -2.3, 0.6)
        ref = lambda x: mt.lognormal_logit_marginal(torch.tensor(x), -2.3, 0.6).numpy()  # noqa: E731
    expected = np.where(y == 1, ref(d), ref(-d))
    np.testing.assert_allclose(
        pt.log_prob(torch.tensor(y, dtype=torch.float64)).numpy(), expected, rtol=1e-12
    )
    np.testing.assert_allclose(np.asarray(pj.log_prob(jnp.asarray(y))), expected, rtol=1e-12)
    # probabilities of the two outcomes sum to one
    both = (
        pt.log_prob(torch.ones(5, dtype=torch.float64)).exp()
        + pt.log_prob(torch.zeros(5, dtype=torch.float64)).exp()
    )
    np.testing.assert_allclose(both.numpy(), 1.0, rtol=1e-12)


def test_sampling_frequencies_match_the_marginal():
    d = torch.tensor([2.0, -4.0], dtype=torch.float64)
    dist = mt.GammaLogitBernoulli(d, 2.0, 3.0)
    torch.manual_seed(0)
    draws = dist.sample((40_000,))
    p = dist.probs.numpy()
    se = np.sqrt(p * (1 - p) / 40_000)
    assert np.all(np.abs(draws.mean(0).numpy() - p) < 4 * se)
    jd = mj.GammaLogitBernoulli(jnp.asarray(d.numpy()), 2.0, 3.0)
    jdraws = jd.sample(jax.random.PRNGKey(0), (40_000,))
    assert np.all(np.abs(np.asarray(jdraws.mean(0)) - p) < 4 * se)


def test_numpyro_marginal_model_runs_under_nuts_and_recovers_the_mean():
    """The distribution is usable as a NumPyro sample site (NUTS over pyro.param-free priors)."""
    import numpyro
    import numpyro.distributions as nd
    from numpyro.infer import MCMC, NUTS

    rng = np.random.default_rng(3)
    d = rng.normal(0, 30, 3000)
    beta = rng.gamma(2.0, 1 / 16.7, d.size)
    y = (rng.uniform(size=d.size) < 1 / (1 + np.exp(-beta * d))).astype(float)

    def model(d, y):
        shape = numpyro.sample("shape", nd.LogNormal(0.0, 1.0))
        mean = numpyro.sample("mean", nd.LogNormal(-2.0, 1.0))
        numpyro.sample("y", mj.GammaLogitBernoulli(d, shape, shape / mean), obs=y)

    with jax.enable_x64(True):
        mcmc = NUTS(model)
        run = MCMC(mcmc, num_warmup=300, num_samples=300, progress_bar=False)
        run.run(jax.random.PRNGKey(0), jnp.asarray(d), jnp.asarray(y))
    from mixlogit.jax import fit_strength_mle

    draws = run.get_samples()["mean"]
    mle = fit_strength_mle(d, y, "gamma")
    mle_mean = mle.params["shape"] / mle.params["rate"]
    # Weak priors and 3000 choices: the posterior sits on the likelihood's peak.
    assert abs(float(draws.mean()) - mle_mean) < 0.5 * float(draws.std())
    assert abs(float(draws.mean()) - 2.0 / 16.7) < 3 * float(draws.std())


def test_pyro_marginal_model_svi_with_empty_guide_is_maximum_likelihood():
    import pyro
    from pyro.infer import SVI, Trace_ELBO
    from pyro.optim import Adam

    from mixlogit.jax import fit_strength_mle

    rng = np.random.default_rng(4)
    d = rng.normal(0, 30, 4000)
    beta = rng.gamma(2.0, 1 / 16.7, d.size)
    y = (rng.uniform(size=d.size) < 1 / (1 + np.exp(-beta * d))).astype(float)
    mle = fit_strength_mle(d, y, "gamma")
    pyro.clear_param_store()
    svi = SVI(mt.marginal_strength_model, lambda *a, **k: None, Adam({"lr": 0.05}), Trace_ELBO())
    dt, yt = torch.tensor(d), torch.tensor(y)
    for _ in range(600):
        svi.step(dt, yt, family="gamma")
    assert float(pyro.param("strength_shape")) == pytest.approx(mle.params["shape"], rel=0.02)
    assert float(pyro.param("strength_rate")) == pytest.approx(mle.params["rate"], rel=0.02)


def test_models_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="y has shape"):
        mt.latent_strength_model(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="d must be a 1-d"):
        mj.latent_strength_model(jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="family must be one of"):
        mt.marginal_strength_model(torch.zeros(3), family="weibull")


@pytest.mark.parametrize("guide_name", ["gamma_strength_guide", "lognormal_strength_guide"])
def test_guides_pair_with_the_latent_model_in_both_backends_with_subsampling(guide_name):
    """A few SVI steps with subsampled plates: finite ELBO, local parameters of full length,
    started at the population's moments (mean 2/16.7, CV 1/sqrt 2)."""
    import pyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.optim import Adam
    from pyro.infer import SVI as PyroSVI
    from pyro.infer import Trace_ELBO as PyroELBO
    from pyro.optim import Adam as PyroAdam

    rng = np.random.default_rng(5)
    d = rng.normal(0, 30, 500)
    y = (rng.uniform(size=500) < 0.5).astype(float)
    svi = SVI(mj.latent_strength_model, getattr(mj, guide_name), Adam(0.01), Trace_ELBO())
    with jax.enable_x64(True):
        result = svi.run(
            jax.random.PRNGKey(0),
            5,
            jnp.asarray(d),
            jnp.asarray(y),
            subsample_size=100,
            progress_bar=False,
        )
    assert np.all(np.isfinite(result.losses))
    local = [k for k in result.params if k.startswith("beta_")]
    assert local and all(result.params[k].shape == (500,) for k in local)

    pyro.clear_param_store()
    psvi = PyroSVI(
        mt.latent_strength_model, getattr(mt, guide_name), PyroAdam({"lr": 0.01}), PyroELBO()
    )
    dt, yt = torch.tensor(d), torch.tensor(y)
    losses = [psvi.step(dt, yt, subsample_size=100) for _ in range(5)]
    assert np.all(np.isfinite(losses))
    names = {
        "gamma_strength_guide": ("beta_shape", "beta_rate"),
        "lognormal_strength_guide": ("beta_loc", "beta_scale"),
    }
    first, second = names[guide_name]
    assert pyro.param(first).shape == (500,)
    # moments at initialisation match the population's: check on an untouched entry
    pyro.clear_param_store()
    getattr(mt, guide_name)(dt, yt)
    a, b = float(pyro.param(first)[0]), float(pyro.param(second)[0])
    mean = a / b if guide_name == "gamma_strength_guide" else np.exp(a + b * b / 2)
    assert mean == pytest.approx(2.0 / 16.7, rel=1e-6)
