"""Simulated choice data with known truth (for tests, examples and benchmarks)."""

from __future__ import annotations

import numpy as np

from mixlogit.arrays import ChoiceArrays
from mixlogit.bayes.spec import BayesSpec

__all__ = ["draw_person_coefficients", "simulate_choice_arrays"]


def simulate_choice_arrays(
    person_beta: np.ndarray,
    situations_per_person: int,
    num_alternatives: int,
    variable_names: tuple[str, ...],
    *,
    seed: int = 0,
    x_scale: float = 1.0,
    unavailable_fraction: float = 0.0,
) -> ChoiceArrays:
    """Choices of ``P`` people with coefficients ``person_beta (P, K)`` (Gumbel errors).

    Variables are i.i.d. ``Normal(0, x_scale)``; each non-first alternative is unavailable
    with probability ``unavailable_fraction`` (the first alternative is always available).
    Returns :class:`~mixlogit.arrays.ChoiceArrays` with ``S = P * situations_per_person``.
    """
    rng = np.random.default_rng(seed)
    person_beta = np.asarray(person_beta, dtype=np.float64)
    P, K = person_beta.shape
    if len(variable_names) != K:
        raise ValueError(f"{len(variable_names)} variable names for {K} coefficients")
    T, J = situations_per_person, num_alternatives
    S = P * T
    X = rng.normal(0.0, x_scale, size=(S, J, K))
    available = np.ones((S, J), dtype=bool)
    if unavailable_fraction > 0:
        available[:, 1:] = rng.random((S, J - 1)) >= unavailable_fraction
    X[~available] = 0.0
    panel = np.repeat(np.arange(P), T)
    utility = np.einsum("sjk,sk->sj", X, person_beta[panel]) + rng.gumbel(size=(S, J))
    utility[~available] = -np.inf
    chosen = utility.argmax(1)
    return ChoiceArrays(
        X=X,
        chosen=chosen.astype(np.int64),
        available=available,
        panel=panel.astype(np.int64),
        weights=np.ones(S),
        variable_names=tuple(variable_names),
        alternatives=tuple(range(J)),
        num_panels=P,
    )


def draw_person_coefficients(
    spec: BayesSpec,
    num_people: int,
    fixed: dict[str, float],
    random: dict[str, tuple[float, float]],
    *,
    correlation: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """True person coefficients ``(P, K)`` from the spec's parameterisation.

    ``random[name] = (mu, sigma)`` for z-driven distributions and ``(log_mean, log_shape)``
    for gamma (see :mod:`mixlogit.bayes.spec`); ``correlation`` is the correlation matrix of
    the ``spec.correlated`` normals.
    """
    import jax

    with jax.enable_x64(True):
        return _draw(spec, num_people, fixed, random, correlation, seed)


def _draw(spec, num_people, fixed, random, correlation, seed):
    import jax.numpy as jnp

    from mixlogit.bayes import numpyro_model as nm

    rng = np.random.default_rng(seed)
    kz, kg = len(spec.z_random_names), len(spec.gamma_names)
    params = {}
    if spec.fixed_index:
        params["beta_fixed"] = jnp.asarray([fixed[n] for n in spec.fixed_names])
    if spec.random_index:
        params["mu"] = jnp.asarray([random[n][0] for n in spec.random_names])
        params["sigma"] = jnp.asarray([random[n][1] for n in spec.z_random_names])
        params["log_shape"] = jnp.asarray([random[n][1] for n in spec.gamma_names])
    if spec.correlated:
        params["L_corr"] = jnp.asarray(np.linalg.cholesky(np.asarray(correlation)))
    z = rng.standard_normal((num_people, kz))
    u = rng.gamma(np.exp(np.asarray(params.get("log_shape", np.zeros(0)))), size=(num_people, kg))
    return np.asarray(nm.coefficients_from_params(spec, params, jnp.asarray(z), jnp.asarray(u)))
