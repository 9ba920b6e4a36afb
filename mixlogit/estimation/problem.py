"""One estimation problem: a model's arrays, draws and jitted likelihood functions.

Everything JAX runs inside ``jax.enable_x64(True)``; see :mod:`mixlogit.likelihood`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from mixlogit.arrays import ChoiceArrays
from mixlogit.data import ChoiceData
from mixlogit.draws import standardised_draws
from mixlogit.estimation.sharding import device_mesh, sharded_value_grad_scores
from mixlogit.likelihood import (
    Likelihood,
    ParameterLayout,
    make_likelihood_data,
    x64,
)
from mixlogit.spec import as_model_spec

__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "Problem",
    "build_problem",
    "default_chunk",
    "exact_problem",
    "unit_covariates",
    "units_are_panels",
]

#: default bound on the utilities held at once: S * J * chunk doubles (64 MiB)
DEFAULT_CHUNK_ELEMENTS = 2**23


@dataclass
class Problem:
    """A model, its data arrays, the draws and the jitted likelihood functions."""

    model: Any  # the estimator or ModelSpec that was fitted
    arrays: ChoiceArrays
    likelihood: Any  # Likelihood (a nested logit: NestedLikelihood)
    data: Any  # LikelihoodData (a nested logit: NestedData, with the same grid fields)
    positions: np.ndarray  # (S, 2) grid position (group, slot) of each situation
    unit: np.ndarray  # (S,) unit of each situation in original order
    cluster: np.ndarray  # (U,) cluster (panel) of each unit, for robust errors
    num_clusters: int
    num_draws: int
    value_and_grad: Any
    loglik: Any
    unit_loglik: Any
    unit_scores: Any = None
    #: the parameters when they are not the model specification's (nested logit, latent
    #: class); ``None``: ``ModelSpec.parameter_names``
    names: tuple[str, ...] | None = None
    #: ``(P,)`` typical size of each parameter when ``names`` is set (None: the
    #: specification's coefficients by their variables, 1 for the others)
    scales: np.ndarray | None = None

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return as_model_spec(self.model).parameter_names if self.names is None else self.names


def units_are_panels(model, data: ChoiceData, panel: bool) -> bool:
    """Whether the likelihood's units are decision makers (a panel mixed logit: one draw per
    person) rather than situations."""
    return bool(as_model_spec(model).random) and panel and data.has_panel


def unit_covariates(model, data: ChoiceData, panel: bool) -> np.ndarray:
    """``(U, Q)`` mixing covariates of each unit (:attr:`ModelSpec.covariates`; ``Q = 0``
    without them): one row per decision maker of a panel mixed logit, else per situation.

    Raises:
        ChoiceDataError: a covariate that is missing, not numeric or finite, or that varies
            within a unit.
    """
    spec = as_model_spec(model)
    by_panel = units_are_panels(model, data, panel)
    if not spec.covariates:
        return np.zeros((data.num_panels if by_panel else data.num_situations, 0))
    return data.unit_values(spec.covariates, by_panel=by_panel, role="mixing covariate")


def _units(
    model, data: ChoiceData, arrays: ChoiceArrays, panel: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Unit of each situation, unit weights and cluster of each unit."""
    num_s = arrays.X.shape[0]
    if units_are_panels(model, data, panel):
        unit = arrays.panel
        num_units = arrays.num_panels
        weights = np.zeros(num_units)
        np.maximum.at(weights, unit, arrays.weights)
        low = np.full(num_units, np.inf)
        np.minimum.at(low, unit, arrays.weights)
        varying = np.flatnonzero(low != weights)
        if len(varying):
            raise ValueError(
                f"weights vary within decision makers {data.panel_ids[varying][:5].tolist()}; "
                "a panel mixed logit needs one weight per decision maker"
            )
        return unit, weights, np.arange(num_units), num_units
    unit = np.arange(num_s)
    cluster = arrays.panel if data.has_panel else unit
    num_clusters = arrays.num_panels if data.has_panel else num_s
    return unit, arrays.weights.copy(), cluster, num_clusters


