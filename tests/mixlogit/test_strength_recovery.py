"""Recovery of a known strength distribution from 20,000 simulated binary choices.

beta_i ~ Gamma(2, 16.7) (MixDPO's initialisation) or LogNormal(-2.3, 0.6) per observation,
margins d_i ~ N(0, 40^2), y_i ~ Bernoulli(sigmoid(beta_i d_i)).
"""

import numpy as np
import pytest

from mixlogit.jax import fit_strength_mle

N = 20_000


def simulate(family, seed):
    rng = np.random.default_rng(seed)
    d = rng.normal(0.0, 40.0, N)
    if family == "gamma":
        beta = rng.gamma(2.0, 1 / 16.7, N)
    else:
        beta = np.exp(rng.normal(-2.3, 0.6, N))
    y = (rng.uniform(size=N) < 1 / (1 + np.exp(-beta * d))).astype(float)
    return d, y


TRUTH = {"gamma": {"shape": 2.0, "rate": 16.7}, "lognormal": {"loc": -2.3, "scale": 0.6}}


@pytest.mark.parametrize("family", ["gamma", "lognormal"])
def test_exact_marginal_mle_recovers_the_truth_within_two_standard_errors(family):
    d, y = simulate(family, seed=1)
    fit = fit_strength_mle(d, y, family, init={"gamma": {"shape": 1.0, "rate": 5.0}, "lognormal": {"loc": -1.0, "scale": 1.0}}[family])
    assert fit.converged, fit.message
    for name, true in TRUTH[family].items():
        z = (fit.params[name] - true) / fit.std_errors[name]
        assert abs(z) < 2.0, (name, fit.params[name], fit.std_errors[name], z)
    # The standard errors are honest: they match the spread across replications.
    assert all(se > 0 and np.isfinite(se) for se in fit.std_errors.values())


@pytest.mark.slow
def test_standard_errors_match_replication_spread():
    estimates = []
    ses = []
    for seed in range(10, 22):
        d, y = simulate("gamma", seed)
        fit = fit_strength_mle(d, y, "gamma")
        estimates.append(fit.params["shape"])
        ses.append(fit.std_errors["shape"])
    ratio = np.std(estimates, ddof=1) / np.mean(ses)
    assert 0.6 < ratio < 1.6, ratio  # 12 replications: sd of the ratio is about 0.2


def test_mle_rejects_bad_input_with_the_row():
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        fit_strength_mle([0.1, np.nan, 0.3], [1, 0, 1])
    with pytest.raises(ValueError, match=r"y must be 0 or 1; rows \[2\] have \[2.0\]"):
        fit_strength_mle([0.1, 0.2, 0.3], [1, 0, 2])
    with pytest.raises(ValueError, match="family"):
        fit_strength_mle([0.1], [1], "weibull")


def test_numpyro_svi_on_the_latent_model_lands_near_the_mle():
    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.optim import Adam

    import mixlogit.jax as mj

    d, y = simulate("gamma", seed=1)
    mle = fit_strength_mle(d, y, "gamma")
    for guide in (mj.gamma_strength_guide, mj.lognormal_strength_guide):
        svi = SVI(mj.latent_strength_model, guide, Adam(0.02), Trace_ELBO(num_particles=4))
        with jax.enable_x64(True):
            result = svi.run(
                jax.random.PRNGKey(0), 3000, d, y, family="gamma", progress_bar=False
            )
        mean = result.params["strength_shape"] / result.params["strength_rate"]
        mle_mean = mle.params["shape"] / mle.params["rate"]
        assert float(mean) == pytest.approx(mle_mean, rel=0.1), guide.__name__
        assert float(result.params["strength_shape"]) == pytest.approx(mle.params["shape"], rel=0.35)
        assert np.isfinite(result.losses[-1]) and result.losses[-1] < result.losses[0]
    numpyro.enable_validation(False)


def test_pyro_svi_on_the_latent_model_lands_near_the_mle():
    import pyro
    import torch
    from pyro.infer import SVI, Trace_ELBO
    from pyro.optim import Adam

    import mixlogit.torch as mt

    d, y = simulate("gamma", seed=1)
    mle = fit_strength_mle(d, y, "gamma")
    dt, yt = torch.tensor(d), torch.tensor(y)
    for guide in (mt.gamma_strength_guide, mt.lognormal_strength_guide):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        svi = SVI(mt.latent_strength_model, guide, Adam({"lr": 0.02}), Trace_ELBO(num_particles=4, vectorize_particles=True))
        losses = [svi.step(dt, yt, family="gamma") for _ in range(1500)]
        shape = float(pyro.param("strength_shape"))
        rate = float(pyro.param("strength_rate"))
        assert shape / rate == pytest.approx(mle.params["shape"] / mle.params["rate"], rel=0.1)
        assert shape == pytest.approx(mle.params["shape"], rel=0.35)
        assert losses[-1] < losses[0]
