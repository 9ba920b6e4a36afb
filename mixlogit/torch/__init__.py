"""PyTorch / Pyro backend of the preference-strength marginals.

Functions (``log E_beta[sigmoid(beta * d)]``): :func:`gamma_logit_marginal`,
:func:`lognormal_logit_marginal`, :func:`point_mass_logit_marginal`. Strength modules:
:class:`GammaStrength`, :class:`LogNormalStrength`, :class:`FixedStrength`. Pyro:
:class:`GammaLogitBernoulli`, :class:`LogNormalLogitBernoulli`, models and guides in
:mod:`mixlogit.torch.models`. The JAX twin is :mod:`mixlogit.jax` (same names).
"""

from mixlogit.torch.marginals import (
    gamma_logit_marginal,
    lognormal_logit_marginal,
    point_mass_logit_marginal,
)
from mixlogit.torch.strength import FixedStrength, GammaStrength, LogNormalStrength, Strength

__all__ = [
    "FixedStrength",
    "GammaLogitBernoulli",
    "GammaStrength",
    "LogNormalLogitBernoulli",
    "LogNormalStrength",
    "Strength",
    "gamma_logit_marginal",
    "gamma_strength_guide",
    "latent_strength_model",
    "lognormal_logit_marginal",
    "lognormal_strength_guide",
    "marginal_strength_model",
    "point_mass_logit_marginal",
]

_PYRO_NAMES = {
    "GammaLogitBernoulli": "mixlogit.torch.distributions",
    "LogNormalLogitBernoulli": "mixlogit.torch.distributions",
    "gamma_strength_guide": "mixlogit.torch.models",
    "latent_strength_model": "mixlogit.torch.models",
    "lognormal_strength_guide": "mixlogit.torch.models",
    "marginal_strength_model": "mixlogit.torch.models",
}


def __getattr__(name):
    # Pyro is imported only when its distributions or models are asked for.
    if name in _PYRO_NAMES:
        import importlib

        return getattr(importlib.import_module(_PYRO_NAMES[name]), name)
    raise AttributeError(f"module 'mixlogit.torch' has no attribute {name!r}")
