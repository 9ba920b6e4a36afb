"""NUTS and SVI drivers and the ``fit_bayes`` entry point.

``fit_bayes`` runs in float64 inside a ``jax.enable_x64(True)`` context, like the classical
estimators (:mod:`mixlogit.likelihood`): choice log-likelihoods summed over thousands of
situations lose digits in float32, and the global JAX configuration is left untouched. All
outputs are NumPy arrays.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from mixlogit.bayes.spec import (
    BayesPriors,
    BayesSpec,
    PanelArrays,
    choice_arrays_from_data,
    panel_arrays,
    spec_from_model,
)

__all__ = ["fit_bayes"]

_METHODS = ("nuts", "svi")
_BACKENDS = ("numpyro", "pyro")
_INTEGRATE = ("sample", "quadrature")
_LOCAL_GUIDES = ("marginal", "centred", "noncentred")
_NUTS_STATS = {
    "diverging": "diverging",
    "num_steps": "n_steps",
    "accept_prob": "acceptance_rate",
    "energy": "energy",
}


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _device_batch(data: PanelArrays) -> dict[str, Any]:
    import jax.numpy as jnp

    return {
        "X": jnp.asarray(data.X),
        "chosen": jnp.asarray(data.chosen),
        "available": jnp.asarray(data.available),
        "weights": jnp.asarray(data.weights),
    }


def _model_kind(model: Any, spec: BayesSpec, integrate: str) -> str:
    from mixlogit.bayes.latent_class import LatentClassLogit

    if isinstance(model, LatentClassLogit):
        return "latent_class"
    if not spec.has_random:
        return "mnl"
    if integrate == "quadrature":
        kz = len(spec.z_random_names)
        if spec.gamma_names:
            raise ValueError(
                f"integrate='quadrature' does not support gamma coefficients "
                f"({list(spec.gamma_names)}); use integrate='sample'"
            )
        if kz > 2:
            raise ValueError(
                f"integrate='quadrature' integrates at most 2 random coefficients per person, "
                f"the model has {kz} ({list(spec.z_random_names)}); use integrate='sample'"
            )
        return "quadrature"
    return "hierarchical"


# --------------------------------------------------------------------------------------------
# NumPyro
# --------------------------------------------------------------------------------------------
def _numpyro_model_fn(kind: str, spec: BayesSpec, priors: BayesPriors, P: int, extra: dict):
    from mixlogit.bayes import numpyro_model as nm

    if kind == "hierarchical" and "z_draws" in extra:
        import jax.numpy as jnp

        return partial(
            nm.simulated_model,
            num_panels=P,
            spec=spec,
            priors=priors,
            z_draws=jnp.asarray(extra["z_draws"]),
        )
    if kind in ("hierarchical", "mnl"):
        return partial(nm.hierarchical_model, num_panels=P, spec=spec, priors=priors)
    if kind == "quadrature":
        import jax.numpy as jnp

        return partial(
            nm.quadrature_model,
            num_panels=P,
            spec=spec,
            priors=priors,
            nodes=jnp.asarray(extra["nodes"]),
            log_weights=jnp.asarray(extra["log_weights"]),
        )
    return partial(
        nm.latent_class_model,
        num_panels=P,
        spec=spec,
        priors=priors,
        num_classes=extra["num_classes"],
        order_by=extra["order_by"],
    )


def _nuts_numpyro(model_fn: Callable, data: PanelArrays, opts: dict) -> tuple[dict, dict]:
    import jax
    from numpyro.infer import MCMC, NUTS, init_to_uniform

    kernel = NUTS(
        model_fn,
        target_accept_prob=opts["target_accept"],
        max_tree_depth=opts["max_tree_depth"],
        init_strategy=init_to_uniform(radius=1.0),
    )
    chain_method = opts["chain_method"]
    if chain_method == "parallel" and jax.local_device_count() < opts["num_chains"]:
        chain_method = "vectorized"
    mcmc = MCMC(
        kernel,
        num_warmup=opts["num_warmup"],
        num_samples=opts["num_samples"],
        num_chains=opts["num_chains"],
        chain_method=chain_method,
        progress_bar=opts["progress_bar"],
    )
    with warnings.catch_warnings():
        # numpyro warns when chains > devices; vectorized chains are the intended CPU path.
        warnings.filterwarnings("ignore", message="There are not enough devices")
        mcmc.run(
            jax.random.PRNGKey(opts["seed"]),
            _device_batch(data),
            extra_fields=(*_NUTS_STATS, "potential_energy"),
        )
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    stats = {_NUTS_STATS[k]: np.asarray(extra[k]) for k in _NUTS_STATS}
    stats["lp"] = -np.asarray(extra["potential_energy"])
    return samples, stats


def _u_std_law_lognormal(log_u_loc, log_u_scale, log_shape):
    """Guide law of the model site ``u_std`` when ``u ~ LogNormal(log_u_loc, log_u_scale)``:
    ``u_std = (log u - digamma(k)) / sqrt(trigamma(k))`` is then normal."""
    import numpyro.distributions as dist

    from mixlogit.bayes.numpyro_model import loggamma_moments

    m, s = loggamma_moments(log_shape)
    return dist.Normal((log_u_loc - m) / s, log_u_scale / s)


def _u_std_law_gamma(concentration, rate, log_shape):
    """Guide law of ``u_std`` when ``u ~ Gamma(concentration, rate)`` (pushed through
    ``log`` and the standardisation)."""
    import numpyro.distributions as dist
    from numpyro.distributions import transforms

    from mixlogit.bayes.numpyro_model import loggamma_moments

    m, s = loggamma_moments(log_shape)
    return dist.TransformedDistribution(
        dist.Gamma(concentration, rate),
        [transforms.ExpTransform().inv, transforms.AffineTransform(-m / s, 1.0 / s)],
    )


def _noncentred_local_guide_numpyro(spec: BayesSpec, P: int, positive_guide: str):
    """Mean-field per-person guide on the model's own non-centred draws: ``z_n ~ Normal``
    (a LogNormal family on lognormal coefficients) and ``u_n ~ LogNormal`` or ``Gamma``
    (mapped to the model's standardised site ``u_std`` through the sampled shape)."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    kz, kg = len(spec.z_random_names), len(spec.gamma_names)

    def guide(glob, batch, batch_idx=None):
        B = batch["X"].shape[0]
        idx = jnp.arange(B) if batch_idx is None else batch_idx
        with numpyro.plate("person", B), numpyro.handlers.scale(scale=P / B):
            if kz:
                loc = numpyro.param("z_loc", jnp.zeros((P, kz)))
                scale = numpyro.param(
                    "z_scale", jnp.full((P, kz), 0.3), constraint=constraints.positive
                )
                numpyro.sample("z", dist.Normal(loc[idx], scale[idx]).to_event(1))
            if kg:
                if positive_guide == "lognormal":
                    loc = numpyro.param("u_loc", jnp.zeros((P, kg)))
                    scale = numpyro.param(
                        "u_scale", jnp.full((P, kg), 0.3), constraint=constraints.positive
                    )
                    law = _u_std_law_lognormal(loc[idx], scale[idx], glob["log_shape"])
                else:
                    conc = numpyro.param(
                        "u_concentration", jnp.full((P, kg), 5.0), constraint=constraints.positive
                    )
                    rate = numpyro.param(
                        "u_rate", jnp.full((P, kg), 5.0), constraint=constraints.positive
                    )
                    law = _u_std_law_gamma(conc[idx], rate[idx], glob["log_shape"])
                numpyro.sample("u_std", law.to_event(1))

    def sample_local(prm: dict, glob: dict, key, num: int) -> dict[str, np.ndarray]:
        out = {}
        kz_key, kg_key = jax.random.split(key)
        if kz:
            eps = jax.random.normal(kz_key, (num, P, kz))
            out["z"] = np.asarray(prm["z_loc"] + prm["z_scale"] * eps)
        if kg:
            if positive_guide == "lognormal":
                eps = jax.random.normal(kg_key, (num, P, kg))
                out["u"] = np.asarray(jnp.exp(prm["u_loc"] + prm["u_scale"] * eps))
            else:
                g = jax.random.gamma(kg_key, prm["u_concentration"], (num, P, kg))
                out["u"] = np.asarray(g / prm["u_rate"])
        return out

    return guide, sample_local


def _local_guide_numpyro(spec: BayesSpec, P: int, positive_guide: str):
    """Per-person guide in *coefficient* space (centred), shifted to the model's non-centred
    draws through the sampled population parameters.

    For a z-driven coefficient the guide is ``b_n ~ Normal(b_loc_n, b_scale_n)`` on
    ``mu + sigma * z_n`` (the coefficient itself for normals, its log for lognormals), hence
    ``z_n = (b_n - mu) / sigma`` (whitened by ``L_corr`` for correlated coefficients). For a
    gamma coefficient the guide is a LogNormal or Gamma law on ``|beta_n|`` and
    ``u_n = |beta_n| * shape / mean``. Centring the guide keeps it accurate when people's
    choices pin their coefficients down, where a mean-field guide on ``z_n`` shrinks the
    population SDs towards zero.
    """
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    kz, kg = len(spec.z_random_names), len(spec.gamma_names)
    z_mu_index = np.asarray([spec.random_names.index(n) for n in spec.z_random_names], int)
    g_mu_index = np.asarray([spec.random_names.index(n) for n in spec.gamma_names], int)
    corr_cols = np.asarray([spec.z_random_names.index(n) for n in spec.correlated], int)

    def z_from_coefficient_space(b, glob):
        w = (b - glob["mu"][..., z_mu_index]) / glob["sigma"]
        if corr_cols.size:
            L = glob["L_corr"]
            wc = jnp.moveaxis(w[..., corr_cols], -1, 0)  # (Kc, ...)
            flat = wc.reshape(wc.shape[0], -1)
            zc = jax.scipy.linalg.solve_triangular(L, flat, lower=True).reshape(wc.shape)
            w = w.at[..., corr_cols].set(jnp.moveaxis(zc, 0, -1))
        return w

    def params():
        out = {}
        if kz:
            out["b_loc"] = numpyro.param("b_loc", jnp.zeros((P, kz)))
            out["b_scale"] = numpyro.param(
                "b_scale", jnp.full((P, kz), 0.3), constraint=constraints.positive
            )
        if kg:
            if positive_guide == "lognormal":
                out["g_loc"] = numpyro.param("g_loc", jnp.zeros((P, kg)))
                out["g_scale"] = numpyro.param(
                    "g_scale", jnp.full((P, kg), 0.3), constraint=constraints.positive
                )
            else:
                out["g_concentration"] = numpyro.param(
                    "g_concentration", jnp.full((P, kg), 5.0), constraint=constraints.positive
                )
                out["g_rate"] = numpyro.param(
                    "g_rate", jnp.full((P, kg), 5.0), constraint=constraints.positive
                )
        return out

    def guide(glob, batch, batch_idx=None):
        B = batch["X"].shape[0]
        idx = jnp.arange(B) if batch_idx is None else batch_idx
        prm = params()
        with numpyro.plate("person", B), numpyro.handlers.scale(scale=P / B):
            if kz:
                sig = glob["sigma"]
                if corr_cols.size:
                    # loc exactly mapped; scale mapped per column (ignores the rotation)
                    loc = z_from_coefficient_space(prm["b_loc"][idx], glob)
                else:
                    loc = (prm["b_loc"][idx] - glob["mu"][z_mu_index]) / sig
                numpyro.sample("z", dist.Normal(loc, prm["b_scale"][idx] / sig).to_event(1))
            if kg:
                # u = |beta| * shape / mean with log(shape / mean) = log_shape - mu
                log_ratio = glob["log_shape"] - glob["mu"][g_mu_index]
                if positive_guide == "lognormal":
                    law = _u_std_law_lognormal(
                        prm["g_loc"][idx] + log_ratio, prm["g_scale"][idx], glob["log_shape"]
                    )
                else:
                    rate = prm["g_rate"][idx] * jnp.exp(-log_ratio)
                    law = _u_std_law_gamma(prm["g_concentration"][idx], rate, glob["log_shape"])
                numpyro.sample("u_std", law.to_event(1))

    def sample_local(prm: dict, glob: dict, key, num: int) -> dict[str, np.ndarray]:
        """Person draws for each of the ``num`` global draws ``glob`` (leading dim num)."""
        out = {}
        kz_key, kg_key = jax.random.split(key)
        g = {k: jnp.asarray(v)[:, None] for k, v in glob.items()}  # broadcast over persons
        if "L_corr" in glob:
            g["L_corr"] = jnp.asarray(glob["L_corr"])
        if kz:
            b = prm["b_loc"] + prm["b_scale"] * jax.random.normal(kz_key, (num, P, kz))
            if corr_cols.size:
                out["z"] = np.asarray(
                    jax.vmap(lambda bb, gg: z_from_coefficient_space(bb, gg))(
                        b, {k: v[:, 0] if k != "L_corr" else v for k, v in g.items()}
                    )
                )
            else:
                out["z"] = np.asarray((b - g["mu"][..., z_mu_index]) / g["sigma"])
        if kg:
            log_ratio = g["log_shape"] - g["mu"][..., g_mu_index]
            if positive_guide == "lognormal":
                eps = jax.random.normal(kg_key, (num, P, kg))
                out["u"] = np.asarray(jnp.exp(prm["g_loc"] + prm["g_scale"] * eps + log_ratio))
            else:
                beta_abs = jax.random.gamma(kg_key, prm["g_concentration"], (num, P, kg))
                out["u"] = np.asarray(beta_abs / prm["g_rate"] * jnp.exp(log_ratio))
        return out

    return guide, sample_local


def _learning_rate_schedule(opts: dict) -> Callable:
    """Adam step size decaying exponentially from ``learning_rate`` to ``learning_rate *
    lr_decay`` over the run: large steps travel from the prior to the posterior, small ones
    at the end keep the single-sample ELBO gradient noise from blurring the guide."""
    import jax.numpy as jnp

    start, final, steps = opts["learning_rate"], opts["lr_decay"], opts["num_steps"]
    return lambda step: start * jnp.power(final, jnp.minimum(step / steps, 1.0))


def _svi_numpyro(
    model_fn: Callable, kind: str, spec: BayesSpec, data: PanelArrays, opts: dict
) -> tuple[dict, np.ndarray]:
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO, init_to_feasible
    from numpyro.infer.autoguide import AutoMultivariateNormal, AutoNormal

    P = data.num_panels
    B = opts["batch_size"]
    marginal = kind == "hierarchical" and opts["local_guide"] == "marginal"
    local_sites = ["z", "u_std", "u"] if kind == "hierarchical" and not marginal else []
    if marginal:
        # a handful of population parameters: a full-covariance Gaussian in the unconstrained
        # space (log for SDs and shapes) keeps their posterior correlations (e.g. mean-SD)
        global_guide = AutoMultivariateNormal(
            model_fn, init_loc_fn=init_to_feasible, init_scale=0.05
        )
    else:
        global_guide = AutoNormal(
            numpyro.handlers.block(model_fn, hide=local_sites),
            init_loc_fn=init_to_feasible,
            init_scale=0.05,
        )
    make_local = (
        _local_guide_numpyro
        if opts["local_guide"] == "centred"
        else _noncentred_local_guide_numpyro
    )
    local_guide, sample_local = make_local(spec, P, opts["positive_guide"])

    def guide(batch, batch_idx=None):
        glob = global_guide(batch, batch_idx)
        if local_sites:
            local_guide(glob, batch, batch_idx)

    optim = numpyro.optim.Adam(_learning_rate_schedule(opts))
    svi = SVI(model_fn, guide, optim, Trace_ELBO())
    rng = np.random.default_rng(opts["seed"])
    key = jax.random.PRNGKey(opts["seed"])
    steps = opts["num_steps"]
    full = _device_batch(data)
    chunk = 100  # steps per compiled scan (one dispatch per chunk)

    def batch_of(idx):
        return full if B >= P else {k: v[idx] for k, v in full.items()}

    def person_indices(n: int) -> np.ndarray:
        # (n, B) persons per step, each step a subsample without replacement
        if B >= P:
            return np.broadcast_to(np.arange(P), (n, P))
        return np.argsort(rng.random((n, P)), axis=1)[:, :B]

    first = jnp.asarray(person_indices(1)[0])
    state = svi.init(key, batch_of(first), first)

    @jax.jit
    def run_chunk(state, idx_chunk):
        def body(s, idx):
            return svi.update(s, batch_of(idx), idx)

        return jax.lax.scan(body, state, idx_chunk)

    losses = []
    for _done in range(0, steps, chunk):
        state, chunk_losses = run_chunk(state, jnp.asarray(person_indices(chunk)))
        losses.append(np.asarray(chunk_losses))
    losses = np.concatenate(losses)[:steps]
    params = svi.get_params(state)
    num = opts["num_posterior_draws"]
    k1, k2 = jax.random.split(jax.random.PRNGKey(opts["seed"] + 7))
    global_draws = global_guide.sample_posterior(k1, params, sample_shape=(num,))
    samples = {k: np.asarray(v)[None] for k, v in global_draws.items()}
    if local_sites and opts["person_level"]:
        for k, v in sample_local(params, global_draws, k2, num).items():
            samples[k] = v[None]
    if marginal and opts["person_level"]:
        z, u = _conditional_person_draws(spec, global_draws, full, k2, opts["svi_draws"])
        samples["z"], samples["u"] = z[None], u[None]
    return samples, losses


def _conditional_person_draws(
    spec: BayesSpec, global_draws: dict, batch: dict, key, num_candidates: int
) -> tuple[np.ndarray, np.ndarray]:
    """Person draws ``z (N, P, Kz)``, ``u (N, P, Kg)`` given each of the ``N`` population
    draws, by sampling-importance-resampling (see
    :func:`mixlogit.bayes.numpyro_model.conditional_person_draws`)."""
    import jax

    from mixlogit.bayes import numpyro_model as nm

    params = {k: jax.numpy.asarray(v) for k, v in global_draws.items()}
    num = next(iter(params.values())).shape[0]
    keys = jax.random.split(key, num)
    P, T, J, _ = batch["X"].shape
    # about 2e7 floats of utilities per chunk of draws
    chunk = int(max(1, min(num, 2e7 // (P * T * J * num_candidates))))

    kz, kg = len(spec.z_random_names), len(spec.gamma_names)

    def one(args):
        prm, k = args
        z, u = nm.conditional_person_draws(spec, prm, batch, k, num_candidates)
        # lax.map's batching cannot reshape zero-size outputs: return only the present ones
        return {name: v for name, v, width in (("z", z, kz), ("u", u, kg)) if width}

    out = jax.jit(lambda p, k: jax.lax.map(one, (p, k), batch_size=chunk))(params, keys)
    z = np.asarray(out["z"]) if kz else np.zeros((num, P, 0))
    u = np.asarray(out["u"]) if kg else np.zeros((num, P, 0))
    return z, u


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def fit_bayes(
    model: Any,
    data: Any,
    *,
    method: str = "nuts",
    backend: str = "numpyro",
    integrate: str = "sample",
    priors: BayesPriors | None = None,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    num_chains: int = 4,
    chain_method: str = "vectorized",
    target_accept: float = 0.85,
    max_tree_depth: int = 10,
    num_steps: int = 5000,
    learning_rate: float = 0.05,
    lr_decay: float = 0.1,
    batch_size: int | None = None,
    positive_guide: str = "lognormal",
    local_guide: str = "marginal",
    svi_draws: int = 512,
    num_posterior_draws: int = 1000,
    quadrature_nodes: int | None = None,
    loglik_draws: int = 256,
    loglik_nodes: int | None = None,
    log_likelihood: bool = True,
    person_level: bool | None = None,
    seed: int = 0,
    progress_bar: bool = False,
    diagnose: bool = True,
):
    """Fit a mixed logit (or MNL, or latent-class logit) by NUTS or SVI.

    Args:
        model: ``MixedLogit`` / ``MultinomialLogit`` (classical specification),
            :class:`~mixlogit.bayes.spec.BayesSpec` or
            :class:`~mixlogit.bayes.latent_class.LatentClassLogit`.
        data: ``ChoiceData`` or :class:`~mixlogit.arrays.ChoiceArrays` (columns named as the
            model's variables).
        method: ``"nuts"`` (Hamiltonian Monte Carlo) or ``"svi"`` (variational inference).
        backend: ``"numpyro"`` (JAX) or ``"pyro"`` (PyTorch).
        integrate: ``"sample"`` (person coefficients are latent variables, non-centred) or
            ``"quadrature"`` (at most two z-driven random coefficients per person integrated
            by a Gauss-Hermite rule of ``quadrature_nodes`` per dimension, default 40 for one
            and 24 for two; its error is checked after the fit against a rule twice as fine).
        priors: :class:`~mixlogit.bayes.spec.BayesPriors` (weakly informative defaults).
        num_warmup, num_samples, num_chains, chain_method, target_accept, max_tree_depth: NUTS
            settings; ``chain_method="vectorized"`` runs the chains in one vectorised program
            (the fast choice on a CPU with one JAX device).
        num_steps, learning_rate, lr_decay, batch_size, positive_guide, local_guide,
            svi_draws, num_posterior_draws: SVI settings; Adam's step size decays
            exponentially from ``learning_rate`` to ``learning_rate * lr_decay`` (1: constant);
            ``batch_size`` decision-makers per step (default: all), the rest of the
            data stays in host memory and is fed batch by batch; ``positive_guide`` is the
            variational family of the gamma person draws, ``"lognormal"`` or ``"gamma"``
            (lognormal coefficients are non-centred, so their guide is a LogNormal family;
            unused by ``local_guide="marginal"``, which has no person-level guide);
            ``local_guide``: ``"marginal"`` (default: the person coefficients are integrated
            out of the likelihood by simulation with ``svi_draws`` scrambled Sobol draws, as in
            simulated maximum likelihood, and a full-covariance Gaussian guide covers the
            population parameters; person-level draws come afterwards from each person's
            conditional by sampling-importance-resampling over ``svi_draws`` candidates),
            ``"noncentred"`` (mean-field on the model's person draws ``z``, ``u_std``; shrinks
            weakly identified population SDs) or ``"centred"`` (NumPyro only: Normal /
            LogNormal / Gamma guides in coefficient space mapped through the population
            parameters; slower to converge from a cold start).
        loglik_draws, loglik_nodes: rule for the per-person marginal log-likelihood of a
            sampled hierarchical model (Gauss-Hermite with ``loglik_nodes`` per dimension up
            to two normal-driven coefficients without gamma, else ``loglik_draws`` scrambled
            Sobol draws); ``loglik_nodes`` defaults to 40 for one dimension, 20 for two.
        log_likelihood: compute the ``log_likelihood`` group (``(chain, draw, person)``).
        person_level: compute person-level coefficient draws and the posterior predictive
            (default: when draws x persons x coefficients <= 5e7).
        seed: random seed.
        progress_bar: NumPyro/Pyro progress bars.
        diagnose: compute r_hat/ESS/divergences and warn when they are bad.

    Returns:
        :class:`~mixlogit.bayes.results.BayesianResults`.
    """
    import jax

    with jax.enable_x64(True):
        return _fit_bayes(
            model,
            data,
            method=method,
            backend=backend,
            integrate=integrate,
            priors=priors,
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            chain_method=chain_method,
            target_accept=target_accept,
            max_tree_depth=max_tree_depth,
            num_steps=num_steps,
            learning_rate=learning_rate,
            lr_decay=lr_decay,
            batch_size=batch_size,
            positive_guide=positive_guide,
            local_guide=local_guide,
            svi_draws=svi_draws,
            num_posterior_draws=num_posterior_draws,
            quadrature_nodes=quadrature_nodes,
            loglik_draws=loglik_draws,
            loglik_nodes=loglik_nodes,
            log_likelihood=log_likelihood,
            person_level=person_level,
            seed=seed,
            progress_bar=progress_bar,
            diagnose=diagnose,
        )


def _fit_bayes(
    model: Any,
    data: Any,
    *,
    method: str,
    backend: str,
    integrate: str,
    priors: BayesPriors | None,
    num_warmup: int,
    num_samples: int,
    num_chains: int,
    chain_method: str,
    target_accept: float,
    max_tree_depth: int,
    num_steps: int,
    learning_rate: float,
    lr_decay: float,
    batch_size: int | None,
    positive_guide: str,
    local_guide: str,
    svi_draws: int,
    num_posterior_draws: int,
    quadrature_nodes: int | None,
    loglik_draws: int,
    loglik_nodes: int | None,
    log_likelihood: bool,
    person_level: bool | None,
    seed: int,
    progress_bar: bool,
    diagnose: bool,
):
    from mixlogit.bayes.latent_class import LatentClassLogit
    from mixlogit.bayes.postprocess import loglik_rule, postprocess
    from mixlogit.bayes.results import BayesianResults

    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if integrate not in _INTEGRATE:
        raise ValueError(f"integrate must be one of {_INTEGRATE}, got {integrate!r}")
    if positive_guide not in ("lognormal", "gamma"):
        raise ValueError(f"positive_guide must be 'lognormal' or 'gamma', got {positive_guide!r}")
    if local_guide not in _LOCAL_GUIDES:
        raise ValueError(f"local_guide must be one of {_LOCAL_GUIDES}, got {local_guide!r}")
    if chain_method not in ("vectorized", "sequential", "parallel"):
        raise ValueError(
            f"chain_method must be 'vectorized', 'sequential' or 'parallel', got {chain_method!r}"
        )
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept!r}")
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    if not (np.isfinite(lr_decay) and 0 < lr_decay <= 1):
        raise ValueError(f"lr_decay must be in (0, 1], got {lr_decay!r}")
    priors = BayesPriors() if priors is None else priors
    if not isinstance(priors, BayesPriors):
        raise TypeError(f"priors must be a BayesPriors, got {type(priors).__name__}")

    spec = model.spec if isinstance(model, LatentClassLogit) else spec_from_model(model)
    kind = _model_kind(model, spec, integrate)
    arrays = choice_arrays_from_data(data, spec.names)
    panel = panel_arrays(arrays)
    P = panel.num_panels
    if batch_size is None:
        batch_size = P
    batch_size = min(_check_positive_int("batch_size", batch_size), P)
    if method == "nuts" and batch_size < P:
        raise ValueError("batch_size (subsampling) is only available with method='svi'")

    extra: dict[str, Any] = {}
    nodes = log_weights = None
    if kind == "quadrature":
        kz = len(spec.z_random_names)
        n_nodes = quadrature_nodes or (40 if kz == 1 else 24)
        _check_positive_int("quadrature_nodes", n_nodes, 2)
        from mixlogit.bayes.numpyro_model import gauss_hermite_nodes

        nodes, log_weights = gauss_hermite_nodes(n_nodes, kz)
        extra.update(nodes=nodes, log_weights=log_weights, num_nodes=n_nodes)
    if kind == "latent_class":
        extra.update(num_classes=model.num_classes, order_by=spec.names.index(model.order_by))
    if method == "svi" and kind == "hierarchical" and local_guide == "marginal":
        from mixlogit.bayes.postprocess import sobol_normals

        # common quasi-random draws of the simulated marginal likelihood (seed + 2: not the
        # draws of the log-likelihood rule, which would hide simulation error in the LOO)
        num_draws_svi = _check_positive_int("svi_draws", svi_draws)
        kz = len(spec.z_random_names)
        extra["z_draws"] = (
            sobol_normals(num_draws_svi, kz, seed + 2) if kz else np.zeros((num_draws_svi, 0))
        )

    opts = dict(
        num_warmup=_check_positive_int("num_warmup", num_warmup, 0),
        num_samples=_check_positive_int("num_samples", num_samples),
        num_chains=_check_positive_int("num_chains", num_chains),
        chain_method=chain_method,
        target_accept=float(target_accept),
        max_tree_depth=_check_positive_int("max_tree_depth", max_tree_depth),
        num_steps=_check_positive_int("num_steps", num_steps),
        learning_rate=float(learning_rate),
        lr_decay=float(lr_decay),
        batch_size=batch_size,
        positive_guide=positive_guide,
        local_guide=local_guide,
        svi_draws=_check_positive_int("svi_draws", svi_draws),
        num_posterior_draws=_check_positive_int("num_posterior_draws", num_posterior_draws),
        seed=int(seed),
        progress_bar=bool(progress_bar),
    )
    num_draws = num_samples * num_chains if method == "nuts" else num_posterior_draws
    if person_level is None:
        person_level = num_draws * P * len(spec.names) <= 5e7
    opts["person_level"] = bool(person_level)

    start = time.perf_counter()
    elbo = None
    stats: dict[str, np.ndarray] = {}
    if backend == "numpyro":
        model_fn = _numpyro_model_fn(kind, spec, priors, P, extra)
        if method == "nuts":
            samples, stats = _nuts_numpyro(model_fn, panel, opts)
        else:
            samples, losses = _svi_numpyro(model_fn, kind, spec, panel, opts)
            elbo = -losses
    else:
        from mixlogit.bayes import pyro_model as pm

        if method == "nuts":
            samples, stats = pm.run_nuts(kind, spec, priors, panel, extra, opts)
        else:
            samples, losses = pm.run_svi(kind, spec, priors, panel, extra, opts)
            elbo = -losses
    fit_seconds = time.perf_counter() - start

    if kind == "hierarchical":
        ll_nodes, ll_logw, ll_method = loglik_rule(spec, loglik_draws, loglik_nodes, seed)
    elif kind == "quadrature":
        ll_nodes, ll_logw = nodes, log_weights
        ll_method = f"gauss-hermite {extra['num_nodes']}^{len(spec.z_random_names)}"
    else:
        ll_nodes = ll_logw = None
        ll_method = "exact (class indicator summed out)" if kind == "latent_class" else "exact"
    post_start = time.perf_counter()
    post = postprocess(
        kind,
        spec,
        samples,
        panel,
        nodes=ll_nodes,
        log_weights=ll_logw,
        loglik=log_likelihood,
        person_level=person_level,
        seed=seed,
    )
    post.loglik_method = ll_method
    quadrature_error = None
    if kind == "quadrature":
        quadrature_error = _quadrature_error(spec, samples, panel, extra["num_nodes"])
    results = BayesianResults.build(
        kind=kind,
        method=method,
        backend=backend,
        spec=spec,
        arrays=arrays,
        panel=panel,
        samples=samples,
        sample_stats=stats,
        post=post,
        elbo=elbo,
        fit_seconds=fit_seconds,
        postprocess_seconds=time.perf_counter() - post_start,
        quadrature_error=quadrature_error,
        priors=priors,
        settings=opts,
    )
    if diagnose:
        results.check(warn=True, stacklevel=4)
    return results


def _quadrature_error(
    spec: BayesSpec, samples: dict[str, np.ndarray], panel: PanelArrays, num_nodes: int
) -> float:
    """Largest |total log-likelihood(rule) - total log-likelihood(rule with 2x nodes)| over
    up to 20 posterior draws (an estimate of the quadrature error of the fit)."""
    import jax
    import jax.numpy as jnp

    from mixlogit.bayes import numpyro_model as nm

    kz = len(spec.z_random_names)
    first = next(iter(samples.values()))
    n = first.shape[0] * first.shape[1]
    pick = np.linspace(0, n - 1, min(n, 20)).astype(int)
    flat = {
        k: jnp.asarray(v.reshape((n, *v.shape[2:]))[pick])
        for k, v in samples.items()
        if k not in ("z", "u", "u_std")
    }
    batch = _device_batch(panel)
    coarse = nm.gauss_hermite_nodes(num_nodes, kz)
    fine = nm.gauss_hermite_nodes(2 * num_nodes, kz)

    def total(params, rule):
        ll, _ = nm.quadrature_person_loglik(
            spec, params, batch, jnp.asarray(rule[0]), jnp.asarray(rule[1])
        )
        return ll.sum()

    fn = jax.jit(jax.vmap(lambda p: jnp.abs(total(p, coarse) - total(p, fine))))
    return float(np.max(np.asarray(fn(flat))))
