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


def _numpy_ops():
    import numpy as np
    from scipy import special

    from mixlogit.families._numpy_ops import NumpyOps

    class NumpyChoiceOps(NumpyOps):
        ndtr = staticmethod(special.ndtr)
        ndtri = staticmethod(special.ndtri)
        digamma = staticmethod(special.digamma)
        lgamma = staticmethod(special.gammaln)
        abs = staticmethod(np.abs)
        einsum = staticmethod(np.einsum)

        @staticmethod
        def trigamma(x):
            return special.polygamma(1, x)

        @staticmethod
        def stack(xs, axis):
            return np.stack(np.broadcast_arrays(*xs), axis)

        @staticmethod
        def log_softmax(x):
            return special.log_softmax(x, axis=-1)

        @staticmethod
        def take_along_last(x, index):
            return np.take_along_axis(x, np.asarray(index)[..., None], axis=-1)[..., 0]

        @staticmethod
        def zeros(shape, like):
            return np.zeros(shape, dtype=np.asarray(like).dtype)

        @staticmethod
        def gamma_inverse_cdf(u, shape):
            return special.gammaincinv(shape, u)

    return NumpyChoiceOps()


def _jax_ops():
    import jax
    import jax.numpy as jnp
    from jax.scipy import special

    from mixlogit.jax._ops import JaxOps

    gamma_inverse_cdf = _jax_gamma_inverse_cdf()

    class JaxChoiceOps(JaxOps):
        ndtr = staticmethod(special.ndtr)
        ndtri = staticmethod(special.ndtri)
        digamma = staticmethod(special.digamma)
        lgamma = staticmethod(special.gammaln)
        abs = staticmethod(jnp.abs)
        einsum = staticmethod(jnp.einsum)

        @staticmethod
        def trigamma(x):
            return special.polygamma(1, x)

        @staticmethod
        def stack(xs, axis):
            return jnp.stack(jnp.broadcast_arrays(*xs), axis)

        @staticmethod
        def log_softmax(x):
            return jax.nn.log_softmax(x, axis=-1)

        @staticmethod
        def take_along_last(x, index):
            return jnp.take_along_axis(x, jnp.asarray(index)[..., None], axis=-1)[..., 0]

        @staticmethod
        def zeros(shape, like):
            return jnp.zeros(shape, dtype=jnp.asarray(like).dtype)

    JaxChoiceOps.gamma_inverse_cdf = staticmethod(gamma_inverse_cdf)
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

    class TorchChoiceOps(TorchOps):
        ndtr = staticmethod(torch.special.ndtr)
        ndtri = staticmethod(torch.special.ndtri)
        digamma = staticmethod(torch.digamma)
        lgamma = staticmethod(torch.lgamma)
        abs = staticmethod(torch.abs)
        einsum = staticmethod(torch.einsum)

        @staticmethod
        def trigamma(x):
            return torch.polygamma(1, x)

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
