"""NumPyro models of binary choices with a random preference strength, and their guides:
those of :mod:`mixlogit._strength_models` with NumPyro's :data:`mixlogit.jax._ppl.PPL` bound."""

from __future__ import annotations

from mixlogit import _strength_models
from mixlogit._frontend import bind
from mixlogit.jax._ppl import PPL

__all__ = list(_strength_models.MODEL_NAMES)

marginal_strength_model = bind(PPL, _strength_models.marginal_strength_model)
latent_strength_model = bind(PPL, _strength_models.latent_strength_model)
gamma_strength_guide = bind(PPL, _strength_models.gamma_strength_guide)
lognormal_strength_guide = bind(PPL, _strength_models.lognormal_strength_guide)
