"""JAX / NumPyro backend of the preference-strength marginals.

Same names and semantics as :mod:`mixlogit.torch`: :func:`gamma_logit_marginal`,
:func:`lognormal_logit_marginal`, :func:`point_mass_logit_marginal`; pytree strengths
:class:`GammaStrength`, :class:`LogNormalStrength`, :class:`FixedStrength`; NumPyro
:class:`GammaLogitBernoulli`, :class:`LogNormalLogitBernoulli`, models and guides; and
:func:`fit_strength_mle`. Float64 results need ``jax_enable_x64`` (or ``jax.enable_x64(True)``).
"""

from mixlogit.jax.distributions import GammaLogitBernoulli, LogNormalLogitBernoulli
from mixlogit.jax.fit import StrengthMLE, fit_strength_mle
from mixlogit.jax.marginals import (
    gamma_logit_marginal,
    lognormal_logit_marginal,
    point_mass_logit_marginal,
)
from mixlogit.jax.models import (
    gamma_strength_guide,
    latent_strength_model,
    lognormal_strength_guide,
    marginal_strength_model,
)
from mixlogit.jax.strength import FixedStrength, GammaStrength, LogNormalStrength

__all__ = [
    "FixedStrength",
    "GammaLogitBernoulli",
    "GammaStrength",
    "LogNormalLogitBernoulli",
    "LogNormalStrength",
    "StrengthMLE",
    "fit_strength_mle",
    "gamma_logit_marginal",
    "gamma_strength_guide",
    "latent_strength_model",
    "lognormal_logit_marginal",
    "lognormal_strength_guide",
    "marginal_strength_model",
    "point_mass_logit_marginal",
]
