"""Hierarchical NumPyro model of preference strength per subgroup, with partial pooling.

Given a trained policy's margins ``d`` (log-probability of the chosen minus the rejected
completion, nats) on held-out pairs labelled by subgroup, the strength ``beta`` with which a
subgroup's annotators follow the policy's margin is a random variable with subgroup mean ``m_g``
and coefficient of variation ``c_g``. The choice ``y`` of each pair (1 = the annotator chose the
"chosen" completion, the default when no outcome column is given) has the exact marginal
likelihood ``P(y = 1 | d) = E_beta[sigmoid(beta d)]``: the family's ``log_marginal`` from
:mod:`mixlogit.families` on JAX arrays (the function that :mod:`mixlogit.jax`'s
``GammaLogitBernoulli`` / ``LogNormalLogitBernoulli`` score).

Partial pooling (log mean centred, log CV non-centred)::

    mu_m ~ Normal(prior.log_mean_loc, prior.log_mean_scale)
    tau_m ~ HalfNormal(prior.log_mean_pooling)
    mu_c ~ Normal(prior.log_cv_loc, prior.log_cv_scale)
    tau_c ~ HalfNormal(prior.log_cv_pooling)
    log m_g ~ Normal(mu_m, tau_m),   log c_g = mu_c + tau_c w_g,   w_g ~ Normal(0, 1)

The family's parameters follow from ``(m_g, c_g)`` by its moment matching ``from_mean_cv``
(Gamma: ``shape = 1 / c^2, rate = shape / m``; LogNormal: ``scale^2 = log(1 + c^2)``,
``loc = log m - scale^2 / 2``). A point mass (``"point_mass"``, alias ``"fixed"``) has no ``c``
(plain logit ``sigmoid(m d)``).

With one choice per pair the mean strength is well identified; the coefficient of variation is
identified only through the shape of ``P(y | d)`` across margins and its posterior stays close
to the prior unless there are many pairs with large ``|d|``: read its interval, not its mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.infer import MCMC, NUTS, Predictive

from analysis._arviz import az
from mixlogit._deprecation import deprecated_keywords, renamed_attribute
from mixlogit.data import plain_value
from mixlogit.families import POINT_MASS, StrengthFamily, get_family
from mixlogit.jax._ops import OPS as JAX_OPS

__all__ = [
    "SubgroupPosterior",
    "SubgroupStrengthPrior",
    "fit_subgroup_strengths",
    "subgroup_strength_model",
]


def _has_cv(family: StrengthFamily) -> bool:
    """Whether subgroups get a CV: every family but the point mass has a spread."""
    return family is not POINT_MASS


def _quantities(family: StrengthFamily) -> list[str]:
    """The reported per-subgroup quantities."""
    return ["mean_strength", "cv"] if _has_cv(family) else ["mean_strength"]


@dataclass(frozen=True)
class SubgroupStrengthPrior:
    """Hyperpriors of :func:`subgroup_strength_model` (log scale; see the module docstring).

    ``log_mean_loc=None`` centres the log mean strength at ``log(1 / sd(d))``: the strength at
    which a typical margin moves the choice logit by one unit, so the default is invariant to
    the units of ``d``; ``log_mean_scale=2`` then spans a factor ``e^4 ~ 55`` either way.

    The CV prior is weakly informative on purpose: a subgroup's CV is centred at 0.5 (the
    learned MixDPO distributions of the paper have CVs of 0.66 and 0.71) with a 95 % prior range
    of about 0.17 to 1.5. Single binary choices barely identify the CV, and a wider prior (scale
    1) leaves a banana-shaped posterior (a large CV trading off against the mean) on which two
    NUTS chains of a few hundred draws do not reach r_hat <= 1.01.
    """

    log_mean_loc: float | None = None
    log_mean_scale: float = 2.0
    log_mean_pooling: float = 1.0
    log_cv_loc: float = math.log(0.5)
    log_cv_scale: float = 0.5
    log_cv_pooling: float = 0.3


def subgroup_strength_model(
    d: jax.Array,
    group: jax.Array,
    num_groups: int,
    y: jax.Array | None = None,
    *,
    family: str = "gamma",
    prior: SubgroupStrengthPrior = SubgroupStrengthPrior(),
    log_mean_loc: float = 0.0,
    num_points: int = 16,
    num_terms: int = 12,
    centered_mean: bool = True,
) -> None:
    """NumPyro model: per-subgroup strength mean and CV with partial pooling.

    Args:
        d: ``(N,)`` margins (nats).
        group: ``(N,)`` int subgroup codes in ``[0, num_groups)``.
        num_groups: ``G``.
        y: ``(N,)`` 0/1 choices (1 = chosen preferred), or None to sample them.
        family: strength family of the likelihood (a :mod:`mixlogit.families` name).
        prior: hyperpriors; ``prior.log_mean_loc`` overrides ``log_mean_loc`` when set.
        log_mean_loc: centre of the log-mean hyperprior when ``prior.log_mean_loc`` is None.
        num_points: Gauss-Hermite nodes of the LogNormal marginal.
        centered_mean: sample the log mean strengths directly (True) or non-centred.
        num_terms: series terms of the Gamma marginal (relative error below
            ``2 / 5.83^num_terms``: 1.3e-9 at the default 12, far below Monte Carlo error, at
            half the cost of the float64 default of 24).

    Sample sites: ``mu_log_mean``, ``tau_log_mean``, ``log_mean`` (G,) (``z_log_mean`` when
    ``centered_mean=False``: ``log_mean = mu + tau z``), deterministic
    ``mean_strength`` (G,); for a family with a spread (not the point mass) also ``mu_log_cv``,
    ``tau_log_cv``, ``z_log_cv`` (G,), deterministic ``cv`` (G,) and the family's parameters
    (G,); observed ``y`` (N,).
    """
    spec = get_family(family)
    centre = prior.log_mean_loc if prior.log_mean_loc is not None else log_mean_loc
    mu_m = numpyro.sample("mu_log_mean", dist.Normal(centre, prior.log_mean_scale))
    tau_m = numpyro.sample("tau_log_mean", dist.HalfNormal(prior.log_mean_pooling))
    if _has_cv(spec):
        mu_c = numpyro.sample("mu_log_cv", dist.Normal(prior.log_cv_loc, prior.log_cv_scale))
        tau_c = numpyro.sample("tau_log_cv", dist.HalfNormal(prior.log_cv_pooling))
    with numpyro.plate("subgroup", num_groups):
        if centered_mean:
            log_mean = numpyro.sample("log_mean", dist.Normal(mu_m, tau_m))
        else:
            log_mean = mu_m + tau_m * numpyro.sample("z_log_mean", dist.Normal(0.0, 1.0))
        if _has_cv(spec):
            z_c = numpyro.sample("z_log_cv", dist.Normal(0.0, 1.0))
    mean = numpyro.deterministic("mean_strength", jnp.exp(log_mean))
    if not _has_cv(spec):
        with numpyro.plate("pair", d.shape[0]):
            numpyro.sample("y", dist.Bernoulli(logits=mean[group] * d), obs=y)
        return
    cv = numpyro.deterministic("cv", jnp.exp(mu_c + tau_c * z_c))
    params = {
        name: numpyro.deterministic(name, value)
        for name, value in spec.from_mean_cv(JAX_OPS, mean, cv).items()
    }
    options = {"num_terms": num_terms, "method": "quadrature", "num_points": num_points}
    per_pair = {name: value[group] for name, value in params.items()}
    likelihood = _ExactMarginalChoice(
        lambda signed: spec.log_marginal(JAX_OPS, signed, per_pair, **options), d
    )
    with numpyro.plate("pair", d.shape[0]):
        numpyro.sample("y", likelihood, obs=y)


class _ExactMarginalChoice(dist.Distribution):
    """Binary choice ``y`` at margin ``d`` scored by a :mod:`mixlogit.jax` strength marginal.

    ``log P(y | d) = log_marginal(d)`` for ``y = 1`` and ``log_marginal(-d)`` for ``y = 0``
    (``1 - E[sigmoid(beta d)] = E[sigmoid(-beta d)]``), so one marginal evaluation per pair
    at the signed margin: half the work of ``*LogitBernoulli.log_prob``, which evaluates both
    signs and selects. (Wrapping also sidesteps ``GammaLogitBernoulli.shape``, the Gamma
    parameter, shadowing ``Distribution.shape()`` that NumPyro calls on every sample site.)
    """

    support = dist.constraints.boolean

    def __init__(self, log_marginal: Callable[[jax.Array], jax.Array], d: jax.Array) -> None:
        self.log_marginal = log_marginal
        self.d = d
        super().__init__(batch_shape=jnp.shape(d))

    def log_prob(self, value):
        return self.log_marginal(jnp.where(value > 0.5, self.d, -self.d))

    def sample(self, key, sample_shape=()):
        probability = jnp.exp(self.log_marginal(self.d))
        return jax.random.bernoulli(key, probability, tuple(sample_shape) + self.batch_shape)


@dataclass
class SubgroupPosterior:
    """Result of :func:`fit_subgroup_strengths`.

    Attributes:
        idata: ArviZ ``InferenceData``: ``posterior`` (hyperparameters first, then the
            per-subgroup sites with dim ``subgroup`` labelled by the subgroup names),
            ``sample_stats``, ``observed_data`` (``y``, dim ``pair`` labelled by the pair ids),
            ``constant_data`` (``margin`` and ``pair_subgroup``, dim ``pair``), and with
            ``predictive=True`` ``prior``, ``prior_predictive`` and ``posterior_predictive``
            (``y``); ``log_likelihood`` (``y``, per pair) when requested.
        by: the subgroup column (formerly ``attribute``).
        family: canonical name of the strength family of the likelihood.
        subgroups: subgroup labels in model order.
        counts: pairs per subgroup.
        min_count: subgroups with fewer pairs are flagged ``small``.
        interval: probability mass of the reported highest-density intervals (formerly
            ``hdi_prob``).
    """

    idata: Any
    by: str
    family: str
    subgroups: list
    counts: np.ndarray
    min_count: int
    interval: float = 0.9
    _summary: pd.DataFrame | None = field(default=None, repr=False)

    attribute = renamed_attribute("by")
    hdi_prob = renamed_attribute("interval")

    def summary(self) -> pd.DataFrame:
        """One row per subgroup: ``subgroup``, ``n``, ``small``, and for ``mean_strength`` and
        (all families but the point mass) ``cv``: posterior mean, ``*_low``/``*_high`` HDI bounds,
        ``*_r_hat`` and ``*_ess_bulk``."""
        if self._summary is not None:
            return self._summary
        quantities = _quantities(get_family(self.family))
        stats = az.summary(
            self.idata, var_names=quantities, hdi_prob=self.interval, kind="all", round_to="none"
        )
        low_col = next(c for c in stats.columns if c.startswith("hdi_") and c != "hdi_")
        high_col = [c for c in stats.columns if c.startswith("hdi_")][-1]
        table = pd.DataFrame(
            {
                "subgroup": self.subgroups,
                "n": self.counts.astype(int),
                "small": self.counts < self.min_count,
            }
        )
        for quantity in quantities:
            rows = stats.loc[[f"{quantity}[{s}]" for s in self.subgroups]]
            table[quantity] = rows["mean"].to_numpy()
            table[f"{quantity}_low"] = rows[low_col].to_numpy()
            table[f"{quantity}_high"] = rows[high_col].to_numpy()
            table[f"{quantity}_r_hat"] = rows["r_hat"].to_numpy()
            table[f"{quantity}_ess_bulk"] = rows["ess_bulk"].to_numpy()
        self._summary = table
        return table

    def diagnostics(self) -> dict[str, float]:
        """``max_r_hat`` and ``min_ess_bulk`` over every sampled site and the reported
        ``mean_strength`` and ``cv``; ``num_divergences`` after warmup."""
        posterior = self.idata.posterior
        # the family parameters are deterministic transforms of mean_strength and cv
        derived = get_family(self.family).parameters
        sampled = [v for v in posterior.data_vars if v not in derived]
        r_hat = az.rhat(posterior[sampled])
        ess = az.ess(posterior[sampled], method="bulk")
        return {
            "max_r_hat": float(max(float(r_hat[v].max()) for v in sampled)),
            "min_ess_bulk": float(min(float(ess[v].min()) for v in sampled)),
            "num_divergences": int(self.idata.sample_stats["diverging"].sum()),
        }


def _finite_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """``frame[column]`` as float64; ``ValueError`` naming the first non-finite value's row."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"column {column!r} has non-finite value {plain_value(frame[column].iloc[row])!r} at row "
            f"{plain_value(frame.index[row])!r}"
        )
    return values


