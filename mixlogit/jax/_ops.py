"""JAX primitives for the shared kernels in :mod:`mixlogit._kernels`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mixlogit._array_ops import NamespaceOps


class JaxOps(NamespaceOps):
    xp = jnp
    special = jax.scipy.special
    log_sigmoid = staticmethod(jax.nn.log_sigmoid)
    softplus = staticmethod(jax.nn.softplus)
    stop_gradient = staticmethod(jax.lax.stop_gradient)
    sigmoid = staticmethod(jax.nn.sigmoid)
    tanh = staticmethod(jnp.tanh)

    def concatenate(self, xs, axis=0):
        return jnp.concatenate(list(xs), axis=axis)

    def fori_loop(self, num_iterations, body, carry):
        # Compiled once under tracing; eagerly, a compiled loop would re-trace on every call.
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(carry)):
            return jax.lax.fori_loop(0, num_iterations, lambda _, c: body(c), carry)
        for _ in range(num_iterations):
            carry = body(carry)
        return carry

    def segment_sum(self, x, segment_ids, num_segments):
        return jax.ops.segment_sum(x, segment_ids, num_segments=num_segments)

    def segment_max(self, x, segment_ids, num_segments):
        return jax.ops.segment_max(x, segment_ids, num_segments=num_segments)


OPS = JaxOps()
