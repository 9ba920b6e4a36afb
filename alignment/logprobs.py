"""Summed completion log-probabilities of a causal LM, without materialising the full logits.

The backbone runs through the (possibly wrapped: DDP, PEFT, accelerate) model as usual, with
the LM head temporarily passing hidden states through; the head is then applied only at the
positions that predict completion tokens, in row chunks, inside a custom autograd function that
recomputes each chunk's logits in the backward pass. Peak memory for the head is one chunk of
``(rows, vocab)`` logits instead of ``(2B, L, vocab)``, and prompt and padding positions cost
nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal, overload

import torch
from torch import nn

__all__ = ["completion_logps", "find_causal_lm"]

_CHUNK_ELEMENTS = 1 << 24  # logits per chunk (64 MiB in float32)


class _ChunkedTokenLogProbs(torch.autograd.Function):
    """``log softmax(hidden @ weight.T + bias)[label]`` per row, chunked over rows.

    With ``mean_logits`` it also returns each row's logits averaged over the vocabulary (no
    gradient; an empty tensor otherwise), read from the chunk of logits the log-softmax
    builds anyway.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, chunk_rows, mean_logits):  # type: ignore[override]
        acc = torch.promote_types(hidden.dtype, torch.float32)  # at least float32 for the softmax
        out = hidden.new_empty(hidden.shape[0], dtype=acc)
        lse = hidden.new_empty(hidden.shape[0], dtype=acc)
        means = hidden.new_empty(hidden.shape[0] if mean_logits else 0, dtype=acc)
        for start in range(0, hidden.shape[0], chunk_rows):
            stop = start + chunk_rows
            logits = nn.functional.linear(hidden[start:stop], weight, bias).to(acc)
            chunk_lse = torch.logsumexp(logits, dim=-1)
            out[start:stop] = logits.gather(1, labels[start:stop, None]).squeeze(1) - chunk_lse
            lse[start:stop] = chunk_lse
            if mean_logits:
                means[start:stop] = logits.mean(dim=-1)
        ctx.save_for_backward(hidden, weight, bias, labels, lse)
        ctx.chunk_rows = chunk_rows
        ctx.mark_non_differentiable(means)
        return out, means

    @staticmethod
    def backward(ctx, grad_out, grad_means):  # type: ignore[override]
        hidden, weight, bias, labels, lse = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_hidden = torch.zeros_like(hidden) if need_h else None
        acc = lse.dtype
        grad_weight = torch.zeros_like(weight, dtype=acc) if need_w else None
        grad_bias = torch.zeros_like(bias, dtype=acc) if (need_b and bias is not None) else None
        rows = ctx.chunk_rows
        for start in range(0, hidden.shape[0], rows):
            stop = start + rows
            h = hidden[start:stop]
            logits = nn.functional.linear(h, weight, bias).to(acc)
            g_out = grad_out[start:stop].to(acc)
            # d logp / d logits = onehot(label) - softmax, scaled by the incoming gradient
            grad_logits = torch.exp(logits - lse[start:stop, None]).mul_(-g_out[:, None])
            grad_logits.scatter_add_(1, labels[start:stop, None], g_out[:, None])
            grad_logits = grad_logits.to(hidden.dtype)
            if grad_hidden is not None:
                grad_hidden[start:stop] = grad_logits @ weight
            if grad_weight is not None:
                grad_weight.addmm_(grad_logits.t().to(acc), h.to(acc))
            if grad_bias is not None:
                grad_bias += grad_logits.to(acc).sum(0)
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        if grad_bias is not None:
            grad_bias = grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None, None


def find_causal_lm(model: nn.Module) -> nn.Module:
    """The innermost ``PreTrainedModel`` under DDP/accelerate (``.module``) and PEFT wrappers."""
    seen = set()
    while id(model) not in seen:
        seen.add(id(model))
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        elif isinstance(getattr(model, "module", None), nn.Module):
            model = model.module
    return model


_LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "logits_scaling",
    "output_multiplier",
)


