"""Classical estimation results: parameter table, fit statistics, prediction, individual
coefficients, WTP.

The results contract shared with :class:`mixlogit.bayes.BayesianResults`: ``summary()``
returns a DataFrame (``interval=`` sets the interval columns), ``str(results)`` and
``summary_text()`` the printable report, ``wtp(attribute, cost)``,
``individual_coefficients()`` and ``spec`` (the fitted :class:`~mixlogit.spec.ModelSpec`).

``EstimationResults.save(path)`` writes a JSON file (parameters, covariances, model
specification, fit statistics); :meth:`EstimationResults.load` restores it with the
specification as ``model``. Prediction and individual-level coefficients need the data,
passed explicitly after loading.
"""

from __future__ import annotations

import json
import textwrap
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from mixlogit._intervals import interval_labels
from mixlogit.data import ChoiceData
from mixlogit.draws import standardised_draws
from mixlogit.elasticities import elasticities
from mixlogit.estimation.bootstrap import Bootstrap, bootstrap
from mixlogit.estimation.latent_class import LatentClassSpec, build_latent_class_problem
from mixlogit.estimation.nested import NestingSpec, build_nested_problem
from mixlogit.estimation.problem import build_problem, unit_covariates
from mixlogit.estimation.restrictions import Restrictions, parse_restrictions
from mixlogit.likelihood import ParameterLayout, x64
from mixlogit.mixing import reciprocal_moments_exist
from mixlogit.quadrature import quadrature_rule
from mixlogit.spec import ModelSpec, as_model_spec

__all__ = ["EstimationResults", "WTPMomentWarning", "interval_labels"]


class WTPMomentWarning(UserWarning):
    """A willingness-to-pay ratio has no finite mean or SD (see :meth:`EstimationResults.wtp`,
    :meth:`mixlogit.bayes.BayesianResults.wtp` and :func:`mixlogit.mixing.reciprocal_moments_exist`).
    """


