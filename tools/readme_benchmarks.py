"""Render the README's benchmark table from ``benchmarks/results/*.json``.

Every figure in the table is read from a benchmark's JSON result (or computed from several of
its values, e.g. a maximum over parameters); the prose around the figures lives here. The
table sits in README.md between ``<!-- benchmarks:start -->`` and ``<!-- benchmarks:end -->``.

    python tools/readme_benchmarks.py           # rewrite the table in README.md
    python tools/readme_benchmarks.py --check   # exit 1 (and print a diff) if README disagrees

After re-running a benchmark, run the first command and commit README.md with the results.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

# tools/ is no package: its scripts import their shared helper as a sibling module, also when
# loaded by path (the tests).
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _generated_file import update_generated

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
START = "<!-- benchmarks:start -->"
END = "<!-- benchmarks:end -->"

__all__ = ["END", "START", "Results", "load_results", "main", "render_table", "splice"]


class Results:
    """The parsed JSON results, one per file stem, with lookups that name what is missing."""

    def __init__(self, by_stem: Mapping[str, Any]) -> None:
        self._by_stem = dict(by_stem)

    def __call__(self, stem: str, path: str) -> Any:
        """The value at ``path`` (keys and list indices separated by ``/``) in ``<stem>.json``."""
        if stem not in self._by_stem:
            raise KeyError(f"benchmark result {stem}.json not found; have {sorted(self._by_stem)}")
        value = self._by_stem[stem]
        walked: list[str] = []
        for part in path.split("/"):
            walked.append(part)
            try:
                value = value[int(part)] if isinstance(value, list) else value[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise KeyError(
                    f"{stem}.json has no key {'/'.join(walked)!r} (needed for the README table)"
                ) from None
        return value

    def find(self, stem: str, path: str, **match: Any) -> Mapping[str, Any]:
        """The one entry of the list at ``path`` whose fields equal ``match``."""
        rows = [r for r in self(stem, path) if all(r.get(k) == v for k, v in match.items())]
        if len(rows) != 1:
            raise KeyError(f"{stem}.json: {len(rows)} entries of {path!r} match {match}")
        return rows[0]


def load_results(directory: Path = RESULTS) -> Results:
    """Parse every ``*.json`` in ``directory`` (``Infinity`` allowed, as Python writes it)."""
    files = sorted(directory.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no benchmark results (*.json) in {directory}")
    return Results({f.stem: json.loads(f.read_text(encoding="utf-8")) for f in files})


# ---------------------------------------------------------------------------------------------
# Number formats (one per kind of figure, so equal kinds read alike across rows).


def _sci(x: float, digits: int = 1) -> str:
    """``1.8e-5`` style: no ``+`` and no leading zeros in the exponent; 0 stays ``0``."""
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.{digits}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _times(x: float) -> str:
    """A cost ratio: two significant figures below 10, whole numbers above."""
    return f"{x:.1f}x" if x < 10 else f"{x:.0f}x"


def _count(n: float) -> str:
    return f"{int(n):,}"


def _pm(mean: float, half_width: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f} +- {half_width:.{digits}f}"


def _percent(share: float) -> str:
    return f"{100 * share:.0f}%"


# ---------------------------------------------------------------------------------------------
# Rows: (what was measured, figures, command). Each function reads only the results it cites.

Row = tuple[str, str, str]
SAME = "same"


def _marginal_accuracy(r: Results) -> Row:
    accelerated = [a for a in r("marginals", "accuracy") if a["method"].startswith("accelerated")]
    floor = min(a["max_rel_error"] for a in accelerated)
    first_at_floor = next(a for a in accelerated if a["max_rel_error"] == floor)
    terms = first_at_floor["method"].removeprefix("accelerated, ")
    naive = r.find("marginals", "accuracy", method="naive 1000-term truncation")
    ex = r("marginals", "naive_example")
    return (
        "Gamma marginal accuracy on the mpmath reference grid (float64)",
        f"max rel. error {_sci(floor)} from {terms} on; the published 1000-term truncation: "
        f"median rel. error {naive['median_rel_error']:.2f}, {naive['non_finite']} non-finite; "
        f"at k={ex['k']:g}, rate={ex['rate']:g}, d={_sci(ex['d'], 0)} it gives "
        f"P = {ex['naive_P']:.3f} instead of {ex['exact_P']:.6g}",
        "`python -m benchmarks.bench_marginals`",
    )


_TIMED = (  # (label, marginal, [(backend, dtype), ...]) in the order shown
    (
        "Gamma exact",
        "gamma",
        [("torch", "float64"), ("torch", "float32"), ("jax", "float64"), ("jax", "float32")],
    ),
    ("LogNormal MC K=16", "lognormal_mc16", [("torch", "float64")]),
    ("LogNormal quadrature, 16 nodes", "lognormal_quad16", [("jax", "float64")]),
)
_SHORT_DTYPE = {"float64": "f64", "float32": "f32"}
_BACKEND = {"torch": "torch", "jax": "JAX"}


def _marginal_timing(r: Results) -> Row:
    parts = []
    for label, marginal, cases in _TIMED:
        cells = []
        for backend, dtype in cases:
            t = r.find("marginals", "timing", marginal=marginal, backend=backend, dtype=dtype)
            cells.append(
                f"{_BACKEND[backend]} {_SHORT_DTYPE[dtype]} "
                f"{_times(t['ratio_fwd'])} / {_times(t['ratio_fwd_bwd'])}"
            )
        parts.append(f"{label}: {', '.join(cells)}")
    n = r("marginals", "n")
    return (
        f"Time per element at n = {_sci(n, 0)}, ratio to `log sigmoid(beta d)` (fwd / fwd+bwd)",
        "; ".join(parts),
        SAME,
    )


def _lognormal_gradients(r: Results) -> Row:
    mc = r.find("marginals", "gradient_variance", method="MC K=16")
    quad = r.find("marginals", "gradient_variance", method="quadrature 16")
    quad_var = max(quad["grad_loc_var"], quad["grad_scale_var"])
    return (
        "LogNormal gradient variance of the batch loss -mean log P over repeated evaluations",
        f"MC K=16: {_sci(mc['grad_loc_var'])} (loc), {_sci(mc['grad_scale_var'])} (scale); "
        f"quadrature (16 nodes): {_sci(quad_var)}",
        SAME,
    )


def _electricity(r: Results) -> Row:
    main, more = r("electricity", "side_by_side/0"), r("electricity", "side_by_side/1")
    ours, warm, xl = main["mixlogit"], main["mixlogit_warm"], main["xlogit"]
    version = r("electricity", "xlogit_version")
    at_ours = main["cross_check"]["xlogit_loglik_at_mixlogit_estimates"]
    means = [n for n in ours["names"] if not n.startswith("sd.")]
    # xlogit scoring our estimates at our LL means both maximise the same simulated likelihood.
    same_likelihood = abs(at_ours - ours["loglik"]) < 1e-3 and xl["loglik"] < ours["loglik"]
    reading = ", a second local maximum of the same simulated likelihood" if same_likelihood else ""
    return (
        f"Electricity mixed logit, {main['draws']} Halton draws, {len(means)} normal "
        "coefficients, panel",
        f"LL {ours['loglik']:.3f} (xlogit {version}: {xl['loglik']:.3f}{reading}: xlogit's own "
        f"LL at our estimates is {at_ours:.6f}); {_count(more['draws'])} draws "
        f"{more['mixlogit']['loglik']:.3f}; fit with SEs {ours['fit_time']:.1f} s cold "
        f"({warm['fit_time']:.1f} s with JAX's compilation cache) vs xlogit {xl['fit_time']:.1f} s "
        f"in the same run: wall ratio **{main['wall_ratio_fit']:.2f} "
        f"({main['warm_wall_ratio_fit']:.2f} warm)**; peak RSS {ours['peak_rss_mib']:.0f} vs "
        f"{xl['peak_rss_mib']:.0f} MiB",
        "`python -m benchmarks.bench_electricity`",
    )


def _bayes(r: Results) -> Row:
    nuts, svi = r("bayes_electricity", "nuts"), r("bayes_electricity", "svi")
    params = r("bayes_electricity", "parameters")
    within_ml = max(abs(p["z_diff"]) for p in params)
    within_nuts = max(svi["max_abs_mean_diff_in_nuts_sd"], svi["max_abs_sd_diff_in_nuts_sd"])
    people = r("bayes_subsampling", "people")
    situations = r("bayes_subsampling", "situations")
    batch = r("bayes_subsampling", "batch_people")
    x1_sd, x1_sd_true = (
        r("bayes_subsampling", "estimates/x1.sd"),
        r("bayes_subsampling", "truth/x1.sd"),
    )
    rss = r("bayes_subsampling", "peak_rss_after_fit_mib")
    return (
        f"Electricity NUTS, {nuts['chains']} x {_count(nuts['samples'])} draws",
        f"r_hat {nuts['max_r_hat_population']:.3f}, {nuts['divergences']} divergences, every "
        f"population mean and SD within {within_ml:.2f} posterior SD of ML; "
        f"{nuts['wall_seconds_incl_compile']:.0f} s wall incl. compilation, "
        f"**{nuts['seconds_per_1000_ess_slowest']:.0f} s per 1,000 ESS** of the slowest parameter "
        f'({nuts["slowest_parameter"]}); SVI (`local_guide="{svi["local_guide"]}"`, '
        f"{_count(svi['steps'])} steps) {svi['seconds']:.0f} s, every mean and SD within "
        f"{within_nuts:.2f} NUTS posterior SD; subsampled SVI on {_count(situations)} situations "
        f"({_count(people)} people, batches of {_count(batch)}): x1 sd {x1_sd:.3f} vs true "
        f"{x1_sd_true:g}, peak RSS {rss:.0f} MiB",
        "`python -m benchmarks.bench_bayes`",
    )


def _mixdpo_overhead(r: Results) -> Row:
    settings, ratio = r("mixdpo", "settings"), r("mixdpo", "ratio")
    paper = ratio["paper_ratio_vs_dpo"]
    loss_ms = 1e3 * max(
        ratio["loss_seconds"]["mixdpo_gamma"], ratio["loss_seconds"]["mixdpo_lognormal_k16"]
    )
    model = settings["model"].split(" ")[0].removesuffix("-Instruct")
    load = r("mixdpo", "machine/load_avg_start/0")
    return (
        f"MixDPO overhead per step, {model}, {settings['pairs_per_step']} pairs, "
        f"{settings['max_length']} tokens (load average {load:.1f} at start)",
        f"step-time ratio to DPO ({ratio['rounds']} rotated rounds, median): Gamma "
        f"{ratio['ratio_vs_dpo']['mixdpo_gamma']:.3f}, LogNormal K=16 "
        f"{ratio['ratio_vs_dpo']['mixdpo_lognormal_k16']:.3f} (paper: "
        f"{paper['mixdpo_gamma']:g} / {paper['mixdpo_lognormal_k16']:g}); the loss itself costs "
        f"at most {loss_ms:.2f} ms of a {ratio['median_step_s']['dpo']:.1f} s step",
        "`python -m benchmarks.bench_mixdpo --adaptive --adaptive-steps "
        f"{settings['adaptive']['steps']} --ratio-rounds {settings['ratio_rounds']} "
        f"--steps {settings['steps']}`",
    )


def _mixdpo_vs_trl(r: Results) -> Row:
    ours, trl = r("mixdpo", "ours_dpo"), r("mixdpo", "trl_dpo")
    return (
        "`MixDPOTrainer` (DPO mode) vs TRL `DPOTrainer`",
        f"{r('mixdpo', 'interleaved/throughput_ratio_ours_over_trl'):.2f}x throughput with steps "
        f"interleaved in one process ({r('mixdpo', 'throughput_ratio_ours_over_trl'):.2f}x in "
        f"separate processes: {ours['pairs_per_s']:.2f} vs {trl['pairs_per_s']:.2f} pairs/s); "
        f"peak RSS {ours['peak_rss_mib']:.0f} vs {trl['peak_rss_mib']:.0f} MiB",
        SAME,
    )


def _self_adaptive(r: Results) -> Row:
    adaptive = r("mixdpo", "settings/adaptive")
    het = r("mixdpo", "adaptive/mixdpo_gamma_heterogeneous")
    hom = r("mixdpo", "adaptive/mixdpo_gamma_homogeneous")
    dpo = r("mixdpo", "adaptive/dpo_heterogeneous")
    ours, theirs = het["margin_gain_macro"], dpo["margin_gain_macro"]
    verdict = "beats" if ours > theirs else "does **not** beat"
    return (
        f"Self-adaptive strength, SmolLM2 (one pass over "
        f"{adaptive['steps'] * adaptive['pairs_per_step']} pairs, last "
        f"{adaptive['train_layers']} blocks trained, strength LR "
        f"{adaptive['strength_learning_rate']:g})",
        f"learned Gamma CV {het['cv']:.3f} on the heterogeneous set vs {hom['cv']:.3f} on the "
        f"homogeneous control (start {adaptive['initial_cv']:.3f}); MixDPO's held-out macro "
        f"margin {verdict} DPO's here ({ours:.2f} vs {theirs:.2f} nats)",
        SAME,
    )


def _ranked(
    samples: Mapping[str, Mapping[str, float]], labels: Mapping[str, str], digits: int = 3
) -> str:
    """``label mean +- ci95`` for each method in ``labels``, best accuracy first."""
    order = sorted(labels, key=lambda m: -samples[m]["accuracy_mean"])
    return ", ".join(
        f"{labels[m]} {_pm(samples[m]['accuracy_mean'], samples[m]['accuracy_ci95'], digits)}"
        for m in order
    )


def _synthetic_types(r: Results) -> Row:
    env, config = (
        r("heterogeneous_synthetic", "environment"),
        r("heterogeneous_synthetic", "config"),
    )
    samples = r("heterogeneous_synthetic", "samples")
    labels = {
        "agreement": f"agreement-only (keeps {_percent(samples['agreement']['kept_share_mean'])} "
        "of pairs)",
        "corrected_alpha": f"corrected DPO (alpha {config['small_alpha']:g}, true V)",
        "dpo": f"DPO (median peak at response {samples['dpo']['peak_median']:.0f}; the NBC "
        f"winner is response {env['nbc_argmax']})",
        "mixdpo_gamma": "MixDPO-Gamma",
    }
    return (
        f"arXiv 2502.16320 synthetic types ({env['num_responses']} responses, "
        f"{len(env['types'])} types, {config['seeds']} seeds x {_count(config['pairs'])} pairs), "
        "alignment accuracy vs average reward",
        _ranked(samples, labels),
        "`python -m benchmarks.bench_heterogeneous`",
    )


def _semisynthetic_types(r: Results) -> Row:
    llm = r("heterogeneous_synthetic", "llm")
    samples, config = llm["samples"], llm["config"]
    labels = {
        "agreement": f"agreement-only (keeps {_percent(samples['agreement']['kept_share_mean'])} "
        "of pairs)",
        "corrected_estimated": "corrected DPO with V estimated from annotator linkage",
        "corrected_alpha": f"corrected (true V, alpha {config['small_alpha']:g})",
        "mixdpo_lognormal": "MixDPO-LogNormal",
        "dpo": "DPO",
        "mixdpo_gamma": "MixDPO-Gamma",
    }
    seconds = [s["seconds_mean"] for s in samples.values()]
    return (
        "arXiv 2502.16320 semi-synthetic LLM setting (embedded pairs relabelled by "
        f"{len(llm['ground_truth']['types'])} annotator types, tiny model, {config['seeds']} seeds)",
        f"held-out accuracy vs average reward: {_ranked(samples, labels)}; "
        f"{min(seconds):.1f}-{max(seconds):.1f} s per run",
        "`python -m benchmarks.bench_heterogeneous --only-llm`",
    )


def _panel_marginal(r: Results) -> Row:
    default = r.find("panel", "accuracy", num_nodes=128)
    return (
        "Panel strength marginal log E[prod_i sigmoid(beta d_i)] on its mpmath grid (float64, "
        "groups of 1-256 choices, |d| <= 50, Gamma shape 0.1-100, LogNormal; 128 nodes)",
        f"max rel. error: L {_sci(default['max_rel_error_log_marginal'])}, gradients "
        f"{_sci(default['max_rel_error_grad_params'])} (params) and "
        f"{_sci(default['max_rel_error_grad_direction'])} (d), posterior mean "
        f"{_sci(default['max_rel_error_mean'])}, variance {_sci(default['max_rel_error_variance'])}, "
        f"quantiles {_sci(default['max_rel_error_quantiles'])}",
        "`python -m benchmarks.bench_panel`",
    )


def _panel_training(r: Results) -> Row:
    name = "panel_training_evaluation"
    seeds = r(name, "seeds")
    sizes = r(name, "settings/sizes")

    def ratios(run: str) -> list[float]:
        return [s["runs"][run]["cv_ratio"] for s in seeds]

    def listed(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    memory = ratios("annotator")
    met = "met" if min(memory) >= 1.5 else "**not met**"
    ordered = sum(bool(s["runs"]["annotator+subgroup"]["order_correct"]) for s in seeds)
    order_met = "met" if ordered == len(seeds) else "**not met**"
    pair = [s["runs"]["pair"] for s in seeds]
    pair_cv = [run["heterogeneous"]["cv"] for run in pair]
    rerun = r("panel_training_development_memory", "seeds")
    rerun_ratios = listed([s["runs"]["annotator"]["cv_ratio"] for s in rerun])
    rerun_ordered = sum(bool(s["runs"]["annotator+subgroup"]["order_correct"]) for s in rerun)
    return (
        f"Annotator-level vs pair-level MixDPO on panel data, the training iterate (before the "
        f"end-of-training refit, next row; tiny model, one pass, default "
        f"strength LR, {sizes['num_annotators']} annotators x {sizes['pairs_per_annotator']} "
        f"pairs, {len(r(name, 'settings/subgroups'))} subgroups, fresh seeds "
        f"{seeds[0]['seed']}-{seeds[-1]['seed']} and structure)",
        f"annotator-level CV heterogeneous / homogeneous control: {listed(memory)} (target "
        f">= 1.5 in every seed: {met}; without the panel memory {listed(ratios('annotator/composite'))}); "
        f"subgroup means in the true order in {ordered} of {len(seeds)} seeds ({order_met}); "
        f"pair-level MixDPO (paper defaults): ratio {listed(ratios('pair'))}, CV "
        f"{min(pair_cv):.3f}-{max(pair_cv):.3f} (its start: 0.707); pair level in (log mean, "
        f"log CV): {listed(ratios('pair/mean_cv'))}. Rerun afterwards on the earlier seeds "
        f"{rerun[0]['seed']}-{rerun[-1]['seed']} of the 4-subgroup development structure: "
        f"{rerun_ratios}, order right in {rerun_ordered} of {len(rerun)}",
        "`python -m benchmarks.bench_panel_training --structure evaluation --jobs 2`; the "
        "rerun: `... --runs annotator annotator+subgroup --out "
        "benchmarks/results/panel_training_development_memory.json`",
    )


def _panel_training_refit(r: Results) -> Row:
    name = "panel_training_holdout"
    seeds = r(name, "seeds")
    sizes = r(name, "settings/sizes")

    def listed(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    def summary(runs: list[Mapping[str, Any]]) -> tuple[str, int, str, int]:
        refit = [s["runs"]["annotator"]["refit_cv_ratio"] for s in runs]
        iterate = [s["runs"]["annotator"]["cv_ratio"] for s in runs]
        ordered = sum(bool(s["runs"]["annotator+subgroup"]["refit_order_correct"]) for s in runs)
        iterate_ordered = sum(bool(s["runs"]["annotator+subgroup"]["order_correct"]) for s in runs)
        return listed(refit), ordered, listed(iterate), iterate_ordered

    refit, ordered, iterate, iterate_ordered = summary(seeds)
    met_cv = min(s["runs"]["annotator"]["refit_cv_ratio"] for s in seeds) >= 1.5
    met = "met" if met_cv and ordered == len(seeds) else "**not met**"
    earlier = r("panel_training_evaluation_refit", "seeds")
    e_refit, e_ordered, e_iterate, e_iterate_ordered = summary(earlier)
    # pair level has no refit (MixDPOConfig.strength_refit refuses it): the iterate
    pair = r("panel_training_holdout_pair", "seeds")
    pair_paper = listed([s["runs"]["pair"]["cv_ratio"] for s in pair])
    pair_mean_cv = listed([s["runs"]["pair/mean_cv"]["cv_ratio"] for s in pair])
    return (
        f"Annotator-level MixDPO with the end-of-training strength refit (the default; tiny "
        f"model, one pass, default strength LR, {sizes['num_annotators']} annotators x "
        f"{sizes['pairs_per_annotator']} pairs, {len(r(name, 'settings/subgroups'))} subgroups; "
        f"holdout structure and seeds {seeds[0]['seed']}-{seeds[-1]['seed']}, fixed before "
        "any run)",
        f"CV heterogeneous / control: {refit}; subgroup order right in {ordered} of "
        f"{len(seeds)} (both targets: {met}); the training iterate of the same runs: {iterate}, "
        f"order right in {iterate_ordered} of {len(seeds)}. On the earlier evaluation seeds "
        f"{earlier[0]['seed']}-{earlier[-1]['seed']} (seen before): refit {e_refit}, order "
        f"{e_ordered} of {len(earlier)}; iterate {e_iterate}, order {e_iterate_ordered} of "
        f"{len(earlier)}. Pair level on the same holdout seeds (no refit): paper defaults "
        f"{pair_paper}, (log mean, log CV) {pair_mean_cv}",
        "`python -m benchmarks.bench_panel_training --structure holdout --runs annotator "
        "annotator+subgroup --jobs 2`; the earlier seeds: `--structure evaluation --runs "
        "annotator annotator+subgroup --out benchmarks/results/"
        "panel_training_evaluation_refit.json`; pair level: `--structure holdout --runs pair "
        "pair/mean_cv --jobs 2 --out benchmarks/results/panel_training_holdout_pair.json`",
    )


def _identifiability(r: Results) -> Row:
    profiles = r("identifiability", "profiles")

    def one(design: str, data: str, model: str) -> Mapping[str, Any]:
        return r.find("identifiability", "profiles", design=design, data=data, model=model)

    pair = [p for p in profiles if p["model"] == "pair level"]
    het, hom = (one("dense", d, "annotator panels") for d in ("heterogeneous", "homogeneous"))
    return (
        "Is the strength CV identified? Profile log-likelihood over Gamma CV 0.125-1.41, free "
        "reward gap per pair (panel data, 90 annotators, strengths 5 / 1 / 0.2)",
        f"pair level: flat, range at most {_sci(max(p['range'] for p in pair))} nats (the "
        f"closed-form saturated likelihood at every CV); annotator panels: range "
        f"{het['range']:.1f} nats peaking at CV {het['best_cv']:g} on the heterogeneous set, "
        f"{hom['range']:.1f} nats peaking at CV {hom['best_cv']:g} on the control",
        "`python -m benchmarks.bench_identifiability --skip-two-stage`",
    )


def _two_stage(r: Results) -> Row:
    summary = r("two_stage", "summary")
    sizes = r("two_stage", "settings/sizes")
    requested = r("two_stage", "settings/seeds_requested")
    done = ", ".join(str(s["seed"]) for s in r("two_stage", "seeds"))
    return (
        f"Two-stage panel estimate, known reward gaps ({sizes['num_annotators']} annotators x "
        f"{sizes['pairs_per_annotator']} pairs, 3 subgroups; seeds run: {done} of "
        f"{len(requested)} requested)",
        f"subgroup mean-strength ratios within {_percent(summary['max_abs_ratio_error'])} of the "
        f"truth (target 25%); Spearman of annotator posterior means vs true strengths "
        f"{summary['min_spearman']:.3f} (target 0.7); CV heterogeneous / control "
        f"{summary['min_cv_ratio']:.2f} (target 2); max r_hat {summary['max_r_hat']:.3f}",
        "`python -m benchmarks.bench_two_stage`",
    )


def _panel_smollm2(r: Results) -> Row:
    comparison = r("panel_smollm2", "comparison")
    runs = comparison["runs"]
    labels = comparison["labels"]["heterogeneous"]
    steps = runs["annotator"]["heterogeneous"]["steps"]

    def ratio(name: str) -> str:
        run = runs[name]
        return (
            f"{run['cv_ratio']:.2f} ({run['heterogeneous']['cv']:.3f} / "
            f"{run['homogeneous']['cv']:.3f})"
        )

    subgroup = runs["annotator+subgroup"]
    order = "right" if subgroup["order_correct"] else "wrong"
    return (
        f"The same on SmolLM2-135M (one pass, last 2 blocks trained, "
        f"{len(comparison['annotators'])} annotators, {labels} labels, {steps} steps per run)",
        f"CV heterogeneous / control: annotator level {ratio('annotator')}; pair level (paper) "
        f"{ratio('pair')}; pair level in (log mean, log CV) {ratio('pair/mean_cv')}; subgroup "
        f"order with covariates {order} ({' > '.join(subgroup['learned_order'])})",
        "`python -m benchmarks.bench_panel_smollm2 --annotators 24 --skip-ratio`",
    )


def _panel_step_time(r: Results) -> Row:
    ratio = r("panel_smollm2_ratio", "ratio")
    load = r("panel_smollm2_ratio", "machine/load_avg_start")[0]
    cells = []
    for setting, label in (("full", "all weights trained"), ("last_2_blocks", "last 2 blocks")):
        measured = ratio[setting]
        median = measured["ratio_vs_dpo"]["annotator_gamma"]
        paired = measured["paired_ratio_median"]["annotator_gamma"]
        verdict = {
            (True, True): "target 1.05 met",
            (False, True): "target 1.05 met by the paired median only",
            (True, False): "target 1.05 met by the median only",
            (False, False): "target 1.05 missed",
        }[(median <= 1.05, paired <= 1.05)]
        cells.append(
            f"{label}: {median:.3f} (paired {paired:.3f}; DPO step "
            f"{measured['median_step_s']['dpo']:.2f} s; {verdict})"
        )
    return (
        f"Annotator-level MixDPO step time / DPO, SmolLM2-135M, {ratio['batch_pairs']} pairs of "
        f"{ratio['batch_annotators']} annotator, {ratio['rounds']} interleaved rounds (load "
        f"average {load:.1f} at start)",
        "; ".join(cells),
        "`python -m benchmarks.bench_panel_smollm2 --annotators 3 --skip-comparison "
        "--ratio-rounds 16 --out benchmarks/results/panel_smollm2_ratio.json`",
    )


def _quadrature_swissmetro(r: Results) -> Row:
    one = r("quadrature_swissmetro", "one_dimensional")
    situations = r("quadrature_swissmetro", "situations")
    gauss_hermite = r.find("quadrature_swissmetro", "rule_errors", nodes=256)
    cells = [
        f"1-D (normal time): LL {one['loglik']:.4f}, reported error "
        f"{_sci(one['error_estimate'])} with {one['nodes_per_dim']} nodes, {one['wall_s']:.0f} s "
        f"(scipy quad_vec reference {one['reference']['loglik']:.4f}; Gauss-Hermite with 256 "
        f"nodes is off by {_sci(abs(gauss_hermite['gauss_hermite_error']))})"
    ]
    two = r("quadrature_swissmetro", "two_dimensional")
    for name, label in (("cost", "normal time and cost"), ("asc", "time and ASC_TRAIN")):
        if name in two:
            case = two[name]
            nodes = " x ".join(str(n) for n in case["nodes_per_dim"])
            cells.append(
                f"2-D ({label}): LL {case['loglik']:.4f}, error {_sci(case['error_estimate'])} "
                f"with {nodes} nodes, {case['wall_s']:.0f} s"
            )
    return (
        f"Converged quadrature, Swissmetro b05 ({situations:,} situations, tolerance 1e-3)",
        "; ".join(cells),
        "`python -m benchmarks.bench_quadrature_swissmetro --second asc cost`",
    )


def _multistart_swissmetro(r: Results) -> Row:
    case = r.find("multistart_swissmetro", "cases", variant="independent")
    noise = case["simulation_noise"]
    return (
        f"Multistart simulated ML, Swissmetro panel (random ASC_TRAIN, ASC_CAR, time by person, "
        f"{case['num_draws']} Halton draws, {case['num_starts']} starts)",
        f"default start {case['default_start_loglik']:.3f} (converged=True); best "
        f"{case['best_loglik']:.3f} (Biogeme {case['issue_figures']['biogeme']}), reached by "
        f"{case['starts_reaching_best']} of {case['num_starts']} starts, first at start "
        f"{case['first_start_reaching_best']}; an independent draw set moves the maximum by "
        f"{noise['loglik_change']:+.2f} and an estimate by up to "
        f"{noise['max_abs_shift_in_se']:.2f} SE; {case['wall_seconds']:.0f} s",
        "`python -m benchmarks.bench_multistart_swissmetro`",
    )


def _biogeme(r: Results) -> Row:
    cells = []
    for model in ("b09nested", "b11cnl", "latent_class", "b01logit_elasticities"):
        case = r.find("biogeme", "cases", model=model)
        c = case["comparison"]
        cells.append(
            f"{model}: LL diff {_sci(c['loglik_abs_diff'])}, estimates within "
            f"{_sci(c['max_estimate_diff_over_se'])} SE, robust SEs within "
            f"{_sci(c['max_rel_diff_robust_se'])} relative, time ratio {c['time_ratio']:.3f}"
        )
    panel = r.find("biogeme", "cases", model="b12panel")
    cells.append(
        f"b12panel ({panel['num_draws']} identical draws): from the same start LL "
        f"{panel['mixlogit']['loglik']:.3f} vs Biogeme {panel['biogeme']['loglik']:.3f} (different "
        f"local maxima); Biogeme started at mixlogit's estimates: LL diff "
        f"{_sci(panel['comparison_from_mixlogit']['loglik_abs_diff'])}; mixlogit 10 starts "
        f"{panel['mixlogit_multistart']['loglik']:.3f}"
    )
    return (
        "Side by side with Biogeme 3.3.2 on Swissmetro (nested, cross-nested, latent class, "
        "MNL elasticities, error-components panel)",
        "; ".join(cells),
        "`python -m benchmarks.bench_biogeme` (Biogeme in its own environment)",
    )


def _biogeme_covariates(r: Results) -> Row:
    case = r.find("biogeme_covariates", "cases", model="mixing_covariates")
    first, warm = case["comparison"], case["comparison_from_mixlogit"]
    back = case["comparison_mixlogit_from_biogeme"]
    return (
        "Heterogeneity in means and variances vs Biogeme 3.3.2 (Swissmetro panel, "
        f"{case['num_draws']} identical draws)",
        f"from the same start LL {case['mixlogit']['loglik']:.4f} vs Biogeme "
        f"{case['biogeme']['loglik']:.4f} (LL diff {_sci(first['loglik_abs_diff'])}: two local "
        f"maxima; mixlogit restarted at Biogeme's stays within {_sci(back['loglik_abs_diff'])}); "
        f"at mixlogit's estimates: LL diff {_sci(warm['loglik_abs_diff'])}, estimates within "
        f"{_sci(warm['max_estimate_diff_over_se'])} SE, robust SEs within "
        f"{_sci(warm['max_rel_diff_robust_se'])}; time ratio {first['time_ratio']:.3f}",
        "`python -m benchmarks.bench_biogeme --models mixing_covariates --num-draws "
        f"{case['num_draws']} --report biogeme_covariates`",
    )


def _wtp_space(r: Results) -> Row:
    versus = r("wtp_space", "vs_xlogit")
    preference = r("wtp_space", "preference_vs_wtp")
    default = r("wtp_space", "xlogit_default_start")
    return (
        f"WTP space vs xlogit 0.2.7 (Electricity, {r('wtp_space', 'num_draws')} identical "
        "Halton draws, fixed price scale)",
        f"from mixlogit's start: LL diff {_sci(abs(versus['loglik_difference']))}, estimates "
        f"within {_sci(versus['max_abs_estimate_difference_over_xlogit_se'])} xlogit SE, SEs "
        f"within {_sci(versus['max_rel_se_difference'])} relative, time ratio "
        f"{versus['time_ratio']:.3f}; xlogit from its default start LL "
        f"{default['loglik']:.1f}; the same model in preference space: LL diff "
        f"{_sci(abs(preference['loglik_difference']))}, implied WTPs within "
        f"{_sci(preference['max_abs_wtp_difference'])}",
        "`python -m benchmarks.bench_wtp_space`",
    )


def _sharded(r: Results) -> Row:
    runs = r("sharded", "runs")
    cells = []
    for rows in sorted({run["rows"] for run in runs}):
        one = next(x for x in runs if x["rows"] == rows and x["setup"] == "1 of 2")
        two = next(x for x in runs if x["rows"] == rows and x["setup"] == "2 devices")
        cells.append(
            f"{_sci(rows, 0)} rows: fit {one['fit_time']:.1f} s on 1 device, "
            f"{two['fit_time']:.1f} s on 2; value+gradient {one['evaluation_time'] * 1e3:.0f} vs "
            f"{two['evaluation_time'] * 1e3:.0f} ms; blocked arrays "
            f"{max(one['block_bytes_per_device'].values()) / 2**20:.0f} vs "
            f"{max(two['block_bytes_per_device'].values()) / 2**20:.0f} MiB per device; "
            f"estimates within {_sci(two['max_abs_param_diff'])}"
        )
    return (
        f"Mixed logit on 2 host devices (`fit(devices=2)`, Electricity replicated, "
        f"{r('sharded', 'num_draws')} draws)",
        "; ".join(cells),
        "`python -m benchmarks.bench_sharded`",
    )


def _bayes_biogeme(r: Results) -> Row:
    mine, theirs = r("bayes_biogeme", "mixlogit"), r("bayes_biogeme", "biogeme")
    settings = r("bayes_biogeme", "settings")
    return (
        f"Electricity NUTS vs Biogeme 3.3.2's Bayesian estimation ({settings['chains']} x "
        f"{_count(settings['draws'])} draws, same priors and sampler)",
        f"posterior means within {r('bayes_biogeme', 'max_abs_mean_difference_in_sd'):.2f} "
        f"posterior SD; wall {mine['wall_seconds']:.0f} s vs {theirs['wall_seconds']:.0f} s; "
        f"{mine['seconds_per_1000_ess_slowest']:.0f} vs "
        f"{theirs['seconds_per_1000_ess_slowest']:.0f} s per 1,000 ESS of the slowest "
        f"population parameter (ratio "
        f"{mine['seconds_per_1000_ess_slowest'] / theirs['seconds_per_1000_ess_slowest']:.2f})",
        "`python -m benchmarks.bench_bayes_biogeme` (Biogeme in its own environment)",
    )


def _latent_class_ml_vs_nuts(r: Results) -> Row:
    runs = r("latent_class", "runs")
    worst = max(run["pooled"]["max_abs_diff_in_posterior_sd"] for run in runs)
    low = min(run["pooled"]["sd_over_robust_se"][0] for run in runs)
    high = max(run["pooled"]["sd_over_robust_se"][1] for run in runs)
    r_hat = max(run["max_r_hat"] for run in runs)
    return (
        f"Latent-class logit, maximum likelihood vs NUTS ({len(runs)} seeds, 2 classes)",
        f"posterior means within {worst:.2f} posterior SD of the ML estimates; posterior SD / "
        f"robust SE {low:.2f}-{high:.2f}; r_hat <= {r_hat:.2f}",
        "`python -m benchmarks.bench_latent_class`",
    )


def _hh_smollm2(r: Results) -> Row:
    runs = r("hh_smollm2", "runs")
    summary = r("hh_smollm2", "summary")
    data = r("hh_smollm2", "data")

    def interval(cell: Mapping[str, float], key: str = "mean") -> str:
        return f"{cell[key]:+.3f} [{cell['ci_low']:+.3f}, {cell['ci_high']:+.3f}]"

    cells = []
    for name, run in runs.items():
        text = (
            f"{name}: margin {interval(summary['reward_margin'][name])}, accuracy "
            f"{interval(summary['correct'][name])}"
        )
        gain = summary.get("gain_over_dpo", {}).get("reward_margin", {}).get(name)
        if gain:
            accuracy_gain = summary["gain_over_dpo"]["correct"][name]
            text += (
                f", paired gain over dpo: margin {interval(gain, 'gain')}, accuracy "
                f"{interval(accuracy_gain, 'gain')}"
            )
        if "strength_start" in run:
            start, learned = run["strength_start"], run["strength_learned"]
            text += (
                f", strength variance {start['variance']:.3g} -> {learned['variance']:.3g} "
                f"(CV {start['cv']:.3g} -> {learned['cv']:.3g})"
            )
        cells.append(text)
    steps = next(iter(runs.values()))["steps"]
    return (
        f"DPO vs MixDPO on real human pairs (Anthropic HH-RLHF harmless-base, shipped), "
        f"SmolLM2-135M, one pass over {data['train_pairs']} pairs ({steps} steps, last 2 "
        f"blocks trained, same settings for all); {data['eval_pairs']} held-out pairs",
        "held-out reward margin (nats, reference-subtracted) and preference accuracy, 95 % "
        f"bootstrap intervals (the reference model's raw-margin accuracy "
        f"{data['reference_accuracy']:.3f}): " + "; ".join(cells),
        "`python -m benchmarks.bench_hh_smollm2`"
        + (
            ""
            if r("hh_smollm2", "complete")
            else f" (the saved run stopped after {len(runs)} runs)"
        ),
    )


ROWS: Sequence[Callable[[Results], Row]] = (
    _marginal_accuracy,
    _marginal_timing,
    _lognormal_gradients,
    _electricity,
    _quadrature_swissmetro,
    _multistart_swissmetro,
    _biogeme,
    _biogeme_covariates,
    _wtp_space,
    _sharded,
    _bayes_biogeme,
    _latent_class_ml_vs_nuts,
    _bayes,
    _mixdpo_overhead,
    _mixdpo_vs_trl,
    _self_adaptive,
    _synthetic_types,
    _semisynthetic_types,
    _panel_marginal,
    _panel_training,
    _panel_training_refit,
    _identifiability,
    _two_stage,
    _panel_smollm2,
    _panel_step_time,
    _hh_smollm2,
)


_NON_FINITE = re.compile(r"\b(inf|nan)\b")


def _cell(text: str) -> str:
    # A literal | would split the Markdown cell.
    return text.replace("|", "\\|")


def render_table(results: Results, rows: Iterable[Callable[[Results], Row]] = ROWS) -> str:
    """The Markdown table (header included, no trailing newline)."""
    lines = ["| what | figure | command |", "|---|---|---|"]
    for row in rows:
        what, figure, command = row(results)
        if _NON_FINITE.search(what + figure):
            raise ValueError(f"README benchmark row {row.__name__} renders a non-finite figure")
        lines.append(f"| {_cell(what)} | {_cell(figure)} | {command} |")
    return "\n".join(lines)


def splice(readme: str, table: str) -> str:
    """``readme`` with the text between the benchmark markers replaced by ``table``."""
    starts, ends = readme.count(START), readme.count(END)
    if starts != 1 or ends != 1:
        raise ValueError(
            f"README must contain {START!r} and {END!r} exactly once each "
            f"(found {starts} and {ends})"
        )
    if readme.index(END) < readme.index(START):
        raise ValueError(f"README has {END!r} before {START!r}")
    head, rest = readme.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    wanted = splice(current, render_table(load_results(args.results)))
    hint = f"{args.readme} disagrees with {args.results}: run python tools/readme_benchmarks.py"
    return update_generated(args.readme, current, wanted, args.check, "benchmarks/results", hint)


if __name__ == "__main__":
    sys.exit(main())
