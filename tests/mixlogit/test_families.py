"""The strength-family contract, checked for every family in FAMILY_NAMES.

References are independent of the family functions: scipy.stats moments, adaptive quadrature
(scipy.integrate.quad) of E[sigmoid(beta d)] against the scipy density, and the closed form
log sigmoid(beta d) for the point mass.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import integrate, special

import mixlogit.jax as mj
import mixlogit.torch as mt
from mixlogit.families import (
    FAMILY_NAMES,
    LOG_PREFIX,
    NUMPY_OPS,
    POINT_MASS,
    StrengthFamily,
    get_family,
    inverse_softplus,
)
from mixlogit.jax._ops import OPS as JAX_OPS
from mixlogit.torch._ops import OPS as TORCH_OPS

#: Parameter values away from the defaults, per family (the defaults are tested too).
OTHER_PARAMS = {"gamma": {"shape": 0.7, "rate": 3.0}, "lognormal": {"loc": 0.4, "scale": 1.3}}
MARGINS = np.array([-30.0, -2.5, -0.1, 0.0, 0.3, 4.0, 25.0])


def param_sets(name):
    family = get_family(name)
    other = OTHER_PARAMS.get(name, {p: 2.0 for p in family.parameters})
    return [dict(family.defaults), other]


def reference_log_marginal(family, params, d):
    frozen = family.scipy(params)
    if frozen is None:  # point mass
        return float(-np.logaddexp(0.0, -params["beta"] * d))
    value = integrate.quad(
        lambda b: frozen.pdf(b) * special.expit(b * d), 0, np.inf, limit=400, epsrel=1e-12
    )[0]
    return float(np.log(value))


def test_every_family_is_registered_under_its_name_and_aliases():
    assert set(FAMILY_NAMES) == {"gamma", "lognormal", "point_mass"}
    for name in FAMILY_NAMES:
        family = get_family(name)
        assert isinstance(family, StrengthFamily) and family.name == name
        assert get_family(family) is family
        for alias in family.aliases:
            assert get_family(alias) is family
    assert get_family("fixed") is POINT_MASS
    with pytest.raises(ValueError, match=r"strength family must be one of .*got 'weibull'"):
        get_family("weibull")


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_declared_names_defaults_and_log_keys_are_consistent(name):
    family = get_family(name)
    assert set(family.constraints) == set(family.parameters) == set(family.defaults)
    assert set(family.constraints.values()) <= {"positive", "real"}
    assert family.with_defaults() == dict(family.defaults)
    assert family.log_keys() == tuple(
        LOG_PREFIX + k for k in ("mean", "variance", "cv", *family.parameters)
    )
    assert set(family.option_choices) <= set(family.options)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_moments_match_scipy(name):
    family = get_family(name)
    for params in param_sets(name):
        moments = family.moments(NUMPY_OPS, params)
        frozen = family.scipy(params)
        if frozen is None:
            expected = {"mean": params["beta"], "variance": 0.0, "cv": 0.0}
        else:
            expected = {
                "mean": frozen.mean(),
                "variance": frozen.var(),
                "cv": frozen.std() / frozen.mean(),
            }
        for key, value in expected.items():
            assert float(moments[key]) == pytest.approx(value, rel=1e-12, abs=1e-300), key


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_from_mean_cv_round_trips(name):
    family = get_family(name)
    for params in param_sets(name):
        mean, cv = family.mean(NUMPY_OPS, params), family.cv(NUMPY_OPS, params)
        again = family.from_mean_cv(NUMPY_OPS, mean, cv)
        assert set(again) == set(family.parameters)
        for key, value in params.items():
            assert float(again[key]) == pytest.approx(value, rel=1e-12), key


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_log_marginal_matches_quadrature_and_numpy_torch_jax_agree(name):
    family = get_family(name)
    for params in param_sets(name):
        expected = [reference_log_marginal(family, params, x) for x in MARGINS]
        arrays = np.broadcast_arrays(MARGINS, *params.values())
        numpy_values = family.log_marginal(
            NUMPY_OPS, arrays[0], dict(zip(params, arrays[1:], strict=True))
        )
        torch_values = mt.logit_marginal(name, torch.tensor(MARGINS), params).numpy()
        with jax.enable_x64(True):
            jax_values = np.asarray(mj.logit_marginal(name, jnp.asarray(MARGINS), params))
        # quadrature of the LogNormal is accurate to ~1e-6 absolute in P at 16 nodes
        tol = 1e-6 if name == "lognormal" else 1e-10
        np.testing.assert_allclose(np.exp(numpy_values), np.exp(expected), rtol=tol, atol=tol)
        np.testing.assert_allclose(torch_values, numpy_values, rtol=1e-12)
        np.testing.assert_allclose(jax_values, numpy_values, rtol=1e-12)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_moments_agree_across_numpy_torch_and_jax(name):
    family = get_family(name)
    params = param_sets(name)[1]
    expected = family.moments(NUMPY_OPS, params)
    got_torch = family.moments(
        TORCH_OPS, {k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()}
    )
    with jax.enable_x64(True):
        got_jax = family.moments(
            JAX_OPS, {k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}
        )
    for key, value in expected.items():
        assert float(got_torch[key]) == pytest.approx(float(value), rel=1e-14, abs=1e-300)
        assert float(got_jax[key]) == pytest.approx(float(value), rel=1e-14, abs=1e-300)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_check_params_names_the_problem(name):
    family = get_family(name)
    first = family.parameters[0]
    with pytest.raises(ValueError, match=rf"unknown {name} parameter\(s\) \['nope'\]"):
        family.check_params({**family.defaults, "nope": 1.0})
    with pytest.raises(ValueError, match=rf"needs parameter\(s\) \['{first}'\]"):
        family.check_params({k: v for k, v in family.defaults.items() if k != first})
    assert family.check_params({}, complete=False) == {}
    for key, kind in family.constraints.items():
        bad = -1.0 if kind == "positive" else float("inf")
        message = "must be a positive finite number" if kind == "positive" else "must be finite"
        with pytest.raises(ValueError, match=rf"{name} parameter {key} {message}, got"):
            family.with_defaults({key: bad})
        with pytest.raises(ValueError, match=rf"{key} must be"):
            family.with_defaults({key: float("nan")})


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_check_options_rejects_unknown_options_and_values(name):
    family = get_family(name)
    assert family.check_options({}) == dict(family.options)
    with pytest.raises(ValueError, match=rf"unknown {name} option\(s\) \['nope'\]"):
        family.check_options({"nope": 1})
    for key, allowed in family.option_choices.items():
        with pytest.raises(ValueError, match=rf"{key} must be one of"):
            family.check_options({key: "not-" + str(allowed[0])})


def test_inverse_softplus_inverts_softplus_over_many_decades():
    for x in (1e-30, 1e-6, 0.3, 1.0, 30.0, 1e6):
        y = inverse_softplus(x)
        assert float(torch.nn.functional.softplus(torch.tensor(y, dtype=torch.float64))) == (
            pytest.approx(x, rel=1e-12)
        )
    with pytest.raises(ValueError, match="positive finite"):
        inverse_softplus(0.0)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_make_strength_in_both_backends_follows_the_family(name):
    family = get_family(name)
    params = param_sets(name)[1]
    expected = family.moments(NUMPY_OPS, params)
    for lib in (mt, mj):
        strength = lib.make_strength(name, params)
        assert strength.family == family.name and strength.strength_family is family
        assert isinstance(strength, lib.Strength)
        got = {k: float(v) for k, v in strength.constrained_parameters().items()}
        assert got == pytest.approx(params, rel=1e-6)
        assert float(strength.mean) == pytest.approx(float(expected["mean"]), rel=1e-6)
        assert float(strength.coefficient_of_variation) == pytest.approx(
            float(expected["cv"]), rel=1e-6, abs=1e-12
        )
    # A family-generic module and the named one store the same state.
    named = mt.make_strength(name, params)
    generic = mt.Strength(name, params)
    assert type(named) is not mt.Strength
    assert named.state_dict().keys() == generic.state_dict().keys()
    assert mt.make_strength("fixed").family == "point_mass"


def test_make_strength_applies_options_and_learnable():
    lognormal = mt.make_strength("lognormal", {"loc": -1.0}, learnable=False, num_points=8)
    assert isinstance(lognormal, mt.LogNormalStrength) and lognormal.method == "mc"
    assert lognormal.num_points == 8 and list(lognormal.parameters()) == []
    assert float(lognormal.scale) == pytest.approx(0.6, rel=1e-6)  # the family default
    frozen = mj.make_strength("gamma", learnable=False)
    assert jax.tree_util.tree_leaves(frozen) == []
    with pytest.raises(ValueError, match=r"unknown gamma option\(s\) \['method'\]"):
        mt.make_strength("gamma", method="mc")
    with pytest.raises(ValueError, match="method must be one of"):
        mj.make_strength("lognormal", method="exact")


def test_generic_jax_strength_is_a_pytree_with_gradients():
    strength = mj.Strength("lognormal", {"loc": -1.0, "scale": 0.5}, method="quadrature")
    leaves, treedef = jax.tree_util.tree_flatten(strength)
    assert len(leaves) == 2
    again = jax.tree_util.tree_unflatten(treedef, leaves)
    assert type(again) is mj.Strength and again.method == "quadrature"
    grad = jax.grad(lambda s: s.log_marginal(jnp.array([0.5, -2.0])).sum())(strength)
    # d/dloc log P at d = 0.5 and -2: finite differences in the natural loc
    eps = 1e-3
    up = mj.logit_marginal("lognormal", jnp.array([0.5, -2.0]), {"loc": -1.0 + eps, "scale": 0.5})
    down = mj.logit_marginal("lognormal", jnp.array([0.5, -2.0]), {"loc": -1.0 - eps, "scale": 0.5})
    assert float(grad.loc) == pytest.approx(float((up - down).sum() / (2 * eps)), rel=1e-3)


def test_check_values_names_parameter_index_and_value_and_skips_traced_values():
    """The value check behind the public marginal functions: NaN, inf and values <= 0 of a
    positive parameter are refused with the parameter, the first bad index and the value; the
    LogNormal scale may be 0 (the point mass); unknown (traced) values are skipped."""
    from mixlogit.families import GAMMA, LOGNORMAL
    from mixlogit.jax.marginals import FRONT_END as JAX_FRONT
    from mixlogit.torch.marginals import FRONT_END as TORCH_FRONT

    def torch64(x):
        return torch.tensor(x, dtype=torch.float64)

    for front, array in ((TORCH_FRONT, torch64), (JAX_FRONT, jnp.asarray)):
        concrete = front.concrete
        with pytest.raises(
            ValueError, match=r"gamma parameter shape must be positive and finite, got -1\.0"
        ):
            GAMMA.check_values({"shape": array(-1.0), "rate": array(1.0)}, concrete)
        with pytest.raises(
            ValueError, match=r"gamma parameter rate\[1\] must be positive .*got 0\.0"
        ):
            GAMMA.check_values({"shape": array(2.0), "rate": array([1.0, 0.0])}, concrete)
        with pytest.raises(
            ValueError, match=r"lognormal parameter loc\[0, 1\] must be finite, got nan"
        ):
            LOGNORMAL.check_values({"loc": array([[0.0, np.nan]]), "scale": array(0.5)}, concrete)
        with pytest.raises(ValueError, match=r"scale must be non-negative and finite, got -0\.5"):
            LOGNORMAL.check_values({"loc": array(0.0), "scale": array(-0.5)}, concrete)
        LOGNORMAL.check_values({"loc": array(0.0), "scale": array([0.0, 1.0])}, concrete)
        GAMMA.check_values({"shape": array(2.0), "rate": array([1.0, 1e-300])}, concrete)

    def traced(shape):
        GAMMA.check_values({"shape": shape, "rate": jnp.asarray(1.0)}, JAX_FRONT.concrete)
        return shape

    assert float(jax.jit(traced)(jnp.asarray(-1.0))) == -1.0  # not forced under jit


@pytest.mark.parametrize("lib", [mt, mj])
def test_public_marginal_functions_refuse_invalid_parameters(lib):
    """gamma_logit_marginal(1, shape=-1, rate=1) returned a number (-1.39) for a distribution
    that does not exist, and rate 0 returned -0.0; they must raise, naming the parameter."""
    for shape, rate, name in ((-1.0, 1.0, "shape"), (2.0, 0.0, "rate"), (np.nan, 1.0, "shape")):
        try:
            lib.gamma_logit_marginal(1.0, shape, rate)
        except ValueError as error:
            assert f"gamma parameter {name}" in str(error)
        else:
            raise AssertionError(f"gamma_logit_marginal accepted {name} = {shape, rate}")
    for scale in (-0.5, np.inf):
        with pytest.raises(ValueError, match="lognormal parameter scale"):
            lib.lognormal_logit_marginal(1.0, 0.0, scale)
    # scale = 0 (the point mass) is allowed
    assert np.isfinite(float(lib.lognormal_logit_marginal(1.0, 0.0, 0.0)))
