"""Nested and cross-nested logit: the specification, the log-likelihood and its fit.

Utility ``V_j = x_j . beta``. Alternatives are grouped in nests ``m`` with a scale
(dissimilarity, logsum coefficient) ``lambda_m`` and allocations ``alpha_jm >= 0`` (1 for the
one nest of an alternative in a nested logit; summing to 1 over the nests of an alternative in
a cross-nested logit). The generating function ``G = sum_m (sum_j (alpha_jm e^V_j)^(1 /
lambda_m))^lambda_m`` gives (McFadden 1978; Wen and Koppelman 2001; Bierlaire 2006)

    log P_j = log sum_m exp((log alpha_jm + V_j) / lambda_m + (lambda_m - 1) IV_m) - log G,
    IV_m = log sum_j exp((log alpha_jm + V_j) / lambda_m),   log G = log sum_m exp(lambda_m IV_m),

over the available alternatives, written once in :func:`nested_log_probabilities` for both
models (a nested logit is the cross-nested one with 0/1 allocations). ``lambda_m = 1`` for every
nest is the MNL; ``0 < lambda_m <= 1`` is consistent with random utility maximisation.
Biogeme's nest parameter is ``mu_m = 1 / lambda_m``.

Parameters, after the coefficients: ``lambda.<nest>`` for each nest, then for each alternative
in ``k >= 2`` nests the allocations ``alpha.<alternative>.<nest>`` of its first ``k - 1`` nests
(the last one is 1 minus their sum). Alternatives in no nest are nests of their own with
``lambda = 1``. The fit (:func:`mixlogit.estimation.fit.estimate_nested`) reuses the classical
optimiser, Hessian and sandwich covariance (:mod:`mixlogit.estimation.optimize`) and the
restrictions of ``fit(fix=, bounds=)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mixlogit.data import ChoiceData, plain_value
from mixlogit.estimation.problem import Problem, exact_problem, model_part
from mixlogit.likelihood import x64
from mixlogit.spec import ModelSpec

__all__ = [
    "NestedData",
    "NestedLikelihood",
    "NestingSpec",
    "build_nested_problem",
    "nested_log_probabilities",
    "nesting_of",
]

#: the lower bound of every ``lambda`` unless ``fit(bounds=...)`` says otherwise (the
#: likelihood divides by it); allocations are kept in [0, 1]
LAMBDA_LOWER_BOUND = 1e-3


@dataclass(frozen=True)
class NestingSpec:
    """The coefficients and the nests of a (cross-)nested logit.

    Attributes:
        spec: the coefficients (all fixed), a :class:`~mixlogit.spec.ModelSpec`.
        nests: ``((nest, (alternative, ...)), ...)`` in the order given.
        cross: alternatives may belong to several nests (cross-nested logit).
    """

    spec: ModelSpec
    nests: tuple[tuple[str, tuple[Any, ...]], ...]
    cross: bool = False

    def __post_init__(self) -> None:
        nests = tuple((str(name), tuple(members)) for name, members in self.nests)
        object.__setattr__(self, "nests", nests)
        if self.spec.random:
            raise ValueError("a nested logit takes fixed coefficients only")
        if not nests:
            raise ValueError("nests is empty: give at least one nest of alternatives")
        names = [name for name, _ in nests]
        if len(set(names)) != len(names):
            raise ValueError(f"nest names listed twice: {names}")
        for name, members in nests:
            if not members:
                raise ValueError(f"nest {name!r} has no alternatives")
            if len(set(members)) != len(members):
                raise ValueError(f"nest {name!r} lists an alternative twice: {list(members)}")
        shared = sorted({str(a) for a in self.memberships if len(self.memberships[a]) > 1}, key=str)
        if shared and not self.cross:
            raise ValueError(
                f"alternatives {shared} are in several nests; a nested logit puts each "
                "alternative in one nest (use CrossNestedLogit for overlapping nests)"
            )

    @property
    def memberships(self) -> dict[Any, list[str]]:
        """``{alternative: [nest, ...]}`` in nest order."""
        out: dict[Any, list[str]] = {}
        for name, members in self.nests:
            for alternative in members:
                out.setdefault(alternative, []).append(name)
        return out

    @property
    def nest_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.nests)

    @property
    def allocations(self) -> tuple[tuple[Any, str], ...]:
        """``(alternative, nest)`` of each allocation parameter, in parameter order."""
        return tuple(
            (alternative, nest)
            for alternative, nests in self.memberships.items()
            if len(nests) > 1
            for nest in nests[:-1]
        )

    @property
    def extra_names(self) -> tuple[str, ...]:
        """The parameters after the coefficients: scales, then allocations."""
        scales = tuple(f"lambda.{nest}" for nest in self.nest_names)
        return scales + tuple(f"alpha.{a}.{nest}" for a, nest in self.allocations)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return self.spec.parameter_names + self.extra_names

    @property
    def variables(self) -> tuple[str, ...]:
        return self.spec.variables

    def default_bounds(self) -> dict[str, tuple[float | None, float | None]]:
        bounds: dict[str, tuple[float | None, float | None]] = {
            f"lambda.{nest}": (LAMBDA_LOWER_BOUND, None) for nest in self.nest_names
        }
        bounds.update({f"alpha.{a}.{nest}": (0.0, 1.0) for a, nest in self.allocations})
        return bounds

    def start(self) -> dict[str, float]:
        """The nest parameters' default start: the MNL (``lambda = 1``), equal allocations."""
        start = {f"lambda.{nest}": 1.0 for nest in self.nest_names}
        memberships = self.memberships
        for alternative, nest in self.allocations:
            start[f"alpha.{alternative}.{nest}"] = 1.0 / len(memberships[alternative])
        return start

    def to_dict(self) -> dict[str, Any]:
        return {
            "fixed": list(self.spec.fixed),
            "nests": {name: [plain_value(a) for a in members] for name, members in self.nests},
            "cross": self.cross,
        }

    @classmethod
    def from_dict(cls, content: Mapping[str, Any]) -> NestingSpec:
        nests = tuple((name, tuple(members)) for name, members in content["nests"].items())
        return cls(ModelSpec.build(content["fixed"]), nests, bool(content.get("cross")))

    def describe(self) -> str:
        nests = {name: list(members) for name, members in self.nests}
        return f"{list(self.spec.fixed)}, nests={nests}"

    def __repr__(self) -> str:
        kind = "CrossNestedLogit" if self.cross else "NestedLogit"
        return f"{kind}({self.describe()})"


