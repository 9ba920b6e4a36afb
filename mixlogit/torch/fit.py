"""Maximum-likelihood estimation of a strength distribution from binary choices (PyTorch).

The objective and the optimiser are shared with the JAX version
(:mod:`mixlogit._strength_fit`); here are torch's float64 tensors, autograd for the gradient
and ``torch.autograd.functional.hessian`` for the standard errors.
"""

from __future__ import annotations

import numpy as np
import torch

from mixlogit import _strength_fit
from mixlogit._frontend import bind
from mixlogit._strength_fit import StrengthMLE
from mixlogit.torch.marginals import FRONT_END

__all__ = ["StrengthMLE", "fit_strength_mle"]


class TorchMLE(_strength_fit.MLEBackend):
    front_end = FRONT_END

    def asarray(self, values):
        return torch.as_tensor(values, dtype=torch.float64)

    def value_and_grad(self, f):
        def evaluate(x):
            theta = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            value = f(theta)
            (grad,) = torch.autograd.grad(value, theta)
            return float(value.detach()), grad.numpy().astype(np.float64)

        return evaluate

    def hessian(self, f):
        def evaluate(x):
            h = torch.autograd.functional.hessian(f, torch.tensor(x, dtype=torch.float64))
            return h.numpy().astype(np.float64)

        return evaluate


fit_strength_mle = bind(TorchMLE(), _strength_fit.fit_strength_mle)