def _codes(column: pd.Series) -> tuple[np.ndarray, list]:
    """Integer codes and their levels (category order for categoricals, else sorted)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.unique())
        levels = [c for c in column.cat.categories if c in present]
    else:
        levels = sorted(column.unique(), key=str)
    return pd.Categorical(column, categories=levels).codes.astype(np.int32), levels


def _run_nuts(
    model: Any,
    args: tuple,
    model_kwargs: dict[str, Any],
    *,
    num_warmup: int,
    num_samples: int,
    num_chains: int,
    seed: int,
    target_accept: float,
    progress: bool,
    extra_fields: tuple[str, ...],
    dense_mass: bool = False,
) -> MCMC:
    """NumPyro NUTS on ``model(*args, **model_kwargs)``, chains vectorised (run it under x64)."""
    mcmc = MCMC(
        NUTS(model, target_accept_prob=target_accept, dense_mass=dense_mass),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=progress,
    )
    mcmc.run(jax.random.PRNGKey(seed), *args, extra_fields=extra_fields, **model_kwargs)
    return mcmc


def _population_first(idata: Any) -> None:
    """Reorder the ``posterior`` and ``prior`` variables in place: scalar sites (the population
    hyperparameters) before per-subgroup ones, so ``az.summary(idata)`` reads top-down."""
    for group in ("posterior", "prior"):
        if group in idata.groups():
            dataset = idata[group]
            order = sorted(dataset.data_vars, key=lambda v: dataset[v].ndim > 2)  # stable
            setattr(idata, group, dataset[order])  # same group, variables reordered


def _pair_ids(frame: pd.DataFrame, column: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels of the ``pair`` dimension and, when they are not ``frame[column]``, that column.

    ``frame[column]`` labels the rows when its values are unique; when a pair was judged
    several times (repeated ids) or the column is absent, the row index labels them (and the
    repeated ids are returned to be stored per row); a repeated row index leaves the row
    positions ``0 .. N-1``. Object labels become strings (netCDF)."""

    def netcdf(values: np.ndarray) -> np.ndarray:
        return values.astype(str) if values.dtype == object else values

    if column is not None and column in frame and not frame[column].duplicated().any():
        return netcdf(frame[column].to_numpy()), None
    index = frame.index.to_series()
    if index.duplicated().any():  # no label tells the rows apart: their positions do
        index = pd.Series(np.arange(len(frame)))
    stored = netcdf(frame[column].to_numpy()) if column is not None and column in frame else None
    return netcdf(index.to_numpy()), stored