def build_problem(
    model,
    data: ChoiceData,
    *,
    standard: np.ndarray | None = None,
    log_weights: np.ndarray | None = None,
    num_draws: int = 1000,
    draws: str = "halton",
    seed: int | None = 0,
    panel: bool = True,
    chunk_size: int | None = None,
    check_identified: bool = True,
    halton_options: Mapping[str, Any] | None = None,
    devices: int | Sequence[jax.Device] | None = None,
) -> Problem:
    """Arrays, draws (unless ``standard`` nodes are given) and jitted likelihood functions.

    Args:
        model: an estimator or :class:`~mixlogit.spec.ModelSpec`.
        standard, log_weights: standardised nodes ``(U or 1, R, Kr)`` and their log weights
            ``(R,)`` (quadrature); default: ``num_draws`` simulation draws of type ``draws``.
        panel: one coefficient draw per decision maker when ``data`` has a panel.
        chunk_size: draws per chunk (default from :data:`DEFAULT_CHUNK_ELEMENTS`).
        check_identified: let ``data.to_arrays`` reject unidentified variables.
        halton_options: ``{"skip", "primes"}`` of Halton draws
            (:func:`~mixlogit.draws.check_halton_options`).
        devices: split the decision makers between these devices (a count or the devices,
            :func:`~mixlogit.estimation.sharding.device_mesh`) for the value, gradient and
            scores; default: the default device.

    Raises:
        ValueError: ``devices`` for data the blocked layout does not take (panels so
            unbalanced that every situation is its own group), or more devices than there are.
    """
    spec = as_model_spec(model)
    layout = ParameterLayout.from_spec(spec)
    arrays = data.to_arrays(spec.variables, check_identified=check_identified)
    unit, unit_weights, cluster, num_clusters = _units(model, data, arrays, panel)
    num_units = len(unit_weights)
    covariates = unit_covariates(model, data, panel)
    if standard is None:
        standard, log_weights = standardised_draws(
            spec, num_units, num_draws, draws, seed, halton_options=halton_options
        )
    total_draws = standard.shape[1]
    chunk = default_chunk(arrays, total_draws, chunk_size)
    mesh = device_mesh(devices)
    with x64():
        lik_data, positions, gathered = make_likelihood_data(
            arrays,
            layout,
            unit,
            unit_weights,
            standard,
            log_weights,
            chunk,
            covariates=covariates,
            mesh=mesh,
        )
        if mesh is not None and lik_data.blocks is None:
            raise ValueError(
                f"devices={devices!r}: the panels are too unbalanced for the blocked layout "
                f"that is split between devices ({num_units} units, longest panel "
                f"{int(np.bincount(unit).max())} of {len(unit)} situations); fit on one device"
            )
        likelihood = Likelihood(layout, num_units, gathered)
        blocks = lik_data.blocks
        shared_nodes = blocks is not None and blocks.standard.shape[0] != blocks.dX.shape[0]
        loglik, unit_loglik, neg_value_and_grad, unit_scores = _jitted(
            likelihood, blocks is not None, mesh, shared_nodes
        )
    return Problem(
        model=model,
        arrays=arrays,
        likelihood=likelihood,
        data=lik_data,
        positions=positions,
        unit=unit,
        cluster=cluster,
        num_clusters=num_clusters,
        num_draws=total_draws,
        value_and_grad=neg_value_and_grad,
        loglik=loglik,
        unit_loglik=unit_loglik,
        unit_scores=unit_scores,
    )


