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
    d, y = simulate(family, seed=2)
    start = {"gamma": {"shape": 1.0, "rate": 5.0}, "lognormal": {"loc": -1.0, "scale": 1.0}}
    fit = fit_strength_mle(d, y, family, init=start[family])
    assert fit.converged, fit.message
    for name, true in TRUTH[family].items():
        z = (fit.params[name] - true) / fit.std_errors[name]
        assert abs(z) < 2.0, (name, fit.params[name], fit.std_errors[name], z)
    # The standard errors are honest: they match the spread across replications.
    assert all(se > 0 and np.isfinite(se) for se in fit.std_errors.values())


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


# SVI on the un-marginalised model: one latent beta per observation with a mean-field Gamma or
# LogNormal guide; population parameters are pyro.param / numpyro.param sites (type-II ML). The
# first 4,000 choices keep the runs short. Mean-field guides are narrower than the exact
# posteriors, so SVI recovers the mean strength closely but overstates the shape (understates
# the heterogeneity): the tolerances say so. The Gamma guide converges far more slowly: after
# 800-1000 Adam steps it stood at mean 0.140 (Pyro) and 0.145 (NumPyro) against the MLE's 0.109
# on these data, so it is exercised in tests/mixlogit/test_strength_distributions.py but its
# population estimate is not asserted here.
N_SVI = 4000


def svi_reference():
    d, y = simulate("gamma", seed=2)
    d, y = d[:N_SVI], y[:N_SVI]
    mle = fit_strength_mle(d, y, "gamma")
    return d, y, mle


def check_population(shape, rate, mle):
    mle_mean = mle.params["shape"] / mle.params["rate"]
    assert shape / rate == pytest.approx(mle_mean, rel=0.12)
    assert shape == pytest.approx(mle.params["shape"], rel=0.5)


@pytest.mark.parametrize("guide_name,steps", [("lognormal_strength_guide", 2000)])
def test_numpyro_svi_on_the_latent_model_lands_near_the_mle(guide_name, steps):
    import jax
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.optim import Adam

    import mixlogit.jax as mj

    d, y, mle = svi_reference()
    svi = SVI(mj.latent_strength_model, getattr(mj, guide_name), Adam(0.05), Trace_ELBO())
    with jax.enable_x64(True):
        result = svi.run(jax.random.PRNGKey(0), steps, d, y, family="gamma", progress_bar=False)
    check_population(
        float(result.params["strength_shape"]), float(result.params["strength_rate"]), mle
    )
    assert np.isfinite(result.losses[-1]) and result.losses[-1] < result.losses[0]


@pytest.mark.parametrize("guide_name", ["lognormal_strength_guide"])
def test_pyro_svi_on_the_latent_model_lands_near_the_mle(guide_name):
    import pyro
    import torch
    from pyro.infer import SVI, Trace_ELBO
    from pyro.optim import Adam

    import mixlogit.torch as mt

    d, y, mle = svi_reference()
    dt, yt = torch.tensor(d), torch.tensor(y)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    svi = SVI(mt.latent_strength_model, getattr(mt, guide_name), Adam({"lr": 0.05}), Trace_ELBO())
    losses = [svi.step(dt, yt, family="gamma") for _ in range(800)]
    check_population(
        float(pyro.param("strength_shape").detach()),
        float(pyro.param("strength_rate").detach()),
        mle,
    )
    assert np.mean(losses[-50:]) < np.mean(losses[:50])
