"""The specification of a logit model with random coefficients, shared by every route.

A :class:`ModelSpec` says which coefficient is fixed, which is random with which mixing
distribution and sign, and which random coefficients are correlated. The classical
estimators (:class:`~mixlogit.estimators.MixedLogit`, ``MultinomialLogit``) hold one as
``model.spec`` and the Bayesian route (:func:`mixlogit.bayes.fit_bayes`) reads the same
object, so a model is specified and validated once whichever way it is fitted.

Variable names (the columns of :meth:`mixlogit.data.ChoiceData.to_arrays`): ``"price"``
(generic), ``"ASC_<alt>"`` (alternative-specific constant), ``"price@<alt>"`` (enters the
utility of ``<alt>`` only).

Random coefficient ``k`` is ``sign * g(draw)``; the distributions and their two parameters
are tabulated in :mod:`mixlogit.mixing` (classical parameterisation) and
:mod:`mixlogit.bayes.model` (hierarchical parameterisation). ``sign`` only matters for the
positive distributions (lognormal, gamma, truncated normal), where ``sign=-1`` gives a strictly
negative coefficient such as a price.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "CORRELATABLE",
    "DISTRIBUTIONS",
    "NORMAL_BASED",
    "POSITIVE_DISTRIBUTIONS",
    "CoefficientSpec",
    "ModelSpec",
    "RandomCoefficient",
    "as_model_spec",
    "parameter_names",
    "parse_random",
]

#: Mixing distributions of a random coefficient.
DISTRIBUTIONS = ("normal", "lognormal", "triangular", "uniform", "truncnormal", "gamma")
#: Distributions with positive support before the sign is applied.
POSITIVE_DISTRIBUTIONS = ("lognormal", "truncnormal", "gamma")
#: Distributions that are a function of one standard normal (Gauss-Hermite nodes apply).
NORMAL_BASED = ("normal", "lognormal")
#: Distributions that can share a covariance (through their underlying normals).
CORRELATABLE = NORMAL_BASED


class RandomCoefficient(NamedTuple):
    """Mixing distribution of one random coefficient.

    Attributes:
        distribution: one of :data:`DISTRIBUTIONS`.
        sign: ``+1`` or ``-1``; the coefficient is ``sign * g(draw)``.
    """

    distribution: str
    sign: int = 1


class CoefficientSpec(NamedTuple):
    """One coefficient of the utility (one column of the choice arrays).

    Attributes:
        name: variable name.
        distribution: ``None`` for a fixed coefficient, else one of :data:`DISTRIBUTIONS`.
        sign: +1 or -1.
    """

    name: str
    distribution: str | None = None
    sign: int = 1


def parse_random(name: str, value: str | RandomCoefficient | tuple) -> RandomCoefficient:
    """A :class:`RandomCoefficient` from ``"lognormal"``, ``"-lognormal"`` (negative),
    ``("lognormal", -1)`` or a ``RandomCoefficient``; ``name`` is for the error message."""
    if isinstance(value, RandomCoefficient):
        return value
    if isinstance(value, str):
        return RandomCoefficient(value.lstrip("-+"), -1 if value.startswith("-") else 1)
    if isinstance(value, tuple) and len(value) == 2:
        return RandomCoefficient(str(value[0]), int(value[1]))
    raise ValueError(
        f"random coefficient {name!r}: expected a distribution name, '-<name>' for a negative "
        f"coefficient, (name, sign) or RandomCoefficient; got {value!r}"
    )


def parameter_names(name: str, distribution: str) -> tuple[str, str]:
    """Names of the two classical parameters of a random coefficient, e.g. ``("pf", "sd.pf")``."""
    if distribution == "gamma":
        return f"ln_shape.{name}", f"ln_scale.{name}"
    if distribution in ("triangular", "uniform"):
        return name, f"spread.{name}"
    return name, f"sd.{name}"


def _deprecated_property(old: str, new: str, convert=None):
    def getter(self):
        warnings.warn(
            f"ModelSpec.{old} is deprecated; use ModelSpec.{new}", DeprecationWarning, stacklevel=2
        )
        value = getattr(self, new)
        return value if convert is None else convert(value)

    return property(getter, doc=f"Deprecated alias of :attr:`{new}`.")


@dataclass(frozen=True)
class ModelSpec:
    """Which coefficients are fixed or random, in the column order of the choice arrays.

    Build one with :meth:`build`; the estimators do (``MixedLogit(...).spec``).

    Attributes:
        coefficients: one :class:`CoefficientSpec` per column of ``X``.
        correlated: random normal / lognormal coefficients whose underlying normals share a
            full covariance (at least two; empty for independent coefficients).
    """

    coefficients: tuple[CoefficientSpec, ...]
    correlated: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "coefficients", tuple(self.coefficients))
        object.__setattr__(self, "correlated", tuple(self.correlated))
        names = [c.name for c in self.coefficients]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate coefficient names in specification: {names}")
        for c in self.coefficients:
            if c.distribution is not None and c.distribution not in DISTRIBUTIONS:
                raise ValueError(
                    f"coefficient {c.name!r}: unknown mixing distribution {c.distribution!r}; "
                    f"expected one of {DISTRIBUTIONS}"
                )
            if c.sign not in (1, -1):
                raise ValueError(f"coefficient {c.name!r}: sign must be +1 or -1, got {c.sign!r}")
        for name in self.correlated:
            self._check_correlatable(name)
        if len(self.correlated) == 1:
            raise ValueError("correlated needs at least two coefficients")
        if len(set(self.correlated)) != len(self.correlated):
            raise ValueError(f"correlated coefficients listed twice: {list(self.correlated)}")

    def _check_correlatable(self, name: str) -> None:
        distributions = {c.name: c.distribution for c in self.coefficients}
        if distributions.get(name) is None:
            raise ValueError(f"correlated coefficient {name!r} is not a random coefficient")
        if distributions[name] not in CORRELATABLE:
            raise ValueError(
                f"correlated coefficient {name!r} has distribution {distributions[name]!r}; "
                "only normal and lognormal coefficients can be correlated (through their "
                "underlying normals)"
            )

    @classmethod
    def build(
        cls,
        fixed: Sequence[str] = (),
        random: Mapping[str, str | RandomCoefficient | tuple] | None = None,
        correlated: Sequence[str] | bool = (),
    ) -> ModelSpec:
        """Specification from names: fixed ones first, then random ones, in the order given.

        Args:
            fixed: variables with a fixed coefficient.
            random: ``{variable: distribution}``, see :func:`parse_random`.
            correlated: names of random normal/lognormal coefficients to correlate, or
                ``True`` for all of them (``False``/empty: independent; a single name
                correlates nothing).

        Example: ``ModelSpec.build(["time"], {"price": "-lognormal", "cl": "normal"})``.
        """
        fixed = tuple(str(n) for n in fixed)
        if len(set(fixed)) != len(fixed):
            raise ValueError(f"fixed variables listed twice: {list(fixed)}")
        random = {str(n): parse_random(str(n), v) for n, v in (random or {}).items()}
        overlap = sorted(set(fixed) & set(random))
        if overlap:
            raise ValueError(f"variables {overlap} are both fixed and random")
        coefficients = [CoefficientSpec(n) for n in fixed]
        coefficients += [CoefficientSpec(n, r.distribution, r.sign) for n, r in random.items()]
        if correlated is True:
            chosen = tuple(n for n, r in random.items() if r.distribution in CORRELATABLE)
        elif correlated is False or correlated is None:
            chosen = ()
        else:
            chosen = tuple(str(n) for n in correlated)
        if len(chosen) == 1:
            cls(tuple(coefficients))._check_correlatable(chosen[0])
            chosen = ()  # one coefficient: nothing to correlate
        return cls(tuple(coefficients), chosen)

    # ------------------------------------------------------------------ names
    @property
    def variables(self) -> tuple[str, ...]:
        """Every coefficient's variable, in column order."""
        return tuple(c.name for c in self.coefficients)

    @property
    def fixed(self) -> tuple[str, ...]:
        """Variables with a fixed coefficient."""
        return tuple(c.name for c in self.coefficients if c.distribution is None)

    @property
    def random(self) -> dict[str, RandomCoefficient]:
        """``{variable: RandomCoefficient}`` of the random coefficients, in column order."""
        return {
            c.name: RandomCoefficient(c.distribution, c.sign)
            for c in self.coefficients
            if c.distribution is not None
        }

    @property
    def fixed_index(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.coefficients) if c.distribution is None)

    @property
    def random_index(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.coefficients) if c.distribution is not None)

    @property
    def random_coefficients(self) -> tuple[CoefficientSpec, ...]:
        return tuple(self.coefficients[i] for i in self.random_index)

    @property
    def z_random(self) -> tuple[str, ...]:
        """Random coefficients driven by a standard-normal person draw (all but gamma)."""
        return tuple(c.name for c in self.random_coefficients if c.distribution != "gamma")

    @property
    def gamma_random(self) -> tuple[str, ...]:
        """Random coefficients with a gamma mixing distribution."""
        return tuple(c.name for c in self.random_coefficients if c.distribution == "gamma")

    @property
    def has_random(self) -> bool:
        return bool(self.random_index)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Classical parameter vector: fixed coefficients, first parameter of each random one,
        second parameter of each independent one, then the Cholesky factor of the correlated
        block row by row (``chol.<row>.<col>``)."""
        random = self.random
        names = list(self.fixed)
        names += [parameter_names(n, r.distribution)[0] for n, r in random.items()]
        names += [
            parameter_names(n, r.distribution)[1]
            for n, r in random.items()
            if n not in self.correlated
        ]
        for i, row in enumerate(self.correlated):
            names += [f"chol.{row}.{col}" for col in self.correlated[: i + 1]]
        return tuple(names)

    # Old BayesSpec names, kept for one release.
    names = _deprecated_property("names", "variables")
    fixed_names = _deprecated_property("fixed_names", "fixed")
    random_names = _deprecated_property("random_names", "random", tuple)
    z_random_names = _deprecated_property("z_random_names", "z_random")
    gamma_names = _deprecated_property("gamma_names", "gamma_random")

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """``{"fixed": [...], "random": {name: [distribution, sign]}, "correlated": [...]}``
        (requires the fixed-first column order that :meth:`build` gives)."""
        return {
            "fixed": list(self.fixed),
            "random": {n: [r.distribution, r.sign] for n, r in self.random.items()},
            "correlated": list(self.correlated),
        }

    @classmethod
    def from_dict(cls, content: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict` (extra keys such as ``"class"`` are ignored)."""
        random = {n: RandomCoefficient(v[0], int(v[1])) for n, v in content["random"].items()}
        return cls.build(content["fixed"], random, content.get("correlated") or ())

    def describe(self) -> str:
        """``fixed=[...], random={...}, correlated=[...]`` with ``-`` marking negative signs."""
        random = {n: ("-" if r.sign < 0 else "") + r.distribution for n, r in self.random.items()}
        return f"fixed={list(self.fixed)}, random={random}, correlated={list(self.correlated)}"

    def __repr__(self) -> str:
        return f"ModelSpec({self.describe()})"