@functools.lru_cache(maxsize=16)
def _jitted(likelihood: Likelihood, blocked: bool, mesh: Mesh | None, shared_nodes: bool):
    """``(loglik, unit_loglik, neg_value_and_grad, unit_scores)`` of ``likelihood``, jitted.

    One set per equal likelihood (same layout, units and layout kind): JAX keeps compiled
    executables per jitted function, so refits of a model on arrays of the same shapes (the
    simulation-noise diagnostic, a bootstrap replicate, a notebook cell run again) reuse them
    instead of compiling again.
    """
    loglik = jax.jit(likelihood.loglik)
    unit_loglik = jax.jit(likelihood.unit_loglik)
    if blocked:
        # one executable for the optimiser, the Hessian and the scores: the unit scores
        # cost nothing extra in the blocked layout, and each separate jit is a compilation
        if mesh is None:
            fused = jax.jit(likelihood.value_grad_scores)
        else:
            fused = jax.jit(sharded_value_grad_scores(likelihood, mesh, shared_nodes))

        def neg_value_and_grad(t, d):
            value, grad, _ = fused(t, d)
            return -value, -grad

        def unit_scores(t, d):
            return fused(t, d)[2]

    else:
        neg_value_and_grad = jax.jit(
            lambda t, d: jax.tree.map(jnp.negative, likelihood.value_and_grad(t, d))
        )
        unit_scores = jax.jit(likelihood.unit_scores)
    return loglik, unit_loglik, neg_value_and_grad, unit_scores


def default_chunk(arrays: ChoiceArrays, num_draws: int, chunk_size: int | None) -> int:
    """``chunk_size`` (checked), or draws per chunk keeping ``S * J * chunk`` within
    :data:`DEFAULT_CHUNK_ELEMENTS` with chunks of equal size."""
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        return chunk_size
    per_draw = arrays.X.shape[0] * max(arrays.X.shape[1], 1)
    max_chunk = max(1, DEFAULT_CHUNK_ELEMENTS // per_draw)
    num_chunks = -(-num_draws // max_chunk)
    return -(-num_draws // num_chunks)


def model_part(model, attribute: str, kind: type, what: str):
    """``model`` itself when it is a ``kind``, else its ``attribute`` (the structure an estimator
    carries: ``nesting``, ``latent``).

    Raises:
        TypeError: ``model`` neither is nor carries a ``kind`` (it is not ``what``).
    """
    if isinstance(model, kind):
        return model
    part = getattr(model, attribute, None)
    if not isinstance(part, kind):
        raise TypeError(f"{type(model).__name__} is not {what}")
    return part


def require_choice_data(data: Any) -> ChoiceData:
    """``data`` when it is a :class:`ChoiceData` with observed choices (fitting needs them).

    Raises:
        TypeError: not a ``ChoiceData``; ChoiceDataError: scenario data without choices.
    """
    if not isinstance(data, ChoiceData):
        raise TypeError(f"data must be a ChoiceData, got {type(data).__name__}")
    data.require_choices("fitting a model")
    return data


def exact_problem(
    model,
    arrays: ChoiceArrays,
    likelihood: Any,
    data: Any,
    *,
    unit: np.ndarray,
    cluster: np.ndarray,
    names: tuple[str, ...],
    scales: np.ndarray | None = None,
) -> Problem:
    """The :class:`Problem` of a model whose likelihood needs no draws (nested logit, latent
    class): ``likelihood`` has ``loglik``, ``unit_loglik`` and ``unit_scores`` of
    ``(theta, data)``, ``data`` the grid fields ``Xf``, ``Xr``, ``available`` (one situation
    per group) and ``unit_weights``; ``unit (S,)`` is each situation's unit and ``cluster
    (U,)`` each unit's cluster for the robust covariance."""
    with x64():

        def neg_value_and_grad(t, d):
            value, grad = jax.value_and_grad(likelihood.loglik)(t, d)
            return -value, -grad

        value_and_grad = jax.jit(neg_value_and_grad)
        loglik = jax.jit(likelihood.loglik)
        unit_loglik = jax.jit(likelihood.unit_loglik)
        unit_scores = jax.jit(likelihood.unit_scores)
    num_s = arrays.X.shape[0]
    return Problem(
        model=model,
        arrays=arrays,
        likelihood=likelihood,
        data=data,
        positions=np.stack([np.arange(num_s), np.zeros(num_s, dtype=np.int64)], axis=1),
        unit=np.asarray(unit),
        cluster=np.asarray(cluster),
        num_clusters=int(np.max(cluster, initial=-1)) + 1,
        num_draws=0,
        value_and_grad=value_and_grad,
        loglik=loglik,
        unit_loglik=unit_loglik,
        unit_scores=unit_scores,
        names=names,
        scales=scales,
    )
