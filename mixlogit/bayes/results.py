"""Results of a Bayesian fit: ArviZ InferenceData, tidy tables, diagnostics."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr
from scipy.stats import norm

from mixlogit.arrays import ChoiceArrays
from mixlogit.bayes.postprocess import PostProcessed, sobol_normals
from mixlogit.bayes.spec import BayesPriors, BayesSpec, PanelArrays

__all__ = ["BayesDiagnosticWarning", "BayesianResults", "population_moments"]


class BayesDiagnosticWarning(UserWarning):
    """Divergences, r_hat > 1.01, low ESS, Pareto k > 0.7 or an unconverged ELBO."""


def population_moments(spec: BayesSpec, samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mean and SD of each random coefficient's population distribution (natural scale).

    Returns ``{"mean": (..., Kr), "sd": (..., Kr)}`` for leading sample dims ``...``.
    """
    means, sds = [], []
    for r, c in enumerate(spec.random_coefficients):
        m = samples["mu"][..., r]
        if c.distribution == "gamma":
            g = spec.gamma_names.index(c.name)
            shape = np.exp(samples["log_shape"][..., g])
            mean = c.sign * np.exp(m)
            sd = np.exp(m) / np.sqrt(shape)
        else:
            s = samples["sigma"][..., spec.z_random_names.index(c.name)]
            if c.distribution == "normal":
                mean, sd = m, s
            elif c.distribution == "lognormal":
                mean = c.sign * np.exp(m + s**2 / 2)
                sd = np.sqrt(np.expm1(s**2)) * np.exp(m + s**2 / 2)
            elif c.distribution == "uniform":
                mean, sd = m, s / np.sqrt(3.0)
            elif c.distribution == "triangular":
                mean, sd = m, s / np.sqrt(6.0)
            else:  # truncnormal on (0, inf)
                a = m / s
                lam = norm.pdf(a) / np.maximum(ndtr(a), 1e-300)
                mean = c.sign * (m + s * lam)
                # N(m, s^2) truncated below at 0, lam = phi(m/s) / Phi(m/s)
                sd = s * np.sqrt(np.maximum(1.0 - a * lam - lam**2, 0.0))
        means.append(mean)
        sds.append(sd)
    return {"mean": np.stack(means, -1), "sd": np.stack(sds, -1)}


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
            ``observed_data`` (``choice``: chosen slot per situation) and
            ``posterior_predictive`` (``choice``: replicated chosen slot per situation).
        kind: ``"hierarchical"``, ``"quadrature"``, ``"latent_class"`` or ``"mnl"``.
        method, backend: how it was fitted.
        spec: the :class:`~mixlogit.bayes.spec.BayesSpec`.
        elbo: ``(num_steps,)`` ELBO trace of an SVI fit (None for NUTS).
        fit_seconds: wall time of sampling / optimisation (JIT compilation included).
        postprocess_seconds: wall time of the log-likelihood / predictive computations.
        quadrature_error: estimated absolute error of the total log-likelihood of a
            ``integrate="quadrature"`` fit (rule vs twice as many nodes, max over draws).
        loglik_method: how person draws were integrated in the ``log_likelihood`` group.
        beta_person: ``(chain, draw, person, K)`` draws of each person's coefficients from their
            conditional posterior, or None when not computed.
        class_probability: ``(chain, draw, person, C)`` posterior class probabilities.
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
        spec: BayesSpec,
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
    ) -> BayesianResults:
        import arviz as az

        first = next(iter(samples.values()))
        C, D = first.shape[:2]
        posterior = {
            k: v
            for k, v in samples.items()
            if k not in ("beta_ordered", "beta_rest", "beta_ordered_prior")
        }
        if spec.random_index and kind != "latent_class":
            posterior.update(population_moments(spec, posterior))
        P = panel.num_panels
        S = panel.num_situations
        coords = {
            "fixed": list(spec.fixed_names),
            "random": list(spec.random_names),
            "z_random": list(spec.z_random_names),
            "gamma_random": list(spec.gamma_names),
            "corr_row": list(spec.correlated),
            "corr_col": list(spec.correlated),
            "coefficient": list(spec.names),
            "person": np.arange(P),
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
        groups["observed_data"] = {"choice": np.asarray(arrays.chosen)}
        dims["choice"] = ["situation"]
        log_lik = None
        if post.log_likelihood is not None:
            log_lik = {"choice": post.log_likelihood.reshape(C, D, P)}
        pp = None
        if post.y_rep is not None:
            pp = {"choice": to_situations(post.y_rep.reshape(C, D, *post.y_rep.shape[1:]))}
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
                    coords={"person": np.arange(P)},
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
            diagnostics={},
            _samples=samples,
        )

    # ----------------------------------------------------------------------------------------
    @property
    def population_vars(self) -> list[str]:
        names = _CLASS_VARS if self.kind == "latent_class" else _POPULATION_VARS
        return [v for v in names if v in self.idata.posterior]

    def summary(self, var_names: Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
        """``arviz.summary`` of the population parameters (or ``var_names``)."""
        import arviz as az

        var_names = list(var_names) if var_names is not None else self.population_vars
        if self.idata.posterior.sizes["chain"] == 1 and self.method != "nuts":
            kwargs.setdefault("kind", "stats")  # SVI draws are independent: no r_hat / ESS
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # constant L_corr[0, 0] entries
            return az.summary(self.idata, var_names=var_names, **kwargs)

    def population(self) -> pd.DataFrame:
        """Tidy table of every coefficient's population mean and SD (natural scale).

        Columns: ``coefficient, distribution, statistic ("mean"/"sd"), posterior_mean,
        posterior_sd, q3%, median, q97%``; latent class: one ``mean`` row per class and
        ``share`` rows.
        """
        post = self.idata.posterior
        rows = []

        def add(coef: str, dist: str, stat: str, draws: np.ndarray, **extra: Any) -> None:
            d = np.asarray(draws).ravel()
            rows.append(
                {
                    "coefficient": coef,
                    "distribution": dist,
                    "statistic": stat,
                    **extra,
                    "posterior_mean": d.mean(),
                    "posterior_sd": d.std(ddof=1) if d.size > 1 else 0.0,
                    "q3%": np.quantile(d, 0.03),
                    "median": np.quantile(d, 0.5),
                    "q97%": np.quantile(d, 0.97),
                }
            )

        if self.kind == "latent_class":
            beta = post["beta_class"].values
            share = post["class_share"].values
            for c in range(share.shape[-1]):
                add("class_share", "latent class", "share", share[..., c], **{"class": c})
                for k, name in enumerate(self.spec.names):
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

    def individual_coefficients(self) -> pd.DataFrame:
        """Each person's coefficients given their choices (conditional posterior).

        Columns: ``person, coefficient, mean, sd, q3%, median, q97%``, one row per person and
        coefficient. Summaries are over posterior draws of the person's coefficients (for
        quadrature and latent-class fits: a draw from the person's conditional distribution per
        population draw).
        """
        beta = self._require_person_level()
        return self._tidy_person(beta, list(self.spec.names), "coefficient")

    def wtp(
        self,
        cost: str,
        attributes: Sequence[str] | None = None,
        level: str = "individual",
        num_population_draws: int = 512,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Willingness to pay ``-beta_attribute / beta_cost`` (units of the cost variable per
        unit of the attribute).

        Args:
            cost: name of the cost coefficient.
            attributes: coefficients to value (default: all others).
            level: ``"individual"`` (each person's WTP, tidy: ``person, attribute, mean, sd,
                q3%, median, q97%``) or ``"population"`` (posterior of the mean and median of the
                WTP distribution across people: ``attribute, statistic, posterior_mean, ...``).
        """
        names = list(self.spec.names)
        if cost not in names:
            raise ValueError(f"cost coefficient {cost!r} is not in the model {names}")
        attributes = [a for a in names if a != cost] if attributes is None else list(attributes)
        bad = [a for a in attributes if a not in names]
        if bad:
            raise ValueError(f"attributes {bad} are not coefficients of the model {names}")
        kc = names.index(cost)
        ka = [names.index(a) for a in attributes]
        if level == "individual":
            beta = self._require_person_level()
            self._warn_cost_sign(beta[..., kc])
            ratio = -beta[..., ka] / beta[..., kc : kc + 1]
            return self._tidy_person(ratio, attributes, "attribute")
        if level != "population":
            raise ValueError(f"level must be 'individual' or 'population', got {level!r}")
        draws = self.population_draws(num_population_draws, seed)  # (N, R, K)
        self._warn_cost_sign(draws[..., kc])
        ratio = -draws[..., ka] / draws[..., kc : kc + 1]
        rows = []
        for j, a in enumerate(attributes):
            for stat, values in (
                ("mean", ratio[..., j].mean(1)),
                ("median", np.median(ratio[..., j], 1)),
            ):
                rows.append(
                    {
                        "attribute": a,
                        "statistic": stat,
                        "posterior_mean": values.mean(),
                        "posterior_sd": values.std(ddof=1) if values.size > 1 else 0.0,
                        "q3%": np.quantile(values, 0.03),
                        "median": np.quantile(values, 0.5),
                        "q97%": np.quantile(values, 0.97),
                    }
                )
        return pd.DataFrame(rows)

    def population_draws(self, num: int = 512, seed: int = 0) -> np.ndarray:
        """``(N, num, K)`` draws of coefficients of new people, for each of the ``N``
        posterior draws (scrambled Sobol normals; gamma and latent classes sampled)."""
        samples = self._samples
        first = next(iter(samples.values()))
        n = first.shape[0] * first.shape[1]
        flat = {k: v.reshape((n, *v.shape[2:])) for k, v in samples.items()}
        rng = np.random.default_rng(seed)
        K = len(self.spec.names)
        if self.kind == "latent_class":
            share = flat["class_share"]
            beta = flat["beta_class"]
            cum = np.cumsum(share, -1)
            cls = (rng.random((n, num, 1)) > cum[:, None, :]).sum(-1)
            cls = np.minimum(cls, share.shape[-1] - 1)
            return np.take_along_axis(beta, cls[..., None], axis=1)
        import jax
        import jax.numpy as jnp

        from mixlogit.bayes import numpyro_model as nm

        kz, kg = len(self.spec.z_random_names), len(self.spec.gamma_names)
        if kz:
            z = sobol_normals(num, kz, seed)
        else:
            z = np.zeros((num, 0))
        if kg:
            shape = np.exp(flat["log_shape"])[:, None, :]
            u = rng.gamma(shape, 1.0, size=(n, num, kg))
        else:
            u = np.zeros((n, num, 0))
        with jax.enable_x64(True):
            params = {
                k: jnp.asarray(v)[:, None] for k, v in flat.items() if k not in ("z", "u", "u_std")
            }
            out = nm.coefficients_from_params(
                self.spec, params, jnp.asarray(z)[None], jnp.asarray(u)
            )
            return np.asarray(jnp.broadcast_to(out, (n, num, K)))

    def class_membership(self) -> pd.DataFrame:
        """Posterior class probabilities per person (latent class only).

        Columns: ``person``, ``p_class_0 .. p_class_{C-1}`` (averaged over posterior draws),
        ``most_likely_class``.
        """
        if self.class_probability is None:
            raise ValueError("class_membership is only available for LatentClassLogit fits")
        p = self.class_probability.mean((0, 1))
        df = pd.DataFrame(p, columns=[f"p_class_{c}" for c in range(p.shape[1])])
        df.insert(0, "person", np.arange(p.shape[0]))
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
                    "raise quadrature_nodes"
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

    @staticmethod
    def _warn_cost_sign(cost_draws: np.ndarray) -> None:
        frac = float(np.mean(cost_draws >= 0))
        if frac > 0:
            warnings.warn(
                f"the cost coefficient is >= 0 in {frac:.1%} of draws; WTP ratios are unstable "
                "(use a sign-constrained lognormal/gamma cost coefficient)",
                BayesDiagnosticWarning,
                stacklevel=3,
            )

    @staticmethod
    def _tidy_person(values: np.ndarray, names: list[str], label: str) -> pd.DataFrame:
        C, D, P, K = values.shape
        flat = values.reshape(C * D, P, K)
        stats = {
            "mean": flat.mean(0),
            "sd": flat.std(0, ddof=1) if C * D > 1 else np.zeros((P, K)),
            "q3%": np.quantile(flat, 0.03, axis=0),
            "median": np.quantile(flat, 0.5, axis=0),
            "q97%": np.quantile(flat, 0.97, axis=0),
        }
        df = pd.DataFrame(
            {
                "person": np.repeat(np.arange(P), K),
                label: np.tile(np.asarray(names, dtype=object), P),
                **{k: v.ravel() for k, v in stats.items()},
            }
        )
        return df

    def __repr__(self) -> str:
        return (
            f"BayesianResults(kind={self.kind!r}, method={self.method!r}, "
            f"backend={self.backend!r}, draws={dict(self.idata.posterior.sizes)}, "
            f"fit_seconds={self.fit_seconds:.1f})"
        )
