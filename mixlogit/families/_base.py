"""The record every preference-strength family fills in: data plus pure functions.

A family is a :class:`StrengthFamily`: its parameter names, their constraints, MixDPO's
default values, and pure functions of an ``ops`` object (see :mod:`mixlogit._kernels`) and a
``params`` mapping ``{name: array}``. Every consumer (torch modules, JAX pytrees, Pyro and
NumPyro distributions, the trainer's config and logs, the analysis converters, the data
generators) reads the family from :func:`mixlogit.families.get_family` instead of
dispatching on its name, so adding a family is one file.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

Array = Any
Params = Mapping[str, Array]

#: The prefix of every strength quantity in training logs (``strength/mean``, ``strength/shape``).
LOG_PREFIX = "strength/"
#: Prefix of the same values after the end-of-training refit of the strength (alignment's
#: ``MixDPOTrainer.refit_strength``), logged once at the last step.
REFIT_LOG_PREFIX = "strength_refit/"

#: The fields of :class:`StrengthFamily` that are functions (see :meth:`StrengthFamily.from_module`).
FUNCTION_FIELDS = (
    "mean",
    "variance",
    "cv",
    "from_mean_cv",
    "log_marginal",
    "conditional_moments",
    "scipy",
    "distribution",
)


def inverse_softplus(x: float) -> float:
    """``y`` with ``softplus(y) = log(1 + e^y) = x`` for ``x > 0``, stable for large and small ``x``.

    The backends store a positive parameter as this unconstrained value (``raw_<name>``).
    """
    if not x > 0 or not math.isfinite(x):
        raise ValueError(f"expected a positive finite value, got {x!r}")
    return x + math.log(-math.expm1(-x))


@dataclass(frozen=True)
class StrengthFamily:
    """One family of distributions of the preference strength ``beta > 0``.

    Attributes:
        name: registry key (``"gamma"``, ``"lognormal"``, ``"point_mass"``).
        parameters: natural parameter names in the order the family takes them.
        constraints: ``{parameter: "positive" | "real"}``.
        defaults: MixDPO's initial values (arXiv 2601.06180), mean ~0.12 for both random families.
        learnable: whether the parameters can be trained (a point mass cannot).
        mean, variance, cv: ``f(ops, params) -> array``, the moments of ``beta``.
        from_mean_cv: ``f(ops, mean, cv) -> params``, moment matching.
        log_marginal: ``f(ops, d, params, **options) -> log E[sigmoid(beta d)]`` (inputs broadcast).
        conditional_moments: ``f(ops, signed_d, params, **options) -> (mean, variance)`` of
            ``beta`` given one choice, ``signed_d = d`` for ``y = 1`` and ``-d`` for ``y = 0``.
        scipy: ``f(params) -> frozen scipy.stats distribution`` (``None`` for a point mass),
            for references and plots.
        distribution: ``f(ppl, params) -> distribution of beta`` built with a
            :class:`mixlogit._ppl.PPL` (Pyro or NumPyro): priors, guides and sampling.
        options: keyword options of ``log_marginal`` / ``conditional_moments`` with their
            defaults (e.g. ``num_terms``, ``method``, ``num_points``); ``num_samples`` is the
            number of normal draws a backend makes for ``method="mc"`` when given no ``noise``.
        option_choices: ``{option: allowed values}`` for options with a closed set of values.
        aliases: other accepted names (``"fixed"`` for the point mass).
        zero_allowed: positive parameters whose value 0 the marginal functions accept as the
            limit it is (the LogNormal ``scale``: a point mass); modules still need ``> 0``.
    """

    name: str
    parameters: tuple[str, ...]
    constraints: Mapping[str, str]
    defaults: Mapping[str, float]
    mean: Callable[..., Array]
    variance: Callable[..., Array]
    cv: Callable[..., Array]
    from_mean_cv: Callable[..., dict[str, Array]]
    log_marginal: Callable[..., Array]
    conditional_moments: Callable[..., tuple[Array, Array]]
    scipy: Callable[[Mapping[str, float]], Any]
    distribution: Callable[..., Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    option_choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    learnable: bool = True
    aliases: tuple[str, ...] = field(default=())
    zero_allowed: tuple[str, ...] = field(default=())

    @classmethod
    def from_module(
        cls, module_name: str, constraints: Mapping[str, str], **data: Any
    ) -> StrengthFamily:
        """The family defined by module ``module_name`` (a module of :mod:`mixlogit.families`).

        The family is named as the module (``mixlogit.families.gamma`` -> ``"gamma"``), its
        functions are the module's functions named as the :data:`FUNCTION_FIELDS`, its
        parameters the keys of ``constraints`` in order; ``data`` gives the other fields.
        """
        module = sys.modules[module_name]
        functions = {name: getattr(module, name) for name in FUNCTION_FIELDS}
        name = module_name.rpartition(".")[2]
        return cls(
            name=name, parameters=tuple(constraints), constraints=constraints, **functions, **data
        )

    def __deepcopy__(self, memo) -> StrengthFamily:
        return self  # immutable: copies of a module or pytree share their family

    def __reduce__(self):
        # A registered family pickles by name, so saved objects keep pointing at the registry.
        try:
            registered = get_family(self.name) is self
        except ValueError:
            registered = False
        if registered:
            return get_family, (self.name,)
        return type(self), tuple(getattr(self, f.name) for f in fields(self))

    def log_keys(self) -> tuple[str, ...]:
        """Training-log keys of this family: the three moments, then each parameter."""
        return tuple(LOG_PREFIX + k for k in ("mean", "variance", "cv", *self.parameters))

    def check_params(
        self, params: Mapping[str, float], *, complete: bool = True
    ) -> dict[str, float]:
        """``params`` as floats, checked against the family's names and constraints.

        Raises:
            ValueError: an unknown name, a missing one (``complete=True``), or a value that
                breaks its constraint (named with the value).
        """
        unknown = sorted(set(params) - set(self.parameters))
        if unknown:
            raise ValueError(
                f"unknown {self.name} parameter(s) {unknown}; expected {list(self.parameters)}"
            )
        missing = [p for p in self.parameters if p not in params]
        if complete and missing:
            raise ValueError(f"{self.name} strength needs parameter(s) {missing}")
        out = {}
        for key, value in params.items():
            value = float(value)
            if self.constraints[key] == "positive" and not (value > 0 and math.isfinite(value)):
                raise ValueError(
                    f"{self.name} parameter {key} must be a positive finite number, got {value!r}"
                )
            if not math.isfinite(value):
                raise ValueError(f"{self.name} parameter {key} must be finite, got {value!r}")
            out[key] = value
        return out

    def check_values(
        self, params: Mapping[str, Array], concrete: Callable[[Array], Any | None]
    ) -> None:
        """Check the values of array ``params`` against the constraints where they are known.

        ``concrete(x)`` returns ``x``'s values as a NumPy array, or ``None`` when they are not
        known (a JAX tracer under ``jit``/``grad``), which skips that parameter. NaN and
        infinite values are refused, and values ``<= 0`` of a positive parameter (``< 0`` for
        those in :attr:`zero_allowed`).

        Raises:
            ValueError: naming the parameter, the first bad element's index and its value.
        """
        for key, value in params.items():
            known = concrete(value)
            if known is None:
                continue
            known = np.asarray(known, dtype=float)
            flat = known.reshape(-1)
            bad = ~np.isfinite(flat)
            word = "finite"
            if self.constraints[key] == "positive":
                zero_ok = key in self.zero_allowed
                bad |= ~(flat >= 0) if zero_ok else ~(flat > 0)
                word = ("non-negative" if zero_ok else "positive") + " and finite"
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                where = f"[{', '.join(map(str, np.unravel_index(i, known.shape)))}]"
                raise ValueError(
                    f"{self.name} parameter {key}{where if known.ndim else ''} must be "
                    f"{word}, got {float(flat[i])!r}"
                )

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """:attr:`options` overridden by ``options`` (checked).

        Raises:
            ValueError: an option the family does not take, or a value outside its choices.
        """
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(
                f"unknown {self.name} option(s) {unknown}; expected {sorted(self.options)}"
            )
        for key, allowed in self.option_choices.items():
            if key in options and options[key] not in allowed:
                raise ValueError(f"{key} must be one of {list(allowed)}, got {options[key]!r}")
        return {**self.options, **options}

    def stored_name(self, parameter: str) -> str:
        """Name under which the backends store ``parameter``: ``raw_<name>`` (its inverse
        softplus) for a positive parameter of a learnable family, else the name itself."""
        positive = self.constraints[parameter] == "positive"
        return f"raw_{parameter}" if self.learnable and positive else parameter

    def stored_values(self, params: Mapping[str, float]) -> dict[str, float]:
        """``{stored_name: value}`` for checked ``params`` (see :meth:`stored_name`)."""
        out = {}
        for key, value in self.check_params(params).items():
            raw = self.stored_name(key) != key
            out[self.stored_name(key)] = inverse_softplus(value) if raw else value
        return out

    def with_defaults(self, init: Mapping[str, float] | None = None) -> dict[str, float]:
        """The defaults overridden by ``init`` (checked)."""
        return self.check_params({**self.defaults, **self.check_params(init or {}, complete=False)})

    def moments(self, ops: Any, params: Params) -> dict[str, Array]:
        """``{"mean", "variance", "cv"}`` of ``beta``."""
        return {
            "mean": self.mean(ops, params),
            "variance": self.variance(ops, params),
            "cv": self.cv(ops, params),
        }


# The registry: filled by mixlogit.families (and by register_family for user families).
_REGISTRY: dict[str, StrengthFamily] = {}
_ALIASES: dict[str, StrengthFamily] = {}


def register_family(family: StrengthFamily) -> StrengthFamily:
    """Make ``family`` (and its aliases) known to :func:`get_family`; returns it.

    Raises:
        ValueError: the name or an alias is already taken by another family.
    """
    for key in (family.name, *family.aliases):
        taken = _REGISTRY.get(key) or _ALIASES.get(key)
        if taken is not None and taken is not family:
            raise ValueError(f"strength family name {key!r} is already registered")
    _REGISTRY[family.name] = family
    _ALIASES.update(dict.fromkeys(family.aliases, family))
    return family


def registered_names() -> tuple[str, ...]:
    """Canonical names of the registered families, in registration order."""
    return tuple(_REGISTRY)


def get_family(family: str | StrengthFamily) -> StrengthFamily:
    """The :class:`StrengthFamily` named ``family`` (or an alias such as ``"fixed"``).

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    if isinstance(family, StrengthFamily):
        return family
    found = _REGISTRY.get(family) or _ALIASES.get(family)
    if found is None:
        raise ValueError(
            f"strength family must be one of {sorted([*_REGISTRY, *_ALIASES])}, got {family!r}"
        )
    return found
