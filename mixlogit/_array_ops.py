"""The kernel primitives (:class:`mixlogit._kernels.ArrayOps`) written once for every backend.

NumPy, JAX and PyTorch spell most primitives alike: ``ops.exp`` is ``xp.exp`` of the array
namespace ``xp`` (``numpy``, ``jax.numpy``, ``torch``) and ``ops.erfc`` is ``special.erfc`` of
its special functions (``scipy.special``, ``jax.scipy.special``, ``torch.special``). A backend
subclasses :class:`NamespaceOps` with its ``xp`` and ``special`` and defines only what its
library spells differently (``log_sigmoid``, ``stop_gradient``, ``const``, the segment
reductions); a subclass' own definition always wins over the namespace's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["FROM_NAMESPACE", "FROM_SPECIAL", "NamespaceOps"]

#: Primitives taken from ``xp`` under the same name.
FROM_NAMESPACE = (
    "exp",
    "expm1",
    "log",
    "log1p",
    "sqrt",
    "isinf",
    "sinh",
    "cosh",
    "asinh",
    "matmul",
    "tanh",
)

#: ``{primitive: name in special}`` for those taken from the special functions.
FROM_SPECIAL = {"erfc": "erfc", "log_ndtr": "log_ndtr", "lgamma": "gammaln"}


class NamespaceOps:
    """Kernel primitives of the array namespace :attr:`xp` and its :attr:`special` functions.

    Attributes:
        xp: the array namespace (``numpy``, ``jax.numpy``, ``torch``).
        special: its special functions (with ``erfc``, ``log_ndtr``, ``gammaln``, ``logsumexp``).
    """

    xp: Any
    special: Any

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Fill in what neither the subclass nor a parent defines, from its namespaces.
        for name in FROM_NAMESPACE:
            if not hasattr(cls, name):
                setattr(cls, name, staticmethod(getattr(cls.xp, name)))
        for name, special_name in FROM_SPECIAL.items():
            if not hasattr(cls, name):
                setattr(cls, name, staticmethod(getattr(cls.special, special_name)))

    def float_dtype(self, like):
        """The floating dtype the results for ``like`` take."""
        return like.dtype

    def concatenate(self, xs, axis=0):
        return self.xp.concatenate(list(xs), axis=axis)

    def elementwise(self, fn, inputs):
        """``fn(*inputs)`` for an elementwise ``fn`` of broadcastable arrays (a backend may
        evaluate it piece by piece: torch in cache-sized chunks)."""
        return fn(*inputs)

    def fori_loop(self, num_iterations, body, carry):
        """``body`` applied ``num_iterations`` times to ``carry``, eagerly (JAX compiles it
        under tracing)."""
        for _ in range(num_iterations):
            carry = body(carry)
        return carry

    def const(self, value, like):
        return self.xp.asarray(np.asarray(value), dtype=self.float_dtype(like))

    def where(self, cond, x, y):
        return self.xp.where(cond, x, y)

    def minimum(self, x, bound):
        return self.xp.clip(x, None, bound)

    def clip(self, x, lower, upper):
        return self.xp.clip(x, lower, upper)

    def sum(self, x, axis):
        return self.xp.sum(x, axis=axis)

    def amax(self, x, axis):
        return self.xp.amax(x, axis=axis)

    def logsumexp(self, x, axis):
        return self.special.logsumexp(x, axis=axis)

    def finfo_max(self, like):
        return float(self.xp.finfo(self.float_dtype(like)).max)

    def float_bits(self, like):
        return self.xp.finfo(self.float_dtype(like)).bits
