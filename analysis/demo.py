"""The whole library end to end on embedded defaults, one HTML report at the end (``make demo``).

1. Fit the Electricity mixed logit by maximum simulated likelihood (price ``pf`` fixed, the other
   five attributes normal).
2. Train DPO, MixDPO-Gamma and MixDPO-LogNormal on the embedded heterogeneous and homogeneous
   preference sets (default model SmolLM2-135M-Instruct; ``--quick``: a tiny random Llama with a
   word tokenizer), a few short steps each.
3. Evaluate per-pair policy margins ``log pi(chosen) - log pi(rejected)`` (nats) on held-out pairs,
   by annotator subgroup (:func:`alignment.evaluation.evaluate_margins`); fit the subgroup
   strength posterior of MixDPO-Gamma.
4. Annotator panels (skip with ``--no-panels``): on the shipped ``panel_heterogeneous`` set and
   its ``panel_homogeneous`` control (72 annotators x 20 pairs, subgroups ``decisive`` /
   ``moderate`` / ``uncertain``), train annotator-level MixDPO with ``subgroup`` covariates on the
   same policy; fit the two-stage panel model (:func:`analysis.strength_panels.fit_panel_strengths`)
   with the known utilities as reward gaps (every label) and with the trained policy's implicit
   reward on held-out pairs; profile the likelihood of the strength CV at pair and at annotator
   level (:func:`analysis.identifiability.profile_cv`); print which subgroups are decisive.
5. Write ``reports/demo_report.html`` with :func:`analysis.report`.

Run: ``python -m analysis.demo [--quick] [--steps N] [--pairs-per-step B] [--eval-pairs N]
[--no-panels] [--panel-steps N] [--panel-samples N]`` (or the ``hetpref-demo`` command). Paths
(``--output``, ``--run-root``) are relative to the working directory. Needs the ``alignment``
and ``analysis`` extras.

The panel stage's cost is mostly its three NUTS fits (each pays its own JAX compilation) and
the two CV profiles; the two trainings are ``panel_steps`` steps of the demo's policy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mixlogit.datasets import ELECTRICITY_LABELS, ELECTRICITY_UNITS

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
#: ``{set: shipped kind}`` of the annotator-panel section.
PANEL_KINDS = {"heterogeneous": "panel_heterogeneous", "homogeneous": "panel_homogeneous"}
PANEL_METHOD = "mixdpo-annotator"
#: Annotator-level MixDPO with partially pooled subgroup strengths (``MixDPOConfig``); the
#: strength learning rate is left at the ``mean_cv`` default (0.1), which moves the strength
#: within one pass of a panel set (see ``MixDPOConfig``).
PANEL_CONFIG: dict[str, Any] = {
    "loss_type": "mixdpo",
    "strength_family": "gamma",
    "strength_level": "annotator",
    "annotator_column": "annotator_id",
    "strength_covariates": ["subgroup"],
    "strength_learning_rate": None,
}
#: Gamma CVs at which the strength-CV profile likelihoods are evaluated.
PANEL_CVS = (0.125, 0.25, 0.5, 1.0, 2.0)


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
    panels: bool = True  # the annotator-panel section (``--no-panels`` skips it)
    panel_steps: int = 12  # optimiser steps of each annotator-level MixDPO run
    panel_samples: int = 200  # NUTS warmup = samples per chain of each two-stage panel fit
    panel_chains: int = 2
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
    panel_steps=60,
    panel_samples=100,
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
    make_model: Any,
    tokenizer: Any,
    kind: str,
    method: str,
    settings: DemoSettings,
    *,
    config: Mapping[str, Any] | None = None,
    steps: int | None = None,
) -> tuple[Any, Path]:
    """Train one method on one preference set; the run directory gets ``trainer_state.json``
    (the per-step log) and ``config.json`` (``dataset``, ``method``, settings).

    ``config``: ``MixDPOConfig`` settings of the method (default ``METHODS[method]``), which
    override the demo's; ``steps``: optimiser steps (default ``settings.steps``).
    """
    from alignment import MixDPOConfig, MixDPOTrainer, load_default_preferences

    run_dir = Path(settings.run_root) / f"{method}-{kind}"
    run_dir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "output_dir": str(run_dir),
        "report_to": "none",
        "per_device_train_batch_size": settings.pairs_per_step,
        "learning_rate": settings.learning_rate,
        "strength_learning_rate": settings.strength_learning_rate,
        "lr_scheduler_type": "constant",
        "max_steps": settings.steps if steps is None else steps,
        "logging_steps": 1,
        "max_length": settings.max_length,
        "max_prompt_length": settings.max_prompt_length,
        "save_strategy": "no",
        "seed": settings.seed,
        "dataloader_pin_memory": False,
        "disable_tqdm": False,
    }
    options.update(METHODS[method] if config is None else config)
    trainer = MixDPOTrainer(
        make_model(),
        args=MixDPOConfig(**options),
        train_dataset=load_default_preferences(kind, "train"),
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.state.save_to_json(str(run_dir / "trainer_state.json"))
    record = {"dataset": kind, "method": method, **asdict(settings)}
    (run_dir / "config.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return trainer, run_dir


def panel_labels(kind: str, splits: Sequence[str] = ("train", "test")) -> pd.DataFrame:
    """The labels of a shipped panel set (one row per annotator and pair), ``splits`` stacked."""
    from alignment import load_default_preferences

    return pd.concat(
        [load_default_preferences(kind, split).to_pandas() for split in splits],
        ignore_index=True,
    )


def implicit_reward_gaps(
    policy: Any,
    reference: Any,
    labels: pd.DataFrame,
    tokenizer: Any,
    *,
    max_length: int | None,
    max_prompt_length: int | None,
    batch_size: int = 8,
) -> np.ndarray:
    """``(len(labels),)`` implicit reward gap of each label (nats): ``[log pi - log pi_ref]`` of
    its chosen minus its rejected response, ``pi`` the policy and ``pi_ref`` the reference.

    A panel pair is labelled by several annotators, each row oriented by its own choice; every
    distinct pair is scored once, in the orientation of its two texts in sorted order, and the
    gap is signed back per row.

    Raises:
        ValueError: rows of one ``pair_id`` that do not hold the same two responses.
    """
    from datasets import Dataset

    from alignment.evaluation import preference_margins

    first = np.minimum(labels["chosen"].to_numpy(), labels["rejected"].to_numpy())
    second = np.maximum(labels["chosen"].to_numpy(), labels["rejected"].to_numpy())
    keyed = labels.assign(_first=first, _second=second)
    pairs = keyed.drop_duplicates("pair_id")[["pair_id", "prompt", "_first", "_second"]]
    expected = pairs.set_index("pair_id").loc[keyed["pair_id"]]
    bad = (expected["_first"].to_numpy() != first) | (expected["_second"].to_numpy() != second)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"pair_id {labels['pair_id'].iloc[row]!r} holds different responses at row {row}: "
            "every label of a pair must compare the same two responses"
        )
    canonical = Dataset.from_pandas(
        pairs.rename(columns={"_first": "chosen", "_second": "rejected"}), preserve_index=False
    )
    margin = {
        name: preference_margins(
            model,
            canonical,
            tokenizer,
            batch_size=batch_size,
            max_length=max_length,
            max_prompt_length=max_prompt_length,
            progress=f"implicit reward ({name})",
        )
        for name, model in (("policy", policy), ("reference", reference))
    }
    gap = pd.Series(margin["policy"] - margin["reference"], index=pairs["pair_id"].to_numpy())
    sign = np.where(labels["chosen"].to_numpy() == first, 1.0, -1.0)
    return sign * gap.loc[labels["pair_id"]].to_numpy()


def run_panels(make_model: Any, tokenizer: Any, settings: DemoSettings) -> dict[str, Any]:
    """The annotator-panel stage: who is decisive, with intervals (see the module docstring).

    Returns ``{"fit", "control_fit", "policy_fit"}`` (:class:`PanelStrengthFit` of the known
    utilities on the heterogeneous set and on its control, and of the heterogeneous MixDPO
    policy's implicit reward on held-out labels), ``"profiles"`` (pair- and annotator-level
    :class:`CVProfile`, free gaps, heterogeneous set), ``"learned"`` (the annotator-level
    MixDPO runs' subgroup strengths), ``"held_out"`` (the held-out labels with their
    ``policy_gap``), ``"summary"`` (one row per set and subgroup: two-stage
    mean strength and interval against the truth), ``"truth"`` and ``"timings"`` (s).
    """
    from alignment.datasets.shipped import load_ground_truth
    from analysis.identifiability import profile_cv
    from analysis.strength_panels import fit_panel_strengths

    timings: dict[str, float] = {}
    nuts: dict[str, Any] = {
        "by": "subgroup",
        "num_warmup": settings.panel_samples,
        "num_samples": settings.panel_samples,
        "num_chains": settings.panel_chains,
        "seed": settings.seed,
    }
    # only the main fit's annotator posteriors are drawn (caterpillar plot): the other fits
    # average them over fewer draws, which saves most of their post-processing time
    light: dict[str, Any] = {"num_annotator_draws": 40, "num_strata": 20}
    learned_rows, policy_fit, held_out = [], None, None
    for name, kind in PANEL_KINDS.items():
        tic = time.perf_counter()
        trainer, _ = train_run(
            make_model,
            tokenizer,
            kind,
            PANEL_METHOD,
            settings,
            config=PANEL_CONFIG,
            steps=settings.panel_steps,
        )
        timings[f"panel_train_{name}"] = time.perf_counter() - tic
        values = trainer.strength_values()
        for subgroup in sorted({k.split("/")[1] for k in values if k.count("/") == 2}):
            learned_rows.append(
                {
                    "set": name,
                    "subgroup": subgroup.split("=")[-1],
                    "learned_mean": values[f"strength/{subgroup}/mean"],
                    "learned_cv": values[f"strength/{subgroup}/cv"],
                    "learned_relative": values[f"strength/{subgroup}/mean"]
                    / values["strength/mean"],
                    "learned_population_cv": values["strength/cv"],
                }
            )
        if name == "heterogeneous":
            # stage one from the trained policy, on pairs it was not trained on
            tic = time.perf_counter()
            held_out = panel_labels(kind, ("test",))
            held_out["policy_gap"] = implicit_reward_gaps(
                trainer.model,
                trainer.ref_model,
                held_out,
                tokenizer,
                max_length=settings.max_length,
                max_prompt_length=settings.max_prompt_length,
            )
            timings["panel_policy_gaps"] = time.perf_counter() - tic
            tic = time.perf_counter()
            policy_fit = fit_panel_strengths(held_out, gap="policy_gap", **nuts, **light)
            timings["panel_fit_policy"] = time.perf_counter() - tic
        del trainer
    fits = {}
    for name, kind in PANEL_KINDS.items():
        tic = time.perf_counter()
        extra: dict[str, Any] = {} if name == "heterogeneous" else light
        fits[name] = fit_panel_strengths(panel_labels(kind), **nuts, **extra)
        timings[f"panel_fit_known_{name}"] = time.perf_counter() - tic
    tic = time.perf_counter()
    labels = panel_labels(PANEL_KINDS["heterogeneous"])
    profiles = [
        profile_cv(labels, PANEL_CVS, level=level, gaps="free") for level in ("pair", "annotator")
    ]
    timings["panel_profiles"] = time.perf_counter() - tic
    truth = {name: load_ground_truth(kind) for name, kind in PANEL_KINDS.items()}
    return {
        "fit": fits["heterogeneous"],
        "control_fit": fits["homogeneous"],
        "policy_fit": policy_fit,
        "held_out": held_out,
        "profiles": profiles,
        "learned": pd.DataFrame(learned_rows),
        "summary": panel_summary(fits, policy_fit, truth),
        "truth": truth,
        "timings": timings,
    }


def _true_subgroup_means(truth: Mapping[str, Any]) -> dict[str, float]:
    """``{subgroup: mean strength}`` of a panel set's ground truth (marginal over covariates;
    the control's annotators all have its common strength)."""
    if truth["homogeneous"]:
        return {g["name"]: float(truth["common_strength"]) for g in truth["subgroups"]}
    return {g["name"]: float(g["mean"]) for g in truth["subgroups"]}


