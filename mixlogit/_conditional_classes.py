"""What the torch and JAX conditional strengths share, written once.

A backend's ``ConditionalStrength`` (a ``torch.nn.Module``, a JAX pytree) mixes in
:class:`ConditionalStrengthMixin` and supplies the backend's kernel :attr:`ops`, the parameter
storage (``_store``, ``params``), the conversion of covariates to its arrays (``encode``) and
its marginal (whose random-number argument differs); the constructor, the per-row parameters,
the prior, the moments and the training-log values are :mod:`mixlogit.conditional`'s functions
evaluated through ``ops``.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import numpy as np

from mixlogit import conditional as _cond
from mixlogit.conditional import EncodedCovariates, StrengthDesign
from mixlogit.families import LOG_PREFIX, StrengthFamily

__all__ = ["ConditionalStrengthMixin"]

#: ``{name: default}`` of :func:`mixlogit.conditional.make_spec`'s keyword arguments, which the
#: constructor passes on to it; its signature is the one list of them.
_SPEC_KEYWORDS: dict[str, Any] = {
    name: parameter.default
    for name, parameter in inspect.signature(_cond.make_spec).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
}
#: The start values among them; the others are the hierarchy (recorded by torch's ``config``).
_START_KEYWORDS = ("init", "mean", "cv")


class ConditionalStrengthMixin:
    """A strength whose distribution depends on rater covariates (or on nothing).

    Args:
        family: strength family name or object (``"gamma"``, ``"lognormal"``, ``"point_mass"``).
        design: a :class:`mixlogit.conditional.StrengthDesign` fitted on the training raters;
            ``None``: one distribution for all raters.
        init, mean, cv: start values, natural parameters or mean and CV (default: the family's
            MixDPO defaults; gamma mean 0.12, CV 0.71).
        learnable: ``False`` keeps the values out of training (torch buffers, JAX auxiliary
            data).
        pool_cv, regress_cv, tau_mean, tau_cv, tau_prior_scale, coef_prior_scale,
        population_prior_scale, init_tau: the hierarchy, see
            :func:`mixlogit.conditional.make_spec`.
        options: the family's marginal options (``num_terms``; ``method``, ``num_points``,
            ``num_samples``).

    Shapes: ``natural_params(covariates)`` and ``group_params(covariates)`` return
    ``{parameter: (n,)}`` for ``n`` covariate rows (one per annotator for the panel marginal);
    without covariates, 0-dim arrays of the population centre.
    """

    ops: Any
    spec: _cond.ConditionalSpec
    options: dict[str, Any]
    learnable: bool

    def __init__(
        self,
        family: str | StrengthFamily = "gamma",
        design: StrengthDesign | None = None,
        *,
        learnable: bool = True,
        **arguments: Any,
    ) -> None:
        # ``arguments``: make_spec's keywords (its signature is the one list of them, see
        # _constructor_signature) and the family's marginal options.
        super().__init__()
        spec_arguments = {name: arguments.pop(name) for name in _SPEC_KEYWORDS if name in arguments}
        self.spec = _cond.make_spec(family, design, **spec_arguments)
        self.options = self.spec.family.check_options(arguments)
        self.learnable = bool(learnable)
        hierarchy = {
            name: spec_arguments.get(name, default)
            for name, default in _SPEC_KEYWORDS.items()
            if name not in _START_KEYWORDS
        }
        self._record_arguments(hierarchy, dict(arguments))
        for name, value in _cond.initial_values(self.spec).items():
            self._store(name, value)

    # ------------------------------------------------------------------------- backend
    def _store(self, name: str, value: np.ndarray) -> None:
        """Keep parameter ``name`` (its start value, NumPy ``float64``) as the backend does."""
        raise NotImplementedError

    def _record_arguments(self, hierarchy: dict[str, Any], options: dict[str, Any]) -> None:
        """Hook for a backend that records its constructor arguments (torch's ``config``)."""

    def params(self) -> dict[str, Any]:
        """``{name: array}`` of the parameters."""
        raise NotImplementedError

    def encode(self, covariates: Any) -> EncodedCovariates:
        """Covariate rows as the backend's arrays."""
        raise NotImplementedError

    def _no_grad(self) -> contextlib.AbstractContextManager:
        """Context in which :meth:`log_values` reads the values (torch: ``no_grad``)."""
        return contextlib.nullcontext()

    # ------------------------------------------------------------------------- structure
    @property
    def family(self) -> str:
        """The canonical family name."""
        return self.spec.family.name

    @property
    def design(self) -> StrengthDesign:
        return self.spec.design

    # ------------------------------------------------------------------------- covariates
    def natural_params(self, covariates: Any = None) -> dict[str, Any]:
        """The family's parameters per covariate row ``(n,)``; the population centre (0-dim)
        when ``covariates`` is ``None``."""
        encoded = None if covariates is None else self.encode(covariates)
        return _cond.natural_params(self.ops, self.spec, self.params(), encoded)

    def group_params(self, covariates: Any) -> dict[str, Any]:
        """Per-group parameters ``{name: (G,)}`` from one covariate row per group (annotator),
        ready for the panel marginal (``mixlogit.torch.panel``, ``mixlogit.jax.panel``)."""
        if covariates is None:
            raise ValueError("group_params needs one covariate row per group")
        return self.natural_params(covariates)

    # ------------------------------------------------------------------------- priors
    def log_prior(self) -> Any:
        """Log prior density (0-dim) of the hierarchy; add ``-log_prior()`` (scaled like the
        loss) to the negative log-likelihood for the partially pooled MAP (see
        :func:`mixlogit.conditional.log_prior`)."""
        return _cond.log_prior(self.ops, self.spec, self.params())

    # ------------------------------------------------------------------------- moments
    def level_moments(self) -> dict[str, dict[str, Any]]:
        """``{level key: {"mean", "variance", "cv"}}`` (0-dim) of each pooled level at the
        population values of the other covariates; empty without pooled levels."""
        if not self.design.levels:
            return {}
        ops, spec = self.ops, self.spec
        moments = _cond.moments_at(ops, spec, *_cond.level_predictors(ops, spec, self.params()))
        return {
            key: {name: value[k] for name, value in moments.items()}
            for k, key in enumerate(self.design.level_keys)
        }

    def population_moments(self, covariates: Any = None) -> dict[str, Any]:
        """``{"mean", "variance", "cv"}``: of the mixture over the given raters' distributions
        (one row per rater), or of the population centre when ``covariates`` is ``None``."""
        ops, spec = self.ops, self.spec
        if covariates is None:
            return _cond.moments_at(ops, spec, *_cond.predictors(ops, spec, self.params()))
        return _cond.mixture_moments(ops, spec, self.natural_params(covariates))

    @property
    def mean(self) -> Any:
        """``E[beta]`` of the population centre (0-dim)."""
        return self.population_moments()["mean"]

    @property
    def variance(self) -> Any:
        return self.population_moments()["variance"]

    @property
    def coefficient_of_variation(self) -> Any:
        return self.population_moments()["cv"]

    def constrained_parameters(self) -> dict[str, Any]:
        """The family's natural parameters at the population centre."""
        return self.natural_params()

    def log_values(self, covariates: Any = None) -> dict[str, float]:
        """Training-log values: ``strength/mean``, ``/variance``, ``/cv`` of the population
        (mixture over ``covariates`` rows when given), ``strength/<param>`` of the centre, and
        ``strength/<level>/mean``, ``strength/<level>/cv`` per pooled level."""
        with self._no_grad():
            population = self.population_moments(covariates).items()
            values = {LOG_PREFIX + k: float(v) for k, v in population}
            centre = self.constrained_parameters().items()
            values.update({LOG_PREFIX + k: float(v) for k, v in centre})
            for key, moments in self.level_moments().items():
                values[f"{LOG_PREFIX}{key}/mean"] = float(moments["mean"])
                values[f"{LOG_PREFIX}{key}/cv"] = float(moments["cv"])
        return values

    def _moment_text(self) -> str:
        with self._no_grad():
            moments = {k: float(v) for k, v in self.population_moments().items()}
        return f"mean={moments['mean']:.6g}, cv={moments['cv']:.6g}"


def _constructor_signature() -> inspect.Signature:
    """The constructor's signature as users see it (``help``, the API page): ``make_spec``'s
    arguments with ``learnable`` after the start values and ``**options``, spelled out although
    the constructor takes them as ``**arguments``."""
    spec = list(inspect.signature(_cond.make_spec).parameters.values())
    after_starts = max(i for i, p in enumerate(spec) if p.name in _START_KEYWORDS) + 1
    own = inspect.signature(ConditionalStrengthMixin.__init__).parameters
    options = inspect.Parameter("options", inspect.Parameter.VAR_KEYWORD, annotation="Any")
    return inspect.Signature(
        [own["self"], *spec[:after_starts], own["learnable"], *spec[after_starts:], options],
        return_annotation="None",
    )


ConditionalStrengthMixin.__init__.__signature__ = _constructor_signature()  # type: ignore[attr-defined]