def nested_log_probabilities(
    utility: jax.Array,
    available: jax.Array,
    member: jax.Array,
    log_alpha: jax.Array,
    scale: jax.Array,
) -> jax.Array:
    """``log P`` ``(S, J)`` of a cross-nested logit (-inf where unavailable).

    Args:
        utility: ``(S, J)`` systematic utilities.
        available: ``(S, J)`` bool.
        member: ``(J, M)`` bool, alternative ``j`` belongs to nest ``m``.
        log_alpha: ``(J, M)`` log allocations (any finite value where not a member).
        scale: ``(M,)`` the nests' ``lambda > 0``.
    """
    inside = available[:, :, None] & member[None]  # (S, J, M)
    a = jnp.where(inside, (log_alpha[None] + utility[:, :, None]) / scale, -jnp.inf)
    # a nest with no available alternative drops out; the finite stand-in keeps its (zero)
    # gradient finite where log-sum-exp of nothing would be -inf
    occupied = inside.any(axis=1)  # (S, M)
    iv = jax.nn.logsumexp(jnp.where(occupied[:, None, :], a, 0.0), axis=1)
    iv = jnp.where(occupied, iv, 0.0)
    log_g = jax.nn.logsumexp(jnp.where(occupied, scale * iv, -jnp.inf), axis=1)  # (S,)
    term = a + ((scale - 1.0) * iv)[:, None, :]  # (S, J, M)
    # an unavailable alternative: every term -inf; a stand-in keeps the gradient finite
    term = jnp.where(available[:, :, None], term, 0.0)
    return jnp.where(available, jax.nn.logsumexp(term, axis=2) - log_g[:, None], -jnp.inf)


class NestedData(NamedTuple):
    """Device arrays of a nested-logit problem, in the grid shapes of
    :class:`~mixlogit.likelihood.LikelihoodData` (one situation per group, ``T = 1``), so that
    prediction and elasticities treat both alike."""

    Xf: jax.Array  # (S, 1, J, K)
    Xr: jax.Array  # (S, 1, J, 0)
    available: jax.Array  # (S, 1, J) bool
    chosen_index: jax.Array  # (S,) int
    unit_weights: jax.Array  # (S,)


