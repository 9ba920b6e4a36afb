"""``beta ~ Gamma(shape, rate)``: the exact logit marginal (alternating Lerch series)."""

from __future__ import annotations

from mixlogit import _kernels
from mixlogit._series import default_num_terms
from mixlogit.families._base import StrengthFamily


def mean(ops, p):
    return p["shape"] / p["rate"]


def variance(ops, p):
    return p["shape"] / (p["rate"] * p["rate"])


def cv(ops, p):
    return 1.0 / ops.sqrt(p["shape"])


def from_mean_cv(ops, mean, cv):
    shape = 1.0 / (cv * cv)
    return {"shape": shape, "rate": shape / mean}


def log_marginal(ops, d, p, *, num_terms=None, **_):
    n = num_terms or default_num_terms(ops.float_bits(d))
    return _kernels.gamma_log_marginal_fused(ops, d, p["shape"], p["rate"], n)


def conditional_moments(ops, signed_d, p, *, num_terms=None, **_):
    n = num_terms or default_num_terms(ops.float_bits(signed_d))
    return _kernels.gamma_conditional_moments(ops, signed_d, p["shape"], p["rate"], n)


def distribution(ppl, p):
    return ppl.Gamma(p["shape"], p["rate"])


def scipy(p):
    from scipy import stats

    return stats.gamma(a=p["shape"], scale=1.0 / p["rate"])


GAMMA = StrengthFamily.from_module(
    __name__,
    constraints={"shape": "positive", "rate": "positive"},
    defaults={"shape": 2.0, "rate": 16.7},
    options={"num_terms": None},
)
