"""SVI: a Gaussian guide on the population sites, optionally per-person guides, Adam.

The global guide is ``AutoMultivariateNormal`` when the person coefficients are integrated
out (``local_guide="marginal"``: a handful of population parameters, whose posterior
correlations it keeps) and ``AutoNormal`` otherwise; the per-person guides are in
:mod:`mixlogit.bayes.guides`. Adam's step size decays exponentially from ``learning_rate`` to
``learning_rate * lr_decay`` over the run: large steps travel from the prior to the
posterior, small ones at the end keep the single-sample ELBO gradient noise from blurring the
guide. Decision-makers are subsampled ``batch_size`` at a time (without replacement per step).

:func:`run_svi` returns samples ``{site: (1, num_samples, ...)}`` (one "chain") and the loss
(negative ELBO) of every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mixlogit.bayes.guides import centred_local_guide, noncentred_local_guide
from mixlogit.bayes.model import GLOBAL_SITES, latent_class_coefficients
from mixlogit.bayes.panel import PanelArrays
from mixlogit.bayes.resampling import conditional_person_draws
from mixlogit.spec import ModelSpec

__all__ = ["run_svi"]

#: Sites of the hierarchical model's per-person draws (hidden from the global guide).
LOCAL_SITES = ("z", "u_std", "u")


def run_svi(
    backend: str,
    model_fn: Callable,
    kind: str,
    spec: ModelSpec,
    panel: PanelArrays,
    options: dict[str, Any],
    *,
    order_by: int | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Fit ``model_fn`` (bound to ``backend``, ``"numpyro"`` or ``"pyro"``) by SVI.

    Args:
        kind: the model kind (``"hierarchical"`` with ``options["local_guide"]`` deciding how
            the person draws are handled).
        options: ``num_steps``, ``learning_rate``, ``lr_decay``, ``batch_size``,
            ``local_guide``, ``positive_guide``, ``num_samples`` (draws from the fitted
            guide), ``num_draws`` (candidates of the marginal guide's person draws),
            ``person_level``, ``seed``.
        order_by: the ordered coefficient of a latent-class model (None otherwise).
    """
    marginal = kind == "hierarchical" and options["local_guide"] == "marginal"
    local = kind == "hierarchical" and not marginal
    if local and options["local_guide"] == "centred" and backend != "numpyro":
        raise ValueError("local_guide='centred' is only available with backend='numpyro'")
    runner = _numpyro if backend == "numpyro" else _pyro
    samples, losses, local_params = runner(model_fn, spec, panel, options, marginal, local)
    if order_by is not None and "beta_class" not in samples:
        samples["beta_class"] = latent_class_coefficients(
            _numpy_ops(), samples["beta_ordered"], samples.get("beta_rest"), order_by
        )
    if options["person_level"] and (local or marginal):
        glob = {k: v[0] for k, v in samples.items() if k in GLOBAL_SITES}
        seed = options["seed"] + 7
        if local:
            _, sample_local = _local_guide(backend, spec, panel.num_panels, options)
            draws = sample_local(local_params, glob, seed, options["num_samples"])
            samples.update({k: v[None] for k, v in draws.items()})
        else:
            import jax

            from mixlogit.bayes.numpyro_model import BACKEND

            key = jax.random.split(jax.random.PRNGKey(seed))[1]  # [0] drew the globals
            z, u = conditional_person_draws(
                spec, glob, BACKEND.batch(panel), key, options["num_draws"]
            )
            samples["z"], samples["u"] = z[None], u[None]
    return samples, losses


def _numpy_ops():
    from mixlogit._choice_ops import choice_ops

    return choice_ops("numpy")


def _local_guide(backend: str, spec: ModelSpec, num_panels: int, options: dict):
    if backend == "numpyro":
        from mixlogit.bayes.numpyro_model import BACKEND
    else:
        from mixlogit.bayes.pyro_model import BACKEND
    make = centred_local_guide if options["local_guide"] == "centred" else noncentred_local_guide
    return make(BACKEND, spec, num_panels, options["positive_guide"])


def _guides(backend, model_fn, spec, num_panels, options, marginal, local):
    """The global autoguide of ``model_fn`` and the full guide (global, then the local guide of
    the person draws when ``local``) of ``backend`` (``"numpyro"``, ``"pyro"``).

    With ``marginal`` (the person coefficients integrated out) the global guide is a
    multivariate normal; otherwise a mean-field normal over the sites other than the person
    draws :data:`LOCAL_SITES`.
    """
    if backend == "numpyro":
        from numpyro.handlers import block
        from numpyro.infer import autoguide
        from numpyro.infer import init_to_feasible as init_loc_fn
    else:
        from pyro.infer import autoguide
        from pyro.infer.autoguide.initialization import init_to_feasible as init_loc_fn
        from pyro.poutine import block

    if marginal:
        global_guide = autoguide.AutoMultivariateNormal(
            model_fn, init_loc_fn=init_loc_fn, init_scale=0.05
        )
    else:
        global_guide = autoguide.AutoNormal(
            block(model_fn, hide=list(LOCAL_SITES) if local else []),
            init_loc_fn=init_loc_fn,
            init_scale=0.05,
        )
    local_guide = _local_guide(backend, spec, num_panels, options)[0] if local else None

    def guide(batch, batch_idx=None):
        glob = global_guide(batch, batch_idx)
        if local_guide is not None:
            local_guide(glob, batch, batch_idx)

    return global_guide, guide