def _outcomes(evaluation: pd.DataFrame, outcome: str | None) -> np.ndarray:
    if outcome is None:
        return np.ones(len(evaluation), dtype=np.int32)
    if outcome not in evaluation.columns:
        raise ValueError(f"outcome column {outcome!r} not in {list(evaluation.columns)}")
    raw = pd.to_numeric(evaluation[outcome], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isin(raw, (0.0, 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"outcome column {outcome!r} must hold 0 or 1; row {plain_value(evaluation.index[row])!r} "
            f"has {plain_value(evaluation[outcome].iloc[row])!r}"
        )
    return raw.astype(np.int32)


# the dataclass __init__ accepts the 0.1 keyword names for one release
SubgroupPosterior.__init__ = deprecated_keywords(attribute="by", hdi_prob="interval")(  # type: ignore[method-assign]
    SubgroupPosterior.__init__
)


@deprecated_keywords(hdi_prob="interval", progress_bar="progress")
def fit_subgroup_strengths(
    evaluation: pd.DataFrame,
    by: str,
    *,
    family: str = "gamma",
    value: str = "margin",
    outcome: str | None = None,
    prior: SubgroupStrengthPrior | None = None,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 2,
    seed: int = 0,
    dense_mass: bool = False,
    centered_mean: bool = True,
    target_accept: float = 0.9,
    min_count: int = 30,
    interval: float = 0.9,
    num_points: int = 16,
    num_terms: int = 12,
    log_likelihood: bool = False,
    predictive: bool = True,
    pair_id: str | None = "pair_id",
    progress: bool = False,
) -> SubgroupPosterior:
    """Posterior of each subgroup's mean strength and CV by NUTS (float64, chains vectorised).

    Args:
        evaluation: per-pair table of one policy (filter by method first) with ``value`` and
            ``by``; rows whose subgroup is missing are left out.
        by: subgroup column.
        family: a :mod:`mixlogit.families` name: ``"gamma"`` (exact series marginal),
            ``"lognormal"`` (Gauss-Hermite with ``num_points`` nodes) or ``"point_mass"`` (alias
            ``"fixed"``: no heterogeneity within a subgroup).
        value: margin column (nats).
        outcome: 0/1 choice column (1 = chosen preferred); None = every pair's chosen
            completion was preferred, as in a preference data set.
        prior: hyperpriors (default :class:`SubgroupStrengthPrior`).
        num_warmup, num_samples, num_chains, seed: NUTS settings (chains run vectorised).
        dense_mass: adapt a dense mass matrix (``4 + 2G`` dimensions); off by default, as it
            did not improve mixing on simulated data.
        centered_mean: centred parametrisation of the subgroups' log mean strengths (the
            default: subgroups of a few hundred pairs identify their mean well); set False for
            many tiny subgroups, where the non-centred form avoids the funnel, and for binary
            ``outcome`` data, where one choice per pair informs the mean weakly: on three
            simulated subgroups of 250 choices, 4 chains, the centred form left a chain stuck
            for one NUTS seed of three (68 divergences, R-hat 1.085), the non-centred none
            (tests/analysis/test_subgroup_posterior.py).
        target_accept: NUTS target acceptance probability.
        min_count: subgroups with fewer pairs are flagged ``small`` (they borrow most from the
            pooled estimate).
        interval: mass of the HDIs in :meth:`SubgroupPosterior.summary` (formerly
            ``hdi_prob``).
        num_points: LogNormal quadrature nodes.
        num_terms: Gamma series terms (see :func:`subgroup_strength_model`).
        log_likelihood: also store the pointwise log-likelihood (for ``az.loo``/``az.compare``
            across families); costs ``chains * draws * N`` floats.
        predictive: also store ``prior`` / ``prior_predictive`` (as many prior draws as
            posterior draws) and ``posterior_predictive`` (one replicated choice per pair and
            posterior draw), for ``az.plot_ppc``, ``az.plot_loo_pit`` and prior-vs-posterior
            plots; costs ``2 * chains * draws * N`` integers.
        pair_id: column whose values label the ``pair`` dimension when they are unique among
            the kept rows; when they repeat (a pair judged by several annotators), the row
            index labels the dimension and the column is kept per row in ``constant_data``;
            without the column (or with None) the row index labels it (the row positions
            when the index repeats labels).
        progress: show NumPyro's progress bar (formerly ``progress_bar``).

    Returns:
        :class:`SubgroupPosterior`.
    """
    spec = get_family(family)
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1), got {interval}")
    for column in (value, by):
        if column not in evaluation.columns:
            raise ValueError(f"column {column!r} not in {list(evaluation.columns)}")
    if "method" in evaluation.columns and evaluation["method"].nunique() > 1:
        raise ValueError(
            f"the table mixes methods {sorted(evaluation['method'].unique())}: fit one policy "
            "at a time (filter on the method column)"
        )
    frame = evaluation.loc[evaluation[by].notna()]
    if frame.empty:
        raise ValueError(f"column {by!r} has no known subgroup")
    d = _finite_values(frame, value)
    y = _outcomes(frame, outcome)
    pair_ids, repeated_ids = _pair_ids(frame, pair_id)
    codes, levels = _codes(frame[by])
    counts = np.bincount(codes, minlength=len(levels))
    prior = prior or SubgroupStrengthPrior()
    spread = float(np.std(d))
    if spread == 0.0:
        raise ValueError(f"column {value!r} is constant: strength is not identified")

    model_kwargs = {
        "family": spec.name,
        "prior": prior,
        "log_mean_loc": -math.log(spread),
        "num_points": num_points,
        "num_terms": num_terms,
        "centered_mean": centered_mean,
    }
    with jax.enable_x64(True):
        args = (jnp.asarray(d), jnp.asarray(codes), len(levels))
        mcmc = _run_nuts(
            subgroup_strength_model,
            (*args, jnp.asarray(y)),
            model_kwargs,
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            seed=seed,
            target_accept=target_accept,
            dense_mass=dense_mass,
            progress=progress,
            extra_fields=("diverging", "num_steps", "energy", "accept_prob"),
        )
        groups: dict[str, Any] = {}
        if predictive:  # prior (and prior predictive) draws, as many as posterior draws
            key_prior, key_post = jax.random.split(jax.random.PRNGKey(seed + 1))
            draws = num_chains * num_samples
            groups["prior"] = Predictive(subgroup_strength_model, num_samples=draws)(
                key_prior, *args, **model_kwargs
            )
            posterior_samples = mcmc.get_samples(group_by_chain=False)
            replicated = Predictive(subgroup_strength_model, posterior_samples, return_sites=["y"])(
                key_post, *args, **model_kwargs
            )
            groups["posterior_predictive"] = {
                "y": np.asarray(replicated["y"]).reshape(num_chains, num_samples, -1)
            }
        per_group = ["log_mean" if centered_mean else "z_log_mean", "mean_strength"]
        if _has_cv(spec):
            per_group += ["z_log_cv", "cv", *spec.parameters]
        pair_dims = {"y": ["pair"], "margin": ["pair"], "pair_subgroup": ["pair"]}
        constant = {"margin": d, "pair_subgroup": np.asarray([str(levels[c]) for c in codes])}
        if repeated_ids is not None:  # several judgements per pair: rows label the dim
            constant[str(pair_id)] = repeated_ids
            pair_dims[str(pair_id)] = ["pair"]
        idata = az.from_numpyro(
            mcmc,
            coords={"subgroup": [str(s) for s in levels], "pair": pair_ids},
            dims={**{site: ["subgroup"] for site in per_group}, **pair_dims},
            log_likelihood=log_likelihood,
            constant_data=constant,
            **groups,
        )
    _population_first(idata)
    return SubgroupPosterior(
        idata=idata,
        by=by,
        family=spec.name,
        subgroups=[str(s) for s in levels],
        counts=counts,
        min_count=min_count,
        interval=interval,
    )
