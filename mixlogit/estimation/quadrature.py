"""Maximum likelihood with a converged quadrature rule (one or two random coefficients).

The rule (:func:`mixlogit.quadrature.quadrature_rule`: trapezoidal in the standard normal for
normal-based coefficients, Gauss-Legendre otherwise) is refined by halving its spacing,
``n -> 2 n - 1`` nodes per dimension (:func:`~mixlogit.quadrature.refined_nodes`). The error
estimate of a rule at the estimates is the absolute change of the log-likelihood when it is
refined once; for a geometrically convergent rule the refined value is far more accurate, so
this estimate bounds the error of the coarser rule.

Each round maximises the likelihood with the current rule, then refines it at the estimates,
without re-optimising, until a rule's error estimate is below the tolerance; that rule is the
next one to optimise with (re-optimising at every doubling would repeat the optimisation at
rules already known to be too coarse). With two random coefficients each dimension is refined
on its own, where its change is large. The fit ends when the rule optimised with meets the
tolerance at its own estimates. When that needs more than :data:`MAX_NODES_PER_DIM` nodes per
dimension or :data:`MAX_NODES` in all, the estimates are those of the largest rule whose
refinements fit under the caps, with a
:class:`~mixlogit.estimation.optimize.ConvergenceWarning`.
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np

from mixlogit.data import ChoiceData
from mixlogit.estimation.optimize import ConvergenceWarning, Maximum, Optimiser
from mixlogit.estimation.problem import build_problem
from mixlogit.likelihood import x64
from mixlogit.quadrature import quadrature_rule, refined_nodes
from mixlogit.spec import as_model_spec

__all__ = ["DEFAULT_NODES_PER_DIM", "MAX_NODES", "MAX_NODES_PER_DIM", "maximise_quadrature"]

#: Starting nodes per dimension by number of random coefficients.
DEFAULT_NODES_PER_DIM = {1: 33, 2: 17}
#: Largest rule evaluated: nodes in one dimension (spacing 18 / 4096 = 0.0044) and in all
#: (70,000 nodes: 1.4e9 utilities per evaluation of Swissmetro b05's 6,768 x 3 situations).
MAX_NODES_PER_DIM = 4097
MAX_NODES = 70_000

Nodes = tuple[int, ...]


def maximise_quadrature(
    model,
    data: ChoiceData,
    theta0: np.ndarray,
    *,
    nodes: int | None,
    quadrature_tolerance: float,
    panel: bool,
    chunk_size: int | None,
    optimiser: Optimiser,
    check_identified: bool = True,
) -> Maximum:
    """Maximise the quadrature log-likelihood, refining the rule until converged.

    With two random coefficients each dimension is refined on its own: the error estimate is
    the sum of the changes when one dimension's spacing is halved, and only the dimensions
    whose change exceeds ``quadrature_tolerance / 2`` are refined (a random coefficient that
    enters the utility steeply needs many more nodes than a flat one).

    Args:
        nodes: starting nodes per dimension (default :data:`DEFAULT_NODES_PER_DIM`: 33 for one
            random coefficient, 17 for two; at least 3, with a refinement within the caps).
        quadrature_tolerance: target absolute error of the total log-likelihood (> 0).

    Returns:
        :class:`~mixlogit.estimation.optimize.Maximum` whose ``quadrature`` holds
        ``nodes_per_dim`` (the rule of the estimates: an int for one random coefficient, a
        pair for two), ``error`` (its error estimate at the estimates), ``tolerance``,
        ``converged`` (error <= tolerance), ``rule``, the caps and the ``rounds``: one per
        optimisation, with the refinements evaluated at its estimates.

    Warns:
        ConvergenceWarning: the tolerance needs a rule beyond the caps
            (:data:`MAX_NODES_PER_DIM`, :data:`MAX_NODES`); the message names the tolerance,
            the error reached and the nodes.
    """
    if not quadrature_tolerance > 0:
        raise ValueError(f"quadrature_tolerance must be > 0, got {quadrature_tolerance!r}")
    spec = as_model_spec(model)
    dims = len(spec.random)
    if not 1 <= dims <= 2:
        raise ValueError(f"quadrature needs one or two random coefficients, got {dims}")

    def fits(rule: Nodes) -> bool:
        return max(rule) <= MAX_NODES_PER_DIM and int(np.prod(rule)) <= MAX_NODES

    def refine(rule: Nodes, dim: int) -> Nodes:
        return tuple(refined_nodes(n) if d == dim else n for d, n in enumerate(rule))

    start = DEFAULT_NODES_PER_DIM[dims] if nodes is None else int(nodes)
    if start < 3 or not fits(refine((start,) * dims, 0)):
        raise ValueError(
            f"quadrature nodes per dimension must be at least 3 and leave room for a refinement "
            f"({refined_nodes(start)} nodes) within {MAX_NODES_PER_DIM} per dimension and "
            f"{MAX_NODES} in all; got {start} for {dims} random coefficient(s)"
        )

    def problem_for(rule: Nodes, **options):
        standard, log_w = quadrature_rule(spec, rule)
        return build_problem(
            model,
            data,
            standard=standard,
            log_weights=log_w,
            panel=panel,
            chunk_size=chunk_size,
            **options,
        )

    def loglik_at(rule: Nodes, theta: np.ndarray) -> float:
        problem = problem_for(rule, check_identified=False)
        with x64():
            return float(problem.loglik(jnp.asarray(theta), problem.data))  # jitted

    def label(rule: Nodes) -> str:
        return "x".join(map(str, rule))

    rule: Nodes = (start,) * dims
    theta = theta0
    rounds: list[dict] = []
    while True:
        found = optimiser.maximise(
            problem_for(rule, check_identified=check_identified),
            theta,
            desc=f"quadrature {label(rule)}",
        )
        theta = found.result.x
        # refine at the estimates, without re-optimising, until the rule meets the tolerance
        steps: list[dict] = []
        current, current_ll, next_rule = rule, found.loglik, None
        while all(fits(refine(current, d)) for d in range(dims)):
            refined = [loglik_at(refine(current, d), theta) for d in range(dims)]
            changes = [abs(ll - current_ll) for ll in refined]
            steps.append(
                {
                    "nodes": list(current),
                    "loglik": current_ll,
                    "refined_loglik": refined,
                    "error": float(sum(changes)),
                }
            )
            if sum(changes) <= quadrature_tolerance:
                next_rule = current
                break
            grow = [d for d in range(dims) if changes[d] > quadrature_tolerance / dims]
            grow = grow or [int(np.argmax(changes))]
            following = current
            for d in grow:
                following = refine(following, d)
            current_ll = refined[grow[0]] if len(grow) == 1 else loglik_at(following, theta)
            current = following
        error = steps[0]["error"]  # the start fits its refinements; later rules are checked
        rounds.append(
            {
                "nodes": list(rule),
                "loglik": found.loglik,
                "error": error,
                "refinements": steps,
            }
        )
        if optimiser.verbose:
            trail = ", ".join(f"{label(tuple(r['nodes']))}: {r['error']:.2e}" for r in steps)
            print(
                f"quadrature {label(rule)} nodes: loglik {found.loglik:.6f}, error estimate "
                f"{error:.2e}; error estimates of refinements at the estimates {trail}"
            )
        if error <= quadrature_tolerance:
            break
        if next_rule is None:  # no rule within the caps met the tolerance
            largest = tuple(steps[-1]["nodes"])  # the largest whose refinements fit
            if largest == rule:
                break
            next_rule = largest  # the best estimates the caps allow, then warn
        rule = next_rule
    converged = bool(error <= quadrature_tolerance)
    if not converged:
        warnings.warn(
            f"quadrature did not reach the log-likelihood tolerance {quadrature_tolerance:g} "
            f"within {MAX_NODES_PER_DIM} nodes per dimension and {MAX_NODES} in all: the error "
            f"estimate of the {label(rule)}-node rule of the estimates is {error:.3g}. "
            "Raise quadrature_tolerance or use method='simulation'",
            ConvergenceWarning,
            stacklevel=4,
        )
    info = {
        "nodes_per_dim": rule[0] if dims == 1 else rule,
        "error": error,
        "tolerance": quadrature_tolerance,
        "converged": converged,
        "rule": "trapezoid on [-9, 9] in z (normal-based), Gauss-Legendre in u (others)",
        "max_nodes_per_dim": MAX_NODES_PER_DIM,
        "max_nodes": MAX_NODES,
        "rounds": rounds,
    }
    return found._replace(quadrature=info)
