"""Covariate-conditioned (and mean/CV-parameterised) preference strength as a JAX pytree.

The twin of :class:`mixlogit.torch.conditional.ConditionalStrength` (same constructor, names
and methods). The leaves are the parameters of :func:`mixlogit.conditional.parameter_shapes`
(``log_mean``, ``log_cv``, ...), so ``jax.grad`` / optax act on them directly; the
:class:`~mixlogit.conditional.ConditionalSpec` and options are static auxiliary data.
``learnable=False`` moves the values into the auxiliary data (invisible to gradients).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mixlogit._conditional_classes import ConditionalStrengthMixin
from mixlogit.conditional import EncodedCovariates
from mixlogit.jax._ops import OPS
from mixlogit.jax.marginals import logit_marginal

__all__ = ["ConditionalStrength"]


@jax.tree_util.register_pytree_node_class
class ConditionalStrength(ConditionalStrengthMixin):
    """A strength whose distribution depends on rater covariates (or on nothing).

    Arguments as for :class:`mixlogit._conditional_classes.ConditionalStrengthMixin`. Values are
    ``float64`` arrays when ``jax_enable_x64`` is on, ``float32`` otherwise.
    """

    ops = OPS
    _values: dict[str, jax.Array]

    def _store(self, name: str, value: np.ndarray) -> None:
        self._values = {**self.__dict__.get("_values", {}), name: jnp.asarray(value)}

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
            text = self._moment_text()
        except (TypeError, jax.errors.ConcretizationTypeError):  # traced values
            text = "traced"
        return f"{type(self).__name__}(family={self.family!r}, {text})"


def _freeze(value: np.ndarray) -> Any:
    return float(value) if value.ndim == 0 else tuple(_freeze(v) for v in value)
