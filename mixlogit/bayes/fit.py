"""``fit_bayes``: validate the options, pick the model, run NUTS or SVI, post-process.

Runs in float64 inside a ``jax.enable_x64(True)`` context, like the classical estimators
(:mod:`mixlogit.likelihood`): choice log-likelihoods summed over thousands of situations lose
digits in float32, and the global JAX configuration is left untouched. All outputs are NumPy
arrays. The per-draw post-processing (:mod:`mixlogit.bayes.postprocess`) runs in JAX for both
backends.
"""

from __future__ import annotations

import functools
import inspect
import time
from typing import Any

import numpy as np

from mixlogit._deprecation import renamed_keywords
from mixlogit.bayes.guides import POSITIVE_GUIDES
from mixlogit.bayes.model import model_function
from mixlogit.bayes.panel import choice_arrays_from_data, panel_arrays
from mixlogit.bayes.postprocess import loglik_rule, postprocess
from mixlogit.bayes.priors import BayesPriors
from mixlogit.bayes.quadrature import check_quadrature
from mixlogit.bayes.quadrature import quadrature_error as estimate_quadrature_error
from mixlogit.bayes.results import BayesianResults
from mixlogit.draws import sobol_normals
from mixlogit.quadrature import standard_normal_rule
from mixlogit.spec import ModelSpec, as_model_spec

__all__ = ["FIT_BAYES_RENAMES", "fit_bayes"]

METHODS = ("nuts", "svi")
BACKENDS = ("numpyro", "pyro")
INTEGRATE = ("sample", "quadrature")
LOCAL_GUIDES = ("marginal", "centred", "noncentred")
CHAIN_METHODS = ("vectorized", "sequential", "parallel")

#: Old keyword names of :func:`fit_bayes` (deprecated) -> new ones.
FIT_BAYES_RENAMES = {
    "svi_draws": "num_draws",
    "num_posterior_draws": "num_samples",
    "loglik_draws": "num_loglik_draws",
    "quadrature_nodes": "num_nodes",
    "loglik_nodes": "num_loglik_nodes",
    "progress_bar": "progress",
}


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _model_kind(model: Any, spec: ModelSpec, integrate: str) -> str:
    if getattr(model, "num_classes", None) is not None:
        return "latent_class"
    if not spec.has_random:
        return "mnl"
    if integrate == "quadrature":
        check_quadrature(spec)
        return "quadrature"
    return "hierarchical"


