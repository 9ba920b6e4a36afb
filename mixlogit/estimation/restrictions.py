"""Fixed parameters and bounds of a classical fit: which parameters the optimiser moves.

A fixed parameter keeps its value: it is a normalisation (an alternative-specific constant
at 0, the mean of an error component at 0) or an offset (a variable whose coefficient is
fixed at 1). A bounded parameter moves inside ``[lower, upper]`` (L-BFGS-B). The optimiser
works on the free parameters only; the results keep the full vector, the fixed entries with
zero variance (so delta-method quantities treat them as the constants they are) and no
standard error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Restrictions", "parse_restrictions"]


class Restrictions(NamedTuple):
    """Which of the ``P`` parameters are fixed, and the bounds of the others.

    Attributes:
        names: ``(P,)`` parameter names.
        fixed_mask: ``(P,)`` True where the parameter keeps its value in ``values``.
        values: ``(P,)`` the fixed values (NaN where free).
        lower, upper: ``(P,)`` bounds (``-inf`` / ``inf`` where unbounded; NaN where fixed).
    """

    names: tuple[str, ...]
    fixed_mask: np.ndarray
    values: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def none(cls, names: Sequence[str]) -> Restrictions:
        """Every parameter free and unbounded."""
        return parse_restrictions(names)

    @property
    def free(self) -> np.ndarray:
        """``(F,)`` positions of the free parameters."""
        return np.flatnonzero(~self.fixed_mask)

    @property
    def has_fixed(self) -> bool:
        return bool(self.fixed_mask.any())

    @property
    def has_bounds(self) -> bool:
        free = self.free
        return bool(np.isfinite(self.lower[free]).any() or np.isfinite(self.upper[free]).any())

    @property
    def active(self) -> bool:
        """Anything fixed or bounded (else the optimiser runs as without restrictions)."""
        return self.has_fixed or self.has_bounds

    def expand(self, free_values: np.ndarray) -> np.ndarray:
        """The full ``(P,)`` vector from the ``(F,)`` free values."""
        theta = self.values.copy()
        theta[self.free] = free_values
        return theta

    def restrict(self, theta: np.ndarray) -> np.ndarray:
        """The ``(F,)`` free entries of a full ``(P,)`` vector."""
        return np.asarray(theta, dtype=np.float64)[self.free]

    def impose(self, theta: np.ndarray) -> np.ndarray:
        """``theta`` with the fixed values set and the free ones clipped into their bounds."""
        theta = np.asarray(theta, dtype=np.float64)
        free = self.free
        return self.expand(np.clip(theta[free], self.lower[free], self.upper[free]))

    def at_bound(self, theta: np.ndarray, tolerance: float = 1e-8) -> list[str]:
        """Names of the free parameters of ``theta`` within ``tolerance`` (relative) of a bound."""
        names = []
        for i in self.free:
            for bound in (self.lower[i], self.upper[i]):
                if np.isfinite(bound) and abs(theta[i] - bound) <= tolerance * max(1.0, abs(bound)):
                    names.append(self.names[i])
        return names

    def fixed_parameters(self) -> dict[str, float]:
        """``{name: value}`` of the fixed parameters."""
        return {self.names[i]: float(self.values[i]) for i in np.flatnonzero(self.fixed_mask)}

    def bounds(self) -> dict[str, tuple[float | None, float | None]]:
        """``{name: (lower, upper)}`` of the bounded free parameters (None: unbounded side)."""
        out = {}
        for i in self.free:
            lo, hi = self.lower[i], self.upper[i]
            if np.isfinite(lo) or np.isfinite(hi):
                out[self.names[i]] = (
                    float(lo) if np.isfinite(lo) else None,
                    float(hi) if np.isfinite(hi) else None,
                )
        return out


def parse_restrictions(
    names: Sequence[str],
    fix: Mapping[str, float] | None = None,
    bounds: Mapping[str, Any] | None = None,
) -> Restrictions:
    """:class:`Restrictions` from ``fix={name: value}`` and ``bounds={name: (lower, upper)}``.

    ``None`` for a bound (or an infinite one) leaves that side open.

    Raises:
        ValueError: a name that is not a parameter (the message lists them), a value that is
            not a finite number, a bound pair with ``lower >= upper``, a parameter both fixed
            and bounded, or every parameter fixed.
    """
    names = tuple(str(n) for n in names)
    size = len(names)
    position = {n: i for i, n in enumerate(names)}
    fixed_mask = np.zeros(size, dtype=bool)
    values = np.full(size, np.nan)
    lower = np.full(size, -np.inf)
    upper = np.full(size, np.inf)
    for argument, given in (("fix", fix), ("bounds", bounds)):
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise TypeError(f"{argument} must be a mapping from parameter name; got {given!r}")
        unknown = sorted(set(map(str, given)) - set(names))
        if unknown:
            raise ValueError(f"{argument}: {unknown} are not parameters of the model {list(names)}")
    for name, value in (fix or {}).items():
        number = _finite(value, f"fix[{name!r}]")
        fixed_mask[position[str(name)]] = True
        values[position[str(name)]] = number
    for name, pair in (bounds or {}).items():
        name = str(name)
        if name in (fix or {}):
            raise ValueError(f"parameter {name!r} is both fixed and bounded")
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise ValueError(f"bounds[{name!r}] must be a pair (lower, upper); got {pair!r}")
        lo = -math.inf if pair[0] is None else _number(pair[0], f"bounds[{name!r}] lower")
        hi = math.inf if pair[1] is None else _number(pair[1], f"bounds[{name!r}] upper")
        if not lo < hi:
            raise ValueError(f"bounds[{name!r}]: lower {lo} must be below upper {hi}")
        lower[position[name]], upper[position[name]] = lo, hi
    if size and fixed_mask.all():
        raise ValueError("every parameter is fixed: nothing is left to estimate")
    lower[fixed_mask] = upper[fixed_mask] = np.nan
    return Restrictions(names, fixed_mask, values, lower, upper)


def _number(value: Any, label: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be a number; got {value!r}") from None
    if math.isnan(number):
        raise ValueError(f"{label} is NaN")
    return number


def _finite(value: Any, label: str) -> float:
    number = _number(value, label)
    if not math.isfinite(number):
        raise ValueError(f"{label} must be finite; got {value!r}")
    return number
