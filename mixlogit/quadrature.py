"""Quadrature rules for one or two random coefficients.

Normal-based coefficients (normal, lognormal) integrate over a standard normal with
Gauss-Hermite nodes; the others (triangular, uniform, truncated normal, gamma) over a uniform
on (0, 1) with Gauss-Legendre nodes mapped through the same standardisation as the simulation
draws. Two coefficients use the tensor-product rule.

:func:`mixlogit.estimation.estimate` makes the rule *converged*: after each optimisation it
re-evaluates the log-likelihood at the estimates with twice the nodes per dimension, takes the
absolute difference as the error estimate of the coarser rule, and doubles the nodes (warm
starting from the estimates) until that error is below ``quadrature_tol``. The final error
estimate is reported in ``results.quadrature``.
"""

from __future__ import annotations

import numpy as np

from mixlogit.mixing import NORMAL_BASED, standardise_uniform

__all__ = ["one_dimensional_rule", "quadrature_rule"]


def one_dimensional_rule(distribution: str, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardised nodes and weights (summing to 1) for one random coefficient."""
    if num_nodes < 1:
        raise ValueError(f"num_nodes must be >= 1, got {num_nodes}")
    if distribution in NORMAL_BASED:
        # probabilists' Hermite: weight exp(-x^2/2); normalise to the N(0, 1) density
        nodes, weights = np.polynomial.hermite_e.hermegauss(num_nodes)
        return nodes, weights / weights.sum()
    nodes, weights = np.polynomial.legendre.leggauss(num_nodes)
    u = 0.5 * (nodes + 1.0)
    return standardise_uniform(u, distribution), 0.5 * weights


def quadrature_rule(model, nodes_per_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Shared nodes ``(1, R, Kr)`` and log weights ``(R,)`` for the model's random coefficients.

    Correlated normals use the same standard-normal nodes (the Cholesky factor maps them).
    """
    mixing = list(model.random.values())
    if not 1 <= len(mixing) <= 2:
        raise ValueError(f"quadrature needs one or two random coefficients, got {len(mixing)}")
    rules = [one_dimensional_rule(m.distribution, nodes_per_dim) for m in mixing]
    if len(rules) == 1:
        nodes = rules[0][0][:, None]
        weights = rules[0][1]
    else:
        (x0, w0), (x1, w1) = rules
        grid0, grid1 = np.meshgrid(x0, x1, indexing="ij")
        nodes = np.stack([grid0.ravel(), grid1.ravel()], axis=-1)
        weights = np.outer(w0, w1).ravel()
    keep = weights > 0
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights[keep])
    return nodes[keep][None], log_weights
