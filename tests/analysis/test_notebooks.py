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
    name: str, parameters: dict, tmp_path: Path, timeout: int = 300
) -> nbformat.NotebookNode:
    """Run a notebook with ``parameters`` injected after its ``parameters`` cell (papermill
    convention), in ``tmp_path`` as working directory; ``timeout``: seconds per cell."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    index = next(
        i
        for i, cell in enumerate(notebook.cells)
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    )
    source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    injected = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(index + 1, injected)
    client = nbclient.NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    return notebook


def _text_outputs(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _assert_pngs(directory: Path, names: list[str]) -> None:
    for name in names:
        path = directory / name
        assert path.is_file(), (
            f"{name} not saved; found {sorted(p.name for p in directory.iterdir())}"
        )
        with Image.open(path) as image:
            assert image.format == "PNG"
            width, height = image.size
            pixels = np.asarray(image.convert("L"))
        assert width > 300 and height > 200
        assert pixels.std() > 5, f"{name} is blank"


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
    )
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


@pytest.mark.slow
def test_mixdpo_heterogeneity_notebook(tmp_path):
    notebook = _execute(
        "mixdpo_heterogeneity.ipynb",
        {
            "steps": 3,
            "pairs_per_step": 8,
            "eval_pairs": 24,
            "posterior_samples": 0,
            # annotator panels: a few steps and short chains (the two-stage fits warn that the
            # chains are short; the numbers are checked for consistency, not accuracy)
            "panel_steps": 4,
            "panel_samples": 20,
            "num_boot": 100,
            "figure_dir": "figs",
            "run_root": "runs",
        },
        tmp_path,
        # the panel cell runs three NUTS fits, each with its own JAX compilation: minutes on
        # a loaded 2-core CPU
        timeout=1800,
    )
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
    assert re.search(r"Most decisive: \w+, mean strength [\d.e+-]+ \[[\d.e+-]+, [\d.e+-]+\]", text)
    # the pair-level profile is flat, the panel one is not (free gaps, shipped panels)
    assert "pair level, free gaps: With a free reward gap per pair, the pair-level" in text
    assert "varies by only" in text.split("annotator level, free gaps:")[0]
    assert "the data identify the strength spread" in text.split("annotator level, free gaps:")[1]
    for method in ("dpo", "mixdpo-gamma", "mixdpo-lognormal"):
        for kind in ("heterogeneous", "homogeneous"):
            state = json.loads(
                (tmp_path / "runs" / f"{method}-{kind}" / "trainer_state.json").read_text()
            )
            assert state["global_step"] == 3
    assert "Subgroup posterior skipped" in _text_outputs(notebook)
