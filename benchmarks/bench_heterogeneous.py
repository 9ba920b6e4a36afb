"""Heterogeneous-preference baselines vs MixDPO: synthetic user types and a semi-synthetic LLM.

Ranks DPO, MixDPO-Gamma, MixDPO-LogNormal, first-order variance-corrected DPO (oracle ``V`` and
``V`` estimated from pairs labelled by the same annotator) and the agreement-only loss by the
alignment accuracy of the learned policy against the user-weighted average reward
(Shirali et al., arXiv 2502.16320). Three parts:

* population optima (exact; no sampling noise): where each loss's tabular policy peaks;
* finite samples: ``--seeds`` independent data sets of ``--pairs`` comparisons each, mean and
  95% t-interval over seeds, and wall time per fit;
* semi-synthetic LLM (:mod:`alignment.datasets.semisynthetic_types`): the embedded advice pairs relabelled
  by three annotator types with known linear rewards over measurable response features; a tiny
  Llama-architecture model (:func:`alignment.tiny_causal_lm`, word tokenizer) trained with
  :class:`alignment.MixDPOTrainer` and each loss by name, ``--llm-seeds`` seeds (data labels,
  model initialisation and batch order all change with the seed). Reported on the 120 held-out
  pairs: pair alignment accuracy of the implicit reward margin against the average-reward gap
  (:func:`~alignment.datasets.semisynthetic_types.pair_alignment_accuracy`), micro
  and macro (over annotator types) implicit-reward margins of the held-out labels, wall time.

Run from the repository root::

    python -m benchmarks.bench_heterogeneous            # all parts (synthetic: 10 seeds x 20000
                                                        # pairs; LLM: 5 seeds x 400 steps)
    python -m benchmarks.bench_heterogeneous --only-llm # LLM part only, merged into the JSON
    python -m benchmarks.bench_heterogeneous --quick    # smoke run of every part

Writes ``benchmarks/results/heterogeneous_synthetic.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from analysis.borda import alignment_accuracy, nbc_ranking_sensitivity, preference_matrix
from benchmarks._report import markdown_table
from benchmarks.synthetic_types import (
    METHODS,
    MIXDPO_FAMILIES,
    default_environment,
    fit_population,
    fit_sample,
    sample_preferences,
    unit_mean_strength,
)

RESULTS = Path(__file__).parent / "results"
LABELS = {
    "dpo": "DPO",
    "mixdpo_gamma": "MixDPO-Gamma",
    "mixdpo_lognormal": "MixDPO-LogNormal",
    "corrected": "first-order corrected DPO (true V)",
    "corrected_estimated": "first-order corrected DPO (estimated V)",
    "agreement": "agreement-only (unanimous pairs)",
    "corrected_alpha": "first-order corrected DPO (true V, alpha = {alpha})",
}
ALPHA_SWEEP = (0.25, 0.5, 0.75, 1.0, 1.5)


def _label(method: str, alpha: float) -> str:
    return LABELS[method].format(alpha=alpha)


def _ci95(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def run(seeds: int, num_pairs: int, pairs_per_annotator: int, small_alpha: float = 0.25) -> dict:
    env = default_environment()
    r_bar = pd.Series(env.average_reward())
    best = int(r_bar.idxmax())
    nbc = env.normalized_borda_count()
    P = preference_matrix(env.rewards_frame(), env.weights_series())
    sensitivity = nbc_ranking_sensitivity(P, env.sampling_series())
    winner = int(np.argmax(nbc))
    dethrone = sensitivity[sensitivity.higher == winner].tv_distance.min()

    population = {}
    for method in [m for m in METHODS if m != "corrected_estimated"]:
        fit = fit_population(env, method)
        population[method] = {
            "accuracy": alignment_accuracy(pd.Series(fit.implicit_reward), r_bar),
            "peak": fit.peak,
            "peak_position": float(env.positions[fit.peak]),
            "average_reward_regret": float(r_bar.max() - r_bar[fit.peak]),
            "kept_share": fit.kept_share,
            "strength": fit.strength,
            "seconds": fit.seconds,
        }
        print(
            f"population {method:20s} acc={population[method]['accuracy']:.4f} "
            f"peak={fit.peak} ({fit.seconds:.2f}s)",
            flush=True,
        )

    alpha_sweep = {}
    for alpha in ALPHA_SWEEP:
        fit = fit_population(env, "corrected", alpha=alpha)
        alpha_sweep[str(alpha)] = {
            "accuracy": alignment_accuracy(pd.Series(fit.implicit_reward), r_bar),
            "peak": fit.peak,
        }

    sample_methods = (*METHODS, "corrected_alpha")
    per_seed: dict[str, list[dict]] = {m: [] for m in sample_methods}
    for seed in range(seeds):
        sample = sample_preferences(
            env, num_pairs, pairs_per_annotator=pairs_per_annotator, seed=seed
        )
        for method in sample_methods:
            if method == "corrected_alpha":
                fit = fit_sample(sample, "corrected", alpha=small_alpha)
            else:
                fit = fit_sample(sample, method)
            row = {
                "seed": seed,
                "accuracy": alignment_accuracy(pd.Series(fit.implicit_reward), r_bar),
                "peak": fit.peak,
                "average_reward_regret": float(r_bar.max() - r_bar[fit.peak]),
                "kept_share": fit.kept_share,
                "seconds": fit.seconds,
            }
            per_seed[method].append(row)
            print(
                f"seed {seed} {method:20s} acc={row['accuracy']:.4f} peak={fit.peak} "
                f"({fit.seconds:.2f}s)",
                flush=True,
            )

    summary = {}
    for method, rows in per_seed.items():
        acc = np.array([r["accuracy"] for r in rows])
        mean, half = _ci95(acc)
        summary[method] = {
            "accuracy_mean": mean,
            "accuracy_ci95": half,
            "peak_median": float(np.median([r["peak"] for r in rows])),
            "regret_mean": float(np.mean([r["average_reward_regret"] for r in rows])),
            "kept_share_mean": float(np.mean([r["kept_share"] for r in rows])),
            "seconds_mean": float(np.mean([r["seconds"] for r in rows])),
        }
    return {
        "environment": {
            "num_responses": env.num_responses,
            "types": list(env.names),
            "type_weights": env.type_weights.tolist(),
            "sampling": "uniform",
            "average_reward_argmax": best,
            "nbc_argmax": winner,
            "nbc_argmax_position": float(env.positions[winner]),
            "average_reward_at_nbc_argmax": float(r_bar[winner]),
            "average_reward_max": float(r_bar.max()),
            "tv_to_dethrone_nbc_winner": float(dethrone),
            "tv_to_change_nbc_ranking": float(sensitivity.tv_distance.min()),
        },
        "config": {
            "seeds": seeds,
            "pairs": num_pairs,
            "pairs_per_annotator": pairs_per_annotator,
            "beta": 1.0,
            "alpha": 1.0,
            "small_alpha": small_alpha,
            "torch": torch.__version__,
            "machine": platform.machine(),
            "threads": 1,
        },
        "population": population,
        "population_alpha_sweep": alpha_sweep,
        "samples": summary,
        "per_seed": per_seed,
    }


# --------------------------------------------------------------------------------------------
# Semi-synthetic LLM part
# --------------------------------------------------------------------------------------------

LLM_METHODS = (
    "dpo",
    "mixdpo_gamma",
    "mixdpo_lognormal",
    "corrected",
    "corrected_alpha",
    "corrected_estimated",
    "agreement",
)
LLM_DEFAULTS = {"seeds": 5, "steps": 400, "pairs_per_annotator": 6}
LLM_QUICK = {"seeds": 2, "steps": 30}
# beta = 1: the implicit reward margin is in the types' reward units (nats), those of V.
LLM_BETA = 1.0
LLM_LEARNING_RATE = 1e-2
LLM_BATCH_PAIRS = 8
LLM_MAX_LENGTH, LLM_MAX_PROMPT_LENGTH = 96, 32
#: ``MixDPOConfig`` fields shared by every LLM run.
LLM_TRAINING = {
    "report_to": "none",
    "per_device_train_batch_size": LLM_BATCH_PAIRS,
    "learning_rate": LLM_LEARNING_RATE,
    "strength_learning_rate": 0.05,
    "lr_scheduler_type": "constant",
    "disable_tqdm": True,
    "save_strategy": "no",
    "dataloader_pin_memory": False,
    "beta": LLM_BETA,
    "max_length": LLM_MAX_LENGTH,
    "max_prompt_length": LLM_MAX_PROMPT_LENGTH,
    # full fine-tuning: the reference is the initial model, scored once before training
    "precompute_ref_log_probs": True,
}


def _llm_training_settings(method: str, small_alpha: float = 0.25) -> dict:
    """``MixDPOConfig`` fields that select ``method``'s loss (all at mean strength 1)."""
    if method in MIXDPO_FAMILIES:
        family = MIXDPO_FAMILIES[method]
        return {
            "loss_type": "mixdpo",
            "strength_family": family,
            "strength_init": unit_mean_strength(family),
            # the exact quadrature marginal, as in the tabular fits (no Monte Carlo noise)
            "lognormal_method": "quadrature",
        }
    losses = {
        "dpo": ("dpo", {}),
        "corrected": ("variance_corrected_dpo", {}),
        "corrected_alpha": ("variance_corrected_dpo", {"alpha": small_alpha}),
        "corrected_estimated": (
            "variance_corrected_dpo",
            {"variance_column": "estimated_reward_variance"},
        ),
        "agreement": ("agreement_dpo", {}),
    }
    if method not in losses:
        raise ValueError(f"method must be one of {list(LLM_METHODS)}, got {method!r}")
    loss_type, loss_kwargs = losses[method]
    return {
        "loss_type": loss_type,
        "strength_family": "point_mass",
        **({"loss_kwargs": loss_kwargs} if loss_kwargs else {}),
    }


