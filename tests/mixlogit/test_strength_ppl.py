"""The PPL protocol and the strength models written once against it: same sites in Pyro and
NumPyro, log densities equal to the marginals, and generic marginal-logit distributions."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pyro
import pytest
import torch
from numpyro import handlers

import mixlogit.jax as mj
import mixlogit.torch as mt
from mixlogit import _strength_models
from mixlogit.jax._ppl import PPL as NUMPYRO
from mixlogit.torch._ppl import PPL as PYRO

D = np.array([-4.0, -0.5, 0.0, 1.5, 9.0])
Y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
INIT = {"gamma": {"shape": 1.5, "rate": 8.0}, "lognormal": {"loc": -1.5, "scale": 0.8}}


def pyro_trace(model, *args, **kwargs):
    pyro.clear_param_store()
    return pyro.poutine.trace(model).get_trace(*args, **kwargs)


def numpyro_trace(model, *args, **kwargs):
    return handlers.trace(handlers.seed(model, jax.random.PRNGKey(0))).get_trace(*args, **kwargs)


def expected_log_likelihood(family, init):
    signed = np.where(Y > 0.5, D, -D)
    return float(mt.logit_marginal(family, torch.tensor(signed), init).sum())


@pytest.mark.parametrize("family", ["gamma", "lognormal"])
def test_marginal_model_scores_the_marginal_in_both_backends(family):
    init = INIT[family]
    expected = expected_log_likelihood(family, init)
    trace = pyro_trace(
        mt.marginal_strength_model, torch.tensor(D), torch.tensor(Y), family=family, init=init
    )
    trace.compute_log_prob()
    assert float(trace.nodes["y"]["log_prob_sum"].detach()) == pytest.approx(expected, rel=1e-12)
    with jax.enable_x64(True):
        jtrace = numpyro_trace(
            mj.marginal_strength_model, jnp.asarray(D), jnp.asarray(Y), family=family, init=init
        )
        site = jtrace["y"]
        got = float(site["fn"].log_prob(site["value"]).sum())
    assert got == pytest.approx(expected, rel=1e-12)
    params = {f"strength_{k}" for k in init}
    assert {n for n, s in trace.nodes.items() if s["type"] == "param"} == params
    assert {n for n, s in jtrace.items() if s["type"] == "param"} == params
    for name, value in init.items():
        assert float(trace.nodes[f"strength_{name}"]["value"]) == pytest.approx(value)
        assert float(jtrace[f"strength_{name}"]["value"]) == pytest.approx(value)


@pytest.mark.parametrize("guide", ["gamma_strength_guide", "lognormal_strength_guide"])
def test_guides_have_the_same_sites_and_start_at_the_population_moments(guide):
    init = INIT["lognormal"]
    trace = pyro_trace(getattr(mt, guide), torch.tensor(D), family="lognormal", init=init)
    jtrace = numpyro_trace(getattr(mj, guide), jnp.asarray(D), family="lognormal", init=init)
    names = {n for n, s in trace.nodes.items() if s["type"] == "param"}
    assert names == {n for n, s in jtrace.items() if s["type"] == "param"}
    local = {n.removeprefix("beta_"): float(trace.nodes[n]["value"][0]) for n in names}
    if guide == "gamma_strength_guide":
        mean, cv = local["shape"] / local["rate"], 1 / np.sqrt(local["shape"])
    else:
        mean = np.exp(local["loc"] + local["scale"] ** 2 / 2)
        cv = np.sqrt(np.expm1(local["scale"] ** 2))
    assert mean == pytest.approx(np.exp(init["loc"] + init["scale"] ** 2 / 2), rel=1e-6)
    assert cv == pytest.approx(np.sqrt(np.expm1(init["scale"] ** 2)), rel=1e-6)
    assert all(trace.nodes[n]["value"].shape == (D.size,) for n in names)


def test_latent_model_samples_one_strength_per_observation_from_the_population():
    trace = pyro_trace(mt.latent_strength_model, torch.tensor(D), torch.tensor(Y))
    beta = trace.nodes["beta"]
    assert beta["value"].shape == (D.size,)
    assert isinstance(
        beta["fn"].base_dist if hasattr(beta["fn"], "base_dist") else beta["fn"],
        pyro.distributions.Gamma,
    )
    jtrace = numpyro_trace(mj.latent_strength_model, jnp.asarray(D), jnp.asarray(Y))
    assert jtrace["beta"]["value"].shape == (D.size,)
    # y given beta is Bernoulli(sigmoid(beta d))
    logits = beta["value"] * torch.tensor(D, dtype=beta["value"].dtype)
    torch.testing.assert_close(trace.nodes["y"]["fn"].logits, logits)


def test_models_refuse_a_point_mass_and_unknown_families():
    with pytest.raises(ValueError, match=r"family must be one of \['gamma', 'lognormal'\]"):
        pyro_trace(mt.marginal_strength_model, torch.tensor(D), family="fixed")
    with pytest.raises(ValueError, match="family must be one of"):
        numpyro_trace(mj.latent_strength_model, jnp.asarray(D), family="weibull")


def test_bound_models_keep_name_doc_and_signature_without_the_ppl():
    for lib in (mt, mj):
        for name in ("marginal_strength_model", "gamma_strength_guide"):
            bound = getattr(lib, name)
            assert bound.__name__ == name
            assert bound.__doc__ == getattr(_strength_models, name).__doc__
            assert list(inspect.signature(bound).parameters)[:2] == ["d", "y"]


@pytest.mark.parametrize("ppl", [PYRO, NUMPYRO], ids=["pyro", "numpyro"])
def test_generic_marginal_bernoulli_of_a_point_mass_is_the_plain_logit(ppl):
    d = ppl.asarray(np.array([-3.0, 0.2, 5.0]))
    dist = ppl.MarginalLogitBernoulli("fixed", d, {"beta": ppl.asarray(0.7, like=d)})
    value = ppl.asarray(np.array([1.0, 0.0, 0.0]), like=d)
    expected = np.array(
        [-np.logaddexp(0, 3.0 * 0.7), -np.logaddexp(0, 0.2 * 0.7), -np.logaddexp(0, 5.0 * 0.7)]
    )
    np.testing.assert_allclose(np.asarray(dist.log_prob(value)), expected, rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(dist.probs), 1 / (1 + np.exp(-0.7 * np.asarray(d))), rtol=1e-6
    )
    with pytest.raises(ValueError, match="method must be 'quadrature'"):
        ppl.MarginalLogitBernoulli("lognormal", d, {"loc": 0.0, "scale": 1.0}, method="mc")
    with pytest.raises(ValueError, match=r"gamma strength takes parameters \['shape', 'rate'\]"):
        ppl.MarginalLogitBernoulli("gamma", d, {"shape": 1.0})
    with pytest.raises(ValueError, match="constraint must be"):
        ppl.constraint("simplex")


def test_named_distributions_are_the_family_classes():
    d = torch.tensor([1.0, -1.0])
    assert type(PYRO.MarginalLogitBernoulli("gamma", d, {"shape": 2.0, "rate": 3.0})) is (
        mt.GammaLogitBernoulli
    )
    lognormal = NUMPYRO.MarginalLogitBernoulli("lognormal", jnp.ones(2), {"loc": 0.0, "scale": 1.0})
    assert type(lognormal) is mj.LogNormalLogitBernoulli and lognormal.num_points == 16
    gamma = mt.GammaLogitBernoulli(d, 2.0, 3.0)
    assert gamma.concentration.tolist() == [2.0, 2.0]  # broadcast with d
    assert gamma.strength_params["shape"] is gamma.concentration
