"""Preference-strength distributions as JAX pytrees.

Same names and semantics as :mod:`mixlogit.torch.strength`: one class, :class:`Strength`,
drives every family of :mod:`mixlogit.families` through JAX ops (the shared behaviour is
:mod:`mixlogit._strength_classes`); this file holds only the pytree plumbing and the RNG. The
leaves are the *stored* parameters (``raw_<name>`` for a positive one, mapped back by
softplus; ``loc`` as is), so an optimiser (optax, ``jax.grad``) acts on them directly;
construct with the natural parameters: ``GammaStrength(shape=2.0, rate=16.7)``.
``learnable=False`` keeps the parameters out of the leaves (they become static auxiliary data,
invisible to gradients); a point mass always is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mixlogit import _strength_classes
from mixlogit._frontend import bind
from mixlogit.families import (
    get_family,
    inverse_softplus,  # noqa: F401  (re-exported)
)
from mixlogit.jax.marginals import FRONT_END

__all__ = list(_strength_classes.STRENGTH_NAMES)


@jax.tree_util.register_pytree_node_class
class Strength(_strength_classes.StrengthMixin):
    """A distribution of the preference strength ``beta > 0`` of any family (a pytree).

    Args:
        family: a family name (``"gamma"``, ``"lognormal"``, ``"point_mass"`` / ``"fixed"``) or
            a :class:`~mixlogit.families.StrengthFamily`.
        params: natural parameters; missing ones take ``family.defaults``.
        learnable: parameters are leaves (``False``: static data; a point mass never is).
        options: the family's options, kept as attributes of the same names.

    Attributes:
        family: the canonical family name (``"point_mass"`` for a fixed strength).
        strength_family: the :class:`~mixlogit.families.StrengthFamily`.
        learnable: whether the parameters are leaves.
    """

    front_end = FRONT_END

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node_class(cls)

    def _store(self, name: str, value: float) -> None:
        setattr(self, name, jnp.asarray(value))

    def _stored_names(self) -> tuple[str, ...]:
        return tuple(self.strength_family.stored_name(p) for p in self.strength_family.parameters)

    def tree_flatten(self):
        # Aux data must be hashable for jit's cache: names, options, and frozen values as floats.
        aux = (self.family, self.learnable, tuple(self.options.values()))
        stored = tuple(getattr(self, n) for n in self._stored_names())
        if self.learnable:
            return stored, aux
        return (), (*aux, tuple(float(v) for v in stored))

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        obj = object.__new__(cls)
        family = get_family(aux[0])
        obj._set_family(family, aux[1], dict(zip(family.options, aux[2], strict=True)))
        stored = leaves if aux[1] else tuple(jnp.asarray(v) for v in aux[3])
        for name, value in zip(obj._stored_names(), stored, strict=True):
            setattr(obj, name, value)
        return obj

    def log_marginal(self, d, *, noise=None, key=None):
        """``log E[sigmoid(beta d)]`` elementwise; ``noise`` switches a family with a
        ``method`` option to Monte Carlo; otherwise ``"mc"`` draws ``num_samples`` normals
        per element with ``key``."""
        return self._log_marginal(d, noise, key)

    def sample(self, key, sample_shape=()):
        """Draws of ``beta`` with shape ``sample_shape`` (reparameterised)."""
        return self.distribution().sample(key, tuple(sample_shape))

    def __repr__(self) -> str:
        try:
            params = self._parameter_text()
        except TypeError:  # traced values
            params = "traced"
        return f"{type(self).__name__}({params})"


class GammaStrength(_strength_classes.GammaStrengthMixin, Strength):
    """``beta ~ Gamma(shape, rate)`` with the exact logit marginal."""


class LogNormalStrength(_strength_classes.LogNormalStrengthMixin, Strength):
    """``beta = exp(loc + scale * eps)``; ``method`` ``"mc"`` (needs ``key``) or ``"quadrature"``."""


class FixedStrength(_strength_classes.FixedStrengthMixin, Strength):
    """A point mass at ``beta`` (plain DPO / plain logit); never learnable.

    ``family`` is ``"point_mass"`` (``get_family("fixed")`` names the same family).
    """


make_strength = bind(Strength, _strength_classes.make_strength)
