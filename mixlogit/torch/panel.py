"""Panel strength marginals in PyTorch: one strength ``beta_g`` per group (annotator).

``gamma_panel_logit_marginal``, ``lognormal_panel_logit_marginal``,
``point_mass_panel_logit_marginal``, ``panel_logit_marginal`` (any family) and
``panel_strength_posterior``; written once for both backends (:mod:`mixlogit._panel`), this
module holds torch's plumbing. Results are tensors of the promoted floating dtype of ``d`` and
the parameters (half precision is computed in float32), differentiable by autograd.
"""

from __future__ import annotations

import torch

from mixlogit._panel import PanelFunctions, PanelPlumbing, PanelPosterior, panel_functions
from mixlogit.torch._ops import OPS, promote_floats

__all__ = [*PanelFunctions._fields, "PanelPosterior"]


class TorchPanelPlumbing(PanelPlumbing):
    ops = OPS
    array_type = "torch.Tensor"

    def floats(self, *values):
        return promote_floats(*values, device_of_first=True)

    def ids(self, group):
        group = torch.as_tensor(group)
        if group.is_floating_point() or group.is_complex() or group.dtype == torch.bool:
            raise TypeError(f"group must hold integer ids, got dtype {group.dtype}")
        return group.long()

    def concrete(self, x):
        return x.detach().cpu().numpy()


PLUMBING = TorchPanelPlumbing()
_FUNCTIONS = panel_functions(PLUMBING)

panel_logit_marginal = _FUNCTIONS.panel_logit_marginal
gamma_panel_logit_marginal = _FUNCTIONS.gamma_panel_logit_marginal
lognormal_panel_logit_marginal = _FUNCTIONS.lognormal_panel_logit_marginal
point_mass_panel_logit_marginal = _FUNCTIONS.point_mass_panel_logit_marginal
panel_strength_posterior = _FUNCTIONS.panel_strength_posterior
