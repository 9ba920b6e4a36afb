"""PyTorch primitives for the shared kernels in :mod:`mixlogit._kernels`."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mixlogit._array_ops import NamespaceOps


class TorchOps(NamespaceOps):
    xp = torch
    special = torch.special
    log_sigmoid = staticmethod(F.logsigmoid)
    softplus = staticmethod(F.softplus)
    stop_gradient = staticmethod(lambda x: x.detach())
    sigmoid = staticmethod(torch.sigmoid)

    def const(self, value, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.array(value), dtype=like.dtype, device=like.device)

    def segment_sum(self, x, segment_ids, num_segments):
        return x.new_zeros((num_segments, *x.shape[1:])).index_add(0, segment_ids, x)

    def segment_max(self, x, segment_ids, num_segments):
        out = x.new_full((num_segments,), -float("inf"))
        return out.scatter_reduce(0, segment_ids, x, reduce="amax")


_HALF = (torch.float16, torch.bfloat16)


def promote_floats(*values, device_of_first: bool = False):
    """``values`` (tensors, Python numbers) as tensors of their promoted floating dtype, and
    the function that casts a result back to it.

    Python numbers adopt the dtype of the tensors, as in torch's type promotion (the default
    dtype without floating tensors); half precision is computed in float32. Numbers go to the
    device of the first tensor, and so do tensors with ``device_of_first`` (else they stay).
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
    converted = [
        v.to(work)
        if isinstance(v, torch.Tensor) and not device_of_first
        else torch.as_tensor(v, dtype=work, device=device)
        for v in values
    ]
    return converted, lambda x: x.to(dtype)


OPS = TorchOps()
