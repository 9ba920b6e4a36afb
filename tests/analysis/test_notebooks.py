"""The example notebooks run top to bottom with small parameters and save their figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from PIL import Image

nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def _execute(
    name: str, parameters: dict, tmp_path: Path, timeout: int = 300, epilogue: str = ""
) -> nbformat.NotebookNode:
    """Run a notebook with ``parameters`` injected after its ``parameters`` cell (papermill
    convention), in ``tmp_path`` as working directory; ``timeout``: seconds per cell.

    ``epilogue``: code run after the last cell, in the notebook's namespace (the tests use it
    to write the tables behind the notebook's displays). The executed notebook is kept as
    ``tmp_path / "executed.ipynb"`` for inspection when a check fails."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    index = next(
        i
        for i, cell in enumerate(notebook.cells)
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    )
    source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    injected = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(index + 1, injected)
    if epilogue:
        notebook.cells.append(nbformat.v4.new_code_cell(epilogue))
    client = nbclient.NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    finally:
        nbformat.write(notebook, tmp_path / "executed.ipynb")
    return notebook


def _text_outputs(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _assert_no_errors(notebook: nbformat.NotebookNode) -> None:
    """No cell has an error output or printed a traceback (nbclient stops at the first error;
    a cell that catches an exception and prints its traceback would still run on)."""
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", (index, output.get("ename"))
            assert "Traceback (most recent call last)" not in output.get("text", ""), index


def _assert_pngs(directory: Path, names: list[str]) -> None:
    """Each figure is a PNG of a drawn plot: more than 16 distinct colours, more than 1 % of
    its pixels off the background colour, and some coloured (not grey) pixels: every plot here
    draws its data in colour, while empty axes with their ticks and labels are grey."""
    for name in names:
        path = directory / name
        assert path.is_file(), (
            f"{name} not saved; found {sorted(p.name for p in directory.iterdir())}"
        )
        with Image.open(path) as image:
            assert image.format == "PNG"
            width, height = image.size
            rgb = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
        assert width > 300 and height > 200, (name, width, height)
        assert rgb.std(axis=0).max() > 5, f"{name} is blank"
        colours, counts = np.unique(rgb, axis=0, return_counts=True)
        assert len(colours) > 16, f"{name} has only {len(colours)} distinct colours"
        drawn = 1 - counts.max() / len(rgb)
        assert drawn > 0.01, f"{name}: only {drawn:.2%} of the pixels differ from the background"
        chromatic = (rgb.max(axis=1) - rgb.min(axis=1) > 60).mean()
        assert chromatic > 1e-4, f"{name} has no coloured pixels ({chromatic:.2%})"


def test_generated_notebooks_match_the_generator(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_notebooks", NOTEBOOKS / "build_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, cells in module.NOTEBOOKS.items():
        built = module.build(cells)
        on_disk = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert [c.source for c in on_disk.cells] == [c.source for c in built.cells], name
        assert all(not c.get("outputs") for c in on_disk.cells), f"{name} has outputs"


def test_choice_heterogeneity_notebook(tmp_path):
    """MSL and (tiny) NUTS cells both run; the Bayesian posterior means have the MSL signs."""
    from mixlogit import ChoiceData, MixedLogit, load_electricity

    notebook = _execute(
        "choice_heterogeneity.ipynb",
        {
            "num_draws": 25,
            "bayes": True,
            # a few NUTS transitions on one chain: the cell runs end to end in ~15 s; the
            # chain has not mixed, so only coarse properties of the posterior are checked
            "bayes_warmup": 30,
            "bayes_samples": 20,
            "bayes_chains": 1,
            "bayes_loglik_num_draws": 16,
            "figure_dir": "figs",
        },
        tmp_path,
        epilogue='wtp_table.to_csv("wtp_table.csv")',
    )
    _assert_no_errors(notebook)
    random = ["cl", "loc", "wk", "tod", "seas"]
    _assert_pngs(
        tmp_path / "figs",
        [
            *(f"individual_{c}.png" for c in random),
            "willingness_to_pay.png",
            *(f"bayes_individual_{c}.png" for c in random),
            "bayes_willingness_to_pay.png",
        ],
    )
    assert "Bayesian fit skipped" not in _text_outputs(notebook)
    # the notebook's summary reports the same log-likelihood as a fit made here
    data = ChoiceData(
        load_electricity(), choice="choice", alternative="alt", situation="chid", panel="id"
    )
    fit = MixedLogit(random=dict.fromkeys(random, "normal"), fixed=["pf"]).fit(
        data, num_draws=25, verbose=0
    )
    assert f"{fit.loglik:.4f}" in _text_outputs(notebook)
    # the WTP table states the quantiles of the draws the WTP figure draws (the notebook's
    # population draws: 20,000 at its seed 0), and the words of its sentences are those numbers
    population = fit.population_coefficients(num_draws=20_000, seed=0)
    wtp = pd.DataFrame({name: -population[name] / population["pf"] for name in random})
    table = pd.read_csv(tmp_path / "wtp_table.csv", index_col=0)
    np.testing.assert_allclose(table["q05"], wtp.quantile(0.05)[table.index], rtol=1e-9)
    np.testing.assert_allclose(table["median"], wtp.median()[table.index], rtol=1e-9)
    np.testing.assert_allclose(table["q95"], wtp.quantile(0.95)[table.index], rtol=1e-9)
    assert (table["median 2.5%"] < table["median"]).all()
    assert (table["median"] < table["median 97.5%"]).all()
    # tod and seas are read as the fixed price equal to the rate schedule: -WTP, positive
    for name, plan in (("tod", "time-of-day"), ("seas", "seasonal")):
        price = -wtp[name].median()
        assert price > 0, (name, price)
        sentence = f"A {plan} contract is worth as much to the median household as a fixed price"
        assert (
            f"{sentence} of {price:.1f} c/kWh (5-95 %: {-wtp[name].quantile(0.95):.1f} to "
            f"{-wtp[name].quantile(0.05):.1f})" in _text_outputs(notebook)
        )
    comparison = pd.read_csv(tmp_path / "figs" / "msl_vs_bayes.csv", index_col=0)
    assert sorted(comparison.index) == sorted(["pf", *random])
    estimates = fit.table()["estimate"]
    np.testing.assert_allclose(
        comparison["MSL estimate"], estimates.reindex(comparison.index), rtol=1e-10
    )
    # every population mean is far from 0 in the MSL fit (|z| > 10): the posterior means agree
    # in sign, and the price coefficient within a factor of two
    assert (np.sign(comparison["posterior mean"]) == np.sign(comparison["MSL estimate"])).all()
    ratio = comparison.loc["pf", "posterior mean"] / comparison.loc["pf", "MSL estimate"]
    assert 0.5 < ratio < 2.0
    assert (comparison["posterior SD"] > 0).all()


# Run after the MixDPO notebook's last cell, in its namespace: writes the tables behind its
# displays and sentences, so that the test checks the numbers and not only that cells ran.
MIXDPO_EPILOGUE = """
checked = Path("checked")
checked.mkdir(exist_ok=True)
evaluation.to_csv(checked / "evaluation.csv", index=False)
pd.DataFrame({"run": final["run"].values, "dataset": final["dataset"].values,
              "mean": final["mean"].values, "cv": final["cv"].values}).to_csv(
    checked / "strength.csv", index=False)
gains.subgroups.to_csv(checked / "gains.csv", index=False)
pd.DataFrame(learned).to_csv(checked / "learned.csv", index=False)
table.to_csv(checked / "panel_table.csv", index=False)
pd.concat([p.table.assign(level=p.level) for p in profiles.values()]).to_csv(
    checked / "profiles.csv", index=False)
"""


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def _assert_finite(frame: pd.DataFrame, columns: list[str], where: str) -> None:
    values = frame[columns].to_numpy(dtype=float)
    assert np.isfinite(values).all(), f"{where}: non-finite values\n{frame[columns]}"


@pytest.mark.slow
def test_mixdpo_heterogeneity_notebook(tmp_path):
    """Every cell runs without error; each figure is drawn; the tables behind the displays are
    complete and finite, and the printed sentences are those of the computed numbers."""
    from analysis.identifiability import LIKELIHOOD_RATIO_THRESHOLD
    from analysis.margins import MIN_REPLICATES

    steps, eval_pairs, num_boot = 3, 24, 100
    notebook = _execute(
        "mixdpo_heterogeneity.ipynb",
        {
            "steps": steps,
            "pairs_per_step": 8,
            "eval_pairs": eval_pairs,
            "posterior_samples": 0,
            # annotator panels: a few steps and short chains (the two-stage fits warn that the
            # chains are short; the numbers are checked for consistency, not accuracy)
            "panel_steps": 4,
            "panel_samples": 20,
            "num_boot": num_boot,
            "figure_dir": "figs",
            "run_root": "runs",
        },
        tmp_path,
        # the panel cell runs three NUTS fits, each with its own JAX compilation: minutes on
        # a loaded 2-core CPU
        timeout=1800,
        epilogue=MIXDPO_EPILOGUE,
    )
    _assert_no_errors(notebook)
    _assert_pngs(
        tmp_path / "figs",
        [
            "strength_trajectories.png",
            "strength_densities.png",
            "subgroup_margins_heterogeneous.png",
            "subgroup_margins_homogeneous.png",
            "gains_over_dpo_heterogeneous.png",
            "panel_subgroup_forest.png",
            "panel_control_forest.png",
            "panel_policy_forest.png",
            "panel_annotator_strengths.png",
            "cv_profile.png",
        ],
    )
    text = _text_outputs(notebook)
    checked = tmp_path / "checked"
    kinds = ["heterogeneous", "homogeneous"]
    methods = ["dpo", "mixdpo-gamma", "mixdpo-lognormal"]
    mixdpo = [m for m in methods if m != "dpo"]

    # training: every method on both sets, scored on the same eval_pairs held-out pairs, and
    # each trained policy's margins moved away from the reference model's
    evaluation = _read(checked / "evaluation.csv")
    counts = evaluation.groupby(["dataset", "method"]).size()
    assert counts.to_dict() == {(k, m): eval_pairs for k in kinds for m in methods}
    numbers = ["margin", "reference_margin", "gain_over_reference"]
    _assert_finite(evaluation, numbers, "evaluation")
    np.testing.assert_allclose(
        evaluation["gain_over_reference"],
        evaluation["margin"] - evaluation["reference_margin"],
        rtol=1e-9,
        atol=1e-9,
    )
    moved = evaluation.groupby(["dataset", "method"])["gain_over_reference"].apply(
        lambda gain: bool((gain.abs() > 0).any())
    )
    assert moved.all(), moved
    # each run logged a finite loss at every step, the MixDPO runs a finite strength CV
    strength = _read(checked / "strength.csv").set_index("run")
    assert sorted(strength.index) == sorted(f"{m}-{k}" for m in mixdpo for k in kinds)
    _assert_finite(strength, ["mean", "cv"], "learned strength")
    assert (strength[["mean", "cv"]] > 0).all().all(), strength
    for method in methods:
        for kind in kinds:
            state = json.loads(
                (tmp_path / "runs" / f"{method}-{kind}" / "trainer_state.json").read_text()
            )
            assert state["global_step"] == steps
            logged = {r["step"]: r for r in state["log_history"] if "loss" in r}
            assert sorted(logged) == list(range(1, steps + 1)), (method, kind)
            assert all(np.isfinite(r["loss"]) for r in logged.values()), (method, kind)
            if method != "dpo":  # the table of final strengths is the last logged one
                assert logged[steps]["strength/cv"] == pytest.approx(
                    strength.loc[f"{method}-{kind}", "cv"], rel=1e-9
                )
    # the printed CV sentence names, per family, the set whose learned CV is the larger
    for family, method in (("gamma", "mixdpo-gamma"), ("lognormal", "mixdpo-lognormal")):
        cvs = {kind: strength.loc[f"{method}-{kind}", "cv"] for kind in kinds}
        higher = max(cvs, key=cvs.get)
        assert f"Learned strength CV ({family}): highest on {higher} (" in text, (family, cvs)
    # gains over DPO per MixDPO method and subgroup: a finite estimate inside a finite interval,
    # except where fewer than MIN_REPLICATES bootstrap replicates contain the (small) subgroup:
    # there the interval is NaN by design and the notebook shows the warning naming it
    gains = _read(checked / "gains.csv")
    assert set(gains["method"]) == set(mixdpo)
    assert gains.groupby("method").size().nunique() == 1
    _assert_finite(gains, ["gain"], "gains over DPO")
    sparse = gains["replicates_used"] < MIN_REPLICATES
    full = gains[~sparse]
    _assert_finite(full, ["ci_low", "ci_high"], "gains over DPO")
    assert ((full["ci_low"] <= full["gain"]) & (full["gain"] <= full["ci_high"])).all()
    assert gains.loc[sparse, "small"].all(), gains
    assert gains.loc[sparse, ["ci_low", "ci_high"]].isna().all().all()
    for row in gains[sparse].itertuples():
        warning = (
            f"method '{row.method}' over 'dpo', attribute 'subgroup': subgroup '{row.subgroup}' "
            f"is absent from {num_boot - row.replicates_used} of {num_boot} cluster-bootstrap"
        )
        assert warning in text, warning
    assert "Subgroup posterior skipped" in text

    # annotator panels: the learned per-subgroup strengths of both sets are finite and positive
    learned = _read(checked / "learned.csv")
    assert sorted(zip(learned["set"], learned["subgroup"], strict=True)) == sorted(
        (k, g) for k in kinds for g in ("decisive", "moderate", "uncertain")
    )
    learned_numbers = ["learned mean", "learned CV", "population CV"]
    _assert_finite(learned, learned_numbers, "learned panel strengths")
    assert (learned[learned_numbers] > 0).all().all(), learned
    # two-stage table: finite, each mean inside its interval, and the printed "most decisive"
    # subgroup is the table's largest mean strength, with its numbers
    panel = _read(checked / "panel_table.csv")
    assert sorted(panel["subgroup"]) == ["decisive", "moderate", "uncertain"]
    panel_numbers = [
        "mean_strength",
        "mean_strength_low",
        "mean_strength_high",
        "relative_strength",
        "true_mean",
        "control_mean",
        "policy_relative",
    ]
    _assert_finite(panel, panel_numbers, "two-stage table")
    assert (panel["mean_strength_low"] <= panel["mean_strength"]).all()
    assert (panel["mean_strength"] <= panel["mean_strength_high"]).all()
    top = panel.loc[panel["mean_strength"].idxmax()]
    sentence = re.search(
        r"Most decisive: (\w+), mean strength ([\d.e+-]+) \[([\d.e+-]+), ([\d.e+-]+)\]", text
    )
    assert sentence is not None
    assert sentence.groups() == (
        top["subgroup"],
        f"{top['mean_strength']:.3g}",
        f"{top['mean_strength_low']:.3g}",
        f"{top['mean_strength_high']:.3g}",
    )
    # the CV profiles: flat at pair level, curved with panels, as the sentences say
    profiles = _read(checked / "profiles.csv")
    _assert_finite(profiles, ["cv", "profile_loglik"], "CV profiles")
    ranges = profiles.groupby("level")["profile_loglik"].agg(lambda v: v.max() - v.min())
    assert ranges["pair"] < LIKELIHOOD_RATIO_THRESHOLD <= ranges["annotator"], ranges
    pair_text, annotator_text = text.split("annotator level, free gaps:")
    assert "pair level, free gaps: With a free reward gap per pair, the pair-level" in pair_text
    assert f"varies by only {ranges['pair']:.3g} nats" in pair_text
    assert f"varies by {ranges['annotator']:.3g} nats" in annotator_text
    assert "the data identify the strength spread" in annotator_text
