"""Simulated choice data with known truth, for tests, examples and benchmarks.

* :func:`simulate_choices`: long-format :class:`~mixlogit.data.ChoiceData` from an estimator
  or :class:`~mixlogit.spec.ModelSpec` at classical parameter values (``model.parameter_names``).
* :func:`draw_person_coefficients`: person coefficients in the hierarchical (Bayesian)
  parameterisation; :func:`simulate_choice_arrays`: :class:`~mixlogit.arrays.ChoiceArrays` of
  people with given coefficients.

Both draw the choice of each situation the same way (:func:`gumbel_choices`).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from mixlogit._choice_ops import choice_ops
from mixlogit.arrays import ChoiceArrays
from mixlogit.data import ChoiceData
from mixlogit.draws import standardised_draws
from mixlogit.likelihood import ParameterLayout, x64
from mixlogit.mixing import hierarchical_coefficients
from mixlogit.spec import ModelSpec, as_model_spec

__all__ = [
    "draw_person_coefficients",
    "gumbel_choices",
    "simulate_choice_arrays",
    "simulate_choices",
]


def gumbel_choices(
    rng: np.random.Generator, utility: np.ndarray, available: np.ndarray | None = None
) -> np.ndarray:
    """Chosen slot ``(S,)`` of systematic utilities ``(S, J)`` plus i.i.d. Gumbel errors
    (a logit model); unavailable slots are never chosen."""
    utility = utility + rng.gumbel(size=utility.shape)
    if available is not None:
        utility[~available] = -np.inf
    return utility.argmax(axis=1)


def simulate_choices(
    model,
    params: Mapping[str, float],
    *,
    num_people: int = 500,
    situations_per_person: int = 5,
    num_alternatives: int = 3,
    seed: int = 0,
    variable_scale: Mapping[str, float] | None = None,
    person_covariates: Mapping[str, np.ndarray] | None = None,
) -> ChoiceData:
    """Long-format choice data drawn from ``model`` at parameters ``params``.

    Generic variables (``model.variables`` without ``ASC_``/``@``) are i.i.d. normal with
    standard deviation ``variable_scale[name]`` (default 1; a price-like variable named in
    ``variable_scale`` is drawn from a log-normal so that it is positive). ``ASC_<alt>``
    variables use alternatives ``0 .. num_alternatives-1``. Each person gets one draw of the
    random coefficients, kept over their situations (panel), and Gumbel errors per alternative.
    The mixing covariates of the model (``mean_covariates``, ``sd_covariates``) are
    ``person_covariates[name]`` ``(num_people,)``, by default i.i.d. standard normal per person;
    they are columns of the data, constant within a person.

    Returns:
        :class:`ChoiceData` with columns ``person``, ``situation``, ``alt``, ``choice`` and the
        variables.
    """
    spec = as_model_spec(model)
    rng = np.random.default_rng(seed)
    layout = ParameterLayout.from_spec(spec)
    missing = [name for name in layout.names if name not in params]
    if missing:
        raise ValueError(f"params lacks {missing}; the model's parameters are {list(layout.names)}")
    theta = np.array([params[name] for name in layout.names], dtype=np.float64)
    num_s = num_people * situations_per_person
    person = np.repeat(np.arange(num_people), situations_per_person)
    columns: dict[str, np.ndarray] = {}
    scale = dict(variable_scale or {})
    for name in spec.variables:
        if name.startswith("ASC_") or "@" in name:
            continue
        if name in scale:
            columns[name] = np.exp(rng.normal(0.0, 0.5, (num_s, num_alternatives))) * scale[name]
        else:
            columns[name] = rng.normal(0.0, 1.0, (num_s, num_alternatives))
    utility = np.zeros((num_s, num_alternatives))
    given = dict(person_covariates or {})
    unknown = sorted(set(given) - set(layout.covariates))
    if unknown:
        raise ValueError(
            f"person_covariates {unknown} are not covariates of the model {list(layout.covariates)}"
        )
    covariate_rng = np.random.default_rng([seed, 2])
    covariates = np.zeros((num_people, layout.num_covariates))
    for q, name in enumerate(layout.covariates):
        values = given.get(name)
        if values is None:
            values = covariate_rng.normal(size=num_people)
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (num_people,):
            raise ValueError(
                f"person_covariates[{name!r}] has shape {values.shape}; expected ({num_people},)"
            )
        covariates[:, q] = values
    standard = np.zeros((num_people, 1, 0))
    if layout.num_random:
        standard, _ = standardised_draws(spec, num_people, 1, "random", seed + 1)
    # utility coefficients of every variable (in WTP space beta_k = -beta_p w_k), fixed first
    betas = _classical_coefficients(layout, theta, standard, covariates)
    for k, name in enumerate(layout.fixed + layout.random):
        utility += betas[person, k][:, None] * _design(name, columns, num_s, num_alternatives)
    choice = gumbel_choices(rng, utility)
    frame = pd.DataFrame(
        {
            "person": np.repeat(person, num_alternatives),
            "situation": np.repeat(np.arange(num_s), num_alternatives),
            "alt": np.tile(np.arange(num_alternatives), num_s),
            "choice": (
                np.tile(np.arange(num_alternatives), num_s) == np.repeat(choice, num_alternatives)
            ).astype(int),
        }
    )
    for name, values in columns.items():
        frame[name] = values.ravel()
    for q, name in enumerate(layout.covariates):
        frame[name] = np.repeat(covariates[person, q], num_alternatives)
    return ChoiceData(
        frame, choice="choice", alternative="alt", situation="situation", panel="person"
    )


def _classical_coefficients(
    layout: ParameterLayout, theta: np.ndarray, standard: np.ndarray, covariates: np.ndarray
) -> np.ndarray:
    """Utility coefficients ``(P, K)`` at ``theta`` from standardised draws ``(P, 1, Kr)``
    and covariates ``(P, Q)``: the estimators' own map (JAX, float64)."""
    with x64():
        betas = jax.jit(layout.coefficients)(
            jnp.asarray(theta), jnp.asarray(standard), jnp.asarray(covariates)
        )
    return np.asarray(betas)[:, 0]