def panel_summary(
    fits: Mapping[str, Any], policy_fit: Any, truth: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """One row per set and subgroup: the two-stage posterior mean strength with its interval
    (known utilities), the true mean, and the relative strength (subgroup mean / population
    mean, unit-free) from the known utilities, from the policy's implicit reward and the truth.
    """
    rows = []
    for name, fit in fits.items():
        true_means = _true_subgroup_means(truth[name])
        population = float(truth[name]["population_mean_strength"])
        policy = (
            policy_fit.subgroups.set_index("subgroup")["relative_strength"]
            if name == "heterogeneous" and policy_fit is not None
            else None
        )
        for row in fit.subgroups.itertuples():
            rows.append(
                {
                    "set": name,
                    "subgroup": row.subgroup,
                    "annotators": row.num_annotators,
                    "mean_strength": row.mean_strength,
                    "low": row.mean_strength_low,
                    "high": row.mean_strength_high,
                    "true_mean": true_means[row.subgroup],
                    "relative": row.relative_strength,
                    "policy_relative": np.nan if policy is None else policy[row.subgroup],
                    "true_relative": true_means[row.subgroup] / population,
                }
            )
    return pd.DataFrame(rows)


def format_panel_summary(panels: Mapping[str, Any]) -> str:
    """The panel section's stdout summary: which subgroups are decisive, with intervals."""
    fit = panels["fit"]
    lines = [
        f"Annotator panels: two-stage subgroup strengths, known utilities as reward gaps "
        f"({fit.interval:.0%} intervals)",
        f"{'set':<14}{'subgroup':<12}{'mean':>8}  {'interval':<18}{'true':>7}"
        f"{'x pop':>8}{'policy':>8}{'true':>7}",
    ]
    for row in panels["summary"].itertuples():
        interval = f"[{row.low:.3g}, {row.high:.3g}]"
        policy = "" if np.isnan(row.policy_relative) else f"{row.policy_relative:.2f}"
        lines.append(
            f"{row.set:<14}{row.subgroup:<12}{row.mean_strength:8.3g}  {interval:<18}"
            f"{row.true_mean:7.3g}{row.relative:8.2f}{policy:>8}{row.true_relative:7.2f}"
        )
    lines.append(
        "('x pop': subgroup mean / population mean from the known utilities, 'policy': the same "
        "from the MixDPO policy's implicit reward on held-out pairs, then the truth)"
    )
    for profile in panels["profiles"]:
        lines.append(f"{profile.label}: {profile.interpretation()}")
    return "\n".join(lines)


def run_demo(settings: DemoSettings) -> dict[str, Any]:
    """Run every stage; return the report path, timings (s), the evaluation table, the
    posteriors, the Electricity fit and the panel stage's results (:func:`run_panels`, None
    with ``settings.panels`` off)."""
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
    total = 2 + len(KINDS) * len(METHODS) + int(settings.panels) + 1
    stages = tqdm(total=total, desc="demo", unit="stage")

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

    panels = None
    figures: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}
    if settings.panels:
        stages.set_postfix_str("annotator panels")
        tic = time.perf_counter()
        panels = run_panels(make_model, tokenizer, settings)
        timings.update(panels["timings"])
        timings["panels"] = time.perf_counter() - tic
        figures, tables = panel_report_parts(panels)
        stages.update()

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
    tic = time.perf_counter()
    output = Path(settings.output)
    path = analysis.report(
        output,
        run_dirs=run_dirs,
        evaluation=evaluation,
        by=["subgroup"],
        question=(
            "Does learning a strength distribution (MixDPO) rank held-out annotator choices "
            "better than DPO, on the heterogeneous set and on its homogeneous control?"
        ),
        baseline="dpo",
        pair_id="pair_id",
        cluster="annotator_id",
        posteriors=posteriors,
        choice_fit=electricity,
        price="pf",
        price_units="cents/kWh",
        coefficient_units=ELECTRICITY_UNITS,
        variable_labels=ELECTRICITY_LABELS,
        panel_fit=None if panels is None else panels["fit"],
        cv_profiles=[] if panels is None else panels["profiles"],
        figures=figures,
        tables=tables,
        settings=asdict(settings),
        wall_times=dict(timings),
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
        "panels": panels,
    }


