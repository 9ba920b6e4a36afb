"""Person draws from their conditional posteriors by sampling-importance-resampling (JAX).

After a fit that integrated the person coefficients out (SVI with ``local_guide="marginal"``),
each person's coefficients given their choices are drawn, for each population draw, by
resampling ``num_candidates`` draws from the population distribution with weights equal to
the person's likelihood at each candidate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mixlogit._choice_ops import choice_ops
from mixlogit.bayes.model import nodes_person_loglik
from mixlogit.mixing import hierarchical_coefficients
from mixlogit.spec import ModelSpec

__all__ = ["conditional_person_draws", "gamma_draws"]

OPS = choice_ops("jax")


def gamma_draws(spec: ModelSpec, params: dict[str, jax.Array], key: jax.Array, num: int):
    """``(num, Kg)`` draws ``u ~ Gamma(k, 1)`` of the gamma coefficients (empty if none)."""
    if not spec.gamma_random:
        return jnp.zeros((num, 0))
    shape = jnp.exp(params["log_shape"])
    return jax.random.gamma(key, shape, (num, shape.shape[-1]))


def _one_population_draw(spec, params, batch, key, num_candidates):
    """One draw per person of ``(z (P, Kz), u (P, Kg))`` given one population draw."""
    k_z, k_u, k_pick = jax.random.split(key, 3)
    z_candidates = jax.random.normal(k_z, (num_candidates, len(spec.z_random)))
    u_candidates = gamma_draws(spec, params, k_u, num_candidates)
    beta = hierarchical_coefficients(OPS, spec, params, z_candidates, u_candidates)
    pick = jax.random.categorical(k_pick, nodes_person_loglik(OPS, batch, beta), axis=-1)
    return z_candidates[pick], u_candidates[pick]


def conditional_person_draws(
    spec: ModelSpec, global_draws: dict, batch: dict, key, num_candidates: int
) -> tuple[np.ndarray, np.ndarray]:
    """Person draws ``z (N, P, Kz)``, ``u (N, P, Kg)`` given each of the ``N`` population draws
    ``global_draws`` (``{site: (N, ...)}``), for the decision-makers of ``batch`` (JAX arrays)."""
    params = {k: jnp.asarray(v) for k, v in global_draws.items()}
    num = next(iter(params.values())).shape[0]
    keys = jax.random.split(key, num)
    P, T, J, _ = batch["X"].shape
    # about 2e7 floats of utilities per chunk of draws
    chunk = int(max(1, min(num, 2e7 // (P * T * J * num_candidates))))
    kz, kg = len(spec.z_random), len(spec.gamma_random)

    def one(args):
        population, draw_key = args
        z, u = _one_population_draw(spec, population, batch, draw_key, num_candidates)
        # lax.map's batching cannot reshape zero-size outputs: return only the present ones
        return {name: v for name, v, width in (("z", z, kz), ("u", u, kg)) if width}

    out = jax.jit(lambda p, k: jax.lax.map(one, (p, k), batch_size=chunk))(params, keys)
    z = np.asarray(out["z"]) if kz else np.zeros((num, P, 0))
    u = np.asarray(out["u"]) if kg else np.zeros((num, P, 0))
    return z, u