def _design(name: str, columns: dict, num_s: int, num_j: int) -> np.ndarray:
    if name.startswith("ASC_"):
        out = np.zeros((num_s, num_j))
        out[:, int(name[4:])] = 1.0
        return out
    if "@" in name:
        column, alt = name.rsplit("@", 1)
        out = np.zeros((num_s, num_j))
        out[:, int(alt)] = columns[column][:, int(alt)]
        return out
    return columns[name]


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
    chosen = gumbel_choices(rng, np.einsum("sjk,sk->sj", X, person_beta[panel]), available)
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
    spec: ModelSpec,
    num_people: int,
    fixed: dict[str, float],
    random: dict[str, tuple[float, float]],
    *,
    correlation: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """True person coefficients ``(P, K)`` in the hierarchical parameterisation.

    ``random[name] = (mu, sigma)`` for normal-driven distributions and ``(log_mean,
    log_shape)`` for gamma (see :func:`mixlogit.mixing.hierarchical_coefficients`);
    ``correlation`` is the correlation matrix of the ``spec.correlated`` coefficients.
    """
    spec = as_model_spec(spec)
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    if spec.fixed_index:
        params["beta_fixed"] = np.asarray([fixed[n] for n in spec.fixed], dtype=np.float64)
    if spec.random_index:
        params["mu"] = np.asarray([random[n][0] for n in spec.random], dtype=np.float64)
        params["sigma"] = np.asarray([random[n][1] for n in spec.z_random], dtype=np.float64)
        params["log_shape"] = np.asarray(
            [random[n][1] for n in spec.gamma_random], dtype=np.float64
        )
    if spec.correlated:
        params["L_corr"] = np.linalg.cholesky(np.asarray(correlation, dtype=np.float64))
    z = rng.standard_normal((num_people, len(spec.z_random)))
    u = rng.gamma(
        np.exp(params.get("log_shape", np.zeros(0))), size=(num_people, len(spec.gamma_random))
    )
    return np.asarray(hierarchical_coefficients(choice_ops("numpy"), spec, params, z, u))
