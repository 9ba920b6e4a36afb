"""Preference-strength families, each defined once as data plus pure functions.

>>> from mixlogit.families import get_family, NUMPY_OPS
>>> gamma = get_family("gamma")
>>> gamma.parameters, dict(gamma.defaults)
(('shape', 'rate'), {'shape': 2.0, 'rate': 16.7})
>>> float(gamma.cv(NUMPY_OPS, {"shape": 4.0, "rate": 1.0}))
0.5

Families: ``"gamma"`` (:mod:`.gamma`), ``"lognormal"`` (:mod:`.lognormal`) and ``"point_mass"``
(:mod:`.point_mass`, alias ``"fixed"``). To add one, write a module of the family's functions
that builds its :class:`StrengthFamily` with :meth:`StrengthFamily.from_module`, and add it to
the loop below (a user's own family: :func:`register_family`); the torch modules, JAX pytrees,
PPL distributions, trainer and analysis pick it up by name.
"""

from __future__ import annotations

from mixlogit.families._base import (
    LOG_PREFIX,
    REFIT_LOG_PREFIX,
    StrengthFamily,
    get_family,
    inverse_softplus,
    register_family,
    registered_names,
)
from mixlogit.families._numpy_ops import NUMPY_OPS
from mixlogit.families.gamma import GAMMA
from mixlogit.families.lognormal import LOGNORMAL
from mixlogit.families.point_mass import POINT_MASS

__all__ = [
    "FAMILY_NAMES",
    "GAMMA",
    "LOGNORMAL",
    "LOG_PREFIX",
    "NUMPY_OPS",
    "POINT_MASS",
    "REFIT_LOG_PREFIX",
    "StrengthFamily",
    "get_family",
    "inverse_softplus",
    "register_family",
]

for _family in (GAMMA, LOGNORMAL, POINT_MASS):
    register_family(_family)

#: Canonical family names, in registry order.
FAMILY_NAMES: tuple[str, ...] = registered_names()
