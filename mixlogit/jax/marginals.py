"""Preference-strength marginals ``log E_beta[sigmoid(beta * d)]`` in JAX.

Same names and semantics as :mod:`mixlogit.torch.marginals` (the functions are written once,
:mod:`mixlogit._frontend`; :data:`FRONT_END` is JAX's plumbing): arguments broadcast, the
result has the promoted floating dtype (float64 only when ``jax_enable_x64`` is on), and every
function is differentiable (``jax.grad``) and traceable (``jax.jit``, ``jax.vmap``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mixlogit._frontend import FrontEnd, MarginalFunctions
from mixlogit.jax._ops import OPS, promote_floats

__all__ = list(MarginalFunctions._fields)


class JaxFrontEnd(FrontEnd):
    ops = OPS
    array_type = "jax.Array"

    def broadcast(self, *values):
        arrays, restore = promote_floats(*values)
        return tuple(jnp.broadcast_arrays(*arrays)), restore

    ppl_module = "mixlogit.jax._ppl"
    rng_keyword = "key"
    rng_doc = "``jax.random`` key used to draw ``noise`` when it is omitted (required then)"

    def normal_noise(self, noise, d, num_samples, rng):
        if noise is None:
            if rng is None:
                raise ValueError("method='mc' needs either `noise` or a `key` to draw it")
            return jax.random.normal(rng, (num_samples, *d.shape), dtype=d.dtype)
        noise = jnp.asarray(noise, dtype=d.dtype)
        return noise.reshape(-1, *([1] * d.ndim)) if noise.ndim == 1 else noise

    def concrete(self, x):
        """``x``'s values as NumPy, or ``None`` under tracing (``jit``, ``grad``, ``vmap``),
        where a check must not force them (:meth:`StrengthFamily.check_values`)."""
        return None if isinstance(x, jax.core.Tracer) else np.asarray(x)

    def signed_margin(self, d, y):
        d = jnp.asarray(d)
        return jnp.where(jnp.asarray(y) > 0.5, d, -d)


#: JAX's plumbing under the shared front ends.
FRONT_END = JaxFrontEnd()

logit_marginal = FRONT_END.functions.logit_marginal
gamma_logit_marginal = FRONT_END.functions.gamma_logit_marginal
lognormal_logit_marginal = FRONT_END.functions.lognormal_logit_marginal
point_mass_logit_marginal = FRONT_END.functions.point_mass_logit_marginal