def as_model_spec(model: Any) -> ModelSpec:
    """The :class:`ModelSpec` of ``model``: a ``ModelSpec``, anything holding one as ``.spec``
    (the estimators, :class:`~mixlogit.bayes.LatentClassLogit`), or an object with
    ``variables``, ``coefficients`` (``None`` or an object with ``distribution`` and ``sign``
    per variable) and ``correlated``.

    Raises:
        TypeError: ``model`` has none of these.
    """
    if isinstance(model, ModelSpec):
        return model
    if isinstance(getattr(model, "spec", None), ModelSpec):
        return model.spec
    try:
        variables = tuple(model.variables)
    except AttributeError as err:
        raise TypeError(
            f"cannot read a model specification from {type(model).__name__}: it has no "
            "'spec' or 'variables' attribute (expected MixedLogit, MultinomialLogit, "
            "LatentClassLogit or ModelSpec)"
        ) from err
    mixing = tuple(getattr(model, "coefficients", (None,) * len(variables)))
    if len(mixing) != len(variables):
        raise ValueError("model.coefficients is not aligned with model.variables")
    coefficients = tuple(
        CoefficientSpec(str(name))
        if rc is None
        else CoefficientSpec(str(name), str(rc.distribution), int(rc.sign))
        for name, rc in zip(variables, mixing, strict=True)
    )
    correlated = getattr(model, "correlated", ()) or ()
    if correlated is True:
        correlated = [c.name for c in coefficients if c.distribution in CORRELATABLE]
    return ModelSpec(coefficients, tuple(str(c) for c in correlated))