def _person_batches(rng: np.random.Generator, num_steps: int, num_panels: int, size: int):
    """``(num_steps, size)`` sorted persons per step, each a subsample without replacement."""
    if size >= num_panels:
        return np.broadcast_to(np.arange(num_panels), (num_steps, num_panels))
    return np.argsort(rng.random((num_steps, num_panels)), axis=1)[:, :size]


def _numpyro(model_fn, spec, panel, options, marginal, local):
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO

    from mixlogit.bayes.numpyro_model import BACKEND

    P, B = panel.num_panels, options["batch_size"]
    global_guide, guide = _guides("numpyro", model_fn, spec, P, options, marginal, local)

    start, final, steps = options["learning_rate"], options["lr_decay"], options["num_steps"]
    schedule = lambda step: start * jnp.power(final, jnp.minimum(step / steps, 1.0))  # noqa: E731
    svi = SVI(model_fn, guide, numpyro.optim.Adam(schedule), Trace_ELBO())
    rng = np.random.default_rng(options["seed"])
    full = BACKEND.batch(panel)
    chunk = 100  # steps per compiled scan (one dispatch per chunk)

    def batch_of(idx):
        return full if B >= P else {k: v[idx] for k, v in full.items()}

    first = jnp.asarray(_person_batches(rng, 1, P, B)[0])
    state = svi.init(jax.random.PRNGKey(options["seed"]), batch_of(first), first)

    @jax.jit
    def run_chunk(state, idx_chunk):
        def body(s, idx):
            return svi.update(s, batch_of(idx), idx)

        return jax.lax.scan(body, state, idx_chunk)

    losses = []
    for _done in range(0, steps, chunk):
        state, chunk_losses = run_chunk(state, jnp.asarray(_person_batches(rng, chunk, P, B)))
        losses.append(np.asarray(chunk_losses))
    losses = np.concatenate(losses)[:steps]
    params = svi.get_params(state)
    key = jax.random.PRNGKey(options["seed"] + 7)
    draws = global_guide.sample_posterior(
        jax.random.split(key)[0], params, sample_shape=(options["num_samples"],)
    )
    samples = {k: np.asarray(v)[None] for k, v in draws.items()}
    return samples, losses, {k: np.asarray(v) for k, v in params.items()}


def _pyro(model_fn, spec, panel, options, marginal, local):
    import pyro
    import torch
    from pyro import poutine
    from pyro.infer import SVI, Trace_ELBO

    from mixlogit.bayes.pyro_model import BACKEND

    P, B = panel.num_panels, options["batch_size"]
    pyro.set_rng_seed(options["seed"])
    pyro.clear_param_store()
    global_guide, guide = _guides("pyro", model_fn, spec, P, options, marginal, local)

    # Adam with the step size decaying exponentially to lr * lr_decay (as with NumPyro);
    # ClippedAdam's clipping is switched off
    per_step = options["lr_decay"] ** (1.0 / options["num_steps"])
    optim = pyro.optim.ClippedAdam(
        {"lr": options["learning_rate"], "lrd": per_step, "clip_norm": 1e300}
    )
    svi = SVI(model_fn, guide, optim, Trace_ELBO())
    rng = np.random.default_rng(options["seed"])
    full = BACKEND.batch(panel) if B >= P else None
    losses = np.empty(options["num_steps"])
    for step in range(options["num_steps"]):
        if full is not None:
            losses[step] = svi.step(full, None)
        else:
            persons = np.sort(rng.choice(P, B, replace=False))
            losses[step] = svi.step(BACKEND.batch(panel.take(persons)), torch.as_tensor(persons))
    probe_size = min(P, 2)
    probe = BACKEND.batch(panel.take(np.arange(probe_size)))
    with torch.no_grad():
        traces = [
            poutine.trace(global_guide).get_trace(probe, torch.arange(probe_size))
            for _ in range(options["num_samples"])
        ]
    samples = {
        name: np.stack([BACKEND.to_numpy(t.nodes[name]["value"]) for t in traces])[None]
        for name, site in traces[0].nodes.items()
        if site["type"] == "sample" and name in GLOBAL_SITES
    }
    store = pyro.get_param_store()
    local_params = {k: BACKEND.to_numpy(store[k]) for k in store.keys()}
    return samples, losses, local_params
