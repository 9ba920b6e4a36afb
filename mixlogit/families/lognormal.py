"""``beta = exp(loc + scale eps)``, ``eps ~ N(0, 1)``: quadrature or MixDPO's Monte Carlo."""

from __future__ import annotations

import math

from mixlogit import _kernels
from mixlogit.families._base import StrengthFamily


def mean(ops, p):
    return ops.exp(p["loc"] + 0.5 * p["scale"] * p["scale"])


def variance(ops, p):
    s2 = p["scale"] * p["scale"]
    return ops.expm1(s2) * ops.exp(2.0 * p["loc"] + s2)


def cv(ops, p):
    return ops.sqrt(ops.expm1(p["scale"] * p["scale"]))


def from_mean_cv(ops, mean, cv):
    s2 = ops.log1p(cv * cv)
    return {"loc": ops.log(mean) - 0.5 * s2, "scale": ops.sqrt(s2)}


def log_marginal(ops, d, p, *, method="quadrature", num_points=16, noise=None, **_):
    """``method="quadrature"`` (deterministic, ``num_points`` nodes) or ``"mc"`` with ``noise``
    of shape ``(K, *batch)`` or ``(K,)``."""
    if method == "quadrature":

        def quadrature(d, loc, scale):
            return _kernels.lognormal_log_marginal_quadrature(ops, d, loc, scale, num_points)

        return ops.elementwise(quadrature, (d, p["loc"], p["scale"]))
    if method == "mc":
        if noise is None:
            raise ValueError("method='mc' needs standard-normal `noise` of shape (K, *batch)")
        return _kernels.lognormal_log_marginal_mc(ops, d, p["loc"], p["scale"], noise)
    raise ValueError(f"method must be 'quadrature' or 'mc', got {method!r}")


def conditional_moments(ops, signed_d, p, *, num_points=16, **_):
    return _kernels.lognormal_conditional_moments(ops, signed_d, p["loc"], p["scale"], num_points)


def distribution(ppl, p):
    return ppl.LogNormal(p["loc"], p["scale"])


def scipy(p):
    from scipy import stats

    return stats.lognorm(s=p["scale"], scale=math.exp(p["loc"]))


LOGNORMAL = StrengthFamily.from_module(
    __name__,
    constraints={"loc": "real", "scale": "positive"},
    defaults={"loc": -2.3, "scale": 0.6},
    options={"method": "quadrature", "num_points": 16, "num_samples": 16},
    option_choices={"method": ("quadrature", "mc")},
    zero_allowed=("scale",),
)
