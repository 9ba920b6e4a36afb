"""Two-stage estimate of annotator preference strengths from panels of labels.

Stage one gives every labelled pair a reward gap ``d`` (a trained policy's implicit reward
margin, a reward model's, or known utilities; any units). Stage two, here, treats the gaps as
data and fits how strongly each annotator follows them. An annotator labels many pairs with ONE
strength ``beta_a`` (a Revelt-Train panel), so its labels are scored jointly by the panel
marginal of :mod:`mixlogit.jax.panel`::

    log L_a = log E_beta[ prod_{i in a} sigmoid(beta d_i) ],   d_i signed by the label,

and ``beta_a`` is integrated out. Unlike one strength draw per pair, a panel identifies the
spread of the strengths: an annotator who follows the gaps on every pair is told apart from one
who follows them on a share of pairs only.

Hierarchical model (partial pooling over the ``by`` subgroups, log scale)::

    mu_log_mean ~ Normal(prior.log_mean_loc, prior.log_mean_scale)
    mu_log_cv   ~ Normal(prior.log_cv_loc, prior.log_cv_scale)
    tau_log_mean ~ HalfNormal(prior.log_mean_pooling)
    log m_g ~ Normal(mu_log_mean, tau_log_mean)            (subgroup mean strengths)
    log c_g = mu_log_cv + tau_log_cv w_g, w_g ~ Normal(0, 1)  (only with ``subgroup_cv=True``;
                                                             else c_g = exp(mu_log_cv))
    beta_a ~ family(mean m_{g(a)}, CV c_{g(a)})             (integrated out)

Without ``by`` there is one group: ``m = exp(mu_log_mean)``, ``c = exp(mu_log_cv)``. The
population strength distribution (a random annotator) is the mixture of the subgroups weighted
by their numbers of annotators; its mean and CV are the deterministic sites
``population_mean`` and ``population_cv``.

Annotator strengths: the posterior of ``beta_a`` given the annotator's labels and one draw of
the hyperparameters comes from :func:`mixlogit.jax.panel.panel_strength_posterior`; averaging
over posterior draws gives the mixture reported by :attr:`PanelStrengthFit.annotators`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.infer import MCMC, NUTS, Predictive
from scipy import special

from analysis._arviz import az
from analysis.subgroup_posterior import (
    SubgroupStrengthPrior,
    _codes,
    _finite_values,
    _outcomes,
    _population_first,
)
from mixlogit.data import plain_value
from mixlogit.families import StrengthFamily, get_family
from mixlogit.jax._ops import OPS

__all__ = [
    "PANEL_PRIOR",
    "PanelData",
    "PanelStrengthFit",
    "fit_panel_strengths",
    "panel_data",
    "panel_log_likelihood",
    "panel_strength_model",
]

#: Default hyperpriors. As :class:`~analysis.subgroup_posterior.SubgroupStrengthPrior` but with
#: a log-CV prior twice as wide (scale 1: 95 % prior range of CV 0.07 to 3.6): panels identify
#: the CV, so the prior need not hold it near 0.5 as it must for one label per pair.
PANEL_PRIOR = SubgroupStrengthPrior(log_cv_scale=1.0)

#: Quadrature nodes per annotator of the panel marginal (:mod:`mixlogit.jax.panel`). Fewer
#: than its default of 128, since every NUTS step pays for them; at 48 the relative error stays
#: below 1e-9 for CVs up to 2 (tests/analysis/test_strength_panels.py checks it against scipy
#: quadrature), far below Monte Carlo error.
PANEL_NODES = 48


class PanelData(NamedTuple):
    """Labels of a panel table as arrays (see :func:`panel_data`).

    Attributes:
        signed_gap: ``(N,)`` gap of each label signed by its choice (``d`` if the annotator
            chose the "chosen" response, ``-d`` if not), gap units.
        annotator: ``(N,)`` int annotator codes in ``[0, A)``.
        annotators: ``A`` annotator labels (strings) in code order.
        annotator_subgroup: ``(A,)`` int subgroup code of each annotator in ``[0, G)``.
        subgroups: ``G`` subgroup labels (strings); ``["all"]`` without ``by``.
        pair: ``(N,)`` int pair codes in ``[0, J)``, or None without a pair column.
        pairs: ``J`` pair labels, or None.
    """

    signed_gap: np.ndarray
    annotator: np.ndarray
    annotators: list[str]
    annotator_subgroup: np.ndarray
    subgroups: list[str]
    pair: np.ndarray | None
    pairs: list | None

    @property
    def num_annotators(self) -> int:
        return len(self.annotators)

    @property
    def num_subgroups(self) -> int:
        return len(self.subgroups)


def panel_data(
    frame: pd.DataFrame,
    *,
    gap: str = "reward_gap",
    annotator: str = "annotator_id",
    by: str | None = "subgroup",
    pair: str | None = None,
    outcome: str | None = None,
) -> PanelData:
    """Check a table of labels (one row per annotator and pair) and turn it into arrays.

    Args:
        frame: one row per label (a pandas ``DataFrame``; a Hugging Face ``Dataset`` is converted
            with ``to_pandas()``).
        gap: column of reward gaps ``d`` of the row's "chosen" minus "rejected" response.
        annotator: annotator id column.
        by: subgroup column (constant within an annotator), or None for one group.
        pair: pair id column, needed only where gaps are per pair (:mod:`analysis.identifiability`).
        outcome: 0/1 choice column (1 = "chosen" preferred); None = every row's "chosen" was
            preferred, as in a preference data set.

    Raises:
        ValueError: a missing column, a missing or non-finite value (named with its row), an
            annotator in two subgroups, or no rows.
    """
    if hasattr(frame, "to_pandas") and not isinstance(frame, pd.DataFrame):
        frame = frame.to_pandas()
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    columns = [c for c in (gap, annotator, by, pair) if c is not None]
    for column in columns:
        if column not in frame.columns:
            raise ValueError(f"column {column!r} not in {list(frame.columns)}")
        missing = frame[column].isna().to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise ValueError(
                f"column {column!r} is missing a value at row {plain_value(frame.index[row])!r}"
            )
    if frame.empty:
        raise ValueError("the table has no rows")
    d = _finite_values(frame, gap)
    y = _outcomes(frame, outcome)
    annotator_codes, annotator_levels = _codes(frame[annotator].astype(str))
    if by is None:
        subgroup_codes = np.zeros(len(frame), dtype=np.int32)
        subgroup_levels: list = ["all"]
    else:
        subgroup_codes, subgroup_levels = _codes(frame[by])
    num_annotators = len(annotator_levels)
    # an annotator's strength is drawn from ONE subgroup's distribution
    first = np.full(num_annotators, -1, dtype=np.int32)
    first[annotator_codes[::-1]] = subgroup_codes[::-1]
    conflict = subgroup_codes != first[annotator_codes]
    if conflict.any():
        row = int(np.flatnonzero(conflict)[0])
        who = annotator_levels[annotator_codes[row]]
        raise ValueError(
            f"annotator {who!r} is in subgroups {subgroup_levels[first[annotator_codes[row]]]!r} "
            f"and {subgroup_levels[subgroup_codes[row]]!r} (row {plain_value(frame.index[row])!r}): "
            f"column {by!r} must be constant within an annotator"
        )
    pair_codes, pair_levels = _codes(frame[pair]) if pair is not None else (None, None)
    return PanelData(
        signed_gap=np.where(y == 1, d, -d),
        annotator=annotator_codes,
        annotators=[str(a) for a in annotator_levels],
        annotator_subgroup=first,
        subgroups=[str(s) for s in subgroup_levels],
        pair=pair_codes,
        pairs=pair_levels,
    )


def panel_log_likelihood(
    family: str | StrengthFamily,
    signed_gap: jax.Array,
    group: jax.Array,
    params: dict[str, jax.Array],
    num_groups: int,
    *,
    num_nodes: int = PANEL_NODES,
) -> jax.Array:
    """``(num_groups,)`` panel log-likelihoods ``log E_beta[prod_{i in g} sigmoid(beta d_i)]``.

    :func:`mixlogit.jax.panel.panel_logit_marginal` with ``params`` the family's parameters,
    scalars or ``(num_groups,)``; one observation per group gives the single-label marginal
    ``log E[sigmoid(beta d)]``.
    """
    from mixlogit.jax.panel import panel_logit_marginal

    return panel_logit_marginal(
        signed_gap, group, family, params, num_groups=num_groups, num_nodes=num_nodes
    )


def panel_strength_model(
    signed_gap: jax.Array,
    annotator: jax.Array,
    annotator_subgroup: jax.Array,
    num_annotators: int,
    num_subgroups: int,
    *,
    family: str | StrengthFamily = "gamma",
    prior: SubgroupStrengthPrior = PANEL_PRIOR,
    log_mean_loc: float = 0.0,
    subgroup_cv: bool = False,
    centered_mean: bool = True,
    num_nodes: int = PANEL_NODES,
) -> None:
    """NumPyro model of the module docstring.

    Args:
        signed_gap: ``(N,)`` gaps signed by the labels (gap units).
        annotator: ``(N,)`` annotator codes in ``[0, A)``.
        annotator_subgroup: ``(A,)`` subgroup code of each annotator in ``[0, G)``.
        num_annotators, num_subgroups: ``A`` and ``G`` (static).
        family: strength family within a subgroup (``"gamma"`` or ``"lognormal"``).
        prior: hyperpriors; ``prior.log_mean_loc`` overrides ``log_mean_loc`` when set.
        log_mean_loc: centre of the log-mean hyperprior when ``prior.log_mean_loc`` is None.
        subgroup_cv: partially pooled CV per subgroup (True) or one CV shared by all (False).
        centered_mean: sample the subgroups' log means directly (True) or non-centred.
        num_nodes: quadrature nodes per annotator of the panel marginal.

    Sample sites: ``mu_log_mean``, ``mu_log_cv``; with ``G > 1`` also ``tau_log_mean`` and
    ``log_mean`` (G,) (``z_log_mean`` when not centred), with ``subgroup_cv`` ``tau_log_cv`` and
    ``z_log_cv`` (G,). Deterministic: ``mean_strength`` (G,), ``cv`` (G,), the family's
    parameters (G,), ``population_mean``, ``population_cv``. The annotators' panel
    log-likelihoods enter as the factor ``panel_loglik``.
    """
    family = get_family(family)
    centre = prior.log_mean_loc if prior.log_mean_loc is not None else log_mean_loc
    mu_m = numpyro.sample("mu_log_mean", dist.Normal(centre, prior.log_mean_scale))
    mu_c = numpyro.sample("mu_log_cv", dist.Normal(prior.log_cv_loc, prior.log_cv_scale))
    if num_subgroups > 1:
        tau_m = numpyro.sample("tau_log_mean", dist.HalfNormal(prior.log_mean_pooling))
        if subgroup_cv:
            tau_c = numpyro.sample("tau_log_cv", dist.HalfNormal(prior.log_cv_pooling))
        with numpyro.plate("subgroup", num_subgroups):
            if centered_mean:
                log_mean = numpyro.sample("log_mean", dist.Normal(mu_m, tau_m))
            else:
                log_mean = mu_m + tau_m * numpyro.sample("z_log_mean", dist.Normal(0.0, 1.0))
            if subgroup_cv:
                log_cv = mu_c + tau_c * numpyro.sample("z_log_cv", dist.Normal(0.0, 1.0))
        if not subgroup_cv:
            log_cv = jnp.broadcast_to(mu_c, (num_subgroups,))
    else:
        log_mean, log_cv = mu_m[None], mu_c[None]
    mean = numpyro.deterministic("mean_strength", jnp.exp(log_mean))
    cv = numpyro.deterministic("cv", jnp.exp(log_cv))
    params = family.from_mean_cv(OPS, mean, cv)
    for name, value in params.items():
        numpyro.deterministic(name, value)
    # a random annotator: the subgroups' mixture, weighted by their numbers of annotators
    weight = jnp.bincount(annotator_subgroup, length=num_subgroups) / num_annotators
    population_mean = jnp.sum(weight * mean)
    second_moment = jnp.sum(weight * (family.variance(OPS, params) + mean * mean))
    numpyro.deterministic("population_mean", population_mean)
    numpyro.deterministic(
        "population_cv", jnp.sqrt(second_moment - population_mean**2) / population_mean
    )
    per_annotator = {name: value[annotator_subgroup] for name, value in params.items()}
    loglik = panel_log_likelihood(
        family, signed_gap, annotator, per_annotator, num_annotators, num_nodes=num_nodes
    )
    numpyro.factor("panel_loglik", jnp.sum(loglik))


@dataclass
class PanelStrengthFit:
    """Result of :func:`fit_panel_strengths`.

    Attributes:
        idata: ArviZ ``InferenceData``: ``posterior`` (dim ``subgroup`` on per-subgroup sites),
            ``sample_stats``, ``log_likelihood`` (``annotator_loglik``, dims ``annotator``: the
            panel log-likelihood of each annotator's labels, for ``az.loo`` with annotators as
            the unit left out), ``observed_data`` (``signed_gap``, dim ``label``;
            ``agreeing_labels``, dim ``annotator``: labels that follow the gap), with
            ``predictive=True`` ``prior``, ``prior_predictive`` and ``posterior_predictive``
            (``agreeing_labels`` replicated), and ``constant_data`` (``label_annotator``,
            ``annotator_subgroup``).
        family: strength family within a subgroup.
        by: subgroup column, or None.
        subgroups: one row per subgroup: ``subgroup``, ``num_annotators``, ``num_labels``, and
            for ``mean_strength`` and ``cv`` the posterior mean, ``*_low``/``*_high``
            (equal-tailed ``interval``), ``*_r_hat``, ``*_ess_bulk``; ``relative_strength``
            is the posterior mean of ``mean_strength / population_mean``.
        annotators: one row per annotator: ``annotator``, ``subgroup``, ``num_labels``,
            ``strength_mean``, ``strength_sd`` and ``strength_q<percent>`` (quantiles of the
            annotator's strength posterior, averaged over the hyperparameter posterior).
        population: ``{"mean", "mean_low", "mean_high", "cv", "cv_low", "cv_high"}`` of the
            population strength (the mixture of the subgroups).
        diagnostics: ``max_r_hat``, ``min_ess_bulk``, ``num_divergences``.
        interval: mass of the reported equal-tailed intervals (0.9: 5 % to 95 %).
        data: the labels as arrays (:class:`PanelData`).
    """

    idata: Any
    family: str
    by: str | None
    subgroups: pd.DataFrame
    annotators: pd.DataFrame
    population: dict[str, float]
    diagnostics: dict[str, float]
    interval: float = 0.9
    data: PanelData | None = field(default=None, repr=False)

    @property
    def probs(self) -> tuple[float, float, float]:
        """Probabilities of the reported quantiles: the interval's ends and the median."""
        return _interval_probs(self.interval)


def _interval_probs(interval: float) -> tuple[float, float, float]:
    if not 0.0 < interval < 1.0:
        raise ValueError(f"interval must be in (0, 1), got {interval!r}")
    return (0.5 - 0.5 * interval, 0.5, 0.5 + 0.5 * interval)


def _quantile_label(p: float) -> str:
    return f"q{100 * p:g}".replace(".", "_")


def _thin(draws: int, most: int) -> np.ndarray:
    return np.unique(np.linspace(0, draws - 1, min(draws, most)).round().astype(int))


def fit_panel_strengths(
    frame: pd.DataFrame,
    *,
    gap: str = "reward_gap",
    annotator: str = "annotator_id",
    by: str | None = "subgroup",
    outcome: str | None = None,
    family: str | StrengthFamily = "gamma",
    prior: SubgroupStrengthPrior | None = None,
    subgroup_cv: bool = False,
    num_warmup: int = 400,
    num_samples: int = 400,
    num_chains: int = 4,
    seed: int = 0,
    target_accept: float = 0.9,
    centered_mean: bool = True,
    chain_method: str = "sequential",
    interval: float = 0.9,
    num_annotator_draws: int = 200,
    num_strata: int = 40,
    num_nodes: int = PANEL_NODES,
    min_ess_per_chain: float = 100.0,
    predictive: bool = True,
    num_prior_draws: int = 500,
    progress: bool = False,
) -> PanelStrengthFit:
    """Posterior of subgroup and annotator strengths by NUTS (float64).

    Args:
        frame: one row per label, see :func:`panel_data` (``gap``, ``annotator``, ``by``,
            ``outcome``). Fit one policy's gaps at a time, on pairs it was not trained on.
        family: strength family within a subgroup, ``"gamma"`` or ``"lognormal"``.
        prior: hyperpriors (default :data:`PANEL_PRIOR`; the log-mean centre defaults to
            ``log(1 / sd(gap))``, so the prior does not depend on the gap units).
        subgroup_cv: give each subgroup its own, partially pooled, CV.
        num_warmup, num_samples, num_chains, seed, target_accept: NUTS settings.
        centered_mean: centred subgroup log means (see :func:`panel_strength_model`).
        chain_method: NumPyro's ``"sequential"`` (the default: every chain runs its own tree
            sizes; vectorised chains wait for the deepest tree and cost as much on a CPU) or
            ``"vectorized"``.
        interval: mass of the reported equal-tailed intervals; annotator quantiles are
            reported at its ends and at the median.
        num_annotator_draws: posterior draws (evenly thinned) over which annotator posteriors
            are averaged.
        num_strata: the annotator mixture quantiles pool each draw's quantiles at
            ``num_strata`` evenly spaced probabilities (a stratified sample of the mixture;
            quantile error below ``1 / (2 num_strata)`` in probability).
        num_nodes: quadrature nodes per annotator of the panel marginal.
        min_ess_per_chain: warn when a bulk ESS falls below this times ``num_chains``.
        predictive: add the ``prior`` (``num_prior_draws`` hyperprior draws),
            ``prior_predictive`` and ``posterior_predictive`` groups: each replicates every
            annotator's count of labels that follow the gap (``agreeing_labels``) by drawing the
            annotator's strength from its subgroup distribution and each label from
            ``sigmoid(beta |d|)``; ``az.plot_ppc`` and ``az.plot_loo_pit`` read them.
        num_prior_draws: draws of the ``prior`` group.
        progress: NumPyro's progress bar.

    Returns:
        :class:`PanelStrengthFit`. Warns (``RuntimeWarning``) when a sampled site has
        ``r_hat > 1.01``, a bulk ESS below ``min_ess_per_chain * num_chains``, or when there were
        divergent transitions.

    Raises:
        ValueError: bad input (see :func:`panel_data`), a family without a CV (point mass),
            constant gaps, or an ``interval`` outside (0, 1).
    """
    family = get_family(family)
    if not family.learnable:
        raise ValueError(
            f"family {family.name!r} has no spread to estimate: use 'gamma' or 'lognormal'"
        )
    probs = _interval_probs(interval)
    data = panel_data(frame, gap=gap, annotator=annotator, by=by, outcome=outcome)
    spread = float(np.std(data.signed_gap))
    if spread == 0.0:
        raise ValueError(f"column {gap!r} is constant: strength is not identified")
    prior = prior or PANEL_PRIOR
    model_kwargs = {
        "family": family,
        "prior": prior,
        "log_mean_loc": -math.log(spread),
        "subgroup_cv": subgroup_cv,
        "centered_mean": centered_mean,
        "num_nodes": num_nodes,
    }
    with jax.enable_x64(True):
        arrays = (
            jnp.asarray(data.signed_gap),
            jnp.asarray(data.annotator),
            jnp.asarray(data.annotator_subgroup),
        )
        mcmc = MCMC(
            NUTS(panel_strength_model, target_accept_prob=target_accept),
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            chain_method=chain_method,
            progress_bar=progress,
        )
        mcmc.run(
            jax.random.PRNGKey(seed),
            *arrays,
            data.num_annotators,
            data.num_subgroups,
            extra_fields=("diverging",),
            **model_kwargs,
        )
        samples = mcmc.get_samples(group_by_chain=True)
        params = {name: np.asarray(samples[name]) for name in family.parameters}
        loglik = _annotator_loglik(family, data, params, num_nodes)
        annotators = _annotator_posteriors(
            family, data, params, probs, num_annotator_draws, num_strata, num_nodes
        )
        predictive_groups: dict[str, Any] = {}
        if predictive:
            if num_prior_draws < 1:
                raise ValueError(f"num_prior_draws must be >= 1, got {num_prior_draws!r}")
            prior_samples = Predictive(panel_strength_model, num_samples=num_prior_draws)(
                jax.random.PRNGKey(seed + 1),
                *arrays,
                data.num_annotators,
                data.num_subgroups,
                **model_kwargs,
            )
            prior_draws = {k: np.asarray(v)[None] for k, v in prior_samples.items()}
            rng = np.random.default_rng([seed, 2])
            predictive_groups = {
                "prior": prior_draws,
                "prior_predictive": {
                    "agreeing_labels": _replicated_agreements(family, data, prior_draws, rng)
                },
                "posterior_predictive": {
                    "agreeing_labels": _replicated_agreements(family, data, params, rng)
                },
            }
    per_subgroup = ["mean_strength", "cv", *family.parameters]
    if data.num_subgroups > 1:
        per_subgroup.append("log_mean" if centered_mean else "z_log_mean")
        if subgroup_cv:
            per_subgroup.append("z_log_cv")
    idata = az.from_dict(
        posterior={k: np.asarray(v) for k, v in samples.items()},
        sample_stats={
            "diverging": np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
        },
        log_likelihood={"annotator_loglik": loglik},
        observed_data={
            "signed_gap": data.signed_gap,
            "agreeing_labels": _agreeing_labels(data, data.signed_gap > 0),
        },
        **predictive_groups,
        constant_data={
            "label_annotator": data.annotator,
            "annotator_subgroup": data.annotator_subgroup,
        },
        coords={
            "subgroup": data.subgroups,
            "annotator": data.annotators,
            "label": np.arange(data.signed_gap.size),
        },
        dims={
            **{site: ["subgroup"] for site in per_subgroup},
            "annotator_loglik": ["annotator"],
            "signed_gap": ["label"],
            "agreeing_labels": ["annotator"],
            "label_annotator": ["label"],
            "annotator_subgroup": ["annotator"],
        },
    )
    _population_first(idata)
    diagnostics = _diagnostics(idata, family)
    _warn(diagnostics, min_ess_per_chain * num_chains)
    return PanelStrengthFit(
        idata=idata,
        family=family.name,
        by=by,
        subgroups=_subgroup_table(idata, data, probs),
        annotators=annotators,
        population=_population(idata, probs),
        diagnostics=diagnostics,
        interval=interval,
        data=data,
    )


def _agreeing_labels(data: PanelData, follows: np.ndarray) -> np.ndarray:
    """``(..., A)`` number of each annotator's labels that follow the gap, from ``(..., N)``
    booleans."""
    membership = data.annotator[:, None] == np.arange(data.num_annotators)  # (N, A)
    return follows.astype(np.int64) @ membership.astype(np.int64)


def _replicated_agreements(
    family: StrengthFamily,
    data: PanelData,
    draws: dict[str, np.ndarray],
    rng: np.random.Generator,
    chunk: int = 256,
) -> np.ndarray:
    """``(chains, draws, A)`` replicated :func:`_agreeing_labels`: at each draw of the subgroup
    parameters (``draws[name]``: ``(chains, draws, G)``) every annotator draws one strength from
    its subgroup's distribution and labels each of its pairs with ``P(follow) =
    sigmoid(beta |d|)``. Draws are taken ``chunk`` at a time to bound memory."""
    from mixlogit.jax._ppl import PPL

    shape = next(iter(draws.values())).shape[:2]
    flat = {k: np.asarray(draws[k]).reshape(-1, data.num_subgroups) for k in family.parameters}
    size = math.prod(shape)
    magnitude = np.abs(data.signed_gap)
    out = np.empty((size, data.num_annotators), dtype=np.int64)
    for start in range(0, size, chunk):
        stop = min(start + chunk, size)
        params = {
            k: jnp.asarray(v[start:stop][:, data.annotator_subgroup]) for k, v in flat.items()
        }
        key = jax.random.PRNGKey(int(rng.integers(2**31)))
        strength = np.asarray(family.distribution(PPL, params).sample(key))
        # a strength of +inf (a prior draw far in the tail) follows every nonzero gap
        logit = np.where(magnitude > 0, strength[:, data.annotator] * magnitude, 0.0)
        follows = rng.random(logit.shape) < special.expit(logit)
        out[start:stop] = _agreeing_labels(data, follows)
    return out.reshape(*shape, data.num_annotators)


def _map_draws(data: PanelData, draws: dict[str, jax.Array], per_draw, batch_size: int):
    """``per_draw(signed_gap, annotator, params)`` at every draw of ``draws`` (family parameter
    -> ``(num_draws, G)``), with each draw's subgroup parameters spread to its annotators
    (``(A,)``); the results stacked over draws (``jax.lax.map`` in batches of ``batch_size``)."""
    d = jnp.asarray(data.signed_gap)
    group = jnp.asarray(data.annotator)
    subgroup = jnp.asarray(data.annotator_subgroup)

    @jax.jit
    def one_draw(draw):
        return per_draw(d, group, {k: v[subgroup] for k, v in draw.items()})

    return jax.lax.map(one_draw, draws, batch_size=batch_size)


def _annotator_loglik(
    family: StrengthFamily, data: PanelData, params: dict[str, np.ndarray], num_nodes: int
) -> np.ndarray:
    """``(chains, draws, A)`` panel log-likelihood of each annotator at each posterior draw."""

    def per_draw(d, group, per_annotator):
        return panel_log_likelihood(
            family, d, group, per_annotator, data.num_annotators, num_nodes=num_nodes
        )

    chains, draws = next(iter(params.values())).shape[:2]
    flat = {k: jnp.asarray(v.reshape(chains * draws, -1)) for k, v in params.items()}
    out = _map_draws(data, flat, per_draw, batch_size=64)
    return np.asarray(out).reshape(chains, draws, data.num_annotators)


def _annotator_posteriors(
    family: StrengthFamily,
    data: PanelData,
    params: dict[str, np.ndarray],
    probs: tuple[float, float, float],
    num_draws: int,
    num_strata: int,
    num_nodes: int,
) -> pd.DataFrame:
    """Each annotator's strength posterior averaged over hyperparameter draws (the mixture).

    Mean and variance are exact (law of total variance); quantiles are those of the pooled
    quantiles at ``num_strata`` midpoint probabilities of every draw, a stratified sample of
    the mixture.
    """
    from mixlogit.jax.panel import panel_strength_posterior

    flat = {k: v.reshape(-1, v.shape[-1]) for k, v in params.items()}
    keep = _thin(next(iter(flat.values())).shape[0], num_draws)
    strata = tuple(float(p) for p in (np.arange(num_strata) + 0.5) / num_strata)

    def per_draw(d, group, per_annotator):
        post = panel_strength_posterior(
            d,
            group,
            family,
            per_annotator,
            num_groups=data.num_annotators,
            probs=strata,
            num_nodes=num_nodes,
        )
        return post.mean, post.variance + post.mean**2, post.quantiles

    draws = {k: jnp.asarray(v[keep]) for k, v in flat.items()}
    means, second, pooled = (
        np.asarray(x) for x in _map_draws(data, draws, per_draw, batch_size=16)
    )
    # pooled: (draws, A, strata) -> (A, draws * strata)
    pooled = pooled.transpose(1, 0, 2).reshape(data.num_annotators, -1)
    mean = np.mean(means, axis=0)
    sd = np.sqrt(np.maximum(np.mean(second, axis=0) - mean**2, 0.0))
    quantiles = np.quantile(pooled, probs, axis=1)
    table = pd.DataFrame(
        {
            "annotator": data.annotators,
            "subgroup": [data.subgroups[g] for g in data.annotator_subgroup],
            "num_labels": np.bincount(data.annotator, minlength=data.num_annotators),
            "strength_mean": mean,
            "strength_sd": sd,
        }
    )
    for p, q in zip(probs, quantiles, strict=True):
        table[f"strength_{_quantile_label(p)}"] = q
    return table


def _diagnostics(idata: Any, family: StrengthFamily) -> dict[str, float]:
    posterior = idata.posterior
    # the family parameters are deterministic transforms of mean_strength and cv
    sampled = [v for v in posterior.data_vars if v not in family.parameters]
    r_hat = az.rhat(posterior[sampled])
    ess = az.ess(posterior[sampled], method="bulk")
    return {
        "max_r_hat": float(max(float(r_hat[v].max()) for v in sampled)),
        "min_ess_bulk": float(min(float(ess[v].min()) for v in sampled)),
        "num_divergences": int(idata.sample_stats["diverging"].sum()),
    }


def _warn(diagnostics: dict[str, float], min_ess: float) -> None:
    problems = []
    if diagnostics["max_r_hat"] > 1.01:
        problems.append(f"max r_hat {diagnostics['max_r_hat']:.3f} > 1.01")
    if diagnostics["min_ess_bulk"] < min_ess:
        problems.append(f"min bulk ESS {diagnostics['min_ess_bulk']:.0f} < {min_ess:.0f}")
    if diagnostics["num_divergences"] > 0:
        problems.append(f"{diagnostics['num_divergences']} divergent transitions")
    if problems:
        warnings.warn(
            "panel strength posterior may be unreliable: "
            + "; ".join(problems)
            + " (run more draws, raise target_accept, or set centered_mean=False)",
            RuntimeWarning,
            stacklevel=3,
        )


def _interval(values: np.ndarray, probs: tuple[float, float, float]) -> tuple[float, float]:
    low, high = np.quantile(values, (probs[0], probs[-1]))
    return float(low), float(high)


def _subgroup_table(idata: Any, data: PanelData, probs: tuple[float, float, float]) -> pd.DataFrame:
    posterior = idata.posterior
    stats = {
        q: (az.rhat(posterior[q])[q].to_numpy(), az.ess(posterior[q], method="bulk")[q].to_numpy())
        for q in ("mean_strength", "cv")
    }
    counts = np.bincount(data.annotator_subgroup, minlength=data.num_subgroups)
    labels = np.bincount(data.annotator_subgroup[data.annotator], minlength=data.num_subgroups)
    table = pd.DataFrame(
        {"subgroup": data.subgroups, "num_annotators": counts, "num_labels": labels}
    )
    population = posterior["population_mean"].to_numpy()
    for quantity in ("mean_strength", "cv"):
        draws = posterior[quantity].to_numpy().reshape(-1, data.num_subgroups)
        table[quantity] = draws.mean(axis=0)
        bounds = np.array([_interval(draws[:, g], probs) for g in range(data.num_subgroups)])
        table[f"{quantity}_low"] = bounds[:, 0]
        table[f"{quantity}_high"] = bounds[:, 1]
        table[f"{quantity}_r_hat"] = stats[quantity][0]
        table[f"{quantity}_ess_bulk"] = stats[quantity][1]
    relative = posterior["mean_strength"].to_numpy() / population[..., None]
    table["relative_strength"] = relative.reshape(-1, data.num_subgroups).mean(axis=0)
    return table


def _population(idata: Any, probs: tuple[float, float, float]) -> dict[str, float]:
    out = {}
    for key, site in (("mean", "population_mean"), ("cv", "population_cv")):
        draws = idata.posterior[site].to_numpy().ravel()
        out[key] = float(draws.mean())
        out[f"{key}_low"], out[f"{key}_high"] = _interval(draws, probs)
    return out
