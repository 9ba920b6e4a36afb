"""Per-pair preference margins and their micro/macro averages over subgroups.

The margin of a pair is ``log pi(y_w|x) - log pi(y_l|x)`` under the policy (nats), as in the
MixDPO paper's evaluation; the macro average first averages within each subgroup, then across
subgroups, so that small subgroups count as much as large ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from alignment.data import TOKENIZED_COLUMNS, PreferenceCollator, tokenize_preference_dataset
from alignment.logprobs import completion_logps

__all__ = ["macro_micro_margins", "preference_margins"]


@torch.no_grad()
def preference_margins(
    model: torch.nn.Module,
    dataset: Any,
    tokenizer: Any,
    *,
    batch_size: int = 16,
    max_length: int | None = 128,
    max_prompt_length: int | None = 64,
) -> np.ndarray:
    """Policy margins ``log pi(chosen) - log pi(rejected)`` per pair, shape ``(len(dataset),)``."""
    dataset = tokenize_preference_dataset(
        dataset,
        tokenizer,
        max_length=max_length,
        max_prompt_length=max_prompt_length,
        name="dataset",
    )
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer needs a pad token")
    collator = PreferenceCollator(pad_token_id=tokenizer.pad_token_id)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    view = dataset.select_columns(list(TOKENIZED_COLUMNS))
    out = []
    try:
        for start in range(0, len(view), batch_size):
            rows = view[start : start + batch_size]
            examples = [
                dict(zip(TOKENIZED_COLUMNS, values, strict=True))
                for values in zip(*(rows[c] for c in TOKENIZED_COLUMNS), strict=True)
            ]
            batch = {k: v.to(device) for k, v in collator(examples).items()}
            logps = completion_logps(
                model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
            )
            chosen, rejected = logps.chunk(2)
            out.append((chosen - rejected).double().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out)


def macro_micro_margins(
    margins: Sequence[float] | np.ndarray, groups: Sequence[Any]
) -> dict[str, Any]:
    """Micro (over pairs) and macro (over subgroups) averages of per-pair margins.

    Returns:
        ``{"micro": float, "macro": float, "by_group": {group: mean}, "counts": {group: n}}``.
    """
    margins = np.asarray(margins, dtype=float)
    groups = np.asarray(list(groups), dtype=object)
    if margins.shape != groups.shape:
        raise ValueError(f"margins {margins.shape} and groups {groups.shape} differ in shape")
    if margins.size == 0:
        raise ValueError("no margins to average")
    names = sorted(set(groups.tolist()), key=str)
    by_group = {name: float(margins[groups == name].mean()) for name in names}
    counts = {name: int((groups == name).sum()) for name in names}
    return {
        "micro": float(margins.mean()),
        "macro": float(np.mean(list(by_group.values()))),
        "by_group": by_group,
        "counts": counts,
    }
