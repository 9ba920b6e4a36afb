"""Quadrature rules for the random coefficients of one decision maker (NumPy).

Two families of rules for a coefficient driven by a standard normal (normal, lognormal):

* Gauss-Hermite (:func:`mixlogit._series.standard_normal_quadrature`, also used by the
  strength kernels): exact for polynomials of high degree, the right rule for the smooth
  integrands of the Bayesian quadrature-marginalised model (:func:`standard_normal_rule`).
* The truncated trapezoidal rule in ``z`` on ``[-L, L]`` (:func:`trapezoid_normal_rule`), the
  rule of the classical *converged* quadrature (:func:`quadrature_rule`). A choice probability
  is a logistic function of the utility, hence of ``z``, and with a large spread it is a
  steep one: its poles come close to the real axis and Gauss-Hermite, which places most of
  its nodes far in the tails, converges only slowly (on Swissmetro b05 the log-likelihood error
  of 256 Gauss-Hermite nodes is still 5e-3). The trapezoidal rule converges geometrically for
  analytic integrands, at the rate ``exp(-2 pi d / h)`` for poles at distance ``d`` and node
  spacing ``h`` (Trefethen & Weideman 2014, "The exponentially convergent trapezoidal rule"),
  its nodes nest when the spacing halves, and its weights are closed-form at any node count.
  Because the integrand is a probability (at most 1), cutting the normal at ``L = 9`` costs at
  most ``2 (1 - Phi(9)) ~ 2e-19`` per unit.

Coefficients of the other mixing distributions (triangular, uniform, truncated normal, gamma)
integrate over a uniform on (0, 1) with Gauss-Legendre nodes mapped through the same
standardisation as the simulation draws (:func:`mixlogit.mixing.standardise_uniform`).

* :func:`one_dimensional_rule`: one coefficient, either rule family.
* :func:`tensor_rule`: the product rule of several one-dimensional rules.
* :func:`refined_nodes`: the node count of the next refinement (spacing halved).

The classical driver (:mod:`mixlogit.estimation.quadrature`) makes the rule converged by
comparing it at the estimates with its refinements.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mixlogit._choice_ops import choice_ops
from mixlogit._series import standard_normal_quadrature
from mixlogit.mixing import standardise_uniform
from mixlogit.spec import NORMAL_BASED, ModelSpec

__all__ = [
    "NORMAL_TRUNCATION",
    "one_dimensional_rule",
    "quadrature_rule",
    "refined_nodes",
    "standard_normal_rule",
    "tensor_rule",
    "trapezoid_normal_rule",
]

#: Half-width ``L`` of the interval ``[-L, L]`` of the trapezoidal rule in the standard normal
#: ``z``: the normal mass outside is ``2 (1 - Phi(9)) = 2.3e-19``.
NORMAL_TRUNCATION = 9.0

RULES = ("gauss", "trapezoid")


def trapezoid_normal_rule(num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoidal rule for ``E[f(z)]``, ``z ~ N(0, 1)``: nodes ``(n,)`` equally spaced on
    ``[-L, L]`` (:data:`NORMAL_TRUNCATION`, both ends included) and weights ``(n,)``
    proportional to the normal density there, normalised to sum to 1.

    ``refined_nodes(n) = 2 n - 1`` nodes halve the spacing and contain these nodes.
    """
    if not isinstance(num_nodes, (int, np.integer)) or num_nodes < 3:
        raise ValueError(f"the trapezoidal rule needs at least 3 nodes, got {num_nodes!r}")
    nodes = np.linspace(-NORMAL_TRUNCATION, NORMAL_TRUNCATION, int(num_nodes))
    # the density at the ends is exp(-40.5) = 2.6e-18 of the centre: no weight underflows
    log_density = -0.5 * nodes**2
    weights = np.exp(log_density - np.logaddexp.reduce(log_density))
    return nodes, weights


def refined_nodes(num_nodes: int) -> int:
    """Nodes per dimension of the refinement of a ``num_nodes`` rule: ``2 n - 1``, so that the
    trapezoidal rule's spacing halves and every node is kept (a Gauss-Legendre rule of that
    size has about twice the nodes, which is all its error estimate needs)."""
    return 2 * int(num_nodes) - 1


