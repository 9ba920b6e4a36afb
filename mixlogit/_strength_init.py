"""Default initial values of the strength families and moment matching between them."""

from __future__ import annotations

import math

#: MixDPO's initialisations (arXiv 2601.06180): both have mean ~0.12, DPO's usual beta.
DEFAULT_INIT = {
    "gamma": {"shape": 2.0, "rate": 16.7},
    "lognormal": {"loc": -2.3, "scale": 0.6},
}

FAMILIES = tuple(DEFAULT_INIT)


def check_family(family: str) -> str:
    if family not in DEFAULT_INIT:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return family


def population_init(family: str, init: dict[str, float] | None) -> dict[str, float]:
    """``init`` completed with the family's defaults; unknown or non-positive entries raise."""
    check_family(family)
    values = dict(DEFAULT_INIT[family])
    for key, value in (init or {}).items():
        if key not in values:
            raise ValueError(f"unknown {family} parameter {key!r}; expected {sorted(values)}")
        values[key] = float(value)
    for key, value in values.items():
        if key != "loc" and not value > 0:
            raise ValueError(f"{family} parameter {key} must be positive, got {value}")
    return values


def mean_and_cv(family: str, params: dict[str, float]) -> tuple[float, float]:
    """Mean and coefficient of variation of the strength distribution."""
    if family == "gamma":
        return params["shape"] / params["rate"], 1.0 / math.sqrt(params["shape"])
    s2 = params["scale"] ** 2
    return math.exp(params["loc"] + 0.5 * s2), math.sqrt(math.expm1(s2))


def matched_params(target: str, mean: float, cv: float) -> dict[str, float]:
    """Parameters of family ``target`` with the given mean and coefficient of variation."""
    if target == "gamma":
        shape = 1.0 / cv**2
        return {"shape": shape, "rate": shape / mean}
    s2 = math.log1p(cv**2)
    return {"loc": math.log(mean) - 0.5 * s2, "scale": math.sqrt(s2)}