def _plain_head(causal_lm: nn.Module) -> nn.Linear | None:
    head = (
        causal_lm.get_output_embeddings() if hasattr(causal_lm, "get_output_embeddings") else None
    )
    if type(head) is not nn.Linear:  # LoRA-wrapped or custom heads go through the full forward
        return None
    config = getattr(causal_lm, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    if any(getattr(text_config, name, None) not in (None, 1.0) for name in _LOGIT_TRANSFORMS):
        return None  # the model post-processes logits; hidden states would be mangled
    return head


@contextlib.contextmanager
def _head_returns_hidden(head: nn.Module) -> Iterator[None]:
    head.forward = lambda hidden_states: (
        hidden_states
    )  # instance attribute shadows the class method
    try:
        yield
    finally:
        del head.forward


@overload
def completion_logps(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    chunk_rows: int | None = ...,
    return_logit_sums: Literal[False] = ...,
    **model_kwargs: Any,
) -> torch.Tensor: ...


@overload
def completion_logps(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    chunk_rows: int | None = ...,
    return_logit_sums: Literal[True],
    **model_kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


def completion_logps(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    chunk_rows: int | None = None,
    return_logit_sums: bool = False,
    **model_kwargs: Any,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed log-probability (nats) of the completion tokens of each sequence.

    Args:
        model: a causal LM (Hugging Face ``PreTrainedModel``, possibly wrapped by PEFT, DDP or
            accelerate).
        input_ids: token ids, shape ``(N, L)``, right padded.
        attention_mask: 1 on real tokens, shape ``(N, L)``.
        completion_mask: 1 on completion tokens, shape ``(N, L)``; the log-prob of token ``t``
            is read from the model's output at position ``t - 1``.
        chunk_rows: token rows per LM-head chunk (default: 64 MiB of float32 logits).
        return_logit_sums: also return, per sequence, the sum over its completion tokens of
            the logits averaged over the vocabulary (the logits at position ``t - 1`` that
            predict completion token ``t``), and the number of those tokens: TRL's
            ``logits/chosen`` and ``logits/rejected`` are the ratio of their batch totals.
            Read from the logits the log-softmax computes anyway (no second forward pass, no
            extra ``(rows, vocab)`` buffer); no gradient.

    Returns:
        Log-probabilities, shape ``(N,)``, at least float32, differentiable in the model
        parameters; with ``return_logit_sums`` the tuple ``(logps, logit_sums, num_tokens)``,
        all of shape ``(N,)`` (``logit_sums`` in logit units, at least float32 and detached;
        ``num_tokens`` the completion token counts, as ``logit_sums``' dtype).
    """
    if input_ids.shape != completion_mask.shape or input_ids.shape != attention_mask.shape:
        raise ValueError(
            f"input_ids {tuple(input_ids.shape)}, attention_mask {tuple(attention_mask.shape)} and "
            f"completion_mask {tuple(completion_mask.shape)} must have the same shape"
        )
    target_mask = completion_mask[:, 1:].bool()
    targets = input_ids[:, 1:][target_mask]
    rows = target_mask.nonzero()[:, 0]
    causal_lm = find_causal_lm(model)
    head = _plain_head(causal_lm)
    model_kwargs.setdefault("use_cache", False)
    if head is None:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, **model_kwargs).logits
        selected = logits[:, :-1][target_mask]
        selected = selected.to(torch.promote_types(selected.dtype, torch.float32))
        token_logps = selected.gather(1, targets[:, None]).squeeze(1) - selected.logsumexp(-1)
        token_means = selected.detach().mean(-1) if return_logit_sums else None
    else:
        with _head_returns_hidden(head):
            hidden = model(
                input_ids=input_ids, attention_mask=attention_mask, **model_kwargs
            ).logits
        if hidden.shape[-1] != head.in_features:
            raise RuntimeError(
                f"expected hidden states of size {head.in_features} from "
                f"{type(causal_lm).__name__}, "
                f"got {tuple(hidden.shape)}"
            )
        selected = hidden[:, :-1][target_mask]
        if chunk_rows is None:
            chunk_rows = max(16, _CHUNK_ELEMENTS // head.out_features)
        token_logps, token_means = _ChunkedTokenLogProbs.apply(
            selected, head.weight, head.bias, targets, int(chunk_rows), return_logit_sums
        )
    out = torch.zeros(input_ids.shape[0], dtype=token_logps.dtype, device=input_ids.device)
    logps = out.index_add(0, rows, token_logps)
    if not return_logit_sums:
        return logps
    assert token_means is not None
    logit_sums = torch.zeros_like(logps).index_add_(0, rows, token_means.detach())
    num_tokens = target_mask.sum(1).to(logps.dtype)
    return logps, logit_sums, num_tokens
