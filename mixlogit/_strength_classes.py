"""What the torch and JAX strength classes share, written once.

A backend's ``Strength`` (a ``torch.nn.Module``, a JAX pytree) mixes in :class:`StrengthMixin`
and supplies the parameter storage and its :class:`~mixlogit._frontend.FrontEnd`; the moments, marginals and posterior moments are the family's functions evaluated through the
front end. Its named classes mix in :class:`GammaStrengthMixin`, :class:`LogNormalStrengthMixin`
or :class:`FixedStrengthMixin` (constructors with the family's natural parameters), and
:func:`make_strength` builds the right one from a family name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mixlogit._frontend import FrontEnd
from mixlogit.families import GAMMA, LOGNORMAL, POINT_MASS, StrengthFamily, get_family

__all__ = [
    "STRENGTH_NAMES",
    "FixedStrengthMixin",
    "GammaStrengthMixin",
    "LogNormalStrengthMixin",
    "StrengthMixin",
    "make_strength",
]

#: The public names of both backends' ``strength`` modules.
STRENGTH_NAMES = (
    "FixedStrength",
    "GammaStrength",
    "LogNormalStrength",
    "Strength",
    "inverse_softplus",
    "make_strength",
)


class StrengthMixin:
    """A distribution of the preference strength ``beta > 0`` of :attr:`strength_family`.

    The backend class sets :attr:`front_end` and implements ``_store(name, value)``, which
    keeps each parameter under ``strength_family.stored_name(p)`` (see
    :meth:`~mixlogit.families.StrengthFamily.stored_name`); the family's options are
    attributes of their names, ``learnable`` whether the parameters are trained. Each
    subclass with a ``strength_family`` becomes the backend's named class of that family (for
    :func:`make_strength`); the first subclass, the backend's base, holds that registry.

    Attributes:
        family: the canonical family name (``"point_mass"`` for a fixed strength).
        strength_family: the :class:`~mixlogit.families.StrengthFamily`.
    """

    front_end: FrontEnd
    strength_family: StrengthFamily
    family: str
    named_classes: dict[str, type]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        family = getattr(cls, "strength_family", None)
        if family is None:
            cls.named_classes = {}
        else:
            cls.family = family.name
            cls.named_classes[cls.family] = cls

    def __init__(
        self,
        family: str | StrengthFamily,
        params: Mapping[str, float] | None = None,
        *,
        learnable: bool = True,
        **options: Any,
    ) -> None:
        super().__init__()
        family = get_family(family)
        self._set_family(family, learnable, family.check_options(options))
        natural = family.with_defaults(params)
        for name, value in family.stored_values(natural).items():
            self._store(name, value)
        self._check_stored(natural)

    def _check_stored(self, natural: Mapping[str, float]) -> None:
        """Refuse a checked value that the stored dtype cannot hold: ``1e300`` overflows a
        float32 ``raw_shape`` to inf, and ``1e-50`` underflows ``softplus(raw)`` to 0."""
        family = self.strength_family
        for name, requested in natural.items():
            stored = getattr(self, family.stored_name(name))
            value = float(self.front_end.ops.stop_gradient(self.natural_parameter(name)))
            positive = family.constraints[name] == "positive"
            if not math.isfinite(value) or (positive and not value > 0):
                raise ValueError(
                    f"{family.name} parameter {name} = {requested!r} is out of range for "
                    f"{stored.dtype} (it would be stored as {value!r})"
                )

    def _set_family(self, family: StrengthFamily, learnable: bool, options: Mapping) -> None:
        self.strength_family, self.family = family, family.name
        self.learnable = learnable and family.learnable
        for key, value in options.items():
            setattr(self, key, value)

    def _store(self, name: str, value: float) -> None:
        """Store parameter ``name`` (its stored form, a float) as the backend keeps it."""
        raise NotImplementedError

    @property
    def options(self) -> dict[str, Any]:
        """The family's options as set on this object."""
        return {key: getattr(self, key) for key in self.strength_family.options}

    def natural_parameter(self, name: str):
        """The natural value of parameter ``name`` (0-dim, differentiable in the stored one)."""
        stored = self.strength_family.stored_name(name)
        value = getattr(self, stored)
        return self.front_end.ops.softplus(value) if stored != name else value

    def constrained_parameters(self) -> dict[str, Any]:
        """The distribution's natural parameters by name."""
        return {p: self.natural_parameter(p) for p in self.strength_family.parameters}

    @property
    def mean(self):
        """``E[beta]`` (0-dim, differentiable)."""
        return self.strength_family.mean(self.front_end.ops, self.constrained_parameters())

    @property
    def variance(self):
        """``Var[beta]`` (0-dim, differentiable)."""
        return self.strength_family.variance(self.front_end.ops, self.constrained_parameters())

    @property
    def coefficient_of_variation(self):
        """``sd / mean``: heterogeneity free of the reward scale."""
        return self.strength_family.cv(self.front_end.ops, self.constrained_parameters())

    def _log_marginal(self, d, noise, rng):
        # ``noise`` switches a family with a ``method`` option to Monte Carlo.
        options = self.options
        if noise is not None and "method" in options:
            options["method"] = "mc"
        params = self.constrained_parameters()
        family = self.strength_family
        return self.front_end.log_marginal(family, d, params, noise=noise, rng=rng, **options)

    def distribution(self):
        """The strength as a distribution of the backend's PPL (Pyro's ``torch.distributions``
        or NumPyro's; point mass: ``Delta``)."""
        return self.strength_family.distribution(
            self.front_end.ppl(), self.constrained_parameters()
        )

    def conditional_moments(self, d, y):
        """Posterior mean and variance of ``beta`` given choice ``y`` (1 or 0) at margin ``d``."""
        return self.front_end.conditional_moments(
            self.strength_family, d, y, self.constrained_parameters(), self.options
        )

    def _parameter_text(self) -> str:
        detach = self.front_end.ops.stop_gradient
        params = self.constrained_parameters().items()
        return ", ".join(f"{k}={float(detach(v)):.6g}" for k, v in params)


