"""Preference-strength distributions as ``torch.nn.Module`` objects.

One module class, :class:`Strength`, serves every family of :mod:`mixlogit.families`: the
moments, marginals and posterior moments are the family's functions evaluated with torch ops
(written once for both backends in :mod:`mixlogit._strength_classes`), so this file holds only
the torch plumbing. A positive parameter is stored unconstrained (``raw_<name>``, mapped back
by softplus) so any optimiser can train it; a real one (``loc``) is stored as is;
``learnable=False`` makes them buffers (saved and moved with the module, never trained:
MixDPO's fixed-distribution baseline), and a point mass is always a buffer ``beta``.
:class:`GammaStrength`, :class:`LogNormalStrength` and :class:`FixedStrength` are the named
forms; :func:`make_strength` builds the right one from a family name.
"""

from __future__ import annotations

import torch
from torch import nn

from mixlogit import _strength_classes
from mixlogit._frontend import bind
from mixlogit.families import (
    inverse_softplus,  # noqa: F401  (re-exported)
)
from mixlogit.torch.marginals import FRONT_END

__all__ = list(_strength_classes.STRENGTH_NAMES)


class Strength(_strength_classes.StrengthMixin, nn.Module):
    """A distribution of the preference strength ``beta > 0`` of any family, with exact
    (or quadrature / Monte Carlo) logit marginals.

    Args:
        family: a family name (``"gamma"``, ``"lognormal"``, ``"point_mass"`` / ``"fixed"``) or
            a :class:`~mixlogit.families.StrengthFamily`.
        params: natural parameters; missing ones take ``family.defaults``.
        learnable: train the parameters (ignored for a point mass, which never is).
        options: the family's options (``num_terms``; ``method``, ``num_samples``,
            ``num_points``), kept as attributes of the same names.

    Attributes:
        family: the canonical family name (``"point_mass"`` for a fixed strength).
        strength_family: the :class:`~mixlogit.families.StrengthFamily`.
    """

    front_end = FRONT_END

    def _store(self, name: str, value: float) -> None:
        tensor = torch.tensor(value, dtype=torch.get_default_dtype())
        if self.learnable:
            self.register_parameter(name, nn.Parameter(tensor))
        else:
            self.register_buffer(name, tensor)

    def log_marginal(
        self,
        d: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``log E[sigmoid(beta d)]`` elementwise; same shape as ``d``.

        ``noise`` (standard normal, ``(K, *d.shape)`` or ``(K,)``) switches a family with a
        ``method`` option to Monte Carlo; otherwise ``"mc"`` draws with ``generator``.
        """
        return self._log_marginal(d, noise, generator)

    def forward(self, d: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.log_marginal(d, **kwargs)

    def sample(
        self, sample_shape: tuple[int, ...] | torch.Size = (), generator=None
    ) -> torch.Tensor:
        """Reparameterised draws of ``beta`` with shape ``sample_shape``."""
        if generator is not None:
            raise NotImplementedError(
                f"{type(self).__name__}.sample draws from the global torch RNG; "
                "seed it with torch.manual_seed instead of passing a generator"
            )
        return self.distribution().rsample(torch.Size(sample_shape))

    def extra_repr(self) -> str:
        moments = f"mean={self.mean.item():.6g}, variance={self.variance.item():.6g}"
        return f"{self._parameter_text()}, {moments}"


class GammaStrength(_strength_classes.GammaStrengthMixin, Strength):
    """``beta ~ Gamma(shape, rate)``; the logit marginal is exact (alternating-series form).

    MixDPO's initialisation is ``shape=2.0, rate=16.7`` (mean 0.12, DPO's beta scale).
    """


class LogNormalStrength(_strength_classes.LogNormalStrengthMixin, Strength):
    """``beta = exp(loc + scale * eps)``, ``eps ~ N(0, 1)``.

    ``method="mc"`` is MixDPO's reparameterised estimator with ``num_samples`` draws per
    element; ``method="quadrature"`` is deterministic Gauss-Hermite with ``num_points`` nodes.
    MixDPO's initialisation is ``loc=-2.3, scale=0.6`` (mean 0.12).
    """


class FixedStrength(_strength_classes.FixedStrengthMixin, Strength):
    """A point mass at ``beta``: plain DPO (``beta = 0.1``) or a plain logit (``beta = 1``).

    ``family`` is ``"point_mass"`` (``get_family("fixed")`` names the same family).
    """

    def sample(self, sample_shape=(), generator=None):
        # No randomness, so any generator is as good as none.
        return self.beta.expand(torch.Size(sample_shape)).clone()


make_strength = bind(Strength, _strength_classes.make_strength)
