"""Covariate-conditioned strength (``mixlogit.conditional`` and its torch / JAX front ends).

References are independent of the code under test: standardisation and one-hot columns are
recomputed with pandas, moments come from ``scipy.stats`` distributions, log priors from
``scipy.stats`` densities, the partially pooled MAP from ``scipy.optimize`` on an objective
written here with ``scipy.stats`` log densities, and the PPL sites from Pyro's and NumPyro's
own log densities. Data are simulated here with their own seeds and group structures.
"""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate, optimize, stats

from mixlogit import conditional as cond
from mixlogit.conditional import EncodedCovariates, StrengthDesign
from mixlogit.jax.conditional import ConditionalStrength as JaxConditionalStrength
from mixlogit.torch import gamma_logit_marginal, lognormal_logit_marginal
from mixlogit.torch.conditional import ConditionalStrength

RAW = pd.DataFrame(
    {
        "subgroup": ["north", "south", "east", "north", "east", "south", "west"],
        "experience": [1.0, 4.0, 2.5, 7.0, 3.0, 0.5, 6.0],
        "age_band": ["18-29", "30-44", "45+", "30-44", "18-29", "45+", "30-44"],
        "shift": [0, 1, 1, 0, 0, 1, 0],
    }
)


def _design() -> StrengthDesign:
    return StrengthDesign.fit(
        RAW, levels=["subgroup"], numeric=["experience"], categorical=["age_band"]
    )