def train_llm_policy(
    method: str,
    train,
    tokenizer,
    *,
    seed: int,
    steps: int,
    output_dir: str,
    small_alpha: float = 0.25,
):
    """Train a tiny causal LM on ``train`` with ``method``'s loss; return the trainer."""
    from alignment import MixDPOConfig, MixDPOTrainer, tiny_causal_lm

    args = MixDPOConfig(
        output_dir=output_dir,
        seed=seed,
        max_steps=steps,
        logging_steps=max(1, steps),
        **LLM_TRAINING,
        **_llm_training_settings(method, small_alpha),
    )
    model = tiny_causal_lm(len(tokenizer), seed=seed)
    trainer = MixDPOTrainer(model, args=args, train_dataset=train, processing_class=tokenizer)
    trainer.train()
    return trainer


def run_llm(seeds: int, steps: int, pairs_per_annotator: int, small_alpha: float = 0.25) -> dict:
    """The semi-synthetic LLM part: every method, ``seeds`` seeds; mean and 95% t-intervals."""
    import datasets

    from alignment import tiny_causal_lm
    from alignment.datasets.semisynthetic_types import (
        add_estimated_variance,
        make_type_preference_data,
        pair_alignment_accuracy,
    )
    from alignment.evaluation import preference_margins
    from alignment.policy_models import build_word_tokenizer
    from analysis.margins import micro_macro_margins

    datasets.disable_progress_bars()
    margin_lengths = {"max_length": LLM_MAX_LENGTH, "max_prompt_length": LLM_MAX_PROMPT_LENGTH}
    per_seed: dict[str, list[dict]] = {m: [] for m in LLM_METHODS}
    ground_truth = None
    for seed in range(seeds):
        data = make_type_preference_data(pairs_per_annotator=pairs_per_annotator, seed=seed)
        train, test = data["train"], data["test"]
        ground_truth = data["ground_truth"]
        # the vocabulary depends only on the (fixed) texts, not on the labels
        tokenizer = build_word_tokenizer(
            [text for split in (train, test) for c in PREFERENCE_TEXT for text in split[c]]
        )
        start = time.perf_counter()
        train, estimate = add_estimated_variance(train, seed=seed)
        estimate_seconds = time.perf_counter() - start
        reference = tiny_causal_lm(len(tokenizer), seed=seed)
        ref_margins = preference_margins(
            reference, test, tokenizer, batch_size=64, **margin_lengths
        )
        gaps = np.asarray(test["average_reward_gap"])
        true_v = np.asarray(train["reward_variance"])
        est_v = np.asarray(train["estimated_reward_variance"])
        for method in LLM_METHODS:
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as output_dir:
                trainer = train_llm_policy(
                    method,
                    train,
                    tokenizer,
                    seed=seed,
                    steps=steps,
                    output_dir=output_dir,
                    small_alpha=small_alpha,
                )
            seconds = time.perf_counter() - start
            if method == "corrected_estimated":
                seconds += estimate_seconds
            policy_margins = preference_margins(
                trainer.model, test, tokenizer, batch_size=64, **margin_lengths
            )
            implicit = policy_margins - ref_margins  # log-ratio margin; times beta = 1
            margins = micro_macro_margins(implicit, test["type_name"])
            row = {
                "seed": seed,
                "accuracy": pair_alignment_accuracy(implicit, gaps),
                "margin_micro": margins["micro"],
                "margin_macro": margins["macro"],
                "margin_by_type": margins["by_group"],
                "seconds": seconds,
                "final_train_loss": float(trainer.state.log_history[-1].get("train_loss", "nan")),
            }
            if method == "agreement":
                kept = [len(set(labels)) == 1 for labels in train["type_labels"]]
                row["kept_share"] = float(np.mean(kept))
            if method.startswith("mixdpo"):
                row["strength"] = {
                    k: float(v.detach())
                    for k, v in trainer.strength.constrained_parameters().items()
                }
            if method == "corrected_estimated":
                row["estimated_types"] = len(estimate.type_weights)
                row["estimated_v_correlation"] = float(np.corrcoef(true_v, est_v)[0, 1])
                row["estimated_v_mean"] = float(est_v.mean())
            per_seed[method].append(row)
            print(
                f"llm seed {seed} {method:20s} acc={row['accuracy']:.4f} "
                f"micro={row['margin_micro']:.3f} macro={row['margin_macro']:.3f} "
                f"({seconds:.1f}s)",
                flush=True,
            )
    summary = {}
    for method, rows in per_seed.items():
        entry = {}
        for key in ("accuracy", "margin_micro", "margin_macro", "seconds"):
            mean, half = _ci95(np.array([r[key] for r in rows]))
            entry[f"{key}_mean"], entry[f"{key}_ci95"] = mean, half
        if method == "agreement":
            entry["kept_share_mean"] = float(np.mean([r["kept_share"] for r in rows]))
        summary[method] = entry
    test_gaps = np.asarray(test["average_reward_gap"])
    shares = np.array([t["share"] for t in ground_truth["types"]])
    pooled = (1.0 / (1.0 + np.exp(-np.asarray(test["type_reward_gaps"])))) @ shares
    decided = np.abs(test_gaps) > 1e-12
    return {
        "config": {
            "seeds": seeds,
            "steps": steps,
            "batch_pairs": LLM_BATCH_PAIRS,
            "learning_rate": LLM_LEARNING_RATE,
            "beta": LLM_BETA,
            "alpha": 1.0,
            "small_alpha": small_alpha,
            "pairs_per_annotator": pairs_per_annotator,
            "train_pairs": len(train),
            "test_pairs": len(test),
            "model": "tiny_causal_lm (hidden 32, 2 layers), word tokenizer",
        },
        "ground_truth": {k: v for k, v in ground_truth.items() if k != "annotator_types"},
        # how far the pooled majority is from the average reward on the held-out pairs: the
        # best accuracy a policy following the pooled labels can reach
        "test_majority_accuracy": float(
            np.mean(np.sign(pooled[decided] - 0.5) == np.sign(test_gaps[decided]))
        ),
        "test_tied_pairs": int((~decided).sum()),
        "samples": summary,
        "per_seed": per_seed,
    }


