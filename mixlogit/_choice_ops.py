"""Array primitives of the choice models, on top of the strength kernels' ``ops``.

The mixing transforms (:mod:`mixlogit.mixing`) and the Bayesian choice model
(:mod:`mixlogit.bayes.model`) are written once against an ``ops`` object, like the strength
kernels of :mod:`mixlogit._kernels`. The choice models need a few primitives more than the
kernels (normal CDF and quantile, digamma, stacking, ``einsum``, a log-softmax over the last
axis); :func:`choice_ops` returns the backend's kernel ``ops`` extended with them:

===================  ===============================================================
``ndtr(x)``          standard normal CDF
``ndtri(p)``         its inverse
``digamma(x)``       ``psi(x)``; ``trigamma(x)`` ``psi'(x)``; ``lgamma(x)``
``abs(x)``           absolute value
``stack(xs, axis)``  stack after broadcasting the arrays together
``einsum(eq, *xs)``  Einstein summation
``log_softmax(x)``   over the last axis; ``take_along_last(x, index)`` gathers on it
``zeros(shape, like)``
``gamma_inverse_cdf(u, shape)``  quantile of Gamma(shape, 1), differentiable in ``shape``
                     (NumPy and JAX only; the classical likelihood uses it)
===================  ===============================================================

Each backend is imported only when its ops are first asked for.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["choice_ops"]

_BACKENDS = ("numpy", "jax", "torch")


@functools.cache
def choice_ops(backend: str) -> Any:
    """The choice-model ``ops`` of ``backend`` (``"numpy"``, ``"jax"`` or ``"torch"``)."""
    if backend == "numpy":
        return _numpy_ops()
    if backend == "jax":
        return _jax_ops()
    if backend == "torch":
        return _torch_ops()
    raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")


class ChoiceNamespaceOps:
    """The choice primitives written once over the backend's ``xp`` and ``special``.

    Mixed in before a :class:`mixlogit._array_ops.NamespaceOps` subclass, which supplies the
    namespaces; a backend overrides only what its library spells differently (torch:
    ``stack``, ``take_along_last``, ``zeros``, ``log_softmax``).
    """

    xp: Any
    special: Any

    def ndtr(self, x):
        return self.special.ndtr(x)

    def ndtri(self, p):
        return self.special.ndtri(p)

    def digamma(self, x):
        return self.special.digamma(x)

    def trigamma(self, x):
        return self.special.polygamma(1, x)

    def abs(self, x):
        return self.xp.abs(x)

    def einsum(self, equation, *operands):
        return self.xp.einsum(equation, *operands)

    def stack(self, xs, axis):
        return self.xp.stack(self.xp.broadcast_arrays(*xs), axis)

    def log_softmax(self, x):
        return self.special.log_softmax(x, axis=-1)

    def take_along_last(self, x, index):
        return self.xp.take_along_axis(x, self.xp.asarray(index)[..., None], axis=-1)[..., 0]

    def zeros(self, shape, like):
        return self.xp.zeros(shape, dtype=self.xp.asarray(like).dtype)


def _numpy_ops():
    from scipy import special

    from mixlogit.families._numpy_ops import NumpyOps

    class NumpyChoiceOps(ChoiceNamespaceOps, NumpyOps):
        @staticmethod
        def gamma_inverse_cdf(u, shape):
            return special.gammaincinv(shape, u)

    return NumpyChoiceOps()


def _jax_ops():
    import jax

    from mixlogit.jax._ops import JaxOps

    class JaxChoiceOps(ChoiceNamespaceOps, JaxOps):
        log_softmax = staticmethod(functools.partial(jax.nn.log_softmax, axis=-1))
        gamma_inverse_cdf = staticmethod(_jax_gamma_inverse_cdf())

    return JaxChoiceOps()


def _jax_gamma_inverse_cdf():
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax.scipy.special import gammainc, gammaln, ndtri

    def newton_quantile(u, shape):
        # Newton iterations on t = log x for P(shape, x) = u (regularised lower gamma).
        z = ndtri(u)
        c = 1.0 / (9.0 * shape)
        wilson_hilferty = shape * jnp.maximum(1.0 - c + z * jnp.sqrt(c), 1e-3) ** 3
        small = jnp.exp((jnp.log(u) + gammaln(shape + 1.0)) / shape)
        x0 = jnp.where((shape < 1.0) | (wilson_hilferty < 1e-2 * shape), small, wilson_hilferty)
        t0 = jnp.log(jnp.maximum(x0, 1e-300))

        def newton(_, t):
            x = jnp.exp(t)
            residual = gammainc(shape, x) - u
            # dP/dt = x * density(x) = exp(shape * t - x - lgamma(shape))
            slope = jnp.exp(shape * t - x - gammaln(shape))
            step = jnp.clip(residual / jnp.maximum(slope, 1e-300), -2.0, 2.0)
            return t - step

        return jnp.exp(lax.fori_loop(0, 60, newton, t0))

    @jax.custom_jvp
    def gamma_inverse_cdf(u, shape):
        """Quantile ``x`` with ``P(shape, x) = u`` of the unit-scale gamma; differentiable in
        ``shape`` by the implicit function theorem: ``dx/dshape = -(dP/dshape) / density(x)``."""
        return newton_quantile(u, shape)

    @gamma_inverse_cdf.defjvp
    def _jvp(primals, tangents):
        u, shape = primals
        du, dshape = tangents
        x = newton_quantile(u, shape)
        density = jnp.exp((shape - 1.0) * jnp.log(x) - x - gammaln(shape))
        dp_dshape = lax.igamma_grad_a(shape * jnp.ones_like(x), x)
        return x, (du - dp_dshape * dshape) / density

    return gamma_inverse_cdf


def _torch_ops():
    import torch

    from mixlogit.torch._ops import TorchOps

    class TorchChoiceOps(ChoiceNamespaceOps, TorchOps):
        @staticmethod
        def stack(xs, axis):
            return torch.stack(torch.broadcast_tensors(*xs), axis)

        @staticmethod
        def log_softmax(x):
            return torch.log_softmax(x, -1)

        @staticmethod
        def take_along_last(x, index):
            index = torch.as_tensor(index).expand(x.shape[:-1])
            return torch.gather(x, -1, index.unsqueeze(-1)).squeeze(-1)

        @staticmethod
        def zeros(shape, like):
            return torch.zeros(shape, dtype=like.dtype, device=like.device)

        def where(self, cond, x, y):
            # a Python number on either side takes the dtype of the tensor side
            like = x if isinstance(x, torch.Tensor) else y
            return torch.where(
                cond, torch.as_tensor(x, dtype=like.dtype), torch.as_tensor(y, dtype=like.dtype)
            )

    return TorchChoiceOps()
