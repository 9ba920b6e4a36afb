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
    tanh = staticmethod(torch.tanh)

    def concatenate(self, xs, axis=0):
        return torch.cat(list(xs), dim=axis)

    def fori_loop(self, num_iterations, body, carry):
        for _ in range(num_iterations):
            carry = body(carry)
        return carry

    def const(self, value, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.array(value), dtype=like.dtype, device=like.device)

    def segment_sum(self, x, segment_ids, num_segments):
        return x.new_zeros((num_segments, *x.shape[1:])).index_add(0, segment_ids, x)

    def segment_max(self, x, segment_ids, num_segments):
        out = x.new_full((num_segments,), -float("inf"))
        return out.scatter_reduce(0, segment_ids, x, reduce="amax")


OPS = TorchOps()
