"""Deprecated shim: use :mod:`mixlogit.families` instead (removed in the next release)."""

import warnings

from mixlogit.families import NUMPY_OPS, get_family

warnings.warn("mixlogit._strength_init is deprecated; use mixlogit.families", DeprecationWarning, 2)


def population_init(family, init):  # -> get_family(family).with_defaults(init)
    return get_family(family).with_defaults(init)


def mean_and_cv(family, params):  # -> family.mean / family.cv with NUMPY_OPS
    f = get_family(family)
    return float(f.mean(NUMPY_OPS, params)), float(f.cv(NUMPY_OPS, params))


def matched_params(target, mean, cv):  # -> get_family(target).from_mean_cv(NUMPY_OPS, mean, cv)
    return {k: float(v) for k, v in get_family(target).from_mean_cv(NUMPY_OPS, mean, cv).items()}
