"""A strength fixed at ``beta``: plain DPO (``beta = 0.1``) or a plain logit (``beta = 1``)."""

from __future__ import annotations

from mixlogit import _kernels
from mixlogit.families._base import StrengthFamily


def mean(ops, p):
    return p["beta"]


def variance(ops, p):
    return p["beta"] * 0.0


def cv(ops, p):
    return p["beta"] * 0.0


def from_mean_cv(ops, mean, cv):
    return {"beta": mean}


def log_marginal(ops, d, p, **_):
    return _kernels.point_mass_log_marginal(ops, d, p["beta"])


def conditional_moments(ops, signed_d, p, **_):
    return p["beta"] + 0.0 * signed_d, 0.0 * signed_d


def distribution(ppl, p):
    return ppl.Delta(p["beta"])


def scipy(p):
    return None  # a point mass has no density


POINT_MASS = StrengthFamily.from_module(
    __name__,
    constraints={"beta": "positive"},
    defaults={"beta": 0.1},
    learnable=False,
    aliases=("fixed",),
)
