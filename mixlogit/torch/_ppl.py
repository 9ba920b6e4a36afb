"""The :class:`mixlogit._ppl.PPL` protocol on Pyro (PyTorch)."""

from __future__ import annotations

import pyro
import pyro.distributions
import torch

from mixlogit._ppl import PPL as _Protocol
from mixlogit.torch._ops import OPS

__all__ = ["PPL", "PyroPPL"]


class PyroPPL(_Protocol):
    ops = OPS
    library = pyro

    def param(self, name, init, constraint):
        return pyro.param(name, init, constraint=constraint)

    def scale(self, factor):
        return pyro.poutine.scale(scale=factor)

    def asarray(self, value, like=None):
        if like is None:
            tensor = torch.as_tensor(value)
            return tensor if tensor.is_floating_point() else tensor.to(torch.get_default_dtype())
        return torch.as_tensor(value, dtype=like.dtype, device=like.device)

    def full(self, shape, value, like):
        return torch.full(tuple(shape), value, dtype=like.dtype, device=like.device)


#: The Pyro implementation of :class:`mixlogit._ppl.PPL`.
PPL = PyroPPL()
