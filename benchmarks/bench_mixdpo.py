"""MixDPO benchmark on SmolLM2-135M-Instruct (CPU).

Measures, on the embedded semi-synthetic preference data (8 pairs per step, max length 128):

1. ``ratio``: optimiser-step time of MixDPO (Gamma exact; LogNormal Monte Carlo K=16) over
   DPO, same model, same batch, one process, steps interleaved DPO/Gamma/LogNormal so that
   machine-load drift hits all three alike (median over steps after one warm-up round).
2. ``ours`` vs ``trl``: throughput (pairs/s over the timed steps) and peak resident memory of
   ``MixDPOTrainer`` in DPO mode and of TRL's ``DPOTrainer`` with the same model, data, batch,
   learning rate, fp32 and no gradient checkpointing. Twice: each trainer in its own subprocess
   (gives each one's peak memory, but the two run minutes apart under different machine load),
   and both in one process with their steps interleaved (``interleaved``: the fair throughput
   comparison, since load drift hits both alike; its memory is shared and not reported).
3. ``adaptive`` (``--adaptive``): SmolLM2 runs of MixDPO-Gamma on the heterogeneous set and on the
   homogeneous control, and DPO on the heterogeneous set; learned CV and held-out macro/micro
   preference margin gains by subgroup. Sized for a 2-core CPU: only the last
   ``--adaptive-train-layers`` decoder blocks (and the final norm) are trained, the rest of the
   network is frozen (no backward pass through it); one pass over
   ``adaptive-pairs x adaptive-steps`` training pairs (default 20 steps of 4): no pair is seen
   twice, since a policy that memorises pairs hides the label noise the strength learns from;
   strength learning rate 0.1 (a deviation from the paper's 1e-4, with which the strength cannot
   move in so few steps); the reference margins on the test pairs are computed once per kind.

Run (estimated 12-18 minutes on an idle 2-core CPU; not yet timed there):
``python -m benchmarks.bench_mixdpo --adaptive``; ``--quick`` is a smoke test (one step each,
2 pairs, max length 64, results in ``mixdpo-quick.*``). Results: ``benchmarks/results/mixdpo.json``
and ``benchmarks/results/mixdpo.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# Pairs per optimiser step and maximum tokens per sequence; set from --pairs / --max-length.
BATCH_PAIRS = 8
MAX_LENGTH = 128


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak_rss() -> bool:
    try:  # Linux >= 4.0: writing 5 resets VmHWM to the current RSS
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _data(n: int):
    from alignment.datasets.shipped import load_default_preferences

    train = load_default_preferences("heterogeneous", "train")
    return train.select(range(n)).select_columns(["prompt", "chosen", "rejected"])


class _StepTimer:
    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer.begin = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer.durations.append(time.perf_counter() - timer.begin)

        self.begin = 0.0
        self.durations: list[float] = []
        self.callback = Callback()


def _comparison_args(max_steps: int, **extra) -> dict:
    """Training arguments shared by our trainer and TRL's in every comparison (one place, so
    the two always run with the same settings)."""
    from alignment.config import QUIET_RUN

    return dict(
        **QUIET_RUN,
        per_device_train_batch_size=BATCH_PAIRS,
        max_steps=max_steps,
        learning_rate=1e-6,
        bf16=False,
        gradient_checkpointing=False,
        max_length=MAX_LENGTH,
        beta=0.1,
        seed=0,
        **extra,
    )


def worker_throughput(which: str, steps: int, out: Path) -> None:
    import torch

    from alignment.policy_models import load_model, load_tokenizer

    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    model, ref = load_model(), load_model()
    data = _data(BATCH_PAIRS * (steps + 1))
    timer = _StepTimer()
    common = _comparison_args(
        max_steps=steps + 1,
        output_dir=tempfile.mkdtemp(prefix=f"bench-{which}-"),
        logging_steps=1000,
    )
    if which == "trl":
        import trl

        trainer = trl.DPOTrainer(
            model=model,
            ref_model=ref,
            args=trl.DPOConfig(**common),
            train_dataset=data,
            processing_class=tokenizer,
            callbacks=[timer.callback],
        )
    else:
        from alignment import MixDPOConfig, MixDPOTrainer

        trainer = MixDPOTrainer(
            model,
            ref_model=ref,
            args=MixDPOConfig(loss_type="dpo", max_prompt_length=MAX_LENGTH // 2, **common),
            train_dataset=data,
            processing_class=tokenizer,
            callbacks=[timer.callback],
        )
    rss_before = _rss_kib("VmRSS")
    reset = _reset_peak_rss()
    trainer.train()
    peak = _rss_kib("VmHWM")
    timed = timer.durations[1:]  # the first step warms up allocators and kernels
    result = {
        "which": which,
        "steps_timed": len(timed),
        "step_seconds": timed,
        "median_step_s": statistics.median(timed),
        "pairs_per_s": BATCH_PAIRS * len(timed) / sum(timed),
        "peak_rss_mib": peak / 1024,
        "rss_before_train_mib": rss_before / 1024,
        "train_peak_increase_mib": (peak - rss_before) / 1024 if reset else None,
        "torch_threads": torch.get_num_threads(),
    }
    out.write_text(json.dumps(result))


def worker_interleaved(rounds: int, out: Path) -> None:
    """MixDPOTrainer (DPO mode) and TRL DPOTrainer in one process, steps alternating, so that
    machine-load drift hits both alike; same model weights, batch and settings."""
    import torch
    import trl

    from alignment import MixDPOConfig, MixDPOTrainer
    from alignment.policy_models import load_model, load_tokenizer

    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    data = _data(BATCH_PAIRS)
    common = _comparison_args(max_steps=1)
    trainers = {
        "ours": MixDPOTrainer(
            load_model(),
            ref_model=load_model(),
            args=MixDPOConfig(
                output_dir=tempfile.mkdtemp(),
                loss_type="dpo",
                max_prompt_length=MAX_LENGTH // 2,
                **common,
            ),
            train_dataset=data,
            processing_class=tokenizer,
        ),
        "trl": trl.DPOTrainer(
            model=load_model(),
            ref_model=load_model(),
            args=trl.DPOConfig(output_dir=tempfile.mkdtemp(), **common),
            train_dataset=data,
            processing_class=tokenizer,
        ),
    }
    batches = {}
    for name, trainer in trainers.items():
        trainer.create_optimizer_and_scheduler(num_training_steps=10 * rounds)
        trainer.current_gradient_accumulation_steps = 1
        rows = [trainer.train_dataset[i] for i in range(BATCH_PAIRS)]
        batches[name] = trainer._prepare_inputs(trainer.data_collator(rows))
    assert torch.equal(batches["ours"]["input_ids"], batches["trl"]["input_ids"])
    times: dict[str, list[float]] = {name: [] for name in trainers}
    # alternate which trainer goes first in each round
    order = list(trainers)
    schedule = [(-1, "ours"), (-1, "trl")] + [
        (r, order[(r + i) % len(order)]) for r in range(rounds) for i in range(len(order))
    ]
    for round_index, name in schedule:
        trainer = trainers[name]
        trainer.model.train()
        start = time.perf_counter()
        trainer.training_step(trainer.model, batches[name])
        torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), 1.0)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        if round_index >= 0:
            times[name].append(time.perf_counter() - start)
    result = {
        "rounds": rounds,
        "step_seconds": times,
        "pairs_per_s": {k: BATCH_PAIRS * len(v) / sum(v) for k, v in times.items()},
    }
    result["throughput_ratio_ours_over_trl"] = (
        result["pairs_per_s"]["ours"] / result["pairs_per_s"]["trl"]
    )
    out.write_text(json.dumps(result))


def add_strength_groups(trainer, strengths, learning_rate: float) -> None:
    """Add every strength's trainable parameters to ``trainer.optimizer`` as their own group
    (``learning_rate``, no weight decay), skipping parameters already in it, so that the
    strengths swapped in by :func:`interleaved_step_times` are all stepped."""
    present = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    for strength in strengths:
        params = [p for p in strength.parameters() if p.requires_grad and id(p) not in present]
        if params:
            trainer.optimizer.add_param_group(
                {"params": params, "lr": learning_rate, "weight_decay": 0.0}
            )
            present.update(id(p) for p in params)


def interleaved_step_times(
    trainer, batch: dict, configs: dict, rounds: int, *, warm_up: str
) -> dict[str, list[float]]:
    """Seconds of full optimiser steps (forward, backward, clipping, optimiser and scheduler
    step) of ``trainer`` on one fixed ``batch`` with each ``name -> (loss, strength)`` of
    ``configs`` swapped in, ``rounds`` timed steps each.

    One untimed warm-up step of ``configs[warm_up]`` first (first-call allocations, lazy
    kernels); then the configurations are interleaved round by round, the order rotating from
    round to round so that no loss always runs first and machine-load drift hits all alike.
    The trainer's optimiser and scheduler must exist and hold every strength's parameters
    (:func:`add_strength_groups`).
    """
    import torch

    model = trainer.model
    trainer.current_gradient_accumulation_steps = 1  # normally set by Trainer's training loop
    times: dict[str, list[float]] = {name: [] for name in configs}
    names = list(configs)
    schedule = [(-1, warm_up)] + [
        (r, names[(r + i) % len(names)]) for r in range(rounds) for i in range(len(names))
    ]
    for round_index, name in schedule:
        loss, strength = configs[name]
        trainer.loss_fn, trainer.strength = loss, strength
        start = time.perf_counter()
        trainer.training_step(model, batch)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        if round_index >= 0:
            times[name].append(elapsed)
    return times


def step_ratio_summary(times: dict[str, list[float]], baseline: str) -> dict:
    """Per-configuration step seconds, medians, median ratio to ``baseline`` and the median of
    the paired (same-round) ratios, which is less sensitive to slow load drift."""
    base = statistics.median(times[baseline])
    return {
        "step_seconds": times,
        "median_step_s": {k: statistics.median(v) for k, v in times.items()},
        "ratio_vs_dpo": {k: statistics.median(v) / base for k, v in times.items()},
        "paired_ratio_median": {
            k: statistics.median(a / b for a, b in zip(v, times[baseline], strict=True))
            for k, v in times.items()
        },
    }


def loss_step_seconds(configs: dict, make_batch, repeats: int = 50) -> dict[str, float]:
    """Mean seconds of one loss forward + backward per configuration, on the ``PairBatch``
    that ``make_batch(strength)`` returns (fresh leaf margins each call)."""
    seconds = {}
    for name, (loss, strength) in configs.items():
        start = time.perf_counter()
        for _ in range(repeats):
            loss(make_batch(strength)).mean().backward()
        seconds[name] = (time.perf_counter() - start) / repeats
    return seconds


def worker_ratio(rounds: int, out: Path) -> None:
    import torch

    from alignment import MixDPOConfig, MixDPOTrainer
    from alignment.losses import PairBatch, get_loss
    from alignment.policy_models import load_model, load_tokenizer
    from mixlogit.torch import FixedStrength, GammaStrength, LogNormalStrength

    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    model, ref = load_model(), load_model()
    data = _data(BATCH_PAIRS)
    args = MixDPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-ratio-"),
        per_device_train_batch_size=BATCH_PAIRS,
        max_steps=1,
        learning_rate=1e-6,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        loss_type="dpo",
        max_length=MAX_LENGTH,
        max_prompt_length=MAX_LENGTH // 2,
        dataloader_pin_memory=False,
    )
    trainer = MixDPOTrainer(
        model, ref_model=ref, args=args, train_dataset=data, processing_class=tokenizer
    )
    # MixDPO's default initial strengths (the mixlogit.families defaults)
    configs = {
        "dpo": (get_loss("dpo", beta=0.1), FixedStrength(0.1)),
        "mixdpo_gamma": (get_loss("mixdpo"), GammaStrength()),
        "mixdpo_lognormal_k16": (
            get_loss("mixdpo"),
            LogNormalStrength(method="mc", num_samples=16),
        ),
    }
    trainer.create_optimizer()
    add_strength_groups(trainer, [strength for _, strength in configs.values()], 1e-4)
    trainer.create_scheduler(num_training_steps=10 * rounds, optimizer=trainer.optimizer)
    batch = trainer._prepare_inputs(
        trainer.data_collator([trainer.train_dataset[i] for i in range(BATCH_PAIRS)])
    )
    times = interleaved_step_times(trainer, batch, configs, rounds, warm_up="dpo")
    base = statistics.median(times["dpo"])
    # The loss's own cost (strength marginal forward + backward on a (B,) margin), measured
    # precisely: 1 + loss_time / step_time bounds the ratio without machine-load noise.
    zero = torch.zeros(BATCH_PAIRS)
    margin = torch.randn(BATCH_PAIRS) * 5

    def pair_batch(strength):
        return PairBatch(margin.clone().requires_grad_(True), zero, zero, zero, strength=strength)

    loss_seconds = loss_step_seconds(configs, pair_batch)
    result = {
        "loss_seconds": loss_seconds,
        "ratio_bound_from_loss_cost": {
            k: 1 + (v - loss_seconds["dpo"]) / base for k, v in loss_seconds.items()
        },
        "rounds": rounds,
        **step_ratio_summary(times, "dpo"),
    }
    out.write_text(json.dumps(result))


def _freeze_all_but_last_layers(model, num_trained: int) -> int:
    """Train only the last ``num_trained`` decoder blocks and the final norm; returns the number
    of trained parameters. Embeddings (tied to the LM head in SmolLM2) stay frozen."""
    decoder = model.model
    if not 1 <= num_trained <= len(decoder.layers):
        raise ValueError(
            f"--adaptive-train-layers must be in [1, {len(decoder.layers)}], got {num_trained}"
        )
    model.requires_grad_(False)
    for block in decoder.layers[len(decoder.layers) - num_trained :]:
        block.requires_grad_(True)
    decoder.norm.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def worker_adaptive(
    steps: int, pairs_per_step: int, train_layers: int, test_pairs: int, out: Path
) -> None:
    import numpy as np
    import torch

    from alignment import MixDPOConfig, MixDPOTrainer
    from alignment.datasets.shipped import load_default_preferences
    from alignment.evaluation import preference_margins
    from alignment.policy_models import load_model, load_tokenizer
    from analysis.margins import micro_macro_margins

    tokenizer = load_tokenizer()
    runs = {
        "mixdpo_gamma_heterogeneous": ("heterogeneous", "mixdpo"),
        "mixdpo_gamma_homogeneous": ("homogeneous", "mixdpo"),
        "dpo_heterogeneous": ("heterogeneous", "dpo"),
    }
    margin_settings = dict(
        batch_size=BATCH_PAIRS, max_length=MAX_LENGTH, max_prompt_length=MAX_LENGTH // 2
    )
    reference_margins: dict[str, np.ndarray] = {}
    results = {}
    for name, (kind, loss_type) in runs.items():
        torch.manual_seed(0)
        train = (
            load_default_preferences(kind, "train")
            .shuffle(seed=0)
            .select(range(pairs_per_step * steps))
        )
        test = load_default_preferences(kind, "test").select(range(test_pairs))
        args = MixDPOConfig(
            output_dir=tempfile.mkdtemp(prefix=f"bench-{name}-"),
            per_device_train_batch_size=pairs_per_step,
            num_train_epochs=1,  # one pass: a pair seen twice can be memorised
            learning_rate=1e-4,
            strength_learning_rate=0.1,
            loss_type=loss_type,
            strength_family="gamma",
            max_length=MAX_LENGTH,
            max_prompt_length=MAX_LENGTH // 2,
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            disable_tqdm=True,
            dataloader_pin_memory=False,
            seed=0,
            lr_scheduler_type="constant",
        )
        model = load_model()
        trained_parameters = _freeze_all_but_last_layers(model, train_layers)
        trainer = MixDPOTrainer(model, args=args, train_dataset=train, processing_class=tokenizer)
        start = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - start
        if kind not in reference_margins:  # the reference is the same base model for every run
            reference_margins[kind] = preference_margins(
                trainer.ref_model, test, tokenizer, **margin_settings
            )
        margins = (
            preference_margins(trainer.model, test, tokenizer, **margin_settings)
            - reference_margins[kind]
        )
        summary = micro_macro_margins(margins, test["subgroup"])
        with torch.no_grad():
            strength = {k: float(v) for k, v in trainer.strength.constrained_parameters().items()}
            strength_mean = float(trainer.strength.mean)
            cv = (
                float(trainer.strength.coefficient_of_variation)
                if hasattr(trainer.strength, "coefficient_of_variation")
                else 0.0
            )
        results[name] = {
            "train_seconds": train_seconds,
            "steps": trainer.state.global_step,
            "trained_parameters": trained_parameters,
            "strength": strength,
            "strength_mean": strength_mean,
            "cv": cv,
            "margin_gain_macro": summary["macro"],
            "margin_gain_micro": summary["micro"],
            "margin_gain_by_subgroup": summary["by_group"],
            "margin_gain_gap_correlation": float(
                np.corrcoef(margins, np.asarray(test["reward_gap"]))[0, 1]
            ),
            "final_train_loss": [h["loss"] for h in trainer.state.log_history if "loss" in h][-1],
        }
    out.write_text(json.dumps(results))


def _spawn(args: list[str], timeout: float) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        path = Path(handle.name)
    sizes = ["--pairs", str(BATCH_PAIRS), "--max-length", str(MAX_LENGTH)]
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_mixdpo",
        "--worker",
        *args,
        *sizes,
        "--out",
        str(path),
    ]
    env = {**os.environ, "TQDM_DISABLE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    subprocess.run(cmd, check=True, timeout=timeout, env=env)
    return json.loads(path.read_text())


def main() -> None:
    global BATCH_PAIRS, MAX_LENGTH
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=2, help="timed steps per trainer in its own process"
    )
    parser.add_argument(
        "--ratio-rounds",
        type=int,
        default=2,
        help="timed rounds of the interleaved DPO/Gamma/LogNormal and ours/TRL comparisons",
    )
    parser.add_argument("--pairs", type=int, default=8, help="preference pairs per step")
    parser.add_argument("--max-length", type=int, default=128, help="max tokens per sequence")
    parser.add_argument("--adaptive", action="store_true", help="also run the self-adaptive demo")
    parser.add_argument(
        "--adaptive-steps", type=int, default=20, help="steps (one pass) per self-adaptive run"
    )
    parser.add_argument(
        "--adaptive-pairs", type=int, default=4, help="pairs per step of the self-adaptive runs"
    )
    parser.add_argument(
        "--adaptive-train-layers", type=int, default=2, help="trained last decoder blocks"
    )
    parser.add_argument("--adaptive-test-pairs", type=int, default=48, help="held-out pairs")
    parser.add_argument(
        "--reuse-adaptive",
        action="store_true",
        help="keep the self-adaptive section of the saved results (rerun only the timings)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 1 step each, 2 pairs, max length 64, with --adaptive; "
        "writes mixdpo-quick.*",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.quick:
        options.steps = options.ratio_rounds = options.adaptive_steps = 1
        options.pairs = options.adaptive_pairs = 2
        options.max_length = 64
        options.adaptive, options.adaptive_test_pairs = True, 6
    for name in (
        "steps",
        "ratio_rounds",
        "pairs",
        "adaptive_steps",
        "adaptive_pairs",
        "adaptive_test_pairs",
    ):
        if getattr(options, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(options, name)}")
    if options.max_length < 16:
        parser.error(f"--max-length must be >= 16, got {options.max_length}")
    BATCH_PAIRS, MAX_LENGTH = options.pairs, options.max_length
    if options.worker is not None:
        out = Path(options.out)
        if options.worker == "ratio":
            worker_ratio(options.steps, out)
        elif options.worker == "interleaved":
            worker_interleaved(options.steps, out)
        elif options.worker == "adaptive":
            worker_adaptive(
                options.adaptive_steps,
                options.adaptive_pairs,
                options.adaptive_train_layers,
                options.adaptive_test_pairs,
                out,
            )
        else:
            worker_throughput(options.worker, options.steps, out)
        return

    from alignment.policy_models import default_model_path

    default_model_path()  # convert the GGUF once, outside the timed workers
    started = time.perf_counter()
    report: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_start": os.getloadavg(),
        },
        "settings": {
            "model": "SmolLM2-135M-Instruct (fp32)",
            "pairs_per_step": BATCH_PAIRS,
            "max_length": MAX_LENGTH,
            "steps": options.steps,
            "ratio_rounds": options.ratio_rounds,
            "quick": options.quick,
        },
    }
    steps = ["--steps", str(options.steps)]
    report["ratio"] = _spawn(["ratio", "--steps", str(options.ratio_rounds)], 2400)
    report["ours_dpo"] = _spawn(["ours", *steps], 2400)
    report["trl_dpo"] = _spawn(["trl", *steps], 2400)
    report["interleaved"] = _spawn(["interleaved", "--steps", str(options.ratio_rounds)], 2400)
    if options.adaptive:
        report["settings"]["adaptive"] = {
            "steps": options.adaptive_steps,
            "pairs_per_step": options.adaptive_pairs,
            "train_layers": options.adaptive_train_layers,
            "test_pairs": options.adaptive_test_pairs,
            "policy_learning_rate": 1e-4,
            "strength_learning_rate": 0.1,
        }
        report["adaptive"] = _spawn(
            [
                "adaptive",
                "--adaptive-steps",
                str(options.adaptive_steps),
                "--adaptive-pairs",
                str(options.adaptive_pairs),
                "--adaptive-train-layers",
                str(options.adaptive_train_layers),
                "--adaptive-test-pairs",
                str(options.adaptive_test_pairs),
            ],
            2400,
        )
    elif options.reuse_adaptive and not options.quick:
        saved = json.loads((RESULTS / "mixdpo.json").read_text())
        if "adaptive" not in saved:
            raise SystemExit("--reuse-adaptive: the saved mixdpo.json has no adaptive section")
        report["settings"]["adaptive"] = saved["settings"]["adaptive"]
        report["adaptive"] = saved["adaptive"]
        report["adaptive_reused_from_run_started_with_load"] = saved["machine"]["load_avg_start"]
    report["machine"]["load_avg_end"] = os.getloadavg()
    report["total_seconds"] = time.perf_counter() - started
    ours, theirs = report["ours_dpo"], report["trl_dpo"]
    report["throughput_ratio_ours_over_trl"] = ours["pairs_per_s"] / theirs["pairs_per_s"]
    report["peak_rss_ratio_ours_over_trl"] = ours["peak_rss_mib"] / theirs["peak_rss_mib"]

    lines = [
        "# MixDPO benchmark (SmolLM2-135M-Instruct, CPU, "
        f"{BATCH_PAIRS} pairs/step, max length {MAX_LENGTH})"
        + (" -- QUICK SMOKE RUN, not a measurement" if options.quick else ""),
        "",
        f"Machine: {os.cpu_count()} CPUs, load average at start "
        f"{report['machine']['load_avg_start'][0]:.1f}; "
        f"{options.ratio_rounds} interleaved rounds for the ratio, {options.steps} timed steps "
        "for throughput, each after one warm-up step.",
        "",
        "| measurement | value | target |",
        "|---|---|---|",
    ]
    ratio = report["ratio"]
    for name, target in (
        ("mixdpo_gamma", "<= 1.02 (paper 1.1)"),
        ("mixdpo_lognormal_k16", "<= 1.02 (paper 1.02)"),
    ):
        lines.append(
            f"| step time {name} / dpo (median; paired median) | "
            f"{ratio['ratio_vs_dpo'][name]:.3f}; "
            f"{ratio['paired_ratio_median'][name]:.3f} | {target} |"
        )
    for name in ("mixdpo_gamma", "mixdpo_lognormal_k16"):
        lines.append(
            f"| 1 + (loss time {name} - DPO loss time) / DPO step time | "
            f"{ratio['ratio_bound_from_loss_cost'][name]:.5f} "
            f"({1e3 * ratio['loss_seconds'][name]:.2f} ms vs "
            f"{1e3 * ratio['loss_seconds']['dpo']:.2f} ms) | <= 1.02 |"
        )
    lines.append(f"| DPO step time (median, s) | {ratio['median_step_s']['dpo']:.2f} | |")
    lines += [
        f"| MixDPOTrainer (DPO mode) throughput, pairs/s | {ours['pairs_per_s']:.3f} | |",
        f"| TRL DPOTrainer throughput, pairs/s | {theirs['pairs_per_s']:.3f} | |",
        f"| throughput ours / TRL (separate processes, run one after the other) | "
        f"{report['throughput_ratio_ours_over_trl']:.2f}x | >= 1.0x |",
        "| throughput ours / TRL (one process, steps interleaved: the fair comparison) | "
        f"{report['interleaved']['throughput_ratio_ours_over_trl']:.2f}x | >= 1.0x |",
        f"| peak RSS ours / TRL (MiB) | {ours['peak_rss_mib']:.0f} / "
        f"{theirs['peak_rss_mib']:.0f} | |",
    ]
    if (
        ours["train_peak_increase_mib"] is not None
        and theirs["train_peak_increase_mib"] is not None
    ):
        lines.append(
            "| training peak above pre-train RSS ours / TRL (MiB) | "
            f"{ours['train_peak_increase_mib']:.0f} / "
            f"{theirs['train_peak_increase_mib']:.0f} | |"
        )
    if "adaptive" in report:
        adaptive = report["settings"]["adaptive"]
        reused = report.get("adaptive_reused_from_run_started_with_load")
        lines += [
            "",
            "## Self-adaptive demo (held-out margin gain over the reference, nats)",
            "",
            f"One pass over {adaptive['pairs_per_step'] * adaptive['steps']} training pairs "
            f"({adaptive['steps']} steps of {adaptive['pairs_per_step']}), max length "
            f"{MAX_LENGTH}, last {adaptive['train_layers']} decoder blocks trained (rest "
            f"frozen), policy LR {adaptive['policy_learning_rate']:g}, strength LR "
            f"{adaptive['strength_learning_rate']:g} (paper: 1e-4), {adaptive['test_pairs']} "
            "held-out pairs. Gamma strength starts at CV 0.707, mean 0.12; the data's "
            "population CV is 1.05 (heterogeneous) and 0 (homogeneous). Margins scale with "
            "1 / mean strength; *macro x mean* puts them on the reward scale."
            + (
                f" (Reused from the previous run, which started at load average {reused[0]:.1f}.)"
                if reused
                else ""
            ),
            "",
            "| run | learned CV | strength mean | macro | micro | macro x mean "
            "| corr(gain, true gap) | by subgroup |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, r in report["adaptive"].items():
            groups = ", ".join(f"{k} {v:.3f}" for k, v in r["margin_gain_by_subgroup"].items())
            lines.append(
                f"| {name} | {r['cv']:.3f} | {r['strength_mean']:.3f} | "
                f"{r['margin_gain_macro']:.3f} | {r['margin_gain_micro']:.3f} | "
                f"{r['margin_gain_macro'] * r['strength_mean']:.3f} | "
                f"{r['margin_gain_gap_correlation']:.2f} | {groups} |"
            )
    lines += ["", f"Total benchmark time: {report['total_seconds']:.0f} s."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "mixdpo-quick" if options.quick else "mixdpo"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