def one_dimensional_rule(
    distribution: str, num_nodes: int, *, rule: str = "gauss"
) -> tuple[np.ndarray, np.ndarray]:
    """Standardised nodes ``(n,)`` and weights ``(n,)`` (summing to 1) for one random
    coefficient of mixing ``distribution``.

    ``rule`` chooses the rule of a normal-based coefficient: ``"gauss"`` (Gauss-Hermite) or
    ``"trapezoid"`` (:func:`trapezoid_normal_rule`, at least 3 nodes); the other
    distributions always use Gauss-Legendre in the uniform.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if not isinstance(num_nodes, (int, np.integer)) or num_nodes < 1:
        raise ValueError(f"num_nodes must be a positive integer, got {num_nodes!r}")
    if distribution in NORMAL_BASED:
        if rule == "trapezoid":
            return trapezoid_normal_rule(num_nodes)
        nodes, log_weights = standard_normal_quadrature(int(num_nodes))
        return np.array(nodes), np.exp(log_weights)
    nodes, weights = np.polynomial.legendre.leggauss(int(num_nodes))
    u = 0.5 * (nodes + 1.0)
    return standardise_uniform(choice_ops("numpy"), u, distribution), 0.5 * weights


def tensor_rule(rules: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Product of one-dimensional rules ``[(nodes (n_d,), weights (n_d,)), ...]``.

    Returns nodes ``(Q, D)`` (the last dimension varies fastest) and log-weights ``(Q,)``,
    ``Q = prod n_d``; nodes of zero weight (an underflow in the tails) are dropped.

    Raises:
        FloatingPointError: a node or weight is not finite, or no weight is positive (a rule
            that would otherwise silently integrate nothing).
    """
    for d, (x, w) in enumerate(rules):
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(w))):
            raise FloatingPointError(
                f"the {len(w)}-node rule of dimension {d} has non-finite nodes or weights"
            )
    grids = np.meshgrid(*[np.asarray(x) for x, _ in rules], indexing="ij")
    weight_grids = np.meshgrid(*[np.asarray(w) for _, w in rules], indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=-1)
    weights = np.prod(np.stack([g.ravel() for g in weight_grids], axis=-1), axis=-1)
    keep = weights > 0
    if not np.any(keep):
        raise FloatingPointError("the product rule has no node of positive weight")
    return nodes[keep], np.log(weights[keep])


def standard_normal_rule(num_nodes: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor Gauss-Hermite rule for ``dim`` independent standard normals: nodes
    ``(num_nodes**dim, dim)`` and log-weights (weights summing to 1)."""
    return tensor_rule([one_dimensional_rule("normal", num_nodes)] * dim)


def quadrature_rule(
    spec: ModelSpec, nodes_per_dim: int | Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Shared nodes ``(1, R, Kr)`` and log weights ``(R,)`` for the model's one or two random
    coefficients in the classical likelihood; ``nodes_per_dim`` is one count for every
    dimension or one per random coefficient (in the order of ``spec.random``),
    ``R <= prod(nodes_per_dim)``.

    Normal-based coefficients use the trapezoidal rule in ``z``
    (:func:`trapezoid_normal_rule`, at least 3 nodes), the others Gauss-Legendre in ``u``.
    Correlated normals use the same standard-normal nodes (the Cholesky factor maps them).
    """
    mixing = list(spec.random.values())
    if not 1 <= len(mixing) <= 2:
        raise ValueError(f"quadrature needs one or two random coefficients, got {len(mixing)}")
    counts = (
        [int(nodes_per_dim)] * len(mixing)
        if isinstance(nodes_per_dim, (int, np.integer))
        else [int(n) for n in nodes_per_dim]
    )
    if len(counts) != len(mixing):
        raise ValueError(
            f"nodes_per_dim has {len(counts)} entries for {len(mixing)} random coefficients"
        )
    nodes, log_weights = tensor_rule(
        [
            one_dimensional_rule(m.distribution, n, rule="trapezoid")
            for m, n in zip(mixing, counts, strict=True)
        ]
    )
    return nodes[None], log_weights
