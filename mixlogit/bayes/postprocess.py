"""Per-draw post-processing shared by both backends (run in JAX, float64).

For every posterior draw: the per-decision-maker log-likelihood with the random coefficients
integrated out (so ``az.loo`` leaves out a person, not a row), a draw of each person's
coefficients from their conditional posterior, replicated choices, and for latent-class models
the posterior class probabilities of each person.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import norm, qmc

from mixlogit.bayes import numpyro_model as nm
from mixlogit.bayes.spec import BayesSpec, PanelArrays

__all__ = ["PostProcessed", "loglik_rule", "postprocess", "sobol_normals"]


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
    spec: BayesSpec, loglik_draws: int, loglik_nodes: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """Integration rule for the marginal per-person likelihood of a hierarchical fit.

    Gauss-Hermite tensor rule (``loglik_nodes`` per dimension) with at most two z-driven
    random coefficients and no gamma; otherwise ``loglik_draws`` scrambled Sobol points mapped
    to normals (equal weights).
    """
    kz = len(spec.z_random_names)
    if kz <= 2 and not spec.gamma_names:
        if kz == 0:
            return np.zeros((1, 0)), np.zeros(1), "exact"
        loglik_nodes = loglik_nodes or (40 if kz == 1 else 20)
        nodes, logw = nm.gauss_hermite_nodes(loglik_nodes, kz)
        return nodes, logw, f"gauss-hermite {loglik_nodes}^{kz}"
    if kz == 0:
        return (
            np.zeros((loglik_draws, 0)),
            np.full(loglik_draws, -np.log(loglik_draws)),
            (f"monte-carlo {loglik_draws}"),
        )
    nodes = sobol_normals(loglik_draws, kz, seed)
    return nodes, np.full(loglik_draws, -np.log(loglik_draws)), f"sobol {loglik_draws}"


def sobol_normals(num: int, dim: int, seed: int) -> np.ndarray:
    """``(num, dim)`` scrambled Sobol points mapped to standard normals."""
    with warnings.catch_warnings():
        # balance properties need a power of 2 (the defaults are); other counts still work
        warnings.simplefilter("ignore", UserWarning)
        sobol = qmc.Sobol(d=dim, scramble=True, seed=seed).random(num)
    return norm.ppf(np.clip(sobol, 1e-12, 1 - 1e-12))


def _flat(samples: dict[str, np.ndarray], n: int) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v.reshape((n, *v.shape[2:]))) for k, v in samples.items()}


def postprocess(
    kind: str,
    spec: BayesSpec,
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
    batch = {
        "X": jnp.asarray(data.X),
        "chosen": jnp.asarray(data.chosen),
        "available": jnp.asarray(data.available),
        "weights": jnp.asarray(data.weights),
    }
    P, T, J, K = data.X.shape
    has_z = "z" in flat or not spec.z_random_names
    has_u = "u" in flat or not spec.gamma_names
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
            ll, joint = nm.latent_class_person_loglik(params, batch)
            out["class_probability"] = jax.nn.softmax(joint, axis=-1)
            if person_level:
                cls = jax.random.categorical(k_sel, joint, axis=-1)
                beta = params["beta_class"][cls]
        elif kind == "quadrature":
            ll, ll_nodes = nm.quadrature_person_loglik(spec, params, batch, jnodes, jlogw)
            if person_level:
                q = jax.random.categorical(k_sel, ll_nodes + jlogw, axis=-1)
                beta_nodes = nm.coefficients_from_params(
                    spec, params, jnodes, jnp.zeros((jnodes.shape[0], 0))
                )
                beta = beta_nodes[q]
        else:
            if person_level and kind != "mnl":
                z = params.get("z", jnp.zeros((P, 0)))
                u = params.get("u", jnp.zeros((P, 0)))
                beta = nm.coefficients_from_params(spec, params, z, u)
            if kind == "mnl":
                b = nm.coefficients_from_params(spec, params, jnp.zeros((1, 0)), jnp.zeros((1, 0)))
                ll = nm._situation_logp_person(batch, jnp.broadcast_to(b, (P, K)))
            elif loglik:
                if spec.gamma_names:
                    u_draws = nm.sample_gamma_draws(spec, params, gamma_key, jnodes.shape[0])
                else:
                    u_draws = jnp.zeros((jnodes.shape[0], 0))
                beta_nodes = nm.coefficients_from_params(spec, params, jnodes, u_draws)
                ll_nodes = nm._nodes_person_loglik(batch, beta_nodes)
                ll = jax.scipy.special.logsumexp(ll_nodes + jlogw, axis=-1)
            else:
                ll = jnp.zeros(P)
        if loglik:
            out["log_likelihood"] = ll
        if person_level:
            if beta is None:  # mnl
                b = nm.coefficients_from_params(spec, params, jnp.zeros((1, 0)), jnp.zeros((1, 0)))
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


def summarise_draws(values: np.ndarray, axis: int = 0) -> dict[str, Any]:
    """Mean, SD and 3%/50%/97% quantiles along ``axis``."""
    return {
        "mean": values.mean(axis),
        "sd": values.std(axis, ddof=1)
        if values.shape[axis] > 1
        else np.zeros_like(values.mean(axis)),
        "q3%": np.quantile(values, 0.03, axis=axis),
        "median": np.quantile(values, 0.5, axis=axis),
        "q97%": np.quantile(values, 0.97, axis=axis),
    }
