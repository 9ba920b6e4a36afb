"""The probabilistic-programming primitives a model needs, written once for Pyro and NumPyro.

Models written against a :class:`PPL` object run unchanged in both backends, the way the
kernels of :mod:`mixlogit._kernels` run on any ``ops``:

>>> def model(ppl, d, y):
...     rate = ppl.param("rate", ppl.asarray(2.0, like=d), ppl.positive)
...     with ppl.plate("observations", d.shape[0]) as idx:
...         beta = ppl.sample("beta", ppl.Gamma(2.0, rate))
...         ppl.sample("y", ppl.Bernoulli(logits=beta * d[idx]), obs=y[idx])

The implementations are :data:`mixlogit.torch._ppl.PPL` (Pyro) and
:data:`mixlogit.jax._ppl.PPL` (NumPyro); each also carries the backend's array ``ops``.
Distributions are the backend's own objects (``.log_prob``, ``.sample``, ``.to_event``, ...),
so a model may use their methods freely; only construction and the effectful primitives go
through this protocol. Site names, shapes and semantics are the backends' (``plate`` yields the
indices of the (sub)sample; ``param`` returns the constrained value).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

Array = Any
Distribution = Any
Constraint = Any

__all__ = ["PPL"]

#: The module of each library's ``MarginalLogitBernoulli``.
_MARGINAL_DISTRIBUTIONS = {
    "pyro": "mixlogit.torch.distributions",
    "numpyro": "mixlogit.jax.distributions",
}


class PPL(ABC):
    """Effectful primitives, distributions and constraints of one backend.

    Pyro and NumPyro name their primitives alike, so a backend sets :attr:`ops` and
    :attr:`library` and implements only :meth:`param`, :meth:`scale`, :meth:`asarray` and
    :meth:`full`.

    Attributes:
        name: ``"pyro"`` or ``"numpyro"``, the name of :attr:`library`.
        ops: the backend's array primitives for :mod:`mixlogit._kernels` and the families.
        library: the PPL module (``pyro``, ``numpyro``), with its ``distributions``.
        positive, real: the backend's constraints of those names.
    """

    ops: Any
    library: Any

    @property
    def name(self) -> str:
        return self.library.__name__

    @property
    def positive(self) -> Constraint:
        return self.library.distributions.constraints.positive

    @property
    def real(self) -> Constraint:
        return self.library.distributions.constraints.real

    def constraint(self, kind: str) -> Constraint:
        """The constraint named by a family's ``constraints`` entry (``"positive"``, ``"real"``)."""
        if kind not in ("positive", "real"):
            raise ValueError(f"constraint must be 'positive' or 'real', got {kind!r}")
        return getattr(self, kind)

    # Effectful primitives.
    def sample(self, name: str, dist: Distribution, obs: Array | None = None) -> Array:
        """A random site (observed when ``obs`` is given)."""
        return self.library.sample(name, dist, obs=obs)

    @abstractmethod
    def param(self, name: str, init: Array, constraint: Constraint) -> Array:
        """A learnable site started at ``init``; returns its constrained value.

        ``init`` is an array, or a function of no arguments returning one (called only when
        the site is first created, where the backend allows: an ``(N,)`` start need not be
        rebuilt on every step).
        """

    def plate(
        self, name: str, size: int, subsample_size: int | None = None
    ) -> AbstractContextManager[Array]:
        """Conditional independence over ``size`` items; ``with`` yields the (sub)sample indices."""
        return self.library.plate(name, size, subsample_size=subsample_size)

    def deterministic(self, name: str, value: Array) -> Array:
        """Record ``value`` as site ``name`` (kept in traces and posterior samples)."""
        return self.library.deterministic(name, value)

    def factor(self, name: str, log_factor: Array) -> None:
        """Add ``log_factor`` to the model's log density."""
        self.library.factor(name, log_factor)

    @abstractmethod
    def scale(self, factor: float) -> AbstractContextManager[None]:
        """Multiply the log densities of the sites inside by ``factor`` (subsampled panels)."""

    # Distributions.
    def Gamma(self, concentration: Array, rate: Array) -> Distribution:
        return self.library.distributions.Gamma(concentration, rate)

    def LogNormal(self, loc: Array, scale: Array) -> Distribution:
        return self.library.distributions.LogNormal(loc, scale)

    def Normal(self, loc: Array, scale: Array) -> Distribution:
        return self.library.distributions.Normal(loc, scale)

    def HalfNormal(self, scale: Array) -> Distribution:
        return self.library.distributions.HalfNormal(scale)

    def Bernoulli(self, *, logits: Array) -> Distribution:
        return self.library.distributions.Bernoulli(logits=logits)

    def Delta(self, value: Array) -> Distribution:
        return self.library.distributions.Delta(value)

    def MarginalLogitBernoulli(
        self, family: Any, d: Array, params: Mapping[str, Array], **options: Any
    ) -> Distribution:
        """``y ~ Bernoulli(E[sigmoid(beta d)])`` with ``beta`` of strength ``family``
        (a name or :class:`~mixlogit.families.StrengthFamily`) integrated out;
        ``options`` as for the family's ``log_marginal`` (deterministic methods only)."""
        # Imported when first asked for: the distributions module imports this backend.
        module = importlib.import_module(_MARGINAL_DISTRIBUTIONS[self.name])
        return module.MarginalLogitBernoulli(family, d, params, **options)

    # Arrays.
    @abstractmethod
    def asarray(self, value: Any, like: Array | None = None) -> Array:
        """``value`` as a floating backend array (dtype and device of ``like`` when given)."""

    @abstractmethod
    def full(self, shape: tuple[int, ...], value: float, like: Array) -> Array:
        """An array of ``shape`` filled with ``value``, dtype and device of ``like``."""
