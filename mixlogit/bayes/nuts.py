"""NUTS: the No-U-Turn sampler on NumPyro (vectorised chains) or Pyro (chains in turn).

:func:`run_nuts` returns the posterior samples ``{site: (chains, draws, ...)}`` as NumPy arrays
(person sites ``(chains, draws, P, k)``; ``u`` and ``beta_class`` included) and the sample
statistics ``{"diverging": (chains, draws), ...}`` (NumPyro also gives ``n_steps``,
``acceptance_rate``, ``energy`` and ``lp``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from mixlogit._choice_ops import choice_ops
from mixlogit.bayes.model import gamma_from_standardised, latent_class_coefficients
from mixlogit.bayes.panel import PanelArrays
from mixlogit.spec import ModelSpec

__all__ = ["run_nuts"]

#: NumPyro's extra fields -> the ArviZ sample_stats names
_NUMPYRO_STATS = {
    "diverging": "diverging",
    "num_steps": "n_steps",
    "accept_prob": "acceptance_rate",
    "energy": "energy",
}


def run_nuts(
    backend: str,
    model_fn: Callable,
    panel: PanelArrays,
    spec: ModelSpec,
    options: dict[str, Any],
    *,
    order_by: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Sample ``model_fn`` (a model of :mod:`mixlogit.bayes.model` bound to ``backend``).

    Args:
        backend: ``"numpyro"`` or ``"pyro"``.
        options: ``num_warmup``, ``num_samples``, ``num_chains``, ``chain_method`` (NumPyro),
            ``target_accept``, ``max_tree_depth``, ``seed``, ``progress``.
        order_by: the ordered coefficient of a latent-class model (None otherwise).
    """
    if backend == "numpyro":
        return _numpyro(model_fn, panel, options)
    samples, stats = _pyro(model_fn, panel, options)
    numpy_ops = choice_ops("numpy")
    if order_by is not None:  # Pyro's MCMC keeps no deterministic site
        samples["beta_class"] = latent_class_coefficients(
            numpy_ops, samples["beta_ordered"], samples.get("beta_rest"), order_by
        )
    for name, width in (("z", len(spec.z_random)), ("u_std", len(spec.gamma_random))):
        if name in samples:  # the plate dimension comes back flattened
            samples[name] = samples[name].reshape(*samples[name].shape[:2], panel.num_panels, width)
    if "u_std" in samples:  # the Gamma(k, 1) draws of the post-processing
        samples["u"] = gamma_from_standardised(
            numpy_ops, samples["log_shape"][..., None, :], samples["u_std"]
        )
    return samples, stats


def _numpyro(model_fn, panel, options):
    import jax
    from numpyro.infer import MCMC, NUTS, init_to_uniform

    from mixlogit.bayes.numpyro_model import BACKEND

    kernel = NUTS(
        model_fn,
        target_accept_prob=options["target_accept"],
        max_tree_depth=options["max_tree_depth"],
        init_strategy=init_to_uniform(radius=1.0),
    )
    chain_method = options["chain_method"]
    if chain_method == "parallel" and jax.local_device_count() < options["num_chains"]:
        chain_method = "vectorized"
    mcmc = MCMC(
        kernel,
        num_warmup=options["num_warmup"],
        num_samples=options["num_samples"],
        num_chains=options["num_chains"],
        chain_method=chain_method,
        progress_bar=options["progress"],
    )
    with warnings.catch_warnings():
        # numpyro warns when chains > devices; vectorized chains are the intended CPU path.
        warnings.filterwarnings("ignore", message="There are not enough devices")
        mcmc.run(
            jax.random.PRNGKey(options["seed"]),
            BACKEND.batch(panel),
            extra_fields=(*_NUMPYRO_STATS, "potential_energy"),
        )
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    stats = {_NUMPYRO_STATS[k]: np.asarray(extra[k]) for k in _NUMPYRO_STATS}
    stats["lp"] = -np.asarray(extra["potential_energy"])
    return samples, stats


def _pyro(model_fn, panel, options):
    import pyro
    from pyro.infer import MCMC, NUTS
    from pyro.infer.autoguide.initialization import init_to_uniform

    from mixlogit.bayes.pyro_model import BACKEND

    batch = BACKEND.batch(panel)
    per_chain: list[dict[str, np.ndarray]] = []
    diverging = []
    for chain in range(options["num_chains"]):
        # Pyro's multi-chain mode forks processes: run the chains one after another
        pyro.set_rng_seed(options["seed"] + 1000 * chain)
        pyro.clear_param_store()
        kernel = NUTS(
            model_fn,
            target_accept_prob=options["target_accept"],
            max_tree_depth=options["max_tree_depth"],
            init_strategy=init_to_uniform(radius=1.0),
            jit_compile=True,
            ignore_jit_warnings=True,
        )
        mcmc = MCMC(
            kernel,
            num_samples=options["num_samples"],
            warmup_steps=options["num_warmup"],
            num_chains=1,
            disable_progbar=not options["progress"],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mcmc.run(batch)
        per_chain.append({k: BACKEND.to_numpy(v) for k, v in mcmc.get_samples().items()})
        div = np.zeros(options["num_samples"], dtype=bool)
        div[np.asarray(mcmc.diagnostics().get("divergences", {}).get("chain 0", []), int)] = True
        diverging.append(div)
    samples = {k: np.stack([c[k] for c in per_chain]) for k in per_chain[0]}
    return samples, {"diverging": np.stack(diverging)}