@dataclass(frozen=True)
class NestedLikelihood:
    """Log-likelihood of a (cross-)nested logit: one unit per situation."""

    nesting: NestingSpec
    alternatives: tuple[Any, ...]
    num_units: int

    def _structure(self) -> tuple[np.ndarray, list[tuple[int, int]], list[tuple[int, int]]]:
        """Membership ``(J, M)`` (declared nests, then one per alternative in none), and the
        slots of the allocation parameters and of the remainder cells (1 minus the others)."""
        memberships = self.nesting.memberships
        nests = list(self.nesting.nest_names)
        unknown = [a for a in memberships if a not in self.alternatives]
        if unknown:
            raise ValueError(
                f"nest alternatives {unknown} are not alternatives of the data "
                f"{list(self.alternatives)}"
            )
        singletons = [a for a in self.alternatives if a not in memberships]
        member = np.zeros((len(self.alternatives), len(nests) + len(singletons)), dtype=bool)
        for j, alternative in enumerate(self.alternatives):
            for nest in memberships.get(alternative, []):
                member[j, nests.index(nest)] = True
        for m, alternative in enumerate(singletons):
            member[self.alternatives.index(alternative), len(nests) + m] = True
        parameters = [
            (self.alternatives.index(a), nests.index(nest)) for a, nest in self.nesting.allocations
        ]
        remainders = [
            (self.alternatives.index(a), nests.index(names[-1]))
            for a, names in memberships.items()
            if len(names) > 1
        ]
        return member, parameters, remainders

    def log_probabilities(self, theta: jax.Array, data: NestedData) -> jax.Array:
        """``(S, J)`` log choice probabilities at ``theta``."""
        member, parameters, remainders = self._structure()
        num_k = data.Xf.shape[-1]
        num_nests = len(self.nesting.nest_names)
        beta = theta[:num_k]
        scale = jnp.concatenate(
            [theta[num_k : num_k + num_nests], jnp.ones(member.shape[1] - num_nests, theta.dtype)]
        )
        alpha = jnp.asarray(member, theta.dtype)
        allocation = theta[num_k + num_nests :]
        # each alternative in k nests: k - 1 parameters, the last nest gets 1 minus their sum
        memberships = self.nesting.memberships
        p = 0
        for (j, last), names in zip(
            remainders, [n for n in memberships.values() if len(n) > 1], strict=True
        ):
            share = allocation[p : p + len(names) - 1]
            for q in range(len(names) - 1):
                alpha = alpha.at[parameters[p + q]].set(share[q])
            alpha = alpha.at[j, last].set(1.0 - jnp.sum(share))
            p += len(names) - 1
        log_alpha = jnp.where(member, jnp.log(jnp.clip(alpha, 1e-300, None)), 0.0)
        utility = jnp.einsum("sjk,k->sj", data.Xf[:, 0], beta)
        return nested_log_probabilities(
            utility, data.available[:, 0], jnp.asarray(member), log_alpha, scale
        )

    def unit_loglik(self, theta: jax.Array, data: NestedData) -> jax.Array:
        """``(S,)`` log-probability of each situation's chosen alternative."""
        log_p = self.log_probabilities(theta, data)
        return jnp.take_along_axis(log_p, data.chosen_index[:, None], axis=1)[:, 0]

    def loglik(self, theta: jax.Array, data: NestedData) -> jax.Array:
        return jnp.sum(data.unit_weights * self.unit_loglik(theta, data))

    def unit_scores(self, theta: jax.Array, data: NestedData) -> jax.Array:
        """``(S, P)`` gradient of each situation's log-likelihood (forward mode: P passes,
        where reverse mode would take one pass per situation)."""
        return jax.jacfwd(self.unit_loglik)(theta, data)

    def grid_probabilities(self, theta: jax.Array, data: NestedData, conditional: bool = False):
        """``(S, 1, J)`` probabilities (``conditional`` changes nothing: no random coefficients)."""
        return jnp.exp(self.log_probabilities(theta, data))[:, None, :]


def build_nested_problem(
    model, data: ChoiceData, *, check_identified: bool = True, **_: Any
) -> Problem:
    """The :class:`~mixlogit.estimation.problem.Problem` of a (cross-)nested logit on ``data``;
    draw options (``num_draws``, ``panel``, ...) are accepted and ignored (nothing is drawn)."""
    nesting = nesting_of(model)
    arrays = data.to_arrays(nesting.variables, check_identified=check_identified)
    num_s = arrays.X.shape[0]
    likelihood = NestedLikelihood(nesting, tuple(arrays.alternatives), num_s)
    likelihood._structure()  # names unknown alternatives now
    with x64():
        lik_data = NestedData(
            Xf=jnp.asarray(arrays.X[:, None], dtype=jnp.float64),
            Xr=jnp.zeros((num_s, 1, arrays.X.shape[1], 0), dtype=jnp.float64),
            available=jnp.asarray(arrays.available[:, None]),
            chosen_index=jnp.asarray(arrays.chosen),
            unit_weights=jnp.asarray(arrays.weights, dtype=jnp.float64),
        )
    cluster = arrays.panel if data.has_panel else np.arange(num_s)
    return exact_problem(
        model,
        arrays,
        likelihood,
        lik_data,
        unit=np.arange(num_s),
        cluster=cluster,
        names=nesting.parameter_names,
    )


def nesting_of(model) -> NestingSpec:
    """The :class:`NestingSpec` of a nested-logit estimator (or the spec itself)."""
    return model_part(model, "nesting", NestingSpec, "a nested logit")