def panel_report_parts(panels: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """``(figures, tables)`` of the panel stage for :func:`analysis.report`, beyond its
    "Which subgroups are decisive" section (which shows ``panels["fit"]`` and the profiles):
    the control's and the policy's subgroup forests, the estimates against the truth, and the
    annotator-level MixDPO runs' learned subgroup strengths."""
    from analysis.panel_plots import plot_panel_subgroup_forest

    truth = {
        name: {"mean_strength": _true_subgroup_means(panels["truth"][name])} for name in PANEL_KINDS
    }
    figures = {
        "Annotator panels, homogeneous control: subgroup strengths (known utilities)": (
            plot_panel_subgroup_forest(
                panels["control_fit"],
                truth=truth["homogeneous"],
                title="Homogeneous control: one common strength (red crosses: truth)",
            )
        ),
    }
    if panels["policy_fit"] is not None:
        figures["Annotator panels: subgroup strengths from the MixDPO policy's implicit reward"] = (
            plot_panel_subgroup_forest(
                panels["policy_fit"],
                title="Stage one = annotator-level MixDPO policy's implicit reward (held-out "
                "pairs; strength per nat)",
            )
        )
    tables = {
        "Annotator panels: two-stage estimates against the truth": panels["summary"],
        "Annotator panels: annotator-level MixDPO's learned subgroup strengths": panels["learned"],
    }
    return figures, tables


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
    parser.add_argument("--no-panels", action="store_true", help="skip the annotator-panel section")
    parser.add_argument(
        "--panel-steps", type=int, help="optimiser steps of each annotator-level MixDPO run"
    )
    parser.add_argument(
        "--panel-samples", type=int, help="NUTS warmup = samples per chain of the panel fits"
    )
    parser.add_argument("--seed", type=int)
    options = parser.parse_args(argv)
    settings = QUICK if options.quick else DemoSettings()
    overrides: dict[str, Any] = {
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
            ("panel_steps", options.panel_steps),
            ("panel_samples", options.panel_samples),
            ("seed", options.seed),
            ("panels", False if options.no_panels else None),
        )
        if value is not None
    }
    for field in ("steps", "pairs_per_step", "max_length", "eval_pairs", "panel_steps"):
        if field in overrides and overrides[field] < 1:
            parser.error(f"--{field.replace('_', '-')} must be >= 1, got {overrides[field]}")
    if overrides.get("panel_samples", 1) < 1:
        parser.error(f"--panel-samples must be >= 1, got {overrides['panel_samples']}")
    if overrides.get("posterior_samples", 0) < 0:
        parser.error(f"--posterior-samples must be >= 0, got {overrides['posterior_samples']}")
    return replace(settings, **overrides)


def demo(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, run every stage, print the timings and the report path; return
    :func:`run_demo`'s result."""
    settings = parse_args(argv)
    result = run_demo(settings)
    if result["panels"] is not None:
        print("\n" + format_panel_summary(result["panels"]))
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
