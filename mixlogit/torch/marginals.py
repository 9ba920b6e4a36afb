"""Preference-strength marginals ``log E_beta[sigmoid(beta * d)]`` in PyTorch.

All functions broadcast their arguments, return a tensor of the broadcast shape in the
promoted floating dtype (half precision is computed in float32), and are differentiable in
every argument by ordinary autograd. ``d`` is a utility difference (DPO: the implicit reward
margin before scaling), in the same units as ``1 / beta``. :func:`logit_marginal` takes any
family of :mod:`mixlogit.families`; the other three are its named forms. The functions are
written once for both backends (:mod:`mixlogit._frontend`); this module holds torch's
plumbing, :data:`FRONT_END`.
"""

from __future__ import annotations

import torch

from mixlogit._frontend import FrontEnd, MarginalFunctions
from mixlogit.torch._ops import OPS, promote_floats

__all__ = list(MarginalFunctions._fields)


class TorchFrontEnd(FrontEnd):
    ops = OPS
    array_type = "torch.Tensor"

    def broadcast(self, *values):
        converted, restore = promote_floats(*values)
        return torch.broadcast_tensors(*converted), restore

    ppl_module = "mixlogit.torch._ppl"
    rng_keyword = "generator"
    rng_doc = "``torch.Generator`` for the draws"

    def normal_noise(self, noise, d, num_samples, rng):
        if noise is None:
            if num_samples < 1:
                raise ValueError(f"num_samples must be >= 1, got {num_samples}")
            return torch.randn(
                (num_samples, *d.shape), generator=rng, dtype=d.dtype, device=d.device
            )
        noise = noise.to(d.dtype)
        if noise.dim() == 1:
            noise = noise.reshape(-1, *([1] * d.dim()))
        if torch.broadcast_shapes(noise.shape[1:], d.shape) != d.shape:
            raise ValueError(
                f"noise of shape {tuple(noise.shape)} does not broadcast to (K, *{tuple(d.shape)})"
            )
        return noise

    def concrete(self, x):
        """``x``'s values as NumPy (a torch tensor's values are always known), for the
        parameter checks of the public functions (:meth:`StrengthFamily.check_values`)."""
        return x.detach().cpu().numpy()

    def signed_margin(self, d, y):
        d = torch.as_tensor(d)
        y = torch.as_tensor(y, device=d.device)
        return torch.where(y.bool() if y.dtype == torch.bool else y > 0.5, d, -d)


#: Torch's plumbing under the shared front ends.
FRONT_END = TorchFrontEnd()

logit_marginal = FRONT_END.functions.logit_marginal
gamma_logit_marginal = FRONT_END.functions.gamma_logit_marginal
lognormal_logit_marginal = FRONT_END.functions.lognormal_logit_marginal
point_mass_logit_marginal = FRONT_END.functions.point_mass_logit_marginal