def _random_params(strength, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = cond.parameter_shapes(strength.spec)
    return {name: rng.normal(scale=0.4, size=shape) for name, shape in shapes.items()}


def _set_torch(strength: ConditionalStrength, values: dict[str, np.ndarray]) -> None:
    with torch.no_grad():
        for name, value in values.items():
            getattr(strength, name).copy_(torch.as_tensor(value))


# the references (scipy quadrature, scipy.stats) are float64 (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("torch_float64")


# ----------------------------------------------------------------------------- design
def test_design_standardises_numeric_and_one_hot_encodes_against_the_baseline():
    design = _design()
    encoded = design.encode(RAW)
    x = RAW["experience"]
    expected_numeric = (x - x.mean()) / x.std(ddof=0)
    np.testing.assert_allclose(encoded.features[:, 0], expected_numeric, rtol=1e-15)
    dummies = pd.get_dummies(RAW["age_band"], dtype=float)
    assert design.feature_names == ("experience", "age_band=30-44", "age_band=45+")
    np.testing.assert_array_equal(encoded.features[:, 1:], dummies[["30-44", "45+"]].to_numpy())
    levels = sorted(RAW["subgroup"].unique())
    assert design.level_keys == tuple(levels)
    np.testing.assert_array_equal(
        encoded.level_index[:, 0], [levels.index(v) for v in RAW["subgroup"]]
    )
    # new raters are standardised with the training statistics, not their own
    new = design.encode({"subgroup": ["west"], "experience": [10.0], "age_band": ["45+"]})
    assert new.features[0, 0] == pytest.approx((10.0 - x.mean()) / x.std(ddof=0))
    np.testing.assert_array_equal(new.features[0, 1:], [0.0, 1.0])


def test_design_from_a_datasets_dataset_and_a_dict_agree():
    from datasets import Dataset

    design = _design()
    a = design.encode(Dataset.from_pandas(RAW))
    b = design.encode({k: RAW[k].tolist() for k in RAW})
    np.testing.assert_array_equal(a.level_index, b.level_index)
    np.testing.assert_array_equal(a.features, b.features)


def test_infer_takes_numbers_as_regressors_and_strings_as_pooled_levels():
    design = StrengthDesign.infer(RAW, ["subgroup", "experience", "shift"])
    assert design.levels == ("subgroup",)
    assert design.numeric == ("experience", "shift")


def test_two_pooled_columns_get_column_qualified_level_keys():
    design = StrengthDesign.fit(RAW, levels=["subgroup", "age_band"])
    assert design.level_keys[0] == "subgroup=east"
    assert len(design.level_keys) == design.num_levels == 4 + 3
    encoded = design.encode(RAW)
    assert encoded.level_index.shape == (len(RAW), 2)
    assert encoded.level_index[:, 1].min() >= 4  # second column's levels follow the first's


def test_design_round_trips_through_json():
    design = _design()
    again = StrengthDesign.from_dict(json.loads(json.dumps(design.to_dict())))
    assert again == design


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            {"subgroup": ["mars"], "experience": [1.0], "age_band": ["45+"]},
            "'subgroup' row 0: level 'mars'",
        ),
        (
            {"subgroup": ["west"], "experience": [1.0], "age_band": ["90+"]},
            "'age_band' row 0: level '90+'",
        ),
        ({"subgroup": ["west"], "age_band": ["45+"]}, "column 'experience' is missing"),
        ({"subgroup": ["west"], "experience": ["lots"], "age_band": ["45+"]}, "'experience' row 0"),
        ({"subgroup": ["west"], "experience": [float("nan")], "age_band": ["45+"]}, "finite"),
        (
            {"subgroup": [None], "experience": [1.0], "age_band": ["45+"]},
            "'subgroup' row 0: missing",
        ),
    ],
)
def test_encoding_errors_name_the_column_row_and_value(rows, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _design().encode(rows)


def test_fit_rejects_a_constant_numeric_column_and_double_roles():
    with pytest.raises(ValueError, match="'shift' is constant"):
        StrengthDesign.fit({"shift": [1, 1, 1]}, numeric=["shift"])
    with pytest.raises(ValueError, match="more than one role"):
        StrengthDesign.fit(RAW, levels=["subgroup"], categorical=["subgroup"])


def test_group_covariates_takes_one_row_per_group_and_checks_constancy():
    data = {"annotator": [2, 0, 2, 1, 0], "subgroup": ["b", "a", "b", "c", "a"]}
    rows = cond.group_covariates(data, data["annotator"], ["subgroup"])
    assert rows == {"subgroup": ["a", "c", "b"]}
    data["subgroup"][2] = "a"
    with pytest.raises(ValueError, match="'subgroup' changes within group 2"):
        cond.group_covariates(data, data["annotator"], ["subgroup"])
    with pytest.raises(ValueError, match=r"group\(s\) \[3\] have no rows"):
        cond.group_covariates(data, data["annotator"], ["subgroup"], num_groups=4)


# ----------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("family", ["gamma", "lognormal"])
def test_per_row_parameters_have_the_predicted_mean_and_cv(family):
    design = _design()
    strength = ConditionalStrength(family, design, regress_cv=True)
    values = _random_params(strength, seed=11)
    _set_torch(strength, values)
    natural = {k: v.detach().numpy() for k, v in strength.group_params(RAW).items()}
    # predictors recomputed here from the documented formula
    encoded = design.encode(RAW)
    level = encoded.level_index[:, 0]
    tau_m, tau_c = np.exp(values["log_tau_mean"][0]), np.exp(values["log_tau_cv"][0])
    log_mean = (
        values["log_mean"]
        + tau_m * values["log_mean_level_z"][level]
        + encoded.features @ values["log_mean_coef"]
    )
    log_cv = (
        values["log_cv"]
        + tau_c * values["log_cv_level_z"][level]
        + encoded.features @ values["log_cv_coef"]
    )
    for i in range(len(RAW)):
        params = {k: float(v[i]) for k, v in natural.items()}
        dist = (
            stats.gamma(a=params["shape"], scale=1 / params["rate"])
            if family == "gamma"
            else stats.lognorm(s=params["scale"], scale=np.exp(params["loc"]))
        )
        assert dist.mean() == pytest.approx(np.exp(log_mean[i]), rel=1e-12)
        assert dist.std() / dist.mean() == pytest.approx(np.exp(log_cv[i]), rel=1e-12)


def test_level_moments_and_mixture_moments_match_scipy():
    design = _design()
    strength = ConditionalStrength("gamma", design)
    values = _random_params(strength, seed=5)
    _set_torch(strength, values)
    # a level at the population values of the other covariates: no regressor effect
    level = design.level_keys.index("south")
    tau_m, tau_c = np.exp(values["log_tau_mean"][0]), np.exp(values["log_tau_cv"][0])
    mean = np.exp(values["log_mean"] + tau_m * values["log_mean_level_z"][level])
    cv = np.exp(values["log_cv"] + tau_c * values["log_cv_level_z"][level])
    with torch.no_grad():
        moments = strength.level_moments()["south"]
    assert float(moments["mean"]) == pytest.approx(mean, rel=1e-12)
    assert float(moments["cv"]) == pytest.approx(cv, rel=1e-12)
    # the population of the seven raters: an equal mixture of their Gammas
    natural = strength.group_params(RAW)
    dists = [
        stats.gamma(a=float(a), scale=1 / float(b))
        for a, b in zip(natural["shape"], natural["rate"], strict=True)
    ]
    mix_mean = np.mean([d.mean() for d in dists])
    mix_var = np.mean([d.var() + d.mean() ** 2 for d in dists]) - mix_mean**2
    population = strength.population_moments(RAW)
    assert float(population["mean"]) == pytest.approx(mix_mean, rel=1e-12)
    assert float(population["variance"]) == pytest.approx(mix_var, rel=1e-10)
    assert float(population["cv"]) == pytest.approx(np.sqrt(mix_var) / mix_mean, rel=1e-10)


def test_log_prior_is_the_normalised_hierarchical_density():
    design = StrengthDesign.fit(RAW, levels=["subgroup", "age_band"], numeric=["experience"])
    strength = ConditionalStrength(
        "lognormal",
        design,
        tau_cv=0.3,
        tau_prior_scale=0.7,
        coef_prior_scale=2.0,
        population_prior_scale=1.5,
    )
    values = _random_params(strength, seed=3)
    _set_torch(strength, values)
    expected = (
        stats.norm.logpdf(values["log_mean_level_z"]).sum()
        + stats.norm.logpdf(values["log_cv_level_z"]).sum()
        + stats.halfnorm(scale=0.7).logpdf(np.exp(values["log_tau_mean"])).sum()
        + stats.norm(scale=2.0).logpdf(values["log_mean_coef"]).sum()
        + stats.norm(strength.spec.init_log_mean, 1.5).logpdf(values["log_mean"])
        + stats.norm(strength.spec.init_log_cv, 1.5).logpdf(values["log_cv"])
    )
    assert "log_tau_cv" not in values  # fixed tau_cv: not a parameter
    assert float(strength.log_prior()) == pytest.approx(expected, rel=1e-13)


def test_without_covariates_it_is_the_mean_cv_parameterised_single_family_strength():
    d = torch.linspace(-30.0, 30.0, 41)
    strength = ConditionalStrength("gamma", mean=0.3, cv=0.4)
    assert sorted(n for n, _ in strength.named_parameters()) == ["log_cv", "log_mean"]
    shape, rate = 1 / 0.4**2, 1 / 0.4**2 / 0.3
    reference = gamma_logit_marginal(d, torch.tensor(shape), torch.tensor(rate))
    torch.testing.assert_close(strength.log_marginal(d), reference, rtol=1e-12, atol=0)
    lognormal = ConditionalStrength(
        "lognormal", init={"loc": -1.0, "scale": 0.8}, method="quadrature"
    )
    reference = lognormal_logit_marginal(
        d, torch.tensor(-1.0), torch.tensor(0.8), method="quadrature"
    )
    torch.testing.assert_close(lognormal.log_marginal(d), reference, rtol=1e-12, atol=0)
    assert float(lognormal.coefficient_of_variation) == pytest.approx(np.sqrt(np.expm1(0.64)))


def test_fixed_values_are_buffers_and_a_point_mass_has_no_cv():
    strength = ConditionalStrength("gamma", _design(), learnable=False)
    assert not list(strength.parameters())
    assert "log_mean" in strength.state_dict()
    point = ConditionalStrength("fixed", _design())
    assert "log_cv" not in dict(point.named_parameters())
    assert float(point.coefficient_of_variation) == 0.0
    with pytest.raises(ValueError, match="no spread"):
        ConditionalStrength("point_mass", cv=0.5)


def test_config_and_state_dict_rebuild_the_same_strength():
    strength = ConditionalStrength("gamma", _design(), tau_cv=0.2, num_terms=30)
    _set_torch(strength, _random_params(strength, seed=8))
    again = ConditionalStrength.from_config(json.loads(json.dumps(strength.config())))
    again.load_state_dict(strength.state_dict())
    for key, value in strength.group_params(RAW).items():
        torch.testing.assert_close(again.group_params(RAW)[key], value, rtol=0, atol=0)
    assert again.options["num_terms"] == 30


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="weibull"):
        ConditionalStrength("weibull")
    with pytest.raises(ValueError, match="tau_mean must be a positive"):
        ConditionalStrength("gamma", _design(), tau_mean=0.0)
    with pytest.raises(ValueError, match="either init"):
        ConditionalStrength("gamma", init={"shape": 2.0}, mean=0.1)
    with pytest.raises(ValueError, match="unknown gamma option"):
        ConditionalStrength("gamma", method="mc")
    with pytest.raises(ValueError, match="no pooled levels"):
        cond.level_predictors(None, ConditionalStrength("gamma").spec, {})


