"""``integrate="quadrature"``: the Gauss-Hermite rule of a fit and the check of its error."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mixlogit.bayes.model import quadrature_person_loglik
from mixlogit.bayes.numpyro_model import BACKEND
from mixlogit.bayes.panel import PanelArrays
from mixlogit.quadrature import standard_normal_rule
from mixlogit.spec import ModelSpec

__all__ = ["check_quadrature", "quadrature_error"]

#: most person-level random coefficients a tensor rule integrates
MAX_DIMENSIONS = 2


def check_quadrature(spec: ModelSpec) -> None:
    """Raise ``ValueError`` when ``spec`` cannot be integrated by the Gauss-Hermite rule."""
    if spec.gamma_random:
        raise ValueError(
            f"integrate='quadrature' does not support gamma coefficients "
            f"({list(spec.gamma_random)}); use integrate='sample'"
        )
    if len(spec.z_random) > MAX_DIMENSIONS:
        raise ValueError(
            f"integrate='quadrature' integrates at most {MAX_DIMENSIONS} random coefficients "
            f"per person, the model has {len(spec.z_random)} ({list(spec.z_random)}); use "
            "integrate='sample'"
        )


def quadrature_error(
    spec: ModelSpec, samples: dict[str, np.ndarray], panel: PanelArrays, num_nodes: int
) -> float:
    """Largest |total log-likelihood(rule) - total log-likelihood(rule with 2x nodes)| over
    up to 20 posterior draws: an estimate of the quadrature error of the fit."""
    ops = BACKEND.ops
    kz = len(spec.z_random)
    first = next(iter(samples.values()))
    n = first.shape[0] * first.shape[1]
    pick = np.linspace(0, n - 1, min(n, 20)).astype(int)
    flat = {
        k: jnp.asarray(v.reshape((n, *v.shape[2:]))[pick])
        for k, v in samples.items()
        if k not in ("z", "u", "u_std")
    }
    batch = BACKEND.batch(panel)
    rules = [
        tuple(jnp.asarray(a) for a in standard_normal_rule(nodes, kz))
        for nodes in (num_nodes, 2 * num_nodes)
    ]

    def total(params, rule):
        return quadrature_person_loglik(ops, spec, params, batch, *rule)[0].sum()

    fn = jax.jit(jax.vmap(lambda p: jnp.abs(total(p, rules[0]) - total(p, rules[1]))))
    return float(np.max(np.asarray(fn(flat))))