PREFERENCE_TEXT = ("prompt", "chosen", "rejected")


def _format_strength(strength: dict[str, float]) -> str:
    return ", ".join(f"{k} = {v:.4g}" for k, v in strength.items())


def _ranked_table(
    samples: dict[str, dict],
    columns: tuple[str, ...],
    label: Callable[[str], str],
    cells: Callable[[dict], list[str]],
) -> list[str]:
    """A markdown table of the methods ranked by mean accuracy: ``rank | method | columns``."""
    ranked = sorted(samples.items(), key=lambda kv: -kv[1]["accuracy_mean"])
    return markdown_table(
        ("rank", "method", *columns),
        ((rank, label(method), *cells(row)) for rank, (method, row) in enumerate(ranked, start=1)),
    )


def markdown(result: dict) -> str:
    env, cfg = result["environment"], result["config"]
    lines = [
        "# Heterogeneous-preference baselines: synthetic user types",
        "",
        f"{env['num_responses']} responses on [0, 1], types {env['types']} with equal weights, "
        "uniform sampling. Average-reward optimum: response "
        f"{env['average_reward_argmax']}; NBC (DPO) optimum: response {env['nbc_argmax']} "
        f"(x = {env['nbc_argmax_position']:.2f}, average reward "
        f"{env['average_reward_at_nbc_argmax']:.3f} vs max {env['average_reward_max']:.3f}). "
        f"Moving the sampling distribution by TV {env['tv_to_dethrone_nbc_winner']:.4f} "
        f"dethrones the NBC winner; TV {env['tv_to_change_nbc_ranking']:.5f} changes the NBC "
        "ranking.",
        "",
        "## Population optima (exact)",
        "",
    ]
    lines += markdown_table(
        ("method", "alignment accuracy", "peak (x)", "avg-reward regret at peak", "kept share"),
        (
            (
                _label(method, 1.0),
                f"{row['accuracy']:.4f}",
                f"{row['peak']} ({row['peak_position']:.2f})",
                f"{row['average_reward_regret']:.4f}",
                f"{row['kept_share']:.3f}",
            )
            for method, row in result["population"].items()
        ),
    )
    sweep = result["population_alpha_sweep"]
    lines += [
        "",
        "Population optimum of the corrected loss by alpha (true V): "
        + "; ".join(
            f"alpha = {a}: accuracy {row['accuracy']:.4f}, peak {row['peak']}"
            for a, row in sweep.items()
        )
        + ".",
    ]
    lines += [
        "",
        f"## Finite samples ({cfg['seeds']} seeds x {cfg['pairs']} pairs, "
        f"{cfg['pairs_per_annotator']} pairs per annotator; mean and 95% t-interval)",
        "",
    ]
    lines += _ranked_table(
        result["samples"],
        (
            "alignment accuracy",
            "median peak",
            "avg-reward regret",
            "kept share",
            "wall time per fit (s)",
        ),
        lambda method: _label(method, cfg["small_alpha"]),
        lambda row: [
            f"{row['accuracy_mean']:.4f} ± {row['accuracy_ci95']:.4f}",
            f"{row['peak_median']:.1f}",
            f"{row['regret_mean']:.4f}",
            f"{row['kept_share_mean']:.3f}",
            f"{row['seconds_mean']:.2f}",
        ],
    )
    lines += [
        "",
        "Alignment accuracy (`analysis.alignment_accuracy`): share of the 780 response pairs "
        "ordered like the average reward (an implicit-reward tie scores 1/2). "
        "Wall time: one tabular fit on 1 CPU thread (the estimated-V row includes the "
        "latent-type mixture fit with BIC selection). The agreement-only loss sees one label "
        "from each of the 3 types per pair (3x the labels of the other rows) and keeps only "
        "the unanimous share; the corrected rows use the pooled labels plus V (true, or "
        "estimated from the annotator linkage). MixDPO's fitted strength (population): "
        + "; ".join(
            f"{LABELS[m]} {_format_strength(result['population'][m]['strength'])}"
            for m in ("mixdpo_gamma", "mixdpo_lognormal")
        )
        + ".",
        "",
    ]
    if "llm" in result:
        lines += llm_markdown(result["llm"])
    return "\n".join(lines)