# ----------------------------------------------------------------------------- torch == JAX
@pytest.mark.parametrize("family", ["gamma", "lognormal", "point_mass"])
def test_torch_and_jax_agree_on_values_and_gradients(family):
    design = StrengthDesign.fit(
        RAW, levels=["subgroup"], numeric=["experience"], categorical=["age_band"]
    )
    options = {"method": "quadrature"} if family == "lognormal" else {}
    t = ConditionalStrength(family, design, regress_cv=True, **options)
    values = _random_params(t, seed=21)
    _set_torch(t, values)
    j = JaxConditionalStrength(family, design, regress_cv=True, **options).replace(**values)
    d = np.linspace(-4.0, 6.0, len(RAW))

    def torch_objective():
        return t.log_marginal(torch.as_tensor(d), covariates=RAW).sum() + t.log_prior()

    def jax_objective(s):
        return s.log_marginal(jnp.asarray(d), covariates=RAW).sum() + s.log_prior()

    value = torch_objective()
    value.backward()
    # jit: the op-by-op JAX gradient of the quadrature takes ~20 s on two cores
    jax_value, grads = jax.jit(jax.value_and_grad(jax_objective))(j)
    assert float(value) == pytest.approx(float(jax_value), rel=1e-12)
    for name, param in t.named_parameters():
        np.testing.assert_allclose(
            param.grad.numpy(), np.asarray(grads.params()[name]), rtol=1e-10, atol=1e-14
        )
    assert t.log_values(RAW) == pytest.approx(j.log_values(RAW), rel=1e-12)
    jitted = jax.jit(lambda s: s.log_prior())(j)
    assert float(jitted) == pytest.approx(float(t.log_prior()), rel=1e-13)


