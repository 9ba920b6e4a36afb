"""Is the strength spread identified? Profile likelihoods and the two-stage panel estimate.

Run from the repository root: ``python -m benchmarks.bench_identifiability`` (``--quick`` for a
smaller design, ``--skip-two-stage`` for the profiles alone). Prints the figures and writes
``benchmarks/results/identifiability.json`` and ``.md``.

1. **Profiles** (:func:`analysis.identifiability.profile_cv`), the measurement of the
   "identifiable strength" issue: annotator-panel data from
   :func:`alignment.datasets.annotator_panels.make_panel_preference_data` with 90 annotators,
   three subgroups of point-mass strengths 5 / 1 / 0.2 (no covariate effects) and its
   homogeneous control (one common strength), in two designs: ``dense`` (every annotator
   labels the same 24 pairs: 90 labels per pair) and ``sparse`` (24 of 270 pairs each: 8
   labels per pair). Gamma CV grid 0.125 to 1.41, every profile maximised over a free reward
   gap per pair (and the mean strength): pair level (MixDPO's likelihood), annotator panels,
   and pair level with subgroup mean strengths (covariates).
2. **Two-stage estimate** (:func:`analysis.strength_panels.fit_panel_strengths`) on the shipped
   default panel sets (train and test labels, true reward gaps): subgroup mean strengths and
   their ratios against the truth, the Spearman correlation of annotator posterior means with
   the true strengths, and the CV of one strength distribution fitted without subgroups on the
   heterogeneous set and on its control; with the seconds each fit took.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import pandas as pd

from benchmarks._report import markdown_table
from benchmarks.bench_two_stage import estimate, pooled_frame

RESULTS = Path(__file__).resolve().parent / "results"
CVS = (0.125, 0.25, 0.5, 0.707, 1.0, 1.41)


def profiles(quick: bool) -> list[dict]:
    from alignment.datasets.annotator_panels import RaterCovariates, make_panel_preference_data
    from alignment.datasets.semisynthetic import SubgroupSpec
    from analysis.identifiability import profile_cv

    subgroups = [
        SubgroupSpec(name, "point_mass", {"beta": beta})
        for name, beta in (("decisive", 5.0), ("moderate", 1.0), ("uncertain", 0.2))
    ]
    no_effects = RaterCovariates(experience_log_effect=0.0, age_band_log_effects=(0.0, 0.0, 0.0))
    annotators, per_annotator = (30, 12) if quick else (90, 24)
    designs = {
        "dense": {"num_pairs": per_annotator},
        "sparse": {"num_pairs": annotators * per_annotator // 8},
    }
    rows = []
    for (design, sizes), kind in itertools.product(
        designs.items(), ("heterogeneous", "homogeneous")
    ):
        frame = pooled_frame(
            make_panel_preference_data(
                **sizes,
                num_annotators=annotators,
                pairs_per_annotator=per_annotator,
                subgroups=subgroups,
                covariates=no_effects,
                homogeneous=kind == "homogeneous",
                seed=0,
            )
        )
        for model, kwargs in (
            ("pair level", {"level": "pair"}),
            ("annotator panels", {"level": "annotator"}),
            ("pair level, subgroup means", {"level": "pair", "by": "subgroup"}),
        ):
            start = time.perf_counter()
            profile = profile_cv(frame, CVS, gaps="free", **kwargs)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "design": design,
                    "data": kind,
                    "model": model,
                    "labels": profile.num_labels,
                    "mixed_pairs": profile.num_pairs,
                    "unanimous_pairs": profile.num_unanimous_pairs,
                    "profile_loglik": dict(
                        zip(
                            map(float, profile.table["cv"]),
                            profile.table["profile_loglik"],
                            strict=True,
                        )
                    ),
                    "range": profile.range,
                    # pair level, one mean: the closed-form supremum the profile must equal
                    "saturated_loglik": profile.saturated_loglik,
                    "saturation_shortfall": profile.saturation_shortfall,
                    "best_cv": profile.best_cv,
                    "converged": bool(profile.table["converged"].all()),
                    "seconds": round(seconds, 1),
                    "reading": profile.interpretation(),
                }
            )
            print(
                f"{design:6s} {kind:13s} {model:28s} range {profile.range:10.4g}  best CV {profile.best_cv}"
            )
            print("   ", profile.table[["cv", "profile_loglik"]].to_string(index=False))
    return rows


def two_stage(quick: bool) -> dict:
    from scipy import stats

    from alignment.datasets.annotator_panels import load_panel_ground_truth, load_panel_preferences
    from analysis.strength_panels import fit_panel_strengths

    draws = (
        {"num_warmup": 150, "num_samples": 150}
        if quick
        else {"num_warmup": 300, "num_samples": 300}
    )
    frames = {
        kind: pd.concat(
            [load_panel_preferences(kind, split).to_pandas() for split in ("train", "test")],
            ignore_index=True,
        )
        for kind in ("heterogeneous", "homogeneous")
    }
    frame = frames["heterogeneous"]
    start = time.perf_counter()
    fit = fit_panel_strengths(frame, **draws)
    seconds = time.perf_counter() - start
    truth = load_panel_ground_truth("heterogeneous")
    realised = frame.groupby("subgroup")["true_strength"].mean()
    table = fit.subgroups.set_index("subgroup")
    first = table.index[0]
    subgroups = {
        name: {
            **estimate(table.loc[name], "mean_strength", interval_key="interval"),
            "annotators_true_mean": float(realised[name]),
            "distribution_mean": next(g["mean"] for g in truth["subgroups"] if g["name"] == name),
            "ratio_to_first": float(
                table.loc[name, "mean_strength"] / table.loc[first, "mean_strength"]
            ),
            "true_ratio_to_first": float(realised[name] / realised[first]),
        }
        for name in table.index
    }
    strengths = frame.groupby("annotator_id")["true_strength"].first()
    annotators = fit.annotators.set_index("annotator")
    rho = float(stats.spearmanr(annotators["strength_mean"], strengths[annotators.index]).statistic)
    covered = (
        (annotators["strength_q5"] <= strengths[annotators.index])
        & (strengths[annotators.index] <= annotators["strength_q95"])
    ).mean()
    cvs = {}
    for kind, data in frames.items():
        one = fit_panel_strengths(data, by=None, **draws)
        cvs[kind] = {
            **estimate(one.population, "cv", mean_key="cv", interval_key="interval"),
            "true_annotator_cv": load_panel_ground_truth(kind)["annotator_cv"],
        }
    result = {
        "labels": len(frame),
        "annotators": int(frame["annotator_id"].nunique()),
        "seconds": round(seconds, 1),
        "diagnostics": fit.diagnostics,
        "subgroups": subgroups,
        "spearman_annotators": rho,
        "annotator_90_interval_coverage": float(covered),
        "population_cv_by_none": cvs,
    }
    print(json.dumps(result, indent=1))
    return result


_TRUE_COLUMNS = ("annotators_true_mean", "ratio_to_first", "true_ratio_to_first")


def _markdown(payload: dict) -> str:
    lines = [
        "## Profile log-likelihood of the Gamma strength CV (free reward gap per pair)",
        "",
    ]
    lines += markdown_table(
        ("design", "data", "model", "labels", *(f"CV {c}" for c in CVS), "range"),
        (
            (
                *(row[key] for key in ("design", "data", "model", "labels")),
                *(f"{v:.2f}" for v in row["profile_loglik"].values()),
                f"{row['range']:.3g}",
            )
            for row in payload["profiles"]
        ),
    )
    lines += [
        "",
        *[
            f"* {r['design']}, {r['data']}, {r['model']}: {r['reading']}"
            for r in payload["profiles"]
        ],
    ]
    fit = payload["two_stage"]
    if fit is None:
        lines += ["", "Two-stage estimate: not run (`--skip-two-stage`)."]
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "## Two-stage panel estimate (shipped default panel set, true reward gaps)",
        "",
        f"{fit['labels']} labels, {fit['annotators']} annotators, {fit['seconds']} s; "
        f"diagnostics {fit['diagnostics']}.",
        "",
    ]
    lines += markdown_table(
        (
            "subgroup",
            "posterior mean (90 %)",
            "annotators' true mean",
            "ratio to first",
            "true ratio",
        ),
        (
            (
                name,
                f"{s['posterior_mean']:.3g} ({s['interval'][0]:.3g}-{s['interval'][1]:.3g})",
                *(f"{s[key]:.3g}" for key in _TRUE_COLUMNS),
            )
            for name, s in fit["subgroups"].items()
        ),
    )
    cvs = fit["population_cv_by_none"]
    lines += [
        "",
        f"Spearman correlation of annotator posterior means with true strengths: "
        f"{fit['spearman_annotators']:.3f}; 90 % intervals cover "
        f"{fit['annotator_90_interval_coverage']:.0%} of the true strengths.",
        "",
        "One strength distribution (no subgroups): CV "
        + "; ".join(
            f"{k} {v['cv']:.3g} ({v['interval'][0]:.3g}-{v['interval'][1]:.3g}, annotators' "
            f"true CV {v['true_annotator_cv']:.3g})"
            for k, v in cvs.items()
        )
        + f"; ratio {cvs['heterogeneous']['cv'] / cvs['homogeneous']['cv']:.2f}.",
        "",
        f"Load average {payload['load_average']:.1f} on {payload['cpu_count']} cores.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller design, fewer draws")
    parser.add_argument(
        "--skip-two-stage", action="store_true", help="the profiles only (two_stage: null)"
    )
    args = parser.parse_args(argv)
    payload = {
        "profiles": profiles(args.quick),
        "two_stage": None if args.skip_two_stage else two_stage(args.quick),
    }
    payload["load_average"] = os.getloadavg()[0]
    payload["cpu_count"] = os.cpu_count()
    payload["quick"] = args.quick
    suffix = "_quick" if args.quick else ""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"identifiability{suffix}.json").write_text(
        json.dumps(payload, indent=1, default=float)
    )
    (RESULTS / f"identifiability{suffix}.md").write_text(_markdown(payload))


if __name__ == "__main__":
    main()
