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

    def with_gradients(self, value, value_and_grads, inputs):
        # A custom JVP rather than a custom VJP: forward mode (jvp, jacfwd, hessian) keeps
        # working, reverse mode transposes the linear rule, and the gradients in the rule are
        # JAX code, so higher derivatives differentiate them. Undifferentiated, only ``value``
        # runs.
        @jax.custom_jvp
        def with_precomputed_gradients(*args):
            return value(*args)

        @with_precomputed_gradients.defjvp
        def jvp(primals, tangents):
            out, grads = value_and_grads(*primals)
            tangent_out = sum(grad * tangent for grad, tangent in zip(grads, tangents, strict=True))
            return out, jnp.broadcast_to(tangent_out, jnp.shape(out)).astype(out.dtype)

        return with_precomputed_gradients(*inputs)


_HALF = (jnp.float16, jnp.bfloat16)


def promote_floats(*values):
    """``values`` as arrays of their promoted floating dtype (weak-typed Python numbers follow
    the arrays; integers promote to the default float; half precision is computed in float32),
    and the function that casts a result back to it."""
    dtype = jnp.result_type(*values)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    work = jnp.float32 if dtype in _HALF else dtype
    return [jnp.asarray(v, dtype=work) for v in values], lambda x: x.astype(dtype)


OPS = JaxOps()