# ----------------------------------------------------------------------------- PPL sites
def _ppl_spec():
    design = StrengthDesign.fit(RAW, levels=["subgroup"], numeric=["experience"])
    return ConditionalStrength("gamma", design, tau_prior_scale=0.8, coef_prior_scale=1.3).spec


def test_numpyro_sites_carry_the_same_log_prior():
    import numpyro
    from numpyro.infer.util import log_density

    from mixlogit.jax._ppl import PPL

    spec = _ppl_spec()
    model = lambda: cond.conditional_strength_sites(PPL, spec, like=jnp.zeros(()))  # noqa: E731
    trace = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace()
    sites = {k: v["value"] for k, v in trace.items() if v["type"] == "sample"}
    assert sorted(sites) == [
        "strength_log_cv_level_z",
        "strength_log_mean_coef",
        "strength_log_mean_level_z",
        "strength_tau_cv",
        "strength_tau_mean",
    ]
    params = {k: v["value"] for k, v in trace.items() if v["type"] == "param"}
    log_joint, _ = log_density(model, (), {}, {**sites, **params})
    values = {
        "log_mean": params["strength_log_mean"],
        "log_cv": params["strength_log_cv"],
        "log_mean_coef": sites["strength_log_mean_coef"],
        "log_mean_level_z": sites["strength_log_mean_level_z"],
        "log_cv_level_z": sites["strength_log_cv_level_z"],
        "log_tau_mean": jnp.log(sites["strength_tau_mean"]),
        "log_tau_cv": jnp.log(sites["strength_tau_cv"]),
    }
    from mixlogit.jax._ops import OPS

    assert float(log_joint) == pytest.approx(float(cond.log_prior(OPS, spec, values)), rel=1e-12)


