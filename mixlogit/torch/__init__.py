"""PyTorch / Pyro backend of the preference-strength marginals.

Functions (``log E_beta[sigmoid(beta * d)]``, shape of the broadcast inputs):
:func:`logit_marginal` (any family of :mod:`mixlogit.families`), :func:`gamma_logit_marginal`,
:func:`lognormal_logit_marginal`, :func:`point_mass_logit_marginal`. Strength modules:
:class:`Strength` (any family), :class:`GammaStrength`, :class:`LogNormalStrength`,
:class:`FixedStrength`, built from a family name by :func:`make_strength`. Maximum likelihood:
:func:`fit_strength_mle` -> :class:`StrengthMLE`. Pyro: :func:`MarginalLogitBernoulli`,
:class:`GammaLogitBernoulli`, :class:`LogNormalLogitBernoulli`, models and guides of
:mod:`mixlogit.torch.models`, and the PPL primitives :data:`mixlogit.torch._ppl.PPL`.
Panels (one strength per annotator, ``log E_beta[prod_i sigmoid(beta * d_i)]`` per group):
:func:`panel_logit_marginal` and its named forms, :func:`panel_strength_posterior` ->
:class:`PanelPosterior`. Covariate-conditioned strength: :class:`ConditionalStrength`.
The JAX twin is :mod:`mixlogit.jax` (same names).
"""

from mixlogit._frontend import PUBLIC_NAMES
from mixlogit.torch.conditional import *  # noqa: F403
from mixlogit.torch.fit import *  # noqa: F403
from mixlogit.torch.marginals import *  # noqa: F403
from mixlogit.torch.panel import *  # noqa: F403
from mixlogit.torch.strength import *  # noqa: F403

__all__ = list(PUBLIC_NAMES)

_PYRO_NAMES = {
    "GammaLogitBernoulli": "mixlogit.torch.distributions",
    "LogNormalLogitBernoulli": "mixlogit.torch.distributions",
    "MarginalLogitBernoulli": "mixlogit.torch.distributions",
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