@dataclass
class EstimationResults:
    """Outcome of :meth:`mixlogit.estimators.MixedLogit.fit` (simulation or quadrature).

    Attributes:
        model: the estimator that was fitted (the :class:`~mixlogit.spec.ModelSpec` after
            :meth:`load`).
        params: estimates, aligned with ``names``.
        cov, robust_cov: classical (inverse negative Hessian) and sandwich covariance, the
            latter clustered by decision maker (panel) when the data have one.
        loglik, null_loglik: log-likelihood at the estimates and with equal probabilities.
        quadrature: for ``method="quadrature"``: nodes per dimension, error estimate, rounds.
        starts: with ``num_starts > 1``: one record per start (start vector, final
            log-likelihood and estimates, convergence, iterations, seconds), the default
            start first (:mod:`mixlogit.estimation.multistart`).
        simulation_noise: with ``simulation_noise=True`` or after
            :func:`~mixlogit.estimation.check_simulation_noise`: the log-likelihood and
            estimates with an independent draw set, and each estimate's shift in standard
            errors.
        fixed_parameters: ``{name: value}`` held fixed by ``fit(fix=...)`` (None: none). They
            stay in ``params``; their rows and columns of ``cov`` and ``robust_cov`` are 0 and
            their standard errors NaN.
        bounds: ``{name: (lower, upper)}`` given to ``fit(bounds=...)`` (None: none).
        constraints: the linear equality constraints of ``fit(constraints=...)`` as equations
            (None: none); each determined parameter keeps its implied variance.
        halton_options: ``{"skip", "primes"}`` of the Halton draws when ``fit`` set them.
    """

    model: Any
    names: list[str]
    params: np.ndarray
    cov: np.ndarray
    robust_cov: np.ndarray
    hessian: np.ndarray
    gradient: np.ndarray
    loglik: float
    null_loglik: float
    num_situations: int
    num_units: int
    num_draws: int
    draws: str | None
    seed: int | None
    method: str
    panel: bool
    converged: bool
    message: str
    iterations: int
    function_evaluations: int
    time: float
    quadrature: dict | None = None
    starts: list | None = None
    simulation_noise: dict | None = None
    halton_options: dict[str, Any] | None = None
    fixed_parameters: dict[str, float] | None = None
    bounds: dict[str, Any] | None = None
    constraints: list[str] | None = None
    data: ChoiceData | None = field(default=None, repr=False)
    problem: Any = field(default=None, repr=False)

    # ------------------------------------------------------------------ statistics
    @property
    def num_params(self) -> int:
        """Length of ``params``, fixed parameters included (see :attr:`num_estimated`)."""
        return len(self.params)

    @property
    def restrictions(self) -> Restrictions:
        """The fixed parameters, constraints and bounds of the fit
        (:mod:`mixlogit.estimation.restrictions`)."""
        return parse_restrictions(self.names, self.fixed_parameters, self.bounds, self.constraints)

    @property
    def num_estimated(self) -> int:
        """Parameters the fit estimated (not fixed, not determined by a constraint): the count
        in AIC, BIC and adjusted rho2."""
        return self.num_params - len(self.fixed_parameters or {}) - len(self.constraints or [])

    def _with_fixed_as_nan(self, values: np.ndarray) -> np.ndarray:
        if self.fixed_parameters:
            values = np.where(self.restrictions.fixed_mask, np.nan, values)
        return values

    @property
    def std_errors(self) -> np.ndarray:
        """Classical standard errors (NaN for fixed parameters)."""
        return self._with_fixed_as_nan(np.sqrt(np.diag(self.cov)))

    @property
    def robust_std_errors(self) -> np.ndarray:
        """Robust (sandwich) standard errors (NaN for fixed parameters)."""
        return self._with_fixed_as_nan(np.sqrt(np.diag(self.robust_cov)))

    @property
    def rho2(self) -> float:
        return 1.0 - self.loglik / self.null_loglik

    @property
    def rho2_adjusted(self) -> float:
        return 1.0 - (self.loglik - self.num_estimated) / self.null_loglik

    @property
    def aic(self) -> float:
        return 2.0 * self.num_estimated - 2.0 * self.loglik

    @property
    def bic(self) -> float:
        """BIC with ``n`` = choice situations (observations), the convention of Biogeme and
        Apollo; :attr:`bic_units` counts decision makers instead."""
        return self.num_estimated * np.log(self.num_situations) - 2.0 * self.loglik

    @property
    def bic_units(self) -> float:
        """BIC with ``n`` = independent units: decision makers for a panel fit (whose
        likelihood is a product over each person's choices), situations otherwise."""
        return self.num_estimated * np.log(self.num_units) - 2.0 * self.loglik

    @property
    def spec(self) -> ModelSpec:
        """The fitted model's :class:`~mixlogit.spec.ModelSpec`."""
        return as_model_spec(self.model)

    @property
    def layout(self) -> ParameterLayout:
        return ParameterLayout.from_spec(self.spec)

    def __getitem__(self, name: str) -> float:
        return float(self.params[self.names.index(name)])

    @property
    def spread_signs(self) -> np.ndarray:
        """``(P,)`` +-1 per parameter: the sign that makes every spread parameter a magnitude.

        A spread enters the likelihood only through ``b * e`` with a standardised draw ``e``
        that is symmetric about 0 (normal, lognormal, triangular, uniform; truncated normal
        uses ``|b|``), so ``b`` and ``-b`` fit equally well and the sign of ``b`` is not
        identified. Likewise flipping a column of the Cholesky factor leaves the covariance
        unchanged, so each column takes the sign of its diagonal entry. Every other parameter
        (and gamma's log scale) gets +1. ``spread_signs * params`` is what :meth:`table` shows.
        """
        layout = self.layout
        signs = np.ones(self.num_params)
        kf, kr = layout.num_fixed, layout.num_random
        independent = layout.independent_index
        for pos, k in enumerate(independent):
            if layout.mixing[k].distribution != "gamma":
                index = kf + kr + pos
                signs[index] = -1.0 if self.params[index] < 0 else 1.0
        start = kf + kr + len(independent)
        rows, cols = np.tril_indices(len(layout.correlated))
        diagonal = {c: start + i for i, (r, c) in enumerate(zip(rows, cols, strict=True)) if r == c}
        for i, col in enumerate(cols):
            signs[start + i] = -1.0 if self.params[diagonal[col]] < 0 else 1.0
        return signs

    def table(self, *, raw: bool = False) -> pd.DataFrame:
        """Parameter table: robust (sandwich) columns first, as Biogeme and Apollo report.

        Columns: ``estimate``, ``robust_std_err``, ``robust_z``, ``robust_p_value`` (two-sided,
        normal), then the classical ``std_err``, ``z``, ``p_value`` (inverse negative Hessian).
        The robust covariance is clustered by decision maker when the data have a panel.

        Args:
            raw: show spread parameters with the sign the optimiser ended at; by default they
                are magnitudes (``spread_signs * params``: the sign is not identified, see
                :attr:`spread_signs`). ``params`` and ``results[name]`` stay raw either way.
        """
        estimate = self.params if raw else self.spread_signs * self.params
        robust_se = self.robust_std_errors
        se = self.std_errors
        robust_z = estimate / robust_se
        z = estimate / se
        return pd.DataFrame(
            {
                "estimate": estimate,
                "robust_std_err": robust_se,
                "robust_z": robust_z,
                "robust_p_value": 2.0 * stats.norm.sf(np.abs(robust_z)),
                "std_err": se,
                "z": z,
                "p_value": 2.0 * stats.norm.sf(np.abs(z)),
            },
            index=pd.Index(self.names, name="parameter"),
        )

    def summary(self, interval: float = 0.95, *, raw: bool = False) -> pd.DataFrame:
        """:meth:`table` with the bounds of the Wald ``interval`` from the robust SE
        (``estimate +- z robust SE``), columns ``q2.5%`` and ``q97.5%`` for the default 0.95;
        ``raw`` as in :meth:`table`."""
        lower, upper, lower_label, upper_label = interval_labels(interval)
        table = self.table(raw=raw)
        estimate = table["estimate"].to_numpy()
        table[lower_label] = estimate + stats.norm.ppf(lower) * self.robust_std_errors
        table[upper_label] = estimate + stats.norm.ppf(upper) * self.robust_std_errors
        return table

    def bootstrap(
        self, num_replications: int = 200, *, seed: int | None = 0, **kwargs: Any
    ) -> Bootstrap:
        """Cluster-bootstrap standard errors and percentile intervals: the fit repeated on
        decision makers drawn with replacement (:func:`mixlogit.estimation.bootstrap.bootstrap`;
        ``interval``, ``progress`` and ``fit`` options as keywords)."""
        return bootstrap(self, num_replications, seed=seed, **kwargs)

    def hessian_eigenvalues(self) -> np.ndarray:
        """Eigenvalues ``(F,)`` of ``-H`` over the free parameters, increasing: all positive at a
        strict maximum; one near 0 (relative to the largest) flags a parameter, or a
        combination, that the data barely identify. NaN without a Hessian."""
        restrictions = self.restrictions
        block = -restrictions.free_hessian(self.hessian)
        if not np.all(np.isfinite(block)):
            return np.full(len(restrictions.free), np.nan)
        return np.linalg.eigvalsh(block)

    def statistics(self) -> pd.Series:
        """The report's header statistics, those Biogeme's HTML report lists: sample sizes
        (independent units: decision makers in a panel fit, else situations),
        parameters, draws, log-likelihoods, the likelihood-ratio test against equal shares,
        rho2, information criteria, gradient norm, Hessian eigenvalues, termination."""
        gradient = self.restrictions.project(self.gradient) if self.gradient.size else self.gradient
        eigenvalues = self.hessian_eigenvalues()
        smallest = float(eigenvalues[0]) if eigenvalues.size else np.nan
        largest = float(eigenvalues[-1]) if eigenvalues.size else np.nan
        lr = 2.0 * (self.loglik - self.null_loglik)
        return pd.Series(
            {
                "situations": self.num_situations,
                "independent units": self.num_units,
                "estimated parameters": self.num_estimated,
                "fixed parameters": len(self.fixed_parameters or {}),
                "draws": self.num_draws if self.draws else 0,
                "draw type": self.draws or "",
                "method": self.method,
                "null log-likelihood": self.null_loglik,
                "log-likelihood": self.loglik,
                "likelihood ratio vs null": lr,
                "p-value vs null": float(stats.chi2.sf(lr, self.num_estimated)),
                "rho2": self.rho2,
                "adjusted rho2": self.rho2_adjusted,
                "AIC": self.aic,
                "BIC (n = situations)": self.bic,
                "BIC (n = independent units)": self.bic_units,
                "gradient norm": float(np.linalg.norm(gradient)),
                "smallest eigenvalue of -H": smallest,
                "condition number of -H": largest / smallest if smallest > 0 else np.inf,
                "converged": bool(self.converged),
                "termination": self.message,
                "iterations": self.iterations,
                "seconds": self.time,
            },
            name="statistic",
        )

    def correlation(self, covariance: str = "robust") -> pd.DataFrame:
        """Correlation of the estimates ``(P, P)`` from the robust (default) or ``"classical"``
        covariance; fixed parameters have NaN rows and columns."""
        if covariance not in ("robust", "classical"):
            raise ValueError(f"covariance must be 'robust' or 'classical', got {covariance!r}")
        cov = self.robust_cov if covariance == "robust" else self.cov
        sd = self.robust_std_errors if covariance == "robust" else self.std_errors
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = cov / np.outer(sd, sd)
        index = pd.Index(self.names, name="parameter")
        return pd.DataFrame(corr, index=index, columns=index)

    def to_html(self, interval: float = 0.95) -> str:
        """The report as an HTML fragment: the :meth:`statistics`, the :meth:`summary` table and
        the robust :meth:`correlation` of the estimates."""
        import html

        title = html.escape(repr(self.model))
        return "\n".join(
            [
                f"<h3>{title}</h3>",
                self.statistics().to_frame("value").to_html(float_format=lambda v: f"{v:.6g}"),
                "<h4>Estimates (robust standard errors first)</h4>",
                self.summary(interval).to_html(float_format=lambda v: f"{v:.6g}", na_rep="fixed"),
                "<h4>Correlation of the estimates (robust)</h4>",
                self.correlation().to_html(float_format=lambda v: f"{v:.3f}", na_rep=""),
            ]
        )

    def to_latex(self, interval: float = 0.95) -> str:
        """The parameter table as a LaTeX ``tabular`` (estimate, robust SE, robust z and p,
        the Wald interval), fixed parameters marked, with the log-likelihood, rho2 and the
        sample sizes below; no LaTeX package beyond ``booktabs``."""
        table = self.summary(interval)
        lower, upper = table.columns[-2], table.columns[-1]

        def tex(text: str) -> str:
            return text.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%")

        lines = [
            "\\begin{tabular}{lrrrrrr}",
            "\\toprule",
            f"parameter & estimate & robust s.e. & robust $z$ & $p$ & {tex(lower)} & {tex(upper)} "
            "\\\\",
            "\\midrule",
        ]
        for name, row in table.iterrows():
            if np.isnan(row["robust_std_err"]):
                cells = [f"{row['estimate']:.4f}", "\\multicolumn{5}{c}{fixed}"]
            else:
                cells = [
                    f"{row['estimate']:.4f}",
                    f"{row['robust_std_err']:.4f}",
                    f"{row['robust_z']:.2f}",
                    f"{row['robust_p_value']:.3g}",
                    f"{row[lower]:.4f}",
                    f"{row[upper]:.4f}",
                ]
            lines.append(f"{tex(str(name))} & " + " & ".join(cells) + " \\\\")
        lines += [
            "\\midrule",
            f"\\multicolumn{{7}}{{l}}{{Log-likelihood {self.loglik:.3f}, null {self.null_loglik:.3f}, "
            f"$\\bar\\rho^2$ {self.rho2_adjusted:.4f}, {self.num_situations} situations, "
            f"{self.num_units} independent units}} \\\\",
            "\\bottomrule",
            "\\end{tabular}",
        ]
        return "\n".join(lines)

    def summary_text(self) -> str:
        """Human-readable estimation report (also ``str(results)``): the fit statistics, a
        ``Converged: yes/no`` line (the library's criterion: the gradient test, and no
        separation), a ``Termination:`` line (the optimiser's own stopping message, which may
        mention precision loss at a point that meets the gradient test), the :meth:`table`
        and footnotes on the standard errors and on spreads shown as magnitudes."""
        lines = [
            f"{self.model!r}",
            f"Method: {self.method}"
            + (f", {self.num_draws} {self.draws} draws" if self.draws else "")
            + (
                "".join(f", {key} {value}" for key, value in self.halton_options.items())
                if self.halton_options
                else ""
            )
            + (
                f", {self.quadrature['nodes_per_dim']} nodes/dim "
                f"(log-lik error estimate {self.quadrature['error']:.2e})"
                if self.quadrature
                else ""
            ),
            f"Situations: {self.num_situations}   units: {self.num_units}   "
            f"parameters: {self.num_estimated}"
            + (f" estimated, {len(self.fixed_parameters)} fixed" if self.fixed_parameters else "")
            + (f", {len(self.constraints)} constrained" if self.constraints else ""),
            f"Log-likelihood: {self.loglik:.4f}   null: {self.null_loglik:.4f}   "
            f"rho2: {self.rho2:.4f}   adj. rho2: {self.rho2_adjusted:.4f}",
            f"AIC: {self.aic:.2f}   BIC: {self.bic:.2f} (n = situations)"
            + (
                f"   BIC: {self.bic_units:.2f} (n = decision makers)"
                if self.num_units != self.num_situations
                else ""
            ),
            *(
                ["Fixed: " + ", ".join(f"{n} = {v:g}" for n, v in self.fixed_parameters.items())]
                if self.fixed_parameters
                else []
            ),
            *(["Constraints: " + "; ".join(self.constraints)] if self.constraints else []),
            *(
                [
                    "Bounds: "
                    + ", ".join(
                        f"{n} in [{'-inf' if lo is None else f'{lo:g}'}, "
                        f"{'inf' if hi is None else f'{hi:g}'}]"
                        for n, (lo, hi) in self.bounds.items()
                    )
                ]
                if self.bounds
                else []
            ),
            self._convergence_line(),
            self._identification_line(),
            f"Termination: {self.message.rstrip('.')}; iterations {self.iterations}, "
            f"evaluations {self.function_evaluations}, time {self.time:.2f} s",
            *(  # multistart and simulation-noise diagnostics, when the fit ran them
                [
                    "   ".join(
                        part
                        for part in (
                            f"Starts: {len(self.starts)}, best reached by "
                            f"{sum(s['loglik'] >= self.loglik - 1e-2 for s in self.starts)}"
                            if self.starts
                            else "",
                            "Simulation noise (independent draws): log-lik change "
                            f"{self.simulation_noise['loglik_change']:+.3f}, largest shift "
                            f"{self.simulation_noise['max_abs_shift_in_se']:.2f} SE"
                            if self.simulation_noise
                            else "",
                        )
                        if part
                    )
                ]
                if self.starts or self.simulation_noise
                else []
            ),
            "",
            self.table().to_string(float_format=lambda v: f"{v:.6g}"),
            "",
            "robust_*: sandwich covariance (clustered by decision maker when the data have a "
            "panel);",
            "std_err, z, p_value: classical (inverse negative Hessian).",
        ]
        lines += self._spread_footnote()
        return "\n".join(lines)

    def _convergence_line(self) -> str:
        """``Converged: yes/no`` by the library's criterion (the gradient test, and no
        separation), kept apart from the optimiser's own stopping message, which can read
        "precision loss" at a point that meets the gradient test."""
        free = self.restrictions.project(self.gradient) if self.gradient.size else self.gradient
        largest = float(np.max(np.abs(free), initial=0.0))
        if self.converged:
            return f"Converged: yes (gradient criterion met; largest |gradient| {largest:.2e})"
        return f"Converged: no (largest |gradient| {largest:.2e}; see termination)"

    def _identification_line(self) -> str:
        """Gradient norm and the smallest eigenvalue of ``-H`` (identification)."""
        statistics = self.statistics()
        line = f"Gradient norm: {statistics['gradient norm']:.2e}"
        smallest = statistics["smallest eigenvalue of -H"]
        if np.isfinite(smallest):
            line += (
                f"   smallest eigenvalue of -H: {smallest:.3g} (condition number "
                f"{statistics['condition number of -H']:.3g})"
            )
        return line

    def _spread_footnote(self) -> list[str]:
        """The footnote that says spreads are magnitudes (empty without spread parameters)."""
        layout = self.layout
        spreads = [
            name
            for name in layout.names[layout.num_fixed + layout.num_random : layout.shift_start]
            if not name.startswith("ln_scale.")
        ]
        if not spreads:
            return []
        flipped = [n for n, sign in zip(self.names, self.spread_signs, strict=True) if sign < 0]
        note = (
            "Spreads (" + ", ".join(spreads) + ") are shown as magnitudes: s and -s give the "
            "same likelihood, so the sign of a spread (and of a Cholesky column) is not "
            "identified."
        )
        if flipped:
            note += " Estimated with a negative sign: " + ", ".join(flipped) + "."
        note += " Raw estimates: results.params or results.table(raw=True)."
        return textwrap.wrap(note, width=100, break_on_hyphens=False)

    def __str__(self) -> str:
        return self.summary_text()

    # ------------------------------------------------------------------ problem rebuilding
    def _problem_for(self, data: ChoiceData | None, *, num_draws: int | None = None):
        if data is None:
            if self.problem is not None and num_draws is None:
                return self.problem
            data = self.data
        if data is None:
            raise ValueError("pass the ChoiceData (results loaded from disk keep no data)")
        if hasattr(self.model, "nesting") or isinstance(self.model, NestingSpec):
            return build_nested_problem(self.model, data, check_identified=False)
        if hasattr(self.model, "latent") or isinstance(self.model, LatentClassSpec):
            return build_latent_class_problem(self.model, data, check_identified=False)
        if self.quadrature and num_draws is None:
            standard, log_w = quadrature_rule(self.spec, self.quadrature["nodes_per_dim"])
            return build_problem(
                self.model,
                data,
                standard=standard,
                log_weights=log_w,
                panel=self.panel,
                check_identified=False,
            )
        return build_problem(
            self.model,
            data,
            num_draws=num_draws or max(self.num_draws, 1),
            draws=self.draws or "halton",
            seed=self.seed,
            panel=self.panel,
            check_identified=False,
            halton_options=self.halton_options,
        )

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        data: ChoiceData | None = None,
        *,
        conditional: bool = False,
        num_draws: int | None = None,
    ) -> pd.DataFrame:
        """Choice probabilities, one row per situation, one column per alternative.

        Args:
            data: situations to predict (default: the estimation data).
            conditional: weight each decision maker's draws by the likelihood of their observed
                choices in ``data`` (panel-aware prediction, Revelt-Train); needs choices.
            num_draws: simulation draws (default: as in estimation).

        Returns:
            DataFrame ``(S, J)`` indexed by situation id; unavailable alternatives have 0.
            ``.mean()`` of it gives the predicted market shares (see :meth:`market_shares`).
        """
        source = data if data is not None else self.data
        if conditional and source is not None:
            source.require_choices("conditional prediction (weighting by the observed choices)")
        problem = self._problem_for(data, num_draws=num_draws)
        with x64():
            grid = np.asarray(
                jax.jit(problem.likelihood.grid_probabilities, static_argnums=2)(
                    jnp.asarray(self.params), problem.data, conditional
                )
            )
        restored = grid[problem.positions[:, 0], problem.positions[:, 1]]
        return pd.DataFrame(
            restored,
            index=pd.Index(source.situation_ids, name="situation"),
            columns=pd.Index(source.alternatives, name="alternative"),
        )

    def elasticities(self, variable: str, **kwargs: Any):
        """Aggregate and point elasticities (``kind="elasticity"``, the default) or marginal
        effects of the choice probabilities with respect to the data column ``variable``,
        direct and cross, with delta-method standard errors (robust covariance by default).

        See :func:`mixlogit.elasticities.elasticities` for the definitions and options
        (``data``, ``kind``, ``changed``, ``covariance``, ``num_draws``).

        Returns:
            :class:`~mixlogit.elasticities.Elasticities`: ``aggregate`` and ``std_errors``
            ``(I, J)`` (changed alternative x responding alternative), ``point`` ``(S, I, J)``,
            ``table()``.
        """
        return elasticities(self, variable, **kwargs)

    def market_shares(self, data: ChoiceData | None = None, **kwargs: Any) -> pd.Series:
        """Weighted average predicted probability of each alternative."""
        source = data if data is not None else self.data
        probs = self.predict(data, **kwargs)
        return pd.Series(
            np.average(probs.to_numpy(), axis=0, weights=source.weights),
            index=probs.columns,
            name="share",
        )

    def class_membership(self, data: ChoiceData | None = None) -> pd.DataFrame:
        """Latent class only: each decision maker's class probabilities given their choices,
        with the columns of :meth:`mixlogit.bayes.BayesianResults.class_membership`, then the
        prior (membership-model) probabilities.

        Returns:
            DataFrame, one row per decision maker: ``person`` (panel id), ``p_class_0 ..
            p_class_{C-1}`` (posterior), ``most_likely_class`` (0-based, as the parameter
            names), ``prior_class_0 .. prior_class_{C-1}``.
        """
        if not (hasattr(self.model, "latent") or isinstance(self.model, LatentClassSpec)):
            raise ValueError("class_membership is only available for latent-class fits")
        if data is not None:
            data.require_choices("class membership given the choices")
        problem = self._problem_for(data)
        with x64():
            theta = jnp.asarray(self.params)
            prior = np.exp(np.asarray(problem.likelihood.log_shares(theta, problem.data)))
            posterior = np.asarray(problem.likelihood.class_posterior(theta, problem.data))
        source = data if data is not None else self.data
        ids = source.panel_ids if source.has_panel else source.situation_ids
        frame = pd.DataFrame({"person": ids})
        for c in range(prior.shape[1]):
            frame[f"p_class_{c}"] = posterior[:, c]
        frame["most_likely_class"] = posterior.argmax(axis=1)
        for c in range(prior.shape[1]):
            frame[f"prior_class_{c}"] = prior[:, c]
        return frame

    # ------------------------------------------------------------------ individual level
    def individual_coefficients(
        self, data: ChoiceData | None = None, *, num_draws: int | None = None
    ) -> pd.DataFrame:
        """Conditional mean and SD of each person's random coefficients given their choices.

        ``E[beta | y_n] = sum_r beta_nr L_n(beta_nr) / sum_r L_n(beta_nr)`` (Revelt and Train
        2000; Train 2009, ch. 11) with the estimation draws (or quadrature nodes).

        Returns:
            DataFrame indexed by decision maker with columns ``<var>`` (conditional mean) and
            ``sd.<var>`` (conditional SD) for each random coefficient; fixed coefficients are
            the same for everybody and are not repeated.
        """
        if not self.spec.random:
            raise ValueError("the model has no random coefficients")
        if data is not None:
            data.require_choices("individual coefficients (conditional on the choices)")
        problem = self._problem_for(data, num_draws=num_draws)
        with x64():
            theta = jnp.asarray(self.params)
            log_lik = np.asarray(jax.jit(problem.likelihood.draw_loglik)(theta, problem.data))
            weights = np.exp(log_lik - log_lik.max(axis=1, keepdims=True))  # (U, R)
            betas = np.asarray(jax.jit(problem.likelihood.unit_coefficients)(theta, problem.data))
        weights = weights / weights.sum(axis=1, keepdims=True)
        if betas.shape[0] == 1:
            betas = np.broadcast_to(betas, (weights.shape[0], *betas.shape[1:]))
        mean = np.einsum("ur,urk->uk", weights, betas)
        second = np.einsum("ur,urk->uk", weights, betas**2)
        sd = np.sqrt(np.maximum(second - mean**2, 0.0))
        source = data if data is not None else self.data
        names = list(self.spec.random)
        ids = source.panel_ids if (self.panel and source.has_panel) else source.situation_ids
        frame = pd.DataFrame(mean, columns=names, index=pd.Index(ids, name="unit"))
        for k, name in enumerate(names):
            frame[f"sd.{name}"] = sd[:, k]
        return frame

    def population_coefficients(self, num_draws: int = 100_000, seed: int = 1) -> pd.DataFrame:
        """Simulated population distribution of every coefficient, ``(num_draws, K)``.

        With covariates in the mixing distribution the population is the fitted sample's:
        draw ``i`` takes the covariates of unit ``i mod U`` (decision makers, or situations
        without a panel), so the distribution is the mixture over the sample's people.
        """
        return pd.DataFrame(next(self._coefficients_at([self.params], num_draws, seed)))

    def _coefficients_at(
        self, parameter_sets: Sequence[np.ndarray] | np.ndarray, num_draws: int, seed: int
    ) -> Iterator[dict[str, np.ndarray]]:
        """``{coefficient: (num_draws,) population draws}`` at each parameter vector in turn
        (one set in memory at a time), all from the same standard draws (common random
        numbers: differences between the sets are not simulation noise)."""
        layout = self.layout
        covariates: np.ndarray | None = None
        standard = np.zeros((num_draws, 0))
        if layout.num_random:
            standard = standardised_draws(self.spec, 1, num_draws, "random", seed)[0][0]
            if layout.num_covariates:
                sample = self.sample_covariates()
                covariates = sample[np.arange(num_draws) % len(sample)]  # (num_draws, Q)
                standard = standard[:, None, :]  # one draw per covariate row
        # utility coefficients (in WTP space beta_k = -beta_p w_k), fixed first
        coefficients = jax.jit(layout.coefficients)
        names = layout.fixed + layout.random
        for params in parameter_sets:
            with x64():  # float64 arrays stay float64 only inside the x64 context
                betas = np.asarray(
                    coefficients(
                        jnp.asarray(params),
                        jnp.asarray(standard),
                        None if covariates is None else jnp.asarray(covariates),
                    )
                ).reshape(num_draws, -1)
            yield {name: betas[:, k] for k, name in enumerate(names)}

    def sample_covariates(self, data: ChoiceData | None = None) -> np.ndarray:
        """``(U, Q)`` the mixing covariates (:attr:`ModelSpec.covariates
        <mixlogit.spec.ModelSpec.covariates>`) of each unit of ``data`` (default: the fitted
        data), one row per decision maker of a panel fit, else per situation.

        Raises:
            ValueError: no data (results loaded from disk keep none).
        """
        source = data if data is not None else self.data
        if source is None:
            raise ValueError(
                "the mixing distribution depends on covariates, which results loaded from disk "
                "do not keep: pass the ChoiceData"
            )
        return unit_covariates(self.model, source, self.panel)

    def wtp(
        self,
        attribute: str,
        cost: str,
        *,
        num_draws: int = 100_000,
        seed: int = 1,
        interval: float = 0.95,
        parameter_draws: int = 0,
    ):
        """Willingness to pay for ``attribute`` in units of ``cost``: ``-beta_attr / beta_cost``.

        Both fixed: the ratio with delta-method standard errors (classical and robust), the
        robust Wald interval, and the Krinsky-Robb interval: percentiles of the ratio over
        ``num_draws`` draws of the estimates from their asymptotic normal distribution (robust
        covariance), which follows the skew of a ratio whose denominator is imprecise.
        Otherwise: the distribution of the ratio over the population (``num_draws``
        independent draws of the random coefficients), summarised by its median and
        quantiles, then its mean and SD. A random cost coefficient whose density does not
        vanish at 0 (normal, truncated normal, a triangular or uniform that straddles 0, a
        gamma of shape <= 1) gives a ratio without a finite mean; without a finite variance
        for gamma shape <= 2. Such a moment is NaN (a sample mean of such draws estimates
        nothing and does not settle as ``num_draws`` grows) and :class:`WTPMomentWarning`
        says so: report the median and quantiles, or give the cost a lognormal distribution.

        Sampling uncertainty of a random WTP (``parameter_draws > 0``): Krinsky-Robb over the
        estimates. ``parameter_draws`` parameter vectors are drawn from the estimates'
        asymptotic normal distribution (robust covariance); at each, the population statistics
        are recomputed from the same ``num_draws`` standard draws (common random numbers), and
        each statistic gets the percentile ``interval`` of its values: the uncertainty of the
        population median (say) that comes from estimating the model, not the spread of WTP
        across people (which the quantiles themselves describe).

        Returns:
            ``pd.Series`` in units of ``cost`` per unit of ``attribute``. Both fixed:
            ``wtp, std_err, robust_std_err``, the delta-method bounds (``q2.5%, q97.5%`` at
            ``interval=0.95``) and the Krinsky-Robb ``kr_median`` and bounds
            (``kr_q2.5%, kr_q97.5%``). Otherwise: ``median, q05, q25, q75, q95, mean, sd``
            and, with ``parameter_draws``, each statistic's Krinsky-Robb bounds
            ``kr_<statistic>_q2.5%``, ``kr_<statistic>_q97.5%`` (NaN where the moment does
            not exist).
        """
        layout = self.layout
        for name in (attribute, cost):
            if name not in layout.fixed and name not in layout.random:
                raise ValueError(f"{name!r} is not a coefficient of the model")
        if layout.wtp_space == cost and attribute in layout.fixed:
            return self._estimated_wtp(attribute, num_draws, seed, interval)
        if layout.wtp_space is None and attribute in layout.fixed and cost in layout.fixed:
            i, j = layout.names.index(attribute), layout.names.index(cost)
            a, c = self.params[i], self.params[j]
            gradient = np.zeros(self.num_params)
            gradient[i] = -1.0 / c
            gradient[j] = a / c**2
            robust_se = float(np.sqrt(gradient @ self.robust_cov @ gradient))
            lower, upper, lower_label, upper_label = interval_labels(interval)
            half = stats.norm.ppf(upper) * robust_se
            # Krinsky-Robb: the ratio at draws of (beta_attr, beta_cost) from N(estimate, cov)
            block = self.robust_cov[np.ix_([i, j], [i, j])]
            draws = np.random.default_rng(seed).multivariate_normal(
                [a, c], block, size=num_draws, method="eigh"
            )
            simulated = -draws[:, 0] / draws[:, 1]
            kr = np.quantile(simulated, [lower, 0.5, upper])
            return pd.Series(
                {
                    "wtp": -a / c,
                    "std_err": float(np.sqrt(gradient @ self.cov @ gradient)),
                    "robust_std_err": robust_se,
                    lower_label: -a / c - half,
                    upper_label: -a / c + half,
                    "kr_median": kr[1],
                    f"kr_{lower_label}": kr[0],
                    f"kr_{upper_label}": kr[2],
                },
                name=f"wtp.{attribute}",
            )
        if parameter_draws < 0:
            raise ValueError(f"parameter_draws must be >= 0, got {parameter_draws}")
        has_mean, has_variance, reason = self._inverse_cost_moments(cost)

        def statistics_of(population: Mapping[str, np.ndarray]) -> dict[str, float]:
            ratio = -population[attribute] / population[cost]
            quantiles = np.quantile(ratio, [0.05, 0.25, 0.5, 0.75, 0.95])
            return {
                "median": quantiles[2],
                "q05": quantiles[0],
                "q25": quantiles[1],
                "q75": quantiles[3],
                "q95": quantiles[4],
                "mean": float(np.mean(ratio)) if has_mean else np.nan,
                "sd": float(np.std(ratio)) if has_variance else np.nan,
            }

        parameter_sets = [self.params]
        if parameter_draws:
            parameter_sets += list(
                np.random.default_rng(seed).multivariate_normal(
                    self.params, self.robust_cov, size=parameter_draws, method="eigh"
                )
            )
        # one pass over the estimates and their Krinsky-Robb draws, one set of standard draws
        populations = self._coefficients_at(parameter_sets, num_draws, seed)
        point = statistics_of(next(populations))
        if not has_variance:
            missing = "mean or SD" if not has_mean else "SD"
            warnings.warn(
                f"wtp({attribute!r}, {cost!r}): the cost coefficient is {reason}, so the ratio "
                f"has no finite {missing} across the population; it is reported as NaN. Use "
                "the median and quantiles, or a lognormal (sign-constrained) cost coefficient",
                WTPMomentWarning,
                stacklevel=2,
            )
        if parameter_draws:
            lower, upper, lower_label, upper_label = interval_labels(interval)
            replicates = pd.DataFrame([statistics_of(p) for p in populations])
            for name in list(point):
                low, high = (
                    np.quantile(replicates[name], [lower, upper])
                    if np.isfinite(point[name])
                    else (np.nan, np.nan)
                )
                point[f"kr_{name}_{lower_label}"] = low
                point[f"kr_{name}_{upper_label}"] = high
        return pd.Series(point, name=f"wtp.{attribute}")

    def _estimated_wtp(self, attribute: str, num_draws: int, seed: int, interval: float):
        """A fixed WTP of a WTP-space model: the parameter itself, its standard errors, the
        Wald interval and (as for a ratio) Krinsky-Robb percentiles of its normal draws."""
        i = self.names.index(attribute)
        estimate, robust_se = float(self.params[i]), float(self.robust_std_errors[i])
        lower, upper, lower_label, upper_label = interval_labels(interval)
        half = stats.norm.ppf(upper) * robust_se
        draws = np.random.default_rng(seed).normal(estimate, robust_se, size=num_draws)
        kr = np.quantile(draws, [lower, 0.5, upper])
        return pd.Series(
            {
                "wtp": estimate,
                "std_err": float(self.std_errors[i]),
                "robust_std_err": robust_se,
                lower_label: estimate - half,
                upper_label: estimate + half,
                "kr_median": kr[1],
                f"kr_{lower_label}": kr[0],
                f"kr_{upper_label}": kr[2],
            },
            name=f"wtp.{attribute}",
        )

    def _inverse_cost_moments(self, cost: str) -> tuple[bool, bool, str]:
        """Whether ``1 / beta_cost`` has a finite mean and variance over the population, and
        the reason when not (the rule: :func:`mixlogit.mixing.reciprocal_moments_exist`)."""
        layout = self.layout
        if cost in layout.fixed or cost == layout.wtp_space:
            # in WTP space the ratio to the cost coefficient is the WTP itself
            return True, True, ""
        k = layout.random.index(cost)
        first = self.params[layout.num_fixed + k]
        if cost in layout.correlated:
            spread = 1.0  # a correlated normal has a positive variance
        else:
            pos = int(np.flatnonzero(layout.independent_index == k)[0])
            spread = self.params[layout.num_fixed + layout.num_random + pos]
        distribution = layout.mixing[k].distribution
        if not layout.num_covariates:
            return reciprocal_moments_exist(distribution, first, spread)
        # a moment of the mixture exists only where it exists for every unit's distribution
        with x64():
            shift, factor = (
                np.asarray(a)[:, k]
                for a in layout.covariate_effects(
                    jnp.asarray(self.params), jnp.asarray(self.sample_covariates())
                )
            )
        if distribution == "gamma":
            units = zip(np.full(len(shift), first), spread + shift, strict=True)
        else:
            units = zip(first + shift, spread * factor, strict=True)
        has_mean, has_variance, reason = True, True, ""
        for a, b in units:
            mean_u, variance_u, reason_u = reciprocal_moments_exist(distribution, a, b)
            if not variance_u and has_variance:
                reason = reason_u
            has_mean, has_variance = has_mean and mean_u, has_variance and variance_u
        return has_mean, has_variance, reason

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "mixlogit.EstimationResults/1",
            "model": self.model.to_dict(),
            "names": list(self.names),
            "params": self.params.tolist(),
            "cov": self.cov.tolist(),
            "robust_cov": self.robust_cov.tolist(),
            "hessian": self.hessian.tolist(),
            "gradient": self.gradient.tolist(),
            "loglik": self.loglik,
            "null_loglik": self.null_loglik,
            "num_situations": self.num_situations,
            "num_units": self.num_units,
            "num_draws": self.num_draws,
            "draws": self.draws,
            "seed": self.seed,
            "method": self.method,
            "panel": self.panel,
            "converged": self.converged,
            "message": self.message,
            "iterations": self.iterations,
            "function_evaluations": self.function_evaluations,
            "time": self.time,
            "quadrature": self.quadrature,
            "starts": self.starts,
            "simulation_noise": self.simulation_noise,
            "halton_options": self.halton_options,
            "fixed_parameters": self.fixed_parameters,
            "bounds": self.bounds,
            "constraints": self.constraints,
        }

    def save(self, path: str | Path) -> None:
        """Write the results (not the data) as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, allow_nan=True))

    @classmethod
    def load(cls, path: str | Path, data: ChoiceData | None = None) -> EstimationResults:
        """Read results written by :meth:`save`; pass ``data`` to predict on it later.

        The model comes back as its :class:`~mixlogit.spec.ModelSpec` (a nested logit's as
        its :class:`~mixlogit.estimation.nested.NestingSpec`).
        """
        content = json.loads(Path(path).read_text())
        if content.get("format") != "mixlogit.EstimationResults/1":
            raise ValueError(f"{path} is not a mixlogit results file")
        arrays = {
            k: np.asarray(content[k], dtype=np.float64)
            for k in ("params", "cov", "robust_cov", "hessian", "gradient")
        }
        fields = {k: v for k, v in content.items() if k not in ("format", "model", *arrays)}
        if fields.get("bounds"):  # JSON turned the pairs into lists
            fields["bounds"] = {n: tuple(pair) for n, pair in fields["bounds"].items()}
        model_content = content["model"]
        if "nests" in model_content:
            model: Any = NestingSpec.from_dict(model_content)
        elif "num_classes" in model_content:
            model = LatentClassSpec.from_dict(model_content)
        else:
            model = ModelSpec.from_dict(model_content)
        return cls(model=model, **arrays, **fields, data=data)
