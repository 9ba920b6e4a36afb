"""The :class:`mixlogit._ppl.PPL` protocol on NumPyro (JAX)."""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions
import numpyro.handlers

from mixlogit._ppl import PPL as _Protocol
from mixlogit.jax._ops import OPS

__all__ = ["PPL", "NumPyroPPL"]


class NumPyroPPL(_Protocol):
    ops = OPS
    library = numpyro

    def param(self, name, init, constraint):
        # numpyro calls a callable init with a PRNG key; ours take no argument
        return numpyro.param(name, init() if callable(init) else init, constraint=constraint)

    def scale(self, factor):
        return numpyro.handlers.scale(scale=factor)

    def asarray(self, value, like=None):
        if like is None:
            array = jnp.asarray(value)
            return array if jnp.issubdtype(array.dtype, jnp.floating) else array.astype(float)
        return jnp.asarray(value, dtype=like.dtype)

    def full(self, shape, value, like):
        return jnp.full(tuple(shape), value, dtype=like.dtype)


#: The NumPyro implementation of :class:`mixlogit._ppl.PPL`.
PPL = NumPyroPPL()
