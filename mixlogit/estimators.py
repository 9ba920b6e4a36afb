"""Multinomial and mixed logit estimators: a specification plus ``fit``.

Quick start::

    from mixlogit import ChoiceData, MixedLogit
    from mixlogit.datasets import load_electricity

    data = ChoiceData(load_electricity(), choice="choice", alternative="alt",
                      situation="chid", panel="id")
    model = MixedLogit(random={v: "normal" for v in ["pf", "cl", "loc", "wk", "tod", "seas"]})
    results = model.fit(data, num_draws=600)
    print(results)                   # report; results.summary() is the parameter table

``fit`` runs maximum simulated likelihood or converged quadrature
(:func:`mixlogit.estimation.estimate`, JAX in float64 inside a ``jax.enable_x64`` context)
or, with ``method="nuts"`` / ``"svi"``, the Bayesian fit :func:`mixlogit.bayes.fit_bayes` of
the same :class:`~mixlogit.spec.ModelSpec`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mixlogit._deprecation import renamed_keywords
from mixlogit.data import ChoiceData
from mixlogit.estimation import ConvergenceWarning, SeparationWarning, estimate
from mixlogit.estimation.fit import estimate_nested
from mixlogit.estimation.nested import NestingSpec
from mixlogit.likelihood import ParameterLayout
from mixlogit.spec import ModelSpec, RandomCoefficient

__all__ = [
    "ConvergenceWarning",
    "CrossNestedLogit",
    "MixedLogit",
    "MultinomialLogit",
    "NestedLogit",
    "SeparationWarning",
]

#: Old keyword names of :meth:`MixedLogit.fit` (deprecated) -> new ones.
FIT_RENAMES = {
    "gtol": "tolerance",
    "maxiter": "max_iterations",
    "quadrature_tol": "quadrature_tolerance",
    "quadrature_nodes": "num_nodes",
}


class MixedLogit:
    """Mixed (random-coefficient) logit.

    Args:
        fixed: variables with a fixed coefficient (``"col"``, ``"ASC_<alt>"``, ``"col@<alt>"``).
        random: ``{variable: distribution}`` where distribution is one of
            :data:`mixlogit.spec.DISTRIBUTIONS`, ``"-lognormal"`` (etc.) for a strictly
            negative coefficient, ``(distribution, sign)`` or a
            :class:`~mixlogit.spec.RandomCoefficient`.
        correlated: ``True`` to correlate all normal/lognormal random coefficients through a
            full Cholesky factor, or the list of those to correlate (a single name correlates
            nothing); ``False`` for independent.
        mean_covariates: heterogeneity in means: ``{random coefficient: [columns]}`` of
            decision-maker covariates ``z_n`` that shift the location of its distribution by
            ``z_n . delta`` (parameters ``<v>:<column>``; for lognormal and gamma coefficients
            a factor ``exp(z_n . delta)`` on the coefficient). Constant within a decision
            maker of a panel; per situation otherwise.
        sd_covariates: heterogeneity in variances: the spread of the coefficient times
            ``exp(z_n . gamma)`` (parameters ``ln_sd.<v>:<column>``; not for gamma).
        wtp_space: the cost variable of a model in willingness-to-pay space: the parameters
            of every other variable (fixed or random) are its WTP ``w_k`` in units of the cost,
            the cost's own (e.g. ``"-lognormal"``) its coefficient ``beta_p``, and the utility
            coefficients ``beta_k = -beta_p w_k`` (Train and Weeks 2005; logitr's and
            Apollo's WTP space).

    Example: ``MixedLogit(["cost"], {"time": "normal"}, mean_covariates={"time": ["male"]})``.

    Attributes:
        spec: the :class:`~mixlogit.spec.ModelSpec` (fixed first, then random, in the order
            given); ``fixed``, ``random``, ``correlated`` and ``variables`` are its fields.
    """

    def __init__(
        self,
        fixed: Sequence[str] = (),
        random: Mapping[str, str | RandomCoefficient | tuple] | None = None,
        correlated: bool | Sequence[str] = False,
        *,
        mean_covariates: Mapping[str, Sequence[str]] | None = None,
        sd_covariates: Mapping[str, Sequence[str]] | None = None,
        wtp_space: str | None = None,
    ) -> None:
        self.spec = ModelSpec.build(
            fixed, random, correlated, mean_covariates, sd_covariates, wtp_space
        )

    # ------------------------------------------------------------------ specification
    @property
    def fixed(self) -> tuple[str, ...]:
        return self.spec.fixed

    @property
    def random(self) -> dict[str, RandomCoefficient]:
        return self.spec.random

    @property
    def correlated(self) -> tuple[str, ...]:
        return self.spec.correlated

    @property
    def variables(self) -> tuple[str, ...]:
        """Every coefficient's variable: fixed ones first, then random ones."""
        return self.spec.variables

    @property
    def coefficients(self) -> tuple[RandomCoefficient | None, ...]:
        """Mixing of each entry of :attr:`variables` (``None`` for fixed)."""
        random = self.spec.random
        return tuple(random.get(name) for name in self.spec.variables)

    @property
    def layout(self) -> ParameterLayout:
        return ParameterLayout.from_spec(self.spec)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return self.spec.parameter_names

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.describe()})"

    def to_dict(self) -> dict[str, Any]:
        return {"class": type(self).__name__, **self.spec.to_dict()}

    @staticmethod
    def from_dict(content: Mapping[str, Any]) -> MixedLogit:
        spec = ModelSpec.from_dict(content)
        if content.get("class") == "MultinomialLogit":
            return MultinomialLogit(spec.fixed)
        return MixedLogit(
            spec.fixed,
            spec.random,
            spec.correlated or False,
            mean_covariates=dict(spec.mean_covariates),
            sd_covariates=dict(spec.sd_covariates),
            wtp_space=spec.wtp_space,
        )

    # ------------------------------------------------------------------ estimation
    def fit(
        self,
        data: ChoiceData,
        *,
        method: str = "simulation",
        num_draws: int | None = None,
        draws: str = "halton",
        seed: int | None = 0,
        init: Mapping[str, float] | np.ndarray | None = None,
        optimizer: str = "auto",
        tolerance: float = 1e-6,
        max_iterations: int = 2000,
        panel: bool = True,
        chunk_size: int | None = None,
        quadrature_tolerance: float = 1e-3,
        num_nodes: int | None = None,
        hessian: bool = True,
        verbose: bool | int = False,
        progress: bool = False,
        num_starts: int = 1,
        start_seed: int | None = 0,
        simulation_noise: bool = False,
        fix: Mapping[str, float] | None = None,
        bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
        halton_options: Mapping[str, Any] | None = None,
        constraints: Sequence[str | tuple[Mapping[str, float], float]] | None = None,
        devices: int | Sequence[Any] | None = None,
        **kwargs: Any,
    ):
        """Estimate the model.

        Args:
            data: the choice data.
            method: ``"simulation"`` (maximum simulated likelihood), ``"quadrature"``
                (converged quadrature, one or two random coefficients: trapezoidal in the
                standard normal for normal-based coefficients, Gauss-Legendre otherwise),
                or ``"nuts"`` / ``"svi"`` (Bayesian: :func:`mixlogit.bayes.fit_bayes`, which
                takes ``kwargs``, ``seed``, ``progress`` and, where they apply, ``num_draws``
                (``"svi"`` only: draws of its simulated likelihood) and ``num_nodes``
                (``integrate="quadrature"`` only); an option of the classical fit given
                with a value other than its default, or one of those two where it does not
                apply, raises ``TypeError`` naming it instead of being ignored).
            num_draws: simulation draws per decision maker (default 1000).
            draws: ``"halton"``, ``"halton-scrambled"``, ``"halton-shuffled"``, ``"sobol"``,
                ``"mlhs"`` or ``"random"``.
            seed: seed of randomised draws.
            init: starting values by parameter name or as a full vector; default MNL estimates
                for the means and 0.1 for the spreads.
            optimizer: ``"auto"`` (default: Newton's method with the analytic Hessian for a
                model without random coefficients, BFGS otherwise), ``"bfgs"``,
                ``"l-bfgs-b"`` or ``"newton"`` (trust region, Hessian by differences of
                the exact gradient).
            tolerance: convergence tolerance on the largest absolute gradient entry of the
                standardised parameters (each parameter in the coefficient's units times the
                scale of its variable's differences between alternatives, so the test does
                not depend on the data's units; old name ``gtol``, deprecated).
            max_iterations: maximum optimiser iterations (old name ``maxiter``, deprecated).
            panel: use the panel structure of ``data`` (one coefficient draw per decision maker).
            chunk_size: draws processed at once (default bounds memory to ~64 MiB of utilities).
            quadrature_tolerance: target absolute log-likelihood error of the quadrature rule
                (old name ``quadrature_tol``, deprecated).
            num_nodes: starting nodes per dimension for quadrature (default 33 / 17; old
                name ``quadrature_nodes``, deprecated).
            hessian: compute the Hessian and standard errors.
            verbose: print an iteration log every ``verbose`` iterations (``True`` = 1).
            progress: show progress bars (optimiser iterations with the current
                log-likelihood and largest gradient entry, then the Hessian's columns).
            num_starts: starting values to optimise from (default 1: the default start
                only). Start 1 is the default start; the others perturb it at random (means
                by up to one unit of their variable's scale, spreads drawn positive; see
                :func:`mixlogit.estimation.multistart.random_starts`) and run on the same
                compiled likelihood. The results are those of the best start and
                ``results.starts`` lists every start (``theta0``, ``params``, ``loglik``,
                ``converged``, ``iterations``, ``evaluations``, ``time``); ``verbose`` prints
                one line per start.
            start_seed: seed of the random starts (the same seed gives the same starts).
            simulation_noise: also run the simulation-noise diagnostic
                (:func:`mixlogit.estimation.check_simulation_noise`: the fit repeated from its
                estimates with an independent draw set); its report is
                ``results.simulation_noise``. ``method="simulation"`` with random
                coefficients only.
            fix: ``{parameter: value}`` held at its value (names as in
                ``spec.parameter_names``: a coefficient, ``sd.<v>``, ...). For normalisations
                (an ASC at 0, the mean of an error component at 0: a variable whose coefficient
                or mean is fixed is left out of the identification check) and offsets (a
                variable with its coefficient fixed at 1). Fixed parameters stay in
                ``results.params`` with NaN standard errors and zero (co)variance, and are
                not counted in AIC, BIC and adjusted rho2.
            bounds: ``{parameter: (lower, upper)}``, ``None`` for an open side; fitted by
                L-BFGS-B (``optimizer="auto"`` chooses it). A parameter that ends at its
                bound gets a warning: its standard error assumes an interior maximum.
            constraints: linear equalities between parameters, each a string such as
                ``"ASC_1 = ASC_3"``, ``"time = 2 * cost"`` or ``"b1 + b2 = 1"``, or a pair
                ``({name: coefficient}, rhs)``. Each determines one parameter (the last of
                the largest coefficients) from the others; it is reported with its implied
                standard error and is not counted in AIC, BIC and adjusted rho2
                (``results.constraints`` lists them). Not with ``optimizer="newton"`` and not
                with a bound on a parameter they determine.
            halton_options: for Halton draws, ``{"skip": n}`` leading points dropped (default
                100) and ``{"primes": [...]}`` one base per random coefficient in column order
                (default the first primes), as Biogeme, Apollo and xlogit allow.
            devices: split the decision makers between devices for maximum simulated
                likelihood: a count (the first ``devices`` of ``jax.devices()``; on CPU
                set ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before JAX starts)
                or a sequence of jax devices. Each holds ``1 / N`` of the data and draws and
                evaluates its own units; the estimates equal the one-device ones up to
                rounding in the sums (:mod:`mixlogit.estimation.sharding`, which states the
                memory per device).

        Returns:
            :class:`~mixlogit.results.EstimationResults` (classical) or
            :class:`~mixlogit.bayes.BayesianResults` (``"nuts"``, ``"svi"``).

        Warns:
            SeparationWarning: a variable separates the choices, so the likelihood has no
                finite maximum (``results.converged`` is then False and ``results.message``
                names the variables).
            LocalMaximumWarning: with ``num_starts > 1``, converged starts stopped at
                log-likelihoods more than 0.01 apart (the message gives the best and how many
                starts reached it).
            SimulationNoiseWarning: with ``simulation_noise=True``, an estimate moved by more
                than its standard error, or the log-likelihood by more than 1, with the
                independent draws.
        """
        if method in ("nuts", "svi"):
            given = {
                name: value
                for name, value in locals().items()
                if name in _CLASSICAL_ONLY and not _same(value, _FIT_DEFAULTS[name])
            }
            bayes_options = _bayes_options(method, given, num_draws, num_nodes, kwargs)
            try:
                from mixlogit.bayes import fit_bayes
            except ImportError as error:
                raise ImportError(
                    f"method={method!r} needs the Bayesian backend mixlogit.bayes, which could "
                    f"not be imported ({error})"
                ) from error
            return fit_bayes(
                self, data, method=method, seed=seed, progress=progress, **bayes_options
            )
        current = dict(
            tolerance=tolerance,
            max_iterations=max_iterations,
            quadrature_tolerance=quadrature_tolerance,
            num_nodes=num_nodes,
        )
        # a new name given with a non-default value clashes with its old name
        explicit = {k: v for k, v in current.items() if v != _FIT_DEFAULTS[k]}
        kwargs = renamed_keywords(f"{type(self).__name__}.fit", {**explicit, **kwargs}, FIT_RENAMES)
        tolerance, max_iterations, quadrature_tolerance, num_nodes = (
            kwargs.pop(k, v) for k, v in current.items()
        )
        if kwargs:
            raise TypeError(f"unexpected keyword arguments {sorted(kwargs)}")
        if method not in ("simulation", "quadrature"):
            raise ValueError(
                f"method must be 'simulation', 'quadrature', 'nuts' or 'svi'; got {method!r}"
            )
        return estimate(
            self,
            data,
            method=method,
            num_draws=1000 if num_draws is None else num_draws,
            draws=draws,
            seed=seed,
            init=init,
            optimizer=optimizer,
            tolerance=tolerance,
            max_iterations=max_iterations,
            panel=panel,
            chunk_size=chunk_size,
            quadrature_tolerance=quadrature_tolerance,
            num_nodes=num_nodes,
            hessian=hessian,
            verbose=verbose,
            progress=progress,
            num_starts=num_starts,
            start_seed=start_seed,
            simulation_noise=simulation_noise,
            fix=fix,
            bounds=bounds,
            halton_options=halton_options,
            constraints=constraints,
            devices=devices,
        )


