"""Fixed parameters, linear constraints and bounds of a classical fit: what the optimiser moves.

A fixed parameter keeps its value: it is a normalisation (an alternative-specific constant
at 0, the mean of an error component at 0) or an offset (a variable whose coefficient is
fixed at 1). A linear equality constraint (``"ASC_1 = ASC_3"``, ``"time = 2 * cost"``,
``({"b1": 1, "b2": 1}, 1.0)``) makes one parameter a function of the others: each constraint
picks a *dependent* parameter (the last one, in parameter order, among those with the largest
coefficient after the earlier constraints are substituted), so the parameters are
``theta = offset + basis @ phi`` over the ``F`` free ones ``phi``. A bounded parameter moves
inside ``[lower, upper]`` (L-BFGS-B). The optimiser works on ``phi``; the results keep the
full vector, its covariance ``basis @ cov(phi) @ basis.T`` (zero for the fixed entries, so
delta-method quantities treat them as the constants they are, and the dependent ones their
implied variance), and no standard error for a fixed parameter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Restrictions", "parse_constraint", "parse_restrictions"]

#: A linear constraint as given: ``"a = 2 * b"`` or ``({name: coefficient}, right-hand side)``.
Constraint = str | tuple[Mapping[str, float], float]


class Restrictions(NamedTuple):
    """Which of the ``P`` parameters are fixed, and the bounds of the others.

    Attributes:
        names: ``(P,)`` parameter names.
        fixed_mask: ``(P,)`` True where the parameter keeps its value in ``values``.
        values: ``(P,)`` the fixed values (NaN where free).
        lower, upper: ``(P,)`` bounds (``-inf`` / ``inf`` where unbounded; NaN where fixed).
        constraints: the linear constraints as ``({name: coefficient}, rhs)`` rows.
        dependent_mask: ``(P,)`` True for a parameter a constraint determines.
        basis, offset: ``(P, F)`` and ``(P,)``: ``theta = offset + basis @ phi``; ``None``
            without constraints (then ``phi`` is ``theta[free]``).
    """

    names: tuple[str, ...]
    fixed_mask: np.ndarray
    values: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    constraints: tuple[tuple[dict[str, float], float], ...] = ()
    dependent_mask: np.ndarray | None = None
    basis: np.ndarray | None = None
    offset: np.ndarray | None = None

    @classmethod
    def none(cls, names: Sequence[str]) -> Restrictions:
        """Every parameter free and unbounded."""
        return parse_restrictions(names)

    @property
    def free(self) -> np.ndarray:
        """``(F,)`` positions of the free parameters (neither fixed nor dependent)."""
        held = (
            self.fixed_mask
            if self.dependent_mask is None
            else self.fixed_mask | self.dependent_mask
        )
        return np.flatnonzero(~held)

    @property
    def has_fixed(self) -> bool:
        return bool(self.fixed_mask.any())

    @property
    def has_constraints(self) -> bool:
        return bool(self.constraints)

    def free_basis(self) -> np.ndarray:
        """``(P, F)``: ``d theta / d phi`` (columns of the identity without constraints)."""
        if self.basis is not None:
            return self.basis
        return np.eye(len(self.names))[:, self.free]

    def project(self, gradient: np.ndarray) -> np.ndarray:
        """``(F,)`` gradient in ``phi`` of a ``(P,)`` gradient in ``theta`` (chain rule); also
        ``(U, P) -> (U, F)`` for per-unit scores."""
        gradient = np.asarray(gradient, dtype=np.float64)
        if self.basis is None:
            return gradient[..., self.free]
        return gradient @ self.basis

    def embed(self, matrix: np.ndarray) -> np.ndarray:
        """``(P, P)`` covariance ``basis @ matrix @ basis.T`` of a ``(F, F)`` one of ``phi``
        (zero rows and columns for the fixed parameters)."""
        if self.basis is None:
            full = np.zeros((len(self.names),) * 2)
            full[np.ix_(self.free, self.free)] = matrix
            return full
        return self.basis @ matrix @ self.basis.T

    def embed_hessian(self, block: np.ndarray) -> np.ndarray:
        """A ``(P, P)`` matrix ``H`` with ``basis.T @ H @ basis`` the ``(F, F)`` Hessian
        ``block`` of ``phi`` (:meth:`free_hessian` reads it back)."""
        if self.basis is None:
            return self.embed(block)
        inverse = np.linalg.pinv(self.basis)  # (F, P), inverse @ basis = I
        return inverse.T @ block @ inverse

    def free_hessian(self, hessian: np.ndarray) -> np.ndarray:
        """``(F, F)`` Hessian of ``phi`` from a ``(P, P)`` one of ``theta``."""
        if self.basis is None:
            return hessian[np.ix_(self.free, self.free)]
        return self.basis.T @ hessian @ self.basis

    @property
    def has_bounds(self) -> bool:
        free = self.free
        return bool(np.isfinite(self.lower[free]).any() or np.isfinite(self.upper[free]).any())

    @property
    def active(self) -> bool:
        """Anything fixed, constrained or bounded (else the optimiser runs as without)."""
        return self.has_fixed or self.has_bounds or self.has_constraints

    @property
    def num_estimated(self) -> int:
        """``F``: the parameters the optimiser moves."""
        return len(self.free)

    def expand(self, free_values: np.ndarray) -> np.ndarray:
        """The full ``(P,)`` vector from the ``(F,)`` free values."""
        if self.basis is not None:
            return self.offset + self.basis @ np.asarray(free_values, dtype=np.float64)
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

    def constraint_texts(self) -> list[str]:
        """The constraints as equations, e.g. ``"ASC_1 - ASC_3 = 0"``."""
        return [_equation(row, rhs) for row, rhs in self.constraints]

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
    constraints: Sequence[Constraint] | None = None,
) -> Restrictions:
    """:class:`Restrictions` from ``fix={name: value}``, ``bounds={name: (lower, upper)}``
    and linear equality ``constraints`` (:func:`parse_constraint`).

    ``None`` for a bound (or an infinite one) leaves that side open.

    Raises:
        ValueError: a name that is not a parameter (the message lists them), a value that is
            not a finite number, a bound pair with ``lower >= upper``, a parameter both fixed
            and bounded, every parameter fixed, a constraint that is malformed, redundant or
            inconsistent (naming it), or a bound on a parameter a constraint determines.
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
    if not constraints:
        return Restrictions(names, fixed_mask, values, lower, upper)
    if isinstance(constraints, str):
        constraints = [constraints]
    rows = tuple(parse_constraint(c, names) for c in constraints)
    dependent_mask, basis, offset = _constraint_basis(rows, names, fixed_mask, values)
    bounded = [
        names[i]
        for i in np.flatnonzero(dependent_mask)
        if np.isfinite(lower[i]) or np.isfinite(upper[i])
    ]
    if bounded:
        raise ValueError(
            f"parameters {bounded} are bounded and determined by a constraint: bound a free "
            "parameter instead (or write the constraint so that another one is determined)"
        )
    if not (~(fixed_mask | dependent_mask)).any():
        raise ValueError("the constraints and fixed values leave no parameter to estimate")
    return Restrictions(
        names, fixed_mask, values, lower, upper, rows, dependent_mask, basis, offset
    )


