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

    def elementwise(self, fn, inputs):
        return in_chunks(fn, inputs)

    def with_gradients(self, value, value_and_grads, inputs):
        tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
        if not (torch.is_grad_enabled() and any(x.requires_grad for x in tensors)):
            return in_chunks(value, inputs)
        # The front ends pass inputs already broadcast (torch.broadcast_tensors, whose expand
        # sums the gradients back); direct kernel callers may not: backward sums them itself.
        like = tensors[0]
        inputs = tuple(torch.as_tensor(x, dtype=like.dtype, device=like.device) for x in inputs)
        return _PrecomputedGradients.apply(value_and_grads, *inputs)


#: Elements per chunk of :func:`in_chunks`: the few arrays of one chunk stay in the CPU's
#: cache (1 MiB each in float64), and a chunk is still large enough for both intra-op threads
#: and to make dispatch overhead small (benchmarks/bench_marginals.py, "chunked" rows).
CHUNK_ELEMENTS = 131_072


def in_chunks(fn, inputs):
    """``fn(*inputs)`` for an elementwise ``fn`` returning a tensor or ``(tensor, (tensor,
    ...))``, evaluated over consecutive chunks of the broadcast inputs on CPU.

    Eager torch writes every intermediate of a long kernel (the Gamma series makes a dozen
    per term) to memory; over a chunk they stay in cache, twice as fast at 1e6 elements. Under
    autograd each chunk is its own small graph, and the backward pass is faster for the same
    reason (the LogNormal quadrature's forward+backward halves).
    Small inputs, other devices (one fused launch matters more there) and inputs that are not
    all tensors go straight to ``fn``.
    """
    if not all(isinstance(x, torch.Tensor) for x in inputs):
        return fn(*inputs)
    inputs = torch.broadcast_tensors(*inputs)
    shape = inputs[0].shape
    if inputs[0].numel() <= 2 * CHUNK_ELEMENTS or inputs[0].device.type != "cpu":
        return fn(*inputs)
    flat = [x.reshape(-1) for x in inputs]
    parts = [
        fn(*(x[start : start + CHUNK_ELEMENTS] for x in flat))
        for start in range(0, flat[0].numel(), CHUNK_ELEMENTS)
    ]
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts).reshape(shape)
    value = torch.cat([part[0] for part in parts]).reshape(shape)
    grads = tuple(
        torch.cat([part[1][i] for part in parts]).reshape(shape) for i in range(len(parts[0][1]))
    )
    return value, grads


class _PrecomputedGradients(torch.autograd.Function):
    """``value_and_grads(*inputs)[0]`` with the returned gradients as its derivatives.

    The forward pass computes value and gradients together, without a graph, and keeps the
    gradients for the backward pass, which only scales them. A backward pass that is itself
    differentiated (``create_graph=True``, as ``torch.autograd.functional.hessian`` does)
    recomputes the gradients from the saved inputs with a graph, so second derivatives are
    the autograd derivatives of the gradient code, not the zero of a constant.
    """

    @staticmethod
    def forward(ctx, value_and_grads, *inputs):
        value, grads = in_chunks(value_and_grads, inputs)
        ctx.value_and_grads = value_and_grads
        ctx.num_inputs = len(inputs)
        ctx.save_for_backward(*inputs, *grads)
        return value

    @staticmethod
    def backward(ctx, grad_value):
        saved = ctx.saved_tensors
        inputs, grads = saved[: ctx.num_inputs], saved[ctx.num_inputs :]
        if torch.is_grad_enabled():  # create_graph: the gradients are differentiated too
            _, grads = in_chunks(ctx.value_and_grads, inputs)
        input_grads = [
            # an input broadcast into the value gets the sum over the broadcast axes
            (grad_value * grad).sum_to_size(x.shape) if needed else None
            for x, grad, needed in zip(inputs, grads, ctx.needs_input_grad[1:], strict=True)
        ]
        return (None, *input_grads)


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
