"""JAX primitives for the shared kernels in :mod:`mixlogit._kernels`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

_HALF = (jnp.float16, jnp.bfloat16)


class JaxOps:
    def const(self, value, like):
        return jnp.asarray(np.asarray(value), dtype=like.dtype)

    exp = staticmethod(jnp.exp)
    log = staticmethod(jnp.log)
    log1p = staticmethod(jnp.log1p)
    log_sigmoid = staticmethod(jax.nn.log_sigmoid)
    sqrt = staticmethod(jnp.sqrt)
    stop_gradient = staticmethod(jax.lax.stop_gradient)
    erfc = staticmethod(jax.scipy.special.erfc)
    log_ndtr = staticmethod(jax.scipy.special.log_ndtr)
    isinf = staticmethod(jnp.isinf)

    def where(self, cond, x, y):
        return jnp.where(cond, x, y)

    def minimum(self, x, bound):
        return jnp.minimum(x, bound)

    def clip(self, x, lower, upper):
        return jnp.clip(x, lower, upper)

    def sum(self, x, axis):
        return jnp.sum(x, axis=axis)

    def logsumexp(self, x, axis):
        return logsumexp(x, axis=axis)

    def finfo_max(self, like):
        return float(jnp.finfo(like.dtype).max)


OPS = JaxOps()


def as_arrays(*values):
    """Broadcast ``values`` to one floating dtype (weak-typed Python numbers follow arrays).

    Returns the arrays and the output dtype; half precision is computed in float32.
    """
    dtype = jnp.result_type(*values)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    work = jnp.float32 if dtype in _HALF else dtype
    arrays = [jnp.asarray(v, dtype=work) for v in values]
    return tuple(jnp.broadcast_arrays(*arrays)), dtype


def float_bits(dtype) -> int:
    return jnp.finfo(dtype).bits