_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][\w.:@]*)|(?P<op>[-+*=]))"
)


def parse_constraint(
    constraint: Constraint, names: Sequence[str]
) -> tuple[dict[str, float], float]:
    """``({name: coefficient}, rhs)`` of a linear equality ``sum_k c_k theta_k = rhs``.

    ``constraint`` is a string such as ``"ASC_1 = ASC_3"``, ``"time = 2 * cost"`` or
    ``"b1 + b2 = 1"`` (numbers and parameter names joined by ``+``, ``-``, ``*``; one ``=``),
    or a pair ``({name: coefficient}, rhs)``.

    Raises:
        ValueError: naming the constraint and what is wrong (an unknown name, a term that is
            not linear, no or two ``=``, no parameter).
    """
    known = set(names)
    if isinstance(constraint, str):
        sides = constraint.split("=")
        if len(sides) != 2:
            raise ValueError(f"constraint {constraint!r} must have one '='")
        row: dict[str, float] = {}
        rhs = 0.0
        for side, sign in zip(sides, (1.0, -1.0), strict=True):
            for name, coefficient in _linear_terms(side, constraint):
                if name is None:
                    rhs -= sign * coefficient
                else:
                    row[name] = row.get(name, 0.0) + sign * coefficient
    else:
        try:
            mapping, rhs = constraint
            row = {str(k): float(v) for k, v in dict(mapping).items()}
            rhs = float(rhs)
        except (TypeError, ValueError):
            raise ValueError(
                f"constraint {constraint!r}: expected a string such as 'a = 2 * b' or a pair "
                "({name: coefficient}, right-hand side)"
            ) from None
    unknown = sorted(set(row) - known)
    if unknown:
        raise ValueError(
            f"constraint {constraint!r}: {unknown} are not parameters of the model {list(names)}"
        )
    row = {n: c for n, c in row.items() if c != 0.0}
    if not row:
        raise ValueError(f"constraint {constraint!r} involves no parameter")
    if not all(math.isfinite(c) for c in row.values()) or not math.isfinite(rhs):
        raise ValueError(f"constraint {constraint!r} has a coefficient that is not finite")
    return row, rhs


