"""JAX / NumPyro backend of the preference-strength marginals.

Same names and semantics as :mod:`mixlogit.torch`: :func:`logit_marginal`,
:func:`gamma_logit_marginal`, :func:`lognormal_logit_marginal`,
:func:`point_mass_logit_marginal`; pytree strengths :class:`Strength`, :class:`GammaStrength`,
:class:`LogNormalStrength`, :class:`FixedStrength` and :func:`make_strength`; NumPyro
:func:`MarginalLogitBernoulli`, :class:`GammaLogitBernoulli`, :class:`LogNormalLogitBernoulli`,
models and guides (PPL primitives: :data:`mixlogit.jax._ppl.PPL`); and
:func:`fit_strength_mle`; panel marginals :func:`panel_logit_marginal` (and named forms),
:func:`panel_strength_posterior`, :class:`PanelPosterior`; :class:`ConditionalStrength`.
Float64 results need ``jax_enable_x64`` (or ``jax.enable_x64(True)``).
"""

from mixlogit._frontend import PUBLIC_NAMES
from mixlogit.jax.conditional import *  # noqa: F403
from mixlogit.jax.distributions import *  # noqa: F403
from mixlogit.jax.fit import *  # noqa: F403
from mixlogit.jax.marginals import *  # noqa: F403
from mixlogit.jax.models import *  # noqa: F403
from mixlogit.jax.panel import *  # noqa: F403
from mixlogit.jax.strength import *  # noqa: F403

__all__ = list(PUBLIC_NAMES)
