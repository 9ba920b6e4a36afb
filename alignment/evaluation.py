"""Held-out evaluation: per-pair preference margins by subgroup, and judged win rates.

* :func:`preference_margins` computes ``log pi(chosen|x) - log pi(rejected|x)`` (nats) for every
  pair of a preference set, as in the MixDPO paper's evaluation; :func:`evaluate_margins` returns
  them (and, given the reference model, the reference-subtracted ``reward_margin``, the DPO
  implicit reward margin before its scale) with the pairs' subgroup columns (optionally saved as ``.csv``/``.jsonl``/``.parquet``);
  :func:`summarize_margins` gives micro (over pairs) and macro (mean of subgroup means, so small
  subgroups count as much as large ones) averages per subgroup column, the point estimates of
  :func:`analysis.subgroup_margins` (both average with :func:`micro_macro_margins`).
* :func:`win_rate` compares two lists of responses with a pluggable judge; a judge is any
  callable ``judge(prompt, response_a, response_b) -> P(a beats b)`` in ``[0, 1]``
  (:class:`RewardJudge` wraps a local reward function; an API judge is a user's callable). With
  ``length_controlled=True`` it also fits the length-controlled win rate: a logistic model
  ``P(a wins) = sigmoid(theta + phi * tanh(dlen / sd(dlen)))`` by maximum likelihood, whose
  ``sigmoid(theta)`` is the win rate at equal lengths (the idea of AlpacaEval 2's
  length-controlled win rate, without its per-instruction terms).
* :func:`generate_responses` / :func:`compare_models`: greedy (or sampled) generations of two
  models on the same prompts (string or conversational; through the tokenizer's chat template
  when it has one, see :func:`render_generation_prompts`), then :func:`win_rate`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from alignment.data import (
    DEFAULT_MAX_LENGTH,
    TOKENIZED_COLUMNS,
    PreferenceCollator,
    tokenize_preference_dataset,
)
from alignment.logprobs import completion_logps
from alignment.metrics import micro_macro_margins
from mixlogit._deprecation import deprecated_keywords

__all__ = [
    "RewardJudge",
    "compare_models",
    "evaluate_margins",
    "generate_responses",
    "length_controlled_win_rate",
    "preference_margins",
    "render_generation_prompts",
    "summarize_margins",
    "win_rate",
]

# judge(prompt, response_a, response_b): the prompt as in the data (a string or messages).
Judge = Callable[[Any, str, str], float]


# ----------------------------------------------------------------------------- margins
@torch.no_grad()
def preference_margins(
    model: torch.nn.Module,
    dataset: Any,
    tokenizer: Any,
    *,
    batch_size: int = 16,
    max_length: int | None = DEFAULT_MAX_LENGTH,
    max_prompt_length: int | None = None,
    progress: str | None = None,
) -> np.ndarray:
    """Policy margins ``log pi(chosen) - log pi(rejected)`` per pair, shape ``(len(dataset),)``.

    Args:
        progress: label of a ``tqdm`` progress bar over the batches (default: no bar).
    """
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
    starts = range(0, len(view), batch_size)
    if progress is not None:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=progress, leave=False)
    out = []
    try:
        for start in starts:
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


@deprecated_keywords(subgroup_columns="by")
def evaluate_margins(
    model: torch.nn.Module,
    dataset: Any,
    tokenizer: Any,
    *,
    by: Sequence[str] | None = None,
    batch_size: int = 16,
    max_length: int | None = DEFAULT_MAX_LENGTH,
    max_prompt_length: int | None = None,
    output_path: str | os.PathLike | None = None,
    progress: str | None = None,
    reference_model: torch.nn.Module | None = None,
) -> Any:
    """Per-pair policy margins with the pairs' subgroup columns, as a ``pandas.DataFrame``.

    Args:
        by: subgroup columns to carry over (default: every column that is not text, token ids
            or reference log-probs); formerly ``subgroup_columns``.
        output_path: also write the table (``.csv``, ``.jsonl`` or ``.parquet``).
        progress: label of a progress bar over the batches (default: none).
        reference_model: the DPO reference (the model training started from). With it the
            table also holds ``reference_margin`` (its margin on the same tokens) and
            ``reward_margin = margin - reference_margin``: the DPO implicit reward margin
            ``[log pi(c) - log ref(c)] - [log pi(r) - log ref(r)]`` before the reward scale
            (``beta`` in DPO), i.e. the trainer's ``rewards/margins`` divided by that scale.

    Returns:
        One row per pair: ``pair_index``, ``margin`` (nats, float64; the raw policy margin),
        with ``reference_model`` also ``reference_margin`` and ``reward_margin`` (nats), and
        the ``by`` columns.
    """
    import pandas as pd

    skip = {
        "prompt",
        "chosen",
        "rejected",
        "prompt_ids",
        "chosen_ids",
        "rejected_ids",
        "ref_chosen_logps",
        "ref_rejected_logps",
    }
    if by is None:
        by = [c for c in dataset.column_names if c not in skip]
    missing = [c for c in by if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"subgroup column(s) {missing} are not in the dataset; it has "
            f"{sorted(dataset.column_names)}"
        )
    margins = preference_margins(
        model,
        dataset,
        tokenizer,
        batch_size=batch_size,
        max_length=max_length,
        max_prompt_length=max_prompt_length,
        progress=progress,
    )
    frame = pd.DataFrame({"pair_index": np.arange(len(margins)), "margin": margins})
    if reference_model is not None:
        reference = preference_margins(
            reference_model,
            dataset,
            tokenizer,
            batch_size=batch_size,
            max_length=max_length,
            max_prompt_length=max_prompt_length,
            progress=None if progress is None else f"{progress} (reference)",
        )
        frame["reference_margin"] = reference
        frame["reward_margin"] = margins - reference
    for column in by:
        frame[column] = dataset[column]
    if output_path is not None:
        _save_frame(frame, output_path)
    return frame


def _save_frame(frame: Any, path: str | os.PathLike) -> None:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if path.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif path.endswith(".jsonl"):
        frame.to_json(path, orient="records", lines=True)
    elif path.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        raise ValueError(f"{path}: expected a .csv, .jsonl or .parquet file name")


@deprecated_keywords(subgroup_columns="by")
def summarize_margins(frame: Any, by: Sequence[str], *, value: str = "margin") -> dict[str, Any]:
    """Micro and macro averages of ``frame[value]`` for each subgroup column in ``by``
    (formerly ``subgroup_columns``).

    Args:
        value: the per-pair column to average: ``"margin"`` (raw policy margin, default),
            ``"reward_margin"`` (reference-subtracted, from :func:`evaluate_margins` with a
            ``reference_model``) or any numeric column, e.g. a 0/1 preference-accuracy column.

    Returns:
        ``{"micro": mean over pairs, "n_pairs": n, "by_column": {column: {"micro", "macro",
        "by_group", "counts"}}}`` (see :func:`micro_macro_margins`).
    """
    if value not in frame.columns:
        raise ValueError(f"column {value!r} is not in the table; it has {list(frame.columns)}")
    margins = frame[value].to_numpy(dtype=float)
    if not np.all(np.isfinite(margins)):
        bad = np.flatnonzero(~np.isfinite(margins))[:5].tolist()
        raise ValueError(f"non-finite {value} values at pair indices {bad}")
    return {
        "micro": float(margins.mean()),
        "n_pairs": int(margins.size),
        "by_column": {
            column: micro_macro_margins(margins, frame[column].astype(str).tolist())
            for column in by
        },
    }


# ----------------------------------------------------------------------------- judges
class RewardJudge:
    """A judge from a local reward function ``reward(prompt, response) -> float``.

    ``P(a beats b) = sigmoid((r_a - r_b) / temperature)``; ``temperature=0`` (default) gives a
    hard decision: 1, 0.5 on a tie, 0.
    """

    def __init__(self, reward: Callable[[str, str], float], temperature: float = 0.0):
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.reward = reward
        self.temperature = temperature

    def __call__(self, prompt: str, response_a: str, response_b: str) -> float:
        diff = float(self.reward(prompt, response_a)) - float(self.reward(prompt, response_b))
        if not math.isfinite(diff):
            raise ValueError(f"the reward is not finite for prompt {prompt!r:.60}")
        if self.temperature == 0:
            return 1.0 if diff > 0 else 0.5 if diff == 0 else 0.0
        return 1.0 / (1.0 + math.exp(-diff / self.temperature))


def length_controlled_win_rate(
    outcomes: Sequence[float], length_differences: Sequence[float], *, l2: float = 1e-3
) -> dict[str, float]:
    """Fit ``P(a wins) = sigmoid(theta + phi * tanh(dlen / sd))`` and return ``sigmoid(theta)``.

    Args:
        outcomes: judged probabilities that ``a`` wins, in ``[0, 1]`` (soft labels allowed).
        length_differences: ``len(a) - len(b)`` per comparison (characters or tokens).
        l2: ridge penalty on ``(theta, phi)`` that keeps the fit finite when outcomes are
            separable by length.

    Returns:
        ``{"lc_win_rate", "theta", "phi"}``.
    """
    y = np.asarray(outcomes, dtype=float)
    dlen = np.asarray(length_differences, dtype=float)
    if y.shape != dlen.shape or y.ndim != 1 or y.size == 0:
        raise ValueError(f"outcomes {y.shape} and length differences {dlen.shape} must be (n,)")
    scale = dlen.std()
    x = np.tanh(dlen / scale) if scale > 0 else np.zeros_like(dlen)
    design = np.stack([np.ones_like(x), x], axis=1)
    coef = np.zeros(2)
    for _ in range(100):  # Newton on the penalised mean log-likelihood (concave)
        p = 1.0 / (1.0 + np.exp(-(design @ coef)))
        grad = design.T @ (y - p) / y.size - l2 * coef
        hess = -(design.T * (p * (1 - p))) @ design / y.size - l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        coef -= step
        if np.max(np.abs(step)) < 1e-12:
            break
    theta, phi = coef
    return {"lc_win_rate": float(1.0 / (1.0 + math.exp(-theta))), "theta": theta, "phi": phi}


def win_rate(
    prompts: Sequence[Any],
    responses_a: Sequence[str],
    responses_b: Sequence[str],
    judge: Judge,
    *,
    length_controlled: bool = False,
    swap_positions: bool = False,
) -> dict[str, Any]:
    """Win rate of ``responses_a`` over ``responses_b`` under ``judge``.

    Args:
        judge: ``judge(prompt, a, b) -> P(a beats b)`` in ``[0, 1]``.
        length_controlled: also return ``lc_win_rate`` (see :func:`length_controlled_win_rate`,
            lengths in characters).
        swap_positions: judge both orders and average ``(j(a, b) + 1 - j(b, a)) / 2`` (removes
            a position bias of order-sensitive judges).

    Returns:
        ``{"win_rate", "wins", "ties", "losses", "n", "outcomes"}`` (+ ``lc_win_rate``,
        ``theta``, ``phi``); ``wins``/``ties``/``losses`` count outcomes > 0.5, = 0.5, < 0.5.
    """
    n = len(prompts)
    if not (len(responses_a) == len(responses_b) == n) or n == 0:
        raise ValueError(
            f"need the same non-zero number of prompts ({n}), responses_a ({len(responses_a)}) "
            f"and responses_b ({len(responses_b)})"
        )
    outcomes = []
    for i, (prompt, a, b) in enumerate(zip(prompts, responses_a, responses_b, strict=True)):
        p = float(judge(prompt, a, b))
        if swap_positions:
            p = 0.5 * (p + 1.0 - float(judge(prompt, b, a)))
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"judge returned {p} for comparison {i}; expected a value in [0, 1]")
        outcomes.append(p)
    y = np.asarray(outcomes)
    result: dict[str, Any] = {
        "win_rate": float(y.mean()),
        "wins": int((y > 0.5).sum()),
        "ties": int((y == 0.5).sum()),
        "losses": int((y < 0.5).sum()),
        "n": n,
        "outcomes": y.tolist(),
    }
    if length_controlled:
        dlen = [len(a) - len(b) for a, b in zip(responses_a, responses_b, strict=True)]
        result.update(length_controlled_win_rate(y, dlen))
    return result


# ----------------------------------------------------------------------------- generation
Prompt = str | list[dict[str, str]]


def render_generation_prompts(
    tokenizer: Any, prompts: Sequence[Prompt], *, chat_template: bool | None = None
) -> tuple[list[str], bool]:
    """The texts a model generates from, and whether the chat template made them.

    Args:
        prompts: strings, or conversations (lists of ``{"role", "content"}`` messages, as in
            conversational preference data).
        chat_template: ``None`` (default): use the tokenizer's chat template when it has one
            (an Instruct model), raw prompt strings otherwise; ``True``: always (an error
            without a template); ``False``: never (then every prompt must be a string).
            With the template, a string prompt is one user message, and the generation
            prompt (the assistant turn's opening) is appended.

    Returns:
        ``(texts, templated)``; templated texts already hold the template's special tokens
        (tokenise them with ``add_special_tokens=False``).
    """
    has_template = getattr(tokenizer, "chat_template", None) is not None
    use = has_template if chat_template is None else bool(chat_template)
    if use and not has_template:
        raise ValueError(
            "chat_template=True, but the tokenizer has no chat template (set "
            "tokenizer.chat_template, or generate from raw strings with chat_template=False)"
        )
    texts: list[str] = []
    for index, prompt in enumerate(prompts):
        if isinstance(prompt, str) and not use:
            texts.append(prompt)
            continue
        if not use:
            raise ValueError(
                f"prompt {index} is a conversation ({type(prompt).__name__}), but "
                + (
                    "chat_template=False"
                    if has_template
                    else "the tokenizer has no chat template to render it"
                )
                + "; give string prompts or a tokenizer with a chat template"
            )
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        if not (
            isinstance(messages, list)
            and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages)
        ):
            raise ValueError(
                f"prompt {index}: expected a string or a list of {{'role', 'content'}} "
                f"messages, got {prompt!r:.80}"
            )
        texts.append(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )
    return texts, use


@torch.no_grad()
def generate_responses(
    model: torch.nn.Module,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 8,
    do_sample: bool = False,
    seed: int = 0,
    chat_template: bool | None = None,
    progress: str | None = None,
    **generate_kwargs: Any,
) -> list[str]:
    """Completions of ``prompts`` (left-padded batches; greedy unless ``do_sample``).

    Args:
        prompts: strings or conversations (lists of ``{"role", "content"}`` messages).
        chat_template: see :func:`render_generation_prompts` (default: the tokenizer's chat
            template when it has one, raw strings otherwise).
        progress: label of a ``tqdm`` progress bar over the batches (default: no bar).
    """
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer needs a pad token")
    texts, templated = render_generation_prompts(tokenizer, prompts, chat_template=chat_template)
    device = next(model.parameters()).device
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    starts: Any = range(0, len(texts), batch_size)
    if progress is not None:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=progress, leave=False)
    out: list[str] = []
    try:
        for start in starts:
            batch = tokenizer(
                texts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                # A rendered template already holds its BOS: a second one would shift the
                # model off the format it was tuned on.
                add_special_tokens=not templated,
            ).to(device)
            generated = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **generate_kwargs,
            )
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            out.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
        torch.random.set_rng_state(generator_state)
    return out


def compare_models(
    model_a: torch.nn.Module,
    model_b: torch.nn.Module,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    judge: Judge,
    *,
    length_controlled: bool = False,
    swap_positions: bool = False,
    progress: str | None = None,
    **generation_kwargs: Any,
) -> dict[str, Any]:
    """Generate with both models on ``prompts`` and judge ``a`` against ``b`` (:func:`win_rate`).

    ``generation_kwargs`` go to :func:`generate_responses` (e.g. ``chat_template``,
    ``max_new_tokens``); ``progress`` labels its bars (``"<progress> a"``, ``"<progress> b"``).
    The judge gets each prompt as given (a string or a list of messages). The result also
    holds ``responses_a``, ``responses_b`` and ``chat_template`` (whether the template was
    used).
    """
    _, templated = render_generation_prompts(
        tokenizer, prompts, chat_template=generation_kwargs.get("chat_template")
    )
    responses_a, responses_b = (
        generate_responses(
            model,
            tokenizer,
            prompts,
            progress=None if progress is None else f"{progress} {name}",
            **generation_kwargs,
        )
        for model, name in ((model_a, "a"), (model_b, "b"))
    )
    result = win_rate(
        prompts,
        responses_a,
        responses_b,
        judge,
        length_controlled=length_controlled,
        swap_positions=swap_positions,
    )
    result.update(responses_a=responses_a, responses_b=responses_b, chat_template=templated)
    return result