def _linear_terms(side: str, constraint: str) -> list[tuple[str | None, float]]:
    """``[(name or None, coefficient)]`` of one side of an equation (None: a constant)."""
    terms: list[tuple[str | None, float]] = []
    position, sign, factor, name, expecting = 0, 1.0, 1.0, None, True
    side = side.strip()
    if not side:
        raise ValueError(f"constraint {constraint!r} has an empty side")

    def close() -> None:
        if expecting:
            raise ValueError(f"constraint {constraint!r}: a term is missing near {side!r}")
        terms.append((name, sign * factor))

    while position < len(side):
        match = _TOKEN.match(side, position)
        if match is None or match.end() == position:
            raise ValueError(f"constraint {constraint!r}: cannot read {side[position:]!r}")
        position = match.end()
        if match.group("number") is not None:
            factor *= float(match.group("number"))
            expecting = False
        elif match.group("name") is not None:
            if name is not None:
                raise ValueError(f"constraint {constraint!r} is not linear: {side!r}")
            name, expecting = match.group("name"), False
        elif match.group("op") in "+-":
            if not expecting:
                close()
                sign, factor, name, expecting = 1.0, 1.0, None, True
            if match.group("op") == "-":
                sign = -sign
        elif match.group("op") == "*":
            if expecting:
                raise ValueError(f"constraint {constraint!r}: '*' without a left operand")
            expecting = True
    close()
    return terms


def _constraint_basis(
    rows: Sequence[tuple[dict[str, float], float]],
    names: Sequence[str],
    fixed_mask: np.ndarray,
    values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dependent mask ``(P,)``, basis ``(P, F)`` and offset ``(P,)`` of ``theta = offset +
    basis @ phi`` by Gauss-Jordan elimination of the constraints (fixed values substituted)."""
    size = len(names)
    position = {n: i for i, n in enumerate(names)}
    matrix = np.zeros((len(rows), size))
    rhs = np.zeros(len(rows))
    for r, (row, value) in enumerate(rows):
        for name, coefficient in row.items():
            matrix[r, position[name]] = coefficient
        rhs[r] = value
    fixed_values = np.where(fixed_mask, values, 0.0)
    rhs = rhs - matrix[:, fixed_mask] @ fixed_values[fixed_mask]
    matrix[:, fixed_mask] = 0.0
    pivots: list[int] = []
    for r in range(len(rows)):
        for q, column in enumerate(pivots):
            rhs[r] -= matrix[r, column] * rhs[q]
            matrix[r] -= matrix[r, column] * matrix[q]
        candidates = np.abs(matrix[r])
        candidates[pivots] = 0.0
        scale = max(1.0, *(abs(c) for c in rows[r][0].values()))
        if candidates.max(initial=0.0) <= 1e-12 * scale:
            kind = "is implied by" if abs(rhs[r]) <= 1e-12 * scale else "contradicts"
            raise ValueError(
                f"constraint {_equation(*rows[r])!r} {kind} the fixed values and the constraints "
                "before it"
            )
        # the last of the largest coefficients: "a = b" determines b from a
        column = int(size - 1 - np.argmax(candidates[::-1] >= candidates.max() * (1 - 1e-12)))
        rhs[r] /= matrix[r, column]
        matrix[r] /= matrix[r, column]
        for q in range(r):  # Gauss-Jordan: earlier dependents in terms of free parameters only
            rhs[q] -= matrix[q, column] * rhs[r]
            matrix[q] -= matrix[q, column] * matrix[r]
        pivots.append(column)
    dependent_mask = np.zeros(size, dtype=bool)
    dependent_mask[pivots] = True
    free = np.flatnonzero(~(fixed_mask | dependent_mask))
    basis = np.zeros((size, len(free)))
    basis[free, np.arange(len(free))] = 1.0
    offset = fixed_values.copy()
    for r, column in enumerate(pivots):
        basis[column] = -matrix[r, free]
        offset[column] = rhs[r]
    return dependent_mask, basis, offset


def _equation(row: Mapping[str, float], rhs: float) -> str:
    """``"a - 2 b = 0"`` style text of a constraint row."""
    text = ""
    for name, coefficient in row.items():
        sign = "-" if coefficient < 0 else "+"
        size = abs(coefficient)
        term = name if size == 1.0 else f"{size:g} * {name}"
        text += f" {sign} {term}" if text else (f"-{term}" if sign == "-" else term)
    return f"{text} = {rhs:g}"


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
