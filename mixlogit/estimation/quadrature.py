"""Maximum likelihood with a converged quadrature rule (one or two random coefficients).

After each optimisation the log-likelihood is re-evaluated at the estimates with twice the
nodes per dimension; the absolute change is the error estimate of the coarser rule. The
nodes double (warm starting from the estimates) until that error is below the tolerance or
the node budget is spent (1024 nodes for one dimension, 160 per dimension for two).
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np

from mixlogit.data import ChoiceData
from mixlogit.estimation.optimize import Maximum, Optimiser
from mixlogit.estimation.problem import build_problem
from mixlogit.likelihood import x64
from mixlogit.quadrature import quadrature_rule
from mixlogit.spec import as_model_spec

__all__ = ["maximise_quadrature"]


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
) -> Maximum:
    """Maximise the quadrature log-likelihood, refining the rule until converged.

    Args:
        nodes: starting nodes per dimension (default 16 for one random coefficient, 10 for
            two).
        quadrature_tolerance: target absolute log-likelihood error.

    Returns:
        :class:`~mixlogit.estimation.optimize.Maximum` whose ``quadrature`` holds
        ``nodes_per_dim``, ``error``, ``tolerance`` and the ``rounds`` of refinement.
    """
    spec = as_model_spec(model)
    num_random = len(spec.random)
    nodes = nodes or (16 if num_random == 1 else 10)
    max_nodes = 1024 if num_random == 1 else 160
    theta = theta0
    rounds = []
    while True:
        standard, log_w = quadrature_rule(spec, nodes)
        problem = build_problem(
            model, data, standard=standard, log_weights=log_w, panel=panel, chunk_size=chunk_size
        )
        found = optimiser.maximise(problem, theta, desc=f"quadrature {nodes}/dim")
        theta = found.result.x
        fine_standard, fine_log_w = quadrature_rule(spec, 2 * nodes)
        fine = build_problem(
            model,
            data,
            standard=fine_standard,
            log_weights=fine_log_w,
            panel=panel,
            chunk_size=chunk_size,
            check_identified=False,
        )
        with x64():
            ll_fine = float(fine.loglik(jnp.asarray(theta), fine.data))  # jitted
        error = abs(ll_fine - found.loglik)
        rounds.append(
            {"nodes": nodes, "loglik": found.loglik, "loglik_refined": ll_fine, "error": error}
        )
        if optimiser.verbose:
            print(
                f"quadrature {nodes} nodes/dim: loglik {found.loglik:.6f}, "
                f"error estimate {error:.2e}"
            )
        if error <= quadrature_tolerance or 2 * nodes > max_nodes:
            break
        nodes *= 2
    if error > quadrature_tolerance:
        warnings.warn(
            f"quadrature did not reach the log-likelihood tolerance {quadrature_tolerance:g}: "
            f"error estimate {error:.3g} with {nodes} nodes per dimension",
            RuntimeWarning,
            stacklevel=4,
        )
    info = {
        "nodes_per_dim": nodes,
        "error": error,
        "tolerance": quadrature_tolerance,
        "rounds": rounds,
    }
    return found._replace(quadrature=info)
