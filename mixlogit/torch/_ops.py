"""PyTorch primitives for the shared kernels in :mod:`mixlogit._kernels`."""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F

_HALF = (torch.float16, torch.bfloat16)


class TorchOps:
    def const(self, value, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.array(value), dtype=like.dtype, device=like.device)

    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    log1p = staticmethod(torch.log1p)
    log_sigmoid = staticmethod(F.logsigmoid)
    sqrt = staticmethod(torch.sqrt)
    stop_gradient = staticmethod(lambda x: x.detach())
    erfc = staticmethod(torch.special.erfc)
    log_ndtr = staticmethod(torch.special.log_ndtr)
    isinf = staticmethod(torch.isinf)

    def where(self, cond, x, y):
        return torch.where(cond, x, y)

    def minimum(self, x, bound):
        return torch.clamp(x, max=bound)

    def clip(self, x, lower, upper):
        return torch.clamp(x, min=lower, max=upper)

    def sum(self, x, axis):
        return x.sum(dim=axis)

    def logsumexp(self, x, axis):
        return torch.logsumexp(x, dim=axis)

    def finfo_max(self, like):
        return float(torch.finfo(like.dtype).max)


OPS = TorchOps()


def as_tensors(*values) -> tuple[tuple[torch.Tensor, ...], torch.dtype]:
    """Broadcast ``values`` to one floating dtype and shape; returns them and the output dtype.

    Python numbers adopt the dtype of the tensors (as in torch's type promotion); half
    precision inputs are computed in float32 and the caller casts the result back.
    """
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    dtype = None
    for t in tensors:
        if t.is_floating_point():
            dtype = t.dtype if dtype is None else torch.promote_types(dtype, t.dtype)
    if dtype is None:
        dtype = torch.get_default_dtype()
    device = tensors[0].device if tensors else None
    work = torch.float32 if dtype in _HALF else dtype
    converted = []
    for v in values:
        if isinstance(v, numbers.Number) or not isinstance(v, torch.Tensor):
            converted.append(torch.as_tensor(v, dtype=work, device=device))
        else:
            converted.append(v.to(work))
    return tuple(torch.broadcast_tensors(*converted)), dtype


def float_bits(dtype: torch.dtype) -> int:
    return torch.finfo(dtype).bits
