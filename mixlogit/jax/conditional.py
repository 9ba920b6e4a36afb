"""Covariate-conditioned (and mean/CV-parameterised) preference strength as a JAX pytree.

The twin of :class:`mixlogit.torch.conditional.ConditionalStrength` (same constructor, names
and methods). The leaves are the parameters of :func:`mixlogit.conditional.parameter_shapes`
(``log_mean``, ``log_cv``, ...), so ``jax.grad`` / optax act on them directly; the
:class:`~mixlogit.conditional.ConditionalSpec` and options are static auxiliary data.
``learnable=False`` moves the values into the auxiliary data (invisible to gradients).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mixlogit import conditional as _cond
from mixlogit.conditional import EncodedCovariates, StrengthDesign
from mixlogit.families import LOG_PREFIX, StrengthFamily
from mixlogit.jax._ops import OPS
from mixlogit.jax.marginals import logit_marginal

__all__ = ["ConditionalStrength"]


@jax.tree_util.register_pytree_node_class
class ConditionalStrength:
    """A strength whose distribution depends on rater covariates (or on nothing).

    Arguments as for :class:`mixlogit.torch.conditional.ConditionalStrength`. Values are
    ``float64`` arrays when ``jax_enable_x64`` is on, ``float32`` otherwise.
    """

    def __init__(
        self,
        family: str | StrengthFamily = "gamma",
        design: StrengthDesign | None = None,
        *,
        init: Mapping[str, float] | None = None,
        mean: float | None = None,
        cv: float | None = None,
        learnable: bool = True,
        pool_cv: bool = True,
        regress_cv: bool = False,
        tau_mean: float | None = None,
        tau_cv: float | None = None,
        tau_prior_scale: float = 1.0,
        coef_prior_scale: float | None = None,
        population_prior_scale: float | None = None,
        init_tau: float = 0.5,
        **options: Any,
    ) -> None:
        self.spec = _cond.make_spec(
            family,
            design,
            init=init,
            mean=mean,
            cv=cv,
            pool_cv=pool_cv,
            regress_cv=regress_cv,
            tau_mean=tau_mean,
            tau_cv=tau_cv,
            tau_prior_scale=tau_prior_scale,
            coef_prior_scale=coef_prior_scale,
            population_prior_scale=population_prior_scale,
            init_tau=init_tau,
        )
        self.options = self.spec.family.check_options(options)
        self.learnable = bool(learnable)
        self._values = {k: jnp.asarray(v) for k, v in _cond.initial_values(self.spec).items()}

    # ------------------------------------------------------------------------- pytree
    def tree_flatten(self):
        names = tuple(self._values)
        static = (self.spec, tuple(sorted(self.options.items())), self.learnable, names)
        if self.learnable:
            return tuple(self._values[n] for n in names), static
        # hashable aux data for jit's cache: nested tuples of floats
        frozen = tuple(_freeze(np.asarray(self._values[n])) for n in names)
        return (), (*static, frozen)

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        obj = object.__new__(cls)
        obj.spec, options, obj.learnable, names = aux[:4]
        obj.options = dict(options)
        values = leaves if obj.learnable else tuple(jnp.asarray(v) for v in aux[4])
        obj._values = dict(zip(names, values, strict=True))
        return obj

    def replace(self, **params: Any) -> ConditionalStrength:
        """A copy with some parameters replaced (``{name: array}``; shapes must match)."""
        unknown = sorted(set(params) - set(self._values))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; expected {sorted(self._values)}")
        leaves, aux = jax.tree_util.tree_flatten(self)
        new = jax.tree_util.tree_unflatten(aux, leaves)
        for name, value in params.items():
            value = jnp.asarray(value)
            if value.shape != self._values[name].shape:
                raise ValueError(
                    f"parameter {name} has shape {self._values[name].shape}, got {value.shape}"
                )
            new._values = {**new._values, name: value}
        return new

    @property
    def family(self) -> str:
        return self.spec.family.name

    @property
    def design(self) -> StrengthDesign:
        return self.spec.design

    def params(self) -> dict[str, jax.Array]:
        """``{name: array}`` of the parameters."""
        return dict(self._values)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    # ------------------------------------------------------------------------- covariates
    def encode(self, covariates: Any) -> EncodedCovariates:
        """Covariate rows as JAX arrays (raw rows are encoded with the design)."""
        if not isinstance(covariates, EncodedCovariates):
            covariates = self.design.encode(covariates)
        dtype = self._values["log_mean"].dtype
        return EncodedCovariates(
            jnp.asarray(covariates.level_index, dtype=jnp.int32),
            jnp.asarray(covariates.features, dtype=dtype),
        )

    def natural_params(self, covariates: Any = None) -> dict[str, jax.Array]:
        """The family's parameters per covariate row ``(n,)``; the centre (0-dim) if ``None``."""
        encoded = None if covariates is None else self.encode(covariates)
        return _cond.natural_params(OPS, self.spec, self._values, encoded)

    def group_params(self, covariates: Any) -> dict[str, jax.Array]:
        """Per-group parameters ``{name: (G,)}`` from one covariate row per group."""
        if covariates is None:
            raise ValueError("group_params needs one covariate row per group")
        return self.natural_params(covariates)

    def log_prior(self) -> jax.Array:
        """Log prior density (0-dim) of the hierarchy (see :func:`mixlogit.conditional.log_prior`)."""
        return _cond.log_prior(OPS, self.spec, self._values)

    # ------------------------------------------------------------------------- moments
    def level_moments(self) -> dict[str, dict[str, jax.Array]]:
        """``{level key: {"mean", "variance", "cv"}}`` of each pooled level."""
        if not self.design.levels:
            return {}
        moments = _cond.moments_at(
            OPS, self.spec, *_cond.level_predictors(OPS, self.spec, self._values)
        )
        return {
            key: {name: value[k] for name, value in moments.items()}
            for k, key in enumerate(self.design.level_keys)
        }

    def population_moments(self, covariates: Any = None) -> dict[str, jax.Array]:
        """Mixture moments over the given raters, or the centre's when ``covariates`` is ``None``."""
        if covariates is None:
            return _cond.moments_at(OPS, self.spec, *_cond.predictors(OPS, self.spec, self._values))
        return _cond.mixture_moments(OPS, self.spec, self.natural_params(covariates))

    @property
    def mean(self) -> jax.Array:
        return self.population_moments()["mean"]

    @property
    def variance(self) -> jax.Array:
        return self.population_moments()["variance"]

    @property
    def coefficient_of_variation(self) -> jax.Array:
        return self.population_moments()["cv"]

    def constrained_parameters(self) -> dict[str, jax.Array]:
        return self.natural_params()

    def log_values(self, covariates: Any = None) -> dict[str, float]:
        """The same log keys as the torch module's :meth:`log_values`."""
        values = {LOG_PREFIX + k: float(v) for k, v in self.population_moments(covariates).items()}
        values.update({LOG_PREFIX + k: float(v) for k, v in self.constrained_parameters().items()})
        for key, moments in self.level_moments().items():
            values[f"{LOG_PREFIX}{key}/mean"] = float(moments["mean"])
            values[f"{LOG_PREFIX}{key}/cv"] = float(moments["cv"])
        return values

    # ------------------------------------------------------------------------- marginals
    def log_marginal(self, d, *, noise=None, key=None, covariates: Any = None) -> jax.Array:
        """``log E[sigmoid(beta_i d_i)]`` elementwise (see the torch twin); ``key`` draws the
        Monte Carlo noise of ``method="mc"``."""
        return logit_marginal(
            self.spec.family,
            d,
            self.natural_params(covariates),
            noise=noise,
            key=key,
            **self.options,
        )

    def __repr__(self) -> str:
        try:
            moments = {k: float(v) for k, v in self.population_moments().items()}
            text = f"mean={moments['mean']:.6g}, cv={moments['cv']:.6g}"
        except (TypeError, jax.errors.ConcretizationTypeError):  # traced values
            text = "traced"
        return f"{type(self).__name__}(family={self.family!r}, {text})"


def _freeze(value: np.ndarray) -> Any:
    return float(value) if value.ndim == 0 else tuple(_freeze(v) for v in value)
