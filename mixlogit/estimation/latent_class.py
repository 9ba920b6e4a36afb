"""Classical latent-class logit: the specification, the log-likelihood and its problem.

Person ``n`` belongs to class ``c`` with probability ``pi_nc``, a logit in the person's
covariates ``z_n`` (class 0 the base: ``log pi_nc / pi_n0 = delta_c0 + z_n . delta_c``;
constant shares without covariates), and chooses by an MNL with the class's coefficients
``beta_c``. The likelihood of the person's choices is ``sum_c pi_nc prod_t P(y_nt | beta_c)``:
the class indicator is summed out exactly, as in the Bayesian route
(:func:`mixlogit.bayes.model.latent_class_person_loglik`, whose per-class person
log-likelihoods :func:`~mixlogit.bayes.model.nodes_person_loglik` this module reuses).

Parameters: ``<variable>.class<c>`` for every class ``c = 0..C-1`` (class-major; the labels
of the Bayesian route's ``class`` coordinate), then ``share.class<c>`` and
``<covariate>.class<c>`` for ``c = 1..C-1``. The fit
(:func:`mixlogit.estimation.fit.estimate_latent_class`) maximises directly (BFGS, the
classical optimiser, Hessian and robust covariance) and orders the classes by the
``order_by`` coefficient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mixlogit._choice_ops import choice_ops
from mixlogit.bayes.model import latent_class_person_loglik
from mixlogit.bayes.panel import panel_arrays
from mixlogit.data import ChoiceData
from mixlogit.estimation.problem import Problem, exact_problem, model_part
from mixlogit.estimation.start import variable_scales
from mixlogit.likelihood import x64
from mixlogit.spec import ModelSpec

__all__ = [
    "LatentClassData",
    "LatentClassLikelihood",
    "LatentClassSpec",
    "build_latent_class_problem",
    "latent_class_of",
    "membership_covariates",
    "relabel",
]


@dataclass(frozen=True)
class LatentClassSpec:
    """Coefficients, number of classes and membership covariates of a latent-class logit.

    Attributes:
        spec: the coefficients of each class (all fixed), a :class:`~mixlogit.spec.ModelSpec`.
        num_classes: ``C >= 2``.
        order_by: the variable whose class coefficients increase with the class label.
        membership: decision-maker columns of the class-membership logit.
    """

    spec: ModelSpec
    num_classes: int
    order_by: str
    membership: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "membership", tuple(str(z) for z in self.membership))
        if len(set(self.membership)) != len(self.membership):
            raise ValueError(f"membership covariates listed twice: {list(self.membership)}")

    @property
    def variables(self) -> tuple[str, ...]:
        return self.spec.variables

    @property
    def parameter_names(self) -> tuple[str, ...]:
        names = [f"{v}.class{c}" for c in range(self.num_classes) for v in self.variables]
        for c in range(1, self.num_classes):
            names += [f"share.class{c}", *(f"{z}.class{c}" for z in self.membership)]
        return tuple(names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "variables": list(self.variables),
            "num_classes": self.num_classes,
            "order_by": self.order_by,
            "membership": list(self.membership),
        }

    @classmethod
    def from_dict(cls, content: Mapping[str, Any]) -> LatentClassSpec:
        return cls(
            ModelSpec.build(content["variables"]),
            int(content["num_classes"]),
            str(content["order_by"]),
            tuple(content.get("membership") or ()),
        )

    def __repr__(self) -> str:
        return (
            f"LatentClassLogit(variables={list(self.variables)}, num_classes={self.num_classes}, "
            f"order_by={self.order_by!r}, membership={list(self.membership)})"
        )


def latent_class_of(model) -> LatentClassSpec:
    """The :class:`LatentClassSpec` of a ``LatentClassLogit`` (or the spec itself)."""
    return model_part(model, "latent", LatentClassSpec, "a latent-class logit")


def membership_covariates(data: ChoiceData, columns: Sequence[str]) -> np.ndarray:
    """``(P, Q)`` one value per decision maker (per situation without a panel) of each column
    (:meth:`ChoiceData.unit_values <mixlogit.data.ChoiceData.unit_values>`)."""
    return data.unit_values(columns, role="membership covariate")


class LatentClassData(NamedTuple):
    """Device arrays of a latent-class problem: the person-padded batch of the Bayesian route
    for the likelihood, and the grid shapes of :class:`~mixlogit.likelihood.LikelihoodData`
    (one situation per group) for prediction and elasticities."""

    batch: dict  # X (P, T, J, K), chosen (P, T), available (P, T, J), weights (P, T)
    covariates: jax.Array  # (P, 1 + Q): a constant, then the membership covariates
    Xf: jax.Array  # (S, 1, J, K)
    Xr: jax.Array  # (S, 1, J, 0)
    available: jax.Array  # (S, 1, J) bool
    unit: jax.Array  # (S,) decision maker of each situation
    unit_weights: jax.Array  # (P,) ones: the situation weights are inside the batch


@dataclass(frozen=True)
class LatentClassLikelihood:
    """Log-likelihood of a latent-class logit; units are decision makers."""

    latent: LatentClassSpec
    num_units: int

    def split(self, theta: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Class coefficients ``(C, K)`` and membership parameters ``(C - 1, 1 + Q)``."""
        num_c, num_k = self.latent.num_classes, len(self.latent.variables)
        beta = theta[: num_c * num_k].reshape(num_c, num_k)
        delta = theta[num_c * num_k :].reshape(num_c - 1, 1 + len(self.latent.membership))
        return beta, delta

    def log_shares(self, theta: jax.Array, data: LatentClassData) -> jax.Array:
        """``(P, C)`` log class-membership probabilities."""
        _, delta = self.split(theta)
        logits = data.covariates @ delta.T  # (P, C - 1)
        logits = jnp.concatenate([jnp.zeros((logits.shape[0], 1), theta.dtype), logits], axis=1)
        return jax.nn.log_softmax(logits, axis=1)

    def joint(self, theta: jax.Array, data: LatentClassData) -> tuple[jax.Array, jax.Array]:
        """Person log-likelihood ``(P,)`` and ``log pi_nc + log L_nc`` ``(P, C)``."""
        beta, _ = self.split(theta)
        shares = jnp.exp(self.log_shares(theta, data))
        params = {"beta_class": beta, "class_share": shares}
        return latent_class_person_loglik(choice_ops("jax"), params, data.batch)

    def unit_loglik(self, theta: jax.Array, data: LatentClassData) -> jax.Array:
        return self.joint(theta, data)[0]

    def loglik(self, theta: jax.Array, data: LatentClassData) -> jax.Array:
        return jnp.sum(self.unit_loglik(theta, data))

    def unit_scores(self, theta: jax.Array, data: LatentClassData) -> jax.Array:
        """``(P, Params)`` gradient of each person's log-likelihood (forward mode)."""
        return jax.jacfwd(self.unit_loglik)(theta, data)

    def class_posterior(self, theta: jax.Array, data: LatentClassData) -> jax.Array:
        """``(P, C)`` probability of each class given the person's choices."""
        return jax.nn.softmax(self.joint(theta, data)[1], axis=1)

    def grid_probabilities(self, theta: jax.Array, data: LatentClassData, conditional=False):
        """``(S, 1, J)`` choice probabilities: the class MNLs averaged with the membership
        shares, or with the class posteriors given the person's choices (``conditional``)."""
        beta, _ = self.split(theta)
        utility = jnp.einsum("sjk,ck->sjc", data.Xf[:, 0], beta)
        masked = jnp.where(data.available[:, 0, :, None], utility, -jnp.inf)
        probs = jax.nn.softmax(masked, axis=1)  # (S, J, C)
        if conditional:
            weights = self.class_posterior(theta, data)
        else:
            weights = jnp.exp(self.log_shares(theta, data))
        return jnp.einsum("sjc,sc->sj", probs, weights[data.unit])[:, None, :]


