"""Per-draw post-processing shared by both backends (run in JAX, float64).

For every posterior draw: the per-decision-maker log-likelihood with the random coefficients
integrated out (so ``az.loo`` leaves out a person, not a row), a draw of each person's
coefficients from their conditional posterior, replicated choices, and for latent-class models
the posterior class probabilities of each person.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from mixlogit.bayes.model import (
    latent_class_person_loglik,
    nodes_person_loglik,
    person_loglik,
    quadrature_person_loglik,
)
from mixlogit.bayes.numpyro_model import BACKEND
from mixlogit.bayes.panel import PanelArrays
from mixlogit.bayes.resampling import gamma_draws
from mixlogit.draws import sobol_normals
from mixlogit.mixing import hierarchical_coefficients
from mixlogit.quadrature import standard_normal_rule
from mixlogit.spec import ModelSpec

__all__ = ["PostProcessed", "loglik_rule", "postprocess"]

OPS = BACKEND.ops


@dataclass
class PostProcessed:
    """Outputs per posterior draw, flattened over chains: ``N = chains * draws``.

    Attributes:
        log_likelihood: ``(N, P)`` per-person log-likelihood (marginal over person draws).
        beta_person: ``(N, P, K)`` one draw of each person's coefficients, or None.
        y_rep: ``(N, P, T)`` replicated chosen slots, or None.
        class_probability: ``(N, P, C)`` posterior class probabilities (latent class only).
        loglik_method: how random coefficients were integrated for ``log_likelihood``.
    """

    log_likelihood: np.ndarray | None
    beta_person: np.ndarray | None
    y_rep: np.ndarray | None
    class_probability: np.ndarray | None
    loglik_method: str


def loglik_rule(
    spec: ModelSpec, num_draws: int, num_nodes: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """Integration rule for the marginal per-person likelihood of a hierarchical fit.

    Gauss-Hermite tensor rule (``num_nodes`` per dimension, default 40 for one dimension and
    20 for two) with at most two normal-driven random coefficients and no gamma; otherwise
    ``num_draws`` scrambled Sobol points mapped to normals (equal weights). Returns nodes
    ``(Q, Kz)``, log-weights ``(Q,)`` and a description.
    """
    kz = len(spec.z_random)
    if kz <= 2 and not spec.gamma_random:
        if kz == 0:
            return np.zeros((1, 0)), np.zeros(1), "exact"
        num_nodes = num_nodes or (40 if kz == 1 else 20)
        nodes, log_weights = standard_normal_rule(num_nodes, kz)
        return nodes, log_weights, f"gauss-hermite {num_nodes}^{kz}"
    log_weights = np.full(num_draws, -np.log(num_draws))
    if kz == 0:
        return np.zeros((num_draws, 0)), log_weights, f"monte-carlo {num_draws}"
    return sobol_normals(num_draws, kz, seed), log_weights, f"sobol {num_draws}"


def _flat(samples: dict[str, np.ndarray], n: int) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v.reshape((n, *v.shape[2:]))) for k, v in samples.items()}


def postprocess(
    kind: str,
    spec: ModelSpec,
    samples: dict[str, np.ndarray],
    data: PanelArrays,
    *,
    nodes: np.ndarray | None,
    log_weights: np.ndarray | None,
    loglik: bool,
    person_level: bool,
    seed: int,
) -> PostProcessed:
    """Run the per-draw computations.

    Args:
        kind: ``"hierarchical"``, ``"quadrature"``, ``"latent_class"`` or ``"mnl"``.
        samples: posterior samples ``{site: (chains, draws, ...)}`` (``z``/``u`` needed for
            person-level output of a hierarchical fit).
        nodes, log_weights: integration rule (the fit's rule for quadrature; the rule of
            :func:`loglik_rule` for the log-likelihood of a hierarchical fit).
        loglik: compute the per-person log-likelihood.
        person_level: compute person coefficient draws and replicated choices.
    """
    first = next(iter(samples.values()))
    n = int(first.shape[0] * first.shape[1])
    flat = _flat(samples, n)
    batch = BACKEND.batch(data)
    P, T, J, K = data.X.shape
    has_z = "z" in flat or not spec.z_random
    has_u = "u" in flat or not spec.gamma_random
    person_level = person_level and (kind != "hierarchical" or (has_z and has_u))
    jnodes = None if nodes is None else jnp.asarray(nodes)
    jlogw = None if log_weights is None else jnp.asarray(log_weights)
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    gamma_key = jax.random.PRNGKey(seed + 1)

    def one_draw(args: tuple[dict[str, jax.Array], jax.Array]) -> dict[str, jax.Array]:
        params, key = args
        out: dict[str, jax.Array] = {}
        k_sel, k_rep = jax.random.split(key)
        beta = None
        if kind == "latent_class":
            ll, joint = latent_class_person_loglik(OPS, params, batch)
            out["class_probability"] = jax.nn.softmax(joint, axis=-1)
            if person_level:
                cls = jax.random.categorical(k_sel, joint, axis=-1)
                beta = params["beta_class"][cls]
        elif kind == "quadrature":
            ll, ll_nodes = quadrature_person_loglik(OPS, spec, params, batch, jnodes, jlogw)
            if person_level:
                q = jax.random.categorical(k_sel, ll_nodes + jlogw, axis=-1)
                beta_nodes = hierarchical_coefficients(
                    OPS, spec, params, jnodes, jnp.zeros((jnodes.shape[0], 0))
                )
                beta = beta_nodes[q]
        else:
            if person_level and kind != "mnl":
                z = params.get("z", jnp.zeros((P, 0)))
                u = params.get("u", jnp.zeros((P, 0)))
                beta = hierarchical_coefficients(OPS, spec, params, z, u)
            if kind == "mnl":
                b = hierarchical_coefficients(
                    OPS, spec, params, jnp.zeros((1, 0)), jnp.zeros((1, 0))
                )
                ll = person_loglik(OPS, batch, jnp.broadcast_to(b, (P, K)))
            elif loglik:
                u_draws = gamma_draws(spec, params, gamma_key, jnodes.shape[0])
                beta_nodes = hierarchical_coefficients(OPS, spec, params, jnodes, u_draws)
                ll_nodes = nodes_person_loglik(OPS, batch, beta_nodes)
                ll = jax.scipy.special.logsumexp(ll_nodes + jlogw, axis=-1)
            else:
                ll = jnp.zeros(P)
        if loglik:
            out["log_likelihood"] = ll
        if person_level:
            if beta is None:  # mnl
                b = hierarchical_coefficients(
                    OPS, spec, params, jnp.zeros((1, 0)), jnp.zeros((1, 0))
                )
                beta = jnp.broadcast_to(b, (P, K))
            out["beta_person"] = beta
            V = jnp.einsum("ptjk,pk->ptj", batch["X"], beta)
            V = jnp.where(batch["available"], V, -jnp.inf)
            out["y_rep"] = jax.random.categorical(k_rep, V, axis=-1).astype(jnp.int32)
        return out

    # Keep each chunk of draws to about 2e7 floats of intermediate utilities.
    q = 1 if nodes is None else nodes.shape[0]
    if kind == "latent_class":
        q = int(samples["class_share"].shape[-1])
    per_draw = P * T * J * max(q, 1)
    chunk = int(max(1, min(n, 2e7 // max(per_draw, 1))))
    fn = jax.jit(lambda p, k: jax.lax.map(one_draw, (p, k), batch_size=chunk))
    params_only = {k: v for k, v in flat.items() if k not in ("z", "u", "u_std") or person_level}
    result = {k: np.asarray(v) for k, v in fn(params_only, keys).items()}
    return PostProcessed(
        log_likelihood=result.get("log_likelihood"),
        beta_person=result.get("beta_person"),
        y_rep=result.get("y_rep"),
        class_probability=result.get("class_probability"),
        loglik_method="",
    )