def test_pyro_sites_carry_the_same_log_prior():
    import pyro

    from mixlogit.torch._ops import OPS
    from mixlogit.torch._ppl import PPL

    spec = _ppl_spec()
    pyro.clear_param_store()
    pyro.set_rng_seed(4)
    model = lambda: cond.conditional_strength_sites(PPL, spec, like=torch.zeros(()))  # noqa: E731
    trace = pyro.poutine.trace(model).get_trace()
    values = trace.nodes["_RETURN"]["value"]  # the model returns the parameter mapping
    sample_log_prob = sum(
        site["fn"].log_prob(site["value"]).sum()
        for site in trace.nodes.values()
        if site["type"] == "sample"
    )
    assert float(sample_log_prob) == pytest.approx(
        float(cond.log_prior(OPS, spec, values)), rel=1e-12
    )
    pyro.clear_param_store()


# ----------------------------------------------------------------------------- MAP pooling
def _pooling_data():
    """Direct strength observations of four levels with very unequal sizes (seed 2024)."""
    rng = np.random.default_rng(2024)
    means = {"p": 0.05, "q": 0.2, "r": 0.6, "s": 1.5}
    sizes = {"p": 40, "q": 3, "r": 25, "s": 2}
    cv = 0.5
    rows = [
        (level, value)
        for level, n in sizes.items()
        for value in stats.gamma(a=1 / cv**2, scale=means[level] * cv**2).rvs(n, random_state=rng)
    ]
    return pd.DataFrame(rows, columns=["level", "beta"])


