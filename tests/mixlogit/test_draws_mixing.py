"""Draw generators and mixing-distribution transforms against scipy."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from mixlogit._choice_ops import choice_ops
from mixlogit.draws import DRAW_TYPES, halton_sequence, make_draws
from mixlogit.mixing import coefficient_from_standard, gamma_inverse_cdf, standardise_uniform

NUMPY = choice_ops("numpy")


def test_halton_radical_inverse():
    np.testing.assert_allclose(halton_sequence(5, 2), [0.0, 0.5, 0.25, 0.75, 0.125])
    np.testing.assert_allclose(halton_sequence(3, 3, skip=2), [2 / 3, 1 / 9, 4 / 9])


@pytest.mark.parametrize("kind", DRAW_TYPES)
def test_draws_shape_range_and_uniformity(kind):
    u = make_draws(50, 200, 3, kind, seed=1)
    assert u.shape == (50, 200, 3)
    assert np.all((u > 0) & (u < 1))
    for d in range(3):
        assert stats.kstest(u[..., d].ravel(), "uniform").pvalue > 1e-3


def test_mlhs_has_one_draw_per_stratum_and_scrambling_changes_halton():
    u = make_draws(5, 10, 2, "mlhs", seed=3)
    strata = np.sort(np.floor(u * 10), axis=1)
    np.testing.assert_array_equal(strata, np.broadcast_to(np.arange(10.0)[:, None], (5, 10, 2)))
    plain = make_draws(3, 20, 4, "halton")
    scrambled = make_draws(3, 20, 4, "halton-scrambled", seed=2)
    # digit permutations fix 0, so base 2 is unchanged by design; bases 5 and 7 change
    np.testing.assert_array_equal(plain[..., 0], scrambled[..., 0])
    assert not np.allclose(plain[..., 2:], scrambled[..., 2:])
    with pytest.raises(ValueError, match="unknown draw type 'lhs'"):
        make_draws(2, 2, 1, "lhs")


def test_distribution_transforms_match_scipy():
    u = np.linspace(0.01, 0.99, 25)
    coefficient = jax.jit(
        partial(coefficient_from_standard, choice_ops("jax")), static_argnums=(0, 4)
    )
    with jax.enable_x64(True):
        a, b = 0.4, 0.7
        lognormal = coefficient("lognormal", a, b, standardise_uniform(NUMPY, u, "lognormal"), -1)
        np.testing.assert_allclose(lognormal, -stats.lognorm.ppf(u, b, scale=np.exp(a)), rtol=1e-12)
        tri = coefficient("triangular", a, b, standardise_uniform(NUMPY, u, "triangular"))
        np.testing.assert_allclose(
            tri, stats.triang.ppf(u, 0.5, loc=a - b, scale=2 * b), rtol=1e-12
        )
        uni = coefficient("uniform", a, b, standardise_uniform(NUMPY, u, "uniform"))
        np.testing.assert_allclose(uni, stats.uniform.ppf(u, loc=a - b, scale=2 * b), rtol=1e-12)
        trunc = coefficient("truncnormal", -a, b, jnp.asarray(u))
        np.testing.assert_allclose(
            trunc, stats.truncnorm.ppf(u, a / b, np.inf, loc=-a, scale=b), rtol=1e-10
        )
        gamma = coefficient("gamma", np.log(2.5), np.log(0.3), jnp.asarray(u))
        np.testing.assert_allclose(gamma, stats.gamma.ppf(u, 2.5, scale=0.3), rtol=1e-10)


def test_gamma_inverse_cdf_value_and_shape_derivative():
    shapes = np.array([0.2, 1.0, 3.5, 60.0])
    u = np.array([1e-8, 0.05, 0.5, 0.95, 1 - 1e-8])
    grid_u, grid_shape = np.meshgrid(u, shapes)
    with jax.enable_x64(True):
        quantile = jax.jit(gamma_inverse_cdf)
        x = quantile(jnp.asarray(grid_u), jnp.asarray(grid_shape))
        np.testing.assert_allclose(x, special.gammaincinv(grid_shape, grid_u), rtol=1e-10)
        # row sums: d/dk sum_u x(u; k) for each shape k
        grad = jax.jit(jax.grad(lambda k: quantile(jnp.asarray(grid_u), k[:, None] * 1.0).sum()))
        derivative = np.asarray(grad(jnp.asarray(shapes)))
    h = 1e-6 * shapes[:, None]
    numeric = (
        special.gammaincinv(shapes[:, None] + h, u) - special.gammaincinv(shapes[:, None] - h, u)
    ).sum(axis=1) / (2 * h[:, 0])
    np.testing.assert_allclose(derivative, numeric, rtol=1e-6)


def _radical_inverse(index: int, base: int) -> float:
    """The Halton point of ``index`` in ``base``, digit by digit (independent of the library)."""
    value, scale = 0.0, 1.0 / base
    while index:
        index, digit = divmod(index, base)
        value += digit * scale
        scale /= base
    return value


def test_halton_skip_and_primes_choose_the_points():
    u = make_draws(3, 4, 2, "halton", skip=7, primes=(5, 3))
    expected = np.array(
        [[_radical_inverse(7 + i, 5), _radical_inverse(7 + i, 3)] for i in range(12)]
    ).reshape(3, 4, 2)
    np.testing.assert_allclose(u, expected, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(
        make_draws(3, 4, 2, "halton", primes=(2, 3)), make_draws(3, 4, 2, "halton")
    )


@pytest.mark.parametrize(
    "options, kind, message",
    [
        ({"primes": (2, 4)}, "halton", r"\[4\] are not prime"),
        ({"primes": (3, 3)}, "halton", "must be distinct"),
        ({"primes": (2,)}, "halton", r"one per random coefficient \(2\)"),
        ({"skip": 0}, "halton", "skip'\\] must be an integer >= 1"),
        ({"skip": 10}, "sobol", "apply to Halton draws"),
        ({"drop": 10}, "halton", r"unknown keys \['drop'\]"),
    ],
)
def test_bad_halton_options_are_named(options, kind, message):
    from mixlogit.draws import check_halton_options

    with pytest.raises(ValueError, match=message):
        check_halton_options(options, kind, 2)
