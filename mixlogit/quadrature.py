"""Quadrature rules for the random coefficients of one decision maker (NumPy).

The one-dimensional Gauss-Hermite rule for a standard normal is
:func:`mixlogit._series.standard_normal_quadrature` (also used by the strength kernels);
this module maps rules to the mixing distributions and takes tensor products of them:

* :func:`one_dimensional_rule`: normal-based coefficients (normal, lognormal) integrate over a
  standard normal with Gauss-Hermite nodes; the others (triangular, uniform, truncated normal,
  gamma) over a uniform on (0, 1) with Gauss-Legendre nodes mapped through the same
  standardisation as the simulation draws (:func:`mixlogit.mixing.standardise_uniform`).
* :func:`tensor_rule`: the product rule of several one-dimensional rules.
* :func:`standard_normal_rule`: the tensor Gauss-Hermite rule for ``dim`` standard normals
  (the Bayesian quadrature-marginalised model and its log-likelihood).
* :func:`quadrature_rule`: the rule of a model's one or two random coefficients for the
  classical likelihood.

The classical driver (:mod:`mixlogit.estimation.quadrature`) makes the rule *converged*:
after each optimisation it re-evaluates the log-likelihood at the estimates with twice the
nodes per dimension and doubles the nodes until the change is below ``quadrature_tolerance``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixlogit._choice_ops import choice_ops
from mixlogit._series import standard_normal_quadrature
from mixlogit.mixing import standardise_uniform
from mixlogit.spec import NORMAL_BASED, ModelSpec

__all__ = ["one_dimensional_rule", "quadrature_rule", "standard_normal_rule", "tensor_rule"]


def one_dimensional_rule(distribution: str, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardised nodes ``(n,)`` and weights ``(n,)`` (summing to 1) for one random
    coefficient of mixing ``distribution``."""
    if num_nodes < 1:
        raise ValueError(f"num_nodes must be >= 1, got {num_nodes}")
    if distribution in NORMAL_BASED:
        nodes, log_weights = standard_normal_quadrature(int(num_nodes))
        return np.array(nodes), np.exp(log_weights)
    nodes, weights = np.polynomial.legendre.leggauss(num_nodes)
    u = 0.5 * (nodes + 1.0)
    return standardise_uniform(choice_ops("numpy"), u, distribution), 0.5 * weights


def tensor_rule(rules: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Product of one-dimensional rules ``[(nodes (n_d,), weights (n_d,)), ...]``.

    Returns nodes ``(Q, D)`` (the last dimension varies fastest) and log-weights ``(Q,)``,
    ``Q = prod n_d``; nodes of zero weight are dropped.
    """
    grids = np.meshgrid(*[np.asarray(x) for x, _ in rules], indexing="ij")
    weight_grids = np.meshgrid(*[np.asarray(w) for _, w in rules], indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=-1)
    weights = np.prod(np.stack([g.ravel() for g in weight_grids], axis=-1), axis=-1)
    keep = weights > 0
    return nodes[keep], np.log(weights[keep])


def standard_normal_rule(num_nodes: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor Gauss-Hermite rule for ``dim`` independent standard normals: nodes
    ``(num_nodes**dim, dim)`` and log-weights (weights summing to 1)."""
    return tensor_rule([one_dimensional_rule("normal", num_nodes)] * dim)


def quadrature_rule(spec: ModelSpec, nodes_per_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Shared nodes ``(1, R, Kr)`` and log weights ``(R,)`` for the model's random coefficients.

    Correlated normals use the same standard-normal nodes (the Cholesky factor maps them).
    """
    mixing = list(spec.random.values())
    if not 1 <= len(mixing) <= 2:
        raise ValueError(f"quadrature needs one or two random coefficients, got {len(mixing)}")
    nodes, log_weights = tensor_rule(
        [one_dimensional_rule(m.distribution, nodes_per_dim) for m in mixing]
    )
    return nodes[None], log_weights