def _in_float64(function):
    """Run ``function`` inside ``jax.enable_x64(True)``."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        import jax

        with jax.enable_x64(True):
            return function(*args, **kwargs)

    return wrapper


@_in_float64
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
    num_draws: int = 512,
    num_nodes: int | None = None,
    num_loglik_draws: int = 256,
    num_loglik_nodes: int | None = None,
    log_likelihood: bool = True,
    person_level: bool | None = None,
    seed: int = 0,
    progress: bool = False,
    diagnose: bool = True,
    **deprecated: Any,
):
    """Fit a mixed logit (or MNL, or latent-class logit) by NUTS or SVI.

    Args:
        model: ``MixedLogit`` / ``MultinomialLogit``, a :class:`~mixlogit.spec.ModelSpec` or a
            :class:`~mixlogit.bayes.latent_class.LatentClassLogit` (anything with
            ``num_classes`` and ``order_by`` besides its ``spec``).
        data: ``ChoiceData`` or :class:`~mixlogit.arrays.ChoiceArrays` (columns named as the
            model's variables).
        method: ``"nuts"`` (Hamiltonian Monte Carlo) or ``"svi"`` (variational inference).
        backend: ``"numpyro"`` (JAX) or ``"pyro"`` (PyTorch).
        integrate: ``"sample"`` (person coefficients are latent variables, non-centred) or
            ``"quadrature"`` (at most two normal-driven random coefficients per person
            integrated by a Gauss-Hermite rule of ``num_nodes`` per dimension (old name
            ``quadrature_nodes``, deprecated), default
            40 for one and 24 for two; its error is checked after the fit against a rule
            twice as fine).
        priors: :class:`~mixlogit.bayes.priors.BayesPriors` (weakly informative defaults).
        num_warmup, num_chains, chain_method, target_accept, max_tree_depth: NUTS settings;
            ``chain_method="vectorized"`` runs the chains in one vectorised program (the fast
            choice on a CPU with one JAX device).
        num_samples: posterior draws: per chain for NUTS, from the fitted guide for SVI
            (old SVI name ``num_posterior_draws``, deprecated).
        num_steps, learning_rate, lr_decay, batch_size, positive_guide, local_guide: SVI
            settings; Adam's step size decays exponentially from ``learning_rate`` to
            ``learning_rate * lr_decay`` (1: constant); ``batch_size`` decision-makers per
            step (default: all), the rest of the data stays in host memory and is fed batch
            by batch; ``positive_guide`` is the variational family of the gamma person
            draws, ``"lognormal"`` or ``"gamma"`` (unused by ``local_guide="marginal"``,
            which has no person-level guide); ``local_guide``: ``"marginal"`` (default: the
            person coefficients are integrated out of the likelihood by simulation with
            ``num_draws`` scrambled Sobol draws, as in simulated maximum likelihood, and a
            full-covariance Gaussian guide covers the population parameters; person-level
            draws come afterwards from each person's conditional by
            sampling-importance-resampling over ``num_draws`` candidates), ``"noncentred"``
            (mean-field on the model's person draws ``z``, ``u_std``; shrinks weakly
            identified population SDs) or ``"centred"`` (NumPyro only: Normal / LogNormal /
            Gamma guides in coefficient space mapped through the population parameters;
            slower to converge from a cold start).
        num_draws: simulation draws of the SVI marginal likelihood (old name ``svi_draws``,
            deprecated).
        num_loglik_draws, num_loglik_nodes: rule for the per-person marginal log-likelihood
            of a sampled hierarchical model (Gauss-Hermite with ``num_loglik_nodes`` per
            dimension up to two normal-driven coefficients without gamma, else
            ``num_loglik_draws`` scrambled Sobol draws; old names ``loglik_nodes``,
            ``loglik_draws``, deprecated); ``num_loglik_nodes``
            defaults to 40 for one dimension, 20 for two.
        log_likelihood: compute the ``log_likelihood`` group (``(chain, draw, person)``).
        person_level: compute person-level coefficient draws and the posterior predictive
            (default: when draws x persons x coefficients <= 5e7).
        seed: random seed.
        progress: NumPyro/Pyro progress bars (old name ``progress_bar``, deprecated).
        diagnose: compute r_hat/ESS/divergences and warn when they are bad.

    Returns:
        :class:`~mixlogit.bayes.results.BayesianResults`.
    """
    unknown = sorted(set(deprecated) - set(FIT_BAYES_RENAMES))
    if unknown:
        raise TypeError(f"fit_bayes: unexpected keyword arguments {unknown}")
    current = dict(
        num_samples=num_samples,
        num_draws=num_draws,
        num_loglik_draws=num_loglik_draws,
        num_nodes=num_nodes,
        num_loglik_nodes=num_loglik_nodes,
        progress=progress,
    )
    # a new name that differs from its default was given explicitly: it clashes with its old name
    explicit = {k: v for k, v in current.items() if v != _DEFAULTS[k]}
    options = renamed_keywords(
        "fit_bayes", {**explicit, **deprecated}, FIT_BAYES_RENAMES, stacklevel=4
    )
    num_samples, num_draws, num_loglik_draws, num_nodes, num_loglik_nodes, progress = (
        options.get(k, v) for k, v in current.items()
    )

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if integrate not in INTEGRATE:
        raise ValueError(f"integrate must be one of {INTEGRATE}, got {integrate!r}")
    if positive_guide not in POSITIVE_GUIDES:
        raise ValueError(f"positive_guide must be 'lognormal' or 'gamma', got {positive_guide!r}")
    if local_guide not in LOCAL_GUIDES:
        raise ValueError(f"local_guide must be one of {LOCAL_GUIDES}, got {local_guide!r}")
    if chain_method not in CHAIN_METHODS:
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

    spec = as_model_spec(model)
    if spec.wtp_space is not None:
        raise NotImplementedError(
            f"the Bayesian fit is in preference space only; the model is in WTP space "
            f"(wtp_space={spec.wtp_space!r}): fit it by maximum simulated likelihood"
        )
    if spec.covariates:
        raise NotImplementedError(
            f"the Bayesian fit has no covariates in the mixing distribution (the model's "
            f"{list(spec.covariates)}); fit it by maximum simulated likelihood "
            "(method='simulation')"
        )
    kind = _model_kind(model, spec, integrate)
    arrays = choice_arrays_from_data(data, spec.variables)
    panel = panel_arrays(arrays)
    P = panel.num_panels
    batch_size = min(_positive_int("batch_size", P if batch_size is None else batch_size), P)
    if method == "nuts" and batch_size < P:
        raise ValueError("batch_size (subsampling) is only available with method='svi'")
    settings = dict(
        num_warmup=_positive_int("num_warmup", num_warmup, 0),
        num_samples=_positive_int("num_samples", num_samples),
        num_chains=_positive_int("num_chains", num_chains),
        chain_method=chain_method,
        target_accept=float(target_accept),
        max_tree_depth=_positive_int("max_tree_depth", max_tree_depth),
        num_steps=_positive_int("num_steps", num_steps),
        learning_rate=float(learning_rate),
        lr_decay=float(lr_decay),
        batch_size=batch_size,
        positive_guide=positive_guide,
        local_guide=local_guide,
        num_draws=_positive_int("num_draws", num_draws),
        seed=int(seed),
        progress=bool(progress),
    )
    total_draws = num_samples * num_chains if method == "nuts" else num_samples
    if person_level is None:
        person_level = total_draws * P * len(spec.variables) <= 5e7
    settings["person_level"] = bool(person_level)
    num_loglik_draws = _positive_int("num_loglik_draws", num_loglik_draws)

    seed = settings["seed"]
    kz = len(spec.z_random)
    extra: dict[str, Any] = {}
    order_by = None
    if kind == "quadrature":
        num_nodes = _positive_int("num_nodes", num_nodes or (40 if kz == 1 else 24), 2)
        nodes, log_weights = standard_normal_rule(num_nodes, kz)
        extra.update(nodes=nodes, log_weights=log_weights)
    if kind == "latent_class":
        order_by = spec.variables.index(model.order_by)
        extra.update(num_classes=model.num_classes, order_by=order_by)
    if method == "svi" and kind == "hierarchical" and settings["local_guide"] == "marginal":
        # common quasi-random draws of the simulated marginal likelihood (seed + 2: not the
        # draws of the log-likelihood rule, which would hide simulation error in the LOO)
        count = settings["num_draws"]
        extra["z_draws"] = sobol_normals(count, kz, seed + 2) if kz else np.zeros((count, 0))
    if backend == "numpyro":
        from mixlogit.bayes.numpyro_model import BACKEND
    else:
        from mixlogit.bayes.pyro_model import BACKEND
    model_fn = model_function(BACKEND, kind, spec, priors, panel.num_panels, extra)

    start = time.perf_counter()
    elbo = None
    stats: dict[str, np.ndarray] = {}
    if method == "nuts":
        from mixlogit.bayes.nuts import run_nuts

        samples, stats = run_nuts(backend, model_fn, panel, spec, settings, order_by=order_by)
    else:
        from mixlogit.bayes.svi import run_svi

        samples, losses = run_svi(backend, model_fn, kind, spec, panel, settings, order_by=order_by)
        elbo = -losses
    fit_seconds = time.perf_counter() - start

    if kind == "hierarchical":
        ll_nodes, ll_logw, ll_method = loglik_rule(spec, num_loglik_draws, num_loglik_nodes, seed)
    elif kind == "quadrature":
        ll_nodes, ll_logw = extra["nodes"], extra["log_weights"]
        ll_method = f"gauss-hermite {num_nodes}^{kz}"
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
        person_level=settings["person_level"],
        seed=seed,
    )
    post.loglik_method = ll_method
    quadrature_error = None
    if kind == "quadrature":
        quadrature_error = estimate_quadrature_error(spec, samples, panel, num_nodes)
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
        settings=settings,
        person_ids=getattr(data, "panel_ids", None),
    )
    if diagnose:
        results.check(warn=True, stacklevel=4)
    return results


_DEFAULTS = {
    name: parameter.default for name, parameter in inspect.signature(fit_bayes).parameters.items()
}
