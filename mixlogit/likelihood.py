"""Simulated / quadrature log-likelihood of logit models with random coefficients (JAX, float64).

All JAX work in :mod:`mixlogit` estimation runs inside ``jax.enable_x64(True)`` (a context,
so importing or using mixlogit never flips the global ``jax_enable_x64`` flag for other code);
arrays built here are float64.

Layout of the parameter vector ``theta`` (see :class:`ParameterLayout`):
``[fixed coefficients | first parameter of each random coefficient | second parameter of each
independent random coefficient | lower Cholesky factor of the correlated block, row by row |
mean shifts | log-spread shifts]`` (the shifts: heterogeneity in means and variances by
decision-maker covariates, :class:`~mixlogit.spec.ModelSpec`).

The log-likelihood of unit ``u`` (a decision maker with a panel, else a situation) is
``log sum_r w_r prod_{s in u} P_s(beta_ur)`` with ``w_r = 1/R`` for simulation draws or the
quadrature weights. The unit log-likelihoods and scores are accumulated over chunks of draws
(:func:`chunk_draws`, a running log-sum-exp in ``lax.scan``), so their memory is bounded by
``S * J * chunk`` doubles whatever the number of draws; the unit-blocked layout
(:class:`PanelBlocks`) bounds it by blocks of units instead. Only :meth:`Likelihood.draw_terms`
(behind :meth:`~Likelihood.draw_loglik` and the unblocked :meth:`~Likelihood.value_and_grad`)
holds the terms of all ``(U, R)`` draws at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mixlogit._choice_ops import choice_ops
from mixlogit.arrays import ChoiceArrays
from mixlogit.mixing import coefficient_from_standard
from mixlogit.spec import CoefficientSpec, ModelSpec, RandomCoefficient

__all__ = [
    "Likelihood",
    "LikelihoodData",
    "PanelBlocks",
    "ParameterLayout",
    "make_likelihood_data",
    "make_panel_blocks",
    "x64",
]


def x64():
    """Context enabling float64 in JAX for the duration of an estimation call."""
    return jax.enable_x64(True)


@dataclass(frozen=True)
class ParameterLayout:
    """Maps the flat parameter vector to fixed and random coefficients."""

    fixed: tuple[str, ...]
    random: tuple[str, ...]
    mixing: tuple[RandomCoefficient, ...]
    correlated: tuple[str, ...] = ()
    mean_covariates: tuple[tuple[str, tuple[str, ...]], ...] = ()
    sd_covariates: tuple[tuple[str, tuple[str, ...]], ...] = ()
    wtp_space: str | None = None
    names: tuple[str, ...] = field(init=False)
    covariates: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        coefficients = [CoefficientSpec(n) for n in self.fixed] + [
            CoefficientSpec(n, m.distribution, m.sign)
            for n, m in zip(self.random, self.mixing, strict=True)
        ]
        spec = ModelSpec(
            tuple(coefficients),
            self.correlated,
            self.mean_covariates,
            self.sd_covariates,
            self.wtp_space,
        )
        object.__setattr__(self, "mean_covariates", spec.mean_covariates)
        object.__setattr__(self, "sd_covariates", spec.sd_covariates)
        object.__setattr__(self, "names", spec.parameter_names)
        object.__setattr__(self, "covariates", spec.covariates)

    @classmethod
    def from_spec(cls, spec) -> ParameterLayout:
        """Layout of a :class:`~mixlogit.spec.ModelSpec` (or anything with ``fixed``,
        ``random`` and ``correlated``, and optionally ``mean_covariates`` and
        ``sd_covariates``)."""
        return cls(
            fixed=tuple(spec.fixed),
            random=tuple(spec.random),
            mixing=tuple(spec.random.values()),
            correlated=tuple(spec.correlated),
            mean_covariates=tuple(getattr(spec, "mean_covariates", ())),
            sd_covariates=tuple(getattr(spec, "sd_covariates", ())),
            wtp_space=getattr(spec, "wtp_space", None),
        )

    @property
    def num_fixed(self) -> int:
        return len(self.fixed)

    @property
    def num_random(self) -> int:
        return len(self.random)

    @property
    def num_params(self) -> int:
        return len(self.names)

    @property
    def independent_index(self) -> np.ndarray:
        return np.array([k for k, n in enumerate(self.random) if n not in self.correlated], int)

    @property
    def correlated_index(self) -> np.ndarray:
        return np.array([self.random.index(n) for n in self.correlated], dtype=int)

    @property
    def direct_variables(self) -> tuple[str, ...]:
        """Variables whose coefficient is a parameter itself (``Xf`` of the likelihood data):
        the fixed ones in preference space, none in WTP space."""
        return self.fixed if self.wtp_space is None else ()

    @property
    def drawn_variables(self) -> tuple[str, ...]:
        """Variables whose coefficient is computed per draw (``Xr``): the random ones in
        preference space; in WTP space all of them (each is ``-beta_p w_k``)."""
        return self.random if self.wtp_space is None else self.fixed + self.random

    @property
    def num_covariates(self) -> int:
        return len(self.covariates)

    @property
    def shift_start(self) -> int:
        """Position in ``theta`` of the first mean shift (after the Cholesky factor)."""
        m = len(self.correlated)
        return self.num_fixed + self.num_random + len(self.independent_index) + m * (m + 1) // 2

    def cholesky(self, theta: jax.Array) -> jax.Array:
        """Lower Cholesky factor ``(m, m)`` of the correlated block's underlying normals."""
        m = len(self.correlated)
        start = self.num_fixed + self.num_random + len(self.independent_index)
        rows, cols = np.tril_indices(m)
        return jnp.zeros((m, m), theta.dtype).at[rows, cols].set(theta[start : self.shift_start])

    def _shift_matrix(self, theta: jax.Array, pairs, start: int) -> tuple[jax.Array, int]:
        """``(Kr, Q)`` coefficients of the covariates in ``pairs`` (zeros elsewhere) read from
        ``theta[start:]``, and the position after them."""
        rows, cols = [], []
        for name, columns in pairs:
            rows += [self.random.index(name)] * len(columns)
            cols += [self.covariates.index(c) for c in columns]
        matrix = jnp.zeros((self.num_random, self.num_covariates), theta.dtype)
        if rows:
            matrix = matrix.at[np.array(rows), np.array(cols)].set(theta[start : start + len(rows)])
        return matrix, start + len(rows)

    def covariate_effects(
        self, theta: jax.Array, covariates: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Per-unit location shift and spread factor ``(..., Kr)`` each from covariates
        ``(..., Q)``: ``z . delta_k`` and ``exp(z . gamma_k)`` (0 and 1 without covariates)."""
        delta, end = self._shift_matrix(theta, self.mean_covariates, self.shift_start)
        log_factor, _ = self._shift_matrix(theta, self.sd_covariates, end)
        return covariates @ delta.T, jnp.exp(covariates @ log_factor.T)

    def random_coefficients(
        self, theta: jax.Array, standard: jax.Array, covariates: jax.Array | None = None
    ) -> jax.Array:
        """Coefficients ``(..., R, Kr)`` from standardised draws ``standard`` ``(..., R, Kr)``.

        With covariates in the layout, ``covariates`` ``(U, Q)`` gives each unit's row (the
        leading axis of ``standard``, ``U`` or 1 for nodes shared by all units): the result is
        then ``(U, R, Kr)``. Without them ``covariates`` is ignored.
        """
        ops = choice_ops("jax")
        kf, kr = self.num_fixed, self.num_random
        first = theta[kf : kf + kr]
        independent = self.independent_index
        second = theta[kf + kr : kf + kr + len(independent)]
        shift = factor = None
        if self.num_covariates:
            if covariates is None:
                raise ValueError(
                    f"the model's mixing distribution depends on covariates {self.covariates}; "
                    "pass their (U, Q) values"
                )
            shift, factor = self.covariate_effects(theta, covariates)
            shift, factor = shift[..., None, :], factor[..., None, :]  # over the draws

        def located(k: int) -> jax.Array:
            return first[k] if shift is None else first[k] + shift[..., k]

        def spread(value: jax.Array, k: int) -> jax.Array:
            return value if factor is None else value * factor[..., k]

        columns: list[jax.Array | None] = [None] * kr
        for pos, k in enumerate(independent):
            mixing = self.mixing[k]
            if mixing.distribution == "gamma":
                # gamma (log shape, log scale): the location shift is on the log scale
                a, b = first[k], second[pos] if shift is None else second[pos] + shift[..., k]
            else:
                a, b = located(k), spread(second[pos], k)
            columns[k] = coefficient_from_standard(
                ops, mixing.distribution, a, b, standard[..., k], mixing.sign
            )
        if len(self.correlated):
            idx = self.correlated_index
            chol = self.cholesky(theta)
            correlated = standard[..., idx] @ chol.T
            for pos, k in enumerate(idx):
                mixing = self.mixing[k]
                value = located(k) + spread(correlated[..., pos], k)
                if mixing.distribution == "lognormal":
                    value = jnp.exp(value)
                columns[k] = value if mixing.sign == 1 else -value
        if kr == 0:
            return jnp.zeros((*standard.shape[:-1], 0), theta.dtype)
        return jnp.stack(columns, axis=-1)

    def coefficients(
        self, theta: jax.Array, standard: jax.Array, covariates: jax.Array | None = None
    ) -> jax.Array:
        """Utility coefficients of every variable ``(..., R, Kf + Kr)``, fixed ones first, from
        standardised draws ``(..., R, Kr)`` (and covariates, as :meth:`random_coefficients`).

        In WTP space the parameters (fixed and drawn) are the WTPs ``w_k`` and the cost
        coefficient ``beta_p``; the utility coefficients are ``beta_k = -beta_p w_k``.
        """
        random = self.random_coefficients(theta, standard, covariates)
        fixed = jnp.broadcast_to(theta[: self.num_fixed], (*random.shape[:-1], self.num_fixed))
        raw = jnp.concatenate([fixed, random], axis=-1)
        if self.wtp_space is None:
            return raw
        cost = (self.fixed + self.random).index(self.wtp_space)
        is_cost = np.arange(raw.shape[-1]) == cost
        return raw * jnp.where(is_cost, 1.0, -raw[..., cost : cost + 1])

    def drawn_coefficients(
        self, theta: jax.Array, standard: jax.Array, covariates: jax.Array | None = None
    ) -> jax.Array:
        """Coefficients of :attr:`drawn_variables` ``(..., R, len(drawn_variables))``."""
        if self.wtp_space is None:
            return self.random_coefficients(theta, standard, covariates)
        return self.coefficients(theta, standard, covariates)


class LikelihoodData(NamedTuple):
    """Device arrays of one estimation problem on a ``(G, T)`` grid of situations.

    In the *grid* layout a group is a unit (decision maker) and ``T`` the largest number of
    situations of a unit; missing situations are padding with a single available alternative,
    so their log-probability is exactly 0. In the *gathered* layout (very unbalanced panels)
    every situation is its own group (``T = 1``) and ``group_unit`` maps it to its unit.
    """

    Xf: jax.Array  # (G, T, J, Kf)
    Xr: jax.Array  # (G, T, J, Kr)
    available: jax.Array  # (G, T, J) bool
    chosen: jax.Array  # (G, T, J) float one-hot of the chosen alternative
    group_unit: jax.Array  # (G,) int, sorted
    unit_weights: jax.Array  # (U,)
    standard: jax.Array  # (C, U or 1, Rc, Kr) standardised draws / nodes, chunked
    log_draw_weights: jax.Array  # (C, Rc) log w_r (-inf for padding)
    blocks: PanelBlocks | None = None  # unit-blocked layout for the fast value and gradient
    covariates: jax.Array | None = None  # (U, Q) mixing covariates of each unit (Q may be 0)


class PanelBlocks(NamedTuple):
    """Units in blocks of ``B`` with all draws, for :meth:`Likelihood.value_and_grad`.

    Each situation is stored as the attribute differences ``x_j - x_chosen`` of its ``J - 1``
    non-chosen alternatives, so ``log P_chosen = -log(1 + sum_j exp(dx_j . beta))``: no
    chosen-utility gather and a quarter fewer exponentials than the softmax. Alternatives are
    the leading axis so the sum over them is a sum of ``J - 1`` arrays (a reduction over a
    middle axis is slow on XLA CPU), and blocks of a few units keep every intermediate in cache.
    Padding units have weight 0; padding situations and alternatives have availability 0.
    """

    dX: jax.Array  # (NB, J-1, B, T, Kf + Kr) attribute differences to the chosen alternative
    available: jax.Array  # (NB, J-1, B, T) 1.0 where the non-chosen alternative is available
    standard: jax.Array  # (NB, B, R, Kr) draws of each unit, or (1, 1, R, Kr) shared nodes
    unit_weights: jax.Array  # (NB, B)
    log_draw_weights: jax.Array  # (R,)
    covariates: jax.Array | None = None  # (NB, B, Q) mixing covariates of each unit


def chunk_draws(
    standard: np.ndarray, log_weights: np.ndarray, chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``(U, R, Kr)`` draws into ``(C, U, chunk, Kr)`` padding with zero-weight draws."""
    num_units, num_draws, dim = standard.shape
    chunk = max(1, min(chunk, num_draws))
    num_chunks = -(-num_draws // chunk)
    pad = num_chunks * chunk - num_draws
    if pad:
        # padding draws get weight 0; 0.5 is a valid uniform and normal value for every mixing
        standard = np.concatenate([standard, np.full((num_units, pad, dim), 0.5)], axis=1)
        log_weights = np.concatenate([log_weights, np.full(pad, -np.inf)])
    standard = standard.reshape(num_units, num_chunks, chunk, dim).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(standard), log_weights.reshape(num_chunks, chunk)


def make_likelihood_data(
    arrays: ChoiceArrays,
    layout: ParameterLayout,
    unit: np.ndarray,
    unit_weights: np.ndarray,
    standard: np.ndarray,
    log_draw_weights: np.ndarray,
    chunk: int,
    *,
    max_padding: float = 0.3,
    covariates: np.ndarray | None = None,
    mesh: Mesh | None = None,
) -> tuple[LikelihoodData, np.ndarray, bool]:
    """Device data and the ``(S, 2)`` grid position ``(g, t)`` of every situation.

    ``covariates`` ``(U, Q)``: each unit's mixing covariates (required when the layout has
    any, see :class:`~mixlogit.spec.ModelSpec`). ``mesh``: the blocked layout's units are
    split between its devices (:func:`make_panel_blocks`).

    Returns:
        data, positions, gathered (True for the one-situation-per-group layout, used when the
        grid would pad more than ``max_padding`` of the situations).
    """
    num_s, num_j, _ = arrays.X.shape
    num_units = len(unit_weights)
    order = np.argsort(unit, kind="stable")
    counts = np.bincount(unit, minlength=num_units)
    t_max = int(counts.max())
    gathered = num_units * t_max > (1.0 + max_padding) * num_s
    positions = np.empty((num_s, 2), dtype=np.int64)
    if gathered:
        positions[order, 0] = np.arange(num_s)
        positions[:, 1] = 0
        num_groups, t_max = num_s, 1
        group_unit = unit[order]
    else:
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        sorted_unit = unit[order]
        positions[order, 0] = sorted_unit
        positions[order, 1] = np.arange(num_s) - starts[sorted_unit]
        num_groups = num_units
        group_unit = np.arange(num_units)
    names = list(arrays.variable_names)
    fixed_idx = [names.index(n) for n in layout.direct_variables]
    random_idx = [names.index(n) for n in layout.drawn_variables]
    X = np.zeros((num_groups, t_max, num_j, arrays.X.shape[2]))
    X[positions[:, 0], positions[:, 1]] = arrays.X
    available = np.zeros((num_groups, t_max, num_j), dtype=bool)
    available[..., 0] = True  # padding situations: one alternative, log-probability 0
    available[positions[:, 0], positions[:, 1]] = arrays.available
    chosen = np.zeros((num_groups, t_max, num_j))
    chosen[..., 0] = 1.0
    chosen[positions[:, 0], positions[:, 1]] = np.eye(num_j)[arrays.chosen]
    standard_chunks, log_w = chunk_draws(standard, log_draw_weights, chunk)
    if covariates is None:
        covariates = np.zeros((num_units, 0))
    covariates = np.asarray(covariates, dtype=np.float64)
    if covariates.shape != (num_units, layout.num_covariates):
        raise ValueError(
            f"covariates must be (units, covariates) = ({num_units}, {layout.num_covariates}) "
            f"for {layout.covariates}; got {covariates.shape}"
        )
    blocks = None
    if not gathered:
        blocks = make_panel_blocks(
            X[..., fixed_idx + random_idx],
            available,
            chosen,
            unit_weights,
            standard,
            log_draw_weights,
            covariates=covariates,
            mesh=mesh,
        )
    data = LikelihoodData(
        Xf=jnp.asarray(X[..., fixed_idx], dtype=jnp.float64),
        Xr=jnp.asarray(X[..., random_idx], dtype=jnp.float64),
        available=jnp.asarray(available),
        chosen=jnp.asarray(chosen, dtype=jnp.float64),
        group_unit=jnp.asarray(group_unit),
        unit_weights=jnp.asarray(unit_weights, dtype=jnp.float64),
        standard=jnp.asarray(standard_chunks, dtype=jnp.float64),
        log_draw_weights=jnp.asarray(log_w, dtype=jnp.float64),
        blocks=blocks,
        covariates=jnp.asarray(covariates),
    )
    return data, positions, bool(gathered)


# elements (B * T * (J - 1) * R) per block: ~0.5 M doubles keeps a block's arrays in cache
BLOCK_ELEMENTS = 2**19


def make_panel_blocks(
    X: np.ndarray,
    available: np.ndarray,
    chosen: np.ndarray,
    unit_weights: np.ndarray,
    standard: np.ndarray,
    log_draw_weights: np.ndarray,
    block_size: int | None = None,
    covariates: np.ndarray | None = None,
    mesh: Mesh | None = None,
) -> PanelBlocks:
    """Blocked difference layout from the ``(U, T, J, K)`` grid (see :class:`PanelBlocks`).

    With a one-axis ``mesh`` the blocks (padded with empty ones to a multiple of its size)
    are placed evenly on its devices, each device holding ``1 / mesh.size`` of every per-unit
    array; shared nodes and the draw weights are replicated
    (:mod:`mixlogit.estimation.sharding`).

    Args:
        X: ``(U, T, J, Kf + Kr)`` attributes on the unit grid (padding situations included).
        available: ``(U, T, J)`` bool. chosen: ``(U, T, J)`` one-hot (float or bool).
        unit_weights: ``(U,)``. standard: ``(U or 1, R, Kr)`` draws; log_draw_weights ``(R,)``.
        block_size: units per block (default from :data:`BLOCK_ELEMENTS`).
        covariates: ``(U, Q)`` mixing covariates of each unit (default: none, ``Q = 0``).
    """
    num_u, num_t, num_j = X.shape[:3]
    is_chosen = np.asarray(chosen) > 0.5
    x_chosen = np.sum(np.where(is_chosen[..., None], X, 0.0), axis=2, keepdims=True)
    # non-chosen alternatives first (stable), keep J - 1 of them
    order = np.argsort(is_chosen, axis=2, kind="stable")[..., : max(num_j - 1, 1)]
    other_available = np.take_along_axis(available & ~is_chosen, order, axis=2)
    dX = np.take_along_axis(X - x_chosen, order[..., None], axis=2)
    dX = np.where(other_available[..., None], dX, 0.0)
    num_draws = standard.shape[1]
    if block_size is None:
        per_unit = num_t * max(num_j - 1, 1) * num_draws
        block_size = max(1, min(num_u, BLOCK_ELEMENTS // max(per_unit, 1)))
    num_blocks = -(-num_u // block_size)
    if mesh is not None:
        num_blocks = -(-num_blocks // mesh.size) * mesh.size
    pad = num_blocks * block_size - num_u

    def blocked(a: np.ndarray, axis: int = 0) -> np.ndarray:
        widths = [(0, 0)] * a.ndim
        widths[axis] = (0, pad)
        a = np.pad(a, widths)
        return a.reshape(num_blocks, block_size, *a.shape[1:])

    dX = blocked(dX).transpose(0, 3, 1, 2, 4)  # (NB, J-1, B, T, K)
    other_available = blocked(other_available.astype(np.float64)).transpose(0, 3, 1, 2)
    shared = standard.shape[0] == 1
    if shared:
        standard_blocks = standard[None]  # shared nodes, not copied per block (NB * R * Kr)
    else:
        standard_blocks = blocked(standard)
    host = PanelBlocks(
        dX=dX,
        available=other_available,
        standard=standard_blocks,
        unit_weights=blocked(np.asarray(unit_weights, np.float64)),
        log_draw_weights=np.asarray(log_draw_weights),
        covariates=blocked(
            np.zeros((num_u, 0)) if covariates is None else np.asarray(covariates, float)
        ),
    )
    placements = [None] * len(host)
    if mesh is not None:
        by_unit = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
        replicated = NamedSharding(mesh, PartitionSpec())
        placements = [
            replicated if name == "log_draw_weights" or (name == "standard" and shared) else by_unit
            for name in PanelBlocks._fields
        ]
    return PanelBlocks(
        *(
            jax.device_put(np.ascontiguousarray(a, dtype=np.float64), placement)
            for a, placement in zip(host, placements, strict=True)
        )
    )


@dataclass(frozen=True)
class Likelihood:
    """Functions of ``(theta, data)`` for one parameter layout (jit them at the call site)."""

    layout: ParameterLayout
    num_units: int
    gathered: bool = False

    def _utilities(self, theta, data, standard_chunk):
        """Utilities ``(G, T, J, Rc)`` for the draws of one chunk."""
        kf = len(self.layout.direct_variables)
        utility = jnp.einsum("gtjk,k->gtj", data.Xf, theta[:kf])[..., None]
        if not self.layout.drawn_variables:
            return utility
        # (U or 1, Rc, Kr)
        betas = self.layout.drawn_coefficients(theta, standard_chunk, data.covariates)
        if self.gathered and betas.shape[0] > 1:
            betas = betas[data.group_unit]
        # a sum of broadcast products (Kr is small) fuses into one loop, unlike a batched dot
        for k in range(len(self.layout.drawn_variables)):
            utility = utility + data.Xr[..., k, None] * betas[:, None, None, :, k]
        return utility

    def _chunk_terms(self, theta, data, standard_chunk, with_derivatives: bool = True):
        """Per-draw unit log-likelihoods ``z`` ``(U, Rc)`` and their derivatives.

        Returns ``z``, ``d z / d beta_fixed`` ``(U, Rc, Kf)`` and ``d z / d beta_random``
        ``(U, Rc, Kr)`` (analytic logit derivatives: ``sum_tj (y_tj - P_tj) x_tj``).
        """
        utility = self._utilities(theta, data, standard_chunk)  # (G, T, J, Rc)
        masked = utility + jnp.where(data.available, 0.0, -jnp.inf)[..., None]
        peak = jnp.max(masked, axis=2, keepdims=True)
        expo = jnp.exp(masked - peak)
        total = jnp.sum(expo, axis=2, keepdims=True)
        log_denominator = jnp.log(total[:, :, 0]) + peak[:, :, 0]
        chosen_utility = jnp.sum(data.chosen[..., None] * utility, axis=2)
        z = jnp.sum(chosen_utility - log_denominator, axis=1)  # (G, Rc)
        if not with_derivatives:
            if self.gathered:
                z = jax.ops.segment_sum(
                    z, data.group_unit, num_segments=self.num_units, indices_are_sorted=True
                )
            return z, None, None
        residual = data.chosen[..., None] - expo / total  # (G, T, J, Rc)
        num_g, num_t, num_j, num_r = residual.shape
        # contract over (t, j) with draws as rows: a batched matmul on the minor axis is far
        # faster on CPU than a reduction over middle axes
        residual = jnp.swapaxes(residual.reshape(num_g, num_t * num_j, num_r), 1, 2)
        grad_fixed = jnp.matmul(residual, data.Xf.reshape(num_g, num_t * num_j, -1))
        grad_random = jnp.matmul(residual, data.Xr.reshape(num_g, num_t * num_j, -1))
        if self.gathered:
            segment = lambda a: jax.ops.segment_sum(  # noqa: E731
                a, data.group_unit, num_segments=self.num_units, indices_are_sorted=True
            )
            z, grad_fixed, grad_random = segment(z), segment(grad_fixed), segment(grad_random)
        return z, grad_fixed, grad_random

    def draw_terms(self, theta, data, with_derivatives: bool = True):
        """``z`` ``(U, R)`` (per-draw unit log-likelihood + log draw weight) and derivatives."""

        def one(chunk):
            return self._chunk_terms(theta, data, chunk, with_derivatives)

        if data.standard.shape[0] == 1:
            z, gf, gr = jax.tree.map(lambda a: a[None], one(data.standard[0]))
        else:
            z, gf, gr = lax.map(one, data.standard)
        z = z + data.log_draw_weights[:, None, :]  # (C, U, Rc)

        def merge(a):
            if a is None:
                return None
            return jnp.moveaxis(a, 0, 1).reshape(a.shape[1], a.shape[0] * a.shape[2], *a.shape[3:])

        return merge(z), merge(gf), merge(gr)

    def draw_loglik(self, theta, data):
        """``(U, R)`` per-draw unit log-likelihoods plus log weights of the draws."""
        return self.draw_terms(theta, data, with_derivatives=False)[0]

    def _chunked_units(self, theta, data, with_scores: bool):
        """Unit log-likelihoods ``(U,)`` and, with ``with_scores``, unit scores ``(U, P)``
        (else None), accumulated over the draw chunks of ``data.standard``.

        A running log-sum-exp over the chunks: per unit the largest term so far ``m``, the sum
        ``s`` of ``exp(z - m)`` and the ``exp(z - m)``-weighted sum of the per-draw scores, both
        rescaled when ``m`` grows. A unit's score is the posterior-weighted (Revelt-Train) mean
        of its per-draw scores, so it is that sum over ``s``. No array holds more than one
        chunk's draws: the largest are the ``(G, T, J, Rc)`` utilities of :meth:`_utilities`
        and, for the scores, the ``(U, Rc, Kf + Kr)`` per-draw derivatives.
        """
        num_u, num_p = self.num_units, theta.shape[0]
        dtype = jnp.result_type(theta, data.Xf, data.log_draw_weights)

        def body(carry, inputs):
            peak, total, weighted = carry
            standard, log_w = inputs  # (U or 1, Rc, Kr), (Rc,)
            z, grad_fixed, grad_random = self._chunk_terms(theta, data, standard, with_scores)
            z = z + log_w  # (U, Rc)
            new_peak = jnp.maximum(peak, jnp.max(z, axis=1))
            scale = jnp.exp(peak - new_peak)  # 0 at the first chunk (peak = -inf)
            expo = jnp.exp(z - new_peak[:, None])
            total = total * scale + jnp.sum(expo, axis=1)
            if with_scores:
                standard = jnp.broadcast_to(standard, (num_u, *standard.shape[1:]))
                _, pullbacks = self._unit_pullbacks(theta, standard, data.covariates)
                cotangent = expo[..., None] * jnp.concatenate([grad_fixed, grad_random], axis=-1)
                scores = jax.vmap(lambda pullback, c: pullback(c)[0])(pullbacks, cotangent)
                weighted = weighted * scale[:, None] + scores
            return (new_peak, total, weighted), None

        init = (
            jnp.full(num_u, -jnp.inf, dtype),
            jnp.zeros(num_u, dtype),
            jnp.zeros((num_u, num_p) if with_scores else (), dtype),
        )
        (peak, total, weighted), _ = lax.scan(body, init, (data.standard, data.log_draw_weights))
        unit_ll = peak + jnp.log(total)
        return unit_ll, (weighted / total[:, None] if with_scores else None)

    def unit_loglik(self, theta, data):
        """Log-likelihood of each unit, ``(U,)`` (unweighted), accumulated over draw chunks."""
        return self._chunked_units(theta, data, with_scores=False)[0]

    def loglik(self, theta, data):
        """Weighted total log-likelihood (scalar)."""
        return jnp.sum(data.unit_weights * self.unit_loglik(theta, data))

    def _posterior(self, theta, data):
        z, gf, gr = self.draw_terms(theta, data)
        unit_ll = jax.nn.logsumexp(z, axis=1)
        posterior = jnp.exp(z - unit_ll[:, None])  # (U, R) Revelt-Train draw weights
        return unit_ll, posterior, gf, gr

    def _all_standard(self, data):
        c, u, rc, kr = data.standard.shape
        return jnp.moveaxis(data.standard, 0, 1).reshape(u, c * rc, kr)

    def _block_coefficients(self, theta, standard, num_b: int, covariates=None):
        """Fixed and random coefficients ``(B, R, Kf + Kr)`` of every draw of a block."""
        coefficients = self.layout.coefficients(theta, standard, covariates)  # (B or 1, R, K)
        return jnp.broadcast_to(coefficients, (num_b, *coefficients.shape[1:]))

    def _unit_pullbacks(self, theta, standard, covariates):
        """Coefficients ``(B, R, Kf + Kr)`` of the draws ``standard`` ``(B, R, Kr)`` of ``B``
        units with covariates ``(B, Q)`` and each unit's pullback ``(R, Kf + Kr) -> (P,)`` (a
        ``vmap`` of its VJP).

        Each unit's coefficients depend only on ``theta``, its own draws and covariates, so a
        unit's score is the pullback of its own cotangent: the per-unit Jacobians are never
        formed.
        """

        def one(standard_u, covariates_u):  # (R, Kr), (Q,) -> (R, K)
            return jax.vjp(
                lambda t: self._block_coefficients(t, standard_u[None], 1, covariates_u[None])[0],
                theta,
            )

        return jax.vmap(one)(standard, covariates)

    def _block_draw_terms(self, beta, dX, available, log_draw_weights):
        """Per-draw unit log-likelihoods ``z`` ``(B, R)`` (plus log draw weights) of one block
        and their derivatives ``d z / d beta`` ``(B, R, K)``."""
        num_others = dX.shape[0]
        # utility differences of each non-chosen alternative, (B, T, R) each
        diffs = [jnp.einsum("btk,brk->btr", dX[j], beta) for j in range(num_others)]
        # shift by max(0, max_j diff) so that exp never overflows
        shift = jnp.maximum(diffs[0], 0.0)
        for j in range(1, num_others):
            shift = jnp.maximum(shift, diffs[j])
        expo = [jnp.exp(d - shift) * available[j][..., None] for j, d in enumerate(diffs)]
        total = jnp.exp(-shift) + sum(expo[1:], expo[0])
        z = -jnp.sum(jnp.log(total) + shift, axis=1) + log_draw_weights  # (B, R)
        inverse = 1.0 / total
        grad_beta = -sum(
            jnp.einsum("btr,btk->brk", expo[j] * inverse, dX[j]) for j in range(num_others)
        )
        return z, grad_beta

    def _block_value_grad_scores(self, theta, blocks: PanelBlocks):
        """Value, gradient and unit scores ``(U, P)`` from the unit-blocked difference layout
        (:meth:`block_terms` summed over the blocks)."""
        values, grads, scores = self.block_terms(theta, blocks)
        return jnp.sum(values), jnp.sum(grads, axis=0), scores[: self.num_units]

    def block_terms(self, theta, blocks: PanelBlocks):
        """Each block's weighted log-likelihood ``(NB,)`` and gradient ``(NB, P)``, and the
        scores ``(NB * B, P)`` of its units (padding units included, last).

        Each unit's coefficients depend only on ``theta`` and its own draws, so a unit's score is
        the pullback of its own cotangent (a ``vmap`` of the coefficient map's VJP) and the
        gradient is their weighted sum. Computing the scores costs no more than pulling back a
        block's summed cotangent, and one compiled function then serves the optimiser, the
        Hessian and the robust covariance.
        """

        # shared nodes are stored once, (1, 1, R, Kr), and closed over rather than mapped
        shared = blocks.standard.shape[0] != blocks.dX.shape[0]

        def block(inputs):
            dX, available, weights, covariates = inputs[:4]
            standard = blocks.standard[0] if shared else inputs[4]
            standard = jnp.broadcast_to(standard, (dX.shape[1], *standard.shape[1:]))
            beta, pullbacks = self._unit_pullbacks(theta, standard, covariates)
            z, grad_beta = self._block_draw_terms(beta, dX, available, blocks.log_draw_weights)
            unit_ll = jax.nn.logsumexp(z, axis=1)
            posterior = jnp.exp(z - unit_ll[:, None])  # Revelt-Train draw weights (B, R)
            scores = jax.vmap(lambda pullback, c: pullback(c)[0])(
                pullbacks, posterior[..., None] * grad_beta
            )
            # padding units (weight 0) have finite unit_ll; mask to keep 0 * x exact
            value = jnp.sum(jnp.where(weights > 0, weights * unit_ll, 0.0))
            return value, weights @ scores, scores

        covariates = blocks.covariates
        if covariates is None:
            covariates = jnp.zeros((*blocks.unit_weights.shape, 0), theta.dtype)
        inputs = (blocks.dX, blocks.available, blocks.unit_weights, covariates)
        values, grads, scores = lax.map(block, inputs if shared else (*inputs, blocks.standard))
        return values, grads, scores.reshape(-1, theta.shape[0])

    def value_grad_scores(self, theta, data):
        """Weighted log-likelihood, its gradient ``(P,)`` and the unit scores ``(U, P)``."""
        if data.blocks is not None:
            return self._block_value_grad_scores(theta, data.blocks)
        value, grad = self.value_and_grad(theta, data)
        return value, grad, self.unit_scores(theta, data)

    def value_and_grad(self, theta, data):
        """Weighted log-likelihood and its exact gradient in ``theta``."""
        if data.blocks is not None:
            return self._block_value_grad_scores(theta, data.blocks)[:2]
        unit_ll, posterior, gf, gr = self._posterior(theta, data)
        weighted = data.unit_weights[:, None] * posterior  # (U, R)
        kf = len(self.layout.direct_variables)
        grad = jnp.zeros_like(theta).at[:kf].set(jnp.einsum("ur,urk->k", weighted, gf))
        if self.layout.drawn_variables:
            standard = self._all_standard(data)
            _, pullback = jax.vjp(
                lambda t: self.layout.drawn_coefficients(t, standard, data.covariates), theta
            )
            cotangent = weighted[..., None] * gr
            if standard.shape[0] == 1 and not self.layout.num_covariates:
                cotangent = jnp.sum(cotangent, axis=0, keepdims=True)
            grad = grad + pullback(cotangent)[0]
        return jnp.sum(data.unit_weights * unit_ll), grad

    def unit_scores(self, theta, data):
        """Gradient of each unit's log-likelihood, ``(U, P)`` (unweighted).

        Blocked layout: from the blocks of units; otherwise accumulated over the draw chunks
        (:meth:`_chunked_units`), so memory does not grow with ``U * R``.
        """
        if data.blocks is not None:
            return self._block_value_grad_scores(theta, data.blocks)[2]
        return self._chunked_units(theta, data, with_scores=True)[1]

    def grid_probabilities(self, theta, data, conditional: bool = False):
        """Choice probabilities ``(G, T, J)`` averaged over draws.

        With ``conditional=True`` the draws of each unit are weighted by the likelihood of
        the unit's observed choices (Revelt-Train), i.e. panel-aware prediction.
        """
        num_chunks = data.standard.shape[0]
        if conditional:
            weights = jax.nn.softmax(self.draw_loglik(theta, data), axis=1)  # (U, C * Rc)
            w_chunks = jnp.moveaxis(weights.reshape(weights.shape[0], num_chunks, -1), 1, 0)
        else:
            weights = jax.nn.softmax(data.log_draw_weights.reshape(-1))  # (C * Rc,)
            w_chunks = weights.reshape(num_chunks, 1, -1)

        def body(total, inputs):
            chunk, w = inputs  # w: (U or 1, Rc)
            utility = self._utilities(theta, data, chunk)
            masked = jnp.where(data.available[..., None], utility, -jnp.inf)
            probs = jax.nn.softmax(masked, axis=2)  # (G, T, J, Rc)
            if self.gathered and w.shape[0] > 1:
                w = w[data.group_unit]
            return total + jnp.einsum(
                "gtjr,gr->gtj", probs, jnp.broadcast_to(w, (probs.shape[0], w.shape[1]))
            ), None

        total, _ = lax.scan(
            body, jnp.zeros(data.available.shape, theta.dtype), (data.standard, w_chunks)
        )
        return total

    def unit_coefficients(self, theta, data):
        """Coefficients ``(U or 1, C * Rc, Kr)`` of every draw."""
        betas = jax.vmap(
            lambda chunk: self.layout.random_coefficients(theta, chunk, data.covariates)
        )(data.standard)  # (C, U, Rc, Kr)
        c, u, rc, kr = betas.shape
        return jnp.moveaxis(betas, 0, 1).reshape(u, c * rc, kr)
