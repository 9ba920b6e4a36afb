"""Preference-strength distributions as JAX pytrees.

Same names and semantics as :mod:`mixlogit.torch.strength`. Each object's leaves are its
*unconstrained* parameters (``raw_*``, positive values through softplus), so an optimiser
(optax, ``jax.grad``) acts on them directly; construct with the natural parameters:
``GammaStrength(shape=2.0, rate=16.7)``. ``learnable=False`` keeps the parameters out of the
leaves (they become static auxiliary data, invisible to gradients).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from mixlogit import _kernels
from mixlogit._series import default_num_terms
from mixlogit.jax._ops import OPS, as_arrays, float_bits
from mixlogit.jax.marginals import (
    gamma_logit_marginal,
    lognormal_logit_marginal,
    point_mass_logit_marginal,
)

__all__ = ["FixedStrength", "GammaStrength", "LogNormalStrength", "inverse_softplus"]


def inverse_softplus(x: float) -> float:
    """``y`` with ``softplus(y) = x`` for ``x > 0``."""
    if not x > 0 or not math.isfinite(x):
        raise ValueError(f"expected a positive finite value, got {x!r}")
    return x + math.log(-math.expm1(-x))


def _check_positive(name: str, value) -> float:
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _signed(d, y):
    d = jnp.asarray(d)
    return jnp.where(jnp.asarray(y) > 0.5, d, -d)


class _Strength:
    """Pytree plumbing shared by the strength classes: ``_raw`` leaves, ``_static`` aux data."""

    _raw_names: tuple[str, ...] = ()
    _static_names: tuple[str, ...] = ()
    family = ""

    def tree_flatten(self):
        if self.learnable:
            leaves = tuple(getattr(self, n) for n in self._raw_names)
            aux = (True, tuple(getattr(self, n) for n in self._static_names))
            return leaves, aux
        aux = (
            False,
            tuple(getattr(self, n) for n in self._static_names),
            # floats, not arrays: aux data must be hashable for jit's cache
            tuple(float(getattr(self, n)) for n in self._raw_names),
        )
        return (), aux

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        obj = object.__new__(cls)
        obj.learnable = aux[0]
        for name, value in zip(cls._static_names, aux[1], strict=True):
            setattr(obj, name, value)
        raw = leaves if aux[0] else tuple(jnp.asarray(v) for v in aux[2])
        for name, value in zip(cls._raw_names, raw, strict=True):
            setattr(obj, name, value)
        return obj

    @property
    def coefficient_of_variation(self):
        return jnp.sqrt(self.variance) / self.mean

    def __repr__(self) -> str:
        try:
            params = ", ".join(
                f"{k}={float(v):.6g}" for k, v in self.constrained_parameters().items()
            )
        except TypeError:  # traced values
            params = "traced"
        return f"{type(self).__name__}({params})"


@jax.tree_util.register_pytree_node_class
class GammaStrength(_Strength):
    """``beta ~ Gamma(shape, rate)`` with the exact logit marginal."""

    _raw_names = ("raw_shape", "raw_rate")
    _static_names = ("num_terms",)
    family = "gamma"

    def __init__(
        self,
        shape: float = 2.0,
        rate: float = 16.7,
        *,
        learnable: bool = True,
        num_terms: int | None = None,
    ) -> None:
        self.raw_shape = jnp.asarray(inverse_softplus(_check_positive("shape", shape)))
        self.raw_rate = jnp.asarray(inverse_softplus(_check_positive("rate", rate)))
        self.learnable = learnable
        self.num_terms = num_terms

    @property
    def shape(self):
        return jax.nn.softplus(self.raw_shape)

    @property
    def rate(self):
        return jax.nn.softplus(self.raw_rate)

    @property
    def mean(self):
        return self.shape / self.rate

    @property
    def variance(self):
        return self.shape / self.rate**2

    @property
    def coefficient_of_variation(self):
        return jax.lax.rsqrt(self.shape)

    def constrained_parameters(self) -> dict[str, Any]:
        return {"shape": self.shape, "rate": self.rate}

    def log_marginal(self, d, *, noise=None, key=None):
        """``log E[sigmoid(beta d)]`` elementwise (exact)."""
        return gamma_logit_marginal(d, self.shape, self.rate, num_terms=self.num_terms)

    def sample(self, key, sample_shape=()):
        """Draws of ``beta`` with shape ``sample_shape`` (reparameterised through ``jax.random.gamma``)."""
        return jax.random.gamma(key, self.shape, shape=tuple(sample_shape)) / self.rate

    def conditional_moments(self, d, y):
        """Posterior mean and variance of ``beta`` given choice ``y`` at margin ``d`` (exact)."""
        (signed, shape, rate), dtype = as_arrays(_signed(d, y), self.shape, self.rate)
        n = self.num_terms or default_num_terms(float_bits(signed.dtype))
        mean, var = _kernels.gamma_conditional_moments(OPS, signed, shape, rate, n)
        return mean.astype(dtype), var.astype(dtype)


@jax.tree_util.register_pytree_node_class
class LogNormalStrength(_Strength):
    """``beta = exp(loc + scale * eps)``; ``method`` ``"mc"`` (needs ``key``) or ``"quadrature"``."""

    _raw_names = ("loc", "raw_scale")
    _static_names = ("method", "num_samples", "num_points")
    family = "lognormal"

    def __init__(
        self,
        loc: float = -2.3,
        scale: float = 0.6,
        *,
        learnable: bool = True,
        method: str = "mc",
        num_samples: int = 16,
        num_points: int = 16,
    ) -> None:
        if method not in ("mc", "quadrature"):
            raise ValueError(f"method must be 'mc' or 'quadrature', got {method!r}")
        if not math.isfinite(float(loc)):
            raise ValueError(f"loc must be finite, got {loc!r}")
        self.loc = jnp.asarray(float(loc))
        self.raw_scale = jnp.asarray(inverse_softplus(_check_positive("scale", scale)))
        self.learnable = learnable
        self.method = method
        self.num_samples = num_samples
        self.num_points = num_points

    @property
    def scale(self):
        return jax.nn.softplus(self.raw_scale)

    @property
    def mean(self):
        return jnp.exp(self.loc + 0.5 * self.scale**2)

    @property
    def variance(self):
        s2 = self.scale**2
        return jnp.expm1(s2) * jnp.exp(2.0 * self.loc + s2)

    @property
    def coefficient_of_variation(self):
        return jnp.sqrt(jnp.expm1(self.scale**2))

    def constrained_parameters(self) -> dict[str, Any]:
        return {"loc": self.loc, "scale": self.scale}

    def log_marginal(self, d, *, noise=None, key=None):
        """``log E[sigmoid(beta d)]``; ``"mc"`` draws ``num_samples`` normals per element with ``key``."""
        return lognormal_logit_marginal(
            d,
            self.loc,
            self.scale,
            method=self.method if noise is None else "mc",
            num_points=self.num_points,
            num_samples=self.num_samples,
            noise=noise,
            key=key,
        )

    def sample(self, key, sample_shape=()):
        return jnp.exp(self.loc + self.scale * jax.random.normal(key, tuple(sample_shape)))

    def conditional_moments(self, d, y):
        (signed, loc, scale), dtype = as_arrays(_signed(d, y), self.loc, self.scale)
        mean, var = _kernels.lognormal_conditional_moments(OPS, signed, loc, scale, self.num_points)
        return mean.astype(dtype), var.astype(dtype)


@jax.tree_util.register_pytree_node_class
class FixedStrength(_Strength):
    """A point mass at ``beta`` (plain DPO / plain logit); never learnable."""

    _raw_names = ("beta",)
    _static_names = ()
    family = "fixed"

    def __init__(self, beta: float = 0.1) -> None:
        self.beta = jnp.asarray(_check_positive("beta", beta))
        self.learnable = False

    @property
    def mean(self):
        return self.beta

    @property
    def variance(self):
        return jnp.zeros_like(self.beta)

    @property
    def coefficient_of_variation(self):
        return jnp.zeros_like(self.beta)

    def constrained_parameters(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def log_marginal(self, d, *, noise=None, key=None):
        return point_mass_logit_marginal(d, self.beta)

    def sample(self, key, sample_shape=()):
        return jnp.broadcast_to(self.beta, tuple(sample_shape))

    def conditional_moments(self, d, y):
        d = jnp.asarray(d)
        return jnp.broadcast_to(self.beta, d.shape).astype(d.dtype), jnp.zeros_like(d)
