"""Preference-strength marginals ``log E_beta[sigmoid(beta * d)]`` in PyTorch.

All functions broadcast their arguments, return a tensor of the broadcast shape in the
promoted floating dtype (half precision is computed in float32), and are differentiable in
every argument by ordinary autograd. ``d`` is a utility difference (DPO: the implicit reward
margin before scaling), in the same units as ``1 / beta``.
"""

from __future__ import annotations

import torch

from mixlogit import _kernels
from mixlogit._series import default_num_terms
from mixlogit.torch._ops import OPS, as_tensors, float_bits

Number = float | int
TensorLike = torch.Tensor | Number

__all__ = [
    "gamma_logit_marginal",
    "lognormal_logit_marginal",
    "point_mass_logit_marginal",
]


def gamma_logit_marginal(
    d: TensorLike, shape: TensorLike, rate: TensorLike, *, num_terms: int | None = None
) -> torch.Tensor:
    """``log E[sigmoid(beta d)]`` for ``beta ~ Gamma(shape, rate)`` (rate = 1 / scale).

    Exact to the working precision for all ``d`` (including ``d = 0`` and the far negative
    tail, where the value is returned in log space far below float underflow), by a
    CRVZ-accelerated alternating series with ``num_terms`` terms (default: 24 in float64,
    12 in float32).

    Args:
        d: utility difference, any shape.
        shape: Gamma shape ``k > 0``, broadcastable with ``d``.
        rate: Gamma rate ``> 0`` (mean ``shape / rate``), broadcastable with ``d``.
        num_terms: series length; the relative error is below ``2 / 5.83^num_terms``.

    Returns:
        ``log P`` with the broadcast shape of the inputs, ``<= 0``.
    """
    (d_, shape_, rate_), dtype = as_tensors(d, shape, rate)
    n = num_terms if num_terms is not None else default_num_terms(float_bits(d_.dtype))
    return _kernels.gamma_log_marginal(OPS, d_, shape_, rate_, n).to(dtype)


def lognormal_logit_marginal(
    d: TensorLike,
    loc: TensorLike,
    scale: TensorLike,
    *,
    method: str = "quadrature",
    num_points: int = 16,
    num_samples: int = 16,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``log E[sigmoid(beta d)]`` for ``beta = exp(loc + scale * eps)``, ``eps ~ N(0, 1)``.

    Args:
        d, loc, scale: broadcastable tensors or numbers (``scale >= 0``).
        method: ``"quadrature"`` (Gauss-Hermite with ``num_points`` nodes, deterministic) or
            ``"mc"`` (MixDPO's reparameterised estimator, ``log mean_k sigmoid(beta_k d)``).
        num_samples: ``K`` for ``"mc"`` when ``noise`` is not given.
        noise: standard-normal draws of shape ``(K, *batch)`` or ``(K,)`` (shared across the
            batch); drawn with ``generator`` when omitted.
        generator: ``torch.Generator`` for the draws.

    Returns:
        ``log P`` of the broadcast batch shape.
    """
    (d_, loc_, scale_), dtype = as_tensors(d, loc, scale)
    if method == "quadrature":
        return _kernels.lognormal_log_marginal_quadrature(OPS, d_, loc_, scale_, num_points).to(
            dtype
        )
    if method != "mc":
        raise ValueError(f"method must be 'quadrature' or 'mc', got {method!r}")
    if noise is None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        noise = torch.randn(
            (num_samples, *d_.shape), generator=generator, dtype=d_.dtype, device=d_.device
        )
    else:
        noise = noise.to(d_.dtype)
        if noise.dim() == 1:
            noise = noise.reshape(-1, *([1] * d_.dim()))
        if torch.broadcast_shapes(noise.shape[1:], d_.shape) != d_.shape:
            raise ValueError(
                f"noise of shape {tuple(noise.shape)} does not broadcast to (K, *{tuple(d_.shape)})"
            )
    return _kernels.lognormal_log_marginal_mc(OPS, d_, loc_, scale_, noise).to(dtype)


def point_mass_logit_marginal(d: TensorLike, beta: TensorLike) -> torch.Tensor:
    """``log sigmoid(beta d)``: the strength fixed at ``beta`` (plain DPO / plain logit)."""
    (d_, beta_), dtype = as_tensors(d, beta)
    return _kernels.point_mass_log_marginal(OPS, d_, beta_).to(dtype)
