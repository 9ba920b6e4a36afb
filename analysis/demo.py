"""The whole library end to end on embedded defaults, one HTML report at the end (``make demo``).

1. Fit the Electricity mixed logit by maximum simulated likelihood (price ``pf`` fixed, the other
   five attributes normal).
2. Train DPO, MixDPO-Gamma and MixDPO-LogNormal on the embedded heterogeneous and homogeneous
   preference sets (default model SmolLM2-135M-Instruct; ``--quick``: a tiny random Llama with a
   word tokenizer), a few short steps each.
3. Evaluate per-pair policy margins ``log pi(chosen) - log pi(rejected)`` (nats) on held-out pairs,
   by annotator subgroup (:func:`alignment.evaluation.evaluate_margins`); fit the subgroup
   strength posterior of MixDPO-Gamma.
4. Write ``reports/demo_report.html`` with :func:`analysis.report`.

Run: ``python -m analysis.demo [--quick] [--steps N] [--pairs-per-step B] [--eval-pairs N]`` (or
the ``hetpref-demo`` command). Paths (``--output``, ``--run-root``) are relative to the working
directory. Needs the ``alignment`` and ``analysis`` extras.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

#: Trainer settings per method (passed to ``MixDPOConfig``).
METHODS: dict[str, dict[str, Any]] = {
    "dpo": {"loss_type": "dpo", "beta": 0.1},
    "mixdpo-gamma": {"loss_type": "mixdpo", "strength_family": "gamma"},
    "mixdpo-lognormal": {"loss_type": "mixdpo", "strength_family": "lognormal"},
}
KINDS = ("heterogeneous", "homogeneous")
ELECTRICITY_RANDOM = ("cl", "loc", "wk", "tod", "seas")
#: Columns of a held-out pair carried into the evaluation table.
PAIR_COLUMNS = ["pair_id", "annotator_id", "subgroup", "topic"]


@dataclass(frozen=True)
class DemoSettings:
    """Everything the demo does is set here (see :func:`parse_args` for the command line)."""

    model: str = "smollm2"  # "smollm2" (default model) or "tiny" (random tiny Llama)
    steps: int = 10
    pairs_per_step: int = 4
    max_length: int = 64
    max_prompt_length: int = 32
    eval_pairs: int = 48
    learning_rate: float = 1e-5
    strength_learning_rate: float = 0.05
    electricity_draws: int = 200
    posterior_samples: int = 300  # NUTS warmup = samples per chain; 0 skips the posterior
    num_boot: int = 1000
    min_count: int = 10
    seed: int = 0
    output: str = "reports/demo_report.html"
    run_root: str = "runs/demo"


QUICK = DemoSettings(
    model="tiny",
    steps=8,
    pairs_per_step=8,
    eval_pairs=60,
    learning_rate=1e-2,
    electricity_draws=50,
    posterior_samples=0,
    num_boot=300,
    output="reports/demo_report_quick.html",
    run_root="runs/demo-quick",
)


def fit_electricity(num_draws: int) -> Any:
    """MSL fit of the Electricity panel: ``pf`` fixed, the five other attributes normal."""
    from mixlogit import ChoiceData, MixedLogit, load_electricity

    data = ChoiceData(
        load_electricity(), choice="choice", alternative="alt", situation="chid", panel="id"
    )
    model = MixedLogit(random=dict.fromkeys(ELECTRICITY_RANDOM, "normal"), fixed=["pf"])
    return model.fit(data, num_draws=num_draws, verbose=0)


def load_policy(settings: DemoSettings) -> tuple[Any, Any]:
    """``(make_model, tokenizer)``: a factory giving a fresh copy of the initial policy each call."""
    from alignment import (
        build_word_tokenizer,
        load_default_preferences,
        load_model,
        load_tokenizer,
        tiny_causal_lm,
    )

    if settings.model == "tiny":
        frames = [load_default_preferences(kind, "train") for kind in KINDS]
        texts = [t for f in frames for c in ("prompt", "chosen", "rejected") for t in f[c]]
        tokenizer = build_word_tokenizer(texts)
        return lambda: tiny_causal_lm(len(tokenizer), seed=settings.seed), tokenizer
    tokenizer = load_tokenizer(settings.model)
    return lambda: load_model(settings.model), tokenizer


def evaluate_policy(
    model: Any, dataset: Any, tokenizer: Any, settings: DemoSettings, label: str
) -> pd.DataFrame:
    """Per-pair policy margins (nats) of ``dataset`` with its :data:`PAIR_COLUMNS`."""
    from alignment.evaluation import evaluate_margins

    return evaluate_margins(
        model,
        dataset,
        tokenizer,
        by=PAIR_COLUMNS,
        batch_size=8,
        max_length=settings.max_length,
        max_prompt_length=settings.max_prompt_length,
        progress=f"evaluate {label}",
    )


def train_run(
    make_model: Any, tokenizer: Any, kind: str, method: str, settings: DemoSettings
) -> tuple[Any, Path]:
    """Train one method on one preference set; the run directory gets ``trainer_state.json``
    (the per-step log) and ``config.json`` (``dataset``, ``method``, settings)."""
    from alignment import MixDPOConfig, MixDPOTrainer, load_default_preferences

    run_dir = Path(settings.run_root) / f"{method}-{kind}"
    run_dir.mkdir(parents=True, exist_ok=True)
    args = MixDPOConfig(
        output_dir=str(run_dir),
        report_to="none",
        per_device_train_batch_size=settings.pairs_per_step,
        learning_rate=settings.learning_rate,
        strength_learning_rate=settings.strength_learning_rate,
        lr_scheduler_type="constant",
        max_steps=settings.steps,
        logging_steps=1,
        max_length=settings.max_length,
        max_prompt_length=settings.max_prompt_length,
        save_strategy="no",
        seed=settings.seed,
        dataloader_pin_memory=False,
        disable_tqdm=False,
        **METHODS[method],
    )
    trainer = MixDPOTrainer(
        make_model(),
        args=args,
        train_dataset=load_default_preferences(kind, "train"),
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.state.save_to_json(str(run_dir / "trainer_state.json"))
    config = {"dataset": kind, "method": method, **asdict(settings)}
    (run_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return trainer, run_dir


def run_demo(settings: DemoSettings) -> dict[str, Any]:
    """Run every stage; return the report path, timings (s) and the evaluation table."""
    import matplotlib

    matplotlib.use("Agg")
    import datasets
    import matplotlib.pyplot as plt

    import analysis
    from alignment import load_default_preferences

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    datasets.disable_progress_bars()  # one bar per evaluated batch would drown the others
    timings: dict[str, float] = {}
    start = time.perf_counter()
    stages = tqdm(total=2 + len(KINDS) * len(METHODS) + 1, desc="demo", unit="stage")

    stages.set_postfix_str("Electricity mixed logit (MSL)")
    tic = time.perf_counter()
    electricity = fit_electricity(settings.electricity_draws)
    timings["electricity_fit"] = time.perf_counter() - tic
    stages.update()

    stages.set_postfix_str(f"loading model {settings.model}")
    make_model, tokenizer = load_policy(settings)
    stages.update()

    rows = []
    run_dirs = []
    for kind in KINDS:
        test = load_default_preferences(kind, "test")
        test = test.select(range(min(settings.eval_pairs, len(test))))
        tic = time.perf_counter()
        reference = evaluate_policy(make_model(), test, tokenizer, settings, f"reference {kind}")
        timings[f"evaluate_reference_{kind}"] = time.perf_counter() - tic
        info, reference = reference[PAIR_COLUMNS], reference["margin"].to_numpy()
        for method in METHODS:
            stages.set_postfix_str(f"{method} on {kind}")
            tic = time.perf_counter()
            trainer, run_dir = train_run(make_model, tokenizer, kind, method, settings)
            timings[f"train_{method}_{kind}"] = time.perf_counter() - tic
            if method != "dpo":
                run_dirs.append(run_dir)
            tic = time.perf_counter()
            margin = evaluate_policy(trainer.model, test, tokenizer, settings, method)
            margin = margin["margin"].to_numpy()
            timings[f"evaluate_{method}_{kind}"] = time.perf_counter() - tic
            rows.append(
                info.assign(
                    method=method,
                    dataset=kind,
                    margin=margin,
                    reference_margin=reference,
                    gain_over_reference=margin - reference,
                )
            )
            del trainer
            stages.update()
    evaluation = pd.concat(rows, ignore_index=True)
    evaluation_path = Path(settings.run_root) / "evaluation.csv"
    evaluation.to_csv(evaluation_path, index=False)

    stages.set_postfix_str("subgroup posterior and report")
    tic = time.perf_counter()
    heterogeneous = evaluation[evaluation["dataset"] == "heterogeneous"]
    posteriors = []
    if settings.posterior_samples > 0:
        # the policy's implicit reward difference (log-ratio margin over the reference) is the
        # quantity the annotators' strengths scale in the MixDPO likelihood
        posteriors.append(
            analysis.fit_subgroup_strengths(
                heterogeneous[heterogeneous["method"] == "mixdpo-gamma"],
                "subgroup",
                family="gamma",
                value="gain_over_reference",
                num_warmup=settings.posterior_samples,
                num_samples=settings.posterior_samples,
                min_count=settings.min_count,
                seed=settings.seed,
                progress=True,
            )
        )
    timings["subgroup_posterior"] = time.perf_counter() - tic
    homogeneous_margins = analysis.subgroup_margins(
        evaluation[evaluation["dataset"] == "homogeneous"],
        ["subgroup"],
        cluster="annotator_id",
        num_boot=settings.num_boot,
        min_count=settings.min_count,
        seed=settings.seed,
    )
    control_figure = analysis.plot_subgroup_margins(homogeneous_margins, "subgroup")
    tic = time.perf_counter()
    output = Path(settings.output)
    path = analysis.report(
        output,
        run_dirs=run_dirs,
        evaluation=heterogeneous.drop(columns=["dataset"]),
        by=["subgroup"],
        baseline="dpo",
        pair_id="pair_id",
        cluster="annotator_id",
        posteriors=posteriors,
        choice_fit=electricity,
        price="pf",
        price_units="cents/kWh",
        coefficient_units={
            "pf": "utility per cent/kWh",
            "cl": "utility per year of contract",
            "loc": "utility of a local supplier",
            "wk": "utility of a well-known supplier",
            "tod": "utility of time-of-day rates",
            "seas": "utility of seasonal rates",
        },
        figures={"Homogeneous control set: subgroup margins": control_figure},
        tables={
            "Homogeneous control set: subgroup margins": homogeneous_margins.subgroups,
            "Demo settings": pd.DataFrame(
                {"setting": list(asdict(settings)), "value": map(str, asdict(settings).values())}
            ),
        },
        title=f"MixDPO and mixed-logit heterogeneity demo ({settings.model})",
        num_boot=settings.num_boot,
        min_count=settings.min_count,
        seed=settings.seed,
    )
    plt.close("all")
    timings["report"] = time.perf_counter() - tic
    stages.update()
    stages.close()
    timings["total"] = time.perf_counter() - start
    return {
        "report": path,
        "timings": timings,
        "evaluation": evaluation,
        "posteriors": posteriors,
        "electricity": electricity,
    }


def parse_args(argv: Sequence[str] | None = None) -> DemoSettings:
    parser = argparse.ArgumentParser(prog="python -m analysis.demo", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="tiny random model, < 2 minutes (smoke run)"
    )
    parser.add_argument("--model", help="'smollm2' (default), 'tiny', a HF id or a local path")
    parser.add_argument("--steps", type=int, help="optimiser steps per training run")
    parser.add_argument("--pairs-per-step", type=int, help="preference pairs per step")
    parser.add_argument("--max-length", type=int, help="tokens of prompt + completion")
    parser.add_argument("--eval-pairs", type=int, help="held-out pairs evaluated (max 120)")
    parser.add_argument("--output", help="HTML report path (relative to the working directory)")
    parser.add_argument("--run-root", help="directory of the run directories")
    parser.add_argument(
        "--posterior-samples", type=int, help="NUTS warmup = samples per chain (0: skip)"
    )
    parser.add_argument("--seed", type=int)
    options = parser.parse_args(argv)
    settings = QUICK if options.quick else DemoSettings()
    overrides = {
        field: value
        for field, value in (
            ("model", options.model),
            ("steps", options.steps),
            ("pairs_per_step", options.pairs_per_step),
            ("max_length", options.max_length),
            ("eval_pairs", options.eval_pairs),
            ("output", options.output),
            ("run_root", options.run_root),
            ("posterior_samples", options.posterior_samples),
            ("seed", options.seed),
        )
        if value is not None
    }
    for field in ("steps", "pairs_per_step", "max_length", "eval_pairs"):
        if field in overrides and overrides[field] < 1:
            parser.error(f"--{field.replace('_', '-')} must be >= 1, got {overrides[field]}")
    if overrides.get("posterior_samples", 0) < 0:
        parser.error(f"--posterior-samples must be >= 0, got {overrides['posterior_samples']}")
    return replace(settings, **overrides)


def demo(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, run every stage, print the timings and the report path; return
    :func:`run_demo`'s result."""
    settings = parse_args(argv)
    result = run_demo(settings)
    timings = result["timings"]
    print("\nstage                               seconds")
    for stage, seconds in timings.items():
        print(f"{stage:<36}{seconds:8.1f}")
    print(f"\nReport: {result['report']}")
    print(f"Wall time: {timings['total']:.1f} s ({timings['total'] / 60:.1f} min)")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m analysis.demo`` and the ``hetpref-demo`` command (exit code)."""
    demo(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
