"""fit_strength_mle: the torch and JAX versions agree, and the estimate is a stationary point
of an independently coded log-likelihood whose finite-difference Hessian gives the covariance."""

import numpy as np
import pytest
from scipy import special

import mixlogit.jax as mj
import mixlogit.torch as mt

N = 3000


def simulate(family, seed):
    rng = np.random.default_rng(seed)
    d = rng.normal(0.0, 30.0, N)
    beta = rng.gamma(2.0, 1 / 16.7, N) if family == "gamma" else np.exp(rng.normal(-2.3, 0.6, N))
    y = (rng.uniform(size=N) < special.expit(beta * d)).astype(float)
    weights = rng.uniform(0.5, 1.5, N)
    return d, y, weights


def gamma_log_likelihood(shape, rate, d, y, w):
    """sum_i w_i log P(y_i | d_i) by Gauss-Laguerre quadrature in beta (independent of the
    Lerch series): E[sigmoid(beta s)] with beta ~ Gamma(shape, rate), s = +-d."""
    x, wl = special.roots_genlaguerre(200, shape - 1.0)
    beta = x / rate
    s = np.where(y > 0.5, d, -d)
    p = special.expit(s[:, None] * beta[None, :]) @ wl / special.gamma(shape)
    return float(np.sum(w * np.log(p)))


@pytest.mark.parametrize("family", ["gamma", "lognormal"])
def test_torch_and_jax_estimates_agree_to_1e_8(family):
    d, y, w = simulate(family, seed=7)
    fit_t = mt.fit_strength_mle(d, y, family, weights=w)
    fit_j = mj.fit_strength_mle(d, y, family, weights=w)
    assert fit_t.converged and fit_j.converged, (fit_t.message, fit_j.message)
    assert fit_t.family == fit_j.family == family
    assert list(fit_t.params) == list(fit_j.params)
    for name in fit_t.params:
        assert fit_t.params[name] == pytest.approx(fit_j.params[name], rel=1e-8)
        assert fit_t.std_errors[name] == pytest.approx(fit_j.std_errors[name], rel=1e-6)
    assert fit_t.log_likelihood == pytest.approx(fit_j.log_likelihood, rel=1e-12)
    np.testing.assert_allclose(fit_t.covariance, fit_j.covariance, rtol=1e-6)
    assert isinstance(fit_t, mj.StrengthMLE) and mt.StrengthMLE is mj.StrengthMLE


def test_gamma_estimate_is_stationary_and_covariance_is_the_inverse_hessian():
    d, y, w = simulate("gamma", seed=8)
    fit = mt.fit_strength_mle(d, y, "gamma", weights=w)
    x = np.array([fit.params["shape"], fit.params["rate"]])
    assert fit.log_likelihood == pytest.approx(gamma_log_likelihood(*x, d, y, w), rel=1e-9)
    h = 1e-4 * x
    hessian = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h[i], np.eye(2)[j] * h[j]
            f = lambda v: -gamma_log_likelihood(*v, d, y, w)  # noqa: E731
            hessian[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                4 * h[i] * h[j]
            )
        grad = (
            gamma_log_likelihood(*(x + np.eye(2)[i] * h[i]), d, y, w)
            - gamma_log_likelihood(*(x - np.eye(2)[i] * h[i]), d, y, w)
        ) / (2 * h[i])
        # the score at the MLE vanishes relative to its scale (sum of weights)
        assert abs(grad * x[i]) < 1e-5 * w.sum()
    np.testing.assert_allclose(fit.covariance, np.linalg.inv(hessian), rtol=1e-3)


@pytest.mark.parametrize("lib", [mt, mj])
def test_bad_input_is_named(lib):
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        lib.fit_strength_mle([0.1, np.nan, 0.3], [1, 0, 1])
    with pytest.raises(ValueError, match=r"family must be one of \['gamma', 'lognormal'\]"):
        lib.fit_strength_mle([0.1], [1], "fixed")
    with pytest.raises(ValueError, match="weights must be"):
        lib.fit_strength_mle([0.1, 0.2], [1, 0], weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="gamma parameter rate must be a positive"):
        lib.fit_strength_mle([0.1, 0.2], [1, 0], init={"rate": 0.0})