_FIT_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(MixedLogit.fit).parameters.items()
}
#: Arguments of :meth:`MixedLogit.fit` that only the classical methods use.
_CLASSICAL_ONLY = (
    "draws",
    "init",
    "optimizer",
    "tolerance",
    "max_iterations",
    "panel",
    "chunk_size",
    "quadrature_tolerance",
    "hessian",
    "verbose",
    "num_starts",
    "start_seed",
    "simulation_noise",
    "fix",
    "bounds",
    "constraints",
    "halton_options",
    "devices",
)
#: Old names (:data:`FIT_RENAMES`) of classical-only arguments.
_CLASSICAL_OLD_NAMES = ("gtol", "maxiter", "quadrature_tol")


def _same(value: Any, default: Any) -> bool:
    """``value == default`` for the scalar defaults of ``fit`` (an array is never equal)."""
    if isinstance(value, np.ndarray) or isinstance(default, np.ndarray):
        return False
    try:
        return bool(value == default)
    except (TypeError, ValueError):
        return False


def _bayes_options(
    method: str,
    given: Mapping[str, Any],
    num_draws: int | None,
    num_nodes: int | None,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    """The keyword arguments of :func:`~mixlogit.bayes.fit_bayes` for ``method`` (``"nuts"``
    or ``"svi"``), or ``TypeError`` naming every argument of ``fit`` that would be ignored.

    ``given`` holds the classical-only arguments passed with a non-default value. An argument
    equal to its default cannot be told from an omitted one and passes.
    """
    refused = [f"{name}={value!r}" for name, value in given.items()]
    refused += [f"{name}=" for name in _CLASSICAL_OLD_NAMES if name in kwargs]
    options = dict(kwargs)
    old_nodes = options.pop("quadrature_nodes", None)  # old name of num_nodes
    nodes = num_nodes if num_nodes is not None else old_nodes
    integrate = options.get("integrate", "sample")
    if num_draws is not None:
        if method == "svi":
            options["num_draws"] = num_draws
        else:
            refused.append(
                f"num_draws={num_draws!r} (NUTS samples the person coefficients; the draws of "
                "its log-likelihood are num_loglik_draws)"
            )
    if nodes is not None:
        name = "num_nodes" if num_nodes is not None else "quadrature_nodes"
        if integrate == "quadrature":
            options[name] = nodes
        else:
            refused.append(f"{name}={nodes!r} (used only with integrate='quadrature')")
    if refused:
        raise TypeError(
            f"MixedLogit.fit(method={method!r}) does not use "
            + "; ".join(refused)
            + ". The Bayesian fit takes seed, progress and the options of "
            "mixlogit.bayes.fit_bayes; remove the classical ones"
        )
    return {k: v for k, v in options.items() if k not in _CLASSICAL_OLD_NAMES}


class MultinomialLogit(MixedLogit):
    """Multinomial logit: every coefficient fixed.

    Args:
        variables: ``"col"``, ``"ASC_<alt>"`` or ``"col@<alt>"`` names.
    """

    def __init__(self, variables: Sequence[str] = (), *, fixed: Sequence[str] = ()) -> None:
        super().__init__(fixed=(*variables, *fixed))

    def __repr__(self) -> str:
        return f"MultinomialLogit({list(self.fixed)})"

    def fit(self, data: ChoiceData, **kwargs: Any):
        """Maximum likelihood; robust SEs are clustered by the panel of ``data`` if it has one.

        Keyword arguments as :meth:`MixedLogit.fit` (draw options are ignored).
        """
        if kwargs.get("method") not in ("nuts", "svi"):  # the Bayesian fit takes no draws
            kwargs.setdefault("num_draws", 1)
        return super().fit(data, **kwargs)


class NestedLogit:
    """Nested logit: alternatives grouped in nests with a scale ``lambda`` each.

    Args:
        variables: the coefficients (all fixed), named as for :class:`MultinomialLogit`.
        nests: ``{nest: [alternative, ...]}``; each alternative in at most one nest (an
            alternative in none is a nest of its own with ``lambda = 1``).

    Parameters: the coefficients, then ``lambda.<nest>`` (Biogeme's ``mu = 1 / lambda``). See
    :mod:`mixlogit.estimation.nested` for the model.

    Example (Biogeme's b09nested)::

        NestedLogit(["ASC_1", "ASC_3", "time", "cost"], nests={"existing": [1, 3]})
    """

    _cross = False

    def __init__(
        self,
        variables: Sequence[str] = (),
        nests: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        nest_items = tuple((str(k), tuple(v)) for k, v in (nests or {}).items())
        self.nesting = NestingSpec(ModelSpec.build(variables), nest_items, self._cross)

    @property
    def spec(self) -> ModelSpec:
        return self.nesting.spec

    @property
    def nests(self) -> dict[str, tuple[Any, ...]]:
        return dict(self.nesting.nests)

    @property
    def variables(self) -> tuple[str, ...]:
        return self.spec.variables

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return self.nesting.parameter_names

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.nesting.describe()})"

    def to_dict(self) -> dict[str, Any]:
        return {"class": type(self).__name__, **self.nesting.to_dict()}

    def fit(
        self,
        data: ChoiceData,
        *,
        init: Mapping[str, float] | Sequence[float] | np.ndarray | None = None,
        optimizer: str = "auto",
        tolerance: float = 1e-6,
        max_iterations: int = 2000,
        hessian: bool = True,
        verbose: bool | int = False,
        progress: bool = False,
        fix: Mapping[str, float] | None = None,
        bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
        constraints: Sequence[str | tuple[Mapping[str, float], float]] | None = None,
    ):
        """Maximum likelihood (:func:`mixlogit.estimation.fit.estimate_nested`).

        Args as :meth:`MixedLogit.fit`. Every ``lambda`` is bounded below by 1e-3 and every
        allocation to [0, 1] unless ``bounds`` names it (e.g. ``{"lambda.existing": (0.1,
        1.0)}`` for the range consistent with utility maximisation); ``fix={"lambda.x": 1}``
        removes a nest. Robust SEs are clustered by the panel of ``data`` if it has one.

        Returns:
            :class:`~mixlogit.results.EstimationResults`.
        """
        return estimate_nested(
            self,
            data,
            init=init,
            optimizer=optimizer,
            tolerance=tolerance,
            max_iterations=max_iterations,
            hessian=hessian,
            verbose=verbose,
            progress=progress,
            fix=fix,
            bounds=bounds,
            constraints=constraints,
        )


class CrossNestedLogit(NestedLogit):
    """Cross-nested logit: an alternative may belong to several nests.

    An alternative in ``k`` nests has allocations ``alpha.<alternative>.<nest>`` for its first
    ``k - 1`` nests (in the order of ``nests``); the last gets 1 minus their sum. Example
    (Biogeme's b11cnl: train in both nests)::

        CrossNestedLogit(["ASC_1", "ASC_3", "time", "cost"],
                         nests={"existing": [1, 3], "future": [1, 2]})
    """

    _cross = True
