"""Maximum-likelihood estimation of a strength distribution from binary choices (JAX).

The objective and the optimiser are shared with the torch version
(:mod:`mixlogit._strength_fit`); here are JAX's float64 arrays and derivatives (float64
whatever the global setting: the Hessian needs it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mixlogit import _strength_fit
from mixlogit._frontend import bind
from mixlogit._strength_fit import StrengthMLE
from mixlogit.jax.marginals import FRONT_END

__all__ = ["StrengthMLE", "fit_strength_mle"]


class JaxMLE(_strength_fit.MLEBackend):
    front_end = FRONT_END

    def float64(self):
        return jax.enable_x64(True)

    def asarray(self, values):
        return jnp.asarray(values, dtype=jnp.float64)

    def value_and_grad(self, f):
        compiled = jax.jit(jax.value_and_grad(f))

        def evaluate(x):
            value, grad = compiled(jnp.asarray(x))
            return float(value), np.asarray(grad, dtype=np.float64)

        return evaluate

    def hessian(self, f):
        compiled = jax.jit(jax.hessian(f))
        return lambda x: np.asarray(compiled(jnp.asarray(x)), dtype=np.float64)


fit_strength_mle = bind(JaxMLE(), _strength_fit.fit_strength_mle)
