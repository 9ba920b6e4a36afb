"""Results of a Bayesian fit: ArviZ InferenceData, tidy tables, diagnostics.

The results contract shared with :class:`mixlogit.results.EstimationResults`: ``summary()``
returns a DataFrame (``interval=`` sets the interval columns), ``str(results)`` and
``summary_text()`` the printable report, ``wtp(attribute, cost)``,
``individual_coefficients()`` and ``spec`` (the fitted :class:`~mixlogit.spec.ModelSpec`).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mixlogit._choice_ops import choice_ops
from mixlogit._deprecation import renamed_keywords
from mixlogit.arrays import ChoiceArrays
from mixlogit.bayes.panel import PanelArrays
from mixlogit.bayes.postprocess import PostProcessed
from mixlogit.bayes.priors import BayesPriors
from mixlogit.draws import sobol_normals
from mixlogit.mixing import (
    hierarchical_coefficients,
    hierarchical_moments,
    reciprocal_moments_exist,
)
from mixlogit.results import WTPMomentWarning, interval_labels
from mixlogit.spec import ModelSpec

__all__ = ["BayesDiagnosticWarning", "BayesianResults"]

#: The interval of the tidy tables by default (ArviZ's default HDI mass).
DEFAULT_INTERVAL = 0.94


class BayesDiagnosticWarning(UserWarning):
    """Divergences, r_hat > 1.01, low ESS, Pareto k > 0.7 or an unconverged ELBO."""


_DIMS = {
    "beta_fixed": ["fixed"],
    "mu": ["random"],
    "sigma": ["z_random"],
    "log_shape": ["gamma_random"],
    "L_corr": ["corr_row", "corr_col"],
    "z": ["person", "z_random"],
    "u": ["person", "gamma_random"],
    "u_std": ["person", "gamma_random"],
    "mean": ["random"],
    "sd": ["random"],
    "class_share": ["class"],
    "beta_class": ["class", "coefficient"],
}
_POPULATION_VARS = ("beta_fixed", "mean", "sd", "mu", "sigma", "log_shape", "L_corr")
_CLASS_VARS = ("class_share", "beta_class")


class BayesianResults:
    """Posterior of a Bayesian choice model.

    Attributes:
        idata: ArviZ ``InferenceData`` with groups ``posterior`` (population parameters, person
            draws ``z``/``u`` of a sampled hierarchical fit, natural-scale population ``mean`` and
            ``sd`` of each random coefficient), ``sample_stats`` (NUTS), ``log_likelihood``
            (``choice``: per decision-maker, random coefficients integrated out),
            ``observed_data`` (``choice``: chosen slot per situation;
            ``first_alternative_count``: per person, how often the first alternative was
            chosen) and ``posterior_predictive`` (the same two, replicated).
            :func:`analysis.choice_fit_to_inference_data` gives an ArviZ-native copy
            (distinct log-likelihood name, person draws outside ``posterior``).
        kind: ``"hierarchical"``, ``"quadrature"``, ``"latent_class"`` or ``"mnl"``.
        method, backend: how it was fitted.
        spec: the :class:`~mixlogit.spec.ModelSpec`.
        elbo: ``(num_steps,)`` ELBO trace of an SVI fit (None for NUTS).
        fit_seconds: wall time of sampling / optimisation (JIT compilation included).
        postprocess_seconds: wall time of the log-likelihood / predictive computations.
        quadrature_error: estimated absolute error of the total log-likelihood of a
            ``integrate="quadrature"`` fit (rule vs twice as many nodes, max over draws).
        loglik_method: how person draws were integrated in the ``log_likelihood`` group.
        beta_person: ``(chain, draw, person, K)`` draws of each person's coefficients from their
            conditional posterior, or None when not computed.
        class_probability: ``(chain, draw, person, C)`` posterior class probabilities.
        person_ids: ``(P,)`` label of each person (the data's panel ids; ``0 .. P-1`` when
            the data came as ``ChoiceArrays``), the ``person`` coordinate and columns.
        diagnostics: dict filled by :meth:`check`.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    # ----------------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        *,
        kind: str,
        method: str,
        backend: str,
        spec: ModelSpec,
        arrays: ChoiceArrays,
        panel: PanelArrays,
        samples: dict[str, np.ndarray],
        sample_stats: dict[str, np.ndarray],
        post: PostProcessed,
        elbo: np.ndarray | None,
        fit_seconds: float,
        postprocess_seconds: float,
        quadrature_error: float | None,
        priors: BayesPriors,
        settings: dict,
        person_ids: Sequence[Any] | np.ndarray | None = None,
    ) -> BayesianResults:
        """Assemble the results of :func:`~mixlogit.bayes.fit.fit_bayes`.

        ``person_ids``: ``(P,)`` label of each decision maker in panel order (the data's panel
        ids, ``ChoiceData.panel_ids``), used for the ``person`` coordinate and columns as the
        classical results do; default ``0 .. P-1`` (data given as bare ``ChoiceArrays``).
        """
        import arviz as az

        first = next(iter(samples.values()))
        C, D = first.shape[:2]
        posterior = {
            k: v
            for k, v in samples.items()
            if k not in ("beta_ordered", "beta_rest", "beta_ordered_prior")
        }
        if spec.random_index and kind != "latent_class":
            posterior.update(hierarchical_moments(spec, posterior))
        P = panel.num_panels
        S = panel.num_situations
        persons = _person_labels(person_ids, P)
        coords = {
            "fixed": list(spec.fixed),
            "random": list(spec.random),
            "z_random": list(spec.z_random),
            "gamma_random": list(spec.gamma_random),
            "corr_row": list(spec.correlated),
            "corr_col": list(spec.correlated),
            "coefficient": list(spec.variables),
            "person": persons,
            "situation": np.arange(S),
        }
        if "class_share" in posterior:
            coords["class"] = np.arange(posterior["class_share"].shape[-1])
        dims = {k: v for k, v in _DIMS.items() if k in posterior}
        sit_index = panel.situation_index
        real = sit_index >= 0
        order = np.argsort(sit_index[real])  # panel order -> situation order

        def to_situations(a: np.ndarray) -> np.ndarray:
            """(..., P, T) -> (..., S) in the row order of the ChoiceArrays."""
            return a[..., real][..., order]

        groups: dict[str, Any] = {"posterior": posterior}
        if sample_stats:
            groups["sample_stats"] = sample_stats
        # per person (the unit the log-likelihood scores): how often the first alternative was
        # chosen, a scalar statistic for az.plot_loo_pit(idata, y="first_alternative_count")
        chosen_panel = np.asarray(arrays.chosen)[np.where(real, sit_index, 0)]
        groups["observed_data"] = {
            "choice": np.asarray(arrays.chosen),
            "first_alternative_count": ((chosen_panel == 0) & real).sum(-1),
        }
        dims["choice"] = ["situation"]
        dims["first_alternative_count"] = ["person"]
        log_lik = None
        if post.log_likelihood is not None:
            log_lik = {"choice": post.log_likelihood.reshape(C, D, P)}
        pp = None
        if post.y_rep is not None:
            rep = post.y_rep.reshape(C, D, *post.y_rep.shape[1:])
            pp = {
                "choice": to_situations(rep),
                "first_alternative_count": ((rep == 0) & real).sum(-1),
            }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            idata = az.from_dict(
                posterior=posterior,
                sample_stats=groups.get("sample_stats"),
                observed_data=groups["observed_data"],
                posterior_predictive=pp,
                log_likelihood=None,
                coords=coords,
                dims=dims,
            )
            if log_lik is not None:
                ll = az.from_dict(
                    log_likelihood=log_lik,
                    coords={"person": persons},
                    dims={"choice": ["person"]},
                )
                idata.extend(ll)
        idata.attrs.update(
            {
                "model_kind": kind,
                "inference": method,
                "backend": backend,
                "loglik_unit": "decision-maker",
                "loglik_method": post.loglik_method,
                "alternatives": ", ".join(str(a) for a in arrays.alternatives),
            }
        )
        beta_person = None if post.beta_person is None else post.beta_person.reshape(C, D, P, -1)
        class_prob = (
            None if post.class_probability is None else post.class_probability.reshape(C, D, P, -1)
        )
        return cls(
            idata=idata,
            kind=kind,
            method=method,
            backend=backend,
            spec=spec,
            elbo=elbo,
            fit_seconds=fit_seconds,
            postprocess_seconds=postprocess_seconds,
            quadrature_error=quadrature_error,
            loglik_method=post.loglik_method,
            beta_person=beta_person,
            class_probability=class_prob,
            priors=priors,
            settings=settings,
            person_ids=persons,
            diagnostics={},
            _samples=samples,
        )

    # ----------------------------------------------------------------------------------------
    @property
    def population_vars(self) -> list[str]:
        names = _CLASS_VARS if self.kind == "latent_class" else _POPULATION_VARS
        return [v for v in names if v in self.idata.posterior]

    def summary(
        self,
        var_names: Sequence[str] | None = None,
        interval: float = DEFAULT_INTERVAL,
        **kwargs: Any,
    ) -> pd.DataFrame:
        """``arviz.summary`` of the population parameters (or ``var_names``) with HDIs of
        mass ``interval`` (old name ``hdi_prob``, deprecated); ``kwargs`` go to ArviZ."""
        import arviz as az

        kwargs = renamed_keywords("BayesianResults.summary", kwargs, {"hdi_prob": "interval"})
        interval = kwargs.pop("interval", interval)
        var_names = list(var_names) if var_names is not None else self.population_vars
        if self.idata.posterior.sizes["chain"] == 1 and self.method != "nuts":
            kwargs.setdefault("kind", "stats")  # SVI draws are independent: no r_hat / ESS
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # constant L_corr[0, 0] entries
            return az.summary(self.idata, var_names=var_names, hdi_prob=interval, **kwargs)

    def summary_text(self) -> str:
        """Human-readable report (also ``str(results)``): the fit, the population table and
        the diagnostics."""
        table = self.population().to_string(index=False, float_format=lambda v: f"{v:.6g}")
        lines = [
            repr(self),
            f"Specification: {self.spec.describe()}",
            f"Log-likelihood integration: {self.loglik_method}",
            "",
            table,
        ]
        problems = self.diagnostics.get("problems")
        if self.diagnostics:
            lines += ["", "Diagnostics: " + ("; ".join(problems) if problems else "no problem")]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary_text()

    def population(self, interval: float = DEFAULT_INTERVAL) -> pd.DataFrame:
        """Tidy table of every coefficient's population mean and SD (natural scale).

        Columns: ``coefficient, distribution, statistic ("mean"/"sd"), posterior_mean,
        posterior_sd`` and the central ``interval`` (``q3%, median, q97%`` by default);
        latent class: one ``mean`` row per class and ``share`` rows.
        """
        post = self.idata.posterior
        rows = []

        def add(coef: str, dist: str, stat: str, draws: np.ndarray, **extra: Any) -> None:
            summary = _draw_summary(np.asarray(draws).ravel(), interval, prefix="posterior_")
            rows.append(
                {"coefficient": coef, "distribution": dist, "statistic": stat, **extra, **summary}
            )

        if self.kind == "latent_class":
            beta = post["beta_class"].values
            share = post["class_share"].values
            for c in range(share.shape[-1]):
                add("class_share", "latent class", "share", share[..., c], **{"class": c})
                for k, name in enumerate(self.spec.variables):
                    add(name, "latent class", "mean", beta[..., c, k], **{"class": c})
            return pd.DataFrame(rows)
        for i, c in enumerate(self.spec.coefficients):
            if c.distribution is None:
                pos = self.spec.fixed_index.index(i)
                add(c.name, "fixed", "mean", post["beta_fixed"].values[..., pos])
            else:
                r = self.spec.random_index.index(i)
                add(c.name, c.distribution, "mean", post["mean"].values[..., r])
                add(c.name, c.distribution, "sd", post["sd"].values[..., r])
        return pd.DataFrame(rows)

    def individual_coefficients(self, interval: float = DEFAULT_INTERVAL) -> pd.DataFrame:
        """Each person's coefficients given their choices (conditional posterior).

        Columns: ``person`` (the data's panel id, as the index of
        :meth:`mixlogit.results.EstimationResults.individual_coefficients`), ``coefficient,
        mean, sd`` and the central ``interval`` (``q3%, median, q97%`` by default), one row
        per person and coefficient. Summaries are over
        posterior draws of the person's coefficients (for quadrature and latent-class fits: a
        draw from the person's conditional distribution per population draw).
        """
        beta = self._require_person_level()
        return self._tidy_person(beta, list(self.spec.variables), "coefficient", interval)

    def wtp(
        self,
        attribute: str | Sequence[str] | None = None,
        cost: str | None = None,
        *,
        level: str = "individual",
        num_draws: int = 512,
        seed: int = 0,
        interval: float = DEFAULT_INTERVAL,
        **deprecated: Any,
    ) -> pd.DataFrame:
        """Willingness to pay ``-beta_attribute / beta_cost`` (units of the cost variable per
        unit of the attribute), as :meth:`mixlogit.results.EstimationResults.wtp`.

        Args:
            attribute: coefficient(s) to value (default: all but ``cost``).
            cost: name of the cost coefficient.
            level: ``"individual"`` or ``"population"``, see Returns.
            num_draws: draws of new people per posterior draw for ``level="population"``
                (old name ``num_population_draws``, deprecated).
            seed: seed of those draws.
            interval: mass of the central interval columns (``q3%, median, q97%`` by
                default).

        Returns:
            ``level="individual"``: one row per person and attribute, columns ``person,
            attribute, mean, sd`` and the interval columns: the summary of the person's
            ``C * D`` posterior draws of their ratio. ``level="population"``: two rows per
            attribute, columns ``attribute, statistic, posterior_mean, posterior_sd`` and the
            interval columns: the posterior (over the ``C * D`` draws of the population
            parameters) of the ``"mean"`` and of the ``"median"`` of the ratio across
            ``num_draws`` new people.

        Moments that do not exist are NaN, with a :class:`~mixlogit.results.WTPMomentWarning`
        (the rule of :func:`mixlogit.mixing.reciprocal_moments_exist`, applied to the cost's
        population distribution in every posterior draw): a normal or truncated-normal cost,
        a uniform or triangular one whose support reaches 0, or a gamma of shape <= 1 gives
        ``-beta_attribute / beta_cost`` no finite mean across people, so at the population
        level the ``"mean"`` rows are NaN (all their columns; the ``"median"`` rows exist)
        when that holds in any posterior draw, and the message gives the share of such
        draws. A person's posterior density of ``beta_cost`` is their (positive) likelihood
        times the population density, so near 0 it behaves as the population's: at the
        individual level the same draws make the ``mean`` and ``sd`` columns NaN, and a gamma
        of shape <= 2 the ``sd`` column (the median and interval columns stay). A fixed or
        lognormal cost, and latent classes, have every moment. Independently,
        :class:`BayesDiagnosticWarning` reports posterior draws with ``beta_cost >= 0``
        (a fixed cost's posterior under a normal prior is not bounded away from 0 either;
        that warning is the check there).

        The old order ``wtp(cost, attributes=None)`` still works for one release, with a
        ``DeprecationWarning``: a call without ``cost``, or with ``attributes=``.
        """
        deprecated = renamed_keywords(
            "BayesianResults.wtp", deprecated, {"num_population_draws": "num_draws"}
        )
        num_draws = deprecated.pop("num_draws", num_draws)
        if "attributes" in deprecated or cost is None:
            warnings.warn(
                "BayesianResults.wtp(cost, attributes) is deprecated; call "
                "wtp(attribute, cost) (attribute None: all but the cost)",
                DeprecationWarning,
                stacklevel=2,
            )
            attribute, cost = deprecated.pop("attributes", None), attribute
        if deprecated:
            raise TypeError(f"wtp: unexpected keyword arguments {sorted(deprecated)}")
        names = list(self.spec.variables)
        if not isinstance(cost, str) or cost not in names:
            raise ValueError(f"cost coefficient {cost!r} is not in the model {names}")
        if attribute is None:
            attributes = [a for a in names if a != cost]
        else:
            attributes = [attribute] if isinstance(attribute, str) else list(attribute)
        bad = [a for a in attributes if a not in names]
        if bad:
            raise ValueError(f"attributes {bad} are not coefficients of the model {names}")
        kc = names.index(cost)
        ka = [names.index(a) for a in attributes]
        if level not in ("individual", "population"):
            raise ValueError(f"level must be 'individual' or 'population', got {level!r}")
        gaps = self._cost_moment_gaps(cost)
        no_mean = gaps["mean"][0] > 0
        if level == "individual":
            beta = self._require_person_level()
            self._warn_cost_sign(beta[..., kc])
            ratio = -beta[..., ka] / beta[..., kc : kc + 1]
            table = self._tidy_person(ratio, attributes, "attribute", interval)
            if gaps["sd"][0]:  # no mean implies no variance
                missing = ["mean", "sd"] if no_mean else ["sd"]
                what = "mean or SD" if no_mean else "SD"
                self._warn_wtp_moments(attributes, cost, level, *gaps[missing[0]], what)
                table[missing] = np.nan
            return table
        draws = self.population_draws(num_draws, seed)  # (N, R, K)
        self._warn_cost_sign(draws[..., kc])
        if no_mean:
            self._warn_wtp_moments(attributes, cost, level, *gaps["mean"], "mean")
        ratio = -draws[..., ka] / draws[..., kc : kc + 1]
        rows = []
        for j, a in enumerate(attributes):
            for stat, values in (
                ("mean", ratio[..., j].mean(1)),
                ("median", np.median(ratio[..., j], 1)),
            ):
                summary = _draw_summary(values, interval, prefix="posterior_")
                if stat == "mean" and no_mean:
                    # a sample mean of draws without a finite mean estimates nothing: it does
                    # not settle as num_draws grows
                    summary = dict.fromkeys(summary, np.nan)
                rows.append({"attribute": a, "statistic": stat, **summary})
        return pd.DataFrame(rows)

    def population_draws(self, num_draws: int = 512, seed: int = 0, **deprecated) -> np.ndarray:
        """``(N, num_draws, K)`` draws of coefficients of new people, for each of the ``N``
        posterior draws (scrambled Sobol normals; gamma and latent classes sampled); old
        keyword ``num``, deprecated."""
        deprecated = renamed_keywords(
            "BayesianResults.population_draws", deprecated, {"num": "num_draws"}
        )
        num = deprecated.pop("num_draws", num_draws)
        if deprecated:
            raise TypeError(f"population_draws: unexpected keyword arguments {sorted(deprecated)}")
        samples = self._samples
        first = next(iter(samples.values()))
        n = first.shape[0] * first.shape[1]
        flat = {k: v.reshape((n, *v.shape[2:])) for k, v in samples.items()}
        rng = np.random.default_rng(seed)
        K = len(self.spec.variables)
        if self.kind == "latent_class":
            share = flat["class_share"]
            beta = flat["beta_class"]
            cum = np.cumsum(share, -1)
            cls = (rng.random((n, num, 1)) > cum[:, None, :]).sum(-1)
            cls = np.minimum(cls, share.shape[-1] - 1)
            return np.take_along_axis(beta, cls[..., None], axis=1)
        kz, kg = len(self.spec.z_random), len(self.spec.gamma_random)
        z = sobol_normals(num, kz, seed) if kz else np.zeros((num, 0))
        if kg:
            shape = np.exp(flat["log_shape"])[:, None, :]
            u = rng.gamma(shape, 1.0, size=(n, num, kg))
        else:
            u = np.zeros((n, num, 0))
        params = {k: v[:, None] for k, v in flat.items() if k not in ("z", "u", "u_std")}
        out = hierarchical_coefficients(choice_ops("numpy"), self.spec, params, z[None], u)
        return np.broadcast_to(out, (n, num, K)).copy()

    def predict(
        self,
        data: Any,
        *,
        num_draws: int = 256,
        num_posterior_draws: int = 200,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Choice probabilities of new decision makers in the situations of ``data`` (any
        ``ChoiceData``, with or without observed choices), one row per situation: the
        probabilities averaged over ``num_draws`` population draws of the coefficients for each
        of ``num_posterior_draws`` posterior draws (evenly spaced over the chains), then over
        the posterior draws. The contract of
        :meth:`mixlogit.results.EstimationResults.predict`: a DataFrame ``(S, J)`` indexed by
        situation, one column per alternative, 0 where unavailable."""
        return self._predictions(data, num_draws, num_posterior_draws, seed)[0]

    def market_shares(
        self,
        data: Any,
        *,
        interval: float = DEFAULT_INTERVAL,
        num_draws: int = 256,
        num_posterior_draws: int = 200,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Weighted average predicted probability of each alternative (as
        :meth:`predict`), with its posterior ``mean``, ``sd`` and central ``interval`` over the
        posterior draws: one row per alternative."""
        _, shares, alternatives = self._predictions(data, num_draws, num_posterior_draws, seed)
        lower, upper, lower_label, upper_label = interval_labels(interval)
        return pd.DataFrame(
            {
                "mean": shares.mean(axis=0),
                "sd": shares.std(axis=0),
                lower_label: np.quantile(shares, lower, axis=0),
                upper_label: np.quantile(shares, upper, axis=0),
            },
            index=pd.Index(alternatives, name="alternative"),
        )

    def _predictions(self, data, num_draws, num_posterior_draws, seed):
        """Mean probabilities ``(S, J)`` as a DataFrame, the market shares of each posterior
        draw ``(N, J)`` and the alternatives."""
        arrays = data.to_arrays(list(self.spec.variables), check_identified=False)
        coefficients = self.population_draws(num_draws, seed)  # (N_all, R, K)
        keep = np.unique(
            np.linspace(0, len(coefficients) - 1, min(num_posterior_draws, len(coefficients)))
            .round()
            .astype(int)
        )
        weights = np.asarray(arrays.weights, dtype=np.float64)
        total = np.zeros(arrays.available.shape)
        shares = np.zeros((len(keep), arrays.available.shape[1]))
        for row, n in enumerate(keep):
            utility = np.einsum("sjk,rk->sjr", arrays.X, coefficients[n])
            utility = np.where(arrays.available[..., None], utility, -np.inf)
            utility -= utility.max(axis=1, keepdims=True)
            probabilities = np.exp(utility)
            probabilities = (probabilities / probabilities.sum(axis=1, keepdims=True)).mean(-1)
            total += probabilities
            shares[row] = weights @ probabilities / weights.sum()
        frame = pd.DataFrame(
            total / len(keep),
            index=pd.Index(data.situation_ids, name="situation"),
            columns=pd.Index(arrays.alternatives, name="alternative"),
        )
        return frame, shares, arrays.alternatives

    def class_membership(self) -> pd.DataFrame:
        """Posterior class probabilities per person (latent class only).

        Columns: ``person`` (panel id), ``p_class_0 .. p_class_{C-1}`` (averaged over
        posterior draws),
        ``most_likely_class``.
        """
        if self.class_probability is None:
            raise ValueError("class_membership is only available for LatentClassLogit fits")
        p = self.class_probability.mean((0, 1))
        df = pd.DataFrame(p, columns=[f"p_class_{c}" for c in range(p.shape[1])])
        df.insert(0, "person", self._persons(p.shape[0]))
        df["most_likely_class"] = p.argmax(1)
        return df

    def loo(self, **kwargs: Any):
        """``arviz.loo`` leaving out one decision-maker at a time."""
        import arviz as az

        if "log_likelihood" not in self.idata.groups():
            raise ValueError("this fit has no log_likelihood group (log_likelihood=False)")
        return az.loo(self.idata, **kwargs)

    # ----------------------------------------------------------------------------------------
    def check(self, warn: bool = True, stacklevel: int = 2) -> dict[str, Any]:
        """Diagnostics: divergences, max r_hat, min bulk/tail ESS (population parameters),
        Pareto k > 0.7 count from LOO, ELBO convergence for SVI; warns
        (:class:`BayesDiagnosticWarning`) when one is bad. Returns the dict (also stored in
        ``self.diagnostics``)."""
        import arviz as az

        diag: dict[str, Any] = {}
        problems = []
        chains = self.idata.posterior.sizes["chain"]
        if self.method == "nuts":
            div = int(np.asarray(self.idata.sample_stats["diverging"]).sum())
            diag["divergences"] = div
            if div:
                problems.append(
                    f"{div} divergent transitions (raise target_accept or reparameterise)"
                )
            table = self.summary()
            table = table[np.isfinite(table["r_hat"])] if chains > 1 else table
            if chains > 1:
                diag["max_r_hat"] = float(table["r_hat"].max())
                worst = table["r_hat"].idxmax()
                if diag["max_r_hat"] > 1.01:
                    problems.append(f"r_hat {diag['max_r_hat']:.3f} > 1.01 for {worst}")
            diag["min_ess_bulk"] = float(table["ess_bulk"].min())
            diag["min_ess_tail"] = float(table["ess_tail"].min())
            diag["slowest_parameter"] = str(table["ess_bulk"].idxmin())
            if diag["min_ess_bulk"] < 100 * chains:
                problems.append(
                    f"bulk ESS {diag['min_ess_bulk']:.0f} < {100 * chains} for "
                    f"{diag['slowest_parameter']}"
                )
        if self.elbo is not None:
            trace = np.asarray(self.elbo)
            w = max(len(trace) // 10, 1)
            last, prev = trace[-w:], trace[-2 * w : -w]
            if prev.size:
                change = float(last.mean() - prev.mean())
                noise = float(np.sqrt(last.var() / w + prev.var() / w))
                diag["elbo_final"] = float(last.mean())
                diag["elbo_last_change"] = change
                converged = abs(change) <= max(3 * noise, 1e-4 * abs(last.mean()))
                diag["elbo_converged"] = bool(converged)
                if not converged:
                    problems.append(
                        f"ELBO still changing: mean of last 10% of steps minus previous 10% is "
                        f"{change:.3g} (noise {noise:.3g}); raise num_steps"
                    )
        if "log_likelihood" in self.idata.groups():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loo = az.loo(self.idata, pointwise=True)
            k = np.asarray(loo.pareto_k)
            diag["elpd_loo"] = float(loo.elpd_loo)
            diag["p_loo"] = float(loo.p_loo)
            diag["max_pareto_k"] = float(k.max())
            diag["pareto_k_above_0.7"] = int((k > 0.7).sum())
            if diag["pareto_k_above_0.7"]:
                problems.append(
                    f"{diag['pareto_k_above_0.7']} decision-makers with Pareto k > 0.7 "
                    "(LOO unreliable for them)"
                )
        if self.quadrature_error is not None:
            diag["quadrature_error"] = self.quadrature_error
            if self.quadrature_error > 0.1:
                problems.append(
                    f"quadrature error {self.quadrature_error:.3g} log-likelihood units > 0.1; "
                    "raise num_nodes"
                )
        diag["problems"] = problems
        self.diagnostics = diag
        if warn and problems:
            warnings.warn(
                "Bayesian fit diagnostics: " + "; ".join(problems),
                BayesDiagnosticWarning,
                stacklevel=stacklevel,
            )
        return diag

    # ----------------------------------------------------------------------------------------
    def _require_person_level(self) -> np.ndarray:
        if self.beta_person is None:
            raise ValueError(
                "person-level draws were not computed; refit with person_level=True (and, "
                "for SVI, enough memory for draws x persons x coefficients)"
            )
        return self.beta_person

    def _cost_moment_gaps(self, cost: str) -> dict[str, tuple[int, str]]:
        """For ``"mean"`` and ``"sd"``: in how many posterior draws of the population
        parameters ``1 / beta_cost`` has no finite mean (variance) across people, by the rule
        of :func:`mixlogit.mixing.reciprocal_moments_exist`, and the reason (that of the
        first such draw, ``""`` when there is none). A fixed cost coefficient and latent
        classes (finitely many values) have every moment."""
        i = self.spec.variables.index(cost)
        c = self.spec.coefficients[i]
        gaps = {"mean": (0, ""), "sd": (0, "")}
        if self.kind == "latent_class" or c.distribution is None:
            return gaps
        samples = self._samples
        if c.distribution == "gamma":
            g = self.spec.gamma_random.index(cost)
            first = np.asarray(samples["log_shape"])[..., g].ravel()
            spread = np.zeros_like(first)  # the scale does not matter
        else:
            r, q = self.spec.random_index.index(i), self.spec.z_random.index(cost)
            first = np.asarray(samples["mu"])[..., r].ravel()
            spread = np.asarray(samples["sigma"])[..., q].ravel()
        verdicts = [
            reciprocal_moments_exist(c.distribution, a, b)
            for a, b in zip(first, spread, strict=True)
        ]
        for key, position in (("mean", 0), ("sd", 1)):
            reasons = [v[2] for v in verdicts if not v[position]]
            if reasons:
                unique = len(set(reasons)) == 1
                gaps[key] = (
                    len(reasons),
                    reasons[0] + ("" if unique else " (the first such draw)"),
                )
        return gaps

    def _warn_wtp_moments(
        self, attributes: Sequence[str], cost: str, level: str, count: int, reason: str, what: str
    ) -> None:
        """:class:`WTPMomentWarning` from :meth:`wtp`: ``what`` (e.g. "mean or SD") is missing
        in ``count`` posterior draws because the cost's population distribution is ``reason``."""
        first = next(iter(self._samples.values()))
        total = int(first.shape[0] * first.shape[1])
        if level == "population":
            where, nan = "across people", "the 'mean' rows are NaN"
        else:
            columns = "'mean' and 'sd'" if what != "SD" else "'sd'"
            where, nan = "in a person's posterior", f"the {columns} columns are NaN"
        warnings.warn(
            f"wtp({list(attributes)}, {cost!r}, level={level!r}): in {count} of {total} "
            f"posterior draws ({_format_share(count, total)}) the population distribution of "
            f"the cost coefficient is {reason}, so the ratio has no finite {what} {where}; "
            f"{nan}. Use the median and quantiles, or a lognormal (sign-constrained) cost "
            "coefficient",
            WTPMomentWarning,
            stacklevel=3,
        )

    @staticmethod
    def _warn_cost_sign(cost_draws: np.ndarray) -> None:
        count = int(np.count_nonzero(np.asarray(cost_draws) >= 0))
        if count:
            total = int(np.size(cost_draws))
            warnings.warn(
                f"the cost coefficient is >= 0 in {count} of {total} draws "
                f"({_format_share(count, total)}); WTP ratios are unstable "
                "(use a sign-constrained lognormal/gamma cost coefficient)",
                BayesDiagnosticWarning,
                stacklevel=3,
            )

    def _persons(self, count: int) -> np.ndarray:
        """``(P,)`` person labels: the panel ids of the data (``0 .. P-1`` without them)."""
        ids = getattr(self, "person_ids", None)
        return _person_labels(ids, count)

    def _tidy_person(
        self, values: np.ndarray, names: list[str], label: str, interval: float
    ) -> pd.DataFrame:
        C, D, P, K = values.shape
        summary = _draw_summary(values.reshape(C * D, P, K), interval, axis=0)
        return pd.DataFrame(
            {
                "person": np.repeat(self._persons(P), K),
                label: np.tile(np.asarray(names, dtype=object), P),
                **{k: v.ravel() for k, v in summary.items()},
            }
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the results (not the data) as one netCDF file (``.nc``).

        The InferenceData's groups are written as ArviZ writes them, so ``az.from_netcdf``
        reads the file as a plain InferenceData too; the rest (specification, priors, settings,
        person-level draws, class probabilities, ELBO trace, timings, diagnostics) goes to the
        extra group ``mixlogit_results``. :meth:`load` reads it back.
        """
        import xarray as xr

        path = Path(path)
        derived = set(self.idata.posterior.data_vars) - set(self._samples)
        extra: dict[str, Any] = {}
        for name, values in self._samples.items():
            if name not in self.idata.posterior:  # latent-class ordering internals
                extra[f"sample__{name}"] = _netcdf_variable(f"sample__{name}", values)
        for name in ("beta_person", "class_probability", "elbo"):
            value = getattr(self, name)
            if value is not None:
                extra[name] = _netcdf_variable(name, value)
        metadata = {
            "format": _SAVE_FORMAT,
            "kind": self.kind,
            "method": self.method,
            "backend": self.backend,
            "spec": self.spec.to_dict(),
            "priors": dataclasses.asdict(self.priors),
            "settings": self.settings,
            "fit_seconds": self.fit_seconds,
            "postprocess_seconds": self.postprocess_seconds,
            "quadrature_error": self.quadrature_error,
            "loglik_method": self.loglik_method,
            "person_ids": np.asarray(self.person_ids).tolist(),
            "diagnostics": self.diagnostics,
            "derived": sorted(derived),
        }
        text = json.dumps(metadata, allow_nan=True, default=_json_scalar)
        self.idata.to_netcdf(str(path))
        xr.Dataset(extra, attrs={"metadata": text}).to_netcdf(
            str(path), group=_SAVE_GROUP, mode="a"
        )

    @classmethod
    def load(cls, path: str | Path) -> BayesianResults:
        """Read results written by :meth:`save`; every table, diagnostic, WTP and prediction
        method works as on the fit (predictions take new data as arguments)."""
        import arviz as az

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        idata = az.from_netcdf(str(path))
        if _SAVE_GROUP not in idata.groups():
            raise ValueError(
                f"{path} has no {_SAVE_GROUP!r} group: it was not written by BayesianResults.save"
            )
        stored = idata[_SAVE_GROUP].load()
        idata = az.InferenceData(
            **{group: idata[group].load() for group in idata.groups() if group != _SAVE_GROUP},
            attrs=dict(idata.attrs),
        )
        metadata = json.loads(stored.attrs["metadata"])
        if metadata.get("format") != _SAVE_FORMAT:
            raise ValueError(
                f"{path}: unknown results format {metadata.get('format')!r} "
                f"(expected {_SAVE_FORMAT!r})"
            )
        samples = {
            name: np.asarray(values)
            for name, values in idata.posterior.data_vars.items()
            if name not in set(metadata["derived"])
        }
        samples.update(
            {
                str(name)[len("sample__") :]: np.asarray(values)
                for name, values in stored.data_vars.items()
                if str(name).startswith("sample__")
            }
        )

        def optional(name: str) -> np.ndarray | None:
            return np.asarray(stored[name]) if name in stored else None

        return cls(
            idata=idata,
            kind=metadata["kind"],
            method=metadata["method"],
            backend=metadata["backend"],
            spec=ModelSpec.from_dict(metadata["spec"]),
            elbo=optional("elbo"),
            fit_seconds=metadata["fit_seconds"],
            postprocess_seconds=metadata["postprocess_seconds"],
            quadrature_error=metadata["quadrature_error"],
            loglik_method=metadata["loglik_method"],
            beta_person=optional("beta_person"),
            class_probability=optional("class_probability"),
            priors=BayesPriors(**metadata["priors"]),
            settings=metadata["settings"],
            person_ids=np.asarray(metadata["person_ids"]),
            diagnostics=metadata["diagnostics"],
            _samples=samples,
        )

    def __repr__(self) -> str:
        return (
            f"BayesianResults(kind={self.kind!r}, method={self.method!r}, "
            f"backend={self.backend!r}, draws={dict(self.idata.posterior.sizes)}, "
            f"fit_seconds={self.fit_seconds:.1f})"
        )


#: ``format`` of the files :meth:`BayesianResults.save` writes, and its extra group.
_SAVE_FORMAT = "mixlogit.BayesianResults/1"
_SAVE_GROUP = "mixlogit_results"


def _netcdf_variable(name: str, values: Any) -> tuple[list[str], np.ndarray]:
    """``(dims, array)`` for an xarray Dataset: dims named after the variable (``name_0``...),
    so that arrays of different shapes never share a dimension."""
    array = np.asarray(values)
    return [f"{name}_{axis}" for axis in range(array.ndim)], array


def _json_scalar(value: Any) -> Any:
    """NumPy scalars and arrays as JSON numbers and lists (for :meth:`BayesianResults.save`)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _person_labels(ids: Sequence[Any] | np.ndarray | None, count: int) -> np.ndarray:
    """``ids`` as a ``(count,)`` array (``0 .. count-1`` when None)."""
    if ids is None:
        return np.arange(count)
    labels = np.asarray(ids)
    if labels.shape != (count,):
        raise ValueError(f"person_ids must have shape ({count},), got {labels.shape}")
    return labels


def _format_share(count: int, total: int) -> str:
    """``count / total`` as a percentage that is never rounded to 0 or 100 (``"< 0.1%"``,
    ``"> 99.9%"``) when it is not exactly that."""
    share = count / total
    if 0 < share < 0.001:
        return "< 0.1%"
    if 0.999 < share < 1:
        return "> 99.9%"
    return f"{share:.1%}"


def _draw_summary(
    draws: np.ndarray, interval: float, *, axis: int | None = None, prefix: str = ""
) -> dict[str, Any]:
    """``{prefix}mean``, ``{prefix}sd`` (0 for one draw), the ``interval`` bounds and the
    median of ``draws`` along ``axis`` (all of them when None), in table column order."""
    lower, upper, lower_label, upper_label = interval_labels(interval)
    count = draws.size if axis is None else draws.shape[axis]
    mean = draws.mean(axis)
    return {
        f"{prefix}mean": mean,
        f"{prefix}sd": draws.std(axis, ddof=1) if count > 1 else np.zeros_like(mean),
        lower_label: np.quantile(draws, lower, axis=axis),
        "median": np.quantile(draws, 0.5, axis=axis),
        upper_label: np.quantile(draws, upper, axis=axis),
    }