def test_map_with_learned_tau_matches_an_independent_scipy_optimum():
    data = _pooling_data()
    design = StrengthDesign.fit(data, levels=["level"])
    strength = ConditionalStrength("gamma", design, pool_cv=False, tau_prior_scale=1.0)
    beta = torch.tensor(data["beta"].to_numpy())
    encoded = strength.encode(data)

    def loss():
        natural = strength.natural_params(encoded)
        log_lik = torch.distributions.Gamma(natural["shape"], natural["rate"]).log_prob(beta).sum()
        return -(log_lik + strength.log_prior())

    optimiser = torch.optim.LBFGS(
        strength.parameters(),
        lr=1,
        max_iter=500,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimiser.zero_grad()
        value = loss()
        value.backward()
        return value

    optimiser.step(closure)

    # the same posterior written with scipy densities: x = (mu, log_cv, log_tau, z_1..z_4)
    level = design.encode(data).level_index[:, 0]
    y = data["beta"].to_numpy()

    def negative_log_posterior(x):
        mu, log_cv, log_tau, z = x[0], x[1], x[2], x[3:]
        mean = np.exp(mu + np.exp(log_tau) * z[level])
        shape = np.exp(-2 * log_cv)
        log_lik = stats.gamma(a=shape, scale=mean / shape).logpdf(y).sum()
        log_prior = stats.norm.logpdf(z).sum() + stats.halfnorm.logpdf(np.exp(log_tau))
        return -(log_lik + log_prior)

    start = np.array([np.log(0.3), np.log(0.7), np.log(0.5), 0.0, 0.0, 0.0, 0.0])
    reference = optimize.minimize(
        negative_log_posterior, start, method="BFGS", options={"gtol": 1e-9}
    )
    # BFGS on finite differences stops at "precision loss" a hair from the optimum
    assert reference.status in (0, 2), reference.message
    assert float(loss()) == pytest.approx(reference.fun, rel=1e-9)
    fitted = {k: float(v["mean"]) for k, v in strength.level_moments().items()}
    mu, _, log_tau, z = reference.x[0], reference.x[1], reference.x[2], reference.x[3:]
    expected = np.exp(mu + np.exp(log_tau) * z)
    np.testing.assert_allclose([fitted[k] for k in "pqrs"], expected, rtol=1e-5)
    # partial pooling: the small levels move from their own means toward the centre
    centre = float(strength.mean)
    for key in ("q", "s"):
        own = data.loc[data["level"] == key, "beta"].mean()
        assert abs(np.log(fitted[key] / centre)) < abs(np.log(own / centre))
    assert 0.0 < float(strength.log_tau_mean.exp()) < 10.0  # a proper (finite, positive) MAP


def test_fixed_tau_is_a_ridge_penalty_on_the_level_effects():
    strength = ConditionalStrength(
        "gamma", StrengthDesign.fit(_pooling_data(), levels=["level"]), tau_mean=0.25
    )
    values = _random_params(strength, seed=1)
    _set_torch(strength, values)
    effect = 0.25 * values["log_mean_level_z"]
    expected = -(effect**2).sum() / (2 * 0.25**2) - 4 * 0.5 * np.log(2 * np.pi)
    expected += stats.norm.logpdf(values["log_cv_level_z"]).sum()
    expected += stats.halfnorm.logpdf(np.exp(values["log_tau_cv"])).sum()
    assert float(strength.log_prior()) == pytest.approx(expected, rel=1e-13)


def test_encoded_covariates_rows_select_both_fields():
    encoded = _design().encode(RAW)
    picked = encoded.rows(np.array([3, 0]))
    assert isinstance(picked, EncodedCovariates)
    np.testing.assert_array_equal(picked.features, encoded.features[[3, 0]])
    assert picked.num_rows == 2


def test_a_numpyro_panel_model_on_the_sites_has_prior_plus_panel_likelihood():
    import numpyro
    from numpyro.infer.util import log_density

    from mixlogit.jax._ops import OPS
    from mixlogit.jax._ppl import PPL
    from mixlogit.jax.panel import panel_logit_marginal

    design = StrengthDesign.fit(RAW, levels=["subgroup"])
    spec = ConditionalStrength("gamma", design).spec
    groups = EncodedCovariates(*(jnp.asarray(a) for a in design.encode(RAW)))
    rng = np.random.default_rng(12)
    group = jnp.asarray(rng.integers(0, len(RAW), size=30))
    d = jnp.asarray(rng.normal(scale=3.0, size=30))

    def model():  # the recipe of the mixlogit.conditional docstring
        params = cond.conditional_strength_sites(PPL, spec, like=d)
        natural = cond.natural_params(PPL.ops, spec, params, groups)
        log_lik = panel_logit_marginal(d, group, spec.family, natural, num_groups=groups.num_rows)
        PPL.factor("panel", log_lik.sum())
        return params

    def sites():
        return cond.conditional_strength_sites(PPL, spec, like=d)

    trace = numpyro.handlers.trace(numpyro.handlers.seed(sites, 3)).get_trace()
    values = {k: v["value"] for k, v in trace.items() if v["type"] in ("sample", "param")}

    # jit: the eager panel kernel dispatches thousands of small ops
    @jax.jit
    def joint(values):
        log_joint, model_trace = log_density(model, (), {}, values)
        return log_joint, model_trace["panel"]["fn"].log_factor

    log_joint, panel = joint(values)
    params = numpyro.handlers.substitute(sites, data=values)()
    assert float(log_joint) == pytest.approx(
        float(cond.log_prior(OPS, spec, params) + panel), rel=1e-12
    )
    # the panel term, group by group, by direct quadrature
    natural = cond.natural_params(OPS, spec, params, groups)
    expected = 0.0
    for g in range(len(RAW)):
        shape, rate = float(natural["shape"][g]), float(natural["rate"][g])
        dg = np.asarray(d)[np.asarray(group) == g]

        def integrand(beta, dg=dg, shape=shape, rate=rate):
            return stats.gamma.pdf(beta, a=shape, scale=1 / rate) * np.exp(
                -np.logaddexp(0.0, -beta * dg).sum()
            )

        expected += np.log(integrate.quad(integrand, 0, np.inf, epsrel=1e-12, limit=400)[0])
    assert float(panel) == pytest.approx(expected, rel=1e-9)