def _natural_property(name: str) -> property:
    return property(lambda self: self.natural_parameter(name), doc=f"The natural ``{name}``.")


class GammaStrengthMixin:
    """Constructor of a Gamma strength: ``GammaStrength(shape, rate, *, learnable, num_terms)``."""

    strength_family = GAMMA
    shape, rate = _natural_property("shape"), _natural_property("rate")

    def __init__(
        self,
        shape: float = GAMMA.defaults["shape"],
        rate: float = GAMMA.defaults["rate"],
        *,
        learnable: bool = True,
        num_terms: int | None = None,
    ) -> None:
        params = {"shape": shape, "rate": rate}
        super().__init__(GAMMA, params, learnable=learnable, num_terms=num_terms)


class LogNormalStrengthMixin:
    """Constructor of a LogNormal strength (``method="mc"`` by default, MixDPO's estimator)."""

    strength_family = LOGNORMAL
    scale = _natural_property("scale")

    def __init__(
        self,
        loc: float = LOGNORMAL.defaults["loc"],
        scale: float = LOGNORMAL.defaults["scale"],
        *,
        learnable: bool = True,
        method: str = "mc",
        num_samples: int = 16,
        num_points: int = 16,
    ) -> None:
        options = {"method": method, "num_samples": num_samples, "num_points": num_points}
        super().__init__(LOGNORMAL, {"loc": loc, "scale": scale}, learnable=learnable, **options)


class FixedStrengthMixin:
    """Constructor of a point mass at ``beta`` (never learnable)."""

    strength_family = POINT_MASS

    def __init__(self, beta: float = POINT_MASS.defaults["beta"]) -> None:
        super().__init__(POINT_MASS, {"beta": beta})


def make_strength(
    base: type,
    family: str | StrengthFamily,
    params: Mapping[str, float] | None = None,
    *,
    learnable: bool = True,
    **options: Any,
):
    """The strength of ``family`` (its named class when it has one): a torch module from
    :func:`mixlogit.torch.make_strength`, a JAX pytree from :func:`mixlogit.jax.make_strength`.

    (The first argument, the backend's ``Strength`` class, is bound by those.)

    Args:
        family: family name or :class:`~mixlogit.families.StrengthFamily`.
        params: natural parameters; missing ones take the family's defaults.
        learnable: train the parameters (a point mass never is).
        options: the family's options (see :attr:`~mixlogit.families.StrengthFamily.options`);
            ``LogNormalStrength``'s default ``method="mc"`` applies unless given.

    Raises:
        ValueError: an unknown family, parameter or option, or an invalid value.
    """
    family = get_family(family)
    family.check_options(options)
    cls = base.named_classes.get(family.name)
    if cls is None:
        return base(family, params, learnable=learnable, **options)
    # Through the named class, so its own defaults (LogNormalStrength: method="mc") apply.
    if family.learnable:
        options["learnable"] = learnable
    return cls(**family.with_defaults(params), **options)
