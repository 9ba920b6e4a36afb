"""Panel strength marginals in JAX: one strength ``beta_g`` per group (annotator).

Same names and semantics as :mod:`mixlogit.torch.panel` (written once, :mod:`mixlogit._panel`;
this module holds JAX's plumbing). Results have the promoted floating dtype (float64 only with
``jax_enable_x64``); every function is differentiable (``jax.grad``) and traceable
(``jax.jit`` with ``num_groups`` and ``num_nodes`` static: input values are checked only when
they are concrete).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mixlogit._panel import PanelFunctions, PanelPlumbing, PanelPosterior, panel_functions
from mixlogit.jax._ops import OPS, promote_floats

__all__ = [*PanelFunctions._fields, "PanelPosterior"]


class JaxPanelPlumbing(PanelPlumbing):
    ops = OPS
    array_type = "jax.Array"

    def floats(self, *values):
        return promote_floats(*values)

    def ids(self, group):
        group = jnp.asarray(group)
        if not jnp.issubdtype(group.dtype, jnp.integer):
            raise TypeError(f"group must hold integer ids, got dtype {group.dtype}")
        return group

    def concrete(self, x):
        return None if isinstance(x, jax.core.Tracer) else np.asarray(x)


PLUMBING = JaxPanelPlumbing()
_FUNCTIONS = panel_functions(PLUMBING)

panel_logit_marginal = _FUNCTIONS.panel_logit_marginal
gamma_panel_logit_marginal = _FUNCTIONS.gamma_panel_logit_marginal
lognormal_panel_logit_marginal = _FUNCTIONS.lognormal_panel_logit_marginal
point_mass_panel_logit_marginal = _FUNCTIONS.point_mass_panel_logit_marginal
panel_strength_posterior = _FUNCTIONS.panel_strength_posterior
