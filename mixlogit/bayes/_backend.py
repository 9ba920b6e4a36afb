"""What the Bayesian choice model needs from a PPL backend beyond :class:`mixlogit._ppl.PPL`.

:mod:`mixlogit.bayes.model` is written once against a :class:`ChoiceBackend`: the strength
protocol (``sample``, ``param``, ``deterministic``, ``factor``, ``Normal``, ``HalfNormal``...)
plus the choice-model ``ops`` (:func:`mixlogit._choice_ops.choice_ops`) and the members below.
The NumPyro and Pyro implementations are the thin shells :mod:`mixlogit.bayes.numpyro_model`
and :mod:`mixlogit.bayes.pyro_model`. Arrays are float64 in both.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from mixlogit._ppl import PPL

__all__ = ["ChoiceBackend"]

Array = Any
Distribution = Any


class ChoiceBackend(PPL):
    """A :class:`~mixlogit._ppl.PPL` with the choice-model extras.

    Attributes:
        ops: the backend's choice ``ops`` (a superset of the strength kernels' ``ops``).
    """

    @abstractmethod
    def array(self, value: Any) -> Array:
        """``value`` as a float64 backend array."""

    def zeros(self, shape: tuple[int, ...]) -> Array:
        return self.full(shape, 0.0, like=self.array(0.0))

    def filled(self, shape: tuple[int, ...], value: float) -> Array:
        return self.full(shape, value, like=self.array(0.0))

    @abstractmethod
    def batch(self, panel: Any) -> dict[str, Array]:
        """Device arrays ``X``, ``chosen`` (integer), ``available`` (bool), ``weights`` of a
        :class:`~mixlogit.bayes.panel.PanelArrays`."""

    @abstractmethod
    def person_plate(
        self, batch: dict[str, Array], batch_idx: Array | None, num_panels: int
    ) -> AbstractContextManager[Array]:
        """Plate over the ``B`` decision-makers of ``batch`` (of ``num_panels``), scaling their
        log densities by ``num_panels / B``; yields their indices (``arange(B)`` when
        ``batch_idx`` is None)."""

    @abstractmethod
    def broadcast_to(self, x: Array, shape: tuple[int, ...]) -> Array: ...

    @abstractmethod
    def gamma_draws(self, concentration: Array, num: int) -> Array:
        """``(num, *concentration.shape)`` reparameterised Gamma(concentration, 1) draws."""

    # Distributions.
    @abstractmethod
    def Dirichlet(self, concentration: Array) -> Distribution: ...

    @abstractmethod
    def LKJCholesky(self, dimension: int, concentration: float) -> Distribution: ...

    @abstractmethod
    def OrderedVector(self, size: int) -> Distribution:
        """Improper flat law on increasing vectors of ``size`` (its prior is added as a factor)."""

    @abstractmethod
    def StandardisedLogGamma(self, concentration: Array) -> Distribution:
        """Law of ``(log u - digamma(k)) / sqrt(trigamma(k))``, ``u ~ Gamma(k, 1)``
        (:func:`mixlogit.bayes.model.standardised_log_gamma_log_prob`)."""

    @abstractmethod
    def LogAffineGamma(
        self, concentration: Array, rate: Array, loc: Array, scale: Array
    ) -> Distribution:
        """Law of ``loc + scale * log(g)`` for ``g ~ Gamma(concentration, rate)``."""

    def to_numpy(self, value: Array) -> np.ndarray:
        return np.asarray(value)