def llm_markdown(llm: dict) -> list[str]:
    cfg = llm["config"]
    labels = {**LABELS, "agreement": "agreement-only (unanimous pairs, labels of all 3 types)"}
    lines = [
        "## Semi-synthetic LLM (tiny model)",
        "",
        f"{cfg['train_pairs']} embedded advice pairs relabelled by annotators of the types "
        + ", ".join(
            f"{t['name']} (share {t['share']:.2f}: "
            + ", ".join(f"{k} {v:+g}" for k, v in t["coefficients"].items() if v)
            + ")"
            for t in llm["ground_truth"]["types"]
        )
        + f"; {cfg['pairs_per_annotator']} pairs per annotator. {cfg['model']}, "
        f"{cfg['steps']} steps of {cfg['batch_pairs']} pairs, learning rate "
        f"{cfg['learning_rate']:g}, beta = {cfg['beta']:g}. {cfg['seeds']} seeds; mean and 95% "
        f"t-interval. Evaluated on {cfg['test_pairs']} held-out pairs "
        f"({llm['test_tied_pairs']} tied under the average reward are left out of the "
        f"accuracy); following the pooled majority label would give accuracy "
        f"{llm['test_majority_accuracy']:.4f}.",
        "",
    ]

    def interval(row: dict, key: str, digits: int) -> str:
        return f"{row[f'{key}_mean']:.{digits}f} ± {row[f'{key}_ci95']:.{digits}f}"

    lines += _ranked_table(
        llm["samples"],
        ("pair alignment accuracy", "micro margin", "macro margin", "wall time per run (s)"),
        lambda method: labels[method].format(alpha=cfg.get("small_alpha", 0.25)),
        lambda row: [
            interval(row, key, digits)
            for key, digits in (
                ("accuracy", 4),
                ("margin_micro", 3),
                ("margin_macro", 3),
                ("seconds", 1),
            )
        ],
    )
    kept = llm["samples"].get("agreement", {}).get("kept_share_mean")
    estimated = llm["per_seed"].get("corrected_estimated", [])
    lines += [
        "",
        "Pair alignment accuracy (`pair_alignment_accuracy`): share of held-out pairs whose "
        "log-ratio margin (policy minus reference, chosen minus rejected; the implicit reward at "
        "beta = 1) has the sign of the average-reward gap, a zero margin counting as wrong (unlike "
        "the synthetic tables' alignment accuracy over all response pairs, where a tie scores "
        "1/2). Micro / macro margin: that log-ratio margin (nats) of the held-out "
        "label averaged over pairs / first within each labelling annotator's type, then over "
        "types; MixDPO's learned strength rescales rewards, so its margins are not in reward "
        "units (a lower learned mean strength gives larger margins). "
        "Wall time: training (with the reference scored once) on 1 CPU thread; the estimated-V "
        "row includes the latent-type mixture fit.",
    ]
    if kept is not None:
        lines[-1] += f" The agreement-only loss keeps {kept:.3f} of the training pairs."
    if estimated:
        lines[-1] += (
            " Estimated V: "
            + "; ".join(
                f"seed {r['seed']}: {r['estimated_types']} types, correlation with the true V "
                f"{r['estimated_v_correlation']:.3f}"
                for r in estimated
            )
            + "."
        )
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--pairs-per-annotator", type=int, default=10)
    parser.add_argument(
        "--small-alpha", type=float, default=0.25, help="extra corrected row (both parts)"
    )
    parser.add_argument("--llm-seeds", type=int, default=LLM_DEFAULTS["seeds"])
    parser.add_argument("--llm-steps", type=int, default=LLM_DEFAULTS["steps"])
    parser.add_argument(
        "--llm-pairs-per-annotator", type=int, default=LLM_DEFAULTS["pairs_per_annotator"]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: synthetic 2 seeds x 5000 pairs, LLM 2 seeds x 30 steps; writes to "
        "the temporary directory unless --out is given",
    )
    parser.add_argument(
        "--only-llm",
        action="store_true",
        help="run only the LLM part and merge it into the existing JSON (synthetic rows kept)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "heterogeneous_synthetic")
    parser.add_argument(
        "--markdown-only", action="store_true", help="rewrite the .md from an existing .json"
    )
    args = parser.parse_args(argv)
    if args.markdown_only:
        result = json.loads(args.out.with_suffix(".json").read_text())
        args.out.with_suffix(".md").write_text(markdown(result))
        print(markdown(result))
        return result
    if args.quick:
        args.seeds, args.pairs = 2, 5000
        args.llm_seeds, args.llm_steps = LLM_QUICK["seeds"], LLM_QUICK["steps"]
        if args.out == RESULTS / "heterogeneous_synthetic":
            # a smoke run must not overwrite the recorded results
            args.out = Path(tempfile.gettempdir()) / "heterogeneous_quick"
    torch.set_num_threads(1)
    start = time.perf_counter()
    if args.only_llm:
        json_path = args.out.with_suffix(".json")
        if not json_path.exists():
            raise SystemExit(f"--only-llm merges into {json_path}, which does not exist")
        result = json.loads(json_path.read_text())
    else:
        result = run(args.seeds, args.pairs, args.pairs_per_annotator, args.small_alpha)
        result["config"]["synthetic_seconds"] = time.perf_counter() - start
    llm_start = time.perf_counter()
    result["llm"] = run_llm(
        args.llm_seeds, args.llm_steps, args.llm_pairs_per_annotator, args.small_alpha
    )
    result["llm"]["config"]["total_seconds"] = time.perf_counter() - llm_start
    result["llm"]["config"]["torch"] = torch.__version__
    result["llm"]["config"]["threads"] = 1
    if not args.only_llm:
        result["config"]["total_seconds"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main()