def build_latent_class_problem(
    model, data: ChoiceData, *, check_identified: bool = True, **_: Any
) -> Problem:
    """The :class:`~mixlogit.estimation.problem.Problem` of a latent-class logit on ``data``
    (one unit per decision maker; draw options are accepted and ignored)."""
    latent = latent_class_of(model)
    arrays = data.to_arrays(latent.variables, check_identified=check_identified)
    panel = panel_arrays(arrays)
    covariates = membership_covariates(data, latent.membership)
    num_s, num_j, _ = arrays.X.shape
    num_p = panel.num_panels
    likelihood = LatentClassLikelihood(latent, num_p)
    with x64():
        lik_data = LatentClassData(
            batch={
                "X": jnp.asarray(panel.X),
                "chosen": jnp.asarray(panel.chosen),
                "available": jnp.asarray(panel.available),
                "weights": jnp.asarray(panel.weights),
            },
            covariates=jnp.asarray(np.column_stack([np.ones(num_p), covariates])),
            Xf=jnp.asarray(arrays.X[:, None], dtype=jnp.float64),
            Xr=jnp.zeros((num_s, 1, num_j, 0), dtype=jnp.float64),
            available=jnp.asarray(arrays.available[:, None]),
            unit=jnp.asarray(arrays.panel),
            unit_weights=jnp.ones(num_p, dtype=jnp.float64),
        )
    # typical sizes: a coefficient by its variable, a membership covariate by its spread
    coefficient_scales = np.tile(1.0 / variable_scales(arrays), latent.num_classes)
    spread = covariates.std(axis=0) if covariates.size else np.zeros(0)
    covariate_scales = 1.0 / np.where(spread > 0, spread, 1.0)
    membership_scales = np.tile(np.concatenate([[1.0], covariate_scales]), latent.num_classes - 1)
    return exact_problem(
        model,
        arrays,
        likelihood,
        lik_data,
        unit=np.asarray(arrays.panel),
        cluster=np.arange(num_p),
        names=latent.parameter_names,
        scales=np.concatenate([coefficient_scales, membership_scales]),
    )


def relabel(latent: LatentClassSpec, theta: np.ndarray) -> np.ndarray:
    """``theta`` with the classes renumbered so that the ``order_by`` coefficient increases:
    the same likelihood, the membership logits re-based on the new class 0."""
    num_c, num_k = latent.num_classes, len(latent.variables)
    beta = theta[: num_c * num_k].reshape(num_c, num_k)
    delta = theta[num_c * num_k :].reshape(num_c - 1, -1)
    full = np.vstack([np.zeros((1, delta.shape[1])), delta])
    order = np.argsort(beta[:, latent.variables.index(latent.order_by)], kind="stable")
    rebased = full[order] - full[order[0]]
    return np.concatenate([beta[order].ravel(), rebased[1:].ravel()])
